//! Documents in S3-compatible object storage (`--blob-url s3://…`), against a real Garage: the
//! CloudSigner device flow at the default level, B-LT and B-LTA and a signing order, judged by
//! the same oracles as on files (the flows of `levels.rs`, parametrized by [`Storage`]);
//! downloads and Range requests answered from the bucket; a store that is down answered with
//! 503 `STORAGE_UNAVAILABLE` and nothing changed, then the same request succeeding once it is
//! back; `signet migrate-blobs` leaving every document byte-identical; the orphan sweep taking
//! what a crash left and never what a row names.

use signet::domain::{DocumentId, OrderId, SignatureLevel};
use signet::store::blobs::{BlobKey, SweepReport};
use std::io::Write;
use std::time::{Duration, SystemTime};

use crate::garage::Garage;
use crate::helpers::{assert_error, database_url_for, start_with, Db, Storage, TestApp};
use crate::levels::{
    self, assert_long_term_valid, document_status, download, enrolled, post_signature, upload,
    write,
};
use crate::openssl::KeyKind;
use crate::orders::person;

async fn spawn_on_garage(db: Db, garage: &Garage) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = std::sync::Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    Some(
        start_with(data_dir, database_url, clock, |s| {
            Storage::Objects(garage).apply(s)
        })
        .await,
    )
}

#[tokio::test]
async fn device_signatures_at_the_default_level_b_lt_and_b_lta_validate_offline_on_object_storage()
{
    let Some(garage) = Garage::start() else {
        return;
    };
    levels::device_documents_validate_offline(Db::Sqlite, Storage::Objects(&garage), 1, 3).await;
}

#[tokio::test]
async fn an_order_signed_by_three_on_postgres_and_object_storage_validates_offline() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some((signed, ca)) = levels::three_signers_at(
        Db::Postgres,
        Storage::Objects(&garage),
        SignatureLevel::PadesBLT,
        dir.path(),
    )
    .await
    else {
        return;
    };
    assert_long_term_valid(&signed, &ca, 3, 0);
}

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url(path)).bearer_auth(&app.api_key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_signed_document_downloads_whole_and_by_ranges_from_the_bucket() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let app = spawn_on_garage(Db::Sqlite, &garage).await.unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (id, hash) = upload(&app, &device).await;
    let response = post_signature(&app, &device, &id, &hash, Some("PADES_B_B")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let file = download(&app, &id).await;
    let path = format!("/documents/{id}/file");
    let whole = get_with(&app, &path, &[]).await;
    let etag = whole.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(whole.headers()["content-length"], file.len().to_string());
    let total = file.len();

    for (range, expected) in [
        ("bytes=0-99", 0..100),
        ("bytes=100-", 100..total),
        ("bytes=-500", total - 500..total),
    ] {
        let response = get_with(&app, &path, &[("range", range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {}-{}/{total}", expected.start, expected.end - 1)
        );
        assert_eq!(&response.bytes().await.unwrap()[..], &file[expected]);
    }

    let response = get_with(&app, &path, &[("range", "bytes=0-9,20-29")]).await;
    assert_eq!(response.status(), 206);
    let body = response.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(&format!("Content-Range: bytes 0-9/{total}")));
    assert!(text.contains(&format!("Content-Range: bytes 20-29/{total}")));
    assert!(body.windows(10).any(|w| w == &file[20..30]));

    let response = get_with(&app, &path, &[("range", &format!("bytes={total}-"))]).await;
    assert_error(response, 416, "ERROR_GENERIC").await;

    let stale = get_with(
        &app,
        &path,
        &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(stale.status(), 200, "a stale If-Range gets the whole file");
    let fresh = get_with(&app, &path, &[("range", "bytes=0-9"), ("if-range", &etag)]).await;
    assert_eq!(fresh.status(), 206);
    assert_eq!(&fresh.bytes().await.unwrap()[..], &file[..10]);

    // Nothing of the document is on this replica's disk: it is all in the bucket.
    let local = app.data_dir.path().join("blobs/documents");
    assert_eq!(std::fs::read_dir(local).unwrap().count(), 0);
}

#[tokio::test]
async fn a_store_that_is_down_answers_503_changes_nothing_and_the_same_request_works_once_it_is_back(
) {
    let Some(mut garage) = Garage::start() else {
        return;
    };
    let app = spawn_on_garage(Db::Sqlite, &garage).await.unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (id, hash) = upload(&app, &device).await;

    garage.stop();
    let signature = serde_json::json!({"signature": levels::device_signature(&device, &hash)});
    let refused = app
        .post_json(&format!("/documents/{id}/signature"), &signature)
        .await;
    let message = assert_error(refused, 503, "STORAGE_UNAVAILABLE").await;
    assert!(message.contains("try again"), "{message}");
    assert_eq!(document_status(&app, &id).await, "WAITING");
    let upload_refused = levels::upload_response(&app, &device).await;
    assert_error(upload_refused, 503, "STORAGE_UNAVAILABLE").await;
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503, "not ready without the document store");

    garage.restart();
    let signed = app
        .post_json(&format!("/documents/{id}/signature"), &signature)
        .await;
    assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
    assert_eq!(document_status(&app, &id).await, "SIGNED");
    let dir = tempfile::tempdir().unwrap();
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let pdf = write(dir.path(), "signed.pdf", &download(&app, &id).await);
    app.stop().await;
    assert_long_term_valid(&pdf, &ca, 1, 0);
}

/// Everything one app's clients can download: each document's and order's file.
async fn downloads(app: &TestApp, documents: &[String], orders: &[String]) -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for id in documents {
        files.push(download(app, id).await);
    }
    for id in orders {
        files.push(app.order_document(id).await);
    }
    files
}

#[tokio::test]
async fn migrate_blobs_copies_a_populated_installation_byte_for_byte_and_resumes() {
    let Some(garage) = Garage::start() else {
        return;
    };
    // A file-backed installation: signed documents, one still waiting, an order part-signed.
    let app = crate::helpers::spawn_app().await;
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let mut signed = Vec::new();
    for level in [Some("PADES_B_B"), None] {
        let (id, hash) = upload(&app, &device).await;
        let response = post_signature(&app, &device, &id, &hash, level).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        signed.push(id);
    }
    let (waiting, waiting_hash) = upload(&app, &device).await;
    let order = app
        .create_order(&[
            person("INTERNAL", "sAMAccountName=cborgstrom", None),
            person("EXTERNAL", "200001011907", None),
        ])
        .await;
    app.sign_as(&order, 0).await.unwrap();
    let orders = vec![order.clone()];
    let before = downloads(&app, &signed, &orders).await;
    let (data_dir, database_url, clock) = app.stop().await;

    let config = data_dir.path().join("signet.toml");
    std::fs::write(&config, "# Signet\n").unwrap();
    let url = garage.url("migrated");
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["migrate-blobs", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--database-url", &database_url, "--to", &url])
            .envs(garage.env())
            .output()
            .unwrap()
    };
    let first = migrate();
    let said = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first.status.success(), "{said}");
    // Two signed documents, the waiting one, the order's current version.
    assert!(said.contains("4 document file(s) copied"), "{said}");
    let second = migrate();
    let said = String::from_utf8_lossy(&second.stderr).into_owned();
    assert!(second.status.success(), "{said}");
    assert!(
        said.contains(
            "0 document file(s) copied (0 bytes) and verified by SHA-256, 4 already there"
        ),
        "{said}"
    );
    let written: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    assert_eq!(written["blob_url"].as_str(), Some(url.as_str()));

    // The same database on the bucket: the files are gone from sight, the bytes identical.
    std::fs::remove_dir_all(data_dir.path().join("blobs")).unwrap();
    let app = start_with(data_dir, database_url, clock, |s| {
        s.blob_url = Some(url.clone());
        s.object_store_env = Some(garage.env());
    })
    .await;
    assert_eq!(downloads(&app, &signed, &orders).await, before);
    // And the work goes on there: the waiting document and the order's second signer sign.
    let response = post_signature(&app, &device, &waiting, &waiting_hash, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    app.sign_as(&order, 1).await.unwrap();
    assert_eq!(app.order_state(&order).await, "ACCEPTED");
    let dir = tempfile::tempdir().unwrap();
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    let document = write(dir.path(), "waiting.pdf", &download(&app, &waiting).await);
    let order_pdf = write(dir.path(), "order.pdf", &app.order_document(&order).await);
    app.stop().await;
    assert_long_term_valid(&document, &ca, 1, 0);
    signet_testkit::assert_pyhanko_accepts(&order_pdf, &ca, 2, &[]);
}

/// Runs the orphan sweep as if `ahead` had passed, with the store's real lookup.
async fn sweep_ahead(app: &TestApp, ahead: Duration) -> SweepReport {
    let (blobs, store) = (app.state.blobs.clone(), app.state.store.clone());
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        blobs.sweep(SystemTime::now() + ahead, |keys| {
            runtime
                .block_on(store.referenced_blobs(keys))
                .map_err(std::io::Error::other)
        })
    })
    .await
    .unwrap()
    .unwrap()
}

