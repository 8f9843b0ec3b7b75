//! Step 3 of an append, on the writer thread: a staged group becomes durable, then visible,
//! then answered. [`run`] drains the queue into groups; [`commit_group_at`] stages a group
//! ([`super::stage::stage_group`]), builds its one `WriteBatch` (the staged rows, then each
//! touched tenant's head and signed checkpoint), makes it durable through [`make_durable`] —
//! the write to RocksDB, unsynced, beside the anchor's record of the group, fsynced — and only
//! then [`publish`]es the new committed state, runs the commit listeners and answers every
//! request.
//!
//! [`make_durable`] is the storage seam under the writer: the points where a disk can fail a
//! commit (before either write; RocksDB's write; the anchor's, made at the same time) are where
//! `Config::commit_fault` injects failures in tests. A failure at any poisons the writer:
//! nothing is answered as stored, yet after a failure of one of the two writes the other may
//! have reached the disk — the store then holds entries no client was told about, or the next
//! open replays them from the anchor — which the recovery rules allow (acknowledged ≤ anchored
//! ≤ durable in RocksDB + the anchor's records).

use std::collections::HashMap;

use crossbeam_channel::Receiver;

use super::prepare::{Job, Reply};
use super::record::RecordJob;
use super::stage::{stage_group, Stage, StagedGroup};
use crate::checkpoint::SignedCheckpoint;
use crate::error::AppendError;
use crate::merkle::Frontier;
use crate::store::anchor::AnchoredHead;
use crate::store::layout::*;
use crate::store::{sign_checkpoint, CommitPoint, CommitStats, Inner, Receipt, TenantState};

/// One row of a group's `WriteBatch`.
pub(super) struct Op {
    pub(super) cf: &'static str,
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
}

/// What the writer thread is given: an append request, or a replicated record to apply.
#[derive(Debug)]
pub(crate) enum Work {
    /// An append request, grouped with whatever else is queued.
    Append(Job),
    /// A replicated record: a commit group of its own, at its own time.
    Record(RecordJob),
}

/// The writer's helper thread (`ledger-store-writer`): writes a group's batch to RocksDB while
/// the writer makes the group's anchor record durable ([`make_durable`]). One batch at a time:
/// the writer takes each answer before its next group, so RocksDB's writes keep their order.
pub(super) struct StoreWriter {
    batches: crossbeam_channel::Sender<rocksdb::WriteBatch>,
    results: Receiver<Result<(), String>>,
}

impl StoreWriter {
    /// Hands `batch` to the helper; gives it back when the helper is gone (it panicked).
    fn start(&self, batch: rocksdb::WriteBatch) -> Result<(), rocksdb::WriteBatch> {
        self.batches.send(batch).map_err(|e| e.into_inner())
    }

    /// The answer of the write [`StoreWriter::start`] handed over.
    fn finish(&self) -> Result<(), String> {
        self.results.recv().unwrap_or_else(|_| Err("the store writer thread is gone".to_owned()))
    }
}

/// The writer thread: drains the queue into commit groups until every sender is gone, with its
/// helper ([`StoreWriter`]) beside it for as long. A record ends the group being gathered and
/// is applied on its own, in queue order.
pub(crate) fn run(inner: &Inner, receiver: &Receiver<Work>) {
    std::thread::scope(|scope| {
        let (batches, to_write) = crossbeam_channel::bounded::<rocksdb::WriteBatch>(1);
        let (written, results) = crossbeam_channel::bounded(1);
        let helper = std::thread::Builder::new().name("ledger-store-writer".into()).spawn_scoped(scope, move || {
            for batch in to_write {
                let result = inner.db.write_opt(batch, &rocksdb::WriteOptions::default()).map_err(|e| e.to_string());
                if written.send(result).is_err() {
                    return;
                }
            }
        });
        let store = match helper {
            Ok(_) => Some(StoreWriter { batches, results }),
            Err(error) => {
                // Correct without it, one write after the other: only slower.
                tracing::warn!(%error, "no store writer thread; RocksDB's writes and the anchor's will not overlap");
                None
            }
        };
        // Dropped at the end of this closure, which ends the helper before the scope joins it.
        write_groups(inner, receiver, store.as_ref());
    });
}

