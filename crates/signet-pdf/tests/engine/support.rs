//! Test support: a throw-away CA made with the `openssl` CLI, signing the way a device does
//! (`openssl dgst -sign` over the SignedAttributes), and the oracles that judge the result:
//! pyHanko, pdfsig, `openssl cms -verify` and `qpdf --check`.
//!
//! Oracles are required, not optional: a missing one fails the test with instructions.

#![allow(dead_code)]

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use signet_crypto::cms;
use signet_crypto::verify;
use signet_pdf::{PrepareOptions, Prepared};

pub use signet_testkit::{run_ok, venv};

macro_rules! os_args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}
pub(crate) use os_args;

/// A signer: key and certificate files, as a device would hold them.
pub struct Signer {
    pub key_pem: PathBuf,
    pub cert_der: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
}

/// A test CA with a P-256 and an RSA-2048 end entity, made once per test binary.
pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: PathBuf,
    pub ca_der: Vec<u8>,
    pub p256: Signer,
    pub rsa: Signer,
    /// PKCS#12 of the P-256 signer (password `pw`), for signing with pyHanko itself.
    pub p12: PathBuf,
}

pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(make_pki)
}

/// A directory under the target dir that lives as long as the test binary's run.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn make_pki() -> Pki {
    let dir = scratch_dir("pki");
    let p = |name: &str| dir.join(name);
    let s = |path: &Path| path.to_str().unwrap().to_owned();
    fs::write(
        p("ca.cnf"),
        "[req]\ndistinguished_name=dn\n[dn]\n\
         [ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n\
         [ee]\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature,nonRepudiation\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    run_ok(
        "openssl",
        os_args![
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &s(&p("ca.key"))
        ],
    );
    run_ok(
        "openssl",
        os_args![
            "req",
            "-x509",
            "-new",
            "-key",
            &s(&p("ca.key")),
            "-subj",
            "/CN=Signet Test CA",
            "-days",
            "3650",
            "-config",
            &s(&p("ca.cnf")),
            "-extensions",
            "ca",
            "-out",
            &s(&p("ca.pem"))
        ],
    );
    let issue = |name: &str, keygen: &[&str]| {
        let key = p(&format!("{name}.key"));
        let mut args: Vec<&std::ffi::OsStr> = keygen.iter().map(std::ffi::OsStr::new).collect();
        let key_s = s(&key);
        args.push(std::ffi::OsStr::new("-out"));
        args.push(std::ffi::OsStr::new(&key_s));
        run_ok("openssl", &args);
        run_ok(
            "openssl",
            os_args![
                "req",
                "-new",
                "-key",
                &key_s,
                "-subj",
                &format!("/CN=Signet Test {name}"),
                "-config",
                &s(&p("ca.cnf")),
                "-out",
                &s(&p(&format!("{name}.csr")))
            ],
        );
        run_ok(
            "openssl",
            os_args![
                "x509",
                "-req",
                "-in",
                &s(&p(&format!("{name}.csr"))),
                "-CA",
                &s(&p("ca.pem")),
                "-CAkey",
                &s(&p("ca.key")),
                "-CAcreateserial",
                "-days",
                "825",
                "-sha256",
                "-extfile",
                &s(&p("ca.cnf")),
                "-extensions",
                "ee",
                "-out",
                &s(&p(&format!("{name}.pem")))
            ],
        );
        run_ok(
            "openssl",
            os_args![
                "x509",
                "-in",
                &s(&p(&format!("{name}.pem"))),
                "-outform",
                "DER",
                "-out",
                &s(&p(&format!("{name}.der")))
            ],
        );
        run_ok(
            "openssl",
            os_args![
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                &key_s,
                "-outform",
                "DER",
                "-out",
                &s(&p(&format!("{name}.p8")))
            ],
        );
        Signer {
            key_pem: key,
            cert_der: fs::read(p(&format!("{name}.der"))).unwrap(),
            key_pkcs8_der: fs::read(p(&format!("{name}.p8"))).unwrap(),
        }
    };
    let p256 = issue(
        "p256",
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
    );
    let rsa = issue(
        "rsa",
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
    );
    run_ok(
        "openssl",
        os_args![
            "pkcs12",
            "-export",
            "-inkey",
            &s(&p256.key_pem),
            "-in",
            &s(&p("p256.pem")),
            "-certfile",
            &s(&p("ca.pem")),
            "-passout",
            "pass:pw",
            "-out",
            &s(&p("p256.p12"))
        ],
    );
    run_ok(
        "openssl",
        os_args![
            "x509",
            "-in",
            &s(&p("ca.pem")),
            "-outform",
            "DER",
            "-out",
            &s(&p("ca.der"))
        ],
    );
    Pki {
        ca_pem: p("ca.pem"),
        ca_der: fs::read(p("ca.der")).unwrap(),
        p12: p("p256.p12"),
        p256,
        rsa,
        dir,
    }
}

