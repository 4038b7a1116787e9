//! RFC 6960 OCSP: parse requests from untrusted bytes and sign `BasicOCSPResponse`s.
//!
//! The responder is either the CA itself or a delegated responder certificate issued by it (EKU
//! OCSPSigning, id-pkix-ocsp-nocheck); the delegated certificate then travels in every response
//! so relying parties can check it. Everything that does not depend on a request — the CA's name
//! and key hashes for each CertID hash algorithm, the responder id, the certificate list — is
//! computed once in [`OcspResponder::new`]; a response costs one P-256 signature.
//!
//! Looking a serial up is the caller's job (the server asks its store): [`OcspResponder::identify`]
//! says whether a CertID names a certificate of this CA and which serial, and
//! [`OcspResponder::respond`] signs the statuses the caller found.

use const_oid::db::rfc5280::ID_KP_OCSP_SIGNING;
use const_oid::db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512};
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString};
use der::Encode;
use ring::signature::{self as ring_signature, EcdsaKeyPair};
use spki::AlgorithmIdentifierOwned;
use time::{Duration, OffsetDateTime};
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse, Version,
};

pub use x509_ocsp::{CertId, OcspResponseStatus};

use crate::ca::{RevocationReason, SerialNumber};

/// An OCSP request names a handful of certificates in a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// How many certificates one request may ask about.
pub const MAX_CERTIFICATES_PER_REQUEST: usize = 32;

/// Why a request could not be parsed (answered with `malformedRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed OCSP request: {0}")]
pub struct MalformedRequest(pub String);

/// A parsed OCSP request: the certificates asked about and the nonce extension to echo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about, in order.
    pub cert_ids: Vec<CertId>,
    /// The request's nonce extension, echoed verbatim in the response (RFC 8954).
    nonce: Option<Extension>,
}

impl OcspRequest {
    /// Parses a DER `OCSPRequest` from untrusted bytes (bounded, never panics). A request
    /// signature, if any, is ignored: Signet's responder answers anyone.
    pub fn from_der(der: &[u8]) -> Result<Self, MalformedRequest> {
        if der.len() > MAX_REQUEST_BYTES {
            return Err(MalformedRequest(format!(
                "an OCSP request is at most {MAX_REQUEST_BYTES} bytes"
            )));
        }
        let request = crate::der_bounds::decode::<x509_ocsp::OcspRequest>(der)
            .map_err(|e| MalformedRequest(format!("not a DER OCSPRequest: {e}")))?;
        let tbs = request.tbs_request;
        if tbs.request_list.is_empty() {
            return Err(MalformedRequest("the request names no certificate".into()));
        }
        if tbs.request_list.len() > MAX_CERTIFICATES_PER_REQUEST {
            return Err(MalformedRequest(format!(
                "at most {MAX_CERTIFICATES_PER_REQUEST} certificates per request"
            )));
        }
        let nonce = tbs
            .request_extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
            .cloned();
        Ok(Self {
            cert_ids: tbs.request_list.into_iter().map(|r| r.req_cert).collect(),
            nonce,
        })
    }

