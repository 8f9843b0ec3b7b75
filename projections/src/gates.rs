//! Gate evaluation: a pure function of the folded log prefix and the evaluation time (the
//! triggering entry's `recordedAt`). Fail closed: no policy, no intent or missing evidence
//! never approves.
//!
//! Gates, in the order a decision lists them: `intent`, `policy`, `trace`, then per module
//! (in the intent's order) `tests:<m>`, `coverage:<m>`, `bdd:<m>`, `security:<m>`, then
//! `compliance`, `freeze`, `risk`, `approvals`.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalogue::{GateStatus, STUDIO_ADMIN_ROLE};
use crate::custom_gates;
use crate::decision::{DecisionData, DecisionStatus, Gate, Reason, ReasonCode, Verdict, MAX_DECISION_DATA_BYTES};
use crate::freeze::{format_ns, frozen_until};
use crate::policy::{EnvPolicy, Signal};
use crate::risk;
use crate::state::{ApprovalRecord, ReleaseState, SignalEvidence, SignalRecord, TenantMeta, MAX_EVIDENCE};

const NS_PER_SEC: u64 = 1_000_000_000;

/// Everything an evaluation gathers.
struct Eval {
    gates: Vec<Gate>,
    reasons: Vec<Reason>,
    evidence: BTreeSet<u64>,
    retry_after: Option<i64>,
}

impl Eval {
    fn gate(&mut self, gate: String, target: String, observed: String, verdict: Verdict) {
        self.gates.push(Gate { gate, target, observed, verdict, code: None });
    }

    fn reason(&mut self, code: ReasonCode, module: Option<&str>, detail: String) {
        self.reasons.push(Reason { code, module: module.map(str::to_owned), detail });
    }
}

fn at_text(at: u64) -> String {
    format_ns(i64::try_from(at).unwrap_or(i64::MAX))
}

/// Evaluates every gate for `release` at `at` (ns), triggered by entry `trigger`.
pub fn evaluate(meta: &TenantMeta, release: &ReleaseState, trigger: u64, at: u64) -> DecisionData {
    let mut e = Eval { gates: Vec::new(), reasons: Vec::new(), evidence: BTreeSet::new(), retry_after: None };
    e.evidence.insert(trigger);
    let policy_version = meta.policy.as_ref().map(|p| p.policy.version);

    if release.evidence_overflow {
        let limit = MAX_EVIDENCE;
        e.gate("evidence".into(), format!("at most {limit} pieces"), "more".into(), Verdict::Fail);
        e.reason(
            ReasonCode::EvaluationError,
            None,
            format!("more than {limit} pieces of evidence: declare a new release"),
        );
        return finish(e, policy_version, trigger, at, 0, Vec::new());
    }
    // A withdrawn intent is missing evidence like any other (fail closed).
    let intent = match &release.intent {
        Some(intent) if !release.is_invalidated(intent.seq) => intent,
        withdrawn => {
            let (observed, detail) = match withdrawn {
                Some(intent) => {
                    e.evidence.insert(intent.seq);
                    e.evidence.extend(release.invalidated.get(&intent.seq));
                    let seq = intent.seq;
                    (format!("seq {seq} withdrawn"), format!("the ReleaseIntentDeclared at seq {seq} was withdrawn"))
                }
                None => ("missing".to_owned(), "no ReleaseIntentDeclared for this release".to_owned()),
            };
            e.gate("intent".into(), "ReleaseIntentDeclared".into(), observed, Verdict::Fail);
            e.reason(ReasonCode::IntentMissing, None, detail);
            return finish(e, policy_version, trigger, at, 0, Vec::new());
        }
    };
    e.evidence.insert(intent.seq);
    e.gates.push(pass("intent", "ReleaseIntentDeclared", format!("seq {}", intent.seq)));
    let environment = intent.data.environment.as_str();

    let policy = match &meta.policy {
        Some(record) => match record.policy.for_env(environment) {
            Some(p) => {
                e.evidence.insert(record.seq);
                e.gates.push(pass(
                    "policy",
                    format!("a policy for {environment}"),
                    format!("version {} (seq {})", record.policy.version, record.seq),
                ));
                p
            }
            None => {
                e.evidence.insert(record.seq);
                e.gate(
                    "policy".into(),
                    format!("a policy for {environment}"),
                    format!("version {} has no rules for {environment} and no default", record.policy.version),
                    Verdict::Fail,
                );
                e.reason(ReasonCode::PolicyMissing, None, format!("policy has no rules for {environment}"));
                return finish(e, policy_version, trigger, at, 0, Vec::new());
            }
        },
        None => {
            e.gate("policy".into(), format!("a policy for {environment}"), "none".into(), Verdict::Fail);
            e.reason(ReasonCode::PolicyMissing, None, "no PolicyUpdated in this tenant".into());
            return finish(e, policy_version, trigger, at, 0, Vec::new());
        }
    };

    let signals: Vec<_> = release.signals.iter().filter(|s| !release.is_invalidated(s.seq)).collect();
    trace_gate(&mut e, release, &signals);
    for module in &intent.data.modules {
        module_gates(&mut e, policy, &module.name, &module.version, &signals);
    }
    compliance_gate(&mut e, release);
    if let Some(record) = &meta.policy {
        for outcome in custom_gates::evaluate(meta, record, policy, release, trigger, at) {
            e.evidence.extend(outcome.evidence);
            e.gates.push(outcome.gate);
            if let Some(reason) = outcome.reason {
                e.reasons.push(reason);
            }
        }
    }
    freeze_gate(&mut e, meta, release, policy, environment, at);
    let (score, factors, risk_evidence) = risk::score(meta, release, at);
    e.evidence.extend(risk_evidence);
    let escalated = risk_gate(&mut e, policy, score);
    approval_gate(&mut e, meta, release, policy, escalated, at);
    finish(e, policy_version, trigger, at, score, factors)
}

