//! The documents service: the CloudSigner protocol for one document. Receive (the upload reader
//! hands over the file, in memory or in a temporary blob), prepare (`signet-pdf`'s signature
//! revision, for an ACTIVE signer's current certificate), record (the row, WAITING), sign (the
//! device's signature verified against that certificate, the CMS filled in place under `flock`
//! on files or written as a new object on a bucket, raised to its PAdES level, and the row moved
//! WAITING → SIGNED with a compare-and-set), reject and delete. The CloudSigner handlers parse
//! the request, call these and map [`DocumentError`] to the response; the service takes its own
//! dependencies (store, blobs, CA, clock, level finisher), never `AppState`.

use std::sync::Arc;

use signet_pdf::{ByteRange, PdfError, PrepareOptions};
use tracing::Instrument;

use super::levels::{LevelError, LevelFinisher};
use super::received::{Received, ReceivedFile};
use crate::clock::Clock;
use crate::domain::document::DocumentTransitionError;
use crate::domain::{
    DocumentId, DocumentStatus, Sha256Digest, SignatureLevel, SignerId, SignerStatus,
};
use crate::pki::Pki;
use crate::store::blob_backend::Blobs;
use crate::store::blobs::{BlobKey, BlobStore};
use crate::store::{DocumentRecord, SignedFile, Store};

/// Why an uploaded file is not taken as a document.
#[derive(Debug, thiserror::Error)]
pub enum UploadRefusal {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a PDF: it does not start with %PDF-")]
    NotPdf,
    /// The engine refused to prepare it (what it cannot prepare it could not sign later), or
    /// failed on it; the API tells the two apart.
    #[error(transparent)]
    Pdf(PdfError),
}

