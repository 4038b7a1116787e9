//! Signet's internal certificate authority: an ECDSA P-256 key with a self-signed CA certificate
//! that issues end-entity signing certificates for keys that passed CSR intake and signs CRLs.
//! Certificates and CRLs are built with rcgen; the subject key is handed over through rcgen's
//! `PublicKeyData` with the algorithm taken from the key itself. No I/O: callers persist the PEM
//! this returns and pass the clock in.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    CustomExtension, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SanType,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
pub use zeroize::Zeroizing;

use const_oid::db::rfc5280::{
    ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_CE_EXT_KEY_USAGE, ID_KP_OCSP_SIGNING, ID_KP_TIME_STAMPING,
    ID_PE_AUTHORITY_INFO_ACCESS,
};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NOCHECK;

use crate::cms::{oid_der, tlv};
use crate::csr::{PublicKey, RcgenPublicKey, Subject};

/// How far back a new CA certificate's notBefore is set, to tolerate clock skew.
const CA_BACKDATE: Duration = Duration::minutes(5);

/// What went wrong while creating, loading or using the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CA key pair could not be generated.
    #[error("could not generate the CA key: {0}")]
    KeyGeneration(String),
    /// The stored CA certificate could not be used; the message says why.
    #[error("invalid CA certificate: {0}")]
    InvalidCertificate(String),
    /// The stored CA private key could not be used; the message says why (never the key).
    #[error("invalid CA private key: {0}")]
    InvalidPrivateKey(String),
    /// The private key does not belong to the CA certificate.
    #[error("the CA private key does not match the public key in the CA certificate")]
    KeyMismatch,
    /// A notBefore/notAfter or thisUpdate/nextUpdate pair is out of order.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    /// The request cannot be encoded into a certificate (subject, e-mail, URL…).
    #[error("invalid certificate request: {0}")]
    InvalidRequest(String),
    /// rcgen refused to build or sign the certificate or CRL.
    #[error("could not sign: {0}")]
    Signing(String),
}

