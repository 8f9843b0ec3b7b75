//! Verification of a run of entries, trusting nothing but the admin and ledger public keys.
//!
//! A [`Verifier`] takes entries in seq order and checks, for each: contiguous seq, the chain
//! link, the entry and payload hashes, non-decreasing `recordedAt`, the envelope and body, the
//! signer's authorisation under the key registry in force at that seq (rebuilt from the entries
//! themselves), and the signature (batched, several batches in parallel). At the end it checks
//! the Merkle root and chain head against a signed checkpoint. The first failure names its seq
//! and the check that failed.
//!
//! A redacted entry is reported as redacted, not as tampering, when a valid `EntryRedacted`
//! event names it; a payload missing without one is a failure.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::checkpoint::{SignedCheckpoint, TreeFormat};
use crate::envelope::EVENT_PAYLOAD_TYPE;
use crate::error::InvalidEvent;
use crate::error::ReadError;
use crate::event::ParsedEvent;
use crate::hash::{digest_eq, Hash32, GENESIS_PREV_HASH};
use crate::keys::KeyId;
use crate::merkle::{Blake3Hasher, Frontier, LogHasher, TreeHasher};
use crate::registry::{admin_effect, authorize, check_effect, AdminEffect, Denial, KeyRecord, TrustRoots};
use crate::rules::{EventFacts, EventRules};
use crate::store::{Entry, EntryBody};

mod pool;

use pool::{verify_batch, PendingBatch, SignaturePool};

/// Signatures verified per batch.
const SIGNATURE_BATCH: usize = 256;

/// A batch is also cut once its messages reach this many bytes, so that the batches queued for
/// the signature pool hold a bounded amount of memory whatever the payloads' sizes (256 of the
/// largest payloads would be 16 MiB).
const SIGNATURE_BATCH_BYTES: usize = 1 << 20;

/// Which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// The stored bytes do not decode.
    Decode,
    /// A seq is missing, repeated or out of order.
    Sequence,
    /// `prevHash` is not the previous entry's hash.
    ChainLink,
    /// The entry or payload hash does not match.
    Hash,
    /// `recordedAt` went backwards.
    Timestamp,
    /// The envelope or body is malformed.
    Envelope,
    /// The signer was not allowed to append this event at this seq.
    Authorization,
    /// The Ed25519 signature does not verify.
    Signature,
    /// A payload is missing without a valid redaction, or a redaction is invalid.
    Redaction,
    /// The checkpoint does not parse or its signature does not verify.
    CheckpointSignature,
    /// The checkpoint's root or chain head differs from the entries'.
    Checkpoint,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Decode => "decode",
            Self::Sequence => "sequence",
            Self::ChainLink => "chain link",
            Self::Hash => "hash",
            Self::Timestamp => "timestamp",
            Self::Envelope => "envelope",
            Self::Authorization => "authorization",
            Self::Signature => "signature",
            Self::Redaction => "redaction",
            Self::CheckpointSignature => "checkpoint signature",
            Self::Checkpoint => "checkpoint",
        };
        f.write_str(name)
    }
}

/// The first inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{check} check failed: {detail}", seq.map(|s| format!("seq {s}: ")).unwrap_or_default())]
pub struct VerifyFailure {
    /// The first bad seq, when the failure is about an entry.
    pub seq: Option<u64>,
    /// The check that failed.
    pub check: Check,
    /// What exactly.
    pub detail: String,
}

impl VerifyFailure {
    fn at(seq: u64, check: Check, detail: impl Into<String>) -> Self {
        Self { seq: Some(seq), check, detail: detail.into() }
    }