/// Stores `bytes` under `key` as an upload does, without the row a crash kept from committing.
async fn place(app: &TestApp, key: BlobKey, bytes: &'static [u8]) {
    let blobs = app.state.blobs.clone();
    tokio::task::spawn_blocking(move || {
        let (temp, mut file) = blobs.create_temp().unwrap();
        file.write_all(bytes).unwrap();
        blobs.persist(temp, &file, &key).unwrap();
    })
    .await
    .unwrap();
}

async fn exists(app: &TestApp, key: &BlobKey) -> bool {
    let (blobs, key) = (app.state.blobs.clone(), key.clone());
    tokio::task::spawn_blocking(move || match blobs.open_read(&key) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("{e}"),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_orphan_sweep_removes_objects_a_crash_left_and_never_one_a_row_names() {
    let Some(garage) = Garage::start() else {
        return;
    };
    let app = spawn_on_garage(Db::Sqlite, &garage).await.unwrap();
    let device = enrolled(&app, "phone", KeyKind::P256).await;
    let (waiting, hash) = upload(&app, &device).await;
    let named = BlobKey::prepared(DocumentId::parse(&waiting).unwrap());
    let orphan_document = BlobKey::prepared(DocumentId::new_random());
    let orphan_version = BlobKey::order_version(OrderId::new_random(), uuid::Uuid::new_v4());
    place(&app, orphan_document.clone(), b"%PDF-crashed upload").await;
    place(&app, orphan_version.clone(), b"%PDF-crashed version").await;

    let young = sweep_ahead(&app, Duration::ZERO).await;
    assert_eq!(
        young.orphans_removed, 0,
        "young objects are left: {young:?}"
    );
    assert!(exists(&app, &orphan_document).await);

    let day = Duration::from_secs(2 * 24 * 60 * 60);
    let report = sweep_ahead(&app, day).await;
    assert_eq!(report.orphans_removed, 2, "{report:?}");
    assert_eq!(report.referenced, 1, "{report:?}");
    assert!(!exists(&app, &orphan_document).await);
    assert!(!exists(&app, &orphan_version).await);
    assert!(exists(&app, &named).await);
    // The document the row names still signs, and downloads.
    let response = post_signature(&app, &device, &waiting, &hash, Some("PADES_B_B")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(download(&app, &waiting).await.starts_with(b"%PDF-"));
}
