//! One story, told to both store implementations: whatever SQLite does, PostgreSQL must do alike.

use signet::directory::PersonAttributes;
use signet::domain::person::PersonSource;
use signet::domain::{
    DocumentId, DocumentStatus, LinkType, OrderId, OrderOption, OrderState, PriorityGroup,
    Sha256Digest, SignerId, SignerStatus, TaskStatus, UserId,
};
use signet::store::blobs::{BlobKey, SweepReport};
use signet::store::orders::{
    AnonymizeOutcome, AnonymizeTarget, NewOrder, NewOrderSigner, OrderChange, OrderDocument,
    OrderUpdate, RecordedSignature, ResolvedPerson, SignatureOutcome,
};
use signet::store::{
    DocumentRecord, EnrollOutcome, Enrollment, NewCertificate, SignedFile, StatusChange, Store,
};
use signet_crypto::ca::{RevocationReason, SerialNumber};
use time::{Duration, OffsetDateTime};

use crate::helpers::{database_url_for, Db};

fn certificate(now: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        serial: SerialNumber::random(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        not_before: now,
        not_after: now + Duration::days(365),
        renew_after: now + Duration::days(243),
    }
}

async fn story(store: &dyn Store) {
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let alice = SignerId::parse("alice").unwrap();

    // API keys are found by hash only.
    store.insert_api_key("k1", "hash-1", now).await.unwrap();
    assert!(store.api_key_hash_exists("hash-1").await.unwrap());
    assert!(!store.api_key_hash_exists("hash-2").await.unwrap());

    // Enrollment creates, re-enrollment replaces and supersedes.
    let enrollment = Enrollment {
        signer_id: alice.clone(),
        user_id: UserId::parse("user-a").unwrap(),
        csr_der: vec![1, 2, 3],
        certificate: certificate(now),
    };
    assert_eq!(
        store.enroll(&enrollment, now).await.unwrap(),
        EnrollOutcome::Created
    );
    let first_serial = enrollment.certificate.serial;
    let again = Enrollment {
        certificate: certificate(now),
        ..enrollment.clone()
    };
    assert_eq!(
        store.enroll(&again, now).await.unwrap(),
        EnrollOutcome::Replaced {
            superseded: vec![first_serial]
        }
    );
    let signer = store.find_signer(&alice).await.unwrap().unwrap();
    assert_eq!(signer.status, SignerStatus::Active);
    assert_eq!(signer.current_serial, again.certificate.serial);
    assert_eq!(signer.csr_der, vec![1, 2, 3]);
    assert_eq!(store.certificates_of(&alice).await.unwrap().len(), 2);
    let revoked = store.revoked_certificates().await.unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].reason, RevocationReason::Superseded);

    // The status machine runs inside the store's transaction.
    let change = store
        .change_signer_status(
            &alice,
            SignerStatus::Expired,
            RevocationReason::Unspecified,
            now,
        )
        .await
        .unwrap();
    assert!(matches!(change, StatusChange::Illegal(_)));
    let change = store
        .change_signer_status(
            &alice,
            SignerStatus::Blocked,
            RevocationReason::Unspecified,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        change,
        StatusChange::Applied {
            from: SignerStatus::Active,
            to: SignerStatus::Blocked,
            revoked: vec![]
        }
    );
    let nobody = SignerId::parse("nobody").unwrap();
    assert_eq!(
        store
            .change_signer_status(
                &nobody,
                SignerStatus::Blocked,
                RevocationReason::Unspecified,
                now
            )
            .await
            .unwrap(),
        StatusChange::NotFound
    );

    // Renewal claims only ACTIVE signers that are due.
    let renew = |_: &signet::store::DueRenewal| Ok(certificate(now + Duration::days(250)));
    assert_eq!(
        store
            .renew_due(now + Duration::days(250), 10, &renew)
            .await
            .unwrap(),
        0
    );
    store
        .change_signer_status(
            &alice,
            SignerStatus::Active,
            RevocationReason::Unspecified,
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .renew_due(now + Duration::days(250), 10, &renew)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .renew_due(now + Duration::days(250), 10, &renew)
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.certificates_of(&alice).await.unwrap().len(), 3);

    // Expiry, then revocation refused for the terminal state.
    let expired = store.expire_due(now + Duration::days(2000)).await.unwrap();
    assert_eq!(expired, vec![alice.clone()]);
    assert!(store
        .expire_due(now + Duration::days(2000))
        .await
        .unwrap()
        .is_empty());
    let refused = store.enroll(&enrollment, now).await.unwrap();
    assert_eq!(refused, EnrollOutcome::Refused(SignerStatus::Expired));

    // CRLs: numbers are unique; the newest is served.
    assert!(store.latest_crl().await.unwrap().is_none());
    let crl = signet::store::CrlRecord {
        number: 1,
        der: vec![9],
        this_update: now,
        next_update: now + Duration::days(7),
    };
    assert!(store.insert_crl(&crl).await.unwrap());
    assert!(
        !store.insert_crl(&crl).await.unwrap(),
        "a second CRL with the same number is not stored"
    );
    let crl2 = signet::store::CrlRecord { number: 2, ..crl };
    store.insert_crl(&crl2).await.unwrap();
    assert_eq!(store.latest_crl().await.unwrap().unwrap().number, 2);

    documents_chapter(store, &alice, again.certificate.serial, now).await;
    orders_chapter(store, now).await;
}

