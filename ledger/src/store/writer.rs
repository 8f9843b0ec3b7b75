//! The append pipeline: validation and signature checks on the caller's thread, then one
//! writer thread that group-commits every pending request into a single `sync=true`
//! `WriteBatch`.
//!
//! Ordering and atomicity: the writer processes requests in arrival order. Each request is
//! staged into a request-local delta over the group's staged state; a request that fails any
//! check is answered with its error and its delta dropped, so it leaves nothing behind. After
//! the batch is durable, the in-memory committed state is updated and then every request in
//! the group is answered: no receipt is ever sent for data that is not on disk.

use std::collections::{HashMap, HashSet};

use crossbeam_channel::{Receiver, Sender};
use ed25519_dalek::{Signature, VerifyingKey};

use super::anchor::AnchoredHead;
use super::erasure::erase_key;
use super::layout::*;
use super::{read_entry, sign_checkpoint, AppendEvent, CommitStats, ExpectedVersion, Inner, Receipt, TenantState};
use crate::envelope::EVENT_PAYLOAD_TYPE;
use crate::error::{AppendError, InvalidEvent, ReadError};
use crate::event::{EventClass, ParsedEvent, AGENT_KEY_REGISTERED};
use crate::hash::{entry_hash, payload_hash, Hash32, GENESIS_PREV_HASH};
use crate::keys::{public_key_from_base64, KeyId};
use crate::merkle::{Blake3Hasher, Frontier, TreeHasher};
use crate::registry::{admin_effect, authorize, check_effect, AdminEffect, Denial, KeyRecord};
use crate::signatures::first_bad_signature;

/// A validated, signature-checked event waiting for the writer.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    index: usize,
    envelope_bytes: Vec<u8>,
    payload_hash: Hash32,
    /// BLAKE3 of the payload alone: the idempotency comparison.
    payload_digest: Hash32,
    key_id: KeyId,
    parsed: ParsedEvent,
    expected: ExpectedVersion,
}

/// One append request, prepared.
#[derive(Debug)]
pub(crate) struct PreparedRequest {
    tenant: String,
    events: Vec<PreparedEvent>,
}

/// Where a request's answer goes.
pub(crate) type Reply = Sender<Result<Vec<Receipt>, AppendError>>;

/// A request and where to send its answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) events: PreparedRequest,
    pub(crate) reply: Reply,
}

