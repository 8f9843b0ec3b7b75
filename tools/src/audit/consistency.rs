//! `ledger-audit consistency`, and reading the checkpoints it is given: the signed note, the
//! JSON of `release-ledger checkpoint --json`, or an older export; anything else cannot run
//! (exit 2), and only two valid checkpoints of one log that disagree are a verdict.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use ledger::SignedCheckpoint;
use serde::Serialize;

use super::{key_hex, verify_file_as, CannotRun, Failure, Timelines, VerifyOptions};
use crate::file::ExportReader;

/// How to save a checkpoint `ledger-audit` reads, for the messages that refuse anything else.
const SAVE_CHECKPOINT: &str = "save the checkpoint with `release-ledger checkpoint --out FILE` (or pass the output of \
     `release-ledger checkpoint --json`, whole or its .note, or an older entries export)";

/// Parses a checkpoint given as a file's text: the signed note itself (one trailing newline
/// more or less does not matter: `jq -r .note` adds one), or the JSON that
/// `release-ledger checkpoint --json` prints (the whole object, or its `note` string). Anything
/// else is refused with what was found: the audit cannot run on it (exit 2), it is no verdict
/// about the log.
pub fn checkpoint_note(text: &str) -> Result<String, CannotRun> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('"') {
        let value: serde_json::Value = serde_json::from_str(trimmed).map_err(|e| {
            CannotRun(format!("the checkpoint is neither a signed note nor valid JSON ({e}); {SAVE_CHECKPOINT}"))
        })?;
        let note = match &value {
            serde_json::Value::String(note) => note,
            value => value["note"].as_str().ok_or_else(|| {
                CannotRun(format!(
                    "the checkpoint JSON has no \"note\" string (is it the output of `release-ledger checkpoint --json`?); {SAVE_CHECKPOINT}"
                ))
            })?,
        };
        return note_form(note);
    }
    note_form(text)
}

/// The note in `text`, with exactly one trailing newline, if it has a note's shape; else what
/// is wrong with it.
fn note_form(text: &str) -> Result<String, CannotRun> {
    let note = format!("{}\n", text.trim_end_matches(['\n', '\r', ' ', '\t']));
    match ledger::UnverifiedNote::parse(&note) {
        Ok(_) => Ok(note),
        Err(e) => Err(CannotRun(match extra_lines(&note) {
            Some((line, extra)) => format!(
                "the checkpoint file holds more than the signed note: line {line} ({extra:?}) is not part of it \
                 (the human output of `release-ledger checkpoint` saved with `>`?); {SAVE_CHECKPOINT}"
            ),
            None => format!("the checkpoint is not a signed checkpoint note ({e}); {SAVE_CHECKPOINT}"),
        })),
    }
}

/// When `text` holds a well-formed note among other lines (a status line before or after it),
/// the first line that is not part of the note (1-based) and its text.
fn extra_lines(text: &str) -> Option<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let first_signature = lines.iter().position(|l| l.starts_with("\u{2014} "))?;
    let name = lines[first_signature].strip_prefix("\u{2014} ")?.split(' ').next()?;
    let start = lines[..first_signature].iter().position(|l| *l == name)?;
    let end = first_signature + lines[first_signature..].iter().take_while(|l| l.starts_with("\u{2014} ")).count();
    let note = format!("{}\n", lines[start..end].join("\n"));
    ledger::UnverifiedNote::parse(&note).ok()?;
    let extra = if start > 0 { 0 } else { end };
    lines.get(extra).map(|l| (extra + 1, (*l).to_owned()))
}

