//! The data model of the governance fold: one tenant's state and everything in it.
//!
//! Types only, with their accessors and the change tracking the projection store saves by;
//! the bottom layer of the fold (see the crate docs for the module DAG). How state changes is
//! [`crate::fold`] ([`TenantState::apply`]); what the gates make of it is [`crate::gates`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalogue::{
    ApprovalMethod, BddData, CoverageData, EventType, GovData, GovEvent, IntentData, SecurityData, TestsData,
    ViolationData,
};
use crate::decision::{DecisionData, DecisionStatus};
use crate::freeze::Freeze;
pub use crate::outbox::{Outbox, Outgoing};
use crate::policy::ReleasePolicy;

/// Most anomalies kept per tenant (oldest dropped).
pub(crate) const MAX_ANOMALIES: usize = 200;

/// Most timeline items kept per release; later entries are counted, not listed (the log has
/// them all). Bounds what one release can cost to store and serve.
pub const MAX_TIMELINE: usize = 10_000;

/// Most pieces of evidence (signals, approvals, violations, overrides) one release can hold.
/// Beyond it, evaluation fails closed (`EvaluationError`): declare a new release.
pub const MAX_EVIDENCE: usize = 10_000;

/// Most `EvidenceAttached` one release can hold (each keeps a body of up to 32 KiB in memory
/// while the release is active). Beyond it, evaluation fails closed like [`MAX_EVIDENCE`].
pub const MAX_ATTACHMENTS: usize = 1_000;

/// What a release is at, as the summary reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ReleaseStatus {
    /// Declared (or only evidence so far); not decided.
    #[default]
    Planned,
    /// Every gate passed.
    Approved,
    /// Waiting on a freeze or approvals.
    Delayed,
    /// A gate failed.
    Rejected,
    /// Deployed after approval.
    Published,
    /// The deployment failed.
    Failed,
    /// Rolled back.
    RolledBack,
}

impl ReleaseStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "Planned",
            Self::Approved => "Approved",
            Self::Delayed => "Delayed",
            Self::Rejected => "Rejected",
            Self::Published => "Published",
            Self::Failed => "Failed",
            Self::RolledBack => "RolledBack",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Planned, Self::Approved, Self::Delayed, Self::Rejected, Self::Published, Self::Failed, Self::RolledBack]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    pub(crate) fn of(decision: DecisionStatus) -> Self {
        match decision {
            DecisionStatus::Planned => Self::Planned,
            DecisionStatus::Approved => Self::Approved,
            DecisionStatus::Delayed => Self::Delayed,
            DecisionStatus::Rejected => Self::Rejected,
            DecisionStatus::Published => Self::Published,
        }
    }
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Seq of its `PolicyUpdated`.
    pub seq: u64,
    /// The document.
    pub policy: ReleasePolicy,
}

/// A declared, not lifted, freeze.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreezeRecord {
    /// Seq of its `ChangeFreezeDeclared`.
    pub seq: u64,
    /// The compiled windows.
    pub freeze: Freeze,
}

/// A tenant key, as governance needs it (roles, revocation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    /// The agent.
    pub agent_id: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// Seq of its revocation.
    pub revoked_at: Option<u64>,
}

/// One item of a module × environment history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryItem {
    /// The entry.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The release.
    pub release_id: String,
    /// The module version the release ships.
    pub version: String,
    /// What happened: a decision status or a deployment event type.
    pub event: HistoryKind,
}

/// What a history item records, stored as its name (`"Approved"`, `"DeploymentFailed"`): the
/// strings the projection store held before the type existed, so existing stores load. A name
/// this build does not know fails to load like any corrupt row (the store is then rebuilt
/// from the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryKind {
    /// A `ReleaseApproved` decision.
    Approved,
    /// A `ReleaseDelayed` decision.
    Delayed,
    /// A `ReleaseRejected` decision.
    Rejected,
    /// A `ReleasePublished` decision.
    Published,
    /// A `DeploymentCompleted` event.
    DeploymentCompleted,
    /// A `DeploymentFailed` event.
    DeploymentFailed,
    /// A `RollbackTriggered` event.
    RollbackTriggered,
}

