//! RFC 6962 / RFC 9162 Merkle tree algorithms, generic over the hash.
//!
//! Pure: no I/O, no panics on any input; verify functions return `Result<(), ProofError>`.
//! The log's tree ([`LogHasher`]) is the SHA-256 instance ([`Sha256Hasher`]), exactly RFC 6962,
//! so stock verifiers (Go's `golang.org/x/mod/sumdb/tlog`, witnesses, tlog-tiles readers) check
//! it. Its leaf input is the entry's 32-byte entry hash: `leaf = SHA-256(0x00 ‖ entryHash)`
//! (docs/format.md "The Merkle tree"). The BLAKE3 instance ([`Blake3Hasher`]) is the tree of
//! format v1 stores, kept to migrate them and to check checkpoints signed before migration.
//!
//! Proof *generation* reads perfect-subtree hashes from a [`NodeSource`] (RocksDB in the
//! store, a slice of leaves in tests), so a proof costs O(log n) node reads.

use std::fmt::Debug;

use sha2::{Digest as _, Sha256};

use crate::error::ProofError;
use crate::hash::{digest_eq, Hash32};

/// Domain separation of leaf hashes.
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain separation of interior node hashes.
pub const NODE_PREFIX: u8 = 0x01;

/// A tree hash function in the RFC 6962 shape.
pub trait TreeHasher {
    /// The digest type.
    type Digest: Copy + Eq + Debug + AsRef<[u8]>;
    /// The root of the empty tree (`HASH()` of nothing).
    fn empty_root() -> Self::Digest;
    /// `HASH(0x00 || data)`.
    fn hash_leaf(data: &[u8]) -> Self::Digest;
    /// `HASH(0x01 || left || right)`.
    fn hash_children(left: &Self::Digest, right: &Self::Digest) -> Self::Digest;
}

/// SHA-256, exactly RFC 6962.
#[derive(Debug, Clone, Copy)]
pub struct Sha256Hasher;

impl TreeHasher for Sha256Hasher {
    type Digest = Hash32;
    fn empty_root() -> Hash32 {
        Sha256::digest([]).into()
    }
    fn hash_leaf(data: &[u8]) -> Hash32 {
        let mut h = Sha256::new();
        h.update([LEAF_PREFIX]);
        h.update(data);
        h.finalize().into()
    }
    fn hash_children(left: &Hash32, right: &Hash32) -> Hash32 {
        let mut h = Sha256::new();
        h.update([NODE_PREFIX]);
        h.update(left);
        h.update(right);
        h.finalize().into()
    }
}

/// The tree hash of the log (format v2): RFC 6962 SHA-256.
pub type LogHasher = Sha256Hasher;

/// BLAKE3 in the RFC 6962 shape: the tree of format v1 stores (before `release-ledger migrate`).
#[derive(Debug, Clone, Copy)]
pub struct Blake3Hasher;

impl TreeHasher for Blake3Hasher {
    type Digest = Hash32;
    fn empty_root() -> Hash32 {
        *blake3::hash(&[]).as_bytes()
    }
    fn hash_leaf(data: &[u8]) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }
    fn hash_children(left: &Hash32, right: &Hash32) -> Hash32 {
        let mut h = blake3::Hasher::new();
        h.update(&[NODE_PREFIX]);
        h.update(left);
        h.update(right);
        *h.finalize().as_bytes()
    }
}

/// Where proof generation reads the hashes of perfect subtrees.
///
/// `node(level, index)` is the root of the perfect subtree over leaves
/// `[index << level, (index + 1) << level)`; level 0 is the leaf hash.
pub trait NodeSource<D> {
    /// The source's error.
    type Error;
    /// The hash of a complete subtree.
    fn node(&self, level: u32, index: u64) -> Result<D, Self::Error>;
}

/// A slice of leaf hashes as a [`NodeSource`], computing interior nodes on demand.
#[derive(Debug, Clone, Copy)]
pub struct LeafSlice<'a, H: TreeHasher>(pub &'a [H::Digest]);

impl<H: TreeHasher> NodeSource<H::Digest> for LeafSlice<'_, H> {
    type Error = ProofError;
    fn node(&self, level: u32, index: u64) -> Result<H::Digest, ProofError> {
        let width = 1u64.checked_shl(level).ok_or(ProofError::OutOfRange)?;
        let start = index.checked_mul(width).ok_or(ProofError::OutOfRange)?;
        let end = start.checked_add(width).ok_or(ProofError::OutOfRange)?;
        if end > self.0.len() as u64 {
            return Err(ProofError::OutOfRange);
        }
        Ok(root_of_leaves::<H>(&self.0[start as usize..end as usize]))
    }
}