/// Validates every event of a request and checks its signature (batched); runs on the caller's
/// thread so that concurrent appenders verify in parallel.
pub(crate) fn prepare(inner: &Inner, events: Vec<AppendEvent>) -> Result<PreparedRequest, AppendError> {
    if events.is_empty() {
        return Err(AppendError::BadRequest("an append needs at least one event".into()));
    }
    if events.len() > inner.config.max_events_per_append {
        return Err(AppendError::TooManyEvents { count: events.len(), limit: inner.config.max_events_per_append });
    }
    let invalid = |index, field, reason: &str| AppendError::Invalid { index, source: InvalidEvent::new(field, reason) };
    let mut tenant: Option<String> = None;
    let mut request_keys: HashMap<KeyId, VerifyingKey> = HashMap::new();
    let mut prepared = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    let mut signatures = Vec::with_capacity(events.len());
    let mut public_keys = Vec::with_capacity(events.len());
    for (index, event) in events.into_iter().enumerate() {
        let mut envelope = event.envelope;
        if envelope.payload.len() > inner.config.max_payload_bytes {
            return Err(AppendError::PayloadTooLarge {
                index,
                size: envelope.payload.len(),
                limit: inner.config.max_payload_bytes,
            });
        }
        if envelope.payload_type != EVENT_PAYLOAD_TYPE {
            return Err(invalid(index, "payloadType", &format!("must be {EVENT_PAYLOAD_TYPE:?}")));
        }
        let [signature] = envelope.signatures.as_slice() else {
            return Err(invalid(index, "signatures", "exactly one signature is required"));
        };
        let sig = Signature::from_slice(&signature.sig)
            .map_err(|_| invalid(index, "signatures.sig", "must be a 64-byte Ed25519 signature"))?;
        let parsed = ParsedEvent::parse(&envelope.payload).map_err(|source| AppendError::Invalid { index, source })?;
        match &tenant {
            None => tenant = Some(parsed.header.tenant.clone()),
            Some(t) if *t != parsed.header.tenant => {
                return Err(AppendError::BadRequest(format!(
                    "event {index} is for tenant {:?}, the request for {t:?}: an atomic append is for one tenant",
                    parsed.header.tenant
                )))
            }
            Some(_) => {}
        }
        // DSSE's keyid is an unauthenticated hint. The ledger's own (the hex SHA-256 of the raw
        // key) selects the key directly; any other hint (empty, upper-case, securesystemslib's
        // default) falls back to the keys registered to the agent the signed body names, and
        // the stored envelope carries the ledger's key id, so the log reads the same either way.
        let hinted = KeyId::from_hex(&signature.keyid)
            .ok()
            .and_then(|key_id| resolve_key(inner, &key_id, &request_keys).map(|key| (key_id, key)));
        let (key_id, public_key) = match hinted {
            Some(found) => found,
            None => {
                let message = envelope.signed_bytes();
                signer_by_agent(inner, &parsed, &message, &sig)?.ok_or_else(|| AppendError::UnknownKey {
                    index,
                    key_id: format!(
                        "{:?} (no key has this id, and no unrevoked key of agent {:?} in tenant {:?} made the \
                         signature)",
                        crate::error::clip(&signature.keyid),
                        crate::error::clip(&parsed.header.actor.agent_id),
                        crate::error::clip(&parsed.header.tenant)
                    ),
                })?
            }
        };
        if envelope.signatures[0].keyid != key_id.to_hex() {
            envelope.signatures[0].keyid = key_id.to_hex();
        }
        if parsed.header.event_type == AGENT_KEY_REGISTERED {
            // A request may register a key and use it in a later event.
            if let Ok(Some(key)) = parsed
                .data_as::<crate::event::AgentKeyRegisteredData>()
                .map(|d| public_key_from_base64(&d.public_key).ok())
            {
                request_keys.insert(KeyId::of(&key), key);
            }
        }
        messages.push(envelope.signed_bytes());
        signatures.push(sig);
        public_keys.push(public_key);
        let envelope_bytes = envelope.to_bytes();
        prepared.push(PreparedEvent {
            index,
            payload_hash: payload_hash(&envelope_bytes),
            payload_digest: *blake3::hash(&envelope.payload).as_bytes(),
            envelope_bytes,
            key_id,
            parsed,
            expected: event.expected_version,
        });
    }
    if let Some(index) = first_bad_signature(&messages, &signatures, &public_keys) {
        return Err(AppendError::BadSignature { index, key_id: prepared[index].key_id.to_hex() });
    }
    // The domain schema is checked only for authenticated events: an unknown or forged signer
    // learns nothing about the catalogue from the error.
    if let Some(rules) = &inner.config.rules {
        for event in &prepared {
            rules.validate(&event.parsed).map_err(|source| AppendError::Invalid { index: event.index, source })?;
        }
    }
    Ok(PreparedRequest { tenant: tenant.unwrap_or_default(), events: prepared })
}

/// Registered keys of one agent tried when an envelope's keyid hint names no key; more than
/// this and the hint is required.
const MAX_AGENT_KEYS_TRIED: usize = 8;

