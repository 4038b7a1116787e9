//! Signing orders whose INTERNAL people come from a real OpenLDAP `slapd`: found by `attr=value`
//! and by a bare value, refused when missing, and a directory that stops mid-test answers 503
//! with nothing created.

use serde_json::Value;
use signet::clock::ManualClock;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::helpers::{assert_error, database_url_for, start_with, Db, TestApp};
use crate::orders::{order_form_by, person};
use crate::slapd::Slapd;

/// A test app whose INTERNAL people are in `slapd`.
async fn app_with_ldap(db: Db, slapd: &Slapd) -> Option<TestApp> {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(db, data_dir.path()).await?;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let ldap = slapd.settings();
    Some(start_with(data_dir, database_url, clock, move |s| s.ldap = ldap).await)
}

async fn order_count(app: &TestApp) -> i64 {
    let events = app.state.store.events_named("ORDER_CREATED").await.unwrap();
    i64::try_from(events.len()).unwrap()
}

fn stored_order_blobs(app: &TestApp) -> usize {
    std::fs::read_dir(app.data_dir.path().join("blobs/orders"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn internal_people_are_found_in_ldap_by_attribute_and_by_bare_value() {
    let slapd = Slapd::start();
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = app_with_ldap(db, &slapd).await else {
            continue;
        };
        let (status, id) = app
            .post_order(order_form_by(
                &person("INTERNAL", "cborgstrom", None),
                &[
                    person("INTERNAL", "uid=cborgstrom", None),
                    person("INTERNAL", "mail=anna.andersson@example.org", None),
                ],
            ))
            .await;
        assert_eq!(status, 200, "{id}");
        let order = app.order(&id).await;
        let signers = order["signers"].as_array().unwrap();
        assert_eq!(signers[0]["firstName"], "Carl", "{order}");
        assert_eq!(signers[0]["lastName"], "Borgström");
        assert_eq!(signers[0]["mobile"], "+46701234567");
        assert_eq!(signers[1]["firstName"], "Anna");
        assert_eq!(signers[1]["mobile"], Value::Null);
        // The bare value, the attr=value form and another attribute all name one login.
        let (status, second) = app
            .post_order(order_form_by(
                &person("INTERNAL", "uid=cborgstrom", None),
                &[person("INTERNAL", "aandersson", None)],
            ))
            .await;
        assert_eq!(status, 200, "{second}");
        let second = app.order(&second).await;
        assert_eq!(second["signers"][0]["internalId"], signers[1]["internalId"]);
        assert_eq!(second["solicitor"]["internalId"], signers[0]["internalId"]);
        // Two spellings of one person on one order are refused.
        let (status, body) = app
            .post_order(order_form_by(
                &person("INTERNAL", "cborgstrom", None),
                &[
                    person("INTERNAL", "aandersson", None),
                    person("INTERNAL", "uid=aandersson", None),
                ],
            ))
            .await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("same person"), "{body}");
        assert_eq!(order["solicitor"]["firstName"], "Carl");
        assert_eq!(order["solicitor"]["internalId"], signers[0]["internalId"]);
    }
}

#[tokio::test]
async fn an_internal_person_missing_from_ldap_is_refused_and_nothing_is_stored() {
    let slapd = Slapd::start();
    let app = app_with_ldap(Db::Sqlite, &slapd).await.unwrap();
    let (status, body) = app
        .post_order(order_form_by(
            &person("INTERNAL", "cborgstrom", None),
            &[person("INTERNAL", "uid=nobody", None)],
        ))
        .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["responseObject"]["code"], "REQUEST_VALIDATION_ERROR");
    assert!(body["responseObject"]["message"]
        .as_str()
        .unwrap()
        .contains("uid=nobody"));
    assert_eq!(order_count(&app).await, 0);
    assert_eq!(stored_order_blobs(&app), 0);
}

#[tokio::test]
async fn a_directory_that_stops_answering_gives_503_and_nothing_is_created() {
    let mut slapd = Slapd::start();
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = app_with_ldap(db, &slapd).await else {
            continue;
        };
        slapd.stop();
        let response = app
            .client
            .post(app.automation_url("/orders"))
            .multipart(order_form_by(
                &person("INTERNAL", "cborgstrom", None),
                &[person("INTERNAL", "uid=cborgstrom", None)],
            ))
            .send()
            .await
            .unwrap();
        let message = assert_error(response, 503, "ERROR_GENERIC").await;
        assert!(message.contains("unreachable"), "{message}");
        assert!(
            !message.contains("ldap://"),
            "no server details for the client: {message}"
        );
        assert_eq!(order_count(&app).await, 0);
        assert_eq!(stored_order_blobs(&app), 0);
        slapd = Slapd::start();
    }
}
