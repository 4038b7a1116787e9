//! Typed settings, layered: built-in defaults, then the TOML file given by `--config`, then
//! `SIGNET_*` environment variables, then command-line flags.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::domain::SignatureLevel;

pub mod strict;

/// Everything `signet serve` can be told.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory for the SQLite file, document blobs, the CA key and the first API key.
    pub data_dir: PathBuf,
    /// Address of the main listener (CloudSigner API, CA endpoints).
    pub listen: SocketAddr,
    /// `sqlite:…` or `postgres://…`; default: `sqlite:<data_dir>/signet.db`.
    pub database_url: Option<String>,
    /// Most connections to PostgreSQL this process opens (`--database-max-connections`,
    /// `SIGNET_DATABASE_MAX_CONNECTIONS`, `database_max_connections`); each replica holds one
    /// more for its change listener. SQLite ignores it (one writer, readers per core).
    pub database_max_connections: u32,
    /// Base URL for links and `uri` fields; default: `http://<listen>`.
    pub public_url: Option<String>,
    /// Where document bytes live: `file://<data_dir>/blobs` (the default) or
    /// `s3://bucket/prefix` (with the standard `AWS_*` variables; see `store/objects.rs`).
    pub blob_url: Option<String>,
    /// The `AWS_*` settings of an `s3://` blob store; `None` reads the process environment.
    /// Not a configuration key: for embedding (the tests hand each server its own bucket).
    #[serde(skip)]
    pub object_store_env: Option<Vec<(String, String)>>,
    /// Lifetime of issued end-entity certificates, in days.
    pub certificate_validity_days: u32,
    /// How often the background jobs (renewal, expiry, CRL refresh) run, in seconds.
    pub job_interval_seconds: u64,
    /// Largest JSON request body accepted, in bytes.
    pub max_json_bytes: usize,
    /// Largest document accepted for upload, in bytes (the file itself, not the multipart framing).
    pub max_upload_bytes: u64,
    /// The signing-workflow Automation API's own listener (`[automation_api]` in TOML).
    pub automation_api: AutomationApiSettings,
    /// JSON file of people (INTERNAL and EXTERNAL) for the file directory, the embedded default.
    pub directory_file: Option<PathBuf>,
    /// LDAP for INTERNAL people (`[ldap]` in TOML); used when `ldap.url` is set.
    pub ldap: LdapSettings,
    /// Due date of an order created without one, in days from its creation.
    pub default_due_days: u32,
    /// Seconds a client has to send a request's head (request line and headers) in full, counted
    /// from the connection's start or from the head's first byte; slower connections are closed.
    pub header_timeout_seconds: u64,
    /// Seconds a request body being read may go without a byte (progress-based: a client that
    /// keeps sending is never cut); also how long a response may wait for the client to read.
    pub body_timeout_seconds: u64,
    /// Seconds a kept-alive connection may sit idle between requests before it is closed.
    pub idle_timeout_seconds: u64,
    /// Most concurrent connections per listener; more are answered 503 and closed. Lowered at
    /// start-up (with a warning) to what the process's open-file limit allows.
    pub max_connections: usize,
    /// Receivers of every order event and the key that signs them (`[webhooks]` in TOML).
    pub webhooks: WebhookSettings,
    /// How signers prove who they are on the signing page: `link` (the link alone, default) or
    /// `email-otp` (the link plus a code mailed to them); an order's option
    /// `signerAuthentication` overrides it (`--signer-auth`, `SIGNET_SIGNER_AUTH`).
    pub signer_auth: crate::domain::order::SignerAuth,
    /// The SMTP server mail goes through (`[smtp]` in TOML); no URL means no mail.
    pub smtp: SmtpSettings,
    /// From address of Signet's mail (`--mail-from`, `SIGNET_MAIL_FROM`).
    pub mail_from: String,
    /// Language of Signet's mail: `en` or `sv` (`--mail-language`, `SIGNET_MAIL_LANGUAGE`).
    pub mail_language: crate::mail::Language,
    /// Days before an order's due date that signers who have not acted are reminded.
    pub reminder_days: u32,
    /// Milliseconds between two passes of the outbox sender (mail, webhooks); 0 runs no
    /// background sender (tests that run the passes themselves).
    pub outbox_poll_millis: u64,
    /// The PAdES level of a signature when the request names none, on both APIs
    /// (`--signature-level`, `SIGNET_SIGNATURE_LEVEL`, `signature_level`).
    pub signature_level: SignatureLevel,
    /// Where timestamps come from (`[tsa]` in TOML): the built-in TSA, or an external one.
    pub tsa: TsaSettings,
    /// Days before a B-LTA file's last document timestamp ends (its TSA certificate's
    /// notAfter) that the archive-timestamp job renews it (`SIGNET_ARCHIVE_MARGIN_DAYS`).
    pub archive_margin_days: u32,
    /// Record and serve Prometheus metrics (`SIGNET_METRICS`, `metrics`); `false` records none
    /// and serves no `/metrics`.
    pub metrics: bool,
    /// Serve `/metrics` on this address only (not on the main listener): `--metrics-listen`,
    /// `SIGNET_METRICS_LISTEN`, `metrics_listen`. The page is unauthenticated: keep it private.
    pub metrics_listen: Option<SocketAddr>,
    /// Seconds a stopping server lets requests in flight finish before it exits anyway
    /// (`SIGNET_SHUTDOWN_GRACE_SECONDS`, `shutdown_grace_seconds`); a second signal exits at once.
    pub shutdown_grace_seconds: u64,
    /// Seconds a handler may take once the request body is read (at once for requests without
    /// one), then 503 with the error body (`SIGNET_REQUEST_TIMEOUT_SECONDS`,
    /// `request_timeout_seconds`). Uploads are watched by `body_timeout_seconds` instead.
    pub request_timeout_seconds: u64,
    /// TLS on the main listener (`[tls]` in TOML); off while `cert` is unset.
    pub tls: TlsSettings,
}

