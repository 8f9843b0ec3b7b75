//! # witness — C2SP tlog-witness and tlog-cosignature
//!
//! Third parties hold the ledger's head: a witness cosigns a checkpoint only if it is
//! consistent with every checkpoint of the same log it cosigned before, so a log that shows
//! two histories (a split view) or rolls back cannot gather a quorum of cosignatures for both.
//!
//! * [`note`]: signed notes, checkpoint bodies and verifier keys (`vkey`s).
//! * [`cosig`]: Ed25519 `cosignature/v1` (signature type `0x04`): sign and verify.
//! * [`policy`]: C2SP tlog-policy files (logs, witnesses, groups, quorum).
//! * [`verify`]: a client's check of a cosigned checkpoint against a policy.
//! * [`witness`]: the `add-checkpoint` state machine, persisting each origin's latest
//!   checkpoint atomically before it answers.
//!
//! The HTTP side (the witness's routes, the client a log submits with) is the `witness-http`
//! crate, so verifiers (`ledger-audit`) take this one without an HTTP stack or async runtime.
//!
//! The key decision: the tree hash is RFC 6962 SHA-256 ([`WitnessHasher`]), the one C2SP
//! tlog-witness means; every witness on the network verifies the same proofs. This crate knows
//! nothing of the ledger's store: a log hands it notes and proofs.

#![deny(missing_docs)]

pub mod cosig;
pub mod note;
pub mod policy;
pub mod verify;
pub mod witness;

/// A 32-byte hash.
pub type Hash32 = [u8; 32];

/// The Merkle tree hash the witness verifies consistency proofs with (RFC 6962 SHA-256).
/// The one name to change if a log ever needed another.
pub type WitnessHasher = ledger::merkle::Sha256Hasher;

pub use cosig::{cosigned_message, verify_cosignature, Cosigner};
pub use note::{CheckpointBody, SignatureLine, SignedNote, Vkey};
pub use policy::{parse_log_list, Policy, PolicyError};
pub use verify::{verify_cosigned, CheckpointRejected, QuorumReport};
pub use witness::{AddError, Witness};
