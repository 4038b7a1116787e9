//! Finishing: splice the CMS into the placeholder of a prepared file, and recompute its digest.
//!
//! Only the placeholder's hex digits are overwritten, in place, so every byte covered by the
//! byte range stays as it was when the digest was computed.

use std::io::{Read, Seek, SeekFrom, Write};

use sha2::{Digest, Sha256};

use crate::{ByteRange, Cancel, PdfError};

/// Read buffer size for hashing (and copying) file contents.
const CHUNK: usize = 256 * 1024;

/// Writes `cms_der` as hex into the empty placeholder that `byte_range` brackets, padding with
/// the zeros already there.
///
/// Refuses a CMS larger than the placeholder, a file whose length disagrees with the byte range,
/// and a placeholder that is not `<` + zeros + `>` (already filled, or the wrong file).
pub fn embed<F: Read + Write + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
    cms_der: &[u8],
) -> Result<(), PdfError> {
    let capacity = byte_range.capacity();
    if cms_der.len() > capacity {
        return Err(PdfError::PlaceholderTooSmall {
            needed: cms_der.len(),
            capacity,
        });
    }
    if !placeholder_is_empty(file, byte_range)? {
        return Err(PdfError::PlaceholderMismatch(
            "the bytes there are not an empty `<00…>` placeholder (already signed?)".into(),
        ));
    }
    file.seek(SeekFrom::Start(byte_range.placeholder_offset() + 1))?;
    file.write_all(hex::encode_upper(cms_der).as_bytes())?;
    file.flush()?;
    Ok(())
}

/// Whether the placeholder that `byte_range` brackets is still empty (`<` + zeros + `>`), or
/// already holds a signature.
///
/// Refuses a file whose length disagrees with the byte range, or with no `<` … `>` there.
pub fn placeholder_is_empty<F: Read + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
) -> Result<bool, PdfError> {
    let placeholder = read_placeholder(file, byte_range)?;
    Ok(placeholder[1..placeholder.len() - 1]
        .iter()
        .all(|b| *b == b'0'))
}

/// Turns the placeholder's digits back into zeros, so [`embed`] can fill it again.
///
/// For a caller that fills a prepared file in place and finds the fill of an attempt that never
/// completed (it crashed, or its commit failed): the placeholder lies outside the byte range,
/// so clearing it changes nothing that was hashed.
pub fn clear_placeholder<F: Read + Write + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
) -> Result<(), PdfError> {
    let placeholder = read_placeholder(file, byte_range)?;
    file.seek(SeekFrom::Start(byte_range.placeholder_offset() + 1))?;
    file.write_all(&vec![b'0'; placeholder.len() - 2])?;
    file.flush()?;
    Ok(())
}

/// The placeholder's bytes, `<` and `>` included, after checking the file agrees with
/// `byte_range`.
fn read_placeholder<F: Read + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
) -> Result<Vec<u8>, PdfError> {
    read_placeholder_in(file, byte_range, true)
}

/// [`read_placeholder`], in a file exactly as long as the byte range says (`exact`) or in one
/// that later revisions may have extended.
fn read_placeholder_in<F: Read + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
    exact: bool,
) -> Result<Vec<u8>, PdfError> {
    let len = file.seek(SeekFrom::End(0))?;
    let fits = if exact {
        len == byte_range.file_len()
    } else {
        len >= byte_range.file_len()
    };
    if !fits || byte_range.0[0] != 0 {
        return Err(PdfError::PlaceholderMismatch(format!(
            "the file is {len} bytes, the byte range describes {}",
            byte_range.file_len()
        )));
    }
    let placeholder_len = usize::try_from(byte_range.placeholder_len())
        .map_err(|_| PdfError::PlaceholderMismatch("placeholder too large".into()))?;
    let mut placeholder = vec![0u8; placeholder_len];
    file.seek(SeekFrom::Start(byte_range.placeholder_offset()))?;
    file.read_exact(&mut placeholder)?;
    let delimited = placeholder.len() >= 2
        && placeholder[0] == b'<'
        && placeholder[placeholder.len() - 1] == b'>';
    if !delimited {
        return Err(PdfError::PlaceholderMismatch(
            "the bytes there are not a `<…>` hex string".into(),
        ));
    }
    Ok(placeholder)
}

