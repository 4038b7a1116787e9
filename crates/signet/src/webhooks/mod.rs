//! Webhooks: every order event, POSTed as JSON to the configured receivers and signed per the
//! Standard Webhooks specification (<https://www.standardwebhooks.com/>), so a receiver can check
//! with any of its libraries that a message came from this server and was not replayed.
//!
//! The message bodies are fixed when the outbox row is written (in the event's transaction);
//! this module only signs and sends them ([`deliver`]). The signing below is pure: a secret, an
//! id, a time and the body in, the three header values out.

pub mod deliver;

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::WebhookSettings;

/// File in the data directory that holds the generated secret when none is configured.
pub const SECRET_FILE: &str = "webhook.secret";

/// Prefix of a Standard Webhooks secret; the rest is the key in standard base64.
const SECRET_PREFIX: &str = "whsec_";
/// Key sizes the specification recommends (24 to 64 bytes); anything shorter is too weak to
/// guard a signature, anything longer is almost certainly not a key.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;
/// Size of a generated key.
const GENERATED_SECRET_BYTES: usize = 32;

/// The key that signs every webhook. Its `Debug` output hides the key, so a settings dump or an
/// error can never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a configured secret was refused (the message never contains the secret).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a webhook secret must start with \"whsec_\" followed by the key in base64")]
    MissingPrefix,
    #[error("the part after \"whsec_\" is not valid base64")]
    NotBase64,
    #[error("the webhook key is {0} bytes; it must be 24 to 64 bytes")]
    BadLength(usize),
}

impl WebhookSecret {
    /// A fresh random key.
    pub fn generate() -> Self {
        let key: [u8; GENERATED_SECRET_BYTES] = rand::random();
        Self(key.to_vec())
    }

    /// The `whsec_<base64>` form, as receivers configure it.
    pub fn to_whsec(&self) -> String {
        format!("{SECRET_PREFIX}{}", BASE64.encode(&self.0))
    }

    /// The three Standard Webhooks header values for one message.
    pub fn sign(&self, id: &WebhookId, timestamp: i64, body: &[u8]) -> SignedHeaders {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_str().as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        SignedHeaders {
            id: id.clone(),
            timestamp,
            signature: format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())),
        }
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let encoded = raw
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err(SecretError::BadLength(key.len()));
        }
        Ok(Self(key))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// The `webhook-id` of one message: the same on every attempt, so a receiver can drop a
/// message it has already handled (delivery is at least once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookId(String);