    /// A read error met while feeding the verifier.
    pub fn from_read(error: ReadError) -> Self {
        match error {
            ReadError::Corrupted { seq, reason } => Self::at(seq, Check::Decode, reason),
            other => Self { seq: None, check: Check::Decode, detail: other.to_string() },
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Signatures verified.
    pub signatures: u64,
    /// Entries whose payload was redacted by a valid `EntryRedacted` event.
    pub redacted: Vec<u64>,
    /// Keys registered, and how many of them were revoked.
    pub keys_registered: u64,
    /// Keys revoked.
    pub keys_revoked: u64,
    /// The checkpoint size verified against, if one was given (the last, with several).
    pub checkpoint_size: Option<u64>,
    /// Every checkpoint size verified against.
    pub checkpoint_sizes: Vec<u64>,
    /// The Merkle root of all entries verified.
    pub root: Hash32,
    /// The first seq checked: 0, or the seq a range verification resumed at.
    pub first_seq: u64,
}

/// Where a verification of a range `[size, …)` starts: the state a verifier would have after
/// checking seqs `0..size`. An export of a range carries it (`docs/export.md`); the tree part
/// is bound by the checkpoint (a wrong frontier cannot give the checkpoint's root), the key
/// registry is the exporter's word for what was in force before `size`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// Entries before the range.
    pub size: u64,
    /// The entry hash of seq `size - 1`.
    pub prev_hash: Hash32,
    /// The `recordedAt` of seq `size - 1`.
    pub last_recorded_at: u64,
    /// The Merkle frontier at `size`: perfect-subtree roots, largest first.
    pub frontier: Vec<Hash32>,
    /// The tenant keys registered before `size`, as they stood then.
    pub keys: Vec<KeyRecord>,
}

/// An entry's payload as the caller of [`Verifier::push_parsed`] parsed it.
#[derive(Debug)]
pub struct Preparsed<'a> {
    /// What [`ParsedEvent::parse`] made of the payload.
    pub event: Result<&'a ParsedEvent, &'a InvalidEvent>,
    /// What the verifier's rules say of the event, if the caller asked them: the error of
    /// [`EventRules::validate`], or [`EventRules::facts`] of a valid event. `None`: the
    /// verifier asks them.
    pub rules: Option<Result<EventFacts, InvalidEvent>>,
}

/// Whether [`Verifier::check_entry`] hashes the entry ([`Entry::check_hashes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Hashes {
    Check,
    /// [`decode_entry_value`](crate::store::layout::decode_entry_value) checked them.
    Checked,
    /// The caller hashed the entry: what [`Entry::check_hashes`] said of it.
    Known(Result<(), String>),
}

