//! The outbox at the store: rows written with the events that cause them, claims that never
//! hand one row to two senders, the delivered / retry / gave-up marks.

use crate::helpers::{spawn_app_on, Db, NowForTests};
use crate::orders::person;
use serde_json::json;
use signet::domain::OrderId;
use signet::store::outbox::{Channel, OutboxPolicy};
use std::collections::HashSet;
use time::Duration;

const HOOK: &str = "http://127.0.0.1:9/hook";

#[tokio::test]
async fn an_order_change_queues_its_mail_and_webhooks_in_its_transaction() {
    for db in [Db::Sqlite, Db::Postgres] {
        let Some(app) = spawn_app_on(db).await else {
            continue;
        };
        let store = app.state.store.clone();
        store
            .set_outbox_policy(&OutboxPolicy {
                mail: true,
                webhook_urls: vec![HOOK.into()],
            })
            .await
            .unwrap();
        let id = app
            .create_order(&[
                person("INTERNAL", "sAMAccountName=jdoe", Some(1)),
                person("EXTERNAL", "200001011907", Some(2)),
            ])
            .await;
        let order_id = OrderId::parse(&id).unwrap();

        let now = app.clock.now_for_tests();
        let mail = store
            .claim_outbox(Channel::Mail, now, 10, Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(
            mail.len(),
            1,
            "{db:?}: only the first group is invited: {mail:?}"
        );
        assert_eq!(
            (
                mail[0].kind.as_str(),
                mail[0].recipient.as_str(),
                mail[0].attempts
            ),
            ("INVITATION", "signer:0", 1)
        );
        assert_eq!(mail[0].order_id, Some(order_id));
        let again = store
            .claim_outbox(Channel::Mail, now, 10, Duration::minutes(5))
            .await
            .unwrap();
        assert!(
            again.is_empty(),
            "{db:?}: a claimed row is not claimed twice"
        );

        let log = store.order_deliveries(&order_id).await.unwrap();
        let hooks: Vec<_> = log
            .iter()
            .filter(|d| d.channel == Channel::Webhook)
            .collect();
        let kinds: HashSet<&str> = hooks.iter().map(|d| d.kind.as_str()).collect();
        assert!(
            kinds.contains("ORDER_CREATED") && kinds.contains("DOCUMENT_CREATED"),
            "{db:?}: {kinds:?}"
        );
        assert!(hooks.iter().all(|d| d.recipient == HOOK));

        store.outbox_delivered(mail[0].id, now).await.unwrap();
        store.outbox_delivered(mail[0].id, now).await.unwrap();
        let sent = store.events_named("SENDING_EMAIL").await.unwrap();
        assert_eq!(sent.len(), 1, "{db:?}: marking twice writes one event");
        assert_eq!(sent[0].order_id.as_deref(), Some(id.as_str()));
        assert_eq!(sent[0].details["kind"], json!("INVITATION"));

        // The first group signs: the second group's invitation is queued with the signature.
        app.sign_as(&id, 0).await.unwrap();
        let next = store
            .claim_outbox(Channel::Mail, now, 10, Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(next.len(), 1, "{db:?}: {next:?}");
        assert_eq!(next[0].recipient, "signer:1");

        // A retry waits for its time; a given-up row is never claimed again.
        store
            .outbox_retry(next[0].id, "down", now + Duration::seconds(30))
            .await
            .unwrap();
        assert!(store
            .claim_outbox(Channel::Mail, now, 10, Duration::minutes(5))
            .await
            .unwrap()
            .is_empty());
        let later = now + Duration::seconds(31);
        let retried = store
            .claim_outbox(Channel::Mail, later, 10, Duration::minutes(5))
            .await
            .unwrap();
        assert_eq!(retried.len(), 1);
        assert_eq!(retried[0].attempts, 2);
        store
            .outbox_gave_up(retried[0].id, "no", later)
            .await
            .unwrap();
        assert!(store
            .claim_outbox(
                Channel::Mail,
                later + Duration::hours(2),
                10,
                Duration::minutes(5)
            )
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_claimers_on_postgresql_never_get_the_same_row() {
    use sqlx::Connection;
    let Some(app) = spawn_app_on(Db::Postgres).await else {
        return;
    };
    const ROWS: i64 = 3000;
    let mut conn = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let now = app.clock.now_for_tests().unix_timestamp();
    sqlx::query(
        "INSERT INTO outbox (channel, kind, recipient, payload, created_at, next_attempt_at) \
         SELECT 'MAIL', 'INVITATION', 'signer:0', '{}', $1, $1 FROM generate_series(1, $2)",
    )
    .bind(now)
    .bind(ROWS)
    .execute(&mut conn)
    .await
    .unwrap();
    let first = app.state.store.clone();
    let second = signet::store::connect(&app.database_url).await.unwrap();
    let at = app.clock.now_for_tests();
    let claim_all = |store: std::sync::Arc<dyn signet::store::Store>| async move {
        let mut ids = Vec::new();
        loop {
            let claimed = store
                .claim_outbox(Channel::Mail, at, 7, Duration::minutes(5))
                .await
                .unwrap();
            if claimed.is_empty() {
                return ids;
            }
            ids.extend(claimed.iter().map(|m| m.id));
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim_all(first)),
        tokio::spawn(claim_all(second))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(all.len(), a.len() + b.len(), "a row was claimed twice");
    assert_eq!(all.len() as i64, ROWS);
}
