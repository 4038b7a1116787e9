//! One way in for uploads: the streaming `multipart/form-data` reader both APIs use
//! (`POST /documents`, `POST /orders`, `PUT /orders/{id}`, and the small multipart forms).
//!
//! The upload routes lift the router's body limit (a PDF may be 50 MB), so whatever reads their
//! bodies must hold its own limits while the bytes arrive, never after buffering them: a part's
//! header block (8 KiB), the number of parts (256), the boundary (RFC 2046: at most 70 bytes),
//! the bytes before the first boundary (8 KiB), each text part (its caller's limit, and the form's
//! [`TextBudget`], see [`UploadReader::text_field`]), and the file (counted against
//! `max_upload_bytes` while it streams to memory or a temporary blob, see
//! [`UploadReader::receive_file`]). Both APIs take their text and file parts through these two
//! functions, so the limits and the error bodies are the same for each. A general-purpose
//! parser that buffered a header block or a text part whole let one request cost hundreds of MiB.
//!
//! Two layers: [`MultipartParser`], a pure, synchronous, incremental parser (feed bytes, take
//! events) that property tests and fuzzers drive directly, and [`UploadReader`], a thin async
//! adapter that feeds it the request body one frame at a time, so memory stays at one frame plus
//! one header block whatever the client sends.

use axum::body::{BodyDataStream, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use bytes::BytesMut;
use futures::StreamExt;
use memchr::memmem;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

use crate::api::cloudsigner::error::{ApiError, ErrorCode};
use crate::domain::Sha256Digest;
pub use crate::services::received::{Received, ReceivedFile};
use crate::store::blob_backend::Blobs;
use crate::store::blobs::TempBlob;

/// Longest boundary RFC 2046 (§5.1.1) allows.
pub const MAX_BOUNDARY: usize = 70;

/// The limits a [`MultipartParser`] holds while it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    /// Longest header block of one part (its header lines, without the blank line that ends
    /// them); also the most bytes accepted before the first boundary and as transport padding.
    pub max_header_block: usize,
    /// Most parts in one body.
    pub max_parts: usize,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            max_header_block: 8 * 1024,
            max_parts: 256,
        }
    }
}

/// Why a body is not a `multipart/form-data` body Signet reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("the boundary must be 1 to {MAX_BOUNDARY} visible ASCII characters")]
    InvalidBoundary,
    #[error("a part's headers are longer than {0} bytes")]
    HeadersTooLong(usize),
    #[error("the form has more than {0} parts")]
    TooManyParts(usize),
    #[error("more than {0} bytes come before the first boundary")]
    PreambleTooLong(usize),
    #[error("the body ended before its closing boundary")]
    Truncated,
    #[error("{0}")]
    Malformed(&'static str),
}

/// What a part's headers say about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartHead {
    /// `Content-Disposition: form-data; name="…"`.
    pub name: Option<String>,
    /// `filename="…"` (or `filename*=UTF-8''…`), as sent: callers strip any path.
    pub file_name: Option<String>,
    /// `Content-Type`, as sent.
    pub content_type: Option<String>,
}

/// What the parser has found in the bytes fed so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new part begins; its [`Event::Data`] follow, then [`Event::PartEnd`].
    Part(PartHead),
    /// Some bytes of the current part's body (never empty).
    Data(Bytes),
    /// The current part's body is complete.
    PartEnd,
    /// The closing boundary: the form is complete (anything after it is ignored).
    End,
}

#[derive(Debug)]
enum State {
    /// Before the first boundary; `at_start` while it may still open the body without a CRLF.
    Preamble {
        at_start: bool,
        seen: usize,
    },
    /// Just after a boundary: `--` (the close) or padding and CRLF (a part) follow.
    AfterDelimiter,
    /// In a header block; `scanned` bytes are known to hold no blank line.
    Headers {
        scanned: usize,
    },
    Body,
    End,
    Failed(MultipartError),
}

/// A pure, incremental `multipart/form-data` parser: [`feed`](Self::feed) it bytes,
/// [`finish`](Self::finish) it at the end of the body, and take [`Event`]s with
/// [`next_event`](Self::next_event) until it asks for more (`Ok(None)`).
///
/// It buffers at most what it was fed since the last events were taken plus one header block
/// (bounded by [`MultipartLimits::max_header_block`]): part bodies are handed out as they come,
/// keeping back only bytes that may be the start of a boundary.
#[derive(Debug)]
pub struct MultipartParser {
    /// `CRLF--boundary`: what ends a part's body.
    delimiter: Box<[u8]>,
    finder: memmem::Finder<'static>,
    limits: MultipartLimits,
    buf: BytesMut,
    state: State,
    parts: usize,
    eof: bool,
}

