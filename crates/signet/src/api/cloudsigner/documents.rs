//! `/documents`: upload a PDF for a signer (Signet prepares the signature revision and returns
//! the data to be signed), reject, delete, post the device's signature (verified, then embedded
//! as a PAdES signature), and download the signed PDF with range requests. The handlers parse
//! the request, call the documents service (`services/documents.rs`, which owns the protocol)
//! and map its answer and its [`DocumentError`] to the response.

use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorCode};
use super::extract::{ApiJson, ApiPath};
use crate::api::blob_download;
use crate::api::openapi::schemas::{DocumentUploadForm, ErrorBody};
use crate::api::upload::{
    FileIntake, PartHead, ReceivedFile, TextBudget, UploadReader, IN_MEMORY_UPLOAD,
};
use crate::domain::{DocumentId, DocumentStatus, SignatureLevel, SignerId};
use crate::services::documents::{DocumentError, NewDocument, UploadRefusal};
use crate::services::reads::ReadAt;
use crate::state::AppState;
use crate::store::DocumentRecord;

/// Multipart framing and the small text parts may add this much to the declared length before
/// the upload is refused outright from `Content-Length`.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// Longest accepted text part (`signerId`, `externalId`, `name`).
const MAX_TEXT_PART: usize = 1024;

/// The routes below, for the OpenAPI document (`/documents/upload` is added there as a copy of
/// `/documents`: one handler serves both).
#[derive(utoipa::OpenApi)]
#[openapi(paths(upload, reject, delete, sign, download))]
pub(crate) struct Docs;

pub fn router() -> Router<AppState> {
    // Uploads set their own limit (counted while streaming); the router-wide JSON limit would
    // cut them off with a bare connection reset.
    let upload_route = || post(upload).layer(axum::extract::DefaultBodyLimit::disable());
    Router::new()
        .route("/documents", upload_route())
        .route("/documents/upload", upload_route())
        .route("/documents/{document_id}", put(reject).delete(delete))
        .route("/documents/{document_id}/signature", post(sign))
        .route("/documents/{document_id}/file", get(download))
}

/// What `POST /documents` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct UploadResponse {
    document_id: String,
    signer_id: String,
    /// The product's name for `signerId` (same value).
    external_signer_id: String,
    #[schema(required = true)]
    external_id: Option<String>,
    #[schema(required = true)]
    name: Option<String>,
    file_name: String,
    size: u64,
    /// Base64 DER SignedAttributes: the data the device signs.
    hash: String,
    /// Hex SHA-256 of the file as uploaded.
    document_sha256: String,
}

/// What `PUT /documents/{id}` answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct DocumentSummary {
    document_id: String,
    #[schema(required = true)]
    name: Option<String>,
    file_name: String,
    size: u64,
    hash: String,
}

