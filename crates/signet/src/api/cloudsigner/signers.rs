//! `/signers`: enrollment through the internal CA, status changes, details.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use signet_crypto::ca::{certificate_pem_from_der, RevocationReason};
use signet_crypto::csr::{CertificationRequest, CsrError};

use super::error::{ApiError, ErrorCode};
use super::extract::{ApiJson, ApiPath};
use crate::api::openapi::schemas::ErrorBody;
use crate::domain::{SignerId, SignerStatus, UserId};
use crate::services::reads::{ReadAt, SignerView};
use crate::state::AppState;
use crate::store::{EnrollOutcome, Enrollment, StatusChange};
use crate::telemetry::audit;
use axum::http::StatusCode;

/// The routes below, for the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(enroll, change_status, details))]
pub(crate) struct Docs;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/signers", post(enroll))
        .route("/signers/{signer_id}", get(details).put(change_status))
}

/// `POST /signers` body. Fields are optional here so a missing one gets a message naming it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollRequest {
    /// The signer's id (`externalSignerId` is accepted as the same field).
    #[serde(alias = "externalSignerId")]
    signer_id: Option<String>,
    user_id: Option<String>,
    /// A PEM (or base64 DER) PKCS#10 request with a CN, signed by the device's key.
    csr: Option<String>,
}

/// The source product's result envelope for signer operations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultBody {
    #[schema(value_type = crate::api::openapi::schemas::ResultCode)]
    result: &'static str,
    #[schema(required = true)]
    result_reason: Option<String>,
}

impl ResultBody {
    fn ok() -> Json<Self> {
        Json(ResultBody {
            result: "OK",
            result_reason: None,
        })
    }

    fn fail(reason: String) -> Json<Self> {
        Json(ResultBody {
            result: "FAIL",
            result_reason: Some(reason),
        })
    }
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, ApiError> {
    match value.as_deref() {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ApiError::validation(format!("field {field} is required"))),
    }
}

fn parse_signer_id(raw: &str) -> Result<SignerId, ApiError> {
    SignerId::parse(raw).map_err(|e| ApiError::validation(format!("field signerId {e}")))
}

/// Enrolls a signer: the CSR's key gets a certificate from the internal CA.
#[utoipa::path(
    post, path = "/signers", tag = "signers", security(("apiKey" = [])),
    request_body = EnrollRequest,
    responses(
        (status = 200, description = "Enrolled (`OK`), or refused with a reason (`FAIL`)", body = ResultBody),
        (status = 400, description = "A missing or malformed field, a CSR whose signature does not verify, a body that is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "The body is not declared application/json", body = ErrorBody),
        (status = 500, description = "Signet's fault (logged with the request id in the message)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(signer.id))]
async fn enroll(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<Json<ResultBody>, ApiError> {
    let signer_id = parse_signer_id(required(&request.signer_id, "signerId")?)?;
    tracing::Span::current().record("signer.id", tracing::field::display(&signer_id));
    let user_id = UserId::parse(required(&request.user_id, "userId")?)
        .map_err(|e| ApiError::validation(format!("field userId {e}")))?;
    let csr_text = required(&request.csr, "csr")?;
    let csr = match CertificationRequest::parse(csr_text) {
        Ok(csr) => csr,
        Err(CsrError::KeyRefused(reason)) => return Ok(ResultBody::fail(reason)),
        Err(CsrError::Empty) => return Err(ApiError::validation("field csr is required")),
        Err(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::CsrInvalidSignature,
                format!("field csr: {other}"),
            ))
        }
    };
    if csr.common_name().is_none_or(|cn| cn.trim().is_empty()) {
        return Err(ApiError::validation(
            "field csr: the CSR subject must contain a common name (CN)",
        ));
    }
    let now = state.clock.now();
    let certificate = state
        .pki
        .issue(csr.subject(), csr.public_key(), now)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("issuing a certificate: {e}")))?;
    let enrollment = Enrollment {
        signer_id,
        user_id,
        csr_der: csr.der().to_vec(),
        certificate,
    };
    let issued = |enrollment: &Enrollment| {
        audit::certificate_issued(&enrollment.signer_id, &enrollment.certificate.serial);
    };
    match state.store.enroll(&enrollment, now).await? {
        EnrollOutcome::Refused(status) => Ok(ResultBody::fail(format!(
            "signer {} is {status} and cannot be enrolled again; use a new signerId",
            enrollment.signer_id
        ))),
        EnrollOutcome::Created => {
            issued(&enrollment);
            Ok(ResultBody::ok())
        }
        EnrollOutcome::Replaced { superseded } => {
            issued(&enrollment);
            for serial in &superseded {
                audit::certificate_revoked(
                    &enrollment.signer_id,
                    serial,
                    RevocationReason::Superseded,
                );
            }
            if !superseded.is_empty() {
                state.pki.refresh_crl(state.store.as_ref(), now).await?;
            }
            Ok(ResultBody::ok())
        }
    }
}