fn resolved(source: PersonSource, user_id: &str, first_name: &str) -> ResolvedPerson {
    ResolvedPerson {
        source,
        identifier: user_id.to_owned(),
        user_id: user_id.to_owned(),
        attributes: PersonAttributes {
            first_name: Some(first_name.to_owned()),
            ..PersonAttributes::default()
        },
    }
}

fn order_document(order_id: OrderId, byte: u8) -> OrderDocument {
    OrderDocument {
        file_name: "contract.pdf".into(),
        blob: BlobKey::order_version(order_id, uuid::Uuid::new_v4()),
        size: 100,
        sha256: Sha256Digest::from_bytes([byte; 32]),
    }
}

fn new_signer(person: ResolvedPerson, group: i64) -> NewOrderSigner {
    NewOrderSigner {
        person,
        group: PriorityGroup::new(group).unwrap(),
        link_nonce: uuid::Uuid::new_v4().simple().to_string(),
        token_hash: uuid::Uuid::new_v4().simple().to_string(),
    }
}

/// Signing orders: logins shared across orders, priority groups, compare-and-set signatures,
/// expiry claimed once, anonymization, events kept after deletion.
async fn orders_chapter(store: &dyn Store, now: OffsetDateTime) {
    let carl = resolved(PersonSource::Internal, "cborgstrom", "Carl");
    let elsa = resolved(PersonSource::External, "200001011907", "Elsa");
    let order_id = OrderId::new_random();
    let order = NewOrder {
        order_id,
        title: "Contract".into(),
        description: Some("Sign it".into()),
        due_at: now + Duration::days(30),
        link_type: LinkType::OrderPage,
        tags: vec![serde_json::json!({"project": "x"})],
        options: vec![OrderOption::NotifyAllSigners(true)],
        solicitor: carl.clone(),
        signers: vec![new_signer(carl.clone(), 1), new_signer(elsa.clone(), 2)],
        document: order_document(order_id, 1),
    };
    store.create_order(&order, now).await.unwrap();
    let stored = store.find_order(&order_id).await.unwrap().unwrap();
    assert_eq!(stored.state, OrderState::Pending);
    assert_eq!(stored.tags, order.tags);
    assert!(stored.notify_all_signers());
    assert_eq!(
        stored.solicitor.internal_id,
        stored.signers[0].person.internal_id
    );
    let statuses: Vec<_> = stored.signers.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [TaskStatus::Pending, TaskStatus::Queued]);
    assert_eq!(
        store.order_state(&order_id).await.unwrap(),
        Some(OrderState::Pending)
    );

    // A signature built on an old revision is stale; the right one lands and opens group 2.
    let signature = |position, revision, byte| RecordedSignature {
        position,
        based_on_revision: revision,
        document: order_document(order_id, byte),
        archive_expires_at: None,
    };
    assert_eq!(
        store
            .record_order_signature(&order_id, &signature(0, 7, 2), now)
            .await
            .unwrap(),
        SignatureOutcome::Stale
    );
    assert!(matches!(
        store
            .record_order_signature(&order_id, &signature(1, 0, 2), now)
            .await
            .unwrap(),
        SignatureOutcome::Illegal(_)
    ));
    assert!(matches!(
        store
            .record_order_signature(&order_id, &signature(0, 0, 2), now)
            .await
            .unwrap(),
        SignatureOutcome::Recorded {
            state: OrderState::Pending,
            ..
        }
    ));
    let stored = store.find_order(&order_id).await.unwrap().unwrap();
    assert_eq!(stored.signatures, 1);
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.signers[1].status, TaskStatus::Pending);

    // Anonymizing Elsa waits until her order is finished.
    let elsa_target = AnonymizeTarget::Person {
        source: PersonSource::External,
        user_id: "200001011907".into(),
    };
    assert_eq!(
        store.anonymize(&elsa_target, now).await.unwrap(),
        AnonymizeOutcome::HasPendingOrders
    );
    assert!(matches!(
        store
            .record_order_signature(&order_id, &signature(1, 1, 3), now)
            .await
            .unwrap(),
        SignatureOutcome::Recorded {
            state: OrderState::Accepted,
            ..
        }
    ));
    let AnonymizeOutcome::Done { internal_id } = store.anonymize(&elsa_target, now).await.unwrap()
    else {
        panic!("Elsa could not be anonymized");
    };
    let login = store.find_login(&internal_id).await.unwrap().unwrap();
    assert!(login.anonymized);
    assert_eq!(login.attributes, PersonAttributes::default());
    let stored = store.find_order(&order_id).await.unwrap().unwrap();
    assert_eq!(stored.signers[1].person.internal_id, internal_id);
    assert_eq!(
        stored.signers[1].person.attributes,
        PersonAttributes::default()
    );
    assert_eq!(
        store.anonymize(&elsa_target, now).await.unwrap(),
        AnonymizeOutcome::NotFound
    );

    // A second order for Carl reuses his login; expiry claims it exactly once.
    let second = OrderId::new_random();
    store
        .create_order(
            &NewOrder {
                order_id: second,
                signers: vec![new_signer(carl.clone(), 1)],
                document: order_document(second, 9),
                due_at: now + Duration::days(1),
                ..order.clone()
            },
            now,
        )
        .await
        .unwrap();
    let again = store.find_order(&second).await.unwrap().unwrap();
    assert_eq!(again.solicitor.internal_id, stored.solicitor.internal_id);
    let later = now + Duration::days(2);
    assert_eq!(
        store.expire_due_orders(later, 10).await.unwrap(),
        vec![second]
    );
    assert!(store.expire_due_orders(later, 10).await.unwrap().is_empty());
    assert_eq!(
        store.order_state(&second).await.unwrap(),
        Some(OrderState::Expired)
    );
    assert!(matches!(
        store
            .update_order(
                &second,
                &OrderUpdate {
                    cancel: true,
                    ..OrderUpdate::default()
                },
                later
            )
            .await
            .unwrap(),
        OrderChange::Illegal(_)
    ));

    // Deletion takes the order, keeps the events.
    assert!(store.delete_order(&second, later).await.unwrap().is_some());
    assert!(store.find_order(&second).await.unwrap().is_none());
    let events: Vec<String> = store
        .order_events(&second)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        [
            "ORDER_CREATED",
            "DOCUMENT_CREATED",
            "ORDER_EXPIRED",
            "DOCUMENT_DELETED",
            "ORDER_DELETED"
        ]
    );
    let first_events: Vec<String> = store
        .order_events(&order_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        first_events,
        [
            "LOGIN_CREATED",
            "LOGIN_CREATED",
            "ORDER_CREATED",
            "DOCUMENT_CREATED",
            "ORDER_SIGNED",
            "ORDER_SIGNED",
            "ORDER_ACCEPTED"
        ]
    );
    assert_eq!(
        store.events_named("USER_ANONYMIZED").await.unwrap().len(),
        1
    );
}

