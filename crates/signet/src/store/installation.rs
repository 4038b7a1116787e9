//! Facts that every process sharing one database must agree on (the CA certificate's
//! fingerprint), recorded once by the first process and read by every later one. Several Signet
//! replicas share a database; a replica that started with a different CA would issue
//! certificates that the others' CRL, OCSP responder and chain do not know, so start-up compares
//! its CA with the recorded one and refuses to run on a mismatch.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;

/// The fact naming the CA certificate: its SHA-256, lowercase hex, over the DER.
pub const CA_CERTIFICATE_SHA256: &str = "ca_certificate_sha256";

#[async_trait]
pub trait InstallationStore: Send + Sync {
    /// Records `value` for `fact` unless a value is recorded already, and returns the recorded
    /// one (the given `value` when this call recorded it). Atomic: of two processes recording
    /// different values at once, both are told the same winner.
    async fn record_fact_once(
        &self,
        fact: &str,
        value: &str,
        now: OffsetDateTime,
    ) -> StoreResult<String>;
}
