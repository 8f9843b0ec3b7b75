//! The event body every envelope carries, parsed and validated at the door.
//!
//! Only the header fields the ledger itself needs are typed here; `data` is checked to be a
//! JSON object and otherwise left to the governance layer, except for the administrative
//! types (key registry, redaction) whose data the ledger acts on.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{clip, InvalidEvent};
use crate::ids::{AgentId, EventId, EventTypeName, ReleaseId, RoleName, StreamId, TenantId, TraceId};

/// Default limit on a payload's size.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Longest `occurredAt`, in bytes: an RFC 3339 time with nanoseconds and an offset is 35.
pub const MAX_OCCURRED_AT_BYTES: usize = 64;

pub use crate::ids::{MAX_ID_BYTES, MAX_NAME_BYTES, MAX_STREAM_BYTES, MAX_TENANT_BYTES};

/// `AgentKeyRegistered`.
pub const AGENT_KEY_REGISTERED: &str = "AgentKeyRegistered";
/// `AgentKeyRevoked`.
pub const AGENT_KEY_REVOKED: &str = "AgentKeyRevoked";
/// `EntryRedacted`.
pub const ENTRY_REDACTED: &str = "EntryRedacted";
/// `ReleaseEvaluationRequested`: the one non-decision type the ledger key also signs (its
/// own retry triggers).
pub const RELEASE_EVALUATION_REQUESTED: &str = "ReleaseEvaluationRequested";

/// The decision types only the ledger key may sign.
pub const DECISION_TYPES: [&str; 5] =
    ["ReleasePlanned", "ReleaseApproved", "ReleaseDelayed", "ReleaseRejected", "ReleasePublished"];

/// The role that lets a tenant key sign administrative events.
pub const KEY_ADMIN_ROLE: &str = "KeyAdmin";

/// Who may sign an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// Key registry and redaction: the admin key, or a tenant key holding `KeyAdmin`.
    Administrative,
    /// Ledger decisions: the ledger key only.
    Decision,
    /// Everything else: any key allowed the type.
    Ordinary,
}

impl EventClass {
    /// The class of `event_type`.
    pub fn of(event_type: &str) -> Self {
        match event_type {
            AGENT_KEY_REGISTERED | AGENT_KEY_REVOKED | ENTRY_REDACTED => Self::Administrative,
            t if DECISION_TYPES.contains(&t) => Self::Decision,
            _ => Self::Ordinary,
        }
    }
}

/// The author of an event, as the body names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Actor {
    /// The agent or person; must equal the signing key's registered `agentId`.
    pub agent_id: String,
    /// The role the author acts in (checked by the governance layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The typed header of an event body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// The tenant log the event belongs to.
    pub tenant: String,
    /// The stream within the tenant (optimistic concurrency is per stream).
    pub stream: String,
    /// The event type, PascalCase.
    pub event_type: String,
    /// The author's unique id for the event (idempotency key within the tenant).
    pub event_id: String,
    /// When the author says it happened (RFC 3339); informational, never used for ordering.
    pub occurred_at: String,
    /// Correlation id across agents.
    pub trace_id: Option<String>,
    /// The release the event is about.
    pub release_id: Option<String>,
    /// The author.
    pub actor: Actor,
}

