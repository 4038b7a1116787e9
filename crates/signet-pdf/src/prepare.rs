//! Preparation: append one incremental revision that adds an invisible signature field.
//!
//! The revision holds a new signature dictionary (with the zero-filled `/Contents`
//! placeholder and a fixed-width `/ByteRange`), a new field that is also its widget (`/Rect
//! [0 0 0 0]`, `/F 132` = print + locked), and new versions of exactly the objects that must
//! point at it: page 1 (or its `/Annots` array when that is indirect) and the AcroForm (or the
//! catalog when the AcroForm is direct or missing, or the `/Fields` array when that is
//! indirect). Those are the changes pyHanko's modification policy accepts after an earlier
//! signature. The cross-reference section is a stream when the file's newest one is, a table
//! otherwise. The whole update is built in memory (it is small) before anything is written, so
//! the byte range is known up front and the output is written in one pass while it is hashed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom, Write};

use lopdf::{Object, ObjectId};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::source::{Source, XrefKind};
use crate::syntax::{array_push, dict_entries, dict_set, skip_whitespace, unsigned, value_end};
use crate::{ByteRange, PdfError, PrepareOptions, Prepared};

/// Width of the `/ByteRange` array text: `[0 ` + three ten-digit numbers + blanks + `]`.
const BYTE_RANGE_WIDTH: usize = 36;

/// How deep form-field `/Kids` are followed when collecting field names.
const MAX_FIELD_DEPTH: usize = 32;

/// Reads a PDF from `input`, writes it to `output` followed by a signature revision, and
/// returns the digest to sign and where the placeholder is.
///
/// The input is read once into memory (the parser needs random access); stream data is not
/// decoded. The output starts with the input's bytes unchanged.
pub fn prepare<R: Read, W: Write>(
    mut input: R,
    mut output: W,
    options: &PrepareOptions,
) -> Result<Prepared, PdfError> {
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes)?;
    let (revision, prepared) = plan_revision(&bytes, options)?;
    output.write_all(&bytes)?;
    output.write_all(&revision)?;
    output.flush()?;
    Ok(prepared)
}

/// Like [`prepare`], but appends the revision to `file` itself instead of copying the document
/// to a new output: the server's upload becomes the prepared file without writing it twice.
/// `file` is read from its start; nothing is written unless preparation succeeds.
pub fn prepare_appending<F: Read + Write + Seek>(
    file: &mut F,
    options: &PrepareOptions,
) -> Result<Prepared, PdfError> {
    file.seek(SeekFrom::Start(0))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let (revision, prepared) = plan_revision(&bytes, options)?;
    drop(bytes);
    file.seek(SeekFrom::End(0))?;
    file.write_all(&revision)?;
    file.flush()?;
    Ok(prepared)
}

/// Builds the revision for `bytes` and hashes the byte ranges of `bytes` + revision.
fn plan_revision(bytes: &[u8], options: &PrepareOptions) -> Result<(Vec<u8>, Prepared), PdfError> {
    let signing_time = options
        .signing_time
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| PdfError::Unsupported(format!("signing time: {e}")))?;
    let revision = {
        let source = Source::load(bytes)?;
        build_revision(&source, options, signing_time)?
    };

    let mut hasher = Sha256::new();
    hasher.update(bytes);
    let input_sha256 = hasher.clone().finalize().into();
    hasher.update(&revision.bytes[..revision.contents_start]);
    hasher.update(&revision.bytes[revision.contents_end..]);
    let prepared = Prepared {
        digest: hasher.finalize().into(),
        input_sha256,
        byte_range: revision.byte_range,
        field_name: revision.field_name,
        signing_time,
        output_len: revision.byte_range.file_len(),
    };
    Ok((revision.bytes, prepared))
}

/// The appended bytes and where their placeholder sits.
struct Revision {
    bytes: Vec<u8>,
    /// Offset of the placeholder's `<` within `bytes`.
    contents_start: usize,
    /// One past the placeholder's `>` within `bytes`.
    contents_end: usize,
    byte_range: ByteRange,
    field_name: String,
}

/// New versions of existing objects, as text, keyed by object number.
struct Edits<'a, 's> {
    source: &'a Source<'s>,
    changed: BTreeMap<u32, (u16, Vec<u8>)>,
}

