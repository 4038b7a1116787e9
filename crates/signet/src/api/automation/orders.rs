//! `/orders`: create a signing order from a form (PDF, solicitor, signers, due date, tags,
//! options), read it, poll its state, download its document, delete it, change it, replace its
//! signers, and read its events. Each handler parses the request, calls the order service and
//! maps its result; the service's typed errors become the one error body here.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::form::{read_order_form, read_small_body, OrderForm, SmallBody, MAX_TEXT_FIELD};
use super::people::{parse_json_field, parse_person, person_from_value, PersonRequest};
use crate::api::blob_download;
use crate::api::cloudsigner::error::{ApiError, ErrorCode};
use crate::api::cloudsigner::extract::ApiPath;
use crate::api::openapi::schemas::{
    ErrorBody, Order, OrderCreateForm, OrderEvent, OrderStateName, OrderUpdate, OrderUpdateForm,
    SignersReplacement, SignersReplacementForm,
};
use crate::api::upload::UploadReader;
use crate::domain::order::{default_due_date, parse_due_date};
use crate::domain::{LinkType, OrderId, OrderOption};
use crate::services::orders::{OrderDraft, OrderEdit, OrderError, PersonRefusal, UploadRefusal};
use crate::state::AppState;
use crate::store::orders::{OrderPerson, OrderRecord};

/// The one place an order operation's failure becomes the API's error body: not found, the
/// order's rules (ILLEGAL_OPERATION_ERROR), a document or people the request got wrong, or ours.
impl From<OrderError> for ApiError {
    fn from(error: OrderError) -> Self {
        match error {
            OrderError::NotFound(missing) => ApiError::not_found(missing.to_string()),
            OrderError::Rule(refusal) => ApiError::illegal(refusal.to_string()),
            OrderError::Upload(UploadRefusal::Pdf(error)) => ApiError::from_pdf(error),
            OrderError::Upload(refusal) => ApiError::document_upload(refusal.to_string()),
            OrderError::People(refusal @ PersonRefusal::DirectoryUnavailable) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Generic,
                refusal.to_string(),
            ),
            OrderError::People(refusal) => ApiError::validation(refusal.to_string()),
            OrderError::TimestampUnavailable(error) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TimestampUnavailable,
                format!("{error}; nothing was changed, try again later"),
            ),
            OrderError::Internal(error) => ApiError::Internal(error),
        }
    }
}

/// Longest title accepted.
const MAX_TITLE: usize = 1024;

fn parse_order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).map_err(|_| ApiError::not_found(format!("no order {raw}")))
}

fn parse_options<'a>(values: impl Iterator<Item = &'a str>) -> Result<Vec<OrderOption>, ApiError> {
    values
        .map(|raw| {
            let value = parse_json_field(raw, "option")?;
            OrderOption::from_json(&value)
                .map_err(|e| ApiError::validation(format!("field option: {e}")))
        })
        .collect()
}

fn signer_requests<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Vec<PersonRequest>, ApiError> {
    let signers = values
        .map(|raw| parse_person(raw, "signers"))
        .collect::<Result<Vec<_>, _>>()?;
    if signers.is_empty() {
        return Err(ApiError::validation(
            "at least one signers field is required",
        ));
    }
    Ok(signers)
}

fn required_title(raw: Option<&str>) -> Result<String, ApiError> {
    let title = raw
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::validation("field title is required"))?;
    check_title(title)
}

fn check_title(title: &str) -> Result<String, ApiError> {
    if title.len() > MAX_TITLE {
        return Err(ApiError::validation(format!(
            "title is longer than {MAX_TITLE} bytes"
        )));
    }
    Ok(title.to_owned())
}

/// `POST /orders`: answers the new order's GUID as text.
#[utoipa::path(
    post, path = "/orders", tag = "orders",
    request_body(content = OrderCreateForm, content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The new order's id", content((String = "text/plain"))),
        (status = 400, description = "A missing or malformed field, a person that cannot be found or is not valid, a document Signet cannot sign, a malformed multipart body", body = ErrorBody),
        (status = 413, description = "The document is larger than the upload limit", body = ErrorBody),
        (status = 415, description = "The body is not multipart/form-data with a boundary", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The directory, or a timestamp the signature level needs, cannot be reached now; or the document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(order.id))]
