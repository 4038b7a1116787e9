//! Requests made by `openssl req` are accepted or refused by `CertificationRequest::parse`.

use std::time::Instant;

use base64::Engine;
use signet_crypto::csr::{CertificationRequest, CsrError, KeyAlgorithm, PublicKey};

use crate::support::Openssl;

fn der_of(pem: &str) -> Vec<u8> {
    pem::parse(pem).unwrap().into_contents()
}

fn base64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

fn refusal(input: &str) -> String {
    match CertificationRequest::parse(input) {
        Err(CsrError::KeyRefused(message)) => message,
        other => panic!("expected KeyRefused, got {other:?}"),
    }
}

fn malformed(input: &str) -> String {
    match CertificationRequest::parse(input) {
        Err(CsrError::Malformed(message)) => message,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn a_p256_request_is_accepted_with_its_subject_and_key() {
    let openssl = Openssl::new();
    let pem = openssl.p256_csr("alice");

    let request = CertificationRequest::parse(&pem).unwrap();

    assert_eq!(request.common_name(), Some("Alice Andersson"));
    assert_eq!(request.public_key().algorithm(), KeyAlgorithm::EcdsaP256);
    let spki = der_of(&openssl.run(&["req", "-in", "alice.csr", "-noout", "-pubkey"]));
    assert_eq!(request.public_key().spki_der(), spki.as_slice());
    assert_eq!(
        request.subject().to_string(),
        "CN=Alice Andersson, O=Example AB, C=SE"
    );
}

#[test]
fn p384_requests_are_accepted_whatever_the_digest() {
    let openssl = Openssl::new();
    for (name, digest) in [
        ("default", None),
        ("sha256", Some("-sha256")),
        ("sha384", Some("-sha384")),
    ] {
        let extra: Vec<&str> = digest.into_iter().collect();
        let pem = openssl.new_csr(
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "/CN=Bob",
            &extra,
        );
        let request = CertificationRequest::parse(&pem).unwrap();
        assert_eq!(
            request.public_key().algorithm(),
            KeyAlgorithm::EcdsaP384,
            "{name}"
        );
    }
}

#[test]
fn an_rsa_2048_request_is_accepted() {
    let openssl = Openssl::new();
    let pem = openssl.new_csr("rsa", &["-newkey", "rsa:2048"], "/CN=Carol", &[]);

    let request = CertificationRequest::parse(&pem).unwrap();

    assert_eq!(
        request.public_key().algorithm(),
        KeyAlgorithm::Rsa { bits: 2048 }
    );
    let spki = der_of(&openssl.run(&["req", "-in", "rsa.csr", "-noout", "-pubkey"]));
    assert_eq!(request.public_key().spki_der(), spki.as_slice());
}

#[test]
fn an_rsa_1024_request_is_refused_with_its_size() {
    let openssl = Openssl::new();
    let pem = openssl.new_csr("rsa", &["-newkey", "rsa:1024"], "/CN=Carol", &[]);

    let message = refusal(&pem);

    assert!(
        message.contains("at least 2048 bits; this one has 1024"),
        "{message}"
    );
}

#[test]
fn an_ed25519_request_is_refused() {
    let openssl = Openssl::new();
    let pem = openssl.new_csr("ed", &["-newkey", "ed25519"], "/CN=Dave", &[]);

    let message = refusal(&pem);

    assert!(
        message.contains("Ed25519 keys are not supported"),
        "{message}"
    );
    assert!(message.contains("P-256"), "{message}");
}

#[test]
fn a_dsa_request_is_refused() {
    let openssl = Openssl::new();
    openssl.run(&[
        "genpkey",
        "-genparam",
        "-algorithm",
        "DSA",
        "-pkeyopt",
        "dsa_paramgen_bits:2048",
        "-out",
        "dsa.param",
    ]);
    openssl.run(&["genpkey", "-paramfile", "dsa.param", "-out", "dsa.key"]);
    openssl.run(&[
        "req", "-new", "-key", "dsa.key", "-subj", "/CN=Eve", "-out", "dsa.csr",
    ]);

    let message = refusal(&openssl.read("dsa.csr"));

    assert!(message.contains("DSA keys are not supported"), "{message}");
}

#[test]
fn requests_on_other_curves_are_refused() {
    let openssl = Openssl::new();
    for (curve, expected) in [("P-521", "P-521"), ("secp256k1", "secp256k1")] {
        let pem = openssl.new_csr(
            curve,
            &[
                "-newkey",
                "ec",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
            "/CN=Frank",
            &[],
        );
        let message = refusal(&pem);
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn a_request_carrying_extensions_is_accepted() {
    let openssl = Openssl::new();
    let pem = openssl.new_csr(
        "ext",
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "/CN=Grace",
        &[
            "-addext",
            "subjectAltName=email:a@b.c",
            "-addext",
            "keyUsage=critical,digitalSignature,nonRepudiation",
            "-addext",
            "extendedKeyUsage=emailProtection,clientAuth",
        ],
    );

    let request = CertificationRequest::parse(&pem).unwrap();

    assert_eq!(request.common_name(), Some("Grace"));
}

#[test]
fn a_tampered_signature_is_a_bad_signature() {
    let openssl = Openssl::new();
    let mut der = der_of(&openssl.p256_csr("alice"));
    // The signature BIT STRING ends the request; its last byte is the end of ECDSA's `s`.
    let last = der.len() - 1;
    der[last] ^= 0x01;

    let result = CertificationRequest::parse(&base64(&der));

    assert!(matches!(result, Err(CsrError::BadSignature)), "{result:?}");
}

#[test]
fn a_tampered_subject_is_a_bad_signature() {
    let openssl = Openssl::new();
    let der = der_of(&openssl.p256_csr("alice"));
    let at = der.windows(5).position(|w| w == b"Alice").unwrap();
    let mut tampered = der.clone();
    tampered[at] = b'M';

    let result = CertificationRequest::parse(&base64(&tampered));

    assert!(matches!(result, Err(CsrError::BadSignature)), "{result:?}");
}

#[test]
fn crlf_surrounding_whitespace_and_the_new_label_are_tolerated() {
    let openssl = Openssl::new();
    let pem = openssl.p256_csr("alice");
    let crlf = format!("\r\n  \t{}\r\n\r\n", pem.replace('\n', "\r\n"));
    let relabelled = pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST");

    let expected = CertificationRequest::parse(&pem).unwrap();
    assert_eq!(CertificationRequest::parse(&crlf).unwrap(), expected);
    assert_eq!(CertificationRequest::parse(&relabelled).unwrap(), expected);
}

#[test]
fn bare_base64_with_line_breaks_is_accepted() {
    let openssl = Openssl::new();
    let pem = openssl.p256_csr("alice");
    let text = base64(&der_of(&pem));
    let wrapped: Vec<String> = text
        .as_bytes()
        .chunks(40)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();

    let request = CertificationRequest::parse(&format!("\n{}\n", wrapped.join("\r\n"))).unwrap();

    assert_eq!(request, CertificationRequest::parse(&pem).unwrap());
}

#[test]
fn a_certificate_instead_of_a_request_is_malformed_and_says_so() {
    let openssl = Openssl::new();
    openssl.run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "c.key",
        "-out",
        "c.pem",
        "-subj",
        "/CN=Not a CSR",
        "-days",
        "1",
    ]);
    let pem = openssl.read("c.pem");

    let from_pem = malformed(&pem);
    let from_base64 = malformed(&base64(&der_of(&pem)));

    assert!(from_pem.contains("certificate"), "{from_pem}");
    assert!(from_base64.contains("X.509 certificate"), "{from_base64}");
}

#[test]
fn trailing_garbage_is_malformed() {
    let openssl = Openssl::new();
    let pem = openssl.p256_csr("alice");
    let mut der = der_of(&pem);
    der.extend_from_slice(b"junk");

    malformed(&base64(&der));
    malformed(&format!("{pem}trailing text"));
}

#[test]
fn random_base64_empty_and_huge_inputs_are_refused_quickly() {
    let random: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    malformed(&base64(&random));
    malformed("this is not base64 at all!");
    assert!(matches!(
        CertificationRequest::parse(""),
        Err(CsrError::Empty)
    ));
    assert!(matches!(
        CertificationRequest::parse("\n \r\n"),
        Err(CsrError::Empty)
    ));

    let huge = "QUJD\n".repeat(1024 * 1024 / 5);
    let started = Instant::now();
    malformed(&huge);
    assert!(
        started.elapsed().as_millis() < 200,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn multi_valued_rdns_and_repeated_attributes_are_refused() {
    let openssl = Openssl::new();
    let p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
    let multi = openssl.new_csr(
        "multi",
        &p256,
        "/CN=Heidi+serialNumber=42",
        &["-multivalue-rdn"],
    );
    let repeated = openssl.new_csr("repeated", &p256, "/OU=One/OU=Two/CN=Heidi", &[]);

    assert!(malformed(&multi).contains("multi-valued"));
    assert!(malformed(&repeated).contains("repeats"));
}

#[test]
fn public_key_from_spki_applies_the_same_policy() {
    let openssl = Openssl::new();
    openssl.run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        "small.key",
    ]);
    openssl.run(&["pkey", "-in", "small.key", "-pubout", "-out", "small.pub"]);
    openssl.run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-out",
        "p384.key",
    ]);
    openssl.run(&["pkey", "-in", "p384.key", "-pubout", "-out", "p384.pub"]);

    let small = PublicKey::from_spki_der(&der_of(&openssl.read("small.pub")));
    let p384 = PublicKey::from_spki_der(&der_of(&openssl.read("p384.pub"))).unwrap();

    assert!(matches!(small, Err(CsrError::KeyRefused(_))), "{small:?}");
    assert_eq!(p384.algorithm(), KeyAlgorithm::EcdsaP384);
    assert_eq!(
        p384.spki_der(),
        der_of(&openssl.read("p384.pub")).as_slice()
    );
}
