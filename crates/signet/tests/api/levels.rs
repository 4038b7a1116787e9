//! PAdES levels through the server, judged offline: documents signed by an order's signers (and
//! through the CloudSigner API) at B-LT and B-LTA are called VALID by pyHanko's AdES validation
//! with the Signet server stopped, so nothing can be fetched; INTACT:TRUSTED with only acceptable
//! changes by `pyhanko sign validate`; valid for pdfsig. A timestamp authority that is down
//! fails the signature with TIMESTAMP_UNAVAILABLE and changes nothing; once it is back the same
//! signer signs.

use std::path::{Path, PathBuf};

use signet::config::Settings;
use signet::domain::{OrderId, SignatureLevel};

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::orders::person;
use crate::tsa_client::{openssl_tsa_pki, OpensslTsa};

/// Starts signet on `db` with `adjust` applied to the settings; `None` without that database.
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

/// `pyhanko sign adesverify --executive-summary`: one `field:fingerprint:VERDICT` line per
/// signature (document timestamps are judged as part of the signatures they protect).
fn adesverify(pdf: &Path, ca_pem: &Path) -> String {
    let out = std::process::Command::new(signet_testkit::venv().join("bin/pyhanko"))
        .arg("sign")
        .arg("adesverify")
        .arg("--executive-summary")
        .arg("--trust")
        .arg(ca_pem)
        .arg("--trust-replace")
        .arg(pdf)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// pyHanko's AdES verdict on each of `count` signatures is VALID.
pub fn assert_ades_valid(pdf: &Path, ca_pem: &Path, count: usize) {
    let report = adesverify(pdf, ca_pem);
    let verdicts: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("Signature") && l.matches(':').count() == 2)
        .collect();
    assert_eq!(verdicts.len(), count, "adesverify {}:\n{report}", pdf.display());
    assert!(
        verdicts.iter().all(|l| l.ends_with(":VALID")),
        "adesverify {}:\n{report}",
        pdf.display()
    );
}

/// pdfsig calls each of `count` CMS signatures valid and none invalid (it cannot check document
/// timestamps, and the `/DSS` revisions after the last signature are not "signed").
pub fn assert_pdfsig_valid(pdf: &Path, count: usize) {
    let report = signet_testkit::pdfsig_report(pdf);
    assert_eq!(
        report
            .matches("Signature Validation: Signature is Valid.")
            .count(),
        count,
        "pdfsig on {}:\n{report}",
        pdf.display()
    );
    assert!(!report.contains("Signature is Invalid"), "{report}");
}

/// Every outside judge on a long-term file with `signatures` CMS signatures, with the server
/// that made it already stopped.
pub fn assert_long_term_valid(pdf: &Path, ca_pem: &Path, signatures: usize, timestamps: usize) {
    let bytes = std::fs::read(pdf).unwrap();
    let count = |needle: &[u8]| bytes.windows(needle.len()).filter(|w| *w == needle).count();
    assert_eq!(count(b"/Type /DocTimeStamp"), timestamps, "document timestamps");
    assert!(count(b"/DSS") >= 1, "a /DSS");
    signet_testkit::assert_pyhanko_accepts(pdf, ca_pem, signatures, &[]);
    assert_ades_valid(pdf, ca_pem, signatures);
    assert_pdfsig_valid(pdf, signatures);
    signet_testkit::assert_qpdf_clean(pdf, false);
}

/// Three signers sign an order at `level`; returns the signed document and the CA's PEM, written
/// to `dir`, after the server has been stopped.
async fn three_signers_at(db: Db, level: SignatureLevel, dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let app = spawn_with(db, |s| s.signature_level = level).await?;
    let id = app
        .create_order(&[
            person("INTERNAL", "sAMAccountName=cborgstrom", None),
            person("EXTERNAL", "200001011907", None),
            person("INTERNAL", "jdoe", None),
        ])
        .await;
    for index in 0..3 {
        app.sign_as(&id, index).await.unwrap();
    }
    assert_eq!(app.order_state(&id).await, "ACCEPTED");
    let signed = write(dir, "signed.pdf", &app.order_document(&id).await);
    let ca = write(dir, "ca.pem", app.state.pki.ca().certificate_pem().as_bytes());
    app.stop().await;
    Some((signed, ca))
}

