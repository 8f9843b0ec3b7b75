//! The decision record the ledger signs: a Verification Summary an auditor can check by
//! itself (policy version, evaluation time, the seq of every piece of evidence, each gate with
//! its target, observed value and verdict), and the exact bytes of its event body.
//!
//! The bytes are a pure function of the record: the body's fields serialise in declaration
//! order and its `data`'s keys in byte order at every level (the form `serde_json::Value`
//! gives, which the first logs were written in; [`Canonical`] writes it directly), lists are
//! built in a fixed order, timestamps are the triggering entry's `recordedAt`. That is what
//! makes "replay reproduces every decision bit for bit" checkable.

use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::freeze::format_ns;

macro_rules! reason_codes {
    ($($(#[doc = $doc:literal])* $variant:ident),* $(,)?) => {
        /// A reason code (the `code` of a [`Reason`]), serialised as its wire name (the
        /// variant's name, e.g. `"TestsIncomplete"`), so signed decision bytes are those of the
        /// plain string.
        ///
        /// Reading is lenient: a code this build does not know (a decision written by a later
        /// version, read from an old or foreign log for display) deserialises as
        /// [`ReasonCode::Other`] holding the name as written, and serialises back to the same
        /// string. `Other` never blocks, rejects or delays; the fold never makes one, and a
        /// stored decision holding one is simply not re-derived byte for byte (replay reports
        /// the mismatch). Build `Other` only for a name [`ReasonCode::parse`] does not know.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ReasonCode {
            $($(#[doc = $doc])* $variant,)*
            /// A code this build does not know, as written (see the type's doc).
            Other(String),
        }

        impl ReasonCode {
            /// Every code this build knows, in declaration order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant),*];

            /// The wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => stringify!($variant),)*
                    Self::Other(name) => name,
                }
            }

            /// The known code named `name`, if this build knows it.
            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $(stringify!($variant) => Some(Self::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes!(
    /// A required QA signal is missing or failed, or coverage is below the minimum (retryable).
    TestsIncomplete,
    /// A security gate failed (not retryable).
    SecurityGateFailed,
    /// Signals name module versions the intent does not ship.
    TraceMismatch,
    /// A `PolicyViolationDetected` stands.
    ComplianceViolation,
    /// A change freeze covers the environment.
    ChangeFreezeActive,
    /// A required approval is missing.
    ApprovalPending,
    /// A required role rejected the release.
    ApprovalRejected,
    /// No policy covers the environment (fail closed).
    PolicyMissing,
    /// Evaluation was requested for a release with no intent.
    IntentMissing,
    /// The evaluation itself failed (fail closed).
    EvaluationError,
    /// A custom gate (policy code) failed (retryable: new evidence may pass it).
    CustomGateFailed,
    /// A custom gate is waiting for something (delays).
    CustomGatePending,
    /// A custom gate errored or ran past its instruction limit (fail closed; retryable).
    CustomGateError,
    /// Informational: an approval was too old to count.
    ApprovalExpired,
    /// Informational: an approval's role is not required.
    ApprovalRoleNotRequired,
    /// Informational: the intent's author approved its own release.
    SelfApproval,
    /// Informational: the approving key has since been revoked.
    ApproverRevoked,
    /// Informational: the risk score reached the threshold, extra roles required.
    HighRisk,
    /// Informational: a freeze was overridden for this release.
    FreezeOverridden,
    /// Summaries only, never in a decision: the release's deployment failed.
    DeploymentFailed,
    /// Summaries only, never in a decision: the release was rolled back.
    RollbackTriggered,
);

impl ReasonCode {
    /// The code named `name`: the known one, or [`ReasonCode::Other`] (how stored decisions
    /// and the wire's `Reason.code` are read).
    pub fn named(name: String) -> Self {
        Self::parse(&name).unwrap_or(Self::Other(name))
    }

    /// Whether the code blocks approval (the rest explain, they do not decide).
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Self::TestsIncomplete
                | Self::SecurityGateFailed
                | Self::TraceMismatch
                | Self::ComplianceViolation
                | Self::ChangeFreezeActive
                | Self::ApprovalPending
                | Self::ApprovalRejected
                | Self::PolicyMissing
                | Self::IntentMissing
                | Self::EvaluationError
                | Self::CustomGateFailed
                | Self::CustomGatePending
                | Self::CustomGateError
        )
    }

    /// Whether a blocking code rejects (rather than delays).
    pub fn rejects(&self) -> bool {
        self.is_blocking()
            && !matches!(self, Self::ChangeFreezeActive | Self::ApprovalPending | Self::CustomGatePending)
    }

    /// Whether a rejection for this code may pass on a later evaluation without a new release.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            Self::SecurityGateFailed | Self::TraceMismatch | Self::ComplianceViolation | Self::ApprovalRejected
        )
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered by wire name, as the strings were.
impl PartialOrd for ReasonCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ReasonCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Serialize for ReasonCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReasonCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::named(String::deserialize(deserializer)?))
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
    /// Every status, in the order of the ledger's [`ledger::event::DECISION_TYPES`].
    pub const ALL: [DecisionStatus; 5] =
        [Self::Planned, Self::Approved, Self::Delayed, Self::Rejected, Self::Published];

    /// The status whose decisions have type `event_type`, if it is a decision type.
    pub fn of_event_type(event_type: EventType) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.event_type() == event_type)
    }

    /// The event type carrying a decision with this status. The decision types are listed once,
    /// in [`ledger::event::DECISION_TYPES`] ([`EventType::is_decision`] reads it); this is the
    /// typed mapping onto them, checked against that list by a test.
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
    pub const fn as_str(self) -> &'static str {
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
    /// A custom gate's reason code (its policy's own vocabulary), when it did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Why a decision is what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reason {
    /// Reason code.
    pub code: ReasonCode,
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
        self.reasons.iter().filter(|r| r.code.is_blocking())
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
        Canonical(data),
    )
}

