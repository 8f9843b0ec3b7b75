//! Step 1 of an append, on the caller's thread: everything that needs no group state.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::envelope::{Envelope, EVENT_PAYLOAD_TYPE};
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
    /// A request queued before its signatures were verified: the writer writes nothing of it
    /// until this says they did ([`super::verdict`]).
    pub(crate) verdict: Option<super::verdict::Verdict>,
}

/// Validates every event of a request and checks its signature (batched); runs on the caller's
/// thread so that concurrent appenders verify in parallel. A large request, when no other is
/// being prepared, is checked and verified in one piece per core ([`check_in_pieces`]).
pub(crate) fn prepare(inner: &Inner, events: Vec<AppendEvent>) -> Result<PreparedRequest, AppendError> {
    let preparing = Preparing::start(inner);
    check_request(inner, &events)?;
    let (checked, bad) = if preparing.alone && in_pieces(&events) {
        check_in_pieces(inner, events)?
    } else {
        let checked = check(inner, events)?;
        // Split across cores only when alone, as in `prepare_async`.
        let bad = if preparing.alone {
            first_bad_signature(&checked.messages, &checked.signatures, &checked.public_keys)
        } else {
            crate::signatures::first_bad_signature_here(&checked.messages, &checked.signatures, &checked.public_keys)
        };
        (checked, bad)
    };
    complete(inner, checked, bad)
}

/// [`prepare`] for an async caller: a request of one event has its signature verified together
/// with those of other single-event requests in flight at the same time ([`super::combine`]);
/// alone, strictly, when there are none. A large request is checked in pieces, as by
/// [`prepare`] (its thread waits for the pieces, as it waited for a split verification).
///
/// A request that is the only one being prepared, on a machine with a core to spare, is
/// returned [`Prepared::Unverified`] instead: checked in everything but its signatures (which
/// [`Verification::run`] then verifies), so that its caller can queue it first and the writer
/// stage its group meanwhile ([`super::verdict`]). A check that fails is reported only after
/// the signatures verify, as when they are verified first: a forged request learns nothing but
/// `BadSignature`.
pub(crate) async fn prepare_async(inner: &Inner, events: Vec<AppendEvent>) -> Result<Prepared<'_>, AppendError> {
    let preparing = Preparing::start(inner);
    check_request(inner, &events)?;
    if preparing.alone && in_pieces(&events) {
        let (checked, bad) = check_in_pieces(inner, events)?;
        return complete(inner, checked, bad).map(Prepared::Verified);
    }
    let mut checked = check(inner, events)?;
    if preparing.alone && !checked.verified_by_agent && crate::signatures::cores() > 1 {
        let verification = Verification {
            key_ids: checked.prepared.iter().map(|event| event.key_id).collect(),
            messages: std::mem::take(&mut checked.messages),
            signatures: std::mem::take(&mut checked.signatures),
            public_keys: std::mem::take(&mut checked.public_keys),
            _preparing: preparing,
        };
        return match complete(inner, checked, None) {
            Ok(request) => Ok(Prepared::Unverified(request, verification)),
            Err(error) => {
                verification.run(inner).await?;
                Err(error)
            }
        };
    }
    let bad = match (&checked.messages[..], &checked.signatures[..], &checked.public_keys[..]) {
        // Found by trying the agent's keys, strictly: verified already.
        ([_], _, _) if checked.verified_by_agent => None,
        // Split across cores only when alone: with other requests being prepared the cores are
        // busy with them, and a split from a runtime thread parks it while rayon's threads wake
        // (BENCHMARKS.md, "Issue 20, ninth session": 2-8 % less server CPU per event at 16 x 64).
        _ => {
            let split = preparing.alone;
            bad_signature(inner, &checked.messages, &checked.signatures, &checked.public_keys, split).await
        }
    };
    complete(inner, checked, bad).map(Prepared::Verified)
}

/// What [`prepare_async`] gives.
pub(crate) enum Prepared<'a> {
    /// Every check made, signatures included.
    Verified(PreparedRequest),
    /// Every check made but the signatures': the caller runs the [`Verification`] and acts on
    /// nothing of the request before it passes.
    Unverified(PreparedRequest, Verification<'a>),
}

