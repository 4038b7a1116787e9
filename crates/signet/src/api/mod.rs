//! HTTP surfaces. Each API owns its router and error type; this module merges them for the main
//! listener and adds the cross-cutting layers (request ids, the access line and metrics, the
//! handler timeout, panic safety, body limits: see [`crate::telemetry::access`]).

pub mod automation;
pub mod blob_download;
pub mod cloudsigner;
pub mod health;
pub mod openapi;
pub mod pages;
pub mod ranged;
pub mod upload;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{middleware, Router};
use std::any::Any;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;

use crate::state::AppState;
use crate::telemetry::access::{observe, Observe};
use cloudsigner::error::{error_response, ErrorCode};

/// The main listener's application.
pub fn main_router(state: AppState) -> Router {
    let max_json = state.settings.max_json_bytes;
    let mut app = Router::new()
        .merge(cloudsigner::router(state.clone()))
        .merge(pages::router(&state))
        .merge(openapi::router(openapi::Surface::Main))
        .merge(health::health_router(&state));
    if state.settings.metrics_listen.is_none() {
        app = app.merge(health::metrics_router(&state));
    }
    let app = app
        .fallback(cloudsigner::not_found)
        .method_not_allowed_fallback(cloudsigner::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_json))
        .with_state(state.clone());
    with_common_layers(app, &state)
}

/// The Automation API listener's application.
pub fn automation_router(state: AppState) -> Router {
    let app = automation::router(state.clone()).merge(health::health_router(&state));
    with_common_layers(app, &state)
}

/// The `--metrics-listen` listener's application: `/metrics`, `/healthz` and `/readyz` only.
pub fn metrics_listener_router(state: AppState) -> Router {
    let app = health::metrics_router(&state)
        .merge(health::health_router(&state))
        .fallback(cloudsigner::not_found)
        .method_not_allowed_fallback(cloudsigner::method_not_allowed);
    with_common_layers(app, &state)
}

/// The request id, span, access line, metrics and handler timeout (outside), and panics
/// answered with the error body (inside, so the access line sees the 500).
fn with_common_layers(app: Router, state: &AppState) -> Router {
    let settings = &state.settings;
    let observed = Observe {
        request_timeout: Duration::from_secs(settings.request_timeout_seconds.max(1)),
        metrics: settings.metrics,
    };
    app.layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(observed, observe))
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
