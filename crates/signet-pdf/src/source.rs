//! The document being signed, read lazily through a seekable handle.
//!
//! An incremental signature touches a handful of objects (catalog, page 1, AcroForm, fields), so
//! we read the cross-reference data (tables, streams, hybrids, every earlier update) and then
//! only those objects, each from its offset. A 50 MB document is never loaded: memory stays at
//! the size of its cross-reference map and the few object texts we edit. Object texts are kept
//! as bytes, never re-serialised (see [`crate::syntax`] for why).
//!
//! Everything it reads is charged to the document's [`Meter`] (see [`crate::budget`]): each
//! object is read at most once (its text, or why it cannot be read, is kept), object streams
//! are kept under a byte cap, and a cross-reference section's entries are counted before they
//! are iterated.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

use crate::budget::{Cancel, Meter, MAX_OBJECT_TEXT, OBJECT_STREAM_CACHE};
use crate::filters::decode;
use crate::syntax::{
    as_int, dict_entries, entry_value, object_header, parse_reference, skip_whitespace, unsigned,
    value_end,
};
use crate::PdfError;

/// First read of an object or cross-reference section; grown fourfold while the text does not fit.
const FIRST_WINDOW: usize = 4096;

/// Bytes read at a time when checking object offsets.
const OFFSET_CHUNK: usize = 4096;

/// Room an `N G obj` header needs, white space included.
const HEADER_BYTES: u64 = 48;

/// Largest `/Length` of a cross-reference or object stream's raw data.
const MAX_STREAM_LENGTH: usize = 64 << 20;

/// Most cross-reference sections followed through `/Prev` (each update adds one).
const MAX_SECTIONS: usize = 100_000;

/// Cross-reference rows decoded between two looks at the cancellation flag.
const ROWS_PER_POLL: u32 = 1 << 16;

/// An object number and generation.
pub(crate) type ObjectId = (u32, u16);

/// Which kind of cross-reference section the file's newest revision ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XrefKind {
    /// A classic `xref` table with a `trailer` dictionary.
    Table,
    /// A cross-reference stream.
    Stream,
}

/// The newest trailer as text, with the values the update copies.
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
}

/// Where the newest version of an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XrefEntry {
    /// Deleted in a newer revision: hides every older entry.
    Free,
    /// At a byte offset of the file.
    Normal { offset: u64 },
    /// Inside object stream `container`.
    Compressed { container: u32 },
}

impl XrefEntry {
    /// Packed into eight bytes, so a document's map costs 12 bytes an entry: `u64::MAX` free,
    /// the top bit set for a container number, an offset otherwise (one too large for any file
    /// stays too large).
    fn pack(self) -> u64 {
        match self {
            XrefEntry::Free => u64::MAX,
            XrefEntry::Normal { offset } => offset.min(1 << 62),
            XrefEntry::Compressed { container } => 1 << 63 | u64::from(container),
        }
    }

    fn unpack(packed: u64) -> Self {
        if packed == u64::MAX {
            XrefEntry::Free
        } else if packed & 1 << 63 != 0 {
            XrefEntry::Compressed {
                container: packed as u32,
            }
        } else {
            XrefEntry::Normal { offset: packed }
        }
    }
}

/// A decoded object stream: its content and where each member's text starts.
struct ObjectStream {
    content: Vec<u8>,
    members: HashMap<u32, usize>,
}

/// An object as read: its generation, its value's text, and for an object at a file offset,
/// where its value ends (a stream's `stream` keyword would follow).
struct RawObject {
    generation: u16,
    text: Vec<u8>,
    value_end: Option<u64>,
}

/// Why an object could not be read, kept so it is not read again. Errors that end the whole
/// parse (I/O, the budget, cancellation) are never kept.
fn keepable(error: &PdfError) -> Option<PdfError> {
    match error {
        PdfError::Damaged(m) => Some(PdfError::Damaged(m.clone())),
        PdfError::Unsupported(m) => Some(PdfError::Unsupported(m.clone())),
        PdfError::Unparseable(m) => Some(PdfError::Unparseable(m.clone())),
        _ => None,
    }
}

