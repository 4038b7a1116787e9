//! The shared state every request handler and job sees.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::config::Settings;
use crate::directory::Directory;
use crate::pki::Pki;
use crate::services::orders::OrderService;
use crate::services::timestamps::TimestampAuthority;
use crate::store::blob_backend::Blobs;
use crate::store::Store;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Document bytes on disk.
    pub blobs: Arc<Blobs>,
    pub pki: Arc<Pki>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Base URL for absolute links, without a trailing slash.
    pub public_url: Arc<str>,
    pub api_keys: Arc<ApiKeyCache>,
    /// Finds people for signing orders (file directory, LDAP).
    pub directory: Arc<dyn Directory>,
    /// Signing orders: signing, rejecting, links.
    pub orders: Arc<OrderService>,
    /// The SMTP mailer, when one is configured (the outbox's mail and the signer codes share
    /// its connection pool).
    pub mailer: Option<crate::mail::Mailer>,
    /// Where signature timestamps come from: the built-in TSA or `--tsa-url`.
    pub timestamps: Arc<TimestampAuthority>,
    /// Raises a signature to its PAdES level (timestamp, `/DSS`, document timestamp).
    pub levels: Arc<crate::services::levels::LevelFinisher>,
}

/// Hashes of API keys already seen valid, each trusted for [`ApiKeyCache::TTL`] before the
/// database is asked again: it spares a read on nearly every request, and a key revoked with
/// `signet api-key revoke` (another process) is refused at most that long after.
#[derive(Debug, Default)]
pub struct ApiKeyCache(RwLock<HashMap<String, Instant>>);

impl ApiKeyCache {
    /// How long a positive answer is trusted.
    pub const TTL: Duration = Duration::from_secs(5);

    pub fn contains(&self, key_hash: &str) -> bool {
        self.0
            .read()
            .map(|known| {
                known
                    .get(key_hash)
                    .is_some_and(|seen| seen.elapsed() < Self::TTL)
            })
            .unwrap_or(false)
    }

    pub fn remember(&self, key_hash: String) {
        if let Ok(mut known) = self.0.write() {
            // Few keys exist; dropping stale entries here keeps a revoked one from lingering.
            known.retain(|_, seen| seen.elapsed() < Self::TTL);
            known.insert(key_hash, Instant::now());
        }
    }
}
