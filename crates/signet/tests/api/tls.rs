//! TLS on both listeners, with certificates made by the `openssl` command line: the reference's
//! curl command over mutual TLS, clients without a trusted certificate refused, plain HTTP on a
//! TLS port, the certificate swapped on reload (the handle and a real SIGHUP to the binary),
//! client certificates on the CloudSigner API, and the Automation listener's refusal to start on
//! a public address without mutual TLS.

use serde_json::{json, Value};
use signet::config::Settings;
use signet::domain::OrderId;
use signet::startup::tls::{ClientAuth, TlsFiles, TlsListener};
use signet::startup::Application;
use signet_testkit::pdfs::classic_pdf;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tempfile::TempDir;

use crate::helpers::{database_url_for, start_with, Db, TestApp};
use crate::openssl::{device_key, KeyKind};
use crate::support::{free_port, signet_command, stderr_until};

/// A CA made by `openssl` in a temporary directory, and the certificates it signs.
struct TestCa {
    dir: TempDir,
    name: String,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        Self {
            dir,
            name: name.to_owned(),
        }
    }

    fn pem(&self) -> PathBuf {
        self.dir.path().join(format!("{}.pem", self.name))
    }

    /// A P-256 key (PKCS#8) and a certificate for `/CN=<cn>` with `usage` (`serverAuth`, with
    /// 127.0.0.1 and localhost as its names, or `clientAuth`): (certificate, key).
    fn issue(&self, cn: &str, usage: &str) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let extensions = if usage == "serverAuth" {
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
        } else {
            "extendedKeyUsage=clientAuth\n"
        };
        std::fs::write(dir.join(format!("{cn}.ext")), extensions).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{cn}.key"),
                "-out",
                &format!("{cn}.csr"),
                "-subj",
                &format!("/CN={cn}/O=Signet Tests"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{cn}.csr"),
                "-CA",
                &format!("{}.pem", self.name),
                "-CAkey",
                &format!("{}.key", self.name),
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                &format!("{cn}.ext"),
                "-out",
                &format!("{cn}.pem"),
            ],
        );
        (dir.join(format!("{cn}.pem")), dir.join(format!("{cn}.key")))
    }
}

/// `openssl <args>` in `dir`, which must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    crate::openssl::run(args, dir);
}

/// The subject CN of the certificate a new TLS connection to `address` is served.
async fn served_subject(address: &str) -> String {
    let address = address.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("bash")
            .args([
                "-c",
                &format!(
                    "openssl s_client -connect {address} </dev/null 2>/dev/null | openssl x509 -noout -subject"
                ),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    })
    .await
    .unwrap()
}

/// A test app whose listeners are adjusted by `adjust` (TLS files), on SQLite.
async fn spawn_tls_app(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(Db::Sqlite, data_dir.path()).await.unwrap();
    let clock = Arc::new(signet::clock::ManualClock::new(
        time::OffsetDateTime::now_utc(),
    ));
    let mut app = start_with(data_dir, database_url, clock, adjust).await;
    app.address = app.address.replacen("http://", "https://", 1);
    app.automation = app.automation.replacen("http://", "https://", 1);
    app
}

