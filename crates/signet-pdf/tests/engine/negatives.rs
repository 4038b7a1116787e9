//! What must fail does fail: tampering is detected by the validators, and inputs the engine
//! cannot sign safely are refused with a typed error that says why.

use std::fs;
use std::io::Cursor;

use proptest::prelude::*;
use signet_pdf::PdfError;

use crate::support::*;

/// A freshly signed two-page classic PDF in its own directory.
fn signed_classic(name: &str) -> (std::path::PathBuf, signet_pdf::Prepared) {
    let dir = scratch_dir(name);
    let input = dir.join("in.pdf");
    let output = dir.join("signed.pdf");
    fs::write(&input, classic_pdf(2)).unwrap();
    let (prepared, _) = sign_file(&input, &output, &pki().p256);
    (output, prepared)
}

#[test]
fn a_flipped_byte_in_the_signed_range_is_detected_by_pyhanko_and_pdfsig() {
    let (path, prepared) = signed_classic("neg_flip");
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"Page 1").unwrap() + 5;
    assert!((at as u64) < prepared.byte_range.placeholder_offset());
    bytes[at] = b'7';
    fs::write(&path, &bytes).unwrap();

    let report = pyhanko_validate(&path, &[]);
    assert!(
        !report.contains("INTACT"),
        "pyHanko missed the change:\n{report}"
    );
    assert!(report.contains("INVALID"), "{report}");
    let pdfsig = run_ok("pdfsig", os_args![path.to_str().unwrap()]);
    assert!(pdfsig.contains("Digest Mismatch"), "{pdfsig}");
    assert!(!pdfsig.contains("Signature is Valid."), "{pdfsig}");
}

#[test]
fn a_forged_later_revision_that_changes_page_content_is_not_acceptable_to_pyhanko() {
    let (path, _) = signed_classic("neg_forge");
    let forged = path.with_file_name("forged.pdf");
    signet_testkit::forge_later_revision(&path, &forged);

    let report = pyhanko_validate(&forged, &[]);
    assert!(report.contains("ILLEGAL_MODIFICATIONS"), "{report}");
    assert!(!report.contains("ACCEPTABLE_MODIFICATIONS"), "{report}");
    assert!(!report.contains("UNTOUCHED"), "{report}");
    let pdfsig = run_ok("pdfsig", os_args![forged.to_str().unwrap()]);
    assert!(!pdfsig.contains("Total document signed"), "{pdfsig}");
}

#[test]
fn an_encrypted_pdf_is_refused() {
    let dir = scratch_dir("neg_encrypted");
    let plain = dir.join("plain.pdf");
    fs::write(&plain, classic_pdf(1)).unwrap();
    for (name, user) in [("with-password.pdf", "u"), ("empty-user-password.pdf", "")] {
        let encrypted = dir.join(name);
        run_ok(
            "qpdf",
            os_args![
                "--encrypt",
                user,
                "owner",
                "256",
                "--",
                plain.to_str().unwrap(),
                encrypted.to_str().unwrap()
            ],
        );
        let err = prepare_bytes(&fs::read(&encrypted).unwrap()).unwrap_err();
        assert!(matches!(err, PdfError::Encrypted), "{name}: {err:?}");
        assert!(err.to_string().contains("encrypted"));
    }
}

