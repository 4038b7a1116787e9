//! What the internal CA issues is checked with `openssl verify`, `openssl x509` and `openssl crl`.

use signet_crypto::ca::{
    CertificateAuthority, CrlRequest, IssueRequest, RevocationReason, RevokedCertificate,
};
use signet_crypto::csr::{CertificationRequest, Subject};
use time::Duration;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::parse_x509_certificate;
use x509_parser::prelude::FromDer;

use crate::support::{issue, now, openssl_serial, test_ca, Openssl, CRL_URL};

fn assert_verifies(openssl: &Openssl, ca: &CertificateAuthority, name: &str, extra: &[&str]) {
    let output = openssl.verify(ca, name, extra);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success() && text.contains(": OK"), "{text}");
}

#[test]
fn the_ca_certificate_is_a_critical_ca_with_cert_and_crl_signing() {
    let openssl = Openssl::new();
    let ca = test_ca();
    openssl.write("ca.pem", ca.certificate_pem());

    let text = openssl.run(&["x509", "-in", "ca.pem", "-noout", "-text"]);

    assert!(
        text.contains("X509v3 Basic Constraints: critical"),
        "{text}"
    );
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(text.contains("Subject: CN = Signet Test CA"), "{text}");
    let (_, certificate) = parse_x509_certificate(ca.certificate_der()).unwrap();
    assert!(
        certificate.validity().not_before.timestamp()
            <= (now() - Duration::minutes(4)).unix_timestamp()
    );
    assert!(certificate.raw_serial().len() <= 16);
}

#[test]
fn a_p256_certificate_verifies_and_carries_the_signing_profile() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let request = CertificationRequest::parse(&openssl.p256_csr("alice")).unwrap();

    let issued = issue(&ca, &request, Some("alice@example.com"));

    let text = openssl.x509_text("alice", &issued);
    assert_verifies(&openssl, &ca, "alice", &["-purpose", "smimesign"]);
    for expected in [
        "X509v3 Key Usage: critical",
        "Digital Signature, Non Repudiation",
        "E-mail Protection",
        CRL_URL,
        "CA:FALSE",
        "email:alice@example.com",
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "Signature Algorithm: ecdsa-with-SHA256",
        "NIST CURVE: P-256",
        "Serial Number:",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let certificate_key = openssl.run(&["x509", "-in", "alice.pem", "-noout", "-pubkey"]);
    let request_key = openssl.run(&["req", "-in", "alice.csr", "-noout", "-pubkey"]);
    assert_eq!(certificate_key, request_key);
}

#[test]
fn a_p384_key_signed_with_sha256_keeps_its_p384_algorithm() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let pem = openssl.new_csr(
        "bob",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "/CN=Bob",
        &["-sha256"],
    );
    let request = CertificationRequest::parse(&pem).unwrap();

    let issued = issue(&ca, &request, None);

    let text = openssl.x509_text("bob", &issued);
    assert_verifies(&openssl, &ca, "bob", &[]);
    assert!(
        text.contains("secp384r1") || text.contains("NIST CURVE: P-384"),
        "{text}"
    );
    assert!(!text.contains("Subject Alternative Name"), "{text}");
    let (_, certificate) = parse_x509_certificate(&issued.der).unwrap();
    assert_eq!(
        certificate.public_key().raw,
        request.public_key().spki_der()
    );
}

#[test]
fn an_rsa_certificate_verifies() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let request = CertificationRequest::parse(&openssl.new_csr(
        "rsa",
        &["-newkey", "rsa:2048"],
        "/CN=Carol",
        &[],
    ))
    .unwrap();

    let issued = issue(&ca, &request, Some("carol@example.com"));

    let text = openssl.x509_text("rsa", &issued);
    assert_verifies(&openssl, &ca, "rsa", &["-purpose", "smimesign"]);
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(text.contains("rsaEncryption"), "{text}");
}

#[test]
fn the_subject_is_copied_byte_for_byte() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let pem = openssl.new_csr(
        "dn",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/C=SE/O=Exämple AB/OU=Signing/CN=Åsa Öberg/serialNumber=19800101-1234/emailAddress=asa@example.com/DC=example",
        &["-utf8"],
    );
    let request = CertificationRequest::parse(&pem).unwrap();

    let issued = issue(&ca, &request, None);

    let der = pem::parse(&pem).unwrap().into_contents();
    let (_, csr) = X509CertificationRequest::from_der(&der).unwrap();
    let (_, certificate) = parse_x509_certificate(&issued.der).unwrap();
    assert_eq!(
        certificate.subject().as_raw(),
        csr.certification_request_info.subject.as_raw()
    );
    assert_eq!(request.common_name(), Some("Åsa Öberg"));
    let _ = openssl.x509_text("dn", &issued);
    assert_verifies(&openssl, &ca, "dn", &[]);
}

#[test]
fn recertifying_the_same_key_gives_a_new_serial_and_the_same_key() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let request = CertificationRequest::parse(&openssl.p256_csr("alice")).unwrap();

    let first = issue(&ca, &request, None);
    let second = issue(&ca, &request, None);

    assert_ne!(first.serial, second.serial);
    let (_, a) = parse_x509_certificate(&first.der).unwrap();
    let (_, b) = parse_x509_certificate(&second.der).unwrap();
    assert_eq!(a.public_key().raw, b.public_key().raw);
    assert_eq!(a.public_key().raw, request.public_key().spki_der());
    assert_eq!(a.raw_serial(), openssl_bytes(&first.serial.to_string()));
}

