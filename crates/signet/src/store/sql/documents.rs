//! CloudSigner documents in SQL ([`DocumentStore`]): the row written at upload, the signing
//! path's joined read, and the compare-and-set status changes.

use async_trait::async_trait;
use std::collections::HashSet;
use time::OffsetDateTime;

use super::signers::{
    joined_certificate_columns, parse_serial, parse_status, JoinedCertificateRow,
};
use super::{from_count, from_unix, parse_blob, to_count, to_unix, SqlStore};
use crate::domain::{DocumentId, DocumentStatus, SignerId, SignerStatus};
use crate::store::blobs::BlobKey;
use crate::store::documents::{DocumentRecord, DocumentStore, SignedFile};
use crate::store::signers::CertificateRecord;
use crate::store::{StoreError, StoreResult};

/// The columns [`DocumentRow`] reads (a macro so the statements below stay `const` literals).
macro_rules! document_columns {
    () => {
        "document_id, signer_id, external_id, name, file_name, size, sha256, status, \
         signed_attributes, byte_range, certificate_serial, prepared_blob, signed_blob, \
         signed_size, created_at"
    };
}

const INSERT_DOCUMENT: &str = concat!(
    "INSERT INTO documents (",
    document_columns!(),
    ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)"
);
const SELECT_DOCUMENT: &str = concat!(
    "SELECT ",
    document_columns!(),
    " FROM documents WHERE document_id = $1"
);
const SELECT_DOCUMENT_FOR_SIGNING: &str = concat!(
    "SELECT d.document_id, d.signer_id, d.external_id, d.name, d.file_name, d.size, \
     d.sha256, d.status, d.signed_attributes, d.byte_range, d.certificate_serial, \
     d.prepared_blob, d.signed_blob, d.signed_size, d.created_at, \
     s.status AS signer_status, ",
    joined_certificate_columns!(),
    " FROM documents d JOIN signers s ON s.signer_id = d.signer_id \
     JOIN certificates c ON c.serial = d.certificate_serial WHERE d.document_id = $1"
);
/// WAITING → SIGNED: records the signed file and forgets the prepared one.
const MARK_SIGNED: &str = "UPDATE documents SET status = $1, signed_blob = $2, signed_size = $3, \
     prepared_blob = NULL, updated_at = $4, archive_expires_at = $7 \
     WHERE document_id = $5 AND status = $6";
/// → DELETED: forgets both files.
const MARK_DELETED: &str = "UPDATE documents SET status = $1, prepared_blob = NULL, \
     signed_blob = NULL, updated_at = $2 WHERE document_id = $3 AND status = $4";
const CHANGE_STATUS: &str = "UPDATE documents SET status = $1, updated_at = $2 \
     WHERE document_id = $3 AND status = $4";

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

/// A `documents` row.
#[derive(sqlx::FromRow)]
struct DocumentRow {
    document_id: String,
    signer_id: String,
    external_id: Option<String>,
    name: Option<String>,
    file_name: String,
    size: i64,
    sha256: String,
    status: String,
    signed_attributes: Vec<u8>,
    byte_range: String,
    certificate_serial: String,
    prepared_blob: Option<String>,
    signed_blob: Option<String>,
    signed_size: Option<i64>,
    created_at: i64,
}

impl TryFrom<DocumentRow> for DocumentRecord {
    type Error = StoreError;

    fn try_from(row: DocumentRow) -> StoreResult<Self> {
        let corrupt = |what: &str, e: String| StoreError::Corrupt(format!("{what}: {e}"));
        Ok(DocumentRecord {
            document_id: DocumentId::parse(&row.document_id)
                .map_err(|e| corrupt("document id", e))?,
            signer_id: SignerId::parse(&row.signer_id)
                .map_err(|e| corrupt("signer id", e.to_string()))?,
            external_id: row.external_id,
            name: row.name,
            file_name: row.file_name,
            size: from_count(row.size)?,
            sha256: row.sha256.parse().map_err(|e| corrupt("sha256", e))?,
            status: row
                .status
                .parse()
                .map_err(|e| corrupt("document status", e))?,
            signed_attributes: row.signed_attributes,
            byte_range: parse_byte_range(&row.byte_range)?,
            certificate_serial: parse_serial(&row.certificate_serial)?,
            prepared_blob: parse_blob(row.prepared_blob)?,
            signed_blob: parse_blob(row.signed_blob)?,
            signed_size: row.signed_size.map(from_count).transpose()?,
            created_at: from_unix(row.created_at)?,
        })
    }
}

/// A document with its signer's status and its certificate ([`SELECT_DOCUMENT_FOR_SIGNING`]).
#[derive(sqlx::FromRow)]
struct DocumentForSigningRow {
    #[sqlx(flatten)]
    document: DocumentRow,
    signer_status: String,
    #[sqlx(flatten)]
    certificate: JoinedCertificateRow,
}

#[async_trait]
impl DocumentStore for SqlStore {
    async fn find_document_for_signing(
        &self,
        document_id: &DocumentId,
    ) -> StoreResult<Option<(DocumentRecord, SignerStatus, CertificateRecord)>> {
        sqlx::query_as::<_, DocumentForSigningRow>(SELECT_DOCUMENT_FOR_SIGNING)
            .bind(document_id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(|row| {
                Ok((
                    row.document.try_into()?,
                    parse_status(&row.signer_status)?,
                    row.certificate.try_into()?,
                ))
            })
            .transpose()
    }

    #[tracing::instrument(skip_all, fields(document.id = %document.document_id))]
    async fn insert_document(&self, document: &DocumentRecord) -> StoreResult<()> {
        let document = document.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(INSERT_DOCUMENT)
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
                    .bind(
                        document
                            .prepared_blob
                            .as_ref()
                            .map(|b| b.as_str().to_owned()),
                    )
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
        sqlx::query_as::<_, DocumentRow>(SELECT_DOCUMENT)
            .bind(document_id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(DocumentRecord::try_from)
            .transpose()
    }

    async fn referenced_blobs(&self, keys: &[BlobKey]) -> StoreResult<HashSet<BlobKey>> {
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
                    let result = match (to, signed) {
                        (DocumentStatus::Signed, Some(file)) => {
                            sqlx::query(MARK_SIGNED)
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
                        (DocumentStatus::Deleted, _) => {
                            sqlx::query(MARK_DELETED)
                                .bind(to.as_str())
                                .bind(to_unix(now))
                                .bind(document_id.to_string())
                                .bind(from.as_str())
                                .execute(&mut *tx)
                                .await?
                        }
                        _ => {
                            sqlx::query(CHANGE_STATUS)
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
}
