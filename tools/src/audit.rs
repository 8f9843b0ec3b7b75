//! The offline audit: verification of an export file or a data dir, trusting nothing but the
//! ledger public key (pinned with `--ledger-key`, or as the file states it), and re-deriving
//! every ledger decision from the entries before it.

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use ledger::{
    Entry, EventRules, FsckOpenError, FsckOptions, KeyId, LedgerKeyFile, Problem, ServerLock, SignedCheckpoint,
    StoreView, TrustRoots, Verifier, VerifyFailure, VerifyReport,
};
use projections::catalogue::Catalogue;
use projections::state::{ReleaseState, TenantState};
use serde::Serialize;

use crate::file::{ExportReader, FileError, Format};
use crate::rows::parsed_entries_from_batch;
use crate::schema::{ExportMeta, Table};

mod consistency;
mod fold;
mod proof;
mod spill;
pub use consistency::{checkpoint_note, consistency, parse_checkpoint, read_checkpoint_file, ConsistencyOutcome};
use fold::Pipeline;
pub use fold::{Fold, AUDIT_CACHED_INACTIVE};
pub use proof::{proof, ProofOutcome};

/// Exit status of `ledger-audit verify`: verified.
pub const EXIT_VERIFIED: i32 = 0;
/// Exit status: an inconsistency was found.
pub const EXIT_INCONSISTENT: i32 = 1;
/// Exit status: the audit could not run (missing file, bad arguments).
pub const EXIT_CANNOT_RUN: i32 = 2;

/// The first inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The first bad seq, when the failure is about an entry.
    pub seq: Option<u64>,
    /// The check that failed (the names of [`CHECKS`]; for a data dir, the verifier's check or
    /// the column family).
    pub check: String,
    /// What exactly.
    pub detail: String,
    /// Data dirs: where the bad row is (boxed: failures travel in `Result`s).
    #[serde(flatten)]
    pub location: Option<Box<Location>>,
}

/// Where in a data dir a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// The column family holding the bad row (`store` for RocksDB itself, `keys/ledger.pub`
    /// for that file).
    pub column_family: String,
    /// The tenant whose row it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The row's key, when it is not simply the entry's (`level 0 index 3`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Failure {
    fn new(seq: Option<u64>, check: &str, detail: impl Into<String>) -> Self {
        Self { seq, check: check.to_owned(), detail: detail.into(), location: None }
    }

    fn from_verify(f: VerifyFailure) -> Self {
        Self::new(f.seq, &f.check.to_string(), f.detail)
    }

    /// A problem the data dir check found.
    fn from_problem(p: &Problem) -> Self {
        Self {
            seq: p.seq,
            check: p.check.map_or_else(|| p.cf.clone(), |c| c.to_string()),
            detail: p.detail.clone(),
            location: Some(Box::new(Location {
                column_family: p.cf.clone(),
                tenant: p.tenant.clone(),
                key: p.key.clone(),
            })),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(location) = &self.location {
            let cf = &location.column_family;
            write!(f, "{cf}")?;
            if let Some(tenant) = &location.tenant {
                write!(f, ", tenant {tenant}")?;
            }
            if let Some(seq) = self.seq {
                write!(f, ", seq {seq}")?;
            }
            if let Some(key) = &location.key {
                write!(f, ", {key}")?;
            }
            if self.check != *cf {
                write!(f, ": {} check failed", self.check)?;
            }
            return write!(f, ": {}", self.detail);
        }
        match self.seq {
            Some(seq) => write!(f, "seq {seq}: {} check failed: {}", self.check, self.detail),
            None => write!(f, "{} check failed: {}", self.check, self.detail),
        }
    }
}

/// Why an audit could not run (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotRun(pub String);

/// The checks of a verification, in the order of the summary table.
pub const CHECKS: [&str; 10] = [
    "file structure",
    "metadata",
    "payload columns",
    "chain links and entry hashes",
    "signatures",
    "key registry",
    "checkpoint signature",
    "tree root",
    "decisions",
    "redactions",
];

