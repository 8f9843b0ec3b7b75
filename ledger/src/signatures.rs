//! Ed25519 batch verification with a per-signature fallback that names the culprit.

use std::sync::OnceLock;

use ed25519_dalek::{Signature, VerifyingKey};

/// Batches at least this large are split into one piece per core verified in parallel
/// (`rayon::join`: a piece runs on another core when one is idle, else on this thread, so a
/// busy machine loses only the split's few microseconds). Below it, one batch on the calling
/// thread: a piece of 32 still amortises the multiscalar multiplication.
pub(crate) const SPLIT_MIN: usize = 64;

/// The number of cores, read once per process (on Linux each read parses cgroup files).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(usize::from).unwrap_or(1))
}

/// Builds the thread pool that checks and verifies large requests in pieces (rayon's global
/// pool, one thread per core, named `ledger-verify-N`), if it is not built yet; returns whether
/// this call built it. A long-running server calls it at its start, from an ordinary thread:
/// built lazily instead, the pool would be made by whichever thread first checked a large
/// request, and its threads would inherit that thread's scheduling policy. The governance
/// worker, which is `SCHED_BATCH`, appends its owed decisions up to 256 at a time through the
/// same checks, so after a restart with such a backlog every client request's pieces would run
/// `SCHED_BATCH` too.
pub fn build_verify_pool() -> bool {
    rayon::ThreadPoolBuilder::new().thread_name(|i| format!("ledger-verify-{i}")).build_global().is_ok()
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

/// Whether each signature verifies, on the calling thread: one batch verification
/// ([`first_bad_signature`]'s, never split), and only if it fails each signature alone,
/// strictly. For signatures of unrelated requests verified together, each of which is
/// answered on its own.
pub fn each_valid<M: AsRef<[u8]>>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> Vec<bool> {
    if messages.len() > 1 && batch_leaf(messages, signatures, keys) {
        return vec![true; messages.len()];
    }
    (0..messages.len()).map(|i| keys[i].verify_strict(messages[i].as_ref(), &signatures[i]).is_ok()).collect()
}

/// One batch verification on the calling thread, never split (a single signature strictly, as
/// [`first_bad_signature`] checks it): true when every signature verifies. A false answer
/// names no culprit: [`first_bad_strictly`] does.
pub(crate) fn batch_verifies<M: AsRef<[u8]>>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    match (messages, signatures, keys) {
        ([message], [signature], [key]) => key.verify_strict(message.as_ref(), signature).is_ok(),
        _ => batch_leaf(messages, signatures, keys),
    }
}

/// The first signature that does not verify alone, strictly, with no batch first: for
/// signatures whose batch already failed.
pub(crate) fn first_bad_strictly<M: AsRef<[u8]>>(
    messages: &[M],
    signatures: &[Signature],
    keys: &[VerifyingKey],
) -> Option<usize> {
    (0..messages.len()).find(|&i| keys[i].verify_strict(messages[i].as_ref(), &signatures[i]).is_err())
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
    first_bad_strictly(messages, signatures, keys)
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
    verify_batch_by_key(messages, signatures, keys)
}