impl WebhookId {
    /// The id of the message in outbox row `row_id`.
    pub fn for_outbox_row(row_id: i64) -> Self {
        Self(format!("msg_{row_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The header values of one signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `webhook-id`.
    pub id: WebhookId,
    /// `webhook-timestamp`: Unix seconds.
    pub timestamp: i64,
    /// `webhook-signature`: `v1,<base64 HMAC-SHA256>`.
    pub signature: String,
}

/// The secret in force: the configured one (`SIGNET_WEBHOOK_SECRET`, `webhooks.secret`), else
/// the one generated into `<data_dir>/webhook.secret` (0600) on first start and reused after.
/// A malformed secret, configured or on disk, stops the start with a message saying what is
/// wrong (and never showing the secret).
pub fn load_or_create_secret(
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<WebhookSecret> {
    if let Some(raw) = configured {
        return raw.parse().context(
            "the configured webhook secret (SIGNET_WEBHOOK_SECRET / webhooks.secret) is malformed",
        );
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        let raw = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return raw
            .parse()
            .with_context(|| format!("the webhook secret in {} is malformed", path.display()));
    }
    let secret = WebhookSecret::generate();
    crate::pki::write_private(&path, format!("{}\n", secret.to_whsec()).as_bytes())?;
    Ok(secret)
}

/// A receiver's URL: absolute `http` or `https` with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

/// Why a configured webhook URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("webhook URL {url:?} is not an absolute http(s) URL with a host")]
pub struct BadWebhookUrl {
    pub url: String,
}

impl FromStr for WebhookUrl {
    type Err = BadWebhookUrl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || BadWebhookUrl {
            url: raw.to_owned(),
        };
        let uri: axum::http::Uri = raw.parse().map_err(|_| bad())?;
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        // Credentials in the URL would be stored in every outbox row and shown in the delivery
        // log: refuse them (a receiver authenticates us by the signature).
        let no_userinfo = uri.authority().is_some_and(|a| !a.as_str().contains('@'));
        if scheme_ok && host_ok && no_userinfo && !raw.chars().any(char::is_whitespace) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(bad())
        }
    }
}

impl WebhookUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The webhook settings, checked at start-up: the receivers and the sender that signs for them.
pub struct Webhooks {
    pub urls: Vec<WebhookUrl>,
    pub sender: deliver::WebhookSender,
}

impl Webhooks {
    /// Refuses a malformed URL or secret (the start stops with the reason); generates the secret
    /// on first start when none is configured, so a receiver can be set up before any URL is.
    pub fn from_settings(settings: &WebhookSettings, data_dir: &Path) -> anyhow::Result<Self> {
        let urls = parse_urls(&settings.urls)?;
        let secret = load_or_create_secret(settings.secret.as_deref(), data_dir)?;
        // The wall clock, not the application's: see `WebhookSender::clock`.
        let sender = deliver::WebhookSender::new(secret, Arc::new(SystemClock))?;
        Ok(Self { urls, sender })
    }
}

/// Parses the configured receivers, refusing the first bad one by name.
pub fn parse_urls(raw: &[String]) -> Result<Vec<WebhookUrl>, BadWebhookUrl> {
    raw.iter().map(|url| url.parse()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification and its reference libraries.
    #[test]
    fn signs_the_specifications_example() {
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let headers = secret.sign(
            &WebhookId("msg_p5jXN8AQM9LWM0D4loKWxJek".into()),
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            headers.signature,
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_different_body_id_or_time_gives_a_different_signature() {
        let secret = WebhookSecret::generate();
        let id = WebhookId::for_outbox_row(7);
        let base = secret.sign(&id, 100, b"{}").signature;
        assert_ne!(base, secret.sign(&id, 101, b"{}").signature);
        assert_ne!(base, secret.sign(&id, 100, b"{ }").signature);
        assert_ne!(
            base,
            secret
                .sign(&WebhookId::for_outbox_row(8), 100, b"{}")
                .signature
        );
    }

    #[test]
    fn the_id_is_derived_from_the_outbox_row() {
        assert_eq!(WebhookId::for_outbox_row(42).as_str(), "msg_42");
    }

    #[test]
    fn a_generated_secret_round_trips_through_its_whsec_form() {
        let secret = WebhookSecret::generate();
        assert_eq!(secret.to_whsec().parse::<WebhookSecret>().unwrap(), secret);
    }

    #[test]
    fn malformed_secrets_are_refused_with_a_reason() {
        assert_eq!(
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse::<WebhookSecret>(),
            Err(SecretError::MissingPrefix)
        );
        assert_eq!(
            "whsec_not base64!".parse::<WebhookSecret>(),
            Err(SecretError::NotBase64)
        );
        assert_eq!(
            "whsec_c2hvcnQ=".parse::<WebhookSecret>(),
            Err(SecretError::BadLength(5))
        );
    }

    #[test]
    fn debug_output_hides_the_key() {
        let secret = WebhookSecret::generate();
        let shown = format!("{secret:?}");
        assert!(!shown.contains(&secret.to_whsec()[6..]), "{shown}");
    }

    #[test]
    fn the_generated_secret_is_written_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create_secret(None, dir.path()).unwrap();
        let again = load_or_create_secret(None, dir.path()).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_secret_wins_and_writes_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let configured = WebhookSecret::generate();
        let used = load_or_create_secret(Some(&configured.to_whsec()), dir.path()).unwrap();
        assert_eq!(used, configured);
        assert!(!dir.path().join(SECRET_FILE).exists());
    }

    #[test]
    fn a_malformed_configured_secret_stops_the_start_without_showing_it() {
        let dir = tempfile::tempdir().unwrap();
        let error = load_or_create_secret(Some("whsec_tooshortbutsecret"), dir.path()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("malformed"), "{message}");
        assert!(!message.contains("tooshortbutsecret"), "{message}");
    }

    #[test]
    fn only_absolute_http_urls_are_receivers() {
        for good in [
            "http://127.0.0.1:9000/hook",
            "https://hooks.example.org/signet?x=1",
        ] {
            assert!(good.parse::<WebhookUrl>().is_ok(), "{good}");
        }
        for bad in [
            "ftp://example.org/",
            "/relative",
            "example.org/hook",
            "http://",
            "https://user:pw@example.org/",
            "http://exa mple.org/",
        ] {
            assert_eq!(
                bad.parse::<WebhookUrl>(),
                Err(BadWebhookUrl { url: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_first_bad_url_is_named() {
        let error = parse_urls(&["http://ok.example/".into(), "gopher://x".into()]).unwrap_err();
        assert!(error.to_string().contains("gopher://x"));
    }
}