/// What the document's or signer's state does not allow now.
#[derive(Debug, thiserror::Error)]
pub enum DocumentRefusal {
    #[error("signer {signer_id} is {status} and cannot sign; only an ACTIVE signer can")]
    SignerCannotUpload {
        signer_id: SignerId,
        status: SignerStatus,
    },
    #[error("signer {signer_id} is {status} and cannot sign")]
    SignerCannotSign {
        signer_id: SignerId,
        status: SignerStatus,
    },
    #[error(transparent)]
    Status(#[from] DocumentTransitionError),
    #[error("the certificate this document was prepared for has been revoked (the signer enrolled a new key); upload the document again")]
    CertificateRevoked,
    /// A racing request won the compare-and-set (or made the document leave WAITING first).
    #[error("the document was signed, rejected or deleted by another request meanwhile")]
    ChangedMeanwhile,
    /// A racing request signed or deleted the document before this one could take its file.
    #[error("the document was signed or deleted by another request meanwhile")]
    SignedOrDeletedMeanwhile,
    /// Another request holds the prepared file's lock.
    #[error("the document is being signed by another request")]
    BeingSigned,
    #[error("the document changed while it was being rejected; read it and try again")]
    ChangedWhileRejecting,
}

/// Why a document operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// No such document, or a deleted one.
    #[error("no document {0}")]
    NotFound(DocumentId),
    #[error("no signer {0}")]
    NoSigner(SignerId),
    #[error(transparent)]
    Upload(#[from] UploadRefusal),
    #[error(transparent)]
    Refused(#[from] DocumentRefusal),
    /// The device's signature does not verify against the certificate over the data to be
    /// signed.
    #[error("the signature does not verify against the signer's certificate over the data to be signed (hash): {0}")]
    InvalidSignature(String),
    /// The level needs a timestamp or validation data that cannot be had now: nothing was
    /// committed and the document is still WAITING.
    #[error("{0}; the document is still WAITING, try again later")]
    TimestampUnavailable(LevelError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::store::StoreError> for DocumentError {
    fn from(error: crate::store::StoreError) -> Self {
        DocumentError::Internal(error.into())
    }
}

/// A level that cannot be reached now is the outside world's; anything else is ours.
impl From<LevelError> for DocumentError {
    fn from(error: LevelError) -> Self {
        if error.is_unavailable() {
            DocumentError::TimestampUnavailable(error)
        } else {
            DocumentError::Internal(anyhow::Error::new(error).context("finishing the signature"))
        }
    }
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> DocumentError {
    move |e| DocumentError::Internal(anyhow::Error::new(e).context(context))
}

fn embed_error(e: PdfError) -> DocumentError {
    DocumentError::Internal(anyhow::Error::new(e).context("embedding the CMS"))
}

/// Runs blocking work (file I/O, parsing, hashing) off the async executor, in the caller's span.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DocumentError> + Send + 'static,
) -> Result<T, DocumentError> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| anyhow::Error::new(e).context("blocking task failed"))?
}

/// A document as an upload names it.
pub struct NewDocument {
    pub signer_id: SignerId,
    /// The client's own reference; empty counts as none.
    pub external_id: Option<String>,
    /// A display name; empty counts as none.
    pub name: Option<String>,
    pub file: ReceivedFile,
}

/// Everything the document operations need. Cheap to clone: everything inside is shared (a
/// signature's commit runs as a task of its own, holding a clone).
#[derive(Clone)]
pub struct DocumentService {
    store: Arc<dyn Store>,
    blobs: Arc<Blobs>,
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
    levels: Arc<LevelFinisher>,
}

impl DocumentService {
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<Blobs>,
        pki: Arc<Pki>,
        clock: Arc<dyn Clock>,
        levels: Arc<LevelFinisher>,
    ) -> Self {
        Self {
            store,
            blobs,
            pki,
            clock,
            levels,
        }
    }

    /// Prepares an uploaded PDF for the signer's current certificate and records it WAITING:
    /// the record's `signed_attributes` are what the device signs. Records `document.id` in the
    /// caller's span.
    pub async fn upload(&self, new: NewDocument) -> Result<DocumentRecord, DocumentError> {
        let NewDocument {
            signer_id,
            external_id,
            name,
            file,
        } = new;
        let ReceivedFile {
            content,
            file_name,
            size,
            ..
        } = file;
        if size == 0 {
            return Err(UploadRefusal::Empty.into());
        }
        let (signer, certificate) = self
            .store
            .find_signer_with_certificate(&signer_id)
            .await?
            .ok_or_else(|| DocumentError::NoSigner(signer_id.clone()))?;
        if !signer.status.can_sign() {
            return Err(DocumentRefusal::SignerCannotUpload {
                signer_id,
                status: signer.status,
            }
            .into());
        }

        let document_id = DocumentId::new_random();
        tracing::Span::current().record("document.id", tracing::field::display(&document_id));
        // Room for a signature timestamp whatever the level: the client names the level only when
        // it posts the signature, and the placeholder cannot grow then. 8 KiB of DER (16 KiB of
        // hex zeros) more per prepared file is cheaper than a document that has to be uploaded
        // again.
        let mut options = PrepareOptions::new(self.clock.now()).with_timestamp_reserve();
        // Unique per upload: the same PDF uploaded twice in one second for one signer must not
        // get the same data to be signed, or a signature for one could be posted for the other.
        options.update_id = Some(*document_id.as_bytes());
        // Dropped with this future when the client hangs up: the preparation stops too.
        let _cancel_on_hang_up = options.cancel.cancel_on_drop();
        let blobs = self.blobs.clone();
        let certificate_der = certificate.der.clone();
        let (prepared, signed_attributes, prepared_blob) = blocking(move || {
            // A small upload is parsed from memory and written once, with its revision; a large
            // one is already on disk and gets the revision appended to it.
            let (temp, handle, prepared) = match content {
                Received::InMemory(bytes) => {
                    if !bytes.starts_with(b"%PDF-") {
                        return Err(UploadRefusal::NotPdf.into());
                    }
                    let (temp, mut handle) = blobs.create_temp().map_err(io_error("temp file"))?;
                    let prepared = signet_pdf::prepare(
                        std::io::Cursor::new(&bytes[..]),
                        &mut handle,
                        &options,
                    )
                    .map_err(UploadRefusal::Pdf)?;
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
                        return Err(UploadRefusal::NotPdf.into());
                    }
                    let prepared = signet_pdf::prepare_appending(&mut handle, &options)
                        .map_err(UploadRefusal::Pdf)?;
                    (temp, handle, prepared)
                }
            };
            let signed_attributes =
                signet_crypto::cms::signed_attributes_der(&prepared.digest, &certificate_der)
                    .map_err(|e| anyhow::Error::new(e).context("SignedAttributes"))?;
            let key = BlobKey::prepared(document_id);
            blobs
                .persist(temp, &handle, &key)
                .map_err(io_error("storing the prepared PDF"))?;
            Ok((prepared, signed_attributes, key))
        })
        .await?;

        let record = DocumentRecord {
            document_id,
            signer_id,
            external_id: external_id.filter(|v| !v.is_empty()),
            name: name.filter(|v| !v.is_empty()),
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
            created_at: self.clock.now(),
        };
        if let Err(error) = self.store.insert_document(&record).await {
            let _ = self.blobs.remove_document(document_id);
            return Err(error.into());
        }
        tracing::info!(size, "document prepared");
        Ok(record)
    }

