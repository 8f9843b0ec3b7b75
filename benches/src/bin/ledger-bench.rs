//! `ledger-bench`: a load generator for the real `release-ledger` server over gRPC.
//!
//! # What it measures
//!
//! N concurrent clients, each on its own HTTP/2 connection, append signed events (`Append` for
//! `--batch 1`, `AppendBatch` otherwise) one request at a time (closed loop: a client sends its
//! next request when the previous one has answered). A receipt means the event is fsynced, so
//! the figures are *durable* appends. Reported for the measured window (after `--warmup`):
//!
//! - events/s and requests/s (successful ones), per-request latency p50/p90/p99/p99.9/max
//!   (microseconds, HdrHistogram, successful requests only), and every non-OK response counted
//!   by method and gRPC code (the run fails unless `--allow-errors`);
//! - the server's CPU time (utime + stime from `/proc/PID/stat`) and average cores over the
//!   window, its peak RSS (`VmHWM`, over the process lifetime) and RSS at the end of the window;
//! - this process's own CPU over the window: on a small machine the load generator competes with
//!   the server for the same cores, and the report says so;
//! - a per-second timeline (events/s, slowest request, server cores) to expose stalls;
//! - `--mix append-subscribe`: one `Subscribe` stream per tenant, started before the warmup and
//!   consuming live; it counts the measured window's entries delivered and their lag from the
//!   server's commit time (`recorded_at`, taken when the commit group starts, before its fsync)
//!   to arrival here, and checks seq continuity and `prev_hash` links;
//! - `--mix append-query`: Q more clients issuing `GetInclusionProof` (against the newest
//!   checkpoint) and `GetEntry` of random committed seqs, with their own latency histograms.
//!
//! # How
//!
//! By default it spawns `release-ledger serve` on loopback ports in a fresh temporary data dir,
//! registers one agent key per tenant (signed by the data dir's admin key), and SIGTERMs the
//! server at the end (the shutdown time is reported). With `--server URL` it drives a running
//! server instead (`--admin-key` or `--data-dir` locates the admin key; CPU and RSS need
//! `--server-pid`). The measured events are signed before the measured window — all of them
//! with `--events N`; with `--duration` a pool sized from the warmup rate (with headroom) — so
//! that client-side Ed25519 signing does not compete with the server while it is measured. If a
//! pool runs dry, the client signs inline and the report counts those events.
//!
//! # What it does not measure
//!
//! - Client-side verification: responses are checked cheaply (counts, seqs, links), not
//!   cryptographically (`release-ledger prove` / `verify` do that).
//! - Open-loop load: latency is that of a closed loop at the given concurrency, so queueing
//!   under overload shows up as lower throughput rather than unbounded latency.
//! - Network cost beyond loopback, TLS, or a server tuned differently from its defaults.
//! - Lag across machines: it compares this machine's clock with the server's `recorded_at`.
//! - Pre-existing data: a fresh data dir starts empty; `scale-bench` covers large logs.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use ledger::{ExpectedVersion, KeyPair};
use ledger_client::Client;
use proto::v1 as pb;
use serde::Serialize;
use tokio::sync::{oneshot, watch};

// ------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------

/// What runs beside the appending clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Mix {
    /// Appends only.
    Append,
    /// Appends, plus one live Subscribe stream per tenant.
    AppendSubscribe,
    /// Appends, plus query clients (GetInclusionProof + GetEntry of random seqs).
    AppendQuery,
}

impl Mix {
    /// The name on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::Append => "append",
            Self::AppendSubscribe => "append-subscribe",
            Self::AppendQuery => "append-query",
        }
    }
}

/// Load generator for the release-ledger gRPC server: durable appends/s, latency percentiles,
/// server CPU and RSS.
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "ledger-bench", version)]
#[serde(rename_all = "camelCase")]
struct Args {
    /// Drive an already running server (e.g. http://127.0.0.1:50051) instead of spawning one.
    #[arg(long)]
    server: Option<String>,
    /// PID of the --server process, to report its CPU and RSS.
    #[arg(long, requires = "server")]
    server_pid: Option<u32>,
    /// release-ledger binary to spawn (default: the one next to this executable).
    #[arg(long, conflicts_with = "server")]
    server_bin: Option<PathBuf>,
    /// Data dir: of the spawned server (default: a fresh temp dir, deleted at the end), or with
    /// --server, where to find keys/admin.pem.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Admin key (PKCS#8 PEM) used to register the bench's agent keys (default:
    /// DATA_DIR/keys/admin.pem).
    #[arg(long)]
    admin_key: Option<PathBuf>,
    /// Concurrent appending clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Events per request: 1 = Append, more = AppendBatch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Approximate size of each event body (JSON), bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Measured seconds (default 10 unless --events is given).
    #[arg(long, conflicts_with = "events")]
    duration: Option<f64>,
    /// Measured events in total (all pre-signed before the measured window).
    #[arg(long)]
    events: Option<u64>,
    /// Tenants; clients are spread over them round-robin, each tenant has its own agent key.
    #[arg(long, default_value_t = 1)]
    tenants: usize,
    /// Tenant names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "bench")]
    tenant_prefix: String,
    /// Workload mix.
    #[arg(long, value_enum, default_value_t = Mix::Append)]
    mix: Mix,
    /// Query clients for --mix append-query.
    #[arg(long, default_value_t = 4)]
    query_clients: usize,
    /// Unmeasured seconds of load before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// With --duration: events to pre-sign in total (default: the warmup rate x duration x 2.5).
    #[arg(long)]
    presign_events: Option<u64>,
    /// Memory budget of pre-signed events, MiB.
    #[arg(long, default_value_t = 4096)]
    presign_max_mib: u64,
    /// A request without an answer after this many seconds counts as DeadlineExceeded.
    #[arg(long, default_value_t = 30.0)]
    request_timeout: f64,
    /// Seconds the subscribers may take after the window to deliver the window's last entries.
    #[arg(long, default_value_t = 10.0)]
    drain_timeout: f64,
    /// Exit 0 even if some requests failed.
    #[arg(long)]
    allow_errors: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// How the measured phase ends.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// After this long.
    Duration(Duration),
    /// After this many events (all pre-signed).
    Events(u64),
}

