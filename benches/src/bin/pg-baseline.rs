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

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use clap::{ArgAction, Parser};
use ed25519_dalek::{Signature, VerifyingKey};
use futures::TryStreamExt as _;
use hdrhistogram::Histogram;
use ledger::hash::{entry_hash, payload_hash, Hash32, GENESIS_PREV_HASH};
use ledger::{AppendEvent, Clock as _, Envelope, KeyId, ParsedEvent, SystemClock, EVENT_PAYLOAD_TYPE};
use release_ledger_benches::{cores, load_average, stream, PADDING};
use serde::Serialize;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

/// Rows per `INSERT` statement at most (3 shared + 7 per-row parameters, far below 65535).
const MAX_ROWS_PER_INSERT: usize = 4096;

/// Pre-signed events per second of `--duration` when `--pool` is not given, per event of
/// `--batch` and per tenant (one fsync per transaction per tenant: 600-1400/s on the 2-core dev VM) ...
const DEFAULT_POOL_PER_SECOND_PER_BATCH_EVENT_AND_TENANT: u64 = 3_000;
/// ... but at most this many per second (signing runs at ~30k events/s on 2 cores).
const DEFAULT_POOL_PER_SECOND_MAX: u64 = 30_000;

#[derive(Debug, Parser)]
#[command(about = "PostgreSQL baseline: the ledger's signed events in an append-only, hash-chained table")]
struct Args {
    /// libpq-style connection string (what benches/scripts/postgres.sh prints).
    #[arg(long, env = "PG_BENCH_CONN", default_value = "host=127.0.0.1 port=55432 user=postgres dbname=postgres")]
    conn: String,
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Events per transaction (1 = one event per transaction).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Run for this many seconds (default 10 unless --events is given).
    #[arg(long, conflicts_with = "events")]
    duration: Option<f64>,
    /// Append exactly this many events in total, then stop.
    #[arg(long)]
    events: Option<u64>,
    /// Tenants (hash chains); client i appends to tenant i % tenants. 1 = the ledger benches' shape.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Verify every signature before inserting, as the ledger always does.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    verify_signatures: bool,
    /// Padding passed to testkit's `Agent::event` (the ledger benches use 100).
    #[arg(long, default_value_t = PADDING)]
    padding: usize,
    /// Events to pre-sign for --duration (default per second: 3000 x batch x tenants, at most
    /// 30000); the run stops early, saying so, if they run out. Ignored with --events.
    #[arg(long)]
    pool: Option<u64>,
    /// Drop and recreate the schema first; without --duration/--events, only that.
    #[arg(long)]
    init: bool,
    /// After the run, re-read every row of the tenants used and re-check the hash chain.
    #[arg(long)]
    check_chain: bool,
    /// Tokio worker threads (default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

/// When a run stops.
#[derive(Debug, Clone, Copy)]
enum Limit {
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

async fn run(args: Args, threads: usize) -> anyhow::Result<()> {
    ensure!(args.clients >= 1, "--clients must be at least 1");
    ensure!(args.batch >= 1, "--batch must be at least 1");
    ensure!(args.tenants >= 1 && args.tenants <= args.clients, "--tenants must be between 1 and --clients");
    let limit = match (args.duration, args.events) {
        (Some(seconds), _) => {
            ensure!(seconds.is_finite() && seconds > 0.0, "--duration must be a positive number of seconds");
            Limit::Duration(Duration::from_secs_f64(seconds))
        }
        (None, Some(events)) => {
            ensure!(events >= 1, "--events must be at least 1");
            Limit::Events(events)
        }
        (None, None) if args.init => Limit::Events(0),
        (None, None) => Limit::Duration(Duration::from_secs(10)),
    };

    let control = connect(&args.conn).await.context("connect (control connection)")?;
    let server = ServerInfo::read(&control).await?;
    eprintln!("pg-baseline: connected to PostgreSQL {} ({})", server.version, server.settings_line());
    if args.init {
        create_schema(&control).await?;
        eprintln!("pg-baseline: schema (re)created");
        if matches!(limit, Limit::Events(0)) {
            return Ok(());
        }
    }
    let schema: Option<String> =
        control.query_one("SELECT to_regclass('events')::text", &[]).await.context("look for the events table")?.get(0);
    ensure!(schema.is_some(), "no events table in this database: run with --init to create the schema");

    let tenants: Vec<String> = if args.tenants == 1 {
        vec!["bench".to_owned()]
    } else {
        (0..args.tenants).map(|k| format!("bench-{k}")).collect()
    };
    for tenant in &tenants {
        control
            .execute(
                "INSERT INTO heads (tenant, seq, entry_hash, recorded_at) VALUES ($1, 0, $2, to_timestamp(0)) \
                 ON CONFLICT (tenant) DO NOTHING",
                &[tenant, &&GENESIS_PREV_HASH[..]],
            )
            .await
            .context("create the tenant heads")?;
    }
    let existing: i64 = control
        .query_one("SELECT count(*) FROM events WHERE tenant = ANY($1)", &[&tenants])
        .await
        .context("count existing events")?
        .get(0);

    // Agents: client i signs with its own registered key, on its own stream, in tenant i % T.
    // Event ids are `agent-{i}-{n}`, as in the ledger benches; on a table that already holds
    // events a run nonce keeps them unique (making each body a few bytes longer).
    let suffix = if existing > 0 {
        let nonce = SystemClock.now_ns() / 1_000_000;
        eprintln!("pg-baseline: {existing} events already stored; agent ids get the suffix -r{nonce:x}");
        format!("-r{nonce:x}")
    } else {
        String::new()
    };
    let test = testkit::temp_ledger();
    let agents: Vec<testkit::Agent> = (0..args.clients)
        .map(|i| test.agent(&tenants[i % tenants.len()], &format!("agent-{i}{suffix}"), &[], &[]))
        .collect();
    let keys: Arc<HashMap<KeyId, VerifyingKey>> =
        Arc::new(agents.iter().map(|a| (a.key.key_id(), a.key.verifying_key())).collect());

    let total = match limit {
        Limit::Events(n) => n,
        Limit::Duration(d) => {
            let per_second = (DEFAULT_POOL_PER_SECOND_PER_BATCH_EVENT_AND_TENANT * (args.batch * args.tenants) as u64)
                .min(DEFAULT_POOL_PER_SECOND_MAX);
            args.pool.unwrap_or_else(|| (d.as_secs_f64() * per_second as f64).ceil() as u64).max(1)
        }
    };
    let signing = Instant::now();
    let pools = sign_pools(&agents, total, args.padding);
    let signing = signing.elapsed();
    drop(test);
    let sample = &pools.iter().find(|p| !p.is_empty()).context("no events to append")?[0].envelope;
    let sizes = Sizes {
        payload_bytes: sample.payload.len(),
        pae_bytes: sample.signed_bytes().len(),
        envelope_bytes: sample.to_bytes().len(),
    };
    eprintln!(
        "pg-baseline: signed {total} events in {:.2} s (payload {} B, PAE {} B, envelope {} B)",
        signing.as_secs_f64(),
        sizes.payload_bytes,
        sizes.pae_bytes,
        sizes.envelope_bytes
    );

    // Connect and prepare every client, then release them together.
    let stop = Arc::new(AtomicBool::new(false));
    let exhausted = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(tokio::sync::Barrier::new(args.clients + 1));
    let mut handles = Vec::with_capacity(args.clients);
    for (i, pool) in pools.into_iter().enumerate() {
        let session = Session::open(&args.conn, tenants[i % tenants.len()].clone())
            .await
            .with_context(|| format!("client {i}: connect and prepare"))?;
        let work = ClientWork {
            session,
            pool,
            batch: args.batch,
            keys: keys.clone(),
            verify: args.verify_signatures,
            stop: stop.clone(),
            exhausted: exhausted.clone(),
            stop_when_empty: matches!(limit, Limit::Duration(_)),
        };
        let barrier = barrier.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let result = work.run().await;
            if result.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            result.with_context(|| format!("client {i}"))
        }));
    }

    let load_before = load_average();
    let wal_before = WalStats::read(&control).await;
    let server_cpu_before = server.cpu_seconds();
    let client_cpu_before = process_cpu_seconds("self");
    barrier.wait().await;
    let start = Instant::now();
    if let Limit::Duration(duration) = limit {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            stop.store(true, Ordering::Relaxed);
        });
    }
    let mut outcomes = Vec::with_capacity(handles.len());
    let mut first_error = None;
    for handle in handles {
        match handle.await.context("client task panicked")? {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    let end = outcomes.iter().map(|o| o.end).max().unwrap_or(start);
    let elapsed = end.duration_since(start);
    let client_cpu = delta(client_cpu_before, process_cpu_seconds("self"));
    let server_cpu = delta(server_cpu_before, server.cpu_seconds());
    let load_after = load_average();
    // Each client asked for its statistics to be flushed when it went idle; give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wal = match (wal_before, WalStats::read(&control).await) {
        (Some(before), Some(after)) => Some(after.minus(&before)),
        _ => None,
    };

    let mut latency = new_histogram()?;
    for outcome in &outcomes {
        latency.add(&outcome.latency).context("merge latency histograms")?;
    }
    let events: u64 = outcomes.iter().map(|o| o.events).sum();
    let transactions: u64 = outcomes.iter().map(|o| o.transactions).sum();
    let verify_seconds: f64 = outcomes.iter().map(|o| o.verify.as_secs_f64()).sum();
    ensure!(events > 0, "no event was appended");
    let seconds = elapsed.as_secs_f64();
    let quantile = |q: f64| latency.value_at_quantile(q);
    let mut report = Report {
        config: Config {
            conn: redact_password(&args.conn),
            clients: args.clients,
            batch: args.batch,
            tenants: args.tenants,
            verify_signatures: args.verify_signatures,
            duration_seconds: match limit {
                Limit::Duration(d) => Some(d.as_secs_f64()),
                Limit::Events(_) => None,
            },
            events_requested: match limit {
                Limit::Events(n) => Some(n),
                Limit::Duration(_) => None,
            },
            pool_events: total,
            padding: args.padding,
            sizes,
            tokio_worker_threads: threads,
            cores: cores(),
            events_before: existing,
            server,
        },
        elapsed_seconds: seconds,
        stopped_early_pool_exhausted: exhausted.load(Ordering::Relaxed),
        events,
        transactions,
        events_per_second: events as f64 / seconds,
        transactions_per_second: transactions as f64 / seconds,
        latency_us: Latency {
            mean: latency.mean(),
            p50: quantile(0.50),
            p90: quantile(0.90),
            p99: quantile(0.99),
            p999: quantile(0.999),
            max: latency.max(),
        },
        signing_seconds: signing.as_secs_f64(),
        verify_seconds,
        client_cpu_seconds: client_cpu,
        server_cpu_seconds: server_cpu,
        wal,
        load_average_before: load_before,
        load_average_after: load_after,
        chain_checked: None,
    };
    if args.check_chain {
        let checked = check_chain(&control, &tenants).await?;
        eprintln!("pg-baseline: chain checked: {checked} entries re-hashed, heads match");
        report.chain_checked = Some(checked);
    }
    if report.stopped_early_pool_exhausted {
        eprintln!(
            "pg-baseline: warning: the pre-signed pool ({total} events) ran out after {seconds:.2} s; \
             the figures cover that time. Raise --pool to run the full duration."
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialise the report")?);
    } else {
        report.print();
    }
    Ok(())
}

async fn connect(conn: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .with_context(|| format!("connect to {:?}", redact_password(conn)))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("pg-baseline: connection error: {error}");
        }
    });
    Ok(client)
}

