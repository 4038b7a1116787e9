//! RFC 6960: the delegated responder answers good, revoked (with time and reason) and unknown for
//! SHA-1 and SHA-256 CertIDs, echoes the nonce, and openssl accepts what it signs.

use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use signet_crypto::ca::{RevocationReason, SerialNumber, ServicePurpose};
use signet_crypto::ocsp::{CertificateStatus, Lookup, OcspRequest, OcspResponder};
use spki::AlgorithmIdentifierOwned;
use time::Duration;
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, CertId, CertStatus, OcspResponse, OcspResponseStatus};

use crate::ltv_support::{ca, now, service};
use crate::support::Openssl;

const NONCE_OID: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// A CertID for `serial` under `ca`, hashed with SHA-1 or SHA-256.
fn cert_id(ca_der: &[u8], serial: &[u8], sha1: bool) -> CertId {
    let ca = Certificate::from_der(ca_der).unwrap();
    let (oid, digest) = if sha1 {
        (
            const_oid::db::rfc5912::ID_SHA_1,
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        )
    } else {
        (const_oid::db::rfc5912::ID_SHA_256, &ring::digest::SHA256)
    };
    let name = ring::digest::digest(digest, &ca.tbs_certificate.subject.to_der().unwrap());
    let key = ring::digest::digest(
        digest,
        ca.tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes(),
    );
    CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid,
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(name.as_ref()).unwrap(),
        issuer_key_hash: OctetString::new(key.as_ref()).unwrap(),
        serial_number: x509_cert::serial_number::SerialNumber::new(serial).unwrap(),
    }
}

fn request_der(ids: &[CertId], nonce: Option<&[u8]>) -> Vec<u8> {
    let extensions = nonce.map(|n| {
        vec![Extension {
            extn_id: NONCE_OID,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n).unwrap().to_der().unwrap()).unwrap(),
        }]
    });
    x509_ocsp::OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: ids
                .iter()
                .map(|id| x509_ocsp::Request {
                    req_cert: id.clone(),
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions: extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .unwrap()
}

fn basic(response_der: &[u8]) -> BasicOcspResponse {
    let response = OcspResponse::from_der(response_der).unwrap();
    assert_eq!(response.response_status, OcspResponseStatus::Successful);
    BasicOcspResponse::from_der(response.response_bytes.unwrap().response.as_bytes()).unwrap()
}

#[test]
fn the_responder_answers_good_revoked_and_unknown_with_the_nonce_echoed() {
    let ca = ca();
    let (responder_cert, responder_key) = service(&ca, ServicePurpose::OcspSigning);
    let responder =
        OcspResponder::new(ca.certificate_der(), &responder_cert.der, &responder_key).unwrap();
    let good = SerialNumber::random();
    let revoked = SerialNumber::random();
    let ids = [
        cert_id(ca.certificate_der(), good.as_bytes(), true),
        cert_id(ca.certificate_der(), revoked.as_bytes(), false),
        cert_id(ca.certificate_der(), &[0x7f; 20], true),
    ];
    let request = OcspRequest::from_der(&request_der(&ids, Some(b"0123456789abcdef"))).unwrap();
    let lookups: Vec<Lookup> = request
        .cert_ids
        .iter()
        .map(|id| responder.identify(id))
        .collect();
    assert_eq!(
        lookups,
        [
            Lookup::Serial(good),
            Lookup::Serial(revoked),
            Lookup::Unknown
        ]
    );
    let revoked_at = now() - Duration::hours(1);
    let statuses = [
        CertificateStatus::Good,
        CertificateStatus::Revoked {
            revoked_at,
            reason: RevocationReason::KeyCompromise,
        },
        CertificateStatus::Unknown,
    ];
    let der = responder
        .respond(&request, &statuses, now(), Duration::hours(1))
        .unwrap();
    let basic = basic(&der);
    let responses = &basic.tbs_response_data.responses;
    assert!(matches!(responses[0].cert_status, CertStatus::Good(_)));
    match &responses[1].cert_status {
        CertStatus::Revoked(info) => {
            assert_eq!(
                info.revocation_time.0.to_unix_duration().as_secs() as i64,
                revoked_at.unix_timestamp()
            );
            assert_eq!(
                info.revocation_reason,
                Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
            );
        }
        other => panic!("expected revoked, got {other:?}"),
    }
    assert!(matches!(responses[2].cert_status, CertStatus::Unknown(_)));
    assert!(responses.iter().all(|r| r.next_update.is_some()));
    assert_eq!(
        basic.nonce().unwrap().0.as_bytes(),
        b"0123456789abcdef".as_slice()
    );
    // The delegated certificate travels with the response; the signature is its key's.
    let certs = basic.certs.as_ref().unwrap();
    assert_eq!(certs[0].to_der().unwrap(), responder_cert.der);
    let tbs = basic.tbs_response_data.to_der().unwrap();
    let key = certs[0]
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, key)
        .verify(&tbs, basic.signature.raw_bytes())
        .unwrap();
}

