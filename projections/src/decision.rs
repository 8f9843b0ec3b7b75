//! The decision record the ledger signs: a Verification Summary an auditor can check by
//! itself (policy version, evaluation time, the seq of every piece of evidence, each gate with
//! its target, observed value and verdict), and the exact bytes of its event body.
//!
//! The bytes are a pure function of the record: fields serialise in declaration order, lists
//! are built in a fixed order, timestamps are the triggering entry's `recordedAt`. That is
//! what makes "replay reproduces every decision bit for bit" checkable.

use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::freeze::format_ns;

/// Reason codes (the `code` of a [`Reason`]).
pub mod codes {
    /// A required QA signal is missing or failed, or coverage is below the minimum (retryable).
    pub const TESTS_INCOMPLETE: &str = "TestsIncomplete";
    /// A security gate failed (not retryable).
    pub const SECURITY_GATE_FAILED: &str = "SecurityGateFailed";
    /// Signals name module versions the intent does not ship.
    pub const TRACE_MISMATCH: &str = "TraceMismatch";
    /// A `PolicyViolationDetected` stands.
    pub const COMPLIANCE_VIOLATION: &str = "ComplianceViolation";
    /// A change freeze covers the environment.
    pub const CHANGE_FREEZE_ACTIVE: &str = "ChangeFreezeActive";
    /// A required approval is missing.
    pub const APPROVAL_PENDING: &str = "ApprovalPending";
    /// A required role rejected the release.
    pub const APPROVAL_REJECTED: &str = "ApprovalRejected";
    /// No policy covers the environment (fail closed).
    pub const POLICY_MISSING: &str = "PolicyMissing";
    /// Evaluation was requested for a release with no intent.
    pub const INTENT_MISSING: &str = "IntentMissing";
    /// The evaluation itself failed (fail closed).
    pub const EVALUATION_ERROR: &str = "EvaluationError";
    /// Informational: an approval was too old to count.
    pub const APPROVAL_EXPIRED: &str = "ApprovalExpired";
    /// Informational: an approval's role is not required.
    pub const APPROVAL_ROLE_NOT_REQUIRED: &str = "ApprovalRoleNotRequired";
    /// Informational: the intent's author approved its own release.
    pub const SELF_APPROVAL: &str = "SelfApproval";
    /// Informational: the approving key has since been revoked.
    pub const APPROVER_REVOKED: &str = "ApproverRevoked";
    /// Informational: the risk score reached the threshold, extra roles required.
    pub const HIGH_RISK: &str = "HighRisk";
    /// Informational: a freeze was overridden for this release.
    pub const FREEZE_OVERRIDDEN: &str = "FreezeOverridden";

    /// Whether a code blocks approval (the rest explain, they do not decide).
    pub fn is_blocking(code: &str) -> bool {
        matches!(
            code,
            TESTS_INCOMPLETE
                | SECURITY_GATE_FAILED
                | TRACE_MISMATCH
                | COMPLIANCE_VIOLATION
                | CHANGE_FREEZE_ACTIVE
                | APPROVAL_PENDING
                | APPROVAL_REJECTED
                | POLICY_MISSING
                | INTENT_MISSING
                | EVALUATION_ERROR
        )
    }

    /// Whether a blocking code rejects (rather than delays).
    pub fn rejects(code: &str) -> bool {
        is_blocking(code) && !matches!(code, CHANGE_FREEZE_ACTIVE | APPROVAL_PENDING)
    }

    /// Whether a rejection for this code may pass on a later evaluation without a new release.
    pub fn retryable(code: &str) -> bool {
        !matches!(code, SECURITY_GATE_FAILED | TRACE_MISMATCH | COMPLIANCE_VIOLATION | APPROVAL_REJECTED)
    }
}

/// A decision's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionStatus {
    /// The intent is recorded; evidence is being gathered.
    Planned,
    /// Every gate passed.
    Approved,
    /// Waiting (freeze, approvals).
    Delayed,
    /// A gate failed.
    Rejected,
    /// Deployed after approval.
    Published,
}

