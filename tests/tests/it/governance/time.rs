//! Time: freeze windows in IANA time zones across DST changes, evaluated at the triggering
//! entry's `recordedAt` (set with the manual clock to just inside / just outside a window),
//! the ledger's own retry at `retryAfter`, and approval expiry.
//!
//! The freezes are declared on 2025-03-01 (the scenario's start), so recurring rules are
//! anchored at local midnight of that day.

use serde_json::json;
use testkit::gov::*;

const R: &str = "r1";
const M: &str = "billing";
const V: &str = "1.4.2";

/// Policy without approvals (so only the freeze decides), a freeze, a release with passing
/// evidence, and one evaluation request at `at`: the outcome at that instant.
fn check(freeze: &Event, cases: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (at, expect) in cases {
        let mut scenario = Scenario::new();
        scenario.run([policy(prod_policy(json!({"requiresApproval": false}))), freeze.clone()]);
        scenario.run([intent(R, "prod", &[(M, V)])].into_iter().chain(evidence(R, M, V)));
        let trigger = scenario.must(evaluate(R).at(ns(at)));
        scenario.settle();
        let release = scenario.release(R);
        let got = render(&release);
        if got != *expect {
            failures.push(format!("at {at}:\n    expected {expect}\n    got      {got}"));
        }
        // The evaluation time is the trigger's recordedAt, never the wall clock.
        let decision = release.decision.expect("a decision");
        if (decision.trigger, decision.evaluated_at.as_str()) != (trigger, *at) {
            failures.push(format!("at {at}: decided at seq {} at {}", decision.trigger, decision.evaluated_at));
        }
    }
    assert!(failures.is_empty(), "{}:\n{}", freeze.data, failures.join("\n"));
}

const APPROVED: &str = "Approved risk=10";

#[test]
fn governance_weekend_freeze_in_berlin_across_spring_forward() {
    // Saturday 2025-03-29 00:00 CET = 28 Mar 23:00Z; Sunday 30 Mar 00:00 CET = 29 Mar 23:00Z,
    // and that Sunday has 23 hours, so its 24-hour window ends on Monday 01:00 CEST = 30 Mar
    // 23:00Z. The two windows chain into one.
    let weekend = freeze_recurring("weekend", &["prod"], "FREQ=WEEKLY;BYDAY=SA,SU", 86_400, "Europe/Berlin");
    check(
        &weekend,
        &[
            ("2025-03-28T22:59:59Z", APPROVED),
            ("2025-03-28T23:00:00Z", "Delayed ChangeFreezeActive until 2025-03-30T23:00:00Z risk=10"),
            ("2025-03-29T23:30:00Z", "Delayed ChangeFreezeActive until 2025-03-30T23:00:00Z risk=10"),
            ("2025-03-30T22:59:59Z", "Delayed ChangeFreezeActive until 2025-03-30T23:00:00Z risk=10"),
            ("2025-03-30T23:00:00Z", APPROVED),
            ("2025-07-02T12:00:00Z", APPROVED),
        ],
    );
}

#[test]
fn governance_weekend_freeze_in_berlin_across_fall_back() {
    // Saturday 2025-10-25 00:00 CEST = 24 Oct 22:00Z; Sunday 26 Oct 00:00 CEST = 25 Oct 22:00Z,
    // and that Sunday has 25 hours, so its 24-hour window ends on Sunday 23:00 CET = 26 Oct
    // 22:00Z: the last local hour of the weekend is not frozen (documented in freeze.rs).
    let weekend = freeze_recurring("weekend", &["prod"], "FREQ=WEEKLY;BYDAY=SA,SU", 86_400, "Europe/Berlin");
    check(
        &weekend,
        &[
            ("2025-10-24T21:59:59Z", APPROVED),
            ("2025-10-24T22:00:00Z", "Delayed ChangeFreezeActive until 2025-10-26T22:00:00Z risk=10"),
            ("2025-10-26T21:59:59Z", "Delayed ChangeFreezeActive until 2025-10-26T22:00:00Z risk=10"),
            ("2025-10-26T22:00:00Z", APPROVED),
            ("2025-10-26T22:59:59Z", APPROVED),
        ],
    );
}

