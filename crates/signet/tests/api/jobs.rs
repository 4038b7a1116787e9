//! Renewal and expiry jobs, on SQLite and PostgreSQL, driven by a movable clock.

use time::Duration;

use crate::helpers::{spawn_app_on, Db, TestApp};
use crate::openssl::{certificate_public_key, device_key, KeyKind};

async fn renewal_recertifies_the_same_key_with_a_later_expiry(app: TestApp) {
    let device = device_key(KeyKind::P256, "renew-me");
    app.enroll("renew-me", &device.csr_pem).await;
    let before = app.signer("renew-me").await;

    // Not yet due: nothing happens.
    app.clock.advance(Duration::days(200));
    assert_eq!(app.runner.run_once().await.unwrap().renewed, 0);

    // Past two thirds of 365 days.
    app.clock.advance(Duration::days(50));
    assert_eq!(app.runner.run_once().await.unwrap().renewed, 1);
    // Idempotent: a second pass finds nothing due.
    assert_eq!(app.runner.run_once().await.unwrap().renewed, 0);

    let after = app.signer("renew-me").await;
    assert_eq!(after["signerStatus"], "ACTIVE");
    assert_ne!(
        after["certificate"]["serialNumber"],
        before["certificate"]["serialNumber"]
    );
    let old_not_after = time::OffsetDateTime::parse(
        before["certificate"]["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let new_not_after = time::OffsetDateTime::parse(
        after["certificate"]["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(new_not_after > old_not_after);
    assert_eq!(
        certificate_public_key(before["certificate"]["pem"].as_str().unwrap()),
        certificate_public_key(after["certificate"]["pem"].as_str().unwrap()),
        "renewal keeps the device's key"
    );
    let history = after["certificate"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "the old certificate is kept in history");
    assert_eq!(history[1]["issuedFor"], "RENEWAL");
    assert_eq!(
        history[0]["serialNumber"],
        before["certificate"]["serialNumber"]
    );
}

async fn an_unrenewed_certificate_expires_its_signer(app: TestApp) {
    let device = device_key(KeyKind::P256, "blocked-one");
    app.enroll("blocked-one", &device.csr_pem).await;
    assert_eq!(app.set_status("blocked-one", "BLOCKED").await.0, 200);
    app.clock.advance(Duration::days(300));
    let report = app.runner.run_once().await.unwrap();
    assert_eq!(
        (report.renewed, report.expired),
        (0, 0),
        "blocked signers are not renewed"
    );
    app.clock.advance(Duration::days(70));
    assert_eq!(app.runner.run_once().await.unwrap().expired, 1);
    assert_eq!(app.runner.run_once().await.unwrap().expired, 0);
    assert_eq!(app.signer("blocked-one").await["signerStatus"], "EXPIRED");
}

#[tokio::test]
async fn renewal_on_sqlite() {
    renewal_recertifies_the_same_key_with_a_later_expiry(spawn_app_on(Db::Sqlite).await.unwrap())
        .await;
}

#[tokio::test]
async fn renewal_on_postgres() {
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    renewal_recertifies_the_same_key_with_a_later_expiry(app).await;
}

#[tokio::test]
async fn expiry_on_sqlite() {
    an_unrenewed_certificate_expires_its_signer(spawn_app_on(Db::Sqlite).await.unwrap()).await;
}

#[tokio::test]
async fn expiry_on_postgres() {
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    an_unrenewed_certificate_expires_its_signer(app).await;
}

/// Two Signet processes share one PostgreSQL database: their job runners race over the same
/// due certificates, and each certificate must be renewed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_job_runners_on_one_postgres_renew_each_certificate_exactly_once() {
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    let signers: Vec<String> = (0..40).map(|i| format!("fleet-{i}")).collect();
    let device = device_key(KeyKind::P256, "fleet");
    for signer_id in &signers {
        app.enroll(signer_id, &device.csr_pem).await;
    }
    app.clock.advance(Duration::days(250));

    // A second, independent store (its own pool) over the same schema, as a second replica has.
    let second_store = signet::store::connect(&app.database_url).await.unwrap();
    let second = signet::jobs::JobRunner {
        store: second_store,
        pki: app.runner.pki.clone(),
        clock: app.runner.clock.clone(),
        blobs: app.runner.blobs.clone(),
        archive: app.runner.archive.clone(),
    };
    let first = app.runner.clone();
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.run_once().await.unwrap() }),
        tokio::spawn(async move { second.run_once().await.unwrap() }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.renewed + b.renewed, signers.len(), "{a:?} {b:?}");
    for signer_id in &signers {
        assert_eq!(app.certificate_count(signer_id).await, 2, "{signer_id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_job_runners_on_one_sqlite_file_renew_each_certificate_exactly_once() {
    let app = spawn_app_on(Db::Sqlite).await.unwrap();
    let device = device_key(KeyKind::P256, "fleet");
    for i in 0..20 {
        app.enroll(&format!("fleet-{i}"), &device.csr_pem).await;
    }
    app.clock.advance(Duration::days(250));
    let second_store = signet::store::connect(&app.database_url).await.unwrap();
    let second = signet::jobs::JobRunner {
        store: second_store,
        pki: app.runner.pki.clone(),
        clock: app.runner.clock.clone(),
        blobs: app.runner.blobs.clone(),
        archive: app.runner.archive.clone(),
    };
    let first = app.runner.clone();
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.run_once().await.unwrap() }),
        tokio::spawn(async move { second.run_once().await.unwrap() }),
    );
    assert_eq!(a.unwrap().renewed + b.unwrap().renewed, 20);
    for i in 0..20 {
        assert_eq!(app.certificate_count(&format!("fleet-{i}")).await, 2);
    }
}
