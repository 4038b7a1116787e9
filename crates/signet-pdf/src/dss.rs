//! Long-term validation data: an incremental update that adds (or extends) the catalog's
//! Document Security Store, PAdES B-LT (ETSI EN 319 142-1 §5.4.2, ISO 32000-2 §12.8.4.3).
//!
//! The `/DSS` dictionary lists certificates, OCSP responses and CRLs as streams (`/Certs`,
//! `/OCSPs`, `/CRLs`), and `/VRI` maps each signature — by the upper-case hex SHA-1 of its
//! `/Contents` value bytes, padding included — to the entries that validate it. The update holds
//! only new streams, new VRI entries and new versions of the DSS (or, when the file has none
//! yet, of the catalog to point at it): what pyHanko's difference analysis accepts after
//! signatures, so every earlier signature stays valid. Existing VRI entries are kept byte for
//! byte; data already in the DSS is not written again.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};

use sha1::{Digest, Sha1};
use time::OffsetDateTime;

use crate::embed::copy_through;
use crate::prepare::pdf_date;
use crate::source::Source;
use crate::syntax::{array_items, dict_set, entry_value, parse_reference};
use crate::update::{write_object, write_stream, write_tail, Offsets};
use crate::{Cancel, PdfError};

/// DER objects that validate certificates: the certificates themselves (chains up to the root),
/// OCSP responses (full `OCSPResponse`s) and CRLs.
///
/// Put in both OCSP responses and the issuing CA's CRL: pyHanko's `adesverify` (0.2x), judging
/// a B-LT signature at the current time with fetching allowed, ignores embedded OCSP responses
/// for a certificate whose AIA names a responder and tries to fetch instead, so offline it only
/// finds the CRL; behind a document timestamp (B-LTA) it uses either. Revocation data counts as
/// fresh for as long as its own `nextUpdate − thisUpdate` after `thisUpdate`, so that window
/// bounds how long an offline validator can call the newest timestamp's chain valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationData {
    /// DER certificates.
    pub certificates: Vec<Vec<u8>>,
    /// DER `OCSPResponse`s.
    pub ocsp_responses: Vec<Vec<u8>>,
    /// DER CRLs.
    pub crls: Vec<Vec<u8>>,
}

impl ValidationData {
    fn is_empty(&self) -> bool {
        self.certificates.is_empty() && self.ocsp_responses.is_empty() && self.crls.is_empty()
    }
}

/// The validation data of one signature (or document timestamp), for its `/VRI` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VriEntry {
    /// The signature's `/Contents` value bytes, zero padding included: what the VRI key hashes
    /// (see [`signature_contents`](crate::signature_contents) and [`vri_key`]).
    pub signature_contents: Vec<u8>,
    /// What validates this signature: its signer's chain and revocation data, and those of the
    /// timestamps in it.
    pub data: ValidationData,
    /// The `/TU` entry (when the data was gathered), if wanted.
    pub time: Option<OffsetDateTime>,
}

/// What [`append_dss`] adds.
#[derive(Debug, Clone, Default)]
pub struct DssUpdate {
    /// One entry per signature the data is for. An entry whose key the `/VRI` already holds is
    /// left as it was (PAdES validators compare existing entries for equality); its data still
    /// goes into the DSS arrays.
    pub entries: Vec<VriEntry>,
    /// Data for the DSS arrays that belongs to no particular signature.
    pub unassociated: ValidationData,
    /// The changing half of the trailer's `/ID` for this update; `None` keeps the file's.
    pub update_id: Option<[u8; 16]>,
    /// Raised by the caller to stop the work.
    pub cancel: Cancel,
}

/// What [`append_dss`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DssAppended {
    /// Whether an update was appended; `false` when the DSS already held everything (the output
    /// is then a copy of the input).
    pub appended: bool,
    /// Streams (certificates, responses, CRLs) the update added.
    pub new_streams: usize,
    /// Length of the output.
    pub output_len: u64,
}

/// The `/VRI` key of a signature: the upper-case hex SHA-1 of its `/Contents` value bytes.
pub fn vri_key(signature_contents: &[u8]) -> String {
    hex::encode_upper(Sha1::digest(signature_contents))
}

/// Reads a signed PDF from `input` and writes it to `output` followed by an update that adds
/// `update`'s data to the Document Security Store. The output starts with the input unchanged.
pub fn append_dss<R: Read + Seek, W: Write>(
    mut input: R,
    mut output: W,
    update: &DssUpdate,
) -> Result<DssAppended, PdfError> {
    let planned = plan(&mut input, update)?;
    input.seek(SeekFrom::Start(0))?;
    copy_through(&mut input, &mut output, planned.base, &update.cancel)?;
    output.write_all(&planned.bytes)?;
    output.flush()?;
    Ok(planned.result())
}