/// Streaming verifier of one tenant's log from seq 0.
pub struct Verifier {
    tenant: String,
    roots: TrustRoots,
    origin_prefix: String,
    next_seq: u64,
    prev_hash: Hash32,
    last_recorded_at: u64,
    frontier: Frontier<LogHasher>,
    keys: HashMap<KeyId, KeyRecord>,
    pending: PendingBatch,
    /// Redacted entries not yet justified by an `EntryRedacted` event.
    unexplained_redactions: BTreeSet<u64>,
    /// Redacted entry → the seq its marker names as the redaction.
    redacted_by: HashMap<u64, u64>,
    /// Seqs some `EntryRedacted` event has named so far.
    redaction_targets: BTreeSet<u64>,
    /// Size → root of the tree at that size, seen while pushing (for a checkpoint mid-log).
    roots_at: HashMap<u64, Hash32>,
    wanted_sizes: BTreeSet<u64>,
    /// The format v1 (BLAKE3) tree of the same leaves, kept only when a v1 checkpoint is to be
    /// checked ([`Verifier::want_v1_root_at`]), with its roots at the wanted sizes.
    v1: Option<V1Tree>,
    report: VerifyReport,
    /// Parsed public keys of registered keys (a key id is the hash of its key: never stale).
    public_keys: HashMap<KeyId, VerifyingKey>,
    /// Verifies batches of signatures on every core while the checks go on (created with the
    /// first full batch).
    pool: Option<SignaturePool>,
    /// The domain rules the writer applied, if any.
    rules: Option<Arc<dyn EventRules>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("tenant", &self.tenant)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `tenant`'s log, trusting `roots`, with checkpoint origin
    /// `"{origin_prefix}/{tenant}"`.
    pub fn new(tenant: &str, roots: TrustRoots, origin_prefix: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            roots,
            origin_prefix: origin_prefix.to_owned(),
            next_seq: 0,
            prev_hash: GENESIS_PREV_HASH,
            last_recorded_at: 0,
            frontier: Frontier::default(),
            keys: HashMap::new(),
            pending: PendingBatch::default(),
            unexplained_redactions: BTreeSet::new(),
            redacted_by: HashMap::new(),
            redaction_targets: BTreeSet::new(),
            roots_at: HashMap::new(),
            wanted_sizes: BTreeSet::new(),
            v1: None,
            report: VerifyReport::default(),
            public_keys: HashMap::new(),
            pool: None,
            rules: None,
        }
    }

    /// A verifier that resumes at `point.size`, as if it had checked seqs `0..point.size`.
    pub fn resume(tenant: &str, roots: TrustRoots, origin_prefix: &str, point: &ResumePoint) -> Result<Self, String> {
        let frontier = Frontier::from_hashes(point.size, &point.frontier)
            .ok_or_else(|| format!("a frontier of {} hashes does not fit size {}", point.frontier.len(), point.size))?;
        let mut verifier = Self::new(tenant, roots, origin_prefix);
        verifier.next_seq = point.size;
        verifier.prev_hash = point.prev_hash;
        verifier.last_recorded_at = point.last_recorded_at;
        verifier.frontier = frontier;
        verifier.report.first_seq = point.size;
        for record in &point.keys {
            let key_id = KeyId::from_hex(&record.key_id).map_err(|e| e.to_string())?;
            let key = record.verifying_key().ok_or_else(|| format!("key {key_id}: bad public key"))?;
            if KeyId::of(&key) != key_id {
                return Err(format!("key {key_id}: the public key has another id"));
            }
            verifier.public_keys.insert(key_id, key);
            verifier.keys.insert(key_id, record.clone());
        }
        Ok(verifier)
    }

    /// The next seq expected.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The tenant key registry derived from the entries pushed so far, as it stands after the
    /// last one (no particular order): what a store's `keys` column family must hold.
    pub fn key_records(&self) -> impl Iterator<Item = &KeyRecord> + '_ {
        self.keys.values()
    }

    /// Also applies the domain rules (event catalogue, role checks) the writer applied: an
    /// event they refuse fails the [`Check::Envelope`] (schema) or [`Check::Authorization`]
    /// (roles) check.
    pub fn with_rules(mut self, rules: Option<Arc<dyn EventRules>>) -> Self {
        self.rules = rules;
        self
    }

    /// Also remember the root at `size`, to check a checkpoint older than the last entry.
    pub fn want_root_at(&mut self, size: u64) {
        self.wanted_sizes.insert(size);
    }

    /// Also build the format v1 (BLAKE3) tree of the entries and remember its root at `size`,
    /// to check a checkpoint signed before the store was migrated to format v2 (the leaves are
    /// the same entry hashes). Call it before the first entry; a resumed verifier cannot
    /// (its v1 frontier is unknown) and fails such a checkpoint at [`Verifier::finish_all`].
    pub fn want_v1_root_at(&mut self, size: u64) {
        let fresh = self.next_seq == 0;
        let tree = self.v1.get_or_insert_with(|| V1Tree {
            frontier: Frontier::default(),
            roots_at: HashMap::new(),
            wanted: BTreeSet::new(),
            complete: fresh,
        });
        tree.wanted.insert(size);
    }

    /// Checks the next entry.
    pub fn push(&mut self, entry: Entry) -> Result<(), VerifyFailure> {
        self.push_entry(&entry, None, Hashes::Check)
    }

    /// [`Verifier::push`] of an entry whose payload the caller already parsed (the offline
    /// auditor parses each payload once for every stage): `parsed` must be what
    /// [`ParsedEvent::parse`] makes of this entry's payload, and its `rules` verdict, if given,
    /// what the rules of [`Verifier::with_rules`] say of it. Every check is the one
    /// [`Verifier::push`] makes, in the same order, with the same failure. Ignored for a
    /// redacted entry.
    pub fn push_parsed(&mut self, entry: Entry, parsed: Preparsed<'_>) -> Result<(), VerifyFailure> {
        self.push_entry(&entry, Some(parsed), Hashes::Check)
    }

    /// [`Verifier::push`] (`parsed: None`) or [`Verifier::push_parsed`] of an entry that
    /// [`decode_entry_value`](crate::store::layout::decode_entry_value) made, which checked its
    /// payload and entry hashes: every other check as those make it. The data dir's check
    /// decodes every entry so, and hashing each envelope a second time was a tenth of its
    /// busiest thread.
    pub(crate) fn push_decoded(&mut self, entry: Entry, parsed: Option<Preparsed<'_>>) -> Result<(), VerifyFailure> {
        self.push_entry(&entry, parsed, Hashes::Checked)
    }

    /// [`Verifier::push`] (`parsed: None`) or [`Verifier::push_parsed`] of an entry whose
    /// hashes the caller checked: `hashes` must be what [`Entry::check_hashes`] says of this
    /// entry. The offline auditor hashes each envelope on the thread that reads the file, off
    /// the verifier's, which sets the audit's pace (BENCHMARKS.md, issue 20). Every check is the
    /// one [`Verifier::push`] makes, in the same order, with the same failure: a bad hash
    /// fails where `push` would hash it, after the seq and chain checks of the same entry.
    ///
    /// The entry is borrowed, not consumed, so the caller decides which thread frees it: the
    /// auditor hands its batches back to the thread that allocated them (`tools/src/audit.rs`).
    pub fn push_hashed(
        &mut self,
        entry: &Entry,
        parsed: Option<Preparsed<'_>>,
        hashes: Result<(), String>,
    ) -> Result<(), VerifyFailure> {
        self.push_entry(entry, parsed, Hashes::Known(hashes))
    }

    fn push_entry(
        &mut self,
        entry: &Entry,
        parsed: Option<Preparsed<'_>>,
        hashes: Hashes,
    ) -> Result<(), VerifyFailure> {
        if let Err(failure) = self.check_entry(entry, parsed, hashes) {
            // A signature failure earlier in the pending batch comes first.
            self.flush_signatures()?;
            return Err(failure);
        }
        if self.pending.len() >= SIGNATURE_BATCH || self.pending.message_bytes() >= SIGNATURE_BATCH_BYTES {
            // Verified in the background while the next entries are checked: the checks are
            // serial, the signatures parallel, and overlapping them keeps every core busy.
            let pool = self.pool.get_or_insert_with(SignaturePool::new);
            let batch = std::mem::replace(&mut self.pending, pool.empty_batch());
            pool.submit(batch);
            if pool.failed() {
                self.flush_signatures()?;
            }
        }
        Ok(())
    }

    fn check_entry(
        &mut self,
        entry: &Entry,
        preparsed: Option<Preparsed<'_>>,
        hashes: Hashes,
    ) -> Result<(), VerifyFailure> {
        let seq = entry.seq;
        if seq == u64::MAX {
            // No log reaches it, and counting it would overflow the entry count and the tree
            // (`Frontier::push`); a resume point from a file can put the verifier there.
            return Err(VerifyFailure::at(seq, Check::Sequence, "seq u64::MAX is beyond any log"));
        }
        if seq != self.next_seq {
            return Err(VerifyFailure::at(
                self.next_seq,
                Check::Sequence,
                format!("expected seq {}, found {seq}", self.next_seq),
            ));
        }
        if !digest_eq(&entry.prev_hash, &self.prev_hash) {
            return Err(VerifyFailure::at(seq, Check::ChainLink, "prevHash is not the previous entry's hash"));
        }
        match hashes {
            Hashes::Check => entry.check_hashes(),
            Hashes::Checked => Ok(()),
            Hashes::Known(verdict) => verdict,
        }
        .map_err(|detail| VerifyFailure::at(seq, Check::Hash, detail))?;
        if entry.recorded_at < self.last_recorded_at {
            return Err(VerifyFailure::at(seq, Check::Timestamp, "recordedAt is earlier than the previous entry's"));
        }
        match &entry.body {
            EntryBody::Redacted { by_seq } => {
                if *by_seq <= seq {
                    return Err(VerifyFailure::at(seq, Check::Redaction, "redacted by an event that is not later"));
                }
                self.unexplained_redactions.insert(seq);
                self.redacted_by.insert(seq, *by_seq);
                self.report.redacted.push(seq);
            }
            EntryBody::Present(envelope) => {
                if envelope.payload_type != EVENT_PAYLOAD_TYPE {
                    return Err(VerifyFailure::at(seq, Check::Envelope, "unexpected payloadType"));
                }
                let [signature] = envelope.signatures.as_slice() else {
                    return Err(VerifyFailure::at(seq, Check::Envelope, "not exactly one signature"));
                };
                let own;
                let (parsed, verdict) = match preparsed {
                    Some(Preparsed { event: Ok(parsed), rules }) => (parsed, rules),
                    Some(Preparsed { event: Err(e), .. }) => {
                        return Err(VerifyFailure::at(seq, Check::Envelope, e.to_string()))
                    }
                    None => {
                        own = ParsedEvent::parse(&envelope.payload)
                            .map_err(|e| VerifyFailure::at(seq, Check::Envelope, e.to_string()))?;
                        (&own, None)
                    }
                };
                if parsed.header.tenant != self.tenant {
                    return Err(VerifyFailure::at(
                        seq,
                        Check::Envelope,
                        format!("event names tenant {:?}", parsed.header.tenant),
                    ));
                }
                let key_id = KeyId::from_hex(&signature.keyid)
                    .map_err(|e| VerifyFailure::at(seq, Check::Envelope, e.to_string()))?;
                let key = self.roots.root_key(&key_id).or_else(|| self.public_keys.get(&key_id).copied()).ok_or_else(
                    || {
                        VerifyFailure::at(
                            seq,
                            Check::Authorization,
                            format!("key {key_id} is not registered at this seq"),
                        )
                    },
                )?;
                let record = self.keys.get(&key_id);
                let signer = authorize(&self.roots, &key_id, record, &parsed.header).map_err(|denial| {
                    let detail = match denial {
                        Denial::Unknown => format!("key {key_id} is not registered at this seq"),
                        Denial::Revoked(at) => format!("key {key_id} was revoked at seq {at}"),
                        Denial::NotAllowed(what) => format!("key {key_id} may not {what}"),
                    };
                    VerifyFailure::at(seq, Check::Authorization, detail)
                })?;
                if let Some(rules) = &self.rules {
                    let facts = match verdict {
                        Some(verdict) => verdict,
                        None => rules.validate(parsed).map(|()| rules.facts(parsed)),
                    }
                    .map_err(|e| VerifyFailure::at(seq, Check::Envelope, e.to_string()))?;
                    let roles = record.map(|r| r.roles.as_slice()).unwrap_or_default();
                    let attestor = facts.attestation_key.as_ref().and_then(|id| self.keys.get(id));
                    rules.authorize(parsed, &facts, signer, roles, attestor).map_err(|what| {
                        VerifyFailure::at(seq, Check::Authorization, format!("key {key_id} may not {what}"))
                    })?;
                }
                let effect =
                    admin_effect(&self.roots, parsed, seq).map_err(|e| VerifyFailure::at(seq, Check::Envelope, e))?;
                self.apply_effect(seq, effect)?;
                let signature = Signature::from_slice(&signature.sig)
                    .map_err(|_| VerifyFailure::at(seq, Check::Signature, "signature is not 64 bytes"))?;
                self.pending.push_with(
                    seq,
                    |messages| crate::envelope::pae_into(messages, &envelope.payload_type, &envelope.payload),
                    signature,
                    key,
                );
            }
        }
        self.frontier.push(LogHasher::hash_leaf(&entry.entry_hash), |_, _, _| {});
        if let Some(v1) = &mut self.v1 {
            v1.frontier.push(Blake3Hasher::hash_leaf(&entry.entry_hash), |_, _, _| {});
            if v1.wanted.contains(&(self.next_seq + 1)) {
                v1.roots_at.insert(self.next_seq + 1, v1.frontier.root());
            }
        }
        self.prev_hash = entry.entry_hash;
        self.last_recorded_at = entry.recorded_at;
        self.next_seq += 1;
        if self.wanted_sizes.contains(&self.next_seq) {
            self.roots_at.insert(self.next_seq, self.frontier.root());
        }
        Ok(())
    }

    fn apply_effect(&mut self, seq: u64, effect: AdminEffect) -> Result<(), VerifyFailure> {
        match &effect {
            AdminEffect::Register(record) => {
                let key_id = KeyId::from_hex(&record.key_id)
                    .map_err(|e| VerifyFailure::at(seq, Check::Envelope, e.to_string()))?;
                check_effect(&effect, self.keys.get(&key_id))
                    .map_err(|e| VerifyFailure::at(seq, Check::Authorization, e))?;
                if let Some(key) = record.verifying_key() {
                    self.public_keys.insert(key_id, key);
                }
                self.keys.insert(key_id, record.clone());
                self.report.keys_registered += 1;
            }
            AdminEffect::Revoke(key_id) => {
                check_effect(&effect, self.keys.get(key_id))
                    .map_err(|e| VerifyFailure::at(seq, Check::Authorization, e))?;
                if let Some(record) = self.keys.get_mut(key_id) {
                    record.revoked_at = Some(seq);
                }
                self.report.keys_revoked += 1;
            }
            AdminEffect::Redact(target) => {
                if !self.redaction_targets.insert(*target) {
                    return Err(VerifyFailure::at(seq, Check::Redaction, format!("seq {target} was already redacted")));
                }
                self.unexplained_redactions.remove(target);
            }
            AdminEffect::None => {}
        }
        Ok(())
    }

    /// Verifies every signature gathered: the batches in the pool, then the pending ones. The
    /// first bad seq among all of them is the failure.
    fn flush_signatures(&mut self) -> Result<(), VerifyFailure> {
        let pending = std::mem::take(&mut self.pending);
        let (mut first_bad, mut count) = (None, 0);
        if let Some(pool) = &mut self.pool {
            (first_bad, count) = pool.wait();
        }
        if !pending.is_empty() {
            count += pending.len();
            first_bad = first_bad.into_iter().chain(verify_batch(&pending)).min();
        }
        self.report.signatures += count as u64;
        match first_bad {
            Some(seq) => Err(VerifyFailure::at(seq, Check::Signature, "Ed25519 signature does not verify")),
            None => Ok(()),
        }
    }

    /// Verifies the signatures gathered so far (they are otherwise checked in large batches).
    pub fn flush(&mut self) -> Result<(), VerifyFailure> {
        self.flush_signatures()
    }

    /// Ends verification early with `failure`, met while reading the next entry. A signature
    /// failure of an earlier entry still pending in the batch is returned instead: it is the
    /// first bad seq.
    pub fn fail(mut self, failure: VerifyFailure) -> VerifyFailure {
        match self.flush_signatures() {
            Err(earlier) => earlier,
            Ok(()) => failure,
        }
    }

    /// Finishes: pending signatures, unexplained redactions, and the checkpoint (signed note
    /// text), which must cover at most the entries pushed.
    pub fn finish(self, checkpoint_note: Option<&str>) -> Result<VerifyReport, VerifyFailure> {
        self.finish_all(checkpoint_note.as_slice())
    }

    /// [`Verifier::finish`] against several checkpoints: each must cover at most the entries
    /// pushed (an older one needs [`Verifier::want_root_at`] before the entries).
    pub fn finish_all(mut self, checkpoint_notes: &[&str]) -> Result<VerifyReport, VerifyFailure> {
        self.flush_signatures()?;
        if let Some(&seq) = self.unexplained_redactions.iter().next() {
            // Fail closed: a marker naming a redaction beyond the entries checked is a claim
            // nothing here can confirm (anyone can erase a payload and write a large seq).
            let detail = match self.redacted_by.get(&seq) {
                Some(&by) if by >= self.next_seq => format!(
                    "payload erased by the EntryRedacted at seq {by}, beyond the entries checked: verify through seq {by}"
                ),
                _ => "payload is missing and no EntryRedacted event names it".to_owned(),
            };
            return Err(VerifyFailure::at(seq, Check::Redaction, detail));
        }
        self.report.entries = self.next_seq;
        self.report.root = self.frontier.root();
        for note in checkpoint_notes {
            let (signed, format) = SignedCheckpoint::parse_and_verify_any(note, self.roots.ledger())
                .map_err(|e| VerifyFailure { seq: None, check: Check::CheckpointSignature, detail: e.to_string() })?;
            let checkpoint = signed.checkpoint;
            if format == TreeFormat::V1Blake3 {
                self.check_v1(&checkpoint)?;
                self.report.checkpoint_sizes.push(checkpoint.size);
                continue;
            }
            let expected_origin = format!("{}/{}", self.origin_prefix, self.tenant);
            if checkpoint.origin != expected_origin {
                return Err(VerifyFailure {
                    seq: None,
                    check: Check::Checkpoint,
                    detail: format!("checkpoint origin {:?} is not {expected_origin:?}", checkpoint.origin),
                });
            }
            let root = if checkpoint.size == self.next_seq {
                self.frontier.root()
            } else if let Some(found) = self.roots_at.get(&checkpoint.size) {
                *found
            } else if checkpoint.size > self.next_seq {
                return Err(VerifyFailure::at(
                    self.next_seq,
                    Check::Checkpoint,
                    format!("checkpoint covers {} entries, only {} present", checkpoint.size, self.next_seq),
                ));
            } else {
                return Err(VerifyFailure {
                    seq: None,
                    check: Check::Checkpoint,
                    detail: format!("checkpoint size {} was not requested with want_root_at", checkpoint.size),
                });
            };
            let last = checkpoint.size.checked_sub(1);
            if !digest_eq(&root, &checkpoint.root) {
                return Err(VerifyFailure {
                    seq: last,
                    check: Check::Checkpoint,
                    detail: "tree root differs from the checkpoint".into(),
                });
            }
            self.report.checkpoint_size = Some(checkpoint.size);
            self.report.checkpoint_sizes.push(checkpoint.size);
        }
        Ok(self.report)
    }
}

