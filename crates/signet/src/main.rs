//! The `signet` command line: a thin layer that parses arguments and calls the library.

mod cli;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

use signet::clock::{Clock, SystemClock};
use signet::config::Settings;
use signet::startup::{open_store, Application};

#[derive(Parser)]
#[command(name = "signet", version, about = "Signet document-signing server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Inspect the certificate authority.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Create or upgrade the database schema, then exit.
    Migrate(StoreArgs),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and revoke CloudSigner signers.
    #[command(subcommand)]
    Signer(SignerCommand),
    /// Inspect signing orders.
    #[command(subcommand)]
    Order(OrderCommand),
    /// Copy the database (SQLite), the documents and the keys into DIR while the server runs.
    Backup(cli::backup::BackupArgs),
    /// Restore a backup into a data directory that does not exist or is empty.
    Restore(cli::backup::RestoreArgs),
    /// Copy every document of a file-backed installation into an object store (resumable,
    /// verified by SHA-256), then switch the configuration to it.
    #[command(name = "migrate-blobs")]
    MigrateBlobs(cli::blobs::MigrateBlobsArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML (secrets hidden), or what is wrong with it.
    Check(Box<ServeArgs>),
}

#[derive(Subcommand)]
enum SignerCommand {
    /// List signers: id, status, current certificate.
    List(cli::signers::ListArgs),
    /// Show a signer and its certificates.
    Show(cli::signers::ShowArgs),
    /// Revoke a signer and its certificates (as PUT /signers/{id} with REVOKED); the CRL is refreshed.
    Revoke(cli::signers::RevokeArgs),
}

#[derive(Subcommand)]
enum OrderCommand {
    /// List signing orders: state, signers' progress, title (no personal data).
    List(cli::orders::ListArgs),
    /// Show a signing order and its signers' status.
    Show(cli::orders::ShowArgs),
    /// Revoke the certificate of one signer's signature on an order (CRL and OCSP say revoked).
    #[command(name = "revoke-signature")]
    RevokeSignature(RevokeSignatureArgs),
}

#[derive(Args)]
struct RevokeSignatureArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The order's id.
    order_id: String,
    /// The signer's internal id on that order (as `GET /orders/{id}` shows it).
    signer_internal_id: String,
    /// RFC 5280 reason: unspecified, keyCompromise, affiliationChanged, superseded,
    /// cessationOfOperation, certificateHold, privilegeWithdrawn.
    #[arg(long, default_value = "unspecified")]
    reason: String,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print it (only the key) on the last line of standard output.
    Create(StoreArgs),
    /// List API keys: id, created, revoked (never the key).
    List(cli::api_keys::ListArgs),
    /// Revoke an API key by id; a running server refuses it within seconds.
    Revoke(cli::api_keys::RevokeArgs),
}

#[derive(Subcommand)]
enum CaCommand {
    /// Print the CA certificate (PEM), creating the CA if this data directory has none yet.
    Show(StoreArgs),
}

/// Flags shared by every command that opens the data directory. Each is also `SIGNET_<NAME>`
/// in the environment and a key in the `--config` TOML file.
#[derive(Args, Serialize)]
struct StoreArgs {
    /// TOML configuration file.
    #[arg(long)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Data directory (SQLite file, documents, CA key) [default: ./signet-data].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://… [default: SQLite inside the data directory].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// Most connections to PostgreSQL this process opens (plus one for its change listener)
    /// [default: 16].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_max_connections: Option<u32>,
    /// Create the data directory when it does not exist (otherwise every command but `serve`
    /// refuses a missing one).
    #[arg(long)]
    #[serde(skip)]
    init: bool,
}

#[derive(Args, Serialize)]
struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    store: StoreArgs,
    /// Listen address of the main API [default: 127.0.0.1:8080].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// Public base URL used in links and `uri` fields [default: http://<listen>].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    public_url: Option<String>,
    /// Where documents are stored: file://<data-dir>/blobs, or s3://bucket/prefix with the
    /// standard AWS_* variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP) [default: file://<data-dir>/blobs].
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    blob_url: Option<String>,
    /// JSON file of people for the file directory (INTERNAL and EXTERNAL).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    directory_file: Option<PathBuf>,
    /// How signers prove who they are: `link` or `email-otp` [default: link].
    #[arg(long, value_name = "link|email-otp")]
    #[serde(skip_serializing_if = "Option::is_none")]
    signer_auth: Option<String>,
    #[command(flatten)]
    automation_api: AutomationArgs,
    #[command(flatten)]
    #[serde(flatten)]
    connections: ConnectionArgs,
    /// PAdES level when a request names none: PADES_B_B, PADES_B_T, PADES_B_LT, PADES_B_LTA
    /// [default: PADES_B_LT].
    #[arg(long, value_name = "LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    signature_level: Option<String>,
    #[command(flatten)]
    tsa: TsaArgs,
    #[command(flatten)]
    webhooks: WebhookArgs,
    #[command(flatten)]
    #[serde(flatten)]
    mail: MailArgs,
    /// Serve /metrics on this address only (not on the main listener); unauthenticated: use a
    /// private address [default: /metrics on the main listener].
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_listen: Option<String>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS on the main listener (`tls.*` in the settings); the files are re-read on SIGHUP.
#[derive(Args, Serialize)]
struct TlsArgs {
    /// PEM certificate chain of the main listener (turns TLS on, with --tls-key).
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "cert", skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the main listener (PKCS#8, SEC1 EC or PKCS#1 RSA).
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "key", skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): a client certificate chaining to one authenticates a CloudSigner
    /// API client as an API key does (client certificates stay optional).
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ca: Option<PathBuf>,
}