/// A parsed, validated event body.
#[derive(Debug, Clone)]
pub struct ParsedEvent {
    /// The header fields.
    pub header: EventHeader,
    /// The raw `data` object (validated to be a JSON object).
    pub data: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBody {
    tenant: Option<String>,
    stream: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    event_id: Option<String>,
    occurred_at: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    release_id: Option<String>,
    actor: Option<Actor>,
    data: Option<Box<RawValue>>,
}

/// Validates a tenant id: [`TenantId::check`], kept under this name for the benches.
pub fn validate_tenant(tenant: &str) -> Result<(), InvalidEvent> {
    TenantId::check(tenant)
}

impl ParsedEvent {
    /// Parses and validates an event body: every required field present, identifiers within
    /// their charset and length, `occurredAt` RFC 3339, `data` an object, no unknown fields.
    pub fn parse(payload: &[u8]) -> Result<Self, InvalidEvent> {
        // Valid UTF-8 is checked once for the whole body, so serde_json reads it as a `str` and
        // checks no string again (its slice reader validates each string and the raw `data`
        // separately). A body that is not UTF-8 is given to the slice reader, whose error names
        // where: the same error either way.
        let parsed = match std::str::from_utf8(payload) {
            Ok(text) => serde_json::from_str::<RawBody>(text),
            Err(_) => serde_json::from_slice::<RawBody>(payload),
        };
        let raw = parsed.map_err(|e| InvalidEvent::new("payload", format!("malformed JSON: {e}")))?;
        fn required<T>(field: &'static str, value: Option<T>) -> Result<T, InvalidEvent> {
            value.ok_or_else(|| InvalidEvent::new(field, "required field is missing"))
        }
        let tenant = required("tenant", raw.tenant)?;
        let stream = required("stream", raw.stream)?;
        let event_type = required("type", raw.event_type)?;
        let event_id = required("eventId", raw.event_id)?;
        let occurred_at = required("occurredAt", raw.occurred_at)?;
        let actor = required("actor", raw.actor)?;
        let data = required("data", raw.data)?;

        TenantId::check(&tenant)?;
        StreamId::check(&stream)?;
        EventTypeName::check(&event_type)?;
        EventId::check(&event_id)?;
        if occurred_at.len() > MAX_OCCURRED_AT_BYTES {
            return Err(InvalidEvent::new(
                "occurredAt",
                format!("longer than {MAX_OCCURRED_AT_BYTES} bytes ({})", occurred_at.len()),
            ));
        }
        chrono::DateTime::parse_from_rfc3339(&occurred_at)
            .map_err(|e| InvalidEvent::new("occurredAt", format!("{:?} is not RFC 3339: {e}", clip(&occurred_at))))?;
        if let Some(trace_id) = &raw.trace_id {
            TraceId::check(trace_id)?;
        }
        if let Some(release_id) = &raw.release_id {
            ReleaseId::check(release_id)?;
        }
        AgentId::check(&actor.agent_id)?;
        if let Some(role) = &actor.role {
            RoleName::check_as("actor.role", role)?;
        }
        if !data.get().trim_start().starts_with('{') {
            return Err(InvalidEvent::new("data", "must be a JSON object"));
        }
        Ok(Self {
            header: EventHeader {
                tenant,
                stream,
                event_type,
                event_id,
                occurred_at,
                trace_id: raw.trace_id,
                release_id: raw.release_id,
                actor,
            },
            data,
        })
    }

    /// The class of this event's type.
    pub fn class(&self) -> EventClass {
        EventClass::of(&self.header.event_type)
    }

