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

/// Length of [`entry_hash_input`]: the domain, two `u64`s and two hashes.
pub const ENTRY_HASH_INPUT_LEN: usize = ENTRY_DOMAIN.len() + 8 + 8 + 32 + 32;

/// The bytes an entry hash is the BLAKE3 of: `ENTRY_DOMAIN ‖ seq_be64 ‖ recordedAt_be64 ‖
/// prevHash ‖ payloadHash`. A tlog-proof file carries them as its `extra` line, so a verifier
/// can go from an event to the proven record (docs/format.md "Proof files").
pub fn entry_hash_input(
    seq: u64,
    recorded_at: u64,
    prev_hash: &Hash32,
    payload_hash: &Hash32,
) -> [u8; ENTRY_HASH_INPUT_LEN] {
    let mut input = [0u8; ENTRY_HASH_INPUT_LEN];
    let d = ENTRY_DOMAIN.len();
    input[..d].copy_from_slice(ENTRY_DOMAIN);
    input[d..d + 8].copy_from_slice(&seq.to_be_bytes());
    input[d + 8..d + 16].copy_from_slice(&recorded_at.to_be_bytes());
    input[d + 16..d + 48].copy_from_slice(prev_hash);
    input[d + 48..].copy_from_slice(payload_hash);
    input
}

/// The fields of an [`entry_hash_input`]: `(seq, recordedAt, prevHash, payloadHash)`, or
/// `None` if the bytes are not one.
pub fn parse_entry_hash_input(input: &[u8]) -> Option<(u64, u64, Hash32, Hash32)> {
    if input.len() != ENTRY_HASH_INPUT_LEN || !input.starts_with(ENTRY_DOMAIN) {
        return None;
    }
    let rest = &input[ENTRY_DOMAIN.len()..];
    Some((
        u64::from_be_bytes(rest[..8].try_into().ok()?),
        u64::from_be_bytes(rest[8..16].try_into().ok()?),
        rest[16..48].try_into().ok()?,
        rest[48..80].try_into().ok()?,
    ))
}

/// The hash an entry is chained and leafed by.
pub fn entry_hash(seq: u64, recorded_at: u64, prev_hash: &Hash32, payload_hash: &Hash32) -> Hash32 {
    *blake3::hash(&entry_hash_input(seq, recorded_at, prev_hash, payload_hash)).as_bytes()
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
    fn the_entry_hash_input_parses_back() {
        let input = entry_hash_input(3, 9, &[4; 32], &[5; 32]);
        assert_eq!(parse_entry_hash_input(&input), Some((3, 9, [4; 32], [5; 32])));
        assert_eq!(parse_entry_hash_input(&input[1..]), None);
        let mut other = input;
        other[0] ^= 1;
        assert_eq!(parse_entry_hash_input(&other), None);
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