async fn create_schema(client: &Client) -> anyhow::Result<()> {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS events, heads CASCADE;
             DROP FUNCTION IF EXISTS events_append_only() CASCADE;
             CREATE TABLE events (
                 tenant       text        NOT NULL,
                 seq          bigint      NOT NULL,
                 recorded_at  timestamptz NOT NULL,
                 event_id     text        NOT NULL,
                 payload_type text        NOT NULL,
                 payload      bytea       NOT NULL,
                 signature    bytea       NOT NULL,
                 key_id       text        NOT NULL,
                 prev_hash    bytea       NOT NULL,
                 entry_hash   bytea       NOT NULL,
                 PRIMARY KEY (tenant, seq),
                 UNIQUE (tenant, event_id));
             CREATE TABLE heads (
                 tenant       text PRIMARY KEY,
                 seq          bigint      NOT NULL,
                 entry_hash   bytea       NOT NULL,
                 recorded_at  timestamptz NOT NULL);
             CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'events is append-only (% refused)', TG_OP; END $$;
             CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
                 FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
             CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
                 FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
             CHECKPOINT;",
        )
        .await
        .context("create the schema")
}

/// Signs `total` events, client `i` getting `total / clients` (the first `total % clients`
/// one more), with `Agent::event(stream(i), padding)`, on every core.
fn sign_pools(agents: &[testkit::Agent], total: u64, padding: usize) -> Vec<Vec<AppendEvent>> {
    let clients = agents.len() as u64;
    let quota = |i: usize| (total / clients + u64::from((i as u64) < total % clients)) as usize;
    let workers = cores().clamp(1, agents.len());
    let mut pools: Vec<Vec<AppendEvent>> = agents.iter().map(|_| Vec::new()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                scope.spawn(move || {
                    (w..agents.len())
                        .step_by(workers)
                        .map(|i| {
                            let stream = stream(i);
                            (i, (0..quota(i)).map(|_| agents[i].event(&stream, padding)).collect::<Vec<_>>())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            for (i, events) in handle.join().expect("signing thread panicked") {
                pools[i] = events;
            }
        }
    });
    pools
}

/// One client's connection and prepared statements.
struct Session {
    client: Client,
    tenant: String,
    begin: Statement,
    commit: Statement,
    rollback: Statement,
    lock_head: Statement,
    update_head: Statement,
    inserts: HashMap<usize, Statement>,
}

impl Session {
    async fn open(conn: &str, tenant: String) -> anyhow::Result<Self> {
        let client = connect(conn).await?;
        let begin = client.prepare("BEGIN").await?;
        let commit = client.prepare("COMMIT").await?;
        let rollback = client.prepare("ROLLBACK").await?;
        let lock_head =
            client.prepare("SELECT seq, entry_hash, recorded_at FROM heads WHERE tenant = $1 FOR UPDATE").await?;
        let update_head =
            client.prepare("UPDATE heads SET seq = $2, entry_hash = $3, recorded_at = $4 WHERE tenant = $1").await?;
        Ok(Self { client, tenant, begin, commit, rollback, lock_head, update_head, inserts: HashMap::new() })
    }

    /// The prepared multi-row `INSERT` of `rows` rows ($1 tenant, $2 recorded_at, $3
    /// payload_type shared; then 7 parameters per row).
    async fn insert(&mut self, rows: usize) -> anyhow::Result<Statement> {
        if let Some(statement) = self.inserts.get(&rows) {
            return Ok(statement.clone());
        }
        let mut sql = String::from(
            "INSERT INTO events (tenant, seq, recorded_at, event_id, payload_type, payload, signature, key_id, \
             prev_hash, entry_hash) VALUES ",
        );
        for row in 0..rows {
            let p = 4 + row * 7;
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1,${},$2,${},$3,${},${},${},${},${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            ));
        }
        let statement = self.client.prepare(&sql).await.with_context(|| format!("prepare the {rows}-row INSERT"))?;
        self.inserts.insert(rows, statement.clone());
        Ok(statement)
    }
}

/// An event checked and hashed outside the lock.
struct Prepared {
    event_id: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
    key_id: String,
    payload_hash: Hash32,
}

struct ClientWork {
    session: Session,
    pool: Vec<AppendEvent>,
    batch: usize,
    keys: Arc<HashMap<KeyId, VerifyingKey>>,
    verify: bool,
    stop: Arc<AtomicBool>,
    exhausted: Arc<AtomicBool>,
    stop_when_empty: bool,
}

struct Outcome {
    events: u64,
    transactions: u64,
    latency: Histogram<u64>,
    verify: Duration,
    end: Instant,
    /// Kept open until the run's CPU and WAL figures are read (a closed backend's CPU time
    /// vanishes from /proc).
    session: Option<Session>,
}

impl ClientWork {
    async fn run(mut self) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome {
            events: 0,
            transactions: 0,
            latency: new_histogram()?,
            verify: Duration::ZERO,
            end: Instant::now(),
            session: None,
        };
        let tenant: Arc<str> = Arc::from(self.session.tenant.as_str());
        // Prepare the statements the run will use before the clock matters (the last batch of
        // an --events run may be shorter).
        let full = self.batch.min(MAX_ROWS_PER_INSERT);
        let _ = self.session.insert(full).await?;
        let mut pool = std::mem::take(&mut self.pool).into_iter();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let batch: Vec<AppendEvent> = pool.by_ref().take(self.batch).collect();
            if batch.is_empty() {
                if self.stop_when_empty {
                    self.exhausted.store(true, Ordering::Relaxed);
                    self.stop.store(true, Ordering::Relaxed);
                }
                break;
            }
            let started = Instant::now();
            // The checks are CPU work: off the async workers, as the ledger's callers verify on
            // their own threads, so a task holding the head lock is never queued behind them.
            let (keys, tenant, verify) = (self.keys.clone(), tenant.clone(), self.verify);
            let (prepared, verify) = tokio::task::spawn_blocking(move || prepare(batch, &keys, &tenant, verify))
                .await
                .context("signature check task")??;
            outcome.verify += verify;
            self.append(&prepared).await?;
            outcome.latency.saturating_record((started.elapsed().as_micros() as u64).max(1));
            outcome.events += prepared.len() as u64;
            outcome.transactions += 1;
        }
        outcome.end = Instant::now();
        // Best effort: have this backend flush its statistics (pg_stat_wal) when it goes idle.
        let _ = self.session.client.batch_execute("SELECT pg_stat_force_next_flush()").await;
        outcome.session = Some(self.session);
        Ok(outcome)
    }

    /// One transaction: lock the head, chain and insert the events, move the head, commit.
    async fn append(&mut self, events: &[Prepared]) -> anyhow::Result<()> {
        let result = self.transaction(events).await;
        if result.is_err() {
            let _ = self.session.client.execute(&self.session.rollback, &[]).await;
        }
        result
    }

    async fn transaction(&mut self, events: &[Prepared]) -> anyhow::Result<()> {
        // Statements for the chunk sizes this transaction needs (cached after the first use).
        let mut chunks = Vec::new();
        for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
            chunks.push((self.session.insert(chunk.len()).await?, chunk));
        }
        let session = &self.session;
        let client = &session.client;
        let tenant: &str = &session.tenant;
        let lock_params: [&(dyn ToSql + Sync); 1] = [&tenant];
        let (_, head) =
            futures::try_join!(client.execute(&session.begin, &[]), client.query_one(&session.lock_head, &lock_params))
                .context("BEGIN; SELECT ... FOR UPDATE")?;
        let head_seq: i64 = head.get(0);
        let head_hash: Vec<u8> = head.get(1);
        let head_recorded: SystemTime = head.get(2);
        let mut prev: Hash32 = head_hash.as_slice().try_into().context("heads.entry_hash is not 32 bytes")?;

        // recordedAt: the ledger's clock, never decreasing within a tenant, in whole microseconds
        // (what timestamptz keeps).
        let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let recorded_us = (SystemClock.now_ns() / 1000).max(micros(head_recorded));
        let recorded_at = UNIX_EPOCH + Duration::from_micros(recorded_us);
        let recorded_ns = recorded_us * 1000;

        let first = u64::try_from(head_seq).context("negative head seq")?;
        let mut seqs = Vec::with_capacity(events.len());
        let mut prevs = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let seq = first + i as u64;
            let hash = entry_hash(seq, recorded_ns, &prev, &event.payload_hash);
            seqs.push(seq as i64);
            prevs.push(prev);
            hashes.push(hash);
            prev = hash;
        }
        let payload_type = EVENT_PAYLOAD_TYPE;
        let prev_refs: Vec<&[u8]> = prevs.iter().map(|h| &h[..]).collect();
        let hash_refs: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let mut params: Vec<Vec<&(dyn ToSql + Sync)>> = Vec::with_capacity(chunks.len());
        let mut offset = 0;
        for (_, chunk) in &chunks {
            let mut chunk_params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(3 + 7 * chunk.len());
            chunk_params.push(&tenant);
            chunk_params.push(&recorded_at);
            chunk_params.push(&payload_type);
            for (j, event) in chunk.iter().enumerate() {
                let k = offset + j;
                chunk_params.push(&seqs[k]);
                chunk_params.push(&event.event_id);
                chunk_params.push(&event.payload);
                chunk_params.push(&event.signature);
                chunk_params.push(&event.key_id);
                chunk_params.push(&prev_refs[k]);
                chunk_params.push(&hash_refs[k]);
            }
            offset += chunk.len();
            params.push(chunk_params);
        }
        let new_seq = seqs.last().map_or(head_seq, |s| s + 1);
        let new_hash: &[u8] = &prev;
        // The INSERTs, the head UPDATE and the COMMIT are sent back to back (pipelined: one
        // round trip while the head is locked). Should an INSERT or the UPDATE fail, the
        // server turns the COMMIT into a rollback, and the failure is reported below.
        let inserts = futures::future::try_join_all(
            chunks.iter().zip(&params).map(|((statement, _), p)| client.execute(statement, &p[..])),
        );
        let update_params: [&(dyn ToSql + Sync); 4] = [&tenant, &new_seq, &new_hash, &recorded_at];
        let update = client.execute(&session.update_head, &update_params);
        let commit = client.execute(&session.commit, &[]);
        let (inserted, updated, _) =
            futures::try_join!(inserts, update, commit).context("INSERT INTO events; UPDATE heads; COMMIT")?;
        ensure!(inserted.iter().sum::<u64>() == events.len() as u64, "INSERT wrote {inserted:?} rows");
        ensure!(updated == 1, "UPDATE heads touched {updated} rows");
        Ok(())
    }
}

