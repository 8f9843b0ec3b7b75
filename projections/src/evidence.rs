//! A release's evidence pack, the pure part (docs/evidence.md): which log entries the
//! release's decisions depend on ([`Selector`]), and the re-derivation of every one of those
//! decisions from nothing but those entries ([`rederive`]).
//!
//! The decisions depend on three kinds of entries, each a [`Role`]:
//!
//! - **release**: every entry naming the release (its intent, evidence, approvals, overrides,
//!   withdrawals, the ledger's retry requests and decisions, its deployments);
//! - **governance**: every tenant-wide entry (keys and their revocations, policies, freezes and
//!   their lifts, redactions) up to the release's last entry. All of them, not only those "in
//!   force": a policy or freeze change while the release is active is itself a trigger, and a
//!   revoked key must be known as revoked, not as unknown (the reasons say which);
//! - **context**: what other releases add to the history of the release's modules in its
//!   environment, which the risk score reads (`recentFailures`, `firstRelease`): their
//!   `DeploymentFailed` and `RollbackTriggered` from 24 h before the release's intent on, the
//!   first `ReleasePublished` of each of those modules by another release, and the intents of
//!   those releases (which modules, which environment).
//!
//! [`rederive`] folds the release and governance entries with the fold the ledger itself runs
//! ([`TenantState::apply`]), the entries the pack leaves out taken as having no effect, and puts
//! the context into the history exactly where the full fold puts it: a failure at its own seq,
//! a publication at its trigger's (the full fold records it when it derives the decision, at the
//! `DeploymentCompleted` that triggered it; the pack carries the signed decision, whose
//! `trigger` and `evaluatedAt` are that entry's seq and time). Every decision entry of the
//! release must be the one the fold derives ([`DecisionCheck::Matches`]), and the fold must owe
//! no decision the pack does not hold. The pack proves that the decisions follow from the
//! entries in it; that no other entry of the log would have changed them is the server's
//! word, checkable against a full export with `ledger-audit verify`.

use std::collections::{BTreeMap, BTreeSet};

use ledger::{Entry, ParsedEvent};

use crate::catalogue::{GovData, GovEvent, IntentData};
use crate::decision::{decision_event_id, DecisionData, DecisionStatus};
use crate::event_type::EventType;
use crate::fold::DecisionCheck;
use crate::risk::RECENT_WINDOW_NS;
use crate::state::{history_key, HistoryItem, HistoryKind, ReleaseState, TenantState};

/// Why an entry is in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// It names the release.
    Release,
    /// It is tenant-wide configuration (keys, policy, freezes, redactions).
    Governance,
    /// It adds to the history of the release's modules (another release's intent, failure,
    /// rollback or publication).
    Context,
    /// Its payload is redacted: what it was about cannot be read.
    Redacted,
}

impl Role {
    /// The name in the pack's manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Governance => "governance",
            Self::Context => "context",
            Self::Redacted => "redacted",
        }
    }

    /// The role named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Release, Self::Governance, Self::Context, Self::Redacted].into_iter().find(|r| r.as_str() == name)
    }
}

/// The release's intent, as the selector needs it.
#[derive(Debug, Clone)]
struct Intent {
    environment: String,
    modules: BTreeSet<String>,
    /// Failures from here on can count (24 h before the intent: no evaluation is earlier).
    window_start: u64,
}

/// Picks, from a tenant's log read in seq order, the entries a release's decisions depend on
/// (see the module doc). It keeps what it selects; [`Selector::finish`] hands it back.
#[derive(Debug)]
pub struct Selector {
    release: String,
    intent: Option<Intent>,
    /// Intents of other releases that ship one of the release's modules to its environment,
    /// held until one of their events is selected: release id → (intent entry, its modules).
    candidates: BTreeMap<String, (Entry, Vec<String>, bool)>,
    /// Modules already published by another release (its first publication is selected).
    published: BTreeSet<String>,
    selected: BTreeMap<u64, (Role, Entry)>,
    last_own: Option<u64>,
}