/// A document opened for signing.
pub(crate) struct Source<'r, R> {
    input: &'r mut R,
    /// Length of the document.
    pub len: u64,
    /// Whether the document's last byte ends a line (the update starts on a new line otherwise).
    pub ends_with_newline: bool,
    pub trailer: Trailer,
    /// One past the largest object number in use anywhere in the file.
    pub next_free_number: u64,
    /// Packed [`XrefEntry`]s by object number: in reading order (newest section first) while
    /// the sections are read, then sorted with the first entry of each number kept.
    xref: Vec<(u32, u64)>,
    /// Every object asked for, read or not, by number.
    objects: HashMap<u32, Result<Rc<RawObject>, PdfError>>,
    /// Decoded object streams kept for reuse, by number; their numbers oldest first; and
    /// their total content bytes.
    object_streams: HashMap<u32, Rc<ObjectStream>>,
    object_stream_order: VecDeque<u32>,
    object_stream_bytes: usize,
    /// Why an object stream could not be decoded, once one could not: that is damage to the
    /// file's structure, not one unreadable object, and ends the parse.
    broken_object_stream: Option<String>,
    meter: Meter,
}

impl<'r, R: Read + Seek> Source<'r, R> {
    /// Checks the header, reads every cross-reference section and refuses encryption; the
    /// whole parse stops when `cancel` is raised.
    pub fn open(input: &'r mut R, cancel: Cancel) -> Result<Self, PdfError> {
        let len = input.seek(SeekFrom::End(0))?;
        let mut source = Self {
            input,
            len,
            ends_with_newline: false,
            trailer: Trailer {
                startxref: 0,
                kind: XrefKind::Table,
                size: None,
                root: None,
                info: None,
                id: None,
            },
            next_free_number: 0,
            xref: Vec::new(),
            objects: HashMap::new(),
            object_streams: HashMap::new(),
            object_stream_order: VecDeque::new(),
            object_stream_bytes: 0,
            broken_object_stream: None,
            meter: Meter::new(len, cancel),
        };
        if !source.read_at(0, 5)?.starts_with(b"%PDF-") {
            return Err(PdfError::NotPdf(
                "the file does not start with a %PDF- header".into(),
            ));
        }
        let tail_start = len.saturating_sub(2048);
        let tail = source.read_at(tail_start, 2048)?;
        source.ends_with_newline = matches!(tail.last(), Some(b'\n' | b'\r'));
        let marker = rfind(&tail, b"startxref").ok_or_else(|| {
            PdfError::Damaged("no startxref near the end of the file (truncated?)".into())
        })?;
        let pos = skip_whitespace(&tail, marker + b"startxref".len());
        let (startxref, _) = unsigned(&tail, pos)
            .ok_or_else(|| PdfError::Damaged("startxref is not followed by an offset".into()))?;
        if startxref >= len {
            return Err(PdfError::Damaged(
                "startxref points past the end of the file".into(),
            ));
        }
        source.read_all_sections(startxref)?;
        Ok(source)
    }

    /// Follows the chain of cross-reference sections from the newest, the first entry seen for
    /// each object number winning.
    fn read_all_sections(&mut self, startxref: u64) -> Result<(), PdfError> {
        let mut visited = BTreeSet::new();
        let mut next = Some(startxref);
        let mut root = None;
        let mut encrypted = false;
        let mut newest = true;
        while let Some(offset) = next {
            if !visited.insert(offset) || visited.len() > MAX_SECTIONS {
                return Err(PdfError::Damaged(
                    "the cross-reference sections form a loop".into(),
                ));
            }
            let section = self.read_section(offset, newest)?;
            encrypted |= entry_value(&section.dict, b"Encrypt")?.is_some();
            if root.is_none() {
                root = entry_value(&section.dict, b"Root")?;
            }
            if newest {
                let value = |key: &[u8]| entry_value(&section.dict, key);
                self.trailer = Trailer {
                    startxref,
                    kind: section.kind,
                    size: value(b"Size")?.and_then(|v| unsigned(&v, 0).map(|(n, _)| n)),
                    root: None,
                    info: value(b"Info")?,
                    id: value(b"ID")?,
                };
                newest = false;
            }
            if let Some(hybrid) = entry_value(&section.dict, b"XRefStm")? {
                // A hybrid file: the stream holds the objects that older readers must not see;
                // the table's own entries come first.
                let stream_at = self.offset_value(&hybrid, "/XRefStm")?;
                if visited.insert(stream_at) {
                    self.read_section(stream_at, false)?;
                }
            }
            next = match entry_value(&section.dict, b"Prev")? {
                None => None,
                Some(prev) => Some(self.offset_value(&prev, "/Prev")?),
            };
        }
        if encrypted {
            return Err(PdfError::Encrypted);
        }
        self.trailer.root = root;
        // A stable sort keeps the entries of each number in reading order: the newest first.
        self.xref.sort_by_key(|(number, _)| *number);
        self.xref.dedup_by_key(|(number, _)| *number);
        self.xref.shrink_to_fit();
        let largest = self.xref.last().map_or(0, |(n, _)| u64::from(*n) + 1);
        self.next_free_number = largest.max(self.trailer.size.unwrap_or(0));
        self.check_offsets()
    }

