//! Read models served by the query API: summaries, listings, history, approvals, risk,
//! decision explanations, timelines and replay "as of" a seq or a time.

use std::borrow::Cow;

use ledger::{Ledger, ParsedEvent, ReadError};
use serde::{Deserialize, Serialize};

use crate::catalogue::{GovData, GovEvent, ModuleVersion};
use crate::decision::{DecisionData, Reason, ReasonCode, RiskFactor};
use crate::replay::fold;
use crate::state::{
    current_blocking, format_recorded_at, ApprovalRecord, HistoryItem, ReleaseState, ReleaseStatus, TenantState,
    TimelineItem,
};

/// The decision a summary is at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRef {
    /// Decision event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Seq of the triggering entry.
    pub trigger: u64,
    /// Evaluation time.
    pub evaluated_at: String,
    /// Seq of the decision entry, once it is in the log.
    pub seq: Option<u64>,
}

/// `ReleaseSummary`: one release, as the CLI's `summary --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    /// Tenant.
    pub tenant: String,
    /// Release.
    pub release_id: String,
    /// Target environment (once declared).
    pub environment: Option<String>,
    /// Modules shipped.
    pub modules: Vec<ModuleVersion>,
    /// `Planned`, `Approved`, `Delayed`, `Rejected`, `Published`, `Failed` or `RolledBack`.
    pub status: String,
    /// Why it is not approved (blocking reasons), or why it failed.
    pub reasons: Vec<Reason>,
    /// When the ledger re-evaluates a delayed release.
    pub retry_after: Option<String>,
    /// Whether a later evaluation can pass.
    pub retryable: Option<bool>,
    /// What to do next.
    pub suggested_fix: Option<String>,
    /// Risk score of the last evaluation.
    pub risk_score: Option<u32>,
    /// Its factors.
    pub risk_factors: Vec<RiskFactor>,
    /// Approvals and rejections recorded.
    pub approvals: Vec<ApprovalRecord>,
    /// Policy version of the last evaluation.
    pub policy_version: Option<u64>,
    /// The last decision.
    pub last_decision: Option<DecisionRef>,
    /// Correlation id.
    pub trace_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Who declared it.
    pub declared_by: Option<String>,
    /// First entry's `recordedAt`.
    pub created_at: String,
    /// Last entry's `recordedAt`.
    pub updated_at: String,
    /// Events that did not apply.
    pub notes: Vec<String>,
}

/// The summary of one release.
pub fn summary(state: &TenantState, release: &ReleaseState) -> ReleaseSummary {
    let decision = release.decision.as_ref();
    let mut reasons = current_blocking(release);
    if let (Some(failure), ReleaseStatus::Failed | ReleaseStatus::RolledBack) = (&release.failure, release.status) {
        let code = if release.status == ReleaseStatus::Failed {
            ReasonCode::DeploymentFailed
        } else {
            ReasonCode::RollbackTriggered
        };
        reasons = vec![Reason { code, module: None, detail: failure.clone() }];
    }
    // The decision entry for this trigger, once folded back.
    let decision_seq = decision.and_then(|d| release.decision_entries.get(&d.trigger).copied());
    ReleaseSummary {
        tenant: state.meta.tenant.clone(),
        release_id: release.release_id.clone(),
        environment: release.environment().map(str::to_owned),
        modules: release.intent.as_ref().map(|i| i.data.modules.clone()).unwrap_or_default(),
        status: release.status.as_str().to_owned(),
        reasons,
        retry_after: decision.and_then(|d| d.retry_after.clone()),
        retryable: decision.map(|d| d.retryable),
        suggested_fix: decision.and_then(|d| d.suggested_fix.clone()),
        risk_score: decision.map(|d| d.risk_score),
        risk_factors: decision.map(|d| d.risk_factors.clone()).unwrap_or_default(),
        approvals: release.approvals.clone(),
        policy_version: decision.and_then(|d| d.policy_version),
        last_decision: decision.map(|d| DecisionRef {
            event_type: d.status.event_type().as_str().to_owned(),
            trigger: d.trigger,
            evaluated_at: d.evaluated_at.clone(),
            seq: decision_seq,
        }),
        trace_id: release.intent.as_ref().and_then(|i| i.trace_id.clone()),
        project_id: release.intent.as_ref().and_then(|i| i.data.project_id.clone()),
        declared_by: release.intent.as_ref().map(|i| i.agent_id.clone()),
        created_at: format_recorded_at(release.created_at),
        updated_at: format_recorded_at(release.updated_at),
        notes: release.notes.clone(),
    }
}

