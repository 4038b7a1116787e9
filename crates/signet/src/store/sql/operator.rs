//! [`OperatorStore`] on SQL: listings for the operator commands, API-key revocation, the
//! SQLite snapshot for backups.

use async_trait::async_trait;
use std::path::Path;
use time::OffsetDateTime;

use super::{from_unix, to_unix, SqlStore};
use crate::store::operator::{
    ApiKeySummary, OperatorStore, OrderSignerSummary, OrderSummary, SignerSummary,
};
use crate::store::{Dialect, StoreError, StoreResult};

const SELECT_ORDER_SIGNER_SUMMARIES: &str =
    "SELECT position, source, priority_group, status, action_at FROM order_signers \
             WHERE order_id = $1 ORDER BY position";
const SELECT_API_KEYS: &str =
    "SELECT id, key_hash, created_at FROM api_keys ORDER BY created_at, id";
const REVOKE_API_KEY: &str =
    "UPDATE api_keys SET key_hash = $1 WHERE id = $2 AND key_hash NOT LIKE 'revoked:%'";
const SELECT_SIGNER_SUMMARIES: &str =
    "SELECT signer_id, status, current_serial, not_after, created_at FROM signers \
             ORDER BY created_at, signer_id LIMIT $1";
const SELECT_ALL_BLOB_KEYS: &str =
    "SELECT prepared_blob AS blob FROM documents WHERE prepared_blob IS NOT NULL \
             UNION SELECT signed_blob AS blob FROM documents WHERE signed_blob IS NOT NULL \
             UNION SELECT document_blob AS blob FROM orders";

/// A revoked key's `key_hash` column: `revoked:<unix seconds>:<id>`. The hash itself is gone
/// (no one can authenticate with the key again, even after a restore of an older cache), and
/// the value stays unique because the id is. Kept in the existing column so that revocation
/// needs no migration.
/// Copies one read transaction's view of the database to a new file (SQLite only).
const VACUUM_INTO: &str = "VACUUM INTO $1";

const REVOKED_PREFIX: &str = "revoked:";

/// An order's summary columns (a macro so the statements below stay `const` literals).
macro_rules! select_orders {
    () => {
        "SELECT order_id, title, state, signatures, created_at, due_at FROM orders"
    };
}
const SELECT_RECENT_ORDERS: &str = concat!(
    select_orders!(),
    " ORDER BY created_at DESC, order_id LIMIT $1"
);
const SELECT_ORDER_SUMMARY: &str = concat!(select_orders!(), " WHERE order_id = $1");

fn optional_time(seconds: Option<i64>) -> StoreResult<Option<OffsetDateTime>> {
    seconds.map(from_unix).transpose()
}

/// An order's summary columns ([`select_orders`]).
#[derive(sqlx::FromRow)]
struct OrderSummaryRow {
    order_id: String,
    title: String,
    state: String,
    signatures: i64,
    created_at: i64,
    due_at: i64,
}

impl TryFrom<OrderSummaryRow> for OrderSummary {
    type Error = StoreError;

    /// The summary without its signers (read apart, by [`SqlStore::order_signers`]).
    fn try_from(row: OrderSummaryRow) -> StoreResult<Self> {
        Ok(OrderSummary {
            order_id: row.order_id,
            title: row.title,
            state: row.state,
            signatures: row.signatures,
            created_at: from_unix(row.created_at)?,
            due_at: from_unix(row.due_at)?,
            signers: Vec::new(),
        })
    }
}

/// A task's summary columns ([`SELECT_ORDER_SIGNER_SUMMARIES`]).
#[derive(sqlx::FromRow)]
struct OrderSignerSummaryRow {
    position: i64,
    source: String,
    priority_group: i64,
    status: String,
    action_at: Option<i64>,
}

impl TryFrom<OrderSignerSummaryRow> for OrderSignerSummary {
    type Error = StoreError;

    fn try_from(row: OrderSignerSummaryRow) -> StoreResult<Self> {
        Ok(OrderSignerSummary {
            position: row.position,
            source: row.source,
            priority_group: row.priority_group,
            status: row.status,
            action_at: optional_time(row.action_at)?,
        })
    }
}

/// An `api_keys` row ([`SELECT_API_KEYS`]).
#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    key_hash: String,
    created_at: i64,
}

impl TryFrom<ApiKeyRow> for ApiKeySummary {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> StoreResult<Self> {
        let hash = row.key_hash;
        let revoked_at = match hash.strip_prefix(REVOKED_PREFIX) {
            Some(rest) => {
                let seconds = rest
                    .split(':')
                    .next()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| StoreError::Corrupt(format!("api key revocation {hash:?}")))?;
                Some(from_unix(seconds)?)
            }
            None => None,
        };
        Ok(ApiKeySummary {
            id: row.id,
            created_at: from_unix(row.created_at)?,
            revoked_at,
        })
    }
}

/// A signer's summary columns ([`SELECT_SIGNER_SUMMARIES`]).
#[derive(sqlx::FromRow)]
struct SignerSummaryRow {
    signer_id: String,
    status: String,
    current_serial: String,
    not_after: i64,
    created_at: i64,
}

impl TryFrom<SignerSummaryRow> for SignerSummary {
    type Error = StoreError;

    fn try_from(row: SignerSummaryRow) -> StoreResult<Self> {
        Ok(SignerSummary {
            signer_id: row.signer_id,
            status: row.status,
            current_serial: row.current_serial,
            not_after: from_unix(row.not_after)?,
            created_at: from_unix(row.created_at)?,
        })
    }
}

impl SqlStore {
    async fn order_signers(&self, order_id: &str) -> StoreResult<Vec<OrderSignerSummary>> {
        sqlx::query_as::<_, OrderSignerSummaryRow>(SELECT_ORDER_SIGNER_SUMMARIES)
            .bind(order_id.to_owned())
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(OrderSignerSummary::try_from)
            .collect()
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeySummary>> {
        sqlx::query_as::<_, ApiKeyRow>(SELECT_API_KEYS)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(ApiKeySummary::try_from)
            .collect()
    }

    #[tracing::instrument(skip(self, now))]
    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool> {
        let (id, marker) = (
            id.to_owned(),
            format!("{REVOKED_PREFIX}{}:{id}", to_unix(now)),
        );
        let revoked = self
            .write(move |tx| {
                Box::pin(async move {
                    let done = sqlx::query(REVOKE_API_KEY)
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
        sqlx::query_as::<_, SignerSummaryRow>(SELECT_SIGNER_SUMMARIES)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(SignerSummary::try_from)
            .collect()
    }

    async fn list_orders(&self, limit: i64) -> StoreResult<Vec<OrderSummary>> {
        let rows = sqlx::query_as::<_, OrderSummaryRow>(SELECT_RECENT_ORDERS)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in rows {
            let mut order = OrderSummary::try_from(row)?;
            order.signers = self.order_signers(&order.order_id).await?;
            orders.push(order);
        }
        Ok(orders)
    }

    async fn order_summary(&self, order_id: &str) -> StoreResult<Option<OrderSummary>> {
        let row = sqlx::query_as::<_, OrderSummaryRow>(SELECT_ORDER_SUMMARY)
            .bind(order_id.to_owned())
            .fetch_optional(&self.reader)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let mut order = OrderSummary::try_from(row)?;
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
        sqlx::query(VACUUM_INTO)
            .bind(dest.to_owned())
            .execute(&self.reader)
            .await?;
        Ok(Some(()))
    }

    async fn all_blob_keys(&self) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(SELECT_ALL_BLOB_KEYS)
            .fetch_all(&self.reader)
            .await?)
    }
}
