//! `ledger-audit`: offline verification, consistency, replay and inspection of Release Ledger
//! exports (Arrow IPC or Parquet) and data dirs. No server, no network.
//!
//! Exit status: 0 verified, 1 an inconsistency was found, 2 the audit could not run.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_tools::audit::{self, AsOf, CannotRun, Outcome, Progress, VerifyOptions, CHECKS, EXIT_CANNOT_RUN};
use ledger_tools::inspect::inspect;

#[derive(Debug, Parser)]
#[command(name = "ledger-audit", version, about = "Verify Release Ledger exports and data dirs offline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verifies an export, or checks a data dir (read-only fsck): signatures, key registry,
    /// chain, tree root against the checkpoint, checkpoint signature, decisions; for a data dir
    /// also every column family against the entries. Writes nothing and needs no private key.
    Verify {
        /// An entries export (.arrow / .parquet) or a data dir (a server may be running on it).
        path: PathBuf,
        /// The ledger public key to trust (PEM or base64); without it, the file's own key is
        /// used, which proves integrity but not origin.
        #[arg(long)]
        ledger_key: Option<PathBuf>,
        /// A checkpoint (signed note, `release-ledger checkpoint --json` output, or an export
        /// whose checkpoint to take) the entries must also match; repeatable.
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
        /// A projection export (releases, history, approvals, risk) to check against the fold
        /// of these entries (from seq 0); repeatable.
        #[arg(long)]
        projection: Vec<PathBuf>,
        /// Inactive releases the decision fold keeps in memory (default 1024); the others wait
        /// in a temporary file (under TMPDIR, compressed) until an entry names them again.
        #[arg(long, value_name = "N")]
        memory_releases: Option<usize>,
        /// For a data dir: entries of a tenant up to which the check keeps a 16-byte
        /// fingerprint per entry rather than read it back for its event_ids and streams rows
        /// (default 16777216, at most 256 MiB); a larger tenant's rows are each looked up,
        /// which is slower and finds the same. 0 looks every row up.
        #[arg(long, value_name = "N")]
        max_fingerprints: Option<u64>,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks that a newer export or checkpoint extends an older checkpoint (append-only).
    Consistency {
        /// The older checkpoint: the signed note (`release-ledger checkpoint --out FILE`), the
        /// output of `release-ledger checkpoint --json` (whole, or its .note), or an older
        /// export (its checkpoint). Anything else, or a checkpoint of another log or key, or
        /// one larger than the newer log, is refused (exit 2): only two checkpoints of the
        /// same log can be inconsistent.
        #[arg(long)]
        old: PathBuf,
        /// A newer entries export (from seq 0), or a newer checkpoint (then --proof).
        #[arg(long)]
        new: PathBuf,
        /// The consistency proof between two checkpoints: JSON `{"path": [hex, …]}` or one hex
        /// hash per line (GetConsistencyProof's path).
        #[arg(long)]
        proof: Option<PathBuf>,
        /// The ledger public key to trust.
        #[arg(long)]
        ledger_key: Option<PathBuf>,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks a C2SP tlog-proof file (`release-ledger prove --out FILE.tlog-proof`): the
    /// checkpoint's signature by the ledger key, the entry it names, and its RFC 6962
    /// inclusion in the signed tree.
    Proof {
        /// The proof file.
        file: PathBuf,
        /// The ledger public key to trust (PEM or base64): a proof is only as good as the key
        /// its checkpoint is checked with, so it is required.
        #[arg(long)]
        ledger_key: PathBuf,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks a release's evidence pack (`release-ledger evidence --out DIR`) from its files
    /// alone: the checkpoint's signature, each entry's inclusion proof and payload, each
    /// decision's signature and in-toto attestation, that the entries are those the
    /// decisions depend on and that every decision follows from them, then every file (the
    /// reports too) byte for byte against the one rebuilt from all that. Exit 0: verified; 1:
    /// the first problem, naming its file.
    VerifyEvidence {
        /// The pack: its directory, or its `.tar` file.
        pack: PathBuf,
        /// The ledger public key to trust (PEM or base64); without it, the pack's own
        /// ledger.pub is used, which proves integrity but not origin.
        #[arg(long)]
        ledger_key: Option<PathBuf>,
        /// Also require the pack's checkpoint to be cosigned by a quorum of this C2SP
        /// tlog-policy's witnesses (the log's key: the policy's `log` line, else the ledger key).
        #[arg(long)]
        witness_policy: Option<PathBuf>,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A release's timeline and state as of a seq or a time, from an entries export alone.
    Replay {
        /// An entries export from seq 0.
        file: PathBuf,
        /// The release.
        #[arg(long)]
        release: String,
        /// A seq (the state after it) or an RFC 3339 time; default: the end of the export.
        #[arg(long)]
        as_of: Option<String>,
        /// The ledger public key to trust.
        #[arg(long)]
        ledger_key: Option<PathBuf>,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Checks a cosigned checkpoint against a witness policy (C2SP tlog-policy): the log's
    /// signature, each policy witness's cosignature/v1, the quorum. Exit 0: the quorum is met;
    /// 1: it is not, or the checkpoint is refused (docs/witnessing.md).
    Witnessed {
        /// The cosigned checkpoint: a signed note, or the output of `release-ledger checkpoint
        /// --witness-policy FILE --json` (its witnessing.cosignedNote).
        checkpoint: PathBuf,
        /// The policy: `witness <name> <vkey> [<url>]`, `group`, `quorum` lines, and the log's
        /// `log <vkey>` line (else --ledger-key).
        #[arg(long)]
        policy: PathBuf,
        /// The ledger public key to verify the log signature with when the policy lists no log.
        #[arg(long)]
        ledger_key: Option<PathBuf>,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Counts, ranges, tenants, event types and keys of an export (no verification).
    Inspect {
        /// An export file.
        file: PathBuf,
        /// Prints the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `println!` that does not panic when the reader went away (`ledger-audit … | head`): the
/// exit status still says what was found.
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// `print!` with the same care as [`outln`].
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// mimalloc instead of glibc's malloc: `verify` allocates per entry on every core (each row's
/// columns, the parsed payload, the fold's records) and glibc's arenas took about a sixth of its
/// time (BENCHMARKS.md, issue 20). The server takes jemalloc: there mimalloc made the
/// single-client append slower (same section). jemalloc here was 4–8 % slower than mimalloc
/// without purging (`main` turns it off; twenty-fourth session).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Freed batches' memory kept for the next ones, not purged and faulted in again
    // (tools/mimalloc-options).
    mimalloc_options::keep_freed_memory();
    let cli = Cli::parse();
    // A panic is a bug of the auditor, not a verdict: one line on stderr and exit 2 ("could not
    // run"), never a backtrace mixed into the report. (Panics of the Arrow and Parquet decoders
    // on a tampered file are caught inside `ledger_tools::file` and reported as a malformed
    // file, exit 1.)
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|m| (*m).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default()
            .replace('\n', " ");
        let at = info.location().map(|l| format!(" ({}:{})", l.file(), l.line())).unwrap_or_default();
        eprintln!("ledger-audit: internal error: {message}{at}");
    }));
    match std::panic::catch_unwind(move || run(cli.command)) {
        Ok(Ok(code)) => ExitCode::from(code as u8),
        Ok(Err(CannotRun(why))) => {
            eprintln!("ledger-audit: {why}");
            ExitCode::from(EXIT_CANNOT_RUN as u8)
        }
        Err(_) => ExitCode::from(EXIT_CANNOT_RUN as u8),
    }
}

fn read_key(path: Option<&Path>) -> Result<Option<VerifyingKey>, CannotRun> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|e| CannotRun(format!("--ledger-key {}: {e}", path.display())))?;
    ledger::keys::public_key_from_text(&text)
        .map(Some)
        .map_err(|e| CannotRun(format!("--ledger-key {}: {e}", path.display())))
}

fn print_json(value: &impl serde::Serialize) {
    outln!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A progress bar on a terminal (nothing otherwise), fed with entries checked.
fn progress(path: &Path) -> (Option<Progress>, Option<ProgressBar>) {
    if !std::io::stderr().is_terminal() {
        return (None, None);
    }
    let total =
        ledger_tools::ExportReader::open(path).ok().and_then(|r| r.rows.or(Some(r.meta.to_seq - r.meta.from_seq)));
    let bar = ProgressBar::new(total.unwrap_or(0));
    let style = ProgressStyle::with_template("{spinner} verifying [{bar:30}] {pos}/{len} entries {per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    let feed = bar.clone();
    (Some(Arc::new(move |n| feed.set_position(n))), Some(bar))
}

fn run(command: Command) -> Result<i32, CannotRun> {
    match command {
        Command::Verify { path, ledger_key, checkpoint, projection, memory_releases, max_fingerprints, json } => {
            let (feed, bar) = progress(&path);
            let options = VerifyOptions {
                ledger_key: read_key(ledger_key.as_deref())?,
                checkpoints: checkpoint
                    .iter()
                    .map(|p| audit::read_checkpoint_file(p, "--checkpoint"))
                    .collect::<Result<_, _>>()?,
                progress: feed,
                memory_releases,
                max_fingerprints,
            };
            let outcome = audit::verify_path(&path, &options);
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let mut outcomes = vec![outcome?];
            if outcomes[0].failure.is_none() {
                for file in &projection {
                    outcomes.push(audit::verify_projection(
                        &path,
                        file,
                        &VerifyOptions { progress: None, ..options.clone() },
                    )?);
                }
            }
            for outcome in &outcomes {
                if json {
                    print_json(outcome);
                } else {
                    out!("{}", render(outcome));
                }
            }
            Ok(outcomes.iter().map(Outcome::exit_code).max().unwrap_or(0))
        }
        Command::Consistency { old, new, proof, ledger_key, json } => {
            let key = read_key(ledger_key.as_deref())?;
            let old_note = audit::read_checkpoint_file(&old, "--old")?;
            let proof = proof.map(|p| read_proof(&p)).transpose()?;
            let outcome = audit::consistency(&old_note, &new, proof.as_deref(), key.as_ref())?;
            if json {
                print_json(&outcome);
            } else {
                match &outcome.failure {
                    None => outln!(
                        "CONSISTENT: {} ({} entries) extends the checkpoint of {} entries ({})",
                        new.display(),
                        outcome.new_size,
                        outcome.old_size,
                        outcome.method
                    ),
                    Some(f) => outln!("INCONSISTENT: {f}"),
                }
            }
            Ok(if outcome.failure.is_some() { audit::EXIT_INCONSISTENT } else { audit::EXIT_VERIFIED })
        }
        Command::Proof { file, ledger_key, json } => {
            let key = read_key(Some(&ledger_key))?.ok_or_else(|| CannotRun("--ledger-key is required".into()))?;
            let outcome = audit::proof(&file, &key)?;
            if json {
                print_json(&outcome);
            } else {
                match &outcome.failure {
                    None => outln!(
                        "VERIFIED: entry {} (entry hash {}) is in {} at tree size {}, signed by the ledger key",
                        outcome.seq,
                        outcome.entry_hash.as_deref().unwrap_or_default(),
                        outcome.origin,
                        outcome.tree_size
                    ),
                    Some(f) => outln!("NOT VERIFIED: {f}"),
                }
            }
            Ok(if outcome.failure.is_some() { audit::EXIT_INCONSISTENT } else { audit::EXIT_VERIFIED })
        }
        Command::VerifyEvidence { pack, ledger_key, witness_policy, json } => {
            verify_evidence(&pack, read_key(ledger_key.as_deref())?, witness_policy.as_deref(), json)
        }
        Command::Replay { file, release, as_of, ledger_key, json } => {
            let as_of = match as_of.as_deref() {
                None => AsOf::End,
                Some(text) => match text.parse::<u64>() {
                    Ok(seq) => AsOf::Seq(seq),
                    Err(_) => AsOf::Time(
                        projections::freeze::parse_rfc3339_ns(text)
                            .ok()
                            .and_then(|ns| u64::try_from(ns).ok())
                            .ok_or_else(|| {
                                CannotRun(format!("--as-of {text:?} is neither a seq nor an RFC 3339 time"))
                            })?,
                    ),
                },
            };
            let options = VerifyOptions { ledger_key: read_key(ledger_key.as_deref())?, ..VerifyOptions::default() };
            let outcome = audit::replay(&file, &release, as_of, &options)?;
            if json {
                print_json(&outcome);
            } else {
                out!("{}", render_replay(&release, &outcome));
            }
            Ok(outcome.verification.exit_code())
        }
        Command::Witnessed { checkpoint, policy, ledger_key, json } => {
            witnessed(&checkpoint, &policy, read_key(ledger_key.as_deref())?, json)
        }
        Command::Inspect { file, json } => {
            let found = inspect(&file)?;
            if json {
                print_json(&found);
            } else {
                outln!("file        {} ({}, {} bytes)", found.file, found.format, found.bytes);
                outln!("table       {} of tenant {}", found.table, found.tenant);
                outln!(
                    "metadata    {}, checkpoint size {}, ledger key {}",
                    ledger_tools::seq_range(found.from_seq, found.to_seq),
                    found.checkpoint_size.map_or("unreadable".to_owned(), |n| n.to_string()),
                    found.ledger_key
                );
                outln!("rows        {} in {} batches", found.rows, found.batches);
                if let Some((lo, hi)) = found.seq_range {
                    outln!("rows span   {}", ledger_tools::seq_range(lo, hi.saturating_add(1)));
                }
                if let Some((lo, hi)) = found.recorded_at_range {
                    outln!("recordedAt  {} .. {}", format_ns(lo), format_ns(hi));
                }
                for (tenant, rows) in &found.tenants {
                    outln!("tenant      {tenant}: {rows} rows");
                }
                for (event_type, rows) in &found.event_types {
                    outln!("type        {event_type:<28} {rows}");
                }
                for (key, use_) in &found.keys {
                    outln!("key         {key} {:<20} {} rows", use_.agent, use_.rows);
                }
                if found.redacted > 0 {
                    outln!("redacted    {} rows", found.redacted);
                }
            }
            Ok(0)
        }
    }
}

/// `verify-evidence`: see [`Command::VerifyEvidence`].
fn verify_evidence(
    pack: &Path,
    ledger_key: Option<VerifyingKey>,
    witness_policy: Option<&Path>,
    json: bool,
) -> Result<i32, CannotRun> {
    use ledger_tools::evidence;
    let policy = witness_policy.map(witness::Policy::from_file).transpose().map_err(|e| CannotRun(e.to_string()))?;
    let files = evidence::read(pack).map_err(|e| CannotRun(e.to_string()))?;
    let verified = evidence::verify(&files, ledger_key.as_ref()).and_then(|verified| {
        let Some(policy) = &policy else { return Ok((verified, None)) };
        // The pack verified: its checkpoint.note is UTF-8 and signed by the key trusted.
        let note = String::from_utf8_lossy(&files[evidence::CHECKPOINT]).into_owned();
        let key = ledger_key.or_else(|| {
            ledger::keys::public_key_from_text(&String::from_utf8_lossy(&files[evidence::LEDGER_KEY])).ok()
        });
        let logs = match (policy.logs.is_empty(), key) {
            (true, Some(key)) => {
                witness::Vkey::new(&verified.origin, witness::note::ED25519_NOTE_TYPE, key).ok().map(|vkey| vec![vkey])
            }
            _ => None,
        };
        let failed = |reason: String| evidence::PackFailure { file: Some(evidence::CHECKPOINT.to_owned()), reason };
        match witness::verify_cosigned(&note, policy, logs.as_deref()) {
            Ok(report) if report.quorum_met => Ok((verified, Some(report.summary()))),
            Ok(report) => Err(failed(format!("the witness policy's quorum is not met: {}", report.summary()))),
            Err(rejected) => Err(failed(format!("refused by the witness policy: {rejected}"))),
        }
    });
    match verified {
        Ok((verified, witnessed)) => {
            if json {
                print_json(
                    &serde_json::json!({ "verified": true, "pack": pack, "outcome": verified, "witnessed": witnessed }),
                );
            } else {
                let entries: Vec<String> = verified.entries.iter().map(|(role, n)| format!("{n} {role}")).collect();
                let key = match verified.ledger_key_source.as_str() {
                    "pinned" => "the pinned ledger key".to_owned(),
                    _ => "the pack's own ledger key (integrity, not origin: pass --ledger-key)".to_owned(),
                };
                outln!(
                    "VERIFIED: release {} of tenant {}: {} decision(s) re-derived from {} entries ({}), status {}, \
                     every entry proven in {} at size {}, signed by {key}; {} files",
                    verified.release_id,
                    verified.tenant,
                    verified.decisions.len(),
                    verified.entries.values().sum::<u64>(),
                    entries.join(", "),
                    verified.status,
                    verified.origin,
                    verified.checkpoint_size,
                    verified.files
                );
                if let Some(witnessed) = witnessed {
                    outln!("WITNESSED: {witnessed}");
                }
            }
            Ok(audit::EXIT_VERIFIED)
        }
        Err(failure) => {
            if json {
                print_json(&serde_json::json!({ "verified": false, "pack": pack, "failure": failure }));
            } else {
                outln!("NOT VERIFIED: {failure}");
            }
            Ok(audit::EXIT_INCONSISTENT)
        }
    }
}

/// `witnessed`: see [`Command::Witnessed`].
fn witnessed(checkpoint: &Path, policy: &Path, ledger_key: Option<VerifyingKey>, json: bool) -> Result<i32, CannotRun> {
    let policy = witness::Policy::from_file(policy).map_err(|e| CannotRun(e.to_string()))?;
    let text = std::fs::read_to_string(checkpoint)
        .map_err(|e| CannotRun(format!("checkpoint {}: {e}", checkpoint.display())))?;
    let note = if text.trim_start().starts_with('{') {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| CannotRun(format!("checkpoint {}: {e}", checkpoint.display())))?;
        value["witnessing"]["cosignedNote"].as_str().map(str::to_owned).ok_or_else(|| {
            CannotRun(format!("checkpoint {}: JSON without witnessing.cosignedNote", checkpoint.display()))
        })?
    } else {
        text
    };
    let logs = match (policy.logs.is_empty(), ledger_key) {
        (false, _) => None,
        (true, Some(key)) => {
            let origin = witness::SignedNote::parse(&note)
                .ok()
                .and_then(|n| witness::CheckpointBody::parse(&n.text).ok())
                .map(|body| body.origin)
                .unwrap_or_default();
            witness::Vkey::new(&origin, witness::note::ED25519_NOTE_TYPE, key).ok().map(|vkey| vec![vkey])
        }
        (true, None) => return Err(CannotRun("the policy lists no log: pass the ledger key with --ledger-key".into())),
    };
    let report = match witness::verify_cosigned(&note, &policy, logs.as_deref()) {
        Ok(report) => report,
        Err(rejected) => {
            if json {
                print_json(&serde_json::json!({ "quorumMet": false, "rejected": rejected.to_string() }));
            } else {
                outln!("REFUSED: {rejected}");
            }
            return Ok(audit::EXIT_INCONSISTENT);
        }
    };
    if json {
        print_json(&serde_json::json!({
            "origin": report.checkpoint.origin, "size": report.checkpoint.size,
            "rootHash": hex::encode(report.checkpoint.root), "quorum": report.quorum, "quorumMet": report.quorum_met,
            "cosigned": report.cosigned.iter().map(|c| serde_json::json!({ "witness": c.witness, "timestamp": c.timestamp })).collect::<Vec<_>>(),
            "failed": report.failed.iter().map(|f| serde_json::json!({ "witness": f.witness, "reason": f.reason.to_string() })).collect::<Vec<_>>(),
            "missing": report.missing,
        }));
    } else {
        let verdict = if report.quorum_met { "WITNESSED" } else { "NOT WITNESSED" };
        outln!("{verdict}: {} size {}: {}", report.checkpoint.origin, report.checkpoint.size, report.summary());
    }
    Ok(if report.quorum_met { audit::EXIT_VERIFIED } else { audit::EXIT_INCONSISTENT })
}

fn read_proof(path: &Path) -> Result<Vec<ledger::Hash32>, CannotRun> {
    let text = std::fs::read_to_string(path).map_err(|e| CannotRun(format!("--proof {}: {e}", path.display())))?;
    let hashes: Vec<String> = if text.trim_start().starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| CannotRun(format!("--proof: {e}")))?;
        value["path"]
            .as_array()
            .ok_or_else(|| CannotRun("--proof JSON has no \"path\" array".into()))?
            .iter()
            .map(|h| h.as_str().unwrap_or_default().to_owned())
            .collect()
    } else {
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
    };
    hashes
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out)
                .map_err(|_| CannotRun(format!("--proof: {h:?} is not a 32-byte hex hash")))?;
            Ok(out)
        })
        .collect()
}

