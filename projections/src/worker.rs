//! The projection worker: follows every tenant's log, folds it into [`TenantState`], stores
//! state and position together, and appends what the fold owes (decisions, retry requests)
//! through the ledger's normal append path, signed by the ledger key.
//!
//! One thread does it all, tenant by tenant, in chunks of [`CHUNK`] entries; it wakes on
//! every commit (a commit listener) and when the next retry comes due. Queries read the
//! in-memory state under a read lock. The thread is `SCHED_BATCH` ([`run_as_batch`]), so
//! that waking it never delays the writer's answers.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger::{AppendEvent, Envelope, ErrorKind, Ledger, ReadError};
use parking_lot::{Condvar, Mutex, RwLock};

use crate::board::{BoardPage, BoardQuery, StatusCounts};
use crate::decision::{DecisionStatus, ReasonCode};
use crate::folder::Folder;
use crate::outbox::Outgoing;
use crate::replay::fold;
use crate::state::{ReleaseState, TenantState};
use crate::store::{ProjectionStore, StoreError};

pub use crate::folder::CHUNK;

/// Most inactive releases a tenant keeps in memory (the most recently updated); the rest are
/// read back from the projection store when an entry or a query needs them. Active releases
/// are always in memory.
pub const CACHED_INACTIVE: usize = 4096;

/// Most owed events appended in one atomic request.
const OUTBOX_BATCH: usize = 256;

/// Longest the worker sleeps without a commit or a due retry.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Most bytes of just-committed entries the ledger holds for the worker to fold from memory
/// ([`Ledger::hold_fresh_entries`]); beyond it, the worker reads the log back.
const HAND_OVER_BYTES: usize = 16 << 20;

/// A decision the worker appended (not a duplicate), for metrics.
#[derive(Debug, Clone)]
pub struct DecisionAppended {
    /// The tenant.
    pub tenant: String,
    /// The release.
    pub release_id: String,
    /// The outcome.
    pub status: DecisionStatus,
    /// Blocking reason codes.
    pub reason_codes: Vec<ReasonCode>,
    /// Intent to approval (approvals only), from the two entries' `recordedAt`.
    pub approval_duration: Option<Duration>,
    /// From the triggering entry's commit to the decision's commit.
    pub decision_latency: Duration,
}

/// Receives worker events (metrics); must be quick.
pub trait GovernanceObserver: Send + Sync {
    /// A decision was appended.
    fn on_decision(&self, decision: &DecisionAppended);
    /// Entries not yet folded, summed over tenants, after each pass.
    fn on_lag(&self, entries: u64);
}

/// A worker failure.
#[derive(Debug, thiserror::Error)]
pub enum GovernorError {
    /// The projection store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the log failed.
    #[error("reading the log: {0}")]
    Read(#[from] ReadError),
    /// Unknown tenant.
    #[error("unknown tenant {:?}", ledger::clip(.0))]
    UnknownTenant(String),
    /// The projection store is not open yet.
    #[error("the projection store is still loading")]
    NotLoaded,
}

struct Shared {
    ledger: Arc<Ledger>,
    /// Opened by the first pass (RocksDB replays its WAL on open: not on the serving path).
    store: std::sync::OnceLock<ProjectionStore>,
    store_dir: std::path::PathBuf,
    /// Whether the stored states are in `states`.
    loaded: AtomicBool,
    states: RwLock<BTreeMap<String, TenantState>>,
    wake: Mutex<bool>,
    woken: Condvar,
    stop: AtomicBool,
    observer: Option<Arc<dyn GovernanceObserver>>,
    /// Serialises passes (the thread and explicit `catch_up` calls).
    pass: Mutex<()>,
    /// Inactive releases kept in memory per tenant ([`CACHED_INACTIVE`] unless set).
    cached_inactive: std::sync::atomic::AtomicUsize,
}

/// The running worker. Dropping it stops the thread.
pub struct Governor {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governor").field("store", &self.shared.store_dir).finish_non_exhaustive()
    }
}

