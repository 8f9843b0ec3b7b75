//! Ed25519 `cosignature/v1` (C2SP tlog-cosignature, signature type `0x04`) and the log's plain
//! Ed25519 note signature (signature type `0x01`).
//!
//! A cosignature line is `— <cosigner name> base64(key ID || u64 timestamp BE || Ed25519
//! signature)`, the signature over
//!
//! ```text
//! cosignature/v1
//! time <timestamp>
//! <the whole checkpoint note text, extension lines included>
//! ```

use ed25519_dalek::{Signature, VerifyingKey};
use ledger::KeyPair;

use crate::note::{FormatError, SignatureLine, Vkey, COSIGNATURE_V1_TYPE, ED25519_NOTE_TYPE};

/// tlog-cosignature: the timestamp "MUST NOT exceed 2^63 - 1".
pub const MAX_TIMESTAMP: u64 = (1 << 63) - 1;

/// Why a signature line does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The line names another key (name or key ID differs).
    #[error("the signature line is not by {0}")]
    OtherKey(String),
    /// The vkey is of another signature type than the one checked.
    #[error("{name} is a vkey of signature type 0x{actual:02x}, not 0x{expected:02x}")]
    WrongType {
        /// The key name.
        name: String,
        /// The type checked for.
        expected: u8,
        /// The vkey's type.
        actual: u8,
    },
    /// The signature blob has the wrong length.
    #[error("the signature of {name} is {len} bytes, not {expected}")]
    Length {
        /// The key name.
        name: String,
        /// Its length after the key ID.
        len: usize,
        /// The length the type has.
        expected: usize,
    },
    /// The cosignature's timestamp is zero or above 2^63 - 1.
    #[error("the cosignature of {name} has timestamp {timestamp}, outside 1..=2^63-1")]
    Timestamp {
        /// The key name.
        name: String,
        /// The timestamp.
        timestamp: u64,
    },
    /// Ed25519 verification failed.
    #[error("the signature of {0} does not verify")]
    Invalid(String),
}

/// The message an Ed25519 `cosignature/v1` signs: "two newline (U+000A) terminated lines (one
/// header line and one timestamp line) followed by the whole note body of the cosigned
/// checkpoint (including the final newline, but not including any signature lines)".
pub fn cosigned_message(text: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{text}")
}

/// A witness's signing identity: its cosigner name and Ed25519 key.
#[derive(Debug)]
pub struct Cosigner {
    name: String,
    key: KeyPair,
    vkey: Vkey,
}

