//! The check's visitor ([`FsckVisit`]) on a thread of its own, beside the entries pass.
//!
//! The audit's visitor folds every entry to re-derive the ledger's decisions: about a third of
//! the entries pass's thread when it ran there, while the machine's other core sat partly idle
//! (BENCHMARKS.md, "Issue 20, twenty-first session"). The pass now hands each entry (a copy:
//! the verifier keeps its own) and its parse to the visitor's thread, in order, a batch at a
//! time, and keeps reading. The visitor's first error, at seq `f`, is placed among the pass's
//! problems where a visitor running in line would have put it: after every problem the pass
//! found up to and including entry `f`, before those it found after. The pass stops handing
//! entries over at the verifier's first failure, so an error of the visitor always belongs to
//! an entry the verifier accepted — the rule [`StoreView::check_tenant`] documents.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::{Scope, ScopedJoinHandle};

use super::FsckVisit;
use crate::error::InvalidEvent;
use crate::event::ParsedEvent;
use crate::store::entry::Entry;

/// Entries per hand-over (a bounded channel of [`IN_FLIGHT`] of them: about a megabyte of
/// entries waiting at most, whatever the tenant's size).
const BATCH: usize = 256;
/// Batches handed over and not yet folded, at most.
const IN_FLIGHT: usize = 4;

/// One entry and what its payload parsed to (`None`: redacted), as the visitor sees them.
type Item = (Entry, Option<Result<ParsedEvent, InvalidEvent>>);

/// The visitor's first error: the entry's seq and the visitor's words.
pub(super) type VisitError = (u64, String);

/// The feeding end of a visitor running on its own thread.
pub(super) struct Visitor<'scope> {
    sender: Option<SyncSender<Vec<Item>>>,
    batch: Vec<Item>,
    failed: Arc<AtomicBool>,
    thread: ScopedJoinHandle<'scope, Option<VisitError>>,
}

impl<'scope> Visitor<'scope> {
    /// Starts `visit` on a thread of `scope`.
    pub(super) fn spawn<'env>(scope: &'scope Scope<'scope, 'env>, visit: &'scope mut FsckVisit<'env>) -> Self {
        let (sender, receiver) = sync_channel::<Vec<Item>>(IN_FLIGHT);
        let failed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&failed);
        let thread = std::thread::Builder::new()
            .name("ledger-fsck-visit".into())
            .spawn_scoped(scope, move || {
                for batch in receiver {
                    for (entry, event) in batch {
                        if let Err(detail) = visit(&entry, event.as_ref().map(Result::as_ref)) {
                            flag.store(true, Ordering::Relaxed);
                            // Dropping the receiver tells the pass to stop handing entries over.
                            return Some((entry.seq, detail));
                        }
                    }
                }
                None
            })
            .unwrap_or_else(|e| panic!("cannot start the check's visitor thread: {e}"));
        Self { sender: Some(sender), batch: Vec::with_capacity(BATCH), failed, thread }
    }

    /// Whether the visitor still wants entries (it has not failed).
    pub(super) fn wants_more(&self) -> bool {
        self.sender.is_some() && !self.failed.load(Ordering::Relaxed)
    }

    /// Hands `entry` over (in seq order, one call per entry).
    pub(super) fn push(&mut self, entry: Entry, event: Option<Result<ParsedEvent, InvalidEvent>>) {
        self.batch.push((entry, event));
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        if let Some(sender) = &self.sender {
            if sender.send(batch).is_err() {
                // The visitor failed and returned: nothing more to hand over.
                self.sender = None;
            }
        }
    }

    /// Hands over what is left, waits for the visitor, and returns its first error. A panic of
    /// the visitor is raised here, as it would have been in line.
    pub(super) fn finish(mut self) -> Option<VisitError> {
        if !self.batch.is_empty() {
            self.send();
        }
        drop(self.sender.take());
        match self.thread.join() {
            Ok(error) => error,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Where a visitor's error goes among the problems: the count of problems when the pass had
/// finished each entry, kept only where it changed.
#[derive(Debug, Default)]
pub(super) struct Marks {
    at_start: usize,
    marks: Vec<(u64, usize)>,
}

impl Marks {
    pub(super) fn new(at_start: usize) -> Self {
        Self { at_start, marks: Vec::new() }
    }

    /// The pass finished entry `seq` with `problems` problems listed.
    pub(super) fn finished(&mut self, seq: u64, problems: usize) {
        let last = self.marks.last().map_or(self.at_start, |&(_, count)| count);
        if problems != last {
            self.marks.push((seq, problems));
        }
    }

    /// The problems listed when the pass had finished entry `seq`.
    pub(super) fn after(&self, seq: u64) -> usize {
        self.marks.iter().rev().find(|&&(at, _)| at <= seq).map_or(self.at_start, |&(_, count)| count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_give_the_count_after_each_entry() {
        let mut marks = Marks::new(2);
        marks.finished(0, 2);
        marks.finished(1, 3);
        marks.finished(2, 3);
        marks.finished(5, 5);
        assert_eq!(marks.after(0), 2);
        assert_eq!(marks.after(1), 3);
        assert_eq!(marks.after(4), 3);
        assert_eq!(marks.after(5), 5);
        assert_eq!(marks.after(9), 5);
        assert_eq!(Marks::new(7).after(3), 7);
    }
}
