//! Restarts of the projection worker: stopped wherever it got to, restarted on its store, or
//! on an older copy of its store while the log went on. Each time it must catch up to exactly
//! the fold of the log from scratch (every entry applied once, none skipped), and re-derive
//! rather than re-append: no decision twice, nothing the log does not owe.

use std::collections::{BTreeMap, BTreeSet};

use projections::worker::CHUNK;
use projections::EventType;
use serde_json::json;
use testkit::gov::*;

/// What must hold once the worker settled after any sequence of restarts.
fn check_caught_up(scenario: &Scenario) {
    let entries = scenario.entries();
    let live = scenario.state();
    let fresh = scenario.fold(None);
    assert!(live == fresh, "the caught-up state differs from a fold from scratch: {:#?}", diff(&live, &fresh));
    assert_eq!(live.meta.position, entries.len() as u64);

    // Every release event is in exactly one timeline, once; nothing else is.
    let mut timelines: BTreeMap<u64, usize> = BTreeMap::new();
    for release in live.releases.values() {
        for item in &release.timeline {
            *timelines.entry(item.seq).or_default() += 1;
        }
    }
    let twice: Vec<_> = timelines.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "entries applied more than once: {twice:?}");
    let release_seqs: BTreeSet<u64> =
        entries.iter().filter(|e| body_of(e).is_some_and(|b| b.get("releaseId").is_some())).map(|e| e.seq).collect();
    let timeline_seqs: BTreeSet<u64> = timelines.keys().copied().collect();
    let skipped: Vec<_> = release_seqs.difference(&timeline_seqs).collect();
    assert!(skipped.is_empty(), "entries never applied: {skipped:?}");
    assert_eq!(timeline_seqs, release_seqs);

    // One decision per release and trigger, each signed once; no anomalies about decisions.
    let mut decisions: BTreeMap<(String, u64), Vec<u64>> = BTreeMap::new();
    for entry in &entries {
        let body = body_of(entry).unwrap();
        if EventType::parse(body["type"].as_str().unwrap()).is_some_and(EventType::is_decision) {
            let key = (body["releaseId"].as_str().unwrap().to_owned(), body["data"]["trigger"].as_u64().unwrap());
            decisions.entry(key).or_default().push(entry.seq);
        }
    }
    let duplicated: Vec<_> = decisions.iter().filter(|(_, seqs)| seqs.len() > 1).collect();
    assert!(duplicated.is_empty(), "decisions appended twice: {duplicated:?}");
    let anomalies: Vec<_> = live.meta.anomalies.iter().filter(|a| a.detail.contains("decision")).collect();
    assert!(anomalies.is_empty(), "{anomalies:?}");
}

/// Entries appended since `size`, as `type eventId` lines.
fn appended_since(scenario: &Scenario, size: u64) -> Vec<String> {
    scenario
        .entries()
        .iter()
        .skip(usize::try_from(size).unwrap())
        .map(|e| body_of(e).map(|b| format!("{} {}", b["type"], b["eventId"])).unwrap_or_default())
        .collect()
}

#[test]
fn governance_restart_mid_stream_applies_every_entry_once() {
    let mut scenario = Scenario::new();
    let mut workload = Workload::new(0xC0FFEE);
    workload.run(&mut scenario, 500, 50);
    scenario.settle();
    scenario.stop_governor();
    // An old copy of the store, for the last act.
    let stale = scenario.copy_store();

    // The log goes on while no worker runs: nothing decides.
    workload.run(&mut scenario, 400, 0);
    // Workers stopped wherever they got to, a few times over, with events in between.
    for round in 0..3 {
        scenario.start_governor();
        std::thread::sleep(std::time::Duration::from_millis(5 * round));
        scenario.stop_governor();
        workload.run(&mut scenario, 50, 0);
    }
    scenario.start_governor();
    workload.run(&mut scenario, 300, 50);
    scenario.settle();
    check_caught_up(&scenario);
    let size = scenario.size();

    // A worker restarted on the old store re-derives the decisions already in the log: it
    // catches up to the same state and appends nothing.
    scenario.stop_governor();
    scenario.use_store_copy(stale.path());
    scenario.start_governor();
    scenario.settle();
    assert_eq!(appended_since(&scenario, size), Vec::<String>::new(), "the catch-up appended entries");
    check_caught_up(&scenario);
}

