//! Several real `signet serve` processes on one PostgreSQL database (a fresh schema per test) and
//! one shared data directory behave as one server: what one replica stored, another serves;
//! signatures racing through different replicas all land or are refused cleanly, never lost; a
//! replica killed with `kill -9` in the middle of a burst loses nothing it acknowledged and
//! restarts cleanly; a replica with another CA refuses to start.
//!
//! Where a replica keeps its files is a [`Storage`]: the file blob backend's one shared
//! directory, or the same directory for the key files with the blobs in one bucket of a real S3
//! server (Garage); the flows run on both.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Client;
use serde_json::{json, Value};
use signet::store::blobs::BlobKey;
use signet::store::objects::ObjectBlobs;
use tempfile::TempDir;

use crate::garage::Garage;
use crate::helpers::fresh_postgres_url;
use crate::logs::Served;
use crate::openssl::{device_key, DeviceKey, KeyKind};
use crate::orders::{order_form, person};
use crate::pages::{browserless, csrf_of};
use crate::support::{self, get_bytes, get_json, get_text, pdf_upload_form};

/// Where the replicas keep their files, and what else each one is told.
pub struct Storage {
    root: TempDir,
    /// Extra environment for every replica (a blob URL, object-store credentials).
    env: Vec<(String, String)>,
    /// The bucket's server, when the blobs live in one; stopped when the storage is dropped.
    garage: Option<Garage>,
}

/// The prefix the replicas' blobs get in the test bucket.
const BLOB_PREFIX: &str = "replicas";

impl Storage {
    /// One data directory shared by every replica (a shared volume): the key files and the blobs.
    pub fn shared_data_dir() -> Self {
        Storage {
            root: tempfile::tempdir().unwrap(),
            env: Vec::new(),
            garage: None,
        }
    }

    /// One data directory shared for the key files, the blobs in a bucket of a real S3 server
    /// (Garage) that every replica reaches; `None` (with a notice) where Garage is not built.
    pub fn object_store() -> Option<Self> {
        let garage = Garage::start()?;
        let mut env = garage.env();
        env.push(("SIGNET_BLOB_URL".to_owned(), garage.url(BLOB_PREFIX)));
        Some(Storage {
            root: tempfile::tempdir().unwrap(),
            env,
            garage: Some(garage),
        })
    }

    /// Whether the blob `key` (as a row names it) is stored.
    pub async fn holds(&self, key: &str) -> bool {
        let Some(garage) = &self.garage else {
            return self.data_dir(0).join("blobs").join(key).is_file();
        };
        let probe = self.root.path().join("probe");
        std::fs::create_dir_all(&probe).unwrap();
        let objects = ObjectBlobs::open(
            &garage.url(BLOB_PREFIX),
            garage.env(),
            &probe,
            tokio::runtime::Handle::current(),
        )
        .unwrap();
        let key = BlobKey::parse(key).unwrap();
        tokio::task::spawn_blocking(move || objects.digest(&key))
            .await
            .unwrap()
            .unwrap()
            .is_some()
    }

    /// The data directory of replica `index`.
    pub fn data_dir(&self, _index: usize) -> PathBuf {
        self.root.path().join("data")
    }

    /// Where a test may put files of its own.
    pub fn scratch(&self) -> &Path {
        self.root.path()
    }
}

/// One fleet at a time in this test binary: each replica's pool may open 16 PostgreSQL
/// connections, and two fleets of three beside the other tests' servers would pass the server's
/// default limit of 100 (a replica then waits for a connection until its request times out).
static ONE_FLEET_AT_A_TIME: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Replicas of one installation: one database, one [`Storage`].
pub struct Fleet {
    pub storage: Storage,
    extra_env: Vec<(String, String)>,
    pub database_url: String,
    pub replicas: Vec<Option<Served>>,
    pub api_key: String,
    pub client: Client,
    /// Held until the replicas are gone (the last field dropped).
    _turn: tokio::sync::SemaphorePermit<'static>,
}

/// A failing test shows what the replicas logged above INFO, which the test's own message cannot.
impl Drop for Fleet {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for (index, replica) in self.replicas.iter().enumerate() {
            for line in replica.iter().flat_map(|replica| replica.log()) {
                if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                    eprintln!("replica {index}: {line}");
                }
            }
        }
    }
}

impl Fleet {
    /// `count` replicas on a fresh PostgreSQL schema; `None` without PostgreSQL (outside CI).
    /// The first starts alone (it makes the CA, the first API key and the schema); the others
    /// join it.
    pub async fn start(count: usize, storage: Storage) -> Option<Fleet> {
        Fleet::start_with(count, storage, &[]).await
    }

