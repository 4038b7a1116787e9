//! The signer pages in a real browser: Debian's Chromium, headless, driven over chromedriver
//! (WebDriver, fantoccini). Elements are found the way a person finds them: buttons by their
//! text, the reason box by its label. A screenshot of every page is kept under
//! `$CARGO_TARGET_TMPDIR/signer-pages/`. `email-otp` codes come from a real SMTP server (aiosmtpd).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::helpers::{spawn_app_on, Db, TestApp};
use crate::orders::person;
use crate::pages::three_signers;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long the browser may take to show something before the test gives up: a bound for a
/// broken page, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(60);

/// A headless Chromium behind its own chromedriver, both gone when this is dropped.
pub(crate) struct Browser {
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` (and a note) where Chromium or chromedriver is not installed.
    pub(crate) async fn start(accept_language: &str) -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists()
        {
            // CI installs both (scripts/test.sh): there, a missing browser is a failure.
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMEDRIVER} or {CHROMIUM} is not installed"
            );
            eprintln!("skipped: {CHROMEDRIVER} or {CHROMIUM} is not installed");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group: Chromium is chromedriver's child, and killing only chromedriver
        // when a test panics left a headless browser running after the suite.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1024,1400",
                    format!("--lang={accept_language}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "prefs": {"intl.accept_languages": accept_language},
            }
        });
        let capabilities = capabilities.as_object().unwrap().clone();
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen: try until it answers.
        let mut last_error = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Browser {
                        client: Some(client),
                        driver,
                        _profile: profile,
                    })
                }
                Err(error) => last_error = Some(error.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last_error:?}");
    }

    fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub(crate) async fn open(&self, url: &str) {
        self.client().goto(url).await.unwrap();
    }

    /// The button a person would press, by its text.
    pub(crate) async fn button(&self, label: &str) -> fantoccini::elements::Element {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&format!(
                "//button[normalize-space()='{label}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no button {label:?}: {e}"))
    }

    pub(crate) async fn has_button(&self, label: &str) -> bool {
        !self
            .client()
            .find_all(Locator::XPath(&format!(
                "//button[normalize-space()='{label}']"
            )))
            .await
            .unwrap()
            .is_empty()
    }

    /// The form field a label names.
    pub(crate) async fn field(&self, label: &str) -> fantoccini::elements::Element {
        let label = self
            .client()
            .find(Locator::XPath(&format!(
                "//label[normalize-space()='{label}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("no label {label:?}: {e}"));
        let id = label.attr("for").await.unwrap().unwrap();
        self.client().find(Locator::Id(&id)).await.unwrap()
    }

    /// Waits for the page to say `text`.
    pub(crate) async fn wait_for_text(&self, text: &str) {
        self.client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::XPath(&format!(
                "//*[contains(normalize-space(), '{text}')]"
            )))
            .await
            .unwrap_or_else(|e| panic!("the page never said {text:?}: {e}"));
    }

    /// Waits for pdf.js to draw the document and returns the first page's canvas size.
    pub(crate) async fn rendered_canvas(&self) -> (f64, f64) {
        let viewer = self
            .client()
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css("#viewer[data-rendered], #viewer[data-failed]"))
            .await
            .unwrap();
        let failed = viewer.attr("data-failed").await.unwrap();
        assert!(failed.is_none(), "pdf.js failed: {failed:?}");
        let canvas = self
            .client()
            .find(Locator::Css("#viewer canvas"))
            .await
            .unwrap();
        let (_, _, width, height) = canvas.rectangle().await.unwrap();
        (width, height)
    }

    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client().screenshot().await.unwrap();
        let path = artifacts().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    pub(crate) async fn quit(mut self) {
        if let Some(client) = self.client.take() {
            let _ = client.close().await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = rustix::process::Pid::from_raw(self.driver.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

pub(crate) fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("signer-pages");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn links_of(app: &TestApp, id: &str) -> Vec<String> {
    app.signing_urls(id)
        .await
        .into_iter()
        .map(|l| l.expect("a live link"))
        .collect()
}

/// Three signers in two groups, each through their own link in the browser: the order ends
/// ACCEPTED and the PDF carries three signatures that pyHanko and pdfsig accept.
async fn three_signers_sign_in_the_browser(db: Db, label: &str) {
    let Some(app) = spawn_app_on(db).await else {
        return;
    };
    let Some(browser) = Browser::start("en-GB,en").await else {
        return;
    };
    let id = app.create_order(&three_signers()).await;
    let links = links_of(&app, &id).await;

    // The queued signer first: the order, "not your turn yet", no Sign button.
    browser.open(&links[1]).await;
    browser.wait_for_text("Not your turn yet").await;
    assert!(!browser.has_button("Sign").await);
    browser.screenshot(&format!("{label}-queued")).await;

    for (step, index) in [0, 2, 1].into_iter().enumerate() {
        browser.open(&links[index]).await;
        let (width, height) = browser.rendered_canvas().await;
        assert!(width > 0.0 && height > 0.0, "canvas {width}x{height}");
        browser
            .screenshot(&format!("{label}-signer{step}-order"))
            .await;
        browser.button("Sign").await.click().await.unwrap();
        let confirm = browser.button("Confirm").await;
        browser
            .screenshot(&format!("{label}-signer{step}-confirm"))
            .await;
        confirm.click().await.unwrap();
        browser.wait_for_text("Done: you have signed").await;
        assert!(!browser.has_button("Sign").await);
        browser
            .screenshot(&format!("{label}-signer{step}-done"))
            .await;
        if step == 0 {
            // The second group waits for the whole first group.
            assert_eq!(app.order(&id).await["signers"][1]["status"], "QUEUED");
        }
    }
    browser.wait_for_text("Download the signed document").await;
    browser.quit().await;

    assert_eq!(app.order_state(&id).await, "ACCEPTED");
    let signed = app
        .client
        .get(format!("{}/document", links[0]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = app.data_dir.path();
    let pdf = dir.join("signed-through-the-pages.pdf");
    std::fs::write(&pdf, &signed).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, app.state.pki.ca().certificate_pem()).unwrap();
    signet_testkit::assert_valid_everywhere(&pdf, &ca, 3);
}

#[tokio::test]
async fn three_signers_in_two_groups_sign_in_chromium_and_the_pdf_has_three_valid_signatures() {
    three_signers_sign_in_the_browser(Db::Sqlite, "sqlite").await;
}

#[tokio::test]
async fn three_signers_sign_in_chromium_on_postgres() {
    three_signers_sign_in_the_browser(Db::Postgres, "postgres").await;
}

#[tokio::test]
async fn a_signer_rejects_in_chromium_with_a_reason() {
    let Some(app) = spawn_app_on(Db::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::start("en-GB,en").await else {
        return;
    };
    let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    let link = links_of(&app, &id).await.remove(0);

    browser.open(&link).await;
    browser
        .field("Reason for rejecting (optional)")
        .await
        .send_keys("The amount is wrong")
        .await
        .unwrap();
    browser.screenshot("reject-order").await;
    browser.button("Reject").await.click().await.unwrap();
    browser.wait_for_text("Done: you have rejected").await;
    assert!(!browser.has_button("Sign").await);
    browser.screenshot("reject-done").await;
    browser.quit().await;

    assert_eq!(app.order_state(&id).await, "REJECTED");
    assert_eq!(
        app.order(&id).await["signers"][0]["rejectReason"],
        "The amount is wrong"
    );
}

#[tokio::test]
async fn a_swedish_browser_gets_signera_and_avvisa() {
    let Some(app) = spawn_app_on(Db::Sqlite).await else {
        return;
    };
    let Some(browser) = Browser::start("sv-SE,sv").await else {
        return;
    };
    let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    let link = links_of(&app, &id).await.remove(0);

    browser.open(&link).await;
    browser.button("Signera").await;
    assert!(browser.has_button("Avvisa").await);
    let lang = browser
        .client()
        .find(Locator::Css("html"))
        .await
        .unwrap()
        .attr("lang")
        .await
        .unwrap();
    assert_eq!(lang.as_deref(), Some("sv"));
    browser.screenshot("swedish-order").await;
    browser.button("Signera").await.click().await.unwrap();
    browser.button("Bekräfta").await.click().await.unwrap();
    browser.wait_for_text("Klart: du har signerat").await;
    browser.screenshot("swedish-done").await;
    browser.quit().await;
    assert_eq!(app.order_state(&id).await, "ACCEPTED");
}

#[tokio::test]
async fn email_otp_in_chromium_refuses_a_wrong_code_and_signs_with_the_right_one() {
    use crate::pages_otp::{otp_order, spawn_otp_app, SmtpSink, JANE};
    use signet::domain::order::SignerAuth;

    let smtp = SmtpSink::start();
    let Some(app) = spawn_otp_app(Db::Sqlite, Some(smtp.port), SignerAuth::Link).await else {
        return;
    };
    let Some(browser) = Browser::start("en-GB,en").await else {
        return;
    };
    let (id, links) = otp_order(&app).await;

    browser.open(&links[0]).await;
    assert!(!browser.has_button("Sign").await);
    browser.screenshot("otp-order").await;
    browser
        .button("Send a code to my e-mail")
        .await
        .click()
        .await
        .unwrap();
    browser.wait_for_text("A code was sent").await;
    let code = smtp.wait_for_code(JANE, 1).await;

    let wrong = if code == "000000" { "111111" } else { "000000" };
    browser
        .field("Code from the e-mail")
        .await
        .send_keys(wrong)
        .await
        .unwrap();
    browser.button("Continue").await.click().await.unwrap();
    browser.wait_for_text("Wrong code").await;
    assert!(!browser.has_button("Sign").await);
    browser.screenshot("otp-wrong").await;

    browser
        .field("Code from the e-mail")
        .await
        .send_keys(&code)
        .await
        .unwrap();
    browser.button("Continue").await.click().await.unwrap();
    browser.button("Sign").await.click().await.unwrap();
    browser.button("Confirm").await.click().await.unwrap();
    browser.wait_for_text("Done: you have signed").await;
    browser.screenshot("otp-done").await;
    browser.quit().await;
    assert_eq!(app.order(&id).await["signers"][0]["status"], "SIGNED");
}