impl Governor {
    /// Opens the projection store at `dir`, loads the stored states, and starts following
    /// the ledger.
    pub fn start(
        ledger: Arc<Ledger>,
        dir: &Path,
        observer: Option<Arc<dyn GovernanceObserver>>,
    ) -> Result<Self, GovernorError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Corrupt { key: dir.display().to_string(), reason: e.to_string() })?;
        // The store is opened and its states loaded by the worker thread (or the first explicit
        // pass), so a large projection store never delays serving the log; queries wait for
        // `ready()`.
        let shared = Arc::new(Shared {
            ledger,
            store: std::sync::OnceLock::new(),
            store_dir: dir.to_owned(),
            loaded: AtomicBool::new(false),
            states: RwLock::new(BTreeMap::new()),
            wake: Mutex::new(true),
            woken: Condvar::new(),
            stop: AtomicBool::new(false),
            observer,
            pass: Mutex::new(()),
            cached_inactive: std::sync::atomic::AtomicUsize::new(CACHED_INACTIVE),
        });
        shared.ledger.hold_fresh_entries(HAND_OVER_BYTES);
        let weak = Arc::downgrade(&shared);
        shared.ledger.add_commit_listener(Box::new(move |_, _| {
            if let Some(shared) = weak.upgrade() {
                *shared.wake.lock() = true;
                shared.woken.notify_one();
            }
        }));
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("projections".into())
            .spawn(move || {
                run_as_batch();
                run(&thread_shared)
            })
            .map_err(|e| StoreError::Corrupt { key: "thread".into(), reason: e.to_string() })?;
        Ok(Self { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Writes a consistent copy of the projection store into `dir` (which must not exist),
    /// for a backup: taken before the log's copy, every position in it is at most its log's
    /// size there. `Err(NotLoaded)` until the worker has opened its store.
    pub fn checkpoint_store(&self, dir: &Path) -> Result<(), GovernorError> {
        Ok(self.shared.store()?.checkpoint(dir)?)
    }

    /// Folds every tenant up to its current head and appends what is owed and due; returns
    /// the entries folded. The background thread does this continuously; tests and tools
    /// call it to get a deterministic point.
    pub fn catch_up(&self) -> Result<u64, GovernorError> {
        pass(&self.shared)
    }

    /// Runs passes until no tenant lags and nothing due is owed, or `timeout` passes; returns
    /// whether it settled.
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.catch_up() {
                Ok(0) if self.total_lag() == 0 && !self.owes_due() => return true,
                // Progress: go again at once.
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "projection pass failed"),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn owes_due(&self) -> bool {
        let now = now_ns(&self.shared.ledger);
        self.shared.states.read().values().any(|s| s.meta.outbox.owes_due(now))
    }

    /// Whether the stored projections are loaded and queries can be answered.
    pub fn ready(&self) -> bool {
        self.shared.loaded.load(Ordering::SeqCst)
    }

    /// Entries not yet folded, per tenant.
    pub fn lag(&self) -> BTreeMap<String, u64> {
        lag(&self.shared)
    }

    /// Entries not yet folded, all tenants.
    pub fn total_lag(&self) -> u64 {
        self.lag().values().sum()
    }

    /// Runs `f` on a tenant's current state.
    pub fn with_tenant<R>(&self, tenant: &str, f: impl FnOnce(&TenantState) -> R) -> Option<R> {
        self.shared.states.read().get(tenant).map(f)
    }

    /// Runs `f` on a release and its tenant's state: from memory, or read back from the
    /// projection store (under the same read lock, so both say the same thing). `None` if the
    /// tenant has no state; `Some(None)` if the release is unknown.
    pub fn with_release<R>(
        &self,
        tenant: &str,
        release_id: &str,
        f: impl FnOnce(&TenantState, &ReleaseState) -> R,
    ) -> Result<Option<Option<R>>, GovernorError> {
        let states = self.shared.states.read();
        let Some(state) = states.get(tenant) else { return Ok(None) };
        if let Some(release) = state.releases.get(release_id) {
            return Ok(Some(Some(f(state, release))));
        }
        let stored = self.shared.store()?.release(tenant, release_id)?;
        Ok(Some(stored.map(|release| f(state, &release))))
    }

    /// A page of release summaries (see [`crate::query::list_releases`]), from memory and the
    /// projection store. `None` if the tenant has no state.
    pub fn list_releases(
        &self,
        tenant: &str,
        filter: &crate::query::ReleaseFilter,
    ) -> Result<Option<crate::query::Page>, GovernorError> {
        let states = self.shared.states.read();
        let Some(state) = states.get(tenant) else { return Ok(None) };
        let store = self.shared.store()?;
        let mut failed = None;
        let releases = store
            .releases_of(state, filter.after.as_deref())
            .map_while(|row| row.map_err(|e| failed = Some(e)).ok())
            .map(|(_, release)| release);
        let page = crate::query::list_page(state, filter, releases);
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(Some(page)),
        }
    }

    /// A page of the tenant's board (see [`ProjectionStore::board`]): releases by status,
    /// newest first, from the projection store's index. `None` if the tenant has no state.
    ///
    /// The index holds what is saved, and under the read lock memory is what is saved: the
    /// worker folds and saves each chunk under the write lock. The one exception is a save
    /// that failed (memory is then ahead until the next pass reloads the store); the releases
    /// it left unsaved are listed as they are in memory, so the board says what
    /// [`Governor::list_releases`] and [`Governor::with_release`] say. A large filtered scan
    /// holds the read lock for at most [`crate::board::SCAN_BOUND`] rows.
    pub fn board(&self, tenant: &str, query: &BoardQuery) -> Result<Option<BoardPage>, GovernorError> {
        let states = self.shared.states.read();
        let Some(state) = states.get(tenant) else { return Ok(None) };
        Ok(Some(self.shared.store()?.board_of(state, query)?))
    }

    /// How many of the tenant's releases are at each status (one stored row, corrected for
    /// the releases a failed save left unsaved, as in [`Governor::board`]). `None` if the
    /// tenant has no state.
    pub fn status_counts(&self, tenant: &str) -> Result<Option<StatusCounts>, GovernorError> {
        let states = self.shared.states.read();
        let Some(state) = states.get(tenant) else { return Ok(None) };
        Ok(Some(self.shared.store()?.status_counts_of(state)?))
    }

    /// A copy of a tenant's whole state, every release included (read back from the
    /// projection store): for projection exports. Costs memory in proportion to the releases.
    pub fn snapshot(&self, tenant: &str) -> Result<Option<TenantState>, GovernorError> {
        let states = self.shared.states.read();
        let Some(state) = states.get(tenant) else { return Ok(None) };
        Ok(Some(self.shared.store()?.whole(state)?))
    }

    /// Sets how many inactive releases each tenant keeps in memory (default
    /// [`CACHED_INACTIVE`]); the rest leave memory after the next chunk is stored.
    pub fn set_cached_inactive(&self, releases: usize) {
        self.shared.cached_inactive.store(releases, Ordering::Relaxed);
    }

    /// The releases of a tenant in memory now (the active ones and the cache).
    pub fn releases_in_memory(&self, tenant: &str) -> usize {
        self.shared.states.read().get(tenant).map_or(0, |s| s.releases.len())
    }

    /// The tenants with state.
    pub fn tenants(&self) -> Vec<String> {
        self.shared.states.read().keys().cloned().collect()
    }

    /// The ledger followed.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.shared.ledger
    }

    /// Rebuilds `tenant` from seq 0 and replaces the stored state; returns whether the rebuilt
    /// state equals the incremental one it replaces (it must, unless the log was redacted).
    pub fn rebuild(&self, tenant: &str) -> Result<bool, GovernorError> {
        let _pass = self.shared.pass.lock();
        ensure_loaded(&self.shared)?;
        rebuild(&self.shared, tenant)
    }

    /// Stops the thread (idempotent).
    pub fn shutdown(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        *self.shared.wake.lock() = true;
        self.shared.woken.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                tracing::error!("projection worker panicked");
            }
            // No one takes them any more.
            self.shared.ledger.hold_fresh_entries(0);
        }
    }
}

