//! The change signal behind the read caches: a value that differs whenever a process committed a
//! change a cache may hold (an API key revoked, a signer's status or certificate changed, a signed
//! document deleted or its file replaced), so the request path can trust a cached answer without
//! asking the database — and stop trusting it on the very next request after such a commit, also
//! when the commit came from another process (the `signet` CLI, another replica).
//!
//! How another process's commit is seen:
//! - **SQLite**: every process that shares the database shares a small file beside it
//!   (`<database>.changes`, owner-only). A writer overwrites its 8 bytes with a fresh random value
//!   after its commit; a reader keeps the file open and reads those 8 bytes with one `pread` per
//!   check (the page cache is shared, so the next read after the writer's `pwrite` returns sees
//!   it). That costs about a microsecond, no thread hop and no database round trip.
//! - **PostgreSQL**: a writer sends `NOTIFY signet_changes` after its commit; each server keeps a
//!   `LISTEN` connection and counts what arrives. While that connection is down (and until it
//!   first listens) [`Changes::current`] answers `None` and nothing cached is trusted, since a
//!   notification may have been missed.
//!
//! A writer in this process also bumps a local counter, so its own caches never wait for the
//! file or the notification.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The PostgreSQL channel writers notify and servers listen on.
pub const CHANNEL: &str = "signet_changes";

/// What [`Changes::current`] returns: equal values mean nothing a cache holds changed between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    local: u64,
    shared: u64,
}

/// The change signal of one store (see the module documentation).
#[derive(Debug)]
pub struct Changes {
    local: AtomicU64,
    shared: Shared,
}

#[derive(Debug)]
enum Shared {
    /// Nobody else can write (an in-memory SQLite database).
    Alone,
    /// SQLite: the generation file beside the database.
    File { file: std::fs::File, path: PathBuf },
    /// PostgreSQL: notifications counted by the listener task, and the URL to notify through.
    Notify(Arc<Listened>),
}

#[derive(Debug, Default)]
struct Listened {
    /// Notifications (and reconnections) seen.
    count: AtomicU64,
    /// Whether the `LISTEN` connection is up: only then can a cached answer be trusted.
    listening: AtomicBool,
}

impl Changes {
    /// A store no other process can write.
    pub fn alone() -> Self {
        Self {
            local: AtomicU64::new(0),
            shared: Shared::Alone,
        }
    }

    /// SQLite: the generation file beside `database` (created owner-only when missing).
    pub fn beside_database(database: &Path) -> std::io::Result<Self> {
        let mut name = database.as_os_str().to_owned();
        name.push(".changes");
        let path = PathBuf::from(name);
        let file = crate::data_dir::private_file_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        Ok(Self {
            local: AtomicU64::new(0),
            shared: Shared::File { file, path },
        })
    }

    /// PostgreSQL: trusted only once [`Changes::listen`] runs and has its connection.
    pub fn notified() -> Self {
        Self {
            local: AtomicU64::new(0),
            shared: Shared::Notify(Arc::default()),
        }
    }

    /// The current generation, or `None` when a change by another process could go unseen (the
    /// file cannot be read, the `LISTEN` connection is down): then nothing cached may be used.
    pub fn current(&self) -> Option<Generation> {
        // Read the local counter first: a bump between the two reads then shows in `shared` or
        // in the next call's `local`, never hides.
        let local = self.local.load(Ordering::Acquire);
        let shared = match &self.shared {
            Shared::Alone => 0,
            Shared::File { file, .. } => {
                let mut bytes = [0u8; 8];
                // A short read is an empty (new) file: generation 0 until the first bump.
                let read = file.read_at(&mut bytes, 0).ok()?;
                if read != 0 && read != bytes.len() {
                    return None;
                }
                u64::from_le_bytes(bytes)
            }
            Shared::Notify(listened) => {
                if !listened.listening.load(Ordering::Acquire) {
                    return None;
                }
                listened.count.load(Ordering::Acquire)
            }
        };
        Some(Generation { local, shared })
    }

    /// Says, after a commit, that something a cache may hold changed: this process's caches see
    /// it at once, other processes on their next check. SQLite: the file's 8 bytes are rewritten
    /// in place (no fsync: the signal is for processes running now; a restart starts cold).
    pub fn bump(&self) {
        self.local.fetch_add(1, Ordering::AcqRel);
        if let Shared::File { file, path } = &self.shared {
            // A fresh random value, not a counter: two processes bumping at once need no lock,
            // and the value only has to differ from what readers hold.
            let value = rand::random::<u64>().max(1);
            if let Err(error) = file.write_at(&value.to_le_bytes(), 0) {
                // Other processes would keep trusting their caches: say so loudly.
                tracing::error!(path = %path.display(), %error, "could not signal a change to other processes sharing the database; restart them to be sure they see it");
            }
        }
    }

    /// Whether writes must also `NOTIFY` (PostgreSQL).
    pub(crate) fn notifies(&self) -> bool {
        matches!(self.shared, Shared::Notify(_))
    }

    /// PostgreSQL: keeps a `LISTEN` connection to `url` and counts notifications until the
    /// process ends; reconnects after a loss (counting the reconnection as a change, since
    /// notifications sent meanwhile were missed). Does nothing for the other kinds.
    pub fn listen(self: &Arc<Self>, url: String) {
        let Shared::Notify(listened) = &self.shared else {
            return;
        };
        let listened = listened.clone();
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(100);
            loop {
                match listen_once(&url, &listened).await {
                    Ok(()) => pause = Duration::from_millis(100),
                    Err(error) => {
                        tracing::warn!(%error, "the change listener lost its PostgreSQL connection; read caches are off until it is back");
                    }
                }
                listened.listening.store(false, Ordering::Release);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        });
    }
}

/// One `LISTEN` connection's life: counts notifications until the connection fails.
async fn listen_once(url: &str, listened: &Listened) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    // Whatever changed before LISTEN took effect is behind us: a new generation, then trust.
    listened.count.fetch_add(1, Ordering::AcqRel);
    listened.listening.store(true, Ordering::Release);
    loop {
        match listener.try_recv().await? {
            Some(_) => {
                listened.count.fetch_add(1, Ordering::AcqRel);
            }
            // The connection was lost (`recv` would quietly reconnect and hide what was missed
            // meanwhile): stop trusting, count the gap as a change, start over.
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bump_in_another_handle_on_the_same_file_changes_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("signet.db");
        let server = Changes::beside_database(&database).unwrap();
        let cli = Changes::beside_database(&database).unwrap();
        let before = server.current().unwrap();
        assert_eq!(server.current(), Some(before), "stable without changes");
        cli.bump();
        assert_ne!(server.current().unwrap(), before);
    }

    #[test]
    fn a_local_bump_changes_the_generation_at_once() {
        let changes = Changes::alone();
        let before = changes.current().unwrap();
        changes.bump();
        assert_ne!(changes.current().unwrap(), before);
    }

    #[test]
    fn nothing_is_trusted_before_the_listener_listens() {
        assert_eq!(Changes::notified().current(), None);
    }
}
