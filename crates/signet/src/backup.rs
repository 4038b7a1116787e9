//! `signet backup DIR` and `signet restore DIR`: a consistent copy of a data directory taken
//! while the server runs, and its return into an empty one.
//!
//! Consistency comes from the order of the copies and the blob store's durability protocol
//! (docs/ARCHITECTURE.md): a row naming a blob is committed only after the blob is durable, so
//! the database snapshot is taken **first** (SQLite's `VACUUM INTO`, one read transaction) and
//! then exactly the blobs that snapshot names are copied. Every document the snapshot knows is
//! therefore on disk when its file is copied. Two cases need care:
//! - a CloudSigner signature fills the prepared file in place under an exclusive `flock`; each
//!   file is copied under a shared `flock`, so a copy never holds half a placeholder (a filled
//!   placeholder beside a WAITING row is what a crashed attempt leaves, and is refilled);
//! - a signing order's superseded version is removed after the commit of the next one, so a
//!   version the snapshot names may be gone by the time it is copied. Then a new snapshot is
//!   taken (it names the newer version) and only the missing blobs are copied, until none is.
//!
//! PostgreSQL has `pg_dump` for its part: Signet copies the blobs (all of them) and the keys,
//! and says so. Run `pg_dump` first, then `signet backup`, so every blob the dump names exists.
//!
//! Documents in an object store (`--blob-url s3://…`) are not copied: the bucket is the
//! operator's to back up (versioning, replication, the provider's snapshots); the backup then
//! holds the database and the keys ([`backup`] with `with_blobs` false).

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

use crate::data_dir::{create_private_dir_all, private_file_options};
use crate::store::blobs::BlobKey;
use crate::store::operator::OperatorStore;

/// The file that marks a directory as a Signet backup.
pub const MANIFEST: &str = "signet-backup.json";

/// Files of the data directory that are the database itself (copied by the snapshot, never
/// as files: a copy of a live SQLite file and its WAL is not a database).
const DATABASE_FILES: &[&str] = &[
    "signet.db",
    "signet.db-wal",
    "signet.db-shm",
    "signet.db-journal",
];

/// How many snapshots a backup takes at most while signing orders keep superseding versions.
const SNAPSHOT_ATTEMPTS: usize = 10;

/// What a backup holds, written to [`MANIFEST`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// `sqlite` when `signet.db` is in the backup; `postgresql` when the database is not (use
    /// `pg_dump`).
    pub database: String,
    /// Blob files copied.
    pub blobs: usize,
    /// Other files copied (CA, link and webhook keys, …).
    pub files: usize,
    /// Snapshots taken before every named blob was copied.
    pub snapshots: usize,
}

/// Copies `data_dir` (database through `store`) into `dest`, which must be missing or empty;
/// the documents too when `with_blobs` (they are files in the data directory).
pub async fn backup(
    data_dir: &Path,
    store: &dyn OperatorStore,
    dest: &Path,
    now: OffsetDateTime,
    with_blobs: bool,
) -> anyhow::Result<Manifest> {
    require_empty_or_missing(dest)?;
    create_private_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let files = {
        let (data_dir, dest) = (data_dir.to_owned(), dest.to_owned());
        tokio::task::spawn_blocking(move || copy_key_files(&data_dir, &dest)).await??
    };
    let snapshot = dest.join("signet.db");
    let mut snapshots = 0;
    let (database, blobs) = loop {
        if snapshots == SNAPSHOT_ATTEMPTS {
            bail!(
                "the blobs named by {SNAPSHOT_ATTEMPTS} successive snapshots kept disappearing \
                 (signing orders superseding versions faster than the copy); try again"
            );
        }
        remove_if_exists(&snapshot)?;
        snapshots += 1;
        let snapshot_taken = store
            .snapshot_into(&snapshot)
            .await
            .context("taking the database snapshot")?;
        if !with_blobs {
            if snapshot_taken.is_some() {
                integrity_check(&snapshot).await?;
            }
            break (
                if snapshot_taken.is_some() {
                    "sqlite"
                } else {
                    "postgresql"
                },
                0,
            );
        }
        let Some(()) = snapshot_taken else {
            // PostgreSQL: every blob present now.
            let (data_dir, dest) = (data_dir.to_owned(), dest.to_owned());
            let count =
                tokio::task::spawn_blocking(move || copy_all_blobs(&data_dir, &dest)).await??;
            break ("postgresql", count);
        };
        // Every blob the snapshot names, again on a retry: a prepared file copied by an earlier
        // attempt may have been filled since, and this snapshot may say SIGNED.
        let keys = snapshot_blob_keys(&snapshot).await?;
        let (data_dir_owned, dest_owned) = (data_dir.to_owned(), dest.to_owned());
        let (done, missing) = tokio::task::spawn_blocking(move || {
            copy_named_blobs(&data_dir_owned, &dest_owned, &keys)
        })
        .await??;
        if missing.is_empty() {
            integrity_check(&snapshot).await?;
            break ("sqlite", done.len());
        }
        tracing::info!(
            missing = missing.len(),
            "blobs the snapshot names were superseded meanwhile; taking a newer snapshot"
        );
    };
    let manifest = Manifest {
        format: 1,
        created_at: now,
        database: database.to_owned(),
        blobs,
        files,
        snapshots,
    };
    write_file(
        &dest.join(MANIFEST),
        &serde_json::to_vec_pretty(&manifest).context("encoding the manifest")?,
    )?;
    File::open(dest)?.sync_all()?;
    Ok(manifest)
}

