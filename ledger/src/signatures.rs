//! Ed25519 batch verification with a per-signature fallback that names the culprit.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, VerifyingKey};

/// Batches at least this large are split across cores. It is above the verifier's own chunk
/// (256), whose chunks are already verified in parallel.
const PARALLEL_MIN: usize = 512;

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
    if messages.len() > 1 && batch_ok(messages, signatures, keys) {
        return None;
    }
    (0..messages.len()).find(|&i| keys[i].verify_strict(messages[i].as_ref(), &signatures[i]).is_err())
}

fn batch_ok<M: AsRef<[u8]> + Sync>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    let verify = |range: std::ops::Range<usize>| {
        let refs: Vec<&[u8]> = messages[range.clone()].iter().map(AsRef::as_ref).collect();
        ed25519_dalek::verify_batch(&refs, &signatures[range.clone()], &keys[range]).is_ok()
    };
    let workers = cores();
    if messages.len() < PARALLEL_MIN || workers < 2 {
        return verify(0..messages.len());
    }
    let chunk = messages.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..messages.len())
            .step_by(chunk)
            .map(|start| {
                let range = start..(start + chunk).min(messages.len());
                scope.spawn(move || verify(range))
            })
            .collect();
        // A panicked worker counts as a failed batch: the strict pass then decides.
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    })
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
        for n in [1, 2, 100, PARALLEL_MIN, 1500] {
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
