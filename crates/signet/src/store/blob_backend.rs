//! Where document bytes live, chosen by `--blob-url`: [`Blobs::Files`], the data directory's
//! `blobs/` (the default, `file://<data-dir>/blobs`: `store/blobs.rs`, its layout and durability
//! protocol, the fast path), or [`Blobs::Objects`], an S3-compatible bucket for several
//! replicas (`s3://bucket/prefix`: `store/objects.rs`). The surface is what the callers need and
//! no more: temporary files, persisting one under a key, copying or reading one back, removals
//! after a commit, the orphan sweep, a readiness probe. The two places whose protocol differs
//! ask which backend they have: a CloudSigner signature (filled in place under `flock` on
//! files, a new object plus compare-and-set on a bucket) and downloads (`sendfile`-like file
//! reads, or ranged GETs).
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::blobs::{BlobKey, BlobStore, SweepReport, TempBlob};
use super::objects::ObjectBlobs;
use crate::domain::{DocumentId, OrderId};

/// The document store in force.
#[derive(Debug, Clone)]
pub enum Blobs {
    Files(BlobStore),
    Objects(ObjectBlobs),
}

/// What `--blob-url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobUrl {
    /// `file://PATH`: PATH must be `<data-dir>/blobs` (the layout the backup, restore and sweep
    /// know); kept as a URL so one setting can name either backend.
    Files(std::path::PathBuf),
    /// `s3://bucket/prefix`.
    S3(String),
}

impl BlobUrl {
    /// Parses `--blob-url`; `None` (unset) is `file://<data-dir>/blobs`.
    pub fn parse(raw: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        let Some(raw) = raw else {
            return Ok(BlobUrl::Files(data_dir.join("blobs")));
        };
        if let Some(path) = raw.strip_prefix("file://") {
            let path = std::path::PathBuf::from(path);
            let expected = data_dir.join("blobs");
            let same = |a: &Path, b: &Path| {
                a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
            };
            return if same(&path, &expected) {
                Ok(BlobUrl::Files(path))
            } else {
                Err(format!(
                    "{raw:?}: the file backend lives in the data directory, file://{}",
                    expected.display()
                ))
            };
        }
        if raw.starts_with("s3://") {
            return match super::objects::parse_s3_url(raw) {
                Some(_) => Ok(BlobUrl::S3(raw.to_owned())),
                None => Err(format!("{raw:?} is not s3://bucket/prefix")),
            };
        }
        Err(format!(
            "{raw:?}: expected file://<data-dir>/blobs or s3://bucket/prefix"
        ))
    }
}

impl Blobs {
    /// Opens the store `blob_url` names (see [`BlobUrl::parse`]); `env` holds the `AWS_*`
    /// settings of an object store (the process environment in production).
    pub fn open(
        blob_url: Option<&str>,
        data_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        match BlobUrl::parse(blob_url, data_dir).map_err(anyhow::Error::msg)? {
            BlobUrl::Files(_) => Ok(Blobs::Files(BlobStore::open(data_dir)?)),
            BlobUrl::S3(url) => Ok(Blobs::Objects(ObjectBlobs::open(
                &url, env, data_dir, runtime,
            )?)),
        }
    }

    /// The file store, when documents are files (the in-place fill and file downloads).
    pub fn files(&self) -> Option<&BlobStore> {
        match self {
            Blobs::Files(files) => Some(files),
            Blobs::Objects(_) => None,
        }
    }

    /// The object store, when documents are objects.
    pub fn objects(&self) -> Option<&ObjectBlobs> {
        match self {
            Blobs::Files(_) => None,
            Blobs::Objects(objects) => Some(objects),
        }
    }

    /// For the log: `file://…` or `s3://…`.
    pub fn describe(&self) -> String {
        match self {
            Blobs::Files(files) => format!("file://{}", files.root().display()),
            Blobs::Objects(objects) => objects.url().to_owned(),
        }
    }

