//! Opening a store: the checks that decide whether it may serve (docs/format.md, "Recovery").
//!
//! RocksDB is opened strictly; a damaged WAL record is accepted as the log's end only when a
//! read-only open proves everything anchored is before it, or in the anchor's own records of
//! the groups after it. Groups RocksDB lost (its WAL is written without a sync; the anchor is
//! the log of record) are replayed from the anchor, only where they continue exactly what the
//! store holds; the store is then checked against its anchor and a sample of its index rows.
//! Nothing else is written, and nothing is repaired.

use std::collections::HashMap;
use std::path::Path;

use parking_lot::{Condvar, Mutex, RwLock};
use rocksdb::{Options, DB};

use super::anchor::{self, AnchorLog, AnchoredHead, AnchoredHeads, Shortfall};
use super::layout::*;
use super::{db_options, load_or_create, read_entry, sync_store_wal, Committed, Config, Inner, TenantState};
use crate::error::OpenError;
use crate::keys::{write_new_file, KeyPair, KeyPaths};
use crate::registry::TrustRoots;

/// The WAL and MANIFEST files of a RocksDB dir, for an error message.
pub(super) fn log_files(db: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(db)
        .map(|items| {
            items
                .filter_map(|item| item.ok()?.file_name().into_string().ok())
                .filter(|name| name.ends_with(".log") || name.starts_with("MANIFEST-"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    format!("{}: {}", db.display(), names.join(", "))
}

/// Whether the store, recovered up to its first damaged WAL record, still holds everything
/// its anchor says was acknowledged, or lacks only whole groups the anchor can replay.
/// Checked on a read-only open, which changes no file, so a "no" leaves the damaged WAL in
/// place for a backup or `salvage`.
pub(super) fn only_unacknowledged_tail(data_dir: &Path, log: Option<&AnchorLog>) -> bool {
    let Some(log) = log else { return false };
    let mut options = db_options();
    options.create_if_missing(false);
    options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    let Ok(db) = DB::open_cf_for_read_only(&options, data_dir.join("db"), ALL_CFS, false) else { return false };
    let Some(meta) = db.cf_handle(CF_META) else { return false };
    let mut tids = std::collections::HashSet::new();
    for item in db.prefix_iterator_cf(meta, META_TENANT_PREFIX) {
        let Ok((key, value)) = item else { return false };
        if !key.starts_with(META_TENANT_PREFIX) {
            break;
        }
        let Ok(tid) = <[u8; 4]>::try_from(value.as_ref()).map(u32::from_be_bytes) else { return false };
        tids.insert(tid);
    }
    let Ok(plan) = log.plan(|tid| stored_head(&db, tid).map(|head| head.size)) else { return false };
    log.heads.iter().all(|(tid, want)| match plan.before.get(tid) {
        // Created by a replayed group: the store must not have it yet.
        Some(None) => !tids.contains(tid) && stored_head(&db, *tid).is_none(),
        Some(Some(before)) => tids.contains(tid) && holds(&db, *tid, before),
        None => tids.contains(tid) && holds(&db, *tid, want),
    })
}

/// A tenant's head row, if the store has one that decodes.
fn stored_head(db: &DB, tid: u32) -> Option<Head> {
    let meta = db.cf_handle(CF_META)?;
    Head::decode(&db.get_cf(meta, head_key(tid)).ok()??).ok()
}

/// Whether the store holds at least `want.size` entries of `tid`, the last of them hashing to
/// `want.chain_head`.
fn holds(db: &DB, tid: u32, want: &AnchoredHead) -> bool {
    let Some(entries) = db.cf_handle(CF_ENTRIES) else { return false };
    let seq = want.size.saturating_sub(1);
    let entry = match db.get_cf(entries, seq_key(tid, seq)) {
        Ok(Some(bytes)) => decode_entry_value(seq, &bytes).ok(),
        _ => None,
    };
    stored_head(db, tid).is_some_and(|head| head.size >= want.size)
        && entry.is_some_and(|entry| entry.entry_hash == want.chain_head)
}

/// Replays the anchored groups RocksDB lost (the unsynced tail of its WAL, after power loss),
/// in order, then makes them durable. Only where the plan says the store holds a prefix of
/// the anchored groups and each replayed tenant's last entry is the one the anchor recorded
/// before the replay; otherwise nothing is written and the reason is returned for open to
/// report (its anchor check, which names the tenant, usually refuses first).
pub(super) fn replay_lost_groups(db: &DB, log: Option<&AnchorLog>) -> Result<Result<usize, String>, OpenError> {
    let Some(log) = log.filter(|log| !log.groups.is_empty()) else { return Ok(Ok(0)) };
    if db.cf_handle(CF_META).and_then(|meta| db.get_cf(meta, META_FORMAT).ok().flatten()).is_none() {
        // Groups continue a store; one that lost its own first rows is not replayed onto.
        return Ok(Err("the store is not initialised (its meta rows are missing)".to_owned()));
    }
    let plan = match log.plan(|tid| stored_head(db, tid).map(|head| head.size)) {
        Ok(plan) => plan,
        Err(reason) => return Ok(Err(reason)),
    };
    let lost = &log.groups[plan.replay_from..];
    if lost.is_empty() {
        return Ok(Ok(0));
    }
    for (tid, before) in &plan.before {
        if let Some(before) = before {
            if !holds(db, *tid, before) {
                return Ok(Err(format!(
                    "tenant id {tid}'s entry at seq {} is not the one the anchor recorded before the groups to replay",
                    before.size.saturating_sub(1)
                )));
            }
        }
    }
    let options = rocksdb::WriteOptions::default();
    for group in lost {
        db.write_opt(rocksdb::WriteBatch::from_data(&group.batch), &options)?;
    }
    sync_store_wal(db).map_err(|cause| OpenError::Io { path: db.path().to_path_buf(), cause })?;
    tracing::warn!(
        groups = lost.len(),
        from_byte = lost[0].offset,
        "the store had lost the last commit groups (RocksDB's WAL is written without a sync; power loss); \
         replayed them from the anchor, which recorded each before its receipts"
    );
    Ok(Ok(lost.len()))
}

/// Entries per tenant whose index rows are looked up at open (beside the first and last).
pub(super) const INDEX_SAMPLES: u64 = 32;

/// Looks up the `event_ids` and `stream_heads` rows of a sample of every tenant's entries:
/// the first, the last, and [`INDEX_SAMPLES`] spread between. RocksDB can lose a whole SST of
/// one column family and still open (a damaged MANIFEST that still decodes did, in the
/// corruption trials): the entries and the anchor agree, but every event id is "unknown", so
/// a retry of an acknowledged event would be appended a second time. Missing rows refuse the
/// open; `ledger-audit verify DATA_DIR` checks every row.
pub(super) fn check_index_samples(inner: &Inner, committed: &Committed) -> Result<(), OpenError> {
    for (name, state) in &committed.tenants {
        let size = state.head.size;
        let step = (size / (INDEX_SAMPLES + 1)).max(1);
        let samples =
            std::iter::once(size - 1).chain((0..size - 1).step_by(step as usize).take(INDEX_SAMPLES as usize + 1));
        for seq in samples {
            // A damaged entry is not this check's business: reads report it as `DATA_LOSS`
            // naming its seq, and verification names it too. Only index rows are looked up.
            let Ok(entry) = read_entry(inner, state.tid, seq) else { continue };
            let Some(envelope) = entry.envelope() else { continue };
            let Ok(parsed) = crate::event::ParsedEvent::parse(&envelope.payload) else { continue };
            let missing = |what: &str| {
                OpenError::Corrupted(format!(
                    "tenant {name}: the {what} row of the entry at seq {seq} is missing or wrong: an index of the \
                     store was lost (`ledger-audit verify DATA_DIR` lists every row)"
                ))
            };
            let id_row =
                inner.db.get_pinned_cf(inner.cf(CF_EVENT_IDS), event_id_key(state.tid, &parsed.header.event_id))?;
            match id_row.as_deref().map(decode_event_id_value) {
                Some(Ok((indexed, _))) if indexed == seq => {}
                _ => return Err(missing("event id")),
            }
            let stream = &parsed.header.stream;
            if inner.db.get_pinned_cf(inner.cf(CF_STREAM_HEADS), stream_head_key(state.tid, stream))?.is_none() {
                return Err(missing("stream head"));
            }
        }
    }
    Ok(())
}

/// Opens RocksDB with every column family, telling corruption apart from other failures.
pub(crate) fn open_db(path: &Path, options: &Options) -> Result<DB, OpenError> {
    DB::open_cf_descriptors(options, path, super::column_families()).map_err(open_error)
}

/// A RocksDB open failure: corruption (a WAL record failing its checksum, a damaged
/// MANIFEST) is `Corrupted`, so it reads as what it is and maps to `DATA_LOSS`.
pub(crate) fn open_error(e: rocksdb::Error) -> OpenError {
    if e.kind() == rocksdb::ErrorKind::Corruption {
        OpenError::Corrupted(format!("rocksdb: {e}"))
    } else {
        OpenError::Storage(e)
    }
}

/// Reads (or, on first use, writes) the store's identity and builds the shared state; the
/// anchor is opened by the caller once the store has been checked against it.
pub(super) fn init_inner(
    db: DB,
    paths: &KeyPaths,
    config: Config,
    anchored: Option<&AnchoredHeads>,
) -> Result<Inner, OpenError> {
    let meta = db.cf_handle(CF_META).ok_or_else(|| OpenError::Corrupted("meta column family missing".into()))?;
    if let Some(configured) = &config.origin_prefix {
        super::check_origin_prefix(configured).map_err(OpenError::BadOriginPrefix)?;
    }
    let (ledger_key, roots, origin_prefix) = match db.get_cf(meta, META_FORMAT)? {
        None => {
            // An empty store beside an anchor that names tenants: the store's files were lost
            // or replaced (a MANIFEST that no longer lists the SSTs reads as empty).
            if let Some(anchored) = anchored.filter(|a| !a.is_empty()) {
                let entries: u64 = anchored.values().map(|h| h.size).sum();
                return Err(OpenError::Corrupted(format!(
                    "the store is empty, but its anchor records {} tenant(s) with {entries} acknowledged entries: \
                     the store's files were lost or replaced",
                    anchored.len()
                )));
            }
            // First open. Keys first (each fsynced), then the meta record; a crash in between
            // leaves key files that the next open adopts.
            let ledger_key = load_or_create(&paths.ledger)?;
            let admin_key = load_or_create(&paths.admin)?;
            if !paths.ledger_pub.exists() {
                write_new_file(&paths.ledger_pub, ledger_key.public_key_pem()?.as_bytes(), 0o644)?;
            }
            let origin_prefix =
                config.origin_prefix.clone().unwrap_or_else(|| super::default_origin_prefix(&ledger_key.key_id()));
            let mut batch = rocksdb::WriteBatch::default();
            batch.put_cf(meta, META_ADMIN_PUB, admin_key.verifying_key().as_bytes());
            batch.put_cf(meta, META_LEDGER_PUB, ledger_key.verifying_key().as_bytes());
            batch.put_cf(meta, META_ORIGIN_PREFIX, origin_prefix.as_bytes());
            batch.put_cf(meta, META_FORMAT, FORMAT_VERSION.to_be_bytes());
            let mut sync = rocksdb::WriteOptions::default();
            sync.set_sync(true);
            db.write_opt(batch, &sync)?;
            let roots = TrustRoots::new(admin_key.verifying_key(), ledger_key.verifying_key());
            (ledger_key, roots, origin_prefix)
        }
        Some(format) => {
            let found = u32::from_be_bytes(
                format.as_slice().try_into().map_err(|_| OpenError::Corrupted("bad format record".into()))?,
            );
            if found != FORMAT_VERSION {
                return Err(OpenError::UnsupportedFormat { found, supported: FORMAT_VERSION });
            }
            let read_key = |name: &[u8]| -> Result<ed25519_dalek::VerifyingKey, OpenError> {
                let raw = db
                    .get_cf(meta, name)?
                    .ok_or_else(|| OpenError::Corrupted(format!("{} missing", String::from_utf8_lossy(name))))?;
                crate::keys::public_key_from_bytes(&raw).map_err(|e| OpenError::Corrupted(e.to_string()))
            };
            let roots = TrustRoots::new(read_key(META_ADMIN_PUB)?, read_key(META_LEDGER_PUB)?);
            let ledger_key = KeyPair::load(&paths.ledger)?;
            if ledger_key.key_id() != roots.ledger_id() {
                return Err(OpenError::KeyMismatch { path: paths.ledger.clone(), expected: roots.ledger_id() });
            }
            let stored = db
                .get_cf(meta, META_ORIGIN_PREFIX)?
                .ok_or_else(|| OpenError::Corrupted("the origin prefix record is missing".into()))?;
            let stored = String::from_utf8(stored)
                .map_err(|_| OpenError::Corrupted("the origin prefix record is not UTF-8".into()))?;
            match &config.origin_prefix {
                Some(configured) if *configured != stored => {
                    return Err(OpenError::OriginMismatch { configured: configured.clone(), stored })
                }
                _ => {}
            }
            (ledger_key, roots, stored)
        }
    };
    Ok(Inner {
        db,
        config,
        roots,
        ledger_key,
        origin_prefix,
        committed: RwLock::new(Committed::default()),
        poisoned: Mutex::new(None),
        anchor: Mutex::new(None),
        sizes: Mutex::new(HashMap::new()),
        grew: Condvar::new(),
        listeners: RwLock::new(Vec::new()),
        erasure: super::erasure::Signal::default(),
        fresh: Mutex::new(super::fresh::Fresh::default()),
        combiner: super::append::Combiner::default(),
        preparing: std::sync::atomic::AtomicUsize::new(0),
        spin: std::sync::Arc::default(),
    })
}

/// Checks the loaded store against its anchor and returns the heads the anchor should hold
/// from now on. Every anchored tenant must exist, hold at least its anchored size, and have
/// the anchored chain head at that size; a store that was anchored before must still have
/// its anchor file.
pub(super) fn check_anchor(
    inner: &Inner,
    data_dir: &Path,
    committed: &Committed,
    anchored: Option<AnchoredHeads>,
) -> Result<AnchoredHeads, OpenError> {
    let was_anchored = inner.db.get_cf(inner.cf(CF_META), META_ANCHORED)?.is_some();
    let anchored = match anchored {
        Some(anchored) => anchored,
        None if was_anchored => {
            return Err(OpenError::Corrupted(format!(
                "the anchor file {} is missing, but this store has been anchored: \
                 nothing can vouch that no acknowledged entry was lost",
                data_dir.join(anchor::ANCHOR_FILE).display()
            )))
        }
        None => {
            if !committed.tenants.is_empty() {
                tracing::warn!("the store predates the anchor file; anchoring the heads it holds now");
            }
            AnchoredHeads::new()
        }
    };
    let by_tid: HashMap<u32, (&String, &TenantState)> =
        committed.tenants.iter().map(|(name, state)| (state.tid, (name, state))).collect();
    for (tid, want) in &anchored {
        let found = by_tid.get(tid);
        let hash_at = |seq| read_entry(inner, *tid, seq).map(|entry| entry.entry_hash).map_err(|e| e.to_string());
        let Some(shortfall) = anchor::shortfall(want, found.map(|(_, state)| state.head.size), hash_at) else {
            continue;
        };
        let (tenant, stored) = match found {
            Some((name, state)) => ((*name).clone(), state.head.size),
            None => (format!("#{tid}"), 0),
        };
        let reason = match shortfall {
            Shortfall::Missing => "the tenant is missing from the store".to_owned(),
            Shortfall::Shorter { stored } => format!("entries {stored}..{} are missing", want.size),
            Shortfall::Rewritten { seq } => {
                format!("the entry at seq {seq} is not the one acknowledged (its hash differs from the anchored chain head)")
            }
            Shortfall::Unreadable { reason, .. } => {
                return Err(OpenError::Corrupted(format!("tenant {tenant}: {reason}")))
            }
        };
        return Err(OpenError::Lost { tenant, stored, acknowledged: want.size, reason });
    }
    Ok(anchored_heads(committed))
}

/// The heads of every tenant, as the anchor records them.
pub(crate) fn anchored_heads(committed: &Committed) -> AnchoredHeads {
    committed
        .tenants
        .values()
        .map(|state| (state.tid, AnchoredHead { size: state.head.size, chain_head: state.head.chain_head }))
        .collect()
}