/// The CA: its certificate (kept byte for byte) and signing key.
pub struct CertificateAuthority {
    certificate_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's subject key identifier, used as authority key identifier everywhere.
    key_id: Vec<u8>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("key_id", &hex::encode(&self.key_id))
            .field("private_key", &"[elided]")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// New ECDSA P-256 key (rcgen + ring) and a self-signed CA certificate: basicConstraints
    /// CA:true with pathLen 0 (critical), keyUsage keyCertSign + cRLSign (critical), subject key
    /// identifier, random 128-bit serial, notBefore = now − 5 min, notAfter = now + validity.
    pub fn generate(
        common_name: &str,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Self, CaError> {
        if validity <= Duration::ZERO {
            return Err(CaError::InvalidValidity(format!(
                "the CA validity must be positive, not {validity}"
            )));
        }
        if common_name.trim().is_empty() {
            return Err(CaError::InvalidRequest(
                "the CA common name is empty".into(),
            ));
        }
        let not_after = now
            .checked_add(validity)
            .ok_or_else(|| CaError::InvalidValidity(format!("now + {validity} is out of range")))?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| CaError::KeyGeneration(e.to_string()))?;

        let mut params = CertificateParams::default();
        params.distinguished_name = Subject::builder()
            .common_name(common_name)
            .build()
            .to_rcgen();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(
            SerialNumber::random().as_bytes(),
        ));
        params.not_before = whole_seconds(now - CA_BACKDATE);
        params.not_after = whole_seconds(not_after);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::Sha256;
        let key_id = params.key_identifier(&key);
        let certificate = params
            .self_signed(&key)
            .map_err(|e| CaError::Signing(e.to_string()))?;

        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
        Ok(Self {
            certificate_der: certificate.der().to_vec(),
            issuer: Issuer::new(params, key),
            key_id,
        })
    }

    /// Reloads the CA from the files written by an earlier start: the certificate PEM and the
    /// PKCS#8 private key PEM. The certificate bytes are kept exactly; the key must match it.
    pub fn from_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, CaError> {
        let block = pem::parse(certificate_pem)
            .map_err(|e| CaError::InvalidCertificate(format!("not PEM ({e})")))?;
        if block.tag() != "CERTIFICATE" {
            return Err(CaError::InvalidCertificate(format!(
                "expected a CERTIFICATE PEM block, found {:?}",
                block.tag()
            )));
        }
        let certificate_der = block.into_contents();
        let (rest, certificate) = x509_parser::parse_x509_certificate(&certificate_der)
            .map_err(|e| CaError::InvalidCertificate(format!("not an X.509 certificate ({e})")))?;
        if !rest.is_empty() {
            return Err(CaError::InvalidCertificate(
                "unexpected bytes after the certificate".into(),
            ));
        }
        let is_ca = matches!(certificate.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(CaError::InvalidCertificate(
                "not a CA certificate (basicConstraints CA:true is missing)".into(),
            ));
        }
        certificate.verify_signature(None).map_err(|e| {
            CaError::InvalidCertificate(format!("its self-signature does not verify ({e})"))
        })?;

        let key = KeyPair::from_pem(private_key_pem).map_err(|_| {
            CaError::InvalidPrivateKey("not an unencrypted PKCS#8 PEM private key".into())
        })?;
        if key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(CaError::InvalidPrivateKey(
                "the CA key must be an ECDSA P-256 key".into(),
            ));
        }
        if rcgen::PublicKeyData::subject_public_key_info(&key) != certificate.public_key().raw {
            return Err(CaError::KeyMismatch);
        }

        let subject =
            Subject::from_x509_name(certificate.subject()).map_err(CaError::InvalidCertificate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject.to_rcgen();
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ski = certificate
            .extensions()
            .iter()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let key_id = match ski {
            Some(id) => id,
            None => params.key_identifier(&key),
        };
        params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.clone());
        drop(certificate);
        Ok(Self {
            certificate_der,
            issuer: Issuer::new(params, key),
            key_id,
        })
    }

    /// The CA certificate as PEM (LF line endings).
    pub fn certificate_pem(&self) -> String {
        certificate_pem_from_der(&self.certificate_der)
    }

    /// The CA certificate DER, byte for byte as generated or loaded.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The CA private key as PKCS#8 PEM, for persisting. Zeroed when dropped.
    pub fn private_key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// Issues an end-entity signing certificate for `request.subject` and `request.public_key`:
    /// keyUsage digitalSignature + nonRepudiation (critical), extendedKeyUsage emailProtection,
    /// CRL distribution point, authority key identifier (the CA's SKI), subject key identifier,
    /// basicConstraints CA:false, SAN rfc822Name when an e-mail is given, a random positive
    /// 128-bit serial, signed ECDSA-SHA256 by the CA. The validity is taken as given, truncated
    /// to whole seconds; it is not clamped to the CA's own validity. With
    /// `authority_info_access`, the certificate also names the OCSP responder and where the
    /// CA certificate can be fetched (RFC 5280 §4.2.2.1).
    pub fn issue(&self, request: &IssueRequest<'_>) -> Result<IssuedCertificate, CaError> {
        let (not_before, not_after) = validity(request.not_before, request.not_after)?;
        let url = request.crl_distribution_url;
        check_uri("CRL distribution", url)?;
        let aia = request
            .authority_info_access
            .map(|aia| aia.extension())
            .transpose()?;
        let mut subject_alt_names = Vec::new();
        if let Some(email) = request.email {
            if !email.contains('@') || email.chars().any(|c| c.is_ascii_control() || c == ' ') {
                return Err(CaError::InvalidRequest(format!(
                    "{email:?} is not an e-mail address"
                )));
            }
            let name = rcgen::string::Ia5String::try_from(email).map_err(|_| {
                CaError::InvalidRequest(format!(
                    "the e-mail address {email:?} must be ASCII (rfc822Name is an IA5String)"
                ))
            })?;
            subject_alt_names.push(SanType::Rfc822Name(name));
        }
        if request.subject.is_empty() && subject_alt_names.is_empty() {
            return Err(CaError::InvalidRequest(
                "the subject is empty and no e-mail address was given".into(),
            ));
        }

        let (serial, mut params) = leaf_params(not_before, not_after, url);
        params.distinguished_name = request.subject.to_rcgen();
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::EmailProtection];
        params.subject_alt_names = subject_alt_names;
        params.custom_extensions.extend(aia);
        self.sign_leaf(serial, params, request.public_key)
    }

    /// Whether `certificate_der` carries this CA's signature and stays valid beyond `until`:
    /// a service certificate that fails this is replaced.
    pub fn issued_and_valid_until(&self, certificate_der: &[u8], until: OffsetDateTime) -> bool {
        let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate_der) else {
            return false;
        };
        let Ok((_, ca)) = x509_parser::parse_x509_certificate(&self.certificate_der) else {
            return false;
        };
        certificate.validity().not_after.timestamp() > until.unix_timestamp()
            && certificate.issuer().as_raw() == ca.subject().as_raw()
            && certificate.verify_signature(Some(ca.public_key())).is_ok()
    }

    /// Issues a certificate for one of Signet's own services: the timestamp authority (extended
    /// key usage timeStamping, critical, as RFC 3161 §2.3 demands) or the delegated OCSP
    /// responder (OCSPSigning plus id-pkix-ocsp-nocheck, RFC 6960 §4.2.2.2). keyUsage
    /// digitalSignature (critical), CRL distribution point and AIA as for signers.
    pub fn issue_service(
        &self,
        request: &ServiceCertificateRequest<'_>,
    ) -> Result<IssuedCertificate, CaError> {
        let (not_before, not_after) = validity(request.not_before, request.not_after)?;
        check_uri("CRL distribution", request.crl_distribution_url)?;
        if request.common_name.trim().is_empty() {
            return Err(CaError::InvalidRequest("the common name is empty".into()));
        }
        let (serial, mut params) = leaf_params(not_before, not_after, request.crl_distribution_url);
        params.distinguished_name = Subject::builder()
            .common_name(request.common_name)
            .build()
            .to_rcgen();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // rcgen writes extendedKeyUsage non-critical; RFC 3161 wants it critical for a TSA, so
        // the extension is encoded here: SEQUENCE OF KeyPurposeId.
        let (purpose, nocheck) = match request.purpose {
            ServicePurpose::TimeStamping => (ID_KP_TIME_STAMPING, false),
            ServicePurpose::OcspSigning => (ID_KP_OCSP_SIGNING, true),
        };
        let mut eku = CustomExtension::from_oid_content(
            &oid_arcs(ID_CE_EXT_KEY_USAGE),
            tlv(0x30, &oid_der(purpose)),
        );
        eku.set_criticality(true);
        params.custom_extensions.push(eku);
        if nocheck {
            // id-pkix-ocsp-nocheck: relying parties need not ask about the responder itself.
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(
                    &oid_arcs(ID_PKIX_OCSP_NOCHECK),
                    vec![0x05, 0x00],
                ));
        }
        if let Some(aia) = request.authority_info_access {
            params.custom_extensions.push(aia.extension()?);
        }
        self.sign_leaf(serial, params, request.public_key)
    }

    /// Signs an end-entity certificate built on [`leaf_params`] with its serial, adding the
    /// authority key identifier.
    fn sign_leaf(
        &self,
        serial: SerialNumber,
        mut params: CertificateParams,
        public_key: &PublicKey,
    ) -> Result<IssuedCertificate, CaError> {
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let certificate = params
            .signed_by(&RcgenPublicKey(public_key), &self.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok(IssuedCertificate {
            serial,
            der: certificate.der().to_vec(),
            not_before: params.not_before,
            not_after: params.not_after,
        })
    }

    /// A DER CRL v2 signed by the CA: crlNumber, authority key identifier, thisUpdate and
    /// nextUpdate, one entry per revoked certificate with its reason code (no reason extension
    /// for `Unspecified`, as RFC 5280 asks).
    pub fn crl(&self, request: &CrlRequest<'_>) -> Result<Vec<u8>, CaError> {
        let this_update = whole_seconds(request.this_update);
        let next_update = whole_seconds(request.next_update);
        if next_update <= this_update {
            return Err(CaError::InvalidValidity(format!(
                "nextUpdate {next_update} is not after thisUpdate {this_update}"
            )));
        }
        let revoked_certs = request
            .revoked
            .iter()
            .map(|revoked| RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(revoked.serial.as_bytes()),
                revocation_time: whole_seconds(revoked.revoked_at),
                reason_code: Some(revoked.reason.to_rcgen()),
                invalidity_date: None,
            })
            .collect();
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: rcgen::SerialNumber::from_slice(&request.number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.key_id.clone()),
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        Ok(crl.der().to_vec())
    }
}

