//! API key hashes in SQL ([`ApiKeyStore`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{to_unix, SqlStore};
use crate::store::api_keys::ApiKeyStore;
use crate::store::StoreResult;

const INSERT_API_KEY: &str = "INSERT INTO api_keys (id, key_hash, created_at) VALUES ($1, $2, $3)";
const FIND_KEY_HASH: &str = "SELECT 1 AS found FROM api_keys WHERE key_hash = $1";
const COUNT_API_KEYS: &str = "SELECT COUNT(*) AS n FROM api_keys";

#[async_trait]
impl ApiKeyStore for SqlStore {
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
                sqlx::query(INSERT_API_KEY)
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
        // Only whether a row exists matters (the literal's type differs between the databases).
        let found = sqlx::query(FIND_KEY_HASH)
            .bind(key_hash)
            .fetch_optional(&self.reader)
            .await?;
        Ok(found.is_some())
    }

    async fn count_api_keys(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(COUNT_API_KEYS)
            .fetch_one(&self.reader)
            .await?)
    }
}
