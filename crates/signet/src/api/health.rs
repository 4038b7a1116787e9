//! The operator's endpoints, unauthenticated on purpose: `/healthz` (the process answers),
//! `/readyz` (it can work: database, document store, CA key; 503 with the error body naming
//! what failed otherwise) on every listener, and `/metrics` (Prometheus text format) on the
//! main listener or on `--metrics-listen` alone. The metrics carry route templates and counts,
//! nothing personal; keep them off a public address with `--metrics-listen` on a private one.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

use super::cloudsigner::error::{error_response, ErrorCode};
use crate::services::readiness::Readiness;
use crate::state::AppState;
use crate::store::stats::StatsStore;
use crate::telemetry::metrics::MetricsPage;

/// The routes below, for both listeners' OpenAPI documents (`/metrics` only in the main one's).
#[derive(utoipa::OpenApi)]
#[openapi(paths(healthz, readyz))]
pub(crate) struct HealthDocs;

/// `/metrics`, for the main listener's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub(crate) struct MetricsDocs;

/// What `/healthz` and a ready `/readyz` answer.
#[derive(utoipa::ToSchema)]
#[allow(
    dead_code,
    reason = "a schema for the OpenAPI document; the handlers build the JSON"
)]
struct HealthStatus {
    /// Always `OK`.
    #[schema(example = "OK")]
    status: String,
}

/// `/healthz` and `/readyz`.
pub fn health_router<S: Clone + Send + Sync + 'static>(state: &AppState) -> Router<S> {
    let stats: Arc<dyn StatsStore> = state.store.clone();
    let readiness = Readiness::new(
        stats,
        state.blobs.clone(),
        state.pki.clone(),
        state.clock.clone(),
    );
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(move || readyz(readiness.clone())))
}

/// `/metrics`, when metrics are on (an empty router otherwise: the path is then unknown).
pub fn metrics_router<S: Clone + Send + Sync + 'static>(state: &AppState) -> Router<S> {
    let Some(handle) = state
        .settings
        .metrics
        .then(crate::telemetry::metrics::install)
        .flatten()
    else {
        return Router::new();
    };
    let stats: Arc<dyn StatsStore> = state.store.clone();
    let page = Arc::new(MetricsPage::new(handle, stats, state.clock.clone()));
    Router::new().route("/metrics", get(move || metrics(page.clone())))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses(
    (status = 200, description = "The process answers", body = HealthStatus),
))]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "OK"}))
}

/// Readiness: the database answers with Signet's schema, the document store takes a file and the
/// CA certificate is in force.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready to work", body = HealthStatus),
    (status = 503, description = "Not ready: the message names the failed check", body = crate::api::openapi::schemas::ErrorBody),
))]
async fn readyz(readiness: Readiness) -> Response {
    match readiness.check().await {
        Ok(()) => Json(json!({"status": "OK"})).into_response(),
        Err(not_ready) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Generic,
            &format!("not ready: {not_ready}"),
        ),
    }
}

/// Prometheus text format. Served here unless metrics are off (`SIGNET_METRICS=false`) or moved
/// to `--metrics-listen`; the path is then unknown (404).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses(
    (status = 200, description = "The metrics", content((String = "text/plain; version=0.0.4; charset=utf-8"))),
    (status = 404, description = "Metrics are off or served on --metrics-listen", body = crate::api::openapi::schemas::ErrorBody),
))]
async fn metrics(page: Arc<MetricsPage>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        page.render().await,
    )
        .into_response()
}
