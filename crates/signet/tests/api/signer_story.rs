//! The signer's side end to end, with nothing stood in for: an order of three signers in two
//! priority groups; each invitation is read from a real SMTP server (aiosmtpd), its link opened
//! in a real browser (Chromium over chromedriver), Sign and Confirm pressed; the second group is
//! invited only once the first has signed; the solicitor hears the outcome; the signed PDF
//! carries three signatures pyHanko and pdfsig accept. Screenshots go to the artifacts folder.

use serde_json::Value;
use signet::mail::Language;

use crate::helpers::Db;
use crate::mail::{assert_no_duplicates, spawn_mailing_app, text, to, SmtpSink};
use crate::pages::three_signers;
use crate::pages_browser::{artifacts, Browser};

/// The signing link a message carries (the text part; the HTML part carries the same).
fn link_in(mail: &Value) -> String {
    let body = text(mail);
    let start = body.find("http").expect("a link in the invitation");
    body[start..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ',', ')', '>'])
        .to_owned()
}

/// Signs through the page at `link` as a person would: Sign, then Confirm.
async fn sign_in_browser(browser: &Browser, link: &str, label: &str) {
    browser.open(link).await;
    // pdf.js has drawn the document before the page is judged.
    let (width, height) = browser.rendered_canvas().await;
    assert!(width > 0.0 && height > 0.0, "canvas {width}x{height}");
    browser.screenshot(&format!("story-{label}-order")).await;
    browser.button("Sign").await.click().await.unwrap();
    let confirm = browser.button("Confirm").await;
    browser.screenshot(&format!("story-{label}-confirm")).await;
    confirm.click().await.unwrap();
    browser.wait_for_text("Done: you have signed").await;
    assert!(!browser.has_button("Sign").await);
    browser.screenshot(&format!("story-{label}-done")).await;
}

#[tokio::test]
async fn three_signers_invited_by_mail_sign_in_chromium_in_turn_and_the_pdf_validates() {
    let sink = SmtpSink::start();
    let Some(app) = spawn_mailing_app(Db::Sqlite, sink.port, Language::En).await else {
        return;
    };
    let Some(browser) = Browser::start("en-GB,en").await else {
        return;
    };
    // Group 1: Carl and Jane; group 2: Elsa.
    let id = app.create_order(&three_signers()).await;
    let first_group = sink.wait_for(2).await;
    let mut invited: Vec<&str> = first_group.iter().map(to).collect();
    invited.sort_unstable();
    assert_eq!(
        invited,
        ["carl.borgstrom@example.org", "jane.doe@example.org"],
        "only the first group is invited"
    );
    let order = app.order(&id).await;
    for mail in &first_group {
        // The invitation carries the signer's signingUrl verbatim.
        let link = link_in(mail);
        assert!(
            order["signers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["signingUrl"] == link.as_str()),
            "{link} is not one of the order's links"
        );
    }

    sign_in_browser(&browser, &link_in(&first_group[0]), "first").await;
    // Half the first group has signed: the second group still waits, and nobody new is mailed.
    app.outbox.deliver_due().await.unwrap();
    assert_eq!(sink.mails().len(), 2);
    assert_eq!(app.order(&id).await["signers"][1]["status"], "QUEUED");

    sign_in_browser(&browser, &link_in(&first_group[1]), "second").await;
    let mails = sink.wait_for(3).await;
    let elsa = mails
        .iter()
        .find(|m| to(m) == "elsa@example.net")
        .expect("the second group is invited once the first has signed");
    sign_in_browser(&browser, &link_in(elsa), "third").await;
    browser.wait_for_text("Download the signed document").await;
    browser.quit().await;

    assert_eq!(app.order_state(&id).await, "ACCEPTED");
    let mails = sink.wait_for(4).await;
    let outcome = mails.last().unwrap();
    assert_eq!(to(outcome), "carl.borgstrom@example.org", "the solicitor");
    assert_eq!(outcome["subject"], "Signed by everyone: Contract");
    assert_no_duplicates(&mails);

    let signed = app
        .client
        .get(format!("{}/document", link_in(elsa)))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let pdf = artifacts().join("story-signed.pdf");
    std::fs::write(&pdf, &signed).unwrap();
    let ca = app.data_dir.path().join("ca.pem");
    std::fs::write(&ca, app.state.pki.ca().certificate_pem()).unwrap();
    signet_testkit::assert_valid_everywhere(&pdf, &ca, 3);
    eprintln!("screenshots and the signed PDF: {}", artifacts().display());
}
