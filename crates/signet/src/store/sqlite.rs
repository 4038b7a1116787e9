//! SQLite, the embedded default: one file in the data directory, WAL mode, durable commits.

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::Executor;
use std::time::Duration;

use super::changes::Changes;
use super::sql::SqlStore;
use super::{Dialect, StoreResult};

static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Opens (creating if missing) the SQLite database at `url` and migrates it.
pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    let url = with_create_mode(url);
    create_private_database_file(&url)?;
    // Every connection gets the same pragmas. synchronous=FULL makes each commit reach the disk
    // before we answer the client: an acknowledged write survives a crash or power loss.
    let options = || {
        AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(30))
            // The connection lives in this process: a ping before each use cannot find a broken
            // link, it only costs one more round trip to the connection's thread per query.
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                         PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                    )
                    .await?;
                    Ok(())
                })
            })
    };
    // The writer pool has a single connection: SQLite admits one writer at a time, and
    // queueing writes in-process is cheaper and fairer than retrying on SQLITE_BUSY.
    let writer = options().max_connections(1).connect(&url).await?;
    MIGRATOR.run(&writer).await?;
    let reader = options()
        .max_connections(reader_connections())
        .connect(&url)
        .await?;
    Ok(SqlStore::new(
        Dialect::Sqlite,
        reader,
        writer,
        changes_for(&url)?,
    ))
}

/// The change signal every process on this database file shares (see [`Changes`]); an
/// in-memory database has no other process.
fn changes_for(url: &str) -> StoreResult<Changes> {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    if url.contains(":memory:") || path.as_os_str().is_empty() {
        return Ok(Changes::alone());
    }
    Changes::beside_database(path).map_err(|e| sqlx::Error::Io(e).into())
}

/// `sqlite:path` opens read-write but refuses a missing file; the embedded default must create it.
fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") || url.contains(":memory:") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Creates a missing database file empty and owner-only before SQLite opens it, which would
/// create it with the umask's leave (0644 under the usual 022). SQLite gives the `-wal`, `-shm`
/// and `-journal` files it makes later the main file's mode, so they are owner-only too. An
/// empty file is a valid empty database. In-memory databases and URLs that do not ask for
/// creation (`mode=ro`, `mode=rw`) are left alone.
fn create_private_database_file(url: &str) -> StoreResult<()> {
    use std::str::FromStr;
    if !url.contains("mode=rwc") || url.contains(":memory:") {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() || path.exists() {
        return Ok(());
    }
    match crate::data_dir::private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        // Another process created it first: it is that process's (and SQLite's) file now.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(sqlx::Error::Io(error).into()),
        Ok(_) => Ok(()),
    }
}

/// Readers run on one thread each (sqlx's SQLite driver); more of them than cores only adds
/// thread switches, since every read is short.
fn reader_connections() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(8))
        .unwrap_or(2)
        .clamp(2, 8)
}
