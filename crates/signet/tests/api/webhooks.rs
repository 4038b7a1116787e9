//! Webhooks, end to end: a real HTTP receiver (Python, `support/webhook_receiver.py`) checks
//! every request with the `standardwebhooks` package — a verifier we did not write — and records
//! what it got. Order events arrive signed and in order; a failing receiver gets retries (the
//! manual clock passes the backoff) with the same `webhook-id`, and the delivery log shows the
//! attempts; the secret is generated 0600 and reused, or configured; a malformed secret or URL
//! stops the start. On SQLite and PostgreSQL.

use serde_json::Value;
use signet::clock::ManualClock;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use tempfile::TempDir;
use time::{Duration, OffsetDateTime};

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::orders::person;

/// The test receiver: a Python `http.server` that verifies and records every request.
pub(crate) struct Receiver {
    child: Child,
    port: u16,
    record: PathBuf,
    _dir: TempDir,
}

impl Receiver {
    /// `secret` is `whsec_…` or `@<file>`; the first `fail_first` attempts of each message are
    /// answered 500.
    fn start(secret: &str, fail_first: u32) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("deliveries.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/webhook_receiver.py");
        let mut child = Command::new(signet_testkit::venv().join("bin/python"))
            .arg(&script)
            .arg(secret)
            .arg(&record)
            .arg(fail_first.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the webhook receiver (python from the oracle venv)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the receiver did not print its port: {line:?}"));
        Receiver {
            child,
            port,
            record,
            _dir: dir,
        }
    }

    /// A receiver that checks signatures with the secret Signet keeps in `data_dir`.
    pub(crate) fn for_data_dir(data_dir: &Path, fail_first: u32) -> Receiver {
        let secret = data_dir.join(signet::webhooks::SECRET_FILE);
        Receiver::start(&format!("@{}", secret.display()), fail_first)
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/signet", self.port)
    }

    /// Every request received so far, in the order the messages were queued (by their id,
    /// `msg_<outbox row>`; one pass sends its messages concurrently), attempts in arrival order.
    fn requests(&self) -> Vec<Value> {
        let mut requests = self.requests_as_received();
        requests.sort_by_key(|r| message_number(&r["id"]));
        requests
    }

