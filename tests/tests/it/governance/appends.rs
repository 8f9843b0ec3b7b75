//! Refused governance appends store nothing: an unknown type or bad `data` is
//! `INVALID_ARGUMENT`, an approval in a role the key does not hold, an override without
//! `StudioAdmin` and a decision not signed by the ledger key are `PERMISSION_DENIED`; the
//! tenant's size and the governance state do not change.

use ledger::ErrorKind;
use serde_json::json;
use testkit::gov::*;

const R: &str = "r1";
const M: &str = "billing";
const V: &str = "1.4.2";

/// Appends each event to a ledger holding a release waiting for approval and checks the
/// refusal's kind, that nothing was stored, and that the worker's state did not move.
fn check(cases: Vec<(&str, Event, ErrorKind)>) {
    let mut scenario = Scenario::new();
    scenario.run([policy(prod_policy(json!({}))), intent(R, "prod", &[(M, V)])]);
    scenario.run(evidence(R, M, V));
    scenario.must(evaluate(R));
    scenario.settle();
    assert_eq!(scenario.outcome(R), "Delayed ApprovalPending risk=10");
    let (size, state) = (scenario.size(), scenario.state());
    let mut failures = Vec::new();
    for (name, event, kind) in cases {
        match scenario.append(event) {
            Ok(receipt) => failures.push(format!("{name}: accepted at seq {}", receipt.seq)),
            Err(error) if error.kind() != kind => {
                failures.push(format!("{name}: {:?} instead of {kind:?}: {error}", error.kind()));
            }
            Err(_) => {}
        }
        if scenario.size() != size {
            failures.push(format!("{name}: the tenant grew to {}", scenario.size()));
            break;
        }
    }
    scenario.settle();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(scenario.state(), state, "a refused append changed the governance state");
    assert_eq!(scenario.outcome(R), "Delayed ApprovalPending risk=10");
}

#[test]
fn governance_bad_events_are_invalid_arguments() {
    use ErrorKind::InvalidArgument as Invalid;
    check(vec![
        ("unknown type", raw("ReleaseTeleported", Some(R), json!({})), Invalid),
        ("signal without releaseId", raw("TestsPassed", None, tests_passed(R, M, V).data), Invalid),
        ("TestsPassed with failures", tests_passed(R, M, V).with("failed", 2), Invalid),
        ("TestsFailed without failures", tests_failed(R, M, V).with("failed", 0), Invalid),
        ("misspelt field", tests_passed(R, M, V).with("sutie", "unit"), Invalid),
        (
            "missing field",
            raw("TestsPassed", Some(R), json!({"module": M, "suite": "unit", "passed": 1, "failed": 0})),
            Invalid,
        ),
        ("coverage above 100", coverage(R, M, V, 100.5), Invalid),
        ("unknown CVE severity", security_cve(R, M, V, "Apocalyptic"), Invalid),
        ("scan status not Passed/Failed", security(R, M, V).with("status", "Maybe"), Invalid),
        ("intent without modules", intent(R, "prod", &[]), Invalid),
        ("intent listing a module twice", intent(R, "prod", &[(M, V), (M, "1.4.3")]), Invalid),
        ("approval by fax", approve(R, "QA").with("method", "Fax"), Invalid),
        ("approval role not PascalCase", approve(R, "QA").with("role", "qa"), Invalid),
        ("override without justification", override_freeze(R, "f").with("justification", " "), Invalid),
        ("policy version 0", policy(json!({"version": 0, "environments": {}})), Invalid),
        ("policy threshold without roles", policy(prod_policy(json!({"riskThreshold": 50}))), Invalid),
        ("policy with an unknown field", policy(prod_policy(json!({"minAprovers": 2}))), Invalid),
        (
            "freeze in an unknown time zone",
            freeze_recurring("f", &[], "FREQ=WEEKLY;BYDAY=SA", 3600, "Mars/Olympus"),
            Invalid,
        ),
        ("freeze every second", freeze_recurring("f", &[], "FREQ=SECONDLY", 3600, "UTC"), Invalid),
        (
            "freeze ending before it starts",
            freeze_oneoff("f", &[], "2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z"),
            Invalid,
        ),
        (
            "freeze with from, to and a recurrence",
            freeze_oneoff("f", &[], "2025-03-01T00:00:00Z", "2025-03-02T00:00:00Z")
                .with("recurrence", json!({"cron": "0 0 * * *", "durationSeconds": 60, "timeZone": "UTC"})),
            Invalid,
        ),
        ("deployment to a bad environment name", deploy_started(R, "pr od"), Invalid),
        ("decision whose status is not its type", forged_decision(R, "Approved").with("status", "Rejected"), Invalid),
    ]);
}

