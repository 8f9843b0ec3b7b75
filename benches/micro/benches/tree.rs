//! What the Merkle tree costs per entry under each hash, in the same run: format v2's RFC 6962
//! SHA-256 (`LogHasher`) beside format v1's BLAKE3. Both are the same algorithms
//! (`ledger::merkle`), so the difference is the hash alone.
//!
//! - `tree/append/{sha256,blake3}`: what the writer does per entry — the leaf hash of an entry
//!   hash and the frontier push that completes on average one interior node per leaf.
//! - `tree/root/{sha256,blake3}`: the root over the same leaves from scratch (what a verifier
//!   does once per checkpoint size it checks).
//!
//! See `BENCHMARKS.md` ("Format v2: SHA-256 beside BLAKE3").

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ledger::merkle::{self, Blake3Hasher, Frontier, Sha256Hasher, TreeHasher};

/// Leaves per iteration.
const LEAVES: usize = 8192;

fn entry_hashes() -> Vec<[u8; 32]> {
    (0..LEAVES as u64).map(|i| *blake3::hash(&i.to_be_bytes()).as_bytes()).collect()
}

fn append<H: TreeHasher<Digest = [u8; 32]>>(entry_hashes: &[[u8; 32]]) -> [u8; 32] {
    let mut frontier = Frontier::<H>::default();
    let mut nodes = 0usize;
    for entry_hash in entry_hashes {
        frontier.push(H::hash_leaf(entry_hash), |_, _, node| {
            black_box(node);
            nodes += 1;
        });
    }
    assert_eq!(nodes, 2 * entry_hashes.len() - 1, "every completed node is handed out");
    frontier.root()
}

fn tree(c: &mut Criterion) {
    let hashes = entry_hashes();
    let mut group = c.benchmark_group("tree");
    group.throughput(Throughput::Elements(LEAVES as u64));
    group.bench_function("append/sha256", |b| b.iter(|| append::<Sha256Hasher>(black_box(&hashes))));
    group.bench_function("append/blake3", |b| b.iter(|| append::<Blake3Hasher>(black_box(&hashes))));
    let sha_leaves: Vec<_> = hashes.iter().map(|h| Sha256Hasher::hash_leaf(h)).collect();
    let blake_leaves: Vec<_> = hashes.iter().map(|h| Blake3Hasher::hash_leaf(h)).collect();
    // The entry hash itself (BLAKE3 over the 103-byte input, as format 2 computes it) beside
    // the incremental form format 1 used: the hash chain is BLAKE3 in both.
    group.bench_function("entry_hash/input_array", |b| {
        b.iter(|| {
            let mut prev = [0u8; 32];
            for (seq, payload) in hashes.iter().enumerate() {
                prev = ledger::hash::entry_hash(seq as u64, 7, &prev, payload);
            }
            prev
        })
    });
    group.bench_function("entry_hash/incremental", |b| {
        b.iter(|| {
            let mut prev = [0u8; 32];
            for (seq, payload) in hashes.iter().enumerate() {
                let mut hasher = blake3::Hasher::new();
                hasher.update(ledger::hash::ENTRY_DOMAIN);
                hasher.update(&(seq as u64).to_be_bytes());
                hasher.update(&7u64.to_be_bytes());
                hasher.update(&prev);
                hasher.update(payload);
                prev = *hasher.finalize().as_bytes();
            }
            prev
        })
    });
    group.bench_function("root/sha256", |b| b.iter(|| merkle::root_of_leaves::<Sha256Hasher>(black_box(&sha_leaves))));
    group
        .bench_function("root/blake3", |b| b.iter(|| merkle::root_of_leaves::<Blake3Hasher>(black_box(&blake_leaves))));
    group.finish();
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = tree
}
criterion_main!(benches);