fn trace_gate(e: &mut Eval, release: &ReleaseState, signals: &[&SignalRecord]) {
    let Some(intent) = &release.intent else { return };
    let shipped: BTreeMap<&str, &str> =
        intent.data.modules.iter().map(|m| (m.name.as_str(), m.version.as_str())).collect();
    let mut stray = Vec::new();
    for s in signals {
        let (module, version) = s.signal.module_version();
        if shipped.get(module) != Some(&version) {
            e.evidence.insert(s.seq);
            stray.push(format!("{module}@{version} (seq {})", s.seq));
            e.reason(
                ReasonCode::TraceMismatch,
                Some(module),
                format!("seq {} vouches for {module}@{version}, which this release does not ship", s.seq),
            );
        }
    }
    let target = "signals name only shipped module versions".to_owned();
    if stray.is_empty() {
        e.gate("trace".into(), target, format!("{} signals match", signals.len()), Verdict::Pass);
    } else {
        e.gate("trace".into(), target, format!("stray: {}", stray.join(", ")), Verdict::Fail);
    }
}

fn module_gates(e: &mut Eval, policy: &EnvPolicy, module: &str, version: &str, signals: &[&SignalRecord]) {
    let ours: Vec<_> = signals.iter().filter(|s| s.signal.module_version() == (module, version)).collect();
    let required = |s: Signal| policy.required_signals.contains(&s);
    let mv = format!("{module}@{version}");

    // Tests: the latest result of every suite must pass; any failure counts even when the
    // policy does not require TestsPassed.
    let mut suites: BTreeMap<&str, (u64, bool, u64, u64)> = BTreeMap::new();
    for s in &ours {
        if let SignalEvidence::Tests { passed, data } = &s.signal {
            suites.insert(&data.suite, (s.seq, *passed, data.passed, data.failed));
        }
    }
    if required(Signal::TestsPassed) || !suites.is_empty() {
        let failing: Vec<_> = suites.iter().filter(|(_, (_, ok, _, _))| !ok).collect();
        e.evidence.extend(suites.values().map(|(seq, ..)| *seq));
        let target = format!("every suite of {mv} passes");
        if suites.is_empty() {
            e.gate(format!("tests:{module}"), target, "no test results".into(), Verdict::Fail);
            e.reason(ReasonCode::TestsIncomplete, Some(module), format!("no TestsPassed for {mv}"));
        } else if !failing.is_empty() {
            let observed: Vec<String> = failing
                .iter()
                .map(|(suite, (seq, _, _, failed))| format!("{suite}: {failed} failed (seq {seq})"))
                .collect();
            e.gate(format!("tests:{module}"), target, observed.join("; "), Verdict::Fail);
            for line in observed {
                e.reason(ReasonCode::TestsIncomplete, Some(module), format!("tests failed for {mv}, suite {line}"));
            }
        } else {
            let total: u64 = suites.values().map(|(_, _, passed, _)| passed).sum();
            e.gates.push(pass(format!("tests:{module}"), target, format!("{} suites, {total} passed", suites.len())));
        }
    }

    // Coverage.
    if required(Signal::CoverageVerified) || policy.min_test_coverage.is_some() {
        let latest = ours.iter().rev().find_map(|s| match &s.signal {
            SignalEvidence::Coverage(d) => Some((s.seq, d.percent)),
            _ => None,
        });
        let min = policy.min_test_coverage.unwrap_or(0.0);
        let target = format!("coverage of {mv} >= {min}%");
        match latest {
            None => {
                e.gate(format!("coverage:{module}"), target, "no CoverageVerified".into(), Verdict::Fail);
                e.reason(ReasonCode::TestsIncomplete, Some(module), format!("no CoverageVerified for {mv}"));
            }
            Some((seq, percent)) => {
                e.evidence.insert(seq);
                let observed = format!("{percent}% (seq {seq})");
                if percent < min {
                    e.gate(format!("coverage:{module}"), target, observed, Verdict::Fail);
                    e.reason(
                        ReasonCode::TestsIncomplete,
                        Some(module),
                        format!("coverage of {mv} is {percent}%, below {min}%"),
                    );
                } else {
                    e.gates.push(pass(format!("coverage:{module}"), target, observed));
                }
            }
        }
    }

    // BDD.
    if required(Signal::BDDValidated) {
        let latest = ours.iter().rev().find(|s| matches!(s.signal, SignalEvidence::Bdd(_)));
        let target = format!("BDDValidated for {mv}");
        match latest {
            None => {
                e.gate(format!("bdd:{module}"), target, "missing".into(), Verdict::Fail);
                e.reason(ReasonCode::TestsIncomplete, Some(module), format!("no BDDValidated for {mv}"));
            }
            Some(s) => {
                e.evidence.insert(s.seq);
                e.gates.push(pass(format!("bdd:{module}"), target, format!("seq {}", s.seq)));
            }
        }
    }

    // Security: the latest scan decides; a configured requirement with no scan is missing
    // evidence (fail closed), a failing scan fails even when not required.
    let latest = ours.iter().rev().find_map(|s| match &s.signal {
        SignalEvidence::Security(d) => Some((s.seq, d)),
        _ => None,
    });
    let asks_security = required(Signal::SecurityGateStatus)
        || policy.require_signed_images
        || policy.require_sbom
        || policy.require_license_compliance;
    let mut target = vec![format!("scan passed, CVE <= {}", policy.max_cve_severity.as_str())];
    if policy.require_signed_images {
        target.push("signed image".into());
    }
    if policy.require_sbom {
        target.push("SBOM".into());
    }
    if policy.require_license_compliance {
        target.push("licences compliant".into());
    }
    let target = target.join(", ");
    match latest {
        None if asks_security => {
            e.gate(format!("security:{module}"), target, "no SecurityGateStatus".into(), Verdict::Fail);
            e.reason(ReasonCode::TestsIncomplete, Some(module), format!("no SecurityGateStatus for {mv}"));
        }
        None => {}
        Some((seq, scan)) => {
            e.evidence.insert(seq);
            let mut failures = Vec::new();
            if scan.status == GateStatus::Failed {
                failures.push("the security scan failed".to_owned());
            }
            if scan.cve_severity > policy.max_cve_severity {
                failures.push(format!(
                    "CVE severity {} is above {}",
                    scan.cve_severity.as_str(),
                    policy.max_cve_severity.as_str()
                ));
            }
            if policy.require_signed_images && !scan.image_signed {
                failures.push("the image is not signed".into());
            }
            if policy.require_sbom && !scan.sbom_present {
                failures.push("no SBOM".into());
            }
            if policy.require_license_compliance && !scan.license_compliant {
                failures.push("licences do not comply".into());
            }
            let observed = format!(
                "{:?}, CVE {}, signed {}, SBOM {}, licences {} (seq {seq})",
                scan.status,
                scan.cve_severity.as_str(),
                scan.image_signed,
                scan.sbom_present,
                scan.license_compliant
            );
            if failures.is_empty() {
                e.gates.push(pass(format!("security:{module}"), target, observed));
            } else {
                e.gate(format!("security:{module}"), target, observed, Verdict::Fail);
                for f in failures {
                    e.reason(ReasonCode::SecurityGateFailed, Some(module), format!("{mv}: {f}"));
                }
            }
        }
    }
}

