//! The CloudSigner error body and every way a request to this surface can fail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The documented error codes of the CloudSigner API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Generic,
    Unauthorized,
    ResourceNotFound,
    RequestValidation,
    IllegalOperation,
    CsrInvalidSignature,
    DocumentUpload,
    DocumentInvalidSignature,
    TimestampUnavailable,
    StorageUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Generic => "ERROR_GENERIC",
            ErrorCode::Unauthorized => "ERROR_UNAUTHORIZED",
            ErrorCode::ResourceNotFound => "ERROR_RESOURCE_NOT_FOUND",
            ErrorCode::RequestValidation => "REQUEST_VALIDATION_ERROR",
            ErrorCode::IllegalOperation => "ILLEGAL_OPERATION_ERROR",
            ErrorCode::CsrInvalidSignature => "CSR_INVALID_SIGNATURE_ERROR",
            ErrorCode::DocumentUpload => "DOCUMENT_UPLOAD_ERROR",
            ErrorCode::DocumentInvalidSignature => "DOCUMENT_INVALID_SIGNATURE_ERROR",
            ErrorCode::TimestampUnavailable => "TIMESTAMP_UNAVAILABLE",
            ErrorCode::StorageUnavailable => "STORAGE_UNAVAILABLE",
        }
    }
}

/// A failed request on the CloudSigner surface: status, code and a message that says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    /// Our fault, never the client's: logged with an id, answered without details.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::RequestValidation,
            message,
        )
    }

    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Generic, message)
    }

    pub fn illegal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::IllegalOperation,
            message,
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::ResourceNotFound, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    /// A document the client sent that Signet cannot take.
    pub fn document_upload(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::DocumentUpload, message)
    }

    /// A document over the upload limit.
    pub fn document_too_large(limit: u64) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::DocumentUpload,
            format!("the document is larger than the limit of {limit} bytes"),
        )
    }

    /// A PDF the engine refused is the client's problem, said in the engine's words; anything
    /// else the engine reports is ours.
    pub fn from_pdf(error: signet_pdf::PdfError) -> Self {
        use signet_pdf::PdfError;
        match error {
            PdfError::NotPdf(_)
            | PdfError::Encrypted
            | PdfError::Unparseable(_)
            | PdfError::Damaged(_)
            | PdfError::Certified
            | PdfError::Unsupported(_)
            | PdfError::OverBudget(_) => Self::document_upload(error.to_string()),
            other => ApiError::Internal(anyhow::Error::new(other).context("preparing the PDF")),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::Internal(error.into())
    }
}

/// The signature level asked for needs a timestamp that cannot be had now: nothing was changed,
/// the client may try again (503, so proxies and clients treat it as transient).
impl From<crate::services::timestamps::TimestampUnavailable> for ApiError {
    fn from(error: crate::services::timestamps::TimestampUnavailable) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TimestampUnavailable,
            format!("no timestamp could be had ({error}); nothing was changed, try again later"),
        )
    }
}

impl From<crate::services::timestamps::StampError> for ApiError {
    fn from(error: crate::services::timestamps::StampError) -> Self {
        use crate::services::timestamps::StampError;
        match error {
            StampError::Unavailable(unavailable) => unavailable.into(),
            StampError::Cms(cms) => ApiError::Internal(
                anyhow::Error::new(cms).context("adding the signature timestamp"),
            ),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::Internal(error)
    }
}

/// The documented body for any status, code and message.
pub fn error_response(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    let body = json!({
        "status": "ERROR",
        "responseObject": {"code": code.as_str(), "message": message}
    });
    (status, Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Client {
                status,
                code,
                message,
            } => error_response(status, code, &message),
            // The object store could not be reached or refused a write: nothing a row names
            // was changed, and the same request works again once the store is back.
            ApiError::Internal(error) if crate::store::objects::is_unavailable(&error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "the document store is unavailable"
                );
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::StorageUnavailable,
                    "the document store is unavailable; nothing was changed, try again later",
                )
            }
            ApiError::Internal(error) => {
                let request_id = uuid::Uuid::new_v4();
                tracing::error!(%request_id, error = format!("{error:#}"), "request failed");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Generic,
                    &format!("internal error (request id {request_id})"),
                )
            }
        }
    }
}
