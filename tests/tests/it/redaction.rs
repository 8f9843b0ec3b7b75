//! `EntryRedacted`: the bytes go, the hash stays, and everything still verifies.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::{AppendEvent, EntryBody, Envelope, ErrorKind};
use testkit::erasure::files_holding;
use testkit::{append_ok, body, must_append, temp_ledger};

const TENANT: &str = "acme";

fn redact(t: &testkit::TestLedger, seq: u64, event_id: &str) -> Result<ledger::Receipt, ledger::AppendError> {
    let payload = body(
        TENANT,
        "admin",
        "EntryRedacted",
        event_id,
        "admin",
        serde_json::json!({"seq": seq, "reason": "erasure request"}),
    );
    t.ledger.append(AppendEvent::new(Envelope::sign(payload, &t.admin)))
}

#[test]
fn a_redacted_entry_keeps_its_hash_and_proofs() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &["KeyAdmin"], &[]);
    let events: Vec<_> = (0..5).map(|_| qa.event("s", 32)).collect();
    for event in &events {
        append_ok(&t.ledger, event.clone());
    }
    let before = t.ledger.entry(TENANT, 2).unwrap();
    let receipt = redact(&t, 2, "redact-2").unwrap();
    let after = t.ledger.entry(TENANT, 2).unwrap();
    assert_eq!(after.body, EntryBody::Redacted { by_seq: receipt.seq });
    assert_eq!((after.entry_hash, after.payload_hash), (before.entry_hash, before.payload_hash));
    let size = t.ledger.head(TENANT).unwrap().size;
    let root = t.ledger.root_at(TENANT, size).unwrap();
    let proof = t.ledger.inclusion_proof(TENANT, 2, size).unwrap();
    merkle::verify_inclusion::<LogHasher>(&LogHasher::hash_leaf(&after.entry_hash), 2, size, &proof.path, &root)
        .unwrap();
    let report = t.ledger.verify_tenant(TENANT).unwrap();
    assert_eq!(report.redacted, vec![2]);
    let t = t.reopen();
    assert_eq!(t.ledger.verify_tenant(TENANT).unwrap().redacted, vec![2]);
    // Idempotency survives redaction: a retry of the original event still gets its receipt.
    let retry = must_append(&t.ledger, events[1].clone());
    assert!(retry.duplicate);
    assert_eq!((retry.seq, retry.entry_hash), (2, before.entry_hash));
}

#[test]
fn redaction_rules() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    append_ok(&t.ledger, qa.event("s", 8));
    // The key registration (seq 0) is administrative: never redactable.
    let error = redact(&t, 0, "r-admin").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::FailedPrecondition, "{error}");
    // A seq that does not exist yet.
    let error = redact(&t, 50, "r-future").unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
    // A plain agent may not redact.
    let payload = body(TENANT, "admin", "EntryRedacted", "r-agent", "qa", serde_json::json!({"seq": 1}));
    assert_eq!(t.ledger.append(qa.sign(payload)).unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Twice.
    let _ = redact(&t, 1, "r-1").unwrap();
    assert_eq!(redact(&t, 1, "r-1-again").unwrap_err().kind(), ErrorKind::FailedPrecondition);
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 3);
}

/// The files under `dir` holding `marker` once they stop changing for the better: polls until
/// none does or `timeout` passes (the erasures run on their own threads), then returns them.
fn holding_after(dir: &Path, marker: &str, timeout: Duration) -> Vec<PathBuf> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = files_holding(dir, marker.as_bytes());
        if found.is_empty() || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Erasure at the byte level (docs/format.md, "Erasure"): a payload flushed to an SST and one