impl MultipartParser {
    /// A parser for a body with this boundary (the `boundary` parameter of its `Content-Type`).
    pub fn new(boundary: &[u8], limits: MultipartLimits) -> Result<Self, MultipartError> {
        let visible = |b: &u8| b.is_ascii_graphic() || *b == b' ';
        if boundary.is_empty()
            || boundary.len() > MAX_BOUNDARY
            || !boundary.iter().all(visible)
            || boundary.ends_with(b" ")
        {
            return Err(MultipartError::InvalidBoundary);
        }
        let delimiter: Box<[u8]> = [b"\r\n--".as_slice(), boundary].concat().into();
        let finder = memmem::Finder::new(&delimiter[..]).into_owned();
        Ok(MultipartParser {
            delimiter,
            finder,
            limits,
            buf: BytesMut::new(),
            state: State::Preamble {
                at_start: true,
                seen: 0,
            },
            parts: 0,
            eof: false,
        })
    }

    /// Appends the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Says the body has ended: from now on, a form without its closing boundary is an error.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The closing boundary has been read.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::End)
    }

    /// The next event, or `Ok(None)` when more bytes are needed (never after [`finish`](Self::finish)
    /// unless the form is complete). An error is final: every later call returns it again.
    pub fn next_event(&mut self) -> Result<Option<Event>, MultipartError> {
        let result = match self.step() {
            Ok(None) if self.eof && !self.is_complete() => Err(MultipartError::Truncated),
            other => other,
        };
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
        }
        result
    }

    fn step(&mut self) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Failed(ref error) => return Err(error.clone()),
                State::End => return Ok(None),
                State::Preamble { at_start, seen } => {
                    if !self.preamble(at_start, seen)? {
                        return Ok(None);
                    }
                }
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if self.buf.starts_with(b"--") {
                        self.state = State::End;
                        return Ok(Some(Event::End));
                    }
                    let padding = self
                        .buf
                        .iter()
                        .take_while(|&&b| b == b' ' || b == b'\t')
                        .count();
                    if padding > self.limits.max_header_block {
                        return Err(MultipartError::HeadersTooLong(self.limits.max_header_block));
                    }
                    match self.buf.get(padding..padding + 2) {
                        Some(b"\r\n") => {}
                        Some(_) => {
                            return Err(MultipartError::Malformed(
                                "a boundary line must end with CRLF",
                            ))
                        }
                        None if self.buf.get(padding).is_none_or(|&b| b == b'\r') => {
                            return Ok(None)
                        }
                        None => {
                            return Err(MultipartError::Malformed(
                                "a boundary line must end with CRLF",
                            ))
                        }
                    }
                    let _ = self.buf.split_to(padding + 2);
                    self.parts += 1;
                    if self.parts > self.limits.max_parts {
                        return Err(MultipartError::TooManyParts(self.limits.max_parts));
                    }
                    self.state = State::Headers { scanned: 0 };
                }
                State::Headers { scanned } => return self.headers(scanned),
                State::Body => return Ok(self.body()),
            }
        }
    }

    /// Skips the preamble up to the first boundary; `false` when more bytes are needed.
    fn preamble(&mut self, at_start: bool, seen: usize) -> Result<bool, MultipartError> {
        let max = self.limits.max_header_block;
        if at_start {
            // The first boundary usually opens the body, without the CRLF of a delimiter.
            let dash_boundary = &self.delimiter[2..];
            if self.buf.len() < dash_boundary.len() && dash_boundary.starts_with(&self.buf) {
                return Ok(false);
            }
            if self.buf.starts_with(dash_boundary) {
                let _ = self.buf.split_to(dash_boundary.len());
                self.state = State::AfterDelimiter;
                return Ok(true);
            }
        }
        match self.finder.find(&self.buf) {
            Some(at) => {
                if seen + at > max {
                    return Err(MultipartError::PreambleTooLong(max));
                }
                let _ = self.buf.split_to(at + self.delimiter.len());
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            None => {
                let keep = self.buf.len().min(self.delimiter.len() - 1);
                let dropped = self.buf.len() - keep;
                let _ = self.buf.split_to(dropped);
                let seen = seen + dropped;
                if seen > max {
                    return Err(MultipartError::PreambleTooLong(max));
                }
                self.state = State::Preamble {
                    at_start: false,
                    seen,
                };
                Ok(false)
            }
        }
    }

    /// Reads a part's header block once its blank line has arrived.
    fn headers(&mut self, scanned: usize) -> Result<Option<Event>, MultipartError> {
        let max = self.limits.max_header_block;
        // A part without headers: the blank line comes at once.
        let end = if self.buf.starts_with(b"\r\n") {
            Some(0)
        } else {
            let window = &self.buf[..self.buf.len().min(max + 4)];
            let from = scanned.saturating_sub(3).min(window.len());
            memmem::find(&window[from..], b"\r\n\r\n").map(|at| from + at)
        };
        let Some(end) = end else {
            if self.buf.len() >= max + 4 {
                return Err(MultipartError::HeadersTooLong(max));
            }
            self.state = State::Headers {
                scanned: self.buf.len(),
            };
            return Ok(None);
        };
        if end > max {
            return Err(MultipartError::HeadersTooLong(max));
        }
        let block = self.buf.split_to(end);
        let _ = self.buf.split_to(if end == 0 { 2 } else { 4 });
        let head = parse_head(&block)?;
        self.state = State::Body;
        Ok(Some(Event::Part(head)))
    }

    /// Hands out the body bytes that cannot be part of the next delimiter.
    fn body(&mut self) -> Option<Event> {
        match self.finder.find(&self.buf) {
            Some(0) => {
                let _ = self.buf.split_to(self.delimiter.len());
                self.state = State::AfterDelimiter;
                Some(Event::PartEnd)
            }
            Some(at) => Some(Event::Data(self.buf.split_to(at).freeze())),
            None => {
                // Keep back only a tail that may begin a delimiter.
                let len = self.buf.len();
                let tail_from = len.saturating_sub(self.delimiter.len() - 1);
                let keep_from = (tail_from..len)
                    .find(|&i| self.buf[i] == b'\r' && self.delimiter.starts_with(&self.buf[i..]))
                    .unwrap_or(len);
                (keep_from > 0).then(|| Event::Data(self.buf.split_to(keep_from).freeze()))
            }
        }
    }
}

