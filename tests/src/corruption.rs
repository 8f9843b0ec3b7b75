//! Raw-file corruption trials: one byte of one file of a stopped server's data dir flipped,
//! then the data dir used the way a server would use it, and the outcome classified against
//! what was acknowledged.
//!
//! [`Pristine::build`] makes a real data dir once: three tenants under the governance
//! catalogue, events appended one at a time and in batches (every receipt kept), the ledger
//! closed and reopened halfway so that RocksDB flushes the first half into SST files while the
//! second half stays in the WAL, and the projection worker run over both halves so that its
//! store has SST files and a WAL too. What a correct server must serve afterwards (heads,
//! checkpoints, every entry, event ids, streams, proofs, projections) is read before closing.
//!
//! [`run_trial`] copies that data dir, XORs one byte of a [`FileClass`] with a non-zero mask
//! (file, offset and mask from a seeded generator: the seed reproduces the trial), opens it
//! with [`Ledger::open`] and, if it opens, reads everything back, verifies every tenant, and
//! retries an acknowledged event and appends a new one. Projection-store trials also start the
//! [`Governor`] and compare what it serves. The [`Outcome`] is the worst thing seen; the only
//! unacceptable one is [`Outcome::Silent`]: the store opened and answered with something other
//! than what was acknowledged (a shorter log, a changed entry, a missing tenant, a reissued
//! seq, a forgotten event id, a changed projection) without an error saying so.
//!
//! The `it` test binary runs a few trials per class; `corruption-trials` (benches) runs many
//! and prints the table of docs/reliability.md.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::{
    AppendError, AppendEvent, Config, Envelope, ErrorKind, Hash32, KeyPair, KeyRecord, Ledger, ManualClock, ReadError,
    Receipt,
};
use projections::store::{ProjectionStore, StoreError};
use projections::{Catalogue, Governor, TenantState};
use serde_json::{json, Value};

use crate::gov::{self, key_of, Event, Rng, ADMIN, CI, MINUTE, QA_LEAD, START_NS};

/// The tenants of the pristine data dir.
pub const TENANTS: &[&str] = &["acme", "globex", "initech"];

/// Which kind of file a trial corrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileClass {
    /// The ledger's RocksDB write-ahead log (`db/*.log`): the acknowledged tail.
    Wal,
    /// The ledger's `db/MANIFEST-*`: which SST files make up the store.
    Manifest,
    /// The ledger's `db/*.sst`: the flushed entries and indexes.
    Sst,
    /// The ledger's `db/CURRENT`, `db/OPTIONS-*` and `db/IDENTITY`.
    Other,
    /// The projection store's WAL (`projections/*.log`).
    ProjectionWal,
    /// The projection store's `MANIFEST-*`.
    ProjectionManifest,
    /// The projection store's `*.sst`.
    ProjectionSst,
    /// The projection store's `CURRENT`, `OPTIONS-*` and `IDENTITY`.
    ProjectionOther,
    /// The anchor (`DATA_DIR/anchor`): the acknowledged size of every tenant's log.
    Anchor,
}

impl FileClass {
    /// Every class, ledger first.
    pub const ALL: [FileClass; 9] = [
        Self::Wal,
        Self::Manifest,
        Self::Sst,
        Self::Other,
        Self::ProjectionWal,
        Self::ProjectionManifest,
        Self::ProjectionSst,
        Self::ProjectionOther,
        Self::Anchor,
    ];

    /// Its name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wal => "wal",
            Self::Manifest => "manifest",
            Self::Sst => "sst",
            Self::Other => "current-options",
            Self::ProjectionWal => "projection-wal",
            Self::ProjectionManifest => "projection-manifest",
            Self::ProjectionSst => "projection-sst",
            Self::ProjectionOther => "projection-current-options",
            Self::Anchor => "anchor",
        }
    }

    /// The class named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the file belongs to the (derived, rebuildable) projection store.
    pub fn is_projection(self) -> bool {
        matches!(self, Self::ProjectionWal | Self::ProjectionManifest | Self::ProjectionSst | Self::ProjectionOther)
    }

    /// The class of a file at `relative` (to the data dir); `None` for what is not store data
    /// (keys, RocksDB's info `LOG`, the `LOCK` file).
    fn of(relative: &Path) -> Option<Self> {
        let dir = relative.parent()?.to_str()?;
        let name = relative.file_name()?.to_str()?;
        if dir.is_empty() && name == "anchor" {
            return Some(Self::Anchor);
        }
        let kind = if name.ends_with(".log") {
            0
        } else if name.starts_with("MANIFEST-") {
            1
        } else if name.ends_with(".sst") {
            2
        } else if name == "CURRENT" || name == "IDENTITY" || name.starts_with("OPTIONS-") {
            3
        } else {
            return None;
        };
        let ledger = [Self::Wal, Self::Manifest, Self::Sst, Self::Other];
        let projection = [Self::ProjectionWal, Self::ProjectionManifest, Self::ProjectionSst, Self::ProjectionOther];
        match dir {
            "db" => Some(ledger[kind]),
            "projections" => Some(projection[kind]),
            _ => None,
        }
    }
}

impl fmt::Display for FileClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An acknowledged append: what its receipt said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    /// The tenant.
    pub tenant: String,
    /// The seq the receipt named.
    pub seq: u64,
    /// The entry hash the receipt named.
    pub entry_hash: Hash32,
}

