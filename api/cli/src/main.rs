//! `release-ledger`: the server (`serve`) and its client commands.
//!
//! Human output by default, `--json` for machines; any failure exits non-zero with one line
//! saying why, and the exit code says what kind of failure it was ([`exit_code`]).

mod args;
mod attestation;
mod backup;
mod cluster;
mod demo;
mod evidence;
mod export;
mod gate;
mod governance;
mod help_markdown;
mod log;
mod notes;
mod oscal;
mod query;
mod serve;
mod tiles;
mod token;
mod witness;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use api::server::DEFAULT_DATA_DIR;
use api::telemetry::{self, LogFormat};
use clap::{Args, Parser, Subcommand};
use ledger_client::{Refused, VerifyError};

use crate::export::ExportArgs;
use crate::governance::GovernanceCommand;
use crate::log::LogCommand;
use crate::query::QueryCommand;
use crate::serve::ServeArgs;
use crate::tiles::TilesArgs;

/// Exit code: the command did what it was asked.
const EXIT_OK: u8 = 0;
/// Exit code: an answer that says no — a proof, checkpoint, entry or export that does not
/// verify, or a gRPC status the server answered with (a refusal, a conflict, not found).
pub(crate) const EXIT_REFUSED: u8 = 1;
/// Exit code: the command could not run — bad usage, a file that cannot be read, no server
/// reachable (no connection, `UNAVAILABLE`, no answer in time), a data dir that cannot be
/// opened.
const EXIT_CANNOT_RUN: u8 = 2;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  verification failed (a proof, checkpoint, entry or export that does not verify) or the
     server refused (it answered with a gRPC status: PERMISSION_DENIED, NOT_FOUND, ...)
  2  could not run: bad usage, a file that cannot be read, no server reachable (no connection,
     UNAVAILABLE, no answer in time), a data dir that cannot be opened
  3  gate only: the wait ended before the release was decided (Delayed, Planned, not declared)";

/// Release Ledger: the tamper-evident record of every software-release decision.
#[derive(Debug, Parser)]
#[command(name = "release-ledger", version, about, after_help = EXIT_CODES_HELP)]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "RELEASE_LEDGER_LOG_FORMAT")]
    log_format: Option<LogFormatArg>,
    #[command(flatten)]
    credentials: token::CredentialArgs,
    #[command(subcommand)]
    command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The commands, by job: the server's own, the log's, the read models', governance, exports
