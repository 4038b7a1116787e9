//! Engine benchmarks: a one-page PDF prepared and finished (SignedAttributes, an ECDSA P-256
//! signature, SignedData, embedding: everything pyHanko's `sign_pdf` does), and a 20 MB PDF
//! prepared, compared with a single SHA-256 pass over the same bytes (the floor for any
//! preparation, which must hash the whole file). `bench/engine-vs-pyhanko.sh` runs these beside
//! pyHanko on the same files.

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should fail loudly"
)]

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use signet_pdf::{prepare, prepare_appending, sign_with_key, PrepareOptions};

use signet_testkit::pdfs as minimal_pdf;

fn options() -> PrepareOptions {
    PrepareOptions::new(time::OffsetDateTime::UNIX_EPOCH)
}

/// A P-256 key (PKCS#8 DER) and a self-signed certificate for it (DER).
fn p256_signer() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["bench.invalid".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (key.serialize_der(), certificate.der().to_vec())
}

fn one_page(c: &mut Criterion) {
    let pdf = minimal_pdf::classic_pdf(1);
    let (key_der, certificate_der) = p256_signer();
    c.bench_function("prepare+sign+embed 1-page PDF (P-256)", |b| {
        b.iter(|| {
            let mut out = Cursor::new(Vec::with_capacity(pdf.len() + 40_000));
            sign_with_key(
                Cursor::new(&pdf),
                &mut out,
                &options(),
                &key_der,
                &certificate_der,
                &[],
            )
            .unwrap();
            black_box(out);
        })
    });
}

fn twenty_megabytes(c: &mut Criterion) {
    let pdf = minimal_pdf::classic_pdf_with_image(3, 20 * 1024 * 1024);
    let (key_der, certificate_der) = p256_signer();
    let mut group = c.benchmark_group("20 MB PDF");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(pdf.len() as u64));
    group.bench_with_input(
        BenchmarkId::new("prepare+sign+embed (P-256)", pdf.len()),
        &pdf,
        |b, pdf| {
            b.iter(|| {
                let mut out = Cursor::new(Vec::with_capacity(pdf.len() + 40_000));
                sign_with_key(
                    Cursor::new(pdf),
                    &mut out,
                    &options(),
                    &key_der,
                    &certificate_der,
                    &[],
                )
                .unwrap();
                black_box(out);
            })
        },
    );
    group.bench_with_input(BenchmarkId::new("prepare", pdf.len()), &pdf, |b, pdf| {
        b.iter(|| {
            let mut out = Vec::with_capacity(pdf.len() + 40_000);
            black_box(prepare(Cursor::new(pdf), &mut out, &options()).unwrap());
        })
    });
    group.bench_with_input(
        BenchmarkId::new("prepare appending (as the server does)", pdf.len()),
        &pdf,
        |b, pdf| {
            b.iter_batched(
                || {
                    let mut file = Vec::with_capacity(pdf.len() + 40_000);
                    file.extend_from_slice(pdf);
                    Cursor::new(file)
                },
                |mut file| black_box(prepare_appending(&mut file, &options()).unwrap()),
                criterion::BatchSize::LargeInput,
            )
        },
    );
    group.bench_with_input(
        BenchmarkId::new("sha256 only", pdf.len()),
        &pdf,
        |b, pdf| b.iter(|| black_box(Sha256::digest(pdf))),
    );
    group.finish();
}

criterion_group!(benches, one_page, twenty_megabytes);
criterion_main!(benches);
