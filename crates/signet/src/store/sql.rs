//! The portable SQL implementation of [`Store`], shared by SQLite and PostgreSQL.
//!
//! Statements use `$N` placeholders, which both sqlx drivers bind by number. The only
//! statements that differ per database are the row locks, chosen through [`Dialect`].

use async_trait::async_trait;
use futures::future::BoxFuture;
use signet_crypto::ca::{RevocationReason, SerialNumber};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Pool, Row, Transaction};
use std::sync::Arc;

type AnyPool = Pool<Any>;
use time::OffsetDateTime;

use super::blobs::BlobKey;
use super::changes::{self, Changes};
use super::group_commit::GroupCommit;
use super::orders::{
    AnonymizeOutcome, AnonymizeTarget, EventRecord, LoginRecord, NewOrder, NewOrderSigner,
    OrderChange, OrderDocument, OrderRecord, OrderUpdate, RecordedSignature, SignatureOutcome,
};
use super::{
    CertificateRecord, CrlRecord, Dialect, DocumentRecord, DueRenewal, EnrollOutcome, Enrollment,
    IssuedFor, NewCertificate, RenewFn, RevokedRecord, SignatureCertificateRecord, SignedFile,
    SignerRecord, StatusChange, Store, StoreError, StoreResult,
};
use crate::domain::{
    DocumentId, DocumentStatus, OrderId, OrderOption, OrderState, SignerId, SignerStatus, UserId,
};

mod archive;
mod blobs;
mod installation;
mod operator;
mod orders;
mod outbox;
mod signer_access;
mod stats;
pub use orders::event;

/// A database reached through sqlx's `Any` driver. SQLite gets a single-connection writer pool
/// (one writer at a time is SQLite's rule anyway, and queuing in-process beats SQLITE_BUSY) and a
/// separate reader pool; PostgreSQL uses one pool for both.
#[derive(Debug, Clone)]
pub struct SqlStore {
    dialect: Dialect,
    reader: AnyPool,
    writer: AnyPool,
    /// SQLite's batching writer (see [`GroupCommit`]); PostgreSQL commits each request itself.
    group: Option<GroupCommit>,
    /// Bumped after a commit that changes what the read caches may hold.
    changes: Arc<Changes>,
}

macro_rules! signer_columns {
    () => {
        "signer_id, user_id, status, csr_der, current_serial, not_after, renew_after"
    };
}
macro_rules! select_signer {
    () => {
        concat!(
            "SELECT ",
            signer_columns!(),
            " FROM signers WHERE signer_id = $1"
        )
    };
}
macro_rules! certificate_columns {
    () => {
        "serial, signer_id, der, not_before, not_after, issued_at, issued_for, revoked_at, revocation_reason"
    };
}
macro_rules! select_due_renewals {
    () => {
        "SELECT signer_id, csr_der, current_serial FROM signers \
         WHERE status = 'ACTIVE' AND renew_after <= $1 ORDER BY renew_after LIMIT $2"
    };
}

pub(crate) fn to_unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_unix(seconds: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {seconds} out of range: {e}")))
}

fn parse_serial(raw: &str) -> StoreResult<SerialNumber> {
    raw.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad certificate serial {raw:?}")))
}

fn parse_status(raw: &str) -> StoreResult<SignerStatus> {
    raw.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}

fn parse_reason(raw: &str) -> StoreResult<RevocationReason> {
    raw.parse().map_err(|e: String| StoreError::Corrupt(e))
}

/// The columns [`signature_certificate_from_row`] reads (a macro: queries are literals).
macro_rules! signature_certificate_columns {
    () => {
        "serial, order_id, signer_position, not_before, not_after, issued_at, revoked_at, \
         revocation_reason"
    };
}

fn signature_certificate_from_row(row: &AnyRow) -> StoreResult<SignatureCertificateRecord> {
    let serial: String = row.try_get("serial")?;
    let order_id: String = row.try_get("order_id")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let reason: Option<String> = row.try_get("revocation_reason")?;
    Ok(SignatureCertificateRecord {
        serial: parse_serial(&serial)?,
        order_id: OrderId::parse(&order_id).map_err(corrupt("order id"))?,
        signer_position: row.try_get("signer_position")?,
        not_before: from_unix(row.try_get("not_before")?)?,
        not_after: from_unix(row.try_get("not_after")?)?,
        issued_at: from_unix(row.try_get("issued_at")?)?,
        revoked_at: revoked_at.map(from_unix).transpose()?,
        revocation_reason: reason.as_deref().map(parse_reason).transpose()?,
    })
}

