//! `salvage`: the explicit, recorded way out of a store that refuses to open.
//!
//! [`Ledger::open`](super::Ledger::open) never repairs: a corrupted WAL, a store shorter than
//! its anchor or a missing anchor all refuse to open. An operator who has no backup to restore
//! runs `salvage`, which
//!
//! 1. copies `DIR/db` to `DIR/db.before-salvage-<ns>` untouched (the evidence, and a way back);
//! 2. opens RocksDB with point-in-time WAL recovery, which keeps every WAL record before the
//!    first damaged one and drops the rest;
//! 3. re-verifies every tenant's whole log (signatures, registry, chain, tree, checkpoint) and
//!    gives up, naming the tenant and seq, if any log does not verify: salvage keeps whole
//!    verified logs and never cuts a log short by itself;
//! 4. compares each tenant with the anchor and records what was lost — the tenant, the
//!    entries the store still holds, how many were acknowledged — in the store itself
//!    (`meta` `salvage/<ns>`, logged at every later open) and in the report it returns;
//! 5. rewrites the anchor to the salvaged heads, so the store opens again.
//!
//! Seqs past a lost tail will be handed out again to new events: clients holding receipts for
//! the lost range must be told, which is why the loss is recorded and never silent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::anchor::{self, Anchor, Shortfall};
use super::layout::*;
use super::open::replay_lost_groups;
use super::{
    anchored_heads, check_index_samples, db_options, init_inner, load_committed, open_db, read_entry, Config, Inner,
    TenantState,
};
use crate::error::OpenError;
use crate::keys::KeyPaths;
use crate::verify::{Verifier, VerifyFailure, VerifyReport};

/// What a salvage found and kept, per tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SalvagedTenant {
    /// The tenant's name, or `#tid` for a tenant the store no longer holds.
    pub tenant: String,
    /// Entries kept (all verified).
    pub kept: u64,
    /// Entries the anchor says were acknowledged, when it says.
    pub acknowledged: Option<u64>,
    /// What was lost, if anything: `None` when every acknowledged entry was kept.
    pub lost: Option<String>,
}

/// The record of one salvage, stored in the salvaged store and returned to the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SalvageReport {
    /// When (ns since the epoch, from the store's clock).
    pub at_ns: u64,
    /// The untouched copy of `db/` taken before anything was changed.
    pub backup: PathBuf,
    /// Why the anchor could not be used, if it could not (then losses cannot be measured).
    pub anchor_problem: Option<String>,
    /// Every tenant of the store or the anchor.
    pub tenants: Vec<SalvagedTenant>,
}

impl SalvageReport {
    /// Whether anything acknowledged was lost (or could not be checked).
    pub fn lost_anything(&self) -> bool {
        self.anchor_problem.is_some() || self.tenants.iter().any(|t| t.lost.is_some())
    }
}

