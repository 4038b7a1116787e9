//! Where Signet's timestamps come from: its own timestamp authority, in process, or an external
//! RFC 3161 TSA over HTTP (`--tsa-url`). Either way the caller gets a token over the digest it
//! asked about, or a typed [`TimestampUnavailable`] saying why not; a signature that needs a
//! timestamp then fails with 503 TIMESTAMP_UNAVAILABLE and nothing changes (never a silent
//! downgrade to a level without one).
//!
//! The built-in TSA is the one `POST /tsa` serves (`Pki::with_ltv_services`): the same issuing
//! code is called directly, without HTTP. An external TSA gets a DER `TimeStampReq` with a fresh
//! random nonce and certReq set, under one deadline for the whole exchange (connect, send, reply)
//! and a bound on the reply's size, and its reply is verified fully before anything uses it:
//! status granted, the imprint and nonce that were sent, the signature and the ESS
//! signing-certificate attribute, the TSA certificate's critical EKU timeStamping, its validity at
//! the token's time and its chain to a configured trust anchor.
//!
//! **Whom an external TSA's tokens must chain to.** Only to the certificates in the file given by
//! `--tsa-ca` (`SIGNET_TSA_CA`, `tsa.ca`); `--tsa-url` without it is refused at start-up. The
//! roots the operating system trusts for HTTPS vouch for web servers, not for time, so they are
//! not borrowed for this (the HTTPS connection itself does use them). A TSA publishes its root
//! beside its URL, and whoever validates the signed documents later needs that same root
//! (`pyhanko … --trust`): asking for it once, up front, means every token Signet embeds is one the
//! operator's own validators accept, and a TSA that changes hands or certificates is noticed at
//! the first signature rather than by a validator years later.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use signet_crypto::tsp::{self, Expectation, HashAlgorithm, TimeStampRequest, TspError};
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::config::TsaSettings;
use crate::pki::Pki;

/// The largest reply read from an external TSA. A token with an RSA-4096 signature and a chain of
/// three certificates is under 8 KiB; anything near this bound is not a timestamp reply.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The media types of RFC 3161 over HTTP (RFC 3161 §3.4).
const TIMESTAMP_QUERY: &str = "application/timestamp-query";
const TIMESTAMP_REPLY: &str = "application/timestamp-reply";

/// A verified timestamp token over a signature value, ready to add as the unsigned attribute
/// `id-aa-signatureTimeStampToken` (PAdES B-T).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampToken {
    /// The token: a DER `ContentInfo` holding the TSA's SignedData over a TSTInfo.
    pub der: Vec<u8>,
    /// The TSA's time (the TSTInfo's genTime).
    pub time: OffsetDateTime,
    /// The certificate that signed the token (its chain goes into a `/DSS` for B-LT).
    pub tsa_certificate_der: Vec<u8>,
}

/// Why no timestamp could be had. Each is a reason to answer 503 and try again later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampUnavailable {
    /// No connection: refused, no route, name not found, TLS failed.
    #[error("the timestamp authority cannot be reached: {0}")]
    Unreachable(String),
    /// No complete reply within the configured timeout.
    #[error("the timestamp authority did not answer within the timeout")]
    Timeout,
    /// An HTTP answer other than success.
    #[error("the timestamp authority answered HTTP {0}")]
    HttpStatus(u16),
    /// A reply larger than [`MAX_REPLY_BYTES`].
    #[error("the timestamp authority's reply is larger than {MAX_REPLY_BYTES} bytes")]
    TooLarge,
    /// A reply that is not an RFC 3161 `TimeStampResp`.
    #[error("the timestamp authority's reply is malformed: {0}")]
    Malformed(String),
    /// A `TimeStampResp` whose status is not granted (the TSA refused), or the built-in TSA failing.
    #[error("the timestamp authority refused the request: {0}")]
    Rejected(String),
    /// A token that does not prove what was asked (imprint, nonce, signature, certificate, chain).
    #[error("the timestamp token does not verify: {0}")]
    VerificationFailed(String),
}