impl Selector {
    /// A selector for `release`, whose intent entry (when it has one) is `intent`: the intent
    /// must be known before the log is read, since other releases' intents may come first.
    pub fn new(release: &str, intent: Option<&Entry>) -> Result<Self, EvidenceError> {
        let intent = match intent {
            None => None,
            Some(entry) => {
                let event = gov_event(entry).ok_or_else(|| EvidenceError::Intent {
                    seq: entry.seq,
                    reason: "it is redacted or not a catalogue event".into(),
                })?;
                match (&event.data, event.header.release_id.as_deref()) {
                    (GovData::Intent(data), Some(id)) if id == release => Some(Intent {
                        environment: data.environment.clone(),
                        modules: data.modules.iter().map(|m| m.name.clone()).collect(),
                        window_start: entry.recorded_at.saturating_sub(RECENT_WINDOW_NS),
                    }),
                    _ => {
                        return Err(EvidenceError::Intent {
                            seq: entry.seq,
                            reason: format!("it is not the intent of release {release:?}"),
                        })
                    }
                }
            }
        };
        Ok(Self {
            release: release.to_owned(),
            intent,
            candidates: BTreeMap::new(),
            published: BTreeSet::new(),
            selected: BTreeMap::new(),
            last_own: None,
        })
    }

    /// Offers the next entry of the log (seq order); returns the role it is kept for, if any.
    pub fn offer(&mut self, entry: Entry) -> Option<Role> {
        let role = self.role_of(&entry)?;
        if role == Role::Release {
            self.last_own = Some(entry.seq);
        }
        self.selected.insert(entry.seq, (role, entry));
        Some(role)
    }

    fn role_of(&mut self, entry: &Entry) -> Option<Role> {
        let Some(envelope) = entry.envelope() else { return Some(Role::Redacted) };
        let parsed = ParsedEvent::parse(&envelope.payload).ok()?;
        let release_id = parsed.header.release_id.as_deref();
        if release_id == Some(self.release.as_str()) {
            return Some(Role::Release);
        }
        let event_type = EventType::parse(&parsed.header.event_type)?;
        if !event_type.needs_release() {
            return Some(Role::Governance);
        }
        let (intent, other) = (self.intent.as_ref()?, release_id?);
        let event = GovEvent::parse(&parsed).ok()?;
        match &event.data {
            GovData::Intent(data) if data.environment == intent.environment => {
                let shared: Vec<String> =
                    data.modules.iter().filter(|m| intent.modules.contains(&m.name)).map(|m| m.name.clone()).collect();
                if !shared.is_empty() && !self.candidates.contains_key(other) {
                    self.candidates.insert(other.to_owned(), (entry.clone(), shared, false));
                }
                None
            }
            GovData::Deployment(_)
                if matches!(event_type, EventType::DeploymentFailed | EventType::RollbackTriggered)
                    && entry.recorded_at >= intent.window_start =>
            {
                self.context(other).then_some(Role::Context)
            }
            GovData::Decision(d) if d.status == DecisionStatus::Published => {
                let (_, shared, _) = self.candidates.get(other)?;
                let first: Vec<String> = shared.iter().filter(|m| !self.published.contains(*m)).cloned().collect();
                if first.is_empty() {
                    return None;
                }
                self.published.extend(first);
                self.context(other).then_some(Role::Context)
            }
            _ => None,
        }
    }

    /// Marks another release's intent as needed; false when it is not a candidate.
    fn context(&mut self, other: &str) -> bool {
        let Some((intent, _, used)) = self.candidates.get_mut(other) else { return false };
        if !*used {
            *used = true;
            self.selected.insert(intent.seq, (Role::Context, intent.clone()));
        }
        true
    }

    /// The entries selected, in seq order, up to the release's last entry (what comes after
    /// it cannot have shaped its decisions). Empty when no entry names the release.
    pub fn finish(self) -> Vec<(Role, Entry)> {
        let Some(last) = self.last_own else { return Vec::new() };
        self.selected.into_iter().take_while(|(seq, _)| *seq <= last).map(|(_, kept)| kept).collect()
    }
}

fn gov_event(entry: &Entry) -> Option<GovEvent> {
    let parsed = ParsedEvent::parse(&entry.envelope()?.payload).ok()?;
    GovEvent::parse(&parsed).ok()
}

