//! HTTP surfaces. Each API owns its router and error type; this module merges them for the main
//! listener and adds the cross-cutting layers (tracing, request ids, panic safety, body limits).

pub mod automation;
pub mod cloudsigner;
pub mod openapi;
pub mod pages;
pub mod ranged;
pub mod upload;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::Response;
use axum::Router;
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use cloudsigner::error::{error_response, ErrorCode};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The main listener's application.
pub fn main_router(state: AppState) -> Router {
    let max_json = state.settings.max_json_bytes;
    let app = Router::new()
        .merge(cloudsigner::router(state.clone()))
        .merge(pages::router(&state))
        .merge(openapi::router(openapi::Surface::Main))
        .fallback(cloudsigner::not_found)
        .method_not_allowed_fallback(cloudsigner::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json))
        .with_state(state);
    with_common_layers(app)
}

/// The Automation API listener's application.
pub fn automation_router(state: AppState) -> Router {
    with_common_layers(automation::router(state))
}

/// Tracing with a request id, and panics answered with the error body.
fn with_common_layers(app: Router) -> Router {
    app.layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request.id = %request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// A panic is a bug in Signet: log it and answer with the error body, never a dropped connection.
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    let request_id = uuid::Uuid::new_v4();
    tracing::error!(%request_id, detail, "handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Generic,
        &format!("internal error (request id {request_id})"),
    )
}
