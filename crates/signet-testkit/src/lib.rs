//! Test support shared by Signet's crates: the tools we did not write that judge a signed PDF
//! (pyHanko, poppler's pdfsig, `openssl cms -verify`, `qpdf --check`) and hand-built fixture PDFs,
//! honest ([`pdfs`]) and hostile ([`bombs`]).
//!
//! Oracles are required, not optional: a missing one fails the test with install advice
//! (`scripts/test.sh` installs them all).

pub mod bombs;
pub mod pdfs;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python virtualenv with pyHanko, reportlab and pypdf: `$SIGNET_ORACLE_VENV`, else
/// `<workspace>/.venv`.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("SIGNET_ORACLE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv"));
    for tool in ["python", "pyhanko"] {
        assert!(
            venv.join("bin").join(tool).exists(),
            "oracle missing: {}/bin/{tool}. Run scripts/test.sh, or create the venv with \
             `python3 -m venv .venv && .venv/bin/pip install -r scripts/oracle-requirements.txt` \
             or point SIGNET_ORACLE_VENV at one.",
            venv.display()
        );
    }
    venv
}

/// Runs a command, failing the test with install advice when the program is missing.
pub fn run<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> Output {
    let program = program.as_ref();
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "oracle `{}` cannot run ({e}); install it: apt-get install -y poppler-utils qpdf \
                 ghostscript librsvg2-bin openssl (or run scripts/test.sh)",
                program.to_string_lossy()
            )
        })
}

