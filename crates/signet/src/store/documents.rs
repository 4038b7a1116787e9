//! What the store keeps of CloudSigner documents: the upload's facts, the prepared signature
//! revision and where its bytes are, and the [`DocumentStore`] trait the documents path needs.

use async_trait::async_trait;
use signet_crypto::ca::SerialNumber;
use std::collections::HashSet;
use time::OffsetDateTime;

use super::blobs::BlobKey;
use super::signers::CertificateRecord;
use super::StoreResult;
use crate::domain::{DocumentId, DocumentStatus, Sha256Digest, SignerId, SignerStatus};

/// A CloudSigner document as stored: the upload's facts, the prepared signature revision and
/// where its bytes are.
#[derive(Debug, Clone)]
pub struct DocumentRecord {
    pub document_id: DocumentId,
    pub signer_id: SignerId,
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub file_name: String,
    /// Size of the upload, in bytes.
    pub size: u64,
    /// SHA-256 of the upload.
    pub sha256: Sha256Digest,
    pub status: DocumentStatus,
    /// The DER SignedAttributes the device signs (the API's `hash`), verbatim.
    pub signed_attributes: Vec<u8>,
    /// The prepared revision's `/ByteRange`.
    pub byte_range: [u64; 4],
    /// The certificate the SignedAttributes reference; the signature is verified against it.
    pub certificate_serial: SerialNumber,
    /// The prepared PDF while the document waits; `None` once signed or deleted.
    pub prepared_blob: Option<BlobKey>,
    /// The signed PDF once signed.
    pub signed_blob: Option<BlobKey>,
    pub signed_size: Option<u64>,
    pub created_at: OffsetDateTime,
}

/// The file a successful signature produced, recorded with the WAITING → SIGNED change.
#[derive(Debug, Clone)]
pub struct SignedFile {
    pub blob: BlobKey,
    pub size: u64,
    /// When the file's last document timestamp must be renewed by (B-LTA files only).
    pub archive_expires_at: Option<OffsetDateTime>,
}

/// CloudSigner documents, and which blobs rows still name.
#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// A document with its signer's status and the certificate it was prepared for, in one read
    /// (the signing path).
    async fn find_document_for_signing(
        &self,
        document_id: &DocumentId,
    ) -> StoreResult<Option<(DocumentRecord, SignerStatus, CertificateRecord)>>;

    async fn insert_document(&self, document: &DocumentRecord) -> StoreResult<()>;
    async fn find_document(&self, document_id: &DocumentId) -> StoreResult<Option<DocumentRecord>>;
    /// Of `keys`, those a document or order row names (each row read whole, so a key moving
    /// from a document's prepared to its signed column is never missed). A key whose owner
    /// cannot be told is reported as named: the orphan sweep removes only what this leaves out,
    /// so every column that names a blob must be read here.
    async fn referenced_blobs(&self, keys: &[BlobKey]) -> StoreResult<HashSet<BlobKey>>;
    /// Changes a document's status only if it is still `from` (compare-and-set): of two racing
    /// changes exactly one returns `true`. SIGNED records `signed` and forgets the prepared blob;
    /// DELETED forgets both blobs.
    async fn change_document_status(
        &self,
        document_id: &DocumentId,
        from: DocumentStatus,
        to: DocumentStatus,
        signed: Option<&SignedFile>,
        now: OffsetDateTime,
    ) -> StoreResult<bool>;
}