/// A decision's `data` (or one of its records) as the ledger signs it: every object's keys in
/// byte order, the form a `serde_json::Value` (a sorted map) serialises to, which is what
/// decision bodies were made from until the twenty-first session of issue 20 wrote it directly
/// (the round trip through a `Value` was about a tenth of the audit's fold). Each record is
/// destructured whole, so a field added to it does not compile until it is placed here; the
/// tests compare the bytes with the `Value` round trip.
#[derive(Debug)]
pub(crate) struct Canonical<'a, T>(pub(crate) &'a T);

impl Serialize for Canonical<'_, DecisionData> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let DecisionData {
            status,
            policy_version,
            evaluated_at,
            trigger,
            evidence,
            gates,
            reasons,
            retry_after,
            retryable,
            suggested_fix,
            risk_score,
            risk_factors,
        } = self.0;
        let mut map = serializer.serialize_map(Some(12))?;
        map.serialize_entry("evaluatedAt", evaluated_at)?;
        map.serialize_entry("evidence", evidence)?;
        map.serialize_entry("gates", &Each(gates))?;
        map.serialize_entry("policyVersion", policy_version)?;
        map.serialize_entry("reasons", &Each(reasons))?;
        map.serialize_entry("retryAfter", retry_after)?;
        map.serialize_entry("retryable", retryable)?;
        map.serialize_entry("riskFactors", &Each(risk_factors))?;
        map.serialize_entry("riskScore", risk_score)?;
        map.serialize_entry("status", status)?;
        map.serialize_entry("suggestedFix", suggested_fix)?;
        map.serialize_entry("trigger", trigger)?;
        map.end()
    }
}

impl Serialize for Canonical<'_, Gate> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Gate { gate, target, observed, verdict, code } = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(code) = code {
            map.serialize_entry("code", code)?;
        }
        map.serialize_entry("gate", gate)?;
        map.serialize_entry("observed", observed)?;
        map.serialize_entry("target", target)?;
        map.serialize_entry("verdict", verdict)?;
        map.end()
    }
}

impl Serialize for Canonical<'_, Reason> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Reason { code, module, detail } = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("code", code)?;
        map.serialize_entry("detail", detail)?;
        if let Some(module) = module {
            map.serialize_entry("module", module)?;
        }
        map.end()
    }
}

impl Serialize for Canonical<'_, RiskFactor> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let RiskFactor { factor, value, points } = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("factor", factor)?;
        map.serialize_entry("points", points)?;
        map.serialize_entry("value", value)?;
        map.end()
    }
}