/// Like [`append_dss`], but appends the update to `file` itself. Nothing is written unless the
/// update could be built.
pub fn append_dss_appending<F: Read + Write + Seek>(
    file: &mut F,
    update: &DssUpdate,
) -> Result<DssAppended, PdfError> {
    let planned = plan(&mut *file, update)?;
    file.seek(SeekFrom::Start(planned.base))?;
    file.write_all(&planned.bytes)?;
    file.flush()?;
    Ok(planned.result())
}

/// The update's bytes and the length of the file they follow.
struct Planned {
    base: u64,
    bytes: Vec<u8>,
    new_streams: usize,
}

impl Planned {
    fn result(&self) -> DssAppended {
        DssAppended {
            appended: !self.bytes.is_empty(),
            new_streams: self.new_streams,
            output_len: self.base + self.bytes.len() as u64,
        }
    }
}

/// One of the DSS arrays: its items as they were, then the new ones; the data already listed.
struct StreamArray {
    key: &'static [u8],
    items: Vec<Vec<u8>>,
    seen: HashMap<Vec<u8>, Vec<u8>>,
    grew: bool,
}

/// A dictionary that is either its own object or written where it is used.
struct Dict {
    object: Option<(u32, u16)>,
    text: Vec<u8>,
}

fn plan<R: Read + Seek>(input: &mut R, update: &DssUpdate) -> Result<Planned, PdfError> {
    let mut source = Source::open(input, update.cancel.clone())?;
    let catalog_id = source
        .trailer
        .root
        .as_deref()
        .and_then(parse_reference)
        .ok_or_else(|| PdfError::Damaged("the trailer has no /Root".into()))?;
    let (catalog_generation, catalog) = match source.lenient_object(catalog_id.0)? {
        Some((generation, text)) if text.starts_with(b"<<") => (generation, text),
        _ => return Err(PdfError::Damaged("the catalog is not a dictionary".into())),
    };

    let mut dss = existing_dict(&mut source, entry_value(&catalog, b"DSS")?)?;
    let mut arrays = [
        existing_array(&mut source, &dss.text, b"Certs")?,
        existing_array(&mut source, &dss.text, b"OCSPs")?,
        existing_array(&mut source, &dss.text, b"CRLs")?,
    ];
    let mut vri = existing_dict(&mut source, entry_value(&dss.text, b"VRI")?)?;

    let mut next = source.next_free_number.max(1);
    let mut allocate = || {
        let number = next;
        next += 1;
        u32::try_from(number).map_err(|_| PdfError::Unsupported("too many objects".into()))
    };
    let mut new_streams: Vec<(u32, &[u8])> = Vec::new();

    let mut vri_grew = false;
    for entry in &update.entries {
        let [certs, ocsps, crls] = &mut arrays;
        let cert_refs = add(
            certs,
            &entry.data.certificates,
            &mut new_streams,
            &mut allocate,
        )?;
        let ocsp_refs = add(
            ocsps,
            &entry.data.ocsp_responses,
            &mut new_streams,
            &mut allocate,
        )?;
        let crl_refs = add(crls, &entry.data.crls, &mut new_streams, &mut allocate)?;
        let key = vri_key(&entry.signature_contents);
        if entry_value(&vri.text, key.as_bytes())?.is_some() {
            continue;
        }
        let mut value = b"<<".to_vec();
        for (name, refs) in [
            (b"Cert".as_slice(), &cert_refs),
            (b"OCSP", &ocsp_refs),
            (b"CRL", &crl_refs),
        ] {
            if !refs.is_empty() {
                value.extend_from_slice(b" /");
                value.extend_from_slice(name);
                value.extend_from_slice(b" [");
                value.extend_from_slice(&refs.join(&b' '));
                value.push(b']');
            }
        }
        if let Some(time) = entry.time {
            let time = time.to_offset(time::UtcOffset::UTC);
            value.extend_from_slice(format!(" /TU ({})", pdf_date(time)).as_bytes());
        }
        value.extend_from_slice(b">>");
        vri.text = dict_set(&vri.text, key.as_bytes(), &value)?;
        vri_grew = true;
    }
    if !update.unassociated.is_empty() {
        let data = &update.unassociated;
        let [certs, ocsps, crls] = &mut arrays;
        add(certs, &data.certificates, &mut new_streams, &mut allocate)?;
        add(ocsps, &data.ocsp_responses, &mut new_streams, &mut allocate)?;
        add(crls, &data.crls, &mut new_streams, &mut allocate)?;
    }
    let (dss_id, dss_is_new) = match dss.object {
        Some(id) => (id, false),
        None => ((allocate()?, 0), true),
    };

    let base = source.len;
    if new_streams.is_empty() && !vri_grew {
        return Ok(Planned {
            base,
            bytes: Vec::new(),
            new_streams: 0,
        });
    }

    for array in arrays.iter().filter(|a| a.grew) {
        let value = [b"[".as_slice(), &array.items.join(&b' '), b"]"].concat();
        dss.text = dict_set(&dss.text, array.key, &value)?;
    }
    let mut out = Vec::new();
    if !source.ends_with_newline {
        out.push(b'\n');
    }
    let mut offsets: Offsets = Vec::new();
    for (number, data) in &new_streams {
        update.cancel.check()?;
        write_stream(&mut out, &mut offsets, base, *number, data);
    }
    if vri_grew {
        match vri.object {
            Some((number, generation)) => {
                write_object(&mut out, &mut offsets, base, number, generation, &vri.text);
            }
            None => dss.text = dict_set(&dss.text, b"VRI", &vri.text)?,
        }
    }
    write_object(&mut out, &mut offsets, base, dss_id.0, dss_id.1, &dss.text);
    if dss_is_new {
        let catalog = dict_set(&catalog, b"DSS", format!("{} 0 R", dss_id.0).as_bytes())?;
        write_object(
            &mut out,
            &mut offsets,
            base,
            catalog_id.0,
            catalog_generation,
            &catalog,
        );
    }
    let root = format!("{} {} R", catalog_id.0, catalog_id.1).into_bytes();
    write_tail(
        &mut out,
        &mut offsets,
        base,
        &source.trailer,
        &root,
        next,
        update.update_id.as_ref(),
    )?;
    Ok(Planned {
        base,
        bytes: out,
        new_streams: new_streams.len(),
    })
}

