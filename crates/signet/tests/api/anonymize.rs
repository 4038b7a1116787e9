//! `POST /anonymize`: a person named by internalId, externalId or ldapSearch loses their name,
//! e-mail address and phone number from logins and order snapshots and gets a new internal id,
//! while the events stay; refused while they have a PENDING order. On SQLite and PostgreSQL.

use reqwest::multipart::Form;
use reqwest::Response;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp};
use crate::order_refusals::{apps, Stored};
use crate::orders::person;

/// How a request names the person.
enum Selector<'a> {
    Json(Value),
    UrlEncoded(&'a str),
    Multipart(Form),
}

async fn anonymize(app: &TestApp, selector: Selector<'_>) -> Response {
    let request = app.client.post(app.automation_url("/anonymize"));
    let request = match selector {
        Selector::Json(body) => request.json(&body),
        Selector::UrlEncoded(body) => request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned()),
        Selector::Multipart(form) => request.multipart(form),
    };
    request.send().await.unwrap()
}

/// Anonymizes and returns the new internal id, checking the documented answer.
async fn anonymized(app: &TestApp, selector: Selector<'_>) -> String {
    let response = anonymize(app, selector).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["anonymized"], true, "{body}");
    let id = body["internalId"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::try_parse(&id).is_ok(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    id
}

fn internal_id(person: &Value) -> String {
    person["internalId"].as_str().unwrap().to_owned()
}

async fn cancel(app: &TestApp, id: &str) {
    let response = app
        .client
        .put(app.automation_url(&format!("/orders/{id}")))
        .json(&json!({"state": "CANCELLED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Everything the people of the test directory could be recognised by.
const PERSONAL: [&str; 12] = [
    "Carl",
    "Borgstr",
    "carl.borgstrom",
    "cborgstrom",
    "Jane",
    "jane.doe",
    "jdoe",
    "Elsa",
    "Extern",
    "example.",
    "200001011907",
    "+4670",
];

fn assert_no_personal_data(order: &Value) {
    let people = std::iter::once(&order["solicitor"]).chain(order["signers"].as_array().unwrap());
    for person in people {
        for attribute in ["firstName", "lastName", "mail", "mobile"] {
            assert!(person[attribute].is_null(), "{attribute} left in {person}");
        }
    }
    let text = order.to_string();
    for personal in PERSONAL {
        assert!(!text.contains(personal), "{personal:?} left in {text}");
    }
}

async fn assert_login_anonymized(app: &TestApp, old: &str, new: &str) {
    assert_ne!(old, new);
    assert!(app.state.store.find_login(old).await.unwrap().is_none());
    let login = app.state.store.find_login(new).await.unwrap().unwrap();
    assert!(login.anonymized);
    let a = &login.attributes;
    assert_eq!(
        (&a.first_name, &a.last_name, &a.mail, &a.mobile),
        (&None, &None, &None, &None),
        "{login:?}"
    );
    for personal in PERSONAL {
        assert!(!login.user_id.contains(personal), "{login:?}");
    }
}

#[tokio::test]
async fn anonymizing_by_internal_id_external_id_and_ldap_search_leaves_no_personal_data_but_keeps_the_events(
) {
    for app in apps().await {
        // Arrange: cborgstrom asks jdoe (group 1, PENDING) and Elsa (group 2, QUEUED) to sign.
        let mut elsa = person("EXTERNAL", "200001011907", Some(2));
        elsa["attributes"] = json!({"mobile": {"value": "+46701234567"}});
        let signers = [person("INTERNAL", "jdoe", Some(1)), elsa];
        let pending = app.create_order(&signers).await;
        let deleted = app.create_order(&signers).await;
        let order = app.order(&pending).await;
        assert_eq!(order["signers"][1]["mobile"], "+46701234567");
        let (carl, jane, elsa) = (
            internal_id(&order["solicitor"]),
            internal_id(&order["signers"][0]),
            internal_id(&order["signers"][1]),
        );

        // Nobody with a PENDING order is anonymized: solicitor, PENDING or QUEUED signer.
        let stored = Stored::of(&app).await;
        for selector in [
            Selector::Json(
                json!({"ldapSearch": person("INTERNAL", "sAMAccountName=cborgstrom", None)}),
            ),
            Selector::Json(json!({"internalId": jane})),
            Selector::UrlEncoded("externalId=EXTERNAL%3A200001011907"),
        ] {
            let response = anonymize(&app, selector).await;
            assert_error(response, 400, "ILLEGAL_OPERATION_ERROR").await;
        }
        assert_eq!(app.order(&pending).await, order);
        assert_eq!(Stored::of(&app).await, stored);
        for id in [&carl, &jane, &elsa] {
            let login = app.state.store.find_login(id).await.unwrap().unwrap();
            assert!(!login.anonymized && login.attributes.first_name.is_some());
        }

        // Once their orders are finished (cancelled, deleted) they can be.
        cancel(&app, &pending).await;
        let response = app
            .client
            .delete(app.automation_url(&format!("/orders/{deleted}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let events_of_pending = app.event_names(&pending).await;
        let events_of_deleted = app.event_names(&deleted).await;

        let new_jane = anonymized(&app, Selector::Json(json!({"internalId": jane}))).await;
        let new_elsa = anonymized(
            &app,
            Selector::UrlEncoded("externalId=EXTERNAL%3A200001011907"),
        )
        .await;
        let new_carl = anonymized(
            &app,
            Selector::Json(
                json!({"ldapSearch": person("INTERNAL", "sAMAccountName=cborgstrom", None)}),
            ),
        )
        .await;

        // Assert: the order shows no personal data, only the new internal ids.
        let order = app.order(&pending).await;
        assert_no_personal_data(&order);
        assert_eq!(order["solicitor"]["internalId"], new_carl.as_str());
        assert_eq!(order["signers"][0]["internalId"], new_jane.as_str());
        assert_eq!(order["signers"][1]["internalId"], new_elsa.as_str());
        assert_eq!(order["state"], "CANCELLED");
        assert_eq!(order["title"], "Contract");
        assert_login_anonymized(&app, &carl, &new_carl).await;
        assert_login_anonymized(&app, &jane, &new_jane).await;
        assert_login_anonymized(&app, &elsa, &new_elsa).await;

        // The events stay as they were; each anonymization adds one.
        assert_eq!(app.event_names(&pending).await, events_of_pending);
        assert_eq!(app.event_names(&deleted).await, events_of_deleted);
        for name in [
            "ORDER_CREATED",
            "DOCUMENT_CREATED",
            "LOGIN_CREATED",
            "ORDER_CANCELED",
        ] {
            assert!(
                events_of_pending.iter().any(|e| e == name),
                "{name} missing: {events_of_pending:?}"
            );
        }
        assert!(events_of_deleted.iter().any(|e| e == "ORDER_DELETED"));
        let anonymizations = app
            .state
            .store
            .events_named("USER_ANONYMIZED")
            .await
            .unwrap();
        assert_eq!(anonymizations.len(), 3, "{anonymizations:?}");

        // The old names no longer find anyone.
        for selector in [
            Selector::Json(json!({"internalId": jane})),
            Selector::UrlEncoded("externalId=EXTERNAL%3A200001011907"),
            Selector::UrlEncoded("externalId=INTERNAL%3Acborgstrom"),
        ] {
            let response = anonymize(&app, selector).await;
            assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
        }

        // Met again, the person is a new login, found in the directory as before.
        let again = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        let signer = app.order(&again).await["signers"][0].clone();
        assert_eq!(signer["firstName"], "Jane");
        assert_ne!(signer["internalId"], jane.as_str());
        assert_ne!(signer["internalId"], new_jane.as_str());
    }
}

#[tokio::test]
async fn a_signer_who_has_already_signed_a_pending_order_may_be_anonymized() {
    for app in apps().await {
        let id = app
            .create_order(&[
                person("INTERNAL", "jdoe", Some(1)),
                person("EXTERNAL", "200001011907", Some(2)),
            ])
            .await;
        app.sign_as(&id, 0).await.unwrap();
        let jane = internal_id(&app.order(&id).await["signers"][0]);

        let new_jane = anonymized(&app, Selector::UrlEncoded("externalId=INTERNAL:jdoe")).await;

        let order = app.order(&id).await;
        let signer = &order["signers"][0];
        assert_eq!(signer["status"], "SIGNED");
        assert_eq!(signer["internalId"], new_jane.as_str());
        assert!(signer["firstName"].is_null() && signer["mail"].is_null());
        assert_ne!(signer["identifier"], "jdoe");
        assert_login_anonymized(&app, &jane, &new_jane).await;
        // The order goes on.
        assert_eq!(app.sign_as(&id, 1).await.unwrap().as_str(), "ACCEPTED");
    }
}

#[tokio::test]
async fn an_unknown_user_is_not_found_and_nothing_changes() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        cancel(&app, &id).await;
        let stored = Stored::of(&app).await;
        let random = uuid::Uuid::new_v4().to_string();
        for selector in [
            Selector::Json(json!({"internalId": random})),
            Selector::Json(json!({"externalId": "EXTERNAL:198603052385"})),
            Selector::Json(json!({"externalId": "INTERNAL:nobody"})),
            Selector::Json(
                json!({"ldapSearch": person("INTERNAL", "sAMAccountName=nobody", None)}),
            ),
            Selector::Multipart(Form::new().text(
                "ldapSearch",
                person("EXTERNAL", "198603052385", None).to_string(),
            )),
        ] {
            let response = anonymize(&app, selector).await;
            assert_error(response, 404, "ERROR_RESOURCE_NOT_FOUND").await;
        }
        assert_eq!(Stored::of(&app).await, stored);
    }
}

#[tokio::test]
async fn anonymize_needs_exactly_one_valid_selector() {
    for app in apps().await {
        let id = app.create_order(&[person("INTERNAL", "jdoe", None)]).await;
        cancel(&app, &id).await;
        let jane = internal_id(&app.order(&id).await["signers"][0]);
        let stored = Stored::of(&app).await;
        for selector in [
            Selector::Json(json!({})),
            Selector::Json(json!({"internalId": null})),
            Selector::Json(json!({"internalId": jane, "externalId": "INTERNAL:jdoe"})),
            Selector::Json(json!(["internalId", jane])),
            Selector::Json(json!({"internalId": "not-a-uuid"})),
            Selector::Json(json!({"externalId": "jdoe"})),
            Selector::Json(json!({"externalId": "ALIEN:jdoe"})),
            Selector::Json(json!({"externalId": "EXTERNAL:200001011908"})),
            Selector::Json(json!({"ldapSearch": [1, 2]})),
            Selector::UrlEncoded(""),
            Selector::UrlEncoded("externalId=INTERNAL%3Ajdoe&externalId=INTERNAL%3Ajdoe"),
            Selector::Multipart(
                Form::new()
                    .text("internalId", jane.clone())
                    .text("externalId", "INTERNAL:jdoe"),
            ),
        ] {
            let response = anonymize(&app, selector).await;
            assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
        }
        assert_eq!(Stored::of(&app).await, stored);
        assert!(
            !app.state
                .store
                .find_login(&jane)
                .await
                .unwrap()
                .unwrap()
                .anonymized
        );
    }
}