/// What a correct server serves for one tenant of the pristine data dir.
#[derive(Debug, Clone)]
struct TenantExpect {
    size: u64,
    checkpoint_note: String,
    root: Hash32,
    entry_hashes: Vec<Hash32>,
    /// Every entry's event id and seq.
    event_ids: Vec<(String, u64)>,
    /// Every stream's entries, in version order.
    streams: BTreeMap<String, Vec<u64>>,
    /// Every signed checkpoint, by size.
    checkpoints: Vec<(u64, String)>,
    /// The key registry.
    keys: Vec<KeyRecord>,
    /// The last event appended here, to retry (it must come back as a duplicate).
    retry: AppendEvent,
    /// The seq the retry must name.
    retry_seq: u64,
    /// The projection worker's whole state of the tenant.
    projection: TenantState,
}

/// The pristine data dir and everything a correct server serves from it.
#[derive(Debug)]
pub struct Pristine {
    dir: tempfile::TempDir,
    tenants: BTreeMap<String, TenantExpect>,
    /// Every receipt of the appends that built it (the worker's decisions are acknowledged to
    /// the worker and are in the expected logs too).
    pub receipts: Vec<Acknowledged>,
    files: Vec<(FileClass, PathBuf, u64)>,
    end_ns: u64,
}

/// Appends the pristine workload, keeping every receipt.
struct Builder {
    clock: Arc<ManualClock>,
    admin: KeyPair,
    next_id: u64,
    receipts: Vec<Acknowledged>,
    last: BTreeMap<String, (AppendEvent, u64)>,
}

impl Builder {
    /// Signs `event` for `tenant`, one minute after the previous one.
    fn sign(&mut self, tenant: &str, event: &Event) -> AppendEvent {
        self.clock.advance(MINUTE);
        self.next_id += 1;
        let now = ledger::Clock::now_ns(self.clock.as_ref());
        let mut body = json!({
            "tenant": tenant,
            "stream": event.release.as_deref().map_or_else(|| "config".to_owned(), |r| format!("release/{r}")),
            "type": event.event_type, "eventId": format!("{}-{}", event.signer, self.next_id),
            "occurredAt": gov::rfc3339(now), "actor": { "agentId": event.signer }, "data": event.data,
        });
        if let Some(release) = &event.release {
            body["releaseId"] = release.as_str().into();
            body["traceId"] = format!("trace-{release}").into();
        }
        let key = if event.signer == ADMIN { self.admin.clone() } else { key_of(&event.signer) };
        AppendEvent::new(Envelope::sign(serde_json::to_vec(&body).expect("serialise body"), &key))
    }

    fn register(&mut self, ledger: &Ledger, tenant: &str, agent_id: &str, roles: &[&str]) {
        self.clock.advance(MINUTE);
        let key = key_of(agent_id);
        let body = json!({
            "tenant": tenant, "stream": "keys", "type": "AgentKeyRegistered",
            "eventId": format!("register-{}", key.key_id()),
            "occurredAt": gov::rfc3339(ledger::Clock::now_ns(self.clock.as_ref())), "actor": { "agentId": ADMIN },
            "data": { "agentId": agent_id, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": [] },
        });
        let event = AppendEvent::new(Envelope::sign(serde_json::to_vec(&body).expect("serialise body"), &self.admin));
        self.append(ledger, vec![event]);
    }

    fn one(&mut self, ledger: &Ledger, tenant: &str, event: Event) {
        let event = self.sign(tenant, &event);
        self.append(ledger, vec![event]);
    }

    fn batch(&mut self, ledger: &Ledger, tenant: &str, events: Vec<Event>) {
        let events = events.iter().map(|e| self.sign(tenant, e)).collect();
        self.append(ledger, events);
    }

    fn append(&mut self, ledger: &Ledger, events: Vec<AppendEvent>) {
        let last = events.last().cloned().expect("an event");
        let receipts: Vec<Receipt> =
            ledger.append_batch(events).unwrap_or_else(|e| panic!("pristine append refused: {e}"));
        for receipt in &receipts {
            self.receipts.push(Acknowledged {
                tenant: receipt.tenant.clone(),
                seq: receipt.seq,
                entry_hash: receipt.entry_hash,
            });
        }
        let receipt = receipts.last().expect("a receipt");
        self.last.insert(receipt.tenant.clone(), (last, receipt.seq));
    }

    /// A release to `prod` from declaration to approval: the worker decides it twice.
    fn release(&mut self, ledger: &Ledger, tenant: &str, release: &str) {
        self.one(ledger, tenant, gov::intent(release, "prod", &[("billing", "1.4.2")]));
        self.batch(ledger, tenant, gov::evidence(release, "billing", "1.4.2"));
        self.one(ledger, tenant, gov::evaluate(release));
        self.one(ledger, tenant, gov::approve(release, "QA"));
    }
}

fn config(clock: &Arc<ManualClock>) -> Config {
    Config { rules: Some(Arc::new(Catalogue)), clock: clock.clone(), ..Config::default() }
}

fn settle(governor: &Governor) {
    assert!(governor.settle(std::time::Duration::from_secs(60)), "the projection worker did not settle");
}

impl Pristine {
    /// Builds the pristine data dir (see the module doc); panics if it does not hold both
    /// SST files and a non-empty WAL, in the ledger and in the projection store.
    pub fn build() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path();
        // Fixed keys, so that every build lays out the same bytes where it can.
        std::fs::create_dir_all(data.join("keys")).expect("keys dir");
        let admin = KeyPair::from_seed(&[0xAD; 32]);
        admin.save_new(&data.join("keys/admin.pem")).expect("admin key");
        KeyPair::from_seed(&[0x1E; 32]).save_new(&data.join("keys/ledger.pem")).expect("ledger key");
        let clock = Arc::new(ManualClock::new(START_NS));
        let open = || Arc::new(Ledger::open(data, config(&clock)).expect("open the pristine ledger"));

