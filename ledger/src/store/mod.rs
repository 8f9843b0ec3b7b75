//! The RocksDB store: one log per tenant, a group-commit writer, reads and proofs.

pub mod anchor;
mod append;
mod config;
mod entry;
mod erasure;
mod fresh;
mod fsck;
mod layout;
mod migrate;
mod open;
mod read;
mod rocks;
mod salvage;
pub mod tiles;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use rocksdb::{Direction, IteratorMode, DB};

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::error::{clip, AppendError, OpenError, ReadError};
use crate::hash::Hash32;
use crate::keys::{KeyId, KeyPair, KeyPaths};
use crate::merkle::{self, Frontier, LogHasher, NodeSource};
use crate::registry::{KeyRecord, TrustRoots};
use crate::verify::{ResumePoint, Verifier, VerifyFailure, VerifyReport};

use anchor::Anchor;
pub use append::{GroupRecord, RecordResults, RecordedEvent};
pub use config::{
    CommitFault, CommitObserver, CommitPoint, CommitStats, Config, DEFAULT_ANSWER_SPIN, DEFAULT_MIN_FREE_BYTES,
};
pub use entry::{AppendEvent, Entry, EntryBody, ExpectedVersion, Receipt};
pub use fsck::{
    server_lock, FsckOpenError, FsckOptions, FsckVisit, LedgerKeyFile, Problem, ServerLock, StoreView, TenantCheck,
    TenantRow, TenantTip,
};
use layout::*;
/// The value layouts, re-exported for the fuzz targets only (`ledger::fuzzing`, `fuzz/`).
#[doc(hidden)]
pub use layout::{
    decode_entry_value, decode_event_id_value, encode_entry_value, encode_event_id_value, EncodedBody, Head,
};
pub use migrate::{migrate, MigrateOptions, Migration, MigrationReport, TenantMigration};
pub(crate) use open::{anchored_heads, open_error};
use open::{
    check_anchor, check_index_samples, init_inner, log_files, only_unacknowledged_tail, open_db, replay_lost_groups,
};
pub(crate) use read::read_entry;
pub use read::EntryIter;
use read::TreeSource;
pub(crate) use rocks::sync_store_wal;
pub use rocks::{
    cf_options, column_families, db_options, hardware_crc32c, quiet_info_log, whole_key_filters, BLOCK_CACHE_BYTES,
    COLUMN_FAMILIES,
};
pub use salvage::{salvage, SalvageReport, SalvagedTenant};

/// An append queued for the writer ([`Ledger::submit`]): resolves to the request's receipts
/// once its commit group is durable and anchored, or to the reason it was not stored. Await
/// it, or block on it with [`PendingAppend::wait`]. Dropping it does not cancel the append.
#[derive(Debug)]
#[must_use = "the append is only known to be stored once this resolves"]
pub struct PendingAppend {
    receipt: append::oneshot::Receiver<Result<Vec<Receipt>, AppendError>>,
    /// Counted among the requests awaited (`Inner::spin`) until dropped.
    awaiting: append::spin::Awaiting,
    /// Awaited awake at first ([`Config::answer_spin`]).
    spin: Option<append::spin::Spin>,
}

impl PendingAppend {
    /// Blocks the calling thread until the request's group is committed (on an async
    /// runtime's thread this blocks that thread, as [`Ledger::append_batch`] always has).
    pub fn wait(mut self) -> Result<Vec<Receipt>, AppendError> {
        /// Wakes the blocked thread.
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = std::task::Context::from_waker(&waker);
        loop {
            if let std::task::Poll::Ready(answer) = std::pin::Pin::new(&mut self).poll(&mut cx) {
                return answer;
            }
            std::thread::park();
        }
    }
}

impl Future for PendingAppend {
    type Output = Result<Vec<Receipt>, AppendError>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        if let Some(spin) = self.spin.take() {
            spin.wait(&self.receipt, &self.awaiting);
        }
        self.receipt.poll(cx).map(|answer| answer.unwrap_or(Err(AppendError::ShuttingDown)))
    }
}

/// A tenant's committed head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantHead {
    /// Number of entries.
    pub size: u64,
    /// Entry hash of the last entry.
    pub chain_head: Hash32,
    /// `recordedAt` of the last entry.
    pub last_recorded_at: u64,
}

