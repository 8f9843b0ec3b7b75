//! Integration tests of the ledger core: one binary, a module per concern.

// Helpers outside `#[test]` functions may unwrap too: a panic there is a test failure.
#![allow(clippy::unwrap_used)]

mod append;
mod concurrency;
mod corruption;
mod crash;
mod fixture;
mod governance;
mod integrity;
mod proofs;
mod redaction;
mod tamper;

use ledger::{Ledger, TenantHead};

/// What a tenant looks like from outside, to assert that a rejected append stored nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    head: Option<TenantHead>,
    checkpoint: Option<String>,
    entries: usize,
}

pub(crate) fn snapshot(ledger: &Ledger, tenant: &str) -> Snapshot {
    Snapshot {
        head: ledger.head(tenant).ok(),
        checkpoint: ledger.checkpoint(tenant).ok().map(|c| c.note),
        entries: ledger.entries(tenant, 0, u64::MAX).map(|it| it.count()).unwrap_or(0),
    }
}
