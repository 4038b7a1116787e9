//! What the tests that run programs as child processes share: the `signet` binary and a command
//! for it that inherits none of the caller's settings, reading a child's log until it says what
//! the test waits for, a free port for a child that must be told its own, and the device's part
//! of a CloudSigner signature made by the `openssl` CLI. The Python helpers in this folder are
//! the real outside programs some tests talk to.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

/// The `signet` binary Cargo built for these tests.
pub const SIGNET: &str = env!("CARGO_BIN_EXE_signet");

/// How long a child may take to say it is ready (a bound on waiting, not a timed assertion).
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// `signet` without the caller's `SIGNET_*` variables (a developer's shell or CI may set some,
/// such as a PostgreSQL URL), so each test states every setting it relies on.
pub fn signet_command() -> Command {
    let mut command = Command::new(SIGNET);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SIGNET_") {
            command.env_remove(name);
        }
    }
    command
}

/// A port that is free on 127.0.0.1 now, for a child that must be given its port up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Reads the child's piped standard error line by line until a line contains `until`, the
/// child closes it, or [`START_DEADLINE`] passes; returns the lines read. The rest is drained on
/// a thread of its own: a server whose standard error fills up would block on its next line.
pub fn stderr_until(child: &mut Child, until: &str) -> Vec<String> {
    let stderr = child.stderr.take().expect("the child's stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let mut read = Vec::new();
    let deadline = Instant::now() + START_DEADLINE;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        let done = line.contains(until);
        read.push(line);
        if done || Instant::now() > deadline {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    read
}

/// The device's part of a signature: `openssl dgst -sha256 -sign <key>` over the base64 data to
/// be signed (an upload's `hash`), its files named after `name` in `dir` (concurrent signers
/// each need their own name or directory); the signature in base64.
pub fn device_signature(key: &Path, dir: &Path, name: &str, hash_b64: &str) -> String {
    let data = dir.join(format!("{name}.der"));
    let signature = dir.join(format!("{name}.sig"));
    std::fs::write(&data, BASE64.decode(hash_b64).unwrap()).unwrap();
    crate::openssl::run(
        &[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            "-out",
            signature.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        dir,
    );
    BASE64.encode(std::fs::read(signature).unwrap())
}

/// The CloudSigner upload form: `signerId` and a `pages`-page PDF as `file`.
pub fn pdf_upload_form(signer_id: &str, pages: usize) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("signerId", signer_id.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(signet_testkit::pdfs::classic_pdf(pages))
                .file_name("contract.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        )
}

/// `GET url` (no credentials); the body as JSON, whatever the status.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// `GET url` (no credentials); the body as text, whatever the status.
pub async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// `GET url` (no credentials); the body's bytes, whatever the status.
pub async fn get_bytes(client: &reqwest::Client, url: &str) -> Vec<u8> {
    client
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}
