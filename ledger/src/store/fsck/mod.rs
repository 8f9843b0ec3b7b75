//! A strictly read-only consistency check (fsck) of a data dir, behind
//! `ledger-audit verify DATA_DIR`.
//!
//! Key decision: **the audit writes nothing and trusts only public keys.** [`StoreView`] opens
//! `DIR/db` in RocksDB's read-only mode — nothing created, no WAL replayed into new files, no
//! flush, no compaction, no lock taken — with WAL recovery that refuses a checksum mismatch
//! instead of truncating the log there. The trust roots are the `meta` column family's admin
//! and ledger public keys, cross-checked against `keys/ledger.pub` when that file exists; no
//! private key is ever read. A server may hold the store meanwhile: the check then sees the
//! store as of the moment it opened ([`server_lock`] says whether one does).
//!
//! [`StoreView::check_tenant`] checks every column family against the entries, not only the
//! entries: the entries themselves through the same [`Verifier`] the server uses (hashes,
//! chain links, signatures, key registry, rules, the tree root against the newest checkpoint),
//! then `event_ids`, `streams`, `stream_heads`, every stored `tree` node, every stored
//! `checkpoints` row, `keys`, the `head` row, and no row beyond the head. It streams: per
//! tenant it holds the Merkle frontier, the key registry and one bit per entry for each of
//! `event_ids` and `streams` (proving each entry is named by exactly one row of each).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{DBRecoveryMode, Direction, ErrorKind, IteratorMode, Options, ReadOptions, DB};

use super::entry::*;
use super::layout::*;
use crate::checkpoint::{SignedCheckpoint, TreeFormat};
use crate::error::InvalidEvent;
use crate::event::ParsedEvent;
use crate::hash::{digest_eq, Hash32};
use crate::keys::{public_key_from_bytes, public_key_from_text, KeyId};
use crate::merkle::{Frontier, LogHasher, TreeHasher};
use crate::registry::{KeyRecord, TrustRoots};
use crate::rules::EventRules;
use crate::verify::{Check, Preparsed, Verifier, VerifyReport};

mod tenant;
mod visit;
use tenant::TenantRun;

/// Problems listed per tenant and column family before the rest are only counted.
const LISTED_PER_SOURCE: usize = 20;

/// One inconsistency found by the check: where (column family, tenant, seq or key) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The column family (`meta`, `entries`, `event_ids`, …), or `store` for RocksDB itself,
    /// or `keys/ledger.pub`.
    pub cf: String,
    /// The tenant, when the row belongs to one.
    pub tenant: Option<String>,
    /// The entry the problem is about, when there is one.
    pub seq: Option<u64>,
    /// The row's key, readable (`stream "x" version 3`, `level 2 index 5`, …), when the row is
    /// not simply an entry's.
    pub key: Option<String>,
    /// The verifier's check, when the entries' verification failed.
    pub check: Option<Check>,
    /// What is wrong.
    pub detail: String,
}

impl Problem {
    fn new(cf: &str, detail: impl Into<String>) -> Self {
        Self { cf: cf.to_owned(), tenant: None, seq: None, key: None, check: None, detail: detail.into() }
    }

    fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    fn seq(mut self, seq: u64) -> Self {
        self.seq = Some(seq);
        self
    }

    fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cf)?;
        if let Some(tenant) = &self.tenant {
            write!(f, ", tenant {tenant}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, ", seq {seq}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", {key}")?;
        }
        if let Some(check) = self.check {
            write!(f, ": {check} check failed")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Why the store could not be opened for the check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsckOpenError {
    /// A file or directory could not be read: it does not exist, permission is denied, or the
    /// disk failed. The audit could not run.
    #[error("{path}: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The directory is not a data dir.
    #[error("{path} is not a Release Ledger data dir: {reason}")]
    NotADataDir {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// RocksDB could not read the store for another reason than corruption (a file the
    /// MANIFEST names is missing, an I/O error, …): the audit could not run.
    #[error("rocksdb could not open {path} read-only: {message}")]
    Storage {
        /// The RocksDB directory.
        path: PathBuf,
        /// RocksDB's error, which names the file.
        message: String,
    },
    /// The store is damaged: RocksDB reports corruption, a column family or a `meta` record is
    /// missing or malformed, or `keys/ledger.pub` names another key than the store.
    #[error("{0}")]
    Corrupted(Problem),
}

impl FsckOpenError {
    /// Whether this is damage found in the store (an inconsistency) rather than a reason the
    /// check could not run.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Self::Corrupted(_))
    }
}

/// Whether a process holds `db/LOCK`, as a running server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerLock {
    /// No process holds the lock (or there is no LOCK file).
    Free,
    /// A process holds it: a server is (probably) running on this data dir.
    HeldBy {
        /// The holder's pid, as the kernel reports it.
        pid: i32,
    },
}