impl Args {
    fn check(&self) -> anyhow::Result<()> {
        if self.clients == 0 {
            bail!("--clients must be at least 1");
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.tenants == 0 || self.tenants > self.clients {
            bail!("--tenants must be between 1 and --clients ({}), not {}", self.clients, self.tenants);
        }
        if self.mix == Mix::AppendQuery && self.query_clients == 0 {
            bail!("--mix append-query needs --query-clients of at least 1");
        }
        if self.events == Some(0) {
            bail!("--events must be at least 1");
        }
        for (name, value) in [
            ("--duration", self.duration.unwrap_or(1.0)),
            ("--request-timeout", self.request_timeout),
            ("--drain-timeout", self.drain_timeout),
        ] {
            if !(value.is_finite() && value > 0.0) {
                bail!("{name} must be a positive number of seconds, not {value}");
            }
        }
        if !(self.warmup.is_finite() && self.warmup >= 0.0) {
            bail!("--warmup must be zero or a positive number of seconds, not {}", self.warmup);
        }
        ledger::event::validate_tenant(&format!("{}-0", self.tenant_prefix))
            .map_err(|e| anyhow!("--tenant-prefix {:?} makes invalid tenant names: {e}", self.tenant_prefix))?;
        Ok(())
    }

    fn stop(&self) -> Stop {
        match (self.events, self.duration) {
            (Some(events), _) => Stop::Events(events),
            (None, Some(seconds)) => Stop::Duration(Duration::from_secs_f64(seconds)),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Entry point
// ------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(json, &anyhow!(e).context("starting the async runtime")),
    };
    let allow_errors = args.allow_errors;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => return fail(json, &anyhow!(e).context("serialising the report")),
                }
            } else {
                print!("{}", report.human());
            }
            if let Some(shutdown) = report.server.shutdown.as_ref().filter(|s| !s.clean) {
                eprintln!("ledger-bench: the server did not shut down cleanly: {}", shutdown.exit);
                return ExitCode::FAILURE;
            }
            let failures = report.errors.total;
            if failures > 0 && !allow_errors {
                // stdout keeps the one report; the verdict goes to stderr.
                eprintln!(
                    "ledger-bench: {failures} request(s) failed (see the report's errors; --allow-errors to accept)"
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(json, &error),
    }
}

fn fail(json: bool, error: &anyhow::Error) -> ExitCode {
    let reason = format!("{error:#}").replace('\n', " ");
    if json {
        // stdout holds one JSON object: here, the failure.
        println!("{}", serde_json::json!({ "error": reason }));
    } else {
        eprintln!("ledger-bench: {reason}");
    }
    ExitCode::FAILURE
}

/// The whole run: server, setup, warmup, pre-signing, measured window, drain, report.
async fn run(args: Args) -> anyhow::Result<Report> {
    args.check()?;
    let stop = args.stop();
    let load_before = load_average();
    let clk_tck = clock_ticks_per_second();
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);

    // Starting and stopping a server block (on its stdout, on its exit): fine on this thread.
    let mut target = tokio::task::block_in_place(|| Target::resolve(&args))?;
    let result = drive(&args, stop, &target, clk_tck).await;
    // Stop a spawned server whatever happened; its Drop kills it if this is skipped.
    let stopped = target.spawned.as_mut().map(|server| tokio::task::block_in_place(|| server.stop_and_measure()));
    let mut report = result?;
    match stopped {
        Some(Ok(shutdown)) => report.server.shutdown = Some(shutdown),
        Some(Err(e)) => report.notes.push(format!("stopping the server: {e:#}")),
        None => {}
    }
    report.config = RunConfig {
        args: args.clone(),
        server_url: target.url.clone(),
        server_pid: target.pid,
        server_bin: target.spawned.as_ref().map(|s| s.bin.clone()),
        data_dir: target.data_dir.clone(),
        run_id: report.config.run_id.clone(),
        server_version: report.config.server_version.clone(),
        cores,
        clk_tck,
        load_before,
        load_after: load_average(),
    };
    if target.spawned.is_some() || target.pid.is_some() {
        report.notes.push(format!(
            "the server and this load generator share this machine's {cores} core(s): the client used {:.2} \
             cores on average during the window (gRPC, protobuf, bookkeeping; {} event(s) signed inline), \
             competing with the server, so the figures are a lower bound of the server alone",
            report.client.cores_avg, report.client.signed_during_window
        ));
    }
    Ok(report)
}

/// Everything between "server is up" and "server may stop".
async fn drive(args: &Args, stop: Stop, target: &Target, clk_tck: u64) -> anyhow::Result<Report> {
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
const CLIENT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Envelope bytes beyond the payload on the wire and in memory (type, keyid, signature, framing).
const ENVELOPE_OVERHEAD_BYTES: usize = 200;

// ------------------------------------------------------------------------------------------
// The server under test: spawned, or attached to
// ------------------------------------------------------------------------------------------

/// Where the server is and what is known about it.
#[derive(Debug)]
struct Target {
    url: String,
    pid: Option<u32>,
    admin_key: PathBuf,
    data_dir: Option<PathBuf>,
    spawned: Option<SpawnedServer>,
}

impl Target {
    fn resolve(args: &Args) -> anyhow::Result<Self> {
        if let Some(url) = &args.server {
            let admin_key = match (&args.admin_key, &args.data_dir) {
                (Some(key), _) => key.clone(),
                (None, Some(dir)) => ledger::KeyPaths::new(dir).admin,
                (None, None) => bail!("with --server, give --admin-key or --data-dir (to register the bench's keys)"),
            };
            return Ok(Self {
                url: url.clone(),
                pid: args.server_pid,
                admin_key,
                data_dir: args.data_dir.clone(),
                spawned: None,
            });
        }
        let bin = match &args.server_bin {
            Some(bin) => bin.clone(),
            None => default_server_bin()?,
        };
        let server = SpawnedServer::start(&bin, args.data_dir.as_deref())?;
        let admin_key = args.admin_key.clone().unwrap_or_else(|| ledger::KeyPaths::new(&server.data_dir).admin);
        Ok(Self {
            url: format!("http://{}", server.grpc),
            pid: Some(server.child.id()),
            admin_key,
            data_dir: Some(server.data_dir.clone()),
            spawned: Some(server),
        })
    }
}

/// `release-ledger` next to this executable.
fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this executable")?;
    let bin = exe.with_file_name("release-ledger");
    if !bin.is_file() {
        bail!(
            "no release-ledger next to {} (build it: cargo build --release -p api --bins), or pass --server-bin",
            exe.display()
        );
    }
    Ok(bin)
}

/// A `release-ledger serve` child; SIGKILLed when dropped unless stopped first.
#[derive(Debug)]
struct SpawnedServer {
    child: Child,
    bin: PathBuf,
    grpc: std::net::SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    /// The temporary dir holding the data dir and log, when --data-dir was not given.
    _temp: Option<tempfile::TempDir>,
}

/// How the spawned server ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Shutdown {
    /// From SIGTERM to exit.
    seconds: f64,
    /// Its exit status.
    exit: String,
    /// Whether it exited successfully.
    clean: bool,
    /// Bytes in the data dir before it was removed.
    data_dir_bytes: u64,
    /// Lines of its log at WARN or ERROR level.
    log_warnings: usize,
    /// The first few of them.
    log_warning_samples: Vec<String>,
}

