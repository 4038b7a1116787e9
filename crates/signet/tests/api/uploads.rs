//! The one upload reader under hostile bodies, on every route that reads multipart: a part whose
//! header block never ends, a text part that never ends, too many parts, a boundary too long.
//! Floods are generated as they are sent (the client never holds them) and must be refused while
//! the client is still sending, with the error body; a spawned `signet` shows the server's memory
//! stays bounded through all of them.

use bytes::Bytes;
use futures::StreamExt;
use reqwest::{Method, Response};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::helpers::{assert_error, spawn_app, TestApp};

/// How much of a flood the client generates: far more than any limit.
const FLOOD: u64 = 256 * 1024 * 1024;
/// A refusal counts as early when the client had handed over no more than this by then (the
/// limits are KiBs; the rest is what socket buffers on both sides hold).
const EARLY: u64 = 16 * 1024 * 1024;

/// A part whose header block goes on for ever.
const HEADER_FLOOD: &str = "--B\r\nContent-Disposition: form-data; name=\"title\"\r\nX-Flood: ";

/// A `name` part (CloudSigner, 1,024 bytes at most) that goes on for ever.
const NAME_FLOOD: &str = "--B\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n";

/// An order `description` (64 KiB at most) that goes on for ever.
const DESCRIPTION_FLOOD: &str = "--B\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n\
                                 Contract\r\n--B\r\nContent-Disposition: form-data; \
                                 name=\"description\"\r\n\r\n";

/// `head`, then `FLOOD` bytes of filler made as the connection takes them; the counter says how
/// many bytes the client has produced so far.
fn flood(head: &str) -> (reqwest::Body, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let filler = Bytes::from(vec![b'a'; 64 * 1024]);
    let chunks = std::iter::once(Bytes::copy_from_slice(head.as_bytes()))
        .chain(std::iter::repeat_n(filler, (FLOOD / (64 * 1024)) as usize));
    let stream = futures::stream::iter(chunks).map(move |chunk| {
        counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Ok::<_, std::io::Error>(chunk)
    });
    (reqwest::Body::wrap_stream(stream), sent)
}

/// Where a flood goes: method, URL, and the API key when the route needs one.
struct Target {
    method: Method,
    url: String,
    api_key: Option<String>,
}

impl Target {
    fn documents(app: &TestApp) -> Self {
        Target {
            method: Method::POST,
            url: app.url("/documents"),
            api_key: Some(app.api_key.clone()),
        }
    }

    fn new_order(base: &str) -> Self {
        Target {
            method: Method::POST,
            url: format!("{base}/orders"),
            api_key: None,
        }
    }

    /// An order that does not exist: the form is read before the order is looked up.
    fn order_update(base: &str) -> Self {
        Target {
            method: Method::PUT,
            url: format!("{base}/orders/{}", uuid::Uuid::new_v4()),
            api_key: None,
        }
    }
}

/// Sends a chunked (no `Content-Length`) flood; answers the response and how many bytes the
/// client had produced when it arrived.
async fn send_flood(target: &Target, head: &str) -> (Response, u64) {
    let (body, sent) = flood(head);
    let mut request = reqwest::Client::new()
        .request(target.method.clone(), &target.url)
        .header("content-type", "multipart/form-data; boundary=B")
        .body(body);
    if let Some(key) = &target.api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "{} {}: refused after {} KiB",
        target.method,
        target.url,
        sent >> 10
    );
    (response, sent)
}

async fn assert_refused_early(target: &Target, head: &str, status: u16, code: &str, says: &str) {
    let (response, sent) = send_flood(target, head).await;
    let message = assert_error(response, status, code).await;
    assert!(message.contains(says), "{}: {message}", target.url);
    assert!(
        sent <= EARLY,
        "{}: refused only after {} MiB",
        target.url,
        sent >> 20
    );
}

#[tokio::test]
async fn a_part_header_flood_is_refused_early_on_every_upload_route() {
    let app = spawn_app().await;
    for target in [
        Target::documents(&app),
        Target::new_order(&app.automation),
        Target::order_update(&app.automation),
    ] {
        assert_refused_early(
            &target,
            HEADER_FLOOD,
            400,
            "ERROR_GENERIC",
            "headers are longer than 8192 bytes",
        )
        .await;
    }
}

#[tokio::test]
async fn a_text_part_flood_is_refused_early_at_its_limit() {
    let app = spawn_app().await;
    assert_refused_early(
        &Target::documents(&app),
        NAME_FLOOD,
        400,
        "REQUEST_VALIDATION_ERROR",
        "field name is longer than 1024 bytes",
    )
    .await;
    for target in [
        Target::new_order(&app.automation),
        Target::order_update(&app.automation),
    ] {
        assert_refused_early(
            &target,
            DESCRIPTION_FLOOD,
            400,
            "REQUEST_VALIDATION_ERROR",
            "field description is longer than 65536 bytes",
        )
        .await;
    }
}

/// A multipart body of `parts` small text parts.
fn many_parts(parts: usize) -> String {
    let mut body = String::new();
    for i in 0..parts {
        body.push_str(&format!(
            "--B\r\nContent-Disposition: form-data; name=\"extra{i}\"\r\n\r\nx\r\n"
        ));
    }
    body.push_str("--B--\r\n");
    body
}

