//! Replays every input the PDF fuzzers found (`fuzz/regressions/pdf_check` and
//! `fuzz/regressions/pdf_prepare`) through `check` and `prepare`, so a finding stays fixed in
//! a plain `cargo test`, without libFuzzer. Refusing an input is fine; panicking is not. The
//! resource side of a finding (memory, time) is replayed by `scripts/fuzz.sh`, which passes the
//! same directories to libFuzzer under its RSS and time limits.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use signet_pdf::{check, prepare, PrepareOptions};
use time::OffsetDateTime;

/// The files kept for the PDF targets, sorted so a failure report is stable.
fn kept_findings() -> Vec<PathBuf> {
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut files = Vec::new();
    for target in ["pdf_check", "pdf_prepare"] {
        let Ok(entries) = std::fs::read_dir(regressions.join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a readable regressions directory").path();
            if path.is_file() && path.extension().is_none_or(|ext| ext != "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_kept_fuzz_finding_is_accepted_or_refused_without_a_panic() {
    let files = kept_findings();
    let mut panicked = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).expect("a readable finding");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let _ = check(Cursor::new(&bytes));
            let options = PrepareOptions::new(OffsetDateTime::UNIX_EPOCH);
            let _ = prepare(Cursor::new(&bytes), std::io::sink(), &options);
        }));
        if outcome.is_err() {
            panicked.push(path.display().to_string());
        }
    }
    assert!(
        panicked.is_empty(),
        "{} of {} kept fuzz findings panic: {panicked:?}",
        panicked.len(),
        files.len()
    );
}