    pub(crate) fn requests_as_received(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.record) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The bodies of the requests that verified, failing the test on any that did not.
    fn verified_bodies(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .map(|request| {
                assert_eq!(
                    request["verified"], true,
                    "standardwebhooks refused: {request}"
                );
                request["body"].clone()
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh app on `db` whose webhooks go to `url` (plus whatever `adjust` sets); the data
/// directory is made first so a receiver can be pointed at its secret file.
async fn app_with_webhooks(
    db: Db,
    data_dir: TempDir,
    url: &str,
    adjust: impl FnOnce(&mut signet::config::Settings),
) -> Option<TestApp> {
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let url = url.to_owned();
    Some(
        start_with(data_dir, database_url, clock, move |settings| {
            settings.webhooks.urls = vec![url];
            // The test runs the outbox passes itself: no background sender beside them.
            settings.outbox_poll_millis = 0;
            adjust(settings);
        })
        .await,
    )
}

impl TestApp {
    /// The order's delivery log from the Automation API.
    async fn deliveries(&self, id: &str) -> Vec<Value> {
        let response = self
            .client
            .get(self.automation_url(&format!("/orders/{id}/deliveries")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// One pass of the outbox dispatcher, as the job loop runs it.
    async fn dispatch_outbox(&self) {
        self.outbox.deliver_due().await.unwrap();
    }
}

fn event_types(bodies: &[Value]) -> Vec<&str> {
    bodies.iter().map(|b| b["type"].as_str().unwrap()).collect()
}

/// The order's own events (ORDER_*), leaving out DOCUMENT_CREATED, LOGIN_CREATED and the like.
fn order_events(bodies: &[Value]) -> Vec<&Value> {
    bodies
        .iter()
        .filter(|b| b["type"].as_str().unwrap().starts_with("ORDER_"))
        .collect()
}

/// `msg_<n>` → n.
fn message_number(id: &Value) -> i64 {
    id.as_str()
        .and_then(|id| id.strip_prefix("msg_"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("webhook-id {id} is not msg_<n>"))
}

#[tokio::test]
async fn order_events_arrive_as_signed_json_that_standardwebhooks_verifies() {
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::for_data_dir(data_dir.path(), 0);
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |_| {}).await else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "sAMAccountName=cborgstrom", None),
                person("INTERNAL", "jdoe", None),
            ])
            .await;
        let order = app.order(&id).await;
        let first_signer = order["signers"][0]["internalId"]
            .as_str()
            .unwrap()
            .to_owned();
        let second_signer = order["signers"][1]["internalId"]
            .as_str()
            .unwrap()
            .to_owned();
        app.dispatch_outbox().await;
        app.sign_as(&id, 0).await.unwrap();
        app.dispatch_outbox().await;
        app.sign_as(&id, 1).await.unwrap();
        app.dispatch_outbox().await;

        let all = receiver.verified_bodies();
        // Every event of the order reached the receiver, in the order they happened.
        assert_eq!(event_types(&all), app.event_names(&id).await, "{db:?}");
        let bodies: Vec<Value> = order_events(&all).into_iter().cloned().collect();
        assert_eq!(
            event_types(&bodies),
            [
                "ORDER_CREATED",
                "ORDER_SIGNED",
                "ORDER_SIGNED",
                "ORDER_ACCEPTED"
            ],
            "{db:?}"
        );
        for body in &all {
            assert_eq!(body["data"]["orderId"], id.as_str());
            let time = body["timestamp"].as_str().unwrap();
            assert!(
                OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).is_ok(),
                "{time}"
            );
        }
        assert_eq!(bodies[0]["data"]["state"], "PENDING");
        assert_eq!(bodies[1]["data"]["signerInternalId"], first_signer.as_str());
        assert_eq!(bodies[1]["data"]["state"], "PENDING");
        assert_eq!(
            bodies[2]["data"]["signerInternalId"],
            second_signer.as_str()
        );
        assert_eq!(bodies[3]["data"]["state"], "ACCEPTED");

        // One id per message, JSON declared, the path of the configured URL.
        let requests = receiver.requests();
        let mut ids: Vec<&str> = requests.iter().map(|r| r["id"].as_str().unwrap()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len(), "{requests:?}");
        assert!(ids.iter().all(|id| id.starts_with("msg_")));
        assert!(requests
            .iter()
            .all(|r| r["contentType"] == "application/json" && r["path"] == "/hooks/signet"));

        // The delivery log agrees: one webhook per event, each delivered at the first attempt.
        let log = app.deliveries(&id).await;
        let webhooks: Vec<&Value> = log.iter().filter(|d| d["channel"] == "WEBHOOK").collect();
        assert_eq!(webhooks.len(), all.len(), "{log:?}");
        for delivery in webhooks {
            assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
            assert_eq!(delivery["attempts"], 1);
            assert_eq!(delivery["recipient"], receiver.url().as_str());
            assert!(delivery["delivered"].is_string());
        }
    }
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_the_same_webhook_id_then_the_message() {
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::for_data_dir(data_dir.path(), 2);
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |_| {}).await else {
            continue;
        };
        let id = app
            .create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
            .await;

        app.dispatch_outbox().await;
        let log = app.deliveries(&id).await;
        let messages = log.len();
        assert!(messages >= 1, "{log:?}");
        for delivery in &log {
            assert_eq!(delivery["status"], "PENDING", "{delivery}");
            assert_eq!(delivery["attempts"], 1);
            assert_eq!(delivery["lastError"], "the receiver answered 500");
            assert!(delivery["nextAttempt"].is_string());
        }
        // Not due yet: a pass before the backoff has run out sends nothing.
        app.dispatch_outbox().await;
        assert_eq!(receiver.requests().len(), messages);

        // Past the first backoff (30 s), then the doubled one (60 s).
        app.clock.advance(Duration::seconds(31));
        app.dispatch_outbox().await;
        assert_eq!(receiver.requests().len(), 2 * messages);
        app.clock.advance(Duration::seconds(61));
        app.dispatch_outbox().await;

        let requests = receiver.requests();
        assert_eq!(requests.len(), 3 * messages, "{db:?}: {requests:?}");
        for attempts in requests.chunks(3) {
            let answers: Vec<&Value> = attempts.iter().map(|r| &r["answered"]).collect();
            assert_eq!(answers, [500, 500, 204], "{db:?}: {attempts:?}");
            assert!(attempts.iter().all(|r| r["verified"] == true));
            assert!(
                attempts
                    .iter()
                    .all(|r| r["id"] == attempts[0]["id"] && r["body"] == attempts[0]["body"]),
                "every attempt of a message carries the same webhook-id and body: {attempts:?}"
            );
        }
        assert!(requests
            .iter()
            .any(|r| r["body"]["type"] == "ORDER_CREATED"));
        for delivery in app.deliveries(&id).await {
            assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
            assert_eq!(delivery["attempts"], 3);
            assert!(delivery["nextAttempt"].is_null());
        }
    }
}

#[tokio::test]
async fn a_receiver_that_stays_down_is_given_up_on_after_a_day() {
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::for_data_dir(data_dir.path(), u32::MAX);
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |_| {}).await else {
            continue;
        };
        let id = app
            .create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
            .await;
        app.dispatch_outbox().await;
        app.clock.advance(Duration::hours(25));
        app.dispatch_outbox().await;
        let log = app.deliveries(&id).await;
        for delivery in &log {
            assert_eq!(delivery["status"], "GAVE_UP", "{db:?}: {log:?}");
            assert_eq!(delivery["attempts"], 2);
            assert!(delivery["gaveUp"].is_string());
        }
        app.clock.advance(Duration::hours(2));
        let before = receiver.requests().len();
        app.dispatch_outbox().await;
        assert_eq!(receiver.requests().len(), before, "nothing after giving up");
    }
}

