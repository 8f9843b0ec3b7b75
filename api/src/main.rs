//! `release-ledger`: the server (`serve`) and its client commands.
//!
//! Human output by default, `--json` for machines; any failure exits non-zero with one line
//! saying why.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use api::client::{self, status_line, EventSpec};
use api::connections::ConnectionOptions;
use api::retry::RetryPolicy;
use api::server::{
    self, ServeOptions, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_METRICS_LISTEN,
};
use api::telemetry::{self, LogFormat};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use ledger::{ExpectedVersion, KeyPair};
use ledger_tools::{Format, Table};
use proto::v1 as pb;

const DEFAULT_SERVER: &str = "http://127.0.0.1:50051";

/// Release Ledger: the tamper-evident record of every software-release decision.
#[derive(Debug, Parser)]
#[command(name = "release-ledger", version, about)]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "RELEASE_LEDGER_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the ledger server (initialises the data dir on first start).
    Serve(ServeArgs),
    /// Makes a data dir that refuses to open (corruption, lost entries) open again: keeps a
    /// copy of db/, keeps every whole tenant log that verifies, and records what was lost.
    /// Stop the server first. Restoring a backup is the better way out when there is one.
    Salvage {
        /// Data dir.
        #[arg(long, env = "RELEASE_LEDGER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Generates an Ed25519 key (PKCS#8 PEM, mode 0600).
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Registers or revokes agent keys (signed with the admin key).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Appends one signed event.
    Append(AppendArgs),
    /// Appends the events of a JSONL file atomically (all or none).
    AppendBatch {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Signing key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// One event per line: {"type", "stream", "data", optional "eventId", "releaseId", "traceId",
        /// "role", "occurredAt", "expectedVersion"}.
        #[arg(long)]
        file: PathBuf,
        /// Agent id to append as (default: the key's registered agent).
        #[arg(long)]
        agent: Option<String>,
    },
    /// Prints entries, verifying each one's hashes and chain link; --follow keeps going live.
    Tail {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// First seq.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Keep streaming new entries.
        #[arg(long)]
        follow: bool,
    },
    /// Fetches and verifies the newest signed checkpoint.
    Checkpoint {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        ledger_key: LedgerKeyArg,
    },
    /// Fetches an inclusion proof of a seq and verifies it against a verified checkpoint.
    Prove {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The entry's seq.
        #[arg(long)]
        seq: u64,
        #[command(flatten)]
        ledger_key: LedgerKeyArg,
    },
    /// Shows where a release stands: status, blocking reasons, retry, risk, approvals.
    Summary(ReleaseArg),
    /// Lists a tenant's releases (--all follows the page tokens).
    Releases(ReleasesArgs),
    /// Shows a module's history in an environment (decisions, deployments, failures).
    History {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Module name.
        #[arg(long)]
        module: String,
        /// Environment.
        #[arg(long)]
        environment: String,
    },
    /// Explains a decision: gates, reasons, retry, suggested fix, risk, evidence, and whether
    /// re-deriving it from the log reproduces it.
    Explain {
        #[command(flatten)]
        release: ReleaseArg,
        /// The decision entry's seq (default: the release's latest decision).
        #[arg(long)]
        seq: Option<u64>,
    },
    /// Lists every entry about a release: seq, time, type, agent, summary.
    Timeline(ReleaseArg),
    /// Shows a release as it stood at a point of the log (summary and timeline).
    Replay {
        #[command(flatten)]
        release: ReleaseArg,
        /// A seq (the state after that entry) or an RFC 3339 time (after the last entry
        /// recorded at or before it).
        #[arg(long)]
        as_of: String,
    },
    /// Sets the tenant's release policy (PolicyUpdated).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Declares or lifts a change freeze (ChangeFreezeDeclared / ChangeFreezeLifted).
    Freeze {
        #[command(subcommand)]
        command: FreezeCommand,
    },
    /// Declares a release (ReleaseIntentDeclared).
    Intent(IntentArgs),
    /// Approves a release in a role the signing key holds (ApprovalGranted, method CLI).
    Approve {
        #[command(flatten)]
        signer: ReleaseSigner,
        /// The role approving (the key must hold it).
        #[arg(long)]
        role: String,
        /// Comment.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Rejects a release in a role the signing key holds (ApprovalRejected).
    Reject {
        #[command(flatten)]
        signer: ReleaseSigner,
        /// The role rejecting (the key must hold it).
        #[arg(long)]
        role: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Asks the ledger to evaluate a release (ReleaseEvaluationRequested).
    Evaluate {
        #[command(flatten)]
        signer: ReleaseSigner,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Exports a table over Arrow Flight to an Arrow IPC or Parquet file that verifies on its
    /// own (`ledger-audit verify FILE`).
    Export(ExportArgs),
    /// Plays a release-governance story against an embedded (or given) server.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// The table: entries (the log), releases, history, approvals or risk (the governance
    /// projections, as of the position the server has folded up to).
    #[arg(long)]
    table: Table,
    /// arrow (Arrow IPC file) or parquet (zstd); default: from the --out extension (.arrow,
    /// .feather, .ipc / .parquet, .pq).
    #[arg(long)]
    format: Option<Format>,
    /// The file to write (as FILE.partial, renamed into place once complete).
    #[arg(long)]
    out: PathBuf,
    /// First seq (entries only; default 0).
    #[arg(long)]
    from: Option<u64>,
    /// End seq, exclusive (entries only; default: the log's size).
    #[arg(long)]
    to: Option<u64>,
}

/// A release to query.
#[derive(Debug, Args)]
struct ReleaseArg {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Release id.
    #[arg(long)]
    release: String,
}

#[derive(Debug, Args)]
struct ReleasesArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Only releases to this environment.
    #[arg(long)]
    environment: Option<String>,
    /// Only releases with this status.
    #[arg(long, value_parser = ["Planned", "Approved", "Delayed", "Rejected", "Published", "Failed", "RolledBack"])]
    status: Option<String>,
    /// Releases per page (1-1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    page_size: u32,
    /// Start at this page token (printed after a page when more follow).
    #[arg(long, default_value = "")]
    page_token: String,
    /// Follow the page tokens to the last page.
    #[arg(long)]
    all: bool,
}

/// Who signs a governance event.
#[derive(Debug, Args)]
struct SignerArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Signing key (PKCS#8 PEM).
    #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
    key: PathBuf,
    /// Agent id to append as (default: the key's registered agent).
    #[arg(long)]
    agent: Option<String>,
}

/// Who signs an event about a release.
#[derive(Debug, Args)]
struct ReleaseSigner {
    #[command(flatten)]
    signer: SignerArgs,
    /// Release id.
    #[arg(long)]
    release: String,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validates a ReleasePolicy document locally, then appends it as PolicyUpdated.
    Set {
        #[command(flatten)]
        signer: SignerArgs,
        /// The ReleasePolicy document (JSON): {"version", "environments": {ENV: EnvPolicy}, "default"}.
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum FreezeCommand {
    /// Declares a one-off (--from/--to) or recurring (--rrule or --cron, --duration, --time-zone) freeze.
    Declare(FreezeDeclareArgs),
    /// Lifts a freeze: releases it delayed are evaluated again.
    Lift {
        #[command(flatten)]
        signer: SignerArgs,
        /// The freeze id.
        #[arg(long)]
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("window").required(true).args(["from", "rrule", "cron"])))]
#[command(group(clap::ArgGroup::new("recurrence").args(["rrule", "cron"])))]
struct FreezeDeclareArgs {
    #[command(flatten)]
    signer: SignerArgs,
    /// The freeze id (lift and override name it).
    #[arg(long)]
    id: String,
    /// An environment it covers (repeatable; none = every environment).
    #[arg(long = "environment")]
    environments: Vec<String>,
    /// Why, for people.
    #[arg(long, default_value = "")]
    reason: String,
    /// Start of a one-off window (RFC 3339, inclusive).
    #[arg(long, requires = "to")]
    from: Option<String>,
    /// End of a one-off window (RFC 3339, exclusive).
    #[arg(long, requires = "from")]
    to: Option<String>,
    /// RFC 5545 rule of the window starts, e.g. FREQ=WEEKLY;BYDAY=SA,SU.
    #[arg(long, requires_all = ["duration", "time_zone"])]
    rrule: Option<String>,
    /// Five-field cron pattern of the window starts, e.g. "0 18 * * FRI".
    #[arg(long, requires_all = ["duration", "time_zone"])]
    cron: Option<String>,
    /// Length of each recurring window, seconds.
    #[arg(long, requires = "recurrence")]
    duration: Option<u64>,
    /// IANA time zone of the recurrence, e.g. Europe/Berlin.
    #[arg(long, requires = "recurrence")]
    time_zone: Option<String>,
    /// Local anchor of the recurrence, YYYY-MM-DDTHH:MM:SS (default: local midnight today).
    #[arg(long, requires = "recurrence")]
    start: Option<String>,
}

#[derive(Debug, Args)]
struct IntentArgs {
    #[command(flatten)]
    signer: ReleaseSigner,
    /// Target environment.
    #[arg(long)]
    environment: String,
    /// A module shipped, name@version (repeatable).
    #[arg(long = "module", required = true)]
    modules: Vec<String>,
    /// Ask for approval even where the policy does not.
    #[arg(long)]
    requires_approval: bool,
    /// Project.
    #[arg(long)]
    project: Option<String>,
    /// What triggered the release.
    #[arg(long)]
    triggered_by: Option<String>,
    /// Trace id (correlates the release's decisions).
    #[arg(long)]
    trace_id: Option<String>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Play against this server instead of an embedded one (needs --admin-key).
    #[arg(long, requires = "admin_key")]
    server: Option<String>,
    /// The admin key of --server.
    #[arg(long, requires = "server")]
    admin_key: Option<PathBuf>,
    /// Data dir of the embedded server (default: a new temp dir); the demo's agent keys are
    /// written under DIR/demo-keys.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the embedded server running after the story, until Ctrl-C.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct ServerArg {
    /// Server URL.
    #[arg(long, env = "RELEASE_LEDGER_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// Retries of a connection or call that failed transiently (no connection, UNAVAILABLE,
    /// timeout, server pushback); appends are retried with the same signed bytes, so a retry
    /// never appends twice. 0 tries once.
    #[arg(long, env = "RELEASE_LEDGER_RETRIES", default_value_t = RetryPolicy::default().retries)]
    retries: u32,
    /// How long one connection attempt or call may take before it is retried.
    #[arg(long, env = "RELEASE_LEDGER_TIMEOUT_SECONDS", default_value_t = RetryPolicy::default().timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_seconds: u64,
}

impl ServerArg {
    fn retry(&self) -> RetryPolicy {
        RetryPolicy { retries: self.retries, timeout: std::time::Duration::from_secs(self.timeout_seconds) }
    }

    async fn channel(&self) -> anyhow::Result<tonic::transport::Channel> {
        self.retry().channel(&self.server).await
    }

    async fn connect(&self) -> anyhow::Result<client::Client> {
        Ok(client::ledger_client(self.channel().await?, DEFAULT_MAX_MESSAGE_BYTES))
    }

    async fn connect_query(&self) -> anyhow::Result<client::QueryClient> {
        Ok(client::query_client(self.channel().await?, DEFAULT_MAX_MESSAGE_BYTES))
    }
}

#[derive(Debug, Args)]
struct LedgerKeyArg {
    /// The ledger public key to verify with (default: ./release-ledger-data/keys/ledger.pub if
    /// present, else the key the server reports, flagged as unpinned).
    #[arg(long)]
    ledger_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data dir (created on first start).
    #[arg(long, env = "RELEASE_LEDGER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC address.
    #[arg(long, env = "RELEASE_LEDGER_LISTEN")]
    listen: Option<SocketAddr>,
    /// Prometheus /metrics address.
    #[arg(long, env = "RELEASE_LEDGER_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Largest gRPC message, bytes (default 4 MiB).
    #[arg(long, env = "RELEASE_LEDGER_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Largest event payload, bytes (default 64 KiB).
    #[arg(long, env = "RELEASE_LEDGER_MAX_PAYLOAD_BYTES")]
    max_payload_bytes: Option<usize>,
    /// Seconds a graceful shutdown waits for open connections (default 10).
    #[arg(long, env = "RELEASE_LEDGER_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// Free bytes the data dir's filesystem keeps in reserve: below it appends are refused
    /// with RESOURCE_EXHAUSTED while reads go on (default 256 MiB; 0 disables).
    #[arg(long, env = "RELEASE_LEDGER_MIN_FREE_BYTES")]
    min_free_bytes: Option<u64>,
    /// Largest number of open gRPC connections; more are accepted and closed at once (default
    /// 1024).
    #[arg(long, env = "RELEASE_LEDGER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Seconds a new connection has to send the HTTP/2 preface before it is closed (default 10).
    #[arg(long, env = "RELEASE_LEDGER_HANDSHAKE_TIMEOUT_SECONDS")]
    handshake_timeout_seconds: Option<u64>,
    /// Seconds without a byte in either direction before a connection is closed (default 300;
    /// 0: never).
    #[arg(long, env = "RELEASE_LEDGER_IDLE_TIMEOUT_SECONDS")]
    idle_timeout_seconds: Option<u64>,
    /// Seconds of quiet before the server PINGs a connection (HTTP/2) and probes it (TCP
    /// keepalive) (default 30; 0: off).
    #[arg(long, env = "RELEASE_LEDGER_KEEPALIVE_INTERVAL_SECONDS")]
    keepalive_interval_seconds: Option<u64>,
    /// Seconds a PING may wait for its acknowledgement before the connection is closed
    /// (default 20).
    #[arg(long, env = "RELEASE_LEDGER_KEEPALIVE_TIMEOUT_SECONDS")]
    keepalive_timeout_seconds: Option<u64>,
    /// TOML file with any of: data_dir, listen, metrics_listen, max_message_bytes,
    /// max_payload_bytes, shutdown_grace_seconds, max_connections, handshake_timeout_seconds,
    /// idle_timeout_seconds, keepalive_interval_seconds, keepalive_timeout_seconds, min_free_bytes,
    /// log_format.
    /// Flags and environment variables override it.
    #[arg(long, env = "RELEASE_LEDGER_CONFIG")]
    config: Option<PathBuf>,
}

/// The optional TOML config of `serve`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    max_message_bytes: Option<usize>,
    max_payload_bytes: Option<usize>,
    shutdown_grace_seconds: Option<u64>,
    min_free_bytes: Option<u64>,
    max_connections: Option<usize>,
    handshake_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    keepalive_interval_seconds: Option<u64>,
    keepalive_timeout_seconds: Option<u64>,
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Registers an agent key in a tenant.
    Register {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// The agent the key belongs to.
        #[arg(long)]
        agent: String,
        /// Roles, comma-separated (KeyAdmin lets the key register and revoke keys).
        #[arg(long, value_delimiter = ',', default_value = "")]
        roles: Vec<String>,
        /// Allowed event types, comma-separated (default: any ordinary type).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// The public key: a PEM file (public or private) or base64 of the raw 32 bytes.
        #[arg(long)]
        public_key: String,
        /// Admin key (or a key holding KeyAdmin in the tenant).
        #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
        admin_key: PathBuf,
    },
    /// Revokes an agent key: it can append nothing after this.
    Revoke {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Hex key id.
        #[arg(long)]
        key_id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        /// Admin key (or a key holding KeyAdmin in the tenant).
        #[arg(long, default_value = "./release-ledger-data/keys/admin.pem")]
        admin_key: PathBuf,
    },
    /// Lists a tenant's keys.
    List {
        #[command(flatten)]
        server: ServerArg,
        /// Tenant.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Args)]
struct AppendArgs {
    #[command(flatten)]
    server: ServerArg,
    /// Tenant.
    #[arg(long)]
    tenant: String,
    /// Signing key (PKCS#8 PEM).
    #[arg(long)]
    key: PathBuf,
    /// Event type.
    #[arg(long = "type")]
    event_type: String,
    /// Stream.
    #[arg(long)]
    stream: String,
    /// The `data` object: JSON, or @FILE.
    #[arg(long, default_value = "{}")]
    data: String,
    /// Release id.
    #[arg(long)]
    release_id: Option<String>,
    /// Trace id.
    #[arg(long)]
    trace_id: Option<String>,
    /// Event id (default: a new UUIDv7).
    #[arg(long)]
    event_id: Option<String>,
    /// any, no-stream, or the stream's current version.
    #[arg(long)]
    expected_version: Option<String>,
    /// Agent id to append as (default: the key's registered agent).
    #[arg(long)]
    agent: Option<String>,
    /// Actor role.
    #[arg(long)]
    role: Option<String>,
    /// When it happened, RFC 3339 (default: now). With --event-id, running the same command
    /// again sends the same signed bytes: the ledger answers with the original receipt.
    #[arg(long, value_parser = rfc3339)]
    occurred_at: Option<String>,
}

/// An RFC 3339 timestamp, as given.
fn rfc3339(text: &str) -> Result<String, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not an RFC 3339 timestamp such as 2026-05-23T09:32:00Z: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(json, &anyhow!(e).context("starting the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(json, &error),
    }
}

fn fail(json: bool, error: &anyhow::Error) -> ExitCode {
    let reason = format!("{error:#}").replace('\n', " ");
    if json {
        println!("{}", serde_json::json!({ "error": reason }));
    } else {
        eprintln!("release-ledger: {reason}");
    }
    ExitCode::FAILURE
}

fn print(json: bool, value: serde_json::Value, human: impl FnOnce() -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", human());
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => serve(args, cli.log_format, json).await,
        Command::Salvage { data_dir } => {
            let _telemetry = telemetry::init(cli.log_format.unwrap_or(LogFormat::Text), "warn")?;
            salvage(&data_dir, json)
        }
        command => {
            let _telemetry = telemetry::init(cli.log_format.unwrap_or(LogFormat::Text), "warn")?;
            client_command(command, json).await
        }
    }
}

/// `salvage`: see [`ledger::store::salvage`].
fn salvage(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    let config = ledger::Config { rules: Some(std::sync::Arc::new(projections::Catalogue)), ..Default::default() };
    let report = ledger::store::salvage(data_dir, config)
        .with_context(|| format!("salvaging data dir {}", data_dir.display()))?;
    print(json, serde_json::to_value(&report)?, || {
        let mut lines = vec![format!("kept an untouched copy of db/ in {}", report.backup.display())];
        if let Some(problem) = &report.anchor_problem {
            lines.push(format!("the anchor could not be read ({problem}): losses could not be measured"));
        }
        for tenant in &report.tenants {
            let acknowledged = tenant.acknowledged.map_or_else(|| "not anchored".to_owned(), |n| n.to_string());
            match &tenant.lost {
                None => lines.push(format!(
                    "{}: kept {} entries (acknowledged {acknowledged}), nothing lost",
                    tenant.tenant, tenant.kept
                )),
                Some(lost) => lines.push(format!("{}: kept {} entries, LOST {lost}", tenant.tenant, tenant.kept)),
            }
        }
        lines.push(if report.lost_anything() {
            "salvaged with losses, recorded in the store; seqs past a loss will be handed out again: tell the \
             holders of receipts for the lost entries"
                .to_owned()
        } else {
            "salvaged: every acknowledged entry was kept".to_owned()
        });
        lines.join("\n")
    });
    Ok(())
}

async fn serve(args: ServeArgs, log_format: Option<LogFormat>, json: bool) -> anyhow::Result<()> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("config {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let log_format = log_format.or(file.log_format).unwrap_or(LogFormat::Text);
    let _telemetry = telemetry::init(log_format, "info")?;
    let parse =
        |text: &str| -> anyhow::Result<SocketAddr> { text.parse().with_context(|| format!("bad address {text}")) };
    let connections = connection_options(&args, &file)?;
    let options = ServeOptions {
        data_dir: args.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: match args.listen.or(file.listen) {
            Some(addr) => addr,
            None => parse(DEFAULT_LISTEN)?,
        },
        metrics_listen: match args.metrics_listen.or(file.metrics_listen) {
            Some(addr) => addr,
            None => parse(DEFAULT_METRICS_LISTEN)?,
        },
        max_message_bytes: args.max_message_bytes.or(file.max_message_bytes).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        max_payload_bytes: args
            .max_payload_bytes
            .or(file.max_payload_bytes)
            .unwrap_or(ledger::event::DEFAULT_MAX_PAYLOAD_BYTES),
        shutdown_grace: args
            .shutdown_grace_seconds
            .or(file.shutdown_grace_seconds)
            .map_or(server::DEFAULT_SHUTDOWN_GRACE, std::time::Duration::from_secs),
        min_free_bytes: args.min_free_bytes.or(file.min_free_bytes).unwrap_or(ledger::store::DEFAULT_MIN_FREE_BYTES),
        connections,
    };
    server::serve(
        options,
        |started| {
            let value = serde_json::json!({ "event": "listening", "server": started });
            print(json, value, || {
                let mut lines = Vec::new();
                if started.initialised {
                    lines.push(format!("initialised data dir {}", started.data_dir.display()));
                }
                lines.push(format!("admin key   {} (id {})", started.admin_key.display(), started.admin_key_id));
                lines.push(format!("ledger key  {} (id {})", started.ledger_key.display(), started.ledger_key_id));
                lines.push(format!("ledger pub  {}", started.ledger_public_key.display()));
                lines.push(format!("gRPC        http://{}", started.grpc));
                lines.push(format!("metrics     http://{}/metrics", started.metrics));
                lines.join("\n")
            });
        },
        server::shutdown_signal(),
    )
    .await
}

/// The connection settings of `serve`: flag or environment, else the config file, else the
/// default; a zero idle timeout or keepalive interval turns it off.
fn connection_options(args: &ServeArgs, file: &FileConfig) -> anyhow::Result<ConnectionOptions> {
    use std::time::Duration;
    let defaults = ConnectionOptions::default();
    let seconds = |flag: Option<u64>, file: Option<u64>| flag.or(file).map(Duration::from_secs);
    let max_connections = args.max_connections.or(file.max_connections).unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        bail!("max_connections must be at least 1");
    }
    let handshake_timeout =
        seconds(args.handshake_timeout_seconds, file.handshake_timeout_seconds).unwrap_or(defaults.handshake_timeout);
    if handshake_timeout.is_zero() {
        bail!("handshake_timeout_seconds must be at least 1");
    }
    let keepalive_timeout =
        seconds(args.keepalive_timeout_seconds, file.keepalive_timeout_seconds).unwrap_or(defaults.keepalive_timeout);
    if keepalive_timeout.is_zero() {
        bail!("keepalive_timeout_seconds must be at least 1");
    }
    let off_when_zero = |value: Option<Duration>, default: Option<Duration>| match value {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => default,
    };
    Ok(ConnectionOptions {
        max_connections,
        handshake_timeout,
        idle_timeout: off_when_zero(
            seconds(args.idle_timeout_seconds, file.idle_timeout_seconds),
            defaults.idle_timeout,
        ),
        keepalive_interval: off_when_zero(
            seconds(args.keepalive_interval_seconds, file.keepalive_interval_seconds),
            defaults.keepalive_interval,
        ),
        keepalive_timeout,
    })
}

/// `export`: DoGet over Arrow Flight into a file, with a progress bar when stderr is a terminal.
async fn export(args: ExportArgs, json: bool) -> anyhow::Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.out).ok_or_else(|| {
            anyhow!(
                "cannot tell the format of {} from its extension: give --format arrow or --format parquet",
                args.out.display()
            )
        })?,
    };
    if args.table != Table::Entries && (args.from.is_some() || args.to.is_some()) {
        bail!(
            "--from and --to apply to the entries table only: the {} table is exported as of the position the \
             server's governance has reached",
            args.table
        );
    }
    let ticket = api::flight::FlightTicket { tenant: args.tenant, table: args.table, from: args.from, to: args.to };
    let mut flight = api::flight::flight_client(args.server.channel().await?);
    let progress = export_progress(args.table);
    // On Ctrl-C the export is dropped: its writer thread then removes the partial file, and the
    // runtime waits for that thread before the process exits.
    let exported = tokio::select! {
        exported = api::flight::export_to_file(&mut flight, &ticket, format, &args.out, &progress) => exported,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted: nothing was written to {}", args.out.display())),
    };
    progress.finish_and_clear();
    let exported = exported?;
    let meta = &exported.meta;
    let value = serde_json::json!({
        "path": exported.path, "format": exported.format.to_string(), "tenant": meta.tenant,
        "table": meta.table.as_str(), "rows": exported.rows, "bytes": exported.bytes,
        "fromSeq": meta.from_seq, "toSeq": meta.to_seq,
    });
    print(json, value, || {
        let (range, hint) = if meta.table == Table::Entries {
            let hint = format!("\nverify with: ledger-audit verify {}", exported.path.display());
            (format!("seqs {}..{}", meta.from_seq, meta.to_seq), hint)
        } else {
            (format!("as of seq {}", meta.to_seq), String::new())
        };
        let rows = if exported.rows == 1 { "row" } else { "rows" };
        format!(
            "wrote {} {rows} of {} (tenant {}, {range}) to {} ({}, {} bytes){hint}",
            exported.rows,
            meta.table,
            meta.tenant,
            exported.path.display(),
            exported.format,
            exported.bytes,
        )
    });
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
fn export_progress(table: Table) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = if table == Table::Entries {
        (ProgressBar::new(0), "{spinner} exporting [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
    } else {
        (ProgressBar::new_spinner(), "{spinner} exporting {pos} rows")
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// A signing key: PKCS#8 PEM, plain or encrypted. An encrypted key's passphrase comes from
/// `RELEASE_LEDGER_KEY_PASSPHRASE` or from the file `RELEASE_LEDGER_KEY_PASSPHRASE_FILE`
/// names (one trailing newline dropped), never from a flag, which other users could read
/// in the process list.
fn load_key(path: &Path) -> anyhow::Result<KeyPair> {
    let passphrase = key_passphrase()?;
    KeyPair::load_with_passphrase(path, passphrase.as_deref())
        .with_context(|| format!("loading key {}", path.display()))
}

fn key_passphrase() -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(passphrase) = std::env::var_os("RELEASE_LEDGER_KEY_PASSPHRASE") {
        return Ok(Some(passphrase.into_encoded_bytes()));
    }
    let Some(file) = std::env::var_os("RELEASE_LEDGER_KEY_PASSPHRASE_FILE") else { return Ok(None) };
    let mut bytes = std::fs::read(&file)
        .with_context(|| format!("reading RELEASE_LEDGER_KEY_PASSPHRASE_FILE {}", Path::new(&file).display()))?;
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    Ok(Some(bytes))
}

async fn client_command(command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Salvage { .. } => unreachable!("handled by run"),
        command @ (Command::Summary(_)
        | Command::Releases(_)
        | Command::History { .. }
        | Command::Explain { .. }
        | Command::Timeline(_)
        | Command::Replay { .. }) => query_command(command, json).await,
        command @ (Command::Policy { .. }
        | Command::Freeze { .. }
        | Command::Intent(_)
        | Command::Approve { .. }
        | Command::Reject { .. }
        | Command::Evaluate { .. }) => governance_command(command, json).await,
        Command::Export(args) => export(args, json).await,
        Command::Demo(args) => {
            let options = api::demo::DemoOptions {
                server: args.server,
                admin_key: args.admin_key,
                data_dir: args.data_dir,
                keep: args.keep,
            };
            api::demo::run(options, json).await
        }
        Command::Keygen { out } => {
            let key = KeyPair::generate();
            key.save_new(&out).with_context(|| format!("writing {}", out.display()))?;
            let value = serde_json::json!({
                "path": out, "keyId": key.key_id().to_hex(), "publicKey": key.public_key_base64(),
            });
            print(json, value, || {
                format!(
                    "wrote {}\nkey id      {}\npublic key  {}",
                    out.display(),
                    key.key_id(),
                    key.public_key_base64()
                )
            });
            Ok(())
        }
        Command::Keys { command } => keys_command(command, json).await,
        Command::Append(args) => {
            let key = load_key(&args.key)?;
            let mut client = args.server.connect().await?;
            let agent_id = match args.agent {
                Some(agent) => agent,
                None => client::agent_id_for(&mut client, &args.tenant, &key).await?,
            };
            let spec = EventSpec {
                tenant: args.tenant,
                stream: args.stream,
                event_type: args.event_type,
                data: client::read_data(&args.data)?,
                event_id: args.event_id,
                release_id: args.release_id,
                trace_id: args.trace_id,
                agent_id,
                role: args.role,
                occurred_at: args.occurred_at,
            };
            let expected = args.expected_version.as_deref().map(client::parse_expected_version).transpose()?;
            let event =
                client::signed_event(client::event_body(&spec)?, &key, expected.unwrap_or(ExpectedVersion::Any));
            append_one(&mut client, event, &args.server.retry(), json).await
        }
        Command::AppendBatch { server, tenant, key, file, agent } => {
            let key = load_key(&key)?;
            let lines = client::read_batch_file(&file)?;
            let mut client = server.connect().await?;
            let agent_id = match agent {
                Some(agent) => agent,
                None => client::agent_id_for(&mut client, &tenant, &key).await?,
            };
            let events = lines
                .into_iter()
                .map(|(line, expected)| {
                    let spec = EventSpec {
                        tenant: tenant.clone(),
                        stream: line.stream,
                        event_type: line.event_type,
                        data: line.data,
                        event_id: line.event_id,
                        release_id: line.release_id,
                        trace_id: line.trace_id,
                        agent_id: agent_id.clone(),
                        role: line.role,
                        occurred_at: line.occurred_at,
                    };
                    Ok(client::signed_event(client::event_body(&spec)?, &key, expected))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            // The same signed batch on every attempt: a batch is atomic, and one that was
            // committed answers a retry with its original receipts.
            let request = pb::AppendBatchRequest { events };
            let receipts = server
                .retry()
                .call("append-batch", || {
                    let (mut client, request) = (client.clone(), request.clone());
                    async move { client.append_batch(request).await }
                })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner()
                .receipts;
            print_receipts(json, &receipts);
            Ok(())
        }
        Command::Tail { server, tenant, from, follow } => {
            let mut client = server.connect().await?;
            let mut stream = if follow {
                client.subscribe(pb::SubscribeRequest { tenant, from_seq: from }).await
            } else {
                client.read(pb::ReadRequest { tenant, from_seq: from, to_seq: 0 }).await
            }
            .map_err(|s| anyhow!(status_line(&s)))?
            .into_inner();
            let mut previous: Option<ledger::Entry> = None;
            while let Some(item) = stream.next().await {
                let entry = client::checked_entry(previous.as_ref(), item.map_err(|s| anyhow!(status_line(&s)))?)?;
                let record = client::entry_json(&entry);
                print(json, record.clone(), || {
                    let field = |name: &str| record.get(name).and_then(|v| v.as_str()).unwrap_or("-").to_owned();
                    if record.get("redacted").is_some() {
                        format!("{:>8}  {}  (redacted by seq {})", entry.seq, field("recordedAt"), record["redactedBy"])
                    } else {
                        format!(
                            "{:>8}  {}  {:<28} {:<32} {:<20} {}",
                            entry.seq,
                            field("recordedAt"),
                            field("type"),
                            field("stream"),
                            field("agentId"),
                            field("eventId")
                        )
                    }
                });
                previous = Some(entry);
            }
            Ok(())
        }
        Command::Checkpoint { server, tenant, ledger_key } => {
            let mut client = server.connect().await?;
            let (key, provenance) =
                client::ledger_public_key(&mut client, ledger_key.ledger_key.as_deref(), &default_ledger_pub()).await?;
            let wire = client
                .get_checkpoint(pb::GetCheckpointRequest { tenant, size: 0 })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner();
            let verified = client::verify_checkpoint(&wire.note, &key)?;
            let c = &verified.checkpoint;
            let value = serde_json::json!({
                "origin": c.origin, "size": c.size, "rootHash": hex::encode(c.root),
                "chainHead": hex::encode(c.chain_head), "timestamp": c.timestamp, "note": wire.note,
                "verified": true, "ledgerKey": provenance,
            });
            print(json, value, || {
                format!("{}\nsignature verified with the ledger key {provenance}", wire.note.trim_end())
            });
            Ok(())
        }
        Command::Prove { server, tenant, seq, ledger_key } => {
            let mut client = server.connect().await?;
            let (key, provenance) =
                client::ledger_public_key(&mut client, ledger_key.ledger_key.as_deref(), &default_ledger_pub()).await?;
            let wire = client
                .get_checkpoint(pb::GetCheckpointRequest { tenant: tenant.clone(), size: 0 })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner();
            let checkpoint = client::verify_checkpoint(&wire.note, &key)?;
            let proof = client
                .get_inclusion_proof(pb::GetInclusionProofRequest {
                    tenant: tenant.clone(),
                    seq,
                    tree_size: checkpoint.checkpoint.size,
                })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner();
            client::verify_inclusion(&proof, &checkpoint)?;
            // The entry the proof is about must hash to the proven leaf.
            let entry = client
                .get_entry(pb::GetEntryRequest { tenant, key: Some(pb::get_entry_request::Key::Seq(seq)) })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner();
            let entry = client::checked_entry(None, entry)?;
            if entry.entry_hash.as_slice() != proof.entry_hash.as_slice() {
                bail!("seq {seq}: the entry served differs from the entry proven");
            }
            let value = serde_json::json!({
                "seq": seq, "treeSize": proof.tree_size, "entryHash": hex::encode(entry.entry_hash),
                "rootHash": hex::encode(checkpoint.checkpoint.root), "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
                "verified": true, "ledgerKey": provenance,
            });
            print(json, value, || {
                format!(
                    "seq {seq} is included in the tree of {} entries (root {})\nproof of {} nodes verified against a checkpoint signed by the ledger key {provenance}",
                    proof.tree_size,
                    hex::encode(checkpoint.checkpoint.root),
                    proof.path.len()
                )
            });
            Ok(())
        }
    }
}

/// The query commands: read models served by the Query service.
async fn query_command(command: Command, json: bool) -> anyhow::Result<()> {
    match command {
        Command::Summary(ReleaseArg { server, tenant, release }) => {
            let mut query = server.connect_query().await?;
            let summary = query
                .get_release_summary(pb::GetReleaseSummaryRequest { tenant, release_id: release })
                .await
                .map_err(client::query_error)?
                .into_inner();
            print(json, client::summary_json(&summary), || client::summary_text(&summary));
        }
        Command::Releases(args) => {
            let mut query = args.server.connect_query().await?;
            let mut token = args.page_token;
            let mut listed = Vec::new();
            let next = loop {
                let page = query
                    .list_releases(pb::ListReleasesRequest {
                        tenant: args.tenant.clone(),
                        environment: args.environment.clone(),
                        status: args.status.clone(),
                        updated_from: None,
                        updated_to: None,
                        page_size: args.page_size,
                        page_token: token,
                    })
                    .await
                    .map_err(client::query_error)?
                    .into_inner();
                listed.extend(page.releases);
                if !args.all || page.next_page_token.is_empty() {
                    break page.next_page_token;
                }
                token = page.next_page_token;
            };
            if json {
                for release in &listed {
                    println!("{}", client::summary_json(release));
                }
                if !next.is_empty() {
                    println!("{}", serde_json::json!({ "nextPageToken": next }));
                }
            } else if listed.is_empty() {
                println!("no releases");
            } else {
                println!("{}", client::releases_text(&listed));
                if !next.is_empty() {
                    println!("more: --page-token {next} (or --all)");
                }
            }
        }
        Command::History { server, tenant, module, environment } => {
            let mut query = server.connect_query().await?;
            let items = query
                .list_release_history(pb::ListReleaseHistoryRequest {
                    tenant,
                    module: module.clone(),
                    environment: environment.clone(),
                })
                .await
                .map_err(client::query_error)?
                .into_inner()
                .items;
            if json {
                for item in &items {
                    println!("{}", client::history_item_json(item));
                }
            } else if items.is_empty() {
                println!("no history of {module} in {environment}");
            } else {
                println!("{}", client::history_text(&items));
            }
        }
        Command::Explain { release: ReleaseArg { server, tenant, release }, seq } => {
            let mut query = server.connect_query().await?;
            let decision = query
                .explain_decision(pb::ExplainDecisionRequest { tenant, release_id: release.clone(), seq })
                .await
                .map_err(client::query_error)?
                .into_inner();
            print(json, client::decision_json(&release, &decision), || client::decision_text(&release, &decision));
        }
        Command::Timeline(ReleaseArg { server, tenant, release }) => {
            let mut query = server.connect_query().await?;
            let items = query
                .get_release_timeline(pb::GetReleaseTimelineRequest { tenant, release_id: release })
                .await
                .map_err(client::query_error)?
                .into_inner()
                .items;
            if json {
                for item in &items {
                    println!("{}", client::timeline_item_json(item));
                }
            } else {
                println!("{}", client::timeline_text(&items));
            }
        }
        Command::Replay { release: ReleaseArg { server, tenant, release }, as_of } => {
            let as_of = parse_as_of(&as_of)?;
            let mut query = server.connect_query().await?;
            let replay = query
                .replay_as_of(pb::ReplayAsOfRequest { tenant, release_id: release.clone(), as_of: Some(as_of.clone()) })
                .await
                .map_err(client::query_error)?
                .into_inner();
            let (as_of_json, as_of_text) = match &as_of {
                pb::replay_as_of_request::AsOf::Seq(seq) => (serde_json::json!({ "seq": seq }), format!("seq {seq}")),
                pb::replay_as_of_request::AsOf::Time(t) => (serde_json::json!({ "time": t }), t.clone()),
            };
            let value = serde_json::json!({
                "releaseId": release,
                "asOf": as_of_json,
                "size": replay.size,
                "summary": replay.summary.as_ref().map(client::summary_json),
                "timeline": replay.timeline.iter().map(client::timeline_item_json).collect::<Vec<_>>(),
            });
            print(json, value, || {
                let folded = match replay.size {
                    0 => "before the log's first entry".to_owned(),
                    size => format!("the log's first {size} entries, seq 0 to {}", size - 1),
                };
                let mut out = vec![format!("{release} as of {as_of_text} ({folded})")];
                match &replay.summary {
                    Some(summary) => out.push(client::summary_text(summary)),
                    None => out.push(format!("{release} did not exist yet")),
                }
                if !replay.timeline.is_empty() {
                    out.push(String::new());
                    out.push(client::timeline_text(&replay.timeline));
                }
                out.join("\n")
            });
        }
        _ => unreachable!("not a query command"),
    }
    Ok(())
}

/// `--as-of`: a seq, or an RFC 3339 time.
fn parse_as_of(text: &str) -> anyhow::Result<pb::replay_as_of_request::AsOf> {
    if let Ok(seq) = text.parse::<u64>() {
        return Ok(pb::replay_as_of_request::AsOf::Seq(seq));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("--as-of {text:?} is neither a seq nor an RFC 3339 time"))?;
    Ok(pb::replay_as_of_request::AsOf::Time(text.to_owned()))
}

/// A signer's key, a connected client and the agent id to append as.
async fn connect_signer(args: &SignerArgs) -> anyhow::Result<(KeyPair, client::Client, String)> {
    let key = load_key(&args.key)?;
    let mut client = args.server.connect().await?;
    let agent = match &args.agent {
        Some(agent) => agent.clone(),
        None => client::agent_id_for(&mut client, &args.tenant, &key).await?,
    };
    Ok((key, client, agent))
}

/// Signs and appends a governance event built for the signer's agent id; prints the receipt
/// and, for people, what to look at next.
async fn append_governance(
    args: &SignerArgs,
    mut spec: EventSpec,
    next: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    // Checked before connecting: a bad event fails here whether or not a server is up.
    spec.agent_id = args.agent.clone().unwrap_or_else(|| "unknown-yet".into());
    client::checked_body(&spec)?;
    let (key, mut client, agent) = connect_signer(args).await?;
    spec.agent_id = agent;
    let event = client::signed_event(client::checked_body(&spec)?, &key, ExpectedVersion::Any);
    let receipt = append_receipt(&mut client, event, &args.server.retry())
        .await
        .map_err(|e| anyhow!("{} refused: {e}", spec.event_type))?;
    print_receipts(json, &[receipt]);
    if let (Some(next), false) = (next, json) {
        println!("{next}");
    }
    Ok(())
}

/// The governance helper commands: build, check, sign and append catalogue events.
async fn governance_command(command: Command, json: bool) -> anyhow::Result<()> {
    let summary_hint = |s: &ReleaseSigner| {
        Some(format!(
            "see: release-ledger summary --server {} --tenant {} --release {}",
            s.signer.server.server, s.signer.tenant, s.release
        ))
    };
    match command {
        Command::Policy { command: PolicyCommand::Set { signer, file } } => {
            let policy = client::read_policy(&file)?;
            let spec = client::policy_updated(&signer.tenant, "", &policy)?;
            let hint = format!("policy version {} is in force from this entry on", policy.version);
            append_governance(&signer, spec, Some(hint), json).await
        }
        Command::Freeze { command: FreezeCommand::Declare(args) } => {
            let recurrence = match (&args.rrule, &args.cron) {
                (None, None) => None,
                (rrule, cron) => Some(projections::freeze::Recurrence {
                    rrule: rrule.clone(),
                    cron: cron.clone(),
                    duration_seconds: args.duration.ok_or_else(|| anyhow!("a recurring freeze needs --duration"))?,
                    time_zone: args.time_zone.clone().ok_or_else(|| anyhow!("a recurring freeze needs --time-zone"))?,
                    start: args.start.clone(),
                }),
            };
            let data = projections::freeze::ChangeFreezeDeclaredData {
                freeze_id: args.id,
                environments: args.environments,
                reason: args.reason,
                from: args.from,
                to: args.to,
                recurrence,
            };
            let spec = client::freeze_declared(&args.signer.tenant, "", &data)?;
            append_governance(&args.signer, spec, None, json).await
        }
        Command::Freeze { command: FreezeCommand::Lift { signer, id, reason } } => {
            let spec = client::freeze_lifted(&signer.tenant, "", &id, reason.as_deref());
            append_governance(&signer, spec, None, json).await
        }
        Command::Intent(args) => {
            let modules =
                args.modules.iter().map(|m| client::parse_module_version(m)).collect::<anyhow::Result<Vec<_>>>()?;
            let mut data = serde_json::json!({ "environment": args.environment, "modules": modules });
            if args.requires_approval {
                data["requiresApproval"] = true.into();
            }
            if let Some(project) = &args.project {
                data["projectId"] = project.clone().into();
            }
            if let Some(by) = &args.triggered_by {
                data["triggeredBy"] = by.clone().into();
            }
            let s = &args.signer;
            let mut spec = client::release_event(&s.signer.tenant, &s.release, "ReleaseIntentDeclared", "", data);
            spec.trace_id = args.trace_id.clone();
            append_governance(&s.signer, spec, summary_hint(s), json).await
        }
        Command::Approve { signer: s, role, comment } => {
            let data = serde_json::json!({ "role": role, "comment": comment, "method": "CLI" });
            let mut spec = client::release_event(&s.signer.tenant, &s.release, "ApprovalGranted", "", data);
            spec.role = Some(role);
            append_governance(&s.signer, spec, summary_hint(&s), json).await
        }
        Command::Reject { signer: s, role, reason } => {
            let data = serde_json::json!({ "role": role, "reason": reason });
            let mut spec = client::release_event(&s.signer.tenant, &s.release, "ApprovalRejected", "", data);
            spec.role = Some(role);
            append_governance(&s.signer, spec, summary_hint(&s), json).await
        }
        Command::Evaluate { signer: s, reason } => {
            let data = match reason {
                Some(reason) => serde_json::json!({ "reason": reason }),
                None => serde_json::json!({}),
            };
            let spec = client::release_event(&s.signer.tenant, &s.release, "ReleaseEvaluationRequested", "", data);
            append_governance(&s.signer, spec, summary_hint(&s), json).await
        }
        _ => unreachable!("not a governance command"),
    }
}

fn default_ledger_pub() -> PathBuf {
    Path::new(DEFAULT_DATA_DIR).join("keys/ledger.pub")
}

fn print_receipts(json: bool, receipts: &[pb::Receipt]) {
    for receipt in receipts {
        let value = serde_json::json!({
            "tenant": receipt.tenant, "seq": receipt.seq, "entryHash": hex::encode(&receipt.entry_hash),
            "recordedAt": receipt.recorded_at_unix_nanos, "duplicate": receipt.duplicate,
        });
        print(json, value, || {
            format!(
                "appended seq {} to {} (entry {}){}",
                receipt.seq,
                receipt.tenant,
                hex::encode(&receipt.entry_hash),
                if receipt.duplicate { ", already present: original receipt" } else { "" }
            )
        });
    }
}

async fn keys_command(command: KeysCommand, json: bool) -> anyhow::Result<()> {
    match command {
        KeysCommand::Register { server, tenant, agent, roles, types, public_key, admin_key } => {
            let admin = load_key(&admin_key)?;
            let public = client::read_public_key(&public_key)?;
            let roles: Vec<String> = roles.into_iter().filter(|r| !r.is_empty()).collect();
            let mut client = server.connect().await?;
            let signer = client::agent_id_for(&mut client, &tenant, &admin).await?;
            let key_id = ledger::KeyId::of(&public).to_hex();
            let spec = EventSpec {
                tenant,
                stream: "keys".into(),
                event_type: "AgentKeyRegistered".into(),
                data: serde_json::json!({
                    "agentId": agent, "publicKey": client::b64(public.as_bytes()), "roles": roles, "eventTypes": types,
                }),
                event_id: Some(format!("key-registered-{key_id}")),
                agent_id: signer,
                ..EventSpec::default()
            };
            append_admin(&mut client, &spec, &admin, &server.retry(), json).await
        }
        KeysCommand::Revoke { server, tenant, key_id, reason, admin_key } => {
            let admin = load_key(&admin_key)?;
            let mut client = server.connect().await?;
            let signer = client::agent_id_for(&mut client, &tenant, &admin).await?;
            let spec = EventSpec {
                tenant,
                stream: "keys".into(),
                event_type: "AgentKeyRevoked".into(),
                data: serde_json::json!({ "keyId": key_id, "reason": reason }),
                event_id: Some(format!("key-revoked-{key_id}")),
                agent_id: signer,
                ..EventSpec::default()
            };
            append_admin(&mut client, &spec, &admin, &server.retry(), json).await
        }
        KeysCommand::List { server, tenant } => {
            let mut client = server.connect().await?;
            let keys = client
                .list_keys(pb::ListKeysRequest { tenant })
                .await
                .map_err(|s| anyhow!(status_line(&s)))?
                .into_inner()
                .keys;
            for key in keys {
                let value = serde_json::json!({
                    "keyId": key.key_id, "agentId": key.agent_id, "roles": key.roles, "eventTypes": key.event_types,
                    "registeredAt": key.registered_at_seq, "revokedAt": key.revoked_at_seq,
                });
                print(json, value, || {
                    format!(
                        "{}  {:<20} roles={} types={} registered@{}{}",
                        key.key_id,
                        key.agent_id,
                        key.roles.join(","),
                        if key.event_types.is_empty() { "*".into() } else { key.event_types.join(",") },
                        key.registered_at_seq,
                        key.revoked_at_seq.map(|s| format!(" revoked@{s}")).unwrap_or_default()
                    )
                });
            }
            Ok(())
        }
    }
}

/// Signs an administrative event (no stream expectation) and appends it.
async fn append_admin(
    client: &mut client::Client,
    spec: &EventSpec,
    key: &KeyPair,
    retry: &RetryPolicy,
    json: bool,
) -> anyhow::Result<()> {
    let event = client::signed_event(client::event_body(spec)?, key, ExpectedVersion::Any);
    append_one(client, event, retry, json).await
}

/// Appends one signed event and prints its receipt.
async fn append_one(
    client: &mut client::Client,
    event: pb::AppendEvent,
    retry: &RetryPolicy,
    json: bool,
) -> anyhow::Result<()> {
    let receipt = append_receipt(client, event, retry).await?;
    print_receipts(json, &[receipt]);
    Ok(())
}

/// Appends one signed event, retrying transient failures with the same bytes (see
/// [`api::retry`]).
async fn append_receipt(
    client: &mut client::Client,
    event: pb::AppendEvent,
    retry: &RetryPolicy,
) -> anyhow::Result<pb::Receipt> {
    let request = pb::AppendRequest { event: Some(event) };
    retry
        .call("append", || {
            let (mut client, request) = (client.clone(), request.clone());
            async move { client.append(request).await }
        })
        .await
        .map_err(|s| anyhow!(status_line(&s)))?
        .into_inner()
        .receipt
        .ok_or_else(|| anyhow!("server returned no receipt"))
}
