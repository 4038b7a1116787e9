//! Hostile PDFs for resource tests and fuzz seeds: small uploads that name millions of
//! cross-reference rows, decode to hundreds of megabytes, or hold objects that never end
//! (issue 10), and streams cut short (issue 12). Each is generated in a fraction of a second
//! without ever holding its decoded size in memory, so no large fixture is committed.
//!
//! Every file is otherwise a plausible one-page document (catalog, page tree, page), so a
//! reader gets as far as the expensive part before anything else stops it.

use std::fmt::Write as _;

use flate2::{Compress, Compression, FlushCompress};

/// The issue's first bomb: one cross-reference stream, `/W [1 4 0] /Index [0 5 1000 12582912]`,
/// Flate, about 61 KB: the five real rows are followed by 12,582,912 free ones.
pub fn wide_xref_stream() -> Vec<u8> {
    let mut pdf = Builder::new();
    pdf.page_objects(None);
    let xref_at = pdf.len();
    let mut rows = Vec::new();
    rows.extend_from_slice(&[0, 0, 0, 0, 0]);
    for number in 1..=3 {
        rows.push(1);
        rows.extend_from_slice(&(pdf.offset(number) as u32).to_be_bytes());
    }
    rows.push(1);
    rows.extend_from_slice(&(xref_at as u32).to_be_bytes());
    let rows_named = 12_582_912u64;
    let data = zlib_with_zero_tail(&rows, rows_named * 5);
    pdf.stream_object(
        4,
        &format!(
            "/Type /XRef /W [1 4 0] /Index [0 5 1000 {rows_named}] /Size {} /Root 1 0 R /Filter /FlateDecode",
            1000 + rows_named
        ),
        &data,
    );
    pdf.startxref(xref_at);
    pdf.bytes
}

/// A valid newest cross-reference stream whose `/Prev` chain leads through `sections` hostile
/// streams of width `widths`, each naming `rows` free objects (numbers from 1,000 up, a fresh
/// range per section) in Flate data of zeros: `[1, 0, 0]` with 64 Mi rows is the narrowest
/// row a reader must still iterate; several `[1, 4, 0]` sections multiply the first bomb.
pub fn xref_stream_chain(widths: [u8; 3], rows: u64, sections: usize) -> Vec<u8> {
    let mut pdf = Builder::new();
    pdf.page_objects(None);
    let row_len = widths.iter().map(|w| u64::from(*w)).sum::<u64>();
    let mut prev = None;
    for section in 0..sections {
        let at = pdf.len();
        let first = 1000 + section as u64 * rows;
        let data = zlib_with_zero_tail(&[], rows * row_len);
        let mut dict = format!(
            "/Type /XRef /W [{} {} {}] /Index [{first} {rows}] /Size {} /Filter /FlateDecode",
            widths[0],
            widths[1],
            widths[2],
            first + rows
        );
        if let Some(prev) = prev {
            let _ = write!(dict, " /Prev {prev}");
        }
        pdf.stream_object(10 + section as u32, &dict, &data);
        prev = Some(at);
    }
    let xref_at = pdf.len();
    let mut rows_data = vec![0, 0, 0, 0, 0];
    for number in 1..=3 {
        rows_data.push(1);
        rows_data.extend_from_slice(&(pdf.offset(number) as u32).to_be_bytes());
    }
    rows_data.push(1);
    rows_data.extend_from_slice(&(xref_at as u32).to_be_bytes());
    let mut dict = "/Type /XRef /W [1 4 0] /Index [0 5] /Size 5 /Root 1 0 R".to_owned();
    if let Some(prev) = prev {
        let _ = write!(dict, " /Prev {prev}");
    }
    pdf.stream_object(4, &dict, &rows_data);
    pdf.startxref(xref_at);
    pdf.bytes
}

