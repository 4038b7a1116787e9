//! Prometheus metrics: counters and histograms kept in the process (the `metrics` facade with
//! `metrics-exporter-prometheus`'s recorder, installed once per process), and gauges read from
//! the database when Prometheus scrapes (documents and orders by status, outbox depth,
//! certificates about to expire), so they are right whichever replica wrote the rows.
//!
//! Labels are bounded sets: the route *template* (`/documents/{document_id}`), never the path,
//! so ids cannot multiply the series (and tokens in signer-page paths never reach a label).

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::domain::SignatureLevel;
use crate::store::stats::{StatsStore, StatusCounts};

/// Requests answered, by route template, method and status.
pub const HTTP_REQUESTS: &str = "signet_http_requests_total";
/// Time to the response head, by route template and method.
pub const HTTP_DURATION: &str = "signet_http_request_duration_seconds";
/// Signatures made, by API (`cloudsigner`, `orders`) and PAdES level.
pub const SIGNATURES: &str = "signet_signatures_total";
/// Passes of a background job, by job.
pub const JOB_RUNS: &str = "signet_job_runs_total";
/// Passes of a background job that failed, by job.
pub const JOB_FAILURES: &str = "signet_job_failures_total";

/// Bucket bounds of the latency histogram, in seconds: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How long scrape-time counts are reused: documents have no status index, so a scrape every
/// few seconds (or several scrapers) must not scan the table each time.
const COUNTS_TTL: Duration = Duration::from_secs(2);

/// How far ahead a certificate counts as expiring.
const EXPIRING_WITHIN: time::Duration = time::Duration::days(30);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (first call) and returns its handle; `None` when another
/// recorder was installed first (logged). Everything recorded before it is lost, so it is
/// installed while the application is built.
pub fn install() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(HTTP_DURATION.to_owned()),
                    LATENCY_BUCKETS,
                )
                .map(PrometheusBuilder::build_recorder);
            let recorder = match recorder {
                Ok(recorder) => recorder,
                Err(error) => {
                    tracing::warn!(error = %error, "metrics are off: the recorder could not be built");
                    return None;
                }
            };
            let handle = recorder.handle();
            if let Err(error) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %error, "metrics are off: another recorder is installed");
                return None;
            }
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time from a request reaching its route to its response head"
    );
    metrics::describe_counter!(
        SIGNATURES,
        "Signatures made, by API (cloudsigner, orders) and PAdES level"
    );
    metrics::describe_counter!(JOB_RUNS, "Passes of each background job");
    metrics::describe_counter!(JOB_FAILURES, "Passes of each background job that failed");
}

/// Records one answered request (the access middleware calls it).
pub fn http_request(route: &str, method: &'static str, status: u16, elapsed: Duration) {
    let route = route.to_owned();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// Counts a signature made through `api` at `level`.
pub fn signature_made(api: &'static str, level: SignatureLevel) {
    metrics::counter!(SIGNATURES, "api" => api, "level" => level.as_str()).increment(1);
}

/// Counts a pass of `job` and, when it failed, a failure.
pub fn job_ran<T, E>(job: &'static str, result: &Result<T, E>) {
    metrics::counter!(JOB_RUNS, "job" => job).increment(1);
    if result.is_err() {
        metrics::counter!(JOB_FAILURES, "job" => job).increment(1);
    }
}

/// The `/metrics` page of one application: the process's recorder plus this database's counts.
pub struct MetricsPage {
    handle: PrometheusHandle,
    stats: Arc<dyn StatsStore>,
    clock: Arc<dyn Clock>,
    /// The last counts and when they were read (see [`COUNTS_TTL`]).
    cached: tokio::sync::Mutex<Option<(Instant, Arc<StatusCounts>)>>,
    /// The last counts' failure, so one broken database is logged once per TTL, not per scrape.
    last_error: Mutex<Option<Instant>>,
}

impl MetricsPage {
    pub fn new(
        handle: PrometheusHandle,
        stats: Arc<dyn StatsStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            handle,
            stats,
            clock,
            cached: tokio::sync::Mutex::new(None),
            last_error: Mutex::new(None),
        }
    }

    /// The page in Prometheus text format. When the database cannot be read the recorder's
    /// metrics are still served and `signet_database_up` says 0.
    pub async fn render(&self) -> String {
        let counts = self.counts().await;
        let mut page = self.handle.render();
        render_counts(&mut page, counts.as_deref());
        page
    }

    async fn counts(&self) -> Option<Arc<StatusCounts>> {
        // One scrape reads at a time; the others wait for its answer rather than read again.
        let mut cached = self.cached.lock().await;
        if let Some((at, counts)) = cached.as_ref() {
            if at.elapsed() < COUNTS_TTL {
                return Some(counts.clone());
            }
        }
        let expiring_before = self.clock.now() + EXPIRING_WITHIN;
        match tokio::time::timeout(COUNTS_TTL, self.stats.status_counts(expiring_before)).await {
            Ok(Ok(counts)) => {
                let counts = Arc::new(counts);
                *cached = Some((Instant::now(), counts.clone()));
                Some(counts)
            }
            outcome => {
                let mut last = self
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if last.is_none_or(|at| at.elapsed() >= COUNTS_TTL) {
                    let error = match outcome {
                        Ok(Err(error)) => error.to_string(),
                        _ => format!("no answer within {} s", COUNTS_TTL.as_secs()),
                    };
                    tracing::warn!(error, "metrics: the database counts could not be read");
                    *last = Some(Instant::now());
                }
                None
            }
        }
    }
}

