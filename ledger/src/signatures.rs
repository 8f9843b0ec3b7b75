//! Ed25519 batch verification with a per-signature fallback that names the culprit.

use ed25519_dalek::{Signature, VerifyingKey};

/// Batch-verifies `signatures` over `messages` with `keys`; on failure checks them one by one
/// (strictly) and returns the index of the first bad one. `None` means all verify.
pub fn first_bad_signature(messages: &[Vec<u8>], signatures: &[Signature], keys: &[VerifyingKey]) -> Option<usize> {
    if messages.len() > 1 {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        if ed25519_dalek::verify_batch(&refs, signatures, keys).is_ok() {
            return None;
        }
    }
    (0..messages.len()).find(|&i| keys[i].verify_strict(&messages[i], &signatures[i]).is_err())
}