fn compliance_gate(e: &mut Eval, release: &ReleaseState) {
    let standing: Vec<_> = release.violations.iter().filter(|(seq, _)| !release.is_invalidated(*seq)).collect();
    let target = "no standing PolicyViolationDetected".to_owned();
    if standing.is_empty() {
        e.gates.push(pass("compliance", target, "none"));
        return;
    }
    let observed: Vec<String> = standing.iter().map(|(seq, v)| format!("{} (seq {seq})", v.rule)).collect();
    e.gate("compliance".into(), target, observed.join(", "), Verdict::Fail);
    for (seq, v) in standing {
        e.evidence.insert(*seq);
        e.reason(ReasonCode::ComplianceViolation, v.module.as_deref(), format!("{}: {}", v.rule, v.detail));
    }
}

fn freeze_gate(e: &mut Eval, meta: &TenantMeta, release: &ReleaseState, policy: &EnvPolicy, env: &str, at: u64) {
    let target = format!("no change freeze over {env}");
    if !policy.freeze_sensitive {
        e.gate("freeze".into(), target, "environment is not freeze-sensitive".into(), Verdict::NotApplicable);
        return;
    }
    let at_ns = i64::try_from(at).unwrap_or(i64::MAX);
    // An override counts when its key still holds StudioAdmin (not revoked) and it was not
    // withdrawn.
    let overridden: BTreeMap<&str, u64> = release
        .overrides
        .iter()
        .filter(|o| !release.is_invalidated(o.seq))
        .filter(|o| {
            meta.keys
                .get(&o.key_id)
                .is_some_and(|k| k.revoked_at.is_none() && k.roles.iter().any(|r| r == STUDIO_ADMIN_ROLE))
        })
        .map(|o| (o.freeze_id.as_str(), o.seq))
        .collect();
    let (waived, binding): (Vec<_>, Vec<_>) = meta
        .freezes
        .values()
        .filter(|f| f.freeze.applies_to(env))
        .partition(|f| overridden.contains_key(f.freeze.id()));
    for f in &waived {
        if f.freeze.window_at(at_ns).is_some() {
            let by = overridden[f.freeze.id()];
            e.evidence.extend([f.seq, by]);
            e.reason(ReasonCode::FreezeOverridden, None, format!("freeze {} overridden by seq {by}", f.freeze.id()));
        }
    }
    match frozen_until(binding.iter().map(|f| &f.freeze), env, at_ns) {
        None => e.gates.push(pass("freeze", target, "not frozen")),
        Some((end, ids)) => {
            for f in binding.iter().filter(|f| ids.iter().any(|id| id == f.freeze.id())) {
                e.evidence.insert(f.seq);
            }
            let end_text = format_ns(end);
            e.gate("freeze".into(), target, format!("frozen by {} until {end_text}", ids.join(", ")), Verdict::Pending);
            let reasons: Vec<String> = binding
                .iter()
                .filter(|f| ids.iter().any(|id| id == f.freeze.id()))
                .map(|f| {
                    let reason = &f.freeze.data().reason;
                    if reason.is_empty() {
                        f.freeze.id().to_owned()
                    } else {
                        format!("{} ({reason})", f.freeze.id())
                    }
                })
                .collect();
            e.reason(ReasonCode::ChangeFreezeActive, None, format!("{} until {end_text}", reasons.join(", ")));
            e.retry_after = Some(end);
        }
    }
}