/// A fresh ECDSA P-256 key for one of Signet's services: its PKCS#8 DER (zeroed when dropped)
/// and its public key, ready for [`CertificateAuthority::issue_service`].
pub fn generate_service_key() -> Result<(Zeroizing<Vec<u8>>, PublicKey), CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| CaError::KeyGeneration(e.to_string()))?;
    let public_key = PublicKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key))
        .map_err(|e| CaError::KeyGeneration(e.to_string()))?;
    Ok((Zeroizing::new(key.serialize_der()), public_key))
}

/// PEM (`PRIVATE KEY`, LF line endings) for a PKCS#8 DER key, zeroed when dropped.
pub fn private_key_pem_from_der(der: &[u8]) -> Zeroizing<String> {
    let block = pem::Pem::new("PRIVATE KEY", der.to_vec());
    Zeroizing::new(pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// The DER inside one PEM block with the given tag (`CERTIFICATE`, `PRIVATE KEY`).
pub fn der_from_pem(text: &str, tag: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let block = pem::parse(text).map_err(|e| format!("not PEM ({e})"))?;
    if block.tag() != tag {
        return Err(format!(
            "expected a {tag} PEM block, found {:?}",
            block.tag()
        ));
    }
    Ok(Zeroizing::new(block.into_contents()))
}

/// A URI that can go into an IA5String GeneralName without surprises.
fn check_uri(what: &str, url: &str) -> Result<(), CaError> {
    if url.is_empty() || !url.is_ascii() || url.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(CaError::InvalidRequest(format!(
            "the {what} URL {url:?} must be a non-empty ASCII URI without spaces"
        )));
    }
    Ok(())
}

fn oid_arcs(oid: der::asn1::ObjectIdentifier) -> Vec<u64> {
    oid.arcs().map(u64::from).collect()
}

/// Drops sub-second precision, which certificates cannot carry, so returned times match the
/// encoded ones.
/// The validity to whole seconds (what DER times hold), refused unless notAfter follows notBefore.
fn validity(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let (not_before, not_after) = (whole_seconds(not_before), whole_seconds(not_after));
    if not_after <= not_before {
        return Err(CaError::InvalidValidity(format!(
            "notAfter {not_after} is not after notBefore {not_before}"
        )));
    }
    Ok((not_before, not_after))
}

/// What every end-entity certificate of this CA has: a fresh random serial, the validity, not a
/// CA, and the CRL distribution point.
fn leaf_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    crl_distribution_url: &str,
) -> (SerialNumber, CertificateParams) {
    let serial = SerialNumber::random();
    let mut params = CertificateParams::default();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![crl_distribution_url.to_owned()],
    }];
    (serial, params)
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// PEM (`CERTIFICATE`, LF line endings) for a DER certificate.
pub fn certificate_pem_from_der(der: &[u8]) -> String {
    let block = pem::Pem::new("CERTIFICATE", der.to_vec());
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// What to put into an end-entity certificate.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest<'a> {
    /// The subject distinguished name.
    pub subject: &'a Subject,
    /// The key to certify (from a CSR or a previous certificate when re-certifying).
    pub public_key: &'a PublicKey,
    /// Start of validity (sub-seconds are dropped).
    pub not_before: OffsetDateTime,
    /// End of validity (sub-seconds are dropped).
    pub not_after: OffsetDateTime,
    /// The URL of the CA's CRL, put into the CRL distribution points extension.
    pub crl_distribution_url: &'a str,
    /// The holder's e-mail address, put into subjectAltName as rfc822Name.
    pub email: Option<&'a str>,
    /// OCSP and caIssuers URLs, put into the Authority Information Access extension.
    pub authority_info_access: Option<AuthorityInfoAccess<'a>>,
}

