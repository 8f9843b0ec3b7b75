//! Prometheus metrics, served as text at `/metrics` on the metrics address. Label values come
//! from fixed sets (method names, gRPC code names), never from input.

use std::sync::Arc;
use std::time::Duration;

use ledger::{CommitObserver, CommitStats};
use prometheus::{
    exponential_buckets, Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// Every metric the service exports.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    append_requests: IntCounterVec,
    append_duration: HistogramVec,
    commit_batch_entries: Histogram,
    fsync_duration: Histogram,
    commits: IntCounterVec,
    entries_appended: IntCounter,
    subscribers: IntGauge,
}

fn buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    exponential_buckets(start, factor, count).unwrap_or_else(|_| vec![start])
}

impl Metrics {
    /// A fresh registry with every metric registered.
    #[allow(clippy::expect_used)] // Static names and buckets: a failure is a bug caught by every test.
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let append_requests = IntCounterVec::new(
            Opts::new("ledger_append_requests_total", "Append RPCs by method and result (gRPC code name)."),
            &["method", "result"],
        )
        .expect("metric");
        let append_duration = HistogramVec::new(
            HistogramOpts::new("ledger_append_duration_seconds", "Append RPC latency, seconds, by method.")
                .buckets(buckets(0.000_25, 2.0, 16)),
            &["method"],
        )
        .expect("metric");
        let commit_batch_entries = Histogram::with_opts(
            HistogramOpts::new("ledger_commit_batch_entries", "Entries written per group commit (one fsync).")
                .buckets(buckets(1.0, 2.0, 14)),
        )
        .expect("metric");
        let fsync_duration = Histogram::with_opts(
            HistogramOpts::new(
                "ledger_fsync_duration_seconds",
                "Duration of the sync=true RocksDB write of a group commit (WAL write and fdatasync), seconds.",
            )
            .buckets(buckets(0.000_1, 2.0, 16)),
        )
        .expect("metric");
        let commits = IntCounterVec::new(Opts::new("ledger_commits_total", "Group commits by result."), &["result"])
            .expect("metric");
        let entries_appended =
            IntCounter::new("ledger_entries_appended_total", "Entries durably appended.").expect("metric");
        let subscribers = IntGauge::new("ledger_subscribers", "Open Subscribe streams.").expect("metric");
        for collector in [
            Box::new(append_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(append_duration.clone()),
            Box::new(commit_batch_entries.clone()),
            Box::new(fsync_duration.clone()),
            Box::new(commits.clone()),
            Box::new(entries_appended.clone()),
            Box::new(subscribers.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        // Every family is visible from the first scrape, not only after its first event.
        for method in ["Append", "AppendBatch"] {
            let _ = append_requests.with_label_values(&[method, "ok"]);
            let _ = append_duration.with_label_values(&[method]);
        }
        let _ = commits.with_label_values(&["ok"]);
        Arc::new(Self {
            registry,
            append_requests,
            append_duration,
            commit_batch_entries,
            fsync_duration,
            commits,
            entries_appended,
            subscribers,
        })
    }

    /// Records one append RPC.
    pub fn observe_append(&self, method: &'static str, result: &'static str, elapsed: Duration) {
        self.append_requests.with_label_values(&[method, result]).inc();
        self.append_duration.with_label_values(&[method]).observe(elapsed.as_secs_f64());
    }

    /// Counts an open subscription until the guard is dropped.
    pub fn subscriber(self: &Arc<Self>) -> SubscriberGuard {
        self.subscribers.inc();
        SubscriberGuard(self.clone())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl CommitObserver for Metrics {
    fn on_commit(&self, stats: &CommitStats) {
        self.commits.with_label_values(&[if stats.ok { "ok" } else { "error" }]).inc();
        self.fsync_duration.observe(stats.write_duration.as_secs_f64());
        if stats.ok {
            self.commit_batch_entries.observe(stats.entries as f64);
            self.entries_appended.inc_by(stats.entries as u64);
        }
    }
}

/// Decrements the subscriber gauge when dropped.
#[derive(Debug)]
pub struct SubscriberGuard(Arc<Metrics>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.subscribers.dec();
    }
}
