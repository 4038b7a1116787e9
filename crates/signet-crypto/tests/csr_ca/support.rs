//! A temporary directory in which the `openssl` CLI is run, plus a test CA.

use std::path::PathBuf;
use std::process::{Command, Output};

use signet_crypto::ca::{CertificateAuthority, IssueRequest, IssuedCertificate};
use signet_crypto::csr::CertificationRequest;
use time::{Duration, OffsetDateTime};

pub const CRL_URL: &str = "http://signet.example/ca/crl.der";

/// A scratch directory; every openssl command runs inside it.
pub struct Openssl {
    dir: tempfile::TempDir,
}

impl Openssl {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs openssl and returns its output whatever the exit status.
    pub fn try_run(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the openssl CLI must be installed")
    }

    /// Runs openssl, panicking with its stderr when it fails; returns stdout + stderr.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.try_run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "openssl {args:?} failed:\n{text}");
        text
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    /// `openssl req -new` with a fresh key (`newkey` are the key arguments, e.g.
    /// `["-newkey", "rsa:2048"]`); writes `{name}.key` and `{name}.csr` and returns the CSR PEM.
    pub fn new_csr(&self, name: &str, newkey: &[&str], subject: &str, extra: &[&str]) -> String {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let mut args = vec![
            "req", "-new", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ];
        args.extend_from_slice(newkey);
        args.extend_from_slice(extra);
        self.run(&args);
        self.read(&csr)
    }

    /// A P-256 CSR with a plain subject.
    pub fn p256_csr(&self, name: &str) -> String {
        self.new_csr(
            name,
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "/CN=Alice Andersson/O=Example AB/C=SE",
            &[],
        )
    }

    /// Writes the certificate as `{name}.pem` and returns `openssl x509 -text` of it.
    pub fn x509_text(&self, name: &str, certificate: &IssuedCertificate) -> String {
        let file = format!("{name}.pem");
        self.write(&file, certificate.pem());
        self.run(&["x509", "-in", &file, "-noout", "-text"])
    }

    /// `openssl verify` of `{name}.pem` against `ca.pem` (written from `ca`); returns the output.
    pub fn verify(&self, ca: &CertificateAuthority, name: &str, extra: &[&str]) -> Output {
        self.write("ca.pem", ca.certificate_pem());
        let file = format!("{name}.pem");
        let mut args = vec!["verify", "-CAfile", "ca.pem"];
        args.extend_from_slice(extra);
        args.push(&file);
        self.try_run(&args)
    }
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

pub fn test_ca() -> CertificateAuthority {
    CertificateAuthority::generate("Signet Test CA", now(), Duration::days(3650)).unwrap()
}

/// Issues a one-year certificate for a parsed request.
pub fn issue(
    ca: &CertificateAuthority,
    request: &CertificationRequest,
    email: Option<&str>,
) -> IssuedCertificate {
    ca.issue(&IssueRequest {
        subject: request.subject(),
        public_key: request.public_key(),
        not_before: now() - Duration::minutes(1),
        not_after: now() + Duration::days(365),
        crl_distribution_url: CRL_URL,
        email,
        authority_info_access: None,
    })
    .unwrap()
}

/// openssl's rendering of a serial: uppercase hex of the DER INTEGER's content bytes.
pub fn openssl_serial(bytes: &[u8]) -> String {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    hex::encode_upper(&bytes[first..])
}
