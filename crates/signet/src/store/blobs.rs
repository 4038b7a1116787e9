//! Document bytes on disk, never in database rows. A blob is written under `tmp/`, flushed to
//! the disk, and only then renamed into place (its directory synced, and that directory's parent
//! too when it is new), so a crash leaves either the whole file or none of it. Bytes a client can
//! download are never rewritten (a CloudSigner signature fills the prepared file's placeholder,
//! which no one downloads; an order's new version is a new file). The database row that names a
//! blob is committed after the blob is durable, so an acknowledged document always has its bytes;
//! a crash in between leaves at most an orphan: a file under `tmp/`, or a file in place that no
//! row names (its row never committed, or it was superseded or deleted and the removal after
//! the commit never ran). [`BlobStore::sweep`] removes both kinds once they are old enough that
//! no request can still be using them. Directories are created 0700 and files 0600.
//!
//! Several processes (replicas behind a load balancer, a CLI command beside the server) may share
//! one data directory. Each writes its temporary files into a directory of its own,
//! `tmp/<replica-id>/`, and holds an exclusive `flock` on `tmp/<replica-id>.lock` for as long as it
//! runs: a sweep removes another process's temporary directory only when it can take that lock,
//! that is when the process is gone (the kernel releases a dead process's locks), and never the
//! files of one still uploading, however slowly.
use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::data_dir::{create_private_dir_all, private_file_options};
use crate::domain::{DocumentId, OrderId};

/// A temporary file untouched for this long belongs to no request: an upload writes to it as its
/// bytes arrive (each write renews its time, however slow the client) and persists it seconds
/// after the last one. Removing one that a request still held would only fail that request (its
/// rename finds nothing); it cannot lose an acknowledged document.
pub const TEMP_ORPHAN_AGE: Duration = Duration::from_secs(60 * 60);

/// A file in place that no row names is removed only once it is this old. Between a blob's
/// rename and its row's commit the file is unnamed too, and removing it then would lose a
/// document the client is about to be told is stored; a day is far beyond any commit's wait (a
/// table lock held by a backup, a stalled disk), while orphans only come from crashes and cost
/// nothing but space meanwhile.
pub const BLOB_ORPHAN_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// How many candidate orphans one store lookup checks.
const SWEEP_BATCH: usize = 256;

/// Which blob of a document: the prepared PDF (waiting for a signature) or one signed version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

/// The row that may name a blob: every key carries its document's or order's id, so whether a
/// blob is still named is a primary-key lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOwner {
    Document(DocumentId),
    Order(OrderId),
}

impl BlobKey {
    /// A CloudSigner document's one file: the upload plus Signet's signature revision, whose
    /// placeholder the device's signature later fills in place. Directly under `documents/`:
    /// a directory per document cost a `mkdir` (an inode allocation) and two more directory
    /// flushes per upload, the largest single cost of the upload path.
    pub fn prepared(document: DocumentId) -> Self {
        BlobKey(format!("documents/{document}.pdf"))
    }

    /// A CloudSigner document's signed file after an archive timestamp renewed it: a new file
    /// beside the one it supersedes (`documents/<id>/signed-<version>.pdf`, a shape the store
    /// already knew from its older layout), so a download never sees bytes rewritten.
    pub fn document_version(document: DocumentId, version: uuid::Uuid) -> Self {
        BlobKey(format!(
            "documents/{document}/signed-{}.pdf",
            version.simple()
        ))
    }

    /// One version of a signing order's PDF (the upload, then one per signature). Each version
    /// is a new file, so a signature that loses a race never touches the winner's bytes.
    pub fn order_version(order: OrderId, version: uuid::Uuid) -> Self {
        BlobKey(format!("orders/{order}/{}.pdf", version.simple()))
    }

