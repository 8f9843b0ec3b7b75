//! Domain rules the store applies at the door, supplied by the layer above.
//!
//! The ledger knows the envelope, the header and the administrative types it acts on; what
//! the `data` of every other type must look like, and which roles may sign what, is the
//! governance layer's catalogue (`projections::catalogue`). It is plugged in here so that a
//! rejected event is rejected *before* it is stored, by the same pipeline, with the same
//! "nothing stored" guarantee, and so that the offline verifier can apply the same rules.

use std::fmt::Debug;

use crate::error::InvalidEvent;
use crate::event::ParsedEvent;
use crate::registry::Signer;

/// Event rules beyond the envelope: schema of each type's `data`, and role checks.
pub trait EventRules: Send + Sync + Debug {
    /// Stateless validation of the body (run on the caller's thread, before the signature
    /// check): the type must be known, its `data` must match its schema. An error is
    /// reported as `INVALID_ARGUMENT` and nothing is stored.
    fn validate(&self, event: &ParsedEvent) -> Result<(), InvalidEvent>;

    /// Checks the signer may author this event given the roles its key holds (`roles` is empty
    /// for the admin and ledger keys). Runs after the key registry allowed the key; an error
    /// (what was refused) is reported as `PERMISSION_DENIED` and nothing is stored.
    fn authorize(&self, event: &ParsedEvent, signer: Signer, roles: &[String]) -> Result<(), String>;
}
