//! The hostile PDFs of issue 10, generated here (see `signet_testkit::bombs`), through `check`
//! and `prepare`: each refused with the limit it broke, and the process's peak resident memory
//! never more than 64 MiB above where it started (read from `/proc/self/status`, the peak reset
//! through `/proc/self/clear_refs` before each run). It is its own test binary, and its tests
//! take turns, so no other test's memory counts. No time is asserted: how long each bomb takes is
//! measured by `examples/bomb.rs`.

#![expect(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::io::Cursor;
use std::sync::Mutex;

use signet_pdf::{PdfError, PrepareOptions};
use signet_testkit::bombs;

/// The most resident memory may grow while one bomb is read.
const MAX_GROWTH_KIB: u64 = 64 << 10;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs `work` and returns its result and how far the peak resident memory rose above the
/// resident memory before it, in KiB.
fn peak_growth<T>(work: impl FnOnce() -> T) -> (T, u64) {
    // Writing 5 resets VmHWM (the peak) to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    let result = work();
    (result, status_kib("VmHWM:").saturating_sub(before))
}

/// Checks and prepares `pdf`; asserts both refuse it with an error `expected` accepts and
/// stay under [`MAX_GROWTH_KIB`]. Returns the `check` error's message.
fn refused_within_memory(name: &str, pdf: &[u8], expected: impl Fn(&PdfError) -> bool) -> String {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (checked, check_growth) = peak_growth(|| signet_pdf::check(Cursor::new(pdf)));
    let options = PrepareOptions::new(time::OffsetDateTime::UNIX_EPOCH);
    let (prepared, prepare_growth) =
        peak_growth(|| signet_pdf::prepare(Cursor::new(pdf), std::io::sink(), &options));
    eprintln!(
        "{name} ({} bytes): check grew the peak RSS by {check_growth} KiB, prepare by \
         {prepare_growth} KiB",
        pdf.len(),
    );
    let check_error = checked.unwrap_err();
    assert!(expected(&check_error), "{name}: check said {check_error}");
    let prepare_error = prepared.unwrap_err();
    assert!(
        expected(&prepare_error),
        "{name}: prepare said {prepare_error}"
    );
    assert!(
        check_growth < MAX_GROWTH_KIB,
        "{name}: check grew by {check_growth} KiB"
    );
    assert!(
        prepare_growth < MAX_GROWTH_KIB,
        "{name}: prepare grew by {prepare_growth} KiB"
    );
    check_error.to_string()
}

fn over(limit: &'static str) -> impl Fn(&PdfError) -> bool {
    move |e| matches!(e, PdfError::OverBudget(m) if m.contains(limit))
}

#[test]
fn twelve_million_cross_reference_rows_in_61_kb_are_refused_before_they_are_read() {
    let pdf = bombs::wide_xref_stream();
    let message = refused_within_memory(
        "/W [1 4 0] xref stream",
        &pdf,
        over("cross-reference entries"),
    );
    assert!(message.contains("limit of"), "{message}");
}

#[test]
fn sixty_four_million_one_byte_rows_are_refused_before_they_are_read() {
    let pdf = bombs::xref_stream_chain([1, 0, 0], 64 << 20, 1);
    refused_within_memory(
        "/W [1 0 0] xref stream",
        &pdf,
        over("cross-reference entries"),
    );
}

#[test]
fn a_prev_chain_of_huge_cross_reference_streams_is_refused() {
    let pdf = bombs::xref_stream_chain([1, 4, 0], 12_582_912, 8);
    refused_within_memory(
        "/Prev chain of 8 xref streams",
        &pdf,
        over("cross-reference entries"),
    );
}

#[test]
fn sections_that_each_fit_are_refused_when_their_prev_chain_together_does_not() {
    let one = bombs::xref_stream_chain([1, 0, 0], 1_000, 1);
    signet_pdf::check(Cursor::new(&one)).unwrap();
    let three = bombs::xref_stream_chain([1, 0, 0], 1_000, 3);
    refused_within_memory(
        "/Prev chain of 3 small xref streams",
        &three,
        over("cross-reference entries"),
    );
}

#[test]
fn eight_object_streams_of_64_mib_are_refused_at_the_decoding_budget() {
    let pdf = bombs::object_stream_bomb(8, 64 << 20);
    assert!(pdf.len() < 700_000, "{}", pdf.len());
    refused_within_memory("8 object streams of 64 MiB", &pdf, over("decoded bytes"));
}

#[test]
fn object_streams_within_the_budget_are_read() {
    let pdf = bombs::object_stream_bomb(3, 64 << 10);
    signet_pdf::check(Cursor::new(&pdf)).unwrap();
}

#[test]
fn two_thousand_fields_that_never_close_are_refused_at_the_parsing_budget() {
    let pdf = bombs::unclosed_fields_bomb(2000, 4 << 20);
    refused_within_memory("2,000 unclosed fields", &pdf, over("bytes examined"));
}

#[test]
fn a_few_fields_that_never_close_are_read_once_each_and_the_document_accepted() {
    // Each broken field is read to the end of the file once; nothing is read twice, so a
    // handful fits the budget and the form simply names nothing for them.
    let pdf = bombs::unclosed_fields_bomb(2, 256 << 10);
    signet_pdf::check(Cursor::new(&pdf)).unwrap();
}

#[test]
fn a_cancelled_check_stops_with_cancelled() {
    let cancel = signet_pdf::Cancel::new();
    cancel.cancel();
    let err = signet_pdf::check_with(Cursor::new(signet_testkit::pdfs::classic_pdf(1)), &cancel)
        .unwrap_err();
    assert!(matches!(err, PdfError::Cancelled), "{err}");
}

#[test]
fn a_cancelled_prepare_stops_and_a_guard_cancels_when_dropped() {
    let mut options = PrepareOptions::new(time::OffsetDateTime::UNIX_EPOCH);
    options.cancel = signet_pdf::Cancel::new();
    drop(options.cancel.cancel_on_drop());
    let pdf = signet_testkit::pdfs::classic_pdf(1);
    let err = signet_pdf::prepare(Cursor::new(pdf), std::io::sink(), &options).unwrap_err();
    assert!(matches!(err, PdfError::Cancelled), "{err}");
}
