//! Step 1 of an append, on the caller's thread: everything that needs no group state.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::envelope::EVENT_PAYLOAD_TYPE;
use crate::error::{AppendError, InvalidEvent};
use crate::event::{ParsedEvent, AGENT_KEY_REGISTERED};
use crate::hash::{payload_hash, Hash32};
use crate::keys::{public_key_from_base64, KeyId};
use crate::registry::{admin_intent, AdminEffect, KeyRecord};
use crate::rules::EventFacts;
use crate::signatures::first_bad_signature;
use crate::store::{read_entry, AppendEvent, ExpectedVersion, Inner, Receipt};

/// A validated, signature-checked event waiting for the writer.
#[derive(Debug)]
pub(crate) struct PreparedEvent {
    pub(super) index: usize,
    pub(super) envelope_bytes: Vec<u8>,
    pub(super) payload_hash: Hash32,
    /// BLAKE3 of the payload alone: the idempotency comparison.
    pub(super) payload_digest: Hash32,
    pub(super) key_id: KeyId,
    pub(super) parsed: ParsedEvent,
    pub(super) expected: ExpectedVersion,
    /// The administrative effect its data asks for, read here (its error is reported where
    /// the writer meets it, after authorisation, as before the split).
    pub(super) admin: Result<AdminEffect, String>,
    /// What the rules' authorisation needs from the body.
    pub(super) facts: EventFacts,
    /// A redaction's target's event type, when the target was committed at preparation.
    pub(super) redact_target_type: Option<String>,
}

/// One append request, prepared.
#[derive(Debug)]
pub(crate) struct PreparedRequest {
    pub(super) tenant: String,
    pub(super) events: Vec<PreparedEvent>,
}

/// Where a request's answer goes: a one-shot channel, so the caller may block on it
/// ([`crate::PendingAppend::wait`]) or await it without a thread of its own.
pub(crate) type Reply = super::oneshot::Sender<Result<Vec<Receipt>, AppendError>>;

/// A request and where to send its answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) events: PreparedRequest,
    pub(crate) reply: Reply,
}

/// Validates every event of a request and checks its signature (batched); runs on the caller's
/// thread so that concurrent appenders verify in parallel.
pub(crate) fn prepare(inner: &Inner, events: Vec<AppendEvent>) -> Result<PreparedRequest, AppendError> {
    let checked = check(inner, events)?;
    let bad = first_bad_signature(&checked.messages, &checked.signatures, &checked.public_keys);
    complete(inner, checked, bad)
}

/// [`prepare`] for an async caller: a request of one event has its signature verified together
/// with those of other single-event requests in flight at the same time ([`super::combine`]);
/// alone, strictly, when there are none.
pub(crate) async fn prepare_async(inner: &Inner, events: Vec<AppendEvent>) -> Result<PreparedRequest, AppendError> {
    let checked = check(inner, events)?;
    let bad = match (&checked.messages[..], &checked.signatures[..], &checked.public_keys[..]) {
        // Found by trying the agent's keys, strictly: verified already.
        ([_], _, _) if checked.verified_by_agent => None,
        ([message], [signature], [key]) => (!inner.combiner.verify(message, signature, key).await).then_some(0),
        _ => first_bad_signature(&checked.messages, &checked.signatures, &checked.public_keys),
    };
    complete(inner, checked, bad)
}

/// A request decoded and its keys resolved, its signatures not yet verified.
struct Checked {
    tenant: Option<String>,
    prepared: Vec<PreparedEvent>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    public_keys: Vec<VerifyingKey>,
    /// A request of one event whose key was found by verifying its signature.
    verified_by_agent: bool,
}

