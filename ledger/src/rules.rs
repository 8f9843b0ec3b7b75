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
use crate::keys::KeyId;
use crate::registry::{KeyRecord, Signer};

/// What [`EventRules::authorize`] needs from an event's `data`, read by [`EventRules::facts`] on
/// the caller's thread, so that the writer thread, which authorises, parses no JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFacts {
    /// The role the event's data says its author acts in (an approval's `data.role`), which
    /// the signing key must hold.
    pub claimed_role: Option<String>,
    /// The tenant key the event's data says signed something it carries (an attestation's
    /// DSSE signer): its record is looked up at the event's position and handed to
    /// [`EventRules::authorize`] as `attestor`.
    pub attestation_key: Option<KeyId>,
}

/// Event rules beyond the envelope: schema of each type's `data`, and role checks.
pub trait EventRules: Send + Sync + Debug {
    /// Stateless validation of the body (run on the caller's thread, after the signature
    /// check: an unknown or forged signer learns nothing about the schema): the type must be
    /// known, its `data` must match its schema. An error is reported as `INVALID_ARGUMENT` and
    /// nothing is stored.
    fn validate(&self, event: &ParsedEvent) -> Result<(), InvalidEvent>;

    /// What `authorize` will need from the body of a valid event (on the caller's thread).
    fn facts(&self, _event: &ParsedEvent) -> EventFacts {
        EventFacts::default()
    }

    /// Checks the signer may author this event given the roles its key holds (`roles` is empty
    /// for the admin and ledger keys) and the event's `facts`. Runs on the writer thread after
    /// the key registry allowed the key; an error (what was refused) is reported as
    /// `PERMISSION_DENIED` and nothing is stored. `attestor` is the registry's record of
    /// `facts.attestation_key` at this position, if the facts name one and it is registered.
    fn authorize(
        &self,
        event: &ParsedEvent,
        facts: &EventFacts,
        signer: Signer,
        roles: &[String],
        attestor: Option<&KeyRecord>,
    ) -> Result<(), String>;
}
