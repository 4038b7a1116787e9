//! The signer pages over plain HTTP (no browser): each signer opens their `signingUrl`, signs
//! through the confirmation step or rejects, and every refusal answers with a page, never a 500
//! — unknown, guessed and dead tokens alike, signing twice, out of turn, a missing or wrong CSRF
//! token. On SQLite and PostgreSQL.

use reqwest::multipart::{Form, Part};
use reqwest::{redirect, Client, Response, StatusCode};
use serde_json::Value;
use signet_testkit::pdfs::classic_pdf;

use crate::helpers::{spawn_app_on, Db, TestApp};
use crate::orders::{order_form, person};

/// A client that shows redirects instead of following them.
pub fn browserless() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Three signers: Carl and Jane in group 1, Elsa (EXTERNAL) in group 2.
pub fn three_signers() -> Vec<Value> {
    vec![
        person("INTERNAL", "sAMAccountName=cborgstrom", Some(1)),
        person("EXTERNAL", "200001011907", Some(2)),
        person("INTERNAL", "jdoe", Some(1)),
    ]
}

impl TestApp {
    /// Each signer's link as the order JSON hands it out (`None` once it is dead).
    pub async fn signing_urls(&self, id: &str) -> Vec<Option<String>> {
        self.order(id).await["signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["signingUrl"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The page's CSRF token (the hidden field in its forms).
pub fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

async fn page(client: &Client, url: &str) -> (StatusCode, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn post(client: &Client, url: &str, fields: &[(&str, &str)]) -> Response {
    client.post(url).form(fields).send().await.unwrap()
}

/// A sign or reject post with the page's own CSRF token.
async fn act(client: &Client, link: &str, action: &str, reason: Option<&str>) -> Response {
    let (_, html) = page(client, link).await;
    let csrf = csrf_of(&html);
    let mut fields = vec![("csrf", csrf.as_str()), ("lang", "en")];
    if let Some(reason) = reason {
        fields.push(("reason", reason));
    }
    post(client, &format!("{link}/{action}"), &fields).await
}

fn has_button(html: &str, label: &str) -> bool {
    html.contains(&format!(">{label}</button>"))
}

fn assert_no_500(status: StatusCode, context: &str) {
    assert!(!status.is_server_error(), "{context}: {status}");
}

#[tokio::test]
async fn three_signers_sign_through_their_pages_in_turn_and_the_order_is_accepted() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let client = browserless();
        let id = app.create_order(&three_signers()).await;
        let links: Vec<String> = app
            .signing_urls(&id)
            .await
            .into_iter()
            .map(Option::unwrap)
            .collect();
        assert!(
            links.iter().all(|l| l.starts_with(&app.address)),
            "{links:?}"
        );

        // The first signer's page: the order, every signer, Sign and Reject, the document.
        let (status, html) = page(&client, &links[0]).await;
        assert_eq!(status, 200);
        assert!(html.contains("<html lang=\"en\">"));
        for text in [
            "Contract",
            "Please sign",
            "Carl Borgström (you)",
            "Jane Doe",
            "Elsa Extern",
        ] {
            assert!(html.contains(text), "{text} missing in {html}");
        }
        assert!(
            has_button(&html, "Sign") && has_button(&html, "Reject"),
            "{html}"
        );
        assert!(html.contains("<label for=\"reason\">"), "{html}");
        assert!(!html.contains("200001011907"), "a personal number is shown");

        // The queued signer sees the order but not a Sign button, and cannot sign.
        let (status, html) = page(&client, &links[1]).await;
        assert_eq!(status, 200);
        assert!(html.contains("Not your turn yet"), "{html}");
        assert!(!has_button(&html, "Sign"), "{html}");
        assert!(
            csrf_for(&app, &links[1]).await.is_none(),
            "no form for the queued"
        );
        let early = post(
            &client,
            &format!("{}/sign", links[1]),
            &[("csrf", "none"), ("lang", "en")],
        )
        .await;
        assert_eq!(early.status(), 409);
        assert!(early.text().await.unwrap().contains("Not your turn yet"));

        // Sign: the confirmation step, then the post, then back to the order page.
        for index in [0, 2, 1] {
            let (status, confirm) = page(&client, &format!("{}/confirm", links[index])).await;
            assert_eq!(status, 200);
            assert!(has_button(&confirm, "Confirm"), "{confirm}");
            let response = post(
                &client,
                &format!("{}/sign", links[index]),
                &[("csrf", &csrf_of(&confirm)), ("lang", "en")],
            )
            .await;
            assert_eq!(response.status(), 303, "signer {index}");
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let (status, done) = page(&client, &app.url(&location)).await;
            assert_eq!(status, 200);
            assert!(done.contains("Done: you have signed"), "{done}");
            assert!(!has_button(&done, "Sign"));
            if index == 0 {
                assert_eq!(app.order_state(&id).await, "PENDING");
            }
        }
        assert_eq!(app.order_state(&id).await, "ACCEPTED");
        let order = app.order(&id).await;
        assert_eq!(order["document"]["signatures"], 3);

        // After the end: every link shows the outcome and offers the signed document.
        let (status, html) = page(&client, &links[2]).await;
        assert_eq!(status, 200);
        assert!(html.contains("Download the signed document"), "{html}");
        let pdf = client
            .get(format!("{}/document", links[2]))
            .send()
            .await
            .unwrap();
        assert_eq!(pdf.status(), 200);
        assert_eq!(pdf.headers()["content-type"], "application/pdf");
        assert!(pdf.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline"));
        assert_eq!(pdf.bytes().await.unwrap(), app.order_document(&id).await);

        // Signing twice: the link is dead for actions, answered like an unknown token.
        let again = post(&client, &format!("{}/sign", links[0]), &[("csrf", "x")]).await;
        let unknown = post(
            &client,
            &app.url(&format!("/sign/{}/sign", "0".repeat(64))),
            &[("csrf", "x")],
        )
        .await;
        assert_eq!(again.status(), 404);
        assert_eq!(unknown.status(), 404);
        assert_eq!(again.text().await.unwrap(), unknown.text().await.unwrap());
    }
}

/// The CSRF token a link's page carries, read from its page (any page of the link has it).
async fn csrf_for(app: &TestApp, link: &str) -> Option<String> {
    let (_, html) = page(&app.client, link).await;
    html.contains("name=\"csrf\"").then(|| csrf_of(&html))
}

#[tokio::test]
async fn a_rejection_with_a_reason_ends_the_order_and_the_page_shows_the_outcome() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let client = browserless();
        let id = app.create_order(&three_signers()).await;
        let links = app.signing_urls(&id).await;
        let jane = links[2].clone().unwrap();

        let response = act(&client, &jane, "reject", Some("Wrong <b>amount</b>")).await;
        assert_eq!(response.status(), 303);
        assert_eq!(app.order_state(&id).await, "REJECTED");
        let order = app.order(&id).await;
        assert_eq!(order["signers"][2]["status"], "REJECTED");
        assert_eq!(order["signers"][2]["rejectReason"], "Wrong <b>amount</b>");
        assert!(app.signing_urls(&id).await.iter().all(Option::is_none));

        // Every link still shows the order, the outcome, the reason (escaped), no buttons.
        for (link, notice) in [
            (&jane, "Done: you have rejected"),
            (links[0].as_ref().unwrap(), "This order has ended"),
        ] {
            let (status, html) = page(&client, link).await;
            assert_eq!(status, 200);
            assert!(html.contains(notice), "{html}");
            assert!(html.contains("Wrong &lt;b&gt;amount&lt;/b&gt;"), "{html}");
            assert!(!has_button(&html, "Sign") && !has_button(&html, "Reject"));
            let document = client.get(format!("{link}/document")).send().await.unwrap();
            assert_eq!(document.status(), 200);
        }
        // The confirmation step of a dead link is the order page, without a Confirm button.
        let (status, html) = page(&client, &format!("{jane}/confirm")).await;
        assert_eq!(status, 200);
        assert!(!has_button(&html, "Confirm"));
    }
}

#[tokio::test]
async fn unknown_guessed_and_dead_tokens_get_the_same_answer_and_nothing_is_a_500() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let client = browserless();
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let link = app.signing_urls(&id).await[0].clone().unwrap();
        let token = link.rsplit('/').next().unwrap().to_owned();
        let csrf = csrf_for(&app, &link).await.unwrap();
        assert_eq!(
            act(&client, &link, "sign", None).await.status(),
            303,
            "the live link signs"
        );

