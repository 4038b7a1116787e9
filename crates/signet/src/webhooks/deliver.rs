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
        // The start of the receiver's answer helps whoever reads the delivery log. Only the
        // first chunks are read (a receiver's answer can be any size), within the same timeout.
        let mut response = response;
        let mut head = Vec::new();
        while head.len() < MAX_REASON_BODY * 4 {
            match response.chunk().await {
                Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let body: String = String::from_utf8_lossy(&head)
            .chars()
            .take(MAX_REASON_BODY)
            .collect::<String>()
            .trim()
            .to_owned();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-request HTTP server that answers `response` and hands back the request it read.
    async fn answer_once(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            // Read the head and the (small) body: stop once the body's length has arrived.
            loop {
                let n = socket.read(&mut buffer).await.unwrap();
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, server)
    }

    fn sender() -> WebhookSender {
        let start = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        WebhookSender::new(WebhookSecret::generate(), Arc::new(ManualClock::new(start))).unwrap()
    }

    #[tokio::test]
    async fn a_2xx_answer_delivers_and_the_request_carries_the_three_headers() {
        let (url, server) =
            answer_once("HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").await;
        let payload = serde_json::json!({"type": "ORDER_CREATED"});
        sender()
            .send(&url, &WebhookId::for_outbox_row(5), &payload)
            .await
            .unwrap();
        let request = server.await.unwrap().to_ascii_lowercase();
        assert!(request.starts_with("post /hook http/1.1"), "{request}");
        assert!(request.contains("\r\ncontent-type: application/json\r\n"));
        assert!(request.contains("\r\nwebhook-id: msg_5\r\n"));
        assert!(request.contains("\r\nwebhook-timestamp: 1800000000\r\n"));
        assert!(request.contains("\r\nwebhook-signature: v1,"));
        assert!(request.ends_with(r#"{"type":"order_created"}"#));
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_but_retried() {
        let (url, server) = answer_once(
            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/elsewhere\r\n\
             content-length: 0\r\n\r\n",
        )
        .await;
        let result = sender()
            .send(&url, &WebhookId::for_outbox_row(1), &serde_json::json!({}))
            .await;
        assert_eq!(
            result,
            Err(SendFailure::Status {
                status: 307,
                body: String::new()
            })
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_error_answer_is_kept_short_in_the_reason() {
        let (url, server) = answer_once(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 12\r\n\r\nmaintenance!",
        )
        .await;
        let failure = sender()
            .send(&url, &WebhookId::for_outbox_row(1), &serde_json::json!({}))
            .await
            .unwrap_err();
        assert_eq!(
            failure.to_string(),
            "the receiver answered 503: maintenance!"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_receiver_is_a_connection_failure() {
        // A port that was just free: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let failure = sender()
            .send(
                &format!("http://127.0.0.1:{port}/hook"),
                &WebhookId::for_outbox_row(1),
                &serde_json::json!({}),
            )
            .await
            .unwrap_err();
        assert!(matches!(failure, SendFailure::Connection(_)), "{failure:?}");
    }
}
