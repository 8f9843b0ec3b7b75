//! Durable signed appends through `Ledger::append_batch`, beside the two limits measured the
//! same way in the same run:
//!
//! - `append_b{B}/ledger/t{T}`: `T` appender threads, each on its own stream with its own agent
//!   key, each calling `append_batch` with `B` events until the iteration's events are in.
//!   Every call returns only after the group commit is durable (its anchor record fsynced).
//! - `append_b{B}/limit_ed25519`: the same kind of signatures batch-verified in chunks of `B`
//!   on all cores, nothing else (`b1` also as `verify_strict`, which is what the ledger runs on
//!   a one-event append).
//! - `append_b1/limit_fdatasync`: one 700-byte append and `fdatasync` of a plain file, the floor
//!   under any durable write on this disk.
//! - `append_b{B}/limit_rocksdb/t{T}`: `T` threads writing the ledger's rows for `B` events as
//!   one `sync=true` `WriteBatch` each, to a bare RocksDB with the ledger's options.
//!
//! Throughput is in events (elements). Signing and row building happen outside the timed
//! region; an iteration is timed from releasing the threads to the last one finishing.
//! See `BENCHMARKS.md`.

use bench_harness::{
    append_all, sign_work, with_crew, AppendFixture, RawStore, Row, RowBuilder, SignedSet, StoredShape, SyncFile,
    VerifyMode, PADDING, TENANT,
};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};

const THREADS: [usize; 3] = [1, 16, 64];
const BATCHES: [usize; 3] = [1, 64, 1024];
/// Events per iteration at least (so every thread makes several calls where that is cheap) ...
const MIN_EVENTS: usize = 1024;
/// ... and at most: a combination needing more than this for one call per thread is skipped.
const MAX_EVENTS: usize = 16_384;
/// Signatures per iteration of the Ed25519 limit.
const VERIFY_EVENTS: usize = 4096;

/// Events per iteration for `threads` x `batch`: whole rounds of one call per thread, at least
/// [`MIN_EVENTS`]; `None` when one round alone exceeds [`MAX_EVENTS`].
fn events_per_iteration(threads: usize, batch: usize) -> Option<usize> {
    let round = threads * batch;
    (round <= MAX_EVENTS).then(|| round * MIN_EVENTS.div_ceil(round))
}

fn report_sizes(fixture: &AppendFixture) {
    let work = sign_work(&fixture.agents[..1], 1, 1);
    let event = &work[0][0][0];
    let shape = StoredShape::of(event);
    let rows = RowBuilder::new(0, 0).group(std::slice::from_ref(&shape));
    let note = fixture.ledger().checkpoint(TENANT).expect("checkpoint").note;
    eprintln!(
        "bench event (Agent::event(stream, {PADDING})): payload {} bytes, PAE {} bytes, stored envelope {} bytes, \
         entry value {} bytes, {} rows per event; checkpoint note {} bytes",
        event.envelope.payload.len(),
        event.envelope.signed_bytes().len(),
        shape.envelope_len(),
        rows[0].value_len(),
        rows.len() - 2,
        note.len()
    );
}

fn appends(c: &mut Criterion) {
    // The signatures every Ed25519 limit verifies, and the stored shapes every RocksDB limit writes.
    eprintln!("load average at start: {}", bench_harness::load_average());
    let sample = AppendFixture::new(16);
    report_sizes(&sample);
    let checkpoint_len = sample.ledger().checkpoint(TENANT).expect("checkpoint").note.len();
    let pool = sign_work(&sample.agents, 1, VERIFY_EVENTS / sample.agents.len());
    let signed = SignedSet::of_work(&sample.agents, &pool);
    let shapes: Vec<StoredShape> = pool.iter().flatten().flatten().map(StoredShape::of).collect();

    for batch in BATCHES {
        let mut group = c.benchmark_group(format!("append_b{batch}"));
        group.sampling_mode(SamplingMode::Flat);

        group.throughput(Throughput::Elements(signed.len() as u64));
        group.bench_function("limit_ed25519", |b| {
            b.iter(|| bench_harness::verify_chunks(&signed, batch, VerifyMode::Batch));
        });
        if batch == 1 {
            group.bench_function("limit_ed25519_strict", |b| {
                b.iter(|| bench_harness::verify_chunks(&signed, batch, VerifyMode::Strict));
            });
            // The floor under every durable write: one small append and fdatasync of a plain file.
            group.throughput(Throughput::Elements(1));
            let mut probe = SyncFile::create();
            let bytes = vec![b'x'; 700];
            group.bench_function("limit_fdatasync", |b| b.iter(|| probe.append_durably(&bytes)));
        }

        for threads in THREADS {
            let Some(events) = events_per_iteration(threads, batch) else {
                eprintln!(
                    "skipping append_b{batch}/*/t{threads}: one call per thread is {} events, above the \
                     {MAX_EVENTS}-event cap per iteration",
                    threads * batch
                );
                continue;
            };
            let calls_per_thread = events / (threads * batch);
            group.throughput(Throughput::Elements(events as u64));

            // The ledger, driven by a crew of `threads` long-lived appender threads.
            let fixture = AppendFixture::new(threads);
            let ledger = fixture.ledger();
            with_crew(
                threads,
                |batches| append_all(ledger, batches),
                |run| {
                    group.bench_function(format!("ledger/t{threads}"), |b| {
                        b.iter_custom(|iters| {
                            (0..iters).map(|_| run(sign_work(&fixture.agents, calls_per_thread, batch))).sum()
                        });
                    });
                },
            );
            drop(fixture);

            // Bare RocksDB, written by a crew of `threads` long-lived writer threads.
            let store = RawStore::open();
            let mut builders: Vec<RowBuilder> =
                (0..threads).map(|t| RowBuilder::new(t as u32, checkpoint_len)).collect();
            with_crew(
                threads,
                |groups: Vec<Vec<Row>>| {
                    for rows in groups {
                        store.write_group(&rows);
                    }
                },
                |run| {
                    group.bench_function(format!("limit_rocksdb/t{threads}"), |b| {
                        b.iter_custom(|iters| {
                            (0..iters)
                                .map(|_| {
                                    let mut next = shapes.iter().cycle();
                                    let work = builders
                                        .iter_mut()
                                        .map(|builder| {
                                            (0..calls_per_thread)
                                                .map(|_| {
                                                    let events: Vec<StoredShape> =
                                                        next.by_ref().take(batch).cloned().collect();
                                                    builder.group(&events)
                                                })
                                                .collect()
                                        })
                                        .collect();
                                    run(work)
                                })
                                .sum()
                        });
                    });
                },
            );
        }
        group.finish();
    }
    eprintln!("load average at end: {}", bench_harness::load_average());
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = appends
}
criterion_main!(benches);
