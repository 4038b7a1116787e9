//! Serving a stored file with HTTP range requests (RFC 9110 §14): `bytes=a-b`, `a-`, `-n`,
//! several ranges as `multipart/byteranges`, 416 for unsatisfiable ones, and `ETag` /
//! `If-Range` so a client resuming a download never splices two different files. Shared by
//! every surface that hands out documents. Bodies are streamed from disk; a whole file or a
//! single range no larger than one read step (256 KiB) is read at once, since streaming it would
//! cost one trip to the blocking pool for the open (and the seek) and one per read instead of a
//! single one.

use axum::body::{Body, Bytes};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use futures::stream::{self, StreamExt};
use std::io::SeekFrom;
use std::ops::Range;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::api::cloudsigner::error::{error_response, ErrorCode};
use crate::services::reads::CachedFile;
use crate::startup::zero_copy::SendFromFile;

/// More ranges than this in one request are ignored (the whole file is sent): a client never
/// needs them, and each one costs a seek and a part header.
const MAX_RANGES: usize = 64;

/// Bytes read from disk per step. Each step is a trip to the blocking thread pool, so a large
/// step keeps a typical document to one or two trips.
const READ_CHUNK: usize = 256 * 1024;

/// One `range-spec` of a `Range: bytes=` header, before the file length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last` or `first-` (open-ended).
    FromTo { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Parses a `Range` header value. `None` means "not a byte-range request we understand", which
/// RFC 9110 says to answer by ignoring the header (a 200 with the whole file).
pub fn parse_range_header(value: &str) -> Option<Vec<RangeSpec>> {
    let specs = value.trim().strip_prefix("bytes=")?;
    let mut parsed = Vec::new();
    for spec in specs.split(',') {
        let spec = spec.trim();
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        parsed.push(if first.is_empty() {
            RangeSpec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|last| last < first) {
                return None;
            }
            RangeSpec::FromTo { first, last }
        });
    }
    (!parsed.is_empty() && parsed.len() <= MAX_RANGES).then_some(parsed)
}

/// The byte ranges of a file of `len` bytes that `specs` select, in request order; ranges
/// wholly past the end are dropped. `None` when none is left: the request is unsatisfiable.
pub fn resolve_ranges(specs: &[RangeSpec], len: u64) -> Option<Vec<Range<u64>>> {
    let ranges: Vec<Range<u64>> = specs
        .iter()
        .filter_map(|spec| match *spec {
            RangeSpec::FromTo { first, last } if first < len => {
                let end = last.map_or(len, |last| last.saturating_add(1).min(len));
                Some(first..end)
            }
            RangeSpec::FromTo { .. } => None,
            RangeSpec::Suffix(0) => None,
            RangeSpec::Suffix(n) => Some(len.saturating_sub(n)..len),
        })
        .filter(|range| !range.is_empty())
        .collect();
    (!ranges.is_empty()).then_some(ranges)
}

/// A file to serve: where it is, how long, what it is, and a strong validator for it.
pub struct StoredFile {
    pub path: PathBuf,
    pub len: u64,
    pub content_type: &'static str,
    /// A strong ETag, quotes included: it must change whenever the bytes could.
    pub etag: String,
}

/// What a request asks of a file, once `Range` and `If-Range` are read.
enum Plan {
    Whole,
    Unsatisfiable,
    Single(Range<u64>),
    Multiple(Vec<Range<u64>>),
}

fn plan(file: &StoredFile, headers: &HeaderMap) -> Plan {
    let range_header = headers.get(RANGE).and_then(|v| v.to_str().ok());
    // If-Range with anything but our current ETag (a stale tag, or a date: we send no
    // Last-Modified) means "the file may have changed: send all of it".
    let if_range_holds = headers
        .get(IF_RANGE)
        .is_none_or(|v| v.as_bytes() == file.etag.as_bytes());
    let specs = range_header
        .filter(|_| if_range_holds)
        .and_then(parse_range_header);
    let Some(specs) = specs else {
        return Plan::Whole;
    };
    match resolve_ranges(&specs, file.len) {
        None => Plan::Unsatisfiable,
        Some(mut ranges) if ranges.len() == 1 => Plan::Single(ranges.remove(0)),
        Some(ranges) => Plan::Multiple(ranges),
    }
}

/// Answers a GET for `file` honouring `Range` and `If-Range` in `headers`.
pub async fn serve(file: StoredFile, headers: &HeaderMap) -> std::io::Result<Response> {
    match plan(&file, headers) {
        Plan::Whole => whole(file).await,
        Plan::Unsatisfiable => Ok(unsatisfiable(&file)),
        Plan::Single(range) => single(file, range).await,
        Plan::Multiple(ranges) => multiple(file, ranges).await,
    }
}