async fn order_count(app: &TestApp) -> i64 {
    use sqlx::{Connection, Row};
    let mut db = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("SELECT COUNT(*) AS n FROM orders")
        .fetch_one(&mut db)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

/// Runs `script` with bash off the test's runtime (the server runs on it): (success, stdout, stderr).
async fn bash(script: String) -> (bool, String, String) {
    let output = tokio::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .await
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The reference's create-order command, as written, against `host`, with `tls` options
/// (`--cacert … --key … --cert …`) added.
fn reference_create_order(host: &str, pdf: &Path, tls: &str) -> String {
    format!(
        r#"curl --silent --show-error --location {tls} --request POST '{host}/api/document_signing/orders' \
-F 'title="A new signing order"' \
-F 'description="This order was automatically generated"' \
-F 'upload=@"{pdf}"' \
-F 'solicitor="{{\"source\":\"INTERNAL\",\"identifier\":\"sAMAccountName=cborgstrom\",\"attributes\":{{}}}}"' \
-F 'signers="{{\"source\":\"INTERNAL\",\"identifier\":\"sAMAccountName=cborgstrom\",\"attributes\":{{}}}}"' \
-F 'signers="{{\"source\":\"EXTERNAL\",\"identifier\":\"198603052385\",\"attributes\":{{\"mail\":{{\"value\":\"[email protected]\"}},\"mobile\":{{\"value\":\"+46700000000\"}}}}}}"'"#,
        pdf = pdf.display(),
    )
}

struct MutualTls {
    app: TestApp,
    ca: TestCa,
    client: (PathBuf, PathBuf),
    stranger: (PathBuf, PathBuf),
    pdf: PathBuf,
    /// The stranger's CA (its files live as long as the test).
    _other: TestCa,
}

/// An app whose Automation listener requires a client certificate from `ca`; a client
/// certificate from it and one from another CA.
async fn mutual_tls_app() -> MutualTls {
    let ca = TestCa::new("automation-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let client = ca.issue("order-system", "clientAuth");
    let other = TestCa::new("other-ca");
    let stranger = other.issue("stranger", "clientAuth");
    let client_ca = ca.pem();
    let app = spawn_tls_app(|settings| {
        settings.automation_api.tls_cert = Some(cert);
        settings.automation_api.tls_key = Some(key);
        settings.automation_api.client_ca = Some(client_ca);
    })
    .await;
    let pdf = app.data_dir.path().join("signthisplease.pdf");
    std::fs::write(&pdf, classic_pdf(1)).unwrap();
    MutualTls {
        app,
        ca,
        client,
        stranger,
        pdf,
        _other: other,
    }
}

#[tokio::test]
async fn the_reference_curl_command_with_key_and_cert_creates_an_order_over_mutual_tls() {
    let MutualTls {
        app,
        ca,
        client: (cert, key),
        pdf,
        ..
    } = mutual_tls_app().await;
    let tls = format!(
        "--cacert {} --key {} --cert {}",
        ca.pem().display(),
        key.display(),
        cert.display()
    );
    let (ok, id, stderr) = bash(reference_create_order(&app.automation, &pdf, &tls)).await;
    assert!(ok, "{id} {stderr}");
    assert!(OrderId::parse(&id).is_ok(), "not a GUID: {id:?}");

    let (ok, state, stderr) = bash(format!(
        "curl --silent --show-error --location {tls} --request GET '{}/api/document_signing/orders/{id}/state'",
        app.automation
    ))
    .await;
    assert!(ok, "{stderr}");
    assert_eq!(state, "PENDING");
}

#[tokio::test]
async fn without_a_client_certificate_from_the_ca_nothing_is_read_or_created() {
    let MutualTls {
        app,
        ca,
        client: (cert, key),
        stranger: (stranger_cert, stranger_key),
        pdf,
        ..
    } = mutual_tls_app().await;
    let trusted = format!(
        "--cacert {} --key {} --cert {}",
        ca.pem().display(),
        key.display(),
        cert.display()
    );
    let (ok, id, stderr) = bash(reference_create_order(&app.automation, &pdf, &trusted)).await;
    assert!(ok, "{stderr}");

    let no_certificate = format!("--cacert {}", ca.pem().display());
    let another_ca = format!(
        "--cacert {} --key {} --cert {}",
        ca.pem().display(),
        stranger_key.display(),
        stranger_cert.display()
    );
    for tls in [no_certificate, another_ca] {
        let (ok, out, _) = bash(reference_create_order(&app.automation, &pdf, &tls)).await;
        assert!(!ok, "created without a trusted certificate: {out}");
        let (ok, out, _) = bash(format!(
            "curl --silent --show-error {tls} '{}/api/document_signing/orders/{id}'",
            app.automation
        ))
        .await;
        assert!(!ok, "read without a trusted certificate: {out}");
        assert!(!out.contains(&id), "{out}");
    }
    assert_eq!(
        order_count(&app).await,
        1,
        "only the trusted client's order"
    );
}

#[tokio::test]
async fn plain_http_on_a_tls_port_gets_a_400_and_no_order_data() {
    let MutualTls {
        app,
        ca,
        client: (cert, key),
        pdf,
        ..
    } = mutual_tls_app().await;
    let trusted = format!(
        "--cacert {} --key {} --cert {}",
        ca.pem().display(),
        key.display(),
        cert.display()
    );
    let (ok, id, stderr) = bash(reference_create_order(&app.automation, &pdf, &trusted)).await;
    assert!(ok, "{stderr}");

    let plain = app.automation.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/api/document_signing/orders/{id}"))
        .send()
        .await;
    {
        let response = answer.expect("plain HTTP on the TLS port is answered, not dropped");
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ERROR", "{body}");
        assert!(
            body["responseObject"]["message"]
                .as_str()
                .unwrap()
                .contains("https"),
            "{body}"
        );
        assert!(!body.to_string().contains(&id));
    }
    let (_, out, _) = bash(reference_create_order(&plain, &pdf, "")).await;
    assert!(OrderId::parse(out.trim()).is_err(), "{out}");
    assert_eq!(order_count(&app).await, 1);
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_for_new_connections_and_a_bad_one_is_refused() {
    let ca = TestCa::new("server-ca");
    let (first_cert, first_key) = ca.issue("server-one", "serverAuth");
    let (second_cert, second_key) = ca.issue("server-two", "serverAuth");
    let live = tempfile::tempdir().unwrap();
    let cert = live.path().join("cert.pem");
    let key = live.path().join("key.pem");
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = database_url_for(Db::Sqlite, data_dir.path()).await.unwrap();
    let mut settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(database_url),
        job_interval_seconds: 0,
        ..Settings::default()
    };
    settings.tls.cert = Some(cert.clone());
    settings.tls.key = Some(key.clone());
    let app = Application::build(
        settings,
        Arc::new(signet::clock::ManualClock::new(
            time::OffsetDateTime::now_utc(),
        )),
    )
    .await
    .unwrap();
    let address = app.local_addr().unwrap().to_string();
    let reloader = app.tls_reloader();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.pem()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let ca_url = format!("https://{address}/ca/ca.pem");
    assert_eq!(client.get(&ca_url).send().await.unwrap().status(), 200);
    assert!(served_subject(&address).await.contains("server-one"));

    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    reloader.reload().unwrap();
    assert!(served_subject(&address).await.contains("server-two"));
    assert_eq!(
        client.get(&ca_url).send().await.unwrap().status(),
        200,
        "the client's connection (kept alive or new) still works"
    );

    // A key that does not fit the certificate: refused, the second certificate stays.
    std::fs::copy(&first_key, &key).unwrap();
    let error = format!("{:#}", reloader.reload().unwrap_err());
    assert!(error.contains("does not fit"), "{error}");
    std::fs::write(&cert, "not a certificate").unwrap();
    assert!(reloader.reload().is_err());
    assert!(served_subject(&address).await.contains("server-two"));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn server_keys_load_in_pkcs8_sec1_and_pkcs1_form_and_a_missing_file_is_named() {
    let ca = TestCa::new("keys-ca");
    let (cert, pkcs8) = ca.issue("ec-server", "serverAuth");
    let dir = ca.dir.path();
    openssl(
        dir,
        &["ec", "-in", "ec-server.key", "-out", "ec-server.sec1"],
    );
    assert!(std::fs::read_to_string(dir.join("ec-server.sec1"))
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "rsa.key",
            "-out",
            "rsa.pem",
            "-days",
            "30",
            "-subj",
            "/CN=rsa-server",
        ],
    );
    openssl(
        dir,
        &["rsa", "-in", "rsa.key", "-traditional", "-out", "rsa.pkcs1"],
    );
    assert!(std::fs::read_to_string(dir.join("rsa.pkcs1"))
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    for (cert, key) in [
        (cert.clone(), pkcs8),
        (cert.clone(), dir.join("ec-server.sec1")),
        (dir.join("rsa.pem"), dir.join("rsa.pkcs1")),
    ] {
        let files = TlsFiles {
            cert,
            key: key.clone(),
            client_ca: None,
            client_auth: ClientAuth::Optional,
        };
        TlsListener::load("main", files).unwrap_or_else(|e| panic!("{}: {e:#}", key.display()));
    }
    let files = TlsFiles {
        cert,
        key: dir.join("missing.key"),
        client_ca: None,
        client_auth: ClientAuth::Optional,
    };
    let error = format!("{:#}", TlsListener::load("main", files).unwrap_err());
    assert!(error.contains("missing.key"), "{error}");
}

#[tokio::test]
async fn a_client_certificate_from_the_client_ca_authenticates_on_the_cloudsigner_api() {
    let ca = TestCa::new("api-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let (client_cert, client_key) = ca.issue("billing-service", "clientAuth");
    let other = TestCa::new("rogue-ca");
    let (rogue_cert, rogue_key) = other.issue("rogue-service", "clientAuth");
    let client_ca = ca.pem();
    let app = spawn_tls_app(|settings| {
        settings.tls.cert = Some(cert);
        settings.tls.key = Some(key);
        settings.tls.client_ca = Some(client_ca);
    })
    .await;
    let root = reqwest::Certificate::from_pem(&std::fs::read(ca.pem()).unwrap()).unwrap();
    let client_with = |cert: &Path, key: &Path| {
        let mut pem = std::fs::read(cert).unwrap();
        pem.extend(std::fs::read(key).unwrap());
        reqwest::Client::builder()
            .add_root_certificate(root.clone())
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    let enrol = |client: reqwest::Client, signer: &'static str| {
        let device = device_key(KeyKind::P256, signer);
        let url = app.url("/signers");
        async move {
            client
                .post(url)
                .json(&json!({"signerId": signer, "userId": "u", "csr": device.csr_pem}))
                .send()
                .await
                .unwrap()
        }
    };

    let trusted = client_with(&client_cert, &client_key);
    let response = enrol(trusted.clone(), "by-certificate").await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let response = trusted
        .get(app.url("/signers/by-certificate"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let rogue = client_with(&rogue_cert, &rogue_key);
    let response = enrol(rogue, "by-rogue").await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ERROR");
    assert_eq!(
        body["responseObject"]["code"], "ERROR_UNAUTHORIZED",
        "{body}"
    );
    assert!(body["responseObject"]["message"]
        .as_str()
        .unwrap()
        .contains("client CA"));

    // No certificate: the API key still works, and nothing is not enough.
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(root.clone())
        .build()
        .unwrap();
    let response = enrol(anonymous.clone(), "by-nobody").await;
    assert_eq!(response.status(), 401);
    let device = device_key(KeyKind::P256, "by-key");
    let response = anonymous
        .post(app.url("/signers"))
        .bearer_auth(&app.api_key)
        .json(&json!({"signerId": "by-key", "userId": "u", "csr": device.csr_pem}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Pages and the CA need no certificate.
    let response = anonymous.get(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    drop(other);
}

/// Over TLS nothing can be sent from the page cache: a signed document's bytes come from the
/// read cache's memory, whole and by ranges, exactly the stored file's.
#[tokio::test]
async fn a_signed_document_downloads_whole_and_by_ranges_over_tls_as_stored() {
    let ca = TestCa::new("download-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let mut app = spawn_tls_app(|settings| {
        settings.tls.cert = Some(cert);
        settings.tls.key = Some(key);
    })
    .await;
    let root = reqwest::Certificate::from_pem(&std::fs::read(ca.pem()).unwrap()).unwrap();
    app.client = reqwest::Client::builder()
        .add_root_certificate(root)
        .build()
        .unwrap();
    // Downloads it twice and compares both with the stored file.
    let (id, file) = crate::documents::signed_document(&app).await;
    for (range, expected) in [("bytes=0-99", 0..100), ("bytes=1000-", 1000..file.len())] {
        let response = app
            .client
            .get(app.url(&format!("/documents/{id}/file")))
            .bearer_auth(&app.api_key)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 206, "{range}");
        let body = response.bytes().await.unwrap();
        assert!(body[..] == file[expected], "{range}");
    }
}

/// `signet serve` on a fresh data directory with `args`: the child and its standard error,
/// read line by line until `until` is seen (or the process ends, or 60 s pass).
fn serve(data: &Path, args: &[&str], until: &str) -> (std::process::Child, Vec<String>) {
    let mut child = signet_command()
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env("SIGNET_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_until(&mut child, until);
    (child, lines)
}

#[tokio::test]
async fn sighup_makes_the_running_binary_serve_the_new_certificate() {
    let ca = TestCa::new("hup-ca");
    let (first_cert, first_key) = ca.issue("hup-one", "serverAuth");
    let (second_cert, second_key) = ca.issue("hup-two", "serverAuth");
    let live = tempfile::tempdir().unwrap();
    let cert = live.path().join("cert.pem");
    let key = live.path().join("key.pem");
    std::fs::copy(&first_cert, &cert).unwrap();
    std::fs::copy(&first_key, &key).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (mut child, lines) = serve(
        &live.path().join("data"),
        &[
            "--listen",
            &listen,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        "signet is listening",
    );
    assert!(
        lines.iter().any(|l| l.contains("signet is listening")),
        "{lines:?}"
    );
    assert!(served_subject(&listen).await.contains("hup-one"));

    std::fs::copy(&second_cert, &cert).unwrap();
    std::fs::copy(&second_key, &key).unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut subject = String::new();
    while Instant::now() < deadline {
        subject = served_subject(&listen).await;
        if subject.contains("hup-two") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let alive = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "SIGHUP must not stop the server");
    assert!(subject.contains("hup-two"), "{subject}");
}

#[tokio::test]
async fn the_automation_api_on_all_interfaces_without_mutual_tls_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let automation = format!("0.0.0.0:{}", free_port());
    let args = [
        "--listen",
        listen.as_str(),
        "--enable-automation-api",
        "--automation-listen",
        automation.as_str(),
    ];
    let (mut child, lines) = serve(&dir.path().join("data"), &args, "signet is listening");
    let status = child.wait().unwrap();
    let text = lines.join("\n");
    assert!(!status.success(), "{text}");
    for flag in [
        "--automation-tls-cert",
        "--automation-tls-key",
        "--automation-client-ca",
        "--automation-allow-insecure",
    ] {
        assert!(text.contains(flag), "{flag} not named: {text}");
    }

    let mut insecure = args.to_vec();
    insecure.push("--automation-allow-insecure");
    let (mut child, lines) = serve(
        &dir.path().join("data"),
        &insecure,
        "the Automation API is listening",
    );
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    assert!(running, "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("without mutual TLS")),
        "{text}"
    );
}

#[tokio::test]
async fn a_tls_handshake_trickled_or_never_sent_is_cut_at_the_header_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = TestCa::new("slow-ca");
    let (cert, key) = ca.issue("server", "serverAuth");
    let app = spawn_tls_app(|settings| {
        settings.header_timeout_seconds = 1;
        settings.tls.cert = Some(cert);
        settings.tls.key = Some(key);
    })
    .await;
    let address = app.address.trim_start_matches("https://").to_owned();
    // Far more than the timeout: a connection still open after this was not cut.
    let bound = Duration::from_secs(20);
    let silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    // A ClientHello record header, then its body a byte at a time, each well within any
    // per-read timeout: only a deadline on the whole handshake cuts it.
    let trickle = tokio::spawn(async move {
        let mut record = vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        record.extend([0u8; 64]);
        for byte in record {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let read_until_closed = |mut stream: tokio::net::tcp::OwnedReadHalf| async move {
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let trickled = tokio::time::timeout(bound, read_until_closed(reader)).await;
    trickle.abort();
    assert!(trickled.is_ok(), "a trickled handshake must be cut");
    let (silent_reader, _silent_writer) = silent.into_split();
    let silent = tokio::time::timeout(bound, read_until_closed(silent_reader)).await;
    assert!(
        silent.is_ok(),
        "a connection that never starts its handshake must be cut"
    );

    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca.pem()).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let response = client.get(app.url("/ca/ca.pem")).send().await.unwrap();
    assert_eq!(response.status(), 200, "others are served meanwhile");
}
