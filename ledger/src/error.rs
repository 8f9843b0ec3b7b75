//! One error enum per operation, each `#[non_exhaustive]`, all convertible into [`Error`].
//!
//! Corruption (`Corrupted { seq, .. }`) is kept apart from I/O failures, and every append
//! rejection maps to an [`ErrorKind`] that a transport can turn into a precise status code.

use std::path::PathBuf;

use crate::keys::KeyId;
use crate::store::ExpectedVersion;

/// What kind of failure an error is, for mapping onto a transport's status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// The signature is bad or the key unknown (`UNAUTHENTICATED`).
    Unauthenticated,
    /// The key may not do this (`PERMISSION_DENIED`).
    PermissionDenied,
    /// The event id is taken by another payload (`ALREADY_EXISTS`).
    AlreadyExists,
    /// The log's state does not allow it (`FAILED_PRECONDITION`).
    FailedPrecondition,
    /// A limit was hit (`RESOURCE_EXHAUSTED`).
    ResourceExhausted,
    /// Try again later, or after a restart (`UNAVAILABLE`).
    Unavailable,
    /// Stored data failed an integrity check (`DATA_LOSS`).
    DataLoss,
    /// Nothing by that name (`NOT_FOUND`).
    NotFound,
    /// A bug or an I/O failure (`INTERNAL`).
    Internal,
}

/// Characters of a client's input that an error message quotes (see [`clip`]).
pub const CLIP_CHARS: usize = 64;

/// Longest reason an [`InvalidEvent`] carries, in characters: a parser's message (serde's
/// quotes the unknown field or variant it met) is cut there.
pub const MAX_REASON_CHARS: usize = 256;

/// `text` as an error message quotes it: the first [`CLIP_CHARS`] characters and, when there
/// are more, the total length. Input echoed whole into a message can be as long as the
/// request (a 100 KB release id), and a gRPC status message travels in a header that clients
/// refuse beyond a few KiB, so the caller would see the header error instead of the reason.
///
/// `{}` writes `prefix… (N bytes)`, `{:?}` writes `"prefix"… (N bytes)`.
pub fn clip(text: &str) -> Clipped<'_> {
    clip_at(text, CLIP_CHARS)
}

/// [`clip`] at `max_chars` characters.
pub fn clip_at(text: &str, max_chars: usize) -> Clipped<'_> {
    let prefix = match text.char_indices().nth(max_chars) {
        Some((end, _)) => &text[..end],
        None => text,
    };
    Clipped { prefix, total: text.len() }
}

/// A quoted prefix of client input (see [`clip`]).
#[derive(Clone, Copy)]
pub struct Clipped<'a> {
    prefix: &'a str,
    total: usize,
}

impl Clipped<'_> {
    fn write_rest(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefix.len() < self.total {
            write!(f, "… ({} bytes)", self.total)?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.prefix)?;
        self.write_rest(f)
    }
}

impl std::fmt::Debug for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.prefix)?;
        self.write_rest(f)
    }
}

/// A field of an event body failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidEvent {
    /// The JSON field (dotted path) at fault, or `payload` for the document as a whole.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidEvent {
    /// An error for `field`; a reason longer than [`MAX_REASON_CHARS`] is cut (see [`clip`]).
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.chars().nth(MAX_REASON_CHARS).is_some() {
            reason = clip_at(&reason, MAX_REASON_CHARS).to_string();
        }
        Self { field, reason }
    }
}

/// Bytes that do not decode as the documented layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Key files and key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause (in the message, so not also a `source()`: chains print it once).
        cause: std::io::Error,
    },
    /// Not a PKCS#8 Ed25519 private key.
    #[error("not a PKCS#8 Ed25519 private key: {0}")]
    BadPem(String),
    /// A key file that is not a PKCS#8 Ed25519 private key.
    #[error("{path}: not a PKCS#8 Ed25519 private key: {reason}")]
    BadPemFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An encrypted PKCS#8 key was given no passphrase.
    #[error(
        "{path} is an encrypted private key (ENCRYPTED PRIVATE KEY): give its passphrase in \
         RELEASE_LEDGER_KEY_PASSPHRASE or in a file named by RELEASE_LEDGER_KEY_PASSPHRASE_FILE"
    )]
    NeedsPassphrase {
        /// The file.
        path: PathBuf,
    },
    /// An encrypted PKCS#8 key did not decrypt.
    #[error(
        "{path}: cannot decrypt the private key ({reason}): wrong passphrase, or an encryption other than \
         PBES2 (PBKDF2 or scrypt with AES-CBC, what `openssl genpkey -aes256` writes)"
    )]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// What the decryption said.
        reason: String,
    },
    /// Not a usable raw Ed25519 public key.
    #[error("bad public key: {0}")]
    BadPublicKey(String),
    /// Not 64 lowercase hex characters.
    #[error("bad key id {0:?}: expected 64 lowercase hex characters")]
    BadKeyId(String),
}

