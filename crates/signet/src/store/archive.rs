//! What the archive-timestamp job keeps in the database ([`crate::jobs::archive_timestamps`]):
//! which stored B-LTA files must get a new document timestamp soon, a lease on each one being
//! renewed (so one replica works on it while others skip it), and the compare-and-set that
//! makes a renewed file the current one.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::blobs::BlobKey;
use super::StoreResult;
use crate::domain::{DocumentId, OrderId, Sha256Digest};

/// A stored B-LTA file: a SIGNED CloudSigner document or an ACCEPTED signing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveTarget {
    Document(DocumentId),
    Order(OrderId),
}

/// A file whose last document timestamp ends within the margin, claimed for renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueArchive {
    pub target: ArchiveTarget,
    /// The current file; the renewal is recorded only if the row still names it.
    pub blob: BlobKey,
    /// When its last document timestamp stops proving anything.
    pub expires_at: OffsetDateTime,
    /// An order's revision when claimed (the compare-and-set's other half); 0 for documents.
    pub revision: i64,
}

/// The renewed file, as a new blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedFile {
    pub blob: BlobKey,
    pub size: u64,
    pub sha256: Sha256Digest,
    /// When its new last document timestamp must be renewed by.
    pub expires_at: OffsetDateTime,
}

#[async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// Claims for `lease` up to `limit` SIGNED documents and up to `limit` ACCEPTED orders
    /// whose last document timestamp ends at or before `due_before` and that no live lease
    /// holds, earliest first. PostgreSQL skips rows another claim has locked; on both
    /// databases the lease keeps claimed rows away from other replicas until it ends (a
    /// renewal that failed is tried again then).
    async fn claim_due_archives(
        &self,
        due_before: OffsetDateTime,
        now: OffsetDateTime,
        lease: Duration,
        limit: i64,
    ) -> StoreResult<Vec<DueArchive>>;

    /// Makes `file` the current file of `due`'s row if the row still names `due.blob` (and,
    /// for an order, is still at `due.revision`) and is still SIGNED / ACCEPTED; releases the
    /// lease. `false` when the row changed meanwhile: the caller removes `file.blob`.
    async fn record_archive_timestamp(
        &self,
        due: &DueArchive,
        file: &ArchivedFile,
    ) -> StoreResult<bool>;
}
