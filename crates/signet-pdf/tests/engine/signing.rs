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
    let digest = signet_pdf::byte_range_digest(&mut std::io::Cursor::new(&out), &prepared.byte_range).unwrap();
    assert_eq!(digest, prepared.digest);
}
