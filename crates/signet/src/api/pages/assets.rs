//! The pages' static files, compiled into the binary: the stylesheet, the small viewer script,
//! and pdf.js (npm `pdfjs-dist`, legacy build, vendored under `assets/pdfjs/` with its licence).
//! The version in the path changes with every release, so they can be cached for a year.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(name, content type, bytes)`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "pages.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/pages.css"),
    ),
    (
        "viewer.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/viewer.mjs"),
    ),
    (
        "pdf.min.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/pdfjs/pdf.min.mjs"),
    ),
    (
        "pdf.worker.min.mjs",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/pdfjs/pdf.worker.min.mjs"),
    ),
    (
        "pdfjs-LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../../../assets/pdfjs/LICENSE"),
    ),
];

/// `GET /assets/{version}/{name}`.
pub async fn serve(Path((version, name)): Path<(String, String)>) -> Response {
    let found = FILES.iter().find(|(n, _, _)| *n == name);
    match found {
        Some((_, content_type, bytes)) => {
            // An old version's URL still gets today's file, but not for a year.
            let cache = if version == env!("CARGO_PKG_VERSION") {
                "public, max-age=31536000, immutable"
            } else {
                "public, max-age=300"
            };
            (
                [
                    (CONTENT_TYPE, HeaderValue::from_static(content_type)),
                    (CACHE_CONTROL, HeaderValue::from_static(cache)),
                    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                ],
                *bytes,
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            "no such file\n",
        )
            .into_response(),
    }
}
