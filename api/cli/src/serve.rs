//! `serve` and `salvage`: the commands that run on the data dir itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use api::config::{self, ServeSettings};
use api::server;
use api::telemetry;
use clap::Args;

use crate::{print, LogFormatArg};

/// The settings of `serve` (each flag > its environment variable > the config file > the
/// default).
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Data dir (created on first start).
    #[arg(long, env = "RELEASE_LEDGER_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// gRPC address.
    #[arg(long, env = "RELEASE_LEDGER_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// Prometheus /metrics address.
    #[arg(long, env = "RELEASE_LEDGER_METRICS_LISTEN")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Largest gRPC message, bytes (default 4 MiB).
    #[arg(long, env = "RELEASE_LEDGER_MAX_MESSAGE_BYTES")]
    pub(crate) max_message_bytes: Option<usize>,
    /// Largest event payload, bytes (default 64 KiB).
    #[arg(long, env = "RELEASE_LEDGER_MAX_PAYLOAD_BYTES")]
    pub(crate) max_payload_bytes: Option<usize>,
    /// Seconds a graceful shutdown waits for open connections (default 10).
    #[arg(long, env = "RELEASE_LEDGER_SHUTDOWN_GRACE_SECONDS")]
    pub(crate) shutdown_grace_seconds: Option<u64>,
    /// Free bytes the data dir's filesystem keeps in reserve: below it appends are refused
    /// with RESOURCE_EXHAUSTED while reads go on (default 256 MiB; 0 disables).
    #[arg(long, env = "RELEASE_LEDGER_MIN_FREE_BYTES")]
    pub(crate) min_free_bytes: Option<u64>,
    /// Microseconds a single-event append, when nothing else is being appended, waits awake
    /// for its answer before its thread sleeps: lower latency for a lone client, at the price
    /// of a core's time meanwhile (default 1000; 0 disables).
    #[arg(long, env = "RELEASE_LEDGER_ANSWER_SPIN_US")]
    pub(crate) answer_spin_us: Option<u64>,
    /// Largest number of open gRPC connections; more are accepted and closed at once (default
    /// 1024).
    #[arg(long, env = "RELEASE_LEDGER_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// Seconds a new connection has to send the HTTP/2 preface before it is closed (default 10).
    #[arg(long, env = "RELEASE_LEDGER_HANDSHAKE_TIMEOUT_SECONDS")]
    pub(crate) handshake_timeout_seconds: Option<u64>,
    /// Seconds without a byte in either direction before a connection is closed (default 300;
    /// 0: never).
    #[arg(long, env = "RELEASE_LEDGER_IDLE_TIMEOUT_SECONDS")]
    pub(crate) idle_timeout_seconds: Option<u64>,
    /// Seconds of quiet before the server PINGs a connection (HTTP/2) and probes it (TCP
    /// keepalive) (default 30; 0: off).
    #[arg(long, env = "RELEASE_LEDGER_KEEPALIVE_INTERVAL_SECONDS")]
    pub(crate) keepalive_interval_seconds: Option<u64>,
    /// Seconds a PING may wait for its acknowledgement before the connection is closed
    /// (default 20).
    #[arg(long, env = "RELEASE_LEDGER_KEEPALIVE_TIMEOUT_SECONDS")]
    pub(crate) keepalive_timeout_seconds: Option<u64>,
    /// Checkpoint origin prefix, fixed when the data dir is created: tenant T's log is
    /// "PREFIX/T" in every checkpoint, to witnesses and verifiers. A schema-less URL you
    /// control, such as ledger.example.com (default for a new data dir:
    /// release-ledger.invalid/ and 16 hex digits of the ledger key id; an existing data dir
    /// keeps its own, and a different value is refused).
    #[arg(long, env = "RELEASE_LEDGER_ORIGIN_PREFIX")]
    pub(crate) origin_prefix: Option<String>,
    /// Serve each tenant's log as C2SP tlog-tiles over HTTP on this address: /TENANT/checkpoint,
    /// /TENANT/tile/L/N[.p/W], /TENANT/tile/entries/N[.p/W] (public-read, like checkpoints;
    /// default: off).
    #[arg(long, env = "RELEASE_LEDGER_TILES_LISTEN")]
    pub(crate) tiles_listen: Option<SocketAddr>,
    /// Serve the web console (docs/console.md) on this address: releases board, release and
    /// entry pages with in-browser proof checks, freeze calendar, module history, approvals
    /// signed in the browser, operator view; behind the same principals and TLS as gRPC
    /// (default: off; scripts/serve.sh serves it on 127.0.0.1:9465).
    #[arg(long, env = "RELEASE_LEDGER_CONSOLE_LISTEN")]
    pub(crate) console_listen: Option<SocketAddr>,
    /// Witness policy (C2SP tlog-policy: `witness <name> <vkey> <url>` lines and a `quorum`):
    /// every --witness-interval-seconds the server submits each tenant's newest checkpoint, if
    /// it grew, to the policy's witnesses and serves the cosigned note
    /// (docs/witnessing.md). Default: no witnessing.
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_POLICY")]
    pub(crate) witness_policy: Option<PathBuf>,
    /// Seconds between witnessing rounds (default 10).
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_INTERVAL_SECONDS")]
    pub(crate) witness_interval_seconds: Option<u64>,
    /// TLS certificate chain (PEM, leaf first) of the gRPC port; with --tls-key. Reloaded on
    /// SIGHUP and when the file changes.
    #[arg(long, env = "RELEASE_LEDGER_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of the gRPC port; with --tls-cert.
    #[arg(long, env = "RELEASE_LEDGER_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates are verified against (mTLS); a verified certificate
    /// authenticates as the principal --client-principals maps it to.
    #[arg(long, env = "RELEASE_LEDGER_TLS_CLIENT_CA")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (with --tls-client-ca).
    #[arg(long, env = "RELEASE_LEDGER_TLS_REQUIRE_CLIENT_CERT")]
    pub(crate) tls_require_client_cert: bool,
    /// TOML file mapping client certificates (subject CN or SAN) to principals: tenant, roles,
    /// or operator (docs/access.md).
    #[arg(long, env = "RELEASE_LEDGER_CLIENT_PRINCIPALS")]
    pub(crate) client_principals: Option<PathBuf>,
    /// TOML file of trusted OIDC issuers: issuer, audience, JWKS (file or URL), the claim naming
    /// the tenant, the roles granted (docs/access.md). Their ID tokens are bearer tokens too.
    #[arg(long, env = "RELEASE_LEDGER_OIDC")]
    pub(crate) oidc: Option<PathBuf>,
    /// Serve /metrics over TLS too, with --tls-cert and --tls-key (and the same client
    /// certificate settings).
    #[arg(long, env = "RELEASE_LEDGER_METRICS_TLS")]
    pub(crate) metrics_tls: bool,
    /// Serve plaintext gRPC on an address other hosts can reach (refused otherwise: give
    /// --tls-cert and --tls-key, or listen on loopback).
    #[arg(long, env = "RELEASE_LEDGER_INSECURE_PLAINTEXT")]
    pub(crate) insecure_plaintext: bool,
    /// Checkpoints, proofs and tiles need a reader of the tenant too (default: public, as
    /// transparency logs are; entries and projections are never public).
    #[arg(long, env = "RELEASE_LEDGER_PRIVATE_TRANSPARENCY")]
    pub(crate) private_transparency: bool,
    /// Longest reader token lifetime accepted, seconds (default 3600).
    #[arg(long, env = "RELEASE_LEDGER_MAX_TOKEN_LIFETIME_SECONDS")]
    pub(crate) max_token_lifetime_seconds: Option<u64>,
    /// Cluster file: serve as one node of a replicated cluster (this node's id, every node's id
    /// and gRPC address; docs/replication.md). Appends are acknowledged once a majority of the
    /// nodes holds them durably; a follower answers appends with the leader's address. Default:
    /// a single node.
    #[arg(long, env = "RELEASE_LEDGER_CLUSTER")]
    pub(crate) cluster: Option<PathBuf>,
    /// TOML file with any of: data_dir, listen, metrics_listen, tiles_listen, console_listen, max_message_bytes,
    /// max_payload_bytes, shutdown_grace_seconds, max_connections, handshake_timeout_seconds,
    /// idle_timeout_seconds, keepalive_interval_seconds, keepalive_timeout_seconds, min_free_bytes,
    /// answer_spin_us, log_format, origin_prefix, witness_policy, witness_interval_seconds, tls_cert, tls_key,
    /// tls_client_ca, tls_require_client_cert, client_principals, insecure_plaintext,
    /// private_transparency, max_token_lifetime_seconds, oidc, metrics_tls, cluster.
    /// Flags and environment variables override it.
    #[arg(long, env = "RELEASE_LEDGER_CONFIG")]
    pub(crate) config: Option<PathBuf>,
}

