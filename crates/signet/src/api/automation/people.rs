//! People in Automation API requests: the person JSON (`source`, `identifier`, `attributes`,
//! `priorityGroup`) parsed into types; the order service resolves them through the directory.

use serde_json::Value;

use crate::api::cloudsigner::error::ApiError;
use crate::directory::PersonAttributes;
use crate::domain::person::{PersonSource, PersonalNumber};
use crate::domain::PriorityGroup;
pub use crate::services::orders::PersonRequest;

/// Longest identifier accepted (an LDAP `attr=value` or a personal number is far shorter).
const MAX_IDENTIFIER: usize = 256;
/// Longest attribute value accepted.
const MAX_ATTRIBUTE: usize = 256;

/// Parses a person JSON (a solicitor or a signer). `what` names the field for messages.
pub fn parse_person(raw: &str, what: &str) -> Result<PersonRequest, ApiError> {
    let value = parse_json_field(raw, what)?;
    person_from_value(&value, what)
}

/// Parses a form field that holds JSON. Tolerates the value arriving as a JSON string that
/// itself holds the JSON (a client that quoted it once too often).
pub fn parse_json_field(raw: &str, what: &str) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_str(raw.trim())
        .map_err(|e| ApiError::validation(format!("field {what} is not valid JSON: {e}")))?;
    match value {
        Value::String(inner) if inner.trim_start().starts_with(['{', '[']) => {
            serde_json::from_str(&inner)
                .map_err(|e| ApiError::validation(format!("field {what} is not valid JSON: {e}")))
        }
        other => Ok(other),
    }
}

pub fn person_from_value(value: &Value, what: &str) -> Result<PersonRequest, ApiError> {
    let invalid =
        |why: String| ApiError::validation(format!("field {what} is not a person: {why}"));
    let object = value
        .as_object()
        .ok_or_else(|| invalid("expected a JSON object with source and identifier".into()))?;
    let source = object
        .get("source")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"source\" (INTERNAL or EXTERNAL) is missing".into()))?;
    let source: PersonSource = source.parse().map_err(|_| {
        invalid(format!(
            "source must be INTERNAL or EXTERNAL, not {source:?}"
        ))
    })?;
    let identifier = object
        .get("identifier")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("\"identifier\" is missing or empty".into()))?;
    if identifier.len() > MAX_IDENTIFIER || identifier.chars().any(char::is_control) {
        return Err(invalid(
            "the identifier is too long or has control characters".into(),
        ));
    }
    let identifier = match source {
        PersonSource::External => PersonalNumber::parse(identifier)
            .map_err(|e| {
                ApiError::validation(format!(
                    "field {what}: {identifier:?} is not a valid personal number: {e}"
                ))
            })?
            .as_str()
            .to_owned(),
        PersonSource::Internal => identifier.to_owned(),
    };
    let attributes = match object.get("attributes") {
        None | Some(Value::Null) => PersonAttributes::default(),
        Some(Value::Object(map)) => {
            let mut attributes = PersonAttributes::default();
            for (name, value) in map {
                let text = match value {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(inner) => match inner.get("value") {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Null) | None => None,
                        Some(other) => Some(other.to_string()),
                    },
                    Value::Null => None,
                    other => {
                        return Err(invalid(format!(
                            "attribute {name} must be {{\"value\": \"...\"}}, not {other}"
                        )))
                    }
                };
                let text = text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
                if text.as_ref().is_some_and(|t| t.len() > MAX_ATTRIBUTE) {
                    return Err(invalid(format!("attribute {name} is too long")));
                }
                match name.as_str() {
                    "mail" | "email" => attributes.mail = text,
                    "mobile" | "phone" => attributes.mobile = text,
                    "firstName" | "givenName" => attributes.first_name = text,
                    "lastName" | "sn" | "surname" => attributes.last_name = text,
                    // Other attributes are the reference's extension point; Signet keeps none.
                    _ => {}
                }
            }
            attributes
        }
        Some(other) => {
            return Err(invalid(format!(
                "\"attributes\" must be an object, not {other}"
            )))
        }
    };
    let priority_group = match object.get("priorityGroup") {
        None | Some(Value::Null) => PriorityGroup::FIRST,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| invalid("priorityGroup must be a whole number".into()))
            .and_then(|g| PriorityGroup::new(g).map_err(invalid))?,
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| invalid("priorityGroup must be a whole number".into()))
            .and_then(|g| PriorityGroup::new(g).map_err(invalid))?,
        Some(other) => {
            return Err(invalid(format!(
                "priorityGroup must be a number, not {other}"
            )))
        }
    };
    Ok(PersonRequest {
        source,
        identifier,
        attributes,
        priority_group,
    })
}