fn signer_from_row(row: &AnyRow) -> StoreResult<SignerRecord> {
    let signer_id: String = row.try_get("signer_id")?;
    let user_id: String = row.try_get("user_id")?;
    let status: String = row.try_get("status")?;
    let serial: String = row.try_get("current_serial")?;
    Ok(SignerRecord {
        signer_id: SignerId::parse(&signer_id)
            .map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))?,
        user_id: UserId::parse(&user_id)
            .map_err(|e| StoreError::Corrupt(format!("user id: {e}")))?,
        status: parse_status(&status)?,
        csr_der: row.try_get("csr_der")?,
        current_serial: parse_serial(&serial)?,
        not_after: from_unix(row.try_get("not_after")?)?,
        renew_after: from_unix(row.try_get("renew_after")?)?,
    })
}

fn certificate_from_row(row: &AnyRow) -> StoreResult<CertificateRecord> {
    certificate_from_prefixed_row(row, "")
}

/// Reads a certificate whose columns carry `prefix` (joins alias them to avoid name clashes).
fn certificate_from_prefixed_row(row: &AnyRow, prefix: &str) -> StoreResult<CertificateRecord> {
    let column = |name: &str| format!("{prefix}{name}");
    let serial: String = row.try_get(column("serial").as_str())?;
    let signer_id: String = row.try_get(column("signer_id").as_str())?;
    let issued_for: String = row.try_get(column("issued_for").as_str())?;
    let revoked_at: Option<i64> = row.try_get(column("revoked_at").as_str())?;
    let reason: Option<String> = row.try_get(column("revocation_reason").as_str())?;
    Ok(CertificateRecord {
        serial: parse_serial(&serial)?,
        signer_id: SignerId::parse(&signer_id)
            .map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))?,
        der: row.try_get(column("der").as_str())?,
        not_before: from_unix(row.try_get(column("not_before").as_str())?)?,
        not_after: from_unix(row.try_get(column("not_after").as_str())?)?,
        issued_at: from_unix(row.try_get(column("issued_at").as_str())?)?,
        issued_for: match issued_for.as_str() {
            "RENEWAL" => IssuedFor::Renewal,
            _ => IssuedFor::Enrollment,
        },
        revoked_at: revoked_at.map(from_unix).transpose()?,
        revocation_reason: reason.as_deref().map(parse_reason).transpose()?,
    })
}

/// A certificate's columns from the table aliased `c`, each renamed `c_<column>`.
macro_rules! joined_certificate_columns {
    () => {
        "c.serial AS c_serial, c.signer_id AS c_signer_id, c.der AS c_der, \
         c.not_before AS c_not_before, c.not_after AS c_not_after, c.issued_at AS c_issued_at, \
         c.issued_for AS c_issued_for, c.revoked_at AS c_revoked_at, \
         c.revocation_reason AS c_revocation_reason"
    };
}

macro_rules! document_columns {
    () => {
        "document_id, signer_id, external_id, name, file_name, size, sha256, status, \
         signed_attributes, byte_range, certificate_serial, prepared_blob, signed_blob, \
         signed_size, created_at"
    };
}

fn corrupt(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_count(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} does not fit BIGINT")))
}

fn from_count(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative size {value}")))
}

fn byte_range_text(range: &[u64; 4]) -> String {
    format!("{} {} {} {}", range[0], range[1], range[2], range[3])
}

fn parse_byte_range(raw: &str) -> StoreResult<[u64; 4]> {
    let numbers = raw
        .split(' ')
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("byte range {raw:?}: {e}")))?;
    numbers
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("byte range {raw:?} has not 4 numbers")))
}

fn parse_blob(raw: Option<String>) -> StoreResult<Option<BlobKey>> {
    raw.map(|key| BlobKey::parse(&key).map_err(corrupt("blob key")))
        .transpose()
}

