//! The transactional outbox as the store keeps it: messages (mail and webhooks) written in the
//! transaction of the event that causes them, claimed and delivered by
//! [`crate::jobs::outbox`], and the narrow [`OutboxStore`] trait the dispatcher needs.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreResult;
use crate::domain::OrderId;

/// How a message leaves Signet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Mail,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mail => "MAIL",
            Channel::Webhook => "WEBHOOK",
        }
    }
}

impl std::str::FromStr for Channel {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw {
            "MAIL" => Ok(Channel::Mail),
            "WEBHOOK" => Ok(Channel::Webhook),
            other => Err(format!("unknown outbox channel {other:?}")),
        }
    }
}

/// The kinds of mail rows (a webhook row's kind is its event's name).
pub mod mail_kind {
    /// A signer's task became PENDING (or, with notifyAllSigners, the order was created).
    pub const INVITATION: &str = "INVITATION";
    /// A PENDING task nears the order's due date.
    pub const REMINDER: &str = "REMINDER";
    /// The order finished; to the solicitor.
    pub const OUTCOME: &str = "OUTCOME";
}

/// A mail row's recipient for the signer at `position`.
pub fn signer_recipient(position: i64) -> String {
    format!("signer:{position}")
}

/// A mail row's recipient for the order's solicitor.
pub const SOLICITOR_RECIPIENT: &str = "solicitor";

/// One claimed message, handed to a [`crate::jobs::outbox::Deliver`].
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// Unique and stable across retries: receivers de-duplicate by it (Message-ID, webhook-id).
    pub id: i64,
    pub channel: Channel,
    /// MAIL: INVITATION, REMINDER or OUTCOME; WEBHOOK: the event's name.
    pub kind: String,
    pub order_id: Option<OrderId>,
    /// The event that caused it, when there is one.
    pub event_id: Option<i64>,
    /// MAIL: `signer:<position>` or `solicitor`; WEBHOOK: the receiver's URL.
    pub recipient: String,
    /// WEBHOOK: the JSON body, fixed when written; MAIL: details of the message (or `{}`).
    pub payload: serde_json::Value,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: OffsetDateTime,
}

/// One message of an order as the delivery log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub channel: Channel,
    pub kind: String,
    pub event_id: Option<i64>,
    pub recipient: String,
    pub attempts: u32,
    pub created_at: OffsetDateTime,
    pub next_attempt_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
    pub gave_up_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
}

/// What the outbox queues: mail on or off, and the webhook receivers. Set once at start-up from
/// the settings; the default queues nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxPolicy {
    pub mail: bool,
    pub webhook_urls: Vec<String>,
}

/// The outbox's side of the store. [`super::Store`] extends it, so the dispatcher can be handed
/// just this.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Replaces what the outbox queues from now on (rows already queued stay).
    async fn set_outbox_policy(&self, policy: &OutboxPolicy) -> StoreResult<()>;
    /// Claims up to `limit` due, undelivered messages of `channel` for `lease` (a claim that runs
    /// out, because its sender died, makes the row claimable again) and counts the attempt. Two
    /// claimers never get the same row while its lease lasts.
    async fn claim_outbox(
        &self,
        channel: Channel,
        now: OffsetDateTime,
        limit: i64,
        lease: time::Duration,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// Marks a message delivered; for MAIL also writes a SENDING_EMAIL event in the same
    /// transaction. Idempotent: a second call changes nothing.
    async fn outbox_delivered(&self, id: i64, now: OffsetDateTime) -> StoreResult<()>;
    /// Releases the claim and schedules the next attempt.
    async fn outbox_retry(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// Stops trying: the message is kept with its reason but never claimed again.
    async fn outbox_gave_up(&self, id: i64, error: &str, now: OffsetDateTime) -> StoreResult<()>;
    /// Every message of an order, oldest first (the delivery log).
    async fn order_deliveries(&self, order_id: &OrderId) -> StoreResult<Vec<DeliveryRecord>>;
    /// Queues a REMINDER for up to `limit` PENDING tasks of PENDING orders due within
    /// `days_before` days, at most once per task; returns how many tasks were marked.
    async fn queue_reminders(
        &self,
        now: OffsetDateTime,
        days_before: u32,
        limit: i64,
    ) -> StoreResult<usize>;
}
