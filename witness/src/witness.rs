//! The witness of C2SP tlog-witness: the `add-checkpoint` state machine and its durable state.
//!
//! For each log origin it knows, the witness keeps the latest checkpoint it cosigned, as a file
//! `<state dir>/<hex SHA-256(origin)>` holding that checkpoint note with the log's signatures
//! and the witness's own cosignature (what `GET <origin hash>/checkpoint` serves).
//!
//! **Durability.** "The witness MUST persist the new checkpoint before responding": the new
//! file is written as `<name>.tmp`, fsynced, renamed over `<name>`, and the directory fsynced,
//! all before the cosignature is returned; a crash at any point leaves either the old file or
//! the new one, never a mix. A failed write returns 500, leaves the old file and the in-memory
//! state as they were and removes the temporary file. Files, not RocksDB: one small file per
//! origin needs no second database (and its lock) beside the ledger's, stays readable with
//! `cat`, and rename is the atomic replace the spec needs.
//!
//! **Serialisation.** "Checking the old size against the latest checkpoint and persisting the
//! new checkpoint must be performed atomically": every request for an origin holds that
//! origin's mutex from reading the stored size to the end of the rename, so two concurrent
//! requests cannot both advance (the second sees the first's size and gets 409). Requests for
//! different origins do not wait for each other. One witness process per state dir.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ledger::merkle::{verify_consistency, TreeHasher as _};
use ledger::Clock;
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};

use crate::cosig::{verify_cosignature, Cosigner, MAX_TIMESTAMP};
use crate::note::{canonical_decimal, decode_hash, CheckpointBody, SignedNote, Vkey, ED25519_NOTE_TYPE};
use crate::verify::{verify_log_signature, CheckpointRejected};
use crate::{Hash32, WitnessHasher};

/// tlog-witness: "The client MUST NOT send more than 63 consistency proof lines."
pub const MAX_PROOF_LINES: usize = 63;
/// Largest `add-checkpoint` body read: a note of [`crate::note::MAX_NOTE_BYTES`] and the proof.
pub const MAX_REQUEST_BYTES: usize = crate::note::MAX_NOTE_BYTES + 64 * 64;

/// An `add-checkpoint` refusal, with the HTTP status tlog-witness specifies for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// 400: the body is not an old size line, proof lines, a blank line and a checkpoint; or
    /// the old size is above the checkpoint size.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 404: "If the checkpoint origin is unknown, the witness MUST respond with a "404 Not
    /// Found" HTTP status code."
    #[error("unknown log origin {0}")]
    UnknownOrigin(String),
    /// 403: no signature of a trusted key for the origin, or one that does not verify.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 409: the old size is not the size of the latest checkpoint cosigned for the origin.
    #[error("old size {old_size} does not match the latest cosigned size {size}")]
    Conflict {
        /// The size the request claimed.
        old_size: u64,
        /// The size of the latest cosigned checkpoint (0 if none).
        size: u64,
    },
    /// 422: the empty tree with a non-empty root, a proof with old size zero, a consistency
    /// proof that does not verify, or the same size with another root.
    #[error("not consistent: {0}")]
    Unprocessable(String),
    /// 500: the new state could not be persisted; nothing was cosigned.
    #[error("storage: {0}")]
    Storage(String),
}

impl AddError {
    /// The HTTP status code of this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::UnknownOrigin(_) => 404,
            Self::Forbidden(_) => 403,
            Self::Conflict { .. } => 409,
            Self::Unprocessable(_) => 422,
            Self::Storage(_) => 500,
        }
    }
}

/// A parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    /// The old size line's value.
    pub old_size: u64,
    /// The consistency proof from `old_size` to the checkpoint's size.
    pub proof: Vec<Hash32>,
    /// The checkpoint note.
    pub note: SignedNote,
    /// Its origin, size and root.
    pub checkpoint: CheckpointBody,
}

