//! What the log holds and what an append asks and answers, independent of how it is stored:
//! [`Entry`] (its seq, hashes and body), [`AppendEvent`] with its [`ExpectedVersion`], and the
//! [`Receipt`]. The byte layouts that store them are `layout.rs`.

use std::fmt;

use crate::envelope::Envelope;
use crate::hash::{entry_hash, Hash32};

/// What an entry holds: its envelope, or the marker left by a redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBody {
    /// The envelope as received.
    Present(Envelope),
    /// The payload was erased by the `EntryRedacted` event at `by_seq`; only its hash remains.
    Redacted {
        /// Seq of the `EntryRedacted` event.
        by_seq: u64,
    },
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the tenant's log, from 0; also the Merkle leaf index.
    pub seq: u64,
    /// Server time of the commit, ns since the epoch; non-decreasing per tenant.
    pub recorded_at: u64,
    /// The entry hash of `seq - 1` (zeros for seq 0).
    pub prev_hash: Hash32,
    /// `BLAKE3(envelope bytes)`.
    pub payload_hash: Hash32,
    /// `BLAKE3("release-ledger/entry/v1" || seq || recordedAt || prevHash || payloadHash)`.
    pub entry_hash: Hash32,
    /// The envelope, or the redaction marker.
    pub body: EntryBody,
}

impl Entry {
    /// The envelope, unless redacted.
    pub fn envelope(&self) -> Option<&Envelope> {
        match &self.body {
            EntryBody::Present(envelope) => Some(envelope),
            EntryBody::Redacted { .. } => None,
        }
    }

    /// Recomputes the entry hash (and the payload hash, unless redacted) and compares them with
    /// the stored ones.
    pub fn check_hashes(&self) -> Result<(), String> {
        if let EntryBody::Present(envelope) = &self.body {
            if envelope.payload_hash() != self.payload_hash {
                return Err("payload hash does not match the envelope".into());
            }
        }
        if entry_hash(self.seq, self.recorded_at, &self.prev_hash, &self.payload_hash) != self.entry_hash {
            return Err("entry hash does not match its fields".into());
        }
        Ok(())
    }
}

/// Optimistic concurrency expectation for a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// No check.
    #[default]
    Any,
    /// The stream must have no events yet.
    NoStream,
    /// The stream's last event must have this version (versions count from 1).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// One event of an append request.
#[derive(Debug, Clone)]
pub struct AppendEvent {
    /// The signed envelope.
    pub envelope: Envelope,
    /// The stream version the author expects.
    pub expected_version: ExpectedVersion,
}

impl AppendEvent {
    /// An event with no concurrency expectation.
    pub fn new(envelope: Envelope) -> Self {
        Self { envelope, expected_version: ExpectedVersion::Any }
    }
}

/// Proof that an event is in the log: durable when returned.
#[must_use = "a receipt is the proof an append happened"]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The tenant log.
    pub tenant: String,
    /// The entry's seq.
    pub seq: u64,
    /// Its entry hash.
    pub entry_hash: Hash32,
    /// Its `recordedAt`, ns.
    pub recorded_at: u64,
    /// True when the event was already in the log (idempotent retry): nothing new was written.
    pub duplicate: bool,
}
