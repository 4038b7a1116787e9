//! `/documents`: the whole device flow with openssl as the device, judged by pyHanko, pdfsig,
//! `openssl cms -verify` and qpdf; every refusal with its code and nothing changed; Range.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::multipart::{Form, Part};
use reqwest::Response;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

use crate::helpers::{assert_error, spawn_app, spawn_app_on, stored_signed_file, Db, TestApp};
use crate::openssl::{self, device_key, DeviceKey, KeyKind};
use signet_testkit::pdfs::classic_pdf;

/// An enrolled device: its key (held by the test, as a phone would) and signer id.
struct Device {
    key: DeviceKey,
    signer_id: String,
}

async fn enrolled(app: &TestApp, signer_id: &str, kind: KeyKind) -> Device {
    let key = device_key(kind, signer_id);
    app.enroll(signer_id, &key.csr_pem).await;
    Device {
        key,
        signer_id: signer_id.to_owned(),
    }
}

fn pdf_part(bytes: Vec<u8>, file_name: &str, content_type: &str) -> Part {
    Part::bytes(bytes)
        .file_name(file_name.to_owned())
        .mime_str(content_type)
        .unwrap()
}

async fn upload_with(app: &TestApp, form: Form, path: &str) -> Response {
    app.client
        .post(app.url(path))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Uploads `pdf` for `signer_id` and returns the documented response body.
async fn upload(app: &TestApp, signer_id: &str, pdf: Vec<u8>) -> Value {
    let form = Form::new()
        .text("signerId", signer_id.to_owned())
        .text("externalId", "ext-1")
        .text("name", "Contract")
        .part("file", pdf_part(pdf, "contract.pdf", "application/pdf"));
    let response = upload_with(app, form, "/documents/upload").await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The device's part: `openssl dgst -sha256 -sign` over the base64-decoded `hash`.
fn device_sign(device: &Device, hash_b64: &str) -> String {
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

async fn post_signature(app: &TestApp, document_id: &str, signature: &str) -> Response {
    app.post_json(
        &format!("/documents/{document_id}/signature"),
        &json!({"signature": signature}),
    )
    .await
}

async fn sign_ok(app: &TestApp, device: &Device, uploaded: &Value) -> Value {
    let document_id = uploaded["documentId"].as_str().unwrap();
    let signature = device_sign(device, uploaded["hash"].as_str().unwrap());
    let response = post_signature(app, document_id, &signature).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

async fn download(app: &TestApp, document_id: &str) -> Vec<u8> {
    let response = app.get(&format!("/documents/{document_id}/file")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.headers()["accept-ranges"], "bytes");
    response.bytes().await.unwrap().to_vec()
}

/// Writes the server's CA certificate next to `dir` for the oracles.
async fn ca_file(app: &TestApp, dir: &Path) -> PathBuf {
    let pem = app.ca_pem().await;
    let path = dir.join("signet-ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

/// Uploads, signs as the device, downloads; returns the signed bytes.
async fn sign_document(app: &TestApp, device: &Device, pdf: Vec<u8>) -> Vec<u8> {
    let uploaded = upload(app, &device.signer_id, pdf).await;
    let document_id = uploaded["documentId"].as_str().unwrap().to_owned();
    let signed = sign_ok(app, device, &uploaded).await;
    assert_eq!(
        signed["uri"],
        format!("{}/documents/{document_id}/file", app.address)
    );
    download(app, &document_id).await
}

async fn document_flow_validates_everywhere(db: Db) {
    let Some(app) = spawn_app_on(db).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&app, dir.path()).await;
    for (signer_id, kind) in [
        ("phone-p256", KeyKind::P256),
        ("phone-rsa", KeyKind::Rsa(2048)),
    ] {
        let device = enrolled(&app, signer_id, kind).await;
        let signed = sign_document(&app, &device, classic_pdf(2)).await;

        let path = dir.path().join(format!("{signer_id}.pdf"));
        std::fs::write(&path, &signed).unwrap();
        signet_testkit::assert_valid_everywhere(&path, &ca, 1);
    }
}

#[tokio::test]
async fn a_document_signed_by_p256_and_rsa_devices_validates_in_every_oracle_on_sqlite() {
    document_flow_validates_everywhere(Db::Sqlite).await;
}

#[tokio::test]
async fn a_document_signed_by_p256_and_rsa_devices_validates_in_every_oracle_on_postgres() {
    document_flow_validates_everywhere(Db::Postgres).await;
}

#[tokio::test]
async fn a_document_larger_than_the_in_memory_threshold_is_spilled_to_disk_and_signs() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&app, dir.path()).await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let pdf = signet_testkit::pdfs::classic_pdf_with_image(2, 3 * 1024 * 1024);

    let signed = sign_document(&app, &device, pdf.clone()).await;

    assert!(
        signed.starts_with(&pdf),
        "the upload is an untouched prefix"
    );
    let path = dir.path().join("large.pdf");
    std::fs::write(&path, &signed).unwrap();
    signet_testkit::assert_valid_everywhere(&path, &ca, 1);
}

#[tokio::test]
async fn the_upload_response_has_the_documented_fields_and_hash_is_the_signed_attributes() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let pdf = classic_pdf(1);
    let expected_sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&pdf))
    };
    let size = pdf.len();

    let body = upload(&app, "phone", pdf).await;

    assert!(uuid::Uuid::parse_str(body["documentId"].as_str().unwrap()).is_ok());
    assert_eq!(body["signerId"], "phone");
    assert_eq!(body["externalId"], "ext-1");
    assert_eq!(body["name"], "Contract");
    assert_eq!(body["fileName"], "contract.pdf");
    assert_eq!(body["size"], size);
    assert_eq!(body["documentSha256"], expected_sha256);
    let attributes = BASE64.decode(body["hash"].as_str().unwrap()).unwrap();
    assert_eq!(
        attributes[0], 0x31,
        "the hash is DER SignedAttributes (a SET)"
    );
    let _ = device;
}

