//! Workloads shared by the Release Ledger benchmarks (`benches/append.rs`, `benches/verify.rs`):
//! signed events from registered agents, appender threads released together, and the two
//! limits a durable signed append is measured against — Ed25519 batch verification alone and
//! RocksDB `sync=true` write batches alone. `BENCHMARKS.md` explains what each bench measures
//! and records the results.

use std::collections::HashMap;
use std::fmt;
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use ledger::{AppendEvent, Entry, Envelope, Ledger, ParsedEvent};
use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use testkit::{Agent, TestLedger};

/// The tenant every bench appends to.
pub const TENANT: &str = "bench";

/// Padding passed to [`Agent::event`]: the JSON payload comes out at 387 bytes, its PAE at 446
/// and the stored envelope at 574 (the append bench prints the exact sizes).
pub const PADDING: usize = 100;

/// Signatures per batch in [`ledger::Verifier`] (its private `SIGNATURE_BATCH`).
pub const VERIFIER_SIGNATURE_BATCH: usize = 256;

/// The cores the benches may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// The 1-, 5- and 15-minute load averages and running/total tasks (`/proc/loadavg`), to record
/// what else the machine was doing during a run.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_owned())
}

/// A file in a temporary dir on the benches' disk, for timing bare `fdatasync`s.
#[derive(Debug)]
pub struct SyncFile {
    file: std::fs::File,
    _dir: tempfile::TempDir,
}

impl SyncFile {
    /// Creates an empty file.
    pub fn create() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = std::fs::File::create(dir.path().join("probe")).expect("create probe file");
        Self { file, _dir: dir }
    }

    /// Appends `bytes` and waits for them to be durable (`fdatasync`, as RocksDB syncs its WAL).
    pub fn append_durably(&mut self, bytes: &[u8]) {
        use std::io::Write as _;
        self.file.write_all(bytes).expect("write probe file");
        self.file.sync_data().expect("fdatasync probe file");
    }
}

/// The stream appender thread `thread` writes to (one stream per thread).
pub fn stream(thread: usize) -> String {
    format!("stream-{thread}")
}

/// A temporary ledger with one registered agent per appender thread.
#[derive(Debug)]
pub struct AppendFixture {
    /// The ledger, its data dir and admin key.
    pub test: TestLedger,
    /// Agent `t` signs the events of appender thread `t`.
    pub agents: Vec<Agent>,
}

impl AppendFixture {
    /// A fresh temporary ledger with `agents` agents registered in [`TENANT`] (one durable
    /// append each).
    pub fn new(agents: usize) -> Self {
        let test = testkit::temp_ledger();
        let agents = (0..agents).map(|t| test.agent(TENANT, &format!("agent-{t}"), &[], &[])).collect();
        Self { test, agents }
    }

    /// The open ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.test.ledger
    }
}

/// Signed work for appender threads: `work[thread][batch]` is one `append_batch` call.
pub type Work = Vec<Vec<Vec<AppendEvent>>>;

