//! Engine benchmarks: preparing and finishing a one-page PDF, and preparing a 20 MB PDF
//! compared with a single SHA-256 pass over the same bytes (the floor for any preparation,
//! which must hash the whole file).

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark that cannot run should fail loudly"
)]

use std::hint::black_box;
use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sha2::{Digest, Sha256};
use signet_pdf::{embed, prepare, PrepareOptions};

use signet_testkit::pdfs as minimal_pdf;

fn options() -> PrepareOptions {
    PrepareOptions::new(time::OffsetDateTime::UNIX_EPOCH)
}

fn one_page(c: &mut Criterion) {
    let pdf = minimal_pdf::classic_pdf(1);
    // A CMS of realistic size (P-256 signature + two certificates); its content is irrelevant here.
    let cms = vec![0x30u8; 2_000];
    c.bench_function("prepare+embed 1-page PDF", |b| {
        b.iter(|| {
            let mut out = Cursor::new(Vec::with_capacity(pdf.len() + 40_000));
            let prepared = prepare(Cursor::new(&pdf), &mut out, &options()).unwrap();
            embed(&mut out, &prepared.byte_range, &cms).unwrap();
            black_box(out);
        })
    });
}

fn twenty_megabytes(c: &mut Criterion) {
    let pdf = minimal_pdf::classic_pdf_with_image(3, 20 * 1024 * 1024);
    let mut group = c.benchmark_group("20 MB PDF");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(pdf.len() as u64));
    group.bench_with_input(BenchmarkId::new("prepare", pdf.len()), &pdf, |b, pdf| {
        b.iter(|| {
            let mut out = Vec::with_capacity(pdf.len() + 40_000);
            black_box(prepare(Cursor::new(pdf), &mut out, &options()).unwrap());
        })
    });
    group.bench_with_input(
        BenchmarkId::new("sha256 only", pdf.len()),
        &pdf,
        |b, pdf| b.iter(|| black_box(Sha256::digest(pdf))),
    );
    group.finish();
}

criterion_group!(benches, one_page, twenty_megabytes);
criterion_main!(benches);