        // First half: registrations, a policy and releases, single and batched appends.
        let mut builder =
            Builder { clock: clock.clone(), admin, next_id: 0, receipts: Vec::new(), last: BTreeMap::new() };
        let ledger = open();
        for tenant in TENANTS {
            builder.register(&ledger, tenant, CI, &[]);
            builder.register(&ledger, tenant, QA_LEAD, &["QA"]);
            builder.one(&ledger, tenant, gov::policy(gov::prod_policy(json!({}))));
        }
        for n in 1..=4 {
            for tenant in TENANTS {
                builder.release(&ledger, tenant, &format!("r{n}"));
            }
        }
        // The worker runs only between the workload's appends, so that its decisions land in
        // the same commit groups on every build and a trial seed finds the same bytes.
        let governor = Governor::start(ledger.clone(), &data.join("projections"), None).expect("governor");
        settle(&governor);
        // Closed and reopened: RocksDB replays both WALs and flushes them into SST files.
        drop(governor);
        drop(ledger);
        let ledger = open();

        // Second half: stays in the WALs.
        for n in 5..=7 {
            for tenant in TENANTS {
                builder.release(&ledger, tenant, &format!("r{n}"));
            }
        }
        for tenant in TENANTS {
            let ready = (0..4).map(|i| gov::pipeline_ready("r8", "billing", &format!("1.4.{i}"))).collect();
            builder.batch(&ledger, tenant, ready);
            builder.one(&ledger, tenant, gov::pipeline_ready("r8", "search", "2.0.0"));
        }
        let governor = Governor::start(ledger.clone(), &data.join("projections"), None).expect("governor");
        settle(&governor);
        governor.shutdown();
        let tenants = TENANTS
            .iter()
            .map(|tenant| {
                let (retry, retry_seq) = builder.last[*tenant].clone();
                (tenant.to_string(), expect(&ledger, &governor, tenant, retry, retry_seq))
            })
            .collect();
        drop(governor);
        drop(ledger);
        let end_ns = ledger::Clock::now_ns(clock.as_ref());
        let receipts = builder.receipts;

        let pristine = Self { files: list_files(data), dir, tenants, receipts, end_ns };
        for acknowledged in &pristine.receipts {
            let expected = &pristine.tenants[&acknowledged.tenant].entry_hashes;
            assert_eq!(expected.get(acknowledged.seq as usize), Some(&acknowledged.entry_hash), "{acknowledged:?}");
        }
        for class in FileClass::ALL {
            assert!(pristine.bytes(class) > 0, "the pristine data dir has no {class} bytes: {:?}", pristine.files);
        }
        pristine
    }

    /// The pristine data dir (never open it: opening replays and rewrites it).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The files of `class`, with their sizes.
    pub fn files(&self, class: FileClass) -> Vec<(&Path, u64)> {
        self.files.iter().filter(|(c, _, _)| *c == class).map(|(_, p, n)| (p.as_path(), *n)).collect()
    }

    /// The bytes of `class`.
    pub fn bytes(&self, class: FileClass) -> u64 {
        self.files(class).iter().map(|(_, n)| n).sum()
    }

    /// The acknowledged size of every tenant.
    pub fn sizes(&self) -> BTreeMap<String, u64> {
        self.tenants.iter().map(|(t, x)| (t.clone(), x.size)).collect()
    }
}

/// Reads what a correct server serves for `tenant` from the live pristine ledger.
fn expect(ledger: &Ledger, governor: &Governor, tenant: &str, retry: AppendEvent, retry_seq: u64) -> TenantExpect {
    let head = ledger.head(tenant).expect("head");
    let checkpoint = ledger.checkpoint(tenant).expect("checkpoint");
    let entries = crate::all_entries(ledger, tenant);
    let mut streams: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut event_ids = Vec::new();
    for entry in &entries {
        let body = gov::body_of(entry).expect("entry body");
        event_ids.push((body["eventId"].as_str().expect("eventId").to_owned(), entry.seq));
        streams.entry(body["stream"].as_str().expect("stream").to_owned()).or_default().push(entry.seq);
    }
    let checkpoints = (1..=head.size)
        .filter_map(|size| ledger.checkpoint_at(tenant, size).expect("checkpoint_at").map(|c| (size, c.note)))
        .collect();
    let projection = governor.snapshot(tenant).expect("projection snapshot").expect("projection state");
    assert_eq!(projection.meta.position, head.size, "the pristine projection of {tenant} is behind");
    TenantExpect {
        size: head.size,
        checkpoint_note: checkpoint.note,
        root: checkpoint.checkpoint.root,
        entry_hashes: entries.iter().map(|e| e.entry_hash).collect(),
        event_ids,
        streams,
        checkpoints,
        keys: ledger.key_records(tenant).expect("key records"),
        retry,
        retry_seq,
        projection,
    }
}

