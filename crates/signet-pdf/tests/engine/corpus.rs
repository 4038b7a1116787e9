//! Every PDF of the generated corpus (tests/corpus/make_corpus.py) signs and validates.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::support::*;

/// One corpus entry as the manifest describes it.
pub struct Entry {
    pub path: PathBuf,
    pub producer: String,
    pub signatures: usize,
    pub pyhanko_args: Vec<String>,
    /// A signer must refuse this file.
    pub refuse: bool,
}

/// Generates the corpus once per test run and returns its manifest.
pub fn corpus() -> &'static BTreeMap<String, Entry> {
    static CORPUS: OnceLock<BTreeMap<String, Entry>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = scratch_dir("corpus");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/make_corpus.py");
        let python = venv().join("bin/python");
        run_ok(
            &python,
            os_args![
                script.to_str().unwrap(),
                dir.to_str().unwrap(),
                "--p12",
                pki().p12.to_str().unwrap(),
                "--p12-pass",
                "pw"
            ],
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        manifest
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, e)| {
                let entry = Entry {
                    path: dir.join(format!("{name}.pdf")),
                    producer: e["producer"].as_str().unwrap().to_owned(),
                    signatures: e["signatures"].as_u64().unwrap() as usize,
                    pyhanko_args: e["pyhanko_args"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_owned())
                        .collect(),
                    refuse: e["refuse"].as_bool().unwrap_or(false),
                };
                (name.clone(), entry)
            })
            .collect()
    })
}

/// Signs corpus entry `name` `times` times in a row and checks the result with every oracle.
fn signs_and_validates(name: &str, times: usize) {
    let entry = corpus()
        .get(name)
        .unwrap_or_else(|| panic!("corpus entry {name} was not generated"));
    let dir = scratch_dir(&format!("corpus-{name}-{times}"));
    let mut input = entry.path.clone();
    for round in 1..=times {
        let output = dir.join(format!("signed-{round}.pdf"));
        let signer = if round % 2 == 0 {
            &pki().rsa
        } else {
            &pki().p256
        };
        let (prepared, cms_der) = sign_file(&input, &output, signer);
        let count = entry.signatures + round;
        let extra: Vec<&str> = entry.pyhanko_args.iter().map(String::as_str).collect();
        assert_pyhanko_accepts(&output, count, &extra);
        assert_pdfsig_accepts(&output, count);
        assert_openssl_verifies(&output, &prepared, &cms_der);
        assert_qpdf_clean(&output, false);
        assert!(
            fs::read(&output)
                .unwrap()
                .starts_with(&fs::read(&input).unwrap()),
            "{} ({}): the input is not a prefix of the output",
            name,
            entry.producer
        );
        input = output;
    }
}

/// Corpus entry `name` is refused with [`signet_pdf::PdfError::Certified`].
fn is_refused_as_certified(name: &str) {
    let entry = &corpus()[name];
    assert!(entry.refuse);
    let err = prepare_bytes(&fs::read(&entry.path).unwrap()).unwrap_err();
    assert!(matches!(err, signet_pdf::PdfError::Certified), "{err:?}");
}

#[test]
fn a_pdf_certified_with_no_changes_allowed_is_refused() {
    is_refused_as_certified("certified-no-changes");
}

macro_rules! corpus_tests {
    ($($test:ident => $name:literal, $times:literal;)*) => {
        $(
            #[test]
            fn $test() {
                signs_and_validates($name, $times);
            }
        )*

        /// The list above covers the whole manifest, so a new corpus entry cannot go untested.
        #[test]
        fn every_corpus_entry_has_a_test() {
            let mut tested: std::collections::BTreeSet<&str> = [$($name),*].into();
            tested.insert("certified-no-changes");
            let generated: std::collections::BTreeSet<&str> = corpus().keys().map(String::as_str).collect();
            assert_eq!(tested, generated);
            assert!(generated.len() >= 15);
        }
    };
}

corpus_tests! {
    a_reportlab_pdf_signs_and_validates => "reportlab", 1;
    a_ghostscript_pdf_signs_and_validates => "ghostscript", 1;
    a_cairo_pdf_signs_and_validates => "cairo", 1;
    a_pypdf_pdf_signs_and_validates => "pypdf", 1;
    a_libreoffice_pdf_signs_and_validates_twice => "libreoffice", 2;
    a_form_pdf_signs_and_validates_twice => "form", 2;
    a_form_in_object_streams_signs_and_validates_twice => "form-objstreams", 2;
    an_object_stream_pdf_signs_and_validates_three_times => "objstreams", 3;
    a_linearized_pdf_signs_and_validates_twice => "linearized", 2;
    a_linearized_object_stream_pdf_signs_and_validates => "linearized-objstreams", 1;
    a_pdf_2_0_file_signs_and_validates => "pdf20", 1;
    a_qdf_file_signs_and_validates => "qdf", 1;
    a_pdf_with_an_earlier_update_signs_and_validates => "incremental", 1;
    a_pdf_signed_by_pyhanko_signs_and_both_signatures_validate => "pyhanko-signed", 1;
    a_pdf_certified_allowing_form_filling_signs_and_validates => "certified", 1;
    a_hybrid_reference_pdf_signs_and_validates => "hybrid", 1;
    indirect_annots_and_fields_arrays_are_extended_twice => "indirect-arrays", 2;
    a_direct_acroform_is_extended_twice => "direct-acroform", 2;
    a_nested_page_tree_signs_and_validates => "page-tree", 1;
    a_300_page_pdf_signs_and_validates => "many-pages", 1;
    a_20_mb_pdf_signs_and_validates => "big", 1;
}

/// A cross-reference or object stream whose compressed data stops early (issue 12) is damaged
/// even when every row or object it lists still decodes; its intact twin, the same file
/// generated whole, signs and validates.
#[test]
fn a_stream_cut_short_is_refused_as_damaged_and_its_intact_twin_signs() {
    use signet_testkit::bombs::{truncated_object_stream, truncated_xref_stream};
    let dir = scratch_dir("cut-short");
    for (what, make) in [
        ("xref-stream", truncated_xref_stream as fn(bool) -> Vec<u8>),
        ("object-stream", truncated_object_stream),
    ] {
        let Err(err) = prepare_bytes(&make(true)) else {
            panic!("{what}: a stream cut short was accepted");
        };
        assert!(
            matches!(&err, signet_pdf::PdfError::Damaged(m) if m.contains("truncated")),
            "{what}: {err}"
        );

        let input = dir.join(format!("{what}.pdf"));
        fs::write(&input, make(false)).unwrap();
        let output = dir.join(format!("{what}-signed.pdf"));
        let (prepared, cms_der) = sign_file(&input, &output, &pki().p256);
        assert_valid_everywhere(&output, 1, &prepared, &cms_der);
    }
}