/// Returns whether the risk threshold escalates approvals.
fn risk_gate(e: &mut Eval, policy: &EnvPolicy, score: u32) -> bool {
    match policy.risk_threshold {
        None => {
            e.gate("risk".into(), "no threshold".into(), format!("score {score}"), Verdict::NotApplicable);
            false
        }
        Some(threshold) if score >= threshold => {
            let roles = policy.high_risk_roles.join(", ");
            e.gates.push(pass(
                "risk",
                format!("score < {threshold}, else approval by {roles}"),
                format!("score {score}: {roles} must approve"),
            ));
            e.reason(
                ReasonCode::HighRisk,
                None,
                format!("risk score {score} >= {threshold}: {roles} must also approve"),
            );
            true
        }
        Some(threshold) => {
            e.gates.push(pass("risk", format!("score < {threshold}"), format!("score {score}")));
            false
        }
    }
}

fn approval_gate(
    e: &mut Eval,
    meta: &TenantMeta,
    release: &ReleaseState,
    policy: &EnvPolicy,
    escalated: bool,
    at: u64,
) {
    let Some(intent) = &release.intent else { return };
    let required = policy.requires_approval || intent.data.requires_approval == Some(true);
    let mut roles: BTreeSet<&str> = policy.roles.iter().map(String::as_str).collect();
    if escalated {
        roles.extend(policy.high_risk_roles.iter().map(String::as_str));
    }
    // The latest word of each key in each role decides (a key may reject, then approve).
    let mut latest: BTreeMap<(&str, &str), &ApprovalRecord> = BTreeMap::new();
    for a in release.approvals.iter().filter(|a| !release.is_invalidated(a.seq)) {
        latest.insert((a.key_id.as_str(), a.role.as_str()), a);
    }
    let mut counted_roles = BTreeSet::new();
    let mut counted_keys = BTreeSet::new();
    let mut rejected = false;
    for a in latest.values() {
        e.evidence.insert(a.seq);
        let revoked = meta.keys.get(&a.key_id).is_none_or(|k| k.revoked_at.is_some());
        let role_required = roles.is_empty() || roles.contains(a.role.as_str());
        if revoked {
            e.reason(
                ReasonCode::ApproverRevoked,
                None,
                format!("seq {}: the key of {} has been revoked; it does not count", a.seq, a.agent_id),
            );
            continue;
        }
        if !role_required {
            e.reason(
                ReasonCode::ApprovalRoleNotRequired,
                None,
                format!("seq {}: {} is not a required role ({})", a.seq, a.role, join(&roles)),
            );
            continue;
        }
        if !a.granted {
            rejected = true;
            e.reason(ReasonCode::ApprovalRejected, None, format!("{} ({}) rejected: {}", a.role, a.agent_id, a.text));
            continue;
        }
        if let Some(ttl) = policy.approval_ttl_seconds {
            if at.saturating_sub(a.recorded_at) > ttl.saturating_mul(NS_PER_SEC) {
                e.reason(
                    ReasonCode::ApprovalExpired,
                    None,
                    format!("seq {}: approval by {} as {} is older than {ttl} s", a.seq, a.agent_id, a.role),
                );
                continue;
            }
        }
        if policy.separation_of_duties && (a.agent_id == intent.agent_id || a.key_id == intent.key_id) {
            e.reason(
                ReasonCode::SelfApproval,
                None,
                format!("seq {}: {} declared this release and cannot approve it", a.seq, a.agent_id),
            );
            continue;
        }
        counted_roles.insert(a.role.as_str());
        counted_keys.insert(a.key_id.as_str());
    }
    let min = policy.min_approvers.max(1) as usize;
    let missing: Vec<&str> = roles.iter().copied().filter(|r| !counted_roles.contains(r)).collect();
    let target = if roles.is_empty() {
        format!("{min} distinct approvers")
    } else {
        format!("approval by {}; {min} distinct approvers", join(&roles))
    };
    let observed = format!(
        "approved by {}; {} distinct approvers",
        if counted_roles.is_empty() { "nobody".to_owned() } else { join(&counted_roles) },
        counted_keys.len()
    );
    if rejected {
        e.gate("approvals".into(), target, observed, Verdict::Fail);
    } else if !required {
        e.gate("approvals".into(), "approval not required".into(), observed, Verdict::NotApplicable);
    } else if !missing.is_empty() || counted_keys.len() < min {
        let mut waiting = Vec::new();
        if !missing.is_empty() {
            waiting.push(format!("approval by {}", missing.join(", ")));
        }
        if counted_keys.len() < min {
            waiting.push(format!("{} of {min} distinct approvers", counted_keys.len()));
        }
        e.gate("approvals".into(), target, observed, Verdict::Pending);
        e.reason(ReasonCode::ApprovalPending, None, format!("waiting for {}", waiting.join("; ")));
    } else {
        e.gates.push(pass("approvals", target, observed));
    }
}

fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

fn finish(
    e: Eval,
    policy_version: Option<u64>,
    trigger: u64,
    at: u64,
    risk_score: u32,
    risk_factors: Vec<crate::decision::RiskFactor>,
) -> DecisionData {
    let Eval { gates, reasons, evidence, retry_after } = e;
    // Blocking reasons first (stable within each group), then informational ones.
    let (mut ordered, info): (Vec<Reason>, Vec<Reason>) = reasons.into_iter().partition(|r| r.code.is_blocking());
    let rejecting: Vec<&Reason> = ordered.iter().filter(|r| r.code.rejects()).collect();
    let status = if !rejecting.is_empty() {
        DecisionStatus::Rejected
    } else if !ordered.is_empty() {
        DecisionStatus::Delayed
    } else {
        DecisionStatus::Approved
    };
    let retryable = match status {
        DecisionStatus::Rejected => rejecting.iter().all(|r| r.code.retryable()),
        _ => true,
    };
    let suggested_fix = ordered.iter().find(|r| status != DecisionStatus::Rejected || r.code.rejects()).map(fix);
    ordered.extend(info);
    DecisionData {
        status,
        policy_version,
        evaluated_at: at_text(at),
        trigger,
        evidence: evidence.into_iter().collect(),
        gates,
        reasons: ordered,
        retry_after: if status == DecisionStatus::Delayed { retry_after.map(format_ns) } else { None },
        retryable,
        suggested_fix,
        risk_score,
        risk_factors,
    }
}