fn list_files(data: &Path) -> Vec<(FileClass, PathBuf, u64)> {
    let mut files = Vec::new();
    for dir in ["db", "projections"] {
        for item in std::fs::read_dir(data.join(dir)).expect("read dir") {
            let item = item.expect("dir entry");
            let relative = Path::new(dir).join(item.file_name());
            let len = item.metadata().expect("metadata").len();
            if let Some(class) = FileClass::of(&relative) {
                if len > 0 {
                    files.push((class, relative, len));
                }
            }
        }
    }
    let anchor = data.join("anchor");
    if let Ok(bytes) = std::fs::read(&anchor) {
        // Its written records only: the rest is preallocated zeros, unwritten space whose
        // flips are harmless by construction and would crowd out the records' flips.
        files.push((FileClass::Anchor, PathBuf::from("anchor"), ledger::store::anchor::records_end(&bytes)));
    }
    files.sort();
    files
}

/// How a trial ended, from acceptable to unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Opened and served exactly what was acknowledged (the byte was unused, or redundant).
    Unchanged,
    /// Projection store only: the worker noticed (undecodable or older state) and refolded
    /// the log; it serves exactly the acknowledged state.
    Rebuilt,
    /// Refused to open (for the projection store: the worker never became ready, so queries
    /// answer `UNAVAILABLE`).
    Refused,
    /// Opened; a read, a proof check or an append answered with an error.
    Detected,
    /// Opened and read back intact, but `verify_tenant` failed.
    VerifyFailed,
    /// Panicked.
    Panicked,
    /// Opened and served something other than what was acknowledged, with no error.
    Silent,
}

impl Outcome {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unchanged => "unchanged",
            Self::Rebuilt => "rebuilt",
            Self::Refused => "refused",
            Self::Detected => "detected",
            Self::VerifyFailed => "verify_failed",
            Self::Panicked => "panicked",
            Self::Silent => "SILENT",
        }
    }
}

/// What an error says about where the damage is, most precise first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Where {
    /// A seq (and so a tenant).
    Seq,
    /// A tenant (or a projection row, whose key starts with one), not a seq.
    Tenant,
    /// A file of the store only.
    File,
    /// Nothing: or there was no error.
    #[default]
    Nowhere,
}

impl Where {
    /// Where a server's error text says the damage is.
    fn of(text: &str) -> Self {
        if text.contains("seq ") {
            Self::Seq
        } else if TENANTS.iter().any(|t| text.contains(t)) {
            Self::Tenant
        } else if [".sst", ".log", "MANIFEST", "CURRENT", "OPTIONS", "IDENTITY"].iter().any(|w| text.contains(w)) {
            Self::File
        } else {
            Self::Nowhere
        }
    }

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Seq => "seq",
            Self::Tenant => "tenant",
            Self::File => "file",
            Self::Nowhere => "nowhere",
        }
    }
}

/// One byte flipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flip {
    /// The file, relative to the data dir.
    pub file: PathBuf,
    /// Its size.
    pub file_len: u64,
    /// The byte.
    pub offset: u64,
    /// XORed into it (non-zero).
    pub mask: u8,
}

/// One trial and its outcome.
#[derive(Debug, Clone)]
pub struct TrialResult {
    /// The class corrupted.
    pub class: FileClass,
    /// The seed that reproduces it ([`run_trial`] with the same class).
    pub seed: u64,
    /// What was flipped.
    pub flip: Flip,
    /// The outcome.
    pub outcome: Outcome,
    /// What the error said about where ([`Where::Nowhere`] for outcomes without an error).
    pub names: Where,
    /// The first error or silent change seen, and how many more.
    pub detail: String,
    /// Everything seen: every silent change, error and verification failure (the JSON and
    /// the summary line keep only the first).
    pub findings: Vec<String>,
}

impl TrialResult {
    /// The trial as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "class": self.class.name(), "seed": self.seed, "file": self.flip.file.display().to_string(),
            "file_len": self.flip.file_len, "offset": self.flip.offset, "mask": self.flip.mask,
            "outcome": self.outcome.name(), "where": self.names.name(), "detail": self.detail,
        })
    }
}

impl fmt::Display for TrialResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} seed={:#018x} {} byte {}/{} ^{:#04x}: {} (error names: {}) — {}",
            self.class,
            self.seed,
            self.flip.file.display(),
            self.flip.offset,
            self.flip.file_len,
            self.flip.mask,
            self.outcome.name(),
            self.names.name(),
            self.detail
        )
    }
}

/// What the checks of one trial saw.
#[derive(Debug, Default)]
struct Findings {
    silent: Vec<String>,
    detected: Vec<(String, Where)>,
    verify: Vec<(String, Where)>,
    /// Projection store only: it held something else, and the worker refolded the log.
    rebuilt: Option<String>,
}

impl Findings {
    fn silent(&mut self, what: String) {
        self.silent.push(what);
    }