/// The references of `blobs` in `array`, adding a stream (numbered by `allocate`) for each that
/// it does not hold yet.
fn add<'d>(
    array: &mut StreamArray,
    blobs: &'d [Vec<u8>],
    new_streams: &mut Vec<(u32, &'d [u8])>,
    allocate: &mut impl FnMut() -> Result<u32, PdfError>,
) -> Result<Vec<Vec<u8>>, PdfError> {
    let mut refs: Vec<Vec<u8>> = Vec::new();
    for blob in blobs {
        let reference = match array.seen.get(blob) {
            Some(reference) => reference.clone(),
            None => {
                let number = allocate()?;
                let reference = format!("{number} 0 R").into_bytes();
                array.seen.insert(blob.clone(), reference.clone());
                array.items.push(reference.clone());
                array.grew = true;
                new_streams.push((number, blob));
                reference
            }
        };
        if !refs.contains(&reference) {
            refs.push(reference);
        }
    }
    Ok(refs)
}

/// The dictionary `value` is or refers to: its own object when it is an indirect dictionary,
/// else its text (empty when absent or not a dictionary).
fn existing_dict<R: Read + Seek>(
    source: &mut Source<'_, R>,
    value: Option<Vec<u8>>,
) -> Result<Dict, PdfError> {
    let empty = || Dict {
        object: None,
        text: b"<<>>".to_vec(),
    };
    let Some(value) = value else {
        return Ok(empty());
    };
    if let Some((number, _)) = parse_reference(&value) {
        if source.is_plain_dictionary(number)? {
            let (generation, text) = source.raw_object(number)?;
            return Ok(Dict {
                object: Some((number, generation)),
                text,
            });
        }
        return Ok(empty());
    }
    Ok(if value.starts_with(b"<<") {
        Dict {
            object: None,
            text: value,
        }
    } else {
        empty()
    })
}

/// The array under `key` in the DSS text `dss`, with the data of each stream it lists (so the
/// same certificate or response is not added twice).
fn existing_array<R: Read + Seek>(
    source: &mut Source<'_, R>,
    dss: &[u8],
    key: &'static [u8],
) -> Result<StreamArray, PdfError> {
    let mut array = StreamArray {
        key,
        items: Vec::new(),
        seen: HashMap::new(),
        grew: false,
    };
    let Some(text) = source.get(dss, key)?.filter(|t| t.starts_with(b"[")) else {
        return Ok(array);
    };
    for (start, end) in array_items(&text)? {
        let item = text[start..end].to_vec();
        if let Some((number, _)) = parse_reference(&item) {
            if let Some(data) = source.lenient_stream(number)? {
                array.seen.entry(data).or_insert_with(|| item.clone());
            }
        }
        array.items.push(item);
    }
    Ok(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vri_key_is_the_upper_case_sha1_of_the_contents() {
        assert_eq!(vri_key(b"abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }
}
