//! Document bytes in S3-compatible object storage (`--blob-url s3://bucket/prefix`), for several
//! Signet replicas sharing one bucket. The durability protocol of `store/blobs.rs` carried over
//! to a store that cannot rename or lock: an object is written whole under a key no one else
//! uses (every version has its own, see [`BlobKey`]) before the row that names it commits, and
//! is never rewritten afterwards. A CloudSigner signature therefore becomes a new object
//! (`documents/<id>/signed-<version>.pdf`) and the row switches to it with the same
//! compare-and-set as on files; the prepared object it supersedes is removed after the commit.
//! Correctness never rests on a conditional put (`If-None-Match: *`): Garage ignores it, and a
//! key of its own per version makes it unnecessary.
//!
//! Bytes pass through a temporary file on the replica's own disk (`<data-dir>/blobs/tmp`): an
//! upload is received and prepared there, then streamed to the bucket (one PUT up to
//! [`MULTIPART_CHUNK`], a multipart upload above it, so a 50 MB document is never whole in
//! memory); a signature copies the prepared object there, fills it and streams it back.
//!
//! The calls are blocking (they run on the blocking pool, like the file store's, driven through
//! the runtime handle) except removals, which are queued on the runtime: they come after a
//! commit, and what one misses the orphan sweep takes. A store that cannot be reached or
//! refuses a request is a [`StorageUnavailable`] error, which the APIs answer with 503
//! `STORAGE_UNAVAILABLE`; nothing was named by a row, so nothing half-written is visible.
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::blobs::{BlobKey, BlobStore, SweepReport, TempBlob, BLOB_ORPHAN_AGE};
use crate::domain::{DocumentId, OrderId};

/// Bytes per part of a multipart upload, and the largest file sent with one plain PUT. S3's
/// smallest part is 5 MiB; two parts in flight bound an upload's memory to 16 MiB.
pub const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;
/// Parts of one upload in flight at once.
const MULTIPART_CONCURRENCY: usize = 2;
/// A request to the store that takes longer than this has failed: a request that hangs must
/// not hold a signature's task, or a client, for minutes (object_store's default is 30 s per
/// request and 3 minutes of retries).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Transient failures (a 5xx, a reset connection) are retried this often, within this long in
/// all; a store that is down answers 503 within seconds, not minutes.
const MAX_RETRIES: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// How many candidate orphans one store lookup checks.
const SWEEP_BATCH: usize = 256;

/// The object store could not be reached or refused a request: not the client's fault and not
/// Signet's; the request may be tried again when the store is back (503 `STORAGE_UNAVAILABLE`).
#[derive(Debug, thiserror::Error)]
#[error("the document store is unavailable: {0}")]
pub struct StorageUnavailable(pub String);

/// Whether `error` (or an I/O error inside its chain) is a [`StorageUnavailable`].
pub fn is_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<StorageUnavailable>()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<StorageUnavailable>())
    })
}

/// An object store error as an I/O error: `NotFound` stays `NotFound` (the callers' retry and
/// "lost a race" paths depend on it); everything else is the store being unavailable.
pub fn object_io_error(error: object_store::Error) -> io::Error {
    match error {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, error),
        other => io::Error::other(StorageUnavailable(other.to_string())),
    }
}

/// What [`ObjectBlobs::list`] found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Objects named like blob keys Signet writes.
    pub blobs: Vec<ListedBlob>,
    /// Other objects (never touched).
    pub foreign: usize,
}

/// One object of a [`Listing`].
#[derive(Debug, Clone)]
pub struct ListedBlob {
    pub key: BlobKey,
    pub size: u64,
    /// Its last write, as the store reports it.
    pub modified: SystemTime,
}

/// A bucket (and a prefix inside it) holding Signet's blobs.
#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    store: Arc<AmazonS3>,
    /// `""` or `prefix/` (with its slash), put before every key.
    prefix: String,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    /// Temporary files only (this replica's own).
    local: BlobStore,
    runtime: tokio::runtime::Handle,
}

/// `s3://bucket/prefix` taken apart; `None` when `url` is not of that shape.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let prefix = prefix.trim_matches('/');
    let bucket_ok = !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let prefix_ok = prefix
        .split('/')
        .all(|part| part.is_empty() || (part != "." && part != ".."))
        && !prefix.contains("//");
    (bucket_ok && prefix_ok).then(|| (bucket.to_owned(), prefix.to_owned()))
}

