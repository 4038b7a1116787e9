//! Revocation data for certificates of other CAs (an external TSA's chain): where a certificate
//! says its status can be had (AIA OCSP, CRL distribution points), and the checks that make a
//! fetched OCSP response or CRL fit to embed in a `/DSS` — signed by the issuer (or, for OCSP, a
//! responder the issuer delegated to with EKU OCSPSigning), about this very certificate, current,
//! and saying it is not revoked. The fetching is the caller's (this crate does no I/O).

use const_oid::db::rfc6960::ID_PKIX_OCSP_BASIC;
use der::Encode;
use time::OffsetDateTime;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};

use crate::ocsp::OcspRequest;

/// How far a responder's or CRL issuer's clock may run ahead of ours.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// `id-ad-ocsp` (RFC 5280 §4.2.2.1).
const ID_AD_OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// Why revocation data was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationError {
    #[error("a certificate cannot be read: {0}")]
    Certificate(String),
    #[error("not a DER OCSP response: {0}")]
    MalformedOcsp(String),
    #[error("the OCSP responder answered {0:?}")]
    OcspStatus(String),
    #[error("the OCSP response does not verify: {0}")]
    OcspInvalid(String),
    #[error("not a DER CRL: {0}")]
    MalformedCrl(String),
    #[error("the CRL does not verify: {0}")]
    CrlInvalid(String),
    #[error("the certificate is revoked")]
    Revoked,
    #[error("the OCSP responder does not know the certificate")]
    Unknown,
}

/// Where a certificate's revocation status is published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationLocations {
    /// AIA `id-ad-ocsp` URIs.
    pub ocsp: Vec<String>,
    /// CRL distribution point full-name URIs.
    pub crl: Vec<String>,
}

