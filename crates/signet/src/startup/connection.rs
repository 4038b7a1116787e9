//! One HTTP/1.1 connection under Signet's deadlines, and hyper's own refusals given the error body.
//!
//! hyper parses and writes HTTP; this module decides how long a client may take. A connection is
//! always in one [`Phase`]: reading a request head (a total deadline, so a client trickling a
//! byte every few seconds is still cut), idle between requests (the keep-alive timeout), or busy
//! with a request (no connection deadline: the request body has its own progress-based timeout in
//! [`StallingBody`], and the application may take its time). A watchdog in the connection's task
//! ([`super::serve`]) sleeps until the phase's deadline and drops the connection when it passes
//! (a response the client stops reading is cut after the body timeout, too);
//! the phase is moved by three observers hyper cannot bypass: the socket wrapper [`WatchedIo`]
//! (the first byte of a head, writes that wait on a client that does not read), the service
//! wrapper [`ConnService`] (a request reached the application) and the response body wrapper
//! [`TrackedBody`] (its response is done).
//!
//! hyper answers a head it cannot parse (400), a URI it cannot hold (414) and a head over its
//! limit (431) by itself, with no body, before any service sees a request. Those are the only
//! bytes hyper writes while the connection is waiting for a request, so [`WatchedIo`] recognises
//! them by the phase alone and rewrites them into Signet's documented error body. URIs are held to
//! a tighter limit than hyper's by [`ConnService`], which answers 414 itself.

use axum::body::Body as AxumBody;
use axum::body::Bytes;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use futures::task::AtomicWaker;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::serve::Timeouts;
use super::tls::ClientCertificate;
use super::zero_copy::{SendFileTo, SendFromFile, SendQueue, StandInBody};
use crate::api::cloudsigner::error::ErrorCode;

/// Longest request target (path and query) the application is shown; longer ones get a 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Longest request head (request line and header fields) hyper reads; longer ones get a 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Where a connection is in its request cycle, as far as its deadlines care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request head is arriving and must be complete by `deadline`.
    Head { deadline: Instant },
    /// Between requests on a kept-alive connection: the next one must start by `since + idle`.
    Idle { since: Instant },
    /// A request is with the application.
    Busy,
    /// The response body is done; hyper is still writing its last bytes.
    Finishing,
}

/// Why the watchdog closed a connection (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Head,
    Idle,
    UnreadResponse,
}

impl Expired {
    pub fn as_str(self) -> &'static str {
        match self {
            Expired::Head => "the request head was not complete in time",
            Expired::Idle => "the connection was idle between requests for too long",
            Expired::UnreadResponse => "the client stopped reading the response",
        }
    }
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Since when a write has waited for the client to read; `None` while writes go through.
    write_stalled_since: Option<Instant>,
}

/// A connection's phase and deadlines, shared by its observers and its watchdog. Everything that
/// moves the phase runs inside the connection's own task (hyper polls the socket, the service and
/// the bodies there), so the watchdog learns of a change by a flag it checks after each poll of
/// the connection, not by a wake-up; the atomics spare the hot path the lock when nothing changes.
#[derive(Debug)]
pub struct Tracker {
    state: Mutex<State>,
    timeouts: Timeouts,
    /// A deadline may have moved since the watchdog last looked.
    changed: AtomicBool,
    /// Mirrors of the state the socket wrapper asks about on every read and write.
    idle: AtomicBool,
    busy: AtomicBool,
    write_stalled: AtomicBool,
    /// Set when the server shuts down; `waker` wakes the connection's task to see it.
    shutdown: AtomicBool,
    waker: AtomicWaker,
}

