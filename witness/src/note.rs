//! C2SP `signed-note` and `tlog-checkpoint`, as far as a witness and its clients need them:
//! splitting a note into its text and signature lines, reading a checkpoint's origin, size and
//! root (extension lines are kept in the text and otherwise ignored), and verifier keys
//! (`vkey`s) for the two signature types involved: `0x01` (the log's Ed25519 note signature)
//! and `0x04` (an Ed25519 `cosignature/v1`).
//!
//! This module reads notes as text: it does not use `ledger::checkpoint`, whose parser knows
//! the ledger's own extension lines; a witness must accept any log's checkpoint.

use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256};

use crate::Hash32;

/// signed-note signature type of a plain Ed25519 note signature (the log's).
pub const ED25519_NOTE_TYPE: u8 = 0x01;
/// signed-note signature type of an Ed25519 `cosignature/v1` (tlog-cosignature).
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;
/// The em dash (U+2014) that starts every signature line.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// Largest note this crate reads. signed-note: verifiers "MUST accept at least up to 16
/// signatures"; an Ed25519 line is under 200 bytes, so 64 KiB leaves room for far more.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// Why a note, checkpoint or vkey is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn bad(why: impl Into<String>) -> FormatError {
    FormatError(why.into())
}

/// One signature line, not verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    /// The key name.
    pub name: String,
    /// The 4-byte key ID, big-endian as written.
    pub key_id: [u8; 4],
    /// The signature bytes after the key ID.
    pub signature: Vec<u8>,
}

impl SignatureLine {
    /// The line as written, with its final newline.
    pub fn to_line(&self) -> String {
        let mut blob = self.key_id.to_vec();
        blob.extend_from_slice(&self.signature);
        format!("{SIGNATURE_PREFIX}{} {}\n", self.name, ledger::b64::encode(blob))
    }
}

/// A signed note split at its last blank line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The note text, including its final newline (the signed bytes).
    pub text: String,
    /// The signature lines, in order.
    pub signatures: Vec<SignatureLine>,
}

impl SignedNote {
    /// Parses a signed note: "a text ending in newline, followed by a blank line, followed by
    /// one or more signature lines" (signed-note). The text is separated from the signatures
    /// by the last empty line.
    pub fn parse(note: &str) -> Result<Self, FormatError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(bad(format!("note longer than {MAX_NOTE_BYTES} bytes")));
        }
        // signed-note: "MUST NOT contain any ASCII control characters (those below U+0020)
        // other than newline."
        if note.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(bad("note contains control characters"));
        }
        let split = note.rfind("\n\n").ok_or_else(|| bad("note has no blank line before its signatures"))?;
        let (text, block) = (&note[..split + 1], &note[split + 2..]);
        if block.is_empty() {
            return Err(bad("note has no signature lines"));
        }
        if !block.ends_with('\n') {
            return Err(bad("the last signature line does not end in a newline"));
        }
        let signatures = block.lines().map(parse_signature_line).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { text: text.to_owned(), signatures })
    }

    /// The note as written: text, blank line, signature lines.
    pub fn to_note(&self) -> String {
        let mut note = format!("{}\n", self.text);
        for line in &self.signatures {
            note.push_str(&line.to_line());
        }
        note
    }
}

/// Parses one signature line (without its newline): `— <name> base64(key ID || signature)`.
pub fn parse_signature_line(line: &str) -> Result<SignatureLine, FormatError> {
    let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or_else(|| bad(format!("bad signature line {line:?}")))?;
    let (name, blob) = rest.split_once(' ').ok_or_else(|| bad(format!("bad signature line {line:?}")))?;
    check_key_name(name)?;
    let blob = ledger::b64::decode(blob).map_err(|_| bad(format!("signature of {name} is not base64")))?;
    if blob.len() < 4 {
        return Err(bad(format!("signature of {name} is shorter than its 4-byte key ID")));
    }
    Ok(SignatureLine {
        name: name.to_owned(),
        key_id: [blob[0], blob[1], blob[2], blob[3]],
        signature: blob[4..].to_vec(),
    })
}

/// signed-note: "Key names MUST be non-empty and MUST NOT contain any Unicode spaces or plus
/// (U+002B) characters."
pub fn check_key_name(name: &str) -> Result<(), FormatError> {
    if name.is_empty() {
        return Err(bad("empty key name"));
    }
    if name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(bad(format!("key name {name:?} contains a space or a plus")));
    }
    Ok(())
}

