//! Just enough PDF syntax to edit an object's text without re-serialising it.
//!
//! A new revision of the catalog, a page or the AcroForm must differ from the old one only in the
//! entry we change: validators such as pyHanko compare every other entry for exact equality, and
//! a parse/serialise round trip through a general PDF library changes numbers (lopdf keeps reals
//! as `f32`) and string spellings. So we find the byte spans of values in the original text and
//! splice; everything else is copied byte for byte.

use crate::PdfError;

/// Deepest nesting of arrays and dictionaries we follow; real documents stay far below it.
const MAX_DEPTH: usize = 64;

/// One `/Key value` pair of a dictionary, as byte spans of the text it was read from.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The key with `#xx` escapes decoded and without the slash.
    pub key: Vec<u8>,
    /// Where the value's text starts.
    pub value_start: usize,
    /// One past the value's text.
    pub value_end: usize,
}

/// The top-level entries of the dictionary whose `<<` is at `start`, and the position of its `>>`.
pub(crate) fn dict_entries(text: &[u8], start: usize) -> Result<(Vec<Entry>, usize), PdfError> {
    if !text.get(start..).is_some_and(|t| t.starts_with(b"<<")) {
        return Err(syntax_error("expected a dictionary", start));
    }
    let mut entries = Vec::new();
    let mut pos = start + 2;
    loop {
        pos = skip_whitespace(text, pos);
        if text[pos..].starts_with(b">>") {
            return Ok((entries, pos));
        }
        if text.get(pos) != Some(&b'/') {
            return Err(syntax_error("expected a name key", pos));
        }
        let key_end = value_end(text, pos)?;
        let key = decode_name(&text[pos + 1..key_end]);
        let value_start = skip_whitespace(text, key_end);
        let value_end = value_end(text, value_start)?;
        entries.push(Entry {
            key,
            value_start,
            value_end,
        });
        pos = value_end;
    }
}

/// `dict` (text starting with `<<`) with `key` set to `value`: existing values replaced in place,
/// otherwise the entry appended before `>>`. Every other byte is kept.
pub(crate) fn dict_set(dict: &[u8], key: &[u8], value: &[u8]) -> Result<Vec<u8>, PdfError> {
    let (entries, close) = dict_entries(dict, 0)?;
    let mut out = Vec::with_capacity(dict.len() + value.len() + key.len() + 4);
    let mut copied = 0;
    let mut replaced = false;
    for entry in entries.iter().filter(|e| e.key == key) {
        out.extend_from_slice(&dict[copied..entry.value_start]);
        // A space first: the old value may have followed the key with no blank (`/Annots[`).
        out.push(b' ');
        out.extend_from_slice(value);
        copied = entry.value_end;
        replaced = true;
    }
    if replaced {
        out.extend_from_slice(&dict[copied..]);
    } else {
        out.extend_from_slice(&dict[..close]);
        out.push(b' ');
        out.push(b'/');
        out.extend_from_slice(key);
        out.push(b' ');
        out.extend_from_slice(value);
        out.extend_from_slice(&dict[close..]);
    }
    Ok(out)
}

/// `array` (text starting with `[`) with `item` appended before its `]`.
pub(crate) fn array_push(array: &[u8], item: &[u8]) -> Result<Vec<u8>, PdfError> {
    if array.first() != Some(&b'[') {
        return Err(syntax_error("expected an array", 0));
    }
    let end = value_end(array, 0)?;
    let close = end - 1;
    let mut out = Vec::with_capacity(array.len() + item.len() + 1);
    out.extend_from_slice(&array[..close]);
    out.push(b' ');
    out.extend_from_slice(item);
    out.extend_from_slice(&array[close..]);
    Ok(out)
}

/// The text of `key`'s value in the dictionary `dict` (text starting with `<<`), the last one if
/// the key repeats.
pub(crate) fn entry_value(dict: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, PdfError> {
    let (entries, _) = dict_entries(dict, 0)?;
    Ok(entries
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| dict[e.value_start..e.value_end].to_vec()))
}

/// The spans of the items of `array` (text starting with `[`).
pub(crate) fn array_items(array: &[u8]) -> Result<Vec<(usize, usize)>, PdfError> {
    if array.first() != Some(&b'[') {
        return Err(syntax_error("expected an array", 0));
    }
    let mut items = Vec::new();
    let mut at = 1;
    loop {
        at = skip_whitespace(array, at);
        match array.get(at) {
            Some(b']') => return Ok(items),
            None => return Err(syntax_error("unterminated array", 0)),
            Some(_) => {
                let end = value_end(array, at)?;
                items.push((at, end));
                at = end;
            }
        }
    }
}