#[tokio::test]
async fn an_order_signed_by_three_at_b_lt_validates_offline_with_the_server_stopped() {
    for db in [Db::Sqlite, Db::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let Some((signed, ca)) = three_signers_at(db, SignatureLevel::PadesBLT, dir.path()).await
        else {
            continue;
        };
        assert_long_term_valid(&signed, &ca, 3, 0);
    }
}

#[tokio::test]
async fn an_order_signed_by_three_at_b_lta_validates_offline_with_the_server_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, ca) = three_signers_at(Db::Sqlite, SignatureLevel::PadesBLTA, dir.path())
        .await
        .unwrap();
    // Each signer's revision ends with its own document timestamp.
    assert_long_term_valid(&signed, &ca, 3, 3);
}

#[tokio::test]
async fn the_ocsp_responder_knows_an_order_signatures_certificate() {
    let app = spawn_with(Db::Sqlite, |s| s.signature_level = SignatureLevel::PadesBB)
        .await
        .unwrap();
    let id = app
        .create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
        .await;
    app.sign_as(&id, 0).await.unwrap();
    let signed = app.order_document(&id).await;
    let (_, cms) = signet_testkit::signatures_in(&signed).pop().unwrap();
    let certificates = signet_crypto::cms::certificates(&cms).unwrap();
    let ca_der = app.state.pki.ca().certificate_der().to_vec();
    let signer = certificates.iter().find(|c| **c != ca_der).unwrap();
    // Asked over HTTP like any relying party: "good", not "unknown".
    let request = signet_crypto::ocsp::OcspRequest::for_certificate(signer, &ca_der)
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
    let dir = tempfile::tempdir().unwrap();
    let der = write(dir.path(), "response.der", &response.bytes().await.unwrap());
    let text = signet_testkit::run_ok(
        "openssl",
        &[
            std::ffi::OsStr::new("ocsp"),
            "-respin".as_ref(),
            der.as_os_str(),
            "-resp_text".as_ref(),
            "-noverify".as_ref(),
        ],
    );
    assert!(text.contains("Cert Status: good"), "{text}");
}

#[tokio::test]
async fn a_tsa_that_is_down_leaves_the_order_unchanged_and_it_signs_once_the_tsa_is_back() {
    let tsa = OpensslTsa::start().await;
    let port = tsa.port;
    let url = tsa.url("/tsr");
    drop(tsa);
    let root = openssl_tsa_pki().join("root.pem");
    let app = spawn_with(Db::Sqlite, |s| {
        s.signature_level = SignatureLevel::PadesBLT;
        s.tsa.url = Some(url.clone());
        s.tsa.ca = Some(root.clone());
        s.tsa.timeout_seconds = 5;
    })
    .await
    .unwrap();
    let id = app
        .create_order(&[
            person("INTERNAL", "sAMAccountName=cborgstrom", None),
            person("INTERNAL", "jdoe", None),
        ])
        .await;
    let order = app.order(&id).await;
    let internal_id = order["signers"][0]["internalId"].as_str().unwrap().to_owned();
    let error = app
        .state
        .orders
        .sign_as(OrderId::parse(&id).unwrap(), &internal_id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            signet::services::orders::OrderError::TimestampUnavailable(_)
        ),
        "{error:?}"
    );
    // The API's answer for it: 503 with the error body and code TIMESTAMP_UNAVAILABLE.
    let body = signet::api::cloudsigner::error::ApiError::from(error);
    let response = axum::response::IntoResponse::into_response(body);
    assert_eq!(response.status(), 503);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["responseObject"]["code"], "TIMESTAMP_UNAVAILABLE", "{body}");

    let order = app.order(&id).await;
    assert_eq!(order["signers"][0]["status"], "PENDING");
    assert_eq!(order["document"]["signatures"], 0);
    assert_eq!(app.order_state(&id).await, "PENDING");

    let _back = OpensslTsa::start_on(port).await;
    app.sign_as(&id, 0).await.unwrap();
    let order = app.order(&id).await;
    assert_eq!(order["signers"][0]["status"], "SIGNED");
    assert_eq!(order["document"]["signatures"], 1);
}
