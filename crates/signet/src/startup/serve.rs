//! The accept loop both listeners run instead of `axum::serve`: a cap on concurrent connections,
//! accept errors backed off, each connection served by hyper under the deadlines of
//! `startup::connection`, and a graceful shutdown that lets requests in flight finish.
//!
//! `axum::serve` has no timeouts and no cap, so slow or idle clients could hold connections — and
//! file descriptors — forever, and once the process ran out of descriptors every request timed
//! out. Here a connection over the cap is accepted and answered 503 at once (accepting it keeps
//! the backlog moving and costs the descriptor only for that instant), and the cap is fitted to
//! the process's open-file limit so the descriptors the server itself needs (database, documents)
//! are never all taken by sockets.

use anyhow::Context;
use axum::Router;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::connection::{self, ConnService, Tracker, WatchedIo};
use super::tls::{ClientCertificate, TlsListener};
use super::zero_copy::{SendFileTo, SendQueue};
use crate::config::Settings;
use tokio::io::AsyncRead;

/// How long a client may take, per connection (see [`Settings`] for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// A request head must be complete this long after the connection opened, or after its first
    /// byte arrived on a kept-alive connection.
    pub header: Duration,
    /// Longest wait for the next bytes of a request body being read, or for the client to take the
    /// next bytes of a response.
    pub body: Duration,
    /// Longest pause between one response and the next request on a kept-alive connection.
    pub idle: Duration,
}

/// The connection settings of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub timeouts: Timeouts,
    /// Most connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long requests in flight may take to finish once shutdown begins; connections still
    /// open then are closed.
    pub grace: Duration,
}

impl ConnectionLimits {
    /// The limits for each of `listeners` listeners: the settings checked, the cap fitted to the
    /// process's open-file limit (logged when that lowers it).
    pub fn from_settings(settings: &Settings, listeners: usize) -> anyhow::Result<Self> {
        let seconds = |name: &str, value: u64| {
            anyhow::ensure!(value > 0, "{name} must be at least 1");
            Ok(Duration::from_secs(value))
        };
        let timeouts = Timeouts {
            header: seconds("header_timeout_seconds", settings.header_timeout_seconds)?,
            body: seconds("body_timeout_seconds", settings.body_timeout_seconds)?,
            idle: seconds("idle_timeout_seconds", settings.idle_timeout_seconds)?,
        };
        let configured = settings.max_connections;
        anyhow::ensure!(
            (1..=MAX_CONNECTIONS_CEILING).contains(&configured),
            "max_connections must be between 1 and {MAX_CONNECTIONS_CEILING}"
        );
        let open_files = open_file_limit();
        let max_connections = fit_to_open_files(configured, listeners, open_files);
        if max_connections < configured {
            tracing::warn!(
                max_connections = configured,
                open_file_limit = open_files,
                effective = max_connections,
                "max_connections does not fit the open-file limit: each listener takes at most the effective number (raise the limit, e.g. LimitNOFILE, to allow more)"
            );
        }
        Ok(Self {
            timeouts,
            max_connections,
            grace: seconds("shutdown_grace_seconds", settings.shutdown_grace_seconds)?,
        })
    }
}

/// Above this the semaphore's permit count could not be taken back in one piece at shutdown.
const MAX_CONNECTIONS_CEILING: usize = 1 << 24;

/// The per-listener cap that leaves descriptors for the rest of the server: a quarter of the
/// limit (at least 64, at most 1,024) is kept back, the rest shared evenly by the listeners.
fn fit_to_open_files(configured: usize, listeners: usize, open_files: Option<u64>) -> usize {
    let Some(limit) = open_files.and_then(|limit| usize::try_from(limit).ok()) else {
        return configured;
    };
    let reserve = (limit / 4).clamp(64, 1024);
    let per_listener = limit.saturating_sub(reserve) / listeners.max(1);
    configured.min(per_listener.max(1))
}

/// The soft `RLIMIT_NOFILE` of this process (Linux: read from `/proc`; `None` elsewhere or when
/// unlimited).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_file_limit(&limits)
}