/// Copies the backup in `source` into `data_dir`, which must be missing or empty.
pub fn restore(source: &Path, data_dir: &Path) -> anyhow::Result<Manifest> {
    let manifest_path = source.join(MANIFEST);
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(&manifest_path).with_context(|| {
            format!(
                "{} is not a Signet backup (no {MANIFEST})",
                source.display()
            )
        })?)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    require_empty_or_missing(data_dir)?;
    create_private_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    copy_tree(source, data_dir, &|relative| {
        relative == Path::new(MANIFEST)
    })?;
    File::open(data_dir)?.sync_all()?;
    Ok(manifest)
}

/// Refuses a directory that holds anything: a backup or a restore never mixes with other files.
fn require_empty_or_missing(dir: &Path) -> anyhow::Result<()> {
    match fs::read_dir(dir) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error).with_context(|| format!("reading {}", dir.display())),
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: give a directory that does not exist or is empty",
                    dir.display()
                );
            }
            Ok(())
        }
    }
}

fn remove_if_exists(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The blob keys the snapshot's rows name.
async fn snapshot_blob_keys(snapshot: &Path) -> anyhow::Result<Vec<String>> {
    use sqlx::{Connection, Row};
    let mut connection = open_snapshot(snapshot).await?;
    let rows = sqlx::query(
        "SELECT prepared_blob AS blob FROM documents WHERE prepared_blob IS NOT NULL \
         UNION SELECT signed_blob AS blob FROM documents WHERE signed_blob IS NOT NULL \
         UNION SELECT document_blob AS blob FROM orders",
    )
    .fetch_all(&mut connection)
    .await
    .context("reading the blob keys of the snapshot")?;
    let keys = rows
        .iter()
        .map(|row| row.try_get::<String, _>("blob"))
        .collect::<Result<Vec<_>, _>>()?;
    connection.close().await?;
    Ok(keys)
}

async fn open_snapshot(snapshot: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    use sqlx::Connection;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(snapshot)
        .read_only(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the snapshot {}", snapshot.display()))
}

/// `PRAGMA integrity_check` on a database file; anything but `ok` is an error.
pub async fn integrity_check(database: &Path) -> anyhow::Result<()> {
    use sqlx::{Connection, Row};
    let mut connection = open_snapshot(database).await?;
    let row = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&mut connection)
        .await?;
    let verdict: String = row.try_get(0)?;
    connection.close().await?;
    if verdict != "ok" {
        bail!(
            "{} fails SQLite's integrity check: {verdict}",
            database.display()
        );
    }
    Ok(())
}

/// Copies the blobs named by `keys`; returns those copied and those that no longer exist.
fn copy_named_blobs(
    data_dir: &Path,
    dest: &Path,
    keys: &[String],
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let (mut done, mut missing) = (Vec::new(), Vec::new());
    for raw in keys {
        // Only well-formed keys: a stored key never names a path outside the blob directory.
        let key = BlobKey::parse(raw).map_err(anyhow::Error::msg)?;
        let relative = Path::new("blobs").join(key.as_str());
        match copy_locked(&data_dir.join(&relative), &dest.join(&relative)) {
            Ok(()) => done.push(raw.clone()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => missing.push(raw.clone()),
            Err(error) => {
                return Err(error).with_context(|| format!("copying {}", relative.display()))
            }
        }
    }
    Ok((done, missing))
}

/// Every blob under `blobs/documents` and `blobs/orders` (PostgreSQL, whose rows are not read).
fn copy_all_blobs(data_dir: &Path, dest: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for part in ["documents", "orders"] {
        let relative = Path::new("blobs").join(part);
        if data_dir.join(&relative).is_dir() {
            count += copy_tree(&data_dir.join(&relative), &dest.join(&relative), &|_| false)?;
        }
    }
    Ok(count)
}

/// Copies the data directory's other files (CA, link key, webhook secret, …), not the
/// database files and not the blobs.
fn copy_key_files(data_dir: &Path, dest: &Path) -> anyhow::Result<usize> {
    copy_tree(data_dir, dest, &|relative| {
        relative == Path::new("blobs")
            || DATABASE_FILES
                .iter()
                .any(|name| relative == Path::new(name))
    })
}

/// Copies the tree under `from` into `to` (files 0600, directories 0700, each file under a
/// shared lock and synced), skipping relative paths `skip` names; returns the files copied.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> anyhow::Result<usize> {
    let mut count = 0;
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let source = from.join(&relative);
        create_private_dir_all(&to.join(&relative))
            .with_context(|| format!("creating {}", to.join(&relative).display()))?;
        for entry in
            fs::read_dir(&source).with_context(|| format!("reading {}", source.display()))?
        {
            let entry = entry?;
            let child = relative.join(entry.file_name());
            if skip(&child) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(child);
            } else if kind.is_file() {
                copy_locked(&from.join(&child), &to.join(&child))
                    .with_context(|| format!("copying {}", child.display()))?;
                count += 1;
            }
        }
        File::open(to.join(&relative))?.sync_all()?;
    }
    Ok(count)
}

