//! `oscal`: a tenant's release decisions over a period as an OSCAL 1.1.2 assessment-results
//! document (docs/oscal.md), built from verified entries only.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use ledger_client::oscal::verified_assessment_results;
use projections::oscal::Period;

use crate::args::{LedgerKeyArg, ServerArg, Verifying};
use crate::print;

#[derive(Debug, Args)]
pub(crate) struct OscalArgs {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    #[command(flatten)]
    pub(crate) ledger_key: LedgerKeyArg,
    /// Decisions evaluated at or after this time (RFC 3339; default: from the first). It is the
    /// result's start.
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Decisions evaluated before this time (RFC 3339; default: to the last). It is the
    /// result's end.
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Write the document to this file (as FILE.partial, renamed once whole) instead of stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// `release-ledger oscal`.
pub(crate) async fn oscal(args: OscalArgs, json: bool) -> anyhow::Result<()> {
    // The period is checked before anything is asked of the server.
    let period = Period::new(args.since.as_deref(), args.until.as_deref())?;
    let tenant = args.tenant;
    let Verifying { mut client, key, provenance, .. } = args.ledger_key.connect(&args.server).await?;
    let verified = verified_assessment_results(&mut client, &tenant, &period, &key).await?;
    if verified.decisions.is_empty() {
        eprintln!("release-ledger: no decision of {tenant} was evaluated in the period: the result is empty");
    }
    let Some(out) = &args.out else {
        // The document is the output, --json or not.
        std::io::stdout().write_all(&verified.document)?;
        return Ok(());
    };
    let partial = out.with_extension("partial");
    std::fs::write(&partial, &verified.document)
        .and_then(|()| std::fs::rename(&partial, out))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    let size = verified.checkpoint.checkpoint.size;
    let value = serde_json::json!({
        "tenant": tenant, "path": out, "observations": verified.decisions.len(), "decisionSeqs": verified.decisions,
        "checkpointSize": size, "ledgerKey": provenance,
    });
    print(json, value, || {
        format!(
            "{} observation(s) of {tenant} written to {}, each decision verified against the checkpoint of size {size}",
            verified.decisions.len(),
            out.display()
        )
    });
    Ok(())
}