/// The connection string with any `password=...` value blanked, for the report.
fn redact_password(conn: &str) -> String {
    conn.split_whitespace()
        .map(|part| if part.starts_with("password=") { "password=***" } else { part })
        .collect::<Vec<_>>()
        .join(" ")
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // Microseconds, 1 µs to 1 hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("create a latency histogram")
}

fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// User + system CPU seconds of process `pid` ("self" for this one), from `/proc/PID/stat`.
fn process_cpu_seconds(pid: &str) -> Option<f64> {
    proc_stat(pid).map(|(_, _, ticks)| ticks as f64 / CLOCK_TICKS_PER_SECOND)
}

/// `/proc` reports CPU times in USER_HZ, which is 100 on every Linux architecture in use.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

/// (pid, ppid, utime + stime in clock ticks) of `/proc/PID/stat`.
fn proc_stat(pid: &str) -> Option<(u32, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let own: u32 = text.split_whitespace().next()?.parse().ok()?;
    // The command name is in parentheses and may hold spaces: fields resume after the last ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((own, ppid, utime + stime))
}

/// The server: version, the settings that decide durability and speed, and (when it runs on
/// this machine and `/proc` shows it) its postmaster's pid, for CPU accounting.
#[derive(Debug, Clone, Serialize)]
struct ServerInfo {
    version: String,
    settings: Vec<(String, String)>,
    postmaster_pid: Option<u32>,
}