/// Asks the kernel, without taking it, whether another process holds RocksDB's lock on
/// `DIR/db/LOCK` (`fcntl(F_GETLK)` on a read-only descriptor: nothing is written or locked).
/// A lock held by this very process is not reported (POSIX record locks are per process).
pub fn server_lock(data_dir: &Path) -> std::io::Result<ServerLock> {
    let path = data_dir.join("db").join("LOCK");
    let file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ServerLock::Free),
        Err(e) => return Err(e),
    };
    let mut probe = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as _,
        l_whence: nix::libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut probe)).map_err(std::io::Error::from)?;
    Ok(if i32::from(probe.l_type) == nix::libc::F_UNLCK {
        ServerLock::Free
    } else {
        ServerLock::HeldBy { pid: probe.l_pid }
    })
}

/// Where the trust roots came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerKeyFile {
    /// `keys/ledger.pub` exists and names the store's ledger key.
    Matches,
    /// There is no `keys/ledger.pub`: the roots are the store's word alone.
    Absent,
}

/// A tenant as `meta` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// The tenant name.
    pub name: String,
    /// Its id, the first 4 bytes of each of its keys.
    pub tid: u32,
    /// The `head/` row, if present and well-formed.
    head: Option<Head>,
}

impl TenantRow {
    /// The size its `head/` row records, if the row is readable.
    pub fn head_size(&self) -> Option<u64> {
        self.head.map(|h| h.size)
    }
}

/// What the check found of one tenant: where its log ends, for the anchor comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantTip {
    /// The tenant id.
    pub tid: u32,
    /// Entries found (the head's size, when the entries agree with it).
    pub size: u64,
    /// The entry hash of seq `size - 1`.
    pub chain_head: Hash32,
}

/// What one tenant's check covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantCheck {
    /// The tenant.
    pub tenant: String,
    /// Its id.
    pub tid: u32,
    /// The size its head records.
    pub size: u64,
    /// The verifier's report, when every entry verified.
    pub report: Option<VerifyReport>,
    /// Rows checked per column family.
    pub rows: Vec<(&'static str, u64)>,
    /// Stored checkpoints checked (every one, each against the tree at its size).
    pub checkpoints_checked: u64,
    /// The tip, when the entries agree with the head (what an anchor is compared with).
    pub tip: Option<TenantTip>,
    /// Every problem found (at most 20 per column family; the rest are counted in
    /// `omitted`).
    pub problems: Vec<Problem>,
    /// Problems found beyond those listed.
    pub omitted: u64,
}

/// Options of the check.
#[derive(Clone, Default)]
pub struct FsckOptions {
    /// Checkpoint origin prefix the checkpoints must name; default: the one the store records.
    pub origin_prefix: Option<String>,
    /// The domain rules the server applied (the event catalogue).
    pub rules: Option<Arc<dyn EventRules>>,
    /// More checkpoints (signed notes) the entries must match, for example one published
    /// elsewhere or kept from an earlier audit; those of other tenants are ignored.
    pub checkpoints: Vec<String>,
    /// Entries of a tenant up to which the check keeps a 16-byte fingerprint per entry, so that
    /// its `event_ids` and `streams` rows need not read their entries back (default 2^24, at
    /// most 256 MiB). A larger tenant's rows are each checked by a lookup: slower, the same
    /// findings. `Some(0)`: every row by lookup.
    pub max_fingerprints: Option<u64>,
}

impl fmt::Debug for FsckOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsckOptions").field("origin_prefix", &self.origin_prefix).finish_non_exhaustive()
    }
}

/// What [`StoreView::check_tenant`] shows each entry to: the entry, and its payload as parsed
/// (`None`: redacted). It runs on a thread of its own, beside the entries pass.
pub type FsckVisit<'a> =
    dyn FnMut(&Entry, Option<Result<&ParsedEvent, &InvalidEvent>>) -> Result<(), String> + Send + 'a;

