//! Signing the basic way, end to end, with a P-256 and an RSA-2048 device key.

use std::fs;

use crate::support::*;

#[test]
fn a_classic_pdf_signed_with_a_p256_device_key_validates_everywhere() {
    let dir = scratch_dir("classic_p256");
    let input = dir.join("in.pdf");
    let output = dir.join("signed.pdf");
    fs::write(&input, classic_pdf(2)).unwrap();

    let (prepared, cms_der) = sign_file(&input, &output, &pki().p256);

    assert_eq!(prepared.field_name, "Signature1");
    assert_valid_everywhere(&output, 1, &prepared, &cms_der);
}

#[test]
fn a_classic_pdf_signed_with_an_rsa_device_key_validates_everywhere() {
    let dir = scratch_dir("classic_rsa");
    let input = dir.join("in.pdf");
    let output = dir.join("signed.pdf");
    fs::write(&input, classic_pdf(1)).unwrap();

    let (prepared, cms_der) = sign_file(&input, &output, &pki().rsa);

    assert_valid_everywhere(&output, 1, &prepared, &cms_der);
}

#[test]
fn the_original_bytes_are_an_untouched_prefix_of_the_output() {
    let original = classic_pdf(1);
    let (out, prepared) = prepare_bytes(&original).unwrap();
    assert!(out.starts_with(&original));
    assert_eq!(prepared.output_len, out.len() as u64);
    let digest =
        signet_pdf::byte_range_digest(&mut std::io::Cursor::new(&out), &prepared.byte_range)
            .unwrap();
    assert_eq!(digest, prepared.digest);
}

#[test]
fn an_rsa_pss_device_signature_is_embedded_with_pss_parameters_and_validates() {
    let dir = scratch_dir("classic_pss");
    let input = dir.join("in.pdf");
    let output = dir.join("signed.pdf");
    fs::write(&input, classic_pdf(1)).unwrap();
    let prepared = signet_pdf::prepare(
        fs::File::open(&input).unwrap(),
        fs::File::create(&output).unwrap(),
        &options(),
    )
    .unwrap();

    let cms_der = sign_externally_with(
        &output,
        &prepared,
        &pki().rsa,
        &[
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-sigopt",
            "rsa_mgf1_md:sha256",
        ],
    );

    let report = pyhanko_validate(&output, &["--pretty-print"]);
    assert!(report.contains("rsassa_pss"), "{report}");
    assert_valid_everywhere(&output, 1, &prepared, &cms_der);
}

#[test]
fn a_server_held_key_signs_in_one_call_and_validates_everywhere() {
    let dir = scratch_dir("server_key");
    let output = dir.join("signed.pdf");
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&output)
        .unwrap();
    let ca = pki().ca_der.as_slice();

    let prepared = signet_pdf::sign_with_key(
        std::io::Cursor::new(classic_pdf(1)),
        &mut file,
        &options(),
        &pki().p256.key_pkcs8_der,
        &pki().p256.cert_der,
        &[ca],
    )
    .unwrap();
    drop(file);

    assert_pyhanko_accepts(&output, 1, &[]);
    assert_pdfsig_accepts(&output, 1);
    assert_qpdf_clean(&output, false);
    let digest =
        signet_pdf::byte_range_digest(&mut fs::File::open(&output).unwrap(), &prepared.byte_range)
            .unwrap();
    assert_eq!(digest, prepared.digest);
}

#[test]
fn three_signatures_in_a_row_make_three_valid_revisions() {
    let dir = scratch_dir("three_in_a_row");
    let mut input = dir.join("in.pdf");
    fs::write(&input, classic_pdf(3)).unwrap();
    for (round, signer) in [&pki().p256, &pki().rsa, &pki().p256]
        .into_iter()
        .enumerate()
    {
        let output = dir.join(format!("signed-{}.pdf", round + 1));
        let (prepared, cms_der) = sign_file(&input, &output, signer);
        assert_eq!(prepared.field_name, format!("Signature{}", round + 1));
        assert_valid_everywhere(&output, round + 1, &prepared, &cms_der);
        input = output;
    }
    let text = fs::read(&input).unwrap();
    assert_eq!(
        text.windows(5).filter(|w| w == b"%%EOF").count(),
        4,
        "one original + three revisions"
    );
}

