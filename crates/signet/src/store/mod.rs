//! Persistence: one [`Store`] trait for everything Signet keeps in a database, one portable SQL
//! implementation ([`sql::SqlStore`]) on SQLite or PostgreSQL, and the blob store for document bytes
//! ([`blob_backend::Blobs`]: files in the data directory, or an S3-compatible bucket).
//!
//! Why one implementation: the SQL we need is portable (TEXT ids, BIGINT unix seconds, BLOB/BYTEA),
//! so both databases run the same statements through sqlx's `Any` driver. What differs —
//! connection set-up, how a transaction takes its write lock, how a job claims rows — lives in
//! [`sqlite`] and [`postgres`] behind [`Dialect`]. The story test in `tests/api/store_story.rs`
//! runs one scenario against both to keep them equal.

pub mod archive;
pub mod blob_backend;
pub mod blobs;
pub mod changes;
mod group_commit;
pub mod installation;
pub mod objects;
pub mod operator;
pub mod orders;
pub mod outbox;
pub mod postgres;
pub mod sql;
pub mod sqlite;
pub mod stats;

use async_trait::async_trait;
use signet_crypto::ca::{RevocationReason, SerialNumber};
use std::collections::HashSet;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::domain::{
    DocumentId, DocumentStatus, OrderId, OrderOption, OrderState, Sha256Digest, SignerId,
    SignerStatus, TransitionError, UserId,
};
use blobs::BlobKey;
use orders::{
    AnonymizeOutcome, AnonymizeTarget, EventRecord, LoginRecord, NewOrder, NewOrderSigner,
    OrderChange, OrderDocument, OrderRecord, OrderUpdate, RecordedSignature, SignatureOutcome,
};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Failures of the persistence layer. Client mistakes never surface as these: the domain and the
/// API refuse them first, so every variant here is an operator-level problem (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("issuing a certificate inside a job failed: {0}")]
    Issuing(String),
    #[error("the batched write failed: {0}")]
    GroupCommit(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A signer as stored.
#[derive(Debug, Clone)]
pub struct SignerRecord {
    pub signer_id: SignerId,
    pub user_id: UserId,
    pub status: SignerStatus,
    pub csr_der: Vec<u8>,
    pub current_serial: SerialNumber,
    pub not_after: OffsetDateTime,
    pub renew_after: OffsetDateTime,
}

/// Why a certificate was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedFor {
    /// From a CSR the device sent.
    Enrollment,
    /// The same public key re-certified by the renewal job.
    Renewal,
}

impl IssuedFor {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedFor::Enrollment => "ENROLLMENT",
            IssuedFor::Renewal => "RENEWAL",
        }
    }
}

/// One certificate in a signer's history.
#[derive(Debug, Clone)]
pub struct CertificateRecord {
    pub serial: SerialNumber,
    pub signer_id: SignerId,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    pub issued_for: IssuedFor,
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<RevocationReason>,
}

/// A certificate that is ready to be stored: issued, not yet persisted.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub serial: SerialNumber,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// When the renewal job should re-certify this key.
    pub renew_after: OffsetDateTime,
}

/// A request to enroll (or re-enroll) a signer with a freshly issued certificate.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub signer_id: SignerId,
    pub user_id: UserId,
    pub csr_der: Vec<u8>,
    pub certificate: NewCertificate,
}

/// What an enrollment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// A new signer was created.
    Created,
    /// An ACTIVE or BLOCKED signer got a new certificate; its earlier certificates were revoked
    /// as superseded (their serials are returned so the CRL can be refreshed).
    Replaced { superseded: Vec<SerialNumber> },
    /// The signer exists in a state that refuses enrollment (REVOKED, REMOVED, EXPIRED).
    Refused(SignerStatus),
}

/// What a client's status change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    NotFound,
    Illegal(TransitionError),
    /// Applied; `revoked` lists certificates revoked by it (REVOKED and REMOVED revoke).
    Applied {
        from: SignerStatus,
        to: SignerStatus,
        revoked: Vec<SerialNumber>,
    },
}

/// A revoked certificate, as the CRL needs it.
#[derive(Debug, Clone)]
pub struct RevokedRecord {
    pub serial: SerialNumber,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// A certificate Signet's CA issued for one signing-order signature: what the OCSP responder
/// needs to answer for it (the DER is not kept; its subject names the person).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCertificateRecord {
    pub serial: SerialNumber,
    pub order_id: OrderId,
    /// The position of the signer's task on the order; `None` for certificates recorded before
    /// the signer was kept (migration 0009).
    pub signer_position: Option<i64>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    pub revocation_reason: Option<RevocationReason>,
}

