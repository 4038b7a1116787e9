//! The audit trail as the store reads it back: events are written by the order changes that
//! cause them (see [`super::orders::OrderStore`]), in the same transaction; [`EventStore`]
//! only reads.

use async_trait::async_trait;

use super::orders::EventRecord;
use super::StoreResult;
use crate::domain::OrderId;

/// Reading the audit trail.
#[async_trait]
pub trait EventStore: Send + Sync {
    async fn order_events(&self, order_id: &OrderId) -> StoreResult<Vec<EventRecord>>;
    async fn events_named(&self, name: &str) -> StoreResult<Vec<EventRecord>>;
}
