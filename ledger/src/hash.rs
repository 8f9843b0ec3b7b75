//! Entry and payload hashing (DESIGN §3.2).
//!
//! ```text
//! payloadHash = BLAKE3(envelope_bytes)
//! entryHash   = BLAKE3("release-ledger/entry/v1" || seq_be64 || recordedAt_be64 || prevHash || payloadHash)
//! ```
//! The entry commits to the *hash* of its envelope, never to the bytes, which is what lets a
//! payload be redacted later while every chain link and proof still verifies.

/// A 32-byte digest (BLAKE3 for the log, SHA-256 for key ids and the RFC 6962 test instance).
pub type Hash32 = [u8; 32];

/// Domain-separation prefix of the entry hash.
pub const ENTRY_DOMAIN: &[u8] = b"release-ledger/entry/v1";

/// The `prevHash` of the first entry (seq 0) of every tenant log.
pub const GENESIS_PREV_HASH: Hash32 = [0u8; 32];

/// `BLAKE3(envelope_bytes)`, where `envelope_bytes` is [`crate::Envelope::to_bytes`].
pub fn payload_hash(envelope_bytes: &[u8]) -> Hash32 {
    *blake3::hash(envelope_bytes).as_bytes()
}

/// The hash an entry is chained and leafed by.
pub fn entry_hash(seq: u64, recorded_at: u64, prev_hash: &Hash32, payload_hash: &Hash32) -> Hash32 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ENTRY_DOMAIN);
    hasher.update(&seq.to_be_bytes());
    hasher.update(&recorded_at.to_be_bytes());
    hasher.update(prev_hash);
    hasher.update(payload_hash);
    *hasher.finalize().as_bytes()
}

/// Constant-time equality of two digests.
pub fn digest_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_hash_commits_to_every_field() {
        let base = entry_hash(7, 1_000, &[1; 32], &[2; 32]);
        assert_ne!(base, entry_hash(8, 1_000, &[1; 32], &[2; 32]));
        assert_ne!(base, entry_hash(7, 1_001, &[1; 32], &[2; 32]));
        assert_ne!(base, entry_hash(7, 1_000, &[3; 32], &[2; 32]));
        assert_ne!(base, entry_hash(7, 1_000, &[1; 32], &[3; 32]));
        assert_eq!(base, entry_hash(7, 1_000, &[1; 32], &[2; 32]));
    }

    #[test]
    fn entry_hash_matches_the_documented_layout() {
        let mut input = Vec::new();
        input.extend_from_slice(b"release-ledger/entry/v1");
        input.extend_from_slice(&3u64.to_be_bytes());
        input.extend_from_slice(&9u64.to_be_bytes());
        input.extend_from_slice(&[4; 32]);
        input.extend_from_slice(&[5; 32]);
        assert_eq!(entry_hash(3, 9, &[4; 32], &[5; 32]), *blake3::hash(&input).as_bytes());
    }
}
