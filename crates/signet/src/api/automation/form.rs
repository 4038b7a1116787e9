//! Reading Automation API bodies: the order form (multipart, through the one upload reader, with
//! the PDF streamed to a temporary file and counted against the upload limit) and the small bodies
//! that may come as JSON, as a URL-encoded form or as multipart fields.

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use serde_json::Value;

use crate::api::cloudsigner::error::{ApiError, ErrorCode};
use crate::api::upload::{FileIntake, PartHead, Received, ReceivedFile, TextBudget, UploadReader};
use crate::state::AppState;

/// Longest free-text or JSON field accepted (a description, a person's JSON, tags, an option).
pub(super) const MAX_TEXT_FIELD: usize = 64 * 1024;
/// Longest short field (a title, a due date, a link type, a state, anything unknown): as strict
/// as the CloudSigner upload's text parts.
const MAX_SHORT_FIELD: usize = 1024;
/// Most text, all fields together, in one form: without it 200 fields of 64 KiB would be 12 MiB.
const MAX_FORM_TEXT: usize = 1024 * 1024;
/// Most repeated fields (signers, tags, options) accepted in one request.
const MAX_REPEATED: usize = 200;

/// The limit of a text field, by name: only the fields that hold prose or JSON get
/// [`MAX_TEXT_FIELD`]; the spec gives none of them a size.
fn text_limit(name: &str) -> usize {
    match name {
        "description" | "solicitor" | "signers" | "tags" | "option" | "ldapSearch" => {
            MAX_TEXT_FIELD
        }
        _ => MAX_SHORT_FIELD,
    }
}

pub use crate::services::orders::UploadedFile;

/// Every field of an order form, as text, plus the file.
#[derive(Default)]
pub struct OrderForm {
    pub fields: Vec<(String, String)>,
    pub upload: Option<UploadedFile>,
}

impl OrderForm {
    /// The one value of a field; a repeated single field is refused.
    pub fn single(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.fields.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(ApiError::validation(format!(
                "field {name} may be given only once"
            )));
        }
        Ok(first)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the current part as a text field, within its [`text_limit`] and the form's budget
/// ([`MAX_FORM_TEXT`] of text in at most [`MAX_REPEATED`] fields).
async fn read_text_field(
    reader: &mut UploadReader,
    name: String,
    fields: &mut Vec<(String, String)>,
    budget: &mut TextBudget,
) -> Result<(), ApiError> {
    let text = reader.text_field(&name, text_limit(&name), budget).await?;
    fields.push((name, text));
    Ok(())
}

/// The text budget of one form.
const fn form_budget() -> TextBudget {
    TextBudget::new(MAX_FORM_TEXT, MAX_REPEATED)
}

/// Streams the current part (the PDF) into a temporary file, hashing and counting it, through
/// the reader's one file receiver.
async fn receive_upload(
    state: &AppState,
    reader: &mut UploadReader,
    head: &PartHead,
) -> Result<UploadedFile, ApiError> {
    let intake = FileIntake {
        limit: state.settings.max_upload_bytes,
        // The order service checks and stores the file from disk.
        in_memory_up_to: 0,
        sha256: true,
    };
    let received = reader.receive_file(&state.blobs, head, intake).await?;
    match received {
        ReceivedFile {
            content: Received::Spilled { temp, file },
            file_name,
            size,
            sha256: Some(sha256),
        } => Ok(UploadedFile {
            temp,
            file,
            file_name,
            size,
            sha256,
        }),
        _ => Err(ApiError::Internal(anyhow::anyhow!(
            "an order upload was received without its temporary file or digest"
        ))),
    }
}

/// Reads a multipart order form; the file field is `file_field` (`upload`).
pub async fn read_order_form(
    state: &AppState,
    mut reader: UploadReader,
    file_field: &str,
) -> Result<OrderForm, ApiError> {
    match read_form_parts(state, &mut reader, file_field).await {
        Ok(form) => Ok(form),
        Err(error) => Err(reader.refuse(error, state.settings.max_upload_bytes)),
    }
}

async fn read_form_parts(
    state: &AppState,
    reader: &mut UploadReader,
    file_field: &str,
) -> Result<OrderForm, ApiError> {
    let mut form = OrderForm::default();
    let mut budget = form_budget();
    while let Some(head) = reader.next_part().await? {
        let name = head.name.clone().unwrap_or_default();
        if name == file_field {
            if form.upload.is_some() {
                return Err(ApiError::validation(format!(
                    "field {file_field} may be given only once"
                )));
            }
            form.upload = Some(receive_upload(state, reader, &head).await?);
            continue;
        }
        read_text_field(reader, name, &mut form.fields, &mut budget).await?;
    }
    Ok(form)
}

/// A small request body in any of the forms the reference's clients send.
pub enum SmallBody {
    Json(Value),
    Fields(Vec<(String, String)>),
}

/// Reads a body that is JSON, URL-encoded, or multipart without files (files are refused).
pub async fn read_small_body(state: &AppState, request: Request) -> Result<SmallBody, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        // Counted by the reader: these routes keep the JSON limit, for multipart bodies too.
        let mut reader =
            UploadReader::new(request)?.with_body_limit(state.settings.max_json_bytes as u64);
        return match read_small_fields(&mut reader).await {
            Ok(fields) => Ok(SmallBody::Fields(fields)),
            Err(error) => Err(reader.refuse(error, state.settings.max_upload_bytes)),
        };
    }
    // Counted here, not by the route's body limit: `PUT /orders/{id}` disables that for its
    // multipart uploads, and a JSON or form body must stay small all the same.
    let limited = http_body_util::Limited::new(request.into_body(), state.settings.max_json_bytes);
    let bytes = match http_body_util::BodyExt::collect(limited).await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::Generic,
                "the request body is larger than this endpoint accepts",
            ))
        }
        Err(e) => {
            return Err(ApiError::generic(format!(
                "the request body could not be read: {e}"
            )))
        }
    };
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let fields: Vec<(String, String)> = serde_urlencoded_pairs(&bytes)?;
        return Ok(SmallBody::Fields(fields));
    }
    if content_type.starts_with("application/json") || content_type.is_empty() {
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::generic(format!("the body is not valid JSON: {e}")))?;
        return Ok(SmallBody::Json(value));
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Generic,
        format!("expected JSON, a URL-encoded form or multipart/form-data, not {content_type}"),
    ))
}

/// The text fields of a small multipart form (files are refused).
async fn read_small_fields(reader: &mut UploadReader) -> Result<Vec<(String, String)>, ApiError> {
    let mut fields = Vec::new();
    let mut budget = form_budget();
    while let Some(head) = reader.next_part().await? {
        let name = head.name.unwrap_or_default();
        if head.file_name.is_some() {
            return Err(ApiError::validation(format!(
                "field {name} must be text, not a file"
            )));
        }
        read_text_field(reader, name, &mut fields, &mut budget).await?;
    }
    Ok(fields)
}

/// Decodes `application/x-www-form-urlencoded` pairs.
fn serde_urlencoded_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| ApiError::generic("the form is not UTF-8"))?;
    let decode = |s: &str| -> Result<String, ApiError> {
        let s = s.replace('+', " ");
        let mut out = Vec::with_capacity(s.len());
        let mut bytes = s.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hi = bytes.next();
                let lo = bytes.next();
                let hex = [hi.unwrap_or(b'x'), lo.unwrap_or(b'x')];
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::generic("bad percent-encoding in the form"))?;
                out.push(value);
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).map_err(|_| ApiError::generic("the form is not UTF-8"))
    };
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}
