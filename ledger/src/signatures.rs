//! Ed25519 batch verification with a per-signature fallback that names the culprit.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, VerifyingKey};

/// Batches at least this large are split into one piece per core verified in parallel
/// (`rayon::join`: a piece runs on another core when one is idle, else on this thread, so a
/// busy machine loses only the split's few microseconds). Below it, one batch on the calling
/// thread: a piece of 32 still amortises the multiscalar multiplication.
const SPLIT_MIN: usize = 64;

/// The number of cores, read once per process (on Linux each read parses cgroup files).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1))
}

/// Batch-verifies `signatures` over `messages` with `keys` (large batches split across cores);
/// on failure checks them one by one (strictly) and returns the index of the first bad one.
/// `None` means all verify.
pub fn first_bad_signature<M: AsRef<[u8]> + Sync>(
    messages: &[M],
    signatures: &[Signature],
    keys: &[VerifyingKey],
) -> Option<usize> {
    first_bad(messages, signatures, keys, batch_ok)
}

/// [`first_bad_signature`] on the calling thread only, never split across cores: for a caller
/// that already runs one verification per core (the offline verifier's pool), where pieces
/// handed to other threads would compete with its own.
pub fn first_bad_signature_here<M: AsRef<[u8]>>(
    messages: &[M],
    signatures: &[Signature],
    keys: &[VerifyingKey],
) -> Option<usize> {
    first_bad(messages, signatures, keys, batch_leaf)
}

/// One batch verification (`batch`), then, if it fails, one by one strictly.
fn first_bad<M: AsRef<[u8]>>(
    messages: &[M],
    signatures: &[Signature],
    keys: &[VerifyingKey],
    batch: impl Fn(&[M], &[Signature], &[VerifyingKey]) -> bool,
) -> Option<usize> {
    if messages.len() > 1 && batch(messages, signatures, keys) {
        return None;
    }
    (0..messages.len()).find(|&i| keys[i].verify_strict(messages[i].as_ref(), &signatures[i]).is_err())
}

fn batch_ok<M: AsRef<[u8]> + Sync>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    if messages.len() < SPLIT_MIN || cores() < 2 {
        return batch_leaf(messages, signatures, keys);
    }
    // One piece per core (more pieces only add transcript and setup work), of at least half
    // of SPLIT_MIN.
    split(messages, signatures, keys, (SPLIT_MIN / 2).max(messages.len().div_ceil(cores())))
}

fn split<M: AsRef<[u8]> + Sync>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey], leaf: usize) -> bool {
    if messages.len() <= leaf {
        return batch_leaf(messages, signatures, keys);
    }
    let mid = messages.len() / 2;
    let ((m1, m2), (s1, s2), (k1, k2)) = (messages.split_at(mid), signatures.split_at(mid), keys.split_at(mid));
    let (left, right) = rayon::join(|| split(m1, s1, k1, leaf), || split(m2, s2, k2, leaf));
    left && right
}

fn batch_leaf<M: AsRef<[u8]>>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    let refs: Vec<&[u8]> = messages.iter().map(AsRef::as_ref).collect();
    ed25519_dalek::verify_batch(&refs, signatures, keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    fn signed(n: usize) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        let key = KeyPair::from_seed(&[5; 32]);
        let messages: Vec<Vec<u8>> = (0..n).map(|i| format!("message {i}").into_bytes()).collect();
        let signatures = messages.iter().map(|m| Signature::from_bytes(&key.sign(m))).collect();
        (messages, signatures, vec![key.verifying_key(); n])
    }

    #[test]
    fn finds_the_first_bad_signature_in_small_and_parallel_batches() {
        for n in [1, 2, SPLIT_MIN - 1, SPLIT_MIN, 100, 512, 1500] {
            let (mut messages, signatures, keys) = signed(n);
            assert_eq!(first_bad_signature(&messages, &signatures, &keys), None, "n={n}");
            for bad in [n - 1, n / 2, 0] {
                messages[bad].push(b'!');
            }
            assert_eq!(first_bad_signature(&messages, &signatures, &keys), Some(0), "n={n}");
            messages[0].pop();
            let expected = if n > 2 { n / 2 } else { n - 1 };
            assert_eq!(first_bad_signature(&messages, &signatures, &keys), Some(expected), "n={n}");
        }
    }
}