#[test]
fn governance_unauthorised_events_are_permission_denied() {
    use ErrorKind::PermissionDenied as Denied;
    check(vec![
        ("approval in a role the key does not hold", approve(R, "ReleaseManager").by(QA_LEAD), Denied),
        ("rejection in a role the key does not hold", reject(R, "QA", "no").by(RELEASE_MANAGER), Denied),
        ("approval by a key with no roles", approve(R, "QA").by(CI), Denied),
        ("approval signed by the admin key", approve(R, "QA").by(ADMIN), Denied),
        ("override without StudioAdmin", override_freeze(R, "f").by(QA_LEAD), Denied),
        ("override signed by the admin key", override_freeze(R, "f").by(ADMIN), Denied),
        ("ReleasePlanned signed by an agent", forged_decision(R, "Planned"), Denied),
        ("ReleaseApproved signed by an agent", forged_decision(R, "Approved"), Denied),
        ("ReleaseDelayed signed by an agent", forged_decision(R, "Delayed"), Denied),
        ("ReleaseRejected signed by an agent", forged_decision(R, "Rejected"), Denied),
        ("ReleasePublished signed by an agent", forged_decision(R, "Published"), Denied),
        ("ReleaseApproved signed by a StudioAdmin", forged_decision(R, "Approved").by(STUDIO_ADMIN), Denied),
        ("ReleaseApproved signed by the admin key", forged_decision(R, "Approved").by(ADMIN), Denied),
        // The ledger's own event ids are derived from the release and the trigger's seq, which
        // anyone can predict: an agent taking one first would block that decision for good.
        ("an agent taking a decision's event id", tests_passed(R, M, V).id("decision:r1:20"), Denied),
        ("an agent taking a retry's event id", evaluate(R).id("retry:r1:20"), Denied),
    ]);
}

/// A decision record larger than the ledger accepts (here: twenty 4 KB violation details
/// quoted in its reasons) used to be refused on every pass, and the worker stopped at it, so
/// no other decision of the tenant was appended again. Now the fold replaces it with a small
/// fail-closed rejection.
#[test]
fn governance_an_oversized_decision_does_not_halt_the_tenant() {
    let mut scenario = Scenario::new();
    scenario.run([policy(prod_policy(json!({}))), intent("big", "prod", &[(M, V)]), evaluate("big")]);
    for i in 0..20 {
        scenario.must(violation("big", None, &format!("rule-{i}")).with("detail", "x".repeat(4000)));
    }
    scenario.run([intent(R, "prod", &[(M, V)])].into_iter().chain(evidence(R, M, V)));
    let trigger = scenario.must(evaluate(R));
    assert!(scenario.try_settle(std::time::Duration::from_secs(10)), "still owed: {:?}", scenario.owed());
    let decision = scenario.ledger.entry_by_event_id(TENANT, &format!("decision:{R}:{trigger}")).unwrap();
    assert!(decision.is_some(), "r1's decision was not appended");
    assert_eq!(scenario.outcome(R), "Delayed ApprovalPending risk=10");
    assert_eq!(scenario.outcome("big"), "Rejected EvaluationError retryable risk=35");
    assert_eq!(scenario.state(), scenario.fold(None));
}
