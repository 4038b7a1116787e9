//! Signet's client for an external RFC 3161 timestamp authority (`services::timestamps`), against
//! TSAs that are real servers: `openssl ts -reply` behind a small HTTP wrapper
//! (`support/openssl_tsa.py`), and the built-in TSA of a second Signet. Every failure mode gives
//! its typed error, fast, and never a panic: nothing listening, a TSA that never answers, HTTP
//! 500, garbage, a replayed token (another imprint, another nonce), a TSA nobody trusts, a reply
//! too large to read.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use signet::config::TsaSettings;
use signet::services::timestamps::{
    ExternalTsa, TimestampAuthority, TimestampUnavailable, TsaConfigError,
};
use signet_crypto::tsp::{self, Expectation, HashAlgorithm};
use tokio::io::AsyncBufReadExt;

use crate::helpers::spawn_app;

const TIMEOUT: Duration = Duration::from_secs(10);

/// The openssl TSA's keys and certificates, made once per test run (RSA key generation is slow).
pub fn openssl_tsa_pki() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static INIT: Mutex<()> = Mutex::new(());
    DIR.get_or_init(|| {
        let _guard = INIT.lock().unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openssl-tsa");
        let status = std::process::Command::new(python())
            .arg(script())
            .arg(&dir)
            .arg("init")
            .status()
            .expect("python3 must be installed");
        assert!(status.success(), "making the openssl TSA's certificates");
        dir
    })
}

fn python() -> PathBuf {
    match std::env::var_os("SIGNET_ORACLE_VENV") {
        Some(venv) if Path::new(&venv).join("bin/python").exists() => {
            Path::new(&venv).join("bin/python")
        }
        _ => PathBuf::from("python3"),
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/support/openssl_tsa.py")
}

/// A running `openssl ts -reply` TSA; killed when dropped.
pub struct OpensslTsa {
    pub port: u16,
    _process: tokio::process::Child,
    _work: tempfile::TempDir,
}

impl OpensslTsa {
    /// Starts the TSA on any free port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts the TSA on `port` (0: any), e.g. again on the port of one that was stopped.
    pub async fn start_on(port: u16) -> Self {
        let pki = openssl_tsa_pki();
        let work = tempfile::tempdir().unwrap();
        let mut process = tokio::process::Command::new(python())
            .arg(script())
            .arg(pki)
            .arg(port.to_string())
            .arg(work.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 must be installed");
        let stdout = process.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the TSA wrapper exited before listening");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the TSA wrapper: {line}"));
        Self {
            port,
            _process: process,
            _work: work,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The root its TSA certificate chains to.
    pub fn root_der() -> Vec<u8> {
        pem_der(&openssl_tsa_pki().join("root.pem"))
    }

    pub fn tsa_certificate_der() -> Vec<u8> {
        pem_der(&openssl_tsa_pki().join("tsa.pem"))
    }

    /// A root that has nothing to do with this TSA.
    pub fn unrelated_root_der() -> Vec<u8> {
        pem_der(&openssl_tsa_pki().join("other-root.pem"))
    }
}

fn pem_der(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path).unwrap();
    signet_crypto::ca::der_from_pem(&text, "CERTIFICATE")
        .unwrap()
        .to_vec()
}

fn external(url: &str, anchor: Vec<u8>, timeout: Duration) -> TimestampAuthority {
    TimestampAuthority::External(ExternalTsa::new(url, None, None, vec![anchor], timeout).unwrap())
}

fn digest(label: &str) -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&HashAlgorithm::Sha256.digest(label.as_bytes()));
    digest
}

/// The token verifies on its own, with nothing but the trust anchor, for `digest`.
fn assert_token_verifies(token_der: &[u8], digest: &[u8; 32], anchor: &[u8]) {
    tsp::verify_token(
        token_der,
        &Expectation {
            hash_algorithm: HashAlgorithm::Sha256,
            hashed_message: digest,
            nonce: None,
            policy: None,
            trust_anchors: &[anchor],
            extra_certificates: &[],
        },
    )
    .map(|_| ())
    .or_else(|e| match e {
        // The token carries the nonce Signet sent; this check passed none.
        tsp::TspError::Invalid(reason) if reason.contains("nonce") => Ok(()),
        other => Err(other),
    })
    .unwrap();
}