impl Drop for Governor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Shared {
    fn store(&self) -> Result<&ProjectionStore, GovernorError> {
        self.store.get().ok_or(GovernorError::NotLoaded)
    }
}

fn now_ns(ledger: &Ledger) -> i64 {
    i64::try_from(ledger.config().clock.now_ns()).unwrap_or(i64::MAX)
}

fn lag(shared: &Shared) -> BTreeMap<String, u64> {
    let states = shared.states.read();
    shared
        .ledger
        .tenants()
        .into_iter()
        .map(|t| {
            let size = shared.ledger.head(&t).map(|h| h.size).unwrap_or_default();
            let pos = states.get(&t).map(|s| s.meta.position).unwrap_or_default();
            (t, size.saturating_sub(pos))
        })
        .collect()
}

/// First wait after a failed pass; it doubles with every failure in a row up to
/// [`MAX_BACKOFF`]. A store that failed a write (a full disk, an I/O error) is not hammered:
/// commits do not wake the worker while it backs off.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failing pass.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait after the `failures`-th failed pass in a row (from 1).
fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Makes the calling thread, the worker's, `SCHED_BATCH`: the same share of the CPU as an
/// ordinary thread of its nice level, but its wake-ups never preempt the thread running. The
/// writer's commit listener wakes the worker before the writer sends the group's answers. As an
/// ordinary thread, the worker then took the writer's core at once (while the other was often
/// idle), and every answer waited for the group's fold: about 0.2 ms of a 1.3 ms round trip at
/// 1 client × 64 events (BENCHMARKS.md, "Issue 20, eleventh session"). Now it starts when the
/// writer blocks or at the next scheduler tick; the append path never waits for it. A thread
/// already niced keeps its policy (setting the policy also sets the nice value, and resetting
/// an operator's nice would undo it); a refusal is logged and changes nothing else.
fn run_as_batch() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
        ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    match rustix::process::getpriority_process(None) {
        Ok(0) => {}
        Ok(nice) => {
            tracing::info!(nice, "the projection worker runs niced: it keeps the ordinary scheduling policy");
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "the projection worker's nice value is unknown: it keeps the ordinary scheduling policy");
            return;
        }
    }
    let batch = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch);
    // Nice 0, as read above (`ThreadPriorityOsValue`'s default).
    let nice = ThreadPriority::Os(ThreadPriorityOsValue::default());
    if let Err(error) = set_thread_priority_and_policy(thread_native_id(), nice, batch) {
        tracing::warn!(?error, "the projection worker could not switch to SCHED_BATCH: its wake-ups may delay answers");
    }
}

