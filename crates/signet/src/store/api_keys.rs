//! What the store keeps of API keys (only their hashes) and the [`ApiKeyStore`] trait the
//! authentication path and `admin api-key` need; listing and revoking are the operator's
//! ([`super::operator::OperatorStore`]).

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// API key hashes.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores the hash of a new API key.
    async fn insert_api_key(
        &self,
        id: &str,
        key_hash: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()>;
    async fn api_key_hash_exists(&self, key_hash: &str) -> StoreResult<bool>;
    async fn count_api_keys(&self) -> StoreResult<i64>;
}
