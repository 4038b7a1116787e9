//! Signers, their certificates, signature certificates and CRLs in SQL ([`SignerStore`]).
//! Rows are read into `FromRow` structs that mirror the columns and are parsed into the records
//! in one place each, so a corrupt value is reported, never guessed.

use async_trait::async_trait;
use signet_crypto::ca::{RevocationReason, SerialNumber};
use sqlx::AnyConnection;
use time::OffsetDateTime;

use super::{from_unix, to_unix, SqlStore};
use crate::domain::{OrderId, SignerId, SignerStatus, UserId};
use crate::store::signers::{
    CertificateRecord, CrlRecord, DueRenewal, EnrollOutcome, Enrollment, IssuedFor, NewCertificate,
    RenewFn, RevokedRecord, SignatureCertificateRecord, SignerRecord, SignerStore, StatusChange,
};
use crate::store::{Dialect, StoreError, StoreResult};

/// The columns [`SignerRow`] reads (a macro so the statements below stay `const` literals).
macro_rules! signer_columns {
    () => {
        "signer_id, user_id, status, csr_der, current_serial, not_after, renew_after"
    };
}
/// The columns [`CertificateRow`] reads.
macro_rules! certificate_columns {
    () => {
        "serial, signer_id, der, not_before, not_after, issued_at, issued_for, revoked_at, \
         revocation_reason"
    };
}
/// The columns [`SignatureCertificateRow`] reads.
macro_rules! signature_certificate_columns {
    () => {
        "serial, order_id, signer_position, not_before, not_after, issued_at, revoked_at, \
         revocation_reason"
    };
}
/// A certificate's columns from the table aliased `c`, each renamed `c_<column>` (joins carry a
/// signer's or document's columns of the same names); read by [`JoinedCertificateRow`].
macro_rules! joined_certificate_columns {
    () => {
        "c.serial AS c_serial, c.signer_id AS c_signer_id, c.der AS c_der, \
         c.not_before AS c_not_before, c.not_after AS c_not_after, c.issued_at AS c_issued_at, \
         c.issued_for AS c_issued_for, c.revoked_at AS c_revoked_at, \
         c.revocation_reason AS c_revocation_reason"
    };
}
pub(super) use joined_certificate_columns;

const SELECT_SIGNER: &str = concat!(
    "SELECT ",
    signer_columns!(),
    " FROM signers WHERE signer_id = $1"
);
/// [`SELECT_SIGNER`] locking the row, inside a write transaction on PostgreSQL (SQLite's
/// `BEGIN IMMEDIATE` already made the transaction the only writer).
const SELECT_SIGNER_FOR_UPDATE: &str = concat!(
    "SELECT ",
    signer_columns!(),
    " FROM signers WHERE signer_id = $1 FOR UPDATE"
);
const SELECT_CERTIFICATES_OF: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    " FROM certificates WHERE signer_id = $1 ORDER BY issue_order, issued_at, serial"
);
const SELECT_CERTIFICATE: &str = concat!(
    "SELECT ",
    certificate_columns!(),
    " FROM certificates WHERE serial = $1"
);
const SELECT_SIGNER_WITH_CERTIFICATE: &str = concat!(
    "SELECT s.signer_id, s.user_id, s.status, s.csr_der, s.current_serial, s.not_after, \
     s.renew_after, ",
    joined_certificate_columns!(),
    " FROM signers s JOIN certificates c ON c.serial = s.current_serial WHERE s.signer_id = $1"
);
const INSERT_CERTIFICATE: &str = "INSERT INTO certificates (serial, signer_id, der, not_before, \
     not_after, issued_at, issued_for, issue_order) VALUES ($1, $2, $3, $4, $5, $6, $7, \
     (SELECT COALESCE(MAX(issue_order), 0) + 1 FROM certificates WHERE signer_id = $2))";
const SELECT_UNREVOKED_SERIALS: &str =
    "SELECT serial FROM certificates WHERE signer_id = $1 AND revoked_at IS NULL ORDER BY serial";
const REVOKE_ALL_OF: &str = "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
     WHERE signer_id = $3 AND revoked_at IS NULL";
