//! RFC 3161: tokens issued by Signet's TSA verify with Signet's verifier and with `openssl ts`,
//! and the verifier refuses what does not match.

use proptest::prelude::*;
use signet_crypto::ca::ServicePurpose;
use signet_crypto::tsp::{
    verify_response, verify_token, Expectation, FailureInfo, HashAlgorithm, TimeStampAuthority,
    TimeStampRequest, TspError,
};
use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Decode, Encode};

use crate::ltv_support::{ca, now, service};
use crate::support::Openssl;

const POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.3.4.1");

struct Fixture {
    ca: signet_crypto::ca::CertificateAuthority,
    tsa: TimeStampAuthority,
}

fn fixture() -> Fixture {
    let ca = ca();
    let (certificate, key) = service(&ca, ServicePurpose::TimeStamping);
    let tsa = TimeStampAuthority::new(&certificate.der, &key, POLICY, 1).unwrap();
    Fixture { ca, tsa }
}

fn request(data: &[u8], nonce: u64) -> TimeStampRequest {
    TimeStampRequest::new(
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha256.digest(data),
        Some(nonce),
    )
}

fn expectation<'a>(
    fixture: &'a Fixture,
    request: &'a TimeStampRequest,
    anchors: &'a [&'a [u8]],
) -> Expectation<'a> {
    let _ = fixture;
    Expectation {
        hash_algorithm: request.hash_algorithm,
        hashed_message: &request.hashed_message,
        nonce: request.nonce.as_deref(),
        policy: Some(POLICY.into()),
        trust_anchors: anchors,
        extra_certificates: &[],
    }
}

#[test]
fn an_issued_token_verifies_with_our_own_verifier() {
    let fixture = fixture();
    let request = request(b"a document", 0x8000_0000_0000_0001);
    let reply = fixture.tsa.respond(&request.to_der().unwrap(), now());
    assert!(reply.rejection.is_none(), "{:?}", reply.rejection);
    let anchors = [fixture.ca.certificate_der()];
    let verified = verify_response(&reply.der, &expectation(&fixture, &request, &anchors)).unwrap();
    assert_eq!(verified.policy, POLICY);
    assert_eq!(verified.tsa_certificate_der, fixture.tsa.certificate_der());
    assert!((verified.time - now()).abs() < time::Duration::minutes(1));
}

#[test]
fn two_tokens_have_different_serials() {
    let fixture = fixture();
    let request = request(b"x", 1);
    let anchors = [fixture.ca.certificate_der()];
    let serials: Vec<Vec<u8>> = (0..2)
        .map(|_| {
            let reply = fixture.tsa.respond(&request.to_der().unwrap(), now());
            verify_response(&reply.der, &expectation(&fixture, &request, &anchors))
                .unwrap()
                .serial
        })
        .collect();
    assert_ne!(serials[0], serials[1]);
}

#[test]
fn a_token_for_another_imprint_is_refused() {
    let fixture = fixture();
    let asked = request(b"what I asked for", 7);
    let other = request(b"something else", 7);
    let reply = fixture.tsa.respond(&other.to_der().unwrap(), now());
    let anchors = [fixture.ca.certificate_der()];
    let error = verify_response(&reply.der, &expectation(&fixture, &asked, &anchors)).unwrap_err();
    assert!(
        matches!(error, TspError::Invalid(ref m) if m.contains("imprint")),
        "{error}"
    );
}

#[test]
fn a_token_with_another_nonce_is_refused() {
    let fixture = fixture();
    let asked = request(b"doc", 1);
    let replayed = request(b"doc", 2);
    let reply = fixture.tsa.respond(&replayed.to_der().unwrap(), now());
    let anchors = [fixture.ca.certificate_der()];
    let error = verify_response(&reply.der, &expectation(&fixture, &asked, &anchors)).unwrap_err();
    assert!(
        matches!(error, TspError::Invalid(ref m) if m.contains("nonce")),
        "{error}"
    );
}

#[test]
fn a_token_from_a_tsa_of_another_ca_is_refused() {
    let fixture = fixture();
    let stranger = ca();
    let request = request(b"doc", 3);
    let reply = fixture.tsa.respond(&request.to_der().unwrap(), now());
    let anchors = [stranger.certificate_der()];
    let error =
        verify_response(&reply.der, &expectation(&fixture, &request, &anchors)).unwrap_err();
    assert!(
        matches!(error, TspError::Invalid(ref m) if m.contains("chain")),
        "{error}"
    );
}

