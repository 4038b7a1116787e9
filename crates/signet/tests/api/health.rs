//! `/healthz`, `/readyz` and `/metrics`: ready on a working server, 503 with the error body and
//! the reason once its database is really gone (the PostgreSQL schema dropped, the SQLite
//! tables dropped by another process), and a metrics page that the Prometheus project's own text parser reads,
//! with counters that move after requests.

use serde_json::Value;
use std::collections::HashMap;

use crate::helpers::{assert_error, spawn_app_on, Db, TestApp};

async fn get_plain(app: &TestApp, base: &str, path: &str) -> (u16, String) {
    let response = app
        .client
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn both_listeners_answer_healthz_and_readyz_while_the_server_works() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        for base in [&app.address, &app.automation] {
            for path in ["/healthz", "/readyz"] {
                let (status, body) = get_plain(&app, base, path).await;
                assert_eq!(status, 200, "{base}{path}: {body}");
                let body: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(body["status"], "OK");
            }
        }
    }
}

#[tokio::test]
async fn readyz_answers_503_with_the_reason_once_the_postgresql_schema_is_gone() {
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    let schema = app
        .database_url
        .split("search_path%3D")
        .nth(1)
        .unwrap()
        .to_owned();
    let base = crate::helpers::postgres_base_url().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut conn)
        .await
        .unwrap();

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let message = assert_error(response, 503, "ERROR_GENERIC").await;
    assert!(message.contains("database"), "{message}");
    let (status, _) = get_plain(&app, &app.address, "/healthz").await;
    assert_eq!(status, 200, "alive, though not ready");
    // The metrics page still renders and says the database is down.
    let (status, page) = get_plain(&app, &app.address, "/metrics").await;
    assert_eq!(status, 200);
    assert!(page.contains("signet_database_up 0"), "{page}");
}

#[tokio::test]
async fn readyz_answers_503_once_the_sqlite_tables_are_gone() {
    let app = spawn_app_on(Db::Sqlite).await.unwrap();
    let (status, _) = get_plain(&app, &app.address, "/readyz").await;
    assert_eq!(status, 200);
    // Another process empties the file (a wrong restore, a stray script): the server's own
    // connections see it at their next read. The script takes the write lock first (BEGIN
    // IMMEDIATE, so SQLite's busy wait applies; a read upgraded to a write fails at once when the
    // server committed meanwhile) and tries again while the server's own writes hold it. It runs
    // off this test's runtime, which also runs the server: waiting for it on the runtime's one
    // thread froze a server write caught half-way (the outbox sender's, every 2 s) with the lock
    // held, and the script then waited for a lock that could never be released.
    let path = app.data_dir.path().join("signet.db");
    let script = "import sqlite3, sys, time\n\
        deadline = time.time() + 60\n\
        while True:\n\
        \x20   try:\n\
        \x20       db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)\n\
        \x20       db.execute('PRAGMA foreign_keys = OFF')\n\
        \x20       db.execute('BEGIN IMMEDIATE')\n\
        \x20       db.execute('DROP TABLE api_keys')\n\
        \x20       db.execute('COMMIT')\n\
        \x20       break\n\
        \x20   except sqlite3.OperationalError:\n\
        \x20       if time.time() > deadline:\n\
        \x20           import subprocess\n\
        \x20           subprocess.run(['lslocks', '-u', '-o', 'COMMAND,PID,TYPE,MODE,START,END,PATH'], stdout=sys.stderr)\n\
        \x20           raise\n\
        \x20       time.sleep(0.05)\n";
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let message = assert_error(response, 503, "ERROR_GENERIC").await;
    assert!(message.contains("database"), "{message}");
}

#[tokio::test]
async fn readyz_answers_503_when_the_document_store_is_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_on(Db::Sqlite).await.unwrap();
    let tmp = app.data_dir.path().join("blobs").join("tmp");
    // Root ignores modes: take the directory away instead, which stops root as well.
    std::fs::rename(&tmp, app.data_dir.path().join("tmp-moved")).unwrap();
    std::fs::write(&tmp, b"not a directory").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o400)).unwrap();

    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    let message = assert_error(response, 503, "ERROR_GENERIC").await;
    assert!(message.contains("document store"), "{message}");
}