const UPDATE_ENROLLED_SIGNER: &str = "UPDATE signers SET user_id = $1, csr_der = $2, \
     current_serial = $3, not_after = $4, renew_after = $5, updated_at = $6 WHERE signer_id = $7";
const INSERT_SIGNER: &str = "INSERT INTO signers (signer_id, user_id, status, csr_der, \
     current_serial, not_after, renew_after, created_at, updated_at) \
     VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $7)";
const UPDATE_SIGNER_STATUS: &str =
    "UPDATE signers SET status = $1, updated_at = $2 WHERE signer_id = $3";
/// Both kinds of certificate the CA issues: CloudSigner signers' and order signatures'.
const SELECT_REVOKED: &str = "SELECT serial, revoked_at, revocation_reason FROM certificates \
     WHERE revoked_at IS NOT NULL \
     UNION ALL SELECT serial, revoked_at, revocation_reason FROM signature_certificates \
     WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial";
const SELECT_LATEST_CRL: &str =
    "SELECT number, der, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1";
/// Another replica may have stored the same number first: then this one is not stored.
const INSERT_CRL: &str = "INSERT INTO crls (number, der, this_update, next_update) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (number) DO NOTHING";
const INSERT_SIGNATURE_CERTIFICATE: &str = "INSERT INTO signature_certificates (serial, order_id, \
     not_before, not_after, issued_at, revoked_at, revocation_reason, signer_position) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
const SELECT_SIGNATURE_CERTIFICATE: &str = concat!(
    "SELECT ",
    signature_certificate_columns!(),
    " FROM signature_certificates WHERE serial = $1"
);
const SELECT_SIGNATURE_CERTIFICATES_OF_SIGNER: &str = concat!(
    "SELECT ",
    signature_certificate_columns!(),
    " FROM signature_certificates WHERE order_id = $1 AND signer_position = $2 \
     ORDER BY issued_at, serial"
);
/// Only rows not revoked yet: a second revocation keeps the first's time and reason, which the
/// CRL and OCSP have already published.
const REVOKE_SIGNATURE_CERTIFICATES: &str = "UPDATE signature_certificates SET revoked_at = $1, \
     revocation_reason = $2 WHERE order_id = $3 AND signer_position = $4 AND revoked_at IS NULL";
const SELECT_DUE_RENEWALS: &str = "SELECT signer_id, csr_der, current_serial FROM signers \
     WHERE status = 'ACTIVE' AND renew_after <= $1 ORDER BY renew_after LIMIT $2";
/// [`SELECT_DUE_RENEWALS`] on PostgreSQL: rows another replica is renewing right now are
/// skipped, not waited for; once it commits, their renew_after lies in the future.
const SELECT_DUE_RENEWALS_SKIP_LOCKED: &str = "SELECT signer_id, csr_der, current_serial \
     FROM signers WHERE status = 'ACTIVE' AND renew_after <= $1 ORDER BY renew_after LIMIT $2 \
     FOR UPDATE SKIP LOCKED";
const UPDATE_RENEWED_SIGNER: &str = "UPDATE signers SET current_serial = $1, not_after = $2, \
     renew_after = $3, updated_at = $4 WHERE signer_id = $5";
const SELECT_EXPIRED: &str = "SELECT signer_id, status FROM signers \
     WHERE status IN ('ACTIVE', 'BLOCKED') AND not_after <= $1";
const SELECT_EXPIRED_SKIP_LOCKED: &str = "SELECT signer_id, status FROM signers \
     WHERE status IN ('ACTIVE', 'BLOCKED') AND not_after <= $1 FOR UPDATE SKIP LOCKED";

fn select_signer_for_update(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => SELECT_SIGNER,
        Dialect::Postgres => SELECT_SIGNER_FOR_UPDATE,
    }
}

pub(super) fn parse_serial(raw: &str) -> StoreResult<SerialNumber> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad certificate serial {raw:?}")))
}

pub(super) fn parse_status(raw: &str) -> StoreResult<SignerStatus> {
    raw.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

fn parse_reason(raw: &str) -> StoreResult<RevocationReason> {
    raw.parse().map_err(|e: String| StoreError::Corrupt(e))
}

pub(super) fn parse_signer_id(raw: &str) -> StoreResult<SignerId> {
    SignerId::parse(raw).map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))
}

