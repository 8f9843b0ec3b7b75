//! The harness every Release Ledger benchmark shares, so each bench binary holds only what it
//! measures: the signed-event workloads and appender threads ([`workload`]), the rows the
//! RocksDB limit writes ([`rocks`]), the governance fill of the scale curves ([`fill`]), the
//! custom-gate policies and releases of issue 22 ([`gates`]), what `/proc` says about a process
//! ([`procfs`]), small PRNGs ([`rng`]), a spawned `release-ledger serve` ([`server`]) and
//! latency histograms ([`latency`]).
//!
//! It links neither the server, nor a gRPC stack, nor the exports, nor PostgreSQL: the
//! criterion micro-benches build on it alone. `BENCHMARKS.md` explains what each bench
//! measures and records the results.

pub mod bodies;
pub mod fill;
pub mod gates;
pub mod latency;
pub mod procfs;
pub mod rng;
pub mod rocks;
pub mod server;
pub mod workload;

pub use fill::{fill_event, governance_fill, governance_setup, RELEASE_EVENTS};
pub use procfs::load_average;
pub use rocks::{RawStore, Row, RowBuilder, StoredShape, COLUMN_FAMILIES};
pub use workload::{
    append_all, cores, run_released, sign_work, stream, verify_chunks, with_crew, AppendFixture, Ed25519Alone,
    SignedSet, SyncFile, VerifyFixture, VerifyMode, Work, PADDING, TENANT, VERIFIER_SIGNATURE_BATCH,
};
