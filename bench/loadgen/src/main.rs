//! `signet-loadgen`: drives a running Signet with concurrent requests and reports throughput and
//! latency percentiles. Inputs (fresh key pairs and CSRs) are made before the clock starts, so
//! the figures measure the server, not the generator.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Cli {
    /// Base URL of the server; for the `documents` scenario several, comma-separated, for
    /// replicas of one installation: each request then goes to the next one in turn (as a round-robin load balancer sends
    /// them), so the steps of one flow land on different replicas.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (Bearer); the Automation API needs none.
    #[arg(long, env = "SIGNET_API_KEY", default_value = "")]
    api_key: String,
    /// Concurrent connections.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// PEM CA certificate that signs the server's certificate, for `https://` URLs.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// POST /signers, each with a fresh P-256 key and CSR.
    Enroll {
        /// Number of enrollments.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
    },
    /// `POST /orders` on the Automation API: a PDF and two EXTERNAL signers from the directory
    /// file (start the server with `--directory-file bench/people.json`).
    Orders {
        /// Number of orders.
        #[arg(long, default_value_t = 5_000)]
        orders: usize,
        /// Size of each PDF, in KiB.
        #[arg(long, default_value_t = 100)]
        size_kib: usize,
        /// Base URL of the Automation API listener.
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        automation_url: String,
    },
    /// The device flow per document: upload a PDF, sign the returned `hash` with the device's
    /// P-256 key, post the signature, download the signed PDF. One signer, enrolled first.
    Documents {
        /// Number of documents.
        #[arg(long, default_value_t = 5_000)]
        documents: usize,
        /// Size of each PDF, in KiB.
        #[arg(long, default_value_t = 100)]
        size_kib: usize,
        /// `signatureLevel` of each signature (`PADES_B_B` … `PADES_B_LTA`); the server's
        /// default level when absent.
        #[arg(long)]
        signature_level: Option<String>,
    },
    /// One document through the device flow, for read benchmarks: prints the signer id and
    /// the signed document's id (one line, space-separated).
    SignOne {
        /// Size of the PDF, in KiB.
        #[arg(long, default_value_t = 170)]
        size_kib: usize,
        /// `signatureLevel` of the signature; the server's default level when absent.
        #[arg(long)]
        signature_level: Option<String>,
    },
    /// New connections: each request a fresh TCP connection (and, over https, a full TLS
    /// handshake: no session resumption) for a small GET, closed after it.
    Connections {
        /// Number of connections.
        #[arg(long, default_value_t = 20_000)]
        connections: usize,
        /// What each connection asks for.
        #[arg(long, default_value = "/ca/ca.pem")]
        path: String,
    },
}

/// Which of `--url`'s base URLs the next request goes to.
static NEXT_BASE: AtomicUsize = AtomicUsize::new(0);

impl Cli {
    /// The base URL for the next request: `--url`'s next entry, round robin.
    fn base(&self) -> &str {
        let count = self.url.split(',').count();
        let index = NEXT_BASE.fetch_add(1, Ordering::Relaxed) % count;
        self.url.split(',').nth(index).unwrap_or(&self.url)
    }
}

/// The HTTP client of every scenario: `idle` kept-alive connections per host (0: a new
/// connection per request), and the given CA trusted for https with resumption off, so every
/// new connection is a full handshake.
fn http_client(cli: &Cli, idle: usize) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().pool_max_idle_per_host(idle);
    let Some(ca) = &cli.ca else {
        return Ok(builder.build()?);
    };
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(certificate?)?;
    }
    #[expect(
        deprecated,
        reason = "ring, as the server uses (no post-quantum key exchange)"
    )]
    let mut provider = rustls::crypto::ring::default_provider();
    // X25519 first, as curl, OpenSSL and browsers offer it (ring's own list starts with P-384).
    provider.kx_groups = vec![
        rustls::crypto::ring::kx_group::X25519,
        rustls::crypto::ring::kx_group::SECP256R1,
        rustls::crypto::ring::kx_group::SECP384R1,
    ];
    let provider = Arc::new(provider);
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(builder.use_preconfigured_tls(config).build()?)
}

/// Latency summary of one run.
struct Report {
    completed: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Report {
    fn print(&mut self, what: &str) {
        self.latencies.sort_unstable();
        let pick = |q: f64| {
            let index = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
            self.latencies.get(index).copied().unwrap_or_default()
        };
        println!(
            "{what}: {} ok, {} failed in {:.2}s -> {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.completed,
            self.failed,
            self.elapsed.as_secs_f64(),
            self.completed as f64 / self.elapsed.as_secs_f64(),
            pick(0.50).as_secs_f64() * 1e3,
            pick(0.99).as_secs_f64() * 1e3,
            pick(1.0).as_secs_f64() * 1e3,
        );
    }
}

fn fresh_csrs(count: usize) -> anyhow::Result<Vec<String>> {
    (0..count)
        .map(|i| {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let params = rcgen::CertificateParams::new(Vec::<String>::new())?;
            let mut params = params;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("bench device {i}"));
            Ok(params.serialize_request(&key)?.pem()?)
        })
        .collect()
}

