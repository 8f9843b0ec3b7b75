//! A commit group as a replicated log carries it: the requests, in order, and the one time
//! the group is recorded at. Applying the same records in the same order to stores that share
//! the ledger and admin keys (and the limits of [`crate::Config`]) gives the same log on every
//! one of them, byte for byte: entries, index rows, tree, heads and signed checkpoints (Ed25519
//! signatures are deterministic). Every node runs the whole pipeline on each record — decoding,
//! signature checks, the registry, the rules, idempotency, stream versions — so a node that
//! applies a record re-verifies everything in it, and a request the log's rules forbid is
//! refused there with the same error it got everywhere else, storing nothing.
//!
//! This is the state machine step of replication (docs/replication.md): the leader decides a
//! group's requests and time, the consensus layer makes the record durable on a majority, and
//! each node applies it with [`crate::Ledger::apply_record`].

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use super::commit::{commit_group_at, StoreWriter};
use super::prepare::{prepare, Job};
use crate::envelope::Envelope;
use crate::error::AppendError;
use crate::store::{AppendEvent, ExpectedVersion, Inner, Receipt};

/// One event of a recorded request: the envelope in its storage encoding, and the stream
/// version its author expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// `Envelope::to_bytes`.
    pub envelope: Vec<u8>,
    /// `None`: any; `Some(0)`: no stream yet; `Some(n)`: exactly version `n`.
    pub expected_version: Option<u64>,
}

impl RecordedEvent {
    /// The record of an event.
    pub fn new(event: &AppendEvent) -> Self {
        let expected_version = match event.expected_version {
            ExpectedVersion::Any => None,
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(n) => Some(n),
        };
        Self { envelope: event.envelope.to_bytes(), expected_version }
    }

    fn decode(&self, index: usize) -> Result<AppendEvent, AppendError> {
        let envelope = Envelope::from_bytes(&self.envelope).map_err(|e| {
            AppendError::BadRequest(format!("event {index} of a replicated record does not decode: {e}"))
        })?;
        let expected_version = match self.expected_version {
            None => ExpectedVersion::Any,
            Some(0) => ExpectedVersion::NoStream,
            Some(n) => ExpectedVersion::Exact(n),
        };
        Ok(AppendEvent { envelope, expected_version })
    }
}

/// A commit group: its requests in order (each all-or-nothing, as an `append_batch`) and the
/// time it is recorded at (each entry's `recordedAt` is this, or its tenant's last
/// `recordedAt` if later: it never decreases).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// Nanoseconds since the Unix epoch, read once by the node that made the record.
    pub now_ns: u64,
    /// The requests.
    pub requests: Vec<Vec<RecordedEvent>>,
}

/// What applying a record answered each of its requests, in order.
pub type RecordResults = Vec<Result<Vec<Receipt>, AppendError>>;

/// A record waiting for the writer thread, and where its answers go.
#[derive(Debug)]
pub(crate) struct RecordJob {
    pub(crate) record: GroupRecord,
    /// The record's position in the replicated log, stored with its group.
    pub(crate) applied: Option<Vec<u8>>,
    pub(crate) reply: Sender<Result<RecordResults, AppendError>>,
}

/// Applies a record on the writer thread, as one commit group at the record's time: each
/// request is prepared here (so against the committed state every node has at this point of
/// the log, not the state a caller saw), then the group is staged and committed like any other.
pub(crate) fn apply(inner: &Inner, store: Option<&StoreWriter>, job: RecordJob, commit_number: u64) {
    let RecordJob { record, applied, reply } = job;
    let mut results: Vec<Option<Result<Vec<Receipt>, AppendError>>> = Vec::with_capacity(record.requests.len());
    let mut jobs = Vec::new();
    let mut waiting = Vec::new();
    for request in &record.requests {
        let events: Result<Vec<AppendEvent>, AppendError> =
            request.iter().enumerate().map(|(index, event)| event.decode(index)).collect();
        match events.and_then(|events| prepare(inner, events)) {
            Ok(prepared) => {
                let (tx, rx) = super::oneshot::channel();
                jobs.push(Job { events: prepared, reply: tx, verdict: None });
                waiting.push((results.len(), rx));
                results.push(None);
            }
            Err(error) => results.push(Some(Err(error))),
        }
    }
    // Read apart: a guard held across the branches would deadlock the commit, which takes the
    // same lock to poison the writer when it fails.
    let poisoned = inner.poisoned.lock().clone();
    if let Some(reason) = poisoned {
        for (index, _) in &waiting {
            results[*index] = Some(Err(AppendError::Poisoned(reason.clone())));
        }
    } else if !jobs.is_empty() || applied.is_some() {
        commit_group_at(inner, store, jobs, commit_number, record.now_ns, applied.as_deref());
        for (index, mut rx) in waiting {
            // Answered already: the group was committed (or refused) on this thread.
            results[index] = Some(rx.try_recv().unwrap_or(Err(AppendError::ShuttingDown)));
        }
    }
    // A failed commit poisons the writer: the record was not applied, whatever each request
    // was told (its position must not be taken as applied either).
    let poisoned = inner.poisoned.lock().clone();
    if let Some(reason) = poisoned {
        let _ = reply.send(Err(AppendError::Poisoned(reason)));
        return;
    }
    let results = results.into_iter().map(|r| r.expect("every request answered")).collect();
    let _ = reply.send(Ok(results));
}
