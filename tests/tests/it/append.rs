//! The append pipeline's rules: every bad input gets a typed error and stores nothing.

use std::future::Future as _;

use ledger::{AppendError, AppendEvent, Config, Envelope, ErrorKind, ExpectedVersion, KeyPair};
use testkit::{append_ok, body, expecting, must_append, register_key_body, temp_ledger, temp_ledger_with, TestLedger};

use crate::{snapshot, snapshot_with_ids, submit_async_and_wait, Snapshot};

const TENANT: &str = "vetclinic-001";

/// Runs `make` against a fresh ledger that has a QA agent, through the single-event path, the
/// batch path (with a valid event before the bad one), and a request large enough to be checked
/// in pieces, one per core (valid events before and after the bad one; through `append_batch`
/// and `submit_async`), on a fresh and on a reopened store. Each time the error must satisfy
/// `expect`, and nothing may be stored: not even the valid events of the batch.
fn assert_rejected(
    make: impl Fn(&TestLedger, &testkit::Agent) -> AppendEvent,
    expect: impl Fn(&AppendError) -> bool,
    kind: ErrorKind,
) {
    assert_rejected_after(|_, _| {}, make, expect, kind);
}

/// How [`assert_rejected_after`] sends the bad event.
#[derive(Debug, Clone, Copy)]
enum Sent {
    Alone,
    SecondOfTwo,
    /// At this index of a request of [`LARGE`] events, through `append_batch`.
    InLarge(usize),
    /// At this index of a request of [`LARGE`] events, through `submit_async`.
    InLargeAsync(usize),
    /// Alone, through `submit_async`: on a machine of two cores or more, a lone request is
    /// queued before its signature is verified, and the writer stages it meanwhile.
    AloneAsync,
    /// At this index of a request of [`MEDIUM`] events, through `submit_async`: queued before
    /// its signatures are verified, which usually takes long enough that the writer has staged
    /// the request and waits for their verdict.
    InMediumAsync(usize),
}

/// A request this large is checked and verified in one piece per core (`SPLIT_MIN` and more).
const LARGE: usize = 70;

/// A request under `SPLIT_MIN` events, verified in one batch on the caller's thread.
const MEDIUM: usize = 40;

/// [`assert_rejected`] with a `setup` step whose appends happen before the snapshot.
fn assert_rejected_after(
    setup: impl Fn(&TestLedger, &testkit::Agent),
    make: impl Fn(&TestLedger, &testkit::Agent) -> AppendEvent,
    expect: impl Fn(&AppendError) -> bool,
    kind: ErrorKind,
) {
    for reopen in [false, true] {
        for sent in [
            Sent::Alone,
            Sent::SecondOfTwo,
            Sent::InLarge(20),
            Sent::InLargeAsync(LARGE - 20),
            Sent::AloneAsync,
            Sent::InMediumAsync(MEDIUM - 5),
        ] {
            let mut t = temp_ledger();
            let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed", "TestsFailed"]);
            append_ok(&t.ledger, qa.event("release/r1", 10));
            setup(&t, &qa);
            if reopen {
                t = t.reopen();
            }
            let bad = make(&t, &qa);
            let valid = qa.event_with_id("release/r1", "valid-beside-a-bad-one", 10);
            let others: Vec<AppendEvent> =
                (1..LARGE - 1).map(|i| qa.event_with_id("release/r1", &format!("valid-{i}"), 10)).collect();
            let mut ids = vec![event_id(&bad), event_id(&valid)];
            ids.extend(others.iter().map(event_id));
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let before: Snapshot = snapshot_with_ids(&t.ledger, TENANT, &ids);
            let request = |at: usize, len: usize| {
                let mut events = vec![valid.clone()];
                events.extend(others.iter().take(len - 2).cloned());
                events.insert(at, bad.clone());
                assert_eq!(events.len(), len);
                events
            };
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let error = match sent {
                Sent::Alone => t.ledger.append(bad).unwrap_err(),
                Sent::SecondOfTwo => t.ledger.append_batch(vec![valid.clone(), bad]).unwrap_err(),
                Sent::InLarge(at) => t.ledger.append_batch(request(at, LARGE)).unwrap_err(),
                Sent::InLargeAsync(at) => submit_async_and_wait(&runtime, &t.ledger, request(at, LARGE)).unwrap_err(),
                Sent::AloneAsync => submit_async_and_wait(&runtime, &t.ledger, vec![bad]).unwrap_err(),
                Sent::InMediumAsync(at) => submit_async_and_wait(&runtime, &t.ledger, request(at, MEDIUM)).unwrap_err(),
            };
            assert!(expect(&error), "unexpected error ({sent:?}, reopen={reopen}): {error:?}");
            assert_eq!(error.kind(), kind, "{error}");

            assert_eq!(
                snapshot_with_ids(&t.ledger, TENANT, &ids),
                before,
                "a rejected append stored something ({sent:?}): {error}"
            );
            let t = t.reopen();
            assert_eq!(snapshot_with_ids(&t.ledger, TENANT, &ids), before, "after reopen: {error}");
            t.ledger.verify_tenant(TENANT).unwrap();
            // The valid event's id is still free: appending it now stores it as new (or is
            // refused for what the set-up did to its key, never as a known event id).
            let valid_is_valid = match t.ledger.append(valid) {
                Ok(receipt) => {
                    assert!(!receipt.duplicate, "the valid event of a rejected batch was kept: {receipt:?}");
                    true
                }
                Err(error) => {
                    assert!(!matches!(error, AppendError::EventIdConflict { .. }), "{error}");
                    false
                }
            };
            // An error about one event names the bad one, wherever it sits in the request
            // (unless the set-up spoilt the valid ones too: which of them is named then depends
            // on which check each fails, and this test does not say).
            let at = match sent {
                Sent::Alone | Sent::AloneAsync => 0,
                Sent::SecondOfTwo => 1,
                Sent::InLarge(at) | Sent::InLargeAsync(at) | Sent::InMediumAsync(at) => at,
            };
            if let (Some(index), true) = (error.index(), valid_is_valid) {
                assert_eq!(index, at, "{sent:?}: {error}");
            }
        }
    }
}