impl Tracker {
    /// A fresh connection: its first request head is due within the header timeout.
    pub fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                phase: Phase::Head {
                    deadline: Instant::now() + timeouts.header,
                },
                write_stalled_since: None,
            }),
            timeouts,
            changed: AtomicBool::new(true),
            idle: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            write_stalled: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is a few plain fields: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: after an idle wait they start a new head, whose deadline starts now.
    fn bytes_arrived(&self) {
        if !self.idle.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        if let Phase::Idle { .. } = state.phase {
            state.phase = Phase::Head {
                deadline: Instant::now() + self.timeouts.header,
            };
            self.idle.store(false, Ordering::Relaxed);
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    fn request_started(&self) {
        self.lock().phase = Phase::Busy;
        self.idle.store(false, Ordering::Relaxed);
        self.busy.store(true, Ordering::Relaxed);
        self.changed.store(true, Ordering::Relaxed);
    }

    fn response_done(&self) {
        let mut state = self.lock();
        if state.phase == Phase::Busy {
            state.phase = Phase::Finishing;
        }
    }

    /// Everything hyper wrote so far reached the socket: a finished response is now fully sent.
    fn flushed(&self) {
        if !self.busy.load(Ordering::Relaxed) {
            return;
        }
        let mut state = self.lock();
        if state.phase == Phase::Finishing {
            state.phase = Phase::Idle {
                since: Instant::now(),
            };
            self.busy.store(false, Ordering::Relaxed);
            self.idle.store(true, Ordering::Relaxed);
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// Whether hyper may write now without a request having reached the application.
    fn awaiting_request(&self) -> bool {
        !self.busy.load(Ordering::Relaxed)
    }

    fn write_stalled(&self) {
        if self.write_stalled.swap(true, Ordering::Relaxed) {
            return;
        }
        self.lock().write_stalled_since = Some(Instant::now());
        self.changed.store(true, Ordering::Relaxed);
    }

    fn write_progressed(&self) {
        if self.write_stalled.swap(false, Ordering::Relaxed) {
            self.lock().write_stalled_since = None;
        }
    }

    /// The earliest deadline in force and what passing it means; `None` while nothing is due.
    pub fn deadline(&self) -> Option<(Instant, Expired)> {
        let state = self.lock();
        let phase = match state.phase {
            Phase::Head { deadline } => Some((deadline, Expired::Head)),
            Phase::Idle { since } => Some((since + self.timeouts.idle, Expired::Idle)),
            Phase::Busy | Phase::Finishing => None,
        };
        let write = state
            .write_stalled_since
            .map(|since| (since + self.timeouts.body, Expired::UnreadResponse));
        match (phase, write) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Whether a deadline may have moved since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::Relaxed)
    }

    /// Asks the connection to finish its request in flight and close.
    pub fn request_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether shutdown was asked for; otherwise `cx` is woken when it is.
    pub fn shutdown_requested(&self, cx: &Context<'_>) -> bool {
        if self.shutdown.load(Ordering::Acquire) {
            return true;
        }
        self.waker.register(cx.waker());
        self.shutdown.load(Ordering::Acquire)
    }
}

/// The connection's byte stream as hyper sees it (the TCP stream, or the TLS session over it):
/// reads and writes pass through, observed by the [`Tracker`].
pub struct WatchedIo<S = TcpStream> {
    inner: S,
    tracker: Arc<Tracker>,
    /// hyper's own refusal, once it starts writing one: collected, then sent rewritten.
    refusal: Option<Refusal>,
    /// On a plain TCP connection, the file segments that stand-in body bytes are sent from
    /// (see [`super::zero_copy`]).
    zero_copy: Option<SendQueue>,
}

impl<S: AsyncRead + SendFileTo> WatchedIo<S> {
    pub fn new(inner: S, tracker: Arc<Tracker>, zero_copy: Option<SendQueue>) -> Self {
        Self {
            inner,
            tracker,
            refusal: None,
            zero_copy,
        }
    }

    /// Takes hyper's bytes into the refusal when no request is in progress; `false` otherwise.
    fn capture_refusal(&mut self, bytes: &[u8]) -> bool {
        if self.refusal.is_none() {
            if !self.tracker.awaiting_request() {
                return false;
            }
            self.refusal = Some(Refusal::default());
        }
        if let Some(refusal) = &mut self.refusal {
            refusal.take(bytes);
        }
        true
    }

    /// Sends the rewritten refusal, if there is one, before hyper's flush or shutdown.
    fn poll_send_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(refusal) = &mut self.refusal else {
            return Poll::Ready(Ok(()));
        };
        refusal.seal();
        while refusal.sent < refusal.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &refusal.out[refusal.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            refusal.sent += n;
        }
        Poll::Ready(Ok(()))
    }

    fn observe_write(&self, result: &Poll<io::Result<usize>>) {
        match result {
            Poll::Pending => self.tracker.write_stalled(),
            Poll::Ready(_) => self.tracker.write_progressed(),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WatchedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.tracker.bytes_arrived();
        }
        result
    }
}

impl<S: AsyncRead + SendFileTo> AsyncWrite for WatchedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.capture_refusal(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = match &this.zero_copy {
            Some(queue) => {
                queue.poll_write(Pin::new(&mut this.inner), cx, &[io::IoSlice::new(buf)])
            }
            None => Pin::new(&mut this.inner).poll_write(cx, buf),
        };
        this.observe_write(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.refusal.is_some() || this.tracker.awaiting_request() {
            let mut taken = 0;
            for buf in bufs {
                this.capture_refusal(buf);
                taken += buf.len();
            }
            return Poll::Ready(Ok(taken));
        }
        let result = match &this.zero_copy {
            Some(queue) => queue.poll_write(Pin::new(&mut this.inner), cx, bufs),
            None => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
        };
        this.observe_write(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_refusal(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.tracker.flushed();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_refusal(cx))?;
        let Some(refusal) = &mut this.refusal else {
            return Pin::new(&mut this.inner).poll_shutdown(cx);
        };
        if !refusal.shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            refusal.shut = true;
        }
        refusal.poll_linger(&mut this.inner, cx).map(Ok)
    }
}

/// hyper's bodiless refusal as it wrote it, and what is sent instead.
#[derive(Default)]
struct Refusal {
    /// hyper's bytes (a status line and a few header fields; bounded all the same).
    head: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    sealed: bool,
    /// Our side is shut down; what the client still sends is read and dropped for a moment.
    shut: bool,
    linger: Option<Pin<Box<Sleep>>>,
    drained: usize,
}

impl Refusal {
    const MAX_HEAD: usize = 4096;
    /// How long, and how much, the client's unread request is drained after a refusal: closing a
    /// socket with unread bytes resets the connection, and a reset can destroy the answer
    /// before the client reads it (the lingering close of web servers).
    const LINGER: Duration = Duration::from_secs(2);
    const MAX_DRAINED: usize = 1 << 20;

    /// Reads and drops the client's bytes until it closes, or for [`Self::LINGER`] at most.
    fn poll_linger<S: AsyncRead + Unpin>(&mut self, io: &mut S, cx: &mut Context<'_>) -> Poll<()> {
        let linger = self
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(Self::LINGER)));
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    self.drained += buf.filled().len();
                    if self.drained > Self::MAX_DRAINED {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => return linger.as_mut().poll(cx),
            }
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.sealed {
            return;
        }
        let room = Self::MAX_HEAD.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Fixes what is sent: the rewritten response, or hyper's own bytes when they are not a
    /// refusal this module knows.
    fn seal(&mut self) {
        if self.sealed {
            return;
        }
        self.sealed = true;
        let head = std::mem::take(&mut self.head);
        self.out = rewrite_refusal(&head).unwrap_or(head);
    }
}

