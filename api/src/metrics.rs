//! Prometheus metrics, served as text at `/metrics` on the metrics address. Label values come
//! from fixed sets (method names, gRPC code names, the ledger's own reason codes), never from
//! input.

use std::sync::Arc;
use std::time::Duration;

use ledger::{CommitObserver, CommitStats};
use projections::decision::ReasonCode;
use projections::{DecisionAppended, DecisionStatus, GovernanceObserver};
use prometheus::{
    exponential_buckets, Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::connections::ConnectionMetrics;

/// The listeners, the label values of the connection metrics.
const LISTENERS: [&str; 4] = ["grpc", "metrics", "tiles", "console"];

/// The reason codes that reject (the other two, `ChangeFreezeActive` and
/// `ApprovalPending`, delay): the label values of `release_rejected_total`, pre-created so
/// every series is visible from the first scrape.
fn rejecting_codes() -> impl Iterator<Item = &'static ReasonCode> {
    ReasonCode::ALL.iter().filter(|c| c.rejects())
}

/// `approval_duration_seconds` buckets: 1 s, 5 s, 15 s, 30 s, 1 min, 5 min, 15 min, 30 min,
/// 1 h, 2 h, 4 h, 8 h, 1 d, 2 d, 4 d, 7 d (the default approval TTL).
const APPROVAL_BUCKETS: [f64; 16] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14_400.0, 28_800.0, 86_400.0, 172_800.0,
    345_600.0, 604_800.0,
];

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
    signature_batches_combined: IntCounter,
    signatures_combined: IntCounter,
    /// Serialises [`Metrics::observe_combined`] (two scrapes at once would add twice).
    combined_sync: Arc<std::sync::Mutex<()>>,
    subscribers: IntGauge,
    erasures_pending: IntGauge,
    approved: IntCounter,
    rejected: IntCounterVec,
    delayed: IntCounter,
    published: IntCounter,
    approval_duration: Histogram,
    decision_duration: Histogram,
    projection_lag: IntGauge,
    connections_open: IntGaugeVec,
    connections: IntCounterVec,
    accept_errors: IntCounterVec,
    access_decisions: IntCounterVec,
    backups: IntCounterVec,
    backup_last_streamed: IntGauge,
}

