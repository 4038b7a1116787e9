//! What the health and metrics endpoints ask the database: whether it answers with Signet's
//! schema in place, and a handful of counts read at scrape time. A trait of its own (the narrow
//! store the readiness check and the metrics renderer take), implemented by the SQL store.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// Counts for the metrics page, read in one go when Prometheus scrapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusCounts {
    /// CloudSigner documents per status (`WAITING`, `SIGNED`, …).
    pub documents: Vec<(String, i64)>,
    /// Signing orders per state (`PENDING`, `ACCEPTED`, …).
    pub orders: Vec<(String, i64)>,
    /// Outbox messages not yet delivered nor given up, per channel (`MAIL`, `WEBHOOK`).
    pub outbox: Vec<(String, i64)>,
    /// Current certificates of ACTIVE or BLOCKED signers that run out before the given time.
    pub certificates_expiring: i64,
}

#[async_trait]
pub trait StatsStore: Send + Sync {
    /// One read that needs Signet's schema (not just a live connection): a database that lost
    /// its tables is as unready as one that does not answer.
    async fn ping(&self) -> StoreResult<()>;
    /// The counts, with certificates counted as expiring when they end before `expiring_before`.
    async fn status_counts(&self, expiring_before: OffsetDateTime) -> StoreResult<StatusCounts>;
}