/// The signatures of a request prepared [`Prepared::Unverified`], to be verified.
pub(crate) struct Verification<'a> {
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    public_keys: Vec<VerifyingKey>,
    key_ids: Vec<KeyId>,
    /// Still counted as being prepared until verified.
    _preparing: Preparing<'a>,
}

impl Verification<'_> {
    /// Verifies the signatures as [`prepare_async`] would have: `BadSignature` naming the first
    /// that fails.
    pub(crate) async fn run(self, inner: &Inner) -> Result<(), AppendError> {
        match bad_signature(inner, &self.messages, &self.signatures, &self.public_keys, true).await {
            None => Ok(()),
            Some(index) => Err(AppendError::BadSignature { index, key_id: self.key_ids[index].to_hex() }),
        }
    }
}

/// The index of the first signature that does not verify: a single one with those of other
/// single-event requests ([`super::combine`]), several in one batch (a large one split across
/// cores when `split`, else on this thread).
async fn bad_signature(
    inner: &Inner,
    messages: &[Vec<u8>],
    signatures: &[Signature],
    public_keys: &[VerifyingKey],
    split: bool,
) -> Option<usize> {
    match (messages, signatures, public_keys) {
        ([message], [signature], [key]) => (!inner.combiner.verify(message, signature, key).await).then_some(0),
        _ if split => first_bad_signature(messages, signatures, public_keys),
        _ => crate::signatures::first_bad_signature_here(messages, signatures, public_keys),
    }
}

/// A request decoded and its keys resolved, its signatures not yet verified.
struct Checked {
    tenant: Option<String>,
    prepared: Vec<PreparedEvent>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    public_keys: Vec<VerifyingKey>,
    /// Each event's [`BodyChecks`], when computed ahead ([`check_in_pieces`]).
    bodies: Vec<Option<BodyChecks>>,
    /// A request of one event whose key was found by verifying its signature.
    verified_by_agent: bool,
}

impl Checked {
    fn with_capacity(events: usize) -> Self {
        Self {
            tenant: None,
            prepared: Vec::with_capacity(events),
            messages: Vec::with_capacity(events),
            signatures: Vec::with_capacity(events),
            public_keys: Vec::with_capacity(events),
            bodies: Vec::with_capacity(events),
            verified_by_agent: false,
        }
    }

    fn push(
        &mut self,
        decoded: Decoded,
        key_id: KeyId,
        public_key: VerifyingKey,
        encoded: Encoded,
        body: Option<BodyChecks>,
    ) {
        let Decoded { index, sig, parsed, expected, .. } = decoded;
        self.bodies.push(body);
        self.messages.push(encoded.message);
        self.signatures.push(sig);
        self.public_keys.push(public_key);
        self.prepared.push(PreparedEvent {
            index,
            payload_hash: encoded.payload_hash,
            payload_digest: encoded.payload_digest,
            envelope_bytes: encoded.envelope_bytes,
            key_id,
            parsed,
            expected,
            admin: Ok(AdminEffect::None),
            facts: EventFacts::default(),
            redact_target_type: None,
        });
    }
}

/// What is checked of a request before any of its events.
fn check_request(inner: &Inner, events: &[AppendEvent]) -> Result<(), AppendError> {
    if events.is_empty() {
        return Err(AppendError::BadRequest("an append needs at least one event".into()));
    }
    if events.len() > inner.config.max_events_per_append {
        return Err(AppendError::TooManyEvents { count: events.len(), limit: inner.config.max_events_per_append });
    }
    Ok(())
}

/// Everything before the signatures are verified, one event after the other.
fn check(inner: &Inner, events: Vec<AppendEvent>) -> Result<Checked, AppendError> {
    let mut checked = Checked::with_capacity(events.len());
    let mut resolver = Resolver::default();
    for (index, event) in events.into_iter().enumerate() {
        let mut decoded = decode(inner, index, event)?;
        let (key_id, public_key) = resolver.resolve(inner, &mut decoded)?;
        let encoded = encode(&decoded)?;
        checked.push(decoded, key_id, public_key, encoded, None);
    }
    checked.verified_by_agent = resolver.verified_by_agent && checked.prepared.len() == 1;
    checked.tenant = resolver.tenant;
    Ok(checked)
}

/// Whether a request is checked and verified in pieces ([`check_in_pieces`]), when it is the
/// only one being prepared: as large as a batch that would be split across cores anyway, on a
/// machine with more than one.
fn in_pieces(events: &[AppendEvent]) -> bool {
    events.len() >= crate::signatures::SPLIT_MIN && crate::signatures::cores() >= 2
}

