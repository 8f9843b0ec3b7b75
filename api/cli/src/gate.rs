//! `gate`: blocks a pipeline until the ledger has decided a release, and trusts the decision
//! only once it verifies (the ledger key's signature, inclusion in a signed checkpoint).

use std::time::{Duration, Instant};

use clap::Args;
use ledger_client::gate::{verify_decision, VerifiedDecision};
use proto::v1 as pb;

use crate::args::{LedgerKeyArg, ReleaseArg, Verifying};
use crate::print;

/// Exit code of `gate` when the wait ended before a decision: Delayed, Planned, not declared
/// yet, or its decision not in the log yet.
pub(crate) const EXIT_UNDECIDED: u8 = 3;

#[derive(Debug, Args)]
pub(crate) struct GateArgs {
    #[command(flatten)]
    pub(crate) release: ReleaseArg,
    #[command(flatten)]
    pub(crate) ledger_key: LedgerKeyArg,
    /// How long to wait for a decision: seconds, or a number with s, m or h (default: answer
    /// at once).
    #[arg(long, default_value = "0", value_parser = crate::token::parse_duration)]
    pub(crate) wait: Duration,
    /// Seconds between two looks at the release while waiting.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) poll_seconds: u64,
}

/// What the release looks like now.
enum Look {
    /// A status the gate acts on, with the decision it rests on.
    Decided(pb::ReleaseSummary, u64),
    /// A deployment outcome after the decision (Failed, RolledBack): not deployable.
    Ended(pb::ReleaseSummary),
    /// Not decided yet (why).
    Pending(Option<pb::ReleaseSummary>, String),
}

async fn look(query: &mut ledger_client::QueryClient, tenant: &str, release: &str) -> anyhow::Result<Look> {
    let request = pb::GetReleaseSummaryRequest { tenant: tenant.to_owned(), release_id: release.to_owned() };
    let summary = match query.get_release_summary(request).await {
        Ok(summary) => summary.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Ok(Look::Pending(None, format!("release {release:?} is not in tenant {tenant:?} (yet)")))
        }
        Err(status) => return Err(ledger_client::query_error(status)),
    };
    Ok(match summary.status.as_str() {
        "Approved" | "Published" | "Rejected" => match summary.last_decision.as_ref().and_then(|d| d.seq) {
            Some(seq) => Look::Decided(summary, seq),
            None => Look::Pending(Some(summary), "its decision is being appended".into()),
        },
        "Failed" | "RolledBack" => Look::Ended(summary),
        other => {
            let why = match &summary.retry_after {
                Some(at) => format!("{other}, to be evaluated again at {at}"),
                None => other.to_owned(),
            };
            Look::Pending(Some(summary), why)
        }
    })
}

fn reasons(summary: &pb::ReleaseSummary) -> Vec<String> {
    summary
        .reasons
        .iter()
        .map(|r| match &r.module {
            Some(module) => format!("{} ({module}): {}", r.code, r.detail),
            None => format!("{}: {}", r.code, r.detail),
        })
        .collect()
}

/// `release-ledger gate`.
pub(crate) async fn gate(args: GateArgs, json: bool) -> anyhow::Result<()> {
    let ReleaseArg { server, tenant, release } = args.release;
    let Verifying { mut client, mut query, key, provenance } = args.ledger_key.connect(&server).await?;
    let deadline = Instant::now() + args.wait;
    let summary = loop {
        match look(&mut query, &tenant, &release).await? {
            Look::Decided(summary, seq) => break (summary, Some(seq)),
            Look::Ended(summary) => break (summary, None),
            Look::Pending(summary, why) => {
                let now = Instant::now();
                if now >= deadline {
                    let value = serde_json::json!({
                        "tenant": tenant, "releaseId": release,
                        "status": summary.as_ref().map_or("Unknown", |s| s.status.as_str()),
                        "decided": false, "why": why,
                        "retryAfter": summary.as_ref().and_then(|s| s.retry_after.clone()),
                        "reasons": summary.as_ref().map(reasons).unwrap_or_default(),
                    });
                    if json {
                        println!("{value}");
                    } else {
                        eprintln!("release-ledger: release {release:?} is not decided: {why}");
                        for reason in summary.as_ref().map(reasons).unwrap_or_default() {
                            eprintln!("  {reason}");
                        }
                    }
                    return Err(crate::Reported(EXIT_UNDECIDED).into());
                }
                tokio::time::sleep(Duration::from_secs(args.poll_seconds).min(deadline - now)).await;
            }
        }
    };
    let (summary, seq) = summary;
    let Some(seq) = seq else {
        let value = serde_json::json!({
            "tenant": tenant, "releaseId": release, "status": summary.status, "decided": true,
            "deployable": false, "reasons": reasons(&summary),
        });
        print(json, value, || format!("release {release:?} is {}: not deployable", summary.status));
        if !json {
            eprintln!("release-ledger: release {release:?} is {}: not deployable", summary.status);
        }
        return Err(crate::Reported(crate::EXIT_REFUSED).into());
    };
    let verified: VerifiedDecision = verify_decision(&mut client, &tenant, &release, seq, &key).await?;
    let approved = matches!(verified.decision_type.as_str(), "ReleaseApproved" | "ReleasePublished");
    let expected = if summary.status == "Rejected" { !approved } else { approved };
    if !expected {
        return Err(ledger_client::VerifyError::Decision {
            seq,
            reason: format!("the server says {} but the entry is a {}", summary.status, verified.decision_type),
        }
        .into());
    }
    let value = serde_json::json!({
        "tenant": tenant, "releaseId": release, "status": summary.status, "decided": true,
        "deployable": approved, "decisionSeq": seq, "decisionType": verified.decision_type,
        "verified": true, "ledgerKey": provenance, "checkpointSize": verified.checkpoint.checkpoint.size,
        "reasons": reasons(&summary),
    });
    print(json, value, || {
        let mut text = format!(
            "release {release:?}: {} (decision seq {seq}: {}, signed by the ledger key ({provenance}), included in \
             the checkpoint of size {})",
            summary.status, verified.decision_type, verified.checkpoint.checkpoint.size
        );
        for reason in reasons(&summary) {
            text.push_str(&format!("\n  {reason}"));
        }
        text
    });
    if approved {
        return Ok(());
    }
    if !json {
        let codes: Vec<&str> = summary.reasons.iter().map(|r| r.code.as_str()).collect();
        eprintln!("release-ledger: release {release:?} is Rejected: {}", codes.join(", "));
    }
    Err(crate::Reported(crate::EXIT_REFUSED).into())
}
