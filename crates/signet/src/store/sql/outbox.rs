//! The outbox in SQL: enqueueing inside the transactions of [`super::orders`] (webhook rows for
//! every order event, mail rows for invitations and outcomes), and the dispatcher's claim,
//! delivered / retry / gave-up marks, reminders and the delivery log.
//!
//! Enqueueing reads its targets from `outbox_targets` (see migration 0006) inside the same
//! statement or transaction, so a change and its messages commit or vanish together.

use async_trait::async_trait;
use sqlx::AnyConnection;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::orders::{event, insert_event};
use super::{corrupt, from_unix, to_unix, SqlStore};
use crate::domain::{OrderId, OrderState};
use crate::store::outbox::{
    mail_kind, signer_recipient, Channel, DeliveryRecord, OutboxMessage, OutboxPolicy, OutboxStore,
    SOLICITOR_RECIPIENT,
};
use crate::store::{Dialect, StoreError, StoreResult};

const SELECT_WEBHOOK_TARGETS: &str =
    "SELECT recipient FROM outbox_targets WHERE channel = 'WEBHOOK'";
const SELECT_ORDER_STATE: &str = "SELECT state FROM orders WHERE order_id = $1";
const INSERT_WEBHOOK_MESSAGE: &str =
    "INSERT INTO outbox (channel, kind, order_id, event_id, recipient, payload, created_at, \
             next_attempt_at) VALUES ('WEBHOOK', $1, $2, $3, $4, $5, $6, $6)";
const INSERT_MAIL_MESSAGE: &str =
    "INSERT INTO outbox (channel, kind, order_id, event_id, recipient, payload, created_at, \
         next_attempt_at) SELECT 'MAIL', $1, $2, $3, $4, $5, $6, $6 FROM outbox_targets \
         WHERE channel = 'MAIL'";
const DELETE_TARGETS: &str = "DELETE FROM outbox_targets";
const INSERT_TARGET: &str = "INSERT INTO outbox_targets (channel, recipient) VALUES ($1, $2) \
                         ON CONFLICT (channel, recipient) DO NOTHING";
const MARK_DELIVERED: &str =
    "UPDATE outbox SET delivered_at = $1, claimed_until = NULL, last_error = NULL \
                     WHERE id = $2 AND delivered_at IS NULL RETURNING channel, kind, order_id, recipient";
const SELECT_DELIVERIES: &str =
    "SELECT id, channel, kind, event_id, recipient, attempts, created_at, next_attempt_at, \
             delivered_at, gave_up_at, last_error FROM outbox WHERE order_id = $1 ORDER BY id";
const MARK_REMINDED: &str = "UPDATE order_signers SET reminded_at = $1 WHERE order_id = $2 \
                         AND position = $3 AND reminded_at IS NULL";
const RETRY_AT: &str =
    "UPDATE outbox SET next_attempt_at = $1, last_error = $2, claimed_until = NULL \
                 WHERE id = $3 AND delivered_at IS NULL";
const GIVE_UP: &str = "UPDATE outbox SET gave_up_at = $1, last_error = $2, claimed_until = NULL \
                 WHERE id = $3 AND delivered_at IS NULL";

/// Events whose actor is a signer acting on their task: the webhook names them.
const SIGNER_EVENTS: [&str; 2] = [event::ORDER_SIGNED, event::ORDER_REJECTED];

