//! `ledger-audit proof FILE.tlog-proof`: checks a C2SP tlog-proof file offline against the
//! ledger key: the checkpoint's signature, the entry it names (the `extra` line, the
//! entry-hash input), and the RFC 6962 inclusion of that entry in the signed tree.

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use ledger::tlog_proof::{TlogProof, TlogProofError};
use serde::Serialize;

use super::{CannotRun, Failure};

/// What `ledger-audit proof` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProofOutcome {
    /// The proof file.
    pub file: String,
    /// The log (checkpoint origin).
    pub origin: String,
    /// The checkpoint's tree size.
    pub tree_size: u64,
    /// The proven entry's seq.
    pub seq: u64,
    /// Its entry hash, hex (once verified).
    pub entry_hash: Option<String>,
    /// Its `recordedAt`, ns (once verified).
    pub recorded_at_ns: Option<u64>,
    /// Its payload hash (BLAKE3 of the envelope bytes), hex (once verified).
    pub payload_hash: Option<String>,
    /// Why it does not verify.
    pub failure: Option<Failure>,
}

/// Checks the proof file at `path` under `key` (module docs). A file that is not a tlog-proof,
/// or whose checkpoint is not signed by `key`, cannot be judged (exit 2); a well-formed proof
/// by this ledger that does not bind its entry to the signed root is a failure (exit 1).
pub fn proof(path: &Path, key: &VerifyingKey) -> Result<ProofOutcome, CannotRun> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CannotRun(format!("{name}: {e}")))?;
    let file = TlogProof::parse(&text).map_err(|e| CannotRun(format!("{name}: {e}")))?;
    let note = ledger::UnverifiedNote::parse(&file.note)
        .map_err(|e| CannotRun(format!("{name}: the proof's checkpoint: {e}")))?;
    let mut outcome = ProofOutcome {
        file: name.clone(),
        origin: note.checkpoint.origin.clone(),
        tree_size: note.checkpoint.size,
        seq: file.index,
        entry_hash: None,
        recorded_at_ns: None,
        payload_hash: None,
        failure: None,
    };
    match file.verify(key) {
        Ok(proven) => {
            outcome.entry_hash = Some(hex::encode(proven.entry_hash));
            outcome.recorded_at_ns = Some(proven.recorded_at);
            outcome.payload_hash = Some(hex::encode(proven.payload_hash));
        }
        Err(TlogProofError::Checkpoint(e)) => {
            return Err(CannotRun(format!(
                "{name}: the proof's checkpoint is not one of this ledger ({e}); check --ledger-key"
            )))
        }
        Err(e @ (TlogProofError::Extra(_) | TlogProofError::NotIncluded { .. })) => {
            outcome.failure = Some(Failure::new(Some(file.index), "inclusion", e.to_string()));
        }
        Err(e) => return Err(CannotRun(format!("{name}: {e}"))),
    }
    Ok(outcome)
}
