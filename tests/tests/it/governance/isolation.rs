//! Governance is per tenant: a policy, a freeze or a key revocation in one tenant changes no
//! decision in another. One ledger and one worker serve both tenants, as in production; the
//! other tenant's outcome is compared with the same events run in a ledger of its own.

use serde_json::json;
use testkit::gov::*;

const R: &str = "r1";
const M: &str = "billing";
const V: &str = "1.4.2";
const OTHER: &str = "other-clinic";

/// The passing release of the gate table: policy, intent, evidence, evaluation, a QA approval.
fn passing_release() -> Vec<Event> {
    let mut events = vec![policy(prod_policy(json!({}))), intent(R, "prod", &[(M, V)])];
    events.extend(evidence(R, M, V));
    events.push(evaluate(R));
    events.push(approve(R, "QA"));
    events
}

/// What would stop any release of a tenant: a freeze over every environment, now; a policy
/// that tolerates no CVE at all and wants a CTO; the default QA approver's key revoked.
fn disruptions() -> Vec<Event> {
    vec![
        freeze_oneoff("everything", &[], "2025-02-28T00:00:00Z", "2025-03-02T00:00:00Z"),
        policy({
            let mut doc = prod_policy(json!({"maxCVESeverity": "None"}));
            doc["version"] = 2.into();
            doc
        }),
        revoke_key(QA_LEAD),
    ]
}

#[test]
fn a_policy_a_freeze_and_a_revocation_in_one_tenant_leave_another_tenants_decisions_alone() {
    // The other tenant alone: its outcome.
    let mut alone = Scenario::new();
    alone.use_tenant(OTHER);
    alone.run(passing_release());
    alone.settle();
    let expected = alone.outcome(R);
    assert!(expected.starts_with("Approved"), "the control release is not approved: {expected}");

    // Beside a tenant whose policy, freezes and keys stop everything.
    let mut shared = Scenario::new();
    shared.run([policy(prod_policy(json!({})))]);
    shared.run(disruptions());
    shared.run([intent(R, "prod", &[(M, V)])]);
    shared.run(evidence(R, M, V));
    shared.run([evaluate(R)]);
    shared.settle();
    let disrupted = shared.outcome(R);
    assert!(!disrupted.starts_with("Approved"), "the disruptions changed nothing in their own tenant: {disrupted}");

    shared.use_tenant(OTHER);
    shared.run(passing_release());
    shared.settle();
    assert_eq!(shared.outcome(R), expected, "the other tenant's decision depends on this tenant's configuration");
    let (live, fresh) = (shared.state(), shared.fold(None));
    assert!(live == fresh, "{:#?}", diff(&live, &fresh));

    // And the first tenant still sees only its own: its release is as it was.
    shared.use_tenant(TENANT);
    assert_eq!(shared.outcome(R), disrupted);
}