        // One letter off, a wrong length, nonsense, a dead token: one status, one body.
        let mut guessed = token.clone().into_bytes();
        guessed[10] = if guessed[10] == b'a' { b'b' } else { b'a' };
        let guessed = String::from_utf8(guessed).unwrap();
        let mut answers = Vec::new();
        for candidate in [
            token.as_str(),
            guessed.as_str(),
            "0000",
            "not-a-token",
            &"f".repeat(64),
        ] {
            for action in ["sign", "reject"] {
                let response = post(
                    &client,
                    &app.url(&format!("/sign/{candidate}/{action}")),
                    &[("csrf", csrf.as_str()), ("lang", "en")],
                )
                .await;
                answers.push((response.status(), response.text().await.unwrap()));
            }
        }
        assert!(answers.iter().all(|a| a.0 == 404), "{answers:?}");
        assert!(answers.windows(2).all(|w| w[0].1 == w[1].1));
        // GET of an unknown token: the same page, for the page and its document.
        for path in [
            format!("/sign/{guessed}"),
            format!("/sign/{guessed}/document"),
        ] {
            let (status, html) = page(&client, &app.url(&path)).await;
            assert_eq!(status, 404, "{path}");
            assert_eq!(html, answers[0].1);
        }

        // Odd requests to the pages: refused, never a 500.
        let odd = [
            client
                .post(format!("{link}/sign"))
                .body("x")
                .send()
                .await
                .unwrap(),
            client
                .post(format!("{link}/sign"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("%%%")
                .send()
                .await
                .unwrap(),
            client.get(format!("{link}?lang=%ff")).send().await.unwrap(),
            client.delete(link.clone()).send().await.unwrap(),
            client
                .get(app.url("/assets/x/none.js"))
                .send()
                .await
                .unwrap(),
        ];
        for response in odd {
            assert_no_500(response.status(), response.url().as_str());
        }
    }
}

#[tokio::test]
async fn a_post_without_the_links_csrf_token_is_refused() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let client = browserless();
        let first = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let second = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let link = app.signing_urls(&first).await[0].clone().unwrap();
        let other_link = app.signing_urls(&second).await[0].clone().unwrap();
        let others_csrf = csrf_for(&app, &other_link).await.unwrap();
        let own_csrf = csrf_for(&app, &link).await.unwrap();
        assert_ne!(own_csrf, others_csrf);

