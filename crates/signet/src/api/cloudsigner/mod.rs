//! The CloudSigner-compatible API (see `shared/spec/cloudsigner-api.md`): signers, documents,
//! and the CA's public endpoints, with the CloudSigner error body on every failure.

pub mod auth;
pub mod ca;
pub mod documents;
pub mod error;
pub mod extract;
pub mod ltv;
pub mod signers;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{middleware, Router};

use crate::state::AppState;
use error::{error_response, ErrorCode};

/// Where the CloudSigner product serves its routes; Signet serves them there and at the root.
pub const PRODUCT_PREFIX: &str = "/api/cloudsigner";

/// The CloudSigner surface: authenticated resources plus the public CA endpoints, at the root
/// (the seed's paths) and under [`PRODUCT_PREFIX`] (the product's as it ships).
pub fn router(state: AppState) -> Router<AppState> {
    let authenticated = signers::router()
        .merge(documents::router())
        .route_layer(middleware::from_fn_with_state(state, auth::require_api_key));
    let surface = Router::new()
        .merge(authenticated)
        .merge(ca::router())
        .merge(ltv::router());
    Router::new()
        .nest(PRODUCT_PREFIX, surface.clone())
        .merge(surface)
}

/// Answers paths no route knows.
pub async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        ErrorCode::ResourceNotFound,
        &format!("no resource at {method} {}", uri.path()),
    )
}

/// Rewrites axum's bodiless 405 into the error body.
pub async fn method_not_allowed() -> impl IntoResponse {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Generic,
        "this method is not allowed on this resource",
    )
}