impl ObjectBlobs {
    /// Opens `url` (`s3://bucket/prefix`) with the standard AWS settings from `env` (the
    /// process environment in production: `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, …); temporary files go under
    /// `data_dir`. Nothing is asked of the store yet: a store that is down at start-up makes
    /// requests fail with 503 (and `/readyz` say so), not the server refuse to start.
    #[expect(
        deprecated,
        reason = "rustls deprecates the ring provider for lacking post-quantum key exchange; it \
                  is the one provider Signet links (see startup/tls.rs)"
    )]
    pub fn open(
        url: &str,
        env: impl IntoIterator<Item = (String, String)>,
        data_dir: &Path,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)
            .ok_or_else(|| anyhow::anyhow!("{url:?} is not s3://bucket/prefix"))?;
        // object_store's HTTP client speaks TLS through rustls with the process's provider:
        // ring, the one Signet already links (an error means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(CONNECT_TIMEOUT),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: MAX_RETRIES,
                retry_timeout: RETRY_TIMEOUT,
            });
        // What `AmazonS3Builder::from_env` does, over the variables given (and after Signet's
        // own timeouts, so an operator's AWS_TIMEOUT still wins).
        for (name, value) in env {
            if name.starts_with("AWS_") {
                if let Ok(key) = name.to_ascii_lowercase().parse() {
                    builder = builder.with_config(key, value);
                }
            }
        }
        let store = builder
            .with_bucket_name(&bucket)
            .build()
            .map_err(|e| anyhow::anyhow!("setting up the object store {url}: {e}"))?;
        let local = BlobStore::open(data_dir)?;
        Ok(ObjectBlobs {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            url: format!(
                "s3://{bucket}/{prefix}",
                prefix = prefix.trim_end_matches('/')
            ),
            local,
            runtime,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where `key` lives in the bucket.
    fn location(&self, key: &BlobKey) -> ObjectPath {
        ObjectPath::from(format!("{}{}", self.prefix, key.as_str()))
    }

    /// This process's replica id: its temporary directory under `<data-dir>/blobs/tmp/`.
    pub fn replica_id(&self) -> &str {
        self.local.replica_id()
    }

    /// A new empty temporary file on this replica's disk.
    pub fn create_temp(&self) -> io::Result<(TempBlob, File)> {
        self.local.create_temp()
    }

    /// Streams the temporary file to `key` and removes it. Blocking.
    pub fn persist(&self, temp: TempBlob, file: &File, key: &BlobKey) -> io::Result<()> {
        self.upload_file(file, key)?;
        drop(temp);
        Ok(())
    }

    /// Streams all of `file` (from its start, whatever its position) to `key`. Blocking.
    pub fn upload_file(&self, file: &File, key: &BlobKey) -> io::Result<()> {
        let mut reader = file.try_clone()?;
        reader.seek(SeekFrom::Start(0))?;
        self.runtime.block_on(self.upload(&mut reader, key))
    }

    /// Uploads everything `reader` holds to `key`: one PUT for a small file, a multipart upload
    /// for a large one (aborted on failure, so no parts linger).
    async fn upload(&self, reader: &mut File, key: &BlobKey) -> io::Result<()> {
        let location = self.location(key);
        let mut first = vec![0u8; MULTIPART_CHUNK];
        let filled = read_full(reader, &mut first)?;
        if filled < MULTIPART_CHUNK {
            first.truncate(filled);
            self.store
                .put(&location, PutPayload::from(first))
                .await
                .map_err(object_io_error)?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(object_io_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
        writer.write(&first);
        let mut buffer = first;
        let streamed: io::Result<()> = async {
            loop {
                writer
                    .wait_for_capacity(MULTIPART_CONCURRENCY)
                    .await
                    .map_err(object_io_error)?;
                let read = read_full(reader, &mut buffer)?;
                if read == 0 {
                    return Ok(());
                }
                writer.write(&buffer[..read]);
            }
        }
        .await;
        match streamed {
            Ok(()) => writer.finish().await.map(drop).map_err(object_io_error),
            Err(error) => {
                let _ = writer.abort().await;
                Err(error)
            }
        }
    }

    /// Copies the object `from` into a new temporary file (positioned at its end). Blocking.
    pub fn copy_to_temp(&self, from: &BlobKey) -> io::Result<(TempBlob, File)> {
        let (temp, mut file) = self.create_temp()?;
        self.runtime.block_on(async {
            let mut stream = self
                .store
                .get(&self.location(from))
                .await
                .map_err(object_io_error)?
                .into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk.map_err(object_io_error)?)?;
            }
            Ok::<(), io::Error>(())
        })?;
        Ok((temp, file))
    }

    /// The object `key`, read into an unnamed local file (removed from the directory at once;
    /// the handle keeps the bytes until it is dropped), positioned at its start. Blocking.
    pub fn open_read(&self, key: &BlobKey) -> io::Result<File> {
        let (temp, mut file) = self.copy_to_temp(key)?;
        drop(temp);
        file.seek(SeekFrom::Start(0))?;
        Ok(file)
    }

    /// A stream of the object's bytes in `range` (all of it when `None`), and the object's
    /// length. `NotFound` when it is gone. Async: the download handlers stream it as it comes.
    pub async fn read(
        &self,
        key: &BlobKey,
        range: Option<Range<u64>>,
    ) -> io::Result<(
        u64,
        futures::stream::BoxStream<'static, io::Result<bytes::Bytes>>,
    )> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .store
            .get_opts(&self.location(key), options)
            .await
            .map_err(object_io_error)?;
        let len = result.meta.size;
        Ok((
            len,
            result
                .into_stream()
                .map(|chunk| chunk.map_err(object_io_error))
                .boxed(),
        ))
    }

    /// Size and SHA-256 of the object `key`, read through (migrate-blobs' check); `None` when
    /// there is no such object. Blocking.
    pub fn digest(&self, key: &BlobKey) -> io::Result<Option<(u64, [u8; 32])>> {
        self.runtime.block_on(async {
            let mut stream = match self.store.get(&self.location(key)).await {
                Ok(result) => result.into_stream(),
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(other) => return Err(object_io_error(other)),
            };
            let (mut size, mut hasher) = (0u64, Sha256::new());
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(object_io_error)?;
                size += chunk.len() as u64;
                hasher.update(&chunk);
            }
            Ok(Some((size, hasher.finalize().into())))
        })
    }

    /// Whether the store takes a write now (readiness): a small object put and removed. Blocking.
    pub fn check_writable(&self) -> io::Result<()> {
        let location = ObjectPath::from(format!(
            "{}readiness/{}",
            self.prefix,
            uuid::Uuid::new_v4().simple()
        ));
        self.runtime.block_on(async {
            self.store
                .put(&location, PutPayload::from_static(b"ready"))
                .await
                .map_err(object_io_error)?;
            self.store.delete(&location).await.map_err(object_io_error)
        })
    }

    /// Removes one object, after the commit that stopped naming it: queued, not waited for (a
    /// failure is logged; the orphan sweep takes what is left).
    pub fn remove(&self, key: &BlobKey) -> io::Result<()> {
        let (store, location) = (self.store.clone(), self.location(key));
        self.runtime.spawn(async move {
            match store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => {
                    tracing::warn!(blob = %location, %error, "could not remove a superseded object")
                }
            }
        });
        Ok(())
    }

    /// Removes every object under `prefix` (relative to the store's own), queued like
    /// [`ObjectBlobs::remove`].
    fn remove_under(&self, prefix: String) {
        let store = self.store.clone();
        let prefix = ObjectPath::from(format!("{}{prefix}", self.prefix));
        self.runtime.spawn(async move {
            let locations = store
                .list(Some(&prefix))
                .map(|meta| meta.map(|m| m.location));
            let mut removed = store.delete_stream(locations.boxed());
            while let Some(result) = removed.next().await {
                if let Err(error) = result {
                    tracing::warn!(%prefix, %error, "could not remove a deleted record's objects");
                    break;
                }
            }
        });
    }

    /// Removes every object of a document (the prepared file and every signed version).
    pub fn remove_document(&self, document: DocumentId) -> io::Result<()> {
        self.remove(&BlobKey::prepared(document))?;
        self.remove_under(format!("documents/{document}/"));
        Ok(())
    }

    /// Removes every version of a signing order's PDF.
    pub fn remove_order(&self, order: OrderId) -> io::Result<()> {
        self.remove_under(format!("orders/{order}/"));
        Ok(())
    }

    /// Every object under the store's prefix whose name is a blob key Signet writes, with its
    /// size and last write; other objects are only counted. Blocking.
    pub fn list(&self) -> io::Result<Listing> {
        self.runtime.block_on(async {
            let mut found = Vec::new();
            let mut foreign = 0;
            for top in ["documents/", "orders/"] {
                let prefix = ObjectPath::from(format!("{}{top}", self.prefix));
                let mut listing = self.store.list(Some(&prefix));
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(object_io_error)?;
                    let relative = meta
                        .location
                        .as_ref()
                        .strip_prefix(self.prefix.as_str())
                        .unwrap_or_default()
                        .to_owned();
                    match BlobKey::parse(&relative) {
                        Ok(key) if key.owner().is_some() => found.push(ListedBlob {
                            key,
                            size: meta.size,
                            modified: SystemTime::from(meta.last_modified),
                        }),
                        _ => foreign += 1,
                    }
                }
            }
            Ok(Listing {
                blobs: found,
                foreign,
            })
        })
    }

    /// The object store's [`BlobStore::sweep`]: removes this replica's old temporary files and
    /// the objects older than [`BLOB_ORPHAN_AGE`] that `referenced` says no row names (an
    /// upload whose row never committed, a version whose removal after the commit never ran).
    /// Objects whose names are not blob keys Signet writes are left alone. Stops at the first
    /// error of `referenced`, so nothing is removed on a failed lookup. Blocking.
    pub fn sweep(
        &self,
        now: SystemTime,
        mut referenced: impl FnMut(&[BlobKey]) -> io::Result<HashSet<BlobKey>>,
    ) -> io::Result<SweepReport> {
        let mut report = SweepReport {
            temp_removed: self.local.sweep_temp(now)?,
            ..SweepReport::default()
        };
        let listing = self.list()?;
        report.left_alone = listing.foreign;
        let old: Vec<BlobKey> = listing
            .blobs
            .into_iter()
            .filter(|blob| {
                now.duration_since(blob.modified)
                    .is_ok_and(|age| age >= BLOB_ORPHAN_AGE)
            })
            .map(|blob| blob.key)
            .collect();
        for batch in old.chunks(SWEEP_BATCH) {
            let named = referenced(batch)?;
            for key in batch {
                if named.contains(key) {
                    report.referenced += 1;
                    continue;
                }
                let location = self.location(key);
                self.runtime.block_on(async {
                    match self.store.delete(&location).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                        Err(error) => Err(object_io_error(error)),
                    }
                })?;
                report.orphans_removed += 1;
                tracing::debug!(blob = key.as_str(), "removed an object no row names");
            }
        }
        Ok(report)
    }
}

/// Reads until `buffer` is full or the reader ends; how many bytes were read.
fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_name_a_bucket_and_an_optional_prefix() {
        assert_eq!(
            parse_s3_url("s3://docs/signet/prod"),
            Some(("docs".into(), "signet/prod".into()))
        );
        assert_eq!(
            parse_s3_url("s3://docs/signet/"),
            Some(("docs".into(), "signet".into()))
        );
        assert_eq!(parse_s3_url("s3://docs"), Some(("docs".into(), "".into())));
        for bad in [
            "s3://",
            "s3:///x",
            "file:///x",
            "s3://docs/../x",
            "s3://do cs/x",
            "s3://docs/a//b",
        ] {
            assert_eq!(parse_s3_url(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_store_being_unavailable_is_unavailable() {
        let wrapped = anyhow::Error::new(io::Error::other(StorageUnavailable("down".into())))
            .context("storing the prepared PDF");
        assert!(is_unavailable(&wrapped));
        let missing = anyhow::Error::new(object_io_error(object_store::Error::NotFound {
            path: "x".into(),
            source: "gone".into(),
        }));
        assert!(!is_unavailable(&missing));
        assert!(!is_unavailable(&anyhow::anyhow!("disk full")));
    }
}
