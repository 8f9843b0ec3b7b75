//! The ledger as openraft's state machine: applying a Raft entry is [`Ledger::apply_record`]
//! (the whole append pipeline, so every node re-verifies every entry it stores), with the Raft
//! log id and the membership in force written in the same RocksDB batch as the group's entries.
//! After any crash the node knows exactly which Raft entry it applied last.
//!
//! Snapshots are not built: every node keeps the whole Raft log (docs/replication.md, "What is
//! not built"), so a follower that was away catches up from the log.

use std::io::Cursor;
use std::sync::Arc;

use ledger::{AppendError, GroupRecord, Ledger};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{Applied, Entry, Member, NodeId, TypeConfig};

/// What a node stores with each applied record (opaque to the ledger).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppliedPosition {
    /// The Raft log id of the record.
    pub log_id: LogId<NodeId>,
    /// The membership in force after it.
    pub membership: StoredMembership<NodeId, Member>,
}

impl AppliedPosition {
    /// The position a store holds, if it ever applied a record.
    pub fn of(ledger: &Ledger) -> anyhow::Result<Option<Self>> {
        match ledger.applied_position()? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!("the applied Raft position stored in the ledger does not decode: {e}")
            })?)),
        }
    }
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct LedgerStateMachine {
    ledger: Arc<Ledger>,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Member>,
}

fn state_error(verb: ErrorVerb, reason: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::error(reason.to_string())).into()
}

impl LedgerStateMachine {
    /// The state machine over `ledger`, at the position it stores.
    pub fn new(ledger: Arc<Ledger>) -> anyhow::Result<Self> {
        let position = AppliedPosition::of(&ledger)?;
        let (applied, membership) = match position {
            Some(p) => (Some(p.log_id), p.membership),
            None => (None, StoredMembership::default()),
        };
        Ok(Self { ledger, applied, membership })
    }

    /// Applies one record at `position`, waiting out a full queue (a record must be applied,
    /// whatever the load; a full queue only means the writer is busy).
    async fn apply_one(
        &self,
        record: GroupRecord,
        position: Vec<u8>,
    ) -> Result<ledger::RecordResults, StorageError<NodeId>> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || loop {
            match ledger.apply_record(record.clone(), Some(position.clone())) {
                Err(AppendError::Overloaded) => std::thread::sleep(std::time::Duration::from_millis(5)),
                other => return other,
            }
        })
        .await
        .map_err(|e| state_error(ErrorVerb::Write, e))?
        // Poisoned or shutting down: the record was not applied, and this node must stop
        // (openraft stops the node on a storage error; the others go on without it).
        .map_err(|e| state_error(ErrorVerb::Write, format!("applying a replicated record: {e}")))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for LedgerStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        Err(state_error(
            ErrorVerb::Read,
            "snapshots are not built: every node keeps the whole Raft log (docs/replication.md)",
        ))
    }
}

impl RaftStateMachine<TypeConfig> for LedgerStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), StorageError<NodeId>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut answers = Vec::new();
        for entry in entries {
            let (record, membership) = match entry.payload {
                EntryPayload::Normal(record) => (record, self.membership.clone()),
                // No ledger entries; the position (and membership) is still stored.
                EntryPayload::Blank => (GroupRecord { now_ns: 0, requests: Vec::new() }, self.membership.clone()),
                EntryPayload::Membership(membership) => (
                    GroupRecord { now_ns: 0, requests: Vec::new() },
                    StoredMembership::new(Some(entry.log_id), membership),
                ),
            };
            let position = AppliedPosition { log_id: entry.log_id, membership: membership.clone() };
            let position = serde_json::to_vec(&position).map_err(|e| state_error(ErrorVerb::Write, e))?;
            let results = self.apply_one(record, position).await?;
            self.applied = Some(entry.log_id);
            self.membership = membership;
            answers.push(Applied { results: Some(results) });
        }
        Ok(answers)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Err(state_error(ErrorVerb::Write, "this node does not install snapshots: it catches up from the Raft log"))
    }

    async fn install_snapshot(
        &mut self,
        _meta: &SnapshotMeta<NodeId, Member>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        Err(state_error(ErrorVerb::Write, "this node does not install snapshots: it catches up from the Raft log"))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(None)
    }
}
