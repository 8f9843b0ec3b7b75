//! `attestation`: a release's decisions as in-toto attestations (SLSA Verification Summaries,
//! DSSE-signed by the ledger key), verified against the log before they are written.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use ledger_client::attestation::{verified_attestations, Which};

use crate::args::{LedgerKeyArg, ReleaseArg, Verifying};
use crate::print;

#[derive(Debug, Args)]
pub(crate) struct AttestationArgs {
    #[command(flatten)]
    pub(crate) release: ReleaseArg,
    #[command(flatten)]
    pub(crate) ledger_key: LedgerKeyArg,
    /// The decision entry at this seq (default: the release's latest decision).
    #[arg(long, conflicts_with = "all")]
    pub(crate) seq: Option<u64>,
    /// Every decision of the release, oldest first.
    #[arg(long)]
    pub(crate) all: bool,
    /// Write the envelopes to this file, one per line (the in-toto bundle form, e.g.
    /// release.intoto.jsonl; as FILE.partial, renamed once whole) instead of stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// `release-ledger attestation`.
pub(crate) async fn attestation(args: AttestationArgs, json: bool) -> anyhow::Result<()> {
    let ReleaseArg { server, tenant, release } = args.release;
    let Verifying { mut client, mut query, key, provenance } = args.ledger_key.connect(&server).await?;
    let which = match (args.seq, args.all) {
        (Some(seq), _) => Which::Seq(seq),
        (None, true) => Which::All,
        (None, false) => Which::Latest,
    };
    let verified = verified_attestations(&mut client, &mut query, &tenant, &release, which, &key).await?;
    let mut bundle = String::new();
    for attestation in &verified {
        bundle.push_str(&attestation.envelope);
        bundle.push('\n');
    }
    let Some(out) = &args.out else {
        // The bundle is the output, --json or not: one DSSE envelope per line.
        std::io::stdout().write_all(bundle.as_bytes())?;
        return Ok(());
    };
    let partial = out.with_extension("partial");
    std::fs::write(&partial, &bundle)
        .and_then(|()| std::fs::rename(&partial, out))
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    let decisions: Vec<serde_json::Value> = verified
        .iter()
        .map(|a| {
            serde_json::json!({
                "seq": a.seq, "decisionType": a.decision_type,
                "verificationResult": a.statement["predicate"]["verificationResult"],
                "checkpointSize": a.checkpoint.checkpoint.size,
            })
        })
        .collect();
    let value = serde_json::json!({
        "tenant": tenant, "releaseId": release, "path": out, "ledgerKey": provenance, "attestations": decisions,
    });
    print(json, value, || {
        let lines: Vec<String> = verified
            .iter()
            .map(|a| {
                format!(
                    "  seq {}: {} ({}), verified against the checkpoint of size {}",
                    a.seq,
                    a.decision_type,
                    a.statement["predicate"]["verificationResult"].as_str().unwrap_or_default(),
                    a.checkpoint.checkpoint.size
                )
            })
            .collect();
        format!("{} attestation(s) of {release} written to {}\n{}", verified.len(), out.display(), lines.join("\n"))
    });
    Ok(())
}