/// The families the Prometheus project's parser reads from `page`, as
/// `name -> [(labels as JSON, value)]`.
fn parse_with_prometheus_client(page: &str) -> HashMap<String, Vec<(Value, f64)>> {
    let venv = signet_testkit::venv();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("metrics.txt");
    std::fs::write(&input, page).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for sample in family.samples:
        families.setdefault(sample.name, []).append([sample.labels, sample.value])
print(json.dumps(families))
"#;
    let output = std::process::Command::new(venv.join("bin").join("python"))
        .args(["-c", script])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the parser refused the page: {}\n{page}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: HashMap<String, Vec<(Value, f64)>> =
        serde_json::from_slice(&output.stdout).unwrap();
    parsed
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn sample(
    families: &HashMap<String, Vec<(Value, f64)>>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    families
        .get(name)
        .into_iter()
        .flatten()
        .filter(|(have, _)| labels.iter().all(|(k, v)| have[*k] == *v))
        .map(|(_, value)| *value)
        .sum()
}

#[tokio::test]
async fn metrics_parse_with_the_prometheus_parser_and_counters_move_after_requests() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let (status, page) = get_plain(&app, &app.address, "/metrics").await;
        assert_eq!(status, 200);
        let before = parse_with_prometheus_client(&page);
        // The recorder is process-wide (other tests' servers count too): compare, never equate.
        let route = [
            ("route", "/signers/{signer_id}"),
            ("method", "GET"),
            ("status", "404"),
        ];
        let requests_before = sample(&before, "signet_http_requests_total", &route);

        for id in ["nobody-1", "nobody-2", "nobody-3"] {
            let response = app.get(&format!("/signers/{id}")).await;
            assert_eq!(response.status(), 404);
        }
        let id = app
            .create_order(&[crate::orders::person("INTERNAL", "jdoe", None)])
            .await;
        assert_eq!(id.len(), 36);

        // The database counts are reused for two seconds (scrapes must not scan tables).
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (status, page) = get_plain(&app, &app.address, "/metrics").await;
        assert_eq!(status, 200);
        let after = parse_with_prometheus_client(&page);
        assert!(
            sample(&after, "signet_http_requests_total", &route) >= requests_before + 3.0,
            "{page}"
        );
        // Route templates, never paths: no id reaches a label.
        assert!(!page.contains("nobody-1"), "{page}");
        assert!(!page.contains(&id), "{page}");
        let histogram = sample(
            &after,
            "signet_http_request_duration_seconds_count",
            &[("route", "/signers/{signer_id}"), ("method", "GET")],
        );
        assert!(histogram >= 3.0, "{page}");
        // Scrape-time gauges from this server's own database.
        assert_eq!(
            sample(&after, "signet_orders", &[("state", "PENDING")]),
            1.0,
            "{page}"
        );
        assert_eq!(sample(&after, "signet_database_up", &[]), 1.0);
        assert!(
            after.contains_key("signet_certificates_expiring_30d"),
            "{page}"
        );
        // The Automation listener does not serve metrics.
        let (status, _) = get_plain(&app, &app.automation, "/metrics").await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn with_a_metrics_listener_metrics_leave_the_main_listener() {
    let data_dir = tempfile::tempdir().unwrap();
    let settings = signet::config::Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        job_interval_seconds: 0,
        outbox_poll_millis: 0,
        ..signet::config::Settings::default()
    };
    let clock = std::sync::Arc::new(signet::clock::SystemClock);
    let app = signet::startup::Application::build(settings, clock)
        .await
        .unwrap();
    let main = format!("http://{}", app.local_addr().unwrap());
    let metrics = format!("http://{}", app.metrics_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, _) = get(format!("{main}/metrics")).await;
    assert_eq!(status, 404, "not on the main listener");
    let (status, page) = get(format!("{metrics}/metrics")).await;
    assert_eq!(status, 200);
    parse_with_prometheus_client(&page);
    let (status, _) = get(format!("{metrics}/readyz")).await;
    assert_eq!(status, 200);
    let (status, _) = get(format!("{metrics}/signers/x")).await;
    assert_eq!(status, 404, "nothing else there");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_any_other_is_replaced() {
    let app = spawn_app_on(Db::Sqlite).await.unwrap();
    let sent = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "client-id-42")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.headers()["x-request-id"], "client-id-42");
    let hostile = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "a\"b c")
        .send()
        .await
        .unwrap();
    let replaced = hostile.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(replaced.len(), 36, "{replaced}");
    let none = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(none.headers()["x-request-id"].len(), 36);
}