/// `MTH` over a list of leaf hashes, by the RFC 6962 recursion.
pub fn root_of_leaves<H: TreeHasher>(leaves: &[H::Digest]) -> H::Digest {
    match leaves.len() {
        0 => H::empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            H::hash_children(&root_of_leaves::<H>(&leaves[..k]), &root_of_leaves::<H>(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The root of leaves `[start, end)`, where `start` is aligned as RFC 6962's recursion
/// guarantees; built from O(log n) perfect nodes. A reversed range (`start > end`) holds no
/// leaves, like `start..end`, so its root is the empty root.
pub fn subtree_root<H: TreeHasher, S: NodeSource<H::Digest>>(
    source: &S,
    start: u64,
    end: u64,
) -> Result<H::Digest, S::Error> {
    let width = end.saturating_sub(start);
    if width == 0 {
        return Ok(H::empty_root());
    }
    if width.is_power_of_two() && start % width == 0 {
        let level = width.trailing_zeros();
        return source.node(level, start >> level);
    }
    let k = split_point(width);
    let left = subtree_root::<H, S>(source, start, start + k)?;
    let right = subtree_root::<H, S>(source, start + k, end)?;
    Ok(H::hash_children(&left, &right))
}

/// The root of the first `size` leaves.
pub fn root_at<H: TreeHasher, S: NodeSource<H::Digest>>(source: &S, size: u64) -> Result<H::Digest, S::Error> {
    subtree_root::<H, S>(source, 0, size)
}

/// Errors of proof generation: the request was out of range, or the source failed.
#[derive(Debug)]
pub enum GenerateError<E> {
    /// Indices or sizes out of range.
    Proof(ProofError),
    /// The node source failed.
    Source(E),
}

/// RFC 6962 `PATH(m, D[n])`: the audit path of leaf `leaf_index` in the tree of `tree_size`.
pub fn inclusion_path<H: TreeHasher, S: NodeSource<H::Digest>>(
    source: &S,
    leaf_index: u64,
    tree_size: u64,
) -> Result<Vec<H::Digest>, GenerateError<S::Error>> {
    if leaf_index >= tree_size {
        return Err(GenerateError::Proof(ProofError::OutOfRange));
    }
    let mut path = Vec::new();
    let (mut start, mut end) = (0u64, tree_size);
    // Walk down from the root, collecting siblings; the path is leaf-first, so reverse.
    while end - start > 1 {
        let k = split_point(end - start);
        if leaf_index < start + k {
            path.push(subtree_root::<H, S>(source, start + k, end).map_err(GenerateError::Source)?);
            end = start + k;
        } else {
            path.push(subtree_root::<H, S>(source, start, start + k).map_err(GenerateError::Source)?);
            start += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 6962 `PROOF(m, D[n])`: that the tree of `old_size` is a prefix of the tree of `new_size`.
pub fn consistency_path<H: TreeHasher, S: NodeSource<H::Digest>>(
    source: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<H::Digest>, GenerateError<S::Error>> {
    if old_size > new_size {
        return Err(GenerateError::Proof(ProofError::OutOfRange));
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b), iteratively; nodes are pushed root-first, then reversed.
    let mut path = Vec::new();
    let (mut m, mut start, mut end, mut complete) = (old_size, 0u64, new_size, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                path.push(subtree_root::<H, S>(source, start, end).map_err(GenerateError::Source)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            path.push(subtree_root::<H, S>(source, start + k, end).map_err(GenerateError::Source)?);
            end = start + k;
        } else {
            path.push(subtree_root::<H, S>(source, start, start + k).map_err(GenerateError::Source)?);
            m -= k;
            start += k;
            complete = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// RFC 9162 §2.1.3.2: verifies that `leaf_hash` is leaf `leaf_index` of the tree of
/// `tree_size` with root `root`.
pub fn verify_inclusion<H: TreeHasher>(
    leaf_hash: &H::Digest,
    leaf_index: u64,
    tree_size: u64,
    path: &[H::Digest],
    root: &H::Digest,
) -> Result<(), ProofError> {
    if leaf_index >= tree_size {
        return Err(ProofError::OutOfRange);
    }
    let (mut f_n, mut s_n) = (leaf_index, tree_size - 1);
    let mut r = *leaf_hash;
    for p in path {
        if s_n == 0 {
            return Err(ProofError::WrongPathLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = H::hash_children(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = H::hash_children(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongPathLength);
    }
    if !digest_eq(r.as_ref(), root.as_ref()) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: verifies that the tree (`old_size`, `old_root`) is a prefix of the tree
/// (`new_size`, `new_root`).
pub fn verify_consistency<H: TreeHasher>(
    old_size: u64,
    new_size: u64,
    old_root: &H::Digest,
    new_root: &H::Digest,
    path: &[H::Digest],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OutOfRange);
    }
    if old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength);
        }
        return if digest_eq(old_root.as_ref(), new_root.as_ref()) { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if old_size == 0 {
        // Every tree extends the empty tree; the old root must be the empty root.
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength);
        }
        return if digest_eq(old_root.as_ref(), H::empty_root().as_ref()) {
            Ok(())
        } else {
            Err(ProofError::RootMismatch)
        };
    }
    if path.is_empty() {
        return Err(ProofError::WrongPathLength);
    }
    let mut nodes: Vec<H::Digest> = Vec::with_capacity(path.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(path);
    let (mut f_n, mut s_n) = (old_size - 1, new_size - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut f_r, mut s_r) = (nodes[0], nodes[0]);
    for c in &nodes[1..] {
        if s_n == 0 {
            return Err(ProofError::WrongPathLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = H::hash_children(c, &f_r);
            s_r = H::hash_children(c, &s_r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            s_r = H::hash_children(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongPathLength);
    }
    if !digest_eq(f_r.as_ref(), old_root.as_ref()) || !digest_eq(s_r.as_ref(), new_root.as_ref()) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree: the perfect subtrees of its binary decomposition.
/// Appending a leaf costs amortised O(1) hashes; the root costs O(log n).
#[derive(Debug, Clone)]
pub struct Frontier<H: TreeHasher> {
    /// `(level, index, hash)` from the largest (leftmost) subtree to the smallest.
    nodes: Vec<(u32, u64, H::Digest)>,
    size: u64,
}

impl<H: TreeHasher> Default for Frontier<H> {
    fn default() -> Self {
        Self { nodes: Vec::new(), size: 0 }
    }
}

impl<H: TreeHasher> Frontier<H> {
    /// The frontier of a tree of `size` leaves, reading its perfect subtrees from `source`.
    pub fn load<S: NodeSource<H::Digest>>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut nodes = Vec::new();
        let mut start = 0u64;
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push((level, start >> level, source.node(level, start >> level)?));
                start += 1u64 << level;
            }
        }
        Ok(Self { nodes, size })
    }

    /// The frontier of a tree of `size` leaves from its perfect-subtree roots, largest first
    /// (what [`Frontier::hashes`] returns). `None` if their number does not fit `size`.
    pub fn from_hashes(size: u64, hashes: &[H::Digest]) -> Option<Self> {
        if hashes.len() != size.count_ones() as usize {
            return None;
        }
        let mut nodes = Vec::with_capacity(hashes.len());
        let (mut start, mut next) = (0u64, hashes.iter());
        for level in (0..64u32).rev() {
            if size & (1u64 << level) != 0 {
                nodes.push((level, start >> level, *next.next()?));
                start += 1u64 << level;
            }
        }
        Some(Self { nodes, size })
    }

    /// The perfect-subtree roots, largest (leftmost) first.
    pub fn hashes(&self) -> Vec<H::Digest> {
        self.nodes.iter().map(|&(_, _, hash)| hash).collect()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash, calling `completed(level, index, hash)` for the leaf and for every
    /// perfect subtree it completes (the nodes a store persists). The tree must hold fewer than
    /// `u64::MAX` leaves (no log gets there; the verifier refuses seq `u64::MAX` before it
    /// pushes, since a resume point read from a file can start it anywhere).
    pub fn push(&mut self, leaf_hash: H::Digest, mut completed: impl FnMut(u32, u64, &H::Digest)) {
        completed(0, self.size, &leaf_hash);
        self.nodes.push((0, self.size, leaf_hash));
        self.size += 1;
        while self.nodes.len() >= 2 {
            let (right_level, right_index, right) = self.nodes[self.nodes.len() - 1];
            let (left_level, _, left) = self.nodes[self.nodes.len() - 2];
            if left_level != right_level {
                break;
            }
            self.nodes.truncate(self.nodes.len() - 2);
            let parent = H::hash_children(&left, &right);
            let (level, index) = (right_level + 1, right_index >> 1);
            completed(level, index, &parent);
            self.nodes.push((level, index, parent));
        }
    }

    /// The tree root.
    pub fn root(&self) -> H::Digest {
        let mut iter = self.nodes.iter().rev();
        let Some(&(_, _, mut root)) = iter.next() else {
            return H::empty_root();
        };
        for (_, _, left) in iter {
            root = H::hash_children(left, &root);
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontier_rebuilt_from_its_hashes_grows_to_the_same_roots() {
        let leaves: Vec<Hash32> = (0u8..40).map(|i| [i; 32]).collect();
        for split in 0..leaves.len() {
            let mut whole = Frontier::<Blake3Hasher>::default();
            for leaf in &leaves[..split] {
                whole.push(*leaf, |_, _, _| {});
            }
            let mut rebuilt = Frontier::<Blake3Hasher>::from_hashes(split as u64, &whole.hashes()).unwrap();
            let mut too_many = whole.hashes();
            too_many.push([0; 32]);
            assert!(Frontier::<Blake3Hasher>::from_hashes(split as u64, &too_many).is_none());
            for leaf in &leaves[split..] {
                whole.push(*leaf, |_, _, _| {});
                rebuilt.push(*leaf, |_, _, _| {});
                assert_eq!(rebuilt.root(), whole.root(), "split {split}");
            }
        }
    }

    type Sha = Sha256Hasher;

    fn h(text: &str) -> Hash32 {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).unwrap();
        out
    }

    /// The RFC 6962 reference leaves (certificate-transparency test data).
    fn reference_leaves() -> Vec<Hash32> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|x| Sha::hash_leaf(&hex::decode(x).unwrap()))
            .collect()
    }

    const REFERENCE_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn sha256_roots_match_rfc6962_known_answers() {
        let leaves = reference_leaves();
        for (size, expected) in REFERENCE_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root_of_leaves::<Sha>(&leaves[..size])), *expected, "size {size}");
            assert_eq!(hex::encode(root_at::<Sha, _>(&LeafSlice::<Sha>(&leaves), size as u64).unwrap()), *expected);
            let mut frontier = Frontier::<Sha>::default();
            leaves[..size].iter().for_each(|l| frontier.push(*l, |_, _, _| {}));
            assert_eq!(hex::encode(frontier.root()), *expected, "frontier size {size}");
        }
    }

    #[test]
    fn sha256_inclusion_paths_match_known_answers() {
        let leaves = reference_leaves();
        let source = LeafSlice::<Sha>(&leaves);
        let cases: [(u64, u64, &[&str]); 4] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (2, 3, &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
        ];
        for (index, size, expected) in cases {
            let path = inclusion_path::<Sha, _>(&source, index, size).unwrap();
            let got: Vec<String> = path.iter().map(hex::encode).collect();
            assert_eq!(got, expected, "leaf {index} of {size}");
            let root = h(REFERENCE_ROOTS[size as usize]);
            verify_inclusion::<Sha>(&leaves[index as usize], index, size, &path, &root).unwrap();
        }
    }

    #[test]
    fn sha256_consistency_paths_match_known_answers() {
        let leaves = reference_leaves();
        let source = LeafSlice::<Sha>(&leaves);
        let cases: [(u64, u64, &[&str]); 4] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (old, new, expected) in cases {
            let path = consistency_path::<Sha, _>(&source, old, new).unwrap();
            let got: Vec<String> = path.iter().map(hex::encode).collect();
            assert_eq!(got, expected, "{old} -> {new}");
            verify_consistency::<Sha>(
                old,
                new,
                &h(REFERENCE_ROOTS[old as usize]),
                &h(REFERENCE_ROOTS[new as usize]),
                &path,
            )
            .unwrap();
        }
    }

    /// Found by the `merkle` fuzz target: `end - start` overflowed (a panic with overflow
    /// checks on, the release profile's setting) when `start > end`.
    #[test]
    fn subtree_root_of_a_reversed_range_is_the_empty_root_not_a_panic() {
        let leaves = reference_leaves();
        let source = LeafSlice::<Sha>(&leaves);
        assert_eq!(subtree_root::<Sha, _>(&source, 5, 3).unwrap(), Sha::empty_root());
        assert_eq!(subtree_root::<Sha, _>(&source, u64::MAX, 0).unwrap(), Sha::empty_root());
    }

    #[test]
    fn verifiers_reject_nonsense_without_panicking() {
        let leaves = reference_leaves();
        let root = h(REFERENCE_ROOTS[8]);
        assert!(verify_inclusion::<Sha>(&leaves[0], 8, 8, &[], &root).is_err());
        assert!(verify_inclusion::<Sha>(&leaves[0], 0, 8, &[], &root).is_err());
        assert!(verify_inclusion::<Sha>(&leaves[0], 0, u64::MAX, &[root; 70], &root).is_err());
        assert!(verify_consistency::<Sha>(9, 8, &root, &root, &[]).is_err());
        assert!(verify_consistency::<Sha>(3, 8, &root, &root, &[]).is_err());
        assert!(verify_consistency::<Sha>(3, u64::MAX, &root, &root, &[root; 70]).is_err());
    }
}
