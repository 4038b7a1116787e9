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

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::embed::copy_hashing;
use crate::source::{ObjectId, Source};
use crate::syntax::{
    array_items, array_push, as_int, as_name, as_string, dict_set, entry_value, parse_reference,
};
use crate::update::{write_object, write_tail};
use crate::{ByteRange, Cancel, PdfError, PrepareOptions, Prepared, RevisionKind};

/// Width of the `/ByteRange` array text: `[0 ` + three ten-digit numbers + blanks + `]`.
const BYTE_RANGE_WIDTH: usize = 36;

/// How deep form-field `/Kids` are followed when collecting field names.
const MAX_FIELD_DEPTH: usize = 32;

/// Most form fields visited when collecting names.
const MAX_FIELDS: usize = 100_000;

/// Most page-tree nodes visited looking for page 1.
const MAX_PAGE_NODES: usize = 100_000;

/// Reads a PDF from `input`, writes it to `output` followed by a signature revision, and
/// returns the digest to sign and where the placeholder is.
///
/// Only the cross-reference data and the objects the revision edits are parsed; the rest of the
/// input is copied through in chunks while it is hashed. The output starts with the input's
/// bytes unchanged.
pub fn prepare<R: Read + Seek, W: Write>(
    mut input: R,
    mut output: W,
    options: &PrepareOptions,
) -> Result<Prepared, PdfError> {
    let revision = plan_revision(&mut input, options)?;
    input.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    copy_hashing(
        &mut input,
        &mut output,
        &mut hasher,
        revision.base,
        &options.cancel,
    )?;
    output.write_all(&revision.bytes)?;
    output.flush()?;
    Ok(revision.finish(hasher))
}

/// Like [`prepare`], but appends the revision to `file` itself instead of copying the document
/// to a new output: the server's upload becomes the prepared file without writing it twice.
/// `file` is read from its start; nothing is written unless preparation succeeds.
pub fn prepare_appending<F: Read + Write + Seek>(
    file: &mut F,
    options: &PrepareOptions,
) -> Result<Prepared, PdfError> {
    let revision = plan_revision(&mut *file, options)?;
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    copy_hashing(
        &mut *file,
        &mut std::io::sink(),
        &mut hasher,
        revision.base,
        &options.cancel,
    )?;
    file.seek(SeekFrom::Start(revision.base))?;
    file.write_all(&revision.bytes)?;
    file.flush()?;
    Ok(revision.finish(hasher))
}

/// Whether [`prepare`] would accept `input`: the same parsing and the same refusals, without
/// hashing or writing anything. For a caller that stores a document now and signs it later.
pub fn check<R: Read + Seek>(input: R) -> Result<(), PdfError> {
    check_with(input, &Cancel::new())
}

/// [`check`] that stops with [`PdfError::Cancelled`] once `cancel` is raised.
pub fn check_with<R: Read + Seek>(mut input: R, cancel: &Cancel) -> Result<(), PdfError> {
    let mut options = PrepareOptions::new(OffsetDateTime::UNIX_EPOCH);
    options.cancel = cancel.clone();
    plan_revision(&mut input, &options).map(drop)
}

/// Reads what the revision needs from `input` and builds it.
fn plan_revision<R: Read + Seek>(
    input: &mut R,
    options: &PrepareOptions,
) -> Result<Revision, PdfError> {
    let signing_time = options
        .signing_time
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| PdfError::Unsupported(format!("signing time: {e}")))?;
    let mut source = Source::open(input, options.cancel.clone())?;
    build_revision(&mut source, options, signing_time)
}

impl Revision {
    /// The preparation's result, given a hasher that has taken in the input.
    fn finish(self, mut hasher: Sha256) -> Prepared {
        let input_sha256 = hasher.clone().finalize().into();
        hasher.update(&self.bytes[..self.contents_start]);
        hasher.update(&self.bytes[self.contents_end..]);
        Prepared {
            digest: hasher.finalize().into(),
            input_sha256,
            byte_range: self.byte_range,
            field_name: self.field_name,
            signing_time: self.signing_time,
            output_len: self.byte_range.file_len(),
        }
    }
}

/// The appended bytes and where their placeholder sits.
struct Revision {
    /// Length of the input the revision follows.
    base: u64,
    bytes: Vec<u8>,
    /// Offset of the placeholder's `<` within `bytes`.
    contents_start: usize,
    /// One past the placeholder's `>` within `bytes`.
    contents_end: usize,
    byte_range: ByteRange,
    field_name: String,
    signing_time: OffsetDateTime,
}

/// New versions of existing objects, as text, keyed by object number.
struct Edits<'a, 'r, R> {
    source: &'a mut Source<'r, R>,
    changed: BTreeMap<u32, (u16, Vec<u8>)>,
}

