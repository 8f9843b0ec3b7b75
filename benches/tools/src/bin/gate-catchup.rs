//! Projection catch-up with and without custom gates (issue 22), in one process run.
//!
//! Three logs of `--releases` releases each are appended through the event catalogue (the
//! governance test kit's scenario, `bench_harness::gates`), one per variant:
//!
//! - **plain**: the kit's baseline `prod` policy (one `QA` approval, tests, coverage, a clean
//!   scan), releases of 3 modules with their signals only: 14 events a release (intent, 9
//!   signals, evaluation request, approval, deployment start and completion);
//! - **evidence**: the same policy, releases that also carry what the four worked examples of
//!   docs/gates read (per module an `slo-report`, a `perf-baseline` and an SLSA provenance
//!   attestation, per release a `dr-drill`: 10 `EvidenceAttached`, 24 events a release), read
//!   by no gate;
//! - **gated**: the same log as *evidence* under the same policy plus the four examples as custom
//!   gates of `prod`, with docs/gates/policy.json's evidence schemas.
//!
//! The evaluation request comes before the attached evidence, so each piece re-evaluates the
//! release: 3 evaluations a release in *plain*, 13 in the others (intent, request, 10 pieces,
//! approval). Every release ends published under every policy (checked).
//!
//! For each variant, once: the projection worker (`Governor`, as `scale-bench` runs it) catches
//! up from the start of the log, appending the decisions it derives (entries/s of the final
//! log). Then, `--rounds` times, the variants in turn (plain, evidence, gated, plain, ...): a fold
//! from seq 0 of the whole log, decisions included (`projections::fold`, what a rebuild, a
//! replay and the auditor compute), timed: entries/s and evaluations (decisions derived)/s.
//!
//! Usage: `gate-catchup [--releases 2000] [--rounds 3] [--json]`.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use bench_harness::gates::{release_events, scenario, Evidence, Gates};
use clap::Parser;
use projections::state::ReleaseStatus;
use testkit::gov::Scenario;

#[derive(Debug, Parser)]
#[command(about = "Projection catch-up with and without custom gates, same run")]
struct Args {
    /// Releases per log.
    #[arg(long, default_value_t = 2000)]
    releases: u64,
    /// Timed folds of each log, the variants alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Events per `append_batch` while filling.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// JSON lines instead of text.
    #[arg(long)]
    json: bool,
}