#[tokio::test]
async fn an_openssl_tsa_gives_a_token_that_verifies() {
    let tsa = OpensslTsa::start().await;
    let authority = external(&tsa.url("/tsr"), OpensslTsa::root_der(), TIMEOUT);

    let wanted = digest("a signature value");
    let token = authority.timestamp(&wanted).await.unwrap();

    assert_eq!(token.tsa_certificate_der, OpensslTsa::tsa_certificate_der());
    assert_token_verifies(&token.der, &wanted, &OpensslTsa::root_der());
    // openssl agrees about its own token once Signet has taken it apart and handed it on.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token.der"), &token.der).unwrap();
    let root = openssl_tsa_pki().join("root.pem");
    let output = std::process::Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in", "token.der", "-digest"])
        .arg(hex::encode(wanted))
        .arg("-CAfile")
        .arg(&root)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Verification: OK"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn configured_from_settings_an_external_tsa_is_used_with_its_credentials() {
    let tsa = OpensslTsa::start().await;
    let app = spawn_app().await;
    let base = tsa.url("/basic");
    let with_userinfo = base.replace("http://", "http://tsa-user:tsa-pass@");
    let settings = TsaSettings {
        url: Some(with_userinfo),
        ca: Some(openssl_tsa_pki().join("root.pem")),
        ..TsaSettings::default()
    };
    let authority = TimestampAuthority::from_settings(
        &settings,
        app.state.pki.clone(),
        app.state.clock.clone(),
    )
    .unwrap();
    assert_eq!(authority.describe(), base, "the credentials are not shown");
    authority.timestamp(&digest("with userinfo")).await.unwrap();

    let separate = TsaSettings {
        url: Some(base.clone()),
        username: Some("tsa-user".into()),
        password: Some("tsa-pass".into()),
        ..settings.clone()
    };
    let authority = TimestampAuthority::from_settings(
        &separate,
        app.state.pki.clone(),
        app.state.clock.clone(),
    )
    .unwrap();
    authority.timestamp(&digest("with settings")).await.unwrap();

    let anonymous = external(&base, OpensslTsa::root_der(), TIMEOUT);
    let error = anonymous.timestamp(&digest("anonymous")).await.unwrap_err();
    assert_eq!(error, TimestampUnavailable::HttpStatus(401));
}

