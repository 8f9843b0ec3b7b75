//! `ledger-bench`: a load generator for the real `release-ledger` server over gRPC.
//!
//! # What it measures
//!
//! N concurrent clients, each on its own HTTP/2 connection, append signed events (`Append` for
//! `--batch 1`, `AppendBatch` otherwise) one request at a time (closed loop: a client sends its
//! next request when the previous one has answered). A receipt means the event is fsynced, so
//! the figures are *durable* appends. Reported for the measured window (after `--warmup`):
//!
//! - events/s and requests/s (successful ones), per-request latency p50/p90/p99/p99.9/max
//!   (microseconds, HdrHistogram, successful requests only), and every non-OK response counted
//!   by method and gRPC code (the run fails unless `--allow-errors`);
//! - the server's CPU time (utime + stime from `/proc/PID/stat`) and average cores over the
//!   window, its peak RSS (`VmHWM`, over the process lifetime) and RSS at the end of the window;
//! - this process's own CPU over the window: on a small machine the load generator competes with
//!   the server for the same cores, and the report says so;
//! - a per-second timeline (events/s, slowest request, server cores) to expose stalls;
//! - `--mix append-subscribe`: one `Subscribe` stream per tenant, started before the warmup and
//!   consuming live; it counts the measured window's entries delivered and their lag from the
//!   server's commit time (`recorded_at`, taken when the commit group starts, before its fsync)
//!   to arrival here, and checks seq continuity and `prev_hash` links;
//! - `--mix append-query`: Q more clients issuing `GetInclusionProof` (against the newest
//!   checkpoint) and `GetEntry` of random committed seqs, with their own latency histograms.
//!
//! # How
//!
//! By default it spawns `release-ledger serve` on loopback ports in a fresh temporary data dir,
//! registers one agent key per tenant (signed by the data dir's admin key), and SIGTERMs the
//! server at the end (the shutdown time is reported). With `--server URL` it drives a running
//! server instead (`--admin-key` or `--data-dir` locates the admin key; CPU and RSS need
//! `--server-pid`). The measured events are signed before the measured window — all of them
//! with `--events N`; with `--duration` a pool sized from the warmup rate (with headroom) — so
//! that client-side Ed25519 signing does not compete with the server while it is measured. If a
//! pool runs dry, the client signs inline and the report counts those events.
//!
//! # What it does not measure
//!
//! - Client-side verification: responses are checked cheaply (counts, seqs, links), not
//!   cryptographically (`release-ledger prove` / `verify` do that).
//! - Open-loop load: latency is that of a closed loop at the given concurrency, so queueing
//!   under overload shows up as lower throughput rather than unbounded latency.
//! - Network cost beyond loopback, TLS, or a server tuned differently from its defaults.
//! - Lag across machines: it compares this machine's clock with the server's `recorded_at`.
//! - Pre-existing data: a fresh data dir starts empty; `scale-bench` covers large logs.

mod appenders;
mod args;
mod drive;
mod events;
mod monitor;
mod readers;
mod report;
mod shared;
mod target;

use std::process::ExitCode;

use anyhow::anyhow;
use bench_harness::procfs::{clock_ticks_per_second, load_average};
use clap::Parser;

use crate::args::Args;
use crate::drive::drive;
use crate::report::{Report, RunConfig};
use crate::target::Target;

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(json, &anyhow!(e).context("starting the async runtime")),
    };
    let allow_errors = args.allow_errors;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                match serde_json::to_string(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => return fail(json, &anyhow!(e).context("serialising the report")),
                }
            } else {
                print!("{}", report.human());
            }
            if let Some(shutdown) = report.server.shutdown.as_ref().filter(|s| !s.clean) {
                eprintln!("ledger-bench: the server did not shut down cleanly: {}", shutdown.exit);
                return ExitCode::FAILURE;
            }
            let failures = report.errors.total;
            if failures > 0 && !allow_errors {
                // stdout keeps the one report; the verdict goes to stderr.
                eprintln!(
                    "ledger-bench: {failures} request(s) failed (see the report's errors; --allow-errors to accept)"
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(json, &error),
    }
}

fn fail(json: bool, error: &anyhow::Error) -> ExitCode {
    let reason = format!("{error:#}").replace('\n', " ");
    if json {
        // stdout holds one JSON object: here, the failure.
        println!("{}", serde_json::json!({ "error": reason }));
    } else {
        eprintln!("ledger-bench: {reason}");
    }
    ExitCode::FAILURE
}

/// The whole run: server, setup, warmup, pre-signing, measured window, drain, report.
async fn run(args: Args) -> anyhow::Result<Report> {
    args.check()?;
    let stop = args.stop();
    let load_before = load_average();
    let clk_tck = clock_ticks_per_second();
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);

    // Starting and stopping a server block (on its stdout, on its exit): fine on this thread.
    let mut target = tokio::task::block_in_place(|| Target::resolve(&args))?;
    // Reads need a credential: unless one is given (RELEASE_LEDGER_TOKEN), an operator token
    // minted with the admin key the bench signs registrations with.
    let result = match target::operator_token(&target).await {
        Ok(()) => drive(&args, stop, &target, clk_tck).await,
        Err(e) => Err(e),
    };
    // Stop a spawned server whatever happened; its Drop kills it if this is skipped.
    let stopped = target.spawned.as_mut().map(|server| tokio::task::block_in_place(|| server.stop_and_measure()));
    let mut report = result?;
    match stopped {
        Some(Ok(shutdown)) => report.server.shutdown = Some(shutdown),
        Some(Err(e)) => report.notes.push(format!("stopping the server: {e:#}")),
        None => {}
    }
    report.config = RunConfig {
        args: args.clone(),
        server_url: target.url.clone(),
        server_pid: target.pid,
        server_bin: target.spawned.as_ref().map(|s| s.bin().to_path_buf()),
        data_dir: target.data_dir.clone(),
        run_id: report.config.run_id.clone(),
        server_version: report.config.server_version.clone(),
        cores,
        clk_tck,
        load_before,
        load_after: load_average(),
    };
    if target.spawned.is_some() || target.pid.is_some() {
        report.notes.push(format!(
            "the server and this load generator share this machine's {cores} core(s): the client used {:.2} \
             cores on average during the window (gRPC, protobuf, bookkeeping; {} event(s) signed inline), \
             competing with the server, so the figures are a lower bound of the server alone",
            report.client.cores_avg, report.client.signed_during_window
        ));
    }
    Ok(report)
}
