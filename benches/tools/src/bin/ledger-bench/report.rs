//! The report: one JSON object, or the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use bench_harness::latency::{human_bytes, human_us, rate, LatencySummary};
use bench_harness::procfs::ProcSample;
use bench_harness::server::Shutdown;
use serde::Serialize;

use crate::args::Args;
use crate::monitor::TimelineRow;
use crate::readers::{QueryStats, SubscribeStats};
use crate::shared::ErrorLog;

/// Everything a run found, printed as a table or as one JSON object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Report {
    pub(crate) config: RunConfig,
    pub(crate) appends: AppendReport,
    pub(crate) errors: ErrorReport,
    pub(crate) server: ServerStats,
    pub(crate) client: ClientReport,
    pub(crate) warmup: WarmupStats,
    pub(crate) subscribe: Option<SubscribeReport>,
    pub(crate) query: Option<QueryReport>,
    pub(crate) timeline: Vec<TimelineRow>,
    pub(crate) notes: Vec<String>,
}

/// The exact configuration of a run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunConfig {
    pub(crate) args: Args,
    pub(crate) server_url: String,
    pub(crate) server_pid: Option<u32>,
    pub(crate) server_bin: Option<PathBuf>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) run_id: String,
    pub(crate) server_version: String,
    pub(crate) cores: usize,
    pub(crate) clk_tck: u64,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