    /// A trailer value that must be an offset into the file.
    fn offset_value(&self, value: &[u8], key: &str) -> Result<u64, PdfError> {
        as_int(value)
            .and_then(|v| u64::try_from(v).ok())
            .filter(|v| *v < self.len)
            .ok_or_else(|| PdfError::Damaged(format!("{key} is not a valid offset")))
    }

    /// Checks that every in-use entry points at its object's `N G obj`. A file whose offsets are
    /// wrong only opens in readers that repair it, and a validator would reject what we append
    /// to it, so it is refused. Visits the offsets in file order, reading small chunks, so a large
    /// file with few objects costs a few reads.
    fn check_offsets(&mut self) -> Result<(), PdfError> {
        // The map itself is put in offset order and back, rather than copied: it may hold
        // millions of entries. Packed offsets sort before container numbers and free entries.
        let mut xref = std::mem::take(&mut self.xref);
        xref.sort_unstable_by_key(|(_, packed)| *packed);
        let checked = self.check_sorted_offsets(&xref);
        xref.sort_unstable_by_key(|(number, _)| *number);
        self.xref = xref;
        checked
    }

    /// [`Self::check_offsets`] over entries in offset order.
    fn check_sorted_offsets(&mut self, by_offset: &[(u32, u64)]) -> Result<(), PdfError> {
        let targets =
            by_offset
                .iter()
                .map_while(|(number, packed)| match XrefEntry::unpack(*packed) {
                    XrefEntry::Normal { offset } => Some((offset, *number)),
                    _ => None,
                });
        let mut chunk_start = 0;
        let mut chunk = Vec::new();
        for (offset, number) in targets {
            let wrong = || {
                PdfError::Damaged(format!(
                    "the cross-reference offset of object {number} is wrong; re-save the file to repair it"
                ))
            };
            if offset >= self.len {
                return Err(wrong());
            }
            let chunk_end = chunk_start + chunk.len() as u64;
            if offset < chunk_start || (offset + HEADER_BYTES > chunk_end && chunk_end < self.len) {
                chunk_start = offset;
                chunk = self.read_at(offset, OFFSET_CHUNK)?;
            }
            let at = usize::try_from(offset - chunk_start).map_err(|_| wrong())?;
            match object_header(&chunk[at..], 0) {
                Ok((found, _, _)) if found == number => {}
                _ => return Err(wrong()),
            }
        }
        Ok(())
    }

    /// Reads the section at `offset`, records its entries and returns its trailer dictionary.
    fn read_section(&mut self, offset: u64, newest: bool) -> Result<Section, PdfError> {
        let start = self.read_at(offset, 64)?;
        let at = skip_whitespace(&start, 0);
        if start[at..].starts_with(b"xref") {
            return self.read_table(offset + at as u64);
        }
        let not_a_section = || {
            let which = if newest {
                "startxref"
            } else {
                "a /Prev or /XRefStm offset"
            };
            PdfError::Damaged(format!(
                "{which} does not point at a cross-reference section"
            ))
        };
        let (_, dict, data_at) = self.object_at(offset).map_err(|e| {
            if keepable(&e).is_none() {
                e
            } else {
                not_a_section()
            }
        })?;
        if entry_value(&dict, b"Type")?.as_deref() != Some(b"/XRef") {
            return Err(not_a_section());
        }
        // The rows are counted against the budget before anything is decoded or allocated.
        let layout = RowLayout::of(&dict)?;
        self.meter.charge_xref_entries(layout.rows)?;
        let data = self.stream_data(&dict, data_at)?;
        self.record_stream_entries(&layout, &data)?;
        Ok(Section {
            kind: XrefKind::Stream,
            dict,
        })
    }

    /// Parses a classic table and its trailer; grows its window until both fit.
    fn read_table(&mut self, offset: u64) -> Result<Section, PdfError> {
        // A table's text is bounded by the file (20 bytes an entry), not by MAX_OBJECT_TEXT.
        let max = usize::try_from(self.len).unwrap_or(usize::MAX);
        let (entries, dict) = self.parse_growing(offset, FIRST_WINDOW * 4, max, parse_table)?;
        self.meter.charge_xref_entries(entries.len() as u64)?;
        self.xref.extend(
            entries
                .into_iter()
                .map(|(number, entry)| (number, entry.pack())),
        );
        Ok(Section {
            kind: XrefKind::Table,
            dict,
        })
    }

