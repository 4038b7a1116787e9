//! The Automation API's signing orders, end to end: created with the source's own curl command,
//! read, signed through `sign_order_as` by three signers in two priority groups (judged by pyHanko
//! and pdfsig), rejected, expired by the job and across a restart, on SQLite and PostgreSQL.

use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};
use signet::domain::OrderId;
use signet_testkit::pdfs::classic_pdf;
use time::Duration;

use crate::helpers::{assert_error, spawn_app_on, start, Db, NowForTests, TestApp};

/// A person JSON for the order form.
pub fn person(source: &str, identifier: &str, group: Option<u16>) -> Value {
    let mut person = json!({"source": source, "identifier": identifier, "attributes": {}});
    if let Some(group) = group {
        person["priorityGroup"] = json!(group);
    }
    person
}

/// A valid order form: a one-page PDF, solicitor cborgstrom, the given signers.
pub fn order_form(signers: &[Value]) -> Form {
    order_form_by(
        &person("INTERNAL", "sAMAccountName=cborgstrom", None),
        signers,
    )
}

/// A valid order form from `solicitor`.
pub fn order_form_by(solicitor: &Value, signers: &[Value]) -> Form {
    let mut form = Form::new()
        .text("title", "Contract")
        .text("description", "Please sign")
        .part(
            "upload",
            Part::bytes(classic_pdf(1)).file_name("contract.pdf"),
        )
        .text("solicitor", solicitor.to_string());
    for signer in signers {
        form = form.text("signers", signer.to_string());
    }
    form
}

impl TestApp {
    pub fn automation_url(&self, path: &str) -> String {
        format!("{}{path}", self.automation)
    }

