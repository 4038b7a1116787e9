//! What Signet tells its operator while it runs: the log (text or JSON, an access line per
//! request, audit lines for certificates and API keys) and the Prometheus metrics. Nothing here
//! ever records a key, a token, a personal number or an e-mail address: requests are named by
//! their route template (`/sign/{token}`), never by their path, and audit lines carry ids and
//! serials only.

pub mod access;
pub mod audit;
mod log_writer;
pub mod logging;
pub mod metrics;
