//! The hostile PDFs of issue 10 (`signet_testkit::bombs`, generated here) through both upload
//! APIs, the unauthenticated `POST /orders` and `POST /documents` with a key: each refused with
//! the documented DOCUMENT_UPLOAD_ERROR body naming the limit it broke, and nothing stored.
//! The engine's own test (crates/signet-pdf/tests/bombs.rs) bounds their memory.

use reqwest::multipart::{Form, Part};
use signet_testkit::bombs;

use crate::helpers::{assert_error, spawn_app, TestApp};
use crate::openssl::{device_key, KeyKind};
use crate::orders::person;

/// Each bomb, and what the refusal says.
fn bombs() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    vec![
        (
            "12 million xref rows in 61 KB",
            bombs::wide_xref_stream(),
            "cross-reference entries",
        ),
        (
            "64 million one-byte xref rows",
            bombs::xref_stream_chain([1, 0, 0], 64 << 20, 1),
            "cross-reference entries",
        ),
        (
            "a /Prev chain of 4 huge xref streams",
            bombs::xref_stream_chain([1, 4, 0], 12_582_912, 4),
            "cross-reference entries",
        ),
        (
            "8 object streams of 64 MiB",
            bombs::object_stream_bomb(8, 64 << 20),
            "decoded bytes",
        ),
        (
            "2,000 fields that never close",
            bombs::unclosed_fields_bomb(2000, 4 << 20),
            "bytes examined",
        ),
        (
            "a cross-reference stream cut short",
            bombs::truncated_xref_stream(true),
            "truncated",
        ),
    ]
}

fn order_form(pdf: Vec<u8>) -> Form {
    Form::new()
        .text("title", "Contract")
        .text("description", "Please sign")
        .part("upload", Part::bytes(pdf).file_name("contract.pdf"))
        .text(
            "solicitor",
            person("INTERNAL", "sAMAccountName=cborgstrom", None).to_string(),
        )
        .text(
            "signers",
            person("INTERNAL", "sAMAccountName=jdoe", None).to_string(),
        )
}

fn document_form(pdf: Vec<u8>) -> Form {
    Form::new().text("signerId", "phone").part(
        "file",
        Part::bytes(pdf)
            .file_name("contract.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    )
}

fn assert_nothing_stored(app: &TestApp) {
    let blobs = app.data_dir.path().join("blobs");
    let documents: Vec<_> = std::fs::read_dir(blobs.join("documents"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(documents.is_empty(), "left behind: {documents:?}");
    let temporary = crate::helpers::temporary_files(app.data_dir.path());
    assert!(temporary.is_empty(), "left behind: {temporary:?}");
}

#[tokio::test]
async fn every_pdf_bomb_is_refused_on_both_apis_with_the_limit_it_broke() {
    let app = spawn_app().await;
    app.enroll("phone", &device_key(KeyKind::P256, "phone").csr_pem)
        .await;
    for (what, pdf, says) in bombs() {
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .multipart(order_form(pdf.clone()))
            .send()
            .await
            .unwrap();
        let message = assert_error(response, 400, "DOCUMENT_UPLOAD_ERROR").await;
        assert!(message.contains(says), "POST /orders, {what}: {message}");

        let response = app
            .client
            .post(app.url("/documents"))
            .bearer_auth(&app.api_key)
            .multipart(document_form(pdf))
            .send()
            .await
            .unwrap();
        let message = assert_error(response, 400, "DOCUMENT_UPLOAD_ERROR").await;
        assert!(message.contains(says), "POST /documents, {what}: {message}");
        assert_nothing_stored(&app);
    }
}