#[tokio::test]
async fn both_upload_paths_and_the_external_signer_id_alias_work() {
    let app = spawn_app().await;
    let _device = enrolled(&app, "phone", KeyKind::P256).await;
    for path in ["/documents", "/documents/upload"] {
        let form = Form::new()
            .text("externalSignerId", "phone")
            .part("file", pdf_part(classic_pdf(1), "a.pdf", "application/pdf"));
        let response = upload_with(&app, form, path).await;
        assert_eq!(response.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_client_written_for_the_product_works_under_its_prefix_with_its_names() {
    let app = spawn_app().await;
    let prefix = "/api/cloudsigner";
    let key = device_key(KeyKind::P256, "phone");
    let response = app
        .post_json(
            &format!("{prefix}/signers"),
            &json!({"externalSignerId": "phone", "userId": "user-1", "csr": key.csr_pem}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let details: Value = app
        .get(&format!("{prefix}/signers/phone"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(details["signerId"], "phone");
    assert_eq!(details["externalSignerId"], "phone");
    let device = Device {
        key,
        signer_id: "phone".into(),
    };

    let form = Form::new()
        .text("externalSignerId", "phone")
        .part("file", pdf_part(classic_pdf(1), "a.pdf", "application/pdf"));
    let response = upload_with(&app, form, &format!("{prefix}/documents")).await;
    assert_eq!(response.status(), 200);
    let uploaded: Value = response.json().await.unwrap();
    assert_eq!(uploaded["externalSignerId"], "phone");
    let document_id = uploaded["documentId"].as_str().unwrap();
    let signature = device_sign(&device, uploaded["hash"].as_str().unwrap());
    let response = app
        .post_json(
            &format!("{prefix}/documents/{document_id}/signature"),
            &json!({"signature": signature}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let response = app
        .get(&format!("{prefix}/documents/{document_id}/file"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().starts_with(b"%PDF-"));

    for refused in ["NOT_REVOKED", "REMOVE_FROM_CRL", "key_compromise"] {
        let response = app
            .put_json(
                &format!("{prefix}/signers/phone"),
                &json!({"signerStatus": "REVOKED", "revocationReason": refused}),
            )
            .await;
        let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        assert!(message.contains(refused), "{message}");
    }
    let response = app
        .put_json(
            &format!("{prefix}/signers/phone"),
            &json!({"signerStatus": "REVOKED", "revocationReason": "KEY_COMPROMISE"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let ca = String::from_utf8(
        app.get(&format!("{prefix}/ca/ca.pem"))
            .await
            .bytes()
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    let crl = app.get(&format!("{prefix}/ca/crl.der")).await;
    assert_eq!(crl.status(), 200);
    let text = openssl::crl_text(&crl.bytes().await.unwrap(), &ca);
    assert!(text.contains("Key Compromise"), "{text}");
}

#[tokio::test]
async fn three_signatures_in_a_row_on_one_document_all_stay_valid() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&app, dir.path()).await;
    let devices = [
        enrolled(&app, "first", KeyKind::P256).await,
        enrolled(&app, "second", KeyKind::Rsa(2048)).await,
        enrolled(&app, "third", KeyKind::P384).await,
    ];
    let mut pdf = classic_pdf(1);
    for device in &devices {
        pdf = sign_document(&app, device, pdf).await;
    }

    let path = dir.path().join("three.pdf");
    std::fs::write(&path, &pdf).unwrap();
    signet_testkit::assert_valid_everywhere(&path, &ca, 3);
}

#[tokio::test]
async fn a_flipped_byte_and_a_forged_later_revision_are_detected_by_pyhanko() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&app, dir.path()).await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let signed = sign_document(&app, &device, classic_pdf(1)).await;
    let good = dir.path().join("good.pdf");
    std::fs::write(&good, &signed).unwrap();

    let mut flipped = signed.clone();
    let at = flipped
        .windows(6)
        .position(|w| w == b"(Page ")
        .expect("page text");
    flipped[at + 1] ^= 0x20;
    let flipped_path = dir.path().join("flipped.pdf");
    std::fs::write(&flipped_path, &flipped).unwrap();
    let report = signet_testkit::pyhanko_validate(&flipped_path, &ca, &[]);
    assert!(!report.contains("INTACT"), "{report}");
    let pdfsig = signet_testkit::pdfsig_report(&flipped_path);
    assert!(pdfsig.contains("Digest Mismatch"), "{pdfsig}");

    let forged = dir.path().join("forged.pdf");
    signet_testkit::forge_later_revision(&good, &forged);
    let report = signet_testkit::pyhanko_validate(&forged, &ca, &[]);
    assert!(report.contains("ILLEGAL_MODIFICATIONS"), "{report}");
}

/// The document's observable state: waiting documents have no file yet.
async fn assert_still_waiting(app: &TestApp, document_id: &str) {
    let response = app.get(&format!("/documents/{document_id}/file")).await;
    assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
}

#[tokio::test]
async fn bad_signatures_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let other = enrolled(&app, "other-phone", KeyKind::P256).await;
    let uploaded = upload(&app, "phone", classic_pdf(1)).await;
    let document_id = uploaded["documentId"].as_str().unwrap();
    let hash = uploaded["hash"].as_str().unwrap();
    let other_data = BASE64.encode(b"some other data to be signed");

    let over_other_data = device_sign(&device, &other_data);
    let by_other_key = device_sign(&other, hash);
    let good = device_sign(&device, hash);
    let truncated = BASE64.encode(&BASE64.decode(&good).unwrap()[..20]);
    for (signature, code) in [
        (over_other_data.as_str(), "DOCUMENT_INVALID_SIGNATURE_ERROR"),
        (by_other_key.as_str(), "DOCUMENT_INVALID_SIGNATURE_ERROR"),
        (truncated.as_str(), "DOCUMENT_INVALID_SIGNATURE_ERROR"),
        ("%%% not base64 %%%", "REQUEST_VALIDATION_ERROR"),
        ("", "REQUEST_VALIDATION_ERROR"),
    ] {
        let response = post_signature(&app, document_id, signature).await;
        assert_error(response, 400, code).await;
        assert_still_waiting(&app, document_id).await;
    }
    let response = app
        .post_json(
            &format!("/documents/{document_id}/signature"),
            &json!({"signature": 42}),
        )
        .await;
    assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;

    // The document is untouched: the right signature still finishes it.
    sign_ok(&app, &device, &uploaded).await;
    let response = post_signature(&app, document_id, &good).await;
    assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
}

#[tokio::test]
async fn the_same_pdf_uploaded_twice_at_one_instant_gets_its_own_data_to_be_signed() {
    // The test clock stands still: both uploads share the signing time to the second.
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let first = upload(&app, "phone", classic_pdf(1)).await;
    let second = upload(&app, "phone", classic_pdf(1)).await;
    assert_eq!(first["documentSha256"], second["documentSha256"]);
    assert_ne!(first["hash"], second["hash"]);

    // A signature made for one upload cannot finish the other.
    let for_first = device_sign(&device, first["hash"].as_str().unwrap());
    let second_id = second["documentId"].as_str().unwrap();
    let response = post_signature(&app, second_id, &for_first).await;
    assert_error(response, 400, "DOCUMENT_INVALID_SIGNATURE_ERROR").await;
    assert_still_waiting(&app, second_id).await;
    sign_ok(&app, &device, &first).await;
    sign_ok(&app, &device, &second).await;
}

#[tokio::test]
async fn a_raw_r_s_ecdsa_signature_is_accepted() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&app, dir.path()).await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let uploaded = upload(&app, "phone", classic_pdf(1)).await;
    let der = BASE64
        .decode(device_sign(&device, uploaded["hash"].as_str().unwrap()))
        .unwrap();
    let raw = der_ecdsa_to_raw(&der, 32);

    let response = post_signature(
        &app,
        uploaded["documentId"].as_str().unwrap(),
        &BASE64.encode(raw),
    )
    .await;
    assert_eq!(response.status(), 200);

    let signed = download(&app, uploaded["documentId"].as_str().unwrap()).await;
    let path = dir.path().join("raw.pdf");
    std::fs::write(&path, signed).unwrap();
    signet_testkit::assert_valid_everywhere(&path, &ca, 1);
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` → fixed-width `r || s`.
fn der_ecdsa_to_raw(der: &[u8], width: usize) -> Vec<u8> {
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02);
        let len = der[at + 1] as usize;
        let value = &der[at + 2..at + 2 + len];
        let value = &value[value.len().saturating_sub(width)..];
        out.extend(std::iter::repeat_n(0u8, width - value.len()));
        out.extend_from_slice(value);
        at += 2 + len;
    }
    out
}

#[tokio::test]
async fn a_rejected_or_deleted_document_cannot_be_signed() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;

    let rejected = upload(&app, "phone", classic_pdf(1)).await;
    let id = rejected["documentId"].as_str().unwrap();
    let response = app
        .put_json(&format!("/documents/{id}"), &json!({"status": "REJECTED"}))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["documentId"], id);
    assert_eq!(body["hash"], rejected["hash"]);
    assert_eq!(body["fileName"], "contract.pdf");
    let signature = device_sign(&device, rejected["hash"].as_str().unwrap());
    let response = post_signature(&app, id, &signature).await;
    assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;

    let deleted = upload(&app, "phone", classic_pdf(1)).await;
    let id = deleted["documentId"].as_str().unwrap();
    let response = app
        .client
        .delete(app.url(&format!("/documents/{id}")))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let signature = device_sign(&device, deleted["hash"].as_str().unwrap());
    let response = post_signature(&app, id, &signature).await;
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

#[tokio::test]
async fn reject_accepts_only_the_rejected_status_and_a_signed_document_cannot_be_rejected() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let uploaded = upload(&app, "phone", classic_pdf(1)).await;
    let id = uploaded["documentId"].as_str().unwrap();
    for body in [json!({"status": "SIGNED"}), json!({}), json!({"status": 1})] {
        let response = app.put_json(&format!("/documents/{id}"), &body).await;
        assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    }
    sign_ok(&app, &device, &uploaded).await;
    let response = app
        .put_json(&format!("/documents/{id}"), &json!({"status": "REJECTED"}))
        .await;
    assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
}

#[tokio::test]
async fn deleting_removes_the_bytes_and_a_second_delete_is_404() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let uploaded = upload(&app, "phone", classic_pdf(1)).await;
    sign_ok(&app, &device, &uploaded).await;
    let id = uploaded["documentId"].as_str().unwrap();
    let blob = app
        .data_dir
        .path()
        .join(format!("blobs/documents/{id}.pdf"));
    assert!(blob.exists());

    let delete = || async {
        app.client
            .delete(app.url(&format!("/documents/{id}")))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap()
    };
    assert_eq!(delete().await.status(), 204);
    assert!(!blob.exists(), "the document's bytes are gone");
    assert_error(delete().await, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    let response = app.get(&format!("/documents/{id}/file")).await;
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

#[tokio::test]
async fn unknown_documents_are_404_and_the_api_needs_a_key() {
    let app = spawn_app().await;
    for path in [
        "/documents/00000000-0000-4000-8000-000000000000/file",
        "/documents/not-a-uuid/file",
    ] {
        assert_error(app.get(path).await, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    }
    let response = app
        .client
        .post(app.url("/documents"))
        .multipart(Form::new().text("signerId", "x"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "ERROR_UNAUTHORIZED").await;
}

#[tokio::test]
async fn a_blocked_or_revoked_signer_cannot_upload_or_sign() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let waiting = upload(&app, "phone", classic_pdf(1)).await;
    let signature = device_sign(&device, waiting["hash"].as_str().unwrap());
    let id = waiting["documentId"].as_str().unwrap();

    for status in ["BLOCKED", "REVOKED"] {
        assert_eq!(app.set_status("phone", status).await.0, 200);
        let response = post_signature(&app, id, &signature).await;
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        let form = Form::new()
            .text("signerId", "phone")
            .part("file", pdf_part(classic_pdf(1), "a.pdf", "application/pdf"));
        let response = upload_with(&app, form, "/documents").await;
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        assert_still_waiting(&app, id).await;
    }
}

#[tokio::test]
async fn an_upload_for_an_unknown_signer_is_404_and_stores_nothing() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("signerId", "nobody")
        .part("file", pdf_part(classic_pdf(1), "a.pdf", "application/pdf"));
    let response = upload_with(&app, form, "/documents").await;
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    assert_no_blobs(&app);
}

fn assert_no_blobs(app: &TestApp) {
    let blobs = app.data_dir.path().join("blobs");
    let documents: Vec<_> = std::fs::read_dir(blobs.join("documents"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(documents.is_empty(), "left behind: {documents:?}");
    let temporary = crate::helpers::temporary_files(app.data_dir.path());
    assert!(temporary.is_empty(), "left behind: {temporary:?}");
}

/// An encrypted copy of a classic PDF, made by qpdf.
fn encrypted_pdf(dir: &Path) -> Vec<u8> {
    let plain = dir.join("plain.pdf");
    let encrypted = dir.join("encrypted.pdf");
    std::fs::write(&plain, classic_pdf(1)).unwrap();
    signet_testkit::run_ok(
        "qpdf",
        &[
            "--encrypt",
            "user",
            "owner",
            "256",
            "--",
            plain.to_str().unwrap(),
            encrypted.to_str().unwrap(),
        ],
    );
    std::fs::read(encrypted).unwrap()
}

/// A real PNG, made by rsvg-convert.
fn png(dir: &Path) -> Vec<u8> {
    let svg = dir.join("square.svg");
    let png = dir.join("square.png");
    std::fs::write(
        &svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>"#,
    )
    .unwrap();
    signet_testkit::run_ok(
        "rsvg-convert",
        &[svg.to_str().unwrap(), "-o", png.to_str().unwrap()],
    );
    std::fs::read(png).unwrap()
}

#[tokio::test]
async fn documents_that_are_not_signable_pdfs_are_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let _device = enrolled(&app, "phone", KeyKind::P256).await;
    let dir = tempfile::tempdir().unwrap();
    let mut truncated = classic_pdf(1);
    truncated.truncate(truncated.len() / 2);
    let png = png(dir.path());
    assert!(png.starts_with(b"\x89PNG"));
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "encrypted",
            encrypted_pdf(dir.path()),
            "application/pdf",
            "encrypted",
        ),
        ("truncated", truncated, "application/pdf", "PDF"),
        ("png renamed .pdf", png, "application/pdf", "%PDF-"),
        ("text", b"hello".to_vec(), "application/pdf", "%PDF-"),
        (
            "declared as text",
            classic_pdf(1),
            "text/plain",
            "application/pdf",
        ),
        ("empty", Vec::new(), "application/pdf", "empty"),
    ];
    for (what, bytes, content_type, says) in cases {
        let form = Form::new()
            .text("signerId", "phone")
            .part("file", pdf_part(bytes, "x.pdf", content_type));
        let response = upload_with(&app, form, "/documents").await;
        let message = assert_error(response, 400, "DOCUMENT_UPLOAD_ERROR").await;
        assert!(message.contains(says), "{what}: {message}");
        assert_no_blobs(&app);
    }
}

#[tokio::test]
async fn malformed_uploads_get_the_error_body() {
    let app = spawn_app().await;
    let _device = enrolled(&app, "phone", KeyKind::P256).await;
    // Not multipart at all.
    let response = app
        .client
        .post(app.url("/documents"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "ERROR_GENERIC").await;
    // A boundary that never closes.
    let response = app
        .client
        .post(app.url("/documents"))
        .bearer_auth(&app.api_key)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"signerId\"\r\n\r\nphone\r\n--XYZ\r\nContent-Disp")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "ERROR_GENERIC").await;
    // Missing parts.
    let response = upload_with(&app, Form::new().text("signerId", "phone"), "/documents").await;
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("file"), "{message}");
    let form = Form::new().part("file", pdf_part(classic_pdf(1), "a.pdf", "application/pdf"));
    let response = upload_with(&app, form, "/documents").await;
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("signerId"), "{message}");
    assert_no_blobs(&app);
}

#[tokio::test]
async fn a_51_mb_upload_is_refused_with_413_and_nothing_is_stored() {
    let app = spawn_app().await;
    let _device = enrolled(&app, "phone", KeyKind::P256).await;
    let mut big = classic_pdf(1);
    big.resize(51 * 1024 * 1024, b' ');

    // With a Content-Length (reqwest knows the size of a byte part).
    let form = Form::new()
        .text("signerId", "phone")
        .part("file", pdf_part(big.clone(), "big.pdf", "application/pdf"));
    let response = upload_with(&app, form, "/documents").await;
    assert_error(response, 413, "DOCUMENT_UPLOAD_ERROR").await;

    // Streamed without a length: counted while it arrives.
    let stream = futures::stream::iter(
        big.chunks(1024 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let part = Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("big.pdf")
        .mime_str("application/pdf")
        .unwrap();
    let form = Form::new().text("signerId", "phone").part("file", part);
    let response = upload_with(&app, form, "/documents").await;
    assert_error(response, 413, "DOCUMENT_UPLOAD_ERROR").await;
    assert_no_blobs(&app);
}

#[tokio::test]
async fn two_racing_signature_posts_have_exactly_one_winner() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    for _ in 0..5 {
        let uploaded = upload(&app, "phone", classic_pdf(1)).await;
        let id = uploaded["documentId"].as_str().unwrap();
        let first = device_sign(&device, uploaded["hash"].as_str().unwrap());
        let second = device_sign(&device, uploaded["hash"].as_str().unwrap());

        let (a, b) = tokio::join!(
            post_signature(&app, id, &first),
            post_signature(&app, id, &second)
        );

        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400]);
        let loser = if a.status() == 400 { a } else { b };
        assert_error(loser, 400, "ILLEGAL_OPERATION_ERROR").await;
        let files: Vec<_> = std::fs::read_dir(app.data_dir.path().join("blobs/documents"))
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(id))
            .collect();
        assert_eq!(
            files,
            [format!("{id}.pdf")],
            "only the winner's file is kept"
        );
    }
}

#[tokio::test]
async fn a_delete_racing_a_signature_is_always_204_and_leaves_nothing_behind() {
    let app = spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    // The delete starts a little later each round, so that in some rounds it reads the
    // document just before the signature's commit and changes it just after.
    for round in 0..40 {
        let uploaded = upload(&app, "phone", classic_pdf(1)).await;
        let id = uploaded["documentId"].as_str().unwrap();
        let signature = device_sign(&device, uploaded["hash"].as_str().unwrap());
        let delete = async {
            tokio::time::sleep(std::time::Duration::from_millis(round)).await;
            app.client
                .delete(app.url(&format!("/documents/{id}")))
                .bearer_auth(&app.api_key)
                .send()
                .await
        };

        let (signed, deleted) = tokio::join!(post_signature(&app, id, &signature), delete);

        let deleted = deleted.unwrap();
        assert_eq!(
            deleted.status(),
            204,
            "round {round}: {}",
            deleted.text().await.unwrap()
        );
        // The signature either landed before the delete, or lost to it with the error body.
        match signed.status().as_u16() {
            200 => {}
            400 => drop(assert_error(signed, 400, "ILLEGAL_OPERATION_ERROR").await),
            404 => drop(assert_error(signed, 404, "ERROR_RESOURCE_NOT_FOUND").await),
            other => panic!("the signature got {other}"),
        }
        let response = app
            .client
            .get(app.url(&format!("/documents/{id}/file")))
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
        let left: Vec<_> = std::fs::read_dir(app.data_dir.path().join("blobs/documents"))
            .unwrap()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(id))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// Uploads and signs a document; returns its id and signed bytes, checked twice against the
/// stored file (the first download reads it from disk, the second is served from the read cache,
/// sent from the page cache on a plain connection and from memory over TLS).
pub(crate) async fn signed_document(app: &TestApp) -> (String, Vec<u8>) {
    let device = enrolled(app, "phone", KeyKind::P256).await;
    let uploaded = upload(app, "phone", classic_pdf(3)).await;
    sign_ok(app, &device, &uploaded).await;
    let id = uploaded["documentId"].as_str().unwrap().to_owned();
    let stored = stored_signed_file(app, &id).await;
    let bytes = download(app, &id).await;
    assert!(bytes == stored, "the download is the stored file");
    assert!(download(app, &id).await == stored, "and so is the next one");
    (id, bytes)
}

async fn get_range(app: &TestApp, id: &str, headers: &[(&str, &str)]) -> Response {
    let mut request = app
        .client
        .get(app.url(&format!("/documents/{id}/file")))
        .bearer_auth(&app.api_key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn single_suffix_and_open_ended_ranges_return_exactly_those_bytes() {
    let app = spawn_app().await;
    let (id, file) = signed_document(&app).await;
    let total = file.len();
    for (range, expected) in [
        ("bytes=0-99", 0..100),
        ("bytes=100-", 100..total),
        ("bytes=-500", total - 500..total),
        (&format!("bytes=10-{}", total + 1000) as &str, 10..total),
        // One byte at either end and in the middle (read in one step, at an offset).
        ("bytes=-1", total - 1..total),
        ("bytes=0-0", 0..1),
        (
            &format!("bytes={0}-{0}", total / 2) as &str,
            total / 2..total / 2 + 1,
        ),
    ] {
        let response = get_range(&app, &id, &[("range", range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {}-{}/{total}", expected.start, expected.end - 1)
        );
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..], &file[expected], "{range}");
    }
}

#[tokio::test]
async fn several_ranges_come_back_as_multipart_byteranges() {
    let app = spawn_app().await;
    let (id, file) = signed_document(&app).await;
    let total = file.len();

    let response = get_range(&app, &id, &[("range", "bytes=0-9, 50-59, -5")]).await;
    assert_eq!(response.status(), 206);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart/byteranges");
    let body = response.bytes().await.unwrap();

    let parts: Vec<&[u8]> = split_parts(&body, boundary.as_bytes());
    assert_eq!(parts.len(), 3);
    for (part, (start, end)) in parts.iter().zip([(0, 9), (50, 59), (total - 5, total - 1)]) {
        let header_end = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&part[..header_end]);
        assert!(
            headers.contains(&format!("Content-Range: bytes {start}-{end}/{total}")),
            "{headers}"
        );
        assert!(
            headers.contains("Content-Type: application/pdf"),
            "{headers}"
        );
        assert_eq!(&part[header_end + 4..], &file[start..=end]);
    }
}

/// The part bodies of a multipart/byteranges body (headers included, framing CRLFs removed).
fn split_parts<'a>(body: &'a [u8], boundary: &[u8]) -> Vec<&'a [u8]> {
    let delimiter = [b"\r\n--".as_slice(), boundary].concat();
    let mut pieces = Vec::new();
    let mut rest = body;
    while let Some(at) = rest
        .windows(delimiter.len())
        .position(|w| w == delimiter.as_slice())
    {
        pieces.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    assert!(rest.starts_with(b"--"), "closing delimiter");
    pieces
        .into_iter()
        .skip(1)
        .map(|p| p.strip_prefix(b"\r\n").unwrap())
        .collect()
}

#[tokio::test]
async fn an_unsatisfiable_range_is_416_and_no_range_is_a_plain_200() {
    let app = spawn_app().await;
    let (id, file) = signed_document(&app).await;
    let total = file.len();

    let response = get_range(&app, &id, &[("range", &format!("bytes={total}-"))]).await;
    assert_eq!(response.status(), 416);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes */{total}")
    );

    // A suffix of no bytes selects nothing: a 416 too, with the error body.
    let response = get_range(&app, &id, &[("range", "bytes=-0")]).await;
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes */{total}")
    );
    let message = assert_error(response, 416, "ERROR_GENERIC").await;
    assert!(message.contains(&total.to_string()), "{message}");

    let response = get_range(&app, &id, &[]).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-range").is_none());
    assert_eq!(response.bytes().await.unwrap().len(), total);
}

#[tokio::test]
async fn if_range_with_the_current_etag_gives_the_range_and_a_stale_one_the_whole_file() {
    let app = spawn_app().await;
    let (id, file) = signed_document(&app).await;
    let etag = get_range(&app, &id, &[]).await.headers()["etag"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let response = get_range(&app, &id, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(response.status(), 206);
    assert_eq!(&response.bytes().await.unwrap()[..], &file[..10]);

    let stale = "\"0123456789abcdef0123456789abcdef\"";
    let response = get_range(&app, &id, &[("range", "bytes=0-9"), ("if-range", stale)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), file.len());
}
