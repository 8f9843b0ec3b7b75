//! Replicated commit groups (`Ledger::apply_record`): stores that share the keys and apply the
//! same records in the same order hold the same log byte for byte, refuse the same requests
//! with the same errors, and a record from a leader that breaks the log's rules stores nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ledger::{
    AppendEvent, CommitPoint, Config, Envelope, ExpectedVersion, GroupRecord, KeyPair, Ledger, RecordedEvent,
};
use testkit::{all_entries, expecting, register_key_body, Agent};

const TENANT: &str = "vetclinic-001";

/// A store in `dir` opened with the keys of `keys_from` (a node of the same cluster).
fn node(dir: &std::path::Path, keys_from: Option<&std::path::Path>) -> Ledger {
    if let Some(from) = keys_from {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        for name in ["ledger.pem", "ledger.pub", "admin.pem"] {
            std::fs::copy(from.join("keys").join(name), dir.join("keys").join(name)).unwrap();
        }
    }
    Ledger::open(dir, Config::default()).unwrap()
}

fn record(now_ns: u64, requests: &[&[AppendEvent]]) -> GroupRecord {
    GroupRecord {
        now_ns,
        requests: requests.iter().map(|events| events.iter().map(RecordedEvent::new).collect()).collect(),
    }
}

/// Everything a reader can see of a tenant's log: entries (all their bytes), head, checkpoint.
fn view(ledger: &Ledger) -> (Vec<ledger::Entry>, ledger::TenantHead, String) {
    (all_entries(ledger, TENANT), ledger.head(TENANT).unwrap(), ledger.checkpoint(TENANT).unwrap().note)
}

/// The qa-runner agent with a new key, and its registration signed by the admin key of the
/// store in `dir`.
fn qa_runner(dir: &std::path::Path) -> (Agent, AppendEvent) {
    let admin = KeyPair::load(&dir.join("keys/admin.pem")).unwrap();
    let qa = Agent::from_key(TENANT, "qa-runner", KeyPair::generate());
    let register = Envelope::sign(register_key_body(TENANT, "qa-runner", &qa.key, &["QA"], &["TestsPassed"]), &admin);
    (qa, AppendEvent::new(register))
}

fn outcome(results: &ledger::RecordResults) -> Vec<Result<Vec<ledger::Receipt>, String>> {
    results.iter().map(|r| r.clone().map_err(|e| format!("{:?}: {e}", e.kind()))).collect()
}

#[test]
fn nodes_applying_the_same_records_hold_the_same_log_and_refuse_the_same_requests() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(a_dir.path(), None);
    let b = node(b_dir.path(), Some(a_dir.path()));
    let (qa, register) = qa_runner(a_dir.path());
    let first = qa.event("release/r1", 10);
    let mut forged = qa.event("release/r1", 10);
    forged.envelope.signatures[0].sig[5] ^= 1;
    let stranger = Agent::from_key(TENANT, "stranger", KeyPair::generate()).event("release/r1", 10);
    let records = [
        // The admin registers the agent's key.
        record(1_700_000_000_000_000_000, &[&[register]]),
        record(1_700_000_001_000_000_000, &[std::slice::from_ref(&first), &[qa.event("release/r2", 10)]]),
        // A duplicate (the original receipt), a forged signature, an unknown key, a stale
        // expected version, and a good request between them.
        record(
            1_700_000_002_000_000_000,
            &[
                std::slice::from_ref(&first),
                &[forged.clone()],
                &[stranger],
                &[expecting(qa.event("release/r1", 10), ExpectedVersion::Exact(7))],
                &[qa.event("release/r3", 10), qa.event("release/r3", 10)],
            ],
        ),
        // A clock that went backwards on the leader: recordedAt still never decreases.
        record(1_600_000_000_000_000_000, &[&[qa.event("release/r4", 10)]]),
    ];
    for record in &records {
        let from_a = a.apply_record(record.clone(), None).unwrap();
        let from_b = b.apply_record(record.clone(), None).unwrap();
        assert_eq!(outcome(&from_a), outcome(&from_b), "the nodes answered a record differently");
        assert_eq!(view(&a), view(&b), "the nodes' logs differ after a record");
    }
    let answers = outcome(&a.apply_record(records[2].clone(), None).unwrap());
    assert!(answers[0].as_ref().unwrap()[0].duplicate, "{answers:?}");
    assert!(answers[1].as_ref().unwrap_err().starts_with("Unauthenticated"), "{answers:?}");
    let (entries, head, _) = view(&a);
    assert_eq!(head.size, 6, "registration, two events, one request of two events, one more");
    assert!(entries.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at), "recordedAt decreased");
    assert_eq!(entries[5].recorded_at, entries[4].recorded_at, "a leader's clock going back is not followed");
    // The same log verifies on both, and stays equal across a restart.
    a.verify_tenant(TENANT).unwrap();
    drop(b);
    let b = Ledger::open(b_dir.path(), Config::default()).unwrap();
    assert_eq!(view(&a), view(&b));
}