fn format_ns(ns: i64) -> String {
    projections::state::format_recorded_at(u64::try_from(ns).unwrap_or(0))
}

/// Which summary row a failed check belongs to.
fn row_of(check: &str) -> &'static str {
    match check {
        "decode" | "file structure" => "file structure",
        "metadata" => "metadata",
        "envelope" | "payload columns" => "payload columns",
        "sequence" | "chain link" | "hash" | "timestamp" => "chain links and entry hashes",
        "signature" => "signatures",
        "authorization" => "key registry",
        "redaction" => "redactions",
        "checkpoint signature" => "checkpoint signature",
        "checkpoint" => "tree root",
        "decisions" => "decisions",
        "projection" => "projection rows",
        _ => "file structure",
    }
}

/// What a data dir check covers, one line per column family (the entries' own checks are
/// the verifier's, as for an export).
const DATA_DIR_ROWS: [(&str, &str); 9] = [
    ("store", "RocksDB files (read-only open)"),
    ("meta", "meta: keys, tenants, heads"),
    ("entries", "entries: chain, hashes, signatures, registry, rules, decisions"),
    ("tree", "tree: every stored node"),
    ("checkpoints", "checkpoints: every stored one"),
    ("event_ids", "event_ids"),
    ("streams", "streams"),
    ("stream_heads", "stream_heads"),
    ("keys", "keys: the registry of the log"),
];

