//! Merkle proofs (`ledger/src/merkle.rs`), which promise never to panic on any input.
//!
//! Arbitrary sizes, indices (small ones that hit the tree, and huge ones), paths and roots go
//! to the verifiers, which must return `Err`, never panic; to proof generation and
//! `subtree_root` over a small tree of arbitrary leaves; and to `Frontier::from_hashes`.
//! Proofs generated for in-range arguments must verify against the tree's root, and the same
//! proof must fail against any other root or with any node changed.
#![no_main]

use ledger::merkle::{
    consistency_path, inclusion_path, root_at, root_of_leaves, subtree_root, verify_consistency, verify_inclusion,
    Frontier, LeafSlice, LogHasher,
};
use libfuzzer_sys::fuzz_target;
use release_ledger_fuzz::Input;

type H = LogHasher;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let leaf_count = usize::from(input.u8() % 40);
    let leaves: Vec<[u8; 32]> = (0..leaf_count).map(|i| [i as u8; 32]).collect();
    let source = LeafSlice::<H>(&leaves);
    let n = leaf_count as u64;
    let root = root_of_leaves::<H>(&leaves);

    // Arbitrary arguments: errors are fine, panics are not.
    let (a, b) = (input.size(), input.size());
    let (frontier_size, frontier_len) = (input.size(), usize::from(input.u8() % 66));
    let _ = subtree_root::<H, _>(&source, a, b);
    let _ = root_at::<H, _>(&source, a);
    let _ = inclusion_path::<H, _>(&source, a, b);
    let _ = consistency_path::<H, _>(&source, a, b);
    let path_len = usize::from(input.u8() % 70);
    let path: Vec<[u8; 32]> = (0..path_len).map(|_| input.hash()).collect();
    let (leaf, claimed_root) = (input.hash(), input.hash());
    let _ = verify_inclusion::<H>(&leaf, a, b, &path, &claimed_root);
    let _ = verify_consistency::<H>(a, b, &leaf, &claimed_root, &path);
    let frontier_hashes: Vec<[u8; 32]> = (0..frontier_len).map(|i| [i as u8; 32]).collect();
    if let Some(mut frontier) = Frontier::<H>::from_hashes(frontier_size, &frontier_hashes) {
        let _ = frontier.root();
        // `push`'s precondition: fewer than u64::MAX leaves (the verifier checks it first).
        if frontier.size() < u64::MAX {
            frontier.push(leaf, |_, _, _| {});
        }
    }

    // In-range proofs verify, and only against the right root and path.
    if n == 0 {
        return;
    }
    let index = a % n;
    let proof = inclusion_path::<H, _>(&source, index, n).expect("in-range inclusion path");
    assert_eq!(verify_inclusion::<H>(&leaves[index as usize], index, n, &proof, &root), Ok(()));
    if claimed_root != root {
        assert!(verify_inclusion::<H>(&leaves[index as usize], index, n, &proof, &claimed_root).is_err());
    }
    if let Some(first) = proof.first() {
        if *first != leaf {
            let mut changed = proof.clone();
            changed[0] = leaf;
            assert!(verify_inclusion::<H>(&leaves[index as usize], index, n, &changed, &root).is_err());
        }
    }
    let old = b % (n + 1);
    let old_root = root_of_leaves::<H>(&leaves[..old as usize]);
    let proof = consistency_path::<H, _>(&source, old, n).expect("in-range consistency path");
    assert_eq!(verify_consistency::<H>(old, n, &old_root, &root, &proof), Ok(()));
    // Every tree extends the empty one (RFC 9162), whatever its root: only a non-empty old
    // tree binds the new root.
    if claimed_root != root && old > 0 {
        assert!(verify_consistency::<H>(old, n, &old_root, &claimed_root, &proof).is_err());
    }
    let mut frontier = Frontier::<H>::default();
    for leaf in &leaves {
        frontier.push(*leaf, |_, _, _| {});
    }
    assert_eq!(frontier.root(), root);
    let rebuilt = Frontier::<H>::from_hashes(n, &frontier.hashes()).expect("a frontier's own hashes");
    assert_eq!(rebuilt.root(), root);
});
