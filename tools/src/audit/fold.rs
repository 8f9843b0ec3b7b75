//! The audit's fold (re-deriving every ledger decision, spilling inactive releases to a
//! temporary file: [`Spill`]) and one tenant's verification pipeline (columns → verifier → fold).

use ledger::verify::Preparsed;
use ledger::ParsedEvent;
use projections::catalogue::{EventType, GovEvent};
use projections::fold::FoldInput;
use projections::DecisionCheck;

use super::spill::Spill;
use super::*;
use crate::rows::ParsedPayload;

/// Entries folded between two looks at the fold's memory (at most).
const SPILL_EVERY: u64 = 4096;

/// Inactive releases the audit's fold keeps in memory by default. Fewer than the server's
/// [`CACHED_INACTIVE`](projections::worker::CACHED_INACTIVE): the audit answers no queries, it only needs the releases later entries
/// name soon.
pub const AUDIT_CACHED_INACTIVE: usize = 1024;

/// Folding the log to re-derive decisions (and, for `replay`, to stop at a point).
///
/// Memory stays bounded by the active releases and the appends owed: every [`SPILL_EVERY`]
/// entries, once more than twice the cache ([`VerifyOptions::memory_releases`]) are in memory,
/// the least recently updated inactive releases owed nothing beyond the cache leave memory for
/// an unnamed temporary file (in the system's temporary directory: [`Spill`]), to be read back
/// when a later entry names them, each equal to itself (its self-describing MessagePack round
/// trip, which equals the projection store's JSON one), so the fold is the same as with
/// everything in memory.
pub struct Fold {
    /// The state after the entries pushed (inactive releases may be in `spill` instead).
    pub(super) state: TenantState,
    /// The releases that left memory (created at the first spill).
    spill: Option<Spill>,
    /// Inactive releases kept in memory.
    cache: usize,
    /// Releases changed since the spill file last got them (or never spilled): written
    /// when they leave memory, and only then.
    unsaved: std::collections::BTreeSet<String>,
    /// The ledger key id, hex (as envelopes name it).
    ledger_key_hex: String,
    pub(super) checked: u64,
    /// The first redacted entry folded, if any.
    first_redacted: Option<u64>,
    pub(super) unverifiable: Vec<u64>,
}

impl std::fmt::Debug for Fold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fold").field("position", &self.state.meta.position).finish_non_exhaustive()
    }
}

impl Fold {
    pub(super) fn new(tenant: &str, roots: &TrustRoots, cache: usize) -> Self {
        Self {
            state: TenantState::new(tenant),
            spill: None,
            cache,
            unsaved: std::collections::BTreeSet::new(),
            ledger_key_hex: roots.ledger_id().to_hex(),
            checked: 0,
            first_redacted: None,
            unverifiable: Vec::new(),
        }
    }

    /// This fold without releases' timelines
    /// ([`TenantState::without_timelines`](projections::state::TenantState::without_timelines)):
    /// for a verification that drops the fold once its decisions are checked.
    pub(super) fn without_timelines(mut self) -> Self {
        self.state = std::mem::take(&mut self.state).without_timelines();
        self
    }

    /// Folds `entry` in; a ledger decision that the fold's check does not find to be the one
    /// it derived ([`projections::DecisionCheck`]: it differs, or the fold derived none) is an unjustified
    /// decision. The verdict is that typed value, never the text of an anomaly.
    pub(super) fn apply(&mut self, entry: &Entry) -> Result<(), Failure> {
        let spill = self.spill.as_ref();
        let check = self
            .state
            .apply_loading(entry, &mut |_, release| spill.map_or(Ok(None), |spill| spill.load(release)))
            .map_err(|e| Failure::new(Some(entry.seq), "decisions", format!("{TEMP_STORE}: {e}")))?;
        self.judge(entry, check)
    }

    /// [`Fold::apply`] of an entry whose payload the pipeline parsed (`payload`): the same
    /// fold ([`TenantState::apply_loading_parsed`]) and verdict, without parsing it again.
    pub(super) fn apply_parsed(&mut self, entry: &Entry, payload: FoldInput<'_>) -> Result<(), Failure> {
        let spill = self.spill.as_ref();
        let check = self
            .state
            .apply_loading_parsed(entry, payload, &mut |_, release| spill.map_or(Ok(None), |spill| spill.load(release)))
            .map_err(|e| Failure::new(Some(entry.seq), "decisions", format!("{TEMP_STORE}: {e}")))?;
        self.judge(entry, check)
    }