/// [`serve`] for a file the read cache holds (its bytes, the whole file of `file.len` bytes, and
/// the file open): every answer is a slice of the bytes, no copy and no trip to the blocking
/// pool. A whole file or a single range also names its run of the open file
/// ([`SendFromFile`]), so a plain connection sends it from the page cache instead.
pub fn serve_from_memory(
    file: StoredFile,
    cached: CachedFile,
    headers: &HeaderMap,
) -> std::io::Result<Response> {
    let CachedFile {
        bytes,
        file: opened,
    } = cached;
    // A whole file or one range is one run of the file's bytes: a plain connection may send it
    // from the page cache (the body stays the bytes for every other connection).
    let from_file = |range: Range<u64>, response: std::io::Result<Response>| {
        response.map(|mut response| {
            response.extensions_mut().insert(SendFromFile {
                file: opened.clone(),
                range,
            });
            response
        })
    };
    if bytes.len() as u64 != file.len {
        return Err(std::io::Error::other(format!(
            "{} bytes in memory for a file of {}",
            bytes.len(),
            file.len
        )));
    }
    let slice = |range: &Range<u64>| {
        // Ranges lie inside the file (resolve_ranges), whose length `bytes` has.
        let (start, end) = (range.start as usize, range.end as usize);
        bytes.slice(start..end)
    };
    match plan(&file, headers) {
        Plan::Whole => from_file(
            0..file.len,
            finish(
                base(StatusCode::OK, &file)
                    .header(CONTENT_TYPE, file.content_type)
                    .header(CONTENT_LENGTH, file.len),
                Body::from(bytes.clone()),
            ),
        ),
        Plan::Unsatisfiable => Ok(unsatisfiable(&file)),
        Plan::Single(range) => from_file(
            range.clone(),
            finish(single_head(&file, &range), Body::from(slice(&range))),
        ),
        Plan::Multiple(ranges) => {
            let (builder, parts) = multipart_frame(&file, &ranges);
            let mut chunks = Vec::with_capacity(ranges.len() * 2 + 1);
            let mut headers = parts.part_headers.into_iter();
            for range in &ranges {
                chunks.extend(headers.next().map(Ok::<_, std::io::Error>));
                chunks.push(Ok(slice(range)));
            }
            chunks.push(Ok(parts.closing));
            finish(builder, Body::from_stream(stream::iter(chunks)))
        }
    }
}

fn base(status: StatusCode, file: &StoredFile) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(ACCEPT_RANGES, "bytes")
        .header(ETAG, &file.etag)
}

fn finish(builder: axum::http::response::Builder, body: Body) -> std::io::Result<Response> {
    builder.body(body).map_err(std::io::Error::other)
}

async fn whole(file: StoredFile) -> std::io::Result<Response> {
    let builder = base(StatusCode::OK, &file)
        .header(CONTENT_TYPE, file.content_type)
        .header(CONTENT_LENGTH, file.len);
    if file.len <= READ_CHUNK as u64 {
        let path = file.path.clone();
        let expected = file.len;
        let bytes = tokio::task::spawn_blocking(move || read_exactly(&path, expected))
            .await
            .map_err(std::io::Error::other)??;
        return finish(builder, Body::from(bytes));
    }
    let handle = tokio::fs::File::open(&file.path).await?;
    finish(
        builder,
        Body::from_stream(ReaderStream::with_capacity(handle, READ_CHUNK)),
    )
}

/// Reads the file at `path`, which must be `len` bytes long (the length the headers promise).
/// Blocking.
fn read_exactly(path: &std::path::Path, len: u64) -> std::io::Result<Vec<u8>> {
    open_and_read(path, len).map(|(_, bytes)| bytes)
}

/// [`read_exactly`], also returning the open file (its position at the end). Blocking.
pub fn open_and_read(
    path: &std::path::Path,
    len: u64,
) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::Read;
    let capacity = usize::try_from(len).map_err(std::io::Error::other)?;
    let mut bytes = Vec::with_capacity(capacity);
    let mut file = std::fs::File::open(path)?;
    (&mut file).take(len + 1).read_to_end(&mut bytes)?;
    if bytes.len() != capacity {
        return Err(std::io::Error::other(format!(
            "{} is {} bytes, not the {len} recorded",
            path.display(),
            bytes.len()
        )));
    }
    Ok((file, bytes))
}

/// Reads `len` bytes at `at` of the file at `path`, which must be `file_len` bytes long (the
/// length the headers were computed from: a file of another length is not the one promised).
/// Blocking.
fn read_range(
    path: &std::path::Path,
    file_len: u64,
    at: u64,
    len: u64,
) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let handle = std::fs::File::open(path)?;
    let actual = handle.metadata()?.len();
    if actual != file_len {
        return Err(std::io::Error::other(format!(
            "{} is {actual} bytes, not the {file_len} recorded",
            path.display()
        )));
    }
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    handle.read_exact_at(&mut bytes, at)?;
    Ok(bytes)
}

/// A 416 with the documented error body, and the file's length in `Content-Range`.
pub(crate) fn unsatisfiable(file: &StoredFile) -> Response {
    let mut response = error_response(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::Generic,
        &format!(
            "no requested range lies inside the document's {} bytes",
            file.len
        ),
    );
    let headers = response.headers_mut();
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", file.len)) {
        headers.insert(CONTENT_RANGE, value);
    }
    response
}

