//! The audit trail read back in SQL ([`EventStore`]); events are written by the order changes in
//! [`super::orders`], in their transactions.

use async_trait::async_trait;

use super::{from_unix, SqlStore};
use crate::domain::OrderId;
use crate::store::events::EventStore;
use crate::store::orders::EventRecord;
use crate::store::{StoreError, StoreResult};

const SELECT_ORDER_EVENTS: &str =
    "SELECT id, event, at, actor, order_id, details FROM events WHERE order_id = $1 ORDER BY id";
const SELECT_EVENTS_NAMED: &str =
    "SELECT id, event, at, actor, order_id, details FROM events WHERE event = $1 ORDER BY id";

/// An `events` row.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    event: String,
    at: i64,
    actor: Option<String>,
    order_id: Option<String>,
    details: Option<String>,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> StoreResult<Self> {
        Ok(EventRecord {
            id: row.id,
            event: row.event,
            at: from_unix(row.at)?,
            actor: row.actor,
            order_id: row.order_id,
            details: row
                .details
                .as_deref()
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("event details: {e}")))?
                .unwrap_or(serde_json::Value::Null),
        })
    }
}

#[async_trait]
impl EventStore for SqlStore {
    async fn order_events(&self, order_id: &OrderId) -> StoreResult<Vec<EventRecord>> {
        sqlx::query_as::<_, EventRow>(SELECT_ORDER_EVENTS)
            .bind(order_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(EventRecord::try_from)
            .collect()
    }

    async fn events_named(&self, name: &str) -> StoreResult<Vec<EventRecord>> {
        sqlx::query_as::<_, EventRow>(SELECT_EVENTS_NAMED)
            .bind(name)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(EventRecord::try_from)
            .collect()
    }
}