pub async fn create(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let reader = UploadReader::new(request)?;
    let mut form = read_order_form(&state, reader, "upload").await?;
    let now = state.clock.now();

    let title = required_title(form.single("title")?)?;
    let description = form.single("description")?.map(str::to_owned);
    let solicitor = form
        .single("solicitor")?
        .ok_or_else(|| ApiError::validation("field solicitor is required"))
        .and_then(|raw| parse_person(raw, "solicitor"))?;
    let signers = signer_requests(form.all("signers"))?;
    let due_at = match form
        .single("dueDate")?
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        Some(raw) => parse_due_date(raw, now).map_err(ApiError::validation)?,
        None => default_due_date(now, state.settings.default_due_days),
    };
    let link_type = match form.single("linkType")? {
        Some(raw) => LinkType::parse(raw).map_err(ApiError::validation)?,
        None => LinkType::OrderPage,
    };
    let tags = form
        .all("tags")
        .map(|raw| parse_json_field(raw, "tags"))
        .collect::<Result<Vec<Value>, _>>()?;
    let options = parse_options(form.all("option"))?;
    let upload = form
        .upload
        .take()
        .ok_or_else(|| ApiError::validation("field upload (the PDF) is required"))?;

    let draft = OrderDraft {
        title,
        description,
        due_at,
        link_type,
        tags,
        options,
        solicitor,
        signers,
    };
    let order_id = state.orders.create(draft, upload).await?;
    tracing::Span::current().record("order.id", tracing::field::display(&order_id));
    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        order_id.to_string(),
    )
        .into_response())
}

fn timestamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn person_json(person: &OrderPerson) -> serde_json::Map<String, Value> {
    let a = &person.attributes;
    let mut map = serde_json::Map::new();
    map.insert("internalId".into(), json!(person.internal_id));
    map.insert("source".into(), json!(person.source.as_str()));
    map.insert("identifier".into(), json!(person.identifier));
    map.insert("firstName".into(), json!(a.first_name));
    map.insert("lastName".into(), json!(a.last_name));
    map.insert("mail".into(), json!(a.mail));
    map.insert("mobile".into(), json!(a.mobile));
    map
}

/// The order as the API shows it.
pub fn order_json(state: &AppState, order: &OrderRecord) -> Value {
    let signers: Vec<Value> = order
        .signers
        .iter()
        .map(|s| {
            let mut map = person_json(&s.person);
            map.insert("priorityGroup".into(), json!(s.group.get()));
            map.insert("status".into(), json!(s.status.as_str()));
            map.insert("actionTimestamp".into(), json!(s.action_at.map(timestamp)));
            map.insert("rejectReason".into(), json!(s.reject_reason));
            map.insert(
                "signingUrl".into(),
                json!(state.orders.signing_url(order, s)),
            );
            Value::Object(map)
        })
        .collect();
    json!({
        "id": order.order_id.to_string(),
        "title": order.title,
        "description": order.description,
        "state": order.state.as_str(),
        "created": timestamp(order.created_at),
        "updated": timestamp(order.updated_at),
        "dueDate": timestamp(order.due_at),
        "linkType": order.link_type.as_i64(),
        "tags": order.tags,
        "options": order.options.iter().map(OrderOption::to_json).collect::<Vec<_>>(),
        "solicitor": Value::Object(person_json(&order.solicitor)),
        "signers": signers,
        "document": {
            "fileName": order.document.file_name,
            "size": order.document.size,
            "sha256": order.document.sha256.to_string(),
            "signatures": order.signatures,
        },
    })
}

async fn load(state: &AppState, raw: &str) -> Result<OrderRecord, ApiError> {
    Ok(state.orders.order(parse_order_id(raw)?).await?)
}

/// `GET /orders/{id}`.
#[utoipa::path(
    get, path = "/orders/{orderId}", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(state))]
pub async fn read(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let order = load(&state, &order_id).await?;
    Ok(Json(order_json(&state, &order)))
}

/// `GET /orders/{id}/state`: one word, as text.
#[utoipa::path(
    get, path = "/orders/{orderId}/state", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The order's state", content((OrderStateName = "text/plain"))),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
pub async fn order_state(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let order_state = state.orders.state(parse_order_id(&order_id)?).await?;
    Ok((
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        order_state.as_str(),
    )
        .into_response())
}