async fn post_documents(app: &TestApp, content_type: &str, body: String) -> Response {
    app.client
        .post(app.url("/documents"))
        .bearer_auth(&app.api_key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn too_many_parts_are_refused_on_both_apis() {
    let app = spawn_app().await;
    let response = post_documents(&app, "multipart/form-data; boundary=B", many_parts(257)).await;
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("more than 256 parts"), "{message}");
    let response = app
        .client
        .post(format!("{}/orders", app.automation))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(many_parts(257))
        .send()
        .await
        .unwrap();
    // (An order form also counts its fields: 200 at most.)
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("too many fields"), "{message}");
    // 256 are read (and then the missing signerId is what is wrong).
    let response = post_documents(&app, "multipart/form-data; boundary=B", many_parts(256)).await;
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("signerId"), "{message}");
}

#[tokio::test]
async fn a_boundary_longer_than_70_characters_is_refused() {
    let app = spawn_app().await;
    let boundary = "b".repeat(71);
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"signerId\"\r\n\r\nx\r\n--{boundary}--\r\n"
    );
    let response = post_documents(
        &app,
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    let message = assert_error(response, 400, "ERROR_GENERIC").await;
    assert!(message.contains("boundary"), "{message}");
}

#[tokio::test]
async fn a_long_but_legal_header_block_and_an_unknown_part_within_limits_are_read() {
    let app = spawn_app().await;
    let header = format!("X-Padding: {}", "p".repeat(7 * 1024));
    let body = format!(
        "--B\r\nContent-Disposition: form-data; name=\"signerId\"\r\n{header}\r\n\r\nnobody\r\n\
         --B\r\nContent-Disposition: form-data; name=\"extra\"\r\n\r\n{}\r\n--B--\r\n",
        "e".repeat(1024)
    );
    let response = post_documents(&app, "multipart/form-data; boundary=B", body).await;
    // Read to the end: what is missing now is the file.
    let message = assert_error(response, 400, "REQUEST_VALIDATION_ERROR").await;
    assert!(message.contains("file"), "{message}");
}

mod child {
    //! The floods against a `signet` process of its own, whose peak memory (`VmHWM`) nothing
    //! else in this test binary can raise.

    use super::*;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const SIGNET: &str = env!("CARGO_BIN_EXE_signet");
    /// Growth of the server's peak memory allowed across all floods (each one cost +513 MiB
    /// before the upload reader).
    const MAX_GROWTH_KIB: u64 = 64 * 1024;

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn peak_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Kills the server when the test ends, whatever happens.
    struct Server(std::process::Child);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[tokio::test]
    async fn every_flood_leaves_the_server_memory_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let key = Command::new(SIGNET)
            .args(["api-key", "create", "--data-dir"])
            .arg(dir.path())
            .env_remove("SIGNET_DATABASE_URL")
            .output()
            .unwrap();
        assert!(key.status.success(), "{key:?}");
        let api_key = String::from_utf8(key.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned();
        let (main, automation) = (free_port(), free_port());
        let server = Server(
            Command::new(SIGNET)
                .args(["serve", "--enable-automation-api", "--data-dir"])
                .arg(dir.path())
                .env("SIGNET_LISTEN", format!("127.0.0.1:{main}"))
                .env(
                    "SIGNET_AUTOMATION_LISTEN",
                    format!("127.0.0.1:{automation}"),
                )
                .env("SIGNET_LOG", "warn")
                .env_remove("SIGNET_DATABASE_URL")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        while [main, automation]
            .iter()
            .any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err())
        {
            assert!(Instant::now() < deadline, "signet did not start listening");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let main = format!("http://127.0.0.1:{main}");
        let automation = format!("http://127.0.0.1:{automation}");
        let documents = Target {
            method: Method::POST,
            url: format!("{main}/documents"),
            api_key: Some(api_key),
        };
        // Warm up every route once, so the baseline holds what serving them costs anyway.
        for target in [
            &documents,
            &Target::new_order(&automation),
            &Target::order_update(&automation),
        ] {
            let mut request = reqwest::Client::new()
                .request(target.method.clone(), &target.url)
                .header("content-type", "multipart/form-data; boundary=B")
                .body(many_parts(3));
            if let Some(key) = &target.api_key {
                request = request.bearer_auth(key);
            }
            let status = request.send().await.unwrap().status();
            assert!(status.is_client_error());
        }
        let before = peak_kib(server.0.id());

        for (target, head, code) in [
            (&documents, HEADER_FLOOD, "ERROR_GENERIC"),
            (
                &Target::new_order(&automation),
                HEADER_FLOOD,
                "ERROR_GENERIC",
            ),
            (
                &Target::order_update(&automation),
                HEADER_FLOOD,
                "ERROR_GENERIC",
            ),
            (&documents, NAME_FLOOD, "REQUEST_VALIDATION_ERROR"),
            (
                &Target::new_order(&automation),
                DESCRIPTION_FLOOD,
                "REQUEST_VALIDATION_ERROR",
            ),
        ] {
            let (response, sent) = send_flood(target, head).await;
            assert_error(response, 400, code).await;
            assert!(
                sent <= EARLY,
                "{}: refused after {} MiB",
                target.url,
                sent >> 20
            );
        }

        let growth = peak_kib(server.0.id()).saturating_sub(before);
        eprintln!("peak before the floods {before} KiB, growth {growth} KiB");
        assert!(
            growth < MAX_GROWTH_KIB,
            "the server's peak memory grew by {} MiB under the floods",
            growth / 1024
        );
    }
}
