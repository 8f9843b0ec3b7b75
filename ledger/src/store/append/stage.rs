//! Step 2 of an append, on the writer thread: each request of a group is staged into a
//! request-local [`Delta`] over the group's [`Stage`] of its tenant. The checks run in a fixed
//! order, each its own function: idempotency ([`duplicate_receipt`]), authorisation
//! ([`authorize_signer`]), the stream version ([`check_version`]), the administrative effect
//! ([`admin_effect_at`]), then the entry with its index rows and tree nodes ([`write_entry`])
//! and the registry change ([`record_admin_effect`]). A request that fails any check leaves its
//! delta behind, and with it everything it staged.

use std::collections::{HashMap, HashSet};

use super::commit::Op;
use super::prepare::{Job, PreparedEvent, Reply};
use crate::error::{AppendError, InvalidEvent, ReadError};
use crate::event::{EventClass, ParsedEvent};
use crate::hash::{entry_hash, Hash32, GENESIS_PREV_HASH};
use crate::keys::KeyId;
use crate::merkle::{Frontier, LogHasher, TreeHasher};
use crate::registry::{authorize, check_effect, AdminEffect, Denial, KeyRecord};
use crate::store::erasure::erase_key;
use crate::store::layout::*;
use crate::store::{read_entry, Committed, ExpectedVersion, Inner, Receipt, TenantState};

/// What the group has staged for a tenant, on top of its committed state.
#[derive(Debug)]
pub(super) struct Stage {
    pub(super) tid: u32,
    pub(super) is_new: bool,
    pub(super) head: Head,
    pub(super) frontier: Frontier<LogHasher>,
    pub(super) overlay: Overlay,
    pub(super) touched: bool,
    pub(super) new_entries: usize,
}

/// Changes not yet durable, looked up before the committed state.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    pub(super) keys: HashMap<KeyId, KeyRecord>,
    streams: HashMap<String, u64>,
    event_ids: HashMap<String, (u64, Hash32)>,
    entries: HashMap<u64, StagedEntry>,
    pub(super) redacted: HashSet<u64>,
}

impl Overlay {
    /// `other`'s changes over these (on a key in both, `other`'s value). Into an empty map
    /// (a group's first request of a tenant, a lone request's only one) that was not sized for
    /// the group ([`Overlay::sized`]) `other`'s map moves whole, unhashed again.
    fn merge(&mut self, other: Overlay) {
        macro_rules! merge {
            ($($field:ident),*) => {$(
                if self.$field.is_empty() && self.$field.capacity() < other.$field.len() {
                    self.$field = other.$field;
                } else {
                    self.$field.extend(other.$field);
                }
            )*};
        }
        merge!(keys, streams, event_ids, entries, redacted);
    }

    /// An empty overlay whose event ids and entries hold `events` without growing (each event
    /// adds one of each): a request's, or a tenant's stage in a group of that many events,
    /// which its requests' overlays are merged into. Sized once, not grown (and rehashed) five
    /// times on the way to a 64-event request's.
    fn sized(events: usize) -> Self {
        let mut overlay = Self::default();
        overlay.event_ids.reserve(events);
        overlay.entries.reserve(events);
        overlay
    }
}

#[derive(Debug, Clone)]
struct StagedEntry {
    recorded_at: u64,
    prev_hash: Hash32,
    payload_hash: Hash32,
    entry_hash: Hash32,
    event_type: String,
}

/// A request's changes, kept apart until every one of its events has passed.
struct Delta {
    head: Head,
    frontier: Frontier<LogHasher>,
    overlay: Overlay,
    ops: Vec<Op>,
    /// Tree nodes, kept apart from `ops` until the group ends (see [`stage_group`]).
    tree: Vec<([u8; 13], Hash32)>,
    receipts: Vec<Receipt>,
}

