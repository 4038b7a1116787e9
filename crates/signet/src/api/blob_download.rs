//! A stored document as an HTTP response, whichever backend holds it: a small file is answered
//! from the read cache ([`CachedReads::signed_file`], read from disk once; on a plain connection
//! its bytes leave from the page cache, see [`crate::startup::zero_copy`]), a larger one through
//! [`ranged::serve`] (the fast path: one read, or a stream); objects are streamed from the
//! bucket as they arrive, a `Range` request becoming a ranged GET per range, with the same
//! headers, the same `If-Range` rule and the same 416 body. A missing object is `NotFound`, so the callers'
//! "the row changed meanwhile: read it again" loops work on both.

use axum::body::{Body, Bytes};
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::stream::{self, StreamExt};
use std::ops::Range;

use crate::api::ranged::{self, StoredFile};
use crate::services::reads::{CachedReads, ReadAt};
use crate::store::blob_backend::Blobs;
use crate::store::blobs::BlobKey;
use crate::store::objects::ObjectBlobs;

/// A finished version of a stored document, as a download serves it.
pub struct Download<'a> {
    pub key: &'a BlobKey,
    /// Its length in bytes, as recorded.
    pub len: u64,
    pub content_type: &'static str,
    /// A strong ETag, quotes included.
    pub etag: String,
}

/// Answers a GET for `download`, honouring `Range` and `If-Range`. Every caller serves a
/// finished version (a signed CloudSigner document, one version of an order's PDF), whose bytes
/// are never rewritten under its key: that is what lets `reads` keep them (read at `at`).
pub async fn serve(
    blobs: &Blobs,
    reads: &CachedReads,
    at: ReadAt,
    download: Download<'_>,
    headers: &HeaderMap,
) -> std::io::Result<Response> {
    let Download {
        key,
        len,
        content_type,
        etag,
    } = download;
    match blobs {
        Blobs::Files(files) => {
            let file = StoredFile {
                path: files.path(key),
                len,
                content_type,
                etag,
            };
            match reads.signed_file(key, len, &file.path, at).await? {
                Some(cached) => ranged::serve_from_memory(file, cached, headers),
                None => ranged::serve(file, headers).await,
            }
        }
        Blobs::Objects(objects) => {
            serve_object(objects, key, len, content_type, etag, headers).await
        }
    }
}

async fn serve_object(
    objects: &ObjectBlobs,
    key: &BlobKey,
    len: u64,
    content_type: &'static str,
    etag: String,
    headers: &HeaderMap,
) -> std::io::Result<Response> {
    let if_range_holds = headers
        .get(IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let specs = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_holds)
        .and_then(ranged::parse_range_header);
    let base = |status: StatusCode| {
        Response::builder()
            .status(status)
            .header(ACCEPT_RANGES, "bytes")
            .header(ETAG, &etag)
    };
    let ranges = match specs.map(|specs| ranged::resolve_ranges(&specs, len)) {
        None => {
            let (stored_len, body) = objects.read(key, None).await?;
            if stored_len != len {
                return Err(std::io::Error::other(format!(
                    "{} is {stored_len} bytes, not the {len} recorded",
                    key.as_str()
                )));
            }
            return base(StatusCode::OK)
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_LENGTH, len)
                .body(Body::from_stream(body))
                .map_err(std::io::Error::other);
        }
        Some(None) => {
            return Ok(ranged::unsatisfiable(&StoredFile {
                path: Default::default(),
                len,
                content_type,
                etag,
            }))
        }
        Some(Some(ranges)) => ranges,
    };
    if let [range] = &ranges[..] {
        let (_, body) = objects.read(key, Some(range.clone())).await?;
        return base(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_TYPE, content_type)
            .header(CONTENT_LENGTH, range.end - range.start)
            .header(
                CONTENT_RANGE,
                format!("bytes {}-{}/{len}", range.start, range.end - 1),
            )
            .body(Body::from_stream(body))
            .map_err(std::io::Error::other);
    }
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let part_header = |range: &Range<u64>| {
        Bytes::from(format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            range.start,
            range.end - 1,
        ))
    };
    let closing = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    let mut total = closing.len() as u64;
    let mut parts = Vec::with_capacity(ranges.len());
    // Each range's GET is sent before the answer starts, so a missing object is still a
    // `NotFound` the caller can retry, not a response cut off half-way.
    for range in &ranges {
        let header = part_header(range);
        total += header.len() as u64 + (range.end - range.start);
        let (_, data) = objects.read(key, Some(range.clone())).await?;
        parts.push(stream::once(async move { Ok(header) }).chain(data));
    }
    let body = stream::iter(parts)
        .flatten()
        .chain(stream::once(
            async move { Ok::<_, std::io::Error>(closing) },
        ));
    base(StatusCode::PARTIAL_CONTENT)
        .header(
            CONTENT_TYPE,
            format!("multipart/byteranges; boundary={boundary}"),
        )
        .header(CONTENT_LENGTH, total)
        .body(Body::from_stream(body))
        .map_err(std::io::Error::other)
}