/// and the demo (clap flattens the groups into one list).
#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the ledger server (initialises the data dir on first start).
    Serve(Box<ServeArgs>),
    /// Makes a data dir that refuses to open (corruption, lost entries) open again: keeps a
    /// copy of db/, keeps every whole tenant log that verifies, and records what was lost.
    /// Stop the server first. Restoring a backup is the better way out when there is one.
    Salvage {
        /// Data dir.
        #[arg(long, env = "RELEASE_LEDGER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
    },
    /// Upgrades a format v1 data dir (BLAKE3 tree) to format v2 (RFC 6962 SHA-256 tree, the
    /// C2SP transparency-log standards): rebuilds the tree, re-signs every checkpoint under
    /// the new origin, keeps every entry as it is. Stop the server first; resumable (run it
    /// again after an interruption); a v2 data dir is left alone.
    Migrate {
        /// Data dir.
        #[arg(long, env = "RELEASE_LEDGER_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Checkpoint origin prefix of the migrated logs: a schema-less URL you control, such
        /// as ledger.example.com (default: release-ledger.invalid/ and 16 hex digits of the
        /// ledger key id). Fixed from then on: give `serve` the same value or none.
        #[arg(long, env = "RELEASE_LEDGER_ORIGIN_PREFIX")]
        origin_prefix: Option<String>,
    },
    /// Takes a consistent backup of a running server (log, projections, keys) into a new
    /// directory while appends go on, and verifies it before keeping it. Operators only: an
    /// admin-key token (--token, or --admin-key to sign in with the key).
    Backup(backup::BackupArgs),
    /// A replicated cluster of nodes (docs/replication.md): the keys its nodes share, and where
    /// a node stands in it.
    Cluster(cluster::ClusterArgs),
    /// Restores a backup into a new data dir, after checking every file against the backup's
    /// manifest and verifying the whole as `ledger-audit verify` does; never writes over
    /// anything.
    Restore(backup::RestoreArgs),
    #[command(flatten)]
    Log(LogCommand),
    #[command(flatten)]
    Query(QueryCommand),
    #[command(flatten)]
    Governance(GovernanceCommand),
    /// Blocks a pipeline until the ledger has decided a release: exit 0 once it is Approved
    /// (or Published), 1 if Rejected (reasons printed) or its deployment Failed or was rolled
    /// back, 3 if --wait ends first. The decision is trusted only once its entry verifies: the
    /// ledger key's signature over a decision about this release, included in a checkpoint the
    /// ledger key signed.
    Gate(gate::GateArgs),
    /// Renders a release's notes in Markdown (what ships, decisions, approvals, deployments)
    /// from verified entries only: each re-hashed, its signature checked and its inclusion
    /// proven in a checkpoint the ledger key signed.
    Notes(notes::NotesArgs),
    /// Writes a release's decisions as in-toto attestations (Statement v1, SLSA Verification
    /// Summary predicate, DSSE-signed by the ledger key), one envelope per line. Each is
    /// verified first: its signature, its decision's and evidence's inclusion in a checkpoint
    /// the ledger key signed, and the statement rebuilt from those entries, byte for byte.
    Attestation(attestation::AttestationArgs),
    /// Writes a tenant's release decisions over a period as an OSCAL 1.1.2 assessment-results
    /// document (JSON): one observation per decision with its evidence. Only verified entries
    /// go in: the log read up to a checkpoint the ledger key signed, each entry re-hashed and
    /// chain-checked, each decision signed by the ledger key and proven in that checkpoint.
    Oscal(oscal::OscalArgs),
    /// Writes a release's evidence pack to a new directory: every entry its decisions depend
    /// on (DSSE envelopes) with a C2SP tlog-proof each, the checkpoint and ledger key, each
    /// decision's in-toto attestation, and a Markdown and HTML report (gates, approvals,
    /// freezes, risk). Built from the log read up to a checkpoint the ledger key signed and
    /// verified as `ledger-audit verify-evidence` verifies it before it is written.
    Evidence(evidence::EvidenceArgs),
    /// Exports a table over Arrow Flight to an Arrow IPC or Parquet file that verifies on its
    /// own (`ledger-audit verify FILE`).
    Export(ExportArgs),
    /// Writes a tenant's log as C2SP tlog-tiles (checkpoint, hash tiles, entry bundles) to a
    /// directory a static host or object store can serve, from the server or an entries
    /// export; re-running after the log grew adds the new tiles, and a directory holding
    /// another history of the log is refused.
    Tiles(TilesArgs),
    /// Plays a release-governance story against an embedded (or given) server.
    Demo(DemoArgs),
    /// Mints a reader token: a short-lived JWT (EdDSA) signed by a key registered in a
    /// tenant's log, or by the data dir's admin key (an operator token). Prints it.
    Token(token::TokenArgs),
    /// Runs a C2SP tlog-witness: cosigns the checkpoints of the configured logs that are
    /// consistent with what it cosigned before (see docs/witnessing.md).
    Witness(witness::WitnessArgs),
    /// Prints the command reference as Markdown (docs/cli.md is this output).
    #[command(hide = true)]
    HelpMarkdown,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Play against this server instead of an embedded one (needs --admin-key).
    #[arg(long, requires = "admin_key")]
    pub(crate) server: Option<String>,
    /// The admin key of --server.
    #[arg(long, requires = "server")]
    pub(crate) admin_key: Option<PathBuf>,
    /// Data dir of the embedded server (default: a new temp dir); the demo's agent keys are
    /// written under DIR/demo-keys.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Keep the embedded server running after the story, until Ctrl-C.
    #[arg(long)]
    pub(crate) keep: bool,
}