    /// The key as stored in the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts only keys of the shapes above, so a stored key can never name a path outside
    /// the blob directory.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let is_hex_id = |hex: &str| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let mut parts = raw.split('/');
        let well_formed = match parts.next() {
            Some("documents") => match (parts.next(), parts.next()) {
                (Some(file), None) => file
                    .strip_suffix(".pdf")
                    .is_some_and(|id| DocumentId::parse(id).is_ok()),
                // The layout of data directories written before documents were flat files:
                // `documents/<id>/prepared.pdf` and `documents/<id>/signed-<attempt>.pdf`.
                (Some(id), Some(name)) => {
                    DocumentId::parse(id).is_ok()
                        && (name == "prepared.pdf"
                            || name
                                .strip_prefix("signed-")
                                .and_then(|rest| rest.strip_suffix(".pdf"))
                                .is_some_and(is_hex_id))
                }
                _ => false,
            },
            Some("orders") => {
                parts.next().is_some_and(|id| {
                    OrderId::parse(id).is_ok_and(|parsed| parsed.to_string() == id)
                }) && parts
                    .next()
                    .and_then(|name| name.strip_suffix(".pdf"))
                    .is_some_and(is_hex_id)
            }
            _ => false,
        } && parts.next().is_none();
        if well_formed {
            Ok(BlobKey(raw.to_owned()))
        } else {
            Err(format!("{raw:?} is not a blob key"))
        }
    }

    /// The document or order this blob belongs to; `None` when the key spells its id in another
    /// form than the one Signet writes (never for keys Signet made), so such a file is never
    /// judged by a lookup that could miss it.
    pub fn owner(&self) -> Option<BlobOwner> {
        let mut parts = self.0.split('/');
        let (kind, id) = (parts.next()?, parts.next()?);
        match kind {
            "documents" => {
                let id = id.strip_suffix(".pdf").unwrap_or(id);
                let parsed = DocumentId::parse(id).ok()?;
                (parsed.to_string() == id).then_some(BlobOwner::Document(parsed))
            }
            "orders" => {
                let parsed = OrderId::parse(id).ok()?;
                (parsed.to_string() == id).then_some(BlobOwner::Order(parsed))
            }
            _ => None,
        }
    }

    /// The document directory this blob lives in.
    fn directory(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

/// The blob store rooted in the data directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    /// Flushes of `documents/`, shared by concurrent uploads.
    documents_sync: Arc<DirectorySync>,
    /// This process's temporary directory and the lock that says it is alive.
    replica: Arc<ReplicaTemp>,
}

/// A process's own temporary directory, `tmp/<id>/`, kept while the lock on `tmp/<id>.lock` is
/// held. The lock file is made (and locked) under a provisional name and renamed into place
/// before the directory exists, so a sweep never sees a live directory whose lock it could take.
#[derive(Debug)]
struct ReplicaTemp {
    id: String,
    dir: PathBuf,
    lock_path: PathBuf,
    /// Holds the exclusive `flock`; closing it (on drop, or by the kernel when the process dies)
    /// releases it.
    _lock: File,
}

impl ReplicaTemp {
    fn create(tmp: &Path) -> io::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let provisional = tmp.join(format!("{id}{PROVISIONAL_LOCK_SUFFIX}"));
        let lock = private_file_options()
            .write(true)
            .create_new(true)
            .open(&provisional)?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => {
                io::Error::other("a brand-new lock file is locked by someone else")
            }
        })?;
        let lock_path = tmp.join(format!("{id}{LOCK_SUFFIX}"));
        fs::rename(&provisional, &lock_path)?;
        let dir = tmp.join(&id);
        create_private_dir_all(&dir)?;
        Ok(Self {
            id,
            dir,
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for ReplicaTemp {
    /// A clean stop takes its directory with it (while the lock is still held, so no sweep
    /// races it); after a crash a sweep of another process, or of the next start, does.
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// `tmp/<id>.lock`: held by the live process whose temporary files are in `tmp/<id>/`.
const LOCK_SUFFIX: &str = ".lock";
/// A lock file not yet renamed into place (a crash in between leaves one, removed by age).
const PROVISIONAL_LOCK_SUFFIX: &str = ".lock.new";

/// Group flushing of one directory that many requests rename files into: a request that needs
/// its rename durable waits for one flush that began after its rename, and the flush that one
/// request makes covers every rename done before it. Under load, one `fsync` of `documents/`
/// serves many uploads instead of one each.
#[derive(Debug)]
struct DirectorySync {
    path: PathBuf,
    /// Renames announced so far.
    renamed: AtomicU64,
    /// How many of them the last completed flush covers; held while flushing.
    flushed: Mutex<u64>,
}

impl DirectorySync {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            renamed: AtomicU64::new(0),
            flushed: Mutex::new(0),
        }
    }

    /// Returns once a flush of the directory that started after this call has completed.
    fn sync_after_rename(&self) -> io::Result<()> {
        let ticket = self.renamed.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.lock().unwrap_or_else(|e| e.into_inner());
        if *flushed >= ticket {
            return Ok(());
        }
        // Every rename announced up to here happened before this flush starts.
        let covered = self.renamed.load(Ordering::SeqCst);
        File::open(&self.path)?.sync_all()?;
        *flushed = covered;
        Ok(())
    }
}

/// A file being written under `tmp/`; removed on drop unless persisted.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    persisted: bool,
}

