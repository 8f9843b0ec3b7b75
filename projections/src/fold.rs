//! The fold: how one tenant's governance state changes, entry by entry.
//!
//! [`TenantState::apply`] is the only way state changes, and it is a pure function of the
//! state and the entry: no clock, no I/O. Decisions and the ledger's own retry requests it
//! derives go to an outbox (part of the state, so they are persisted with it); the worker
//! appends them through the normal append path and they come back as entries, which clears
//! them. Rebuilding from seq 0 therefore yields the same state and the same decision bytes as
//! the live fold — the determinism tests check both. When a decision comes back, the fold
//! says whether it is the one it derived: a typed [`DecisionCheck`], which the auditor's
//! verdict is made of.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{Entry, ParsedEvent};

use crate::catalogue::{check_attestation, EventType, EvidenceAttachedData, GovData, GovEvent};
use crate::decide::{cancel_retry, decide, decide_with, emit, history};
use crate::decision::decision_event_id;
use crate::freeze::Freeze;
use crate::gates;
use crate::state::{
    ApprovalRecord, AttachmentRecord, FreezeRecord, HistoryKind, IntentRecord, KeyInfo, OverrideRecord, PolicyRecord,
    ReleaseState, ReleaseStatus, SignalEvidence, SignalRecord, TenantMeta, TenantState, TimelineItem, MAX_ATTACHMENTS,
    MAX_EVIDENCE, MAX_TIMELINE,
};

/// What the fold makes of a decision entry it meets: whether the decision the log holds is
/// the one the fold derived at that point of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionCheck {
    /// The fold derived this decision: the bytes it owed, or (already folded back) its own
    /// decision for the same trigger.
    Matches,
    /// The fold owed a decision with this event id, and the log's has other bytes.
    Differs {
        /// The decision's event id.
        event_id: String,
    },
    /// The fold derived no decision for this trigger.
    Unjustified {
        /// The decision's event id.
        event_id: String,
    },
    /// The entry's type is a decision, but the fold cannot read it as one (it does not parse
    /// as a catalogue event, or names no release).
    Unreadable {
        /// Why.
        detail: String,
    },
}

impl DecisionCheck {
    /// Whether the decision is the one the fold derived.
    pub fn matches(&self) -> bool {
        matches!(self, Self::Matches)
    }
}

impl std::fmt::Display for DecisionCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Matches => write!(f, "decision matches the one derived from the log"),
            Self::Differs { event_id } => {
                write!(f, "decision {event_id} differs from the one re-derived from the log (see ExplainDecision)")
            }
            Self::Unjustified { event_id } => write!(f, "decision {event_id} was not derived from the log"),
            Self::Unreadable { detail } => write!(f, "{detail}"),
        }
    }
}