/// A read-only view of a data dir's store, for the check.
pub struct StoreView {
    db: DB,
    data_dir: PathBuf,
    roots: TrustRoots,
    origin_prefix: String,
    key_file: LedgerKeyFile,
}

impl fmt::Debug for StoreView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreView").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

/// RocksDB options that create and repair nothing.
fn read_only_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(false);
    options.create_missing_column_families(false);
    options.set_paranoid_checks(true);
    // A record whose checksum does not match is an error; only an incomplete last record (a
    // write torn by a crash, never acknowledged) is tolerated.
    options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
    options.set_skip_stats_update_on_db_open(true);
    options
}

fn rocks_open_error(db_dir: &Path, error: &rocksdb::Error) -> FsckOpenError {
    let message = error.to_string();
    // RocksDB reports a file its MANIFEST names but the disk has not (or will not open) as
    // corruption wrapping the I/O error; that is a missing or unreadable file, which the
    // message names, so it is told apart by the one thing that says so: the OS error text.
    let unreadable = ["No such file or directory", "Permission denied"].iter().any(|os| message.contains(os));
    match error.kind() {
        ErrorKind::Corruption if !unreadable => FsckOpenError::Corrupted(Problem::new("store", message)),
        _ => FsckOpenError::Storage { path: db_dir.to_path_buf(), message },
    }
}