/// SHA-256 over the two byte ranges of a prepared (or signed) file, read in chunks.
pub fn byte_range_digest<R: Read + Seek>(
    file: &mut R,
    byte_range: &ByteRange,
) -> Result<[u8; 32], PdfError> {
    let mut hasher = Sha256::new();
    for (start, len) in [
        (byte_range.0[0], byte_range.0[1]),
        (byte_range.0[2], byte_range.0[3]),
    ] {
        file.seek(SeekFrom::Start(start))?;
        copy_hashing(file, &mut std::io::sink(), &mut hasher, len, &Cancel::new())?;
    }
    Ok(hasher.finalize().into())
}

/// Reads the next `len` bytes of `input` in chunks, hashing them and writing them to `output`;
/// stops between chunks once `cancel` is raised.
pub(crate) fn copy_hashing<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    hasher: &mut Sha256,
    len: u64,
    cancel: &Cancel,
) -> Result<(), PdfError> {
    let mut buffer = vec![0u8; usize::try_from(len).map_or(CHUNK, |len| len.min(CHUNK))];
    let mut left = len;
    while left > 0 {
        cancel.check()?;
        let take = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        input.read_exact(&mut buffer[..take])?;
        hasher.update(&buffer[..take]);
        output.write_all(&buffer[..take])?;
        left -= take as u64;
    }
    Ok(())
}

/// Copies the next `len` bytes of `input` to `output` in chunks; stops between chunks once
/// `cancel` is raised.
pub(crate) fn copy_through<R: Read, W: Write>(
    input: &mut R,
    output: &mut W,
    len: u64,
    cancel: &Cancel,
) -> Result<(), PdfError> {
    let mut buffer = vec![0u8; usize::try_from(len).map_or(CHUNK, |len| len.min(CHUNK))];
    let mut left = len;
    while left > 0 {
        cancel.check()?;
        let take = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        input.read_exact(&mut buffer[..take])?;
        output.write_all(&buffer[..take])?;
        left -= take as u64;
    }
    Ok(())
}

/// The `/Contents` value bytes of the signature that `byte_range` brackets, zero padding
/// included: what its `/VRI` key hashes ([`crate::vri_key`]).
///
/// Works on the signed file and on any later revision of it (the byte range then ends before
/// the file does). Refuses a file shorter than the byte range, and a placeholder that is not a
/// hex string.
pub fn signature_contents<F: Read + Seek>(
    file: &mut F,
    byte_range: &ByteRange,
) -> Result<Vec<u8>, PdfError> {
    let placeholder = read_placeholder_in(file, byte_range, false)?;
    let digits: Vec<u8> = placeholder[1..placeholder.len() - 1]
        .iter()
        .copied()
        .filter(|b| !crate::syntax::is_whitespace(*b))
        .collect();
    hex::decode(&digits)
        .map_err(|e| PdfError::PlaceholderMismatch(format!("the /Contents string is not hex: {e}")))
}

