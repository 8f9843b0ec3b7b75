//! Steps 1 and 2: fill the data dir (unless a marker says it was filled at this size), then
//! serve it and wait for the governance worker to catch up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ledger::{AppendEvent, Config, Envelope, KeyPair, Ledger};
use testkit::gov;

use crate::args::Args;
use crate::server::{mint_token, wait_caught_up, Server};
use crate::workload::{policy_doc, release, release_id, Signer, SystemClockNs};
use crate::TENANT;

/// Releases per `append_batch` (about 10 events each).
const RELEASES_PER_BATCH: u64 = 96;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FillReport {
    pub(crate) releases: u64,
    pub(crate) events: u64,
    pub(crate) fill_seconds: f64,
    pub(crate) fill_events_per_sec: f64,
    /// Spawn to lag 0 (server start, projection load, fold, decisions appended and folded).
    pub(crate) catch_up_seconds: f64,
    /// The log once caught up (the fill plus the worker's decisions).
    pub(crate) log_entries: u64,
    pub(crate) catch_up_entries_per_sec: f64,
    pub(crate) plans: BTreeMap<String, u64>,
    pub(crate) load_average_after_catch_up: String,
    pub(crate) filled_at: String,
}

/// Creates the data dir, registers the kit's cast, sets the policy and the freezes, and appends
/// every release; returns (events appended, seconds).
fn fill(data_dir: &Path, releases: u64) -> anyhow::Result<(u64, f64)> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    let config = Config { rules: Some(Arc::new(projections::Catalogue)), ..Config::default() };
    let ledger = Ledger::open(data_dir, config)?;
    let admin = KeyPair::load(&data_dir.join("keys/admin.pem"))?;
    for (agent, roles) in gov::CAST {
        let body = testkit::register_key_body(TENANT, agent, &gov::key_of(agent), roles, &[]);
        let _ = ledger.append(AppendEvent::new(Envelope::sign(body, &admin)))?;
    }
    let signer = Signer::new(admin);
    let now = SystemClockNs::now();
    let setup = [
        gov::policy(policy_doc()),
        // In force for half a year: every evaluated staging-eu release is Delayed until it ends.
        gov::freeze_oneoff(
            "eu-datacentre-migration",
            &["staging-eu"],
            &gov::rfc3339(now - gov::DAY),
            &gov::rfc3339(now + 180 * gov::DAY),
        ),
        gov::freeze_recurring(
            "holiday",
            &["prod"],
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
            3 * 86_400,
            "Europe/Berlin",
        ),
        gov::freeze_cron("dev-maintenance", &["dev"], "0 2 * * 0", 7_200, "UTC"),
    ];
    for (i, event) in setup.iter().enumerate() {
        let _ = ledger.append(signer.sign(event, &format!("setup-{i}"))?)?;
    }
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let appended = AtomicU64::new(0);
    let progress = AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..bench_harness::cores())
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let from = next.fetch_add(RELEASES_PER_BATCH, Ordering::Relaxed);
                        if from >= releases {
                            return Ok(());
                        }
                        let to = (from + RELEASES_PER_BATCH).min(releases);
                        let mut batch = Vec::new();
                        for index in from..to {
                            for (j, event) in release(index).events.iter().enumerate() {
                                batch.push(signer.sign(event, &format!("{}-{j}", release_id(index)))?);
                            }
                        }
                        let count = batch.len() as u64;
                        let _ = ledger.append_batch(batch)?;
                        appended.fetch_add(count, Ordering::Relaxed);
                        let done = progress.fetch_add(to - from, Ordering::Relaxed) + (to - from);
                        if done / 10_000 != (done - (to - from)) / 10_000 {
                            eprintln!(
                                "  filled {done} releases, {} events, {:.0} s",
                                appended.load(Ordering::Relaxed),
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((appended.load(Ordering::Relaxed), started.elapsed().as_secs_f64()))
}

/// A served data dir, caught up.
pub(crate) struct Prepared {
    pub(crate) report: FillReport,
    /// The data dir was filled by an earlier run.
    pub(crate) reused: bool,
    pub(crate) server: Server,
    /// An operator token.
    pub(crate) token: String,
    /// The log's length once caught up.
    pub(crate) position: u64,
}

/// Fills `data_dir` (unless `DATA_DIR.fill.json` says it was filled with as many releases and
/// `--refill` is not given), serves it with `bin`, mints a token, and waits for the catch-up.
pub(crate) fn prepare(args: &Args, data_dir: &Path, bin: &Path) -> anyhow::Result<Prepared> {
    let marker = data_dir.with_extension("fill.json");
    let cached: Option<FillReport> = if args.refill || !data_dir.exists() {
        None
    } else {
        std::fs::read(&marker)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<FillReport>(&bytes).ok())
            .filter(|r| r.releases == args.releases)
    };
    let (report, reused, server, token, position) = match cached {
        Some(report) => {
            eprintln!("reusing {} (filled {}; --refill to fill again)", data_dir.display(), report.filled_at);
            let started = Instant::now();
            let server = Server::start(bin, data_dir)?;
            let token = mint_token(bin, data_dir, &server)?;
            let position = wait_caught_up(&server, &token, Duration::from_secs(3600))?;
            eprintln!("server ready and caught up in {:.1} s at {position} entries", started.elapsed().as_secs_f64());
            (report, true, server, token, position)
        }
        None => {
            if marker.exists() {
                std::fs::remove_file(&marker)?;
            }
            eprintln!("filling {} with {} releases", data_dir.display(), args.releases);
            let (events, fill_seconds) = fill(data_dir, args.releases)?;
            eprintln!(
                "filled: {events} events in {fill_seconds:.1} s ({:.0}/s); load {}",
                events as f64 / fill_seconds,
                bench_harness::load_average()
            );
            let started = Instant::now();
            let server = Server::start(bin, data_dir)?;
            let token = mint_token(bin, data_dir, &server)?;
            let position = wait_caught_up(&server, &token, Duration::from_secs(3600))?;
            let catch_up_seconds = started.elapsed().as_secs_f64();
            let mut plans = BTreeMap::new();
            for index in 0..args.releases {
                *plans.entry(format!("{:?}", release(index).plan)).or_insert(0) += 1;
            }
            let report = FillReport {
                releases: args.releases,
                events,
                fill_seconds,
                fill_events_per_sec: events as f64 / fill_seconds,
                catch_up_seconds,
                log_entries: position,
                catch_up_entries_per_sec: position as f64 / catch_up_seconds,
                plans,
                load_average_after_catch_up: bench_harness::load_average(),
                filled_at: gov::rfc3339(SystemClockNs::now()),
            };
            eprintln!("caught up: {position} entries in {catch_up_seconds:.1} s");
            std::fs::write(&marker, serde_json::to_vec_pretty(&report)?)?;
            (report, false, server, token, position)
        }
    };
    Ok(Prepared { report, reused, server, token, position })
}