    /// Like [`Fleet::start`], every replica also given `env`.
    pub async fn start_with(count: usize, storage: Storage, env: &[(&str, &str)]) -> Option<Fleet> {
        let database_url = fresh_postgres_url().await?;
        let mut fleet = Fleet {
            _turn: ONE_FLEET_AT_A_TIME.acquire().await.unwrap(),
            storage,
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            database_url,
            replicas: Vec::new(),
            api_key: String::new(),
            client: Client::new(),
        };
        for index in 0..count {
            let replica = fleet.spawn(index);
            if index == 0 {
                fleet.api_key = replica.api_key.clone();
            }
            fleet.replicas.push(Some(replica));
        }
        Some(fleet)
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("SIGNET_DATABASE_URL".to_owned(), self.database_url.clone()),
            // Jobs run on every replica, as in production, but rarely enough not to race
            // the test's own requests for the CPU.
            ("SIGNET_JOB_INTERVAL_SECONDS".to_owned(), "3600".to_owned()),
        ];
        env.extend(self.storage.env.iter().cloned());
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Starts replica `index` (a new process on its data directory).
    pub fn spawn(&self, index: usize) -> Served {
        self.try_spawn_on(&self.storage.data_dir(index))
            .unwrap_or_else(|(status, log)| {
                panic!("replica {index} did not start ({status}): {log:#?}")
            })
    }

    fn try_spawn_on(
        &self,
        data_dir: &Path,
    ) -> Result<Served, (std::process::ExitStatus, Vec<String>)> {
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Served::try_start_in(data_dir, &env)
    }

    pub fn replica(&self, index: usize) -> &Served {
        self.replicas[index % self.replicas.len()]
            .as_ref()
            .expect("a running replica")
    }

    /// The id replica `index` logged at start-up (its temporary directory's name).
    pub fn replica_id(&self, index: usize) -> String {
        self.replica(index)
            .log()
            .iter()
            .find_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                value["replica.id"].as_str().map(str::to_owned)
            })
            .expect("the replica logs its id")
    }

    /// Base URL of replica `index` (modulo the fleet's size).
    pub fn main(&self, index: usize) -> &str {
        &self.replica(index).main
    }

    pub fn automation(&self, index: usize) -> &str {
        &self.replica(index).automation
    }
}

/// The CloudSigner calls a device flow makes, against any replica.
#[derive(Clone)]
struct Api {
    client: Client,
    api_key: String,
}