/// Queues one WEBHOOK row per configured receiver for an event with an order id. The body is
/// fixed now (Standard Webhooks shape), so a retry sends exactly what the first attempt sent.
pub(crate) async fn enqueue_webhooks(
    tx: &mut AnyConnection,
    event_id: i64,
    name: &str,
    at: OffsetDateTime,
    actor: Option<&str>,
    order_id: &OrderId,
    details: &serde_json::Value,
) -> StoreResult<()> {
    let urls: Vec<String> = sqlx::query_scalar(SELECT_WEBHOOK_TARGETS)
        .fetch_all(&mut *tx)
        .await?;
    if urls.is_empty() {
        return Ok(());
    }
    let state: Option<String> = sqlx::query_scalar(SELECT_ORDER_STATE)
        .bind(order_id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
    // The order row is gone after a deletion (its event says what state it had) and not yet
    // written when the solicitor's login is created at the start of the creation.
    let state = state
        .or_else(|| details["state"].as_str().map(str::to_owned))
        .unwrap_or_else(|| OrderState::Pending.as_str().to_owned());
    let mut data = serde_json::json!({"orderId": order_id.to_string(), "state": state});
    if let Some(actor) = actor.filter(|_| SIGNER_EVENTS.contains(&name)) {
        data["signerInternalId"] = actor.into();
    }
    let timestamp = at
        .format(&Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("event time: {e}")))?;
    let body = serde_json::json!({"type": name, "timestamp": timestamp, "data": data}).to_string();
    for url in urls {
        sqlx::query(INSERT_WEBHOOK_MESSAGE)
            .bind(name)
            .bind(order_id.to_string())
            .bind(event_id)
            .bind(url)
            .bind(&body)
            .bind(to_unix(at))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Queues one MAIL row when mail is on (one statement: nothing is written when it is off).
/// Mail rows hold no address and no text; both are read when the message is sent.
pub(crate) async fn enqueue_mail(
    tx: &mut AnyConnection,
    kind: &str,
    order_id: &OrderId,
    event_id: Option<i64>,
    recipient: &str,
    payload: serde_json::Value,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(INSERT_MAIL_MESSAGE)
        .bind(kind)
        .bind(order_id.to_string())
        .bind(event_id)
        .bind(recipient)
        .bind(payload.to_string())
        .bind(to_unix(now))
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The invitation of the signer at `position`, whose task just became PENDING (`waiting`:
/// invited early, by notifyAllSigners, while an earlier group still signs).
pub(crate) async fn enqueue_invitation(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    position: i64,
    waiting: bool,
    now: OffsetDateTime,
) -> StoreResult<()> {
    let payload = if waiting {
        serde_json::json!({"waiting": true})
    } else {
        serde_json::json!({})
    };
    enqueue_mail(
        tx,
        mail_kind::INVITATION,
        order_id,
        None,
        &signer_recipient(position),
        payload,
        now,
    )
    .await
}

/// The outcome mail to the solicitor of an order that just finished in `state`.
pub(crate) async fn enqueue_outcome(
    tx: &mut AnyConnection,
    order_id: &OrderId,
    event_id: i64,
    state: OrderState,
    now: OffsetDateTime,
) -> StoreResult<()> {
    enqueue_mail(
        tx,
        mail_kind::OUTCOME,
        order_id,
        Some(event_id),
        SOLICITOR_RECIPIENT,
        serde_json::json!({"state": state.as_str()}),
        now,
    )
    .await
}

/// The columns [`MessageRow`] reads (a macro so the claims below stay `const` literals).
macro_rules! message_columns {
    () => {
        "id, channel, kind, order_id, event_id, recipient, payload, attempts, created_at"
    };
}
/// Tasks still PENDING whose order's due date is within the reminder horizon, not reminded yet.
const SELECT_DUE_REMINDERS: &str = "SELECT s.order_id, s.position FROM order_signers s \
     JOIN orders o ON o.order_id = s.order_id \
     WHERE o.state = 'PENDING' AND s.status = 'PENDING' AND s.reminded_at IS NULL \
     AND o.due_at <= $1 AND o.due_at > $2 ORDER BY o.due_at LIMIT $3";
/// [`SELECT_DUE_REMINDERS`] on PostgreSQL, skipping tasks another replica is reminding.
const SELECT_DUE_REMINDERS_SKIP_LOCKED: &str =
    "SELECT s.order_id, s.position FROM order_signers s \
     JOIN orders o ON o.order_id = s.order_id \
     WHERE o.state = 'PENDING' AND s.status = 'PENDING' AND s.reminded_at IS NULL \
     AND o.due_at <= $1 AND o.due_at > $2 ORDER BY o.due_at LIMIT $3 FOR UPDATE OF s SKIP LOCKED";

/// Claims due messages of a channel for a lease. SQLite has one writer, so the lease alone
/// separates senders (also across processes on one file).
const CLAIM_OUTBOX: &str = concat!(
    "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (\
     SELECT id FROM outbox WHERE channel = $2 AND delivered_at IS NULL AND gave_up_at IS NULL \
     AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until <= $3) \
     ORDER BY next_attempt_at, id LIMIT $4) RETURNING ",
    message_columns!()
);
/// [`CLAIM_OUTBOX`] on PostgreSQL: rows another sender is claiming are skipped, not waited for.
const CLAIM_OUTBOX_SKIP_LOCKED: &str = concat!(
    "UPDATE outbox SET claimed_until = $1, attempts = attempts + 1 WHERE id IN (\
     SELECT id FROM outbox WHERE channel = $2 AND delivered_at IS NULL AND gave_up_at IS NULL \
     AND next_attempt_at <= $3 AND (claimed_until IS NULL OR claimed_until <= $3) \
     ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING ",
    message_columns!()
);

fn parse_order_id(raw: Option<String>) -> StoreResult<Option<OrderId>> {
    raw.map(|id| OrderId::parse(&id).map_err(corrupt("order id")))
        .transpose()
}

fn parse_channel(raw: &str) -> StoreResult<Channel> {
    raw.parse().map_err(corrupt("outbox channel"))
}

fn parse_attempts(raw: i64) -> StoreResult<u32> {
    u32::try_from(raw).map_err(|_| StoreError::Corrupt(format!("outbox attempts {raw}")))
}

/// An `outbox` row as a claim returns it ([`message_columns`]).
#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    channel: String,
    kind: String,
    order_id: Option<String>,
    event_id: Option<i64>,
    recipient: String,
    payload: String,
    attempts: i64,
    created_at: i64,
}

impl TryFrom<MessageRow> for OutboxMessage {
    type Error = StoreError;

    fn try_from(row: MessageRow) -> StoreResult<Self> {
        Ok(OutboxMessage {
            id: row.id,
            channel: parse_channel(&row.channel)?,
            kind: row.kind,
            order_id: parse_order_id(row.order_id)?,
            event_id: row.event_id,
            recipient: row.recipient,
            payload: serde_json::from_str(&row.payload)
                .map_err(|e| StoreError::Corrupt(format!("outbox payload: {e}")))?,
            attempts: parse_attempts(row.attempts)?,
            created_at: from_unix(row.created_at)?,
        })
    }
}

/// What marking a message delivered returns ([`MARK_DELIVERED`]).
#[derive(sqlx::FromRow)]
struct DeliveredRow {
    channel: String,
    kind: String,
    order_id: Option<String>,
    recipient: String,
}

/// An `outbox` row as the delivery log shows it ([`SELECT_DELIVERIES`]).
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    channel: String,
    kind: String,
    event_id: Option<i64>,
    recipient: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: i64,
    delivered_at: Option<i64>,
    gave_up_at: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> StoreResult<Self> {
        Ok(DeliveryRecord {
            id: row.id,
            channel: parse_channel(&row.channel)?,
            kind: row.kind,
            event_id: row.event_id,
            recipient: row.recipient,
            attempts: parse_attempts(row.attempts)?,
            created_at: from_unix(row.created_at)?,
            next_attempt_at: from_unix(row.next_attempt_at)?,
            delivered_at: row.delivered_at.map(from_unix).transpose()?,
            gave_up_at: row.gave_up_at.map(from_unix).transpose()?,
            last_error: row.last_error,
        })
    }
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn set_outbox_policy(&self, policy: &OutboxPolicy) -> StoreResult<()> {
        let policy = policy.clone();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(DELETE_TARGETS).execute(&mut *tx).await?;
                let mail = policy.mail.then(|| ("MAIL", "*".to_owned()));
                let webhooks = policy.webhook_urls.iter().map(|u| ("WEBHOOK", u.clone()));
                for (channel, recipient) in mail.into_iter().chain(webhooks) {
                    sqlx::query(INSERT_TARGET)
                        .bind(channel)
                        .bind(recipient)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn claim_outbox(
        &self,
        channel: Channel,
        now: OffsetDateTime,
        limit: i64,
        lease: time::Duration,
    ) -> StoreResult<Vec<OutboxMessage>> {
        // PostgreSQL: rows another sender is claiming are skipped, not waited for; the lease
        // (claimed_until) keeps them away from others until it runs out. SQLite has one writer,
        // so the lease alone separates senders (also across processes on one file).
        let sql = match self.dialect {
            Dialect::Sqlite => CLAIM_OUTBOX,
            Dialect::Postgres => CLAIM_OUTBOX_SKIP_LOCKED,
        };
        let (until, now) = (to_unix(now + lease), to_unix(now));
        let mut claimed = self
            .write(move |tx| {
                Box::pin(async move {
                    sqlx::query_as::<_, MessageRow>(sql)
                        .bind(until)
                        .bind(channel.as_str())
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(OutboxMessage::try_from)
                        .collect::<StoreResult<Vec<_>>>()
                })
            })
            .await?;
        claimed.sort_by_key(|m| m.id);
        Ok(claimed)
    }

    async fn outbox_delivered(&self, id: i64, now: OffsetDateTime) -> StoreResult<()> {
        self.write(move |tx| {
            Box::pin(async move {
                let row = sqlx::query_as::<_, DeliveredRow>(MARK_DELIVERED)
                    .bind(to_unix(now))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else {
                    return Ok(());
                };
                if parse_channel(&row.channel)? == Channel::Mail {
                    let order_id = parse_order_id(row.order_id)?;
                    let (kind, recipient) = (row.kind, row.recipient);
                    insert_event(
                        &mut *tx,
                        event::SENDING_EMAIL,
                        now,
                        None,
                        order_id.as_ref(),
                        serde_json::json!({"kind": kind, "recipient": recipient, "messageId": id}),
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.release_undelivered(id, Undelivered::RetryAt, next_attempt_at, error)
            .await
    }

    async fn outbox_gave_up(&self, id: i64, error: &str, now: OffsetDateTime) -> StoreResult<()> {
        self.release_undelivered(id, Undelivered::GaveUpAt, now, error)
            .await
    }

    async fn order_deliveries(&self, order_id: &OrderId) -> StoreResult<Vec<DeliveryRecord>> {
        sqlx::query_as::<_, DeliveryRow>(SELECT_DELIVERIES)
            .bind(order_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(DeliveryRecord::try_from)
            .collect()
    }

    async fn queue_reminders(
        &self,
        now: OffsetDateTime,
        days_before: u32,
        limit: i64,
    ) -> StoreResult<usize> {
        let sql = match self.dialect {
            Dialect::Sqlite => SELECT_DUE_REMINDERS,
            Dialect::Postgres => SELECT_DUE_REMINDERS_SKIP_LOCKED,
        };
        let horizon = now + time::Duration::days(i64::from(days_before));
        self.write(move |tx| {
            Box::pin(async move {
                let rows = sqlx::query_as::<_, (String, i64)>(sql)
                    .bind(to_unix(horizon))
                    .bind(to_unix(now))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut queued = 0;
                for (order_id, position) in rows {
                    let order_id = OrderId::parse(&order_id).map_err(corrupt("order id"))?;
                    let marked = sqlx::query(MARK_REMINDED)
                        .bind(to_unix(now))
                        .bind(order_id.to_string())
                        .bind(position)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if marked == 1 {
                        enqueue_mail(
                            &mut *tx,
                            mail_kind::REMINDER,
                            &order_id,
                            None,
                            &signer_recipient(position),
                            serde_json::json!({}),
                            now,
                        )
                        .await?;
                        queued += 1;
                    }
                }
                Ok(queued)
            })
        })
        .await
    }
}

impl SqlStore {
    /// Releases the claim on a message that was not delivered, recording why and either when to
    /// try again or when it was given up. A message already delivered is left alone.
    async fn release_undelivered(
        &self,
        id: i64,
        what: Undelivered,
        at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let error = error.to_owned();
        self.write(move |tx| {
            Box::pin(async move {
                sqlx::query(what.statement())
                    .bind(to_unix(at))
                    .bind(error)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}

/// What an undelivered message's time column says.
#[derive(Clone, Copy)]
enum Undelivered {
    /// `next_attempt_at`: sent again from then on.
    RetryAt,
    /// `gave_up_at`: never sent again.
    GaveUpAt,
}

impl Undelivered {
    fn statement(self) -> &'static str {
        match self {
            Undelivered::RetryAt => RETRY_AT,
            Undelivered::GaveUpAt => GIVE_UP,
        }
    }
}
