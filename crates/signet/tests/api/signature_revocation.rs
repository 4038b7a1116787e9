//! Revocation of order-signature certificates and the revocation data of an external TSA's
//! chain, judged by tools we did not write:
//! - `signet order revoke-signature` (the binary, beside the running server): `openssl ocsp`
//!   against the URL in the certificate says good, then revoked with the reason; `openssl crl`
//!   lists the serial in `GET /ca/crl.der`; the B-LT document signed before still validates in
//!   pyHanko's AdES check with the server stopped. On SQLite and PostgreSQL.
//! - A second Signet as the external TSA: its TSA certificate's chain and revocation data are in
//!   the `/DSS`, so the document validates with both servers stopped.
//! - The `openssl ts -reply` TSA, whose certificate names no OCSP responder and no CRL: B-LT
//!   cannot be proven, so it is refused with 503 TIMESTAMP_UNAVAILABLE; B-T still works.

use std::path::{Path, PathBuf};
use std::process::Command;

use signet::config::Settings;
use signet::domain::SignatureLevel;

use crate::helpers::{assert_error, database_url_for, start_with, Db, TestApp};
use crate::levels::{assert_long_term_valid, document_status, enrolled, post_signature, upload};
use crate::openssl::KeyKind;
use crate::orders::person;
use crate::tsa_client::{openssl_tsa_pki, OpensslTsa};

const SIGNET: &str = env!("CARGO_BIN_EXE_signet");

async fn spawn_with(db: Db, adjust: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = std::sync::Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    Some(start_with(data_dir, database_url, clock, adjust).await)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

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

/// `openssl ocsp` about `sig.pem` at the OCSP URL the certificate itself names.
fn ask_ocsp(dir: &Path) -> String {
    let (ok, url) = openssl_in(dir, &["x509", "-in", "sig.pem", "-noout", "-ocsp_uri"]);
    assert!(ok, "{url}");
    let (ok, text) = openssl_in(
        dir,
        &[
            "ocsp",
            "-issuer",
            "ca.pem",
            "-cert",
            "sig.pem",
            "-url",
            url.trim(),
            "-CAfile",
            "ca.pem",
        ],
    );
    assert!(ok, "{text}");
    text
}

/// The operator command against the app's data directory and database, awaited (blocking the
/// runtime the in-process server shares could freeze one of its SQLite writes half-way).
async fn revoke_signature(
    app: &TestApp,
    order_id: &str,
    internal_id: &str,
    reason: &str,
) -> (bool, String) {
    let output = tokio::process::Command::new(SIGNET)
        .args([
            "order",
            "revoke-signature",
            order_id,
            internal_id,
            "--reason",
            reason,
        ])
        .arg("--data-dir")
        .arg(app.data_dir.path())
        .arg("--database-url")
        .arg(&app.database_url)
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// One signer signs an order at B-LT; returns the order id, the signer's internal id and a
/// directory with `signed.pdf`, `ca.pem` and the signature's certificate `sig.pem`.
async fn signed_order(app: &TestApp) -> (String, String, tempfile::TempDir) {
    let id = app
        .create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
        .await;
    app.sign_as(&id, 0).await.unwrap();
    let internal_id = app.order(&id).await["signers"][0]["internalId"]
        .as_str()
        .unwrap()
        .to_owned();
    let signed = app.order_document(&id).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "signed.pdf", &signed);
    let ca_der = app.state.pki.ca().certificate_der().to_vec();
    write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let (_, cms) = signet_testkit::signatures_in(&signed).pop().unwrap();
    let certificate = signet_crypto::cms::certificates(&cms)
        .unwrap()
        .into_iter()
        .find(|c| *c != ca_der)
        .unwrap();
    write(
        dir.path(),
        "sig.pem",
        signet_crypto::ca::certificate_pem_from_der(&certificate).as_bytes(),
    );
    (id, internal_id, dir)
}

async fn an_order_signature_is_revoked_and_the_crl_and_ocsp_say_so(db: Db) {
    let Some(app) = spawn_with(db, |s| s.signature_level = SignatureLevel::PadesBLT).await else {
        return;
    };
    let (order_id, internal_id, dir) = signed_order(&app).await;
    let dir = dir.path();

    let text = ask_ocsp(dir);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("sig.pem: good"), "{text}");

    let (ok, out) = revoke_signature(&app, &order_id, &internal_id, "keyCompromise").await;
    assert!(ok, "{out}");
    assert!(
        out.contains(" revoked at ") && out.contains("(keyCompromise)"),
        "{out}"
    );

    let text = ask_ocsp(dir);
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(text.contains("sig.pem: revoked"), "{text}");
    assert!(text.contains("Reason: keyCompromise"), "{text}");
    assert!(text.contains("Revocation Time:"), "{text}");

    // The published CRL lists it, with the reason.
    let crl = app.get("/ca/crl.der").await.bytes().await.unwrap();
    write(dir, "crl.der", &crl);
    let (ok, crl_text) = openssl_in(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-text", "-noout", "-CAfile", "ca.pem",
        ],
    );
    assert!(ok && crl_text.contains("verify OK"), "{crl_text}");
    let (ok, serial) = openssl_in(dir, &["x509", "-in", "sig.pem", "-noout", "-serial"]);
    assert!(ok, "{serial}");
    let serial = serial.trim().trim_start_matches("serial=").to_owned();
    assert!(
        crl_text.contains(&format!("Serial Number: {serial}")),
        "{serial}\n{crl_text}"
    );
    assert!(crl_text.contains("Key Compromise"), "{crl_text}");

    // Again: nothing changes, and it says so. An unknown signer or order is an error.
    let (ok, out) = revoke_signature(&app, &order_id, &internal_id, "superseded").await;
    assert!(
        ok && out.contains("already revoked") && out.contains("(keyCompromise)"),
        "{out}"
    );
    let (ok, out) = revoke_signature(&app, &order_id, "no-such-signer", "keyCompromise").await;
    assert!(!ok && out.contains("has no signer"), "{out}");
    let (ok, out) = revoke_signature(&app, &order_id, &internal_id, "noSuchReason").await;
    assert!(!ok && out.contains("revocation reason"), "{out}");

    // The document signed before the revocation still proves it: offline, server stopped.
    app.stop().await;
    assert_long_term_valid(&dir.join("signed.pdf"), &dir.join("ca.pem"), 1, 0);
}

