//! The key registry, derived from `AgentKeyRegistered` / `AgentKeyRevoked` events.
//!
//! The same functions decide authorisation in the append pipeline and in offline
//! verification, so "the key registry in force at each seq" means one thing everywhere.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::event::{
    AgentKeyRegisteredData, AgentKeyRevokedData, EntryRedactedData, EventClass, EventHeader, ParsedEvent,
    AGENT_KEY_REGISTERED, AGENT_KEY_REVOKED, ENTRY_REDACTED, KEY_ADMIN_ROLE, RELEASE_EVALUATION_REQUESTED,
};
use crate::ids::{AgentId, EventTypeName, RoleName};
use crate::keys::{public_key_from_base64, KeyId};

/// The keys fixed when a data dir is initialised, with their ids computed once (every append
/// and every verified entry compares its key id against both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustRoots {
    admin: VerifyingKey,
    ledger: VerifyingKey,
    admin_id: KeyId,
    ledger_id: KeyId,
}

impl TrustRoots {
    /// The roots of a data dir: its admin key (administrative events in any tenant, and any
    /// non-decision event) and its ledger key (checkpoints and decisions).
    pub fn new(admin: VerifyingKey, ledger: VerifyingKey) -> Self {
        Self { admin, ledger, admin_id: KeyId::of(&admin), ledger_id: KeyId::of(&ledger) }
    }

    /// The admin key.
    pub fn admin(&self) -> &VerifyingKey {
        &self.admin
    }

    /// The ledger key.
    pub fn ledger(&self) -> &VerifyingKey {
        &self.ledger
    }

    /// The admin key's id.
    pub fn admin_id(&self) -> KeyId {
        self.admin_id
    }

    /// The ledger key's id.
    pub fn ledger_id(&self) -> KeyId {
        self.ledger_id
    }

    /// The public key of a root key id.
    pub fn root_key(&self, key_id: &KeyId) -> Option<VerifyingKey> {
        if *key_id == self.admin_id {
            Some(self.admin)
        } else if *key_id == self.ledger_id {
            Some(self.ledger)
        } else {
            None
        }
    }
}

/// A tenant key as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Hex key id.
    pub key_id: String,
    /// The agent it belongs to.
    pub agent_id: String,
    /// Raw public key, base64.
    pub public_key: String,
    /// Roles held.
    pub roles: Vec<String>,
    /// Allowed event types (empty = any ordinary type).
    pub event_types: Vec<String>,
    /// Seq of the `AgentKeyRegistered` event.
    pub registered_at: u64,
    /// Seq of the `AgentKeyRevoked` event, once revoked.
    pub revoked_at: Option<u64>,
}

impl KeyRecord {
    /// The parsed public key.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        public_key_from_base64(&self.public_key).ok()
    }
}

/// Who signed an event, once authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// The data dir's admin key.
    Admin,
    /// The ledger's own key.
    Ledger,
    /// A registered tenant key.
    Agent,
}

/// Why a key may not append an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// Not registered in this tenant.
    Unknown,
    /// Revoked at this seq.
    Revoked(u64),
    /// Registered, but not for this.
    NotAllowed(String),
}

/// Decides whether `key_id` (with its record in the event's tenant, if any) may append an
/// event with this header.
pub fn authorize(
    roots: &TrustRoots,
    key_id: &KeyId,
    record: Option<&KeyRecord>,
    header: &EventHeader,
) -> Result<Signer, Denial> {
    let class = EventClass::of(&header.event_type);
    let event_type = &header.event_type;
    if *key_id == roots.ledger_id() {
        return if class == EventClass::Decision || event_type == RELEASE_EVALUATION_REQUESTED {
            Ok(Signer::Ledger)
        } else {
            Err(Denial::NotAllowed(format!("sign {event_type}: the ledger key signs only decisions")))
        };
    }
    if *key_id == roots.admin_id() {
        return if class == EventClass::Decision {
            Err(Denial::NotAllowed(format!("sign {event_type}: decisions are signed by the ledger key only")))
        } else {
            Ok(Signer::Admin)
        };
    }
    let record = record.ok_or(Denial::Unknown)?;
    if let Some(seq) = record.revoked_at {
        return Err(Denial::Revoked(seq));
    }
    if header.actor.agent_id != record.agent_id {
        return Err(Denial::NotAllowed(format!(
            "act as agent {:?}: it is registered to agent {:?}",
            header.actor.agent_id, record.agent_id
        )));
    }
    match class {
        EventClass::Decision => {
            Err(Denial::NotAllowed(format!("sign {event_type}: decisions are signed by the ledger key only")))
        }
        EventClass::Administrative if !record.roles.iter().any(|r| r == KEY_ADMIN_ROLE) => {
            Err(Denial::NotAllowed(format!("sign {event_type}: it requires the {KEY_ADMIN_ROLE} role")))
        }
        EventClass::Administrative => Ok(Signer::Agent),
        EventClass::Ordinary if record.event_types.is_empty() || record.event_types.contains(event_type) => {
            Ok(Signer::Agent)
        }
        EventClass::Ordinary => {
            Err(Denial::NotAllowed(format!("sign {event_type}: not among its allowed event types")))
        }
    }
}