/// What one tenant's verification covered.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSummary {
    /// The tenant.
    pub tenant: String,
    /// First seq checked.
    pub from_seq: u64,
    /// End of the range checked (exclusive).
    pub to_seq: u64,
    /// Entries checked.
    pub entries: u64,
    /// Ed25519 signatures verified.
    pub signatures: u64,
    /// Keys registered and revoked in the range.
    pub keys_registered: u64,
    /// Keys revoked in the range.
    pub keys_revoked: u64,
    /// Redacted entries (a valid `EntryRedacted` names each).
    pub redacted: Vec<u64>,
    /// Ledger decisions re-derived and found equal.
    pub decisions_checked: u64,
    /// Decisions that differ from the re-derivation after a redacted entry: the evidence they
    /// were made from is gone, so they can be neither confirmed nor refuted.
    pub decisions_unverifiable: Vec<u64>,
    /// Whether decisions were re-derived (only from seq 0).
    pub decisions_rederived: bool,
    /// The checkpoint sizes verified.
    pub checkpoints: Vec<u64>,
    /// Merkle root of `0..to_seq`, hex.
    pub root: String,
    /// Data dirs: rows checked per column family.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows_checked: Vec<(String, u64)>,
    /// Data dirs: stored checkpoints checked (each against the tree at its size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_checkpoints_checked: Option<u64>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// What was verified.
    pub source: String,
    /// `arrow`, `parquet` or `data-dir`.
    pub format: String,
    /// The ledger public key (hex key id) and where it came from.
    pub ledger_key: String,
    /// `pinned` (`--ledger-key`), `data-dir`, or `file` (the export's own: proves integrity,
    /// not origin).
    pub ledger_key_source: String,
    /// Per tenant.
    pub tenants: Vec<TenantSummary>,
    /// Projection exports checked against the fold of the entries (`--projection`).
    pub projections: Vec<String>,
    /// Things to know that are not failures.
    pub notes: Vec<String>,
    /// The first inconsistency, if any.
    pub failure: Option<Failure>,
    /// Data dirs: every inconsistency found (the first is `failure`), each naming its column
    /// family, tenant and seq or key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Failure>,
    /// Data dirs: problems found beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub problems_omitted: u64,
    /// Data dirs: redacted entries whose old versions are still in the store's files (the
    /// server erases them right after the redaction, and at its next start otherwise).
    #[serde(skip_serializing_if = "is_zero")]
    pub pending_erasures: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Outcome {
    /// The process exit status.
    pub fn exit_code(&self) -> i32 {
        if self.failure.is_some() {
            EXIT_INCONSISTENT
        } else {
            EXIT_VERIFIED
        }
    }
}

/// A progress callback: entries checked so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// Options of [`verify_path`].
#[derive(Default, Clone)]
pub struct VerifyOptions {
    /// The ledger public key the auditor trusts.
    pub ledger_key: Option<VerifyingKey>,
    /// Extra checkpoints (signed notes) the entries must match, for example one published
    /// elsewhere or kept from an earlier audit.
    pub checkpoints: Vec<String>,
    /// Called with the number of entries checked so far (progress bars).
    pub progress: Option<Progress>,
    /// Inactive releases the decision fold keeps in memory (default [`AUDIT_CACHED_INACTIVE`]); the
    /// others wait in a temporary file until an entry names them again. `Some(0)` keeps only
    /// the active ones and those the log still owes a decision or retry.
    pub memory_releases: Option<usize>,
    /// For a data dir: entries of a tenant up to which the check keeps a 16-byte fingerprint
    /// per entry instead of reading it back for its `event_ids` and `streams` rows (default
    /// 2^24; `Some(0)`: every row by lookup). See [`ledger::FsckOptions::max_fingerprints`].
    pub max_fingerprints: Option<u64>,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("ledger_key", &self.ledger_key)
            .field("checkpoints", &self.checkpoints.len())
            .finish_non_exhaustive()
    }
}