/// An inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry's seq (leaf index).
    pub seq: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// Audit path, leaf first.
    pub path: Vec<Hash32>,
}

/// A consistency proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub old_size: u64,
    /// The newer tree size.
    pub new_size: u64,
    /// The proof nodes.
    pub path: Vec<Hash32>,
}

/// Committed state of one tenant, kept in memory.
#[derive(Debug, Clone)]
pub(crate) struct TenantState {
    pub(crate) tid: u32,
    pub(crate) head: Head,
    pub(crate) frontier: Frontier<LogHasher>,
    pub(crate) keys: HashMap<KeyId, KeyRecord>,
    pub(crate) checkpoint: SignedCheckpoint,
}

#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) tenants: HashMap<String, TenantState>,
    /// Every tenant a key id is registered in (to tell "other tenant" from "unknown").
    pub(crate) key_tenants: HashMap<KeyId, Vec<String>>,
    /// Parsed public keys of every registered key, so the append path never re-parses one (a
    /// key id is the hash of its key, so an entry can never go stale).
    pub(crate) public_keys: HashMap<KeyId, ed25519_dalek::VerifyingKey>,
    pub(crate) next_tid: u32,
}

/// A callback run after every commit with `(tenant, new size)`.
pub type CommitListener = Box<dyn Fn(&str, u64) + Send + Sync>;

pub(crate) struct Inner {
    pub(crate) db: DB,
    pub(crate) config: Config,
    pub(crate) roots: TrustRoots,
    pub(crate) ledger_key: KeyPair,
    /// The stored checkpoint origin prefix (`META_ORIGIN_PREFIX`).
    pub(crate) origin_prefix: String,
    pub(crate) committed: RwLock<Committed>,
    pub(crate) poisoned: Mutex<Option<String>>,
    /// Only the writer thread appends to it (after each durable commit, before the receipts).
    /// `None` only while the store is being opened.
    pub(crate) anchor: Mutex<Option<Anchor>>,
    pub(crate) sizes: Mutex<HashMap<String, u64>>,
    pub(crate) grew: Condvar,
    pub(crate) listeners: RwLock<Vec<CommitListener>>,
    /// Wakes the eraser thread after a redaction commits (`erasure`).
    pub(crate) erasure: erasure::Signal,
    /// Just-committed entries held for the projection worker (`fresh`).
    pub(crate) fresh: Mutex<fresh::Fresh>,
    /// Where concurrent single-event requests' signatures meet to be verified together.
    pub(crate) combiner: append::Combiner,
    /// Requests being prepared (decoded, verified) right now: a large request is checked in
    /// one piece per core only when it is the only one (`append::prepare`).
    pub(crate) preparing: std::sync::atomic::AtomicUsize,
    /// What decides whether an answer is awaited awake ([`append::spin`]): hints of the load.
    pub(crate) spin: Arc<append::spin::Hints>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Every column family is created at open; a missing one is a bug, not input.
        #[allow(clippy::expect_used)]
        self.db.cf_handle(name).expect("column family created at open")
    }

    pub(crate) fn origin(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.origin_prefix)
    }
}

/// Where appends go when the store is one node of a replicated cluster (docs/replication.md):
/// instead of committing them itself, [`Ledger::append_batch`] hands each request (checked
/// first, so a request every node would refuse is refused here, storing nothing) to the
/// replicator, which makes it part of a record in the replicated log; every node then applies
/// that record with [`Ledger::apply_record`], and the replicator answers with what applying it
/// answered on this node.
pub trait Replicator: Send + Sync + std::fmt::Debug {
    /// Whether this node may make records now (it is the leader); when not, the error to
    /// answer with ([`AppendError::NotLeader`]), before any work is done on the request.
    fn ready(&self) -> Result<(), AppendError>;

    /// Replicates one request (events of one tenant, all or nothing) and waits for its
    /// answer: the receipts once a majority holds it durably and this node applied it.
    fn replicate(&self, events: Vec<RecordedEvent>) -> Result<Vec<Receipt>, AppendError>;
}