    /// A read that must succeed failed: an acknowledged thing answered as absent is silent
    /// loss; any other error is detection.
    fn read_error(&mut self, what: &str, error: &ReadError) {
        match error {
            ReadError::UnknownTenant(_) | ReadError::OutOfRange(_) => self.silent(format!("{what}: {error}")),
            ReadError::Corrupted { .. } => self.detected.push((format!("{what}: {error}"), Where::Seq)),
            other => {
                let text = other.to_string();
                self.detected.push((format!("{what}: {text}"), Where::of(&text)));
            }
        }
    }

    /// An append by a key the acknowledged log registered failed. Refusing the key (unknown,
    /// not allowed) denies an acknowledged registration: silent loss, however polite.
    fn append_error(&mut self, what: &str, error: &AppendError) {
        match error.kind() {
            ErrorKind::Unauthenticated | ErrorKind::PermissionDenied => {
                self.silent(format!("{what}: an acknowledged key is refused: {error}"));
            }
            _ => {
                let text = error.to_string();
                let names = if matches!(error, AppendError::Corrupted { .. }) { Where::Seq } else { Where::of(&text) };
                self.detected.push((format!("{what}: {text}"), names));
            }
        }
    }

    fn outcome(&self) -> Ending {
        let (outcome, names, detail) = self.summary();
        let findings = self
            .silent
            .iter()
            .map(|s| format!("SILENT {s}"))
            .chain(self.detected.iter().map(|(s, _)| format!("detected {s}")))
            .chain(self.verify.iter().map(|(s, _)| format!("verify_failed {s}")))
            .chain(self.rebuilt.iter().map(|s| format!("rebuilt {s}")))
            .collect();
        Ending { outcome, names, detail, findings }
    }

    fn summary(&self) -> (Outcome, Where, String) {
        let summary = |items: Vec<&String>| {
            let more = if items.len() > 1 { format!(" (+{} more)", items.len() - 1) } else { String::new() };
            let first = items.first().map_or("", |s| s.as_str());
            let first = match first.char_indices().nth(400) {
                Some((end, _)) => format!("{}…", &first[..end]),
                None => first.to_owned(),
            };
            format!("{first}{more}")
        };
        if !self.silent.is_empty() {
            (Outcome::Silent, Where::Nowhere, summary(self.silent.iter().collect()))
        } else if !self.detected.is_empty() {
            let names = self.detected.iter().map(|(_, w)| *w).min().unwrap_or_default();
            (Outcome::Detected, names, summary(self.detected.iter().map(|(s, _)| s).collect()))
        } else if !self.verify.is_empty() {
            let names = self.verify.iter().map(|(_, w)| *w).min().unwrap_or_default();
            (Outcome::VerifyFailed, names, summary(self.verify.iter().map(|(s, _)| s).collect()))
        } else if let Some(rebuilt) = &self.rebuilt {
            (Outcome::Rebuilt, Where::Nowhere, rebuilt.clone())
        } else {
            (Outcome::Unchanged, Where::Nowhere, String::new())
        }
    }
}

/// One trial: copies the pristine data dir, flips one byte of `class` chosen by `seed`, and
/// uses the copy as a server would (see the module doc).
pub fn run_trial(pristine: &Pristine, class: FileClass, seed: u64) -> TrialResult {
    let mut rng = Rng::new(seed);
    let files = pristine.files(class);
    let total = pristine.bytes(class);
    assert!(total > 0, "the pristine data dir has no {class} file");
    // A byte chosen uniformly over the class's bytes (rot does not pick files), except for the
    // small files of CURRENT/OPTIONS/IDENTITY, where the 16-byte CURRENT would hardly ever be
    // hit beside two 40 KB OPTIONS files: there the file is chosen first.
    let mut at = match class {
        FileClass::Other | FileClass::ProjectionOther => {
            let index = rng.below(files.len() as u64) as usize;
            let before: u64 = files[..index].iter().map(|(_, n)| n).sum();
            before + rng.below(files[index].1)
        }
        _ => rng.below(total),
    };
    let (file, file_len) = files
        .iter()
        .find_map(|(path, len)| {
            if at < *len {
                Some((*path, *len))
            } else {
                at -= len;
                None
            }
        })
        .expect("the offset falls in a file");
    let flip = Flip { file: file.to_path_buf(), file_len, offset: at, mask: 1 + rng.below(255) as u8 };

    let copy = tempfile::tempdir().expect("temp dir");
    gov::copy_dir(pristine.path(), copy.path());
    let path = copy.path().join(&flip.file);
    let mut bytes = std::fs::read(&path).expect("read the file to corrupt");
    bytes[flip.offset as usize] ^= flip.mask;
    std::fs::write(&path, bytes).expect("write the corrupted file");

    let result = std::panic::catch_unwind(AssertUnwindSafe(|| use_data_dir(pristine, class, copy.path())));
    let Ending { outcome, names, detail, findings } = result.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Ending::error(Outcome::Panicked, Where::Nowhere, format!("panicked: {text}"))
    });
    TrialResult { class, seed, flip, outcome, names, detail, findings }
}

/// How a trial ended: [`TrialResult`] without the flip.
#[derive(Debug)]
struct Ending {
    outcome: Outcome,
    names: Where,
    detail: String,
    findings: Vec<String>,
}

impl Ending {
    fn error(outcome: Outcome, names: Where, detail: String) -> Self {
        Self { outcome, names, findings: vec![detail.clone()], detail }
    }
}

