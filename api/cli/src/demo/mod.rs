//! `release-ledger demo`: a release-governance story played against a real server, step by
//! step, from the Release Manager and Release Coordinator specifications.
//!
//! By default the server runs in-process ([`api::server::serve`] on loopback ephemeral ports,
//! over a fresh data dir), so the demo needs nothing but the binary. Every expected outcome is
//! checked: the demo exits non-zero, saying what it expected and what it saw, when one is not
//! reached, so it doubles as an end-to-end smoke test of append, catalogue, projection worker
//! and queries.
//!
//! The story, in tenant `vetclinic-001` under a production policy (QA and ReleaseManager must
//! approve, two distinct approvers, tests, coverage >= 80 % and a clean security scan, risk
//! threshold 50 escalating to the CTO, freeze-sensitive):
//! 1. an end-of-quarter freeze delays a release (`ChangeFreezeActive`); once it is lifted and
//!    QA and the release manager approve, the release is approved, deployed and published;
//! 2. a release whose scan finds a Critical CVE is rejected (`SecurityGateFailed`, not
//!    retryable);
//! 3. a module deployed, failed and rolled back within the hour makes its hotfix high-risk
//!    (`HighRisk`): the release waits for the CTO, who approves it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use ledger::{Clock as _, KeyPair};
use proto::v1 as pb;
use tokio::sync::Notify;

use api::server::{self, ServeOptions, DEFAULT_MAX_MESSAGE_BYTES};
use ledger_client::{self as client, Client, EventSpec, QueryClient};

mod story;

use story::play;

/// The demo's tenant.
pub(crate) const TENANT: &str = "vetclinic-001";

/// The production environment of the story.
const PRODUCTION: &str = "production";

/// How long one expected outcome may take to show up in the read models.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the read models are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// What `release-ledger demo` was asked to do.
#[derive(Debug, Clone, Default)]
pub(crate) struct DemoOptions {
    /// Play against this server instead of an embedded one.
    pub server: Option<String>,
    /// The admin key of `server`.
    pub admin_key: Option<PathBuf>,
    /// Data dir of the embedded server (default: a new temp dir); the agents' keys go to its
    /// `demo-keys` directory.
    pub data_dir: Option<PathBuf>,
    /// Keep the embedded server running after the story, until Ctrl-C.
    pub keep: bool,
}

/// Runs the demo; `json` prints one JSON object at the end instead of the story.
pub(crate) async fn run(options: DemoOptions, json: bool) -> anyhow::Result<()> {
    let out = Out { json };
    match &options.server {
        Some(server) => {
            let admin_key = options.admin_key.clone().ok_or_else(|| anyhow!("--server needs --admin-key"))?;
            let data_dir = options.data_dir.clone().unwrap_or_else(fresh_temp_dir);
            let keys_dir = data_dir.join("demo-keys");
            out.say(format!("Release Ledger demo against {server} (agent keys in {})", keys_dir.display()));
            let report = play(server, &admin_key, &keys_dir, &out).await?;
            out.finish(&report, server, None, true);
            Ok(())
        }
        None => embedded(options, &out).await,
    }
}

/// This binary's path, for the explore commands ("release-ledger" when it cannot be known).
fn binary_path() -> String {
    std::env::current_exe().map_or_else(|_| "release-ledger".to_owned(), |path| path.display().to_string())
}

/// A new, not yet existing directory under the system temp dir.
fn fresh_temp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("release-ledger-demo-{}", uuid::Uuid::now_v7().simple()))
}

