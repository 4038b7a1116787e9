//! The operator commands against a live installation: `api-key list|revoke` (a revoked key gets
//! 401 from the running server), `signer revoke` (the CRL and OCSP say so), `order list|show`
//! (no personal numbers), and `backup` taken from a running `signet serve` while uploads and
//! signatures go on, restored into a fresh directory that serves every acknowledged document
//! with a signature pyHanko accepts.

use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::helpers::{assert_error, spawn_app_on, Db, TestApp};
use crate::openssl::{self, device_key, DeviceKey, KeyKind};
use crate::orders::person;
use crate::support::{free_port, pdf_upload_form, signet_command, stderr_until};

/// `signet <args> --data-dir <app's> --database-url <app's>`, without the caller's settings.
///
/// Awaited, never waited for: the test's runtime also runs the in-process server, and blocking
/// it while one of the server's SQLite writes is half-way would keep the write lock from the
/// command for good.
async fn signet_on(app_dir: &Path, database_url: &str, args: &[&str]) -> Output {
    tokio::process::Command::from(signet_command())
        .args(args)
        .arg("--data-dir")
        .arg(app_dir)
        .arg("--database-url")
        .arg(database_url)
        .output()
        .await
        .unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

async fn cli(app: &TestApp, args: &[&str]) -> String {
    ok(signet_on(app.data_dir.path(), &app.database_url, args).await)
}

async fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&cli(app, &args).await).unwrap()
}