impl From<&DocumentRecord> for DocumentSummary {
    fn from(document: &DocumentRecord) -> Self {
        DocumentSummary {
            document_id: document.document_id.to_string(),
            name: document.name.clone(),
            file_name: document.file_name.clone(),
            size: document.size,
            hash: BASE64.encode(&document.signed_attributes),
        }
    }
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> ApiError {
    move |e| ApiError::Internal(anyhow::Error::new(e).context(context))
}

/// The parts of an upload, as received.
#[derive(Default)]
struct UploadParts {
    signer_id: Option<String>,
    external_id: Option<String>,
    name: Option<String>,
    file: Option<ReceivedFile>,
}

async fn text_part(
    reader: &mut UploadReader,
    name: &str,
    budget: &mut TextBudget,
) -> Result<String, ApiError> {
    Ok(reader
        .text_field(name, MAX_TEXT_PART, budget)
        .await?
        .trim()
        .to_owned())
}

/// Streams the `file` part into memory or a temporary blob, counting as it goes (the engine
/// hashes it later, in the same pass as the byte-range digest).
async fn receive_file(
    state: &AppState,
    reader: &mut UploadReader,
    head: &PartHead,
    limit: u64,
) -> Result<ReceivedFile, ApiError> {
    let declared_type = head
        .content_type
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let declared_type = declared_type.split(';').next().unwrap_or_default().trim();
    if declared_type != "application/pdf" {
        return Err(ApiError::document_upload(format!(
            "the file part must be declared Content-Type: application/pdf, not {:?}",
            declared_type
        )));
    }
    let intake = FileIntake {
        limit,
        in_memory_up_to: IN_MEMORY_UPLOAD,
        sha256: false,
    };
    Ok(reader.receive_file(&state.blobs, head, intake).await?)
}

/// Reads every part; a large file is streamed to disk, never held in memory.
async fn read_parts(
    state: &AppState,
    mut reader: UploadReader,
    limit: u64,
) -> Result<UploadParts, ApiError> {
    match read_each_part(state, &mut reader, limit).await {
        Ok(parts) => Ok(parts),
        Err(error) => Err(reader.refuse(error, limit)),
    }
}

async fn read_each_part(
    state: &AppState,
    reader: &mut UploadReader,
    limit: u64,
) -> Result<UploadParts, ApiError> {
    let mut parts = UploadParts::default();
    // The upload's few text parts are bounded by their own limit and the number of parts.
    let mut budget = TextBudget::parts_only();
    while let Some(head) = reader.next_part().await? {
        let name = head.name.clone().unwrap_or_default();
        match name.as_str() {
            "signerId" | "externalSignerId" => {
                parts.signer_id = Some(text_part(reader, &name, &mut budget).await?)
            }
            "externalId" => parts.external_id = Some(text_part(reader, &name, &mut budget).await?),
            "name" => parts.name = Some(text_part(reader, &name, &mut budget).await?),
            "file" => {
                if parts.file.is_some() {
                    return Err(ApiError::validation("only one file part is accepted"));
                }
                parts.file = Some(receive_file(state, reader, &head, limit).await?);
            }
            // Unknown parts are read and ignored, as the source's clients may send extras; they
            // are held to the text parts' limit all the same.
            _ => {
                text_part(reader, &name, &mut budget).await?;
            }
        }
    }
    Ok(parts)
}

/// Uploads a PDF for a signer: Signet prepares the signature revision and answers the data the
/// device signs (`hash`).
#[utoipa::path(
    post, path = "/documents", tag = "documents", security(("apiKey" = [])),
    request_body(content = DocumentUploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "Prepared; sign `hash`", body = UploadResponse),
        (status = 400, description = "A missing or malformed field, a file that is not a PDF Signet can sign, a malformed multipart body, a signer that cannot sign", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such signer", body = ErrorBody),
        (status = 413, description = "The document is larger than the upload limit", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data with a boundary", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`); nothing was stored, try again later", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(document.id, signer.id))]
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    reader: UploadReader,
) -> Result<Response, ApiError> {
    let limit = state.settings.max_upload_bytes;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(reader.refuse(ApiError::document_too_large(limit), limit));
    }
    let parts = read_parts(&state, reader, limit).await?;

    let signer_id = match parts.signer_id.as_deref() {
        Some(raw) if !raw.is_empty() => {
            SignerId::parse(raw).map_err(|e| ApiError::validation(format!("field signerId {e}")))?
        }
        _ => return Err(ApiError::validation("field signerId is required")),
    };
    tracing::Span::current().record("signer.id", tracing::field::display(&signer_id));
    let file = parts
        .file
        .ok_or_else(|| ApiError::validation("field file (the PDF) is required"))?;
    let record = state
        .documents
        .upload(NewDocument {
            signer_id,
            external_id: parts.external_id,
            name: parts.name,
            file,
        })
        .await?;
    Ok(Json(UploadResponse {
        document_id: record.document_id.to_string(),
        signer_id: record.signer_id.to_string(),
        external_signer_id: record.signer_id.to_string(),
        external_id: record.external_id,
        name: record.name,
        file_name: record.file_name,
        size: record.size,
        hash: BASE64.encode(&record.signed_attributes),
        document_sha256: record.sha256.to_string(),
    })
    .into_response())
}