#[test]
fn name_and_reason_appear_in_the_signature_dictionary() {
    let mut options = options();
    options.signer_name = Some("Åsa Öberg".into());
    options.reason = Some("Approval".into());
    let mut out = Vec::new();
    signet_pdf::prepare(std::io::Cursor::new(classic_pdf(1)), &mut out, &options).unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/Name <FEFF00C5"), "{text}");
    assert!(text.contains("/Reason <FEFF0041"), "{text}");
}

#[test]
fn a_file_without_a_final_end_of_line_or_with_trailing_bytes_still_signs() {
    let mut no_eol = classic_pdf(1);
    assert_eq!(no_eol.pop(), Some(b'\n'));
    let mut trailing_nuls = classic_pdf(1);
    trailing_nuls.extend_from_slice(&[0; 16]);
    for (name, pdf) in [("no_eol", no_eol), ("trailing_nuls", trailing_nuls)] {
        let dir = scratch_dir(&format!("odd_end_{name}"));
        let input = dir.join("in.pdf");
        let output = dir.join("signed.pdf");
        fs::write(&input, &pdf).unwrap();
        let (prepared, cms_der) = sign_file(&input, &output, &pki().p256);
        assert_valid_everywhere(&output, 1, &prepared, &cms_der);
    }
}

#[test]
fn a_smaller_placeholder_can_be_asked_for() {
    let mut options = options();
    options.placeholder_capacity = 4_000;
    let mut out = Vec::new();
    let prepared =
        signet_pdf::prepare(std::io::Cursor::new(classic_pdf(1)), &mut out, &options).unwrap();
    assert_eq!(prepared.byte_range.capacity(), 4_000);
    assert_eq!(prepared.byte_range.placeholder_len(), 8_002);
}

#[test]
fn preparing_in_place_appends_the_same_revision_that_prepare_writes() {
    let original = classic_pdf(1);
    let options = options();
    let mut copied = Vec::new();
    let by_copy =
        signet_pdf::prepare(std::io::Cursor::new(&original), &mut copied, &options).unwrap();
    let mut in_place = std::io::Cursor::new(original.clone());

    let appended = signet_pdf::prepare_appending(&mut in_place, &options).unwrap();

    assert_eq!(appended, by_copy);
    assert_eq!(in_place.into_inner(), copied);
}

#[test]
fn preparing_a_broken_file_in_place_leaves_it_untouched() {
    let mut truncated = classic_pdf(1);
    truncated.truncate(truncated.len() / 2);
    let mut file = std::io::Cursor::new(truncated.clone());

    assert!(signet_pdf::prepare_appending(&mut file, &options()).is_err());

    assert_eq!(file.into_inner(), truncated);
}

/// A reader that counts the bytes read through it.
struct CountingReader<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: std::io::Seek> std::io::Seek for CountingReader<R> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[test]
fn a_large_document_is_read_once_for_hashing_and_only_a_little_for_parsing() {
    // 8 MiB of image data: parsing needs the cross-reference data and a few small objects.
    let pdf = signet_testkit::pdfs::classic_pdf_with_image(3, 8 << 20);
    let mut input = CountingReader {
        inner: std::io::Cursor::new(&pdf),
        read: 0,
    };
    let mut out = Vec::new();

    signet_pdf::prepare(&mut input, &mut out, &options()).unwrap();

    let parsing = input.read - pdf.len() as u64;
    assert!(
        parsing < 64 * 1024,
        "parsing read {parsing} bytes of a {} byte file",
        pdf.len()
    );
}

#[test]
fn check_accepts_what_prepare_accepts_and_refuses_what_it_refuses() {
    signet_pdf::check(std::io::Cursor::new(classic_pdf(2))).unwrap();
    let mut truncated = classic_pdf(2);
    truncated.truncate(truncated.len() / 2);
    let checked = signet_pdf::check(std::io::Cursor::new(&truncated)).unwrap_err();
    let prepared = prepare_bytes(&truncated).unwrap_err();
    assert_eq!(checked.to_string(), prepared.to_string());
}
