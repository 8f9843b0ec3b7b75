//! `notes`: release notes rendered from verified entries only.

use std::path::PathBuf;

use clap::Args;
use ledger_client::notes::{render_markdown, verified_release};

use crate::args::{LedgerKeyArg, ReleaseArg, Verifying};
use crate::print;

#[derive(Debug, Args)]
pub(crate) struct NotesArgs {
    #[command(flatten)]
    pub(crate) release: ReleaseArg,
    #[command(flatten)]
    pub(crate) ledger_key: LedgerKeyArg,
    /// Write the Markdown to this file (as FILE.partial, renamed once whole) instead of stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// `release-ledger notes`.
pub(crate) async fn notes(args: NotesArgs, json: bool) -> anyhow::Result<()> {
    let ReleaseArg { server, tenant, release } = args.release;
    let Verifying { mut client, mut query, key, provenance } = args.ledger_key.connect(&server).await?;
    let verified = verified_release(&mut client, &mut query, &tenant, &release, &key).await?;
    let key_id = ledger::KeyId::of(&key).to_hex();
    let markdown = render_markdown(&tenant, &release, &verified, &key_id);
    if let Some(out) = &args.out {
        let partial = out.with_extension("partial");
        std::fs::write(&partial, &markdown)
            .and_then(|()| std::fs::rename(&partial, out))
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
    }
    let value = serde_json::json!({
        "tenant": tenant, "releaseId": release, "entries": verified.entries.len(), "redacted": verified.redacted,
        "checkpointSize": verified.checkpoint.checkpoint.size, "ledgerKey": provenance,
        "path": args.out, "markdown": if args.out.is_some() { None } else { Some(&markdown) },
    });
    print(json, value, || match &args.out {
        Some(out) => format!(
            "release notes of {release} written to {} ({} verified entries)",
            out.display(),
            verified.entries.len()
        ),
        None => markdown.trim_end().to_owned(),
    });
    Ok(())
}