#[test]
fn a_tampered_token_does_not_verify() {
    let fixture = fixture();
    let request = request(b"doc", 4);
    let token = fixture.tsa.issue(&request, now()).unwrap();
    // Flip one bit in the last byte: the ECDSA signature.
    let mut tampered = token.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let anchors = [fixture.ca.certificate_der()];
    assert!(verify_token(&token, &expectation(&fixture, &request, &anchors)).is_ok());
    assert!(verify_token(&tampered, &expectation(&fixture, &request, &anchors)).is_err());
}

#[test]
fn without_cert_req_the_certificate_must_be_supplied() {
    let fixture = fixture();
    let mut request = request(b"doc", 5);
    request.cert_req = false;
    let token = fixture.tsa.issue(&request, now()).unwrap();
    let anchors = [fixture.ca.certificate_der()];
    let error = verify_token(&token, &expectation(&fixture, &request, &anchors)).unwrap_err();
    assert!(matches!(error, TspError::Invalid(_)), "{error}");
    let extra = [fixture.tsa.certificate_der()];
    let mut with_certificate = expectation(&fixture, &request, &anchors);
    with_certificate.extra_certificates = &extra;
    verify_token(&token, &with_certificate).unwrap();
}

#[test]
fn an_unknown_policy_sha1_and_garbage_are_rejected_with_their_failure_info() {
    let fixture = fixture();
    let mut foreign_policy = request(b"doc", 6);
    foreign_policy.policy = Some(ObjectIdentifier::new_unwrap("1.2.3.4.2").into());
    let reply = fixture
        .tsa
        .respond(&foreign_policy.to_der().unwrap(), now());
    assert_eq!(reply.rejection.unwrap().info, FailureInfo::UnacceptedPolicy);

    let reply = fixture.tsa.respond(b"not DER at all", now());
    assert_eq!(reply.rejection.unwrap().info, FailureInfo::BadDataFormat);

    // openssl ts -query -sha1: SHA-1 OID 1.3.14.3.2.26 with 20 bytes.
    let sha1_request = [
        &[
            0x30, 0x29, 0x02, 0x01, 0x01, 0x30, 0x21, 0x30, 0x09, 0x06, 0x05,
        ][..],
        &[0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x05, 0x00, 0x04, 0x14],
        &[0xAA; 20],
        &[0x01, 0x01, 0xFF],
    ]
    .concat();
    let reply = fixture.tsa.respond(&sha1_request, now());
    assert_eq!(reply.rejection.unwrap().info, FailureInfo::BadAlg);
}

#[test]
fn a_certificate_without_the_time_stamping_usage_cannot_be_a_tsa() {
    let ca = ca();
    let (certificate, key) = service(&ca, ServicePurpose::OcspSigning);
    let error = TimeStampAuthority::new(&certificate.der, &key, POLICY, 1).unwrap_err();
    assert!(error.to_string().contains("timeStamping"), "{error}");
}

#[test]
fn openssl_ts_verifies_a_token_for_its_own_query() {
    let fixture = fixture();
    let openssl = Openssl::new();
    openssl.write("data.txt", b"a contract worth keeping");
    openssl.write("ca.pem", fixture.ca.certificate_pem());
    openssl.write(
        "tsa.pem",
        signet_crypto::ca::certificate_pem_from_der(fixture.tsa.certificate_der()),
    );
    openssl.run(&[
        "ts",
        "-query",
        "-data",
        "data.txt",
        "-sha256",
        "-cert",
        "-out",
        "query.tsq",
    ]);
    let query = std::fs::read(openssl.path("query.tsq")).unwrap();
    let reply = fixture.tsa.respond(&query, now());
    assert!(reply.rejection.is_none(), "{:?}", reply.rejection);
    openssl.write("reply.tsr", &reply.der);
    let text = openssl.run(&["ts", "-reply", "-in", "reply.tsr", "-text"]);
    assert!(text.contains("Granted"), "{text}");
    assert!(text.contains("Nonce"), "{text}");
    let verdict = openssl.run(&[
        "ts",
        "-verify",
        "-data",
        "data.txt",
        "-in",
        "reply.tsr",
        "-CAfile",
        "ca.pem",
        "-untrusted",
        "tsa.pem",
    ]);
    assert!(verdict.contains("Verification: OK"), "{verdict}");
    let verdict = openssl.run(&[
        "ts",
        "-verify",
        "-queryfile",
        "query.tsq",
        "-in",
        "reply.tsr",
        "-CAfile",
        "ca.pem",
    ]);
    assert!(verdict.contains("Verification: OK"), "{verdict}");
}