impl HistoryKind {
    /// The item a decision with `status` records (`Planned` records none: the intent is not
    /// something that happened to the environment).
    pub fn of_decision(status: DecisionStatus) -> Option<Self> {
        match status {
            DecisionStatus::Planned => None,
            DecisionStatus::Approved => Some(Self::Approved),
            DecisionStatus::Delayed => Some(Self::Delayed),
            DecisionStatus::Rejected => Some(Self::Rejected),
            DecisionStatus::Published => Some(Self::Published),
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "Approved",
            Self::Delayed => "Delayed",
            Self::Rejected => "Rejected",
            Self::Published => "Published",
            Self::DeploymentCompleted => "DeploymentCompleted",
            Self::DeploymentFailed => "DeploymentFailed",
            Self::RollbackTriggered => "RollbackTriggered",
        }
    }

    /// Whether the environment failed: a failed deployment or a rollback (the risk score's
    /// `recentFailures`).
    pub fn is_failure(self) -> bool {
        matches!(self, Self::DeploymentFailed | Self::RollbackTriggered)
    }
}

/// An inconsistency met while folding (kept for operators; never decides anything).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The entry.
    pub seq: u64,
    /// What.
    pub detail: String,
}

/// The release intent as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentRecord {
    /// Seq of the intent.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The key that signed it.
    pub key_id: String,
    /// Its author.
    pub agent_id: String,
    /// Correlation id.
    pub trace_id: Option<String>,
    /// The data.
    pub data: IntentData,
}

/// A piece of QA or security evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum SignalEvidence {
    Tests { passed: bool, data: TestsData },
    Coverage(CoverageData),
    Bdd(BddData),
    Security(SecurityData),
}

impl SignalEvidence {
    /// The evidence an event carries, if it is a signal. Free-text notes are never evaluated:
    /// the log keeps them, the state does not.
    pub(crate) fn of(event: &GovEvent) -> Option<Self> {
        Some(match &event.data {
            GovData::Tests(d) => Self::Tests {
                passed: event.event_type == EventType::TestsPassed,
                data: TestsData { notes: None, ..d.clone() },
            },
            GovData::Coverage(d) => Self::Coverage(CoverageData { notes: None, ..d.clone() }),
            GovData::Bdd(d) => Self::Bdd(BddData { notes: None, ..d.clone() }),
            GovData::Security(d) => Self::Security(SecurityData { notes: None, ..d.clone() }),
            _ => return None,
        })
    }

    /// The module and version it vouches for.
    pub fn module_version(&self) -> (&str, &str) {
        match self {
            Self::Tests { data, .. } => (&data.module, &data.version),
            Self::Coverage(d) => (&d.module, &d.version),
            Self::Bdd(d) => (&d.module, &d.version),
            Self::Security(d) => (&d.module, &d.version),
        }
    }
}

/// A signal and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    /// Its seq.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The evidence.
    pub signal: SignalEvidence,
}

/// An approval or rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// Its seq.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The signing key.
    pub key_id: String,
    /// The approver.
    pub agent_id: String,
    /// The role.
    pub role: String,
    /// Granted (true) or rejected.
    pub granted: bool,
    /// Comment (granted) or reason (rejected).
    pub text: String,
    /// How it was given (granted only).
    pub method: Option<ApprovalMethod>,
}

