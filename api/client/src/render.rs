//! The renderers the CLI and the demo share: governance read models and entries as JSON
//! (camelCase, every field present, `null` when unset) and as text for people.

use ledger::{Entry, EntryBody, ParsedEvent};
use proto::v1 as pb;

/// The status a release summary and a decision both name a rejection by.
const REJECTED: &str = projections::DecisionStatus::Rejected.as_str();

/// The `tail --json` record of an entry.
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    let recorded_at = chrono::DateTime::from_timestamp_nanos(i64::try_from(entry.recorded_at).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut out = serde_json::json!({
        "seq": entry.seq,
        "recordedAt": recorded_at,
        "entryHash": hex::encode(entry.entry_hash),
    });
    match &entry.body {
        EntryBody::Present(envelope) => match ParsedEvent::parse(&envelope.payload) {
            Ok(event) => {
                out["eventId"] = event.header.event_id.into();
                out["type"] = event.header.event_type.into();
                out["stream"] = event.header.stream.into();
                out["agentId"] = event.header.actor.agent_id.into();
            }
            Err(e) => out["error"] = e.to_string().into(),
        },
        EntryBody::Redacted { by_seq } => {
            out["redacted"] = true.into();
            out["redactedBy"] = (*by_seq).into();
        }
    }
    out
}

// Governance read models: JSON (camelCase, every field present, `null` when unset) and text
// for people. Shared by the query commands and the demo.

fn reasons_json(reasons: &[pb::Reason]) -> serde_json::Value {
    reasons.iter().map(|r| serde_json::json!({ "code": r.code, "module": r.module, "detail": r.detail })).collect()
}

fn factors_json(factors: &[pb::RiskFactor]) -> serde_json::Value {
    factors.iter().map(|f| serde_json::json!({ "factor": f.factor, "value": f.value, "points": f.points })).collect()
}

fn approval_json(a: &pb::Approval) -> serde_json::Value {
    serde_json::json!({
        "seq": a.seq, "recordedAt": a.recorded_at, "keyId": a.key_id, "agentId": a.agent_id, "role": a.role,
        "granted": a.granted, "text": a.text, "method": a.method,
    })
}

/// A `ReleaseSummary` as JSON.
pub fn summary_json(s: &pb::ReleaseSummary) -> serde_json::Value {
    serde_json::json!({
        "tenant": s.tenant,
        "releaseId": s.release_id,
        "environment": s.environment,
        "modules": s.modules.iter().map(|m| serde_json::json!({ "name": m.name, "version": m.version })).collect::<Vec<_>>(),
        "status": s.status,
        "reasons": reasons_json(&s.reasons),
        "retryAfter": s.retry_after,
        "retryable": s.retryable,
        "suggestedFix": s.suggested_fix,
        "riskScore": s.risk_score,
        "riskFactors": factors_json(&s.risk_factors),
        "approvals": s.approvals.iter().map(approval_json).collect::<Vec<_>>(),
        "policyVersion": s.policy_version,
        "lastDecision": s.last_decision.as_ref().map(|d| serde_json::json!({
            "type": d.r#type, "trigger": d.trigger, "evaluatedAt": d.evaluated_at, "seq": d.seq,
        })),
        "traceId": s.trace_id,
        "projectId": s.project_id,
        "declaredBy": s.declared_by,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "notes": s.notes,
    })
}

/// A `Decision` (an explanation) as JSON.
pub fn decision_json(release: &str, d: &pb::Decision) -> serde_json::Value {
    serde_json::json!({
        "releaseId": release,
        "seq": d.seq,
        "type": d.r#type,
        "status": d.status,
        "policyVersion": d.policy_version,
        "evaluatedAt": d.evaluated_at,
        "trigger": d.trigger,
        "evidence": d.evidence,
        "gates": d.gates.iter().map(|g| serde_json::json!({
            "gate": g.gate, "target": g.target, "observed": g.observed, "verdict": g.verdict, "code": g.code,
        })).collect::<Vec<_>>(),
        "reasons": reasons_json(&d.reasons),
        "retryAfter": d.retry_after,
        "retryable": d.retryable,
        "suggestedFix": d.suggested_fix,
        "riskScore": d.risk_score,
        "riskFactors": factors_json(&d.risk_factors),
        "reproduced": d.reproduced,
        "customGates": custom_gates_json(d),
    })
}