    /// The nonce's extension value (DER), if the request carried one.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_ref().map(|e| e.extn_value.as_bytes())
    }

    /// A request about `certificate_der`, issued by `issuer_der`, with a SHA-1 CertID (what
    /// every responder understands; the hash only names the issuer, it protects nothing) and no
    /// nonce. For a client collecting revocation data for the DSS (PAdES B-LT), or for a server
    /// asking its own responder without going over HTTP.
    pub fn for_certificate(certificate_der: &[u8], issuer_der: &[u8]) -> Result<Self, OcspError> {
        let certificate = crate::der_bounds::decode::<Certificate>(certificate_der)
            .map_err(|e| OcspError::Certificate(format!("certificate: {e}")))?;
        let issuer = crate::der_bounds::decode::<Certificate>(issuer_der)
            .map_err(|e| OcspError::Certificate(format!("issuer certificate: {e}")))?;
        // A CertID names the issuer by hashes only; a wrong issuer would ask about a
        // certificate the responder never issued, so check the signature, not just the names.
        let issued_by = |cert: &[u8], issuer: &[u8]| -> Option<bool> {
            let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
            let (_, issuer) = x509_parser::parse_x509_certificate(issuer).ok()?;
            Some(
                cert.issuer().as_raw() == issuer.subject().as_raw()
                    && cert.verify_signature(Some(issuer.public_key())).is_ok(),
            )
        };
        if issued_by(certificate_der, issuer_der) != Some(true) {
            return Err(OcspError::Certificate(
                "the certificate is not issued by the issuer certificate".into(),
            ));
        }
        let sha1 = &ring::digest::SHA1_FOR_LEGACY_USE_ONLY;
        let name = ring::digest::digest(sha1, &issuer.tbs_certificate.subject.to_der()?);
        let key = ring::digest::digest(
            sha1,
            issuer
                .tbs_certificate
                .subject_public_key_info
                .subject_public_key
                .raw_bytes(),
        );
        Ok(Self {
            cert_ids: vec![CertId {
                hash_algorithm: AlgorithmIdentifierOwned {
                    oid: ID_SHA_1,
                    parameters: Some(der::asn1::Null.into()),
                },
                issuer_name_hash: OctetString::new(name.as_ref())?,
                issuer_key_hash: OctetString::new(key.as_ref())?,
                serial_number: certificate.tbs_certificate.serial_number.clone(),
            }],
            nonce: None,
        })
    }

    /// The request as a DER `OCSPRequest` (unsigned), to POST to a responder.
    pub fn to_der(&self) -> Result<Vec<u8>, OcspError> {
        Ok(x509_ocsp::OcspRequest {
            tbs_request: x509_ocsp::TbsRequest {
                version: Version::V1,
                requestor_name: None,
                request_list: self
                    .cert_ids
                    .iter()
                    .map(|id| x509_ocsp::Request {
                        req_cert: id.clone(),
                        single_request_extensions: None,
                    })
                    .collect(),
                request_extensions: self.nonce.clone().map(|n| vec![n]),
            },
            optional_signature: None,
        }
        .to_der()?)
    }
}

/// What a CertID refers to, as far as this responder can tell without a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A certificate of this CA with this serial (look its status up).
    Serial(SerialNumber),
    /// This CA, but a serial it never issues (or a hash algorithm it does not know): unknown.
    Unknown,
    /// Another issuer entirely.
    ForeignIssuer,
}

/// A certificate's status, as the caller found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked at this time for this reason.
    Revoked {
        /// When the CA processed the revocation.
        revoked_at: OffsetDateTime,
        /// Why (no reason is encoded for `Unspecified`, as in the CRL).
        reason: RevocationReason,
    },
    /// Not known to this responder.
    Unknown,
}

/// Why a responder could not be built or a response not signed.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    /// The certificates or key cannot serve as an OCSP responder.
    #[error("unusable OCSP responder: {0}")]
    Setup(String),
    /// `statuses` does not match the request's certificates.
    #[error("{statuses} statuses for {requested} certificates")]
    StatusCount {
        /// Statuses given.
        statuses: usize,
        /// Certificates requested.
        requested: usize,
    },
    /// A certificate given to build a request cannot be read or does not fit its issuer.
    #[error("OCSP request: {0}")]
    Certificate(String),
    /// DER encoding failed.
    #[error("DER encoding: {0}")]
    Encoding(#[from] der::Error),
    /// Signing failed.
    #[error("signing failed")]
    Signing,
}

/// The issuer's name and key hashes under one CertID hash algorithm.
struct IssuerHashes {
    algorithm: ObjectIdentifier,
    name: Vec<u8>,
    key: Vec<u8>,
}

/// Signs OCSP responses for one CA.
pub struct OcspResponder {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    responder_id: ResponderId,
    /// The delegated responder's certificate, sent with every response; `None` when the CA signs.
    certs: Option<Vec<Certificate>>,
    issuer: Vec<IssuerHashes>,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspResponder")
            .field("delegated", &self.certs.is_some())
            .field("private_key", &"[elided]")
            .finish_non_exhaustive()
    }
}