/// Verifies an export file or a data dir.
pub fn verify_path(path: &Path, options: &VerifyOptions) -> Result<Outcome, CannotRun> {
    if path.is_dir() {
        verify_data_dir(path, options)
    } else {
        // The fold is dropped once its decisions are checked: no timelines.
        verify_file_as(path, options, None, Timelines::Skipped).map(|(outcome, _)| outcome)
    }
}

/// Verifies a projection export (`releases`, `history`, `approvals`, `risk`) against an
/// entries export of the same tenant from seq 0: the entries up to the projection's `to-seq`
/// verify (against the projection's own checkpoint too), and folding them gives exactly the
/// projection's rows.
pub fn verify_projection(entries: &Path, projection: &Path, options: &VerifyOptions) -> Result<Outcome, CannotRun> {
    let mut reader = match open(projection)? {
        Ok(reader) => reader,
        Err(failure) => {
            let mut outcome = Outcome { source: projection.display().to_string(), ..Outcome::default() };
            outcome.failure = Some(failure);
            return Ok(outcome);
        }
    };
    let meta = reader.meta.clone();
    if meta.table == Table::Entries {
        return Err(CannotRun(format!("{} is an entries export, not a projection", projection.display())));
    }
    let with_checkpoint = VerifyOptions { checkpoints: vec![meta.checkpoint.clone()], ..options.clone() };
    let (mut outcome, fold) = verify_file(entries, &with_checkpoint, Some(meta.to_seq))?;
    outcome.projections.push(format!(
        "{} ({} of {}, derived from {})",
        projection.display(),
        meta.table,
        meta.tenant,
        crate::seq_range(0, meta.to_seq)
    ));
    if outcome.failure.is_some() {
        return Ok(outcome);
    }
    let mismatch =
        |detail: String| Some(Failure::new(None, "projection", format!("{}: {detail}", projection.display())));
    let Some(fold) = fold else {
        outcome.failure = mismatch("the entries export must start at seq 0 to re-derive a projection".into());
        return Ok(outcome);
    };
    if fold.state.meta.tenant != meta.tenant || fold.state.meta.position != meta.to_seq {
        outcome.failure = mismatch(format!(
            "derived from {} entries of tenant {:?}, but the entries export gives {} entries of tenant {:?}",
            meta.to_seq, meta.tenant, fold.state.meta.position, fold.state.meta.tenant
        ));
        return Ok(outcome);
    }
    let state = fold.whole_state()?;
    let expected = match crate::rows::projection_batches(meta.table, &meta.schema(), &state) {
        Ok(batches) => batches,
        Err(e) => return Err(CannotRun(e.to_string())),
    };
    let mut row = 0usize;
    let mut expected = expected.into_iter().filter(|b| b.num_rows() > 0);
    loop {
        let got = match reader.next_batch() {
            None => None,
            Some(Ok(batch)) if batch.num_rows() == 0 => continue,
            Some(Ok(batch)) => Some(batch),
            Some(Err(e)) => {
                outcome.failure = Some(Failure::new(None, "file structure", format!("{}: {e}", projection.display())));
                return Ok(outcome);
            }
        };
        let want = expected.next();
        match (got, want) {
            (None, None) => break,
            (Some(got), Some(want)) if got.num_rows() == want.num_rows() && got.columns() == want.columns() => {
                row += got.num_rows();
            }
            (Some(got), Some(want)) => {
                let rows = got.num_rows().min(want.num_rows());
                let first = (0..rows)
                    .find(|&r| got.columns().iter().zip(want.columns()).any(|(a, b)| a.slice(r, 1) != b.slice(r, 1)))
                    .unwrap_or(rows);
                let column = got
                    .columns()
                    .iter()
                    .zip(want.columns())
                    .position(|(a, b)| first < rows && a.slice(first, 1) != b.slice(first, 1))
                    .map(|i| got.schema().field(i).name().clone())
                    .unwrap_or_else(|| "row count".into());
                outcome.failure = mismatch(format!(
                    "row {} differs from the fold of the verified entries (column {column})",
                    row + first
                ));
                return Ok(outcome);
            }
            (Some(_), None) => {
                outcome.failure = mismatch(format!("rows from {row} on are not in the fold of the verified entries"));
                return Ok(outcome);
            }
            (None, Some(_)) => {
                outcome.failure =
                    mismatch(format!("the file ends at row {row}; the fold of the verified entries has more"));
                return Ok(outcome);
            }
        }
    }
    Ok(outcome)
}