    /// Runs `parse` on the bytes from `offset`, first `window` of them, four times as many each
    /// time it fails while more of the file is left (up to `max`): a parse error in a window
    /// that holds the rest of the file is the file's. Only the new bytes are read each time,
    /// but every window parsed is charged whole: that is the work done.
    fn parse_growing<T>(
        &mut self,
        offset: u64,
        mut window: usize,
        max: usize,
        parse: impl Fn(&[u8]) -> Result<T, PdfError>,
    ) -> Result<T, PdfError> {
        let mut text = Vec::new();
        loop {
            window = window.min(max);
            let more = self.read_raw(offset + text.len() as u64, window - text.len())?;
            text.extend_from_slice(&more);
            self.meter.charge_parsed(text.len() as u64)?;
            let complete = text.len() < window;
            match parse(&text) {
                Ok(parsed) => return Ok(parsed),
                Err(e) if complete || window >= max => return Err(e),
                Err(_) => window = window.saturating_mul(4),
            }
        }
    }

    /// Records the rows of a decoded cross-reference stream laid out as `layout` says.
    fn record_stream_entries(&mut self, layout: &RowLayout, data: &[u8]) -> Result<(), PdfError> {
        let damaged = |what: &str| PdfError::Damaged(format!("cross-reference stream: {what}"));
        let [w_type, w_field2, _] = layout.widths;
        let row_len = layout.row_len();
        let mut rows = data.chunks_exact(row_len);
        self.xref
            .reserve(usize::try_from(layout.rows).unwrap_or(usize::MAX));
        for pair in layout.index.chunks_exact(2) {
            let first = u32::try_from(pair[0]).map_err(|_| damaged("/Index out of range"))?;
            let count = u32::try_from(pair[1]).map_err(|_| damaged("/Index out of range"))?;
            if rows.len() < count as usize {
                return Err(damaged("fewer rows than /Index lists"));
            }
            for (i, number) in (0..count).map_while(|i| first.checked_add(i)).enumerate() {
                if i as u32 % ROWS_PER_POLL == ROWS_PER_POLL - 1 {
                    self.meter.cancel().check()?;
                }
                let Some(row) = rows.next() else {
                    return Err(damaged("fewer rows than /Index lists"));
                };
                let (kind, rest) = row.split_at(w_type);
                // The third field (a generation or an index in the object stream) is not needed:
                // objects are found by number.
                let field2 = &rest[..w_field2];
                let kind = if w_type == 0 { 1 } else { be(kind) };
                let entry = match kind {
                    0 => XrefEntry::Free,
                    1 => XrefEntry::Normal { offset: be(field2) },
                    2 => XrefEntry::Compressed {
                        container: u32::try_from(be(field2))
                            .map_err(|_| damaged("an object stream number out of range"))?,
                    },
                    // Unknown types are to be read as null objects (ISO 32000-2, 7.5.8.3).
                    _ => XrefEntry::Free,
                };
                self.xref.push((number, entry.pack()));
            }
        }
        Ok(())
    }

    /// Whether `error`, met while reading an object, ends the parse rather than making that one
    /// object unreadable (read as null): I/O, the budget, cancellation, a broken object stream.
    pub fn ends_parse(&self, error: &PdfError) -> bool {
        keepable(error).is_none() || self.broken_object_stream.is_some()
    }

    /// Charges `bytes` of work done on texts this source handed out.
    pub fn charge_parsed(&mut self, bytes: usize) -> Result<(), PdfError> {
        self.meter.charge_parsed(bytes as u64)
    }

