//! `/documents`: upload a PDF for a signer (Signet prepares the signature revision and returns
//! the data to be signed), reject, delete, post the device's signature (verified, then embedded
//! as a PAdES signature), and download the signed PDF with range requests.

use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use signet_pdf::{ByteRange, PdfError, PrepareOptions};
use tracing::Instrument;

use super::error::{ApiError, ErrorCode};
use super::extract::{ApiJson, ApiPath};
use crate::api::blob_download;
use crate::api::openapi::schemas::{DocumentUploadForm, ErrorBody};
use crate::api::ranged::{self, StoredFile};
use crate::api::upload::{
    FileIntake, PartHead, Received, ReceivedFile, UploadReader, IN_MEMORY_UPLOAD,
};
use crate::domain::{DocumentId, DocumentStatus, Sha256Digest, SignatureLevel, SignerId};
use crate::services::levels::{LevelError, LevelFinisher};
use crate::state::AppState;
use crate::store::blob_backend::Blobs;
use crate::store::blobs::{BlobKey, BlobStore};
use crate::store::{DocumentRecord, SignedFile};

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

/// Runs blocking work (file I/O, parsing, hashing) off the async executor, in the caller's span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("blocking task failed")))?
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

async fn text_part(reader: &mut UploadReader, name: &str) -> Result<String, ApiError> {
    Ok(reader.text(name, MAX_TEXT_PART).await?.trim().to_owned())
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
    while let Some(head) = reader.next_part().await? {
        let name = head.name.clone().unwrap_or_default();
        match name.as_str() {
            "signerId" | "externalSignerId" => {
                parts.signer_id = Some(text_part(reader, &name).await?)
            }
            "externalId" => parts.external_id = Some(text_part(reader, &name).await?),
            "name" => parts.name = Some(text_part(reader, &name).await?),
            "file" => {
                if parts.file.is_some() {
                    return Err(ApiError::validation("only one file part is accepted"));
                }
                parts.file = Some(receive_file(state, reader, &head, limit).await?);
            }
            // Unknown parts are read and ignored, as the source's clients may send extras; they
            // are held to the text parts' limit all the same.
            _ => {
                text_part(reader, &name).await?;
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
    if file.size == 0 {
        return Err(ApiError::document_upload("the file is empty"));
    }
    let (signer, certificate) = state
        .store
        .find_signer_with_certificate(&signer_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no signer {signer_id}")))?;
    if !signer.status.can_sign() {
        return Err(ApiError::illegal(format!(
            "signer {signer_id} is {} and cannot sign; only an ACTIVE signer can",
            signer.status
        )));
    }

    let document_id = DocumentId::new_random();
    tracing::Span::current().record("document.id", tracing::field::display(&document_id));
    // Room for a signature timestamp whatever the level: the client names the level only when it
    // posts the signature, and the placeholder cannot grow then. 8 KiB of DER (16 KiB of hex
    // zeros) more per prepared file is cheaper than a document that has to be uploaded again.
    let mut options = PrepareOptions::new(state.clock.now()).with_timestamp_reserve();
    // Unique per upload: the same PDF uploaded twice in one second for one signer must not get
    // the same data to be signed, or a signature for one could be posted for the other.
    options.update_id = Some(*document_id.as_bytes());
    // Dropped with this future when the client hangs up: the preparation stops too.
    let _cancel_on_hang_up = options.cancel.cancel_on_drop();
    let blobs = state.blobs.clone();
    let certificate_der = certificate.der.clone();
    let ReceivedFile {
        content,
        file_name,
        size,
        ..
    } = file;
    let (prepared, signed_attributes, prepared_blob) = blocking(move || {
        let not_pdf =
            || ApiError::document_upload("the file is not a PDF: it does not start with %PDF-");
        // A small upload is parsed from memory and written once, with its revision; a large
        // one is already on disk and gets the revision appended to it.
        let (temp, handle, prepared) = match content {
            Received::InMemory(bytes) => {
                if !bytes.starts_with(b"%PDF-") {
                    return Err(not_pdf());
                }
                let (temp, mut handle) = blobs.create_temp().map_err(io_error("temp file"))?;
                let prepared =
                    signet_pdf::prepare(std::io::Cursor::new(&bytes[..]), &mut handle, &options)
                        .map_err(ApiError::from_pdf)?;
                (temp, handle, prepared)
            }
            Received::Spilled {
                temp,
                file: mut handle,
            } => {
                use std::io::{Read, Seek, SeekFrom};
                let mut magic = [0u8; 5];
                handle
                    .seek(SeekFrom::Start(0))
                    .map_err(io_error("reading the upload"))?;
                let magic_len = handle
                    .read(&mut magic)
                    .map_err(io_error("reading the upload"))?;
                if &magic[..magic_len] != b"%PDF-" {
                    return Err(not_pdf());
                }
                let prepared = signet_pdf::prepare_appending(&mut handle, &options)
                    .map_err(ApiError::from_pdf)?;
                (temp, handle, prepared)
            }
        };
        let signed_attributes =
            signet_crypto::cms::signed_attributes_der(&prepared.digest, &certificate_der).map_err(
                |e| ApiError::Internal(anyhow::Error::new(e).context("SignedAttributes")),
            )?;
        let key = BlobKey::prepared(document_id);
        blobs
            .persist(temp, &handle, &key)
            .map_err(io_error("storing the prepared PDF"))?;
        Ok((prepared, signed_attributes, key))
    })
    .await?;

    let record = DocumentRecord {
        document_id,
        signer_id: signer_id.clone(),
        external_id: parts.external_id.filter(|v| !v.is_empty()),
        name: parts.name.filter(|v| !v.is_empty()),
        file_name,
        size,
        // The engine hashes the upload once, on the way to the byte-range digest.
        sha256: Sha256Digest::from_bytes(prepared.input_sha256),
        status: DocumentStatus::Waiting,
        signed_attributes,
        byte_range: prepared.byte_range.0,
        certificate_serial: certificate.serial,
        prepared_blob: Some(prepared_blob),
        signed_blob: None,
        signed_size: None,
        created_at: state.clock.now(),
    };
    if let Err(error) = state.store.insert_document(&record).await {
        let _ = state.blobs.remove_document(document_id);
        return Err(error.into());
    }
    tracing::info!(size, "document prepared");
    Ok(Json(UploadResponse {
        document_id: document_id.to_string(),
        signer_id: signer_id.to_string(),
        external_signer_id: signer_id.to_string(),
        external_id: record.external_id,
        name: record.name,
        file_name: record.file_name,
        size,
        hash: BASE64.encode(&record.signed_attributes),
        document_sha256: record.sha256.to_string(),
    })
    .into_response())
}

/// A document the client may still see: unknown ids and deleted documents are both 404.
async fn live_document(state: &AppState, raw_id: &str) -> Result<DocumentRecord, ApiError> {
    let not_found = || ApiError::not_found(format!("no document {raw_id}"));
    let document_id = DocumentId::parse(raw_id).map_err(|_| not_found())?;
    match state.store.find_document(&document_id).await? {
        Some(document) if document.status != DocumentStatus::Deleted => Ok(document),
        _ => Err(not_found()),
    }
}

/// Reads the live document and moves it to `to` with a compare-and-set on the status it was
/// read in: the document as read when the move applied, `None` when a racing request changed
/// the status first. A move the status machine refuses is an illegal operation.
async fn move_live_document(
    state: &AppState,
    raw_id: &str,
    to: DocumentStatus,
) -> Result<Option<DocumentRecord>, ApiError> {
    let document = live_document(state, raw_id).await?;
    let to = document
        .status
        .transition(to)
        .map_err(|e| ApiError::illegal(e.to_string()))?;
    let changed = state
        .store
        .change_document_status(
            &document.document_id,
            document.status,
            to,
            None,
            state.clock.now(),
        )
        .await?;
    Ok(changed.then_some(document))
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
    let document = move_live_document(&state, &raw_id, DocumentStatus::Rejected)
        .await?
        .ok_or_else(|| {
            ApiError::illegal(
                "the document changed while it was being rejected; read it and try again",
            )
        })?;
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
    // A delete succeeds whatever the state (the spec's 204). A racing request may change the
    // state between the read and the compare-and-set (a signature landing: WAITING → SIGNED);
    // read it again and delete what it has become. Every state but DELETED leads to DELETED and
    // a document changes state at most twice, so three rounds settle it; once another delete
    // has won, `live_document` answers 404. An in-flight signature whose commit loses to this
    // delete finds the row DELETED and answers its own refusal; one that won is simply deleted.
    let mut deleted = None;
    for _ in 0..3 {
        deleted = move_live_document(&state, &raw_id, DocumentStatus::Deleted).await?;
        if deleted.is_some() {
            break;
        }
    }
    let document = deleted.ok_or_else(|| {
        ApiError::Internal(anyhow::anyhow!(
            "the document kept changing state while it was being deleted"
        ))
    })?;
    let blobs = state.blobs.clone();
    let document_id = document.document_id;
    blocking(move || {
        blobs
            .remove_document(document_id)
            .map_err(io_error("removing the document's files"))
    })
    .await?;
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

fn invalid_signature(message: impl Into<String>) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::DocumentInvalidSignature,
        message,
    )
}

/// A prepared file being filled with its signature, in place, under an exclusive lock.
///
/// Signing writes only the `/Contents` placeholder, which lies outside the signed byte range,
/// so the prepared file becomes the signed file without a copy. The lock (`flock`, held until
/// the row's WAITING → SIGNED compare-and-set is known) makes racing attempts exclusive: a
/// second one fails to take it, or takes it after the winner and finds the placeholder filled
/// and the document SIGNED. A filled placeholder on a WAITING document is what an attempt
/// that never committed (a crash, a failed commit) leaves; the next attempt clears and
/// refills it. Bytes a client can download are therefore never rewritten.
///
/// Levels from B-LT up append revisions (`/DSS`, a document timestamp) after the prepared file's
/// end; an attempt that fails (no timestamp, no validation data) cuts the file back to that end
/// and empties the placeholder before it lets go of the lock, and a refill does the same first.
struct Fill {
    file: std::fs::File,
    blob: BlobKey,
    byte_range: ByteRange,
    cms: Vec<u8>,
    level: SignatureLevel,
    levels: std::sync::Arc<LevelFinisher>,
    runtime: tokio::runtime::Handle,
    /// `blob` is a new object holding the signed file (object storage), not the prepared file
    /// filled in place.
    new_version: bool,
    /// The prepared object the signed one supersedes, removed after the commit.
    superseded: Option<BlobKey>,
    /// The file's length once finished.
    len: u64,
    /// When its document timestamp must be renewed by (B-LTA).
    archive_expires_at: Option<time::OffsetDateTime>,
    /// The placeholder was already filled: see [`Fill::refill`].
    stale: bool,
}

/// What a fill writes: the CMS for the placeholder and the level to raise it to.
struct Signature {
    byte_range: ByteRange,
    cms: Vec<u8>,
    level: SignatureLevel,
    levels: std::sync::Arc<LevelFinisher>,
    runtime: tokio::runtime::Handle,
}

impl Fill {
    /// Opens and locks the prepared file and fills its placeholder with `cms` at `level`,
    /// durably, unless it is already filled (`stale`). Blocking.
    fn claim(files: &BlobStore, blob: &BlobKey, signature: Signature) -> Result<Self, ApiError> {
        let Signature {
            byte_range,
            cms,
            level,
            levels,
            runtime,
        } = signature;
        let lost =
            || ApiError::illegal("the document was signed or deleted by another request meanwhile");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(files.path(blob))
            .map_err(|e| match e.kind() {
                // A racing request deleted this document first.
                std::io::ErrorKind::NotFound => lost(),
                _ => io_error("opening the prepared PDF")(e),
            })?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => {
                ApiError::illegal("the document is being signed by another request")
            }
            std::fs::TryLockError::Error(e) => io_error("locking the prepared PDF")(e),
        })?;
        let mut fill = Fill {
            file,
            blob: blob.clone(),
            byte_range,
            cms,
            level,
            levels,
            runtime,
            len: byte_range.file_len(),
            archive_expires_at: None,
            stale: false,
            new_version: false,
            superseded: None,
        };
        if !signet_pdf::placeholder_is_empty(&mut fill.file, &byte_range).map_err(embed_error)? {
            fill.stale = true;
            return Ok(fill);
        }
        fill.finish()?;
        Ok(fill)
    }

    /// On object storage, where nothing is rewritten in place: copies the prepared object to a
    /// temporary file, fills that and stores it as a new version of the document
    /// (`documents/<id>/signed-<version>.pdf`), durable before the row may name it. Racing
    /// attempts each write their own version; the compare-and-set on the row picks one.
    /// Blocking.
    fn new_version(
        blobs: &Blobs,
        prepared: &BlobKey,
        document_id: DocumentId,
        signature: Signature,
    ) -> Result<Self, ApiError> {
        let (temp, file) = blobs.copy_to_temp(prepared).map_err(|e| match e.kind() {
            // A racing request signed or deleted this document first.
            std::io::ErrorKind::NotFound => {
                ApiError::illegal("the document was signed or deleted by another request meanwhile")
            }
            _ => io_error("reading the prepared PDF")(e),
        })?;
        let mut fill = Fill {
            file,
            blob: BlobKey::document_version(document_id, uuid::Uuid::new_v4()),
            byte_range: signature.byte_range,
            cms: signature.cms,
            level: signature.level,
            levels: signature.levels,
            runtime: signature.runtime,
            len: signature.byte_range.file_len(),
            archive_expires_at: None,
            stale: false,
            new_version: true,
            superseded: Some(prepared.clone()),
        };
        // A prepared file carried over from the file backend (migrate-blobs) may hold the
        // filled placeholder of an attempt that never committed: start from the prepared state.
        if !signet_pdf::placeholder_is_empty(&mut fill.file, &fill.byte_range)
            .map_err(embed_error)?
        {
            fill.reset()?;
        }
        fill.finish()?;
        blobs
            .persist(temp, &fill.file, &fill.blob)
            .map_err(io_error("storing the signed PDF"))?;
        Ok(fill)
    }

    /// Fills the empty placeholder and raises the signature to its level; on failure the file
    /// is put back as it was prepared.
    fn finish(&mut self) -> Result<(), ApiError> {
        match self.levels.finish(
            &self.runtime,
            &mut self.file,
            &self.byte_range,
            &self.cms,
            self.level,
        ) {
            Ok(finished) => {
                self.len = finished.len;
                self.archive_expires_at = finished.archive_expires_at;
                self.sync()
            }
            Err(error) => {
                if let Err(reset) = self.reset() {
                    tracing::error!(error = ?reset, "could not put the prepared PDF back");
                }
                Err(level_error(error))
            }
        }
    }

    /// Cuts the file back to the prepared revision and empties its placeholder.
    fn reset(&mut self) -> Result<(), ApiError> {
        self.file
            .set_len(self.byte_range.file_len())
            .map_err(io_error("cutting the PDF back"))?;
        if !signet_pdf::placeholder_is_empty(&mut self.file, &self.byte_range)
            .map_err(embed_error)?
        {
            signet_pdf::clear_placeholder(&mut self.file, &self.byte_range).map_err(embed_error)?;
        }
        self.sync()
    }

    /// Clears a placeholder (and revisions after it) left by an attempt that never committed
    /// and fills it with this attempt's signature. Blocking; call only with the document still
    /// WAITING.
    fn refill(mut self) -> Result<Self, ApiError> {
        self.reset()?;
        self.finish()?;
        self.stale = false;
        Ok(self)
    }

    /// The fill reaches the disk before the row says SIGNED. The file's length and name are
    /// unchanged (both made durable at upload), so its data is all there is to flush.
    fn sync(&self) -> Result<(), ApiError> {
        self.file
            .sync_data()
            .map_err(io_error("storing the signed PDF"))
    }
}

/// A level that cannot be reached now is the outside world's (503, the document stays
/// WAITING); anything else is ours.
fn level_error(error: LevelError) -> ApiError {
    if error.is_unavailable() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TimestampUnavailable,
            format!("{error}; the document is still WAITING, try again later"),
        )
    } else {
        ApiError::Internal(anyhow::Error::new(error).context("finishing the signature"))
    }
}