/// Everything before the signatures are verified.
fn check(inner: &Inner, events: Vec<AppendEvent>) -> Result<Checked, AppendError> {
    if events.is_empty() {
        return Err(AppendError::BadRequest("an append needs at least one event".into()));
    }
    if events.len() > inner.config.max_events_per_append {
        return Err(AppendError::TooManyEvents { count: events.len(), limit: inner.config.max_events_per_append });
    }
    let invalid = |index, field, reason: &str| AppendError::Invalid { index, source: InvalidEvent::new(field, reason) };
    let mut tenant: Option<String> = None;
    let mut request_keys: HashMap<KeyId, VerifyingKey> = HashMap::new();
    let mut prepared = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    let mut signatures = Vec::with_capacity(events.len());
    let mut public_keys = Vec::with_capacity(events.len());
    let mut verified_by_agent = false;
    for (index, event) in events.into_iter().enumerate() {
        let mut envelope = event.envelope;
        if envelope.payload.len() > inner.config.max_payload_bytes {
            return Err(AppendError::PayloadTooLarge {
                index,
                size: envelope.payload.len(),
                limit: inner.config.max_payload_bytes,
            });
        }
        if envelope.payload_type != EVENT_PAYLOAD_TYPE {
            return Err(invalid(index, "payloadType", &format!("must be {EVENT_PAYLOAD_TYPE:?}")));
        }
        let [signature] = envelope.signatures.as_slice() else {
            return Err(invalid(index, "signatures", "exactly one signature is required"));
        };
        let sig = Signature::from_slice(&signature.sig)
            .map_err(|_| invalid(index, "signatures.sig", "must be a 64-byte Ed25519 signature"))?;
        let parsed = ParsedEvent::parse(&envelope.payload).map_err(|source| AppendError::Invalid { index, source })?;
        match &tenant {
            None => tenant = Some(parsed.header.tenant.clone()),
            Some(t) if *t != parsed.header.tenant => {
                return Err(AppendError::BadRequest(format!(
                    "event {index} is for tenant {:?}, the request for {t:?}: an atomic append is for one tenant",
                    parsed.header.tenant
                )))
            }
            Some(_) => {}
        }
        // DSSE's keyid is an unauthenticated hint. The ledger's own (the hex SHA-256 of the raw
        // key) selects the key directly; any other hint (empty, upper-case, securesystemslib's
        // default) falls back to the keys registered to the agent the signed body names, and
        // the stored envelope carries the ledger's key id, so the log reads the same either way.
        let hinted = KeyId::from_hex(&signature.keyid)
            .ok()
            .and_then(|key_id| resolve_key(inner, &key_id, &request_keys).map(|key| (key_id, key)));
        let (key_id, public_key) = match hinted {
            Some(found) => found,
            None => {
                verified_by_agent = true;
                let message = envelope.signed_bytes();
                signer_by_agent(inner, &parsed, &message, &sig)?.ok_or_else(|| AppendError::UnknownKey {
                    index,
                    key_id: format!(
                        "{:?} (no key has this id, and no unrevoked key of agent {:?} in tenant {:?} made the \
                         signature)",
                        crate::error::clip(&signature.keyid),
                        crate::error::clip(&parsed.header.actor.agent_id),
                        crate::error::clip(&parsed.header.tenant)
                    ),
                })?
            }
        };
        if envelope.signatures[0].keyid != key_id.to_hex() {
            envelope.signatures[0].keyid = key_id.to_hex();
        }
        if parsed.header.event_type == AGENT_KEY_REGISTERED {
            // A request may register a key and use it in a later event.
            if let Ok(Some(key)) = parsed
                .data_as::<crate::event::AgentKeyRegisteredData>()
                .map(|d| public_key_from_base64(&d.public_key).ok())
            {
                request_keys.insert(KeyId::of(&key), key);
            }
        }
        messages.push(envelope.signed_bytes());
        signatures.push(sig);
        public_keys.push(public_key);
        // Within the encoding's length prefixes by the checks above (one signature, 64-byte
        // sig, canonical keyid, bounded payload); checked anyway, since a cut length would store
        // bytes that decode as something else.
        envelope.check_bounds().map_err(|e| invalid(index, "envelope", &e.to_string()))?;
        let envelope_bytes = envelope.to_bytes();
        prepared.push(PreparedEvent {
            index,
            payload_hash: payload_hash(&envelope_bytes),
            payload_digest: *blake3::hash(&envelope.payload).as_bytes(),
            envelope_bytes,
            key_id,
            parsed,
            expected: event.expected_version,
            admin: Ok(AdminEffect::None),
            facts: EventFacts::default(),
            redact_target_type: None,
        });
    }
    let verified_by_agent = verified_by_agent && prepared.len() == 1;
    Ok(Checked { tenant, prepared, messages, signatures, public_keys, verified_by_agent })
}