/// What an administrative event does to the log's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminEffect {
    /// Not an administrative event.
    None,
    /// Registers a key.
    Register(KeyRecord),
    /// Revokes a key.
    Revoke(KeyId),
    /// Erases the payload of an earlier entry.
    Redact(u64),
}

/// Parses and validates an administrative event's data at `seq`. State-dependent checks (does
/// the key exist, does the seq exist) are the caller's, through [`check_effect`].
pub fn admin_effect(roots: &TrustRoots, event: &ParsedEvent, seq: u64) -> Result<AdminEffect, String> {
    effect_at(admin_intent(roots, event)?, seq)
}

/// The position-dependent part of an effect: a registration is dated `seq`; a redaction must
/// name an earlier entry.
pub fn effect_at(intent: AdminEffect, seq: u64) -> Result<AdminEffect, String> {
    match intent {
        AdminEffect::Register(record) => Ok(AdminEffect::Register(KeyRecord { registered_at: seq, ..record })),
        AdminEffect::Redact(target) if target >= seq => Err(format!("data.seq: {target} is not an earlier entry")),
        other => Ok(other),
    }
}

/// Parses and validates an administrative event's data, wherever it lands (the append path
/// reads it before the writer thread, [`effect_at`] places it): a registration's
/// `registered_at` is 0 until placed.
pub fn admin_intent(roots: &TrustRoots, event: &ParsedEvent) -> Result<AdminEffect, String> {
    match event.header.event_type.as_str() {
        AGENT_KEY_REGISTERED => {
            let data: AgentKeyRegisteredData = event.data_as().map_err(|e| e.to_string())?;
            AgentId::check(&data.agent_id).map_err(|e| format!("data.agentId: {}", e.reason))?;
            for role in &data.roles {
                RoleName::check(role).map_err(|e| format!("data.roles: {}", e.reason))?;
            }
            for event_type in &data.event_types {
                EventTypeName::check(event_type).map_err(|e| format!("data.eventTypes: {}", e.reason))?;
                if EventClass::of(event_type) == EventClass::Decision {
                    return Err(format!("data.eventTypes: {event_type} is signed by the ledger key only"));
                }
            }
            let key = public_key_from_base64(&data.public_key).map_err(|e| format!("data.publicKey: {e}"))?;
            let key_id = KeyId::of(&key);
            if roots.root_key(&key_id).is_some() {
                return Err("data.publicKey: the admin and ledger keys cannot be registered as agent keys".into());
            }
            Ok(AdminEffect::Register(KeyRecord {
                key_id: key_id.to_hex(),
                agent_id: data.agent_id,
                public_key: data.public_key.trim().to_owned(),
                roles: data.roles,
                event_types: data.event_types,
                registered_at: 0,
                revoked_at: None,
            }))
        }
        AGENT_KEY_REVOKED => {
            let data: AgentKeyRevokedData = event.data_as().map_err(|e| e.to_string())?;
            let key_id = KeyId::from_hex(&data.key_id).map_err(|e| format!("data.keyId: {e}"))?;
            Ok(AdminEffect::Revoke(key_id))
        }
        ENTRY_REDACTED => {
            let data: EntryRedactedData = event.data_as().map_err(|e| e.to_string())?;
            Ok(AdminEffect::Redact(data.seq))
        }
        _ => Ok(AdminEffect::None),
    }
}

/// Checks a key effect against the key's current record in the tenant (`None` = never
/// registered there).
pub fn check_effect(effect: &AdminEffect, current: Option<&KeyRecord>) -> Result<(), String> {
    match (effect, current) {
        (AdminEffect::Register(record), Some(existing)) => Err(match existing.revoked_at {
            Some(_) => format!("key {} was revoked; a revoked key cannot be registered again", record.key_id),
            None => format!("key {} is already registered (to agent {:?})", record.key_id, existing.agent_id),
        }),
        (AdminEffect::Revoke(key_id), None) => Err(format!("key {key_id} is not registered in this tenant")),
        (AdminEffect::Revoke(key_id), Some(existing)) if existing.revoked_at.is_some() => {
            Err(format!("key {key_id} is already revoked"))
        }
        _ => Ok(()),
    }
}
