//! `release-ledger migrate`: a format v1 store (the RFC 6962 shape over BLAKE3) becomes a
//! format v2 store (RFC 6962 SHA-256), in place, explicitly, resumably.
//!
//! What changes: the `tree` column family (every perfect-subtree node, rebuilt from the entry
//! hashes: the leaf input is the entry hash in both formats, so only the hash function
//! differs) and every stored checkpoint (re-signed over the SHA-256 root at its size, with the
//! new origin prefix and without v1's extension lines). What does not: the entries, their hash
//! chain, the indexes, the key registry, the anchor (it records sizes and chain heads, which
//! migration leaves alone). So everything acknowledged stays exactly as it was, and the next
//! open checks it against the anchor as always.
//!
//! Before a tenant's v1 tree is replaced, migration recomputes it from the entries and checks
//! each v1 checkpoint it re-signs against it (signature, origin, BLAKE3 root at its size) and
//! the hash chain of the entries: a damaged v1 store is refused, never laundered into a valid
//! v2 one. The last v1 checkpoint of every tenant is kept in the migration record
//! (`meta["migration/v2"]`, JSON), so an auditor can see what was signed before.
//!
//! Resumable: tenants are migrated one at a time. A tenant's old tree is deleted, its new
//! nodes and checkpoints written, then `meta["migrating/" tid]` marks it done, each step
//! synced; the format record flips to 2 only once every tenant is done, in the batch that
//! writes the migration record. A crash at any point leaves a v1 store (which `Ledger::open`
//! refuses, naming `migrate`) that the next run finishes; a tenant caught half-way is redone
//! from the start.

use std::path::Path;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use super::layout::*;
use super::open::open_db;
use super::{check_origin_prefix, db_options, default_origin_prefix};
use crate::checkpoint::{Checkpoint, SignedCheckpoint, TreeFormat};
use crate::error::OpenError;
use crate::hash::{digest_eq, Hash32, GENESIS_PREV_HASH};
use crate::keys::{KeyPair, KeyPaths};
use crate::merkle::{Blake3Hasher, Frontier, LogHasher, TreeHasher};

/// Nodes and checkpoints written per synced batch while a tenant is rebuilt.
const BATCH_ROWS: usize = 100_000;

/// Options of [`migrate`].
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// The origin prefix of the v2 logs; default [`default_origin_prefix`] of the ledger key.
    /// v1 stores named their logs `release-ledger/{tenant}`, which is not the schema-less URL
    /// tlog-checkpoint recommends; migration is the one moment the origin can change, since
    /// every checkpoint is signed anew.
    pub origin_prefix: Option<String>,
    /// Test-only: return an error after migrating this many tenants, as a crash between two
    /// tenants would leave the store. `None` in production.
    #[doc(hidden)]
    pub stop_after_tenants: Option<usize>,
}

/// What a migration did (also the JSON kept in the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationReport {
    /// Format before.
    pub from: u32,
    /// Format after.
    pub to: u32,
    /// The v2 origin prefix.
    pub origin_prefix: String,
    /// Every tenant, in id order.
    pub tenants: Vec<TenantMigration>,
    /// Wall-clock time the migration finished, ns since the Unix epoch.
    pub finished_at_ns: u64,
}

/// One tenant's migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantMigration {
    /// The tenant.
    pub tenant: String,
    /// Its entries.
    pub entries: u64,
    /// Stored checkpoints re-signed.
    pub checkpoints: u64,
    /// Its last v1 checkpoint note (BLAKE3 root), as it was stored.
    pub v1_checkpoint: String,
    /// Its new last checkpoint note (SHA-256 root).
    pub v2_checkpoint: String,
}

/// The outcome of a [`migrate`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migration {
    /// The store was format v1 and is now v2 (`resumed` tenants had been finished by an
    /// earlier, interrupted run).
    Migrated {
        /// What was done.
        report: MigrationReport,
        /// Tenants an interrupted earlier run had already finished.
        resumed: usize,
    },
    /// The store already was format v2: nothing was written.
    AlreadyCurrent,
}