/// An upper bound of the length of `data`'s canonical JSON ([`json_len`] of
/// [`Canonical`]`(data)`), from lengths alone: no escaping scanned, no number formatted. A
/// string takes at most six bytes a byte (`\u00XX`) and its quotes; a number at most 20
/// digits; a field's key, colon and comma, or a unit enum's quoted name, at most 20 bytes.
/// [`crate::gates::bounded`] counts exactly only when this bound passes the limit: serialising
/// every decision to count it was a percent of `ledger-audit verify` (BENCHMARKS.md, issue 20,
/// twenty-fourth session).
pub(crate) fn json_len_bound(data: &DecisionData) -> usize {
    /// A key with its quotes, colon and comma, or a unit enum's quoted name and comma: the
    /// longest are `"policyVersion":,` and `"NotApplicable",` (17 and 16 bytes).
    const FIELD: usize = 20;
    const NUMBER: usize = 20;
    const NULL_OR_BOOL: usize = 5;
    fn text(s: &str) -> usize {
        6 * s.len() + 2
    }
    fn optional(s: &Option<String>) -> usize {
        s.as_deref().map_or(NULL_OR_BOOL, text)
    }
    /// A list: brackets, and each item's length and comma.
    fn list<T>(items: &[T], each: impl Fn(&T) -> usize) -> usize {
        2 + items.iter().map(|item| each(item) + 1).sum::<usize>()
    }
    let DecisionData {
        status: _,
        policy_version: _,
        evaluated_at,
        trigger: _,
        evidence,
        gates,
        reasons,
        retry_after,
        retryable: _,
        suggested_fix,
        risk_score: _,
        risk_factors,
    } = data;
    let gates = list(gates, |Gate { gate, target, observed, verdict: _, code }| {
        2 + 5 * FIELD + text(gate) + text(target) + text(observed) + FIELD + optional(code)
    });
    let reasons = list(reasons, |Reason { code, module, detail }| {
        2 + 3 * FIELD + text(code.as_str()) + text(detail) + optional(module)
    });
    let risk_factors = list(risk_factors, |RiskFactor { factor, value, points: _ }| {
        2 + 3 * FIELD + text(factor) + text(value) + NUMBER
    });
    // Braces, twelve keys, the status's name, the numbers and booleans, the lists.
    2 + 12 * FIELD
        + FIELD
        + 4 * NUMBER
        + NULL_OR_BOOL
        + text(evaluated_at)
        + list(evidence, |_| NUMBER)
        + gates
        + reasons
        + optional(retry_after)
        + optional(suggested_fix)
        + risk_factors
}

/// The length of `value`'s JSON, counted without keeping the bytes (`None`: it does not
/// serialise).
pub(crate) fn json_len(value: &impl Serialize) -> Option<usize> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).ok().map(|()| count.0)
}

/// A list of records, each in its canonical form.
struct Each<'a, T>(&'a [T]);

impl<T> Serialize for Each<'_, T>
where
    for<'b> Canonical<'b, T>: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Canonical))
    }
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

