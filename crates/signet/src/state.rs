//! The shared state every request handler and job sees.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Settings;
use crate::directory::Directory;
use crate::pki::Pki;
use crate::services::documents::DocumentService;
use crate::services::orders::OrderService;
use crate::services::reads::CachedReads;
use crate::services::timestamps::TimestampAuthority;
use crate::store::blob_backend::Blobs;
use crate::store::Store;

/// What every handler shares, behind one `Arc`: axum clones the state for each extractor and
/// middleware of every request, and one reference count (not one per service, all on cache
/// lines every core writes) keeps that clone to a single atomic increment.
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl AppState {
    pub fn new(shared: SharedState) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The services and settings inside [`AppState`].
pub struct SharedState {
    pub store: Arc<dyn Store>,
    /// Document bytes on disk.
    pub blobs: Arc<Blobs>,
    pub pki: Arc<Pki>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// Base URL for absolute links, without a trailing slash.
    pub public_url: Arc<str>,
    /// Valid API keys, signers and signed documents, read once and served until a commit (here
    /// or in another process) says they changed.
    pub reads: Arc<CachedReads>,
    /// Finds people for signing orders (file directory, LDAP).
    pub directory: Arc<dyn Directory>,
    /// Signing orders: signing, rejecting, links.
    pub orders: Arc<OrderService>,
    /// CloudSigner documents: upload and prepare, sign, reject, delete.
    pub documents: Arc<DocumentService>,
    /// The SMTP mailer, when one is configured (the outbox's mail and the signer codes share
    /// its connection pool).
    pub mailer: Option<crate::mail::Mailer>,
    /// Where signature timestamps come from: the built-in TSA or `--tsa-url`.
    pub timestamps: Arc<TimestampAuthority>,
    /// Raises a signature to its PAdES level (timestamp, `/DSS`, document timestamp).
    pub levels: Arc<crate::services::levels::LevelFinisher>,
}