/// One Ed25519 batch verification: the equation of `ed25519_dalek::verify_batch` (2.x), with
/// the terms of the signatures one key made summed before the multiscalar multiplication, and
/// the coefficients drawn from BLAKE3 instead of a merlin transcript. True when the whole batch
/// verifies.
///
/// The curve arithmetic is curve25519-dalek 5's, not the 4.1 that ed25519-dalek 2 brings: its
/// AVX-512 IFMA backend (chosen at run time, see `.cargo/config.toml`) does the multiscalar
/// multiplication in about half the time of 4.1's AVX2 one.
///
/// ed25519-dalek checks `[-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢhᵢ]Aᵢ = 0` (cofactorless), each `zᵢ` a
/// 128-bit scalar, and each `sᵢ` required canonical. The last sum is computed here as
/// `Σ_A [Σ_{i: Aᵢ = A} zᵢhᵢ]A`: the same group element, with one point per distinct key instead
/// of one per signature (a batch of 64 signatures by one key multiplies 66 points instead of
/// 129). A failed batch is then checked one by one, strictly, by [`first_bad`].
///
/// **The coefficients** ([`coefficients`]) are, as in ed25519-dalek, a hash of the whole batch:
/// of every `hᵢ = H(Rᵢ‖Aᵢ‖Mᵢ)` (which binds `Rᵢ`, `Aᵢ` and `Mᵢ`) and every `sᵢ`, with no
/// outside randomness, so a signer who wants a batch whose errors cancel must find one whose
/// hash happens to give coefficients that cancel them, which is as hard as for independent
/// random 128-bit coefficients. ed25519-dalek draws them from a merlin transcript (keccak, about
/// one permutation per signature: about a ninth of a batch's time once the curve arithmetic
/// had IFMA); here BLAKE3 in derive-key mode hashes the same values in one pass and its output
/// stream gives the coefficients, a few hundred cycles per signature. Every batch of valid
/// signatures verifies either way, and a batch with a bad signature fails either way except
/// with probability about 2⁻¹²⁸ — but for a signature that `verify_strict` refuses only for a
/// small-order component of `Rᵢ` or `A`, which the cofactorless equation lets through whenever
/// its coefficient is a multiple of that component's order (one time in two to eight, for either
/// way of drawing the coefficients). Which such batches pass therefore differs from
/// ed25519-dalek's, as it already differed between a request's batch and an auditor's (they
/// group signatures differently); the tests check that both equations agree on every batch
/// without such components and that a torsioned signature passes each only by chance.
fn verify_batch_by_key<M: AsRef<[u8]>>(messages: &[M], signatures: &[Signature], keys: &[VerifyingKey]) -> bool {
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
    use sha2::{Digest, Sha512};

    assert!(
        messages.len() == signatures.len() && signatures.len() == keys.len(),
        "one message, signature and key each"
    );
    let hrams: Vec<[u8; 64]> = (0..signatures.len())
        .map(|i| {
            let mut h = Sha512::new();
            h.update(signatures[i].r_bytes());
            h.update(keys[i].as_bytes());
            h.update(messages[i].as_ref());
            h.finalize().into()
        })
        .collect();
    let coefficients = coefficients(&hrams, signatures);

    let mut b_coefficient = Scalar::ZERO;
    let mut zs = Vec::with_capacity(signatures.len());
    // (key, point, Σ zᵢhᵢ) per distinct key, in first-seen order; `slot` finds a key's entry.
    let mut by_key: Vec<(&[u8; 32], EdwardsPoint, Scalar)> = Vec::new();
    let mut slot: std::collections::HashMap<&[u8; 32], usize> = std::collections::HashMap::new();
    let mut last = usize::MAX;
    for (((signature, hram), key), z) in signatures.iter().zip(&hrams).zip(keys).zip(coefficients) {
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes())) else {
            return false;
        };
        let z = Scalar::from(z);
        b_coefficient += z * s;
        let zh = z * Scalar::from_bytes_mod_order_wide(hram);
        // Consecutive signatures by one signer, the common case, skip the map.
        if by_key.get(last).is_none_or(|(bytes, _, _)| *bytes != key.as_bytes()) {
            last = match slot.get(key.as_bytes()) {
                Some(&index) => index,
                None => {
                    // A key ed25519-dalek parsed always decompresses; fail closed all the same
                    // (the caller then checks each signature strictly).
                    let Some(point) = key_point(key.as_bytes()) else {
                        return false;
                    };
                    by_key.push((key.as_bytes(), point, Scalar::ZERO));
                    slot.insert(key.as_bytes(), by_key.len() - 1);
                    by_key.len() - 1
                }
            };
        }
        by_key[last].2 += zh;
        zs.push(z);
    }
    let points = std::iter::once(Some(curve25519_dalek::constants::ED25519_BASEPOINT_POINT))
        .chain(signatures.iter().map(|signature| CompressedEdwardsY(*signature.r_bytes()).decompress()))
        .chain(by_key.iter().map(|(_, point, _)| Some(*point)));
    let scalars = std::iter::once(-b_coefficient).chain(zs).chain(by_key.iter().map(|(_, _, zh)| *zh));
    EdwardsPoint::optional_multiscalar_mul(scalars, points).is_some_and(|sum| sum.is_identity())
}