impl Edits<'_, '_> {
    /// The current text of object `number`: our new version if we made one, else the original.
    fn text(&self, number: u32) -> Result<(u16, Vec<u8>), PdfError> {
        match self.changed.get(&number) {
            Some(version) => Ok(version.clone()),
            None => self.source.raw_object(number),
        }
    }

    fn set(&mut self, number: u32, generation: u16, text: Vec<u8>) {
        self.changed.insert(number, (generation, text));
    }

    /// Appends `item` to the array object `number`.
    fn push_to_array_object(&mut self, number: u32, item: &[u8]) -> Result<(), PdfError> {
        let (generation, text) = self.text(number)?;
        let text = array_push(&text, item)?;
        self.set(number, generation, text);
        Ok(())
    }

    /// `dict` with `item` appended to the array under `key`: in place when the array is direct,
    /// in the array object when it is indirect, as a new one-element array when it is absent.
    fn push_to_array_entry(
        &mut self,
        dict: &[u8],
        key: &[u8],
        item: &[u8],
    ) -> Result<Vec<u8>, PdfError> {
        match entry_value(dict, key)? {
            Some(value) if value.starts_with(b"[") => {
                dict_set(dict, key, &array_push(&value, item)?)
            }
            Some(value) => match parse_reference(&value) {
                Some(id) if matches!(self.source.get(id), Some(Object::Array(_))) => {
                    self.push_to_array_object(id.0, item)?;
                    Ok(dict.to_vec())
                }
                _ => dict_set(dict, key, &[b"[", item, b"]"].concat()),
            },
            None => dict_set(dict, key, &[b"[", item, b"]"].concat()),
        }
    }

    /// An AcroForm dictionary's text with the new field listed and `/SigFlags 3`.
    fn edit_acroform(&mut self, acroform: &[u8], field: &[u8]) -> Result<Vec<u8>, PdfError> {
        let text = self.push_to_array_entry(acroform, b"Fields", field)?;
        match entry_value(&text, b"SigFlags")? {
            Some(flags) if flags == b"3" => Ok(text),
            _ => dict_set(&text, b"SigFlags", b"3"),
        }
    }
}

