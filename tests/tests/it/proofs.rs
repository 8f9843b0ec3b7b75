//! Checkpoints, inclusion and consistency proofs from the store, over random sizes.

use ledger::merkle::{self, LeafSlice, LogHasher, Sha256Hasher, TreeHasher};
use ledger::SignedCheckpoint;
use proptest::prelude::*;
use testkit::{append_ok, temp_ledger};

const TENANT: &str = "acme";

/// Property-test cases per property: hundreds in the test command; `PROPTEST_CASES` raises it
/// for a longer measurement (`PROPTEST_CASES=20000 cargo nextest run --release --workspace -E
/// 'test(proofs::)'`).
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

/// Largest log the store property covers.
const MAX_SIZE: u64 = 400;

/// One ledger for every case: its tenant grows by commits of 1 to 23 events (a fixed,
/// irregular pattern) to [`MAX_SIZE`] entries, so a signed checkpoint exists at many sizes;
/// cases pick among them. Opened once per test, not per case: a store per case would cap the
/// cases at a dozen. Owned by the test, so its directory is removed when the test ends (a
/// `static` is never dropped, and its data dir, 83 MB, was left in TMPDIR by every run).
fn shared_ledger() -> (testkit::TestLedger, Vec<u64>) {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let mut sizes = vec![1];
    let mut size = 1;
    let mut step = 0u64;
    while size < MAX_SIZE {
        let n = (1 + (step * 7) % 23).min(MAX_SIZE - size);
        let _ = t.ledger.append_batch((0..n).map(|_| qa.event("s", 8)).collect()).unwrap();
        size += n;
        sizes.push(size);
        step += 1;
    }
    (t, sizes)
}