    /// [`Fold::apply`] of an entry whose payload its caller parsed (`parsed`: what
    /// [`ParsedEvent::parse`] made of it, `None` for a redacted entry), as the data dir's check
    /// does for its verifier: the same fold and verdict, without parsing the payload again.
    pub(super) fn apply_preparsed(
        &mut self,
        entry: &Entry,
        parsed: Option<Result<&ParsedEvent, &ledger::error::InvalidEvent>>,
    ) -> Result<(), Failure> {
        match parsed {
            Some(Ok(parsed)) => {
                // A decision owed byte for byte: folded without its `data` parsed again.
                if let Some(event_type) = self.own_decision(entry, parsed) {
                    return self.apply_parsed(entry, FoldInput::OwnDecision { header: &parsed.header, event_type });
                }
                match GovEvent::parse_data(parsed) {
                    Ok((event_type, data)) => {
                        let event = GovEvent { event_type, header: parsed.header.clone(), data };
                        self.apply_parsed(entry, FoldInput::Event(&event))
                    }
                    Err(error) => {
                        self.apply_parsed(entry, FoldInput::NotCatalogue { header: &parsed.header, error: &error })
                    }
                }
            }
            Some(Err(error)) => self.apply_parsed(entry, FoldInput::BadBody(error)),
            None => self.apply(entry),
        }
    }

    /// The type of `entry` if it is a decision signed by the ledger key whose payload is byte
    /// for byte the body this fold owes under its event id ([`TenantState::owed_exactly`]):
    /// one [`Fold::apply_parsed`] may fold as [`FoldInput::OwnDecision`].
    pub(super) fn own_decision(&self, entry: &Entry, event: &ParsedEvent) -> Option<EventType> {
        let envelope = entry.envelope()?;
        let by_ledger = self.signed_by_ledger(envelope);
        by_ledger.then(|| self.state.owed_exactly(&event.header, &envelope.payload))?.map(|(event_type, _)| event_type)
    }

    /// Whether `envelope`'s (first) signature names the ledger key: the decisions the fold checks.
    fn signed_by_ledger(&self, envelope: &ledger::Envelope) -> bool {
        envelope.signatures.first().is_some_and(|s| s.keyid == self.ledger_key_hex)
    }

    /// Spills if it is time, then judges the decision check of `entry`, just folded.
    fn judge(&mut self, entry: &Entry, check: Option<DecisionCheck>) -> Result<(), Failure> {
        let every = SPILL_EVERY.min(self.cache as u64).max(1);
        if entry.seq % every == 0 && self.state.releases.len() > 2 * self.cache {
            self.spill()?;
        }
        let Some(envelope) = entry.envelope() else {
            self.first_redacted.get_or_insert(entry.seq);
            return Ok(());
        };
        if !self.signed_by_ledger(envelope) {
            return Ok(());
        }
        // The fold checks every decision entry, and only those.
        let Some(check) = check else { return Ok(()) };
        if !check.matches() {
            if self.first_redacted.is_some() {
                // Made from evidence since erased: cannot be re-derived, and is not refuted.
                self.unverifiable.push(entry.seq);
                return Ok(());
            }
            return Err(Failure::new(
                Some(entry.seq),
                "decisions",
                format!("unjustified decision: {check} (the policy in force would not have made it)"),
            ));
        }
        self.checked += 1;
        Ok(())
    }
}

