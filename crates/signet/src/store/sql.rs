//! The portable SQL implementation of the store traits, shared by SQLite and PostgreSQL: the
//! [`SqlStore`] itself, its one way to write (`SqlStore::write`) and the conversions every
//! family uses; each family's statements and rows live in their own file below (`signers`,
//! `documents`, `orders`, `events`, `outbox`, …).
//!
//! Statements use `$N` placeholders, which both sqlx drivers bind by number, and are named
//! `const`s in their family's file. The only statements that differ per database are the row
//! locks, chosen through [`Dialect`]. Rows are read into `#[derive(sqlx::FromRow)]` structs of
//! plain column types (`i64`, `String`, `Vec<u8>`, `Option` of them: what the `Any` driver
//! decodes) and parsed into the domain records by a `TryFrom`.

use futures::future::BoxFuture;
use sqlx::{Any, AnyConnection, Pool, Transaction};
use std::sync::Arc;

type AnyPool = Pool<Any>;
use time::OffsetDateTime;

use super::blobs::BlobKey;
use super::changes::{self, Changes};
use super::group_commit::GroupCommit;
use super::{Dialect, Store, StoreError, StoreResult};

/// Tells the other replicas' listeners that something cached changed (PostgreSQL only).
const NOTIFY_CHANGE: &str = "SELECT pg_notify($1, '')";

mod api_keys;
mod archive;
mod blobs;
mod documents;
mod events;
mod installation;
mod operator;
mod orders;
mod outbox;
mod signer_access;
mod signers;
mod stats;
pub use orders::event;

/// A database reached through sqlx's `Any` driver. SQLite gets a single-connection writer pool
/// (one writer at a time is SQLite's rule anyway, and queuing in-process beats SQLITE_BUSY) and a
/// separate reader pool; PostgreSQL uses one pool for both.
#[derive(Debug, Clone)]
pub struct SqlStore {
    dialect: Dialect,
    reader: AnyPool,
    writer: AnyPool,
    /// SQLite's batching writer (see [`GroupCommit`]); PostgreSQL commits each request itself.
    group: Option<GroupCommit>,
    /// Bumped after a commit that changes what the read caches may hold.
    changes: Arc<Changes>,
}

pub(crate) fn to_unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

pub(crate) fn from_unix(seconds: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|e| StoreError::Corrupt(format!("timestamp {seconds} out of range: {e}")))
}

fn corrupt(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_count(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} does not fit BIGINT")))
}

fn from_count(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative size {value}")))
}

fn parse_blob(raw: Option<String>) -> StoreResult<Option<BlobKey>> {
    raw.map(|key| BlobKey::parse(&key).map_err(corrupt("blob key")))
        .transpose()
}

impl SqlStore {
    pub(crate) fn new(
        dialect: Dialect,
        reader: AnyPool,
        writer: AnyPool,
        changes: Changes,
    ) -> Self {
        let group = (dialect == Dialect::Sqlite).then(|| GroupCommit::start(writer.clone()));
        Self {
            dialect,
            reader,
            writer,
            group,
            changes: Arc::new(changes),
        }
    }

    /// Says, after a commit, that an API key, a signer or a signed document changed, so that
    /// no read cache (this process's or another's) serves the old answer again. On PostgreSQL
    /// the notification is one more statement: a failure is logged, not returned, since the
    /// change itself is committed (other replicas then see it when their listener reconnects
    /// or not at all, hence the error level).
    pub(crate) async fn changed(&self) {
        self.changes.bump();
        if self.changes.notifies() {
            if let Err(error) = sqlx::query(NOTIFY_CHANGE)
                .bind(changes::CHANNEL)
                .execute(&self.writer)
                .await
            {
                tracing::error!(%error, "could not notify other replicas of a change; their read caches may serve it stale");
            }
        }
    }

    /// Runs `work` in a write transaction: batched with other requests on SQLite, its own
    /// transaction on PostgreSQL. Returns once the result is committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        match &self.group {
            Some(group) => group.write(work).await,
            None => {
                let mut tx = self.begin_write().await?;
                let result = work(&mut tx).await?;
                tx.commit().await?;
                Ok(result)
            }
        }
    }

    /// Starts a transaction that will write. SQLite must take its write lock up front
    /// (`BEGIN IMMEDIATE`); a deferred transaction that reads first and upgrades later can fail
    /// with SQLITE_BUSY when another process writes in between.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(match self.dialect {
            Dialect::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Dialect::Postgres => self.writer.begin().await?,
        })
    }
}

impl Store for SqlStore {
    fn changes(&self) -> Arc<Changes> {
        self.changes.clone()
    }

    fn dialect(&self) -> Dialect {
        self.dialect
    }
}
