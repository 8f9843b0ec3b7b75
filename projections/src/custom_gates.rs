//! Custom gates: the input a policy's Rego gates receive, and what their results become in a
//! decision (docs/gates.md is the reference for both).
//!
//! The input is a pure function of the folded log prefix and the trigger (its seq and
//! `recordedAt`, the only time a gate sees), serialised in a fixed order, so that the ledger,
//! a replay and the offline auditor hand every gate the same document and get the same
//! verdicts. A gate's result must be an object `{"verdict": "pass" | "fail" | "pending",
//! "target", "observed", "code", "detail"}`; anything else, an error or a gate stopped at its
//! instruction limit blocks the release with `CustomGateError` (fail closed).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::decision::{Gate, Reason, ReasonCode, Verdict};
use crate::freeze::format_ns;
use crate::policy::EnvPolicy;
use crate::rego::{self, GateError};
use crate::state::{PolicyRecord, ReleaseState, SignalEvidence, TenantMeta};

/// Longest `target`, `observed` and `detail` a decision keeps of a gate's result, in bytes.
pub const MAX_RESULT_TEXT_BYTES: usize = 512;

/// What one custom gate contributes to a decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The gate line (`custom:<name>`).
    pub gate: Gate,
    /// The blocking reason, if it did not pass.
    pub reason: Option<Reason>,
    /// The entries its input held (added to the decision's evidence).
    pub evidence: Vec<u64>,
}

fn ns(at: u64) -> i64 {
    i64::try_from(at).unwrap_or(i64::MAX)
}

/// The gate input for `release` at the entry `trigger` (recorded at `at`, ns), and the seqs of
/// the entries it holds.
pub fn input(meta: &TenantMeta, release: &ReleaseState, trigger: u64, at: u64) -> (Value, Vec<u64>) {
    let mut seqs = BTreeSet::new();
    let live = |seq: u64| !release.is_invalidated(seq);
    let intent = release.intent.as_ref().filter(|i| live(i.seq));
    let release_doc = match intent {
        Some(i) => {
            seqs.insert(i.seq);
            json!({
                "id": release.release_id,
                "environment": i.data.environment,
                "modules": i.data.modules,
                "projectId": i.data.project_id,
                "declaredBy": i.agent_id,
                "seq": i.seq,
                "declaredAt": format_ns(ns(i.recorded_at)),
                "declaredAtNs": i.recorded_at,
            })
        }
        None => json!({ "id": release.release_id }),
    };
    let mut evidence = Vec::new();
    let mut rejected = Vec::new();
    for a in release.attachments.iter().filter(|a| live(a.seq)) {
        seqs.insert(a.seq);
        if let Some(error) = &a.schema_error {
            rejected.push(json!({
                "seq": a.seq, "kind": a.kind, "module": a.module, "version": a.version, "error": error,
            }));
            continue;
        }
        let attestation = a.attestation.as_ref().map(|(key_id, predicate_type)| {
            let key = meta.keys.get(key_id);
            json!({
                "predicateType": predicate_type,
                "signer": {
                    "keyId": key_id,
                    "agentId": key.map(|k| k.agent_id.as_str()),
                    "revoked": key.is_none_or(|k| k.revoked_at.is_some()),
                },
            })
        });
        evidence.push(json!({
            "seq": a.seq,
            "recordedAt": format_ns(ns(a.recorded_at)),
            "recordedAtNs": a.recorded_at,
            "agentId": a.agent_id,
            "keyId": a.key_id,
            "module": a.module,
            "version": a.version,
            "kind": a.kind,
            "subjectDigest": a.subject_digest,
            "contentDigest": a.content_digest,
            "mediaType": a.media_type,
            "uri": a.uri,
            "body": a.body,
            "attestation": attestation,
        }));
    }
    let signals: Vec<Value> = release
        .signals
        .iter()
        .filter(|s| live(s.seq))
        .map(|s| {
            seqs.insert(s.seq);
            let (kind, data) = match &s.signal {
                SignalEvidence::Tests { passed, data } => {
                    (if *passed { "TestsPassed" } else { "TestsFailed" }, serde_json::to_value(data))
                }
                SignalEvidence::Coverage(d) => ("CoverageVerified", serde_json::to_value(d)),
                SignalEvidence::Bdd(d) => ("BDDValidated", serde_json::to_value(d)),
                SignalEvidence::Security(d) => ("SecurityGateStatus", serde_json::to_value(d)),
            };
            let mut doc = match data {
                Ok(Value::Object(map)) => map,
                _ => Map::new(),
            };
            doc.insert("type".into(), kind.into());
            doc.insert("seq".into(), s.seq.into());
            doc.insert("recordedAtNs".into(), s.recorded_at.into());
            Value::Object(doc)
        })
        .collect();
    let approvals: Vec<Value> = release
        .approvals
        .iter()
        .filter(|a| live(a.seq))
        .map(|a| {
            json!({
                "seq": a.seq, "recordedAtNs": a.recorded_at, "agentId": a.agent_id, "keyId": a.key_id,
                "role": a.role, "granted": a.granted,
            })
        })
        .collect();
    let policy = meta.policy.as_ref().map(|p| json!({ "version": p.policy.version, "seq": p.seq }));
    let doc = json!({
        "tenant": meta.tenant,
        "evaluation": { "trigger": trigger, "at": format_ns(ns(at)), "atNs": at },
        "policy": policy,
        "release": release_doc,
        "evidence": evidence,
        "rejectedEvidence": rejected,
        "signals": signals,
        "approvals": approvals,
    });
    (doc, seqs.into_iter().collect())
}

