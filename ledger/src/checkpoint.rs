//! Signed checkpoints in the C2SP `tlog-checkpoint` signed-note text format.
//!
//! ```text
//! ledger.example.com/acme           <- origin: "{origin prefix}/{tenant}", a schema-less URL
//! 1234                              <- tree size, decimal
//! 3q2+7w…=                          <- root of the RFC 6962 SHA-256 tree, base64
//!
//! — ledger.example.com/acme AbCd…  <- base64(key ID (4 bytes) || Ed25519 signature)
//! ```
//! The key name is the origin line; the key ID is
//! `SHA-256(name || 0x0A || 0x01 || public key)[:4]` as C2SP `signed-note` recommends, so any
//! signed-note verifier configured with the ledger's public key (its [`vkey`]) can check it.
//!
//! Format v2 writes no extension lines: tlog-checkpoint calls them NOT RECOMMENDED because log
//! monitors cannot audit them, and what v1 put there (the chain head and the last `recordedAt`)
//! is entry `size - 1` itself, which an inclusion proof of that entry already proves. A v1 note
//! (BLAKE3 tree, `chain-head` and `timestamp` lines) still parses, as [`TreeFormat::V1Blake3`],
//! for consistency checks of exports made before `release-ledger migrate`; only
//! [`SignedCheckpoint::parse_and_verify_any`] accepts it.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};
use sha2::{Digest as _, Sha256};

use crate::error::CheckpointError;
use crate::hash::Hash32;
use crate::keys::KeyPair;

/// Signature type byte of Ed25519 in C2SP signed-note.
const ED25519_SIGNATURE_TYPE: u8 = 0x01;
/// Upper bound on a note's size; far above anything the ledger writes.
const MAX_NOTE_BYTES: usize = 16 * 1024;

/// A tree head of one tenant log: the three lines every tlog-checkpoint has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// `"{origin prefix}/{tenant}"`: names the log and the signing key.
    pub origin: String,
    /// Number of entries covered (seqs `0..size`).
    pub size: u64,
    /// Merkle root over the entry hashes of seqs `0..size` (RFC 6962 SHA-256 in format v2).
    pub root: Hash32,
}

/// Which tree a checkpoint's root is the root of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeFormat {
    /// Format v1 (before `release-ledger migrate`): the RFC 6962 shape over BLAKE3; its notes
    /// carry `chain-head` and `timestamp` extension lines.
    V1Blake3,
    /// Format v2: RFC 6962 SHA-256; no extension lines.
    V2Sha256,
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
    /// The note text (the signed bytes).
    pub fn note_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, crate::b64::encode(self.root))
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

/// The ledger key of a log as a C2SP signed-note verifier key (a *vkey*):
/// `name+hex(key ID)+base64(0x01 || public key)`, what Go's `note.NewVerifier` and witnesses
/// are configured with.
pub fn vkey(name: &str, key: &VerifyingKey) -> String {
    let mut material = vec![ED25519_SIGNATURE_TYPE];
    material.extend_from_slice(key.as_bytes());
    format!("{name}+{}+{}", hex::encode(note_key_id(name, key)), crate::b64::encode(material))
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
    /// Which tree its root belongs to.
    pub format: TreeFormat,
    /// The extension lines after the root, in order.
    pub extensions: Vec<String>,
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
        let (checkpoint, extensions) = parse_text(text)?;
        let format = if extensions.iter().any(|line| line.starts_with("chain-head ")) {
            TreeFormat::V1Blake3
        } else {
            TreeFormat::V2Sha256
        };
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
        Ok(Self { checkpoint, format, extensions, signatures, text_len: split + 1 })
    }
}

impl SignedCheckpoint {
    /// Parses a format v2 signed note and verifies the ledger key's signature on it.
    /// Signatures by other keys (witness cosignatures) are ignored, as C2SP signed-note
    /// requires; at least one must be the ledger's. A format v1 note is refused: its root is
    /// a BLAKE3 tree's, which no v2 proof verifies against.
    pub fn parse_and_verify(note: &str, ledger_key: &VerifyingKey) -> Result<Self, CheckpointError> {
        match Self::parse_and_verify_any(note, ledger_key)? {
            (signed, TreeFormat::V2Sha256) => Ok(signed),
            (_, TreeFormat::V1Blake3) => Err(CheckpointError::Malformed(
                "a format v1 checkpoint (BLAKE3 tree, chain-head line): the log has been migrated to \
                 format v2, whose checkpoints carry no extension lines"
                    .into(),
            )),
        }
    }

    /// [`Self::parse_and_verify`] for notes of either format, saying which: what consistency
    /// checks of exports made before migration need.
    pub fn parse_and_verify_any(note: &str, ledger_key: &VerifyingKey) -> Result<(Self, TreeFormat), CheckpointError> {
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
        Ok((Self { checkpoint, note: note.to_owned() }, parsed.format))
    }
}

