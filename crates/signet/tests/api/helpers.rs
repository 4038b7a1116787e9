//! `spawn_app`: a running signet on port 0 with a fresh database, a movable clock and an API key.

use reqwest::{Client, Response};
use serde_json::Value;
use signet::clock::ManualClock;
use signet::config::Settings;
use signet::jobs::JobRunner;
use signet::startup::Application;
use signet::state::AppState;
use std::sync::Arc;
use tempfile::TempDir;
use time::OffsetDateTime;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: String,
    /// Base URL of the Automation API listener (enabled in every test app).
    pub automation: String,
    pub api_key: String,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub state: AppState,
    pub runner: JobRunner,
    /// The outbox sender (mail, webhooks): tests run passes of it directly.
    pub outbox: Arc<signet::jobs::outbox::Dispatcher>,
    pub data_dir: TempDir,
    pub database_url: String,
    /// Dropping it (with the TestApp) stops the server.
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The PostgreSQL server for tests. In CI it must be there: a missing one fails the run instead of
/// silently skipping the PostgreSQL half of the suite.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("SIGNET_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI is set but SIGNET_TEST_POSTGRES_URL is not: PostgreSQL tests must run in CI"
            );
            eprintln!("notice: SIGNET_TEST_POSTGRES_URL not set; skipping the PostgreSQL variant");
            None
        }
    }
}

