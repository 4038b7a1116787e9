//! The data directory: every directory Signet creates is 0700 and every file 0600 under the
//! usual umask 022, an existing directory open to others is reported at start-up, and the files a
//! crash leaves in the blob store are swept while everything a row names is kept.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use signet::domain::{DocumentId, OrderId};
use signet::store::blobs::{BlobKey, SweepReport, BLOB_ORPHAN_AGE, TEMP_ORPHAN_AGE};
use signet_testkit::pdfs::classic_pdf;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::helpers::{spawn_app_on, start_with, Db, TestApp};
use crate::openssl::{self, device_key, KeyKind};
use crate::orders::person;

const SIGNET: &str = env!("CARGO_BIN_EXE_signet");

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Every directory and file under `root` (not `root` itself) with its mode.
fn walk(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let is_dir = std::fs::symlink_metadata(&path).unwrap().is_dir();
            if is_dir {
                pending.push(path.clone());
            }
            found.push((path.clone(), is_dir, mode(&path)));
        }
    }
    found
}

fn assert_owner_only(root: &Path) {
    let entries = walk(root);
    let loose: Vec<String> = entries
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(path, _, mode)| format!("{} {mode:04o}", path.display()))
        .collect();
    assert!(loose.is_empty(), "not owner-only: {loose:#?}");
    for expected in ["signet.db", "ca/ca.key", "link.key", "blobs/tmp"] {
        assert!(root.join(expected).exists(), "{expected} was not created");
    }
}

