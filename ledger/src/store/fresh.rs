//! The hand-over of just-committed entries to one in-process follower (the projection worker),
//! so that it folds them from memory instead of reading back and re-hashing what the writer has
//! just written.
//!
//! The writer moves each committed group's entry rows (the exact bytes of the `WriteBatch`)
//! here after the group is durable and before its new size is published, so every size a
//! reader can see is covered unless the bound evicted it. [`Ledger::take_fresh_entries`] gives
//! a contiguous run of them, decoded, and forgets everything below the run's end: one consumer.
//!
//! Why the entries need no hash check here: the check on a read ([`super::read`]) is there to
//! catch what happened *below* the log (a damaged file, a bad block); these bytes never left
//! memory, and the writer computed their hashes itself (a replicated record's groups too: a
//! cluster node stages them through the same commit). Anything else still reads the store: a
//! consumer that lags beyond the bound, or starts behind the log after a restart (every path
//! falls back to [`Ledger::entries`], hashes checked).
//!
//! Redaction: a group that redacts an entry of a tenant drops everything held for that
//! tenant, so an erased payload is never handed over after its redaction commits.
//!
//! Off by default (bound 0): a ledger with no follower keeps nothing.

use std::collections::{HashMap, VecDeque};

use super::layout::decode_entry_value_unchecked;
use super::{Entry, Ledger, ReadError};

/// The entries held for each tenant (by tenant id), and the bound on their bytes.
#[derive(Debug, Default)]
pub(crate) struct Fresh {
    max_bytes: usize,
    bytes: usize,
    tenants: HashMap<u32, Run>,
}

/// A contiguous run of one tenant's encoded entries: `rows[i]` is seq `start + i`.
#[derive(Debug, Default)]
struct Run {
    start: u64,
    rows: VecDeque<Vec<u8>>,
}

impl Run {
    fn end(&self) -> u64 {
        self.start + self.rows.len() as u64
    }
}

impl Fresh {
    /// Whether a follower takes entries (the bound is not 0).
    pub(crate) fn holding(&self) -> bool {
        self.max_bytes > 0
    }

    /// Holds one group's new entry rows of tenant `tid` (seqs `first..`, in order), evicting
    /// the tenant's oldest rows first to stay within the bound; a run that does not continue
    /// the held one replaces it.
    pub(crate) fn push(&mut self, tid: u32, first: u64, rows: Vec<Vec<u8>>) {
        if self.max_bytes == 0 || rows.is_empty() {
            return;
        }
        let run = self.tenants.entry(tid).or_default();
        if run.end() != first {
            self.bytes -= run.rows.iter().map(Vec::len).sum::<usize>();
            run.rows.clear();
            run.start = first;
        }
        for row in rows {
            self.bytes += row.len();
            run.rows.push_back(row);
        }
        while self.bytes > self.max_bytes {
            let Some(oldest) = run.rows.pop_front() else { break };
            self.bytes -= oldest.len();
            run.start += 1;
        }
        if run.rows.is_empty() {
            self.tenants.remove(&tid);
        }
    }

    /// Forgets everything held for `tid` (a redaction committed there).
    pub(crate) fn drop_tenant(&mut self, tid: u32) {
        if let Some(run) = self.tenants.remove(&tid) {
            self.bytes -= run.rows.iter().map(Vec::len).sum::<usize>();
        }
    }

    /// Takes the rows `from..to` of `tid` if all of them are held, and forgets everything
    /// below `to`; `None` (forgetting what is below `from`) otherwise.
    fn take(&mut self, tid: u32, from: u64, to: u64) -> Option<(u64, Vec<Vec<u8>>)> {
        let run = self.tenants.get_mut(&tid)?;
        let stale = usize::try_from(from.saturating_sub(run.start)).unwrap_or(usize::MAX).min(run.rows.len());
        let dropped: usize = run.rows.drain(..stale).map(|row| row.len()).sum();
        run.start += stale as u64;
        self.bytes -= dropped;
        let taken = if run.start == from && to <= run.end() && from < to {
            let rows: Vec<Vec<u8>> = run.rows.drain(..(to - from) as usize).collect();
            run.start = to;
            self.bytes -= rows.iter().map(Vec::len).sum::<usize>();
            Some((from, rows))
        } else {
            None
        };
        if run.rows.is_empty() {
            self.tenants.remove(&tid);
        }
        taken
    }
}

