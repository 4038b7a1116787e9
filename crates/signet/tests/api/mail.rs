//! E-mail against a real SMTP server (aiosmtpd from the oracle venv, which also parses each
//! message): invitations per priority group, notifyAllSigners, reminders, outcome mail, English
//! and Swedish, and an SMTP server that is down when the order is made.

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::orders::{order_form, person};
use crate::support::free_port;
use serde_json::{json, Value};
use signet::clock::ManualClock;
use signet::domain::OrderId;
use signet::mail::Language;
use signet::store::outbox::Channel;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// A running aiosmtpd that writes every message it receives, parsed, as JSON into a directory.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn python() -> PathBuf {
    let venv = std::env::var("SIGNET_ORACLE_VENV")
        .expect("SIGNET_ORACLE_VENV must name the venv with aiosmtpd");
    Path::new(&venv).join("bin/python")
}

impl SmtpSink {
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/smtp_sink.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting aiosmtpd");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Self {
            child,
            port,
            dir: dir.path().to_path_buf(),
            _dir: dir,
        }
    }

    /// The messages received so far, in arrival order.
    pub fn mails(&self) -> Vec<Value> {
        let mut found: Vec<(u64, Value)> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?.to_owned();
                let n = name
                    .strip_suffix(".json")?
                    .rsplit('-')
                    .next()?
                    .parse()
                    .ok()?;
                let text = std::fs::read_to_string(&path).ok()?;
                Some((n, serde_json::from_str(&text).unwrap()))
            })
            .collect();
        found.sort_by_key(|(n, _)| *n);
        found.into_iter().map(|(_, mail)| mail).collect()
    }

    /// Waits until at least `n` messages arrived (a hang guard, not a timed assertion).
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        self.wait_until(|mails| mails.len() >= n).await
    }

    /// Waits until the messages received satisfy `done` (a hang guard of a minute).
    pub async fn wait_until(&self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..1200 {
            let mails = self.mails();
            if done(&mails) {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the expected mail did not arrive: {:#?}", self.mails());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server on `db` that mails through `port`, in `language`.
pub(crate) async fn spawn_mailing_app(db: Db, port: u16, language: Language) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    Some(
        start_with(data_dir, database_url, clock, |settings| {
            settings.smtp.url = Some(format!("smtp://127.0.0.1:{port}"));
            settings.mail_from = "Signet <signet@example.org>".into();
            settings.mail_language = language;
            settings.outbox_poll_millis = 50;
        })
        .await,
    )
}

pub(crate) fn to(mail: &Value) -> &str {
    mail["to"][0].as_str().unwrap()
}

pub(crate) fn text(mail: &Value) -> &str {
    mail["text"].as_str().unwrap()
}

/// Every Message-ID is distinct and derived from an outbox row.
pub(crate) fn assert_no_duplicates(mails: &[Value]) {
    let ids: HashSet<&str> = mails
        .iter()
        .map(|m| m["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        mails.len(),
        "a message was sent twice: {mails:#?}"
    );
    assert!(ids.iter().all(|id| id.starts_with("<outbox-")), "{ids:?}");
}

async fn sending_email_events(app: &TestApp, id: &str) -> usize {
    app.state
        .store
        .order_events(&OrderId::parse(id).unwrap())
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event == "SENDING_EMAIL")
        .count()
}

async fn mail_rows(app: &TestApp, id: &str) -> usize {
    app.state
        .store
        .order_deliveries(&OrderId::parse(id).unwrap())
        .await
        .unwrap()
        .iter()
        .filter(|d| d.channel == Channel::Mail)
        .count()
}

#[tokio::test]
async fn each_priority_group_is_invited_in_turn_and_the_solicitor_hears_the_outcome() {
    for db in [Db::Sqlite, Db::Postgres] {
        let sink = SmtpSink::start();
        let Some(app) = spawn_mailing_app(db, sink.port, Language::En).await else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", Some(1)),
                person("EXTERNAL", "200001011907", Some(2)),
            ])
            .await;
        let order = app.order(&id).await;
        let mails = sink.wait_for(1).await;
        assert_eq!(to(&mails[0]), "jane.doe@example.org");
        assert_eq!(mails[0]["subject"], "Please sign: Contract");
        assert_eq!(mails[0]["from"], "Signet <signet@example.org>");
        let link = order["signers"][0]["signingUrl"].as_str().unwrap();
        assert!(text(&mails[0]).contains(link), "{mails:#?}");
        assert!(mails[0]["html"].as_str().unwrap().contains(link));

        // Nothing else is due: the second group waits for the first.
        app.outbox.deliver_due().await.unwrap();
        assert_eq!(mail_rows(&app, &id).await, 1, "{db:?}");
        assert_eq!(sink.mails().len(), 1);

        app.sign_as(&id, 0).await.unwrap();
        let mails = sink.wait_for(2).await;
        assert_eq!(to(&mails[1]), "elsa@example.net");
        let link = order["signers"][1]["signingUrl"].as_str().unwrap();
        assert!(text(&mails[1]).contains(link));
        assert!(text(&mails[1]).starts_with("Hello Elsa Extern,"));

        app.sign_as(&id, 1).await.unwrap();
        let mails = sink.wait_for(3).await;
        assert_eq!(to(&mails[2]), "carl.borgstrom@example.org");
        assert_eq!(mails[2]["subject"], "Signed by everyone: Contract");
        assert!(text(&mails[2]).contains("/sign/"), "a link to the document");

        // The receiver has the third message a moment before the background sender records it
        // delivered (its claim keeps this pass from taking the row): wait for the record.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while sending_email_events(&app, &id).await < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        app.outbox.deliver_due().await.unwrap();
        let mails = sink.mails();
        assert_eq!(mails.len(), 3);
        assert_no_duplicates(&mails);
        assert_eq!(sending_email_events(&app, &id).await, 3, "{db:?}");
    }
}

#[tokio::test]
async fn notify_all_signers_invites_every_signer_when_the_order_is_made() {
    for db in [Db::Sqlite, Db::Postgres] {
        let sink = SmtpSink::start();
        let Some(app) = spawn_mailing_app(db, sink.port, Language::En).await else {
            continue;
        };
        let form = order_form(&[
            person("INTERNAL", "jdoe", Some(1)),
            person("EXTERNAL", "200001011907", Some(2)),
        ])
        .text(
            "option",
            json!({"name": "notifyAllSigners", "value": true}).to_string(),
        );
        let (status, id) = app.post_order(form).await;
        assert_eq!(status, 200, "{id}");
        let mails = sink.wait_for(2).await;
        let early = mails
            .iter()
            .find(|m| to(m) == "elsa@example.net")
            .expect("the second group is invited at once");
        assert!(text(early).contains("Others sign before you"), "{early:#?}");
        assert_no_duplicates(&mails);
        assert_eq!(mail_rows(&app, &id).await, 2);
    }
}

#[tokio::test]
async fn a_reminder_goes_once_to_a_signer_who_has_not_acted_as_the_due_date_nears_in_swedish() {
    for db in [Db::Sqlite, Db::Postgres] {
        let sink = SmtpSink::start();
        let Some(app) = spawn_mailing_app(db, sink.port, Language::Sv).await else {
            continue;
        };
        // Due in 30 days (the default); reminders go 2 days before.
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", None),
                person("INTERNAL", "cborgstrom", None),
            ])
            .await;
        let mails = sink.wait_for(2).await;
        assert!(mails
            .iter()
            .all(|m| m["subject"] == "Underskrift begärs: Contract"));
        assert!(mails.iter().any(|m| text(m).starts_with("Hej Jane Doe!")));
        app.sign_as(&id, 1).await.unwrap();

        app.clock.advance(Duration::days(27));
        assert_eq!(app.outbox.queue_reminders().await.unwrap(), 0, "too early");
        app.clock.advance(Duration::days(1) + Duration::hours(12));
        // The sender's own reminder pass may come first: count the rows, not who queued them.
        app.outbox.queue_reminders().await.unwrap();
        assert_eq!(app.outbox.queue_reminders().await.unwrap(), 0, "once");
        let reminders = app
            .state
            .store
            .order_deliveries(&OrderId::parse(&id).unwrap())
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.kind == "REMINDER")
            .map(|d| d.recipient)
            .collect::<Vec<_>>();
        assert_eq!(reminders, ["signer:0"], "only the signer who has not acted");
        let mails = sink.wait_for(3).await;
        assert_eq!(to(&mails[2]), "jane.doe@example.org");
        let subject = mails[2]["subject"].as_str().unwrap();
        assert!(
            subject.starts_with("Påminnelse: skriv under Contract senast "),
            "{subject}"
        );
        let link = app.order(&id).await["signers"][0]["signingUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text(&mails[2]).contains(&link));
        app.outbox.deliver_due().await.unwrap();
        assert_eq!(sink.mails().len(), 3);
        assert_no_duplicates(&sink.mails());
    }
}