fn write_groups(inner: &Inner, receiver: &Receiver<Work>, store: Option<&StoreWriter>) {
    let mut commit_number = 0u64;
    let mut next: Option<Work> = None;
    loop {
        let first = match next.take() {
            Some(work) => work,
            None => match receiver.recv() {
                Ok(work) => work,
                Err(_) => return,
            },
        };
        let first = match first {
            Work::Record(job) => {
                super::record::apply(inner, store, job, commit_number);
                commit_number += 1;
                continue;
            }
            Work::Append(job) => job,
        };
        let mut count = first.events.events.len();
        let mut jobs = vec![first];
        while count < inner.config.max_group_events {
            match receiver.try_recv() {
                Ok(Work::Append(job)) => {
                    count += job.events.events.len();
                    jobs.push(job);
                }
                Ok(record) => {
                    next = Some(record);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(reason) = inner.poisoned.lock().clone() {
            for job in jobs {
                job.reply.send(Err(AppendError::Poisoned(reason.clone())));
            }
            continue;
        }
        commit_group_at(inner, store, jobs, commit_number, inner.config.clock.now_ns(), None);
        commit_number += 1;
    }
}

/// Stages and commits one group at `now` (the clock's, or a replicated record's). `applied`, a
/// replicated record's position, is written in the group's own batch, even when no request of
/// the group stored anything: after a crash the store says exactly which record it applied last.
pub(super) fn commit_group_at(
    inner: &Inner,
    store: Option<&StoreWriter>,
    jobs: Vec<Job>,
    commit_number: u64,
    now: u64,
    applied: Option<&[u8]>,
) {
    // A hint for whoever awaits an answer: are others appending? (`super::spin`)
    inner.spin.note_group(jobs.len());
    // A lone request queued before its signatures were verified is staged (and its checkpoints
    // signed) meanwhile, and its verdict waited for just before the write; in a larger group
    // every verdict is waited for first (`super::verdict`).
    let (jobs, unverified) = super::verdict::settle(jobs, |job| job.verdict.take());
    let StagedGroup { stages, ops, answers } = stage_group(inner, jobs, now);
    let touched: Vec<(&String, &Stage)> = stages.iter().filter(|(_, s)| s.touched).collect();
    let mut checkpoints = HashMap::new();
    if !touched.is_empty() || applied.is_some() {
        let mut batch = rocksdb::WriteBatch::default();
        if let Some(applied) = applied {
            batch.put_cf(inner.cf(CF_META), META_APPLIED, applied);
        }
        for op in &ops {
            batch.put_cf(inner.cf(op.cf), &op.key, &op.value);
        }
        for (name, stage) in &touched {
            if stage.is_new {
                batch.put_cf(inner.cf(CF_META), tenant_key(name), stage.tid.to_be_bytes());
            }
            batch.put_cf(inner.cf(CF_META), head_key(stage.tid), stage.head.encode());
            let checkpoint = sign_checkpoint(inner, name, stage.head.size, stage.frontier.root());
            batch.put_cf(inner.cf(CF_CHECKPOINTS), seq_key(stage.tid, stage.head.size), checkpoint.note.as_bytes());
            checkpoints.insert((*name).clone(), checkpoint);
        }
        let anchored: Vec<(u32, AnchoredHead)> = touched
            .iter()
            .map(|(_, s)| (s.tid, AnchoredHead { size: s.head.size, chain_head: s.head.chain_head }))
            .collect();
        if unverified.is_some_and(|verdict| !verdict.wait()) {
            // Forged, or its submitter gone: nothing of the group is written or published, and
            // its one request is not answered (its submitter answers `BadSignature`).
            tracing::debug!("a lone request's signatures failed after its group was staged; group discarded");
            return;
        }
        let started = std::time::Instant::now();
        let redacted = touched.iter().any(|(_, stage)| !stage.overlay.redacted.is_empty());
        let result = make_durable(inner, store, batch, &anchored, redacted, commit_number);
        if let Some(observer) = &inner.config.observer {
            observer.on_commit(&CommitStats {
                requests: answers.len(),
                entries: touched.iter().map(|(_, s)| s.new_entries).sum(),
                write_duration: started.elapsed(),
                ok: result.is_ok(),
            });
        }
        if let Err(reason) = result {
            // Never retry an fsync and pretend the data is safe: refuse appends until reopen.
            tracing::error!(%reason, "commit failed; ledger writer poisoned");
            *inner.poisoned.lock() = Some(reason.clone());
            for (reply, _) in answers {
                reply.send(Err(AppendError::Poisoned(reason.clone())));
            }
            return;
        }
        // Durable, not yet visible: every size a reader can see is covered (`fresh`).
        hand_over(inner, &touched, ops);
    }
    publish(inner, stages, checkpoints, answers);
}

/// Moves the group's new entry rows to the in-process follower's hand-over (`fresh`): each
/// touched tenant's run `head.size - new_entries..head.size`, exactly the bytes just written.
/// A tenant whose group redacted an entry is dropped instead.
fn hand_over(inner: &Inner, touched: &[(&String, &Stage)], ops: Vec<Op>) {
    let mut fresh = inner.fresh.lock();
    if !fresh.holding() {
        return;
    }
    let mut runs: HashMap<u32, (u64, Vec<Vec<u8>>)> = touched
        .iter()
        .filter(|(_, stage)| stage.new_entries > 0)
        .map(|(_, stage)| (stage.tid, (stage.head.size - stage.new_entries as u64, Vec::new())))
        .collect();
    for (_, stage) in touched {
        if !stage.overlay.redacted.is_empty() {
            fresh.drop_tenant(stage.tid);
            runs.remove(&stage.tid);
        }
    }
    for op in ops {
        if op.cf != CF_ENTRIES {
            continue;
        }
        let (Some(tid), Some(seq)) = (tid_of_key(&op.key), seq_of_key(&op.key)) else {
            continue;
        };
        if let Some((first, rows)) = runs.get_mut(&tid) {
            // New entries are staged in seq order; anything else (a redaction's rewrite of an
            // older row is excluded above) breaks the run, which is then not handed over.
            if seq == *first + rows.len() as u64 {
                rows.push(op.value);
            } else if seq >= *first {
                runs.remove(&tid);
            }
        }
    }
    for (tid, (first, rows)) in runs {
        fresh.push(tid, first, rows);
    }
}

/// The storage seam: the group's batch written to RocksDB without a sync, and its record —
/// the touched tenants' heads and the batch's bytes — appended to the anchor and `fdatasync`ed:
/// one flush per commit, before any receipt (`store::anchor`, the log of record).
///
/// The two writes overlap: the helper ([`StoreWriter`]) writes the batch while this thread
/// writes and flushes the record, and the group is durable when both have returned. Either may
/// reach the disk without the other, and the recovery rules take both (docs/format.md, "Crash
/// analysis"): a store ahead of its anchor opens as it is; a group the anchor holds and RocksDB
/// lacks is replayed at open. A record that does not fit rolls the anchor, which claims every
/// group durable in RocksDB: that group is written first, then recorded, one after the other,
/// as is every group when there is no helper.
///
/// A group that touched no tenant (a replicated record whose requests all failed: only its
/// position) anchors nothing and is written with `sync=true`.
fn make_durable(
    inner: &Inner,
    store: Option<&StoreWriter>,
    batch: rocksdb::WriteBatch,
    anchored: &[(u32, AnchoredHead)],
    redacted: bool,
    commit_number: u64,
) -> Result<(), String> {
    let fault = |point| inner.config.commit_fault.as_ref().is_some_and(|fault| fault(commit_number, point));
    if fault(CommitPoint::Write) {
        return Err("injected commit failure before the write (test fault)".to_owned());
    }
    if anchored.is_empty() {
        let mut options = rocksdb::WriteOptions::default();
        options.set_sync(true);
        return inner.db.write_opt(batch, &options).map_err(|e| e.to_string());
    }
    let write = |batch| inner.db.write_opt(batch, &rocksdb::WriteOptions::default()).map_err(|e| e.to_string());
    let store_fault = || Err("injected store write failure (test fault)".to_owned());
    let anchor_fault = || Err("injected anchor write failure (test fault)".to_owned());
    // Held across both writes: the record is encoded from the batch before RocksDB takes it.
    let mut anchor = inner.anchor.lock();
    let Some(anchor) = anchor.as_mut() else { return Err("anchor is not open".to_owned()) };
    let record = anchor.record(anchored, batch.data()).map_err(|e| format!("anchor write failed: {e}"))?;
    let sync_store = || crate::store::sync_store_wal(&inner.db);
    match store {
        Some(store) if anchor.fits(&record) => {
            let written = if fault(CommitPoint::Store) {
                drop(batch);
                Some(store_fault())
            } else {
                store.start(batch).err().map(write)
            };
            let recorded = if fault(CommitPoint::Anchor) {
                anchor_fault()
            } else {
                anchor.append_fitting(anchored, &record).map_err(|e| format!("anchor write failed: {e}"))
            };
            // Always taken, even after a failed record: the helper is then idle for the next group.
            let written = written.unwrap_or_else(|| store.finish());
            match (written, recorded) {
                (Ok(()), Ok(())) => {}
                (Err(w), Err(r)) => return Err(format!("{w}; and {r}")),
                (Err(e), _) | (_, Err(e)) => return Err(e),
            }
        }
        _ => {
            if fault(CommitPoint::Store) {
                return store_fault();
            }
            write(batch)?;
            if fault(CommitPoint::Anchor) {
                return anchor_fault();
            }
            anchor.append_record(anchored, &record, &sync_store).map_err(|e| format!("anchor write failed: {e}"))?;
        }
    }
    if redacted {
        // The redacted payload may be in an earlier group's record: none may stay in the files.
        anchor.scrub(&sync_store).map_err(|e| format!("anchor scrub after a redaction failed: {e}"))?;
    }
    Ok(())
}

/// Durable: publishes the new committed state, wakes waiters and the eraser, answers every
/// request, then runs the commit listeners.
fn publish(
    inner: &Inner,
    stages: HashMap<String, Stage>,
    mut checkpoints: HashMap<String, SignedCheckpoint>,
    answers: Vec<(Reply, Vec<Receipt>)>,
) {
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
    // Listeners (quick by contract: they wake live tails) run before the receipts, so whoever
    // holds a receipt knows every listener has seen its entry.
    {
        let listeners = inner.listeners.read();
        for (name, size) in &grown {
            for listener in listeners.iter() {
                listener(name, *size);
            }
        }
    }
    for (reply, receipts) in answers {
        reply.send(Ok(receipts));
    }
}