/// The Authority Information Access extension's two entries (RFC 5280 §4.2.2.1).
#[derive(Clone, Copy, Debug)]
pub struct AuthorityInfoAccess<'a> {
    /// The OCSP responder (id-ad-ocsp).
    pub ocsp_url: &'a str,
    /// Where the issuing CA's certificate is served, DER (id-ad-caIssuers).
    pub ca_issuers_url: &'a str,
}

impl AuthorityInfoAccess<'_> {
    /// `SEQUENCE OF AccessDescription { accessMethod, accessLocation [6] IA5String }`, non-critical.
    fn extension(&self) -> Result<CustomExtension, CaError> {
        check_uri("OCSP", self.ocsp_url)?;
        check_uri("caIssuers", self.ca_issuers_url)?;
        let description =
            |method, url: &str| tlv(0x30, &[oid_der(method), tlv(0x86, url.as_bytes())].concat());
        let content = tlv(
            0x30,
            &[
                description(ID_AD_OCSP, self.ocsp_url),
                description(ID_AD_CA_ISSUERS, self.ca_issuers_url),
            ]
            .concat(),
        );
        Ok(CustomExtension::from_oid_content(
            &oid_arcs(ID_PE_AUTHORITY_INFO_ACCESS),
            content,
        ))
    }
}

