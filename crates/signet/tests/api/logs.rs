//! The log of a real `signet serve` process in JSON: every line parses, the access and audit
//! lines are there, and after a CloudSigner enroll + sign + download and a signing order with an
//! EXTERNAL signer (personal number, e-mail) signed through its page, none of the secrets or
//! personal values of those requests appears anywhere in it.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::openssl::{device_key, KeyKind};
use crate::pages::{browserless, csrf_of};
use crate::support::{
    device_signature, get_json, get_text, pdf_upload_form, signet_command, stderr_until,
};

/// A `signet serve` child process with its log collected line by line.
pub struct Served {
    pub child: Child,
    /// Held so the data directory lives as long as the process (when it made its own).
    _dir: Option<tempfile::TempDir>,
    pub main: String,
    pub automation: String,
    /// The first API key, read from `initial-api-key` (empty when this data directory has none:
    /// a replica started on a database another process set up).
    pub api_key: String,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Served {
    /// Starts `signet serve` (JSON log, both listeners on port 0, the test people) with `envs`,
    /// and waits until both listeners are up.
    pub fn start(envs: &[(&str, &str)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut served = Served::start_in(&dir.path().join("data"), envs);
        served._dir = Some(dir);
        served
    }

    /// Like [`Served::start`] on the data directory `data_dir` (SQLite in it unless `envs` sets
    /// `SIGNET_DATABASE_URL`).
    pub fn start_in(data_dir: &std::path::Path, envs: &[(&str, &str)]) -> Served {
        Served::try_start_in(data_dir, envs)
            .unwrap_or_else(|(status, log)| panic!("signet did not start ({status}): {log:#?}"))
    }

    /// Starts `signet serve` on `data_dir`; when the process exits before it listens, its exit
    /// status and log.
    pub fn try_start_in(
        data_dir: &std::path::Path,
        envs: &[(&str, &str)],
    ) -> Result<Served, (std::process::ExitStatus, Vec<String>)> {
        let people = data_dir.with_extension("people.json");
        if !people.exists() {
            std::fs::write(&people, crate::helpers::TEST_PEOPLE).unwrap();
        }
        let mut command = signet_command();
        command
            .args(["serve", "--enable-automation-api", "--data-dir"])
            .arg(data_dir)
            .arg("--directory-file")
            .arg(&people)
            .env("SIGNET_LISTEN", "127.0.0.1:0")
            .env("SIGNET_AUTOMATION_LISTEN", "127.0.0.1:0")
            .env("SIGNET_LOG_FORMAT", "json")
            .env("SIGNET_LOG", "info,signet=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                collected.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let listening = |message: &str| {
            lines.lock().unwrap().iter().find_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                (value["message"] == message)
                    .then(|| value["listen"].as_str().map(str::to_owned))?
            })
        };
        let (main, automation) = loop {
            let main = listening("signet is listening");
            let automation = listening("the Automation API is listening");
            if let (Some(main), Some(automation)) = (main, automation) {
                break (format!("http://{main}"), format!("http://{automation}"));
            }
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader thread drain what the process wrote last.
                std::thread::sleep(Duration::from_millis(200));
                return Err((status, lines.lock().unwrap().clone()));
            }
            assert!(
                Instant::now() < deadline,
                "signet did not start: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let api_key = std::fs::read_to_string(data_dir.join("initial-api-key"))
            .map(|key| key.trim().to_owned())
            .unwrap_or_default();
        Ok(Served {
            child,
            _dir: None,
            main,
            automation,
            api_key,
            lines,
        })
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_json_log_has_access_and_audit_lines_and_no_secret_or_personal_value() {
    let served = Served::start(&[]);
    let client = reqwest::Client::new();
    let main = &served.main;

    // CloudSigner: enroll a device, upload, sign with the device key, download.
    let device = device_key(KeyKind::P256, "Log Test Device");
    let enrolled = client
        .post(format!("{main}/signers"))
        .bearer_auth(&served.api_key)
        .json(&json!({"signerId": "log-device-1", "userId": "log-user-1", "csr": device.csr_pem}))
        .send()
        .await
        .unwrap();
    assert_eq!(enrolled.status(), 200);
    let uploaded: Value = client
        .post(format!("{main}/documents/upload"))
        .bearer_auth(&served.api_key)
        .multipart(pdf_upload_form("log-device-1", 1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let document_id = uploaded["documentId"].as_str().unwrap().to_owned();
    let signature = device_signature(
        &device.key,
        device.dir.path(),
        "tbs",
        uploaded["hash"].as_str().unwrap(),
    );
    let signed = client
        .post(format!("{main}/documents/{document_id}/signature"))
        .bearer_auth(&served.api_key)
        .json(&json!({"signature": signature}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
    let file = client
        .get(format!("{main}/documents/{document_id}/file"))
        .bearer_auth(&served.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(file.status(), 200);
    // A wrong key, and a request id the client chose.
    let refused = client
        .get(format!("{main}/signers/log-device-1"))
        .bearer_auth("sgn_not-a-real-key-but-a-secret-all-the-same")
        .header("x-request-id", "log-test-request-7")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(refused.headers()["x-request-id"], "log-test-request-7");

    // A signing order for an EXTERNAL signer with a personal number and an e-mail address,
    // signed through the signer page (whose path carries the link's token).
    let personal_number = "198603052385";
    let mail = "elsa.secret@example.net";
    let signer = json!({"source": "EXTERNAL", "identifier": personal_number,
        "attributes": {"mail": {"value": mail}, "mobile": {"value": "+46700000001"}}});
    let response = client
        .post(format!("{}/orders", served.automation))
        .multipart(crate::orders::order_form(&[signer]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let order_id = response.text().await.unwrap();
    let order = get_json(&client, &format!("{}/orders/{order_id}", served.automation)).await;
    let link = order["signers"][0]["signingUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    let pages = browserless();
    let confirm = get_text(&pages, &format!("{link}/confirm")).await;
    let csrf = csrf_of(&confirm);
    let posted = pages
        .post(format!("{link}/sign"))
        .form(&[("csrf", csrf.as_str()), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 303);

    // The log catches up with the last requests.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served
        .log()
        .iter()
        .any(|l| l.contains("/sign/{token}/sign") && l.contains("\"status\":303"))
    {
        assert!(
            Instant::now() < deadline,
            "no access line for the sign post"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = served.log();
    let lines: Vec<Value> = log
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let secrets = [
        served.api_key.as_str(),
        "sgn_not-a-real-key-but-a-secret-all-the-same",
        personal_number,
        "19860305-2385",
        mail,
        "+46700000001",
        token.as_str(),
        csrf.as_str(),
        "carl.borgstrom@example.org",
    ];
    for line in &log {
        for secret in secrets {
            assert!(!line.contains(secret), "{secret} is in the log: {line}");
        }
    }
    let access = |route: &str, status: u64| {
        lines.iter().any(|l| {
            l["target"] == "signet::access" && l["route"] == route && l["status"] == status
        })
    };
    assert!(access("/signers", 200), "{log:#?}");
    assert!(
        access("/documents/{document_id}/signature", 200),
        "{log:#?}"
    );
    assert!(access("/sign/{token}/confirm", 200), "{log:#?}");
    assert!(access("/sign/{token}/sign", 303), "{log:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l["request.id"] == "log-test-request-7" && l["status"] == 401),
        "{log:#?}"
    );
    let audit: Vec<&Value> = lines.iter().filter(|l| l["target"] == "audit").collect();
    for action in ["api_key.created", "certificate.issued"] {
        assert!(
            audit.iter().any(|l| l["action"] == action),
            "{action}: {audit:#?}"
        );
    }
    assert!(
        audit
            .iter()
            .any(|l| l["action"] == "certificate.issued" && l["order.id"] == order_id.as_str()),
        "the signature certificate of the order: {audit:#?}"
    );
    // The start-up lines: version, data directory, database, listeners with their transport.
    for message in ["signet starting", "data directory", "database"] {
        assert!(lines.iter().any(|l| l["message"] == message), "{message}");
    }
    assert!(lines
        .iter()
        .any(|l| l["message"] == "signet is listening" && l["tls"] == "plain"));
}

#[test]
fn the_text_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = signet_command()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SIGNET_LISTEN", "127.0.0.1:0")
        .env("SIGNET_LOG_FORMAT", "text")
        .env_remove("NO_COLOR")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_until(&mut child, "signet is listening");
    let _ = child.kill();
    let _ = child.wait();
    let log = lines.join("\n");
    assert!(log.contains("signet is listening"), "{log}");
    assert!(!log.contains('\u{1b}'), "an escape code in {log}");
}

#[test]
fn an_unknown_log_format_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let output = signet_command()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SIGNET_LOG_FORMAT", "jsno")
        .env("SIGNET_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("jsno"), "{stderr}");
}