impl Cosigner {
    /// A cosigner called `name` (a schema-less URL, as tlog-cosignature recommends).
    pub fn new(name: &str, key: KeyPair) -> Result<Self, FormatError> {
        let vkey = Vkey::new(name, COSIGNATURE_V1_TYPE, key.verifying_key())?;
        Ok(Self { name: name.to_owned(), key, vkey })
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The vkey (type `0x04`) policies list this cosigner by.
    pub fn vkey(&self) -> &Vkey {
        &self.vkey
    }

    /// A `cosignature/v1` line over the note text `text` at `timestamp` (POSIX seconds).
    pub fn cosign(&self, text: &str, timestamp: u64) -> SignatureLine {
        let signature = self.key.sign(cosigned_message(text, timestamp).as_bytes());
        let mut blob = Vec::with_capacity(72);
        blob.extend_from_slice(&timestamp.to_be_bytes());
        blob.extend_from_slice(&signature);
        SignatureLine { name: self.name.clone(), key_id: self.vkey.key_id(), signature: blob }
    }
}

/// Verifies a `cosignature/v1` line by `vkey` over the note text `text`; returns its
/// timestamp.
pub fn verify_cosignature(vkey: &Vkey, text: &str, line: &SignatureLine) -> Result<u64, SignatureError> {
    check_key(vkey, COSIGNATURE_V1_TYPE, line)?;
    if line.signature.len() != 72 {
        return Err(SignatureError::Length { name: line.name.clone(), len: line.signature.len(), expected: 72 });
    }
    let (time, signature) = line.signature.split_at(8);
    let mut be = [0u8; 8];
    be.copy_from_slice(time);
    let timestamp = u64::from_be_bytes(be);
    if timestamp == 0 || timestamp > MAX_TIMESTAMP {
        return Err(SignatureError::Timestamp { name: line.name.clone(), timestamp });
    }
    ed25519(&vkey.public_key, cosigned_message(text, timestamp).as_bytes(), signature, &line.name)?;
    Ok(timestamp)
}

/// Verifies a plain Ed25519 note signature (type `0x01`, a log's) by `vkey` over `text`.
pub fn verify_note_signature(vkey: &Vkey, text: &str, line: &SignatureLine) -> Result<(), SignatureError> {
    check_key(vkey, ED25519_NOTE_TYPE, line)?;
    if line.signature.len() != 64 {
        return Err(SignatureError::Length { name: line.name.clone(), len: line.signature.len(), expected: 64 });
    }
    ed25519(&vkey.public_key, text.as_bytes(), &line.signature, &line.name)
}

fn check_key(vkey: &Vkey, expected: u8, line: &SignatureLine) -> Result<(), SignatureError> {
    if vkey.signature_type != expected {
        return Err(SignatureError::WrongType { name: vkey.name.clone(), expected, actual: vkey.signature_type });
    }
    if !vkey.matches(line) {
        return Err(SignatureError::OtherKey(vkey.name.clone()));
    }
    Ok(())
}

fn ed25519(key: &VerifyingKey, message: &[u8], signature: &[u8], name: &str) -> Result<(), SignatureError> {
    let signature = Signature::from_slice(signature).map_err(|_| SignatureError::Invalid(name.to_owned()))?;
    key.verify_strict(message, &signature).map_err(|_| SignatureError::Invalid(name.to_owned()))
}

/// The log's own signature line over `text`: what a test (or a log built on this crate) puts
/// under a checkpoint. The ledger signs its checkpoints itself (`ledger::checkpoint`).
pub fn sign_note(origin: &str, key: &KeyPair, text: &str) -> SignatureLine {
    let key_id = crate::note::key_id(origin, ED25519_NOTE_TYPE, &key.verifying_key());
    SignatureLine { name: origin.to_owned(), key_id, signature: key.sign(text.as_bytes()).to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    #[test]
    fn the_signed_message_is_the_one_tlog_cosignature_shows() {
        assert_eq!(
            cosigned_message(TEXT, 1679315147),
            "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
    }

    #[test]
    fn a_cosignature_verifies_and_any_change_breaks_it() {
        let cosigner = Cosigner::new("witness.example/w1", KeyPair::from_seed(&[5; 32])).unwrap();
        let line = cosigner.cosign(TEXT, 1679315147);
        assert_eq!(line.signature.len(), 72);
        assert_eq!(&line.signature[..8], &1679315147u64.to_be_bytes());
        assert_eq!(verify_cosignature(cosigner.vkey(), TEXT, &line), Ok(1679315147));
        // The vkey round-trips through its text form.
        let vkey = Vkey::parse(&cosigner.vkey().to_string()).unwrap();
        assert_eq!(verify_cosignature(&vkey, TEXT, &line), Ok(1679315147));

        let mut later = line.clone();
        later.signature[7] ^= 1;
        assert_eq!(verify_cosignature(&vkey, TEXT, &later), Err(SignatureError::Invalid("witness.example/w1".into())));
        assert!(verify_cosignature(&vkey, &TEXT.replace("20852163", "20852164"), &line).is_err());
        let mut zero = line.clone();
        zero.signature[..8].copy_from_slice(&[0; 8]);
        assert!(matches!(verify_cosignature(&vkey, TEXT, &zero), Err(SignatureError::Timestamp { .. })));
        let other = Cosigner::new("witness.example/w2", KeyPair::from_seed(&[5; 32])).unwrap();
        assert_eq!(
            verify_cosignature(other.vkey(), TEXT, &line),
            Err(SignatureError::OtherKey("witness.example/w2".into()))
        );
        // A cosignature is not a note signature: the type byte is part of the key ID.
        let as_note_key = Vkey::new("witness.example/w1", ED25519_NOTE_TYPE, vkey.public_key).unwrap();
        assert!(verify_note_signature(&as_note_key, TEXT, &line).is_err());
    }

    #[test]
    fn a_note_signature_verifies_with_the_log_vkey_only() {
        let key = KeyPair::from_seed(&[6; 32]);
        let line = sign_note("example.com/behind-the-sofa", &key, TEXT);
        let vkey = Vkey::new("example.com/behind-the-sofa", ED25519_NOTE_TYPE, key.verifying_key()).unwrap();
        assert_eq!(verify_note_signature(&vkey, TEXT, &line), Ok(()));
        assert_eq!(line.key_id, ledger::checkpoint::note_key_id("example.com/behind-the-sofa", &key.verifying_key()));
        assert!(matches!(verify_cosignature(&vkey, TEXT, &line), Err(SignatureError::WrongType { .. })));
    }
}
