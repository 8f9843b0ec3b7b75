//! Offline proofs of inclusion in the C2SP `tlog-proof` file format (`*.tlog-proof`).
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra cmVsZWFzZS1sZWRnZXIvZW50cnkvdjEAAAAA…   <- base64(entry-hash input), see below
//! index 1234                                    <- the entry's seq
//! gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=  <- RFC 6962 audit path, leaf's sibling first
//! B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
//!
//! ledger.example.com/acme                       <- the checkpoint, verbatim (with any witness
//! 109482                                           cosignatures after the ledger's signature)
//! sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=
//!
//! — ledger.example.com/acme hI2DJw…
//! ```
//!
//! The log's record (RFC 6962 leaf input) is the entry's 32-byte entry hash, so the leaf hash is
//! `SHA-256(0x00 ‖ entryHash)`. The `extra` line is what gets an auditor from an event to that
//! record: the entry-hash input ([`crate::hash::entry_hash_input`]: domain, seq, recordedAt,
//! prevHash, payloadHash), whose BLAKE3 is the entry hash, and whose payload hash is the BLAKE3
//! of the event's envelope bytes. Extra data is not authenticated (tlog-proof): it is trusted
//! only because it hashes to the leaf the inclusion proof binds to the signed root, and its seq
//! must be the `index` line.

use ed25519_dalek::VerifyingKey;

use crate::checkpoint::{Checkpoint, SignedCheckpoint};
use crate::error::{CheckpointError, ProofError};
use crate::hash::{digest_eq, parse_entry_hash_input, Hash32};
use crate::merkle::{self, LogHasher, TreeHasher};

/// The first line of every proof file.
pub const HEADER: &str = "c2sp.org/tlog-proof@v1";
/// The file extension tlog-proof recommends.
pub const EXTENSION: &str = "tlog-proof";
/// Upper bound on a proof file's size: 64 path lines and a note with many cosignatures fit.
const MAX_PROOF_BYTES: usize = 64 * 1024;

/// A parsed proof file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// The opaque `extra` data (the ledger writes the entry-hash input).
    pub extra: Option<Vec<u8>>,
    /// The entry's index (seq).
    pub index: u64,
    /// The inclusion proof, leaf's sibling first.
    pub path: Vec<Hash32>,
    /// The checkpoint note, verbatim.
    pub note: String,
}

/// What a proof file proves, once verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenEntry {
    /// The checkpoint the entry is proven against (its ledger signature verified).
    pub checkpoint: SignedCheckpoint,
    /// The entry's seq.
    pub seq: u64,
    /// Its entry hash (the log's record).
    pub entry_hash: Hash32,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// The entry hash of the entry before it.
    pub prev_hash: Hash32,
    /// BLAKE3 of its envelope bytes.
    pub payload_hash: Hash32,
}

/// A proof file that is malformed or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// Not a tlog-proof file.
    #[error("malformed tlog-proof: {0}")]
    Malformed(String),
    /// The checkpoint does not verify under the ledger key.
    #[error("the proof's checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The extra data is not an entry-hash input of the proven index.
    #[error("the proof's extra data: {0}")]
    Extra(String),
    /// The inclusion proof does not bind the entry to the checkpoint's root.
    #[error("entry {index} is not included in the checkpoint's tree of {size}: {cause}")]
    NotIncluded {
        /// The proven index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
        /// Why.
        cause: ProofError,
    },
}

impl TlogProof {
    /// The proof file text.
    pub fn to_text(&self) -> String {
        let mut text = format!("{HEADER}\n");
        if let Some(extra) = &self.extra {
            text.push_str(&format!("extra {}\n", crate::b64::encode(extra)));
        }
        text.push_str(&format!("index {}\n", self.index));
        for node in &self.path {
            text.push_str(&crate::b64::encode(node));
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&self.note);
        text
    }

    /// Parses a proof file strictly (the checkpoint's note shape is checked by
    /// [`Self::verify`]).
    pub fn parse(text: &str) -> Result<Self, TlogProofError> {
        let malformed = |why: String| TlogProofError::Malformed(why);
        if text.len() > MAX_PROOF_BYTES {
            return Err(malformed(format!("longer than {MAX_PROOF_BYTES} bytes")));
        }
        let (head, note) =
            text.split_once("\n\n").ok_or_else(|| malformed("no empty line before the checkpoint".into()))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(HEADER) {
            return Err(malformed(format!("the first line must be {HEADER:?}")));
        }
        let mut line = lines.next().ok_or_else(|| malformed("no index line".into()))?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(crate::b64::decode(data).map_err(|_| malformed("the extra line is not base64".into()))?);
            line = lines.next().ok_or_else(|| malformed("no index line".into()))?;
        }
        let index =
            line.strip_prefix("index ").ok_or_else(|| malformed(format!("expected \"index N\", found {line:?}")))?;
        if index.is_empty() || (index.len() > 1 && index.starts_with('0')) || !index.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(malformed(format!("index {index:?} is not a decimal without leading zeroes")));
        }
        let index = index.parse().map_err(|_| malformed(format!("index {index} out of range")))?;
        let mut path = Vec::new();
        for line in lines {
            let node = crate::b64::decode(line).map_err(|_| {
                malformed(format!(
                    "proof line {line:?} is not base64 (is the empty line before the checkpoint missing?)"
                ))
            })?;
            path.push(node.try_into().map_err(|_| malformed(format!("proof line {line:?} is not a SHA-256 hash")))?);
        }
        if path.len() > 64 {
            return Err(malformed(format!("{} proof lines: no tree of 2^64 entries needs more than 64", path.len())));
        }
        Ok(Self { extra, index, path, note: note.to_owned() })
    }

    /// Verifies the proof: the checkpoint under `ledger_key` (format v2), the extra data as the
    /// entry-hash input of entry `index`, and the inclusion of its entry hash in the
    /// checkpoint's tree. Witness cosignatures on the note are left to the caller's policy.
    pub fn verify(&self, ledger_key: &VerifyingKey) -> Result<ProvenEntry, TlogProofError> {
        let checkpoint = SignedCheckpoint::parse_and_verify(&self.note, ledger_key)?;
        let extra = self
            .extra
            .as_deref()
            .ok_or_else(|| TlogProofError::Extra("missing: the ledger writes the entry-hash input".into()))?;
        let (seq, recorded_at, prev_hash, payload_hash) = parse_entry_hash_input(extra)
            .ok_or_else(|| TlogProofError::Extra("not an entry-hash input (release-ledger/entry/v1 ‖ …)".into()))?;
        if seq != self.index {
            return Err(TlogProofError::Extra(format!("names seq {seq}, the proof is of index {}", self.index)));
        }
        let entry_hash = *blake3::hash(extra).as_bytes();
        let Checkpoint { size, root, .. } = checkpoint.checkpoint;
        merkle::verify_inclusion::<LogHasher>(&LogHasher::hash_leaf(&entry_hash), self.index, size, &self.path, &root)
            .map_err(|cause| TlogProofError::NotIncluded { index: self.index, size, cause })?;
        Ok(ProvenEntry { checkpoint, seq, entry_hash, recorded_at, prev_hash, payload_hash })
    }
}