fn optional_time(seconds: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    seconds.map(from_unix).transpose()
}

fn optional_reason(raw: Option<String>) -> StoreResult<Option<RevocationReason>> {
    raw.as_deref().map(parse_reason).transpose()
}

/// A `signers` row.
#[derive(sqlx::FromRow)]
pub(super) struct SignerRow {
    signer_id: String,
    user_id: String,
    status: String,
    csr_der: Vec<u8>,
    current_serial: String,
    not_after: i64,
    renew_after: i64,
}

impl TryFrom<SignerRow> for SignerRecord {
    type Error = StoreError;

    fn try_from(row: SignerRow) -> StoreResult<Self> {
        Ok(SignerRecord {
            signer_id: parse_signer_id(&row.signer_id)?,
            user_id: UserId::parse(&row.user_id)
                .map_err(|e| StoreError::Corrupt(format!("user id: {e}")))?,
            status: parse_status(&row.status)?,
            csr_der: row.csr_der,
            current_serial: parse_serial(&row.current_serial)?,
            not_after: from_unix(row.not_after)?,
            renew_after: from_unix(row.renew_after)?,
        })
    }
}

/// A `certificates` row.
#[derive(sqlx::FromRow)]
struct CertificateRow {
    serial: String,
    signer_id: String,
    der: Vec<u8>,
    not_before: i64,
    not_after: i64,
    issued_at: i64,
    issued_for: String,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
}

impl TryFrom<CertificateRow> for CertificateRecord {
    type Error = StoreError;

    fn try_from(row: CertificateRow) -> StoreResult<Self> {
        Ok(CertificateRecord {
            serial: parse_serial(&row.serial)?,
            signer_id: parse_signer_id(&row.signer_id)?,
            der: row.der,
            not_before: from_unix(row.not_before)?,
            not_after: from_unix(row.not_after)?,
            issued_at: from_unix(row.issued_at)?,
            issued_for: match row.issued_for.as_str() {
                "RENEWAL" => IssuedFor::Renewal,
                _ => IssuedFor::Enrollment,
            },
            revoked_at: optional_time(row.revoked_at)?,
            revocation_reason: optional_reason(row.revocation_reason)?,
        })
    }
}

/// A `certificates` row joined as `c` ([`joined_certificate_columns`]).
#[derive(sqlx::FromRow)]
pub(super) struct JoinedCertificateRow {
    c_serial: String,
    c_signer_id: String,
    c_der: Vec<u8>,
    c_not_before: i64,
    c_not_after: i64,
    c_issued_at: i64,
    c_issued_for: String,
    c_revoked_at: Option<i64>,
    c_revocation_reason: Option<String>,
}

impl TryFrom<JoinedCertificateRow> for CertificateRecord {
    type Error = StoreError;

    fn try_from(row: JoinedCertificateRow) -> StoreResult<Self> {
        CertificateRow {
            serial: row.c_serial,
            signer_id: row.c_signer_id,
            der: row.c_der,
            not_before: row.c_not_before,
            not_after: row.c_not_after,
            issued_at: row.c_issued_at,
            issued_for: row.c_issued_for,
            revoked_at: row.c_revoked_at,
            revocation_reason: row.c_revocation_reason,
        }
        .try_into()
    }
}

/// A signer with its current certificate ([`SELECT_SIGNER_WITH_CERTIFICATE`]).
#[derive(sqlx::FromRow)]
struct SignerWithCertificateRow {
    #[sqlx(flatten)]
    signer: SignerRow,
    #[sqlx(flatten)]
    certificate: JoinedCertificateRow,
}

/// A `signature_certificates` row.
#[derive(sqlx::FromRow)]
struct SignatureCertificateRow {
    serial: String,
    order_id: String,
    signer_position: Option<i64>,
    not_before: i64,
    not_after: i64,
    issued_at: i64,
    revoked_at: Option<i64>,
    revocation_reason: Option<String>,
}

impl TryFrom<SignatureCertificateRow> for SignatureCertificateRecord {
    type Error = StoreError;