/// The first lines of every human summary: what was read, and with which ledger key.
fn header(outcome: &Outcome) -> String {
    let mut out = format!("source      {} ({})\n", outcome.source, outcome.format);
    if !outcome.ledger_key.is_empty() {
        out.push_str(&format!("ledger key  {} ({})\n", outcome.ledger_key, outcome.ledger_key_source));
    }
    out
}

/// The last lines of every human summary: the notes and the verdict.
fn footer(outcome: &Outcome) -> String {
    let mut out = String::new();
    for note in &outcome.notes {
        out.push_str(&format!("\nnote: {note}\n"));
    }
    match &outcome.failure {
        None => out.push_str("\nVERIFIED\n"),
        Some(f) => out.push_str(&format!("\nINCONSISTENT: {f}\n")),
    }
    out
}

/// The human summary of a data dir check: the tenants, one line per column family, every
/// problem, the verdict.
fn render_data_dir(outcome: &Outcome) -> String {
    let mut out = header(outcome);
    for t in &outcome.tenants {
        out.push_str(&format!(
            "tenant      {}: {} entries, {} signatures, {} keys registered, {} revoked, {} decisions re-derived\n",
            t.tenant, t.entries, t.signatures, t.keys_registered, t.keys_revoked, t.decisions_checked
        ));
        out.push_str(&format!(
            "            root {}, {} stored checkpoints checked\n",
            t.root,
            t.stored_checkpoints_checked.unwrap_or(0)
        ));
        if !t.redacted.is_empty() {
            out.push_str(&format!(
                "            redacted (by valid EntryRedacted events, not tampering): {:?}\n",
                t.redacted
            ));
        }
    }
    out.push('\n');
    for (cf, label) in DATA_DIR_ROWS {
        let rows: u64 =
            outcome.tenants.iter().flat_map(|t| &t.rows_checked).filter(|(c, _)| c == cf).map(|(_, n)| n).sum();
        let found =
            outcome.problems.iter().filter(|p| p.location.as_ref().is_some_and(|l| l.column_family == cf)).count();
        let status = match found {
            0 if outcome.tenants.is_empty() && outcome.failure.is_some() && cf != "store" => "not checked".to_owned(),
            0 if cf == "store" || cf == "meta" => "ok".to_owned(),
            0 => format!("ok ({rows} rows)"),
            n => format!("FAILED ({n} problem{})", if n == 1 { "" } else { "s" }),
        };
        out.push_str(&format!("  {label:<62} {status}\n"));
    }
    if !outcome.problems.is_empty() {
        out.push_str("\nproblems:\n");
        for problem in &outcome.problems {
            out.push_str(&format!("  {problem}\n"));
        }
        if outcome.problems_omitted > 0 {
            out.push_str(&format!("  … and {} more\n", outcome.problems_omitted));
        }
    }
    out.push_str(&footer(outcome));
    out
}