/// TLS on the main listener. Environment: `SIGNET_TLS_CERT`, `SIGNET_TLS_KEY`,
/// `SIGNET_CLIENT_CA` (or `SIGNET_TLS_CLIENT_CA`); TOML: `[tls]`; flags `--tls-cert`,
/// `--tls-key`, `--client-ca`. The files are re-read on SIGHUP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, the server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, SEC1 EC or PKCS#1 RSA).
    pub key: Option<PathBuf>,
    /// PEM certificates a client certificate may chain to; such a certificate authenticates a
    /// CloudSigner API client as an API key does (optional: API keys keep working).
    pub client_ca: Option<PathBuf>,
}

/// The timestamp authority Signet asks for every timestamp. Environment: `SIGNET_TSA_<FIELD>`;
/// TOML: `[tsa]`; flags `--tsa-url`, `--tsa-ca`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsaSettings {
    /// An external RFC 3161 TSA (`http://` or `https://`, credentials allowed in the userinfo);
    /// unset means Signet's built-in TSA.
    pub url: Option<String>,
    /// Basic-auth user name for the external TSA (overrides one in the URL).
    pub username: Option<String>,
    /// Basic-auth password for the external TSA (overrides one in the URL). Never logged.
    pub password: Option<String>,
    /// PEM (or DER) file of the certificates trusted as roots of the external TSA's chain.
    /// Required with `url`: the tokens are checked against it before they are embedded.
    pub ca: Option<PathBuf>,
    /// Seconds an external TSA has for the whole exchange (connect, request, reply).
    pub timeout_seconds: u64,
}

impl Default for TsaSettings {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            ca: None,
            timeout_seconds: 10,
        }
    }
}

impl fmt::Debug for TsaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TsaSettings")
            .field(
                "url",
                &self
                    .url
                    .as_deref()
                    .map(crate::services::timestamps::redact_userinfo),
            )
            .field("username", &self.username.as_ref().map(|_| "***"))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca", &self.ca)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// The SMTP server. Environment: `SIGNET_SMTP_<FIELD>`; TOML: `[smtp]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS) or
    /// `smtps://host:port` (implicit TLS); may carry `user:password@`.
    pub url: Option<String>,
    /// Overrides the URL's user name.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Seconds a connection attempt or an SMTP command may take.
    pub timeout_seconds: u64,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            timeout_seconds: 10,
        }
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("timeout_seconds", &self.timeout_seconds)
            .finish()
    }
}

