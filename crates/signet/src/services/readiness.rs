//! Whether this process can do its work: the database answers with Signet's schema, the blob
//! store takes a file, and the CA (its key loaded, its certificate in force) can issue. `/readyz` asks it on every call (each check
//! is one small read or write, bounded in time); `/healthz` does not — a process that answers
//! at all is alive.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::pki::Pki;
use crate::store::blob_backend::Blobs;
use crate::store::stats::StatsStore;

/// Longest a check may take before it counts as failed: a load balancer must not hang on us.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the process is not ready: which check failed, said without internals (the details go
/// to the log, not to an unauthenticated caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the database does not answer")]
    Database,
    #[error("the database did not answer within {0} s")]
    DatabaseTimeout(u64),
    #[error("the document store is not writable")]
    Blobs,
    #[error("the CA certificate is not in force")]
    Ca,
}

/// The readiness checks over their dependencies.
#[derive(Clone)]
pub struct Readiness {
    stats: Arc<dyn StatsStore>,
    blobs: Arc<Blobs>,
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
}

impl Readiness {
    pub fn new(
        stats: Arc<dyn StatsStore>,
        blobs: Arc<Blobs>,
        pki: Arc<Pki>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            stats,
            blobs,
            pki,
            clock,
        }
    }

    /// Runs every check in turn; the first failure is the answer.
    pub async fn check(&self) -> Result<(), NotReady> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.stats.ping()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "not ready: the database does not answer");
                return Err(NotReady::Database);
            }
            Err(_) => {
                tracing::warn!("not ready: the database did not answer in time");
                return Err(NotReady::DatabaseTimeout(CHECK_TIMEOUT.as_secs()));
            }
        }
        let blobs = self.blobs.clone();
        // A temporary file written and removed (what every upload needs first) and, on an
        // object store, a small object put and removed.
        let written = tokio::task::spawn_blocking(move || blobs.check_writable());
        match tokio::time::timeout(CHECK_TIMEOUT, written).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                tracing::warn!(error = %error, "not ready: the document store is not writable");
                return Err(NotReady::Blobs);
            }
            _ => {
                tracing::warn!("not ready: the document store did not take a file in time");
                return Err(NotReady::Blobs);
            }
        }
        // The CA's key is loaded at start-up and held in memory (Signet does not start without
        // it); what can still go wrong is time: a CA certificate past its end signs nothing
        // anyone will trust. Its own signature is checked with it (it is self-signed).
        let ca = self.pki.ca();
        if !ca.issued_and_valid_until(ca.certificate_der(), self.clock.now()) {
            tracing::warn!("not ready: the CA certificate is not in force");
            return Err(NotReady::Ca);
        }
        Ok(())
    }
}
