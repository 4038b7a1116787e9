//! PAdES levels through the server, judged offline: documents signed by an order's signers (and
//! through the CloudSigner API) at B-LT and B-LTA are called VALID by pyHanko's AdES validation
//! with the Signet server stopped, so nothing can be fetched; INTACT:TRUSTED with only acceptable
//! changes by `pyhanko sign validate`; valid for pdfsig. A timestamp authority that is down
//! fails the signature with TIMESTAMP_UNAVAILABLE and changes nothing; once it is back the same
//! signer signs.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use signet::config::Settings;
use signet::domain::{OrderId, SignatureLevel};
use signet_testkit::pdfs::classic_pdf;

use crate::helpers::{assert_error, database_url_for, start_with, Db, Storage, TestApp};
use crate::openssl::{self, device_key, DeviceKey, KeyKind};
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

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `pyhanko sign adesverify --executive-summary`: one `field:fingerprint:VERDICT` line per
/// signature (document timestamps are judged as part of the signatures they protect).
pub fn adesverify(pdf: &Path, ca_pem: &Path) -> String {
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
    assert_eq!(
        verdicts.len(),
        count,
        "adesverify {}:\n{report}",
        pdf.display()
    );
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
    assert_eq!(
        count(b"/Type /DocTimeStamp"),
        timestamps,
        "document timestamps"
    );
    assert!(count(b"/DSS") >= 1, "a /DSS");
    signet_testkit::assert_pyhanko_accepts(pdf, ca_pem, signatures, &[]);
    assert_ades_valid(pdf, ca_pem, signatures);
    assert_pdfsig_valid(pdf, signatures);
    signet_testkit::assert_qpdf_clean(pdf, false);
}

