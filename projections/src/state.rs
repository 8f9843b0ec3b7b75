//! Governance state of one tenant, folded entry by entry from its log.
//!
//! [`TenantState::apply`] is the only way state changes, and it is a pure function of the
//! state and the entry: no clock, no I/O. Decisions and the ledger's own retry requests it
//! derives go to an outbox (part of the state, so they are persisted with it); the worker
//! appends them through the normal append path and they come back as entries, which clears
//! them. Rebuilding from seq 0 therefore yields the same state and the same decision bytes as
//! the live fold — the determinism tests check both.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{Entry, ParsedEvent};
use serde::{Deserialize, Serialize};

use crate::catalogue::{
    ApprovalMethod, BddData, CoverageData, EventType, GovData, GovEvent, IntentData, SecurityData, TestsData,
    ViolationData,
};
use crate::decision::{
    codes, decision_body, decision_event_id, retry_body, retry_event_id, DecisionData, DecisionStatus, Gate, Verdict,
};
use crate::freeze::{format_ns, Freeze};
use crate::gates;
pub use crate::outbox::{Outbox, Outgoing};
use crate::policy::ReleasePolicy;

/// Most anomalies kept per tenant (oldest dropped).
const MAX_ANOMALIES: usize = 200;

/// Most timeline items kept per release; later entries are counted, not listed (the log has
/// them all). Bounds what one release can cost to store and serve.
pub const MAX_TIMELINE: usize = 10_000;

