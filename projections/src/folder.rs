//! The bounded-memory fold: [`TenantState::apply_loading`] from a projection store, then a
//! save of what changed, then eviction of the inactive releases beyond a cache.
//!
//! One mechanism for the server's long folds: the worker's chunks ([`crate::worker`]) and the
//! full-prefix folds of rebuilds and replays ([`crate::replay`], everything in memory: no
//! store). The offline auditor (`ledger-audit`) calls [`TenantState::apply_loading`] itself,
//! with a temporary file of its own for the releases out of memory. Because a release that left
//! memory is read back before any entry that names it, the fold is exactly the one with every
//! release in memory (the determinism test runs the worker with a cache of 2).

use ledger::Entry;

use crate::fold::DecisionCheck;
use crate::state::TenantState;
use crate::store::{ProjectionStore, StoreError};

/// Entries folded per lock and per store write by the worker, and per read by a replay.
pub const CHUNK: u64 = 1024;

/// A tenant's state folding entries, with the store its inactive releases wait in.
///
/// It borrows the state, so the state can live wherever its owner keeps it (the worker's map
/// under its lock, the auditor's fold, a replay's local).
pub struct Folder<'a> {
    state: &'a mut TenantState,
    store: Option<&'a ProjectionStore>,
    keep: usize,
}

impl std::fmt::Debug for Folder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Folder")
            .field("position", &self.state.meta.position)
            .field("stored", &self.store.is_some())
            .field("keep", &self.keep)
            .finish()
    }
}

impl<'a> Folder<'a> {
    /// Folds into `state`; releases not in memory are read back from `store` (none: every
    /// release stays in memory), and [`Folder::save`] keeps `keep` inactive ones in memory.
    pub fn new(state: &'a mut TenantState, store: Option<&'a ProjectionStore>, keep: usize) -> Self {
        Self { state, store, keep }
    }

    /// Folds every release in memory, with no store: what a rebuild and a replay do.
    pub fn in_memory(state: &'a mut TenantState) -> Self {
        Self::new(state, None, usize::MAX)
    }

    /// Folds the next entry (reading back the release it names if it left memory); for a
    /// decision entry, whether it is the one the fold derived. On an error the state is
    /// partly applied and must be discarded.
    pub fn apply(&mut self, entry: &Entry) -> Result<Option<DecisionCheck>, StoreError> {
        let store = self.store;
        self.state.apply_loading(entry, &mut |tenant, release| store.map_or(Ok(None), |s| s.release(tenant, release)))
    }

    /// Stores the position and every row changed since the last save, then lets the inactive
    /// releases beyond the cache leave memory (the store holds them). With no store, only
    /// forgets the change tracking.
    pub fn save(&mut self) -> Result<(), StoreError> {
        match self.store {
            Some(store) => {
                store.save(self.state)?;
                self.state.evict(self.keep);
            }
            None => {
                let _ = self.state.take_dirty();
            }
        }
        Ok(())
    }

    /// The state folded so far (inactive releases may be in the store instead).
    pub fn state(&self) -> &TenantState {
        self.state
    }
}
