//! The Release Ledger gRPC API: `proto/release_ledger/v1/{ledger,query,admin}.proto` and the tonic/prost code
//! generated from it at build time (by protox, so no `protoc` is needed). Proto types stop at
//! the `api` crate: nothing below it sees them.

#![allow(missing_docs, unreachable_pub, clippy::all)] // Generated code.

pub mod codec;

/// Package `release_ledger.v1`.
pub mod v1 {
    tonic::include_proto!("release_ledger.v1");
}

/// The encoded `FileDescriptorSet`, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/release_ledger_descriptor.bin"));

/// The encoded `FileDescriptorSet` of Arrow Flight (`proto/arrow/flight/protocol/Flight.proto`),
/// for gRPC reflection only: the Flight service runs on the `arrow-flight` crate's types.
pub const FLIGHT_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/flight_descriptor.bin"));
