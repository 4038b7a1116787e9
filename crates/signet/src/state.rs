//! The shared state every request handler and job sees.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use crate::clock::Clock;
use crate::config::Settings;
use crate::directory::Directory;
use crate::pki::Pki;
use crate::services::orders::OrderService;
use crate::services::timestamps::TimestampAuthority;
use crate::store::blobs::BlobStore;
use crate::store::Store;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Document bytes on disk.
    pub blobs: Arc<BlobStore>,
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

/// Hashes of API keys already seen valid. Keys cannot be deleted through any interface yet, so
/// a positive answer stays true; caching it spares a database read on every request.
#[derive(Debug, Default)]
pub struct ApiKeyCache(RwLock<HashSet<String>>);

impl ApiKeyCache {
    pub fn contains(&self, key_hash: &str) -> bool {
        self.0
            .read()
            .map(|known| known.contains(key_hash))
            .unwrap_or(false)
    }

    pub fn remember(&self, key_hash: String) {
        if let Ok(mut known) = self.0.write() {
            known.insert(key_hash);
        }
    }
}
