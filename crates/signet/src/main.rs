//! The `signet` command line: a thin layer that parses arguments and calls the library.

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::io::Write;
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
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create an API key and print it (only the key) on the last line of standard output.
    Create(StoreArgs),
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

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SIGNET_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Its own report of a failed write is an eprintln!, which panics when standard error
        // is closed (a log pipe that went away): a server must keep serving without its log.
        .log_internal_errors(false)
        .init();
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
    init_tracing();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::load(args.store.config.as_deref(), &args)?;
            let app = Application::build(settings, clock).await?;
            signet::startup::tls::reload_on_sighup(app.tls_reloader())?;
            if let Some(path) = &app.initial_api_key_file {
                // A closed standard error must not take the server down: the key is in the file anyway.
                let _ = writeln!(
                    std::io::stderr(),
                    "First start: an API key was created and written to {} (it is not shown again).",
                    path.display()
                );
            }
            app.run(shutdown_signal()).await
        }
        Command::ApiKey(ApiKeyCommand::Create(args)) => {
            let settings = Settings::load(args.config.as_deref(), &args)?;
            let store = open_store(&settings).await?;
            let key = signet::api_key::create_api_key(store.as_ref(), clock.now()).await?;
            println!("{key}");
            Ok(())
        }
        Command::Ca(CaCommand::Show(args)) => {
            let settings = Settings::load(args.config.as_deref(), &args)?;
            signet::startup::prepare_data_dir(&settings.data_dir)?;
            let ca = signet::pki::load_or_create_ca(&settings.data_dir, clock.now())?;
            print!("{}", ca.certificate_pem());
            Ok(())
        }
        Command::Migrate(args) => {
            let settings = Settings::load(args.config.as_deref(), &args)?;
            open_store(&settings).await?;
            eprintln!("database schema is up to date");
            Ok(())
        }
    }
}

/// Completes on Ctrl-C or SIGTERM, so in-flight requests finish before the process exits.
async fn shutdown_signal() {
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
    tracing::info!("shutting down");
}
