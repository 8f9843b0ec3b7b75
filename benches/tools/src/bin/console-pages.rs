//! Web console page times on one large tenant (issue 21: "pages render from the projection
//! store and stay fast on a tenant with 100,000 releases").
//!
//! 1. **Fill** (skipped when `DATA_DIR.fill.json` says this data dir was filled and caught up
//!    before): one tenant gets `--releases` releases through the library with the governance
//!    catalogue (what `scale-bench` does: `Ledger::append_batch`, batches of whole releases,
//!    signing and appending on every core, the real clock), in a realistic mix built from the
//!    governance test kit's event builders (`testkit::gov`): a policy for four environments
//!    (`prod`, `staging`, `dev`, `staging-eu`), a change freeze in force on `staging-eu`, a yearly
//!    holiday freeze on `prod` and a weekly maintenance freeze on `dev` (not in force), then
//!    releases of 1–3 of 40 modules (skewed: `svc-00` ships in about one release in five) that
//!    stop at every stage: only declared (Planned), evaluated and waiting for an approval or
//!    held by the freeze (Delayed), approved (Approved), failing tests or rejected by QA
//!    (Rejected), deployed (Published), failed deployments (Failed), deployed then rolled back
//!    (RolledBack).
//! 2. **Catch-up**: `release-ledger serve --console-listen 127.0.0.1:0` on the data dir; its
//!    governance worker folds the log and appends the decisions; `GetGovernanceStatus` is
//!    polled (with an operator token) until the tenant's lag is 0 on three polls in a row with
//!    the position unchanged. Timed from the spawn (the time includes the server's start).
//! 3. **Pages**: an operator token (`release-ledger token --key DATA/keys/admin.pem --ttl 1h`),
//!    then, per page, sequential `GET`s with `Authorization: Bearer` over one keep-alive
//!    connection: `--warmup` requests, then `--samples` timed ones (request written to last
//!    body byte read), rotating through the page's URLs (random releases, entries, ...). The
//!    explain fragment folds the log: `--explain-samples` requests, no warm-up.
//!
//! Output: a table (text) and `--json-out FILE` (every figure, the load average before each
//! page). Run by `benches/scripts/console-pages.sh`.
//!
//! Usage: `console-pages [--releases 100000] [--data-dir DIR] [--samples 200] [--warmup 20]`.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use clap::Parser;
use ledger::{AppendEvent, Config, Envelope, KeyPair, Ledger};
use serde_json::{json, Value};
use testkit::gov::{self, Event, Rng};

const TENANT: &str = "console-bench";
/// Module names: `svc-00` .. `svc-39`.
const MODULES: u64 = 40;
/// Releases per `append_batch` (about 10 events each).
const RELEASES_PER_BATCH: u64 = 96;

#[derive(Debug, Parser)]
#[command(about = "Web console page times on one tenant with many releases")]
struct Args {
    /// Releases in the tenant.
    #[arg(long, default_value_t = 100_000)]
    releases: u64,
    /// The data dir (default `/var/tmp/release-ledger-console-<releases>`); reused when
    /// `DATA_DIR.fill.json` is there.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Fill again even if the data dir was filled before.
    #[arg(long)]
    refill: bool,
    /// Timed requests per page.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Untimed requests per page first.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Pages followed from the board's first page (`a#next-page`) in one deep-page walk.
    #[arg(long, default_value_t = 20)]
    deep_pages: usize,
    /// Timed explain fragments (each folds the tenant's log up to the decision).
    #[arg(long, default_value_t = 3)]
    explain_samples: usize,
    /// The `release-ledger` binary (default: next to this one).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Write every figure here as JSON.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// The workload

/// Where a release stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
enum Plan {
    /// Declared, some signals, never evaluated.
    Planned,
    /// Evaluated, no approval yet.
    AwaitingApproval,
    /// Evaluated in `staging-eu` while its freeze is in force (half of them approved too).
    Frozen,
    /// Approved, not deployed.
    Approved,
    /// A failing test suite.
    TestsFailed,
    /// Rejected by QA.
    RejectedByQa,
    /// Deployed.
    Published,
    /// Deployment failed.
    Failed,
    /// Deployed, then rolled back.
    RolledBack,
}

impl Plan {
    /// (plan, weight in 1000).
    const MIX: [(Plan, u64); 9] = [
        (Plan::Planned, 100),
        (Plan::AwaitingApproval, 100),
        (Plan::Frozen, 50),
        (Plan::Approved, 120),
        (Plan::TestsFailed, 60),
        (Plan::RejectedByQa, 20),
        (Plan::Published, 430),
        (Plan::Failed, 40),
        (Plan::RolledBack, 80),
    ];

