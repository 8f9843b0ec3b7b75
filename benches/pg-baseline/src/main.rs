//! `pg-baseline`: the PostgreSQL baseline of the append benchmarks — the same signed events the
//! ledger stores, appended durably to an append-only, hash-chained PostgreSQL table by N
//! concurrent clients, one connection each.
//!
//! Start a throwaway server with `benches/scripts/postgres.sh` (loopback only, fsync=on,
//! synchronous_commit=on, full_page_writes=on: every commit is fsynced before it is
//! acknowledged, as every ledger append is), then for example:
//!
//! ```text
//! pg-baseline --conn "$(benches/scripts/postgres.sh)" --init --clients 16 --batch 64 --duration 5
//! ```
//!
//! # Schema (`--init` drops and recreates it)
//!
//! ```sql
//! CREATE TABLE events (
//!     tenant       text        NOT NULL,
//!     seq          bigint      NOT NULL,  -- 0, 1, 2, ... per tenant (the ledger's seq)
//!     recorded_at  timestamptz NOT NULL,  -- max(now, previous recorded_at), per transaction
//!     event_id     text        NOT NULL,  -- the body's eventId (the idempotency key)
//!     payload_type text        NOT NULL,  -- the DSSE payloadType
//!     payload      bytea       NOT NULL,  -- the DSSE payload: the event body exactly as signed
//!     signature    bytea       NOT NULL,  -- the raw 64-byte Ed25519 signature
//!     key_id       text        NOT NULL,  -- hex SHA-256 of the signer's public key
//!     prev_hash    bytea       NOT NULL,  -- entry_hash of seq - 1 (32 zero bytes for seq 0)
//!     entry_hash   bytea       NOT NULL,
//!     PRIMARY KEY (tenant, seq),
//!     UNIQUE (tenant, event_id));
//! CREATE TABLE heads (
//!     tenant       text PRIMARY KEY,
//!     seq          bigint      NOT NULL,  -- the number of entries, i.e. the next seq
//!     entry_hash   bytea       NOT NULL,  -- the chain head (32 zero bytes when empty)
//!     recorded_at  timestamptz NOT NULL); -- the newest entry's recorded_at
//! ```
//!
//! plus statement-level triggers that reject `UPDATE`, `DELETE` and `TRUNCATE` on `events`
//! (append-only; they cost nothing on `INSERT`). `heads.recorded_at` goes beyond the minimal
//! `(tenant, seq, entry_hash)` head on purpose: the ledger's tenant head holds the same three
//! things (size, chain head, last recordedAt), and without it keeping `recorded_at` monotonic
//! would cost another read while the head is locked.
//!
//! # One append (one request = one transaction)
//!
//! Outside the lock, exactly as the ledger's `prepare` step does: check the payload type and
//! the single signature, parse and validate the event body (`ledger::ParsedEvent`), look the
//! signer's key id up, encode the envelope (`Envelope::to_bytes`), hash it
//! (`payloadHash = BLAKE3(envelope bytes)`) and, with `--verify-signatures true` (the
//! default, since the ledger always verifies), check the signatures with
//! `ledger::signatures::first_bad_signature` (one `verify_strict`, or an Ed25519 batch
//! verification for several). These checks are CPU work and run on tokio's blocking threads,
//! as the ledger's callers check on their own threads, so a client holding a head lock is never
//! queued behind another client's verification. Then:
//!
//! 1. `BEGIN` and `SELECT seq, entry_hash, recorded_at FROM heads WHERE tenant = $1 FOR UPDATE`
//!    (pipelined);
//! 2. client-side, per event, `entryHash = BLAKE3("release-ledger/entry/v1" || seq_be64 ||
//!    recordedAt_be64 || prevHash || payloadHash)` with the ledger's own `ledger::hash`
//!    functions; `recordedAt` is nanoseconds since the epoch, whole microseconds (what
//!    `timestamptz` keeps), so the stored rows re-hash exactly;
//! 3. one multi-row `INSERT` of the events (prepared; 4096 rows per statement at most), the
//!    `UPDATE` of the head and `COMMIT`, pipelined (sent back to back); `COMMIT` returns once
//!    the commit record is fsynced. So two round trips per transaction, one of them while the
//!    head is locked (BLAKE3 is computed by the client, so the lock must be taken first).
//!
//! All statements are prepared once per connection. The head row lock serialises the
//! appends of one tenant, as the chain requires, and it is held until the commit is durable:
//! PostgreSQL's group commit can only merge the fsyncs of transactions on *different* tenants
//! (`--tenants`), whereas the ledger's writer puts many requests for one tenant in one commit
//! group. `--tenants 1` (the default) is the ledger benchmarks' shape: every client appends to
//! tenant `bench`, each on its own stream with its own key.
//!
//! Events are signed before the clock starts (signing is the client's work, as in the
//! criterion benches). `--events N` appends exactly N; `--duration S` runs for S seconds from a
//! pre-signed pool (`--pool`), and stops early, saying so, if the pool runs out. The report
//! gives events/s, transactions/s, per-request latency percentiles (from the start of the
//! request's checks to the acknowledged `COMMIT`), the client's and the server's CPU time, the
//! WAL fsyncs (`pg_stat_wal`) and the exact configuration. Any error exits non-zero;
//! `--check-chain` re-reads and re-hashes every row afterwards.

