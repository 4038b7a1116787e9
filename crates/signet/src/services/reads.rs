//! Cached reads for the authenticated read path: valid API keys, a signer's details, a signed
//! document's row, and (up to 256 KiB) the bytes of finished files (signed documents, order
//! versions). Each answer read from the database is kept, tagged with the store's change
//! generation read *before* the database was asked; it is served again only while the
//! generation is unchanged. Every commit that could change such an answer (a key revoked, a
//! signer enrolled again, its status changed, renewed or expired, a signed document deleted or
//! its file replaced by an archive timestamp) bumps the generation after it commits, in this
//! process or another one (see [`crate::store::changes`]), so the next request asks the database
//! again: a revocation is honoured at once, with no time-to-live. When the generation cannot be
//! known (PostgreSQL's listener is down), nothing is cached and every request reads.
//!
//! A bump empties a whole cache, not one entry: such changes are rare next to reads, and one
//! signal for everything keeps the cross-process part to one value.

use axum::body::Bytes;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, RwLock};

use crate::domain::{DocumentId, DocumentStatus, SignerId};
use crate::store::blobs::BlobKey;
use crate::store::changes::{Changes, Generation};
use crate::store::{CertificateRecord, DocumentRecord, SignerRecord, Store, StoreResult};

/// Most keys remembered; beyond, the cache starts over (only valid keys are ever added).
const MAX_KEYS: usize = 10_000;
/// Most signers remembered (each holds its certificate history, about 1 KB per certificate).
const MAX_SIGNERS: usize = 10_000;
/// Most signed documents remembered (a row without its large columns' use: a few hundred bytes).
const MAX_DOCUMENTS: usize = 100_000;

/// Largest signed file kept in memory; larger ones are streamed from disk on each request.
pub const MAX_CACHED_FILE: u64 = 256 * 1024;
/// Most signed files kept in memory: at most 64 MiB with [`MAX_CACHED_FILE`].
const MAX_FILES: usize = 256;

/// A signer with its certificates, oldest first, as `GET /signers/{id}` shows it.
#[derive(Debug)]
pub struct SignerView {
    pub signer: SignerRecord,
    pub certificates: Vec<CertificateRecord>,
    /// The API's rendering of this view (its JSON body), made by the first request that shows
    /// it: a cached view never changes (a change replaces it), so neither does its rendering, and
    /// the PEM encoding and serialisation are then paid once per change, not once per request.
    pub rendered: OnceLock<Bytes>,
}

/// The change generation one request reads its cached answers at: read once when the request
/// starts (by the API-key check) and used for every lookup of that request, so a request costs
/// one read of the change signal, not one per lookup. Every answer it gets is one the database
/// gave after this generation was read, so the request sees the state as of its start or later;
/// a change committed while it runs is seen by the next request.
#[derive(Debug, Clone, Copy)]
pub struct ReadAt(Option<Generation>);

/// The cached reads of one store.
pub struct CachedReads {
    store: Arc<dyn Store>,
    changes: Arc<Changes>,
    keys: GenerationCache<String, ()>,
    signers: GenerationCache<SignerId, Arc<SignerView>>,
    documents: GenerationCache<DocumentId, Arc<DocumentRecord>>,
    files: GenerationCache<BlobKey, CachedFile>,
}

/// A finished file held for serving: its bytes, and the file they were read from, kept open so
/// a plain connection can send them from the page cache (see [`crate::startup::zero_copy`]).
#[derive(Clone, Debug)]
pub struct CachedFile {
    pub bytes: Bytes,
    pub file: Arc<std::fs::File>,
}

