//! The tail every incremental update shares: the objects' cross-reference section (a table or a
//! stream, like the file's newest one) and the trailer that chains it to the previous one.

use crate::source::{Trailer, XrefKind};
use crate::syntax::array_items;
use crate::PdfError;

/// Objects written into an update, and where: `(number, generation, file offset)`.
pub(crate) type Offsets = Vec<(u32, u16, u64)>;

/// Appends `text` as object `number` to `out`, recording its offset (`base` is where `out`
/// will start in the file).
pub(crate) fn write_object(
    out: &mut Vec<u8>,
    offsets: &mut Offsets,
    base: u64,
    number: u32,
    generation: u16,
    text: &[u8],
) {
    offsets.push((number, generation, base + out.len() as u64));
    out.extend_from_slice(format!("{number} {generation} obj\n").as_bytes());
    out.extend_from_slice(text);
    out.extend_from_slice(b"\nendobj\n");
}

/// Appends a stream object holding `data` unfiltered (DER certificates and responses gain
/// little from compression, and an unfiltered stream is read by every tool).
pub(crate) fn write_stream(
    out: &mut Vec<u8>,
    offsets: &mut Offsets,
    base: u64,
    number: u32,
    data: &[u8],
) {
    offsets.push((number, 0, base + out.len() as u64));
    out.extend_from_slice(
        format!("{number} 0 obj\n<</Length {}>>\nstream\n", data.len()).as_bytes(),
    );
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream\nendobj\n");
}