/// Opening a data dir.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Creating the data dir failed.
    #[error("data dir {path}: {cause}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause (in the message, so not also a `source()`: chains print it once).
        cause: std::io::Error,
    },
    /// A key file is unreadable or does not match the keys the store was created with.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ledger key file does not match the public key recorded in the store.
    #[error("{path} is not the ledger key this data dir was initialised with (expected key id {expected})")]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The recorded key id.
        expected: KeyId,
    },
    /// The configured checkpoint origin prefix is not the one the store's logs were created
    /// with: their origins name them to witnesses and verifiers and cannot change.
    #[error(
        "the configured origin prefix {configured:?} is not this store's {stored:?}: a log's origin cannot change \
         (witnesses and verifiers know the log by it); drop the setting or set it to {stored:?}"
    )]
    OriginMismatch {
        /// The configured prefix.
        configured: String,
        /// The stored prefix.
        stored: String,
    },
    /// The configured origin prefix is not a schema-less URL (tlog-checkpoint).
    #[error("{0}")]
    BadOriginPrefix(String),
    /// RocksDB refused to open (for a reason other than corruption, which is `Corrupted`).
    #[error("rocksdb: {0}")]
    Storage(rocksdb::Error),
    /// The store is from an unknown format version.
    #[error("unsupported store format version {found} (this build reads {supported}){}", migrate_hint(*found))]
    UnsupportedFormat {
        /// Found on disk.
        found: u32,
        /// What this build reads.
        supported: u32,
    },
    /// Stored data failed an integrity check while loading, or RocksDB found its own files
    /// corrupted. The store does not serve until it is repaired.
    #[error("corrupted store: {0}; {RECOVERY}")]
    Corrupted(String),
    /// The store holds less of a tenant's log than its anchor says was acknowledged.
    #[error(
        "tenant {tenant}: the store holds {stored} entries but {acknowledged} were acknowledged (anchor): \
         {reason}; {RECOVERY}"
    )]
    Lost {
        /// The tenant (`#tid` when the store no longer names it).
        tenant: String,
        /// Entries in the store.
        stored: u64,
        /// Entries the anchor says were acknowledged.
        acknowledged: u64,
        /// What exactly is missing or different.
        reason: String,
    },
}

/// What every integrity failure on open tells the operator to do.
const RECOVERY: &str = "the ledger will not serve this data dir: restore it from a backup, or run \
     `release-ledger salvage --data-dir DIR` to keep what verifies and record what was lost \
     (docs/format.md, \"Recovery\")";

impl OpenError {
    /// The transport-level kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Corrupted(_) | Self::Lost { .. } => ErrorKind::DataLoss,
            Self::UnsupportedFormat { .. }
            | Self::KeyMismatch { .. }
            | Self::OriginMismatch { .. }
            | Self::BadOriginPrefix(_) => ErrorKind::FailedPrecondition,
            Self::Io { .. } | Self::Key(_) | Self::Storage(_) => ErrorKind::Internal,
        }
    }
}

/// What to do about a store of an older format.
fn migrate_hint(found: u32) -> &'static str {
    if found == 1 {
        ": a format v1 store (BLAKE3 tree); upgrade it with `release-ledger migrate --data-dir DIR` \
         (resumable; the entries are kept as they are, the tree and checkpoints are rebuilt)"
    } else {
        ""
    }
}

