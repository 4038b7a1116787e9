//! Checks of another CA's revocation data (`signet_crypto::revocation`), with Signet's own CA,
//! TSA certificate and delegated responder standing in for an external TSA's: what is signed by
//! the issuer or its responder, about this certificate, current and "good" is accepted; anything
//! else is refused with its reason.

use signet_crypto::ca::{
    CrlRequest, RevocationReason, RevokedCertificate, SerialNumber, ServicePurpose,
};
use signet_crypto::ocsp::{CertificateStatus, OcspRequest, OcspResponder};
use signet_crypto::revocation::{self, RevocationError};
use time::Duration;

use crate::ltv_support::{ca, now, service, OCSP_URL};
use crate::support::CRL_URL;

#[test]
fn a_certificate_names_its_ocsp_responder_and_crl() {
    let ca = ca();
    let (tsa, _) = service(&ca, ServicePurpose::TimeStamping);
    let found = revocation::locations(&tsa.der).unwrap();
    assert_eq!(found.ocsp, [OCSP_URL]);
    assert_eq!(found.crl, [CRL_URL]);
    assert!(revocation::issued_by(&tsa.der, ca.certificate_der()));
    assert!(revocation::is_self_signed(ca.certificate_der()));
    assert!(!revocation::is_self_signed(&tsa.der));
}

#[test]
fn an_ocsp_response_is_accepted_only_when_it_proves_good_for_this_certificate() {
    let ca = ca();
    let (tsa, _) = service(&ca, ServicePurpose::TimeStamping);
    let (other, _) = service(&ca, ServicePurpose::TimeStamping);
    let (responder_cert, responder_key) = service(&ca, ServicePurpose::OcspSigning);
    let responder =
        OcspResponder::new(ca.certificate_der(), &responder_cert.der, &responder_key).unwrap();
    let issuer = ca.certificate_der();
    let answer = |certificate: &[u8], status: CertificateStatus, validity: Duration| {
        let request = OcspRequest::for_certificate(certificate, issuer).unwrap();
        responder
            .respond(&request, &[status], now(), validity)
            .unwrap()
    };

    let good = answer(&tsa.der, CertificateStatus::Good, Duration::days(1));
    let verified = revocation::verify_ocsp_response(&good, &tsa.der, issuer, now()).unwrap();
    assert_eq!(
        verified.responder_certificate,
        Some(responder_cert.der.clone())
    );

    // About another certificate.
    let error = revocation::verify_ocsp_response(&good, &other.der, issuer, now()).unwrap_err();
    assert!(matches!(error, RevocationError::OcspInvalid(_)), "{error}");
    // Past its nextUpdate.
    let error =
        revocation::verify_ocsp_response(&good, &tsa.der, issuer, now() + Duration::days(2))
            .unwrap_err();
    assert!(matches!(error, RevocationError::OcspInvalid(_)), "{error}");
    // Tampered: the last signature byte flipped.
    let mut tampered = good.clone();
    let last = tampered.len() - 1 - responder_cert.der.len() - 8;
    tampered[last] ^= 1;
    assert!(revocation::verify_ocsp_response(&tampered, &tsa.der, issuer, now()).is_err());
    // Signed by a responder of another CA.
    let stranger = crate::ltv_support::ca();
    assert!(
        revocation::verify_ocsp_response(&good, &tsa.der, stranger.certificate_der(), now())
            .is_err()
    );
    // Revoked or unknown.
    let revoked = answer(
        &tsa.der,
        CertificateStatus::Revoked {
            revoked_at: now() - Duration::hours(1),
            reason: RevocationReason::KeyCompromise,
        },
        Duration::days(1),
    );
    assert_eq!(
        revocation::verify_ocsp_response(&revoked, &tsa.der, issuer, now()),
        Err(RevocationError::Revoked)
    );
    let unknown = answer(&tsa.der, CertificateStatus::Unknown, Duration::days(1));
    assert_eq!(
        revocation::verify_ocsp_response(&unknown, &tsa.der, issuer, now()),
        Err(RevocationError::Unknown)
    );
    // Not an OCSP response at all.
    assert!(matches!(
        revocation::verify_ocsp_response(b"<html>", &tsa.der, issuer, now()),
        Err(RevocationError::MalformedOcsp(_))
    ));
}

#[test]
fn a_crl_is_accepted_only_from_the_issuer_current_and_not_listing_the_certificate() {
    let ca = ca();
    let (tsa, _) = service(&ca, ServicePurpose::TimeStamping);
    let issuer = ca.certificate_der();
    let crl = |revoked: &[RevokedCertificate]| {
        ca.crl(&CrlRequest {
            number: 1,
            this_update: now() - Duration::minutes(1),
            next_update: now() + Duration::days(7),
            revoked,
        })
        .unwrap()
    };
    let clean = crl(&[RevokedCertificate {
        serial: SerialNumber::random(),
        revoked_at: now(),
        reason: RevocationReason::Superseded,
    }]);
    revocation::verify_crl(&clean, &tsa.der, issuer, now()).unwrap();
    assert!(matches!(
        revocation::verify_crl(&clean, &tsa.der, issuer, now() + Duration::days(8)),
        Err(RevocationError::CrlInvalid(_))
    ));
    let listing = crl(&[RevokedCertificate {
        serial: tsa.serial,
        revoked_at: now(),
        reason: RevocationReason::KeyCompromise,
    }]);
    assert_eq!(
        revocation::verify_crl(&listing, &tsa.der, issuer, now()),
        Err(RevocationError::Revoked)
    );
    let stranger = crate::ltv_support::ca();
    assert!(matches!(
        revocation::verify_crl(&clean, &tsa.der, stranger.certificate_der(), now()),
        Err(RevocationError::CrlInvalid(_))
    ));
    assert!(matches!(
        revocation::verify_crl(b"garbage", &tsa.der, issuer, now()),
        Err(RevocationError::MalformedCrl(_))
    ));
}