/// Appends the scrape-time gauges in Prometheus text format.
fn render_counts(page: &mut String, counts: Option<&StatusCounts>) {
    gauge_header(
        page,
        "signet_database_up",
        "Whether the database answered this scrape's counts (1) or not (0)",
    );
    let _ = writeln!(page, "signet_database_up {}", u8::from(counts.is_some()));
    let Some(counts) = counts else { return };
    let families = [
        Family {
            name: "signet_documents",
            help: "CloudSigner documents by status",
            label: "status",
            values: &counts.documents,
        },
        Family {
            name: "signet_orders",
            help: "Signing orders by state",
            label: "state",
            values: &counts.orders,
        },
        Family {
            name: "signet_outbox_depth",
            help: "Outbox messages waiting to be delivered, by channel",
            label: "channel",
            values: &counts.outbox,
        },
    ];
    for family in families {
        let Family {
            name,
            help,
            label,
            values,
        } = family;
        gauge_header(page, name, help);
        for (value, count) in values {
            let _ = writeln!(
                page,
                "{name}{{{label}=\"{}\"}} {count}",
                escape_label(value)
            );
        }
    }
    let name = "signet_certificates_expiring_30d";
    gauge_header(
        page,
        name,
        "Current certificates of active or blocked signers that expire within 30 days",
    );
    let _ = writeln!(page, "{name} {}", counts.certificates_expiring);
}

/// A gauge family with one label, as read from the database.
struct Family<'a> {
    name: &'static str,
    help: &'static str,
    label: &'static str,
    values: &'a [(String, i64)],
}

fn gauge_header(page: &mut String, name: &str, help: &str) {
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} gauge");
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_render_as_gauges_with_escaped_labels() {
        let counts = StatusCounts {
            documents: vec![("SIGNED".into(), 3)],
            orders: vec![("PEN\"DING".into(), 1)],
            outbox: vec![],
            certificates_expiring: 2,
        };
        let mut page = String::new();
        render_counts(&mut page, Some(&counts));
        assert!(page.contains("signet_database_up 1\n"), "{page}");
        assert!(
            page.contains("signet_documents{status=\"SIGNED\"} 3\n"),
            "{page}"
        );
        assert!(
            page.contains("signet_orders{state=\"PEN\\\"DING\"} 1\n"),
            "{page}"
        );
        assert!(
            page.contains("# TYPE signet_outbox_depth gauge\n"),
            "{page}"
        );
        assert!(
            page.contains("signet_certificates_expiring_30d 2\n"),
            "{page}"
        );
        let mut down = String::new();
        render_counts(&mut down, None);
        assert_eq!(down.matches("signet_database_up 0").count(), 1, "{down}");
    }
}