/// An entry's payload as parsed by the caller of [`TenantState::apply_loading_parsed`].
#[derive(Debug, Clone, Copy)]
pub enum FoldInput<'a> {
    /// The payload is redacted.
    Redacted,
    /// [`ParsedEvent::parse`] refused the body.
    BadBody(&'a ledger::error::InvalidEvent),
    /// The body parsed (`header`), [`GovEvent::parse`] refused it (`error`).
    NotCatalogue {
        /// The body's header.
        header: &'a ledger::EventHeader,
        /// Why it is not a catalogue event.
        error: &'a ledger::error::InvalidEvent,
    },
    /// A catalogue event.
    Event(&'a GovEvent),
    /// A ledger decision whose payload is byte for byte the body this fold owes under the
    /// header's event id ([`TenantState::owed_exactly`]), folded without its `data` parsed: the
    /// bytes are the ones the fold serialised from the decision it derived, so they say nothing
    /// the fold does not already hold. Only for a state without timelines (whose summaries
    /// would need the logged decision's typed data).
    OwnDecision {
        /// The body's header.
        header: &'a ledger::EventHeader,
        /// Its (decision) type.
        event_type: EventType,
    },
}

/// Reads back a release that left memory: (tenant, release id) → the stored release, if any.
pub type LoadRelease<'a, E> = dyn FnMut(&str, &str) -> Result<Option<ReleaseState>, E> + 'a;

impl TenantState {
    /// Folds the next entry in. Entries must come in seq order from the state's position.
    /// Every release the state has seen must be in memory (see [`TenantState::apply_loading`]).
    /// For a decision entry, returns whether it is the decision the fold derived.
    pub fn apply(&mut self, entry: &Entry) -> Option<DecisionCheck> {
        let parsed = entry.envelope().map(|e| ParsedEvent::parse(&e.payload));
        self.apply_parsed(entry, parsed)
    }

    /// [`TenantState::apply`] for a state whose inactive releases may have been evicted (see
    /// [`TenantState::evict`]): a release the entry is about and that is not in memory is
    /// asked of `load` (with the tenant and the release id) first, so the fold is exactly the
    /// one with every release in memory. On a load error the state is partly applied and must
    /// be discarded. [`crate::folder::Folder`] is the one caller.
    pub fn apply_loading<E>(
        &mut self,
        entry: &Entry,
        load: &mut LoadRelease<'_, E>,
    ) -> Result<Option<DecisionCheck>, E> {
        // The payload is parsed once, for the release it names and for the fold.
        let parsed = entry.envelope().map(|e| ParsedEvent::parse(&e.payload));
        let header = parsed.as_ref().and_then(|p| p.as_ref().ok()).map(|p| &p.header);
        self.load_named(header, load)?;
        Ok(self.apply_parsed(entry, parsed))
    }

    /// [`TenantState::apply_loading`] of an entry whose payload the caller already parsed
    /// (the offline auditor parses each payload once, for its verifier and for this fold):
    /// `payload` must be what [`ParsedEvent::parse`] and [`GovEvent::parse`] make of the
    /// entry's payload. The fold is exactly the one [`TenantState::apply_loading`] makes.
    pub fn apply_loading_parsed<E>(
        &mut self,
        entry: &Entry,
        payload: FoldInput<'_>,
        load: &mut LoadRelease<'_, E>,
    ) -> Result<Option<DecisionCheck>, E> {
        let header = match payload {
            FoldInput::Event(event) => Some(&event.header),
            FoldInput::NotCatalogue { header, .. } | FoldInput::OwnDecision { header, .. } => Some(header),
            FoldInput::Redacted | FoldInput::BadBody(_) => None,
        };
        self.load_named(header, load)?;
        Ok(self.apply_input(entry, payload))
    }

    /// Reads back the release `header` names, if it is not in memory.
    fn load_named<E>(&mut self, header: Option<&ledger::EventHeader>, load: &mut LoadRelease<'_, E>) -> Result<(), E> {
        let Some(release_id) = header.and_then(|h| h.release_id.as_deref()) else { return Ok(()) };
        if !self.releases.contains_key(release_id) {
            if let Some(release) = load(&self.meta.tenant, release_id)? {
                self.releases.insert(release_id.to_owned(), release);
            }
        }
        Ok(())
    }

    /// Folds `entry`, whose payload parses to `parsed` (`None`: redacted).
    fn apply_parsed(
        &mut self,
        entry: &Entry,
        parsed: Option<Result<ParsedEvent, ledger::error::InvalidEvent>>,
    ) -> Option<DecisionCheck> {
        match parsed {
            None => self.apply_input(entry, FoldInput::Redacted),
            Some(Err(e)) => self.apply_input(entry, FoldInput::BadBody(&e)),
            Some(Ok(parsed)) => match GovEvent::parse_data(&parsed) {
                Ok((event_type, data)) => {
                    let event = GovEvent { event_type, header: parsed.header, data };
                    self.apply_input(entry, FoldInput::Event(&event))
                }
                Err(e) => self.apply_input(entry, FoldInput::NotCatalogue { header: &parsed.header, error: &e }),
            },
        }
    }

    /// Folds `entry`, whose payload the caller parsed to `payload`.
    fn apply_input(&mut self, entry: &Entry, payload: FoldInput<'_>) -> Option<DecisionCheck> {
        debug_assert_eq!(entry.seq, self.meta.position, "entries must be applied in order");
        let seq = entry.seq;
        self.meta.position = seq + 1;
        self.meta.last_recorded_at = entry.recorded_at;
        let Some(envelope) = entry.envelope() else {
            // A redacted payload: nothing to fold (the redaction itself scheduled a rebuild).
            return None;
        };
        let event = match payload {
            // Redacted, by the caller's word.
            FoldInput::Redacted => return None,
            FoldInput::BadBody(e) => {
                self.meta.anomaly(seq, format!("body does not parse: {e}"));
                return None;
            }
            FoldInput::NotCatalogue { header, error } => {
                let detail = format!("not a catalogue event: {error}");
                self.meta.anomaly(seq, detail.clone());
                let is_decision = EventType::parse(&header.event_type).is_some_and(EventType::is_decision);
                return is_decision.then_some(DecisionCheck::Unreadable { detail });
            }
            FoldInput::OwnDecision { header, event_type } => return self.apply_own_decision(entry, header, event_type),
            FoldInput::Event(event) => event,
        };
        let key_id = envelope.signatures.first().map(|s| s.keyid.clone()).unwrap_or_default();
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
            _ => return self.apply_release_event(entry, event, key_id),
        }
        None
    }

    /// Folds an event about one release; for a decision, says whether the fold derived it.
    fn apply_release_event(&mut self, entry: &Entry, event: &GovEvent, key_id: String) -> Option<DecisionCheck> {
        let seq = entry.seq;
        let at = entry.recorded_at;
        let Some(release_id) = event.header.release_id.as_deref() else {
            let detail = format!("{} without releaseId", event.event_type);
            self.meta.anomaly(seq, detail.clone());
            return event.event_type.is_decision().then_some(DecisionCheck::Unreadable { detail });
        };
        let release = Self::touch_release(&mut self.dirty, &mut self.releases, release_id, at);
        if self.no_timelines {
            // `TenantState::without_timelines`: nothing reads them.
        } else if release.timeline.len() < MAX_TIMELINE {
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
                | GovData::EvidenceAttached(_)
        );
        let attachments_full =
            matches!(event.data, GovData::EvidenceAttached(_)) && release.attachments.len() >= MAX_ATTACHMENTS;
        if is_evidence && (release.evidence_count() >= MAX_EVIDENCE || attachments_full) {
            if !release.evidence_overflow {
                release.evidence_overflow = true;
                release.notes.push(if attachments_full {
                    format!("seq {seq}: more than {MAX_ATTACHMENTS} attachments (EvidenceAttached); not evaluated")
                } else {
                    format!("seq {seq}: more than {MAX_EVIDENCE} pieces of evidence; not evaluated")
                });
            }
            if release.is_active() {
                decide(&mut self.meta, &mut self.dirty_history, release, seq, at, false, event);
            }
            return None;
        }
        // Whether this event asks for an evaluation (and whether it is the intent's).
        let mut evaluate = false;
        let mut planned = false;
        let mut check = None;
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
            GovData::EvidenceAttached(d) => {
                let schemas = self.meta.policy.as_ref().map(|p| &p.policy.evidence_schemas);
                release.attachments.push(attachment(seq, at, key_id, &event.header.actor.agent_id, d, schemas));
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
                check = Some(record_decision(&mut self.meta, release, release_id, entry, d.trigger))
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
                        history(
                            &mut self.meta,
                            &mut self.dirty_history,
                            release,
                            seq,
                            at,
                            HistoryKind::DeploymentCompleted,
                        );
                    }
                    _ => {
                        let (status, what) = if event.event_type == EventType::DeploymentFailed {
                            (ReleaseStatus::Failed, HistoryKind::DeploymentFailed)
                        } else {
                            (ReleaseStatus::RolledBack, HistoryKind::RollbackTriggered)
                        };
                        release.status = status;
                        release.failure = Some(d.reason.clone().unwrap_or_else(|| what.as_str().to_owned()));
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
        check
    }

    /// Marks the release `release_id` changed at `at` (created if new) and returns it: what
    /// every event about a release does first.
    fn touch_release<'s>(
        dirty: &mut BTreeSet<String>,
        releases: &'s mut BTreeMap<String, ReleaseState>,
        release_id: &str,
        at: u64,
    ) -> &'s mut ReleaseState {
        // Most entries name a release already marked: no copy of its id for those.
        if !dirty.contains(release_id) {
            dirty.insert(release_id.to_owned());
        }
        let release = releases.entry(release_id.to_owned()).or_insert_with(|| ReleaseState::new(release_id));
        if release.created_at == 0 {
            release.created_at = at;
        }
        release.updated_at = at;
        release
    }

    /// The type and trigger of the decision owed under `header`'s event id, if `header` names a
    /// decision type and a release and `payload` is byte for byte the owed body: such an entry
    /// may be folded as [`FoldInput::OwnDecision`]. `None` for any other entry (a retry request
    /// the outbox owes too), and always for a state that keeps timelines.
    pub fn owed_exactly(&self, header: &ledger::EventHeader, payload: &[u8]) -> Option<(EventType, u64)> {
        if !self.no_timelines || header.release_id.is_none() {
            return None;
        }
        let event_type = EventType::parse(&header.event_type).filter(|t| t.is_decision())?;
        let owed = self.meta.outbox.get(&header.event_id)?;
        owed.matches(payload).then_some((event_type, owed.trigger))
    }

    /// Folds a decision the caller found [owed exactly](TenantState::owed_exactly): as an
    /// [`FoldInput::Event`] of it would (`apply_release_event`), without its typed `data`.
    fn apply_own_decision(
        &mut self,
        entry: &Entry,
        header: &ledger::EventHeader,
        event_type: EventType,
    ) -> Option<DecisionCheck> {
        let trigger = match self.owed_exactly(header, parsed_payload(entry)) {
            Some((owed_type, trigger)) if owed_type == event_type => trigger,
            // Not what the caller was told to check first: refused rather than trusted.
            _ => {
                let detail = format!("{event_type} at seq {} is not a decision this fold owes", entry.seq);
                self.meta.anomaly(entry.seq, detail.clone());
                return Some(DecisionCheck::Unreadable { detail });
            }
        };
        let release_id = header.release_id.as_deref().unwrap_or_default();
        let release = Self::touch_release(&mut self.dirty, &mut self.releases, release_id, entry.recorded_at);
        Some(record_decision(&mut self.meta, release, release_id, entry, trigger))
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

/// The record of an `EvidenceAttached` (already validated by the catalogue), with its body
/// checked against the policy's schema for its kind.
fn attachment(
    seq: u64,
    at: u64,
    key_id: String,
    agent_id: &str,
    d: &EvidenceAttachedData,
    schemas: Option<&std::collections::BTreeMap<String, serde_json::Value>>,
) -> AttachmentRecord {
    let checked = d.attestation.as_ref().and_then(|a| check_attestation(d, a).ok());
    let (body, attestation) = match checked {
        Some(c) => {
            let predicate_type =
                c.statement.get("predicateType").and_then(|t| t.as_str()).unwrap_or_default().to_owned();
            (Some(c.statement), Some((c.key_id.to_hex(), predicate_type)))
        }
        None => (d.body.clone(), None),
    };
    let schema_error = schemas.and_then(|s| s.get(&d.kind)).and_then(|schema| match &body {
        None => Some(format!("no body, and the policy has a schema for kind {}", d.kind)),
        Some(body) => match crate::policy::compile_schema(&d.kind, schema) {
            Err(e) => Some(e),
            Ok(validator) => validator.iter_errors(body).next().map(|e| {
                let at = e.instance_path().to_string();
                format!("body{}: {e}", if at.is_empty() { String::new() } else { at })
            }),
        },
    });
    AttachmentRecord {
        seq,
        recorded_at: at,
        key_id,
        agent_id: agent_id.to_owned(),
        module: d.module.clone(),
        version: d.version.clone(),
        kind: d.kind.clone(),
        subject_digest: d.subject_digest.clone(),
        content_digest: d.content_digest.clone(),
        media_type: d.media_type.clone(),
        uri: d.uri.clone(),
        body,
        attestation,
        schema_error,
    }
}

/// Records the decision `entry` (for `release`, whose id is `release_id`, made at `trigger`) and
/// says whether the fold derived it: the one owed under its event id, byte for byte.
fn record_decision(
    meta: &mut TenantMeta,
    release: &mut ReleaseState,
    release_id: &str,
    entry: &Entry,
    trigger: u64,
) -> DecisionCheck {
    let seq = entry.seq;
    release.decision_seqs.push(seq);
    release.decision_entries.insert(trigger, seq);
    let id = decision_event_id(release_id, trigger);
    let verdict = match meta.outbox.remove(&id) {
        Some(owed) if owed.matches(parsed_payload(entry)) => DecisionCheck::Matches,
        Some(_) => DecisionCheck::Differs { event_id: id },
        None if release.decision.as_ref().is_some_and(|mine| mine.trigger == trigger) => DecisionCheck::Matches,
        None => DecisionCheck::Unjustified { event_id: id },
    };
    if !verdict.matches() {
        meta.anomaly(seq, verdict.to_string());
    }
    verdict
}

fn parsed_payload(entry: &Entry) -> &[u8] {
    entry.envelope().map(|e| e.payload.as_slice()).unwrap_or_default()
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
        GovData::EvidenceAttached(d) => format!(
            "{} for {}@{}{}",
            d.kind,
            d.module,
            d.version,
            if d.attestation.is_some() { " (attestation)" } else { "" }
        ),
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