#[test]
fn a_record_that_breaks_the_logs_rules_stores_nothing_and_normal_appends_interleave_in_queue_order() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = node(dir.path(), None);
    let (qa, register) = qa_runner(dir.path());
    let _ = ledger.append(register).unwrap();
    let _ = ledger.append(qa.event("release/r1", 10)).unwrap();
    let before = view(&ledger);
    // A compromised leader: bytes that are no envelope, an event signed by nobody the registry
    // knows, a decision signed by an agent. Each refused; the valid event beside a bad one in
    // the same request is not stored either.
    let mut decision =
        serde_json::from_slice::<serde_json::Value>(&qa.event("release/r1", 10).envelope.payload).unwrap();
    decision["type"] = "ReleaseApproved".into();
    let decision = qa.sign(serde_json::to_vec(&decision).unwrap());
    let garbage = RecordedEvent { envelope: b"not an envelope".to_vec(), expected_version: None };
    let bad = GroupRecord {
        now_ns: 1_800_000_000_000_000_000,
        requests: vec![
            vec![RecordedEvent::new(&qa.event("release/r1", 10)), garbage],
            vec![RecordedEvent::new(&Agent::from_key(TENANT, "x", KeyPair::generate()).event("s", 1))],
            vec![RecordedEvent::new(&decision)],
        ],
    };
    let answers = ledger.apply_record(bad, None).unwrap();
    assert!(answers.iter().all(Result::is_err), "{answers:?}");
    assert_eq!(view(&ledger), before, "a refused record stored something");
    // Appends and records go through one writer, in the order they are queued.
    let mut seqs = Vec::new();
    for i in 0..4u64 {
        let event = qa.event("release/r9", 10);
        if i % 2 == 0 {
            seqs.push(ledger.append(event).unwrap().seq);
        } else {
            let answer = ledger.apply_record(record(1_800_000_000_000_000_000 + i, &[&[event]]), None).unwrap();
            seqs.push(answer[0].as_ref().unwrap()[0].seq);
        }
    }
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    ledger.verify_tenant(TENANT).unwrap();
}

#[test]
fn the_position_of_the_last_applied_record_is_stored_with_it_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let failing = fail.clone();
    let config = || Config {
        commit_fault: Some(Arc::new({
            let failing = failing.clone();
            move |_, point| point == CommitPoint::Write && failing.load(Ordering::SeqCst)
        })),
        ..Config::default()
    };
    let ledger = Ledger::open(dir.path(), config()).unwrap();
    assert_eq!(ledger.applied_position().unwrap(), None);
    let (qa, register) = qa_runner(dir.path());
    ledger.apply_record(record(1_700_000_000_000_000_000, &[&[register]]), Some(b"term 1 index 1".to_vec())).unwrap();
    assert_eq!(ledger.applied_position().unwrap().as_deref(), Some(&b"term 1 index 1"[..]));
    // A record whose every request is refused stores nothing but its position.
    let stranger = Agent::from_key(TENANT, "stranger", KeyPair::generate()).event("s", 1);
    let before = view(&ledger);
    let answers = ledger.apply_record(record(1_700_000_001_000_000_000, &[&[stranger]]), Some(b"2".to_vec())).unwrap();
    assert!(answers[0].is_err());
    assert_eq!(view(&ledger), before);
    assert_eq!(ledger.applied_position().unwrap().as_deref(), Some(&b"2"[..]));
    // A commit that fails applies neither the record nor its position.
    fail.store(true, Ordering::SeqCst);
    let error = ledger.apply_record(record(1_700_000_002_000_000_000, &[&[qa.event("r", 1)]]), Some(b"3".to_vec()));
    assert!(matches!(error, Err(ledger::AppendError::Poisoned(_))), "{error:?}");
    drop(ledger);
    fail.store(false, Ordering::SeqCst);
    let ledger = Ledger::open(dir.path(), config()).unwrap();
    assert_eq!(ledger.applied_position().unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(view(&ledger), before);
    // The read-only fsck (`ledger-audit verify DATA_DIR`) knows the row: a cluster node's data
    // dir verifies like any other.
    drop(ledger);
    let store = ledger::StoreView::open(dir.path()).unwrap();
    let (tenants, problems) = store.tenants();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(tenants.len(), 1);
}

/// The writer stores one stream-head row per stream a commit group appended to, at the last
/// version the group gave it: requests of several events on one stream, interleaved streams,
/// and a refused request (whose versions must not count) in one group.
#[test]
fn a_group_leaves_each_stream_head_at_its_last_version() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = node(dir.path(), None);
    let (qa, register) = qa_runner(dir.path());
    ledger.apply_record(record(1_700_000_000_000_000_000, &[&[register]]), None).unwrap();
    let results = ledger
        .apply_record(
            record(
                1_700_000_001_000_000_000,
                &[
                    &[qa.event("release/a", 1), qa.event("release/b", 1), qa.event("release/a", 1)],
                    // Refused whole: its first event would make a's version 3.
                    &[qa.event("release/a", 1), expecting(qa.event("release/c", 1), ExpectedVersion::Exact(9))],
                    &[qa.event("release/b", 1), qa.event("release/b", 1)],
                ],
            ),
            None,
        )
        .unwrap();
    let stored: Vec<usize> = results.iter().map(|r| r.as_ref().map_or(0, Vec::len)).collect();
    assert_eq!(stored, [3, 0, 2]);
    drop(ledger);
    let ledger = node(dir.path(), None);
    for (stream, version) in [("release/a", 2), ("release/b", 3), ("release/c", 0)] {
        assert_eq!(ledger.stream_version(TENANT, stream).unwrap(), version, "{stream}");
    }
    // The next version follows on from the stored head.
    let next = ledger.append(expecting(qa.event("release/a", 1), ExpectedVersion::Exact(2))).unwrap();
    assert_eq!(next.seq, 6, "the registration, then five entries");
    assert_eq!(ledger.stream_version(TENANT, "release/a").unwrap(), 3);
    drop(ledger);
    // fsck compares every head row with the stream's last `streams` row.
    let store = ledger::StoreView::open(dir.path()).unwrap();
    let (checks, problems) = store.check(&ledger::FsckOptions::default());
    assert!(problems.is_empty(), "{problems:?}");
    let check = checks.iter().find(|c| c.tenant == TENANT).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    // The registration's stream, a and b: c was never written.
    assert!(check.rows.contains(&("stream_heads", 3)), "{:?}", check.rows);
}
