//! What the store keeps of CloudSigner signers: the signer rows, every certificate the CA issued
//! them (and the certificates it issued for signing-order signatures), the CRLs, and the
//! [`SignerStore`] trait the enrollment, status, renewal, expiry and PKI code needs.

use async_trait::async_trait;
use signet_crypto::ca::{RevocationReason, SerialNumber};
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::{OrderId, SignerId, SignerStatus, TransitionError, UserId};

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

/// Signers, their certificates, signature certificates and CRLs.
#[async_trait]
pub trait SignerStore: Send + Sync {
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
}