/// The settings the report quotes.
const SETTINGS: [&str; 14] = [
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "commit_siblings",
    "wal_buffers",
    "wal_writer_delay",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "data_checksums",
    "wal_level",
    "listen_addresses",
];

impl ServerInfo {
    async fn read(client: &Client) -> anyhow::Result<Self> {
        let version: String = client.query_one("SHOW server_version", &[]).await.context("SHOW server_version")?.get(0);
        let names: Vec<&str> = SETTINGS.to_vec();
        let rows = client
            .query("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name", &[&names])
            .await
            .context("read pg_settings")?;
        let settings: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let setting = |name: &str| settings.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        for required in ["fsync", "synchronous_commit", "full_page_writes"] {
            ensure!(
                setting(required) == Some("on"),
                "the server runs with {required}={}; the baseline needs durable commits (fsync, synchronous_commit \
                 and full_page_writes on): use benches/scripts/postgres.sh",
                setting(required).unwrap_or("?")
            );
        }
        // The postmaster's pid is the first line of DATA/postmaster.pid (readable when local and root or owner).
        let data_dir: Option<String> = match client.query_one("SHOW data_directory", &[]).await {
            Ok(row) => Some(row.get(0)),
            Err(_) => None,
        };
        let postmaster_pid = data_dir
            .and_then(|dir| std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok())
            .and_then(|text| text.lines().next()?.trim().parse().ok())
            .filter(|pid: &u32| proc_stat(&pid.to_string()).is_some());
        Ok(Self { version, settings, postmaster_pid })
    }

