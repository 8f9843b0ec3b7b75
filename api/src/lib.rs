//! # api — the Release Ledger server library
//!
//! The tonic gRPC services over the `ledger` and `projections` crates — `release_ledger.v1.Ledger`
//! (appends, reads, proofs, [`service`]), `release_ledger.v1.Query` (the governance read models,
//! [`query`]) and Arrow Flight (exports of the log and the projections, [`flight`]) — error
//! mapping to precise gRPC codes ([`status`]), request limits, Prometheus metrics, tracing with
//! OTLP export, the accept loop, and [`server::serve`] with its settings ([`config`]: flag >
//! environment > file > default). Proto types stop here: `ledger` and `projections` never
//! see them.
//!
//! This crate knows nothing of command lines or terminals: the `release-ledger` binary
//! (`api/cli`) parses flags and prints; the client side is `ledger-client` (`api/client`);
//! what both sides agree on is `ledger-wire` (`api/wire`).

#![deny(missing_docs)]

pub mod access;
pub mod backup;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod console;
pub mod flight;
mod guard;
pub mod limits;
pub mod metrics;
pub mod oidc;
pub mod propagation;
pub mod query;
pub mod server;
pub mod service;
pub mod status;
pub mod telemetry;
pub mod tiles;
pub mod tls;
pub mod witnessing;

pub use ledger_wire::convert;