/// A request counted in `Inner::preparing` while it is prepared. Pieces only pay where cores
/// would otherwise idle: with other requests in preparation the cores are busy with them, and
/// handing a request's checks to other threads only adds hand-offs (BENCHMARKS.md, "Issue 20,
/// sixth session"). The same count decides whether a large batch's verification is split
/// across cores ("ninth session"), and on the async path ([`prepare_async`]) whether a request
/// is queued before its signatures are verified ([`super::verdict`]). The count is a hint,
/// read once, never a correctness condition: every path gives the same answers.
struct Preparing<'a> {
    count: &'a std::sync::atomic::AtomicUsize,
    /// No other request was being prepared when this one started.
    alone: bool,
}

impl<'a> Preparing<'a> {
    fn start(inner: &'a Inner) -> Self {
        let others = inner.preparing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { count: &inner.preparing, alone: others == 0 }
    }
}

impl Drop for Preparing<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// One event as far as it can be checked without the events before it, with what the
/// piece computed ahead of the request's ordered pass.
struct Speculated {
    decoded: Decoded,
    /// The key the envelope's keyid names, among the keys committed or trusted as roots.
    hinted: Option<(KeyId, VerifyingKey)>,
    /// [`encode`] of the envelope as received (`None`: it failed; the ordered pass reports it).
    encoded: Option<(String, Encoded)>,
    /// [`body_checks`] of the event.
    body: BodyChecks,
}

/// A piece's events in order, up to and including its first error, and whether all of its
/// signatures verified, as one batch, with the keys their keyids name.
struct Piece {
    events: Vec<Result<Speculated, AppendError>>,
    verified: bool,
}

/// [`check`] and the signatures' verification, the costly parts in one piece per core: each
/// piece decodes, hashes and encodes its events, reads their bodies' [`BodyChecks`] and
/// batch-verifies their signatures with the keys their keyids name; then one ordered pass over the results makes every decision
/// [`check`] makes, in the same order (so a request gets the same answer either way: the
/// error of its first failing event, a check before any signature), and reuses a piece's
/// work only where the pass arrived at the same key and keyid. A key registered earlier in
/// the same request, a keyid that names no key, or a failed batch is settled one by one, as
/// [`check`] and [`first_bad_signature`] settle it. The ordered pass is cheap: lookups, no
/// hashing or parsing.
fn check_in_pieces(inner: &Inner, events: Vec<AppendEvent>) -> Result<(Checked, Option<usize>), AppendError> {
    use rayon::prelude::*;

    // As `signatures::first_bad_signature` splits a batch: one piece per core, each of at least
    // half of SPLIT_MIN signatures (fewer only add transcript and setup work).
    let total = events.len();
    let count = crate::signatures::cores().min(total / (crate::signatures::SPLIT_MIN / 2)).max(1);
    let size = total.div_ceil(count);
    let mut pieces = Vec::new();
    let mut events = events.into_iter().enumerate();
    loop {
        let piece: Vec<(usize, AppendEvent)> = events.by_ref().take(size).collect();
        if piece.is_empty() {
            break;
        }
        pieces.push(piece);
    }
    let pieces: Vec<Piece> = pieces.into_par_iter().map(|piece| speculate(inner, piece)).collect();
    let mut checked = Checked::with_capacity(total);
    let mut resolver = Resolver::default();
    let mut verified = pieces.iter().all(|piece| piece.verified);
    let mut keys_as_batched = true;
    for speculated in pieces.into_iter().flat_map(|piece| piece.events) {
        let Speculated { mut decoded, hinted, encoded, body } = speculated?;
        let (key_id, public_key) = resolver.resolve(inner, &mut decoded)?;
        if hinted != Some((key_id, public_key)) {
            keys_as_batched = false;
            verified = false;
        }
        let encoded = match encoded {
            Some((keyid, encoded)) if keyid == decoded.envelope.signatures[0].keyid => encoded,
            _ => encode(&decoded)?,
        };
        checked.push(decoded, key_id, public_key, encoded, Some(body));
    }
    checked.tenant = resolver.tenant;
    let bad = if verified {
        None
    } else if keys_as_batched {
        // A piece's batch failed with the very keys settled here: no need to batch again.
        crate::signatures::first_bad_strictly(&checked.messages, &checked.signatures, &checked.public_keys)
    } else {
        first_bad_signature(&checked.messages, &checked.signatures, &checked.public_keys)
    };
    Ok((checked, bad))
}