/// A fresh schema in the test PostgreSQL database, so concurrent tests and runs never collide.
pub async fn fresh_postgres_url() -> Option<String> {
    use sqlx::Connection;
    let base = postgres_base_url()?;
    let schema = format!("signet_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// The database URL for a test on `db`; `None` when PostgreSQL is not configured outside CI.
pub async fn database_url_for(db: Db, data_dir: &std::path::Path) -> Option<String> {
    match db {
        Db::Sqlite => Some(format!("sqlite:{}", data_dir.join("signet.db").display())),
        Db::Postgres => fresh_postgres_url().await,
    }
}

/// Where a test server keeps documents: the data directory, or a bucket of a running Garage.
#[derive(Clone, Copy)]
pub enum Storage<'a> {
    Files,
    Objects(&'a crate::garage::Garage),
}

impl Storage<'_> {
    /// Points `settings` at this storage: on Garage, a prefix of the bucket of its own.
    pub fn apply(self, settings: &mut Settings) {
        if let Storage::Objects(garage) = self {
            settings.blob_url = Some(garage.url(&uuid::Uuid::new_v4().simple().to_string()));
            settings.object_store_env = Some(garage.env());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(Db::Sqlite).await.unwrap()
}

/// Starts signet on `db`; `None` if that database is not available (PostgreSQL outside CI).
pub async fn spawn_app_on(db: Db) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    Some(start(data_dir, database_url, clock).await)
}

/// The people of the test directory file: INTERNAL cborgstrom and jdoe, EXTERNAL 200001011907.
pub const TEST_PEOPLE: &str = r#"[
  {"source": "INTERNAL", "identifier": "sAMAccountName=cborgstrom", "userId": "cborgstrom",
   "firstName": "Carl", "lastName": "Borgström", "mail": "carl.borgstrom@example.org", "mobile": "+46701111111"},
  {"source": "INTERNAL", "identifier": "sAMAccountName=jdoe", "userId": "jdoe",
   "firstName": "Jane", "lastName": "Doe", "mail": "jane.doe@example.org"},
  {"source": "EXTERNAL", "identifier": "200001011907",
   "firstName": "Elsa", "lastName": "Extern", "mail": "elsa@example.net"}
]"#;

/// Starts (or restarts) a server over an existing data directory and database.
pub async fn start(data_dir: TempDir, database_url: String, clock: Arc<ManualClock>) -> TestApp {
    start_with(data_dir, database_url, clock, |_| {}).await
}

/// Like [`start`], with a last word on the settings (an LDAP directory, a smaller limit).
pub async fn start_with(
    data_dir: TempDir,
    database_url: String,
    clock: Arc<ManualClock>,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let people = data_dir.path().join("people.json");
    if !people.exists() {
        std::fs::write(&people, TEST_PEOPLE).unwrap();
    }
    let mut settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(database_url.clone()),
        job_interval_seconds: 0,
        directory_file: Some(people),
        ..Settings::default()
    };
    settings.automation_api.enabled = true;
    settings.automation_api.listen = "127.0.0.1:0".parse().unwrap();
    adjust(&mut settings);
    let app = Application::build(settings, clock.clone()).await.unwrap();
    let address = format!("http://{}", app.local_addr().unwrap());
    let automation = app
        .automation_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let state = app.state().clone();
    let runner = app.job_runner();
    let outbox = app.outbox();
    let api_key = signet::api_key::create_api_key(state.store.as_ref(), clock.now_for_tests())
        .await
        .unwrap();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run(async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        address,
        automation,
        api_key,
        client: Client::new(),
        clock,
        state,
        runner,
        outbox,
        data_dir,
        database_url,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// The bytes of a signed document's file as the file backend stores them (the default
/// `file://<data-dir>/blobs`), read from disk: what every download of it must return.
pub async fn stored_signed_file(app: &TestApp, document_id: &str) -> Vec<u8> {
    let id = signet::domain::DocumentId::parse(document_id).unwrap();
    let document = app.state.store.find_document(&id).await.unwrap().unwrap();
    let blob = document.signed_blob.expect("a signed document");
    std::fs::read(app.data_dir.path().join("blobs").join(blob.as_str())).unwrap()
}

/// Reads a ManualClock through the trait without importing it in every test.
pub trait NowForTests {
    fn now_for_tests(&self) -> OffsetDateTime;
}

impl NowForTests for ManualClock {
    fn now_for_tests(&self) -> OffsetDateTime {
        signet::clock::Clock::now(self)
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Stops the server and hands back what a restart needs.
    pub async fn stop(mut self) -> (TempDir, String, Arc<ManualClock>) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
        (self.data_dir, self.database_url, self.clock)
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap()
    }

    /// The CA certificate the server publishes (`GET /ca/ca.pem`, no credentials).
    pub async fn ca_pem(&self) -> String {
        crate::support::get_text(&self.client, &self.url("/ca/ca.pem")).await
    }

    /// The CRL the server publishes (`GET /ca/crl.der`, no credentials).
    pub async fn crl_der(&self) -> Vec<u8> {
        crate::support::get_bytes(&self.client, &self.url("/ca/crl.der")).await
    }

    /// Enrolls a signer and asserts the documented success body.
    pub async fn enroll(&self, signer_id: &str, csr_pem: &str) {
        let response = self
            .post_json(
                "/signers",
                &serde_json::json!({"signerId": signer_id, "userId": "user-1", "csr": csr_pem}),
            )
            .await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            serde_json::json!({"result": "OK", "resultReason": null})
        );
    }

    pub async fn set_status(&self, signer_id: &str, status: &str) -> (u16, Value) {
        let response = self
            .put_json(
                &format!("/signers/{signer_id}"),
                &serde_json::json!({"signerStatus": status}),
            )
            .await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn signer(&self, signer_id: &str) -> Value {
        let response = self.get(&format!("/signers/{signer_id}")).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Number of certificates the store holds for all signers.
    pub async fn certificate_count(&self, signer_id: &str) -> usize {
        let id = signet::domain::SignerId::parse(signer_id).unwrap();
        self.state.store.certificates_of(&id).await.unwrap().len()
    }
}

/// Asserts an error response: status, CloudSigner body, code; returns the message.
pub async fn assert_error(response: Response, status: u16, code: &str) -> String {
    let actual = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("error body is not JSON (status {actual}): {text}"));
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["status"], "ERROR", "{body}");
    assert_eq!(body["responseObject"]["code"], code, "{body}");
    let message = body["responseObject"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!message.is_empty());
    message
}

/// The temporary files under `<data-dir>/blobs/tmp/`: every process's directory searched, the
/// lock files that say which processes are alive left out.
pub fn temporary_files(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_none_or(|e| e != "lock") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&data_dir.join("blobs").join("tmp"), &mut found);
    found
}