impl TimestampUnavailable {
    /// A short, stable name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "unreachable",
            Self::Timeout => "timeout",
            Self::HttpStatus(_) => "http_status",
            Self::TooLarge => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Rejected(_) => "rejected",
            Self::VerificationFailed(_) => "verification_failed",
        }
    }
}

impl From<TspError> for TimestampUnavailable {
    fn from(error: TspError) -> Self {
        match error {
            TspError::Refused(reason) => Self::Rejected(reason),
            TspError::Malformed(reason) => Self::Malformed(reason),
            TspError::Encoding(e) => Self::Malformed(e.to_string()),
            TspError::Invalid(reason) | TspError::Setup(reason) => Self::VerificationFailed(reason),
            TspError::Signing => Self::VerificationFailed("signing failed".into()),
        }
    }
}

/// Why a signature timestamp could not be added to a CMS SignedData.
#[derive(Debug, thiserror::Error)]
pub enum StampError {
    /// No token: the request fails with 503 and changes nothing.
    #[error(transparent)]
    Unavailable(#[from] TimestampUnavailable),
    /// The SignedData Signet built cannot take the token: Signet's fault, not the TSA's.
    #[error("adding the signature timestamp: {0}")]
    Cms(#[from] signet_crypto::cms::CmsError),
}

/// A setting that keeps the timestamp authority from being set up; start-up stops with it.
#[derive(Debug, thiserror::Error)]
pub enum TsaConfigError {
    #[error("the TSA URL {url:?} is not a URL: {reason}")]
    Url { url: String, reason: String },
    #[error("the TSA URL {url:?} must start with http:// or https://")]
    Scheme { url: String },
    #[error(
        "the TSA URL {url:?} is set but no trust anchor for its tokens: give the root certificate \
         that issued the TSA's certificate with --tsa-ca FILE (SIGNET_TSA_CA, tsa.ca)"
    )]
    MissingTrustAnchor { url: String },
    #[error("the TSA trust anchor file {path}: {reason}")]
    TrustAnchor { path: String, reason: String },
    #[error("the TSA timeout must be at least 1 second, not {0}")]
    Timeout(u64),
    #[error("the HTTP client for the TSA cannot be built: {0}")]
    Client(String),
}

/// Signet's source of timestamps, chosen at start-up.
#[derive(Debug)]
pub enum TimestampAuthority {
    /// Signet's own TSA, called in process.
    Builtin(BuiltinTsa),
    /// An RFC 3161 TSA over HTTP.
    External(ExternalTsa),
}