    fn settings_line(&self) -> String {
        self.settings.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
    }

    /// CPU seconds of the postmaster and all its children (backends, WAL writer, checkpointer...).
    fn cpu_seconds(&self) -> Option<f64> {
        let postmaster = self.postmaster_pid?;
        let mut ticks = proc_stat(&postmaster.to_string())?.2;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            if let Some((_, ppid, t)) = proc_stat(pid) {
                if ppid == postmaster {
                    ticks += t;
                }
            }
        }
        Some(ticks as f64 / CLOCK_TICKS_PER_SECOND)
    }
}

/// `pg_stat_wal` counters (PostgreSQL 14+); flushed by each backend when it goes idle, so
/// approximate at the edges of a run.
#[derive(Debug, Clone, Serialize)]
struct WalStats {
    records: i64,
    full_page_images: i64,
    bytes: i64,
    writes: i64,
    syncs: i64,
}

impl WalStats {
    async fn read(client: &Client) -> Option<Self> {
        let _ = client.batch_execute("SELECT pg_stat_force_next_flush()").await;
        let row = client
            .query_one("SELECT wal_records, wal_fpi, wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal", &[])
            .await
            .ok()?;
        Some(Self {
            records: row.get(0),
            full_page_images: row.get(1),
            bytes: row.get(2),
            writes: row.get(3),
            syncs: row.get(4),
        })
    }

