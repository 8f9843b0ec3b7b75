//! # api — Release Ledger as a network service
//!
//! The tonic gRPC services over the `ledger` and `projections` crates — `release_ledger.v1.Ledger`
//! (appends, reads, proofs), `release_ledger.v1.Query` (the governance read models) and Arrow
//! Flight (exports of the log and the projections, [`flight`]) — error mapping to precise gRPC
//! codes, Prometheus metrics, tracing with OTLP export, and the `release-ledger` binary's
//! commands. Proto types stop here: `ledger` and `projections` never
//! see them.

#![deny(missing_docs)]

pub mod client;
pub mod connections;
pub mod convert;
pub mod demo;
pub mod flight;
pub mod limits;
pub mod metrics;
pub mod propagation;
pub mod query;
pub mod retry;
pub mod server;
pub mod service;
pub mod status;
pub mod telemetry;