impl TimestampAuthority {
    /// The external TSA when `settings.url` is set, else the built-in one. Every value is checked
    /// here, so a wrong one stops the start with an error that names it.
    pub fn from_settings(
        settings: &TsaSettings,
        pki: Arc<Pki>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, TsaConfigError> {
        if settings.timeout_seconds == 0 {
            return Err(TsaConfigError::Timeout(0));
        }
        let Some(url) = settings.url.as_deref().filter(|u| !u.trim().is_empty()) else {
            return Ok(Self::Builtin(BuiltinTsa::new(pki, clock)));
        };
        // The URL first: of two wrong values, the one named first is the one given first.
        parse_url(url)?;
        let path = settings
            .ca
            .as_deref()
            .ok_or_else(|| TsaConfigError::MissingTrustAnchor {
                url: redact_userinfo(url),
            })?;
        let anchors = read_trust_anchors(path)?;
        let external = ExternalTsa::new(
            url,
            settings.username.as_deref(),
            settings.password.as_deref(),
            anchors,
            Duration::from_secs(settings.timeout_seconds),
        )?;
        Ok(Self::External(external))
    }

    /// A timestamp token over `digest_of_signature_value` (SHA-256 of a SignerInfo's signature
    /// value, RFC 3161 Appendix A), verified when it came from outside.
    #[tracing::instrument(skip_all, fields(tsa = %self.describe()))]
    pub async fn timestamp(
        &self,
        digest_of_signature_value: &[u8; 32],
    ) -> Result<TimestampToken, TimestampUnavailable> {
        let outcome = match self {
            Self::Builtin(builtin) => builtin.timestamp(digest_of_signature_value),
            Self::External(external) => external.timestamp(digest_of_signature_value).await,
        };
        if let Err(error) = &outcome {
            tracing::warn!(kind = error.kind(), %error, "no timestamp");
        }
        outcome
    }

    /// PAdES B-T: `signed_data_der` (a ContentInfo with one SignerInfo) with a timestamp token over
    /// its signature value added as the unsigned attribute id-aa-signatureTimeStampToken. Call it
    /// after the signature is verified and before the CMS is embedded.
    pub async fn stamp_signature(&self, signed_data_der: Vec<u8>) -> Result<Vec<u8>, StampError> {
        use sha2::Digest;
        let value = signet_crypto::cms::signature_value(&signed_data_der)?;
        let digest: [u8; 32] = sha2::Sha256::digest(&value).into();
        let token = self.timestamp(&digest).await?;
        Ok(signet_crypto::cms::add_signature_timestamp(
            &signed_data_der,
            &token.der,
        )?)
    }

    /// For an external TSA, the source of revocation data for its chain (B-LT and B-LTA need
    /// it): the same trust anchors and timeout. `None` for the built-in TSA, whose chain is
    /// Signet's own.
    pub fn external_revocation(&self) -> Option<super::external_revocation::ExternalRevocation> {
        let Self::External(external) = self else {
            return None;
        };
        match super::external_revocation::ExternalRevocation::new(
            external.trust_anchors.clone(),
            external.timeout,
        ) {
            Ok(fetcher) => Some(fetcher),
            Err(error) => {
                // Without it every B-LT signature fails closed (503), which says what is wrong.
                tracing::error!(%error, "the HTTP client for the TSA's revocation data cannot be built");
                None
            }
        }
    }

    /// `built-in` or the external TSA's URL without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Builtin(_) => "built-in".to_owned(),
            Self::External(external) => external.url.to_string(),
        }
    }
}

/// Signet's own TSA (the one `POST /tsa` serves), called without HTTP.
pub struct BuiltinTsa {
    pki: Arc<Pki>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for BuiltinTsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinTsa").finish_non_exhaustive()
    }
}

impl BuiltinTsa {
    pub fn new(pki: Arc<Pki>, clock: Arc<dyn Clock>) -> Self {
        Self { pki, clock }
    }

    /// One P-256 signature, tens of microseconds: no reason to leave the executor. No nonce: the
    /// token does not cross a network, so there is no replay to detect.
    fn timestamp(&self, digest: &[u8; 32]) -> Result<TimestampToken, TimestampUnavailable> {
        let services = self.pki.services().ok_or_else(|| {
            TimestampUnavailable::Rejected("the built-in timestamp authority is not set up".into())
        })?;
        let now = self.clock.now();
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let request = TimeStampRequest::new(HashAlgorithm::Sha256, digest.to_vec(), None);
        let der = services.tsa.issue(&request, now).map_err(|e| {
            TimestampUnavailable::Rejected(format!("the built-in timestamp authority failed: {e}"))
        })?;
        Ok(TimestampToken {
            der,
            time: now,
            tsa_certificate_der: services.tsa.certificate_der().to_vec(),
        })
    }
}

/// Basic-auth credentials for an external TSA; shown nowhere.
#[derive(Clone)]
struct Credentials {
    username: String,
    password: Option<String>,
}

/// An RFC 3161 TSA over HTTP, and whom its tokens must chain to.
pub struct ExternalTsa {
    /// Without userinfo: the credentials are kept apart so the URL can be logged.
    url: reqwest::Url,
    credentials: Option<Credentials>,
    timeout: Duration,
    trust_anchors: Vec<Vec<u8>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for ExternalTsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalTsa")
            .field("url", &self.url.as_str())
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("trust_anchors", &self.trust_anchors.len())
            .finish_non_exhaustive()
    }
}