    fn minus(&self, before: &Self) -> Self {
        Self {
            records: self.records - before.records,
            full_page_images: self.full_page_images - before.full_page_images,
            bytes: self.bytes - before.bytes,
            writes: self.writes - before.writes,
            syncs: self.syncs - before.syncs,
        }
    }
}

/// Re-reads every row of `tenants` in seq order and re-checks the chain against the heads:
/// contiguous seqs, prevHash links, entryHash recomputed from the stored columns (the
/// envelope rebuilt from payload type, payload, key id and signature), recordedAt never
/// decreasing. Returns the number of entries checked.
async fn check_chain(client: &Client, tenants: &[String]) -> anyhow::Result<u64> {
    let mut checked = 0;
    for tenant in tenants {
        let rows = client
            .query_raw(
                "SELECT seq, recorded_at, payload_type, payload, signature, key_id, prev_hash, entry_hash \
                 FROM events WHERE tenant = $1 ORDER BY seq",
                [tenant],
            )
            .await
            .context("read the events back")?;
        futures::pin_mut!(rows);
        let mut expected_seq: i64 = 0;
        let mut prev: Hash32 = GENESIS_PREV_HASH;
        let mut last_recorded = 0u64;
        while let Some(row) = rows.try_next().await.context("read the events back")? {
            let seq: i64 = row.get(0);
            ensure!(seq == expected_seq, "{tenant}: seq {seq} where {expected_seq} was expected");
            let recorded: SystemTime = row.get(1);
            let recorded_ns = recorded
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64 * 1000)
                .context("recorded_at before the epoch")?;
            ensure!(recorded_ns >= last_recorded, "{tenant}: recorded_at decreases at seq {seq}");
            let envelope = Envelope {
                payload_type: row.get(2),
                payload: row.get(3),
                signatures: vec![ledger::Signature { keyid: row.get(5), sig: row.get(4) }],
            };
            let stored_prev: Vec<u8> = row.get(6);
            let stored_hash: Vec<u8> = row.get(7);
            ensure!(stored_prev == prev, "{tenant}: prev_hash of seq {seq} is not the previous entry_hash");
            let hash = entry_hash(seq as u64, recorded_ns, &prev, &payload_hash(&envelope.to_bytes()));
            ensure!(stored_hash == hash, "{tenant}: entry_hash of seq {seq} does not re-hash");
            prev = hash;
            last_recorded = recorded_ns;
            expected_seq += 1;
            checked += 1;
        }
        let head = client
            .query_one("SELECT seq, entry_hash FROM heads WHERE tenant = $1", &[tenant])
            .await
            .context("read the head")?;
        let (head_seq, head_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
        ensure!(head_seq == expected_seq && head_hash == prev, "{tenant}: the head does not match the last entry");
    }
    Ok(checked)
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    payload_bytes: usize,
    pae_bytes: usize,
    envelope_bytes: usize,
}

