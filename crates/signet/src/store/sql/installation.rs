//! [`InstallationStore`] in portable SQL: `INSERT … ON CONFLICT DO NOTHING` (SQLite and
//! PostgreSQL both have it) and a read of what is there, in one write transaction, so a racing
//! first start sees the winner's value.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{to_unix, SqlStore};
use crate::store::installation::InstallationStore;
use crate::store::StoreResult;

const RECORD: &str = "INSERT INTO installation (fact, value, recorded_at) VALUES ($1, $2, $3) \
     ON CONFLICT (fact) DO NOTHING";
const READ: &str = "SELECT value FROM installation WHERE fact = $1";

#[async_trait]
impl InstallationStore for SqlStore {
    async fn record_fact_once(
        &self,
        fact: &str,
        value: &str,
        now: OffsetDateTime,
    ) -> StoreResult<String> {
        let (fact, value, now) = (fact.to_owned(), value.to_owned(), to_unix(now));
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(RECORD)
                    .bind(fact.as_str())
                    .bind(value.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Ok(sqlx::query_scalar(READ)
                    .bind(fact.as_str())
                    .fetch_one(&mut *tx)
                    .await?)
            })
        })
        .await
    }
}