/// An `EvidenceAttached`, as policies read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRecord {
    /// Its seq.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The key that signed the event.
    pub key_id: String,
    /// Its author.
    pub agent_id: String,
    /// The module.
    pub module: String,
    /// Its version.
    pub version: String,
    /// The evidence kind.
    pub kind: String,
    /// The artifact's digests.
    pub subject_digest: BTreeMap<String, String>,
    /// The document's digests.
    pub content_digest: BTreeMap<String, String>,
    /// The document's media type.
    pub media_type: String,
    /// Where the document lives.
    pub uri: Option<String>,
    /// The body, or the attestation's in-toto Statement.
    pub body: Option<serde_json::Value>,
    /// The attestation's signer key id and predicate type, when it carried one (the ledger
    /// verified the signature when it was appended).
    pub attestation: Option<(String, String)>,
    /// Why the body does not satisfy the policy's schema for its kind (the schema in force
    /// when it was attached); such evidence is not given to the gates.
    pub schema_error: Option<String>,
}

/// A freeze override for this release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideRecord {
    /// Its seq.
    pub seq: u64,
    /// The signing key.
    pub key_id: String,
    /// The freeze.
    pub freeze_id: String,
    /// Why.
    pub justification: String,
}

/// One line of a release's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineItem {
    /// The entry.
    pub seq: u64,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// Event type.
    pub event_type: String,
    /// Author.
    pub agent_id: String,
    /// One line.
    pub summary: String,
}

/// Everything known about one release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseState {
    /// The release.
    pub release_id: String,
    /// Its intent, once declared.
    pub intent: Option<IntentRecord>,
    /// Whether an evaluation was requested (from then on, evidence re-evaluates).
    pub evaluation_requested: bool,
    /// QA and security evidence.
    pub signals: Vec<SignalRecord>,
    /// Policy violations.
    pub violations: Vec<(u64, ViolationData)>,
    /// Evidence of any kind (`EvidenceAttached`).
    #[serde(default)]
    pub attachments: Vec<AttachmentRecord>,
    /// Approvals and rejections.
    pub approvals: Vec<ApprovalRecord>,
    /// Freeze overrides.
    pub overrides: Vec<OverrideRecord>,
    /// Withdrawn evidence: seq → seq of the `EvidenceInvalidated`.
    pub invalidated: BTreeMap<u64, u64>,
    /// The last decision derived (and appended, or about to be).
    pub decision: Option<DecisionData>,
    /// Seqs of the decision entries in the log.
    pub decision_seqs: Vec<u64>,
    /// The decision entries in the log: trigger seq → decision seq.
    #[serde(default)]
    pub decision_entries: BTreeMap<u64, u64>,
    /// Current status.
    pub status: ReleaseStatus,
    /// Seq of `DeploymentStarted`, once deploying (evaluation stops).
    pub deployment_started: Option<u64>,
    /// Why the deployment failed or was rolled back.
    pub failure: Option<String>,
    /// Pending retry: (not before, ns; trigger seq of the delaying decision).
    pub retry: Option<(i64, u64)>,
    /// Notes about events that did not apply (deployment without approval, duplicate intent).
    pub notes: Vec<String>,
    /// Entries about the release (the first [`MAX_TIMELINE`]).
    pub timeline: Vec<TimelineItem>,
    /// Entries about the release beyond [`MAX_TIMELINE`].
    #[serde(default)]
    pub timeline_omitted: u64,
    /// More evidence than [`MAX_EVIDENCE`] arrived; evaluation fails closed.
    #[serde(default)]
    pub evidence_overflow: bool,
    /// `recordedAt` of the first entry, ns.
    pub created_at: u64,
    /// `recordedAt` of the last entry, ns.
    pub updated_at: u64,
}

impl ReleaseState {
    pub(crate) fn new(release_id: &str) -> Self {
        Self { release_id: release_id.to_owned(), ..Self::default() }
    }

    /// Whether evidence and approvals re-evaluate it (requested, not deploying, not final).
    pub fn is_active(&self) -> bool {
        self.evaluation_requested
            && self.deployment_started.is_none()
            && !matches!(self.status, ReleaseStatus::Published | ReleaseStatus::Failed | ReleaseStatus::RolledBack)
    }