/// Webhooks (Standard Webhooks): `--webhook-url` (repeatable), `SIGNET_WEBHOOK_URL`
/// (comma-separated), `webhooks.urls`; `SIGNET_WEBHOOK_SECRET`, `webhooks.secret`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Absolute http(s) URLs; empty means no webhooks.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub urls: Vec<String>,
    /// `whsec_<base64>`; unset means the one generated into `<data_dir>/webhook.secret`.
    pub secret: Option<String>,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("urls", &self.urls)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A list from TOML or flags, or one comma-separated string from the environment.
fn list_or_comma_separated<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<String>),
        String(String),
    }
    Ok(match ListOrString::deserialize(deserializer)? {
        ListOrString::List(list) => list,
        ListOrString::String(joined) => joined
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The Automation API listener: off unless enabled, because the API trusts its callers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutomationApiSettings {
    /// `--enable-automation-api`, `SIGNET_AUTOMATION_API_ENABLED`, `automation_api.enabled`.
    pub enabled: bool,
    /// `--automation-listen`, `SIGNET_AUTOMATION_LISTEN`, `automation_api.listen`.
    pub listen: SocketAddr,
    /// `--automation-tls-cert`, `SIGNET_AUTOMATION_API_TLS_CERT`, `automation_api.tls_cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--automation-tls-key`, `SIGNET_AUTOMATION_API_TLS_KEY`, `automation_api.tls_key`.
    pub tls_key: Option<PathBuf>,
    /// `--automation-client-ca`, `SIGNET_AUTOMATION_API_CLIENT_CA`, `automation_api.client_ca`:
    /// clients must present a certificate chaining to it (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// `--automation-allow-insecure`, `SIGNET_AUTOMATION_API_ALLOW_INSECURE`,
    /// `automation_api.allow_insecure`: serve beyond loopback without mutual TLS (warned).
    pub allow_insecure: bool,
}

impl Default for AutomationApiSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            allow_insecure: false,
        }
    }
}

/// How INTERNAL people are found in an LDAP directory (Active Directory or OpenLDAP).
/// Environment: `SIGNET_LDAP_<FIELD>`; TOML: `[ldap]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapSettings {
    /// `ldap://host:port`; unset means no LDAP (INTERNAL people come from the directory file).
    pub url: Option<String>,
    /// DN to bind as; unset means an anonymous bind.
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    /// Where searches start, e.g. `ou=people,dc=example,dc=org`.
    pub base_dn: String,
    /// Attribute searched when an identifier is a bare value (`cborgstrom`, not `uid=cborgstrom`).
    pub search_attribute: String,
    pub first_name_attribute: String,
    pub last_name_attribute: String,
    pub mail_attribute: String,
    pub mobile_attribute: String,
    /// Seconds before a lookup gives up and the directory counts as unreachable.
    pub timeout_seconds: u64,
}

impl Default for LdapSettings {
    fn default() -> Self {
        Self {
            url: None,
            bind_dn: None,
            bind_password: None,
            base_dn: String::new(),
            search_attribute: "uid".into(),
            first_name_attribute: "givenName".into(),
            last_name_attribute: "sn".into(),
            mail_attribute: "mail".into(),
            mobile_attribute: "mobile".into(),
            timeout_seconds: 5,
        }
    }
}

impl fmt::Debug for LdapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapSettings")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &self.bind_password.as_ref().map(|_| "***"))
            .field("base_dn", &self.base_dn)
            .field("search_attribute", &self.search_attribute)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./signet-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            database_max_connections: crate::store::postgres::DEFAULT_MAX_CONNECTIONS,
            public_url: None,
            blob_url: None,
            object_store_env: None,
            certificate_validity_days: 365,
            job_interval_seconds: 60,
            max_json_bytes: 256 * 1024,
            max_upload_bytes: 50 * 1024 * 1024,
            automation_api: AutomationApiSettings::default(),
            directory_file: None,
            ldap: LdapSettings::default(),
            default_due_days: 30,
            header_timeout_seconds: 30,
            body_timeout_seconds: 30,
            idle_timeout_seconds: 60,
            max_connections: 10_000,
            webhooks: WebhookSettings::default(),
            smtp: SmtpSettings::default(),
            mail_from: "signet@localhost".into(),
            mail_language: crate::mail::Language::En,
            reminder_days: 2,
            outbox_poll_millis: 2000,
            signer_auth: crate::domain::order::SignerAuth::Link,
            signature_level: SignatureLevel::default(),
            tsa: TsaSettings::default(),
            archive_margin_days: crate::jobs::archive_timestamps::DEFAULT_ARCHIVE_MARGIN_DAYS,
            metrics: true,
            metrics_listen: None,
            shutdown_grace_seconds: 30,
            request_timeout_seconds: 60,
            tls: TlsSettings::default(),
        }
    }
}