/// The suggested fix of one reason, as decisions carry it. A decision's `suggestedFix` is the
/// fix of its first blocking (for a rejection: rejecting) reason, signed into the log; renderers
/// call this for the reason that makes a rejection final when that is another one.
pub fn fix(reason: &Reason) -> String {
    let module = reason.module.as_deref().unwrap_or("the release");
    match reason.code {
        ReasonCode::TestsIncomplete => {
            format!("publish passing QA evidence for {module} ({}) and request evaluation again", reason.detail)
        }
        ReasonCode::SecurityGateFailed => {
            format!("fix the security findings in {module}, rebuild and declare a new release version")
        }
        ReasonCode::TraceMismatch => {
            "signals must name the module versions the intent ships: withdraw the stray evidence with \
             EvidenceInvalidated or declare a new release"
                .into()
        }
        ReasonCode::ComplianceViolation => {
            "resolve the violation; if it was raised in error, withdraw it with EvidenceInvalidated".into()
        }
        ReasonCode::ChangeFreezeActive => {
            "wait for the freeze to end (the ledger re-evaluates at retryAfter) or obtain a FreezeOverrideGranted \
             from a StudioAdmin"
                .into()
        }
        ReasonCode::ApprovalPending => format!("obtain the missing approvals ({})", reason.detail),
        ReasonCode::ApprovalRejected => "address the rejection, then declare a new release".into(),
        ReasonCode::PolicyMissing => "publish a PolicyUpdated that covers this environment".into(),
        ReasonCode::IntentMissing => "declare the release with ReleaseIntentDeclared".into(),
        ReasonCode::CustomGateFailed | ReasonCode::CustomGatePending => format!(
            "attach the evidence the policy's gate asks for ({}) with EvidenceAttached; `release-ledger explain` \
             shows the gate's input and result",
            reason.detail
        ),
        ReasonCode::CustomGateError => {
            "fix the policy's gate (`release-ledger policy test` runs it on this release's input) and publish a new \
             PolicyUpdated"
                .into()
        }
        _ => "request evaluation again; if it persists, report the ledger's anomaly log".into(),
    }
}