/// Salvages the data dir (see the module docs). The ledger must not be open.
pub fn salvage(data_dir: &Path, config: Config) -> Result<SalvageReport, OpenError> {
    let io = |path: PathBuf| move |cause| OpenError::Io { path, cause };
    let db_dir = data_dir.join("db");
    if !db_dir.join("CURRENT").exists() {
        return Err(OpenError::Corrupted(format!(
            "{} holds no RocksDB store (no CURRENT file): there is nothing to salvage",
            db_dir.display()
        )));
    }
    let at_ns = config.clock.now_ns();
    let backup = data_dir.join(format!("db.before-salvage-{at_ns}"));
    copy_dir(&db_dir, &backup).map_err(io(backup.clone()))?;

    let (log, anchor_problem) = match anchor::read_log(data_dir) {
        Ok(log) => (log, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let mut options = db_options();
    options.create_if_missing(false);
    options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
    let db = open_db(&db_dir, &options)?;
    let has_format = db.cf_handle(CF_META).map(|meta| db.get_cf(meta, META_FORMAT)).transpose()?.flatten().is_some();
    if !has_format {
        return Err(OpenError::Corrupted(format!(
            "{} holds no ledger (no format record): there is nothing to salvage; restore a backup",
            db_dir.display()
        )));
    }
    // What the anchor can still replay is not lost: the groups RocksDB lost are put back first,
    // exactly as open would (where they continue what the store holds; otherwise nothing).
    if let Err(reason) = replay_lost_groups(&db, log.as_ref())? {
        tracing::warn!(%reason, "salvage: the anchor's groups do not continue the store; none replayed");
    }
    let anchored = log.map(|log| log.heads);
    let inner = init_inner(db, &KeyPaths::new(data_dir), config, None)?;
    let committed = load_committed(&inner)?;

    for (name, state) in &committed.tenants {
        verify_whole(&inner, name, state).map_err(|failure| {
            OpenError::Corrupted(format!(
                "tenant {name}: {failure}; salvage keeps only whole logs that verify and never cuts one \
                 short, so this store must be restored from a backup (the untouched copy is {})",
                backup.display()
            ))
        })?;
    }

    // Salvage keeps logs; it does not rebuild lost index rows (a store that lost them must be
    // restored from a backup).
    check_index_samples(&inner, &committed)?;

    let mut tenants = Vec::new();
    let by_tid: HashMap<u32, (&String, &TenantState)> =
        committed.tenants.iter().map(|(name, state)| (state.tid, (name, state))).collect();
    let anchored = anchored.unwrap_or_default();
    for (tid, head) in &anchored {
        let found = by_tid.get(tid);
        let hash_at = |seq| read_entry(&inner, *tid, seq).map(|entry| entry.entry_hash).map_err(|e| e.to_string());
        let lost =
            anchor::shortfall(head, found.map(|(_, state)| state.head.size), hash_at).map(
                |shortfall| match shortfall {
                    Shortfall::Missing => format!("the whole tenant: {} acknowledged entries", head.size),
                    Shortfall::Shorter { stored } => {
                        format!("entries {stored}..{} ({} acknowledged entries)", head.size, head.size - stored)
                    }
                    Shortfall::Rewritten { seq } => format!("the entry at seq {seq} differs from the acknowledged one"),
                    Shortfall::Unreadable { reason, .. } => reason,
                },
            );
        tenants.push(SalvagedTenant {
            tenant: found.map_or_else(|| format!("#{tid}"), |(name, _)| (*name).clone()),
            kept: found.map_or(0, |(_, state)| state.head.size),
            acknowledged: Some(head.size),
            lost,
        });
    }
    for (name, state) in &committed.tenants {
        if !anchored.contains_key(&state.tid) {
            tenants.push(SalvagedTenant {
                tenant: name.clone(),
                kept: state.head.size,
                acknowledged: None,
                lost: None,
            });
        }
    }
    tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    let report = SalvageReport { at_ns, backup, anchor_problem, tenants };

    // Record first, then re-anchor: a crash in between leaves a recorded salvage and a store
    // that still refuses to open, so running salvage again is safe.
    let record = serde_json::to_vec(&report).map_err(|e| OpenError::Corrupted(format!("salvage record: {e}")))?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let mut key = META_SALVAGE_PREFIX.to_vec();
    key.extend_from_slice(&at_ns.to_be_bytes());
    let mut batch = rocksdb::WriteBatch::default();
    batch.put_cf(inner.cf(CF_META), key, record);
    batch.put_cf(inner.cf(CF_META), META_ANCHORED, [1u8]);
    inner.db.write_opt(batch, &sync)?;
    inner.db.flush_wal(true)?;
    Anchor::create(data_dir, anchored_heads(&committed)).map_err(io(data_dir.join(anchor::ANCHOR_FILE)))?;
    tracing::warn!(report = %String::from_utf8_lossy(&serde_json::to_vec(&report).unwrap_or_default()), "store salvaged");
    Ok(report)
}

/// The salvage records of a store, oldest first.
pub(crate) fn records(inner: &Inner) -> Vec<SalvageReport> {
    let mut out = Vec::new();
    for item in inner.db.prefix_iterator_cf(inner.cf(CF_META), META_SALVAGE_PREFIX) {
        let Ok((key, value)) = item else { break };
        if !key.starts_with(META_SALVAGE_PREFIX) {
            break;
        }
        if let Ok(report) = serde_json::from_slice(&value) {
            out.push(report);
        }
    }
    out
}

/// Verifies a tenant's whole stored log against its newest checkpoint.
fn verify_whole(inner: &Inner, tenant: &str, state: &TenantState) -> Result<VerifyReport, VerifyFailure> {
    let mut verifier = Verifier::new(tenant, inner.roots, &inner.origin_prefix).with_rules(inner.config.rules.clone());
    for seq in 0..state.head.size {
        match read_entry(inner, state.tid, seq) {
            Ok(entry) => verifier.push(entry)?,
            Err(error) => return Err(verifier.fail(VerifyFailure::from_read(error))),
        }
    }
    verifier.finish(Some(&state.checkpoint.note))
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for item in std::fs::read_dir(from)? {
        let item = item?;
        let target = to.join(item.file_name());
        if item.file_type()?.is_dir() {
            copy_dir(&item.path(), &target)?;
        } else {
            std::fs::copy(item.path(), &target)?;
        }
    }
    std::fs::File::open(to)?.sync_all()
}