#[tokio::test]
async fn the_built_in_tsa_of_another_signet_serves_as_an_external_tsa() {
    let other = spawn_app().await;
    let ca_pem = other.get("/ca/ca.pem").await.text().await.unwrap();
    let ca_der = signet_crypto::ca::der_from_pem(&ca_pem, "CERTIFICATE")
        .unwrap()
        .to_vec();
    let tsa_pem = other.get("/ca/tsa.pem").await.text().await.unwrap();
    let tsa_der = signet_crypto::ca::der_from_pem(&tsa_pem, "CERTIFICATE")
        .unwrap()
        .to_vec();
    let authority = external(&other.url("/tsa"), ca_der.clone(), TIMEOUT);

    let wanted = digest("signed by one Signet, stamped by another");
    let token = authority.timestamp(&wanted).await.unwrap();

    assert_eq!(token.tsa_certificate_der, tsa_der);
    assert_token_verifies(&token.der, &wanted, &ca_der);

    // Trusting the other TSA's root instead is a verification failure, not a token.
    let wrong_root = external(&other.url("/tsa"), OpensslTsa::root_der(), TIMEOUT);
    let error = wrong_root.timestamp(&wanted).await.unwrap_err();
    assert!(
        matches!(error, TimestampUnavailable::VerificationFailed(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn the_built_in_tsa_is_used_without_a_url() {
    let app = spawn_app().await;
    let authority = TimestampAuthority::from_settings(
        &TsaSettings::default(),
        app.state.pki.clone(),
        app.state.clock.clone(),
    )
    .unwrap();
    assert_eq!(authority.describe(), "built-in");
    let wanted = digest("in process");
    let token = authority.timestamp(&wanted).await.unwrap();
    assert_token_verifies(&token.der, &wanted, app.state.pki.ca().certificate_der());
}

#[tokio::test]
async fn nothing_listening_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let authority = external(
        &format!("http://127.0.0.1:{port}/tsr"),
        OpensslTsa::root_der(),
        TIMEOUT,
    );
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    assert!(
        matches!(error, TimestampUnavailable::Unreachable(_)),
        "{error:?}"
    );
    assert!(
        !error.to_string().contains("127.0.0.1"),
        "the URL stays out of the client's message: {error}"
    );
}

#[tokio::test]
async fn a_tsa_that_never_answers_times_out() {
    let tsa = OpensslTsa::start().await;
    let authority = external(
        &tsa.url("/hang"),
        OpensslTsa::root_der(),
        Duration::from_millis(300),
    );
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    assert_eq!(error, TimestampUnavailable::Timeout);
}

#[tokio::test]
async fn a_connection_that_is_accepted_and_left_silent_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let authority = external(
        &format!("http://127.0.0.1:{port}/tsr"),
        OpensslTsa::root_der(),
        Duration::from_millis(300),
    );
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    assert_eq!(error, TimestampUnavailable::Timeout);
    holder.abort();
}

#[tokio::test]
async fn http_500_is_reported_as_the_status() {
    let tsa = OpensslTsa::start().await;
    let authority = external(&tsa.url("/status/500"), OpensslTsa::root_der(), TIMEOUT);
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    assert_eq!(error, TimestampUnavailable::HttpStatus(500));
}

#[tokio::test]
async fn garbage_is_a_malformed_reply() {
    let tsa = OpensslTsa::start().await;
    let authority = external(&tsa.url("/garbage"), OpensslTsa::root_der(), TIMEOUT);
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    assert!(
        matches!(error, TimestampUnavailable::Malformed(_)),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_replayed_token_for_another_imprint_or_nonce_fails_verification() {
    let tsa = OpensslTsa::start().await;
    let authority = external(&tsa.url("/replay"), OpensslTsa::root_der(), TIMEOUT);
    let first = digest("first");
    authority.timestamp(&first).await.unwrap();

    let other_imprint = authority.timestamp(&digest("second")).await.unwrap_err();
    match &other_imprint {
        TimestampUnavailable::VerificationFailed(reason) => {
            assert!(reason.contains("imprint"), "{reason}")
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
    // The same imprint again: the token is right but for the nonce of the first request.
    let same_imprint = authority.timestamp(&first).await.unwrap_err();
    match &same_imprint {
        TimestampUnavailable::VerificationFailed(reason) => {
            assert!(reason.contains("nonce"), "{reason}")
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_from_a_tsa_nobody_trusts_fails_verification() {
    let tsa = OpensslTsa::start().await;
    let authority = external(&tsa.url("/tsr"), OpensslTsa::unrelated_root_der(), TIMEOUT);
    let error = authority.timestamp(&digest("x")).await.unwrap_err();
    match &error {
        TimestampUnavailable::VerificationFailed(reason) => {
            assert!(reason.contains("chain"), "{reason}")
        }
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_reply_is_refused_whether_announced_or_not() {
    let tsa = OpensslTsa::start().await;
    for path in ["/huge", "/huge-unannounced"] {
        let authority = external(&tsa.url(path), OpensslTsa::root_der(), TIMEOUT);
        let error = authority.timestamp(&digest("x")).await.unwrap_err();
        assert_eq!(error, TimestampUnavailable::TooLarge, "{path}");
    }
}

#[tokio::test]
async fn bad_settings_stop_the_start_with_the_value_named() {
    let app = spawn_app().await;
    let build = |settings: TsaSettings| {
        TimestampAuthority::from_settings(&settings, app.state.pki.clone(), app.state.clock.clone())
            .unwrap_err()
    };
    let no_anchor = build(TsaSettings {
        url: Some("https://tsa.example/tsr".into()),
        ..TsaSettings::default()
    });
    assert!(matches!(
        no_anchor,
        TsaConfigError::MissingTrustAnchor { .. }
    ));
    assert!(
        no_anchor.to_string().contains("https://tsa.example/tsr"),
        "{no_anchor}"
    );

    let root = openssl_tsa_pki().join("root.pem");
    let bad_scheme = build(TsaSettings {
        url: Some("ldap://tsa.example/".into()),
        ca: Some(root.clone()),
        ..TsaSettings::default()
    });
    assert!(
        bad_scheme.to_string().contains("ldap://tsa.example/"),
        "{bad_scheme}"
    );

    let missing_file = build(TsaSettings {
        url: Some("https://tsa.example/tsr".into()),
        ca: Some(PathBuf::from("/nonexistent/tsa-root.pem")),
        ..TsaSettings::default()
    });
    assert!(
        missing_file
            .to_string()
            .contains("/nonexistent/tsa-root.pem"),
        "{missing_file}"
    );

    let zero = build(TsaSettings {
        timeout_seconds: 0,
        ..TsaSettings::default()
    });
    assert!(matches!(zero, TsaConfigError::Timeout(0)));
}
