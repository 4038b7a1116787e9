//! Archive timestamps: the PAdES B-LTA renewal (ETSI EN 319 142-1 §5.5, ETSI TS 119 102-1
//! "long-term availability"). A B-LTA file's last document timestamp proves the file (and every
//! signature and piece of validation data in it) existed at its time, but only while its TSA's
//! certificate is valid. Before that certificate ends, this job appends to a copy of the file
//! fresh validation data for that timestamp's chain (OCSP answers and the CRL issued now, so a
//! validator finds the old TSA certificate good at a time the next timestamp proves), then a new
//! document timestamp, then the validation data for the new timestamp's chain; the copy becomes
//! the current file. Repeated every few years, this keeps a signature verifiable for as long as
//! the files are kept.
//!
//! Which files: SIGNED CloudSigner documents and ACCEPTED signing orders whose row records when
//! their last document timestamp ends (`archive_expires_at`, written with the file by the B-LTA
//! level finisher), once that time is within the margin (`archive_margin_days`).
//!
//! Safe with several replicas and idempotent: rows are claimed with a lease (PostgreSQL skips
//! rows another claim holds), the renewed file is a new blob made durable before the row's
//! compare-and-set on its current blob (and an order's revision) names it, and the superseded
//! blob is removed only after the commit (the durability protocol in `store/blobs.rs`). A
//! replica that loses the compare-and-set removes its own new blob; a crash leaves at most an
//! orphan for the sweep. A renewed row's `archive_expires_at` moves to the new timestamp's end,
//! so a second pass finds nothing to do.

use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};
use time::Duration;

use super::JobRunner;
use crate::services::levels::{ArchiveError, LevelFinisher};
use crate::store::archive::{ArchiveTarget, ArchivedFile, DueArchive};
use crate::store::blob_backend::Blobs;
use crate::store::blobs::BlobKey;

/// Default of `archive_margin_days`: how long before the last document timestamp's TSA
/// certificate ends the file is re-timestamped. Below the 90 days within which Signet's built-in
/// TSA renews its own certificate at start-up, so a restart in that window leaves a TSA whose
/// certificate outlives the old one by years when the renewal comes due; two months leave time
/// to notice and fix a TSA that is down or not yet renewed (the job retries every lease).
pub const DEFAULT_ARCHIVE_MARGIN_DAYS: u32 = 60;

/// How long a claimed row is kept from other replicas; also the wait before a failed renewal
/// (a TSA down, a TSA certificate not renewed yet) is tried again.
const CLAIM_LEASE: Duration = Duration::hours(1);
/// Rows one claim takes from each table; each renewal copies its file, so keep it small.
const CLAIM_BATCH: i64 = 16;

/// What the archive job needs beyond the runner's store, blobs and clock.
#[derive(Clone)]
pub struct ArchivePolicy {
    /// The TSA and the validation data collector (the same as the signing path's).
    pub levels: Arc<LevelFinisher>,
    /// How long before the last document timestamp ends it is renewed.
    pub margin: Duration,
}

impl std::fmt::Debug for ArchivePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivePolicy")
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

/// What one pass of the archive job did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Files that got a new document timestamp.
    pub renewed: usize,
    /// Files left for a later pass: the TSA's certificate does not outlast the current
    /// timestamp's, or the TSA or the validation data could not be had.
    pub deferred: usize,
    /// Files whose row changed meanwhile (deleted, or renewed by another replica).
    pub superseded: usize,
}

/// How one claimed file ended.
enum Outcome {
    Renewed,
    Deferred,
    Superseded,
}