    /// This process's replica id: the name of its temporary directory under
    /// `<data-dir>/blobs/tmp/` (both backends keep temporary files on the replica's disk).
    pub fn replica_id(&self) -> &str {
        match self {
            Blobs::Files(files) => files.replica_id(),
            Blobs::Objects(objects) => objects.replica_id(),
        }
    }

    /// A new empty temporary file on this replica's disk, open for reading and writing.
    pub fn create_temp(&self) -> io::Result<(TempBlob, File)> {
        match self {
            Blobs::Files(files) => files.create_temp(),
            Blobs::Objects(objects) => objects.create_temp(),
        }
    }

    /// Makes `temp` durable as `key` (before any row names it). Blocking.
    pub fn persist(&self, temp: TempBlob, file: &File, key: &BlobKey) -> io::Result<()> {
        match self {
            Blobs::Files(files) => files.persist(temp, file, key),
            Blobs::Objects(objects) => objects.persist(temp, file, key),
        }
    }

    /// Copies the blob `from` into a new temporary file, for further writing. Blocking.
    pub fn copy_to_temp(&self, from: &BlobKey) -> io::Result<(TempBlob, File)> {
        match self {
            Blobs::Files(files) => files.copy_to_temp(from),
            Blobs::Objects(objects) => objects.copy_to_temp(from),
        }
    }

    /// Opens a blob for reading, from its start. Blocking.
    pub fn open_read(&self, key: &BlobKey) -> io::Result<File> {
        match self {
            Blobs::Files(files) => files.open_read(key),
            Blobs::Objects(objects) => objects.open_read(key),
        }
    }

    /// Removes one blob (idempotent; on a bucket, queued).
    pub fn remove(&self, key: &BlobKey) -> io::Result<()> {
        match self {
            Blobs::Files(files) => files.remove(key),
            Blobs::Objects(objects) => objects.remove(key),
        }
    }

    /// Removes every blob of a document.
    pub fn remove_document(&self, document: DocumentId) -> io::Result<()> {
        match self {
            Blobs::Files(files) => files.remove_document(document),
            Blobs::Objects(objects) => objects.remove_document(document),
        }
    }

    /// Removes every version of a signing order's PDF.
    pub fn remove_order(&self, order: OrderId) -> io::Result<()> {
        match self {
            Blobs::Files(files) => files.remove_order(order),
            Blobs::Objects(objects) => objects.remove_order(order),
        }
    }

    /// Removes what a crash left behind (see [`BlobStore::sweep`] and [`ObjectBlobs::sweep`]).
    /// Blocking.
    pub fn sweep(
        &self,
        now: SystemTime,
        referenced: impl FnMut(&[BlobKey]) -> io::Result<HashSet<BlobKey>>,
    ) -> io::Result<SweepReport> {
        match self {
            Blobs::Files(files) => files.sweep(now, referenced),
            Blobs::Objects(objects) => objects.sweep(now, referenced),
        }
    }

    /// Whether a document could be stored now: a temporary file written (what every upload
    /// needs first) and, on a bucket, a small object put and removed. Blocking.
    pub fn check_writable(&self) -> io::Result<()> {
        use std::io::Write;
        let (temp, mut file) = self.create_temp()?;
        file.write_all(b"ready")?;
        drop(temp);
        match self {
            Blobs::Files(_) => Ok(()),
            Blobs::Objects(objects) => objects.check_writable(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blob_url_names_the_data_directory_or_a_bucket() {
        let data = Path::new("/srv/signet");
        assert_eq!(
            BlobUrl::parse(None, data),
            Ok(BlobUrl::Files(data.join("blobs")))
        );
        assert_eq!(
            BlobUrl::parse(Some("file:///srv/signet/blobs"), data),
            Ok(BlobUrl::Files(data.join("blobs")))
        );
        assert_eq!(
            BlobUrl::parse(Some("s3://docs/signet"), data),
            Ok(BlobUrl::S3("s3://docs/signet".into()))
        );
        for bad in [
            "file:///elsewhere",
            "s3://",
            "gs://docs",
            "/srv/signet/blobs",
        ] {
            assert!(BlobUrl::parse(Some(bad), data).is_err(), "{bad}");
        }
    }
}