/// The key that made `sig` among the unrevoked keys registered in the event's tenant to the
/// agent its signed body names (`None`: none did). Safe because only the signature decides: a
/// forged hint or body gains nothing, and authorisation then runs on the key that verified as
/// for any other event. Bounded ([`MAX_AGENT_KEYS_TRIED`]) so a hint-less request costs at most
/// that many verifications.
fn signer_by_agent(
    inner: &Inner,
    parsed: &ParsedEvent,
    message: &[u8],
    sig: &Signature,
) -> Result<Option<(KeyId, VerifyingKey)>, AppendError> {
    let committed = inner.committed.read();
    let Some(tenant) = committed.tenants.get(&parsed.header.tenant) else { return Ok(None) };
    let mut candidates: Vec<&KeyRecord> =
        tenant.keys.values().filter(|r| r.revoked_at.is_none() && r.agent_id == parsed.header.actor.agent_id).collect();
    if candidates.len() > MAX_AGENT_KEYS_TRIED {
        return Err(AppendError::BadRequest(format!(
            "agent {:?} has {} keys: name the signing key in the envelope's keyid (the lowercase hex SHA-256 of \
             the raw public key)",
            crate::error::clip(&parsed.header.actor.agent_id),
            candidates.len()
        )));
    }
    candidates.sort_by_key(|r| r.registered_at);
    for record in candidates {
        let Ok(key_id) = KeyId::from_hex(&record.key_id) else { continue };
        let Some(key) = committed.public_keys.get(&key_id) else { continue };
        if key.verify_strict(message, sig).is_ok() {
            return Ok(Some((key_id, *key)));
        }
    }
    Ok(None)
}

/// The public key for a key id: a root key, a key of the tenant or of another tenant (so the
/// signature is checked before the tenant is), or one registered earlier in the same request.
fn resolve_key(inner: &Inner, key_id: &KeyId, request_keys: &HashMap<KeyId, VerifyingKey>) -> Option<VerifyingKey> {
    if let Some(key) = inner.roots.root_key(key_id) {
        return Some(key);
    }
    if let Some(key) = request_keys.get(key_id) {
        return Some(*key);
    }
    // Any registered key, of this tenant or another: the signature is checked before the
    // tenant is, so a key used in the wrong tenant is reported as such, not as unknown.
    inner.committed.read().public_keys.get(key_id).copied()
}

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

/// What the group has staged for a tenant, on top of its committed state.
#[derive(Debug)]
struct Stage {
    tid: u32,
    is_new: bool,
    head: Head,
    frontier: Frontier<Blake3Hasher>,
    overlay: Overlay,
    touched: bool,
    new_entries: usize,
}

/// Changes not yet durable, looked up before the committed state.
#[derive(Debug, Default)]
struct Overlay {
    keys: HashMap<KeyId, KeyRecord>,
    streams: HashMap<String, u64>,
    event_ids: HashMap<String, (u64, Hash32)>,
    entries: HashMap<u64, StagedEntry>,
    redacted: HashSet<u64>,
}

