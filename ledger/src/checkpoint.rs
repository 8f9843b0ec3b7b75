//! Signed checkpoints in the C2SP `tlog-checkpoint` signed-note text format.
//!
//! ```text
//! release-ledger/vetclinic-001          <- origin: "{origin prefix}/{tenant}"
//! 1234                                  <- tree size, decimal
//! 3q2+7w…=                              <- root hash, base64
//! chain-head 8J8L…=                     <- extension: entryHash of seq size-1, base64
//! timestamp 1732170000000000000         <- extension: recordedAt of seq size-1, ns
//!
//! — release-ledger/vetclinic-001 AbCd…  <- base64(key ID (4 bytes) || Ed25519 signature)
//! ```
//! The key name is the origin line; the key ID is
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]` as C2SP `signed-note` recommends, so any
//! signed-note verifier configured with the ledger's public key can check it.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::error::CheckpointError;
use crate::hash::{Hash32, GENESIS_PREV_HASH};
use crate::keys::KeyPair;

/// Signature type byte of Ed25519 in C2SP signed-note.
const ED25519_SIGNATURE_TYPE: u8 = 0x01;
/// Upper bound on a note's size; far above anything the ledger writes.
const MAX_NOTE_BYTES: usize = 16 * 1024;

/// A tree head of one tenant log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `"{origin prefix}/{tenant}"`: names the log and the signing key.
    pub origin: String,
    /// Number of entries covered (seqs `0..size`).
    pub size: u64,
    /// Merkle root over the entry hashes of seqs `0..size`.
    pub root: Hash32,
    /// The entry hash of seq `size - 1` (the genesis prev hash for an empty log).
    pub chain_head: Hash32,
    /// The `recordedAt` of seq `size - 1`, ns (0 for an empty log).
    pub timestamp: u64,
}

/// A checkpoint with its note text and signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The complete signed note, as stored and served.
    pub note: String,
}

impl Checkpoint {
    /// The checkpoint of an empty log.
    pub fn empty(origin: String, empty_root: Hash32) -> Self {
        Self { origin, size: 0, root: empty_root, chain_head: GENESIS_PREV_HASH, timestamp: 0 }
    }

    /// The note text (the signed bytes).
    pub fn note_text(&self) -> String {
        format!(
            "{}\n{}\n{}\nchain-head {}\ntimestamp {}\n",
            self.origin,
            self.size,
            crate::b64::encode(self.root),
            crate::b64::encode(self.chain_head),
            self.timestamp
        )
    }

    /// Signs the checkpoint with the ledger key.
    pub fn sign(&self, key: &KeyPair) -> SignedCheckpoint {
        let text = self.note_text();
        let signature = key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&note_key_id(&self.origin, &key.verifying_key()));
        blob.extend_from_slice(&signature);
        let note = format!("{text}\n\u{2014} {} {}\n", self.origin, crate::b64::encode(blob));
        SignedCheckpoint { checkpoint: self.clone(), note }
    }
}

/// C2SP signed-note key ID: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
pub fn note_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ED25519_SIGNATURE_TYPE]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A signature line of a note, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name the line states (the ledger's is the origin).
    pub name: String,
    /// The C2SP key ID, `SHA-256(name || 0x0A || 0x01 || public key)[:4]`.
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A note split into its checkpoint and its signature lines, nothing verified yet: what an
/// auditor needs to say *why* a note is not a checkpoint of the log it holds (another key,
/// another origin) rather than only that it does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedNote {
    /// The parsed checkpoint text.
    pub checkpoint: Checkpoint,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature>,
    /// Length of the signed text (the note up to and including the line before the blank one).
    text_len: usize,
}

impl UnverifiedNote {
    /// Parses the note's shape: the checkpoint text, a blank line, signature lines.
    pub fn parse(note: &str) -> Result<Self, CheckpointError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(CheckpointError::Malformed(format!("note longer than {MAX_NOTE_BYTES} bytes")));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(CheckpointError::Malformed("note contains control characters".into()));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| CheckpointError::Malformed("no blank line before the signatures".into()))?;
        let (text, signature_block) = (&note[..split + 1], &note[split + 2..]);
        let checkpoint = parse_text(text)?;
        if signature_block.is_empty() || !signature_block.ends_with('\n') {
            return Err(CheckpointError::Malformed("signature block must end in a newline".into()));
        }
        let mut signatures = Vec::new();
        for line in signature_block.lines() {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| CheckpointError::Malformed(format!("bad signature line {line:?}")))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| CheckpointError::Malformed(format!("bad signature line {line:?}")))?;
            let blob =
                crate::b64::decode(blob).map_err(|_| CheckpointError::Malformed("signature is not base64".into()))?;
            if blob.len() < 4 {
                continue; // No key ID: no key's signature, ignored as an unknown key's would be.
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                key_id: [blob[0], blob[1], blob[2], blob[3]],
                signature: blob[4..].to_vec(),
            });
        }
        Ok(Self { checkpoint, signatures, text_len: split + 1 })
    }
}

impl SignedCheckpoint {
    /// Parses a signed note and verifies the ledger key's signature on it. Signatures by
    /// other keys are ignored, as C2SP signed-note requires; at least one must be the ledger's.
    pub fn parse_and_verify(note: &str, ledger_key: &VerifyingKey) -> Result<Self, CheckpointError> {
        let parsed = UnverifiedNote::parse(note)?;
        let text = &note[..parsed.text_len];
        let checkpoint = parsed.checkpoint;
        let expected_id = note_key_id(&checkpoint.origin, ledger_key);
        let mut verified = false;
        for line in &parsed.signatures {
            if line.name != checkpoint.origin || line.signature.len() != 64 || line.key_id != expected_id {
                continue; // Another key's signature (for example a witness): not ours to judge.
            }
            let signature = Signature::from_slice(&line.signature).map_err(|_| CheckpointError::BadSignature)?;
            ledger_key.verify(text.as_bytes(), &signature).map_err(|_| CheckpointError::BadSignature)?;
            verified = true;
        }
        if !verified {
            return Err(CheckpointError::NoLedgerSignature);
        }
        Ok(Self { checkpoint, note: note.to_owned() })
    }
}

fn parse_text(text: &str) -> Result<Checkpoint, CheckpointError> {
    let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
    let mut lines = text.strip_suffix('\n').ok_or_else(|| malformed("text must end in a newline"))?.split('\n');
    let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("missing origin"))?;
    let size_line = lines.next().ok_or_else(|| malformed("missing tree size"))?;
    let size = canonical_decimal(size_line, "tree size")?;
    let root = decode_hash(lines.next().ok_or_else(|| malformed("missing root hash"))?)?;
    let (mut chain_head, mut timestamp) = (None, None);
    for line in lines {
        match line.split_once(' ') {
            Some(("chain-head", value)) if chain_head.is_none() => chain_head = Some(decode_hash(value)?),
            Some(("timestamp", value)) if timestamp.is_none() => {
                timestamp = Some(canonical_decimal(value, "timestamp")?)
            }
            _ if line.is_empty() => return Err(malformed("empty extension line")),
            _ => {} // Unknown extension lines are allowed by tlog-checkpoint.
        }
    }
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
        chain_head: chain_head.ok_or_else(|| malformed("missing chain-head line"))?,
        timestamp: timestamp.ok_or_else(|| malformed("missing timestamp line"))?,
    })
}

/// A `u64` written as the ledger writes it: ASCII digits, no sign, no leading zero. Anything
/// else would be a second text for the same checkpoint.
fn canonical_decimal(text: &str, what: &str) -> Result<u64, CheckpointError> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CheckpointError::Malformed(format!("{what} is not a canonical decimal")));
    }
    text.parse().map_err(|_| CheckpointError::Malformed(format!("{what} out of range")))
}

fn decode_hash(text: &str) -> Result<Hash32, CheckpointError> {
    let bytes = crate::b64::decode(text).map_err(|_| CheckpointError::Malformed(format!("{text:?} is not base64")))?;
    bytes.try_into().map_err(|_| CheckpointError::Malformed("hash is not 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint { origin: "release-ledger/acme".into(), size: 42, root: [9; 32], chain_head: [8; 32], timestamp: 77 }
    }

    #[test]
    fn signed_note_round_trips_and_has_the_c2sp_shape() {
        let key = KeyPair::from_seed(&[3; 32]);
        let signed = sample().sign(&key);
        let lines: Vec<&str> = signed.note.lines().collect();
        assert_eq!(lines[0], "release-ledger/acme");
        assert_eq!(lines[1], "42");
        assert_eq!(lines[5], "");
        assert!(lines[6].starts_with("\u{2014} release-ledger/acme "));
        let parsed = SignedCheckpoint::parse_and_verify(&signed.note, &key.verifying_key()).unwrap();
        assert_eq!(parsed.checkpoint, sample());
    }

    /// Found by the `checkpoint` fuzz target: `timestamp 0005` (or `+5`) parsed as 5, so two
    /// texts stood for one checkpoint and a parsed note did not re-serialise to itself.
    #[test]
    fn numbers_must_be_canonical_decimals() {
        let key = KeyPair::from_seed(&[3; 32]);
        let canonical = sample().note_text();
        for (from, to) in [("timestamp 77", "timestamp 077"), ("timestamp 77", "timestamp +77"), ("\n42\n", "\n042\n")]
        {
            let text = canonical.replace(from, to);
            assert_ne!(text, canonical);
            let mut blob = note_key_id(&sample().origin, &key.verifying_key()).to_vec();
            blob.extend_from_slice(&key.sign(text.as_bytes()));
            let note = format!("{text}\n\u{2014} {} {}\n", sample().origin, crate::b64::encode(blob));
            let err = SignedCheckpoint::parse_and_verify(&note, &key.verifying_key()).unwrap_err();
            assert!(matches!(err, CheckpointError::Malformed(ref why) if why.contains("canonical")), "{to}: {err}");
        }
    }

    #[test]
    fn any_change_to_the_note_is_rejected() {
        let key = KeyPair::from_seed(&[3; 32]);
        let note = sample().sign(&key).note;
        let other = KeyPair::from_seed(&[4; 32]);
        assert!(SignedCheckpoint::parse_and_verify(&note, &other.verifying_key()).is_err());
        for (i, _) in note.char_indices().filter(|(i, _)| *i < note.find('\u{2014}').unwrap()) {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(mutated) = String::from_utf8(bytes) {
                assert!(SignedCheckpoint::parse_and_verify(&mutated, &key.verifying_key()).is_err(), "byte {i}");
            }
        }
    }
}
