//! The readiness read and the scrape-time counts. Each count is one grouped read: orders and
//! the outbox through their indexes (`orders_due`, the partial `outbox_due`), signers through
//! `signers_due_for_expiry`; documents have no status index, so theirs is a scan, which the
//! metrics renderer keeps rare by caching the counts for a few seconds.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{to_unix, SqlStore};
use crate::store::stats::{StatsStore, StatusCounts};
use crate::store::StoreResult;

const PING: &str = "SELECT 1 AS one FROM api_keys LIMIT 1";
const DOCUMENTS: &str = "SELECT status AS label, COUNT(*) AS n FROM documents GROUP BY status";
const ORDERS: &str = "SELECT state AS label, COUNT(*) AS n FROM orders GROUP BY state";
const OUTBOX: &str = "SELECT channel AS label, COUNT(*) AS n FROM outbox \
     WHERE delivered_at IS NULL AND gave_up_at IS NULL GROUP BY channel";
const EXPIRING: &str = "SELECT COUNT(*) AS n FROM signers \
     WHERE status IN ('ACTIVE', 'BLOCKED') AND not_after < $1";

impl SqlStore {
    async fn grouped(&self, statement: &'static str) -> StoreResult<Vec<(String, i64)>> {
        Ok(sqlx::query_as(statement).fetch_all(&self.reader).await?)
    }
}

#[async_trait]
impl StatsStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(PING).fetch_optional(&self.reader).await?;
        Ok(())
    }

    async fn status_counts(&self, expiring_before: OffsetDateTime) -> StoreResult<StatusCounts> {
        let certificates_expiring: i64 = sqlx::query_scalar(EXPIRING)
            .bind(to_unix(expiring_before))
            .fetch_one(&self.reader)
            .await?;
        Ok(StatusCounts {
            documents: self.grouped(DOCUMENTS).await?,
            orders: self.grouped(ORDERS).await?,
            outbox: self.grouped(OUTBOX).await?,
            certificates_expiring,
        })
    }
}
