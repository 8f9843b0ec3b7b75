//! Signed events from registered agents, appender threads released together, and the Ed25519
//! limit a durable signed append is measured against (the criterion benches, `limits`).
//! `BENCHMARKS.md` explains what each bench measures and records the results.

use std::collections::HashMap;
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use ledger::{AppendEvent, Entry, Envelope, Ledger};
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
    /// The ledger's own check of a request's signatures on one thread
    /// (`ledger::signatures::first_bad_signature_here`: one batch, one key's terms summed,
    /// coefficients from BLAKE3, curve25519-dalek 5).
    Ledger,
}

/// Ed25519 batch verification alone, measured both ways on the same signatures: what the
/// benches compare the ledger with.
#[derive(Debug, Clone, Copy)]
pub struct Ed25519Alone {
    /// Signatures per second with `ed25519_dalek::verify_batch` ([`VerifyMode::Batch`]).
    pub dalek: f64,
    /// Signatures per second with the ledger's own check ([`VerifyMode::Ledger`]).
    pub ledger: f64,
}

impl Ed25519Alone {
    /// Times [`verify_chunks`] of `set` in chunks of `chunk`, ed25519-dalek's way then the
    /// ledger's.
    pub fn measure(set: &SignedSet, chunk: usize) -> Self {
        let rate = |mode| {
            let started = Instant::now();
            verify_chunks(set, chunk, mode);
            set.len() as f64 / started.elapsed().as_secs_f64()
        };
        let dalek = rate(VerifyMode::Batch);
        Self { dalek, ledger: rate(VerifyMode::Ledger) }
    }

    /// [`Ed25519Alone::measure`] `runs` times (at least once), each mode's best: a limit is what
    /// the machine can do, and a run that something else disturbed measures less (issue 20's
    /// thirtieth session saw one `export-bench` limit at 164 k signatures/s among others at
    /// 249–256 k). Returns the best and every run's own measure.
    pub fn best_of(set: &SignedSet, chunk: usize, runs: usize) -> (Self, Vec<Self>) {
        let all: Vec<Self> = (0..runs.max(1)).map(|_| Self::measure(set, chunk)).collect();
        let best = Self {
            dalek: all.iter().map(|r| r.dalek).fold(0.0, f64::max),
            ledger: all.iter().map(|r| r.ledger).fold(0.0, f64::max),
        };
        (best, all)
    }

    /// The limit: the faster of the two (the ledger's check outruns ed25519-dalek's since issue
    /// 20's eighteenth session, and a limit the ledger outruns is no limit).
    pub fn limit(&self) -> f64 {
        self.dalek.max(self.ledger)
    }
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
                        VerifyMode::Ledger => {
                            let messages = &set.messages[range];
                            let bad = ledger::signatures::first_bad_signature_here(messages, signatures, keys);
                            assert_eq!(bad, None, "the batch verifies");
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