impl AddCheckpoint {
    /// Parses a body: "an old size line, zero or more consistency proof lines, and an empty
    /// line, followed by a checkpoint"; "Each line MUST terminate in a newline character".
    pub fn parse(body: &[u8]) -> Result<Self, AddError> {
        let bad = |why: String| AddError::BadRequest(why);
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(format!("body longer than {MAX_REQUEST_BYTES} bytes")));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8".into()))?;
        let (first, mut rest) = text.split_once('\n').ok_or_else(|| bad("no old size line".into()))?;
        let old = first.strip_prefix("old ").ok_or_else(|| bad(format!("first line {first:?} is not `old <size>`")))?;
        let old_size = canonical_decimal(old, "old size").map_err(|e| bad(e.0))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) =
                rest.split_once('\n').ok_or_else(|| bad("no empty line before the checkpoint".into()))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(format!("more than {MAX_PROOF_LINES} consistency proof lines")));
            }
            proof.push(
                decode_hash(line).map_err(|e| bad(format!("consistency proof line {}: {}", proof.len() + 1, e.0)))?,
            );
        }
        let note = SignedNote::parse(rest).map_err(|e| bad(format!("checkpoint: {}", e.0)))?;
        let checkpoint = CheckpointBody::parse(&note.text).map_err(|e| bad(format!("checkpoint: {}", e.0)))?;
        Ok(Self { old_size, proof, note, checkpoint })
    }

    /// The body as a client sends it.
    pub fn body(old_size: u64, proof: &[Hash32], note: &str) -> String {
        let mut body = format!("old {old_size}\n");
        for hash in proof {
            body.push_str(&ledger::b64::encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        body
    }
}

/// The latest checkpoint cosigned for one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigned {
    /// Its size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash32,
    /// The note with the log's signatures and the witness's cosignature.
    pub note: String,
}

/// One origin's slot: its mutex serialises every request for that origin.
type Slot = Arc<Mutex<Option<Option<Cosigned>>>>;

/// A witness: its cosigner, the logs it witnesses, its state dir.
#[derive(Debug)]
pub struct Witness {
    cosigner: Cosigner,
    logs: HashMap<String, Vec<Vkey>>,
    state_dir: PathBuf,
    clock: Arc<dyn Clock>,
    /// origin -> slot; a slot's outer `None` is "not loaded from disk yet".
    slots: Mutex<HashMap<String, Slot>>,
}