impl CachedReads {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            changes: store.changes(),
            store,
            keys: GenerationCache::new(MAX_KEYS),
            signers: GenerationCache::new(MAX_SIGNERS),
            documents: GenerationCache::new(MAX_DOCUMENTS),
            files: GenerationCache::new(MAX_FILES),
        }
    }

    /// The generation to read at now (see [`ReadAt`]).
    pub fn read_at(&self) -> ReadAt {
        ReadAt(self.changes.current())
    }

    /// The bytes of the finished file `blob` (`size` bytes, at `path`: a signed document, or one
    /// version of an order's PDF) when it is small enough to keep in memory ([`MAX_CACHED_FILE`]);
    /// `None` for a larger one, which the caller streams. A finished file's bytes never change
    /// under its key (a new version gets a new key), so the only question is whether the key is
    /// still named, and the caller asks that first: it serves the key its row names (an order's
    /// row read afresh; a signed document's from this cache, emptied by the archive job's switch,
    /// which removes the old file after it commits, and by a deletion). A file gone from disk is a
    /// `NotFound` error for the caller to re-read the row.
    pub async fn signed_file(
        &self,
        blob: &BlobKey,
        size: u64,
        path: &std::path::Path,
        at: ReadAt,
    ) -> std::io::Result<Option<CachedFile>> {
        if size > MAX_CACHED_FILE {
            return Ok(None);
        }
        let generation = at.0;
        if let Some(cached) = self.files.get(generation, blob) {
            return Ok(Some(cached));
        }
        let path = path.to_owned();
        let (file, bytes) =
            tokio::task::spawn_blocking(move || crate::api::ranged::open_and_read(&path, size))
                .await
                .map_err(std::io::Error::other)??;
        let cached = CachedFile {
            bytes: Bytes::from(bytes),
            file: Arc::new(file),
        };
        self.files.insert(generation, blob.clone(), cached.clone());
        Ok(Some(cached))
    }

    /// Whether `key_hash` is the hash of an API key that is not revoked.
    pub async fn api_key_valid(&self, key_hash: &str, at: ReadAt) -> StoreResult<bool> {
        let generation = at.0;
        if self.keys.get(generation, key_hash).is_some() {
            return Ok(true);
        }
        // Only a positive answer is kept: an unknown key costs a read each time, as before,
        // and nobody can fill the cache without holding valid keys.
        let valid = self.store.api_key_hash_exists(key_hash).await?;
        if valid {
            self.keys.insert(generation, key_hash.to_owned(), ());
        }
        Ok(valid)
    }

    /// The signer and its certificates, or `None` when there is no such signer.
    pub async fn signer(
        &self,
        signer_id: &SignerId,
        at: ReadAt,
    ) -> StoreResult<Option<Arc<SignerView>>> {
        let generation = at.0;
        if let Some(view) = self.signers.get(generation, signer_id) {
            return Ok(Some(view));
        }
        let Some(signer) = self.store.find_signer(signer_id).await? else {
            return Ok(None);
        };
        let certificates = self.store.certificates_of(signer_id).await?;
        let view = Arc::new(SignerView {
            signer,
            certificates,
            rendered: OnceLock::new(),
        });
        self.signers
            .insert(generation, signer_id.clone(), view.clone());
        Ok(Some(view))
    }

    /// The document's row. A SIGNED one may come from the cache (only a deletion or an archive
    /// timestamp changes it, and both bump the generation); `fresh` reads the row whatever the
    /// cache holds, for a caller that found the file the cached row names gone.
    pub async fn document(
        &self,
        document_id: &DocumentId,
        fresh: bool,
        at: ReadAt,
    ) -> StoreResult<Option<Arc<DocumentRecord>>> {
        let generation = at.0;
        if !fresh {
            if let Some(document) = self.documents.get(generation, document_id) {
                return Ok(Some(document));
            }
        }
        let Some(document) = self.store.find_document(document_id).await? else {
            return Ok(None);
        };
        let document = Arc::new(document);
        // A document on its way to SIGNED changes with every step: only the end is kept.
        if document.status == DocumentStatus::Signed {
            self.documents
                .insert(generation, *document_id, document.clone());
        }
        Ok(Some(document))
    }
}

/// A map whose entries are valid for one change generation.
struct GenerationCache<K, V> {
    inner: RwLock<Tagged<K, V>>,
    capacity: usize,
}

struct Tagged<K, V> {
    generation: Option<Generation>,
    entries: HashMap<K, V>,
}

impl<K: Eq + Hash, V: Clone> GenerationCache<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            inner: RwLock::new(Tagged {
                generation: None,
                entries: HashMap::new(),
            }),
            capacity,
        }
    }

    /// The entry for `key` if it was stored under `now` (the current generation).
    fn get<Q>(&self, now: Option<Generation>, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let now = now?;
        let inner = self.inner.read().ok()?;
        if inner.generation != Some(now) {
            return None;
        }
        inner.entries.get(key).cloned()
    }

    /// Stores `value`, read from the database after the generation `read_at` was taken. A
    /// different generation empties the map first; when `read_at` is older than what the map
    /// holds, the map is emptied and re-tagged with the older one, which the next `get` (with
    /// the newer current generation) refuses: churn, never a stale answer.
    fn insert(&self, read_at: Option<Generation>, key: K, value: V) {
        let Some(read_at) = read_at else {
            return;
        };
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if inner.generation != Some(read_at) || inner.entries.len() >= self.capacity {
            inner.entries.clear();
            inner.generation = Some(read_at);
        }
        inner.entries.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_only_in_the_generation_it_was_read_in() {
        let changes = Changes::alone();
        let cache: GenerationCache<String, u32> = GenerationCache::new(8);
        let read_at = changes.current();
        cache.insert(read_at, "a".into(), 1);
        assert_eq!(cache.get(changes.current(), "a"), Some(1));
        changes.bump();
        assert_eq!(cache.get(changes.current(), "a"), None);
    }

    #[test]
    fn a_value_read_before_a_change_is_never_served_after_it() {
        let changes = Changes::alone();
        let cache: GenerationCache<String, u32> = GenerationCache::new(8);
        let read_at = changes.current();
        changes.bump(); // a commit lands while the read is in flight
        cache.insert(read_at, "a".into(), 1);
        assert_eq!(cache.get(changes.current(), "a"), None);
    }

    #[test]
    fn nothing_is_kept_without_a_generation() {
        let cache: GenerationCache<String, u32> = GenerationCache::new(8);
        cache.insert(None, "a".into(), 1);
        assert_eq!(cache.get(None, "a"), None);
    }
}
