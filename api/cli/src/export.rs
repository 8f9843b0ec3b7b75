//! `export`: a table over Arrow Flight into a file that verifies on its own.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use ledger_client::export::{export_to_file, flight_client, ExportProgress};
use ledger_client::FlightTicket;
use ledger_tools::{Format, Table};

use crate::args::ServerArg;
use crate::print;

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// Tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// The table: entries (the log), releases, history, approvals or risk (the governance
    /// projections, as of the position the server has folded up to).
    #[arg(long)]
    pub(crate) table: Table,
    /// arrow (Arrow IPC file) or parquet (zstd); default: from the --out extension (.arrow,
    /// .feather, .ipc / .parquet, .pq).
    #[arg(long)]
    pub(crate) format: Option<Format>,
    /// The file to write (as FILE.partial, renamed into place once complete).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// First seq (entries only; default 0).
    #[arg(long)]
    pub(crate) from: Option<u64>,
    /// End seq, exclusive (entries only; default: the log's size).
    #[arg(long)]
    pub(crate) to: Option<u64>,
}

/// `export`: DoGet over Arrow Flight into a file, with a progress bar when stderr is a terminal.
pub(crate) async fn export(args: ExportArgs, json: bool) -> anyhow::Result<()> {
    let format = match args.format {
        Some(format) => format,
        None => Format::from_path(&args.out).ok_or_else(|| {
            anyhow!(
                "cannot tell the format of {} from its extension: give --format arrow or --format parquet",
                args.out.display()
            )
        })?,
    };
    if args.table != Table::Entries && (args.from.is_some() || args.to.is_some()) {
        bail!(
            "--from and --to apply to the entries table only: the {} table is exported as of the position the \
             server's governance has reached",
            args.table
        );
    }
    let ticket = FlightTicket { tenant: args.tenant, table: args.table, from: args.from, to: args.to };
    let mut flight = flight_client(args.server.channel().await?);
    let progress = export_progress(args.table);
    // On Ctrl-C the export is dropped: its writer thread then removes the partial file, and the
    // runtime waits for that thread before the process exits.
    let exported = tokio::select! {
        exported = export_to_file(&mut flight, &ticket, format, &args.out, Arc::new(Bar(progress.clone()))) => exported,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted: nothing was written to {}", args.out.display())),
    };
    progress.finish_and_clear();
    let exported = exported?;
    let meta = &exported.meta;
    let value = serde_json::json!({
        "path": exported.path, "format": exported.format.to_string(), "tenant": meta.tenant,
        "table": meta.table.as_str(), "rows": exported.rows, "bytes": exported.bytes,
        "fromSeq": meta.from_seq, "toSeq": meta.to_seq,
    });
    print(json, value, || {
        let (range, hint) = if meta.table == Table::Entries {
            let hint = format!("\nverify with: ledger-audit verify {}", exported.path.display());
            (ledger_tools::seq_range(meta.from_seq, meta.to_seq), hint)
        } else {
            (format!("as of seq {}", meta.to_seq), String::new())
        };
        let rows = if exported.rows == 1 { "row" } else { "rows" };
        format!(
            "wrote {} {rows} of {} (tenant {}, {range}) to {} ({}, {} bytes){hint}",
            exported.rows,
            meta.table,
            meta.tenant,
            exported.path.display(),
            exported.format,
            exported.bytes,
        )
    });
    Ok(())
}

/// A progress bar on stderr when it is a terminal; hidden otherwise.
pub(crate) fn export_progress(table: Table) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = if table == Table::Entries {
        (ProgressBar::new(0), "{spinner} exporting [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
    } else {
        (ProgressBar::new_spinner(), "{spinner} exporting {pos} rows")
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// The progress bar as the export client's progress.
struct Bar(ProgressBar);

impl ExportProgress for Bar {
    fn set_length(&self, rows: u64) {
        self.0.set_length(rows);
    }

    fn inc(&self, rows: u64) {
        self.0.inc(rows);
    }
}