/// Uploads a PDF for a fresh device, signs it as the device; returns the document id.
async fn signed_document(app: &TestApp) -> String {
    let device = device_key(KeyKind::P256, "files");
    app.enroll("files-signer", &device.csr_pem).await;
    let form = Form::new().text("signerId", "files-signer").part(
        "file",
        Part::bytes(classic_pdf(1))
            .file_name("contract.pdf")
            .mime_str("application/pdf")
            .unwrap(),
    );
    let response = app
        .client
        .post(app.url("/documents/upload"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let uploaded: Value = response.json().await.unwrap();
    let dir = device.dir.path();
    std::fs::write(
        dir.join("tbs.der"),
        BASE64.decode(uploaded["hash"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let key = device.key.to_str().unwrap();
    openssl::run(
        &[
            "dgst", "-sha256", "-sign", key, "-out", "tbs.sig", "tbs.der",
        ],
        dir,
    );
    let signature = BASE64.encode(std::fs::read(dir.join("tbs.sig")).unwrap());
    let document_id = uploaded["documentId"].as_str().unwrap().to_owned();
    let response = app
        .post_json(
            &format!("/documents/{document_id}/signature"),
            &json!({"signature": signature}),
        )
        .await;
    assert_eq!(response.status(), 200);
    document_id
}

#[tokio::test]
async fn every_directory_and_file_the_server_creates_is_owner_only_under_umask_022() {
    // The library itself never sets the umask: what is asserted here is the explicit modes.
    // Process-wide, but 022 is what every other test runs under anyway.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let database_url = format!("sqlite:{}", data.join("signet.db").display());
    let clock = std::sync::Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let data_for_settings = data.clone();
    let app = start_with(root, database_url, clock, |settings| {
        settings.data_dir = data_for_settings;
    })
    .await;

    signed_document(&app).await;
    let order = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    app.sign_as(&order, 0).await.unwrap();

    assert_eq!(mode(&data), 0o700);
    assert_owner_only(&data);
    assert!(
        data.join("signet.db-wal").exists(),
        "the WAL is checked too"
    );
}

/// The log line without its ANSI colour codes.
fn without_colours(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn the_binary_reports_an_existing_data_directory_open_to_others_and_leaves_its_mode() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut child = Command::new("sh")
        .args(["-c", "umask 022; exec \"$0\" serve --data-dir \"$1\""])
        .arg(SIGNET)
        .arg(&data)
        .env("SIGNET_LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNET_LOG", "info")
        .env_remove("SIGNET_DATABASE_URL")
        .env_remove("SIGNET_DATA_DIR")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = without_colours(&line.unwrap());
        let listening = line.contains("signet is listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let warning = lines
        .iter()
        .find(|line| line.contains("open to other local users"))
        .unwrap_or_else(|| panic!("no warning in {lines:#?}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!("path={}", data.display())),
        "{warning}"
    );
    assert!(warning.contains("mode=\"0755\""), "{warning}");
    assert_eq!(
        mode(&data),
        0o755,
        "an operator's directory is reported, not changed"
    );
    assert_owner_only(&data);
}

#[test]
fn the_cli_creates_an_owner_only_data_directory_too() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    for command in ["api-key create", "ca show"] {
        let output = Command::new("sh")
            .args([
                "-c",
                // `--init`: without it a missing data directory is refused (issue 13).
                &format!("umask 022; exec \"$0\" {command} --init --data-dir \"$1\""),
            ])
            .arg(SIGNET)
            .arg(&data)
            .env_remove("SIGNET_DATABASE_URL")
            .env_remove("SIGNET_DATA_DIR")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(mode(&data), 0o700);
    let loose: Vec<_> = walk(&data)
        .into_iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .collect();
    assert!(loose.is_empty(), "{loose:?}");
    assert!(data.join("signet.db").exists() && data.join("ca/ca.pem").exists());
}

/// Makes a file look last written `ago` before now.
fn age(path: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

/// Waits for the background sweep to remove `path`. Not a timing assertion: the generous bound
/// only turns a sweep that never runs into a failure instead of a hang.
async fn until_removed(path: &Path) {
    for _ in 0..1200 {
        if !path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} was never swept", path.display());
}

async fn files_a_crash_left_are_swept_and_everything_named_is_kept(db: Db) {
    let Some(app) = spawn_app_on(db).await else {
        return;
    };
    let document_id = signed_document(&app).await;
    let order = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    let document = app
        .state
        .store
        .find_document(&DocumentId::parse(&document_id).unwrap())
        .await
        .unwrap()
        .unwrap()
        .signed_blob
        .unwrap();
    let order_id = OrderId::parse(&order).unwrap();
    let version = app
        .state
        .store
        .find_order(&order_id)
        .await
        .unwrap()
        .unwrap()
        .document
        .blob;
    let blobs = app.state.blobs.files().unwrap().clone();
    let (document_bytes, order_bytes) = (
        std::fs::read(blobs.path(&document)).unwrap(),
        app.order_document(&order).await,
    );
    let (data_dir, database_url, clock) = app.stop().await;

    // What a crash leaves: an upload's temporary file, a document whose row never committed,
    // an order version superseded just before the crash; and the same, written a minute ago.
    let day = BLOB_ORPHAN_AGE + Duration::from_secs(60);
    let plant = |key: &str, ago: Duration| {
        let path = blobs.path(&BlobKey::parse(key).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"%PDF-orphan").unwrap();
        age(&path, ago);
        path
    };
    let tmp = data_dir.path().join("blobs/tmp");
    let old_temp = tmp.join("0123456789abcdef0123456789abcdef.part");
    std::fs::write(&old_temp, b"half an upload").unwrap();
    age(&old_temp, TEMP_ORPHAN_AGE + Duration::from_secs(60));
    let young_temp = tmp.join("fedcba9876543210fedcba9876543210.part");
    std::fs::write(&young_temp, b"an upload in flight").unwrap();
    let never_committed = plant(&format!("documents/{}.pdf", DocumentId::new_random()), day);
    let superseded = plant(
        BlobKey::order_version(order_id, uuid::Uuid::new_v4()).as_str(),
        day,
    );
    let young = plant(
        &format!("documents/{}.pdf", DocumentId::new_random()),
        Duration::from_secs(60),
    );
    // The files rows name are just as old: age alone must never remove anything.
    age(&blobs.path(&document), day);
    age(&blobs.path(&version), day);

    let app = start_with(data_dir, database_url, clock, |settings| {
        settings.job_interval_seconds = 3600;
    })
    .await;
    assert!(!old_temp.exists(), "swept when the blob store opened");
    until_removed(&never_committed).await;
    until_removed(&superseded).await;

    assert!(
        young_temp.exists() && young.exists(),
        "young files are left alone"
    );
    let kept = app.runner.sweep_orphans().await.unwrap();
    assert_eq!(
        kept,
        SweepReport {
            temp_removed: 0,
            orphans_removed: 0,
            referenced: 2,
            left_alone: 0
        }
    );
    let response = app.get(&format!("/documents/{document_id}/file")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap(), document_bytes);
    assert_eq!(app.order_document(&order).await, order_bytes);
}

#[tokio::test]
async fn files_a_crash_left_are_swept_and_everything_named_is_kept_on_sqlite() {
    files_a_crash_left_are_swept_and_everything_named_is_kept(Db::Sqlite).await;
}

#[tokio::test]
async fn files_a_crash_left_are_swept_and_everything_named_is_kept_on_postgres() {
    files_a_crash_left_are_swept_and_everything_named_is_kept(Db::Postgres).await;
}
