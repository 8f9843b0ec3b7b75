//! Full-prefix folds of a tenant's log from seq 0: what a rebuild, a replay "as of", an
//! explanation with re-derivation and an auditor compute.

use ledger::{Ledger, ReadError};

use crate::folder::{Folder, CHUNK};
use crate::state::TenantState;

/// Folds `tenant`'s log from seq 0 up to (excluding) `until` (default: the whole log) into a
/// fresh state: what a rebuild, a replay "as of" and an auditor compute.
pub fn fold(ledger: &Ledger, tenant: &str, until: Option<u64>) -> Result<TenantState, ReadError> {
    let size = ledger.head(tenant)?.size;
    let end = until.map_or(size, |u| u.min(size));
    let mut state = TenantState::new(tenant);
    let mut folder = Folder::in_memory(&mut state);
    let mut from = 0;
    while from < end {
        let to = (from + CHUNK).min(end);
        for entry in ledger.entries(tenant, from, to)? {
            // No store: applying cannot fail.
            let _ = folder.apply(&entry?);
        }
        from = to;
    }
    // No store: only forgets the change tracking.
    let _ = folder.save();
    Ok(state)
}
