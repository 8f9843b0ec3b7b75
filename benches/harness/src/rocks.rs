//! The RocksDB limit: the rows the ledger's writer commits for a group, written to a bare
//! RocksDB with the ledger's options and `sync=true`.

use std::fmt;

use ledger::{AppendEvent, ParsedEvent};
use rocksdb::{ColumnFamily, WriteBatch, WriteOptions, DB};

/// The ledger's column families (`ledger/src/store/layout.rs`), in that order.
pub const COLUMN_FAMILIES: [&str; 8] = ledger::store::COLUMN_FAMILIES;
const CF_META: usize = 0;
const CF_ENTRIES: usize = 1;
const CF_STREAMS: usize = 2;
const CF_STREAM_HEADS: usize = 3;
const CF_EVENT_IDS: usize = 4;
const CF_TREE: usize = 5;
const CF_CHECKPOINTS: usize = 6;

/// A bare RocksDB in a temporary dir, opened with the ledger's options and column families.
pub struct RawStore {
    db: DB,
    _dir: tempfile::TempDir,
}

impl fmt::Debug for RawStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawStore").field("path", &self.db.path()).finish_non_exhaustive()
    }
}

impl RawStore {
    /// Opens a fresh store with the options `Ledger::open` uses.
    pub fn open() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = ledger::store::db_options();
        let db = DB::open_cf_descriptors(&options, dir.path().join("db"), ledger::store::column_families())
            .expect("open raw RocksDB");
        Self { db, _dir: dir }
    }

    /// Writes `rows` as one `WriteBatch` with `sync=true` (fsync before returning), exactly as
    /// the ledger's writer commits a group.
    pub fn write_group(&self, rows: &[Row]) {
        let handles: Vec<&ColumnFamily> = COLUMN_FAMILIES
            .iter()
            .map(|name| self.db.cf_handle(name).expect("column family created at open"))
            .collect();
        let mut batch = WriteBatch::default();
        for row in rows {
            batch.put_cf(handles[row.cf], &row.key, &row.value);
        }
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db.write_opt(batch, &options).expect("sync write");
    }
}

/// One key-value pair of a write batch.
#[derive(Debug, Clone)]
pub struct Row {
    cf: usize,
    key: Vec<u8>,
    value: Vec<u8>,
}

impl Row {
    /// The value's length.
    pub fn value_len(&self) -> usize {
        self.value.len()
    }
}

/// An event as the ledger stores it: its envelope bytes, event id and stream.
#[derive(Debug, Clone)]
pub struct StoredShape {
    envelope: Vec<u8>,
    event_id: String,
    stream: String,
}

impl StoredShape {
    /// The shape of a signed event.
    pub fn of(event: &AppendEvent) -> Self {
        let header = ParsedEvent::parse(&event.envelope.payload).expect("a valid event body").header;
        Self { envelope: event.envelope.to_bytes(), event_id: header.event_id, stream: header.stream }
    }

    /// The length of the envelope's storage encoding.
    pub fn envelope_len(&self) -> usize {
        self.envelope.len()
    }
}

/// Builds, for one writer, the rows the ledger's writer puts in a commit group: per event the
/// entry (106-byte header + envelope bytes), its event-id row, stream row, stream head and
/// Merkle tree nodes (the leaf and every completed parent); per group the tenant head and the
/// signed checkpoint note. Keys have the ledger's layouts; each writer is its own tenant id.
#[derive(Debug)]
pub struct RowBuilder {
    tid: u32,
    next_seq: u64,
    stream_version: u64,
    checkpoint_len: usize,
}

impl RowBuilder {
    /// A builder for writer `tid` whose checkpoint notes are `checkpoint_len` bytes.
    pub fn new(tid: u32, checkpoint_len: usize) -> Self {
        Self { tid, next_seq: 0, stream_version: 0, checkpoint_len }
    }

    /// The rows of one commit group holding `events` (event ids are made unique per writer).
    pub fn group(&mut self, events: &[StoredShape]) -> Vec<Row> {
        let tid = self.tid.to_be_bytes();
        let mut rows = Vec::with_capacity(events.len() * 6 + 2);
        let mut hash = [0u8; 32];
        for event in events {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.stream_version += 1;
            hash = *blake3::hash(&[&hash[..], &seq.to_be_bytes()].concat()).as_bytes();
            let mut value = Vec::with_capacity(106 + event.envelope.len());
            value.extend_from_slice(&[1, 0]);
            value.extend_from_slice(&seq.to_be_bytes());
            value.extend_from_slice(&[hash, hash, hash].concat());
            value.extend_from_slice(&event.envelope);
            rows.push(Row { cf: CF_ENTRIES, key: [&tid[..], &seq.to_be_bytes()].concat(), value });
            let event_id = format!("{}#{seq}", event.event_id);
            rows.push(Row {
                cf: CF_EVENT_IDS,
                key: [&tid[..], event_id.as_bytes()].concat(),
                value: [&seq.to_be_bytes()[..], &hash].concat(),
            });
            let stream_prefix = [&tid[..], &[event.stream.len() as u8], event.stream.as_bytes()].concat();
            rows.push(Row {
                cf: CF_STREAMS,
                key: [&stream_prefix[..], &self.stream_version.to_be_bytes()].concat(),
                value: seq.to_be_bytes().to_vec(),
            });
            rows.push(Row {
                cf: CF_STREAM_HEADS,
                key: [&tid[..], event.stream.as_bytes()].concat(),
                value: self.stream_version.to_be_bytes().to_vec(),
            });
            for level in 0..=seq.trailing_ones() {
                rows.push(Row {
                    cf: CF_TREE,
                    key: [&tid[..], &[level as u8], &(seq >> level).to_be_bytes()].concat(),
                    value: hash.to_vec(),
                });
            }
        }
        let size = self.next_seq.to_be_bytes();
        rows.push(Row { cf: CF_META, key: [&b"head/"[..], &tid].concat(), value: [&size[..], &hash, &size].concat() });
        rows.push(Row { cf: CF_CHECKPOINTS, key: [&tid[..], &size].concat(), value: vec![b'c'; self.checkpoint_len] });
        rows
    }
}
