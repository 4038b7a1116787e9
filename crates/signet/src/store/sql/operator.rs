//! [`OperatorStore`] on SQL: listings for the operator commands, API-key revocation, the
//! SQLite snapshot for backups.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::path::Path;
use time::OffsetDateTime;

use super::{from_unix, to_unix, SqlStore};
use crate::store::operator::{
    ApiKeySummary, OperatorStore, OrderSignerSummary, OrderSummary, SignerSummary,
};
use crate::store::{Dialect, StoreError, StoreResult};

/// A revoked key's `key_hash` column: `revoked:<unix seconds>:<id>`. The hash itself is gone
/// (no one can authenticate with the key again, even after a restore of an older cache), and
/// the value stays unique because the id is. Kept in the existing column so that revocation
/// needs no migration.
const REVOKED_PREFIX: &str = "revoked:";

const SELECT_ORDERS: &str =
    "SELECT order_id, title, state, signatures, created_at, due_at FROM orders";

fn optional_time(seconds: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    seconds.map(from_unix).transpose()
}

fn order_from_row(row: &AnyRow) -> StoreResult<OrderSummary> {
    Ok(OrderSummary {
        order_id: row.try_get("order_id")?,
        title: row.try_get("title")?,
        state: row.try_get("state")?,
        signatures: row.try_get("signatures")?,
        created_at: from_unix(row.try_get("created_at")?)?,
        due_at: from_unix(row.try_get("due_at")?)?,
        signers: Vec::new(),
    })
}

impl SqlStore {
    async fn order_signers(&self, order_id: &str) -> StoreResult<Vec<OrderSignerSummary>> {
        let rows = sqlx::query(
            "SELECT position, source, priority_group, status, action_at FROM order_signers \
             WHERE order_id = $1 ORDER BY position",
        )
        .bind(order_id.to_owned())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OrderSignerSummary {
                    position: row.try_get("position")?,
                    source: row.try_get("source")?,
                    priority_group: row.try_get("priority_group")?,
                    status: row.try_get("status")?,
                    action_at: optional_time(row.try_get("action_at")?)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeySummary>> {
        let rows =
            sqlx::query("SELECT id, key_hash, created_at FROM api_keys ORDER BY created_at, id")
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|row| {
                let hash: String = row.try_get("key_hash")?;
                let revoked_at = match hash.strip_prefix(REVOKED_PREFIX) {
                    Some(rest) => {
                        let seconds = rest
                            .split(':')
                            .next()
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or_else(|| {
                                StoreError::Corrupt(format!("api key revocation {hash:?}"))
                            })?;
                        Some(from_unix(seconds)?)
                    }
                    None => None,
                };
                Ok(ApiKeySummary {
                    id: row.try_get("id")?,
                    created_at: from_unix(row.try_get("created_at")?)?,
                    revoked_at,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip(self, now))]
    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let (id, marker) = (
            id.to_owned(),
            format!("{REVOKED_PREFIX}{}:{id}", to_unix(now)),
        );
        let revoked = self.write(move |tx| {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE api_keys SET key_hash = $1 WHERE id = $2 AND key_hash NOT LIKE 'revoked:%'",
                )
                .bind(marker)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await?;
        if revoked {
            // Servers (this process is usually the CLI) must refuse the key on the next request.
            self.changed().await;
        }
        Ok(revoked)
    }

    async fn list_signers(&self, limit: i64) -> StoreResult<Vec<SignerSummary>> {
        let rows = sqlx::query(
            "SELECT signer_id, status, current_serial, not_after, created_at FROM signers \
             ORDER BY created_at, signer_id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SignerSummary {
                    signer_id: row.try_get("signer_id")?,
                    status: row.try_get("status")?,
                    current_serial: row.try_get("current_serial")?,
                    not_after: from_unix(row.try_get("not_after")?)?,
                    created_at: from_unix(row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    async fn list_orders(&self, limit: i64) -> StoreResult<Vec<OrderSummary>> {
        let sql = format!("{SELECT_ORDERS} ORDER BY created_at DESC, order_id LIMIT $1");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut order = order_from_row(row)?;
            order.signers = self.order_signers(&order.order_id).await?;
            orders.push(order);
        }
        Ok(orders)
    }

    async fn order_summary(&self, order_id: &str) -> StoreResult<Option<OrderSummary>> {
        let sql = format!("{SELECT_ORDERS} WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id.to_owned())
            .fetch_optional(&self.reader)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut order = order_from_row(&row)?;
                order.signers = self.order_signers(order_id).await?;
                Ok(Some(order))
            }
        }
    }

    async fn snapshot_into(&self, dest: &Path) -> StoreResult<Option<()>> {
        if self.dialect != Dialect::Sqlite {
            return Ok(None);
        }
        let dest = dest.to_str().ok_or_else(|| {
            StoreError::Corrupt(format!("backup path {} is not UTF-8", dest.display()))
        })?;
        // A reader connection: VACUUM INTO copies one read transaction's view of the database,
        // so every write committed before it began is in the copy and none is half in it.
        sqlx::query("VACUUM INTO $1")
            .bind(dest.to_owned())
            .execute(&self.reader)
            .await?;
        Ok(Some(()))
    }

    async fn all_blob_keys(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT prepared_blob AS blob FROM documents WHERE prepared_blob IS NOT NULL \
             UNION SELECT signed_blob AS blob FROM documents WHERE signed_blob IS NOT NULL \
             UNION SELECT document_blob AS blob FROM orders",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get::<String, _>("blob")?))
            .collect()
    }
}
