//! The outbox dispatcher: claims due messages per channel, hands each to the channel's
//! [`Deliver`] with bounded concurrency, and records the result — delivered, retried with
//! exponential backoff (30 s doubling, capped at an hour), or given up. Delivery is
//! at-least-once: a sender that dies after sending but before marking leaves a claim that runs
//! out, and the message goes again with the same id (receivers de-duplicate by it).

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::store::outbox::{Channel, OutboxMessage, OutboxStore};

/// How many rows one claim takes.
const CLAIM_BATCH: i64 = 500;
/// How many messages of one channel are in flight at once (the mailer keeps as many SMTP
/// connections: more senders than pooled connections would open and close the extra ones).
/// 32 stays well under common per-client connection limits of SMTP servers (Postfix: 50).
pub const CONCURRENCY: usize = 32;
/// How many results are being recorded at once. Recording is a small write that waits for its
/// commit; a second stage lets the senders go on meanwhile (and lets SQLite's group commit take
/// many marks in one flush).
const RECORDING: usize = 128;
/// How long a claim keeps other senders away; longer than any delivery's own timeout.
const LEASE: time::Duration = time::Duration::minutes(5);
/// First retry delay; doubles per attempt.
const BACKOFF_START: time::Duration = time::Duration::seconds(30);
/// Longest retry delay.
const BACKOFF_CAP: time::Duration = time::Duration::hours(1);
/// How many tasks one reminder transaction marks.
const REMINDER_BATCH: i64 = 200;
/// Wait between two reminder passes (the first runs at start).
const REMINDER_TICK: Duration = Duration::from_secs(60);

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DeliveryError {
    pub retryable: bool,
    pub reason: String,
}

impl DeliveryError {
    /// A failure that may pass (server down, timeout, 5xx).
    pub fn retry(reason: impl Into<String>) -> Self {
        Self {
            retryable: true,
            reason: reason.into(),
        }
    }

    /// A failure that will not pass (no address, the order is gone).
    pub fn give_up(reason: impl Into<String>) -> Self {
        Self {
            retryable: false,
            reason: reason.into(),
        }
    }
}

/// Sends the messages of one channel. Implementations must be safe to call again for a message
/// already sent (at-least-once): they pass `message.id` on for de-duplication.
#[async_trait]
pub trait Deliver: Send + Sync {
    fn channel(&self) -> Channel;
    /// How long after a message was written retrying stops.
    fn give_up_after(&self) -> time::Duration;
    async fn deliver(&self, message: &OutboxMessage) -> Result<(), DeliveryError>;
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchReport {
    pub delivered: usize,
    pub retried: usize,
    pub gave_up: usize,
}

impl DispatchReport {
    fn add(&mut self, other: DispatchReport) {
        self.delivered += other.delivered;
        self.retried += other.retried;
        self.gave_up += other.gave_up;
    }
}

/// The delay before attempt `attempts + 1`, given `attempts` failed ones.
pub fn backoff(attempts: u32) -> time::Duration {
    let doublings = attempts.saturating_sub(1).min(16);
    (BACKOFF_START * (1_i32 << doublings)).min(BACKOFF_CAP)
}

/// Delivers the outbox through the registered channels.
pub struct Dispatcher {
    store: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
    deliverers: Vec<Arc<dyn Deliver>>,
    /// Days before the due date that reminders go out.
    reminder_days: u32,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn OutboxStore>,
        clock: Arc<dyn Clock>,
        deliverers: Vec<Arc<dyn Deliver>>,
        reminder_days: u32,
    ) -> Self {
        Self {
            store,
            clock,
            deliverers,
            reminder_days,
        }
    }

    /// Whether a channel has a sender (mail is off without SMTP).
    pub fn handles(&self, channel: Channel) -> bool {
        self.deliverers.iter().any(|d| d.channel() == channel)
    }