/// The human summary: one line per check, then the verdict.
fn render(outcome: &Outcome) -> String {
    if outcome.format == "data-dir" {
        return render_data_dir(outcome);
    }
    let mut out = header(outcome);
    for t in &outcome.tenants {
        out.push_str(&format!(
            "tenant      {}: {}, {} entries, {} signatures, {} keys registered, {} revoked, {} decisions re-derived{}\n",
            t.tenant,
            ledger_tools::seq_range(t.from_seq, t.to_seq),
            t.entries,
            t.signatures,
            t.keys_registered,
            t.keys_revoked,
            t.decisions_checked,
            if t.decisions_rederived { "" } else { " (range: not re-derived)" }
        ));
        out.push_str(&format!("            root {}, checkpoints at sizes {:?}\n", t.root, t.checkpoints));
        if !t.redacted.is_empty() {
            out.push_str(&format!(
                "            redacted (by valid EntryRedacted events, not tampering): {:?}\n",
                t.redacted
            ));
        }
    }
    out.push('\n');
    let failed_row = outcome.failure.as_ref().map(|f| row_of(&f.check));
    let mut reached = true;
    for file in &outcome.projections {
        out.push_str(&format!("projection  {file}\n"));
    }
    let projection_row = (!outcome.projections.is_empty()).then_some("projection rows");
    for check in CHECKS.into_iter().chain(projection_row) {
        let status = match failed_row {
            None => "ok".to_owned(),
            Some(row) if row == check => {
                reached = false;
                format!(
                    "FAILED{}",
                    outcome.failure.as_ref().and_then(|f| f.seq).map(|s| format!(" at seq {s}")).unwrap_or_default()
                )
            }
            Some(_) if reached && !matches!(check, "checkpoint signature" | "tree root" | "redactions") => {
                "ok up to the failure".to_owned()
            }
            Some(_) => "not reached".to_owned(),
        };
        out.push_str(&format!("  {check:<30} {status}\n"));
    }
    out.push_str(&footer(outcome));
    out
}

