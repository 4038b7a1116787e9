//! The framework's own rejections speak the CloudSigner error body too: nothing plain-text leaks.

use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn malformed_json_is_a_generic_error() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/signers"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body("{\"signerId\": ")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "ERROR_GENERIC").await;
}

#[tokio::test]
async fn a_wrong_content_type_is_refused_with_the_error_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/signers"))
        .bearer_auth(&app.api_key)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "ERROR_GENERIC").await;
}

#[tokio::test]
async fn unknown_paths_are_not_found_with_the_error_body() {
    let app = spawn_app().await;
    assert_error(app.get("/nowhere").await, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    let unauthenticated = app.client.get(app.url("/nowhere")).send().await.unwrap();
    assert_error(unauthenticated, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

#[tokio::test]
async fn a_wrong_method_is_refused_with_the_error_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(app.url("/signers"))
        .bearer_auth(&app.api_key)
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "ERROR_GENERIC").await;
    let response = app.client.post(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_error(response, 405, "ERROR_GENERIC").await;
}

#[tokio::test]
async fn an_oversized_json_body_is_refused_with_413_and_the_error_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/signers"))
        .bearer_auth(&app.api_key)
        .header("content-type", "application/json")
        .body(format!("{{\"csr\": \"{}\"}}", "x".repeat(600 * 1024)))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "ERROR_GENERIC").await;
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let app = spawn_app().await;
    let with_authorization = |value: String| {
        app.client
            .get(app.url("/signers/nobody"))
            .header("authorization", value)
            .send()
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let response = with_authorization(format!("{scheme} {}", app.api_key))
            .await
            .unwrap();
        assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
    }
    let response = with_authorization(format!("Basic {}", app.api_key))
        .await
        .unwrap();
    assert_error(response, 401, "ERROR_UNAUTHORIZED").await;
}
