//! The run: schema, connections, pre-signed pools, the clients released together, the report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use bench_harness::latency::new_histogram;
use bench_harness::procfs::load_average;
use bench_harness::{cores, stream};
use ed25519_dalek::VerifyingKey;
use ledger::hash::GENESIS_PREV_HASH;
use ledger::{AppendEvent, Clock as _, KeyId, SystemClock};
use tokio_postgres::{Client, NoTls};

use crate::client::{ClientWork, Session};
use crate::report::{Config, Latency, Report, Sizes};
use crate::server::{check_chain, delta, process_cpu_seconds, redact_password, ServerInfo, WalStats};
use crate::{Args, Limit, DEFAULT_POOL_PER_SECOND_MAX, DEFAULT_POOL_PER_SECOND_PER_BATCH_EVENT_AND_TENANT};

pub(crate) async fn run(args: Args, threads: usize) -> anyhow::Result<()> {
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

    let mut latency = new_histogram();
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

pub(crate) async fn connect(conn: &str) -> anyhow::Result<Client> {
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

pub(crate) async fn create_schema(client: &Client) -> anyhow::Result<()> {
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
pub(crate) fn sign_pools(agents: &[testkit::Agent], total: u64, padding: usize) -> Vec<Vec<AppendEvent>> {
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