/// hyper's refusal head with Signet's error body: hyper's status line and `date` kept, its
/// `content-length: 0` replaced. `None` when `head` is not one of hyper's refusals.
fn rewrite_refusal(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (fields, rest) = text.split_once("\r\n\r\n")?;
    if !rest.is_empty() {
        return None;
    }
    let mut lines = fields.split("\r\n");
    let status_line = lines.next()?;
    let code: u16 = status_line.split(' ').nth(1)?.parse().ok()?;
    let message = refusal_message(StatusCode::from_u16(code).ok()?)?;
    let body = error_body(ErrorCode::Generic, &message);
    let mut out = Vec::with_capacity(head.len() + body.len() + 96);
    out.extend_from_slice(status_line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&body);
    Some(out)
}

/// What each of hyper's own refusals tells the client.
fn refusal_message(status: StatusCode) -> Option<String> {
    match status {
        StatusCode::BAD_REQUEST => {
            Some("the request is not valid HTTP/1.1: its request line or a header field is malformed".into())
        }
        StatusCode::URI_TOO_LONG => Some(format!(
            "the request target is longer than {MAX_URI_BYTES} bytes"
        )),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Some(format!(
            "the request head (request line and header fields) is larger than {MAX_HEAD_BYTES} bytes or has more than 100 header fields"
        )),
        _ => None,
    }
}

/// The documented error body (`{"status": "ERROR", "responseObject": {...}}`) as bytes, for the
/// answers written below the router.
pub fn error_body(code: ErrorCode, message: &str) -> Vec<u8> {
    serde_json::json!({
        "status": "ERROR",
        "responseObject": {"code": code.as_str(), "message": message}
    })
    .to_string()
    .into_bytes()
}

