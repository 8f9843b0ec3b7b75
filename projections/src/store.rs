//! Where projections keep their state: a RocksDB of their own (`<data-dir>/projections`),
//! separate from the log because it is derived and can always be rebuilt from it.
//!
//! Each save is one `WriteBatch` holding the tenant's position *and* every row the applied
//! entries changed, so after any crash the stored state is exactly the fold of the log up to
//! the stored position: no entry applied twice, none skipped. Writes are not fsynced (a lost
//! tail is re-derived from the durable log on restart).
//!
//! Keys (values are JSON):
//! - `\0format` → the state format version; on a mismatch the store is wiped and rebuilt.
//! - `{tenant}\0m` → [`TenantMeta`] (position, policy, freezes, keys, anomalies).
//! - `{tenant}\0o\0{event id}` → one owed append (written when owed, deleted when folded back:
//!   a save costs what changed, not the size of the outbox).
//! - `{tenant}\0r\0{release}` → [`ReleaseState`].
//! - `{tenant}\0h\0{module}|{environment}\0{index u32 BE}` → one history item (append-only:
//!   a save writes only the items added since the last one).

use std::collections::BTreeMap;
use std::path::Path;

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use crate::state::{HistoryItem, ReleaseState, TenantState};

/// Bumped whenever the stored state's shape or the fold's semantics change; a store of
/// another version is rebuilt from the log.
pub const STATE_FORMAT: u32 = 4;

const FORMAT_KEY: &[u8] = b"\0format";

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

fn history_key(tenant: &str, key: &str, index: usize) -> Vec<u8> {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    [tenant.as_bytes(), b"\0h\0", key.as_bytes(), b"\0", &index.to_be_bytes()].concat()
}

fn outbox_key(tenant: &str, id: &str) -> Vec<u8> {
    [tenant.as_bytes(), b"\0o\0", id.as_bytes()].concat()
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

impl ProjectionStore {
    /// Opens (creating) the store at `path`. A store of another [`STATE_FORMAT`] is emptied.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
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
        Ok(store)
    }

    /// Deletes every row (the store is derived: the worker refolds the log).
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, _) = item?;
            if key.as_ref() != FORMAT_KEY {
                batch.delete(key);
            }
        }
        self.db.write(batch)?;
        Ok(())
    }

    /// Loads every tenant's state.
    pub fn load_all(&self) -> Result<BTreeMap<String, TenantState>, StoreError> {
        let mut states: BTreeMap<String, TenantState> = BTreeMap::new();
        for item in self.db.iterator(IteratorMode::Start) {
            let (key, value) = item?;
            if key.as_ref() == FORMAT_KEY {
                continue;
            }
            let text = String::from_utf8_lossy(&key).into_owned();
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
                    state.meta = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                    state.meta.history = history;
                    state.meta.outbox = outbox;
                }
                b"o" => {
                    let owed = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                    state.stored_outbox.insert(rest.clone());
                    state.meta.outbox.insert(rest, owed);
                }
                b"r" => {
                    let release: ReleaseState = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                    state.releases.insert(rest, release);
                }
                b"h" => {
                    // `{module}|{environment}\0{index u32 BE}`; rows come in index order.
                    let Some(name) = rest_bytes.len().checked_sub(5).map(|n| &rest_bytes[..n]) else {
                        return Err(corrupt("history row key too short".into()));
                    };
                    let key = String::from_utf8_lossy(name).into_owned();
                    let item: HistoryItem = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                    state.meta.history.entry(key).or_default().push(item);
                }
                _ => return Err(corrupt("unknown row kind".into())),
            }
        }
        Ok(states)
    }

    /// Saves the tenant's position and every row changed since the last save, atomically.
    pub fn save(&self, state: &mut TenantState) -> Result<(), StoreError> {
        let dirty = state.take_dirty();
        let tenant = state.meta.tenant.clone();
        let mut batch = WriteBatch::default();
        batch.put(meta_key(&tenant), json(&state.meta));
        for id in &dirty.releases {
            if let Some(release) = state.releases.get(id) {
                batch.put(release_key(&tenant, id), json(release));
            }
        }
        // Owed appends: put the new ones, delete the ones folded back or cancelled.
        let stored = state.stored_outbox.clone();
        for id in stored.iter().filter(|id| !state.meta.outbox.contains_key(*id)) {
            batch.delete(outbox_key(&tenant, id));
        }
        for (id, owed) in state.meta.outbox.iter().filter(|(id, _)| !stored.contains(*id)) {
            batch.put(outbox_key(&tenant, id), json(owed));
        }
        for (key, from) in &dirty.history {
            if let Some(items) = state.meta.history.get(key) {
                for (index, item) in items.iter().enumerate().skip(*from) {
                    batch.put(history_key(&tenant, key, index), json(item));
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(false);
        self.db.write_opt(batch, &options)?;
        state.stored_outbox = state.meta.outbox.keys().cloned().collect();
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
        batch.put(meta_key(&tenant), json(&state.meta));
        for (id, release) in &state.releases {
            batch.put(release_key(&tenant, id), json(release));
        }
        for (key, items) in &state.meta.history {
            for (index, item) in items.iter().enumerate() {
                batch.put(history_key(&tenant, key, index), json(item));
            }
        }
        for (id, owed) in &state.meta.outbox {
            batch.put(outbox_key(&tenant, id), json(owed));
        }
        state.stored_outbox = state.meta.outbox.keys().cloned().collect();
        let _ = state.take_dirty();
        self.db.write(batch)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::{HistoryItem, ReleaseState, TenantState};

    #[test]
    fn a_replaced_state_loads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let store = ProjectionStore::open(dir.path()).unwrap();
        let mut state = TenantState::new("t1");
        state.meta.position = 42;
        // More than 256 items: history row indexes contain zero bytes.
        let items: Vec<HistoryItem> = (0..300)
            .map(|i| HistoryItem {
                seq: i,
                recorded_at: i * 10,
                release_id: format!("r{i}"),
                version: "1.0.0".into(),
                event: "Approved".into(),
            })
            .collect();
        state.meta.history.insert("api|prod".into(), items);
        state.releases.insert("r1".into(), ReleaseState { release_id: "r1".into(), ..ReleaseState::default() });
        let owed = |n: u64| crate::state::Outgoing {
            release_id: "r1".into(),
            body: format!("{{\"n\":{n}}}"),
            not_before_ns: None,
            trigger: n,
            trigger_recorded_at: n,
        };
        state.meta.outbox.insert("decision:r1:1".into(), owed(1));
        state.meta.outbox.insert("decision:r1:2".into(), owed(2));
        store.replace(&mut state).unwrap();
        // A save writes the outbox's changes only: one folded back, one new.
        state.meta.outbox.remove("decision:r1:1");
        state.meta.outbox.insert("decision:r1:3".into(), owed(3));
        store.save(&mut state).unwrap();
        let mut other = TenantState::new("t2");
        other.meta.position = 7;
        store.replace(&mut other).unwrap();
        drop(store);

        let store = ProjectionStore::open(dir.path()).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["t1"], state);
        assert_eq!(loaded["t1"].meta.outbox.keys().collect::<Vec<_>>(), ["decision:r1:2", "decision:r1:3"]);
        assert_eq!(loaded["t2"], other);
        store.clear().unwrap();
        assert!(store.load_all().unwrap().is_empty());
    }
}