/// Which service a [`ServiceCertificateRequest`] is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicePurpose {
    /// The RFC 3161 timestamp authority.
    TimeStamping,
    /// The delegated RFC 6960 OCSP responder.
    OcspSigning,
}

/// What to put into a service certificate.
#[derive(Clone, Copy, Debug)]
pub struct ServiceCertificateRequest<'a> {
    /// What the certificate is for; decides the extended key usage.
    pub purpose: ServicePurpose,
    /// The subject's common name.
    pub common_name: &'a str,
    /// The service's key.
    pub public_key: &'a PublicKey,
    /// Start of validity (sub-seconds are dropped).
    pub not_before: OffsetDateTime,
    /// End of validity (sub-seconds are dropped).
    pub not_after: OffsetDateTime,
    /// The URL of the CA's CRL.
    pub crl_distribution_url: &'a str,
    /// OCSP and caIssuers URLs, when Signet publishes them.
    pub authority_info_access: Option<AuthorityInfoAccess<'a>>,
}

/// A freshly issued certificate.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// Its serial number.
    pub serial: SerialNumber,
    /// The certificate DER.
    pub der: Vec<u8>,
    /// notBefore as encoded (whole seconds).
    pub not_before: OffsetDateTime,
    /// notAfter as encoded (whole seconds).
    pub not_after: OffsetDateTime,
}

impl IssuedCertificate {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        certificate_pem_from_der(&self.der)
    }
}

/// A random 128-bit certificate serial with the top bit cleared, so the DER INTEGER is positive
/// and at most 16 bytes. `Display` is 32 lowercase hex digits; `FromStr` parses 1 to 32 hex
/// digits in either case (shorter input is left-padded, as printed by openssl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialNumber([u8; 16]);

impl SerialNumber {
    /// A new serial from the operating system's random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes[0] &= 0x7f;
        if bytes == [0; 16] {
            // Zero is not a valid serial; 2^-127 odds, but cheap to rule out.
            bytes[15] = 1;
        }
        Self(bytes)
    }

    /// The 16 big-endian bytes (the first may be zero; DER drops leading zeros).
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for SerialNumber {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a serial number: expected 1 to 32 hexadecimal digits"
            ));
        }
        let padded = format!("{s:0>32}");
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(&padded, &mut bytes)
            .map_err(|e| format!("{s:?} is not a serial number ({e})"))?;
        if bytes[0] & 0x80 != 0 {
            return Err(format!(
                "{s:?} is not a serial number this CA issues (the top bit must be clear)"
            ));
        }
        Ok(Self(bytes))
    }
}