fn run(shared: &Arc<Shared>) {
    let mut failures = 0u32;
    while !shared.stop.load(Ordering::SeqCst) {
        match pass(shared) {
            Ok(folded) => {
                if failures > 0 {
                    tracing::info!(failures, "projection pass succeeded again");
                }
                failures = 0;
                if folded > 0 {
                    continue;
                }
            }
            Err(e) => {
                failures += 1;
                let wait = backoff(failures);
                tracing::error!(error = %e, failures, retry_in_ms = wait.as_millis() as u64, "projection pass failed");
                let deadline = std::time::Instant::now() + wait;
                let mut woke = shared.wake.lock();
                // Commits wake the condvar; only the stop flag or the deadline end the wait.
                loop {
                    let timed_out = shared.woken.wait_until(&mut woke, deadline).timed_out();
                    if timed_out || shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                }
                *woke = false;
                continue;
            }
        }
        // Sleep until a commit, the next due retry, or the idle bound.
        let now = now_ns(&shared.ledger);
        let next_due = shared.states.read().values().filter_map(|s| s.meta.outbox.next_due_after(now)).min();
        let wait = next_due
            .map(|t| Duration::from_nanos(u64::try_from(t - now).unwrap_or_default()).min(IDLE_WAIT))
            .unwrap_or(IDLE_WAIT);
        let mut woke = shared.wake.lock();
        if !*woke {
            let _ = shared.woken.wait_for(&mut woke, wait);
        }
        *woke = false;
    }
}

