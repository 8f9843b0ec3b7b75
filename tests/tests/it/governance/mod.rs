//! Governance through the ledger: every gate of the design's table, determinism of replay,
//! restarts of the projection worker, freeze windows across time zones and DST, and refused
//! appends. Every test drives the ledger and the worker exactly as agents would, through the
//! kit in `testkit::gov`.

mod appends;
mod custom;
mod determinism;
mod environments;
mod gates;
mod isolation;
mod restart;
mod time;
