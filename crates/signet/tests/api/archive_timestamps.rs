//! The archive-timestamp job (PAdES B-LTA renewal), with a manual clock. The server starts
//! three years in the past, so the built-in TSA's certificate (valid three years) ends a month
//! from today, inside the job's margin; a CloudSigner document and a one-signer order are
//! signed at B-LTA then. The clock is set to today and the server restarted, which renews the
//! TSA's certificate (within 90 days of its end); the job then adds a second document timestamp
//! to both files. With the server stopped, every outside judge validates them at the real time
//! of day: by then the signers' certificates have long expired, so only the long-term data in
//! the files (the timestamps and the revocation data under them) can make them valid; the file
//! as it was before the renewal is INVALID for pyHanko offline today.

use std::sync::Arc;

use signet::clock::ManualClock;
use signet::domain::SignatureLevel;
use time::{Duration, OffsetDateTime};

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::levels::{
    adesverify, assert_long_term_valid, download, enrolled, post_signature, upload, write,
};
use crate::openssl::KeyKind;
use crate::orders::person;

/// The built-in TSA's certificate lifetime (`pki::SERVICE_VALIDITY`).
const TSA_VALIDITY: Duration = Duration::days(365 * 3);

fn document_timestamps(pdf: &[u8]) -> usize {
    let needle = b"/Type /DocTimeStamp";
    pdf.windows(needle.len()).filter(|w| *w == needle).count()
}

async fn restart(app: TestApp) -> TestApp {
    let (data_dir, database_url, clock) = app.stop().await;
    start_with(data_dir, database_url, clock, |s| {
        s.signature_level = SignatureLevel::PadesBLTA;
    })
    .await
}

async fn b_lta_files_get_a_second_document_timestamp_that_validates(db: Db) {
    let data_dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_url_for(db, data_dir.path()).await else {
        return;
    };
    // Arrange: everything is made a month short of three years ago.
    let today = OffsetDateTime::now_utc();
    let clock = Arc::new(ManualClock::new(today - TSA_VALIDITY + Duration::days(30)));
    let app = start_with(data_dir, database_url, clock.clone(), |s| {
        s.signature_level = SignatureLevel::PadesBLTA;
    })
    .await;
    let device = enrolled(&app, "archivist", KeyKind::P256).await;
    let (document_id, hash) = upload(&app, &device).await;
    let response = post_signature(&app, &device, &document_id, &hash, Some("PADES_B_LTA")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let order_id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
    app.sign_as(&order_id, 0).await.unwrap();
    assert_eq!(app.order_state(&order_id).await, "ACCEPTED");
    let before = download(&app, &document_id).await;
    assert_eq!(document_timestamps(&before), 1);
    // Nothing is due while the TSA certificate has years to run.
    assert_eq!(
        app.runner.renew_archive_timestamps().await.unwrap().renewed,
        0
    );

    // Today: the TSA certificate ends in a month, within the 60-day margin. The restart renews
    // it; then two replicas run the job at once.
    clock.set(today);
    let app = restart(app).await;
    let second = signet::jobs::JobRunner {
        store: signet::store::connect(&app.database_url).await.unwrap(),
        ..app.runner.clone()
    };
    let first = app.runner.clone();
    let (a, b) = tokio::join!(
        tokio::spawn(async move { first.renew_archive_timestamps().await.unwrap() }),
        tokio::spawn(async move { second.renew_archive_timestamps().await.unwrap() }),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.renewed + b.renewed, 2, "{a:?} {b:?}");
    // Idempotent: the files' timestamps now run three more years.
    let again = app.runner.run_once().await.unwrap();
    assert_eq!(again.archived, 0, "{again:?}");

    let dir = tempfile::tempdir().unwrap();
    let signed = write(
        dir.path(),
        "document.pdf",
        &download(&app, &document_id).await,
    );
    let order = write(
        dir.path(),
        "order.pdf",
        &app.order_document(&order_id).await,
    );
    let ca = write(
        dir.path(),
        "ca.pem",
        app.state.pki.ca().certificate_pem().as_bytes(),
    );
    app.stop().await;
    for file in [&signed, &order] {
        assert_long_term_valid(file, &ca, 1, 2);
    }
    // The renewal only appended: the file as first signed is a prefix of the renewed one.
    assert!(std::fs::read(&signed).unwrap().starts_with(&before));
    // And it is what keeps the file valid: without it, the revocation data under the first
    // document timestamp (an OCSP answer good for a day, a CRL for a week, three years ago) is
    // no longer fresh, and offline pyHanko has nothing that vouches for the first TSA today.
    let unrenewed = write(dir.path(), "unrenewed.pdf", &before);
    let report = adesverify(&unrenewed, &ca);
    assert!(report.contains(":INVALID"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b_lta_files_get_a_second_document_timestamp_that_validates_on_sqlite() {
    b_lta_files_get_a_second_document_timestamp_that_validates(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b_lta_files_get_a_second_document_timestamp_that_validates_on_postgres() {
    b_lta_files_get_a_second_document_timestamp_that_validates(Db::Postgres).await;
}

/// Without a renewed TSA certificate a new timestamp would prove nothing more: the job leaves the
/// file as it is (and says why in the log), and tries again once the lease ends.
#[tokio::test]
async fn a_tsa_certificate_that_does_not_outlast_the_timestamp_defers_the_renewal() {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(Db::Sqlite, data_dir.path()).await.unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let app = start_with(data_dir, database_url, clock.clone(), |s| {
        s.signature_level = SignatureLevel::PadesBLTA;
    })
    .await;
    let device = enrolled(&app, "archivist", KeyKind::P256).await;
    let (document_id, hash) = upload(&app, &device).await;
    let response = post_signature(&app, &device, &document_id, &hash, None).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let before = download(&app, &document_id).await;
    clock.advance(TSA_VALIDITY - Duration::days(30));
    let report = app.runner.renew_archive_timestamps().await.unwrap();
    assert_eq!((report.renewed, report.deferred), (0, 1), "{report:?}");
    assert_eq!(download(&app, &document_id).await, before);
    // Claimed for an hour: a second pass meanwhile leaves it alone.
    let report = app.runner.renew_archive_timestamps().await.unwrap();
    assert_eq!(report, Default::default());
    app.stop().await;
}