/// One pass over every tenant: fold a chunk of new entries, persist, flush the outbox.
fn pass(shared: &Shared) -> Result<u64, GovernorError> {
    let _pass = shared.pass.lock();
    ensure_loaded(shared)?;
    let mut folded = 0;
    for tenant in shared.ledger.tenants() {
        let (chunk, caught_up) = fold_chunk(shared, &tenant)?;
        folded += chunk;
        flush_outbox(shared, &tenant, caught_up);
    }
    if let Some(observer) = &shared.observer {
        observer.on_lag(lag(shared).values().sum());
    }
    Ok(folded)
}

/// Loads the stored states once (under the pass lock). A store that does not decode is
/// derived data: it is emptied and rebuilt from the log.
/// The tenants a projection store held when it was loaded.
type Loaded = BTreeMap<String, TenantState>;

/// Opens and loads the projection store. The store is derived from the log, so one whose files RocksDB
/// finds corrupted (a damaged MANIFEST, SST or CURRENT) or whose rows do not decode is moved
/// aside (`projections.corrupt-<ns>`, kept for a post-mortem) and a new one is folded from the
/// log, instead of the worker retrying an open that cannot succeed while every governance
/// query answers `UNAVAILABLE`.
fn open_or_set_aside(shared: &Shared) -> Result<(ProjectionStore, Loaded), GovernorError> {
    let first =
        ProjectionStore::open(&shared.store_dir).and_then(|store| store.load_all().map(|states| (store, states)));
    match first {
        Ok(opened) => Ok(opened),
        Err(e) if e.is_corruption() => {
            let aside = shared.store_dir.with_extension(format!("corrupt-{}", now_ns(&shared.ledger)));
            tracing::error!(
                error = %e,
                aside = %aside.display(),
                "projection store is corrupted: set aside, rebuilding every tenant from the log"
            );
            std::fs::rename(&shared.store_dir, &aside).map_err(|io| StoreError::Corrupt {
                key: shared.store_dir.display().to_string(),
                reason: format!("corrupted ({e}), and it could not be set aside: {io}"),
            })?;
            let store = ProjectionStore::open(&shared.store_dir)?;
            let states = store.load_all()?;
            Ok((store, states))
        }
        Err(e) => Err(e.into()),
    }
}