/// `PUT /signers/{signerId}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusRequest {
    /// `ACTIVE`, `BLOCKED`, `REMOVED` or `REVOKED`.
    signer_status: Option<String>,
    /// With `REVOKED` only: an RFC 5280 name (`keyCompromise`) or the product's (`KEY_COMPROMISE`).
    revocation_reason: Option<String>,
}

/// Changes a signer's status (block, unblock, remove, revoke).
#[utoipa::path(
    put, path = "/signers/{signerId}", tag = "signers", security(("apiKey" = [])),
    params(("signerId" = String, Path, description = "The signer's id")),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "Changed", body = ResultBody),
        (status = 400, description = "A missing or malformed field, a change the signer's status does not allow, a body that is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such signer", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "The body is not declared application/json", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(signer.id = %raw_id))]
async fn change_status(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(request): ApiJson<StatusRequest>,
) -> Result<Json<ResultBody>, ApiError> {
    let signer_id = parse_signer_id(&raw_id)?;
    let requested: SignerStatus = required(&request.signer_status, "signerStatus")?
        .parse()
        .map_err(|e| ApiError::validation(format!("field signerStatus: {e}")))?;
    let reason = match request.revocation_reason.as_deref() {
        None => RevocationReason::Unspecified,
        Some(raw) => raw
            .parse()
            .map_err(|e: String| ApiError::validation(format!("field revocationReason: {e}")))?,
    };
    if request.revocation_reason.is_some() && requested != SignerStatus::Revoked {
        return Err(ApiError::validation(
            "field revocationReason is only allowed with signerStatus REVOKED",
        ));
    }
    let now = state.clock.now();
    match crate::services::signer_status::change_signer_status(
        state.store.as_ref(),
        &state.pki,
        &signer_id,
        requested,
        reason,
        now,
    )
    .await?
    {
        StatusChange::NotFound => Err(ApiError::not_found(format!("no signer {signer_id}"))),
        StatusChange::Illegal(e) => Err(ApiError::illegal(format!("{e}"))),
        StatusChange::Applied { .. } => Ok(ResultBody::ok()),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignerDetails {
    signer_id: String,
    /// The product's name for `signerId` (same value), so clients written for it read theirs.
    external_signer_id: String,
    user_id: String,
    #[schema(value_type = crate::api::openapi::schemas::SignerStatusName)]
    signer_status: &'static str,
    #[schema(required = true)]
    certificate: Option<CertificateDetails>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateDetails {
    serial_number: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    not_before: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    not_after: time::OffsetDateTime,
    pem: String,
    /// Every certificate this signer has had, oldest first (additive to the source API).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<HistoricCertificate>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoricCertificate {
    serial_number: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    not_before: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    not_after: time::OffsetDateTime,
    #[schema(value_type = crate::api::openapi::schemas::IssuedForName)]
    issued_for: &'static str,
    revoked: bool,
}

/// A signer's status and certificate (with every certificate it has had).
#[utoipa::path(
    get, path = "/signers/{signerId}", tag = "signers", security(("apiKey" = [])),
    params(("signerId" = String, Path, description = "The signer's id")),
    responses(
        (status = 200, description = "The signer", body = SignerDetails),
        (status = 400, description = "A malformed signer id", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such signer", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(signer.id = %raw_id))]
async fn details(
    State(state): State<AppState>,
    at: ReadAt,
    ApiPath(raw_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let signer_id = parse_signer_id(&raw_id)?;
    let view = state
        .reads
        .signer(&signer_id, at)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no signer {signer_id}")))?;
    let body = match view.rendered.get() {
        Some(body) => body.clone(),
        None => {
            let body = Bytes::from(
                serde_json::to_vec(&signer_details(&view))
                    .map_err(|e| anyhow::Error::new(e).context("rendering a signer"))?,
            );
            view.rendered.get_or_init(|| body).clone()
        }
    };
    // What `Json` would answer, from the bytes rendered once per view.
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}

/// The JSON of a signer and its certificates.
fn signer_details(view: &SignerView) -> SignerDetails {
    let (signer, history) = (&view.signer, &view.certificates);
    let certificate = history
        .iter()
        .find(|c| c.serial == signer.current_serial)
        .map(|current| CertificateDetails {
            serial_number: current.serial.to_string(),
            not_before: current.not_before,
            not_after: current.not_after,
            pem: certificate_pem_from_der(&current.der),
            history: history
                .iter()
                .map(|c| HistoricCertificate {
                    serial_number: c.serial.to_string(),
                    not_before: c.not_before,
                    not_after: c.not_after,
                    issued_for: c.issued_for.as_str(),
                    revoked: c.revoked_at.is_some(),
                })
                .collect(),
        });
    SignerDetails {
        signer_id: signer.signer_id.to_string(),
        external_signer_id: signer.signer_id.to_string(),
        user_id: signer.user_id.to_string(),
        signer_status: signer.status.as_str(),
        certificate,
    }
}
