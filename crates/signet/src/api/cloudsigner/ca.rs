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

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ca/ca.pem", get(ca_certificate))
        .route("/ca/ca.der", get(ca_certificate_der))
        .route("/ca/crl.der", get(crl))
}

async fn ca_certificate(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/x-pem-file")],
        state.pki.ca().certificate_pem(),
    )
}

/// RFC 5280 §4.2.2.1: a caIssuers URI points at a single DER certificate (RFC 2585's type).
async fn ca_certificate_der(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/pkix-cert")],
        state.pki.ca().certificate_der().to_vec(),
    )
}

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