impl TempBlob {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl BlobStore {
    /// Opens (creating, owner-only) the store under `data_dir/blobs` with a temporary directory
    /// of this process's own (a new replica id each time), and removes the temporary files of
    /// processes that are gone (their lock is free), and loose temporary files of the older
    /// flat layout once [`TEMP_ORPHAN_AGE`] old.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        let tmp = root.join("tmp");
        create_private_dir_all(&tmp)?;
        let store = BlobStore {
            documents_sync: Arc::new(DirectorySync::new(root.join("documents"))),
            replica: Arc::new(ReplicaTemp::create(&tmp)?),
            root,
        };
        create_private_dir_all(&store.root.join("documents"))?;
        create_private_dir_all(&store.root.join("orders"))?;
        // The layout itself must survive a crash before the first blob relies on it.
        for directory in [data_dir, store.root.as_path()] {
            File::open(directory)?.sync_all()?;
        }
        let removed = store.sweep_temp(SystemTime::now())?;
        if removed > 0 {
            tracing::info!(
                removed,
                "removed temporary files a crash left in the blob store"
            );
        }
        Ok(store)
    }

    /// The directory the store lives in (`<data-dir>/blobs`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// This process's replica id: the name of its temporary directory under `blobs/tmp/`.
    pub fn replica_id(&self) -> &str {
        &self.replica.id
    }

    /// Where `key` lives on disk.
    pub fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// A new empty temporary file, open for reading and writing.
    pub fn create_temp(&self) -> io::Result<(TempBlob, File)> {
        let path = self
            .replica
            .dir
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = private_file_options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((
            TempBlob {
                path,
                persisted: false,
            },
            file,
        ))
    }