impl<R: Read + Seek> Edits<'_, '_, R> {
    /// The current text of object `number`: our new version if we made one, else the original.
    fn text(&mut self, number: u32) -> Result<(u16, Vec<u8>), PdfError> {
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
                Some(id) if self.is_array_object(id.0)? => {
                    self.push_to_array_object(id.0, item)?;
                    Ok(dict.to_vec())
                }
                _ => dict_set(dict, key, &[b"[", item, b"]"].concat()),
            },
            None => dict_set(dict, key, &[b"[", item, b"]"].concat()),
        }
    }

    /// Whether object `number` exists and is an array.
    fn is_array_object(&mut self, number: u32) -> Result<bool, PdfError> {
        match self.text(number) {
            Ok((_, text)) => Ok(text.starts_with(b"[")),
            Err(e) if self.source.ends_parse(&e) => Err(e),
            Err(_) => Ok(false),
        }
    }

    /// Whether object `number` exists and is a dictionary (not a stream).
    fn is_dictionary_object(&mut self, number: u32) -> Result<bool, PdfError> {
        self.source.is_plain_dictionary(number)
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

fn build_revision<R: Read + Seek>(
    source: &mut Source<'_, R>,
    options: &PrepareOptions,
    signing_time: OffsetDateTime,
) -> Result<Revision, PdfError> {
    let catalog_id = source
        .trailer
        .root
        .as_deref()
        .and_then(parse_reference)
        .ok_or_else(|| PdfError::Damaged("the trailer has no /Root".into()))?;
    let catalog = match source.lenient_object(catalog_id.0)? {
        Some((_, text)) if text.starts_with(b"<<") => text,
        _ => return Err(PdfError::Damaged("the catalog is not a dictionary".into())),
    };
    refuse_if_certified_without_changes(source, &catalog)?;
    let page_id = first_page(source, &catalog)?;

    let field_name = unused_field_name(&field_names(source, &catalog, page_id)?);
    let mut next = source.next_free_number.max(1);
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
    let acroform_is_object = match acroform_ref {
        Some(id) => edits.is_dictionary_object(id.0)?,
        None => false,
    };
    match (acroform_value.as_deref(), acroform_ref) {
        (_, Some(id)) if acroform_is_object => {
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

    let changed = edits.changed;

    // Lay the revision out.
    let base = source.len;
    let capacity = options
        .placeholder_capacity
        .saturating_add(options.reserve_timestamp_bytes);
    let mut out = Vec::with_capacity(capacity.saturating_mul(2).saturating_add(4096));
    if !source.ends_with_newline {
        out.push(b'\n');
    }
    let mut offsets: Vec<(u32, u16, u64)> = Vec::new();

    offsets.push((sig_number, 0, base + out.len() as u64));
    out.extend_from_slice(format!("{sig_number} 0 obj\n").as_bytes());
    match options.kind {
        RevisionKind::Signature => {
            out.extend_from_slice(
                b"<</Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached",
            );
            out.extend_from_slice(format!(" /M ({})", pdf_date(signing_time)).as_bytes());
            if let Some(name) = &options.signer_name {
                out.extend_from_slice(b" /Name ");
                out.extend_from_slice(&text_string(name));
            }
            if let Some(reason) = &options.reason {
                out.extend_from_slice(b" /Reason ");
                out.extend_from_slice(&text_string(reason));
            }
        }
        // ETSI EN 319 142-1 §5.4: the time is the token's; a document timestamp names no signer.
        RevisionKind::DocumentTimestamp => out.extend_from_slice(
            b"<</Type /DocTimeStamp /Filter /Adobe.PPKLite /SubFilter /ETSI.RFC3161",
        ),
    }
    out.extend_from_slice(b" /ByteRange ");
    let byte_range_at = out.len();
    out.extend_from_slice(&[b' '; BYTE_RANGE_WIDTH]);
    out.extend_from_slice(b" /Contents ");
    let contents_start = out.len();
    out.push(b'<');
    out.resize(out.len() + capacity.saturating_mul(2), b'0');
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
    for (number, (generation, text)) in &changed {
        write_object(&mut out, &mut offsets, base, *number, *generation, text);
    }

    let root = format!("{} {} R", catalog_id.0, catalog_id.1).into_bytes();
    write_tail(
        &mut out,
        &mut offsets,
        base,
        &source.trailer,
        &root,
        next,
        options.update_id.as_ref(),
    )?;

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
        base,
        bytes: out,
        contents_start,
        contents_end,
        byte_range,
        field_name,
        signing_time,
    })
}

/// The first page: the first leaf of the page tree, depth first.
fn first_page<R: Read + Seek>(
    source: &mut Source<'_, R>,
    catalog: &[u8],
) -> Result<ObjectId, PdfError> {
    let root = entry_value(catalog, b"Pages")?
        .as_deref()
        .and_then(parse_reference)
        .ok_or_else(|| PdfError::Damaged("the catalog has no /Pages reference".into()))?;
    let mut stack = vec![root];
    let mut seen = BTreeSet::new();
    while let Some(id) = stack.pop() {
        if !seen.insert(id.0) || seen.len() > MAX_PAGE_NODES {
            continue;
        }
        let Some((_, node)) = source.lenient_object(id.0)? else {
            continue;
        };
        if !node.starts_with(b"<<") {
            continue;
        }
        let kind = entry_value(&node, b"Type")?.and_then(|v| as_name(&v));
        let kids = source.get(&node, b"Kids")?.filter(|k| k.starts_with(b"["));
        match (kind.as_deref(), kids) {
            (Some(b"Page"), _) | (None, None) => return Ok(id),
            (_, Some(kids)) => {
                let items = array_items(&kids)?;
                stack.extend(
                    items
                        .iter()
                        .rev()
                        .filter_map(|(s, e)| parse_reference(&kids[*s..*e])),
                );
            }
            _ => {}
        }
    }
    Err(PdfError::Unsupported("the document has no pages".into()))
}

/// Fully qualified names of the form's fields and `/T` of page 1's annotations. Best effort:
/// what cannot be read names nothing (but the budget and cancellation still stop the walk).
fn field_names<R: Read + Seek>(
    source: &mut Source<'_, R>,
    catalog: &[u8],
    page_id: ObjectId,
) -> Result<BTreeSet<Vec<u8>>, PdfError> {
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let fields = match source
        .get(catalog, b"AcroForm")?
        .filter(|form| form.starts_with(b"<<"))
    {
        Some(form) => source.get(&form, b"Fields")?,
        None => None,
    };
    let mut stack: Vec<(Vec<u8>, Vec<u8>, usize)> = fields
        .map(|fields| items_of(&fields))
        .unwrap_or_default()
        .into_iter()
        .map(|field| (field, Vec::new(), 0))
        .collect();
    while let Some((field, prefix, depth)) = stack.pop() {
        if let Some(id) = parse_reference(&field) {
            if !seen.insert(id) || seen.len() > MAX_FIELDS {
                continue;
            }
        }
        let Some(dict) = source.resolve(&field)?.filter(|d| d.starts_with(b"<<")) else {
            continue;
        };
        // A direct field is a copy of its parent's text: charged, so nesting cannot multiply
        // the work unseen.
        source.charge_parsed(dict.len())?;
        let partial = entry_value(&dict, b"T")
            .ok()
            .flatten()
            .and_then(|t| as_string(&t));
        let name = match partial {
            Some(partial) if prefix.is_empty() => partial,
            Some(partial) => [prefix.as_slice(), b".", &partial].concat(),
            None => prefix.clone(),
        };
        if !name.is_empty() {
            names.insert(name.clone());
        }
        if depth < MAX_FIELD_DEPTH {
            if let Some(kids) = source.get(&dict, b"Kids")? {
                stack.extend(
                    items_of(&kids)
                        .into_iter()
                        .map(|kid| (kid, name.clone(), depth + 1)),
                );
            }
        }
    }
    let annots = match source.lenient_object(page_id.0)? {
        Some((_, page)) => source.get(&page, b"Annots")?,
        None => None,
    };
    for annot in annots.map(|a| items_of(&a)).unwrap_or_default() {
        let Some(dict) = source.resolve(&annot)?.filter(|d| d.starts_with(b"<<")) else {
            continue;
        };
        if let Some(name) = entry_value(&dict, b"T")
            .ok()
            .flatten()
            .and_then(|t| as_string(&t))
        {
            names.insert(name);
        }
    }
    Ok(names)
}

/// The items of an array value as texts; nothing for anything else.
fn items_of(array: &[u8]) -> Vec<Vec<u8>> {
    array_items(array)
        .map(|items| items.iter().map(|(s, e)| array[*s..*e].to_vec()).collect())
        .unwrap_or_default()
}

/// Refuses a document whose certification signature (catalog `/Perms /DocMDP`) allows no
/// changes: `/TransformParams /P 1`. `/P` 2 and 3 allow further signatures.
fn refuse_if_certified_without_changes<R: Read + Seek>(
    source: &mut Source<'_, R>,
    catalog: &[u8],
) -> Result<(), PdfError> {
    let dict = |text: Option<Vec<u8>>| text.filter(|t| t.starts_with(b"<<"));
    let Some(perms) = dict(source.get(catalog, b"Perms")?) else {
        return Ok(());
    };
    let Some(signature) = dict(source.get(&perms, b"DocMDP")?) else {
        return Ok(());
    };
    let references = source
        .get(&signature, b"Reference")?
        .map(|r| items_of(&r))
        .unwrap_or_default();
    for reference in references {
        let Some(reference) = dict(source.resolve(&reference)?) else {
            continue;
        };
        let method = entry_value(&reference, b"TransformMethod")?.and_then(|m| as_name(&m));
        if method.as_deref() != Some(b"DocMDP") {
            continue;
        }
        let permission = match dict(source.get(&reference, b"TransformParams")?) {
            Some(params) => source.get(&params, b"P")?,
            None => None,
        }
        .and_then(|p| as_int(&p))
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
pub(crate) fn pdf_date(time: OffsetDateTime) -> String {
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
    fn dates_are_written_in_pdf_form() {
        let t = time::macros::datetime!(2026-11-23 09:05:07 UTC);
        assert_eq!(pdf_date(t), "D:20261123090507+00'00'");
    }

    #[test]
    fn non_ascii_text_becomes_utf16_hex() {
        assert_eq!(text_string("Å"), b"<FEFF00C5>".to_vec());
    }
}
