//! Where projections keep their state: a RocksDB of their own (`<data-dir>/projections`),
//! separate from the log because it is derived and can always be rebuilt from it.
//!
//! Each save is one `WriteBatch` holding the tenant's position *and* every row the applied
//! entries changed, so after any crash the stored state is exactly the fold of the log up to
//! the stored position: no entry applied twice, none skipped. Writes are not fsynced (a lost
//! tail is re-derived from the durable log on restart).
//!
//! Values are MessagePack with named fields ([`encode_row`], [`decode_row`]). Keys:
//! - `\0format` → the state format version; on a mismatch the store is wiped and rebuilt.
//! - `{tenant}\0m` → [`TenantMeta`] (position, policy, freezes, keys, anomalies).
//! - `{tenant}\0o\0{event id}` → one owed append (written when owed, deleted when folded back:
//!   a save costs what changed, not the size of the outbox).
//! - `{tenant}\0r\0{release}` → [`ReleaseState`]. Every release is stored; only the active
//!   ones and a bounded cache of recent inactive ones are kept in memory
//!   ([`TenantState::evict`]), the rest are read back from here when an entry or a query needs
//!   them.
//! - `{tenant}\0a\0{release}` → empty: the release is active (loaded at start without
//!   reading every release row).
//! - `{tenant}\0h\0{module}|{environment}\0{index u32 BE}` → one history item (append-only:
//!   a save writes only the items added since the last one).
//!
//! The board ([`crate::board`]), derived from the release rows and written in the same batch
//! as them, so no crash leaves it disagreeing with them (`{position}` is `!updated_at` as u64
//! BE, a zero byte, the release id: bytewise order is newest first, then by id):
//! - `{tenant}\0u\0{position}` → [`BoardRow`]: every release, newest first.
//! - `{tenant}\0s\0{status code}\0{position}` → [`BoardRow`]: the releases at one status
//!   (the code is one ASCII digit, [`crate::board`]'s `status_code`).
//! - `{tenant}\0b\0{release}` → its status code and `updated_at` (u64 BE): the position it is
//!   indexed at, read by a save (the worker is the store's one writer) to delete the rows of
//!   the position a release leaves.
//! - `{tenant}\0c` → [`StatusCounts`], read, changed and written back by a save whose releases
//!   changed status.
//!
//! Tenant names are `[A-Za-z0-9._-]`, never a zero byte, so `{tenant}\0` prefixes one tenant's
//! rows only; the row kind is the byte after it, and whatever bytes follow (a position holds
//! any) never change how a key is classified. Loading skips the board's rows by seeking past
//! them, as it does the release rows.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::board::{self, BoardPage, BoardQuery, BoardRow, StatusCounts};
use crate::outbox::Outgoing;
use crate::state::{Dirty, HistoryItem, ReleaseState, ReleaseStatus, TenantState};

/// Bumped whenever the stored state's shape or the fold's semantics change; a store of
/// another version is emptied when opened and the worker rebuilds it from the log: that is
/// the whole migration. 6: the board's rows (`u`, `s`, `b`, `c`), which a store of 5 lacks.
/// 7: rows in MessagePack instead of JSON.
pub const STATE_FORMAT: u32 = 7;

const FORMAT_KEY: &[u8] = b"\0format";
/// `\0erase\0‖tenant`: the tenant's state was replaced (after a redaction) and the replaced
/// rows may still be in the store's files until [`ProjectionStore::erase`] has run.
const ERASE_PREFIX: &[u8] = b"\0erase\0";

/// A projection store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("projection store: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored row does not decode.
    #[error("projection store row {key}: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A row could not be serialised: the save fails and writes nothing (an empty row would
    /// not decode at the next load, which then empties the whole store).
    #[error("projection store row {key} cannot be serialised: {reason}")]
    Encode {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A board cursor ([`BoardQuery::after`]) that is not one a page of this listing returned:
    /// the caller's mistake, not the store's.
    #[error("board cursor: {reason}")]
    Cursor {
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// Whether the store's bytes are damaged (a row that does not decode, or RocksDB's own
    /// corruption), as opposed to an I/O failure that may pass.
    pub fn is_corruption(&self) -> bool {
        match self {
            Self::Corrupt { .. } => true,
            Self::Encode { .. } | Self::Cursor { .. } => false,
            Self::Db(e) => e.kind() == rocksdb::ErrorKind::Corruption,
        }
    }
}

/// The projection store.
pub struct ProjectionStore {
    db: DB,
}

impl std::fmt::Debug for ProjectionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectionStore").field("path", &self.db.path()).finish()
    }
}