/// Options at a fixed, recent signing time.
pub fn options() -> PrepareOptions {
    PrepareOptions::new(time::OffsetDateTime::now_utc())
}

/// Signs a prepared file the deferred way: SignedAttributes → `openssl dgst -sha256 -sign` →
/// verify → SignedData → embed. Returns the CMS DER.
pub fn sign_externally(path: &Path, prepared: &Prepared, signer: &Signer) -> Vec<u8> {
    sign_externally_with(path, prepared, signer, &[])
}

/// [`sign_externally`] with extra `openssl dgst` options (e.g. RSA-PSS padding).
pub fn sign_externally_with(
    path: &Path,
    prepared: &Prepared,
    signer: &Signer,
    dgst_options: &[&str],
) -> Vec<u8> {
    let attributes = cms::signed_attributes_der(&prepared.digest, &signer.cert_der).unwrap();
    let dir = path.parent().unwrap();
    let attrs_path = dir.join("attrs.der");
    let sig_path = dir.join("device.sig");
    fs::write(&attrs_path, &attributes).unwrap();
    let mut args: Vec<&std::ffi::OsStr> =
        os_args!["dgst", "-sha256", "-sign", signer.key_pem.to_str().unwrap()].to_vec();
    args.extend(dgst_options.iter().map(std::ffi::OsStr::new));
    args.extend(os_args![
        "-out",
        sig_path.to_str().unwrap(),
        attrs_path.to_str().unwrap()
    ]);
    run_ok("openssl", &args);
    let device_signature = fs::read(&sig_path).unwrap();
    let verified =
        verify::verify_with_certificate(&signer.cert_der, &attributes, &device_signature).unwrap();
    let cms_der = cms::signed_data_der(
        &attributes,
        &verified.signature,
        verified.algorithm,
        &signer.cert_der,
        &[&pki().ca_der],
    )
    .unwrap();
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    signet_pdf::embed(&mut file, &prepared.byte_range, &cms_der).unwrap();
    cms_der
}

/// Prepares `input` into `output` and signs it with `signer`; returns the preparation and CMS.
pub fn sign_file(input: &Path, output: &Path, signer: &Signer) -> (Prepared, Vec<u8>) {
    let source = fs::File::open(input).unwrap();
    let out = fs::File::create(output).unwrap();
    let prepared = signet_pdf::prepare(source, out, &options())
        .unwrap_or_else(|e| panic!("prepare {}: {e}", input.display()));
    let cms_der = sign_externally(output, &prepared, signer);
    (prepared, cms_der)
}

/// pyHanko's verdict lines for every signature in the file, trusting the test CA.
pub fn pyhanko_validate(path: &Path, extra: &[&str]) -> String {
    signet_testkit::pyhanko_validate(path, &pki().ca_pem, extra)
}

/// Asserts pyHanko finds `count` signatures, all intact, trusted and with only acceptable changes.
pub fn assert_pyhanko_accepts(path: &Path, count: usize, extra: &[&str]) {
    signet_testkit::assert_pyhanko_accepts(path, &pki().ca_pem, count, extra);
}

pub use signet_testkit::{assert_pdfsig_accepts, assert_qpdf_clean};

/// Asserts `openssl cms -verify` accepts the CMS over the file's byte ranges.
pub fn assert_openssl_verifies(path: &Path, prepared: &Prepared, cms_der: &[u8]) {
    signet_testkit::assert_openssl_verifies(path, &pki().ca_pem, prepared.byte_range.0, cms_der);
}

/// All four oracles on a file whose newest signature is `prepared`/`cms_der` and which has
/// `count` signatures in all.
pub fn assert_valid_everywhere(path: &Path, count: usize, prepared: &Prepared, cms_der: &[u8]) {
    assert_pyhanko_accepts(path, count, &[]);
    assert_pdfsig_accepts(path, count);
    assert_openssl_verifies(path, prepared, cms_der);
    assert_qpdf_clean(path, false);
}

pub use signet_testkit::pdfs::classic_pdf;

/// Prepares `input` bytes in memory with default options.
pub fn prepare_bytes(input: &[u8]) -> Result<(Vec<u8>, Prepared), signet_pdf::PdfError> {
    let mut out = Vec::new();
    let prepared = signet_pdf::prepare(Cursor::new(input), &mut out, &options())?;
    Ok((out, prepared))
}