/// A staged group: every tenant's stage, the rows of the requests that passed, and their
/// answers (the refused ones are answered already).
pub(super) struct StagedGroup {
    pub(super) stages: HashMap<String, Stage>,
    pub(super) ops: Vec<Op>,
    pub(super) answers: Vec<(Reply, Vec<Receipt>)>,
}

/// Stages every request of a group in arrival order; a refused request is answered here.
pub(super) fn stage_group(inner: &Inner, jobs: Vec<Job>, now: u64) -> StagedGroup {
    let mut group = StagedGroup { stages: HashMap::new(), ops: Vec::new(), answers: Vec::new() };
    let mut tree = Vec::new();
    let committed = inner.committed.read();
    let mut next_tid = committed.next_tid;
    // The events each tenant brings to the group, to size its stage's overlay once. A lone
    // request's overlay moves in whole instead ([`Overlay::merge`]).
    let mut events: HashMap<String, usize> = HashMap::new();
    if jobs.len() > 1 {
        for job in &jobs {
            if let Some(count) = events.get_mut(&job.events.tenant) {
                *count += job.events.events.len();
            } else {
                events.insert(job.events.tenant.clone(), job.events.events.len());
            }
        }
    }
    for job in jobs {
        let tenant = job.events.tenant.clone();
        let committed_state = committed.tenants.get(&tenant);
        let stage = group.stages.entry(tenant.clone()).or_insert_with(|| match committed_state {
            Some(state) => Stage {
                tid: state.tid,
                is_new: false,
                head: state.head,
                frontier: state.frontier.clone(),
                overlay: Overlay::sized(events.get(&tenant).copied().unwrap_or(0)),
                touched: false,
                new_entries: 0,
            },
            None => {
                next_tid += 1;
                Stage {
                    tid: next_tid - 1,
                    is_new: true,
                    head: Head { size: 0, chain_head: GENESIS_PREV_HASH, last_recorded_at: 0 },
                    frontier: Frontier::default(),
                    overlay: Overlay::sized(events.get(&tenant).copied().unwrap_or(0)),
                    touched: false,
                    new_entries: 0,
                }
            }
        });
        let ctx = Ctx { inner, committed: &committed, state: committed_state, tenant: &tenant, now };
        match stage_request(&ctx, stage, job.events.events) {
            Ok(delta) => {
                stage.new_entries += (delta.head.size - stage.head.size) as usize;
                stage.touched |= delta.head.size > stage.head.size;
                stage.head = delta.head;
                stage.frontier = delta.frontier;
                stage.overlay.merge(delta.overlay);
                group.ops.extend(delta.ops);
                tree.extend(delta.tree);
                group.answers.push((job.reply, delta.receipts));
            }
            Err(error) => {
                job.reply.send(Err(error));
            }
        }
    }
    // One stream-head row per stream the group appended to, at its last version: a request of
    // 64 events on one stream writes one row, not 64 rows of the same key (all but the last
    // would be shadowed in the same batch).
    for stage in group.stages.values() {
        for (stream, version) in &stage.overlay.streams {
            group.ops.push(Op {
                cf: CF_STREAM_HEADS,
                key: stream_head_key(stage.tid, stream),
                value: version.to_be_bytes().to_vec(),
            });
        }
    }
    // The tree's rows in key order (level by level), not in the order the leaves complete them
    // (a leaf, its parent, the next leaf, ...): RocksDB inserts a batch's rows into the
    // memtable's skiplist in batch order, and an insert next to the previous one reuses its
    // search path. Each node is written once, so no two rows share a key.
    tree.sort_unstable_by_key(|a| a.0);
    group.ops.extend(tree.into_iter().map(|(key, node)| Op { cf: CF_TREE, key: key.to_vec(), value: node.to_vec() }));
    group
}

struct Ctx<'a> {
    inner: &'a Inner,
    committed: &'a Committed,
    state: Option<&'a TenantState>,
    tenant: &'a str,
    now: u64,
}

