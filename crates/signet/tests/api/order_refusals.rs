//! What the Automation API refuses, and that a refusal leaves nothing behind: every bad order form
//! (status, code, and no order row, login, event or blob afterwards), unknown orders, and the
//! updates a finished or signed order no longer takes; plus the updates it does take, with their
//! events. On SQLite and PostgreSQL.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::multipart::{Form, Part};
use reqwest::Response;
use serde_json::{json, Value};
use signet::clock::ManualClock;
use signet::config::Settings;
use signet_testkit::pdfs::{classic_pdf, classic_pdf_with_image};
use sqlx::{Connection, Row};
use time::OffsetDateTime;

use crate::helpers::{assert_error, database_url_for, spawn_app_on, start_with, Db, TestApp};
use crate::orders::person;

/// An app on every database available here (SQLite always, PostgreSQL when configured).
pub async fn apps() -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in [Db::Sqlite, Db::Postgres] {
        if let Some(app) = spawn_app_on(db).await {
            apps.push(app);
        }
    }
    apps
}

/// Like [`apps`], with a last word on the settings.
async fn apps_with(adjust: impl Fn(&mut Settings)) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for db in [Db::Sqlite, Db::Postgres] {
        let data_dir = tempfile::tempdir().unwrap();
        let Some(url) = database_url_for(db, data_dir.path()).await else {
            continue;
        };
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        apps.push(start_with(data_dir, url, clock, &adjust).await);
    }
    apps
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

async fn count(db: &mut sqlx::AnyConnection, table: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM {table}"
    )))
    .fetch_one(db)
    .await
    .unwrap()
    .get::<i64, _>("n")
}

/// What a request could have left behind: rows, events, and files in the blob store.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    orders: i64,
    order_signers: i64,
    logins: i64,
    events: i64,
    order_created_events: usize,
    order_blobs: Vec<PathBuf>,
    temporary_files: Vec<PathBuf>,
}

impl Stored {
    pub async fn of(app: &TestApp) -> Stored {
        sqlx::any::install_default_drivers();
        let mut db = sqlx::AnyConnection::connect(&app.database_url)
            .await
            .unwrap();
        let orders = count(&mut db, "orders").await;
        let order_signers = count(&mut db, "order_signers").await;
        let logins = count(&mut db, "logins").await;
        let events = count(&mut db, "events").await;
        let blobs = app.data_dir.path().join("blobs");
        Stored {
            orders,
            order_signers,
            logins,
            events,
            order_created_events: app
                .state
                .store
                .events_named("ORDER_CREATED")
                .await
                .unwrap()
                .len(),
            order_blobs: files_under(&blobs.join("orders")),
            temporary_files: crate::helpers::temporary_files(app.data_dir.path()),
        }
    }

    /// A fresh app's store: nothing at all.
    fn nothing() -> Stored {
        Stored {
            orders: 0,
            order_signers: 0,
            logins: 0,
            events: 0,
            order_created_events: 0,
            order_blobs: Vec::new(),
            temporary_files: Vec::new(),
        }
    }
}

/// An order form as a list of fields, to break one at a time.
#[derive(Clone)]
struct OrderFields {
    fields: Vec<(&'static str, String)>,
    upload: Option<Vec<u8>>,
}

impl OrderFields {
    /// A form the server accepts.
    fn valid() -> Self {
        OrderFields {
            fields: vec![
                ("title", "Contract".into()),
                ("description", "Please sign".into()),
                (
                    "solicitor",
                    person("INTERNAL", "sAMAccountName=cborgstrom", None).to_string(),
                ),
                (
                    "signers",
                    person("EXTERNAL", "200001011907", None).to_string(),
                ),
            ],
            upload: Some(classic_pdf(1)),
        }
    }

    fn without(mut self, name: &str) -> Self {
        self.fields.retain(|(n, _)| *n != name);
        self
    }

    /// Replaces every value of `name` with this one.
    fn with(self, name: &'static str, value: impl Into<String>) -> Self {
        let mut this = self.without(name);
        this.fields.push((name, value.into()));
        this
    }