    /// Makes `temp` durable and moves it to `key`. `file` must be the temporary file's handle.
    pub fn persist(&self, mut temp: TempBlob, file: &File, key: &BlobKey) -> io::Result<()> {
        file.sync_all()?;
        let directory = self.root.join(key.directory());
        if directory == self.documents_sync.path {
            fs::rename(&temp.path, self.path(key))?;
            temp.persisted = true;
            return self.documents_sync.sync_after_rename();
        }
        let created = !directory.exists();
        create_private_dir_all(&directory)?;
        fs::rename(&temp.path, self.path(key))?;
        temp.persisted = true;
        File::open(&directory)?.sync_all()?;
        if created {
            // A new document or order directory is itself a new entry in its parent
            // (`documents/`, `orders/`): without flushing the parent too, a crash could lose the
            // directory, and the acknowledged blob with it.
            if let Some(parent) = directory.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        Ok(())
    }

    /// Copies the blob `from` into a new temporary file and returns it for further writing.
    pub fn copy_to_temp(&self, from: &BlobKey) -> io::Result<(TempBlob, File)> {
        let (temp, mut file) = self.create_temp()?;
        let mut source = File::open(self.path(from))?;
        io::copy(&mut source, &mut file)?;
        Ok((temp, file))
    }

    /// Opens a blob for reading.
    pub fn open_read(&self, key: &BlobKey) -> io::Result<File> {
        File::open(self.path(key))
    }

    /// Removes one blob; a missing file is not an error (removal is idempotent).
    pub fn remove(&self, key: &BlobKey) -> io::Result<()> {
        match fs::remove_file(self.path(key)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every version of a signing order's PDF.
    pub fn remove_order(&self, order: OrderId) -> io::Result<()> {
        match fs::remove_dir_all(self.root.join(format!("orders/{order}"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes what a crash left behind: temporary files older than [`TEMP_ORPHAN_AGE`], and
    /// files in place older than [`BLOB_ORPHAN_AGE`] that `referenced` (asked in batches, and
    /// answering which of the keys a row names) does not return. Files whose names are not
    /// blob keys Signet writes are left alone. Safe to run on several processes at once, and
    /// to interrupt: every step is a removal that a second run repeats harmlessly. Stops at the
    /// first error of `referenced`, so nothing is removed on a failed lookup.
    pub fn sweep(
        &self,
        now: SystemTime,
        referenced: impl FnMut(&[BlobKey]) -> io::Result<HashSet<BlobKey>>,
    ) -> io::Result<SweepReport> {
        let mut sweep = Sweep {
            store: self,
            now,
            referenced,
            batch: Vec::new(),
            report: SweepReport {
                temp_removed: self.sweep_temp(now)?,
                ..SweepReport::default()
            },
        };
        // `documents/` holds one file per document, and (the older layout) one directory per
        // document; `orders/` one directory per order.
        for entry in fs::read_dir(self.root.join("documents"))? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                sweep.report.left_alone += 1;
                continue;
            };
            let kind = entry.file_type()?;
            if kind.is_file() {
                sweep.consider(&format!("documents/{name}"), &entry.path())?;
            } else if kind.is_dir() {
                sweep.consider_directory(&format!("documents/{name}"), &entry.path())?;
            } else {
                sweep.report.left_alone += 1;
            }
        }
        for entry in fs::read_dir(self.root.join("orders"))? {
            let entry = entry?;
            let name = entry.file_name().to_str().map(str::to_owned);
            match name {
                Some(name) if entry.file_type()?.is_dir() => {
                    sweep.consider_directory(&format!("orders/{name}"), &entry.path())?;
                }
                _ => sweep.report.left_alone += 1,
            }
        }
        sweep.flush()?;
        Ok(sweep.report)
    }

    /// Removes what no live process will use under `tmp/`; returns how many files went:
    /// - another process's directory `tmp/<id>/` whose lock `tmp/<id>.lock` can be taken (that
    ///   process is gone) or is missing (the lock is made before the directory and removed after
    ///   it, so a directory without one belongs to no one), with its lock file;
    /// - in this process's own directory, files older than [`TEMP_ORPHAN_AGE`] (a request drops
    ///   its file when it ends, so only a leak leaves one);
    /// - loose files (the flat layout of earlier versions, a provisional lock file a crash left)
    ///   older than [`TEMP_ORPHAN_AGE`]: a process of an earlier version may still be writing
    ///   younger ones.
    ///
    /// Directories whose lock is held are left alone whatever their age: an upload may be slow.
    pub(crate) fn sweep_temp(&self, now: SystemTime) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(self.tmp_dir())? {
            let entry = entry?;
            let path = entry.path();
            let metadata = match fs::symlink_metadata(&path) {
                Ok(metadata) => metadata,
                // Persisted or dropped by its request meanwhile.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if metadata.is_dir() {
                if path == self.replica.dir {
                    removed += remove_old_files(&path, now)?;
                } else if is_replica_id(name) {
                    removed += remove_dead_replica_dir(&self.tmp_dir(), name)?;
                }
            } else if let Some(id) = name.strip_suffix(LOCK_SUFFIX) {
                // A lock whose directory is gone: a process that died between placing its
                // lock and making its directory, or a sweep interrupted between the two
                // removals. Removed only if free, like any other.
                if is_replica_id(id) && !self.tmp_dir().join(id).exists() {
                    removed += remove_dead_replica_dir(&self.tmp_dir(), id)?;
                }
            } else if metadata.is_file() && older_than(&metadata, now, TEMP_ORPHAN_AGE) {
                removed += usize::from(remove_if_present(&path)?);
            }
        }
        Ok(removed)
    }

    /// Removes every blob of a document, in the current layout and the older one with a
    /// directory per document. Missing files are not an error: deleting is idempotent.
    pub fn remove_document(&self, document: DocumentId) -> io::Result<()> {
        self.remove(&BlobKey::prepared(document))?;
        match fs::remove_dir_all(self.root.join(format!("documents/{document}"))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// What one [`BlobStore::sweep`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    /// Temporary files removed.
    pub temp_removed: usize,
    /// Files in place that no row named, removed.
    pub orphans_removed: usize,
    /// Old files in place that a row names (kept, of course).
    pub referenced: usize,
    /// Entries that are not blob keys Signet writes (foreign files, links): never touched.
    pub left_alone: usize,
}

/// One pass over the placed blobs: candidates are gathered in batches, each batch checked with
/// one store lookup, and the unnamed ones removed.
struct Sweep<'a, F> {
    store: &'a BlobStore,
    now: SystemTime,
    referenced: F,
    batch: Vec<BlobKey>,
    report: SweepReport,
}

impl<F: FnMut(&[BlobKey]) -> io::Result<HashSet<BlobKey>>> Sweep<'_, F> {
    /// Queues the file at `path` (key `relative`) when it is an old blob Signet wrote.
    fn consider(&mut self, relative: &str, path: &Path) -> io::Result<()> {
        let key = match BlobKey::parse(relative) {
            Ok(key) if key.owner().is_some() => key,
            _ => {
                self.report.left_alone += 1;
                return Ok(());
            }
        };
        match fs::symlink_metadata(path) {
            Ok(metadata) if older_than(&metadata, self.now, BLOB_ORPHAN_AGE) => {}
            Ok(_) => return Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        }
        self.batch.push(key);
        if self.batch.len() >= SWEEP_BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// Queues the files of a document's or an order's directory; an old empty one is removed.
    fn consider_directory(&mut self, relative: &str, path: &Path) -> io::Result<()> {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            // Removed with its order or document meanwhile.
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(error) => return Err(error),
        };
        let mut empty = true;
        for entry in entries {
            let entry = entry?;
            empty = false;
            match entry.file_name().to_str() {
                Some(name) if entry.file_type()?.is_file() => {
                    self.consider(&format!("{relative}/{name}"), &entry.path())?;
                }
                _ => self.report.left_alone += 1,
            }
        }
        if empty
            && names_blob_directory(relative)
            && fs::metadata(path).is_ok_and(|m| older_than(&m, self.now, BLOB_ORPHAN_AGE))
        {
            // An order's directory is created with its first version, so an old empty one is
            // left by a removal that stopped half-way. `remove_dir` refuses a non-empty one.
            let _ = fs::remove_dir(path);
        }
        Ok(())
    }

    /// Asks which queued keys are named, removes the others, and then their directory when
    /// that left it empty (`remove_dir` refuses a directory that still holds anything).
    fn flush(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        let named = (self.referenced)(&batch)?;
        let mut emptied = Vec::new();
        for key in batch {
            if named.contains(&key) {
                self.report.referenced += 1;
                continue;
            }
            if remove_if_present(&self.store.path(&key))? {
                self.report.orphans_removed += 1;
                tracing::debug!(blob = key.as_str(), "removed a blob no row names");
            }
            let directory = key.directory();
            if directory.contains('/') && !emptied.iter().any(|d: &String| d == directory) {
                emptied.push(directory.to_owned());
            }
        }
        for directory in emptied {
            let _ = fs::remove_dir(self.store.root.join(directory));
        }
        Ok(())
    }
}

/// Whether `name` is a replica id as [`ReplicaTemp`] makes them (32 lowercase hex digits), so a
/// directory someone else put under `tmp/` is never removed.
fn is_replica_id(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes `tmp/<id>/` and `tmp/<id>.lock` if the process that made them is gone: its lock can
/// be taken, or its lock file is missing. Returns how many temporary files went.
fn remove_dead_replica_dir(tmp: &Path, id: &str) -> io::Result<usize> {
    let dir = tmp.join(id);
    let lock_path = tmp.join(format!("{id}{LOCK_SUFFIX}"));
    let lock = match File::options().write(true).open(&lock_path) {
        Ok(lock) => Some(lock),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(error),
    };
    if let Some(lock) = &lock {
        match lock.try_lock() {
            Ok(()) => {}
            // Alive (or another sweep is removing it right now).
            Err(std::fs::TryLockError::WouldBlock) => return Ok(0),
            Err(std::fs::TryLockError::Error(error)) => return Err(error),
        }
    }
    let files = match fs::read_dir(&dir) {
        Ok(entries) => entries.count(),
        Err(error) if error.kind() == io::ErrorKind::NotFound => 0,
        Err(error) => return Err(error),
    };
    match fs::remove_dir_all(&dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    // The directory first, then its lock: a directory is never left without the lock that
    // would tell a sweep its owner is alive, unless its owner is dead.
    remove_if_present(&lock_path)?;
    if files > 0 {
        tracing::info!(
            replica.id = id,
            files,
            "removed the temporary files of a process that is gone"
        );
    }
    Ok(files)
}

/// Removes the files in `dir` older than [`TEMP_ORPHAN_AGE`]; returns how many.
fn remove_old_files(dir: &Path, now: SystemTime) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        match entry.metadata() {
            Ok(metadata) if metadata.is_file() && older_than(&metadata, now, TEMP_ORPHAN_AGE) => {
                removed += usize::from(remove_if_present(&entry.path())?);
            }
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(removed)
}

/// Whether `relative` is a directory Signet makes: `documents/<id>` (the older layout) or
/// `orders/<id>`, the id spelt as Signet writes it.
fn names_blob_directory(relative: &str) -> bool {
    match relative.split_once('/') {
        Some(("documents", id)) => DocumentId::parse(id).is_ok_and(|p| p.to_string() == id),
        Some(("orders", id)) => OrderId::parse(id).is_ok_and(|p| p.to_string() == id),
        _ => false,
    }
}

/// Whether a file was last written at least `age` before `now` (a time in the future, from a
/// clock that moved back, counts as young).
fn older_than(metadata: &fs::Metadata, now: SystemTime, age: Duration) -> bool {
    metadata
        .modified()
        .ok()
        .and_then(|modified| now.duration_since(modified).ok())
        .is_some_and(|elapsed| elapsed >= age)
}

/// Removes a file; `false` when it was already gone (another sweep, or its request, was first).
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn concurrent_uploads_into_documents_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let keys: Vec<BlobKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let blobs = &blobs;
                    scope.spawn(move || {
                        let key = BlobKey::prepared(DocumentId::new_random());
                        let (temp, mut file) = blobs.create_temp().unwrap();
                        write!(file, "%PDF-{i}").unwrap();
                        blobs.persist(temp, &file, &key).unwrap();
                        key
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(
                fs::read(blobs.path(key)).unwrap(),
                format!("%PDF-{i}").as_bytes()
            );
        }
        let sync = &blobs.documents_sync;
        assert_eq!(sync.renamed.load(Ordering::SeqCst), 16);
        assert_eq!(
            *sync.flushed.lock().unwrap(),
            16,
            "the last flush covers every rename"
        );
    }

    /// Makes a file look last written `ago` before now.
    fn age(path: &Path, ago: Duration) {
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(SystemTime::now() - ago)
            .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_layout_and_every_blob_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let blobs = BlobStore::open(&data).unwrap();
        let key = BlobKey::order_version(OrderId::new_random(), uuid::Uuid::new_v4());
        let (temp, file) = blobs.create_temp().unwrap();
        let temp_mode = fs::metadata(temp.path()).unwrap().permissions().mode();
        blobs.persist(temp, &file, &key).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(temp_mode & 0o777, 0o600);
        assert_eq!(mode(&blobs.path(&key)), 0o600);
        for directory in ["", "blobs", "blobs/tmp", "blobs/documents", "blobs/orders"] {
            assert_eq!(mode(&data.join(directory)), 0o700, "{directory}");
        }
        assert_eq!(mode(blobs.path(&key).parent().unwrap()), 0o700);
    }

    #[test]
    fn the_sweep_removes_old_temporary_files_and_old_unnamed_blobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let place = |key: &BlobKey, ago: Duration| {
            let (temp, file) = blobs.create_temp().unwrap();
            blobs.persist(temp, &file, key).unwrap();
            age(&blobs.path(key), ago);
        };
        let day = BLOB_ORPHAN_AGE + Duration::from_secs(60);
        let named = BlobKey::prepared(DocumentId::new_random());
        let orphan = BlobKey::prepared(DocumentId::new_random());
        let young_orphan = BlobKey::prepared(DocumentId::new_random());
        let order = OrderId::new_random();
        let lone_version = BlobKey::order_version(order, uuid::Uuid::new_v4());
        let legacy = BlobKey::parse(&format!(
            "documents/{}/prepared.pdf",
            DocumentId::new_random()
        ))
        .unwrap();
        for key in [&named, &orphan, &lone_version, &legacy] {
            place(key, day);
        }
        place(&young_orphan, Duration::from_secs(60));
        fs::write(blobs.root.join("documents/notes.txt"), b"not ours").unwrap();
        age(&blobs.root.join("documents/notes.txt"), day);
        let (old_temp, _file) = blobs.create_temp().unwrap();
        age(old_temp.path(), TEMP_ORPHAN_AGE + Duration::from_secs(60));
        let (young_temp, _file) = blobs.create_temp().unwrap();

        let mut asked = Vec::new();
        let report = blobs
            .sweep(SystemTime::now(), |keys| {
                asked.extend(keys.iter().cloned());
                Ok(keys.iter().filter(|k| **k == named).cloned().collect())
            })
            .unwrap();

        assert_eq!(
            report,
            SweepReport {
                temp_removed: 1,
                orphans_removed: 3,
                referenced: 1,
                left_alone: 1
            }
        );
        assert!(
            !asked.contains(&young_orphan),
            "young files are not even asked about"
        );
        assert!(blobs.path(&named).exists());
        assert!(blobs.path(&young_orphan).exists());
        assert!(!blobs.path(&orphan).exists());
        assert!(
            !blobs.root.join(format!("orders/{order}")).exists(),
            "emptied directory"
        );
        assert!(!blobs.path(&legacy).parent().unwrap().exists());
        assert!(blobs.root.join("documents/notes.txt").exists());
        assert!(!old_temp.path().exists());
        assert!(young_temp.path().exists());
    }

    #[test]
    fn a_failed_lookup_removes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let key = BlobKey::prepared(DocumentId::new_random());
        let (temp, file) = blobs.create_temp().unwrap();
        blobs.persist(temp, &file, &key).unwrap();
        age(&blobs.path(&key), BLOB_ORPHAN_AGE * 2);
        let result = blobs.sweep(SystemTime::now(), |_| {
            Err(io::Error::other("database down"))
        });
        assert!(result.is_err());
        assert!(blobs.path(&key).exists());
    }

    #[test]
    fn opening_removes_loose_temporary_files_older_than_an_hour_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        // The flat layout of earlier versions: a process of that version may still run.
        let old = blobs.tmp_dir().join("0123.part");
        let young = blobs.tmp_dir().join("4567.part");
        fs::write(&old, b"%PDF").unwrap();
        fs::write(&young, b"%PDF").unwrap();
        age(&old, TEMP_ORPHAN_AGE + Duration::from_secs(60));
        BlobStore::open(dir.path()).unwrap();
        assert!(!old.exists());
        assert!(young.exists(), "another process may still be writing it");
    }

    #[test]
    fn each_process_writes_its_temporary_files_in_a_directory_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let first = BlobStore::open(dir.path()).unwrap();
        let second = BlobStore::open(dir.path()).unwrap();
        assert_ne!(first.replica_id(), second.replica_id());
        let (temp, _file) = first.create_temp().unwrap();
        assert_eq!(
            temp.path().parent().unwrap(),
            first.tmp_dir().join(first.replica_id())
        );
        assert!(first
            .tmp_dir()
            .join(format!("{}.lock", first.replica_id()))
            .exists());
    }

    #[test]
    fn a_sweep_never_touches_a_live_process_files_however_old() {
        let dir = tempfile::tempdir().unwrap();
        let uploading = BlobStore::open(dir.path()).unwrap();
        let (slow, _file) = uploading.create_temp().unwrap();
        age(slow.path(), TEMP_ORPHAN_AGE * 5);
        // Another process (its own open file description, so the `flock`s conflict as they do
        // between processes) starts and sweeps.
        let other = BlobStore::open(dir.path()).unwrap();
        other.sweep_temp(SystemTime::now()).unwrap();
        assert!(slow.path().exists(), "the live process's upload is kept");
        // Its own sweep takes the old file: only a leak leaves one in its own directory.
        assert_eq!(uploading.sweep_temp(SystemTime::now()).unwrap(), 1);
        assert!(!slow.path().exists());
    }

    #[test]
    fn a_dead_process_temporary_files_are_removed_at_once_and_a_clean_stop_leaves_none() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let tmp = blobs.tmp_dir();
        // What `kill -9` leaves: a directory with a young file and its lock file, unlocked.
        let dead = uuid::Uuid::new_v4().simple().to_string();
        fs::create_dir(tmp.join(&dead)).unwrap();
        fs::write(tmp.join(&dead).join("x.part"), b"%PDF").unwrap();
        fs::write(tmp.join(format!("{dead}.lock")), b"").unwrap();
        // A lock without its directory, and a directory without its lock.
        let half = uuid::Uuid::new_v4().simple().to_string();
        fs::write(tmp.join(format!("{half}.lock")), b"").unwrap();
        let lockless = uuid::Uuid::new_v4().simple().to_string();
        fs::create_dir(tmp.join(&lockless)).unwrap();
        // Not ours: never touched.
        fs::create_dir(tmp.join("operator-notes")).unwrap();

        assert_eq!(blobs.sweep_temp(SystemTime::now()).unwrap(), 1);
        for gone in [
            dead.clone(),
            format!("{dead}.lock"),
            format!("{half}.lock"),
            lockless,
        ] {
            assert!(!tmp.join(&gone).exists(), "{gone}");
        }
        assert!(tmp.join("operator-notes").exists());

        let own = tmp.join(blobs.replica_id());
        let own_lock = tmp.join(format!("{}.lock", blobs.replica_id()));
        drop(blobs);
        assert!(!own.exists() && !own_lock.exists());
    }

