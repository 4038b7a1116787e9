//! `signatureLevel` on `POST /documents/{id}/signature`: PAdES B-T with the built-in TSA and with
//! an external one (`openssl ts -reply`), judged by pyHanko; with the external TSA down or
//! answering garbage the request fails with 503 TIMESTAMP_UNAVAILABLE, the document stays WAITING,
//! and the same signature succeeds once the TSA is back. Unknown levels are validation errors.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::multipart::{Form, Part};
use reqwest::Response;
use serde_json::{json, Value};
use std::path::Path;

use crate::helpers::{assert_error, database_url_for, spawn_app, start_with, Db, TestApp};
use crate::openssl::{self, device_key, DeviceKey, KeyKind};
use crate::tsa_client::{openssl_tsa_pki, OpensslTsa};
use signet::clock::ManualClock;
use signet::domain::{DocumentId, DocumentStatus};
use signet_testkit::pdfs::classic_pdf;

/// DER of the OID id-aa-signatureTimeStampToken (1.2.840.113549.1.9.16.2.14).
const SIGNATURE_TIMESTAMP_OID: &[u8] = &[
    0x06, 0x0B, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x10, 0x02, 0x0E,
];

/// An uploaded document and the device's signature over its data to be signed.
struct Prepared {
    document_id: String,
    signature: String,
}