    /// A document the client may still see: unknown and deleted documents are both `NotFound`.
    async fn live_document(
        &self,
        document_id: DocumentId,
    ) -> Result<DocumentRecord, DocumentError> {
        match self.store.find_document(&document_id).await? {
            Some(document) if document.status != DocumentStatus::Deleted => Ok(document),
            _ => Err(DocumentError::NotFound(document_id)),
        }
    }

    /// Reads the live document and moves it to `to` with a compare-and-set on the status it was
    /// read in: the document as read when the move applied, `None` when a racing request changed
    /// the status first. A move the status machine refuses is a refusal.
    async fn move_live_document(
        &self,
        document_id: DocumentId,
        to: DocumentStatus,
    ) -> Result<Option<DocumentRecord>, DocumentError> {
        let document = self.live_document(document_id).await?;
        let to = document
            .status
            .transition(to)
            .map_err(DocumentRefusal::from)?;
        let changed = self
            .store
            .change_document_status(
                &document.document_id,
                document.status,
                to,
                None,
                self.clock.now(),
            )
            .await?;
        Ok(changed.then_some(document))
    }

    /// Rejects a document that is still waiting for its signature; the document as it was read.
    pub async fn reject(&self, document_id: DocumentId) -> Result<DocumentRecord, DocumentError> {
        self.move_live_document(document_id, DocumentStatus::Rejected)
            .await?
            .ok_or_else(|| DocumentRefusal::ChangedWhileRejecting.into())
    }

    /// Deletes a document and its files, whatever its status.
    pub async fn delete(&self, document_id: DocumentId) -> Result<(), DocumentError> {
        // A delete succeeds whatever the state (the spec's 204). A racing request may change the
        // state between the read and the compare-and-set (a signature landing: WAITING → SIGNED);
        // read it again and delete what it has become. Every state but DELETED leads to DELETED
        // and a document changes state at most twice, so three rounds settle it; once another
        // delete has won, `live_document` answers `NotFound`. An in-flight signature whose commit
        // loses to this delete finds the row DELETED and answers its own refusal; one that won is
        // simply deleted.
        let mut deleted = None;
        for _ in 0..3 {
            deleted = self
                .move_live_document(document_id, DocumentStatus::Deleted)
                .await?;
            if deleted.is_some() {
                break;
            }
        }
        let document = deleted.ok_or_else(|| {
            anyhow::anyhow!("the document kept changing state while it was being deleted")
        })?;
        let blobs = self.blobs.clone();
        let document_id = document.document_id;
        blocking(move || {
            blobs
                .remove_document(document_id)
                .map_err(io_error("removing the document's files"))
        })
        .await
    }

