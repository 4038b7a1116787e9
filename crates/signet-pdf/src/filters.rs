//! Stream decoding for the only streams the engine reads: cross-reference streams and object
//! streams. Both are Flate-compressed in practice, often with a PNG predictor.
//!
//! Decoding is charged to the document's [`Meter`] as it goes, 64 KiB at a time, so a stream
//! that would inflate past the budget stops there, holding no more than the budget allows.

use flate2::{Decompress, FlushDecompress, Status};

use crate::budget::Meter;
use crate::syntax::{array_items, as_int, as_name, entry_value};
use crate::PdfError;

/// Bytes inflated between two charges to the meter (and looks at the cancellation flag).
const INFLATE_STEP: usize = 64 * 1024;

/// Decodes `data` as the stream dictionary `dict` says, charging what it produces to `meter`.
pub(crate) fn decode(dict: &[u8], data: &[u8], meter: &mut Meter) -> Result<Vec<u8>, PdfError> {
    let filter = match entry_value(dict, b"Filter")? {
        None => None,
        Some(value) if value.starts_with(b"[") => {
            let items = array_items(&value)?;
            match items.as_slice() {
                [] => None,
                [only] => Some(value[only.0..only.1].to_vec()),
                _ => return Err(unsupported("a chain of stream filters")),
            }
        }
        Some(value) => Some(value),
    };
    let decoded = match filter.as_deref().map(as_name) {
        None => {
            meter.charge_decoded(data.len() as u64)?;
            data.to_vec()
        }
        Some(Some(name)) if name == b"FlateDecode" || name == b"Fl" => inflate(data, meter)?,
        Some(Some(name)) => {
            return Err(unsupported(&format!(
                "the /{} stream filter",
                String::from_utf8_lossy(&name)
            )))
        }
        Some(None) => return Err(PdfError::Damaged("a stream /Filter is not a name".into())),
    };
    let parms = match entry_value(dict, b"DecodeParms")? {
        Some(value) if value.starts_with(b"[") => {
            let items = array_items(&value)?;
            items.first().map(|(s, e)| value[*s..*e].to_vec())
        }
        other => other,
    };
    match parms {
        Some(parms) if parms.starts_with(b"<<") => unpredict(&parms, decoded),
        _ => Ok(decoded),
    }
}

/// zlib-inflates `data`. Like other readers we accept output whose checksum is missing or wrong
/// (the deflate data is inflated raw, after the two-byte zlib header), but not deflate data that
/// ends before its last block does: a truncated stream is damaged, whatever it decodes to.
fn inflate(data: &[u8], meter: &mut Meter) -> Result<Vec<u8>, PdfError> {
    let damaged = |what: String| PdfError::Damaged(format!("a compressed stream {what}"));
    let [cmf, flags, ref deflate @ ..] = *data else {
        return Err(damaged("is too short to hold zlib data (truncated)".into()));
    };
    if cmf & 0x0F != 8 || (u16::from(cmf) << 8 | u16::from(flags)) % 31 != 0 {
        return Err(damaged("does not start with a zlib header".into()));
    }
    if flags & 0x20 != 0 {
        return Err(unsupported("a compressed stream with a preset dictionary"));
    }
    let mut inflater = Decompress::new(false);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; INFLATE_STEP];
    loop {
        let consumed = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX);
        let produced_before = inflater.total_out();
        let status = inflater
            .decompress(
                deflate.get(consumed..).unwrap_or_default(),
                &mut chunk,
                FlushDecompress::None,
            )
            .map_err(|e| damaged(format!("cannot be inflated: {e}")))?;
        let produced = usize::try_from(inflater.total_out() - produced_before).unwrap_or(0);
        let read = usize::try_from(inflater.total_in()).unwrap_or(usize::MAX) - consumed;
        // Charged before it is kept: past the budget, nothing more is allocated.
        meter.charge_decoded(produced as u64)?;
        if out.capacity() - out.len() < produced {
            // Geometric growth, but never past what the budget could still let through.
            let most = usize::try_from(meter.decoded_left())
                .unwrap_or(usize::MAX)
                .saturating_add(out.len() + produced);
            let target = out
                .capacity()
                .saturating_mul(2)
                .max(out.len() + produced)
                .min(most);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..produced]);
        match status {
            Status::StreamEnd => return Ok(out),
            _ if produced == 0 && read == 0 => {
                return Err(damaged(
                    "ends before its compressed data does (truncated)".into(),
                ))
            }
            _ => {}
        }
    }
}