mod client;
mod report;
mod run;
mod server;

use std::time::Duration;

use anyhow::Context as _;
use bench_harness::{cores, PADDING};
use clap::{ArgAction, Parser};

use crate::run::run;

/// Rows per `INSERT` statement at most (3 shared + 7 per-row parameters, far below 65535).
pub(crate) const MAX_ROWS_PER_INSERT: usize = 4096;

/// Pre-signed events per second of `--duration` when `--pool` is not given, per event of
/// `--batch` and per tenant (one fsync per transaction per tenant: 600-1400/s on the 2-core dev VM) ...
pub(crate) const DEFAULT_POOL_PER_SECOND_PER_BATCH_EVENT_AND_TENANT: u64 = 3_000;
/// ... but at most this many per second (signing runs at ~30k events/s on 2 cores).
pub(crate) const DEFAULT_POOL_PER_SECOND_MAX: u64 = 30_000;

#[derive(Debug, Parser)]
#[command(about = "PostgreSQL baseline: the ledger's signed events in an append-only, hash-chained table")]
pub(crate) struct Args {
    /// libpq-style connection string (what benches/scripts/postgres.sh prints).
    #[arg(long, env = "PG_BENCH_CONN", default_value = "host=127.0.0.1 port=55432 user=postgres dbname=postgres")]
    pub(crate) conn: String,
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// Events per transaction (1 = one event per transaction).
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Run for this many seconds (default 10 unless --events is given).
    #[arg(long, conflicts_with = "events")]
    pub(crate) duration: Option<f64>,
    /// Append exactly this many events in total, then stop.
    #[arg(long)]
    pub(crate) events: Option<u64>,
    /// Tenants (hash chains); client i appends to tenant i % tenants. 1 = the ledger benches' shape.
    #[arg(long, default_value_t = 1)]
    pub(crate) tenants: usize,
    /// Verify every signature before inserting, as the ledger always does.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    pub(crate) verify_signatures: bool,
    /// Padding passed to testkit's `Agent::event` (the ledger benches use 100).
    #[arg(long, default_value_t = PADDING)]
    pub(crate) padding: usize,
    /// Events to pre-sign for --duration (default per second: 3000 x batch x tenants, at most
    /// 30000); the run stops early, saying so, if they run out. Ignored with --events.
    #[arg(long)]
    pub(crate) pool: Option<u64>,
    /// Drop and recreate the schema first; without --duration/--events, only that.
    #[arg(long)]
    pub(crate) init: bool,
    /// After the run, re-read every row of the tenants used and re-check the hash chain.
    #[arg(long)]
    pub(crate) check_chain: bool,
    /// Tokio worker threads (default: the number of cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// When a run stops.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Duration(Duration),
    Events(u64),
}

fn main() {
    let args = Args::parse();
    let threads = args.threads.unwrap_or_else(cores).max(1);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("build the tokio runtime")
        .and_then(|runtime| runtime.block_on(run(args, threads)));
    if let Err(error) = result {
        eprintln!("pg-baseline: error: {error:#}");
        std::process::exit(1);
    }
}