/// An append was rejected; nothing of the request was stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The envelope or body is malformed.
    #[error("event {index}: {source}")]
    Invalid {
        /// Position in the request.
        index: usize,
        /// The field at fault.
        source: InvalidEvent,
    },
    /// The payload exceeds the configured limit.
    #[error("event {index}: payload is {size} bytes, over the {limit}-byte limit")]
    PayloadTooLarge {
        /// Position in the request.
        index: usize,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A request with no events, too many, or events of several tenants.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request has more events than the limit.
    #[error("request has {count} events, over the limit of {limit}")]
    TooManyEvents {
        /// Events in the request.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The signature does not verify with the named key.
    #[error("event {index}: signature does not verify for key {key_id}")]
    BadSignature {
        /// Position in the request.
        index: usize,
        /// The key named by the envelope.
        key_id: String,
    },
    /// No key with this id is registered anywhere.
    #[error("event {index}: unknown key {key_id}")]
    UnknownKey {
        /// Position in the request.
        index: usize,
        /// The key named by the envelope.
        key_id: String,
    },
    /// The key was revoked.
    #[error("event {index}: key {key_id} was revoked at seq {revoked_at}")]
    KeyRevoked {
        /// Position in the request.
        index: usize,
        /// The key.
        key_id: KeyId,
        /// The seq of the revocation.
        revoked_at: u64,
    },
    /// The key belongs to another tenant.
    #[error("event {index}: key {key_id} is not registered for tenant {tenant}")]
    WrongTenant {
        /// Position in the request.
        index: usize,
        /// The key.
        key_id: KeyId,
        /// The tenant the event names.
        tenant: String,
    },
    /// The key may not sign this type (or act as this agent).
    #[error("event {index}: key {key_id} may not {what}")]
    NotAllowed {
        /// Position in the request.
        index: usize,
        /// The key.
        key_id: KeyId,
        /// What was refused.
        what: String,
    },
    /// The event id is already used by a different payload.
    #[error(
        "event {index}: eventId {:?} already exists at seq {existing_seq} with a different payload",
        clip(event_id)
    )]
    EventIdConflict {
        /// Position in the request.
        index: usize,
        /// The event id.
        event_id: String,
        /// Where the first one is.
        existing_seq: u64,
    },
    /// Optimistic concurrency failed.
    #[error("event {index}: stream {:?} is at version {actual}, expected {expected}", clip(stream))]
    VersionConflict {
        /// Position in the request.
        index: usize,
        /// The stream.
        stream: String,
        /// What the request expected.
        expected: ExpectedVersion,
        /// The stream's version.
        actual: u64,
    },
    /// An administrative event the log's state does not allow (revoking an unknown key,
    /// redacting a seq that does not exist, …).
    #[error("event {index}: {reason}")]
    Precondition {
        /// Position in the request.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The append queue is full.
    #[error("append queue is full; retry later")]
    Overloaded,
    /// A commit failed earlier; the writer refuses appends until the store is reopened. The
    /// requests of the failed group may be stored all the same (one of its two writes may have
    /// reached the disk): after the reopen, a retry with the same event id says which.
    #[error("ledger writer is poisoned after a failed commit ({0}); restart required")]
    Poisoned(String),
    /// The store is shutting down.
    #[error("ledger is shutting down")]
    ShuttingDown,
    /// Reading state needed to decide failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Stored data needed to decide failed an integrity check.
    #[error("corrupted entry at seq {seq}: {reason}")]
    Corrupted {
        /// The seq.
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// An index row needed to decide failed an integrity check.
    #[error("corrupted {row}: {reason}")]
    CorruptedRow {
        /// Which row.
        row: String,
        /// What failed.
        reason: String,
    },
    /// The data dir's filesystem has less free space than the configured reserve.
    #[error(
        "the data dir's filesystem has {free} bytes free, below the {reserve}-byte reserve: appends are refused \
         until space is freed (reads keep working)"
    )]
    DiskFull {
        /// Bytes available.
        free: u64,
        /// The reserve (`Config::min_free_bytes`).
        reserve: u64,
    },
    /// This node of a cluster is not its leader: appends go to the leader (docs/replication.md).
    /// Nothing was stored.
    #[error("this node is not the cluster's leader; {}", match .leader {
        Some(address) => format!("append to the leader at {address}"),
        None => "no leader is known yet (an election is under way): retry shortly".to_owned(),
    })]
    NotLeader {
        /// The leader's gRPC address, when one is known.
        leader: Option<String>,
    },
    /// The cluster did not answer for the request: it lost its leader or its majority before
    /// the request was committed, or the answer did not come in time. The request may still be
    /// committed: retry it with the same signed bytes (appends are idempotent by event id).
    #[error("replication: {0}; the append may or may not be committed: retry it with the same signed event")]
    Replication(String),
}

impl AppendError {
    /// The position in the request of the event at fault, when one event is.
    pub fn index(&self) -> Option<usize> {
        match self {
            Self::Invalid { index, .. }
            | Self::PayloadTooLarge { index, .. }
            | Self::BadSignature { index, .. }
            | Self::UnknownKey { index, .. }
            | Self::KeyRevoked { index, .. }
            | Self::WrongTenant { index, .. }
            | Self::NotAllowed { index, .. }
            | Self::EventIdConflict { index, .. }
            | Self::VersionConflict { index, .. }
            | Self::Precondition { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The transport-level kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } | Self::BadRequest(_) => ErrorKind::InvalidArgument,
            Self::PayloadTooLarge { .. } | Self::TooManyEvents { .. } | Self::Overloaded | Self::DiskFull { .. } => {
                ErrorKind::ResourceExhausted
            }
            Self::BadSignature { .. } | Self::UnknownKey { .. } => ErrorKind::Unauthenticated,
            Self::KeyRevoked { .. } | Self::WrongTenant { .. } | Self::NotAllowed { .. } => ErrorKind::PermissionDenied,
            Self::EventIdConflict { .. } => ErrorKind::AlreadyExists,
            Self::VersionConflict { .. } | Self::Precondition { .. } => ErrorKind::FailedPrecondition,
            Self::Poisoned(_) | Self::ShuttingDown | Self::NotLeader { .. } | Self::Replication(_) => {
                ErrorKind::Unavailable
            }
            Self::Corrupted { .. } | Self::CorruptedRow { .. } => ErrorKind::DataLoss,
            Self::Storage(_) => ErrorKind::Internal,
        }
    }
}