impl ServeArgs {
    /// The command line's settings (a flag, else its environment variable; clap merged them).
    fn settings(&self, log_format: Option<LogFormatArg>) -> ServeSettings {
        ServeSettings {
            data_dir: self.data_dir.clone(),
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            max_message_bytes: self.max_message_bytes,
            max_payload_bytes: self.max_payload_bytes,
            shutdown_grace_seconds: self.shutdown_grace_seconds,
            min_free_bytes: self.min_free_bytes,
            answer_spin_us: self.answer_spin_us,
            max_connections: self.max_connections,
            handshake_timeout_seconds: self.handshake_timeout_seconds,
            idle_timeout_seconds: self.idle_timeout_seconds,
            keepalive_interval_seconds: self.keepalive_interval_seconds,
            keepalive_timeout_seconds: self.keepalive_timeout_seconds,
            log_format: log_format.map(Into::into),
            origin_prefix: self.origin_prefix.clone(),
            tiles_listen: self.tiles_listen,
            console_listen: self.console_listen,
            witness_policy: self.witness_policy.clone(),
            witness_interval_seconds: self.witness_interval_seconds,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_client_ca: self.tls_client_ca.clone(),
            tls_require_client_cert: self.tls_require_client_cert.then_some(true),
            insecure_plaintext: self.insecure_plaintext.then_some(true),
            metrics_tls: self.metrics_tls.then_some(true),
            private_transparency: self.private_transparency.then_some(true),
            max_token_lifetime_seconds: self.max_token_lifetime_seconds,
            client_principals: self.client_principals.clone(),
            oidc: self.oidc.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// What `serve` runs with: the command line, then the config file, then the defaults.
    pub(crate) fn resolve(&self, log_format: Option<LogFormatArg>) -> anyhow::Result<config::Resolved> {
        let file = match &self.config {
            Some(path) => ServeSettings::from_file(path)?,
            None => ServeSettings::default(),
        };
        config::resolve([self.settings(log_format), file])
    }
}

/// `serve`.
pub(crate) async fn serve(args: ServeArgs, log_format: Option<LogFormatArg>, json: bool) -> anyhow::Result<()> {
    let resolved = args.resolve(log_format)?;
    let _telemetry = telemetry::init(resolved.log_format, "info")?;
    server::serve(
        resolved.options,
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
                if let Some(node) = started.cluster_node {
                    lines.push(format!("cluster     node {node}"));
                }
                lines.push(format!("metrics     http://{}/metrics", started.metrics));
                if let Some(tiles) = started.tiles {
                    lines.push(format!("tiles       http://{tiles}/TENANT/checkpoint"));
                }
                if let Some(console) = started.console {
                    let scheme = if started.tls { "https" } else { "http" };
                    lines.push(format!("console     {scheme}://{console}/"));
                }
                lines.join("\n")
            });
        },
        server::shutdown_signal(),
    )
    .await
    .map_err(with_the_setting_to_change)
}