/// `GET /orders/{id}/document`: the PDF with every signature so far, with range requests.
#[utoipa::path(
    get, path = "/orders/{orderId}/document", tag = "orders",
    params(
        ("orderId" = String, Path, description = "The order's id (a UUID)"),
        ("Range" = Option<String>, Header, description = "`bytes=first-last`, one range or several"),
        ("If-Range" = Option<String>, Header, description = "The ETag the ranges are for"),
    ),
    responses(
        (status = 200, description = "The PDF", content((crate::api::openapi::schemas::Binary = "application/pdf"))),
        (status = 206, description = "The ranges asked for: one as application/pdf, several as multipart/byteranges", content(
            (crate::api::openapi::schemas::Binary = "application/pdf"),
            (crate::api::openapi::schemas::Binary = "multipart/byteranges"),
        )),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 416, description = "No range lies inside the file", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(state, headers))]
pub async fn document(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    let response = state
        .orders
        .serve_document(order_id, |source| {
            let (blobs, reads, headers) = (state.blobs.clone(), state.reads.clone(), &headers);
            async move {
                let etag = format!("\"{}\"", source.document.sha256);
                let document = &source.document;
                blob_download::serve(
                    &blobs,
                    &reads,
                    reads.read_at(),
                    blob_download::Download {
                        key: &document.blob,
                        len: document.size,
                        content_type: "application/pdf",
                        etag,
                    },
                    headers,
                )
                .await
            }
        })
        .await?;
    Ok(response)
}

/// `DELETE /orders/{id}`: the order, its tasks and its document bytes go; the events stay.
#[utoipa::path(
    delete, path = "/orders/{orderId}", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
#[tracing::instrument(skip(state))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.orders.delete(parse_order_id(&order_id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The fields of an update, from JSON or a form.
struct UpdateFields {
    title: Option<String>,
    description: Option<String>,
    due_date: Option<String>,
    state: Option<String>,
}

fn update_fields_from_form(form: &OrderForm) -> Result<UpdateFields, ApiError> {
    Ok(UpdateFields {
        title: form.single("title")?.map(str::to_owned),
        description: form.single("description")?.map(str::to_owned),
        due_date: form.single("dueDate")?.map(str::to_owned),
        state: form.single("state")?.map(str::to_owned),
    })
}

fn update_fields_from_json(value: &Value) -> Result<UpdateFields, ApiError> {
    let object = value
        .as_object()
        .ok_or_else(|| ApiError::validation("expected a JSON object"))?;
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ApiError::validation(format!(
                "{name} must be a string, not {other}"
            ))),
        }
    };
    for key in object.keys() {
        if !["title", "description", "dueDate", "state"].contains(&key.as_str()) {
            return Err(ApiError::validation(format!(
                "unknown field {key}; an order update takes title, description, dueDate, state (and upload as multipart)"
            )));
        }
    }
    Ok(UpdateFields {
        title: text("title")?,
        description: text("description")?,
        due_date: text("dueDate")?,
        state: text("state")?,
    })
}