    /// Whether `seq` was withdrawn.
    pub fn is_invalidated(&self, seq: u64) -> bool {
        self.invalidated.contains_key(&seq)
    }

    pub(crate) fn evidence_count(&self) -> usize {
        self.signals.len()
            + self.violations.len()
            + self.approvals.len()
            + self.overrides.len()
            + self.attachments.len()
    }

    pub(crate) fn owns_evidence(&self, seq: u64) -> bool {
        self.intent.as_ref().is_some_and(|i| i.seq == seq)
            || self.signals.iter().any(|s| s.seq == seq)
            || self.violations.iter().any(|(s, _)| *s == seq)
            || self.approvals.iter().any(|a| a.seq == seq)
            || self.overrides.iter().any(|o| o.seq == seq)
            || self.attachments.iter().any(|a| a.seq == seq)
    }

    /// The environment, once declared.
    pub fn environment(&self) -> Option<&str> {
        self.intent.as_ref().map(|i| i.data.environment.as_str())
    }
}

/// Tenant-wide configuration and history the gates read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantMeta {
    /// The tenant.
    pub tenant: String,
    /// Next seq to apply (= entries applied).
    pub position: u64,
    /// `recordedAt` of the last applied entry, ns.
    pub last_recorded_at: u64,
    /// The policy in force.
    pub policy: Option<PolicyRecord>,
    /// Freezes declared and not lifted, by id.
    pub freezes: BTreeMap<String, FreezeRecord>,
    /// Tenant keys, by key id.
    pub keys: BTreeMap<String, KeyInfo>,
    /// `module|environment` → history (stored in rows of its own, not with the meta).
    #[serde(skip)]
    pub history: Histories,
    /// Appends owed, by event id (stored in rows of their own, not with the meta).
    #[serde(skip)]
    pub outbox: Outbox,
    /// Recent anomalies.
    pub anomalies: Vec<Anomaly>,
    /// Set by an `EntryRedacted`: derived state may hold erased data, rebuild from the log.
    pub needs_rebuild: bool,
}

impl TenantMeta {
    /// The history of `module` in `environment`.
    pub fn history_of(&self, module: &str, environment: &str) -> &[HistoryItem] {
        self.history.get(&history_key(module, environment)).map(Vec::as_slice).unwrap_or_default()
    }

    /// Stops owing `id`, which cannot be appended (`why`), and records it as an anomaly at the
    /// state's position (under the same cap as every other). The removal is a change the next
    /// save stores.
    pub fn drop_owed(&mut self, id: &str, why: &str) {
        self.outbox.remove(id);
        self.anomaly(self.position, format!("append of {id} dropped: {why}"));
    }

    /// Records an anomaly, dropping the oldest beyond the cap (every anomaly goes through here).
    pub(crate) fn anomaly(&mut self, seq: u64, detail: String) {
        tracing::warn!(tenant = %self.tenant, seq, %detail, "governance anomaly");
        if self.anomalies.len() >= MAX_ANOMALIES {
            self.anomalies.remove(0);
        }
        self.anomalies.push(Anomaly { seq, detail });
    }
}

/// Every module × environment history: `module|environment` → its items in log order (read
/// through `Deref`, added to only by [`Histories::push`]), and for each key the releases that
/// published there as far as the risk score asks: the first, and whether any other did.
///
/// `firstRelease` asks whether a release other than the one evaluated ever published a module
/// to an environment. Scanning the history for that cost every evaluation the whole history of
/// each module it ships (decisions are history items too), where the rest of the score costs
/// only the 24-hour window. Kept as the items are pushed, it costs a lookup.
///
/// `recentFailures` counts the failures (failed deployments, rollbacks) in the last 24 hours.
/// The window holds every item of those hours, which on a busy module (or a log written faster
/// than a day, as the benchmarks' are) is the whole history; so each key also keeps where its
/// failures are ([`Histories::failures_between`]), and an evaluation costs a binary search and
/// the failures in the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histories {
    items: BTreeMap<String, Vec<HistoryItem>>,
    publishers: BTreeMap<String, Publishers>,
    /// Per key, the indices of its failure items, in log order.
    failures: BTreeMap<String, Vec<usize>>,
}