/// Sends `bodies` as POSTs to `path` over `concurrency` workers; records each latency.
async fn drive(cli: &Cli, path: &str, bodies: Vec<serde_json::Value>) -> anyhow::Result<Report> {
    let client = http_client(cli, cli.concurrency)?;
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let url = format!("{}{path}", cli.url);
    let start = Instant::now();
    let workers = (0..cli.concurrency).map(|_| {
        let (client, bodies, next, url, key) = (
            client.clone(),
            bodies.clone(),
            next.clone(),
            url.clone(),
            cli.api_key.clone(),
        );
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let sent = Instant::now();
                let ok = match client.post(&url).bearer_auth(&key).json(body).send().await {
                    Ok(response) => {
                        let status = response.status();
                        let text = response.text().await.unwrap_or_default();
                        status.is_success() && text.contains("\"OK\"")
                    }
                    Err(_) => false,
                };
                if ok {
                    latencies.push(sent.elapsed());
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        })
    });
    let mut report = Report {
        completed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for worker in futures::future::join_all(workers).await {
        let (latencies, failed) = worker.context("worker panicked")?;
        report.completed += latencies.len();
        report.failed += failed;
        report.latencies.extend(latencies);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// A device: a P-256 key whose public half is enrolled as `signer_id`. It signs with ring (as
/// the server verifies): the pure-Rust curve would cost the generator several times more CPU
/// per document, taken from the server it shares the machine with.
struct Device {
    signer_id: String,
    key: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

async fn enroll_device(cli: &Cli, client: &reqwest::Client) -> anyhow::Result<Device> {
    use p256::pkcs8::EncodePrivateKey;
    let key = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let pkcs8 = key.to_pkcs8_der().context("encoding the device key")?;
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_bytes())?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bench device");
    let csr = params.serialize_request(&key_pair)?.pem()?;
    let signer_id = format!("bench-documents-{}", std::process::id());
    let response = client
        .post(format!("{}/signers", cli.base()))
        .bearer_auth(&cli.api_key)
        .json(&serde_json::json!({"signerId": signer_id, "userId": "bench", "csr": csr}))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "enrollment failed: {}",
        response.text().await?
    );
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_bytes(),
        &rng,
    )
    .map_err(|e| anyhow::anyhow!("loading the device key into ring: {e}"))?;
    Ok(Device {
        signer_id,
        key,
        rng,
    })
}

/// One document through the whole flow; returns the signed file's size.
async fn document_flow(
    cli: &Cli,
    client: &reqwest::Client,
    device: &Device,
    pdf: &[u8],
) -> anyhow::Result<usize> {
    document_flow_with_id(cli, client, device, pdf)
        .await
        .map(|(_, size)| size)
}

/// [`document_flow`], also returning the document's id.
async fn document_flow_with_id(
    cli: &Cli,
    client: &reqwest::Client,
    device: &Device,
    pdf: &[u8],
) -> anyhow::Result<(String, usize)> {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let form = reqwest::multipart::Form::new()
        .text("signerId", device.signer_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(pdf.to_vec())
                .file_name("bench.pdf")
                .mime_str("application/pdf")?,
        );
    let uploaded: serde_json::Value = client
        .post(format!("{}/documents", cli.base()))
        .bearer_auth(&cli.api_key)
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = uploaded["documentId"].as_str().context("no documentId")?;
    let hash = base64.decode(uploaded["hash"].as_str().context("no hash")?)?;
    let signature = device
        .key
        .sign(&device.rng, &hash)
        .map_err(|e| anyhow::anyhow!("signing the hash: {e}"))?;
    let mut body = serde_json::json!({"signature": base64.encode(signature.as_ref())});
    if let Scenario::Documents {
        signature_level: Some(level),
        ..
    }
    | Scenario::SignOne {
        signature_level: Some(level),
        ..
    } = &cli.scenario
    {
        body["signatureLevel"] = serde_json::json!(level);
    }
    client
        .post(format!("{}/documents/{id}/signature", cli.base()))
        .bearer_auth(&cli.api_key)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    let signed = client
        .get(format!("{}/documents/{id}/file", cli.base()))
        .bearer_auth(&cli.api_key)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    anyhow::ensure!(
        signed.len() > pdf.len(),
        "the signed file is not larger than the upload"
    );
    Ok((id.to_owned(), signed.len()))
}

