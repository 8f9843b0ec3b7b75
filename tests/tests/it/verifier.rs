//! The offline verifier's authorisation rules, on logs the ledger would never have accepted:
//! every entry correctly hashed, chained and signed, one of them signed by a key that may not
//! sign it. The store refuses such appends (tests/it/append.rs), so these logs are built here
//! directly — what a tampering operator holding a registered key's private half could write.
//! Each case names the seq and the check that fails; the same log without the bad entry
//! verifies, so the failure is that entry's alone.

use std::sync::Arc;

use ledger::hash::{entry_hash, payload_hash, Hash32, GENESIS_PREV_HASH};
use ledger::{Check, Entry, EntryBody, Envelope, KeyPair, TrustRoots, Verifier};
use testkit::{body, register_key_body};

const TENANT: &str = "acme";

/// A log written entry by entry, hashed and chained as the store would.
struct Log {
    entries: Vec<Entry>,
    prev: Hash32,
}

impl Log {
    fn new() -> Self {
        Self { entries: Vec::new(), prev: GENESIS_PREV_HASH }
    }

    fn push(&mut self, body: Vec<u8>, key: &KeyPair) -> u64 {
        let envelope = Envelope::sign(body, key);
        let seq = self.entries.len() as u64;
        let hash_of_payload = payload_hash(&envelope.to_bytes());
        let hash = entry_hash(seq, seq + 1, &self.prev, &hash_of_payload);
        self.entries.push(Entry {
            seq,
            recorded_at: seq + 1,
            prev_hash: self.prev,
            payload_hash: hash_of_payload,
            entry_hash: hash,
            body: EntryBody::Present(envelope),
        });
        self.prev = hash;
        seq
    }
}

struct Keys {
    admin: KeyPair,
    ledger: KeyPair,
    qa: KeyPair,
}

impl Keys {
    fn new() -> Self {
        Self {
            admin: KeyPair::from_seed(&[1; 32]),
            ledger: KeyPair::from_seed(&[2; 32]),
            qa: KeyPair::from_seed(&[3; 32]),
        }
    }

    fn roots(&self) -> TrustRoots {
        TrustRoots::new(self.admin.verifying_key(), self.ledger.verifying_key())
    }
}

/// The first failure of `log` under the catalogue's rules, or `None` when it verifies.
fn first_failure(keys: &Keys, log: &Log) -> Option<ledger::VerifyFailure> {
    let mut verifier = Verifier::new(TENANT, keys.roots(), "release-ledger")
        .with_rules(Some(Arc::new(projections::Catalogue) as Arc<dyn ledger::EventRules>));
    for entry in &log.entries {
        if let Err(failure) = verifier.push(entry.clone()) {
            return Some(failure);
        }
    }
    verifier.finish(None).err()
}

fn tests_passed(agent: &str, event_id: &str) -> Vec<u8> {
    let data = serde_json::json!({"module": "billing", "version": "1.4.0", "suite": "unit", "passed": 1, "failed": 0});
    body(TENANT, "release/r1", "TestsPassed", event_id, agent, data)
}

/// Registers the QA agent's key (roles and types as given), then one event it may sign.
fn base(keys: &Keys, roles: &[&str]) -> Log {
    let mut log = Log::new();
    log.push(register_key_body(TENANT, "qa", &keys.qa, roles, &["TestsPassed", "ApprovalGranted"]), &keys.admin);
    log.push(tests_passed("qa", "ok-1"), &keys.qa);
    log
}

#[test]
fn the_base_log_verifies() {
    let keys = Keys::new();
    assert!(first_failure(&keys, &base(&keys, &[])).is_none());
}

#[test]
fn an_event_signed_after_its_key_was_revoked_fails_authorization_at_its_seq() {
    let keys = Keys::new();
    let mut log = base(&keys, &[]);
    let revoke = serde_json::json!({"keyId": keys.qa.key_id().to_hex(), "reason": "rotated"});
    let revoked_at = log.push(body(TENANT, "keys", "AgentKeyRevoked", "revoke-qa", "admin", revoke), &keys.admin);
    assert!(first_failure(&keys, &log).is_none(), "the revocation itself is valid");
    let bad = log.push(tests_passed("qa", "after-revocation"), &keys.qa);
    let failure = first_failure(&keys, &log).expect("a revoked key's event verified");
    assert_eq!((failure.seq, failure.check), (Some(bad), Check::Authorization), "{failure}");
    assert!(failure.detail.contains(&format!("revoked at seq {revoked_at}")), "{failure}");
}

#[test]
fn an_event_naming_another_agent_fails_authorization_at_its_seq() {
    let keys = Keys::new();
    let mut log = base(&keys, &[]);
    let bad = log.push(tests_passed("someone-else", "impersonated"), &keys.qa);
    let failure = first_failure(&keys, &log).expect("an impersonation verified");
    assert_eq!((failure.seq, failure.check), (Some(bad), Check::Authorization), "{failure}");
    assert!(failure.detail.contains("someone-else"), "{failure}");
}

#[test]
fn an_approval_in_a_role_the_key_does_not_hold_fails_authorization_at_its_seq() {
    let approval = |event_id: &str| {
        let data = serde_json::json!({"role": "QA", "comment": "fine", "method": "CLI"});
        body(TENANT, "release/r1", "ApprovalGranted", event_id, "qa", data)
    };
    // With the role, the approval verifies ...
    let keys = Keys::new();
    let mut log = base(&keys, &["QA"]);
    log.push(approval("with-role"), &keys.qa);
    assert!(first_failure(&keys, &log).is_none());
    // ... without it, it fails there.
    let mut log = base(&keys, &[]);
    let bad = log.push(approval("without-role"), &keys.qa);
    let failure = first_failure(&keys, &log).expect("an approval without its role verified");
    assert_eq!((failure.seq, failure.check), (Some(bad), Check::Authorization), "{failure}");
    assert!(failure.detail.contains("QA"), "{failure}");
}

#[test]
fn a_decision_signed_by_the_admin_key_fails_authorization_at_its_seq() {
    let keys = Keys::new();
    let mut log = base(&keys, &[]);
    let decision = serde_json::json!({"status": "Approved"});
    let bad = log.push(body(TENANT, "release/r1", "ReleaseApproved", "forged", "admin", decision), &keys.admin);
    let failure = first_failure(&keys, &log).expect("a decision by the admin key verified");
    assert_eq!((failure.seq, failure.check), (Some(bad), Check::Authorization), "{failure}");
}
