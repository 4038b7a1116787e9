//! The CA's public endpoints: its certificate (PEM, and DER for the caIssuers URL in every
//! certificate's Authority Information Access) and its CRL, without authentication, at stable
//! URLs that relying parties (and the CRL distribution point in every certificate) can reach.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::error::ApiError;
use crate::state::AppState;

/// The routes below, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(ca_certificate, ca_certificate_der, crl))]
pub(crate) struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ca/ca.pem", get(ca_certificate))
        .route("/ca/ca.der", get(ca_certificate_der))
        .route("/ca/crl.der", get(crl))
}

/// The CA's certificate, PEM.
#[utoipa::path(get, path = "/ca/ca.pem", tag = "ca", responses(
    (status = 200, description = "The CA certificate", content((String = "application/x-pem-file"))),
))]
async fn ca_certificate(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/x-pem-file")],
        state.pki.ca().certificate_pem(),
    )
}

/// RFC 5280 §4.2.2.1: a caIssuers URI points at a single DER certificate (RFC 2585's type).
#[utoipa::path(get, path = "/ca/ca.der", tag = "ca", responses(
    (status = 200, description = "The CA certificate, DER", content((crate::api::openapi::schemas::Binary = "application/pkix-cert"))),
))]
async fn ca_certificate_der(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/pkix-cert")],
        state.pki.ca().certificate_der().to_vec(),
    )
}

/// The current CRL, DER.
#[utoipa::path(get, path = "/ca/crl.der", tag = "ca", responses(
    (status = 200, description = "The CRL", content((crate::api::openapi::schemas::Binary = "application/pkix-crl"))),
    (status = 500, description = "Signet's fault", body = crate::api::openapi::schemas::ErrorBody),
))]
async fn crl(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let crl = state
        .pki
        .current_crl(state.store.as_ref(), state.clock.now())
        .await?;
    Ok((
        [
            (CONTENT_TYPE, "application/pkix-crl"),
            (CACHE_CONTROL, "no-cache"),
        ],
        crl.der,
    ))
}
