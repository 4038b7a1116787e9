//! What the operator commands (`signet api-key list|revoke`, `signet signer list`, `signet
//! order list|show`, `signet backup`) read and change: a narrow trait beside [`super::Store`],
//! so the request path's trait does not grow with listings no request makes.
//!
//! Nothing here carries a personal number, a name or an e-mail address: an operator's terminal
//! and a script's log are not places for them.

use async_trait::async_trait;
use serde::Serialize;
use std::path::Path;
use time::OffsetDateTime;

use super::StoreResult;

/// An API key as the operator sees it: never the key, nor its hash.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeySummary {
    pub id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A CloudSigner signer in a listing (no user id: it is often a personal number).
#[derive(Debug, Clone, Serialize)]
pub struct SignerSummary {
    pub signer_id: String,
    pub status: String,
    pub current_serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One signer's task on an order: where it stands, not who it is.
#[derive(Debug, Clone, Serialize)]
pub struct OrderSignerSummary {
    pub position: i64,
    /// INTERNAL or EXTERNAL.
    pub source: String,
    pub priority_group: i64,
    pub status: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub action_at: Option<OffsetDateTime>,
}

/// A signing order in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct OrderSummary {
    pub order_id: String,
    pub title: String,
    pub state: String,
    pub signatures: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    pub signers: Vec<OrderSignerSummary>,
}

/// The operator commands' reads and writes.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// Every API key, oldest first.
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeySummary>>;
    /// Revokes the key with this id: its hash is forgotten, so it can never authenticate
    /// again. False when there is no such key or it was revoked already.
    async fn revoke_api_key(&self, id: &str, now: OffsetDateTime) -> StoreResult<bool>;
    /// Signers, oldest first, at most `limit`.
    async fn list_signers(&self, limit: i64) -> StoreResult<Vec<SignerSummary>>;
    /// Orders, newest first, at most `limit`, each with its signers' tasks.
    async fn list_orders(&self, limit: i64) -> StoreResult<Vec<OrderSummary>>;
    async fn order_summary(&self, order_id: &str) -> StoreResult<Option<OrderSummary>>;
    /// Writes a consistent copy of the database to `dest` (SQLite's `VACUUM INTO`, a read
    /// transaction: writers go on meanwhile). `None` on PostgreSQL, which has `pg_dump`.
    async fn snapshot_into(&self, dest: &Path) -> StoreResult<Option<()>>;
    /// Every blob key a row names (documents' prepared and signed files, orders' current version).
    async fn all_blob_keys(&self) -> StoreResult<Vec<String>>;
}