impl Settings {
    /// Layers defaults → `config_file` → `SIGNET_*` env → `overrides` (flags that were given).
    pub fn load(config_file: Option<&Path>, overrides: impl Serialize) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        // Unknown keys and variables are refused before extraction, all at once, each with
        // the nearest known name (see `strict`).
        let mut refused = Vec::new();
        if let Some(path) = config_file {
            anyhow::ensure!(
                path.exists(),
                "config file {} does not exist",
                path.display()
            );
            let file = Toml::file(path);
            match figment::Provider::data(&file) {
                Ok(data) => {
                    if let Some(dict) = data.get(&figment::Profile::Default) {
                        refused.extend(strict::unknown_file_keys(path, dict));
                    }
                }
                Err(error) => refused.extend(strict::from_figment(error)),
            }
            figment = figment.merge(file);
        }
        refused.extend(strict::unknown_variables(std::env::vars_os().filter_map(
            |(name, value)| {
                Some((
                    name.into_string().ok()?,
                    value.into_string().unwrap_or_default(),
                ))
            },
        )));
        if !refused.is_empty() {
            return Err(strict::ConfigErrors(refused).into());
        }
        figment = figment
            .merge(
                Env::prefixed("SIGNET_")
                    .filter(|key| !strict::is_non_setting_variable(key.as_str()))
                    .map(|key| nest_env_key(key.as_str()).into()),
            )
            .merge(Serialized::defaults(overrides));
        figment
            .extract()
            .map_err(|error| strict::ConfigErrors(strict::from_figment(error)).into())
    }

    /// Refuses values that parse but cannot work: URLs that do not parse, a zero job interval,
    /// a certificate validity under a day, files that are not there. Each error names the key
    /// and the value (passwords hidden).
    pub fn check(&self) -> Result<(), strict::ConfigErrors> {
        let errors = strict::check_values(self);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(strict::ConfigErrors(errors))
        }
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite:{}", self.data_dir.join("signet.db").display()))
    }

    /// The database URL in force with its password hidden (in the user info or a `password`
    /// query parameter), for the log.
    pub fn redacted_database_url(&self) -> String {
        let url = redact_url(&self.database_url());
        match url.split_once('?') {
            Some((base, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                            format!("{name}=***")
                        }
                        _ => pair.to_owned(),
                    })
                    .collect();
                format!("{base}?{}", query.join("&"))
            }
            None => url,
        }
    }

    /// The public base URL without a trailing slash, given the address actually bound.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if self.tls.cert.is_some() => format!("https://{bound}"),
            None => format!("http://{bound}"),
        }
    }
}

/// Maps flat environment names onto nested settings: `AUTOMATION_API_ENABLED` →
/// `automation_api.enabled`, `AUTOMATION_LISTEN` → `automation_api.listen`, `LDAP_URL` → `ldap.url`,
/// `WEBHOOK_URL` → `webhooks.urls`, `WEBHOOK_SECRET` → `webhooks.secret`.
fn nest_env_key(key: &str) -> String {
    let key = key.to_ascii_lowercase();
    if let Some(rest) = key.strip_prefix("automation_api_") {
        format!("automation_api.{rest}")
    } else if key == "automation_listen" {
        "automation_api.listen".to_owned()
    } else if let Some(rest) = key.strip_prefix("ldap_") {
        format!("ldap.{rest}")
    } else if key == "webhook_url" {
        "webhooks.urls".to_owned()
    } else if key == "webhook_secret" {
        "webhooks.secret".to_owned()
    } else if let Some(rest) = key.strip_prefix("tsa_") {
        format!("tsa.{rest}")
    } else if let Some(rest) = key.strip_prefix("smtp_") {
        format!("smtp.{rest}")
    } else if key == "client_ca" {
        "tls.client_ca".to_owned()
    } else if let Some(nested) = nest_under_known_table(&key) {
        // Any other table of the settings: `TLS_CERT` → `tls.cert` once `tls` exists.
        nested
    } else {
        key
    }
}