fn stage_request(ctx: &Ctx<'_>, stage: &Stage, events: Vec<PreparedEvent>) -> Result<Delta, AppendError> {
    let mut delta = Delta {
        head: stage.head,
        frontier: stage.frontier.clone(),
        overlay: Overlay::sized(events.len()),
        ops: Vec::new(),
        tree: Vec::new(),
        receipts: Vec::with_capacity(events.len()),
    };
    let committed_ids = committed_event_ids(ctx, stage, &events);
    for (event, committed) in events.into_iter().zip(committed_ids) {
        let receipt = stage_event(ctx, stage, &mut delta, event, committed)?;
        delta.receipts.push(receipt);
    }
    Ok(delta)
}

/// An event's committed event-id row, read before its request is staged: `Ok(None)` when it
/// has none, an error (unreadable or corrupt row) reported only if staging reaches the event.
type CommittedId = Result<Option<(u64, Hash32)>, AppendError>;

/// The committed event-id rows of a request's events, in one batched RocksDB lookup instead of
/// one `Get` per event (each a miss through every memtable and level for a new id, a third of
/// a large request's staging: BENCHMARKS.md, "Issue 20, twelfth session"). Nothing the writer
/// stages is written before the group's batch, so the rows read here are the ones each event
/// would have read when staged; the group's and the request's own earlier events are found in
/// the overlays first, as before.
fn committed_event_ids(ctx: &Ctx<'_>, stage: &Stage, events: &[PreparedEvent]) -> Vec<CommittedId> {
    if stage.is_new {
        return events.iter().map(|_| Ok(None)).collect();
    }
    let cf = ctx.inner.cf(CF_EVENT_IDS);
    let key = |event: &PreparedEvent| event_id_key(stage.tid, &event.parsed.header.event_id);
    let row = |event: &PreparedEvent, row: Result<Option<rocksdb::DBPinnableSlice<'_>>, rocksdb::Error>| {
        let event_id = &event.parsed.header.event_id;
        row.map_err(|e| storage(ReadError::rocksdb_at_row(event_id_row(event_id))(e)))?
            .map(|v| {
                decode_event_id_value(&v)
                    .map_err(|e| AppendError::CorruptedRow { row: event_id_row(event_id), reason: e.0 })
            })
            .transpose()
    };
    if let [event] = events {
        // One event (most requests under load): a plain `Get`, without the batch's set-up.
        return vec![row(event, ctx.inner.db.get_pinned_cf(cf, key(event)))];
    }
    let rows = ctx.inner.db.batched_multi_get_cf(cf, events.iter().map(key), false);
    events.iter().zip(rows).map(|(event, found)| row(event, found)).collect()
}

fn stage_event(
    ctx: &Ctx<'_>,
    stage: &Stage,
    delta: &mut Delta,
    event: PreparedEvent,
    committed: CommittedId,
) -> Result<Receipt, AppendError> {
    if let Some(receipt) = duplicate_receipt(ctx, stage, delta, &event, committed)? {
        return Ok(receipt);
    }
    authorize_signer(ctx, stage, delta, &event)?;
    let version = check_version(ctx, stage, delta, &event)? + 1;
    let seq = delta.head.size;
    let effect = admin_effect_at(ctx, stage, delta, &event, seq)?;
    let (hash, recorded_at) = write_entry(stage.tid, ctx.now, delta, &event, version);
    record_admin_effect(ctx, stage, delta, effect, event.index, seq)?;
    // The event is done with: its header's strings move into the overlay.
    let (payload_hash, payload_digest, header) = (event.payload_hash, event.payload_digest, event.parsed.header);
    delta.overlay.streams.insert(header.stream, version);
    delta.overlay.event_ids.insert(header.event_id, (seq, payload_digest));
    delta.overlay.entries.insert(
        seq,
        StagedEntry {
            recorded_at,
            prev_hash: delta.head.chain_head,
            payload_hash,
            entry_hash: hash,
            event_type: header.event_type,
        },
    );
    delta.head = Head { size: seq + 1, chain_head: hash, last_recorded_at: recorded_at };
    Ok(Receipt { tenant: ctx.tenant.to_owned(), seq, entry_hash: hash, recorded_at, duplicate: false })
}