impl SpawnedServer {
    /// How long the server may take to print its listening line.
    const START_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long after SIGTERM before SIGKILL (the server's own grace period is 10 s).
    const STOP_TIMEOUT: Duration = Duration::from_secs(20);

    /// Starts the server on loopback ports over `data_dir` (default: a fresh temp dir) and
    /// waits for its `{"event":"listening",...}` line.
    fn start(bin: &Path, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let (temp, data_dir, log) = match data_dir {
            Some(dir) => (None, dir.to_path_buf(), dir.with_extension("server.log")),
            None => {
                let temp = tempfile::Builder::new().prefix("ledger-bench-").tempdir().context("creating a temp dir")?;
                let data = temp.path().join("data");
                let log = temp.path().join("server.log");
                (Some(temp), data, log)
            }
        };
        let log_file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the server's stdout was not captured")?;
        // Read the first line on a thread (with a timeout), then keep draining stdout.
        let (line_tx, line_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = line_tx.send(read);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut server =
            Self { child, bin: bin.to_path_buf(), grpc: ([127, 0, 0, 1], 0).into(), data_dir, log, _temp: temp };
        let line = match line_rx.recv_timeout(Self::START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(server.startup_failure(&format!("reading its stdout: {e}"))),
            Err(_) => return Err(server.startup_failure("no listening line within 60 s")),
        };
        let parsed: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(_) if line.is_empty() => return Err(server.startup_failure("it printed nothing and closed its stdout")),
            Err(_) => return Err(server.startup_failure(&format!("unexpected first line {line:?}"))),
        };
        let grpc = parsed["server"]["grpc"].as_str().and_then(|addr| addr.parse().ok());
        match (parsed["event"].as_str(), grpc) {
            (Some("listening"), Some(grpc)) => server.grpc = grpc,
            _ => return Err(server.startup_failure(&format!("unexpected first line {line:?}"))),
        }
        Ok(server)
    }

    /// An error naming why the server did not start, with the tail of its log.
    fn startup_failure(&mut self, what: &str) -> anyhow::Error {
        let _ = self.child.kill();
        let status = self.child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        anyhow!(
            "the server {} did not start ({what}; {status}); log {}:\n{}",
            self.bin.display(),
            self.log.display(),
            tail.join("\n")
        )
    }

    /// SIGTERM, wait for the exit (SIGKILL after [`Self::STOP_TIMEOUT`]), and report.
    fn stop_and_measure(&mut self) -> anyhow::Result<Shutdown> {
        let pid = self.child.id().to_string();
        let started = Instant::now();
        let exited_early = self.child.try_wait().context("checking on the server")?;
        if exited_early.is_none() {
            let status = Command::new("kill").args(["-TERM", &pid]).status().context("running kill -TERM")?;
            if !status.success() {
                bail!("kill -TERM {pid} failed ({status})");
            }
        }
        let exit = loop {
            if let Some(exit) = self.child.try_wait().context("waiting for the server")? {
                break exit;
            }
            if started.elapsed() > Self::STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the server did not exit within {:?} of SIGTERM; killed it", Self::STOP_TIMEOUT);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let seconds = started.elapsed().as_secs_f64();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let warnings: Vec<&str> =
            log.lines().filter(|line| line.contains(" WARN ") || line.contains(" ERROR ")).collect();
        Ok(Shutdown {
            seconds,
            exit: match exited_early {
                Some(_) => format!("{exit} (before the bench asked it to stop)"),
                None => exit.to_string(),
            },
            clean: exited_early.is_none() && exit.success(),
            data_dir_bytes: dir_bytes(&self.data_dir),
            log_warnings: warnings.len(),
            log_warning_samples: warnings.iter().take(5).map(|line| (*line).to_owned()).collect(),
        })
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (up to 10 s) for the standard gRPC health service to report the Ledger as SERVING.
async fn wait_until_serving(url: &str) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .with_context(|| format!("bad server URL {url:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut health = HealthClient::new(channel);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: "release_ledger.v1.Ledger".into() };
        let last = match health.check(request).await {
            Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(response) => format!("status {:?}", response.get_ref().status()),
            Err(status) => ledger_client::status_line(&status),
        };
        if Instant::now() > deadline {
            bail!("the server at {url} is not SERVING after 10 s ({last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Total size of the files under `path`.
fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

// ------------------------------------------------------------------------------------------
// /proc sampling
// ------------------------------------------------------------------------------------------

/// CPU and memory of a process at one instant.
#[derive(Debug, Clone, Copy)]
struct ProcSample {
    /// utime + stime, seconds.
    cpu_seconds: f64,
    /// VmRSS, bytes.
    rss_bytes: u64,
    /// VmHWM (peak RSS over the process lifetime), bytes.
    peak_rss_bytes: u64,
}

impl ProcSample {
    fn read(pid: u32, clk_tck: u64) -> anyhow::Result<Self> {
        Self::read_path(&format!("/proc/{pid}"), clk_tck).with_context(|| format!("sampling process {pid}"))
    }

    fn read_self(clk_tck: u64) -> anyhow::Result<Self> {
        Self::read_path("/proc/self", clk_tck).context("sampling this process")
    }

    fn read_path(dir: &str, clk_tck: u64) -> anyhow::Result<Self> {
        let ticks = cpu_ticks(dir)?;
        let status =
            std::fs::read_to_string(format!("{dir}/status")).with_context(|| format!("reading {dir}/status"))?;
        Ok(Self {
            cpu_seconds: ticks as f64 / clk_tck as f64,
            rss_bytes: status_kib(&status, "VmRSS").unwrap_or(0) * 1024,
            peak_rss_bytes: status_kib(&status, "VmHWM").unwrap_or(0) * 1024,
        })
    }
}

/// utime + stime of `/proc/PID`, in clock ticks (fields 14 and 15 of `stat`; the command name
/// in field 2 may hold spaces and parentheses, so fields are counted after its last `)`).
fn cpu_ticks(dir: &str) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("{dir}/stat")).with_context(|| format!("reading {dir}/stat"))?;
    let after_comm = stat.rfind(')').map(|i| &stat[i + 1..]).context("malformed stat: no ')'")?;
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so utime (14) is index 11 and stime (15) index 12.
    let field = |index: usize| -> anyhow::Result<u64> {
        fields
            .get(index)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("malformed stat: field {} is missing", index + 3))
    };
    Ok(field(11)? + field(12)?)
}

/// A `kB` field of `/proc/PID/status`.
fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails, as on every Linux).
fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// `/proc/loadavg`, to record what else the machine was doing.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_owned())
}

// ------------------------------------------------------------------------------------------
// Event generation and pre-signing
// ------------------------------------------------------------------------------------------

/// Builds and signs one client's events: catalogue-valid `TestsPassed` signals (the server
/// refuses unknown types and bad data), unique event ids `RUN-cCLIENT-PHASE-N`, one stream per
/// client, a release per 16 events of a client (`RUN-cCLIENT-PHASE-N/16`, never declared, so no
/// decisions follow, and each release stays the size of a real one for the projection worker),
/// and `data.notes` padded so the body is about `--payload-bytes` long.
#[derive(Debug, Clone)]
struct EventFactory {
    tenant: String,
    /// Index of the tenant in [`Shared`]'s per-tenant vectors.
    tenant_index: usize,
    agent_id: String,
    stream: String,
    id_prefix: String,
    occurred_at: Arc<str>,
    padding: usize,
    key: Arc<KeyPair>,
}

impl EventFactory {
    #[allow(clippy::too_many_arguments)] // One call site, every argument named there.
    fn new(
        tenant: String,
        tenant_index: usize,
        agent_id: String,
        client: usize,
        id_prefix: String,
        occurred_at: Arc<str>,
        payload_bytes: usize,
        key: Arc<KeyPair>,
    ) -> Self {
        let mut factory = Self {
            tenant,
            tenant_index,
            agent_id,
            stream: format!("bench/client-{client}"),
            id_prefix,
            occurred_at,
            padding: 0,
            key,
        };
        // Size the padding on a typical event id (the counter's digits vary by a few bytes).
        let unpadded = factory.body("m", 100_000).len();
        factory.padding = payload_bytes.saturating_sub(unpadded);
        factory
    }

    /// The body of event `n` of `phase` ("w" = warmup, "m" = measured).
    fn body(&self, phase: &str, n: u64) -> Vec<u8> {
        let body = serde_json::json!({
            "tenant": self.tenant,
            "stream": self.stream,
            "type": "TestsPassed",
            "eventId": format!("{}-{phase}{n}", self.id_prefix),
            "occurredAt": &*self.occurred_at,
            "releaseId": format!("{}-{phase}{}", self.id_prefix, n / 16),
            "actor": { "agentId": self.agent_id },
            "data": {
                "module": "bench", "version": "1.0.0", "suite": "load", "passed": n, "failed": 0,
                "notes": "x".repeat(self.padding),
            },
        });
        serde_json::to_vec(&body).expect("a JSON value always serialises")
    }

    /// Event `n` of `phase`, signed.
    fn event(&self, phase: &str, n: u64) -> pb::AppendEvent {
        ledger_client::signed_event(self.body(phase, n), &self.key, ExpectedVersion::Any)
    }

    /// Events `from..from + count` of `phase`, signed.
    fn events(&self, phase: &str, from: u64, count: u64) -> Vec<pb::AppendEvent> {
        (from..from + count).map(|n| self.event(phase, n)).collect()
    }
}

/// The catalogue's limit on `data.notes`, which carries the padding.
const MAX_NOTES_BYTES: usize = 60 * 1024;

/// One client's pre-signed requests, in order.
type Pool = VecDeque<Vec<pb::AppendEvent>>;

/// Events each client pre-signs: `--events` split evenly, or with `--duration` the warmup rate
/// x duration x 2.5 (or `--presign-events`); bounded by `--presign-max-mib`.
fn presign_plan(
    args: &Args,
    stop: Stop,
    warmup: &WarmupStats,
    payload_len: usize,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<u64>> {
    const HEADROOM: f64 = 2.5;
    /// A guess used when there was no warmup to measure a rate.
    const GUESSED_EVENTS_PER_S: f64 = 20_000.0;
    let clients = args.clients as u64;
    let per_event = (payload_len + ENVELOPE_OVERHEAD_BYTES) as u64;
    let budget = args.presign_max_mib * 1024 * 1024 / per_event;
    let split = |total: u64| -> Vec<u64> {
        (0..clients).map(|c| total / clients + u64::from(c < total % clients)).collect::<Vec<_>>()
    };
    let total = match stop {
        Stop::Events(events) => {
            if events > budget {
                bail!(
                    "--events {events} at ~{per_event} bytes each exceeds --presign-max-mib {} (~{budget} events)",
                    args.presign_max_mib
                );
            }
            return Ok(split(events));
        }
        Stop::Duration(duration) => match args.presign_events {
            Some(total) => total,
            None => {
                let rate = if warmup.events > 0 && warmup.seconds > 0.0 {
                    warmup.events_per_s
                } else {
                    notes.push(format!(
                        "no warmup rate to size the pre-signed pool; guessed {GUESSED_EVENTS_PER_S} events/s"
                    ));
                    GUESSED_EVENTS_PER_S
                };
                (rate * duration.as_secs_f64() * HEADROOM).ceil() as u64
            }
        },
    };
    // At least a few requests per client.
    let floor = clients * 4 * args.batch as u64;
    let mut total = total.max(floor);
    if total > budget {
        notes.push(format!(
            "pre-signed pool capped at {budget} events by --presign-max-mib {}; clients sign inline once it runs dry",
            args.presign_max_mib
        ));
        total = budget.max(clients);
    }
    Ok(split(total))
}

/// Signs `per_client[c]` measured events for every client `c`, in requests of `batch`, on all
/// cores. Work is cut into chunks of whole requests so that even one client's events are
/// signed in parallel.
fn presign(factories: &[EventFactory], per_client: &[u64], batch: usize) -> Vec<Pool> {
    let chunk_events = (batch * 2048usize.div_ceil(batch)) as u64;
    let chunks: Vec<(usize, u64, u64)> = per_client
        .iter()
        .enumerate()
        .flat_map(|(c, &count)| {
            (0..count.div_ceil(chunk_events)).map(move |k| {
                let from = k * chunk_events;
                (c, from, chunk_events.min(count - from))
            })
        })
        .collect();
    let results: Vec<Mutex<Vec<Vec<pb::AppendEvent>>>> = chunks.iter().map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(1).clamp(1, chunks.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, from, count)) = chunks.get(i) else { break };
                let events = factories[c].events("m", from, count);
                let mut requests = Vec::with_capacity(events.len().div_ceil(batch));
                let mut events = events.into_iter().peekable();
                while events.peek().is_some() {
                    requests.push(events.by_ref().take(batch).collect());
                }
                *results[i].lock().unwrap_or_else(PoisonError::into_inner) = requests;
            });
        }
    });
    let mut pools: Vec<Pool> = per_client.iter().map(|_| VecDeque::new()).collect();
    for (&(c, _, _), result) in chunks.iter().zip(results) {
        pools[c].extend(result.into_inner().unwrap_or_else(PoisonError::into_inner));
    }
    pools
}

