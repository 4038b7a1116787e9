//! Swagger UI at `/docs`: Signet's own page and start-up script around the npm package
//! `swagger-ui-dist` (vendored under `assets/swagger-ui/` with its licences, compiled into the
//! binary; nothing is downloaded at build time or by the browser from anywhere but Signet).
//! The page allows scripts, styles and requests from Signet only: the start-up script is a file,
//! not inline, so the policy needs no `unsafe-inline`.

use crate::api::cloudsigner::extract::ApiPath;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::api::cloudsigner::error::{error_response, ErrorCode};

/// Images only from Signet or `data:` (Swagger UI's icons are inline SVG in its stylesheet).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// Relative links: the page works behind a proxy that mounts Signet under a path, too.
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Signet API</title>
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"#;

/// `validatorUrl: null`: Swagger UI would otherwise fetch a badge from swagger.io.
const START: &str = r##"window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"##;

/// `(name, content type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui.css"),
    ),
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "start.js",
        "text/javascript; charset=utf-8",
        START.as_bytes(),
    ),
    (
        "LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/LICENSE"),
    ),
    (
        "NOTICE",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/NOTICE"),
    ),
    (
        "swagger-ui-bundle.js.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/swagger-ui/swagger-ui-bundle.js.LICENSE.txt"),
    ),
];

fn secured(mut response: Response, cache: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// `GET /docs`.
pub async fn page() -> Response {
    secured(
        ([(CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response(),
        "no-cache",
    )
}

/// `GET /docs/{file}`: the files change with Signet's version only, so an hour of caching is
/// safe and a new version is seen the same day.
pub async fn asset(ApiPath(name): ApiPath<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => secured(
            ([(CONTENT_TYPE, *content_type)], *bytes).into_response(),
            "public, max-age=3600",
        ),
        None => error_response(
            StatusCode::NOT_FOUND,
            ErrorCode::ResourceNotFound,
            &format!("no file {name} in the API documentation"),
        ),
    }
}