impl DecisionStatus {
    /// The event type carrying a decision with this status.
    pub fn event_type(self) -> EventType {
        match self {
            Self::Planned => EventType::ReleasePlanned,
            Self::Approved => EventType::ReleaseApproved,
            Self::Delayed => EventType::ReleaseDelayed,
            Self::Rejected => EventType::ReleaseRejected,
            Self::Published => EventType::ReleasePublished,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "Planned",
            Self::Approved => "Approved",
            Self::Delayed => "Delayed",
            Self::Rejected => "Rejected",
            Self::Published => "Published",
        }
    }
}

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The gate passed.
    Pass,
    /// The gate failed (rejects).
    Fail,
    /// Not yet (delays).
    Pending,
    /// The policy does not ask for it.
    NotApplicable,
}

/// One gate of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Gate {
    /// The gate, e.g. `tests:billing`.
    pub gate: String,
    /// What the policy asks.
    pub target: String,
    /// What the evidence shows.
    pub observed: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// Why a decision is what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reason {
    /// Reason code (see [`codes`]).
    pub code: String,
    /// The module concerned, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Human-readable detail.
    pub detail: String,
}

/// One factor of the risk score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RiskFactor {
    /// Factor name (see the README's risk table).
    pub factor: String,
    /// The value observed.
    pub value: String,
    /// Points added.
    pub points: u32,
}

/// The `data` of a decision event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecisionData {
    /// The outcome.
    pub status: DecisionStatus,
    /// The policy version in force, if any.
    pub policy_version: Option<u64>,
    /// Evaluation time: the triggering entry's `recordedAt`, RFC 3339.
    pub evaluated_at: String,
    /// The seq of the triggering entry.
    pub trigger: u64,
    /// Seqs of every entry the evaluation used, ascending.
    pub evidence: Vec<u64>,
    /// Each gate.
    pub gates: Vec<Gate>,
    /// Blocking reasons first, then informational ones.
    pub reasons: Vec<Reason>,
    /// When a delayed release will be evaluated again by the ledger itself.
    pub retry_after: Option<String>,
    /// Whether a later evaluation of the same release can pass.
    pub retryable: bool,
    /// What to do next.
    pub suggested_fix: Option<String>,
    /// Risk score, 0–100.
    pub risk_score: u32,
    /// The factors behind it.
    pub risk_factors: Vec<RiskFactor>,
}

impl DecisionData {
    /// The reasons that decide (not the informational ones).
    pub fn blocking_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| codes::is_blocking(&r.code))
    }

    /// Whether two decisions say the same thing (outcome, every reason, retry time): only a
    /// change is appended. Informational reasons count as a change (an approval that arrives
    /// and does not count is recorded in a new decision saying why), the risk score alone does
    /// not.
    pub fn same_outcome(&self, other: &DecisionData) -> bool {
        self.status == other.status && self.reasons == other.reasons && self.retry_after == other.retry_after
    }
}

/// Largest decision `data` the fold emits, in bytes: the ledger refuses payloads over
/// [`ledger::event::DEFAULT_MAX_PAYLOAD_BYTES`] by default, and the body's header needs room.
/// A larger record is replaced by a fail-closed rejection ([`crate::gates::bounded`]), so that
/// every decision can be appended and one release cannot stall its tenant's outbox.
pub const MAX_DECISION_DATA_BYTES: usize = ledger::event::DEFAULT_MAX_PAYLOAD_BYTES - 4096;

/// The agent id decisions and ledger-initiated evaluation requests carry.
pub const LEDGER_AGENT: &str = "release-ledger";

/// The event id of the decision made at `trigger` for `release`: deterministic, so a decision
/// re-derived after a restart is an idempotent retry of the same append.
pub fn decision_event_id(release: &str, trigger: u64) -> String {
    format!("decision:{release}:{trigger}")
}

/// The event id of the evaluation request the ledger appends when `retry_after` of the
/// decision made at `trigger` comes.
pub fn retry_event_id(release: &str, trigger: u64) -> String {
    format!("retry:{release}:{trigger}")
}