fn ensure_loaded(shared: &Shared) -> Result<(), GovernorError> {
    if shared.loaded.load(Ordering::SeqCst) {
        return Ok(());
    }
    let started = Instant::now();
    let (store, loaded) = match shared.store.get() {
        Some(store) => (store, None),
        None => {
            let (opened, states) = open_or_set_aside(shared)?;
            (shared.store.get_or_init(|| opened), Some(states))
        }
    };
    let states = match loaded.map_or_else(|| store.load_all(), Ok) {
        Ok(states) => states,
        Err(e) if e.is_corruption() => {
            let (key, reason) = match &e {
                StoreError::Corrupt { key, reason } => (key.clone(), reason.clone()),
                other => ("(rocksdb)".to_owned(), other.to_string()),
            };
            tracing::error!(%key, %reason, "projection store does not decode: rebuilding every tenant from the log");
            store.clear()?;
            BTreeMap::new()
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(tenants = states.len(), elapsed_ms = started.elapsed().as_millis() as u64, "projections loaded");
    // A projection ahead of its log was folded from another history (a projection store
    // restored beside an older log, a log restored without its projections): derived data,
    // so it is rebuilt from the log rather than trusted.
    let ahead: Vec<(String, u64, u64)> = states
        .iter()
        .filter_map(|(tenant, state)| {
            // A tenant the log does not know is never followed (nor folded): left alone.
            let size = shared.ledger.head(tenant).ok()?.size;
            (state.meta.position > size).then(|| (tenant.clone(), state.meta.position, size))
        })
        .collect();
    *shared.states.write() = states;
    shared.loaded.store(true, Ordering::SeqCst);
    for (tenant, position, size) in ahead {
        tracing::warn!(
            tenant,
            position,
            log_size = size,
            "the stored projection is ahead of its log (another history): rebuilding it from the log"
        );
        rebuild(shared, &tenant)?;
    }
    Ok(())
}

/// Folds the next chunk; returns the entries folded and whether the state reached the head
/// the chunk was read against.
fn fold_chunk(shared: &Shared, tenant: &str) -> Result<(u64, bool), GovernorError> {
    let size = shared.ledger.head(tenant)?.size;
    let position = shared.states.read().get(tenant).map(|s| s.meta.position).unwrap_or_default();
    if position >= size {
        return Ok((0, true));
    }
    let to = size.min(position + CHUNK);
    // The entries the writer has just committed come from memory; a worker that lags beyond
    // the hand-over's bound, or starts behind the log, reads them back, hashes checked.
    let entries: Vec<_> = match shared.ledger.take_fresh_entries(tenant, position, to)? {
        Some(entries) => entries,
        None => shared.ledger.entries(tenant, position, to)?.collect::<Result<_, _>>()?,
    };
    let needs_rebuild = {
        let mut states = shared.states.write();
        let state = states.entry(tenant.to_owned()).or_insert_with(|| TenantState::new(tenant));
        let store = shared.store()?;
        let mut folder = Folder::new(state, Some(store), shared.cached_inactive.load(Ordering::Relaxed));
        let applied = entries.iter().try_for_each(|entry| folder.apply(entry).map(drop));
        // The save also lets what is not active leave memory.
        if let Err(e) = applied.and_then(|()| folder.save()) {
            // Memory is now ahead of the store: reload from the store on the next pass rather
            // than save a partial state.
            shared.loaded.store(false, Ordering::SeqCst);
            return Err(e.into());
        }
        for id in state.meta.outbox.folded_to(to) {
            tracing::warn!(tenant, event_id = %id, "an append the worker made was not folded back as owed; owed again");
        }
        state.meta.needs_rebuild
    };
    if needs_rebuild {
        // A redaction erased a payload: derived state may still hold its data.
        tracing::info!(tenant, "entry redacted: rebuilding governance state from the log");
        rebuild(shared, tenant)?;
    }
    Ok((to - position, to == size))
}

fn rebuild(shared: &Shared, tenant: &str) -> Result<bool, GovernorError> {
    let mut fresh = fold(&shared.ledger, tenant, None)?;
    fresh.meta.needs_rebuild = false;
    let mut states = shared.states.write();
    let store = shared.store()?;
    let equal = match states.get(tenant) {
        Some(live) => {
            let mut live = store.whole(live)?;
            live.meta.needs_rebuild = false;
            // Only the folded prefix is comparable.
            live.meta.position == fresh.meta.position && live == fresh
        }
        None => false,
    };
    store.replace(&mut fresh)?;
    fresh.evict(shared.cached_inactive.load(Ordering::Relaxed));
    states.insert(tenant.to_owned(), fresh);
    Ok(equal)
}

/// Appends what the tenant's state owes and is due. Retry requests only when the state has
/// caught up with the log: a retry owed by an older prefix may have been cancelled by entries
/// not folded yet (a later decision, a deployment), and appending it would add an evaluation
/// the log does not owe. Decisions are a function of their prefix and always owed.
fn flush_outbox(shared: &Shared, tenant: &str, caught_up: bool) {
    let now = now_ns(&shared.ledger);
    // Only what is not appended yet: cheap however much is in flight.
    let due: Vec<(String, Outgoing, Option<u64>)> = {
        let states = shared.states.read();
        let Some(state) = states.get(tenant) else { return };
        state
            .meta
            .outbox
            .due(now, caught_up)
            .into_iter()
            .map(|(id, o)| {
                let intent_at =
                    state.releases.get(&o.release_id).and_then(|r| r.intent.as_ref()).map(|i| i.recorded_at);
                (id.clone(), o.clone(), intent_at)
            })
            .collect()
    };
    // One atomic append per group: one fsync for all decisions a chunk derived.
    for group in due.chunks(OUTBOX_BATCH) {
        let mut events = Vec::with_capacity(group.len());
        for (id, owed, _) in group {
            match body_of(shared, tenant, id, owed) {
                Ok(Ok(body)) => {
                    events.push(AppendEvent::new(Envelope::sign(body.into_bytes(), shared.ledger.ledger_key())));
                }
                Ok(Err(why)) => {
                    // Nothing to append it with: record and drop it; the rest goes next pass.
                    drop_owed(shared, tenant, id, why);
                    return;
                }
                Err(e) => {
                    tracing::warn!(tenant, event_id = %id, error = %e, "governance append deferred");
                    return;
                }
            }
        }
        match shared.ledger.append_batch(events) {
            Ok(receipts) => {
                for ((_, owed, intent_at), receipt) in group.iter().zip(&receipts) {
                    if !receipt.duplicate {
                        report(shared, tenant, owed, *intent_at, receipt.recorded_at);
                    }
                }
                let mut states = shared.states.write();
                if let Some(state) = states.get_mut(tenant) {
                    for ((id, _, _), receipt) in group.iter().zip(&receipts) {
                        state.meta.outbox.appended(id, receipt.seq);
                    }
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::PermissionDenied) => {
                // A body the ledger refuses would be refused forever: record and drop it; the
                // rest of the group goes on the next pass.
                let Some((id, _, _)) = e.index().and_then(|i| group.get(i)) else {
                    tracing::error!(tenant, error = %e, "the ledger refused a governance append");
                    return;
                };
                drop_owed(shared, tenant, id, format!("refused: {e}"));
                return;
            }
            Err(e) => {
                // Transient (overloaded, shutting down) or already recorded with other bytes
                // (it will be folded and compared): try again on the next pass.
                tracing::debug!(tenant, error = %e, "governance append deferred");
                return;
            }
        }
    }
}

/// Stops owing `id` because it cannot be appended (`why`), leaving an anomaly.
fn drop_owed(shared: &Shared, tenant: &str, id: &str, why: String) {
    tracing::error!(tenant, event_id = %id, %why, "a governance append was dropped");
    let mut states = shared.states.write();
    if let Some(state) = states.get_mut(tenant) {
        state.meta.drop_owed(id, &why);
        // A save that fails keeps its change set: the next chunk's save stores the drop.
        if let Err(e) = shared.store().and_then(|store| Ok(store.save(state)?)) {
            tracing::warn!(tenant, event_id = %id, error = %e, "the dropped append is stored with the next save");
        }
    }
}

/// The body of an owed append: in memory until first appended, else read back from the
/// store (an append offered again, see [`crate::outbox::Outbox::folded_to`]).
/// `Ok(Err(why))`: no body can be had; `Err`: the store failed (try again later).
fn body_of(shared: &Shared, tenant: &str, id: &str, owed: &Outgoing) -> Result<Result<String, String>, GovernorError> {
    if owed.has_body() {
        return Ok(Ok(owed.body().to_owned()));
    }
    let Some(row) = shared.store()?.owed(tenant, id)? else {
        return Ok(Err("its body is neither in memory nor stored".into()));
    };
    let mut restored = owed.clone();
    Ok(match restored.restore_body(row.body().to_owned()) {
        true => Ok(restored.body().to_owned()),
        false => Err("its stored body is not the one owed".into()),
    })
}

fn report(shared: &Shared, tenant: &str, owed: &Outgoing, intent_at: Option<u64>, committed_at: u64) {
    let Some(observer) = &shared.observer else { return };
    let Ok(body) = serde_json::from_str::<serde_json::Value>(owed.body()) else { return };
    let Some(data) =
        body.get("data").and_then(|d| serde_json::from_value::<crate::decision::DecisionData>(d.clone()).ok())
    else {
        return; // A retry request, not a decision.
    };
    let trigger_at = owed.trigger_recorded_at;
    let approval_duration = match (data.status, intent_at) {
        (DecisionStatus::Approved, Some(intent_at)) => Some(Duration::from_nanos(trigger_at.saturating_sub(intent_at))),
        _ => None,
    };
    observer.on_decision(&DecisionAppended {
        tenant: tenant.to_owned(),
        release_id: owed.release_id.clone(),
        status: data.status,
        reason_codes: data.blocking_reasons().map(|r| r.code.clone()).collect(),
        approval_duration,
        decision_latency: Duration::from_nanos(committed_at.saturating_sub(trigger_at)),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(9), Duration::from_millis(25_600));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }
}