/// Migrates the store in `data_dir` from format v1 to v2 (module docs). The server must be
/// stopped (RocksDB's lock refuses a second opener). The ledger key must be the store's.
pub fn migrate(data_dir: &Path, options: &MigrateOptions) -> Result<Migration, OpenError> {
    let db_dir = data_dir.join("db");
    if !db_dir.join("CURRENT").is_file() {
        return Err(OpenError::Io {
            path: db_dir,
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here (DIR/db/CURRENT is missing)"),
        });
    }
    let mut db_opts = db_options();
    db_opts.create_if_missing(false);
    let db = open_db(&db_dir, &db_opts)?;
    let cf =
        |name: &str| db.cf_handle(name).ok_or_else(|| OpenError::Corrupted(format!("column family {name} missing")));
    let meta = cf(CF_META)?;
    let corrupted = |what: String| OpenError::Corrupted(what);
    let format = db.get_cf(meta, META_FORMAT)?.ok_or_else(|| corrupted("no format record".into()))?;
    let format = u32::from_be_bytes(format.as_slice().try_into().map_err(|_| corrupted("bad format record".into()))?);
    if format == FORMAT_VERSION {
        return Ok(Migration::AlreadyCurrent);
    }
    if format != FORMAT_V1 {
        return Err(OpenError::UnsupportedFormat { found: format, supported: FORMAT_VERSION });
    }
    let stored_pub = db.get_cf(meta, META_LEDGER_PUB)?.ok_or_else(|| corrupted("ledger_pub missing".into()))?;
    let ledger_pub = crate::keys::public_key_from_bytes(&stored_pub).map_err(|e| corrupted(e.to_string()))?;
    let paths = KeyPaths::new(data_dir);
    let ledger_key = KeyPair::load(&paths.ledger)?;
    if ledger_key.verifying_key() != ledger_pub {
        return Err(OpenError::KeyMismatch {
            path: paths.ledger.clone(),
            expected: crate::keys::KeyId::of(&ledger_pub),
        });
    }
    let origin_prefix = match &options.origin_prefix {
        Some(prefix) => {
            check_origin_prefix(prefix).map_err(OpenError::BadOriginPrefix)?;
            prefix.clone()
        }
        None => default_origin_prefix(&ledger_key.key_id()),
    };

    let mut tenants: Vec<(u32, String)> =
        super::tenant_rows(&db, meta)?.into_iter().map(|(name, tid)| (tid, name)).collect();
    tenants.sort();

    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let mut report = MigrationReport {
        from: FORMAT_V1,
        to: FORMAT_VERSION,
        origin_prefix: origin_prefix.clone(),
        tenants: Vec::new(),
        finished_at_ns: 0,
    };
    let mut resumed = 0;
    for (tid, name) in &tenants {
        let marker = [META_MIGRATING_PREFIX, &tid.to_be_bytes()].concat();
        if let Some(done) = db.get_cf(meta, &marker)? {
            let tenant: TenantMigration = serde_json::from_slice(&done)
                .map_err(|e| corrupted(format!("tenant {name}: migration marker: {e}")))?;
            report.tenants.push(tenant);
            resumed += 1;
            continue;
        }
        if options.stop_after_tenants == Some(report.tenants.len() - resumed) {
            return Err(OpenError::Corrupted(format!("migration stopped before tenant {name} (test fault)")));
        }
        let origin = format!("{origin_prefix}/{name}");
        let tenant = migrate_tenant(&db, *tid, name, &origin, &ledger_key, &sync)?;
        db.put_cf_opt(meta, &marker, serde_json::to_vec(&tenant).map_err(|e| corrupted(e.to_string()))?, &sync)?;
        tracing::info!(tenant = %name, entries = tenant.entries, checkpoints = tenant.checkpoints, "tenant migrated to format v2");
        report.tenants.push(tenant);
    }
    report.finished_at_ns = crate::clock::Clock::now_ns(&crate::clock::SystemClock);
    let mut batch = WriteBatch::default();
    for (tid, _) in &tenants {
        batch.delete_cf(meta, [META_MIGRATING_PREFIX, &tid.to_be_bytes()].concat());
    }
    batch.put_cf(meta, META_ORIGIN_PREFIX, origin_prefix.as_bytes());
    batch.put_cf(meta, META_MIGRATION, serde_json::to_vec(&report).map_err(|e| corrupted(e.to_string()))?);
    batch.put_cf(meta, META_FORMAT, FORMAT_VERSION.to_be_bytes());
    db.write_opt(batch, &sync)?;
    Ok(Migration::Migrated { report, resumed })
}