#[derive(Debug, Serialize)]
struct Config {
    conn: String,
    clients: usize,
    batch: usize,
    tenants: usize,
    verify_signatures: bool,
    duration_seconds: Option<f64>,
    events_requested: Option<u64>,
    pool_events: u64,
    padding: usize,
    sizes: Sizes,
    tokio_worker_threads: usize,
    cores: usize,
    events_before: i64,
    server: ServerInfo,
}

#[derive(Debug, Serialize)]
struct Latency {
    mean: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    config: Config,
    elapsed_seconds: f64,
    stopped_early_pool_exhausted: bool,
    events: u64,
    transactions: u64,
    events_per_second: f64,
    transactions_per_second: f64,
    /// Per request (one transaction), from the start of its checks to the acknowledged COMMIT.
    latency_us: Latency,
    signing_seconds: f64,
    /// Summed over clients: time inside signature verification.
    verify_seconds: f64,
    client_cpu_seconds: Option<f64>,
    server_cpu_seconds: Option<f64>,
    wal: Option<WalStats>,
    load_average_before: String,
    load_average_after: String,
    chain_checked: Option<u64>,
}

impl Report {
    fn print(&self) {
        let c = &self.config;
        let ms = |us: u64| us as f64 / 1000.0;
        let per_event = |seconds: Option<f64>| {
            seconds.map_or_else(
                || "n/a".to_owned(),
                |s| format!("{s:.2} s = {:.1} µs/event", s * 1e6 / self.events as f64),
            )
        };
        println!("PostgreSQL {} on {}", c.server.version, c.conn);
        println!("  settings: {}", c.server.settings_line());
        println!(
            "config: clients={} batch={} tenants={} verify_signatures={} {} padding={} (payload {} B, envelope {} B) \
             tokio_threads={} cores={}",
            c.clients,
            c.batch,
            c.tenants,
            c.verify_signatures,
            match (c.duration_seconds, c.events_requested) {
                (Some(d), _) => format!("duration={d}s"),
                (None, Some(n)) => format!("events={n}"),
                (None, None) => String::new(),
            },
            c.padding,
            c.sizes.payload_bytes,
            c.sizes.envelope_bytes,
            c.tokio_worker_threads,
            c.cores
        );
        println!(
            "result: {} events in {} transactions in {:.2} s = {:.0} events/s, {:.0} transactions/s{}",
            self.events,
            self.transactions,
            self.elapsed_seconds,
            self.events_per_second,
            self.transactions_per_second,
            if self.stopped_early_pool_exhausted { " (stopped early: pre-signed pool exhausted)" } else { "" }
        );
        let l = &self.latency_us;
        println!(
            "latency per transaction (ms): mean {:.3} p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            l.mean / 1000.0,
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        );
        if let Some(wal) = &self.wal {
            println!(
                "wal: {} syncs ({:.1} events/sync), {} writes, {:.0} bytes/event, {} full-page images",
                wal.syncs,
                self.events as f64 / wal.syncs.max(1) as f64,
                wal.writes,
                wal.bytes as f64 / self.events as f64,
                wal.full_page_images
            );
        }
        println!(
            "cpu: client {} (wall time in signature checks, summed over clients: {:.2} s), server {}; \
             signing beforehand {:.2} s",
            per_event(self.client_cpu_seconds),
            self.verify_seconds,
            per_event(self.server_cpu_seconds),
            self.signing_seconds
        );
        println!("load average: before {} / after {}", self.load_average_before, self.load_average_after);
        if let Some(checked) = self.chain_checked {
            println!("chain: {checked} entries re-hashed, heads match");
        }
    }
}

