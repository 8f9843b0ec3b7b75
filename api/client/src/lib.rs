//! # ledger-client — talking to a Release Ledger server
//!
//! What the `release-ledger` CLI, its demo, the benches and the tests share: the connection
//! ([`connect`]: the traced transport, [`retry`]: what is safe to send again, [`propagation`]:
//! the caller's trace context on every RPC), event builders ([`events`]: sign locally, check
//! against the catalogue before sending), response verification with typed errors
//! ([`verify`]: [`VerifyError`]; a gRPC answer is a [`Refused`]), the Arrow Flight export
//! client ([`export`]), the renderers of the read models ([`render`]), and the documents built
//! from verified entries only: release notes ([`notes`]), in-toto attestations ([`attestation`]),
//! OSCAL assessment results ([`oscal`]) and evidence packs ([`evidence`]).
//!
//! This crate does not depend on the server library (`api`); what both sides agree on lives
//! in `ledger-wire`.

#![deny(missing_docs)]

pub mod attestation;
pub mod auth;
pub mod backup;
pub mod connect;
pub mod events;
pub mod evidence;
pub mod export;
pub mod gate;
pub mod notes;
pub mod oscal;
pub mod propagation;
pub mod render;
pub mod retry;
pub mod verify;

pub use connect::*;
pub use events::*;
pub use ledger_wire::{FlightTicket, DEFAULT_MAX_MESSAGE_BYTES};
pub use render::*;
pub use verify::*;
