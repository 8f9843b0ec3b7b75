//! The run between "server is up" and "server may stop": setup, warmup, pre-signing, the
//! measured window, the drain, and the report's figures.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench_harness::latency::{rate, LatencySummary};
use bench_harness::procfs::ProcSample;
use ledger::KeyPair;
use proto::v1 as pb;
use tokio::sync::{oneshot, watch};

use crate::appenders::{measured_client, warmup_client, ClientStats};
use crate::args::{Args, Mix, Stop};
use crate::events::{presign, presign_plan, register_agent, run_id, seed_from_time, EventFactory, MAX_NOTES_BYTES};
use crate::monitor::monitor;
use crate::readers::{query_client, subscriber, QueryStats, SubscribeStats};
use crate::report::{
    AppendReport, ClientReport, ErrorReport, QueryReport, Report, RunConfig, ServerStats, SubscribeReport, WarmupStats,
};
use crate::shared::{status_error, Phase, Shared};
use crate::target::{wait_until_serving, Target};

/// Everything between "server is up" and "server may stop".
pub(crate) async fn drive(args: &Args, stop: Stop, target: &Target, clk_tck: u64) -> anyhow::Result<Report> {
    let connect = |what: String| async move {
        ledger_client::connect(&target.url, CLIENT_MAX_MESSAGE_BYTES).await.with_context(|| what)
    };
    let mut setup = connect("setup connection".into()).await?;
    wait_until_serving(&target.url).await?;
    let info = setup.get_info(pb::GetInfoRequest {}).await.map_err(status_error("GetInfo"))?.into_inner();
    let admin = KeyPair::load(&target.admin_key)
        .with_context(|| format!("loading the admin key {}", target.admin_key.display()))?;
    if admin.key_id().to_hex() != info.admin_key_id {
        bail!(
            "{} (key id {}) is not this server's admin key (id {})",
            target.admin_key.display(),
            admin.key_id().to_hex(),
            info.admin_key_id
        );
    }
    let max_events = usize::try_from(info.max_events_per_append).unwrap_or(usize::MAX);
    if args.batch > max_events {
        bail!("--batch {} exceeds the server's max_events_per_append ({max_events})", args.batch);
    }

    // Tenants, agent keys, event factories.
    let run_id = run_id();
    let tenants: Vec<String> = (0..args.tenants).map(|t| format!("{}-{t}", args.tenant_prefix)).collect();
    let agent_id = format!("ledger-bench-{run_id}");
    let mut keys = Vec::new();
    let mut initial_sizes = Vec::new();
    for tenant in &tenants {
        let (key, size) = register_agent(&mut setup, &admin, tenant, &agent_id).await?;
        keys.push(Arc::new(key));
        initial_sizes.push(size);
    }
    let occurred_at: Arc<str> = ledger_client::now_rfc3339().into();
    let factories: Vec<EventFactory> = (0..args.clients)
        .map(|c| {
            let t = c % args.tenants;
            EventFactory::new(
                tenants[t].clone(),
                t,
                agent_id.clone(),
                c,
                format!("{run_id}-c{c}"),
                occurred_at.clone(),
                args.payload_bytes,
                keys[t].clone(),
            )
        })
        .collect();
    let payload_len = factories[0].body("m", 100_000).len();
    if factories[0].padding > MAX_NOTES_BYTES {
        bail!("--payload-bytes {} needs more padding than the catalogue's 60 KiB data.notes", args.payload_bytes);
    }
    if payload_len as u64 > info.max_payload_bytes {
        bail!("events of {payload_len} bytes exceed the server's max_payload_bytes ({})", info.max_payload_bytes);
    }
    let request_estimate = args.batch * (payload_len + ENVELOPE_OVERHEAD_BYTES);
    if request_estimate > ledger_client::DEFAULT_MAX_MESSAGE_BYTES {
        bail!(
            "a request of {} events of ~{payload_len} bytes is ~{request_estimate} bytes, over the server's default \
             4 MiB message limit: lower --batch or --payload-bytes",
            args.batch
        );
    }

    let shared = Arc::new(Shared::new(&initial_sizes, Duration::from_secs_f64(args.request_timeout)));
    let (phase_tx, phase_rx) = watch::channel(Phase::Warmup);

    // Connections: appenders, subscribers, query clients.
    let append_clients =
        futures::future::try_join_all((0..args.clients).map(|c| connect(format!("connecting append client {c}"))))
            .await?;
    let subscribers = if args.mix == Mix::AppendSubscribe {
        let mut handles = Vec::new();
        for (t, tenant) in tenants.iter().enumerate() {
            let client = connect(format!("connecting the subscriber of {tenant}")).await?;
            let task = subscriber(client, t, tenant.clone(), initial_sizes[t], shared.clone(), phase_rx.clone());
            handles.push(tokio::spawn(task));
        }
        handles
    } else {
        Vec::new()
    };
    let queriers = if args.mix == Mix::AppendQuery {
        let mut handles = Vec::new();
        let tenants = Arc::new(tenants.clone());
        for q in 0..args.query_clients {
            let client = connect(format!("connecting query client {q}")).await?;
            let seed = seed_from_time() ^ (q as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            handles.push(tokio::spawn(query_client(client, tenants.clone(), shared.clone(), seed, phase_rx.clone())));
        }
        handles
    } else {
        Vec::new()
    };

    // Warmup: unmeasured, events signed inline.
    let warmup = Duration::from_secs_f64(args.warmup);
    let warmup_started = Instant::now();
    let deadline = warmup_started + warmup;
    let handles: Vec<_> = append_clients
        .into_iter()
        .zip(&factories)
        .map(|(client, factory)| {
            tokio::spawn(warmup_client(client, factory.clone(), args.batch, deadline, shared.clone()))
        })
        .collect();
    let mut append_clients = Vec::new();
    let mut warmup_events = 0;
    for handle in handles {
        let (client, events) = handle.await.context("a warmup client panicked")?;
        append_clients.push(client);
        warmup_events += events;
    }
    let warmup_seconds = warmup_started.elapsed().as_secs_f64();
    let warmup_stats = WarmupStats {
        seconds: warmup_seconds,
        events: warmup_events,
        events_per_s: rate(warmup_events, warmup_seconds),
    };

    // Pre-signing: the server idles meanwhile.
    let _ = phase_tx.send(Phase::Presign);
    let mut notes = Vec::new();
    let per_client = presign_plan(args, stop, &warmup_stats, payload_len, &mut notes)?;
    let presign_started = Instant::now();
    let presign_total: u64 = per_client.iter().sum();
    let pools = {
        let (factories, per_client, batch) = (factories.clone(), per_client.clone(), args.batch);
        tokio::task::spawn_blocking(move || presign(&factories, &per_client, batch))
            .await
            .context("the pre-signing threads panicked")?
    };
    let presign_seconds = presign_started.elapsed().as_secs_f64();

    // The measured window.
    for (t, from) in shared.window_from.iter().enumerate() {
        from.store(shared.tenant_size(t), Ordering::SeqCst);
    }
    let server_before = target.pid.map(|pid| ProcSample::read(pid, clk_tck)).transpose()?;
    let client_before = ProcSample::read_self(clk_tck)?;
    let (monitor_stop, monitor_stopped) = oneshot::channel();
    let window_started = Instant::now();
    let _ = phase_tx.send(Phase::Measure);
    let monitor = tokio::spawn(monitor(shared.clone(), target.pid, clk_tck, window_started, monitor_stopped));
    let deadline = match stop {
        Stop::Duration(duration) => Some(window_started + duration),
        Stop::Events(_) => None,
    };
    let handles: Vec<_> = append_clients
        .into_iter()
        .zip(pools)
        .zip(&factories)
        .map(|((client, pool), factory)| {
            tokio::spawn(measured_client(client, factory.clone(), pool, args.batch, deadline, shared.clone()))
        })
        .collect();
    let mut appends = ClientStats::new();
    for handle in handles {
        appends.merge(handle.await.context("an append client panicked")?);
    }
    let window = window_started.elapsed();
    // Set before Drain: subscribers stop once they reach it.
    for (t, to) in shared.window_to.iter().enumerate() {
        to.store(shared.tenant_size(t), Ordering::SeqCst);
    }
    let _ = phase_tx.send(Phase::Drain);
    // The server may have died under load: report what was measured, with the reason.
    let server_after = target.pid.and_then(|pid| {
        ProcSample::read(pid, clk_tck).map_err(|e| notes.push(format!("no server CPU/RSS: {e:#}"))).ok()
    });
    let client_after = ProcSample::read_self(clk_tck)?;
    let _ = monitor_stop.send(());
    let timeline = monitor.await.context("the monitor panicked")?;

    // Query clients stop at Drain; subscribers deliver the window's tail, or time out.
    let mut query = QueryStats::new();
    for handle in queriers {
        query.merge(handle.await.context("a query client panicked")?);
    }
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs_f64(args.drain_timeout);
    let mut subscribe = SubscribeStats::new();
    for mut handle in subscribers {
        let joined = match tokio::time::timeout_at(drain_deadline.into(), &mut handle).await {
            Ok(joined) => joined,
            Err(_) => {
                // Too slow: stop every subscriber where it is.
                let _ = phase_tx.send(Phase::Done);
                handle.await
            }
        };
        subscribe.merge(joined.context("a subscriber panicked")?);
    }
    let _ = phase_tx.send(Phase::Done);
    subscribe.drain_seconds = drain_started.elapsed().as_secs_f64();

    // Assemble.
    let seconds = window.as_secs_f64();
    let errors = shared.errors.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let server = ServerStats::from_samples(server_before, server_after, seconds, appends.events);
    let client_cpu = client_after.cpu_seconds - client_before.cpu_seconds;
    if appends.signed_inline > 0 {
        notes.push(format!(
            "the pre-signed pool ran dry: {} event(s) were signed during the measured window (raise \
             --presign-events)",
            appends.signed_inline
        ));
    }
    let subscribe_report = (args.mix == Mix::AppendSubscribe).then(|| {
        let expected: u64 = shared
            .window_from
            .iter()
            .zip(&shared.window_to)
            .map(|(from, to)| to.load(Ordering::SeqCst).saturating_sub(from.load(Ordering::SeqCst)))
            .sum();
        SubscribeReport::new(&subscribe, expected, args.tenants)
    });
    let query_report = (args.mix == Mix::AppendQuery).then(|| QueryReport::new(&query, seconds));
    Ok(Report {
        config: RunConfig::placeholder(args, run_id, info.server_version),
        appends: AppendReport {
            seconds,
            events: appends.events,
            requests: appends.requests,
            events_per_s: rate(appends.events, seconds),
            requests_per_s: rate(appends.requests, seconds),
            latency_us: LatencySummary::of(&appends.latency),
            duplicates: appends.duplicates,
            payload_bytes: payload_len,
        },
        errors: ErrorReport::from(errors),
        server,
        client: ClientReport {
            cpu_seconds: client_cpu,
            cores_avg: client_cpu / seconds.max(1e-9),
            presigned_events: presign_total,
            presign_seconds,
            presign_events_per_s: rate(presign_total, presign_seconds),
            signed_during_window: appends.signed_inline,
        },
        warmup: warmup_stats,
        subscribe: subscribe_report,
        query: query_report,
        timeline,
        notes,
    })
}

/// The client's largest gRPC message (the server keeps its own limit).
pub(crate) const CLIENT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Envelope bytes beyond the payload on the wire and in memory (type, keyid, signature, framing).
pub(crate) const ENVELOPE_OVERHEAD_BYTES: usize = 200;