    /// Where the newest version of object `number` lives, if anywhere.
    fn entry(&self, number: u32) -> Option<XrefEntry> {
        self.xref
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|at| XrefEntry::unpack(self.xref[at].1))
    }

    /// The text of object `number`'s value (without `N G obj` and `endobj`) and its generation.
    pub fn raw_object(&mut self, number: u32) -> Result<(u16, Vec<u8>), PdfError> {
        let object = self.object(number)?;
        Ok((object.generation, object.text.clone()))
    }

    /// Object `number` as read; read on the first call only, whatever its outcome.
    fn object(&mut self, number: u32) -> Result<Rc<RawObject>, PdfError> {
        if let Some(kept) = self.objects.get(&number) {
            return match kept {
                Ok(object) => Ok(Rc::clone(object)),
                Err(e) => Err(keepable(e).unwrap_or_else(|| missing(number))),
            };
        }
        match self.read_object(number) {
            Ok(object) => {
                let object = Rc::new(object);
                self.objects.insert(number, Ok(Rc::clone(&object)));
                Ok(object)
            }
            Err(e) => {
                if let Some(kept) = keepable(&e) {
                    self.objects.insert(number, Err(kept));
                }
                Err(e)
            }
        }
    }

    fn read_object(&mut self, number: u32) -> Result<RawObject, PdfError> {
        match self.entry(number) {
            Some(XrefEntry::Normal { offset }) => {
                if offset >= self.len {
                    return Err(missing(number));
                }
                let (generation, text, end) = self.numbered_object_at(number, offset)?;
                Ok(RawObject {
                    generation,
                    text,
                    value_end: Some(end),
                })
            }
            Some(XrefEntry::Compressed { container }) => {
                let stream = match self.object_stream(container) {
                    Ok(stream) => stream,
                    Err(e) => {
                        if keepable(&e).is_some() {
                            self.broken_object_stream = Some(e.to_string());
                        }
                        return Err(e);
                    }
                };
                let start = *stream.members.get(&number).ok_or_else(|| missing(number))?;
                let end = value_end(&stream.content, start)?;
                self.meter.charge_parsed((end - start) as u64)?;
                Ok(RawObject {
                    generation: 0,
                    text: stream.content[start..end].to_vec(),
                    value_end: None,
                })
            }
            _ => Err(missing(number)),
        }
    }

    /// Object `number`'s generation and text; `None` when it is missing or cannot be read
    /// (which PDF reads as null). Only what ends the whole parse is an error.
    pub fn lenient_object(&mut self, number: u32) -> Result<Option<(u16, Vec<u8>)>, PdfError> {
        match self.raw_object(number) {
            Ok(object) => Ok(Some(object)),
            Err(e) if self.ends_parse(&e) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Whether object `number` exists and is a dictionary that is not a stream's.
    pub fn is_plain_dictionary(&mut self, number: u32) -> Result<bool, PdfError> {
        let object = match self.object(number) {
            Ok(object) => object,
            Err(e) if self.ends_parse(&e) => return Err(e),
            Err(_) => return Ok(false),
        };
        if !object.text.starts_with(b"<<") {
            return Ok(false);
        }
        // Objects in object streams are never streams.
        let Some(end) = object.value_end else {
            return Ok(true);
        };
        let after = self.read_at(end, 64)?;
        let keyword = skip_whitespace(&after, 0);
        Ok(!after[keyword..].starts_with(b"stream"))
    }

    /// The decoded data of stream object `number`; `None` when it is missing, not a stream or
    /// cannot be read. Only what ends the whole parse (I/O, the budget, cancellation) is an error.
    pub fn lenient_stream(&mut self, number: u32) -> Result<Option<Vec<u8>>, PdfError> {
        let object = match self.object(number) {
            Ok(object) => object,
            Err(e) if self.ends_parse(&e) => return Err(e),
            Err(_) => return Ok(None),
        };
        let Some(end) = object.value_end.filter(|_| object.text.starts_with(b"<<")) else {
            return Ok(None);
        };
        match self.stream_data(&object.text, end) {
            Ok(data) => Ok(Some(data)),
            Err(e) if keepable(&e).is_none() => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// `value` itself, or the text of the object it refers to; `None` for a reference to an
    /// object that does not exist (which PDF reads as null) or cannot be read.
    pub fn resolve(&mut self, value: &[u8]) -> Result<Option<Vec<u8>>, PdfError> {
        match parse_reference(value) {
            Some((number, _)) => Ok(self.lenient_object(number)?.map(|(_, text)| text)),
            None => Ok(Some(value.to_vec())),
        }
    }

    /// The value of `key` in the dictionary text `dict`, resolved; `None` when absent.
    pub fn get(&mut self, dict: &[u8], key: &[u8]) -> Result<Option<Vec<u8>>, PdfError> {
        match entry_value(dict, key).ok().flatten() {
            Some(value) => self.resolve(&value),
            None => Ok(None),
        }
    }

    /// Reads the object whose header is at `offset`: its id, its value's text and the offset
    /// just past the value (where a stream's `stream` keyword follows).
    fn object_at(&mut self, offset: u64) -> Result<(ObjectId, Vec<u8>, u64), PdfError> {
        let (id, text, end) =
            self.parse_growing(offset, FIRST_WINDOW, MAX_OBJECT_TEXT, |text| {
                let (number, generation, start) = object_header(text, 0)?;
                let end = value_end(text, start)?;
                Ok(((number, generation), text[start..end].to_vec(), end))
            })?;
        Ok((id, text, offset + end as u64))
    }

    /// [`Self::object_at`] for an object the cross-reference data says is `number`.
    fn numbered_object_at(
        &mut self,
        number: u32,
        offset: u64,
    ) -> Result<(u16, Vec<u8>, u64), PdfError> {
        let ((found, generation), text, end) = self.object_at(offset)?;
        if found != number {
            return Err(PdfError::Damaged(format!(
                "the cross-reference entry of object {number} points at object {found}"
            )));
        }
        Ok((generation, text, end))
    }

    /// The decoded data of the stream whose dictionary `dict` ends at `dict_end`. The data must
    /// end where `/Length` says, at `endstream`: a stream shorter than declared is damaged.
    fn stream_data(&mut self, dict: &[u8], dict_end: u64) -> Result<Vec<u8>, PdfError> {
        let head = self.read_at(dict_end, 64)?;
        let at = skip_whitespace(&head, 0);
        if !head[at..].starts_with(b"stream") {
            return Err(PdfError::Damaged(
                "a stream dictionary is not followed by `stream`".into(),
            ));
        }
        let mut data_at = at + b"stream".len();
        if head.get(data_at) == Some(&b'\r') {
            data_at += 1;
        }
        if head.get(data_at) == Some(&b'\n') {
            data_at += 1;
        }
        let data_start = dict_end + data_at as u64;
        let length = self
            .get(dict, b"Length")?
            .and_then(|l| as_int(&l))
            .and_then(|l| usize::try_from(l).ok())
            .filter(|l| *l <= MAX_STREAM_LENGTH)
            .ok_or_else(|| PdfError::Damaged("a stream has no usable /Length".into()))?;
        let data = self.read_at(data_start, length)?;
        if data.len() != length {
            return Err(PdfError::Damaged(
                "a stream runs past the end of the file (truncated?)".into(),
            ));
        }
        let tail = self.read_at(data_start + length as u64, 64)?;
        let keyword = skip_whitespace(&tail, 0);
        if !tail[keyword..].starts_with(b"endstream") {
            return Err(PdfError::Damaged(
                "a stream does not end at `endstream` where its /Length says (truncated, or \
                 shorter than declared)"
                    .into(),
            ));
        }
        decode(dict, &data, &mut self.meter)
    }

    /// Object stream `container`, decoded and kept while it fits the cache.
    fn object_stream(&mut self, container: u32) -> Result<Rc<ObjectStream>, PdfError> {
        if let Some(stream) = self.object_streams.get(&container) {
            return Ok(Rc::clone(stream));
        }
        let Some(XrefEntry::Normal { offset }) = self.entry(container) else {
            return Err(missing(container));
        };
        let (_, dict, data_at) = self.numbered_object_at(container, offset)?;
        let int = |key: &[u8]| {
            entry_value(&dict, key)
                .ok()
                .flatten()
                .and_then(|v| as_int(&v))
                .and_then(|v| usize::try_from(v).ok())
        };
        let bad = || PdfError::Damaged(format!("object stream {container} has a malformed header"));
        let first = int(b"First").ok_or_else(bad)?;
        let count = int(b"N").ok_or_else(bad)?;
        let content = self.stream_data(&dict, data_at)?;
        let mut members = HashMap::with_capacity(count.min(content.len() / 4));
        let mut pos = 0;
        for _ in 0..count {
            pos = skip_whitespace(&content, pos);
            let (number, next) = unsigned(&content, pos).ok_or_else(bad)?;
            pos = skip_whitespace(&content, next);
            let (relative, next) = unsigned(&content, pos).ok_or_else(bad)?;
            pos = next;
            let start = usize::try_from(relative)
                .ok()
                .and_then(|r| r.checked_add(first))
                .filter(|s| *s < content.len())
                .ok_or_else(bad)?;
            let number = u32::try_from(number).map_err(|_| bad())?;
            members
                .entry(number)
                .or_insert_with(|| skip_whitespace(&content, start));
        }
        self.meter.charge_parsed(pos as u64)?;
        let stream = Rc::new(ObjectStream { content, members });
        self.keep_object_stream(container, Rc::clone(&stream));
        Ok(stream)
    }

    /// Keeps a decoded object stream, dropping the oldest ones past [`OBJECT_STREAM_CACHE`];
    /// one larger than the cache is not kept at all.
    fn keep_object_stream(&mut self, container: u32, stream: Rc<ObjectStream>) {
        let size = stream.content.len();
        if size > OBJECT_STREAM_CACHE {
            return;
        }
        while self.object_stream_bytes + size > OBJECT_STREAM_CACHE {
            let Some(oldest) = self.object_stream_order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.object_streams.remove(&oldest) {
                self.object_stream_bytes -= dropped.content.len();
            }
        }
        self.object_stream_bytes += size;
        self.object_stream_order.push_back(container);
        self.object_streams.insert(container, stream);
    }

    /// Up to `len` bytes from `offset` (fewer at the end of the file), charged to the budget.
    fn read_at(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, PdfError> {
        let bytes = self.read_raw(offset, len)?;
        self.meter.charge_parsed(bytes.len() as u64)?;
        Ok(bytes)
    }

    /// [`Self::read_at`] for a caller that charges the work itself.
    fn read_raw(&mut self, offset: u64, len: usize) -> Result<Vec<u8>, PdfError> {
        let len = usize::try_from(self.len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(len);
        let mut buffer = vec![0; len];
        self.input.seek(SeekFrom::Start(offset))?;
        self.input.read_exact(&mut buffer)?;
        Ok(buffer)
    }
}

/// How a cross-reference stream lays out its rows: `/W` and `/Index` (or `/Size`), read and
/// checked before its data is decoded.
struct RowLayout {
    widths: [usize; 3],
    /// `(first, count)` pairs.
    index: Vec<i64>,
    /// Rows named, in total.
    rows: u64,
}

impl RowLayout {
    fn of(dict: &[u8]) -> Result<Self, PdfError> {
        let damaged = |what: &str| PdfError::Damaged(format!("cross-reference stream: {what}"));
        let widths: Vec<usize> = int_array(dict, b"W")?
            .ok_or_else(|| damaged("no /W"))?
            .into_iter()
            .map(|w| usize::try_from(w).ok().filter(|w| *w <= 8))
            .collect::<Option<_>>()
            .ok_or_else(|| damaged("a /W width out of range"))?;
        let [w_type, w_field2, w_field3] = widths[..] else {
            return Err(damaged("/W does not have three widths"));
        };
        if w_type + w_field2 + w_field3 == 0 {
            return Err(damaged("/W is all zeros"));
        }
        let index = match int_array(dict, b"Index")? {
            Some(index) => index,
            None => {
                let size = entry_value(dict, b"Size")?
                    .and_then(|v| as_int(&v))
                    .ok_or_else(|| damaged("no /Size"))?;
                vec![0, size]
            }
        };
        if index.len() % 2 != 0 {
            return Err(damaged("/Index has an odd length"));
        }
        let mut rows = 0u64;
        for pair in index.chunks_exact(2) {
            let count = u64::try_from(pair[1]).map_err(|_| damaged("/Index out of range"))?;
            rows = rows.saturating_add(count);
        }
        Ok(Self {
            widths: [w_type, w_field2, w_field3],
            index,
            rows,
        })
    }

    fn row_len(&self) -> usize {
        self.widths.iter().sum()
    }
}

/// A cross-reference section's kind and trailer dictionary text.
struct Section {
    kind: XrefKind,
    dict: Vec<u8>,
}

/// A classic section's entries, in the order the table lists them.
type TableEntries = Vec<(u32, XrefEntry)>;

/// A classic section (`xref`, subsections, `trailer <<…>>`): its entries and trailer text.
fn parse_table(text: &[u8]) -> Result<(TableEntries, Vec<u8>), PdfError> {
    let damaged = |what: &str| PdfError::Damaged(format!("cross-reference table: {what}"));
    let mut pos = skip_whitespace(text, b"xref".len());
    let mut entries = Vec::new();
    loop {
        if text[pos..].starts_with(b"trailer") {
            break;
        }
        let (first, next) = unsigned(text, pos).ok_or_else(|| damaged("bad subsection"))?;
        pos = skip_whitespace(text, next);
        let (count, next) = unsigned(text, pos).ok_or_else(|| damaged("bad subsection"))?;
        pos = next;
        // Each entry takes 20 bytes; a count the remaining text cannot hold is a damaged
        // table or a window still too small: either way, stop before allocating for it.
        if count.saturating_mul(18) > (text.len() - pos) as u64 {
            return Err(damaged("a subsection runs past the end of the file"));
        }
        for i in 0..count {
            pos = skip_whitespace(text, pos);
            let (offset, next) = unsigned(text, pos).ok_or_else(|| damaged("bad entry"))?;
            pos = skip_whitespace(text, next);
            let (_generation, next) = unsigned(text, pos).ok_or_else(|| damaged("bad entry"))?;
            pos = skip_whitespace(text, next);
            let in_use = match text.get(pos) {
                Some(b'n') => true,
                Some(b'f') => false,
                _ => return Err(damaged("an entry is neither `n` nor `f`")),
            };
            pos += 1;
            let number = first
                .checked_add(i)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| damaged("an object number out of range"))?;
            let entry = if in_use {
                XrefEntry::Normal { offset }
            } else {
                XrefEntry::Free
            };
            entries.push((number, entry));
        }
        pos = skip_whitespace(text, pos);
    }
    let dict_start = skip_whitespace(text, pos + b"trailer".len());
    let (_, close) = dict_entries(text, dict_start)?;
    Ok((entries, text[dict_start..close + 2].to_vec()))
}

/// The integers of the array under `key`, when it is a direct array of integers.
fn int_array(dict: &[u8], key: &[u8]) -> Result<Option<Vec<i64>>, PdfError> {
    let Some(value) = entry_value(dict, key)? else {
        return Ok(None);
    };
    let items = crate::syntax::array_items(&value)?;
    items
        .into_iter()
        .map(|(s, e)| as_int(&value[s..e]))
        .collect::<Option<Vec<_>>>()
        .map(Some)
        .ok_or_else(|| {
            PdfError::Damaged(format!(
                "/{} is not an array of integers",
                String::from_utf8_lossy(key)
            ))
        })
}

/// A big-endian unsigned number of up to eight bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |acc, b| acc << 8 | u64::from(*b))
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

fn missing(number: u32) -> PdfError {
    PdfError::Damaged(format!("object {number} is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_and_its_trailer_are_parsed() {
        let text = b"xref\n0 2\n0000000000 65535 f\r\n0000000017 00000 n\r\ntrailer\n<</Size 2>>\n";
        let (entries, dict) = parse_table(text).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(entries[1], (1, XrefEntry::Normal { offset: 17 })));
        assert_eq!(dict, b"<</Size 2>>");
    }

    #[test]
    fn a_table_cut_short_is_an_error_not_a_panic() {
        let text = b"xref\n0 2\n0000000000 65535 f\r\n00000000";
        assert!(parse_table(text).is_err());
        assert!(parse_table(b"xref\n0 99999999999\n").is_err());
    }

    /// A reader that counts the bytes read through it.
    struct Counted<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counted<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counted<R> {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    #[test]
    fn an_object_that_cannot_be_read_is_not_read_again() {
        let pdf = signet_testkit::bombs::unclosed_fields_bomb(1, 64 << 10);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let mut input = Counted {
            inner: std::io::Cursor::new(pdf),
            read: std::rc::Rc::clone(&read),
        };
        let mut source = Source::open(&mut input, Cancel::new()).unwrap();
        let first = source.raw_object(100).unwrap_err();
        let after_first = read.get();
        let second = source.raw_object(100).unwrap_err();
        assert_eq!(read.get(), after_first, "the broken object was read twice");
        assert_eq!(first.to_string(), second.to_string());
        assert_eq!(source.lenient_object(100).unwrap(), None);
    }

    #[test]
    fn object_streams_past_the_cache_drop_the_oldest() {
        let pdf = signet_testkit::pdfs::classic_pdf(1);
        let mut input = std::io::Cursor::new(pdf);
        let mut source = Source::open(&mut input, Cancel::new()).unwrap();
        let stream = |size: usize| {
            Rc::new(ObjectStream {
                content: vec![0; size],
                members: HashMap::new(),
            })
        };
        source.keep_object_stream(1, stream(OBJECT_STREAM_CACHE / 2));
        source.keep_object_stream(2, stream(OBJECT_STREAM_CACHE / 2));
        source.keep_object_stream(3, stream(1));
        source.keep_object_stream(4, stream(OBJECT_STREAM_CACHE + 1));
        let mut kept: Vec<u32> = source.object_streams.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, [2, 3]);
        assert_eq!(source.object_stream_bytes, OBJECT_STREAM_CACHE / 2 + 1);
    }

    proptest::proptest! {
        #[test]
        fn packed_entries_unpack_to_themselves(offset in 0u64..1 << 62, container: u32) {
            for entry in [
                XrefEntry::Free,
                XrefEntry::Normal { offset },
                XrefEntry::Compressed { container },
            ] {
                proptest::prop_assert_eq!(XrefEntry::unpack(entry.pack()), entry);
            }
        }
    }

    #[test]
    fn big_endian_fields_are_read() {
        assert_eq!(be(&[0x01, 0x02]), 0x0102);
        assert_eq!(be(&[]), 0);
    }
}