/// The raw result of each custom gate `env` declares, on `input`.
pub fn run(record: &PolicyRecord, env: &EnvPolicy, input: &Value) -> Vec<(String, Result<Value, GateError>)> {
    if env.gates.is_empty() {
        return Vec::new();
    }
    let compiled = match &record.policy.rego {
        Some(r) => rego::compiled(r, &record.policy.custom_gates()),
        None => Err("the policy carries no rego modules".to_owned()),
    };
    let value = compiled.and_then(|c| rego::input_value(input).map(|v| (c, v)));
    env.gates
        .iter()
        .map(|gate| {
            let result = match &value {
                Ok((compiled, input)) => compiled.evaluate(gate, input),
                Err(e) => Err(GateError::Failed(format!("the policy's rego does not compile: {e}"))),
            };
            (gate.clone(), result)
        })
        .collect()
}

/// Evaluates the custom gates of `env` for `release` at `trigger`.
pub fn evaluate(
    meta: &TenantMeta,
    record: &PolicyRecord,
    env: &EnvPolicy,
    release: &ReleaseState,
    trigger: u64,
    at: u64,
) -> Vec<Outcome> {
    if env.gates.is_empty() {
        return Vec::new();
    }
    let (doc, seqs) = input(meta, release, trigger, at);
    run(record, env, &doc).into_iter().map(|(gate, result)| outcome(&gate, result, &seqs)).collect()
}