#[test]
fn a_cert_id_of_another_ca_is_a_foreign_issuer() {
    let ca = ca();
    let other = crate::ltv_support::ca();
    let (cert, key) = service(&ca, ServicePurpose::OcspSigning);
    let responder = OcspResponder::new(ca.certificate_der(), &cert.der, &key).unwrap();
    let id = cert_id(other.certificate_der(), &[1, 2, 3], true);
    assert_eq!(responder.identify(&id), Lookup::ForeignIssuer);
}

#[test]
fn a_responder_certificate_without_ocsp_signing_is_refused() {
    let ca = ca();
    let (cert, key) = service(&ca, ServicePurpose::TimeStamping);
    let error = OcspResponder::new(ca.certificate_der(), &cert.der, &key).unwrap_err();
    assert!(error.to_string().contains("OCSPSigning"), "{error}");
}

#[test]
fn empty_and_garbage_requests_are_malformed() {
    assert!(OcspRequest::from_der(b"").is_err());
    assert!(OcspRequest::from_der(&request_der(&[], None)).is_err());
    assert!(OcspRequest::from_der(&[0x30, 0x80, 0x00, 0x00]).is_err());
}

#[test]
fn requests_beyond_the_size_and_certificate_bounds_are_malformed() {
    let ca = ca();
    let oversize = vec![0x30; signet_crypto::ocsp::MAX_REQUEST_BYTES + 1];
    let error = OcspRequest::from_der(&oversize).unwrap_err();
    assert!(error.0.contains("at most"), "{}", error.0);

    let ids = |count: usize| -> Vec<CertId> {
        (0..count)
            .map(|i| cert_id(ca.certificate_der(), &[1, i as u8 + 1], true))
            .collect()
    };
    let most = signet_crypto::ocsp::MAX_CERTIFICATES_PER_REQUEST;
    assert!(OcspRequest::from_der(&request_der(&ids(most), None)).is_ok());
    let error = OcspRequest::from_der(&request_der(&ids(most + 1), None)).unwrap_err();
    assert!(error.0.contains("at most"), "{}", error.0);
}

#[test]
fn openssl_verifies_a_response_to_its_own_request() {
    let ca = ca();
    let (responder_cert, responder_key) = service(&ca, ServicePurpose::OcspSigning);
    let (subject_cert, _) = service(&ca, ServicePurpose::TimeStamping);
    let responder =
        OcspResponder::new(ca.certificate_der(), &responder_cert.der, &responder_key).unwrap();
    let openssl = Openssl::new();
    openssl.write("ca.pem", ca.certificate_pem());
    openssl.write("cert.pem", subject_cert.pem());
    for digest in ["-sha1", "-sha256"] {
        openssl.run(&[
            "ocsp", "-issuer", "ca.pem", digest, "-cert", "cert.pem", "-reqout", "req.der",
        ]);
        let request =
            OcspRequest::from_der(&std::fs::read(openssl.path("req.der")).unwrap()).unwrap();
        assert_eq!(
            responder.identify(&request.cert_ids[0]),
            Lookup::Serial(subject_cert.serial)
        );
        let der = responder
            .respond(
                &request,
                &[CertificateStatus::Good],
                now(),
                Duration::hours(1),
            )
            .unwrap();
        openssl.write("resp.der", &der);
        let text = openssl.run(&[
            "ocsp",
            "-reqin",
            "req.der",
            "-respin",
            "resp.der",
            "-CAfile",
            "ca.pem",
            "-resp_text",
        ]);
        assert!(text.contains("Response verify OK"), "{digest}: {text}");
        assert!(text.contains("Cert Status: good"), "{digest}: {text}");
    }
}

proptest::proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = OcspRequest::from_der(&bytes);
    }
}

#[test]
fn a_request_built_for_a_certificate_names_its_serial_and_round_trips() {
    let ca = ca();
    let (responder_cert, responder_key) = service(&ca, ServicePurpose::OcspSigning);
    let responder =
        OcspResponder::new(ca.certificate_der(), &responder_cert.der, &responder_key).unwrap();

    let request = OcspRequest::for_certificate(&responder_cert.der, ca.certificate_der()).unwrap();

    assert_eq!(
        responder.identify(&request.cert_ids[0]),
        Lookup::Serial(responder_cert.serial)
    );
    let parsed = OcspRequest::from_der(&request.to_der().unwrap()).unwrap();
    assert_eq!(parsed, request);
    assert!(parsed.nonce().is_none());
}

#[test]
fn a_request_for_a_certificate_of_another_issuer_is_refused() {
    let (ca, other) = (ca(), ca());
    let (certificate, _) = service(&ca, ServicePurpose::TimeStamping);
    assert!(OcspRequest::for_certificate(&certificate.der, other.certificate_der()).is_err());
}
