//! One flipped byte in any file of a stopped server's data dir is refused at open, detected on
//! read, or harmless; it is never served silently (a shorter log, a changed entry, a missing
//! tenant, a reissued seq, a changed projection). The harness is `testkit::corruption`; the
//! long run is `corruption-trials` (benches) and docs/reliability.md.
//!
//! One test per file class, so that a failure names the class. The seeds are fixed: a failure
//! prints the seed of each silent trial, and
//! `corruption-trials --class CLASS --trial-seed SEED` replays one.

use testkit::corruption::{run_trial, trial_plan, FileClass, Outcome, Pristine, Table};

/// Trials per class: the whole file takes about as long as building the pristine data dir.
const TRIALS: usize = 12;
const SEED: u64 = 0xC0DE_F11B;

fn check(class: FileClass) {
    let pristine = Pristine::build();
    let results: Vec<_> =
        trial_plan(SEED, TRIALS, &[class]).into_iter().map(|(class, seed)| run_trial(&pristine, class, seed)).collect();
    eprintln!("{}", Table::of(&results).markdown());
    for result in &results {
        eprintln!("{result}");
    }
    let silent: Vec<String> =
        results.iter().filter(|r| r.outcome == Outcome::Silent).map(ToString::to_string).collect();
    assert!(
        silent.is_empty(),
        "{} of {TRIALS} {class} flips were served silently:\n{}",
        silent.len(),
        silent.join("\n")
    );
    let panicked: Vec<String> =
        results.iter().filter(|r| r.outcome == Outcome::Panicked).map(ToString::to_string).collect();
    assert!(panicked.is_empty(), "{class} flips panicked:\n{}", panicked.join("\n"));
}

#[test]
fn corruption_of_the_wal_is_never_silent() {
    check(FileClass::Wal);
}

#[test]
fn corruption_of_the_manifest_is_never_silent() {
    check(FileClass::Manifest);
}

#[test]
fn corruption_of_an_sst_is_never_silent() {
    check(FileClass::Sst);
}

#[test]
fn corruption_of_current_or_options_is_never_silent() {
    check(FileClass::Other);
}

#[test]
fn corruption_of_the_projection_wal_is_never_served() {
    check(FileClass::ProjectionWal);
}

#[test]
fn corruption_of_the_projection_manifest_is_never_served() {
    check(FileClass::ProjectionManifest);
}

#[test]
fn corruption_of_a_projection_sst_is_never_served() {
    check(FileClass::ProjectionSst);
}

#[test]
fn corruption_of_projection_current_or_options_is_never_served() {
    check(FileClass::ProjectionOther);
}

#[test]
fn corruption_of_the_anchor_is_never_silent() {
    check(FileClass::Anchor);
}