impl JobRunner {
    /// Renews the document timestamps that end within the margin, in claimed batches. Does
    /// nothing without an [`ArchivePolicy`]. A file that cannot be renewed now is logged and
    /// left to its lease's end; only a failing store fails the pass.
    pub async fn renew_archive_timestamps(&self) -> anyhow::Result<ArchiveReport> {
        let Some(policy) = self.archive.clone() else {
            return Ok(ArchiveReport::default());
        };
        let mut report = ArchiveReport::default();
        loop {
            let now = self.clock.now();
            let claimed = self
                .store
                .claim_due_archives(now + policy.margin, now, CLAIM_LEASE, CLAIM_BATCH)
                .await
                .context("claiming files due for an archive timestamp")?;
            let full = claimed.len() >= CLAIM_BATCH as usize;
            for due in claimed {
                match self.renew_one(&policy, due).await? {
                    Outcome::Renewed => report.renewed += 1,
                    Outcome::Deferred => report.deferred += 1,
                    Outcome::Superseded => report.superseded += 1,
                }
            }
            if !full {
                break;
            }
        }
        if report != ArchiveReport::default() {
            tracing::info!(
                renewed = report.renewed,
                deferred = report.deferred,
                superseded = report.superseded,
                "archive timestamps"
            );
        }
        Ok(report)
    }

    async fn renew_one(&self, policy: &ArchivePolicy, due: DueArchive) -> anyhow::Result<Outcome> {
        let span = match due.target {
            ArchiveTarget::Document(id) => tracing::info_span!("archive", document.id = %id),
            ArchiveTarget::Order(id) => tracing::info_span!("archive", order.id = %id),
        };
        let (blobs, levels) = (self.blobs.clone(), policy.levels.clone());
        let runtime = tokio::runtime::Handle::current();
        let task_due = due.clone();
        let task_span = span.clone();
        let renewed = tokio::task::spawn_blocking(move || {
            task_span.in_scope(|| renew_file(&blobs, &levels, &runtime, &task_due))
        })
        .await
        .context("the archive timestamp task failed")?;
        let _entered = span.enter();
        let file = match renewed {
            Ok(Some(file)) => file,
            Ok(None) => return Ok(Outcome::Superseded),
            Err(RenewError::Archive(ArchiveError::NotLater { current, offered })) => {
                tracing::warn!(
                    %current, %offered,
                    "a document timestamp ends soon but the TSA's certificate does not outlast it; \
                     renew the TSA certificate (restart Signet within 90 days of its end, or fix \
                     the external TSA); tried again in an hour"
                );
                return Ok(Outcome::Deferred);
            }
            Err(error) => {
                tracing::warn!(error = %error, "could not add an archive timestamp; tried again in an hour");
                return Ok(Outcome::Deferred);
            }
        };
        let won = self
            .store
            .record_archive_timestamp(&due, &file)
            .await
            .context("recording an archive timestamp")?;
        let superseded = if won { &due.blob } else { &file.blob };
        if let Err(error) = self.blobs.remove(superseded) {
            tracing::warn!(blob = superseded.as_str(), %error, "could not remove a superseded blob");
        }
        if won {
            tracing::info!(expires_at = %file.expires_at, "added an archive timestamp");
            Ok(Outcome::Renewed)
        } else {
            Ok(Outcome::Superseded)
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum RenewError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Copies the current file, renews its document timestamp in the copy and stores the copy as a
/// new blob (durable before it is named). `None` when the current file is gone (the row was
/// deleted or renewed meanwhile). Blocking.
fn renew_file(
    blobs: &Blobs,
    levels: &LevelFinisher,
    runtime: &tokio::runtime::Handle,
    due: &DueArchive,
) -> Result<Option<ArchivedFile>, RenewError> {
    use std::io::{Seek, SeekFrom};
    let (temp, mut file) = match blobs.copy_to_temp(&due.blob) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other?,
    };
    let finished = levels.renew_document_timestamp(runtime, &mut file, due.expires_at)?;
    let expires_at = finished
        .archive_expires_at
        .ok_or(ArchiveError::NoDocumentTimestamp)?;
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(
        &mut file,
        &mut crate::services::orders::HashWriter(&mut hasher),
    )?;
    let blob = match due.target {
        ArchiveTarget::Document(id) => BlobKey::document_version(id, uuid::Uuid::new_v4()),
        ArchiveTarget::Order(id) => BlobKey::order_version(id, uuid::Uuid::new_v4()),
    };
    blobs.persist(temp, &file, &blob)?;
    Ok(Some(ArchivedFile {
        blob,
        size,
        sha256: crate::domain::Sha256Digest::from_bytes(hasher.finalize().into()),
        expires_at,
    }))
}