/// The whole answer to a connection over the cap: 503 with the error body, then close.
pub fn over_capacity_response() -> Vec<u8> {
    let body = error_body(
        ErrorCode::Generic,
        "the server is at its connection limit; try again shortly",
    );
    let mut out = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The application as hyper calls it: requests are marked on the [`Tracker`], their bodies
/// given the stall timeout, their responses watched to the end.
#[derive(Clone)]
pub struct ConnService {
    router: Router,
    tracker: Arc<Tracker>,
    /// What the client of a TLS connection showed, given to each request as an extension.
    client_certificate: Option<ClientCertificate>,
    /// On a plain TCP connection, where a response's file segments wait for the socket.
    zero_copy: Option<SendQueue>,
}

impl ConnService {
    pub fn new(router: Router, tracker: Arc<Tracker>) -> Self {
        Self {
            router,
            tracker,
            client_certificate: None,
            zero_copy: None,
        }
    }

    /// Responses that carry [`SendFromFile`] are sent from the file through `queue` (the
    /// connection's [`WatchedIo`] holds the same queue).
    pub fn with_zero_copy(mut self, queue: Option<SendQueue>) -> Self {
        self.zero_copy = queue;
        self
    }

    /// Every request of this connection carries `certificate` (see [`ClientCertificate`]).
    pub fn with_client_certificate(mut self, certificate: Option<ClientCertificate>) -> Self {
        self.client_certificate = certificate;
        self
    }
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.tracker.request_started();
        if let Some(certificate) = &self.client_certificate {
            request.extensions_mut().insert(certificate.clone());
        }
        let tracker = self.tracker.clone();
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if target > MAX_URI_BYTES {
            let response = uri_too_long();
            return Box::pin(std::future::ready(Ok(
                response.map(|inner| TrackedBody { inner, tracker })
            )));
        }
        let body_timeout = self.tracker.timeouts.body;
        let request = request.map(|body| AxumBody::new(StallingBody::new(body, body_timeout)));
        let response = self.router.clone().oneshot(request);
        let zero_copy = self.zero_copy.clone();
        Box::pin(async move {
            let mut response = response.await?;
            let send = response.extensions_mut().remove::<SendFromFile>();
            if let (Some(queue), Some(send)) = (zero_copy, send) {
                // The same bytes, sent from the page cache instead of from the body's memory.
                *response.body_mut() = AxumBody::new(StandInBody::new(send, queue));
            }
            Ok(response.map(|inner| TrackedBody { inner, tracker }))
        })
    }
}

fn uri_too_long() -> Response<AxumBody> {
    let body = error_body(
        ErrorCode::Generic,
        &format!("the request target is longer than {MAX_URI_BYTES} bytes"),
    );
    let mut response = Response::new(AxumBody::from(body));
    *response.status_mut() = StatusCode::URI_TOO_LONG;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

/// A response body that tells the [`Tracker`] when it is done (hyper drops it then, whether it
/// read it to the end or never needed to).
pub struct TrackedBody {
    inner: AxumBody,
    tracker: Arc<Tracker>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.tracker.response_done();
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body stopped arriving while the application was reading it.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the request body arrived for {0} s")]
pub struct BodyStalled(u64);

/// A request body with a progress timeout: while it is being read, each wait for the client's
/// next bytes may last at most `timeout`. A client that keeps sending is never cut; the clock only
/// runs while the application waits, so a handler that reads late is not the client's fault.
pub struct StallingBody {
    inner: Incoming,
    timeout: Duration,
    /// Created on the first wait, re-armed at each later one (no allocation per chunk).
    stall: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl StallingBody {
    pub fn new(inner: Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stall: None,
            armed: false,
        }
    }
}

impl Body for StallingBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.armed {
                    stall.as_mut().reset(deadline);
                    this.armed = true;
                }
                ready!(stall.as_mut().poll(cx));
                this.armed = false;
                Poll::Ready(Some(Err(BodyStalled(this.timeout.as_secs()).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bodiless_refusal_from_hyper_gets_the_error_body_and_keeps_its_date() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite_refusal(hyper).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("date: Wed, 02 Dec 2026 01:00:00 GMT"));
        assert!(!head.contains("content-length: 0"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], "ERROR");
        assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
    }

    #[test]
    fn bytes_that_are_not_a_known_refusal_are_sent_as_hyper_wrote_them() {
        for bytes in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\n\r\nextra",
        ] {
            assert_eq!(rewrite_refusal(bytes), None);
        }
    }

    #[test]
    fn the_error_body_written_below_the_router_is_the_documented_one() {
        let ours: serde_json::Value =
            serde_json::from_slice(&error_body(ErrorCode::Generic, "m")).unwrap();
        assert_eq!(
            ours,
            serde_json::json!({"status": "ERROR", "responseObject": {"code": "ERROR_GENERIC", "message": "m"}})
        );
    }

    #[tokio::test]
    async fn a_kept_alive_connection_is_due_for_its_next_head_only_after_the_idle_timeout() {
        let timeouts = Timeouts {
            header: Duration::from_secs(30),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let tracker = Tracker::new(timeouts);
        assert_eq!(tracker.deadline().map(|d| d.1), Some(Expired::Head));
        tracker.request_started();
        assert_eq!(
            tracker.deadline(),
            None,
            "the application may take its time"
        );
        tracker.response_done();
        tracker.flushed();
        let (idle_until, why) = tracker.deadline().unwrap();
        assert_eq!(why, Expired::Idle);
        tracker.bytes_arrived();
        let (head_until, why) = tracker.deadline().unwrap();
        assert_eq!(why, Expired::Head);
        assert!(head_until < idle_until);
        tracker.write_stalled();
        tracker.request_started();
        assert_eq!(
            tracker.deadline().map(|d| d.1),
            Some(Expired::UnreadResponse)
        );
    }
}