fn malformed_header() -> MultipartError {
    MultipartError::Malformed("a part header line is not `name: value`")
}

/// Parses a part's header lines (CRLF-separated; obsolete folding accepted).
fn parse_head(block: &[u8]) -> Result<PartHead, MultipartError> {
    let mut headers: Vec<(&[u8], Vec<u8>)> = Vec::new();
    if !block.is_empty() {
        for line in memmem::find_iter(block, b"\r\n")
            .chain(std::iter::once(block.len()))
            .scan(0, |start, end| {
                let line = &block[*start..end];
                *start = end + 2;
                Some(line)
            })
        {
            if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                let (_, value) = headers.last_mut().ok_or_else(malformed_header)?;
                value.push(b' ');
                value.extend_from_slice(line.trim_ascii());
                continue;
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(malformed_header)?;
            let name = &line[..colon];
            let is_token = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
            if name.is_empty() || !name.iter().all(is_token) {
                return Err(malformed_header());
            }
            headers.push((name, line[colon + 1..].trim_ascii().to_vec()));
        }
    }
    let mut head = PartHead::default();
    let value = |wanted: &str| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted.as_bytes()))
            .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
    };
    if let Some(disposition) = value("content-disposition") {
        let params = disposition_params(&disposition);
        let param = |wanted: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.clone())
        };
        head.name = param("name");
        head.file_name = param("filename*")
            .and_then(|extended| decode_extended(&extended))
            .or_else(|| param("filename"));
    }
    head.content_type = value("content-type");
    Ok(head)
}

/// The `name=value` parameters after the disposition type; quoted values are unquoted (only
/// `\"` and `\\` are escapes: browsers send Windows paths with bare backslashes).
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = value.split_once(';').map_or("", |(_, rest)| rest);
    while !rest.is_empty() {
        let name_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        let Some(after) = rest[name_end..].strip_prefix('=') else {
            // A parameter without a value.
            rest = rest.get(name_end + 1..).unwrap_or("");
            continue;
        };
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((at, c)) = chars.next() {
                match c {
                    '"' => {
                        end = at + 1;
                        break;
                    }
                    '\\' if matches!(quoted[at + 1..].chars().next(), Some('"' | '\\')) => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    c => value.push(c),
                }
            }
            let next = quoted[end..].split_once(';').map_or("", |(_, next)| next);
            (value, next)
        } else {
            let (value, next) = after.split_once(';').unwrap_or((after, ""));
            (value.trim().to_owned(), next)
        };
        params.push((name.trim().to_owned(), value));
        rest = next;
    }
    params
}

/// Decodes an RFC 8187 `UTF-8''percent-encoded` value; other charsets are left to `filename`.
fn decode_extended(value: &str) -> Option<String> {
    let (charset, rest) = value.split_once('\'')?;
    let (_language, encoded) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&hi), Some(&lo)) if hex(hi).is_some() && hex(lo).is_some() => {
                decoded.push((hex(hi)? * 16 + hex(lo)?) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&decoded).into_owned())
}

/// The boundary of a `multipart/form-data` content type; `None` for any other type, or when the
/// boundary parameter is missing.
pub fn boundary_of(content_type: &str) -> Option<String> {
    let (media_type, params) = content_type.split_once(';')?;
    if !media_type
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    disposition_params(&format!(";{params}"))
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
}

/// One part of a complete form, as [`parse_complete`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub head: PartHead,
    pub body: Vec<u8>,
}

