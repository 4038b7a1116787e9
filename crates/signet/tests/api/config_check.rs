//! Configuration that refuses mistakes, through the `signet` binary as an operator meets it:
//! unknown keys and variables named with the nearest known one, bad values named with the
//! value, a missing data directory refused unless `--init`, `config check` hiding secrets, and
//! an unreachable PostgreSQL named by its host within seconds.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SIGNET: &str = env!("CARGO_BIN_EXE_signet");

/// `signet <args>` with none of the caller's `SIGNET_*` settings, plus `envs`.
fn signet(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(SIGNET);
    command.args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("SIGNET_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    command.output().unwrap()
}

fn refused(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "accepted: {stderr}");
    stderr
}

fn config_file(dir: &Path, toml: &str) -> String {
    let path = dir.join("signet.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn an_unknown_key_in_the_file_is_refused_with_the_nearest_known_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        dir.path(),
        "[automation_api]\nenable = true\n\n[tsa]\ntimeout_secs = 3\n",
    );
    let stderr = refused(&signet(&["config", "check", "--config", &file], &[]));
    assert!(stderr.contains("`automation_api.enable`"), "{stderr}");
    assert!(stderr.contains("`automation_api.enabled`"), "{stderr}");
    assert!(
        stderr.contains("`tsa.timeout_secs`"),
        "every unknown key at once: {stderr}"
    );
    assert!(stderr.contains("`tsa.timeout_seconds`"), "{stderr}");

    // The same mistake refuses `serve` before anything is created.
    let data = dir.path().join("data");
    let stderr = refused(&signet(
        &[
            "serve",
            "--config",
            &file,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    ));
    assert!(stderr.contains("automation_api.enable"), "{stderr}");
    assert!(!data.exists());
}

#[test]
fn a_typo_in_a_signet_variable_is_refused_with_the_nearest_known_one() {
    let stderr = refused(&signet(
        &["config", "check"],
        &[("SIGNET_JOB_INTERVAL_SECOND", "5")],
    ));
    assert!(stderr.contains("SIGNET_JOB_INTERVAL_SECOND`"), "{stderr}");
    assert!(stderr.contains("SIGNET_JOB_INTERVAL_SECONDS"), "{stderr}");

    // The log filter and the test suite's variables are not settings but are allowed.
    let output = signet(
        &["config", "check"],
        &[
            ("SIGNET_LOG", "debug"),
            ("SIGNET_ORACLE_VENV", "/nowhere"),
            ("SIGNET_JOB_INTERVAL_SECONDS", "7"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("job_interval_seconds = 7"), "{stdout}");
}

#[test]
fn bad_values_are_refused_naming_the_key_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        dir.path(),
        "job_interval_seconds = 0\ncertificate_validity_days = 0\n\
         directory_file = \"/no/such/people.json\"\n\n\
         [smtp]\nurl = \"smtp//mail.example\"\n",
    );
    let stderr = refused(&signet(&["config", "check", "--config", &file], &[]));
    for needle in [
        "`job_interval_seconds` = 0",
        "`certificate_validity_days` = 0",
        "`smtp.url` = \"smtp//mail.example\"",
        "/no/such/people.json",
    ] {
        assert!(stderr.contains(needle), "{needle} missing from {stderr}");
    }

    let stderr = refused(&signet(
        &["config", "check", "--public-url", "https//sign.example"],
        &[],
    ));
    assert!(stderr.contains("`public_url`"), "{stderr}");
    assert!(stderr.contains("https//sign.example"), "{stderr}");

    // A value of the wrong type names the key, with no password echoed from a URL.
    let stderr = refused(&signet(
        &["config", "check"],
        &[("SIGNET_MAX_CONNECTIONS", "many")],
    ));
    assert!(stderr.contains("max_connections"), "{stderr}");
}

#[test]
fn config_check_prints_the_effective_configuration_with_every_secret_hidden() {
    let output = signet(
        &[
            "config",
            "check",
            "--tsa-url",
            "https://tsauser:tsaurlpass@tsa.example/",
        ],
        &[
            (
                "SIGNET_DATABASE_URL",
                "postgres://app:dbpass@db.example:5432/signet",
            ),
            (
                "SIGNET_WEBHOOK_SECRET",
                "whsec_d2ViaG9va3NlY3JldHdlYmhvb2tzZWNyZXQ=",
            ),
            ("SIGNET_TSA_PASSWORD", "tsapass"),
            ("SIGNET_SMTP_URL", "smtp://mailer:smtppass@mail.example:25"),
            ("SIGNET_LDAP_BIND_PASSWORD", "ldappass"),
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for secret in [
        "dbpass",
        "d2ViaG9va3NlY3JldHdlYmhvb2tzZWNyZXQ",
        "tsapass",
        "tsaurlpass",
        "smtppass",
        "ldappass",
    ] {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
    let parsed: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(
        parsed["database_url"].as_str(),
        Some("postgres://app:***@db.example:5432/signet")
    );
    assert_eq!(parsed["webhooks"]["secret"].as_str(), Some("***"));
    assert_eq!(parsed["automation_api"]["enabled"].as_bool(), Some(false));
    assert!(stdout.contains("# directory_file is unset"), "{stdout}");
}

#[test]
fn commands_other_than_serve_refuse_a_missing_data_directory_unless_init() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("signet-dta");
    for command in [
        &["ca", "show"][..],
        &["api-key", "create"],
        &["api-key", "list"],
        &["migrate"],
        &["signer", "list"],
        &["order", "list"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--data-dir", typo.to_str().unwrap()]);
        let stderr = refused(&signet(&args, &[]));
        assert!(stderr.contains("signet-dta"), "{command:?}: {stderr}");
        assert!(stderr.contains("--init"), "{command:?}: {stderr}");
        assert!(!typo.exists(), "{command:?} created the directory");
    }
    let output = signet(
        &["ca", "show", "--init", "--data-dir", typo.to_str().unwrap()],
        &[],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("-----BEGIN CERTIFICATE-----"));
}

/// Runs `signet` and waits at most `limit` (a bound on a hang, not a timing assertion).
fn signet_within(args: &[&str], limit: Duration) -> Output {
    let mut command = Command::new(SIGNET);
    command
        .args(args)
        .env_remove("SIGNET_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("signet {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_unreachable_postgresql_fails_naming_its_host_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    // A server that accepts the connection and never says a word: only the timeout ends the
    // wait (an unroutable address is not dependable in every sandbox).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    for (url, host, says) in [
        (
            format!("postgres://postgres:pgsecret@127.0.0.1:{silent_port}/x"),
            format!("127.0.0.1:{silent_port}"),
            "no answer within 5 s",
        ),
        // Refused at once, and said so.
        (
            format!("postgres://postgres:pgsecret@127.0.0.1:{closed_port}/x"),
            format!("127.0.0.1:{closed_port}"),
            "refused",
        ),
    ] {
        let output = signet_within(
            &[
                "migrate",
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--database-url",
                &url,
            ],
            Duration::from_secs(60),
        );
        let stderr = refused(&output);
        assert!(stderr.contains(&host), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("pgsecret"), "{stderr}");
    }
    drop(silent);
}
