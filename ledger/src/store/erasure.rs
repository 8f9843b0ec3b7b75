//! Erasure: after an `EntryRedacted` commits, the redacted payload's bytes leave the store's
//! files, not only its reads.
//!
//! A redaction overwrites the entry's row (`entries`, `tid‖seq`) with a body that holds no
//! payload. RocksDB keeps the overwritten version until something rewrites the files that hold
//! it: the memtable and the WAL files written since the last flush, and any SST the row was
//! flushed or compacted into. Left alone, that can be for ever (a quiet key range is never
//! compacted). So:
//!
//! 1. The redaction's WriteBatch also writes a pending-erasure row, `meta` `erase/‖tid‖seq` →
//!    the redaction's seq: the duty to erase is as durable as the redaction.
//! 2. The commit wakes the eraser thread, which (a) flushes every column family — the memtable
//!    is written out without the overwritten version, and every WAL file written before the
//!    flush becomes obsolete and is deleted (WAL archiving is off: no `WAL_ttl_seconds`, no
//!    size limit, no recycling) — then (b) compacts the row's key range in `entries` at every
//!    level, bottommost included (`BottommostLevelCompaction::Force`), so every SST that held
//!    the old version is rewritten without it and deleted, and (c) deletes the pending rows
//!    (synced).
//! 3. At open, pending rows left by a crash are erased again before anything else waits on
//!    them. [`pending`] counts them for `ledger-audit` and the metrics.
//!
//! The bound: an erasure finishes one flush and one range compaction after the redaction
//! commits (milliseconds to seconds), and within one open after a crash. One thing can delay
//! it: a reader holding an iterator that was created before the compaction (a long `Read` or
//! a `Subscribe` catch-up) keeps the old SST files alive until it finishes; RocksDB deletes
//! them then. What the ledger cannot reach is listed in docs/format.md, "Erasure" (exports and
//! backups made before the redaction, `db.before-salvage-*` copies, freed filesystem blocks).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use super::layout::{seq_key, seq_of_key, tid_of_key, ALL_CFS, CF_ENTRIES, CF_META};
use super::Inner;

/// Key prefix of pending-erasure rows in `meta`.
pub(crate) const ERASE_PREFIX: &[u8] = b"erase/";

/// `erase/‖tid‖seq`: the entry at `seq` of tenant `tid` waits for its old versions to go.
pub(crate) fn erase_key(tid: u32, seq: u64) -> Vec<u8> {
    let mut key = ERASE_PREFIX.to_vec();
    key.extend_from_slice(&seq_key(tid, seq));
    key
}

/// The eraser thread's mailbox.
#[derive(Debug)]
pub(crate) struct Signal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

#[derive(Debug)]
struct SignalState {
    /// A redaction committed since the last pass began.
    woken: bool,
    /// A pass is running (true from open: the first pass starts with the thread).
    running: bool,
    /// Rows still pending after the last pass.
    pending: usize,
    stop: bool,
}

impl Default for Signal {
    fn default() -> Self {
        Self {
            state: Mutex::new(SignalState { woken: false, running: true, pending: 0, stop: false }),
            changed: Condvar::new(),
        }
    }
}

impl Signal {
    /// A redaction committed: run a pass. Called before the redaction's receipt is sent, so a
    /// caller holding the receipt and waiting with [`Signal::wait_idle`] waits for its pass.
    pub(crate) fn wake(&self) {
        self.state.lock().woken = true;
        self.changed.notify_all();
    }

    /// Ends the thread after its current pass.
    pub(crate) fn stop(&self) {
        self.state.lock().stop = true;
        self.changed.notify_all();
    }

    /// Blocks until no pass is owed or running and nothing is pending, or `timeout` passes;
    /// returns the pending count (0: every committed redaction is erased).
    pub(crate) fn wait_idle(&self, timeout: Duration) -> usize {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.state.lock();
        while state.woken || state.running || state.pending > 0 {
            if state.stop || self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.pending.max(usize::from(state.woken || state.running));
            }
        }
        0
    }
}