/// The issue's second bomb: `streams` object streams of `decoded_each` bytes each (one small
/// field dictionary, then NUL white space), every one holding a field the AcroForm lists.
/// Eight of 64 MiB make a file of about 0.5 MB.
pub fn object_stream_bomb(streams: usize, decoded_each: u64) -> Vec<u8> {
    let mut pdf = Builder::new();
    // 1-3: catalog, pages, page; 4: AcroForm; 10+i: object stream i holding field 100+i.
    let fields: Vec<String> = (0..streams).map(|i| format!("{} 0 R", 100 + i)).collect();
    pdf.page_objects(Some("4 0 R"));
    pdf.object(4, format!("<</Fields [{}]>>", fields.join(" ")).as_bytes());
    for i in 0..streams {
        let member = format!("<</FT /Tx /T (field{i})>>");
        let header = format!("{} 0 ", 100 + i);
        let content = [header.as_bytes(), member.as_bytes()].concat();
        let tail = decoded_each.saturating_sub(content.len() as u64);
        let data = zlib_with_zero_tail(&content, tail);
        pdf.stream_object(
            10 + i as u32,
            &format!(
                "/Type /ObjStm /N 1 /First {} /Filter /FlateDecode",
                header.len()
            ),
            &data,
        );
    }
    let xref_at = pdf.len();
    let xref_number = 10 + streams as u32;
    let mut rows = vec![0u8, 0, 0, 0, 0, 0];
    let mut index = vec!["0 5".to_owned()];
    for number in 1..=4 {
        rows.push(1);
        rows.extend_from_slice(&(pdf.offset(number) as u32).to_be_bytes());
        rows.push(0);
    }
    index.push(format!("10 {}", streams + 1));
    for i in 0..streams {
        rows.push(1);
        rows.extend_from_slice(&(pdf.offset(10 + i as u32) as u32).to_be_bytes());
        rows.push(0);
    }
    rows.push(1);
    rows.extend_from_slice(&(xref_at as u32).to_be_bytes());
    rows.push(0);
    index.push(format!("100 {streams}"));
    for i in 0..streams {
        rows.push(2);
        rows.extend_from_slice(&(10 + i as u32).to_be_bytes());
        rows.push(0);
    }
    pdf.stream_object(
        xref_number,
        &format!(
            "/Type /XRef /W [1 4 1] /Index [{}] /Size {} /Root 1 0 R",
            index.join(" "),
            100 + streams
        ),
        &rows,
    );
    pdf.startxref(xref_at);
    pdf.bytes
}

/// The issue's third bomb: `fields` field objects that open `<</T (f` and never close, listed
/// by the AcroForm, then `filler` bytes before the catalog: every field's text runs to the end
/// of the file. 2,000 fields and 4 MiB make about 4.3 MB.
pub fn unclosed_fields_bomb(fields: usize, filler: usize) -> Vec<u8> {
    let mut pdf = Builder::new();
    for i in 0..fields {
        pdf.object(100 + i as u32, b"<</T (f");
    }
    let mut line = vec![b'x'; 79];
    line.push(b'\n');
    while pdf.bytes.len() < filler {
        pdf.bytes.extend_from_slice(&line);
    }
    pdf.page_objects(Some("4 0 R"));
    let refs: Vec<String> = (0..fields).map(|i| format!("{} 0 R", 100 + i)).collect();
    pdf.object(4, format!("<</Fields [{}]>>", refs.join(" ")).as_bytes());
    pdf.classic_xref(&format!("/Root 1 0 R /Size {}", 100 + fields));
    pdf.bytes
}

/// A one-page document whose cross-reference stream's Flate data is cut short (its last block
/// and the checksum are missing) although every row it lists still decodes; with `truncate`
/// false, the same document intact.
pub fn truncated_xref_stream(truncate: bool) -> Vec<u8> {
    let mut pdf = Builder::new();
    pdf.page_objects(None);
    let xref_at = pdf.len();
    let mut rows = vec![0u8, 0, 0, 0, 0];
    for number in 1..=3 {
        rows.push(1);
        rows.extend_from_slice(&(pdf.offset(number) as u32).to_be_bytes());
    }
    rows.push(1);
    rows.extend_from_slice(&(xref_at as u32).to_be_bytes());
    let data = zlib_maybe_cut(&rows, truncate);
    pdf.stream_object(
        4,
        "/Type /XRef /W [1 4 0] /Index [0 5] /Size 5 /Root 1 0 R /Filter /FlateDecode",
        &data,
    );
    pdf.startxref(xref_at);
    pdf.bytes
}

