//! What the start-up log says about this process: the version, the data directory, the database
//! (password hidden) and, for each listener, its transport. One place, so the TLS set-up extends
//! [`describe_listener`] and every start-up line follows.

use super::tls::TlsListener;
use crate::config::Settings;

/// The transport of a listener as the log shows it: `plain`, or its TLS mode.
pub fn describe_listener(tls: Option<&TlsListener>) -> String {
    tls.map_or("plain", TlsListener::mode).to_owned()
}

/// One line each: version, data directory, database.
pub fn log_start_up(settings: &Settings) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "signet starting");
    tracing::info!(data_dir = %settings.data_dir.display(), "data directory");
    tracing::info!(database = %settings.redacted_database_url(), "database");
}