/// Idempotency: the same eventId with the same payload answers with the original receipt; with
/// another payload it is a conflict.
fn duplicate_receipt(
    ctx: &Ctx<'_>,
    stage: &Stage,
    delta: &Delta,
    event: &PreparedEvent,
    committed: CommittedId,
) -> Result<Option<Receipt>, AppendError> {
    let (index, header, tid) = (event.index, &event.parsed.header, stage.tid);
    let existing =
        match delta.overlay.event_ids.get(&header.event_id).or_else(|| stage.overlay.event_ids.get(&header.event_id)) {
            Some(found) => Some(*found),
            None => committed?,
        };
    let Some((seq, digest)) = existing else { return Ok(None) };
    if digest != event.payload_digest {
        return Err(AppendError::EventIdConflict { index, event_id: header.event_id.clone(), existing_seq: seq });
    }
    let (entry_hash, recorded_at) = match delta.overlay.entries.get(&seq).or_else(|| stage.overlay.entries.get(&seq)) {
        Some(staged) => (staged.entry_hash, staged.recorded_at),
        None => {
            let entry = read_entry(ctx.inner, tid, seq).map_err(storage)?;
            (entry.entry_hash, entry.recorded_at)
        }
    };
    Ok(Some(Receipt { tenant: ctx.tenant.to_owned(), seq, entry_hash, recorded_at, duplicate: true }))
}

/// Authorisation against the registry in force at this position, then the rules' (with the
/// facts read at preparation).
fn authorize_signer(ctx: &Ctx<'_>, stage: &Stage, delta: &Delta, event: &PreparedEvent) -> Result<(), AppendError> {
    let (index, key_id) = (event.index, event.key_id);
    let record = key_record(ctx, stage, &delta.overlay, &key_id);
    let signer = authorize(&ctx.inner.roots, &key_id, record, &event.parsed.header).map_err(|denial| match denial {
        Denial::Unknown => match ctx.committed.key_tenants.get(&key_id) {
            Some(tenants) if !tenants.is_empty() => {
                AppendError::WrongTenant { index, key_id, tenant: ctx.tenant.to_owned() }
            }
            _ => AppendError::UnknownKey { index, key_id: key_id.to_hex() },
        },
        Denial::Revoked(revoked_at) => AppendError::KeyRevoked { index, key_id, revoked_at },
        Denial::NotAllowed(what) => AppendError::NotAllowed { index, key_id, what },
    })?;
    if let Some(rules) = &ctx.inner.config.rules {
        let roles = record.map(|r| r.roles.as_slice()).unwrap_or_default();
        let attestor = event.facts.attestation_key.as_ref().and_then(|id| key_record(ctx, stage, &delta.overlay, id));
        rules
            .authorize(&event.parsed, &event.facts, signer, roles, attestor)
            .map_err(|what| AppendError::NotAllowed { index, key_id, what })?;
    }
    Ok(())
}

/// Optimistic concurrency: the stream's current version, if the event's expectation holds.
fn check_version(ctx: &Ctx<'_>, stage: &Stage, delta: &Delta, event: &PreparedEvent) -> Result<u64, AppendError> {
    let stream = &event.parsed.header.stream;
    let current = match delta.overlay.streams.get(stream).or_else(|| stage.overlay.streams.get(stream)) {
        Some(v) => *v,
        None if stage.is_new => 0,
        None => read_stream_version(ctx.inner, stage.tid, stream).map_err(storage)?,
    };
    let matches = match event.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current == 0,
        ExpectedVersion::Exact(v) => current == v,
    };
    if !matches {
        return Err(AppendError::VersionConflict {
            index: event.index,
            stream: stream.clone(),
            expected: event.expected,
            actual: current,
        });
    }
    Ok(current)
}

