//! The command line.

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Web console page times on one tenant with many releases")]
pub(crate) struct Args {
    /// Releases in the tenant.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) releases: u64,
    /// The data dir (default `/var/tmp/release-ledger-console-<releases>`); reused when
    /// `DATA_DIR.fill.json` is there.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// Fill again even if the data dir was filled before.
    #[arg(long)]
    pub(crate) refill: bool,
    /// Timed requests per page.
    #[arg(long, default_value_t = 200)]
    pub(crate) samples: usize,
    /// Untimed requests per page first.
    #[arg(long, default_value_t = 20)]
    pub(crate) warmup: usize,
    /// Pages followed from the board's first page (`a#next-page`) in one deep-page walk.
    #[arg(long, default_value_t = 20)]
    pub(crate) deep_pages: usize,
    /// Timed explain fragments (each folds the tenant's log up to the decision).
    #[arg(long, default_value_t = 3)]
    pub(crate) explain_samples: usize,
    /// The `release-ledger` binary (default: next to this one).
    #[arg(long)]
    pub(crate) server_bin: Option<PathBuf>,
    /// Write every figure here as JSON.
    #[arg(long)]
    pub(crate) json_out: Option<PathBuf>,
}
