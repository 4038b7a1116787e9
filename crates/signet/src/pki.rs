//! Signet's certificate authority in service: the CA key and certificate on disk, the issuing
//! policy (validity, renewal point, CRL and AIA locations) and the current CRL; beside it the
//! services built on the CA for long-term validation: the RFC 3161 timestamp authority and the
//! delegated OCSP responder, each with its own key and a certificate from the CA.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use signet_crypto::ca::Zeroizing;
use signet_crypto::ca::{
    AuthorityInfoAccess, CertificateAuthority, CrlRequest, IssueRequest, RevokedCertificate,
    ServiceCertificateRequest, ServicePurpose,
};
use signet_crypto::csr::{CertificationRequest, PublicKey, Subject};
use signet_crypto::ocsp::OcspResponder;
use signet_crypto::tsp::TimeStampAuthority;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

use crate::data_dir::{create_private_dir_all, private_file_options};
use crate::store::{CrlRecord, DueRenewal, NewCertificate, SignerStore};

/// How long a CRL is valid; the CRL job refreshes it when half of that has passed.
const CRL_VALIDITY: Duration = Duration::days(7);
/// How long the CA certificate itself is valid when first created.
const CA_VALIDITY: Duration = Duration::days(365 * 20);

/// How long the TSA and OCSP responder certificates are valid when issued.
const SERVICE_VALIDITY: Duration = Duration::days(365 * 3);
/// A service certificate this close to its end (or past it) is replaced at start-up.
const SERVICE_RENEWAL_MARGIN: Duration = Duration::days(90);
/// How long an OCSP answer may be relied on (its nextUpdate). Answers come live from the store,
/// so this only bounds how long a client may cache a "good"; the CRL allows 7 days.
pub const OCSP_VALIDITY: Duration = Duration::days(1);
/// The TSA's accuracy (RFC 3161 `Accuracy`): genTime has whole seconds.
const TSA_ACCURACY_SECONDS: u64 = 1;
/// The policy Signet's TSA issues under: an OID under ITU-T X.667's `2.25` arc, whose next arc
/// is a UUID read as an integer (UUID 3f78df2f-d386-4416-b3f2-7cc841d5f5bb, generated once for
/// Signet's TSA policy and fixed here). No registration is needed and no one else's policy can
/// have it. It names what Signet's TSA does: genTime from the server's clock in whole seconds,
/// accuracy one second, one token per request, no ordering.
pub const TSA_POLICY_OID: &str = "2.25.84368966124002786473139849535287588283";

/// The CA plus the rules it issues by.
pub struct Pki {
    ca: CertificateAuthority,
    certificate_validity: Duration,
    crl_url: String,
    ocsp_url: String,
    ca_issuers_url: String,
    services: Option<LtvServices>,
}

/// A service's certificate DER and PKCS#8 private key DER, as read from or written to disk.
struct ServiceFiles {
    certificate: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

/// The timestamp authority and the OCSP responder, parsed once at start-up.
pub struct LtvServices {
    pub tsa: TimeStampAuthority,
    /// The TSA certificate as PEM, for `GET /ca/tsa.pem`.
    pub tsa_certificate_pem: String,
    pub ocsp: OcspResponder,
    /// The responder's own certificate, for the `/DSS` beside the responses it signs.
    pub ocsp_certificate_der: Vec<u8>,
    /// The serials of the TSA and responder certificates in service and of those they replaced
    /// (`ca/retired/`): the responder answers "good" for them (they are not in the store), so a
    /// B-LT collector finds the TSA's status, and a validator asking about an old one later does
    /// not hear "unknown".
    pub service_serials: Vec<signet_crypto::ca::SerialNumber>,
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

/// Where a service's certificate and key live: `ca/tsa.pem` + `ca/tsa.key`, `ca/ocsp.pem` + `ca/ocsp.key`.
pub fn service_paths(data_dir: &Path, purpose: ServicePurpose) -> (PathBuf, PathBuf) {
    let dir = data_dir.join("ca");
    let name = match purpose {
        ServicePurpose::TimeStamping => "tsa",
        ServicePurpose::OcspSigning => "ocsp",
    };
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
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
            ocsp_url: format!("{public_url}/ca/ocsp"),
            ca_issuers_url: format!("{public_url}/ca/ca.der"),
            services: None,
        }
    }

    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The TSA and OCSP responder, when [`Pki::with_ltv_services`] set them up.
    pub fn services(&self) -> Option<&LtvServices> {
        self.services.as_ref()
    }

