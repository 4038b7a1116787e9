//! One `OrderService::sign_as` on a one-page order, in-process: a fresh P-256 key, its certificate from
//! Signet's CA, the PAdES revision appended by the engine, the blob made durable and the
//! signature recorded in SQLite. Each iteration signs a new order (a signer signs once).
//!
//! Once per signature level (`--signature-level`), with the built-in TSA: B-B is the signature
//! alone; B-T adds the timestamp; B-LT the in-process OCSP responses, the CRL and the `/DSS`
//! revision; B-LTA a document timestamp and a second `/DSS` revision. The CloudSigner flow runs
//! the same `LevelFinisher` after its device signature is verified, so the differences between
//! levels here are what each level adds there too.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use std::time::{Duration, Instant};

use signet::clock::SystemClock;
use signet::config::Settings;
use signet::directory::PersonAttributes;
use signet::domain::person::PersonSource;
use signet::domain::{LinkType, OrderId, PriorityGroup, Sha256Digest, SignatureLevel};
use signet::startup::Application;
use signet::store::blobs::BlobKey;
use signet::store::orders::{NewOrder, NewOrderSigner, OrderDocument, ResolvedPerson};

fn person() -> ResolvedPerson {
    ResolvedPerson {
        source: PersonSource::External,
        identifier: "200001011907".into(),
        user_id: "200001011907".into(),
        attributes: PersonAttributes {
            first_name: Some("Elsa".into()),
            last_name: Some("Extern".into()),
            mail: Some("elsa@example.net".into()),
            mobile: None,
        },
    }
}

fn sign_order(c: &mut Criterion) {
    for level in SignatureLevel::ALL {
        sign_order_at(c, level);
    }
}

fn sign_order_at(c: &mut Criterion, level: SignatureLevel) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        data_dir: data_dir.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        job_interval_seconds: 0,
        signature_level: level,
        ..Settings::default()
    };
    let app = runtime
        .block_on(Application::build(settings, Arc::new(SystemClock)))
        .unwrap();
    let state = app.state().clone();
    let pdf = signet_testkit::pdfs::classic_pdf(1);

    // Makes a fresh one-signer order (not timed).
    let new_order = || {
        let order_id = OrderId::new_random();
        let blob = BlobKey::order_version(order_id, uuid::Uuid::new_v4());
        let (temp, mut file) = state.blobs.create_temp().unwrap();
        std::io::Write::write_all(&mut file, &pdf).unwrap();
        state.blobs.persist(temp, &file, &blob).unwrap();
        let order = NewOrder {
            order_id,
            title: "Bench".into(),
            description: None,
            due_at: time::OffsetDateTime::now_utc() + time::Duration::days(1),
            link_type: LinkType::OrderPage,
            tags: Vec::new(),
            options: Vec::new(),
            solicitor: person(),
            signers: vec![NewOrderSigner {
                person: person(),
                group: PriorityGroup::FIRST,
                link_nonce: uuid::Uuid::new_v4().simple().to_string(),
                token_hash: uuid::Uuid::new_v4().simple().to_string(),
            }],
            document: OrderDocument {
                file_name: "bench.pdf".into(),
                blob,
                size: pdf.len() as u64,
                sha256: Sha256Digest::from_bytes([0; 32]),
            },
        };
        runtime
            .block_on(
                state
                    .store
                    .create_order(&order, time::OffsetDateTime::now_utc()),
            )
            .unwrap();
        let stored = runtime
            .block_on(state.store.find_order(&order_id))
            .unwrap()
            .unwrap();
        (order_id, stored.signers[0].person.internal_id.clone())
    };

    c.bench_function(
        &format!("sign_order_as {level} (1-page order, SQLite)"),
        |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let (order_id, signer) = new_order();
                    let start = Instant::now();
                    runtime
                        .block_on(state.orders.sign_as(order_id, &signer))
                        .unwrap();
                    total += start.elapsed();
                }
                total
            });
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(5));
    targets = sign_order
}
criterion_main!(benches);