fn build_revision(
    source: &Source<'_>,
    options: &PrepareOptions,
    signing_time: OffsetDateTime,
) -> Result<Revision, PdfError> {
    let doc = &source.doc;
    let catalog_id = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| PdfError::Damaged("the trailer has no /Root".into()))?;
    let catalog = match source.get(catalog_id) {
        Some(Object::Dictionary(dict)) => dict,
        _ => return Err(PdfError::Damaged("the catalog is not a dictionary".into())),
    };
    refuse_if_certified_without_changes(source, catalog)?;
    let page_id = doc
        .page_iter()
        .next()
        .ok_or_else(|| PdfError::Unsupported("the document has no pages".into()))?;

    let field_name = unused_field_name(&field_names(source, catalog, page_id));
    let mut next = [
        source.trailer.size.unwrap_or(0),
        u64::from(doc.max_id) + 1,
        u64::from(doc.reference_table.size),
        doc.reference_table
            .entries
            .keys()
            .next_back()
            .map_or(0, |n| u64::from(*n) + 1),
    ]
    .into_iter()
    .max()
    .unwrap_or(1)
    .max(1);
    let mut allocate = || {
        let number = next;
        next += 1;
        u32::try_from(number).map_err(|_| PdfError::Unsupported("too many objects".into()))
    };
    let sig_number = allocate()?;
    let widget_number = allocate()?;
    let widget_ref = format!("{widget_number} 0 R").into_bytes();

    let mut edits = Edits {
        source,
        changed: BTreeMap::new(),
    };

    // Page 1 lists the widget among its annotations.
    let (page_generation, page_text) = edits.text(page_id.0)?;
    let edited = edits.push_to_array_entry(&page_text, b"Annots", &widget_ref)?;
    if edited != page_text {
        edits.set(page_id.0, page_generation, edited);
    }

    // The AcroForm lists the field and says the document has signatures.
    let mut new_acroform = None;
    let (catalog_generation, catalog_text) = edits.text(catalog_id.0)?;
    let acroform_value = entry_value(&catalog_text, b"AcroForm")?;
    let acroform_ref = acroform_value.as_deref().and_then(parse_reference);
    match (acroform_value.as_deref(), acroform_ref) {
        (_, Some(id)) if matches!(source.get(id), Some(Object::Dictionary(_))) => {
            let (generation, text) = edits.text(id.0)?;
            let edited = edits.edit_acroform(&text, &widget_ref)?;
            if edited != text {
                edits.set(id.0, generation, edited);
            }
        }
        (Some(value), _) if value.starts_with(b"<<") => {
            let edited = edits.edit_acroform(value, &widget_ref)?;
            let catalog_text = dict_set(&catalog_text, b"AcroForm", &edited)?;
            edits.set(catalog_id.0, catalog_generation, catalog_text);
        }
        _ => {
            let number = allocate()?;
            new_acroform = Some((
                number,
                [b"<</Fields [".as_slice(), &widget_ref, b"] /SigFlags 3>>"].concat(),
            ));
            let catalog_text = dict_set(
                &catalog_text,
                b"AcroForm",
                format!("{number} 0 R").as_bytes(),
            )?;
            edits.set(catalog_id.0, catalog_generation, catalog_text);
        }
    }

    // Lay the revision out.
    let base = source.bytes.len() as u64;
    let mut out = Vec::with_capacity(options.placeholder_capacity * 2 + 4096);
    if !matches!(source.bytes.last(), Some(b'\n' | b'\r')) {
        out.push(b'\n');
    }
    let mut offsets: Vec<(u32, u16, u64)> = Vec::new();

    offsets.push((sig_number, 0, base + out.len() as u64));
    out.extend_from_slice(format!("{sig_number} 0 obj\n").as_bytes());
    out.extend_from_slice(b"<</Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached");
    out.extend_from_slice(format!(" /M ({})", pdf_date(signing_time)).as_bytes());
    if let Some(name) = &options.signer_name {
        out.extend_from_slice(b" /Name ");
        out.extend_from_slice(&text_string(name));
    }
    if let Some(reason) = &options.reason {
        out.extend_from_slice(b" /Reason ");
        out.extend_from_slice(&text_string(reason));
    }
    out.extend_from_slice(b" /ByteRange ");
    let byte_range_at = out.len();
    out.extend_from_slice(&[b' '; BYTE_RANGE_WIDTH]);
    out.extend_from_slice(b" /Contents ");
    let contents_start = out.len();
    out.push(b'<');
    out.resize(out.len() + 2 * options.placeholder_capacity, b'0');
    out.push(b'>');
    let contents_end = out.len();
    out.extend_from_slice(b">>\nendobj\n");

    let (page_number, page_gen) = page_id;
    let widget = format!(
        "<</Type /Annot /Subtype /Widget /FT /Sig /T ({field_name}) /V {sig_number} 0 R \
         /F 132 /Rect [0 0 0 0] /P {page_number} {page_gen} R>>"
    );
    write_object(
        &mut out,
        &mut offsets,
        base,
        widget_number,
        0,
        widget.as_bytes(),
    );
    if let Some((number, text)) = &new_acroform {
        write_object(&mut out, &mut offsets, base, *number, 0, text);
    }
    for (number, (generation, text)) in &edits.changed {
        write_object(&mut out, &mut offsets, base, *number, *generation, text);
    }

    let trailer = &source.trailer;
    let root = match &trailer.root {
        Some(root) => root.clone(),
        None => format!("{} {} R", catalog_id.0, catalog_id.1).into_bytes(),
    };
    let mut trailer_entries = Vec::new();
    trailer_entries.extend_from_slice(b" /Root ");
    trailer_entries.extend_from_slice(&root);
    if let Some(info) = &trailer.info {
        trailer_entries.extend_from_slice(b" /Info ");
        trailer_entries.extend_from_slice(info);
    }
    if let Some(id) = &trailer.id {
        trailer_entries.extend_from_slice(b" /ID ");
        trailer_entries.extend_from_slice(id);
    }
    trailer_entries.extend_from_slice(format!(" /Prev {}", trailer.startxref).as_bytes());

    match trailer.kind {
        XrefKind::Table => {
            let size = next.max(trailer.size.unwrap_or(0));
            let xref_at = base + out.len() as u64;
            write_xref_table(&mut out, &mut offsets);
            out.extend_from_slice(format!("trailer\n<</Size {size}").as_bytes());
            out.extend_from_slice(&trailer_entries);
            out.extend_from_slice(format!(">>\nstartxref\n{xref_at}\n%%EOF\n").as_bytes());
        }
        XrefKind::Stream => {
            let number = allocate()?;
            let size = next.max(trailer.size.unwrap_or(0));
            let xref_at = base + out.len() as u64;
            offsets.push((number, 0, xref_at));
            let (index, width, data) = xref_stream_data(&mut offsets);
            out.extend_from_slice(
                format!(
                    "{number} 0 obj\n<</Type /XRef /Size {size} /Index [{index}] /W [1 {width} 2]"
                )
                .as_bytes(),
            );
            out.extend_from_slice(&trailer_entries);
            out.extend_from_slice(format!(" /Length {}>>\nstream\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(
                format!("\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n").as_bytes(),
            );
        }
    }

    let a = base + contents_start as u64;
    let b = base + contents_end as u64;
    let total = base + out.len() as u64;
    let byte_range = ByteRange([0, a, b, total - b]);
    let text = format!("[0 {a} {b} {}]", total - b);
    if text.len() > BYTE_RANGE_WIDTH {
        return Err(PdfError::Unsupported("the file is too large".into()));
    }
    out[byte_range_at..byte_range_at + text.len()].copy_from_slice(text.as_bytes());

    Ok(Revision {
        bytes: out,
        contents_start,
        contents_end,
        byte_range,
        field_name,
    })
}

