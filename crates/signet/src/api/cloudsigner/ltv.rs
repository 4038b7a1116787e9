//! The public services for long-term validation, beside the CA's certificate and CRL: the RFC 3161
//! timestamp authority (`POST /tsa`, its certificate at `GET /ca/tsa.pem`) and the RFC 6960 OCSP
//! responder (`POST /ca/ocsp`, `GET /ca/ocsp/{base64}`), without authentication like the CRL.
//!
//! Protocol-level refusals are answered in the protocol, so clients that speak it learn why: a
//! timestamp request that does not parse gets a `TimeStampResp` with status rejection and its
//! failInfo (RFC 3161 §2.4.2) under HTTP 400; an OCSP request that does not parse gets
//! `malformedRequest` under HTTP 200, as OCSP clients expect (they read the body whatever the
//! status, and openssl reports non-200 only as a transport error). A request that is not the
//! protocol at all — a wrong content type — gets Signet's JSON error body with 415.
//!
//! Both answers are one P-256 signature with a key parsed at start-up; they run on the async
//! executor because they take tens of microseconds, less than a hop to the blocking pool.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use signet_crypto::ocsp::{
    error_response, CertificateStatus, Lookup, OcspRequest, OcspResponseStatus,
};
use signet_crypto::tsp;

use super::error::{ApiError, ErrorCode};
use super::extract::ApiPath;
use crate::api::openapi::schemas::ErrorBody;
use crate::pki::{LtvServices, OCSP_VALIDITY};
use crate::services::validation_data::certificate_status;
use crate::state::AppState;

const TIMESTAMP_QUERY: &str = "application/timestamp-query";
const TIMESTAMP_REPLY: &str = "application/timestamp-reply";
const OCSP_REQUEST: &str = "application/ocsp-request";
const OCSP_RESPONSE: &str = "application/ocsp-response";

/// The routes below, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(timestamp, tsa_certificate, ocsp_post, ocsp_get))]
pub(crate) struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/tsa",
            post(timestamp).layer(DefaultBodyLimit::max(tsp::MAX_REQUEST_BYTES)),
        )
        .route("/ca/tsa.pem", get(tsa_certificate))
        .route(
            "/ca/ocsp",
            post(ocsp_post).layer(DefaultBodyLimit::max(
                signet_crypto::ocsp::MAX_REQUEST_BYTES,
            )),
        )
        .route("/ca/ocsp/{*request}", get(ocsp_get))
}

fn services(state: &AppState) -> Result<&LtvServices, ApiError> {
    state.pki.services().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Generic,
            "the timestamp authority and OCSP responder are not set up on this server",
        )
    })
}

/// The request's media type without parameters must be `expected`.
fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if given.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::RequestValidation,
            format!("the request body must be {expected}, not {given:?}"),
        ))
    }
}

/// The request's DER body, or the error body with the status of why it could not be read
/// (too large, cut short).
fn request_body(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    what: &str,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        ApiError::new(
            e.status(),
            ErrorCode::RequestValidation,
            format!("the {what} request could not be read: {e}"),
        )
    })
}

/// RFC 3161: a timestamp for the request's message imprint.
#[utoipa::path(
    post, path = "/tsa", tag = "tsa",
    request_body(content = crate::api::openapi::schemas::Binary, content_type = "application/timestamp-query", description = "A DER TimeStampReq"),
    responses(
        (status = 200, description = "A granted TimeStampResp", content((crate::api::openapi::schemas::Binary = "application/timestamp-reply"))),
        (status = 400, description = "A TimeStampResp with status rejection and its failInfo; or the error body for a body that could not be read", content(
            (crate::api::openapi::schemas::Binary = "application/timestamp-reply"),
            (ErrorBody = "application/json"),
        )),
        (status = 413, description = "The request is larger than a timestamp request can be", body = ErrorBody),
        (status = 415, description = "The body is not declared application/timestamp-query", body = ErrorBody),
        (status = 503, description = "No timestamp authority is set up on this server", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn timestamp(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let services = services(&state)?;
    require_content_type(&headers, TIMESTAMP_QUERY)?;
    let body = request_body(body, "timestamp")?;
    let reply = services.tsa.respond(&body, state.clock.now());
    let status = match &reply.rejection {
        None => StatusCode::OK,
        Some(rejection) => {
            tracing::info!(reason = %rejection.reason, "timestamp request rejected");
            StatusCode::BAD_REQUEST
        }
    };
    Ok((status, [(CONTENT_TYPE, TIMESTAMP_REPLY)], reply.der).into_response())
}

/// The timestamp authority's certificate, PEM.
#[utoipa::path(get, path = "/ca/tsa.pem", tag = "tsa", responses(
    (status = 200, description = "The TSA certificate", content((String = "application/x-pem-file"))),
    (status = 503, description = "No timestamp authority is set up on this server", body = ErrorBody),
))]
async fn tsa_certificate(State(state): State<AppState>) -> Result<Response, ApiError> {
    let services = services(&state)?;
    Ok((
        [(CONTENT_TYPE, "application/x-pem-file")],
        services.tsa_certificate_pem.clone(),
    )
        .into_response())
}