/// Registers a fresh agent key in `tenant` (signed by the admin key); returns it and the
/// tenant's size right after.
async fn register_agent(
    client: &mut Client,
    admin: &KeyPair,
    tenant: &str,
    agent_id: &str,
) -> anyhow::Result<(KeyPair, u64)> {
    let key = KeyPair::generate();
    let body = serde_json::json!({
        "tenant": tenant,
        "stream": "keys",
        "type": "AgentKeyRegistered",
        "eventId": format!("register-{}", key.key_id()),
        "occurredAt": ledger_client::now_rfc3339(),
        "actor": { "agentId": "admin" },
        "data": { "agentId": agent_id, "publicKey": key.public_key_base64(), "roles": [], "eventTypes": [] },
    });
    let body = serde_json::to_vec(&body).context("serialising the registration")?;
    let event = ledger_client::signed_event(body, admin, ExpectedVersion::Any);
    let receipt = client
        .append(pb::AppendRequest { event: Some(event) })
        .await
        .map_err(status_error("registering the bench agent key"))
        .with_context(|| format!("tenant {tenant}"))?
        .into_inner()
        .receipt
        .context("the registration's response has no receipt")?;
    Ok((key, receipt.seq + 1))
}

/// A run id for event ids and the agent id: the start time in base 36 (unique per run).
fn run_id() -> String {
    let mut n = u64::try_from(unix_nanos() / 1_000_000).unwrap_or(u64::MAX);
    let mut digits = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).expect("base-36 digits are ASCII")
}

