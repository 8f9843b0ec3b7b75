//! The query commands: the governance read models the Query service serves.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use ledger_client as client;
use proto::v1 as pb;

use crate::args::{ReleaseArg, ServerArg};
use crate::print;

/// Read models of releases and modules.
#[derive(Debug, Subcommand)]
pub(crate) enum QueryCommand {
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
    /// Explains a decision: gates (with a custom gate's code), reasons, retry, suggested fix,
    /// risk, evidence, and whether re-deriving it from the log reproduces it. For custom gates
    /// (policy code), each gate's raw result or error; the input document they received is in
    /// --json only (it holds every evidence body, too long for a terminal): the text names its
    /// size and the `policy input` command that prints it.
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
}

#[derive(Debug, Args)]
pub(crate) struct ReleasesArgs {
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

impl QueryCommand {
    /// Runs the command.
    pub(crate) async fn run(self, json: bool) -> anyhow::Result<()> {
        match self {
            Self::Summary(ReleaseArg { server, tenant, release }) => {
                let mut query = server.connect_query().await?;
                let summary = query
                    .get_release_summary(pb::GetReleaseSummaryRequest { tenant, release_id: release })
                    .await
                    .map_err(client::query_error)?
                    .into_inner();
                print(json, client::summary_json(&summary), || client::summary_text(&summary));
            }
            Self::Releases(args) => {
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
            Self::History { server, tenant, module, environment } => {
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
            Self::Explain { release: ReleaseArg { server, tenant, release }, seq } => {
                let mut query = server.connect_query().await?;
                let decision = query
                    .explain_decision(pb::ExplainDecisionRequest {
                        tenant: tenant.clone(),
                        release_id: release.clone(),
                        seq,
                    })
                    .await
                    .map_err(client::query_error)?
                    .into_inner();
                print(json, client::decision_json(&release, &decision), || {
                    let mut text = client::decision_text(&release, &decision);
                    if let Some(input) = &decision.custom_gate_input_json {
                        let seq = decision.seq.map(|s| format!(" --seq {s}")).unwrap_or_default();
                        text.push_str(&format!(
                            "\ncustom gate input: {} bytes of JSON, not shown; print it with: release-ledger policy input \
                             --tenant {tenant} --release {release}{seq}",
                            input.len()
                        ));
                    }
                    text
                });
            }
            Self::Timeline(ReleaseArg { server, tenant, release }) => {
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
            Self::Replay { release: ReleaseArg { server, tenant, release }, as_of } => {
                let as_of = parse_as_of(&as_of)?;
                let mut query = server.connect_query().await?;
                let replay = query
                    .replay_as_of(pb::ReplayAsOfRequest {
                        tenant,
                        release_id: release.clone(),
                        as_of: Some(as_of.clone()),
                    })
                    .await
                    .map_err(client::query_error)?
                    .into_inner();
                let (as_of_json, as_of_text) = match &as_of {
                    pb::replay_as_of_request::AsOf::Seq(seq) => {
                        (serde_json::json!({ "seq": seq }), format!("seq {seq}"))
                    }
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
        }
        Ok(())
    }
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