/// The administrative effect of the event at `seq`, checked against the staged state; a
/// redaction stages its target's new row and the duty to erase the old one here.
fn admin_effect_at(
    ctx: &Ctx<'_>,
    stage: &Stage,
    delta: &mut Delta,
    event: &PreparedEvent,
    seq: u64,
) -> Result<AdminEffect, AppendError> {
    let (index, tid) = (event.index, stage.tid);
    let precondition = |reason: String| AppendError::Precondition { index, reason };
    let effect = event
        .admin
        .clone()
        .and_then(|intent| crate::registry::effect_at(intent, seq))
        .map_err(|reason| AppendError::Invalid { index, source: InvalidEvent::new("data", reason) })?;
    match &effect {
        AdminEffect::Register(record) => {
            let id = KeyId::from_hex(&record.key_id).map_err(|e| precondition(e.to_string()))?;
            check_effect(&effect, key_record(ctx, stage, &delta.overlay, &id)).map_err(precondition)?;
        }
        AdminEffect::Revoke(id) => {
            check_effect(&effect, key_record(ctx, stage, &delta.overlay, id)).map_err(precondition)?;
        }
        AdminEffect::Redact(target) => {
            if delta.overlay.redacted.contains(target) || stage.overlay.redacted.contains(target) {
                return Err(precondition(format!("seq {target} is already redacted")));
            }
            let staged = delta.overlay.entries.get(target).or_else(|| stage.overlay.entries.get(target)).cloned();
            let target_entry = match staged {
                Some(staged) => staged,
                None => {
                    let entry = read_entry(ctx.inner, tid, *target).map_err(storage)?;
                    let Some(envelope) = entry.envelope() else {
                        return Err(precondition(format!("seq {target} is already redacted")));
                    };
                    let event_type = match &event.redact_target_type {
                        Some(event_type) => event_type.clone(),
                        // Committed after this request was prepared (two requests in flight
                        // together): the one case the writer thread reads a body.
                        None => {
                            ParsedEvent::parse(&envelope.payload)
                                .map_err(|e| AppendError::Corrupted { seq: *target, reason: e.to_string() })?
                                .header
                                .event_type
                        }
                    };
                    StagedEntry {
                        recorded_at: entry.recorded_at,
                        prev_hash: entry.prev_hash,
                        payload_hash: entry.payload_hash,
                        entry_hash: entry.entry_hash,
                        event_type,
                    }
                }
            };
            if EventClass::of(&target_entry.event_type) == EventClass::Administrative {
                return Err(precondition(format!(
                    "seq {target} is a {} event; administrative events cannot be redacted (the key registry must stay verifiable)",
                    target_entry.event_type
                )));
            }
            delta.ops.push(Op {
                cf: CF_ENTRIES,
                key: seq_key(tid, *target).to_vec(),
                value: encode_entry_value(
                    target_entry.recorded_at,
                    &target_entry.prev_hash,
                    &target_entry.payload_hash,
                    &target_entry.entry_hash,
                    EncodedBody::Redacted(seq),
                ),
            });
            // The duty to erase the old version from the store's files, as durable as the
            // redaction itself (erasure.rs).
            delta.ops.push(Op { cf: CF_META, key: erase_key(tid, *target), value: seq.to_be_bytes().to_vec() });
            delta.overlay.redacted.insert(*target);
        }
        AdminEffect::None => {}
    }
    Ok(effect)
}