/// The event id a body names (`"?"` when the body is not JSON).
fn event_id(event: &AppendEvent) -> String {
    serde_json::from_slice::<serde_json::Value>(&event.envelope.payload)
        .ok()
        .and_then(|body| body["eventId"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A key registered by an event of a batch that is rejected is not registered: the batch's
/// later events that use it are not what rejects it, and afterwards the key signs nothing.
#[test]
fn a_key_registered_in_a_rejected_batch_stays_unusable() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed"]);
    append_ok(&t.ledger, qa.event("release/r1", 10));
    let newcomer = KeyPair::from_seed(&[77; 32]);
    let register = AppendEvent::new(Envelope::sign(
        register_key_body(TENANT, "newcomer", &newcomer, &[], &["TestsPassed"]),
        &t.admin,
    ));
    let uses_it = testkit::Agent::from_key(TENANT, "newcomer", newcomer.clone()).event("release/r1", 10);
    let mut conflict = qa.event("release/r1", 10);
    conflict.expected_version = ExpectedVersion::Exact(99);
    let before = snapshot(&t.ledger, TENANT);
    let error = t.ledger.append_batch(vec![register, uses_it.clone(), conflict]).unwrap_err();
    assert!(matches!(error, AppendError::VersionConflict { index: 2, .. }), "{error}");
    assert_eq!(snapshot(&t.ledger, TENANT), before);
    let error = t.ledger.append(uses_it).unwrap_err();
    assert!(matches!(error, AppendError::UnknownKey { .. }), "the key of a rejected batch signs: {error}");
    assert_eq!(snapshot(&t.ledger, TENANT), before);
}

#[test]
fn bad_signature_is_unauthenticated() {
    assert_rejected(
        |_, qa| {
            let mut event = qa.event("release/r1", 10);
            event.envelope.signatures[0].sig[10] ^= 0x01;
            event
        },
        |e| matches!(e, AppendError::BadSignature { .. }),
        ErrorKind::Unauthenticated,
    );
}

#[test]
fn payload_changed_after_signing_is_unauthenticated() {
    assert_rejected(
        |_, qa| {
            let mut event = qa.event("release/r1", 10);
            let text = String::from_utf8(event.envelope.payload.clone()).unwrap().replace("120", "121");
            event.envelope.payload = text.into_bytes();
            event
        },
        |e| matches!(e, AppendError::BadSignature { .. }),
        ErrorKind::Unauthenticated,
    );
}

#[test]
fn unknown_key_is_unauthenticated() {
    assert_rejected(
        |_, _| {
            let stranger = KeyPair::generate();
            let payload = body(TENANT, "release/r1", "TestsPassed", "e-unknown", "qa-runner", serde_json::json!({}));
            AppendEvent::new(Envelope::sign(payload, &stranger))
        },
        |e| matches!(e, AppendError::UnknownKey { .. }),
        ErrorKind::Unauthenticated,
    );
}

#[test]
fn revoked_key_is_permission_denied() {
    assert_rejected_after(
        |t, qa| {
            let revoke = body(
                TENANT,
                "keys",
                "AgentKeyRevoked",
                "revoke-qa",
                "admin",
                serde_json::json!({"keyId": qa.key.key_id().to_hex(), "reason": "rotated"}),
            );
            append_ok(&t.ledger, AppendEvent::new(Envelope::sign(revoke, &t.admin)));
        },
        |_, qa| qa.event("release/r1", 10),
        |e| matches!(e, AppendError::KeyRevoked { .. }),
        ErrorKind::PermissionDenied,
    );
}

#[test]
fn key_of_another_tenant_is_permission_denied() {
    assert_rejected(
        |t, _| {
            let other = t.agent("other-tenant", "qa-runner", &["QA"], &[]);
            let payload = body(TENANT, "release/r1", "TestsPassed", "e-other", "qa-runner", serde_json::json!({}));
            other.sign(payload)
        },
        |e| matches!(e, AppendError::WrongTenant { .. }),
        ErrorKind::PermissionDenied,
    );
}

#[test]
fn disallowed_type_is_permission_denied() {
    assert_rejected(
        |_, qa| qa.sign(body(TENANT, "release/r1", "ApprovalGranted", "e-appr", "qa-runner", serde_json::json!({}))),
        |e| matches!(e, AppendError::NotAllowed { what, .. } if what.contains("ApprovalGranted")),
        ErrorKind::PermissionDenied,
    );
}

#[test]
fn decision_from_an_agent_or_the_admin_is_permission_denied() {
    assert_rejected(
        |_, qa| qa.sign(body(TENANT, "release/r1", "ReleaseApproved", "e-dec", "qa-runner", serde_json::json!({}))),
        |e| matches!(e, AppendError::NotAllowed { what, .. } if what.contains("ledger key")),
        ErrorKind::PermissionDenied,
    );
    assert_rejected(
        |t, _| {
            let payload = body(TENANT, "release/r1", "ReleaseRejected", "e-dec", "admin", serde_json::json!({}));
            AppendEvent::new(Envelope::sign(payload, &t.admin))
        },
        |e| matches!(e, AppendError::NotAllowed { .. }),
        ErrorKind::PermissionDenied,
    );
}

#[test]
fn acting_as_another_agent_is_permission_denied() {
    assert_rejected(
        |_, qa| qa.sign(body(TENANT, "release/r1", "TestsPassed", "e-imp", "j.doe", serde_json::json!({}))),
        |e| matches!(e, AppendError::NotAllowed { what, .. } if what.contains("j.doe")),
        ErrorKind::PermissionDenied,
    );
}

#[test]
fn oversize_payload_is_resource_exhausted() {
    assert_rejected(
        |_, qa| qa.event("release/r1", 70 * 1024),
        |e| matches!(e, AppendError::PayloadTooLarge { limit: 65536, .. }),
        ErrorKind::ResourceExhausted,
    );
}

#[test]
fn malformed_json_is_invalid() {
    assert_rejected(
        |_, qa| qa.sign(b"{\"tenant\": \"vetclinic-001\", ".to_vec()),
        |e| matches!(e, AppendError::Invalid { source, .. } if source.field == "payload"),
        ErrorKind::InvalidArgument,
    );
}

#[test]
fn missing_fields_are_invalid() {
    for field in ["tenant", "stream", "type", "eventId", "occurredAt", "actor", "data"] {
        assert_rejected(
            |_, qa| {
                let mut value: serde_json::Value =
                    serde_json::from_slice(&qa.event("release/r1", 1).envelope.payload).unwrap();
                value.as_object_mut().unwrap().remove(field);
                qa.sign(serde_json::to_vec(&value).unwrap())
            },
            |e| matches!(e, AppendError::Invalid { source, .. } if source.field == field),
            ErrorKind::InvalidArgument,
        );
    }
}

#[test]
fn bad_identifiers_are_invalid() {
    assert_rejected(
        |_, qa| qa.sign(body(TENANT, "release r1", "TestsPassed", "e-1", "qa-runner", serde_json::json!({}))),
        |e| matches!(e, AppendError::Invalid { source, .. } if source.field == "stream"),
        ErrorKind::InvalidArgument,
    );
}

#[test]
fn reused_event_id_with_another_payload_already_exists() {
    assert_rejected_after(
        |t, qa| {
            append_ok(&t.ledger, qa.event_with_id("release/r1", "fixed-id", 10));
        },
        |_, qa| qa.event_with_id("release/r1", "fixed-id", 11),
        |e| matches!(e, AppendError::EventIdConflict { event_id, .. } if event_id == "fixed-id"),
        ErrorKind::AlreadyExists,
    );
}

#[test]
fn version_conflict_names_expected_and_actual() {
    assert_rejected(
        |_, qa| expecting(qa.event("release/r1", 10), ExpectedVersion::Exact(7)),
        |e| matches!(e, AppendError::VersionConflict { expected: ExpectedVersion::Exact(7), actual, .. } if *actual >= 1),
        ErrorKind::FailedPrecondition,
    );
    assert_rejected(
        |_, qa| expecting(qa.event("release/r1", 10), ExpectedVersion::NoStream),
        |e| matches!(e, AppendError::VersionConflict { expected: ExpectedVersion::NoStream, .. }),
        ErrorKind::FailedPrecondition,
    );
}

#[test]
fn unknown_key_on_a_new_tenant_creates_no_tenant() {
    let t = temp_ledger();
    let payload = body("brand-new", "s", "TestsPassed", "e-1", "someone", serde_json::json!({}));
    let error = t.ledger.append(AppendEvent::new(Envelope::sign(payload, &KeyPair::generate()))).unwrap_err();
    assert!(matches!(error, AppendError::UnknownKey { .. }), "{error}");
    assert!(t.ledger.tenants().is_empty());
    let t = t.reopen();
    assert!(t.ledger.tenants().is_empty());
}

#[test]
fn same_event_id_and_payload_returns_the_original_receipt() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa-runner", &[], &[]);
    let event = qa.event_with_id("release/r1", "retry-me", 10);
    let first = must_append(&t.ledger, event.clone());
    t.clock.advance(1_000);
    let again = must_append(&t.ledger, event.clone());
    assert!(again.duplicate && !first.duplicate);
    assert_eq!((again.seq, again.entry_hash, again.recorded_at), (first.seq, first.entry_hash, first.recorded_at));
    // Within one batch too, and after a reopen.
    let both = t.ledger.append_batch(vec![event.clone(), qa.event("release/r1", 1)]).unwrap();
    assert_eq!(both[0].seq, first.seq);
    let t = t.reopen();
    assert_eq!(must_append(&t.ledger, event).seq, first.seq);
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 3);
}

