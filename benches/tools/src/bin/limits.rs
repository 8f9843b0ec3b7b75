//! The physical limits a durable signed append is compared with, measured on the same signed
//! events (the benches' ~560-byte envelopes) in the same run:
//!
//! - **Ed25519**: batch verification of their signatures alone, in chunks of `--batch`, on all
//!   cores: the faster of `ed25519_dalek::verify_batch` and the ledger's own batch check
//!   (`ledger::signatures`: one key's terms summed, coefficients from BLAKE3 since the
//!   twenty-third session, curve25519-dalek 5's AVX-512 IFMA backend where the CPU has it),
//!   both reported. Until the eighteenth session of issue 20 this was
//!   `ed25519_dalek::verify_batch` alone, which the ledger's check now outruns;
//! - **BLAKE3**: their payload hash and entry hash alone, on all cores;
//! - **RocksDB**: `sync=true` WriteBatches holding exactly the rows the ledger's writer puts in a
//!   commit group (entry, indexes, tree nodes, head, checkpoint) of `--group` events each, from
//!   one writer thread, as the ledger commits.
//!
//! `--batch` is the request batch (the signature chunk); `--group` the commit group size to
//! compare with: for `c` concurrent clients sending batches of `b`, an ideal group commit
//! gathers at most `c × b` events per fsync, so that is the fair group size.
//!
//! Usage: `limits [--events N] [--batch B] [--group G] [--json]`.

use std::time::Instant;

use bench_harness::{cores, sign_work, AppendFixture, Ed25519Alone, RawStore, RowBuilder, SignedSet, StoredShape};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Ed25519, BLAKE3 and RocksDB sync-write limits on the benches' events")]
struct Args {
    /// Events to measure with.
    #[arg(long, default_value_t = 32_768)]
    events: usize,
    /// Signature chunk (the request batch).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Events per RocksDB WriteBatch (the commit group).
    #[arg(long, default_value_t = 64)]
    group: usize,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let fixture = AppendFixture::new(cores());
    let per_agent = args.events.div_ceil(fixture.agents.len() * args.batch.max(1));
    let work = sign_work(&fixture.agents, per_agent, args.batch.max(1));
    let events: Vec<_> = work.iter().flatten().flatten().cloned().collect();
    let count = events.len();
    let envelope_bytes: usize = events.iter().map(|e| e.envelope.to_bytes().len()).sum::<usize>() / count.max(1);

    // Ed25519 batch verification alone, both ways; the limit is the faster.
    let alone = Ed25519Alone::measure(&SignedSet::of_work(&fixture.agents, &work), args.batch.max(1));
    let (ed25519, ed25519_dalek, ed25519_ledger) = (alone.limit(), alone.dalek, alone.ledger);

    // BLAKE3 of the same bytes alone: payload hash and entry hash, on all cores.
    let encoded: Vec<Vec<u8>> = events.iter().map(|e| e.envelope.to_bytes()).collect();
    let started = Instant::now();
    let workers = cores();
    std::thread::scope(|scope| {
        for w in 0..workers {
            let encoded = &encoded;
            scope.spawn(move || {
                let mut prev = [0u8; 32];
                for (seq, bytes) in encoded.iter().enumerate().skip(w).step_by(workers) {
                    let payload = ledger::hash::payload_hash(bytes);
                    prev = ledger::hash::entry_hash(seq as u64, seq as u64, &prev, &payload);
                }
                std::hint::black_box(prev);
            });
        }
    });
    let blake3 = count as f64 / started.elapsed().as_secs_f64();

    // RocksDB sync=true WriteBatches of the ledger's rows alone, one writer.
    let store = RawStore::open();
    let shapes: Vec<StoredShape> = events.iter().map(StoredShape::of).collect();
    let mut builder = RowBuilder::new(0, 260);
    let groups: Vec<_> = shapes.chunks(args.group.max(1)).map(|g| builder.group(g)).collect();
    let started = Instant::now();
    for rows in &groups {
        store.write_group(rows);
    }
    let rocksdb = count as f64 / started.elapsed().as_secs_f64();

    let slower = ed25519.min(rocksdb);
    let value = serde_json::json!({
        "events": count, "envelopeBytes": envelope_bytes, "batch": args.batch, "group": args.group, "cores": cores(),
        "ed25519PerS": ed25519, "ed25519DalekPerS": ed25519_dalek, "ed25519LedgerPerS": ed25519_ledger,
        "blake3PerS": blake3, "rocksdbPerS": rocksdb, "slowerLimitPerS": slower,
    });
    if args.json {
        println!("{value}");
    } else {
        println!(
            "{count} events of {envelope_bytes} B: Ed25519 batch({}) {ed25519:.0}/s (ed25519-dalek {ed25519_dalek:.0}/s, the ledger's check {ed25519_ledger:.0}/s) | BLAKE3 {blake3:.0}/s | RocksDB sync groups of {} {rocksdb:.0}/s | slower limit {slower:.0}/s",
            args.batch, args.group
        );
    }
}
