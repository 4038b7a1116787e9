//! The long-term-validation services judged by openssl: the built-in timestamp authority
//! (`openssl ts -query | POST /tsa | openssl ts -verify`) and the OCSP responder named in every
//! certificate's Authority Information Access (`openssl ocsp -url <AIA URL>`), good, then revoked
//! with its reason after `PUT /signers/{id}`, by POST and by GET.

use base64::Engine;
use serde_json::json;
use std::path::Path;
use std::process::Command;

use crate::helpers::{assert_error, spawn_app, TestApp};
use crate::openssl::{self, device_key, KeyKind};

/// Runs openssl in `dir`; returns (success, stdout + stderr).
fn openssl_in(dir: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI must be installed");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn fetch_text(app: &TestApp, path: &str) -> String {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().await.unwrap()
}

/// A directory with the CA and TSA certificates and a signer enrolled with a P-256 key.
async fn relying_party(app: &TestApp, signer_id: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ca.pem"),
        fetch_text(app, "/ca/ca.pem").await,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tsa.pem"),
        fetch_text(app, "/ca/tsa.pem").await,
    )
    .unwrap();
    let device = device_key(KeyKind::P256, signer_id);
    app.enroll(signer_id, &device.csr_pem).await;
    let details = app.signer(signer_id).await;
    let pem = details["certificate"]["pem"].as_str().unwrap();
    std::fs::write(dir.path().join("signer.pem"), pem).unwrap();
    dir
}

async fn post_bytes(
    app: &TestApp,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn openssl_ts_verifies_a_token_from_the_built_in_tsa() {
    let app = spawn_app().await;
    let dir = relying_party(&app, "ts-signer").await;
    std::fs::write(
        dir.path().join("data.txt"),
        b"a contract that must outlive us",
    )
    .unwrap();
    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "ts",
            "-query",
            "-data",
            "data.txt",
            "-sha256",
            "-cert",
            "-out",
            "query.tsq",
        ],
    );
    assert!(ok, "{text}");

    let query = std::fs::read(dir.path().join("query.tsq")).unwrap();
    let response = post_bytes(&app, "/tsa", "application/timestamp-query", query).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/timestamp-reply"
    );
    std::fs::write(
        dir.path().join("reply.tsr"),
        response.bytes().await.unwrap(),
    )
    .unwrap();

    let (ok, text) = openssl_in(
        dir.path(),
        &[
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
        ],
    );
    assert!(ok && text.contains("Verification: OK"), "{text}");
    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "ts",
            "-verify",
            "-queryfile",
            "query.tsq",
            "-in",
            "reply.tsr",
            "-CAfile",
            "ca.pem",
        ],
    );
    assert!(ok && text.contains("Verification: OK"), "{text}");

    let tsa_text =
        openssl::certificate_text(&std::fs::read_to_string(dir.path().join("tsa.pem")).unwrap());
    assert!(
        tsa_text.contains("X509v3 Extended Key Usage: critical"),
        "{tsa_text}"
    );
    assert!(tsa_text.contains("Time Stamping"), "{tsa_text}");
}

#[tokio::test]
async fn garbage_gets_a_rejection_and_a_wrong_content_type_the_error_body() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let response = post_bytes(
        &app,
        "/tsa",
        "application/timestamp-query",
        b"garbage".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/timestamp-reply"
    );
    std::fs::write(
        dir.path().join("reply.tsr"),
        response.bytes().await.unwrap(),
    )
    .unwrap();
    let (_, text) = openssl_in(dir.path(), &["ts", "-reply", "-in", "reply.tsr", "-text"]);
    assert!(text.contains("Rejected"), "{text}");
    assert!(
        text.contains("the data submitted has the wrong format"),
        "{text}"
    );

    let response = post_bytes(&app, "/tsa", "application/json", b"{}".to_vec()).await;
    let message = assert_error(response, 415, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("application/timestamp-query"), "{message}");
    let response = post_bytes(&app, "/ca/ocsp", "text/plain", b"x".to_vec()).await;
    assert_error(response, 415, "REQUEST_VALIDATION_ERROR").await;
}

