//! Revocation data for an external TSA's chain (`--tsa-url`), fetched when a B-LT or B-LTA
//! signature needs it: for every certificate of the chain below its root, an OCSP response
//! from the responder its Authority Information Access names (POST, RFC 6960 Appendix A) and
//! the CRL from its CRL distribution point, each checked before use (signed by the issuer or
//! its delegated responder, about this certificate, current, "good"; the CRL signed by the
//! issuer, current, not listing it). Both are asked for because validators differ in which they
//! take (pyHanko judging a B-LT signature offline reads the CRL); at least one must be had.
//!
//! Fails closed: a certificate with neither (no AIA OCSP and no CRL distribution point, as with
//! a TSA made with `openssl ts`), every source unreachable, slow, oversized or unverifiable, or
//! a certificate found revoked is a [`ValidationDataUnavailable`], and the signature request
//! answers 503 TIMESTAMP_UNAVAILABLE. Never a `/DSS` that leaves the TSA's chain unprovable.
//!
//! Bounded like the TSA client: one deadline per fetch (the TSA timeout), no redirects (a
//! responder has one URL), a cap on each body, `http` and `https` URLs only.

use std::time::Duration;

use signet_crypto::revocation::{self, RevocationError};
use signet_pdf::ValidationData;
use time::OffsetDateTime;

use super::validation_data::ValidationDataUnavailable;

/// The largest OCSP response read: a response with a delegated responder certificate is 1-3 KiB.
const MAX_OCSP_BYTES: usize = 64 * 1024;
/// The largest CRL read: a public TSA CA's CRL is small; this leaves room for busy CAs.
const MAX_CRL_BYTES: usize = 8 * 1024 * 1024;

/// Fetches and checks revocation data for certificates of other CAs.
#[derive(Debug)]
pub struct ExternalRevocation {
    client: reqwest::Client,
    timeout: Duration,
    /// Roots the external TSA's chain ends in (`--tsa-ca`); they go into the `/DSS` too.
    trust_anchors: Vec<Vec<u8>>,
}

impl ExternalRevocation {
    /// A fetcher with `timeout` per fetch, completing chains up to `trust_anchors`.
    pub fn new(trust_anchors: Vec<Vec<u8>>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            timeout,
            trust_anchors,
        })
    }

    /// Adds to `data` the issuer of `certificate_der` (found among `pool` and the trust anchors)
    /// and the OCSP response and CRL that show it is not revoked at `now`.
    pub async fn collect(
        &self,
        certificate_der: &[u8],
        pool: &[Vec<u8>],
        now: OffsetDateTime,
        data: &mut ValidationData,
    ) -> Result<(), ValidationDataUnavailable> {
        let unavailable = |reason: String| ValidationDataUnavailable::External(reason);
        let issuer = pool
            .iter()
            .chain(self.trust_anchors.iter())
            .find(|candidate| {
                candidate.as_slice() != certificate_der
                    && revocation::issued_by(certificate_der, candidate)
            })
            .ok_or_else(|| {
                unavailable("the issuer of a certificate in the TSA's chain is not known".into())
            })?
            .clone();
        let locations =
            revocation::locations(certificate_der).map_err(|e| unavailable(e.to_string()))?;
        let mut failures: Vec<String> = Vec::new();
        let mut found = false;
        for url in locations.ocsp.iter().filter(|u| is_http(u)) {
            match self.ocsp(url, certificate_der, &issuer, now).await {
                Ok((response, responder)) => {
                    data.ocsp_responses.push(response);
                    if let Some(responder) = responder {
                        push_certificate(data, responder);
                    }
                    found = true;
                    break;
                }
                Err(Fetch::Revoked) => return Err(revoked()),
                Err(Fetch::Failed(reason)) => failures.push(format!("OCSP {url}: {reason}")),
            }
        }
        for url in locations.crl.iter().filter(|u| is_http(u)) {
            match self.crl(url, certificate_der, &issuer, now).await {
                Ok(crl) => {
                    data.crls.push(crl);
                    found = true;
                    break;
                }
                Err(Fetch::Revoked) => return Err(revoked()),
                Err(Fetch::Failed(reason)) => failures.push(format!("CRL {url}: {reason}")),
            }
        }
        if !found {
            let reason = if failures.is_empty() {
                "a certificate of the TSA's chain names no OCSP responder (AIA) and no CRL \
                 distribution point, so its revocation status cannot be had"
                    .to_owned()
            } else {
                format!(
                    "no revocation data for a certificate of the TSA's chain: {}",
                    failures.join("; ")
                )
            };
            return Err(unavailable(reason));
        }
        push_certificate(data, issuer);
        Ok(())
    }

    async fn ocsp(
        &self,
        url: &str,
        certificate_der: &[u8],
        issuer_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), Fetch> {
        let request =
            signet_crypto::ocsp::OcspRequest::for_certificate(certificate_der, issuer_der)
                .and_then(|r| r.to_der())
                .map_err(|e| Fetch::Failed(e.to_string()))?;
        let post = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/ocsp-request")
            .header(reqwest::header::ACCEPT, "application/ocsp-response")
            .body(request);
        let body = self.fetch(post, MAX_OCSP_BYTES).await?;
        let verified = revocation::verify_ocsp_response(&body, certificate_der, issuer_der, now)?;
        Ok((body, verified.responder_certificate))
    }

    async fn crl(
        &self,
        url: &str,
        certificate_der: &[u8],
        issuer_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<Vec<u8>, Fetch> {
        let body = self.fetch(self.client.get(url), MAX_CRL_BYTES).await?;
        revocation::verify_crl(&body, certificate_der, issuer_der, now)?;
        Ok(body)
    }

    /// Sends `request` and reads a success body of at most `limit` bytes, all within the timeout.
    async fn fetch(
        &self,
        request: reqwest::RequestBuilder,
        limit: usize,
    ) -> Result<Vec<u8>, Fetch> {
        let exchange = async {
            let mut response = request.send().await.map_err(describe)?;
            if !response.status().is_success() {
                return Err(Fetch::Failed(format!(
                    "HTTP {}",
                    response.status().as_u16()
                )));
            }
            if response.content_length().is_some_and(|l| l > limit as u64) {
                return Err(Fetch::Failed(format!("larger than {limit} bytes")));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(describe)? {
                if body.len() + chunk.len() > limit {
                    return Err(Fetch::Failed(format!("larger than {limit} bytes")));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Fetch::Failed("no answer within the timeout".into()))?
    }
}

/// Why one source gave nothing usable.
enum Fetch {
    /// The certificate is revoked: nothing else is worth asking.
    Revoked,
    Failed(String),
}

impl From<RevocationError> for Fetch {
    fn from(error: RevocationError) -> Self {
        match error {
            RevocationError::Revoked => Fetch::Revoked,
            other => Fetch::Failed(other.to_string()),
        }
    }
}

fn describe(error: reqwest::Error) -> Fetch {
    if error.is_timeout() {
        return Fetch::Failed("no answer within the timeout".into());
    }
    let error = error.without_url();
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    Fetch::Failed(reason)
}

fn revoked() -> ValidationDataUnavailable {
    ValidationDataUnavailable::External(
        "a certificate of the TSA's chain is revoked: its tokens prove nothing".into(),
    )
}

fn is_http(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

fn push_certificate(data: &mut ValidationData, der: Vec<u8>) {
    if !data.certificates.contains(&der) {
        data.certificates.push(der);
    }
}
