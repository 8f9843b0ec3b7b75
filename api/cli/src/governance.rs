//! The governance commands: build, check, sign and append catalogue events.

use std::path::PathBuf;

use anyhow::{anyhow, Context as _};
use clap::{Args, Subcommand};
use ledger::{ExpectedVersion, KeyPair};
use ledger_client::{self as client, EventSpec};
use proto::v1 as pb;

use crate::args::{load_key, ReleaseArg, ReleaseSigner, ServerArg, SignerArgs};
use crate::log::{append_receipt, print_receipts};
use crate::Refusal;

/// Governance events: policy, freezes, intents, approvals, evaluations.
#[derive(Debug, Subcommand)]
pub(crate) enum GovernanceCommand {
    /// The tenant's release policy: set it (PolicyUpdated), test its custom gates locally, and
    /// fetch the input a decision's custom gates received.
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
    /// Attaches evidence of any kind about a module version of a release (EvidenceAttached),
    /// for the policy's custom gates to read: a JSON body (--body), or an in-toto attestation
    /// in a DSSE envelope (--attestation), signed by a tenant key holding the Attestor role,
    /// which the ledger verifies when it appends the event.
    Attach(AttachArgs),
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
        /// A Rego module the environments' `gates` name (repeatable): added to the document's
        /// rego.modules under its file name (e.g. slo_error_budget.rego). The policy is
        /// compiled before anything is sent; a module that does not compile is refused with the
        /// compiler's message (file:line).
        #[arg(long = "rego")]
        rego: Vec<PathBuf>,
    },
    /// Runs an environment's custom gates on a gate input document, locally (no server): the
    /// policy is validated and compiled as `policy set` does, then each gate's verdict, code,
    /// target and observed value (or its error) is printed, as a decision would record them.
    /// Exits 0 once the gates ran, whatever their verdicts.
    Test {
        /// The ReleasePolicy document (JSON).
        #[arg(long)]
        file: PathBuf,
        /// A Rego module (repeatable), as for `policy set`.
        #[arg(long = "rego")]
        rego: Vec<PathBuf>,
        /// The gate input document (JSON), e.g. saved from `policy input`.
        #[arg(long)]
        input: PathBuf,
        /// The environment whose gates run (default: the input's release.environment).
        #[arg(long)]
        environment: Option<String>,
    },
    /// Prints the input document a release's decision gave its custom gates (JSON, re-derived
    /// from the log by the server), to save and run `policy test` on. Needs read access.
    Input {
        #[command(flatten)]
        release: ReleaseArg,
        /// The decision entry's seq (default: the release's latest decision).
        #[arg(long)]
        seq: Option<u64>,
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
    /// Length of each recurring window: seconds, or a number with a unit s, m, h or d
    /// (86400, 24h, 1d).
    #[arg(long, requires = "recurrence", value_parser = duration_seconds)]
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
    /// A module shipped, name@version (repeatable); with the artifact's digest,
    /// name@version=sha256:HEX (sha384 and sha512 too), which makes it a subject of the
    /// release's attestations.
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
#[command(group(clap::ArgGroup::new("content").required(true).args(["body", "attestation"])))]
pub(crate) struct AttachArgs {
    #[command(flatten)]
    signer: ReleaseSigner,
    /// The module the evidence is about.
    #[arg(long)]
    module: String,
    /// Its version.
    #[arg(long = "version", id = "module_version", value_name = "VERSION")]
    module_version: String,
    /// The evidence kind: lowercase letters, digits, - and . (slo-report, dr-drill,
    /// slsa-provenance, sbom, ...); a policy's evidenceSchemas may constrain each kind's body.
    #[arg(long)]
    kind: String,
    /// A digest of the artifact the evidence is about, ALGORITHM:HEX, e.g. sha256:9f86…
    /// (repeatable, one per algorithm).
    #[arg(long = "subject-digest", required = true)]
    subject_digest: Vec<String>,
    /// A JSON object file, what the policy's gates read as the evidence's body (at most 32 KiB).
    #[arg(long)]
    body: Option<PathBuf>,
    /// A DSSE envelope file (JSON) of an in-toto Statement naming the subject digest, signed
    /// by one tenant key holding the Attestor role (its keyid the key's ledger key id); the
    /// gates read the statement as the body.
    #[arg(long)]
    attestation: Option<PathBuf>,
    /// The body document's digest, ALGORITHM:HEX (repeatable; default: sha256 of the --body
    /// file's bytes). An attestation's is always its statement's sha256.
    #[arg(long = "content-digest", requires = "body")]
    content_digest: Vec<String>,
    /// The evidence document's media type (default: application/json for --body,
    /// application/vnd.in-toto+json for --attestation).
    #[arg(long)]
    media_type: Option<String>,
    /// Where the evidence document lives (recorded, never fetched).
    #[arg(long)]
    uri: Option<String>,
}

/// `--duration`: seconds, or a whole number with a unit `s`, `m`, `h` or `d`.
fn duration_seconds(text: &str) -> Result<u64, String> {
    let usage =
        || format!("{text:?} is not a duration: give seconds or a number with a unit s, m, h or d (86400, 24h, 1d)");
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let factor = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(usage()),
    };
    let number: u64 = number.parse().map_err(|_| usage())?;
    number.checked_mul(factor).ok_or_else(usage)
}