/// The stream a release's events go to by convention, and its decisions always.
pub fn release_stream(release: &str) -> String {
    format!("release/{release}")
}

/// The body bytes of a decision event.
pub fn decision_body(
    tenant: &str,
    release: &str,
    trace_id: Option<&str>,
    evaluated_at_ns: i64,
    data: &DecisionData,
) -> Vec<u8> {
    ledger_body(
        tenant,
        release,
        data.status.event_type(),
        &decision_event_id(release, data.trigger),
        trace_id,
        evaluated_at_ns,
        serde_json::to_value(data).unwrap_or_default(),
    )
}

/// The body bytes of the evaluation request the ledger appends at `retry_at_ns`.
pub fn retry_body(tenant: &str, release: &str, trace_id: Option<&str>, trigger: u64, retry_at_ns: i64) -> Vec<u8> {
    ledger_body(
        tenant,
        release,
        EventType::ReleaseEvaluationRequested,
        &retry_event_id(release, trigger),
        trace_id,
        retry_at_ns,
        serde_json::json!({ "reason": format!("retryAfter of the decision at seq {trigger}") }),
    )
}

fn ledger_body(
    tenant: &str,
    release: &str,
    event_type: EventType,
    event_id: &str,
    trace_id: Option<&str>,
    at_ns: i64,
    data: serde_json::Value,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        tenant: &'a str,
        stream: String,
        #[serde(rename = "type")]
        event_type: &'a str,
        event_id: &'a str,
        occurred_at: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        trace_id: Option<&'a str>,
        release_id: &'a str,
        actor: Actor,
        data: serde_json::Value,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Actor {
        agent_id: &'static str,
    }
    let body = Body {
        tenant,
        stream: release_stream(release),
        event_type: event_type.as_str(),
        event_id,
        occurred_at: format_ns(at_ns),
        trace_id,
        release_id: release,
        actor: Actor { agent_id: LEDGER_AGENT },
        data,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> DecisionData {
        DecisionData {
            status: DecisionStatus::Rejected,
            policy_version: Some(3),
            evaluated_at: format_ns(1_748_000_000_000_000_000),
            trigger: 42,
            evidence: vec![1, 5, 9],
            gates: vec![Gate {
                gate: "security:api".into(),
                target: "cve <= Medium".into(),
                observed: "Critical".into(),
                verdict: Verdict::Fail,
            }],
            reasons: vec![Reason {
                code: codes::SECURITY_GATE_FAILED.into(),
                module: Some("api".into()),
                detail: "CVE severity Critical".into(),
            }],
            retry_after: None,
            retryable: false,
            suggested_fix: Some("fix".into()),
            risk_score: 40,
            risk_factors: vec![],
        }
    }

    #[test]
    fn decision_bodies_are_deterministic_and_valid_events() {
        let a = decision_body("t", "r1", Some("trace"), 1_748_000_000_000_000_000, &sample());
        let b = decision_body("t", "r1", Some("trace"), 1_748_000_000_000_000_000, &sample());
        assert_eq!(a, b);
        let parsed = ledger::ParsedEvent::parse(&a).unwrap();
        assert_eq!(parsed.header.event_type, "ReleaseRejected");
        assert_eq!(parsed.header.event_id, "decision:r1:42");
        let gov = crate::catalogue::GovEvent::parse(&parsed).unwrap();
        assert!(matches!(gov.data, crate::catalogue::GovData::Decision(d) if *d == sample()));
    }

    #[test]
    fn codes_classify() {
        assert!(codes::rejects(codes::TESTS_INCOMPLETE) && codes::retryable(codes::TESTS_INCOMPLETE));
        assert!(codes::rejects(codes::SECURITY_GATE_FAILED) && !codes::retryable(codes::SECURITY_GATE_FAILED));
        assert!(!codes::rejects(codes::CHANGE_FREEZE_ACTIVE) && codes::is_blocking(codes::CHANGE_FREEZE_ACTIVE));
        assert!(!codes::is_blocking(codes::SELF_APPROVAL));
    }
}