/// The releases that published to one module × environment.
#[derive(Debug, Clone, PartialEq)]
struct Publishers {
    /// The first that did.
    first: String,
    /// Whether another release did since.
    another: bool,
}

impl std::ops::Deref for Histories {
    type Target = BTreeMap<String, Vec<HistoryItem>>;

    fn deref(&self) -> &Self::Target {
        &self.items
    }
}

impl Histories {
    /// Appends `item` to the history `key` (items come in log order); returns its index there.
    pub fn push(&mut self, key: String, item: HistoryItem) -> usize {
        if item.event == HistoryKind::Published {
            match self.publishers.get_mut(&key) {
                Some(seen) => seen.another |= seen.first != item.release_id,
                None => {
                    let first = Publishers { first: item.release_id.clone(), another: false };
                    self.publishers.insert(key.clone(), first);
                }
            }
        }
        if item.event.is_failure() {
            let index = self.items.get(&key).map_or(0, Vec::len);
            self.failures.entry(key.clone()).or_default().push(index);
        }
        let items = self.items.entry(key).or_default();
        items.push(item);
        items.len() - 1
    }

    /// The failure items of the history `key` ([`HistoryKind::is_failure`]) recorded from
    /// `since` to `at`, both included, in log order: what scanning the items of that window
    /// finds (items are in log order, and `recordedAt` never decreases along a tenant's log),
    /// by a binary search over the key's failures only.
    pub fn failures_between(&self, key: &str, since: u64, at: u64) -> impl Iterator<Item = &HistoryItem> + '_ {
        let items = self.items.get(key).map(Vec::as_slice).unwrap_or_default();
        let failures = self.failures.get(key).map(Vec::as_slice).unwrap_or_default();
        let from = failures.partition_point(|&i| items[i].recorded_at < since);
        failures[from..].iter().map(move |&i| &items[i]).take_while(move |item| item.recorded_at <= at)
    }

    /// Whether a release other than `release_id` published in the history `key`.
    pub fn published_by_another(&self, key: &str, release_id: &str) -> bool {
        self.publishers.get(key).is_some_and(|p| p.another || p.first != release_id)
    }
}

/// The history key of a module in an environment.
pub fn history_key(module: &str, environment: &str) -> String {
    format!("{module}|{environment}")
}

/// One tenant's whole governance state.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TenantState {
    /// Tenant-wide state.
    pub meta: TenantMeta,
    /// Releases by id.
    pub releases: BTreeMap<String, ReleaseState>,
    /// Releases changed since the last [`TenantState::take_dirty`] (not persisted).
    #[serde(skip)]
    pub(crate) dirty: BTreeSet<String>,
    /// History keys changed since the last [`TenantState::take_dirty`] (not persisted).
    #[serde(skip)]
    pub(crate) dirty_history: BTreeMap<String, usize>,
    /// Releases in memory when [`TenantState::evict`] last scanned them (not persisted).
    #[serde(skip)]
    scanned_at: usize,
    /// Set by [`TenantState::without_timelines`] (not persisted).
    #[serde(skip)]
    pub(crate) no_timelines: bool,
}

/// Two states are equal when they say the same thing; the change tracking of what is still to
/// be stored is not part of it.
impl PartialEq for TenantState {
    fn eq(&self, other: &Self) -> bool {
        self.meta == other.meta && self.releases == other.releases
    }
}

/// What changed since the last persist.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Release ids.
    pub releases: BTreeSet<String>,
    /// History keys, with the index of their first item not yet stored.
    pub history: BTreeMap<String, usize>,
    /// Outbox ids inserted or removed.
    pub outbox: BTreeSet<String>,
}

