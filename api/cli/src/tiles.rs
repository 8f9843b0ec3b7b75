//! `tiles`: a tenant's C2SP tlog-tiles written to a directory a static host can serve
//! (`ledger_tools::tiles`), from an entries export or straight from the server.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use ledger_client::export::{export_to_file, flight_client, NoProgress};
use ledger_client::FlightTicket;
use ledger_tools::tiles::{write_tiles, TilesError};
use ledger_tools::{Format, Table};

use crate::args::ServerArg;
use crate::{print, Refusal};

#[derive(Debug, Args)]
pub(crate) struct TilesArgs {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// The tenant whose log to publish, exported from the server over Arrow Flight (give this
    /// or --export).
    #[arg(long, conflicts_with = "export", required_unless_present = "export")]
    pub(crate) tenant: Option<String>,
    /// An entries export from seq 0 (`release-ledger export --table entries`) to publish
    /// instead, offline.
    #[arg(long)]
    pub(crate) export: Option<PathBuf>,
    /// The directory: the tiles go to OUT/TENANT/ (checkpoint, tile/L/N[.p/W],
    /// tile/entries/N[.p/W]), the URL layout of `serve --tiles-listen`. Re-running after the log
    /// grew adds the new tiles; a directory holding another history is refused.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// The ledger public key the checkpoint must verify with (default: the export's own).
    #[arg(long)]
    pub(crate) ledger_key: Option<PathBuf>,
}

/// `tiles`.
pub(crate) async fn tiles(args: TilesArgs, json: bool) -> anyhow::Result<()> {
    let ledger_key = match &args.ledger_key {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading ledger key {}", path.display()))?;
            Some(ledger::keys::public_key_from_text(&text).with_context(|| format!("ledger key {}", path.display()))?)
        }
        None => None,
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    // From the server: the export goes to a temporary directory (TMPDIR), gone when done;
    // never inside OUT, which a host may be serving, since an export holds the payloads.
    let (export, _temp) = match (&args.export, &args.tenant) {
        (Some(export), _) => (export.clone(), None),
        (None, Some(tenant)) => {
            let temp = tempfile::Builder::new()
                .prefix("release-ledger-tiles-")
                .tempdir()
                .context("creating a temporary directory for the export")?;
            let path = temp.path().join("entries.arrow");
            let ticket = FlightTicket { tenant: tenant.clone(), table: Table::Entries, from: None, to: None };
            let mut flight = flight_client(args.server.channel().await?);
            export_to_file(&mut flight, &ticket, Format::Arrow, &path, Arc::new(NoProgress)).await?;
            (path, Some(temp))
        }
        (None, None) => bail!("give --tenant or --export"),
    };
    let out = args.out.clone();
    let report = tokio::task::spawn_blocking(move || write_tiles(&export, &out, ledger_key.as_ref())).await?;
    let report = match report {
        Ok(report) => report,
        // Another history, or a checkpoint that does not verify: an answer that says no.
        Err(error @ (TilesError::Fork(_) | TilesError::Checkpoint(_))) => return Err(Refusal(error.to_string()).into()),
        Err(error) => return Err(error.into()),
    };
    print(json, serde_json::to_value(&report)?, || {
        format!(
            "wrote the tiles of {} ({} entries; {} before) to {}: {} written, {} kept, {} superseded partial tiles removed",
            report.tenant,
            report.size,
            report.previous_size,
            report.dir.display(),
            report.written,
            report.kept,
            report.removed_partial
        )
    });
    Ok(())
}