impl Overlay {
    fn merge(&mut self, other: Overlay) {
        self.keys.extend(other.keys);
        self.streams.extend(other.streams);
        self.event_ids.extend(other.event_ids);
        self.entries.extend(other.entries);
        self.redacted.extend(other.redacted);
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

struct Op {
    cf: &'static str,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// A request's changes, kept apart until every one of its events has passed.
struct Delta {
    head: Head,
    frontier: Frontier<Blake3Hasher>,
    overlay: Overlay,
    ops: Vec<Op>,
    receipts: Vec<Receipt>,
}

/// The writer thread: drains the queue into commit groups until every sender is gone.
pub(crate) fn run(inner: &Inner, receiver: &Receiver<Job>) {
    let mut commit_number = 0u64;
    while let Ok(first) = receiver.recv() {
        let mut count = first.events.events.len();
        let mut jobs = vec![first];
        while count < inner.config.max_group_events {
            match receiver.try_recv() {
                Ok(job) => {
                    count += job.events.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if let Some(reason) = inner.poisoned.lock().clone() {
            for job in jobs {
                let _ = job.reply.send(Err(AppendError::Poisoned(reason.clone())));
            }
            continue;
        }
        commit_group(inner, jobs, commit_number);
        commit_number += 1;
    }
}

fn commit_group(inner: &Inner, jobs: Vec<Job>, commit_number: u64) {
    let now = inner.config.clock.now_ns();
    let mut stages: HashMap<String, Stage> = HashMap::new();
    let mut group_ops: Vec<Op> = Vec::new();
    let mut answers: Vec<(Reply, Vec<Receipt>)> = Vec::new();
    {
        let committed = inner.committed.read();
        let mut next_tid = committed.next_tid;
        for job in jobs {
            let tenant = job.events.tenant.clone();
            let committed_state = committed.tenants.get(&tenant);
            let stage = stages.entry(tenant.clone()).or_insert_with(|| match committed_state {
                Some(state) => Stage {
                    tid: state.tid,
                    is_new: false,
                    head: state.head,
                    frontier: state.frontier.clone(),
                    overlay: Overlay::default(),
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
                        overlay: Overlay::default(),
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
                    group_ops.extend(delta.ops);
                    answers.push((job.reply, delta.receipts));
                }
                Err(error) => {
                    let _ = job.reply.send(Err(error));
                }
            }
        }
    }

    let touched: Vec<(&String, &Stage)> = stages.iter().filter(|(_, s)| s.touched).collect();
    let mut checkpoints = HashMap::new();
    if !touched.is_empty() {
        let mut batch = rocksdb::WriteBatch::default();
        for op in &group_ops {
            batch.put_cf(inner.cf(op.cf), &op.key, &op.value);
        }
        for (name, stage) in &touched {
            if stage.is_new {
                batch.put_cf(inner.cf(CF_META), tenant_key(name), stage.tid.to_be_bytes());
            }
            batch.put_cf(inner.cf(CF_META), head_key(stage.tid), stage.head.encode());
            let checkpoint = sign_checkpoint(inner, name, &stage.head, stage.frontier.root());
            batch.put_cf(inner.cf(CF_CHECKPOINTS), seq_key(stage.tid, stage.head.size), checkpoint.note.as_bytes());
            checkpoints.insert((*name).clone(), checkpoint);
        }
        let started = std::time::Instant::now();
        let result = if inner.config.commit_fault.as_ref().is_some_and(|fault| fault(commit_number)) {
            Err("injected commit failure (test fault)".to_owned())
        } else {
            let mut options = rocksdb::WriteOptions::default();
            options.set_sync(true);
            inner.db.write_opt(batch, &options).map_err(|e| e.to_string()).and_then(|()| {
                // Durable in RocksDB; now the witness outside it, before any receipt.
                let updates: Vec<(u32, AnchoredHead)> = touched
                    .iter()
                    .map(|(_, s)| (s.tid, AnchoredHead { size: s.head.size, chain_head: s.head.chain_head }))
                    .collect();
                match inner.anchor.lock().as_mut() {
                    Some(anchor) => anchor.append(&updates).map_err(|e| format!("anchor write failed: {e}")),
                    None => Err("anchor is not open".to_owned()),
                }
            })
        };
        if let Some(observer) = &inner.config.observer {
            let entries = touched.iter().map(|(_, s)| s.new_entries).sum();
            let requests = answers.len();
            observer.on_commit(&CommitStats {
                requests,
                entries,
                write_duration: started.elapsed(),
                ok: result.is_ok(),
            });
        }
        if let Err(reason) = result {
            // Never retry an fsync and pretend the data is safe: refuse appends until reopen.
            tracing::error!(%reason, "commit failed; ledger writer poisoned");
            *inner.poisoned.lock() = Some(reason.clone());
            for (reply, _) in answers {
                let _ = reply.send(Err(AppendError::Poisoned(reason.clone())));
            }
            return;
        }
    }

    // Durable: publish the new state, then answer.
    let redacted = stages.values().any(|stage| stage.touched && !stage.overlay.redacted.is_empty());
    let mut grown: Vec<(String, u64)> = Vec::new();
    {
        let mut committed = inner.committed.write();
        for (name, stage) in stages {
            if !stage.touched {
                continue;
            }
            for (key_id, record) in &stage.overlay.keys {
                if let Some(key) = record.verifying_key() {
                    committed.public_keys.insert(*key_id, key);
                }
                if record.revoked_at.is_none() {
                    let tenants = committed.key_tenants.entry(*key_id).or_default();
                    if !tenants.contains(&name) {
                        tenants.push(name.clone());
                    }
                }
            }
            committed.next_tid = committed.next_tid.max(stage.tid + 1);
            let Some(checkpoint) = checkpoints.remove(&name) else { continue };
            let state = committed.tenants.entry(name.clone()).or_insert_with(|| TenantState {
                tid: stage.tid,
                head: stage.head,
                frontier: Frontier::default(),
                keys: HashMap::new(),
                checkpoint: checkpoint.clone(),
            });
            state.head = stage.head;
            state.frontier = stage.frontier;
            state.keys.extend(stage.overlay.keys);
            state.checkpoint = checkpoint;
            inner.sizes.lock().insert(name.clone(), stage.head.size);
            grown.push((name, stage.head.size));
        }
    }
    inner.grew.notify_all();
    if redacted {
        // Before the receipts: whoever holds one can wait for its erasure.
        inner.erasure.wake();
    }
    for (reply, receipts) in answers {
        let _ = reply.send(Ok(receipts));
    }
    let listeners = inner.listeners.read();
    for (name, size) in &grown {
        for listener in listeners.iter() {
            listener(name, *size);
        }
    }
}

struct Ctx<'a> {
    inner: &'a Inner,
    committed: &'a super::Committed,
    state: Option<&'a TenantState>,
    tenant: &'a str,
    now: u64,
}

fn stage_request(ctx: &Ctx<'_>, stage: &Stage, events: Vec<PreparedEvent>) -> Result<Delta, AppendError> {
    let mut delta = Delta {
        head: stage.head,
        frontier: stage.frontier.clone(),
        overlay: Overlay::default(),
        ops: Vec::new(),
        receipts: Vec::with_capacity(events.len()),
    };
    for event in events {
        let receipt = stage_event(ctx, stage, &mut delta, event)?;
        delta.receipts.push(receipt);
    }
    Ok(delta)
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

fn stage_event(ctx: &Ctx<'_>, stage: &Stage, delta: &mut Delta, event: PreparedEvent) -> Result<Receipt, AppendError> {
    let index = event.index;
    let header = &event.parsed.header;
    let tid = stage.tid;

    // Idempotency: the same eventId with the same payload returns the original receipt.
    let existing =
        match delta.overlay.event_ids.get(&header.event_id).or_else(|| stage.overlay.event_ids.get(&header.event_id)) {
            Some(found) => Some(*found),
            None if !stage.is_new => ctx
                .inner
                .db
                .get_pinned_cf(ctx.inner.cf(CF_EVENT_IDS), event_id_key(tid, &header.event_id))
                .map_err(|e| storage(ReadError::rocksdb_at_row(event_id_row(&header.event_id))(e)))?
                .map(|v| {
                    decode_event_id_value(&v)
                        .map_err(|e| AppendError::CorruptedRow { row: event_id_row(&header.event_id), reason: e.0 })
                })
                .transpose()?,
            None => None,
        };
    if let Some((seq, digest)) = existing {
        if digest != event.payload_digest {
            return Err(AppendError::EventIdConflict { index, event_id: header.event_id.clone(), existing_seq: seq });
        }
        let (entry_hash, recorded_at) =
            match delta.overlay.entries.get(&seq).or_else(|| stage.overlay.entries.get(&seq)) {
                Some(staged) => (staged.entry_hash, staged.recorded_at),
                None => {
                    let entry = read_entry(ctx.inner, tid, seq).map_err(storage)?;
                    (entry.entry_hash, entry.recorded_at)
                }
            };
        return Ok(Receipt { tenant: ctx.tenant.to_owned(), seq, entry_hash, recorded_at, duplicate: true });
    }

    // Authorisation against the registry in force at this position.
    let key_id = event.key_id;
    let record = key_record(ctx, stage, &delta.overlay, &key_id);
    let signer = authorize(&ctx.inner.roots, &key_id, record, header).map_err(|denial| match denial {
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
        rules.authorize(&event.parsed, signer, roles).map_err(|what| AppendError::NotAllowed {
            index,
            key_id,
            what,
        })?;
    }

    // Optimistic concurrency.
    let stream = &header.stream;
    let current = match delta.overlay.streams.get(stream).or_else(|| stage.overlay.streams.get(stream)) {
        Some(v) => *v,
        None if stage.is_new => 0,
        None => read_stream_version(ctx.inner, tid, stream).map_err(storage)?,
    };
    let matches = match event.expected {
        ExpectedVersion::Any => true,
        ExpectedVersion::NoStream => current == 0,
        ExpectedVersion::Exact(v) => current == v,
    };
    if !matches {
        return Err(AppendError::VersionConflict {
            index,
            stream: stream.clone(),
            expected: event.expected,
            actual: current,
        });
    }

    let seq = delta.head.size;
    let precondition = |reason: String| AppendError::Precondition { index, reason };
    let effect = admin_effect(&ctx.inner.roots, &event.parsed, seq)
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
                    let event_type = ParsedEvent::parse(&envelope.payload)
                        .map_err(|e| AppendError::Corrupted { seq: *target, reason: e.to_string() })?
                        .header
                        .event_type;
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

    // The entry itself.
    let recorded_at = ctx.now.max(delta.head.last_recorded_at);
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
    let version = current + 1;
    delta.ops.push(Op { cf: CF_STREAMS, key: stream_key(tid, stream, version), value: seq.to_be_bytes().to_vec() });
    delta.ops.push(Op {
        cf: CF_STREAM_HEADS,
        key: stream_head_key(tid, stream),
        value: version.to_be_bytes().to_vec(),
    });
    let ops = &mut delta.ops;
    delta.frontier.push(Blake3Hasher::hash_leaf(&hash), |level, index, node| {
        ops.push(Op { cf: CF_TREE, key: tree_key(tid, level, index).to_vec(), value: node.to_vec() });
    });
    match effect {
        AdminEffect::Register(record) => {
            let id = KeyId::from_hex(&record.key_id).map_err(|e| precondition(e.to_string()))?;
            delta.ops.push(Op {
                cf: CF_KEYS,
                key: registry_key(tid, &id.0).to_vec(),
                value: key_record_json(&record)?,
            });
            delta.overlay.keys.insert(id, record);
        }
        AdminEffect::Revoke(id) => {
            let mut record = key_record(ctx, stage, &delta.overlay, &id)
                .cloned()
                .ok_or_else(|| precondition(format!("key {id} is not registered in this tenant")))?;
            record.revoked_at = Some(seq);
            delta.ops.push(Op {
                cf: CF_KEYS,
                key: registry_key(tid, &id.0).to_vec(),
                value: key_record_json(&record)?,
            });
            delta.overlay.keys.insert(id, record);
        }
        AdminEffect::Redact(_) | AdminEffect::None => {}
    }
    delta.overlay.streams.insert(stream.clone(), version);
    delta.overlay.event_ids.insert(header.event_id.clone(), (seq, event.payload_digest));
    delta.overlay.entries.insert(
        seq,
        StagedEntry {
            recorded_at,
            prev_hash,
            payload_hash: event.payload_hash,
            entry_hash: hash,
            event_type: header.event_type.clone(),
        },
    );
    delta.head = Head { size: seq + 1, chain_head: hash, last_recorded_at: recorded_at };
    Ok(Receipt { tenant: ctx.tenant.to_owned(), seq, entry_hash: hash, recorded_at, duplicate: false })
}

/// A key's record as of this position: this request's changes, then the group's staged ones,
/// then the committed registry.
fn key_record<'b>(ctx: &Ctx<'b>, stage: &'b Stage, delta: &'b Overlay, id: &KeyId) -> Option<&'b KeyRecord> {
    delta.keys.get(id).or_else(|| stage.overlay.keys.get(id)).or_else(|| ctx.state.and_then(|s| s.keys.get(id)))
}

fn key_record_json(record: &KeyRecord) -> Result<Vec<u8>, AppendError> {
    serde_json::to_vec(record).map_err(|e| AppendError::Storage(format!("encoding key record: {e}")))
}
