//! The middleware every request on every listener passes: it gives the request an id
//! (`x-request-id`: the client's when it is sane, a fresh UUID otherwise, echoed in the response),
//! opens the request's span, bounds the handler's time, and when the response head is ready
//! writes the access line and the HTTP metrics.
//!
//! Requests are named by their route template (`/sign/{token}`), never by their path: signer
//! links carry their token in the path, and ids in paths would multiply metric series.
//!
//! The handler timeout counts from the moment the request body has been read (at once for a
//! request without one), so a slow but steady 50 MB upload is never cut by it — the connection's
//! body timeout watches uploads instead — while a handler stuck after its input is in is
//! answered 503 with the error body. Handlers are cancel-safe already (a client hanging up
//! drops them the same way); work that must finish runs in its own task.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Body as _;
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::Instrument;

use crate::api::cloudsigner::error::{error_response, ErrorCode};

/// The request id header, read and echoed.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-sent request id kept; longer ones (or ones with other characters than
/// letters, digits, `-`, `_`, `.`, `:`) are replaced, so a client cannot write into the log.
const MAX_REQUEST_ID: usize = 64;

/// What the middleware needs: the handler timeout and whether metrics are recorded.
#[derive(Debug, Clone, Copy)]
pub struct Observe {
    pub request_timeout: Duration,
    pub metrics: bool,
}

/// The middleware (`axum::middleware::from_fn_with_state`), added with `Router::layer` so it
/// runs after routing and sees the matched route.
pub async fn observe(State(observe): State<Observe>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let request_id = match parts.headers.get(&REQUEST_ID) {
        Some(value) if is_sane_request_id(value) => value.clone(),
        _ => fresh_request_id(),
    };
    parts.headers.insert(REQUEST_ID, request_id.clone());
    // The router's own shared copy of the template (a reference count, no allocation).
    let matched = parts.extensions.get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = method_name(&parts.method);
    let id = request_id.to_str().unwrap_or("-");
    let span = tracing::info_span!("request", method, route = %route, request.id = %id);

    let body_read = Arc::new(Notify::new());
    let body = if body.is_end_stream() {
        body_read.notify_one();
        body
    } else {
        Body::new(SignalOnEnd {
            inner: body,
            done: Some(body_read.clone()),
        })
    };
    let request = Request::from_parts(parts, body);
    let timeout = observe.request_timeout;
    let handled = async {
        tokio::select! {
            biased;
            response = next.run(request) => response,
            () = async {
                body_read.notified().await;
                tokio::time::sleep(timeout).await;
            } => {
                tracing::warn!(timeout_seconds = timeout.as_secs(), "the handler ran out of time");
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorCode::Generic,
                    &format!(
                        "the request took longer than {} s after its body was read; try again",
                        timeout.as_secs()
                    ),
                )
            }
        }
    }
    .instrument(span);
    let mut response = handled.await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // Outside the request's span: the line carries the span's fields itself, and inside it every
    // formatter would write them twice (once as the span's, once as the event's).
    tracing::info!(
        target: "signet::access",
        method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request.id = %id,
        "request"
    );
    if observe.metrics {
        super::metrics::http_request(route, method, status, elapsed);
    }
    response.headers_mut().insert(REQUEST_ID, request_id);
    response
}

/// Letters, digits, `-_.:`, at most [`MAX_REQUEST_ID`] long, not empty.
fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A random (version 4) UUID from the thread's generator: `Uuid::new_v4` asks the kernel for
/// every id, a system call on each request, and a request id needs no more than uniqueness.
fn fresh_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
    let text = id.hyphenated().encode_lower(&mut buffer);
    HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("-"))
}

/// The method as a static label (anything unusual is `OTHER`: clients choose methods freely).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// A request body that says when it has been read to its end (or dropped unread): the start
/// of the handler's timeout.
struct SignalOnEnd {
    inner: Body,
    done: Option<Arc<Notify>>,
}

impl SignalOnEnd {
    fn signal(&mut self) {
        if let Some(done) = self.done.take() {
            done.notify_one();
        }
    }
}

impl hyper::body::Body for SignalOnEnd {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.signal();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SignalOnEnd {
    fn drop(&mut self) {
        self.signal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    /// A router whose handler reads the whole body, then takes `work` before answering.
    fn app(work: Duration) -> Router {
        let observed = Observe {
            request_timeout: Duration::from_millis(300),
            metrics: false,
        };
        Router::new()
            .route(
                "/work",
                post(move |body: Body| async move {
                    let read = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                    tokio::time::sleep(work).await;
                    read.len().to_string()
                }),
            )
            .layer(axum::middleware::from_fn_with_state(observed, observe))
    }

    /// A body of `chunks` chunks, one every 200 ms.
    fn slow_body(chunks: usize) -> Body {
        Body::from_stream(futures::stream::unfold(0, move |sent| async move {
            if sent == chunks {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((
                Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789")),
                sent + 1,
            ))
        }))
    }

    fn request(body: Body) -> Request {
        Request::builder()
            .method("POST")
            .uri("/work")
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn a_handler_still_busy_a_timeout_after_its_body_was_read_is_answered_503() {
        let response = app(Duration::from_secs(5))
            .oneshot(request(slow_body(2)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(&REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], "ERROR");
        assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
    }

    #[tokio::test]
    async fn a_slow_upload_is_not_cut_by_the_handler_timeout() {
        // Eight chunks over 1.6 s, five times the timeout; the handler is then quick.
        let response = app(Duration::from_millis(100))
            .oneshot(request(slow_body(8)))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], b"80");
    }

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        for kept in [
            "abc-123",
            "0f8e0c9a-6c2f-4e1d-9a55-3b1f4b0e2c11",
            "trace:1.2_x",
        ] {
            assert!(
                is_sane_request_id(&HeaderValue::from_static(kept)),
                "{kept}"
            );
        }
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        for refused in ["", "a b", "x\"y", "évil", long.as_str()] {
            let value = HeaderValue::from_bytes(refused.as_bytes()).unwrap();
            assert!(!is_sane_request_id(&value), "{refused}");
        }
        assert_eq!(fresh_request_id().len(), 36);
    }
}