/// Reads a checkpoint from a file: a signed note or `checkpoint --json` output (see
/// [`checkpoint_note`]), or an export (Arrow IPC or Parquet), whose metadata holds the
/// checkpoint it was made at. `flag` names the argument in messages.
pub fn read_checkpoint_file(path: &Path, flag: &str) -> Result<String, CannotRun> {
    let name = path.display();
    let bytes = std::fs::read(path).map_err(|e| CannotRun(format!("{flag} {name}: {e}")))?;
    if bytes.starts_with(b"ARROW1") || bytes.starts_with(b"PAR1") {
        let reader = ExportReader::open(path).map_err(|e| {
            CannotRun(format!(
                "{flag} {name} looks like an export but its metadata cannot be read ({e}); {SAVE_CHECKPOINT}"
            ))
        })?;
        return note_form(&reader.meta.checkpoint)
            .map_err(|e| CannotRun(format!("{flag} {name}: the export's checkpoint metadata: {e}")));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        CannotRun(format!(
            "{flag} {name} is neither text (invalid UTF-8 at byte {}) nor an Arrow IPC or Parquet export; {SAVE_CHECKPOINT}",
            e.utf8_error().valid_up_to()
        ))
    })?;
    checkpoint_note(&text).map_err(|e| CannotRun(format!("{flag} {name}: {e}")))
}

/// Verifies a signed note with `key`.
pub fn parse_checkpoint(note: &str, key: &VerifyingKey) -> Result<SignedCheckpoint, Failure> {
    SignedCheckpoint::parse_and_verify(note, key).map_err(|e| Failure::new(None, "checkpoint signature", e.to_string()))
}

/// The result of `consistency`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyOutcome {
    /// Size of the older checkpoint.
    pub old_size: u64,
    /// Size of the newer checkpoint or export.
    pub new_size: u64,
    /// How it was shown: `export` (the older root recomputed from the newer export's entries)
    /// or `proof` (an RFC 9162 consistency proof between two checkpoints).
    pub method: String,
    /// The first inconsistency, if any.
    pub failure: Option<Failure>,
}

/// Checks that `new` (an export from seq 0, or a checkpoint with `proof`) extends the `old`
/// checkpoint: the log was only appended to, no history rewritten.
pub fn consistency(
    old_note: &str,
    new: &Path,
    proof: Option<&[ledger::Hash32]>,
    ledger_key: Option<&VerifyingKey>,
) -> Result<ConsistencyOutcome, CannotRun> {
    let mut magic = [0u8; 6];
    let read = std::io::Read::read(
        &mut std::fs::File::open(new).map_err(|e| CannotRun(format!("{}: {e}", new.display())))?,
        &mut magic,
    )
    .map_err(|e| CannotRun(format!("{}: {e}", new.display())))?;
    let is_export = (read == 6 && &magic == b"ARROW1") || (read >= 4 && &magic[..4] == b"PAR1");
    if is_export {
        // The older checkpoint must be one of the export's log; an export whose metadata does
        // not even read is a failure the verification below reports (exit 1).
        let old = match ExportReader::open(new) {
            Ok(reader) => {
                let meta = &reader.meta;
                let (key, key_source) = match ledger_key {
                    Some(key) => (*key, "--ledger-key"),
                    None => (*meta.roots.ledger(), "the export's metadata"),
                };
                let origin = format!("{}/{}", meta.origin_prefix, meta.tenant);
                let log = LogOf { origin, size: meta.to_seq, what: "the export" };
                Some(old_of_log(old_note, &key, key_source, &log)?.0)
            }
            Err(_) => None,
        };
        let options = VerifyOptions {
            ledger_key: ledger_key.copied(),
            checkpoints: vec![old_note.to_owned()],
            ..VerifyOptions::default()
        };
        let (outcome, _) = verify_file_as(new, &options, None, Timelines::Skipped)?;
        let new_size = outcome.tenants.first().map_or(0, |t| t.to_seq);
        return Ok(ConsistencyOutcome {
            old_size: old.map_or(0, |c| c.size),
            new_size,
            method: "export".into(),
            failure: outcome.failure,
        });
    }
    let key = ledger_key.ok_or_else(|| CannotRun("checking two checkpoints needs --ledger-key".into()))?;
    let new_note = read_checkpoint_file(new, "--new")?;
    let proof =
        proof.ok_or_else(|| CannotRun("checking two checkpoints needs --proof (GetConsistencyProof's path)".into()))?;
    let new = match SignedCheckpoint::parse_and_verify(&new_note, key) {
        Ok(signed) => signed.checkpoint,
        Err(e) => {
            return Err(CannotRun(format!(
                "the --new checkpoint: {}",
                why_not_verified(&new_note, &e, key, "--ledger-key")
            )))
        }
    };
    let log = LogOf { origin: new.origin.clone(), size: new.size, what: "the --new checkpoint" };
    let (old, format) = old_of_log(old_note, key, "--ledger-key", &log)?;
    if format == ledger::TreeFormat::V1Blake3 {
        return Err(CannotRun(
            "the --old checkpoint was signed before the log was migrated to format v2 (BLAKE3 tree): no consistency \
             proof spans the two trees; pass --new EXPORT (an entries export from seq 0), whose entries give both"
                .into(),
        ));
    }
    let mut outcome =
        ConsistencyOutcome { old_size: old.size, new_size: new.size, method: "proof".into(), failure: None };
    outcome.failure = ledger::merkle::verify_consistency::<ledger::merkle::LogHasher>(
        old.size, new.size, &old.root, &new.root, proof,
    )
    .map_err(|e| {
        Failure::new(Some(old.size), "consistency", format!("the newer tree does not extend the older one: {e}"))
    })
    .err();
    Ok(outcome)
}

