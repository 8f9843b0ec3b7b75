//! One Ed25519 batch verification on one thread: ed25519-dalek's `verify_batch` beside the
//! ledger's (`ledger::signatures::first_bad_signature_here`, whose batch sums the terms of the
//! signatures one key made before the multiscalar multiplication and draws its coefficients
//! from BLAKE3), over the same signatures.
//!
//! - `signatures/b{B}_k{K}/{dalek,ledger}`: a batch of `B` signatures by `K` keys, in turn (so
//!   a key's signatures are not consecutive unless `K` is 1). 64 by one key is an append
//!   request of one agent; 1024 by 8 keys the offline verifier's batch of a governance log;
//!   64 by 64 the worst case for the ledger's, every key distinct. 128 by 2, 256 by 4 and 512
//!   by 8: the requests of two, four or eight agents verified as one batch, which the server
//!   does not do (BENCHMARKS.md, "Issue 20, fifteenth session").
//! - `signatures/strict_each/b{B}` beside `signatures/each_valid/b{B}`: `B` signatures by `B`
//!   distinct keys checked one `verify_strict` each (how single-event requests were verified)
//!   and as one batch (`ledger::signatures::each_valid`, how the server now verifies the
//!   signatures of single-event requests in flight together, `append/combine.rs`).
//!
//! See `BENCHMARKS.md` ("Issue 20, fourth session").

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, VerifyingKey};
use ledger::keys::KeyPair;

fn batch(size: usize, keys: usize) -> (Vec<Vec<u8>>, Vec<Signature>, Vec<VerifyingKey>) {
    let pairs: Vec<KeyPair> = (0..keys).map(|k| KeyPair::from_seed(&[k as u8 + 1; 32])).collect();
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..size {
        let pair = &pairs[i % keys];
        // About the size of a signed envelope's message (a 387-byte payload and its header).
        let message = format!("{i:0>600}").into_bytes();
        out.1.push(Signature::from_bytes(&pair.sign(&message)));
        out.0.push(message);
        out.2.push(pair.verifying_key());
    }
    out
}

fn signatures(c: &mut Criterion) {
    let mut group = c.benchmark_group("signatures");
    for (size, keys) in [(64, 1), (128, 2), (256, 4), (512, 8), (64, 8), (64, 64), (1024, 8)] {
        let (messages, signatures, verifying) = batch(size, keys);
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("b{size}_k{keys}/dalek"), |b| {
            b.iter(|| {
                ed25519_dalek::verify_batch(black_box(&refs), &signatures, &verifying).expect("the batch verifies")
            })
        });
        group.bench_function(format!("b{size}_k{keys}/ledger"), |b| {
            b.iter(|| {
                let bad = ledger::signatures::first_bad_signature_here(black_box(&refs), &signatures, &verifying);
                assert_eq!(bad, None, "the batch verifies");
            })
        });
    }
    for size in [2, 4, 8, 16, 32] {
        let (messages, signatures, verifying) = batch(size, size);
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("strict_each/b{size}"), |b| {
            b.iter(|| {
                for ((message, signature), key) in messages.iter().zip(&signatures).zip(&verifying) {
                    key.verify_strict(black_box(message), signature).expect("verifies");
                }
            })
        });
        group.bench_function(format!("each_valid/b{size}"), |b| {
            b.iter(|| {
                let valid = ledger::signatures::each_valid(black_box(&messages), &signatures, &verifying);
                assert!(valid.iter().all(|v| *v), "the batch verifies");
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = signatures
}
criterion_main!(benches);