impl Ledger {
    /// Starts (or, with 0, stops) holding up to `max_bytes` of just-committed entries for one
    /// in-process follower, which takes them with [`Ledger::take_fresh_entries`]. Only one
    /// consumer may take them: taking forgets.
    pub fn hold_fresh_entries(&self, max_bytes: usize) {
        let mut fresh = self.inner.fresh.lock();
        fresh.max_bytes = max_bytes;
        if max_bytes == 0 {
            *fresh = Fresh::default();
        }
    }

    /// The committed entries `from..to` of `tenant` from memory, if every one of them is held
    /// (see [`Ledger::hold_fresh_entries`]); `Ok(None)` means: read them with
    /// [`Ledger::entries`]. Entries below `to` are forgotten either way.
    pub fn take_fresh_entries(&self, tenant: &str, from: u64, to: u64) -> Result<Option<Vec<Entry>>, ReadError> {
        let (tid, _) = self.tenant(tenant)?;
        let Some((first, rows)) = self.inner.fresh.lock().take(tid, from, to) else { return Ok(None) };
        rows.iter()
            .zip(first..)
            .map(|(row, seq)| {
                // Bytes the writer encoded itself: a decoding failure is a bug, reported as one.
                decode_entry_value_unchecked(seq, row)
                    .map_err(|reason| ReadError::Corrupted { seq, reason: format!("held in memory: {reason}") })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; len]).collect()
    }

    #[test]
    fn a_run_is_taken_once_and_only_whole() {
        let mut fresh = Fresh { max_bytes: 1000, ..Fresh::default() };
        fresh.push(7, 10, rows(4, 10));
        assert_eq!(fresh.bytes, 40);
        // Not all of 10..15 is held: nothing is returned, nothing below 10 existed.
        assert!(fresh.take(7, 10, 15).is_none());
        let (first, taken) = fresh.take(7, 11, 13).expect("11..13 is held");
        assert_eq!((first, taken.len()), (11, 2));
        // 10 was forgotten as stale, 11 and 12 taken: only 13 is left.
        assert_eq!(fresh.bytes, 10);
        assert!(fresh.take(7, 11, 12).is_none(), "taken rows are gone");
        assert_eq!(fresh.take(7, 13, 14).map(|(f, r)| (f, r.len())), Some((13, 1)));
        assert_eq!(fresh.bytes, 0);
        assert!(fresh.tenants.is_empty());
    }

    #[test]
    fn the_bound_evicts_the_oldest_rows_and_a_gap_restarts_the_run() {
        let mut fresh = Fresh { max_bytes: 50, ..Fresh::default() };
        fresh.push(1, 0, rows(4, 10));
        fresh.push(1, 4, rows(3, 10));
        assert_eq!(fresh.bytes, 50);
        assert!(fresh.take(1, 0, 7).is_none(), "0 and 1 were evicted");
        // The failed take forgot nothing held at or above `from` (0): 2..7 are still there.
        assert_eq!(fresh.take(1, 2, 7).map(|(f, r)| (f, r.len())), Some((2, 5)));
        fresh.push(1, 7, rows(2, 10));
        // A run that does not continue (a group whose run was not handed over): replaced.
        fresh.push(1, 20, rows(1, 10));
        assert_eq!(fresh.bytes, 10);
        assert!(fresh.take(1, 7, 9).is_none());
        assert_eq!(fresh.take(1, 20, 21).map(|(f, r)| (f, r.len())), Some((20, 1)));
    }

    #[test]
    fn nothing_is_held_with_no_bound_and_a_dropped_tenant_is_gone() {
        let mut fresh = Fresh::default();
        fresh.push(1, 0, rows(2, 10));
        assert!(fresh.tenants.is_empty());
        fresh.max_bytes = 100;
        fresh.push(1, 0, rows(2, 10));
        fresh.push(2, 0, rows(2, 10));
        fresh.drop_tenant(1);
        assert_eq!(fresh.bytes, 20);
        assert!(fresh.take(1, 0, 2).is_none());
        assert!(fresh.take(2, 0, 2).is_some());
    }
}