/// Filters of [`list_releases`].
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    /// Only this environment.
    pub environment: Option<String>,
    /// Only this status.
    pub status: Option<ReleaseStatus>,
    /// Only releases updated at or after this time (ns).
    pub updated_from: Option<u64>,
    /// Only releases updated before this time (ns).
    pub updated_to: Option<u64>,
    /// Start after this release id (the previous page's token).
    pub after: Option<String>,
    /// Page size (1–1000; default 100).
    pub limit: usize,
}

/// A page of summaries and the token of the next page (the last release id listed).
pub type Page = (Vec<ReleaseSummary>, Option<String>);

/// A page of summaries, in release-id order, and the token of the next page.
pub fn list_releases(state: &TenantState, filter: &ReleaseFilter) -> Page {
    let start = match &filter.after {
        Some(after) => std::ops::Bound::Excluded(after.clone()),
        None => std::ops::Bound::Unbounded,
    };
    let releases = state.releases.range((start, std::ops::Bound::Unbounded)).map(|(_, r)| Cow::Borrowed(r));
    list_page(state, filter, releases)
}

/// [`list_releases`] over `releases` (in release-id order, after `filter.after`), wherever
/// they are kept.
pub fn list_page<'a>(
    state: &TenantState,
    filter: &ReleaseFilter,
    releases: impl Iterator<Item = Cow<'a, ReleaseState>>,
) -> Page {
    let limit = if filter.limit == 0 { 100 } else { filter.limit.min(1000) };
    let mut page = Vec::new();
    let mut next = None;
    for release in releases {
        let keep = filter.environment.as_deref().is_none_or(|e| release.environment() == Some(e))
            && filter.status.is_none_or(|s| release.status == s)
            && filter.updated_from.is_none_or(|t| release.updated_at >= t)
            && filter.updated_to.is_none_or(|t| release.updated_at < t);
        if !keep {
            continue;
        }
        if page.len() == limit {
            next = page.last().map(|s: &ReleaseSummary| s.release_id.clone());
            break;
        }
        page.push(summary(state, &release));
    }
    (page, next)
}

/// The history of a module in an environment, oldest first.
pub fn history(state: &TenantState, module: &str, environment: &str) -> Vec<HistoryItem> {
    state.meta.history_of(module, environment).to_vec()
}

/// A decision read back from the log, with the entry it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedDecision {
    /// Seq of the decision entry (None while it is still being appended).
    pub seq: Option<u64>,
    /// Decision type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The record.
    pub decision: DecisionData,
    /// Whether re-deriving the decision from the log prefix gives the same bytes (checked
    /// when the decision was read from the log).
    pub reproduced: Option<bool>,
    /// The custom gates' input and raw results, re-derived from the log prefix (when the
    /// decision was read from the log and its environment has custom gates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_gates: Option<CustomGatesExplained>,
}

/// What a decision's custom gates were given and what each returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomGatesExplained {
    /// The input document every gate received (docs/gates.md).
    pub input: serde_json::Value,
    /// Each gate's raw result, in the policy's order.
    pub results: Vec<CustomGateRun>,
}

/// One custom gate's raw result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomGateRun {
    /// The gate's name (without the `custom:` prefix).
    pub gate: String,
    /// The value of `data.gates.<gate>.result`, if it produced one.
    pub result: Option<serde_json::Value>,
    /// Why it produced none (an error, or stopped at its instruction limit).
    pub error: Option<String>,
}

/// The custom gates of `release_id` as evaluated at `trigger`, from `prefix` (the fold of the
/// log through the trigger).
pub fn explain_custom_gates(prefix: &TenantState, release_id: &str, trigger: u64) -> Option<CustomGatesExplained> {
    let release = prefix.releases.get(release_id)?;
    let record = prefix.meta.policy.as_ref()?;
    let env = record.policy.for_env(release.environment()?)?;
    if env.gates.is_empty() {
        return None;
    }
    let (input, _) = crate::custom_gates::input(&prefix.meta, release, trigger, prefix.meta.last_recorded_at);
    let results = crate::custom_gates::run(record, env, &input)
        .into_iter()
        .map(|(gate, result)| match result {
            Ok(value) => CustomGateRun { gate, result: Some(value), error: None },
            Err(e) => CustomGateRun { gate, result: None, error: Some(e.to_string()) },
        })
        .collect();
    Some(CustomGatesExplained { input, results })
}