/// Everything after: `bad`, the first event whose signature does not verify, refuses the
/// request; else the rules' checks and what the writer needs from each body.
fn complete(inner: &Inner, checked: Checked, bad: Option<usize>) -> Result<PreparedRequest, AppendError> {
    let Checked { tenant, mut prepared, .. } = checked;
    if let Some(index) = bad {
        return Err(AppendError::BadSignature { index, key_id: prepared[index].key_id.to_hex() });
    }
    // The domain schema is checked only for authenticated events: an unknown or forged signer
    // learns nothing about the catalogue from the error.
    if let Some(rules) = &inner.config.rules {
        for event in &mut prepared {
            rules.validate(&event.parsed).map_err(|source| AppendError::Invalid { index: event.index, source })?;
            event.facts = rules.facts(&event.parsed);
        }
    }
    // Everything else the writer needs from a body, read here: the writer thread parses no JSON.
    let tenant = tenant.unwrap_or_default();
    for event in &mut prepared {
        event.admin = admin_intent(&inner.roots, &event.parsed);
        if let Ok(AdminEffect::Redact(target)) = &event.admin {
            event.redact_target_type = committed_event_type(inner, &tenant, *target);
        }
    }
    Ok(PreparedRequest { tenant, events: prepared })
}

/// The event type of a committed, unredacted entry (`None` when it is not committed yet, is
/// redacted, or cannot be read: the writer then decides with what it finds).
fn committed_event_type(inner: &Inner, tenant: &str, seq: u64) -> Option<String> {
    let tid = {
        let committed = inner.committed.read();
        let state = committed.tenants.get(tenant)?;
        if seq >= state.head.size {
            return None;
        }
        state.tid
    };
    let entry = read_entry(inner, tid, seq).ok()?;
    Some(ParsedEvent::parse(&entry.envelope()?.payload).ok()?.header.event_type)
}

/// Registered keys of one agent tried when an envelope's keyid hint names no key; more than
/// this and the hint is required.
const MAX_AGENT_KEYS_TRIED: usize = 8;

/// The key that made `sig` among the unrevoked keys registered in the event's tenant to the
/// agent its signed body names (`None`: none did). Safe because only the signature decides: a
/// forged hint or body gains nothing, and authorisation then runs on the key that verified as
/// for any other event. Bounded ([`MAX_AGENT_KEYS_TRIED`]) so a hint-less request costs at most
/// that many verifications.
fn signer_by_agent(
    inner: &Inner,
    parsed: &ParsedEvent,
    message: &[u8],
    sig: &Signature,
) -> Result<Option<(KeyId, VerifyingKey)>, AppendError> {
    let committed = inner.committed.read();
    let Some(tenant) = committed.tenants.get(&parsed.header.tenant) else { return Ok(None) };
    let mut candidates: Vec<&KeyRecord> =
        tenant.keys.values().filter(|r| r.revoked_at.is_none() && r.agent_id == parsed.header.actor.agent_id).collect();
    if candidates.len() > MAX_AGENT_KEYS_TRIED {
        return Err(AppendError::BadRequest(format!(
            "agent {:?} has {} keys: name the signing key in the envelope's keyid (the lowercase hex SHA-256 of \
             the raw public key)",
            crate::error::clip(&parsed.header.actor.agent_id),
            candidates.len()
        )));
    }
    candidates.sort_by_key(|r| r.registered_at);
    for record in candidates {
        let Ok(key_id) = KeyId::from_hex(&record.key_id) else { continue };
        let Some(key) = committed.public_keys.get(&key_id) else { continue };
        if key.verify_strict(message, sig).is_ok() {
            return Ok(Some((key_id, *key)));
        }
    }
    Ok(None)
}

/// The public key for a key id: a root key, a key of the tenant or of another tenant (so the
/// signature is checked before the tenant is), or one registered earlier in the same request.
fn resolve_key(inner: &Inner, key_id: &KeyId, request_keys: &HashMap<KeyId, VerifyingKey>) -> Option<VerifyingKey> {
    if let Some(key) = inner.roots.root_key(key_id) {
        return Some(key);
    }
    if let Some(key) = request_keys.get(key_id) {
        return Some(*key);
    }
    // Any registered key, of this tenant or another: the signature is checked before the
    // tenant is, so a key used in the wrong tenant is reported as such, not as unknown.
    inner.committed.read().public_keys.get(key_id).copied()
}
