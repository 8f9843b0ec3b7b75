//! # ledger — the tamper-evident core of Release Ledger
//!
//! A signed, hash-chained, Merkle-proved, append-only event log per tenant, stored in
//! RocksDB. The key decision: **the store is the only writer and the signatures are the only
//! authority.** Every event arrives as a DSSE envelope signed by a key registered *in the log
//! itself*; the ledger checks it, chains it (`entryHash` commits to the envelope's hash, so
//! payloads can later be redacted without breaking anything), adds it to an RFC 6962-shaped
//! BLAKE3 Merkle tree, and group-commits it with `fsync` before acknowledging. Anyone holding
//! the admin and ledger public keys can re-verify everything with [`verify`].
//!
//! This crate knows nothing of gRPC, protobuf or async runtimes: it is synchronous, and its
//! one background thread is the group-commit writer.
//!
//! The README's quick example (compiled here as a doctest) shows the whole cycle: open,
//! register an agent key, append, prove, verify.

#![deny(missing_docs)]

pub mod b64;
pub mod backup;
pub mod checkpoint;
pub mod clock;
pub mod envelope;
pub mod error;
pub mod event;
pub mod hash;
pub mod ids;
pub mod keys;
pub mod merkle;
pub mod registry;
pub mod rules;
pub mod signatures;
pub mod store;
pub mod time;
pub mod tlog_proof;
pub mod verify;

/// The decoders of stored bytes that are not otherwise public, for the fuzz targets in
/// `fuzz/` (see `docs/reliability.md`). Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::store::{
        decode_entry_value, decode_event_id_value, encode_entry_value, encode_event_id_value, EncodedBody, Head,
    };
}

/// The README's example, compiled as a doctest so it cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use checkpoint::{Checkpoint, NoteSignature, SignedCheckpoint, TreeFormat, UnverifiedNote};
pub use clock::{Clock, ManualClock, SystemClock};
pub use envelope::{pae, Envelope, Signature, EVENT_PAYLOAD_TYPE};
pub use error::{
    clip, clip_at, AppendError, CheckpointError, Error, ErrorKind, KeyError, OpenError, ProofError, ReadError,
};
pub use event::{EventClass, EventHeader, ParsedEvent};
pub use hash::Hash32;
pub use keys::{KeyId, KeyPair, KeyPaths};
pub use registry::{KeyRecord, Signer, TrustRoots};
pub use rules::{EventFacts, EventRules};
pub use store::{
    server_lock, AppendEvent, CommitFault, CommitListener, CommitObserver, CommitPoint, CommitStats, Config,
    ConsistencyProof, Entry, EntryBody, EntryIter, ExpectedVersion, FsckOpenError, FsckOptions, FsckVisit, GroupRecord,
    InclusionProof, Ledger, LedgerKeyFile, MigrateOptions, Migration, MigrationReport, PendingAppend, Problem, Receipt,
    RecordResults, RecordedEvent, Replicator, ServerLock, StoreView, TenantCheck, TenantHead, TenantMigration,
    TenantRow, TenantTip,
};
pub use verify::{Check, ResumePoint, Verifier, VerifyFailure, VerifyReport};