/// A retry owed by an old prefix of the log but cancelled further on must not be appended by
/// a worker catching up from that prefix, even when the catch-up takes several chunks and the
/// retry's time has long come.
#[test]
fn governance_catch_up_does_not_append_retries_the_log_cancelled() {
    const R: &str = "r1";
    let end = START_NS + 2 * HOUR;
    let mut scenario = Scenario::new();
    scenario.run([
        policy(prod_policy(json!({"requiresApproval": false}))),
        freeze_oneoff("maintenance", &["prod"], &rfc3339(START_NS), &rfc3339(end)),
        intent(R, "prod", &[("billing", "1.4.2")]),
    ]);
    scenario.run(evidence(R, "billing", "1.4.2"));
    scenario.must(evaluate(R));
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Delayed ChangeFreezeActive until 2025-03-01T02:00:00Z risk=10");
    scenario.stop_governor();
    let stale = scenario.copy_store();
    scenario.start_governor();

    // More than a chunk of other events, then the freeze is lifted: the retry is cancelled.
    for _ in 0..CHUNK + 50 {
        scenario.must(pipeline_ready("r2", "search", "2.0.0"));
    }
    scenario.must(lift("maintenance"));
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Approved risk=10");
    scenario.clock.set(end + HOUR);
    scenario.settle();
    let size = scenario.size();
    check_caught_up(&scenario);

    scenario.stop_governor();
    scenario.use_store_copy(stale.path());
    scenario.start_governor();
    scenario.settle();
    assert_eq!(appended_since(&scenario, size), Vec::<String>::new(), "the catch-up appended entries");
    check_caught_up(&scenario);
}

/// A worker far behind its log owes a decision for every release it passes, and its appends
/// land at the end of the log, where the fold reaches them only once it has caught up. While
/// they are in flight their bodies are out of memory (the store keeps them); stopped in the
/// middle and restarted, the worker finds them appended and appends nothing twice.
#[test]
fn governance_far_behind_folds_back_every_decision_it_appended() {
    const RELEASES: usize = 600;
    let mut scenario = Scenario::new();
    scenario.must(policy(prod_policy(json!({"requiresApproval": false}))));
    scenario.settle();
    scenario.stop_governor();
    for i in 0..RELEASES {
        let release = format!("r{i}");
        let version = format!("1.0.{i}");
        scenario.must(intent(&release, "prod", &[("billing", &version)]));
        scenario.run(evidence(&release, "billing", &version));
        scenario.must(evaluate(&release));
    }
    let filled = scenario.size();
    assert!(filled > 2 * CHUNK, "the catch-up must take several chunks");

    // Watch the catch-up until decisions are in flight, then stop the worker there.
    scenario.start_governor();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut seen_in_flight = 0;
    while std::time::Instant::now() < deadline {
        let (in_flight, bodiless) = scenario
            .governor()
            .with_tenant(TENANT, |s| {
                (s.meta.outbox.in_flight(), s.meta.outbox.values().filter(|o| !o.has_body()).count())
            })
            .unwrap_or_default();
        assert_eq!(in_flight, bodiless, "exactly the appended items leave their bodies");
        if in_flight > 0 {
            seen_in_flight = in_flight;
            break;
        }
        std::thread::yield_now();
    }
    assert!(seen_in_flight > 0, "no decision was ever in flight during the catch-up");
    scenario.stop_governor();
    assert!(scenario.size() > filled, "the worker appended its decisions at the end of the log");

    scenario.start_governor();
    scenario.settle();
    check_caught_up(&scenario);
    let live = scenario.state();
    assert!(live.meta.outbox.is_empty(), "still owed: {:?}", scenario.owed());
    for i in 0..RELEASES {
        assert_eq!(scenario.outcome(&format!("r{i}")), "Approved risk=10", "r{i}");
    }
}