impl StoreView {
    /// Opens `data_dir/db` read-only. Missing or unreadable files cannot run; damage is
    /// [`FsckOpenError::Corrupted`].
    pub fn open(data_dir: &Path) -> Result<Self, FsckOpenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |cause| FsckOpenError::Io { path, cause }
        };
        let dir_meta = std::fs::metadata(data_dir).map_err(io(data_dir))?;
        if !dir_meta.is_dir() {
            return Err(FsckOpenError::NotADataDir { path: data_dir.into(), reason: "not a directory".into() });
        }
        let db_dir = data_dir.join("db");
        match std::fs::metadata(&db_dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(FsckOpenError::NotADataDir {
                    path: data_dir.into(),
                    reason: "db is not a directory".into(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FsckOpenError::NotADataDir {
                    path: data_dir.into(),
                    reason: "it has no db/ directory".into(),
                })
            }
            Err(e) => return Err(io(&db_dir)(e)),
        }
        // RocksDB would say "IO error" for all of these; saying which file, and why, is ours.
        let current = db_dir.join("CURRENT");
        let manifest = std::fs::read_to_string(&current).map_err(io(&current))?;
        let manifest = manifest.strip_suffix('\n').filter(|m| m.starts_with("MANIFEST-") && !m.contains('/'));
        let Some(manifest) = manifest else {
            return Err(FsckOpenError::Corrupted(
                Problem::new("store", "db/CURRENT does not name a MANIFEST file").key("db/CURRENT"),
            ));
        };
        for item in std::fs::read_dir(&db_dir).map_err(io(&db_dir))? {
            let path = item.map_err(io(&db_dir))?.path();
            if path.is_file() {
                std::fs::File::open(&path).map_err(io(&path))?;
            }
        }
        let manifest = db_dir.join(manifest);
        std::fs::File::open(&manifest).map_err(io(&manifest))?;

        let options = read_only_options();
        let found = DB::list_cf(&options, &db_dir).map_err(|e| rocks_open_error(&db_dir, &e))?;
        let missing: Vec<&str> = ALL_CFS.iter().copied().filter(|cf| !found.iter().any(|f| f == cf)).collect();
        if !missing.is_empty() {
            return Err(FsckOpenError::Corrupted(Problem::new(
                "store",
                format!("the MANIFEST lists no column family {missing:?} (it lists {found:?})"),
            )));
        }
        let extra: Vec<&String> =
            found.iter().filter(|f| f.as_str() != "default" && !ALL_CFS.contains(&f.as_str())).collect();
        if !extra.is_empty() {
            return Err(FsckOpenError::Corrupted(Problem::new(
                "store",
                format!("the MANIFEST lists column families this format has not: {extra:?}"),
            )));
        }
        let db =
            DB::open_cf_for_read_only(&options, &db_dir, ALL_CFS, false).map_err(|e| rocks_open_error(&db_dir, &e))?;

        let corrupted = |detail: String| FsckOpenError::Corrupted(Problem::new(CF_META, detail));
        let meta = db.cf_handle(CF_META).ok_or_else(|| corrupted("the meta column family is missing".into()))?;
        let get = |name: &[u8]| {
            db.get_cf(meta, name).map_err(|e| match e.kind() {
                ErrorKind::Corruption => corrupted(e.to_string()),
                _ => FsckOpenError::Storage { path: db_dir.clone(), message: e.to_string() },
            })
        };
        let format = get(META_FORMAT)?.ok_or_else(|| {
            corrupted("no format record: the store holds no ledger (an empty or damaged store)".into())
        })?;
        let format = <[u8; 4]>::try_from(format.as_slice())
            .map(u32::from_be_bytes)
            .map_err(|_| corrupted("the format record is not 4 bytes".into()))?;
        if format == FORMAT_V1 {
            return Err(corrupted(format!(
                "a format v1 store (BLAKE3 tree); this build reads format {FORMAT_VERSION}: upgrade it with \
                 `release-ledger migrate --data-dir DIR`, then check it"
            )));
        }
        if format != FORMAT_VERSION {
            return Err(corrupted(format!("store format {format}, this build reads {FORMAT_VERSION}")));
        }
        let origin_prefix =
            get(META_ORIGIN_PREFIX)?.ok_or_else(|| corrupted("the origin prefix record is missing".into())).and_then(
                |raw| String::from_utf8(raw).map_err(|_| corrupted("the origin prefix record is not UTF-8".into())),
            )?;
        let read_key = |name: &[u8]| -> Result<ed25519_dalek::VerifyingKey, FsckOpenError> {
            let label = String::from_utf8_lossy(name).into_owned();
            let raw = get(name)?.ok_or_else(|| corrupted(format!("{label} is missing")))?;
            public_key_from_bytes(&raw).map_err(|e| corrupted(format!("{label}: {e}")))
        };
        let roots = TrustRoots::new(read_key(META_ADMIN_PUB)?, read_key(META_LEDGER_PUB)?);

        let pub_path = data_dir.join("keys").join("ledger.pub");
        let key_file = match std::fs::read_to_string(&pub_path) {
            Ok(text) => {
                let key = public_key_from_text(&text).map_err(|e| {
                    FsckOpenError::Corrupted(Problem::new("keys/ledger.pub", format!("not a public key: {e}")))
                })?;
                if KeyId::of(&key) != roots.ledger_id() {
                    return Err(FsckOpenError::Corrupted(Problem::new(
                        "keys/ledger.pub",
                        format!("names key {}, the store's ledger key is {}", KeyId::of(&key), roots.ledger_id()),
                    )));
                }
                LedgerKeyFile::Matches
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LedgerKeyFile::Absent,
            Err(e) => return Err(io(&pub_path)(e)),
        };
        Ok(Self { db, data_dir: data_dir.to_path_buf(), roots, origin_prefix, key_file })
    }

    /// The checkpoint origin prefix recorded in the store.
    pub fn origin_prefix(&self) -> &str {
        &self.origin_prefix
    }

    /// The admin and ledger public keys recorded in the store.
    pub fn trust_roots(&self) -> TrustRoots {
        self.roots
    }

    /// Whether `keys/ledger.pub` confirmed the store's ledger key.
    pub fn ledger_key_file(&self) -> &LedgerKeyFile {
        &self.key_file
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every column family was opened (listed and checked in `open`).
        #[allow(clippy::expect_used)]
        self.db.cf_handle(name).expect("column family opened")
    }

    fn scan(&self, cf: &str, from: &[u8]) -> rocksdb::DBIteratorWithThreadMode<'_, DB> {
        let mut options = ReadOptions::default();
        options.set_verify_checksums(true);
        options.fill_cache(false);
        self.db.iterator_cf_opt(self.cf(cf), options, IteratorMode::From(from, Direction::Forward))
    }

    /// Redacted entries whose old versions may still be in the store's files: the server
    /// erases them right after the redaction commits, so a stopped store holds some only if it
    /// stopped (or crashed) first; the next open erases them (docs/format.md, "Erasure").
    pub fn pending_erasures(&self) -> u64 {
        self.scan(CF_META, super::erasure::ERASE_PREFIX)
            .take_while(|item| item.as_ref().is_ok_and(|(key, _)| key.starts_with(super::erasure::ERASE_PREFIX)))
            .count() as u64
    }

    /// Every tenant of `meta`, plus the problems of `meta` itself: malformed rows, a tenant
    /// without a head, a head without a tenant, two tenants with one id, rows of no known
    /// kind, and no tenant at all (nothing to verify is never verified).
    pub fn tenants(&self) -> (Vec<TenantRow>, Vec<Problem>) {
        let mut tenants: Vec<TenantRow> = Vec::new();
        let mut heads: HashMap<u32, Result<Head, String>> = HashMap::new();
        let mut problems = Vec::new();
        for item in self.scan(CF_META, b"") {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    problems.push(Problem::new(CF_META, format!("rocksdb: {e}")));
                    break;
                }
            };
            if [
                META_FORMAT,
                META_ADMIN_PUB,
                META_LEDGER_PUB,
                META_ANCHORED,
                META_ORIGIN_PREFIX,
                META_MIGRATION,
                META_APPLIED,
            ]
            .contains(&key.as_ref())
            {
                continue;
            }
            if key.starts_with(super::erasure::ERASE_PREFIX) {
                // A redaction whose old versions are still in the files: reported by
                // `pending_erasures`, erased at the next open; not an integrity problem.
                continue;
            }
            if key.starts_with(META_SALVAGE_PREFIX) {
                // A salvage that lost acknowledged entries: the log verifies as it stands, but
                // seqs past each loss were handed out again. An auditor must see it every time.
                match serde_json::from_slice::<super::SalvageReport>(&value) {
                    Ok(report) if !report.lost_anything() => {}
                    Ok(report) => {
                        let lost: Vec<String> = report
                            .tenants
                            .iter()
                            .filter_map(|t| t.lost.as_ref().map(|lost| format!("{}: {lost}", t.tenant)))
                            .chain(report.anchor_problem.iter().map(|p| format!("anchor unreadable: {p}")))
                            .collect();
                        problems.push(
                            Problem::new(
                                CF_META,
                                format!(
                                    "the store was salvaged and lost acknowledged entries ({}); seqs past each loss \
                                     were handed out again",
                                    lost.join("; ")
                                ),
                            )
                            .key(format!("salvage at {} ns", report.at_ns)),
                        );
                    }
                    Err(e) => problems.push(
                        Problem::new(CF_META, format!("salvage record does not decode: {e}"))
                            .key(String::from_utf8_lossy(&key)),
                    ),
                }
                continue;
            }
            if let Some(name) = key.strip_prefix(META_TENANT_PREFIX) {
                let Ok(name) = String::from_utf8(name.to_vec()) else {
                    problems.push(Problem::new(CF_META, "tenant name is not UTF-8").key(hex::encode(&key)));
                    continue;
                };
                let Ok(tid) = <[u8; 4]>::try_from(value.as_ref()).map(u32::from_be_bytes) else {
                    problems.push(Problem::new(CF_META, "tenant id is not 4 bytes").tenant(&name));
                    continue;
                };
                if let Some(other) = tenants.iter().find(|t| t.tid == tid) {
                    problems.push(
                        Problem::new(CF_META, format!("tenant id {tid} is also tenant {}'s", other.name)).tenant(&name),
                    );
                    continue;
                }
                tenants.push(TenantRow { name, tid, head: None });
            } else if let Some(tid) = key.strip_prefix(META_HEAD_PREFIX) {
                let Ok(tid) = <[u8; 4]>::try_from(tid).map(u32::from_be_bytes) else {
                    problems.push(Problem::new(CF_META, "head row key is malformed").key(hex::encode(&key)));
                    continue;
                };
                heads.insert(tid, Head::decode(&value).map_err(|e| e.0));
            } else {
                problems.push(Problem::new(CF_META, "a row of no known kind").key(String::from_utf8_lossy(&key)));
            }
        }
        for tenant in &mut tenants {
            match heads.remove(&tenant.tid) {
                None => problems.push(Problem::new(CF_META, "the tenant has no head row").tenant(&tenant.name)),
                Some(Err(e)) => {
                    problems.push(Problem::new(CF_META, format!("head row: {e}")).tenant(&tenant.name).key("head"))
                }
                Some(Ok(head)) if head.size == 0 => problems.push(
                    Problem::new(CF_META, "head row records an empty log (a tenant exists from its first entry)")
                        .tenant(&tenant.name)
                        .key("head"),
                ),
                Some(Ok(head)) => tenant.head = Some(head),
            }
        }
        if tenants.is_empty() {
            problems.push(Problem::new(
                CF_META,
                "the store holds no tenant: nothing could be verified (an unused data dir, or a store that lost its rows)",
            ));
        }
        let mut orphans: Vec<u32> = heads.into_keys().collect();
        orphans.sort_unstable();
        for tid in orphans {
            problems.push(
                Problem::new(CF_META, format!("head row of tenant id {tid}, which no tenant row names"))
                    .key(format!("head/{tid}")),
            );
        }
        tenants.sort_by_key(|t| t.tid);
        (tenants, problems)
    }

    /// Rows of the data column families whose tenant id no tenant has (found by seeking from
    /// one tenant's key range to the next, not by reading every row).
    pub fn orphan_rows(&self, tenants: &[TenantRow]) -> Vec<Problem> {
        let known: BTreeSet<u32> = tenants.iter().map(|t| t.tid).collect();
        let mut problems = Vec::new();
        for cf in ALL_CFS.into_iter().filter(|cf| *cf != CF_META) {
            let mut from: Vec<u8> = Vec::new();
            loop {
                let Some(item) = self.scan(cf, &from).next() else { break };
                let key = match item {
                    Ok((key, _)) => key,
                    Err(e) => {
                        problems.push(Problem::new(cf, format!("rocksdb: {e}")));
                        break;
                    }
                };
                let Some(tid) = tid_of_key(&key) else {
                    problems.push(Problem::new(cf, "a key shorter than a tenant id").key(hex::encode(&key)));
                    from = [key.as_ref(), &[0]].concat();
                    continue;
                };
                if !known.contains(&tid) {
                    problems.push(
                        Problem::new(cf, format!("rows of tenant id {tid}, which no tenant has"))
                            .key(hex::encode(&key)),
                    );
                }
                match tid.checked_add(1) {
                    Some(next) => from = next.to_be_bytes().to_vec(),
                    None => break,
                }
            }
        }
        problems
    }

    /// Checks one tenant: every entry, then every derived row against the entries. `visit`,
    /// if any, sees each entry the verifier accepted, in seq order, on a thread of its own (the
    /// audit folds them to re-derive decisions), with what [`ParsedEvent::parse`] made of its
    /// payload (`None`: redacted), the parse the verifier uses too. Its first error is reported
    /// as a problem of that entry, placed where it would be had `visit` run in line with the
    /// pass (`fsck/visit.rs`), after which `visit` sees no further entry.
    pub fn check_tenant(
        &self,
        tenant: &TenantRow,
        options: &FsckOptions,
        visit: Option<&mut FsckVisit<'_>>,
    ) -> TenantCheck {
        let mut run = TenantRun::new(self, tenant, options.max_fingerprints.unwrap_or(tenant::MAX_SEEN));
        let Some(head) = tenant.head else {
            run.problem(Problem::new(CF_META, "no readable head: the tenant's rows were not checked"));
            return run.finish(None, None);
        };
        let prefix = options.origin_prefix.as_deref().unwrap_or(&self.origin_prefix);
        let mut verifier = Verifier::new(&tenant.name, self.roots, prefix).with_rules(options.rules.clone());
        let origin = format!("{prefix}/{}", tenant.name);
        let extra: Vec<&str> = options
            .checkpoints
            .iter()
            // One that does not verify is every tenant's failure; one that does, its tenant's.
            .filter(|note| match SignedCheckpoint::parse_and_verify_any(note, self.roots.ledger()) {
                Ok((signed, TreeFormat::V2Sha256)) if signed.checkpoint.origin == origin => {
                    verifier.want_root_at(signed.checkpoint.size);
                    true
                }
                // Signed before migration, under the v1 origin prefix: the same tenant's log.
                Ok((signed, TreeFormat::V1Blake3))
                    if signed.checkpoint.origin.ends_with(&format!("/{}", tenant.name)) =>
                {
                    verifier.want_v1_root_at(signed.checkpoint.size);
                    true
                }
                Ok(_) => false,
                Err(_) => true,
            })
            .map(String::as_str)
            .collect();
        // The entries pass, with its reading and its visitor each on a thread beside it.
        let pass = std::thread::scope(|scope| {
            let entries = tenant::read_ahead(scope, self, tenant.tid, head.size, run.keeps_fingerprints());
            let visitor = visit.map(|visit| visit::Visitor::spawn(scope, visit));
            run.entries_pass(head, verifier, prefix, &extra, entries, visitor)
        });
        run.entries_beyond(head.size);
        if let Some(registry) = &pass.registry {
            run.keys(registry);
        }
        run.event_ids(head.size);
        let streams = run.streams(head.size);
        run.stream_heads(streams);
        let tip = (pass.complete && pass.tip_matches).then_some(TenantTip {
            tid: tenant.tid,
            size: head.size,
            chain_head: head.chain_head,
        });
        run.finish(pass.report, tip)
    }

    /// Compares the tips the check found with the anchor a server keeps outside RocksDB
    /// (`DATA_DIR/anchor`, an fsynced high-water mark of each tenant's size and chain head):
    /// a store that is a consistent but older prefix of what was acknowledged is caught here.
    ///
    /// Every tenant the anchor names must be there, at least as long as anchored, with the
    /// anchored chain head at that size; a store that was anchored must still have its anchor.
    pub fn check_against_anchor(&self, tips: &[TenantTip]) -> Vec<Problem> {
        let mut problems = Vec::new();
        let log = match super::anchor::read_log(&self.data_dir) {
            Ok(log) => log,
            Err(e) => return vec![Problem::new("anchor", e.to_string())],
        };
        let anchored = log.as_ref().map(|log| log.heads.clone());
        let Some(anchored) = anchored else {
            let was_anchored = self
                .db
                .cf_handle(CF_META)
                .and_then(|meta| self.db.get_cf(meta, META_ANCHORED).ok().flatten())
                .is_some();
            if was_anchored {
                problems.push(Problem::new(
                    "anchor",
                    "the anchor file is missing, but this store has been anchored: nothing vouches that no \
                     acknowledged entry was lost",
                ));
            }
            return problems;
        };
        let by_tid: HashMap<u32, &TenantTip> = tips.iter().map(|tip| (tip.tid, tip)).collect();
        // Groups RocksDB lost that the anchor recorded are not lost: the server's next open
        // replays them (this check is read-only, so it only says so).
        let replayable = log
            .and_then(|log| log.plan(|tid| by_tid.get(&tid).map(|tip| tip.size)).ok())
            .map(|plan| plan.before.into_keys().collect::<std::collections::HashSet<u32>>())
            .unwrap_or_default();
        let hint = |tid: &u32| {
            if replayable.contains(tid) {
                "; the anchor records the missing commit groups, which the server's next open replays"
            } else {
                ""
            }
        };
        for (tid, want) in &anchored {
            let tip = by_tid.get(tid);
            let hash_at = |seq: u64| match tip {
                Some(tip) if seq + 1 == tip.size => Ok(tip.chain_head),
                _ => self
                    .db
                    .cf_handle(CF_ENTRIES)
                    .and_then(|entries| self.db.get_cf(entries, seq_key(*tid, seq)).ok().flatten())
                    .and_then(|bytes| decode_entry_value(seq, &bytes).ok())
                    .map(|entry| entry.entry_hash)
                    .ok_or_else(|| "unreadable".to_owned()),
            };
            let Some(shortfall) = super::anchor::shortfall(want, tip.map(|tip| tip.size), hash_at) else { continue };
            let problem = match shortfall {
                super::anchor::Shortfall::Missing => Problem::new(
                    "anchor",
                    format!(
                        "{} entries were acknowledged, but no verified tenant of the store has this id{}",
                        want.size,
                        hint(tid)
                    ),
                ),
                super::anchor::Shortfall::Shorter { stored } => Problem::new(
                    "anchor",
                    format!(
                        "the store holds {stored} entries but {} were acknowledged: entries {stored}..{} are missing{}",
                        want.size,
                        want.size,
                        hint(tid)
                    ),
                ),
                super::anchor::Shortfall::Rewritten { seq } | super::anchor::Shortfall::Unreadable { seq, .. } => {
                    Problem::new("anchor", "the entry at the anchored size is not the one acknowledged").seq(seq)
                }
            };
            problems.push(problem.key(format!("tenant id {tid}")));
        }
        problems
    }

    /// The whole check: `meta`, rows of no tenant, every tenant, the anchor. An empty store is
    /// a problem (nothing could be verified).
    pub fn check(&self, options: &FsckOptions) -> (Vec<TenantCheck>, Vec<Problem>) {
        let (tenants, mut problems) = self.tenants();
        problems.extend(self.orphan_rows(&tenants));
        let checks: Vec<TenantCheck> = tenants.iter().map(|tenant| self.check_tenant(tenant, options, None)).collect();
        let tips: Vec<TenantTip> = checks.iter().filter_map(|c| c.tip).collect();
        problems.extend(self.check_against_anchor(&tips));
        (checks, problems)
    }
}