impl Witness {
    /// A witness cosigning as `cosigner` for `logs` (note keys, type `0x01`, named by origin),
    /// keeping its state in `state_dir` (created if missing).
    pub fn open(cosigner: Cosigner, logs: Vec<Vkey>, state_dir: &Path, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let mut by_origin: HashMap<String, Vec<Vkey>> = HashMap::new();
        for vkey in logs {
            if vkey.signature_type != ED25519_NOTE_TYPE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("log key {vkey} is not an Ed25519 note key (type 0x01)"),
                ));
            }
            by_origin.entry(vkey.name.clone()).or_default().push(vkey);
        }
        Ok(Self {
            cosigner,
            logs: by_origin,
            state_dir: state_dir.to_owned(),
            clock,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The witness's cosigner (its name and vkey).
    pub fn cosigner(&self) -> &Cosigner {
        &self.cosigner
    }

    /// The file holding `origin`'s state.
    pub fn state_file(&self, origin: &str) -> PathBuf {
        self.state_dir.join(origin_hash(origin))
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Result<Option<Cosigned>, AddError> {
        let slot = self.slot(origin);
        let mut state = slot.lock();
        Ok(self.loaded(origin, &mut state)?.clone())
    }

    /// The latest cosigned checkpoint of the origin whose `hex(SHA-256(origin))` is `hash`
    /// (tlog-witness's monitoring endpoint).
    pub fn latest_by_hash(&self, hash: &str) -> Result<Option<Cosigned>, AddError> {
        let origin = self.logs.keys().find(|origin| origin_hash(origin) == hash).cloned();
        match origin {
            Some(origin) => self.latest(&origin),
            None => Ok(None),
        }
    }

    /// Handles an `add-checkpoint` body; on success returns the response body (the
    /// cosignature line), after the new state is durable.
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let request = AddCheckpoint::parse(body)?;
        let origin = request.checkpoint.origin.clone();
        // "The witness MUST verify the checkpoint signature against the public key(s) it trusts
        // for the checkpoint origin, and it MUST ignore signatures from unknown keys."
        let keys = self.logs.get(&origin).ok_or_else(|| AddError::UnknownOrigin(origin.clone()))?;
        verify_log_signature(&request.note, keys).map_err(|e| match e {
            CheckpointRejected::UnknownOrigin(origin) => AddError::UnknownOrigin(origin),
            CheckpointRejected::Malformed(e) => AddError::BadRequest(e.0),
            other => AddError::Forbidden(other.to_string()),
        })?;
        let (old_size, size, root) = (request.old_size, request.checkpoint.size, request.checkpoint.root);
        // "The old size MUST be equal to or lower than the checkpoint size."
        if old_size > size {
            return Err(AddError::BadRequest(format!("old size {old_size} is above the checkpoint size {size}")));
        }
        let slot = self.slot(&origin);
        let mut state = slot.lock();
        let latest = self.loaded(&origin, &mut state)?;
        let (stored_size, stored_root) = latest.as_ref().map_or((0, WitnessHasher::empty_root()), |c| (c.size, c.root));
        // "If it doesn't match, the witness MUST respond with a "409 Conflict"".
        if old_size != stored_size {
            return Err(AddError::Conflict { old_size, size: stored_size });
        }
        // "A checkpoint of size zero MUST have the root hash of the empty tree".
        if size == 0 && root != WitnessHasher::empty_root() {
            return Err(AddError::Unprocessable("a checkpoint of size 0 must have the empty tree's root".into()));
        }
        // "If the old size is zero, the consistency proof MUST be empty".
        if old_size == 0 && !request.proof.is_empty() {
            return Err(AddError::Unprocessable("old size 0 takes no consistency proof".into()));
        }
        // RFC 6962 consistency, and for equal sizes equal roots (verify_consistency checks both).
        verify_consistency::<WitnessHasher>(old_size, size, &stored_root, &root, &request.proof).map_err(|e| {
            if old_size == size {
                AddError::Unprocessable(format!("checkpoint of size {size} has another root than the one cosigned"))
            } else {
                AddError::Unprocessable(format!("consistency proof from {old_size} to {size} does not verify: {e}"))
            }
        })?;
        let timestamp = (self.clock.now_ns() / 1_000_000_000).clamp(1, MAX_TIMESTAMP);
        let line = self.cosigner.cosign(&request.note.text, timestamp);
        let mut stored_note = request.note.clone();
        // Keep the log's signatures and ours; drop other cosigners' lines (not ours to vouch for).
        stored_note.signatures.retain(|l| keys.iter().any(|k| k.matches(l)));
        stored_note.signatures.push(line.clone());
        let cosigned = Cosigned { size, root, note: stored_note.to_note() };
        // "The witness MUST persist the new checkpoint before responding."
        write_atomically(&self.state_dir, &origin_hash(&origin), cosigned.note.as_bytes())
            .map_err(|e| AddError::Storage(format!("persisting the state of {origin}: {e}")))?;
        *state = Some(Some(cosigned));
        Ok(line.to_line())
    }

    fn slot(&self, origin: &str) -> Slot {
        self.slots.lock().entry(origin.to_owned()).or_default().clone()
    }

    /// The slot's state, read from disk on first use.
    fn loaded<'a>(
        &self,
        origin: &str,
        state: &'a mut Option<Option<Cosigned>>,
    ) -> Result<&'a Option<Cosigned>, AddError> {
        if state.is_none() {
            *state = Some(self.read_state(origin)?);
        }
        Ok(state.get_or_insert(None))
    }

    fn read_state(&self, origin: &str) -> Result<Option<Cosigned>, AddError> {
        let path = self.state_file(origin);
        let corrupt = |why: String| AddError::Storage(format!("state file {} of {origin}: {why}", path.display()));
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let note = String::from_utf8(bytes).map_err(|_| corrupt("not UTF-8".into()))?;
        let parsed = SignedNote::parse(&note).map_err(|e| corrupt(e.0))?;
        let body = CheckpointBody::parse(&parsed.text).map_err(|e| corrupt(e.0))?;
        if body.origin != origin {
            return Err(corrupt(format!("holds origin {}", body.origin)));
        }
        // Our own cosignature must verify: a file changed behind our back is not our state.
        let ours = parsed.signatures.iter().find(|l| self.cosigner.vkey().matches(l));
        match ours.map(|line| verify_cosignature(self.cosigner.vkey(), &parsed.text, line)) {
            Some(Ok(_)) => Ok(Some(Cosigned { size: body.size, root: body.root, note })),
            Some(Err(e)) => Err(corrupt(e.to_string())),
            None => Err(corrupt("no cosignature of this witness".into())),
        }
    }
}

/// `hex(SHA-256(origin))`, lowercase: the state file name and tlog-witness's origin hash.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// Replaces `dir/name` with `bytes` atomically and durably: write `name.tmp`, fsync, rename,
/// fsync the directory. On error the temporary file is removed and `dir/name` is untouched.
pub fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let target = dir.join(name);
    let temp = dir.join(format!("{name}.tmp"));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, &target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() && temp.is_file() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}
