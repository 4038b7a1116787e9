//! A CA with a timestamp authority and a delegated OCSP responder, as Signet's server sets them up.

use signet_crypto::ca::{
    AuthorityInfoAccess, CertificateAuthority, IssuedCertificate, ServiceCertificateRequest,
    ServicePurpose,
};
use signet_crypto::csr::PublicKey;
use time::{Duration, OffsetDateTime};

use crate::support::CRL_URL;

pub const OCSP_URL: &str = "http://signet.example/ca/ocsp";
pub const CA_ISSUERS_URL: &str = "http://signet.example/ca/ca.der";

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn ca() -> CertificateAuthority {
    CertificateAuthority::generate("LTV Test CA", now(), Duration::days(3650)).unwrap()
}

/// A fresh P-256 key: its PKCS#8 DER and its public key.
pub fn p256_key() -> (Vec<u8>, PublicKey) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let public =
        PublicKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(&key)).unwrap();
    (key.serialize_der(), public)
}

/// A service certificate for `purpose` and its key.
pub fn service(ca: &CertificateAuthority, purpose: ServicePurpose) -> (IssuedCertificate, Vec<u8>) {
    let (key, public) = p256_key();
    let issued = ca
        .issue_service(&ServiceCertificateRequest {
            purpose,
            common_name: "Signet service",
            public_key: &public,
            not_before: now() - Duration::minutes(1),
            not_after: now() + Duration::days(365),
            crl_distribution_url: CRL_URL,
            authority_info_access: Some(AuthorityInfoAccess {
                ocsp_url: OCSP_URL,
                ca_issuers_url: CA_ISSUERS_URL,
            }),
        })
        .unwrap();
    (issued, key)
}