/// Documents: stored as given, status changes are compare-and-set.
async fn documents_chapter(
    store: &dyn Store,
    signer: &SignerId,
    serial: SerialNumber,
    now: OffsetDateTime,
) {
    let id = DocumentId::new_random();
    let document = DocumentRecord {
        document_id: id,
        signer_id: signer.clone(),
        external_id: Some("ext".into()),
        name: None,
        file_name: "a.pdf".into(),
        size: 1234,
        sha256: Sha256Digest::from_bytes([7; 32]),
        status: DocumentStatus::Waiting,
        signed_attributes: vec![0x31, 0x00],
        byte_range: [0, 100, 32868, 500],
        certificate_serial: serial,
        prepared_blob: Some(BlobKey::prepared(id)),
        signed_blob: None,
        signed_size: None,
        created_at: now,
    };
    store.insert_document(&document).await.unwrap();
    let found = store.find_document(&id).await.unwrap().unwrap();
    assert_eq!(found.sha256, document.sha256);
    assert_eq!(found.byte_range, document.byte_range);
    assert_eq!(found.prepared_blob, document.prepared_blob);
    assert_eq!(found.external_id.as_deref(), Some("ext"));
    assert!(found.name.is_none());
    let (for_signing, signer_status, certificate) =
        store.find_document_for_signing(&id).await.unwrap().unwrap();
    assert_eq!(for_signing.document_id, id);
    assert_eq!(for_signing.status, DocumentStatus::Waiting);
    assert_eq!(signer_status, SignerStatus::Expired);
    assert_eq!(certificate.serial, serial);
    let (signer_record, current) = store
        .find_signer_with_certificate(signer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&signer_record.signer_id, signer);
    assert_eq!(current.serial, signer_record.current_serial);

    let signed = SignedFile {
        blob: BlobKey::prepared(id),
        size: 40_000,
        archive_expires_at: None,
    };
    let sign = || {
        store.change_document_status(
            &id,
            DocumentStatus::Waiting,
            DocumentStatus::Signed,
            Some(&signed),
            now,
        )
    };
    assert!(sign().await.unwrap());
    assert!(
        !sign().await.unwrap(),
        "only the first change from WAITING wins"
    );
    let found = store.find_document(&id).await.unwrap().unwrap();
    assert_eq!(found.status, DocumentStatus::Signed);
    assert_eq!(found.signed_blob, Some(signed.blob.clone()));
    assert_eq!(found.signed_size, Some(40_000));
    assert!(found.prepared_blob.is_none());

    assert!(store
        .change_document_status(
            &id,
            DocumentStatus::Signed,
            DocumentStatus::Deleted,
            None,
            now
        )
        .await
        .unwrap());
    let found = store.find_document(&id).await.unwrap().unwrap();
    assert_eq!(found.status, DocumentStatus::Deleted);
    assert!(found.signed_blob.is_none());
    assert!(store
        .find_document(&DocumentId::new_random())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url_for(Db::Sqlite, dir.path()).await.unwrap();
    let store = signet::store::connect(&url).await.unwrap();
    story(store.as_ref()).await;
}

#[tokio::test]
async fn the_story_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = database_url_for(Db::Postgres, dir.path()).await else {
        return;
    };
    let store = signet::store::connect(&url).await.unwrap();
    story(store.as_ref()).await;
}