/// The decision that publishes an approved release once its deployment completed.
pub fn published(release: &ReleaseState, seq: u64, at: u64) -> DecisionData {
    let last = release.decision.as_ref();
    let mut evidence: BTreeSet<u64> = last.map(|d| d.evidence.iter().copied().collect()).unwrap_or_default();
    evidence.extend(release.decision_seqs.last());
    evidence.extend(release.deployment_started);
    evidence.insert(seq);
    let env = release.environment().unwrap_or("?");
    DecisionData {
        status: DecisionStatus::Published,
        policy_version: last.and_then(|d| d.policy_version),
        evaluated_at: at_text(at),
        trigger: seq,
        evidence: evidence.into_iter().collect(),
        gates: vec![
            pass(
                "approval",
                "ReleaseApproved in force",
                format!("approved at seq {}", last.map(|d| d.trigger).unwrap_or_default()),
            ),
            pass("deployment", format!("DeploymentCompleted to {env}"), format!("seq {seq}")),
        ],
        reasons: Vec::new(),
        retry_after: None,
        retryable: false,
        suggested_fix: None,
        risk_score: last.map(|d| d.risk_score).unwrap_or_default(),
        risk_factors: last.map(|d| d.risk_factors.clone()).unwrap_or_default(),
    }
}

/// `data`, or, when its record would be larger than [`MAX_DECISION_DATA_BYTES`] (thousands of
/// stray signals, long violation details quoted in reasons), a fail-closed rejection that fits.
/// The reason's detail does not name the size, so that re-evaluations of a release that stays
/// too large have the same outcome and append nothing new.
pub fn bounded(data: DecisionData, at: u64) -> DecisionData {
    // Counted exactly only when a bound from lengths alone does not settle it.
    if crate::decision::json_len_bound(&data) <= MAX_DECISION_DATA_BYTES {
        return data;
    }
    let size = crate::decision::json_len(&crate::decision::Canonical(&data)).unwrap_or(usize::MAX);
    if size <= MAX_DECISION_DATA_BYTES {
        return data;
    }
    let mut e =
        Eval { gates: Vec::new(), reasons: Vec::new(), evidence: BTreeSet::from([data.trigger]), retry_after: None };
    e.gate("record".into(), format!("at most {MAX_DECISION_DATA_BYTES} bytes"), format!("{size} bytes"), Verdict::Fail);
    e.reason(
        ReasonCode::EvaluationError,
        None,
        format!(
            "the decision record would be larger than the ledger accepts ({MAX_DECISION_DATA_BYTES} bytes); \
             the release is not approved"
        ),
    );
    finish(e, data.policy_version, data.trigger, at, data.risk_score, data.risk_factors)
}

/// The fail-closed decision when an evaluation itself failed.
pub fn evaluation_error(trigger: u64, at: u64) -> DecisionData {
    let mut e = Eval { gates: Vec::new(), reasons: Vec::new(), evidence: BTreeSet::from([trigger]), retry_after: None };
    e.gate("evaluation".into(), "completes".into(), "failed".into(), Verdict::Fail);
    e.reason(ReasonCode::EvaluationError, None, "the gate evaluation failed; the release is not approved".into());
    finish(e, None, trigger, at, 0, Vec::new())
}

/// A gate that passed.
pub(crate) fn pass(gate: impl Into<String>, target: impl Into<String>, observed: impl Into<String>) -> Gate {
    Gate { gate: gate.into(), target: target.into(), observed: observed.into(), verdict: Verdict::Pass, code: None }
}