/// Three signers sign an order at `level`; returns the signed document and the CA's PEM, written
/// to `dir`, after the server has been stopped.
pub(crate) async fn three_signers_at(
    db: Db,
    storage: Storage<'_>,
    level: SignatureLevel,
    dir: &Path,
) -> Option<(PathBuf, PathBuf)> {
    let app = spawn_with(db, |s| {
        s.signature_level = level;
        storage.apply(s);
    })
    .await?;
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
    let ca = write(
        dir,
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    app.stop().await;
    Some((signed, ca))
}

#[tokio::test]
async fn an_order_signed_by_three_at_b_lt_validates_offline_with_the_server_stopped() {
    for db in [Db::Sqlite, Db::Postgres] {
        let dir = tempfile::tempdir().unwrap();
        let Some((signed, ca)) =
            three_signers_at(db, Storage::Files, SignatureLevel::PadesBLT, dir.path()).await
        else {
            continue;
        };
        assert_long_term_valid(&signed, &ca, 3, 0);
    }
}

#[tokio::test]
async fn an_order_signed_by_three_at_b_lta_validates_offline_with_the_server_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (signed, ca) = three_signers_at(
        Db::Sqlite,
        Storage::Files,
        SignatureLevel::PadesBLTA,
        dir.path(),
    )
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
    // B-T: this TSA's certificate names no OCSP responder and no CRL, so B-LT with it is
    // refused (signature_revocation.rs); B-T is what it can give.
    let app = spawn_with(Db::Sqlite, |s| {
        s.signature_level = SignatureLevel::PadesBT;
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
    let internal_id = order["signers"][0]["internalId"]
        .as_str()
        .unwrap()
        .to_owned();
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
    assert_eq!(
        body["responseObject"]["code"], "TIMESTAMP_UNAVAILABLE",
        "{body}"
    );

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

// ---- The CloudSigner flow: openssl as the device ----

/// An enrolled device (its key is the test's, as a phone's would be).
pub struct Device {
    key: DeviceKey,
    signer_id: String,
}

pub async fn enrolled(app: &TestApp, signer_id: &str, kind: KeyKind) -> Device {
    let key = device_key(kind, signer_id);
    app.enroll(signer_id, &key.csr_pem).await;
    Device {
        key,
        signer_id: signer_id.to_owned(),
    }
}

/// Posts a two-page PDF for the device's signer; the answer as it came.
pub async fn upload_response(app: &TestApp, device: &Device) -> reqwest::Response {
    let form = Form::new().text("signerId", device.signer_id.clone()).part(
        "file",
        Part::bytes(classic_pdf(2))
            .file_name("contract.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    app.client
        .post(app.url("/documents/upload"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads a two-page PDF for the device's signer; returns (documentId, hash).
pub async fn upload(app: &TestApp, device: &Device) -> (String, String) {
    let response = upload_response(app, device).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    (
        body["documentId"].as_str().unwrap().to_owned(),
        body["hash"].as_str().unwrap().to_owned(),
    )
}

/// The device's part: `openssl dgst -sha256 -sign` over the data to be signed.
pub fn device_signature(device: &Device, hash_b64: &str) -> String {
    let dir = device.key.dir.path();
    let data = dir.join("tbs.der");
    let signature = dir.join("tbs.sig");
    std::fs::write(&data, BASE64.decode(hash_b64).unwrap()).unwrap();
    openssl::run(
        &[
            "dgst",
            "-sha256",
            "-sign",
            device.key.key.to_str().unwrap(),
            "-out",
            signature.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        dir,
    );
    BASE64.encode(std::fs::read(signature).unwrap())
}

/// Posts the device's signature, with `level` when given.
pub async fn post_signature(
    app: &TestApp,
    device: &Device,
    document_id: &str,
    hash: &str,
    level: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"signature": device_signature(device, hash)});
    if let Some(level) = level {
        body["signatureLevel"] = json!(level);
    }
    app.post_json(&format!("/documents/{document_id}/signature"), &body)
        .await
}

pub async fn download(app: &TestApp, document_id: &str) -> Vec<u8> {
    let response = app.get(&format!("/documents/{document_id}/file")).await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// The document's status from the store (the API has no read of a document's status).
pub(crate) async fn document_status(app: &TestApp, document_id: &str) -> String {
    let id = signet::domain::DocumentId::parse(document_id).unwrap();
    let document = app.state.store.find_document(&id).await.unwrap().unwrap();
    document.status.to_string()
}

/// P-256 and RSA-2048 devices sign at B-LT and B-LTA; with the server stopped every file is
/// VALID for adesverify. Then one signer is revoked: its B-LT signature still validates.
///
/// `device_count`: P-256 then RSA-2048; `level_count`: the default level, then B-LT, then B-LTA (on
/// PostgreSQL one P-256 document at the default level: what the database changes is the same;
/// pyHanko is the cost).
pub(crate) async fn device_documents_validate_offline(
    db: Db,
    storage: Storage<'_>,
    device_count: usize,
    level_count: usize,
) {
    let Some(app) = spawn_with(db, |s| storage.apply(s)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let mut files = Vec::new();
    let mut devices = vec![
        ("phone-p256", KeyKind::P256),
        ("phone-rsa", KeyKind::Rsa(2048)),
    ];
    devices.truncate(device_count);
    let mut levels = vec![(None, 0), (Some("PADES_B_LT"), 0), (Some("PADES_B_LTA"), 1)];
    levels.truncate(level_count);
    for (signer_id, kind) in devices {
        let device = enrolled(&app, signer_id, kind).await;
        for &(level, timestamps) in &levels {
            let (document_id, hash) = upload(&app, &device).await;
            let response = post_signature(&app, &device, &document_id, &hash, level).await;
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
            let name = format!("{signer_id}-{}.pdf", level.unwrap_or("default"));
            files.push((
                write(dir.path(), &name, &download(&app, &document_id).await),
                timestamps,
            ));
        }
    }
    // The P-256 signer is revoked after signing: what the files carry still proves their
    // signatures were made while its certificate was good.
    let (status, body) = app.set_status("phone-p256", "REVOKED").await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
    for (file, timestamps) in files {
        assert_long_term_valid(&file, &ca, 1, timestamps);
    }
}

#[tokio::test]
async fn device_signatures_at_b_lt_and_b_lta_validate_offline_and_survive_revocation_on_sqlite() {
    device_documents_validate_offline(Db::Sqlite, Storage::Files, 2, 3).await;
}

#[tokio::test]
async fn a_device_signature_at_the_default_level_validates_offline_after_revocation_on_postgres() {
    device_documents_validate_offline(Db::Postgres, Storage::Files, 1, 1).await;
}

#[tokio::test]
async fn b_b_stays_available_and_an_unknown_level_is_refused() {
    let app = spawn_with(Db::Sqlite, |_| {}).await.unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (document_id, hash) = upload(&app, &device).await;
    let response = post_signature(&app, &device, &document_id, &hash, Some("PADES_B_X")).await;
    assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert_eq!(document_status(&app, &document_id).await, "WAITING");
    let response = post_signature(&app, &device, &document_id, &hash, Some("PADES_B_B")).await;
    assert_eq!(response.status(), 200);
    let signed = download(&app, &document_id).await;
    assert!(!signed.windows(4).any(|w| w == b"/DSS"), "no DSS at B-B");
    let dir = tempfile::tempdir().unwrap();
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let file = write(dir.path(), "b-b.pdf", &signed);
    signet_testkit::assert_valid_everywhere(&file, &ca, 1);
}

#[tokio::test]
async fn a_device_signature_with_the_tsa_down_is_503_and_the_document_signs_once_it_is_back() {
    let tsa = OpensslTsa::start().await;
    let port = tsa.port;
    let url = tsa.url("/tsr");
    drop(tsa);
    let root = openssl_tsa_pki().join("root.pem");
    let app = spawn_with(Db::Sqlite, |s| {
        // B-T by default: B-LT needs revocation data this TSA's certificate does not point to.
        s.signature_level = SignatureLevel::PadesBT;
        s.tsa.url = Some(url.clone());
        s.tsa.ca = Some(root.clone());
        s.tsa.timeout_seconds = 5;
    })
    .await
    .unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (document_id, hash) = upload(&app, &device).await;
    for level in [None, Some("PADES_B_T"), Some("PADES_B_LTA")] {
        let response = post_signature(&app, &device, &document_id, &hash, level).await;
        assert_error(response, 503, "TIMESTAMP_UNAVAILABLE").await;
        assert_eq!(document_status(&app, &document_id).await, "WAITING");
    }

    let _back = OpensslTsa::start_on(port).await;
    let response = post_signature(&app, &device, &document_id, &hash, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(document_status(&app, &document_id).await, "SIGNED");
    let signed = download(&app, &document_id).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "signed.pdf", &signed);
    // The external TSA's root is not Signet's CA: pyHanko trusts both for the check.
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let root = root.to_str().unwrap().to_owned();
    signet_testkit::assert_pyhanko_accepts(&file, &ca, 1, &["--trust", &root]);
    assert_pdfsig_valid(&file, 1);
}