#[tokio::test]
async fn the_solicitor_hears_of_a_rejection_with_its_reason_a_cancellation_and_an_expiry() {
    for db in [Db::Sqlite, Db::Postgres] {
        let sink = SmtpSink::start();
        let Some(app) = spawn_mailing_app(db, sink.port, Language::En).await else {
            continue;
        };
        let signers = [person("INTERNAL", "jdoe", None)];
        let rejected = app.create_order(&signers).await;
        let jdoe = app.order(&rejected).await["signers"][0]["internalId"]
            .as_str()
            .unwrap()
            .to_owned();
        app.state
            .orders
            .reject_as(
                OrderId::parse(&rejected).unwrap(),
                &jdoe,
                Some("The amount is <wrong>"),
            )
            .await
            .unwrap();
        let cancelled = app.create_order(&signers).await;
        let response = app
            .client
            .put(app.automation_url(&format!("/orders/{cancelled}")))
            .json(&json!({"state": "CANCELLED"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let expired = app.create_order(&signers).await;
        app.clock.advance(Duration::days(31));
        assert_eq!(app.runner.expire_orders().await.unwrap(), 1);

        // Jane's invitations may or may not go before her orders end; the outcomes all go.
        let to_carl = |mails: &[Value]| -> Vec<Value> {
            mails
                .iter()
                .filter(|m| to(m) == "carl.borgstrom@example.org")
                .cloned()
                .collect()
        };
        let mails = sink.wait_until(|mails| to_carl(mails).len() >= 3).await;
        let outcomes = to_carl(&mails);
        let subjects: HashSet<&str> = outcomes
            .iter()
            .map(|m| m["subject"].as_str().unwrap())
            .collect();
        assert_eq!(
            subjects,
            HashSet::from([
                "Rejected: Contract",
                "Cancelled: Contract",
                "Expired: Contract"
            ])
        );
        let rejection = outcomes
            .iter()
            .find(|m| m["subject"] == "Rejected: Contract")
            .unwrap();
        assert!(text(rejection).contains("Jane Doe rejected “Contract”"));
        assert!(text(rejection).contains("Reason given: The amount is <wrong>"));
        assert!(rejection["html"]
            .as_str()
            .unwrap()
            .contains("The amount is &lt;wrong&gt;"));
        for id in [&rejected, &cancelled, &expired] {
            app.outbox.deliver_due().await.unwrap();
            let log = app
                .state
                .store
                .order_deliveries(&OrderId::parse(id).unwrap())
                .await
                .unwrap();
            assert!(
                log.iter()
                    .any(|d| d.kind == "OUTCOME" && d.delivered_at.is_some()),
                "{db:?}: {log:?}"
            );
        }
        assert_no_duplicates(&sink.mails());
    }
}

#[tokio::test]
async fn an_smtp_server_that_is_down_delays_mail_but_neither_loses_it_nor_fails_the_request() {
    for db in [Db::Sqlite, Db::Postgres] {
        let port = free_port();
        let Some(app) = spawn_mailing_app(db, port, Language::En).await else {
            continue;
        };
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        assert_eq!(app.order_state(&id).await, "PENDING");
        let order_id = OrderId::parse(&id).unwrap();
        // Let at least one attempt fail.
        let failed = loop {
            app.outbox.deliver_due().await.unwrap();
            let log = app.state.store.order_deliveries(&order_id).await.unwrap();
            let mail = log
                .into_iter()
                .find(|d| d.channel == Channel::Mail)
                .unwrap();
            if mail.attempts >= 1 && mail.claimed_or_done_is_settled() {
                break mail;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert!(failed.delivered_at.is_none() && failed.gave_up_at.is_none());
        assert!(failed.last_error.is_some(), "{failed:?}");
        assert!(failed.next_attempt_at > app.clock.now_for_tests());

        let sink = SmtpSink::start_on(port);
        app.outbox.deliver_due().await.unwrap();
        assert!(sink.mails().is_empty(), "the retry waits for its time");
        app.clock.advance(Duration::seconds(31));
        let mails = sink.wait_for(1).await;
        assert_eq!(to(&mails[0]), "jane.doe@example.org");
        // The receiver has the message a moment before the sender records it delivered; moving
        // the manual clock two hours inside that moment would run out the claim's five-minute
        // lease while the send is still in flight (a real sender is never that late). Wait for
        // the record first.
        while sending_email_events(&app, &id).await == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        app.clock.advance(Duration::hours(2));
        app.outbox.deliver_due().await.unwrap();
        assert_eq!(sink.mails().len(), 1, "nothing twice");
        assert_eq!(sending_email_events(&app, &id).await, 1);
    }
}

#[tokio::test]
async fn without_smtp_no_mail_is_queued_and_the_order_still_carries_its_links() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = crate::helpers::spawn_app_on(db).await else {
            continue;
        };
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        assert!(app.order(&id).await["signers"][0]["signingUrl"]
            .as_str()
            .unwrap()
            .contains("/sign/"));
        assert_eq!(mail_rows(&app, &id).await, 0);
    }
}

trait Settled {
    fn claimed_or_done_is_settled(&self) -> bool;
}

impl Settled for signet::store::outbox::DeliveryRecord {
    /// The attempt's result is recorded (a failed one leaves an error).
    fn claimed_or_done_is_settled(&self) -> bool {
        self.last_error.is_some() || self.delivered_at.is_some()
    }
}

use crate::helpers::NowForTests;

#[tokio::test]
async fn mail_to_an_anonymized_person_or_an_ended_task_is_given_up_not_retried() {
    use signet::store::orders::AnonymizeTarget;
    for db in [Db::Sqlite, Db::Postgres] {
        let port = free_port();
        let Some(app) = spawn_mailing_app(db, port, Language::En).await else {
            continue;
        };
        // Mail is down while the order is made and cancelled, and its solicitor anonymized.
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let order_id = OrderId::parse(&id).unwrap();
        let response = app
            .client
            .put(app.automation_url(&format!("/orders/{id}")))
            .json(&json!({"state": "CANCELLED"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let solicitor = app
            .state
            .store
            .find_order(&order_id)
            .await
            .unwrap()
            .unwrap()
            .solicitor
            .internal_id;
        let now = app.clock.now_for_tests();
        app.state
            .store
            .anonymize(&AnonymizeTarget::InternalId(solicitor), now)
            .await
            .unwrap();

        let sink = SmtpSink::start_on(port);
        app.clock.advance(Duration::hours(2));
        let log = loop {
            app.outbox.deliver_due().await.unwrap();
            let log = app.state.store.order_deliveries(&order_id).await.unwrap();
            let mail: Vec<_> = log
                .into_iter()
                .filter(|d| d.channel == Channel::Mail)
                .collect();
            if mail
                .iter()
                .all(|d| d.gave_up_at.is_some() || d.delivered_at.is_some())
            {
                break mail;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let outcome = log.iter().find(|d| d.kind == "OUTCOME").unwrap();
        assert!(outcome.gave_up_at.is_some(), "{log:?}");
        assert_eq!(
            outcome.last_error.as_deref(),
            Some("the recipient has no e-mail address")
        );
        let invitation = log.iter().find(|d| d.kind == "INVITATION").unwrap();
        assert!(invitation.gave_up_at.is_some(), "{log:?}");
        app.clock.advance(Duration::days(2));
        app.outbox.deliver_due().await.unwrap();
        assert!(sink.mails().is_empty(), "{:?}", sink.mails());
        assert_eq!(sending_email_events(&app, &id).await, 0);
    }
}
