//! The Automation API (PhenixID Signing Workflow compatible, see `shared/spec/automation-api.md`):
//! signing orders and user anonymization, on a listener of its own that is off by default. Every
//! route is served at the root and under `/api/document_signing/` (the source's curl examples).
//! Errors use the CloudSigner error body and codes: one error format across Signet.

mod anonymize;
mod deliveries;
mod form;
mod orders;
mod people;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use orders::order_json;

use crate::state::AppState;

/// Where the source's curl examples serve the API; Signet serves it there and at the root.
pub const PRODUCT_PREFIX: &str = "/api/document_signing";

/// Routes of the Automation API, without the prefix.
fn routes() -> Router<AppState> {
    Router::new()
        // Orders carry a PDF: their limit is the upload limit, enforced while streaming.
        .route(
            "/orders",
            post(orders::create).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/orders/{order_id}",
            get(orders::read)
                .delete(orders::delete)
                .put(orders::update)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/orders/{order_id}/state", get(orders::order_state))
        .route("/orders/{order_id}/document", get(orders::document))
        .route(
            "/orders/{order_id}/signers",
            axum::routing::put(orders::replace_signers),
        )
        .route("/orders/{order_id}/events", get(orders::events))
        .route("/orders/{order_id}/deliveries", get(deliveries::deliveries))
        .route("/anonymize", post(anonymize::anonymize))
}

/// The routes above, for the OpenAPI document (the `/api/document_signing` copies are added
/// there).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    orders::create,
    orders::read,
    orders::update,
    orders::delete,
    orders::order_state,
    orders::document,
    orders::replace_signers,
    orders::events,
    deliveries::deliveries,
    anonymize::anonymize,
))]
pub(crate) struct Docs;

/// The Automation API's application, for its own listener.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes())
        .merge(crate::api::openapi::router(
            crate::api::openapi::Surface::Automation,
        ))
        .nest(PRODUCT_PREFIX, routes())
        .fallback(crate::api::cloudsigner::not_found)
        .method_not_allowed_fallback(crate::api::cloudsigner::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_json_bytes))
        .with_state(state)
}
