//! Sending one webhook: an HTTP POST of the outbox row's JSON body to the row's URL with the
//! Standard Webhooks headers. The outbox dispatcher decides when to try (and retry); this only
//! says whether one attempt was delivered (a 2xx answer) and, if not, why.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::jobs::outbox::{Deliver, DeliveryError};
use crate::store::outbox::{Channel, OutboxMessage};

use super::{WebhookId, WebhookSecret};

/// How long one attempt may take, connection and answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a message is retried, counted from its creation, before the outbox gives up on it.
pub const GIVE_UP_AFTER: time::Duration = time::Duration::hours(24);
/// Most bytes of a receiver's error answer kept in the delivery log's reason.
const MAX_REASON_BODY: usize = 200;

/// Why an attempt did not deliver. Every failure is worth a retry: a receiver that is down,
/// slow or answering 5xx (or, misconfigured, 4xx) may be fixed within the retry window.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    #[error("the receiver answered {status}{}", body_note(.body))]
    Status { status: u16, body: String },
    #[error("no answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("could not reach the receiver: {0}")]
    Connection(String),
    #[error("the message body could not be serialized: {0}")]
    Body(String),
}

fn body_note(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

/// Signs and POSTs webhook messages.
#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    secret: Arc<WebhookSecret>,
    /// Where `webhook-timestamp` is read. Receivers compare it with their own clock (Standard
    /// Webhooks libraries refuse more than five minutes' difference, against replays), so in the
    /// server this is the operating system's clock, not the application's.
    clock: Arc<dyn Clock>,
}

impl WebhookSender {
    pub fn new(secret: WebhookSecret, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // A redirect would send the signed event somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Signet/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            secret: Arc::new(secret),
            clock,
        })
    }

    /// One attempt to deliver `payload` to `url` as message `id`.
    pub async fn send(
        &self,
        url: &str,
        id: &WebhookId,
        payload: &serde_json::Value,
    ) -> Result<(), SendFailure> {
        let body = serde_json::to_vec(payload).map_err(|e| SendFailure::Body(e.to_string()))?;
        let signed = self
            .secret
            .sign(id, self.clock.now().unix_timestamp(), &body);
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", signed.id.as_str())
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", signed.signature)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    SendFailure::Timeout
                } else {
                    SendFailure::Connection(error_chain(&e))
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // The start of the receiver's answer helps whoever reads the delivery log; bounded, and
        // read within the same timeout.
        let text = response.text().await.unwrap_or_default();
        let mut body: String = text.chars().take(MAX_REASON_BODY).collect();
        body = body.trim().to_owned();
        Err(SendFailure::Status {
            status: status.as_u16(),
            body,
        })
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait::async_trait]
impl Deliver for WebhookSender {
    fn channel(&self) -> Channel {
        Channel::Webhook
    }

    fn give_up_after(&self) -> time::Duration {
        GIVE_UP_AFTER
    }

    /// The row's id names the message (`msg_<id>`) on every attempt: receivers de-duplicate by
    /// it. Every failure is retried until the outbox gives up.
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError> {
        self.send(
            &message.recipient,
            &WebhookId::for_outbox_row(message.id),
            &message.payload,
        )
        .await
        .map_err(|failure| DeliveryError::retry(failure.to_string()))
    }
}