/// The curve point of a verifying key (its compressed encoding), for curve25519-dalek 5.
/// ed25519-dalek 2's `VerifyingKey` holds its point in curve25519-dalek 4.1's type, so each
/// thread keeps the points it decompressed (2.9 µs each): a batch of single events from 64
/// clients names 64 keys, and decompressing each again per batch would add as much work as
/// the signatures' own R. The points of at most [`KEY_POINTS`] keys are kept per thread; the
/// cache is emptied when full.
fn key_point(key: &[u8; 32]) -> Option<curve25519_dalek::edwards::EdwardsPoint> {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};

    thread_local! {
        static POINTS: RefCell<HashMap<[u8; 32], EdwardsPoint>> = RefCell::new(HashMap::new());
    }
    POINTS.with_borrow_mut(|points| {
        if let Some(point) = points.get(key) {
            return Some(*point);
        }
        let point = CompressedEdwardsY(*key).decompress()?;
        if points.len() >= KEY_POINTS {
            points.clear();
        }
        points.insert(*key, point);
        Some(point)
    })
}

/// Keys whose curve points one thread keeps for [`verify_batch_by_key`]: about 200 KiB per
/// thread when full. Keys are agents and people, a few hundred in a large deployment; a store
/// with more active keys decompresses some again (2.9 µs per key per batch).
const KEY_POINTS: usize = 1024;

/// The BLAKE3 context of [`coefficients`]: a hash for this use only.
const COEFFICIENTS_CONTEXT: &str = "release-ledger 2026-12-07 ed25519 batch verification coefficients";