fn embed_error(e: PdfError) -> ApiError {
    ApiError::Internal(anyhow::Error::new(e).context("embedding the CMS"))
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

    let not_found = || ApiError::not_found(format!("no document {raw_id}"));
    let document_id = DocumentId::parse(&raw_id).map_err(|_| not_found())?;
    let (document, signer_status, certificate) = state
        .store
        .find_document_for_signing(&document_id)
        .await?
        .filter(|(document, _, _)| document.status != DocumentStatus::Deleted)
        .ok_or_else(not_found)?;
    document
        .status
        .transition(DocumentStatus::Signed)
        .map_err(|e| ApiError::illegal(e.to_string()))?;
    if !signer_status.can_sign() {
        return Err(ApiError::illegal(format!(
            "signer {} is {signer_status} and cannot sign",
            document.signer_id
        )));
    }
    if certificate.revoked_at.is_some() {
        return Err(ApiError::illegal(
            "the certificate this document was prepared for has been revoked (the signer \
             enrolled a new key); upload the document again",
        ));
    }

    let prepared_blob = document
        .prepared_blob
        .clone()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("waiting document without its file")))?;
    let ca_der = state.pki.ca().certificate_der().to_vec();
    let byte_range = ByteRange(document.byte_range);
    let levels = state.levels.clone();
    let runtime = tokio::runtime::Handle::current();
    let verify_and_fill = move |blobs: std::sync::Arc<Blobs>| -> Result<Fill, ApiError> {
        let verified = signet_crypto::verify::verify_with_certificate(
            &certificate.der,
            &document.signed_attributes,
            &device_signature,
        )
        .map_err(|e| {
            invalid_signature(format!(
                "the signature does not verify against the signer's certificate over the \
                 data to be signed (hash): {e}"
            ))
        })?;
        let cms = signet_crypto::cms::signed_data_der(
            &document.signed_attributes,
            &verified.signature,
            verified.algorithm,
            &certificate.der,
            &[&ca_der],
        )
        .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("building SignedData")))?;
        let signature = Signature {
            byte_range,
            cms,
            level,
            levels,
            runtime,
        };
        match blobs.files() {
            Some(files) => Fill::claim(files, &prepared_blob, signature),
            None => Fill::new_version(&blobs, &prepared_blob, document_id, signature),
        }
    };
    // From the claim to the commit this runs as its own task: a client that hangs up must not
    // release the lock while the commit is still queued (see `Fill`).
    let task_state = state.clone();
    tokio::spawn(
        async move {
            let state = task_state;
            let blobs = state.blobs.clone();
            let mut fill = blocking(move || verify_and_fill(blobs)).await?;
            if fill.stale {
                // Under the lock no live attempt is running, so a filled placeholder is left from
                // one that never committed, unless the document has left WAITING since.
                let current = state.store.find_document(&document_id).await?;
                if current.is_none_or(|current| current.status != DocumentStatus::Waiting) {
                    return Err(ApiError::illegal(
                        "the document was signed, rejected or deleted by another request meanwhile",
                    ));
                }
                fill = blocking(move || fill.refill()).await?;
            }
            let signed = SignedFile {
                blob: fill.blob.clone(),
                size: fill.len,
                archive_expires_at: fill.archive_expires_at,
            };
            let won = state
                .store
                .change_document_status(
                    &document_id,
                    DocumentStatus::Waiting,
                    DocumentStatus::Signed,
                    Some(&signed),
                    state.clock.now(),
                )
                .await;
            // Only now may another attempt take the file.
            let (new_version, superseded) = (fill.new_version, fill.superseded.clone());
            let signed_blob = fill.blob.clone();
            drop(fill);
            // On an object store the signature is a new object: removed again when its commit
            // lost, and the prepared object it supersedes removed once the row no longer names
            // it. A commit that failed may still have landed (a connection lost after COMMIT),
            // so its object is left to the orphan sweep, which asks the row.
            if !won? {
                if new_version {
                    let _ = state.blobs.remove(&signed_blob);
                }
                return Err(ApiError::illegal(
                    "the document was signed, rejected or deleted by another request meanwhile",
                ));
            }
            if let Some(superseded) = superseded {
                let _ = state.blobs.remove(&superseded);
            }
            Ok(())
        }
        .in_current_span(),
    )
    .await
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e).context("signing task failed")))??;
    tracing::info!("document signed");
    crate::telemetry::metrics::signature_made("cloudsigner", level);
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
        let document = match state.reads.document(&document_id, retried).await? {
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
        // Files: a small signed file is answered from memory (read once), a larger one streams
        // from disk. Objects stream from the bucket.
        let served = match state.blobs.files() {
            Some(files) => {
                let file = StoredFile {
                    path: files.path(blob),
                    len: size,
                    content_type: "application/pdf",
                    etag,
                };
                match state.reads.signed_file(blob, size, file.path.clone()).await {
                    Ok(Some(bytes)) => ranged::serve_from_memory(file, bytes, &headers),
                    Ok(None) => ranged::serve(file, &headers).await,
                    Err(e) => Err(e),
                }
            }
            None => {
                blob_download::serve(&state.blobs, blob, size, "application/pdf", etag, &headers)
                    .await
            }
        };
        match served {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !retried => retried = true,
            served => return served.map_err(io_error("reading the signed PDF")),
        }
    }
}