fn document_from_row(row: &AnyRow) -> StoreResult<DocumentRecord> {
    let document_id: String = row.try_get("document_id")?;
    let signer_id: String = row.try_get("signer_id")?;
    let sha256: String = row.try_get("sha256")?;
    let status: String = row.try_get("status")?;
    let byte_range: String = row.try_get("byte_range")?;
    let serial: String = row.try_get("certificate_serial")?;
    let signed_size: Option<i64> = row.try_get("signed_size")?;
    Ok(DocumentRecord {
        document_id: DocumentId::parse(&document_id).map_err(corrupt("document id"))?,
        signer_id: SignerId::parse(&signer_id)
            .map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))?,
        external_id: row.try_get("external_id")?,
        name: row.try_get("name")?,
        file_name: row.try_get("file_name")?,
        size: from_count(row.try_get("size")?)?,
        sha256: sha256.parse().map_err(corrupt("sha256"))?,
        status: status.parse().map_err(corrupt("document status"))?,
        signed_attributes: row.try_get("signed_attributes")?,
        byte_range: parse_byte_range(&byte_range)?,
        certificate_serial: parse_serial(&serial)?,
        prepared_blob: parse_blob(row.try_get("prepared_blob")?)?,
        signed_blob: parse_blob(row.try_get("signed_blob")?)?,
        signed_size: signed_size.map(from_count).transpose()?,
        created_at: from_unix(row.try_get("created_at")?)?,
    })
}

impl SqlStore {
    pub(crate) fn new(
        dialect: Dialect,
        reader: AnyPool,
        writer: AnyPool,
        changes: Changes,
    ) -> Self {
        let group = (dialect == Dialect::Sqlite).then(|| GroupCommit::start(writer.clone()));
        Self {
            dialect,
            reader,
            writer,
            group,
            changes: Arc::new(changes),
        }
    }

    /// Says, after a commit, that an API key, a signer or a signed document changed, so that
    /// no read cache (this process's or another's) serves the old answer again. On PostgreSQL
    /// the notification is one more statement: a failure is logged, not returned, since the
    /// change itself is committed (other replicas then see it when their listener reconnects
    /// or not at all, hence the error level).
    pub(crate) async fn changed(&self) {
        self.changes.bump();
        if self.changes.notifies() {
            if let Err(error) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(changes::CHANNEL)
                .execute(&self.writer)
                .await
            {
                tracing::error!(%error, "could not notify other replicas of a change; their read caches may serve it stale");
            }
        }
    }