/// `N G R` as an object number and generation.
pub(crate) fn parse_reference(text: &[u8]) -> Option<(u32, u16)> {
    let (number, pos) = unsigned(text, 0)?;
    let pos = skip_whitespace(text, pos);
    let (generation, pos) = unsigned(text, pos)?;
    let pos = skip_whitespace(text, pos);
    if text.get(pos) != Some(&b'R') || value_end(text, 0).ok()? != text.len() {
        return None;
    }
    Some((u32::try_from(number).ok()?, u16::try_from(generation).ok()?))
}

/// An integer value (`12`, `-3`, `+4`).
pub(crate) fn as_int(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// A name value's bytes without the slash, `#xx` escapes decoded.
pub(crate) fn as_name(text: &[u8]) -> Option<Vec<u8>> {
    let rest = text.strip_prefix(b"/")?;
    (regular_run_end(text, 1) == text.len()).then(|| decode_name(rest))
}

/// A string value's bytes: a literal `(…)` string with its escapes resolved, or a `<…>` hex
/// string decoded.
pub(crate) fn as_string(text: &[u8]) -> Option<Vec<u8>> {
    match text.first()? {
        b'(' if literal_string_end(text, 0).ok()? == text.len() => {
            Some(unescape_literal(&text[1..text.len() - 1]))
        }
        b'<' if text.last() == Some(&b'>') && text.get(1) != Some(&b'<') => {
            let digits: Vec<u8> = text[1..text.len() - 1]
                .iter()
                .copied()
                .filter(|b| !is_whitespace(*b))
                .map(hex_digit)
                .collect::<Option<_>>()?;
            Some(
                digits
                    .chunks(2)
                    .map(|pair| pair[0] << 4 | pair.get(1).copied().unwrap_or(0))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// The bytes a literal string's body stands for.
fn unescape_literal(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&byte) = body.get(i) {
        i += 1;
        match byte {
            b'\\' => {
                let Some(&next) = body.get(i) else { break };
                i += 1;
                match next {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0C),
                    b'0'..=b'7' => {
                        let mut value = u32::from(next - b'0');
                        for _ in 0..2 {
                            match body.get(i) {
                                Some(d @ b'0'..=b'7') => {
                                    value = value * 8 + u32::from(d - b'0');
                                    i += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push((value & 0xFF) as u8);
                    }
                    // A backslash before an end of line continues the string on the next line.
                    b'\r' => {
                        if body.get(i) == Some(&b'\n') {
                            i += 1;
                        }
                    }
                    b'\n' => {}
                    other => out.push(other),
                }
            }
            // An unescaped end of line of any kind reads as a single line feed.
            b'\r' => {
                if body.get(i) == Some(&b'\n') {
                    i += 1;
                }
                out.push(b'\n');
            }
            other => out.push(other),
        }
    }
    out
}

/// Reads the `N G obj` header at `pos`; returns the numbers and where the object's value starts.
pub(crate) fn object_header(text: &[u8], pos: usize) -> Result<(u32, u16, usize), PdfError> {
    let pos = skip_whitespace(text, pos);
    let (number, pos) =
        unsigned(text, pos).ok_or_else(|| syntax_error("expected an object number", pos))?;
    let pos = skip_whitespace(text, pos);
    let (generation, pos) =
        unsigned(text, pos).ok_or_else(|| syntax_error("expected a generation number", pos))?;
    let pos = skip_whitespace(text, pos);
    if !text[pos..].starts_with(b"obj") {
        return Err(syntax_error("expected `obj`", pos));
    }
    let number = u32::try_from(number).map_err(|_| syntax_error("object number too large", pos))?;
    let generation =
        u16::try_from(generation).map_err(|_| syntax_error("generation too large", pos))?;
    Ok((number, generation, skip_whitespace(text, pos + 3)))
}

/// Parses an unsigned decimal integer at `pos`.
pub(crate) fn unsigned(text: &[u8], pos: usize) -> Option<(u64, usize)> {
    let digits = text
        .get(pos..)?
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = std::str::from_utf8(&text[pos..pos + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((value, pos + digits))
}

/// The position of the first byte at or after `pos` that is neither white space nor in a comment.
pub(crate) fn skip_whitespace(text: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = text.get(pos) {
        if is_whitespace(byte) {
            pos += 1;
        } else if byte == b'%' {
            while let Some(&byte) = text.get(pos) {
                if byte == b'\n' || byte == b'\r' {
                    break;
                }
                pos += 1;
            }
        } else {
            break;
        }
    }
    pos
}

/// One past the end of the value that starts at `pos` (which must not be white space).
pub(crate) fn value_end(text: &[u8], pos: usize) -> Result<usize, PdfError> {
    value_end_at_depth(text, pos, 0)
}

fn value_end_at_depth(text: &[u8], pos: usize, depth: usize) -> Result<usize, PdfError> {
    if depth > MAX_DEPTH {
        return Err(syntax_error("objects nested too deeply", pos));
    }
    let Some(&first) = text.get(pos) else {
        return Err(syntax_error("unexpected end of object", pos));
    };
    match first {
        b'<' if text.get(pos + 1) == Some(&b'<') => {
            let mut at = pos + 2;
            loop {
                at = skip_whitespace(text, at);
                if text[at..].starts_with(b">>") {
                    return Ok(at + 2);
                }
                if at >= text.len() {
                    return Err(syntax_error("unterminated dictionary", pos));
                }
                at = value_end_at_depth(text, at, depth + 1)?;
            }
        }
        b'<' => match text[pos..].iter().position(|&b| b == b'>') {
            Some(len) => Ok(pos + len + 1),
            None => Err(syntax_error("unterminated hex string", pos)),
        },
        b'[' => {
            let mut at = pos + 1;
            loop {
                at = skip_whitespace(text, at);
                match text.get(at) {
                    Some(b']') => return Ok(at + 1),
                    None => return Err(syntax_error("unterminated array", pos)),
                    Some(_) => at = value_end_at_depth(text, at, depth + 1)?,
                }
            }
        }
        b'(' => literal_string_end(text, pos),
        b'/' => Ok(regular_run_end(text, pos + 1)),
        b'0'..=b'9' | b'+' | b'-' | b'.' => {
            let end = regular_run_end(text, pos);
            Ok(reference_end(text, pos, end).unwrap_or(end))
        }
        b')' | b'>' | b']' | b'{' | b'}' => Err(syntax_error("unexpected delimiter", pos)),
        _ => {
            let end = regular_run_end(text, pos);
            if end == pos {
                Err(syntax_error("unexpected byte", pos))
            } else {
                Ok(end)
            }
        }
    }
}

/// When the integer at `start..end` begins an indirect reference `N G R`, the end of the `R`.
fn reference_end(text: &[u8], start: usize, end: usize) -> Option<usize> {
    if !text[start..end].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let gen_start = skip_whitespace(text, end);
    if gen_start == end {
        return None;
    }
    let (_, gen_end) = unsigned(text, gen_start)?;
    if regular_run_end(text, gen_start) != gen_end {
        return None;
    }
    let r = skip_whitespace(text, gen_end);
    if r == gen_end || text.get(r) != Some(&b'R') || regular_run_end(text, r) != r + 1 {
        return None;
    }
    Some(r + 1)
}

fn literal_string_end(text: &[u8], pos: usize) -> Result<usize, PdfError> {
    let mut depth = 0usize;
    let mut at = pos;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'\\' => at += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Err(syntax_error("unterminated literal string", pos))
}

/// One past a run of regular (neither white space nor delimiter) bytes starting at `pos`.
fn regular_run_end(text: &[u8], mut pos: usize) -> usize {
    while let Some(&byte) = text.get(pos) {
        if is_whitespace(byte) || is_delimiter(byte) {
            break;
        }
        pos += 1;
    }
    pos
}

/// A name's bytes with `#xx` escapes decoded.
pub(crate) fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#' && i + 2 < raw.len() {
            if let (Some(high), Some(low)) = (hex_digit(raw[i + 1]), hex_digit(raw[i + 2])) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

pub(crate) fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b'\0' | b'\t' | b'\n' | b'\x0C' | b'\r' | b' ')
}

fn is_delimiter(byte: u8) -> bool {
    matches!(
        byte,
        b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
    )
}

fn syntax_error(what: &str, pos: usize) -> PdfError {
    PdfError::Damaged(format!("{what} at byte {pos} of an object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dictionary_value_is_replaced_in_place_and_the_rest_kept_verbatim() {
        let dict = b"<</Type/Page/MediaBox[0 0 595.303937007874 841.889763779528]/Annots[1 0 R]>>";
        let out = dict_set(dict, b"Annots", b"[1 0 R 7 0 R]").unwrap();
        assert_eq!(
            out,
            b"<</Type/Page/MediaBox[0 0 595.303937007874 841.889763779528]/Annots [1 0 R 7 0 R]>>"
        );
    }

    #[test]
    fn a_missing_key_is_appended_before_the_closing_brackets() {
        let out = dict_set(b"<< /Type /Catalog /Pages 2 0 R >>", b"AcroForm", b"9 0 R").unwrap();
        assert_eq!(out, b"<< /Type /Catalog /Pages 2 0 R  /AcroForm 9 0 R>>");
    }

    #[test]
    fn values_of_every_kind_are_skipped() {
        let dict = b"<</A (str (nested) \\) ) /B <0aFF> /C [1 2.5 -3 /N true null] /D << /E 1 0 R >> /F 12 0 R /G 5>>";
        let (entries, close) = dict_entries(dict, 0).unwrap();
        let keys: Vec<_> = entries.iter().map(|e| e.key.clone()).collect();
        assert_eq!(
            keys,
            [
                b"A".to_vec(),
                b"B".to_vec(),
                b"C".to_vec(),
                b"D".to_vec(),
                b"F".to_vec(),
                b"G".to_vec()
            ]
        );
        assert_eq!(
            &dict[entries[4].value_start..entries[4].value_end],
            b"12 0 R"
        );
        assert_eq!(&dict[entries[5].value_start..entries[5].value_end], b"5");
        assert_eq!(close, dict.len() - 2);
    }

    #[test]
    fn escaped_names_match_their_decoded_key() {
        let (entries, _) = dict_entries(b"<</Ann#6fts 3 0 R>>", 0).unwrap();
        assert_eq!(entries[0].key, b"Annots");
    }

    #[test]
    fn an_item_is_appended_to_an_array() {
        assert_eq!(
            array_push(b"[ 1 0 R ]", b"2 0 R").unwrap(),
            b"[ 1 0 R  2 0 R]"
        );
        assert_eq!(array_push(b"[]", b"2 0 R").unwrap(), b"[ 2 0 R]");
    }

    #[test]
    fn comments_count_as_white_space() {
        let (entries, _) = dict_entries(b"<< % a comment\n/A 1 % more\n>>", 0).unwrap();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn strings_names_and_numbers_are_decoded() {
        assert_eq!(as_string(b"(a\\(b\\)\\101\\\ncd)").unwrap(), b"a(b)Acd");
        assert_eq!(as_string(b"<48 656C6C6F7>").unwrap(), b"Hellop");
        assert_eq!(as_string(b"<<>>"), None);
        assert_eq!(as_name(b"/Sig#20Field").unwrap(), b"Sig Field");
        assert_eq!(as_int(b"-12"), Some(-12));
        assert_eq!(as_int(b"1.5"), None);
    }

    #[test]
    fn array_items_are_listed_by_span() {
        let array = b"[1 0 R /N (s) [2]]";
        let items: Vec<&[u8]> = array_items(array)
            .unwrap()
            .into_iter()
            .map(|(s, e)| &array[s..e])
            .collect();
        assert_eq!(items, [&b"1 0 R"[..], b"/N", b"(s)", b"[2]"]);
    }

    #[test]
    fn references_are_recognised_and_other_values_are_not() {
        assert_eq!(parse_reference(b"12 0 R"), Some((12, 0)));
        assert_eq!(parse_reference(b"12  3\nR"), Some((12, 3)));
        assert_eq!(parse_reference(b"[12 0 R]"), None);
        assert_eq!(parse_reference(b"12"), None);
    }

    #[test]
    fn an_object_header_is_read() {
        assert_eq!(object_header(b"12 0 obj\n<<>>", 0).unwrap(), (12, 0, 9));
        assert!(object_header(b"12 0 ob", 0).is_err());
    }

    proptest::proptest! {
        #[test]
        fn scanning_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = value_end(&bytes, 0);
            let _ = dict_entries(&bytes, 0).ok();
            let _ = dict_set(&bytes, b"K", b"1");
            let _ = array_push(&bytes, b"1");
            let _ = array_items(&bytes);
            let _ = as_string(&bytes);
            let _ = as_name(&bytes);
            let _ = parse_reference(&bytes);
        }
    }
}