/// What goes into a CRL.
#[derive(Clone, Copy, Debug)]
pub struct CrlRequest<'a> {
    /// The monotonically increasing CRL number.
    pub number: u64,
    /// When this CRL was issued.
    pub this_update: OffsetDateTime,
    /// When the next CRL will be issued at the latest.
    pub next_update: OffsetDateTime,
    /// The revoked certificates, unexpired ones at least.
    pub revoked: &'a [RevokedCertificate],
}

/// One CRL entry.
#[derive(Clone, Debug)]
pub struct RevokedCertificate {
    /// The revoked certificate's serial.
    pub serial: SerialNumber,
    /// When the CA processed the revocation.
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
}

/// RFC 5280 CRL reason codes. `as_str`/`FromStr` use the RFC's camelCase names
/// (`FromStr` also accepts `caCompromise` and `aaCompromise`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationReason {
    /// unspecified (0); written as an entry without a reason extension.
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6).
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [Self; 9] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    fn to_rcgen(self) -> rcgen::RevocationReason {
        use rcgen::RevocationReason as R;
        match self {
            Self::Unspecified => R::Unspecified,
            Self::KeyCompromise => R::KeyCompromise,
            Self::CaCompromise => R::CaCompromise,
            Self::AffiliationChanged => R::AffiliationChanged,
            Self::Superseded => R::Superseded,
            Self::CessationOfOperation => R::CessationOfOperation,
            Self::CertificateHold => R::CertificateHold,
            Self::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            Self::AaCompromise => R::AaCompromise,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RevocationReason {
    /// The name the CloudSigner product uses, e.g. `KEY_COMPROMISE`.
    pub fn product_name(&self) -> &'static str {
        match self {
            Self::Unspecified => "UNSPECIFIED",
            Self::KeyCompromise => "KEY_COMPROMISE",
            Self::CaCompromise => "CA_COMPROMISE",
            Self::AffiliationChanged => "AFFILIATION_CHANGED",
            Self::Superseded => "SUPERSEDED",
            Self::CessationOfOperation => "CESSATION_OF_OPERATION",
            Self::CertificateHold => "CERTIFICATE_HOLD",
            Self::PrivilegeWithdrawn => "PRIVILEGES_WITHDRAWN",
            Self::AaCompromise => "AA_COMPROMISE",
        }
    }
}

/// Accepts the RFC 5280 names (`keyCompromise`) and the CloudSigner product's upper-case names
/// (`KEY_COMPROMISE`). The product's two pseudo-reasons are refused with what to do instead: a
/// revocation always has a reason, and a certificate leaves a CRL by being reactivated.
impl FromStr for RevocationReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "caCompromise" => return Ok(Self::CaCompromise),
            "aaCompromise" => return Ok(Self::AaCompromise),
            "NOT_REVOKED" => {
                return Err(
                    "NOT_REVOKED is not a reason to revoke; to keep the certificate, do not ask for REVOKED".into(),
                )
            }
            "REMOVE_FROM_CRL" => {
                return Err(
                    "REMOVE_FROM_CRL is not supported: a revoked certificate stays revoked; use BLOCKED and ACTIVE to suspend and resume a signer".into(),
                )
            }
            _ => {}
        }
        Self::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s || reason.product_name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(Self::as_str).collect();
                let product: Vec<&str> = Self::ALL.iter().map(Self::product_name).collect();
                format!(
                    "unknown revocation reason {s:?}; expected one of: {} (or {})",
                    names.join(", "),
                    product.join(", ")
                )
            })
    }
}