/// The committed event-id rows of a request's events are read together before it is staged:
/// each answer is still its own event's. In one request, a committed id with the same payload
/// answers with its original receipt, one with another payload is a conflict named at its own
/// index (and the request stores nothing), an id repeated within the request answers with the
/// receipt staged for it, and every other event gets a new seq.
#[test]
fn committed_event_ids_answer_each_event_of_a_request_at_its_own_index() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa-runner", &[], &[]);
    let committed: Vec<AppendEvent> = (0..3).map(|i| qa.event_with_id("release/r1", &format!("old-{i}"), 10)).collect();
    let first = t.ledger.append_batch(committed.clone()).unwrap();
    let fresh = |i: usize| qa.event_with_id("release/r1", &format!("new-{i}"), 10);
    let size = t.ledger.head(TENANT).unwrap().size;

    let mut conflicting = vec![fresh(0), committed[2].clone(), fresh(1), fresh(2)];
    conflicting.insert(3, qa.event_with_id("release/r1", "old-1", 11));
    let error = t.ledger.append_batch(conflicting).unwrap_err();
    assert!(
        matches!(&error, AppendError::EventIdConflict { index: 3, event_id, existing_seq } if event_id == "old-1" && *existing_seq == first[1].seq),
        "{error:?}"
    );
    assert_eq!(t.ledger.head(TENANT).unwrap().size, size, "a refused request stored something");

    let request = vec![fresh(0), committed[2].clone(), fresh(1), committed[0].clone(), fresh(0), fresh(2)];
    let receipts = t.ledger.append_batch(request).unwrap();
    let answers: Vec<(u64, bool)> = receipts.iter().map(|r| (r.seq, r.duplicate)).collect();
    assert_eq!(
        answers,
        vec![
            (size, false),
            (first[2].seq, true),
            (size + 1, false),
            (first[0].seq, true),
            (size, true),
            (size + 2, false)
        ]
    );
    assert_eq!(t.ledger.head(TENANT).unwrap().size, size + 3);
}

#[test]
fn expected_versions_count_from_one() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa-runner", &[], &[]);
    append_ok(&t.ledger, expecting(qa.event("s", 1), ExpectedVersion::NoStream));
    append_ok(&t.ledger, expecting(qa.event("s", 1), ExpectedVersion::Exact(1)));
    let receipts = t
        .ledger
        .append_batch(vec![
            expecting(qa.event("s", 1), ExpectedVersion::Exact(2)),
            expecting(qa.event("s", 1), ExpectedVersion::Exact(3)),
        ])
        .unwrap();
    assert_eq!(receipts.len(), 2);
    assert_eq!(t.ledger.stream_version(TENANT, "s").unwrap(), 4);
    let versions: Vec<u64> = t.ledger.read_stream(TENANT, "s", 2, 10).unwrap().into_iter().map(|(v, _)| v).collect();
    assert_eq!(versions, vec![2, 3, 4]);
}

#[test]
fn a_request_may_register_a_key_and_use_it() {
    let t = temp_ledger();
    let key = KeyPair::generate();
    let register = AppendEvent::new(Envelope::sign(register_key_body(TENANT, "ci", &key, &[], &[]), &t.admin));
    let payload = body(TENANT, "s", "PipelineReady", "p-1", "ci", serde_json::json!({}));
    let receipts = t.ledger.append_batch(vec![register, AppendEvent::new(Envelope::sign(payload, &key))]).unwrap();
    assert_eq!(receipts.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![0, 1]);
}