/// One piece of [`check_in_pieces`], on a core of its own.
fn speculate(inner: &Inner, piece: Vec<(usize, AppendEvent)>) -> Piece {
    let no_request_keys = HashMap::new();
    let mut events = Vec::with_capacity(piece.len());
    for (index, event) in piece {
        let decoded = match decode(inner, index, event) {
            Ok(decoded) => decoded,
            Err(error) => {
                events.push(Err(error));
                break;
            }
        };
        let hinted =
            decoded.keyid.and_then(|key_id| resolve_key(inner, &key_id, &no_request_keys).map(|key| (key_id, key)));
        let encoded = encode(&decoded).ok().map(|encoded| (decoded.envelope.signatures[0].keyid.clone(), encoded));
        // The body's checks too, while cores are spare; the ordered pass reports their errors
        // only where `complete` would (after every signature verified, in event order).
        let body = body_checks(inner, &decoded.parsed);
        events.push(Ok(Speculated { decoded, hinted, encoded, body }));
    }
    let (mut messages, mut signatures, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for event in &events {
        let Ok(Speculated { decoded, hinted: Some((_, key)), encoded: Some((_, encoded)), .. }) = event else {
            return Piece { events, verified: false };
        };
        messages.push(encoded.message.as_slice());
        signatures.push(decoded.sig);
        keys.push(*key);
    }
    let verified = crate::signatures::batch_verifies(&messages, &signatures, &keys);
    Piece { events, verified }
}

/// One event after the checks that need no other event.
struct Decoded {
    index: usize,
    envelope: Envelope,
    sig: Signature,
    parsed: ParsedEvent,
    expected: ExpectedVersion,
    /// The envelope's keyid as a ledger key id, when it is one (lowercase hex, the only form
    /// [`KeyId::from_hex`] takes, so it equals a key id exactly when its text is that id's).
    keyid: Option<KeyId>,
}

/// An event's own checks, in the order their errors are reported: size, payload type, one
/// signature of 64 bytes, the body.
fn decode(inner: &Inner, index: usize, event: AppendEvent) -> Result<Decoded, AppendError> {
    let invalid = |field, reason: &str| AppendError::Invalid { index, source: InvalidEvent::new(field, reason) };
    let envelope = event.envelope;
    if envelope.payload.len() > inner.config.max_payload_bytes {
        return Err(AppendError::PayloadTooLarge {
            index,
            size: envelope.payload.len(),
            limit: inner.config.max_payload_bytes,
        });
    }
    if envelope.payload_type != EVENT_PAYLOAD_TYPE {
        return Err(invalid("payloadType", &format!("must be {EVENT_PAYLOAD_TYPE:?}")));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(invalid("signatures", "exactly one signature is required"));
    };
    let sig = Signature::from_slice(&signature.sig)
        .map_err(|_| invalid("signatures.sig", "must be a 64-byte Ed25519 signature"))?;
    let parsed = ParsedEvent::parse(&envelope.payload).map_err(|source| AppendError::Invalid { index, source })?;
    let keyid = KeyId::from_hex(&signature.keyid).ok();
    Ok(Decoded { index, envelope, sig, parsed, expected: event.expected_version, keyid })
}

/// The checks of an event that depend on the events before it in its request: one tenant for
/// all, and keys registered earlier in the request.
#[derive(Default)]
struct Resolver {
    tenant: Option<String>,
    request_keys: HashMap<KeyId, VerifyingKey>,
    /// Some event's key was found by trying its agent's keys.
    verified_by_agent: bool,
}

impl Resolver {
    /// The event's tenant checked against the request's, and its signing key: the keyid's, or
    /// else the agent's key that made the signature. The envelope's keyid becomes the ledger's
    /// key id.
    fn resolve(&mut self, inner: &Inner, decoded: &mut Decoded) -> Result<(KeyId, VerifyingKey), AppendError> {
        let (index, parsed) = (decoded.index, &decoded.parsed);
        match &self.tenant {
            None => self.tenant = Some(parsed.header.tenant.clone()),
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
        let hinted =
            decoded.keyid.and_then(|key_id| resolve_key(inner, &key_id, &self.request_keys).map(|key| (key_id, key)));
        let (key_id, public_key) = match hinted {
            Some(found) => found,
            None => {
                self.verified_by_agent = true;
                let message = decoded.envelope.signed_bytes();
                signer_by_agent(inner, parsed, &message, &decoded.sig)?.ok_or_else(|| AppendError::UnknownKey {
                    index,
                    key_id: format!(
                        "{:?} (no key has this id, and no unrevoked key of agent {:?} in tenant {:?} made the \
                         signature)",
                        crate::error::clip(&decoded.envelope.signatures[0].keyid),
                        crate::error::clip(&parsed.header.actor.agent_id),
                        crate::error::clip(&parsed.header.tenant)
                    ),
                })?
            }
        };
        if decoded.keyid != Some(key_id) {
            decoded.envelope.signatures[0].keyid = key_id.to_hex();
            decoded.keyid = Some(key_id);
        }
        if parsed.header.event_type == AGENT_KEY_REGISTERED {
            // A request may register a key and use it in a later event.
            if let Ok(Some(key)) = parsed
                .data_as::<crate::event::AgentKeyRegisteredData>()
                .map(|d| public_key_from_base64(&d.public_key).ok())
            {
                self.request_keys.insert(KeyId::of(&key), key);
            }
        }
        Ok((key_id, public_key))
    }
}

/// What is signed, and what is stored, of an event.
struct Encoded {
    message: Vec<u8>,
    envelope_bytes: Vec<u8>,
    payload_hash: Hash32,
    payload_digest: Hash32,
}

/// The signed bytes, the storage encoding and the hashes of an event's envelope.
fn encode(decoded: &Decoded) -> Result<Encoded, AppendError> {
    let envelope = &decoded.envelope;
    // Within the encoding's length prefixes by the checks above (one signature, 64-byte sig,
    // canonical keyid, bounded payload); checked anyway, since a cut length would store bytes
    // that decode as something else.
    envelope.check_bounds().map_err(|e| AppendError::Invalid {
        index: decoded.index,
        source: InvalidEvent::new("envelope", e.to_string()),
    })?;
    let envelope_bytes = envelope.to_bytes();
    Ok(Encoded {
        message: envelope.signed_bytes(),
        payload_hash: payload_hash(&envelope_bytes),
        payload_digest: *blake3::hash(&envelope.payload).as_bytes(),
        envelope_bytes,
    })
}

/// The checks and readings of an event's body that depend on nothing but the body: the rules'
/// schema check and facts, and the administrative effect it asks for. Computed ahead in a piece
/// ([`speculate`]) or by [`complete`]; acted on only by [`complete`], after the signatures.
struct BodyChecks {
    valid: Result<(), InvalidEvent>,
    facts: EventFacts,
    admin: Result<AdminEffect, String>,
}

fn body_checks(inner: &Inner, parsed: &ParsedEvent) -> BodyChecks {
    let (valid, facts) = match &inner.config.rules {
        Some(rules) => (rules.validate(parsed), rules.facts(parsed)),
        None => (Ok(()), EventFacts::default()),
    };
    BodyChecks { valid, facts, admin: admin_intent(&inner.roots, parsed) }
}

/// Everything after: `bad`, the first event whose signature does not verify, refuses the
/// request; else the rules' checks and what the writer needs from each body.
fn complete(inner: &Inner, checked: Checked, bad: Option<usize>) -> Result<PreparedRequest, AppendError> {
    let Checked { tenant, mut prepared, bodies, .. } = checked;
    if let Some(index) = bad {
        return Err(AppendError::BadSignature { index, key_id: prepared[index].key_id.to_hex() });
    }
    // The domain schema is checked only for authenticated events: an unknown or forged signer
    // learns nothing about the catalogue from the error. Everything else the writer needs from
    // a body is read here too: the writer thread parses no JSON.
    for (event, body) in prepared.iter_mut().zip(bodies) {
        let BodyChecks { valid, facts, admin } = body.unwrap_or_else(|| body_checks(inner, &event.parsed));
        valid.map_err(|source| AppendError::Invalid { index: event.index, source })?;
        event.facts = facts;
        event.admin = admin;
    }
    let tenant = tenant.unwrap_or_default();
    for event in &mut prepared {
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
