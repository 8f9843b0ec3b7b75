//! A tenant's release decisions over a period as an OSCAL 1.1.2 `assessment-results` document
//! (JSON), the form GRC tools import (docs/oscal.md).
//!
//! The document is a pure function of log entries: the decision entries of the period and the
//! entries their `evidence` names. A client that read and verified those entries (hashes,
//! chain links, the ledger key's signature on each decision, inclusion in a checkpoint) builds
//! it; nothing here reads a clock or does I/O. Fields serialise in declaration order, every
//! list is in seq order and every UUID is name-based (UUID v5 in [`UUID_NAMESPACE`]), so the
//! same entries and period always give the same bytes, and re-exporting a period gives the
//! same document.
//!
//! Mapping (OSCAL → the log):
//! - `metadata.last-modified`: the latest decision's `evaluatedAt` (with no decision, the end
//!   of the period); `version`: the last decision's seq; `oscal-version`: `1.1.2`;
//! - `import-ap`: `#<uuid>` of a `back-matter` resource standing for the assessment plan,
//!   which no OSCAL document holds: the tenant's release policy, its rlinks the `PolicyUpdated`
//!   entries the decisions were evaluated under;
//! - one `result` for the period: `start` is the `--since` bound or the first decision's
//!   `evaluatedAt`, `end` the `--until` bound or the last decision's;
//! - one `observation` per decision entry (`ledger::event::DECISION_TYPES`): title naming the
//!   release and the decision, description with the reasons, `methods: ["TEST"]`, `collected`
//!   the decision's `evaluatedAt`, props in [`PROP_NS`] (decision type, status, release id,
//!   seq, entry hash, risk score, tenant, policy version, trigger seq), and `relevant-evidence`
//!   linking the decision entry itself and every evidence entry it names, each by URI
//!   (`https://<origin>/entries/<seq>`) with its seq and entry hash as props.
//!
//! No `finding` is written: a finding targets a control statement or objective of the plan,
//! and the release policy is not an OSCAL catalog with objective ids; inventing ids would claim
//! a control mapping nobody made. The outcome is on each observation (`status`,
//! `decision-type`) for tools to filter on.
//!
//! URIs use `https://` followed by the checkpoint origin, as the attestations do
//! ([`crate::attestation`]): they name, they do not locate.

use serde::Serialize;
use uuid::Uuid;

use crate::attestation::{self, AttestedEntry};
use crate::decision::{DecisionData, DecisionStatus};
use crate::event_type::EventType;

/// The OSCAL version the documents follow (the schema shipped in
/// `docs/schemas/oscal_assessment-results_schema.json`).
pub const OSCAL_VERSION: &str = "1.1.2";
/// The namespace of every prop this module writes (OSCAL props outside the NIST namespace
/// must name theirs).
pub const PROP_NS: &str = "https://release-ledger.dev/ns/oscal";
/// The namespace of the name-based UUIDs: itself UUID v5 of [`PROP_NS`] in the URL namespace
/// of RFC 9562, so anyone can re-derive it.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0xa78a88b3_c037_5126_8e22_2fb0bc6440a0);
/// The observation method: OSCAL's `TEST` ("a manual or automated test was performed"); the
/// ledger evaluates its policy's gates automatically.
pub const METHOD: &str = "TEST";
/// The earliest time an OSCAL `dateTime-with-timezone` can hold (its pattern allows the years
/// 1900 to 2999; the ledger's ns clock ends in 2262).
const OSCAL_EARLIEST_NS: i64 = -2_208_988_800_000_000_000;