    fn try_from(row: SignatureCertificateRow) -> StoreResult<Self> {
        Ok(SignatureCertificateRecord {
            serial: parse_serial(&row.serial)?,
            order_id: OrderId::parse(&row.order_id)
                .map_err(|e| StoreError::Corrupt(format!("order id: {e}")))?,
            signer_position: row.signer_position,
            not_before: from_unix(row.not_before)?,
            not_after: from_unix(row.not_after)?,
            issued_at: from_unix(row.issued_at)?,
            revoked_at: optional_time(row.revoked_at)?,
            revocation_reason: optional_reason(row.revocation_reason)?,
        })
    }
}

/// A revoked certificate of either kind ([`SELECT_REVOKED`]).
#[derive(sqlx::FromRow)]
struct RevokedRow {
    serial: String,
    revoked_at: i64,
    revocation_reason: Option<String>,
}

impl TryFrom<RevokedRow> for RevokedRecord {
    type Error = StoreError;

    fn try_from(row: RevokedRow) -> StoreResult<Self> {
        Ok(RevokedRecord {
            serial: parse_serial(&row.serial)?,
            revoked_at: from_unix(row.revoked_at)?,
            reason: optional_reason(row.revocation_reason)?
                .unwrap_or(RevocationReason::Unspecified),
        })
    }
}

/// A `crls` row.
#[derive(sqlx::FromRow)]
struct CrlRow {
    number: i64,
    der: Vec<u8>,
    this_update: i64,
    next_update: i64,
}

impl TryFrom<CrlRow> for CrlRecord {
    type Error = StoreError;

    fn try_from(row: CrlRow) -> StoreResult<Self> {
        Ok(CrlRecord {
            number: u64::try_from(row.number)
                .map_err(|_| StoreError::Corrupt(format!("negative CRL number {}", row.number)))?,
            der: row.der,
            this_update: from_unix(row.this_update)?,
            next_update: from_unix(row.next_update)?,
        })
    }
}

/// A signer due for renewal ([`SELECT_DUE_RENEWALS`]).
#[derive(sqlx::FromRow)]
struct DueRenewalRow {
    signer_id: String,
    csr_der: Vec<u8>,
    current_serial: String,
}

impl TryFrom<DueRenewalRow> for DueRenewal {
    type Error = StoreError;

    fn try_from(row: DueRenewalRow) -> StoreResult<Self> {
        Ok(DueRenewal {
            signer_id: parse_signer_id(&row.signer_id)?,
            csr_der: row.csr_der,
            current_serial: parse_serial(&row.current_serial)?,
        })
    }
}

/// A signer whose certificate expired ([`SELECT_EXPIRED`]).
#[derive(sqlx::FromRow)]
struct ExpiredRow {
    signer_id: String,
    status: String,
}

