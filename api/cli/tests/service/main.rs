//! Integration tests of the `release-ledger` binary: each test starts the real server on an
//! ephemeral loopback port and drives it through the generated gRPC client and the CLI.
//!
//! They live in `api/tests` rather than the top-level `tests/` crate because cargo exposes a
//! binary's path (`CARGO_BIN_EXE_release-ledger`) only to its own package's tests.

// Helpers outside `#[test]` functions may unwrap too: a panic there is a test failure.
#![allow(clippy::unwrap_used)]

mod access;
mod backup;
mod cli;
mod cli_gates;
mod cli_governance;
mod cli_retry;
mod cluster;
mod connections;
mod console;
mod console_crypto;
mod console_http;
mod crash;
mod crc32c;
mod disk;

mod attestation;
mod errors;
mod evidence;
mod export;
mod gate;
mod governance;
mod grpc;
mod guardrails;
mod interop;
mod metrics;
mod oscal;
mod otlp;
mod readme;
mod salvage;
mod scheduling;
mod tamper;
mod tiles;
mod tlog;
mod witnessing;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ledger::{AppendEvent, Envelope, KeyPair};
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use tonic::transport::Channel;

/// The binary under test.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_release-ledger")
}

/// A running server process; killed (SIGKILL) when dropped unless stopped first.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) grpc: SocketAddr,
    pub(crate) metrics: SocketAddr,
    /// The tlog-tiles address, when started with `--tiles-listen`.
    pub(crate) tiles: Option<SocketAddr>,
    /// The web console's address, when started with `--console-listen`.
    pub(crate) console: Option<SocketAddr>,
    pub(crate) data_dir: PathBuf,
    /// An operator token (the admin key's), for the harness's clients.
    pub(crate) token: String,
}

/// Adds a bearer token to every request.
#[derive(Debug, Clone)]
pub(crate) struct Bearer(pub(crate) Option<tonic::metadata::AsciiMetadataValue>);

impl Bearer {
    pub(crate) fn new(token: &str) -> Self {
        Self(Some(format!("Bearer {token}").parse().unwrap()))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose requests carry a token.
pub(crate) type Authed = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Mints a token with `key` (`tenant` `None`: the admin key's operator token).
pub(crate) fn mint(key: &KeyPair, agent: &str, tenant: Option<&str>, audience: &str) -> String {
    let now = ledger_wire::token::unix_now();
    ledger_wire::token::mint(key, agent, tenant, audience, std::time::Duration::from_secs(3600), now).unwrap()
}

impl Server {
    /// Starts `release-ledger serve` on ephemeral ports over `data_dir`, with extra args.
    pub(crate) fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::spawn(Command::new(binary()), data_dir, "127.0.0.1:0", extra)
    }

    /// [`Server::start`] with gRPC on `listen` (a restart on the same address).
    pub(crate) fn start_at(data_dir: &Path, listen: SocketAddr, extra: &[&str]) -> Self {
        Self::spawn(Command::new(binary()), data_dir, &listen.to_string(), extra)
    }

    /// [`Server::start`] with the open-file limit (`RLIMIT_NOFILE`) set to `nofile`, through
    /// the shell's `ulimit` (the workspace forbids the `unsafe` a `pre_exec` would need).
    pub(crate) fn start_with_nofile(data_dir: &Path, nofile: u32, extra: &[&str]) -> Self {
        let mut shell = Command::new("sh");
        shell.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), binary()]);
        Self::spawn(shell, data_dir, "127.0.0.1:0", extra)
    }

    /// The server log (its stderr), written next to the data dir.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("server.log")).unwrap_or_default()
    }

    fn spawn(mut command: Command, data_dir: &Path, listen: &str, extra: &[&str]) -> Self {
        let stderr_log = data_dir.with_extension("server.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_log).unwrap();
        let mut child = command
            .args(["serve", "--json", "--listen", listen, "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start server");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "server did not start ({e}): {line:?}; log: {}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            )
        });
        // A server that fails to start prints `{"error": ...}` instead (`--json`).
        assert!(
            started["event"] == "listening",
            "server did not start: {line:?}; log: {}",
            std::fs::read_to_string(&stderr_log).unwrap_or_default()
        );
        let server = &started["server"];
        let admin = KeyPair::load(&data_dir.join("keys/admin.pem")).unwrap();
        let token = mint(&admin, "admin", None, server["originPrefix"].as_str().unwrap());
        Self {
            token,
            child,
            grpc: server["grpc"].as_str().unwrap().parse().unwrap(),
            metrics: server["metrics"].as_str().unwrap().parse().unwrap(),
            tiles: server["tiles"].as_str().map(|address| address.parse().unwrap()),
            console: server["console"].as_str().map(|address| address.parse().unwrap()),
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// A channel carrying the operator token.
    pub(crate) async fn channel(&self) -> Authed {
        let channel = Channel::from_shared(self.url()).unwrap().connect().await.unwrap();
        tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(&self.token))
    }

    /// A ledger client with the operator token.
    pub(crate) async fn client(&self) -> LedgerClient<Authed> {
        LedgerClient::new(self.channel().await)
    }

    /// Waits until the governance worker has loaded its store: the `Query` service reports
    /// SERVING. Until then `Query`, the console's pages and backups answer UNAVAILABLE.
    pub(crate) async fn wait_for_projections(&self) {
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel().await);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let request = tonic_health::pb::HealthCheckRequest { service: "release_ledger.v1.Query".into() };
            let status = health.check(request).await.unwrap().into_inner().status();
            if status == tonic_health::pb::health_check_response::ServingStatus::Serving {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "Query never SERVING: {status:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The data dir's admin key.
    pub(crate) fn admin(&self) -> KeyPair {
        KeyPair::load(&self.data_dir.join("keys/admin.pem")).unwrap()
    }

    /// SIGKILL, no goodbye.
    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for the process to exit; returns the exit status.
    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI in `cwd` with `--server` pointing at `server`.
pub(crate) fn cli(server: &Server, cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a command that must succeed (its output is the failure message otherwise).
pub(crate) fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Generates `{agent}.pem` in `cwd` with `keygen` and registers it in `tenant` for `agent`
/// with `keys register` (creating the tenant if need be), signed by the server's admin key;
/// empty `roles` / `types` are left out.
pub(crate) fn cli_register_agent(server: &Server, cwd: &Path, tenant: &str, agent: &str, roles: &str, types: &str) {
    let pem = format!("{agent}.pem");
    ok(cli(server, cwd, &["keygen", "--out", &pem]));
    let admin = server.data_dir.join("keys/admin.pem");
    let mut args =
        vec!["keys", "register", "--tenant", tenant, "--create-tenant", "--agent", agent, "--public-key", &pem];
    args.extend(["--admin-key", admin.to_str().unwrap()]);
    if !roles.is_empty() {
        args.extend(["--roles", roles]);
    }
    if !types.is_empty() {
        args.extend(["--types", types]);
    }
    ok(cli(server, cwd, &args));
}

/// One JSON value printed by a command.
pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {text}"))
}

/// One JSON value per line (`--json` of streaming commands).
pub(crate) fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines().map(json).collect()
}

/// A temp dir with a data dir path inside it.
pub(crate) fn temp_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

/// The body of an event.
pub(crate) fn body(
    tenant: &str,
    stream: &str,
    event_type: &str,
    event_id: &str,
    agent: &str,
    data: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "tenant": tenant, "stream": stream, "type": event_type, "eventId": event_id,
        "occurredAt": "2025-05-23T09:32:00Z", "releaseId": "release-1", "traceId": "trace-1",
        "actor": {"agentId": agent}, "data": data,
    }))
    .unwrap()
}

