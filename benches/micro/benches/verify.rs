//! Verification throughput over one tenant log of pre-built entries, beside Ed25519 batch
//! verification alone of the same signatures:
//!
//! - `verify/ledger_verifier`: `ledger::Verifier` over entries already in memory (chain, hashes,
//!   envelopes, authorisation, signatures, Merkle root, checkpoint).
//! - `verify/ledger_verify_tenant`: `Ledger::verify_tenant`, which also reads and decodes the
//!   entries from RocksDB (warm cache).
//! - `verify/ledger_read_entries`: that read alone (`Ledger::entries`, which hash-checks).
//! - `verify/limit_ed25519`: the entries' signatures batch-verified in chunks of 256 (the
//!   verifier's batch) on all cores, nothing else.
//!
//! See `BENCHMARKS.md`.

use std::time::Instant;

use bench_harness::{verify_chunks, VerifyFixture, VerifyMode, TENANT, VERIFIER_SIGNATURE_BATCH};
use criterion::{black_box, criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ledger::Verifier;

/// Agents (and streams) in the verified log.
const AGENTS: usize = 4;
/// `append_batch` calls per agent, of [`BATCH`] events.
const CALLS: usize = 2;
const BATCH: usize = 1024;

fn verification(c: &mut Criterion) {
    eprintln!("load average at start: {}", bench_harness::load_average());
    let fixture = VerifyFixture::new(AGENTS, CALLS, BATCH);
    let ledger = fixture.fixture.ledger();
    let entries = fixture.entries.len();
    eprintln!("verify fixture: {entries} entries, {} signatures", fixture.signed.len());

    let mut group = c.benchmark_group("verify");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(entries as u64));

    group.bench_function("ledger_verifier", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let input = fixture.entries.clone();
                    let start = Instant::now();
                    let mut verifier = Verifier::new(TENANT, ledger.trust_roots(), ledger.origin_prefix());
                    for entry in input {
                        verifier.push(entry).expect("entry verifies");
                    }
                    let report = verifier.finish(Some(&fixture.checkpoint_note)).expect("log verifies");
                    let elapsed = start.elapsed();
                    assert_eq!(report.entries, entries as u64);
                    elapsed
                })
                .sum()
        });
    });

    group.bench_function("ledger_verify_tenant", |b| {
        b.iter(|| {
            let report = ledger.verify_tenant(TENANT).expect("log verifies");
            assert_eq!(report.entries, entries as u64);
        });
    });

    group.bench_function("ledger_read_entries", |b| {
        b.iter(|| {
            let mut read = 0;
            for entry in ledger.entries(TENANT, 0, u64::MAX).expect("the tenant exists") {
                black_box(entry.expect("entry reads back"));
                read += 1;
            }
            assert_eq!(read, entries);
        });
    });

    group.throughput(Throughput::Elements(fixture.signed.len() as u64));
    group.bench_function("limit_ed25519", |b| {
        b.iter(|| verify_chunks(&fixture.signed, VERIFIER_SIGNATURE_BATCH, VerifyMode::Batch));
    });
    group.finish();
    eprintln!("load average at end: {}", bench_harness::load_average());
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = verification
}
criterion_main!(benches);