/// Signs `batches` batches of `batch` fresh events for every agent (agent `t` on
/// [`stream`]`(t)`), spread over all cores. Signing is the client's work, so the benches do it
/// outside the timed region.
pub fn sign_work(agents: &[Agent], batches: usize, batch: usize) -> Work {
    let tasks: Vec<(usize, usize)> = (0..agents.len()).flat_map(|t| (0..batches).map(move |j| (t, j))).collect();
    let workers = cores().clamp(1, tasks.len().max(1));
    let mut work: Work = (0..agents.len()).map(|_| (0..batches).map(|_| Vec::new()).collect()).collect();
    std::thread::scope(|scope| {
        let tasks = &tasks;
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    tasks
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(|&(t, j)| {
                            let stream = stream(t);
                            (t, j, (0..batch).map(|_| agents[t].event(&stream, PADDING)).collect::<Vec<_>>())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (t, j, events) in handle.join().expect("signing thread panicked") {
                work[t][j] = events;
            }
        }
    });
    work
}

/// Runs `job` once per element of `work`, each on its own thread; the threads are spawned
/// first and released together, and the time from their release until the last one finishes
/// is returned (thread creation is not timed).
pub fn run_released<W: Send>(work: Vec<W>, job: impl Fn(W) + Sync) -> Duration {
    let barrier = Barrier::new(work.len() + 1);
    std::thread::scope(|scope| {
        let (barrier, job) = (&barrier, &job);
        let handles: Vec<_> = work
            .into_iter()
            .map(|w| {
                scope.spawn(move || {
                    barrier.wait();
                    job(w);
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for handle in handles {
            handle.join().expect("bench thread panicked");
        }
        start.elapsed()
    })
}

/// Runs `body` with a crew of `threads` long-lived threads that each run `job`: `body` gets a
/// function that hands one element of `work` to each crew thread, releases them together and
/// returns the time from their release until the last one finishes.
///
/// The threads live as long as `body`, like a server's worker threads, so per-thread state
/// (RocksDB's thread-locals, malloc arenas, caches) is warm from one iteration to the next.
/// Spawning fresh threads for every iteration instead made bare RocksDB `sync=true` writes
/// several times slower on this machine (see `BENCHMARKS.md`).
pub fn with_crew<W: Send, R>(
    threads: usize,
    job: impl Fn(W) + Sync,
    body: impl FnOnce(&mut dyn FnMut(Vec<W>) -> Duration) -> R,
) -> R {
    let barrier = Barrier::new(threads + 1);
    let (barrier, job) = (&barrier, &job);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<bool>();
        let inputs: Vec<mpsc::Sender<W>> = (0..threads)
            .map(|_| {
                let (input, work) = mpsc::channel::<W>();
                let done = done_tx.clone();
                scope.spawn(move || {
                    while let Ok(w) = work.recv() {
                        barrier.wait();
                        let finished = FinishSignal(done.clone());
                        job(w);
                        drop(finished);
                    }
                });
                input
            })
            .collect();
        drop(done_tx);
        let mut run = move |work: Vec<W>| -> Duration {
            assert_eq!(work.len(), threads, "one piece of work per crew thread");
            for (input, w) in inputs.iter().zip(work) {
                input.send(w).expect("crew thread alive");
            }
            barrier.wait();
            let start = Instant::now();
            for _ in 0..threads {
                assert!(done_rx.recv().expect("crew thread alive"), "crew thread panicked");
            }
            start.elapsed()
        };
        // Dropping `run` (with the work senders) after `body` lets the crew threads exit.
        body(&mut run)
    })
}

/// Tells the crew's leader that a thread finished its work: `true` normally, `false` when
/// the work panicked (sent while unwinding), so the leader never waits forever.
struct FinishSignal(mpsc::Sender<bool>);

impl Drop for FinishSignal {
    fn drop(&mut self) {
        let _ = self.0.send(!std::thread::panicking());
    }
}

/// Appends every batch of `batches` in order, checking that each event got a fresh receipt.
pub fn append_all(ledger: &Ledger, batches: Vec<Vec<AppendEvent>>) {
    for batch in batches {
        let count = batch.len();
        let receipts = ledger.append_batch(batch).expect("a valid signed batch appends");
        assert!(receipts.len() == count && receipts.iter().all(|r| !r.duplicate), "one fresh receipt per event");
    }
}

/// Messages, signatures and keys, ready for Ed25519 verification.
#[derive(Debug, Default, Clone)]
pub struct SignedSet {
    /// The PAE bytes each signature covers.
    pub messages: Vec<Vec<u8>>,
    /// The signatures.
    pub signatures: Vec<Signature>,
    /// The signers' public keys.
    pub keys: Vec<VerifyingKey>,
}

impl SignedSet {
    /// Adds an envelope's (only) signature over its PAE bytes, to be checked with `key`.
    pub fn push(&mut self, envelope: &Envelope, key: VerifyingKey) {
        let [signature] = envelope.signatures.as_slice() else {
            panic!("bench envelopes carry exactly one signature");
        };
        self.messages.push(envelope.signed_bytes());
        self.signatures.push(Signature::from_slice(&signature.sig).expect("a 64-byte signature"));
        self.keys.push(key);
    }

    /// The signatures of `work`, in thread then batch order; agent `t` signed thread `t`'s.
    pub fn of_work(agents: &[Agent], work: &Work) -> Self {
        let mut set = Self::default();
        for (agent, batches) in agents.iter().zip(work) {
            for event in batches.iter().flatten() {
                set.push(&event.envelope, agent.key.verifying_key());
            }
        }
        set
    }

    /// The signatures of stored entries; `keys` maps a hex key id to its public key.
    pub fn of_entries(entries: &[Entry], keys: &HashMap<String, VerifyingKey>) -> Self {
        let mut set = Self::default();
        for envelope in entries.iter().filter_map(Entry::envelope) {
            let key_id = &envelope.signatures.first().expect("a signed envelope").keyid;
            set.push(envelope, *keys.get(key_id).expect("every signer is a root or registered key"));
        }
        set
    }

    /// The number of signatures.
    pub fn len(&self) -> usize {
        self.signatures.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.signatures.is_empty()
    }
}

/// How a chunk of signatures is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyMode {
    /// `ed25519_dalek::verify_batch` over the chunk, whatever its size.
    Batch,
    /// `VerifyingKey::verify_strict` one by one.
    Strict,
}

/// Verifies every signature of `set` in chunks of `chunk`, chunk `i` on worker `i % cores()`
/// (all cores busy, like concurrent appenders or the verifier's parallel flush). Panics if one
/// does not verify.
pub fn verify_chunks(set: &SignedSet, chunk: usize, mode: VerifyMode) {
    let starts: Vec<usize> = (0..set.len()).step_by(chunk.max(1)).collect();
    let workers = cores().clamp(1, starts.len().max(1));
    std::thread::scope(|scope| {
        for w in 0..workers {
            let starts = &starts;
            scope.spawn(move || {
                for &start in starts.iter().skip(w).step_by(workers) {
                    let range = start..(start + chunk).min(set.len());
                    let (signatures, keys) = (&set.signatures[range.clone()], &set.keys[range.clone()]);
                    match mode {
                        VerifyMode::Batch => {
                            // The same borrowed slice list `ledger::signatures` builds per batch.
                            let messages: Vec<&[u8]> = set.messages[range].iter().map(Vec::as_slice).collect();
                            ed25519_dalek::verify_batch(&messages, signatures, keys).expect("the batch verifies");
                        }
                        VerifyMode::Strict => {
                            for ((message, signature), key) in set.messages[range].iter().zip(signatures).zip(keys) {
                                key.verify_strict(message, signature).expect("the signature verifies");
                            }
                        }
                    }
                }
            });
        }
    });
}

/// The ledger's column families (`ledger/src/store/layout.rs`), in that order.
pub const COLUMN_FAMILIES: [&str; 8] =
    ["meta", "entries", "streams", "stream_heads", "event_ids", "tree", "checkpoints", "keys"];
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
        let descriptors = COLUMN_FAMILIES.iter().map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, dir.path().join("db"), descriptors).expect("open raw RocksDB");
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

/// Ledger entries and what is needed to verify them.
#[derive(Debug)]
pub struct VerifyFixture {
    /// The ledger they were appended to.
    pub fixture: AppendFixture,
    /// Every entry of [`TENANT`], read back.
    pub entries: Vec<Entry>,
    /// The newest signed checkpoint note.
    pub checkpoint_note: String,
    /// Their signatures, with the signers' keys.
    pub signed: SignedSet,
}

impl VerifyFixture {
    /// A ledger holding `agents` key registrations and `agents * batches * batch` events.
    pub fn new(agents: usize, batches: usize, batch: usize) -> Self {
        let fixture = AppendFixture::new(agents);
        let ledger = fixture.ledger();
        let work = sign_work(&fixture.agents, batches, batch);
        let _ = run_released(work, |batches| append_all(ledger, batches));
        let entries: Vec<Entry> = ledger
            .entries(TENANT, 0, u64::MAX)
            .expect("the tenant exists")
            .collect::<Result<_, _>>()
            .expect("stored entries read back");
        let checkpoint_note = ledger.checkpoint(TENANT).expect("the tenant has a checkpoint").note;
        let roots = ledger.trust_roots();
        let mut keys: HashMap<String, VerifyingKey> =
            [(roots.admin_id(), *roots.admin()), (roots.ledger_id(), *roots.ledger())]
                .into_iter()
                .map(|(id, k)| (id.to_hex(), k))
                .collect();
        for record in ledger.key_records(TENANT).expect("the tenant has keys") {
            keys.insert(record.key_id.clone(), record.verifying_key().expect("a registered key parses"));
        }
        let signed = SignedSet::of_entries(&entries, &keys);
        Self { fixture, entries, checkpoint_note, signed }
    }
}

/// Events per release of [`governance_fill`]: an intent, 10 test suites, a scan, a QA
/// approval, an evaluation request, and the deployment's start and completion.
pub const RELEASE_EVENTS: u64 = 16;

/// The seed of the key that signs the fill's QA approvals (agent `scale-qa`, role `QA`): not
/// the author of the intents, as separation of duties requires.
const APPROVER_SEED: [u8; 32] = [43; 32];

/// The approver's key, derived once (the fill signs an approval every 16 events).
fn approver() -> &'static ledger::KeyPair {
    static APPROVER: std::sync::OnceLock<ledger::KeyPair> = std::sync::OnceLock::new();
    APPROVER.get_or_init(|| ledger::KeyPair::from_seed(&APPROVER_SEED))
}