/// JSON text the server sent, parsed back (a string holding the text if it does not parse,
/// which a server of this version never sends).
fn embedded_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// A decision's custom gates as re-derived by the server: `{"input", "results": [{"gate",
/// "result", "error"}]}`, or `null` when it sent none (no custom gates in the decision's
/// environment, or the decision is not in the log yet).
pub fn custom_gates_json(d: &pb::Decision) -> serde_json::Value {
    if d.custom_gate_input_json.is_none() && d.custom_gates.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "input": d.custom_gate_input_json.as_deref().map(embedded_json),
        "results": d.custom_gates.iter().map(|run| serde_json::json!({
            "gate": run.gate,
            "result": run.result_json.as_deref().map(embedded_json),
            "error": run.error,
        })).collect::<Vec<_>>(),
    })
}

/// A timeline item as JSON.
pub fn timeline_item_json(item: &pb::TimelineItem) -> serde_json::Value {
    serde_json::json!({
        "seq": item.seq, "recordedAt": item.recorded_at, "type": item.r#type, "agentId": item.agent_id,
        "summary": item.summary,
    })
}

/// A history item as JSON.
pub fn history_item_json(item: &pb::HistoryItem) -> serde_json::Value {
    serde_json::json!({
        "seq": item.seq, "recordedAt": item.recorded_at, "releaseId": item.release_id, "version": item.version,
        "event": item.event,
    })
}

/// An RFC 3339 time shortened for people (milliseconds, `Z`); anything else as given.
pub fn short_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// A plain-text table: a header row, a rule, then the rows, columns padded to their widest
/// cell (the last one is not padded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.collect();
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(&mut headers.iter().map(|h| (*h).to_owned()))];
    lines.push(line(&mut widths.iter().map(|w| "-".repeat(*w))));
    for row in rows {
        lines.push(line(&mut row.iter().cloned()));
    }
    lines.join("\n")
}

/// The fix to show. A decision's signed `suggestedFix` is its first rejecting reason's; when a
/// rejection is final because of another reason (a critical CVE beside missing tests), that
/// fix would say "request evaluation again" next to "a new release is needed": show the fix of
/// the reason that makes it final instead. The signed decision is left as it is (replay must
/// reproduce it byte for byte).
fn suggested_fix(signed: Option<&str>, reasons: &[pb::Reason], final_rejection: bool) -> Option<String> {
    use projections::decision::ReasonCode;
    if final_rejection {
        let mut codes = reasons.iter().map(|r| (r, ReasonCode::named(r.code.clone())));
        if let Some((r, code)) = codes.find(|(_, c)| c.rejects() && !c.retryable()) {
            let reason = projections::decision::Reason { code, module: r.module.clone(), detail: r.detail.clone() };
            return Some(projections::gates::fix(&reason));
        }
    }
    signed.map(str::to_owned)
}

/// A risk factor's value for people ("1 modules" in decisions signed so far: the signed value
/// stays, replay must reproduce it byte for byte).
fn factor_value(f: &pb::RiskFactor) -> String {
    if f.factor == "moduleCount" && f.value == "1 modules" {
        "1 module".into()
    } else {
        f.value.clone()
    }
}

fn reason_line(r: &pb::Reason) -> String {
    match &r.module {
        Some(module) => format!("{} [{module}]: {}", r.code, r.detail),
        None => format!("{}: {}", r.code, r.detail),
    }
}

/// The risk score with the factors that add points, on one line.
pub fn risk_line(score: u32, factors: &[pb::RiskFactor]) -> String {
    let counted: Vec<String> = factors
        .iter()
        .filter(|f| f.points > 0)
        .map(|f| format!("{} +{} ({})", f.factor, f.points, factor_value(f)))
        .collect();
    if counted.is_empty() {
        format!("{score}")
    } else {
        format!("{score}: {}", counted.join(", "))
    }
}