impl Fold {
    /// Lets inactive releases leave memory, writing to the spill file (created the first
    /// time) those of them changed since it last got them. A file that cannot be created only
    /// means memory is not bounded.
    ///
    /// Only the releases that leave memory are written (a release still in memory, active or
    /// recent, will change again), and a release the outbox still owes an append stays (its
    /// decision or retry will name it soon: the outbox, in memory anyway, bounds them). A
    /// release comes back from the file as it was written ([`Spill`]: the projection store's
    /// JSON), before any entry that names it is folded, so the fold is the one with every
    /// release in memory.
    fn spill(&mut self) -> Result<(), Failure> {
        if self.spill.is_none() {
            match Spill::new() {
                Ok(spill) => self.spill = Some(spill),
                Err(e) => {
                    tracing::warn!(error = %e, "no temporary file: the fold keeps every release in memory");
                    return Ok(());
                }
            }
        }
        let Some(spill) = &mut self.spill else { return Ok(()) };
        // History and outbox rows are not spilled: the audit keeps them in memory.
        self.unsaved.extend(self.state.take_dirty().releases);
        let owed: std::collections::HashSet<&str> =
            self.state.meta.outbox.values().map(|o| o.release_id.as_str()).collect();
        // The least recently updated leave, as the worker's eviction chooses them.
        let gone = self.state.beyond_cache(self.cache, |id| owed.contains(id));
        if gone.is_empty() {
            return Ok(());
        }
        drop(owed);
        let releases = &self.state.releases;
        spill
            .save(gone.iter().filter(|id| self.unsaved.contains(*id)).filter_map(|id| releases.get_key_value(id)))
            .map_err(|e| Failure::new(Some(self.state.meta.position), "decisions", format!("{TEMP_STORE}: {e}")))?;
        for id in &gone {
            self.unsaved.remove(id);
            self.state.releases.remove(id);
        }
        Ok(())
    }

    /// The folded state with every release (those spilled read back).
    pub fn whole_state(&self) -> Result<TenantState, CannotRun> {
        let Some(spill) = &self.spill else { return Ok(self.state.clone()) };
        // As `ProjectionStore::whole` made it: the meta, and every release.
        let mut whole = TenantState::new(&self.state.meta.tenant);
        whole.meta = self.state.meta.clone();
        whole.releases = self.state.releases.clone();
        for id in spill.ids() {
            if !whole.releases.contains_key(id) {
                match spill.load(id).map_err(|e| CannotRun(format!("{TEMP_STORE}: {e}")))? {
                    Some(release) => whole.releases.insert(id.clone(), release),
                    None => return Err(CannotRun(format!("{TEMP_STORE}: release {id} is indexed but not found"))),
                };
            }
        }
        Ok(whole)
    }

    /// One release as folded (read back if spilled).
    pub fn release(&self, release_id: &str) -> Result<Option<ReleaseState>, CannotRun> {
        if let Some(release) = self.state.releases.get(release_id) {
            return Ok(Some(release.clone()));
        }
        match &self.spill {
            Some(spill) => spill.load(release_id).map_err(|e| CannotRun(format!("{TEMP_STORE}: {e}"))),
            None => Ok(None),
        }
    }
}

/// One tenant's verification pipeline: columns → verifier → fold.
pub(super) struct Pipeline {
    pub(super) verifier: Option<Verifier>,
    pub(super) fold: Option<Fold>,
    pub(super) until: Option<u64>,
    pub(super) seen: u64,
}

impl Pipeline {
    pub(super) fn new(
        tenant: &str,
        roots: TrustRoots,
        origin_prefix: &str,
        meta_resume: Option<&ledger::ResumePoint>,
        options: &VerifyOptions,
    ) -> Result<Self, Failure> {
        let rules: Arc<dyn EventRules> = Arc::new(Catalogue);
        let verifier = match meta_resume {
            None => Verifier::new(tenant, roots, origin_prefix),
            Some(point) => Verifier::resume(tenant, roots, origin_prefix, point)
                .map_err(|e| Failure::new(Some(point.size), "metadata", format!("resume point: {e}")))?,
        }
        .with_rules(Some(rules));
        let cache = options.memory_releases.unwrap_or(AUDIT_CACHED_INACTIVE);
        let fold = meta_resume.is_none().then(|| Fold::new(tenant, &roots, cache));
        Ok(Self { verifier: Some(verifier), fold, until: None, seen: 0 })
    }

    /// This pipeline with its fold [without timelines](Fold::without_timelines).
    pub(super) fn without_timelines(mut self) -> Self {
        self.fold = self.fold.map(Fold::without_timelines);
        self
    }