fn summary_of(tenant: &str, report: &VerifyReport, fold: Option<&Fold>, to: u64) -> TenantSummary {
    TenantSummary {
        tenant: tenant.to_owned(),
        from_seq: report.first_seq,
        to_seq: to,
        entries: report.entries - report.first_seq,
        signatures: report.signatures,
        keys_registered: report.keys_registered,
        keys_revoked: report.keys_revoked,
        redacted: report.redacted.clone(),
        decisions_checked: fold.map_or(0, |f| f.checked),
        decisions_unverifiable: fold.map(|f| f.unverifiable.clone()).unwrap_or_default(),
        decisions_rederived: fold.is_some(),
        checkpoints: report.checkpoint_sizes.clone(),
        root: hex::encode(report.root),
        rows_checked: Vec::new(),
        stored_checkpoints_checked: None,
    }
}

fn key_hex(key: &VerifyingKey) -> String {
    KeyId::of(key).to_hex()
}

/// Opens an export for auditing: I/O problems cannot run (2), bad bytes are failures (1).
fn open(path: &Path) -> Result<Result<ExportReader, Failure>, CannotRun> {
    match ExportReader::open(path) {
        Ok(reader) => Ok(Ok(reader)),
        Err(FileError::Io { path, cause }) => Err(CannotRun(format!("{}: {cause}", path.display()))),
        Err(FileError::Malformed(detail)) => {
            let check = if detail.starts_with("metadata") || detail.contains("metadata ") {
                "metadata"
            } else {
                "file structure"
            };
            Ok(Err(Failure::new(None, check, detail)))
        }
    }
}

/// Verifies an export file. With `until`, stops after seq `until - 1` (replay) and returns the
/// fold, which then describes the log as of that point.
pub fn verify_file(
    path: &Path,
    options: &VerifyOptions,
    until: Option<u64>,
) -> Result<(Outcome, Option<Fold>), CannotRun> {
    verify_file_as(path, options, until, Timelines::Kept)
}

/// Whether the fold of a file's verification builds releases' timelines: only a caller that
/// shows or compares the folded state needs them ([`TenantState::without_timelines`]).
///
/// [`TenantState::without_timelines`]: projections::state::TenantState::without_timelines
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timelines {
    /// Built, as every projection builds them (replays, projection checks).
    Kept,
    /// Not built: the fold's decisions are checked and the fold is dropped (`verify`).
    Skipped,
}