/// A one-page document whose AcroForm lives in an object stream whose Flate data is cut short
/// (its object still decodes); with `truncate` false, the same document intact.
pub fn truncated_object_stream(truncate: bool) -> Vec<u8> {
    let mut pdf = Builder::new();
    pdf.page_objects(Some("5 0 R"));
    let data = zlib_maybe_cut(b"5 0 <</Fields []>>", truncate);
    pdf.stream_object(4, "/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", &data);
    let xref_at = pdf.len();
    let mut rows = vec![0u8, 0, 0, 0, 0, 0];
    for number in 1..=4 {
        rows.push(1);
        rows.extend_from_slice(&(pdf.offset(number) as u32).to_be_bytes());
        rows.push(0);
    }
    rows.extend_from_slice(&[2, 0, 0, 0, 4, 0]);
    rows.push(1);
    rows.extend_from_slice(&(xref_at as u32).to_be_bytes());
    rows.push(0);
    pdf.stream_object(
        6,
        "/Type /XRef /W [1 4 1] /Index [0 7] /Size 7 /Root 1 0 R",
        &rows,
    );
    pdf.startxref(xref_at);
    pdf.bytes
}

/// `data` as a zlib stream; when `truncate`, cut after the block that holds all of `data`
/// (flushed to a byte boundary), before the final block and the checksum: every byte decodes,
/// but the stream never ends.
fn zlib_maybe_cut(data: &[u8], truncate: bool) -> Vec<u8> {
    let mut compress = Compress::new(Compression::default(), false);
    let mut out = vec![0x78, 0x9C];
    let mut deflate = Vec::with_capacity(data.len() + 1024);
    compress
        .compress_vec(data, &mut deflate, FlushCompress::Sync)
        .expect("deflating in memory");
    if !truncate {
        compress
            .compress_vec(&[], &mut deflate, FlushCompress::Finish)
            .expect("deflating in memory");
    }
    out.extend_from_slice(&deflate);
    if !truncate {
        out.extend_from_slice(&adler32_with_zeros(data, 0).to_be_bytes());
    }
    out
}

/// A zlib stream of `prefix` followed by `zeros` zero bytes, made without compressing (or
/// holding) the zeros one by one: once the window is all zeros, the deflate block for 1 MiB of
/// zeros is the same every time, so it is compressed twice and then repeated.
pub fn zlib_with_zero_tail(prefix: &[u8], zeros: u64) -> Vec<u8> {
    const UNIT: usize = 1 << 20;
    let unit = vec![0u8; UNIT];
    let mut compress = Compress::new(Compression::best(), false);
    let mut out = vec![0x78, 0xDA];
    let feed = |compress: &mut Compress, input: &[u8], flush: FlushCompress| -> Vec<u8> {
        let mut produced = Vec::with_capacity(input.len() / 64 + 1024);
        let mut consumed = 0;
        loop {
            if produced.capacity() - produced.len() < 1024 {
                produced.reserve(64 * 1024);
            }
            let before_in = compress.total_in();
            let status = compress
                .compress_vec(&input[consumed..], &mut produced, flush)
                .expect("deflating in memory");
            consumed += (compress.total_in() - before_in) as usize;
            let done = consumed == input.len() && produced.capacity() > produced.len();
            if status == flate2::Status::StreamEnd || (done && flush != FlushCompress::Finish) {
                return produced;
            }
        }
    };
    out.extend(feed(&mut compress, prefix, FlushCompress::Sync));
    let mut left = zeros;
    // Until two consecutive units compress alike, compress them for real.
    let mut previous: Option<Vec<u8>> = None;
    let mut repeated: Option<Vec<u8>> = None;
    while left >= UNIT as u64 {
        match &repeated {
            Some(block) => out.extend_from_slice(block),
            None => {
                let block = feed(&mut compress, &unit, FlushCompress::Sync);
                out.extend_from_slice(&block);
                if previous.as_ref() == Some(&block) {
                    repeated = Some(block);
                } else {
                    previous = Some(block);
                }
            }
        }
        left -= UNIT as u64;
    }
    let rest = usize::try_from(left).expect("less than a unit");
    out.extend(feed(&mut compress, &unit[..rest], FlushCompress::Finish));
    out.extend_from_slice(&adler32_with_zeros(prefix, zeros).to_be_bytes());
    out
}

/// Adler-32 of `prefix` followed by `zeros` zero bytes: a zero leaves `a` as it is and adds `a`
/// to `b`.
fn adler32_with_zeros(prefix: &[u8], zeros: u64) -> u32 {
    const MOD: u64 = 65_521;
    let (mut a, mut b) = (1u64, 0u64);
    for byte in prefix {
        a = (a + u64::from(*byte)) % MOD;
        b = (b + a) % MOD;
    }
    b = (b + a * (zeros % MOD)) % MOD;
    (b << 16 | a) as u32
}