/// A start-up failure the user fixes with a setting: the message names it.
fn with_the_setting_to_change(error: anyhow::Error) -> anyhow::Error {
    if let Some(in_use) = error.downcast_ref::<server::AddressInUse>() {
        let (flag, env) = match in_use.what {
            "metrics" => ("--metrics-listen", "RELEASE_LEDGER_METRICS_LISTEN"),
            "tiles" => ("--tiles-listen", "RELEASE_LEDGER_TILES_LISTEN"),
            "console" => ("--console-listen", "RELEASE_LEDGER_CONSOLE_LISTEN"),
            _ => ("--listen", "RELEASE_LEDGER_LISTEN"),
        };
        return anyhow::anyhow!(
            "{in_use} (another server?); pass {flag} ADDR (or set {env}, or `{}` in --config) to listen elsewhere, \
             or stop the process holding it; nothing was created on disk",
            flag.trim_start_matches("--").replace('-', "_")
        );
    }
    if let Some(in_use) = error.downcast_ref::<server::DataDirInUse>() {
        return anyhow::anyhow!(
            "{in_use}: stop it, or pass --data-dir (or RELEASE_LEDGER_DATA_DIR) to serve another data dir"
        );
    }
    error
}

/// `salvage`: see [`ledger::store::salvage`].
pub(crate) fn migrate(data_dir: &Path, origin_prefix: Option<String>, json: bool) -> anyhow::Result<()> {
    if let Ok(ledger::ServerLock::HeldBy { pid }) = ledger::server_lock(data_dir) {
        anyhow::bail!("a server (pid {pid}) is running on {}: stop it, then migrate", data_dir.display());
    }
    let options = ledger::MigrateOptions { origin_prefix, ..Default::default() };
    let outcome = ledger::store::migrate(data_dir, &options)
        .with_context(|| format!("migrating data dir {}", data_dir.display()))?;
    match outcome {
        ledger::Migration::AlreadyCurrent => {
            print(json, serde_json::json!({"migrated": false, "format": 2}), || {
                format!("{} is already format v2: nothing to do", data_dir.display())
            });
        }
        ledger::Migration::Migrated { report, resumed } => {
            let mut value = serde_json::to_value(&report)?;
            value["migrated"] = true.into();
            value["resumed"] = resumed.into();
            print(json, value, || {
                let mut lines: Vec<String> = report
                    .tenants
                    .iter()
                    .map(|t| format!("{}: {} entries, {} checkpoints re-signed", t.tenant, t.entries, t.checkpoints))
                    .collect();
                if resumed > 0 {
                    lines.push(format!("({resumed} tenant(s) had been migrated by an interrupted earlier run)"));
                }
                lines.push(format!(
                    "migrated {} to format v2 (RFC 6962 SHA-256 tree); logs are now {}/TENANT; the last v1 \
                     checkpoint of each tenant is kept in the store's migration record",
                    data_dir.display(),
                    report.origin_prefix
                ));
                lines.join("\n")
            });
        }
    }
    Ok(())
}

pub(crate) fn salvage(data_dir: &Path, json: bool) -> anyhow::Result<()> {
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
