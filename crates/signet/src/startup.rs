//! Builds the application from [`Settings`] and runs it on a bound listener until a shutdown
//! future completes (the mini-redis shape: tests bind port 0 and stop the server when done).
//! Both listeners are served by Signet's own accept loop ([`serve`]), which bounds how long a
//! client may hold a connection and how many it may hold.

mod connection;
pub mod describe;
pub mod serve;
pub mod tls;
pub mod zero_copy;

use anyhow::Context;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

use crate::api;
use crate::api_key::create_api_key;
use crate::clock::Clock;
use crate::config::Settings;
use crate::data_dir;
use crate::jobs::outbox::{Deliver, Dispatcher};
use crate::jobs::JobRunner;
use crate::mail::deliver::MailDeliver;
use crate::mail::Mailer;
use crate::pki::{load_or_create_ca, write_private, Pki};
use crate::services::documents::DocumentService;
use crate::services::levels::LevelFinisher;
use crate::services::orders::OrderService;
use crate::services::reads::CachedReads;
use crate::services::signing_links::LinkKey;
use crate::services::timestamps::TimestampAuthority;
use crate::services::validation_data::ValidationDataCollector;
use crate::state::{AppState, SharedState};
use crate::store::blob_backend::Blobs;
use crate::store::outbox::{OutboxPolicy, OutboxStore};
use crate::store::{self, Store};
use crate::webhooks::Webhooks;
use serve::ConnectionLimits;

/// File in the data directory that receives the API key created on first start.
pub const INITIAL_API_KEY_FILE: &str = "initial-api-key";

/// A built, bound, not yet running Signet.
pub struct Application {
    listener: TcpListener,
    /// The Automation API's listener, when it is enabled.
    automation_listener: Option<TcpListener>,
    /// `--metrics-listen`'s listener, when metrics have their own address.
    metrics_listener: Option<TcpListener>,
    state: AppState,
    /// Sends the outbox (mail, webhooks).
    outbox: Arc<Dispatcher>,
    /// Timeouts and cap of each listener's connections.
    connections: ConnectionLimits,
    /// Where the first API key was written, when this start created it.
    pub initial_api_key_file: Option<PathBuf>,
    /// TLS of the main listener, when configured.
    tls: Option<Arc<tls::TlsListener>>,
    /// TLS of the Automation API listener, when configured.
    automation_tls: Option<Arc<tls::TlsListener>>,
}

/// Opens the store for the configured data directory (used by `serve` and the CLI): creates the
/// directory owner-only when it is missing, and warns about known paths of an existing one that
/// other users can reach (see [`crate::data_dir`]).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    prepare_data_dir(&settings.data_dir)?;
    store::connect_with(&settings.database_url(), settings.database_max_connections).await
}