/// Undoes a PNG predictor (`/Predictor` 10–15); `/Predictor 1` or none leaves the data as it is.
/// Works in place: each row moves left by its filter-type byte, so decoding never holds two
/// copies of a stream.
fn unpredict(parms: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>, PdfError> {
    let int = |key: &[u8], default: i64| -> Result<i64, PdfError> {
        Ok(entry_value(parms, key)?
            .and_then(|v| as_int(&v))
            .unwrap_or(default))
    };
    let predictor = int(b"Predictor", 1)?;
    if predictor <= 1 {
        return Ok(data);
    }
    if !(10..=15).contains(&predictor) {
        return Err(unsupported(
            "the TIFF predictor in a cross-reference stream",
        ));
    }
    let columns = int(b"Columns", 1)?;
    let colors = int(b"Colors", 1)?;
    let bits = int(b"BitsPerComponent", 8)?;
    let bad = || PdfError::Damaged("stream predictor parameters out of range".into());
    let row_bits = columns
        .checked_mul(colors)
        .and_then(|v| v.checked_mul(bits))
        .filter(|v| (1..=1 << 24).contains(v))
        .ok_or_else(bad)?;
    let row_len = usize::try_from((row_bits + 7) / 8).map_err(|_| bad())?;
    let pixel_len = usize::try_from(((colors * bits + 7) / 8).max(1)).map_err(|_| bad())?;

    // Row r is read from r * (row_len + 1) + 1 and written to r * row_len: every write lands
    // before every byte still to be read, and the previous row's output, which the filters look
    // up, lies before the current one.
    let input_len = data.len();
    let mut written = 0usize;
    let mut read = 0usize;
    while read < input_len {
        let kind = data[read];
        let stored = (input_len - read - 1).min(row_len);
        let previous = written.checked_sub(row_len);
        for i in 0..stored {
            let raw = data[read + 1 + i];
            let left = if i >= pixel_len {
                data[written + i - pixel_len]
            } else {
                0
            };
            let up = previous.map_or(0, |p| data[p + i]);
            let up_left = match previous {
                Some(p) if i >= pixel_len => data[p + i - pixel_len],
                _ => 0,
            };
            let predicted = match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => return Err(PdfError::Damaged("unknown PNG row filter".into())),
            };
            data[written + i] = raw.wrapping_add(predicted);
        }
        written += stored;
        read += stored + 1;
    }
    data.truncate(written);
    Ok(data)
}

fn paeth(left: u8, up: u8, up_left: u8) -> u8 {
    let estimate = i16::from(left) + i16::from(up) - i16::from(up_left);
    let to_left = (estimate - i16::from(left)).abs();
    let to_up = (estimate - i16::from(up)).abs();
    let to_up_left = (estimate - i16::from(up_left)).abs();
    if to_left <= to_up && to_left <= to_up_left {
        left
    } else if to_up <= to_up_left {
        up
    } else {
        up_left
    }
}