/// Most pieces of evidence (signals, approvals, violations, overrides) one release can hold.
/// Beyond it, evaluation fails closed (`EvaluationError`): declare a new release.
pub const MAX_EVIDENCE: usize = 10_000;

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

    fn of(decision: DecisionStatus) -> Self {
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
    pub event: String,
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
    fn of(event: &GovEvent) -> Option<Self> {
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
    fn new(release_id: &str) -> Self {
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

    fn evidence_count(&self) -> usize {
        self.signals.len() + self.violations.len() + self.approvals.len() + self.overrides.len()
    }

    fn owns_evidence(&self, seq: u64) -> bool {
        self.intent.as_ref().is_some_and(|i| i.seq == seq)
            || self.signals.iter().any(|s| s.seq == seq)
            || self.violations.iter().any(|(s, _)| *s == seq)
            || self.approvals.iter().any(|a| a.seq == seq)
            || self.overrides.iter().any(|o| o.seq == seq)
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
    pub history: BTreeMap<String, Vec<HistoryItem>>,
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

    fn anomaly(&mut self, seq: u64, detail: String) {
        tracing::warn!(tenant = %self.tenant, seq, %detail, "governance anomaly");
        if self.anomalies.len() >= MAX_ANOMALIES {
            self.anomalies.remove(0);
        }
        self.anomalies.push(Anomaly { seq, detail });
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
    dirty: BTreeSet<String>,
    /// History keys changed since the last [`TenantState::take_dirty`] (not persisted).
    #[serde(skip)]
    dirty_history: BTreeMap<String, usize>,
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

    /// The releases, history keys and outbox ids changed since the last call.
    pub fn take_dirty(&mut self) -> Dirty {
        Dirty {
            releases: std::mem::take(&mut self.dirty),
            history: std::mem::take(&mut self.dirty_history),
            outbox: self.meta.outbox.take_changed(),
        }
    }

    /// Folds the next entry in. Entries must come in seq order from the state's position.
    /// Every release the state has seen must be in memory (see [`TenantState::apply_loading`]).
    pub fn apply(&mut self, entry: &Entry) {
        let parsed = entry.envelope().map(|e| ParsedEvent::parse(&e.payload));
        self.apply_parsed(entry, parsed);
    }

    /// [`TenantState::apply`] for a state whose inactive releases may have been evicted (see
    /// [`TenantState::evict`]): a release the entry is about and that is not in memory is
    /// asked of `load` first, so the fold is exactly the one with every release in memory.
    /// On a load error the state is partly applied and must be discarded.
    pub fn apply_loading<E>(
        &mut self,
        entry: &Entry,
        load: &mut dyn FnMut(&str) -> Result<Option<ReleaseState>, E>,
    ) -> Result<(), E> {
        // The payload is parsed once, for the release it names and for the fold.
        let parsed = entry.envelope().map(|e| ParsedEvent::parse(&e.payload));
        let release_id = parsed.as_ref().and_then(|p| p.as_ref().ok()).and_then(|p| p.header.release_id.clone());
        if let Some(release_id) = release_id {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.releases.entry(release_id) {
                if let Some(release) = load(slot.key())? {
                    slot.insert(release);
                }
            }
        }
        self.apply_parsed(entry, parsed);
        Ok(())
    }

    /// Evicts inactive releases that are stored (not changed since the last
    /// [`TenantState::take_dirty`]), least recently updated first, until at most `keep`
    /// inactive ones stay (the store holds them). Active releases always stay: tenant-wide
    /// changes (policy, freezes, key revocations) re-evaluate them all.
    pub fn evict(&mut self, keep: usize) {
        let mut inactive: Vec<(u64, &String)> = self
            .releases
            .iter()
            .filter(|(id, r)| !r.is_active() && !self.dirty.contains(*id))
            .map(|(id, r)| (r.updated_at, id))
            .collect();
        if inactive.len() <= keep {
            return;
        }
        let excess = inactive.len() - keep;
        inactive.select_nth_unstable(excess - 1);
        let gone: Vec<String> = inactive[..excess].iter().map(|(_, id)| (*id).clone()).collect();
        for id in &gone {
            self.releases.remove(id);
        }
    }

    /// Marks a release changed (to be stored with the next save), for code that edits
    /// [`TenantState::releases`] directly.
    pub fn mark_dirty(&mut self, release_id: &str) {
        self.dirty.insert(release_id.to_owned());
    }

    /// Folds `entry`, whose payload parses to `parsed` (`None`: redacted).
    fn apply_parsed(&mut self, entry: &Entry, parsed: Option<Result<ParsedEvent, ledger::error::InvalidEvent>>) {
        debug_assert_eq!(entry.seq, self.meta.position, "entries must be applied in order");
        let seq = entry.seq;
        self.meta.position = seq + 1;
        self.meta.last_recorded_at = entry.recorded_at;
        let (Some(envelope), Some(parsed)) = (entry.envelope(), parsed) else {
            // A redacted payload: nothing to fold (the redaction itself scheduled a rebuild).
            return;
        };
        let key_id = envelope.signatures.first().map(|s| s.keyid.clone()).unwrap_or_default();
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => return self.meta.anomaly(seq, format!("body does not parse: {e}")),
        };
        let event = match GovEvent::parse(&parsed) {
            Ok(g) => g,
            Err(e) => return self.meta.anomaly(seq, format!("not a catalogue event: {e}")),
        };
        let at = entry.recorded_at;
        match &event.data {
            GovData::KeyRegistered(d) => {
                if let Ok(key) = ledger::keys::public_key_from_base64(&d.public_key) {
                    let id = ledger::KeyId::of(&key).to_hex();
                    self.meta
                        .keys
                        .insert(id, KeyInfo { agent_id: d.agent_id.clone(), roles: d.roles.clone(), revoked_at: None });
                }
            }
            GovData::KeyRevoked(d) => {
                if let Some(info) = self.meta.keys.get_mut(&d.key_id) {
                    info.revoked_at = Some(seq);
                    // Approvals and overrides signed by the key stop counting now (fail closed),
                    // not at whatever event happens to re-evaluate the release next.
                    self.reevaluate_active(seq, at, None);
                }
            }
            GovData::Redacted(_) => self.meta.needs_rebuild = true,
            GovData::Policy(d) => {
                self.meta.policy = Some(PolicyRecord { seq, policy: d.policy.clone() });
                self.reevaluate_active(seq, at, None);
            }
            GovData::FreezeDeclared(d) => match Freeze::compile(d.clone(), &event.header.occurred_at) {
                Ok(freeze) => {
                    self.meta.freezes.insert(d.freeze_id.clone(), FreezeRecord { seq, freeze });
                    self.reevaluate_active(seq, at, None);
                }
                Err(e) => self.meta.anomaly(seq, format!("freeze does not compile: {e}")),
            },
            GovData::FreezeLifted(d) => {
                if self.meta.freezes.remove(&d.freeze_id).is_some() {
                    self.reevaluate_active(seq, at, Some(ReleaseStatus::Delayed));
                } else {
                    self.meta.anomaly(seq, format!("lifts freeze {:?}, which is not in force", d.freeze_id));
                }
            }
            _ => self.apply_release_event(entry, &event, key_id),
        }
    }

    fn apply_release_event(&mut self, entry: &Entry, event: &GovEvent, key_id: String) {
        let seq = entry.seq;
        let at = entry.recorded_at;
        let Some(release_id) = event.header.release_id.clone() else {
            return self.meta.anomaly(seq, format!("{} without releaseId", event.event_type));
        };
        self.dirty.insert(release_id.clone());
        let release = self.releases.entry(release_id.clone()).or_insert_with(|| ReleaseState::new(&release_id));
        if release.created_at == 0 {
            release.created_at = at;
        }
        release.updated_at = at;
        if release.timeline.len() < MAX_TIMELINE {
            release.timeline.push(TimelineItem {
                seq,
                recorded_at: at,
                event_type: event.event_type.as_str().to_owned(),
                agent_id: event.header.actor.agent_id.clone(),
                summary: summarize(&event.data),
            });
        } else {
            release.timeline_omitted += 1;
        }
        let is_evidence = matches!(
            event.data,
            GovData::Tests(_)
                | GovData::Coverage(_)
                | GovData::Bdd(_)
                | GovData::Security(_)
                | GovData::Violation(_)
                | GovData::ApprovalGranted(_)
                | GovData::ApprovalRejected(_)
                | GovData::FreezeOverride(_)
        );
        if is_evidence && release.evidence_count() >= MAX_EVIDENCE {
            if !release.evidence_overflow {
                release.evidence_overflow = true;
                release.notes.push(format!("seq {seq}: more than {MAX_EVIDENCE} pieces of evidence; not evaluated"));
            }
            if release.is_active() {
                decide(&mut self.meta, &mut self.dirty_history, release, seq, at, false, event);
            }
            return;
        }
        // Whether this event asks for an evaluation (and whether it is the intent's).
        let mut evaluate = false;
        let mut planned = false;
        match &event.data {
            GovData::Intent(d) => {
                if release.intent.is_some() {
                    release.notes.push(format!("seq {seq}: a second ReleaseIntentDeclared was ignored"));
                } else {
                    release.intent = Some(IntentRecord {
                        seq,
                        recorded_at: at,
                        key_id,
                        agent_id: event.header.actor.agent_id.clone(),
                        trace_id: event.header.trace_id.clone(),
                        data: d.clone(),
                    });
                    evaluate = true;
                    planned = true;
                }
            }
            GovData::EvaluationRequested(_) => {
                // The ledger's own retry request, folded back, is no longer owed, whether or not
                // the release is still evaluated (it may be deploying by now).
                let id = &event.header.event_id;
                if self.meta.outbox.get(id).is_some_and(|owed| owed.matches(parsed_payload(entry))) {
                    self.meta.outbox.remove(id);
                    release.retry = None;
                }
                release.evaluation_requested = true;
                evaluate = release.is_active();
            }
            GovData::Tests(_) | GovData::Coverage(_) | GovData::Bdd(_) | GovData::Security(_) => {
                if let Some(signal) = SignalEvidence::of(event) {
                    release.signals.push(SignalRecord { seq, recorded_at: at, signal });
                }
                evaluate = release.is_active();
            }
            GovData::Violation(d) => {
                release.violations.push((seq, d.clone()));
                evaluate = release.is_active();
            }
            GovData::ApprovalGranted(_) | GovData::ApprovalRejected(_) => {
                let (role, granted, text, method) = match &event.data {
                    GovData::ApprovalGranted(d) => (&d.role, true, &d.comment, Some(d.method)),
                    GovData::ApprovalRejected(d) => (&d.role, false, &d.reason, None),
                    _ => unreachable!("matched above"),
                };
                release.approvals.push(ApprovalRecord {
                    seq,
                    recorded_at: at,
                    key_id,
                    agent_id: event.header.actor.agent_id.clone(),
                    role: role.clone(),
                    granted,
                    text: text.clone(),
                    method,
                });
                evaluate = release.is_active();
            }
            GovData::FreezeOverride(d) => {
                release.overrides.push(OverrideRecord {
                    seq,
                    key_id,
                    freeze_id: d.freeze_id.clone(),
                    justification: d.justification.clone(),
                });
                evaluate = release.is_active();
            }
            GovData::EvidenceInvalidated(d) => {
                if release.owns_evidence(d.seq) {
                    release.invalidated.insert(d.seq, seq);
                    evaluate = release.is_active();
                } else {
                    release.notes.push(format!("seq {seq}: invalidates seq {}, not evidence of this release", d.seq));
                }
            }
            GovData::Decision(d) => {
                release.decision_seqs.push(seq);
                release.decision_entries.insert(d.trigger, seq);
                let id = decision_event_id(&release_id, d.trigger);
                match self.meta.outbox.remove(&id) {
                    Some(owed) if owed.matches(parsed_payload(entry)) => {}
                    Some(_) => self.meta.anomaly(
                        seq,
                        format!("decision {id} differs from the one re-derived from the log (see ExplainDecision)"),
                    ),
                    None => {
                        let derived = release.decision.as_ref().is_some_and(|mine| mine.trigger == d.trigger);
                        if !derived {
                            self.meta.anomaly(seq, format!("decision {id} was not derived from the log"));
                        }
                    }
                }
            }
            GovData::Deployment(d) => {
                let env_matches = release.environment() == Some(d.environment.as_str());
                match event.event_type {
                    EventType::DeploymentStarted => {
                        if release.status != ReleaseStatus::Approved {
                            release.notes.push(format!(
                                "seq {seq}: deployment started while {} (not approved)",
                                release.status.as_str()
                            ));
                        }
                        release.deployment_started.get_or_insert(seq);
                    }
                    EventType::DeploymentCompleted => {
                        if release.status == ReleaseStatus::Approved && env_matches {
                            let data = gates::bounded(gates::published(release, seq, at), at);
                            emit(&mut self.meta, &mut self.dirty_history, release, data, at, event);
                        } else {
                            release.notes.push(format!(
                                "seq {seq}: deployment to {} completed while {}: not published",
                                d.environment,
                                release.status.as_str()
                            ));
                        }
                        history(&mut self.meta, &mut self.dirty_history, release, seq, at, "DeploymentCompleted");
                    }
                    _ => {
                        let (status, what) = if event.event_type == EventType::DeploymentFailed {
                            (ReleaseStatus::Failed, "DeploymentFailed")
                        } else {
                            (ReleaseStatus::RolledBack, "RollbackTriggered")
                        };
                        release.status = status;
                        release.failure = Some(d.reason.clone().unwrap_or_else(|| what.to_owned()));
                        cancel_retry(&mut self.meta, release);
                        history(&mut self.meta, &mut self.dirty_history, release, seq, at, what);
                    }
                }
            }
            // Tenant-wide types are handled in `apply`; PipelineReady only joins the timeline.
            _ => {}
        }
        if evaluate {
            // A pending retry stays owed unless the evaluation makes a new decision (which
            // replaces it): `release.retry` always names the one retry the outbox owes.
            decide(&mut self.meta, &mut self.dirty_history, release, seq, at, planned, event);
        }
    }

    /// Re-evaluates every active release (optionally only those in `only`), in release-id
    /// order, after a tenant-wide change (policy, freezes).
    fn reevaluate_active(&mut self, seq: u64, at: u64, only: Option<ReleaseStatus>) {
        let ids: Vec<String> = self
            .releases
            .iter()
            .filter(|(_, r)| r.is_active() && only.is_none_or(|s| r.status == s))
            .map(|(id, _)| id.clone())
            .collect();
        for id in ids {
            if let Some(release) = self.releases.get_mut(&id) {
                self.dirty.insert(id.clone());
                let trace = release.intent.as_ref().and_then(|i| i.trace_id.clone());
                decide_with(&mut self.meta, &mut self.dirty_history, release, seq, at, false, trace.as_deref());
            }
        }
    }
}

fn parsed_payload(entry: &Entry) -> &[u8] {
    entry.envelope().map(|e| e.payload.as_slice()).unwrap_or_default()
}

/// Drops the retry the release owes, if any. By its exact id (never by an id prefix: release
/// ids may contain `:`, so `retry:web:` is also a prefix of the retries of `web:canary`), and in
/// O(log n): a catch-up can owe a decision for every release at once.
fn cancel_retry(meta: &mut TenantMeta, release: &mut ReleaseState) {
    if let Some((_, trigger)) = release.retry.take() {
        meta.outbox.remove(&retry_event_id(&release.release_id, trigger));
    }
}

/// The trace id a ledger-authored event carries: the trigger's, else the intent's.
fn trace_of(event: &GovEvent, release: &ReleaseState) -> Option<String> {
    event.header.trace_id.clone().or_else(|| release.intent.as_ref().and_then(|i| i.trace_id.clone()))
}

fn decide(
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

fn decide_with(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &mut ReleaseState,
    seq: u64,
    at: u64,
    planned: bool,
    trace: Option<&str>,
) {
    // Fail closed: an evaluation that panics becomes a rejection, never an approval.
    let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gates::evaluate(meta, release, seq, at)));
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

fn emit(
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
        Outgoing::new(release_id.clone(), String::from_utf8_lossy(&body).into_owned(), None, data.trigger, at),
    );
    cancel_retry(meta, release);
    if let Some(retry_at) = data.retry_after.as_deref().and_then(|t| crate::freeze::parse_rfc3339_ns(t).ok()) {
        let body = retry_body(&tenant, &release_id, trace, data.trigger, retry_at);
        meta.outbox.insert(
            retry_event_id(&release_id, data.trigger),
            Outgoing::new(
                release_id.clone(),
                String::from_utf8_lossy(&body).into_owned(),
                Some(retry_at),
                data.trigger,
                at,
            ),
        );
        release.retry = Some((retry_at, data.trigger));
    }
    release.status = ReleaseStatus::of(data.status);
    if data.status != DecisionStatus::Planned {
        history(meta, dirty_history, release, data.trigger, at, data.status.as_str());
    }
    release.decision = Some(data);
}

fn history(
    meta: &mut TenantMeta,
    dirty_history: &mut BTreeMap<String, usize>,
    release: &ReleaseState,
    seq: u64,
    at: u64,
    what: &str,
) {
    let Some(intent) = &release.intent else { return };
    for module in &intent.data.modules {
        let key = history_key(&module.name, &intent.data.environment);
        let items = meta.history.entry(key.clone()).or_default();
        // Remember the first item not yet stored: history rows are append-only.
        dirty_history.entry(key.clone()).or_insert(items.len());
        items.push(HistoryItem {
            seq,
            recorded_at: at,
            release_id: release.release_id.clone(),
            version: module.version.clone(),
            event: what.to_owned(),
        });
    }
}

/// A one-line summary of an event for timelines.
fn summarize(data: &GovData) -> String {
    match data {
        GovData::Intent(d) => {
            let modules: Vec<String> = d.modules.iter().map(|m| format!("{}@{}", m.name, m.version)).collect();
            format!("release of {} to {}", modules.join(", "), d.environment)
        }
        GovData::EvaluationRequested(d) => d.reason.clone().unwrap_or_else(|| "evaluation requested".into()),
        GovData::Tests(d) => {
            format!("{}@{} {}: {} passed, {} failed", d.module, d.version, d.suite, d.passed, d.failed)
        }
        GovData::Coverage(d) => format!("{}@{} coverage {}%", d.module, d.version, d.percent),
        GovData::Bdd(d) => format!("{}@{} BDD validated", d.module, d.version),
        GovData::Security(d) => format!(
            "{}@{} {:?}, CVE {}, signed {}, SBOM {}, licences {}",
            d.module,
            d.version,
            d.status,
            d.cve_severity.as_str(),
            d.image_signed,
            d.sbom_present,
            d.license_compliant
        ),
        GovData::Violation(d) => format!("{}: {}", d.rule, d.detail),
        GovData::PipelineReady(d) => format!(
            "pipeline ready{}",
            d.module.as_ref().map(|m| format!(" for {m}@{}", d.version.as_deref().unwrap_or("?"))).unwrap_or_default()
        ),
        GovData::ApprovalGranted(d) => format!("approved as {} via {:?}{}", d.role, d.method, comment(&d.comment)),
        GovData::ApprovalRejected(d) => format!("rejected as {}: {}", d.role, d.reason),
        GovData::FreezeOverride(d) => format!("override of freeze {}: {}", d.freeze_id, d.justification),
        GovData::EvidenceInvalidated(d) => format!("withdraws seq {}: {}", d.seq, d.reason),
        GovData::Decision(d) => {
            let mut reasons: Vec<&str> = Vec::new();
            for code in d.blocking_reasons().map(|r| r.code.as_str()) {
                if !reasons.contains(&code) {
                    reasons.push(code);
                }
            }
            if reasons.is_empty() {
                format!("{} (risk {})", d.status.as_str(), d.risk_score)
            } else {
                format!("{}: {} (risk {})", d.status.as_str(), reasons.join(", "), d.risk_score)
            }
        }
        GovData::Deployment(d) => {
            format!("{}{}", d.environment, d.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())
        }
        _ => String::new(),
    }
}

fn comment(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// A gate that passed; used by [`gates`].
pub(crate) fn pass(gate: impl Into<String>, target: impl Into<String>, observed: impl Into<String>) -> Gate {
    Gate { gate: gate.into(), target: target.into(), observed: observed.into(), verdict: Verdict::Pass }
}

/// Formats a `recordedAt` for people.
pub fn format_recorded_at(ns: u64) -> String {
    format_ns(i64::try_from(ns).unwrap_or(i64::MAX))
}

/// The blocking reasons of a release's current decision (empty before any).
pub fn current_blocking(release: &ReleaseState) -> Vec<crate::decision::Reason> {
    release
        .decision
        .as_ref()
        .map(|d| d.reasons.iter().filter(|r| codes::is_blocking(&r.code)).cloned().collect())
        .unwrap_or_default()
}