#[test]
fn a_key_admin_agent_registers_keys_and_others_cannot() {
    let t = temp_ledger();
    let key_admin = t.agent(TENANT, "sec-ops", &["KeyAdmin"], &[]);
    let plain = t.agent(TENANT, "qa", &["QA"], &[]);
    let new_key = KeyPair::generate();
    let mut as_admin: serde_json::Value =
        serde_json::from_slice(&register_key_body(TENANT, "x", &new_key, &[], &[])).unwrap();
    as_admin["actor"]["agentId"] = "sec-ops".into();
    append_ok(&t.ledger, key_admin.sign(serde_json::to_vec(&as_admin).unwrap()));
    let other = KeyPair::generate();
    let mut as_plain: serde_json::Value =
        serde_json::from_slice(&register_key_body(TENANT, "y", &other, &[], &[])).unwrap();
    as_plain["actor"]["agentId"] = "qa".into();
    let error = t.ledger.append(plain.sign(serde_json::to_vec(&as_plain).unwrap())).unwrap_err();
    assert!(matches!(&error, AppendError::NotAllowed { what, .. } if what.contains("KeyAdmin")), "{error}");
}

#[test]
fn registry_preconditions() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    // Registering the same key again.
    let again = register_key_body(TENANT, "qa", &qa.key, &[], &[]);
    let mut again: serde_json::Value = serde_json::from_slice(&again).unwrap();
    again["eventId"] = "register-again".into();
    let error =
        t.ledger.append(AppendEvent::new(Envelope::sign(serde_json::to_vec(&again).unwrap(), &t.admin))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::FailedPrecondition, "{error}");
    // Revoking a key that is not registered.
    let revoke = body(TENANT, "keys", "AgentKeyRevoked", "rv", "admin", serde_json::json!({"keyId": "ab".repeat(32)}));
    let error = t.ledger.append(AppendEvent::new(Envelope::sign(revoke, &t.admin))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::FailedPrecondition, "{error}");
    // Registering a decision type.
    let bad = register_key_body(TENANT, "z", &KeyPair::generate(), &[], &["ReleaseApproved"]);
    let error = t.ledger.append(AppendEvent::new(Envelope::sign(bad, &t.admin))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error}");
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 1);
}

#[test]
fn the_ledger_key_signs_decisions() {
    let t = temp_ledger();
    let _ = t.agent(TENANT, "qa", &[], &[]);
    let decision = body(
        TENANT,
        "release/r1",
        "ReleaseApproved",
        "d-1",
        "release-ledger",
        serde_json::json!({"status": "Approved"}),
    );
    let receipt = must_append(&t.ledger, AppendEvent::new(Envelope::sign(decision, t.ledger.ledger_key())));
    assert_eq!(receipt.seq, 1);
    let other = body(TENANT, "release/r1", "TestsPassed", "d-2", "release-ledger", serde_json::json!({}));
    let error = t.ledger.append(AppendEvent::new(Envelope::sign(other, t.ledger.ledger_key()))).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PermissionDenied);
}

#[test]
fn batches_are_limited_and_single_tenant() {
    let t = temp_ledger_with(Config { max_events_per_append: 3, ..Config::default() });
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let error = t.ledger.append_batch((0..4).map(|_| qa.event("s", 1)).collect()).unwrap_err();
    assert!(matches!(error, AppendError::TooManyEvents { count: 4, limit: 3 }));
    let other = t.agent("other", "qa", &[], &[]);
    let error = t.ledger.append_batch(vec![qa.event("s", 1), other.event("s", 1)]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    assert!(t.ledger.append_batch(vec![]).is_err());
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 1);
}

#[test]
fn recorded_at_never_goes_backwards_even_when_the_clock_does() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let first = must_append(&t.ledger, qa.event("s", 1));
    t.clock.set(5);
    let second = must_append(&t.ledger, qa.event("s", 1));
    assert!(second.recorded_at >= first.recorded_at);
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// A ledger whose third commit fails at `point`: commit 0 registers the agent, commit 1 stores
/// an event; returns it, the agent, and the event (id `event_id`) whose commit will fail.
fn failing_third_commit(point: ledger::CommitPoint, event_id: &str) -> (TestLedger, testkit::Agent, AppendEvent) {
    failing_third_commit_with(point, event_id, Config::default())
}

fn failing_third_commit_with(
    point: ledger::CommitPoint,
    event_id: &str,
    config: Config,
) -> (TestLedger, testkit::Agent, AppendEvent) {
    let fault: ledger::CommitFault = std::sync::Arc::new(move |n, at| n == 2 && at == point);
    let t = temp_ledger_with(Config { commit_fault: Some(fault), ..config });
    let qa = t.agent(TENANT, "qa", &[], &[]);
    append_ok(&t.ledger, qa.event("s", 1));
    let event = qa.event_with_id("s", event_id, 1);
    (t, qa, event)
}

#[test]
fn a_failed_commit_poisons_the_writer_until_reopen() {
    let (t, qa, lost) = failing_third_commit(ledger::CommitPoint::Write, "never-acknowledged");
    let error = t.ledger.append(lost.clone()).unwrap_err();
    assert!(matches!(error, AppendError::Poisoned(_)), "{error}");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    let error = t.ledger.append(qa.event("s", 1)).unwrap_err();
    assert!(matches!(error, AppendError::Poisoned(_)), "still poisoned: {error}");
    assert!(t.ledger.poisoned().is_some());

    let mut t = t.reopen();
    assert!(t.ledger.entry_by_event_id(TENANT, "never-acknowledged").unwrap().is_none());
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 2);
    t.ledger.verify_tenant(TENANT).unwrap();
    // The reopened ledger has the same fault hook; its commit 0 is the next append, which passes.
    let receipt = must_append(&t.ledger, lost);
    assert_eq!(receipt.seq, 2);
    t.clock.advance(1);
    t = t.reopen();
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// DSSE's keyid is a hint (README, "DSSE key ids"): an envelope whose keyid names no key is
/// accepted when a key registered to the agent its body names made the signature, and it is
/// stored with the ledger's key id, the form the verifier and exports read.
#[test]
fn a_foreign_keyid_hint_finds_the_named_agents_key_and_is_stored_in_the_ledgers_form() {
    let t = temp_ledger();
    let _first = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed"]);
    // A second key of the same agent, registered later: the signer is found whichever it is.
    let second = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed"]);
    let canonical = second.key.key_id().to_hex();
    let hints = ["", "not-a-key-id", &canonical.to_uppercase(), &"ab".repeat(32)];
    for (n, hint) in hints.iter().enumerate() {
        let mut event = second.event_with_id("release/r1", &format!("hinted-{n}"), 10);
        event.envelope.signatures[0].keyid = (*hint).to_owned();
        let receipt = must_append(&t.ledger, event);
        let stored = t.ledger.entry(TENANT, receipt.seq).unwrap();
        assert_eq!(stored.envelope().unwrap().signatures[0].keyid, canonical, "hint {hint:?}");
        // The same event again, with its own key id, is the same event (the keyid is not signed).
        let again = must_append(&t.ledger, second.event_with_id("release/r1", &format!("hinted-{n}"), 10));
        assert!(again.duplicate && again.seq == receipt.seq, "hint {hint:?}: {again:?}");
    }
    let t = t.reopen();
    t.ledger.verify_tenant(TENANT).unwrap();
}