/// Copies one file under a shared `flock` (a signature filling it in place holds the exclusive
/// one), through a temporary name, synced before it is renamed into place.
fn copy_locked(from: &Path, to: &Path) -> io::Result<()> {
    let mut source = File::open(from)?;
    source.lock_shared()?;
    if let Some(parent) = to.parent() {
        create_private_dir_all(parent)?;
    }
    let temporary = to.with_extension("partial");
    let mut target = private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    io::copy(&mut source, &mut target)?;
    target.sync_all()?;
    drop(source);
    fs::rename(&temporary, to)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_refuses_a_directory_that_holds_anything_or_is_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("backup");
        fs::create_dir(&source).unwrap();
        let error = restore(&source, &dir.path().join("data")).unwrap_err();
        assert!(format!("{error:#}").contains(MANIFEST), "{error:#}");
        write_file(
            &source.join(MANIFEST),
            br#"{"format":1,"created_at":"2026-12-07T00:00:00Z","database":"sqlite","blobs":0,"files":0,"snapshots":1}"#,
        )
        .unwrap();
        fs::create_dir_all(source.join("ca")).unwrap();
        fs::write(source.join("ca/ca.key"), b"k").unwrap();
        let busy = dir.path().join("busy");
        fs::create_dir(&busy).unwrap();
        fs::write(busy.join("x"), b"x").unwrap();
        let error = restore(&source, &busy).unwrap_err();
        assert!(format!("{error:#}").contains("not empty"), "{error:#}");
        let data = dir.path().join("data");
        restore(&source, &data).unwrap();
        assert_eq!(fs::read(data.join("ca/ca.key")).unwrap(), b"k");
        assert!(!data.join(MANIFEST).exists());
    }
}