/// The first three lines of a checkpoint (tlog-checkpoint): origin, size, root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    /// The origin line.
    pub origin: String,
    /// The tree size.
    pub size: u64,
    /// The root hash.
    pub root: Hash32,
}

impl CheckpointBody {
    /// Reads the origin, size and root lines of a checkpoint's note text (which must end in a
    /// newline); further non-empty lines are extension lines, kept in the text, not read here.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let body = text.strip_suffix('\n').ok_or_else(|| bad("checkpoint text does not end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty()).ok_or_else(|| bad("checkpoint has no origin line"))?;
        let size = canonical_decimal(lines.next().ok_or_else(|| bad("checkpoint has no size line"))?, "tree size")?;
        let root = decode_hash(lines.next().ok_or_else(|| bad("checkpoint has no root hash line"))?)?;
        if lines.any(str::is_empty) {
            return Err(bad("checkpoint has an empty extension line"));
        }
        Ok(Self { origin: origin.to_owned(), size, root })
    }
}

/// A `u64` in ASCII decimal with no sign and no leading zero (unless it is `0`), the one
/// encoding tlog-checkpoint and tlog-witness allow.
pub fn canonical_decimal(text: &str, what: &str) -> Result<u64, FormatError> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("{what} {text:?} is not a decimal without leading zeroes")));
    }
    text.parse().map_err(|_| bad(format!("{what} {text:?} is out of range")))
}

/// A 32-byte hash in standard base64.
pub fn decode_hash(text: &str) -> Result<Hash32, FormatError> {
    let bytes = ledger::b64::decode(text).map_err(|_| bad(format!("hash {text:?} is not base64")))?;
    bytes.try_into().map_err(|_| bad(format!("hash {text:?} is not 32 bytes")))
}

/// `SHA-256(name || "\n" || type || public key)[:4]`, the key ID signed-note recommends and
/// tlog-cosignature requires ("The key ID for Ed25519 cosignatures MUST be computed as
/// SHA-256(<name> || "\n" || 0x04 || 32-byte Ed25519 cosigner public key)[:4]").
pub fn key_id(name: &str, signature_type: u8, public_key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', signature_type]);
    hasher.update(public_key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A verifier key: a key name, a signature type and an Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vkey {
    /// The key name (for a log: its origin; for a witness: its cosigner name).
    pub name: String,
    /// `0x01` (note signature) or `0x04` (cosignature/v1).
    pub signature_type: u8,
    /// The Ed25519 public key.
    pub public_key: VerifyingKey,
}

impl Vkey {
    /// A vkey of `signature_type` for `public_key` under `name`.
    pub fn new(name: &str, signature_type: u8, public_key: VerifyingKey) -> Result<Self, FormatError> {
        check_key_name(name)?;
        if signature_type != ED25519_NOTE_TYPE && signature_type != COSIGNATURE_V1_TYPE {
            return Err(bad(format!(
                "signature type 0x{signature_type:02x} is not Ed25519 (0x01) or cosignature/v1 (0x04)"
            )));
        }
        Ok(Self { name: name.to_owned(), signature_type, public_key })
    }

    /// Parses `<name>+hex(key ID)+base64(type || public key)` (signed-note "Verifier keys"),
    /// checking that the key ID is the one computed from the rest ("The key name and ID MUST
    /// match those used in the signatures").
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        // The base64 part may itself contain `+`: split at the first two only (as Go's
        // note.NewVerifier does).
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key_b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("vkey {text:?} is not <name>+<hex key ID>+<base64 key>")));
        };
        check_key_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(format!("vkey {name}: key ID {id_hex:?} is not 8 lowercase hex digits")));
        }
        let blob = ledger::b64::decode(key_b64).map_err(|_| bad(format!("vkey {name}: key is not base64")))?;
        let (&signature_type, raw) = blob.split_first().ok_or_else(|| bad(format!("vkey {name}: empty key")))?;
        if signature_type != ED25519_NOTE_TYPE && signature_type != COSIGNATURE_V1_TYPE {
            return Err(bad(format!(
                "vkey {name}: signature type 0x{signature_type:02x} is not Ed25519 (0x01) or cosignature/v1 (0x04)"
            )));
        }
        let raw: [u8; 32] =
            raw.try_into().map_err(|_| bad(format!("vkey {name}: an Ed25519 key is 32 bytes, not {}", raw.len())))?;
        let public_key =
            VerifyingKey::from_bytes(&raw).map_err(|_| bad(format!("vkey {name}: not an Ed25519 public key")))?;
        if public_key.is_weak() {
            return Err(bad(format!("vkey {name}: a weak (small-order) Ed25519 key")));
        }
        let vkey = Self { name: name.to_owned(), signature_type, public_key };
        if hex::encode(vkey.key_id()) != id_hex {
            return Err(bad(format!(
                "vkey {name}: key ID {id_hex} does not match the key (computed {})",
                hex::encode(vkey.key_id())
            )));
        }
        Ok(vkey)
    }

    /// The key ID signatures by this key carry.
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, self.signature_type, &self.public_key)
    }

    /// Whether a signature line names this key (name and key ID both match).
    pub fn matches(&self, line: &SignatureLine) -> bool {
        line.name == self.name && line.key_id == self.key_id()
    }
}