impl ProvenEntry {
    /// Whether `envelope_bytes` (an event's storage bytes, [`crate::Envelope::to_bytes`]) are
    /// the proven entry's payload.
    pub fn is_payload(&self, envelope_bytes: &[u8]) -> bool {
        digest_eq(&crate::hash::payload_hash(envelope_bytes), &self.payload_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{entry_hash, entry_hash_input};
    use crate::keys::KeyPair;
    use crate::merkle::LeafSlice;

    /// Seven entries chained as the store chains them, a proof of `index` at size 7.
    fn sample(index: u64) -> (TlogProof, KeyPair) {
        let key = KeyPair::from_seed(&[5; 32]);
        let (mut prev, mut inputs, mut leaves) = ([0u8; 32], Vec::new(), Vec::new());
        for seq in 0..7u64 {
            let input = entry_hash_input(seq, 100 + seq, &prev, &[seq as u8; 32]);
            prev = entry_hash(seq, 100 + seq, &prev, &[seq as u8; 32]);
            inputs.push(input);
            leaves.push(LogHasher::hash_leaf(&prev));
        }
        let root = merkle::root_of_leaves::<LogHasher>(&leaves);
        let note = Checkpoint { origin: "ledger.example.com/t".into(), size: 7, root }.sign(&key).note;
        let path = merkle::inclusion_path::<LogHasher, _>(&LeafSlice::<LogHasher>(&leaves), index, 7).unwrap();
        (TlogProof { extra: Some(inputs[index as usize].to_vec()), index, path, note }, key)
    }

    #[test]
    fn a_proof_file_round_trips_and_verifies() {
        for index in 0..7 {
            let (proof, key) = sample(index);
            let text = proof.to_text();
            assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
            assert!(text.contains(&format!("\nindex {index}\n")), "{text}");
            let parsed = TlogProof::parse(&text).unwrap();
            assert_eq!(parsed, proof);
            let proven = parsed.verify(&key.verifying_key()).unwrap();
            assert_eq!((proven.seq, proven.recorded_at, proven.payload_hash), (index, 100 + index, [index as u8; 32]));
        }
    }

    #[test]
    fn a_proof_that_does_not_bind_is_refused() {
        let (proof, key) = sample(3);
        let public = key.verifying_key();
        let other_index = TlogProof { index: 4, ..proof.clone() };
        assert!(matches!(other_index.verify(&public), Err(TlogProofError::Extra(_))));
        let mut other_extra = proof.clone();
        other_extra.extra.as_mut().unwrap()[40] ^= 1;
        assert!(matches!(other_extra.verify(&public), Err(TlogProofError::NotIncluded { .. })));
        let mut bad_path = proof.clone();
        bad_path.path[0][0] ^= 1;
        assert!(matches!(bad_path.verify(&public), Err(TlogProofError::NotIncluded { .. })));
        let no_extra = TlogProof { extra: None, ..proof.clone() };
        assert!(matches!(no_extra.verify(&public), Err(TlogProofError::Extra(_))));
        let other_key = KeyPair::from_seed(&[6; 32]).verifying_key();
        assert!(matches!(proof.verify(&other_key), Err(TlogProofError::Checkpoint(_))));
    }

    #[test]
    fn malformed_files_are_refused_by_line() {
        let (proof, _) = sample(2);
        let text = proof.to_text();
        for (bad, why) in [
            (text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1), "first line"),
            (text.replacen("\nindex 2\n", "\nindex 02\n", 1), "leading zeroes"),
            (text.replacen("\nindex 2\n", "\nseq 2\n", 1), "expected \"index N\""),
            (text.replacen("\n\n", "\n", 1), "empty line before the checkpoint missing"),
            (text.replacen("\nindex 2\n", "\nindex 2\nnot-base64!\n", 1), "not base64"),
            (text.replacen("\nindex 2\n", "\nindex 2\nAAAA\n", 1), "not a SHA-256 hash"),
        ] {
            let err = TlogProof::parse(&bad).unwrap_err();
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
    }
}