/// The 128-bit coefficients `zᵢ` of one batch ([`verify_batch_by_key`]): BLAKE3 in derive-key
/// mode ([`COEFFICIENTS_CONTEXT`]) over the batch's size (u64, little-endian), every `hᵢ` in
/// order and every `sᵢ` in order, all fixed-size; its output stream, read 16 bytes per
/// signature (little-endian), gives `z₁, z₂, …`.
fn coefficients(hrams: &[[u8; 64]], signatures: &[Signature]) -> Vec<u128> {
    let mut input = Vec::with_capacity(8 + hrams.len() * 64 + signatures.len() * 32);
    input.extend_from_slice(&(signatures.len() as u64).to_le_bytes());
    for hram in hrams {
        input.extend_from_slice(hram);
    }
    for signature in signatures {
        input.extend_from_slice(signature.s_bytes());
    }
    let mut output = vec![0u8; 16 * signatures.len()];
    blake3::Hasher::new_derive_key(COEFFICIENTS_CONTEXT).update(&input).finalize_xof().fill(&mut output);
    output.chunks_exact(16).map(|z| u128::from_le_bytes(z.try_into().expect("16 bytes"))).collect()
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

    /// Signatures by three keys (one of them with a small-order component added, so it has
    /// no signer), and ways to spoil one: the cases where batch equations can differ.
    fn mixed_batch(picks: &[(u8, u8)]) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::CompressedEdwardsY;
        let pairs = [KeyPair::from_seed(&[1; 32]), KeyPair::from_seed(&[2; 32]), KeyPair::from_seed(&[3; 32])];
        let point = CompressedEdwardsY(pairs[0].verifying_key().to_bytes()).decompress().unwrap();
        let torsion_key = VerifyingKey::from_bytes(&(point + EIGHT_TORSION[4]).compress().to_bytes()).unwrap();
        let (mut messages, mut signatures, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for (i, &(signer, spoil)) in picks.iter().enumerate() {
            let pair = &pairs[usize::from(signer) % pairs.len()];
            let mut message = format!("event {i} by {signer}").into_bytes();
            let mut bytes = pair.sign(&message);
            let mut key = pair.verifying_key();
            match spoil {
                0 => message.push(b'!'),
                1 => bytes[5] ^= 1,
                2 => bytes[40] ^= 1,
                // s + ℓ: the same residue, not canonical.
                3 => {
                    let s = curve25519_dalek::scalar::Scalar::from_canonical_bytes(bytes[32..].try_into().unwrap())
                        .unwrap();
                    let mut wide = [0u8; 32];
                    // ℓ, little-endian.
                    let l: [u8; 32] = [
                        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
                        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
                    ];
                    let mut carry = 0u16;
                    for (j, byte) in wide.iter_mut().enumerate() {
                        let sum = u16::from(s.to_bytes()[j]) + u16::from(l[j]) + carry;
                        *byte = sum as u8;
                        carry = sum >> 8;
                    }
                    bytes[32..].copy_from_slice(&wide);
                }
                // R plus a point of order 2 or 8: a valid encoding, a wrong R.
                4 | 5 => {
                    let torsion = EIGHT_TORSION[if spoil == 4 { 4 } else { 1 }];
                    let r = CompressedEdwardsY(bytes[..32].try_into().unwrap()).decompress().unwrap();
                    bytes[..32].copy_from_slice(&(r + torsion).compress().to_bytes());
                }
                6 => key = pairs[(usize::from(signer) + 1) % pairs.len()].verifying_key(),
                7 => key = torsion_key,
                _ => {}
            }
            messages.push(message);
            signatures.push(Signature::from_bytes(&bytes));
            keys.push(key);
        }
        (messages, signatures, keys)
    }

    /// The spoils of [`mixed_batch`] that add a small-order component (to R, or to the key):
    /// the cofactorless equation lets them through when the coefficient is a multiple of its
    /// order, so whether a batch holding one passes depends on the coefficients.
    const TORSIONED: [u8; 3] = [4, 5, 7];

    proptest::proptest! {
        /// Summing one key's terms and drawing the coefficients from BLAKE3 change how the
        /// equation is computed, not what it decides: every batch without a small-order
        /// component is accepted or rejected as `ed25519_dalek::verify_batch` does, which is
        /// as the signatures verify one by one, strictly.
        #[test]
        fn the_batch_check_decides_as_ed25519_dalek_and_as_each_signature_alone(
            picks in proptest::collection::vec((0u8..3, 0u8..100), 1..48),
        ) {
            let (messages, signatures, keys) = mixed_batch(&picks);
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let ours = verify_batch_by_key(&messages, &signatures, &keys);
            if !picks.iter().any(|(_, spoil)| TORSIONED.contains(spoil)) {
                let dalek = ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok();
                let strictly = first_bad_strictly(&messages, &signatures, &keys).is_none();
                proptest::prop_assert_eq!(ours, dalek);
                proptest::prop_assert_eq!(ours, strictly);
            }
        }
    }

    /// A batch holding one signature whose R carries a point of order 2 passes the
    /// cofactorless equation exactly when that signature's coefficient is even: by chance,
    /// with either way of drawing the coefficients, and not always (64 batches, each with
    /// other coefficients: all alike would happen one time in 2⁶³).
    #[test]
    fn a_torsioned_r_passes_a_batch_only_by_chance_as_with_ed25519_dalek() {
        let (mut ours, mut dalek) = ([0; 2], [0; 2]);
        for n in 1..=64u8 {
            let message = [b"torsioned in a batch ".as_slice(), &[n]].concat();
            let (signature, key) = torsioned_signature(&message, n);
            let (mut messages, mut signatures, mut keys) = signed(2 + usize::from(n % 9));
            let at = usize::from(n) % messages.len();
            messages.insert(at, message);
            signatures.insert(at, signature);
            keys.insert(at, key);
            let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            ours[usize::from(verify_batch_by_key(&messages, &signatures, &keys))] += 1;
            dalek[usize::from(ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_ok())] += 1;
            assert_eq!(first_bad_strictly(&messages, &signatures, &keys), Some(at), "batch {n}");
        }
        assert!(ours[0] > 0 && ours[1] > 0, "ours: {ours:?} (rejected, accepted)");
        assert!(dalek[0] > 0 && dalek[1] > 0, "ed25519-dalek: {dalek:?} (rejected, accepted)");
    }

    /// The coefficients are 128-bit values fixed by the batch: the same batch gives the same
    /// ones, and changing any `hᵢ` or `sᵢ` (or the batch's length) changes all of them.
    #[test]
    fn the_coefficients_are_a_hash_of_every_hram_and_s() {
        let (messages, signatures, keys) = signed(9);
        let hram = |i: usize| -> [u8; 64] {
            use sha2::{Digest, Sha512};
            Sha512::new()
                .chain_update(signatures[i].r_bytes())
                .chain_update(keys[i].as_bytes())
                .chain_update(&messages[i])
                .finalize()
                .into()
        };
        let hrams: Vec<[u8; 64]> = (0..9).map(hram).collect();
        let z = coefficients(&hrams, &signatures);
        assert_eq!(z.len(), 9);
        assert_eq!(z, coefficients(&hrams, &signatures));
        assert!(z.iter().any(|z| *z > u128::from(u64::MAX)), "128-bit coefficients: {z:?}");
        let all_differ = |other: &[u128]| z.iter().zip(other).all(|(a, b)| a != b);
        let mut spoilt = hrams.clone();
        spoilt[8][63] ^= 1;
        assert!(all_differ(&coefficients(&spoilt, &signatures)));
        let mut other_s = signatures.clone();
        let mut bytes = other_s[0].to_bytes();
        bytes[40] ^= 1;
        other_s[0] = Signature::from_bytes(&bytes);
        assert!(all_differ(&coefficients(&hrams, &other_s)));
        assert!(all_differ(&coefficients(&hrams[..8], &signatures[..8])));
    }

    /// Both sizes of batch: curve25519-dalek multiplies fewer than 190 points by Straus' method
    /// and more by Pippenger's, each with its own vector code (IFMA on CPUs that have it), so a
    /// spoilt signature is looked for through both.
    #[test]
    fn a_batch_of_one_keys_signatures_verifies_and_any_spoilt_one_fails_it() {
        for (spoil, len) in (0..8u8).flat_map(|spoil| [(spoil, 70), (spoil, 250)]) {
            let mut picks = vec![(0u8, 99u8); len];
            picks.extend([(1, 99), (0, 99), (2, 99)]);
            let (messages, signatures, keys) = mixed_batch(&picks);
            assert!(verify_batch_by_key(&messages, &signatures, &keys));
            picks[33].1 = spoil;
            let (messages, signatures, keys) = mixed_batch(&picks);
            if !TORSIONED.contains(&spoil) {
                // The deterministic spoils always fail; a small-order component only mostly
                // (a_torsioned_r_passes_a_batch_only_by_chance_as_with_ed25519_dalek).
                let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
                assert!(ed25519_dalek::verify_batch(&refs, &signatures, &keys).is_err(), "spoil {spoil}, {len}");
                assert!(!verify_batch_by_key(&messages, &signatures, &keys), "spoil {spoil}, {len}");
            }
        }
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

    /// A signature whose R carries a point of order 2, made with the secret key (so H(R‖A‖M)
    /// covers the torsioned R): `verify_strict` always refuses it, the cofactorless batch
    /// equation accepts it whenever its coefficient is even.
    fn torsioned_signature(message: &[u8], nonce: u8) -> (Signature, VerifyingKey) {
        use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};
        let a = Scalar::from_bytes_mod_order([7; 32]);
        let r = Scalar::from_bytes_mod_order([nonce; 32]);
        let public = (a * B).compress();
        let big_r = (r * B + EIGHT_TORSION[4]).compress();
        let h = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(public.as_bytes())
                .chain_update(message)
                .finalize()
                .into(),
        );
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(big_r.as_bytes());
        bytes[32..].copy_from_slice((r + h * a).as_bytes());
        (Signature::from_bytes(&bytes), VerifyingKey::from_bytes(public.as_bytes()).unwrap())
    }

    /// `batch_verifies` checks a lone signature strictly, as `first_bad_signature` does: a
    /// torsioned signature the batch equation accepts is refused every time. A batch is checked
    /// as one, and `first_bad_strictly` names the first signature that fails alone.
    #[test]
    fn batch_verifies_a_lone_signature_strictly_and_first_bad_strictly_names_the_first() {
        let mut accepted_by_the_equation = 0;
        for nonce in 1..=32u8 {
            let message = [b"torsioned ".as_slice(), &[nonce]].concat();
            let (signature, key) = torsioned_signature(&message, nonce);
            let one = ([message.as_slice()], [signature], [key]);
            assert!(key.verify_strict(&message, &signature).is_err());
            if batch_leaf(&one.0, &one.1, &one.2) {
                accepted_by_the_equation += 1;
            }
            assert!(!batch_verifies(&one.0, &one.1, &one.2), "nonce {nonce}");
        }
        assert!(accepted_by_the_equation > 0, "no lone signature the batch equation accepts: the test proves nothing");
        let (mut messages, signatures, keys) = signed(40);
        assert!(batch_verifies(&messages, &signatures, &keys));
        assert_eq!(first_bad_strictly(&messages, &signatures, &keys), None);
        messages[30].push(b'!');
        messages[12].push(b'!');
        assert!(!batch_verifies(&messages, &signatures, &keys));
        assert_eq!(first_bad_strictly(&messages, &signatures, &keys), Some(12));
    }

    /// Batches that name more keys than a thread keeps points for, verified twice (the second
    /// time partly from the kept points): each verifies, and one signature checked against
    /// another key fails its batch both times.
    #[test]
    fn batches_naming_more_keys_than_are_kept_verify_and_a_wrong_key_fails_them() {
        let n = KEY_POINTS + 40;
        let pairs: Vec<KeyPair> = (0..n as u32)
            .map(|i| {
                let mut seed = [0u8; 32];
                seed[..4].copy_from_slice(&i.to_le_bytes());
                seed[31] = 9;
                KeyPair::from_seed(&seed)
            })
            .collect();
        let messages: Vec<Vec<u8>> = (0..n).map(|i| format!("event {i}").into_bytes()).collect();
        let signatures: Vec<Signature> =
            pairs.iter().zip(&messages).map(|(pair, message)| Signature::from_bytes(&pair.sign(message))).collect();
        let keys: Vec<VerifyingKey> = pairs.iter().map(KeyPair::verifying_key).collect();
        let mut wrong = keys.clone();
        wrong.swap(10, 11);
        for round in 0..2 {
            for range in [0..n, 0..64, n - 64..n] {
                let r = range.clone();
                assert!(
                    verify_batch_by_key(&messages[r.clone()], &signatures[r.clone()], &keys[r]),
                    "round {round}, {range:?}"
                );
            }
            assert!(!verify_batch_by_key(&messages[..64], &signatures[..64], &wrong[..64]), "round {round}");
        }
    }

    #[test]
    fn each_valid_answers_every_signature_of_a_batch_on_its_own() {
        for n in [1, 2, 9] {
            let (mut messages, signatures, keys) = signed(n);
            assert_eq!(each_valid(&messages, &signatures, &keys), vec![true; n], "n={n}");
            messages[n - 1].push(b'!');
            let mut expected = vec![true; n];
            expected[n - 1] = false;
            assert_eq!(each_valid(&messages, &signatures, &keys), expected, "n={n}");
        }
    }
}
