//! The resource budget of one parse: every limit the reader enforces, stated here and nowhere
//! else, and the meter that charges work against them.
//!
//! A hostile upload is small and asks for much (issue 10): a 61 KB cross-reference stream that
//! names 12 million rows, half a megabyte of object streams that inflate to 512 MiB, 2,000
//! objects whose text never ends. So what a document may cost is set by its size: it can name
//! about one object per ten bytes, its compressed streams may decode to a few times its size
//! (within a fixed ceiling), and reading it may examine a few times its bytes. Within those, an
//! honest document never comes close; past them the parse stops with
//! [`PdfError::OverBudget`] naming the limit, before the allocation or the loop it would cost.
//!
//! The meter also carries the caller's [`Cancel`] token, so the same calls that count the work
//! stop it when the client has gone.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::PdfError;

/// Bytes of file per cross-reference entry a document may name: a file of N bytes names at most
/// N/10 objects (plus [`XREF_ENTRIES_FLOOR`]), summed over every section its `/Prev` chain
/// reaches. The smallest real object (`1 0 obj null endobj`, or a few bytes in a compressed
/// object stream with its cross-reference row) costs more than that.
pub const BYTES_PER_XREF_ENTRY: u64 = 10;

/// Cross-reference entries every document may name whatever its size.
pub const XREF_ENTRIES_FLOOR: u64 = 1_000;

/// Decoded bytes per byte of file that all cross-reference and object streams of a document may
/// produce together, between [`DECODED_FLOOR`] and [`DECODED_CEILING`].
pub const DECODED_PER_FILE_BYTE: u64 = 8;

/// Decoded bytes every document may produce whatever its size.
pub const DECODED_FLOOR: u64 = 4 << 20;

/// Decoded bytes no document may exceed: the most memory decoding can hold at once.
pub const DECODED_CEILING: u64 = 32 << 20;

/// Decoded object-stream bytes kept for reuse; older streams are dropped past it (an object
/// needed later from a dropped stream decodes it again, charged again).
pub const OBJECT_STREAM_CACHE: usize = 8 << 20;

/// Bytes the parser may examine per byte of file (reading cross-reference sections, checking
/// object offsets, and every window an object is parsed from, counted each time it is parsed):
/// with [`PARSED_FLOOR`], the CPU bound. An honest document needs a little more than one pass
/// (the offset check reads the file once); its largest object, parsed in growing windows, fits
/// in the rest even when that object is most of the file.
pub const PARSED_PER_FILE_BYTE: u64 = 3;

/// Bytes every document may have examined whatever its size.
pub const PARSED_FLOOR: u64 = 1 << 20;

/// Largest object text (a catalog, a page, a field array). Far above real ones; a broken object
/// that never ends costs at most this much.
pub const MAX_OBJECT_TEXT: usize = 8 << 20;

/// The limits of one document, derived from its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cross-reference entries, over all sections.
    pub xref_entries: u64,
    /// Bytes decoded from cross-reference and object streams, in total.
    pub decoded_bytes: u64,
    /// Bytes examined by the parser, in total.
    pub parsed_bytes: u64,
}

impl Limits {
    /// The limits of a document of `file_len` bytes.
    pub fn for_file_len(file_len: u64) -> Self {
        Self {
            xref_entries: XREF_ENTRIES_FLOOR.saturating_add(file_len / BYTES_PER_XREF_ENTRY),
            decoded_bytes: file_len
                .saturating_mul(DECODED_PER_FILE_BYTE)
                .clamp(DECODED_FLOOR, DECODED_CEILING),
            parsed_bytes: PARSED_FLOOR
                .saturating_add(file_len.saturating_mul(PARSED_PER_FILE_BYTE)),
        }
    }
}

