//! Scale curves: how the ledger behaves as one tenant's log grows to 10k, 100k, 1M and 10M
//! entries.
//!
//! One store is filled in place (through the library with the governance catalogue, batches of
//! 1024, all cores signing and appending) with governance-shaped traffic: releases of 16 events
//! each (an intent, 10 test suites, a security scan, a QA approval, an evaluation request, the
//! deployment's start and completion) under one policy that requires a QA approval, so every
//! release gets `ReleasePlanned`, `ReleaseApproved` and `ReleasePublished` decisions and ends
//! inactive. At each size this measures:
//!
//! - **fill rate**: library appends/s while growing to this size;
//! - **inclusion-proof latency, server-side**: `Ledger::inclusion_proof` of random seqs against
//!   the full tree, timed in-process (what the server spends; no network);
//! - **point-read latency, server-side**: `Ledger::entry_by_event_id` of random events (an index
//!   lookup plus a verified entry read);
//! - **projection catch-up and summary-query latency, server-side**: the governance worker
//!   (`projections::Governor`) folds the log up to this size (entries/s, including the decisions
//!   it appends), then `GetReleaseSummary`'s work (`Governor::with_release` + `query::summary`: under the
//!   state's read lock, the release from memory or read back from the projection store)
//!   is timed for random releases; the process's resident memory after the fold is reported;
//! - **disk bytes per event**: the data dir's size over its entry count;
//! - **append throughput through gRPC**: `ledger-bench` (next to this binary) against the real
//!   server on this store, for `--measure-seconds`;
//! - **restart time after `kill -9`**: the server is SIGKILLed right after that load, then
//!   restarted; the time from spawn to the first successful `GetCheckpoint`.
//!
//! Usage: `scale-bench [--sizes 10000,100000,1000000,10000000] [--data-dir DIR] [--json]`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench_harness::procfs::rss_mb;
use bench_harness::rng::XorShift64;
use bench_harness::server::{ServerLog, SpawnedServer};
use bench_harness::RELEASE_EVENTS;
use clap::Parser;
use ledger::{Config, KeyPair, Ledger};
use projections::Governor;

const TENANT: &str = "scale";

#[derive(Debug, Parser)]
#[command(about = "Scale curves of the ledger at growing log sizes")]
struct Args {
    /// Log sizes to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000,10000000")]
    sizes: Vec<u64>,
    /// The store (created; reused to grow from one size to the next).
    #[arg(long, default_value = "/var/tmp/release-ledger-scale")]
    data_dir: PathBuf,
    /// Seconds of gRPC append load at each size.
    #[arg(long, default_value_t = 10)]
    measure_seconds: u64,
    /// Concurrent gRPC clients of the load.
    #[arg(long, default_value_t = 16)]
    clients: u64,
    /// Events per gRPC request of the load.
    #[arg(long, default_value_t = 64)]
    batch: u64,
    /// Random proofs / reads timed at each size.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// JSON output (one object per size, then a summary).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Point {
    size: u64,
    fill_events_per_sec: f64,
    proof_us: Percentiles,
    read_us: Percentiles,
    disk_bytes: u64,
    disk_bytes_per_event: f64,
    fold_entries_per_sec: f64,
    summary_us: Percentiles,
    /// Releases the worker holds in memory (the rest are in its store).
    releases_in_memory: usize,
    rss_after_fold_mb: f64,
    grpc_append_events_per_sec: f64,
    grpc_append_p99_us: f64,
    restart_to_serving_ms: f64,
}

