//! Signer authentication `email-otp` over plain HTTP: the code is read from a real SMTP server
//! (aiosmtpd from the oracle venv); a wrong code is refused, five wrong codes kill it, an old
//! code is dead, a right code opens a session for that link only, and without SMTP the page
//! says the code cannot be sent. On SQLite and PostgreSQL.

use reqwest::{Client, Response};
use serde_json::{json, Value};
use signet::clock::ManualClock;
use signet::domain::order::SignerAuth;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::orders::{order_form, person};
use crate::pages::{browserless, csrf_of};

/// A running aiosmtpd (`support/smtp_sink.py`) writing each message as JSON into a directory.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        use std::io::BufRead;
        let venv = std::env::var("SIGNET_ORACLE_VENV")
            .expect("SIGNET_ORACLE_VENV must name the venv with aiosmtpd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/smtp_sink.py");
        let mut child = Command::new(PathBuf::from(venv).join("bin/python"))
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
        SmtpSink { child, port, dir }
    }

    fn mails(&self) -> Vec<Value> {
        let mut found: Vec<(String, Value)> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(".json")?
                    .to_owned();
                let text = std::fs::read_to_string(&path).ok()?;
                Some((name, serde_json::from_str(&text).unwrap()))
            })
            .collect();
        found.sort_by_key(|(name, _)| {
            name.rsplit('-')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        found.into_iter().map(|(_, mail)| mail).collect()
    }

    /// The codes mailed to `to` so far, oldest first (each code mail names only its code).
    pub fn codes_for(&self, to: &str) -> Vec<String> {
        self.mails()
            .iter()
            .filter(|m| m["subject"] == "Your signing code" || m["subject"] == "Din signeringskod")
            .filter(|m| m["to"].as_array().unwrap().iter().any(|r| r == to))
            .map(|m| six_digits(m["text"].as_str().unwrap()))
            .collect()
    }

    /// Waits for the `n`-th code mailed to `to` (a hang guard, not a timed assertion).
    pub async fn wait_for_code(&self, to: &str, n: usize) -> String {
        for _ in 0..1200 {
            if let Some(code) = self.codes_for(to).get(n - 1) {
                return code.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("code {n} for {to} never arrived: {:#?}", self.mails());
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn six_digits(text: &str) -> String {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5))
        .find(|&i| {
            bytes[i..i + 6].iter().all(u8::is_ascii_digit)
                && (i == 0 || !bytes[i - 1].is_ascii_digit())
                && bytes.get(i + 6).is_none_or(|b| !b.is_ascii_digit())
        })
        .map(|i| text[i..i + 6].to_owned())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

/// A server on `db` with `signer_auth` as its default that mails through `smtp` (or nowhere).
pub async fn spawn_otp_app(db: Db, smtp: Option<u16>, default: SignerAuth) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    Some(
        start_with(data_dir, database_url, clock, |settings| {
            settings.smtp.url = smtp.map(|port| format!("smtp://127.0.0.1:{port}"));
            settings.mail_from = "signet@example.org".into();
            settings.signer_auth = default;
        })
        .await,
    )
}

/// An order for Jane and Carl (group 1) that asks for `email-otp` through its option.
pub async fn otp_order(app: &TestApp) -> (String, Vec<String>) {
    let form = order_form(&[
        person("INTERNAL", "jdoe", None),
        person("INTERNAL", "sAMAccountName=cborgstrom", None),
    ])
    .text(
        "option",
        json!({"name": "signerAuthentication", "value": "email-otp"}).to_string(),
    );
    let (status, id) = app.post_order(form).await;
    assert_eq!(status, 200, "{id}");
    let links = app
        .signing_urls(&id)
        .await
        .into_iter()
        .map(Option::unwrap)
        .collect();
    (id, links)
}

pub const JANE: &str = "jane.doe@example.org";

async fn get(client: &Client, url: &str, cookie: Option<&str>) -> (u16, String) {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post(
    client: &Client,
    url: &str,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
) -> Response {
    let mut request = client.post(url).form(fields);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// Asks for a code through the page and returns the page's CSRF token.
async fn ask_for_code(client: &Client, link: &str) -> String {
    let (status, html) = get(client, link, None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(">Send a code to my e-mail</button>"),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let response = post(client, &format!("{link}/code"), &[("csrf", &csrf)], None).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("otp=sent"), "{location}");
    csrf
}

async fn verify(client: &Client, link: &str, csrf: &str, code: &str) -> Response {
    post(
        client,
        &format!("{link}/verify"),
        &[("csrf", csrf), ("code", code)],
        None,
    )
    .await
}

fn wrong(code: &str) -> String {
    let last = code.as_bytes()[5];
    let changed = if last == b'9' {
        '0'
    } else {
        char::from(last + 1)
    };
    format!("{}{changed}", &code[..5])
}

#[tokio::test]
async fn email_otp_refuses_a_wrong_code_and_a_right_code_lets_the_signer_sign() {
    for db in [Db::Sqlite, Db::Postgres] {
        let smtp = SmtpSink::start();
        let Some(app) = spawn_otp_app(db, Some(smtp.port), SignerAuth::Link).await else {
            continue;
        };
        let client = browserless();
        let (id, links) = otp_order(&app).await;
        let jane = &links[0];

        // Without the code: no Sign button, and a post with the right CSRF token is refused.
        let (_, html) = get(&client, jane, None).await;
        assert!(!html.contains(">Sign</button>"), "{html}");
        let csrf = csrf_of(&html);
        let refused = post(&client, &format!("{jane}/sign"), &[("csrf", &csrf)], None).await;
        assert_eq!(refused.status(), 403);
        assert!(refused.text().await.unwrap().contains("Enter the code"));

        let csrf = ask_for_code(&client, jane).await;
        let code = smtp.wait_for_code(JANE, 1).await;
        let (_, html) = get(&client, &format!("{jane}?view=order&otp=sent"), None).await;
        assert!(html.contains("A code was sent"), "{html}");

        let response = verify(&client, jane, &csrf, &wrong(&code)).await;
        assert_eq!(response.status(), 403);
        let html = response.text().await.unwrap();
        assert!(
            html.contains("Wrong code") && !html.contains(">Sign</button>"),
            "{html}"
        );

        let response = verify(&client, jane, &csrf, &code).await;
        assert_eq!(response.status(), 303);
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/sign/", "Max-Age=1800"] {
            assert!(set_cookie.contains(part), "{set_cookie}");
        }
        assert!(!set_cookie.contains("Secure"), "plain http: {set_cookie}");
        let cookie = set_cookie.split(';').next().unwrap().to_owned();

        // The code was good once.
        assert_eq!(verify(&client, jane, &csrf, &code).await.status(), 403);
        // The session is this link's only: Carl's link does not take Jane's cookie.
        let carl = &links[1];
        let (_, carls_page) = get(&client, carl, Some(&cookie)).await;
        assert!(!carls_page.contains(">Sign</button>"));
        let carls_csrf = csrf_of(&carls_page);
        let refused = post(
            &client,
            &format!("{carl}/sign"),
            &[("csrf", &carls_csrf)],
            Some(&cookie),
        )
        .await;
        assert_eq!(refused.status(), 403);

        let (_, html) = get(&client, jane, Some(&cookie)).await;
        assert!(html.contains(">Sign</button>"), "{html}");
        let signed = post(
            &client,
            &format!("{jane}/sign"),
            &[("csrf", &csrf_of(&html))],
            Some(&cookie),
        )
        .await;
        assert_eq!(signed.status(), 303);
        assert_eq!(app.order(&id).await["signers"][0]["status"], "SIGNED");
        // A forged or stale session value does nothing.
        let forged = format!("{}0", &cookie[..cookie.len() - 1]);
        let (_, html) = get(&client, carl, Some(&forged)).await;
        assert!(!html.contains(">Sign</button>"));
    }
}

#[tokio::test]
async fn five_wrong_codes_kill_the_code_and_a_new_one_must_be_asked_for() {
    for db in [Db::Sqlite, Db::Postgres] {
        let smtp = SmtpSink::start();
        let Some(app) = spawn_otp_app(db, Some(smtp.port), SignerAuth::EmailOtp).await else {
            continue;
        };
        let client = browserless();
        // The server's default is email-otp: no option needed.
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let jane = app.signing_urls(&id).await[0].clone().unwrap();

        let csrf = ask_for_code(&client, &jane).await;
        let code = smtp.wait_for_code(JANE, 1).await;
        for attempt in 1..=5 {
            let response = verify(&client, &jane, &csrf, &wrong(&code)).await;
            assert_eq!(response.status(), 403);
            let html = response.text().await.unwrap();
            assert!(html.contains("Wrong code"), "attempt {attempt}: {html}");
        }
        // The sixth try, even with the right code, finds the code dead.
        let response = verify(&client, &jane, &csrf, &code).await;
        assert_eq!(response.status(), 403);
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("can no longer be used"));

        // A new code works; an old code past its ten minutes does not.
        ask_for_code(&client, &jane).await;
        let second = smtp.wait_for_code(JANE, 2).await;
        app.clock.advance(Duration::minutes(11));
        assert_eq!(verify(&client, &jane, &csrf, &second).await.status(), 403);
        ask_for_code(&client, &jane).await;
        let third = smtp.wait_for_code(JANE, 3).await;
        let response = verify(&client, &jane, &csrf, &third).await;
        assert_eq!(response.status(), 303);
        assert!(response.headers().contains_key("set-cookie"));
        assert_eq!(app.order_state(&id).await, "PENDING");
    }
}

#[tokio::test]
async fn without_smtp_email_otp_says_the_code_cannot_be_sent() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_otp_app(db, None, SignerAuth::EmailOtp).await else {
            continue;
        };
        let client = browserless();
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let jane = app.signing_urls(&id).await[0].clone().unwrap();
        let (_, html) = get(&client, &jane, None).await;
        let response = post(
            &client,
            &format!("{jane}/code"),
            &[("csrf", &csrf_of(&html))],
            None,
        )
        .await;
        assert_eq!(response.status(), 503);
        let html = response.text().await.unwrap();
        assert!(html.contains("The code cannot be sent"), "{html}");
        // Nothing to check, nothing signed.
        let response = verify(
            &client,
            &jane,
            &csrf_of_page(&client, &jane).await,
            "123456",
        )
        .await;
        assert_eq!(response.status(), 403);
        assert_eq!(app.order_state(&id).await, "PENDING");
    }
}

async fn csrf_of_page(client: &Client, link: &str) -> String {
    csrf_of(&get(client, link, None).await.1)
}
