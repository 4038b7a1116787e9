//! The document being signed: its bytes, lopdf's view of its objects, and its newest trailer.
//!
//! lopdf resolves the cross-reference data (tables, streams, hybrids, earlier updates, object
//! streams) and walks the page tree. We load it with stream contents dropped, so a 50 MB file
//! is held once as bytes and not again as decoded streams; only object streams are kept, because
//! objects we rewrite may live in them. For the text of an object we go back to the bytes (see
//! [`crate::syntax`] for why) using lopdf's cross-reference entries.

use lopdf::xref::{XrefEntry, XrefRecovery};
use lopdf::{Document, LoadOptions, Object, ObjectId};

use crate::syntax::{dict_entries, object_header, skip_whitespace, unsigned, value_end};
use crate::PdfError;

/// Which kind of cross-reference section the file's newest revision ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XrefKind {
    /// A classic `xref` table with a `trailer` dictionary.
    Table,
    /// A cross-reference stream.
    Stream,
}

/// The newest trailer as text, with the spans of the entries the update copies.
#[derive(Debug)]
pub(crate) struct Trailer {
    /// Offset named by the file's last `startxref`: the update's `/Prev`.
    pub startxref: u64,
    /// Whether that section is a table or a stream.
    pub kind: XrefKind,
    /// `/Size` when present.
    pub size: Option<u64>,
    /// `/Root`, `/Info` and `/ID` value texts, copied verbatim into the update's trailer.
    pub root: Option<Vec<u8>>,
    /// See `root`.
    pub info: Option<Vec<u8>>,
    /// See `root`.
    pub id: Option<Vec<u8>>,
    /// Whether `/Encrypt` is present.
    pub encrypted: bool,
}

/// A loaded document.
pub(crate) struct Source<'a> {
    pub bytes: &'a [u8],
    pub doc: Document,
    pub trailer: Trailer,
}

impl<'a> Source<'a> {
    /// Checks the header, reads the newest trailer, refuses encryption and loads the objects.
    pub fn load(bytes: &'a [u8]) -> Result<Self, PdfError> {
        if !bytes.starts_with(b"%PDF-") {
            return Err(PdfError::NotPdf(
                "the file does not start with a %PDF- header".into(),
            ));
        }
        let trailer = read_trailer(bytes)?;
        if trailer.encrypted {
            return Err(PdfError::Encrypted);
        }
        let options = LoadOptions {
            filter: Some(drop_stream_contents),
            ..LoadOptions::default()
        };
        let doc = Document::load_mem_with_options(bytes, options)
            .map_err(|e| PdfError::Unparseable(e.to_string()))?;
        if doc.trailer.has(b"Encrypt") || doc.encryption_state.is_some() {
            return Err(PdfError::Encrypted);
        }
        match doc.xref_recovery {
            None => {}
            Some(XrefRecovery::OffsetCorrected) => {
                return Err(PdfError::Damaged(
                    "a cross-reference offset is wrong; re-save the file to repair it".into(),
                ))
            }
            Some(_) => {
                return Err(PdfError::Damaged(
                    "the cross-reference data is unreadable; re-save the file to repair it".into(),
                ))
            }
        }
        Ok(Self {
            bytes,
            doc,
            trailer,
        })
    }

    /// The object `id` refers to, following references.
    pub fn get(&self, id: ObjectId) -> Option<&Object> {
        self.doc.get_object(id).ok()
    }

    /// `object` itself, or what it refers to.
    pub fn resolve<'o>(&'o self, object: &'o Object) -> Option<&'o Object> {
        match object {
            Object::Reference(id) => self.get(*id),
            other => Some(other),
        }
    }

    /// The text of object `number`'s value (without `N G obj` and `endobj`) and its generation.
    pub fn raw_object(&self, number: u32) -> Result<(u16, Vec<u8>), PdfError> {
        match self.doc.reference_table.entries.get(&number) {
            Some(XrefEntry::Normal { offset, .. }) => {
                let offset = *offset as usize;
                if offset >= self.bytes.len() {
                    return Err(missing(number));
                }
                let (found, generation, start) = object_header(self.bytes, offset)?;
                if found != number {
                    return Err(PdfError::Damaged(format!(
                        "the cross-reference entry of object {number} points at object {found}"
                    )));
                }
                let end = value_end(self.bytes, start)?;
                Ok((generation, self.bytes[start..end].to_vec()))
            }
            Some(XrefEntry::Compressed { container, .. }) => {
                Ok((0, self.raw_compressed(number, *container)?))
            }
            _ => Err(missing(number)),
        }
    }