/// RFC 6960: the status of the CA's certificates. A request that does not parse is answered
/// `malformedRequest` in an OCSP response (200).
#[utoipa::path(
    post, path = "/ca/ocsp", tag = "ocsp",
    request_body(content = crate::api::openapi::schemas::Binary, content_type = "application/ocsp-request", description = "A DER OCSPRequest"),
    responses(
        (status = 200, description = "An OCSPResponse (possibly an error status of the protocol)", content((crate::api::openapi::schemas::Binary = "application/ocsp-response"))),
        (status = 400, description = "The body could not be read", body = ErrorBody),
        (status = 413, description = "The request is larger than an OCSP request can be", body = ErrorBody),
        (status = 415, description = "The body is not declared application/ocsp-request", body = ErrorBody),
        (status = 503, description = "No OCSP responder is set up on this server", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn ocsp_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    services(&state)?;
    require_content_type(&headers, OCSP_REQUEST)?;
    let body = request_body(body, "OCSP")?;
    answer_ocsp(&state, &body).await
}

/// RFC 6960 Appendix A.1: the DER request, base64-encoded, then URL-encoded, as the path's last
/// part. The router has percent-decoded it already; base64 padding may be missing and some
/// clients use the URL-safe alphabet.
#[utoipa::path(
    get, path = "/ca/ocsp/{request}", tag = "ocsp",
    params(("request" = String, Path, description = "The DER OCSPRequest, base64 (standard or URL-safe, padding optional), URL-encoded")),
    responses(
        (status = 200, description = "An OCSPResponse (possibly an error status of the protocol)", content((crate::api::openapi::schemas::Binary = "application/ocsp-response"))),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 503, description = "No OCSP responder is set up on this server", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn ocsp_get(
    State(state): State<AppState>,
    ApiPath(request): ApiPath<String>,
) -> Result<Response, ApiError> {
    services(&state)?;
    let text: String = request.chars().filter(|c| !c.is_whitespace()).collect();
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        });
    match decoded {
        Ok(der) => answer_ocsp(&state, &der).await,
        Err(_) => Ok(ocsp_reply(error_response(
            OcspResponseStatus::MalformedRequest,
        ))),
    }
}

async fn answer_ocsp(state: &AppState, der: &[u8]) -> Result<Response, ApiError> {
    let responder = &services(state)?.ocsp;
    let request = match OcspRequest::from_der(der) {
        Ok(request) => request,
        Err(error) => {
            tracing::info!(%error, "OCSP request refused");
            return Ok(ocsp_reply(error_response(
                OcspResponseStatus::MalformedRequest,
            )));
        }
    };
    let lookups: Vec<Lookup> = request
        .cert_ids
        .iter()
        .map(|id| responder.identify(id))
        .collect();
    // Asking only about other CAs' certificates: this responder is not authorized for them
    // (RFC 6960 §2.3). In a mixed request the foreign ones are answered "unknown", as openssl's
    // responder does.
    if lookups.iter().all(|l| *l == Lookup::ForeignIssuer) {
        return Ok(ocsp_reply(error_response(OcspResponseStatus::Unauthorized)));
    }
    let mut statuses = Vec::with_capacity(lookups.len());
    for lookup in lookups {
        let status = match lookup {
            Lookup::Serial(serial) => {
                match certificate_status(state.store.as_ref(), services(state)?, &serial).await {
                    Ok(status) => status,
                    Err(error) => {
                        tracing::error!(error = %error, "OCSP status lookup failed");
                        return Ok(ocsp_reply(error_response(
                            OcspResponseStatus::InternalError,
                        )));
                    }
                }
            }
            Lookup::Unknown | Lookup::ForeignIssuer => CertificateStatus::Unknown,
        };
        statuses.push(status);
    }
    match responder.respond(&request, &statuses, state.clock.now(), OCSP_VALIDITY) {
        Ok(der) => Ok(ocsp_reply(der)),
        Err(error) => {
            tracing::error!(error = %error, "signing an OCSP response failed");
            Ok(ocsp_reply(error_response(
                OcspResponseStatus::InternalError,
            )))
        }
    }
}

fn ocsp_reply(der: Vec<u8>) -> Response {
    (
        [(CONTENT_TYPE, OCSP_RESPONSE), (CACHE_CONTROL, "no-cache")],
        der,
    )
        .into_response()
}