fn meta_key(tenant: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0m"].concat()
}

fn release_key(tenant: &str, release: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0r\0", release.as_bytes()].concat()
}

fn active_key(tenant: &str, release: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0a\0", release.as_bytes()].concat()
}

fn history_key(tenant: &str, key: &str, index: usize) -> Vec<u8> {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    [tenant.as_bytes(), b"\0h\0", key.as_bytes(), b"\0", &index.to_be_bytes()].concat()
}

fn outbox_key(tenant: &str, id: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0o\0", id.as_bytes()].concat()
}

/// The prefix of a board index: every release's (`u`), or one status's (`s`).
fn board_prefix(tenant: &str, status: Option<ReleaseStatus>) -> Vec<u8> {
    match status {
        None => [tenant.as_bytes(), b"\0u\0"].concat(),
        Some(status) => [tenant.as_bytes(), b"\0s\0", &[board::status_code(status)], b"\0"].concat(),
    }
}

fn pointer_key(tenant: &str, release: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0b\0", release.as_bytes()].concat()
}

fn counts_key(tenant: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0c"].concat()
}

/// Puts a release's two board rows (every release's index, its status's index) and its pointer.
fn put_board_rows(batch: &mut WriteBatch, tenant: &str, row: &BoardRow) -> Result<(), StoreError> {
    let position = board::position_key(row.updated_at, &row.release_id);
    let every = [board_prefix(tenant, None), position.clone()].concat();
    let encoded = encode_at(&every, row)?;
    batch.put([board_prefix(tenant, Some(row.status)), position].concat(), &encoded);
    batch.put(every, encoded);
    batch.put(pointer_key(tenant, &row.release_id), board::encode_pointer(row.status, row.updated_at));
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// Tests: make every serialisation on this thread fail.
    static FAIL_ENCODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The encoding of every row of the store, for the store and for what checks its rows (its
/// tests, the `projection_rows` fuzz target and its seeds).
///
/// Rows are the value's serde encoding in MessagePack with named fields
/// (`rmp_serde::to_vec_named`), which describes itself as JSON does: fields left out
/// (`skip_serializing_if`), defaults and `serde_json::Value`s (a policy's schemas, an
/// attachment's body) read back as they went in; the tests check that every kind of row reads
/// back equal to itself. They were JSON until [`STATE_FORMAT`] 7: the worker rewrites a
/// release's row whenever an entry changes it, and serialising JSON (escaping every string byte
/// by byte) and storing the larger rows were about a third of its saves on the benchmark
/// workload (BENCHMARKS.md, "Issue 20, twenty-ninth session"). The offline auditor's spill file
/// has stored releases this way since the twenty-fourth session.
pub fn encode_row<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(value)
}

/// A row [`encode_row`] wrote.
pub fn decode_row<T: serde::de::DeserializeOwned>(row: &[u8]) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(row)
}

/// The row stored under `key`: an error, never an empty row, when `value` does not serialise.
fn encode_at<T: serde::Serialize>(key: &[u8], value: &T) -> Result<Vec<u8>, StoreError> {
    let encoded = encode_row(value).map_err(|e| e.to_string());
    #[cfg(test)]
    let encoded =
        encoded.and_then(|row| if FAIL_ENCODING.get() { Err("injected by the test".into()) } else { Ok(row) });
    encoded.map_err(|reason| StoreError::Encode { key: String::from_utf8_lossy(key).replace('\0', "/"), reason })
}

/// Puts `value` under `key`.
fn put<T: serde::Serialize>(batch: &mut WriteBatch, key: Vec<u8>, value: &T) -> Result<(), StoreError> {
    let row = encode_at(&key, value)?;
    batch.put(key, row);
    Ok(())
}

