//! The governance commands: build, check, sign and append catalogue events.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand};
use ledger::{ExpectedVersion, KeyPair};
use ledger_client::{self as client, EventSpec};

use crate::args::{load_key, ReleaseSigner, SignerArgs};
use crate::log::{append_receipt, print_receipts};

/// Governance events: policy, freezes, intents, approvals, evaluations.
#[derive(Debug, Subcommand)]
pub(crate) enum GovernanceCommand {
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
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
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
pub(crate) enum FreezeCommand {
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
pub(crate) struct FreezeDeclareArgs {
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
pub(crate) struct IntentArgs {
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

impl GovernanceCommand {
    /// Runs the command.
    pub(crate) async fn run(self, json: bool) -> anyhow::Result<()> {
        let summary_hint = |s: &ReleaseSigner| {
            Some(format!(
                "see: release-ledger summary --server {} --tenant {} --release {}",
                s.signer.server.server, s.signer.tenant, s.release
            ))
        };
        match self {
            Self::Policy { command: PolicyCommand::Set { signer, file } } => {
                let policy = client::read_policy(&file)?;
                let spec = client::policy_updated(&signer.tenant, "", &policy)?;
                let hint = format!("policy version {} is in force from this entry on", policy.version);
                append_governance(&signer, spec, Some(hint), json).await
            }
            Self::Freeze { command: FreezeCommand::Declare(args) } => {
                let recurrence = match (&args.rrule, &args.cron) {
                    (None, None) => None,
                    (rrule, cron) => Some(projections::freeze::Recurrence {
                        rrule: rrule.clone(),
                        cron: cron.clone(),
                        duration_seconds: args
                            .duration
                            .ok_or_else(|| anyhow!("a recurring freeze needs --duration"))?,
                        time_zone: args
                            .time_zone
                            .clone()
                            .ok_or_else(|| anyhow!("a recurring freeze needs --time-zone"))?,
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
            Self::Freeze { command: FreezeCommand::Lift { signer, id, reason } } => {
                let spec = client::freeze_lifted(&signer.tenant, "", &id, reason.as_deref());
                append_governance(&signer, spec, None, json).await
            }
            Self::Intent(args) => {
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
            Self::Approve { signer: s, role, comment } => {
                let data = serde_json::json!({ "role": role, "comment": comment, "method": "CLI" });
                let mut spec = client::release_event(&s.signer.tenant, &s.release, "ApprovalGranted", "", data);
                spec.role = Some(role);
                append_governance(&s.signer, spec, summary_hint(&s), json).await
            }
            Self::Reject { signer: s, role, reason } => {
                let data = serde_json::json!({ "role": role, "reason": reason });
                let mut spec = client::release_event(&s.signer.tenant, &s.release, "ApprovalRejected", "", data);
                spec.role = Some(role);
                append_governance(&s.signer, spec, summary_hint(&s), json).await
            }
            Self::Evaluate { signer: s, reason } => {
                let data = match reason {
                    Some(reason) => serde_json::json!({ "reason": reason }),
                    None => serde_json::json!({}),
                };
                let spec = client::release_event(&s.signer.tenant, &s.release, "ReleaseEvaluationRequested", "", data);
                append_governance(&s.signer, spec, summary_hint(&s), json).await
            }
        }
    }
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
        .with_context(|| format!("{} refused", spec.event_type))?;
    print_receipts(json, &[receipt]);
    if let (Some(next), false) = (next, json) {
        println!("{next}");
    }
    Ok(())
}
