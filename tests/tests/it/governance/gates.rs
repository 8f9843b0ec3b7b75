//! The gate table of DESIGN §4, row by row, both outcomes, as data: each row is the events
//! appended to a fresh ledger and the one-line outcome (`testkit::gov::render`) of release
//! `r1` once the worker settled.
//!
//! Baseline (`prod_policy(json!({}))`): `QA` approves, one distinct key; tests, coverage
//! (>= 80 %) and a scan required; CVE up to `Medium`; signed image and SBOM required; one-hour
//! approvals; separation of duties; freeze-sensitive. The baseline release ships
//! `billing@1.4.2` with passing tests, 92 % coverage and a clean scan; its risk is 10 (a first
//! release: the design's "below 25").

use serde_json::{json, Value};
use testkit::gov::*;

const R: &str = "r1";
const M: &str = "billing";
const V: &str = "1.4.2";

/// Frozen over `prod` from before the scenario's start until 2025-03-02.
const FREEZE_END: &str = "2025-03-02T00:00:00Z";

struct Row {
    name: &'static str,
    events: Vec<Event>,
    expect: &'static str,
}

fn row(name: &'static str, events: Vec<Event>, expect: &'static str) -> Row {
    Row { name, events, expect }
}

/// Runs every row on a fresh ledger and compares outcomes; also checks that the worker's
/// state equals a fold from scratch. Reports every mismatch at once.
fn check(rows: Vec<Row>) {
    let mut failures = Vec::new();
    for row in rows {
        let mut scenario = Scenario::new();
        scenario.run(row.events);
        scenario.settle();
        let got = scenario.outcome(R);
        if got != row.expect {
            failures.push(format!("{}:\n    expected {}\n    got      {}", row.name, row.expect, got));
        }
        let (live, fresh) = (scenario.state(), scenario.fold(None));
        if live != fresh {
            failures.push(format!("{}: the live state differs from a fold: {:?}", row.name, diff(&live, &fresh)));
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
}

fn rules(patch: Value) -> Event {
    rules_version(1, patch)
}

fn rules_version(version: u64, patch: Value) -> Event {
    let mut doc = prod_policy(patch);
    doc["version"] = version.into();
    policy(doc)
}

/// Policy, intent, `evidence`, an evaluation request, then `then`.
fn release(patch: Value, evidence: Vec<Event>, then: Vec<Event>) -> Vec<Event> {
    let mut events = vec![rules(patch), intent(R, "prod", &[(M, V)])];
    events.extend(evidence);
    events.push(evaluate(R));
    events.extend(then);
    events
}

/// [`release`] with the standard passing evidence.
fn passing(patch: Value, then: Vec<Event>) -> Vec<Event> {
    release(patch, evidence(R, M, V), then)
}

fn approved() -> Vec<Event> {
    vec![approve(R, "QA")]
}

fn frozen(environments: &[&str]) -> Event {
    freeze_oneoff("spring-freeze", environments, "2025-02-28T00:00:00Z", FREEZE_END)
}

#[test]
fn governance_qa_signals() {
    check(vec![
        row("all gates pass", passing(json!({}), approved()), "Approved risk=10"),
        row(
            "tests missing",
            release(json!({}), vec![coverage(R, M, V, 92.0), security(R, M, V)], approved()),
            "Rejected TestsIncomplete(billing) retryable risk=10",
        ),
        row(
            "tests failed",
            release(json!({}), vec![tests_failed(R, M, V), coverage(R, M, V, 92.0), security(R, M, V)], approved()),
            "Rejected TestsIncomplete(billing) retryable risk=20",
        ),
        row(
            "a failed suite that passes on a rerun passes (the failure still counts as risk)",
            release(
                json!({}),
                vec![tests_failed(R, M, V), tests_passed(R, M, V), coverage(R, M, V, 92.0), security(R, M, V)],
                approved(),
            ),
            "Approved risk=20",
        ),
        row(
            "coverage missing",
            release(json!({}), vec![tests_passed(R, M, V), security(R, M, V)], approved()),
            "Rejected TestsIncomplete(billing) retryable risk=25",
        ),
        row(
            "coverage below the minimum",
            release(json!({}), vec![tests_passed(R, M, V), coverage(R, M, V, 79.9), security(R, M, V)], approved()),
            "Rejected TestsIncomplete(billing) retryable risk=20",
        ),
        row(
            "coverage at the minimum",
            release(json!({}), vec![tests_passed(R, M, V), coverage(R, M, V, 80.0), security(R, M, V)], approved()),
            "Approved risk=20",
        ),
        row(
            "BDD required and missing",
            passing(
                json!({"requiredSignals": ["TestsPassed", "CoverageVerified", "SecurityGateStatus", "BDDValidated"]}),
                approved(),
            ),
            "Rejected TestsIncomplete(billing) retryable risk=10",
        ),
        row(
            "BDD required and present",
            passing(
                json!({"requiredSignals": ["TestsPassed", "CoverageVerified", "SecurityGateStatus", "BDDValidated"]}),
                vec![bdd(R, M, V), approve(R, "QA")],
            ),
            "Approved risk=10",
        ),
        row(
            "scan missing",
            release(json!({}), vec![tests_passed(R, M, V), coverage(R, M, V, 92.0)], approved()),
            "Rejected TestsIncomplete(billing) retryable risk=20",
        ),
        row(
            "a missing signal arrives later: the release passes",
            release(
                json!({}),
                vec![coverage(R, M, V, 92.0), security(R, M, V)],
                vec![approve(R, "QA"), tests_passed(R, M, V)],
            ),
            "Approved risk=10",
        ),
        row(
            "every module of the release is gated",
            vec![
                rules(json!({})),
                intent(R, "prod", &[(M, V), ("payments", "2.0.0")]),
                tests_passed(R, M, V),
                coverage(R, M, V, 92.0),
                security(R, M, V),
                tests_passed(R, "payments", "2.0.0"),
                security(R, "payments", "2.0.0"),
                evaluate(R),
                approve(R, "QA"),
            ],
            "Rejected TestsIncomplete(payments) retryable risk=28",
        ),
    ]);
}

#[test]
fn governance_security_gate() {
    check(vec![
        row(
            "scan failed",
            passing(json!({}), vec![security(R, M, V).with("status", "Failed"), approve(R, "QA")]),
            "Rejected SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "CVE above the maximum",
            passing(json!({}), vec![security_cve(R, M, V, "High"), approve(R, "QA")]),
            "Rejected SecurityGateFailed(billing) final risk=30",
        ),
        row(
            "CVE at the maximum",
            passing(json!({}), vec![security_cve(R, M, V, "Medium"), approve(R, "QA")]),
            "Approved risk=20",
        ),
        row(
            "unsigned image where required",
            passing(json!({}), vec![security(R, M, V).with("imageSigned", false), approve(R, "QA")]),
            "Rejected SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "unsigned image where not required",
            passing(
                json!({"requireSignedImages": false}),
                vec![security(R, M, V).with("imageSigned", false), approve(R, "QA")],
            ),
            "Approved risk=10",
        ),
        row(
            "SBOM missing where required",
            passing(json!({}), vec![security(R, M, V).with("sbomPresent", false), approve(R, "QA")]),
            "Rejected SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "SBOM missing where not required",
            passing(
                json!({"requireSbom": false}),
                vec![security(R, M, V).with("sbomPresent", false), approve(R, "QA")],
            ),
            "Approved risk=10",
        ),
        row(
            "licences not compliant where required",
            passing(
                json!({"requireLicenseCompliance": true}),
                vec![security(R, M, V).with("licenseCompliant", false), approve(R, "QA")],
            ),
            "Rejected SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "every failure of one scan is a reason",
            passing(
                json!({}),
                vec![security(R, M, V).with("imageSigned", false).with("sbomPresent", false), approve(R, "QA")],
            ),
            "Rejected SecurityGateFailed(billing) SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "a failing scan fails even when scans are not required",
            passing(
                json!({"requiredSignals": ["TestsPassed"], "requireSignedImages": false, "requireSbom": false}),
                vec![security(R, M, V).with("status", "Failed"), approve(R, "QA")],
            ),
            "Rejected SecurityGateFailed(billing) final risk=10",
        ),
        row(
            "the latest scan decides",
            passing(json!({}), vec![security(R, M, V).with("status", "Failed"), security(R, M, V), approve(R, "QA")]),
            "Approved risk=10",
        ),
    ]);
}

#[test]
fn governance_trace_and_compliance() {
    check(vec![
        row(
            "signal for a version not shipped",
            passing(json!({}), vec![tests_passed(R, M, "1.4.1"), approve(R, "QA")]),
            "Rejected TraceMismatch(billing) final risk=10",
        ),
        row(
            "signal for a module not shipped",
            passing(json!({}), vec![security(R, "payments", "2.0.0"), approve(R, "QA")]),
            "Rejected TraceMismatch(payments) final risk=10",
        ),
        row(
            "stray signal withdrawn",
            passing(
                json!({}),
                vec![tests_passed(R, M, "1.4.1").label("stray"), approve(R, "QA"), invalidate(R, "stray")],
            ),
            "Approved risk=10",
        ),
        row(
            "policy violation",
            passing(json!({}), vec![violation(R, Some(M), "license-policy"), approve(R, "QA")]),
            "Rejected ComplianceViolation(billing) final risk=10",
        ),
        row(
            "policy violation withdrawn",
            passing(
                json!({}),
                vec![
                    violation(R, Some(M), "license-policy").label("violation"),
                    approve(R, "QA"),
                    invalidate(R, "violation"),
                ],
            ),
            "Approved risk=10",
        ),
        row(
            "evidence is withdrawn only by an invalidation of the same release",
            passing(
                json!({}),
                vec![
                    violation(R, None, "license-policy").label("violation"),
                    approve(R, "QA"),
                    invalidate("r2", "violation"),
                ],
            ),
            "Rejected ComplianceViolation final risk=10",
        ),
        row(
            "the intent withdrawn: nothing left to approve (fail closed)",
            [
                vec![rules(json!({})), intent(R, "prod", &[(M, V)]).label("intent")],
                evidence(R, M, V),
                vec![evaluate(R), approve(R, "QA"), invalidate(R, "intent")],
            ]
            .concat(),
            "Rejected IntentMissing retryable risk=0",
        ),
        row(
            "withdrawn evidence no longer counts",
            passing(json!({}), vec![approve(R, "QA"), tests_passed(R, M, V).label("tests"), invalidate(R, "tests")]),
            // The first TestsPassed (unlabelled) still stands.
            "Approved risk=10",
        ),
        row(
            "withdrawing the only test result rejects",
            release(
                json!({}),
                vec![tests_passed(R, M, V).label("tests"), coverage(R, M, V, 92.0), security(R, M, V)],
                vec![approve(R, "QA"), invalidate(R, "tests")],
            ),
            "Rejected TestsIncomplete(billing) retryable risk=10",
        ),
    ]);
}

#[test]
fn governance_change_freezes() {
    check(vec![
        row(
            "freeze over the environment",
            [vec![frozen(&["prod"])], passing(json!({}), approved())].concat(),
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "freeze over every environment",
            [vec![frozen(&[])], passing(json!({}), approved())].concat(),
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "freeze over another environment",
            [vec![frozen(&["staging"])], passing(json!({}), approved())].concat(),
            "Approved risk=10",
        ),
        row(
            "freeze and approval pending: delayed for both",
            [vec![frozen(&["prod"])], passing(json!({}), vec![])].concat(),
            "Delayed ChangeFreezeActive ApprovalPending until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "freeze declared after approval",
            [passing(json!({}), approved()), vec![frozen(&["prod"])]].concat(),
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "freeze lifted",
            [vec![frozen(&["prod"])], passing(json!({}), approved()), vec![lift("spring-freeze")]].concat(),
            "Approved risk=10",
        ),
        row(
            "freeze overridden by a StudioAdmin",
            [vec![frozen(&["prod"])], passing(json!({}), vec![approve(R, "QA"), override_freeze(R, "spring-freeze")])]
                .concat(),
            "Approved | FreezeOverridden risk=25",
        ),
        row(
            "an override of another freeze does not count",
            [vec![frozen(&["prod"])], passing(json!({}), vec![approve(R, "QA"), override_freeze(R, "other-freeze")])]
                .concat(),
            // Same outcome, so no new decision: the risk shown is the last decision's.
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "an override whose key was revoked does not count",
            [
                vec![frozen(&["prod"])],
                passing(json!({}), vec![approve(R, "QA"), override_freeze(R, "spring-freeze")]),
                vec![revoke_key(STUDIO_ADMIN)],
            ]
            .concat(),
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=25",
        ),
        row(
            "an override withdrawn does not count",
            [
                vec![frozen(&["prod"])],
                passing(
                    json!({}),
                    vec![
                        approve(R, "QA"),
                        override_freeze(R, "spring-freeze").label("override"),
                        invalidate(R, "override"),
                    ],
                ),
            ]
            .concat(),
            "Delayed ChangeFreezeActive until 2025-03-02T00:00:00Z risk=10",
        ),
        row(
            "environment not freeze-sensitive",
            [vec![frozen(&["prod"])], passing(json!({"freezeSensitive": false}), approved())].concat(),
            "Approved risk=10",
        ),
    ]);
}

#[test]
fn governance_approvals() {
    let two_roles = json!({"roles": ["QA", "ReleaseManager"]});
    check(vec![
        row("approval pending", passing(json!({}), vec![]), "Delayed ApprovalPending risk=10"),
        row(
            "required role rejected",
            passing(json!({}), vec![reject(R, "QA", "flaky login flow")]),
            "Rejected ApprovalRejected final risk=10",
        ),
        row(
            "a rejection by one QA key outweighs an approval by another",
            passing(json!({}), vec![approve(R, "QA"), reject(R, "QA", "flaky login flow").by(QA_SECOND)]),
            "Rejected ApprovalRejected final risk=10",
        ),
        row(
            "the latest word of a key decides",
            passing(json!({}), vec![reject(R, "QA", "flaky login flow"), approve(R, "QA")]),
            "Approved risk=10",
        ),
        row(
            "a rejection by a role that is not required does not count",
            passing(json!({}), vec![approve(R, "QA"), reject(R, "ReleaseManager", "not my call")]),
            "Approved | ApprovalRoleNotRequired risk=10",
        ),
        row(
            "approval older than approvalTtl",
            passing(json!({}), vec![approve(R, "QA"), evaluate(R).after(3601 * SEC)]),
            "Delayed ApprovalPending | ApprovalExpired risk=10",
        ),
        row(
            "approval exactly approvalTtl old still counts",
            passing(json!({}), vec![approve(R, "QA"), evaluate(R).after(3600 * SEC)]),
            "Approved risk=10",
        ),
        row(
            "approvals never expire with approvalTtlSeconds null",
            passing(json!({"approvalTtlSeconds": null}), vec![approve(R, "QA"), evaluate(R).after(30 * DAY)]),
            "Approved risk=10",
        ),
        row(
            "approval by a role that is not required",
            passing(json!({}), vec![approve(R, "ReleaseManager")]),
            "Delayed ApprovalPending | ApprovalRoleNotRequired risk=10",
        ),
        row(
            "approval by the intent's author",
            vec![
                rules(json!({})),
                intent(R, "prod", &[(M, V)]).by(DEV),
                tests_passed(R, M, V),
                coverage(R, M, V, 92.0),
                security(R, M, V),
                evaluate(R),
                approve(R, "QA").by(DEV),
            ],
            "Delayed ApprovalPending | SelfApproval risk=10",
        ),
        row(
            "approval by the intent's author without separation of duties",
            vec![
                rules(json!({"separationOfDuties": false})),
                intent(R, "prod", &[(M, V)]).by(DEV),
                tests_passed(R, M, V),
                coverage(R, M, V, 92.0),
                security(R, M, V),
                evaluate(R),
                approve(R, "QA").by(DEV),
            ],
            "Approved risk=10",
        ),
        row(
            "minApprovers counts keys: one key approving twice counts once",
            passing(json!({"minApprovers": 2}), vec![approve(R, "QA"), approve(R, "QA")]),
            "Delayed ApprovalPending risk=10",
        ),
        row(
            "minApprovers met by two keys",
            passing(json!({"minApprovers": 2}), vec![approve(R, "QA"), approve(R, "QA").by(QA_SECOND)]),
            "Approved risk=10",
        ),
        row(
            "one key approving in two roles is one approver",
            passing(
                json!({"roles": ["QA", "ReleaseManager"], "minApprovers": 2}),
                vec![approve(R, "QA").by(QA_MANAGER), approve(R, "ReleaseManager").by(QA_MANAGER)],
            ),
            "Delayed ApprovalPending risk=10",
        ),
        row(
            "every listed role must approve",
            passing(two_roles.clone(), vec![approve(R, "QA")]),
            "Delayed ApprovalPending risk=10",
        ),
        row(
            "every listed role approved",
            passing(two_roles, vec![approve(R, "QA"), approve(R, "ReleaseManager")]),
            "Approved risk=10",
        ),
        row("approval not required", passing(json!({"requiresApproval": false}), vec![]), "Approved risk=10"),
        row(
            "the intent can ask for approval the policy does not require",
            release(json!({"requiresApproval": false}), evidence(R, M, V), vec![])
                .into_iter()
                .map(|e| if e.event_type == "ReleaseIntentDeclared" { e.with("requiresApproval", true) } else { e })
                .collect(),
            "Delayed ApprovalPending risk=10",
        ),
        row(
            "an approver whose key is revoked no longer counts",
            passing(json!({}), vec![approve(R, "QA"), revoke_key(QA_LEAD)]),
            "Delayed ApprovalPending | ApproverRevoked risk=10",
        ),
        row(
            "a policy tightened after approval re-evaluates",
            passing(json!({}), vec![approve(R, "QA"), rules_version(2, json!({"minApprovers": 2}))]),
            "Delayed ApprovalPending risk=10",
        ),
    ]);
}

#[test]
fn governance_risk() {
    // A previous release of billing to prod failed and was rolled back within 24 h: two
    // recent failures (25 each) and a first release (10) score 60.
    let history = || {
        vec![
            intent("r0", "prod", &[(M, "1.4.1")]),
            deploy_failed("r0", "prod", "health check failed"),
            rollback("r0", "prod", "error rate"),
        ]
    };
    let risky = json!({"riskThreshold": 60, "highRiskRoles": ["CTO"]});
    check(vec![
        row(
            "risk at the threshold requires the high-risk roles",
            [history(), passing(risky.clone(), approved())].concat(),
            "Delayed ApprovalPending | HighRisk risk=60",
        ),
        row(
            "risk at the threshold, high-risk role approved",
            [history(), passing(risky, vec![approve(R, "QA"), approve(R, "CTO")])].concat(),
            "Approved | HighRisk risk=60",
        ),
        row(
            "risk below the threshold",
            [history(), passing(json!({"riskThreshold": 61, "highRiskRoles": ["CTO"]}), approved())].concat(),
            "Approved risk=60",
        ),
        row(
            "failures older than 24 hours do not count",
            [history(), passing(json!({"riskThreshold": 60, "highRiskRoles": ["CTO"]}), approved())]
                .concat()
                .into_iter()
                .map(|e| if e.event_type == "PolicyUpdated" { e.after(DAY + SEC) } else { e })
                .collect(),
            "Approved risk=10",
        ),
    ]);
}

#[test]
fn governance_publish_and_fail_closed() {
    check(vec![
        row(
            "approved, then deployed: published",
            passing(json!({}), vec![approve(R, "QA"), deploy_started(R, "prod"), deploy_completed(R, "prod")]),
            "Published risk=10",
        ),
        row(
            "deployed without approval: not published",
            passing(json!({}), vec![deploy_started(R, "prod"), deploy_completed(R, "prod")]),
            "Delayed ApprovalPending risk=10",
        ),
        row(
            "deployed to another environment: not published",
            passing(json!({}), vec![approve(R, "QA"), deploy_started(R, "staging"), deploy_completed(R, "staging")]),
            "Approved risk=10",
        ),
        row(
            "deployment failed",
            passing(json!({}), vec![approve(R, "QA"), deploy_started(R, "prod"), deploy_failed(R, "prod", "probe")]),
            "Failed risk=10",
        ),
        row(
            "no policy: rejected (fail closed)",
            passing(json!({}), approved()).into_iter().skip(1).collect(),
            "Rejected PolicyMissing retryable risk=0",
        ),
        row(
            "no rules for the environment: rejected (fail closed)",
            vec![
                rules(json!({})),
                intent(R, "staging", &[(M, V)]),
                tests_passed(R, M, V),
                coverage(R, M, V, 92.0),
                security(R, M, V),
                evaluate(R),
                approve(R, "QA"),
            ],
            "Rejected PolicyMissing retryable risk=0",
        ),
        row(
            "evaluation without intent",
            vec![rules(json!({})), evaluate(R)],
            "Rejected IntentMissing retryable risk=0",
        ),
        row(
            "a policy published later lets the release pass",
            [passing(json!({}), approved()).into_iter().skip(1).collect(), vec![rules(json!({}))]].concat(),
            "Approved risk=10",
        ),
    ]);
}

/// The evidence cap (`projections::state::MAX_EVIDENCE`): past it a release is no longer
/// evaluated but rejected, though every gate would pass and its approval comes after (fail
/// closed, ARCHITECTURE.md). The same release without the flood is approved (the first row of
/// `governance_publish_and_fail_closed`).
///
/// Checked by breaking it: with the cap's check in `Fold::apply` disabled the release is
/// `Approved risk=10`.
#[test]
fn governance_more_evidence_than_the_cap_is_a_rejection() {
    let mut scenario = Scenario::new();
    scenario.run(release(json!({}), evidence(R, M, V), vec![]));
    let flood = (0..projections::state::MAX_EVIDENCE).map(|_| tests_passed(R, M, V)).collect();
    scenario.run_batched(flood, 500);
    scenario.run([evaluate(R), approve(R, "QA"), evaluate(R)]);
    scenario.settle();
    let outcome = scenario.outcome(R);
    assert!(outcome.starts_with("Rejected EvaluationError"), "{outcome}");
    assert!(scenario.state().releases[R].notes.iter().any(|n| n.contains("pieces of evidence; not evaluated")));
    assert!(scenario.state() == scenario.fold(None), "the live state differs from a fold");
}