    fn upload(mut self, bytes: Option<Vec<u8>>) -> Self {
        self.upload = bytes;
        self
    }

    fn form(&self) -> Form {
        let mut form = Form::new();
        for (name, value) in &self.fields {
            form = form.text(*name, value.clone());
        }
        if let Some(bytes) = &self.upload {
            form = form.part("upload", Part::bytes(bytes.clone()).file_name("doc.pdf"));
        }
        form
    }
}

/// Posts the form on every database and asserts the refusal and an untouched store.
async fn assert_refused(fields: OrderFields, status: u16, code: &str) -> Vec<String> {
    let mut messages = Vec::new();
    for app in apps().await {
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .multipart(fields.form())
            .send()
            .await
            .unwrap();
        messages.push(assert_error(response, status, code).await);
        assert_eq!(Stored::of(&app).await, Stored::nothing());
    }
    messages
}

#[tokio::test]
async fn the_valid_form_these_tests_break_is_accepted() {
    for app in apps().await {
        let (status, body) = app.post_order(OrderFields::valid().form()).await;
        assert_eq!(status, 200, "{body}");
        let stored = Stored::of(&app).await;
        assert_eq!(stored.orders, 1);
        assert_eq!(stored.order_created_events, 1);
        assert_eq!(stored.order_blobs.len(), 1);
        assert!(stored.temporary_files.is_empty(), "{stored:?}");
    }
}

#[tokio::test]
async fn an_order_without_a_title_is_refused_and_nothing_is_stored() {
    assert_refused(
        OrderFields::valid().without("title"),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
    assert_refused(
        OrderFields::valid().with("title", "  "),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn an_order_without_an_upload_is_refused_and_nothing_is_stored() {
    assert_refused(
        OrderFields::valid().upload(None),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn an_order_without_a_solicitor_is_refused_and_nothing_is_stored() {
    assert_refused(
        OrderFields::valid().without("solicitor"),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn an_order_without_signers_is_refused_and_nothing_is_stored() {
    assert_refused(
        OrderFields::valid().without("signers"),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn an_upload_that_is_not_a_pdf_is_refused_and_nothing_is_stored() {
    let png =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    assert_refused(
        OrderFields::valid().upload(Some(png)),
        400,
        "DOCUMENT_UPLOAD_ERROR",
    )
    .await;
    assert_refused(
        OrderFields::valid().upload(Some(Vec::new())),
        400,
        "DOCUMENT_UPLOAD_ERROR",
    )
    .await;
}

#[tokio::test]
async fn an_encrypted_pdf_is_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.pdf");
    let encrypted = dir.path().join("encrypted.pdf");
    std::fs::write(&plain, classic_pdf(1)).unwrap();
    let status = tokio::process::Command::new("qpdf")
        .arg("--encrypt")
        .args(["user", "owner", "256", "--"])
        .arg(&plain)
        .arg(&encrypted)
        .status()
        .await
        .unwrap();
    assert!(status.success(), "qpdf could not encrypt the test PDF");
    let bytes = std::fs::read(&encrypted).unwrap();
    let messages = assert_refused(
        OrderFields::valid().upload(Some(bytes)),
        400,
        "DOCUMENT_UPLOAD_ERROR",
    )
    .await;
    assert!(messages[0].contains("encrypted"), "{messages:?}");
}

#[tokio::test]
async fn a_truncated_pdf_is_refused_and_nothing_is_stored() {
    let pdf = classic_pdf(2);
    for keep in [pdf.len() / 2, pdf.len() - 40, 16] {
        assert_refused(
            OrderFields::valid().upload(Some(pdf[..keep].to_vec())),
            400,
            "DOCUMENT_UPLOAD_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn an_invalid_personal_number_is_refused_and_nothing_is_stored() {
    // A bad check digit; a date that does not exist (whatever the check digit); too short.
    for number in ["200001011908", "200002301234", "200002301235", "2000010119"] {
        let signer = person("EXTERNAL", number, None).to_string();
        let messages = assert_refused(
            OrderFields::valid().with("signers", signer),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
        assert!(messages[0].contains(number), "{messages:?}");
    }
}

#[tokio::test]
async fn a_due_date_in_the_past_or_malformed_is_refused_and_nothing_is_stored() {
    for due in [
        "2000-01-01T00:00:00",
        "24/12/2026",
        "2099-02-30T00:00:00",
        "tomorrow",
    ] {
        assert_refused(
            OrderFields::valid().with("dueDate", due),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn a_bad_link_type_is_refused_and_nothing_is_stored() {
    for link_type in ["2", "x", "-1", ""] {
        assert_refused(
            OrderFields::valid().with("linkType", link_type),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn an_unknown_option_is_refused_and_nothing_is_stored() {
    for option in [
        json!({"name": "colour", "value": 1}).to_string(),
        json!({"name": "notifyAllSigners", "value": "maybe"}).to_string(),
        "notifyAllSigners".to_owned(),
    ] {
        assert_refused(
            OrderFields::valid().with("option", option),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn json_that_is_not_a_person_is_refused_and_nothing_is_stored() {
    for not_a_person in [
        "[1,2]",
        r#"{"source":"ALIEN","identifier":"x"}"#,
        r#""hello""#,
        "hello",
        r#"{"source":"INTERNAL"}"#,
        r#"{"source":"INTERNAL","identifier":"jdoe","priorityGroup":0}"#,
        r#"{"source":"INTERNAL","identifier":"jdoe","attributes":[1]}"#,
    ] {
        assert_refused(
            OrderFields::valid().with("signers", not_a_person),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
        assert_refused(
            OrderFields::valid().with("solicitor", not_a_person),
            400,
            "REQUEST_VALIDATION_ERROR",
        )
        .await;
    }
}

#[tokio::test]
async fn an_internal_person_unknown_to_the_directory_is_refused_and_nothing_is_stored() {
    let nobody = person("INTERNAL", "sAMAccountName=nobody", None).to_string();
    let messages = assert_refused(
        OrderFields::valid().with("signers", nobody.clone()),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
    assert!(messages[0].contains("nobody"), "{messages:?}");
    assert_refused(
        OrderFields::valid().with("solicitor", nobody),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn a_body_that_is_not_multipart_is_unsupported_and_nothing_is_stored() {
    for app in apps().await {
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .json(&json!({"title": "Contract"}))
            .send()
            .await
            .unwrap();
        assert_error(response, 415, "ERROR_GENERIC").await;
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .send()
            .await
            .unwrap();
        assert_error(response, 415, "ERROR_GENERIC").await;
        assert_eq!(Stored::of(&app).await, Stored::nothing());
    }
}

#[tokio::test]
async fn an_upload_over_the_limit_is_too_large_and_nothing_is_stored() {
    for app in apps_with(|s| s.max_upload_bytes = 10_000).await {
        let big = classic_pdf_with_image(1, 50_000);
        let form = OrderFields::valid().upload(Some(big)).form();
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "DOCUMENT_UPLOAD_ERROR").await;
        assert_eq!(Stored::of(&app).await, Stored::nothing());
        // Just under the limit is fine.
        let (status, body) = app.post_order(OrderFields::valid().form()).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn a_text_field_over_its_limit_is_refused_and_nothing_is_stored() {
    assert_refused(
        OrderFields::valid().with("description", "x".repeat(200 * 1024)),
        400,
        "REQUEST_VALIDATION_ERROR",
    )
    .await;
}

#[tokio::test]
async fn a_malformed_multipart_body_is_a_client_error_and_nothing_is_stored() {
    let pdf = String::from_utf8_lossy(&classic_pdf(1)).into_owned();
    let bodies = [
        // Cut off inside a text field.
        "--XYZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nContr".to_owned(),
        // Cut off inside the upload.
        format!(
            "--XYZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nContract\r\n\
             --XYZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.pdf\"\r\n\r\n{}",
            &pdf[..pdf.len() / 2]
        ),
        // Cut off inside a part's headers.
        "--XYZ\r\nContent-Disposition: form-da".to_owned(),
    ];
    for app in apps().await {
        for body in &bodies {
            let response = app
                .client
                .post(app.automation_url("/orders"))
                .header("content-type", "multipart/form-data; boundary=XYZ")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_error(response, 400, "ERROR_GENERIC").await;
        }
        assert_eq!(Stored::of(&app).await, Stored::nothing());
    }
}

/// Sends `method` to an order path on the automation listener.
async fn call(app: &TestApp, method: reqwest::Method, path: &str) -> Response {
    let request = app.client.request(method.clone(), app.automation_url(path));
    let request = if method == reqwest::Method::PUT {
        request.json(&json!({"title": "New title"}))
    } else {
        request
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn an_unknown_order_or_an_id_that_is_not_a_guid_is_not_found() {
    use reqwest::Method;
    for app in apps().await {
        let random = uuid::Uuid::new_v4().to_string();
        for id in [random.as_str(), "not-a-guid", "1"] {
            for (method, path) in [
                (Method::GET, format!("/orders/{id}")),
                (Method::GET, format!("/orders/{id}/state")),
                (Method::GET, format!("/orders/{id}/document")),
                (Method::GET, format!("/orders/{id}/events")),
                (Method::DELETE, format!("/orders/{id}")),
                (Method::PUT, format!("/orders/{id}")),
                (Method::GET, format!("/api/document_signing/orders/{id}")),
            ] {
                let response = call(&app, method.clone(), &path).await;
                assert_eq!(response.status(), 404, "{method} {path}");
                assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
            }
            let response = app
                .client
                .put(app.automation_url(&format!("/orders/{id}/signers")))
                .json(&json!({"signers": [person("INTERNAL", "jdoe", None)]}))
                .send()
                .await
                .unwrap();
            assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
        }
        assert_eq!(Stored::of(&app).await, Stored::nothing());
    }
}

// --- Updates -----------------------------------------------------------------------------------

async fn put_order(app: &TestApp, id: &str, body: Value) -> Response {
    app.client
        .put(app.automation_url(&format!("/orders/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn put_signers(app: &TestApp, id: &str, body: Value) -> Response {
    app.client
        .put(app.automation_url(&format!("/orders/{id}/signers")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn put_document(app: &TestApp, id: &str, pdf: Vec<u8>) -> Response {
    let form = Form::new().part("upload", Part::bytes(pdf).file_name("v2.pdf"));
    app.client
        .put(app.automation_url(&format!("/orders/{id}")))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn ok_json(response: Response) -> Value {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn occurrences(events: &[String], name: &str) -> usize {
    events.iter().filter(|e| *e == name).count()
}

#[tokio::test]
async fn title_description_and_due_date_are_updated_with_their_events() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let order = ok_json(
            put_order(
                &app,
                &id,
                json!({"title": "Lease", "description": "Second draft", "dueDate": "2099-12-24T12:00:00"}),
            )
            .await,
        )
        .await;
        assert_eq!(order["title"], "Lease", "{order}");
        assert_eq!(order["description"], "Second draft");
        assert_eq!(order["dueDate"], "2099-12-24T12:00:00Z");
        assert_eq!(order["state"], "PENDING");
        assert_eq!(app.order(&id).await["title"], "Lease");
        let events = app.event_names(&id).await;
        assert_eq!(
            occurrences(&events, "ORDER_DESCRIPTION_UPDATED"),
            1,
            "{events:?}"
        );
        assert_eq!(
            occurrences(&events, "ORDER_DUE_DATE_UPDATED"),
            1,
            "{events:?}"
        );

        // The same as a URL-encoded form.
        let response = app
            .client
            .put(app.automation_url(&format!("/orders/{id}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("description=Third+draft%21")
            .send()
            .await
            .unwrap();
        assert_eq!(ok_json(response).await["description"], "Third draft!");
    }
}

#[tokio::test]
async fn a_bad_update_is_refused_and_changes_nothing() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        for body in [
            json!({"dueDate": "2000-01-01T00:00:00"}),
            json!({"dueDate": "24/12/2026"}),
            json!({"title": ""}),
            json!({"title": 7}),
            json!({"colour": "red"}),
            json!({"state": "PAUSED"}),
            json!(["title"]),
            json!({"title": "Fine", "dueDate": "2000-01-01T00:00:00"}),
        ] {
            let response = put_order(&app, &id, body.clone()).await;
            assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        }
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
    }
}

#[tokio::test]
async fn an_oversized_update_body_is_refused_and_changes_nothing() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let before = app.order(&id).await;
        let huge = "x".repeat(2 * 1024 * 1024);
        let response = put_order(&app, &id, json!({"description": huge})).await;
        assert_error(response, 413, "ERROR_GENERIC").await;
        let response = put_order(&app, &id, json!({"description": "x".repeat(100 * 1024)})).await;
        assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        assert_eq!(app.order(&id).await, before);
    }
}

#[tokio::test]
async fn a_cancelled_order_is_final_and_every_later_change_is_an_illegal_operation() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let order = ok_json(put_order(&app, &id, json!({"state": "CANCELLED"})).await).await;
        assert_eq!(order["state"], "CANCELLED", "{order}");
        assert!(order["signers"][0]["signingUrl"].is_null());
        assert_eq!(app.order_state(&id).await, "CANCELLED");
        assert_eq!(
            occurrences(&app.event_names(&id).await, "ORDER_CANCELED"),
            1
        );

        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        for body in [
            json!({"title": "Too late"}),
            json!({"description": "Too late"}),
            json!({"dueDate": "2099-01-01T00:00:00"}),
            json!({"state": "CANCELLED"}),
        ] {
            assert_error(
                put_order(&app, &id, body).await,
                400,
                "ILLEGAL_OPERATION_ERROR",
            )
            .await;
        }
        assert_error(
            put_document(&app, &id, classic_pdf(2)).await,
            400,
            "ILLEGAL_OPERATION_ERROR",
        )
        .await;
        assert_error(
            put_signers(
                &app,
                &id,
                json!({"signers": [person("INTERNAL", "cborgstrom", None)]}),
            )
            .await,
            400,
            "ILLEGAL_OPERATION_ERROR",
        )
        .await;
        assert!(app.sign_as(&id, 0).await.is_err());
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
    }
}

#[tokio::test]
async fn a_client_cannot_set_an_order_to_accepted() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        for state in ["ACCEPTED", "REJECTED", "EXPIRED", "PENDING"] {
            let response = put_order(&app, &id, json!({"state": state})).await;
            assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        }
        assert_eq!(app.order_state(&id).await, "PENDING");
        let events = app.event_names(&id).await;
        assert_eq!(occurrences(&events, "ORDER_ACCEPTED"), 0, "{events:?}");
    }
}

#[tokio::test]
async fn a_new_document_replaces_the_old_one_while_nobody_has_signed() {
    for app in apps().await {
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", None),
                person("INTERNAL", "cborgstrom", None),
            ])
            .await;
        let old = app.order(&id).await["document"].clone();
        let new_pdf = classic_pdf(3);
        let order = ok_json(put_document(&app, &id, new_pdf.clone()).await).await;
        assert_ne!(order["document"]["sha256"], old["sha256"], "{order}");
        assert_eq!(order["document"]["fileName"], "v2.pdf");
        assert_eq!(order["document"]["size"], new_pdf.len());
        assert_eq!(app.order_document(&id).await, new_pdf);
        assert_eq!(
            occurrences(&app.event_names(&id).await, "ORDER_DOCUMENT_UPDATED"),
            1
        );
        // The superseded version is gone from the blob store.
        assert_eq!(Stored::of(&app).await.order_blobs.len(), 1);

        // Once someone has signed, the document stays as it is.
        app.sign_as(&id, 0).await.unwrap();
        let signed = app.order(&id).await;
        let signed_bytes = app.order_document(&id).await;
        let stored = Stored::of(&app).await;
        let response = put_document(&app, &id, classic_pdf(1)).await;
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        assert_eq!(app.order(&id).await, signed);
        assert_eq!(app.order_document(&id).await, signed_bytes);
        assert_eq!(Stored::of(&app).await, stored);
        // And it is still signable.
        assert_eq!(app.sign_as(&id, 1).await.unwrap().as_str(), "ACCEPTED");
    }
}

#[tokio::test]
async fn a_replacement_document_that_is_not_a_pdf_is_refused_and_changes_nothing() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        let response = put_document(&app, &id, b"GIF89a not a pdf".to_vec()).await;
        assert_error(response, 400, "DOCUMENT_UPLOAD_ERROR").await;
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
    }
}

fn statuses(order: &Value) -> Vec<(String, String)> {
    order["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["identifier"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pair(identifier: &str, status: &str) -> (String, String) {
    (identifier.to_owned(), status.to_owned())
}

#[tokio::test]
async fn a_signer_is_added_and_a_pending_one_removed() {
    for app in apps().await {
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", None),
                person("EXTERNAL", "200001011907", Some(2)),
            ])
            .await;
        let jdoe = app.order(&id).await["signers"][0].clone();
        let order = ok_json(
            put_signers(
                &app,
                &id,
                json!({
                    "signers": [
                        person("INTERNAL", "jdoe", None),
                        person("INTERNAL", "sAMAccountName=cborgstrom", Some(2)),
                    ],
                    "option": [{"name": "notifiyAllSigners", "value": true}],
                }),
            )
            .await,
        )
        .await;
        assert_eq!(
            statuses(&order),
            [
                pair("jdoe", "PENDING"),
                pair("sAMAccountName=cborgstrom", "QUEUED")
            ],
            "{order}"
        );
        // The kept signer is the same task: same internal id, same link.
        assert_eq!(order["signers"][0]["internalId"], jdoe["internalId"]);
        assert_eq!(order["signers"][0]["signingUrl"], jdoe["signingUrl"]);
        assert_eq!(order["signers"][1]["firstName"], "Carl");
        // The option (in the reference's spelling too) is kept with the order.
        assert_eq!(
            order["options"],
            json!([{"name": "notifyAllSigners", "value": true}]),
            "{order}"
        );
        let events = app.event_names(&id).await;
        assert_eq!(
            occurrences(&events, "ORDER_SIGNERS_UPDATED"),
            1,
            "{events:?}"
        );

        // Removing the last open signer of group 1 opens group 2.
        let order = ok_json(
            put_signers(
                &app,
                &id,
                json!({"signers": [person("INTERNAL", "sAMAccountName=cborgstrom", Some(2))],
                       "option": {"name": "notifyAllSigners", "value": "false"}}),
            )
            .await,
        )
        .await;
        assert_eq!(
            statuses(&order),
            [pair("sAMAccountName=cborgstrom", "PENDING")]
        );
        assert_eq!(app.sign_as(&id, 0).await.unwrap().as_str(), "ACCEPTED");
    }
}

#[tokio::test]
async fn a_bad_signer_list_is_refused_and_changes_nothing() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        for body in [
            json!({"signers": []}),
            json!({"signers": [person("EXTERNAL", "200001011908", None)]}),
            json!({"signers": [person("INTERNAL", "nobody", None)]}),
            json!({"signers": [{"source": "ALIEN", "identifier": "x"}]}),
            json!({"signers": [person("INTERNAL", "jdoe", None)], "option": [{"name": "colour", "value": 1}]}),
            json!({"people": []}),
            json!("jdoe"),
        ] {
            let response = put_signers(&app, &id, body.clone()).await;
            assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        }
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
    }
}

#[tokio::test]
async fn a_signer_who_has_signed_cannot_be_removed() {
    for app in apps().await {
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", None),
                person("INTERNAL", "cborgstrom", None),
            ])
            .await;
        app.sign_as(&id, 0).await.unwrap();
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        let response = put_signers(
            &app,
            &id,
            json!({"signers": [person("INTERNAL", "cborgstrom", None)]}),
        )
        .await;
        let message = assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        assert!(message.contains("jdoe"), "{message}");
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
        // Kept, the signer who signed stays signed; the other one may go.
        let order = ok_json(
            put_signers(
                &app,
                &id,
                json!({"signers": [person("INTERNAL", "jdoe", None), person("EXTERNAL", "200001011907", None)]}),
            )
            .await,
        )
        .await;
        assert_eq!(
            statuses(&order),
            [pair("jdoe", "SIGNED"), pair("200001011907", "PENDING")]
        );
    }
}

#[tokio::test]
async fn a_new_signer_may_not_precede_the_group_signing_now() {
    for app in apps().await {
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", Some(1)),
                person("INTERNAL", "cborgstrom", Some(2)),
            ])
            .await;
        app.sign_as(&id, 0).await.unwrap();
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        let response = put_signers(
            &app,
            &id,
            json!({"signers": [
                person("INTERNAL", "jdoe", Some(1)),
                person("INTERNAL", "cborgstrom", Some(2)),
                person("EXTERNAL", "200001011907", Some(1)),
            ]}),
        )
        .await;
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
        // In the group signing now, or later, is fine.
        let order = ok_json(
            put_signers(
                &app,
                &id,
                json!({"signers": [
                    person("INTERNAL", "jdoe", Some(1)),
                    person("INTERNAL", "cborgstrom", Some(2)),
                    person("EXTERNAL", "200001011907", Some(3)),
                ]}),
            )
            .await,
        )
        .await;
        assert_eq!(
            statuses(&order),
            [
                pair("jdoe", "SIGNED"),
                pair("cborgstrom", "PENDING"),
                pair("200001011907", "QUEUED")
            ]
        );
    }
}

#[tokio::test]
async fn the_signers_of_a_finished_order_cannot_be_replaced() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        assert_eq!(app.sign_as(&id, 0).await.unwrap().as_str(), "ACCEPTED");
        let before = app.order(&id).await;
        let stored = Stored::of(&app).await;
        let response = put_signers(
            &app,
            &id,
            json!({"signers": [person("INTERNAL", "jdoe", None), person("INTERNAL", "cborgstrom", None)]}),
        )
        .await;
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        assert_eq!(app.order(&id).await, before);
        assert_eq!(Stored::of(&app).await, stored);
    }
}

#[tokio::test]
async fn a_range_of_the_document_is_the_same_bytes_as_the_start_of_the_whole() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let whole = app.order_document(&id).await;
        let response = app
            .client
            .get(app.automation_url(&format!("/orders/{id}/document")))
            .header("range", "bytes=0-99")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206);
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes 0-99/{}", whole.len()).as_str()
        );
        assert_eq!(response.bytes().await.unwrap(), whole[..100]);
    }
}

#[tokio::test]
async fn an_endless_text_field_is_refused_without_waiting_for_its_end() {
    // A description that keeps coming (16 MB, then nothing, never closed): the server must answer
    // once the field passes its limit instead of buffering whatever the client sends.
    let head = "--XYZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nContract\r\n\
                --XYZ\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n";
    for app in apps().await {
        use futures::StreamExt;
        let chunks = std::iter::once(head.as_bytes().to_vec())
            .chain(std::iter::repeat_n(vec![b'x'; 64 * 1024], 256))
            .map(Ok::<_, std::io::Error>);
        let body = futures::stream::iter(chunks).chain(futures::stream::pending());
        let request = app
            .client
            .post(app.automation_url("/orders"))
            .header("content-type", "multipart/form-data; boundary=XYZ")
            .body(reqwest::Body::wrap_stream(body))
            .send();
        let response = tokio::time::timeout(std::time::Duration::from_secs(20), request)
            .await
            .expect("the server waited for the end of an endless field")
            .unwrap();
        assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        assert_eq!(Stored::of(&app).await, Stored::nothing());
    }
}