impl TenantState {
    /// An empty state for `tenant`.
    pub fn new(tenant: &str) -> Self {
        Self { meta: TenantMeta { tenant: tenant.to_owned(), ..TenantMeta::default() }, ..Self::default() }
    }

    /// This state, folding on without releases' timelines: no [`TimelineItem`] is added and
    /// none counted as omitted. For a fold whose state is checked for its decisions and then
    /// dropped (`ledger-audit verify`): no gate, score or decision reads a timeline, so every
    /// decision is the one a fold with timelines derives (the tests fold the same log both
    /// ways), and building the one-line summaries was a few percent of the audit's CPU
    /// (BENCHMARKS.md, issue 20's twenty-fifth session). Queries, projections and replays
    /// show timelines, so every fold behind them keeps them.
    #[must_use]
    pub fn without_timelines(mut self) -> Self {
        self.no_timelines = true;
        self
    }

    /// The releases, history keys and outbox ids changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        Dirty {
            releases: std::mem::take(&mut self.dirty),
            history: std::mem::take(&mut self.dirty_history),
            outbox: self.meta.outbox.take_changed(),
        }
    }

    /// Puts back a change set taken by [`TenantState::take_dirty`] that could not be stored,
    /// merged with what changed since, so the next save writes both.
    pub fn restore_dirty(&mut self, dirty: Dirty) {
        self.dirty.extend(dirty.releases);
        for (key, from) in dirty.history {
            let first = self.dirty_history.entry(key).or_insert(from);
            *first = (*first).min(from);
        }
        self.meta.outbox.restore_changed(dirty.outbox);
    }

    /// Evicts inactive releases that are stored (not changed since the last
    /// [`TenantState::take_dirty`]), least recently updated first, until at most `keep`
    /// inactive ones stay (the store holds them). Active releases always stay: tenant-wide
    /// changes (policy, freezes, key revocations) re-evaluate them all.
    ///
    /// The eviction scans every release in memory, and the worker calls this after every
    /// save (each commit group at one client): so it scans only once `keep / 8` more releases
    /// are in memory than at its last scan (with `keep` under 8, every time). Between scans at
    /// most `keep + keep / 8` inactive releases plus those that turned inactive since stay.
    pub fn evict(&mut self, keep: usize) {
        let in_memory = self.releases.len();
        if in_memory <= keep || in_memory < self.scanned_at.saturating_add(keep / 8) {
            return;
        }
        for id in self.beyond_cache(keep, |id| self.dirty.contains(id)) {
            self.releases.remove(&id);
        }
        self.scanned_at = self.releases.len();
    }

    /// The inactive releases that would leave memory so that at most `keep` inactive ones
    /// stay, least recently updated first, never one for which `stays` holds (and never an
    /// active one).
    pub fn beyond_cache(&self, keep: usize, stays: impl Fn(&str) -> bool) -> Vec<String> {
        let mut inactive: Vec<(u64, &String)> = self
            .releases
            .iter()
            .filter(|(id, r)| !r.is_active() && !stays(id))
            .map(|(id, r)| (r.updated_at, id))
            .collect();
        if inactive.len() <= keep {
            return Vec::new();
        }
        let excess = inactive.len() - keep;
        inactive.select_nth_unstable(excess - 1);
        inactive[..excess].iter().map(|(_, id)| (*id).clone()).collect()
    }

    /// Marks a release changed (to be stored with the next save), for code that edits
    /// [`TenantState::releases`] directly.
    pub fn mark_dirty(&mut self, release_id: &str) {
        self.dirty.insert(release_id.to_owned());
    }
}

pub use ledger::time::format_recorded_at;

