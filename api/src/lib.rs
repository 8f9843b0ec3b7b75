//! # api — Release Ledger as a network service
//!
//! The tonic gRPC service (`release_ledger.v1.Ledger`) over the `ledger` crate, error mapping
//! to precise gRPC codes, Prometheus metrics, tracing with OTLP export, and the
//! `release-ledger` binary's commands. Proto types stop here: `ledger` never sees them.

#![deny(missing_docs)]

pub mod client;
pub mod convert;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod service;
pub mod status;
pub mod telemetry;