/// The eraser thread: one pass at start (erasures a crash left pending), then one per wake-up;
/// a pass that failed or left rows pending is retried after a pause.
pub(crate) fn run(inner: &Arc<Inner>) {
    loop {
        let count = match erase_pending(inner) {
            Ok(count) => count,
            Err(reason) => {
                // Nothing is lost: the rows stay pending and are retried.
                tracing::error!(%reason, "erasing redacted payloads failed; will retry");
                pending(inner).unwrap_or(usize::MAX).max(1)
            }
        };
        if let Some(observer) = &inner.config.observer {
            observer.on_erasures_pending(count);
        }
        let mut state = inner.erasure.state.lock();
        state.running = false;
        state.pending = count;
        inner.erasure.changed.notify_all();
        let retry_at = (count > 0).then(|| std::time::Instant::now() + Duration::from_secs(5));
        while !state.woken && !state.stop {
            match retry_at {
                Some(at) => {
                    if inner.erasure.changed.wait_until(&mut state, at).timed_out() {
                        break;
                    }
                }
                None => inner.erasure.changed.wait(&mut state),
            }
        }
        if state.stop {
            return;
        }
        state.woken = false;
        state.running = true;
    }
}

/// A pending-erasure row: the tenant id, the seq, and the row's key.
type PendingRow = (u32, u64, Box<[u8]>);

/// Pending-erasure rows, read from `meta`.
fn pending_rows(inner: &Inner) -> Result<Vec<PendingRow>, String> {
    let mut rows = Vec::new();
    let iter =
        inner.db.iterator_cf(inner.cf(CF_META), rocksdb::IteratorMode::From(ERASE_PREFIX, rocksdb::Direction::Forward));
    for item in iter {
        let (key, _) = item.map_err(|e| e.to_string())?;
        let Some(rest) = key.strip_prefix(ERASE_PREFIX) else { break };
        let (Some(tid), Some(seq)) = (tid_of_key(rest), seq_of_key(rest)) else {
            return Err(format!("malformed pending-erasure row {}", hex::encode(&key)));
        };
        rows.push((tid, seq, key));
    }
    Ok(rows)
}

/// Waits until RocksDB runs no flush or compaction, or `timeout` passes.
fn wait_for_background_work(inner: &Inner, timeout: Duration) {
    let deadline = std::time::Instant::now() + timeout;
    let busy = || {
        ["rocksdb.num-running-flushes", "rocksdb.num-running-compactions"]
            .iter()
            .any(|property| inner.db.property_int_value(*property).ok().flatten().unwrap_or(0) > 0)
    };
    while busy() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many redacted entries still have old versions to erase.
pub(crate) fn pending(inner: &Inner) -> Result<usize, String> {
    pending_rows(inner).map(|rows| rows.len())
}

/// One pass: flush, compact each pending row's range at every level, clear the rows. Returns
/// how many rows are pending afterwards (0 on success).
fn erase_pending(inner: &Inner) -> Result<usize, String> {
    let rows = pending_rows(inner)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    // (a) Every column family: the WAL is shared, so a WAL file is deleted only once every
    // column family with data in it has flushed.
    let mut flush = rocksdb::FlushOptions::default();
    flush.set_wait(true);
    for name in ALL_CFS {
        inner.db.flush_cf_opt(inner.cf(name), &flush).map_err(|e| format!("flushing {name}: {e}"))?;
    }
    // (b) Each row's range at every level, bottommost included.
    let mut compact = rocksdb::CompactOptions::default();
    compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
    compact.set_exclusive_manual_compaction(false);
    for (tid, seq, _) in &rows {
        let from = seq_key(*tid, *seq);
        let to = seq_key(*tid, seq.saturating_add(1));
        inner.db.compact_range_cf_opt(inner.cf(CF_ENTRIES), Some(from), Some(to), &compact);
    }
    // The flushes may have started background compactions of their own; the obsolete files of
    // any job are deleted when it ends. Wait for them (bounded): when the pass reports done,
    // the files on disk are the ones that stay (and a copy of the dir taken then is stable).
    wait_for_background_work(inner, Duration::from_secs(30));
    // (c) Done: the rows go, durably.
    let mut batch = rocksdb::WriteBatch::default();
    for (_, _, key) in &rows {
        batch.delete_cf(inner.cf(CF_META), key);
    }
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    inner.db.write_opt(batch, &sync).map_err(|e| format!("clearing pending erasures: {e}"))?;
    tracing::info!(
        entries = rows.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "redacted payloads erased from the store's files"
    );
    Ok(0)
}