    /// Loads (or creates, or renews near expiry) the TSA and OCSP responder keys and certificates
    /// in the data directory, next to the CA's, and keeps them parsed for every request.
    pub fn with_ltv_services(
        mut self,
        data_dir: &Path,
        now: OffsetDateTime,
    ) -> anyhow::Result<Self> {
        let policy: signet_crypto::oid::PolicyId = TSA_POLICY_OID
            .parse()
            .map_err(|e| anyhow::anyhow!("the TSA policy OID {TSA_POLICY_OID}: {e}"))?;
        let build_tsa = |files: &ServiceFiles| {
            TimeStampAuthority::new(
                &files.certificate,
                &files.key,
                policy.clone(),
                TSA_ACCURACY_SECONDS,
            )
            .context("setting up the timestamp authority")
        };
        let (tsa_files, tsa) =
            self.load_or_issue_service(data_dir, ServicePurpose::TimeStamping, now, build_tsa)?;
        let ca_der = self.ca.certificate_der().to_vec();
        let build_ocsp = |files: &ServiceFiles| {
            OcspResponder::new(&ca_der, &files.certificate, &files.key)
                .context("setting up the OCSP responder")
        };
        let (ocsp_files, ocsp) =
            self.load_or_issue_service(data_dir, ServicePurpose::OcspSigning, now, build_ocsp)?;
        let retired = retired_service_certificates(data_dir);
        let service_serials = [&tsa_files.certificate, &ocsp_files.certificate]
            .into_iter()
            .chain(retired.iter())
            .filter_map(|certificate| {
                let request =
                    signet_crypto::ocsp::OcspRequest::for_certificate(certificate, &ca_der).ok()?;
                match ocsp.identify(request.cert_ids.first()?) {
                    signet_crypto::ocsp::Lookup::Serial(serial) => Some(serial),
                    _ => None,
                }
            })
            .collect();
        self.services = Some(LtvServices {
            tsa,
            tsa_certificate_pem: signet_crypto::ca::certificate_pem_from_der(
                &tsa_files.certificate,
            ),
            ocsp,
            ocsp_certificate_der: ocsp_files.certificate,
            service_serials,
        });
        Ok(self)
    }