#[tokio::test]
async fn every_certificate_names_the_ocsp_responder_and_the_ca_certificate() {
    let app = spawn_app().await;
    let dir = relying_party(&app, "aia-signer").await;
    let text =
        openssl::certificate_text(&std::fs::read_to_string(dir.path().join("signer.pem")).unwrap());
    assert!(
        text.contains(&format!("OCSP - URI:{}/ca/ocsp", app.address)),
        "{text}"
    );
    assert!(
        text.contains(&format!("CA Issuers - URI:{}/ca/ca.der", app.address)),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}/ca/crl.der", app.address)),
        "{text}"
    );

    // The caIssuers URL serves the CA certificate in DER, the same one as ca.pem.
    let der = app
        .client
        .get(app.url("/ca/ca.der"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    std::fs::write(dir.path().join("ca.der"), &der).unwrap();
    let (ok, from_der) = openssl_in(dir.path(), &["x509", "-inform", "DER", "-in", "ca.der"]);
    assert!(ok, "{from_der}");
    let pem = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    assert_eq!(from_der.trim(), pem.trim());
}

/// `openssl ocsp` against the URL the certificate itself names.
fn ask_ocsp(dir: &Path, extra: &[&str]) -> String {
    let (ok, url) = openssl_in(dir, &["x509", "-in", "signer.pem", "-noout", "-ocsp_uri"]);
    assert!(ok, "{url}");
    let url = url.trim().to_owned();
    let mut args = vec!["ocsp", "-issuer", "ca.pem"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-url", &url, "-CAfile", "ca.pem"]);
    let (ok, text) = openssl_in(dir, &args);
    assert!(ok, "{text}");
    text
}

// openssl's HTTP client blocks this thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ocsp_responder_says_good_then_revoked_with_the_reason() {
    let app = spawn_app().await;
    let dir = relying_party(&app, "ocsp-signer").await;

    let text = ask_ocsp(dir.path(), &["-cert", "signer.pem"]);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("signer.pem: good"), "{text}");
    let text = ask_ocsp(dir.path(), &["-sha256", "-cert", "signer.pem"]);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("signer.pem: good"), "{text}");

    let response = app
        .put_json(
            "/signers/ocsp-signer",
            &json!({"signerStatus": "REVOKED", "revocationReason": "keyCompromise"}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let text = ask_ocsp(dir.path(), &["-cert", "signer.pem"]);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("signer.pem: revoked"), "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("Revocation Time:"), "{text}");
}

#[tokio::test]
async fn the_get_form_answers_like_the_post_form() {
    let app = spawn_app().await;
    let dir = relying_party(&app, "get-signer").await;
    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "signer.pem",
            "-no_nonce",
            "-reqout",
            "req.der",
        ],
    );
    assert!(ok, "{text}");
    let request = std::fs::read(dir.path().join("req.der")).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&request);
    // RFC 6960 A.1: base64, then URL-encoded.
    let path_part: String = encoded
        .chars()
        .map(|c| match c {
            '+' => "%2B".to_owned(),
            '/' => "%2F".to_owned(),
            '=' => "%3D".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let response = app
        .client
        .get(app.url(&format!("/ca/ocsp/{path_part}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/ocsp-response"
    );
    std::fs::write(dir.path().join("resp.der"), response.bytes().await.unwrap()).unwrap();
    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "ocsp",
            "-reqin",
            "req.der",
            "-respin",
            "resp.der",
            "-CAfile",
            "ca.pem",
            "-resp_text",
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("Cert Status: good"), "{text}");

    // Not base64 at all: a malformedRequest answer, still an OCSP response.
    let response = app
        .client
        .get(app.url("/ca/ocsp/%%%not-base64"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert!(status == 200 || status == 400, "{status}");
    if status == 200 {
        assert_eq!(body.as_ref(), [0x30, 0x03, 0x0A, 0x01, 0x01]);
    }

    // The fuzzer's length bomb (an `Any` declaring 256 MiB in a 267-byte request): refused as
    // malformed from its headers alone, before anything is allocated for it; and a requestor named
    // by 400 attributes in reverse order, which the decoder's sort of a SET would spend quadratic
    // time on: refused by counting, never sorted.
    for bomb in [
        &include_bytes!("../../../../fuzz/regressions/ocsp_request/oom-any-declares-256-mib")[..],
        &include_bytes!(
            "../../../../fuzz/regressions/ocsp_request/slow-rdn-of-400-attributes-in-reverse"
        )[..],
    ] {
        let response = app
            .client
            .post(app.url("/ca/ocsp"))
            .header("content-type", "application/ocsp-request")
            .body(bomb.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.bytes().await.unwrap().as_ref(),
            [0x30, 0x03, 0x0A, 0x01, 0x01]
        );
    }
}

// openssl's HTTP client blocks this thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_serial_is_unknown_and_another_ca_is_unauthorized() {
    let app = spawn_app().await;
    let dir = relying_party(&app, "unknown-signer").await;
    let text = ask_ocsp(dir.path(), &["-serial", "0x1234"]);
    assert!(text.contains("0x1234: unknown"), "{text}");
    assert!(text.contains("Response verify OK"), "{text}");

    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "other.key",
            "-subj",
            "/CN=Another CA",
            "-out",
            "other.pem",
        ],
    );
    assert!(ok, "{text}");
    let (_, text) = openssl_in(
        dir.path(),
        &[
            "ocsp",
            "-issuer",
            "other.pem",
            "-serial",
            "1",
            "-url",
            &app.url("/ca/ocsp"),
        ],
    );
    assert!(text.contains("unauthorized"), "{text}");

    let response = post_bytes(
        &app,
        "/ca/ocsp",
        "application/ocsp-request",
        b"junk".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.unwrap().as_ref(),
        [0x30, 0x03, 0x0A, 0x01, 0x01]
    );
}

#[tokio::test]
async fn the_service_keys_are_private_and_kept_across_restarts() {
    let app = spawn_app().await;
    let first = fetch_text(&app, "/ca/tsa.pem").await;
    for name in ["tsa.key", "ocsp.key"] {
        let path = app.data_dir.path().join("ca").join(name);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} must be private");
        }
        #[cfg(not(unix))]
        assert!(path.exists());
    }
    let (data_dir, url, clock) = app.stop().await;
    let app = crate::helpers::start(data_dir, url, clock).await;
    assert_eq!(fetch_text(&app, "/ca/tsa.pem").await, first);
}