    fn pick(rng: &mut Rng) -> Self {
        let mut at = rng.below(1000);
        for (plan, weight) in Self::MIX {
            if at < weight {
                return plan;
            }
            at -= weight;
        }
        Plan::Published
    }

    /// The status the fold ends the release at (checked on the board's counts).
    fn status(self) -> &'static str {
        match self {
            Plan::Planned => "Planned",
            Plan::AwaitingApproval | Plan::Frozen => "Delayed",
            Plan::Approved => "Approved",
            Plan::TestsFailed | Plan::RejectedByQa => "Rejected",
            Plan::Published => "Published",
            Plan::Failed => "Failed",
            Plan::RolledBack => "RolledBack",
        }
    }
}

fn release_id(index: u64) -> String {
    format!("rel-{index:06}")
}

fn module_name(index: u64) -> String {
    format!("svc-{index:02}")
}

/// Release `index`: its plan, environment, modules and events (deterministic in `index`).
struct Release {
    plan: Plan,
    environment: &'static str,
    modules: Vec<String>,
    events: Vec<Event>,
}

fn release(index: u64) -> Release {
    let mut rng = Rng::new(0xC0_5013 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let plan = Plan::pick(&mut rng);
    let environment = match plan {
        Plan::Frozen => "staging-eu",
        _ => match rng.below(100) {
            0..=49 => "prod",
            50..=84 => "staging",
            _ => "dev",
        },
    };
    // The first module skewed towards svc-00 (u² of a uniform u), then up to two others.
    let u = rng.below(1_000_000) as f64 / 1_000_000.0;
    let mut modules = vec![module_name(((u * u) * MODULES as f64) as u64)];
    for _ in 0..rng.below(3) {
        let name = module_name(rng.below(MODULES));
        if !modules.contains(&name) {
            modules.push(name);
        }
    }
    let id = release_id(index);
    let version = format!("1.{index}.0");
    let pairs: Vec<(&str, &str)> = modules.iter().map(|m| (m.as_str(), version.as_str())).collect();
    let mut events = vec![gov::intent(&id, environment, &pairs)];
    for (i, module) in modules.iter().enumerate() {
        if plan == Plan::Planned && i > 0 {
            break;
        }
        if plan == Plan::TestsFailed && i == 0 {
            events.push(gov::tests_failed(&id, module, &version));
        } else {
            events.push(gov::tests_passed(&id, module, &version));
        }
        events.push(gov::coverage(&id, module, &version, 80.0 + rng.below(20) as f64));
        events.push(gov::security(&id, module, &version));
    }
    if plan != Plan::Planned {
        events.push(gov::evaluate(&id));
    }
    match plan {
        Plan::Planned | Plan::AwaitingApproval | Plan::TestsFailed => {}
        Plan::Frozen => {
            if rng.chance(50) {
                events.push(gov::approve(&id, "QA"));
            }
        }
        Plan::Approved => events.push(gov::approve(&id, "QA")),
        Plan::RejectedByQa => events.push(gov::reject(&id, "QA", "exploratory testing found a regression")),
        Plan::Published | Plan::Failed | Plan::RolledBack => {
            events.push(gov::approve(&id, "QA"));
            events.push(gov::deploy_started(&id, environment));
            if plan == Plan::Failed {
                events.push(gov::deploy_failed(&id, environment, "health checks failed"));
            } else {
                events.push(gov::deploy_completed(&id, environment));
            }
            if plan == Plan::RolledBack {
                events.push(gov::rollback(&id, environment, "error rate above the SLO"));
            }
        }
    }
    Release { plan, environment, modules, events }
}

/// The tenant's policy: the kit's baseline rules (one QA approval, tests, coverage >= 80 %, a
/// clean scan, separation of duties, freeze-sensitive) in every environment, approvals that do
/// not expire (so nothing re-evaluates later on a reused data dir).
fn policy_doc() -> Value {
    let mut env = gov::base_env_policy();
    env["approvalTtlSeconds"] = Value::Null;
    let mut dev = env.clone();
    dev["minTestCoverage"] = json!(70.0);
    json!({ "version": 1, "environments": { "prod": env, "staging": env, "staging-eu": env, "dev": dev } })
}

/// Signs kit events as the kit's [`gov::Scenario`] does (same body shape), with the real clock.
struct Signer {
    admin: KeyPair,
    keys: BTreeMap<String, KeyPair>,
}

impl Signer {
    fn new(admin: KeyPair) -> Self {
        let keys = gov::CAST.iter().map(|(agent, _)| ((*agent).to_owned(), gov::key_of(agent))).collect();
        Self { admin, keys }
    }

    fn sign(&self, event: &Event, event_id: &str) -> anyhow::Result<AppendEvent> {
        let now = SystemClockNs::now();
        let mut body = json!({
            "tenant": TENANT,
            "stream": event.release.as_deref().map_or_else(|| "config".to_owned(), |r| format!("release/{r}")),
            "type": event.event_type, "eventId": event_id, "occurredAt": gov::rfc3339(now),
            "actor": { "agentId": event.signer }, "data": event.data,
        });
        if let Some(release) = &event.release {
            body["releaseId"] = release.as_str().into();
            body["traceId"] = format!("trace-{release}").into();
        }
        let key = if event.signer == gov::ADMIN {
            &self.admin
        } else {
            self.keys.get(&event.signer).with_context(|| format!("no key for {}", event.signer))?
        };
        Ok(AppendEvent::new(Envelope::sign(serde_json::to_vec(&body)?, key)))
    }
}

/// The wall clock, as the ledger reads it.
struct SystemClockNs;

impl SystemClockNs {
    fn now() -> u64 {
        ledger::Clock::now_ns(&ledger::SystemClock)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FillReport {
    releases: u64,
    events: u64,
    fill_seconds: f64,
    fill_events_per_sec: f64,
    /// Spawn to lag 0 (server start, projection load, fold, decisions appended and folded).
    catch_up_seconds: f64,
    /// The log once caught up (the fill plus the worker's decisions).
    log_entries: u64,
    catch_up_entries_per_sec: f64,
    plans: BTreeMap<String, u64>,
    load_average_after_catch_up: String,
    filled_at: String,
}

/// Creates the data dir, registers the kit's cast, sets the policy and the freezes, and appends
/// every release; returns (events appended, seconds).
fn fill(data_dir: &Path, releases: u64) -> anyhow::Result<(u64, f64)> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    let config = Config { rules: Some(Arc::new(projections::Catalogue)), ..Config::default() };
    let ledger = Ledger::open(data_dir, config)?;
    let admin = KeyPair::load(&data_dir.join("keys/admin.pem"))?;
    for (agent, roles) in gov::CAST {
        let body = testkit::register_key_body(TENANT, agent, &gov::key_of(agent), roles, &[]);
        let _ = ledger.append(AppendEvent::new(Envelope::sign(body, &admin)))?;
    }
    let signer = Signer::new(admin);
    let now = SystemClockNs::now();
    let setup = [
        gov::policy(policy_doc()),
        // In force for half a year: every evaluated staging-eu release is Delayed until it ends.
        gov::freeze_oneoff(
            "eu-datacentre-migration",
            &["staging-eu"],
            &gov::rfc3339(now - gov::DAY),
            &gov::rfc3339(now + 180 * gov::DAY),
        ),
        gov::freeze_recurring(
            "holiday",
            &["prod"],
            "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=24",
            3 * 86_400,
            "Europe/Berlin",
        ),
        gov::freeze_cron("dev-maintenance", &["dev"], "0 2 * * 0", 7_200, "UTC"),
    ];
    for (i, event) in setup.iter().enumerate() {
        let _ = ledger.append(signer.sign(event, &format!("setup-{i}"))?)?;
    }
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let appended = AtomicU64::new(0);
    let progress = AtomicU64::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..bench_harness::cores())
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let from = next.fetch_add(RELEASES_PER_BATCH, Ordering::Relaxed);
                        if from >= releases {
                            return Ok(());
                        }
                        let to = (from + RELEASES_PER_BATCH).min(releases);
                        let mut batch = Vec::new();
                        for index in from..to {
                            for (j, event) in release(index).events.iter().enumerate() {
                                batch.push(signer.sign(event, &format!("{}-{j}", release_id(index)))?);
                            }
                        }
                        let count = batch.len() as u64;
                        let _ = ledger.append_batch(batch)?;
                        appended.fetch_add(count, Ordering::Relaxed);
                        let done = progress.fetch_add(to - from, Ordering::Relaxed) + (to - from);
                        if done / 10_000 != (done - (to - from)) / 10_000 {
                            eprintln!(
                                "  filled {done} releases, {} events, {:.0} s",
                                appended.load(Ordering::Relaxed),
                                started.elapsed().as_secs_f64()
                            );
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().map_err(|_| anyhow::anyhow!("fill thread panicked"))??;
        }
        Ok(())
    })?;
    Ok((appended.load(Ordering::Relaxed), started.elapsed().as_secs_f64()))
}