impl ExternalTsa {
    /// A client for the TSA at `url` (`http` or `https`; credentials in its userinfo are taken
    /// out, and `username` / `password` override them), trusting tokens whose certificate chains to
    /// one of `trust_anchors` (DER), with `timeout` for each whole exchange.
    pub fn new(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
        trust_anchors: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Self, TsaConfigError> {
        let mut parsed = parse_url(url)?;
        let from_url = (!parsed.username().is_empty()).then(|| Credentials {
            username: percent_decode(parsed.username()),
            password: parsed.password().map(percent_decode),
        });
        let credentials = match (username, from_url) {
            (Some(username), _) => Some(Credentials {
                username: username.to_owned(),
                password: password.map(str::to_owned),
            }),
            (None, Some(mut given)) => {
                if let Some(password) = password {
                    given.password = Some(password.to_owned());
                }
                Some(given)
            }
            (None, None) => password.map(|password| Credentials {
                username: String::new(),
                password: Some(password.to_owned()),
            }),
        };
        // Infallible for http(s) URLs with a host, which was checked above.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        if trust_anchors.is_empty() {
            return Err(TsaConfigError::MissingTrustAnchor {
                url: parsed.to_string(),
            });
        }
        if timeout.is_zero() {
            return Err(TsaConfigError::Timeout(0));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            // A redirect could carry the credentials elsewhere; a TSA has one URL.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TsaConfigError::Client(e.to_string()))?;
        Ok(Self {
            url: parsed,
            credentials,
            timeout,
            trust_anchors,
            client,
        })
    }

    async fn timestamp(&self, digest: &[u8; 32]) -> Result<TimestampToken, TimestampUnavailable> {
        let request = TimeStampRequest::new(
            HashAlgorithm::Sha256,
            digest.to_vec(),
            Some(rand::random::<u64>()),
        );
        let query = request
            .to_der()
            .map_err(|e| TimestampUnavailable::Malformed(format!("building the request: {e}")))?;
        // One deadline for the whole exchange, whatever the client's own timers cover.
        let (status, is_reply, body) = tokio::time::timeout(self.timeout, self.exchange(query))
            .await
            .map_err(|_| TimestampUnavailable::Timeout)??;
        let anchors: Vec<&[u8]> = self.trust_anchors.iter().map(Vec::as_slice).collect();
        let expected = Expectation {
            hash_algorithm: HashAlgorithm::Sha256,
            hashed_message: digest,
            nonce: request.nonce.as_deref(),
            policy: None,
            trust_anchors: &anchors,
            extra_certificates: &[],
        };
        if !status.is_success() {
            // Some TSAs (Signet's own among them) send a rejection TimeStampResp under a 4xx:
            // its status text says more than the HTTP code.
            if is_reply {
                if let Err(TspError::Refused(reason)) = tsp::verify_response(&body, &expected) {
                    return Err(TimestampUnavailable::Rejected(reason));
                }
            }
            return Err(TimestampUnavailable::HttpStatus(status.as_u16()));
        }
        let verified = tsp::verify_response(&body, &expected)?;
        Ok(TimestampToken {
            der: verified.token_der,
            time: verified.time,
            tsa_certificate_der: verified.tsa_certificate_der,
        })
    }

    /// POSTs the query; the HTTP status, whether the reply says it is a timestamp reply, and
    /// the body, read up to [`MAX_REPLY_BYTES`].
    async fn exchange(
        &self,
        query: Vec<u8>,
    ) -> Result<(reqwest::StatusCode, bool, Vec<u8>), TimestampUnavailable> {
        let mut post = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, TIMESTAMP_QUERY)
            .header(reqwest::header::ACCEPT, TIMESTAMP_REPLY)
            .body(query);
        if let Some(credentials) = &self.credentials {
            post = post.basic_auth(&credentials.username, credentials.password.as_deref());
        }
        let mut response = post.send().await.map_err(transport_error)?;
        let status = response.status();
        let is_reply = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with(TIMESTAMP_REPLY));
        if response
            .content_length()
            .is_some_and(|length| length > MAX_REPLY_BYTES as u64)
        {
            return Err(TimestampUnavailable::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if body.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(TimestampUnavailable::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, is_reply, body))
    }
}