/// The OCSP and CRL URLs a certificate names.
pub fn locations(certificate_der: &[u8]) -> Result<RevocationLocations, RevocationError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| RevocationError::Certificate(e.to_string()))?;
    let mut found = RevocationLocations::default();
    for extension in certificate.iter_extensions() {
        match extension.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for access in aia.iter() {
                    if access.access_method.to_id_string() == ID_AD_OCSP {
                        if let GeneralName::URI(uri) = access.access_location {
                            found.ocsp.push(uri.to_owned());
                        }
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for point in points.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &point.distribution_point
                    {
                        for name in names {
                            if let GeneralName::URI(uri) = name {
                                found.crl.push((*uri).to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Whether `certificate_der` is signed by the key of `issuer_der`, under its name.
pub fn issued_by(certificate_der: &[u8], issuer_der: &[u8]) -> bool {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate_der) else {
        return false;
    };
    let Ok((_, issuer)) = x509_parser::parse_x509_certificate(issuer_der) else {
        return false;
    };
    certificate.issuer().as_raw() == issuer.subject().as_raw()
        && certificate
            .verify_signature(Some(issuer.public_key()))
            .is_ok()
}

/// Whether a certificate is self-signed (a root: no revocation data applies to it).
pub fn is_self_signed(certificate_der: &[u8]) -> bool {
    issued_by(certificate_der, certificate_der)
}

/// An OCSP response that says "good" about the certificate it was checked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedOcsp {
    /// The delegated responder's certificate, when the issuer did not sign the response itself
    /// (it belongs in the `/DSS` beside the response).
    pub responder_certificate: Option<Vec<u8>>,
}

/// Checks a DER `OCSPResponse` about `certificate_der` (issued by `issuer_der`) at `now`:
/// successful, basic, signed by the issuer or by a certificate the issuer gave EKU OCSPSigning,
/// with a SingleResponse for this certificate whose thisUpdate is not in the future and whose
/// nextUpdate (if any) has not passed, and whose status is good.
pub fn verify_ocsp_response(
    response_der: &[u8],
    certificate_der: &[u8],
    issuer_der: &[u8],
    now: OffsetDateTime,
) -> Result<VerifiedOcsp, RevocationError> {
    let malformed = |e: der::Error| RevocationError::MalformedOcsp(e.to_string());
    let invalid = |m: &str| RevocationError::OcspInvalid(m.to_owned());
    let response = crate::der_bounds::decode::<OcspResponse>(response_der).map_err(malformed)?;
    if response.response_status != OcspResponseStatus::Successful {
        return Err(RevocationError::OcspStatus(format!(
            "{:?}",
            response.response_status
        )));
    }
    let bytes = response
        .response_bytes
        .ok_or_else(|| invalid("successful but no response bytes"))?;
    if bytes.response_type != ID_PKIX_OCSP_BASIC {
        return Err(invalid("not a basic OCSP response"));
    }
    let basic = crate::der_bounds::decode::<BasicOcspResponse>(bytes.response.as_bytes())
        .map_err(malformed)?;
    let tbs_der = basic.tbs_response_data.to_der().map_err(malformed)?;

    // Who signed: the issuer, or a responder it delegated to.
    let mut signers: Vec<(Vec<u8>, bool)> = vec![(issuer_der.to_vec(), false)];
    for certificate in basic.certs.iter().flatten() {
        let der = certificate.to_der().map_err(malformed)?;
        if der != issuer_der && issued_by(&der, issuer_der) && has_ocsp_signing(&der) {
            signers.push((der, true));
        }
    }
    let signer = signers
        .into_iter()
        .find(|(der, _)| {
            crate::tsp::verify_signature(
                der,
                basic.signature_algorithm.oid,
                &tbs_der,
                basic.signature.raw_bytes(),
            )
            .is_ok()
        })
        .ok_or_else(|| {
            invalid("not signed by the issuer or a responder certificate the issuer delegated to")
        })?;

    // About what, and when.
    let wanted = OcspRequest::for_certificate(certificate_der, issuer_der)
        .map_err(|e| RevocationError::Certificate(e.to_string()))?;
    let wanted = wanted
        .cert_ids
        .first()
        .ok_or_else(|| invalid("no CertID to compare"))?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|single| {
            let id = &single.cert_id;
            id.hash_algorithm.oid == wanted.hash_algorithm.oid
                && id.issuer_name_hash == wanted.issuer_name_hash
                && id.issuer_key_hash == wanted.issuer_key_hash
                && id.serial_number == wanted.serial_number
        })
        .ok_or_else(|| invalid("it does not answer for the certificate asked about"))?;
    let now_unix = now.unix_timestamp();
    let seconds = |t: &x509_ocsp::OcspGeneralizedTime| {
        i64::try_from(t.0.to_unix_duration().as_secs()).unwrap_or(i64::MAX)
    };
    if seconds(&single.this_update) > now_unix + CLOCK_SKEW_SECONDS {
        return Err(invalid("its thisUpdate is in the future"));
    }
    if single
        .next_update
        .as_ref()
        .is_some_and(|next| seconds(next) < now_unix)
    {
        return Err(invalid("its nextUpdate has passed"));
    }
    match single.cert_status {
        CertStatus::Good(_) => Ok(VerifiedOcsp {
            responder_certificate: signer.1.then_some(signer.0),
        }),
        CertStatus::Revoked(_) => Err(RevocationError::Revoked),
        CertStatus::Unknown(_) => Err(RevocationError::Unknown),
    }
}

fn has_ocsp_signing(certificate_der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(certificate_der).is_ok_and(|(_, certificate)| {
        certificate.iter_extensions().any(|ext| {
            matches!(ext.parsed_extension(), ParsedExtension::ExtendedKeyUsage(eku) if eku.ocsp_signing)
        })
    })
}

/// Checks a DER CRL from `issuer_der` at `now`: signed by the issuer under its name, current
/// (thisUpdate not in the future, nextUpdate not passed), and not listing `certificate_der`.
pub fn verify_crl(
    crl_der: &[u8],
    certificate_der: &[u8],
    issuer_der: &[u8],
    now: OffsetDateTime,
) -> Result<(), RevocationError> {
    let invalid = |m: &str| RevocationError::CrlInvalid(m.to_owned());
    let (rest, crl) = x509_parser::parse_x509_crl(crl_der)
        .map_err(|e| RevocationError::MalformedCrl(e.to_string()))?;
    if !rest.is_empty() {
        return Err(RevocationError::MalformedCrl("trailing bytes".into()));
    }
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| RevocationError::Certificate(e.to_string()))?;
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate_der)
        .map_err(|e| RevocationError::Certificate(e.to_string()))?;
    if crl.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(invalid("it is not the issuer's"));
    }
    crl.verify_signature(issuer.public_key())
        .map_err(|_| invalid("its signature does not verify with the issuer's key"))?;
    let now_unix = now.unix_timestamp();
    if crl.last_update().timestamp() > now_unix + CLOCK_SKEW_SECONDS {
        return Err(invalid("its thisUpdate is in the future"));
    }
    if crl
        .next_update()
        .is_some_and(|next| next.timestamp() < now_unix)
    {
        return Err(invalid("its nextUpdate has passed"));
    }
    let serial = strip_zeros(certificate.raw_serial());
    if crl
        .iter_revoked_certificates()
        .any(|revoked| strip_zeros(revoked.raw_serial()) == serial)
    {
        return Err(RevocationError::Revoked);
    }
    Ok(())
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