/// Rebuilds one tenant's tree and re-signs its checkpoints (module docs).
fn migrate_tenant(
    db: &rocksdb::DB,
    tid: u32,
    name: &str,
    origin: &str,
    ledger_key: &KeyPair,
    sync: &rocksdb::WriteOptions,
) -> Result<TenantMigration, OpenError> {
    let corrupted = |what: String| OpenError::Corrupted(format!("tenant {name}: {what}"));
    let cf = |cf_name: &str| db.cf_handle(cf_name).ok_or_else(|| corrupted(format!("column family {cf_name} missing")));
    let (tree, entries_cf, checkpoints_cf, meta) = (cf(CF_TREE)?, cf(CF_ENTRIES)?, cf(CF_CHECKPOINTS)?, cf(CF_META)?);
    let head = db.get_cf(meta, head_key(tid))?.ok_or_else(|| corrupted("head missing".into()))?;
    let head = Head::decode(&head).map_err(|e| corrupted(format!("head: {e}")))?;

    // The sizes with a stored checkpoint: each is checked against the v1 tree and re-signed
    // when the rebuild reaches it.
    let mut checkpoint_sizes = Vec::new();
    for item in db.prefix_iterator_cf(checkpoints_cf, tid.to_be_bytes()) {
        let (key, _) = item?;
        if !key.starts_with(&tid.to_be_bytes()) {
            break;
        }
        checkpoint_sizes.push(seq_of_key(&key).ok_or_else(|| corrupted("bad checkpoint key".into()))?);
    }
    if checkpoint_sizes.last() != Some(&head.size) {
        return Err(corrupted(format!("no stored checkpoint at the log's size {}", head.size)));
    }

    // Old nodes go first (synced), so a resumed run never mixes v1 and v2 nodes.
    let mut batch = WriteBatch::default();
    // Tree keys are `tid (4) ‖ level (1) ‖ index (8)`: `tid ‖ 0xff × 10` is past all of them.
    let end = [&tid.to_be_bytes()[..], &[0xff; 10]].concat();
    batch.delete_range_cf(tree, tid.to_be_bytes().to_vec(), end);
    db.write_opt(batch, sync)?;

    let mut v1 = Frontier::<Blake3Hasher>::default();
    let mut v2 = Frontier::<LogHasher>::default();
    let mut batch = WriteBatch::default();
    let mut next_checkpoint = checkpoint_sizes.iter().copied().peekable();
    let (mut prev_hash, mut re_signed) = (GENESIS_PREV_HASH, 0u64);
    let (mut v1_last, mut v2_last) = (String::new(), String::new());
    if next_checkpoint.peek() == Some(&0) {
        next_checkpoint.next();
        let signed = Checkpoint { origin: origin.to_owned(), size: 0, root: LogHasher::empty_root() }.sign(ledger_key);
        batch.put_cf(checkpoints_cf, seq_key(tid, 0), signed.note.as_bytes());
        re_signed += 1;
    }
    for seq in 0..head.size {
        let value =
            db.get_cf(entries_cf, seq_key(tid, seq))?.ok_or_else(|| corrupted(format!("entry {seq} is missing")))?;
        let entry = decode_entry_value(seq, &value).map_err(|e| corrupted(format!("entry {seq}: {e}")))?;
        if !digest_eq(&entry.prev_hash, &prev_hash) {
            return Err(corrupted(format!("entry {seq} does not link to entry {}", seq.wrapping_sub(1))));
        }
        prev_hash = entry.entry_hash;
        v1.push(Blake3Hasher::hash_leaf(&entry.entry_hash), |_, _, _| {});
        v2.push(LogHasher::hash_leaf(&entry.entry_hash), |level, index, node| {
            batch.put_cf(tree, tree_key(tid, level, index), node);
        });
        if next_checkpoint.peek() == Some(&(seq + 1)) {
            next_checkpoint.next();
            let size = seq + 1;
            let stored = db
                .get_cf(checkpoints_cf, seq_key(tid, size))?
                .ok_or_else(|| corrupted(format!("checkpoint at size {size} vanished")))?;
            let note =
                String::from_utf8(stored).map_err(|_| corrupted(format!("checkpoint at size {size} is not UTF-8")))?;
            check_v1_checkpoint(&note, ledger_key, name, size, &v1.root())
                .map_err(|why| corrupted(format!("the v1 checkpoint at size {size} {why}")))?;
            let signed = Checkpoint { origin: origin.to_owned(), size, root: v2.root() }.sign(ledger_key);
            batch.put_cf(checkpoints_cf, seq_key(tid, size), signed.note.as_bytes());
            re_signed += 1;
            if size == head.size {
                (v1_last, v2_last) = (note, signed.note);
            }
        }
        if batch.len() >= BATCH_ROWS {
            db.write_opt(std::mem::take(&mut batch), sync)?;
        }
    }
    if !digest_eq(&prev_hash, &head.chain_head) {
        return Err(corrupted("the last entry is not the head's chain head".into()));
    }
    if let Some(size) = next_checkpoint.next() {
        return Err(corrupted(format!("a checkpoint is stored at size {size}, beyond the log's {}", head.size)));
    }
    db.write_opt(batch, sync)?;
    Ok(TenantMigration {
        tenant: name.to_owned(),
        entries: head.size,
        checkpoints: re_signed,
        v1_checkpoint: v1_last,
        v2_checkpoint: v2_last,
    })
}

/// Why a stored v1 checkpoint is not the ledger's checkpoint of this tenant's v1 tree at
/// `size` (the v1 origin prefix was configurable, so the tenant is checked as the origin's
/// last component).
fn check_v1_checkpoint(note: &str, key: &KeyPair, tenant: &str, size: u64, v1_root: &Hash32) -> Result<(), String> {
    let (signed, format): (SignedCheckpoint, TreeFormat) =
        SignedCheckpoint::parse_and_verify_any(note, &key.verifying_key())
            .map_err(|e| format!("does not verify: {e}"))?;
    let checkpoint = signed.checkpoint;
    if format != TreeFormat::V1Blake3 {
        return Err("is not a format v1 note (no chain-head line)".into());
    }
    if !checkpoint.origin.ends_with(&format!("/{tenant}")) {
        return Err(format!("names origin {:?}, not a log of tenant {tenant:?}", checkpoint.origin));
    }
    if checkpoint.size != size {
        return Err(format!("covers {} entries", checkpoint.size));
    }
    if !digest_eq(&checkpoint.root, v1_root) {
        return Err("does not match the BLAKE3 tree of the entries".into());
    }
    Ok(())
}