/// still only in the WAL and memtable are both gone from every file of the data dir once their
/// redactions commit, as RocksDB's own SST reader sees the files, and stay gone after a reopen.
/// Checked to fail without the eraser (both markers stay: the first in an SST, the second in
/// the WAL).
#[test]
fn a_redacted_payload_leaves_every_file_of_the_store() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let (flushed, recent) = ("Erika-Mustermann-flushed-5c1e9a0d", "Max-Mustermann-in-the-wal-77d0b3e4");
    let event = |id: &str, notes: &str| {
        let data = serde_json::json!({"module": "billing", "version": "1.0.0", "notes": notes});
        qa.sign(body(TENANT, "s", "TestsPassed", id, "qa", data))
    };
    let flushed_seq = must_append(&t.ledger, event("flushed", flushed)).seq;
    for _ in 0..3 {
        append_ok(&t.ledger, qa.event("s", 64));
    }
    // Reopening replays the WAL into an SST: the first payload is now in a (compressed) SST.
    let t = t.reopen();
    let recent_seq = must_append(&t.ledger, event("recent", recent)).seq;
    let dir = t.dir.path().to_path_buf();
    let before = files_holding(&dir, flushed.as_bytes());
    assert!(before.iter().any(|f| f.extension().is_some_and(|e| e == "sst")), "not in an SST: {before:?}");
    let before = files_holding(&dir, recent.as_bytes());
    assert!(before.iter().any(|f| f.extension().is_some_and(|e| e == "log")), "not in the WAL: {before:?}");

    let _ = redact(&t, flushed_seq, "erase-1").unwrap();
    let _ = redact(&t, recent_seq, "erase-2").unwrap();
    assert_eq!(t.ledger.wait_for_erasures(Duration::from_secs(60)), 0, "erasures still pending");
    assert_eq!(t.ledger.pending_erasures().unwrap(), 0);
    for marker in [flushed, recent] {
        assert_eq!(files_holding(&dir, marker.as_bytes()), Vec::<PathBuf>::new(), "{marker} is still on disk");
    }
    // The log is whole, and a reopen brings nothing back.
    assert_eq!(t.ledger.verify_tenant(TENANT).unwrap().redacted, vec![flushed_seq, recent_seq]);
    let t = t.reopen();
    assert_eq!(t.ledger.pending_erasures().unwrap(), 0);
    for marker in [flushed, recent] {
        assert_eq!(files_holding(&dir, marker.as_bytes()), Vec::<PathBuf>::new(), "{marker} after reopen");
    }
    assert_eq!(t.ledger.verify_tenant(TENANT).unwrap().redacted, vec![flushed_seq, recent_seq]);
}

/// The projection store's rows derived from a redacted entry (here an approval's comment in
/// the release's timeline) leave its files too: the worker rebuilds the tenant and erases the
/// replaced rows. Checked to fail without `ProjectionStore::erase` (the comment stays in the
/// projection store's WAL or SSTs).
#[test]
fn a_redacted_approval_leaves_the_projection_store_files() {
    use testkit::gov::*;
    let mut s = Scenario::new();
    s.run(evidence("r1", "billing", "1.4.0"));
    s.run([intent("r1", "prod", &[("billing", "1.4.0")])]);
    let marker = "Erika-Mustermann-approves-9b2f61c8";
    let approval = s.must(approve("r1", "QA").with("comment", marker));
    s.settle();
    let store = s.store_dir().to_path_buf();
    assert!(!files_holding(&store, marker.as_bytes()).is_empty(), "the comment never reached the projection store");

    s.must(raw("EntryRedacted", None, serde_json::json!({"seq": approval, "reason": "erasure request"})).by(ADMIN));
    s.settle();
    assert_eq!(holding_after(&store, marker, Duration::from_secs(60)), Vec::<PathBuf>::new());
    assert_eq!(s.ledger.wait_for_erasures(Duration::from_secs(60)), 0);
    let data = s.ledger.data_dir().to_path_buf();
    assert_eq!(files_holding(&data, marker.as_bytes()), Vec::<PathBuf>::new(), "still in the ledger's files");
    // The rebuilt state is the fold of the redacted log.
    s.settle();
    let (live, mut fresh) = (s.state(), s.fold(None));
    // A fold that meets a redaction asks for a rebuild; the worker's state is that rebuild.
    assert!(fresh.meta.needs_rebuild);
    fresh.meta.needs_rebuild = false;
    assert!(live == fresh, "{:#?}", diff(&live, &fresh));
}
