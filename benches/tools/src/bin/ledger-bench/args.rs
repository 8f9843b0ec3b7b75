//! The command line: flags, their checks, and how the measured phase ends.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// What runs beside the appending clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mix {
    /// Appends only.
    Append,
    /// Appends, plus one live Subscribe stream per tenant.
    AppendSubscribe,
    /// Appends, plus query clients (GetInclusionProof + GetEntry of random seqs).
    AppendQuery,
}

impl Mix {
    /// The name on the command line.
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Args {
    /// Drive an already running server (e.g. http://127.0.0.1:50051) instead of spawning one.
    #[arg(long)]
    pub(crate) server: Option<String>,
    /// PID of the --server process, to report its CPU and RSS.
    #[arg(long, requires = "server")]
    pub(crate) server_pid: Option<u32>,
    /// release-ledger binary to spawn (default: the one next to this executable).
    #[arg(long, conflicts_with = "server")]
    pub(crate) server_bin: Option<PathBuf>,
    /// Data dir: of the spawned server (default: a fresh temp dir, deleted at the end), or with
    /// --server, where to find keys/admin.pem.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Admin key (PKCS#8 PEM) used to register the bench's agent keys (default:
    /// DATA_DIR/keys/admin.pem).
    #[arg(long)]
    pub(crate) admin_key: Option<PathBuf>,
    /// Concurrent appending clients, each on its own connection.
    #[arg(long, default_value_t = 16)]
    pub(crate) clients: usize,
    /// Events per request: 1 = Append, more = AppendBatch.
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Approximate size of each event body (JSON), bytes.
    #[arg(long, default_value_t = 256)]
    pub(crate) payload_bytes: usize,
    /// Measured seconds (default 10 unless --events is given).
    #[arg(long, conflicts_with = "events")]
    pub(crate) duration: Option<f64>,
    /// Measured events in total (all pre-signed before the measured window).
    #[arg(long)]
    pub(crate) events: Option<u64>,
    /// Tenants; clients are spread over them round-robin, each tenant has its own agent key.
    #[arg(long, default_value_t = 1)]
    pub(crate) tenants: usize,
    /// Tenant names are PREFIX-0, PREFIX-1, ...
    #[arg(long, default_value = "bench")]
    pub(crate) tenant_prefix: String,
    /// Workload mix.
    #[arg(long, value_enum, default_value_t = Mix::Append)]
    pub(crate) mix: Mix,
    /// Query clients for --mix append-query.
    #[arg(long, default_value_t = 4)]
    pub(crate) query_clients: usize,
    /// Unmeasured seconds of load before the measured window.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) warmup: f64,
    /// With --duration: events to pre-sign in total (default: the warmup rate x duration x 2.5).
    #[arg(long)]
    pub(crate) presign_events: Option<u64>,
    /// Memory budget of pre-signed events, MiB.
    #[arg(long, default_value_t = 4096)]
    pub(crate) presign_max_mib: u64,
    /// A request without an answer after this many seconds counts as DeadlineExceeded.
    #[arg(long, default_value_t = 30.0)]
    pub(crate) request_timeout: f64,
    /// Seconds the subscribers may take after the window to deliver the window's last entries.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) drain_timeout: f64,
    /// Exit 0 even if some requests failed.
    #[arg(long)]
    pub(crate) allow_errors: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
}

/// How the measured phase ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// After this long.
    Duration(Duration),
    /// After this many events (all pre-signed).
    Events(u64),
}

impl Args {
    pub(crate) fn check(&self) -> anyhow::Result<()> {
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

    pub(crate) fn stop(&self) -> Stop {
        match (self.events, self.duration) {
            (Some(events), _) => Stop::Events(events),
            (None, Some(seconds)) => Stop::Duration(Duration::from_secs_f64(seconds)),
            (None, None) => Stop::Duration(Duration::from_secs(10)),
        }
    }
}