/// The reason codes, each once, in order ("TestsIncomplete" once for two modules missing tests).
pub fn distinct_codes(reasons: &[pb::Reason]) -> Vec<&str> {
    let mut codes: Vec<&str> = Vec::new();
    for r in reasons {
        if !codes.contains(&r.code.as_str()) {
            codes.push(&r.code);
        }
    }
    codes
}

/// A `ReleaseSummary` for people.
pub fn summary_text(s: &pb::ReleaseSummary) -> String {
    let mut lines = vec![format!("{}  {}", s.release_id, s.status)];
    let mut field = |name: &str, value: String| lines.push(format!("  {name:<14}{value}"));
    if let Some(env) = &s.environment {
        field("environment", env.clone());
    }
    let modules: Vec<String> = s.modules.iter().map(|m| format!("{}@{}", m.name, m.version)).collect();
    if !modules.is_empty() {
        field("modules", modules.join(", "));
    }
    if s.reasons.is_empty() {
        field("reasons", "none".into());
    }
    for (i, r) in s.reasons.iter().enumerate() {
        field(if i == 0 { "reasons" } else { "" }, reason_line(r));
    }
    if let Some(t) = &s.retry_after {
        field("retry after", short_time(t));
    }
    let final_rejection = s.status == REJECTED && s.retryable == Some(false);
    if let Some(r) = s.retryable {
        if s.status == REJECTED {
            field("retryable", if r { "yes".into() } else { "no: a new release is needed".into() });
        }
    }
    if let Some(fix) = suggested_fix(s.suggested_fix.as_deref(), &s.reasons, final_rejection) {
        field("suggested fix", fix);
    }
    if let Some(score) = s.risk_score {
        field("risk", risk_line(score, &s.risk_factors));
    }
    for (i, a) in s.approvals.iter().enumerate() {
        let verb = if a.granted { "approved" } else { "rejected" };
        let text = if a.text.is_empty() { String::new() } else { format!(": {}", a.text) };
        field(
            if i == 0 { "approvals" } else { "" },
            format!("seq {} {} {verb} as {}{text}", a.seq, a.agent_id, a.role),
        );
    }
    if let Some(v) = s.policy_version {
        field("policy", format!("version {v}"));
    }
    if let Some(d) = &s.last_decision {
        let at = d.seq.map(|seq| format!(", decision seq {seq}")).unwrap_or_else(|| ", being appended".into());
        field(
            "last decision",
            format!("{} (trigger seq {}{at}) at {}", d.r#type, d.trigger, short_time(&d.evaluated_at)),
        );
    }
    if let Some(t) = &s.trace_id {
        field("trace", t.clone());
    }
    if let Some(by) = &s.declared_by {
        field("declared by", by.clone());
    }
    field("updated", short_time(&s.updated_at));
    for (i, note) in s.notes.iter().enumerate() {
        field(if i == 0 { "notes" } else { "" }, note.clone());
    }
    lines.join("\n")
}

/// A decision explained for people: its gates, reasons, retry, fix, risk and evidence, and
/// whether it was reproduced from the log.
pub fn decision_text(release: &str, d: &pb::Decision) -> String {
    let mut out = Vec::new();
    let at = d.seq.map(|s| format!("seq {s}")).unwrap_or_else(|| "not yet in the log".into());
    out.push(format!("{} of {release} ({at}): {}", d.r#type, d.status));
    out.push(format!(
        "evaluated at {} (trigger seq {}), policy version {}",
        short_time(&d.evaluated_at),
        d.trigger,
        d.policy_version.map_or_else(|| "none".to_owned(), |v| v.to_string())
    ));
    out.push(format!(
        "reproduced from the log: {}",
        match d.reproduced {
            Some(true) => "yes, re-deriving it from the log prefix gives the same bytes",
            Some(false) => "NO: re-deriving it from the log gives a different decision",
            None => "not checked (the decision is not in the log yet)",
        }
    ));
    out.push(String::new());
    out.push("gates".into());
    out.push(gates_table(&d.gates));
    if !d.custom_gates.is_empty() {
        out.push(String::new());
        out.push("custom gates (raw results, re-derived from the log)".into());
        for run in &d.custom_gates {
            match (&run.result_json, &run.error) {
                (Some(result), _) => out.push(format!("{}: {result}", run.gate)),
                (None, Some(error)) => out.push(format!("{}: error: {error}", run.gate)),
                (None, None) => out.push(format!("{}: no result", run.gate)),
            }
        }
    }
    out.push(String::new());
    out.push("reasons".into());
    if d.reasons.is_empty() {
        out.push("none".into());
    } else {
        let reasons: Vec<Vec<String>> = d
            .reasons
            .iter()
            .map(|r| vec![r.code.clone(), r.module.clone().unwrap_or_else(|| "-".into()), r.detail.clone()])
            .collect();
        out.push(table(&["code", "module", "detail"], &reasons));
    }
    out.push(String::new());
    out.push(format!("retry after:   {}", d.retry_after.as_deref().map_or_else(|| "-".to_owned(), short_time)));
    out.push(format!("retryable:     {}", if d.retryable { "yes" } else { "no" }));
    let final_rejection = d.status == REJECTED && !d.retryable;
    out.push(format!(
        "suggested fix: {}",
        suggested_fix(d.suggested_fix.as_deref(), &d.reasons, final_rejection).unwrap_or_else(|| "-".into())
    ));
    out.push(String::new());
    out.push(format!("risk score {}", d.risk_score));
    let factors: Vec<Vec<String>> =
        d.risk_factors.iter().map(|f| vec![f.factor.clone(), factor_value(f), f.points.to_string()]).collect();
    out.push(table(&["factor", "value", "points"], &factors));
    out.push(String::new());
    let evidence: Vec<String> = d.evidence.iter().map(u64::to_string).collect();
    out.push(format!("evidence seqs: {}", evidence.join(", ")));
    out.join("\n")
}

/// The gates of a decision as a table; a `code` column is added when a gate carries one (a
/// custom gate that did not pass).
pub fn gates_table(gates: &[pb::Gate]) -> String {
    let with_code = gates.iter().any(|g| g.code.is_some());
    let rows: Vec<Vec<String>> = gates
        .iter()
        .map(|g| {
            let mut row = vec![g.gate.clone(), g.target.clone(), g.observed.clone(), g.verdict.clone()];
            if with_code {
                row.push(g.code.clone().unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    if with_code {
        table(&["gate", "target", "observed", "verdict", "code"], &rows)
    } else {
        table(&["gate", "target", "observed", "verdict"], &rows)
    }
}

/// A timeline for people.
pub fn timeline_text(items: &[pb::TimelineItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![i.seq.to_string(), short_time(&i.recorded_at), i.r#type.clone(), i.agent_id.clone(), i.summary.clone()]
        })
        .collect();
    table(&["seq", "time", "type", "agent", "summary"], &rows)
}

/// A module × environment history for people.
pub fn history_text(items: &[pb::HistoryItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.seq.to_string(),
                short_time(&i.recorded_at),
                i.release_id.clone(),
                i.version.clone(),
                i.event.clone(),
            ]
        })
        .collect();
    table(&["seq", "time", "release", "version", "event"], &rows)
}

/// Release summaries as a listing for people.
pub fn releases_text(releases: &[pb::ReleaseSummary]) -> String {
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|s| {
            let modules: Vec<String> = s.modules.iter().map(|m| format!("{}@{}", m.name, m.version)).collect();
            let reasons = distinct_codes(&s.reasons);
            vec![
                s.release_id.clone(),
                s.status.clone(),
                s.environment.clone().unwrap_or_else(|| "-".into()),
                modules.join(", "),
                if reasons.is_empty() { "-".into() } else { reasons.join(", ") },
                short_time(&s.updated_at),
            ]
        })
        .collect();
    table(&["release", "status", "environment", "modules", "reasons", "updated"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str, module: Option<&str>, detail: &str) -> pb::Reason {
        pb::Reason { code: code.into(), module: module.map(Into::into), detail: detail.into() }
    }

    fn summary(status: &str, retryable: bool, fix: &str, reasons: Vec<pb::Reason>) -> pb::ReleaseSummary {
        pb::ReleaseSummary {
            release_id: "r-1".into(),
            status: status.into(),
            retryable: Some(retryable),
            suggested_fix: Some(fix.into()),
            reasons,
            ..pb::ReleaseSummary::default()
        }
    }

    #[test]
    fn a_final_rejection_suggests_the_fix_of_the_reason_that_makes_it_final() {
        // The signed fix is the first rejecting reason's (missing tests: "request evaluation
        // again"), but the CVE makes the rejection final.
        let s = summary(
            "Rejected",
            false,
            "publish passing QA evidence for api (no TestsPassed) and request evaluation again",
            vec![
                reason("TestsIncomplete", Some("api"), "no TestsPassed"),
                reason("SecurityGateFailed", Some("api"), "CVE severity Critical is above Medium"),
            ],
        );
        let text = summary_text(&s);
        assert!(text.contains("  retryable     no: a new release is needed\n"), "{text}");
        assert!(
            text.contains(
                "  suggested fix fix the security findings in api, rebuild and declare a new release version\n"
            ),
            "{text}"
        );
        assert!(!text.contains("request evaluation again"), "{text}");
        // A retryable rejection keeps the signed fix.
        let s = summary("Rejected", true, "publish passing QA evidence", vec![reason("TestsIncomplete", None, "x")]);
        assert!(summary_text(&s).contains("  suggested fix publish passing QA evidence\n"));
    }

    #[test]
    fn listings_name_each_reason_code_once_and_one_module_is_singular() {
        let mut s = summary(
            "Rejected",
            true,
            "fix",
            vec![
                reason("TestsIncomplete", Some("a"), "x"),
                reason("TestsIncomplete", Some("b"), "y"),
                reason("ApprovalPending", None, "z"),
            ],
        );
        s.updated_at = "2026-05-23T09:32:00Z".into();
        let text = releases_text(&[s]);
        assert!(text.contains("  TestsIncomplete, ApprovalPending  "), "{text}");
        let factors = [pb::RiskFactor { factor: "moduleCount".into(), value: "1 modules".into(), points: 0 }];
        let d = pb::Decision { risk_factors: factors.to_vec(), ..pb::Decision::default() };
        let text = decision_text("r-1", &d);
        assert!(text.contains("moduleCount  1 module  0"), "{text}");
        assert!(!text.contains("1 modules"), "{text}");
    }

    #[test]
    fn a_custom_gate_shows_its_code_and_raw_result() {
        let gate = |name: &str, verdict: &str, code: Option<&str>| pb::Gate {
            gate: name.into(),
            target: "t".into(),
            observed: "o".into(),
            verdict: verdict.into(),
            code: code.map(Into::into),
        };
        let plain = gates_table(&[gate("tests:api", "Pass", None)]);
        assert!(plain.starts_with("gate       target  observed  verdict\n"), "{plain}");
        let d = pb::Decision {
            gates: vec![gate("tests:api", "Pass", None), gate("custom:slo", "Fail", Some("BudgetExhausted"))],
            custom_gate_input_json: Some(r#"{"release":{"id":"r-1"}}"#.into()),
            custom_gates: vec![
                pb::CustomGateRun {
                    gate: "slo".into(),
                    result_json: Some(r#"{"verdict":"fail"}"#.into()),
                    error: None,
                },
                pb::CustomGateRun { gate: "spin".into(), result_json: None, error: Some("stopped".into()) },
            ],
            ..pb::Decision::default()
        };
        let text = decision_text("r-1", &d);
        assert!(text.contains("\ntests:api   t       o         Pass     -\n"), "{text}");
        assert!(text.contains("\ncustom:slo  t       o         Fail     BudgetExhausted\n"), "{text}");
        assert!(text.contains("\nslo: {\"verdict\":\"fail\"}\nspin: error: stopped\n"), "{text}");
        let value = decision_json("r-1", &d);
        assert_eq!(value["gates"][1]["code"], "BudgetExhausted");
        assert_eq!(value["gates"][0]["code"], serde_json::Value::Null);
        assert_eq!(value["customGates"]["input"]["release"]["id"], "r-1");
        assert_eq!(value["customGates"]["results"][0]["result"]["verdict"], "fail");
        assert_eq!(value["customGates"]["results"][1]["error"], "stopped");
        assert_eq!(decision_json("r-1", &pb::Decision::default())["customGates"], serde_json::Value::Null);
    }
}