impl Api {
    async fn enroll(&self, base: &str, signer_id: &str, csr_pem: &str) {
        let response = self
            .client
            .post(format!("{base}/signers"))
            .bearer_auth(&self.api_key)
            .json(&json!({"signerId": signer_id, "userId": "user-1", "csr": csr_pem}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Uploads a two-page PDF; the whole response.
    async fn upload(&self, base: &str, signer_id: &str) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{base}/documents/upload"))
            .bearer_auth(&self.api_key)
            .multipart(pdf_upload_form(signer_id, 2))
            .send()
            .await
    }

    /// Uploads and returns (documentId, hash).
    async fn uploaded(&self, base: &str, signer_id: &str) -> (String, String) {
        let response = self.upload(base, signer_id).await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{body}");
        (
            body["documentId"].as_str().unwrap().to_owned(),
            body["hash"].as_str().unwrap().to_owned(),
        )
    }

    async fn post_signature(
        &self,
        base: &str,
        document_id: &str,
        signature: &str,
    ) -> reqwest::Result<reqwest::Response> {
        self.client
            .post(format!("{base}/documents/{document_id}/signature"))
            .bearer_auth(&self.api_key)
            .json(&json!({"signature": signature}))
            .send()
            .await
    }

    async fn download(&self, base: &str, document_id: &str) -> (u16, Vec<u8>) {
        let response = self
            .client
            .get(format!("{base}/documents/{document_id}/file"))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

impl Fleet {
    fn api(&self) -> Api {
        Api {
            client: self.client.clone(),
            api_key: self.api_key.clone(),
        }
    }

    /// The CA certificate, written to a file for the judges.
    async fn ca_pem_file(&self) -> PathBuf {
        let pem = get_text(&self.client, &format!("{}/ca/ca.pem", self.main(0))).await;
        let path = self.storage.scratch().join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        path
    }
}

/// The device's part: `openssl dgst -sha256 -sign` over the data to be signed, in a directory of
/// its own (concurrent flows share one key).
fn device_sign(device: &DeviceKey, hash_b64: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    support::device_signature(&device.key, dir.path(), "tbs", hash_b64)
}

fn write_pdf(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `link` (made by whichever replica rendered the order) pointed at the replica `base`.
fn via(link: &str, base: &str) -> String {
    let path = &link[link.find("/sign/").expect("a signing link")..];
    format!("{base}{path}")
}

/// The signer page's confirmation step and the signature post; the post's status.
async fn sign_through_page(client: &Client, link: &str) -> u16 {
    let confirm = client
        .get(format!("{link}/confirm"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&confirm);
    client
        .post(format!("{link}/sign"))
        .form(&[("csrf", csrf.as_str()), ("lang", "en")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_enroll_upload_sign_and_download_a_range_as_one_server() {
    enroll_upload_sign_and_range_across(Storage::shared_data_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_enroll_upload_sign_and_download_a_range_as_one_server_on_object_storage() {
    if let Some(storage) = Storage::object_store() {
        enroll_upload_sign_and_range_across(storage).await;
    }
}

async fn enroll_upload_sign_and_range_across(storage: Storage) {
    let Some(fleet) = Fleet::start(3, storage).await else {
        return;
    };
    let api = fleet.api();
    let device = device_key(KeyKind::P256, "replica-device");

    // Enroll on the first, upload on the second, sign on the third.
    api.enroll(fleet.main(0), "replica-device", &device.csr_pem)
        .await;
    let (document_id, hash) = api.uploaded(fleet.main(1), "replica-device").await;
    let signature = device_sign(&device, &hash);
    let signed = api
        .post_signature(fleet.main(2), &document_id, &signature)
        .await
        .unwrap();
    assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());

    // The first downloads it whole and in part.
    let (status, whole) = api.download(fleet.main(0), &document_id).await;
    assert_eq!(status, 200);
    let ranged = fleet
        .client
        .get(format!("{}/documents/{document_id}/file", fleet.main(0)))
        .bearer_auth(&fleet.api_key)
        .header("Range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &whole[100..200]);
    let pdf = write_pdf(fleet.storage.scratch(), "signed.pdf", &whole);
    signet_testkit::assert_pyhanko_accepts(&pdf, &fleet.ca_pem_file().await, 1, &[]);

    // Every replica serves the same CA.
    let mut cas = HashSet::new();
    for index in 0..3 {
        cas.insert(get_text(&fleet.client, &format!("{}/ca/ca.pem", fleet.main(index))).await);
    }
    assert_eq!(cas.len(), 1);

    // One document signed through two replicas at once: one wins, the other is refused with
    // the error body, and the file holds one signature.
    let (document_id, hash) = api.uploaded(fleet.main(0), "replica-device").await;
    let signature = device_sign(&device, &hash);
    let (a, b) = tokio::join!(
        api.post_signature(fleet.main(1), &document_id, &signature),
        api.post_signature(fleet.main(2), &document_id, &signature),
    );
    let mut statuses = Vec::new();
    for response in [a.unwrap(), b.unwrap()] {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status != 200 {
            assert!((400..500).contains(&status), "{status} {body}");
            assert_eq!(body["status"], "ERROR", "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    let (status, bytes) = api.download(fleet.main(0), &document_id).await;
    assert_eq!(status, 200);
    let pdf = write_pdf(fleet.storage.scratch(), "raced.pdf", &bytes);
    signet_testkit::assert_pyhanko_accepts(&pdf, &fleet.ca_pem_file().await, 1, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_three_signers_sign_at_once_through_three_replicas_and_all_signatures_hold() {
    three_signers_at_once(Storage::shared_data_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_three_signers_sign_at_once_through_three_replicas_and_all_signatures_hold_on_object_storage(
) {
    if let Some(storage) = Storage::object_store() {
        three_signers_at_once(storage).await;
    }
}

async fn three_signers_at_once(storage: Storage) {
    let Some(fleet) = Fleet::start(3, storage).await else {
        return;
    };
    // One priority group: all three may sign at once.
    let signers = [
        person("INTERNAL", "sAMAccountName=cborgstrom", None),
        person("INTERNAL", "jdoe", None),
        person("EXTERNAL", "200001011907", None),
    ];
    let created = fleet
        .client
        .post(format!("{}/orders", fleet.automation(0)))
        .multipart(order_form(&signers))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let order_id = created.text().await.unwrap();
    let order = get_json(
        &fleet.client,
        &format!("{}/orders/{order_id}", fleet.automation(1)),
    )
    .await;
    let links: Vec<String> = (0..3)
        .map(|i| {
            order["signers"][i]["signingUrl"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();

    let pages = browserless();
    let through: Vec<String> = (0..3).map(|i| via(&links[i], fleet.main(i))).collect();
    let (a, b, c) = tokio::join!(
        sign_through_page(&pages, &through[0]),
        sign_through_page(&pages, &through[1]),
        sign_through_page(&pages, &through[2]),
    );
    assert_eq!([a, b, c], [303, 303, 303]);

    // The same signer twice, through two replicas at once: one signature, no server error.
    let order_id_2 = fleet
        .client
        .post(format!("{}/orders", fleet.automation(2)))
        .multipart(order_form(&signers[..1]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let order_2 = get_json(
        &fleet.client,
        &format!("{}/orders/{order_id_2}", fleet.automation(2)),
    )
    .await;
    let link = order_2["signers"][0]["signingUrl"].as_str().unwrap();
    let (on_first, on_second) = (via(link, fleet.main(0)), via(link, fleet.main(1)));
    let (first, second) = tokio::join!(
        sign_through_page(&pages, &on_first),
        sign_through_page(&pages, &on_second),
    );
    assert!(first < 500 && second < 500, "{first} {second}");

    let ca = fleet.ca_pem_file().await;
    for (id, signatures, automation) in [(&order_id, 3, 2), (&order_id_2, 1, 0)] {
        let order = get_json(
            &fleet.client,
            &format!("{}/orders/{id}", fleet.automation(automation)),
        )
        .await;
        assert_eq!(order["state"], "ACCEPTED", "{order}");
        assert_eq!(order["document"]["signatures"], signatures, "{order}");
        let document = get_bytes(
            &fleet.client,
            &format!("{}/orders/{id}/document", fleet.automation(1)),
        )
        .await;
        let pdf = write_pdf(fleet.storage.scratch(), &format!("{id}.pdf"), &document);
        signet_testkit::assert_pyhanko_accepts(&pdf, &ca, signatures, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_device_flows_spread_over_three_replicas_are_all_valid() {
    fifty_flows(Storage::shared_data_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_device_flows_spread_over_three_replicas_are_all_valid_on_object_storage()
{
    if let Some(storage) = Storage::object_store() {
        fifty_flows(storage).await;
    }
}

async fn fifty_flows(storage: Storage) {
    let Some(fleet) = Fleet::start(3, storage).await else {
        return;
    };
    let api = fleet.api();
    let device = std::sync::Arc::new(device_key(KeyKind::P256, "flow"));
    let bases: Vec<String> = (0..3).map(|i| fleet.main(i).to_owned()).collect();
    let flows = (0..50).map(|i| {
        let (api, device, bases) = (api.clone(), device.clone(), bases.clone());
        tokio::spawn(async move {
            let signer = format!("flow-{i}");
            api.enroll(&bases[i % 3], &signer, &device.csr_pem).await;
            let (document_id, hash) = api.uploaded(&bases[(i + 1) % 3], &signer).await;
            let key = device.clone();
            let signature = tokio::task::spawn_blocking(move || device_sign(&key, &hash))
                .await
                .unwrap();
            let signed = api
                .post_signature(&bases[(i + 2) % 3], &document_id, &signature)
                .await
                .unwrap();
            assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
            let (status, bytes) = api.download(&bases[i % 3], &document_id).await;
            assert_eq!(status, 200);
            bytes
        })
    });
    let files: Vec<Vec<u8>> = futures::future::join_all(flows)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let ca = fleet.ca_pem_file().await;
    for (i, bytes) in files.iter().enumerate() {
        let pdf = write_pdf(fleet.storage.scratch(), &format!("flow-{i}.pdf"), bytes);
        signet_testkit::assert_pyhanko_accepts(&pdf, &ca, 1, &[]);
    }
}

/// Every blob key the database names, with the row that names it.
async fn named_blobs(database_url: &str) -> Vec<(String, String)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(database_url).await.unwrap();
    let mut named = Vec::new();
    for (sql, kind) in [
        (
            "SELECT document_id AS id, prepared_blob AS a, signed_blob AS b FROM documents",
            "document",
        ),
        (
            "SELECT order_id AS id, document_blob AS a, NULL AS b FROM orders",
            "order",
        ),
    ] {
        for row in sqlx::query(sql).fetch_all(&mut conn).await.unwrap() {
            let id: String = row.get("id");
            for column in ["a", "b"] {
                if let Some(key) = row.get::<Option<String>, _>(column) {
                    named.push((format!("{kind} {id}"), key));
                }
            }
        }
    }
    named
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_replica_mid_burst_loses_nothing_acknowledged_and_it_restarts_cleanly() {
    kill_mid_burst(Storage::shared_data_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_a_replica_mid_burst_loses_nothing_acknowledged_and_it_restarts_cleanly_on_object_storage(
) {
    if let Some(storage) = Storage::object_store() {
        kill_mid_burst(storage).await;
    }
}

async fn kill_mid_burst(storage: Storage) {
    let Some(mut fleet) = Fleet::start(3, storage).await else {
        return;
    };
    let api = fleet.api();
    let device = std::sync::Arc::new(device_key(KeyKind::P256, "burst"));
    api.enroll(fleet.main(0), "burst", &device.csr_pem).await;
    let victim_id = fleet.replica_id(1);

    // A burst of upload-and-sign flows over all three replicas; replica 1 dies in the middle.
    let bases: Vec<String> = (0..3).map(|i| fleet.main(i).to_owned()).collect();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let flows: Vec<_> = (0..45)
        .map(|i| {
            let (api, device, bases) = (api.clone(), device.clone(), bases.clone());
            let answered = answered.clone();
            tokio::spawn(async move {
                // Each flow stays on one replica, so a dead replica fails its own flows only.
                let base = &bases[i % 3];
                let Ok(response) = api.upload(base, "burst").await else {
                    return None;
                };
                if response.status() != 200 {
                    return None;
                }
                let body: Value = response.json().await.ok()?;
                answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let document_id = body["documentId"].as_str()?.to_owned();
                let hash = body["hash"].as_str()?.to_owned();
                let key = device.clone();
                let signature = tokio::task::spawn_blocking(move || device_sign(&key, &hash))
                    .await
                    .unwrap();
                let signed = match api.post_signature(base, &document_id, &signature).await {
                    Ok(response) => response.status() == 200,
                    Err(_) => false,
                };
                Some((document_id, signature, signed))
            })
        })
        .collect();
    // In the middle: once a fifth of the uploads have been answered.
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 9 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut victim = fleet.replicas[1].take().unwrap();
    victim.child.kill().unwrap();
    victim.child.wait().unwrap();
    let acknowledged: Vec<(String, String, bool)> = futures::future::join_all(flows)
        .await
        .into_iter()
        .filter_map(|flow| flow.unwrap())
        .collect();
    let signed_in_burst = acknowledged.iter().filter(|(_, _, signed)| *signed).count();
    eprintln!(
        "45 flows: {} uploads and {signed_in_burst} signatures acknowledged",
        acknowledged.len()
    );

    // Every acknowledged upload is still there: one whose signature was not acknowledged (its
    // replica died first, perhaps half-way through filling it) is signed through a survivor.
    // Every file is downloadable from both survivors, and every signature holds.
    let ca = fleet.ca_pem_file().await;
    assert!(signed_in_burst > 0, "no signature was acknowledged");
    for (n, (document_id, signature, was_signed)) in acknowledged.iter().enumerate() {
        if !was_signed {
            let response = api
                .post_signature(fleet.main(0), document_id, signature)
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
        let (status, bytes) = api.download(fleet.main(0), document_id).await;
        assert_eq!(status, 200, "{document_id}");
        let (status, again) = api.download(fleet.main(2), document_id).await;
        assert_eq!((status, &again), (200, &bytes), "{document_id}");
        let pdf = write_pdf(fleet.storage.scratch(), &format!("burst-{n}.pdf"), &bytes);
        signet_testkit::assert_pyhanko_accepts(&pdf, &ca, 1, &[]);
    }

    // No row names a missing file.
    for (row, key) in named_blobs(&fleet.database_url).await {
        assert!(
            fleet.storage.holds(&key).await,
            "{row} names {key}, which is missing"
        );
    }
    let blobs = fleet.storage.data_dir(0).join("blobs");

    // The killed replica starts again, and its restart sweeps the dead process's temporary
    // directory (what it was uploading when it died) while leaving the live ones' alone.
    let tmp = blobs.join("tmp");
    let live: Vec<String> = [0, 2].iter().map(|&i| fleet.replica_id(i)).collect();
    assert!(
        tmp.join(format!("{victim_id}.lock")).exists(),
        "kill -9 leaves its lock file"
    );
    let restarted = fleet.spawn(1);
    assert!(
        !tmp.join(&victim_id).exists(),
        "the dead replica's tmp/ was swept"
    );
    assert!(!tmp.join(format!("{victim_id}.lock")).exists());
    for id in &live {
        assert!(tmp.join(id).is_dir(), "a live replica's tmp/ was swept");
    }
    fleet.replicas[1] = Some(restarted);
    let (document_id, hash) = api.uploaded(fleet.main(1), "burst").await;
    let signed = api
        .post_signature(fleet.main(2), &document_id, &device_sign(&device, &hash))
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    let (status, _) = api.download(fleet.main(1), &document_id).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_replica_whose_ca_is_not_the_installations_refuses_to_start() {
    let Some(fleet) = Fleet::start(1, Storage::shared_data_dir()).await else {
        return;
    };
    // A copy of the data directory, as a replica with its own volume has...
    let copy = fleet.storage.scratch().join("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fleet.storage.data_dir(0))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    // ...whose CA was replaced by another installation's (`signet ca show --init` makes one).
    let other = fleet.storage.scratch().join("other");
    let made = support::signet_command()
        .args(["ca", "show", "--init", "--data-dir"])
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    for file in ["ca.key", "ca.pem"] {
        std::fs::copy(other.join("ca").join(file), copy.join("ca").join(file)).unwrap();
    }

    let (status, log) = match fleet.try_spawn_on(&copy) {
        Ok(_) => panic!("a replica with another CA started"),
        Err(refused) => refused,
    };
    assert!(!status.success());
    let log = log.join("\n");
    assert!(
        log.contains("is not the CA this database was set up with"),
        "{log}"
    );

    // The copy with the installation's own CA back starts.
    for file in ["ca.key", "ca.pem"] {
        std::fs::copy(
            fleet.storage.data_dir(0).join("ca").join(file),
            copy.join("ca").join(file),
        )
        .unwrap();
    }
    let started = fleet.try_spawn_on(&copy);
    assert!(started.is_ok(), "{:?}", started.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_replica_sends_the_outbox_and_each_webhook_arrives_exactly_once() {
    use sqlx::{Connection, Row};
    let storage = Storage::shared_data_dir();
    // The receiver checks signatures with the secret the first replica generates.
    let receiver = crate::webhooks::Receiver::for_data_dir(&storage.data_dir(0), 0);
    let url = receiver.url();
    let env = [
        ("SIGNET_WEBHOOK_URL", url.as_str()),
        ("SIGNET_OUTBOX_POLL_MILLIS", "50"),
    ];
    let Some(fleet) = Fleet::start_with(3, storage, &env).await else {
        return;
    };
    // Orders created and signed through every replica: each change queues its webhooks.
    let pages = browserless();
    for i in 0..9 {
        let created = fleet
            .client
            .post(format!("{}/orders", fleet.automation(i)))
            .multipart(order_form(&[person("INTERNAL", "jdoe", None)]))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        let id = created.text().await.unwrap();
        let order = get_json(
            &fleet.client,
            &format!("{}/orders/{id}", fleet.automation(i)),
        )
        .await;
        let link = order["signers"][0]["signingUrl"].as_str().unwrap();
        assert_eq!(
            sign_through_page(&pages, &via(link, fleet.main(i + 1))).await,
            303
        );
    }

    // Wait (bounded) until the three senders have delivered every row.
    let mut conn = sqlx::PgConnection::connect(&fleet.database_url)
        .await
        .unwrap();
    let count = |sql: &'static str| sqlx::query(sql);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = count(
            "SELECT COUNT(*) AS n FROM outbox WHERE channel = 'WEBHOOK' AND delivered_at IS NULL",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
        if pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{pending} webhooks still pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: i64 = count("SELECT COUNT(*) AS n FROM outbox WHERE channel = 'WEBHOOK'")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    assert!(rows >= 9 * 3, "{rows} webhook rows");

    let requests = receiver.requests_as_received();
    let mut seen = HashSet::new();
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert!(
            seen.insert(request["id"].as_str().unwrap().to_owned()),
            "delivered twice: {request}"
        );
    }
    assert_eq!(seen.len() as i64, rows);
}

// ---- the jobs, exactly once across replicas ---------------------------------------------------

/// The job loop of every replica ticks each second (order expiry, signer expiry, archive
/// timestamps), so all three race for the same due rows as soon as they fall due.
const JOBS_EVERY_SECOND: (&str, &str) = ("SIGNET_JOB_INTERVAL_SECONDS", "1");

/// How long a test waits for the replicas' jobs to reach a state (a bound on waiting, not a
/// timed assertion: each job pass runs every second, the deadline is many passes away).
const JOBS_DEADLINE: Duration = Duration::from_secs(120);

/// Seconds since the epoch, as the tables keep times.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Fleet {
    /// A connection to the fleet's schema, for the test's own questions and for moving a due
    /// date forward (the one thing a black-box test cannot wait for).
    async fn database(&self) -> sqlx::PgConnection {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&self.database_url)
            .await
            .unwrap()
    }

    /// Waits (bounded by [`JOBS_DEADLINE`]) until `sql`, a `SELECT COUNT(*) AS n …`, answers 0.
    async fn wait_until_none(&self, what: &str, sql: &'static str) {
        use sqlx::Row;
        let mut conn = self.database().await;
        let deadline = std::time::Instant::now() + JOBS_DEADLINE;
        loop {
            let left: i64 = sqlx::query(sql)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .get("n");
            if left == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{left} {what} after {JOBS_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every JSON line any replica logged with `message`, with the replica's index, once there
    /// are at least `expected` (bounded by [`JOBS_DEADLINE`]): a line is logged after its commit,
    /// and read from the child's pipe a moment later, so the rows may change before it shows.
    async fn logged(&self, message: &str, expected: usize) -> Vec<(usize, Value)> {
        let deadline = std::time::Instant::now() + JOBS_DEADLINE;
        loop {
            let lines = self.logged_now(message);
            if lines.len() >= expected || std::time::Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logged_now(&self, message: &str) -> Vec<(usize, Value)> {
        self.replicas
            .iter()
            .enumerate()
            .flat_map(|(index, replica)| {
                replica
                    .iter()
                    .flat_map(|replica| replica.log())
                    .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
                    .filter(|value| value["message"] == message)
                    .map(move |value| (index, value))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// How often each of `ids` occurs in `found`; fails on an id not in `ids`.
fn tally(ids: &[String], found: impl IntoIterator<Item = String>) -> Vec<(&str, usize)> {
    let mut counts: Vec<(&str, usize)> = ids.iter().map(|id| (id.as_str(), 0)).collect();
    for id in found {
        let slot = counts
            .iter_mut()
            .find(|(known, _)| *known == id)
            .unwrap_or_else(|| panic!("{id} was not one of the test's"));
        slot.1 += 1;
    }
    counts
}

/// Which replica did how many of the job's items (printed, not asserted: the split is the
/// scheduler's).
fn report_split(what: &str, done: &[(usize, Value)]) {
    let mut per_replica = [0usize; 3];
    for (index, _) in done {
        per_replica[*index] += 1;
    }
    eprintln!("{what} per replica: {per_replica:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_and_signers_falling_due_under_three_replicas_each_expire_exactly_once() {
    use sqlx::Row;
    let storage = Storage::shared_data_dir();
    // The receiver checks signatures with the secret the first replica generates.
    let receiver = crate::webhooks::Receiver::for_data_dir(&storage.data_dir(0), 0);
    let url = receiver.url();
    let env = [
        ("SIGNET_WEBHOOK_URL", url.as_str()),
        ("SIGNET_OUTBOX_POLL_MILLIS", "50"),
        JOBS_EVERY_SECOND,
    ];
    let Some(fleet) = Fleet::start_with(3, storage, &env).await else {
        return;
    };

    // Arrange: PENDING orders created through every replica, and enrolled signers.
    let mut orders = Vec::new();
    for i in 0..24 {
        let created = fleet
            .client
            .post(format!("{}/orders", fleet.automation(i)))
            .multipart(order_form(&[person("INTERNAL", "jdoe", None)]))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 200);
        orders.push(created.text().await.unwrap());
    }
    let api = fleet.api();
    let device = device_key(KeyKind::P256, "expiring");
    let signers: Vec<String> = (0..12).map(|i| format!("expiring-{i}")).collect();
    for (i, signer) in signers.iter().enumerate() {
        api.enroll(fleet.main(i), signer, &device.csr_pem).await;
    }

    // Act: their due dates (an order's due date, a signer's certificate end) come in the next
    // three seconds, spread so that several job passes on every replica find some due.
    let mut conn = fleet.database().await;
    for (i, id) in orders.iter().enumerate() {
        sqlx::query("UPDATE orders SET due_at = $1 WHERE order_id = $2")
            .bind(unix_now() + 1 + (i % 3) as i64)
            .bind(id)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for (i, signer) in signers.iter().enumerate() {
        sqlx::query("UPDATE signers SET not_after = $1 WHERE signer_id = $2")
            .bind(unix_now() + 1 + (i % 3) as i64)
            .bind(signer)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    fleet
        .wait_until_none(
            "orders still PENDING",
            "SELECT COUNT(*) AS n FROM orders WHERE state = 'PENDING'",
        )
        .await;
    fleet
        .wait_until_none(
            "signers not EXPIRED",
            "SELECT COUNT(*) AS n FROM signers WHERE status <> 'EXPIRED'",
        )
        .await;
    fleet
        .wait_until_none(
            "webhooks still pending",
            "SELECT COUNT(*) AS n FROM outbox WHERE channel = 'WEBHOOK' AND delivered_at IS NULL",
        )
        .await;

    // Assert: every replica shows each order EXPIRED with one ORDER_EXPIRED event...
    for (i, id) in orders.iter().enumerate() {
        let order = get_json(
            &fleet.client,
            &format!("{}/orders/{id}", fleet.automation(i + 1)),
        )
        .await;
        assert_eq!(order["state"], "EXPIRED", "{order}");
        let events = get_json(
            &fleet.client,
            &format!("{}/orders/{id}/events", fleet.automation(i + 2)),
        )
        .await;
        let expired = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "ORDER_EXPIRED")
            .count();
        assert_eq!(expired, 1, "{id}: {events:?}");
    }
    // ...and so does the events table as a whole.
    let rows = sqlx::query("SELECT order_id FROM events WHERE event = 'ORDER_EXPIRED'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let in_table = tally(&orders, rows.iter().map(|row| row.get("order_id")));
    assert!(in_table.iter().all(|(_, n)| *n == 1), "{in_table:?}");

    // One ORDER_EXPIRED webhook per order, each message delivered once.
    let requests = receiver.requests_as_received();
    let mut message_ids = HashSet::new();
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert!(
            message_ids.insert(request["id"].as_str().unwrap().to_owned()),
            "delivered twice: {request}"
        );
    }
    let hooks = tally(
        &orders,
        requests
            .iter()
            .filter(|r| r["body"]["type"] == "ORDER_EXPIRED")
            .map(|r| r["body"]["data"]["orderId"].as_str().unwrap().to_owned()),
    );
    assert!(hooks.iter().all(|(_, n)| *n == 1), "{hooks:?}");

    // One replica logged each expiry; the signers are EXPIRED on every replica.
    let orders_done = fleet
        .logged("order expired: its due date passed", orders.len())
        .await;
    let logged = tally(
        &orders,
        orders_done
            .iter()
            .map(|(_, line)| line["order.id"].as_str().unwrap().to_owned()),
    );
    assert!(logged.iter().all(|(_, n)| *n == 1), "{logged:?}");
    report_split("orders expired", &orders_done);
    let signers_done = fleet
        .logged(
            "signer expired: certificate ran out without renewal",
            signers.len(),
        )
        .await;
    let logged = tally(
        &signers,
        signers_done
            .iter()
            .map(|(_, line)| line["signer.id"].as_str().unwrap().to_owned()),
    );
    assert!(logged.iter().all(|(_, n)| *n == 1), "{logged:?}");
    report_split("signers expired", &signers_done);
    for (i, signer) in signers.iter().enumerate() {
        let shown: Value = fleet
            .client
            .get(format!("{}/signers/{signer}", fleet.main(i + 1)))
            .bearer_auth(&fleet.api_key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(shown["signerStatus"], "EXPIRED", "{shown}");
    }
}

/// `/Type /DocTimeStamp` dictionaries in a PDF: one per document timestamp.
fn document_timestamps(pdf: &[u8]) -> usize {
    let needle = b"/Type /DocTimeStamp";
    pdf.windows(needle.len()).filter(|w| *w == needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b_lta_files_falling_due_under_three_replicas_each_get_exactly_one_archive_timestamp() {
    one_archive_timestamp_each(Storage::shared_data_dir()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn b_lta_files_falling_due_under_three_replicas_each_get_exactly_one_archive_timestamp_on_object_storage(
) {
    if let Some(storage) = Storage::object_store() {
        one_archive_timestamp_each(storage).await;
    }
}

async fn one_archive_timestamp_each(storage: Storage) {
    let env = [("SIGNET_SIGNATURE_LEVEL", "PADES_B_LTA"), JOBS_EVERY_SECOND];
    let Some(fleet) = Fleet::start_with(3, storage, &env).await else {
        return;
    };
    let api = fleet.api();

    // Arrange: B-LTA documents signed through every replica, and one-signer orders signed
    // through their pages; each file ends with one document timestamp. More files than one
    // claim takes (16), so the replicas' passes share them out.
    let device = device_key(KeyKind::P256, "archivist");
    api.enroll(fleet.main(0), "archivist", &device.csr_pem)
        .await;
    let mut documents = Vec::new();
    for i in 0..18 {
        let (document_id, hash) = api.uploaded(fleet.main(i), "archivist").await;
        let signed = api
            .post_signature(
                fleet.main(i + 1),
                &document_id,
                &device_sign(&device, &hash),
            )
            .await
            .unwrap();
        assert_eq!(signed.status(), 200, "{}", signed.text().await.unwrap());
        documents.push(document_id);
    }
    let pages = browserless();
    let mut orders = Vec::new();
    for i in 0..3 {
        let id = fleet
            .client
            .post(format!("{}/orders", fleet.automation(i)))
            .multipart(order_form(&[person("INTERNAL", "jdoe", None)]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let order = get_json(
            &fleet.client,
            &format!("{}/orders/{id}", fleet.automation(i)),
        )
        .await;
        let link = order["signers"][0]["signingUrl"].as_str().unwrap();
        assert_eq!(
            sign_through_page(&pages, &via(link, fleet.main(i + 1))).await,
            303
        );
        orders.push(id);
    }
    let order_file = |i: usize, id: &str| {
        let (client, base) = (fleet.client.clone(), fleet.automation(i).to_owned());
        let url = format!("{base}/orders/{id}/document");
        async move { get_bytes(&client, &url).await }
    };
    let mut before = Vec::new();
    for (i, id) in documents.iter().enumerate() {
        let (status, bytes) = api.download(fleet.main(i), id).await;
        assert_eq!(status, 200);
        before.push(bytes);
    }
    for (i, id) in orders.iter().enumerate() {
        before.push(order_file(i, id).await);
    }
    assert!(before.iter().all(|pdf| document_timestamps(pdf) == 1));

    // Act: the files' document timestamps end tomorrow, well inside the 60-day margin, as if
    // the TSA certificate that made them were three years old (the in-process test with a
    // manual clock shows that case itself); the replicas' job passes find them due at once.
    let tomorrow = unix_now() + 24 * 60 * 60;
    let mut conn = fleet.database().await;
    for table in ["documents", "orders"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET archive_expires_at = $1 WHERE archive_expires_at IS NOT NULL"
        )))
        .bind(tomorrow)
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let due = "SELECT (SELECT COUNT(*) FROM documents WHERE archive_expires_at <= \
               EXTRACT(EPOCH FROM NOW()) + 86400 * 90) + (SELECT COUNT(*) FROM orders WHERE \
               archive_expires_at <= EXTRACT(EPOCH FROM NOW()) + 86400 * 90) AS n";
    fleet.wait_until_none("files still due", due).await;

    // Assert: each file, read through another replica, got exactly one more document timestamp,
    // appended, and validates in pyHanko (and the other judges) with both.
    let ca = fleet.ca_pem_file().await;
    let mut after = Vec::new();
    for (i, id) in documents.iter().enumerate() {
        let (status, bytes) = api.download(fleet.main(i + 2), id).await;
        assert_eq!(status, 200);
        after.push(bytes);
    }
    for (i, id) in orders.iter().enumerate() {
        after.push(order_file(i + 2, id).await);
    }
    for (n, (old, new)) in before.iter().zip(&after).enumerate() {
        assert_eq!(document_timestamps(new), 2, "file {n}");
        assert!(
            new.starts_with(old),
            "file {n} was rewritten, not appended to"
        );
        let pdf = write_pdf(fleet.storage.scratch(), &format!("archived-{n}.pdf"), new);
        crate::levels::assert_long_term_valid(&pdf, &ca, 1, 2);
    }
    let renewed = fleet
        .logged("added an archive timestamp", before.len())
        .await;
    assert_eq!(renewed.len(), before.len(), "{renewed:?}");
    report_split("archive timestamps", &renewed);
}