/// A signed CRL.
#[derive(Debug, Clone)]
pub struct CrlRecord {
    pub number: u64,
    pub der: Vec<u8>,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

/// A signer whose certificate is due for renewal, handed to the renewal callback while its row is claimed.
#[derive(Debug, Clone)]
pub struct DueRenewal {
    pub signer_id: SignerId,
    pub csr_der: Vec<u8>,
    pub current_serial: SerialNumber,
}

/// Issues the renewed certificate for a claimed signer. Runs inside the claiming transaction, so it
/// must be quick and pure (no I/O): it is the CA signing a certificate.
pub type RenewFn<'a> = dyn Fn(&DueRenewal) -> Result<NewCertificate, String> + Send + Sync + 'a;

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

/// Everything Signet persists in its database (the outbox's part through [`outbox::OutboxStore`]).
#[async_trait]
pub trait Store:
    outbox::OutboxStore
    + archive::ArchiveStore
    + stats::StatsStore
    + installation::InstallationStore
    + Send
    + Sync
    + 'static
{
    fn dialect(&self) -> Dialect;

    /// The change signal the read caches check (see [`changes`]).
    fn changes(&self) -> Arc<changes::Changes>;

    /// Stores the hash of a new API key.
    async fn insert_api_key(
        &self,
        id: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn api_key_hash_exists(&self, key_hash: &str) -> StoreResult<bool>;
    async fn count_api_keys(&self) -> StoreResult<i64>;

    async fn find_signer(&self, signer_id: &SignerId) -> StoreResult<Option<SignerRecord>>;
    /// The signer's certificates, oldest first.
    async fn certificates_of(&self, signer_id: &SignerId) -> StoreResult<Vec<CertificateRecord>>;
    async fn find_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<CertificateRecord>>;

    /// Creates the signer or replaces its certificate, atomically with the status check.
    async fn enroll(
        &self,
        enrollment: &Enrollment,
        now: OffsetDateTime,
    ) -> StoreResult<EnrollOutcome>;

    /// Applies a client's status change through the state machine, revoking certificates when
    /// the new status asks for it, in one transaction.
    async fn change_signer_status(
        &self,
        signer_id: &SignerId,
        requested: SignerStatus,
        revocation_reason: RevocationReason,
        now: OffsetDateTime,
    ) -> StoreResult<StatusChange>;

    async fn revoked_certificates(&self) -> StoreResult<Vec<RevokedRecord>>;
    async fn latest_crl(&self) -> StoreResult<Option<CrlRecord>>;
    /// Stores a CRL unless one with that number exists already (another replica won); returns whether it was stored.
    async fn insert_crl(&self, crl: &CrlRecord) -> StoreResult<bool>;

    /// Records a certificate issued for a signing-order signature (before it signs anything, so
    /// the OCSP responder knows it by the time a B-LT collector asks).
    async fn insert_signature_certificate(
        &self,
        certificate: &SignatureCertificateRecord,
    ) -> StoreResult<()>;
    /// The signing-order signature certificate with this serial, if Signet issued one.
    async fn find_signature_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<SignatureCertificateRecord>>;
    /// Revokes, at `now` for `reason`, every certificate issued for the signature of the signer at
    /// `signer_position` on `order_id` that is not revoked yet (an earlier revocation keeps its
    /// time and reason). Returns all of that signer's certificates as they are afterwards, each
    /// with whether this call revoked it.
    async fn revoke_signature_certificates(
        &self,
        order_id: &OrderId,
        signer_position: i64,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(SignatureCertificateRecord, bool)>>;

    /// Claims up to `limit` ACTIVE signers whose renewal time has come (rows another process holds
    /// are skipped), re-certifies each with `renew`, and stores the results. Returns how many were renewed.
    async fn renew_due(
        &self,
        now: OffsetDateTime,
        limit: i64,
        renew: &RenewFn<'_>,
    ) -> StoreResult<usize>;

    /// Moves ACTIVE/BLOCKED signers whose current certificate expired to EXPIRED; returns them.
    async fn expire_due(&self, now: OffsetDateTime) -> StoreResult<Vec<SignerId>>;

    /// A signer with its current certificate, in one read (the upload path).
    async fn find_signer_with_certificate(
        &self,
        signer_id: &SignerId,
    ) -> StoreResult<Option<(SignerRecord, CertificateRecord)>>;
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

    // Signing orders (the Automation API). Each change writes its events in its transaction.

    /// Stores a new order with its signers' tasks (the first priority group PENDING, the rest
    /// QUEUED), creating logins for people met for the first time.
    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> StoreResult<()>;
    async fn find_order(&self, order_id: &OrderId) -> StoreResult<Option<OrderRecord>>;
    /// Just the state: the application's polling question, answered with one indexed read.
    async fn order_state(&self, order_id: &OrderId) -> StoreResult<Option<OrderState>>;
    /// Deletes the order and its tasks (events stay); returns its document for the blob store.
    async fn delete_order(
        &self,
        order_id: &OrderId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OrderDocument>>;
    /// Changes metadata, replaces the unsigned document, or cancels a PENDING order.
    async fn update_order(
        &self,
        order_id: &OrderId,
        update: &OrderUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange>;
    /// Replaces the signer list: signers who acted must stay, new ones may not precede the
    /// group signing now. `options`, when given, replace the order's options.
    async fn replace_order_signers(
        &self,
        order_id: &OrderId,
        signers: &[NewOrderSigner],
        options: Option<&[OrderOption]>,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange>;
    /// Records a signer's signature if the order is still at the revision it was built on.
    async fn record_order_signature(
        &self,
        order_id: &OrderId,
        signature: &RecordedSignature,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome>;
    /// A signer rejects: the order ends REJECTED.
    async fn reject_order(
        &self,
        order_id: &OrderId,
        position: i64,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome>;
    /// Claims up to `limit` PENDING orders whose due date has passed and expires them.
    async fn expire_due_orders(&self, now: OffsetDateTime, limit: i64)
        -> StoreResult<Vec<OrderId>>;
    async fn anonymize(
        &self,
        target: &AnonymizeTarget,
        now: OffsetDateTime,
    ) -> StoreResult<AnonymizeOutcome>;
    async fn order_events(&self, order_id: &OrderId) -> StoreResult<Vec<EventRecord>>;
    async fn events_named(&self, name: &str) -> StoreResult<Vec<EventRecord>>;
    async fn find_login(&self, internal_id: &str) -> StoreResult<Option<LoginRecord>>;
    /// The order whose signer's link has this token hash, and that signer's position, in one
    /// read (the signer pages' lookup).
    async fn find_order_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(OrderRecord, i64)>>;
    /// Stores a fresh one-time code for a task (its hash and expiry; attempts back to zero).
    /// False when there is no such task.
    async fn set_signer_otp(
        &self,
        order_id: &OrderId,
        position: i64,
        otp_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool>;
    /// Spends one attempt on the task's code and returns its hash, or `None` when there is no
    /// live code with attempts left (none sent, expired, or `max_attempts` spent).
    async fn spend_signer_otp_attempt(
        &self,
        order_id: &OrderId,
        position: i64,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Option<String>>;
    /// Forgets the task's code (it was used).
    async fn clear_signer_otp(&self, order_id: &OrderId, position: i64) -> StoreResult<()>;
}

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`) and brings its schema up to date.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = connect_sql(url).await?;
    Ok(store)
}

/// [`connect`], keeping the concrete store (the operator commands also use [`operator::OperatorStore`]).
pub async fn connect_sql(url: &str) -> anyhow::Result<Arc<sql::SqlStore>> {
    use anyhow::Context;
    let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        // The host is named, never the URL: it may carry the password.
        let host = database_host(url);
        match postgres::connect(url).await {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut)) => anyhow::bail!(
                "connecting to PostgreSQL at {host}: no answer within {} s",
                postgres::CONNECT_TIMEOUT.as_secs()
            ),
            result => result.with_context(|| format!("connecting to PostgreSQL at {host}"))?,
        }
    } else if url.starts_with("sqlite:") {
        sqlite::connect(url)
            .await
            .context("opening the SQLite database")?
    } else {
        anyhow::bail!("unsupported database URL: expected sqlite:… or postgres://…");
    };
    Ok(Arc::new(store))
}

/// `host:port` of a PostgreSQL URL, for messages (never the user or password).
pub fn database_host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432)
        ),
        Err(_) => "an unparsable URL".to_owned(),
    }
}