/// Mail: the SMTP server, the sender, the language (`smtp.url`, `mail_from`, `mail_language`).
#[derive(Args, Serialize)]
struct MailArgs {
    /// SMTP server: smtp://host:port, smtp://host:port?tls=required (STARTTLS) or smtps://host:port; none = no mail.
    #[arg(long, value_name = "URL")]
    #[serde(
        rename = "smtp",
        skip_serializing_if = "Option::is_none",
        serialize_with = "smtp_url"
    )]
    smtp_url: Option<String>,
    /// From address of Signet's mail [default: signet@localhost].
    #[arg(long, value_name = "ADDRESS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    mail_from: Option<String>,
    /// Language of Signet's mail: en or sv [default: en].
    #[arg(long, value_name = "LANG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    mail_language: Option<String>,
}

/// `--smtp-url` lands in `smtp.url`.
fn smtp_url<S: serde::Serializer>(url: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry("url", url)?;
    map.end()
}

/// Receivers of the order events (`webhooks.*` in the settings).
#[derive(Args, Serialize)]
struct WebhookArgs {
    /// URL that receives every order event, signed per Standard Webhooks (repeatable).
    #[arg(long = "webhook-url", value_name = "URL")]
    #[serde(rename = "urls", skip_serializing_if = "Vec::is_empty")]
    webhook_url: Vec<String>,
}

/// The timestamp authority's flags (`tsa.*` in the settings).
#[derive(Args, Serialize)]
struct TsaArgs {
    /// External RFC 3161 TSA (http or https; basic-auth credentials in the URL or
    /// SIGNET_TSA_USERNAME / SIGNET_TSA_PASSWORD) [default: Signet's built-in TSA].
    #[arg(long, value_name = "URL")]
    #[serde(rename = "url", skip_serializing_if = "Option::is_none")]
    tsa_url: Option<String>,
    /// PEM file of the root certificate(s) the external TSA's certificate must chain to
    /// (required with --tsa-url).
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "ca", skip_serializing_if = "Option::is_none")]
    tsa_ca: Option<PathBuf>,
}

/// How long clients may take and how many connections each listener serves (both listeners).
#[derive(Args, Serialize)]
struct ConnectionArgs {
    /// Seconds to send a request's head in full [default: 30].
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    header_timeout_seconds: Option<u64>,
    /// Seconds a request body may go without a byte while it is read [default: 30].
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    body_timeout_seconds: Option<u64>,
    /// Seconds a kept-alive connection may idle between requests [default: 60].
    #[arg(long, value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    idle_timeout_seconds: Option<u64>,
    /// Most concurrent connections per listener; more are answered 503 [default: 10000].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
}

/// The Automation API listener's flags (`automation_api.*` in the settings).
#[derive(Args, Serialize)]
struct AutomationArgs {
    /// Serve the Automation API (unauthenticated: keep it on loopback or behind mutual TLS).
    #[arg(long = "enable-automation-api")]
    #[serde(rename = "enabled", skip_serializing_if = "std::ops::Not::not")]
    enable_automation_api: bool,
    /// Listen address of the Automation API [default: 127.0.0.1:8081].
    #[arg(long)]
    #[serde(rename = "listen", skip_serializing_if = "Option::is_none")]
    automation_listen: Option<String>,
    /// PEM certificate chain of the Automation API listener (turns TLS on there).
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "tls_cert", skip_serializing_if = "Option::is_none")]
    automation_tls_cert: Option<PathBuf>,
    /// PEM private key of the Automation API listener.
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "tls_key", skip_serializing_if = "Option::is_none")]
    automation_tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) every Automation API client's certificate must chain to.
    #[arg(long, value_name = "FILE")]
    #[serde(rename = "client_ca", skip_serializing_if = "Option::is_none")]
    automation_client_ca: Option<PathBuf>,
    /// Serve the Automation API beyond loopback without mutual TLS (refused otherwise).
    #[arg(long)]
    #[serde(rename = "allow_insecure", skip_serializing_if = "std::ops::Not::not")]
    automation_allow_insecure: bool,
}