#[test]
fn a_foreign_keyid_hint_never_finds_another_agents_or_a_revoked_key() {
    // The signature of another agent's key, with the body naming this agent: no key of this
    // agent made it, so the key is unknown (nothing tells the caller which key it was).
    let deployer = || KeyPair::from_seed(&[42; 32]);
    assert_rejected_after(
        |t, _| {
            let register = register_key_body(TENANT, "deployer", &deployer(), &["CI"], &["TestsPassed"]);
            append_ok(&t.ledger, AppendEvent::new(Envelope::sign(register, &t.admin)));
        },
        |_, _| {
            let data =
                serde_json::json!({"module": "billing", "version": "1.4.2", "suite": "unit", "passed": 1, "failed": 0});
            let body = body(TENANT, "release/r1", "TestsPassed", "as-qa", "qa-runner", data);
            let mut event = AppendEvent::new(Envelope::sign(body, &deployer()));
            event.envelope.signatures[0].keyid = String::new();
            event
        },
        |e| matches!(e, AppendError::UnknownKey { key_id, .. } if key_id.contains("\"qa-runner\"")),
        ErrorKind::Unauthenticated,
    );
    // A revoked key is not tried.
    assert_rejected_after(
        |t, qa| {
            let revoke = body(
                TENANT,
                "keys",
                "AgentKeyRevoked",
                "revoke-qa",
                "admin",
                serde_json::json!({"keyId": qa.key.key_id().to_hex()}),
            );
            append_ok(&t.ledger, AppendEvent::new(Envelope::sign(revoke, &t.admin)));
        },
        |_, qa| {
            let mut event = qa.event("release/r1", 10);
            event.envelope.signatures[0].keyid = "0".into();
            event
        },
        |e| matches!(e, AppendError::UnknownKey { .. }),
        ErrorKind::Unauthenticated,
    );
}

/// The second point a disk can fail a commit: RocksDB's write of the batch succeeds, the
/// anchor's record, written at the same time, fails (it was the only flush; the killed-process
/// model: the page cache keeps the batch).
/// The writer is poisoned and nothing is acknowledged, yet the store holds the group — ahead of
/// its anchor, which the recovery rules accept (acknowledged ≤ anchored ≤ durable): it opens,
/// and the unacknowledged event is there, whole, answering a retry as a duplicate.
#[test]
fn a_failed_anchor_write_after_a_durable_batch_poisons_and_the_store_opens_ahead_of_its_anchor() {
    let (t, qa, unacknowledged) = failing_third_commit(ledger::CommitPoint::Anchor, "durable-not-anchored");
    let error = t.ledger.append(unacknowledged.clone()).unwrap_err();
    assert!(matches!(error, AppendError::Poisoned(ref reason) if reason.contains("anchor")), "{error}");
    assert!(matches!(t.ledger.append(qa.event("s", 1)).unwrap_err(), AppendError::Poisoned(_)));

    let t = t.reopen();
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 3, "the durable batch is in the store");
    let retry = must_append(&t.ledger, unacknowledged);
    assert!(retry.duplicate && retry.seq == 2, "{retry:?}");
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// The largest size any tenant has in the anchor's file on disk, read while the ledger is open.
fn largest_anchored_size(t: &TestLedger) -> u64 {
    let anchored = ledger::store::anchor::read_log(t.dir.path()).unwrap().expect("an anchor");
    anchored.heads.values().map(|head| head.size).max().expect("a tenant in the anchor")
}

