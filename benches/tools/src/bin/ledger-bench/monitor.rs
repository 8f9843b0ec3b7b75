//! The per-second timeline of the measured window.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_harness::latency::rate;
use bench_harness::procfs::Stat;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::shared::Shared;

/// One second of the measured window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TimelineRow {
    /// Seconds since the window started, at the end of this row.
    pub(crate) at: f64,
    pub(crate) events_per_s: f64,
    pub(crate) requests_per_s: f64,
    /// The slowest successful request that completed in this row.
    pub(crate) max_latency_us: u64,
    /// Server cores used in this row, when its pid is known.
    pub(crate) server_cores: Option<f64>,
}

/// Samples the shared counters (and the server's CPU) every second until stopped.
pub(crate) async fn monitor(
    shared: Arc<Shared>,
    pid: Option<u32>,
    clk_tck: u64,
    started: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Vec<TimelineRow> {
    let cpu =
        |pid: Option<u32>| pid.and_then(|pid| Stat::read(&format!("/proc/{pid}")).ok()).map(|stat| stat.cpu_ticks);
    let mut rows = Vec::new();
    let mut ticker = tokio::time::interval_at((started + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let (mut last_at, mut last_cpu) = (started, cpu(pid));
    loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut stop => true,
        };
        let now = Instant::now();
        let seconds = now.duration_since(last_at).as_secs_f64();
        let events = shared.tick_events.swap(0, Ordering::Relaxed);
        let requests = shared.tick_requests.swap(0, Ordering::Relaxed);
        let max_latency_us = shared.tick_max_latency_us.swap(0, Ordering::Relaxed);
        let now_cpu = cpu(pid);
        if seconds > 0.05 || !stopped {
            let server_cores = match (last_cpu, now_cpu) {
                (Some(before), Some(after)) => Some((after - before) as f64 / clk_tck as f64 / seconds.max(1e-9)),
                _ => None,
            };
            rows.push(TimelineRow {
                at: now.duration_since(started).as_secs_f64(),
                events_per_s: rate(events, seconds),
                requests_per_s: rate(requests, seconds),
                max_latency_us,
                server_cores,
            });
        }
        (last_at, last_cpu) = (now, now_cpu);
        if stopped {
            return rows;
        }
    }
}