/// `<table>_<rest>` → `<table>.<rest>` for a table of the settings, unless the whole name is
/// a top-level setting itself.
fn nest_under_known_table(key: &str) -> Option<String> {
    let known = strict::KnownKeys::of_settings();
    if known.knows(key) {
        return None;
    }
    known
        .tables()
        .filter(|table| !table.contains('.'))
        .filter_map(|table| {
            key.strip_prefix(table)
                .and_then(|rest| rest.strip_prefix('_'))
                .map(|rest| (table, rest))
        })
        .max_by_key(|(table, _)| table.len())
        .map(|(table, rest)| format!("{table}.{rest}"))
}

/// Hides the password in a database URL.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("database_max_connections", &self.database_max_connections)
            .field("public_url", &self.public_url)
            .field("blob_url", &self.blob_url)
            .field("certificate_validity_days", &self.certificate_validity_days)
            .field("job_interval_seconds", &self.job_interval_seconds)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("automation_api", &self.automation_api)
            .field("directory_file", &self.directory_file)
            .field("ldap", &self.ldap)
            .field("default_due_days", &self.default_due_days)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("body_timeout_seconds", &self.body_timeout_seconds)
            .field("idle_timeout_seconds", &self.idle_timeout_seconds)
            .field("max_connections", &self.max_connections)
            .field("webhooks", &self.webhooks)
            .field("smtp", &self.smtp)
            .field("mail_from", &self.mail_from)
            .field("mail_language", &self.mail_language)
            .field("reminder_days", &self.reminder_days)
            .field("outbox_poll_millis", &self.outbox_poll_millis)
            .field("signer_auth", &self.signer_auth)
            .field("signature_level", &self.signature_level)
            .field("tsa", &self.tsa)
            .field("archive_margin_days", &self.archive_margin_days)
            .field("metrics", &self.metrics)
            .field("metrics_listen", &self.metrics_listen)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("request_timeout_seconds", &self.request_timeout_seconds)
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Settings::load`] with no `SIGNET_*` variable in the environment, under figment's
    /// process-wide lock: the tests that set variables through [`figment::Jail`] run at the same
    /// time, and their variables would otherwise leak into this load.
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn load_alone(config: Option<&Path>, overrides: serde_json::Value) -> anyhow::Result<Settings> {
        let mut loaded = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            loaded = Some(Settings::load(config, overrides));
            Ok(())
        });
        loaded.expect("the jail ran the load")
    }

    #[test]
    fn debug_output_hides_database_passwords() {
        let settings = Settings {
            database_url: Some("postgres://app:s3cret@db:5432/signet".into()),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db"), "{shown}");
    }

    #[test]
    fn flat_environment_names_reach_nested_settings() {
        assert_eq!(
            nest_env_key("AUTOMATION_API_ENABLED"),
            "automation_api.enabled"
        );
        assert_eq!(nest_env_key("AUTOMATION_LISTEN"), "automation_api.listen");
        assert_eq!(nest_env_key("LDAP_BIND_DN"), "ldap.bind_dn");
        assert_eq!(nest_env_key("DIRECTORY_FILE"), "directory_file");
    }

    #[test]
    fn the_config_file_enables_the_automation_api_and_ldap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(
            &path,
            "[automation_api]\nenabled = true\nlisten = \"127.0.0.1:9081\"\n\n\
             [ldap]\nurl = \"ldap://127.0.0.1:389\"\nbase_dn = \"dc=example,dc=org\"\n\
             bind_password = \"hunter2\"\n",
        )
        .unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert!(settings.automation_api.enabled);
        assert_eq!(settings.automation_api.listen.port(), 9081);
        assert_eq!(settings.ldap.url.as_deref(), Some("ldap://127.0.0.1:389"));
        assert_eq!(
            settings.ldap.search_attribute, "uid",
            "defaults fill the rest"
        );
        assert!(!format!("{settings:?}").contains("hunter2"));
    }

    #[test]
    fn signer_authentication_comes_from_the_file_and_a_flag_beats_it() {
        use crate::domain::order::SignerAuth;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "signer_auth = \"email-otp\"\n").unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert_eq!(settings.signer_auth, SignerAuth::EmailOtp);
        let settings = load_alone(Some(&path), serde_json::json!({"signer_auth": "link"})).unwrap();
        assert_eq!(settings.signer_auth, SignerAuth::Link);
        assert!(load_alone(None, serde_json::json!({"signer_auth": "sms"})).is_err());
        assert_eq!(Settings::default().signer_auth, SignerAuth::Link);
    }

    #[test]
    fn the_database_pool_size_defaults_to_16_and_comes_from_the_file_or_a_flag() {
        assert_eq!(Settings::default().database_max_connections, 16);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "database_max_connections = 8\n").unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert_eq!(settings.database_max_connections, 8);
        let settings = load_alone(
            Some(&path),
            serde_json::json!({"database_max_connections": 4}),
        )
        .unwrap();
        assert_eq!(settings.database_max_connections, 4);
        let none = Settings {
            database_max_connections: 0,
            ..Settings::default()
        };
        let errors = none.check().unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.0.contains("database_max_connections")),
            "{errors:?}"
        );
    }

    #[test]
    fn connection_limits_come_from_the_config_file_with_defaults_for_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "header_timeout_seconds = 5\nmax_connections = 200\n").unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert_eq!(settings.header_timeout_seconds, 5);
        assert_eq!(settings.max_connections, 200);
        assert_eq!(settings.body_timeout_seconds, 30);
        assert_eq!(settings.idle_timeout_seconds, 60);
    }

    #[test]
    fn webhook_urls_come_as_a_toml_list_and_the_secret_stays_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(
            &path,
            "[webhooks]\nurls = [\"http://a.example/h\", \"https://b.example/h\"]\n\
             secret = \"whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"\n",
        )
        .unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert_eq!(
            settings.webhooks.urls,
            ["http://a.example/h", "https://b.example/h"]
        );
        assert!(!format!("{settings:?}").contains("c2VjcmV0"));
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn webhook_urls_from_the_environment_are_comma_separated() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "SIGNET_WEBHOOK_URL",
                "http://a.example/h, https://b.example/h",
            );
            jail.set_env("SIGNET_WEBHOOK_SECRET", "whsec_x");
            let settings = Settings::load(None, serde_json::json!({})).unwrap();
            assert_eq!(
                settings.webhooks.urls,
                ["http://a.example/h", "https://b.example/h"]
            );
            assert_eq!(settings.webhooks.secret.as_deref(), Some("whsec_x"));
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn webhook_url_flags_override_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("SIGNET_WEBHOOK_URL", "http://env.example/h");
            let settings = Settings::load(
                None,
                serde_json::json!({"webhooks": {"urls": ["http://flag.example/1", "http://flag.example/2"]}}),
            )
            .unwrap();
            assert_eq!(
                settings.webhooks.urls,
                ["http://flag.example/1", "http://flag.example/2"]
            );
            Ok(())
        });
    }

    #[test]
    fn the_signature_level_and_the_tsa_come_from_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(
            &path,
            "signature_level = \"PADES_B_T\"\n\n[tsa]\n\
             url = \"https://alice:hunter2@tsa.example/tsr\"\npassword = \"s3cret\"\n\
             ca = \"/etc/signet/tsa-root.pem\"\n",
        )
        .unwrap();
        let settings = load_alone(Some(&path), serde_json::json!({})).unwrap();
        assert_eq!(settings.signature_level, SignatureLevel::PadesBT);
        assert_eq!(
            settings.tsa.ca.as_deref(),
            Some(Path::new("/etc/signet/tsa-root.pem"))
        );
        assert_eq!(settings.tsa.timeout_seconds, 10, "the default");
        let shown = format!("{settings:?}");
        for secret in ["hunter2", "s3cret", "alice"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("tsa.example"), "{shown}");
    }

    #[test]
    fn an_unknown_signature_level_is_refused_with_the_value_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, "signature_level = \"PADES_B_X\"\n").unwrap();
        let error = load_alone(Some(&path), serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("PADES_B_X"), "{error}");
    }

    #[test]
    fn the_default_signature_level_is_b_lt_and_flags_override_it() {
        assert_eq!(
            Settings::default().signature_level,
            SignatureLevel::PadesBLT
        );
        let settings = load_alone(
            None,
            serde_json::json!({"signature_level": "PADES_B_B", "tsa": {"url": "http://t/"}}),
        )
        .unwrap();
        assert_eq!(settings.signature_level, SignatureLevel::PadesBB);
        assert_eq!(settings.tsa.url.as_deref(), Some("http://t/"));
        assert_eq!(nest_env_key("TSA_TIMEOUT_SECONDS"), "tsa.timeout_seconds");
        assert_eq!(nest_env_key("TSA_CA"), "tsa.ca");
        assert_eq!(nest_env_key("SIGNATURE_LEVEL"), "signature_level");
    }

    #[test]
    fn the_logged_database_url_hides_passwords_in_user_info_and_query() {
        let settings = Settings {
            database_url: Some(
                "postgres://app:s3cret@db:5432/signet?sslmode=require&password=hunter2".into(),
            ),
            ..Settings::default()
        };
        let shown = settings.redacted_database_url();
        assert_eq!(
            shown,
            "postgres://app:***@db:5432/signet?sslmode=require&password=***"
        );
    }

    #[test]
    fn default_database_lives_in_the_data_dir() {
        let settings = Settings::default();
        assert_eq!(settings.database_url(), "sqlite:./signet-data/signet.db");
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment::Jail fixes the closure's error type"
    )]
    fn tls_files_come_from_flat_environment_names_and_the_config_file() {
        assert_eq!(nest_env_key("TLS_CERT"), "tls.cert");
        assert_eq!(nest_env_key("CLIENT_CA"), "tls.client_ca");
        assert_eq!(nest_env_key("TLS_CLIENT_CA"), "tls.client_ca");
        assert_eq!(
            nest_env_key("AUTOMATION_API_TLS_CERT"),
            "automation_api.tls_cert"
        );
        figment::Jail::expect_with(|jail| {
            jail.set_env("SIGNET_TLS_CERT", "/etc/signet/cert.pem");
            jail.set_env("SIGNET_TLS_KEY", "/etc/signet/key.pem");
            jail.set_env("SIGNET_CLIENT_CA", "/etc/signet/clients.pem");
            jail.set_env("SIGNET_AUTOMATION_API_CLIENT_CA", "/etc/signet/orders.pem");
            jail.set_env("SIGNET_AUTOMATION_API_ALLOW_INSECURE", "true");
            jail.create_file(
                "signet.toml",
                "[automation_api]\ntls_cert = \"/a/cert.pem\"\ntls_key = \"/a/key.pem\"\n",
            )?;
            let settings =
                Settings::load(Some(Path::new("signet.toml")), serde_json::json!({})).unwrap();
            assert_eq!(
                settings.tls.cert.as_deref(),
                Some(Path::new("/etc/signet/cert.pem"))
            );
            assert_eq!(
                settings.tls.key.as_deref(),
                Some(Path::new("/etc/signet/key.pem"))
            );
            assert_eq!(
                settings.tls.client_ca.as_deref(),
                Some(Path::new("/etc/signet/clients.pem"))
            );
            let automation = &settings.automation_api;
            assert_eq!(
                automation.tls_cert.as_deref(),
                Some(Path::new("/a/cert.pem"))
            );
            assert_eq!(
                automation.client_ca.as_deref(),
                Some(Path::new("/etc/signet/orders.pem"))
            );
            assert!(automation.allow_insecure);
            assert!(
                settings
                    .public_url("127.0.0.1:8443".parse().unwrap())
                    .starts_with("https://"),
                "links point at https when the main listener serves TLS"
            );
            Ok(())
        });
    }
}