/// The outcomes of `ledger_backups_total`.
pub const BACKUP_OUTCOMES: [&str; 3] = ["streamed", "failed", "abandoned"];

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
                "Duration of a group commit's durable writes (RocksDB's unsynced write beside the anchor record's fdatasync), seconds.",
            )
            .buckets(buckets(0.000_1, 2.0, 16)),
        )
        .expect("metric");
        let commits = IntCounterVec::new(Opts::new("ledger_commits_total", "Group commits by result."), &["result"])
            .expect("metric");
        let entries_appended =
            IntCounter::new("ledger_entries_appended_total", "Entries durably appended.").expect("metric");
        let signature_batches_combined = IntCounter::new(
            "ledger_signature_batches_combined_total",
            "Batch verifications of the signatures of concurrent single-event appends (batches of two or more).",
        )
        .expect("metric");
        let signatures_combined = IntCounter::new(
            "ledger_signatures_combined_total",
            "Signatures of single-event appends verified in those batches rather than one by one.",
        )
        .expect("metric");
        let subscribers = IntGauge::new("ledger_subscribers", "Open Subscribe streams.").expect("metric");
        let erasures_pending = IntGauge::new(
            "ledger_erasures_pending",
            "Redacted entries whose old versions are still in the store's files (0 once erased).",
        )
        .expect("metric");
        let approved = IntCounter::new(
            "release_approved_total",
            "ReleaseApproved decisions the ledger appended (every gate passed).",
        )
        .expect("metric");
        let rejected = IntCounterVec::new(
            Opts::new(
                "release_rejected_total",
                "ReleaseRejected decisions the ledger appended, by rejecting reason code (a decision with \
                 several counts once under each; reasons that only delay, such as ApprovalPending, are not counted).",
            ),
            &["reason"],
        )
        .expect("metric");
        let delayed = IntCounter::new(
            "release_delayed_total",
            "ReleaseDelayed decisions the ledger appended (waiting on approvals or a change freeze).",
        )
        .expect("metric");
        let published = IntCounter::new(
            "release_published_total",
            "ReleasePublished decisions the ledger appended (deployment completed after approval).",
        )
        .expect("metric");
        let approval_duration = Histogram::with_opts(
            HistogramOpts::new(
                "approval_duration_seconds",
                "From a release's ReleaseIntentDeclared to the entry that approved it, by recordedAt, seconds; \
                 observed per ReleaseApproved decision.",
            )
            .buckets(APPROVAL_BUCKETS.to_vec()),
        )
        .expect("metric");
        let decision_duration = Histogram::with_opts(
            HistogramOpts::new(
                "release_decision_duration_seconds",
                "From the commit of the entry that triggered an evaluation to the commit of the ledger's decision \
                 entry, seconds.",
            )
            .buckets(buckets(0.001, 2.0, 17)),
        )
        .expect("metric");
        let projection_lag = IntGauge::new(
            "projection_lag_entries",
            "Entries committed to the log but not yet folded into the governance projections, all tenants.",
        )
        .expect("metric");
        let connections_open = IntGaugeVec::new(
            Opts::new("ledger_connections_open", "Open TCP connections, by listener (grpc, metrics)."),
            &["listener"],
        )
        .expect("metric");
        let connections = IntCounterVec::new(
            Opts::new(
                "ledger_connections_total",
                "Connections by listener and outcome: accepted; refused_limit (accepted and closed at once, \
                 the connection limit was reached); handshake_timeout (no HTTP/2 preface in time); \
                 idle_timeout (no byte in either direction for the idle timeout); tls_handshake_failed \
                 (the TLS handshake failed or timed out).",
            ),
            &["listener", "outcome"],
        )
        .expect("metric");
        let accept_errors = IntCounterVec::new(
            Opts::new(
                "ledger_accept_errors_total",
                "Failed accept calls by listener and error: exhausted (out of file descriptors or socket \
                 memory; the accept loop backs off), other.",
            ),
            &["listener", "error"],
        )
        .expect("metric");
        let access_decisions = IntCounterVec::new(
            Opts::new(
                "ledger_access_decisions_total",
                "Access decisions by gRPC method and outcome: allowed, unauthenticated (no or bad \
                 credential), permission_denied (valid principal, wrong tenant or role), unknown (no such method).",
            ),
            &["method", "outcome"],
        )
        .expect("metric");
        let backups = IntCounterVec::new(
            Opts::new(
                "ledger_backups_total",
                "Backups (Admin/Backup) by outcome: streamed (every file and the manifest sent), failed (the \
                 server could not take or send it), abandoned (the client went away).",
            ),
            &["outcome"],
        )
        .expect("metric");
        let backup_last_streamed = IntGauge::new(
            "ledger_backup_last_streamed_timestamp_seconds",
            "When the last backup was streamed whole (Unix seconds; 0: none since the server started).",
        )
        .expect("metric");
        for collector in [
            Box::new(access_decisions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(backups.clone()),
            Box::new(backup_last_streamed.clone()),
            Box::new(append_requests.clone()),
            Box::new(append_duration.clone()),
            Box::new(commit_batch_entries.clone()),
            Box::new(fsync_duration.clone()),
            Box::new(commits.clone()),
            Box::new(entries_appended.clone()),
            Box::new(signature_batches_combined.clone()),
            Box::new(signatures_combined.clone()),
            Box::new(subscribers.clone()),
            Box::new(erasures_pending.clone()),
            Box::new(approved.clone()),
            Box::new(rejected.clone()),
            Box::new(delayed.clone()),
            Box::new(published.clone()),
            Box::new(approval_duration.clone()),
            Box::new(decision_duration.clone()),
            Box::new(projection_lag.clone()),
            Box::new(connections_open.clone()),
            Box::new(connections.clone()),
            Box::new(accept_errors.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        // Every family is visible from the first scrape, not only after its first event.
        for method in ["Append", "AppendBatch"] {
            let _ = append_requests.with_label_values(&[method, "ok"]);
            let _ = append_duration.with_label_values(&[method]);
        }
        let _ = commits.with_label_values(&["ok"]);
        for listener in LISTENERS {
            let _ = connections_open.with_label_values(&[listener]);
            for outcome in ["accepted", "refused_limit", "handshake_timeout", "idle_timeout", "tls_handshake_failed"] {
                let _ = connections.with_label_values(&[listener, outcome]);
            }
            for error in ["exhausted", "other"] {
                let _ = accept_errors.with_label_values(&[listener, error]);
            }
        }
        for code in rejecting_codes() {
            let _ = rejected.with_label_values(&[code.as_str()]);
        }
        for outcome in BACKUP_OUTCOMES {
            let _ = backups.with_label_values(&[outcome]);
        }
        Arc::new(Self {
            registry,
            append_requests,
            append_duration,
            commit_batch_entries,
            fsync_duration,
            commits,
            entries_appended,
            signature_batches_combined,
            signatures_combined,
            combined_sync: Arc::default(),
            subscribers,
            erasures_pending,
            approved,
            rejected,
            delayed,
            published,
            approval_duration,
            decision_duration,
            projection_lag,
            connections_open,
            connections,
            accept_errors,
            access_decisions,
            backups,
            backup_last_streamed,
        })
    }

    /// Counts a backup that ended with `outcome` (one of [`BACKUP_OUTCOMES`]); a streamed one
    /// also sets the time of the last backup streamed (`at`, Unix seconds).
    pub fn backup_finished(&self, outcome: &'static str, at: i64) {
        debug_assert!(BACKUP_OUTCOMES.contains(&outcome), "{outcome}");
        self.backups.with_label_values(&[outcome]).inc();
        if outcome == "streamed" {
            self.backup_last_streamed.set(at);
        }
    }

    /// The access decisions counter (`crate::access`).
    pub fn access_decisions(&self) -> IntCounterVec {
        self.access_decisions.clone()
    }

    /// The connection metrics of one listener (`grpc` or `metrics`; label values are fixed).
    pub fn connections(&self, listener: &'static str) -> ConnectionMetrics {
        debug_assert!(LISTENERS.contains(&listener), "{listener}");
        let outcome = |outcome: &str| self.connections.with_label_values(&[listener, outcome]);
        ConnectionMetrics {
            open: self.connections_open.with_label_values(&[listener]),
            accepted: outcome("accepted"),
            refused_limit: outcome("refused_limit"),
            handshake_timeouts: outcome("handshake_timeout"),
            idle_timeouts: outcome("idle_timeout"),
            tls_handshake_failures: outcome("tls_handshake_failed"),
            accept_exhausted: self.accept_errors.with_label_values(&[listener, "exhausted"]),
            accept_failed: self.accept_errors.with_label_values(&[listener, "other"]),
        }
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

    /// Brings the combined-signature counters up to the ledger's own tallies
    /// ([`ledger::Ledger::combined_signatures`]), read at each scrape.
    pub fn observe_combined(&self, (batches, signatures): (u64, u64)) {
        let _serial = self.combined_sync.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.signature_batches_combined.inc_by(batches.saturating_sub(self.signature_batches_combined.get()));
        self.signatures_combined.inc_by(signatures.saturating_sub(self.signatures_combined.get()));
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

    fn on_erasures_pending(&self, pending: usize) {
        self.erasures_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
    }
}

impl GovernanceObserver for Metrics {
    fn on_decision(&self, decision: &DecisionAppended) {
        match decision.status {
            // The intent's own record, not an outcome: only its latency is of interest.
            DecisionStatus::Planned => {}
            DecisionStatus::Approved => self.approved.inc(),
            DecisionStatus::Delayed => self.delayed.inc(),
            DecisionStatus::Published => self.published.inc(),
            DecisionStatus::Rejected => {
                // The codes come from the ledger's own gate evaluation (a fixed set), never from
                // input; each counts once per decision. A rejected release may also still wait
                // for approvals: that reason did not reject it, so it is not counted here.
                let mut counted: Vec<&ReasonCode> = Vec::new();
                for code in decision.reason_codes.iter().filter(|c| c.rejects()) {
                    if !counted.contains(&code) {
                        counted.push(code);
                        self.rejected.with_label_values(&[code.as_str()]).inc();
                    }
                }
            }
        }
        if let Some(duration) = decision.approval_duration {
            self.approval_duration.observe(duration.as_secs_f64());
        }
        self.decision_duration.observe(decision.decision_latency.as_secs_f64());
    }

    fn on_lag(&self, entries: u64) {
        self.projection_lag.set(i64::try_from(entries).unwrap_or(i64::MAX));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_created_reason_labels_are_the_rejecting_codes() {
        let rejecting: Vec<&str> = rejecting_codes().map(ReasonCode::as_str).collect();
        assert_eq!(rejecting.len(), 10, "{rejecting:?}");
        assert!(!rejecting.contains(&"ChangeFreezeActive") && !rejecting.contains(&"ApprovalPending"));
        // A custom gate that fails or errors rejects; one that is pending delays.
        assert!(rejecting.contains(&"CustomGateFailed") && rejecting.contains(&"CustomGateError"));
        assert!(!rejecting.contains(&"CustomGatePending"));
        let text = Metrics::new().render();
        for code in rejecting {
            let line = format!("release_rejected_total{{reason=\"{code}\"}} 0");
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
    }

    #[test]
    fn the_combined_signature_counters_follow_the_ledgers_tallies() {
        let metrics = Metrics::new();
        let text = metrics.render();
        assert!(text.lines().any(|l| l == "ledger_signatures_combined_total 0"), "{text}");
        metrics.observe_combined((2, 7));
        metrics.observe_combined((3, 9));
        // The same tallies read again add nothing.
        metrics.observe_combined((3, 9));
        let text = metrics.render();
        assert!(text.lines().any(|l| l == "ledger_signature_batches_combined_total 3"), "{text}");
        assert!(text.lines().any(|l| l == "ledger_signatures_combined_total 9"), "{text}");
    }
}