/// When a DER certificate stops being valid (its notAfter). Used to tell when a document
/// timestamp signed under it must be renewed (PAdES B-LTA archive timestamps).
pub fn certificate_not_after(certificate_der: &[u8]) -> Result<OffsetDateTime, String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| format!("reading a certificate: {e}"))?;
    OffsetDateTime::from_unix_timestamp(certificate.validity().not_after.timestamp())
        .map_err(|e| format!("a certificate's notAfter: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = SerialNumber::random();
        let b = SerialNumber::random();
        assert_ne!(a, b);
        assert_eq!(a.as_bytes()[0] & 0x80, 0);
        assert_eq!(a.to_string().len(), 32);
    }

    #[test]
    fn serials_parse_openssl_style_uppercase_and_short_forms() {
        let serial: SerialNumber = "1A2B".parse().unwrap();
        assert_eq!(serial.to_string(), format!("{:0>32}", "1a2b"));
        assert!("".parse::<SerialNumber>().is_err());
        assert!("xyz".parse::<SerialNumber>().is_err());
        assert!("8".repeat(32).parse::<SerialNumber>().is_err());
        assert!("1".repeat(33).parse::<SerialNumber>().is_err());
    }

    #[test]
    fn revocation_reason_accepts_the_lowercase_ca_spelling() {
        assert_eq!(
            "caCompromise".parse::<RevocationReason>(),
            Ok(RevocationReason::CaCompromise)
        );
        let error = "bogus".parse::<RevocationReason>().unwrap_err();
        assert!(error.contains("keyCompromise"), "{error}");
    }

    #[test]
    fn a_generated_ca_round_trips_through_pem() {
        let now = OffsetDateTime::now_utc();
        let ca = CertificateAuthority::generate("Test CA", now, Duration::days(365)).unwrap();
        let again =
            CertificateAuthority::from_pem(&ca.certificate_pem(), &ca.private_key_pem()).unwrap();
        assert_eq!(ca.certificate_der(), again.certificate_der());
        assert_eq!(ca.key_id, again.key_id);
    }

    #[test]
    fn a_foreign_key_is_a_mismatch() {
        let now = OffsetDateTime::now_utc();
        let a = CertificateAuthority::generate("A", now, Duration::days(1)).unwrap();
        let b = CertificateAuthority::generate("B", now, Duration::days(1)).unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(&a.certificate_pem(), &b.private_key_pem()),
            Err(CaError::KeyMismatch)
        ));
    }

    #[test]
    fn reversed_validity_is_refused() {
        let now = OffsetDateTime::now_utc();
        let ca = CertificateAuthority::generate("A", now, Duration::days(1)).unwrap();
        let crl = ca.crl(&CrlRequest {
            number: 1,
            this_update: now,
            next_update: now,
            revoked: &[],
        });
        assert!(matches!(crl, Err(CaError::InvalidValidity(_))));
    }

    proptest! {
        #[test]
        fn serial_display_and_from_str_round_trip(mut bytes in any::<[u8; 16]>()) {
            bytes[0] &= 0x7f;
            let serial = SerialNumber(bytes);
            prop_assert_eq!(serial.to_string().parse::<SerialNumber>(), Ok(serial));
            prop_assert_eq!(serial.to_string().to_uppercase().parse::<SerialNumber>(), Ok(serial));
        }

        #[test]
        fn serial_from_str_never_panics(s in ".{0,40}") {
            let _ = s.parse::<SerialNumber>();
        }

        #[test]
        fn revocation_reason_round_trips(index in 0usize..RevocationReason::ALL.len()) {
            let reason = RevocationReason::ALL[index];
            prop_assert_eq!(reason.as_str().parse::<RevocationReason>(), Ok(reason));
        }

        #[test]
        fn revocation_reason_from_str_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<RevocationReason>();
        }
    }

    #[test]
    fn the_products_upper_case_reasons_name_the_same_reasons() {
        for reason in RevocationReason::ALL {
            assert_eq!(
                reason.product_name().parse::<RevocationReason>(),
                Ok(reason)
            );
            assert_eq!(reason.as_str().parse::<RevocationReason>(), Ok(reason));
        }
        assert_eq!(
            "PRIVILEGES_WITHDRAWN".parse::<RevocationReason>(),
            Ok(RevocationReason::PrivilegeWithdrawn)
        );
    }

    #[test]
    fn the_products_pseudo_reasons_are_refused_with_a_reason() {
        for name in ["NOT_REVOKED", "REMOVE_FROM_CRL"] {
            let message = name.parse::<RevocationReason>().unwrap_err();
            assert!(message.starts_with(name), "{message}");
        }
        assert!("key_compromise".parse::<RevocationReason>().is_err());
    }
}