/// Parses a whole body held in memory: for tests and fuzzers, which feed it in `chunk`-byte
/// pieces (at least 1) to exercise every split.
pub fn parse_complete(
    boundary: &[u8],
    body: &[u8],
    chunk: usize,
    limits: MultipartLimits,
) -> Result<Vec<Part>, MultipartError> {
    let mut parser = MultipartParser::new(boundary, limits)?;
    let mut parts: Vec<Part> = Vec::new();
    let mut pieces = body.chunks(chunk.max(1));
    loop {
        match parser.next_event()? {
            Some(Event::Part(head)) => parts.push(Part {
                head,
                body: Vec::new(),
            }),
            Some(Event::Data(bytes)) => {
                let part = parts
                    .last_mut()
                    .ok_or(MultipartError::Malformed("data outside a part"))?;
                part.body.extend_from_slice(&bytes);
            }
            Some(Event::PartEnd) => {}
            Some(Event::End) => return Ok(parts),
            None => match pieces.next() {
                Some(piece) => parser.feed(piece),
                None => parser.finish(),
            },
        }
    }
}

/// Why an upload was refused; [`ApiError`] gives each its status and code.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("expected a multipart/form-data body with a boundary, not {0:?}")]
    NotMultipart(String),
    #[error("malformed multipart body: {0}")]
    Malformed(#[from] MultipartError),
    #[error("field {name} is longer than {limit} bytes")]
    FieldTooLong { name: String, limit: usize },
    #[error("the request body is larger than this endpoint accepts")]
    BodyTooLarge,
    #[error("the request body could not be read: {0}")]
    Body(String),
    #[error("the form's text fields are longer than {limit} bytes together")]
    FormTextTooLong { limit: usize },
    #[error("too many fields in one request")]
    TooManyFields,
    #[error("the document is larger than the limit of {limit} bytes")]
    FileTooLarge { limit: u64 },
    /// Writing the received file failed: Signet's fault, not the client's.
    #[error("{0}: {1}")]
    Storage(&'static str, #[source] std::io::Error),
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let message = error.to_string();
        match error {
            UploadError::NotMultipart(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::Generic,
                message,
            ),
            UploadError::Malformed(error @ MultipartError::TooManyParts(_)) => {
                ApiError::validation(error.to_string())
            }
            UploadError::FieldTooLong { .. }
            | UploadError::FormTextTooLong { .. }
            | UploadError::TooManyFields => ApiError::validation(message),
            UploadError::BodyTooLarge => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::Generic, message)
            }
            UploadError::Malformed(_) | UploadError::Body(_) => ApiError::generic(message),
            UploadError::FileTooLarge { limit } => ApiError::document_too_large(limit),
            UploadError::Storage(context, error) => {
                ApiError::Internal(anyhow::Error::new(error).context(context))
            }
        }
    }
}

/// Reads a `multipart/form-data` request body part by part, with [`MultipartLimits`] held while
/// it streams. Take a part with [`next_part`](Self::next_part), then read it with
/// [`chunk`](Self::chunk) or [`text`](Self::text); `next_part` skips whatever of the current part
/// was not read.
pub struct UploadReader {
    body: BodyDataStream,
    parser: MultipartParser,
    in_part: bool,
    received: u64,
    max_body: Option<u64>,
}

