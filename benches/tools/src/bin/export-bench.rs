//! Exports and offline verification, measured: export rows/s and bytes/event for Arrow IPC and
//! Parquet, then `ledger-audit verify` (the real binary, in its own process, so its peak
//! memory is its own) of each file and of the data dir itself, beside Ed25519 batch
//! verification alone of the same signatures on the same machine, in the same run.
//!
//! ```text
//! cargo run --release -p bench-tools --bin export-bench -- --entries 1000000
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use bench_harness::{cores, governance_fill, governance_setup, Ed25519Alone, SignedSet, RELEASE_EVENTS};
use clap::Parser;
use ledger::{Config, KeyPair, Ledger};
use ledger_tools::export::{entry_batches, export_meta};
use ledger_tools::{ExportWriter, Format, Table};

const TENANT: &str = "export";

/// Measurements of the Ed25519 limit, of which the best counts ([`Ed25519Alone::best_of`]).
const LIMIT_RUNS: usize = 3;

#[derive(Debug, Parser)]
#[command(about = "Export throughput and offline verification against Ed25519 batch verification alone")]
struct Args {
    /// Entries in the log, about (whole releases: 16 events and the ledger's 3 decisions each).
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Where the log and the exports go (default: a temporary dir, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Prints the results as one JSON line.
    #[arg(long)]
    json: bool,
    /// The `ledger-audit` binary to time (default: the one beside this binary, i.e. the same
    /// build's). Its path and BLAKE3 hash are printed and reported, so that a result names the
    /// build it measured: a copy of this binary elsewhere would otherwise run whatever
    /// `ledger-audit` lies beside the copy.
    #[arg(long, value_name = "PATH")]
    ledger_audit: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let auditor = match &args.ledger_audit {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("ledger-audit"),
    };
    if !auditor.is_file() {
        bail!(
            "{} is missing: cargo build --release -p ledger-tools, or name one with --ledger-audit",
            auditor.display()
        );
    }
    let auditor_hash = blake3::hash(&std::fs::read(&auditor).with_context(|| format!("read {}", auditor.display()))?);
    eprintln!("ledger-audit: {} (BLAKE3 {})", auditor.display(), auditor_hash.to_hex());
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("data");
    let config = Config { rules: Some(std::sync::Arc::new(projections::Catalogue)), ..Config::default() };
    let ledger = std::sync::Arc::new(Ledger::open(&data, config)?);
    let admin = KeyPair::load(&data.join("keys/admin.pem"))?;
    let agent = KeyPair::from_seed(&[42; 32]);
    governance_setup(&ledger, TENANT, &admin, &agent)?;
    // Each release is 16 fill events plus the 3 decisions the ledger appends for it.
    let releases = args.entries.div_ceil(RELEASE_EVENTS + 3);
    let started = Instant::now();
    // The projection worker appends the decisions as the server's would, keeping up with the
    // fill (slices of 1024 releases, settled in between), so a decision sits within a slice of
    // its trigger in the log rather than all at the end, as if the worker had lagged for the
    // whole fill.
    let governor = projections::Governor::start(ledger.clone(), &dir.join("projections"), None)?;
    let slice = 1024 * RELEASE_EVENTS;
    let events = releases * RELEASE_EVENTS;
    for from in (0..events).step_by(slice as usize) {
        governance_fill(&ledger, TENANT, &agent, from, slice.min(events - from))?;
        if !governor.settle(std::time::Duration::from_secs(3600)) {
            bail!("the projection worker did not settle");
        }
    }
    drop(governor);
    let size = ledger.head(TENANT)?.size;
    eprintln!("filled {size} entries (decisions included) in {:.1} s", started.elapsed().as_secs_f64());

    let mut results = serde_json::Map::new();
    results.insert("entries".into(), size.into());
    results.insert("cores".into(), cores().into());
    results.insert(
        "ledgerAudit".into(),
        serde_json::json!({ "path": auditor.display().to_string(), "blake3": auditor_hash.to_hex().to_string() }),
    );
    for format in [Format::Arrow, Format::Parquet] {
        let path = dir.join(format!("entries.{format}"));
        let started = Instant::now();
        let meta = export_meta(&ledger, TENANT, Table::Entries, 0, size)?;
        let mut writer = ExportWriter::create(&path, format, &meta)?;
        for batch in entry_batches(&ledger, TENANT, meta.schema(), 0, size) {
            writer.write(&batch?)?;
        }
        let bytes = writer.finish()?;
        let seconds = started.elapsed().as_secs_f64();
        let (verify_seconds, peak_mb) = audit(&auditor, &path)?;
        eprintln!(
            "{format}: export {:.0} rows/s, {:.1} bytes/event; verify {:.0} events/s, peak RSS {peak_mb:.0} MB",
            size as f64 / seconds,
            bytes as f64 / size as f64,
            size as f64 / verify_seconds
        );
        results.insert(
            format.to_string(),
            serde_json::json!({
                "exportRowsPerSecond": size as f64 / seconds, "bytesPerEvent": bytes as f64 / size as f64,
                "bytes": bytes, "verifyEventsPerSecond": size as f64 / verify_seconds, "verifyPeakRssMb": peak_mb,
            }),
        );
    }

    // The physical limit: the same signatures through ed25519 batch verification alone, in
    // batches of 256 on every core (what the verifier does), nothing else: the faster of
    // ed25519-dalek's verify_batch and the ledger's own batch check (one key's terms summed,
    // coefficients from BLAKE3, curve25519-dalek 5), both reported; the best of
    // `LIMIT_RUNS` measurements, each run's limit reported too.
    let entries: Vec<_> = ledger.entries(TENANT, 0, size)?.collect::<Result<_, _>>()?;
    let roots = ledger.trust_roots();
    let mut keys = HashMap::from([
        (roots.admin_id().to_hex(), *roots.admin()),
        (roots.ledger_id().to_hex(), *roots.ledger()),
        (agent.key_id().to_hex(), agent.verifying_key()),
    ]);
    keys.extend(ledger.key_records(TENANT)?.iter().filter_map(|r| Some((r.key_id.clone(), r.verifying_key()?))));
    let set = SignedSet::of_entries(&entries, &keys);
    drop(entries);
    let (alone, runs) = Ed25519Alone::best_of(&set, 256, LIMIT_RUNS);
    let (limit, dalek, own) = (alone.limit(), alone.dalek, alone.ledger);
    let run_limits: Vec<f64> = runs.iter().map(Ed25519Alone::limit).collect();
    results.insert("ed25519BatchPerSecondRuns".into(), run_limits.into());
    eprintln!(
        "ed25519 batch verification alone: {limit:.0} signatures/s (ed25519-dalek {dalek:.0}/s, the ledger's check {own:.0}/s)"
    );
    results.insert("ed25519BatchPerSecond".into(), limit.into());
    results.insert("ed25519DalekBatchPerSecond".into(), dalek.into());
    results.insert("ed25519LedgerBatchPerSecond".into(), own.into());
    // The data dir itself, as `ledger-audit verify DATA_DIR` checks it: the same signatures,
    // chain, tree and fold, and every other column family against the entries (the ledger
    // closed first, as an operator would stop the server).
    drop(ledger);
    let (verify_seconds, peak_mb) = audit(&auditor, &data)?;
    eprintln!("data dir: verify {:.0} events/s, peak RSS {peak_mb:.0} MB", size as f64 / verify_seconds);
    results.insert(
        "dataDir".into(),
        serde_json::json!({ "verifyEventsPerSecond": size as f64 / verify_seconds, "verifyPeakRssMb": peak_mb }),
    );
    for format in ["arrow", "parquet", "dataDir"] {
        let rate = results[format]["verifyEventsPerSecond"].as_f64().unwrap_or(0.0);
        eprintln!("{format}: verify = {:.0}% of batch verification alone", 100.0 * rate / limit);
    }
    if args.json {
        println!("{}", serde_json::Value::Object(results));
    }
    Ok(())
}

/// Runs `ledger-audit verify` on `path`; returns its wall time and peak RSS (MB, from
/// `/proc/<pid>/status` VmHWM read by a wrapper: GNU time's `%M`).
fn audit(bin: &Path, path: &Path) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .arg("verify")
        .arg(path)
        .output()
        .context("run /usr/bin/time (Debian package `time`)")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "ledger-audit verify failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let peak_kb: f64 = stderr.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0.0);
    Ok((seconds, peak_kb / 1024.0))
}
