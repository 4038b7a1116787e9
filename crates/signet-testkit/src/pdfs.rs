//! Hand-built PDFs with a classic cross-reference table, shared by the tests and the benches so
//! neither needs Python to get a document.

/// A small valid PDF with `pages` pages of text.
pub fn classic_pdf(pages: usize) -> Vec<u8> {
    classic_pdf_with_image(pages, 0)
}

/// [`classic_pdf`] whose first page also shows an uncompressed grey image of about
/// `image_bytes` bytes of noise: a large file that is cheap to make.
pub fn classic_pdf_with_image(pages: usize, image_bytes: usize) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = Vec::new();
    // 1: catalog, 2: pages, 3: font, then page/content pairs, then the image.
    let image_number = 4 + 2 * pages;
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} /MediaBox [0 0 595.303937007874 841.889763779528] >>",
            kids.join(" "),
            pages
        )
        .into_bytes(),
    );
    objects.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec());
    for i in 0..pages {
        let xobjects = if image_bytes > 0 && i == 0 {
            format!(" /XObject << /Im1 {image_number} 0 R >>")
        } else {
            String::new()
        };
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 3 0 R >>{xobjects} >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        let mut text = format!(
            "BT /F1 24 Tf 72 720 Td (Page {} of a Signet test) Tj ET",
            i + 1
        );
        if image_bytes > 0 && i == 0 {
            text.push_str(" q 400 0 0 400 72 200 cm /Im1 Do Q");
        }
        objects
            .push(format!("<< /Length {} >>\nstream\n{text}\nendstream", text.len()).into_bytes());
    }
    if image_bytes > 0 {
        let width = 4096;
        let height = image_bytes.div_ceil(width);
        let mut data = Vec::with_capacity(width * height);
        let mut state: u32 = 0x9E37_79B9;
        for _ in 0..width * height {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            data.push((state >> 24) as u8);
        }
        let mut image = format!(
            "<< /Type /XObject /Subtype /Image /Width {width} /Height {height} /ColorSpace /DeviceGray /BitsPerComponent 8 /Length {} >>\nstream\n",
            data.len()
        )
        .into_bytes();
        image.extend_from_slice(&data);
        image.extend_from_slice(b"\nendstream");
        objects.push(image);
    }
    let mut pdf = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(object);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f\r\n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n\r\n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}