/// Creates the data directory (0700) when it is missing, else checks the modes of what is there.
pub fn prepare_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    if data_dir.exists() {
        data_dir::warn_about_loose_paths(data_dir);
        return Ok(());
    }
    data_dir::create_private_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listeners = if settings.automation_api.enabled {
            2
        } else {
            1
        };
        let connections = ConnectionLimits::from_settings(&settings, listeners)?;
        let (main_tls, automation_tls) = tls_from_settings(&settings)?;
        describe::log_start_up(&settings);
        if settings.metrics {
            // Before anything is counted: what is recorded without a recorder is lost.
            crate::telemetry::metrics::install();
        }
        let store = open_store(&settings).await?;
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let bound = listener.local_addr()?;
        let public_url = settings.public_url(bound);
        let ca = load_or_create_ca(&settings.data_dir, clock.now())?;
        check_ca_of_installation(store.as_ref(), &ca, &settings.data_dir, clock.now()).await?;
        let validity = time::Duration::days(i64::from(settings.certificate_validity_days));
        let pki = Arc::new(
            Pki::new(ca, validity, &public_url)
                .with_ltv_services(&settings.data_dir, clock.now())?,
        );
        let timestamps = Arc::new(
            TimestampAuthority::from_settings(&settings.tsa, pki.clone(), clock.clone())
                .context("setting up the timestamp authority")?,
        );
        tracing::info!(tsa = %timestamps.describe(), signature_level = %settings.signature_level, "timestamps and the default signature level");
        let initial_api_key_file =
            ensure_first_api_key(store.as_ref(), &settings.data_dir, clock.as_ref()).await?;
        let env = settings.object_store_env.clone().unwrap_or_else(|| {
            std::env::vars_os()
                .filter_map(|(name, value)| {
                    Some((name.into_string().ok()?, value.into_string().ok()?))
                })
                .collect()
        });
        let blobs = Blobs::open(
            settings.blob_url.as_deref(),
            &settings.data_dir,
            env,
            tokio::runtime::Handle::current(),
        )
        .with_context(|| {
            format!(
                "opening the document store in {}",
                settings.blob_url.as_deref().unwrap_or("the data directory")
            )
        })?;
        tracing::info!(blobs = %blobs.describe(), "document store");
        tracing::info!(replica.id = %blobs.replica_id(), "this process's temporary files go to blobs/tmp/<replica.id>/");
        let directory = crate::directory::from_settings(&settings)
            .context("setting up the people directory")?;
        let link_key = LinkKey::load_or_create(&settings.data_dir)?;
        let webhooks = Webhooks::from_settings(&settings.webhooks, &settings.data_dir)
            .context("setting up webhooks")?;
        let automation_listener = if settings.automation_api.enabled {
            let address = settings.automation_api.listen;
            let listener = TcpListener::bind(address)
                .await
                .with_context(|| format!("binding the Automation API to {address}"))?;
            if !listener.local_addr()?.ip().is_loopback()
                && settings.automation_api.client_ca.is_none()
            {
                tracing::warn!(listen = %address, "--automation-allow-insecure: the Automation API listens beyond loopback without mutual TLS; anyone who can reach it can read and create orders");
            }
            Some(listener)
        } else {
            tracing::info!("the Automation API is disabled; enable it with --enable-automation-api (SIGNET_AUTOMATION_API_ENABLED=true, or automation_api.enabled = true in the config file)");
            None
        };
        let metrics_listener = match settings.metrics_listen.filter(|_| settings.metrics) {
            Some(address) => Some(
                TcpListener::bind(address)
                    .await
                    .with_context(|| format!("binding the metrics listener to {address}"))?,
            ),
            None => None,
        };
        let blobs = Arc::new(blobs);
        let public_url: Arc<str> = public_url.into();
        let levels = Arc::new(LevelFinisher::new(
            timestamps.clone(),
            ValidationDataCollector::new(store.clone(), pki.clone(), clock.clone())
                .with_external(timestamps.external_revocation()),
            clock.clone(),
        ));
        let mailer = Mailer::from_settings(&settings.smtp, &settings.mail_from)
            .context("setting up mail")?;
        let orders = Arc::new(
            OrderService::new(
                store.clone(),
                blobs.clone(),
                pki.clone(),
                clock.clone(),
                directory.clone(),
                link_key,
                public_url.clone(),
            )
            .with_signature_level(levels.clone(), settings.signature_level),
        );
        let documents = Arc::new(DocumentService::new(
            store.clone(),
            blobs.clone(),
            pki.clone(),
            clock.clone(),
            levels.clone(),
        ));
        let outbox = Arc::new(
            build_outbox(
                &settings,
                &store,
                &orders,
                &clock,
                &public_url,
                mailer.clone(),
                webhooks,
            )
            .await?,
        );
        // PostgreSQL: the read caches trust nothing until this listens for other replicas'
        // (and the CLI's) changes; SQLite and in-memory stores need no task.
        store.changes().listen(settings.database_url());
        let reads = Arc::new(CachedReads::new(store.clone()));
        let state = AppState::new(SharedState {
            store,
            blobs,
            pki,
            clock,
            settings: Arc::new(settings),
            public_url,
            reads,
            directory,
            orders,
            documents,
            mailer,
            timestamps,
            levels,
        });
        Ok(Self {
            listener,
            automation_listener,
            metrics_listener,
            state,
            outbox,
            connections,
            initial_api_key_file,
            tls: main_tls,
            automation_tls,
        })
    }

    /// Re-reads the TLS files of this server's TLS listeners (what SIGHUP does; see
    /// [`tls::reload_on_sighup`]).
    pub fn tls_reloader(&self) -> tls::TlsReloader {
        tls::TlsReloader::new(self.tls.iter().chain(&self.automation_tls).cloned())
    }

    /// The outbox sender (tests run passes of it directly).
    pub fn outbox(&self) -> Arc<Dispatcher> {
        self.outbox.clone()
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Where `/metrics` listens, when `--metrics-listen` gave it an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Where the Automation API listens, when it is enabled.
    pub fn automation_addr(&self) -> Option<SocketAddr> {
        self.automation_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The job runner over this application's store, CA and clock.
    pub fn job_runner(&self) -> JobRunner {
        JobRunner {
            store: self.state.store.clone(),
            pki: self.state.pki.clone(),
            clock: self.state.clock.clone(),
            blobs: self.state.blobs.clone(),
            archive: Some(crate::jobs::archive_timestamps::ArchivePolicy {
                levels: self.state.levels.clone(),
                margin: time::Duration::days(i64::from(self.state.settings.archive_margin_days)),
            }),
        }
    }

    /// Serves until `shutdown` completes; background jobs run every `job_interval_seconds` (0 = never).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // One stop for every listener and job, given the moment `shutdown` completes: each
        // listener then drains within the grace period (see `serve`), the jobs finish their pass.
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_jobs.send(true);
        });
        let stopping = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        // Whatever fell due while Signet was down expires now, before the first request.
        let expired = self.job_runner().expire_orders().await;
        crate::telemetry::metrics::job_ran("order_expiry", &expired);
        match expired {
            Ok(0) => {}
            Ok(expired) => tracing::info!(
                expired,
                "expired orders that fell due while Signet was down"
            ),
            Err(error) => tracing::error!(
                error = format!("{error:#}"),
                "expiring orders at start-up failed"
            ),
        }
        let interval = self.state.settings.job_interval_seconds;
        let jobs = (interval > 0).then(|| {
            let runner = self.job_runner();
            tokio::spawn(runner.run(
                Duration::from_secs(interval),
                stopping(jobs_stopped.clone()),
            ))
        });
        // The outbox runs whatever the job interval: mail and webhooks are not optional work.
        // Only `outbox_poll_millis = 0` turns the background sender off (tests that run the
        // passes themselves, so none runs concurrently with theirs).
        let poll_millis = self.state.settings.outbox_poll_millis;
        let outbox = (poll_millis > 0).then(|| {
            let poll = Duration::from_millis(poll_millis.max(10));
            tokio::spawn(
                self.outbox
                    .clone()
                    .run(poll, stopping(jobs_stopped.clone())),
            )
        });
        let app = api::main_router(self.state.clone());
        tracing::info!(listen = %self.listener.local_addr()?, tls = %describe::describe_listener(self.tls.as_deref()), public_url = %self.state.public_url, "signet is listening");
        let limits = self.connections;
        let automation = match self.automation_listener {
            Some(listener) => {
                tracing::info!(listen = %listener.local_addr()?, tls = %describe::describe_listener(self.automation_tls.as_deref()), "the Automation API is listening");
                let app = api::automation_router(self.state.clone());
                Some(tokio::spawn(serve::serve_with(
                    listener,
                    app,
                    limits,
                    self.automation_tls.clone(),
                    stopping(jobs_stopped.clone()),
                )))
            }
            None => None,
        };
        let metrics = match self.metrics_listener {
            Some(listener) => {
                // The metrics listener speaks what the main one does (TLS when it has TLS).
                tracing::info!(listen = %listener.local_addr()?, tls = %describe::describe_listener(self.tls.as_deref()), "metrics are served on their own listener");
                let app = api::metrics_listener_router(self.state.clone());
                Some(tokio::spawn(serve::serve_with(
                    listener,
                    app,
                    limits,
                    self.tls.clone(),
                    stopping(jobs_stopped.clone()),
                )))
            }
            None => None,
        };
        serve::serve_with(
            self.listener,
            app,
            limits,
            self.tls.clone(),
            stopping(jobs_stopped.clone()),
        )
        .await
        .context("serving HTTP")?;
        if let Some(automation) = automation {
            automation
                .await
                .context("the Automation API task failed")?
                .context("serving the Automation API")?;
        }
        if let Some(metrics) = metrics {
            metrics
                .await
                .context("the metrics listener task failed")?
                .context("serving metrics")?;
        }
        // The listeners drained within the grace period; a job pass still running gets
        // another one at most (it ends between passes, or is abandoned with the process).
        let tasks = jobs.into_iter().chain(outbox);
        let joined = futures::future::join_all(tasks);
        if tokio::time::timeout(limits.grace, joined).await.is_err() {
            tracing::warn!("a background job was still running after the grace period");
        }
        Ok(())
    }
}