/// The third point: the anchor's record is durable, RocksDB's write of the same group (made at
/// the same time) fails. Nothing is acknowledged and the store lacks the group, so the next open
/// replays it from the anchor: the unacknowledged event is there, whole, and a retry is a
/// duplicate of it.
#[test]
fn a_failed_store_write_beside_a_durable_anchor_record_poisons_and_open_replays_the_group() {
    let (t, qa, unacknowledged) = failing_third_commit(ledger::CommitPoint::Store, "anchored-not-stored");
    let error = t.ledger.append(unacknowledged.clone()).unwrap_err();
    assert!(matches!(error, AppendError::Poisoned(ref reason) if reason.contains("store write")), "{error}");
    assert!(matches!(t.ledger.append(qa.event("s", 1)).unwrap_err(), AppendError::Poisoned(_)));
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 2, "nothing was published");
    assert_eq!(largest_anchored_size(&t), 3, "the record is durable");
    // Its checkpoint would lack what the anchor names: a backup waits for the reopen.
    let elsewhere = tempfile::tempdir().unwrap();
    let error = t.ledger.backup_into(&elsewhere.path().join("backup")).unwrap_err();
    assert!(matches!(error, ledger::backup::BackupError::Poisoned(_)), "{error}");
    assert!(!elsewhere.path().join("backup").exists(), "a refused backup writes nothing");

    let t = t.reopen();
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 3, "the group was replayed from the anchor");
    let replayed = t.ledger.entry_by_event_id(TENANT, "anchored-not-stored").unwrap().expect("replayed");
    assert_eq!(replayed.seq, 2);
    let retry = must_append(&t.ledger, unacknowledged);
    assert!(retry.duplicate && retry.seq == 2, "{retry:?}");
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// A record that does not fit rolls the anchor, which claims every group durable in RocksDB:
/// such a group is written to RocksDB first and recorded after, so a failed store write leaves
/// nothing of it anywhere, and the next open has nothing to replay.
#[test]
fn a_failed_store_write_before_a_roll_leaves_nothing_of_the_group() {
    // No room past the snapshot: every group's record rolls the anchor.
    let rolling = Config { anchor_capacity: 0, ..Config::default() };
    let (t, _qa, lost) = failing_third_commit_with(ledger::CommitPoint::Store, "never-stored", rolling);
    let error = t.ledger.append(lost.clone()).unwrap_err();
    assert!(matches!(error, AppendError::Poisoned(ref reason) if reason.contains("store write")), "{error}");
    assert_eq!(largest_anchored_size(&t), 2, "nothing recorded");

    let mut t = t.reopen();
    assert!(t.ledger.entry_by_event_id(TENANT, "never-stored").unwrap().is_none());
    assert_eq!(t.ledger.head(TENANT).unwrap().size, 2);
    let receipt = must_append(&t.ledger, lost);
    assert!(!receipt.duplicate && receipt.seq == 2, "{receipt:?}");
    t.clock.advance(1);
    t = t.reopen();
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// A ledger whose writer, once `hold` is set, stops inside its next commit (before the write)
/// until `release` is sent; `entered` says when it has stopped; `commits` counts commits.
struct HeldWriter {
    t: TestLedger,
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    entered: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn held_writer(mut config: Config) -> HeldWriter {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    let hold = Arc::new(AtomicBool::new(false));
    let commits = Arc::new(AtomicU64::new(0));
    let (entered_tx, entered) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (entered_tx, released) = (Mutex::new(entered_tx), Mutex::new(released));
    let (hook_hold, hook_commits) = (hold.clone(), commits.clone());
    config.commit_fault = Some(Arc::new(move |_, point| {
        if point == ledger::CommitPoint::Write {
            hook_commits.fetch_add(1, Ordering::SeqCst);
            if hook_hold.swap(false, Ordering::SeqCst) {
                entered_tx.lock().unwrap().send(()).unwrap();
                released.lock().unwrap().recv().unwrap();
            }
        }
        false
    }));
    HeldWriter { t: temp_ledger_with(config), hold, entered, release, commits }
}

/// `Ledger::submit` queues a request and returns what to await, without waiting for the
/// commit: with the writer held inside a commit, 32 requests are submitted from one thread and
/// none has resolved; once the writer goes on they commit together, each future resolves on a
/// single-threaded runtime to its own receipt, in submission order, and a future dropped
/// unawaited does not cancel its append. A request refused at submission stores nothing.
#[test]
fn submitted_appends_resolve_when_committed_without_a_thread_each() {
    use std::sync::atomic::Ordering;

    let HeldWriter { t, hold, entered, release, commits } = held_writer(Config::default());
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed", "TestsFailed"]);
    let before = t.ledger.head(TENANT).unwrap().size;

    // The writer commits the first request and stops inside that commit.
    hold.store(true, Ordering::SeqCst);
    let first = t.ledger.submit(vec![qa.event_with_id("release/r1", "held", 10)]).unwrap();
    entered.recv().unwrap();
    let commits_held = commits.load(Ordering::SeqCst);
    let mut pending: Vec<_> = (0..32)
        .map(|i| t.ledger.submit(vec![qa.event_with_id("release/r1", &format!("queued-{i}"), 10)]).unwrap())
        .collect();
    let dropped = t.ledger.submit(vec![qa.event_with_id("release/r1", "never-awaited", 10)]).unwrap();
    drop(dropped);
    // A bad signature is refused at submission, before the queue.
    let mut forged = qa.event_with_id("release/r1", "forged", 10);
    forged.envelope.payload.push(b' ');
    assert!(matches!(t.ledger.submit(vec![forged]), Err(AppendError::BadSignature { .. })));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let noop = std::task::Waker::noop();
    for future in &mut pending {
        let polled = std::pin::Pin::new(future).poll(&mut std::task::Context::from_waker(noop));
        assert!(polled.is_pending(), "resolved while its commit could not have happened");
    }
    assert_eq!(t.ledger.head(TENANT).unwrap().size, before, "nothing visible before the commit");

    release.send(()).unwrap();
    let receipts = runtime.block_on(async {
        let mut receipts = vec![first.await.unwrap()];
        for future in pending {
            receipts.push(future.await.unwrap());
        }
        receipts
    });
    let seqs: Vec<u64> = receipts.iter().map(|r| r[0].seq).collect();
    assert_eq!(seqs, (before..before + 33).collect::<Vec<_>>(), "one receipt each, in submission order");
    // The held commit, then everything queued meanwhile (the never-awaited one included): far
    // fewer commits than requests.
    let commits_after = commits.load(Ordering::SeqCst) - commits_held;
    assert!(commits_after <= 3, "{commits_after} commits for 33 queued requests");
    assert_eq!(t.ledger.head(TENANT).unwrap().size, before + 34, "the dropped future's append is stored");
    // PendingAppend::wait on a runtime thread blocks like append_batch always has.
    let receipt = runtime
        .block_on(async { t.ledger.submit(vec![qa.event_with_id("release/r1", "waited", 10)]).unwrap().wait() })
        .unwrap();
    assert_eq!(receipt[0].seq, before + 34);
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// `Ledger::submit_async` never blocks its thread on the writer's queue: with the writer held
/// inside a commit and the queue full, it answers `Overloaded` at once (not after the queue
/// timeout, which `submit` would wait) and stores nothing.
#[test]
fn submit_async_answers_a_full_queue_overloaded_at_once_and_stores_nothing() {
    use std::sync::atomic::Ordering;

    let config = Config { queue_capacity: 4, queue_timeout: std::time::Duration::from_secs(60), ..Config::default() };
    let HeldWriter { t, hold, entered, release, .. } = held_writer(config);
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed", "TestsFailed"]);
    let before = t.ledger.head(TENANT).unwrap().size;

    hold.store(true, Ordering::SeqCst);
    let mut pending = vec![t.ledger.submit(vec![qa.event_with_id("release/r1", "held", 10)]).unwrap()];
    entered.recv().unwrap();
    for i in 0..4 {
        pending.push(t.ledger.submit(vec![qa.event_with_id("release/r1", &format!("queued-{i}"), 10)]).unwrap());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let started = std::time::Instant::now();
    let refused = runtime.block_on(t.ledger.submit_async(vec![qa.event_with_id("release/r1", "one-too-many", 10)]));
    assert!(matches!(refused, Err(AppendError::Overloaded)), "{refused:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "waited {:?} for room", started.elapsed());

    release.send(()).unwrap();
    let seqs: Vec<u64> = runtime.block_on(async {
        let mut seqs = Vec::new();
        for future in pending {
            seqs.push(future.await.unwrap()[0].seq);
        }
        seqs
    });
    assert_eq!(seqs, (before..before + 5).collect::<Vec<_>>());
    // With room again, the same event is taken.
    let receipt =
        submit_async_and_wait(&runtime, &t.ledger, vec![qa.event_with_id("release/r1", "one-too-many", 10)]).unwrap();
    assert_eq!(receipt[0].seq, before + 5, "the refused attempt left nothing behind");
    assert!(!receipt[0].duplicate);
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// A request queued before its signatures are verified (`submit_async` of a request that is
/// alone being prepared) decides nothing when they fail. Queued behind a held commit, a forged
/// request and then a valid one with the same event id end up in one group: the forged one is
/// dropped before the group is staged, so the valid one is stored as new, not refused as a
/// conflicting reuse of the id, and the group's other requests keep their order. Then, with
/// nothing held, a forged lone request and its valid twin, fifty times: each forgery is
/// `BadSignature` and stores nothing, each twin is the next entry.
#[test]
fn a_request_queued_before_its_signature_fails_decides_nothing() {
    use std::sync::atomic::Ordering;

    let forge = |event: &AppendEvent| {
        let mut forged = event.clone();
        forged.envelope.payload.push(b' ');
        forged
    };
    let HeldWriter { t, hold, entered, release, .. } = held_writer(Config::default());
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed", "TestsFailed"]);
    let before = t.ledger.head(TENANT).unwrap().size;
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();

    hold.store(true, Ordering::SeqCst);
    let held = t.ledger.submit(vec![qa.event_with_id("release/r1", "held", 10)]).unwrap();
    entered.recv().unwrap();
    let twin = qa.event_with_id("release/r1", "twin", 10);
    let refused = runtime.block_on(t.ledger.submit_async(vec![forge(&twin)]));
    assert!(matches!(refused, Err(AppendError::BadSignature { index: 0, .. })), "{refused:?}");
    let valid = runtime.block_on(t.ledger.submit_async(vec![twin.clone()])).unwrap();
    let after = t.ledger.submit(vec![qa.event_with_id("release/r1", "after", 10)]).unwrap();
    release.send(()).unwrap();
    let receipts = runtime.block_on(async { [held.await.unwrap(), valid.await.unwrap(), after.await.unwrap()] });
    let seqs: Vec<(u64, bool)> = receipts.iter().map(|r| (r[0].seq, r[0].duplicate)).collect();
    assert_eq!(seqs, [(before, false), (before + 1, false), (before + 2, false)]);
    assert_eq!(t.ledger.entry(TENANT, before + 1).unwrap().envelope().unwrap().payload, twin.envelope.payload);

    for i in 0..50 {
        let twin = qa.event_with_id("release/r1", &format!("twin-{i}"), 10);
        let size = t.ledger.head(TENANT).unwrap().size;
        let refused = submit_async_and_wait(&runtime, &t.ledger, vec![forge(&twin)]);
        assert!(matches!(refused, Err(AppendError::BadSignature { index: 0, .. })), "{i}: {refused:?}");
        assert_eq!(t.ledger.head(TENANT).unwrap().size, size, "{i}: a forged request was stored");
        assert_eq!(t.ledger.checkpoint(TENANT).unwrap().checkpoint.size, size, "{i}: a checkpoint moved");
        let receipt = submit_async_and_wait(&runtime, &t.ledger, vec![twin]).unwrap();
        assert_eq!((receipt[0].seq, receipt[0].duplicate), (size, false), "{i}");
    }
    let t = t.reopen();
    assert_eq!(t.ledger.head(TENANT).unwrap().size, before + 53);
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// A large request is checked and its signatures verified in one piece per core, then settled
/// in one ordered pass: it answers exactly as checking one event after the other does. The
/// first failing event decides, any failed check before any bad signature; a key registered
/// earlier in the request signs later events; a foreign keyid hint is stored in the ledger's
/// form. Each refused request stores nothing. Through `append_batch` and `submit_async`.
#[test]
fn a_large_request_checked_in_pieces_answers_as_one_event_after_the_other() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed", "TestsFailed"]);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let send = |events: Vec<AppendEvent>, asynchronously: bool| {
        if asynchronously {
            submit_async_and_wait(&runtime, &t.ledger, events)
        } else {
            t.ledger.append_batch(events)
        }
    };
    for asynchronously in [false, true] {
        let run = if asynchronously { "async" } else { "sync" };
        let valid = |i: usize| qa.event_with_id("release/r1", &format!("{run}-{i}"), 10);
        let request = |change: &dyn Fn(usize, &mut AppendEvent)| {
            (0..LARGE)
                .map(|i| {
                    let mut event = valid(i);
                    change(i, &mut event);
                    event
                })
                .collect::<Vec<_>>()
        };
        let forge = |event: &mut AppendEvent| event.envelope.payload.push(b' ');
        let before = t.ledger.head(TENANT).unwrap().size;

        // Two forged events, one in each piece: the first is named.
        let error = send(
            request(&|i, e| {
                if i == 10 || i == 60 {
                    forge(e);
                }
            }),
            asynchronously,
        )
        .unwrap_err();
        assert!(matches!(error, AppendError::BadSignature { index: 10, .. }), "{run}: {error:?}");

        // A forged event in the first piece, a body that is not JSON in the second: the check
        // fails before any signature is looked at.
        let error = send(
            request(&|i, e| match i {
                3 => forge(e),
                60 => e.envelope.payload = b"{not json".to_vec(),
                _ => {}
            }),
            asynchronously,
        )
        .unwrap_err();
        assert!(matches!(error, AppendError::Invalid { index: 60, .. }), "{run}: {error:?}");

        // An event of another tenant, signed by a key of neither: the tenant is checked first.
        let other = qa.sign(body(
            "other-tenant",
            "release/r1",
            "TestsPassed",
            &format!("{run}-other"),
            "qa-runner",
            serde_json::json!({}),
        ));
        let error = send(
            request(&|i, e| {
                if i == 40 {
                    *e = other.clone();
                }
            }),
            asynchronously,
        )
        .unwrap_err();
        assert!(
            matches!(&error, AppendError::BadRequest(reason) if reason.contains("event 40 is for tenant")),
            "{run}: {error:?}"
        );
        assert_eq!(t.ledger.head(TENANT).unwrap().size, before, "{run}: a refused request stored something");

        // A key registered by the request's first event signs two later ones (one in each
        // piece), and two events carry an upper-case hint of their key id.
        let key = KeyPair::generate();
        let ci = format!("ci-{run}");
        let register = AppendEvent::new(Envelope::sign(register_key_body(TENANT, &ci, &key, &[], &[]), &t.admin));
        let by_new_key = |i: usize| {
            let payload = body(TENANT, "s", "PipelineReady", &format!("{run}-ci-{i}"), &ci, serde_json::json!({}));
            AppendEvent::new(Envelope::sign(payload, &key))
        };
        let canonical = qa.key.key_id().to_hex();
        let events = request(&|i, e| match i {
            0 => *e = register.clone(),
            5 | 50 => e.envelope.signatures[0].keyid = canonical.to_uppercase(),
            30 | 69 => *e = by_new_key(i),
            _ => {}
        });
        let receipts = send(events, asynchronously).unwrap();
        let seqs: Vec<u64> = receipts.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (before..before + LARGE as u64).collect::<Vec<_>>(), "{run}");
        for i in [5, 50] {
            let stored = t.ledger.entry(TENANT, before + i).unwrap();
            assert_eq!(stored.envelope().unwrap().signatures[0].keyid, canonical, "{run}: event {i}");
        }
        for i in [30, 69] {
            let stored = t.ledger.entry(TENANT, before + i).unwrap();
            assert_eq!(stored.envelope().unwrap().signatures[0].keyid, key.key_id().to_hex(), "{run}: event {i}");
        }
    }
    let t = t.reopen();
    t.ledger.verify_tenant(TENANT).unwrap();
}

/// Rules for [`a_large_request_checked_in_pieces_applies_the_rules_after_the_signatures`]: a
/// body whose data says `"refuse": true` is invalid; the role its data claims is its fact, and
/// a claimed role of "forbidden" is refused at authorisation.
#[derive(Debug)]
struct RefusingRules;

impl ledger::EventRules for RefusingRules {
    fn validate(&self, event: &ledger::ParsedEvent) -> Result<(), ledger::error::InvalidEvent> {
        let data: serde_json::Value = event.data_as()?;
        match data.get("refuse") {
            Some(serde_json::Value::Bool(true)) => {
                Err(ledger::error::InvalidEvent::new("data.refuse", "refused by the rules"))
            }
            _ => Ok(()),
        }
    }

    fn facts(&self, event: &ledger::ParsedEvent) -> ledger::EventFacts {
        let data: serde_json::Value = event.data_as().unwrap_or_default();
        ledger::EventFacts {
            claimed_role: data.get("role").and_then(|r| r.as_str()).map(str::to_owned),
            attestation_key: None,
        }
    }

    fn authorize(
        &self,
        _event: &ledger::ParsedEvent,
        facts: &ledger::EventFacts,
        _signer: ledger::Signer,
        _roles: &[String],
        _attestor: Option<&ledger::KeyRecord>,
    ) -> Result<(), String> {
        match facts.claimed_role.as_deref() {
            Some("forbidden") => Err("act as \"forbidden\"".to_owned()),
            _ => Ok(()),
        }
    }
}

/// A large request's bodies are checked by the rules in its pieces, beside the signatures, and
/// the answer is still the one of checking one event after the other: a bad signature anywhere
/// decides before a body the rules refuse (an unauthenticated sender learns nothing of the
/// schema), a refused body is named by its index, and the facts read from each body are the
/// ones authorisation acts on. Each refused request stores nothing. Through `append_batch` and
/// `submit_async`.
#[test]
fn a_large_request_checked_in_pieces_applies_the_rules_after_the_signatures() {
    let t = temp_ledger_with(Config { rules: Some(std::sync::Arc::new(RefusingRules)), ..Config::default() });
    let qa = t.agent(TENANT, "qa-runner", &["QA"], &["TestsPassed"]);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for asynchronously in [false, true] {
        let run = if asynchronously { "async" } else { "sync" };
        let event = |i: usize, data: serde_json::Value| {
            qa.sign(body(TENANT, "release/r1", "TestsPassed", &format!("{run}-{i}"), "qa-runner", data))
        };
        let request = |special: &dyn Fn(usize) -> Option<serde_json::Value>, forged: &[usize]| {
            (0..LARGE)
                .map(|i| {
                    let mut e = event(i, special(i).unwrap_or_else(|| serde_json::json!({ "role": "ok" })));
                    if forged.contains(&i) {
                        e.envelope.payload.push(b' ');
                    }
                    e
                })
                .collect::<Vec<_>>()
        };
        let send = |events: Vec<AppendEvent>| {
            if asynchronously {
                submit_async_and_wait(&runtime, &t.ledger, events)
            } else {
                t.ledger.append_batch(events)
            }
        };
        let before = t.ledger.head(TENANT).unwrap().size;
        let refuse = |at: usize| move |i: usize| (i == at).then(|| serde_json::json!({ "refuse": true }));

        // A refused body in the first piece, a forged event in the second: the signature decides.
        let error = send(request(&refuse(3), &[60])).unwrap_err();
        assert!(matches!(error, AppendError::BadSignature { index: 60, .. }), "{run}: {error:?}");

        // Refused bodies in both pieces, every signature good: the first is named, by the rules.
        let error =
            send(request(&|i| (i == 40 || i == 65).then(|| serde_json::json!({ "refuse": true })), &[])).unwrap_err();
        assert!(
            matches!(&error, AppendError::Invalid { index: 40, source } if source.field == "data.refuse"),
            "{run}: {error:?}"
        );

        // A role the rules refuse, read from the body in the second piece, refused at authorisation.
        let error = send(request(&|i| (i == 45).then(|| serde_json::json!({ "role": "forbidden" })), &[])).unwrap_err();
        assert!(
            matches!(&error, AppendError::NotAllowed { index: 45, what, .. } if what.contains("forbidden")),
            "{run}: {error:?}"
        );
        assert_eq!(t.ledger.head(TENANT).unwrap().size, before, "{run}: a refused request stored something");

        let receipts = send(request(&|_| None, &[])).unwrap();
        assert_eq!(receipts.len(), LARGE, "{run}");
        assert_eq!(t.ledger.head(TENANT).unwrap().size, before + LARGE as u64, "{run}");
    }
}
