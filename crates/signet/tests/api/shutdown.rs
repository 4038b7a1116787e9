//! Stopping a real `signet serve` process: on SIGTERM a request in flight may finish within the
//! grace period, a slow upload cannot keep the process alive beyond it, and a second signal
//! exits at once. The upload is written by hand on a socket, a few bytes at a time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::logs::Served;

fn signal(served: &Served, name: &str) {
    let status = std::process::Command::new("kill")
        .args([name, &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits up to `limit` for the process to exit; its status and how long that took.
fn wait_exit(served: &mut Served, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = served.child.try_wait().unwrap() {
            return Some((status, started.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

const BOUNDARY: &str = "signet-slow-upload";

/// Opens an order upload of `declared` body bytes on the Automation listener and sends its head
/// and the start of the file part; the rest is for the caller to send (or not).
fn start_upload(served: &Served, declared: usize) -> TcpStream {
    let address = served.automation.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /orders HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; \
         boundary={BOUNDARY}\r\nContent-Length: {declared}\r\n\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Keeps sending a few bytes every 200 ms (far inside the body timeout) until `stop`.
fn trickle(mut stream: TcpStream, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if stream.write_all(&[b'%'; 16]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

#[test]
fn sigterm_with_a_slow_upload_in_flight_exits_within_the_grace_period() {
    let mut served = Served::start(&[("SIGNET_SHUTDOWN_GRACE_SECONDS", "2")]);
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = trickle(start_upload(&served, 50_000_000), stop.clone());
    std::thread::sleep(Duration::from_millis(500));

    signal(&served, "-TERM");
    let exited = wait_exit(&mut served, Duration::from_secs(10));
    stop.store(true, Ordering::Relaxed);
    let _ = uploader.join();
    let (status, took) = exited.expect("the server outlived its grace period");
    assert!(status.success(), "{status:?}");
    // It gave the upload its grace (2 s), and not much more.
    assert!(took >= Duration::from_millis(1500), "left after {took:?}");
    assert!(took < Duration::from_secs(5), "left after {took:?}");
    let log = served.log().join("\n");
    assert!(
        log.contains("still in flight at the end of the shutdown grace period"),
        "{log}"
    );
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut served = Served::start(&[("SIGNET_SHUTDOWN_GRACE_SECONDS", "60")]);
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = trickle(start_upload(&served, 50_000_000), stop.clone());
    std::thread::sleep(Duration::from_millis(500));

    signal(&served, "-TERM");
    assert!(
        wait_exit(&mut served, Duration::from_secs(1)).is_none(),
        "the first signal drains: the upload still runs"
    );
    signal(&served, "-INT");
    let exited = wait_exit(&mut served, Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let _ = uploader.join();
    let (status, _) = exited.expect("a second signal must exit at once");
    assert!(!status.success(), "{status:?}");
}

#[test]
fn a_request_in_flight_at_sigterm_still_gets_its_answer_and_then_the_server_exits() {
    let mut served = Served::start(&[("SIGNET_SHUTDOWN_GRACE_SECONDS", "30")]);
    let rest = format!("%EOF\r\n--{BOUNDARY}--\r\n");
    // The declared length is the whole body: the head's part start plus `rest`.
    let part_start = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.7\n"
    );
    let mut stream = start_upload(&served, part_start.len() + rest.len());
    std::thread::sleep(Duration::from_millis(300));

    signal(&served, "-TERM");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(rest.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 "), "no answer: {answer:?}");
    assert!(answer.contains("\"status\":\"ERROR\""), "{answer}");
    let (status, took) =
        wait_exit(&mut served, Duration::from_secs(10)).expect("the server did not exit");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(10));
}