    /// Signs a WAITING document with the device's signature over its `signed_attributes`:
    /// verified against the certificate the document was prepared for, embedded as a PAdES
    /// signature raised to `level`, and committed with the WAITING → SIGNED compare-and-set. Of
    /// racing attempts exactly one wins; the others are refused and leave nothing behind.
    pub async fn sign(
        &self,
        document_id: DocumentId,
        device_signature: Vec<u8>,
        level: SignatureLevel,
    ) -> Result<(), DocumentError> {
        let (document, signer_status, certificate) = self
            .store
            .find_document_for_signing(&document_id)
            .await?
            .filter(|(document, _, _)| document.status != DocumentStatus::Deleted)
            .ok_or(DocumentError::NotFound(document_id))?;
        document
            .status
            .transition(DocumentStatus::Signed)
            .map_err(DocumentRefusal::from)?;
        if !signer_status.can_sign() {
            return Err(DocumentRefusal::SignerCannotSign {
                signer_id: document.signer_id.clone(),
                status: signer_status,
            }
            .into());
        }
        if certificate.revoked_at.is_some() {
            return Err(DocumentRefusal::CertificateRevoked.into());
        }

        let prepared_blob = document
            .prepared_blob
            .clone()
            .ok_or_else(|| anyhow::anyhow!("waiting document without its file"))?;
        let ca_der = self.pki.ca().certificate_der().to_vec();
        let byte_range = ByteRange(document.byte_range);
        let levels = self.levels.clone();
        let runtime = tokio::runtime::Handle::current();
        let verify_and_fill = move |blobs: Arc<Blobs>| -> Result<Fill, DocumentError> {
            let verified = signet_crypto::verify::verify_with_certificate(
                &certificate.der,
                &document.signed_attributes,
                &device_signature,
            )
            .map_err(|e| DocumentError::InvalidSignature(e.to_string()))?;
            let cms = signet_crypto::cms::signed_data_der(
                &document.signed_attributes,
                &verified.signature,
                verified.algorithm,
                &certificate.der,
                &[&ca_der],
            )
            .map_err(|e| anyhow::Error::new(e).context("building SignedData"))?;
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
        let service = self.clone();
        tokio::spawn(
            async move {
                let blobs = service.blobs.clone();
                let mut fill = blocking(move || verify_and_fill(blobs)).await?;
                if fill.stale {
                    // Under the lock no live attempt is running, so a filled placeholder is left
                    // from one that never committed, unless the document has left WAITING since.
                    let current = service.store.find_document(&document_id).await?;
                    if current.is_none_or(|current| current.status != DocumentStatus::Waiting) {
                        return Err(DocumentRefusal::ChangedMeanwhile.into());
                    }
                    fill = blocking(move || fill.refill()).await?;
                }
                let signed = SignedFile {
                    blob: fill.blob.clone(),
                    size: fill.len,
                    archive_expires_at: fill.archive_expires_at,
                };
                let won = service
                    .store
                    .change_document_status(
                        &document_id,
                        DocumentStatus::Waiting,
                        DocumentStatus::Signed,
                        Some(&signed),
                        service.clock.now(),
                    )
                    .await;
                // Only now may another attempt take the file.
                let (new_version, superseded) = (fill.new_version, fill.superseded.clone());
                let signed_blob = fill.blob.clone();
                drop(fill);
                // On an object store the signature is a new object: removed again when its commit
                // lost, and the prepared object it supersedes removed once the row no longer
                // names it. A commit that failed may still have landed (a connection lost after
                // COMMIT), so its object is left to the orphan sweep, which asks the row.
                if !won? {
                    if new_version {
                        let _ = service.blobs.remove(&signed_blob);
                    }
                    return Err(DocumentRefusal::ChangedMeanwhile.into());
                }
                if let Some(superseded) = superseded {
                    let _ = service.blobs.remove(&superseded);
                }
                Ok::<(), DocumentError>(())
            }
            .in_current_span(),
        )
        .await
        .map_err(|e| anyhow::Error::new(e).context("signing task failed"))??;
        tracing::info!("document signed");
        crate::telemetry::metrics::signature_made("cloudsigner", level);
        Ok(())
    }
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
    levels: Arc<LevelFinisher>,
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
    levels: Arc<LevelFinisher>,
    runtime: tokio::runtime::Handle,
}

impl Fill {
    /// Opens and locks the prepared file and fills its placeholder with `cms` at `level`,
    /// durably, unless it is already filled (`stale`). Blocking.
    fn claim(
        files: &BlobStore,
        blob: &BlobKey,
        signature: Signature,
    ) -> Result<Self, DocumentError> {
        let Signature {
            byte_range,
            cms,
            level,
            levels,
            runtime,
        } = signature;
        let lost = || DocumentError::from(DocumentRefusal::SignedOrDeletedMeanwhile);
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
            std::fs::TryLockError::WouldBlock => DocumentRefusal::BeingSigned.into(),
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
    ) -> Result<Self, DocumentError> {
        let (temp, file) = blobs.copy_to_temp(prepared).map_err(|e| match e.kind() {
            // A racing request signed or deleted this document first.
            std::io::ErrorKind::NotFound => DocumentRefusal::SignedOrDeletedMeanwhile.into(),
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
    fn finish(&mut self) -> Result<(), DocumentError> {
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
                Err(error.into())
            }
        }
    }

    /// Cuts the file back to the prepared revision and empties its placeholder.
    fn reset(&mut self) -> Result<(), DocumentError> {
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
    fn refill(mut self) -> Result<Self, DocumentError> {
        self.reset()?;
        self.finish()?;
        self.stale = false;
        Ok(self)
    }

    /// The fill reaches the disk before the row says SIGNED. The file's length and name are
    /// unchanged (both made durable at upload), so its data is all there is to flush.
    fn sync(&self) -> Result<(), DocumentError> {
        self.file
            .sync_data()
            .map_err(io_error("storing the signed PDF"))
    }
}