/// Why explaining failed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// No such decision.
    #[error("{0}")]
    NotFound(String),
    /// The log could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Explains the decision at `seq`, or the release's latest one. A decision read from the log
/// is re-derived from the log prefix before its trigger and compared byte for byte.
pub fn explain(
    ledger: &Ledger,
    state: &TenantState,
    release_id: &str,
    seq: Option<u64>,
) -> Result<ExplainedDecision, ExplainError> {
    let release = state
        .releases
        .get(release_id)
        .ok_or_else(|| ExplainError::NotFound(format!("release {:?} not found", ledger::clip(release_id))))?;
    let seq = match seq {
        Some(seq) => Some(seq),
        None => release.decision_seqs.last().copied(),
    };
    let Some(seq) = seq else {
        return match &release.decision {
            Some(d) => Ok(ExplainedDecision {
                seq: None,
                event_type: d.status.event_type().as_str().to_owned(),
                decision: d.clone(),
                reproduced: None,
                custom_gates: None,
            }),
            None => Err(ExplainError::NotFound(format!("release {:?} has no decision yet", ledger::clip(release_id)))),
        };
    };
    let entry = ledger.entry(&state.meta.tenant, seq)?;
    let envelope = entry.envelope().ok_or_else(|| ExplainError::NotFound(format!("seq {seq} is redacted")))?;
    let parsed =
        ParsedEvent::parse(&envelope.payload).map_err(|e| ReadError::Corrupted { seq, reason: e.to_string() })?;
    if parsed.header.release_id.as_deref() != Some(release_id) {
        return Err(ExplainError::NotFound(format!("seq {seq} is not about release {:?}", ledger::clip(release_id))));
    }
    let event = GovEvent::parse(&parsed).map_err(|e| ReadError::Corrupted { seq, reason: e.to_string() })?;
    let GovData::Decision(decision) = event.data else {
        return Err(ExplainError::NotFound(format!("seq {seq} is a {}, not a decision", event.event_type)));
    };
    // Re-derive: fold the prefix through the trigger and look at what it owes.
    let prefix = fold(ledger, &state.meta.tenant, Some(decision.trigger + 1))?;
    let id = crate::decision::decision_event_id(release_id, decision.trigger);
    let reproduced = prefix.meta.outbox.get(&id).map(|owed| owed.matches(&envelope.payload));
    Ok(ExplainedDecision {
        seq: Some(seq),
        event_type: event.event_type.as_str().to_owned(),
        custom_gates: explain_custom_gates(&prefix, release_id, decision.trigger),
        decision: *decision,
        reproduced: Some(reproduced.unwrap_or(false)),
    })
}

/// A point in a tenant's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After the entry at this seq.
    Seq(u64),
    /// After the last entry recorded at or before this time (ns).
    Time(u64),
}

/// A release as it stood at a point of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replay {
    /// Entries folded (the state is after seq `size - 1`).
    pub size: u64,
    /// The summary then (None if the release did not exist yet).
    pub summary: Option<ReleaseSummary>,
    /// The timeline then.
    pub timeline: Vec<TimelineItem>,
}

/// Folds the tenant's log up to `as_of` and returns the release as it stood.
pub fn replay(ledger: &Ledger, tenant: &str, release_id: &str, as_of: AsOf) -> Result<Replay, ReadError> {
    let size = ledger.head(tenant)?.size;
    let until = match as_of {
        AsOf::Seq(seq) => seq.saturating_add(1).min(size),
        AsOf::Time(t) => {
            // recordedAt is non-decreasing: binary search the first entry after `t`.
            let (mut lo, mut hi) = (0, size);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if ledger.entry(tenant, mid)?.recorded_at <= t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        }
    };
    let state = fold(ledger, tenant, Some(until))?;
    let release = state.releases.get(release_id);
    Ok(Replay {
        size: until,
        summary: release.map(|r| summary(&state, r)),
        timeline: release.map(|r| r.timeline.clone()).unwrap_or_default(),
    })
}
