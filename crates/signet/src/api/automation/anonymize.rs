//! `POST /anonymize`: removes a person's name, phone number and e-mail address from Signet's
//! records and gives them a new internal id, once they have no PENDING order.

use axum::extract::{Request, State};
use axum::Json;
use serde_json::{json, Value};

use super::form::{read_small_body, SmallBody};
use super::people::{parse_json_field, person_from_value};
use crate::api::cloudsigner::error::ApiError;
use crate::api::openapi::schemas::{AnonymizeInput, Anonymized, ErrorBody};
use crate::domain::person::{PersonSource, PersonalNumber};
use crate::services::orders::AnonymizeRequest;
use crate::state::AppState;

/// The three ways the source names a user.
const SELECTORS: [&str; 3] = ["internalId", "externalId", "ldapSearch"];

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// `externalId`: `SOURCE:identifier`, e.g. `INTERNAL:jane.doe` or `EXTERNAL:200001011907`.
fn parse_external_id(raw: &str) -> Result<(PersonSource, String), ApiError> {
    let (source, identifier) = raw.trim().split_once(':').ok_or_else(|| {
        ApiError::validation("externalId must be SOURCE:identifier, e.g. EXTERNAL:200001011907")
    })?;
    let source: PersonSource = source.parse().map_err(|_| {
        ApiError::validation(format!(
            "externalId source must be INTERNAL or EXTERNAL, not {source:?}"
        ))
    })?;
    let identifier = match source {
        PersonSource::External => PersonalNumber::parse(identifier)
            .map_err(|e| ApiError::validation(format!("externalId: {e}")))?
            .as_str()
            .to_owned(),
        PersonSource::Internal => identifier.trim().to_owned(),
    };
    Ok((source, identifier))
}

/// Removes a person's name, phone number and e-mail address and gives them a new internal id.
#[utoipa::path(
    post, path = "/anonymize", tag = "people",
    request_body(content(
        (AnonymizeInput = "application/json"),
        (AnonymizeInput = "application/x-www-form-urlencoded"),
        (AnonymizeInput = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "Anonymized", body = Anonymized),
        (status = 400, description = "Not exactly one selector, a malformed one, a person with a PENDING order", body = ErrorBody),
        (status = 404, description = "No such person", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "Not JSON, a URL-encoded form or multipart/form-data", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The directory cannot be reached now", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn anonymize(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let given: Vec<(String, Value)> = match read_small_body(&state, request).await? {
        SmallBody::Json(Value::Object(map)) => map.into_iter().collect(),
        SmallBody::Json(_) => {
            return Err(ApiError::validation(
                "expected a JSON object with one of internalId, externalId, ldapSearch",
            ))
        }
        SmallBody::Fields(fields) => fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    };
    let chosen: Vec<&(String, Value)> = given
        .iter()
        .filter(|(k, v)| SELECTORS.contains(&k.as_str()) && !v.is_null())
        .collect();
    let [(selector, value)] = chosen.as_slice() else {
        return Err(ApiError::validation(
            "give exactly one of internalId, externalId, ldapSearch",
        ));
    };
    let request = match selector.as_str() {
        "internalId" => {
            let raw = text_of(value).unwrap_or_default();
            let id = uuid::Uuid::try_parse(raw.trim())
                .map_err(|_| ApiError::validation(format!("internalId {raw:?} is not a UUID")))?;
            AnonymizeRequest::InternalId(id)
        }
        "externalId" => {
            let (source, identifier) = parse_external_id(&text_of(value).unwrap_or_default())?;
            AnonymizeRequest::Person { source, identifier }
        }
        _ => {
            let person = match value {
                Value::String(raw) => {
                    person_from_value(&parse_json_field(raw, "ldapSearch")?, "ldapSearch")?
                }
                other => person_from_value(other, "ldapSearch")?,
            };
            AnonymizeRequest::Person {
                source: person.source,
                identifier: person.identifier,
            }
        }
    };
    let internal_id = state.orders.anonymize(request).await?;
    Ok(Json(json!({"anonymized": true, "internalId": internal_id})))
}