/// [`verify_file`], its fold building releases' timelines or not.
pub fn verify_file_as(
    path: &Path,
    options: &VerifyOptions,
    until: Option<u64>,
    timelines: Timelines,
) -> Result<(Outcome, Option<Fold>), CannotRun> {
    let mut outcome = Outcome { source: path.display().to_string(), ..Outcome::default() };
    let mut reader = match open(path)? {
        Ok(reader) => reader,
        Err(failure) => {
            outcome.format = Format::from_path(path).map_or("unknown".into(), |f| f.to_string());
            outcome.failure = Some(failure);
            return Ok((outcome, None));
        }
    };
    outcome.format = reader.format.to_string();
    let meta = reader.meta.clone();
    outcome.ledger_key = key_hex(meta.roots.ledger());
    outcome.ledger_key_source = "file".into();
    if let Some(pinned) = &options.ledger_key {
        outcome.ledger_key_source = "pinned".into();
        if pinned != meta.roots.ledger() {
            outcome.ledger_key = key_hex(pinned);
            outcome.failure = Some(Failure::new(
                None,
                "metadata",
                format!(
                    "the export names ledger key {}, not the pinned key {}",
                    key_hex(meta.roots.ledger()),
                    key_hex(pinned)
                ),
            ));
            return Ok((outcome, None));
        }
    } else {
        outcome.notes.push(
            "the ledger key was taken from the file: this proves the export is intact, not who made it; pin the key with --ledger-key".into(),
        );
    }
    if meta.table != Table::Entries {
        return Err(CannotRun(format!(
            "{} is a {} table, derived from the log: check it against an entries export of tenant {} from seq 0 \
             (it was derived from {}): ledger-audit verify ENTRIES --projection {}",
            path.display(),
            meta.table,
            meta.tenant,
            crate::seq_range(0, meta.to_seq),
            path.display()
        )));
    }
    let (result, fold) = run_file(&mut reader, &meta, options, until, timelines);
    match result {
        Ok(summary) => outcome.tenants.push(summary),
        // The fold's temporary file failed (a full disk under TMPDIR): not the log's fault.
        Err(failure) if failure.detail.starts_with(TEMP_STORE) => return Err(CannotRun(failure.detail)),
        Err(failure) => outcome.failure = Some(failure),
    }
    if meta.resume.is_some() {
        outcome.notes.push(format!(
            "the export starts at seq {}: the key registry in force before it is the exporter's word, and decisions are re-derived only from seq 0",
            meta.from_seq
        ));
    }
    Ok((outcome, fold))
}

fn run_file(
    reader: &mut ExportReader,
    meta: &ExportMeta,
    options: &VerifyOptions,
    until: Option<u64>,
    timelines: Timelines,
) -> (Result<TenantSummary, Failure>, Option<Fold>) {
    let pipeline = Pipeline::new(&meta.tenant, meta.roots, &meta.origin_prefix, meta.resume.as_ref(), options);
    let mut pipeline = match pipeline.map(|p| match timelines {
        Timelines::Kept => p,
        Timelines::Skipped => p.without_timelines(),
    }) {
        Ok(p) => p,
        Err(f) => return (Err(f), None),
    };
    pipeline.until = until;
    if let Some(verifier) = pipeline.verifier.as_mut() {
        // An older checkpoint is checked against the root at its size, remembered on the way.
        for note in &options.checkpoints {
            match SignedCheckpoint::parse_and_verify_any(note, meta.roots.ledger()) {
                Ok((signed, ledger::TreeFormat::V2Sha256)) => verifier.want_root_at(signed.checkpoint.size),
                // Signed before the store was migrated: checked against the BLAKE3 tree.
                Ok((signed, ledger::TreeFormat::V1Blake3)) => verifier.want_v1_root_at(signed.checkpoint.size),
                Err(_) => {}
            }
        }
    }
    let result = std::thread::scope(|scope| {
        // The file's batches are decoded, their rows parsed and their entries hashed on a
        // thread of their own, one batch ahead of the verifier (`READ_AHEAD`), which keeps
        // only the checks that need the entries in order. Errors arrive in the file's order,
        // so the verdict is the one a single thread would reach. Leaving early (the first
        // failure, `until`) drops `batches`, and the reader stops at its next hand-over.
        let (ahead, batches) = std::sync::mpsc::sync_channel(READ_AHEAD);
        // Batches the verifier is done with come back to be freed here, where they were
        // allocated: freeing a block from another thread costs mimalloc an atomic hand-over
        // and this thread a later collection (about 2 % of the audit's CPU; BENCHMARKS.md,
        // issue 20's twenty-fifth session). At most the batches in flight are ever waiting.
        let (spent_back, spent) = std::sync::mpsc::channel::<Vec<ReadEntry>>();
        let tenant = meta.tenant.as_str();
        let read = move || {
            while let Some(batch) = reader.next_batch() {
                spent.try_iter().for_each(drop);
                let item = batch.map_err(ReadAheadError::File).and_then(|batch| {
                    // Hashed here, off the verifier's thread; the verdict counts where the
                    // verifier would have hashed the entry (`Verifier::push_hashed`).
                    parsed_entries_from_batch(&batch, tenant, |entry, parsed| {
                        let hashes = entry.check_hashes();
                        (entry, parsed, hashes)
                    })
                    .map_err(ReadAheadError::Rows)
                });
                let failed = item.is_err();
                if ahead.send(item).is_err() || failed {
                    break;
                }
            }
        };
        std::thread::Builder::new()
            .name("ledger-audit-read".into())
            .spawn_scoped(scope, read)
            .map_err(|e| Failure::new(None, "internal", format!("cannot start the reading thread: {e}")))?;
        verify_batches(batches, &spent_back, &mut pipeline, meta, options)?;
        let end = meta.from_seq + pipeline.seen;
        if until.is_none() && end != meta.to_seq {
            return Err(Failure::new(
                Some(end),
                "metadata",
                format!(
                    "the metadata says the export covers {}, its rows end before seq {end}",
                    crate::seq_range(meta.from_seq, meta.to_seq)
                ),
            ));
        }
        let mut notes: Vec<&str> = Vec::new();
        if until.is_none() {
            notes.push(&meta.checkpoint);
        }
        notes.extend(options.checkpoints.iter().map(String::as_str));
        let report = pipeline.finish(&notes)?;
        Ok(summary_of(&meta.tenant, &report, pipeline.fold.as_ref(), end))
    });
    let result = result.map_err(|f| pipeline.fail(f));
    (result, pipeline.fold.take())
}

