//! The OpenAPI documents of both listeners, judged by tools we did not write: valid OpenAPI 3.1
//! (`openapi-spec-validator`); the JSON Signet builds by hand matches its documented schema
//! exactly (`openapi-schema-validator`, with every object closed); Swagger UI served with a
//! strict policy; and `schemathesis` run against the running server from its own documents
//! (fixed seed, bounded in examples and wall-clock time): no 5xx, no status, content type or body
//! the document does not describe. Every failure schemathesis found while this was built is a
//! plain test below.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::helpers::{assert_error, spawn_app, start_with, TestApp};
use crate::openssl::{device_key, KeyKind};
use crate::orders::person;
use crate::support::{get_json, get_text, pdf_upload_form};

fn venv_tool(name: &str) -> PathBuf {
    signet_testkit::venv().join("bin").join(name)
}

/// Fetches `url` (an OpenAPI document) and keeps it in `dir` as `name`.
async fn save_document(app: &TestApp, url: &str, dir: &Path, name: &str) -> (PathBuf, Value) {
    let response = app.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = response.bytes().await.unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, serde_json::from_slice(&bytes).unwrap())
}

/// Asserts `body` matches the document's schema `schema` (`[]Name` for an array of Name).
async fn assert_matches(document: &Path, schema: &str, body: &Value) {
    let mut child = tokio::process::Command::new(venv_tool("python"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/match_schema.py"))
        .arg(document)
        .arg(schema)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(body.to_string().as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{schema} does not describe what was served:\n{}\n{body:#}",
        String::from_utf8_lossy(&output.stdout)
    );
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let actual = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(actual, status, "{body}");
    body
}

#[tokio::test]
async fn both_documents_are_valid_openapi_3_1() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    for (url, name) in [
        (app.url("/openapi.json"), "main.json"),
        (
            format!("{}/openapi.json", app.automation),
            "automation.json",
        ),
    ] {
        let (path, document) = save_document(&app, &url, dir.path(), name).await;
        assert_eq!(document["openapi"], "3.1.0");
        let output = std::process::Command::new(venv_tool("openapi-spec-validator"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[tokio::test]
async fn every_route_is_described_at_the_root_and_under_the_products_prefix() {
    let app = spawn_app().await;
    let main: Value = app.get("/openapi.json").await.json().await.unwrap();
    for path in [
        "/signers",
        "/signers/{signerId}",
        "/documents",
        "/documents/upload",
        "/documents/{documentId}",
        "/documents/{documentId}/signature",
        "/documents/{documentId}/file",
        "/ca/ca.pem",
        "/ca/ca.der",
        "/ca/crl.der",
        "/ca/tsa.pem",
        "/tsa",
        "/ca/ocsp",
        "/ca/ocsp/{request}",
    ] {
        assert!(main["paths"][path].is_object(), "{path}");
        assert!(
            main["paths"][format!("/api/cloudsigner{path}")].is_object(),
            "{path}"
        );
    }
    let automation = get_json(&app.client, &format!("{}/openapi.json", app.automation)).await;
    for path in [
        "/orders",
        "/orders/{orderId}",
        "/orders/{orderId}/state",
        "/orders/{orderId}/document",
        "/orders/{orderId}/signers",
        "/orders/{orderId}/events",
        "/orders/{orderId}/deliveries",
        "/anonymize",
    ] {
        assert!(automation["paths"][path].is_object(), "{path}");
        assert!(
            automation["paths"][format!("/api/document_signing{path}")].is_object(),
            "{path}"
        );
    }
    // The CloudSigner API's own routes need the API key; the CA's do not.
    assert_eq!(
        main["paths"]["/signers"]["post"]["security"],
        json!([{"apiKey": []}])
    );
    assert!(main["paths"]["/ca/crl.der"]["get"]["security"].is_null());
    // The operator's endpoints: health on both listeners, metrics on the main one.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(main["paths"][path]["get"].is_object(), "{path}");
    }
    for path in ["/healthz", "/readyz"] {
        assert!(automation["paths"][path]["get"].is_object(), "{path}");
    }
}

#[tokio::test]
async fn the_bodies_signet_builds_by_hand_match_their_documented_schemas_exactly() {
    // A webhook receiver that is never there: the order's messages stay in the delivery log.
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite:{}", data_dir.path().join("signet.db").display());
    let clock = std::sync::Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let app = start_with(data_dir, database_url, clock, |settings| {
        settings.webhooks.urls = vec!["http://127.0.0.1:9/never".into()];
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (main, _) = save_document(&app, &app.url("/openapi.json"), dir.path(), "main.json").await;
    let automation_url = format!("{}/openapi.json", app.automation);
    let (automation, _) = save_document(&app, &automation_url, dir.path(), "automation.json").await;

    // CloudSigner: a signer and its certificate, an upload, the error body.
    let device = device_key(KeyKind::P256, "openapi-device");
    app.enroll("openapi-device", &device.csr_pem).await;
    assert_matches(&main, "SignerDetails", &app.signer("openapi-device").await).await;
    let form = pdf_upload_form("openapi-device", 1);
    let response = app
        .client
        .post(app.url("/documents"))
        .bearer_auth(&app.api_key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_matches(&main, "UploadResponse", &json_of(response, 200).await).await;
    let missing = json_of(app.get("/signers/nobody").await, 404).await;
    assert_matches(&main, "ErrorBody", &missing).await;

    // Automation: an order half signed, its events and messages, a change, a cancellation, an
    // anonymization, the error body.
    let id = app
        .create_order(&[
            person("INTERNAL", "sAMAccountName=jdoe", None),
            person("EXTERNAL", "200001011907", Some(2)),
        ])
        .await;
    app.sign_as(&id, 0).await.unwrap();
    assert_matches(&automation, "Order", &app.order(&id).await).await;
    let url = |path: &str| format!("{}/orders/{id}{path}", app.automation);
    let events = json_of(app.client.get(url("/events")).send().await.unwrap(), 200).await;
    assert!(events.as_array().is_some_and(|e| e.len() >= 2), "{events}");
    assert_matches(&automation, "[]OrderEvent", &events).await;
    let deliveries = json_of(
        app.client.get(url("/deliveries")).send().await.unwrap(),
        200,
    )
    .await;
    assert!(!deliveries.as_array().unwrap().is_empty(), "{deliveries}");
    assert_matches(&automation, "[]Delivery", &deliveries).await;
    let changed = app
        .client
        .put(url(""))
        .json(&json!({"title": "Renamed", "description": null}))
        .send()
        .await
        .unwrap();
    assert_matches(&automation, "Order", &json_of(changed, 200).await).await;
    let cancelled = app
        .client
        .put(url(""))
        .json(&json!({"state": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    let cancelled = json_of(cancelled, 200).await;
    assert_matches(&automation, "Order", &cancelled).await;
    let internal_id = cancelled["signers"][1]["internalId"].clone();
    let anonymized = app
        .client
        .post(format!("{}/anonymize", app.automation))
        .json(&json!({ "internalId": internal_id }))
        .send()
        .await
        .unwrap();
    assert_matches(&automation, "Anonymized", &json_of(anonymized, 200).await).await;
    let unknown = app
        .client
        .get(format!(
            "{}/orders/00000000-0000-4000-8000-000000000000",
            app.automation
        ))
        .send()
        .await
        .unwrap();
    assert_matches(&automation, "ErrorBody", &json_of(unknown, 404).await).await;
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_on_both_listeners_under_a_strict_policy() {
    let app = spawn_app().await;
    for base in [app.address.clone(), app.automation.clone()] {
        let page = app.client.get(format!("{base}/docs")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        let html = page.text().await.unwrap();
        for file in ["swagger-ui.css", "swagger-ui-bundle.js", "start.js"] {
            assert!(html.contains(&format!("docs/{file}")), "{html}");
            let response = app
                .client
                .get(format!("{base}/docs/{file}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{file}");
            assert!(!response.bytes().await.unwrap().is_empty());
        }
        let start = get_text(&app.client, &format!("{base}/docs/start.js")).await;
        assert!(start.contains("\"openapi.json\""), "{start}");
        let missing = app
            .client
            .get(format!("{base}/docs/nothing.js"))
            .send()
            .await
            .unwrap();
        assert_error(missing, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    }
}

/// Runs schemathesis against `document_url` with the given extra headers and configuration
/// (`schemathesis.toml`: the ids of real resources, so requests reach past the 404); fails with
/// its report.
async fn schemathesis(document_url: &str, headers: &[String], config: &str) {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("schemathesis.toml"), config).unwrap();
    let support = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support");
    let mut command = tokio::process::Command::new(venv_tool("st"));
    command
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .env("PYTHONPATH", &support)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .args(["run", document_url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261207",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--suppress-health-check",
            "all",
            "--max-failures",
            "20",
        ])
        .arg("--max-examples")
        .arg(MAX_EXAMPLES.to_string());
    for header in headers {
        command.arg("-H").arg(header);
    }
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    let output = tokio::time::timeout(WALL_CLOCK_CAP, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!("schemathesis ran longer than {WALL_CLOCK_CAP:?} against {document_url}")
        })
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems in {document_url}:\n{report}"
    );
    // The summary (operations, phases, test cases) in the test's output.
    let summary: Vec<&str> = report.lines().rev().take(16).collect();
    eprintln!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}

/// Examples per operation and phase: about 3,500 requests over both documents (prefixes
/// included), a minute or so on two cores.
const MAX_EXAMPLES: u32 = 60;
/// A run that takes longer than this is a hang, not a slow machine.
const WALL_CLOCK_CAP: Duration = Duration::from_secs(120);

/// `schemathesis.toml` drawing half the values of each path parameter from its real ids.
fn real_ids(bindings: &[(&str, &[String])]) -> String {
    let mut dictionaries = String::new();
    let mut parameters = String::from("[parameters]\n");
    for (parameter, ids) in bindings {
        let values: Vec<String> = ids.iter().map(|id| format!("{id:?}")).collect();
        dictionaries.push_str(&format!(
            "[dictionaries.{parameter}]\nvalues = [{}]\n",
            values.join(", ")
        ));
        parameters.push_str(&format!(
            "\"path.{parameter}\" = {{ dictionary = \"{parameter}\", probability = 0.5 }}\n"
        ));
    }
    dictionaries + &parameters
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_in_either_api() {
    let app = spawn_app().await;
    // Real resources for half the generated ids: a signer with documents waiting, orders.
    let device = device_key(KeyKind::P256, "openapi-device");
    app.enroll("openapi-device", &device.csr_pem).await;
    let mut documents = Vec::new();
    for _ in 0..3 {
        let form = pdf_upload_form("openapi-device", 1);
        let response = app
            .client
            .post(app.url("/documents"))
            .bearer_auth(&app.api_key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let body = json_of(response, 200).await;
        documents.push(body["documentId"].as_str().unwrap().to_owned());
    }
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(
            app.create_order(&[person("INTERNAL", "sAMAccountName=jdoe", None)])
                .await,
        );
    }
    let signers = ["openapi-device".to_owned()];
    let main_config = real_ids(&[("documentId", &documents), ("signerId", &signers)]);
    let key = format!("Authorization: Bearer {}", app.api_key);
    schemathesis(&app.url("/openapi.json"), &[key], &main_config).await;
    schemathesis(
        &format!("{}/openapi.json", app.automation),
        &[],
        &real_ids(&[("orderId", &orders)]),
    )
    .await;
}

#[tokio::test]
async fn swagger_ui_renders_each_listeners_document_in_a_real_browser_under_its_policy() {
    let Some(browser) = crate::pages_browser::Browser::start("en").await else {
        return;
    };
    let app = spawn_app().await;
    // Scripts refused by the policy would leave the page empty: the title and an operation
    // appear only when Swagger UI ran and read the document.
    browser.open(&app.url("/docs")).await;
    browser
        .wait_for_text("Signet: CloudSigner API, CA, timestamp authority, OCSP")
        .await;
    browser
        .wait_for_text("/documents/{documentId}/signature")
        .await;
    browser.open(&format!("{}/docs", app.automation)).await;
    browser.wait_for_text("Signet: Automation API").await;
    browser.wait_for_text("/orders/{orderId}/signers").await;
    browser.quit().await;
}

/// Found while describing `GET /ca/ocsp/{request}`: its path was read with axum's own extractor,
/// whose refusal of a path that is not UTF-8 once percent-decoded is plain text, not the error
/// body the document promises.
#[tokio::test]
async fn a_path_that_is_not_utf8_gets_the_error_body_on_the_ocsp_and_docs_routes() {
    let app = spawn_app().await;
    for path in [
        "/ca/ocsp/%FF%FE",
        "/api/cloudsigner/ca/ocsp/%FF",
        "/docs/%FF",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    }
    let response = app
        .client
        .get(format!("{}/docs/%FF", app.automation))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
}

/// Every operation whose document says it takes JSON also says it answers 413 with the error
/// body, and does: a body one byte over `max_json_bytes` gets exactly that, on both listeners.
#[tokio::test]
async fn every_json_body_over_the_limit_gets_the_413_its_document_describes() {
    const LIMIT: usize = 16 * 1024;
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite:{}", data_dir.path().join("signet.db").display());
    let clock = std::sync::Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let app = start_with(data_dir, database_url, clock, |settings| {
        settings.max_json_bytes = LIMIT;
    })
    .await;
    let filler = "a".repeat(LIMIT);
    let body = json!({ "signerId": filler }).to_string();
    assert!(body.len() > LIMIT);
    let mut checked = 0;
    for base in [app.address.clone(), app.automation.clone()] {
        let document: Value = app
            .client
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if operation["requestBody"]["content"]["application/json"].is_null() {
                    continue;
                }
                assert_eq!(
                    operation["responses"]["413"]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
                // Any well-formed id: the body is refused before anything is looked up.
                let concrete = path
                    .replace("{orderId}", "00000000-0000-4000-8000-000000000000")
                    .replace("{signerId}", "someone")
                    .replace("{documentId}", "00000000-0000-4000-8000-000000000000");
                let request = app
                    .client
                    .request(
                        method.to_uppercase().parse().unwrap(),
                        format!("{base}{concrete}"),
                    )
                    .bearer_auth(&app.api_key)
                    .header("content-type", "application/json")
                    .body(body.clone());
                let response = request.send().await.unwrap();
                assert_eq!(response.status(), 413, "{method} {path}");
                assert_error(response, 413, "ERROR_GENERIC").await;
                checked += 1;
            }
        }
    }
    // Signers (2) and documents (2), orders (2) and anonymize (1), each at the root and prefixed.
    assert_eq!(checked, 14);
}
