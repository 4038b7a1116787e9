//! Signet's certificate authority in service: the CA key and certificate on disk, the issuing
//! policy (validity, renewal point, CRL location) and the current CRL.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use signet_crypto::ca::{CertificateAuthority, CrlRequest, IssueRequest, RevokedCertificate};
use signet_crypto::csr::{CertificationRequest, PublicKey, Subject};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

use crate::data_dir::{create_private_dir_all, private_file_options};
use crate::store::{CrlRecord, DueRenewal, NewCertificate, Store};

/// How long a CRL is valid; the CRL job refreshes it when half of that has passed.
const CRL_VALIDITY: Duration = Duration::days(7);
/// How long the CA certificate itself is valid when first created.
const CA_VALIDITY: Duration = Duration::days(365 * 20);

/// The CA plus the rules it issues by.
pub struct Pki {
    ca: CertificateAuthority,
    certificate_validity: Duration,
    crl_url: String,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("certificate_validity", &self.certificate_validity)
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

/// Where the CA's files live inside the data directory.
pub fn ca_paths(data_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("ca");
    (dir.join("ca.pem"), dir.join("ca.key"))
}

/// Loads the CA from the data directory, creating it (directory 0700, files 0600) on first start.
pub fn load_or_create_ca(
    data_dir: &Path,
    now: OffsetDateTime,
) -> anyhow::Result<CertificateAuthority> {
    let (certificate_path, key_path) = ca_paths(data_dir);
    if key_path.exists() {
        let certificate = std::fs::read_to_string(&certificate_path)
            .with_context(|| format!("reading {}", certificate_path.display()))?;
        let key = std::fs::read_to_string(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))?;
        return CertificateAuthority::from_pem(&certificate, &key)
            .with_context(|| format!("loading the CA from {}", key_path.display()));
    }
    let ca = CertificateAuthority::generate("Signet CA", now, CA_VALIDITY)
        .context("generating the CA key and certificate")?;
    let dir = certificate_path
        .parent()
        .context("CA path has no parent directory")?;
    create_private_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_private(&key_path, ca.private_key_pem().as_bytes())?;
    // The certificate is public, but one rule for every file keeps the directory simple to audit.
    // It may exist without its key (a crash between the two writes): replace it.
    let mut certificate = private_file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&certificate_path)
        .with_context(|| format!("creating {}", certificate_path.display()))?;
    std::io::Write::write_all(&mut certificate, ca.certificate_pem().as_bytes())
        .and_then(|()| certificate.sync_all())
        .with_context(|| format!("writing {}", certificate_path.display()))?;
    tracing::info!(ca.key = %key_path.display(), "created a new certificate authority");
    Ok(ca)
}

/// Writes a secret file readable by its owner only, durably (a lost CA key orphans every certificate).
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = private_file_options()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    // The new name must survive a crash as well as the bytes.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("flushing {}", parent.display()))?;
    }
    Ok(())
}

impl Pki {
    pub fn new(ca: CertificateAuthority, certificate_validity: Duration, public_url: &str) -> Self {
        Self {
            ca,
            certificate_validity,
            crl_url: format!("{public_url}/ca/crl.der"),
        }
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// Issues the certificate for one signing-order signature: `public_key` is a key Signet made
    /// for this signature alone, valid for `validity` from a minute before `now` (clock skew).
    pub fn issue_for_signature(
        &self,
        subject: &Subject,
        public_key: &PublicKey,
        email: Option<&str>,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Vec<u8>, signet_crypto::ca::CaError> {
        let issued = self.ca.issue(&IssueRequest {
            subject,
            public_key,
            not_before: now - Duration::minutes(1),
            not_after: now + validity,
            crl_distribution_url: &self.crl_url,
            email,
        })?;
        Ok(issued.der)
    }

    /// Issues a certificate for `public_key`, valid from now for the configured lifetime.
    pub fn issue(
        &self,
        subject: &Subject,
        public_key: &PublicKey,
        now: OffsetDateTime,
    ) -> Result<NewCertificate, signet_crypto::ca::CaError> {
        let not_after = now + self.certificate_validity;
        let issued = self.ca.issue(&IssueRequest {
            subject,
            public_key,
            not_before: now,
            not_after,
            crl_distribution_url: &self.crl_url,
            email: None,
        })?;
        // Renew once two thirds of the lifetime have passed: early enough that a device that
        // is offline for a while still finds a valid certificate, late enough not to churn.
        let lifetime = issued.not_after - issued.not_before;
        Ok(NewCertificate {
            serial: issued.serial,
            renew_after: issued.not_before + lifetime * 2 / 3,
            not_before: issued.not_before,
            not_after: issued.not_after,
            der: issued.der,
        })
    }

    /// Re-certifies a signer's stored CSR key (same subject, same public key).
    pub fn renew(&self, due: &DueRenewal, now: OffsetDateTime) -> Result<NewCertificate, String> {
        let csr = CertificationRequest::parse(&BASE64.encode(&due.csr_der)).map_err(|e| {
            format!(
                "stored CSR of signer {} no longer parses: {e}",
                due.signer_id
            )
        })?;
        self.issue(csr.subject(), csr.public_key(), now)
            .map_err(|e| format!("renewing signer {}: {e}", due.signer_id))
    }

    /// Signs a new CRL over every revoked certificate and stores it.
    pub async fn refresh_crl(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
    ) -> anyhow::Result<CrlRecord> {
        let number = store.latest_crl().await?.map_or(1, |crl| crl.number + 1);
        let revoked: Vec<RevokedCertificate> = store
            .revoked_certificates()
            .await?
            .into_iter()
            .map(|record| RevokedCertificate {
                serial: record.serial,
                revoked_at: record.revoked_at,
                reason: record.reason,
            })
            .collect();
        let next_update = now + CRL_VALIDITY;
        let der = self
            .ca
            .crl(&CrlRequest {
                number,
                this_update: now,
                next_update,
                revoked: &revoked,
            })
            .context("signing the CRL")?;
        let crl = CrlRecord {
            number,
            der,
            this_update: now,
            next_update,
        };
        if !store.insert_crl(&crl).await? {
            // Another replica published this number first; serve the newest one.
            if let Some(latest) = store.latest_crl().await? {
                return Ok(latest);
            }
        }
        Ok(crl)
    }

    /// The CRL to serve: the newest stored one unless it is missing or past half its validity.
    pub async fn current_crl(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
    ) -> anyhow::Result<CrlRecord> {
        match store.latest_crl().await? {
            Some(crl) if !crl_needs_refresh(&crl, now) => Ok(crl),
            _ => self.refresh_crl(store, now).await,
        }
    }
}

/// A CRL is refreshed once half its validity has passed, so relying parties never hold an expired one.
pub fn crl_needs_refresh(crl: &CrlRecord, now: OffsetDateTime) -> bool {
    let half = (crl.next_update - crl.this_update) / 2;
    now >= crl.this_update + half
}