/// Opens, reads, verifies and appends to a (corrupted) copy of the pristine data dir.
fn use_data_dir(pristine: &Pristine, class: FileClass, data: &Path) -> Ending {
    let clock = Arc::new(ManualClock::new(pristine.end_ns + MINUTE));
    let ledger = match Ledger::open(data, config(&clock)) {
        Ok(ledger) => Arc::new(ledger),
        Err(e) => {
            let text = e.to_string();
            return Ending::error(Outcome::Refused, Where::of(&text), text);
        }
    };
    let mut findings = Findings::default();
    read_everything(pristine, &ledger, &mut findings);
    if class.is_projection() && findings.silent.is_empty() && findings.detected.is_empty() {
        if let Some(outcome) = use_projections(pristine, &ledger, data, &mut findings) {
            return outcome;
        }
    }
    append_after(pristine, &ledger, &mut findings);
    findings.outcome()
}

/// Every read a client can make of the acknowledged data, then `verify_tenant`.
fn read_everything(pristine: &Pristine, ledger: &Ledger, findings: &mut Findings) {
    let served: BTreeSet<String> = ledger.tenants().into_iter().collect();
    for extra in served.iter().filter(|t| !pristine.tenants.contains_key(*t)) {
        findings.silent(format!("a tenant {extra:?} that was never written is served"));
    }
    for (tenant, expected) in &pristine.tenants {
        if !served.contains(tenant) {
            findings.silent(format!("tenant {tenant} is missing ({} entries acknowledged)", expected.size));
            continue;
        }
        read_tenant(ledger, tenant, expected, findings);
    }
}

fn read_tenant(ledger: &Ledger, tenant: &str, x: &TenantExpect, findings: &mut Findings) {
    match ledger.head(tenant) {
        Ok(head) if head.size != x.size => {
            findings.silent(format!("{tenant}: the log has {} entries, {} were acknowledged", head.size, x.size));
        }
        Ok(head) if head.chain_head != x.entry_hashes[x.entry_hashes.len() - 1] => {
            findings.silent(format!("{tenant}: the chain head changed"));
        }
        Ok(_) => {}
        Err(e) => findings.read_error(&format!("{tenant}: head"), &e),
    }
    match ledger.checkpoint(tenant) {
        Ok(c) if c.note != x.checkpoint_note => {
            findings.silent(format!("{tenant}: the served checkpoint is of size {}", c.checkpoint.size));
        }
        Ok(_) => {}
        Err(e) => findings.read_error(&format!("{tenant}: checkpoint"), &e),
    }
    // The whole log as a range read, then every acknowledged seq as a point read.
    match ledger.entries(tenant, 0, u64::MAX) {
        Ok(entries) => {
            for entry in entries {
                match entry {
                    Ok(e) if x.entry_hashes.get(e.seq as usize) != Some(&e.entry_hash) => {
                        findings.silent(format!("{tenant}: seq {} is not the acknowledged entry", e.seq));
                    }
                    Ok(_) => {}
                    Err(e) => findings.read_error(&format!("{tenant}: range read"), &e),
                }
            }
        }
        Err(e) => findings.read_error(&format!("{tenant}: range read"), &e),
    }
    for (seq, hash) in x.entry_hashes.iter().enumerate() {
        match ledger.entry(tenant, seq as u64) {
            Ok(e) if e.entry_hash != *hash => findings.silent(format!("{tenant}: seq {seq} changed")),
            Ok(_) => {}
            Err(e) => {
                findings.read_error(&format!("{tenant}: entry {seq}"), &e);
                break;
            }
        }
    }
    for (event_id, seq) in &x.event_ids {
        match ledger.entry_by_event_id(tenant, event_id) {
            Ok(Some(e)) if e.seq == *seq && x.entry_hashes.get(e.seq as usize) == Some(&e.entry_hash) => {}
            Ok(Some(e)) => findings.silent(format!("{tenant}: event id {event_id} names seq {}, not {seq}", e.seq)),
            Ok(None) => findings.silent(format!("{tenant}: event id {event_id} (seq {seq}) is unknown")),
            Err(e) => findings.read_error(&format!("{tenant}: event id {event_id}"), &e),
        }
    }
    for (stream, seqs) in &x.streams {
        match ledger.stream_version(tenant, stream) {
            Ok(version) if version != seqs.len() as u64 => {
                findings.silent(format!("{tenant}: stream {stream} is at version {version}, not {}", seqs.len()));
            }
            Ok(_) => {}
            Err(e) => findings.read_error(&format!("{tenant}: stream {stream} version"), &e),
        }
        match ledger.read_stream(tenant, stream, 1, usize::MAX) {
            Ok(read) => {
                let served: Vec<u64> = read.iter().map(|(_, e)| e.seq).collect();
                if served != *seqs {
                    findings.silent(format!("{tenant}: stream {stream} serves seqs {served:?}, not {seqs:?}"));
                }
            }
            Err(e) => findings.read_error(&format!("{tenant}: stream {stream}"), &e),
        }
    }
    for (size, note) in &x.checkpoints {
        match ledger.checkpoint_at(tenant, *size) {
            Ok(Some(c)) if c.note == *note => {}
            Ok(Some(_)) => findings.silent(format!("{tenant}: the checkpoint at size {size} changed")),
            Ok(None) => findings.silent(format!("{tenant}: the checkpoint signed at size {size} is gone")),
            Err(e) => findings.read_error(&format!("{tenant}: checkpoint at {size}"), &e),
        }
    }
    match ledger.key_records(tenant) {
        Ok(keys) if keys != x.keys => findings.silent(format!(
            "{tenant}: the key registry serves {} keys, {} were registered (or they changed)",
            keys.len(),
            x.keys.len()
        )),
        Ok(_) => {}
        Err(e) => findings.read_error(&format!("{tenant}: key registry"), &e),
    }
    // Proofs: a client checks them against the signed root, so a bad one is detected there.
    match ledger.root_at(tenant, x.size) {
        Ok(root) if root != x.root => findings.detected.push((
            format!("{tenant}: the tree root at {} does not match the signed checkpoint", x.size),
            Where::Tenant,
        )),
        Ok(_) => {}
        Err(e) => findings.read_error(&format!("{tenant}: root"), &e),
    }
    for (seq, hash) in x.entry_hashes.iter().enumerate() {
        let seq = seq as u64;
        match ledger.inclusion_proof(tenant, seq, x.size) {
            Ok(proof) => {
                let leaf = LogHasher::hash_leaf(hash);
                if merkle::verify_inclusion::<LogHasher>(&leaf, seq, x.size, &proof.path, &x.root).is_err() {
                    let what = format!("{tenant}: the inclusion proof of seq {seq} does not verify");
                    findings.detected.push((what, Where::Seq));
                    break;
                }
            }
            Err(e) => {
                findings.read_error(&format!("{tenant}: inclusion proof of {seq}"), &e);
                break;
            }
        }
    }
    if let Err(failure) = ledger.verify_tenant(tenant) {
        let names = if failure.seq.is_some() { Where::Seq } else { Where::of(&failure.to_string()) };
        findings.verify.push((format!("{tenant}: verify: {failure}"), names));
    }
}