// ------------------------------------------------------------------------------------------
// Shared state between the workload tasks
// ------------------------------------------------------------------------------------------

/// The phases every task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Load, not measured.
    Warmup,
    /// Appenders wait while their events are signed; queries pause.
    Presign,
    /// The measured window.
    Measure,
    /// Appends are over; subscribers catch up.
    Drain,
    /// Everything stops.
    Done,
}

/// Counters and registries the tasks share.
#[derive(Debug)]
struct Shared {
    /// Per tenant: one past the highest seq acknowledged so far.
    tenant_sizes: Vec<AtomicU64>,
    /// Per tenant: the first seq of the measured window (u64::MAX until it starts).
    window_from: Vec<AtomicU64>,
    /// Per tenant: one past the last seq of the measured window (u64::MAX until it ends).
    window_to: Vec<AtomicU64>,
    /// Events and requests acknowledged in the current timeline second, and its slowest request.
    tick_events: AtomicU64,
    tick_requests: AtomicU64,
    tick_max_latency_us: AtomicU64,
    errors: Mutex<ErrorLog>,
    request_timeout: Duration,
}

impl Shared {
    fn new(sizes: &[u64], request_timeout: Duration) -> Self {
        let atomics = |value: &dyn Fn(u64) -> u64| sizes.iter().map(|&s| AtomicU64::new(value(s))).collect();
        Self {
            tenant_sizes: atomics(&|s| s),
            window_from: atomics(&|_| u64::MAX),
            window_to: atomics(&|_| u64::MAX),
            tick_events: AtomicU64::new(0),
            tick_requests: AtomicU64::new(0),
            tick_max_latency_us: AtomicU64::new(0),
            errors: Mutex::new(ErrorLog::default()),
            request_timeout,
        }
    }

    fn tenant_size(&self, t: usize) -> u64 {
        self.tenant_sizes[t].load(Ordering::SeqCst)
    }

    fn error(&self, method: &str, code: &str, message: &str) {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner).add(method, code, message);
    }

    fn status(&self, method: &str, status: &tonic::Status) {
        self.error(method, &format!("{:?}", status.code()), status.message());
    }

    /// Runs `call` with the request timeout; a timeout is a `DeadlineExceeded` status.
    async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> (Duration, Result<T, tonic::Status>) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {:?} (client-side timeout)",
                self.request_timeout
            ))),
        };
        (started.elapsed(), result)
    }
}

/// Failed requests by method and gRPC code, with the first few messages.
#[derive(Debug, Default, Clone)]
struct ErrorLog {
    counts: BTreeMap<String, BTreeMap<String, u64>>,
    samples: Vec<String>,
}

impl ErrorLog {
    const SAMPLES: usize = 10;

    fn add(&mut self, method: &str, code: &str, message: &str) {
        *self.counts.entry(method.to_owned()).or_default().entry(code.to_owned()).or_default() += 1;
        let sample = format!("{method} {code}: {message}");
        if self.samples.len() < Self::SAMPLES && !self.samples.contains(&sample) {
            self.samples.push(sample);
        }
    }
}

/// Maps a status to an anyhow error naming the call.
fn status_error(what: &'static str) -> impl Fn(tonic::Status) -> anyhow::Error {
    move |status| anyhow!("{what}: {}", ledger_client::status_line(&status))
}

// ------------------------------------------------------------------------------------------
// Latency histograms
// ------------------------------------------------------------------------------------------

/// A histogram of microseconds, 1 µs to 1 h at 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(micros(elapsed).max(1));
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// The percentiles of a latency histogram, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct LatencySummary {
    count: u64,
    mean: f64,
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }

    /// `p50 1.2ms  p90 ...` for the table.
    fn human(&self) -> String {
        if self.count == 0 {
            return "(no samples)".into();
        }
        format!(
            "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {}, n={})",
            human_us(self.p50),
            human_us(self.p90),
            human_us(self.p99),
            human_us(self.p999),
            human_us(self.max),
            human_us(self.mean.round() as u64),
            self.count
        )
    }
}

fn merge_histogram(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Same bounds everywhere, so adding cannot fail; saturate rather than lose samples if it did.
    if into.add(from).is_err() {
        for value in from.iter_recorded() {
            into.saturating_record_n(value.value_iterated_to(), value.count_at_value());
        }
    }
}

// ------------------------------------------------------------------------------------------
// Workloads
// ------------------------------------------------------------------------------------------

/// Sends one request: `Append` for a batch size of 1, `AppendBatch` otherwise.
async fn send(
    client: &mut Client,
    shared: &Shared,
    use_batch: bool,
    mut events: Vec<pb::AppendEvent>,
) -> (&'static str, Duration, Result<Vec<pb::Receipt>, tonic::Status>) {
    if use_batch {
        let (elapsed, result) = shared.timed(client.append_batch(pb::AppendBatchRequest { events })).await;
        ("AppendBatch", elapsed, result.map(|r| r.receipts))
    } else {
        let event = events.pop();
        let (elapsed, result) = shared.timed(client.append(pb::AppendRequest { event })).await;
        ("Append", elapsed, result.map(|r| r.receipt.into_iter().collect()))
    }
}

/// Checks the receipts of `count` events of tenant `t` and advances the tenant's size; returns
/// the number of fresh (non-duplicate) events, or a client-side error message.
fn accept_receipts(shared: &Shared, t: usize, count: usize, receipts: &[pb::Receipt]) -> Result<(u64, u64), String> {
    if receipts.len() != count {
        return Err(format!("{} receipt(s) for {count} event(s)", receipts.len()));
    }
    let duplicates = receipts.iter().filter(|r| r.duplicate).count() as u64;
    if let Some(last) = receipts.iter().map(|r| r.seq).max() {
        shared.tenant_sizes[t].fetch_max(last + 1, Ordering::SeqCst);
    }
    Ok((count as u64 - duplicates, duplicates))
}