/// The three lines of a checkpoint, then its extension lines (non-empty, opaque).
fn parse_text(text: &str) -> Result<(Checkpoint, Vec<String>), CheckpointError> {
    let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
    let mut lines = text.strip_suffix('\n').ok_or_else(|| malformed("text must end in a newline"))?.split('\n');
    let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| malformed("missing origin"))?;
    let size_line = lines.next().ok_or_else(|| malformed("missing tree size"))?;
    let size = canonical_decimal(size_line, "tree size")?;
    let root = decode_hash(lines.next().ok_or_else(|| malformed("missing root hash"))?)?;
    let mut extensions = Vec::new();
    for line in lines {
        if line.is_empty() {
            return Err(malformed("empty extension line"));
        }
        extensions.push(line.to_owned());
    }
    Ok((Checkpoint { origin: origin.to_owned(), size, root }, extensions))
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
        Checkpoint { origin: "ledger.example.com/acme".into(), size: 42, root: [9; 32] }
    }

    /// A note signed by `key` over `text` as the ledger signs (key name = origin line).
    fn sign_text(text: &str, key: &KeyPair) -> String {
        let origin = text.split('\n').next().unwrap();
        let mut blob = note_key_id(origin, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&key.sign(text.as_bytes()));
        format!("{text}\n\u{2014} {origin} {}\n", crate::b64::encode(blob))
    }

    #[test]
    fn signed_note_round_trips_and_has_the_c2sp_shape() {
        let key = KeyPair::from_seed(&[3; 32]);
        let signed = sample().sign(&key);
        let lines: Vec<&str> = signed.note.lines().collect();
        assert_eq!(lines[..4], ["ledger.example.com/acme", "42", &crate::b64::encode([9; 32]), ""]);
        assert!(lines[4].starts_with("\u{2014} ledger.example.com/acme "));
        assert_eq!(lines.len(), 5, "no extension lines: {lines:?}");
        let parsed = SignedCheckpoint::parse_and_verify(&signed.note, &key.verifying_key()).unwrap();
        assert_eq!(parsed.checkpoint, sample());
    }

    /// Found by the `checkpoint` fuzz target: `0005` (or `+5`) parsed as 5, so two texts stood
    /// for one checkpoint and a parsed note did not re-serialise to itself.
    #[test]
    fn numbers_must_be_canonical_decimals() {
        let key = KeyPair::from_seed(&[3; 32]);
        let canonical = sample().note_text();
        for (from, to) in [("\n42\n", "\n042\n"), ("\n42\n", "\n+42\n")] {
            let text = canonical.replace(from, to);
            assert_ne!(text, canonical);
            let err = SignedCheckpoint::parse_and_verify(&sign_text(&text, &key), &key.verifying_key()).unwrap_err();
            assert!(matches!(err, CheckpointError::Malformed(ref why) if why.contains("canonical")), "{to}: {err}");
        }
    }

    /// A v1 note (BLAKE3 root, chain-head and timestamp lines) is readable only where the
    /// caller says it can tell the two trees apart.
    #[test]
    fn a_format_v1_note_is_told_apart() {
        let key = KeyPair::from_seed(&[3; 32]);
        let text = format!("{}chain-head {}\ntimestamp 77\n", sample().note_text(), crate::b64::encode([8; 32]));
        let note = sign_text(&text, &key);
        let err = SignedCheckpoint::parse_and_verify(&note, &key.verifying_key()).unwrap_err();
        assert!(err.to_string().contains("format v1"), "{err}");
        let (signed, format) = SignedCheckpoint::parse_and_verify_any(&note, &key.verifying_key()).unwrap();
        assert_eq!((signed.checkpoint, format), (sample(), TreeFormat::V1Blake3));
        let (_, format) =
            SignedCheckpoint::parse_and_verify_any(&sample().sign(&key).note, &key.verifying_key()).unwrap();
        assert_eq!(format, TreeFormat::V2Sha256);
        // Another extension line is opaque (tlog-checkpoint) and leaves the note v2.
        let other = sign_text(&format!("{}rekor.example/ext 1\n", sample().note_text()), &key);
        let parsed = UnverifiedNote::parse(&other).unwrap();
        assert_eq!((parsed.format, parsed.extensions), (TreeFormat::V2Sha256, vec!["rekor.example/ext 1".to_owned()]));
    }

    #[test]
    fn vkey_has_the_signed_note_shape() {
        let key = KeyPair::from_seed(&[3; 32]);
        let vkey = vkey("ledger.example.com/acme", &key.verifying_key());
        let parts: Vec<&str> = vkey.split('+').collect();
        assert_eq!(parts[0], "ledger.example.com/acme");
        assert_eq!(parts[1], hex::encode(note_key_id("ledger.example.com/acme", &key.verifying_key())));
        let material = crate::b64::decode(parts[2]).unwrap();
        assert_eq!((material[0], &material[1..]), (0x01, &key.verifying_key().as_bytes()[..]));
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