/// Runs `count` flows over `concurrency` workers, timing each; the first failure is printed.
async fn run_flows<F, Fut>(
    concurrency: usize,
    count: usize,
    what: &'static str,
    flow: F,
) -> anyhow::Result<Report>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (flow, next) = (flow.clone(), next.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let sent = Instant::now();
                match flow().await {
                    Ok(()) => latencies.push(sent.elapsed()),
                    Err(error) => {
                        if failed == 0 {
                            eprintln!("{what} failed: {error:#}");
                        }
                        failed += 1;
                    }
                }
            }
            (latencies, failed)
        })
    });
    let mut report = Report {
        completed: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for worker in futures::future::join_all(workers).await {
        let (latencies, failed) = worker.context("worker panicked")?;
        report.completed += latencies.len();
        report.failed += failed;
        report.latencies.extend(latencies);
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

async fn run_documents(
    cli: &Cli,
    documents: usize,
    size_kib: usize,
    signature_level: Option<String>,
) -> anyhow::Result<Report> {
    let client = http_client(cli, cli.concurrency)?;
    let device = Arc::new(enroll_device(cli, &client).await?);
    let pdf = Arc::new(signet_testkit::pdfs::classic_pdf_with_image(
        1,
        size_kib * 1024,
    ));
    let cli = Arc::new(Cli {
        url: cli.url.clone(),
        api_key: cli.api_key.clone(),
        concurrency: cli.concurrency,
        ca: cli.ca.clone(),
        scenario: Scenario::Documents {
            documents,
            size_kib,
            signature_level,
        },
    });
    let concurrency = cli.concurrency;
    run_flows(concurrency, documents, "document flow", move || {
        let (cli, client, device, pdf) = (cli.clone(), client.clone(), device.clone(), pdf.clone());
        async move { document_flow(&cli, &client, &device, &pdf).await.map(drop) }
    })
    .await
}

/// One signing order: the form as an application sends it.
async fn create_order(client: &reqwest::Client, url: &str, pdf: &[u8]) -> anyhow::Result<()> {
    let person = |identifier: &str| {
        serde_json::json!({"source": "EXTERNAL", "identifier": identifier, "attributes": {}})
            .to_string()
    };
    let form = reqwest::multipart::Form::new()
        .text("title", "Benchmark order")
        .text("description", "Two external signers")
        .part(
            "upload",
            reqwest::multipart::Part::bytes(pdf.to_vec()).file_name("bench.pdf"),
        )
        .text("solicitor", person("200001011907"))
        .text("signers", person("200001011907"))
        .text("signers", person("198603052385"));
    let response = client.post(url).multipart(form).send().await?;
    let status = response.status();
    let body = response.text().await?;
    anyhow::ensure!(status.is_success() && body.len() == 36, "{status}: {body}");
    Ok(())
}

async fn run_orders(
    cli: &Cli,
    automation_url: &str,
    orders: usize,
    size_kib: usize,
) -> anyhow::Result<Report> {
    let concurrency = cli.concurrency;
    let client = http_client(cli, concurrency)?;
    let pdf = Arc::new(signet_testkit::pdfs::classic_pdf_with_image(
        1,
        size_kib * 1024,
    ));
    let url = Arc::new(format!("{automation_url}/orders"));
    run_flows(concurrency, orders, "order", move || {
        let (client, pdf, url) = (client.clone(), pdf.clone(), url.clone());
        async move { create_order(&client, &url, &pdf).await }
    })
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.scenario {
        Scenario::Orders {
            orders,
            size_kib,
            automation_url,
        } => {
            let mut report = run_orders(&cli, automation_url, *orders, *size_kib).await?;
            report.print(&format!(
                "POST /orders ({size_kib} KiB PDF, two EXTERNAL signers)"
            ));
            anyhow::ensure!(report.failed == 0, "{} orders failed", report.failed);
        }
        Scenario::Documents {
            documents,
            size_kib,
            signature_level,
        } => {
            let (documents, size_kib) = (*documents, *size_kib);
            let level = signature_level.clone();
            let mut report = run_documents(&cli, documents, size_kib, level.clone()).await?;
            report.print(&format!(
                "documents ({size_kib} KiB upload -> sign {} -> download)",
                level.as_deref().unwrap_or("at the default level")
            ));
            anyhow::ensure!(report.failed == 0, "{} documents failed", report.failed);
        }
        Scenario::SignOne { size_kib, .. } => {
            let client = http_client(&cli, 1)?;
            let device = enroll_device(&cli, &client).await?;
            let pdf = signet_testkit::pdfs::classic_pdf_with_image(1, size_kib * 1024);
            let (id, _) = document_flow_with_id(&cli, &client, &device, &pdf).await?;
            println!("{} {id}", device.signer_id);
        }
        Scenario::Connections { connections, path } => {
            let client = http_client(&cli, 0)?;
            let url = Arc::new(format!("{}{path}", cli.url));
            let mut report = run_flows(cli.concurrency, *connections, "connection", move || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    client
                        .get(url.as_str())
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    Ok(())
                }
            })
            .await?;
            report.print(&format!("new connections (GET {path}, one per connection)"));
            anyhow::ensure!(report.failed == 0, "{} connections failed", report.failed);
        }
        Scenario::Enroll { requests } => {
            let requests = *requests;
            eprintln!("generating {requests} P-256 keys and CSRs...");
            let run_id = std::process::id();
            let bodies = fresh_csrs(requests)?
                .into_iter()
                .enumerate()
                .map(|(i, csr)| {
                    serde_json::json!({
                        "signerId": format!("bench-{run_id}-{i}"),
                        "userId": format!("user-{i}"),
                        "csr": csr,
                    })
                })
                .collect();
            let mut report = drive(&cli, "/signers", bodies).await?;
            report.print("POST /signers (fresh P-256 CSRs)");
            anyhow::ensure!(report.failed == 0, "{} enrollments failed", report.failed);
        }
    }
    Ok(())
}