/// The outbox sender with a channel per configured service, and the store told what to queue.
async fn build_outbox(
    settings: &Settings,
    store: &Arc<dyn Store>,
    orders: &Arc<OrderService>,
    clock: &Arc<dyn Clock>,
    public_url: &str,
    mailer: Option<Mailer>,
    webhooks: Webhooks,
) -> anyhow::Result<Dispatcher> {
    let mut deliverers: Vec<Arc<dyn Deliver>> = Vec::new();
    match mailer {
        Some(mailer) => {
            tracing::info!(language = ?settings.mail_language, "mail goes through the configured SMTP server");
            deliverers.push(Arc::new(MailDeliver::new(
                store.clone(),
                orders.clone(),
                mailer,
                settings.mail_language,
                public_url,
            )));
        }
        None => tracing::info!(
            "no SMTP server configured (--smtp-url, SIGNET_SMTP_URL): no mail will be sent; \
             orders still carry each signer's signing link"
        ),
    }
    let mail = !deliverers.is_empty();
    if !webhooks.urls.is_empty() {
        tracing::info!(
            receivers = webhooks.urls.len(),
            "order events are sent as signed webhooks"
        );
    }
    // The webhook channel is always served: rows queued for a URL since removed from the
    // settings are still delivered (or given up) rather than left pending forever.
    deliverers.push(Arc::new(webhooks.sender));
    let policy = OutboxPolicy {
        mail,
        webhook_urls: webhooks
            .urls
            .iter()
            .map(|url| url.as_str().to_owned())
            .collect(),
    };
    store
        .set_outbox_policy(&policy)
        .await
        .context("recording what the outbox sends")?;
    let outbox_store: Arc<dyn OutboxStore> = store.clone();
    Ok(Dispatcher::new(
        outbox_store,
        clock.clone(),
        deliverers,
        settings.reminder_days,
    ))
}

