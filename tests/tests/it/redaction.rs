//! `EntryRedacted`: the bytes go, the hash stays, and everything still verifies.

use ledger::merkle::{self, Blake3Hasher, TreeHasher};
use ledger::{AppendEvent, EntryBody, Envelope, ErrorKind};
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
    merkle::verify_inclusion::<Blake3Hasher>(&Blake3Hasher::hash_leaf(&after.entry_hash), 2, size, &proof.path, &root)
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
