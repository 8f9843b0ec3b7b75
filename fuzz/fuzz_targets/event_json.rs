//! Event bodies (the signed payload): `ParsedEvent::parse` (`ledger/src/event.rs`), the
//! catalogue's validation of each type's `data` and its role checks
//! (`projections/src/catalogue.rs`), the ledger's administrative effects
//! (`ledger/src/registry.rs`), and then the fold: an event the catalogue accepts is applied
//! to a tenant state that already holds a policy and a declared release, as the worker and
//! the auditor would (`TenantState::apply`, which evaluates the gates on triggers). None of it
//! may panic on any body.
#![no_main]

use std::sync::OnceLock;

use ledger::{Entry, EntryBody, Envelope, EventRules as _, ParsedEvent, Signer, TrustRoots};
use libfuzzer_sys::fuzz_target;
use projections::{Catalogue, GovEvent, TenantState};
use release_ledger_fuzz::{admin_key, ledger_key, Input};

const TENANT: &str = "tenant-1";
const START_NS: u64 = 1_700_000_000_000_000_000;

fn entry(seq: u64, recorded_at: u64, payload: Vec<u8>) -> Entry {
    let envelope = Envelope::sign(payload, &admin_key());
    Entry {
        seq,
        recorded_at,
        prev_hash: [0; 32],
        payload_hash: [0; 32],
        entry_hash: [0; 32],
        body: EntryBody::Present(envelope),
    }
}

fn body(event_type: &str, event_id: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "tenant": TENANT, "stream": "release/release-1", "type": event_type, "eventId": event_id,
        "occurredAt": "2025-05-23T09:32:00Z", "releaseId": "release-1",
        "actor": { "agentId": "ci" }, "data": data,
    }))
    .expect("body")
}

/// A tenant with a policy for `prod` and `release-1` declared for it.
fn base_state() -> &'static TenantState {
    static STATE: OnceLock<TenantState> = OnceLock::new();
    STATE.get_or_init(|| {
        let mut state = TenantState::new(TENANT);
        let policy = serde_json::json!({"policy": {"version": 1, "environments": {"prod": {
            "roles": ["QA"], "requiredSignals": ["TestsPassed", "SecurityGateStatus"], "minTestCoverage": 80.0,
            "riskThreshold": 50, "highRiskRoles": ["ReleaseManager"]}}}});
        let intent = serde_json::json!({"environment": "prod", "modules": [{"name": "api", "version": "1.2.3"}],
            "projectId": "vetclinic", "triggeredBy": "ci"});
        state.apply(&entry(0, START_NS, body("PolicyUpdated", "policy-1", policy)));
        state.apply(&entry(1, START_NS + 1, body("ReleaseIntentDeclared", "intent-1", intent)));
        state
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let delay = input.u64() % (400 * 86_400 * 1_000_000_000);
    let payload = input.rest();
    let Ok(event) = ParsedEvent::parse(payload) else { return };
    let _ = event.class();
    let roots = TrustRoots::new(admin_key().verifying_key(), ledger_key().verifying_key());
    let _ = ledger::registry::admin_effect(&roots, &event, 7);
    let catalogue = Catalogue;
    let valid = catalogue.validate(&event);
    // Everything the catalogue accepts, the fold can read. The catalogue refuses more than the
    // parser only by its append-time guard (a policy naming no environment and no default),
    // which a stored log may still hold and the fold reads as it always did.
    match (&valid, GovEvent::parse(&event)) {
        (Ok(()), parsed) => assert!(parsed.is_ok(), "accepted but unreadable by the fold"),
        (Err(refused), Ok(_)) => assert_eq!(refused.field, "data.policy", "{refused}"),
        (Err(_), Err(_)) => {}
    }
    let facts = catalogue.facts(&event);
    for signer in [Signer::Admin, Signer::Ledger, Signer::Agent] {
        for roles in [&[][..], &["KeyAdmin".to_owned(), "QA".to_owned(), "StudioAdmin".to_owned()][..]] {
            let _ = catalogue.authorize(&event, &facts, signer, roles, None);
        }
    }
    // The fold sees only what the store accepted, so only bodies the catalogue accepts.
    if valid.is_err() {
        return;
    }
    let mut state = base_state().clone();
    let position = state.meta.position;
    state.apply(&entry(position, START_NS + 2 + delay, payload.to_vec()));
});
