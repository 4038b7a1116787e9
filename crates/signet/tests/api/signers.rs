//! `/signers`: enrollment with CSRs made by the real openssl, refusals, the status machine, auth.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, TestApp};
use crate::openssl::{self, device_key, KeyKind};

async fn ca_pem(app: &TestApp) -> String {
    let response = app.client.get(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn enrolling_p256_p384_and_rsa2048_issues_certificates_that_openssl_verifies() {
    let app = spawn_app().await;
    let ca = ca_pem(&app).await;
    for (signer_id, kind, curve_text) in [
        ("device-p256", KeyKind::P256, "P-256"),
        ("device-p384", KeyKind::P384, "P-384"),
        ("device-rsa", KeyKind::Rsa(2048), "2048 bit"),
    ] {
        let device = device_key(kind, signer_id);
        app.enroll(signer_id, &device.csr_pem).await;

        let details = app.signer(signer_id).await;
        assert_eq!(details["signerId"], signer_id);
        assert_eq!(details["userId"], "user-1");
        assert_eq!(details["signerStatus"], "ACTIVE");
        let pem = details["certificate"]["pem"].as_str().unwrap();
        openssl::verify_certificate(&ca, pem).unwrap();

        let text = openssl::certificate_text(pem);
        assert!(
            text.contains("Digital Signature, Non Repudiation"),
            "{text}"
        );
        assert!(text.contains("E-mail Protection"), "{text}");
        assert!(
            text.contains(&format!("{}/ca/crl.der", app.address)),
            "{text}"
        );
        assert!(
            text.contains(&format!("CN = {signer_id}"))
                || text.contains(&format!("CN={signer_id}")),
            "{text}"
        );
        assert!(text.contains(curve_text), "{signer_id}: {text}");
        let serial = details["certificate"]["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), 32, "128-bit serial in hex: {serial}");
    }
}

#[tokio::test]
async fn a_base64_der_csr_is_accepted_like_pem() {
    let app = spawn_app().await;
    let device = device_key(KeyKind::P256, "der-device");
    let body: String = device
        .csr_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    app.enroll("der-device", &body).await;
}

#[tokio::test]
async fn external_signer_id_is_an_alias_of_signer_id() {
    let app = spawn_app().await;
    let device = device_key(KeyKind::P256, "alias");
    let response = app
        .post_json(
            "/signers",
            &json!({"externalSignerId": "alias", "userId": "u", "csr": device.csr_pem}),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.signer("alias").await["signerStatus"], "ACTIVE");
}

#[tokio::test]
async fn re_enrolling_an_active_signer_replaces_its_certificate_and_keeps_history() {
    let app = spawn_app().await;
    let first = device_key(KeyKind::P256, "phone");
    app.enroll("phone", &first.csr_pem).await;
    let before = app.signer("phone").await;

    let second = device_key(KeyKind::P256, "phone");
    app.enroll("phone", &second.csr_pem).await;
    let after = app.signer("phone").await;

    assert_ne!(
        before["certificate"]["serialNumber"],
        after["certificate"]["serialNumber"]
    );
    assert_eq!(app.certificate_count("phone").await, 2);
    let history = after["certificate"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0]["revoked"], true,
        "the replaced certificate is revoked as superseded"
    );
}

async fn assert_nothing_stored(app: &TestApp, signer_id: &str) {
    let response = app.get(&format!("/signers/{signer_id}")).await;
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

async fn enroll_raw(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/signers", &body).await
}

/// A refused enrollment that is a business outcome: 200 with result FAIL and a reason.
async fn assert_fail_result(response: reqwest::Response, reason_contains: &str) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"], "FAIL", "{body}");
    let reason = body["resultReason"].as_str().unwrap();
    assert!(
        reason
            .to_lowercase()
            .contains(&reason_contains.to_lowercase()),
        "{reason}"
    );
}

#[tokio::test]
async fn weak_and_unsupported_keys_are_refused_with_a_reason_and_nothing_is_stored() {
    let app = spawn_app().await;
    for (signer_id, kind, reason) in [
        ("rsa1024", KeyKind::Rsa(1024), "2048"),
        ("ed25519", KeyKind::Ed25519, "Ed25519"),
        ("dsa", KeyKind::Dsa, "DSA"),
    ] {
        let device = device_key(kind, signer_id);
        let response = enroll_raw(
            &app,
            json!({"signerId": signer_id, "userId": "u", "csr": device.csr_pem}),
        )
        .await;
        assert_fail_result(response, reason).await;
        assert_nothing_stored(&app, signer_id).await;
    }
}

#[tokio::test]
async fn a_csr_whose_signature_does_not_match_its_key_is_refused() {
    let app = spawn_app().await;
    let device = device_key(KeyKind::P256, "forged");
    let body: String = device
        .csr_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let mut der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    // The signature BIT STRING is the CSR's tail: flipping its last byte breaks proof of possession.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let forged = base64::engine::general_purpose::STANDARD.encode(der);
    let response = enroll_raw(
        &app,
        json!({"signerId": "forged", "userId": "u", "csr": forged}),
    )
    .await;
    assert_error(response, 400, "CSR_INVALID_SIGNATURE_ERROR").await;
    assert_nothing_stored(&app, "forged").await;
}

#[tokio::test]
async fn malformed_csrs_are_refused_with_their_code_and_nothing_is_stored() {
    let app = spawn_app().await;
    let ca_certificate = ca_pem(&app).await;
    let random = base64::engine::general_purpose::STANDARD.encode(
        (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect::<Vec<_>>(),
    );
    for (signer_id, csr) in [
        ("certificate-instead", ca_certificate.as_str()),
        ("random-base64", random.as_str()),
        ("garbage", "this is not a CSR"),
    ] {
        let response = enroll_raw(
            &app,
            json!({"signerId": signer_id, "userId": "u", "csr": csr}),
        )
        .await;
        assert_error(response, 400, "CSR_INVALID_SIGNATURE_ERROR").await;
        assert_nothing_stored(&app, signer_id).await;
    }
}

#[tokio::test]
async fn missing_empty_and_mistyped_fields_are_validation_errors() {
    let app = spawn_app().await;
    let device = device_key(KeyKind::P256, "x");
    let csr = device.csr_pem.as_str();
    for (body, field) in [
        (json!({"userId": "u", "csr": csr}), "signerId"),
        (json!({"signerId": "x", "csr": csr}), "userId"),
        (json!({"signerId": "x", "userId": "u"}), "csr"),
        (json!({"signerId": "x", "userId": "u", "csr": ""}), "csr"),
        (json!({"signerId": "x", "userId": "u", "csr": 42}), "csr"),
        (
            json!({"signerId": ["x"], "userId": "u", "csr": csr}),
            "signerId",
        ),
        (
            json!({"signerId": "a/b", "userId": "u", "csr": csr}),
            "signerId",
        ),
    ] {
        let response = enroll_raw(&app, body.clone()).await;
        let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        assert!(message.contains(field), "{body}: {message}");
    }
    assert_nothing_stored(&app, "x").await;
}

#[tokio::test]
async fn a_megabyte_of_text_as_csr_is_refused_without_storing_anything() {
    let app = spawn_app().await;
    let huge = "A".repeat(1024 * 1024);
    let response = enroll_raw(
        &app,
        json!({"signerId": "huge", "userId": "u", "csr": huge}),
    )
    .await;
    assert_error(response, 413, "ERROR_GENERIC").await;
    assert_nothing_stored(&app, "huge").await;
}

/// Drives a fresh signer into `status` (EXPIRED by moving the clock past its certificate).
async fn signer_in(app: &TestApp, signer_id: &str, status: &str) {
    let device = device_key(KeyKind::P256, signer_id);
    app.enroll(signer_id, &device.csr_pem).await;
    match status {
        "ACTIVE" => {}
        "EXPIRED" => {
            // Block it first so the renewal job leaves it alone and it runs out.
            assert_eq!(app.set_status(signer_id, "BLOCKED").await.0, 200);
            app.clock.advance(time::Duration::days(400));
            app.runner.run_once().await.unwrap();
            app.clock.advance(-time::Duration::days(400));
        }
        other => assert_eq!(app.set_status(signer_id, other).await.0, 200),
    }
    assert_eq!(app.signer(signer_id).await["signerStatus"], status);
}

#[tokio::test]
async fn every_status_pair_follows_the_documented_state_machine() {
    let app = spawn_app().await;
    let statuses = ["ACTIVE", "BLOCKED", "REMOVED", "REVOKED", "EXPIRED"];
    let legal = |from: &str, to: &str| {
        from == to
            || matches!(
                (from, to),
                ("ACTIVE", "BLOCKED")
                    | ("BLOCKED", "ACTIVE")
                    | ("ACTIVE" | "BLOCKED", "REMOVED" | "REVOKED")
            )
    };
    for from in statuses {
        for to in statuses {
            let signer_id = format!("{}-to-{}", from.to_lowercase(), to.to_lowercase());
            signer_in(&app, &signer_id, from).await;
            let (status, body) = app.set_status(&signer_id, to).await;
            if legal(from, to) {
                assert_eq!(
                    (status, &body),
                    (200, &json!({"result": "OK", "resultReason": null})),
                    "{from} -> {to}"
                );
                assert_eq!(app.signer(&signer_id).await["signerStatus"], to);
            } else {
                assert_eq!(status, 400, "{from} -> {to}: {body}");
                assert_eq!(body["responseObject"]["code"], "ILLEGAL_OPERATION_ERROR");
                let message = body["responseObject"]["message"].as_str().unwrap();
                assert!(message.contains(from) && message.contains(to), "{message}");
                assert_eq!(
                    app.signer(&signer_id).await["signerStatus"],
                    from,
                    "unchanged"
                );
            }
        }
    }
}

#[tokio::test]
async fn terminal_signers_cannot_be_re_enrolled() {
    let app = spawn_app().await;
    for status in ["REVOKED", "REMOVED", "EXPIRED"] {
        let signer_id = format!("terminal-{}", status.to_lowercase());
        signer_in(&app, &signer_id, status).await;
        let certificates_before = app.certificate_count(&signer_id).await;
        let device = device_key(KeyKind::P256, &signer_id);
        let response = enroll_raw(
            &app,
            json!({"signerId": signer_id, "userId": "u", "csr": device.csr_pem}),
        )
        .await;
        assert_fail_result(response, status).await;
        assert_eq!(app.signer(&signer_id).await["signerStatus"], status);
        assert_eq!(app.certificate_count(&signer_id).await, certificates_before);
    }
}

#[tokio::test]
async fn status_requests_with_unknown_values_are_validation_errors() {
    let app = spawn_app().await;
    signer_in(&app, "s", "ACTIVE").await;
    for body in [
        json!({"signerStatus": "SLEEPING"}),
        json!({}),
        json!({"signerStatus": 3}),
        json!({"signerStatus": "REVOKED", "revocationReason": "boredom"}),
        json!({"signerStatus": "BLOCKED", "revocationReason": "keyCompromise"}),
    ] {
        let response = app.put_json("/signers/s", &body).await;
        assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    }
    assert_eq!(app.signer("s").await["signerStatus"], "ACTIVE");
}

#[tokio::test]
async fn unknown_signers_are_not_found() {
    let app = spawn_app().await;
    assert_error(
        app.get("/signers/nobody").await,
        404,
        "ERROR_RESOURCE_NOT_FOUND",
    )
    .await;
    let response = app
        .put_json("/signers/nobody", &json!({"signerStatus": "BLOCKED"}))
        .await;
    assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
}

#[tokio::test]
async fn requests_without_a_valid_api_key_are_unauthorized() {
    let app = spawn_app().await;
    let device = device_key(KeyKind::P256, "u");
    let body = json!({"signerId": "u", "userId": "u", "csr": device.csr_pem});
    let no_key = app
        .client
        .post(app.url("/signers"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(no_key, 401, "ERROR_UNAUTHORIZED").await;
    let wrong_key = app
        .client
        .post(app.url("/signers"))
        .bearer_auth("sgn_not-a-real-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(wrong_key, 401, "ERROR_UNAUTHORIZED").await;
    let basic = app
        .client
        .get(app.url("/signers/u"))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_error(basic, 401, "ERROR_UNAUTHORIZED").await;
    assert_nothing_stored(&app, "u").await;
}
