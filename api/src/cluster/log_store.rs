//! The Raft log and vote of one node, in a RocksDB of their own (`DATA_DIR/raft/`): every write
//! is a `sync=true` batch, so what openraft is told is durable is on disk (Raft's safety rests on
//! it: a node acknowledges an entry to the leader only once it survives a crash, and a vote once
//! cast is never forgotten).
//!
//! Keys: the log column family holds `index (u64 big-endian) → postcard(Entry)`; the meta column
//! family holds `vote`, `committed` and `purged` (postcard).

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

use super::{Entry, NodeId, TypeConfig};

const CF_LOG: &str = "log";
const CF_META: &str = "meta";
const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The log store (cheap to clone: one RocksDB shared by the store and its readers).
#[derive(Debug, Clone)]
pub struct LogStore {
    db: Arc<DB>,
}

fn io(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    error: &(impl std::error::Error + 'static),
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::new(error)).into()
}

fn decode_error(what: &str, error: postcard::Error) -> StorageError<NodeId> {
    StorageIOError::new(
        ErrorSubject::Store,
        ErrorVerb::Read,
        AnyError::error(format!("{what} does not decode: {error}")),
    )
    .into()
}

impl LogStore {
    /// Opens (creating on first use) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, rocksdb::Error> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        options.set_paranoid_checks(true);
        ledger::store::quiet_info_log(&mut options);
        let families = [CF_LOG, CF_META]
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, Options::default()))
            .collect::<Vec<_>>();
        let db = DB::open_cf_descriptors(&options, path, families)?;
        Ok(Self { db: Arc::new(db) })
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("column families are created at open")
    }

    fn write(&self, batch: WriteBatch, subject: ErrorSubject<NodeId>) -> StorageResult<()> {
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        self.db.write_opt(batch, &sync).map_err(|e| io(subject, ErrorVerb::Write, &e))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> StorageResult<Option<T>> {
        match self.db.get_cf(self.cf(CF_META), key).map_err(|e| io(ErrorSubject::Store, ErrorVerb::Read, &e))? {
            Some(bytes) => {
                postcard::from_bytes(&bytes).map(Some).map_err(|e| decode_error(&String::from_utf8_lossy(key), e))
            }
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], value: &T, subject: ErrorSubject<NodeId>) -> StorageResult<()> {
        let bytes = postcard::to_allocvec(value).map_err(|e| decode_error("a value", e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key, bytes);
        self.write(batch, subject)
    }

    /// Whether this node has never been part of a cluster: no log, no vote.
    pub fn is_fresh(&self) -> StorageResult<bool> {
        let vote: Option<Vote<NodeId>> = self.get_meta(KEY_VOTE)?;
        let any_log = self.db.iterator_cf(self.cf(CF_LOG), rocksdb::IteratorMode::Start).next().is_some();
        Ok(vote.is_none() && !any_log)
    }

    fn last_entry_id(&self) -> StorageResult<Option<LogId<NodeId>>> {
        match self.db.iterator_cf(self.cf(CF_LOG), rocksdb::IteratorMode::End).next() {
            None => Ok(None),
            Some(Err(e)) => Err(io(ErrorSubject::Logs, ErrorVerb::Read, &e)),
            Some(Ok((_, value))) => {
                let entry: Entry = postcard::from_bytes(&value).map_err(|e| decode_error("the last log entry", e))?;
                Ok(Some(entry.log_id))
            }
        }
    }
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => Some(*x),
            Bound::Excluded(x) => match x.checked_sub(1) {
                Some(x) => Some(x),
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => None,
        };
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut entries = Vec::new();
            let from = index_key(start);
            for item in
                db.db.iterator_cf(db.cf(CF_LOG), rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward))
            {
                let (key, value) = item.map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?;
                let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                    StorageError::from(StorageIOError::new(
                        ErrorSubject::Logs,
                        ErrorVerb::Read,
                        AnyError::error("a log key is not 8 bytes"),
                    ))
                })?);
                if end.is_some_and(|end| index > end) {
                    break;
                }
                let entry: Entry = postcard::from_bytes(&value).map_err(|e| decode_error("a log entry", e))?;
                if entry.log_id.index != index {
                    return Err(StorageIOError::new(
                        ErrorSubject::Logs,
                        ErrorVerb::Read,
                        AnyError::error(format!("the entry at key {index} says it is index {}", entry.log_id.index)),
                    )
                    .into());
                }
                entries.push(entry);
            }
            Ok(entries)
        })
        .await
        .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Read, &e))?
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.get_meta(KEY_PURGED)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let (store, vote) = (self.clone(), *vote);
        tokio::task::spawn_blocking(move || store.put_meta(KEY_VOTE, &vote, ErrorSubject::Vote))
            .await
            .map_err(|e| io(ErrorSubject::Vote, ErrorVerb::Write, &e))?
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        self.get_meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        // Not needed for safety (openraft re-learns it from the leader); kept so a restarted
        // node can apply what it knows committed before it hears from a leader.
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.put_meta(KEY_COMMITTED, &committed, ErrorSubject::Store))
            .await
            .map_err(|e| io(ErrorSubject::Store, ErrorVerb::Write, &e))?
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.get_meta::<Option<LogId<NodeId>>>(KEY_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let bytes = postcard::to_allocvec(&entry).map_err(|e| decode_error("a log entry", e))?;
            batch.put_cf(self.cf(CF_LOG), index_key(entry.log_id.index), bytes);
        }
        let store = self.clone();
        let written = tokio::task::spawn_blocking(move || store.write(batch, ErrorSubject::Logs))
            .await
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, &e))?;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(self.cf(CF_LOG), index_key(log_id.index), index_key(u64::MAX));
        // delete_range's end is exclusive: the last possible index goes on its own.
        batch.delete_cf(self.cf(CF_LOG), index_key(u64::MAX));
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(batch, ErrorSubject::Logs))
            .await
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, &e))?
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        let purged = postcard::to_allocvec(&log_id).map_err(|e| decode_error("a log id", e))?;
        batch.put_cf(self.cf(CF_META), KEY_PURGED, purged);
        batch.delete_range_cf(self.cf(CF_LOG), index_key(0), index_key(log_id.index.saturating_add(1)));
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(batch, ErrorSubject::Logs))
            .await
            .map_err(|e| io(ErrorSubject::Logs, ErrorVerb::Write, &e))?
    }
}