/// Retries each tenant's last acknowledged event (it must come back as that seq's duplicate)
/// and appends a new one (it must get the next seq, never one a receipt already named).
fn append_after(pristine: &Pristine, ledger: &Ledger, findings: &mut Findings) {
    let clock_ns = pristine.end_ns + 2 * MINUTE;
    for (tenant, x) in &pristine.tenants {
        match ledger.append(x.retry.clone()) {
            Ok(r) if r.duplicate && r.seq == x.retry_seq => {}
            Ok(r) => findings.silent(format!(
                "{tenant}: the retry of the event acknowledged at seq {} was appended again at seq {}",
                x.retry_seq, r.seq
            )),
            Err(e) => findings.append_error(&format!("{tenant}: retry"), &e),
        }
        let body = json!({
            "tenant": tenant, "stream": "release/probe", "type": "PipelineReady", "eventId": "probe",
            "occurredAt": gov::rfc3339(clock_ns), "actor": { "agentId": CI }, "releaseId": "probe",
            "traceId": "trace-probe", "data": { "module": "billing", "version": "1.0.0", "pipelineId": "p" },
        });
        let event = AppendEvent::new(Envelope::sign(serde_json::to_vec(&body).expect("serialise"), &key_of(CI)));
        match ledger.append(event) {
            Ok(r) if r.seq == x.size => {}
            Ok(r) if r.seq < x.size => findings.silent(format!(
                "{tenant}: a new event got seq {}, which a receipt already named with another entry hash",
                r.seq
            )),
            Ok(r) => findings.silent(format!("{tenant}: a new event got seq {}, the log had {}", r.seq, x.size)),
            Err(e) => findings.append_error(&format!("{tenant}: append"), &e),
        }
    }
}

