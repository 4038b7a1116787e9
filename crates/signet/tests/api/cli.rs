//! The `signet` binary itself: first start on the embedded default, api-key create, ca show.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::support::{free_port, signet_command, stderr_until};

fn signet(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    signet_command()
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

#[test]
fn api_key_create_prints_only_the_key_on_its_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = signet(&["api-key", "create"], dir.path());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let key = stdout.lines().last().unwrap();
    assert!(key.starts_with("sgn_") && key.len() > 40, "{stdout}");
    // Only the hash is stored: the key itself is nowhere in the database file.
    let db = std::fs::read(dir.path().join("signet.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("signet.db-wal")).unwrap_or_default();
    let needle = key.as_bytes();
    for bytes in [db, wal] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[test]
fn ca_show_prints_the_same_certificate_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let first = signet(&["ca", "show"], dir.path());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = signet(&["ca", "show"], dir.path());
    let pem = String::from_utf8(first.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(pem, String::from_utf8(second.stdout).unwrap());
}

#[test]
fn serve_with_no_configuration_creates_a_key_file_and_answers_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = signet_command()
        .arg("serve")
        .current_dir(dir.path())
        .env("SIGNET_LISTEN", format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let key_file = stderr_until(&mut child, "signet is listening")
        .iter()
        .find_map(|line| {
            let rest = line.split("written to ").nth(1)?;
            Some(rest.split(" (").next().unwrap().to_owned())
        })
        .expect("first start must say where the API key is");
    let key_path = dir.path().join(key_file.trim_start_matches("./"));
    let key = std::fs::read_to_string(&key_path)
        .unwrap()
        .trim()
        .to_owned();
    assert!(key_path.starts_with(dir.path().join("signet-data")));

    let response = reqwest::blocking_get(&format!("http://127.0.0.1:{port}/signers/x"), &key);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        response, 404,
        "a valid key reaches the API (unknown signer)"
    );
}

/// A tiny blocking GET without pulling reqwest's blocking feature.
mod reqwest {
    pub fn blocking_get(url: &str, key: &str) -> u16 {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            ::reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }
}

/// Starts `signet serve` with `envs`, reads standard error until it is listening; returns the
/// lines it logged and the running child.
fn serve_until_listening(
    dir: &std::path::Path,
    args: &[&str],
    envs: &[(&str, String)],
) -> (Vec<String>, std::process::Child) {
    let mut command = signet_command();
    command
        .arg("serve")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("SIGNET_LISTEN", "127.0.0.1:0")
        .env("SIGNET_LOG", "info")
        .stderr(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let lines = stderr_until(&mut child, "signet is listening");
    (lines, child)
}

#[test]
fn the_automation_api_is_off_by_default_and_the_log_says_how_to_enable_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (lines, mut child) = serve_until_listening(
        dir.path(),
        &[],
        &[("SIGNET_AUTOMATION_LISTEN", format!("127.0.0.1:{port}"))],
    );
    let refused = std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(log.contains("--enable-automation-api"), "{log}");
    assert!(log.contains("SIGNET_AUTOMATION_API_ENABLED"), "{log}");
    assert!(refused, "nothing may listen on the Automation API's port");
}

#[test]
fn the_automation_api_is_enabled_by_flag_or_by_environment() {
    for (args, envs) in [
        (vec!["--enable-automation-api"], vec![]),
        (
            vec![],
            vec![("SIGNET_AUTOMATION_API_ENABLED", "true".to_owned())],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut envs = envs;
        envs.push(("SIGNET_AUTOMATION_LISTEN", format!("127.0.0.1:{port}")));
        let (lines, mut child) = serve_until_listening(dir.path(), &args, &envs);
        let status = {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                ::reqwest::get(format!(
                    "http://127.0.0.1:{port}/api/document_signing/orders/00000000-0000-0000-0000-000000000000/state"
                ))
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"))
            })
        };
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            status,
            Ok(404),
            "an unknown order on a listening API: {}",
            lines.join("\n")
        );
    }
}

#[test]
fn a_server_whose_log_pipe_closes_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = signet_command()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SIGNET_LISTEN", format!("127.0.0.1:{port}"))
        .env("SIGNET_LOG", "debug")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().contains("signet is listening") {
            break;
        }
    }
    // The reader is gone: every log line from now on fails to write.
    let statuses: Vec<_> = (0..3)
        .map(|_| reqwest::blocking_get(&format!("http://127.0.0.1:{port}/ca/ca.pem"), "-"))
        .collect();
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(exited, None, "the server died when its log pipe closed");
    assert_eq!(statuses, [200, 200, 200]);
}