/// The refusal of the documents service as the API answers it; `raw_id` is the document id as
/// the path gave it (a 404 names it as sent).
fn document_error(raw_id: &str) -> impl FnOnce(DocumentError) -> ApiError + '_ {
    move |error| match error {
        DocumentError::NotFound(_) => ApiError::not_found(format!("no document {raw_id}")),
        other => other.into(),
    }
}

impl From<DocumentError> for ApiError {
    fn from(error: DocumentError) -> Self {
        let message = error.to_string();
        match error {
            DocumentError::NotFound(_) | DocumentError::NoSigner(_) => ApiError::not_found(message),
            DocumentError::Upload(UploadRefusal::Pdf(error)) => ApiError::from_pdf(error),
            DocumentError::Upload(_) => ApiError::document_upload(message),
            DocumentError::Refused(_) => ApiError::illegal(message),
            DocumentError::InvalidSignature(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::DocumentInvalidSignature,
                message,
            ),
            DocumentError::TimestampUnavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TimestampUnavailable,
                message,
            ),
            DocumentError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// The document id a path names; one that is not an id names no document (404).
fn parse_document_id(raw_id: &str) -> Result<DocumentId, ApiError> {
    DocumentId::parse(raw_id).map_err(|_| ApiError::not_found(format!("no document {raw_id}")))
}

/// `PUT /documents/{id}` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct RejectRequest {
    /// `REJECTED`.
    status: Option<String>,
}

/// Rejects a document that is still waiting for its signature.
#[utoipa::path(
    put, path = "/documents/{documentId}", tag = "documents", security(("apiKey" = [])),
    params(("documentId" = String, Path, description = "The document's id")),
    request_body = RejectRequest,
    responses(
        (status = 200, description = "Rejected", body = DocumentSummary),
        (status = 400, description = "A missing or wrong status, a document that is no longer waiting, a body that is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such document (or a deleted one)", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "The body is not declared application/json", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(document.id = %raw_id))]
async fn reject(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(request): ApiJson<RejectRequest>,
) -> Result<Json<DocumentSummary>, ApiError> {
    match request.status.as_deref() {
        Some("REJECTED") => {}
        Some(other) => {
            return Err(ApiError::validation(format!(
                "field status must be REJECTED, not {other:?}"
            )))
        }
        None => return Err(ApiError::validation("field status is required")),
    }
    let document_id = parse_document_id(&raw_id)?;
    let document = state
        .documents
        .reject(document_id)
        .await
        .map_err(document_error(&raw_id))?;
    Ok(Json(DocumentSummary::from(&document)))
}

/// Deletes a document and its files, whatever its status.
#[utoipa::path(
    delete, path = "/documents/{documentId}", tag = "documents", security(("apiKey" = [])),
    params(("documentId" = String, Path, description = "The document's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such document (or a deleted one)", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(document.id = %raw_id))]
async fn delete(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let document_id = parse_document_id(&raw_id)?;
    state
        .documents
        .delete(document_id)
        .await
        .map_err(document_error(&raw_id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /documents/{id}/signature` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SignRequest {
    /// Base64 of the device's signature over `hash` (DER or raw r‖s ECDSA, or RSA PKCS#1 v1.5).
    signature: Option<String>,
    /// `PADES_B_B` … `PADES_B_LTA`; the server's `--signature-level` when absent.
    signature_level: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SignResponse {
    document_id: String,
    uri: String,
}

/// Posts the device's signature: verified, then embedded as a PAdES signature at the level asked.
#[utoipa::path(
    post, path = "/documents/{documentId}/signature", tag = "documents", security(("apiKey" = [])),
    params(("documentId" = String, Path, description = "The document's id")),
    request_body = SignRequest,
    responses(
        (status = 200, description = "Signed; the file is at `uri`", body = SignResponse),
        (status = 400, description = "A missing or malformed field, a signature that does not verify, a document or signer that cannot be signed now, a body that is not JSON", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such document (or a deleted one)", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "The body is not declared application/json", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The level needs a timestamp or validation data that cannot be had now (`TIMESTAMP_UNAVAILABLE`), or the document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`); the document is still waiting", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(document.id = %raw_id))]
async fn sign(
    State(state): State<AppState>,
    ApiPath(raw_id): ApiPath<String>,
    ApiJson(request): ApiJson<SignRequest>,
) -> Result<Json<SignResponse>, ApiError> {
    let level = match request.signature_level.as_deref() {
        None => state.settings.signature_level,
        Some(raw) => raw
            .parse::<SignatureLevel>()
            .map_err(|e| ApiError::validation(format!("field signatureLevel: {e}")))?,
    };
    let encoded = request
        .signature
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::validation("field signature is required"))?;
    let device_signature = BASE64
        .decode(encoded)
        .map_err(|e| ApiError::validation(format!("field signature is not base64: {e}")))?;
    let document_id = parse_document_id(&raw_id)?;
    state
        .documents
        .sign(document_id, device_signature, level)
        .await
        .map_err(document_error(&raw_id))?;
    Ok(Json(SignResponse {
        document_id: document_id.to_string(),
        uri: format!("{}/documents/{document_id}/file", state.public_url),
    }))
}

/// Downloads the signed PDF, with range requests (`Range`, `If-Range`).
#[utoipa::path(
    get, path = "/documents/{documentId}/file", tag = "documents", security(("apiKey" = [])),
    params(
        ("documentId" = String, Path, description = "The document's id"),
        ("Range" = Option<String>, Header, description = "`bytes=first-last`, one range or several"),
        ("If-Range" = Option<String>, Header, description = "The ETag the ranges are for"),
    ),
    responses(
        (status = 200, description = "The signed PDF", content(
            (crate::api::openapi::schemas::Binary = "application/pdf"),
        )),
        (status = 206, description = "The ranges asked for: one as application/pdf, several as multipart/byteranges", content(
            (crate::api::openapi::schemas::Binary = "application/pdf"),
            (crate::api::openapi::schemas::Binary = "multipart/byteranges"),
        )),
        (status = 400, description = "The document is not signed yet, or a malformed path", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such document (or a deleted one)", body = ErrorBody),
        (status = 416, description = "No range lies inside the file", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(document.id = %raw_id))]
async fn download(
    State(state): State<AppState>,
    mut at: ReadAt,
    ApiPath(raw_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The archive-timestamp job may replace a signed file (a new blob, the old one removed
    // after the row names the new): a read that finds its file gone reads the row again, once.
    let not_found = || ApiError::not_found(format!("no document {raw_id}"));
    let document_id = DocumentId::parse(&raw_id).map_err(|_| not_found())?;
    let mut retried = false;
    loop {
        // A signed document's row comes from the read cache; the retry reads it afresh.
        let document = match state.reads.document(&document_id, retried, at).await? {
            Some(document) if document.status != DocumentStatus::Deleted => document,
            _ => return Err(not_found()),
        };
        let (Some(blob), Some(size)) = (&document.signed_blob, document.signed_size) else {
            return Err(ApiError::illegal(format!(
                "the document is {} and has no signed file yet",
                document.status
            )));
        };
        // A signed file's bytes never change once written, and its key names the document and
        // the version, so the key is a strong validator of its bytes.
        let etag = format!(
            "\"{}\"",
            blob.as_str()
                .trim_start_matches("documents/")
                .trim_end_matches(".pdf")
                .replace('/', "-")
        );
        let served = blob_download::serve(
            &state.blobs,
            &state.reads,
            at,
            blob_download::Download {
                key: blob,
                len: size,
                content_type: "application/pdf",
                etag,
            },
            &headers,
        )
        .await;
        match served {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !retried => {
                // The row changed since the request started: read it, and its file, as of now.
                retried = true;
                at = state.reads.read_at();
            }
            served => return served.map_err(io_error("reading the signed PDF")),
        }
    }
}