#[test]
fn governance_cron_freeze_in_new_york_across_dst() {
    // Saturdays 20:00 local for 12 hours. 2025-03-08 20:00 EST = 9 Mar 01:00Z, ending 13:00Z
    // (09:00 EDT, after the spring-forward); a week later 20:00 EDT = 16 Mar 00:00Z.
    let saturday_night = freeze_cron("saturday-night", &["prod"], "0 20 * * 6", 43_200, "America/New_York");
    check(
        &saturday_night,
        &[
            ("2025-03-09T00:59:59Z", APPROVED),
            ("2025-03-09T01:00:00Z", "Delayed ChangeFreezeActive until 2025-03-09T13:00:00Z risk=10"),
            ("2025-03-09T12:59:59Z", "Delayed ChangeFreezeActive until 2025-03-09T13:00:00Z risk=10"),
            ("2025-03-09T13:00:00Z", APPROVED),
            ("2025-03-15T23:59:59Z", APPROVED),
            ("2025-03-16T00:00:00Z", "Delayed ChangeFreezeActive until 2025-03-16T12:00:00Z risk=10"),
        ],
    );
}

#[test]
fn governance_cron_freeze_in_new_york_in_the_dst_gap_and_fold() {
    // Sunday 02:30 does not exist on 2025-03-09: the fixed-time start happens at the first
    // instant after the gap, 03:00 EDT = 07:00Z. Sunday 01:30 happens twice on 2025-11-02: the
    // window opens once, at the earlier 01:30 EDT = 05:30Z.
    let gap = freeze_cron("gap", &["prod"], "30 2 * * 0", 3_600, "America/New_York");
    check(
        &gap,
        &[
            ("2025-03-09T06:59:59Z", APPROVED),
            ("2025-03-09T07:00:00Z", "Delayed ChangeFreezeActive until 2025-03-09T08:00:00Z risk=10"),
        ],
    );
    let fold = freeze_cron("fold", &["prod"], "30 1 * * 0", 1_800, "America/New_York");
    check(
        &fold,
        &[
            ("2025-11-02T05:29:59Z", APPROVED),
            ("2025-11-02T05:59:59Z", "Delayed ChangeFreezeActive until 2025-11-02T06:00:00Z risk=10"),
            ("2025-11-02T06:30:00Z", APPROVED),
        ],
    );
}

#[test]
fn governance_one_off_freeze_bounds_are_half_open() {
    let window = freeze_oneoff("launch", &["prod"], "2025-04-01T10:00:00+02:00", "2025-04-01T12:00:00+02:00");
    check(
        &window,
        &[
            ("2025-04-01T07:59:59Z", APPROVED),
            ("2025-04-01T08:00:00Z", "Delayed ChangeFreezeActive until 2025-04-01T10:00:00Z risk=10"),
            ("2025-04-01T09:59:59.999999999Z", "Delayed ChangeFreezeActive until 2025-04-01T10:00:00Z risk=10"),
            ("2025-04-01T10:00:00Z", APPROVED),
        ],
    );
}

/// A release delayed by a freeze until `end`: the ledger appends its own evaluation request
/// when the clock reaches `end`, and re-decides.
#[test]
fn governance_ledger_retries_at_retry_after() {
    let end = START_NS + 2 * HOUR;
    let mut scenario = Scenario::new();
    scenario.run([
        policy(prod_policy(json!({"requiresApproval": false}))),
        freeze_oneoff("maintenance", &["prod"], &rfc3339(START_NS), &rfc3339(end)),
        intent(R, "prod", &[(M, V)]),
    ]);
    scenario.run(evidence(R, M, V));
    let delayed_at = scenario.must(evaluate(R).at(START_NS + HOUR));
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Delayed ChangeFreezeActive until 2025-03-01T02:00:00Z risk=10");
    let summary = scenario.summary(R);
    assert_eq!(
        (summary.status.as_str(), summary.retry_after.as_deref(), summary.reasons[0].code.as_str()),
        ("Delayed", Some("2025-03-01T02:00:00Z"), "ChangeFreezeActive")
    );
    let last = summary.last_decision.expect("a decision");
    assert_eq!((last.event_type.as_str(), last.trigger), ("ReleaseDelayed", delayed_at));
    assert!(last.seq.is_some_and(|seq| seq > delayed_at), "the decision is in the log: {last:?}");
    let retry_id = format!("retry:{R}:{delayed_at}");
    // Before retryAfter the retry is owed, not appended.
    scenario.clock.set(end - 1);
    scenario.settle();
    let end_i64 = i64::try_from(end).unwrap();
    assert_eq!(scenario.owed(), vec![(retry_id.clone(), Some(end_i64))]);
    assert!(scenario.ledger.entry_by_event_id(TENANT, &retry_id).unwrap().is_none());

    scenario.clock.set(end);
    scenario.settle();
    let entry = scenario.ledger.entry_by_event_id(TENANT, &retry_id).unwrap().expect("the ledger's retry");
    let body = body_of(&entry).unwrap();
    assert_eq!(body["type"], "ReleaseEvaluationRequested");
    assert_eq!(body["actor"]["agentId"], "release-ledger");
    assert_eq!(body["occurredAt"], "2025-03-01T02:00:00Z");
    let signer = &entry.envelope().unwrap().signatures[0].keyid;
    assert_eq!(*signer, scenario.ledger.ledger_key().key_id().to_hex(), "signed by the ledger key");
    assert_eq!(entry.recorded_at, end);
    // The retry triggered a new decision at its recordedAt: the window is half-open.
    let release = scenario.release(R);
    assert_eq!(render(&release), "Approved risk=10");
    let decision = release.decision.unwrap();
    assert_eq!((decision.trigger, decision.evaluated_at.as_str()), (entry.seq, "2025-03-01T02:00:00Z"));
    assert!(scenario.owed().is_empty(), "{:?}", scenario.owed());
    assert_eq!(scenario.state(), scenario.fold(None));
}

