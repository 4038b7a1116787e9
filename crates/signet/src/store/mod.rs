//! Persistence: narrow traits, one per record family ([`signers::SignerStore`],
//! [`documents::DocumentStore`], [`orders::OrderStore`], [`events::EventStore`],
//! [`outbox::OutboxStore`], …), gathered under the [`Store`] supertrait the application state
//! holds; one portable SQL implementation ([`sql::SqlStore`], a file per family under `sql/`) on
//! SQLite or PostgreSQL; and the blob store for document bytes ([`blob_backend::Blobs`]: files in
//! the data directory, or an S3-compatible bucket). Code that needs one family names that
//! family's trait, so what it may touch is visible in its signature.
//!
//! Why one implementation: the SQL we need is portable (TEXT ids, BIGINT unix seconds, BLOB/BYTEA),
//! so both databases run the same statements through sqlx's `Any` driver. What differs —
//! connection set-up, how a transaction takes its write lock, how a job claims rows — lives in
//! [`sqlite`] and [`postgres`] behind [`Dialect`]. The story test in `tests/api/store_story.rs`
//! runs one scenario against both to keep them equal.

pub mod api_keys;
pub mod archive;
pub mod blob_backend;
pub mod blobs;
pub mod changes;
pub mod documents;
pub mod events;
mod group_commit;
pub mod installation;
pub mod objects;
pub mod operator;
pub mod orders;
pub mod outbox;
pub mod postgres;
pub mod signer_access;
pub mod signers;
pub mod sql;
pub mod sqlite;
pub mod stats;

use std::sync::Arc;

pub use api_keys::ApiKeyStore;
pub use documents::{DocumentRecord, DocumentStore, SignedFile};
pub use events::EventStore;
pub use orders::OrderStore;
pub use signer_access::SignerAccessStore;
pub use signers::{
    CertificateRecord, CrlRecord, DueRenewal, EnrollOutcome, Enrollment, IssuedFor, NewCertificate,
    RenewFn, RevokedRecord, SignatureCertificateRecord, SignerRecord, SignerStore, StatusChange,
};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Failures of the persistence layer. Client mistakes never surface as these: the domain and the
/// API refuse them first, so every variant here is an operator-level problem (HTTP 500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("issuing a certificate inside a job failed: {0}")]
    Issuing(String),
    #[error("the batched write failed: {0}")]
    GroupCommit(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Signet persists in its database: every family's trait, for wiring one
/// `Arc<dyn Store>` through the application. Code that needs one family takes that family's
/// trait instead (a `&dyn Store` coerces to it).
pub trait Store:
    ApiKeyStore
    + SignerStore
    + DocumentStore
    + OrderStore
    + SignerAccessStore
    + EventStore
    + outbox::OutboxStore
    + archive::ArchiveStore
    + stats::StatsStore
    + installation::InstallationStore
    + Send
    + Sync
    + 'static
{
    fn dialect(&self) -> Dialect;

    /// The change signal the read caches check (see [`changes`]).
    fn changes(&self) -> Arc<changes::Changes>;
}

/// Opens the database named by `url` (`sqlite:…` or `postgres://…`) and brings its schema up to
/// date, with PostgreSQL's default pool size.
pub async fn connect(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    connect_with(url, postgres::DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect`] with at most `max_connections` pooled PostgreSQL connections
/// (`database_max_connections`; SQLite ignores it).
pub async fn connect_with(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = connect_sql_with(url, max_connections).await?;
    Ok(store)
}

/// [`connect`], keeping the concrete store (the operator commands also use [`operator::OperatorStore`]).
pub async fn connect_sql(url: &str) -> anyhow::Result<Arc<sql::SqlStore>> {
    connect_sql_with(url, postgres::DEFAULT_MAX_CONNECTIONS).await
}

/// [`connect_sql`] with at most `max_connections` pooled PostgreSQL connections.
pub async fn connect_sql_with(
    url: &str,
    max_connections: u32,
) -> anyhow::Result<Arc<sql::SqlStore>> {
    use anyhow::Context;
    let store = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        // The host is named, never the URL: it may carry the password.
        let host = database_host(url);
        match postgres::connect(url, max_connections).await {
            Err(StoreError::Database(sqlx::Error::PoolTimedOut)) => anyhow::bail!(
                "connecting to PostgreSQL at {host}: no answer within {} s",
                postgres::CONNECT_TIMEOUT.as_secs()
            ),
            result => result.with_context(|| format!("connecting to PostgreSQL at {host}"))?,
        }
    } else if url.starts_with("sqlite:") {
        sqlite::connect(url)
            .await
            .context("opening the SQLite database")?
    } else {
        anyhow::bail!("unsupported database URL: expected sqlite:… or postgres://…");
    };
    Ok(Arc::new(store))
}

/// `host:port` of a PostgreSQL URL, for messages (never the user or password).
pub fn database_host(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => format!(
            "{}:{}",
            parsed.host_str().unwrap_or("localhost"),
            parsed.port().unwrap_or(5432)
        ),
        Err(_) => "an unparsable URL".to_owned(),
    }
}