#[test]
fn store_proofs_verify_against_signed_checkpoints() {
    let (t, sizes) = shared_ledger();
    // The ledger is the test's, so the cases run in a runner of its own (no regression file:
    // a failure prints its minimal input).
    let config = ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    let strategy = (any::<usize>(), prop::collection::vec((any::<u64>(), any::<u64>()), 6));
    let result = runner.run(&strategy, |(pick, picks)| {
        let size = sizes[pick % sizes.len()];
        let checkpoint = t.ledger.checkpoint_at(TENANT, size).unwrap().expect("a checkpoint per commit");
        let verified = SignedCheckpoint::parse_and_verify(&checkpoint.note, t.ledger.trust_roots().ledger()).unwrap();
        prop_assert_eq!(verified.checkpoint.size, size);
        let entries: Vec<_> = testkit::all_entries(&t.ledger, TENANT).into_iter().take(size as usize).collect();
        let leaves: Vec<_> = entries.iter().map(|e| LogHasher::hash_leaf(&e.entry_hash)).collect();
        prop_assert_eq!(verified.checkpoint.root, merkle::root_of_leaves::<LogHasher>(&leaves));

        for (a, b) in picks {
            let tree_size = 1 + a % size;
            let seq = b % tree_size;
            let root = t.ledger.root_at(TENANT, tree_size).unwrap();
            prop_assert_eq!(root, merkle::root_of_leaves::<LogHasher>(&leaves[..tree_size as usize]));
            let proof = t.ledger.inclusion_proof(TENANT, seq, tree_size).unwrap();
            merkle::verify_inclusion::<LogHasher>(&leaves[seq as usize], seq, tree_size, &proof.path, &root).unwrap();
            // The wrong leaf, index or root must not verify.
            let wrong_leaf = LogHasher::hash_leaf(b"forged");
            prop_assert!(
                merkle::verify_inclusion::<LogHasher>(&wrong_leaf, seq, tree_size, &proof.path, &root).is_err()
            );
            if tree_size > 1 {
                let other = (seq + 1) % tree_size;
                prop_assert!(merkle::verify_inclusion::<LogHasher>(
                    &leaves[seq as usize],
                    other,
                    tree_size,
                    &proof.path,
                    &root
                )
                .is_err());
            }
            let consistency = t.ledger.consistency_proof(TENANT, tree_size, size).unwrap();
            merkle::verify_consistency::<LogHasher>(
                tree_size,
                size,
                &root,
                &verified.checkpoint.root,
                &consistency.path,
            )
            .unwrap();
            if tree_size < size {
                let forged_root = LogHasher::hash_leaf(b"forged");
                prop_assert!(merkle::verify_consistency::<LogHasher>(
                    tree_size,
                    size,
                    &forged_root,
                    &verified.checkpoint.root,
                    &consistency.path
                )
                .is_err());
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn sha256_instance_proofs_round_trip(data in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 1..150), a in any::<u64>(), b in any::<u64>()) {
        let leaves: Vec<_> = data.iter().map(|d| Sha256Hasher::hash_leaf(d)).collect();
        let n = leaves.len() as u64;
        let source = LeafSlice::<Sha256Hasher>(&leaves);
        let old = 1 + a % n;
        let index = b % n;
        let root = merkle::root_of_leaves::<Sha256Hasher>(&leaves);
        let old_root = merkle::root_of_leaves::<Sha256Hasher>(&leaves[..old as usize]);
        let path = merkle::inclusion_path::<Sha256Hasher, _>(&source, index, n).unwrap();
        merkle::verify_inclusion::<Sha256Hasher>(&leaves[index as usize], index, n, &path, &root).unwrap();
        let proof = merkle::consistency_path::<Sha256Hasher, _>(&source, old, n).unwrap();
        merkle::verify_consistency::<Sha256Hasher>(old, n, &old_root, &root, &proof).unwrap();
        if !proof.is_empty() {
            let mut bad = proof.clone();
            bad[0][0] ^= 1;
            prop_assert!(merkle::verify_consistency::<Sha256Hasher>(old, n, &old_root, &root, &bad).is_err());
        }
    }
}

#[test]
fn a_checkpoint_is_signed_per_commit_and_old_ones_stay_consistent() {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let first = t.ledger.checkpoint(TENANT).unwrap();
    append_ok(&t.ledger, qa.event("s", 1));
    append_ok(&t.ledger, qa.event("s", 1));
    let last = t.ledger.checkpoint(TENANT).unwrap();
    let roots = t.ledger.trust_roots();
    let old = SignedCheckpoint::parse_and_verify(&first.note, roots.ledger()).unwrap().checkpoint;
    let new = SignedCheckpoint::parse_and_verify(&last.note, roots.ledger()).unwrap().checkpoint;
    assert_eq!((old.size, new.size), (1, 3));
    assert_eq!(t.ledger.checkpoint_at(TENANT, 1).unwrap().unwrap().note, first.note);
    let proof = t.ledger.consistency_proof(TENANT, 1, 3).unwrap();
    merkle::verify_consistency::<LogHasher>(1, 3, &old.root, &new.root, &proof.path).unwrap();
    // The admin key cannot pass for the ledger key.
    assert!(SignedCheckpoint::parse_and_verify(&last.note, roots.admin()).is_err());
    assert!(t.ledger.inclusion_proof(TENANT, 3, 3).is_err());
    assert!(t.ledger.consistency_proof(TENANT, 2, 4).is_err());
}

#[test]
fn commit_notifications_wake_waiters_and_listeners() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    let seen = Arc::new(AtomicU64::new(0));
    let seen_in_listener = seen.clone();
    t.ledger.add_commit_listener(Box::new(move |tenant, size| {
        if tenant == TENANT {
            seen_in_listener.store(size, Ordering::SeqCst);
        }
    }));
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| t.ledger.wait_for_size(TENANT, 3, std::time::Duration::from_secs(10)));
        append_ok(&t.ledger, qa.event("s", 1));
        append_ok(&t.ledger, qa.event("s", 1));
        assert_eq!(waiter.join().unwrap(), 3);
    });
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(t.ledger.wait_for_size(TENANT, 10, std::time::Duration::from_millis(20)), 3);
}