/// One variant's log, folded in every round.
struct Variant {
    name: &'static str,
    gates: Gates,
    scenario: Scenario,
    /// Entries once the worker caught up (its decisions included).
    size: u64,
    /// Evaluations a fold of it makes.
    evaluations: u64,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Fill {
    variant: &'static str,
    custom_gates: usize,
    releases: u64,
    events_per_release: u64,
    fill_entries: u64,
    fill_events_per_sec: f64,
    decision_entries: u64,
    log_entries: u64,
    evaluations: u64,
    governor_catch_up_sec: f64,
    governor_entries_per_sec: f64,
    governor_evaluations_per_sec: f64,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Fold {
    round: usize,
    variant: &'static str,
    entries: u64,
    evaluations: u64,
    sec: f64,
    entries_per_sec: f64,
    evaluations_per_sec: f64,
    load_average: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    eprintln!("load average at start: {}", bench_harness::load_average());
    let plans = [
        ("plain", Gates::None, Evidence::None),
        ("evidence", Gates::None, Evidence::All),
        ("gated", Gates::Examples, Evidence::All),
    ];
    let mut variants = Vec::new();
    for (name, gates, evidence) in plans {
        let (variant, fill) = build(&args, name, gates, evidence)?;
        if args.json {
            println!("{}", serde_json::to_string(&fill)?);
        } else {
            println!(
                "fill {:<8} {} custom gates: {} releases x {} events = {} entries at {:.0}/s; worker caught up in {:.2} s \
                 appending {} decisions ({} entries: {:.0} entries/s, {:.0} evaluations/s)",
                fill.variant,
                fill.custom_gates,
                fill.releases,
                fill.events_per_release,
                fill.fill_entries,
                fill.fill_events_per_sec,
                fill.governor_catch_up_sec,
                fill.decision_entries,
                fill.log_entries,
                fill.governor_entries_per_sec,
                fill.governor_evaluations_per_sec
            );
        }
        variants.push(variant);
    }

    let mut folds: Vec<Fold> = Vec::new();
    for round in 1..=args.rounds {
        for v in &variants {
            let started = Instant::now();
            let state = v.scenario.fold(None);
            let sec = started.elapsed().as_secs_f64();
            ensure!(state.meta.position == v.size, "{}: folded {} of {} entries", v.name, state.meta.position, v.size);
            drop(std::hint::black_box(state));
            let fold = Fold {
                round,
                variant: v.name,
                entries: v.size,
                evaluations: v.evaluations,
                sec,
                entries_per_sec: v.size as f64 / sec,
                evaluations_per_sec: v.evaluations as f64 / sec,
                load_average: bench_harness::load_average(),
            };
            if args.json {
                println!("{}", serde_json::to_string(&fold)?);
            } else {
                println!(
                    "fold round {round} {:<8} {} entries in {:.3} s: {:>7.0} entries/s, {:>7.0} evaluations/s (load {})",
                    fold.variant, fold.entries, fold.sec, fold.entries_per_sec, fold.evaluations_per_sec, fold.load_average
                );
            }
            folds.push(fold);
        }
    }
    if !args.json {
        println!("median of {} rounds:", args.rounds);
        for v in &variants {
            let sec = median(&folds, v.name);
            println!(
                "  {:<8} {} custom gates: {:.3} s, {:>7.0} entries/s, {:>7.0} evaluations/s, {:.1} us of fold per evaluation",
                v.name,
                v.gates.count(),
                sec,
                v.size as f64 / sec,
                v.evaluations as f64 / sec,
                sec * 1e6 / v.evaluations as f64
            );
        }
        if let (Some(evidence), Some(gated)) =
            (variants.iter().find(|v| v.name == "evidence"), variants.iter().find(|v| v.name == "gated"))
        {
            let extra = median(&folds, "gated") - median(&folds, "evidence");
            println!(
                "  gated - evidence: {:+.3} s over {} evaluations = {:+.1} us per evaluation for {} custom gates \
                 ({} more decision entries in the gated log)",
                extra,
                gated.evaluations,
                extra * 1e6 / gated.evaluations as f64,
                gated.gates.count(),
                gated.size as i64 - evidence.size as i64
            );
        }
    }
    eprintln!("load average at end: {}", bench_harness::load_average());
    Ok(())
}

fn median(folds: &[Fold], variant: &str) -> f64 {
    let mut secs: Vec<f64> = folds.iter().filter(|f| f.variant == variant).map(|f| f.sec).collect();
    secs.sort_by(f64::total_cmp);
    secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Fills one variant's log, lets the worker catch up (appending its decisions), and checks every
/// release ended published.
fn build(args: &Args, name: &'static str, gates: Gates, evidence: Evidence) -> anyhow::Result<(Variant, Fill)> {
    let mut scenario = scenario(gates);
    let before = scenario.size();
    let events_per_release = release_events(0, evidence, true).len() as u64;
    let started = Instant::now();
    const CHUNK: u64 = 64;
    let mut next = 0;
    while next < args.releases {
        let to = (next + CHUNK).min(args.releases);
        let events: Vec<_> = (next..to).flat_map(|i| release_events(i, evidence, true)).collect();
        scenario.run_batched(events, args.batch);
        next = to;
    }
    let filled = scenario.size();
    let fill_rate = (filled - before) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    scenario.start_governor();
    if !scenario.try_settle(Duration::from_secs(3600)) {
        bail!("{name}: the projection worker did not catch up within an hour");
    }
    let catch_up = started.elapsed().as_secs_f64();
    scenario.stop_governor();
    let size = scenario.size();

    let state = scenario.fold(None);
    let published = state.releases.values().filter(|r| r.status == ReleaseStatus::Published).count() as u64;
    ensure!(published == args.releases, "{name}: {published} of {} releases published", args.releases);
    ensure!(state.meta.outbox.is_empty(), "{name}: the fold still owes {} appends", state.meta.outbox.len());
    let decisions: u64 = state.releases.values().map(|r| r.decision_seqs.len() as u64).sum();
    let evaluations = args.releases * (3 + evidence.attached() as u64);
    let fill = Fill {
        variant: name,
        custom_gates: gates.count(),
        releases: args.releases,
        events_per_release,
        fill_entries: filled,
        fill_events_per_sec: fill_rate,
        decision_entries: decisions,
        log_entries: size,
        evaluations,
        governor_catch_up_sec: catch_up,
        governor_entries_per_sec: size as f64 / catch_up,
        governor_evaluations_per_sec: evaluations as f64 / catch_up,
    };
    Ok((Variant { name, gates, scenario, size, evaluations }, fill))
}