/// The format v1 tree [`Verifier::want_v1_root_at`] keeps.
#[derive(Debug)]
struct V1Tree {
    frontier: Frontier<Blake3Hasher>,
    roots_at: HashMap<u64, Hash32>,
    wanted: BTreeSet<u64>,
    /// Built from seq 0 (not by a resumed verifier).
    complete: bool,
}

impl Verifier {
    /// A checkpoint signed before migration (v1 note: BLAKE3 root) against the v1 tree of the
    /// entries. Its origin was `{v1 prefix}/{tenant}` with a prefix this store no longer
    /// records, so the tenant is checked as the origin's last component.
    fn check_v1(&self, checkpoint: &crate::checkpoint::Checkpoint) -> Result<(), VerifyFailure> {
        let fail = |detail: String| VerifyFailure { seq: None, check: Check::Checkpoint, detail };
        if !checkpoint.origin.ends_with(&format!("/{}", self.tenant)) {
            return Err(fail(format!(
                "format v1 checkpoint origin {:?} is not a log of tenant {:?}",
                checkpoint.origin, self.tenant
            )));
        }
        let v1 = match &self.v1 {
            Some(v1) if v1.complete => v1,
            _ => {
                return Err(fail(format!(
                    "a format v1 checkpoint (size {}, BLAKE3 tree) can only be checked against the entries from seq 0 \
                     (an export from the first entry, or the data dir)",
                    checkpoint.size
                )))
            }
        };
        let root = if checkpoint.size == self.next_seq {
            v1.frontier.root()
        } else if let Some(root) = v1.roots_at.get(&checkpoint.size) {
            *root
        } else {
            return Err(VerifyFailure::at(
                self.next_seq,
                Check::Checkpoint,
                format!("format v1 checkpoint covers {} entries, {} present", checkpoint.size, self.next_seq),
            ));
        };
        if !digest_eq(&root, &checkpoint.root) {
            return Err(VerifyFailure {
                seq: checkpoint.size.checked_sub(1),
                check: Check::Checkpoint,
                detail: "the BLAKE3 (format v1) tree root of the entries differs from the v1 checkpoint".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    /// A chained entry at `seq` after `prev`, signed by `key`, with `payload` as its body.
    fn chained(seq: u64, prev: &Hash32, payload: &[u8], key: &KeyPair) -> Entry {
        chained_envelope(seq, prev, crate::Envelope::sign(payload.to_vec(), key))
    }

    fn chained_envelope(seq: u64, prev: &Hash32, envelope: crate::Envelope) -> Entry {
        let payload_hash = crate::hash::payload_hash(&envelope.to_bytes());
        Entry {
            seq,
            recorded_at: seq + 1,
            prev_hash: *prev,
            payload_hash,
            entry_hash: crate::hash::entry_hash(seq, seq + 1, prev, &payload_hash),
            body: EntryBody::Present(envelope),
        }
    }

    /// `push_parsed` (the auditor parses each payload once) and `push_hashed` (it hashes each
    /// entry on its reading thread) fail exactly where and as `push` does: a body that does not
    /// parse, a bad signature, a tampered payload, a tampered payload behind a broken chain link
    /// (the link's failure comes first, as `push` checks it first).
    #[test]
    fn a_preparsed_entry_fails_at_the_same_seq_with_the_same_failure() {
        let admin = KeyPair::from_seed(&[1; 32]);
        let roots = TrustRoots::new(admin.verifying_key(), KeyPair::from_seed(&[2; 32]).verifying_key());
        let body = |id: u64| {
            format!(
                r#"{{"tenant":"acme","stream":"s","type":"TestsPassed","eventId":"e-{id}","occurredAt":"2025-05-23T09:32:00Z","actor":{{"agentId":"admin"}},"data":{{}}}}"#
            )
            .into_bytes()
        };
        let log = |bad: &dyn Fn(u64, &Hash32) -> Option<Entry>| {
            let mut entries: Vec<Entry> = Vec::new();
            for seq in 0..5u64 {
                let prev = entries.last().map_or(crate::hash::GENESIS_PREV_HASH, |e| e.entry_hash);
                entries.push(bad(seq, &prev).unwrap_or_else(|| chained(seq, &prev, &body(seq), &admin)));
            }
            entries
        };
        let cases: Vec<Vec<Entry>> = vec![
            log(&|seq, prev| (seq == 3).then(|| chained(seq, prev, b"{not json", &admin))),
            log(&|seq, prev| (seq == 2).then(|| chained(seq, prev, &body(seq), &KeyPair::from_seed(&[9; 32])))),
            log(&|seq, prev| {
                (seq == 2).then(|| {
                    let mut envelope = crate::Envelope::sign(body(seq), &admin);
                    envelope.signatures[0].sig[5] ^= 1;
                    chained_envelope(seq, prev, envelope)
                })
            }),
            log(&|seq, prev| {
                (seq == 1).then(|| {
                    let mut entry = chained(seq, prev, &body(seq), &admin);
                    if let EntryBody::Present(envelope) = &mut entry.body {
                        envelope.payload[3] ^= 1;
                    }
                    entry
                })
            }),
            log(&|seq, prev| {
                (seq == 2).then(|| {
                    let mut entry = chained(seq, prev, &body(seq), &admin);
                    entry.prev_hash[0] ^= 1;
                    if let EntryBody::Present(envelope) = &mut entry.body {
                        envelope.payload[3] ^= 1;
                    }
                    entry
                })
            }),
            log(&|_, _| None),
        ];
        let checks = [
            Some((3, Check::Envelope)),
            Some((2, Check::Authorization)),
            Some((2, Check::Signature)),
            Some((1, Check::Hash)),
            Some((2, Check::ChainLink)),
            None,
        ];
        for (entries, check) in cases.into_iter().zip(checks) {
            let mut plain = Verifier::new("acme", roots, "release-ledger");
            let mut preparsed = Verifier::new("acme", roots, "release-ledger");
            let mut hashed = Verifier::new("acme", roots, "release-ledger");
            let mut outcomes = (Ok(()), Ok(()), Ok(()));
            for entry in entries {
                let parsed = entry.envelope().map(|e| ParsedEvent::parse(&e.payload));
                let pre = || match &parsed {
                    Some(Ok(p)) => Preparsed { event: Ok(p), rules: None },
                    Some(Err(e)) => Preparsed { event: Err(e), rules: None },
                    None => unreachable!(),
                };
                let hashes = entry.check_hashes();
                outcomes.2 = outcomes.2.and_then(|()| hashed.push_hashed(&entry, Some(pre()), hashes));
                outcomes.1 = outcomes.1.and_then(|()| preparsed.push_parsed(entry.clone(), pre()));
                outcomes.0 = outcomes.0.and_then(|()| plain.push(entry));
            }
            let finished = |v: Verifier, o: Result<(), VerifyFailure>| o.and_then(|()| v.finish(None).map(|_| ()));
            let (a, b) = (finished(plain, outcomes.0), finished(preparsed, outcomes.1));
            assert_eq!(a, b);
            assert_eq!(finished(hashed, outcomes.2), a);
            assert_eq!(a.err().map(|f| (f.seq.unwrap_or(u64::MAX), f.check)), check);
        }
    }

    /// Batches are cut by their messages' bytes too, so big payloads queue bounded memory; a
    /// bad signature in a later batch is still found at its seq.
    #[test]
    fn batches_of_big_payloads_are_cut_by_bytes_and_still_checked() {
        let admin = KeyPair::from_seed(&[1; 32]);
        let roots = TrustRoots::new(admin.verifying_key(), KeyPair::from_seed(&[2; 32]).verifying_key());
        let notes = "x".repeat(100 << 10);
        let body = |id: u64| {
            format!(
                r#"{{"tenant":"acme","stream":"s","type":"TestsPassed","eventId":"e-{id}","occurredAt":"2025-05-23T09:32:00Z","actor":{{"agentId":"admin"}},"data":{{"notes":"{notes}"}}}}"#
            )
            .into_bytes()
        };
        for bad in [None, Some(20u64)] {
            let mut verifier = Verifier::new("acme", roots, "release-ledger");
            let mut prev = crate::hash::GENESIS_PREV_HASH;
            let mut outcome = Ok(());
            for seq in 0..30u64 {
                let mut envelope = crate::Envelope::sign(body(seq), &admin);
                if bad == Some(seq) {
                    envelope.signatures[0].sig[7] ^= 1;
                }
                let entry = chained_envelope(seq, &prev, envelope);
                prev = entry.entry_hash;
                outcome = outcome.and_then(|()| verifier.push(entry));
                // Ten messages of ~100 KiB stay below 1 MiB; the eleventh cuts the batch.
                match seq {
                    9 => assert_eq!(verifier.pending.len(), 10),
                    10 => assert!(verifier.pending.is_empty(), "the batch was not cut at 1 MiB"),
                    _ => {}
                }
            }
            let result = outcome.and_then(|()| verifier.finish(None).map(|_| ()));
            match bad {
                None => assert_eq!(result, Ok(())),
                Some(seq) => {
                    let failure = result.unwrap_err();
                    assert_eq!((failure.seq, failure.check), (Some(seq), Check::Signature));
                }
            }
        }
    }

    /// The `merkle` fuzz target found that `Frontier::push` overflows past `u64::MAX` leaves;
    /// the verifier reaches it from an export's resume point (the file's word), and pushed the
    /// entry before its signature is checked.
    #[test]
    fn an_entry_at_seq_u64_max_is_refused_not_an_overflow_panic() {
        let admin = KeyPair::from_seed(&[1; 32]);
        let roots = TrustRoots::new(admin.verifying_key(), KeyPair::from_seed(&[2; 32]).verifying_key());
        let point = ResumePoint {
            size: u64::MAX,
            prev_hash: [0; 32],
            last_recorded_at: 0,
            frontier: vec![[0; 32]; 64],
            keys: vec![],
        };
        let mut verifier = Verifier::resume("acme", roots, "release-ledger", &point).unwrap();
        let payload = br#"{"tenant":"acme","stream":"s","type":"TestsPassed","eventId":"e-1","occurredAt":"2025-05-23T09:32:00Z","actor":{"agentId":"admin"},"data":{}}"#;
        let envelope = crate::Envelope::sign(payload.to_vec(), &admin);
        let payload_hash = crate::hash::payload_hash(&envelope.to_bytes());
        let entry = Entry {
            seq: u64::MAX,
            recorded_at: 1,
            prev_hash: [0; 32],
            payload_hash,
            entry_hash: crate::hash::entry_hash(u64::MAX, 1, &[0; 32], &payload_hash),
            body: EntryBody::Present(envelope),
        };
        assert_eq!(verifier.push(entry).unwrap_err().check, Check::Sequence);
    }
}