/// Batches decoded and parsed ahead of the verifier, beside the one it checks and the one
/// being read: each holds at most [`BATCH_ROWS`](crate::rows::BATCH_ROWS) entries, parsed, so
/// the read-ahead adds a bounded amount (peak RSS 23–27 MB higher on the benchmark's export of
/// 400,010 entries of about 1 KB: BENCHMARKS.md, "Issue 20, nineteenth session").
const READ_AHEAD: usize = 1;

/// An entry as the reading thread hands it over: its payload parsed, and what
/// [`Entry::check_hashes`] said of it.
type ReadEntry = (Entry, crate::rows::ParsedPayload, Result<(), String>);

/// Why the reading thread stopped early.
enum ReadAheadError {
    File(FileError),
    Rows(crate::rows::RowError),
}

/// The verifier's side of [`run_file`]: every batch the reading thread hands over, in order,
/// pushed through `pipeline`. Returns when the batches end, `until` is reached or a check
/// fails; `batches` is dropped then, which stops the reader.
fn verify_batches(
    batches: std::sync::mpsc::Receiver<Result<Vec<ReadEntry>, ReadAheadError>>,
    spent: &std::sync::mpsc::Sender<Vec<ReadEntry>>,
    pipeline: &mut Pipeline,
    meta: &ExportMeta,
    options: &VerifyOptions,
) -> Result<(), Failure> {
    for entries in batches {
        let mut entries = entries.map_err(|e| match e {
            ReadAheadError::File(e) => {
                Failure::new(Some(meta.from_seq + pipeline.seen), "file structure", e.to_string())
            }
            ReadAheadError::Rows(e) => {
                Failure::new(e.seq.or(Some(meta.from_seq + pipeline.seen)), "payload columns", e.detail)
            }
        })?;
        for (entry, parsed, hashes) in &mut entries {
            if !pipeline.push(entry, parsed, std::mem::replace(hashes, Ok(())))? {
                return Ok(());
            }
        }
        // Freed by the reading thread; if it has stopped, the failed send drops them here.
        let _ = spent.send(entries);
        if let Some(progress) = &options.progress {
            progress(pipeline.seen);
        }
    }
    Ok(())
}