impl std::fmt::Display for Vkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut blob = vec![self.signature_type];
        blob.extend_from_slice(self.public_key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex::encode(self.key_id()), ledger::b64::encode(blob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of signed-note's "Verifier keys" section, verified byte for byte.
    #[test]
    fn the_signed_note_example_vkey_verifies_its_note() {
        let vkey = Vkey::parse("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k").unwrap();
        assert_eq!(vkey.signature_type, ED25519_NOTE_TYPE);
        assert_eq!(vkey.to_string(), "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
        let note = SignedNote::parse(
            "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n",
        )
        .unwrap();
        assert!(vkey.matches(&note.signatures[0]));
        let signature = ed25519_dalek::Signature::from_slice(&note.signatures[0].signature).unwrap();
        vkey.public_key.verify_strict(note.text.as_bytes(), &signature).unwrap();
    }

    #[test]
    fn malformed_vkeys_say_what_is_wrong() {
        let good = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        for (text, expected) in [
            ("example.com/foo+530d903a", "is not <name>"),
            ("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
            ("example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "lowercase hex"),
            ("example.com/foo+530d903a+AqyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "not base64"),
            ("+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "empty key name"),
            (&format!("{good}+x"), "not base64"),
        ] {
            let error = Vkey::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
        let mut ecdsa = vec![0x02];
        ecdsa.extend_from_slice(&[7; 32]);
        let error = Vkey::parse(&format!("example.com/foo+530d903a+{}", ledger::b64::encode(ecdsa))).unwrap_err();
        assert!(error.to_string().contains("signature type 0x02"), "{error}");
    }

    #[test]
    fn checkpoint_bodies_are_read_strictly() {
        let root = ledger::b64::encode([7u8; 32]);
        let body = CheckpointBody::parse(&format!("example.com/log\n10\n{root}\next 1\n")).unwrap();
        assert_eq!((body.origin.as_str(), body.size, body.root), ("example.com/log", 10, [7; 32]));
        for (text, expected) in [
            (format!("example.com/log\n010\n{root}\n"), "leading zeroes"),
            (format!("example.com/log\n+1\n{root}\n"), "leading zeroes"),
            ("example.com/log\n10\nAAAA\n".to_owned(), "not 32 bytes"),
            (format!("\n10\n{root}\n"), "no origin"),
            ("example.com/log\n10\n".to_owned(), "no root"),
            (format!("example.com/log\n10\n{root}"), "does not end in a newline"),
        ] {
            let error = CheckpointBody::parse(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn notes_split_at_the_last_blank_line_and_round_trip() {
        let line = SignatureLine { name: "w.example/1".into(), key_id: [1, 2, 3, 4], signature: vec![9; 72] };
        let note = format!("origin\n1\n{}\n\n{}", ledger::b64::encode([0u8; 32]), line.to_line());
        let parsed = SignedNote::parse(&note).unwrap();
        assert_eq!(parsed.signatures, vec![line]);
        assert_eq!(parsed.to_note(), note);
        for (text, expected) in [
            ("origin\n1\n", "no blank line"),
            ("origin\n\n", "no signature lines"),
            ("origin\n\n\u{2014} a AAAAAA==", "does not end in a newline"),
            ("origin\n\n- a AAAAAA==\n", "bad signature line"),
            ("origin\n\n\u{2014} a AAA=\n", "shorter than its 4-byte key ID"),
            ("origin\r\n\n\u{2014} a AAAAAA==\n", "control characters"),
        ] {
            let error = SignedNote::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