/// SQLite batches concurrent writes into one transaction: a request that fails inside a batch
/// must roll back alone, and every request that succeeded must be there afterwards.
#[tokio::test]
async fn a_failing_write_in_a_batch_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let url = database_url_for(Db::Sqlite, dir.path()).await.unwrap();
    let store = signet::store::connect(&url).await.unwrap();
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let signer = SignerId::parse("batch-signer").unwrap();
    let enrollment = Enrollment {
        signer_id: signer.clone(),
        user_id: UserId::parse("u").unwrap(),
        csr_der: vec![1],
        certificate: certificate(now),
    };
    store.enroll(&enrollment, now).await.unwrap();
    let serial = enrollment.certificate.serial;

    let writes = (0..200).map(|i| {
        let store = store.clone();
        // Every third document names a signer that does not exist: a foreign-key failure.
        let signer_id = if i % 3 == 0 {
            SignerId::parse("nobody").unwrap()
        } else {
            signer.clone()
        };
        async move {
            let id = DocumentId::new_random();
            let document = DocumentRecord {
                document_id: id,
                signer_id,
                external_id: None,
                name: None,
                file_name: "a.pdf".into(),
                size: 1,
                sha256: Sha256Digest::from_bytes([0; 32]),
                status: DocumentStatus::Waiting,
                signed_attributes: vec![0x31, 0x00],
                byte_range: [0, 1, 3, 1],
                certificate_serial: serial,
                prepared_blob: None,
                signed_blob: None,
                signed_size: None,
                created_at: now,
            };
            (i, id, store.insert_document(&document).await.is_ok())
        }
    });
    let results = futures::future::join_all(writes).await;

    for (i, id, ok) in results {
        assert_eq!(ok, i % 3 != 0, "write {i}");
        let found = store.find_document(&id).await.unwrap();
        assert_eq!(found.is_some(), ok, "write {i} stored iff it succeeded");
    }
}