#[test]
fn a_request_beyond_the_size_bound_is_refused_as_bad_data() {
    let oversize = vec![0x30; signet_crypto::tsp::MAX_REQUEST_BYTES + 1];
    let rejection = TimeStampRequest::from_der(&oversize).unwrap_err();
    assert!(rejection.reason.contains("at most"), "{}", rejection.reason);
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = TimeStampRequest::from_der(&bytes);
    }

    #[test]
    fn answering_mutated_requests_never_panics(position in 0usize..60, value in any::<u8>()) {
        let fixture = fixture();
        let mut der = request(b"doc", 9).to_der().unwrap();
        let index = position % der.len();
        der[index] = value;
        let reply = fixture.tsa.respond(&der, now());
        prop_assert!(!reply.der.is_empty());
    }
}

#[test]
fn a_signature_timestamp_attribute_leaves_the_cms_verifiable_by_openssl() {
    use signet_crypto::ca::IssueRequest;
    use signet_crypto::cms::{add_signature_timestamp, sign_with_key, signature_value};

    let fixture = fixture();
    let (key, public_key) = signet_crypto::ca::generate_service_key().unwrap();
    let subject = signet_crypto::csr::Subject::builder()
        .common_name("B-T signer")
        .build();
    let signer = fixture
        .ca
        .issue(&IssueRequest {
            subject: &subject,
            public_key: &public_key,
            not_before: now() - time::Duration::minutes(1),
            not_after: now() + time::Duration::days(1),
            crl_distribution_url: crate::support::CRL_URL,
            email: None,
            authority_info_access: None,
        })
        .unwrap();
    let data = b"the signed content";
    let digest: [u8; 32] = HashAlgorithm::Sha256.digest(data).try_into().unwrap();
    let cms = sign_with_key(&digest, &key, &signer.der, &[fixture.ca.certificate_der()]).unwrap();

    // The token covers the signature value (RFC 3161 Appendix A).
    let signature = signature_value(&cms).unwrap();
    let request = TimeStampRequest::new(
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha256.digest(&signature),
        Some(42),
    );
    let token = fixture.tsa.issue(&request, now()).unwrap();
    let with_timestamp = add_signature_timestamp(&cms, &token).unwrap();
    assert!(add_signature_timestamp(&with_timestamp, &token).is_err());

    // The token is found again where PAdES B-T validators look, and verifies.
    let info = cms::content_info::ContentInfo::from_der(&with_timestamp).unwrap();
    let signed: cms::signed_data::SignedData = info.content.decode_as().unwrap();
    let signer_info = &signed.signer_infos.0.as_slice()[0];
    let unsigned = signer_info.unsigned_attrs.as_ref().unwrap();
    let attribute = unsigned.iter().next().unwrap();
    assert_eq!(
        attribute.oid,
        signet_crypto::tsp::ID_AA_SIGNATURE_TIME_STAMP_TOKEN
    );
    let embedded = attribute.values.get(0).unwrap().to_der().unwrap();
    assert_eq!(embedded, token);
    // The same, through the helpers a DSS collector uses.
    assert_eq!(
        signet_crypto::cms::signature_timestamp_tokens(&with_timestamp).unwrap(),
        vec![token.clone()]
    );
    let mut carried = signet_crypto::cms::certificates(&with_timestamp).unwrap();
    let mut expected = vec![signer.der.clone(), fixture.ca.certificate_der().to_vec()];
    carried.sort();
    expected.sort();
    assert_eq!(carried, expected);
    assert_eq!(
        signet_crypto::cms::certificates(&token).unwrap(),
        vec![fixture.tsa.certificate_der().to_vec()]
    );
    let anchors = [fixture.ca.certificate_der()];
    verify_token(&embedded, &expectation(&fixture, &request, &anchors)).unwrap();

    let openssl = Openssl::new();
    openssl.write("data.bin", data);
    openssl.write("sig.der", &with_timestamp);
    openssl.write("ca.pem", fixture.ca.certificate_pem());
    let text = openssl.run(&[
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        "sig.der",
        "-content",
        "data.bin",
        "-CAfile",
        "ca.pem",
        "-purpose",
        "any",
        "-out",
        "/dev/null",
    ]);
    assert!(text.contains("Verification successful"), "{text}");
    let text = openssl.run(&[
        "cms", "-cmsout", "-print", "-inform", "DER", "-in", "sig.der",
    ]);
    assert!(text.contains("id-smime-aa-timeStampToken"), "{text}");
}
