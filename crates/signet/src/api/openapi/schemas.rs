//! Schemas for what the handlers build by hand (`serde_json::json!`) or read field by field (the
//! error body, orders, events, deliveries, the multipart forms). They exist only to be described:
//! nothing serializes them. `tests/api/openapi.rs` checks served bodies against them, so a change
//! to a handler's JSON that is not made here too fails the suite.

#![allow(dead_code)] // The fields are read by the schema derive only.

use utoipa::ToSchema;

/// The one error body of every Signet API: `{"status": "ERROR", "responseObject": {...}}`.
#[derive(ToSchema)]
#[schema(as = ErrorBody)]
pub struct ErrorBody {
    status: ErrorStatus,
    #[schema(rename = "responseObject")]
    response_object: ErrorObject,
}

/// Always `ERROR`.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum ErrorStatus {
    Error,
}

/// What went wrong: one of the documented codes and a message that says what to fix.
#[derive(ToSchema)]
pub struct ErrorObject {
    code: ErrorCodeName,
    message: String,
}

/// The documented error codes.
#[derive(ToSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum ErrorCodeName {
    ERROR_GENERIC,
    ERROR_UNAUTHORIZED,
    ERROR_RESOURCE_NOT_FOUND,
    REQUEST_VALIDATION_ERROR,
    ILLEGAL_OPERATION_ERROR,
    CSR_INVALID_SIGNATURE_ERROR,
    DOCUMENT_UPLOAD_ERROR,
    DOCUMENT_INVALID_SIGNATURE_ERROR,
    TIMESTAMP_UNAVAILABLE,
    STORAGE_UNAVAILABLE,
}

/// `OK`, or `FAIL` with a reason (a refused key, a signer that cannot be enrolled again).
#[derive(ToSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum ResultCode {
    OK,
    FAIL,
}

/// A signer's status.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum SignerStatusName {
    Active,
    Blocked,
    Removed,
    Revoked,
    Expired,
}

/// Why a certificate was issued.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum IssuedForName {
    Enrollment,
    Renewal,
}

/// `POST /documents` (multipart/form-data).
#[derive(ToSchema)]
pub struct DocumentUploadForm {
    /// The signer who signs it (`externalSignerId` is accepted as the same field).
    #[schema(rename = "signerId")]
    signer_id: String,
    /// The client's own reference, given back as it was sent.
    #[schema(rename = "externalId")]
    external_id: Option<String>,
    /// A display name.
    name: Option<String>,
    /// The PDF, as a file part declared `Content-Type: application/pdf`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

// ---- Automation API -------------------------------------------------------------------------

/// An order's state.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum OrderStateName {
    Pending,
    Accepted,
    Rejected,
    Cancelled,
    Expired,
}

/// A signer's task in an order.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum TaskStatusName {
    Pending,
    Queued,
    Signed,
    Rejected,
}

/// Where a person comes from: the organisation directory or a personal identity number.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum PersonSourceName {
    Internal,
    External,
}

/// The order's solicitor as the API shows it.
#[derive(ToSchema)]
pub struct OrderSolicitor {
    #[schema(rename = "internalId", format = Uuid)]
    internal_id: String,
    source: PersonSourceName,
    identifier: String,
    #[schema(rename = "firstName", required = true)]
    first_name: Option<String>,
    #[schema(rename = "lastName", required = true)]
    last_name: Option<String>,
    #[schema(required = true)]
    mail: Option<String>,
    #[schema(required = true)]
    mobile: Option<String>,
}

/// A signer of an order as the API shows it.
#[derive(ToSchema)]
pub struct OrderSigner {
    #[schema(rename = "internalId", format = Uuid)]
    internal_id: String,
    source: PersonSourceName,
    identifier: String,
    #[schema(rename = "firstName", required = true)]
    first_name: Option<String>,
    #[schema(rename = "lastName", required = true)]
    last_name: Option<String>,
    #[schema(required = true)]
    mail: Option<String>,
    #[schema(required = true)]
    mobile: Option<String>,
    /// 1 signs first.
    #[schema(rename = "priorityGroup", minimum = 1)]
    priority_group: i64,
    status: TaskStatusName,
    /// When the signer signed or rejected.
    #[schema(rename = "actionTimestamp", required = true, format = DateTime)]
    action_timestamp: Option<String>,
    #[schema(rename = "rejectReason", required = true)]
    reject_reason: Option<String>,
    /// The signer's link while it can act.
    #[schema(rename = "signingUrl", required = true)]
    signing_url: Option<String>,
}

/// An option of an order: `notifyAllSigners` (boolean) or `signerAuthentication` (`link`,
/// `email-otp`).
#[derive(ToSchema)]
pub struct OrderOptionBody {
    name: String,
    #[schema(value_type = Value)]
    value: serde_json::Value,
}

/// The order's document.
#[derive(ToSchema)]
pub struct OrderDocument {
    #[schema(rename = "fileName")]
    file_name: String,
    #[schema(minimum = 0)]
    size: u64,
    /// Hex SHA-256 of the file as uploaded.
    sha256: String,
    /// Signatures in it so far.
    #[schema(minimum = 0)]
    signatures: u32,
}

/// A signing order (`GET /orders/{orderId}`, and the answer of every change).
#[derive(ToSchema)]
pub struct Order {
    #[schema(format = Uuid)]
    id: String,
    title: String,
    #[schema(required = true)]
    description: Option<String>,
    state: OrderStateName,
    #[schema(format = DateTime)]
    created: String,
    #[schema(format = DateTime)]
    updated: String,
    #[schema(rename = "dueDate", format = DateTime)]
    due_date: String,
    /// 0: the link opens the order page; 1: it goes straight to signing.
    #[schema(rename = "linkType", minimum = 0, maximum = 1)]
    link_type: i64,
    /// The client's tags, as given.
    #[schema(value_type = Vec<Value>)]
    tags: Vec<serde_json::Value>,
    options: Vec<OrderOptionBody>,
    solicitor: OrderSolicitor,
    signers: Vec<OrderSigner>,
    document: OrderDocument,
}

