//! The output: the table on stdout, every figure as JSON (`--json-out`).

use std::path::Path;

use serde_json::json;

use crate::args::Args;
use crate::fill::FillReport;
use crate::pages::Pages;
use crate::TENANT;

/// Everything one run found.
pub(crate) struct Report<'a> {
    pub(crate) args: &'a Args,
    pub(crate) data_dir: &'a Path,
    pub(crate) fill: &'a FillReport,
    /// The data dir was filled by an earlier run.
    pub(crate) reused: bool,
    /// The log's length once caught up.
    pub(crate) position: u64,
    pub(crate) pages: &'a Pages,
    pub(crate) load_at_end: String,
}

impl Report<'_> {
    /// The table (markdown) and its notes, on stdout.
    pub(crate) fn print(&self) {
        let (fill, pages, position) = (self.fill, self.pages, self.position);
        println!(
            "\nconsole pages, tenant {TENANT}: {} releases, {position} log entries ({})",
            self.args.releases,
            if self.reused { "data dir reused" } else { "filled in this run" }
        );
        println!(
            "fill: {} events in {:.1} s = {:.0} events/s; catch-up (spawn to lag 0): {:.1} s, {:.0} entries/s",
            fill.events,
            fill.fill_seconds,
            fill.fill_events_per_sec,
            fill.catch_up_seconds,
            fill.catch_up_entries_per_sec
        );
        println!("board counts: {:?}", pages.counts);
        println!("\n| page | samples | p50 ms | p90 ms | p99 ms | max ms | mean KiB | load before |");
        println!("|---|---:|---:|---:|---:|---:|---:|---|");
        for r in &pages.results {
            println!(
                "| {} | {}{} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
                r.page,
                r.samples,
                if r.unexpected > 0 { format!(" ({} unexpected)", r.unexpected) } else { String::new() },
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                r.mean_bytes / 1024.0,
                r.load_average_before
            );
        }
        for r in pages.results.iter().filter(|r| !r.note.is_empty()) {
            println!("- {}: {}", r.page, r.note);
        }
        println!("load average at end: {}", self.load_at_end);
    }

    /// Every figure as JSON in `path`.
    pub(crate) fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let pages = self.pages;
        let out = json!({
            "tenant": TENANT, "releases": self.args.releases, "logEntries": self.position, "dataDir": self.data_dir,
            "dataDirReused": self.reused, "fill": self.fill, "boardCounts": pages.counts,
            "countMismatches": pages.mismatched,
            "modules": { "busiest": pages.busiest, "median": pages.median, "rarest": pages.rarest },
            "pages": pages.results, "loadAverageAtEnd": self.load_at_end,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
        Ok(())
    }
}