    /// Delivers every due message of every registered channel, in claimed batches.
    pub async fn deliver_due(&self) -> anyhow::Result<DispatchReport> {
        let mut report = DispatchReport::default();
        for deliver in &self.deliverers {
            loop {
                let claimed = self
                    .store
                    .claim_outbox(deliver.channel(), self.clock.now(), CLAIM_BATCH, LEASE)
                    .await
                    .context("claiming outbox messages")?;
                let count = claimed.len();
                let results: Vec<anyhow::Result<DispatchReport>> = futures::stream::iter(claimed)
                    .map(|message| async move {
                        let result = deliver.deliver(&message).await;
                        (message, result)
                    })
                    .buffer_unordered(CONCURRENCY)
                    .map(|(message, result)| self.record(deliver.as_ref(), message, result))
                    .buffer_unordered(RECORDING)
                    .collect()
                    .await;
                for result in results {
                    report.add(result?);
                }
                if count < CLAIM_BATCH as usize {
                    break;
                }
            }
        }
        if report.retried > 0 || report.gave_up > 0 {
            tracing::info!(
                delivered = report.delivered,
                retried = report.retried,
                gave_up = report.gave_up,
                "outbox pass"
            );
        }
        Ok(report)
    }

    /// Records one delivery's result.
    async fn record(
        &self,
        deliver: &dyn Deliver,
        message: OutboxMessage,
        result: Result<(), DeliveryError>,
    ) -> anyhow::Result<DispatchReport> {
        let now = self.clock.now();
        let channel = message.channel.as_str();
        let mut report = DispatchReport::default();
        match result {
            Ok(()) => {
                self.store
                    .outbox_delivered(message.id, now)
                    .await
                    .context("marking an outbox message delivered")?;
                report.delivered = 1;
            }
            Err(error) if error.retryable && !expired(&message, deliver, now) => {
                let next = now + backoff(message.attempts);
                tracing::warn!(outbox.id = message.id, channel, attempts = message.attempts,
                    error = %error.reason, "delivery failed; will retry");
                self.store
                    .outbox_retry(message.id, &error.reason, next)
                    .await
                    .context("scheduling an outbox retry")?;
                report.retried = 1;
            }
            Err(error) => {
                tracing::warn!(outbox.id = message.id, channel, attempts = message.attempts,
                    error = %error.reason, "delivery given up");
                self.store
                    .outbox_gave_up(message.id, &error.reason, now)
                    .await
                    .context("giving up an outbox message")?;
                report.gave_up = 1;
            }
        }
        Ok(report)
    }

    /// Queues the reminders that are due (when mail is on); returns how many.
    pub async fn queue_reminders(&self) -> anyhow::Result<usize> {
        if !self.handles(Channel::Mail) {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let queued = self
                .store
                .queue_reminders(self.clock.now(), self.reminder_days, REMINDER_BATCH)
                .await
                .context("queueing reminders")?;
            total += queued;
            if queued < REMINDER_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Delivers every `interval` and queues reminders every minute until `shutdown` completes.
    /// Failed passes are logged and tried again on the next tick: nothing is lost meanwhile.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reminders = tokio::time::interval(REMINDER_TICK);
        reminders.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = reminders.tick() => {
                    let result = self.queue_reminders().await;
                    crate::telemetry::metrics::job_ran("reminders", &result);
                    if let Err(error) = result {
                        tracing::error!(error = format!("{error:#}"), "reminder pass failed");
                    }
                }
                _ = ticker.tick() => {
                    let result = self.deliver_due().await;
                    crate::telemetry::metrics::job_ran("outbox", &result);
                    if let Err(error) = result {
                        tracing::error!(error = format!("{error:#}"), "outbox pass failed");
                    }
                }
            }
        }
    }
}

/// Whether retrying has gone on long enough.
fn expired(message: &OutboxMessage, deliver: &dyn Deliver, now: OffsetDateTime) -> bool {
    now - message.created_at >= deliver.give_up_after()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_thirty_seconds_doubles_and_stops_at_an_hour() {
        assert_eq!(backoff(1), time::Duration::seconds(30));
        assert_eq!(backoff(2), time::Duration::seconds(60));
        assert_eq!(backoff(3), time::Duration::seconds(120));
        assert_eq!(backoff(8), time::Duration::hours(1));
        assert_eq!(backoff(u32::MAX), time::Duration::hours(1));
    }
}