async fn prepared(app: &TestApp, signer_id: &str) -> Prepared {
    let key: DeviceKey = device_key(KeyKind::P256, signer_id);
    app.enroll(signer_id, &key.csr_pem).await;
    let form = Form::new()
        .text("signerId", signer_id.to_owned())
        .text("name", "Contract")
        .part(
            "file",
            Part::bytes(classic_pdf(1))
                .file_name("contract.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let response = app
        .client
        .post(app.url("/documents"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let uploaded: Value = response.json().await.unwrap();
    let hash = uploaded["hash"].as_str().unwrap();
    let dir = key.dir.path();
    std::fs::write(dir.join("tbs.der"), BASE64.decode(hash).unwrap()).unwrap();
    openssl::run(
        &[
            "dgst",
            "-sha256",
            "-sign",
            key.key.to_str().unwrap(),
            "-out",
            "tbs.sig",
            "tbs.der",
        ],
        dir,
    );
    Prepared {
        document_id: uploaded["documentId"].as_str().unwrap().to_owned(),
        signature: BASE64.encode(std::fs::read(dir.join("tbs.sig")).unwrap()),
    }
}

async fn sign(app: &TestApp, document: &Prepared, level: Option<&str>) -> Response {
    let mut body = json!({"signature": document.signature});
    if let Some(level) = level {
        body["signatureLevel"] = json!(level);
    }
    app.post_json(
        &format!("/documents/{}/signature", document.document_id),
        &body,
    )
    .await
}

async fn status(app: &TestApp, document: &Prepared) -> DocumentStatus {
    let id = DocumentId::parse(&document.document_id).unwrap();
    app.state
        .store
        .find_document(&id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn download(app: &TestApp, document: &Prepared) -> Vec<u8> {
    let response = app
        .get(&format!("/documents/{}/file", document.document_id))
        .await;
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// The signed PDF's one signature carries a signature timestamp, and pyHanko accepts it trusting
/// Signet's CA (and `extra_trust`, the external TSA's root).
async fn assert_timestamped_and_valid(app: &TestApp, pdf: &[u8], extra_trust: Option<&Path>) {
    let signatures = signet_testkit::signatures_in(pdf);
    assert_eq!(signatures.len(), 1);
    let cms = &signatures[0].1;
    assert!(
        cms.windows(SIGNATURE_TIMESTAMP_OID.len())
            .any(|w| w == SIGNATURE_TIMESTAMP_OID),
        "the CMS has no signature timestamp"
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("signet-ca.pem");
    std::fs::write(&ca, app.get("/ca/ca.pem").await.text().await.unwrap()).unwrap();
    let file = dir.path().join("signed.pdf");
    std::fs::write(&file, pdf).unwrap();
    let mut extra = vec!["--pretty-print"];
    let trust;
    if let Some(path) = extra_trust {
        trust = path.to_str().unwrap().to_owned();
        extra.extend(["--trust", trust.as_str()]);
    }
    let report = signet_testkit::pyhanko_validate(&file, &ca, &extra);
    for verdict in [
        "The signer's certificate is trusted.",
        "Signature timestamp token:",
        "The timestamp token is cryptographically sound.",
        "The TSA certificate is trusted.",
        "The signature is judged VALID.",
    ] {
        assert!(
            report.contains(verdict),
            "pyHanko did not say {verdict:?}:\n{report}"
        );
    }
}

async fn b_t_with_the_built_in_tsa(db: Db) {
    let Some(app) = crate::helpers::spawn_app_on(db).await else {
        return;
    };
    let document = prepared(&app, "bt-signer").await;

    let response = sign(&app, &document, Some("PADES_B_T")).await;

    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(status(&app, &document).await, DocumentStatus::Signed);
    let pdf = download(&app, &document).await;
    assert_timestamped_and_valid(&app, &pdf, None).await;
}

#[tokio::test]
async fn a_b_t_signature_carries_a_timestamp_from_the_built_in_tsa_on_sqlite() {
    b_t_with_the_built_in_tsa(Db::Sqlite).await;
}

#[tokio::test]
async fn a_b_t_signature_carries_a_timestamp_from_the_built_in_tsa_on_postgres() {
    b_t_with_the_built_in_tsa(Db::Postgres).await;
}

#[tokio::test]
async fn b_b_by_name_has_no_timestamp() {
    let app = spawn_app().await;
    let document = prepared(&app, "bb-signer").await;
    let response = sign(&app, &document, Some("PADES_B_B")).await;
    assert_eq!(response.status(), 200);
    let pdf = download(&app, &document).await;
    let cms = &signet_testkit::signatures_in(&pdf)[0].1;
    assert!(!cms
        .windows(SIGNATURE_TIMESTAMP_OID.len())
        .any(|w| w == SIGNATURE_TIMESTAMP_OID));
}

#[tokio::test]
async fn unknown_levels_are_validation_errors_and_change_nothing() {
    let app = spawn_app().await;
    let document = prepared(&app, "level-signer").await;
    // B-LT and B-LTA are served (tests/api/levels.rs); near misses of the names are not.
    for level in ["PADES_B_X", "pades_b_t", "PADES-B-LT", "PADES_B_LTA "] {
        let response = sign(&app, &document, Some(level)).await;
        let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        assert!(message.contains(level), "{message}");
        assert_eq!(status(&app, &document).await, DocumentStatus::Waiting);
    }
    let response = app
        .post_json(
            &format!("/documents/{}/signature", document.document_id),
            &json!({"signature": document.signature, "signatureLevel": 3}),
        )
        .await;
    assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
}

/// A Signet whose timestamps come from the external TSA at `url`, with B-T as its default level.
async fn with_external_tsa(db: Db, url: String) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = std::sync::Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let root = openssl_tsa_pki().join("root.pem");
    Some(
        start_with(data_dir, database_url, clock, move |settings| {
            settings.tsa.url = Some(url);
            settings.tsa.ca = Some(root);
            settings.tsa.timeout_seconds = 5;
            settings.signature_level = signet::domain::SignatureLevel::PadesBT;
        })
        .await,
    )
}

async fn tsa_down_then_back(db: Db) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let Some(app) = with_external_tsa(db, format!("http://127.0.0.1:{port}/tsr")).await else {
        return;
    };
    let document = prepared(&app, "tsa-down-signer").await;

    // The TSA is down: 503 with the error body, nothing changed (the default level is B-T).
    let response = sign(&app, &document, None).await;
    let message = assert_error(response, 503, "TIMESTAMP_UNAVAILABLE").await;
    assert!(message.contains("try again"), "{message}");
    assert_eq!(status(&app, &document).await, DocumentStatus::Waiting);
    let response = app
        .get(&format!("/documents/{}/file", document.document_id))
        .await;
    assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;

    // The TSA is back on its address: the same signature now succeeds, with its token.
    let _tsa = OpensslTsa::start_on(port).await;
    let response = sign(&app, &document, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(status(&app, &document).await, DocumentStatus::Signed);
    let pdf = download(&app, &document).await;
    let root = openssl_tsa_pki().join("root.pem");
    assert_timestamped_and_valid(&app, &pdf, Some(&root)).await;
}

#[tokio::test]
async fn with_the_external_tsa_down_signing_is_503_and_the_document_waits_until_it_is_back_on_sqlite(
) {
    tsa_down_then_back(Db::Sqlite).await;
}

#[tokio::test]
async fn with_the_external_tsa_down_signing_is_503_and_the_document_waits_until_it_is_back_on_postgres(
) {
    tsa_down_then_back(Db::Postgres).await;
}

#[tokio::test]
async fn an_external_tsa_answering_garbage_or_a_replayed_token_is_refused_the_same_way() {
    let tsa = OpensslTsa::start().await;
    for path in ["/garbage", "/replay"] {
        let app = with_external_tsa(Db::Sqlite, tsa.url(path)).await.unwrap();
        if path == "/replay" {
            // The replay path keeps the first token it issued: this signature gets it ...
            let first = prepared(&app, "first-signer").await;
            assert_eq!(sign(&app, &first, None).await.status(), 200);
        }
        // ... and every later one a token for another imprint and nonce.
        let document = prepared(&app, "garbage-signer").await;
        let response = sign(&app, &document, Some("PADES_B_T")).await;
        assert_error(response, 503, "TIMESTAMP_UNAVAILABLE").await;
        assert_eq!(status(&app, &document).await, DocumentStatus::Waiting);
        // B-B asked by name needs no timestamp and still signs.
        let response = sign(&app, &document, Some("PADES_B_B")).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}