/// `SIGNET_LOG` (filter) and `SIGNET_LOG_FORMAT` (text|json): see [`signet::telemetry::logging`].
fn init_tracing() -> anyhow::Result<()> {
    signet::telemetry::logging::init_from_env().map_err(anyhow::Error::msg)
}

/// Defence in depth for the data directory: Signet creates every file 0600 and every directory
/// 0700 itself, and a umask of 077 also closes whatever a library or a future code path creates
/// without an explicit mode. The umask is shared by every thread of the process.
fn restrict_umask() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    restrict_umask();
    let cli = Cli::parse();
    init_tracing()?;
    let result = run(cli).await;
    // Log lines still waiting for the log's thread go out before the error (if any) is printed.
    signet::telemetry::logging::flush();
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::load(args.store.config.as_deref(), &args)?;
            settings.check()?;
            let app = Application::build(settings, clock).await?;
            signet::startup::tls::reload_on_sighup(app.tls_reloader())?;
            if let Some(path) = &app.initial_api_key_file {
                // A log line (JSON when the log is): the key itself is only in the file.
                tracing::info!(
                    "First start: an API key was created and written to {} (it is not shown again).",
                    path.display()
                );
            }
            app.run(shutdown_signal()).await?;
            // The listeners drained (or their grace ran out): leave now, without waiting for
            // blocking work an abandoned request left behind.
            signet::telemetry::logging::flush();
            std::process::exit(0)
        }
        Command::ApiKey(ApiKeyCommand::Create(args)) => {
            let settings = cli::load_settings(&args, &args)?;
            cli::require_data_dir(&settings, args.init)?;
            let store = open_store(&settings).await?;
            let key = signet::api_key::create_api_key(store.as_ref(), clock.now()).await?;
            println!("{key}");
            Ok(())
        }
        Command::Ca(CaCommand::Show(args)) => {
            let settings = cli::load_settings(&args, &args)?;
            cli::require_data_dir(&settings, args.init)?;
            signet::startup::prepare_data_dir(&settings.data_dir)?;
            let ca = signet::pki::load_or_create_ca(&settings.data_dir, clock.now())?;
            print!("{}", ca.certificate_pem());
            Ok(())
        }
        Command::Order(OrderCommand::RevokeSignature(args)) => {
            let settings = cli::load_settings(&args.store, &args.store)?;
            cli::require_data_dir(&settings, args.store.init)?;
            let lines = signet::services::signature_revocation::revoke_signature_command(
                &settings,
                &args.order_id,
                &args.signer_internal_id,
                &args.reason,
                clock.now(),
            )
            .await?;
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        Command::Migrate(args) => {
            let settings = cli::load_settings(&args, &args)?;
            cli::require_data_dir(&settings, args.init)?;
            open_store(&settings).await?;
            eprintln!("database schema is up to date");
            Ok(())
        }
        Command::Config(ConfigCommand::Check(args)) => cli::config::check(&args),
        Command::ApiKey(ApiKeyCommand::List(args)) => cli::api_keys::list(args).await,
        Command::ApiKey(ApiKeyCommand::Revoke(args)) => {
            cli::api_keys::revoke(args, clock.as_ref()).await
        }
        Command::Signer(SignerCommand::List(args)) => cli::signers::list(args).await,
        Command::Signer(SignerCommand::Show(args)) => cli::signers::show(args).await,
        Command::Signer(SignerCommand::Revoke(args)) => {
            cli::signers::revoke(args, clock.as_ref()).await
        }
        Command::Order(OrderCommand::List(args)) => cli::orders::list(args).await,
        Command::Order(OrderCommand::Show(args)) => cli::orders::show(args).await,
        Command::Backup(args) => cli::backup::backup(args, clock.as_ref()).await,
        Command::Restore(args) => cli::backup::restore(args).await,
        Command::MigrateBlobs(args) => cli::blobs::migrate_blobs(args).await,
    }
}

/// Completes on Ctrl-C or SIGTERM, so in-flight requests finish (within the grace period)
/// before the process exits; a second signal exits at once.
async fn shutdown_signal() {
    stop_signal().await;
    tracing::info!(
        "shutting down: finishing the requests in flight (a second signal exits at once)"
    );
    tokio::spawn(async {
        stop_signal().await;
        tracing::warn!("second signal: exiting at once");
        signet::telemetry::logging::flush();
        std::process::exit(1);
    });
}

/// Completes on the next Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