// openssl's HTTP client and the CLI block this thread while the server answers on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_signature_is_revoked_and_the_crl_and_ocsp_say_so_on_sqlite() {
    an_order_signature_is_revoked_and_the_crl_and_ocsp_say_so(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_signature_is_revoked_and_the_crl_and_ocsp_say_so_on_postgres() {
    an_order_signature_is_revoked_and_the_crl_and_ocsp_say_so(Db::Postgres).await;
}

#[tokio::test]
async fn the_policy_of_signets_tsa_is_its_uuid_oid() {
    let app = spawn_with(Db::Sqlite, |s| s.signature_level = SignatureLevel::PadesBT)
        .await
        .unwrap();
    let (_, _, dir) = signed_order(&app).await;
    let signed = std::fs::read(dir.path().join("signed.pdf")).unwrap();
    let (_, cms) = signet_testkit::signatures_in(&signed).pop().unwrap();
    let token = signet_crypto::cms::signature_timestamp_tokens(&cms)
        .unwrap()
        .pop()
        .unwrap();
    let token = write(dir.path(), "token.der", &token);
    let (ok, text) = openssl_in(
        dir.path(),
        &[
            "ts",
            "-reply",
            "-in",
            token.to_str().unwrap(),
            "-token_in",
            "-text",
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("Policy OID: {}", signet::pki::TSA_POLICY_OID)),
        "{text}"
    );
    assert!(signet::pki::TSA_POLICY_OID.starts_with("2.25."));
}

/// A Signet whose TSA is another Signet's (trusting that one's CA), at `level`.
async fn stamped_by(other: &TestApp, level: SignatureLevel, dir: &Path) -> TestApp {
    let other_ca = write(
        dir,
        "tsa-ca.pem",
        other.state.pki.ca().certificate_pem().as_bytes(),
    );
    let url = other.url("/tsa");
    spawn_with(Db::Sqlite, move |s| {
        s.signature_level = level;
        s.tsa.url = Some(url);
        s.tsa.ca = Some(other_ca);
        s.tsa.timeout_seconds = 5;
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_tsa_that_is_another_signet_gets_its_chain_proven_and_validates_offline() {
    let other = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (level, timestamps) in [
        (SignatureLevel::PadesBLT, 0),
        (SignatureLevel::PadesBLTA, 1),
    ] {
        let app = stamped_by(&other, level, work.path()).await;
        let (_, _, dir) = signed_order(&app).await;
        // Both CAs, for pyHanko's trust: Signet's signs the signature, the other's the timestamps.
        let trust = [
            app.state.pki.ca().certificate_pem(),
            other.state.pki.ca().certificate_pem(),
        ]
        .concat();
        write(dir.path(), "trust.pem", trust.as_bytes());
        app.stop().await;
        files.push((dir, timestamps));
    }
    other.stop().await;
    for (dir, timestamps) in files {
        let signed = dir.path().join("signed.pdf");
        assert_long_term_valid(&signed, &dir.path().join("trust.pem"), 1, timestamps);
    }
}

#[tokio::test]
async fn a_tsa_whose_certificate_names_no_revocation_source_cannot_give_b_lt_and_says_so() {
    let tsa = OpensslTsa::start().await;
    let root = openssl_tsa_pki().join("root.pem");
    let url = tsa.url("/tsr");
    let app = spawn_with(Db::Sqlite, |s| {
        s.tsa.url = Some(url);
        s.tsa.ca = Some(root);
        s.tsa.timeout_seconds = 5;
    })
    .await
    .unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (document_id, hash) = upload(&app, &device).await;
    for level in [None, Some("PADES_B_LT"), Some("PADES_B_LTA")] {
        let response = post_signature(&app, &device, &document_id, &hash, level).await;
        assert_error(response, 503, "TIMESTAMP_UNAVAILABLE").await;
        assert_eq!(document_status(&app, &document_id).await, "WAITING");
    }
    // B-T needs no revocation data: the same TSA serves it.
    let response = post_signature(&app, &device, &document_id, &hash, Some("PADES_B_T")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(document_status(&app, &document_id).await, "SIGNED");
}

/// Asks `app`'s responder over HTTP about `certificate_der`; openssl's reading of the answer
/// (signature not checked: the manual clock is years ahead of openssl's).
async fn status_text(app: &TestApp, certificate_der: &[u8], dir: &Path) -> String {
    let ca_der = app.state.pki.ca().certificate_der().to_vec();
    let request = signet_crypto::ocsp::OcspRequest::for_certificate(certificate_der, &ca_der)
        .unwrap()
        .to_der()
        .unwrap();
    let response = app
        .client
        .post(app.url("/ca/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let der = write(dir, "response.der", &response.bytes().await.unwrap());
    let (ok, text) = openssl_in(
        dir,
        &[
            "ocsp",
            "-respin",
            der.to_str().unwrap(),
            "-resp_text",
            "-noverify",
        ],
    );
    assert!(ok, "{text}");
    text
}

#[tokio::test]
async fn a_replaced_tsa_certificate_stays_known_to_the_responder() {
    let app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let old_pem = app.get("/ca/tsa.pem").await.text().await.unwrap();
    let old = signet_crypto::ca::der_from_pem(&old_pem, "CERTIFICATE")
        .unwrap()
        .to_vec();
    let (data_dir, url, clock) = app.stop().await;
    // Past the service certificates' renewal point (three years, less 90 days): a restart
    // replaces them.
    clock.advance(time::Duration::days(365 * 3));
    let app = crate::helpers::start(data_dir, url, clock).await;
    let new_pem = app.get("/ca/tsa.pem").await.text().await.unwrap();
    assert_ne!(new_pem, old_pem, "the TSA certificate was replaced");
    let dir = tempfile::tempdir().unwrap();
    let text = status_text(&app, &old, dir.path()).await;
    assert!(text.contains("Cert Status: good"), "{text}");
    let new = signet_crypto::ca::der_from_pem(&new_pem, "CERTIFICATE")
        .unwrap()
        .to_vec();
    let text = status_text(&app, &new, dir.path()).await;
    assert!(text.contains("Cert Status: good"), "{text}");
}