/// A read failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No tenant by that name.
    #[error("unknown tenant {:?}", clip(.0))]
    UnknownTenant(String),
    /// A seq or size beyond the log.
    #[error("{0}")]
    OutOfRange(String),
    /// RocksDB failed.
    #[error("storage: {0}")]
    Storage(String),
    /// Stored bytes failed to decode or check.
    #[error("corrupted entry at seq {seq}: {reason}")]
    Corrupted {
        /// The seq (or tree position) at fault.
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// An index row (not an entry) failed to decode or check, or RocksDB found it corrupted.
    #[error("corrupted {row}: {reason}")]
    CorruptedRow {
        /// Which row: column family and key, as far as known.
        row: String,
        /// What failed.
        reason: String,
    },
}

impl ReadError {
    /// The transport-level kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownTenant(_) => ErrorKind::NotFound,
            Self::OutOfRange(_) => ErrorKind::InvalidArgument,
            Self::Storage(_) => ErrorKind::Internal,
            Self::Corrupted { .. } | Self::CorruptedRow { .. } => ErrorKind::DataLoss,
        }
    }

    /// A RocksDB error met while reading the entry (or tree node) of `seq`: corruption names
    /// the seq and is `DATA_LOSS`; anything else is a storage failure.
    pub fn rocksdb_at_seq(seq: u64) -> impl Fn(rocksdb::Error) -> Self {
        move |e| match e.kind() {
            rocksdb::ErrorKind::Corruption => Self::Corrupted { seq, reason: format!("rocksdb: {e}") },
            _ => Self::Storage(e.to_string()),
        }
    }

    /// A RocksDB error met while reading an index row.
    pub fn rocksdb_at_row(row: impl Into<String>) -> impl FnOnce(rocksdb::Error) -> Self {
        move |e| match e.kind() {
            rocksdb::ErrorKind::Corruption => Self::CorruptedRow { row: row.into(), reason: format!("rocksdb: {e}") },
            _ => Self::Storage(e.to_string()),
        }
    }
}

impl From<rocksdb::Error> for ReadError {
    /// Without context: prefer [`ReadError::rocksdb_at_seq`] or [`ReadError::rocksdb_at_row`].
    fn from(e: rocksdb::Error) -> Self {
        Self::rocksdb_at_row("a store row")(e)
    }
}

impl From<rocksdb::Error> for OpenError {
    fn from(e: rocksdb::Error) -> Self {
        crate::store::open_error(e)
    }
}

/// A proof did not verify, or could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Index or sizes out of range.
    #[error("index or tree size out of range")]
    OutOfRange,
    /// The path has the wrong number of nodes for the sizes.
    #[error("proof has the wrong length")]
    WrongPathLength,
    /// The recomputed root differs.
    #[error("recomputed root does not match")]
    RootMismatch,
}

/// A checkpoint did not parse or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Not a checkpoint note.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// The ledger key's signature does not verify.
    #[error("checkpoint signature does not verify")]
    BadSignature,
    /// No signature by the ledger key.
    #[error("checkpoint carries no signature by the ledger key")]
    NoLedgerSignature,
}

/// The umbrella error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Appending.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Reading.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Proofs.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// Checkpoints.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Keys.
    #[error(transparent)]
    Key(#[from] KeyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_quotes_a_prefix_and_the_length() {
        assert_eq!(clip("short").to_string(), "short");
        assert_eq!(format!("{:?}", clip("short")), "\"short\"");
        let long = "é".repeat(100_000);
        let shown = format!("{:?}", clip(&long));
        assert_eq!(shown, format!("{:?}… (200000 bytes)", "é".repeat(CLIP_CHARS)));
        assert_eq!(clip(&"a".repeat(CLIP_CHARS)).to_string(), "a".repeat(CLIP_CHARS));
    }

    #[test]
    fn invalid_event_reasons_are_bounded() {
        let error = InvalidEvent::new("data", "x".repeat(100_000));
        assert!(error.to_string().len() < MAX_REASON_CHARS + 40, "{}", error.to_string().len());
        assert!(error.reason.ends_with("… (100000 bytes)"), "{}", error.reason);
    }
}
