//! What the start-up log says about this process: the version, the data directory, the database
//! (password hidden) and, for each listener, its transport. One place, so the TLS set-up extends
//! [`describe_listener`] and every start-up line follows.

use crate::config::Settings;

/// The listeners Signet may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The CloudSigner API, the CA endpoints, the signer pages.
    Main,
    /// The Automation API.
    Automation,
    /// `--metrics-listen`.
    Metrics,
}

/// The transport of `listener` as the log shows it.
pub fn describe_listener(_settings: &Settings, _listener: Listener) -> String {
    "plain".to_owned()
}

/// One line each: version, data directory, database.
pub fn log_start_up(settings: &Settings) {
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "signet starting");
    tracing::info!(data_dir = %settings.data_dir.display(), "data directory");
    tracing::info!(database = %settings.redacted_database_url(), "database");
}