/// Why a document cannot be built from the entries and period given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OscalError {
    /// A bound of the period is not a time an OSCAL document can hold.
    #[error("--{bound} {value:?}: {reason}")]
    Time {
        /// `since` or `until`.
        bound: &'static str,
        /// As given.
        value: String,
        /// Why.
        reason: String,
    },
    /// `until` is not after `since`.
    #[error("--until {until} is not after --since {since}: the period would be empty")]
    Period {
        /// As given.
        since: String,
        /// As given.
        until: String,
    },
    /// An entry of a decision type that is not a readable decision of the tenant.
    #[error(transparent)]
    NotADecision(#[from] attestation::AttestationError),
    /// Decisions not in ascending seq order.
    #[error("decision seq {seq} comes after seq {previous}: decisions must be given in seq order")]
    Order {
        /// The decision out of order.
        seq: u64,
        /// The one before it.
        previous: u64,
    },
    /// A decision whose `evaluatedAt` is outside the period.
    #[error("decision seq {seq} (evaluated at {evaluated_at}) is outside the period")]
    OutsidePeriod {
        /// The decision.
        seq: u64,
        /// Its `evaluatedAt`.
        evaluated_at: String,
    },
    /// An evidence entry a decision names is not among those given, or is not before it.
    #[error("decision seq {decision} names evidence seq {seq}, which {reason}")]
    Evidence {
        /// The decision.
        decision: u64,
        /// The evidence entry.
        seq: u64,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The period of a document: decisions whose `evaluatedAt` is at or after `since` and before
/// `until` (half-open, so consecutive periods share no decision).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    since: Option<(i64, String)>,
    until: Option<(i64, String)>,
}

impl Period {
    /// The period between two RFC 3339 bounds (either may be open), refused when a bound does
    /// not parse, lies before 1900 (OSCAL's earliest year) or `until` is not after `since`.
    pub fn new(since: Option<&str>, until: Option<&str>) -> Result<Self, OscalError> {
        let bound = |name: &'static str, text: Option<&str>| -> Result<Option<(i64, String)>, OscalError> {
            let Some(text) = text else { return Ok(None) };
            let bad = |reason: String| OscalError::Time { bound: name, value: text.to_owned(), reason };
            let ns = ledger::time::parse_rfc3339_ns(text).map_err(bad)?;
            if ns < OSCAL_EARLIEST_NS {
                return Err(bad("OSCAL date-times start in 1900".into()));
            }
            Ok(Some((ns, ledger::time::format_ns(ns))))
        };
        let (since, until) = (bound("since", since)?, bound("until", until)?);
        if let (Some((from, since)), Some((to, until))) = (&since, &until) {
            if to <= from {
                return Err(OscalError::Period { since: since.clone(), until: until.clone() });
            }
        }
        Ok(Self { since, until })
    }

    /// Whether a decision evaluated at `at_ns` falls in the period.
    pub fn contains(&self, at_ns: i64) -> bool {
        self.since.as_ref().is_none_or(|(since, _)| at_ns >= *since)
            && self.until.as_ref().is_none_or(|(until, _)| at_ns < *until)
    }
}

/// A decision entry, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The release it decides.
    pub release: String,
    /// Its `data`.
    pub data: DecisionData,
    /// Its `evaluatedAt`, ns since the epoch.
    pub evaluated_at_ns: i64,
}

/// The decision `entry` holds, `None` when it is not of a decision type (or is redacted, so
/// its type is unknown). An entry of a decision type that is not a readable decision of
/// `tenant` is an error.
pub fn decision(tenant: &str, entry: &AttestedEntry<'_>) -> Result<Option<Decided>, OscalError> {
    let Some(header) = header(entry) else { return Ok(None) };
    if !EventType::parse(&header.event_type).is_some_and(|t| t.is_decision()) {
        return Ok(None);
    }
    let release = header.release_id.unwrap_or_default();
    let data = attestation::decision_of(tenant, &release, entry)?;
    let evaluated_at_ns = ledger::time::parse_rfc3339_ns(&data.evaluated_at).map_err(|e| {
        attestation::AttestationError::NotADecision { seq: entry.seq, reason: format!("its evaluatedAt: {e}") }
    })?;
    Ok(Some(Decided { release, data, evaluated_at_ns }))
}

/// Whose decisions, from which log, over which period.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The checkpoint origin of the tenant's log.
    pub origin: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The period asked for.
    pub period: &'a Period,
    /// `recordedAt` of the first and the last entry read (ns): the bounds of a period given
    /// with neither bound nor decision.
    pub log_span: (u64, u64),
}

