//! `evidence`: a release's evidence pack (docs/evidence.md), a directory an auditor checks
//! offline with `ledger-audit verify-evidence`.

use std::path::PathBuf;

use clap::Args;
use ledger_client::evidence::evidence_pack;

use crate::args::{LedgerKeyArg, ReleaseArg, Verifying};
use crate::print;

#[derive(Debug, Args)]
pub(crate) struct EvidenceArgs {
    #[command(flatten)]
    pub(crate) release: ReleaseArg,
    #[command(flatten)]
    pub(crate) ledger_key: LedgerKeyArg,
    /// Where to write the pack: a new directory, or a new `*.tar` file (one uncompressed
    /// archive of the same files, the same bytes for the same pack). Refused if it exists;
    /// written beside it and renamed once whole.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

/// `release-ledger evidence`.
pub(crate) async fn evidence(args: EvidenceArgs, json: bool) -> anyhow::Result<()> {
    let ReleaseArg { server, tenant, release } = args.release;
    if std::fs::symlink_metadata(&args.out).is_ok() {
        anyhow::bail!("--out {}: already exists: choose a new path", args.out.display());
    }
    let Verifying { mut client, mut query, key, provenance } = args.ledger_key.connect(&server).await?;
    let pack = evidence_pack(&mut client, &mut query, &tenant, &release, &key).await?;
    ledger_tools::evidence::write(&pack.files, &args.out)?;
    let verified = &pack.verified;
    let entries: u64 = verified.entries.values().sum();
    let decisions: Vec<serde_json::Value> =
        verified.decisions.iter().map(|(seq, t)| serde_json::json!({"seq": seq, "type": t})).collect();
    let value = serde_json::json!({
        "tenant": tenant, "releaseId": release, "path": args.out, "files": verified.files,
        "entries": verified.entries, "decisionSeqs": verified.decisions.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        "decisions": decisions, "status": verified.status, "checkpointSize": verified.checkpoint_size,
        "ledgerKey": provenance,
    });
    print(json, value, || {
        format!(
            "evidence pack of {release} ({}, {} decisions, {entries} entries) written to {} and verified against \
             the checkpoint of size {}; check it offline with: ledger-audit verify-evidence {} --ledger-key KEY",
            verified.status,
            verified.decisions.len(),
            args.out.display(),
            verified.checkpoint_size,
            args.out.display()
        )
    });
    Ok(())
}