    #[test]
    fn a_key_names_its_owner_only_in_the_spelling_signet_writes() {
        let document = DocumentId::new_random();
        let order = OrderId::new_random();
        let version = uuid::Uuid::new_v4();
        assert_eq!(
            BlobKey::prepared(document).owner(),
            Some(BlobOwner::Document(document))
        );
        assert_eq!(
            BlobKey::parse(&format!("documents/{document}/prepared.pdf"))
                .unwrap()
                .owner(),
            Some(BlobOwner::Document(document))
        );
        assert_eq!(
            BlobKey::order_version(order, version).owner(),
            Some(BlobOwner::Order(order))
        );
        let upper = format!("documents/{}.pdf", document.to_string().to_uppercase());
        if let Ok(key) = BlobKey::parse(&upper) {
            assert_eq!(key.owner(), None, "{upper}");
        }
    }

    #[test]
    fn only_well_formed_keys_parse() {
        let id = DocumentId::new_random();
        let attempt = uuid::Uuid::new_v4();
        let order = OrderId::new_random();
        for key in [
            BlobKey::prepared(id),
            BlobKey::order_version(order, attempt),
        ] {
            assert_eq!(BlobKey::parse(key.as_str()), Ok(key.clone()));
        }
        for legacy in [
            format!("documents/{id}/prepared.pdf"),
            format!("documents/{id}/signed-{}.pdf", attempt.simple()),
        ] {
            assert!(BlobKey::parse(&legacy).is_ok(), "{legacy}");
        }
        for bad in [
            "../etc/passwd",
            "documents/../../x",
            &format!("documents/{id}/../prepared.pdf"),
            &format!("documents/{id}/signed-zz.pdf"),
            &format!("documents/{id}/prepared.pdf/x"),
            &format!("documents/{id}"),
            &format!("documents/{id}.pdf/x"),
            "documents/x.pdf",
            &format!("orders/{order}/../../x.pdf"),
            &format!("orders/{id}/prepared.pdf"),
            "",
        ] {
            assert!(BlobKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_persisted_blob_is_in_place_removable_in_either_layout_and_an_abandoned_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let id = DocumentId::new_random();
        let key = BlobKey::prepared(id);
        let (temp, mut file) = blobs.create_temp().unwrap();
        file.write_all(b"%PDF-1.7").unwrap();
        blobs.persist(temp, &file, &key).unwrap();
        assert_eq!(fs::read(blobs.path(&key)).unwrap(), b"%PDF-1.7");

        let legacy = BlobKey::parse(&format!("documents/{id}/prepared.pdf")).unwrap();
        fs::create_dir_all(blobs.path(&legacy).parent().unwrap()).unwrap();
        fs::write(blobs.path(&legacy), b"%PDF-1.4").unwrap();
        blobs.remove_document(id).unwrap();
        assert!(!blobs.path(&key).exists());
        assert!(!blobs.path(&legacy).exists());
        blobs.remove_document(id).unwrap();

        let (abandoned, _file) = blobs.create_temp().unwrap();
        let abandoned_path = abandoned.path().to_path_buf();
        drop(abandoned);
        assert!(!abandoned_path.exists());
    }
}