/// The byte range of the last document timestamp (`/Type /DocTimeStamp`) in a file whose
/// timestamps Signet wrote ([`crate::RevisionKind::DocumentTimestamp`] revisions), or `None`
/// when it has none. What a PAdES B-LTA renewal needs: the timestamp that must be covered by
/// fresh validation data and a new one.
///
/// Reads the file backwards from its end in chunks, so a large file costs only its last
/// revisions (a `/DSS` update and the timestamp's own revision): not a parser, a search for the
/// dictionary Signet writes, whose `/ByteRange` follows `/Type /DocTimeStamp` within the same
/// line. The byte range found is checked against the file (it must bracket a hex placeholder).
pub fn last_document_timestamp<F: Read + Seek>(
    file: &mut F,
) -> Result<Option<ByteRange>, PdfError> {
    const MARK: &[u8] = b"/Type /DocTimeStamp";
    const WINDOW: u64 = 64 * 1024;
    // The dictionary's text from its `/Type` to the end of its `/ByteRange` array.
    const DICTIONARY_HEAD: u64 = 256;
    let len = file.seek(SeekFrom::End(0))?;
    let mut end = len;
    while end > 0 {
        let start = end.saturating_sub(WINDOW);
        // Overlap the window searched before by a dictionary head, so a dictionary split across
        // two windows is still read whole (a mark inside the overlap was found there already).
        let read_end = (end + DICTIONARY_HEAD).min(len);
        let mut chunk = vec![0; usize::try_from(read_end - start).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        let found = chunk.windows(MARK.len()).rposition(|w| w == MARK);
        if let Some(at) = found {
            let head = &chunk[at..];
            let byte_range = parse_byte_range_after(head).ok_or_else(|| {
                PdfError::PlaceholderMismatch(
                    "a document timestamp without a readable /ByteRange".into(),
                )
            })?;
            if byte_range.0[2].saturating_add(byte_range.0[3]) > len {
                return Err(PdfError::PlaceholderMismatch(
                    "a document timestamp's /ByteRange runs past the file's end".into(),
                ));
            }
            // Refuses a byte range that does not bracket a hex string.
            signature_contents(file, &byte_range)?;
            return Ok(Some(byte_range));
        }
        end = start;
    }
    Ok(None)
}

/// The four numbers of the first `/ByteRange [a b c d]` in `text` (within its first line).
fn parse_byte_range_after(text: &[u8]) -> Option<ByteRange> {
    const KEY: &[u8] = b"/ByteRange";
    let line_end = text
        .iter()
        .position(|b| *b == b'\n' || *b == b'\r')
        .unwrap_or(text.len());
    let line = &text[..line_end];
    let at = line.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &line[at..];
    let open = rest.iter().position(|b| *b == b'[')?;
    let close = rest.iter().position(|b| *b == b']')?;
    let numbers = std::str::from_utf8(rest.get(open + 1..close)?).ok()?;
    let mut parsed = numbers.split_ascii_whitespace().map(str::parse::<u64>);
    let mut range = [0u64; 4];
    for slot in &mut range {
        *slot = parsed.next()?.ok()?;
    }
    parsed.next().is_none().then_some(ByteRange(range))
}

/// The DER value at the start of `bytes` (a `/Contents` string's bytes, zero padding after it):
/// its tag, length and content, without the padding. `None` when the length cannot be read.
pub fn der_prefix(bytes: &[u8]) -> Option<&[u8]> {
    let first = *bytes.get(1)?;
    let (header, content) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let mut content = 0usize;
        for b in bytes.get(2..2 + count)? {
            content = (content << 8) | usize::from(*b);
        }
        (2 + count, content)
    };
    bytes.get(..header.checked_add(content)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn der_prefix_drops_the_zero_padding_after_the_value() {
        assert_eq!(
            der_prefix(&[0x30, 0x02, 1, 2, 0, 0]),
            Some(&[0x30, 0x02, 1, 2][..])
        );
        let long = [&[0x30, 0x82, 0x01, 0x00][..], &[7; 256], &[0; 10]].concat();
        assert_eq!(der_prefix(&long).map(<[u8]>::len), Some(260));
        assert_eq!(
            der_prefix(&[0x30, 0x05, 1]),
            None,
            "shorter than its length"
        );
        assert_eq!(der_prefix(&[0x30, 0x80]), None, "indefinite length");
    }

    /// A file with two document timestamps (the second beyond the first read window), each
    /// bracketing `<3000>`, with fixed-width numbers so the file's length is known up front.
    fn two_timestamps(total: u64) -> (Vec<u8>, Vec<ByteRange>) {
        let mut file = b"%PDF-1.7\n".to_vec();
        let mut ranges = Vec::new();
        for filler in [10usize, 200_000] {
            file.extend(std::iter::repeat_n(b' ', filler));
            let head = |range: [u64; 4]| {
                format!(
                    "<</Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161 \
                     /ByteRange [{:010} {:010} {:010} {:010}] /Contents ",
                    range[0], range[1], range[2], range[3]
                )
            };
            let at = (file.len() + head([0; 4]).len()) as u64;
            let range = [0, at, at + 6, total.saturating_sub(at + 6)];
            file.extend_from_slice(head(range).as_bytes());
            file.extend_from_slice(b"<3000>>>\nendobj\n");
            ranges.push(ByteRange(range));
        }
        (file, ranges)
    }

    #[test]
    fn the_last_document_timestamp_is_found_from_the_end() {
        let total = two_timestamps(0).0.len() as u64;
        let (file, ranges) = two_timestamps(total);
        let found = last_document_timestamp(&mut Cursor::new(&file)).unwrap();
        assert_eq!(found, Some(ranges[1]));
        assert_eq!(
            last_document_timestamp(&mut Cursor::new(b"%PDF-1.7\n%%EOF\n")).unwrap(),
            None
        );
    }
}