#[derive(Debug, serde::Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut samples: Vec<f64>) -> Percentiles {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    Percentiles { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.sizes.windows(2).any(|w| w[0] >= w[1]) {
        bail!("--sizes must be ascending");
    }
    let bin_dir = std::env::current_exe()?.parent().context("binary dir")?.to_path_buf();
    let server_bin = bin_dir.join("release-ledger");
    let load_bin = bin_dir.join("ledger-bench");
    for bin in [&server_bin, &load_bin] {
        if !bin.exists() {
            bail!("{} not found: cargo build --release -p api -p bench-tools --bins", bin.display());
        }
    }
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir).with_context(|| format!("clearing {}", args.data_dir.display()))?;
    }
    // The agent key the fill and the load use, registered once.
    let agent = KeyPair::from_seed(&[42; 32]);
    {
        let ledger = Ledger::open(&args.data_dir, governed())?;
        let admin = KeyPair::load(&args.data_dir.join("keys/admin.pem"))?;
        bench_harness::governance_setup(&ledger, TENANT, &admin, &agent)?;
    }
    let mut points = Vec::new();
    for &size in &args.sizes {
        let point = measure(&args, size, &agent, &server_bin, &load_bin)?;
        if args.json {
            println!("{}", serde_json::to_string(&point)?);
        } else {
            println!(
                "{:>10} entries: fill {:>8.0}/s | proof p50 {:>6.1} p99 {:>6.1} us | read p50 {:>6.1} p99 {:>6.1} us | fold {:>8.0}/s | summary p50 {:>6.1} p99 {:>6.1} us | RSS {:>6.0} MB, {} releases in memory | {:>6.0} B/event | gRPC append {:>8.0}/s p99 {:>7.0} us | restart {:>6.0} ms",
                point.size,
                point.fill_events_per_sec,
                point.proof_us.p50,
                point.proof_us.p99,
                point.read_us.p50,
                point.read_us.p99,
                point.fold_entries_per_sec,
                point.summary_us.p50,
                point.summary_us.p99,
                point.rss_after_fold_mb,
                point.releases_in_memory,
                point.disk_bytes_per_event,
                point.grpc_append_events_per_sec,
                point.grpc_append_p99_us,
                point.restart_to_serving_ms
            );
        }
        points.push(point);
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let ratio = last.grpc_append_events_per_sec / first.grpc_append_events_per_sec;
        let summary = serde_json::json!({
            "appendThroughputRatioLastToFirst": ratio,
            "firstSize": first.size, "lastSize": last.size,
        });
        if args.json {
            println!("{summary}");
        } else {
            println!("gRPC append throughput at {} is {:.0}% of that at {}", last.size, ratio * 100.0, first.size);
        }
    }
    Ok(())
}

