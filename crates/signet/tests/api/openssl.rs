//! The real `openssl` CLI playing the device (keys, CSRs) and the relying party (verify, CRL).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Key types a device might enroll with.
#[derive(Debug, Clone, Copy)]
pub enum KeyKind {
    P256,
    P384,
    Rsa(u32),
    Ed25519,
    Dsa,
}

/// A key pair and CSR made by openssl in a temporary directory.
pub struct DeviceKey {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub csr_pem: String,
}

pub fn run(args: &[&str], cwd: &Path) -> std::process::Output {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the openssl CLI must be installed");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `openssl <args>` in `cwd`, which must succeed; what it printed, standard output then standard
/// error (some answers, such as `ocsp`'s "Response verify OK", come on standard error).
pub fn text(args: &[&str], cwd: &Path) -> String {
    let output = run(args, cwd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn generate_key(kind: KeyKind, dir: &Path) -> PathBuf {
    let key = dir.join("device.key");
    let key_arg = key.to_str().unwrap();
    match kind {
        KeyKind::P256 | KeyKind::P384 => {
            let curve = if matches!(kind, KeyKind::P256) {
                "P-256"
            } else {
                "P-384"
            };
            run(
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    &format!("ec_paramgen_curve:{curve}"),
                    "-out",
                    key_arg,
                ],
                dir,
            );
        }
        KeyKind::Rsa(bits) => {
            run(
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    &format!("rsa_keygen_bits:{bits}"),
                    "-out",
                    key_arg,
                ],
                dir,
            );
        }
        KeyKind::Ed25519 => {
            run(&["genpkey", "-algorithm", "ED25519", "-out", key_arg], dir);
        }
        KeyKind::Dsa => {
            run(
                &[
                    "genpkey",
                    "-genparam",
                    "-algorithm",
                    "DSA",
                    "-pkeyopt",
                    "dsa_paramgen_bits:2048",
                    "-out",
                    "dsa.param",
                ],
                dir,
            );
            run(
                &["genpkey", "-paramfile", "dsa.param", "-out", key_arg],
                dir,
            );
        }
    }
    key
}

/// A fresh key of `kind` and a CSR for `/CN=<common_name>`.
pub fn device_key(kind: KeyKind, common_name: &str) -> DeviceKey {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_key(kind, dir.path());
    let csr_pem = csr_for(&key, common_name, dir.path());
    DeviceKey { dir, key, csr_pem }
}

pub fn csr_for(key: &Path, common_name: &str, dir: &Path) -> String {
    let mut args = vec!["req", "-new", "-key", key.to_str().unwrap(), "-subj"];
    let subject = format!("/CN={common_name}/O=Signet Tests");
    args.push(&subject);
    let output = run(&args, dir);
    String::from_utf8(output.stdout).unwrap()
}

/// `openssl verify -CAfile ca.pem cert.pem` succeeds.
pub fn verify_certificate(ca_pem: &str, certificate_pem: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.path().join("cert.pem"), certificate_pem).unwrap();
    let output = Command::new("openssl")
        .args(["verify", "-CAfile", "ca.pem", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// `openssl x509 -text` of a certificate.
pub fn certificate_text(certificate_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), certificate_pem).unwrap();
    let output = run(&["x509", "-in", "cert.pem", "-noout", "-text"], dir.path());
    String::from_utf8(output.stdout).unwrap()
}

/// `openssl crl -inform DER -text` of a CRL, checked against the CA; returns stdout + stderr.
/// A serial as the API shows it (32 hex digits) written as openssl prints it: upper case, without
/// the leading zero bytes DER drops (one serial in 128 starts with one).
pub fn serial_as_openssl_prints(serial: &str) -> String {
    let mut serial = serial.to_uppercase();
    while serial.len() > 2 && serial.starts_with("00") {
        serial.drain(..2);
    }
    serial
}

pub fn crl_text(crl_der: &[u8], ca_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("crl.der"), crl_der).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
    let output = run(
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text", "-CAfile", "ca.pem",
        ],
        dir.path(),
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The public key (SPKI PEM) inside a certificate.
pub fn certificate_public_key(certificate_pem: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), certificate_pem).unwrap();
    let output = run(
        &["x509", "-in", "cert.pem", "-noout", "-pubkey"],
        dir.path(),
    );
    String::from_utf8(output.stdout).unwrap()
}