impl ProjectionStore {
    /// Opens (creating) the store at `path`. A store of another [`STATE_FORMAT`] is emptied.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        // RocksDB's info log aborts the process on a full disk (see `quiet_info_log`).
        ledger::store::quiet_info_log(&mut options);
        // The fold looks up a release it does not hold in memory and a release's board pointer,
        // and for a new release both are misses (BENCHMARKS.md, "Issue 20, fourteenth
        // session"): the ledger's whole-key bloom filters answer most of them. Table options
        // only change how files are read: a store written without them opens with them.
        let mut table = rocksdb::BlockBasedOptions::default();
        ledger::store::whole_key_filters(&mut options, &mut table);
        options.set_block_based_table_factory(&table);
        let db = DB::open(&options, path)?;
        let store = Self { db };
        let format = store.db.get(FORMAT_KEY)?;
        if format.as_deref() != Some(STATE_FORMAT.to_be_bytes().as_slice()) {
            if format.is_some() {
                tracing::warn!(path = %path.display(), "projection state format changed: rebuilding from the log");
            }
            let mut batch = WriteBatch::default();
            for item in store.db.iterator(IteratorMode::Start) {
                let (key, _) = item?;
                batch.delete(key);
            }
            batch.put(FORMAT_KEY, STATE_FORMAT.to_be_bytes());
            store.db.write(batch)?;
        }
        // Erasures a crash interrupted (after a rebuild, before its compaction).
        for tenant in store.pending_erasures()? {
            tracing::info!(tenant, "erasing replaced projection rows left by an interrupted rebuild");
            store.erase(&tenant)?;
        }
        Ok(store)
    }

    /// Writes a consistent copy of the store into `dir` (which must not exist): a RocksDB
    /// checkpoint, hard links where `dir` is on the same filesystem. Saves go on meanwhile; each
    /// is one `WriteBatch`, so the copy holds every tenant's position with exactly its rows.
    pub fn checkpoint(&self, dir: &Path) -> Result<(), StoreError> {
        rocksdb::checkpoint::Checkpoint::new(&self.db)?.create_checkpoint(dir)?;
        Ok(())
    }

    /// Deletes every row (the store is derived: the worker refolds the log).
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, _) = item?;
            // Pending erasures stay: the cleared rows are still in the files until they run.
            if key.as_ref() != FORMAT_KEY && !key.starts_with(ERASE_PREFIX) {
                batch.delete(key);
            }
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Loads every tenant's state: meta, outbox, history and the active releases. Inactive
    /// releases stay on disk (read with [`ProjectionStore::release`] when needed), so start-up
    /// costs what is active, not every release ever made.
    pub fn load_all(&self) -> Result<BTreeMap<String, TenantState>, StoreError> {
        let mut states: BTreeMap<String, TenantState> = BTreeMap::new();
        let mut active: Vec<(String, String)> = Vec::new();
        let mut rows = self.db.raw_iterator();
        rows.seek_to_first();
        while let (Some(key), Some(value)) = (rows.key(), rows.value()) {
            if key == FORMAT_KEY || key.starts_with(ERASE_PREFIX) {
                rows.next();
                continue;
            }
            let text = String::from_utf8_lossy(key).into_owned();
            let corrupt = |reason: String| StoreError::Corrupt { key: text.replace('\0', "/"), reason };
            let mut parts = key.splitn(3, |b| *b == 0);
            let tenant = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
            let kind = parts.next().unwrap_or_default();
            let rest_bytes = parts.next().unwrap_or_default();
            let rest = String::from_utf8_lossy(rest_bytes).into_owned();
            let state = states.entry(tenant.clone()).or_insert_with(|| TenantState::new(&tenant));
            match kind {
                b"m" => {
                    let history = std::mem::take(&mut state.meta.history);
                    let outbox = std::mem::take(&mut state.meta.outbox);
                    state.meta = decode_row(value).map_err(|e| corrupt(e.to_string()))?;
                    state.meta.history = history;
                    state.meta.outbox = outbox;
                }
                b"o" => {
                    let owed: Outgoing = decode_row(value).map_err(|e| corrupt(e.to_string()))?;
                    state.meta.outbox.insert_stored(rest, owed);
                }
                b"a" => active.push((tenant, rest)),
                b"r" | b"u" | b"s" | b"b" => {
                    // Past this tenant's release rows (or one of the board's kinds) without
                    // reading them.
                    rows.seek([tenant.as_bytes(), b"\0", kind, b"\x01"].concat());
                    continue;
                }
                b"c" => {}
                b"h" => {
                    // `{module}|{environment}\0{index u32 BE}`; rows come in index order.
                    let Some(name) = rest_bytes.len().checked_sub(5).map(|n| &rest_bytes[..n]) else {
                        return Err(corrupt("history row key too short".into()));
                    };
                    let key = String::from_utf8_lossy(name).into_owned();
                    let item: HistoryItem = decode_row(value).map_err(|e| corrupt(e.to_string()))?;
                    state.meta.history.push(key, item);
                }
                _ => return Err(corrupt("unknown row kind".into())),
            }
            rows.next();
        }
        rows.status()?;
        for (tenant, id) in active {
            let release = self.release(&tenant, &id)?.ok_or_else(|| StoreError::Corrupt {
                key: format!("{tenant}/a/{id}"),
                reason: "an active release without its row".into(),
            })?;
            if let Some(state) = states.get_mut(&tenant) {
                state.releases.insert(id, release);
            }
        }
        Ok(states)
    }

    /// One stored release.
    pub fn release(&self, tenant: &str, release_id: &str) -> Result<Option<ReleaseState>, StoreError> {
        let key = release_key(tenant, release_id);
        let Some(value) = self.db.get_pinned(&key)? else { return Ok(None) };
        decode_row(&value)
            .map(Some)
            .map_err(|e| StoreError::Corrupt { key: format!("{tenant}/r/{release_id}"), reason: e.to_string() })
    }

    /// The tenant's stored releases in release-id order, starting after `after`; each is
    /// decoded only if `decode` says so for its id (a caller holding it in memory need not).
    pub fn releases_after<'a>(
        &'a self,
        tenant: &'a str,
        after: Option<&str>,
        mut decode: impl FnMut(&str) -> bool + 'a,
    ) -> impl Iterator<Item = Result<(String, Option<ReleaseState>), StoreError>> + 'a {
        let prefix = [tenant.as_bytes(), b"\0r\0"].concat();
        let start = match after {
            // The smallest key after `after`'s.
            Some(after) => [prefix.as_slice(), after.as_bytes(), b"\0"].concat(),
            None => prefix.clone(),
        };
        let mut rows = self.db.raw_iterator();
        rows.seek(&start);
        let mut done = false;
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let Some((key, value)) = rows.key().zip(rows.value()) else {
                done = true;
                return rows.status().err().map(|e| Err(e.into()));
            };
            let Some(id) = key.strip_prefix(prefix.as_slice()) else {
                done = true;
                return None;
            };
            let id = String::from_utf8_lossy(id).into_owned();
            let release = if decode(&id) {
                match decode_row(value) {
                    Ok(release) => Some(release),
                    Err(e) => {
                        done = true;
                        return Some(Err(StoreError::Corrupt {
                            key: format!("{tenant}/r/{id}"),
                            reason: e.to_string(),
                        }));
                    }
                }
            } else {
                None
            };
            rows.next();
            Some(Ok((id, release)))
        })
    }

    /// The stored releases of `state`'s tenant in release-id order after `after`: borrowed
    /// from `state` when in memory, else read back (decoded) from the store.
    pub fn releases_of<'a>(
        &'a self,
        state: &'a TenantState,
        after: Option<&str>,
    ) -> impl Iterator<Item = Result<(String, Cow<'a, ReleaseState>), StoreError>> + 'a {
        self.releases_after(&state.meta.tenant, after, |id| !state.releases.contains_key(id)).map(|row| {
            let (id, stored) = row?;
            let release = match stored {
                Some(release) => Cow::Owned(release),
                None => Cow::Borrowed(&state.releases[&id]),
            };
            Ok((id, release))
        })
    }

    /// `state` with every release: those evicted from memory read back from the store, which
    /// holds every release as of the last save (call it when nothing changed since).
    pub fn whole(&self, state: &TenantState) -> Result<TenantState, StoreError> {
        let mut copy = TenantState::new(&state.meta.tenant);
        copy.meta = state.meta.clone();
        for row in self.releases_of(state, None) {
            let (id, release) = row?;
            copy.releases.insert(id, release.into_owned());
        }
        // A release in memory and not stored yet.
        for (id, release) in &state.releases {
            copy.releases.entry(id.clone()).or_insert_with(|| release.clone());
        }
        Ok(copy)
    }

    /// The stored row of an owed append (its body, once it has left memory).
    pub fn owed(&self, tenant: &str, id: &str) -> Result<Option<Outgoing>, StoreError> {
        let key = outbox_key(tenant, id);
        let Some(value) = self.db.get_pinned(&key)? else { return Ok(None) };
        let owed: Outgoing = decode_row(&value)
            .map_err(|e| StoreError::Corrupt { key: format!("{tenant}/o/{id}"), reason: e.to_string() })?;
        Ok(Some(owed))
    }

    /// The board position a release is indexed at, as stored (its status and `updated_at`).
    fn board_pointer(&self, tenant: &str, release_id: &str) -> Result<Option<(ReleaseStatus, u64)>, StoreError> {
        let Some(row) = self.db.get_pinned(pointer_key(tenant, release_id))? else { return Ok(None) };
        board::decode_pointer(&row).map(Some).ok_or_else(|| StoreError::Corrupt {
            key: format!("{tenant}/b/{release_id}"),
            reason: "not a status code and a time".into(),
        })
    }

    /// How many of the tenant's stored releases are at each status (all zero for a tenant
    /// never stored). One row read, however many releases.
    pub fn status_counts(&self, tenant: &str) -> Result<StatusCounts, StoreError> {
        let Some(row) = self.db.get_pinned(counts_key(tenant))? else { return Ok(StatusCounts::default()) };
        decode_row(&row).map_err(|e| StoreError::Corrupt { key: format!("{tenant}/c"), reason: e.to_string() })
    }

    /// [`ProjectionStore::status_counts`] of `state`'s tenant with the releases changed in
    /// memory and not saved yet counted at their status in memory.
    pub fn status_counts_of(&self, state: &TenantState) -> Result<StatusCounts, StoreError> {
        let tenant = &state.meta.tenant;
        let mut counts = self.status_counts(tenant)?;
        for id in &state.dirty {
            let Some(release) = state.releases.get(id) else { continue };
            if let Some((status, _)) = self.board_pointer(tenant, id)? {
                counts.remove(status);
            }
            counts.add(release.status);
        }
        Ok(counts)
    }

    /// A page of the tenant's board as saved: the rows of the status's index (every
    /// release's without a status) from the query's cursor or `updated_to`, newest first,
    /// until `updated_from`, filtered, at most [`BoardQuery::page_size`] rows and
    /// [`board::SCAN_BOUND`] rows looked at. A cursor that is not one of this listing's is a
    /// [`StoreError::Cursor`].
    pub fn board(&self, tenant: &str, query: &BoardQuery) -> Result<BoardPage, StoreError> {
        self.board_scan(tenant, query, &BTreeMap::new(), &BTreeSet::new(), board::SCAN_BOUND)
    }

    /// [`ProjectionStore::board`] of `state`'s tenant with the releases changed in memory and
    /// not saved yet (none, unless a save failed) listed as they are in memory.
    pub fn board_of(&self, state: &TenantState, query: &BoardQuery) -> Result<BoardPage, StoreError> {
        self.board_of_within(state, query, board::SCAN_BOUND)
    }

    fn board_of_within(&self, state: &TenantState, query: &BoardQuery, bound: u64) -> Result<BoardPage, StoreError> {
        let unsaved: BTreeMap<Vec<u8>, BoardRow> = state
            .dirty
            .iter()
            .filter_map(|id| state.releases.get(id))
            .map(BoardRow::of)
            .filter(|row| query.status.is_none_or(|s| s == row.status))
            .map(|row| (board::position_key(row.updated_at, &row.release_id), row))
            .collect();
        self.board_scan(&state.meta.tenant, query, &unsaved, &state.dirty, bound)
    }

    /// One index's rows from the query's start, merged in order with `unsaved` (rows by
    /// position, not in the store yet) and without the stored rows of the releases `hidden`
    /// (those `unsaved` stands for), looking at `bound` rows at most.
    fn board_scan(
        &self,
        tenant: &str,
        query: &BoardQuery,
        unsaved: &BTreeMap<Vec<u8>, BoardRow>,
        hidden: &BTreeSet<String>,
        bound: u64,
    ) -> Result<BoardPage, StoreError> {
        let mut page = BoardPage { rows: Vec::new(), next: None, scanned: 0 };
        // The first position listed: `updated_to` (exclusive), or after the cursor.
        let mut start = Vec::new();
        if let Some(to) = query.updated_to {
            let Some(last) = to.checked_sub(1) else { return Ok(page) };
            start = (!last).to_be_bytes().to_vec();
        }
        if let Some(cursor) = &query.after {
            let after = board::decode_cursor(cursor, query.status).map_err(|reason| StoreError::Cursor { reason })?;
            // The smallest position after the cursor's.
            let after = [after.as_slice(), b"\0"].concat();
            start = start.max(after);
        }
        // The listing stops before the first position older than `updated_from`.
        let end = query.updated_from.map(|from| (!from).to_be_bytes());
        let limit = query.page_size();
        let prefix = board_prefix(tenant, query.status);
        let corrupt = |position: &[u8], reason: String| StoreError::Corrupt {
            key: String::from_utf8_lossy(&[prefix.as_slice(), position].concat()).replace('\0', "/"),
            reason,
        };
        let mut stored = self.db.raw_iterator();
        stored.seek([prefix.as_slice(), &start].concat());
        let mut pending = unsaved.range(start..).peekable();
        let mut last: Vec<u8> = Vec::new();
        loop {
            // The next stored position, past the rows of releases listed from memory instead.
            let stored_position = loop {
                let Some(key) = stored.key() else {
                    stored.status()?;
                    break None;
                };
                let Some(position) = key.strip_prefix(prefix.as_slice()) else { break None };
                if !board::is_position(position) {
                    return Err(corrupt(position, "not a board position".into()));
                }
                let id = board::position_id(position);
                if !hidden.is_empty() && std::str::from_utf8(id).is_ok_and(|id| hidden.contains(id)) {
                    stored.next();
                    continue;
                }
                break Some(position.to_vec());
            };
            let (position, from_memory) = match (stored_position, pending.peek()) {
                (None, None) => break,
                (Some(position), Some((next, _))) if next.as_slice() < position.as_slice() => ((*next).clone(), true),
                (Some(position), _) => (position, false),
                (None, Some((next, _))) => ((*next).clone(), true),
            };
            if end.is_some_and(|end| position[..8] > end[..]) {
                break;
            }
            // More may follow: a page ends here when full or when it looked at enough.
            if page.rows.len() == limit || page.scanned == bound {
                page.next = Some(board::encode_cursor(query.status, &last));
                break;
            }
            page.scanned += 1;
            let wanted = query.id_matches(board::position_id(&position));
            let row = if from_memory {
                let row = pending.next().map(|(_, row)| row);
                row.filter(|_| wanted).cloned()
            } else {
                let row = match (wanted, stored.value()) {
                    (true, Some(value)) => {
                        Some(decode_row::<BoardRow>(value).map_err(|e| corrupt(&position, e.to_string()))?)
                    }
                    _ => None,
                };
                stored.next();
                row
            };
            last = position;
            if let Some(row) = row.filter(|row| query.row_matches(row)) {
                page.rows.push(row);
            }
        }
        Ok(page)
    }

    /// Saves the tenant's position and every row changed since the last save, atomically. A
    /// save that fails writes nothing and keeps the change set, so the next save writes it.
    pub fn save(&self, state: &mut TenantState) -> Result<(), StoreError> {
        let dirty = state.take_dirty();
        let saved = self.write_changes(state, &dirty);
        if saved.is_err() {
            state.restore_dirty(dirty);
        }
        saved
    }

    fn write_changes(&self, state: &TenantState, dirty: &Dirty) -> Result<(), StoreError> {
        let tenant = &state.meta.tenant;
        let mut batch = WriteBatch::default();
        put(&mut batch, meta_key(tenant), &state.meta)?;
        // Read once, when a release changes status; written back in this batch.
        let mut counts: Option<StatusCounts> = None;
        for id in &dirty.releases {
            if let Some(release) = state.releases.get(id) {
                put(&mut batch, release_key(tenant, id), release)?;
                if release.is_active() {
                    batch.put(active_key(tenant, id), []);
                } else {
                    batch.delete(active_key(tenant, id));
                }
                // The board: the rows of the position the release leaves go, the rows of its
                // position now are (re)written (a row can change without its position moving:
                // a re-evaluation changes the risk score, not `updatedAt`).
                let row = BoardRow::of(release);
                let indexed = self.board_pointer(tenant, id)?;
                if let Some((status, updated_at)) = indexed {
                    if (status, updated_at) != (row.status, row.updated_at) {
                        let position = board::position_key(updated_at, id);
                        batch.delete([board_prefix(tenant, None), position.clone()].concat());
                        batch.delete([board_prefix(tenant, Some(status)), position].concat());
                    }
                }
                if indexed.map(|(status, _)| status) != Some(row.status) {
                    let counts = match &mut counts {
                        Some(counts) => counts,
                        None => counts.insert(self.status_counts(tenant)?),
                    };
                    if let Some((status, _)) = indexed {
                        counts.remove(status);
                    }
                    counts.add(row.status);
                }
                put_board_rows(&mut batch, tenant, &row)?;
            }
        }
        if let Some(counts) = &counts {
            put(&mut batch, counts_key(tenant), counts)?;
        }
        // Owed appends: put the new ones, delete the ones folded back or cancelled. (A body
        // leaves memory only once appended, after the save that stored it.)
        for id in &dirty.outbox {
            match state.meta.outbox.get(id) {
                Some(owed) => {
                    debug_assert!(owed.has_body(), "{id} changed without its body");
                    put(&mut batch, outbox_key(tenant, id), owed)?;
                }
                None => batch.delete(outbox_key(tenant, id)),
            }
        }
        for (key, from) in &dirty.history {
            if let Some(items) = state.meta.history.get(key) {
                for (index, item) in items.iter().enumerate().skip(*from) {
                    put(&mut batch, history_key(tenant, key, index), item)?;
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    /// Replaces everything stored for the tenant with `state` (after a rebuild).
    pub fn replace(&self, state: &mut TenantState) -> Result<(), StoreError> {
        let tenant = state.meta.tenant.clone();
        let mut batch = WriteBatch::default();
        let prefix = [tenant.as_bytes(), b"\0"].concat();
        for item in self.db.iterator(IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, _) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            batch.delete(key);
        }
        put(&mut batch, meta_key(&tenant), &state.meta)?;
        let mut counts = StatusCounts::default();
        for (id, release) in &state.releases {
            put(&mut batch, release_key(&tenant, id), release)?;
            if release.is_active() {
                batch.put(active_key(&tenant, id), []);
            }
            put_board_rows(&mut batch, &tenant, &BoardRow::of(release))?;
            counts.add(release.status);
        }
        put(&mut batch, counts_key(&tenant), &counts)?;
        for (key, items) in state.meta.history.iter() {
            for (index, item) in items.iter().enumerate() {
                put(&mut batch, history_key(&tenant, key, index), item)?;
            }
        }
        for (id, owed) in state.meta.outbox.iter() {
            debug_assert!(owed.has_body(), "{id} replaced without its body");
            put(&mut batch, outbox_key(&tenant, id), owed)?;
        }
        // The duty to erase the replaced rows from the files, in the same batch.
        batch.put([ERASE_PREFIX, tenant.as_bytes()].concat(), []);
        let _ = state.take_dirty();
        self.db.write(batch)?;
        self.erase(&tenant)
    }

    /// Removes the tenant's replaced rows from the store's files, not only from its reads: a
    /// rebuild after a redaction replaces rows derived from the erased payload, and RocksDB keeps
    /// the old versions in its memtable, WAL and SSTs until something rewrites them. A flush
    /// (which makes the older WAL files obsolete; RocksDB deletes them) and a compaction of
    /// the tenant's key range at every level, bottommost included, do. Idempotent; what a crash
    /// interrupts is done again at the next open.
    pub fn erase(&self, tenant: &str) -> Result<(), StoreError> {
        let marker = [ERASE_PREFIX, tenant.as_bytes()].concat();
        let mut flush = rocksdb::FlushOptions::default();
        flush.set_wait(true);
        self.db.flush_opt(&flush)?;
        let from = [tenant.as_bytes(), b"\0"].concat();
        let to = [tenant.as_bytes(), b"\x01"].concat();
        let mut compact = rocksdb::CompactOptions::default();
        compact.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db.compact_range_opt(Some(from), Some(to), &compact);
        self.db.delete(marker)?;
        Ok(())
    }

    /// Tenants whose replaced rows may still be in the store's files (a crash came between a
    /// rebuild and its erasure).
    fn pending_erasures(&self) -> Result<Vec<String>, StoreError> {
        let mut tenants = Vec::new();
        for item in self.db.iterator(IteratorMode::From(ERASE_PREFIX, Direction::Forward)) {
            let (key, _) = item?;
            let Some(tenant) = key.strip_prefix(ERASE_PREFIX) else { break };
            tenants.push(String::from_utf8_lossy(tenant).into_owned());
        }
        Ok(tenants)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod board_tests;