/// Projection-store trials: what the store holds (read directly, as the worker's first load
/// does), then what the worker serves once started on it. Returns the outcome when the worker
/// refused; otherwise records into `findings`.
fn use_projections(pristine: &Pristine, ledger: &Arc<Ledger>, data: &Path, findings: &mut Findings) -> Option<Ending> {
    let dir = data.join("projections");
    // What the store holds, before the worker sees it.
    let stored: Result<String, String> = (|| -> Result<String, StoreError> {
        let store = ProjectionStore::open(&dir)?;
        let states = store.load_all()?;
        let mut differs = Vec::new();
        for (tenant, x) in &pristine.tenants {
            match states.get(tenant) {
                None => differs.push(format!("{tenant}: no stored state")),
                Some(state) if state.meta.position != x.size => {
                    differs.push(format!("{tenant}: stored position {} of {}", state.meta.position, x.size));
                }
                Some(state) => {
                    if store.whole(state)? != x.projection {
                        differs.push(format!("{tenant}: stored state differs"));
                    }
                }
            }
        }
        Ok(differs.join("; "))
    })()
    .map_err(|e| e.to_string());

    let governor = match Governor::start(ledger.clone(), &dir, None) {
        Ok(governor) => governor,
        Err(e) => return Some(Ending::error(Outcome::Refused, Where::of(&e.to_string()), format!("projections: {e}"))),
    };
    let mut last_error = None;
    for _ in 0..4 {
        match governor.catch_up() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    if !governor.ready() {
        let text = last_error.unwrap_or_else(|| "never ready".into());
        return Some(Ending::error(Outcome::Refused, Where::of(&text), format!("projections: {text}")));
    }
    for (tenant, x) in &pristine.tenants {
        match governor.snapshot(tenant) {
            Ok(Some(state)) if state == x.projection => {}
            Ok(Some(state)) => {
                let diff = gov::diff(&state, &x.projection);
                findings.silent(format!("projections: {tenant} served changed: {}", diff.join("; ")));
            }
            Ok(None) => findings.silent(format!("projections: {tenant} has no state")),
            Err(e) => {
                let text = e.to_string();
                findings.detected.push((format!("projections: {tenant}: {text}"), Where::of(&text)));
            }
        }
        match ledger.head(tenant) {
            Ok(head) if head.size != x.size => {
                findings.silent(format!("projections: the worker appended {} entries to {tenant}", head.size - x.size))
            }
            _ => {}
        }
    }
    governor.shutdown();
    match stored {
        Err(e) => findings.rebuilt = Some(format!("projections: the store did not load ({e}); refolded")),
        Ok(differs) if !differs.is_empty() => findings.rebuilt = Some(format!("projections: {differs}; refolded")),
        Ok(_) => {}
    }
    None
}

/// Trials per class: `per_class` trials of each of `classes`, seeds drawn from `seed`.
pub fn trial_plan(seed: u64, per_class: usize, classes: &[FileClass]) -> Vec<(FileClass, u64)> {
    let mut rng = Rng::new(seed);
    let mut plan = Vec::new();
    for _ in 0..per_class {
        for class in classes {
            plan.push((*class, rng.next_u64()));
        }
    }
    plan
}

/// Counts per class and outcome.
#[derive(Debug, Default, Clone)]
pub struct Table {
    rows: BTreeMap<FileClass, BTreeMap<Outcome, usize>>,
    /// What the errors (refusals, detections, verification failures) said about where.
    names: BTreeMap<FileClass, BTreeMap<Where, usize>>,
}

impl Table {
    /// The table of `results`.
    pub fn of(results: &[TrialResult]) -> Self {
        let mut table = Self::default();
        for r in results {
            *table.rows.entry(r.class).or_default().entry(r.outcome).or_default() += 1;
            if matches!(r.outcome, Outcome::Refused | Outcome::Detected | Outcome::VerifyFailed) {
                *table.names.entry(r.class).or_default().entry(r.names).or_default() += 1;
            }
        }
        table
    }

    /// Trials of `class` that ended in `outcome`.
    pub fn count(&self, class: FileClass, outcome: Outcome) -> usize {
        self.rows.get(&class).and_then(|r| r.get(&outcome)).copied().unwrap_or(0)
    }

    fn columns() -> [Outcome; 7] {
        [
            Outcome::Refused,
            Outcome::Detected,
            Outcome::VerifyFailed,
            Outcome::Rebuilt,
            Outcome::Unchanged,
            Outcome::Panicked,
            Outcome::Silent,
        ]
    }

    /// A Markdown table: one row per class, a column per outcome, and what the errors
    /// (refusals, detections, verification failures) said about where: how many named a seq,
    /// a tenant (not a seq), only a file, or nothing.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| file class | trials |");
        for c in Self::columns() {
            out.push_str(&format!(" {} |", c.name()));
        }
        out.push_str(" errors name seq/tenant/file/nothing |\n|---|---:|");
        for _ in Self::columns() {
            out.push_str("---:|");
        }
        out.push_str("---:|\n");
        let mut totals = BTreeMap::new();
        for (class, row) in &self.rows {
            let trials: usize = row.values().sum();
            out.push_str(&format!("| {class} | {trials} |"));
            for c in Self::columns() {
                let n = row.get(&c).copied().unwrap_or(0);
                *totals.entry(c).or_insert(0) += n;
                out.push_str(&format!(" {n} |"));
            }
            out.push_str(&format!(" {} |\n", self.names_of(Some(*class))));
        }
        let trials: usize = totals.values().sum();
        out.push_str(&format!("| **all** | {trials} |"));
        for c in Self::columns() {
            out.push_str(&format!(" {} |", totals.get(&c).copied().unwrap_or(0)));
        }
        out.push_str(&format!(" {} |\n", self.names_of(None)));
        out
    }

    /// `seq/tenant/file/nothing` counts of one class's errors, or of all.
    fn names_of(&self, class: Option<FileClass>) -> String {
        let counts: Vec<String> = [Where::Seq, Where::Tenant, Where::File, Where::Nowhere]
            .iter()
            .map(|w| {
                let n: usize = self
                    .names
                    .iter()
                    .filter(|(c, _)| class.is_none_or(|class| class == **c))
                    .map(|(_, row)| row.get(w).copied().unwrap_or(0))
                    .sum();
                n.to_string()
            })
            .collect();
        counts.join("/")
    }

    /// The counts as JSON.
    pub fn to_json(&self) -> Value {
        let rows: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|(class, row)| {
                let mut counts: serde_json::Map<String, Value> = Self::columns()
                    .iter()
                    .map(|c| (c.name().to_owned(), json!(row.get(c).copied().unwrap_or(0))))
                    .collect();
                counts.insert("trials".into(), json!(row.values().sum::<usize>()));
                let names = self.names.get(class).cloned().unwrap_or_default();
                let names: serde_json::Map<String, Value> =
                    names.iter().map(|(w, n)| (w.name().to_owned(), json!(n))).collect();
                counts.insert("errors_name".into(), Value::Object(names));
                (class.name().to_owned(), Value::Object(counts))
            })
            .collect();
        Value::Object(rows)
    }
}
