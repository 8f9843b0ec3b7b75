//! Integration tests of the ledger core: one binary, a module per concern.

// Helpers outside `#[test]` functions may unwrap too: a panic there is a test failure.
#![allow(clippy::unwrap_used)]

mod append;
mod concurrency;
mod corruption;
mod crash;
mod dependencies;
mod fixture;
mod fresh;
mod governance;
mod integrity;
mod proofs;
mod records;
mod redaction;
mod rocks_options;
mod tamper;
mod tiles;
mod verifier;

use ledger::{AppendError, AppendEvent, Ledger, Receipt, TenantHead};

/// `Ledger::submit_async` of one request, awaited on `runtime` until its group is durable (or
/// the request refused).
pub(crate) fn submit_async_and_wait(
    runtime: &tokio::runtime::Runtime,
    ledger: &Ledger,
    events: Vec<AppendEvent>,
) -> Result<Vec<Receipt>, AppendError> {
    runtime.block_on(async { ledger.submit_async(events).await?.await })
}

/// What a tenant looks like from outside, to assert that a rejected append stored nothing: its
/// head, checkpoint and entries, and the indexes a rejected event could have touched — its key
/// registry, the versions of the streams the tests write, and the event ids they use.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    head: Option<TenantHead>,
    checkpoint: Option<String>,
    entries: usize,
    keys: Vec<String>,
    streams: Vec<(String, Option<u64>)>,
    event_ids: Vec<(String, Option<u64>)>,
}

/// The streams the integration tests append to.
const STREAMS: [&str; 4] = ["release/r1", "s", "keys", "admin"];

pub(crate) fn snapshot(ledger: &Ledger, tenant: &str) -> Snapshot {
    snapshot_with_ids(ledger, tenant, &[])
}

/// [`snapshot`], also recording where each of `event_ids` is (absent: `None`).
pub(crate) fn snapshot_with_ids(ledger: &Ledger, tenant: &str, event_ids: &[&str]) -> Snapshot {
    let mut keys: Vec<String> = ledger
        .key_records(tenant)
        .map(|records| records.into_iter().map(|r| format!("{} {} {:?}", r.key_id, r.agent_id, r.revoked_at)).collect())
        .unwrap_or_default();
    keys.sort();
    Snapshot {
        head: ledger.head(tenant).ok(),
        checkpoint: ledger.checkpoint(tenant).ok().map(|c| c.note),
        entries: ledger.entries(tenant, 0, u64::MAX).map(|it| it.count()).unwrap_or(0),
        keys,
        streams: STREAMS.iter().map(|s| ((*s).to_owned(), ledger.stream_version(tenant, s).ok())).collect(),
        event_ids: event_ids
            .iter()
            .map(|id| ((*id).to_owned(), ledger.entry_by_event_id(tenant, id).ok().flatten().map(|e| e.seq)))
            .collect(),
    }
}