/// jemalloc for the server's (and every subcommand's) Rust allocations: glibc's malloc was
/// about a tenth of the server's CPU under batched load, and jemalloc made the batch rows 5-23 %
/// faster with the single-event rows within their spread (BENCHMARKS.md, "Issue 20, eleventh
/// session"; mimalloc, tried before, slowed 1 x 1).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(json, &anyhow!(e).context("starting the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => fail(json, &error),
    }
}

/// A request the CLI itself refuses (exit 1, like a refusal by the server): it would store
/// something the user most likely did not mean (a tenant created by a typo).
#[derive(Debug)]
pub(crate) struct Refusal(pub(crate) String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// A failure the command has already reported in full (its answer printed): exit with the code,
/// print nothing more.
#[derive(Debug)]
pub(crate) struct Reported(pub(crate) u8);

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Reported {}

/// The exit code of a failure: [`EXIT_REFUSED`] for an answer that says no (a [`VerifyError`],
/// or a [`Refused`] other than "nobody answered"), else [`EXIT_CANNOT_RUN`].
fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(Reported(code)) = cause.downcast_ref::<Reported>() {
            return *code;
        }
        if cause.downcast_ref::<VerifyError>().is_some() || cause.downcast_ref::<Refusal>().is_some() {
            return EXIT_REFUSED;
        }
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return match refused.code() {
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => EXIT_CANNOT_RUN,
                _ => EXIT_REFUSED,
            };
        }
    }
    EXIT_CANNOT_RUN
}