/// A stream of exactly the bytes `range` of the file at `path`.
async fn range_stream(
    path: &std::path::Path,
    range: Range<u64>,
) -> std::io::Result<ReaderStream<tokio::io::Take<tokio::fs::File>>> {
    let mut handle = tokio::fs::File::open(path).await?;
    handle.seek(SeekFrom::Start(range.start)).await?;
    Ok(ReaderStream::with_capacity(
        handle.take(range.end - range.start),
        READ_CHUNK,
    ))
}

/// The head of a 206 with one range.
fn single_head(file: &StoredFile, range: &Range<u64>) -> axum::http::response::Builder {
    base(StatusCode::PARTIAL_CONTENT, file)
        .header(CONTENT_TYPE, file.content_type)
        .header(CONTENT_LENGTH, range.end - range.start)
        .header(
            CONTENT_RANGE,
            format!("bytes {}-{}/{}", range.start, range.end - 1, file.len),
        )
}

/// The framing of a `multipart/byteranges` answer: its head (with the total length) and each
/// range's part header, in order, and the closing boundary.
struct Multipart {
    part_headers: Vec<Bytes>,
    closing: Bytes,
}

fn multipart_frame(
    file: &StoredFile,
    ranges: &[Range<u64>],
) -> (axum::http::response::Builder, Multipart) {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let mut total = closing.len() as u64;
    let part_headers: Vec<Bytes> = ranges
        .iter()
        .map(|range| {
            let header = Bytes::from(format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                file.content_type,
                range.start,
                range.end - 1,
                file.len
            ));
            total += header.len() as u64 + (range.end - range.start);
            header
        })
        .collect();
    let builder = base(StatusCode::PARTIAL_CONTENT, file)
        .header(
            CONTENT_TYPE,
            format!("multipart/byteranges; boundary={boundary}"),
        )
        .header(CONTENT_LENGTH, total);
    (
        builder,
        Multipart {
            part_headers,
            closing,
        },
    )
}

async fn single(file: StoredFile, range: Range<u64>) -> std::io::Result<Response> {
    let len = range.end - range.start;
    let body = if len <= READ_CHUNK as u64 {
        // Open, seek and read in one trip to the blocking pool: streaming a small range took
        // three (open, seek, read), which made it slower than the whole file.
        let (path, at, file_len) = (file.path.clone(), range.start, file.len);
        let bytes = tokio::task::spawn_blocking(move || read_range(&path, file_len, at, len))
            .await
            .map_err(std::io::Error::other)??;
        Body::from(bytes)
    } else {
        Body::from_stream(range_stream(&file.path, range.clone()).await?)
    };
    finish(single_head(&file, &range), body)
}

async fn multiple(file: StoredFile, ranges: Vec<Range<u64>>) -> std::io::Result<Response> {
    let (builder, frame) = multipart_frame(&file, &ranges);
    let mut parts = Vec::with_capacity(ranges.len());
    for (range, header) in ranges.iter().zip(frame.part_headers) {
        let data = range_stream(&file.path, range.clone()).await?;
        parts.push(stream::once(async move { Ok(header) }).chain(data));
    }
    let closing = frame.closing;
    let body = stream::iter(parts)
        .flatten()
        .chain(stream::once(
            async move { Ok::<_, std::io::Error>(closing) },
        ));
    finish(builder, Body::from_stream(body))
}

#[cfg(test)]
mod tests {
    use super::RangeSpec::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_three_forms_parse() {
        assert_eq!(
            parse_range_header("bytes=0-99, 200-,-50"),
            Some(vec![
                FromTo {
                    first: 0,
                    last: Some(99)
                },
                FromTo {
                    first: 200,
                    last: None
                },
                Suffix(50)
            ])
        );
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "bytes=+1-2",
        ] {
            assert_eq!(parse_range_header(bad), None, "{bad}");
        }
    }

    #[test]
    fn ranges_are_clamped_and_unsatisfiable_ones_dropped() {
        let specs = parse_range_header("bytes=5-1000,100-,-3,0-0").unwrap();
        assert_eq!(resolve_ranges(&specs, 10), Some(vec![5..10, 7..10, 0..1]));
        assert_eq!(
            resolve_ranges(&parse_range_header("bytes=10-").unwrap(), 10),
            None
        );
        assert_eq!(
            resolve_ranges(&parse_range_header("bytes=-0").unwrap(), 10),
            None
        );
        assert_eq!(
            resolve_ranges(&parse_range_header("bytes=-50").unwrap(), 10),
            Some(std::iter::once(0..10).collect())
        );
    }

    proptest! {
        #[test]
        fn resolved_ranges_always_lie_inside_the_file(
            header in "bytes=[0-9-]{1,8}(,[0-9-]{1,8}){0,3}",
            len in 0u64..10_000,
        ) {
            if let Some(specs) = parse_range_header(&header) {
                for range in resolve_ranges(&specs, len).unwrap_or_default() {
                    prop_assert!(range.start < range.end && range.end <= len);
                }
            }
        }
    }
}