fn openssl_bytes(hex_serial: &str) -> Vec<u8> {
    let bytes = hex::decode(hex_serial).unwrap();
    let first = bytes.iter().position(|b| *b != 0).unwrap();
    let mut content = bytes[first..].to_vec();
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    content
}

#[test]
fn issued_times_are_whole_seconds_as_encoded() {
    let ca = test_ca();
    let subject = Subject::builder().common_name("Ivan").country("SE").build();
    let openssl = Openssl::new();
    let request = CertificationRequest::parse(&openssl.p256_csr("ivan")).unwrap();
    let not_before = now();

    let issued = ca
        .issue(&IssueRequest {
            subject: &subject,
            public_key: request.public_key(),
            not_before,
            not_after: not_before + Duration::days(30),
            crl_distribution_url: CRL_URL,
            email: None,
            authority_info_access: None,
        })
        .unwrap();

    let (_, certificate) = parse_x509_certificate(&issued.der).unwrap();
    assert_eq!(issued.not_before.nanosecond(), 0);
    assert_eq!(
        certificate.validity().not_before.timestamp(),
        issued.not_before.unix_timestamp()
    );
    assert_eq!(
        certificate.validity().not_after.timestamp(),
        issued.not_after.unix_timestamp()
    );
    assert_eq!(certificate.subject().to_string(), "CN=Ivan, C=SE");
}

#[test]
fn a_reloaded_ca_has_the_same_bytes_and_issues_verifiable_certificates() {
    let openssl = Openssl::new();
    let original = test_ca();
    let key_pem = original.private_key_pem();

    let reloaded = CertificateAuthority::from_pem(&original.certificate_pem(), &key_pem).unwrap();

    assert_eq!(reloaded.certificate_der(), original.certificate_der());
    assert_eq!(reloaded.certificate_pem(), original.certificate_pem());
    assert_eq!(*reloaded.private_key_pem(), *key_pem);
    let request = CertificationRequest::parse(&openssl.p256_csr("alice")).unwrap();
    let issued = issue(&reloaded, &request, Some("alice@example.com"));
    openssl.write("alice.pem", issued.pem());
    assert_verifies(&openssl, &original, "alice", &[]);
    let (_, certificate) = parse_x509_certificate(&issued.der).unwrap();
    let (_, ca_certificate) = parse_x509_certificate(original.certificate_der()).unwrap();
    assert_eq!(
        certificate.issuer().as_raw(),
        ca_certificate.subject().as_raw()
    );
}

#[test]
fn from_pem_refuses_swapped_or_broken_inputs() {
    let ca = test_ca();
    let key = ca.private_key_pem();
    let certificate = ca.certificate_pem();

    assert!(CertificateAuthority::from_pem(&key, &certificate).is_err());
    assert!(CertificateAuthority::from_pem(&certificate, "not a key").is_err());
    assert!(CertificateAuthority::from_pem("", &key).is_err());
}

#[test]
fn a_crl_lists_revoked_serials_with_reasons_and_verifies() {
    let openssl = Openssl::new();
    let ca = test_ca();
    let request = CertificationRequest::parse(&openssl.p256_csr("alice")).unwrap();
    let revoked = issue(&ca, &request, None);
    let superseded = issue(&ca, &request, None);
    let good = issue(&ca, &request, None);
    let entries = [
        RevokedCertificate {
            serial: revoked.serial,
            revoked_at: now() - Duration::hours(1),
            reason: RevocationReason::KeyCompromise,
        },
        RevokedCertificate {
            serial: superseded.serial,
            revoked_at: now() - Duration::minutes(30),
            reason: RevocationReason::Unspecified,
        },
    ];

    let crl = ca
        .crl(&CrlRequest {
            number: 7,
            this_update: now() - Duration::minutes(1),
            next_update: now() + Duration::days(1),
            revoked: &entries,
        })
        .unwrap();

    openssl.write("ca.pem", ca.certificate_pem());
    openssl.write("crl.der", &crl);
    let text = openssl.run(&[
        "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout", "-CAfile", "ca.pem",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("Version 2"), "{text}");
    assert!(text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(
        text.contains(&openssl_serial(revoked.serial.as_bytes())),
        "{text}"
    );
    assert!(
        text.contains(&openssl_serial(superseded.serial.as_bytes())),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert_eq!(text.matches("CRL Reason Code").count(), 1, "{text}");

    // The CRL really revokes: openssl refuses the revoked certificate and accepts the good one.
    openssl.run(&["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    openssl.write("revoked.pem", revoked.pem());
    openssl.write("good.pem", good.pem());
    let refused = openssl.verify(&ca, "revoked", &["-crl_check", "-CRLfile", "crl.pem"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("revoked")
            || String::from_utf8_lossy(&refused.stderr).contains("revoked")
    );
    assert_verifies(
        &openssl,
        &ca,
        "good",
        &["-crl_check", "-CRLfile", "crl.pem"],
    );
}

#[test]
fn an_empty_crl_verifies() {
    let openssl = Openssl::new();
    let ca = test_ca();

    let crl = ca
        .crl(&CrlRequest {
            number: 1,
            this_update: now(),
            next_update: now() + Duration::days(1),
            revoked: &[],
        })
        .unwrap();

    openssl.write("ca.pem", ca.certificate_pem());
    openssl.write("crl.der", &crl);
    let text = openssl.run(&[
        "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout", "-CAfile", "ca.pem",
    ]);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.contains("No Revoked Certificates"), "{text}");
}
