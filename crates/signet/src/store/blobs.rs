//! Document bytes on disk, never in database rows. A blob is written under `tmp/`, flushed to
//! the disk, and only then renamed into place (its directory synced, and that directory's parent
//! too when it is new), so a crash leaves either the whole file or none of it. Bytes a client can
//! download are never rewritten (a CloudSigner signature fills the prepared file's placeholder,
//! which no one downloads; an order's new version is a new file). The database row that names a
//! blob is committed after the blob is durable, so an acknowledged document always has its bytes;
//! a crash in between leaves at most an orphan (under `tmp/`, swept at start-up, or an unnamed
//! file in place).
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::{DocumentId, OrderId};

/// Which blob of a document: the prepared PDF (waiting for a signature) or one signed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobKey(String);

impl BlobKey {
    /// A CloudSigner document's one file: the upload plus Signet's signature revision, whose
    /// placeholder the device's signature later fills in place. Directly under `documents/`:
    /// a directory per document cost a `mkdir` (an inode allocation) and two more directory
    /// flushes per upload, the largest single cost of the upload path.
    pub fn prepared(document: DocumentId) -> Self {
        BlobKey(format!("documents/{document}.pdf"))
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
}

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
    /// Opens (creating) the store under `data_dir/blobs`, and removes temporary files that a
    /// crash may have left behind.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let root = data_dir.join("blobs");
        let store = BlobStore {
            documents_sync: Arc::new(DirectorySync::new(root.join("documents"))),
            root,
        };
        fs::create_dir_all(store.tmp_dir())?;
        fs::create_dir_all(store.root.join("documents"))?;
        fs::create_dir_all(store.root.join("orders"))?;
        // The layout itself must survive a crash before the first blob relies on it.
        for directory in [data_dir, store.root.as_path()] {
            File::open(directory)?.sync_all()?;
        }
        for entry in fs::read_dir(store.tmp_dir())? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(store)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Where `key` lives on disk.
    pub fn path(&self, key: &BlobKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// A new empty temporary file, open for reading and writing.
    pub fn create_temp(&self) -> io::Result<(TempBlob, File)> {
        let path = self
            .tmp_dir()
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
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
        fs::create_dir_all(&directory)?;
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