/// What the decision fold's temporary file errors start with: the audit could not run (a full
/// disk under TMPDIR, say), the log is not at fault.
const TEMP_STORE: &str = "the audit's temporary file";

/// Checks a data dir, strictly read-only (`ledger::StoreView`): every tenant's entries through
/// the verifier and the decision fold, and every column family against the entries. Needs no
/// private key and writes nothing; a server may be running (the store is seen as of the moment
/// it was opened). Damage is an inconsistency (exit 1); a missing directory or file, or a
/// permission or I/O error, cannot run (exit 2). An empty store is a failure, never verified.
fn verify_data_dir(dir: &Path, options: &VerifyOptions) -> Result<Outcome, CannotRun> {
    let mut outcome = Outcome { source: dir.display().to_string(), format: "data-dir".into(), ..Outcome::default() };
    // Before the open: what a server that starts meanwhile does is not this audit's concern.
    let lock = ledger::server_lock(dir);
    let view = match StoreView::open(dir) {
        Ok(view) => view,
        Err(FsckOpenError::Corrupted(problem)) => {
            outcome.failure = Some(Failure::from_problem(&problem));
            outcome.problems.push(Failure::from_problem(&problem));
            return Ok(outcome);
        }
        Err(e) => return Err(CannotRun(format!("cannot audit the data dir: {e}"))),
    };
    match lock {
        Ok(ServerLock::Free) => {}
        Ok(ServerLock::HeldBy { pid }) => outcome.notes.push(format!(
            "a running server (pid {pid}) holds db/LOCK: the audit saw the store as of the moment it opened it; \
             entries appended since are not covered"
        )),
        Err(e) => outcome.notes.push(format!("could not tell whether a server holds db/LOCK: {e}")),
    }
    outcome.pending_erasures = view.pending_erasures();
    if outcome.pending_erasures > 0 {
        outcome.notes.push(format!(
            "{} redacted entr{} still in the store's files as old versions: the server had not finished erasing \
             them when it stopped; its next start does (docs/format.md, \"Erasure\")",
            outcome.pending_erasures,
            if outcome.pending_erasures == 1 { "y is" } else { "ies are" }
        ));
    }
    let roots = view.trust_roots();
    outcome.ledger_key = key_hex(roots.ledger());
    outcome.ledger_key_source = match view.ledger_key_file() {
        LedgerKeyFile::Matches => "data-dir, matches keys/ledger.pub".into(),
        LedgerKeyFile::Absent => "data-dir; no keys/ledger.pub".into(),
    };
    if let Some(pinned) = &options.ledger_key {
        outcome.ledger_key_source = "pinned".into();
        if pinned != roots.ledger() {
            outcome.failure = Some(Failure::new(
                None,
                "metadata",
                format!(
                    "the data dir's ledger key is {}, not the pinned key {}",
                    key_hex(roots.ledger()),
                    key_hex(pinned)
                ),
            ));
            return Ok(outcome);
        }
    } else {
        outcome.notes.push(
            "the trust roots are the data dir's own: this proves the store is intact, not whose it is; pin the key with --ledger-key".into(),
        );
    }
    let fsck = FsckOptions {
        origin_prefix: None,
        rules: Some(Arc::new(Catalogue)),
        checkpoints: options.checkpoints.clone(),
        max_fingerprints: options.max_fingerprints,
    };
    let (tenants, mut problems) = view.tenants();
    problems.extend(view.orphan_rows(&tenants));
    let mut tips = Vec::new();
    let mut omitted = 0;
    let mut checked = 0u64;
    for tenant in &tenants {
        let cache = options.memory_releases.unwrap_or(AUDIT_CACHED_INACTIVE);
        // Dropped once its decisions are checked: no timelines.
        let mut fold = Fold::new(&tenant.name, &roots, cache).without_timelines();
        let mut cannot_run: Option<String> = None;
        let check = view.check_tenant(
            tenant,
            &fsck,
            Some(&mut |entry, parsed| {
                checked += 1;
                if let Some(progress) = &options.progress {
                    if checked % 4096 == 0 {
                        progress(checked);
                    }
                }
                fold.apply_preparsed(entry, parsed).map_err(|failure| {
                    if failure.detail.starts_with(TEMP_STORE) {
                        cannot_run = Some(failure.detail.clone());
                    }
                    failure.detail
                })
            }),
        );
        if let Some(why) = cannot_run {
            return Err(CannotRun(format!("tenant {}: {why}", tenant.name)));
        }
        if let Some(report) = &check.report {
            let mut summary = summary_of(&tenant.name, report, Some(&fold), check.size);
            summary.rows_checked = check.rows.iter().map(|(cf, n)| ((*cf).to_owned(), *n)).collect();
            summary.stored_checkpoints_checked = Some(check.checkpoints_checked);
            outcome.tenants.push(summary);
        }
        tips.extend(check.tip);
        omitted += check.omitted;
        problems.extend(check.problems);
    }
    problems.extend(view.check_against_anchor(&tips));
    outcome.problems = problems.iter().map(Failure::from_problem).collect();
    outcome.problems_omitted = omitted;
    outcome.failure = outcome.problems.first().cloned();
    Ok(outcome)
}