fn measure(args: &Args, size: u64, agent: &KeyPair, server_bin: &Path, load_bin: &Path) -> anyhow::Result<Point> {
    // 1. Grow the log to `size` through the library.
    let ledger = Ledger::open(&args.data_dir, governed())?;
    let current = ledger.head(TENANT)?.size;
    let missing = size.saturating_sub(current);
    let fill_started = Instant::now();
    fill(&ledger, agent, missing)?;
    let fill_rate = missing as f64 / fill_started.elapsed().as_secs_f64().max(1e-9);
    let size = ledger.head(TENANT)?.size;

    // 2. Server-side proof and read latency, in-process.
    let mut rng = XorShift64(0x9e37_79b9_7f4a_7c15 ^ size);
    let mut proof_us = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let seq = rng.next() % size;
        let started = Instant::now();
        let proof = ledger.inclusion_proof(TENANT, seq, size)?;
        proof_us.push(started.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(proof);
    }
    let mut read_us = Vec::with_capacity(args.samples);
    let filled = FILLED.load(Ordering::Relaxed);
    for _ in 0..args.samples {
        // Fill events are named fill-<n> for n in 0..filled.
        let n = rng.next() % filled.max(1);
        let started = Instant::now();
        let entry = ledger.entry_by_event_id(TENANT, &format!("fill-{n}"))?;
        read_us.push(started.elapsed().as_secs_f64() * 1e6);
        if entry.is_none() {
            bail!("fill-{n} is missing");
        }
    }

    // 3. The governance worker catches up (it resumes from its stored position), then the
    //    summary query's server-side work is timed.
    let ledger = Arc::new(ledger);
    let fold_started = Instant::now();
    let governor = Governor::start(ledger.clone(), &args.data_dir.join("projections"), None)?;
    if !governor.settle(Duration::from_secs(3600)) {
        bail!("the projection worker did not catch up within an hour");
    }
    // Entries folded at this point: the new fill plus the decisions the worker appended.
    let folded_to = ledger.head(TENANT)?.size;
    let fold_rate = folded_to.saturating_sub(FOLDED.swap(folded_to, Ordering::Relaxed)) as f64
        / fold_started.elapsed().as_secs_f64().max(1e-9);
    let releases = filled / RELEASE_EVENTS;
    let mut summary_us = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let release = format!("r{}", rng.next() % releases.max(1));
        let started = Instant::now();
        let summary = governor.with_release(TENANT, &release, projections::query::summary)?.flatten();
        summary_us.push(started.elapsed().as_secs_f64() * 1e6);
        match summary {
            Some(s) if s.status == "Published" => {}
            other => bail!("release {release}: expected a Published summary, got {other:?}"),
        }
    }
    let releases_in_memory = governor.releases_in_memory(TENANT);
    let rss_after_fold_mb = rss_mb();
    governor.shutdown();
    drop(governor);
    let ledger = Arc::try_unwrap(ledger).map_err(|_| anyhow::anyhow!("ledger still shared"))?;
    drop(ledger);
    let disk_bytes = testkit::dir_size(&args.data_dir.join("db"));

    // 4. gRPC append throughput against the real server on this store, then kill -9.
    let server = spawn_server(server_bin, &args.data_dir)?;
    let url = server.url();
    let output = Command::new(load_bin)
        .args(["--server", &url, "--clients", &args.clients.to_string(), "--batch", &args.batch.to_string()])
        .args(["--duration", &args.measure_seconds.to_string(), "--tenants", "1", "--json"])
        .args(["--tenant-prefix", "load", "--admin-key"])
        .arg(args.data_dir.join("keys/admin.pem"))
        .output()
        .context("running ledger-bench")?;
    if !output.status.success() {
        drop(server);
        bail!("ledger-bench failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let load: serde_json::Value = serde_json::from_slice(&output.stdout).context("ledger-bench --json output")?;
    server.kill()?;

    // 5. Restart to serving after the kill.
    let restart_started = Instant::now();
    let server = spawn_server(server_bin, &args.data_dir)?;
    wait_serving(&server.url())?;
    let restart = restart_started.elapsed();
    server.kill()?;

    Ok(Point {
        size,
        fill_events_per_sec: fill_rate,
        proof_us: percentiles(proof_us),
        read_us: percentiles(read_us),
        fold_entries_per_sec: fold_rate,
        summary_us: percentiles(summary_us),
        releases_in_memory,
        rss_after_fold_mb,
        disk_bytes,
        disk_bytes_per_event: disk_bytes as f64 / size as f64,
        grpc_append_events_per_sec: load
            .pointer("/appends/eventsPerS")
            .and_then(serde_json::Value::as_f64)
            .unwrap_or(0.0),
        grpc_append_p99_us: load.pointer("/appends/latencyUs/p99").and_then(serde_json::Value::as_f64).unwrap_or(0.0),
        restart_to_serving_ms: restart.as_secs_f64() * 1e3,
    })
}

/// Fill events appended so far (their ids are `fill-0 ..`).
static FILLED: AtomicU64 = AtomicU64::new(0);

/// Log size the projections had folded at the previous point.
static FOLDED: AtomicU64 = AtomicU64::new(0);

/// The store's configuration: the governance catalogue checks every event, as in `serve`.
fn governed() -> Config {
    Config { rules: Some(Arc::new(projections::Catalogue)), ..Config::default() }
}

/// Appends `count` more fill events (whole releases), signing and appending on every core.
fn fill(ledger: &Ledger, agent: &KeyPair, count: u64) -> anyhow::Result<()> {
    let start = FILLED.load(Ordering::Relaxed);
    let count = count.div_ceil(RELEASE_EVENTS) * RELEASE_EVENTS;
    bench_harness::governance_fill(ledger, TENANT, agent, start, count)?;
    FILLED.store(start + count, Ordering::Relaxed);
    Ok(())
}

/// Starts `release-ledger serve` on ephemeral ports over `data_dir` (its log discarded) and
/// waits for its listening line, however long recovery of a large store takes.
fn spawn_server(bin: &Path, data_dir: &Path) -> anyhow::Result<SpawnedServer> {
    SpawnedServer::start(bin, Some(data_dir), ServerLog::Discard, Duration::from_secs(3600))
}

/// Polls `GetCheckpoint` until it answers.
fn wait_serving(url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut client) = proto::v1::ledger_client::LedgerClient::connect(url.to_owned()).await {
                let request = proto::v1::GetCheckpointRequest { tenant: TENANT.into(), size: 0 };
                if client.get_checkpoint(request).await.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("server at {url} not serving after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}
