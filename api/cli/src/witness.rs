//! `release-ledger witness`: a C2SP tlog-witness (`add-checkpoint`, and the monitoring
//! endpoint `GET /<origin hash>/checkpoint`) that cosigns the checkpoints of the logs it is
//! configured with, so an auditor or a second organisation can hold the ledger's head.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use api::telemetry;
use clap::Args;
use ledger::KeyPair;

use crate::{print, LogFormatArg};

/// The witness's settings.
#[derive(Debug, Args)]
pub(crate) struct WitnessArgs {
    /// Address to serve tlog-witness on (`POST /add-checkpoint`); its URL is the submission
    /// prefix policies list.
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_LISTEN", default_value = "127.0.0.1:7380")]
    pub(crate) listen: SocketAddr,
    /// The witness's cosigner name, a schema-less URL such as witness.example.org/w1: the key
    /// name of its cosignatures and vkey.
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_NAME")]
    pub(crate) name: String,
    /// The witness's Ed25519 signing key (PKCS#8 PEM; encrypted keys take their passphrase from
    /// RELEASE_LEDGER_KEY_PASSPHRASE[_FILE]). --init creates it.
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_KEY", default_value = "./release-ledger-witness/witness.pem")]
    pub(crate) key: PathBuf,
    /// Where the latest cosigned checkpoint of each log is kept (one file per origin, replaced
    /// atomically).
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_STATE_DIR", default_value = "./release-ledger-witness/state")]
    pub(crate) state_dir: PathBuf,
    /// The logs to witness: a file of tlog-policy `log <vkey> [<url>]` lines, the vkey's name
    /// being the log's origin (for a ledger tenant: release-ledger/<tenant>, signed by the
    /// ledger key, signature type 0x01).
    #[arg(long, env = "RELEASE_LEDGER_WITNESS_LOGS", required_unless_present = "init")]
    pub(crate) logs: Option<PathBuf>,
    /// Create the signing key (refusing to overwrite one), print the vkey and exit.
    #[arg(long)]
    pub(crate) init: bool,
}