/// The log an older checkpoint must belong to.
struct LogOf {
    /// Its origin, `{origin prefix}/{tenant}`.
    origin: String,
    /// Its size now.
    size: u64,
    /// What states it, for messages.
    what: &'static str,
}

/// The older checkpoint, if it is one of `log` signed by `key`; otherwise why the consistency
/// check cannot run on it. Only two valid checkpoints of one log can be inconsistent: a note of
/// another log or key, or one larger than the log, is a wrong argument, not a verdict.
fn old_of_log(
    old_note: &str,
    key: &VerifyingKey,
    key_source: &str,
    log: &LogOf,
) -> Result<(ledger::Checkpoint, ledger::TreeFormat), CannotRun> {
    let (old, format) = match SignedCheckpoint::parse_and_verify_any(old_note, key) {
        Ok((signed, format)) => (signed.checkpoint, format),
        Err(e) => {
            return Err(CannotRun(format!("the --old checkpoint: {}", why_not_verified(old_note, &e, key, key_source))))
        }
    };
    // A checkpoint signed before migration to format v2 named the log with the v1 origin
    // prefix: the same tenant is the last component.
    let tenant = log.origin.rsplit('/').next().unwrap_or_default();
    let same_log = match format {
        ledger::TreeFormat::V2Sha256 => old.origin == log.origin,
        ledger::TreeFormat::V1Blake3 => old.origin.rsplit('/').next() == Some(tenant),
    };
    if !same_log {
        return Err(CannotRun(format!(
            "the --old checkpoint is of log {:?}, {} of log {:?}: pass a checkpoint of the same tenant",
            old.origin, log.what, log.origin
        )));
    }
    if old.size > log.size {
        return Err(CannotRun(format!(
            "the --old checkpoint covers {} entries, {} only {}: pass a newer export (or --new checkpoint) of the log, \
             at least as large as the --old checkpoint",
            old.size, log.what, log.size
        )));
    }
    Ok((old, format))
}

/// Why a note did not verify with `key`, in words that say which key was tried and whose
/// signatures the note carries.
fn why_not_verified(note: &str, error: &ledger::CheckpointError, key: &VerifyingKey, key_source: &str) -> String {
    let tried = format!("the ledger key {} (from {key_source})", key_hex(key));
    match error {
        ledger::CheckpointError::NoLedgerSignature => {
            let signers = ledger::UnverifiedNote::parse(note)
                .map(|n| {
                    n.signatures
                        .iter()
                        .map(|s| format!("{} (key ID {})", s.name, hex::encode(s.key_id)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            format!(
                "it carries no signature by {tried}, only by {}: it is a checkpoint of another ledger, \
                 or --ledger-key is not the key of its ledger",
                signers.join(", ")
            )
        }
        ledger::CheckpointError::BadSignature => {
            format!("its signature by {tried} does not verify: the note was altered after it was signed")
        }
        other => format!("{other}; {SAVE_CHECKPOINT}"),
    }
}