impl RunConfig {
    /// Filled in by [`run`] once the server is stopped.
    pub(crate) fn placeholder(args: &Args, run_id: String, server_version: String) -> Self {
        Self {
            args: args.clone(),
            server_url: String::new(),
            server_pid: None,
            server_bin: None,
            data_dir: None,
            run_id,
            server_version,
            cores: 0,
            clk_tck: 0,
            load_before: String::new(),
            load_after: String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppendReport {
    /// Length of the measured window.
    pub(crate) seconds: f64,
    pub(crate) events: u64,
    pub(crate) requests: u64,
    pub(crate) events_per_s: f64,
    pub(crate) requests_per_s: f64,
    /// Per successful request.
    pub(crate) latency_us: LatencySummary,
    /// Receipts flagged as duplicates (should be 0: every event id is fresh).
    pub(crate) duplicates: u64,
    /// Bytes of a typical event body.
    pub(crate) payload_bytes: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorReport {
    pub(crate) total: u64,
    /// Method -> gRPC code (or ClientCheck) -> count, over all phases.
    pub(crate) by_method: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) samples: Vec<String>,
}

impl From<ErrorLog> for ErrorReport {
    fn from(log: ErrorLog) -> Self {
        let total = log.counts.values().flat_map(BTreeMap::values).sum();
        Self { total, by_method: log.counts, samples: log.samples }
    }
}

/// The server's resources over the window (when its pid is known) and its shutdown.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerStats {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) cores_avg: Option<f64>,
    /// Server CPU per acknowledged event, microseconds.
    pub(crate) cpu_us_per_event: Option<f64>,
    /// VmHWM at the end of the window: the peak over the process lifetime.
    pub(crate) peak_rss_bytes: Option<u64>,
    pub(crate) rss_end_bytes: Option<u64>,
    pub(crate) shutdown: Option<Shutdown>,
}

impl ServerStats {
    pub(crate) fn from_samples(
        before: Option<ProcSample>,
        after: Option<ProcSample>,
        seconds: f64,
        events: u64,
    ) -> Self {
        let (Some(before), Some(after)) = (before, after) else { return Self::default() };
        let cpu = after.cpu_seconds - before.cpu_seconds;
        Self {
            cpu_seconds: Some(cpu),
            cores_avg: Some(cpu / seconds.max(1e-9)),
            cpu_us_per_event: (events > 0).then(|| cpu * 1e6 / events as f64),
            peak_rss_bytes: Some(after.peak_rss_bytes),
            rss_end_bytes: Some(after.rss_bytes),
            shutdown: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientReport {
    /// This process's CPU over the window.
    pub(crate) cpu_seconds: f64,
    pub(crate) cores_avg: f64,
    pub(crate) presigned_events: u64,
    pub(crate) presign_seconds: f64,
    pub(crate) presign_events_per_s: f64,
    /// Events signed inside the window because the pool ran dry.
    pub(crate) signed_during_window: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WarmupStats {
    pub(crate) seconds: f64,
    pub(crate) events: u64,
    pub(crate) events_per_s: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SubscribeReport {
    pub(crate) streams: usize,
    /// Entries appended in the window, all tenants.
    pub(crate) expected: u64,
    /// Of those, delivered to the subscribers.
    pub(crate) delivered: u64,
    pub(crate) delivered_total: u64,
    pub(crate) lag_us: LatencySummary,
    pub(crate) gaps: u64,
    pub(crate) chain_breaks: u64,
    pub(crate) caught_up: usize,
    pub(crate) drain_seconds: f64,
}

impl SubscribeReport {
    pub(crate) fn new(stats: &SubscribeStats, expected: u64, streams: usize) -> Self {
        Self {
            streams,
            expected,
            delivered: stats.delivered,
            delivered_total: stats.delivered_total,
            lag_us: LatencySummary::of(&stats.lag),
            gaps: stats.gaps,
            chain_breaks: stats.chain_breaks,
            caught_up: stats.caught_up,
            drain_seconds: stats.drain_seconds,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryReport {
    pub(crate) inclusion_proofs_per_s: f64,
    pub(crate) entries_per_s: f64,
    pub(crate) inclusion_proof_us: LatencySummary,
    pub(crate) get_entry_us: LatencySummary,
}

impl QueryReport {
    pub(crate) fn new(stats: &QueryStats, seconds: f64) -> Self {
        Self {
            inclusion_proofs_per_s: rate(stats.proof.len(), seconds),
            entries_per_s: rate(stats.entry.len(), seconds),
            inclusion_proof_us: LatencySummary::of(&stats.proof),
            get_entry_us: LatencySummary::of(&stats.entry),
        }
    }
}

impl Report {
    /// The table.
    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let a = &c.args;
        let stop = match (a.events, a.duration) {
            (Some(events), _) => format!("{events} events"),
            (None, Some(seconds)) => format!("{seconds} s"),
            (None, None) => "10 s".into(),
        };
        let _ = writeln!(
            out,
            "ledger-bench  {} client(s), batch {}, ~{} B payload, {} tenant(s), mix {}, {stop} after {} s warmup",
            a.clients,
            a.batch,
            self.appends.payload_bytes,
            a.tenants,
            a.mix.name(),
            a.warmup
        );
        let server = match (&c.server_bin, c.server_pid) {
            (Some(bin), Some(pid)) => format!("spawned {} (pid {pid})", bin.display()),
            (None, Some(pid)) => format!("{} (pid {pid})", c.server_url),
            _ => format!("{} (pid unknown: no CPU/RSS)", c.server_url),
        };
        let _ = writeln!(out, "server        {server}, version {}", c.server_version);
        let _ = writeln!(out, "machine       {} cores; load before {}, after {}", c.cores, c.load_before, c.load_after);
        let _ = writeln!(out);

        let ap = &self.appends;
        let _ = writeln!(out, "appends ({:.2} s measured)", ap.seconds);
        let _ = writeln!(out, "  events        {:>12}   {:>12.1} events/s", ap.events, ap.events_per_s);
        let _ = writeln!(out, "  requests      {:>12}   {:>12.1} requests/s", ap.requests, ap.requests_per_s);
        let _ = writeln!(out, "  latency       {}", ap.latency_us.human());
        if ap.duplicates > 0 {
            let _ = writeln!(out, "  duplicates    {}", ap.duplicates);
        }
        let _ = writeln!(out, "  errors        {}", self.errors.total);
        for (method, codes) in &self.errors.by_method {
            for (code, count) in codes {
                let _ = writeln!(out, "    {method:<18} {code:<20} {count}");
            }
        }
        for sample in &self.errors.samples {
            let _ = writeln!(out, "    e.g. {sample}");
        }

        if let Some(s) = &self.subscribe {
            let _ = writeln!(out, "subscribe ({} stream(s))", s.streams);
            let _ = writeln!(
                out,
                "  delivered     {} of {} window entries ({} in all); {} of {} caught up within {:.2} s after the window",
                s.delivered, s.expected, s.delivered_total, s.caught_up, s.streams, s.drain_seconds
            );
            let _ = writeln!(out, "  lag           {}", s.lag_us.human());
            if s.gaps + s.chain_breaks > 0 {
                let _ = writeln!(out, "  gaps          {}, chain breaks {}", s.gaps, s.chain_breaks);
            }
        }
        if let Some(q) = &self.query {
            let _ = writeln!(out, "query ({} client(s))", a.query_clients);
            let _ =
                writeln!(out, "  inclusion     {:>10.1}/s  {}", q.inclusion_proofs_per_s, q.inclusion_proof_us.human());
            let _ = writeln!(out, "  get entry     {:>10.1}/s  {}", q.entries_per_s, q.get_entry_us.human());
        }

        let sv = &self.server;
        let _ = writeln!(out, "server");
        match (sv.cpu_seconds, sv.cores_avg) {
            (Some(cpu), Some(cores)) => {
                let per_event = sv.cpu_us_per_event.map_or(String::new(), |us| format!(", {us:.1} µs/event"));
                let _ = writeln!(out, "  CPU           {cpu:.2} s ({cores:.2} cores avg{per_event})");
            }
            _ if c.server_pid.is_some() => {
                let _ = writeln!(out, "  CPU           unknown (see the notes)");
            }
            _ => {
                let _ = writeln!(out, "  CPU           unknown (pass --server-pid)");
            }
        }
        if let (Some(peak), Some(end)) = (sv.peak_rss_bytes, sv.rss_end_bytes) {
            let _ = writeln!(out, "  RSS           peak {}, at end {}", human_bytes(peak), human_bytes(end));
        }
        if let Some(s) = &sv.shutdown {
            let _ = writeln!(
                out,
                "  shutdown      {:.2} s after SIGTERM, {}; data dir {}; {} WARN/ERROR log line(s)",
                s.seconds,
                s.exit,
                human_bytes(s.data_dir_bytes),
                s.log_warnings
            );
            for line in &s.log_warning_samples {
                let _ = writeln!(out, "    {line}");
            }
        }
        let cl = &self.client;
        let _ = writeln!(out, "client (this process)");
        let _ = writeln!(out, "  CPU           {:.2} s ({:.2} cores avg) in the window", cl.cpu_seconds, cl.cores_avg);
        let _ = writeln!(
            out,
            "  pre-signed    {} events in {:.2} s ({:.0} events/s); {} signed inside the window",
            cl.presigned_events, cl.presign_seconds, cl.presign_events_per_s, cl.signed_during_window
        );
        let w = &self.warmup;
        let _ =
            writeln!(out, "  warmup        {} events in {:.2} s ({:.1} events/s)", w.events, w.seconds, w.events_per_s);

        if !self.timeline.is_empty() {
            let _ = writeln!(out, "timeline        at(s)   events/s  requests/s  slowest   server cores");
            for row in &self.timeline {
                let cores = row.server_cores.map_or("-".into(), |c| format!("{c:.2}"));
                let slowest = if row.requests_per_s > 0.0 { human_us(row.max_latency_us) } else { "-".into() };
                let _ = writeln!(
                    out,
                    "  {:>19.1} {:>10.0} {:>11.0} {:>8}   {cores}",
                    row.at, row.events_per_s, row.requests_per_s, slowest
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}
