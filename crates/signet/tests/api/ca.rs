//! The CA's public endpoints: certificate and CRL, without authentication, checked by openssl.

use serde_json::json;

use crate::helpers::spawn_app;
use crate::openssl::{self, device_key, KeyKind};

#[tokio::test]
async fn the_ca_certificate_and_crl_need_no_authentication() {
    let app = spawn_app().await;
    let ca = app.client.get(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_eq!(ca.status(), 200);
    let pem = ca.text().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let text = openssl::certificate_text(&pem);
    assert!(text.contains("CA:TRUE"), "{text}");

    let crl = app.client.get(app.url("/ca/crl.der")).send().await.unwrap();
    assert_eq!(crl.status(), 200);
    assert_eq!(crl.headers()["content-type"], "application/pkix-crl");
    let der = crl.bytes().await.unwrap();
    let text = openssl::crl_text(&der, &pem);
    assert!(text.contains("verify OK"), "{text}");
}

#[tokio::test]
async fn a_revoked_certificate_appears_in_the_crl_with_its_reason() {
    let app = spawn_app().await;
    let ca = app.ca_pem().await;
    let device = device_key(KeyKind::P256, "lost-phone");
    app.enroll("lost-phone", &device.csr_pem).await;
    let other = device_key(KeyKind::P256, "kept-phone");
    app.enroll("kept-phone", &other.csr_pem).await;
    let serial = openssl::serial_as_openssl_prints(
        app.signer("lost-phone").await["certificate"]["serialNumber"]
            .as_str()
            .unwrap(),
    );
    let kept_serial = openssl::serial_as_openssl_prints(
        app.signer("kept-phone").await["certificate"]["serialNumber"]
            .as_str()
            .unwrap(),
    );

    let response = app
        .put_json(
            "/signers/lost-phone",
            &json!({"signerStatus": "REVOKED", "revocationReason": "keyCompromise"}),
        )
        .await;
    assert_eq!(response.status(), 200);

    let der = app.crl_der().await;
    let text = openssl::crl_text(&der, &ca);
    assert!(text.contains("verify OK"), "{text}");
    assert!(
        text.to_uppercase().contains(&serial),
        "{serial} missing from {text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(!text.to_uppercase().contains(&kept_serial), "{text}");
}

#[tokio::test]
async fn the_ca_is_created_once_and_reused_across_restarts() {
    let app = spawn_app().await;
    let first = app.ca_pem().await;
    let key_path = app.data_dir.path().join("ca").join("ca.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "CA key must be private");
    }
    let (data_dir, url, clock) = app.stop().await;
    let app = crate::helpers::start(data_dir, url, clock).await;
    let second = app.ca_pem().await;
    assert_eq!(first, second);
}