// ---------------------------------------------------------------------------------------------
// The server

struct Server {
    child: Child,
    grpc: SocketAddr,
    console: SocketAddr,
}

impl Server {
    fn start(bin: &Path, data_dir: &Path) -> anyhow::Result<Self> {
        let log_path = data_dir.with_extension("server.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let mut child = Command::new(bin)
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .args(["--console-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).context("reading the listening line")?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let parsed: Value = match serde_json::from_str(&line) {
            Ok(parsed) => parsed,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not start ({line:?}); see {}", log_path.display());
            }
        };
        let addr = |name: &str| -> anyhow::Result<SocketAddr> {
            parsed["server"][name].as_str().and_then(|a| a.parse().ok()).with_context(|| format!("no {name} in {line}"))
        };
        let (grpc, console) = match (addr("grpc"), addr("console")) {
            (Ok(grpc), Ok(console)) => (grpc, console),
            (Err(e), _) | (_, Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Self { child, grpc, console })
    }

    fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, and wait (SIGKILL after 30 s).
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while self.child.try_wait()?.is_none() {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An operator token from `release-ledger token`.
fn mint_token(bin: &Path, data_dir: &Path, server: &Server) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .args(["token", "--key"])
        .arg(data_dir.join("keys/admin.pem"))
        .args(["--ttl", "1h", "--server", &server.grpc_url()])
        .output()
        .context("running release-ledger token")?;
    ensure!(output.status.success(), "release-ledger token failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// Polls `GetGovernanceStatus` until the tenant's lag is 0 on three polls in a row at the same
/// position; returns the position. Progress on stderr every 10 s.
fn wait_caught_up(server: &Server, token: &str, timeout: Duration) -> anyhow::Result<u64> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let url = server.grpc_url();
    runtime.block_on(async {
        let started = Instant::now();
        let mut client = loop {
            match proto::v1::query_client::QueryClient::connect(url.clone()).await {
                Ok(client) => break client,
                Err(_) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => bail!("connecting to {url}: {e}"),
            }
        };
        let mut settled = (0u32, u64::MAX);
        let mut reported = Instant::now();
        loop {
            let mut request = tonic::Request::new(proto::v1::GetGovernanceStatusRequest {});
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
            match client.get_governance_status(request).await {
                Ok(status) => {
                    let status = status.into_inner();
                    let tenant = status.tenants.iter().find(|t| t.tenant == TENANT);
                    match tenant {
                        Some(t) if t.lag_entries == 0 => {
                            settled =
                                if settled.1 == t.position { (settled.0 + 1, t.position) } else { (1, t.position) };
                            if settled.0 >= 3 {
                                return Ok(t.position);
                            }
                        }
                        Some(t) => {
                            settled = (0, u64::MAX);
                            if reported.elapsed() > Duration::from_secs(10) {
                                eprintln!(
                                    "  catching up: position {}, lag {}, {:.0} s",
                                    t.position,
                                    t.lag_entries,
                                    started.elapsed().as_secs_f64()
                                );
                                reported = Instant::now();
                            }
                        }
                        None => settled = (0, u64::MAX),
                    }
                }
                Err(s) if s.code() == tonic::Code::Unavailable => {}
                Err(s) => bail!("GetGovernanceStatus: {s}"),
            }
            ensure!(started.elapsed() < timeout, "not caught up after {} s", timeout.as_secs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

// ---------------------------------------------------------------------------------------------
// HTTP: one keep-alive connection, requests in sequence

struct Http {
    addr: SocketAddr,
    authorization: String,
    conn: Option<BufReader<TcpStream>>,
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Http {
    fn new(addr: SocketAddr, token: &str) -> Self {
        Self { addr, authorization: format!("Bearer {token}"), conn: None }
    }

    fn get(&mut self, path: &str, fragment: bool) -> anyhow::Result<Answer> {
        // A kept-alive connection the server closed meanwhile fails at once: retry once.
        match self.try_get(path, fragment) {
            Ok(answer) => Ok(answer),
            Err(_) if self.conn.is_none() => self.try_get(path, fragment),
            Err(e) => Err(e),
        }
    }

    fn try_get(&mut self, path: &str, fragment: bool) -> anyhow::Result<Answer> {
        let result = self.exchange(path, fragment);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(&mut self, path: &str, fragment: bool) -> anyhow::Result<Answer> {
        if self.conn.is_none() {
            let stream = TcpStream::connect(self.addr)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(600)))?;
            self.conn = Some(BufReader::with_capacity(1 << 16, stream));
        }
        let conn = self.conn.as_mut().context("no connection")?;
        let extra = if fragment { "X-Fragment: 1\r\n" } else { "" };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: text/html\r\n{extra}\r\n",
            self.addr, self.authorization
        );
        conn.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        conn.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("status line {line:?}"))?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_ascii_lowercase());
                match name.as_str() {
                    "content-length" => length = value.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = value.contains("chunked"),
                    "connection" => close = value.contains("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                if size == 0 {
                    line.clear();
                    conn.read_line(&mut line)?;
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                conn.read_exact(&mut body[start..])?;
                let mut crlf = [0; 2];
                conn.read_exact(&mut crlf)?;
            }
        } else if let Some(length) = length {
            body.resize(length, 0);
            conn.read_exact(&mut body)?;
        } else {
            conn.read_to_end(&mut body)?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(Answer { status, body })
    }
}

/// The `href` of the element with `id` in `html` (attributes unescaped).
fn href_of(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let tag_end = at + html[at..].find('>')?;
    let tag_start = html[..at].rfind('<')?;
    let tag = &html[tag_start..tag_end];
    let from = tag.find("href=\"")? + 6;
    let to = from + tag[from..].find('"')?;
    Some(tag[from..to].replace("&amp;", "&"))
}

/// The release ids of a board page's rows.
fn board_ids(html: &str) -> Vec<String> {
    html.match_indices("data-release=\"")
        .filter_map(|(at, m)| {
            let from = at + m.len();
            html[from..].find('"').map(|to| html[from..from + to].to_owned())
        })
        .collect()
}

/// The count shown for `name` in `#counts`.
fn count_of(html: &str, name: &str) -> Option<u64> {
    let marker = format!("data-count=\"{name}\">");
    let from = html.find(&marker)? + marker.len();
    html[from..].split('<').next()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Measurement

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PageResult {
    page: String,
    example: String,
    samples: usize,
    warmup: usize,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    mean_bytes: f64,
    /// Answers that were not 200 or lacked the page's hook.
    unexpected: usize,
    load_average_before: String,
    note: String,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

struct Measure<'a> {
    http: &'a mut Http,
    warmup: usize,
    samples: usize,
}

impl Measure<'_> {
    /// `warmup` then `samples` requests of `url(i)` (i counting from 0 over both), each answer
    /// checked to be 200 with `hook` in it.
    fn page(
        &mut self,
        page: &str,
        hook: &str,
        fragment: bool,
        url: &mut dyn FnMut(usize) -> String,
    ) -> anyhow::Result<PageResult> {
        self.page_with(page, hook, fragment, url, None)
    }

    /// [`Measure::page`], also counting the answers that do not list the row `row(i)` (a
    /// release id searched for).
    fn page_with(
        &mut self,
        page: &str,
        hook: &str,
        fragment: bool,
        url: &mut dyn FnMut(usize) -> String,
        row: Option<&dyn Fn(usize) -> String>,
    ) -> anyhow::Result<PageResult> {
        let load = bench_harness::load_average();
        let example = url(0);
        for i in 0..self.warmup {
            let _ = self.http.get(&url(i), fragment)?;
        }
        let mut ms = Vec::with_capacity(self.samples);
        let (mut bytes, mut unexpected, mut found) = (0usize, 0usize, 0usize);
        for i in 0..self.samples {
            let path = url(self.warmup + i);
            let started = Instant::now();
            let answer = self.http.get(&path, fragment)?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            bytes += answer.body.len();
            // `hook` "303": a redirect is the expected answer (an exact release id searched).
            let expected =
                if hook == "303" { answer.status == 303 } else { answer.status == 200 && answer.text().contains(hook) };
            if !expected {
                if unexpected < 3 {
                    let text = answer.text();
                    eprintln!("  unexpected answer to {path}: {} {}", answer.status, &text[..text.len().min(300)]);
                }
                unexpected += 1;
            }
            if let Some(row) = row {
                if answer.text().contains(&format!("data-release=\"{}\"", row(self.warmup + i))) {
                    found += 1;
                }
            }
        }
        let note = match row {
            Some(_) => format!("the release searched for was on the answered page {found} times of {}", self.samples),
            None => String::new(),
        };
        Ok(summarise(page, example, ms, bytes, unexpected, self.warmup, load, note))
    }
}

#[allow(clippy::too_many_arguments)]
fn summarise(
    page: &str,
    example: String,
    mut ms: Vec<f64>,
    bytes: usize,
    unexpected: usize,
    warmup: usize,
    load: String,
    note: String,
) -> PageResult {
    ms.sort_by(f64::total_cmp);
    let n = ms.len().max(1) as f64;
    let result = PageResult {
        page: page.to_owned(),
        example,
        samples: ms.len(),
        warmup,
        p50_ms: percentile(&ms, 0.5),
        p90_ms: percentile(&ms, 0.9),
        p99_ms: percentile(&ms, 0.99),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
        mean_ms: ms.iter().sum::<f64>() / n,
        mean_bytes: bytes as f64 / n,
        unexpected,
        load_average_before: load,
        note,
    };
    eprintln!(
        "  {:<40} p50 {:>8.2} p99 {:>8.2} max {:>8.2} ms, {:>9.0} B{}",
        result.page,
        result.p50_ms,
        result.p99_ms,
        result.max_ms,
        result.mean_bytes,
        if unexpected > 0 { format!(" ({unexpected} unexpected)") } else { String::new() }
    );
    result
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.releases > 0, "--releases must be at least 1");
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/tmp/release-ledger-console-{}", args.releases)));
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => bench_harness::server::default_server_bin()?,
    };
    let marker = data_dir.with_extension("fill.json");
    eprintln!("load average at start: {}", bench_harness::load_average());

    // 1 and 2: fill (unless cached) and catch up.
    let cached: Option<FillReport> = if args.refill || !data_dir.exists() {
        None
    } else {
        std::fs::read(&marker)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<FillReport>(&bytes).ok())
            .filter(|r| r.releases == args.releases)
    };
    let (fill_report, reused, server, token, position) = match cached {
        Some(report) => {
            eprintln!("reusing {} (filled {}; --refill to fill again)", data_dir.display(), report.filled_at);
            let started = Instant::now();
            let server = Server::start(&bin, &data_dir)?;
            let token = mint_token(&bin, &data_dir, &server)?;
            let position = wait_caught_up(&server, &token, Duration::from_secs(3600))?;
            eprintln!("server ready and caught up in {:.1} s at {position} entries", started.elapsed().as_secs_f64());
            (report, true, server, token, position)
        }
        None => {
            if marker.exists() {
                std::fs::remove_file(&marker)?;
            }
            eprintln!("filling {} with {} releases", data_dir.display(), args.releases);
            let (events, fill_seconds) = fill(&data_dir, args.releases)?;
            eprintln!(
                "filled: {events} events in {fill_seconds:.1} s ({:.0}/s); load {}",
                events as f64 / fill_seconds,
                bench_harness::load_average()
            );
            let started = Instant::now();
            let server = Server::start(&bin, &data_dir)?;
            let token = mint_token(&bin, &data_dir, &server)?;
            let position = wait_caught_up(&server, &token, Duration::from_secs(3600))?;
            let catch_up_seconds = started.elapsed().as_secs_f64();
            let mut plans = BTreeMap::new();
            for index in 0..args.releases {
                *plans.entry(format!("{:?}", release(index).plan)).or_insert(0) += 1;
            }
            let report = FillReport {
                releases: args.releases,
                events,
                fill_seconds,
                fill_events_per_sec: events as f64 / fill_seconds,
                catch_up_seconds,
                log_entries: position,
                catch_up_entries_per_sec: position as f64 / catch_up_seconds,
                plans,
                load_average_after_catch_up: bench_harness::load_average(),
                filled_at: gov::rfc3339(SystemClockNs::now()),
            };
            eprintln!("caught up: {position} entries in {catch_up_seconds:.1} s");
            std::fs::write(&marker, serde_json::to_vec_pretty(&report)?)?;
            (report, false, server, token, position)
        }
    };

    // 3. Pages.
    let mut http = Http::new(server.console, &token);
    let base = format!("/t/{TENANT}");
    let first = http.get(&base, false)?;
    ensure!(first.status == 200, "the board answered {}: {}", first.status, first.text());
    let first_html = first.text().into_owned();
    // The counts the board shows against the plans of the fill.
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for index in 0..args.releases {
        *expected.entry(release(index).plan.status()).or_insert(0) += 1;
    }
    let mut counts = BTreeMap::new();
    for status in ["All", "Planned", "Delayed", "Approved", "Rejected", "Published", "Failed", "RolledBack"] {
        counts.insert(status.to_owned(), count_of(&first_html, status));
    }
    let mismatched: Vec<String> = expected
        .iter()
        .filter(|(status, n)| counts.get(**status).copied().flatten() != Some(**n))
        .map(|(status, n)| format!("{status}: board {:?}, fill {n}", counts.get(*status).copied().flatten()))
        .collect();
    if mismatched.is_empty() {
        eprintln!("board counts match the fill: {counts:?}");
    } else {
        eprintln!("board counts differ from the fill's plans: {}", mismatched.join("; "));
    }
    let recent = board_ids(&first_html);
    ensure!(!recent.is_empty(), "the board's first page lists no release");

    let mut rng = Rng::new(0x00C0_FFEE);
    let n = args.releases;
    let mut random_ids: Vec<String> = (0..args.samples + args.warmup).map(|_| release_id(rng.below(n))).collect();
    random_ids.sort_unstable();
    random_ids.dedup();
    let seqs: Vec<u64> = (0..args.samples + args.warmup).map(|_| rng.below(position)).collect();
    // Modules by how many releases ship them in prod.
    let mut per_module: BTreeMap<String, u64> = BTreeMap::new();
    for index in 0..n {
        let r = release(index);
        if r.environment == "prod" {
            for m in r.modules {
                *per_module.entry(m).or_insert(0) += 1;
            }
        }
    }
    let mut by_use: Vec<(String, u64)> = per_module.into_iter().collect();
    by_use.sort_by_key(|(name, count)| (std::cmp::Reverse(*count), name.clone()));
    let busiest = by_use.first().map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(0));
    let median = by_use.get(by_use.len() / 2).map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(1));
    let rarest = by_use.last().map(|(m, _)| m.clone()).unwrap_or_else(|| module_name(2));

    let mut results = Vec::new();
    let mut m = Measure { http: &mut http, warmup: args.warmup, samples: args.samples };
    results.push(m.page("board, first page", "data-count=\"All\"", false, &mut |_| base.clone())?);
    results
        .push(m.page("board, status=Delayed", "data-count=\"All\"", false, &mut |_| format!("{base}?status=Delayed"))?);
    results
        .push(m.page("board, status=Failed", "data-count=\"All\"", false, &mut |_| format!("{base}?status=Failed"))?);
    results.push(m.page("board, environment=staging-eu", "data-count=\"All\"", false, &mut |_| {
        format!("{base}?environment=staging-eu")
    })?);
    results.push(m.page(&format!("board, module={median} (median)"), "data-count=\"All\"", false, &mut |_| {
        format!("{base}?module={median}")
    })?);
    results.push(m.page(&format!("board, module={rarest} (rarest)"), "data-count=\"All\"", false, &mut |_| {
        format!("{base}?module={rarest}")
    })?);
    // An exact release id redirects to its page (one read); a prefix filters the index.
    let prefix = |id: &str| id[..id.len().saturating_sub(1)].to_owned();
    results.push(m.page_with(
        "board, q=<exact random release id> (303 to its page)",
        "303",
        false,
        &mut |i| format!("{base}?q={}", random_ids[i % random_ids.len()]),
        None,
    )?);
    results.push(m.page_with(
        "board, q=<prefix of an id on the first page>",
        "data-count=\"All\"",
        false,
        &mut |i| format!("{base}?q={}", prefix(&recent[i % recent.len()])),
        Some(&|i| recent[i % recent.len()].clone()),
    )?);
    results.push(m.page_with(
        "board, q=<prefix of a random release id>",
        "data-count=\"All\"",
        false,
        &mut |i| format!("{base}?q={}", prefix(&random_ids[i % random_ids.len()])),
        Some(&|i| random_ids[i % random_ids.len()].clone()),
    )?);

    // The deep page: follow a#next-page `deep_pages` times from the first page; each hop timed.
    {
        let load = bench_harness::load_average();
        let walks = args.samples.div_ceil(args.deep_pages.max(1)).max(1);
        let mut ms = Vec::new();
        let (mut bytes, mut unexpected, mut deepest) = (0usize, 0usize, String::new());
        for walk in 0..=walks {
            let mut url = base.clone();
            let mut page = http_get_next(m.http, &url)?;
            for _ in 0..args.deep_pages {
                let Some(next) = page.1 else { break };
                url = next;
                let started = Instant::now();
                let answer = m.http.get(&url, false)?;
                let elapsed = started.elapsed().as_secs_f64() * 1e3;
                let html = answer.text().into_owned();
                // Walk 0 warms up.
                if walk > 0 {
                    ms.push(elapsed);
                    bytes += answer.body.len();
                    if answer.status != 200 || !html.contains("data-release=") {
                        unexpected += 1;
                    }
                }
                page = (answer.status, href_of(&html, "next-page"));
            }
            deepest = url;
        }
        results.push(summarise(
            &format!("board, pages 2..{} via a#next-page", args.deep_pages + 1),
            deepest,
            ms,
            bytes,
            unexpected,
            args.deep_pages,
            load,
            format!("{walks} walks of {} hops", args.deep_pages),
        ));
    }

    results.push(m.page("release page (random release)", "id=\"status\"", false, &mut |i| {
        format!("{base}/releases/{}", random_ids[i % random_ids.len()])
    })?);
    results.push(m.page("entry page (random seq)", "id=\"verify-result\"", false, &mut |i| {
        format!("{base}/entries/{}", seqs[i % seqs.len()])
    })?);
    results.push(m.page("proof.json (random seq)", "\"inclusion\"", false, &mut |i| {
        format!("{base}/entries/{}/proof.json", seqs[i % seqs.len()])
    })?);
    results.push(m.page("freezes", "id=\"freezes\"", false, &mut |_| format!("{base}/freezes"))?);
    results.push(m.page(
        &format!("module history, {median} in prod (median)"),
        "id=\"history\"",
        false,
        &mut |_| format!("{base}/modules/{median}?environment=prod"),
    )?);
    results.push(m.page(
        &format!("module history, {busiest} in prod (busiest)"),
        "id=\"history\"",
        false,
        &mut |_| format!("{base}/modules/{busiest}?environment=prod"),
    )?);
    results.push(m.page("operator", "id=\"tenants\"", false, &mut |_| "/operator".to_owned())?);

    // The explain fragment: folds the log up to the decision; no warm-up, few samples.
    {
        let mut x = Measure { http: &mut *m.http, warmup: 0, samples: args.explain_samples };
        let picks = [recent[0].clone(), release_id(n / 2), release_id(0)];
        results.push(x.page(
            &format!("explain fragment ({}, newest)", picks[0]),
            "id=\"explain\"",
            true,
            &mut |_| format!("{base}/releases/{}/explain", picks[0]),
        )?);
        results.push(x.page(
            &format!("explain fragment ({}, middle)", picks[1]),
            "id=\"explain\"",
            true,
            &mut |_| format!("{base}/releases/{}/explain", picks[1]),
        )?);
    }

    let load_at_end = bench_harness::load_average();
    server.stop()?;

    println!(
        "\nconsole pages, tenant {TENANT}: {} releases, {position} log entries ({})",
        args.releases,
        if reused { "data dir reused" } else { "filled in this run" }
    );
    println!(
        "fill: {} events in {:.1} s = {:.0} events/s; catch-up (spawn to lag 0): {:.1} s, {:.0} entries/s",
        fill_report.events,
        fill_report.fill_seconds,
        fill_report.fill_events_per_sec,
        fill_report.catch_up_seconds,
        fill_report.catch_up_entries_per_sec
    );
    println!("board counts: {counts:?}");
    println!("\n| page | samples | p50 ms | p90 ms | p99 ms | max ms | mean KiB | load before |");
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in &results {
        println!(
            "| {} | {}{} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
            r.page,
            r.samples,
            if r.unexpected > 0 { format!(" ({} unexpected)", r.unexpected) } else { String::new() },
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.max_ms,
            r.mean_bytes / 1024.0,
            r.load_average_before
        );
    }
    for r in results.iter().filter(|r| !r.note.is_empty()) {
        println!("- {}: {}", r.page, r.note);
    }
    println!("load average at end: {load_at_end}");
    if let Some(path) = &args.json_out {
        let out = json!({
            "tenant": TENANT, "releases": args.releases, "logEntries": position, "dataDir": data_dir,
            "dataDirReused": reused, "fill": fill_report, "boardCounts": counts,
            "countMismatches": mismatched, "modules": { "busiest": busiest, "median": median, "rarest": rarest },
            "pages": results, "loadAverageAtEnd": load_at_end,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
    }
    ensure!(mismatched.is_empty(), "the board's counts differ from the fill's plans");
    Ok(())
}

/// The first board page and its next-page link.
fn http_get_next(http: &mut Http, url: &str) -> anyhow::Result<(u16, Option<String>)> {
    let answer = http.get(url, false)?;
    let next = href_of(&answer.text(), "next-page");
    Ok((answer.status, next))
}