/// Records the CA certificate's SHA-256 in the database on first start, and refuses to start
/// when this data directory holds another CA than the one recorded: replicas share one database,
/// and a replica with its own CA would issue certificates that the others' chain, CRL and OCSP
/// responder do not know (see [`crate::store::installation`]).
async fn check_ca_of_installation(
    store: &dyn Store,
    ca: &signet_crypto::ca::CertificateAuthority,
    data_dir: &Path,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    use sha2::{Digest, Sha256};
    let ours = hex::encode(Sha256::digest(ca.certificate_der()));
    let recorded = store
        .record_fact_once(store::installation::CA_CERTIFICATE_SHA256, &ours, now)
        .await
        .context("recording the CA certificate in the database")?;
    anyhow::ensure!(
        recorded == ours,
        "the CA in {} (certificate SHA-256 {ours}) is not the CA this database was set up with \
         (SHA-256 {recorded}): every replica on one database must use the same CA key and \
         certificate. Copy ca/ca.key and ca/ca.pem from a data directory of this installation, \
         or give this data directory a database of its own",
        crate::pki::ca_paths(data_dir)
            .0
            .parent()
            .unwrap_or(data_dir)
            .display()
    );
    tracing::debug!(ca.sha256 = %ours, "the CA matches the one recorded in the database");
    Ok(())
}