/// A handle to a data dir: the append pipeline, reads and proofs. Cheap to share behind an
/// `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Ledger {
    pub(crate) inner: Arc<Inner>,
    replicator: RwLock<Option<Arc<dyn Replicator>>>,
    sender: RwLock<Option<crossbeam_channel::Sender<append::Work>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    eraser: Mutex<Option<JoinHandle<()>>>,
    pub(crate) data_dir: PathBuf,
}

impl Ledger {
    /// Opens (creating on first use) the data dir: RocksDB under `DIR/db`, keys under
    /// `DIR/keys`, the anchor at `DIR/anchor`. A fresh data dir gets a new ledger key and
    /// admin key.
    ///
    /// Opening never repairs anything. A store that RocksDB finds corrupted (a WAL record
    /// that fails its checksum, a damaged MANIFEST or SST), that disagrees with itself, or
    /// that is shorter than its anchor (acknowledged entries lost) is refused with an error
    /// naming what is wrong; [`salvage`] is the explicit way out.
    pub fn open(data_dir: &Path, config: Config) -> Result<Self, OpenError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |cause| OpenError::Io { path, cause }
        };
        let paths = KeyPaths::new(data_dir);
        // Read before RocksDB touches anything: the anchor is the witness of what the store
        // held when it was last open.
        let log = anchor::read_log(data_dir).map_err(|e| OpenError::Corrupted(e.to_string()))?;
        let anchored = log.as_ref().map(|log| log.heads.clone());
        std::fs::create_dir_all(data_dir.join("keys")).map_err(io(data_dir))?;
        set_mode(&data_dir.join("keys"), 0o700).map_err(io(data_dir))?;

        let db = match open_db(&data_dir.join("db"), &db_options()) {
            Ok(db) => db,
            // A damaged WAL record is tolerated only where the anchor proves nothing
            // acknowledged lies at or after it, or holds every group after it (replayed below):
            // the unsynced tail of the WAL, torn by power loss.
            Err(OpenError::Corrupted(reason)) if only_unacknowledged_tail(data_dir, log.as_ref()) => {
                tracing::warn!(
                    %reason,
                    "the WAL ends in a damaged record after everything the store alone must hold (a write torn \
                     by power loss); recovering to the last intact record"
                );
                let mut options = db_options();
                options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
                open_db(&data_dir.join("db"), &options)?
            }
            // RocksDB's message for a damaged WAL record names no file: name the candidates.
            Err(OpenError::Corrupted(reason)) => {
                return Err(OpenError::Corrupted(format!("{reason} (in {})", log_files(&data_dir.join("db")))))
            }
            Err(e) => return Err(e),
        };
        let replayed = replay_lost_groups(&db, log.as_ref())?;
        drop(log);
        let inner = Arc::new(init_inner(db, &paths, config, anchored.as_ref())?);
        let committed = load_committed(&inner)?;
        let heads = check_anchor(&inner, data_dir, &committed, anchored)?;
        if let Err(reason) = replayed {
            // The anchor check above names the tenant when the store is shorter; a store it
            // accepts that the anchor's groups still cannot explain is refused here.
            return Err(OpenError::Corrupted(format!("the store and its anchor disagree: {reason}")));
        }
        check_index_samples(&inner, &committed)?;
        // The new anchor holds no group records: everything RocksDB holds (the previous
        // process's unsynced writes included) must be durable in RocksDB first.
        sync_store_wal(&inner.db).map_err(io(&data_dir.join("db")))?;
        // Rewrite the anchor whole with the heads the store holds now (never fewer than
        // anchored, checked above): it stays small, and a pre-anchor store gets its first.
        let anchor = Anchor::create_with_capacity(data_dir, heads, inner.config.anchor_capacity);
        *inner.anchor.lock() = Some(anchor.map_err(io(&data_dir.join(anchor::ANCHOR_FILE)))?);
        if inner.db.get_cf(inner.cf(CF_META), META_ANCHORED)?.is_none() {
            let mut sync = rocksdb::WriteOptions::default();
            sync.set_sync(true);
            inner.db.put_cf_opt(inner.cf(CF_META), META_ANCHORED, [1u8], &sync)?;
        }
        for record in salvage::records(&inner) {
            if record.lost_anything() {
                tracing::warn!(
                    at_ns = record.at_ns,
                    tenants = ?record.tenants,
                    anchor_problem = ?record.anchor_problem,
                    "this store was salvaged and lost acknowledged entries then; seqs past each loss were handed out again"
                );
            }
        }
        *inner.sizes.lock() = committed.tenants.iter().map(|(name, t)| (name.clone(), t.head.size)).collect();
        *inner.committed.write() = committed;

        let (sender, receiver) = crossbeam_channel::bounded(inner.config.queue_capacity);
        let writer_inner = Arc::clone(&inner);
        let writer = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || append::run(&writer_inner, &receiver))
            .map_err(io(data_dir))?;
        // Its first pass erases what a crash left pending (erasure.rs).
        let eraser_inner = Arc::clone(&inner);
        let eraser = std::thread::Builder::new()
            .name("ledger-eraser".into())
            .spawn(move || erasure::run(&eraser_inner))
            .map_err(io(data_dir))?;
        tracing::info!(data_dir = %data_dir.display(), ledger_key = %inner.roots.ledger_id(), "ledger opened");
        Ok(Self {
            inner,
            replicator: RwLock::new(None),
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            eraser: Mutex::new(Some(eraser)),
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The admin and ledger public keys.
    pub fn trust_roots(&self) -> TrustRoots {
        self.inner.roots
    }

    /// The ledger's signing key (signs checkpoints and decisions).
    pub fn ledger_key(&self) -> &KeyPair {
        &self.inner.ledger_key
    }

    /// The checkpoint origin prefix the store was created with (`Config::origin_prefix`).
    pub fn origin_prefix(&self) -> &str {
        &self.inner.origin_prefix
    }

    /// The checkpoint origin of a tenant's log, `"{origin prefix}/{tenant}"`.
    pub fn origin(&self, tenant: &str) -> String {
        self.inner.origin(tenant)
    }

    /// The ledger key of `tenant`'s log as a C2SP signed-note verifier key
    /// ([`crate::checkpoint::vkey`]), named by the log's origin.
    pub fn vkey(&self, tenant: &str) -> String {
        crate::checkpoint::vkey(&self.inner.origin(tenant), self.inner.roots.ledger())
    }

    /// The settings in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Appends one event; durable when `Ok` is returned.
    pub fn append(&self, event: AppendEvent) -> Result<Receipt, AppendError> {
        let mut receipts = self.append_batch(vec![event])?;
        receipts.pop().ok_or_else(|| AppendError::Storage("writer returned no receipt".into()))
    }

    /// Appends events of one tenant atomically (all or nothing); durable when `Ok` is returned.
    /// Signatures are checked on the calling thread (batch-verified) before the writer sees
    /// the request, so concurrent callers verify in parallel.
    ///
    /// On a node of a cluster ([`Ledger::set_replicator`]) the request is checked the same way,
    /// then replicated; `Ok` then means a majority of the nodes holds it durably.
    pub fn append_batch(&self, events: Vec<AppendEvent>) -> Result<Vec<Receipt>, AppendError> {
        if let Some(replicator) = self.replicator.read().clone() {
            self.refuse_if_poisoned()?;
            // Before the disk: a follower names its leader whatever its own disk holds.
            replicator.ready()?;
            self.check_free_space()?;
            // Checked against what this node has applied, as a single node checks against what
            // it has committed: a refusal here stores nothing anywhere and never enters the
            // replicated log. What passes is checked again by every node when it applies the
            // record, against the log as it stands at that record.
            let recorded: Vec<RecordedEvent> = events.iter().map(RecordedEvent::new).collect();
            append::prepare(&self.inner, events)?;
            return replicator.replicate(recorded);
        }
        self.submit(events)?.wait()
    }

    /// Starts an append of a single store without waiting for its commit: the same checks as
    /// [`Ledger::append_batch`], on the calling thread (decoding, signatures, rules), then the
    /// request is queued for the writer and what is returned resolves — `.await`ed, or
    /// [`PendingAppend::wait`]ed — once its group is durable and anchored. A request refused
    /// here stores nothing. An async server awaits it on its own task, so no thread is parked
    /// per request while its group commits ([`Ledger::submit_async`] is the same for a caller
    /// that can await the checks too).
    ///
    /// The queue is tried without waiting first; when it is full this waits for room up to
    /// [`Config::queue_timeout`] like `append_batch` (see [`Ledger::queue_has_room`]). On a
    /// node of a cluster it is refused (`BadRequest`): a cluster's appends go through
    /// [`Ledger::append_batch`], which waits for the replicated log.
    pub fn submit(&self, events: Vec<AppendEvent>) -> Result<PendingAppend, AppendError> {
        self.admit_submission()?;
        let awaiting = append::spin::Awaiting::start(&self.inner.spin);
        let job_events = append::prepare(&self.inner, events)?;
        let (reply, receipt) = append::oneshot::channel();
        self.queue(append::Work::Append(append::Job { events: job_events, reply, verdict: None }))?;
        Ok(PendingAppend { receipt, awaiting, spin: None })
    }

    /// [`Ledger::submit`] for an async caller, awaited on its own task: the same checks, except
    /// that a request of one event has its signature verified together with those of other
    /// single-event requests in flight at the same time (one batch verification instead of one
    /// strict verification each; alone and strictly when there are none, so a lone request waits
    /// for nobody). A request with a bad signature is refused exactly as by `submit`, whatever
    /// else was in its batch. It never blocks its thread: a full queue is not waited for but
    /// answered `Overloaded` (the queue may have filled while the request awaited a batch; the
    /// service calls this only while the queue is under half full).
    ///
    /// A request that is the only one being prepared is queued as soon as everything but its
    /// signatures is checked, and verified while the writer stages its group; the writer writes
    /// nothing of it until the verification has passed (`append::verdict`, docs/format.md
    /// "Commit path"). The answers are the same.
    ///
    /// The first poll of the [`PendingAppend`] of a single event, when nothing else is being
    /// appended, may hold its thread awake for up to [`Config::answer_spin`] (1 ms by default)
    /// while it checks for the answer (`append::spin`).
    pub async fn submit_async(&self, events: Vec<AppendEvent>) -> Result<PendingAppend, AppendError> {
        self.admit_submission()?;
        let awaiting = append::spin::Awaiting::start(&self.inner.spin);
        let spin = append::spin::Spin::new(events.len(), self.inner.config.answer_spin, &self.inner.spin);
        let (reply, receipt) = append::oneshot::channel();
        let queued = match append::prepare_async(&self.inner, events).await? {
            append::Prepared::Verified(job_events) => {
                self.try_queue(append::Work::Append(append::Job { events: job_events, reply, verdict: None }))?
            }
            append::Prepared::Unverified(job_events, verification) => {
                // A lone request: queued first, so that the writer stages its group while its
                // signatures are verified here; the writer writes nothing of it before this
                // verdict (`append::verdict`). The signatures decide first, whatever the queue
                // said, as when they are verified before the request is queued.
                let (verifying, verdict) = append::verdict::pending();
                let queued = self.try_queue(append::Work::Append(append::Job {
                    events: job_events,
                    reply,
                    verdict: Some(verdict),
                }));
                let verified = verification.run(&self.inner).await;
                verifying.settle(verified.is_ok());
                verified?;
                queued?
            }
        };
        match queued {
            None => Ok(PendingAppend { receipt, awaiting, spin }),
            Some(_full) => Err(AppendError::Overloaded),
        }
    }

    /// Batches of more than one single-event request's signature verified together by
    /// [`Ledger::submit_async`] since the store opened, and the signatures in them.
    pub fn combined_signatures(&self) -> (u64, u64) {
        self.inner.combiner.stats()
    }

    /// Whether the writer's queue is far from full (under half its capacity), so that
    /// [`Ledger::submit`] will not wait for room: an async caller may then call it on a
    /// runtime thread.
    pub fn queue_has_room(&self) -> bool {
        self.sender.read().as_ref().is_some_and(|sender| sender.len() < self.inner.config.queue_capacity / 2)
    }

    /// What [`Ledger::submit`] and [`Ledger::submit_async`] check before a request's events
    /// are read: a single store's append ([`Ledger::admit`]), not a cluster node's.
    fn admit_submission(&self) -> Result<(), AppendError> {
        if self.replicated() {
            return Err(AppendError::BadRequest(
                "a cluster node's appends are replicated: use append_batch, not submit".into(),
            ));
        }
        self.admit()
    }

    /// What every append is checked for before its events are read: a poisoned writer, a
    /// full disk.
    fn admit(&self) -> Result<(), AppendError> {
        self.refuse_if_poisoned()?;
        self.check_free_space()
    }

    /// `Poisoned` while the writer refuses appends ([`Ledger::poisoned`]).
    fn refuse_if_poisoned(&self) -> Result<(), AppendError> {
        self.poisoned().map_or(Ok(()), |reason| Err(AppendError::Poisoned(reason)))
    }

    /// Applies a replicated commit group (docs/replication.md): every request of `record`, in
    /// order, as one group at the record's time, through the whole append pipeline (decoding,
    /// signatures, registry, rules, idempotency, stream versions) against this store's state.
    /// Stores that share the ledger and admin keys and apply the same records in the same
    /// order hold the same log, byte for byte. Returns each request's answer; `Err` only when
    /// the record could not be applied at all (poisoned, shutting down, queue full). The
    /// free-space reserve is not checked here: whether a record applies must not depend on the
    /// node (the node that makes records checks it before).
    ///
    /// `applied` (the record's position in the replicated log, opaque to the ledger) is stored
    /// in the group's own batch, so [`Ledger::applied_position`] after any crash names exactly
    /// the last record applied. `Err` means the record was not applied (its position neither).
    pub fn apply_record(
        &self,
        record: append::GroupRecord,
        applied: Option<Vec<u8>>,
    ) -> Result<append::RecordResults, AppendError> {
        self.refuse_if_poisoned()?;
        let (reply, results) = crossbeam_channel::bounded(1);
        self.queue(append::Work::Record(append::RecordJob { record, applied, reply }))?;
        results.recv().map_err(|_| AppendError::ShuttingDown)?
    }

    /// Makes this store one node of a cluster: from now on [`Ledger::append_batch`] replicates
    /// through `replicator` instead of committing directly. Set once, before serving.
    pub fn set_replicator(&self, replicator: Arc<dyn Replicator>) {
        *self.replicator.write() = Some(replicator);
    }

    /// Whether this store is a node of a cluster ([`Ledger::set_replicator`]).
    pub fn replicated(&self) -> bool {
        self.replicator.read().is_some()
    }

    /// The position stored with the last record applied ([`Ledger::apply_record`]), if any.
    pub fn applied_position(&self) -> Result<Option<Vec<u8>>, ReadError> {
        Ok(self.inner.db.get_cf(self.inner.cf(layout::CF_META), layout::META_APPLIED)?)
    }

    fn queue(&self, work: append::Work) -> Result<(), AppendError> {
        // Without a timer first: the common case, and no clock read per request.
        let Some(work) = self.try_queue(work)? else { return Ok(()) };
        let sender = self.sender.read();
        let sender = sender.as_ref().ok_or(AppendError::ShuttingDown)?;
        sender.send_timeout(work, self.inner.config.queue_timeout).map_err(|e| match e {
            crossbeam_channel::SendTimeoutError::Timeout(_) => AppendError::Overloaded,
            crossbeam_channel::SendTimeoutError::Disconnected(_) => AppendError::ShuttingDown,
        })
    }

    /// Queues `work` if the writer's queue has room now; gives it back when the queue is full.
    fn try_queue(&self, work: append::Work) -> Result<Option<append::Work>, AppendError> {
        let sender = self.sender.read();
        let sender = sender.as_ref().ok_or(AppendError::ShuttingDown)?;
        match sender.try_send(work) {
            Ok(()) => Ok(None),
            Err(crossbeam_channel::TrySendError::Full(work)) => Ok(Some(work)),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(AppendError::ShuttingDown),
        }
    }

    /// Refuses appends while the filesystem is below the reserve. A failure to ask is not a
    /// refusal: the write path still reports a real ENOSPC (and poisons the writer).
    fn check_free_space(&self) -> Result<(), AppendError> {
        let reserve = self.inner.config.min_free_bytes;
        if reserve == 0 {
            return Ok(());
        }
        match rustix::fs::statvfs(&self.data_dir) {
            Ok(stat) => {
                let free = stat.f_bavail.saturating_mul(stat.f_frsize);
                if free < reserve {
                    return Err(AppendError::DiskFull { free, reserve });
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "statvfs of the data dir failed; the free-space reserve is not checked");
                Ok(())
            }
        }
    }

    /// Stops accepting appends, lets queued ones commit, and joins the writer. Called by drop.
    pub fn shutdown(&self) {
        self.sender.write().take();
        if let Some(handle) = self.writer.lock().take() {
            if handle.join().is_err() {
                tracing::error!("ledger writer panicked");
            }
        }
        // After the writer: its last commits may have woken the eraser. A pass in progress
        // finishes; what is still pending is erased at the next open.
        self.inner.erasure.stop();
        if let Some(handle) = self.eraser.lock().take() {
            if handle.join().is_err() {
                tracing::error!("ledger eraser panicked");
            }
        }
    }

    /// Redacted entries whose old versions are still in the store's files: 0 once every
    /// committed redaction has been erased (see docs/format.md, "Erasure").
    pub fn pending_erasures(&self) -> Result<usize, ReadError> {
        erasure::pending(&self.inner).map_err(ReadError::Storage)
    }

    /// Waits until every committed redaction has been erased from the store's files, or
    /// `timeout` passes; returns how many are still pending (0: all erased).
    pub fn wait_for_erasures(&self, timeout: Duration) -> usize {
        self.inner.erasure.wait_idle(timeout)
    }

    /// Why the writer refuses appends, if it does.
    pub fn poisoned(&self) -> Option<String> {
        self.inner.poisoned.lock().clone()
    }

    /// Runs `listener(tenant, size)` after every commit, on the writer thread, after the commit is
    /// durable and before its receipts are sent (for live tails): it must be quick.
    pub fn add_commit_listener(&self, listener: CommitListener) {
        self.inner.listeners.write().push(listener);
    }

    /// Blocks until `tenant` has at least `size` entries or `timeout` passes; returns the size.
    pub fn wait_for_size(&self, tenant: &str, size: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut sizes = self.inner.sizes.lock();
        loop {
            let current = sizes.get(tenant).copied().unwrap_or(0);
            if current >= size || self.inner.grew.wait_until(&mut sizes, deadline).timed_out() {
                return sizes.get(tenant).copied().unwrap_or(0).max(current);
            }
        }
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn load_or_create(path: &Path) -> Result<KeyPair, OpenError> {
    if path.exists() {
        return Ok(KeyPair::load(path)?);
    }
    let key = KeyPair::generate();
    key.save_new(path)?;
    Ok(key)
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Loads every tenant's head, frontier, key registry and newest checkpoint, checking that the
/// head agrees with the entries (the last entry exists and hashes to the chain head; nothing
/// exists beyond it).
fn load_committed(inner: &Inner) -> Result<Committed, OpenError> {
    let corrupted = |what: String| OpenError::Corrupted(what);
    let mut committed = Committed::default();
    let meta = inner.cf(CF_META);
    for (name, tid) in tenant_rows(&inner.db, meta)? {
        let head_bytes =
            inner.db.get_cf(meta, head_key(tid))?.ok_or_else(|| corrupted(format!("tenant {name}: head missing")))?;
        let head = Head::decode(&head_bytes).map_err(|e| corrupted(format!("tenant {name}: head: {e}")))?;
        if head.size == 0 {
            return Err(corrupted(format!("tenant {name}: empty head")));
        }
        let last = read_entry(inner, tid, head.size - 1).map_err(|e| corrupted(format!("tenant {name}: {e}")))?;
        if last.entry_hash != head.chain_head || last.recorded_at != head.last_recorded_at {
            return Err(corrupted(format!("tenant {name}: head does not match entry {}", head.size - 1)));
        }
        if inner.db.get_pinned_cf(inner.cf(CF_ENTRIES), seq_key(tid, head.size))?.is_some() {
            return Err(corrupted(format!("tenant {name}: an entry exists beyond the log end ({})", head.size)));
        }
        let frontier = Frontier::<LogHasher>::load(&TreeSource { inner, tid }, head.size)
            .map_err(|e| corrupted(format!("tenant {name}: {e}")))?;
        let mut keys = HashMap::new();
        for item in inner.db.prefix_iterator_cf(inner.cf(CF_KEYS), tid.to_be_bytes()) {
            let (key, value) = item?;
            if !key.starts_with(&tid.to_be_bytes()) {
                break;
            }
            let record: KeyRecord =
                serde_json::from_slice(&value).map_err(|e| corrupted(format!("tenant {name}: key record: {e}")))?;
            let key_id = KeyId::from_hex(&record.key_id).map_err(|e| corrupted(format!("tenant {name}: {e}")))?;
            committed.key_tenants.entry(key_id).or_default().push(name.clone());
            if let Some(key) = record.verifying_key() {
                committed.public_keys.insert(key_id, key);
            }
            keys.insert(key_id, record);
        }
        let note = inner
            .db
            .get_cf(inner.cf(CF_CHECKPOINTS), seq_key(tid, head.size))?
            .ok_or_else(|| corrupted(format!("tenant {name}: no checkpoint at size {}", head.size)))?;
        let note = String::from_utf8(note).map_err(|_| corrupted(format!("tenant {name}: checkpoint not UTF-8")))?;
        let checkpoint = SignedCheckpoint::parse_and_verify(&note, inner.roots.ledger())
            .map_err(|e| corrupted(format!("tenant {name}: checkpoint: {e}")))?;
        if checkpoint.checkpoint.root != frontier.root() || checkpoint.checkpoint.size != head.size {
            return Err(corrupted(format!("tenant {name}: checkpoint does not match the tree")));
        }
        committed.next_tid = committed.next_tid.max(tid + 1);
        committed.tenants.insert(name, TenantState { tid, head, frontier, keys, checkpoint });
    }
    Ok(committed)
}

/// The checkpoint of a tenant's current state, signed.
pub(crate) fn sign_checkpoint(inner: &Inner, tenant: &str, size: u64, root: Hash32) -> SignedCheckpoint {
    Checkpoint { origin: inner.origin(tenant), size, root }.sign(&inner.ledger_key)
}

/// Every `meta` tenant row, `(name, tid)`, in name order; a row that does not decode is
/// corruption.
pub(crate) fn tenant_rows(db: &DB, meta: &rocksdb::ColumnFamily) -> Result<Vec<(String, u32)>, OpenError> {
    let corrupted = |what: String| OpenError::Corrupted(what);
    let mut rows = Vec::new();
    for item in db.prefix_iterator_cf(meta, META_TENANT_PREFIX) {
        let (key, value) = item?;
        if !key.starts_with(META_TENANT_PREFIX) {
            break;
        }
        let name = String::from_utf8(key[META_TENANT_PREFIX.len()..].to_vec())
            .map_err(|_| corrupted("tenant name is not UTF-8".into()))?;
        let tid =
            u32::from_be_bytes(value.as_ref().try_into().map_err(|_| corrupted(format!("tenant {name}: bad id")))?);
        rows.push((name, tid));
    }
    Ok(rows)
}

/// The origin prefix of a store created without one: `release-ledger.invalid/` and the first
/// 16 hex digits of the ledger key's id. Stable for the store's life (the key does not change),
/// distinct between ledgers, and a schema-less URL as tlog-checkpoint recommends; `.invalid`
/// (RFC 2606) says that it names no reachable host. Operators with a domain set their own.
pub fn default_origin_prefix(ledger_key: &crate::keys::KeyId) -> String {
    format!("release-ledger.invalid/{}", &ledger_key.to_string()[..16])
}

/// Checks an origin prefix against tlog-checkpoint's recommendation (a schema-less URL without
/// Unicode spaces or `+`): non-empty, printable ASCII, no whitespace, `+`, scheme or trailing
/// slash, at most 200 bytes.
pub fn check_origin_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > 200 {
        return Err(format!("origin prefix {prefix:?} must be 1 to 200 bytes"));
    }
    if let Some(c) = prefix.chars().find(|c| !c.is_ascii_graphic() || *c == '+') {
        return Err(format!(
            "origin prefix {prefix:?} holds {c:?}: a schema-less URL such as ledger.example.com, without spaces or '+'"
        ));
    }
    if prefix.contains("://") || prefix.ends_with('/') || prefix.starts_with('/') {
        return Err(format!("origin prefix {prefix:?} must be a schema-less URL such as ledger.example.com (no scheme, no leading or trailing '/')"));
    }
    Ok(())
}