/// A pack whose decisions do not follow from its entries, or whose entries are not what its
/// roles say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The entry given as the release's intent is not one.
    #[error("seq {seq} is not the release's intent: {reason}")]
    Intent {
        /// The entry.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The entries are not in strictly increasing seq order.
    #[error("the entries are not in seq order at seq {seq}")]
    Order {
        /// The first entry out of order.
        seq: u64,
    },
    /// An entry's role is not the one the selection gives it (or it would not be selected).
    #[error("seq {seq} is in the pack as {given}, but the release's decisions depend on it as {expected}")]
    Role {
        /// The entry.
        seq: u64,
        /// The role the pack gives it.
        given: &'static str,
        /// The role the selection gives it ("nothing" when it would not be selected).
        expected: &'static str,
    },
    /// An entry no decision of the release depends on (another release's intent none of whose
    /// events is in the pack, or an entry after the release's last).
    #[error("seq {seq} is in the pack, but no decision of the release depends on it")]
    Unused {
        /// The entry.
        seq: u64,
    },
    /// A context entry cannot be read as what its role says.
    #[error("seq {seq}: {reason}")]
    Context {
        /// The entry.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// A decision of the release is not the one the fold derives from the pack's entries.
    #[error("decision seq {seq} does not follow from the pack's entries: {check}{redacted}")]
    Decision {
        /// The decision entry.
        seq: u64,
        /// What the fold made of it.
        check: String,
        /// A note on redacted entries, whose content the fold cannot see.
        redacted: String,
    },
    /// The fold derives a decision the pack does not hold.
    #[error("the pack's entries derive a decision at trigger seq {trigger} that the pack does not hold")]
    Owed {
        /// The seq of its trigger.
        trigger: u64,
    },
}

/// The release's decisions, re-derived from a pack's entries.
#[derive(Debug, Clone)]
pub struct Rederived {
    /// The release as the fold leaves it after the pack's last entry.
    pub release: ReleaseState,
    /// Every decision entry of the release, in seq order, with its data (as signed and as
    /// re-derived: they are equal).
    pub decisions: Vec<(u64, DecisionData)>,
}

/// Checks that `entries` (a pack's, in seq order, with their roles) are exactly what the
/// [`Selector`] picks for `release`, then re-derives the release's decisions from them (see
/// the module doc). The first problem found is the error.
pub fn rederive(tenant: &str, release: &str, entries: &[(Role, Entry)]) -> Result<Rederived, EvidenceError> {
    for pair in entries.windows(2) {
        if pair[1].1.seq <= pair[0].1.seq {
            return Err(EvidenceError::Order { seq: pair[1].1.seq });
        }
    }
    check_roles(release, entries)?;

    // The context, as history items at the seq where the full fold records them.
    let mut intents: BTreeMap<String, IntentData> = BTreeMap::new();
    let mut injections: Vec<(u64, String, HistoryItem)> = Vec::new();
    for entry in entries.iter().filter(|(role, _)| *role == Role::Context).map(|(_, entry)| entry) {
        let bad = |reason: &str| EvidenceError::Context { seq: entry.seq, reason: reason.to_owned() };
        let event = gov_event(entry).ok_or_else(|| bad("it is redacted or not a catalogue event"))?;
        let other = event.header.release_id.clone().ok_or_else(|| bad("it names no release"))?;
        let (seq, recorded_at, kind) = match &event.data {
            GovData::Intent(data) => {
                intents.insert(other, data.clone());
                continue;
            }
            GovData::Deployment(_) if event.event_type == EventType::DeploymentFailed => {
                (entry.seq, entry.recorded_at, HistoryKind::DeploymentFailed)
            }
            GovData::Deployment(_) if event.event_type == EventType::RollbackTriggered => {
                (entry.seq, entry.recorded_at, HistoryKind::RollbackTriggered)
            }
            GovData::Decision(d) if d.status == DecisionStatus::Published => {
                let at = ledger::time::parse_rfc3339_ns(&d.evaluated_at)
                    .ok()
                    .and_then(|ns| u64::try_from(ns).ok())
                    .ok_or_else(|| bad("its evaluatedAt is not a time"))?;
                if d.trigger >= entry.seq {
                    return Err(bad("its trigger is not before it"));
                }
                (d.trigger, at, HistoryKind::Published)
            }
            _ => return Err(bad("it is not an intent, failure, rollback or publication")),
        };
        let intent = intents.get(&other).ok_or_else(|| bad("the pack holds no intent of its release before it"))?;
        for module in &intent.modules {
            let item = HistoryItem {
                seq,
                recorded_at,
                release_id: other.clone(),
                version: module.version.clone(),
                event: kind,
            };
            injections.push((seq, history_key(&module.name, &intent.environment), item));
        }
    }
    injections.sort_by_key(|(seq, _, _)| *seq);

    let redacted: Vec<u64> = entries.iter().filter(|(r, _)| *r == Role::Redacted).map(|(_, e)| e.seq).collect();
    let mut state = TenantState::new(tenant);
    let mut pending = injections.into_iter().peekable();
    let mut decisions = Vec::new();
    for (role, entry) in entries.iter().filter(|(role, _)| *role != Role::Context) {
        while let Some((_, key, item)) = pending.next_if(|(seq, _, _)| *seq < entry.seq) {
            state.meta.history.push(key, item);
        }
        // The entries the pack leaves out are taken as having no effect.
        state.meta.position = entry.seq;
        let check = state.apply(entry);
        if *role != Role::Release {
            continue;
        }
        if let Some(check) = check {
            if check != DecisionCheck::Matches {
                let redacted = if redacted.is_empty() {
                    String::new()
                } else {
                    format!(" (the pack holds redacted entries, whose content the fold cannot see: seq {redacted:?})")
                };
                return Err(EvidenceError::Decision { seq: entry.seq, check: check.to_string(), redacted });
            }
            if let Some(data) = decision_data(entry) {
                decisions.push((entry.seq, data));
            }
        }
    }
    let release_state = state.releases.get(release).cloned().unwrap_or_default();
    // A decision the fold owes and the pack lacks: left out of the pack, or not yet appended
    // by the ledger when the pack was made (the pack is then made again).
    let owed = state
        .meta
        .outbox
        .iter()
        .filter(|(id, owed)| owed.release_id == release && **id == decision_event_id(release, owed.trigger))
        .map(|(_, owed)| owed.trigger)
        .min();
    if let Some(trigger) = owed {
        return Err(EvidenceError::Owed { trigger });
    }
    Ok(Rederived { release: release_state, decisions })
}

/// The decision data an entry holds (it was checked to match the fold's).
fn decision_data(entry: &Entry) -> Option<DecisionData> {
    match gov_event(entry)?.data {
        GovData::Decision(d) => Some(*d),
        _ => None,
    }
}

/// Every entry must be one the selector picks, with the role it picks it for, and the pack
/// must end at the release's last entry.
fn check_roles(release: &str, entries: &[(Role, Entry)]) -> Result<(), EvidenceError> {
    let intent = entries.iter().find(|(role, entry)| {
        *role == Role::Release && gov_event(entry).is_some_and(|e| matches!(e.data, GovData::Intent(_)))
    });
    let mut selector = Selector::new(release, intent.map(|(_, e)| e))?;
    for (given, entry) in entries {
        let expected = selector.offer(entry.clone());
        // An intent of another release is held back by the selector until one of its events
        // is selected; the pack lists it where it is, as context.
        let held = expected.is_none() && *given == Role::Context && selector.is_candidate(entry);
        if expected != Some(*given) && !held {
            return Err(EvidenceError::Role {
                seq: entry.seq,
                given: given.as_str(),
                expected: expected.map_or("nothing", Role::as_str),
            });
        }
    }
    let kept: Vec<u64> = selector.finish().iter().map(|(_, e)| e.seq).collect();
    let given: Vec<u64> = entries.iter().map(|(_, e)| e.seq).collect();
    if let Some(seq) = given.iter().find(|seq| !kept.contains(seq)) {
        return Err(EvidenceError::Unused { seq: *seq });
    }
    Ok(())
}

impl Selector {
    /// Whether `entry` is an intent the selector holds as a candidate.
    fn is_candidate(&self, entry: &Entry) -> bool {
        self.candidates.values().any(|(intent, _, _)| intent.seq == entry.seq)
    }
}