    /// The text of object `number` inside object stream `container`.
    fn raw_compressed(&self, number: u32, container: u32) -> Result<Vec<u8>, PdfError> {
        let stream = self
            .doc
            .objects
            .get(&(container, 0))
            .and_then(|object| object.as_stream().ok())
            .ok_or_else(|| missing(container))?;
        let first = stream
            .dict
            .get(b"First")
            .and_then(Object::as_i64)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| PdfError::Damaged(format!("object stream {container} has no /First")))?;
        let count = stream
            .dict
            .get(b"N")
            .and_then(Object::as_i64)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| PdfError::Damaged(format!("object stream {container} has no /N")))?;
        let content = stream
            .decompressed_content()
            .map_err(|e| PdfError::Damaged(format!("object stream {container}: {e}")))?;
        let mut pos = 0;
        for _ in 0..count {
            pos = skip_whitespace(&content, pos);
            let (found, next) = unsigned(&content, pos).ok_or_else(|| bad_header(container))?;
            pos = skip_whitespace(&content, next);
            let (offset, next) = unsigned(&content, pos).ok_or_else(|| bad_header(container))?;
            pos = next;
            if found == u64::from(number) {
                let start = first
                    .checked_add(usize::try_from(offset).map_err(|_| bad_header(container))?)
                    .filter(|s| *s < content.len())
                    .ok_or_else(|| bad_header(container))?;
                let start = skip_whitespace(&content, start);
                let end = value_end(&content, start)?;
                return Ok(content[start..end].to_vec());
            }
        }
        Err(missing(number))
    }
}

/// Keeps object streams whole and replaces every other stream by its dictionary: the engine
/// never reads stream data, and this keeps a large document in memory once.
///
/// lopdf keeps the object as mutated in place for top-level objects but takes the returned
/// value for members of object streams, so both are set.
fn drop_stream_contents(id: ObjectId, object: &mut Object) -> Option<(ObjectId, Object)> {
    if let Object::Stream(stream) = object {
        if !stream.dict.has_type(b"ObjStm") {
            *object = Object::Dictionary(std::mem::take(&mut stream.dict));
        }
    }
    Some((id, object.clone()))
}

/// Finds the last `startxref` and reads the trailer of the section it names.
fn read_trailer(bytes: &[u8]) -> Result<Trailer, PdfError> {
    let tail_start = bytes.len().saturating_sub(2048);
    let marker = rfind(&bytes[tail_start..], b"startxref")
        .map(|p| p + tail_start)
        .ok_or_else(|| {
            PdfError::Damaged("no startxref near the end of the file (truncated?)".into())
        })?;
    let pos = skip_whitespace(bytes, marker + b"startxref".len());
    let (startxref, _) = unsigned(bytes, pos)
        .ok_or_else(|| PdfError::Damaged("startxref is not followed by an offset".into()))?;
    let section = usize::try_from(startxref)
        .ok()
        .filter(|s| *s < bytes.len())
        .ok_or_else(|| PdfError::Damaged("startxref points past the end of the file".into()))?;
    let section = skip_whitespace(bytes, section);
    let (kind, dict_start) = if bytes[section..].starts_with(b"xref") {
        let at = find(&bytes[section..], b"trailer")
            .map(|p| section + p + b"trailer".len())
            .ok_or_else(|| PdfError::Damaged("the cross-reference table has no trailer".into()))?;
        (XrefKind::Table, skip_whitespace(bytes, at))
    } else {
        let (_, _, start) = object_header(bytes, section).map_err(|_| {
            PdfError::Damaged("startxref does not point at a cross-reference section".into())
        })?;
        (XrefKind::Stream, start)
    };
    let (entries, _) = dict_entries(bytes, dict_start)?;
    let value = |key: &[u8]| {
        entries
            .iter()
            .rev()
            .find(|e| e.key == key)
            .map(|e| bytes[e.value_start..e.value_end].to_vec())
    };
    if kind == XrefKind::Stream && value(b"Type").as_deref() != Some(b"/XRef") {
        return Err(PdfError::Damaged(
            "startxref does not point at a cross-reference stream".into(),
        ));
    }
    Ok(Trailer {
        startxref,
        kind,
        size: value(b"Size").and_then(|v| unsigned(&v, 0).map(|(n, _)| n)),
        root: value(b"Root"),
        info: value(b"Info"),
        id: value(b"ID"),
        encrypted: value(b"Encrypt").is_some(),
    })
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn missing(number: u32) -> PdfError {
    PdfError::Damaged(format!("object {number} is missing"))
}

fn bad_header(container: u32) -> PdfError {
    PdfError::Damaged(format!("object stream {container} has a malformed header"))
}
