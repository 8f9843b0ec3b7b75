//! Raw-file corruption trials, as a measurement (docs/reliability.md, "Corruption trials"):
//! builds the pristine data dir of `testkit::corruption` once, runs trials spread evenly over
//! the file classes (one byte of one file XORed with a non-zero mask, then the copy opened,
//! read, verified and appended to as a server would), and prints the table of outcomes per
//! class. The `it` test binary runs the same harness with a few trials per class.
//!
//! ```text
//! corruption-trials --trials 1000 --seed 1 [--json] [--class wal ...]
//! corruption-trials --class wal --trial-seed 0x…      (replays one trial)
//! ```
//!
//! Exit status: 0 when no trial was served silently, 1 when one was, 2 when it could not run.

use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Parser;
use serde_json::json;
use testkit::corruption::{run_trial, trial_plan, FileClass, Outcome, Pristine, Table};

#[derive(Debug, Parser)]
#[command(about = "Flip one byte of a stopped server's data dir, many times, and classify what the server does")]
struct Args {
    /// Trials in all, spread evenly over the classes (rounded up to a multiple of them).
    #[arg(long, default_value_t = 800)]
    trials: usize,
    /// Seed of the trial seeds (decimal or 0x hex).
    #[arg(long, default_value = "1", value_parser = parse_seed)]
    seed: u64,
    /// Only these classes (repeatable): wal, manifest, sst, current-options, projection-wal,
    /// projection-manifest, projection-sst, projection-current-options.
    #[arg(long)]
    class: Vec<String>,
    /// Replay the one trial of this seed (per class given).
    #[arg(long, value_parser = parse_seed)]
    trial_seed: Option<u64>,
    /// Print every trial and the table as JSON (the table goes to stderr too).
    #[arg(long)]
    json: bool,
}

fn parse_seed(text: &str) -> Result<u64, String> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|e| format!("{text:?}: {e}"))
}

fn main() {
    match run() {
        Ok(silent) => std::process::exit(i32::from(silent)),
        Err(e) => {
            eprintln!("corruption-trials: {e:#}");
            std::process::exit(2);
        }
    }
}

/// Returns whether any trial was served silently.
fn run() -> anyhow::Result<bool> {
    let args = Args::parse();
    let classes: Vec<FileClass> = if args.class.is_empty() {
        FileClass::ALL.to_vec()
    } else {
        args.class
            .iter()
            .map(|name| FileClass::parse(name).with_context(|| format!("unknown file class {name:?}")))
            .collect::<anyhow::Result<_>>()?
    };
    if args.trials == 0 && args.trial_seed.is_none() {
        bail!("--trials must be at least 1");
    }
    let started = Instant::now();
    let pristine = Pristine::build();
    let build_s = started.elapsed().as_secs_f64();
    eprintln!("pristine data dir built in {build_s:.1} s; acknowledged entries per tenant: {:?}", pristine.sizes());
    for class in &classes {
        let files: Vec<String> =
            pristine.files(*class).iter().map(|(path, len)| format!("{} ({len} B)", path.display())).collect();
        eprintln!("  {class}: {}", files.join(", "));
    }
    let per_class = args.trials.div_ceil(classes.len());
    let plan = match args.trial_seed {
        Some(seed) => classes.iter().map(|class| (*class, seed)).collect(),
        None => trial_plan(args.seed, per_class, &classes),
    };
    // Trials catch panics and count them; the default hook would print each one.
    let replaying = args.trial_seed.is_some();
    if !replaying {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let trials_started = Instant::now();
    let mut results = Vec::with_capacity(plan.len());
    for (i, (class, seed)) in plan.iter().enumerate() {
        let result = run_trial(&pristine, *class, *seed);
        if replaying || matches!(result.outcome, Outcome::Silent | Outcome::Panicked) {
            eprintln!("{result}");
        }
        if replaying {
            for finding in &result.findings {
                eprintln!("    {finding}");
            }
        }
        results.push(result);
        if (i + 1) % 100 == 0 {
            eprintln!("{} trials, {:.0} s", i + 1, trials_started.elapsed().as_secs_f64());
        }
    }
    let trials_s = trials_started.elapsed().as_secs_f64();
    let table = Table::of(&results);
    eprintln!("{} trials in {trials_s:.1} s\n{}", results.len(), table.markdown());
    if args.json {
        let report = json!({
            "seed": args.seed, "trial_seed": args.trial_seed, "trials": results.len(), "per_class": per_class,
            "build_seconds": build_s, "trial_seconds": trials_s, "table": table.to_json(),
            "results": results.iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table.markdown());
    }
    Ok(results.iter().any(|r| r.outcome == Outcome::Silent))
}
