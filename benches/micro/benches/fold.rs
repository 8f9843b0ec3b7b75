//! What the projection worker's fold costs per entry, on the entries `ledger-bench` appends
//! (issue 20: the worker is the largest cost of the server's besides Ed25519).
//!
//! The log: 64 agents each append requests of 64 `TestsPassed` signals on their own stream,
//! interleaved as at 64 clients × 64 events, a release per 16 events of an agent (never
//! declared, so no decisions follow), payloads padded to `ledger-bench`'s default of ~512 bytes.
//!
//! - `fold/worker`: what the worker does with them: [`Folder`] over a fresh
//!   [`ProjectionStore`], saved every [`CHUNK`] entries, [`CACHED_INACTIVE`] inactive releases
//!   kept in memory (the rest are read back when named again).
//! - `fold/in_memory`: the same fold with no store (what a rebuild or a replay does): the
//!   difference is what the saves cost.
//!
//! Throughput is entries folded; the store is opened outside the timed region.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger::Entry;
use projections::folder::{Folder, CHUNK};
use projections::store::ProjectionStore;
use projections::worker::CACHED_INACTIVE;
use projections::TenantState;

use bench_harness::bodies::SignalBody;
use bench_harness::workload::{AppendFixture, TENANT};

const AGENTS: usize = 64;
const BATCH: u64 = 64;
const ROUNDS: u64 = 8;
/// `ledger-bench`'s default `--payload-bytes`.
const PAYLOAD_BYTES: usize = 512;

/// The body `ledger-bench` signs for event `n` of `agent` (the same [`SignalBody`]).
fn body(agent: usize, n: u64, padding: usize) -> Vec<u8> {
    let (stream, id_prefix, agent_id) =
        (format!("bench/client-{agent}"), format!("run-c{agent}"), format!("agent-{agent}"));
    SignalBody {
        tenant: TENANT,
        stream: &stream,
        id_prefix: &id_prefix,
        phase: "m",
        n,
        occurred_at: "2026-12-07T00:00:00Z",
        agent_id: &agent_id,
        padding,
    }
    .to_vec()
}

/// The log: agent registrations, then `ROUNDS` requests of `BATCH` events from every agent.
fn log() -> (AppendFixture, Vec<Entry>) {
    let fixture = AppendFixture::new(AGENTS);
    let padding = PAYLOAD_BYTES.saturating_sub(body(0, 100_000, 0).len());
    for round in 0..ROUNDS {
        for (agent, signer) in fixture.agents.iter().enumerate() {
            let events = (round * BATCH..(round + 1) * BATCH).map(|n| signer.sign(body(agent, n, padding))).collect();
            fixture.ledger().append_batch(events).expect("append");
        }
    }
    let size = fixture.ledger().head(TENANT).expect("head").size;
    let entries: Vec<Entry> =
        fixture.ledger().entries(TENANT, 0, size).expect("entries").collect::<Result<_, _>>().expect("entry");
    assert_eq!(entries.len() as u64, AGENTS as u64 * (ROUNDS * BATCH + 1));
    (fixture, entries)
}

/// Folds `entries` as the worker does: a chunk at a time, a save after each.
fn fold(entries: &[Entry], store: Option<&ProjectionStore>) -> TenantState {
    let mut state = TenantState::new(TENANT);
    for chunk in entries.chunks(CHUNK as usize) {
        let mut folder = match store {
            Some(store) => Folder::new(&mut state, Some(store), CACHED_INACTIVE),
            None => Folder::in_memory(&mut state),
        };
        for entry in chunk {
            folder.apply(entry).expect("fold");
        }
        folder.save().expect("save");
    }
    state
}

fn bench(c: &mut Criterion) {
    let (_fixture, entries) = log();
    assert!(ledger::store::hardware_crc32c(), "RocksDB's CRC32C is not the wrapped one (benches/micro/build.rs)");
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("worker", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = ProjectionStore::open(dir.path()).expect("open");
                (dir, store)
            },
            |(dir, store)| {
                let state = fold(&entries, Some(&store));
                assert_eq!(state.meta.position, entries.len() as u64);
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("in_memory", |b| {
        b.iter(|| {
            let state = fold(&entries, None);
            assert_eq!(state.meta.position, entries.len() as u64);
            state
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = bench
}
criterion_main!(benches);