/// `witness`.
pub(crate) async fn run(args: WitnessArgs, log_format: Option<LogFormatArg>, json: bool) -> anyhow::Result<()> {
    let _telemetry = telemetry::init(log_format.map_or(telemetry::LogFormat::Text, Into::into), "info")?;
    if args.init {
        if let Some(parent) = args.key.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let key = KeyPair::generate();
        key.save_new(&args.key).with_context(|| format!("writing the witness key {}", args.key.display()))?;
        let cosigner = witness::Cosigner::new(&args.name, key).map_err(|e| anyhow::anyhow!("witness name: {e}"))?;
        let vkey = cosigner.vkey().to_string();
        print(json, serde_json::json!({ "event": "initialised", "key": args.key, "vkey": vkey }), || {
            format!("created witness key {}\nvkey {vkey}", args.key.display())
        });
        return Ok(());
    }
    let key =
        crate::args::load_key(&args.key).context("create the witness key with `release-ledger witness --init`")?;
    let cosigner = witness::Cosigner::new(&args.name, key).map_err(|e| anyhow::anyhow!("witness name: {e}"))?;
    let logs_file = args.logs.as_ref().context("--logs is required")?;
    let bytes = std::fs::read(logs_file).with_context(|| format!("reading the log list {}", logs_file.display()))?;
    let logs = witness::parse_log_list(&bytes).with_context(|| format!("log list {}", logs_file.display()))?;
    let origins: Vec<String> = logs.iter().map(|log| log.vkey.name.clone()).collect();
    let state_dir = args.state_dir.clone();
    let witness = Arc::new(
        witness::Witness::open(
            cosigner,
            logs.into_iter().map(|log| log.vkey).collect(),
            &state_dir,
            Arc::new(ledger::SystemClock),
        )
        .with_context(|| format!("opening the state dir {}", state_dir.display()))?,
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {} (pass --listen ADDR to listen elsewhere)", args.listen))?;
    let address = listener.local_addr()?;
    // Before the announcement: a SIGTERM right after it is then graceful.
    let shutdown = api::server::shutdown_signal();
    let vkey = witness.cosigner().vkey().to_string();
    let value = serde_json::json!({
        "event": "listening", "url": format!("http://{address}"), "vkey": vkey, "origins": origins,
        "stateDir": state_dir,
    });
    print(json, value, || {
        format!(
            "witness {} on http://{address} (POST /add-checkpoint)\nvkey {vkey}\nwitnessing {} log(s): {}\nstate {}",
            args.name,
            origins.len(),
            origins.join(", "),
            state_dir.display()
        )
    });
    axum::serve(listener, witness_http::router(witness))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving the witness")
}

/// What `checkpoint --witness-policy` found.
#[derive(Debug)]
pub(crate) enum Witnessed {
    /// The server serves no cosigned checkpoint (no witnessing, or none obtained yet).
    None { quorum: String },
    /// The cosigned checkpoint, verified.
    Report {
        /// What the verification found.
        report: witness::QuorumReport,
        /// The cosigned note as served.
        note: String,
    },
}

impl Witnessed {
    pub(crate) fn json(&self) -> serde_json::Value {
        match self {
            Self::None { quorum } => serde_json::json!({ "quorum": quorum, "quorumMet": false, "cosignedNote": null }),
            Self::Report { report: r, note } => serde_json::json!({
                "quorum": r.quorum,
                "quorumMet": r.quorum_met,
                "size": r.checkpoint.size,
                "rootHash": hex::encode(r.checkpoint.root),
                "cosigned": r.cosigned.iter().map(|c| serde_json::json!({ "witness": c.witness, "timestamp": c.timestamp })).collect::<Vec<_>>(),
                "failed": r.failed.iter().map(|f| serde_json::json!({ "witness": f.witness, "reason": f.reason.to_string() })).collect::<Vec<_>>(),
                "missing": r.missing,
                "cosignedNote": note,
            }),
        }
    }

    pub(crate) fn human(&self) -> String {
        match self {
            Self::None { quorum } => {
                format!("witnesses: the server serves no cosigned checkpoint (quorum {quorum} NOT met)")
            }
            Self::Report { report: r, .. } => {
                format!("witnesses, cosigned checkpoint of size {}: {}", r.checkpoint.size, r.summary())
            }
        }
    }
}

/// Verifies the cosigned note the server served for `tenant` (origin `origin`) against the
/// policy at `policy_path`; with `require_quorum`, a missing quorum is a refusal (exit 1).
pub(crate) fn check_cosigned(
    tenant: &str,
    origin: &str,
    cosigned_note: &str,
    policy_path: &std::path::Path,
    ledger_key: &ed25519_dalek::VerifyingKey,
    require_quorum: bool,
) -> anyhow::Result<Witnessed> {
    let policy = witness::Policy::from_file(policy_path)?;
    let refuse = |why: String| anyhow::Error::new(crate::Refusal(why));
    if cosigned_note.is_empty() {
        let quorum = policy.describe_quorum();
        if require_quorum && !policy.quorum_met(&Default::default()) {
            return Err(refuse(format!(
                "the server serves no cosigned checkpoint of tenant {tenant} (is witnessing configured, has a round \
                 run yet?): witness quorum {quorum} not met"
            )));
        }
        return Ok(Witnessed::None { quorum });
    }
    // The policy's log lines, or (a policy for witnesses only) the ledger key under the
    // tenant's origin.
    let ledger_vkey = witness::Vkey::new(origin, witness::note::ED25519_NOTE_TYPE, *ledger_key)
        .map_err(|e| anyhow::anyhow!("origin {origin}: {e}"))?;
    let logs = policy.logs.is_empty().then(|| vec![ledger_vkey]);
    let report = witness::verify_cosigned(cosigned_note, &policy, logs.as_deref())
        .map_err(|e| refuse(format!("the cosigned checkpoint of tenant {tenant} is refused: {e}")))?;
    if report.checkpoint.origin != origin {
        return Err(refuse(format!(
            "the cosigned checkpoint of tenant {tenant} is of origin {}, not {origin}",
            report.checkpoint.origin
        )));
    }
    if require_quorum && !report.quorum_met {
        return Err(refuse(format!(
            "the cosigned checkpoint of tenant {tenant} (size {}) lacks the witness quorum: {}",
            report.checkpoint.size,
            report.summary()
        )));
    }
    Ok(Witnessed::Report { report, note: cosigned_note.to_owned() })
}