async fn status_with_key(app: &TestApp, key: &str) -> u16 {
    app.client
        .get(app.url("/signers/nobody"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Copies the files of `from` (and its subdirectories) into `to`, keeping their permissions.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

async fn revoked_keys_get_401(db: Db) {
    let Some(app) = spawn_app_on(db).await else {
        return;
    };
    // On PostgreSQL, a second server (a replica with its own caches and LISTEN connection) on
    // the same database caches the key too, and must refuse it as well. Started first: it
    // creates a key of its own, which must not be taken for the one under test. Its data
    // directory holds copies of the installation's CA files, as a replica's must.
    let replica = match db {
        Db::Postgres => {
            let replica_dir = tempfile::tempdir().unwrap();
            copy_dir(
                &app.data_dir.path().join("ca"),
                &replica_dir.path().join("ca"),
            );
            let replica =
                crate::helpers::start(replica_dir, app.database_url.clone(), app.clock.clone())
                    .await;
            Some(replica)
        }
        Db::Sqlite => None,
    };
    let before = cli_json(&app, &["api-key", "list"]).await;
    let key = cli(&app, &["api-key", "create"])
        .await
        .lines()
        .last()
        .unwrap()
        .to_owned();
    assert_eq!(status_with_key(&app, &key).await, 404, "the new key works");
    if let Some(replica) = &replica {
        assert_eq!(
            status_with_key(replica, &key).await,
            404,
            "the key works on the replica"
        );
    }

    let listed = cli_json(&app, &["api-key", "list"]).await;
    let table = cli(&app, &["api-key", "list"]).await;
    assert!(!table.contains(&key), "a key is never shown: {table}");
    let known: Vec<&str> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    let new = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| !known.contains(&k["id"].as_str().unwrap()))
        .expect("the new key is listed");
    assert!(new["revoked_at"].is_null(), "{new}");
    let id = new["id"].as_str().unwrap().to_owned();

    // Used once more right before the revocation, so each server holds it in its cache.
    for server in [&app].into_iter().chain(replica.as_ref()) {
        assert_eq!(status_with_key(server, &key).await, 404);
    }
    cli(&app, &["api-key", "revoke", &id]).await;
    let listed = cli_json(&app, &["api-key", "list"]).await;
    let revoked = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    // A second revocation says there is nothing to revoke.
    assert!(!signet_on(
        app.data_dir.path(),
        &app.database_url,
        &["api-key", "revoke", &id]
    )
    .await
    .status
    .success());

    // The server trusted the key from its cache until now; the CLI's commit says it changed.
    match db {
        // The very next request is refused (the change file beside the database is read on
        // every cache check).
        Db::Sqlite => {
            let refused = app
                .client
                .get(app.url("/signers/nobody"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_error(refused, 401, "ERROR_UNAUTHORIZED").await;
        }
        // PostgreSQL delivers the CLI's NOTIFY to the server's LISTEN connection on its own
        // schedule (normally well under a millisecond): poll, bounded, until it is refused.
        Db::Postgres => {
            for server in [&app].into_iter().chain(replica.as_ref()) {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let status = status_with_key(server, &key).await;
                    if status == 401 {
                        break;
                    }
                    assert_eq!(status, 404);
                    assert!(Instant::now() < deadline, "the revoked key still works");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    assert_eq!(
        status_with_key(&app, &app.api_key).await,
        404,
        "other keys still work"
    );
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_by_the_running_server_on_sqlite() {
    revoked_keys_get_401(Db::Sqlite).await;
}

#[tokio::test]
async fn a_revoked_api_key_is_refused_by_the_running_server_on_postgres() {
    revoked_keys_get_401(Db::Postgres).await;
}

async fn signer_revoked_in_crl_and_ocsp(db: Db) {
    let Some(app) = spawn_app_on(db).await else {
        return;
    };
    let device = device_key(KeyKind::P256, "stolen-phone");
    app.enroll("stolen-phone", &device.csr_pem).await;
    let kept = device_key(KeyKind::P256, "kept-phone");
    app.enroll("kept-phone", &kept.csr_pem).await;
    let details = app.signer("stolen-phone").await;
    let serial =
        openssl::serial_as_openssl_prints(details["certificate"]["serialNumber"].as_str().unwrap());

    let listed = cli_json(&app, &["signer", "list"]).await;
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signer_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["kept-phone", "stolen-phone"]);
    assert!(
        !cli(&app, &["signer", "list"]).await.contains("user-1"),
        "no user ids"
    );

    cli(
        &app,
        &[
            "signer",
            "revoke",
            "stolen-phone",
            "--reason",
            "KEY_COMPROMISE",
        ],
    )
    .await;
    let shown = cli_json(&app, &["signer", "show", "stolen-phone"]).await;
    assert_eq!(shown["status"], "REVOKED", "{shown}");
    assert_eq!(
        shown["certificates"][0]["revocation_reason"], "keyCompromise",
        "{shown}"
    );
    assert_eq!(app.signer("stolen-phone").await["signerStatus"], "REVOKED");
    assert_eq!(app.signer("kept-phone").await["signerStatus"], "ACTIVE");

    // The CRL the running server serves lists it, signed by the CA.
    let ca = app.ca_pem().await;
    let crl = app.crl_der().await;
    let text = openssl::crl_text(&crl, &ca);
    assert!(text.contains("verify OK"), "{text}");
    assert!(text.to_uppercase().contains(&serial), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");

    // OCSP, asked at the URL the certificate names.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    std::fs::write(
        dir.path().join("signer.pem"),
        details["certificate"]["pem"].as_str().unwrap(),
    )
    .unwrap();
    let url = openssl::text(
        &["x509", "-in", "signer.pem", "-noout", "-ocsp_uri"],
        dir.path(),
    );
    let path = dir.path().to_owned();
    let text = tokio::task::spawn_blocking(move || {
        openssl::text(
            &[
                "ocsp",
                "-issuer",
                "ca.pem",
                "-cert",
                "signer.pem",
                "-url",
                url.trim(),
                "-CAfile",
                "ca.pem",
            ],
            &path,
        )
    })
    .await
    .unwrap();
    assert!(text.contains("signer.pem: revoked"), "{text}");
    assert!(text.contains("keyCompromise"), "{text}");

    // As with the API, revoking again changes nothing; an unknown signer is an error.
    let again = signet_on(
        app.data_dir.path(),
        &app.database_url,
        &["signer", "revoke", "stolen-phone"],
    )
    .await;
    assert!(String::from_utf8_lossy(&again.stderr).contains("0 certificate(s) revoked"));
    let unknown = signet_on(
        app.data_dir.path(),
        &app.database_url,
        &["signer", "revoke", "no-such-phone"],
    )
    .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no signer no-such-phone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_revoked_by_the_operator_is_revoked_in_the_crl_and_ocsp_on_sqlite() {
    signer_revoked_in_crl_and_ocsp(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signer_revoked_by_the_operator_is_revoked_in_the_crl_and_ocsp_on_postgres() {
    signer_revoked_in_crl_and_ocsp(Db::Postgres).await;
}

#[tokio::test]
async fn orders_are_listed_and_shown_without_personal_numbers() {
    let app = spawn_app_on(Db::Sqlite).await.unwrap();
    let order_id = app
        .create_order(&[
            person("EXTERNAL", "200001011907", Some(1)),
            person("INTERNAL", "sAMAccountName=jdoe", Some(2)),
        ])
        .await;
    let order_id = order_id.trim().trim_matches('"').to_owned();

    let listed = cli_json(&app, &["order", "list"]).await;
    let order = &listed[0];
    assert_eq!(order["order_id"], order_id.as_str(), "{listed}");
    assert_eq!(order["title"], "Contract");
    assert_eq!(order["state"], "PENDING");
    let statuses: Vec<&str> = order["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2, "{order}");

    let table = cli(&app, &["order", "list"]).await;
    assert!(
        table.contains(&order_id) && table.contains("0/2 signed"),
        "{table}"
    );
    let shown = cli(&app, &["order", "show", &order_id]).await;
    assert!(
        shown.contains("PENDING") && shown.contains("EXTERNAL"),
        "{shown}"
    );
    for output in [&table, &shown, &listed.to_string()] {
        for personal in ["200001011907", "Elsa", "jdoe", "example"] {
            assert!(!output.contains(personal), "{personal} printed: {output}");
        }
    }
    let missing = signet_on(
        app.data_dir.path(),
        &app.database_url,
        &["order", "show", "00000000-0000-4000-8000-000000000000"],
    )
    .await;
    assert!(!missing.status.success());
}

// ---- backup and restore of a running server -------------------------------------------------

/// A `signet serve` child on a data directory, killed when dropped.
struct Server {
    child: Child,
    address: String,
    api_key: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `signet serve` on `data_dir` and waits until it listens; `api_key` is the one
    /// the first start wrote (or `None` to read it from the data directory).
    fn start(data_dir: &Path, api_key: Option<String>) -> Server {
        let port = free_port();
        let mut child = signet_command()
            .args(["serve", "--signature-level", "PADES_B_B", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("SIGNET_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = stderr_until(&mut child, "signet is listening");
        assert!(
            log.iter().any(|l| l.contains("signet is listening")),
            "{log:?}"
        );
        let api_key = api_key.unwrap_or_else(|| {
            std::fs::read_to_string(data_dir.join("initial-api-key"))
                .unwrap()
                .trim()
                .to_owned()
        });
        Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
            api_key,
            client: reqwest::Client::new(),
        }
    }

    async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.address))
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json().await.unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap()
    }
}

fn device_sign(device: &DeviceKey, hash_b64: &str, name: &str) -> String {
    crate::support::device_signature(&device.key, device.dir.path(), name, hash_b64)
}

/// What the server acknowledged: an upload (WAITING) or a signature (SIGNED).
#[derive(Debug, Clone)]
struct Acknowledged {
    document_id: String,
    /// The SignedAttributes to sign (the upload's `hash`).
    hash: String,
    signed: bool,
}

/// Uploads and signs documents until `stop`; every acknowledgement is recorded.
async fn upload_and_sign_loop(
    server: Arc<Server>,
    device: Arc<DeviceKey>,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        n += 1;
        let response = server
            .client
            .post(format!("{}/documents/upload", server.address))
            .bearer_auth(&server.api_key)
            .multipart(pdf_upload_form("backup-phone", 1 + n % 3))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let uploaded: Value = response.json().await.unwrap();
        let document_id = uploaded["documentId"].as_str().unwrap().to_owned();
        let hash = uploaded["hash"].as_str().unwrap().to_owned();
        acknowledged.lock().unwrap().push(Acknowledged {
            document_id: document_id.clone(),
            hash: hash.clone(),
            signed: false,
        });
        // Every third upload stays WAITING; the others are signed.
        if n % 3 == 0 {
            continue;
        }
        let (device, tbs, name) = (device.clone(), hash.clone(), format!("tbs-{n}"));
        let signature = tokio::task::spawn_blocking(move || device_sign(&device, &tbs, &name))
            .await
            .unwrap();
        let (status, body) = server
            .post_json(
                &format!("/documents/{document_id}/signature"),
                &json!({"signature": signature}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        acknowledged.lock().unwrap().push(Acknowledged {
            document_id,
            hash,
            signed: true,
        });
    }
}

fn signet_plain(args: &[&str], data_dir: &Path) -> Output {
    signet_command()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_every_acknowledged_document_intact() {
    let root = tempfile::tempdir().unwrap();
    let live = root.path().join("live");
    let server = Arc::new(Server::start(&live, None));
    let device = Arc::new(device_key(KeyKind::P256, "backup-phone"));
    let (status, body) = server
        .post_json(
            "/signers",
            &json!({"signerId": "backup-phone", "userId": "u", "csr": device.csr_pem}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(upload_and_sign_loop(
        server.clone(),
        device.clone(),
        acknowledged.clone(),
        stop.clone(),
    ));
    // Let some documents be acknowledged before the backup starts, then back up under load.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.lock().unwrap().len() < 12 {
        assert!(Instant::now() < deadline, "the load loop is stuck");
        assert!(!load.is_finished(), "the load loop failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before_backup: Vec<Acknowledged> = acknowledged.lock().unwrap().clone();
    let backup_dir = root.path().join("backup");
    let (live_dir, dest) = (live.clone(), backup_dir.clone());
    let backup = tokio::task::spawn_blocking(move || {
        signet_command()
            .arg("backup")
            .arg("--data-dir")
            .arg(&live_dir)
            .arg(&dest)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let during = acknowledged.lock().unwrap().len() - before_backup.len();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    load.await.unwrap();
    let report = ok(backup);
    eprintln!("backup done; {during} acknowledgements while it ran. {report}");

    // A backup never goes over something that exists.
    let again = signet_plain(&["backup", backup_dir.to_str().unwrap()], &live);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Restore: refused into a non-empty directory, done into a fresh one.
    let refused = signet_plain(&["restore", backup_dir.to_str().unwrap()], &live);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    let restored = root.path().join("restored");
    ok(signet_plain(
        &["restore", backup_dir.to_str().unwrap()],
        &restored,
    ));
    {
        use sqlx::{Connection, Row};
        let mut connection = sqlx::SqliteConnection::connect(&format!(
            "sqlite:{}?mode=ro",
            restored.join("signet.db").display()
        ))
        .await
        .unwrap();
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(&mut connection)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>(0), "ok");
    }

    drop(server);
    let server = Server::start(&restored, None);
    let ca = server.get("/ca/ca.pem").await.text().await.unwrap();
    let ca_path = root.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    // Each document acknowledged before the backup began, once, signed if a signature was.
    let mut documents: Vec<Acknowledged> = Vec::new();
    for ack in &before_backup {
        match documents
            .iter_mut()
            .find(|d| d.document_id == ack.document_id)
        {
            Some(known) => known.signed |= ack.signed,
            None => documents.push(ack.clone()),
        }
    }
    let mut judged = 0;
    for (index, ack) in documents.iter().enumerate() {
        let path = format!("/documents/{}/file", ack.document_id);
        let mut file = server.get(&path).await;
        if ack.signed {
            assert_eq!(file.status(), 200, "{ack:?} lost its signed file");
        } else if file.status() != 200 {
            // WAITING in the backup: its prepared file must be whole, so the device can sign it
            // on the restored server.
            assert_ne!(file.status(), 404, "{ack:?} is missing");
            let (key, tbs, name) = (device.clone(), ack.hash.clone(), format!("late-{index}"));
            let signature = tokio::task::spawn_blocking(move || device_sign(&key, &tbs, &name))
                .await
                .unwrap();
            let (status, body) = server
                .post_json(
                    &format!("/documents/{}/signature", ack.document_id),
                    &json!({"signature": signature}),
                )
                .await;
            assert_eq!(status, 200, "{ack:?}: {body}");
            file = server.get(&path).await;
            assert_eq!(file.status(), 200);
        }
        let bytes = file.bytes().await.unwrap();
        assert_eq!(signet_testkit::signatures_in(&bytes).len(), 1, "{ack:?}");
        // pyHanko judges the first, the last and one WAITING-then-signed document.
        if index == 0 || index == documents.len() - 1 || (!ack.signed && judged < 3) {
            judged += 1;
            let pdf = root.path().join(format!("restored-{index}.pdf"));
            std::fs::write(&pdf, &bytes).unwrap();
            let ca = ca_path.clone();
            tokio::task::spawn_blocking(move || {
                signet_testkit::assert_pyhanko_accepts(&pdf, &ca, 1, &[])
            })
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn a_backup_on_postgresql_copies_documents_and_keys_and_points_to_pg_dump() {
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    let order_id = app
        .create_order(&[person("INTERNAL", "sAMAccountName=jdoe", None)])
        .await;
    assert!(!order_id.is_empty());
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("backup");
    let output = signet_on(
        app.data_dir.path(),
        &app.database_url,
        &["backup", dest.to_str().unwrap()],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!dest.join("signet.db").exists());
    assert!(dest.join("ca/ca.key").exists());
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("signet-backup.json")).unwrap()).unwrap();
    assert_eq!(manifest["database"], "postgresql");
    assert_eq!(manifest["blobs"], 1, "the order's PDF: {manifest}");
}