fn fail(json: bool, error: &anyhow::Error) -> ExitCode {
    if error.downcast_ref::<Reported>().is_some() {
        return ExitCode::from(exit_code(error));
    }
    let reason = format!("{error:#}").replace('\n', " ");
    if json {
        println!("{}", serde_json::json!({ "error": reason }));
    } else {
        eprintln!("release-ledger: {reason}");
    }
    ExitCode::from(exit_code(error))
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
    let client_telemetry = || telemetry::init(cli.log_format.map_or(LogFormat::Text, Into::into), "warn");
    cli.credentials.install();
    match cli.command {
        Command::Token(args) => {
            let _telemetry = client_telemetry()?;
            token::token(args, json).await
        }
        Command::Serve(args) => serve::serve(*args, cli.log_format, json).await,
        Command::Salvage { data_dir } => {
            let _telemetry = client_telemetry()?;
            serve::salvage(&data_dir, json)
        }
        Command::Migrate { data_dir, origin_prefix } => {
            let _telemetry = client_telemetry()?;
            serve::migrate(&data_dir, origin_prefix, json)
        }
        Command::Notes(args) => {
            let _telemetry = client_telemetry()?;
            notes::notes(args, json).await
        }
        Command::Attestation(args) => {
            let _telemetry = client_telemetry()?;
            attestation::attestation(args, json).await
        }
        Command::Oscal(args) => {
            let _telemetry = client_telemetry()?;
            oscal::oscal(args, json).await
        }
        Command::Evidence(args) => {
            let _telemetry = client_telemetry()?;
            evidence::evidence(args, json).await
        }
        Command::Gate(args) => {
            let _telemetry = client_telemetry()?;
            gate::gate(args, json).await
        }
        Command::Backup(args) => {
            let _telemetry = client_telemetry()?;
            backup::backup(args, json).await
        }
        Command::Cluster(args) => {
            let _telemetry = client_telemetry()?;
            cluster::run(args, json).await
        }
        Command::Restore(args) => {
            let _telemetry = client_telemetry()?;
            backup::restore(args, json).await
        }
        Command::Log(command) => {
            let _telemetry = client_telemetry()?;
            command.run(json).await
        }
        Command::Query(command) => {
            let _telemetry = client_telemetry()?;
            command.run(json).await
        }
        Command::Governance(command) => {
            let _telemetry = client_telemetry()?;
            command.run(json).await
        }
        Command::Export(args) => {
            let _telemetry = client_telemetry()?;
            export::export(args, json).await
        }
        Command::Tiles(args) => {
            let _telemetry = client_telemetry()?;
            tiles::tiles(args, json).await
        }
        Command::Witness(args) => witness::run(args, cli.log_format, json).await,
        Command::HelpMarkdown => {
            use clap::CommandFactory as _;
            print!("{}", help_markdown::render(&Cli::command()));
            Ok(())
        }
        Command::Demo(args) => {
            let _telemetry = client_telemetry()?;
            let options = demo::DemoOptions {
                server: args.server,
                admin_key: args.admin_key,
                data_dir: args.data_dir,
                keep: args.keep,
            };
            demo::run(options, json).await
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_failure_has_the_exit_code_of_its_kind() {
        let verify = anyhow::Error::new(VerifyError::EntryMismatch { seq: 3 });
        assert_eq!(exit_code(&verify), EXIT_REFUSED);
        assert_eq!(exit_code(&verify.context("proving seq 3")), EXIT_REFUSED);
        let denied = anyhow::Error::new(Refused::new(tonic::Status::permission_denied("no")));
        assert_eq!(exit_code(&denied.context("ApprovalGranted refused")), EXIT_REFUSED);
        let unavailable = anyhow::Error::new(Refused::new(tonic::Status::unavailable("shutting down")));
        assert_eq!(exit_code(&unavailable), EXIT_CANNOT_RUN);
        let late = anyhow::Error::new(Refused::new(tonic::Status::deadline_exceeded("no answer within 1 s")));
        assert_eq!(exit_code(&late), EXIT_CANNOT_RUN);
        assert_eq!(exit_code(&anyhow!("reading policy file p.json")), EXIT_CANNOT_RUN);
    }

    #[test]
    fn the_command_line_parses_and_documents_the_exit_codes() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"), "{help}");
        // The groups are flattened: every command is still a top-level one.
        for command in ["serve", "tail", "summary", "approve", "export", "demo"] {
            assert!(Cli::command().find_subcommand(command).is_some(), "{command}");
        }
    }

    #[test]
    fn docs_cli_md_is_the_generated_command_reference() {
        use clap::CommandFactory as _;
        let generated = help_markdown::render(&Cli::command());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == generated,
            "docs/cli.md is stale: regenerate it with `release-ledger help-markdown > docs/cli.md`"
        );
        // Complete: every visible command and flag, with its environment variable and default.
        for needle in [
            "## `release-ledger keys`",
            "### `release-ledger keys register`",
            "`--server <SERVER>` | `RELEASE_LEDGER_SERVER` | `http://127.0.0.1:50051`",
            "`--admin-key <ADMIN_KEY>` | - | `./release-ledger-data/keys/admin.pem`",
            "`--out <OUT>`",
            "`--wait`",
        ] {
            assert!(generated.contains(needle), "{needle}");
        }
        assert!(!generated.contains("help-markdown`"), "the hidden command is not documented");
    }

    #[test]
    fn a_serve_flag_beats_its_environment_variable_beats_the_config_file() {
        // nextest runs each test in its own process: setting a variable is safe here.
        std::env::set_var("RELEASE_LEDGER_LISTEN", "127.0.0.1:2");
        std::env::set_var("RELEASE_LEDGER_MAX_CONNECTIONS", "22");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("serve.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:3\"\nmax_connections = 33\nmin_free_bytes = 3\nanswer_spin_us = 250\n",
        )
        .unwrap();
        let parse = |extra: &[&str]| {
            let config = file.to_str().unwrap();
            let argv = [&["release-ledger", "serve", "--config", config][..], extra].concat();
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Serve(args) => args.resolve(None).unwrap().options,
                other => panic!("parsed as {other:?}"),
            }
        };
        let flagged = parse(&["--listen", "127.0.0.1:1"]);
        assert_eq!(flagged.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(flagged.connections.max_connections, 22);
        assert_eq!(flagged.min_free_bytes, 3);
        assert_eq!(flagged.answer_spin, std::time::Duration::from_micros(250));
        assert_eq!(parse(&["--answer-spin-us", "0"]).answer_spin, std::time::Duration::ZERO);
        std::env::remove_var("RELEASE_LEDGER_LISTEN");
        assert_eq!(parse(&[]).listen, "127.0.0.1:3".parse().unwrap());
        assert_eq!(parse(&[]).data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }
}