/// Runs a command that must succeed and returns its stdout.
pub fn run_ok<S: AsRef<OsStr>>(program: impl AsRef<OsStr>, args: &[S]) -> String {
    let out = run(&program, args);
    assert!(
        out.status.success(),
        "`{} {:?}` failed: {}\n{}",
        program.as_ref().to_string_lossy(),
        args.iter()
            .map(|a| a.as_ref().to_string_lossy())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// pyHanko's report (stdout and stderr) on every signature in `pdf`, trusting only `ca_pem`.
pub fn pyhanko_validate(pdf: &Path, ca_pem: &Path, extra: &[&str]) -> String {
    let mut args: Vec<&OsStr> = vec![
        OsStr::new("sign"),
        OsStr::new("validate"),
        OsStr::new("--no-revocation-check"),
        OsStr::new("--trust"),
        ca_pem.as_os_str(),
        OsStr::new("--trust-replace"),
    ];
    args.extend(extra.iter().map(OsStr::new));
    args.push(pdf.as_os_str());
    let out = run(venv().join("bin/pyhanko"), &args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts pyHanko finds `count` signatures, all intact, trusted and with only acceptable changes.
pub fn assert_pyhanko_accepts(pdf: &Path, ca_pem: &Path, count: usize, extra: &[&str]) {
    let report = pyhanko_validate(pdf, ca_pem, extra);
    let good = report
        .lines()
        .filter(|l| {
            l.contains("INTACT:TRUSTED")
                && (l.contains("UNTOUCHED") || l.contains("ACCEPTABLE_MODIFICATIONS"))
        })
        .count();
    assert_eq!(
        good,
        count,
        "pyHanko did not accept all {count} signatures of {}:\n{report}",
        pdf.display()
    );
}

/// pdfsig's report. Its exit code is 0 even on a digest mismatch, so callers read the text.
pub fn pdfsig_report(pdf: &Path) -> String {
    let out = run("pdfsig", &[pdf.as_os_str()]);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Asserts pdfsig says every one of `count` signatures is valid and the last covers the file,
/// or that what follows it is long-term validation data: a PAdES B-LT file ends with a `/DSS`
/// revision after its last signature (or document timestamp) — a new `/DSS` in the catalog, or
/// new `/VRI` entries in an existing one — which pyHanko's difference analysis judges (see
/// [`assert_pyhanko_accepts`]).
pub fn assert_pdfsig_accepts(pdf: &Path, count: usize) {
    let text = pdfsig_report(pdf);
    assert_eq!(
        text.matches("Signature Validation: Signature is Valid.")
            .count(),
        count,
        "pdfsig on {}:\n{text}",
        pdf.display()
    );
    let last = text.rsplit("Signature #").next().unwrap_or("");
    if last.contains("Total document signed") {
        return;
    }
    let bytes = fs::read(pdf).unwrap_or_else(|e| panic!("reading {}: {e}", pdf.display()));
    let covered = signatures_in(&bytes)
        .iter()
        .map(|(range, _)| range[2] + range[3])
        .max()
        .and_then(|end| usize::try_from(end).ok())
        .unwrap_or(0);
    let tail = bytes.get(covered..).unwrap_or(&[]);
    assert!(
        find(tail, b"/DSS").is_some() || find(tail, b"/VRI").is_some(),
        "pdfsig: the last signature does not cover the whole file and what follows is not a \
         /DSS update:\n{text}"
    );
}

/// Asserts `openssl cms -verify` accepts `cms_der` over `byte_range` of `pdf`, trusting `ca_pem`.
pub fn assert_openssl_verifies(pdf: &Path, ca_pem: &Path, byte_range: [u64; 4], cms_der: &[u8]) {
    let bytes = fs::read(pdf).unwrap_or_else(|e| panic!("reading {}: {e}", pdf.display()));
    let r = byte_range.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let content = [&bytes[r[0]..r[0] + r[1]], &bytes[r[2]..r[2] + r[3]]].concat();
    let dir = tempdir_near(pdf);
    let content_path = dir.join("content.bin");
    let cms_path = dir.join("sig.der");
    write(&content_path, &content);
    write(&cms_path, cms_der);
    let args: [&OsStr; 13] = [
        "cms".as_ref(),
        "-verify".as_ref(),
        "-binary".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        cms_path.as_os_str(),
        "-content".as_ref(),
        content_path.as_os_str(),
        "-CAfile".as_ref(),
        ca_pem.as_os_str(),
        "-purpose".as_ref(),
        "any".as_ref(),
    ];
    let out = run("openssl", &args);
    let _ = fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "openssl cms -verify failed on {}: {}",
        pdf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every signature of `pdf`: its `/ByteRange` and the CMS DER in its `/Contents`, in file order.
pub fn signatures_in(pdf: &[u8]) -> Vec<([u64; 4], Vec<u8>)> {
    let needle = b"/ByteRange";
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = find(&pdf[at..], needle) {
        let start = at + pos + needle.len();
        at = start;
        let Some(open) = find(&pdf[start..], b"[") else {
            break;
        };
        let Some(close) = find(&pdf[start + open..], b"]") else {
            break;
        };
        let text = String::from_utf8_lossy(&pdf[start + open + 1..start + open + close]);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let Ok(range) = <[u64; 4]>::try_from(numbers) else {
            continue;
        };
        let (from, to) = (range[0] + range[1], range[2]);
        let Some(hex_text) = usize::try_from(from)
            .ok()
            .zip(usize::try_from(to).ok())
            .and_then(|(from, to)| pdf.get(from + 1..to.saturating_sub(1)))
        else {
            continue;
        };
        let der = decode_hex_trimmed(hex_text);
        found.push((range, der));
    }
    found
}

/// Hex digits of a `/Contents` placeholder, decoded, with the zero padding after the DER cut off.
fn decode_hex_trimmed(hex_text: &[u8]) -> Vec<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    };
    let bytes: Vec<u8> = hex_text
        .chunks(2)
        .map(|pair| (digit(pair[0]) << 4) | pair.get(1).map_or(0, |&c| digit(c)))
        .collect();
    // A DER SEQUENCE with a long-form length says how long it is.
    let len = match bytes.get(1) {
        Some(&first) if first & 0x80 != 0 => {
            let n = usize::from(first & 0x7f);
            2 + n
                + bytes
                    .get(2..2 + n)
                    .unwrap_or(&[])
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        }
        Some(&first) => 2 + usize::from(first),
        None => 0,
    };
    bytes[..len.min(bytes.len())].to_vec()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Asserts `openssl cms -verify` accepts every signature found in `pdf`.
pub fn assert_openssl_verifies_all(pdf: &Path, ca_pem: &Path, count: usize) {
    let bytes = fs::read(pdf).unwrap_or_else(|e| panic!("reading {}: {e}", pdf.display()));
    let signatures = signatures_in(&bytes);
    assert_eq!(signatures.len(), count, "signatures in {}", pdf.display());
    for (range, der) in signatures {
        assert_openssl_verifies(pdf, ca_pem, range, &der);
    }
}

/// Asserts `qpdf --check` finds no errors (exit 0, or 3 = warnings only when `allow_warnings`).
pub fn assert_qpdf_clean(pdf: &Path, allow_warnings: bool) {
    let out = run("qpdf", &[OsStr::new("--check"), pdf.as_os_str()]);
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || (allow_warnings && code == 3),
        "qpdf --check {} exited {code}:\n{}\n{}",
        pdf.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// All four oracles on a file with `count` signatures, every one of them checked.
pub fn assert_valid_everywhere(pdf: &Path, ca_pem: &Path, count: usize) {
    assert_pyhanko_accepts(pdf, ca_pem, count, &[]);
    assert_pdfsig_accepts(pdf, count);
    assert_openssl_verifies_all(pdf, ca_pem, count);
    assert_qpdf_clean(pdf, false);
}

/// Writes `forged`: `signed` plus an incremental update (made by pyHanko) that replaces page 1's
/// content, which no signature allows. Validators must flag it.
pub fn forge_later_revision(signed: &Path, forged: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("forge.py");
    run_ok(
        venv().join("bin/python"),
        &[script.as_os_str(), signed.as_os_str(), forged.as_os_str()],
    );
}

/// A private scratch directory beside `file`, so parallel tests never share files.
fn tempdir_near(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    let name = format!(
        ".oracle-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    fs::write(path, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
