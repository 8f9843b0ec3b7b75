//! The report: one JSON object, or the table.

use serde::Serialize;

use crate::server::{ServerInfo, WalStats};

#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Sizes {
    pub(crate) payload_bytes: usize,
    pub(crate) pae_bytes: usize,
    pub(crate) envelope_bytes: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct Config {
    pub(crate) conn: String,
    pub(crate) clients: usize,
    pub(crate) batch: usize,
    pub(crate) tenants: usize,
    pub(crate) verify_signatures: bool,
    pub(crate) duration_seconds: Option<f64>,
    pub(crate) events_requested: Option<u64>,
    pub(crate) pool_events: u64,
    pub(crate) padding: usize,
    pub(crate) sizes: Sizes,
    pub(crate) tokio_worker_threads: usize,
    pub(crate) cores: usize,
    pub(crate) events_before: i64,
    pub(crate) server: ServerInfo,
}

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) mean: f64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) config: Config,
    pub(crate) elapsed_seconds: f64,
    pub(crate) stopped_early_pool_exhausted: bool,
    pub(crate) events: u64,
    pub(crate) transactions: u64,
    pub(crate) events_per_second: f64,
    pub(crate) transactions_per_second: f64,
    /// Per request (one transaction), from the start of its checks to the acknowledged COMMIT.
    pub(crate) latency_us: Latency,
    pub(crate) signing_seconds: f64,
    /// Summed over clients: time inside signature verification.
    pub(crate) verify_seconds: f64,
    pub(crate) client_cpu_seconds: Option<f64>,
    pub(crate) server_cpu_seconds: Option<f64>,
    pub(crate) wal: Option<WalStats>,
    pub(crate) load_average_before: String,
    pub(crate) load_average_after: String,
    pub(crate) chain_checked: Option<u64>,
}

impl Report {
    pub(crate) fn print(&self) {
        let c = &self.config;
        let ms = |us: u64| us as f64 / 1000.0;
        let per_event = |seconds: Option<f64>| {
            seconds.map_or_else(
                || "n/a".to_owned(),
                |s| format!("{s:.2} s = {:.1} µs/event", s * 1e6 / self.events as f64),
            )
        };
        println!("PostgreSQL {} on {}", c.server.version, c.conn);
        println!("  settings: {}", c.server.settings_line());
        println!(
            "config: clients={} batch={} tenants={} verify_signatures={} {} padding={} (payload {} B, envelope {} B) \
             tokio_threads={} cores={}",
            c.clients,
            c.batch,
            c.tenants,
            c.verify_signatures,
            match (c.duration_seconds, c.events_requested) {
                (Some(d), _) => format!("duration={d}s"),
                (None, Some(n)) => format!("events={n}"),
                (None, None) => String::new(),
            },
            c.padding,
            c.sizes.payload_bytes,
            c.sizes.envelope_bytes,
            c.tokio_worker_threads,
            c.cores
        );
        println!(
            "result: {} events in {} transactions in {:.2} s = {:.0} events/s, {:.0} transactions/s{}",
            self.events,
            self.transactions,
            self.elapsed_seconds,
            self.events_per_second,
            self.transactions_per_second,
            if self.stopped_early_pool_exhausted { " (stopped early: pre-signed pool exhausted)" } else { "" }
        );
        let l = &self.latency_us;
        println!(
            "latency per transaction (ms): mean {:.3} p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            l.mean / 1000.0,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        if let Some(wal) = &self.wal {
            println!(
                "wal: {} syncs ({:.1} events/sync), {} writes, {:.0} bytes/event, {} full-page images",
                wal.syncs,
                self.events as f64 / wal.syncs.max(1) as f64,
                wal.writes,
                wal.bytes as f64 / self.events as f64,
                wal.full_page_images
            );
        }
        println!(
            "cpu: client {} (wall time in signature checks, summed over clients: {:.2} s), server {}; \
             signing beforehand {:.2} s",
            per_event(self.client_cpu_seconds),
            self.verify_seconds,
            per_event(self.server_cpu_seconds),
            self.signing_seconds
        );
        println!("load average: before {} / after {}", self.load_average_before, self.load_average_after);
        if let Some(checked) = self.chain_checked {
            println!("chain: {checked} entries re-hashed, heads match");
        }
    }
}
