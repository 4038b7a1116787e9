//! PostgreSQL, the production database: several Signet processes may share one.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use std::time::Duration;

use super::sql::SqlStore;
use super::{Dialect, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connects to PostgreSQL at `url` and migrates it. A `search_path` given in the URL's
/// `options` parameter is honoured, which is how tests give each run its own schema.
pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    // Migrations take an advisory lock, so replicas starting together do not race.
    MIGRATOR.run(&pool).await?;
    Ok(SqlStore::new(Dialect::Postgres, pool.clone(), pool))
}