/// One step of the blob story, run on the blocking pool.
type BlobStep = Box<dyn FnOnce(&signet::store::blob_backend::Blobs) -> Option<SweepReport> + Send>;

/// The blob story, told to both document stores (the data directory and a Garage bucket): what
/// the callers rely on — a persisted blob reads back whole, copies into a temporary file,
/// is gone after its removal (removals on a bucket are queued: waited for here), a missing one
/// is `NotFound`, and the sweep takes an old unnamed blob and keeps a named one.
async fn blob_story(blobs: signet::store::blob_backend::Blobs) {
    use std::io::{ErrorKind, Read, Write};
    let blobs = std::sync::Arc::new(blobs);
    // The blob calls are blocking: each step runs where the server runs them.
    let run = |work: BlobStep| {
        let blobs = blobs.clone();
        tokio::task::spawn_blocking(move || work(&blobs))
    };
    let document = DocumentId::new_random();
    let order = OrderId::new_random();
    let prepared = BlobKey::prepared(document);
    let signed = BlobKey::document_version(document, uuid::Uuid::new_v4());
    let first = BlobKey::order_version(order, uuid::Uuid::new_v4());
    let orphan = BlobKey::prepared(DocumentId::new_random());
    // Large enough to go up in parts on a bucket (8 MiB per part).
    let big: Vec<u8> = (0..9 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let keys = [&prepared, &signed, &first, &orphan].map(Clone::clone);
    let (big_in, keys_in) = (big.clone(), keys.clone());
    run(Box::new(move |blobs| {
        for (index, key) in keys_in.iter().enumerate() {
            let (temp, mut file) = blobs.create_temp().unwrap();
            if index == 0 {
                file.write_all(&big_in).unwrap();
            } else {
                write!(file, "%PDF-{index}").unwrap();
            }
            blobs.persist(temp, &file, key).unwrap();
        }
        let mut read = Vec::new();
        blobs
            .open_read(&keys_in[0])
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert!(read == big_in, "a persisted blob reads back whole");
        let (_temp, mut copy) = blobs.copy_to_temp(&keys_in[1]).unwrap();
        use std::io::{Seek, SeekFrom};
        copy.seek(SeekFrom::Start(0)).unwrap();
        let mut copied = String::new();
        copy.read_to_string(&mut copied).unwrap();
        assert_eq!(copied, "%PDF-1");
        let missing = BlobKey::prepared(DocumentId::new_random());
        assert_eq!(
            blobs.open_read(&missing).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            blobs.copy_to_temp(&missing).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        None
    }))
    .await
    .unwrap();

    let (named, orphan_key) = (prepared.clone(), orphan.clone());
    let report = run(Box::new(move |blobs| {
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(3 * 86_400);
        let report = blobs
            .sweep(ahead, |batch| {
                Ok(batch
                    .iter()
                    .filter(|k| **k != orphan_key)
                    .cloned()
                    .collect())
            })
            .unwrap();
        assert_eq!(report.orphans_removed, 1, "{report:?}");
        assert!(blobs.open_read(&named).is_ok());
        assert_eq!(
            blobs.open_read(&orphan_key).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        Some(report)
    }))
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.referenced, 3, "{report:?}");

    let gone_after_removal = |keys: Vec<BlobKey>| {
        run(Box::new(move |blobs| {
            for key in keys {
                // A bound on how long a queued removal may take, not a timing assertion.
                let mut tries = 0;
                while blobs.open_read(&key).is_ok() {
                    tries += 1;
                    assert!(tries < 200, "{} was not removed", key.as_str());
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            None
        }))
    };
    run(Box::new(move |blobs| {
        blobs.remove_document(document).unwrap();
        blobs.remove_order(order).unwrap();
        None
    }))
    .await
    .unwrap();
    gone_after_removal(vec![prepared, signed, first])
        .await
        .unwrap();
}

#[tokio::test]
async fn the_blob_story_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = signet::store::blob_backend::Blobs::open(
        None,
        dir.path(),
        Vec::new(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    blob_story(blobs).await;
}

#[tokio::test]
async fn the_blob_story_on_object_storage() {
    let Some(garage) = crate::garage::Garage::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let blobs = signet::store::blob_backend::Blobs::open(
        Some(&garage.url("story")),
        dir.path(),
        garage.env(),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    blob_story(blobs).await;
}