/// `url` parsed, if it is an `http` or `https` URL with a host; the error names it, password hidden.
fn parse_url(url: &str) -> Result<reqwest::Url, TsaConfigError> {
    let shown = redact_userinfo(url);
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| TsaConfigError::Url {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || !parsed.has_host() {
        return Err(TsaConfigError::Scheme { url: shown });
    }
    Ok(parsed)
}

/// A transport failure as the caller's reason, without the URL (which is logged apart).
fn transport_error(error: reqwest::Error) -> TimestampUnavailable {
    if error.is_timeout() {
        return TimestampUnavailable::Timeout;
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    // reqwest's own text is "error sending request"; the cause (refused, DNS, TLS) is below it.
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    TimestampUnavailable::Unreachable(reason)
}

/// The certificates of a PEM bundle (or one DER certificate) as DER.
fn read_trust_anchors(path: &Path) -> Result<Vec<Vec<u8>>, TsaConfigError> {
    let fail = |reason: String| TsaConfigError::TrustAnchor {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    let blocks = pem::parse_many(&bytes).map_err(|e| fail(format!("not PEM: {e}")))?;
    let certificates: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certificates.is_empty() {
        return Err(fail("holds no CERTIFICATE block".into()));
    }
    Ok(certificates)
}

/// `url` with whatever sits between the scheme and the last `@` before the host replaced, for
/// messages about a URL that may carry a password (or may not even parse).
pub(crate) fn redact_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_owned(),
    }
}

/// Userinfo in a URL is percent-encoded (`p%40ss` for `p@ss`); basic auth wants the bytes.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(value as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchors() -> Vec<Vec<u8>> {
        vec![vec![0x30, 0x00]]
    }

    #[test]
    fn credentials_in_the_url_are_taken_out_of_it() {
        let tsa = ExternalTsa::new(
            "https://alice:p%40ss@tsa.example/tsr",
            None,
            None,
            anchors(),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(tsa.url.as_str(), "https://tsa.example/tsr");
        let credentials = tsa.credentials.clone().unwrap();
        assert_eq!(credentials.username, "alice");
        assert_eq!(credentials.password.as_deref(), Some("p@ss"));
        let shown = format!("{tsa:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("alice"),
            "{shown}"
        );
    }

    #[test]
    fn separate_credentials_override_the_url_ones() {
        let tsa = ExternalTsa::new(
            "http://alice:old@tsa.example/",
            Some("bob"),
            Some("new"),
            anchors(),
            Duration::from_secs(5),
        )
        .unwrap();
        let credentials = tsa.credentials.clone().unwrap();
        assert_eq!(credentials.username, "bob");
        assert_eq!(credentials.password.as_deref(), Some("new"));
    }

    #[test]
    fn only_http_and_https_urls_are_accepted_and_the_error_hides_the_password() {
        for bad in [
            "ftp://u:secret@tsa.example/",
            "mailto:u@tsa.example",
            "tsa.example/tsr",
        ] {
            let error = ExternalTsa::new(bad, None, None, anchors(), Duration::from_secs(5))
                .unwrap_err()
                .to_string();
            assert!(!error.contains("secret"), "{error}");
            assert!(error.contains("tsa.example"), "the value is named: {error}");
        }
        let error = ExternalTsa::new(
            "http://u:secret@[::1",
            None,
            None,
            anchors(),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("***@[::1") && !error.contains("secret"),
            "{error}"
        );
    }

    #[test]
    fn redaction_stops_at_the_authority() {
        assert_eq!(
            redact_userinfo("https://u:p@h/path@x"),
            "https://***@h/path@x"
        );
        assert_eq!(redact_userinfo("https://h/path@x"), "https://h/path@x");
    }

    #[test]
    fn a_url_without_a_trust_anchor_is_refused_at_start_up() {
        let error = ExternalTsa::new(
            "http://tsa.example/",
            None,
            None,
            Vec::new(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(error, TsaConfigError::MissingTrustAnchor { .. }));
        assert!(error.to_string().contains("--tsa-ca"), "{error}");
    }

    #[test]
    fn the_trust_anchor_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let error = read_trust_anchors(&path).unwrap_err().to_string();
        assert!(
            error.contains("ca.pem") && error.contains("CERTIFICATE"),
            "{error}"
        );
        let missing = read_trust_anchors(&dir.path().join("absent.pem")).unwrap_err();
        assert!(missing.to_string().contains("absent.pem"), "{missing}");
    }
}