/// What `replay` shows: a release as it stood at a point of the log, from an export alone.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOutcome {
    /// Entries folded: the state is after seq `size - 1`.
    pub size: u64,
    /// The release's summary then (None if it did not exist yet).
    pub summary: Option<projections::query::ReleaseSummary>,
    /// Its timeline then.
    pub timeline: Vec<projections::state::TimelineItem>,
    /// The verification of the entries folded (signatures, chain, decisions).
    pub verification: Outcome,
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    /// After this seq.
    Seq(u64),
    /// After the last entry recorded at or before this time, ns.
    Time(u64),
    /// The whole export.
    End,
}

/// Replays `release` from an entries export (from seq 0) as of a point, verifying every entry
/// folded on the way.
pub fn replay(path: &Path, release: &str, as_of: AsOf, options: &VerifyOptions) -> Result<ReplayOutcome, CannotRun> {
    let until = match as_of {
        AsOf::Seq(seq) => Some(seq.saturating_add(1)),
        AsOf::Time(t) => Some(first_after(path, t)?),
        AsOf::End => None,
    };
    let (verification, fold) = verify_file(path, options, until)?;
    let Some(fold) = fold else {
        return match verification.failure {
            Some(failure) => Err(CannotRun(format!("the export does not verify, nothing to replay: {failure}"))),
            None => Err(CannotRun("replay needs an export of the entries from seq 0".into())),
        };
    };
    let release_state = fold.release(release)?;
    let state = &fold.state;
    Ok(ReplayOutcome {
        size: state.meta.position,
        summary: release_state.as_ref().map(|r| projections::query::summary(state, r)),
        timeline: release_state.map(|r| r.timeline).unwrap_or_default(),
        verification,
    })
}

/// The first seq recorded after `t` (recordedAt never decreases), by a pass over the
/// recordedAt column.
fn first_after(path: &Path, t: u64) -> Result<u64, CannotRun> {
    let mut reader = match open(path)? {
        Ok(reader) => reader,
        Err(failure) => return Err(CannotRun(format!("the export does not verify: {failure}"))),
    };
    let mut seq = reader.meta.from_seq;
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(|e| CannotRun(e.to_string()))?;
        let column = batch
            .column_by_name("recordedAt")
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>())
            .ok_or_else(|| CannotRun("the export has no recordedAt column".into()))?;
        for value in column.values().iter() {
            if u64::try_from(*value).unwrap_or(0) > t {
                return Ok(seq);
            }
            seq += 1;
        }
    }
    Ok(seq)
}
