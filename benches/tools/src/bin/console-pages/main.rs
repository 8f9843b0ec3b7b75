//! Web console page times on one large tenant (issue 21: "pages render from the projection
//! store and stay fast on a tenant with 100,000 releases").
//!
//! 1. **Fill** (skipped when `DATA_DIR.fill.json` says this data dir was filled and caught up
//!    before): one tenant gets `--releases` releases through the library with the governance
//!    catalogue (what `scale-bench` does: `Ledger::append_batch`, batches of whole releases,
//!    signing and appending on every core, the real clock), in a realistic mix built from the
//!    governance test kit's event builders (`testkit::gov`): a policy for four environments
//!    (`prod`, `staging`, `dev`, `staging-eu`), a change freeze in force on `staging-eu`, a yearly
//!    holiday freeze on `prod` and a weekly maintenance freeze on `dev` (not in force), then
//!    releases of 1–3 of 40 modules (skewed: `svc-00` ships in about one release in five) that
//!    stop at every stage: only declared (Planned), evaluated and waiting for an approval or
//!    held by the freeze (Delayed), approved (Approved), failing tests or rejected by QA
//!    (Rejected), deployed (Published), failed deployments (Failed), deployed then rolled back
//!    (RolledBack).
//! 2. **Catch-up**: `release-ledger serve --console-listen 127.0.0.1:0` on the data dir; its
//!    governance worker folds the log and appends the decisions; `GetGovernanceStatus` is
//!    polled (with an operator token) until the tenant's lag is 0 on three polls in a row with
//!    the position unchanged. Timed from the spawn (the time includes the server's start).
//! 3. **Pages**: an operator token (`release-ledger token --key DATA/keys/admin.pem --ttl 1h`),
//!    then, per page, sequential `GET`s with `Authorization: Bearer` over one keep-alive
//!    connection (`ureq`; what a timed request spans is in `http.rs`): `--warmup` requests, then
//!    `--samples` timed ones (request written to last body byte read), rotating through the
//!    page's URLs (random releases, entries, ...). The explain fragment folds the log:
//!    `--explain-samples` requests, no warm-up.
//!
//! Output: a table (text) and `--json-out FILE` (every figure, the load average before each
//! page). Run by `benches/scripts/console-pages.sh`.
//!
//! Usage: `console-pages [--releases 100000] [--data-dir DIR] [--samples 200] [--warmup 20]`.
//!
//! Modules: `args` the flags, `workload` the releases and the policy, `fill` steps 1 and 2,
//! `server` the served data dir, `http` the client, `html` what is read from the pages, `pages`
//! step 3, `measure` a page's timing, `report` the output.

mod args;
mod fill;
mod html;
mod http;
mod measure;
mod pages;
mod report;
mod server;
mod workload;

use std::path::PathBuf;

use anyhow::ensure;
use clap::Parser;

use crate::args::Args;
use crate::report::Report;

const TENANT: &str = "console-bench";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.releases > 0, "--releases must be at least 1");
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/var/tmp/release-ledger-console-{}", args.releases)));
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => bench_harness::server::default_server_bin()?,
    };
    eprintln!("load average at start: {}", bench_harness::load_average());

    // 1 and 2: fill (unless cached) and catch up.
    let prepared = fill::prepare(&args, &data_dir, &bin)?;

    // 3. Pages.
    let pages = pages::run(&args, &prepared.server, &prepared.token, prepared.position)?;

    let load_at_end = bench_harness::load_average();
    prepared.server.stop()?;

    let report = Report {
        args: &args,
        data_dir: &data_dir,
        fill: &prepared.report,
        reused: prepared.reused,
        position: prepared.position,
        pages: &pages,
        load_at_end,
    };
    report.print();
    if let Some(path) = &args.json_out {
        report.write_json(path)?;
    }
    ensure!(pages.mismatched.is_empty(), "the board's counts differ from the fill's plans");
    Ok(())
}