    /// Checks one entry, whose payload parses to `parsed` (what
    /// [`crate::rows::parsed_entries_from_batch`] gives: `None` for a redacted entry) and whose
    /// hashes [`Entry::check_hashes`] found to be `hashes`; `Ok(false)` once `until` is reached.
    ///
    /// The payload is parsed once for every stage: the header by the column check, the
    /// catalogue `data` here, for the verifier's rules (the [`Catalogue`]) and the fold.
    ///
    /// The entry is borrowed and `parsed` is put back as it came, so that the caller can hand
    /// both back to the thread that made them to be freed there (`verify_batches`).
    pub(super) fn push(
        &mut self,
        entry: &Entry,
        parsed: &mut ParsedPayload,
        hashes: Result<(), String>,
    ) -> Result<bool, Failure> {
        if self.until.is_some_and(|u| entry.seq >= u) {
            return Ok(false);
        }
        let verifier = self.verifier.as_mut().ok_or_else(|| Failure::new(None, "internal", "verifier finished"))?;
        // The fold sees the entry first (no copy of it is made); its verdict counts only after
        // the verifier accepted the entry, whose own checks come first for the same seq.
        let mut fold = self.fold.as_mut().filter(|_| entry.seq == verifier.next_seq());
        // A decision that is byte for byte the body the fold derived and owes: neither the fold
        // nor the catalogue needs its `data` parsed (the bytes are the fold's own serialisation
        // of a decision it made, which the catalogue accepts).
        let own = match (&*parsed, fold.as_deref()) {
            (Some(Ok(event)), Some(fold)) => fold.own_decision(entry, event),
            _ => None,
        };
        let (folded, verified) = match (parsed.take(), own) {
            (Some(Ok(event)), Some(event_type)) => {
                let folded = fold.as_mut().map_or(Ok(()), |f| {
                    f.apply_parsed(entry, FoldInput::OwnDecision { header: &event.header, event_type })
                });
                let rules = Some(Ok(Catalogue.facts(&event)));
                let verified = verifier.push_hashed(entry, Some(Preparsed { event: Ok(&event), rules }), hashes);
                *parsed = Some(Ok(event));
                (folded, verified)
            }
            (Some(Ok(event)), None) if entry.envelope().is_some() => {
                let typed = GovEvent::parse_data(&event);
                // What `Catalogue::validate` and `facts` would say, from the same parse.
                let rules = Some(match &typed {
                    Ok((_, data)) => Catalogue.validate_parsed(Ok(data)).map(|()| Catalogue.facts_parsed(&event, data)),
                    Err(e) => Err(e.clone()),
                });
                // The header moves into the fold's event and back: no copy.
                let ParsedEvent { header, data: raw } = event;
                let (folded, header) = match typed {
                    Ok((event_type, data)) => {
                        let event = GovEvent { event_type, header, data };
                        let folded = fold.as_mut().map_or(Ok(()), |f| f.apply_parsed(entry, FoldInput::Event(&event)));
                        (folded, event.header)
                    }
                    Err(error) => {
                        let input = FoldInput::NotCatalogue { header: &header, error: &error };
                        (fold.as_mut().map_or(Ok(()), |f| f.apply_parsed(entry, input)), header)
                    }
                };
                let event = ParsedEvent { header, data: raw };
                let verified = verifier.push_hashed(entry, Some(Preparsed { event: Ok(&event), rules }), hashes);
                *parsed = Some(Ok(event));
                (folded, verified)
            }
            (Some(Err(error)), _) if entry.envelope().is_some() => {
                let folded = fold.as_mut().map_or(Ok(()), |f| f.apply_parsed(entry, FoldInput::BadBody(&error)));
                let verified = verifier.push_hashed(entry, Some(Preparsed { event: Err(&error), rules: None }), hashes);
                *parsed = Some(Err(error));
                (folded, verified)
            }
            // Redacted (or not parsed by the caller): each stage reads the entry itself.
            (other, _) => {
                *parsed = other;
                (fold.as_mut().map_or(Ok(()), |f| f.apply(entry)), verifier.push_hashed(entry, None, hashes))
            }
        };
        verified.map_err(Failure::from_verify)?;
        folded?;
        self.seen += 1;
        Ok(true)
    }

    /// Ends early with `failure`; a signature failure still pending at an earlier (or the
    /// same) seq wins, being the first bad seq.
    pub(super) fn fail(&mut self, failure: Failure) -> Failure {
        match self.verifier.as_mut().map(Verifier::flush) {
            Some(Err(earlier)) if earlier.seq.unwrap_or(0) <= failure.seq.unwrap_or(u64::MAX) => {
                Failure::from_verify(earlier)
            }
            _ => failure,
        }
    }

    pub(super) fn finish(&mut self, notes: &[&str]) -> Result<VerifyReport, Failure> {
        let verifier = self.verifier.take().ok_or_else(|| Failure::new(None, "internal", "verifier finished"))?;
        verifier.finish_all(notes).map_err(Failure::from_verify)
    }
}