/// The ledger's checks before the lock: payload type, one signature, key id, body, tenant,
/// known key, envelope bytes and hash, then (optionally) the signatures; returns the time
/// spent verifying signatures.
fn prepare(
    batch: Vec<AppendEvent>,
    keys: &HashMap<KeyId, VerifyingKey>,
    tenant: &str,
    verify: bool,
) -> anyhow::Result<(Vec<Prepared>, Duration)> {
    let mut prepared = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    let mut signatures = Vec::with_capacity(batch.len());
    let mut public_keys = Vec::with_capacity(batch.len());
    for (index, event) in batch.into_iter().enumerate() {
        let envelope = event.envelope;
        ensure!(
            envelope.payload_type == EVENT_PAYLOAD_TYPE,
            "event {index}: payloadType must be {EVENT_PAYLOAD_TYPE:?}"
        );
        let [signature] = envelope.signatures.as_slice() else {
            bail!("event {index}: exactly one signature is required");
        };
        let key_id = KeyId::from_hex(&signature.keyid).with_context(|| format!("event {index}: keyid"))?;
        let sig = Signature::from_slice(&signature.sig).with_context(|| format!("event {index}: signature"))?;
        let parsed = ParsedEvent::parse(&envelope.payload).with_context(|| format!("event {index}: body"))?;
        ensure!(
            parsed.header.tenant == tenant,
            "event {index} is for tenant {:?}, the client appends to {:?}",
            parsed.header.tenant,
            tenant
        );
        let public_key = *keys.get(&key_id).with_context(|| format!("event {index}: unknown key {key_id}"))?;
        if verify {
            messages.push(envelope.signed_bytes());
            signatures.push(sig);
            public_keys.push(public_key);
        }
        let envelope_bytes = envelope.to_bytes();
        let Envelope { payload, signatures: mut sigs, .. } = envelope;
        let signature = sigs.pop().expect("exactly one signature, checked above");
        prepared.push(Prepared {
            event_id: parsed.header.event_id,
            payload,
            signature: signature.sig,
            key_id: signature.keyid,
            payload_hash: payload_hash(&envelope_bytes),
        });
    }
    let started = Instant::now();
    if verify {
        if let Some(index) = ledger::signatures::first_bad_signature(&messages, &signatures, &public_keys) {
            bail!("event {index}: bad signature");
        }
    }
    Ok((prepared, started.elapsed()))
}
