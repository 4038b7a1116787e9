//! [`ArchiveStore`] in portable SQL: the claim is one `UPDATE … WHERE id IN (SELECT …)` per
//! table, which sets the lease and returns the rows (with `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, as the outbox claims); the record is a compare-and-set on the row's blob (and an
//! order's revision).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::{from_unix, parse_blob, to_count, to_unix, SqlStore};
use crate::domain::{DocumentId, OrderId};
use crate::store::archive::{ArchiveStore, ArchiveTarget, ArchivedFile, DueArchive};
use crate::store::{Dialect, StoreError, StoreResult};

/// Claims SIGNED documents whose file's last timestamp is due, for a lease.
const CLAIM_DOCUMENT_ARCHIVES: &str = concat!(
    "UPDATE documents SET archive_claimed_until = $1 WHERE document_id IN (\
     SELECT document_id FROM documents WHERE archive_expires_at IS NOT NULL \
     AND archive_expires_at <= $2 AND status = 'SIGNED' \
     AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
     ORDER BY archive_expires_at LIMIT $4",
    ") RETURNING document_id AS id, signed_blob AS file_blob, archive_expires_at, \
     CAST(0 AS BIGINT) AS revision"
);
/// [`CLAIM_DOCUMENT_ARCHIVES`] on PostgreSQL: rows another replica is claiming are skipped.
const CLAIM_DOCUMENT_ARCHIVES_SKIP_LOCKED: &str = concat!(
    "UPDATE documents SET archive_claimed_until = $1 WHERE document_id IN (\
     SELECT document_id FROM documents WHERE archive_expires_at IS NOT NULL \
     AND archive_expires_at <= $2 AND status = 'SIGNED' \
     AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
     ORDER BY archive_expires_at LIMIT $4 FOR UPDATE SKIP LOCKED",
    ") RETURNING document_id AS id, signed_blob AS file_blob, archive_expires_at, \
     CAST(0 AS BIGINT) AS revision"
);
/// Claims ACCEPTED orders whose file's last timestamp is due, for a lease.
const CLAIM_ORDER_ARCHIVES: &str = concat!(
    "UPDATE orders SET archive_claimed_until = $1 WHERE order_id IN (\
     SELECT order_id FROM orders WHERE archive_expires_at IS NOT NULL \
     AND archive_expires_at <= $2 AND state = 'ACCEPTED' \
     AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
     ORDER BY archive_expires_at LIMIT $4",
    ") RETURNING order_id AS id, document_blob AS file_blob, archive_expires_at, revision"
);
/// [`CLAIM_ORDER_ARCHIVES`] on PostgreSQL: rows another replica is claiming are skipped.
const CLAIM_ORDER_ARCHIVES_SKIP_LOCKED: &str = concat!(
    "UPDATE orders SET archive_claimed_until = $1 WHERE order_id IN (\
     SELECT order_id FROM orders WHERE archive_expires_at IS NOT NULL \
     AND archive_expires_at <= $2 AND state = 'ACCEPTED' \
     AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
     ORDER BY archive_expires_at LIMIT $4 FOR UPDATE SKIP LOCKED",
    ") RETURNING order_id AS id, document_blob AS file_blob, archive_expires_at, revision"
);

const SWAP_DOCUMENT_FILE: &str = "UPDATE documents SET signed_blob = $1, signed_size = $2, \
                             archive_expires_at = $3, archive_claimed_until = NULL \
                             WHERE document_id = $4 AND signed_blob = $5 AND status = 'SIGNED'";
const SWAP_ORDER_FILE: &str = "UPDATE orders SET document_blob = $1, document_size = $2, \
                             document_sha256 = $3, revision = revision + 1, \
                             archive_expires_at = $4, archive_claimed_until = NULL \
                             WHERE order_id = $5 AND document_blob = $6 AND revision = $7 \
                             AND state = 'ACCEPTED'";

/// A row a claim returns: the document's or the order's id, its file and its timestamps' end.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    file_blob: Option<String>,
    archive_expires_at: i64,
    revision: i64,
}

impl ClaimedRow {
    fn into_due(self, is_order: bool) -> StoreResult<DueArchive> {
        let id = self.id;
        let target = if is_order {
            ArchiveTarget::Order(
                OrderId::parse(&id)
                    .map_err(|e| StoreError::Corrupt(format!("order id {id:?}: {e}")))?,
            )
        } else {
            ArchiveTarget::Document(
                DocumentId::parse(&id)
                    .map_err(|e| StoreError::Corrupt(format!("document id {id:?}: {e}")))?,
            )
        };
        let blob = parse_blob(self.file_blob)?
            .ok_or_else(|| StoreError::Corrupt("a stored B-LTA file without its blob".into()))?;
        Ok(DueArchive {
            target,
            blob,
            expires_at: from_unix(self.archive_expires_at)?,
            revision: self.revision,
        })
    }
}

#[async_trait]
impl ArchiveStore for SqlStore {
    async fn claim_due_archives(
        &self,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<DueArchive>> {
        let (documents, orders) = match self.dialect {
            Dialect::Sqlite => (CLAIM_DOCUMENT_ARCHIVES, CLAIM_ORDER_ARCHIVES),
            Dialect::Postgres => (
                CLAIM_DOCUMENT_ARCHIVES_SKIP_LOCKED,
                CLAIM_ORDER_ARCHIVES_SKIP_LOCKED,
            ),
        };
        let (until, due_before, now) = (to_unix(now + lease), to_unix(due_before), to_unix(now));
        self.write(move |tx| {
            Box::pin(async move {
                let mut claimed = Vec::new();
                for (sql, is_order) in [(documents, false), (orders, true)] {
                    let rows = sqlx::query_as::<_, ClaimedRow>(sql)
                        .bind(until)
                        .bind(due_before)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in rows {
                        claimed.push(row.into_due(is_order)?);
                    }
                }
                claimed.sort_by_key(|due| due.expires_at);
                Ok(claimed)
            })
        })
        .await
    }

    async fn record_archive_timestamp(
        &self,
        due: &DueArchive,
        file: &ArchivedFile,
    ) -> StoreResult<bool> {
        let (due, file) = (due.clone(), file.clone());
        let switched = self
            .write(move |tx| {
                Box::pin(async move {
                    let result = match due.target {
                        ArchiveTarget::Document(id) => {
                            sqlx::query(SWAP_DOCUMENT_FILE)
                                .bind(file.blob.as_str())
                                .bind(to_count(file.size)?)
                                .bind(to_unix(file.expires_at))
                                .bind(id.to_string())
                                .bind(due.blob.as_str())
                                .execute(&mut *tx)
                                .await?
                        }
                        ArchiveTarget::Order(id) => {
                            sqlx::query(SWAP_ORDER_FILE)
                                .bind(file.blob.as_str())
                                .bind(to_count(file.size)?)
                                .bind(file.sha256.to_string())
                                .bind(to_unix(file.expires_at))
                                .bind(id.to_string())
                                .bind(due.blob.as_str())
                                .bind(due.revision)
                                .execute(&mut *tx)
                                .await?
                        }
                    };
                    Ok(result.rows_affected() == 1)
                })
            })
            .await?;
        // A cached signed document must not keep naming the blob about to be removed.
        if switched {
            self.changed().await;
        }
        Ok(switched)
    }
}