/// A flag the caller raises to stop the engine: polled between chunks of work (sections,
/// reads, 256 KiB of hashing, 64 KiB of inflating), it ends the call with
/// [`PdfError::Cancelled`]. Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token nobody has raised yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops every call that holds a clone of this token, at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// A guard that cancels this token when dropped: held by an async request handler while
    /// the engine runs on a blocking thread, it stops the engine when the request is dropped
    /// (the client hung up). Dropping it after the engine finished changes nothing.
    pub fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }

    /// `Err(Cancelled)` once cancelled.
    pub(crate) fn check(&self) -> Result<(), PdfError> {
        if self.is_cancelled() {
            Err(PdfError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// See [`Cancel::cancel_on_drop`].
#[derive(Debug)]
#[must_use = "the token is cancelled when the guard is dropped"]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// What one parse has spent so far, against its [`Limits`].
#[derive(Debug)]
pub(crate) struct Meter {
    limits: Limits,
    file_len: u64,
    xref_entries: u64,
    decoded_bytes: u64,
    parsed_bytes: u64,
    cancel: Cancel,
}

impl Meter {
    pub fn new(file_len: u64, cancel: Cancel) -> Self {
        Self {
            limits: Limits::for_file_len(file_len),
            file_len,
            xref_entries: 0,
            decoded_bytes: 0,
            parsed_bytes: 0,
            cancel,
        }
    }

    /// The caller's token, for loops that poll it themselves.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Charges `count` cross-reference entries, before they are read.
    pub fn charge_xref_entries(&mut self, count: u64) -> Result<(), PdfError> {
        self.cancel.check()?;
        self.xref_entries = self.xref_entries.saturating_add(count);
        if self.xref_entries > self.limits.xref_entries {
            return Err(self.over(
                "cross-reference entries",
                self.limits.xref_entries,
                &format!("one per {BYTES_PER_XREF_ENTRY} bytes of file, plus {XREF_ENTRIES_FLOOR}"),
            ));
        }
        Ok(())
    }

    /// Decoded bytes still allowed: the most the next stream may inflate to.
    pub fn decoded_left(&self) -> u64 {
        self.limits.decoded_bytes.saturating_sub(self.decoded_bytes)
    }

    /// Charges `bytes` of decoded stream data.
    pub fn charge_decoded(&mut self, bytes: u64) -> Result<(), PdfError> {
        self.cancel.check()?;
        self.decoded_bytes = self.decoded_bytes.saturating_add(bytes);
        if self.decoded_bytes > self.limits.decoded_bytes {
            return Err(self.over(
                "decoded bytes of cross-reference and object streams",
                self.limits.decoded_bytes,
                &format!(
                    "{DECODED_PER_FILE_BYTE} per byte of file, at least {} MiB, at most {} MiB",
                    DECODED_FLOOR >> 20,
                    DECODED_CEILING >> 20
                ),
            ));
        }
        Ok(())
    }

    /// Charges `bytes` examined by the parser.
    pub fn charge_parsed(&mut self, bytes: u64) -> Result<(), PdfError> {
        self.cancel.check()?;
        self.parsed_bytes = self.parsed_bytes.saturating_add(bytes);
        if self.parsed_bytes > self.limits.parsed_bytes {
            return Err(self.over(
                "bytes examined by the parser",
                self.limits.parsed_bytes,
                &format!(
                    "{PARSED_PER_FILE_BYTE} per byte of file, plus {} MiB",
                    PARSED_FLOOR >> 20
                ),
            ));
        }
        Ok(())
    }

    fn over(&self, what: &str, limit: u64, rule: &str) -> PdfError {
        PdfError::OverBudget(format!(
            "{what} exceed the limit of {limit} for a {}-byte file ({rule})",
            self.file_len
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_grow_with_the_file_within_their_floor_and_ceiling() {
        let small = Limits::for_file_len(1_000);
        assert_eq!(small.xref_entries, 1_100);
        assert_eq!(small.decoded_bytes, DECODED_FLOOR);
        assert_eq!(small.parsed_bytes, (1 << 20) + 3_000);
        let large = Limits::for_file_len(50_000_000);
        assert_eq!(large.xref_entries, 5_001_000);
        assert_eq!(large.decoded_bytes, DECODED_CEILING);
        assert_eq!(large.parsed_bytes, (1 << 20) + 150_000_000);
        assert_eq!(Limits::for_file_len(u64::MAX).parsed_bytes, u64::MAX);
    }

    #[test]
    fn the_issue_s_twelve_million_rows_in_61_kb_are_over_budget() {
        let mut meter = Meter::new(61_000, Cancel::new());
        let err = meter.charge_xref_entries(12_582_917).unwrap_err();
        assert!(
            matches!(&err, PdfError::OverBudget(m) if m.contains("cross-reference entries") && m.contains("7100")),
            "{err}"
        );
    }

    #[test]
    fn charges_add_up_across_calls() {
        let mut meter = Meter::new(0, Cancel::new());
        meter.charge_xref_entries(600).unwrap();
        assert!(meter.charge_xref_entries(401).is_err());
        meter.charge_decoded(DECODED_FLOOR - 1).unwrap();
        assert_eq!(meter.decoded_left(), 1);
        assert!(meter.charge_decoded(2).is_err());
    }

    #[test]
    fn a_cancelled_token_stops_the_next_charge_and_a_dropped_guard_cancels() {
        let cancel = Cancel::new();
        let mut meter = Meter::new(1_000, cancel.clone());
        meter.charge_parsed(10).unwrap();
        drop(cancel.cancel_on_drop());
        assert!(cancel.is_cancelled());
        assert!(matches!(meter.charge_parsed(10), Err(PdfError::Cancelled)));
    }

    proptest::proptest! {
        #[test]
        fn entries_within_the_limit_pass_and_one_more_fails(
            file_len in 0u64..1 << 40,
            split in 0u64..=100,
        ) {
            let limit = Limits::for_file_len(file_len).xref_entries;
            let first = limit * split / 100;
            let mut meter = Meter::new(file_len, Cancel::new());
            proptest::prop_assert!(meter.charge_xref_entries(first).is_ok());
            proptest::prop_assert!(meter.charge_xref_entries(limit - first).is_ok());
            proptest::prop_assert!(meter.charge_xref_entries(1).is_err());
        }

        #[test]
        fn limits_never_shrink_as_the_file_grows(a in 0u64..1 << 45, b in 0u64..1 << 45) {
            let (small, large) = (Limits::for_file_len(a.min(b)), Limits::for_file_len(a.max(b)));
            proptest::prop_assert!(small.xref_entries <= large.xref_entries);
            proptest::prop_assert!(small.decoded_bytes <= large.decoded_bytes);
            proptest::prop_assert!(small.parsed_bytes <= large.parsed_bytes);
            proptest::prop_assert!(large.decoded_bytes <= DECODED_CEILING);
        }
    }
}
