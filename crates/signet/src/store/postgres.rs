//! PostgreSQL, the production database: several Signet processes may share one.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use std::time::Duration;

use super::changes::Changes;
use super::sql::SqlStore;
use super::{Dialect, StoreError, StoreResult};

/// How long the first connection may take before PostgreSQL counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pool size when none is configured (`database_max_connections`).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connects to PostgreSQL at `url` and migrates it. A `search_path` given in the URL's
/// `options` parameter is honoured, which is how tests give each run its own schema. The pool
/// opens at most `max_connections` (the change listener's connection is not among them).
pub async fn connect(url: &str, max_connections: u32) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    // One direct connection first, bounded: a host that never answers (a firewall dropping
    // packets, a server that accepts and stays silent) fails within CONNECT_TIMEOUT instead of
    // the OS's minutes-long TCP timeout, and a refusal is reported as such at once (a pool would
    // retry it until its acquire timeout).
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        <sqlx::AnyConnection as sqlx::Connection>::connect(url),
    )
    .await
    {
        Ok(connection) => {
            let _ = sqlx::Connection::close(connection?).await;
        }
        Err(_) => return Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
    }
    let pool = AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(url)?;
    // Migrations take an advisory lock, so replicas starting together do not race.
    MIGRATOR.run(&pool).await?;
    Ok(SqlStore::new(
        Dialect::Postgres,
        pool.clone(),
        pool,
        Changes::notified(),
    ))
}