fn write_object(
    out: &mut Vec<u8>,
    offsets: &mut Vec<(u32, u16, u64)>,
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

/// Runs of consecutive object numbers, as `(first, entries)`.
fn subsections(offsets: &mut [(u32, u16, u64)]) -> Vec<(u32, Vec<(u16, u64)>)> {
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

/// The text of `key`'s value in the dictionary `dict`, the last one if it repeats.
fn entry_value(dict: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, PdfError> {
    let (entries, _) = dict_entries(dict, 0)?;
    Ok(entries
        .iter()
        .rev()
        .find(|e| e.key == key)
        .map(|e| dict[e.value_start..e.value_end].to_vec()))
}

/// `N G R` as an object id.
fn parse_reference(text: &[u8]) -> Option<ObjectId> {
    let (number, pos) = unsigned(text, 0)?;
    let pos = skip_whitespace(text, pos);
    let (generation, pos) = unsigned(text, pos)?;
    let pos = skip_whitespace(text, pos);
    if text.get(pos) != Some(&b'R') || value_end(text, 0).ok()? != text.len() {
        return None;
    }
    Some((u32::try_from(number).ok()?, u16::try_from(generation).ok()?))
}

/// Fully qualified names of the form's fields and `/T` of page 1's annotations.
fn field_names(
    source: &Source<'_>,
    catalog: &lopdf::Dictionary,
    page_id: ObjectId,
) -> BTreeSet<Vec<u8>> {
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let fields = catalog
        .get(b"AcroForm")
        .ok()
        .and_then(|o| source.resolve(o))
        .and_then(|o| o.as_dict().ok())
        .and_then(|form| form.get(b"Fields").ok())
        .and_then(|o| source.resolve(o))
        .and_then(|o| o.as_array().ok());
    let mut stack: Vec<(&Object, Vec<u8>, usize)> = fields
        .map(|fields| fields.iter().map(|f| (f, Vec::new(), 0)).collect())
        .unwrap_or_default();
    while let Some((field, prefix, depth)) = stack.pop() {
        if let Object::Reference(id) = field {
            if !seen.insert(*id) {
                continue;
            }
        }
        let Some(Object::Dictionary(dict)) = source.resolve(field) else {
            continue;
        };
        let name = match dict.get(b"T").and_then(Object::as_str) {
            Ok(partial) if prefix.is_empty() => partial.to_vec(),
            Ok(partial) => [prefix.as_slice(), b".", partial].concat(),
            Err(_) => prefix.clone(),
        };
        if !name.is_empty() {
            names.insert(name.clone());
        }
        if depth < MAX_FIELD_DEPTH {
            if let Some(kids) = dict
                .get(b"Kids")
                .ok()
                .and_then(|o| source.resolve(o))
                .and_then(|o| o.as_array().ok())
            {
                stack.extend(kids.iter().map(|kid| (kid, name.clone(), depth + 1)));
            }
        }
    }
    let annots = source
        .get(page_id)
        .and_then(|page| page.as_dict().ok())
        .and_then(|page| page.get(b"Annots").ok())
        .and_then(|o| source.resolve(o))
        .and_then(|o| o.as_array().ok());
    for annot in annots.into_iter().flatten() {
        if let Some(Object::Dictionary(dict)) = source.resolve(annot) {
            if let Ok(name) = dict.get(b"T").and_then(Object::as_str) {
                names.insert(name.to_vec());
            }
        }
    }
    names
}

/// Refuses a document whose certification signature (catalog `/Perms /DocMDP`) allows no
/// changes: `/TransformParams /P 1`. `/P` 2 and 3 allow further signatures.
fn refuse_if_certified_without_changes(
    source: &Source<'_>,
    catalog: &lopdf::Dictionary,
) -> Result<(), PdfError> {
    fn dict<'a>(
        source: &'a Source<'_>,
        object: Option<&'a Object>,
    ) -> Option<&'a lopdf::Dictionary> {
        object
            .and_then(|o| source.resolve(o))
            .and_then(|o| o.as_dict().ok())
    }
    let dict = |object| dict(source, object);
    let signature =
        dict(catalog.get(b"Perms").ok()).and_then(|perms| dict(perms.get(b"DocMDP").ok()));
    let references = signature
        .and_then(|sig| sig.get(b"Reference").ok())
        .and_then(|o| source.resolve(o))
        .and_then(|o| o.as_array().ok());
    for reference in references.into_iter().flatten() {
        let Some(reference) = dict(Some(reference)) else {
            continue;
        };
        if reference
            .get(b"TransformMethod")
            .and_then(Object::as_name)
            .ok()
            != Some(b"DocMDP")
        {
            continue;
        }
        let permission = dict(reference.get(b"TransformParams").ok())
            .and_then(|params| params.get(b"P").and_then(Object::as_i64).ok())
            .unwrap_or(2);
        if permission == 1 {
            return Err(PdfError::Certified);
        }
    }
    Ok(())
}

/// `Signature1`, `Signature2`, … : the first that `taken` does not hold.
fn unused_field_name(taken: &BTreeSet<Vec<u8>>) -> String {
    (1u64..)
        .map(|n| format!("Signature{n}"))
        .find(|name| !taken.contains(name.as_bytes()))
        .unwrap_or_else(|| "Signature".into())
}

/// `D:YYYYMMDDHHmmSS+00'00'` for a UTC time.
fn pdf_date(time: OffsetDateTime) -> String {
    format!(
        "D:{:04}{:02}{:02}{:02}{:02}{:02}+00'00'",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

/// A PDF text string as UTF-16BE hex with a byte-order mark, which needs no escaping.
fn text_string(text: &str) -> Vec<u8> {
    let mut out = b"<FEFF".to_vec();
    for unit in text.encode_utf16() {
        out.extend_from_slice(format!("{unit:04X}").as_bytes());
    }
    out.push(b'>');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_free_signature_name_is_chosen() {
        let taken: BTreeSet<Vec<u8>> = [b"Signature1".to_vec(), b"Signature3".to_vec()].into();
        assert_eq!(unused_field_name(&taken), "Signature2");
        assert_eq!(unused_field_name(&BTreeSet::new()), "Signature1");
    }

    #[test]
    fn references_are_recognised_and_other_values_are_not() {
        assert_eq!(parse_reference(b"12 0 R"), Some((12, 0)));
        assert_eq!(parse_reference(b"12  3\nR"), Some((12, 3)));
        assert_eq!(parse_reference(b"[12 0 R]"), None);
        assert_eq!(parse_reference(b"12"), None);
    }

    #[test]
    fn dates_are_written_in_pdf_form() {
        let t = time::macros::datetime!(2026-11-23 09:05:07 UTC);
        assert_eq!(pdf_date(t), "D:20261123090507+00'00'");
    }

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
    fn non_ascii_text_becomes_utf16_hex() {
        assert_eq!(text_string("Å"), b"<FEFF00C5>".to_vec());
    }
}
