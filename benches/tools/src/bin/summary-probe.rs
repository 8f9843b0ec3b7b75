//! Times the server-side work of `GetReleaseSummary` against an existing data dir's projection
//! store, without the worker: the release read back from the store (what an evicted release
//! costs) and `query::summary`. For a store a worker left behind (the scale run's, at rest,
//! rather than right after the run's fill and catch-up).
//!
//! With `--proofs`, it also opens the log and times inclusion proofs of random seqs against
//! the head, on a store at rest (`scale-bench` times them right after its fill, while RocksDB
//! is still compacting it).
//!
//! Usage: `summary-probe --data-dir DIR --tenant T [--samples 20000] [--proofs]`

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use bench_harness::rng::XorShift64;
use clap::Parser;
use projections::store::ProjectionStore;

#[derive(Debug, Parser)]
struct Args {
    /// The data dir (its `projections/` store is read; the server must be stopped).
    #[arg(long)]
    data_dir: PathBuf,
    /// The tenant.
    #[arg(long)]
    tenant: String,
    /// Summaries timed.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Also time inclusion proofs (opens the log: the server must be stopped).
    #[arg(long)]
    proofs: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let store = ProjectionStore::open(&args.data_dir.join("projections"))?;
    let states = store.load_all()?;
    let state = states.get(&args.tenant).context("no such tenant in the projection store")?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let ids: Vec<String> = store
        .releases_after(&args.tenant, None, |_| false)
        .map(|row| row.map(|(id, _)| id))
        .collect::<Result<_, _>>()?;
    let mut rng = XorShift64(0x9e37_79b9_7f4a_7c15);
    let mut us = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        let id = &ids[(rng.next() % ids.len() as u64) as usize];
        let t = Instant::now();
        let release = store.release(&args.tenant, id)?.context("a listed release reads back")?;
        let summary = projections::query::summary(state, &release);
        us.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(summary);
    }
    let mut out = serde_json::json!({
        "position": state.meta.position, "releasesStored": ids.len(), "releasesLoadedAtStart": state.releases.len(),
        "loadMs": load_ms, "summaryUs": percentiles(us),
    });
    if args.proofs {
        let config = ledger::Config { rules: Some(std::sync::Arc::new(projections::Catalogue)), ..Default::default() };
        let ledger = ledger::Ledger::open(&args.data_dir, config)?;
        let size = ledger.head(&args.tenant)?.size;
        let mut us = Vec::with_capacity(args.samples);
        for _ in 0..args.samples {
            let seq = rng.next() % size;
            let t = Instant::now();
            let proof = ledger.inclusion_proof(&args.tenant, seq, size)?;
            us.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(proof);
        }
        out["logSize"] = size.into();
        out["proofUs"] = percentiles(us);
    }
    println!("{out}");
    Ok(())
}

fn percentiles(mut us: Vec<f64>) -> serde_json::Value {
    us.sort_by(f64::total_cmp);
    let pct = |p: f64| us[((us.len() - 1) as f64 * p) as usize];
    serde_json::json!({"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)})
}