impl UploadReader {
    /// A reader for `request`, refused unless it is `multipart/form-data` with a valid boundary.
    pub fn new(request: Request) -> Result<Self, UploadError> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let boundary = boundary_of(&content_type).ok_or(UploadError::NotMultipart(content_type))?;
        let parser = MultipartParser::new(boundary.as_bytes(), MultipartLimits::default())?;
        Ok(UploadReader {
            body: request.into_body().into_data_stream(),
            parser,
            in_part: false,
            received: 0,
            max_body: None,
        })
    }

    /// Refuses the whole body past `limit` bytes (for endpoints that take no file).
    pub fn with_body_limit(mut self, limit: u64) -> Self {
        self.max_body = Some(limit);
        self
    }

    /// The next parser event, reading the body as the parser needs it.
    async fn event(&mut self) -> Result<Event, UploadError> {
        loop {
            if self.parser.is_complete() {
                return Ok(Event::End);
            }
            if let Some(event) = self.parser.next_event()? {
                return Ok(event);
            }
            match self.body.next().await {
                Some(Ok(bytes)) => {
                    self.received += bytes.len() as u64;
                    if self.max_body.is_some_and(|max| self.received > max) {
                        return Err(UploadError::BodyTooLarge);
                    }
                    self.parser.feed(&bytes);
                }
                Some(Err(error)) => return Err(UploadError::Body(error.to_string())),
                None => self.parser.finish(),
            }
        }
    }

    /// The next part's headers, or `None` after the closing boundary.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, UploadError> {
        loop {
            match self.event().await? {
                Event::Part(head) => {
                    self.in_part = true;
                    return Ok(Some(head));
                }
                Event::End => return Ok(None),
                Event::Data(_) | Event::PartEnd => self.in_part = false,
            }
        }
    }

    /// The next bytes of the current part, or `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, UploadError> {
        if !self.in_part {
            return Ok(None);
        }
        match self.event().await? {
            Event::Data(bytes) => Ok(Some(bytes)),
            Event::PartEnd => {
                self.in_part = false;
                Ok(None)
            }
            Event::Part(_) | Event::End => Err(UploadError::Malformed(MultipartError::Malformed(
                "a part began inside another",
            ))),
        }
    }

    /// The rest of the current part as text (invalid UTF-8 replaced), refused as soon as it
    /// passes `limit` bytes: a text part is never buffered beyond its limit.
    pub async fn text(&mut self, name: &str, limit: usize) -> Result<String, UploadError> {
        let mut bytes = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            if bytes.len() + chunk.len() > limit {
                return Err(UploadError::FieldTooLong {
                    name: name.to_owned(),
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Gives up on the body after `error` and returns it for the response. The rest of the body
    /// is read and dropped in the background, one frame at a time, for at most [`LINGER`] and up
    /// to a cap (twice the upload limit after a too-large file, [`LINGER_BYTES`] otherwise): the
    /// client is most likely still sending, and a server that closes a connection with unread
    /// bytes resets it, so the client would see a broken pipe instead of the refusal.
    pub fn refuse(self, error: ApiError, max_upload_bytes: u64) -> ApiError {
        let too_large = matches!(
            &error,
            ApiError::Client { status, .. } if *status == StatusCode::PAYLOAD_TOO_LARGE
        );
        let cap = if too_large {
            max_upload_bytes.saturating_mul(2)
        } else {
            LINGER_BYTES
        };
        self.linger(cap);
        error
    }

    /// Reads and drops the rest of the body in the background (see [`refuse`](Self::refuse)).
    pub fn linger(self, cap: u64) {
        let mut body = self.body;
        tokio::spawn(async move {
            let drain = async {
                let mut seen = 0u64;
                while let Some(Ok(bytes)) = body.next().await {
                    seen += bytes.len() as u64;
                    if seen > cap {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER, drain).await;
        });
    }
}

/// The text limits of one form beyond each field's own: all its text fields together, and how
/// many there may be. Both APIs read text parts through [`UploadReader::text_field`] with one.
#[derive(Debug, Clone, Copy)]
pub struct TextBudget {
    max_total: usize,
    max_fields: usize,
    total: usize,
    fields: usize,
}

impl TextBudget {
    /// At most `max_total` bytes of text in at most `max_fields` text fields.
    pub const fn new(max_total: usize, max_fields: usize) -> Self {
        TextBudget {
            max_total,
            max_fields,
            total: 0,
            fields: 0,
        }
    }

    /// No limit beyond each part's own and the parser's number of parts
    /// ([`MultipartLimits::max_parts`]), which bound the text already.
    pub const fn parts_only() -> Self {
        Self::new(usize::MAX, usize::MAX)
    }
}

impl UploadReader {
    /// The current part as a text field of at most `limit` bytes (see [`text`](Self::text)),
    /// counted against the form's `budget`.
    pub async fn text_field(
        &mut self,
        name: &str,
        limit: usize,
        budget: &mut TextBudget,
    ) -> Result<String, UploadError> {
        let text = self.text(name, limit).await?;
        budget.total = budget.total.saturating_add(text.len());
        if budget.total > budget.max_total {
            return Err(UploadError::FormTextTooLong {
                limit: budget.max_total,
            });
        }
        if budget.fields >= budget.max_fields {
            return Err(UploadError::TooManyFields);
        }
        budget.fields += 1;
        Ok(text)
    }
}

/// How [`UploadReader::receive_file`] takes a file part.
#[derive(Debug, Clone, Copy)]
pub struct FileIntake {
    /// Most bytes accepted (`max_upload_bytes`); one more is [`UploadError::FileTooLarge`].
    pub limit: u64,
    /// Files up to this size stay in memory; a larger one spills to a temporary blob as it
    /// arrives. 0 writes every file to a temporary blob from its first byte.
    pub in_memory_up_to: usize,
    /// Hash the bytes while they stream (callers whose engine hashes them later need not).
    pub sha256: bool,
}

/// Uploads up to this size are kept in memory while they arrive: each trip to the blocking pool
/// costs thread hand-offs, so a small file is parsed and written once, where it is prepared.
pub const IN_MEMORY_UPLOAD: usize = 1024 * 1024;

/// The file name a part names, for the record: its last path segment, trimmed, at most 255
/// characters; `document.pdf` when it names none.
pub fn upload_file_name(sent: Option<&str>) -> String {
    sent.map(|name| name.rsplit(['/', '\\']).next().unwrap_or(name).trim())
        .filter(|name| !name.is_empty())
        .unwrap_or("document.pdf")
        .chars()
        .take(255)
        .collect()
}

impl UploadReader {
    /// Streams the current part (a file) into memory or a temporary blob under `blobs`,
    /// counting it against `intake.limit` (and hashing it when asked) as it arrives, so memory
    /// stays bounded whatever the size. The one way both APIs receive a file: the limit and the
    /// errors are the same for each.
    pub async fn receive_file(
        &mut self,
        blobs: &Arc<Blobs>,
        head: &PartHead,
        intake: FileIntake,
    ) -> Result<ReceivedFile, UploadError> {
        let file_name = upload_file_name(head.file_name.as_deref());
        let mut hasher = intake.sha256.then(Sha256::new);
        let mut size = 0u64;
        let mut buffer = Vec::new();
        let mut spilled = if intake.in_memory_up_to == 0 {
            Some(spill(blobs, &[]).await?)
        } else {
            None
        };
        while let Some(chunk) = self.chunk().await? {
            size += chunk.len() as u64;
            if size > intake.limit {
                return Err(UploadError::FileTooLarge {
                    limit: intake.limit,
                });
            }
            if let Some(hasher) = hasher.as_mut() {
                hasher.update(&chunk);
            }
            if let Some((_, writer)) = spilled.as_mut() {
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|e| UploadError::Storage("writing the upload", e))?;
            } else if buffer.len() + chunk.len() <= intake.in_memory_up_to {
                buffer.extend_from_slice(&chunk);
            } else {
                buffer.extend_from_slice(&chunk);
                spilled = Some(spill(blobs, &buffer).await?);
                buffer = Vec::new();
            }
        }
        let content = match spilled {
            None => Received::InMemory(buffer),
            Some((temp, mut writer)) => {
                writer
                    .flush()
                    .await
                    .map_err(|e| UploadError::Storage("writing the upload", e))?;
                let file = writer.into_inner().into_std().await;
                Received::Spilled { temp, file }
            }
        };
        Ok(ReceivedFile {
            content,
            file_name,
            size,
            sha256: hasher.map(|hasher| Sha256Digest::from_bytes(hasher.finalize().into())),
        })
    }
}

/// A new temporary blob, with `received` (what was kept in memory so far) written to it.
async fn spill(
    blobs: &Arc<Blobs>,
    received: &[u8],
) -> Result<(TempBlob, tokio::io::BufWriter<tokio::fs::File>), UploadError> {
    let blobs = blobs.clone();
    let span = tracing::Span::current();
    let (temp, file) = tokio::task::spawn_blocking(move || span.in_scope(|| blobs.create_temp()))
        .await
        .map_err(|e| UploadError::Storage("creating a temporary file", std::io::Error::other(e)))?
        .map_err(|e| UploadError::Storage("creating a temporary file", e))?;
    let mut writer =
        tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
    writer
        .write_all(received)
        .await
        .map_err(|e| UploadError::Storage("writing the upload", e))?;
    Ok((temp, writer))
}

/// Most bytes of a refused body read and dropped after the refusal (see [`UploadReader::refuse`]).
pub const LINGER_BYTES: u64 = 8 * 1024 * 1024;
/// Longest time a refused body is read after the refusal.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(10);

impl<S: Send + Sync> FromRequest<S> for UploadReader {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        UploadReader::new(request).map_err(ApiError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: MultipartLimits = MultipartLimits {
        max_header_block: 8 * 1024,
        max_parts: 256,
    };

    fn form(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file_name, data) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file_name {
                Some(file) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/pdf\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    #[test]
    fn a_form_with_text_and_a_file_gives_each_part_with_its_headers() {
        let body = form(
            "XYZ",
            &[
                ("signerId", None, b"phone"),
                ("file", Some("a.pdf"), b"%PDF-1.7\r\n--XY\r\n-XYZ\r"),
            ],
        );
        let parts = parse_complete(b"XYZ", &body, usize::MAX, LIMITS).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].head.name.as_deref(), Some("signerId"));
        assert_eq!(parts[0].body, b"phone");
        assert_eq!(parts[1].head.file_name.as_deref(), Some("a.pdf"));
        assert_eq!(
            parts[1].head.content_type.as_deref(),
            Some("application/pdf")
        );
        assert_eq!(parts[1].body, b"%PDF-1.7\r\n--XY\r\n-XYZ\r");
    }

    #[test]
    fn a_preamble_padding_folding_and_an_extended_file_name_are_understood() {
        let body = b"junk before\r\n--b  \r\nContent-Disposition: form-data;\r\n name=\"a;b\"; \
                     filename=\"x.pdf\"; filename*=UTF-8''%E2%82%AC.pdf\r\n\r\n1\r\n--b--";
        let parts = parse_complete(b"b", body, 3, LIMITS).unwrap();
        assert_eq!(parts[0].head.name.as_deref(), Some("a;b"));
        assert_eq!(parts[0].head.file_name.as_deref(), Some("€.pdf"));
        assert_eq!(parts[0].body, b"1");
    }

    #[test]
    fn a_header_block_over_the_limit_is_refused_before_it_ends() {
        let mut parser = MultipartParser::new(b"b", LIMITS).unwrap();
        parser.feed(b"--b\r\nX-Flood: ");
        let mut fed = 0;
        let error = loop {
            match parser.next_event() {
                Ok(None) => {
                    parser.feed(&[b'x'; 1000]);
                    fed += 1000;
                }
                Ok(Some(event)) => panic!("unexpected {event:?}"),
                Err(error) => break error,
            }
        };
        assert_eq!(error, MultipartError::HeadersTooLong(8 * 1024));
        assert!(fed <= 9 * 1024, "refused only after {fed} bytes");
    }

    #[test]
    fn more_parts_than_the_limit_are_refused() {
        let parts: Vec<(&str, Option<&str>, &[u8])> = vec![("a", None, b"1"); 257];
        assert_eq!(
            parse_complete(b"b", &form("b", &parts), 64, LIMITS),
            Err(MultipartError::TooManyParts(256))
        );
        assert_eq!(
            parse_complete(b"b", &form("b", &parts[..256]), 64, LIMITS).map(|p| p.len()),
            Ok(256)
        );
    }

    #[test]
    fn bad_boundaries_and_bodies_are_refused() {
        let long = vec![b'a'; MAX_BOUNDARY + 1];
        for boundary in [&b""[..], &long, b"a\r\nb", b"trailing "] {
            assert_eq!(
                MultipartParser::new(boundary, LIMITS).err(),
                Some(MultipartError::InvalidBoundary)
            );
        }
        assert!(MultipartParser::new(&long[1..], LIMITS).is_ok());
        for (body, error) in [
            (&b"--b\r\nname: x"[..], MultipartError::Truncated),
            (b"--b\r\n\r\nno end", MultipartError::Truncated),
            (b"", MultipartError::Truncated),
            (
                b"--bX\r\n\r\n",
                MultipartError::Malformed("a boundary line must end with CRLF"),
            ),
            (b"--b\r\nno colon\r\n\r\nx\r\n--b--", malformed_header()),
            (
                b"--b garbage\r\n\r\nx\r\n--b--",
                MultipartError::Malformed("a boundary line must end with CRLF"),
            ),
        ] {
            assert_eq!(
                parse_complete(b"b", body, 2, LIMITS),
                Err(error),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_boundary_comes_from_the_content_type() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=XYZ").as_deref(),
            Some("XYZ")
        );
        assert_eq!(
            boundary_of("Multipart/Form-Data;charset=utf-8; BOUNDARY=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary_of("multipart/form-data"), None);
        assert_eq!(boundary_of("application/json; boundary=x"), None);
    }

    /// Bytes rich in what multipart is made of (CR, LF, dashes, boundary letters, colons).
    fn framing_bytes(len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), len).prop_map(|raw| {
            raw.into_iter()
                .map(|b| match b % 8 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b'-',
                    3 => b'B',
                    4 => b'b',
                    5 => b':',
                    _ => b,
                })
                .collect()
        })
    }

    fn arbitrary_part() -> impl Strategy<Value = (String, Option<String>, Vec<u8>)> {
        (
            "[a-zA-Z]{1,12}",
            proptest::option::of("[a-z]{1,8}\\.pdf"),
            framing_bytes(0..300),
        )
    }

    fn reader_for(body: Vec<u8>) -> UploadReader {
        let request = Request::builder()
            .header(CONTENT_TYPE, "multipart/form-data; boundary=B")
            .body(axum::body::Body::from(body))
            .unwrap();
        UploadReader::new(request).unwrap()
    }

    fn file_blobs() -> (tempfile::TempDir, Arc<Blobs>) {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::store::blobs::BlobStore::open(dir.path()).unwrap();
        (dir, Arc::new(Blobs::Files(files)))
    }

    /// Reads the fields `a` (5 bytes), `b` (5 bytes) and `c` (1 byte) under `budget`: what
    /// reading `c` gives once the first two passed.
    async fn third_field_under(mut budget: TextBudget) -> Result<String, UploadError> {
        let parts: [(&str, Option<&str>, &[u8]); 3] = [
            ("a", None, b"12345"),
            ("b", None, b"12345"),
            ("c", None, b"1"),
        ];
        let mut reader = reader_for(form("B", &parts));
        for name in ["a", "b"] {
            reader.next_part().await.unwrap().unwrap();
            reader.text_field(name, 100, &mut budget).await.unwrap();
        }
        reader.next_part().await.unwrap().unwrap();
        reader.text_field("c", 100, &mut budget).await
    }

    #[tokio::test]
    async fn a_form_past_its_text_budget_is_refused_field_by_field() {
        assert!(matches!(
            third_field_under(TextBudget::new(10, 2)).await,
            Err(UploadError::FormTextTooLong { limit: 10 })
        ));
        assert!(matches!(
            third_field_under(TextBudget::new(100, 2)).await,
            Err(UploadError::TooManyFields)
        ));
        assert_eq!(
            third_field_under(TextBudget::new(11, 3)).await.unwrap(),
            "1"
        );
    }

    #[tokio::test]
    async fn a_received_file_stays_in_memory_up_to_its_size_and_spills_past_it() {
        let (_dir, blobs) = file_blobs();
        let data = b"%PDF-1.7 twelve bytes and more".to_vec();
        for (in_memory_up_to, spills) in [(1024, false), (4, true), (0, true)] {
            let parts: [(&str, Option<&str>, &[u8]); 1] = [("file", Some("a/b\\c.pdf"), &data)];
            let mut reader = reader_for(form("B", &parts));
            let head = reader.next_part().await.unwrap().unwrap();
            let intake = FileIntake {
                limit: 1024,
                in_memory_up_to,
                sha256: true,
            };
            let received = reader.receive_file(&blobs, &head, intake).await.unwrap();
            assert_eq!(received.file_name, "c.pdf");
            assert_eq!(received.size, data.len() as u64);
            assert_eq!(
                received.sha256,
                Some(Sha256Digest::from_bytes(Sha256::digest(&data).into()))
            );
            let bytes = match received.content {
                Received::InMemory(bytes) => {
                    assert!(!spills);
                    bytes
                }
                Received::Spilled { temp, .. } => {
                    assert!(spills);
                    std::fs::read(temp.path()).unwrap()
                }
            };
            assert_eq!(bytes, data);
        }
    }

    #[tokio::test]
    async fn a_file_past_the_limit_is_refused_with_the_document_upload_error() {
        let (_dir, blobs) = file_blobs();
        let parts: [(&str, Option<&str>, &[u8]); 1] = [("file", None, &[b'x'; 100])];
        let mut reader = reader_for(form("B", &parts));
        let head = reader.next_part().await.unwrap().unwrap();
        let intake = FileIntake {
            limit: 99,
            in_memory_up_to: 0,
            sha256: false,
        };
        let refused = reader.receive_file(&blobs, &head, intake).await;
        let Err(error @ UploadError::FileTooLarge { limit: 99 }) = refused else {
            panic!("expected FileTooLarge");
        };
        let ApiError::Client { status, code, .. } = ApiError::from(error) else {
            panic!("expected a client error");
        };
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(code.as_str(), "DOCUMENT_UPLOAD_ERROR");
    }

    proptest! {
        #[test]
        fn any_chunking_of_a_valid_form_gives_the_same_parts(
            parts in proptest::collection::vec(arbitrary_part(), 0..6),
            chunk in 1usize..64,
        ) {
            let borrowed: Vec<(&str, Option<&str>, &[u8])> = parts
                .iter()
                .map(|(name, file, data)| (name.as_str(), file.as_deref(), data.as_slice()))
                .collect();
            // A boundary never occurs inside a part (RFC 2046 §5.1.1).
            for (_, _, data) in &parts {
                prop_assume!(memmem::find(data, b"\r\n--B--B").is_none());
            }
            let body = form("B--B", &borrowed);
            let whole = parse_complete(b"B--B", &body, usize::MAX, LIMITS).unwrap();
            let pieces = parse_complete(b"B--B", &body, chunk, LIMITS).unwrap();
            prop_assert_eq!(&whole, &pieces);
            prop_assert_eq!(whole.len(), parts.len());
            for (got, (name, file, data)) in whole.iter().zip(&parts) {
                prop_assert_eq!(got.head.name.as_deref(), Some(name.as_str()));
                prop_assert_eq!(got.head.file_name.as_deref(), file.as_deref());
                prop_assert_eq!(&got.body, data);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_stay_within_the_limits(
            body in framing_bytes(0..2000),
            chunk in 1usize..100,
        ) {
            let limits = MultipartLimits { max_header_block: 64, max_parts: 4 };
            let mut framed = b"--b\r\n".to_vec();
            framed.extend_from_slice(&body);
            let mut in_a_part = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n".to_vec();
            in_a_part.extend_from_slice(&body);
            for input in [&body, &framed, &in_a_part] {
                if let Ok(parts) = parse_complete(b"b", input, chunk, limits) {
                    prop_assert!(parts.len() <= limits.max_parts);
                }
            }
        }
    }
}