fn ledger_body<D: Serialize>(
    tenant: &str,
    release: &str,
    event_type: EventType,
    event_id: &str,
    trace_id: Option<&str>,
    at_ns: i64,
    data: D,
) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a, D> {
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
        data: D,
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
    use proptest::prelude::*;

    /// Text that JSON escapes to six bytes a byte (`\u00XX`), text with shorter escapes
    /// (quotes, backslashes, `\n`), and text it does not escape.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[\\x00-\\x07\\x0b\\x0e-\\x1f]{0,200}",
            "[\\x00-\\x1f\"\\\\]{0,40}",
            "\\PC{0,40}",
            "[a-z:<= ]{0,12}",
        ]
    }

    fn any_decision() -> impl Strategy<Value = DecisionData> {
        let status = prop::sample::select(vec![
            DecisionStatus::Planned,
            DecisionStatus::Approved,
            DecisionStatus::Rejected,
            DecisionStatus::Delayed,
            DecisionStatus::Published,
        ]);
        let verdict =
            prop::sample::select(vec![Verdict::Pass, Verdict::Fail, Verdict::Pending, Verdict::NotApplicable]);
        let gate = (any_text(), any_text(), any_text(), verdict, prop::option::of(any_text()))
            .prop_map(|(gate, target, observed, verdict, code)| Gate { gate, target, observed, verdict, code });
        let code = prop_oneof![prop::sample::select(ReasonCode::ALL.to_vec()), any_text().prop_map(ReasonCode::Other),];
        let reason = (code, prop::option::of(any_text()), any_text()).prop_map(|(code, module, detail)| Reason {
            code,
            module,
            detail,
        });
        let factor = (any_text(), any_text(), any::<u32>()).prop_map(|(factor, value, points)| RiskFactor {
            factor,
            value,
            points,
        });
        (
            (
                status,
                prop::option::of(any::<u64>()),
                any_text(),
                any::<u64>(),
                prop::collection::vec(any::<u64>(), 0..8),
            ),
            (prop::collection::vec(gate, 0..6), prop::collection::vec(reason, 0..6)),
            (prop::option::of(any_text()), any::<bool>(), prop::option::of(any_text()), any::<u32>()),
            prop::collection::vec(factor, 0..6),
        )
            .prop_map(
                |(
                    (status, policy_version, evaluated_at, trigger, evidence),
                    (gates, reasons),
                    (retry_after, retryable, suggested_fix, risk_score),
                    risk_factors,
                )| DecisionData {
                    status,
                    policy_version,
                    evaluated_at,
                    trigger,
                    evidence,
                    gates,
                    reasons,
                    retry_after,
                    retryable,
                    suggested_fix,
                    risk_score,
                    risk_factors,
                },
            )
    }

    proptest! {
        /// `bounded` counts exactly only above the bound, so the bound must never be below the
        /// exact length: it fails with a string counted at five bytes a byte.
        #[test]
        fn the_length_bound_is_never_below_the_canonical_json(data in any_decision()) {
            let exact = json_len(&Canonical(&data)).unwrap();
            prop_assert_eq!(exact, serde_json::to_vec(&Canonical(&data)).unwrap().len());
            prop_assert!(json_len_bound(&data) >= exact, "bound {} < {exact}", json_len_bound(&data));
        }
    }

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
                code: None,
            }],
            reasons: vec![Reason {
                code: ReasonCode::SecurityGateFailed,
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

    /// Every optional part present and absent, strings that need escaping, an unknown code.
    fn varied() -> Vec<DecisionData> {
        let mut all = vec![sample()];
        let mut full = sample();
        full.policy_version = None;
        full.retry_after = Some(format_ns(1_748_000_100_000_000_000));
        full.retryable = true;
        full.suggested_fix = None;
        full.evidence = vec![];
        full.gates.push(Gate {
            gate: "custom:\"quoted\" \\ gate\u{e9}\u{1f600}".into(),
            target: "line\nbreak\ttab\u{7}".into(),
            observed: String::new(),
            verdict: Verdict::NotApplicable,
            code: Some("R-1</script>".into()),
        });
        full.reasons.push(Reason {
            code: ReasonCode::Other("QuantumFlux".into()),
            module: None,
            detail: "\u{0}".into(),
        });
        full.risk_factors = vec![
            RiskFactor { factor: "age".into(), value: "3 days".into(), points: 0 },
            RiskFactor { factor: "cve".into(), value: "Critical".into(), points: u32::MAX },
        ];
        all.push(full);
        for status in DecisionStatus::ALL {
            let mut d = sample();
            d.status = status;
            d.gates.clear();
            d.reasons.clear();
            d.trigger = u64::MAX;
            all.push(d);
        }
        all
    }

    /// Checked by breaking it (2026-12-07): `retryable` written before `retryAfter`, and an
    /// absent gate code written as `null`, each fail here.
    #[test]
    fn canonical_data_is_the_bytes_of_the_value_round_trip() {
        for data in varied() {
            let direct = serde_json::to_vec(&Canonical(&data)).unwrap();
            let through_value = serde_json::to_vec(&serde_json::to_value(&data).unwrap()).unwrap();
            assert_eq!(String::from_utf8(direct.clone()).unwrap(), String::from_utf8(through_value).unwrap());
            assert_eq!(json_len(&Canonical(&data)), Some(direct.len()));
            assert_eq!(json_len(&data), Some(direct.len()), "the same keys and values in another order");
            // And the body made from it reads back as the record.
            let body = decision_body("t", "r1", None, 1_748_000_000_000_000_000, &data);
            let parsed = ledger::ParsedEvent::parse(&body).unwrap();
            let gov = crate::catalogue::GovEvent::parse(&parsed).unwrap();
            assert!(matches!(gov.data, crate::catalogue::GovData::Decision(d) if *d == data));
        }
    }

    #[test]
    fn decision_types_are_the_ledgers_and_the_statuses_name_them() {
        let ours: Vec<&str> = DecisionStatus::ALL.iter().map(|s| s.event_type().as_str()).collect();
        assert_eq!(ours, ledger::event::DECISION_TYPES);
        let decisions: Vec<EventType> = EventType::ALL.iter().copied().filter(|t| t.is_decision()).collect();
        assert_eq!(decisions.len(), DecisionStatus::ALL.len());
        for status in DecisionStatus::ALL {
            assert_eq!(DecisionStatus::of_event_type(status.event_type()), Some(status));
            assert_eq!(status.event_type().as_str(), format!("Release{}", status.as_str()));
        }
        assert_eq!(DecisionStatus::of_event_type(EventType::DeploymentCompleted), None);
    }

    #[test]
    fn codes_classify() {
        use ReasonCode::*;
        assert!(TestsIncomplete.rejects() && TestsIncomplete.retryable());
        assert!(SecurityGateFailed.rejects() && !SecurityGateFailed.retryable());
        assert!(!ChangeFreezeActive.rejects() && ChangeFreezeActive.is_blocking());
        assert!(!SelfApproval.is_blocking());
    }

    #[test]
    fn reason_codes_serialise_as_their_names_and_unknown_ones_read_back_as_written() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(&serde_json::from_str::<ReasonCode>(&json).unwrap(), code);
        }
        assert_eq!(ReasonCode::TestsIncomplete.as_str(), "TestsIncomplete");
        let unknown: ReasonCode = serde_json::from_str("\"QuantumFlux\"").unwrap();
        assert_eq!(unknown, ReasonCode::Other("QuantumFlux".into()));
        assert!(!unknown.is_blocking() && !unknown.rejects());
        assert_eq!(serde_json::to_string(&unknown).unwrap(), "\"QuantumFlux\"");
    }
}