fn parse_open_file_limit(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for the connections'
/// requests in flight to finish (idle connections close at once), for at most the grace period:
/// connections still open then are closed, so a slow client cannot keep the process alive.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, router, limits, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given: each connection's handshake must be done within the
/// header timeout (counted from the accept, like the first request head), so a client that
/// trickles its handshake cannot hold a connection either.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<TlsListener>>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("reading the listener's address")?;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(OpenConnections::default());
    let mut backoff = AcceptBackoff::default();
    let mut refusing = false;
    let mut shutdown = pin!(shutdown);
    let close_all = tokio_util::sync::CancellationToken::new();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                let delay = backoff.failed();
                if backoff.failures == 1 {
                    tracing::warn!(listen = %address, error = %error, "accepting connections fails; retrying with backoff (logged once until it recovers)");
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
        };
        if let Some(failures) = backoff.succeeded() {
            tracing::info!(listen = %address, failures, "accepting connections again");
        }
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if std::mem::take(&mut refusing) {
                    tracing::info!(listen = %address, "below the connection cap again");
                }
                let tracker = Tracker::new(limits.timeouts);
                let registered = open.register(tracker.clone());
                let router = router.clone();
                let closed = close_all.clone();
                let tls = tls.clone();
                let header_timeout = limits.timeouts.header;
                tokio::spawn(async move {
                    let connection = async move {
                        match tls {
                            None => {
                                // hyper writes a response's head and body as they come; with
                                // Nagle on, the last short segment of one can wait for the
                                // client's delayed ACK (TLS connections set this in the handshake).
                                let _ = stream.set_nodelay(true);
                                let zero_copy = Some(SendQueue::default());
                                serve_connection(stream, router, tracker, None, zero_copy).await
                            }
                            Some(tls) => {
                                let handshake =
                                    tokio::time::timeout(header_timeout, tls.handshake(stream));
                                let shut_down = std::future::poll_fn(|cx| {
                                    if tracker.shutdown_requested(cx) {
                                        Poll::Ready(())
                                    } else {
                                        Poll::Pending
                                    }
                                });
                                let session = tokio::select! {
                                    session = handshake => session.unwrap_or_else(|_| {
                                        tracing::debug!("closing a connection whose TLS handshake was not done in time");
                                        None
                                    }),
                                    () = shut_down => None,
                                };
                                if let Some((stream, client)) = session {
                                    serve_connection(stream, router, tracker, client, None).await;
                                }
                            }
                        }
                    };
                    tokio::select! {
                        biased;
                        () = connection => {}
                        () = closed.cancelled() => {}
                    }
                    drop(registered);
                    drop(permit);
                });
            }
            Err(_) => {
                if !std::mem::replace(&mut refusing, true) {
                    tracing::warn!(listen = %address, max_connections = limits.max_connections, "connection cap reached: new connections are answered 503 until some close");
                }
                refuse(&stream);
            }
        }
    }
    // No new connections from here; open ones finish what they are doing.
    drop(listener);
    open.shut_down();
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            listen = %address,
            open = open.lock().trackers.len(),
            grace_seconds = limits.grace.as_secs(),
            "requests were still in flight at the end of the shutdown grace period: closing their connections"
        );
        close_all.cancel();
        // Each connection's task ends at its next poll, which the cancellation wakes.
        let _ = tokio::time::timeout(Duration::from_secs(1), permits.acquire_many(all)).await;
    }
    Ok(())
}

/// The open connections, so shutdown can reach each one (once per connection, not per poll).
#[derive(Default)]
struct OpenConnections {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    trackers: HashMap<u64, Arc<Tracker>>,
}

/// Removes its connection from the registry when the connection ends.
struct Registered {
    open: Arc<OpenConnections>,
    id: u64,
}

impl OpenConnections {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(self: &Arc<Self>, tracker: Arc<Tracker>) -> Registered {
        let mut registry = self.lock();
        let id = registry.next;
        registry.next += 1;
        registry.trackers.insert(id, tracker);
        Registered {
            open: self.clone(),
            id,
        }
    }