/// A PDF written object by object, remembering where each starts.
struct Builder {
    bytes: Vec<u8>,
    offsets: std::collections::BTreeMap<u32, usize>,
}

impl Builder {
    fn new() -> Self {
        Self {
            bytes: b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec(),
            offsets: Default::default(),
        }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn offset(&self, number: u32) -> usize {
        self.offsets[&number]
    }

    fn object(&mut self, number: u32, body: &[u8]) {
        self.offsets.insert(number, self.bytes.len());
        self.bytes
            .extend_from_slice(format!("{number} 0 obj\n").as_bytes());
        self.bytes.extend_from_slice(body);
        self.bytes.extend_from_slice(b"\nendobj\n");
    }

    fn stream_object(&mut self, number: u32, dict: &str, data: &[u8]) {
        let mut body = format!("<<{dict} /Length {}>>\nstream\n", data.len()).into_bytes();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\nendstream");
        self.object(number, &body);
    }

    /// Objects 1-3: the catalog (with `/AcroForm acroform` when given), the page tree, a page.
    fn page_objects(&mut self, acroform: Option<&str>) {
        let acroform = acroform.map_or(String::new(), |a| format!(" /AcroForm {a}"));
        self.object(
            1,
            format!("<</Type /Catalog /Pages 2 0 R{acroform}>>").as_bytes(),
        );
        self.object(2, b"<</Type /Pages /Kids [3 0 R] /Count 1>>");
        self.object(3, b"<</Type /Page /Parent 2 0 R /MediaBox [0 0 612 792]>>");
    }

    /// A classic table for every object written, and its trailer.
    fn classic_xref(&mut self, trailer: &str) {
        let xref_at = self.bytes.len();
        let size = self.offsets.keys().max().map_or(1, |n| n + 1);
        let mut table = format!("xref\n0 {size}\n0000000000 65535 f\r\n");
        for number in 1..size {
            match self.offsets.get(&number) {
                Some(offset) => {
                    let _ = write!(table, "{offset:010} 00000 n\r\n");
                }
                None => table.push_str("0000000000 65535 f\r\n"),
            }
        }
        let _ = write!(table, "trailer\n<<{trailer}>>\n");
        self.bytes.extend_from_slice(table.as_bytes());
        self.startxref(xref_at);
    }

    fn startxref(&mut self, at: usize) {
        self.bytes
            .extend_from_slice(format!("startxref\n{at}\n%%EOF\n").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(data: &[u8]) -> u64 {
        let mut decoder = flate2::read::ZlibDecoder::new(data);
        std::io::copy(&mut decoder, &mut std::io::sink()).expect("a complete zlib stream")
    }

    #[test]
    fn a_zero_tail_decodes_to_its_full_length_with_a_valid_checksum() {
        let data = zlib_with_zero_tail(b"12 0 <<>>", 3 * (1 << 20) + 17);
        assert!(data.len() < 16 * 1024, "{}", data.len());
        assert_eq!(inflate(&data), 9 + 3 * (1 << 20) + 17);
        let mut head = [0u8; 9];
        flate2::read::ZlibDecoder::new(&data[..])
            .read_exact(&mut head)
            .expect("a prefix");
        assert_eq!(&head, b"12 0 <<>>");
    }

    #[test]
    fn a_cut_stream_decodes_whole_but_never_ends() {
        let data = b"5 0 <</Fields []>>";
        let mut inflater = flate2::Decompress::new(true);
        let mut out = Vec::with_capacity(64);
        let status = inflater
            .decompress_vec(
                &zlib_maybe_cut(data, true),
                &mut out,
                flate2::FlushDecompress::None,
            )
            .unwrap();
        assert_eq!(out, data);
        assert_ne!(status, flate2::Status::StreamEnd);
        let intact = zlib_maybe_cut(data, false);
        let mut decoder = flate2::read::ZlibDecoder::new(&intact[..]);
        let mut whole = Vec::new();
        decoder.read_to_end(&mut whole).unwrap();
        assert_eq!(whole, data);
    }

    #[test]
    fn the_bombs_are_as_small_as_the_issue_says() {
        assert!(wide_xref_stream().len() < 100_000);
        assert!(object_stream_bomb(8, 64 << 20).len() < 700_000);
        let fields = unclosed_fields_bomb(2000, 4 << 20);
        assert!(fields.len() > 4 << 20 && fields.len() < 4_600_000);
    }
}