/// `PUT /orders/{id}`: title, description, due date, a new document (while unsigned), or
/// `state: CANCELLED`. Answers the order.
#[utoipa::path(
    put, path = "/orders/{orderId}", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    request_body(content(
        (OrderUpdate = "application/json"),
        (OrderUpdate = "application/x-www-form-urlencoded"),
        (OrderUpdateForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The order as changed", body = Order),
        (status = 400, description = "A malformed field or body, a change the order's state does not allow, a document Signet cannot sign", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 413, description = "The body (or the document) is larger than its limit", body = ErrorBody),
        (status = 415, description = "Not JSON, a URL-encoded form or multipart/form-data", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "A timestamp the signature level needs cannot be had now, or the document store (object storage) is unavailable (`STORAGE_UNAVAILABLE`)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    let now = state.clock.now();
    let (fields, upload) = if is_multipart(&request) {
        let reader = UploadReader::new(request)?;
        let mut form = read_order_form(&state, reader, "upload").await?;
        (update_fields_from_form(&form)?, form.upload.take())
    } else {
        match read_small_body(&state, request).await? {
            SmallBody::Json(value) => (update_fields_from_json(&value)?, None),
            SmallBody::Fields(fields) => {
                let form = OrderForm {
                    fields,
                    upload: None,
                };
                (update_fields_from_form(&form)?, None)
            }
        }
    };
    let cancel = match fields.state.as_deref().map(str::trim) {
        None | Some("") => false,
        Some("CANCELLED") | Some("CANCELED") => true,
        Some(other) => {
            return Err(ApiError::validation(format!(
                "state may only be set to CANCELLED, not {other:?}"
            )))
        }
    };
    let edit = OrderEdit {
        title: fields
            .title
            .as_deref()
            .map(str::trim)
            .map(check_title)
            .transpose()?,
        description: fields.description,
        due_at: fields
            .due_date
            .as_deref()
            .map(|raw| parse_due_date(raw, now).map_err(ApiError::validation))
            .transpose()?,
        cancel,
    };
    if edit
        .description
        .as_ref()
        .is_some_and(|d| d.len() > MAX_TEXT_FIELD)
    {
        return Err(ApiError::validation(format!(
            "description is longer than {MAX_TEXT_FIELD} bytes"
        )));
    }
    if edit.title.as_deref() == Some("") {
        return Err(ApiError::validation("title may not be empty"));
    }
    let order = state.orders.update(order_id, edit, upload).await?;
    Ok(Json(order_json(&state, &order)))
}

/// `PUT /orders/{id}/signers`: replaces the signer list (JSON `{"signers": [...], "option":
/// [...]}` or form fields `signers` and `option`). Answers the order.
#[utoipa::path(
    put, path = "/orders/{orderId}/signers", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    request_body(content(
        (SignersReplacement = "application/json"),
        (SignersReplacementForm = "application/x-www-form-urlencoded"),
        (SignersReplacementForm = "multipart/form-data"),
    )),
    responses(
        (status = 200, description = "The order with its new signers", body = Order),
        (status = 400, description = "A malformed person or option, a replacement the order's rules refuse", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 413, description = "The body is larger than the JSON limit", body = ErrorBody),
        (status = 415, description = "Not JSON, a URL-encoded form or multipart/form-data", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
        (status = 503, description = "The directory cannot be reached now", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn replace_signers(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
    request: Request,
) -> Result<Json<Value>, ApiError> {
    let order_id = parse_order_id(&order_id)?;
    let (signers, options) = match read_small_body(&state, request).await? {
        SmallBody::Fields(fields) => {
            let form = OrderForm {
                fields,
                upload: None,
            };
            (
                signer_requests(form.all("signers"))?,
                parse_options(form.all("option"))?,
            )
        }
        SmallBody::Json(value) => {
            let list = match &value {
                Value::Array(list) => list.clone(),
                Value::Object(object) => match object.get("signers") {
                    Some(Value::Array(list)) => list.clone(),
                    _ => {
                        return Err(ApiError::validation(
                            "expected {\"signers\": [person, ...]}",
                        ))
                    }
                },
                _ => {
                    return Err(ApiError::validation(
                        "expected {\"signers\": [person, ...]}",
                    ))
                }
            };
            let signers = list
                .iter()
                .map(|v| person_from_value(v, "signers"))
                .collect::<Result<Vec<_>, _>>()?;
            if signers.is_empty() {
                return Err(ApiError::validation("at least one signer is required"));
            }
            let options = match value.get("option").or_else(|| value.get("options")) {
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|v| OrderOption::from_json(v).map_err(ApiError::validation))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(single @ Value::Object(_)) => {
                    vec![OrderOption::from_json(single).map_err(ApiError::validation)?]
                }
                None | Some(Value::Null) => Vec::new(),
                Some(other) => {
                    return Err(ApiError::validation(format!(
                        "option must be an object, not {other}"
                    )))
                }
            };
            (signers, options)
        }
    };
    let order = state
        .orders
        .replace_signers(order_id, &signers, (!options.is_empty()).then_some(options))
        .await?;
    Ok(Json(order_json(&state, &order)))
}

/// `GET /orders/{id}/events` (additive): the order's audit trail, oldest first.
#[utoipa::path(
    get, path = "/orders/{orderId}/events", tag = "orders", params(("orderId" = String, Path, description = "The order's id (a UUID)")),
    responses(
        (status = 200, description = "The events, oldest first", body = Vec<OrderEvent>),
        (status = 400, description = "A malformed path", body = ErrorBody),
        (status = 404, description = "No such order", body = ErrorBody),
        (status = 500, description = "Signet's fault", body = ErrorBody),
    )
)]
pub async fn events(
    State(state): State<AppState>,
    ApiPath(order_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let events = state.orders.events(parse_order_id(&order_id)?).await?;
    Ok(Json(Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "event": e.event,
                    "time": timestamp(e.at),
                    "actor": e.actor,
                    "orderId": e.order_id,
                    "details": e.details,
                })
            })
            .collect(),
    )))
}