/// The document's bytes (pretty-printed JSON, a final newline): one observation per decision
/// of `decisions` (in seq order, each in the period), their evidence found in `evidence` (in
/// seq order; entries no decision names are ignored).
pub fn assessment_results(
    scope: &Scope<'_>,
    decisions: &[AttestedEntry<'_>],
    evidence: &[AttestedEntry<'_>],
) -> Result<Vec<u8>, OscalError> {
    let base = format!("https://{}", scope.origin);
    let entry_uri = |seq: u64| format!("{base}/entries/{seq}");
    let mut observations = Vec::with_capacity(decisions.len());
    let mut policies: Vec<u64> = Vec::new();
    let (mut first_ns, mut last_ns) = (None, None);
    let mut previous: Option<u64> = None;
    // Every entry hash the document is built from, in the order used: it names the revision.
    let mut digest = blake3::Hasher::new();
    for entry in decisions {
        digest.update(entry.entry_hash);
        if let Some(previous) = previous.filter(|p| *p >= entry.seq) {
            return Err(OscalError::Order { seq: entry.seq, previous });
        }
        previous = Some(entry.seq);
        let Some(decided) = decision(scope.tenant, entry)? else {
            return Err(attestation::AttestationError::NotADecision {
                seq: entry.seq,
                reason: "it is not of a decision type".into(),
            }
            .into());
        };
        let data = &decided.data;
        if !scope.period.contains(decided.evaluated_at_ns) {
            return Err(OscalError::OutsidePeriod { seq: entry.seq, evaluated_at: data.evaluated_at.clone() });
        }
        let decision_type = data.status.event_type().as_str();
        let hash = hex::encode(entry.entry_hash);
        let mut relevant = vec![Evidence {
            href: entry_uri(entry.seq),
            description: format!("The decision entry ({decision_type}), signed by the ledger key."),
            props: vec![prop("seq", entry.seq.to_string()), prop("entry-hash", hash.clone())],
        }];
        for &seq in &data.evidence {
            let bad = |reason| OscalError::Evidence { decision: entry.seq, seq, reason };
            if seq >= entry.seq {
                return Err(bad("is not before it"));
            }
            let found = evidence.binary_search_by_key(&seq, |e| e.seq).map_err(|_| bad("is not among those given"))?;
            let item = &evidence[found];
            digest.update(item.entry_hash);
            let event_type = header(item).map(|h| h.event_type);
            if event_type.as_deref() == Some(EventType::PolicyUpdated.as_str()) {
                policies.push(seq);
            }
            let mut props = vec![prop("seq", seq.to_string()), prop("entry-hash", hex::encode(item.entry_hash))];
            let description = match &event_type {
                Some(t) if is_token(t) => {
                    props.push(prop("event-type", t.clone()));
                    format!("Evidence entry seq {seq} ({t}).")
                }
                Some(_) => format!("Evidence entry seq {seq}."),
                None => format!("Evidence entry seq {seq} (redacted)."),
            };
            relevant.push(Evidence { href: entry_uri(seq), description, props });
        }
        let mut props = vec![
            prop("tenant", scope.tenant.to_owned()),
            prop("release-id", decided.release.clone()),
            prop("decision-type", decision_type.to_owned()),
            prop("status", data.status.as_str().to_owned()),
            prop("seq", entry.seq.to_string()),
            prop("entry-hash", hash.clone()),
            prop("risk-score", data.risk_score.to_string()),
            prop("trigger-seq", data.trigger.to_string()),
        ];
        if let Some(version) = data.policy_version {
            props.push(prop("policy-version", version.to_string()));
        }
        observations.push(Observation {
            uuid: uuid_of(&format!("{}\n{}\n{}\n{hash}", scope.origin, scope.tenant, entry.seq)),
            title: format!("{decision_type} of release {}", decided.release),
            description: describe(&decided),
            props,
            methods: [METHOD],
            relevant_evidence: relevant,
            collected: ledger::time::format_ns(decided.evaluated_at_ns),
        });
        first_ns = first_ns.or(Some(decided.evaluated_at_ns));
        last_ns = Some(decided.evaluated_at_ns);
    }
    policies.sort();
    policies.dedup();

    // With no decision and a bound missing, the log's first or last entry stands in for it,
    // clamped so that the result never ends before it starts.
    let span = |ns: u64| i64::try_from(ns).unwrap_or(i64::MAX);
    let (since, until) = (scope.period.since.as_ref().map(|b| b.0), scope.period.until.as_ref().map(|b| b.0));
    let start_ns = since.or(first_ns).unwrap_or_else(|| span(scope.log_span.0));
    let end_ns = until.or(last_ns).unwrap_or_else(|| span(scope.log_span.1).max(start_ns));
    let start_ns = start_ns.min(end_ns);
    let (start, end) = (ledger::time::format_ns(start_ns), ledger::time::format_ns(end_ns));
    let last_modified = last_ns.map_or_else(|| end.clone(), ledger::time::format_ns);
    let (origin, tenant) = (scope.origin, scope.tenant);
    let plan_uuid = uuid_of(&format!("assessment-plan\n{origin}\n{tenant}"));
    let seqs = match (decisions.first(), decisions.last()) {
        (Some(first), Some(last)) => format!("seqs {} to {}", first.seq, last.seq),
        _ => "no decision".to_owned(),
    };
    let document = Document {
        assessment_results: AssessmentResults {
            uuid: uuid_of(&format!(
                "assessment-results\n{origin}\n{tenant}\n{start}\n{end}\n{}",
                digest.finalize().to_hex()
            )),
            metadata: Metadata {
                title: format!("Release decisions of tenant {tenant}"),
                last_modified,
                version: decisions.last().map_or_else(|| "empty".to_owned(), |d| format!("seq {}", d.seq)),
                oscal_version: OSCAL_VERSION,
                props: vec![prop("tenant", tenant.to_owned()), prop("origin", origin.to_owned())],
                remarks: format!(
                    "Built from the tenant's log {base}: every decision entry verified (signed by the ledger key, \
                     included in a checkpoint the ledger key signed) and every evidence entry chain-checked."
                ),
            },
            import_ap: ImportAp {
                href: format!("#{plan_uuid}"),
                remarks: "No OSCAL assessment plan exists: the plan is the tenant's release policy, recorded in its \
                          log (the back-matter resource this points to)."
                    .to_owned(),
            },
            results: [AssessmentResult {
                uuid: uuid_of(&format!("result\n{origin}\n{tenant}\n{start}\n{end}")),
                title: format!("Release decisions of tenant {tenant} from {start} to {end}"),
                description: format!(
                    "{} decision(s) of the release ledger ({seqs}), evaluated at or after the start and {} the end. \
                     Each observation is one decision entry with its evidence.",
                    decisions.len(),
                    if scope.period.until.is_some() { "before" } else { "at or before" }
                ),
                start,
                end,
                props: vec![prop("tenant", tenant.to_owned()), prop("decision-count", decisions.len().to_string())],
                reviewed_controls: ReviewedControls {
                    control_selections: [ControlSelection { include_all: IncludeAll {} }],
                    remarks: "Every gate of the release policy in force (import-ap) is evaluated for every decision.",
                },
                observations,
            }],
            back_matter: BackMatter {
                resources: [Resource {
                    uuid: plan_uuid,
                    title: format!("Release policy of tenant {tenant}"),
                    props: vec![prop("tenant", tenant.to_owned())],
                    rlinks: policies
                        .iter()
                        .map(|seq| Rlink { href: entry_uri(*seq), media_type: "application/json" })
                        .collect(),
                    remarks: "The assessment plan of these results: the tenant's release policy, set by its \
                              PolicyUpdated entries (linked here when a decision names one as evidence). The \
                              entry hash of each is in the decisions' evidence props."
                        .to_owned(),
                }],
            },
        },
    };
    let mut bytes = serde_json::to_vec_pretty(&document).unwrap_or_default();
    bytes.push(b'\n');
    Ok(bytes)
}

/// The name-based UUID of `name` in [`UUID_NAMESPACE`].
pub fn uuid_of(name: &str) -> String {
    Uuid::new_v5(&UUID_NAMESPACE, name.as_bytes()).to_string()
}

/// The description of a decision: its outcome, when, and its reasons, in Markdown (OSCAL's
/// `markup-multiline`).
fn describe(decided: &Decided) -> String {
    let data = &decided.data;
    let outcome = match data.status {
        DecisionStatus::Planned => "planned (its intent is recorded; evidence is being gathered)",
        DecisionStatus::Approved => "approved",
        DecisionStatus::Delayed => "delayed",
        DecisionStatus::Rejected => "rejected",
        DecisionStatus::Published => "published",
    };
    let policy = data.policy_version.map_or_else(|| "no policy".to_owned(), |v| format!("policy version {v}"));
    let mut text = format!(
        "Release {} was {outcome} by the ledger at {} under {policy} (trigger seq {}), risk score {}.",
        decided.release, data.evaluated_at, data.trigger, data.risk_score
    );
    if data.reasons.is_empty() {
        text.push_str("\n\nNo reasons: every gate the policy asks for passed.");
    } else {
        text.push_str("\n\nReasons:\n");
        for reason in &data.reasons {
            let module = reason.module.as_deref().map(|m| format!(" ({m})")).unwrap_or_default();
            text.push_str(&format!("\n- {}{module}: {}", reason.code, reason.detail));
        }
    }
    if let Some(retry) = &data.retry_after {
        text.push_str(&format!("\n\nThe ledger evaluates it again at {retry}."));
    }
    if let Some(fix) = &data.suggested_fix {
        text.push_str(&format!("\n\nSuggested fix: {fix}"));
    }
    text
}

/// Whether `text` is an OSCAL token (a letter or `_`, then letters, digits, `.`, `-`, `_`).
fn is_token(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

fn prop(name: &'static str, value: String) -> Prop {
    Prop { name, ns: PROP_NS, value }
}

/// The header fields of an event body read here.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    release_id: Option<String>,
}

fn header(entry: &AttestedEntry<'_>) -> Option<Header> {
    serde_json::from_slice(entry.payload?).ok()
}

#[derive(Serialize)]
struct Document {
    #[serde(rename = "assessment-results")]
    assessment_results: AssessmentResults,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentResults {
    uuid: String,
    metadata: Metadata,
    import_ap: ImportAp,
    results: [AssessmentResult; 1],
    back_matter: BackMatter,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Metadata {
    title: String,
    last_modified: String,
    version: String,
    oscal_version: &'static str,
    props: Vec<Prop>,
    remarks: String,
}

#[derive(Serialize)]
struct ImportAp {
    href: String,
    remarks: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct AssessmentResult {
    uuid: String,
    title: String,
    description: String,
    start: String,
    end: String,
    props: Vec<Prop>,
    reviewed_controls: ReviewedControls,
    // OSCAL arrays hold at least one item: an empty period has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    observations: Vec<Observation>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ReviewedControls {
    control_selections: [ControlSelection; 1],
    remarks: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ControlSelection {
    include_all: IncludeAll,
}

#[derive(Serialize)]
struct IncludeAll {}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Observation {
    uuid: String,
    title: String,
    description: String,
    props: Vec<Prop>,
    methods: [&'static str; 1],
    relevant_evidence: Vec<Evidence>,
    collected: String,
}

#[derive(Serialize)]
struct Evidence {
    href: String,
    description: String,
    props: Vec<Prop>,
}

#[derive(Serialize)]
struct Prop {
    name: &'static str,
    ns: &'static str,
    value: String,
}

#[derive(Serialize)]
struct BackMatter {
    resources: [Resource; 1],
}

#[derive(Serialize)]
struct Resource {
    uuid: String,
    title: String,
    props: Vec<Prop>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rlinks: Vec<Rlink>,
    remarks: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Rlink {
    href: String,
    media_type: &'static str,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decision::{decision_body, Reason, ReasonCode};

    const TENANT: &str = "acme";
    const ORIGIN: &str = "ledger.example/acme";

    /// The published OSCAL 1.1.2 assessment-results schema, shipped in the repo, as a draft-07
    /// validator that also checks formats (`date-time`, `uri-reference`). Building it compiles
    /// every pattern of the schema (the `\p{L}` classes of tokens among them): a pattern the
    /// engine cannot compile fails the build.
    fn validator() -> jsonschema::Validator {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/schemas/oscal_assessment-results_schema.json");
        let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(schema["$id"], "http://csrc.nist.gov/ns/oscal/1.1.2/oscal-ar-schema.json");
        jsonschema::draft7::options().should_validate_formats(true).build(&schema).unwrap()
    }

    fn errors(validator: &jsonschema::Validator, document: &serde_json::Value) -> Vec<String> {
        validator.iter_errors(document).map(|e| format!("{} at {}", e, e.instance_path())).collect()
    }

    /// An event body of tenant `acme` (the tests' TENANT).
    fn body(event_type: &str, release: Option<&str>, data: serde_json::Value) -> Vec<u8> {
        crate::test_support::body(TENANT, event_type, release, data)
    }

    fn decision_bytes(
        release: &str,
        status: DecisionStatus,
        at: &str,
        evidence: Vec<u64>,
        reasons: Vec<Reason>,
    ) -> Vec<u8> {
        let data = DecisionData {
            status,
            policy_version: Some(1),
            evaluated_at: at.into(),
            trigger: *evidence.last().unwrap(),
            evidence,
            gates: vec![],
            reasons,
            retry_after: None,
            retryable: true,
            suggested_fix: None,
            risk_score: 20,
            risk_factors: vec![],
        };
        decision_body(TENANT, release, None, ledger::time::parse_rfc3339_ns(at).unwrap(), &data)
    }

    /// seq 0 a policy, 1 an intent, 2 tests, 3 an approval of r1 at 09:33; 4 an intent of r2,
    /// 5 a rejection of r2 at 10:00.
    struct Log {
        hashes: Vec<[u8; 32]>,
        payloads: Vec<Vec<u8>>,
    }

    impl Log {
        fn new() -> Self {
            let cve = Reason { code: ReasonCode::SecurityGateFailed, module: Some("api".into()), detail: "CVE".into() };
            let payloads = vec![
                body("PolicyUpdated", None, serde_json::json!({"version": 1})),
                body("ReleaseIntentDeclared", Some("r1"), serde_json::json!({})),
                body("TestsPassed", Some("r1"), serde_json::json!({})),
                decision_bytes("r1", DecisionStatus::Approved, "2026-05-23T09:33:00Z", vec![0, 1, 2], vec![]),
                body("ReleaseIntentDeclared", Some("r2"), serde_json::json!({})),
                decision_bytes("r2", DecisionStatus::Rejected, "2026-05-23T10:00:00.5Z", vec![0, 4], vec![cve]),
            ];
            let hashes = payloads.iter().map(|p| *blake3::hash(p).as_bytes()).collect();
            Self { hashes, payloads }
        }

        fn entry(&self, seq: u64) -> AttestedEntry<'_> {
            let i = usize::try_from(seq).unwrap();
            AttestedEntry { seq, entry_hash: &self.hashes[i], payload: Some(&self.payloads[i]) }
        }

        fn all(&self) -> Vec<AttestedEntry<'_>> {
            (0..self.payloads.len() as u64).map(|s| self.entry(s)).collect()
        }

        fn build(&self, period: &Period, decisions: &[u64]) -> Result<Vec<u8>, OscalError> {
            let scope = Scope { origin: ORIGIN, tenant: TENANT, period, log_span: (1, 2) };
            let decisions: Vec<_> = decisions.iter().map(|&s| self.entry(s)).collect();
            assessment_results(&scope, &decisions, &self.all())
        }

        fn document(&self, period: &Period, decisions: &[u64]) -> serde_json::Value {
            serde_json::from_slice(&self.build(period, decisions).unwrap()).unwrap()
        }
    }

    fn prop<'a>(props: &'a serde_json::Value, name: &str) -> &'a str {
        let found = props.as_array().unwrap().iter().find(|p| p["name"] == name);
        found.unwrap_or_else(|| panic!("no prop {name} in {props}"))["value"].as_str().unwrap()
    }

    #[test]
    fn an_oscal_document_of_two_decisions_validates_against_the_published_schema() {
        let log = Log::new();
        let document = log.document(&Period::default(), &[3, 5]);
        assert_eq!(errors(&validator(), &document), Vec::<String>::new());
        let ar = &document["assessment-results"];
        assert_eq!(ar["metadata"]["oscal-version"], "1.1.2");
        assert_eq!(ar["metadata"]["last-modified"], "2026-05-23T10:00:00.500000000Z");
        assert_eq!(ar["metadata"]["version"], "seq 5");
        let result = &ar["results"][0];
        assert_eq!(
            (result["start"].as_str(), result["end"].as_str()),
            (Some("2026-05-23T09:33:00Z"), ar["metadata"]["last-modified"].as_str())
        );
        let observations = result["observations"].as_array().unwrap();
        assert_eq!(observations.len(), 2, "one observation per decision");
        let approval = &observations[0];
        assert_eq!(approval["title"], "ReleaseApproved of release r1");
        assert_eq!(approval["methods"], serde_json::json!([METHOD]));
        assert_eq!(approval["collected"], "2026-05-23T09:33:00Z");
        assert_eq!(prop(&approval["props"], "decision-type"), "ReleaseApproved");
        assert_eq!(prop(&approval["props"], "entry-hash"), hex::encode(log.hashes[3]));
        assert_eq!(prop(&approval["props"], "risk-score"), "20");
        assert!(approval["props"].as_array().unwrap().iter().all(|p| p["ns"] == PROP_NS));
        // The decision entry itself, then its three evidence entries, by URI and entry hash.
        let evidence = approval["relevant-evidence"].as_array().unwrap();
        let hrefs: Vec<&str> = evidence.iter().map(|e| e["href"].as_str().unwrap()).collect();
        let expected: Vec<String> = [3, 0, 1, 2].iter().map(|s| format!("https://{ORIGIN}/entries/{s}")).collect();
        assert_eq!(hrefs, expected);
        assert_eq!(prop(&evidence[2]["props"], "entry-hash"), hex::encode(log.hashes[1]));
        assert_eq!(prop(&evidence[2]["props"], "event-type"), "ReleaseIntentDeclared");
        let rejection = &observations[1];
        assert_eq!(prop(&rejection["props"], "status"), "Rejected");
        let description = rejection["description"].as_str().unwrap();
        assert!(description.contains("- SecurityGateFailed (api): CVE"), "{description}");
        // Name-based UUIDs anyone can re-derive; the plan is the back-matter resource.
        let name = format!("{ORIGIN}\n{TENANT}\n3\n{}", hex::encode(log.hashes[3]));
        assert_eq!(approval["uuid"], Uuid::new_v5(&UUID_NAMESPACE, name.as_bytes()).to_string());
        let plan = &ar["back-matter"]["resources"][0];
        assert_eq!(ar["import-ap"]["href"], format!("#{}", plan["uuid"].as_str().unwrap()));
        assert_eq!(
            plan["rlinks"],
            serde_json::json!([{"href": format!("https://{ORIGIN}/entries/0"), "media-type": "application/json"}])
        );
    }

    #[test]
    fn the_oscal_uuid_namespace_is_uuid_v5_of_the_prop_namespace() {
        assert_eq!(UUID_NAMESPACE, Uuid::new_v5(&Uuid::NAMESPACE_URL, PROP_NS.as_bytes()));
    }

    /// The validator is not a rubber stamp: documents broken one way each are refused.
    #[test]
    fn the_oscal_schema_refuses_broken_documents() {
        let validator = validator();
        let good = Log::new().document(&Period::default(), &[3, 5]);
        assert!(validator.is_valid(&good));
        let broken = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut document = good.clone();
            edit(&mut document["assessment-results"]);
            errors(&validator, &document)
        };
        let no_methods = broken(&|ar| {
            ar["results"][0]["observations"][0].as_object_mut().unwrap().remove("methods");
        });
        assert!(no_methods.iter().any(|e| e.contains("methods")), "{no_methods:?}");
        let bad_uuid = broken(&|ar| ar["results"][0]["observations"][1]["uuid"] = "not-a-uuid".into());
        assert!(bad_uuid.iter().any(|e| e.contains("not-a-uuid")), "{bad_uuid:?}");
        let v1_uuid = broken(&|ar| ar["uuid"] = "c232ab00-9414-11ec-b3c8-9f6bdeced846".into());
        assert!(!v1_uuid.is_empty(), "OSCAL UUIDs are v4 or v5");
        let empty = broken(&|ar| ar["results"][0]["observations"] = serde_json::json!([]));
        assert!(!empty.is_empty(), "arrays hold one item at least");
        let no_zone = broken(&|ar| ar["results"][0]["start"] = "2026-05-23T09:33:00".into());
        assert!(!no_zone.is_empty(), "date-times carry a time zone");
        // Tokens are `\p{L}` classes: a name starting with a digit is refused, a non-ASCII
        // letter accepted (the pattern compiled as Unicode, not ignored).
        let digit = broken(&|ar| ar["metadata"]["props"][0]["name"] = "1tenant".into());
        assert!(!digit.is_empty(), "{digit:?}");
        let letter = broken(&|ar| ar["metadata"]["props"][0]["name"] = "é-tenant".into());
        assert!(letter.is_empty(), "{letter:?}");
        let extra = broken(&|ar| ar["results"][0]["verdict"] = "ok".into());
        assert!(!extra.is_empty(), "no fields beyond the model");
    }

    #[test]
    fn the_same_entries_give_the_same_oscal_bytes_and_other_entries_other_bytes() {
        let (a, b) = (Log::new(), Log::new());
        assert_eq!(a.build(&Period::default(), &[3, 5]).unwrap(), b.build(&Period::default(), &[3, 5]).unwrap());
        let mut c = Log::new();
        c.hashes[1][0] ^= 1;
        let (before, after) = (a.document(&Period::default(), &[3, 5]), c.document(&Period::default(), &[3, 5]));
        assert_ne!(before, after);
        // The document is another revision; the period's result and the untouched decisions
        // keep their UUIDs.
        let ar = |d: &serde_json::Value| d["assessment-results"].clone();
        assert_ne!(ar(&before)["uuid"], ar(&after)["uuid"]);
        assert_eq!(ar(&before)["results"][0]["uuid"], ar(&after)["results"][0]["uuid"]);
        assert_eq!(
            ar(&before)["results"][0]["observations"][0]["uuid"],
            ar(&after)["results"][0]["observations"][0]["uuid"]
        );
    }

    /// Checked by breaking it: with `observations` written even when empty (`[]`), the empty
    /// period's document fails the schema (arrays hold one item at least).
    #[test]
    fn an_oscal_period_bounds_the_result_and_an_empty_one_is_valid() {
        let log = Log::new();
        let period = Period::new(Some("2026-05-23T11:33:00+02:00"), Some("2026-05-23T10:00:00Z")).unwrap();
        assert!(period.contains(ledger::time::parse_rfc3339_ns("2026-05-23T09:33:00Z").unwrap()));
        assert!(!period.contains(ledger::time::parse_rfc3339_ns("2026-05-23T10:00:00Z").unwrap()), "half-open");
        let document = log.document(&period, &[3]);
        let result = &document["assessment-results"]["results"][0];
        assert_eq!(
            (result["start"].as_str(), result["end"].as_str()),
            (Some("2026-05-23T09:33:00Z"), Some("2026-05-23T10:00:00Z"))
        );
        let err = log.build(&period, &[3, 5]).unwrap_err();
        assert!(matches!(err, OscalError::OutsidePeriod { seq: 5, .. }), "{err}");

        let empty = Period::new(Some("2027-01-01T00:00:00Z"), None).unwrap();
        let document = log.document(&empty, &[]);
        assert_eq!(errors(&validator(), &document), Vec::<String>::new());
        let ar = &document["assessment-results"];
        assert!(ar["results"][0].get("observations").is_none());
        assert_eq!(ar["results"][0]["start"], "2027-01-01T00:00:00Z");
        // The log ends before the bound: the result does not end before it starts.
        assert_eq!(ar["results"][0]["end"], "2027-01-01T00:00:00Z");
        let before = Period::new(None, Some("1970-01-01T00:00:00.000000001Z")).unwrap();
        let document = log.document(&before, &[]);
        let result = &document["assessment-results"]["results"][0];
        assert_eq!(
            (result["start"].as_str(), result["end"].as_str()),
            (Some("1970-01-01T00:00:00.000000001Z"), Some("1970-01-01T00:00:00.000000001Z"))
        );
        let unbounded = log.document(&Period::default(), &[]);
        let result = &unbounded["assessment-results"]["results"][0];
        assert_eq!(
            (result["start"].as_str(), result["end"].as_str()),
            (Some("1970-01-01T00:00:00.000000001Z"), Some("1970-01-01T00:00:00.000000002Z")),
            "the log's span"
        );
        assert_eq!(ar["metadata"]["version"], "empty");
    }

    #[test]
    fn bad_oscal_periods_are_refused_by_name() {
        let err = Period::new(Some("yesterday"), None).unwrap_err();
        assert!(err.to_string().starts_with("--since \"yesterday\""), "{err}");
        let err = Period::new(Some("2026-05-23T10:00:00Z"), Some("2026-05-23T09:00:00Z")).unwrap_err();
        assert!(matches!(err, OscalError::Period { .. }), "{err}");
        assert!(
            Period::new(Some("2026-05-23T10:00:00Z"), Some("2026-05-23T12:00:00+02:00")).is_err(),
            "the same instant"
        );
        let err = Period::new(None, Some("1899-12-31T23:59:59Z")).unwrap_err();
        assert!(err.to_string().contains("1900"), "{err}");
    }

    #[test]
    fn oscal_entries_that_are_not_decisions_in_order_with_their_evidence_are_refused() {
        let log = Log::new();
        let all = Period::default();
        let err = log.build(&all, &[5, 3]).unwrap_err();
        assert!(matches!(err, OscalError::Order { seq: 3, previous: 5 }), "{err}");
        let err = log.build(&all, &[2]).unwrap_err();
        assert!(err.to_string().contains("not of a decision type"), "{err}");
        assert_eq!(decision(TENANT, &log.entry(2)).unwrap(), None);
        assert!(decision("other", &log.entry(3)).unwrap_err().to_string().contains("not about release"));
        let scope = Scope { origin: ORIGIN, tenant: TENANT, period: &all, log_span: (1, 2) };
        let without_intent: Vec<_> = log.all().into_iter().filter(|e| e.seq != 1).collect();
        let err = assessment_results(&scope, &[log.entry(3)], &without_intent).unwrap_err();
        assert!(matches!(err, OscalError::Evidence { decision: 3, seq: 1, .. }), "{err}");
    }
}