    /// Posts an order form; returns status and body text.
    pub async fn post_order(&self, form: Form) -> (u16, String) {
        let response = self
            .client
            .post(self.automation_url("/orders"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Creates an order and returns its id.
    pub async fn create_order(&self, signers: &[Value]) -> String {
        let (status, body) = self.post_order(order_form(signers)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn order(&self, id: &str) -> Value {
        let response = self
            .client
            .get(self.automation_url(&format!("/orders/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn order_state(&self, id: &str) -> String {
        let response = self
            .client
            .get(self.automation_url(&format!("/orders/{id}/state")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn order_document(&self, id: &str) -> Vec<u8> {
        let response = self
            .client
            .get(self.automation_url(&format!("/orders/{id}/document")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }

    /// Signs as the order's `index`-th signer through the domain operation.
    pub async fn sign_as(
        &self,
        id: &str,
        index: usize,
    ) -> Result<signet::domain::OrderState, String> {
        let order = self.order(id).await;
        let internal_id = order["signers"][index]["internalId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.state
            .orders
            .sign_as(OrderId::parse(id).unwrap(), &internal_id)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn event_names(&self, id: &str) -> Vec<String> {
        let events = self
            .state
            .store
            .order_events(&OrderId::parse(id).unwrap())
            .await
            .unwrap();
        events.into_iter().map(|e| e.event).collect()
    }
}

fn write_temp(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn the_sources_curl_command_creates_an_order_with_directory_and_request_attributes() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let pdf = write_temp(app.data_dir.path(), "signthisplease.pdf", &classic_pdf(1));
        let due = (app.clock.now_for_tests() + Duration::days(30))
            .format(&time::macros::format_description!(
                "[year]-[month]-[day]T00:00:00"
            ))
            .unwrap();
        // The source's command, verbatim but for the host, the PDF path and the due date.
        let script = format!(
            r#"curl --silent --show-error --location --request POST '{host}/api/document_signing/orders' \
-F 'title="A new signing order"' \
-F 'description="This order was automatically generated"' \
-F 'upload=@"{pdf}"' \
-F 'dueDate="{due}"' \
-F 'solicitor="{{\"source\":\"INTERNAL\",\"identifier\":\"sAMAccountName=cborgstrom\",\"attributes\":{{}}}}"' \
-F 'signers="{{\"source\":\"INTERNAL\",\"identifier\":\"sAMAccountName=cborgstrom\",\"attributes\":{{}}}}"' \
-F 'signers="{{\"source\":\"EXTERNAL\",\"identifier\":\"198603052385\",\"attributes\":{{\"mail\":{{\"value\":\"[email protected]\"}},\"mobile\":{{\"value\":\"+46700000000\"}}}}}}"'"#,
            host = app.automation,
            pdf = pdf.display(),
        );
        // tokio's Command: the server runs on this test's single-threaded runtime.
        let output = tokio::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .await
            .unwrap();
        let id = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{id} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(OrderId::parse(&id).is_ok(), "not a GUID: {id:?}");

        let order = app.order(&id).await;
        assert_eq!(order["title"], "A new signing order", "{order}");
        assert_eq!(
            order["description"],
            "This order was automatically generated"
        );
        assert_eq!(order["state"], "PENDING");
        assert_eq!(order["dueDate"], format!("{due}Z"));
        // INTERNAL: everything from the directory.
        let internal = &order["signers"][0];
        assert_eq!(internal["source"], "INTERNAL");
        assert_eq!(internal["firstName"], "Carl");
        assert_eq!(internal["lastName"], "Borgström");
        assert_eq!(internal["mail"], "carl.borgstrom@example.org");
        assert_eq!(internal["status"], "PENDING");
        assert_eq!(order["solicitor"]["internalId"], internal["internalId"]);
        // EXTERNAL, unknown to the register: the request's attributes.
        let external = &order["signers"][1];
        assert_eq!(external["identifier"], "198603052385");
        assert_eq!(external["mail"], "[email protected]");
        assert_eq!(external["mobile"], "+46700000000");
        assert!(external["signingUrl"].as_str().unwrap().contains("/sign/"));
        assert_eq!(order["document"]["fileName"], "signthisplease.pdf");
        assert_eq!(order["document"]["signatures"], 0);

        assert_eq!(app.order_state(&id).await, "PENDING");
        // Both path prefixes serve the same order.
        let prefixed = app
            .client
            .get(app.automation_url(&format!("/api/document_signing/orders/{id}/state")))
            .send()
            .await
            .unwrap();
        assert_eq!(prefixed.text().await.unwrap(), "PENDING");
        let events = app.event_names(&id).await;
        for expected in ["LOGIN_CREATED", "ORDER_CREATED", "DOCUMENT_CREATED"] {
            assert!(events.iter().any(|e| e == expected), "{events:?}");
        }
    }
}

#[tokio::test]
async fn request_attributes_only_fill_what_the_directory_lacks() {
    let app = crate::helpers::spawn_app().await;
    let mut known = person("EXTERNAL", "20000101-1907", None);
    known["attributes"] =
        json!({"mail": {"value": "other@example.net"}, "mobile": {"value": "+4670999"}});
    let id = app.create_order(&[known]).await;
    let signer = &app.order(&id).await["signers"][0];
    assert_eq!(signer["identifier"], "200001011907");
    assert_eq!(signer["firstName"], "Elsa");
    assert_eq!(
        signer["mail"], "elsa@example.net",
        "the register's mail wins"
    );
    assert_eq!(signer["mobile"], "+4670999", "the register has no mobile");
}

#[tokio::test]
async fn three_signers_in_two_groups_sign_in_turn_and_the_document_carries_three_valid_signatures()
{
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "sAMAccountName=cborgstrom", Some(1)),
                person("EXTERNAL", "200001011907", Some(2)),
                person("INTERNAL", "jdoe", Some(1)),
            ])
            .await;
        let order = app.order(&id).await;
        let statuses: Vec<_> = order["signers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["status"].clone())
            .collect();
        assert_eq!(statuses, ["PENDING", "QUEUED", "PENDING"]);

        // The second group waits for the first.
        let early = app.sign_as(&id, 1).await.unwrap_err();
        assert!(early.contains("priority group"), "{early}");
        assert_eq!(app.sign_as(&id, 0).await.unwrap().as_str(), "PENDING");
        assert_eq!(app.order(&id).await["signers"][1]["status"], "QUEUED");
        assert_eq!(app.sign_as(&id, 2).await.unwrap().as_str(), "PENDING");
        assert_eq!(app.order(&id).await["signers"][1]["status"], "PENDING");
        assert!(app
            .sign_as(&id, 0)
            .await
            .unwrap_err()
            .contains("already signed"));
        assert_eq!(app.sign_as(&id, 1).await.unwrap().as_str(), "ACCEPTED");
        assert_eq!(app.order_state(&id).await, "ACCEPTED");

        let order = app.order(&id).await;
        assert_eq!(order["document"]["signatures"], 3);
        assert!(order["signers"][1]["actionTimestamp"].is_string());
        let signed = app.order_document(&id).await;
        let dir = app.data_dir.path();
        let path = write_temp(dir, "signed.pdf", &signed);
        let ca = write_temp(
            dir,
            "ca.pem",
            app.state.pki.ca().certificate_pem().as_bytes(),
        );
        signet_testkit::assert_valid_everywhere(&path, &ca, 3);

        let events = app.event_names(&id).await;
        assert_eq!(
            events.iter().filter(|e| *e == "ORDER_SIGNED").count(),
            3,
            "{events:?}"
        );
        assert_eq!(
            events.iter().filter(|e| *e == "ORDER_ACCEPTED").count(),
            1,
            "{events:?}"
        );
        // Finished orders take no more changes.
        let response = app
            .client
            .put(app.automation_url(&format!("/orders/{id}")))
            .json(&json!({"title": "Too late"}))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
    }
}

#[tokio::test]
async fn concurrent_signers_of_one_order_lose_no_signature() {
    let app = crate::helpers::spawn_app().await;
    let id = app
        .create_order(&[
            person("INTERNAL", "cborgstrom", None),
            person("INTERNAL", "jdoe", None),
            person("EXTERNAL", "200001011907", None),
        ])
        .await;
    let (a, b, c) = tokio::join!(
        app.sign_as(&id, 0),
        app.sign_as(&id, 1),
        app.sign_as(&id, 2)
    );
    for result in [a, b, c] {
        result.unwrap();
    }
    assert_eq!(app.order_state(&id).await, "ACCEPTED");
    let path = write_temp(
        app.data_dir.path(),
        "signed.pdf",
        &app.order_document(&id).await,
    );
    signet_testkit::assert_pdfsig_accepts(&path, 3);
}

#[tokio::test]
async fn a_rejection_ends_the_order_and_nobody_signs_after_it() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "cborgstrom", None),
                person("INTERNAL", "jdoe", None),
            ])
            .await;
        let order = app.order(&id).await;
        let jdoe = order["signers"][1]["internalId"]
            .as_str()
            .unwrap()
            .to_owned();
        let state = app
            .state
            .orders
            .reject_as(OrderId::parse(&id).unwrap(), &jdoe, Some("wrong amount"))
            .await
            .unwrap();
        assert_eq!(state.as_str(), "REJECTED");
        assert_eq!(app.order_state(&id).await, "REJECTED");
        let order = app.order(&id).await;
        assert_eq!(order["signers"][1]["status"], "REJECTED");
        assert_eq!(order["signers"][1]["rejectReason"], "wrong amount");
        assert!(
            order["signers"][0]["signingUrl"].is_null(),
            "links die with the order"
        );
        let refused = app.sign_as(&id, 0).await.unwrap_err();
        assert!(refused.contains("REJECTED"), "{refused}");
        assert!(app
            .event_names(&id)
            .await
            .contains(&"ORDER_REJECTED".to_owned()));
    }
}

#[tokio::test]
async fn an_order_past_its_due_date_expires_once_and_also_across_a_restart() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let id = app
            .create_order(&[person("INTERNAL", "cborgstrom", None)])
            .await;
        app.clock.advance(Duration::days(29));
        app.runner.run_once().await.unwrap();
        assert_eq!(app.order_state(&id).await, "PENDING");
        app.clock.advance(Duration::days(2));
        let report = app.runner.run_once().await.unwrap();
        assert_eq!(report.orders_expired, 1);
        assert_eq!(
            app.runner.run_once().await.unwrap().orders_expired,
            0,
            "idempotent"
        );
        assert_eq!(app.order_state(&id).await, "EXPIRED");
        assert!(app.sign_as(&id, 0).await.is_err());

        // Across a restart: the server is down when the due date passes.
        let second = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let (data_dir, database_url, clock) = app.stop().await;
        clock.advance(Duration::days(31));
        let app = start(data_dir, database_url, clock).await;
        assert_eq!(app.order_state(&second).await, "EXPIRED");
        let events = app.event_names(&second).await;
        assert_eq!(
            events.iter().filter(|e| *e == "ORDER_EXPIRED").count(),
            1,
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn a_deleted_order_is_gone_but_its_events_stay() {
    let app = crate::helpers::spawn_app().await;
    let id = app
        .create_order(&[person("INTERNAL", "cborgstrom", None)])
        .await;
    let response = app
        .client
        .delete(app.automation_url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = app
        .client
        .get(app.automation_url(&format!("/orders/{id}")))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    let events = app.event_names(&id).await;
    assert!(events.contains(&"ORDER_DELETED".to_owned()), "{events:?}");
    assert!(!app
        .data_dir
        .path()
        .join(format!("blobs/orders/{id}"))
        .exists());
}

/// Two Signet processes share one database: their expiry passes race over the same due orders,
/// and each order must expire exactly once (one ORDER_EXPIRED event each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_job_runners_expire_each_due_order_exactly_once() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let mut ids = Vec::new();
        for _ in 0..30 {
            ids.push(app.create_order(&[person("INTERNAL", "jdoe", None)]).await);
        }
        app.clock.advance(Duration::days(31));
        let second = signet::jobs::JobRunner {
            store: signet::store::connect(&app.database_url).await.unwrap(),
            pki: app.runner.pki.clone(),
            clock: app.runner.clock.clone(),
            blobs: app.runner.blobs.clone(),
            archive: app.runner.archive.clone(),
        };
        let first = app.runner.clone();
        let (a, b) = tokio::join!(
            tokio::spawn(async move { first.expire_orders().await.unwrap() }),
            tokio::spawn(async move { second.expire_orders().await.unwrap() }),
        );
        assert_eq!(a.unwrap() + b.unwrap(), ids.len());
        let expired = app.state.store.events_named("ORDER_EXPIRED").await.unwrap();
        assert_eq!(expired.len(), ids.len());
        for id in &ids {
            assert_eq!(app.order_state(id).await, "EXPIRED");
        }
    }
}

/// Two Signet processes (each with its own store connection and its own in-process locks) sign
/// one order at once: the revision compare-and-set makes the loser sign again on the winner's
/// revision, so no signature is lost and every one stays valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signers_on_two_processes_lose_no_signature() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let id = app
            .create_order(&[
                person("INTERNAL", "cborgstrom", None),
                person("INTERNAL", "jdoe", None),
                person("EXTERNAL", "200001011907", None),
                person("EXTERNAL", "198603052385", None),
            ])
            .await;
        let order = app.order(&id).await;
        let internal = |i: usize| {
            order["signers"][i]["internalId"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        // A second process: its own database connections and its own in-process locks, over
        // the same database, files and link key.
        let state = &app.state;
        let other_store = signet::store::connect(&app.database_url).await.unwrap();
        let other_orders = std::sync::Arc::new(signet::services::orders::OrderService::new(
            other_store,
            state.blobs.clone(),
            state.pki.clone(),
            state.clock.clone(),
            state.directory.clone(),
            signet::services::signing_links::LinkKey::load_or_create(app.data_dir.path()).unwrap(),
            state.public_url.clone(),
        ));
        let order_id = OrderId::parse(&id).unwrap();
        let tasks = (0..4).map(|i| {
            let orders = if i % 2 == 0 {
                state.orders.clone()
            } else {
                other_orders.clone()
            };
            let signer = internal(i);
            tokio::spawn(async move { orders.sign_as(order_id, &signer).await })
        });
        for result in futures::future::join_all(tasks).await {
            result.unwrap().unwrap();
        }
        assert_eq!(app.order_state(&id).await, "ACCEPTED");
        assert_eq!(app.order(&id).await["document"]["signatures"], 4);
        let path = write_temp(
            app.data_dir.path(),
            "signed.pdf",
            &app.order_document(&id).await,
        );
        signet_testkit::assert_pdfsig_accepts(&path, 4);
    }
}