    fn authority_info_access(&self) -> AuthorityInfoAccess<'_> {
        AuthorityInfoAccess {
            ocsp_url: &self.ocsp_url,
            ca_issuers_url: &self.ca_issuers_url,
        }
    }

    /// The service built from its files in the data directory; from a new key and certificate
    /// when there are none, when the certificate ends within the renewal margin or is not from
    /// the current CA, or when the files do not make a working service (a crash between the two
    /// renames of a renewal, a hand-edited file).
    fn load_or_issue_service<T>(
        &self,
        data_dir: &Path,
        purpose: ServicePurpose,
        now: OffsetDateTime,
        build: impl Fn(&ServiceFiles) -> anyhow::Result<T>,
    ) -> anyhow::Result<(ServiceFiles, T)> {
        match self.load_service(data_dir, purpose, now) {
            Ok(Some(files)) => match build(&files) {
                Ok(service) => return Ok((files, service)),
                Err(error) => tracing::warn!(
                    service = ?purpose,
                    error = format!("{error:#}"),
                    "the stored service key and certificate do not work; issuing new ones"
                ),
            },
            Ok(None) => {}
            Err(error) => tracing::warn!(
                service = ?purpose,
                error = format!("{error:#}"),
                "the stored service key or certificate cannot be read; issuing new ones"
            ),
        }
        let files = self.issue_service_files(data_dir, purpose, now)?;
        let service = build(&files)?;
        Ok((files, service))
    }

    /// The stored certificate DER and PKCS#8 key DER, if both exist and the certificate is from
    /// this CA and not near its end.
    fn load_service(
        &self,
        data_dir: &Path,
        purpose: ServicePurpose,
        now: OffsetDateTime,
    ) -> anyhow::Result<Option<ServiceFiles>> {
        let (certificate_path, key_path) = service_paths(data_dir, purpose);
        if !key_path.exists() || !certificate_path.exists() {
            return Ok(None);
        }
        let certificate = std::fs::read_to_string(&certificate_path)
            .with_context(|| format!("reading {}", certificate_path.display()))?;
        let key = Zeroizing::new(
            std::fs::read_to_string(&key_path)
                .with_context(|| format!("reading {}", key_path.display()))?,
        );
        let certificate = signet_crypto::ca::der_from_pem(&certificate, "CERTIFICATE")
            .map_err(|e| anyhow::anyhow!("{}: {e}", certificate_path.display()))?;
        let key = signet_crypto::ca::der_from_pem(&key, "PRIVATE KEY")
            .map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
        if !self
            .ca
            .issued_and_valid_until(&certificate, now + SERVICE_RENEWAL_MARGIN)
        {
            tracing::info!(service = ?purpose, "the service certificate is near its end or from another CA");
            return Ok(None);
        }
        Ok(Some(ServiceFiles {
            certificate: certificate.to_vec(),
            key,
        }))
    }

    /// A new P-256 key and certificate for the service, written next to the CA's files.
    fn issue_service_files(
        &self,
        data_dir: &Path,
        purpose: ServicePurpose,
        now: OffsetDateTime,
    ) -> anyhow::Result<ServiceFiles> {
        let (certificate_path, key_path) = service_paths(data_dir, purpose);
        let (key, public_key) =
            signet_crypto::ca::generate_service_key().context("generating a service key")?;
        let common_name = match purpose {
            ServicePurpose::TimeStamping => "Signet Timestamp Authority",
            ServicePurpose::OcspSigning => "Signet OCSP Responder",
        };
        let issued = self
            .ca
            .issue_service(&ServiceCertificateRequest {
                purpose,
                common_name,
                public_key: &public_key,
                not_before: now - Duration::minutes(5),
                not_after: now + SERVICE_VALIDITY,
                crl_distribution_url: &self.crl_url,
                authority_info_access: Some(self.authority_info_access()),
            })
            .context("issuing a service certificate")?;
        self.retire_service_certificate(data_dir, &certificate_path, now);
        // New files beside the old, then renamed over them; a crash between the two renames
        // leaves a pair that does not match, which the next start replaces.
        let key_pem = signet_crypto::ca::private_key_pem_from_der(&key);
        let fresh_key = key_path.with_extension("key.new");
        let _ = std::fs::remove_file(&fresh_key);
        write_private(&fresh_key, key_pem.as_bytes())?;
        let fresh_certificate = certificate_path.with_extension("pem.new");
        let _ = std::fs::remove_file(&fresh_certificate);
        write_private(&fresh_certificate, issued.pem().as_bytes())?;
        std::fs::rename(&fresh_key, &key_path)
            .with_context(|| format!("installing {}", key_path.display()))?;
        std::fs::rename(&fresh_certificate, &certificate_path)
            .with_context(|| format!("installing {}", certificate_path.display()))?;
        tracing::info!(service = ?purpose, key = %key_path.display(), "issued a service certificate");
        Ok(ServiceFiles {
            certificate: issued.der,
            key,
        })
    }

    /// Keeps a copy of the service certificate about to be replaced in `ca/retired/`, so the
    /// responder goes on answering "good" for it: tokens and responses it signed are in
    /// documents, and a validator asking about it later must not hear "unknown". Best effort: a
    /// failure is logged, and only costs that answer.
    fn retire_service_certificate(&self, data_dir: &Path, path: &Path, now: OffsetDateTime) {
        let Ok(pem) = std::fs::read_to_string(path) else {
            return;
        };
        let Ok(der) = signet_crypto::ca::der_from_pem(&pem, "CERTIFICATE") else {
            return;
        };
        // Only this CA's: a certificate of an earlier CA is not this responder's to answer for.
        if signet_crypto::ocsp::OcspRequest::for_certificate(&der, self.ca.certificate_der())
            .is_err()
        {
            return;
        }
        let dir = retired_dir(data_dir);
        let name = path
            .file_stem()
            .map_or_else(|| "service".into(), |s| s.to_string_lossy().into_owned());
        let target = dir.join(format!(
            "{name}-{}-{}.pem",
            now.unix_timestamp(),
            rand::random::<u32>()
        ));
        let outcome = create_private_dir_all(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| write_private(&target, pem.as_bytes()));
        if let Err(error) = outcome {
            tracing::warn!(error = format!("{error:#}"), "could not keep the replaced service certificate; the responder will call it unknown");
        }
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
    ) -> Result<signet_crypto::ca::IssuedCertificate, signet_crypto::ca::CaError> {
        let issued = self.ca.issue(&IssueRequest {
            subject,
            public_key,
            not_before: now - Duration::minutes(1),
            not_after: now + validity,
            crl_distribution_url: &self.crl_url,
            email,
            authority_info_access: Some(self.authority_info_access()),
        })?;
        Ok(issued)
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
            authority_info_access: Some(self.authority_info_access()),
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
        store: &dyn SignerStore,
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
        store: &dyn SignerStore,
        now: OffsetDateTime,
    ) -> anyhow::Result<CrlRecord> {
        match store.latest_crl().await? {
            Some(crl) if !crl_needs_refresh(&crl, now) => Ok(crl),
            _ => self.refresh_crl(store, now).await,
        }
    }
}

/// Where replaced TSA and responder certificates are kept.
fn retired_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ca").join("retired")
}

/// The DER of every certificate kept in `ca/retired/` (unreadable files are skipped).
fn retired_service_certificates(data_dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(retired_dir(data_dir)) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter_map(|pem| signet_crypto::ca::der_from_pem(&pem, "CERTIFICATE").ok())
        .map(|der| der.to_vec())
        .collect()
}

/// A CRL is refreshed once half its validity has passed, so relying parties never hold an expired one.
pub fn crl_needs_refresh(crl: &CrlRecord, now: OffsetDateTime) -> bool {
    let half = (crl.next_update - crl.this_update) / 2;
    now >= crl.this_update + half
}