/// A delayed release deployed anyway (no longer evaluated): its retry still comes, and once it
/// is in the log nothing is owed any more.
#[test]
fn governance_retry_of_a_release_no_longer_evaluated_is_not_owed_forever() {
    let end = START_NS + 2 * HOUR;
    let mut scenario = Scenario::new();
    scenario.run([
        policy(prod_policy(json!({"requiresApproval": false}))),
        freeze_oneoff("maintenance", &["prod"], &rfc3339(START_NS), &rfc3339(end)),
        intent(R, "prod", &[(M, V)]),
    ]);
    scenario.run(evidence(R, M, V));
    scenario.run([evaluate(R), deploy_started(R, "prod")]);
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Delayed ChangeFreezeActive until 2025-03-01T02:00:00Z risk=10");
    scenario.clock.set(end + SEC);
    assert!(scenario.try_settle(std::time::Duration::from_secs(5)), "still owed: {:?}", scenario.owed());
    assert!(scenario.owed().is_empty(), "{:?}", scenario.owed());
    assert_eq!(scenario.state(), scenario.fold(None));
}

/// Release ids may contain `:`. A new decision for `web` cancels `web`'s pending retry, and
/// only `web`'s: `web:canary`'s retry (`retry:web:canary:<seq>`) still comes.
#[test]
fn governance_retries_of_releases_whose_ids_share_a_prefix_are_kept_apart() {
    let end = START_NS + 2 * HOUR;
    let mut scenario = Scenario::new();
    scenario.run([
        policy(prod_policy(json!({"requiresApproval": false}))),
        freeze_oneoff("maintenance", &["prod"], &rfc3339(START_NS), &rfc3339(end)),
    ]);
    for release in ["web:canary", "web"] {
        scenario.run([intent(release, "prod", &[(M, V)])].into_iter().chain(evidence(release, M, V)));
        scenario.must(evaluate(release));
    }
    // A new decision for `web` (a stray signal rejects it).
    scenario.must(tests_passed("web", M, "0.0.1"));
    scenario.settle();
    assert_eq!(scenario.outcome("web:canary"), "Delayed ChangeFreezeActive until 2025-03-01T02:00:00Z risk=10");
    assert_eq!(scenario.outcome("web"), "Rejected TraceMismatch(billing) ChangeFreezeActive final risk=10");
    scenario.clock.set(end);
    scenario.settle();
    assert_eq!(scenario.outcome("web:canary"), "Approved risk=10");
}

#[test]
fn governance_approval_expires_after_its_ttl() {
    let approved_at = START_NS + HOUR;
    for (evaluated_at, expect) in [
        (approved_at + 3_600 * SEC, "Approved risk=10"),
        (approved_at + 3_601 * SEC, "Delayed ApprovalPending | ApprovalExpired risk=10"),
    ] {
        let mut scenario = Scenario::new();
        scenario.run([policy(prod_policy(json!({}))), intent(R, "prod", &[(M, V)])]);
        scenario.run(evidence(R, M, V));
        scenario.run([approve(R, "QA").at(approved_at), evaluate(R).at(evaluated_at)]);
        scenario.settle();
        let release = scenario.release(R);
        assert_eq!(render(&release), expect);
        assert_eq!(release.decision.unwrap().evaluated_at, rfc3339(evaluated_at));
    }
    // Without approvalTtlSeconds the default is seven days.
    let mut scenario = Scenario::new();
    let mut doc = prod_policy(json!({}));
    doc["environments"]["prod"].as_object_mut().unwrap().remove("approvalTtlSeconds");
    scenario.run([policy(doc), intent(R, "prod", &[(M, V)])]);
    scenario.run(evidence(R, M, V));
    scenario.run([approve(R, "QA"), evaluate(R).after(7 * DAY)]);
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Approved risk=10");
    scenario.must(evaluate(R).after(SEC));
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Delayed ApprovalPending | ApprovalExpired risk=10");
}
