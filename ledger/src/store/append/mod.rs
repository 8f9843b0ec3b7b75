//! The append pipeline, in the three steps every request goes through, in order:
//!
//! 1. [`prepare`] (`prepare.rs`, on the caller's thread, so concurrent appenders work in
//!    parallel): decode and validate each event, resolve its signing key, batch-verify the
//!    signatures (a single-event request's together with those of other single-event requests
//!    in flight, `combine.rs`), run the rules' stateless checks, and read once everything later steps need
//!    from a body (its administrative effect, the rules' facts, a redaction target's type):
//!    **the writer thread parses no JSON** (one documented exception in `stage.rs`).
//! 2. staging (`stage.rs`, on the writer thread): each request of a group is staged, in
//!    arrival order, into a request-local delta over the group's state: idempotency,
//!    authorisation, the stream version, the administrative effect, then the entry with its
//!    index rows and tree nodes. A request that fails any check is answered with its error and
//!    its delta dropped, so it leaves nothing behind.
//! 3. commit (`commit.rs`, on the writer thread): the group's rows, heads and checkpoints in
//!    one `WriteBatch`, written to RocksDB unsynced by the writer's helper thread while the
//!    writer appends the group's anchor record and `fdatasync`s it (the storage seam, where
//!    tests inject failures); only then is the committed state published and every request
//!    answered: no receipt is ever sent for data that is not on disk.

mod combine;
mod commit;
pub(crate) mod oneshot;
mod prepare;
mod record;
pub(crate) mod spin;
mod stage;
pub(crate) mod verdict;

pub(crate) use combine::Combiner;
pub(crate) use commit::{run, Work};
pub(crate) use prepare::{prepare, prepare_async, Job, Prepared};
pub(crate) use record::RecordJob;
pub use record::{GroupRecord, RecordResults, RecordedEvent};
pub(crate) use stage::read_stream_version;