fn render_replay(release: &str, outcome: &audit::ReplayOutcome) -> String {
    let mut out =
        format!("release {release} as of seq {} ({} entries folded)\n", outcome.size.saturating_sub(1), outcome.size);
    match &outcome.summary {
        None => out.push_str("  the release did not exist yet\n"),
        Some(s) => {
            out.push_str(&format!("  status      {}\n", s.status));
            for r in &s.reasons {
                out.push_str(&format!("  reason      {} {}\n", r.code, r.detail));
            }
            if let Some(score) = s.risk_score {
                out.push_str(&format!("  risk        {score}\n"));
            }
            if let Some(d) = &s.last_decision {
                out.push_str(&format!(
                    "  decision    {} (trigger seq {}, at {})\n",
                    d.event_type, d.trigger, d.evaluated_at
                ));
            }
        }
    }
    for item in &outcome.timeline {
        out.push_str(&format!(
            "  {:>6}  {}  {:<26} {:<16} {}\n",
            item.seq,
            projections::state::format_recorded_at(item.recorded_at),
            item.event_type,
            item.agent_id,
            item.summary
        ));
    }
    match &outcome.verification.failure {
        None => out.push_str("entries folded: verified\n"),
        Some(f) => out.push_str(&format!("INCONSISTENT: {f}\n")),
    }
    out
}