    /// Parses `data` as `T`, naming the type in the error.
    pub fn data_as<T: for<'de> Deserialize<'de>>(&self) -> Result<T, InvalidEvent> {
        serde_json::from_str(self.data.get())
            .map_err(|e| InvalidEvent::new("data", format!("bad {} data: {e}", self.header.event_type)))
    }
}

/// `AgentKeyRegistered.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentKeyRegisteredData {
    /// The agent the key belongs to; events it signs must name this `actor.agentId`.
    pub agent_id: String,
    /// Raw 32-byte Ed25519 public key, base64.
    pub public_key: String,
    /// Roles the key holds (`KeyAdmin` lets it sign administrative events).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Event types the key may sign; empty = any ordinary type.
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// `AgentKeyRevoked.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentKeyRevokedData {
    /// Hex key id of the key to revoke.
    pub key_id: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `EntryRedacted.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntryRedactedData {
    /// The seq whose payload bytes are erased.
    pub seq: u64,
    /// Why (retention, erasure request, …).
    #[serde(default)]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(overrides: &str) -> Vec<u8> {
        let mut value: serde_json::Value = serde_json::json!({
            "tenant": "vetclinic-001", "stream": "release/release-001731", "type": "TestsPassed",
            "eventId": "evt-1", "occurredAt": "2025-05-23T09:32:00Z",
            "actor": {"agentId": "qa-runner"}, "data": {}
        });
        let patch: serde_json::Value = serde_json::from_str(overrides).unwrap();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                value.as_object_mut().unwrap().remove(k);
            } else {
                value[k] = v.clone();
            }
        }
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn a_valid_body_parses() {
        let parsed = ParsedEvent::parse(&body("{}")).unwrap();
        assert_eq!(parsed.header.tenant, "vetclinic-001");
        assert_eq!(parsed.class(), EventClass::Ordinary);
    }

    #[test]
    fn each_violation_names_its_field() {
        for (patch, field) in [
            (r#"{"tenant": null}"#, "tenant"),
            (r#"{"data": null}"#, "data"),
            (r#"{"data": [1]}"#, "data"),
            (r#"{"tenant": "bad tenant"}"#, "tenant"),
            (r#"{"type": "lowercase"}"#, "type"),
            (r#"{"eventId": ""}"#, "eventId"),
            (r#"{"occurredAt": "yesterday"}"#, "occurredAt"),
            (r#"{"actor": {"agentId": "a b"}}"#, "actor.agentId"),
            (r#"{"extra": 1}"#, "payload"),
        ] {
            let err = ParsedEvent::parse(&body(patch)).unwrap_err();
            assert_eq!(err.field, field, "{patch}: {err}");
        }
        assert_eq!(ParsedEvent::parse(b"{not json").unwrap_err().field, "payload");
        let long = format!(r#"{{"eventId": "{}"}}"#, "a".repeat(129));
        assert_eq!(ParsedEvent::parse(&body(&long)).unwrap_err().field, "eventId");
        // A well-formed time padded past the bound, and a long malformed one: both refused by
        // length, before the parser quotes them.
        let padded = format!(r#"{{"occurredAt": "2025-05-23T09:32:00.{}Z"}}"#, "0".repeat(MAX_OCCURRED_AT_BYTES));
        let err = ParsedEvent::parse(&body(&padded)).unwrap_err();
        assert_eq!(err.field, "occurredAt");
        assert!(err.reason.starts_with("longer than 64 bytes"), "{err}");
        let junk = format!(r#"{{"occurredAt": "{}"}}"#, "x".repeat(100_000));
        assert!(ParsedEvent::parse(&body(&junk)).unwrap_err().to_string().len() < 100);
    }

    /// The body is read as a `str` when it is UTF-8: what it parses to, and every error, is
    /// what serde_json's slice reader makes of the same bytes (the reader the door used until
    /// issue 20's twenty-ninth session). Bodies that are not UTF-8 (in a string, in `data`,
    /// outside any string) keep the slice reader's error, which says where.
    #[test]
    fn the_str_reader_and_the_slice_reader_agree() {
        let by_slice = |payload: &[u8]| -> Result<String, String> {
            serde_json::from_slice::<RawBody>(payload)
                .map(|raw| {
                    format!("{:?} {:?} {:?}", raw.event_id, raw.release_id, raw.data.map(|d| d.get().to_owned()))
                })
                .map_err(|e| format!("malformed JSON: {e}"))
        };
        let valid =
            String::from_utf8(body(r#"{"releaseId": "r-1", "data": {"a": "é\"\n", "b": [1.5, null]}}"#)).unwrap();
        let mut cases: Vec<Vec<u8>> = vec![valid.clone().into_bytes(), b"{not json".to_vec(), b"".to_vec()];
        // Invalid UTF-8 at several places: inside a header string, inside `data`, between tokens.
        for marker in ["evt-1", "\"a\"", ","] {
            let at = valid.find(marker).unwrap() + 1;
            for bad in [&[0xff_u8][..], &[0xc3], &[0xed, 0xa0, 0x80]] {
                let mut bytes = valid.as_bytes().to_vec();
                bytes.splice(at..at, bad.iter().copied());
                cases.push(bytes);
            }
        }
        for payload in &cases {
            let parsed = ParsedEvent::parse(payload);
            let expected = by_slice(payload);
            match (&parsed, &expected) {
                (Ok(p), Ok(e)) => assert_eq!(
                    &format!("{:?} {:?} {:?}", Some(&p.header.event_id), p.header.release_id, Some(p.data.get())),
                    e
                ),
                (Err(p), Err(e)) => assert_eq!(&p.reason, e, "{:?}", String::from_utf8_lossy(payload)),
                _ => panic!("{:?}: {parsed:?} against {expected:?}", String::from_utf8_lossy(payload)),
            }
        }
        assert!(cases.iter().filter(|c| std::str::from_utf8(c).is_err()).count() >= 9);
    }

    #[test]
    fn classes() {
        assert_eq!(EventClass::of("AgentKeyRegistered"), EventClass::Administrative);
        assert_eq!(EventClass::of("ReleaseApproved"), EventClass::Decision);
        assert_eq!(EventClass::of("ReleaseEvaluationRequested"), EventClass::Ordinary);
    }
}