/// The entry at the delta's head, its event-id and stream rows, and the tree nodes it
/// completes; returns its entry hash and `recordedAt`. (The stream's head row is written once
/// per group, by [`stage_group`].)
fn write_entry(tid: u32, now: u64, delta: &mut Delta, event: &PreparedEvent, version: u64) -> (Hash32, u64) {
    let (seq, header) = (delta.head.size, &event.parsed.header);
    let recorded_at = now.max(delta.head.last_recorded_at);
    let prev_hash = delta.head.chain_head;
    let hash = entry_hash(seq, recorded_at, &prev_hash, &event.payload_hash);
    delta.ops.push(Op {
        cf: CF_ENTRIES,
        key: seq_key(tid, seq).to_vec(),
        value: encode_entry_value(
            recorded_at,
            &prev_hash,
            &event.payload_hash,
            &hash,
            EncodedBody::Envelope(&event.envelope_bytes),
        ),
    });
    delta.ops.push(Op {
        cf: CF_EVENT_IDS,
        key: event_id_key(tid, &header.event_id),
        value: encode_event_id_value(seq, &event.payload_digest).to_vec(),
    });
    delta.ops.push(Op {
        cf: CF_STREAMS,
        key: stream_key(tid, &header.stream, version),
        value: seq.to_be_bytes().to_vec(),
    });
    let tree = &mut delta.tree;
    delta
        .frontier
        .push(LogHasher::hash_leaf(&hash), |level, index, node| tree.push((tree_key(tid, level, index), *node)));
    (hash, recorded_at)
}

/// A registration or revocation's row in the tenant's registry.
fn record_admin_effect(
    ctx: &Ctx<'_>,
    stage: &Stage,
    delta: &mut Delta,
    effect: AdminEffect,
    index: usize,
    seq: u64,
) -> Result<(), AppendError> {
    let precondition = |reason: String| AppendError::Precondition { index, reason };
    let (id, record) = match effect {
        AdminEffect::Register(record) => {
            (KeyId::from_hex(&record.key_id).map_err(|e| precondition(e.to_string()))?, record)
        }
        AdminEffect::Revoke(id) => {
            let mut record = key_record(ctx, stage, &delta.overlay, &id)
                .cloned()
                .ok_or_else(|| precondition(format!("key {id} is not registered in this tenant")))?;
            record.revoked_at = Some(seq);
            (id, record)
        }
        AdminEffect::Redact(_) | AdminEffect::None => return Ok(()),
    };
    delta.ops.push(Op { cf: CF_KEYS, key: registry_key(stage.tid, &id.0).to_vec(), value: key_record_json(&record)? });
    delta.overlay.keys.insert(id, record);
    Ok(())
}

/// A key's record as of this position: this request's changes, then the group's staged ones,
/// then the committed registry.
fn key_record<'b>(ctx: &Ctx<'b>, stage: &'b Stage, delta: &'b Overlay, id: &KeyId) -> Option<&'b KeyRecord> {
    delta.keys.get(id).or_else(|| stage.overlay.keys.get(id)).or_else(|| ctx.state.and_then(|s| s.keys.get(id)))
}

fn key_record_json(record: &KeyRecord) -> Result<Vec<u8>, AppendError> {
    serde_json::to_vec(record).map_err(|e| AppendError::Storage(format!("encoding key record: {e}")))
}

fn storage(e: ReadError) -> AppendError {
    match e {
        ReadError::Corrupted { seq, reason } => AppendError::Corrupted { seq, reason },
        ReadError::CorruptedRow { row, reason } => AppendError::CorruptedRow { row, reason },
        other => AppendError::Storage(other.to_string()),
    }
}

fn event_id_row(event_id: &str) -> String {
    format!("event id index row of {:?}", crate::error::clip(event_id))
}

/// A stream's version (0: no events yet) as committed.
pub(crate) fn read_stream_version(inner: &Inner, tid: u32, stream: &str) -> Result<u64, ReadError> {
    let row = || format!("stream head of {:?}", crate::error::clip(stream));
    match inner
        .db
        .get_pinned_cf(inner.cf(CF_STREAM_HEADS), stream_head_key(tid, stream))
        .map_err(ReadError::rocksdb_at_row(row()))?
    {
        None => Ok(0),
        Some(v) => Ok(u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| ReadError::CorruptedRow { row: row(), reason: "not a u64 version".into() })?,
        )),
    }
}