#[test]
fn a_truncated_pdf_is_refused() {
    let pdf = classic_pdf(2);
    for cut in [pdf.len() / 2, pdf.len() - 10, 20] {
        let err = prepare_bytes(&pdf[..cut]).unwrap_err();
        assert!(
            matches!(err, PdfError::Damaged(_) | PdfError::Unparseable(_)),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn png_bytes_are_not_a_pdf() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    let err = prepare_bytes(png).unwrap_err();
    assert!(matches!(err, PdfError::NotPdf(_)), "{err:?}");
    assert!(err.to_string().contains("%PDF-"));
}

#[test]
fn a_pdf_without_pages_is_refused() {
    let pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\nxref\n0 3\n0000000000 65535 f\r\n0000000009 00000 n\r\n0000000058 00000 n\r\ntrailer\n<< /Size 3 /Root 1 0 R >>\nstartxref\n110\n%%EOF\n";
    let err = prepare_bytes(pdf).unwrap_err();
    assert!(matches!(err, PdfError::Unsupported(_)), "{err:?}");
}

#[test]
fn a_cms_larger_than_the_placeholder_is_refused_and_the_file_left_as_it_was() {
    let mut options = options();
    options.placeholder_capacity = 64;
    let mut out = Vec::new();
    let prepared = signet_pdf::prepare(Cursor::new(classic_pdf(1)), &mut out, &options).unwrap();
    let before = out.clone();
    let mut file = Cursor::new(out);
    let err = signet_pdf::embed(&mut file, &prepared.byte_range, &[0x30; 65]).unwrap_err();
    assert!(
        matches!(
            err,
            PdfError::PlaceholderTooSmall {
                needed: 65,
                capacity: 64
            }
        ),
        "{err:?}"
    );
    assert_eq!(file.into_inner(), before);
}

#[test]
fn a_placeholder_is_filled_only_once() {
    let (_, prepared) = prepare_bytes(&classic_pdf(1)).unwrap();
    let (out, _) = prepare_bytes(&classic_pdf(1)).unwrap();
    let mut file = Cursor::new(out);
    signet_pdf::embed(&mut file, &prepared.byte_range, &[0x30, 0x00]).unwrap();
    let err = signet_pdf::embed(&mut file, &prepared.byte_range, &[0x30, 0x00]).unwrap_err();
    assert!(matches!(err, PdfError::PlaceholderMismatch(_)), "{err:?}");
}

#[test]
fn a_cleared_placeholder_is_exactly_the_prepared_one_and_can_be_filled_again() {
    let (out, prepared) = prepare_bytes(&classic_pdf(1)).unwrap();
    let mut file = Cursor::new(out.clone());
    assert!(signet_pdf::placeholder_is_empty(&mut file, &prepared.byte_range).unwrap());
    signet_pdf::embed(
        &mut file,
        &prepared.byte_range,
        &[0x30, 0x03, 0x02, 0x01, 0x07],
    )
    .unwrap();
    assert!(!signet_pdf::placeholder_is_empty(&mut file, &prepared.byte_range).unwrap());

    signet_pdf::clear_placeholder(&mut file, &prepared.byte_range).unwrap();
    assert_eq!(file.get_ref(), &out);
    signet_pdf::embed(&mut file, &prepared.byte_range, &[0x30, 0x00]).unwrap();
    assert_eq!(
        signet_pdf::byte_range_digest(&mut file, &prepared.byte_range).unwrap(),
        prepared.digest
    );
}

#[test]
fn a_byte_range_from_another_file_is_refused() {
    let (_, prepared) = prepare_bytes(&classic_pdf(1)).unwrap();
    let (other, _) = prepare_bytes(&classic_pdf(3)).unwrap();
    let err = signet_pdf::embed(&mut Cursor::new(other), &prepared.byte_range, &[0x30, 0x00])
        .unwrap_err();
    assert!(matches!(err, PdfError::PlaceholderMismatch(_)), "{err:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_prepare(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = prepare_bytes(&bytes);
        let mut with_header = b"%PDF-1.7\n".to_vec();
        with_header.extend_from_slice(&bytes);
        let _ = prepare_bytes(&with_header);
    }

    #[test]
    fn a_mutated_pdf_never_panics_prepare(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut pdf = classic_pdf(2);
        for (at, byte) in edits {
            let i = at.index(pdf.len());
            pdf[i] = byte;
        }
        let _ = prepare_bytes(&pdf);
        let keep = cut.index(pdf.len());
        let _ = prepare_bytes(&pdf[..keep]);
    }
}

proptest! {
    #[test]
    fn a_nonsense_byte_range_is_refused_without_panicking(range in any::<[u64; 4]>()) {
        let (out, _) = prepare_bytes(&classic_pdf(1)).unwrap();
        let mut file = Cursor::new(out);
        let _ = signet_pdf::embed(&mut file, &signet_pdf::ByteRange(range), &[0x30, 0x00]);
        let _ = signet_pdf::byte_range_digest(&mut file, &signet_pdf::ByteRange(range));
    }
}

#[test]
fn a_wrong_cross_reference_offset_is_refused_with_a_reason() {
    let pdf = classic_pdf(2);
    let table = pdf.windows(5).rposition(|w| w == b"\nxref").unwrap() + 1;
    // After `xref` and the subsection line, object 2's entry is the third 20-byte row; point it
    // one byte too far.
    let rows = table + 5 + pdf[table + 5..].iter().position(|b| *b == b'\n').unwrap() + 1;
    let row = rows + 2 * 20;
    let offset: u64 = std::str::from_utf8(&pdf[row..row + 10])
        .unwrap()
        .parse()
        .unwrap();
    let mut damaged = pdf.clone();
    damaged[row..row + 10].copy_from_slice(format!("{:010}", offset + 1).as_bytes());

    let err = prepare_bytes(&damaged).unwrap_err();

    assert!(matches!(err, PdfError::Damaged(_)), "{err:?}");
    assert!(err.to_string().contains("offset of object 2"), "{err}");
}
