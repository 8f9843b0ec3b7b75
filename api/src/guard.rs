//! Append guards that need the governance state: typos the log would otherwise record
//! faithfully. Lifting a freeze that is not active, and publishing a policy under the version
//! number of the one in force with other content (or under a lower one), are refused with
//! `FAILED_PRECONDITION` and the reason; publishing the policy in force again is an idempotent
//! success (the receipt of its entry, `duplicate`). Every client gets them, as they live in
//! the server.
//!
//! The guards read the governance projections, which fold the log asynchronously: a guard
//! first waits (up to [`CATCH_UP`]) for the tenant's projection to reach the log's head. If it
//! does not (a worker far behind or stopped), the event is appended unguarded: these are typo
//! guards, and an administrator must still be able to lift a freeze when the projections are
//! behind.
//!
//! A guard answers only an event whose signature verifies with a key authorised to sign it
//! ([`authentic`]): anyone else's event goes on to the append path, which refuses it for its
//! signature, so the guards tell no unauthenticated caller which freezes are active or which
//! policy version is in force.

use std::time::{Duration, Instant};

use ledger::event::ParsedEvent;
use ledger::{AppendEvent, Ledger};
use projections::catalogue::{FreezeLiftedData, GovData, GovEvent};
use projections::state::PolicyRecord;
use projections::Governor;
use tonic::Status;

/// How long a guard waits for the projections to reach the log's head.
const CATCH_UP: Duration = Duration::from_secs(5);

/// Whether a guard may concern one of `events` (one names a guarded event type): only those
/// requests can wait for the projections in [`check`].
pub(crate) fn concerns(events: &[AppendEvent]) -> bool {
    events.iter().any(|event| names_guarded_type(&event.envelope.payload))
}

/// A substring test, so the other events are spared a parse.
fn names_guarded_type(payload: &[u8]) -> bool {
    std::str::from_utf8(payload).is_ok_and(|text| text.contains("ChangeFreezeLifted") || text.contains("PolicyUpdated"))
}

/// Checks `events` against the governance state: `Err` refuses the request (nothing is
/// stored), `Ok(Some(receipt))` answers a single event already in force without appending,
/// `Ok(None)` lets the append go on. Events that do not parse are left to the append path,
/// which reports them precisely.
pub(crate) fn check(
    ledger: &Ledger,
    governor: &Governor,
    events: &[AppendEvent],
) -> Result<Option<ledger::Receipt>, Status> {
    let mut in_force = None;
    for event in events {
        // Every append passes here: a substring test spares the other events a second parse.
        let payload = &event.envelope.payload;
        if !names_guarded_type(payload) {
            continue;
        }
        let Ok(parsed) = ParsedEvent::parse(payload) else { continue };
        if !matches!(parsed.header.event_type.as_str(), "ChangeFreezeLifted" | "PolicyUpdated") {
            continue;
        }
        let Ok(gov) = GovEvent::parse(&parsed) else { continue };
        if !authentic(ledger, event, &parsed) {
            continue;
        }
        let tenant = parsed.header.tenant.as_str();
        let Some(state) = caught_up(ledger, governor, tenant) else { continue };
        match &gov.data {
            GovData::FreezeLifted(FreezeLiftedData { freeze_id, .. }) if !state.freezes.contains(freeze_id) => {
                let active = &state.freezes;
                return Err(Status::failed_precondition(format!(
                    "no active freeze {freeze_id:?} in tenant {tenant} (active freezes: {}); nothing was stored",
                    if active.is_empty() { "none".to_owned() } else { active.join(", ") }
                )));
            }
            GovData::Policy(d) => {
                let Some(current) = &state.policy else { continue };
                let (new, old) = (d.policy.version, current.policy.version);
                if new == old && d.policy == current.policy {
                    in_force = Some(current.seq);
                } else if new == old {
                    return Err(Status::failed_precondition(format!(
                        "policy version {new} is already in force in tenant {tenant} (seq {}) with other content; \
                         publish the change as version {} (nothing was stored)",
                        current.seq,
                        old + 1
                    )));
                } else if new < old {
                    return Err(Status::failed_precondition(format!(
                        "policy version {new} is older than version {old} in force in tenant {tenant} (seq {}): \
                         versions only go up; publish it as version {} (nothing was stored)",
                        current.seq,
                        old + 1
                    )));
                }
            }
            _ => {}
        }
    }
    // The policy in force, sent again on its own: the receipt of its entry.
    match (in_force, events) {
        (Some(seq), [event]) => {
            let tenant = ParsedEvent::parse(&event.envelope.payload).map(|p| p.header.tenant).unwrap_or_default();
            let entry = ledger.entry(&tenant, seq).map_err(|e| crate::status::read_status(&e))?;
            Ok(Some(ledger::Receipt {
                tenant,
                seq,
                entry_hash: entry.entry_hash,
                recorded_at: entry.recorded_at,
                duplicate: true,
            }))
        }
        _ => Ok(None),
    }
}

/// Whether `event` carries one signature that verifies with a key authorised to sign it (the
/// same decision the append path makes, before a guard reveals any governance state).
fn authentic(ledger: &Ledger, event: &AppendEvent, parsed: &ParsedEvent) -> bool {
    let envelope = &event.envelope;
    let [signature] = envelope.signatures.as_slice() else { return false };
    let Ok(key_id) = ledger::KeyId::from_hex(&signature.keyid) else { return false };
    let roots = ledger.trust_roots();
    let tenant = parsed.header.tenant.as_str();
    let record = match ledger.key_records(tenant) {
        Ok(records) => records.into_iter().find(|r| r.key_id == signature.keyid),
        Err(_) => return false,
    };
    if ledger::registry::authorize(&roots, &key_id, record.as_ref(), &parsed.header).is_err() {
        return false;
    }
    let key = match roots.root_key(&key_id) {
        Some(key) => key,
        None => match record.as_ref().and_then(ledger::registry::KeyRecord::verifying_key) {
            Some(key) => key,
            None => return false,
        },
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&signature.sig) else { return false };
    key.verify_strict(&envelope.signed_bytes(), &sig).is_ok()
}

/// What the guards read of a tenant's governance state.
struct Governance {
    /// The ids of the active (declared, not lifted) freezes.
    freezes: Vec<String>,
    /// The policy in force.
    policy: Option<PolicyRecord>,
}

/// The tenant's governance state once it has folded the whole log as it is now, or `None`
/// when it does not get there within [`CATCH_UP`].
fn caught_up(ledger: &Ledger, governor: &Governor, tenant: &str) -> Option<Governance> {
    let size = ledger.head(tenant).map_or(0, |h| h.size);
    let deadline = Instant::now() + CATCH_UP;
    loop {
        let state = governor.with_tenant(tenant, |s| {
            let governance =
                Governance { freezes: s.meta.freezes.keys().cloned().collect(), policy: s.meta.policy.clone() };
            (s.meta.position, governance)
        });
        match state {
            Some((position, governance)) if position >= size => return Some(governance),
            None if size == 0 => return Some(Governance { freezes: Vec::new(), policy: None }),
            _ => {}
        }
        if Instant::now() >= deadline {
            tracing::warn!(tenant, size, "governance state behind the log: append not guarded");
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