impl OcspResponder {
    /// A responder for the CA `issuer_certificate_der`, signing with the P-256 PKCS#8 key of
    /// `responder_certificate_der`. That is either the CA certificate itself, or a delegated
    /// responder certificate the CA issued with the extended key usage OCSPSigning.
    pub fn new(
        issuer_certificate_der: &[u8],
        responder_certificate_der: &[u8],
        responder_key_pkcs8_der: &[u8],
    ) -> Result<Self, OcspError> {
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ring_signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            responder_key_pkcs8_der,
            &rng,
        )
        .map_err(|e| OcspError::Setup(format!("not a PKCS#8 P-256 key: {e}")))?;
        let issuer = crate::der_bounds::decode::<Certificate>(issuer_certificate_der)
            .map_err(|e| OcspError::Setup(format!("issuer certificate: {e}")))?;
        let responder = crate::der_bounds::decode::<Certificate>(responder_certificate_der)
            .map_err(|e| OcspError::Setup(format!("responder certificate: {e}")))?;
        let responder_key = responder
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if responder_key != ring::signature::KeyPair::public_key(&key).as_ref() {
            return Err(OcspError::Setup(
                "the key does not match the responder certificate".into(),
            ));
        }
        let delegated = issuer_certificate_der != responder_certificate_der;
        if delegated {
            check_delegation(issuer_certificate_der, responder_certificate_der)
                .map_err(OcspError::Setup)?;
        }
        let name_der = issuer.tbs_certificate.subject.to_der()?;
        let issuer_key = issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let issuer_hashes = [ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512]
            .into_iter()
            .filter_map(|algorithm| {
                let digest = digest_for(algorithm)?;
                Some(IssuerHashes {
                    algorithm,
                    name: ring::digest::digest(digest, &name_der).as_ref().to_vec(),
                    key: ring::digest::digest(digest, issuer_key).as_ref().to_vec(),
                })
            })
            .collect();
        // ResponderID byKey: SHA-1 of the responder's public key bits (RFC 6960 §4.2.1).
        let key_hash = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, responder_key);
        Ok(Self {
            key,
            rng,
            responder_id: ResponderId::ByKey(OctetString::new(key_hash.as_ref())?),
            certs: delegated.then(|| vec![responder]),
            issuer: issuer_hashes,
        })
    }

    /// Whether `id` names a certificate of this CA, and which serial.
    pub fn identify(&self, id: &CertId) -> Lookup {
        let Some(hashes) = self
            .issuer
            .iter()
            .find(|h| h.algorithm == id.hash_algorithm.oid)
        else {
            return Lookup::Unknown;
        };
        if hashes.name != id.issuer_name_hash.as_bytes()
            || hashes.key != id.issuer_key_hash.as_bytes()
        {
            return Lookup::ForeignIssuer;
        }
        let bytes = id.serial_number.as_bytes();
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let digits = &bytes[start..];
        if digits.is_empty() || digits.len() > 16 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return Lookup::Unknown;
        }
        let mut serial = [0u8; 16];
        serial[16 - digits.len()..].copy_from_slice(digits);
        match hex::encode(serial).parse::<SerialNumber>() {
            Ok(serial) => Lookup::Serial(serial),
            Err(_) => Lookup::Unknown,
        }
    }

    /// A signed, successful `OCSPResponse` DER with one SingleResponse per requested certificate
    /// (`statuses[i]` for `request.cert_ids[i]`): thisUpdate `now`, nextUpdate `now + validity`,
    /// producedAt `now`, the request's nonce echoed.
    pub fn respond(
        &self,
        request: &OcspRequest,
        statuses: &[CertificateStatus],
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<Vec<u8>, OcspError> {
        if statuses.len() != request.cert_ids.len() {
            return Err(OcspError::StatusCount {
                statuses: statuses.len(),
                requested: request.cert_ids.len(),
            });
        }
        let this_update = ocsp_time(now)?;
        let next_update = ocsp_time(now + validity)?;
        let responses = request
            .cert_ids
            .iter()
            .zip(statuses)
            .map(|(id, status)| {
                Ok(SingleResponse {
                    cert_id: id.clone(),
                    cert_status: match status {
                        CertificateStatus::Good => CertStatus::good(),
                        CertificateStatus::Unknown => CertStatus::unknown(),
                        CertificateStatus::Revoked { revoked_at, reason } => {
                            CertStatus::revoked(RevokedInfo {
                                revocation_time: ocsp_time(*revoked_at)?,
                                revocation_reason: crl_reason(*reason),
                            })
                        }
                    },
                    this_update,
                    next_update: Some(next_update),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, OcspError>>()?;
        let tbs = ResponseData {
            version: Version::V1,
            responder_id: self.responder_id.clone(),
            produced_at: this_update,
            responses,
            response_extensions: self.nonce_extension(request),
        };
        let tbs_der = tbs.to_der()?;
        let signature = self
            .key
            .sign(&self.rng, &tbs_der)
            .map_err(|_| OcspError::Signing)?;
        let basic = BasicOcspResponse {
            tbs_response_data: tbs,
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA_256,
                parameters: None,
            },
            signature: BitString::from_bytes(signature.as_ref())?,
            certs: self.certs.clone(),
        };
        Ok(OcspResponse::successful(basic)?.to_der()?)
    }

    fn nonce_extension(&self, request: &OcspRequest) -> Option<Vec<Extension>> {
        request.nonce.clone().map(|nonce| vec![nonce])
    }
}

/// An unsigned error `OCSPResponse` (malformedRequest, internalError, tryLater, unauthorized…).
pub fn error_response(status: OcspResponseStatus) -> Vec<u8> {
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED }: five bytes, nothing to fail.
    vec![0x30, 0x03, 0x0A, 0x01, status as u8]
}

fn digest_for(algorithm: ObjectIdentifier) -> Option<&'static ring::digest::Algorithm> {
    match algorithm {
        ID_SHA_1 => Some(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY),
        ID_SHA_256 => Some(&ring::digest::SHA256),
        ID_SHA_384 => Some(&ring::digest::SHA384),
        ID_SHA_512 => Some(&ring::digest::SHA512),
        _ => None,
    }
}

fn ocsp_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, OcspError> {
    let seconds = u64::try_from(t.unix_timestamp())
        .map_err(|_| OcspError::Setup(format!("time {t} is before 1970")))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_unix_duration(
        std::time::Duration::from_secs(seconds),
    )?))
}

fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    Some(match reason {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    })
}

/// A delegated responder must be issued by the CA and carry the extended key usage OCSPSigning
/// (RFC 6960 §4.2.2.2), or relying parties reject its responses.
fn check_delegation(issuer_der: &[u8], responder_der: &[u8]) -> Result<(), String> {
    use x509_parser::extensions::ParsedExtension;
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| format!("issuer certificate: {e}"))?;
    let (_, responder) = x509_parser::parse_x509_certificate(responder_der)
        .map_err(|e| format!("responder certificate: {e}"))?;
    responder
        .verify_signature(Some(issuer.public_key()))
        .map_err(|_| "the responder certificate is not issued by the CA".to_owned())?;
    let signs_ocsp = responder
        .extensions()
        .iter()
        .any(|ext| matches!(ext.parsed_extension(), ParsedExtension::ExtendedKeyUsage(eku) if eku.ocsp_signing));
    if !signs_ocsp {
        return Err(format!(
            "the responder certificate lacks the extended key usage OCSPSigning ({ID_KP_OCSP_SIGNING})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    #[test]
    fn error_responses_decode_with_their_status() {
        for status in [
            OcspResponseStatus::MalformedRequest,
            OcspResponseStatus::InternalError,
            OcspResponseStatus::Unauthorized,
        ] {
            let response = OcspResponse::from_der(&error_response(status)).unwrap();
            assert_eq!(response.response_status, status);
            assert!(response.response_bytes.is_none());
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = OcspRequest::from_der(&bytes);
        }
    }
}
