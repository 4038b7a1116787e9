//! Slow and greedy clients: partial heads, unfinished bodies and idle connections are closed after
//! their timeouts while others are served, the connection cap answers 503 at once, running out
//! of descriptors does not stop the server, and hyper's own refusals carry the error body.
//!
//! Timeouts are set to a second or two; "closed" means closed within a generous bound (never a
//! timed assertion on how fast).

use serde_json::Value;
use signet::clock::ManualClock;
use signet::config::Settings;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{database_url_for, start_with, Db, TestApp};

/// Far more than any timeout set here: a connection still open after this was not cut.
const BOUND: Duration = Duration::from_secs(20);

async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(Db::Sqlite, data_dir.path()).await.unwrap();
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    start_with(data_dir, database_url, clock, adjust).await
}

async fn connect(base: &str) -> TcpStream {
    TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (end of stream or reset) and returns what came;
/// `None` if it was still open after [`BOUND`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed.is_ok().then_some(received)
}

/// Reads one response with a `content-length` body: its status and its body.
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = find(&received, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if received.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap();
                return (status, received[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = tokio::time::timeout(BOUND, stream.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {received:?}");
        received.extend_from_slice(&buf[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The status and parsed error body of a raw response.
fn parse_raw(received: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(received);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not a response: {text}"));
    let status = head[9..12].parse().unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap())
}

async fn assert_served(app: &TestApp) {
    let response = app.client.get(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_head_is_closed_while_others_are_served() {
    let app = spawn_app_with(|s| s.header_timeout_seconds = 1).await;
    for base in [&app.address, &app.automation] {
        let mut slow = connect(base).await;
        slow.write_all(b"GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\nX-Wait: ")
            .await
            .unwrap();
        assert_served(&app).await;
        let received = read_until_closed(&mut slow).await;
        assert_eq!(
            received.as_deref(),
            Some(&[][..]),
            "closed without an answer"
        );
    }
}

#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_cut_at_the_header_deadline() {
    let app = spawn_app_with(|s| s.header_timeout_seconds = 1).await;
    let stream = connect(&app.address).await;
    let (mut reader, mut writer) = stream.into_split();
    // Each byte comes well within any per-read timeout; only a deadline on the whole head cuts it.
    let trickle = tokio::spawn(async move {
        for byte in b"GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\nX-Slow: ".repeat(10) {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let closed = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 64];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    trickle.abort();
    assert!(closed.is_ok(), "a trickled head must be cut");
    assert_served(&app).await;
}

#[tokio::test]
async fn an_unfinished_body_is_closed_after_the_body_timeout() {
    let app = spawn_app_with(|s| s.body_timeout_seconds = 1).await;
    let mut slow = connect(&app.address).await;
    let head = format!(
        "POST /signers HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"signerId\": ",
        app.api_key
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    assert_served(&app).await;
    let received = read_until_closed(&mut slow)
        .await
        .expect("an unfinished body must be cut");
    // The application is told why its body ended, and its answer reaches the client first.
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("no byte of the request body arrived"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_trickled_slowly_but_steadily_is_not_cut() {
    let app = spawn_app_with(|s| s.body_timeout_seconds = 1).await;
    let body = br#"{"signerId": "trickle", "userId": "u", "csr": "this is not a CSR"}"#;
    let mut stream = connect(&app.address).await;
    let head = format!(
        "POST /signers HTTP/1.1\r\nHost: signet\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        app.api_key,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Eight pieces, a quarter second apart: twice the body timeout in all, never a second's pause.
    for piece in body.chunks(body.len().div_ceil(8)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stream.write_all(piece).await.unwrap();
    }
    let (status, body) = read_response(&mut stream).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["responseObject"]["code"], "CSR_INVALID_SIGNATURE_ERROR",
        "the whole body was read and parsed: {body}"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_its_responses_is_cut_after_the_body_timeout() {
    let app = spawn_app_with(|s| s.body_timeout_seconds = 1).await;
    let stream = connect(&app.address).await;
    // Pipelined requests whose responses are never read: once the socket buffers are full the
    // server's writes wait on the client, and the client's writes on the server.
    let (_never_read, mut writer) = stream.into_split();
    let requests = b"GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\n\r\n".repeat(100);
    let cut = tokio::time::timeout(BOUND, async {
        loop {
            if writer.write_all(&requests).await.is_err() {
                break;
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "the connection must be cut");
    assert_served(&app).await;
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let app = spawn_app_with(|s| {
        s.idle_timeout_seconds = 1;
        s.header_timeout_seconds = 600;
    })
    .await;
    for base in [&app.address, &app.automation] {
        let mut stream = connect(base).await;
        stream
            .write_all(b"GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\n\r\n")
            .await
            .unwrap();
        let (status, _) = read_response(&mut stream).await;
        assert!(status == 200 || status == 404, "{status}");
        let after = read_until_closed(&mut stream)
            .await
            .expect("an idle connection must be closed");
        assert!(after.is_empty(), "nothing more is sent");
    }
}

#[tokio::test]
async fn with_the_connection_cap_reached_new_connections_are_refused_at_once_until_some_close() {
    let app = spawn_app_with(|s| s.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect(&app.address).await);
    }

    let mut over = connect(&app.address).await;
    let refused = read_until_closed(&mut over)
        .await
        .expect("a connection over the cap is closed at once");
    let (status, body) = parse_raw(&refused);
    assert_eq!(status, 503);
    assert_eq!(body["status"], "ERROR");
    assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
    // The other listener has a cap of its own.
    let automation = app
        .client
        .get(format!(
            "{}/orders/00000000-0000-0000-0000-000000000000/state",
            app.automation
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(automation.status(), 404);

    drop(held);
    let served = tokio::time::timeout(BOUND, async {
        loop {
            if let Ok(response) = app.client.get(app.url("/ca/ca.pem")).send().await {
                if response.status() == 200 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "served again once the held connections closed"
    );
}

#[tokio::test]
async fn a_garbage_request_line_is_answered_400_with_the_error_body() {
    let app = spawn_app().await;
    for (base, after_a_request) in [
        (&app.address, false),
        (&app.automation, false),
        (&app.address, true),
    ] {
        let mut stream = connect(base).await;
        if after_a_request {
            stream
                .write_all(b"GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\n\r\n")
                .await
                .unwrap();
            assert_eq!(read_response(&mut stream).await.0, 200);
        }
        stream.write_all(b"this is not http\r\n\r\n").await.unwrap();
        let received = read_until_closed(&mut stream).await.unwrap();
        let (status, body) = parse_raw(&received);
        assert_eq!(status, 400);
        assert_eq!(body["status"], "ERROR");
        assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
        assert!(body["responseObject"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid HTTP/1.1"));
    }
}

#[tokio::test]
async fn an_oversize_head_is_answered_431_with_the_error_body() {
    let app = spawn_app().await;
    let mut stream = connect(&app.address).await;
    let head = format!(
        "GET /ca/ca.pem HTTP/1.1\r\nHost: signet\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream).await.unwrap();
    let (status, body) = parse_raw(&received);
    assert_eq!(status, 431);
    assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
}

#[tokio::test]
async fn an_oversize_uri_is_answered_414_with_the_error_body_on_both_listeners() {
    let app = spawn_app().await;
    let long = "a".repeat(10 * 1024);
    for base in [&app.address, &app.automation] {
        let response = app
            .client
            .get(format!("{base}/{long}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 414);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ERROR");
        assert_eq!(body["responseObject"]["code"], "ERROR_GENERIC");
    }
    assert_served(&app).await;
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A `signet serve` child process with both listeners on free ports, its log collected.
struct Child {
    process: std::process::Child,
    main: String,
    automation: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Child {
    /// Starts it (under `ulimit -n open_files`, if given) and waits until both listen.
    fn serve(open_files: Option<u32>, header_timeout_seconds: u64) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        let (main, automation) = (free_port(), free_port());
        let ulimit = open_files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let mut process = Command::new("sh")
            .arg("-c")
            .arg(format!("{ulimit}exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_signet"))
            .args(["serve", "--enable-automation-api", "--data-dir"])
            .arg(&dir)
            .arg("--header-timeout-seconds")
            .arg(header_timeout_seconds.to_string())
            .env("SIGNET_LISTEN", format!("127.0.0.1:{main}"))
            .env(
                "SIGNET_AUTOMATION_LISTEN",
                format!("127.0.0.1:{automation}"),
            )
            .env("SIGNET_LOG", "info")
            .env_remove("SIGNET_DATABASE_URL")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (listening, started) = std::sync::mpsc::channel();
        let lines = BufReader::new(process.stderr.take().unwrap()).lines();
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("the Automation API is listening") {
                    let _ = listening.send(());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let up = started.recv_timeout(Duration::from_secs(60));
        let child = Self {
            process,
            main: format!("127.0.0.1:{main}"),
            automation: format!("127.0.0.1:{automation}"),
            log,
        };
        assert!(up.is_ok(), "signet did not start: {}", child.log());
        child
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Retries `GET url` until it is answered with `status`; whether it was within the bound.
async fn answered_eventually(url: &str, status: u16) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(90), async {
        loop {
            if let Ok(response) = client.get(url).send().await {
                if response.status() == status {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .is_ok()
}

/// 300 idle connections to a `signet serve` whose open-file limit is 256 (a scaled-down 1,100
/// against 1,024): the cap fitted to the limit answers the surplus 503, the Automation API answers
/// at once, the main listener again once the header timeout has cut the idle ones — and the
/// process never runs out of descriptors.
#[tokio::test]
async fn a_flood_of_idle_connections_under_a_low_open_file_limit_does_not_stop_either_listener() {
    let child = Child::serve(Some(256), 2);
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(&child.main).await.unwrap());
    }
    let automation = answered_eventually(
        &format!(
            "http://{}/orders/00000000-0000-0000-0000-000000000000/state",
            child.automation
        ),
        404,
    )
    .await;
    let main = answered_eventually(&format!("http://{}/ca/ca.pem", child.main), 200).await;
    drop(idle);
    let log = child.log();
    assert!(automation, "the Automation API answers: {log}");
    assert!(main, "the main listener answers again: {log}");
    assert!(
        log.contains("max_connections does not fit the open-file limit"),
        "{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
}

/// Descriptors running out under a running server (here: its limit lowered to 64 after start,
/// so the cap no longer protects them): accepting fails, is retried with backoff and logged once
/// per burst, and both listeners answer again once the idle connections are cut.
#[tokio::test]
async fn accept_errors_are_backed_off_logged_once_per_burst_and_recovered_from() {
    let child = Child::serve(None, 2);
    let lowered = Command::new("prlimit")
        .arg("--pid")
        .arg(child.process.id().to_string())
        .arg("--nofile=64:64")
        .status()
        .expect("prlimit (util-linux) is needed for this test");
    assert!(lowered.success());
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(TcpStream::connect(&child.main).await.unwrap());
    }
    let main = answered_eventually(&format!("http://{}/ca/ca.pem", child.main), 200).await;
    let automation = answered_eventually(
        &format!(
            "http://{}/orders/00000000-0000-0000-0000-000000000000/state",
            child.automation
        ),
        404,
    )
    .await;
    drop(idle);
    let log = child.log();
    assert!(main && automation, "both listeners answer again: {log}");
    let failing = child.count("accepting connections fails");
    let recovered = child.count("accepting connections again");
    assert!(failing >= 1, "the accept errors are logged: {log}");
    assert!(
        failing <= recovered + 2,
        "once per burst (one per listener may still be open): {log}"
    );
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