    fn shut_down(&self) {
        for tracker in self.lock().trackers.values() {
            tracker.request_shutdown();
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().trackers.remove(&self.id);
    }
}

/// Errors that concern one connection that never got going; the next accept is unaffected.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A connection over the cap: the 503 goes out if the socket takes it at once (a fresh socket's
/// buffer does), and the connection is closed either way. Bytes the client already sent are
/// read first, so closing does not reset the connection before the client reads the answer.
fn refuse(stream: &TcpStream) {
    let _ = stream.try_write(over_capacity_response());
    let mut scratch = [0u8; 4096];
    for _ in 0..4 {
        match stream.try_read(&mut scratch) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

fn over_capacity_response() -> &'static [u8] {
    static RESPONSE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    RESPONSE.get_or_init(connection::over_capacity_response)
}

/// One connection: hyper serves it, the watchdog closes it when a deadline passes, and shutdown
/// asks hyper to finish the request in flight and close. One hand-written poll instead of a
/// `select!`, so a wake-up polls only the connection and, when it moved, the watchdog's timer.
async fn serve_connection<S>(
    stream: S,
    router: Router,
    tracker: Arc<Tracker>,
    client_certificate: Option<ClientCertificate>,
    zero_copy: Option<SendQueue>,
) where
    S: AsyncRead + SendFileTo + Send + 'static,
{
    let io = TokioIo::new(WatchedIo::new(stream, tracker.clone(), zero_copy.clone()));
    let service = ConnService::new(router, tracker.clone())
        .with_client_certificate(client_certificate)
        .with_zero_copy(zero_copy);
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Vectored writes queue a body's frames as they are instead of copying them into one
    // buffer: cheaper for every large body, and what zero-copy responses rely on.
    builder.writev(true);
    // hyper's own header timeout is off (it has no timer): the watchdog keeps the head deadline
    // apart from the idle one.
    builder.max_header_size(connection::MAX_HEAD_BYTES);
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut watchdog = pin!(tokio::time::sleep(Duration::ZERO));
    let mut armed = false;
    let mut shutting_down = false;
    std::future::poll_fn(|cx| loop {
        if !shutting_down && tracker.shutdown_requested(cx) {
            shutting_down = true;
            connection.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            if let Err(error) = result {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            return Poll::Ready(());
        }
        // The timer only ever moves earlier here; a deadline that moved later is found when it
        // fires, which spares a timer reset per request on a busy kept-alive connection.
        if tracker.take_changed() {
            if let Some((at, _)) = tracker.deadline() {
                if !armed || at < watchdog.deadline() {
                    watchdog.as_mut().reset(at);
                    armed = true;
                }
            }
        }
        if !armed || watchdog.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        match tracker.deadline() {
            Some((at, why)) if at <= Instant::now() => {
                tracing::debug!(reason = why.as_str(), "closing a slow connection");
                return Poll::Ready(());
            }
            Some((at, _)) => watchdog.as_mut().reset(at),
            None => {
                armed = false;
                return Poll::Pending;
            }
        }
    })
    .await;
}

/// Accept failures (out of descriptors, out of memory) are retried after a pause that doubles
/// from 10 ms to 1 s, so a burst neither spins the CPU nor floods the log.
#[derive(Debug, Default)]
struct AcceptBackoff {
    /// Failures since the last successful accept.
    failures: u32,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const LONGEST: Duration = Duration::from_secs(1);

    /// Counts a failure; returns how long to wait before the next accept.
    fn failed(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        Self::FIRST
            .saturating_mul(1 << doublings)
            .min(Self::LONGEST)
    }

    /// Counts a success; returns the number of failures of the burst it ends, if there was one.
    fn succeeded(&mut self) -> Option<u32> {
        let failures = std::mem::take(&mut self.failures);
        (failures > 0).then_some(failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_failures_back_off_from_ten_milliseconds_doubling_to_one_second() {
        let mut backoff = AcceptBackoff::default();
        let delays: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(backoff.succeeded(), Some(10), "the burst is reported once");
        assert_eq!(backoff.succeeded(), None);
        assert_eq!(backoff.failed().as_millis(), 10, "a new burst starts short");
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_the_rest_of_the_server() {
        assert_eq!(fit_to_open_files(10_000, 2, Some(1024)), 384);
        assert_eq!(fit_to_open_files(10_000, 1, Some(1024)), 768);
        assert_eq!(fit_to_open_files(10_000, 2, Some(256)), 96);
        assert_eq!(
            fit_to_open_files(100, 2, Some(1024)),
            100,
            "a lower cap stays"
        );
        assert_eq!(fit_to_open_files(10_000, 2, Some(1 << 20)), 10_000);
        assert_eq!(fit_to_open_files(10_000, 2, None), 10_000);
        assert_eq!(fit_to_open_files(10_000, 2, Some(10)), 1);
    }

    #[test]
    fn the_open_file_limit_is_read_from_proc_limits() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             63711                63711                processes \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_file_limit(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files     \n";
        assert_eq!(parse_open_file_limit(unlimited), None);
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let settings = Settings {
            body_timeout_seconds: 0,
            ..Settings::default()
        };
        let error = ConnectionLimits::from_settings(&settings, 1).unwrap_err();
        assert!(
            error.to_string().contains("body_timeout_seconds"),
            "{error}"
        );
    }
}