/// On first start (no keys at all) creates an API key and writes it, once, to a 0600 file.
async fn ensure_first_api_key(
    store: &dyn Store,
    data_dir: &Path,
    clock: &dyn Clock,
) -> anyhow::Result<Option<PathBuf>> {
    if store.count_api_keys().await? > 0 {
        return Ok(None);
    }
    let key = create_api_key(store, clock.now()).await?;
    let path = data_dir.join(INITIAL_API_KEY_FILE);
    write_private(&path, format!("{key}\n").as_bytes())?;
    Ok(Some(path))
}

/// One listener's TLS, when it has some.
type ListenerTls = Option<Arc<tls::TlsListener>>;

/// The TLS of each listener from the settings, and the rule that keeps the Automation API (which
/// trusts its callers) off the network unless mutual TLS guards it or the operator insists.
fn tls_from_settings(settings: &Settings) -> anyhow::Result<(ListenerTls, ListenerTls)> {
    let main = listener_tls(
        "main",
        settings.tls.cert.as_ref(),
        settings.tls.key.as_ref(),
        settings.tls.client_ca.as_ref(),
        tls::ClientAuth::Optional,
        ["--tls-cert", "--tls-key", "--client-ca"],
    )?;
    let automation = &settings.automation_api;
    if !automation.enabled {
        return Ok((main, None));
    }
    let guarded = automation.tls_cert.is_some() && automation.client_ca.is_some();
    let ip = automation.listen.ip();
    if !ip.is_loopback() && !guarded && !automation.allow_insecure {
        anyhow::bail!(
            "the Automation API would listen on {} without mutual TLS: anyone who can reach it could read and create orders. \
             Give it --automation-tls-cert, --automation-tls-key and --automation-client-ca, listen on a loopback address \
             (--automation-listen 127.0.0.1:8081), or accept the risk with --automation-allow-insecure",
            automation.listen
        );
    }
    let automation = listener_tls(
        "automation",
        automation.tls_cert.as_ref(),
        automation.tls_key.as_ref(),
        automation.client_ca.as_ref(),
        tls::ClientAuth::Required,
        [
            "--automation-tls-cert",
            "--automation-tls-key",
            "--automation-client-ca",
        ],
    )?;
    Ok((main, automation))
}

/// One listener's TLS from its three settings; `flags` name them in the refusals.
fn listener_tls(
    name: &'static str,
    cert: Option<&PathBuf>,
    key: Option<&PathBuf>,
    client_ca: Option<&PathBuf>,
    client_auth: tls::ClientAuth,
    [cert_flag, key_flag, ca_flag]: [&str; 3],
) -> anyhow::Result<ListenerTls> {
    match (cert, key) {
        (None, None) => {
            anyhow::ensure!(
                client_ca.is_none(),
                "{ca_flag} needs TLS on the same listener: give {cert_flag} and {key_flag} too"
            );
            Ok(None)
        }
        (Some(cert), Some(key)) => tls::TlsListener::load(
            name,
            tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: client_ca.cloned(),
                client_auth,
            },
        )
        .map(Some),
        _ => anyhow::bail!("{cert_flag} and {key_flag} go together: give both or neither"),
    }
}
