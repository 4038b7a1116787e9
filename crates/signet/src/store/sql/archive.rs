//! [`ArchiveStore`] in portable SQL: the claim is one `UPDATE … WHERE id IN (SELECT …)` per
//! table, which sets the lease and returns the rows (with `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, as the outbox claims); the record is a compare-and-set on the row's blob (and an
//! order's revision).

use async_trait::async_trait;
use sqlx::Row;
use time::{Duration, OffsetDateTime};

use super::{from_unix, parse_blob, to_count, to_unix, SqlStore};
use crate::domain::{DocumentId, OrderId};
use crate::store::archive::{ArchiveStore, ArchiveTarget, ArchivedFile, DueArchive};
use crate::store::{Dialect, StoreError, StoreResult};

#[async_trait]
impl ArchiveStore for SqlStore {
    async fn claim_due_archives(
        &self,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<DueArchive>> {
        let lock = match self.dialect {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let documents = format!(
            "UPDATE documents SET archive_claimed_until = $1 WHERE document_id IN (\
             SELECT document_id FROM documents WHERE archive_expires_at IS NOT NULL \
             AND archive_expires_at <= $2 AND status = 'SIGNED' \
             AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
             ORDER BY archive_expires_at LIMIT $4{lock}) \
             RETURNING document_id, signed_blob AS file_blob, archive_expires_at, CAST(0 AS BIGINT) AS revision"
        );
        let orders = format!(
            "UPDATE orders SET archive_claimed_until = $1 WHERE order_id IN (\
             SELECT order_id FROM orders WHERE archive_expires_at IS NOT NULL \
             AND archive_expires_at <= $2 AND state = 'ACCEPTED' \
             AND (archive_claimed_until IS NULL OR archive_claimed_until <= $3) \
             ORDER BY archive_expires_at LIMIT $4{lock}) \
             RETURNING order_id, document_blob AS file_blob, archive_expires_at, revision"
        );
        let (until, due_before, now) = (to_unix(now + lease), to_unix(due_before), to_unix(now));
        self.write(move |tx| {
            Box::pin(async move {
                let mut claimed = Vec::new();
                for (sql, is_order) in [(documents, false), (orders, true)] {
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(until)
                        .bind(due_before)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    for row in rows {
                        let target = if is_order {
                            let id: String = row.try_get("order_id")?;
                            ArchiveTarget::Order(OrderId::parse(&id).map_err(|e| {
                                StoreError::Corrupt(format!("order id {id:?}: {e}"))
                            })?)
                        } else {
                            let id: String = row.try_get("document_id")?;
                            ArchiveTarget::Document(DocumentId::parse(&id).map_err(|e| {
                                StoreError::Corrupt(format!("document id {id:?}: {e}"))
                            })?)
                        };
                        let blob = parse_blob(row.try_get("file_blob")?)?.ok_or_else(|| {
                            StoreError::Corrupt("a stored B-LTA file without its blob".into())
                        })?;
                        claimed.push(DueArchive {
                            target,
                            blob,
                            expires_at: from_unix(row.try_get("archive_expires_at")?)?,
                            revision: row.try_get("revision")?,
                        });
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
                            sqlx::query(
                                "UPDATE documents SET signed_blob = $1, signed_size = $2, \
                             archive_expires_at = $3, archive_claimed_until = NULL \
                             WHERE document_id = $4 AND signed_blob = $5 AND status = 'SIGNED'",
                            )
                            .bind(file.blob.as_str())
                            .bind(to_count(file.size)?)
                            .bind(to_unix(file.expires_at))
                            .bind(id.to_string())
                            .bind(due.blob.as_str())
                            .execute(&mut *tx)
                            .await?
                        }
                        ArchiveTarget::Order(id) => {
                            sqlx::query(
                                "UPDATE orders SET document_blob = $1, document_size = $2, \
                             document_sha256 = $3, revision = revision + 1, \
                             archive_expires_at = $4, archive_claimed_until = NULL \
                             WHERE order_id = $5 AND document_blob = $6 AND revision = $7 \
                             AND state = 'ACCEPTED'",
                            )
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