    /// Runs `work` in a write transaction: batched with other requests on SQLite, its own
    /// transaction on PostgreSQL. Returns once the result is committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        match &self.group {
            Some(group) => group.write(work).await,
            None => {
                let mut tx = self.begin_write().await?;
                let result = work(&mut tx).await?;
                tx.commit().await?;
                Ok(result)
            }
        }
    }

    /// Starts a transaction that will write. SQLite must take its write lock up front
    /// (`BEGIN IMMEDIATE`); a deferred transaction that reads first and upgrades later can fail
    /// with SQLITE_BUSY when another process writes in between.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writer.begin().await?,
        })
    }

    /// Reads a signer inside a write transaction, locking its row where the database can.
    async fn signer_for_update(
        dialect: Dialect,
        tx: &mut AnyConnection,
        signer_id: &SignerId,
    ) -> StoreResult<Option<SignerRecord>> {
        let sql = match dialect {
            Dialect::Sqlite => select_signer!(),
            Dialect::Postgres => concat!(select_signer!(), " FOR UPDATE"),
        };
        let row = sqlx::query(sql)
            .bind(signer_id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        row.as_ref().map(signer_from_row).transpose()
    }

    async fn insert_certificate(
        tx: &mut AnyConnection,
        signer_id: &SignerId,
        certificate: &NewCertificate,
        issued_for: IssuedFor,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO certificates (serial, signer_id, der, not_before, not_after, issued_at, issued_for, issue_order) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, \
             (SELECT COALESCE(MAX(issue_order), 0) + 1 FROM certificates WHERE signer_id = $2))",
        )
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
        let rows = sqlx::query(
            "SELECT serial FROM certificates WHERE signer_id = $1 AND revoked_at IS NULL ORDER BY serial",
        )
        .bind(signer_id.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let serials = rows
            .iter()
            .map(|row| parse_serial(&row.try_get::<String, _>("serial")?))
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query(
            "UPDATE certificates SET revoked_at = $1, revocation_reason = $2 \
             WHERE signer_id = $3 AND revoked_at IS NULL",
        )
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
        let existing = Self::signer_for_update(dialect, &mut *tx, &enrollment.signer_id).await?;
        let certificate = &enrollment.certificate;
        let outcome = match existing {
            Some(signer) if !signer.status.accepts_enrollment() => {
                return Ok(EnrollOutcome::Refused(signer.status));
            }
            Some(_) => {
                // A new CSR replaces the device's key: the old certificates must stop being trusted.
                let superseded = Self::revoke_all_of(
                    &mut *tx,
                    &enrollment.signer_id,
                    RevocationReason::Superseded,
                    now,
                )
                .await?;
                sqlx::query(
                    "UPDATE signers SET user_id = $1, csr_der = $2, current_serial = $3, \
                     not_after = $4, renew_after = $5, updated_at = $6 WHERE signer_id = $7",
                )
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
                sqlx::query(
                    "INSERT INTO signers (signer_id, user_id, status, csr_der, current_serial, \
                     not_after, renew_after, created_at, updated_at) \
                     VALUES ($1, $2, 'ACTIVE', $3, $4, $5, $6, $7, $7)",
                )
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
        Self::insert_certificate(
            &mut *tx,
            &enrollment.signer_id,
            certificate,
            IssuedFor::Enrollment,
            now,
        )
        .await?;
        Ok(outcome)
    }
}

#[async_trait]
impl Store for SqlStore {
    fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }

    #[tracing::instrument(skip_all)]
    async fn insert_api_key(
        &self,
        id: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let (id, key_hash) = (id.to_owned(), key_hash.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO api_keys (id, key_hash, created_at) VALUES ($1, $2, $3)")
                    .bind(id)
                    .bind(key_hash)
                    .bind(to_unix(now))
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    async fn api_key_hash_exists(&self, key_hash: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT 1 AS found FROM api_keys WHERE key_hash = $1")
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    async fn count_api_keys(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get("n")?)
    }

    #[tracing::instrument(skip(self), fields(signer.id = %signer_id))]
    async fn find_signer(&self, signer_id: &SignerId) -> StoreResult<Option<SignerRecord>> {
        let row = sqlx::query(select_signer!())
            .bind(signer_id.as_str())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(signer_from_row).transpose()
    }

    async fn certificates_of(&self, signer_id: &SignerId) -> StoreResult<Vec<CertificateRecord>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE signer_id = $1 ORDER BY issue_order, issued_at, serial"
        ))
        .bind(signer_id.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(certificate_from_row).collect()
    }

    async fn find_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<CertificateRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            certificate_columns!(),
            " FROM certificates WHERE serial = $1"
        ))
        .bind(serial.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    #[tracing::instrument(skip_all, fields(signer.id = %enrollment.signer_id))]
    async fn enroll(
        &self,
        enrollment: &Enrollment,
        now: OffsetDateTime,
    ) -> StoreResult<EnrollOutcome> {
        let (dialect, enrollment) = (self.dialect, enrollment.clone());
        let outcome = self
            .write(move |tx| Box::pin(Self::enroll_in(dialect, tx, enrollment, now)))
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
        let mut tx = self.begin_write().await?;
        let Some(signer) = Self::signer_for_update(self.dialect, &mut tx, signer_id).await? else {
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
                Self::revoke_all_of(&mut tx, signer_id, reason, now).await?
            }
            None => Vec::new(),
        };
        sqlx::query("UPDATE signers SET status = $1, updated_at = $2 WHERE signer_id = $3")
            .bind(to.as_str())
            .bind(to_unix(now))
            .bind(signer_id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed().await;
        Ok(StatusChange::Applied {
            from: signer.status,
            to,
            revoked,
        })
    }

    async fn revoked_certificates(&self) -> StoreResult<Vec<RevokedRecord>> {
        let rows = sqlx::query(
            // Both kinds of certificate the CA issues: CloudSigner signers' and order signatures'.
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE revoked_at IS NOT NULL \
             UNION ALL SELECT serial, revoked_at, revocation_reason FROM signature_certificates \
             WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                let serial: String = row.try_get("serial")?;
                let reason: Option<String> = row.try_get("revocation_reason")?;
                Ok(RevokedRecord {
                    serial: parse_serial(&serial)?,
                    revoked_at: from_unix(row.try_get("revoked_at")?)?,
                    reason: reason
                        .as_deref()
                        .map(parse_reason)
                        .transpose()?
                        .unwrap_or(RevocationReason::Unspecified),
                })
            })
            .collect()
    }

    async fn latest_crl(&self) -> StoreResult<Option<CrlRecord>> {
        let row = sqlx::query(
            "SELECT number, der, this_update, next_update FROM crls ORDER BY number DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            let number: i64 = row.try_get("number")?;
            Ok(CrlRecord {
                number: u64::try_from(number)
                    .map_err(|_| StoreError::Corrupt(format!("negative CRL number {number}")))?,
                der: row.try_get("der")?,
                this_update: from_unix(row.try_get("this_update")?)?,
                next_update: from_unix(row.try_get("next_update")?)?,
            })
        })
        .transpose()
    }

    async fn insert_crl(&self, crl: &CrlRecord) -> StoreResult<bool> {
        let number = i64::try_from(crl.number)
            .map_err(|_| StoreError::Corrupt(format!("CRL number {} too large", crl.number)))?;
        let result = sqlx::query(
            "INSERT INTO crls (number, der, this_update, next_update) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (number) DO NOTHING",
        )
        .bind(number)
        .bind(crl.der.clone())
        .bind(to_unix(crl.this_update))
        .bind(to_unix(crl.next_update))
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn insert_signature_certificate(
        &self,
        certificate: &SignatureCertificateRecord,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO signature_certificates (serial, order_id, not_before, not_after, \
             issued_at, revoked_at, revocation_reason, signer_position) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(certificate.serial.to_string())
        .bind(certificate.order_id.to_string())
        .bind(to_unix(certificate.not_before))
        .bind(to_unix(certificate.not_after))
        .bind(to_unix(certificate.issued_at))
        .bind(certificate.revoked_at.map(to_unix))
        .bind(certificate.revocation_reason.map(|r| r.as_str().to_owned()))
        .bind(certificate.signer_position)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_signature_certificate(
        &self,
        serial: &SerialNumber,
    ) -> StoreResult<Option<SignatureCertificateRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            signature_certificate_columns!(),
            " FROM signature_certificates WHERE serial = $1"
        ))
        .bind(serial.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(signature_certificate_from_row).transpose()
    }

    async fn revoke_signature_certificates(
        &self,
        order_id: &OrderId,
        signer_position: i64,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> StoreResult<Vec<(SignatureCertificateRecord, bool)>> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(concat!(
            "SELECT ",
            signature_certificate_columns!(),
            " FROM signature_certificates \
             WHERE order_id = $1 AND signer_position = $2 ORDER BY issued_at, serial"
        ))
        .bind(order_id.to_string())
        .bind(signer_position)
        .fetch_all(&mut *tx)
        .await?;
        // Only rows not revoked yet: a second revocation keeps the first's time and reason, which
        // the CRL and OCSP have already published.
        sqlx::query(
            "UPDATE signature_certificates SET revoked_at = $1, revocation_reason = $2 \
             WHERE order_id = $3 AND signer_position = $4 AND revoked_at IS NULL",
        )
        .bind(to_unix(now))
        .bind(reason.as_str().to_owned())
        .bind(order_id.to_string())
        .bind(signer_position)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let revoked_at = from_unix(to_unix(now))?;
        rows.iter()
            .map(|row| {
                let mut record = signature_certificate_from_row(row)?;
                let newly = record.revoked_at.is_none();
                if newly {
                    record.revoked_at = Some(revoked_at);
                    record.revocation_reason = Some(reason);
                }
                Ok((record, newly))
            })
            .collect()
    }

    #[tracing::instrument(skip(self, renew))]
    async fn renew_due(
        &self,
        now: OffsetDateTime,
        limit: i64,
        renew: &RenewFn<'_>,
    ) -> StoreResult<usize> {
        let mut tx = self.begin_write().await?;
        // PostgreSQL: rows another replica is renewing right now are skipped, not waited for;
        // once it commits, their renew_after lies in the future and they no longer match.
        // SQLite: BEGIN IMMEDIATE already made this transaction the only writer.
        let sql = match self.dialect {
            Dialect::Sqlite => select_due_renewals!(),
            Dialect::Postgres => concat!(select_due_renewals!(), " FOR UPDATE SKIP LOCKED"),
        };
        let rows = sqlx::query(sql)
            .bind(to_unix(now))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut renewed = 0;
        for row in &rows {
            let signer_id: String = row.try_get("signer_id")?;
            let serial: String = row.try_get("current_serial")?;
            let due = DueRenewal {
                signer_id: SignerId::parse(&signer_id)
                    .map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))?,
                csr_der: row.try_get("csr_der")?,
                current_serial: parse_serial(&serial)?,
            };
            let certificate = renew(&due).map_err(StoreError::Issuing)?;
            Self::insert_certificate(
                &mut tx,
                &due.signer_id,
                &certificate,
                IssuedFor::Renewal,
                now,
            )
            .await?;
            sqlx::query(
                "UPDATE signers SET current_serial = $1, not_after = $2, renew_after = $3, updated_at = $4 \
                 WHERE signer_id = $5",
            )
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
        let mut tx = self.begin_write().await?;
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT signer_id, status FROM signers WHERE status IN ('ACTIVE', 'BLOCKED') AND not_after <= $1"
            }
            Dialect::Postgres => {
                "SELECT signer_id, status FROM signers WHERE status IN ('ACTIVE', 'BLOCKED') AND not_after <= $1 \
                 FOR UPDATE SKIP LOCKED"
            }
        };
        let rows = sqlx::query(sql)
            .bind(to_unix(now))
            .fetch_all(&mut *tx)
            .await?;
        let mut expired = Vec::with_capacity(rows.len());
        for row in &rows {
            let signer_id: String = row.try_get("signer_id")?;
            let status = parse_status(&row.try_get::<String, _>("status")?)?;
            let Ok(to) = status.expire() else { continue };
            sqlx::query("UPDATE signers SET status = $1, updated_at = $2 WHERE signer_id = $3")
                .bind(to.as_str())
                .bind(to_unix(now))
                .bind(signer_id.as_str())
                .execute(&mut *tx)
                .await?;
            expired.push(
                SignerId::parse(&signer_id)
                    .map_err(|e| StoreError::Corrupt(format!("signer id: {e}")))?,
            );
        }
        tx.commit().await?;
        if !expired.is_empty() {
            self.changed().await;
        }
        Ok(expired)
    }

    #[tracing::instrument(skip_all, fields(document.id = %document.document_id))]
    async fn insert_document(&self, document: &DocumentRecord) -> StoreResult<()> {
        let document = document.clone();
        self.write(move |tx| {
            Box::pin(async move {
        sqlx::query(concat!(
            "INSERT INTO documents (",
            document_columns!(),
            ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)"
        ))
        .bind(document.document_id.to_string())
        .bind(document.signer_id.as_str())
        .bind(document.external_id.clone())
        .bind(document.name.clone())
        .bind(document.file_name.clone())
        .bind(to_count(document.size)?)
        .bind(document.sha256.to_string())
        .bind(document.status.as_str())
        .bind(document.signed_attributes.clone())
        .bind(byte_range_text(&document.byte_range))
        .bind(document.certificate_serial.to_string())
        .bind(document.prepared_blob.as_ref().map(|b| b.as_str().to_owned()))
        .bind(document.signed_blob.as_ref().map(|b| b.as_str().to_owned()))
        .bind(document.signed_size.map(to_count).transpose()?)
        .bind(to_unix(document.created_at))
        .execute(&mut *tx)
        .await?;
        Ok(())
            })
        })
        .await
    }

    #[tracing::instrument(skip(self), fields(document.id = %document_id))]
    async fn find_document(&self, document_id: &DocumentId) -> StoreResult<Option<DocumentRecord>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            document_columns!(),
            " FROM documents WHERE document_id = $1"
        ))
        .bind(document_id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(document_from_row).transpose()
    }

    async fn referenced_blobs(
        &self,
        keys: &[BlobKey],
    ) -> StoreResult<std::collections::HashSet<BlobKey>> {
        self.referenced_blobs_sql(keys).await
    }

    #[tracing::instrument(skip(self, signed, now), fields(document.id = %document_id))]
    async fn change_document_status(
        &self,
        document_id: &DocumentId,
        from: DocumentStatus,
        to: DocumentStatus,
        signed: Option<&SignedFile>,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let (document_id, signed) = (*document_id, signed.cloned());
        let changed = self
            .write(move |tx| {
                Box::pin(async move {
                    let result =
            match (to, signed) {
                (DocumentStatus::Signed, Some(file)) => {
                    sqlx::query(
                        "UPDATE documents SET status = $1, signed_blob = $2, signed_size = $3, \
                     prepared_blob = NULL, updated_at = $4, archive_expires_at = $7 \
                     WHERE document_id = $5 AND status = $6",
                    )
                    .bind(to.as_str())
                    .bind(file.blob.as_str())
                    .bind(to_count(file.size)?)
                    .bind(to_unix(now))
                    .bind(document_id.to_string())
                    .bind(from.as_str())
                    .bind(file.archive_expires_at.map(to_unix))
                    .execute(&mut *tx)
                    .await?
                }
                (DocumentStatus::Signed, None) => {
                    return Err(StoreError::Corrupt(
                        "a document cannot become SIGNED without its signed file".into(),
                    ))
                }
                (DocumentStatus::Deleted, _) => sqlx::query(
                    "UPDATE documents SET status = $1, prepared_blob = NULL, signed_blob = NULL, \
                     updated_at = $2 WHERE document_id = $3 AND status = $4",
                )
                .bind(to.as_str())
                .bind(to_unix(now))
                .bind(document_id.to_string())
                .bind(from.as_str())
                .execute(&mut *tx)
                .await?,
                _ => {
                    sqlx::query(
                        "UPDATE documents SET status = $1, updated_at = $2 \
                     WHERE document_id = $3 AND status = $4",
                    )
                    .bind(to.as_str())
                    .bind(to_unix(now))
                    .bind(document_id.to_string())
                    .bind(from.as_str())
                    .execute(&mut *tx)
                    .await?
                }
            };
                    Ok(result.rows_affected() == 1)
                })
            })
            .await?;
        // Only signed documents are cached (their file is what a download serves).
        if changed && from == DocumentStatus::Signed {
            self.changed().await;
        }
        Ok(changed)
    }

    async fn find_signer_with_certificate(
        &self,
        signer_id: &SignerId,
    ) -> StoreResult<Option<(SignerRecord, CertificateRecord)>> {
        let row = sqlx::query(concat!(
            "SELECT s.signer_id, s.user_id, s.status, s.csr_der, s.current_serial, s.not_after, \
             s.renew_after, ",
            joined_certificate_columns!(),
            " FROM signers s JOIN certificates c ON c.serial = s.current_serial \
             WHERE s.signer_id = $1"
        ))
        .bind(signer_id.as_str())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(|row| {
                Ok((
                    signer_from_row(row)?,
                    certificate_from_prefixed_row(row, "c_")?,
                ))
            })
            .transpose()
    }

    async fn find_document_for_signing(
        &self,
        document_id: &DocumentId,
    ) -> StoreResult<Option<(DocumentRecord, SignerStatus, CertificateRecord)>> {
        let row = sqlx::query(concat!(
            "SELECT d.document_id, d.signer_id, d.external_id, d.name, d.file_name, d.size, \
             d.sha256, d.status, d.signed_attributes, d.byte_range, d.certificate_serial, \
             d.prepared_blob, d.signed_blob, d.signed_size, d.created_at, \
             s.status AS signer_status, ",
            joined_certificate_columns!(),
            " FROM documents d JOIN signers s ON s.signer_id = d.signer_id \
             JOIN certificates c ON c.serial = d.certificate_serial WHERE d.document_id = $1"
        ))
        .bind(document_id.to_string())
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref()
            .map(|row| {
                let signer_status: String = row.try_get("signer_status")?;
                Ok((
                    document_from_row(row)?,
                    parse_status(&signer_status)?,
                    certificate_from_prefixed_row(row, "c_")?,
                ))
            })
            .transpose()
    }

    async fn create_order(&self, order: &NewOrder, now: OffsetDateTime) -> StoreResult<()> {
        self.create_order_sql(order, now).await
    }

    async fn find_order(&self, order_id: &OrderId) -> StoreResult<Option<OrderRecord>> {
        self.find_order_sql(order_id).await
    }

    async fn order_state(&self, order_id: &OrderId) -> StoreResult<Option<OrderState>> {
        self.order_state_sql(order_id).await
    }

    async fn delete_order(
        &self,
        order_id: &OrderId,
        now: OffsetDateTime,
    ) -> StoreResult<Option<OrderDocument>> {
        self.delete_order_sql(order_id, now).await
    }

    async fn update_order(
        &self,
        order_id: &OrderId,
        update: &OrderUpdate,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange> {
        self.update_order_sql(order_id, update, now).await
    }

    async fn replace_order_signers(
        &self,
        order_id: &OrderId,
        signers: &[NewOrderSigner],
        options: Option<&[OrderOption]>,
        now: OffsetDateTime,
    ) -> StoreResult<OrderChange> {
        self.replace_order_signers_sql(order_id, signers, options, now)
            .await
    }

    async fn record_order_signature(
        &self,
        order_id: &OrderId,
        signature: &RecordedSignature,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome> {
        self.record_order_signature_sql(order_id, signature, now)
            .await
    }

    async fn reject_order(
        &self,
        order_id: &OrderId,
        position: i64,
        reason: Option<&str>,
        now: OffsetDateTime,
    ) -> StoreResult<SignatureOutcome> {
        self.reject_order_sql(order_id, position, reason, now).await
    }

    async fn expire_due_orders(
        &self,
        now: OffsetDateTime,
        limit: i64,
    ) -> StoreResult<Vec<OrderId>> {
        self.expire_due_orders_sql(now, limit).await
    }

    async fn anonymize(
        &self,
        target: &AnonymizeTarget,
        now: OffsetDateTime,
    ) -> StoreResult<AnonymizeOutcome> {
        self.anonymize_sql(target, now).await
    }

    async fn order_events(&self, order_id: &OrderId) -> StoreResult<Vec<EventRecord>> {
        self.order_events_sql(order_id).await
    }

    async fn events_named(&self, name: &str) -> StoreResult<Vec<EventRecord>> {
        self.events_named_sql(name).await
    }

    async fn find_login(&self, internal_id: &str) -> StoreResult<Option<LoginRecord>> {
        self.find_login_sql(internal_id).await
    }

    async fn find_order_by_token_hash(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<(OrderRecord, i64)>> {
        self.find_order_by_token_hash_sql(token_hash).await
    }

    async fn set_signer_otp(
        &self,
        order_id: &OrderId,
        position: i64,
        otp_hash: &str,
        expires_at: OffsetDateTime,
    ) -> StoreResult<bool> {
        self.set_signer_otp_sql(order_id, position, otp_hash, expires_at)
            .await
    }

    async fn spend_signer_otp_attempt(
        &self,
        order_id: &OrderId,
        position: i64,
        now: OffsetDateTime,
        max_attempts: u32,
    ) -> StoreResult<Option<String>> {
        self.spend_signer_otp_attempt_sql(order_id, position, now, max_attempts)
            .await
    }

    async fn clear_signer_otp(&self, order_id: &OrderId, position: i64) -> StoreResult<()> {
        self.clear_signer_otp_sql(order_id, position).await
    }
}

#[async_trait]
impl super::outbox::OutboxStore for SqlStore {
    async fn set_outbox_policy(&self, policy: &super::outbox::OutboxPolicy) -> StoreResult<()> {
        self.set_outbox_policy_sql(policy).await
    }

    async fn claim_outbox(
        &self,
        channel: super::outbox::Channel,
        now: OffsetDateTime,
        limit: i64,
        lease: time::Duration,
    ) -> StoreResult<Vec<super::outbox::OutboxMessage>> {
        self.claim_outbox_sql(channel, now, limit, lease).await
    }

    async fn outbox_delivered(&self, id: i64, now: OffsetDateTime) -> StoreResult<()> {
        self.outbox_delivered_sql(id, now).await
    }

    async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.outbox_retry_sql(id, error, next_attempt_at).await
    }

    async fn outbox_gave_up(&self, id: i64, error: &str, now: OffsetDateTime) -> StoreResult<()> {
        self.outbox_gave_up_sql(id, error, now).await
    }

    async fn order_deliveries(
        &self,
        order_id: &OrderId,
    ) -> StoreResult<Vec<super::outbox::DeliveryRecord>> {
        self.order_deliveries_sql(order_id).await
    }

    async fn queue_reminders(
        &self,
        now: OffsetDateTime,
        days_before: u32,
        limit: i64,
    ) -> StoreResult<usize> {
        self.queue_reminders_sql(now, days_before, limit).await
    }
}