/// Registers the fill's agents in `tenant` (`agent` as `scale`, the approver as `scale-qa`
/// with the `QA` role) and sets the fill's policy (a QA approval is required), signed by the
/// data dir's admin key.
pub fn governance_setup(
    ledger: &Ledger,
    tenant: &str,
    admin: &ledger::KeyPair,
    agent: &ledger::KeyPair,
) -> Result<(), ledger::AppendError> {
    let policy = serde_json::json!({"policy": {"version": 1, "default": {"roles": ["QA"]}}});
    let bodies = [
        testkit::register_key_body(tenant, "scale", agent, &[], &[]),
        testkit::register_key_body(tenant, "scale-qa", approver(), &["QA"], &[]),
        testkit::body(tenant, "policy", "PolicyUpdated", "policy-1", "admin", policy),
    ];
    for body in bodies {
        let _ = ledger.append(AppendEvent::new(Envelope::sign(body, admin)))?;
    }
    Ok(())
}

/// Event `n` of the fill: release `n / 16`, whose 16 events are, in order, an intent, 10 test
/// suites, a security scan, a QA approval (signed by `scale-qa`), an evaluation request (the
/// ledger approves: `ReleasePlanned` at the intent, then `ReleaseApproved`), and the
/// deployment's start and completion (`ReleasePublished`). Every release ends published, so
/// none stays active.
pub fn fill_event(tenant: &str, n: u64, agent: &ledger::KeyPair) -> AppendEvent {
    let release = n / RELEASE_EVENTS;
    let module = format!("module-{}", release % 50);
    let version = format!("1.0.{release}");
    let (event_type, data, actor) = match n % RELEASE_EVENTS {
        0 => (
            "ReleaseIntentDeclared",
            serde_json::json!({"environment": "prod", "modules": [{"name": module, "version": version}]}),
            "scale",
        ),
        11 => (
            "SecurityGateStatus",
            serde_json::json!({"module": module, "version": version, "status": "Passed", "cveSeverity": "Low",
                "imageSigned": true, "sbomPresent": true, "licenseCompliant": true}),
            "scale",
        ),
        12 => ("ApprovalGranted", serde_json::json!({"role": "QA", "method": "API", "comment": "fill"}), "scale-qa"),
        13 => ("ReleaseEvaluationRequested", serde_json::json!({}), "scale"),
        14 => ("DeploymentStarted", serde_json::json!({"environment": "prod"}), "scale"),
        15 => ("DeploymentCompleted", serde_json::json!({"environment": "prod"}), "scale"),
        j => (
            "TestsPassed",
            serde_json::json!({"module": module, "version": version, "suite": format!("suite-{j}"),
                "passed": 100, "failed": 0, "notes": "x".repeat(64)}),
            "scale",
        ),
    };
    let body = serde_json::json!({
        "tenant": tenant, "stream": format!("release/r{release}"), "type": event_type,
        "eventId": format!("fill-{n}"), "occurredAt": testkit::OCCURRED_AT, "traceId": format!("trace-{release}"),
        "releaseId": format!("r{release}"), "actor": {"agentId": actor}, "data": data,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    if actor == "scale-qa" {
        AppendEvent::new(Envelope::sign(body, approver()))
    } else {
        AppendEvent::new(Envelope::sign(body, agent))
    }
}

/// Appends fill events `start..start + count` (catalogue events of [`fill_event`], signed
/// by `agent` and the approver, registered in `tenant` by [`governance_setup`]) in batches of
/// 1024, signing and appending on every core.
pub fn governance_fill(
    ledger: &Ledger,
    tenant: &str,
    agent: &ledger::KeyPair,
    start: u64,
    count: u64,
) -> Result<(), ledger::AppendError> {
    const BATCH: u64 = 1024;
    let next = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<(), ledger::AppendError> {
        let workers: Vec<_> = (0..cores())
            .map(|_| {
                scope.spawn(|| -> Result<(), ledger::AppendError> {
                    loop {
                        let from = next.fetch_add(BATCH, std::sync::atomic::Ordering::Relaxed);
                        if from >= count {
                            return Ok(());
                        }
                        let to = (from + BATCH).min(count);
                        let events = (from..to).map(|i| fill_event(tenant, start + i, agent)).collect();
                        let _ = ledger.append_batch(events)?;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("fill thread panicked")?;
        }
        Ok(())
    })
}
