//! Stream decoding for the only streams the engine reads: cross-reference streams and object
//! streams. Both are Flate-compressed in practice, often with a PNG predictor.

use std::io::Read;

use crate::syntax::{array_items, as_int, as_name, entry_value};
use crate::PdfError;

/// Decodes `data` as the stream dictionary `dict` says, producing at most `limit` bytes.
pub(crate) fn decode(dict: &[u8], data: &[u8], limit: usize) -> Result<Vec<u8>, PdfError> {
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
        None => data.to_vec(),
        Some(Some(name)) if name == b"FlateDecode" || name == b"Fl" => inflate(data, limit)?,
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

/// zlib-inflates `data`. Like other readers we accept output whose checksum is missing or wrong:
/// whatever is wrong with it shows when its objects are parsed.
fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let mut decoder = flate2::read::ZlibDecoder::new(data).take(limit as u64 + 1);
    if let Err(e) = decoder.read_to_end(&mut out) {
        if out.is_empty() {
            return Err(PdfError::Damaged(format!(
                "a compressed stream cannot be inflated: {e}"
            )));
        }
    }
    if out.len() > limit {
        return Err(unsupported("a cross-reference or object stream this large"));
    }
    Ok(out)
}

/// Undoes a PNG predictor (`/Predictor` 10–15); `/Predictor 1` or none leaves the data as it is.
fn unpredict(parms: &[u8], data: Vec<u8>) -> Result<Vec<u8>, PdfError> {
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

    let mut out = Vec::with_capacity(data.len());
    let mut previous = vec![0u8; row_len];
    for chunk in data.chunks(row_len + 1) {
        let (&kind, row) = chunk.split_first().ok_or_else(bad)?;
        let mut current = row.to_vec();
        current.resize(row_len, 0);
        for i in 0..row_len {
            let left = if i >= pixel_len {
                current[i - pixel_len]
            } else {
                0
            };
            let up = previous[i];
            let up_left = if i >= pixel_len {
                previous[i - pixel_len]
            } else {
                0
            };
            let predicted = match kind {
                0 => 0,
                1 => left,
                2 => up,
                3 => ((u16::from(left) + u16::from(up)) / 2) as u8,
                4 => paeth(left, up, up_left),
                _ => return Err(PdfError::Damaged("unknown PNG row filter".into())),
            };
            current[i] = current[i].wrapping_add(predicted);
        }
        out.extend_from_slice(&current[..row.len().min(row_len)]);
        previous = current;
    }
    Ok(out)
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
        let decoded = decode(dict, &deflate(&rows), 1024).unwrap();
        assert_eq!(decoded, [1, 0, 16, 1, 0, 17]);
    }

    #[test]
    fn unfiltered_data_is_returned_as_is() {
        assert_eq!(decode(b"<</Length 3>>", b"abc", 10).unwrap(), b"abc");
    }

    #[test]
    fn output_beyond_the_limit_is_refused() {
        let dict = b"<</Filter /FlateDecode>>";
        assert!(decode(dict, &deflate(&[0u8; 4096]), 100).is_err());
    }

    #[test]
    fn other_filters_are_refused_by_name() {
        let err = decode(b"<</Filter /LZWDecode>>", b"", 10).unwrap_err();
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
            let _ = decode(dict.as_bytes(), &data, 4096);
            let _ = decode(dict.as_bytes(), &deflate(&data), 4096);
        }
    }
}