fn unsupported(what: &str) -> PdfError {
    PdfError::Unsupported(format!("{what} is not supported"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::Cancel;
    use std::io::Write;

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder =
            flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn flate_with_an_up_predictor_is_decoded() {
        // Two rows of three columns, the second stored as its difference to the first.
        let rows = [2u8, 1, 0, 16, 2, 0, 0, 1];
        let dict = b"<</Filter /FlateDecode /DecodeParms <</Predictor 12 /Columns 3>>>>";
        let decoded = decode(dict, &deflate(&rows), &mut meter()).unwrap();
        assert_eq!(decoded, [1, 0, 16, 1, 0, 17]);
    }

    #[test]
    fn unfiltered_data_is_returned_as_is() {
        assert_eq!(
            decode(b"<</Length 3>>", b"abc", &mut meter()).unwrap(),
            b"abc"
        );
    }

    fn meter() -> Meter {
        Meter::new(0, Cancel::new())
    }

    #[test]
    fn output_beyond_the_budget_is_refused_naming_it() {
        let dict = b"<</Filter /FlateDecode>>";
        let err = decode(dict, &deflate(&vec![0u8; 5 << 20]), &mut meter()).unwrap_err();
        assert!(
            matches!(&err, PdfError::OverBudget(m) if m.contains("decoded bytes")),
            "{err}"
        );
    }

    #[test]
    fn the_budget_is_shared_by_the_streams_of_a_document() {
        let dict = b"<</Filter /FlateDecode>>";
        let mut meter = meter();
        let three_mib = deflate(&vec![0u8; 3 << 20]);
        assert_eq!(decode(dict, &three_mib, &mut meter).unwrap().len(), 3 << 20);
        assert!(decode(dict, &three_mib, &mut meter).is_err());
    }

    #[test]
    fn a_truncated_stream_is_damaged_even_when_its_data_decodes() {
        let dict = b"<</Filter /FlateDecode>>";
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = deflate(&data);
        let err = decode(dict, &whole[..whole.len() - 7], &mut meter()).unwrap_err();
        assert!(
            matches!(&err, PdfError::Damaged(m) if m.contains("truncated")),
            "{err}"
        );
        // A missing or wrong checksum alone is accepted, as other readers do.
        assert_eq!(
            decode(dict, &whole[..whole.len() - 4], &mut meter()).unwrap(),
            data
        );
        let mut wrong = whole.clone();
        *wrong.last_mut().unwrap() ^= 1;
        assert_eq!(decode(dict, &wrong, &mut meter()).unwrap(), data);
    }

    #[test]
    fn a_cancelled_decode_stops() {
        let cancel = Cancel::new();
        cancel.cancel();
        let dict = b"<</Filter /FlateDecode>>";
        let err = decode(dict, &deflate(b"abc"), &mut Meter::new(0, cancel)).unwrap_err();
        assert!(matches!(err, PdfError::Cancelled), "{err}");
    }

    /// The PNG predictor as the specification states it, row by row into a new buffer.
    fn unpredict_reference(data: &[u8], row_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut previous = vec![0u8; row_len];
        for chunk in data.chunks(row_len + 1) {
            let (&kind, row) = chunk.split_first().unwrap();
            let mut current = row.to_vec();
            current.resize(row_len, 0);
            for i in 0..row_len {
                let left = if i >= 1 { current[i - 1] } else { 0 };
                let up_left = if i >= 1 { previous[i - 1] } else { 0 };
                let up = previous[i];
                current[i] = current[i].wrapping_add(match kind {
                    1 => left,
                    2 => up,
                    3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                    4 => paeth(left, up, up_left),
                    _ => 0,
                });
            }
            out.extend_from_slice(&current[..row.len()]);
            previous = current;
        }
        out
    }

    #[test]
    fn other_filters_are_refused_by_name() {
        let err = decode(b"<</Filter /LZWDecode>>", b"", &mut meter()).unwrap_err();
        assert!(err.to_string().contains("LZWDecode"), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_stream_data_never_panics(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
            columns in 0i64..20,
            predictor in 0i64..16,
        ) {
            let dict = format!("<</Filter /FlateDecode /DecodeParms <</Predictor {predictor} /Columns {columns}>>>>");
            let _ = decode(dict.as_bytes(), &data, &mut meter());
            let _ = decode(dict.as_bytes(), &deflate(&data), &mut meter());
        }

        #[test]
        fn the_in_place_predictor_matches_the_reference(
            rows in proptest::collection::vec((0u8..5, proptest::collection::vec(proptest::num::u8::ANY, 4)), 0..20),
            cut in 0usize..5,
        ) {
            let mut data: Vec<u8> = rows.iter().flat_map(|(k, r)| std::iter::once(*k).chain(r.iter().copied())).collect();
            data.truncate(data.len().saturating_sub(cut));
            let parms = b"<</Predictor 12 /Columns 4>>";
            let expected = unpredict_reference(&data, 4);
            proptest::prop_assert_eq!(unpredict(parms, data).unwrap(), expected);
        }
    }
}