/// Catalogue-valid `TestsPassed` data, made unique by `n` (in `notes`).
pub(crate) fn tests_passed(n: u64) -> serde_json::Value {
    tests_passed_notes(&format!("run {n}"))
}

/// Catalogue-valid `TestsPassed` data carrying `notes`, the schema's free-text field (up to
/// 60 KiB; the tests pad payloads with it).
pub(crate) fn tests_passed_notes(notes: &str) -> serde_json::Value {
    serde_json::json!({
        "module": "billing", "version": "1.4.0", "suite": "unit", "passed": 10, "failed": 0, "notes": notes,
    })
}

/// A wire event signed by `key`.
pub(crate) fn wire(body: Vec<u8>, key: &KeyPair) -> pb::AppendEvent {
    let event = AppendEvent::new(Envelope::sign(body, key));
    pb::AppendEvent { envelope: Some(ledger_wire::convert::envelope_to_pb(&event.envelope)), expected_version: None }
}

/// Registers a new agent key in `tenant` through the server and returns it.
pub(crate) async fn register(
    client: &mut LedgerClient<Authed>,
    admin: &KeyPair,
    tenant: &str,
    agent: &str,
    types: &[&str],
) -> KeyPair {
    let key = KeyPair::generate();
    let data = serde_json::json!({"agentId": agent, "publicKey": key.public_key_base64(), "roles": ["QA"], "eventTypes": types});
    let body = body(tenant, "keys", "AgentKeyRegistered", &format!("reg-{}", key.key_id()), "admin", data);
    client.append(pb::AppendRequest { event: Some(wire(body, admin)) }).await.unwrap();
    key
}

/// Opens a stopped server's data dir directly and verifies a tenant.
pub(crate) fn verify_offline(data_dir: &Path, tenant: &str) -> ledger::VerifyReport {
    let ledger = ledger::Ledger::open(data_dir, ledger::Config::default()).unwrap();
    ledger.verify_tenant(tenant).unwrap()
}