/// Reads a signer inside a write transaction, locking its row where the database can.
async fn signer_for_update(
    dialect: Dialect,
    tx: &mut AnyConnection,
    signer_id: &SignerId,
) -> StoreResult<Option<SignerRecord>> {
    sqlx::query_as::<_, SignerRow>(select_signer_for_update(dialect))
        .bind(signer_id.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .map(SignerRecord::try_from)
        .transpose()
}

async fn insert_certificate(
    tx: &mut AnyConnection,
    signer_id: &SignerId,
    certificate: &NewCertificate,
    issued_for: IssuedFor,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(INSERT_CERTIFICATE)
        .bind(certificate.serial.to_string())
        .bind(signer_id.as_str())
        .bind(certificate.der.clone())
        .bind(to_unix(certificate.not_before))
        .bind(to_unix(certificate.not_after))
        .bind(to_unix(now))
        .bind(issued_for.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Revokes every unrevoked certificate of a signer; returns their serials.
async fn revoke_all_of(
    tx: &mut AnyConnection,
    signer_id: &SignerId,
    reason: RevocationReason,
    now: OffsetDateTime,
) -> StoreResult<Vec<SerialNumber>> {
    let serials: Vec<String> = sqlx::query_scalar(SELECT_UNREVOKED_SERIALS)
        .bind(signer_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
    let serials = serials
        .iter()
        .map(|serial| parse_serial(serial))
        .collect::<StoreResult<Vec<_>>>()?;
    sqlx::query(REVOKE_ALL_OF)
        .bind(to_unix(now))
        .bind(reason.as_str())
        .bind(signer_id.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(serials)
}

/// Creates the signer or replaces its certificate, inside the caller's transaction.
async fn enroll_in(
    dialect: Dialect,
    tx: &mut AnyConnection,
    enrollment: Enrollment,
    now: OffsetDateTime,
) -> StoreResult<EnrollOutcome> {
    let existing = signer_for_update(dialect, &mut *tx, &enrollment.signer_id).await?;
    let certificate = &enrollment.certificate;
    let outcome = match existing {
        Some(signer) if !signer.status.accepts_enrollment() => {
            return Ok(EnrollOutcome::Refused(signer.status));
        }
        Some(_) => {
            // A new CSR replaces the device's key: the old certificates must stop being trusted.
            let superseded = revoke_all_of(
                &mut *tx,
                &enrollment.signer_id,
                RevocationReason::Superseded,
                now,
            )
            .await?;
            sqlx::query(UPDATE_ENROLLED_SIGNER)
                .bind(enrollment.user_id.as_str())
                .bind(enrollment.csr_der.clone())
                .bind(certificate.serial.to_string())
                .bind(to_unix(certificate.not_after))
                .bind(to_unix(certificate.renew_after))
                .bind(to_unix(now))
                .bind(enrollment.signer_id.as_str())
                .execute(&mut *tx)
                .await?;
            EnrollOutcome::Replaced { superseded }
        }
        None => {
            sqlx::query(INSERT_SIGNER)
                .bind(enrollment.signer_id.as_str())
                .bind(enrollment.user_id.as_str())
                .bind(enrollment.csr_der.clone())
                .bind(certificate.serial.to_string())
                .bind(to_unix(certificate.not_after))
                .bind(to_unix(certificate.renew_after))
                .bind(to_unix(now))
                .execute(&mut *tx)
                .await?;
            EnrollOutcome::Created
        }
    };
    insert_certificate(
        &mut *tx,
        &enrollment.signer_id,
        certificate,
        IssuedFor::Enrollment,
        now,
    )
    .await?;
    Ok(outcome)
}

/// Applies a client's status change inside the caller's transaction.
async fn change_status_in(
    dialect: Dialect,
    tx: &mut AnyConnection,
    signer_id: SignerId,
    requested: SignerStatus,
    revocation_reason: RevocationReason,
    now: OffsetDateTime,
) -> StoreResult<StatusChange> {
    let Some(signer) = signer_for_update(dialect, &mut *tx, &signer_id).await? else {
        return Ok(StatusChange::NotFound);
    };
    let to = match signer.status.request(requested) {
        Err(illegal) => return Ok(StatusChange::Illegal(illegal)),
        Ok(None) => {
            return Ok(StatusChange::Applied {
                from: signer.status,
                to: signer.status,
                revoked: Vec::new(),
            })
        }
        Ok(Some(to)) => to,
    };
    let revoked = match to.revocation_reason_default() {
        Some(default_reason) => {
            let reason = if to == SignerStatus::Revoked {
                revocation_reason
            } else {
                default_reason
            };
            revoke_all_of(&mut *tx, &signer_id, reason, now).await?
        }
        None => Vec::new(),
    };
    sqlx::query(UPDATE_SIGNER_STATUS)
        .bind(to.as_str())
        .bind(to_unix(now))
        .bind(signer_id.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(StatusChange::Applied {
        from: signer.status,
        to,
        revoked,
    })
}

#[async_trait]
impl SignerStore for SqlStore {
    #[tracing::instrument(skip(self), fields(signer.id = %signer_id))]
    async fn find_signer(&self, signer_id: &SignerId) -> StoreResult<Option<SignerRecord>> {
        sqlx::query_as::<_, SignerRow>(SELECT_SIGNER)
            .bind(signer_id.as_str())
            .fetch_optional(&self.reader)
            .await?
            .map(SignerRecord::try_from)
            .transpose()
    }

    async fn certificates_of(&self, signer_id: &SignerId) -> StoreResult<Vec<CertificateRecord>> {
        sqlx::query_as::<_, CertificateRow>(SELECT_CERTIFICATES_OF)
            .bind(signer_id.as_str())
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(CertificateRecord::try_from)
            .collect()
    }

    async fn find_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<CertificateRecord>> {
        sqlx::query_as::<_, CertificateRow>(SELECT_CERTIFICATE)
            .bind(serial.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(CertificateRecord::try_from)
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(signer.id = %enrollment.signer_id))]
    async fn enroll(
        &self,
        enrollment: &Enrollment,
        now: OffsetDateTime,
    ) -> StoreResult<EnrollOutcome> {
        let (dialect, enrollment) = (self.dialect, enrollment.clone());
        let outcome = self
            .write(move |tx| Box::pin(enroll_in(dialect, tx, enrollment, now)))
            .await?;
        // A re-enrollment replaces a cached signer's certificate.
        self.changed().await;
        Ok(outcome)
    }

    #[tracing::instrument(skip(self, now), fields(signer.id = %signer_id))]
    async fn change_signer_status(
        &self,
        signer_id: &SignerId,
        requested: SignerStatus,
        revocation_reason: RevocationReason,
        now: OffsetDateTime,
    ) -> StoreResult<StatusChange> {
        let (dialect, signer_id) = (self.dialect, signer_id.clone());
        let change = self
            .write(move |tx| {
                Box::pin(change_status_in(
                    dialect,
                    tx,
                    signer_id,
                    requested,
                    revocation_reason,
                    now,
                ))
            })
            .await?;
        // A no-op (the signer already has the status) changed nothing a cache holds.
        if matches!(change, StatusChange::Applied { from, to, .. } if from != to) {
            self.changed().await;
        }
        Ok(change)
    }

    async fn revoked_certificates(&self) -> StoreResult<Vec<RevokedRecord>> {
        sqlx::query_as::<_, RevokedRow>(SELECT_REVOKED)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(RevokedRecord::try_from)
            .collect()
    }

    async fn latest_crl(&self) -> StoreResult<Option<CrlRecord>> {
        sqlx::query_as::<_, CrlRow>(SELECT_LATEST_CRL)
            .fetch_optional(&self.reader)
            .await?
            .map(CrlRecord::try_from)
            .transpose()
    }

    async fn insert_crl(&self, crl: &CrlRecord) -> StoreResult<bool> {
        let number = i64::try_from(crl.number)
            .map_err(|_| StoreError::Corrupt(format!("CRL number {} too large", crl.number)))?;
        let crl = crl.clone();
        self.write(move |tx| {
            Box::pin(async move {
                let result = sqlx::query(INSERT_CRL)
                    .bind(number)
                    .bind(crl.der)
                    .bind(to_unix(crl.this_update))
                    .bind(to_unix(crl.next_update))
                    .execute(&mut *tx)
                    .await?;
                Ok(result.rows_affected() == 1)
            })
        })
        .await
    }

    async fn insert_signature_certificate(
        &self,
        certificate: &SignatureCertificateRecord,
    ) -> StoreResult<()> {
        let certificate = certificate.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(INSERT_SIGNATURE_CERTIFICATE)
                    .bind(certificate.serial.to_string())
                    .bind(certificate.order_id.to_string())
                    .bind(to_unix(certificate.not_before))
                    .bind(to_unix(certificate.not_after))
                    .bind(to_unix(certificate.issued_at))
                    .bind(certificate.revoked_at.map(to_unix))
                    .bind(certificate.revocation_reason.map(|r| r.as_str().to_owned()))
                    .bind(certificate.signer_position)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn find_signature_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<SignatureCertificateRecord>> {
        sqlx::query_as::<_, SignatureCertificateRow>(SELECT_SIGNATURE_CERTIFICATE)
            .bind(serial.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(SignatureCertificateRecord::try_from)
            .transpose()
    }

    async fn revoke_signature_certificates(
        &self,
        order_id: &OrderId,
        signer_position: i64,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(SignatureCertificateRecord, bool)>> {
        let order_id = order_id.to_string();
        let rows = self
            .write(move |tx| {
                Box::pin(async move {
                    let rows = sqlx::query_as::<_, SignatureCertificateRow>(
                        SELECT_SIGNATURE_CERTIFICATES_OF_SIGNER,
                    )
                    .bind(order_id.clone())
                    .bind(signer_position)
                    .fetch_all(&mut *tx)
                    .await?;
                    sqlx::query(REVOKE_SIGNATURE_CERTIFICATES)
                        .bind(to_unix(now))
                        .bind(reason.as_str().to_owned())
                        .bind(order_id)
                        .bind(signer_position)
                        .execute(&mut *tx)
                        .await?;
                    Ok(rows)
                })
            })
            .await?;
        let revoked_at = from_unix(to_unix(now))?;
        rows.into_iter()
            .map(|row| {
                let mut record = SignatureCertificateRecord::try_from(row)?;
                let newly = record.revoked_at.is_none();
                if newly {
                    record.revoked_at = Some(revoked_at);
                    record.revocation_reason = Some(reason);
                }
                Ok((record, newly))
            })
            .collect()
    }

    /// A job, and the one write that does not go through `SqlStore::write`: `renew` is
    /// borrowed from the caller and runs inside the claiming transaction (see
    /// docs/ARCHITECTURE.md, "Writes").
    #[tracing::instrument(skip(self, renew))]
    async fn renew_due(
        &self,
        now: OffsetDateTime,
        limit: i64,
        renew: &RenewFn<'_>,
    ) -> StoreResult<usize> {
        let mut tx = self.begin_write().await?;
        // SQLite: BEGIN IMMEDIATE already made this transaction the only writer.
        let sql = match self.dialect {
            Dialect::Sqlite => SELECT_DUE_RENEWALS,
            Dialect::Postgres => SELECT_DUE_RENEWALS_SKIP_LOCKED,
        };
        let rows = sqlx::query_as::<_, DueRenewalRow>(sql)
            .bind(to_unix(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut renewed = 0;
        for row in rows {
            let due = DueRenewal::try_from(row)?;
            let certificate = renew(&due).map_err(StoreError::Issuing)?;
            insert_certificate(
                &mut tx,
                &due.signer_id,
                &certificate,
                IssuedFor::Renewal,
                now,
            )
            .await?;
            sqlx::query(UPDATE_RENEWED_SIGNER)
                .bind(certificate.serial.to_string())
                .bind(to_unix(certificate.not_after))
                .bind(to_unix(certificate.renew_after))
                .bind(to_unix(now))
                .bind(due.signer_id.as_str())
                .execute(&mut *tx)
                .await?;
            renewed += 1;
        }
        tx.commit().await?;
        if renewed > 0 {
            self.changed().await;
        }
        Ok(renewed)
    }

    #[tracing::instrument(skip(self))]
    async fn expire_due(&self, now: OffsetDateTime) -> StoreResult<Vec<SignerId>> {
        let sql = match self.dialect {
            Dialect::Sqlite => SELECT_EXPIRED,
            Dialect::Postgres => SELECT_EXPIRED_SKIP_LOCKED,
        };
        let expired = self
            .write(move |tx| {
                Box::pin(async move {
                    let rows = sqlx::query_as::<_, ExpiredRow>(sql)
                        .bind(to_unix(now))
                        .fetch_all(&mut *tx)
                        .await?;
                    let mut expired = Vec::with_capacity(rows.len());
                    for row in rows {
                        let Ok(to) = parse_status(&row.status)?.expire() else {
                            continue;
                        };
                        sqlx::query(UPDATE_SIGNER_STATUS)
                            .bind(to.as_str())
                            .bind(to_unix(now))
                            .bind(row.signer_id.as_str())
                            .execute(&mut *tx)
                            .await?;
                        expired.push(parse_signer_id(&row.signer_id)?);
                    }
                    Ok(expired)
                })
            })
            .await?;
        if !expired.is_empty() {
            self.changed().await;
        }
        Ok(expired)
    }

    async fn find_signer_with_certificate(
        &self,
        signer_id: &SignerId,
    ) -> StoreResult<Option<(SignerRecord, CertificateRecord)>> {
        sqlx::query_as::<_, SignerWithCertificateRow>(SELECT_SIGNER_WITH_CERTIFICATE)
            .bind(signer_id.as_str())
            .fetch_optional(&self.reader)
            .await?
            .map(|row| Ok((row.signer.try_into()?, row.certificate.try_into()?)))
            .transpose()
    }
}