/// The text of a result field: a string as is, anything else as compact JSON, clipped.
fn text(value: Option<&Value>) -> String {
    let full = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    clip(full)
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_RESULT_TEXT_BYTES {
        let mut end = MAX_RESULT_TEXT_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn check_code(code: &str) -> bool {
    let mut bytes = code.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && code.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// What a gate's raw result makes of the decision.
pub fn outcome(gate: &str, result: Result<Value, GateError>, seqs: &[u64]) -> Outcome {
    let name = format!("custom:{gate}");
    let error = |observed: String| Outcome {
        gate: Gate {
            gate: name.clone(),
            target: "the gate completes with a verdict".into(),
            observed: clip(observed.clone()),
            verdict: Verdict::Fail,
            code: None,
        },
        reason: Some(Reason {
            code: ReasonCode::CustomGateError,
            module: None,
            detail: clip(format!("{gate}: {observed}")),
        }),
        evidence: seqs.to_vec(),
    };
    let value = match result {
        Ok(v) => v,
        Err(e) => return error(e.to_string()),
    };
    let Some(object) = value.as_object() else {
        return error(format!("the result is not an object: {}", clip(value.to_string())));
    };
    let verdict = match object.get("verdict").and_then(Value::as_str) {
        Some("pass") => Verdict::Pass,
        Some("fail") => Verdict::Fail,
        Some("pending") => Verdict::Pending,
        other => {
            return error(format!(
                "verdict {}: must be \"pass\", \"fail\" or \"pending\"",
                other.map_or("missing".to_owned(), |v| format!("{v:?}"))
            ))
        }
    };
    let code = object.get("code").and_then(Value::as_str).map(str::to_owned);
    if let Some(c) = &code {
        if !check_code(c) {
            return error(format!("code {:?}: a letter, then letters, digits, _ . - (at most 64)", ledger::clip(c)));
        }
    }
    let target = text(object.get("target"));
    let observed = text(object.get("observed"));
    let reason = match verdict {
        Verdict::Pass | Verdict::NotApplicable => None,
        Verdict::Fail | Verdict::Pending => {
            let Some(code) = &code else {
                return error(format!(
                    "a {} verdict needs a code",
                    if verdict == Verdict::Fail { "fail" } else { "pending" }
                ));
            };
            let detail = text(object.get("detail"));
            let why = if detail.is_empty() { format!("observed {observed}, target {target}") } else { detail };
            Some(Reason {
                code: if verdict == Verdict::Fail {
                    ReasonCode::CustomGateFailed
                } else {
                    ReasonCode::CustomGatePending
                },
                module: object.get("module").and_then(Value::as_str).map(str::to_owned),
                detail: clip(format!("{gate}: {code}: {why}")),
            })
        }
    };
    Outcome {
        gate: Gate { gate: name, target, observed, verdict, code: if verdict == Verdict::Pass { None } else { code } },
        reason,
        evidence: seqs.to_vec(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The worked examples of docs/gates.md, on inputs shaped as [`input`] builds them.
    fn example(gate: &str, input: Value) -> Value {
        let source = match gate {
            "slo_error_budget" => include_str!("../../docs/gates/slo_error_budget.rego"),
            "dr_drill_recent" => include_str!("../../docs/gates/dr_drill_recent.rego"),
            "slsa_provenance" => include_str!("../../docs/gates/slsa_provenance.rego"),
            "perf_regression" => include_str!("../../docs/gates/perf_regression.rego"),
            other => panic!("no example {other}"),
        };
        let policy =
            rego::RegoPolicy { modules: [(format!("{gate}.rego"), source.to_owned())].into(), instruction_limit: None };
        let compiled = rego::compile(&policy, &[gate.to_owned()].into()).unwrap();
        compiled.evaluate(gate, &rego::input_value(&input).unwrap()).unwrap()
    }

    fn doc(modules: Value, evidence: Value, at: &str) -> Value {
        let at_ns = crate::freeze::parse_rfc3339_ns(at).unwrap();
        json!({"evaluation": {"trigger": 9, "at": at, "atNs": at_ns}, "release": {"id": "r", "modules": modules},
               "evidence": evidence, "signals": [], "approvals": [], "rejectedEvidence": []})
    }

    fn ev(kind: &str, module: &str, body: Value) -> Value {
        json!({"kind": kind, "module": module, "version": "1.0", "body": body, "subjectDigest": {"sha256": "ab"}})
    }

    #[test]
    fn the_worked_examples_decide_as_documented() {
        let modules = json!([{"name": "api", "version": "1.0"}, {"name": "web", "version": "1.0"}]);
        let at = "2026-06-01T00:00:00Z";
        let verdict = |v: &Value| (v["verdict"].as_str().unwrap().to_owned(), v["code"].as_str().map(str::to_owned));

        let slo = |budgets: &[(&str, f64)]| {
            let evidence: Vec<Value> = budgets
                .iter()
                .map(|(m, b)| ev("slo-report", m, json!({"objective": 99.9, "errorBudgetRemaining": b})))
                .collect();
            example("slo_error_budget", doc(modules.clone(), json!(evidence), at))
        };
        assert_eq!(verdict(&slo(&[("api", 0.5), ("web", 0.2)])), ("pass".into(), None));
        assert_eq!(verdict(&slo(&[("api", 0.5), ("web", 0.05)])), ("fail".into(), Some("ErrorBudgetExhausted".into())));
        // The newest report counts.
        assert_eq!(verdict(&slo(&[("api", 0.5), ("web", 0.05), ("web", 0.3)])), ("pass".into(), None));
        assert_eq!(verdict(&slo(&[("api", 0.5)])), ("fail".into(), Some("SloReportMissing".into())));

        let drill = |performed: &str, outcome: &str| {
            let evidence = json!([ev("dr-drill", "api", json!({"performedAt": performed, "outcome": outcome}))]);
            example("dr_drill_recent", doc(modules.clone(), evidence, at))
        };
        let fresh = drill("2026-04-01T00:00:00Z", "passed");
        assert_eq!(verdict(&fresh), ("pass".into(), None));
        assert_eq!(fresh["observed"], "last passed drill 61 days ago");
        assert_eq!(verdict(&drill("2026-02-01T00:00:00Z", "passed")), ("fail".into(), Some("DrDrillStale".into())));
        assert_eq!(verdict(&drill("2026-05-01T00:00:00Z", "failed")), ("fail".into(), Some("DrDrillMissing".into())));
        assert_eq!(verdict(&drill("2026-07-01T00:00:00Z", "passed")), ("fail".into(), Some("DrDrillMissing".into())));

        let builder = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";
        let pinned = json!([{"name": "api", "version": "1.0", "digest": {"sha256": "ab"}}]);
        let provenance = |builder: &str, revoked: bool| {
            let mut e =
                ev("slsa-provenance", "api", json!({"predicate": {"runDetails": {"builder": {"id": builder}}}}));
            e["attestation"] =
                json!({"predicateType": "https://slsa.dev/provenance/v1", "signer": {"revoked": revoked}});
            e
        };
        let slsa = |modules: &Value, evidence: Value| example("slsa_provenance", doc(modules.clone(), evidence, at));
        assert_eq!(verdict(&slsa(&pinned, json!([provenance(builder, false)]))), ("pass".into(), None));
        assert_eq!(
            verdict(&slsa(&pinned, json!([provenance("https://evil", false)]))),
            ("fail".into(), Some("ProvenanceMissing".into()))
        );
        assert_eq!(
            verdict(&slsa(&pinned, json!([provenance(builder, true)]))),
            ("fail".into(), Some("ProvenanceMissing".into()))
        );
        assert_eq!(verdict(&slsa(&modules, json!([]))), ("fail".into(), Some("ModuleNotPinned".into())));

        let perf = |reports: &[(&str, f64)]| {
            let evidence: Vec<Value> = reports
                .iter()
                .map(|(m, current)| {
                    ev("perf-baseline", m, json!({"metric": "p99LatencyMs", "baseline": 100, "current": current}))
                })
                .collect();
            example("perf_regression", doc(modules.clone(), json!(evidence), at))
        };
        assert_eq!(verdict(&perf(&[("api", 105.0), ("web", 110.0)])), ("pass".into(), None));
        assert_eq!(verdict(&perf(&[("api", 105.0), ("web", 111.0)])), ("fail".into(), Some("PerfRegression".into())));
        assert_eq!(verdict(&perf(&[("api", 105.0)])), ("pending".into(), Some("PerfRunPending".into())));
    }

    #[test]
    fn results_become_gates_and_reasons() {
        let ok = outcome("slo", Ok(json!({"verdict": "pass", "target": ">= 0", "observed": 12.5})), &[3]);
        assert_eq!((ok.gate.verdict, ok.gate.observed.as_str(), ok.reason), (Verdict::Pass, "12.5", None));
        let failed = outcome("slo", Ok(json!({"verdict": "fail", "code": "BudgetExhausted", "detail": "-3%"})), &[]);
        assert_eq!(failed.gate.code.as_deref(), Some("BudgetExhausted"));
        let reason = failed.reason.unwrap();
        assert_eq!((reason.code, reason.detail.as_str()), (ReasonCode::CustomGateFailed, "slo: BudgetExhausted: -3%"));
        let pending = outcome("dr", Ok(json!({"verdict": "pending", "code": "Waiting"})), &[]);
        assert_eq!(pending.reason.unwrap().code, ReasonCode::CustomGatePending);
        for bad in [
            json!(true),
            json!({"verdict": "yes"}),
            json!({"verdict": "fail"}),
            json!({"verdict": "fail", "code": "a b"}),
        ] {
            let o = outcome("x", Ok(bad.clone()), &[]);
            assert_eq!(o.reason.unwrap().code, ReasonCode::CustomGateError, "{bad}");
            assert_eq!(o.gate.verdict, Verdict::Fail);
        }
        let stopped = outcome("x", Err(GateError::Stopped { limit: 5 }), &[]);
        assert!(stopped.gate.observed.contains("stopped after 5 instructions"), "{}", stopped.gate.observed);
        let long = outcome("x", Ok(json!({"verdict": "pass", "observed": "é".repeat(1000)})), &[]);
        assert!(long.gate.observed.len() <= MAX_RESULT_TEXT_BYTES + '…'.len_utf8());
    }
}
