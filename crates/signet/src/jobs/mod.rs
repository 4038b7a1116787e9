//! Background jobs: certificate renewal, signer expiry, CRL refresh, signing-order expiry,
//! archive timestamps for B-LTA files ([`archive_timestamps`]) and the sweep of files a crash
//! left in the blob store. Each pass is idempotent and safe when
//! several Signet processes share one PostgreSQL database (rows are claimed with
//! `FOR UPDATE SKIP LOCKED`; the sweep only removes files no row names), so every replica may
//! run the loop.

use anyhow::Context;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::pki::{crl_needs_refresh, Pki};
use crate::store::blob_backend::Blobs;
use crate::store::blobs::SweepReport;
use crate::store::Store;
use crate::telemetry::metrics::job_ran;

pub mod archive_timestamps;
pub mod outbox;

/// How many signers one renewal transaction claims; small batches keep row locks short.
const RENEWAL_BATCH: i64 = 100;
/// Longest wait between two order-expiry passes.
const ORDER_EXPIRY_TICK: Duration = Duration::from_secs(15);
/// How many due orders one expiry transaction claims.
const EXPIRY_BATCH: i64 = 200;
/// Wait between two sweeps of the blob store; the first runs when the loop starts. Orphans only
/// come from crashes and become removable after an hour (temporary files) or a day (files in
/// place), so an hourly walk is often enough and cheap.
const ORPHAN_SWEEP_TICK: Duration = Duration::from_secs(60 * 60);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct JobReport {
    pub renewed: usize,
    pub expired: usize,
    pub crl_refreshed: bool,
    pub orders_expired: usize,
    /// B-LTA files that got a new document timestamp ([`archive_timestamps`]).
    pub archived: usize,
}

/// Runs the jobs against one store.
#[derive(Clone)]
pub struct JobRunner {
    pub store: Arc<dyn Store>,
    pub pki: Arc<Pki>,
    pub clock: Arc<dyn Clock>,
    pub blobs: Arc<Blobs>,
    /// The archive-timestamp job's TSA and margin; `None` runs no such job.
    pub archive: Option<archive_timestamps::ArchivePolicy>,
}

impl JobRunner {
    /// Expires every PENDING order whose due date has passed, in claimed batches; returns how
    /// many. Idempotent: an expired order is no longer PENDING, so a second pass finds nothing.
    pub async fn expire_orders(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let mut total = 0;
        loop {
            let expired = self
                .store
                .expire_due_orders(now, EXPIRY_BATCH)
                .await
                .context("expiring orders")?;
            for order_id in &expired {
                tracing::info!(order.id = %order_id, "order expired: its due date passed");
            }
            total += expired.len();
            if expired.len() < EXPIRY_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Removes the files a crash left in the blob store (see [`Blobs::sweep`]) and logs the
    /// counts. Ages are measured on the system clock, not [`Clock`]: they are compared with
    /// file times the kernel wrote.
    pub async fn sweep_orphans(&self) -> anyhow::Result<SweepReport> {
        let (blobs, store) = (self.blobs.clone(), self.store.clone());
        let runtime = tokio::runtime::Handle::current();
        // The walk is blocking file work; each batch's lookup is driven from the blocking
        // thread, so the walk streams instead of listing every blob first.
        let report = tokio::task::spawn_blocking(move || {
            blobs.sweep(std::time::SystemTime::now(), |keys| {
                runtime
                    .block_on(store.referenced_blobs(keys))
                    .map_err(std::io::Error::other)
            })
        })
        .await
        .context("the blob sweep task failed")?
        .context("sweeping the blob store")?;
        if report.temp_removed > 0 || report.orphans_removed > 0 {
            tracing::info!(
                temp_removed = report.temp_removed,
                orphans_removed = report.orphans_removed,
                kept = report.referenced,
                left_alone = report.left_alone,
                "removed files a crash left in the blob store"
            );
        }
        Ok(report)
    }

    /// One pass of every job.
    pub async fn run_once(&self) -> anyhow::Result<JobReport> {
        let now = self.clock.now();
        let mut report = JobReport::default();
        loop {
            let pki = &self.pki;
            // Audited once the batch is committed, not while its transaction may still roll back.
            let issued = std::sync::Mutex::new(Vec::new());
            let renewed = self
                .store
                .renew_due(now, RENEWAL_BATCH, &|due| {
                    let certificate = pki.renew(due, now)?;
                    if let Ok(mut issued) = issued.lock() {
                        issued.push((
                            due.signer_id.clone(),
                            due.current_serial,
                            certificate.serial,
                        ));
                    }
                    Ok(certificate)
                })
                .await
                .context("renewing certificates")?;
            for (signer_id, previous, serial) in issued.into_inner().unwrap_or_default() {
                crate::telemetry::audit::certificate_renewed(&signer_id, &previous, &serial);
            }
            report.renewed += renewed;
            if renewed < RENEWAL_BATCH as usize {
                break;
            }
        }
        let expired = self
            .store
            .expire_due(now)
            .await
            .context("expiring signers")?;
        for signer_id in &expired {
            tracing::info!(signer.id = %signer_id, "signer expired: certificate ran out without renewal");
        }
        report.expired = expired.len();
        report.orders_expired = self.expire_orders().await?;
        let crl_due = match self.store.latest_crl().await? {
            Some(crl) => crl_needs_refresh(&crl, now),
            None => true,
        };
        if crl_due {
            self.pki.refresh_crl(self.store.as_ref(), now).await?;
            report.crl_refreshed = true;
        }
        if report.renewed > 0 {
            tracing::info!(renewed = report.renewed, "renewed certificates");
        }
        report.archived = self.renew_archive_timestamps().await?.renewed;
        Ok(report)
    }

    /// Runs a pass every `interval` until `shutdown` completes. A failed pass is logged and retried next time.
    pub async fn run(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Orders must expire within a minute of their due date whatever the configured
        // interval, and the claim is one indexed query: it gets a tick of its own.
        let mut orders_ticker = tokio::time::interval(interval.min(ORDER_EXPIRY_TICK));
        orders_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut orphans_ticker = tokio::time::interval(ORPHAN_SWEEP_TICK);
        orphans_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                _ = ticker.tick() => {
                    let result = self.run_once().await;
                    job_ran("certificates", &result);
                    if let Err(error) = result {
                        tracing::error!(error = format!("{error:#}"), "background job pass failed");
                    }
                }
                _ = orders_ticker.tick() => {
                    let result = self.expire_orders().await;
                    job_ran("order_expiry", &result);
                    if let Err(error) = result {
                        tracing::error!(error = format!("{error:#}"), "order expiry pass failed");
                    }
                }
                _ = orphans_ticker.tick() => {
                    let result = self.sweep_orphans().await;
                    job_ran("blob_sweep", &result);
                    if let Err(error) = result {
                        tracing::error!(error = format!("{error:#}"), "blob store sweep failed");
                    }
                }
            }
        }
    }
}