        for fields in [
            vec![("lang", "en")],
            vec![("csrf", ""), ("lang", "en")],
            vec![("csrf", "00"), ("lang", "en")],
            vec![("csrf", others_csrf.as_str()), ("lang", "en")],
            vec![("csrf", &own_csrf[..63]), ("lang", "en")],
        ] {
            for action in ["sign", "reject"] {
                let response = post(&client, &format!("{link}/{action}"), &fields).await;
                assert_eq!(response.status(), 403, "{fields:?}");
                let html = response.text().await.unwrap();
                assert!(html.contains("Request refused"), "{html}");
            }
        }
        assert_eq!(app.order_state(&first).await, "PENDING");
        assert_eq!(app.order(&first).await["signers"][0]["status"], "PENDING");
    }
}

#[tokio::test]
async fn swedish_browsers_get_swedish_and_the_switch_is_kept_through_the_forms() {
    let Some(app) = spawn_app_on(Db::Sqlite).await else {
        return;
    };
    let client = browserless();
    let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    let link = app.signing_urls(&id).await[0].clone().unwrap();

    let swedish = |url: String| {
        client
            .get(url)
            .header("accept-language", "sv-SE,sv;q=0.9,en-US;q=0.8,en;q=0.7")
            .send()
    };
    let html = swedish(link.clone()).await.unwrap().text().await.unwrap();
    assert!(html.contains("<html lang=\"sv\">"), "{html}");
    assert!(
        has_button(&html, "Signera") && has_button(&html, "Avvisa"),
        "{html}"
    );
    assert!(html.contains("hreflang=\"en\""), "the switch to English");
    let confirm = swedish(format!("{link}/confirm"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(has_button(&confirm, "Bekräfta"), "{confirm}");
    assert!(confirm.contains("name=\"lang\" value=\"sv\""));

    // The switch beats the header, and it is what the forms carry on.
    let html = swedish(format!("{link}?lang=en"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(has_button(&html, "Sign"), "{html}");
    let html = page(&client, &format!("{link}?lang=sv")).await.1;
    assert!(has_button(&html, "Signera"));
    let response = post(
        &client,
        &format!("{link}/sign"),
        &[("csrf", &csrf_of(&html)), ("lang", "sv")],
    )
    .await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("lang=sv"), "{location}");
    let done = page(&client, &app.url(&location)).await.1;
    assert!(done.contains("Klart: du har signerat"), "{done}");
}

#[tokio::test]
async fn link_type_1_opens_the_signing_step_and_returns_to_the_order_page() {
    let Some(app) = spawn_app_on(Db::Sqlite).await else {
        return;
    };
    let client = browserless();
    let form = order_form(&[person("INTERNAL", "jdoe", None)]).text("linkType", "1");
    let (status, id) = app.post_order(form).await;
    assert_eq!(status, 200, "{id}");
    let link = app.signing_urls(&id).await[0].clone().unwrap();

    let (_, html) = page(&client, &link).await;
    assert!(has_button(&html, "Confirm"), "{html}");
    assert!(html.contains("?view=order"), "the way to the order page");
    let (_, order_page) = page(&client, &format!("{link}?view=order")).await;
    assert!(has_button(&order_page, "Reject"));

    let response = post(
        &client,
        &format!("{link}/sign"),
        &[("csrf", &csrf_of(&html)), ("lang", "en")],
    )
    .await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let (_, done) = page(&client, &app.url(&location)).await;
    assert!(done.contains("Done: you have signed"), "{done}");
    // Opened again, the link shows the order, not a signing step.
    let (_, again) = page(&client, &link).await;
    assert!(!has_button(&again, "Confirm") && again.contains("Done: you have signed"));
}

#[tokio::test]
async fn pages_are_escaped_and_carry_headers_that_keep_the_token_private() {
    let Some(app) = spawn_app_on(Db::Sqlite).await else {
        return;
    };
    let client = browserless();
    let form = Form::new()
        .text("title", "<script>alert(1)</script> & \"quotes\"")
        .text("description", "<img src=x onerror=alert(2)>")
        .part("upload", Part::bytes(classic_pdf(1)).file_name("a.pdf"))
        .text(
            "solicitor",
            person("INTERNAL", "sAMAccountName=cborgstrom", None).to_string(),
        )
        .text("signers", person("INTERNAL", "jdoe", None).to_string());
    let (status, id) = app.post_order(form).await;
    assert_eq!(status, 200, "{id}");
    let link = app.signing_urls(&id).await[0].clone().unwrap();

    let response = client.get(&link).send().await.unwrap();
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();
    assert!(
        !html.contains("<script>alert") && !html.contains("<img src=x"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    assert!(html.contains("<meta name=\"viewport\""));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // The assets the page names are served from the binary, cached long.
    let mut assets = 0;
    for piece in html.split("\"/assets/").skip(1) {
        let path = &piece[..piece.find('"').unwrap()];
        let asset = client
            .get(app.url(&format!("/assets/{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(asset.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        assets += 1;
    }
    assert_eq!(assets, 2, "the stylesheet and the viewer");
    let version = env!("CARGO_PKG_VERSION");
    for name in ["pdf.min.mjs", "pdf.worker.min.mjs", "pdfjs-LICENSE.txt"] {
        let asset = client
            .get(app.url(&format!("/assets/{version}/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{name}");
    }
}
