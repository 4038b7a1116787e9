//! `GET /orders/{id}/deliveries`: the order's delivery log — every mail and webhook message the
//! outbox holds for it, with its attempts and outcome, so an operator can see whether a receiver
//! got an event without reading the server's log. Mail recipients are shown as the outbox keeps
//! them (`signer:<n>`, `solicitor`), never as addresses.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::api::cloudsigner::error::ApiError;
use crate::api::cloudsigner::extract::ApiPath;
use crate::domain::OrderId;
use crate::state::AppState;
use crate::store::outbox::DeliveryRecord;

/// `GET /orders/{id}/deliveries` (additive): oldest message first.
#[utoipa::path(
    get, path = "/orders/{orderId}/deliveries", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order's messages, oldest first", body = Vec<crate::api::openapi::schemas::Delivery>),
        (status = 400, description = "A malformed path", body = crate::api::openapi::schemas::ErrorBody),
        (status = 404, description = "No such order", body = crate::api::openapi::schemas::ErrorBody),
        (status = 500, description = "Signet's fault", body = crate::api::openapi::schemas::ErrorBody),
    )
)]
#[tracing::instrument(skip(state))]
pub async fn deliveries(
    State(state): State<AppState>,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("no order {raw}"));
    let order_id = OrderId::parse(&raw).map_err(|_| not_found())?;
    if state.store.order_state(&order_id).await?.is_none() {
        return Err(not_found());
    }
    let records = state.store.order_deliveries(&order_id).await?;
    Ok(Json(Value::Array(
        records.iter().map(record_json).collect(),
    )))
}

/// Where a message stands.
fn status(record: &DeliveryRecord) -> &'static str {
    if record.delivered_at.is_some() {
        "DELIVERED"
    } else if record.gave_up_at.is_some() {
        "GAVE_UP"
    } else {
        "PENDING"
    }
}

fn record_json(record: &DeliveryRecord) -> Value {
    json!({
        "id": record.id,
        "channel": record.channel.as_str(),
        "kind": record.kind,
        "eventId": record.event_id,
        "recipient": record.recipient,
        "attempts": record.attempts,
        "status": status(record),
        "lastError": record.last_error,
        "created": timestamp(record.created_at),
        "nextAttempt": (status(record) == "PENDING").then(|| timestamp(record.next_attempt_at)),
        "delivered": record.delivered_at.map(timestamp),
        "gaveUp": record.gave_up_at.map(timestamp),
    })
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}