#[tokio::test]
async fn the_generated_secret_is_owner_only_and_survives_a_restart() {
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::for_data_dir(data_dir.path(), 0);
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |_| {}).await else {
            continue;
        };
        let path = app.data_dir.path().join(signet::webhooks::SECRET_FILE);
        let secret = std::fs::read_to_string(&path).unwrap();
        assert!(
            secret.starts_with("whsec_"),
            "the file holds a whsec_ secret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let (data_dir, database_url, clock) = app.stop().await;
        let url = receiver.url();
        let app = start_with(data_dir, database_url, clock, |s| {
            s.webhooks.urls = vec![url];
            s.outbox_poll_millis = 0;
        })
        .await;
        assert_eq!(std::fs::read_to_string(&path).unwrap(), secret, "reused");
        // Signed with it after the restart: the receiver reads the same file.
        app.create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
            .await;
        app.dispatch_outbox().await;
        let bodies = receiver.verified_bodies();
        assert_eq!(
            event_types(
                &order_events(&bodies)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            ),
            ["ORDER_CREATED"]
        );
    }
}

#[tokio::test]
async fn a_configured_secret_signs_and_no_file_is_written() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    for db in [Db::Sqlite, Db::Postgres] {
        let receiver = Receiver::start(secret, 0);
        let data_dir = tempfile::tempdir().unwrap();
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |s| {
            s.webhooks.secret = Some(secret.into());
        })
        .await
        else {
            continue;
        };
        app.create_order(&[person("INTERNAL", "sAMAccountName=cborgstrom", None)])
            .await;
        app.dispatch_outbox().await;
        let bodies = receiver.verified_bodies();
        assert_eq!(
            event_types(
                &order_events(&bodies)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            ),
            ["ORDER_CREATED"]
        );
        assert!(!app
            .data_dir
            .path()
            .join(signet::webhooks::SECRET_FILE)
            .exists());
    }
}