/// Starts the server in-process, plays the story, and stops the server (or keeps it serving
/// until Ctrl-C with `--keep`).
async fn embedded(options: DemoOptions, out: &Out) -> anyhow::Result<()> {
    let data_dir = options.data_dir.clone().unwrap_or_else(fresh_temp_dir);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let serve_options = ServeOptions {
        data_dir: data_dir.clone(),
        listen: loopback,
        metrics_listen: loopback,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        max_payload_bytes: ledger::event::DEFAULT_MAX_PAYLOAD_BYTES,
        shutdown_grace: Duration::from_secs(2),
        min_free_bytes: ledger::store::DEFAULT_MIN_FREE_BYTES,
        answer_spin: ledger::store::DEFAULT_ANSWER_SPIN,
        connections: api::connections::ConnectionOptions::default(),
        origin_prefix: None,
        tiles_listen: None,
        console_listen: None,
        witnessing: None,
        tls: None,
        insecure_plaintext: false,
        metrics_tls: false,
        access: api::access::AccessPolicy::default(),
        cluster: None,
    };
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<server::Started>();
    let stop = Arc::new(Notify::new());
    let stop_server = stop.clone();
    let served = server::serve(
        serve_options,
        move |started| {
            let _ = started_tx.send(started.clone());
        },
        async move {
            tokio::select! {
                () = stop_server.notified() => {}
                () = server::shutdown_signal() => {}
            }
        },
    );
    let played = async {
        // Dropped unsent when the server fails to start: its own error says why.
        let Ok(started) = started_rx.await else { return Err(anyhow!("the embedded server did not start")) };
        let url = format!("http://{}", started.grpc);
        out.say(format!(
            "Release Ledger demo: embedded server at {url} (metrics http://{}/metrics), data dir {}",
            started.metrics,
            data_dir.display()
        ));
        let result = play(&url, &started.admin_key, &data_dir.join("demo-keys"), out).await;
        match &result {
            Ok(report) if options.keep => {
                out.finish(report, &url, Some(&data_dir), true);
                out.say("the server keeps serving: try the commands above; Ctrl-C stops it".to_owned());
            }
            Ok(report) => {
                out.finish(report, &url, Some(&data_dir), false);
                stop.notify_one();
            }
            Err(_) => stop.notify_one(),
        }
        result
    };
    let (served, played) = tokio::join!(served, played);
    match (served, played) {
        (Err(e), _) => Err(e.context("the embedded server failed")),
        (Ok(()), Err(e)) => Err(e),
        (Ok(()), Ok(_)) => {
            out.say(format!("server stopped; the data dir is kept: {}", data_dir.display()));
            Ok(())
        }
    }
}

/// Prints the story for people; with `--json`, only the final object.
#[derive(Debug, Clone, Copy)]
struct Out {
    json: bool,
}

impl Out {
    fn say(&self, line: String) {
        if !self.json {
            println!("{line}");
        }
    }

    /// The report; `serving` says whether the server still answers the explore commands (an
    /// embedded server without `--keep` stops right after).
    fn finish(&self, report: &Report, server: &str, data_dir: Option<&Path>, serving: bool) {
        let explore = report.explore(server);
        if self.json {
            let value = serde_json::json!({
                "tenant": TENANT,
                "server": server,
                "dataDir": data_dir,
                "keysDir": report.keys_dir,
                "releases": report.outcomes.iter().map(|o| serde_json::json!({
                    "releaseId": o.release, "status": o.status, "reasons": o.codes, "riskScore": o.risk_score,
                    "story": o.story,
                })).collect::<Vec<_>>(),
                "explore": explore,
                "evidencePack": report.evidence_dir,
                "serving": serving,
            });
            println!("{value}");
            return;
        }
        println!();
        println!("== timelines ==");
        for (release, timeline) in &report.timelines {
            println!();
            println!("{release}");
            println!("{}", client::timeline_text(timeline));
        }
        println!();
        println!("== outcomes ==");
        for o in &report.outcomes {
            println!("  {:<16} {:<10} {}", o.release, o.status, o.story);
        }
        println!();
        if serving {
            println!("== explore (the server keeps serving) ==");
        } else {
            println!("== explore (the embedded server stops now: rerun with --keep, e.g. scripts/demo.sh --keep, to try these) ==");
        }
        for line in explore {
            println!("  {line}");
        }
        println!("  (agent keys for approve/reject/evaluate: {}/<agent>.pem)", report.keys_dir.display());
    }
}

/// What the story established, for the final report.
#[derive(Debug)]
struct Report {
    keys_dir: PathBuf,
    /// The admin key the story's operator token was minted with.
    admin_key: PathBuf,
    ids: Ids,
    outcomes: Vec<Outcome>,
    timelines: Vec<(String, Vec<pb::TimelineItem>)>,
    /// The evaluation the freeze delayed (release 1): replaying as of it shows `Delayed`.
    frozen_at: u64,
    /// Where release 3's evidence pack was written.
    evidence_dir: PathBuf,
}