/// The blocking reasons of a release's current decision (empty before any).
pub fn current_blocking(release: &ReleaseState) -> Vec<crate::decision::Reason> {
    release
        .decision
        .as_ref()
        .map(|d| d.reasons.iter().filter(|r| r.code.is_blocking()).cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every kind of history item.
    const KINDS: [HistoryKind; 7] = [
        HistoryKind::Approved,
        HistoryKind::Delayed,
        HistoryKind::Rejected,
        HistoryKind::Published,
        HistoryKind::DeploymentCompleted,
        HistoryKind::DeploymentFailed,
        HistoryKind::RollbackTriggered,
    ];

    /// A xorshift generator from `seed`: `next(n)` is a number below `n`, the same sequence on
    /// every run.
    fn xorshift(mut x: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        }
    }

    fn add_inactive(state: &mut TenantState, ids: std::ops::Range<u64>) {
        for n in ids {
            state.releases.insert(format!("r{n:03}"), ReleaseState { updated_at: n, ..ReleaseState::default() });
        }
    }

    /// The eviction keeps the most recently updated, scans again only once `keep / 8` more
    /// releases are in memory than after its last scan, and with a small `keep` every time.
    #[test]
    fn eviction_keeps_the_newest_and_scans_again_after_an_eighth_more() {
        let mut state = TenantState::new("t");
        add_inactive(&mut state, 0..40);
        state.evict(32);
        assert_eq!(state.releases.len(), 32);
        assert_eq!(state.releases.keys().next().map(String::as_str), Some("r008"), "the oldest left first");
        add_inactive(&mut state, 40..43);
        state.evict(32);
        assert_eq!(state.releases.len(), 35, "fewer than 32 / 8 more: no scan");
        add_inactive(&mut state, 43..44);
        state.evict(32);
        assert_eq!(state.releases.len(), 32, "four more: scanned and evicted down to keep");
        assert!(state.releases.contains_key("r043") && !state.releases.contains_key("r011"));
        // A changed release stays whatever its age; a small cache is scanned on every call.
        state.mark_dirty("r012");
        add_inactive(&mut state, 44..45);
        state.evict(4);
        assert_eq!(state.releases.len(), 5);
        assert!(state.releases.contains_key("r012"));
        add_inactive(&mut state, 45..46);
        state.evict(4);
        assert_eq!(state.releases.len(), 5);
        assert!(state.releases.contains_key("r045") && !state.releases.contains_key("r041"));
    }

    /// Rows written when `event` was a plain string load as the typed kind and are written back
    /// byte for byte; a name this build does not know is refused like any corrupt row.
    #[test]
    fn history_rows_keep_their_stored_strings() {
        let row = r#"{"seq":7,"recordedAt":9,"releaseId":"r1","version":"1.0.0","event":"RollbackTriggered"}"#;
        let item: HistoryItem = serde_json::from_str(row).unwrap();
        assert_eq!(item.event, HistoryKind::RollbackTriggered);
        assert!(item.event.is_failure());
        assert_eq!(serde_json::to_string(&item).unwrap(), row);
        for status in DecisionStatus::ALL {
            if let Some(kind) = HistoryKind::of_decision(status) {
                assert_eq!(kind.as_str(), status.as_str());
                assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", status.as_str()));
            }
        }
        assert_eq!(HistoryKind::of_decision(DecisionStatus::Planned), None);
        assert!(serde_json::from_str::<HistoryItem>(&row.replace("RollbackTriggered", "Teleported")).is_err());
    }

    /// Issue 15, item 7: the worker's `drop_owed` pushed its anomaly past the cap. Checked by
    /// making `drop_owed` push to `anomalies` directly, as the worker did: the length is then
    /// one over the cap.
    #[test]
    fn a_dropped_append_is_an_anomaly_under_the_cap_and_a_change_to_store() {
        let mut meta = TenantMeta::default();
        for seq in 0..MAX_ANOMALIES as u64 + 5 {
            meta.anomaly(seq, "earlier".into());
        }
        meta.outbox.insert("decision:r1:1".into(), Outgoing::new("r1".into(), "{}".into(), None, 1, 1));
        let _ = meta.outbox.take_changed();
        meta.position = 999;
        meta.drop_owed("decision:r1:1", "refused");
        assert_eq!(meta.anomalies.len(), MAX_ANOMALIES);
        assert_eq!(
            meta.anomalies.last(),
            Some(&Anomaly { seq: 999, detail: "append of decision:r1:1 dropped: refused".into() })
        );
        assert!(meta.outbox.get("decision:r1:1").is_none());
        assert!(meta.outbox.take_changed().contains("decision:r1:1"));
    }

    /// `published_by_another`, kept as items are pushed, answers what a scan of the history
    /// answers, for every release after every push (random histories: several keys, releases
    /// publishing more than once, every kind of item).
    #[test]
    fn publishers_kept_on_push_answer_what_a_scan_of_the_history_does() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let keys = ["api|prod", "api|staging", "web|prod"];
        let releases = ["r1", "r2", "r3", "r4"];
        let scan = |h: &Histories, key: &str, release: &str| {
            h.get(key)
                .is_some_and(|items| items.iter().any(|i| i.event == HistoryKind::Published && i.release_id != release))
        };
        let mut answers = std::collections::BTreeSet::new();
        for round in 0..200 {
            let mut h = Histories::default();
            for seq in 0..next(40) {
                let (key, release) = (keys[next(3) as usize], releases[next(4) as usize]);
                // Publications often, so that keys see one, two and more publishers.
                let event = if next(3) == 0 { HistoryKind::Published } else { KINDS[next(7) as usize] };
                let item =
                    HistoryItem { seq, recorded_at: seq, release_id: release.into(), version: "1".into(), event };
                h.push(key.into(), item);
                for key in keys {
                    for release in releases {
                        let kept = h.published_by_another(key, release);
                        assert_eq!(kept, scan(&h, key, release), "round {round}, after seq {seq}: {key} {release}");
                        answers.insert(kept);
                    }
                }
            }
        }
        assert_eq!(answers.len(), 2, "both answers seen");
    }

    /// The failures kept per key give, for every window, the items a scan of the window finds
    /// (as the risk score scanned it: from the first item recorded at `since`, while recorded
    /// by `at`), after every push of 200 random histories whose `recordedAt` repeats and jumps.
    #[test]
    fn failures_kept_on_push_are_the_failures_a_scan_of_the_window_finds() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let keys = ["api|prod", "api|staging"];
        let scan = |h: &Histories, key: &str, since: u64, at: u64| -> Vec<u64> {
            let history = h.get(key).map(Vec::as_slice).unwrap_or_default();
            history[history.partition_point(|i| i.recorded_at < since)..]
                .iter()
                .take_while(|i| i.recorded_at <= at)
                .filter(|i| i.event.is_failure())
                .map(|i| i.seq)
                .collect()
        };
        let mut found = 0;
        for round in 0..200 {
            let mut h = Histories::default();
            let mut recorded_at = 0;
            for seq in 0..next(40) {
                recorded_at += next(3);
                let item = HistoryItem {
                    seq,
                    recorded_at,
                    release_id: "r".into(),
                    version: "1".into(),
                    event: KINDS[next(KINDS.len() as u64) as usize],
                };
                h.push(keys[next(2) as usize].into(), item);
                for key in keys {
                    for since in 0..=recorded_at + 1 {
                        for at in since.saturating_sub(1)..=recorded_at + 1 {
                            let kept: Vec<u64> = h.failures_between(key, since, at).map(|i| i.seq).collect();
                            assert_eq!(
                                kept,
                                scan(&h, key, since, at),
                                "round {round}, seq {seq}: {key} {since}..={at}"
                            );
                            found += kept.len();
                        }
                    }
                }
            }
        }
        assert!(found > 0, "no window held a failure: the test proves nothing");
    }
}