/// Warmup: appends events signed on the spot until `deadline`; returns the client and the
/// number of events acknowledged.
async fn warmup_client(
    mut client: Client,
    factory: EventFactory,
    batch: usize,
    deadline: Instant,
    shared: Arc<Shared>,
) -> (Client, u64) {
    let t = factory.tenant_index;
    let mut n = 0;
    let mut acknowledged = 0;
    while Instant::now() < deadline {
        let events = factory.events("w", n, batch as u64);
        n += batch as u64;
        let (method, _, result) = send(&mut client, &shared, batch > 1, events).await;
        match result {
            Ok(receipts) => match accept_receipts(&shared, t, batch, &receipts) {
                Ok((fresh, _)) => acknowledged += fresh,
                Err(message) => shared.error(method, "ClientCheck", &message),
            },
            Err(status) => {
                shared.status(method, &status);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (client, acknowledged)
}

/// What one append client did in the measured window.
#[derive(Debug)]
struct ClientStats {
    latency: Histogram<u64>,
    requests: u64,
    events: u64,
    duplicates: u64,
    signed_inline: u64,
}

impl ClientStats {
    fn new() -> Self {
        Self { latency: new_histogram(), requests: 0, events: 0, duplicates: 0, signed_inline: 0 }
    }

    fn merge(&mut self, other: Self) {
        merge_histogram(&mut self.latency, &other.latency);
        self.requests += other.requests;
        self.events += other.events;
        self.duplicates += other.duplicates;
        self.signed_inline += other.signed_inline;
    }
}

/// The measured phase of one client: sends its pre-signed requests until the pool is empty
/// (`--events`) or the deadline passes (`--duration`; signing inline if the pool runs dry).
async fn measured_client(
    mut client: Client,
    factory: EventFactory,
    mut pool: Pool,
    batch: usize,
    deadline: Option<Instant>,
    shared: Arc<Shared>,
) -> ClientStats {
    let t = factory.tenant_index;
    let mut stats = ClientStats::new();
    let mut next_inline = pool.iter().map(|r| r.len() as u64).sum::<u64>();
    loop {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let events = match (pool.pop_front(), deadline) {
            (Some(events), _) => events,
            (None, None) => break,
            (None, Some(_)) => {
                let events = factory.events("m", next_inline, batch as u64);
                next_inline += batch as u64;
                stats.signed_inline += batch as u64;
                events
            }
        };
        let count = events.len();
        let (method, elapsed, result) = send(&mut client, &shared, batch > 1, events).await;
        match result {
            Ok(receipts) => match accept_receipts(&shared, t, count, &receipts) {
                Ok((fresh, duplicates)) => {
                    record(&mut stats.latency, elapsed);
                    stats.requests += 1;
                    stats.events += fresh;
                    stats.duplicates += duplicates;
                    shared.tick_events.fetch_add(fresh, Ordering::Relaxed);
                    shared.tick_requests.fetch_add(1, Ordering::Relaxed);
                    shared.tick_max_latency_us.fetch_max(micros(elapsed), Ordering::Relaxed);
                }
                Err(message) => shared.error(method, "ClientCheck", &message),
            },
            Err(status) => {
                shared.status(method, &status);
                // Do not spin on a server that is down or refusing.
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    stats
}

/// Pause of an append client after a failed request.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What a subscriber saw.
#[derive(Debug)]
struct SubscribeStats {
    /// Entries of the measured window delivered.
    delivered: u64,
    /// Entries delivered in all (warmup and window).
    delivered_total: u64,
    /// Lag of the window's entries: arrival here minus the server's `recorded_at`.
    lag: Histogram<u64>,
    /// Entries whose seq was not the one expected next.
    gaps: u64,
    /// Entries whose `prev_hash` is not the previous entry's hash.
    chain_breaks: u64,
    /// Subscribers that received every entry of the window before the drain timeout.
    caught_up: usize,
    drain_seconds: f64,
}

impl SubscribeStats {
    fn new() -> Self {
        Self {
            delivered: 0,
            delivered_total: 0,
            lag: new_histogram(),
            gaps: 0,
            chain_breaks: 0,
            caught_up: 0,
            drain_seconds: 0.0,
        }
    }

    fn merge(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.delivered_total += other.delivered_total;
        merge_histogram(&mut self.lag, &other.lag);
        self.gaps += other.gaps;
        self.chain_breaks += other.chain_breaks;
        self.caught_up += other.caught_up;
    }
}

/// One live Subscribe stream of tenant `t` from `from`: counts the measured window's entries
/// and their lag, checks continuity, and ends once the window's last entry has arrived after
/// the appenders stopped (or at [`Phase::Done`]).
async fn subscriber(
    mut client: Client,
    t: usize,
    tenant: String,
    from: u64,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> SubscribeStats {
    let mut stats = SubscribeStats::new();
    let mut stream = match client.subscribe(pb::SubscribeRequest { tenant, from_seq: from }).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            shared.status("Subscribe", &status);
            return stats;
        }
    };
    let mut next = from;
    let mut previous_hash: Option<Vec<u8>> = None;
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase >= Phase::Drain && next >= shared.window_to[t].load(Ordering::SeqCst) {
            stats.caught_up = 1;
            break;
        }
        if now_phase == Phase::Done {
            break;
        }
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(entry)) => {
                    let arrived = unix_nanos();
                    stats.delivered_total += 1;
                    if entry.seq != next {
                        stats.gaps += 1;
                        shared.error("Subscribe", "ClientCheck", &format!("expected seq {next}, got {}", entry.seq));
                    } else if previous_hash.as_ref().is_some_and(|hash| *hash != entry.prev_hash) {
                        stats.chain_breaks += 1;
                        shared.error("Subscribe", "ClientCheck", &format!("seq {} does not link to its predecessor", entry.seq));
                    }
                    let in_window = entry.seq >= shared.window_from[t].load(Ordering::SeqCst)
                        && entry.seq < shared.window_to[t].load(Ordering::SeqCst);
                    if in_window {
                        stats.delivered += 1;
                        let lag = arrived.saturating_sub(i128::from(entry.recorded_at_unix_nanos)) / 1000;
                        stats.lag.saturating_record(u64::try_from(lag).unwrap_or(0).max(1));
                    }
                    next = entry.seq + 1;
                    previous_hash = Some(entry.entry_hash);
                }
                Ok(None) => {
                    shared.error("Subscribe", "ClientCheck", "the stream ended");
                    break;
                }
                Err(status) => {
                    shared.status("Subscribe", &status);
                    break;
                }
            },
            changed = phase.changed() => if changed.is_err() { break },
        }
    }
    stats
}

/// What the query clients did in the measured window.
#[derive(Debug)]
struct QueryStats {
    proof: Histogram<u64>,
    entry: Histogram<u64>,
}

impl QueryStats {
    fn new() -> Self {
        Self { proof: new_histogram(), entry: new_histogram() }
    }

    fn merge(&mut self, other: Self) {
        merge_histogram(&mut self.proof, &other.proof);
        merge_histogram(&mut self.entry, &other.entry);
    }
}

/// A query client: `GetInclusionProof` (newest checkpoint) then `GetEntry` of a random
/// acknowledged seq of a random tenant, over and over; records only in the measured window.
async fn query_client(
    mut client: Client,
    tenants: Arc<Vec<String>>,
    shared: Arc<Shared>,
    seed: u64,
    mut phase: watch::Receiver<Phase>,
) -> QueryStats {
    let mut stats = QueryStats::new();
    let mut rng = SplitMix64(seed);
    loop {
        let now_phase = *phase.borrow_and_update();
        match now_phase {
            Phase::Warmup | Phase::Measure => {}
            Phase::Presign => {
                if phase.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Phase::Drain | Phase::Done => break,
        }
        let measured = now_phase == Phase::Measure;
        let t = rng.below(tenants.len() as u64) as usize;
        let seq = rng.below(shared.tenant_size(t));
        let tenant = tenants[t].clone();

        let request = pb::GetInclusionProofRequest { tenant: tenant.clone(), seq, tree_size: 0 };
        let (elapsed, result) = shared.timed(client.get_inclusion_proof(request)).await;
        match result {
            Ok(proof) if proof.seq == seq && proof.tree_size > seq => {
                if measured {
                    record(&mut stats.proof, elapsed);
                }
            }
            Ok(proof) => shared.error(
                "GetInclusionProof",
                "ClientCheck",
                &format!("asked for seq {seq}, got seq {} in tree size {}", proof.seq, proof.tree_size),
            ),
            Err(status) => shared.status("GetInclusionProof", &status),
        }

        let key = Some(pb::get_entry_request::Key::Seq(seq));
        let (elapsed, result) = shared.timed(client.get_entry(pb::GetEntryRequest { tenant, key })).await;
        match result {
            Ok(entry) if entry.seq == seq => {
                if measured {
                    record(&mut stats.entry, elapsed);
                }
            }
            Ok(entry) => shared.error("GetEntry", "ClientCheck", &format!("asked for seq {seq}, got {}", entry.seq)),
            Err(status) => shared.status("GetEntry", &status),
        }
    }
    stats
}

/// A tiny PRNG for picking seqs (no dependency needed; quality is ample for this).
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn seed_from_time() -> u64 {
    (unix_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Nanoseconds since the Unix epoch, from the clock the server stamps `recorded_at` with.
fn unix_nanos() -> i128 {
    use ledger::Clock as _;
    i128::from(ledger::SystemClock.now_ns())
}

/// One second of the measured window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct TimelineRow {
    /// Seconds since the window started, at the end of this row.
    at: f64,
    events_per_s: f64,
    requests_per_s: f64,
    /// The slowest successful request that completed in this row.
    max_latency_us: u64,
    /// Server cores used in this row, when its pid is known.
    server_cores: Option<f64>,
}

/// Samples the shared counters (and the server's CPU) every second until stopped.
async fn monitor(
    shared: Arc<Shared>,
    pid: Option<u32>,
    clk_tck: u64,
    started: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Vec<TimelineRow> {
    let cpu = |pid: Option<u32>| pid.and_then(|pid| cpu_ticks(&format!("/proc/{pid}")).ok());
    let mut rows = Vec::new();
    let mut ticker = tokio::time::interval_at((started + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let (mut last_at, mut last_cpu) = (started, cpu(pid));
    loop {
        let stopped = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut stop => true,
        };
        let now = Instant::now();
        let seconds = now.duration_since(last_at).as_secs_f64();
        let events = shared.tick_events.swap(0, Ordering::Relaxed);
        let requests = shared.tick_requests.swap(0, Ordering::Relaxed);
        let max_latency_us = shared.tick_max_latency_us.swap(0, Ordering::Relaxed);
        let now_cpu = cpu(pid);
        if seconds > 0.05 || !stopped {
            let server_cores = match (last_cpu, now_cpu) {
                (Some(before), Some(after)) => Some((after - before) as f64 / clk_tck as f64 / seconds.max(1e-9)),
                _ => None,
            };
            rows.push(TimelineRow {
                at: now.duration_since(started).as_secs_f64(),
                events_per_s: rate(events, seconds),
                requests_per_s: rate(requests, seconds),
                max_latency_us,
                server_cores,
            });
        }
        (last_at, last_cpu) = (now, now_cpu);
        if stopped {
            return rows;
        }
    }
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

// ------------------------------------------------------------------------------------------
// Report
// ------------------------------------------------------------------------------------------

/// Everything a run found, printed as a table or as one JSON object.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    config: RunConfig,
    appends: AppendReport,
    errors: ErrorReport,
    server: ServerStats,
    client: ClientReport,
    warmup: WarmupStats,
    subscribe: Option<SubscribeReport>,
    query: Option<QueryReport>,
    timeline: Vec<TimelineRow>,
    notes: Vec<String>,
}

/// The exact configuration of a run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RunConfig {
    args: Args,
    server_url: String,
    server_pid: Option<u32>,
    server_bin: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    run_id: String,
    server_version: String,
    cores: usize,
    clk_tck: u64,
    load_before: String,
    load_after: String,
}

impl RunConfig {
    /// Filled in by [`run`] once the server is stopped.
    fn placeholder(args: &Args, run_id: String, server_version: String) -> Self {
        Self {
            args: args.clone(),
            server_url: String::new(),
            server_pid: None,
            server_bin: None,
            data_dir: None,
            run_id,
            server_version,
            cores: 0,
            clk_tck: 0,
            load_before: String::new(),
            load_after: String::new(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AppendReport {
    /// Length of the measured window.
    seconds: f64,
    events: u64,
    requests: u64,
    events_per_s: f64,
    requests_per_s: f64,
    /// Per successful request.
    latency_us: LatencySummary,
    /// Receipts flagged as duplicates (should be 0: every event id is fresh).
    duplicates: u64,
    /// Bytes of a typical event body.
    payload_bytes: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorReport {
    total: u64,
    /// Method -> gRPC code (or ClientCheck) -> count, over all phases.
    by_method: BTreeMap<String, BTreeMap<String, u64>>,
    samples: Vec<String>,
}

impl From<ErrorLog> for ErrorReport {
    fn from(log: ErrorLog) -> Self {
        let total = log.counts.values().flat_map(BTreeMap::values).sum();
        Self { total, by_method: log.counts, samples: log.samples }
    }
}

/// The server's resources over the window (when its pid is known) and its shutdown.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerStats {
    cpu_seconds: Option<f64>,
    cores_avg: Option<f64>,
    /// Server CPU per acknowledged event, microseconds.
    cpu_us_per_event: Option<f64>,
    /// VmHWM at the end of the window: the peak over the process lifetime.
    peak_rss_bytes: Option<u64>,
    rss_end_bytes: Option<u64>,
    shutdown: Option<Shutdown>,
}

impl ServerStats {
    fn from_samples(before: Option<ProcSample>, after: Option<ProcSample>, seconds: f64, events: u64) -> Self {
        let (Some(before), Some(after)) = (before, after) else { return Self::default() };
        let cpu = after.cpu_seconds - before.cpu_seconds;
        Self {
            cpu_seconds: Some(cpu),
            cores_avg: Some(cpu / seconds.max(1e-9)),
            cpu_us_per_event: (events > 0).then(|| cpu * 1e6 / events as f64),
            peak_rss_bytes: Some(after.peak_rss_bytes),
            rss_end_bytes: Some(after.rss_bytes),
            shutdown: None,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientReport {
    /// This process's CPU over the window.
    cpu_seconds: f64,
    cores_avg: f64,
    presigned_events: u64,
    presign_seconds: f64,
    presign_events_per_s: f64,
    /// Events signed inside the window because the pool ran dry.
    signed_during_window: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct WarmupStats {
    seconds: f64,
    events: u64,
    events_per_s: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscribeReport {
    streams: usize,
    /// Entries appended in the window, all tenants.
    expected: u64,
    /// Of those, delivered to the subscribers.
    delivered: u64,
    delivered_total: u64,
    lag_us: LatencySummary,
    gaps: u64,
    chain_breaks: u64,
    caught_up: usize,
    drain_seconds: f64,
}

impl SubscribeReport {
    fn new(stats: &SubscribeStats, expected: u64, streams: usize) -> Self {
        Self {
            streams,
            expected,
            delivered: stats.delivered,
            delivered_total: stats.delivered_total,
            lag_us: LatencySummary::of(&stats.lag),
            gaps: stats.gaps,
            chain_breaks: stats.chain_breaks,
            caught_up: stats.caught_up,
            drain_seconds: stats.drain_seconds,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct QueryReport {
    inclusion_proofs_per_s: f64,
    entries_per_s: f64,
    inclusion_proof_us: LatencySummary,
    get_entry_us: LatencySummary,
}

impl QueryReport {
    fn new(stats: &QueryStats, seconds: f64) -> Self {
        Self {
            inclusion_proofs_per_s: rate(stats.proof.len(), seconds),
            entries_per_s: rate(stats.entry.len(), seconds),
            inclusion_proof_us: LatencySummary::of(&stats.proof),
            get_entry_us: LatencySummary::of(&stats.entry),
        }
    }
}

impl Report {
    /// The table.
    fn human(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let a = &c.args;
        let stop = match (a.events, a.duration) {
            (Some(events), _) => format!("{events} events"),
            (None, Some(seconds)) => format!("{seconds} s"),
            (None, None) => "10 s".into(),
        };
        let _ = writeln!(
            out,
            "ledger-bench  {} client(s), batch {}, ~{} B payload, {} tenant(s), mix {}, {stop} after {} s warmup",
            a.clients,
            a.batch,
            self.appends.payload_bytes,
            a.tenants,
            a.mix.name(),
            a.warmup
        );
        let server = match (&c.server_bin, c.server_pid) {
            (Some(bin), Some(pid)) => format!("spawned {} (pid {pid})", bin.display()),
            (None, Some(pid)) => format!("{} (pid {pid})", c.server_url),
            _ => format!("{} (pid unknown: no CPU/RSS)", c.server_url),
        };
        let _ = writeln!(out, "server        {server}, version {}", c.server_version);
        let _ = writeln!(out, "machine       {} cores; load before {}, after {}", c.cores, c.load_before, c.load_after);
        let _ = writeln!(out);

        let ap = &self.appends;
        let _ = writeln!(out, "appends ({:.2} s measured)", ap.seconds);
        let _ = writeln!(out, "  events        {:>12}   {:>12.1} events/s", ap.events, ap.events_per_s);
        let _ = writeln!(out, "  requests      {:>12}   {:>12.1} requests/s", ap.requests, ap.requests_per_s);
        let _ = writeln!(out, "  latency       {}", ap.latency_us.human());
        if ap.duplicates > 0 {
            let _ = writeln!(out, "  duplicates    {}", ap.duplicates);
        }
        let _ = writeln!(out, "  errors        {}", self.errors.total);
        for (method, codes) in &self.errors.by_method {
            for (code, count) in codes {
                let _ = writeln!(out, "    {method:<18} {code:<20} {count}");
            }
        }
        for sample in &self.errors.samples {
            let _ = writeln!(out, "    e.g. {sample}");
        }

        if let Some(s) = &self.subscribe {
            let _ = writeln!(out, "subscribe ({} stream(s))", s.streams);
            let _ = writeln!(
                out,
                "  delivered     {} of {} window entries ({} in all); {} of {} caught up within {:.2} s after the window",
                s.delivered, s.expected, s.delivered_total, s.caught_up, s.streams, s.drain_seconds
            );
            let _ = writeln!(out, "  lag           {}", s.lag_us.human());
            if s.gaps + s.chain_breaks > 0 {
                let _ = writeln!(out, "  gaps          {}, chain breaks {}", s.gaps, s.chain_breaks);
            }
        }
        if let Some(q) = &self.query {
            let _ = writeln!(out, "query ({} client(s))", a.query_clients);
            let _ =
                writeln!(out, "  inclusion     {:>10.1}/s  {}", q.inclusion_proofs_per_s, q.inclusion_proof_us.human());
            let _ = writeln!(out, "  get entry     {:>10.1}/s  {}", q.entries_per_s, q.get_entry_us.human());
        }

        let sv = &self.server;
        let _ = writeln!(out, "server");
        match (sv.cpu_seconds, sv.cores_avg) {
            (Some(cpu), Some(cores)) => {
                let per_event = sv.cpu_us_per_event.map_or(String::new(), |us| format!(", {us:.1} µs/event"));
                let _ = writeln!(out, "  CPU           {cpu:.2} s ({cores:.2} cores avg{per_event})");
            }
            _ if c.server_pid.is_some() => {
                let _ = writeln!(out, "  CPU           unknown (see the notes)");
            }
            _ => {
                let _ = writeln!(out, "  CPU           unknown (pass --server-pid)");
            }
        }
        if let (Some(peak), Some(end)) = (sv.peak_rss_bytes, sv.rss_end_bytes) {
            let _ = writeln!(out, "  RSS           peak {}, at end {}", human_bytes(peak), human_bytes(end));
        }
        if let Some(s) = &sv.shutdown {
            let _ = writeln!(
                out,
                "  shutdown      {:.2} s after SIGTERM, {}; data dir {}; {} WARN/ERROR log line(s)",
                s.seconds,
                s.exit,
                human_bytes(s.data_dir_bytes),
                s.log_warnings
            );
            for line in &s.log_warning_samples {
                let _ = writeln!(out, "    {line}");
            }
        }
        let cl = &self.client;
        let _ = writeln!(out, "client (this process)");
        let _ = writeln!(out, "  CPU           {:.2} s ({:.2} cores avg) in the window", cl.cpu_seconds, cl.cores_avg);
        let _ = writeln!(
            out,
            "  pre-signed    {} events in {:.2} s ({:.0} events/s); {} signed inside the window",
            cl.presigned_events, cl.presign_seconds, cl.presign_events_per_s, cl.signed_during_window
        );
        let w = &self.warmup;
        let _ =
            writeln!(out, "  warmup        {} events in {:.2} s ({:.1} events/s)", w.events, w.seconds, w.events_per_s);

        if !self.timeline.is_empty() {
            let _ = writeln!(out, "timeline        at(s)   events/s  requests/s  slowest   server cores");
            for row in &self.timeline {
                let cores = row.server_cores.map_or("-".into(), |c| format!("{c:.2}"));
                let slowest = if row.requests_per_s > 0.0 { human_us(row.max_latency_us) } else { "-".into() };
                let _ = writeln!(
                    out,
                    "  {:>19.1} {:>10.0} {:>11.0} {:>8}   {cores}",
                    row.at, row.events_per_s, row.requests_per_s, slowest
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// Microseconds as `850µs`, `12.3ms` or `1.25s`.
fn human_us(us: u64) -> String {
    match us {
        0..=9_999 => format!("{us}µs"),
        10_000..=9_999_999 => format!("{:.1}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

fn human_bytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