impl Report {
    /// The commands to explore further, after a line setting `rl` to this binary (it is
    /// usually not on PATH).
    fn explore(&self, server: &str) -> Vec<String> {
        let rl = |command: &str| format!("$rl {command} --server {server} --tenant {TENANT}");
        let Ids { frozen, rejected, failed: _, risky } = &self.ids;
        vec![
            format!("rl={}", binary_path()),
            // Reads need a credential: an operator token from the admin key, for an hour.
            format!(
                "export RELEASE_LEDGER_TOKEN=$($rl token --key {} --ttl 1h --server {server})",
                self.admin_key.display()
            ),
            rl("releases"),
            format!("{} --release {frozen}", rl("summary")),
            format!("{} --release {frozen}", rl("timeline")),
            format!("{} --release {frozen} --as-of {}", rl("replay"), self.frozen_at),
            format!("{} --release {rejected}", rl("explain")),
            format!("{} --release {risky}", rl("explain")),
            format!("{} --module invoice-service --environment {PRODUCTION}", rl("history")),
            // The evidence pack needs no server: ledger-audit sits beside this binary. The key
            // to trust is the data dir's (an embedded server's), else the pack's own.
            format!(
                "$(dirname $rl)/ledger-audit verify-evidence {}{}",
                self.evidence_dir.display(),
                self.evidence_dir
                    .parent()
                    .and_then(Path::parent)
                    .map(|data_dir| data_dir.join("keys/ledger.pub"))
                    .filter(|key| key.exists())
                    .map(|key| format!(" --ledger-key {}", key.display()))
                    .unwrap_or_default()
            ),
            format!("open {}/report.html", self.evidence_dir.display()),
        ]
    }
}

/// One release's final outcome.
#[derive(Debug)]
struct Outcome {
    release: String,
    status: String,
    codes: Vec<String>,
    risk_score: Option<u32>,
    story: String,
}

/// The story's release ids.
#[derive(Debug, Clone)]
struct Ids {
    /// Release 1: delayed by the freeze, then published.
    frozen: String,
    /// Release 2: rejected for a Critical CVE.
    rejected: String,
    /// The earlier release of release 3's module, which fails and is rolled back.
    failed: String,
    /// Release 3: high risk, approved by the CTO.
    risky: String,
}

/// The agents of the story: id, roles, event types they may sign.
const AGENTS: &[(&str, &[&str], &[&str])] = &[
    ("ci-pipeline", &["CI"], &["ReleaseIntentDeclared", "ReleaseEvaluationRequested", "PipelineReady"]),
    ("qa-runner", &["QAAutomation"], &["TestsPassed", "TestsFailed", "CoverageVerified", "BDDValidated"]),
    ("security-scanner", &["Security"], &["SecurityGateStatus", "PolicyViolationDetected"]),
    ("release-manager", &["ReleaseManager"], &["ApprovalGranted", "ApprovalRejected", "ReleaseEvaluationRequested"]),
    ("qa-lead", &["QA"], &["ApprovalGranted", "ApprovalRejected"]),
    (
        "studio-admin",
        &["StudioAdmin", "KeyAdmin"],
        &["ChangeFreezeDeclared", "ChangeFreezeLifted", "FreezeOverrideGranted"],
    ),
    ("cto", &["CTO"], &["ApprovalGranted", "ApprovalRejected"]),
    ("deployer", &["Deployer"], &["DeploymentStarted", "DeploymentCompleted", "DeploymentFailed", "RollbackTriggered"]),
];

/// An outcome the story waits for.
#[derive(Debug, Clone, Copy)]
struct Expect<'a> {
    status: &'a str,
    /// Blocking reason codes that must be present.
    with: &'a [&'a str],
    /// Blocking reason codes that must be absent.
    without: &'a [&'a str],
}

impl std::fmt::Display for Expect<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.status)?;
        if !self.with.is_empty() {
            write!(f, " with {}", self.with.join(", "))?;
        }
        if !self.without.is_empty() {
            write!(f, " without {}", self.without.join(", "))?;
        }
        Ok(())
    }
}

impl Expect<'_> {
    fn met_by(&self, summary: &pb::ReleaseSummary) -> bool {
        let has = |code: &str| summary.reasons.iter().any(|r| r.code == code);
        summary.status == self.status && self.with.iter().all(|c| has(c)) && !self.without.iter().any(|c| has(c))
    }
}

const fn expect<'a>(status: &'a str, with: &'a [&'a str], without: &'a [&'a str]) -> Expect<'a> {
    Expect { status, with, without }
}