/// An entry of an order's audit trail.
#[derive(ToSchema)]
pub struct OrderEvent {
    /// `ORDER_CREATED`, `ORDER_SIGNED`, …
    event: String,
    #[schema(format = DateTime)]
    time: String,
    #[schema(required = true)]
    actor: Option<String>,
    #[schema(rename = "orderId", required = true)]
    order_id: Option<String>,
    #[schema(value_type = Value)]
    details: serde_json::Value,
}

/// A message's channel.
#[derive(ToSchema)]
#[schema(rename_all = "UPPERCASE")]
pub enum ChannelName {
    Mail,
    Webhook,
}

/// Where a message stands.
#[derive(ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    GaveUp,
}

/// A mail or webhook message of an order, with its attempts.
#[derive(ToSchema)]
pub struct Delivery {
    id: i64,
    channel: ChannelName,
    kind: String,
    #[schema(rename = "eventId", required = true)]
    event_id: Option<i64>,
    /// `signer:<n>`, `solicitor` or a webhook URL; never an address.
    recipient: String,
    #[schema(minimum = 0)]
    attempts: u32,
    status: DeliveryStatus,
    #[schema(rename = "lastError", required = true)]
    last_error: Option<String>,
    #[schema(format = DateTime)]
    created: String,
    #[schema(rename = "nextAttempt", required = true, format = DateTime)]
    next_attempt: Option<String>,
    #[schema(required = true, format = DateTime)]
    delivered: Option<String>,
    #[schema(rename = "gaveUp", required = true, format = DateTime)]
    gave_up: Option<String>,
}

/// `POST /anonymize`'s answer.
#[derive(ToSchema)]
pub struct Anonymized {
    anonymized: bool,
    /// The person's new internal id.
    #[schema(rename = "internalId", format = Uuid)]
    internal_id: String,
}

/// A person in a request: looked up in the directory by source and identifier; `attributes`
/// fill what the lookup does not yield.
#[derive(ToSchema)]
pub struct PersonInput {
    source: PersonSourceName,
    /// `attribute=value` or a bare value (INTERNAL); a personal identity number (EXTERNAL).
    #[schema(max_length = 256)]
    identifier: String,
    /// `mail`, `mobile`, `firstName`, `lastName`, each `{"value": "..."}` or a string.
    #[schema(value_type = Object)]
    attributes: Option<serde_json::Value>,
    /// 1 (default) signs first.
    #[schema(rename = "priorityGroup", minimum = 1)]
    priority_group: Option<i64>,
}

/// `POST /orders` (multipart/form-data; `solicitor`, `signers`, `tags` and `option` hold JSON).
#[derive(ToSchema)]
pub struct OrderCreateForm {
    #[schema(max_length = 1024)]
    title: String,
    description: Option<String>,
    /// A person JSON.
    solicitor: String,
    /// One person JSON per signer (repeat the field).
    signers: Vec<String>,
    /// `YYYY-MM-DDThh:mm:ss` (UTC) or RFC 3339 with an offset; in the future.
    #[schema(rename = "dueDate")]
    due_date: Option<String>,
    /// `0` or `1`.
    #[schema(rename = "linkType")]
    link_type: Option<String>,
    /// JSON values, one per field.
    tags: Option<Vec<String>>,
    /// `{"name": ..., "value": ...}` JSON, one per field.
    option: Option<Vec<String>>,
    /// The PDF.
    #[schema(value_type = String, format = Binary)]
    upload: Vec<u8>,
}

/// `PUT /orders/{orderId}`: any of these (as JSON, a URL-encoded form, or multipart with
/// `upload` to replace the document while nobody has signed).
#[derive(ToSchema)]
pub struct OrderUpdate {
    title: Option<String>,
    description: Option<String>,
    #[schema(rename = "dueDate")]
    due_date: Option<String>,
    /// Only `CANCELLED`.
    state: Option<String>,
}

/// `PUT /orders/{orderId}` as multipart.
#[derive(ToSchema)]
pub struct OrderUpdateForm {
    title: Option<String>,
    description: Option<String>,
    #[schema(rename = "dueDate")]
    due_date: Option<String>,
    state: Option<String>,
    #[schema(value_type = Option<String>, format = Binary)]
    upload: Option<Vec<u8>>,
}

/// `PUT /orders/{orderId}/signers` as JSON (a bare array of people is accepted too).
#[derive(ToSchema)]
pub struct SignersReplacement {
    signers: Vec<PersonInput>,
    option: Option<Vec<OrderOptionBody>>,
}

/// `PUT /orders/{orderId}/signers` as a form: one person JSON per `signers` field.
#[derive(ToSchema)]
pub struct SignersReplacementForm {
    signers: Vec<String>,
    option: Option<Vec<String>>,
}

/// `POST /anonymize`: exactly one of the three.
#[derive(ToSchema)]
pub struct AnonymizeInput {
    #[schema(rename = "internalId")]
    internal_id: Option<String>,
    /// `INTERNAL:jane.doe`, `EXTERNAL:200001011907`.
    #[schema(rename = "externalId")]
    external_id: Option<String>,
    /// A person JSON (as an object, or as a string holding it).
    #[schema(rename = "ldapSearch", value_type = Value)]
    ldap_search: Option<serde_json::Value>,
}

/// Bytes as they are: a file, a DER structure.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(Vec<u8>);