#[tokio::test]
async fn a_malformed_secret_or_url_stops_the_start_with_the_reason() {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite:{}", data_dir.path().join("signet.db").display());
    let build = |adjust: fn(&mut signet::config::Settings)| {
        let mut settings = signet::config::Settings {
            data_dir: data_dir.path().to_path_buf(),
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(database_url.clone()),
            job_interval_seconds: 0,
            ..signet::config::Settings::default()
        };
        adjust(&mut settings);
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        signet::startup::Application::build(settings, clock)
    };
    let Err(error) = build(|s| s.webhooks.secret = Some("whsec_short".into())).await else {
        panic!("a malformed secret was accepted");
    };
    let message = format!("{error:#}");
    assert!(message.contains("webhook secret"), "{message}");
    assert!(message.contains("malformed"), "{message}");

    let Err(error) = build(|s| s.webhooks.urls = vec!["ftp://example.org/hook".into()]).await
    else {
        panic!("a non-http URL was accepted");
    };
    assert!(
        format!("{error:#}").contains("ftp://example.org/hook"),
        "{error:#}"
    );
}

#[tokio::test]
async fn the_delivery_log_of_an_unknown_order_is_not_found() {
    let app = crate::helpers::spawn_app().await;
    let response = app
        .client
        .get(app.automation_url("/orders/00000000-0000-4000-8000-000000000000/deliveries"))
        .send()
        .await
        .unwrap();
    crate::helpers::assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

/// `signet serve` with the given webhook flags and environment; it must refuse to start.
fn serve_refuses(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_signet"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env_remove("SIGNET_DATABASE_URL")
        .env_remove("SIGNET_WEBHOOK_URL")
        .env_remove("SIGNET_WEBHOOK_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "it started: {stderr}");
    stderr
}

#[test]
fn the_command_line_and_environment_settings_are_checked_at_start_up() {
    let stderr = serve_refuses(
        &[
            "--webhook-url",
            "http://127.0.0.1:9/ok",
            "--webhook-url",
            "ftp://127.0.0.1/bad",
        ],
        &[],
    );
    assert!(stderr.contains("ftp://127.0.0.1/bad"), "{stderr}");

    let stderr = serve_refuses(
        &[],
        &[("SIGNET_WEBHOOK_URL", "http://127.0.0.1:9/ok, gopher://b")],
    );
    assert!(stderr.contains("gopher://b"), "{stderr}");

    let stderr = serve_refuses(&[], &[("SIGNET_WEBHOOK_SECRET", "whsec_bm90IGEga2V5")]);
    assert!(stderr.contains("webhook secret"), "{stderr}");
    assert!(stderr.contains("24 to 64 bytes"), "{stderr}");
    assert!(
        !stderr.contains("bm90IGEga2V5"),
        "the secret is never shown: {stderr}"
    );
}

#[tokio::test]
async fn the_delivery_log_names_mail_recipients_by_role_never_by_address() {
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let receiver = Receiver::for_data_dir(data_dir.path(), 0);
        // Mail on (an SMTP server nobody listens on: the mail stays queued), webhooks on.
        let Some(app) = app_with_webhooks(db, data_dir, &receiver.url(), |s| {
            s.smtp.url = Some("smtp://127.0.0.1:9".into());
        })
        .await
        else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "sAMAccountName=cborgstrom", None),
                person("EXTERNAL", "200001011907", None),
            ])
            .await;
        let log = app.deliveries(&id).await;
        let mail: Vec<&Value> = log.iter().filter(|d| d["channel"] == "MAIL").collect();
        let recipients: Vec<&str> = mail
            .iter()
            .map(|d| d["recipient"].as_str().unwrap())
            .collect();
        assert_eq!(recipients, ["signer:0", "signer:1"], "{db:?}: {log:?}");
        assert!(mail
            .iter()
            .all(|d| d["kind"] == "INVITATION" && d["status"] == "PENDING"));
        let text = serde_json::to_string(&log).unwrap();
        assert!(
            !text.contains('@'),
            "no address in the delivery log: {text}"
        );
    }
}