impl GovernanceCommand {
    /// Runs the command.
    pub(crate) async fn run(self, json: bool) -> anyhow::Result<()> {
        let summary_hint = |s: &ReleaseSigner| Next::Release { release: s.release.clone(), wait: s.wait };
        match self {
            Self::Policy { command: PolicyCommand::Set { signer, file, rego } } => {
                let policy = client::read_policy_with_rego(&file, &rego)?;
                let spec = client::policy_updated(&signer.tenant, "", &policy)?;
                let hint = format!("policy version {} is in force from this entry on", policy.version);
                append_governance(&signer, spec, Next::Say(hint), json).await
            }
            Self::Policy { command: PolicyCommand::Test { file, rego, input, environment } } => {
                policy_test(&file, &rego, &input, environment.as_deref(), json)
            }
            Self::Policy { command: PolicyCommand::Input { release, seq } } => policy_input(release, seq, json).await,
            Self::Attach(args) => {
                let content = match (&args.body, &args.attestation) {
                    (Some(path), _) => client::EvidenceContent::Body(read_file(path, "body")?),
                    (None, Some(path)) => client::EvidenceContent::Attestation(read_file(path, "attestation")?),
                    (None, None) => anyhow::bail!("give --body or --attestation"),
                };
                let content_digest = if args.content_digest.is_empty() {
                    None
                } else {
                    Some(client::parse_digest_set(&args.content_digest, "--content-digest")?)
                };
                let data = client::evidence_attached_data(
                    &args.module,
                    &args.module_version,
                    &args.kind,
                    client::parse_digest_set(&args.subject_digest, "--subject-digest")?,
                    &content,
                    content_digest,
                    args.media_type.as_deref(),
                    args.uri.as_deref(),
                )?;
                let s = &args.signer;
                let spec = client::release_event(&s.signer.tenant, &s.release, "EvidenceAttached", "", data);
                append_governance(&s.signer, spec, summary_hint(s), json).await
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
                append_governance(&args.signer, spec, Next::Nothing, json).await
            }
            Self::Freeze { command: FreezeCommand::Lift { signer, id, reason } } => {
                let spec = client::freeze_lifted(&signer.tenant, "", &id, reason.as_deref());
                append_governance(&signer, spec, Next::Nothing, json).await
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

fn read_file(path: &std::path::Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {what} file {}", path.display()))
}

/// `policy test`: the environment's custom gates on the input document, run here.
fn policy_test(
    file: &std::path::Path,
    rego: &[PathBuf],
    input: &std::path::Path,
    environment: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    use projections::custom_gates;
    let policy =
        client::load_policy(file, rego).with_context(|| format!("{} is not a valid release policy", file.display()))?;
    let text = std::fs::read_to_string(input).with_context(|| format!("reading input file {}", input.display()))?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a gate input document: not JSON", input.display()))?;
    let environment = match environment {
        Some(env) => env.to_owned(),
        None => document
            .pointer("/release/environment")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("{} names no release.environment: give --environment", input.display()))?,
    };
    let record = projections::state::PolicyRecord { seq: 0, policy };
    let env = record.policy.for_env(&environment).ok_or_else(|| {
        anyhow!("the policy has no rules for environment {environment:?} (no environments.{environment}, no default)")
    })?;
    if env.gates.is_empty() {
        anyhow::bail!("the policy's rules for environment {environment:?} name no custom gates (gates is empty)");
    }
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    for (gate, result) in custom_gates::run(&record, env, &document) {
        let outcome = custom_gates::outcome(&gate, result.clone(), &[]);
        let g = &outcome.gate;
        let verdict = api::query::verdict_name(g.verdict);
        let (raw, error) = match &result {
            Ok(value) => (Some(value.clone()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        if let Some(e) = &error {
            errors.push(format!("{gate}: error: {e}"));
        }
        rows.push(vec![
            g.gate.clone(),
            verdict.to_owned(),
            g.code.clone().unwrap_or_else(|| "-".into()),
            g.target.clone(),
            g.observed.clone(),
        ]);
        lines.push(serde_json::json!({
            "gate": g.gate, "verdict": verdict, "code": g.code, "target": g.target, "observed": g.observed,
            "reason": outcome.reason, "result": raw, "error": error,
        }));
    }
    crate::print(json, serde_json::json!({ "environment": environment, "gates": lines }), || {
        let mut out = vec![format!("custom gates of environment {environment} on {}", input.display())];
        out.push(client::table(&["gate", "verdict", "code", "target", "observed"], &rows));
        out.extend(errors);
        out.join("\n")
    });
    Ok(())
}

/// `policy input`: the custom gate input of a release's decision, from ExplainDecision.
async fn policy_input(release: ReleaseArg, seq: Option<u64>, json: bool) -> anyhow::Result<()> {
    let ReleaseArg { server, tenant, release } = release;
    let mut query = server.connect_query().await?;
    let decision = query
        .explain_decision(pb::ExplainDecisionRequest { tenant, release_id: release.clone(), seq })
        .await
        .map_err(client::query_error)?
        .into_inner();
    let Some(input) = &decision.custom_gate_input_json else {
        let which = decision.seq.map_or_else(|| "the latest decision".to_owned(), |s| format!("decision seq {s}"));
        let why = if decision.seq.is_none() {
            "it is not in the log yet: try again in a moment".to_owned()
        } else if decision.custom_gates.is_empty() {
            "the policy in force gave its environment no custom gates".to_owned()
        } else {
            format!(
                "the document is larger than the server sends in an answer ({} MiB)",
                api::query::MAX_EXPLAINED_INPUT_BYTES >> 20
            )
        };
        anyhow::bail!(Refusal(format!("{which} of {release} has no custom gate input: {why}")));
    };
    let document: serde_json::Value =
        serde_json::from_str(input).context("the server sent a gate input that is not JSON")?;
    if json {
        println!("{document}");
    } else {
        println!("{}", serde_json::to_string_pretty(&document)?);
    }
    Ok(())
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

/// What to print after a governance event's receipt.
#[derive(Debug)]
enum Next {
    Nothing,
    /// A line for people.
    Say(String),
    /// The release the event is about: with `wait`, where it stands once the ledger has
    /// evaluated the event; else the command that shows it.
    Release {
        release: String,
        wait: bool,
    },
}

/// Signs and appends a governance event built for the signer's agent id; prints the receipt
/// and, for people, what to look at next.
async fn append_governance(args: &SignerArgs, mut spec: EventSpec, next: Next, json: bool) -> anyhow::Result<()> {
    // Checked before connecting: a bad event fails here whether or not a server is up.
    spec.agent_id = args.agent.clone().unwrap_or_else(|| "unknown-yet".into());
    client::checked_body(&spec)?;
    let (key, mut client, agent) = connect_signer(args).await?;
    spec.agent_id = agent;
    let event = client::signed_event(client::checked_body(&spec)?, &key, ExpectedVersion::Any);
    let receipt = append_receipt(&mut client, event, &args.server.retry())
        .await
        .with_context(|| format!("{} refused", spec.event_type))?;
    print_receipts(json, std::slice::from_ref(&receipt));
    match next {
        Next::Nothing => {}
        Next::Say(line) if !json => println!("{line}"),
        Next::Say(_) => {}
        Next::Release { release, wait: true } => {
            print_standing(&args.server, &args.tenant, &release, receipt.seq, json).await?;
        }
        Next::Release { release, wait: false } if !json => println!(
            "see: release-ledger summary --server {} --tenant {} --release {release}",
            args.server.server, args.tenant
        ),
        Next::Release { .. } => {}
    }
    Ok(())
}

/// Waits until the ledger has evaluated the entry at `seq`, then prints where `release` stands
/// (one line, or its summary as JSON).
pub(crate) async fn print_standing(
    server: &ServerArg,
    tenant: &str,
    release: &str,
    seq: u64,
    json: bool,
) -> anyhow::Result<()> {
    let summary = wait_for_evaluation(server, tenant, release, seq).await?;
    if json {
        println!("{}", client::summary_json(&summary));
    } else {
        println!("{}", standing(&summary));
    }
    Ok(())
}

/// Where a release stands, on one line: "release-001731 is Delayed: ChangeFreezeActive (retry
/// after …)".
fn standing(s: &pb::ReleaseSummary) -> String {
    let codes = client::distinct_codes(&s.reasons);
    let blocking: Vec<&str> =
        codes.into_iter().filter(|c| projections::decision::ReasonCode::named((*c).to_owned()).is_blocking()).collect();
    let mut line = format!("{} is {}", s.release_id, s.status);
    if !blocking.is_empty() {
        line.push_str(&format!(": {}", blocking.join(", ")));
    }
    if let Some(t) = &s.retry_after {
        line.push_str(&format!(" (retry after {})", client::short_time(t)));
    }
    if let Some(score) = s.risk_score {
        line.push_str(&format!(", risk {score}"));
    }
    line
}

/// Waits until the tenant's projections have folded `seq` and the release's latest decision is
/// in the log, and returns its summary; gives up after the server arguments' timeout.
async fn wait_for_evaluation(
    server: &ServerArg,
    tenant: &str,
    release: &str,
    seq: u64,
) -> anyhow::Result<pb::ReleaseSummary> {
    let mut query = server.connect_query().await?;
    let timeout = std::time::Duration::from_secs(server.timeout_seconds);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let status =
            query.get_governance_status(pb::GetGovernanceStatusRequest {}).await.map_err(client::query_error)?;
        let folded = status.into_inner().tenants.iter().any(|t| t.tenant == tenant && t.position > seq);
        if folded {
            let summary = query
                .get_release_summary(pb::GetReleaseSummaryRequest {
                    tenant: tenant.to_owned(),
                    release_id: release.to_owned(),
                })
                .await
                .map_err(client::query_error)?
                .into_inner();
            if summary.last_decision.as_ref().is_none_or(|d| d.seq.is_some()) {
                return Ok(summary);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "seq {seq} is stored, but the ledger had not evaluated {release} within {} s \
                 (--timeout-seconds); see: release-ledger summary --tenant {tenant} --release {release}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::duration_seconds;

    #[test]
    fn a_freeze_duration_takes_seconds_or_a_unit_and_names_the_units_when_wrong() {
        assert_eq!(duration_seconds("86400"), Ok(86_400));
        assert_eq!(duration_seconds("90s"), Ok(90));
        assert_eq!(duration_seconds("30m"), Ok(1800));
        assert_eq!(duration_seconds("24h"), Ok(86_400));
        assert_eq!(duration_seconds("1d"), Ok(86_400));
        let says = "is not a duration: give seconds or a number with a unit s, m, h or d (86400, 24h, 1d)";
        for bad in ["1w", "d", "1.5h", "-1d", "", "1 d", "99999999999999999999d"] {
            assert_eq!(duration_seconds(bad), Err(format!("{bad:?} {says}")), "{bad}");
        }
    }
}