/// Appends the cross-reference section for `offsets` and the trailer, ending with `%%EOF`.
///
/// `next_number` is one past the highest object number the update uses; a cross-reference
/// stream takes that number itself. `root` is the `/Root` value text when the trailer had none
/// that could be copied; `update_id` the changing half of `/ID` (ISO 32000-1 §14.4).
pub(crate) fn write_tail(
    out: &mut Vec<u8>,
    offsets: &mut Offsets,
    base: u64,
    trailer: &Trailer,
    root: &[u8],
    next_number: u64,
    update_id: Option<&[u8; 16]>,
) -> Result<(), PdfError> {
    let mut entries = Vec::new();
    entries.extend_from_slice(b" /Root ");
    entries.extend_from_slice(trailer.root.as_deref().unwrap_or(root));
    if let Some(info) = &trailer.info {
        entries.extend_from_slice(b" /Info ");
        entries.extend_from_slice(info);
    }
    match (&trailer.id, update_id) {
        (original, Some(update_id)) => {
            entries.extend_from_slice(b" /ID ");
            entries.extend_from_slice(&updated_id(original.as_deref(), update_id));
        }
        (Some(id), None) => {
            entries.extend_from_slice(b" /ID ");
            entries.extend_from_slice(id);
        }
        (None, None) => {}
    }
    entries.extend_from_slice(format!(" /Prev {}", trailer.startxref).as_bytes());

    match trailer.kind {
        XrefKind::Table => {
            let size = next_number.max(trailer.size.unwrap_or(0));
            let xref_at = base + out.len() as u64;
            write_xref_table(out, offsets);
            out.extend_from_slice(format!("trailer\n<</Size {size}").as_bytes());
            out.extend_from_slice(&entries);
            out.extend_from_slice(format!(">>\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
        }
        XrefKind::Stream => {
            let number = u32::try_from(next_number)
                .map_err(|_| PdfError::Unsupported("too many objects".into()))?;
            let size = (next_number + 1).max(trailer.size.unwrap_or(0));
            let xref_at = base + out.len() as u64;
            offsets.push((number, 0, xref_at));
            let (index, width, data) = xref_stream_data(offsets);
            out.extend_from_slice(
                format!(
                    "{number} 0 obj\n<</Type /XRef /Size {size} /Index [{index}] /W [1 {width} 2]"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&entries);
            out.extend_from_slice(format!(" /Length {}>>\nstream\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(
                format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes(),
            );
        }
    }
    Ok(())
}

/// Runs of consecutive object numbers, as `(first, entries)`.
pub(crate) fn subsections(offsets: &mut [(u32, u16, u64)]) -> Vec<(u32, Vec<(u16, u64)>)> {
    offsets.sort_by_key(|(number, _, _)| *number);
    let mut runs: Vec<(u32, Vec<(u16, u64)>)> = Vec::new();
    for &(number, generation, offset) in offsets.iter() {
        match runs.last_mut() {
            Some((first, entries)) if *first as usize + entries.len() == number as usize => {
                entries.push((generation, offset));
            }
            _ => runs.push((number, vec![(generation, offset)])),
        }
    }
    runs
}

fn write_xref_table(out: &mut Vec<u8>, offsets: &mut [(u32, u16, u64)]) {
    out.extend_from_slice(b"xref\n");
    for (first, entries) in subsections(offsets) {
        out.extend_from_slice(format!("{first} {}\n", entries.len()).as_bytes());
        for (generation, offset) in entries {
            out.extend_from_slice(format!("{offset:010} {generation:05} n\r\n").as_bytes());
        }
    }
}

/// The `/Index` text, the offset field width and the binary rows of a cross-reference stream.
fn xref_stream_data(offsets: &mut [(u32, u16, u64)]) -> (String, usize, Vec<u8>) {
    let largest = offsets.iter().map(|(_, _, o)| *o).max().unwrap_or(0);
    let width = ((64 - largest.leading_zeros() as usize).div_ceil(8)).max(4);
    let mut index = Vec::new();
    let mut data = Vec::new();
    for (first, entries) in subsections(offsets) {
        index.push(format!("{first} {}", entries.len()));
        for (generation, offset) in entries {
            data.push(1);
            data.extend_from_slice(&offset.to_be_bytes()[8 - width..]);
            data.extend_from_slice(&generation.to_be_bytes());
        }
    }
    (index.join(" "), width, data)
}

/// The trailer `/ID` of an update: the file's permanent identifier (the first string of the
/// original `/ID`, or the update's own when the file had none or an unreadable one) and the
/// update's changing identifier.
pub(crate) fn updated_id(original: Option<&[u8]>, update_id: &[u8; 16]) -> Vec<u8> {
    let changing = format!("<{}>", hex::encode_upper(update_id));
    let permanent = original
        .and_then(|array| {
            let items = array_items(array).ok()?;
            let (start, end) = *items.first()?;
            let first = &array[start..end];
            matches!(first.first(), Some(b'<' | b'(')).then(|| first.to_vec())
        })
        .unwrap_or_else(|| changing.clone().into_bytes());
    let mut id = b"[".to_vec();
    id.extend_from_slice(&permanent);
    id.push(b' ');
    id.extend_from_slice(changing.as_bytes());
    id.push(b']');
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_share_a_subsection() {
        let mut offsets = vec![(7, 0, 70), (5, 0, 50), (6, 1, 60), (9, 0, 90)];
        let runs = subsections(&mut offsets);
        assert_eq!(
            runs,
            vec![(5, vec![(0, 50), (1, 60), (0, 70)]), (9, vec![(0, 90)])]
        );
    }

    #[test]
    fn an_update_keeps_the_permanent_id_and_changes_the_second() {
        let id = updated_id(Some(b"[<AA01> <AA01>]"), &[0x11; 16]);
        assert_eq!(id, b"[<AA01> <11111111111111111111111111111111>]".to_vec());
        let id = updated_id(Some(b"[(abc)(abc)]"), &[0; 16]);
        assert_eq!(id, b"[(abc) <00000000000000000000000000000000>]".to_vec());
    }

    #[test]
    fn a_file_without_a_readable_id_gets_the_update_id_twice() {
        let expected =
            b"[<0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F> <0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F0F>]".to_vec();
        assert_eq!(updated_id(None, &[0x0F; 16]), expected);
        assert_eq!(updated_id(Some(b"7 0 R"), &[0x0F; 16]), expected);
        assert_eq!(updated_id(Some(b"[7 0 R]"), &[0x0F; 16]), expected);
    }
}
