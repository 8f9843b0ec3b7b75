//! The decision step: evaluate the gates for one release at one entry and, when the outcome
//! changed, emit the decision (and the retry request a delay owes) into the outbox.
//!
//! Called by the fold ([`crate::fold`]) only; reads the gates ([`crate::gates`]) and writes the
//! data model ([`crate::state`]).

use std::collections::BTreeMap;

use crate::catalogue::GovEvent;
use crate::decision::{decision_body, decision_event_id, retry_body, retry_event_id, DecisionData, DecisionStatus};
use crate::gates;
use crate::outbox::Outgoing;
use crate::state::{history_key, HistoryItem, HistoryKind, ReleaseState, ReleaseStatus, TenantMeta};

/// Drops the retry the release owes, if any. By its exact id (never by an id prefix: release
/// ids may contain `:`, so `retry:web:` is also a prefix of the retries of `web:canary`), and in
/// O(log n): a catch-up can owe a decision for every release at once.
pub(crate) fn cancel_retry(meta: &mut TenantMeta, release: &mut ReleaseState) {
    if let Some((_, trigger)) = release.retry.take() {
        meta.outbox.remove(&retry_event_id(&release.release_id, trigger));
    }
}

/// The trace id a ledger-authored event carries: the trigger's, else the intent's.
fn trace_of(event: &GovEvent, release: &ReleaseState) -> Option<String> {
    event.header.trace_id.clone().or_else(|| release.intent.as_ref().and_then(|i| i.trace_id.clone()))
}

/// Evaluates `release` at the entry `seq` (the trigger `event`) and emits a decision if the
/// outcome changed (always, for the intent's `planned` one).
pub(crate) fn decide(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &mut ReleaseState,
    seq: u64,
    at: u64,
    planned: bool,
    event: &GovEvent,
) {
    let trace = trace_of(event, release);
    decide_with(meta, dirty_history, release, seq, at, planned, trace.as_deref());
}

/// [`decide`] with the trace id given.
pub(crate) fn decide_with(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &mut ReleaseState,
    seq: u64,
    at: u64,
    planned: bool,
    trace: Option<&str>,
) {
    // Fail closed: an evaluation that panics becomes a rejection, never an approval.
    let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        #[cfg(test)]
        assert!(!tests::PANIC_IN_EVALUATE.with(std::cell::Cell::get), "evaluation panic injected by a test");
        gates::evaluate(meta, release, seq, at)
    }));
    let mut data = gates::bounded(evaluated.unwrap_or_else(|_| gates::evaluation_error(seq, at)), at);
    if planned {
        data.status = DecisionStatus::Planned;
        data.retry_after = None;
        data.retryable = true;
    } else if release.decision.as_ref().is_some_and(|last| last.same_outcome(&data)) {
        return;
    }
    emit_with(meta, dirty_history, release, data, at, trace);
}

/// Emits `data` as the release's decision at the trigger `event`.
pub(crate) fn emit(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &mut ReleaseState,
    data: DecisionData,
    at: u64,
    event: &GovEvent,
) {
    let trace = trace_of(event, release);
    emit_with(meta, dirty_history, release, data, at, trace.as_deref());
}

fn emit_with(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &mut ReleaseState,
    data: DecisionData,
    at: u64,
    trace: Option<&str>,
) {
    let tenant = meta.tenant.clone();
    let release_id = release.release_id.clone();
    let at_ns = i64::try_from(at).unwrap_or(i64::MAX);
    let body = decision_body(&tenant, &release_id, trace, at_ns, &data);
    meta.outbox.insert(
        decision_event_id(&release_id, data.trigger),
        Outgoing::new(release_id.clone(), body_text(body), None, data.trigger, at),
    );
    cancel_retry(meta, release);
    if let Some(retry_at) = data.retry_after.as_deref().and_then(|t| crate::freeze::parse_rfc3339_ns(t).ok()) {
        let body = retry_body(&tenant, &release_id, trace, data.trigger, retry_at);
        meta.outbox.insert(
            retry_event_id(&release_id, data.trigger),
            Outgoing::new(release_id.clone(), body_text(body), Some(retry_at), data.trigger, at),
        );
        release.retry = Some((retry_at, data.trigger));
    }
    release.status = ReleaseStatus::of(data.status);
    if let Some(kind) = HistoryKind::of_decision(data.status) {
        history(meta, dirty_history, release, data.trigger, at, kind);
    }
    release.decision = Some(data);
}

/// A body's bytes as text, without a copy: `serde_json` writes UTF-8 (anything else is
/// replaced, as before, rather than trusted).
fn body_text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Adds an item to the history of every module the release ships.
pub(crate) fn history(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &ReleaseState,
    seq: u64,
    at: u64,
    what: HistoryKind,
) {
    let Some(intent) = &release.intent else { return };
    for module in &intent.data.modules {
        let key = history_key(&module.name, &intent.data.environment);
        let item = HistoryItem {
            seq,
            recorded_at: at,
            release_id: release.release_id.clone(),
            version: module.version.clone(),
            event: what,
        };
        let index = meta.history.push(key.clone(), item);
        // Remember the first item not yet stored: history rows are append-only.
        dirty_history.entry(key).or_insert(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::ReasonCode;

    thread_local! {
        /// Set by a test: evaluations on this thread panic (the fail-closed path).
        pub(super) static PANIC_IN_EVALUATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// ARCHITECTURE.md: "an evaluation that panics never yields `ReleaseApproved`". The panic is
    /// caught and the release gets a rejection saying why, owed to the log like any decision.
    /// Checked by breaking it: without the `catch_unwind` the test panics; with
    /// `unwrap_or_else` returning an approval the status assertion fails.
    #[test]
    fn an_evaluation_that_panics_is_a_rejection_owed_to_the_log() {
        let mut meta = TenantMeta { tenant: "t".into(), ..TenantMeta::default() };
        let mut release = ReleaseState { release_id: "r1".into(), ..ReleaseState::default() };
        PANIC_IN_EVALUATE.with(|p| p.set(true));
        decide_with(&mut meta, &mut BTreeMap::new(), &mut release, 7, 1_000, false, None);
        PANIC_IN_EVALUATE.with(|p| p.set(false));

        let decision = release.decision.as_ref().expect("a decision was emitted");
        assert_eq!((decision.status, decision.trigger), (DecisionStatus::Rejected, 7));
        let reasons: Vec<&str> = decision.reasons.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(reasons, [ReasonCode::EvaluationError.as_str()]);
        assert_eq!(release.status, ReleaseStatus::Rejected);
        assert!(meta.outbox.get(&decision_event_id("r1", 7)).is_some(), "the rejection is not owed to the log");

        // The same release evaluated without the panic gets an ordinary verdict, not this one.
        let mut again = ReleaseState { release_id: "r1".into(), ..ReleaseState::default() };
        decide_with(&mut meta, &mut BTreeMap::new(), &mut again, 8, 1_000, false, None);
        let reasons: Vec<ReasonCode> = again.decision.unwrap().reasons.into_iter().map(|r| r.code).collect();
        assert!(!reasons.contains(&ReasonCode::EvaluationError), "{reasons:?}");
    }
}
