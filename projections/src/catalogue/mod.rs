//! The event catalogue: every type the ledger accepts, the schema of its `data`, and who may
//! sign it beyond the key registry's rules.
//!
//! [`Catalogue`] is plugged into the store as its [`EventRules`], so an unknown type or bad
//! `data` is refused with `INVALID_ARGUMENT` (and an approval for a role the signing key does
//! not hold with `PERMISSION_DENIED`) before anything is stored. The projection worker parses
//! the same structs with [`GovEvent::parse`], so what was accepted is exactly what is evaluated.
//!
//! Every schema is strict (`deny_unknown_fields`): a misspelt field is an error, not a silently
//! ignored gate input. Signal types carry an optional free-text `notes` field for whatever an
//! agent wants to attach (report links, logs).

use std::collections::BTreeSet;

use ledger::clip;
use ledger::error::InvalidEvent;
use ledger::event::{AgentKeyRegisteredData, AgentKeyRevokedData, EntryRedactedData, ParsedEvent};
use ledger::ids::{AgentId, CatalogueName, Environment, FreezeId, ModuleName, RoleName};
use ledger::{EventFacts, EventRules, KeyRecord, Signer};
use serde::Deserialize;

use crate::decision::DecisionData;
use crate::freeze::{parse_rfc3339_ns, ChangeFreezeDeclaredData};
use crate::policy::{check_evidence_kind, PolicyUpdatedData};

/// The role a key must hold to sign `FreezeOverrideGranted`.
pub const STUDIO_ADMIN_ROLE: &str = "StudioAdmin";

/// Event id prefixes only the ledger key may use (see [`crate::decision::decision_event_id`]).
pub const LEDGER_EVENT_ID_PREFIXES: &[&str] = &["decision:", "retry:"];

/// Longest free-text field (comments, reasons, justifications, details), in bytes.
pub const MAX_TEXT_BYTES: usize = 4096;

/// Longest `notes` of a signal (logs, report excerpts), in bytes; the payload limit (64 KiB by
/// default) bounds the whole body.
pub const MAX_NOTES_BYTES: usize = 60 * 1024;

/// Longest name (modules, versions, environments, suites, freeze ids, rules), in bytes.
pub const MAX_NAME_BYTES: usize = ledger::ids::MAX_CATALOGUE_NAME_BYTES;

mod data;

pub use crate::event_type::EventType;
pub use data::*;

/// A validated event's typed `data`.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum GovData {
    Intent(IntentData),
    EvaluationRequested(EvaluationRequestedData),
    Tests(TestsData),
    Coverage(CoverageData),
    Bdd(BddData),
    Security(SecurityData),
    Violation(ViolationData),
    EvidenceAttached(Box<EvidenceAttachedData>),
    PipelineReady(PipelineReadyData),
    ApprovalGranted(ApprovalGrantedData),
    ApprovalRejected(ApprovalRejectedData),
    FreezeOverride(FreezeOverrideData),
    Policy(Box<PolicyUpdatedData>),
    FreezeDeclared(ChangeFreezeDeclaredData),
    FreezeLifted(FreezeLiftedData),
    EvidenceInvalidated(EvidenceInvalidatedData),
    KeyRegistered(AgentKeyRegisteredData),
    KeyRevoked(AgentKeyRevokedData),
    Redacted(EntryRedactedData),
    Decision(Box<DecisionData>),
    Deployment(DeploymentData),
}

/// A parsed, schema-checked governance event.
#[derive(Debug, Clone)]
pub struct GovEvent {
    /// Its type.
    pub event_type: EventType,
    /// The body's header.
    pub header: ledger::EventHeader,
    /// Its typed data.
    pub data: GovData,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidEvent {
    InvalidEvent::new(field, reason)
}

fn check_text(field: &'static str, value: &str) -> Result<(), InvalidEvent> {
    if value.len() > MAX_TEXT_BYTES {
        return Err(invalid(field, format!("longer than {MAX_TEXT_BYTES} bytes ({})", value.len())));
    }
    Ok(())
}

fn check_optional_text(field: &'static str, value: &Option<String>) -> Result<(), InvalidEvent> {
    value.as_deref().map_or(Ok(()), |v| check_text(field, v))
}

fn check_notes(notes: &Option<String>) -> Result<(), InvalidEvent> {
    match notes {
        // Notes may be long (logs); the payload limit bounds them.
        Some(n) if n.len() > MAX_NOTES_BYTES => {
            Err(invalid("data.notes", format!("longer than {MAX_NOTES_BYTES} bytes ({})", n.len())))
        }
        _ => Ok(()),
    }
}

fn data<T: for<'de> Deserialize<'de>>(event: &ParsedEvent) -> Result<T, InvalidEvent> {
    serde_json::from_str(event.data.get())
        .map_err(|e| invalid("data", format!("bad {} data: {e}", event.header.event_type)))
}

impl GovEvent {
    /// Parses and validates an event body's type and `data` against the catalogue.
    pub fn parse(event: &ParsedEvent) -> Result<Self, InvalidEvent> {
        let (event_type, data) = Self::parse_data(event)?;
        Ok(Self { event_type, header: event.header.clone(), data })
    }

    /// [`GovEvent::parse`] without the copy of the header: the type and typed `data` (a
    /// caller holding the [`ParsedEvent`] builds the [`GovEvent`] by moving its header in).
    pub fn parse_data(event: &ParsedEvent) -> Result<(EventType, GovData), InvalidEvent> {
        let header = &event.header;
        let event_type = EventType::parse(&header.event_type).ok_or_else(|| {
            invalid(
                "type",
                format!("{:?} is not in the event catalogue (see the README's event table)", clip(&header.event_type)),
            )
        })?;
        if event_type.needs_release() && header.release_id.is_none() {
            return Err(invalid("releaseId", format!("{event_type} events must name their release")));
        }
        let gov = match event_type {
            EventType::ReleaseIntentDeclared => {
                let d: IntentData = data(event)?;
                Environment::check_as("data.environment", &d.environment)?;
                if d.modules.is_empty() {
                    return Err(invalid("data.modules", "a release ships at least one module"));
                }
                let mut seen = BTreeSet::new();
                for m in &d.modules {
                    ModuleName::check_as("data.modules.name", &m.name)?;
                    CatalogueName::check_as("data.modules.version", &m.version)?;
                    if let Some(digest) = &m.digest {
                        data::check_digest(digest).map_err(|e| invalid("data.modules.digest", e))?;
                    }
                    if !seen.insert(&m.name) {
                        return Err(invalid("data.modules", format!("module {:?} is listed twice", clip(&m.name))));
                    }
                }
                if let Some(p) = &d.project_id {
                    CatalogueName::check_as("data.projectId", p)?;
                }
                check_optional_text("data.triggeredBy", &d.triggered_by)?;
                GovData::Intent(d)
            }
            EventType::ReleaseEvaluationRequested => {
                let d: EvaluationRequestedData = data(event)?;
                check_optional_text("data.reason", &d.reason)?;
                GovData::EvaluationRequested(d)
            }
            EventType::TestsPassed | EventType::TestsFailed => {
                let d: TestsData = data(event)?;
                ModuleName::check_as("data.module", &d.module)?;
                CatalogueName::check_as("data.version", &d.version)?;
                CatalogueName::check_as("data.suite", &d.suite)?;
                check_notes(&d.notes)?;
                if event_type == EventType::TestsPassed && d.failed > 0 {
                    return Err(invalid("data.failed", "TestsPassed with failed tests: send TestsFailed"));
                }
                if event_type == EventType::TestsFailed && d.failed == 0 {
                    return Err(invalid("data.failed", "TestsFailed must report at least one failed test"));
                }
                GovData::Tests(d)
            }
            EventType::CoverageVerified => {
                let d: CoverageData = data(event)?;
                ModuleName::check_as("data.module", &d.module)?;
                CatalogueName::check_as("data.version", &d.version)?;
                check_notes(&d.notes)?;
                if !(0.0..=100.0).contains(&d.percent) {
                    return Err(invalid("data.percent", format!("{} is not within 0 to 100", d.percent)));
                }
                GovData::Coverage(d)
            }
            EventType::BDDValidated => {
                let d: BddData = data(event)?;
                ModuleName::check_as("data.module", &d.module)?;
                CatalogueName::check_as("data.version", &d.version)?;
                check_notes(&d.notes)?;
                GovData::Bdd(d)
            }
            EventType::SecurityGateStatus => {
                let d: SecurityData = data(event)?;
                ModuleName::check_as("data.module", &d.module)?;
                CatalogueName::check_as("data.version", &d.version)?;
                check_notes(&d.notes)?;
                GovData::Security(d)
            }
            EventType::PolicyViolationDetected => {
                let d: ViolationData = data(event)?;
                if let Some(m) = &d.module {
                    ModuleName::check_as("data.module", m)?;
                }
                CatalogueName::check_as("data.rule", &d.rule)?;
                check_text("data.detail", &d.detail)?;
                GovData::Violation(d)
            }
            EventType::EvidenceAttached => {
                let d: EvidenceAttachedData = data(event)?;
                check_evidence_attached(&d)?;
                GovData::EvidenceAttached(Box::new(d))
            }
            EventType::PipelineReady => {
                let d: PipelineReadyData = data(event)?;
                for (field, v) in
                    [("data.module", &d.module), ("data.version", &d.version), ("data.pipelineId", &d.pipeline_id)]
                {
                    if let Some(v) = v {
                        CatalogueName::check_as(field, v)?;
                    }
                }
                check_notes(&d.notes)?;
                GovData::PipelineReady(d)
            }
            EventType::ApprovalGranted => {
                let d: ApprovalGrantedData = data(event)?;
                RoleName::check_as("data.role", &d.role)?;
                check_text("data.comment", &d.comment)?;
                check_actor_role(header, &d.role)?;
                GovData::ApprovalGranted(d)
            }
            EventType::ApprovalRejected => {
                let d: ApprovalRejectedData = data(event)?;
                RoleName::check_as("data.role", &d.role)?;
                check_text("data.reason", &d.reason)?;
                check_actor_role(header, &d.role)?;
                GovData::ApprovalRejected(d)
            }
            EventType::FreezeOverrideGranted => {
                let d: FreezeOverrideData = data(event)?;
                FreezeId::check_as("data.freezeId", &d.freeze_id)?;
                if d.justification.trim().is_empty() {
                    return Err(invalid("data.justification", "an override needs a justification"));
                }
                check_text("data.justification", &d.justification)?;
                GovData::FreezeOverride(d)
            }
            EventType::PolicyUpdated => {
                let d: PolicyUpdatedData = data(event)?;
                d.policy.validate().map_err(|e| invalid("data.policy", e))?;
                GovData::Policy(Box::new(d))
            }
            EventType::ChangeFreezeDeclared => {
                let d: ChangeFreezeDeclaredData = data(event)?;
                check_text("data.reason", &d.reason)?;
                crate::freeze::Freeze::compile(d.clone(), &header.occurred_at).map_err(|e| invalid("data", e))?;
                GovData::FreezeDeclared(d)
            }
            EventType::ChangeFreezeLifted => {
                let d: FreezeLiftedData = data(event)?;
                FreezeId::check_as("data.freezeId", &d.freeze_id)?;
                check_optional_text("data.reason", &d.reason)?;
                GovData::FreezeLifted(d)
            }
            EventType::EvidenceInvalidated => {
                let d: EvidenceInvalidatedData = data(event)?;
                check_text("data.reason", &d.reason)?;
                GovData::EvidenceInvalidated(d)
            }
            // The ledger validates these three itself (it acts on them); parse for the typed view.
            EventType::AgentKeyRegistered => {
                let d: AgentKeyRegisteredData = data(event)?;
                AgentId::check_as("data.agentId", &d.agent_id)?;
                // A type outside the catalogue could never be signed: refuse the typo now.
                if let Some(unknown) = d.event_types.iter().find(|t| EventType::parse(t).is_none()) {
                    return Err(invalid(
                        "data.eventTypes",
                        format!("{:?} is not in the event catalogue", clip(unknown)),
                    ));
                }
                GovData::KeyRegistered(d)
            }
            EventType::AgentKeyRevoked => {
                let d: AgentKeyRevokedData = data(event)?;
                check_text("data.reason", &d.reason)?;
                GovData::KeyRevoked(d)
            }
            EventType::EntryRedacted => {
                let d: EntryRedactedData = data(event)?;
                check_text("data.reason", &d.reason)?;
                GovData::Redacted(d)
            }
            EventType::ReleasePlanned
            | EventType::ReleaseApproved
            | EventType::ReleaseDelayed
            | EventType::ReleaseRejected
            | EventType::ReleasePublished => {
                let d: DecisionData = data(event)?;
                if d.status.event_type() != event_type {
                    return Err(invalid("data.status", format!("{:?} does not match type {event_type}", d.status)));
                }
                parse_rfc3339_ns(&d.evaluated_at).map_err(|e| invalid("data.evaluatedAt", e))?;
                GovData::Decision(Box::new(d))
            }
            EventType::DeploymentStarted
            | EventType::DeploymentCompleted
            | EventType::DeploymentFailed
            | EventType::RollbackTriggered => {
                let d: DeploymentData = data(event)?;
                Environment::check_as("data.environment", &d.environment)?;
                check_optional_text("data.reason", &d.reason)?;
                GovData::Deployment(d)
            }
        };
        Ok((event_type, gov))
    }
}

fn check_evidence_attached(d: &EvidenceAttachedData) -> Result<(), InvalidEvent> {
    ModuleName::check_as("data.module", &d.module)?;
    CatalogueName::check_as("data.version", &d.version)?;
    check_evidence_kind(&d.kind).map_err(|e| invalid("data.kind", e))?;
    data::check_digest(&d.subject_digest).map_err(|e| invalid("data.subjectDigest", e))?;
    data::check_digest(&d.content_digest).map_err(|e| invalid("data.contentDigest", e))?;
    let media_ok = d.media_type.len() <= 127
        && d.media_type.split_once('/').is_some_and(|(t, sub)| {
            let token =
                |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
            token(t) && token(sub)
        });
    if !media_ok {
        return Err(invalid("data.mediaType", format!("{:?} is not a media type (type/subtype)", clip(&d.media_type))));
    }
    if let Some(uri) = &d.uri {
        if uri.len() > 2048 || uri.chars().any(char::is_control) {
            return Err(invalid("data.uri", "at most 2048 bytes, no control characters"));
        }
    }
    match (&d.body, &d.attestation) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "data",
                "give a body or an attestation, not both (policies read the attestation's statement as its body)",
            ))
        }
        (Some(body), None) => {
            if !body.is_object() {
                return Err(invalid("data.body", "a JSON object"));
            }
            let size = serde_json::to_vec(body).map_or(usize::MAX, |b| b.len());
            if size > MAX_EVIDENCE_BODY_BYTES {
                return Err(invalid("data.body", format!("{size} bytes, at most {MAX_EVIDENCE_BODY_BYTES}")));
            }
        }
        (None, Some(attestation)) => {
            check_attestation(d, attestation).map_err(|e| invalid("data.attestation", e))?;
        }
        (None, None) => {}
    }
    Ok(())
}

/// The attestation signer an `EvidenceAttached` names, read without checking the rest.
fn attestation_key(event: &ParsedEvent) -> Option<ledger::KeyId> {
    let value: serde_json::Value = serde_json::from_str(event.data.get()).ok()?;
    let keyid = value.get("attestation")?.get("signatures")?.as_array()?.first()?.get("keyid")?.as_str()?;
    ledger::KeyId::from_hex(keyid).ok()
}

/// An attestation is accepted when its signer is a tenant key holding [`ATTESTOR_ROLE`], not
/// revoked, and the signature verifies (strict Ed25519 over the DSSE PAE).
fn authorize_attestation(event: &ParsedEvent, attestor: Option<&KeyRecord>) -> Result<(), String> {
    let Ok(d) = serde_json::from_str::<EvidenceAttachedData>(event.data.get()) else { return Ok(()) };
    let Some(attestation) = &d.attestation else { return Ok(()) };
    let checked = check_attestation(&d, attestation)?;
    let key_id = checked.key_id.to_hex();
    let Some(record) = attestor else {
        return Err(format!("attach an attestation signed by {key_id}: no key of this tenant has that id"));
    };
    if let Some(at) = record.revoked_at {
        return Err(format!("attach an attestation signed by {key_id}: the key was revoked at seq {at}"));
    }
    if !record.roles.iter().any(|r| r == ATTESTOR_ROLE) {
        return Err(format!(
            "attach an attestation signed by {key_id} ({}): the key does not hold the {ATTESTOR_ROLE} role",
            record.agent_id
        ));
    }
    let key = record.verifying_key().ok_or_else(|| format!("read the public key of {key_id}"))?;
    if !checked.envelope.is_signed_by(&key) {
        return Err(format!(
            "attach an attestation signed by {key_id} ({}): the signature does not verify",
            record.agent_id
        ));
    }
    Ok(())
}

/// An approval's `actor.role`, when given, must be the role it approves as.
fn check_actor_role(header: &ledger::EventHeader, role: &str) -> Result<(), InvalidEvent> {
    match &header.actor.role {
        Some(actor_role) if actor_role != role => {
            Err(invalid("actor.role", format!("{actor_role:?} differs from data.role {role:?}")))
        }
        _ => Ok(()),
    }
}

/// The catalogue as the store's [`EventRules`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalogue;

impl Catalogue {
    /// [`EventRules::validate`] of an event whose `data` the caller already parsed with
    /// [`GovEvent::parse_data`] (its result, passed here): the same verdict, without parsing
    /// the body again.
    pub fn validate_parsed(&self, parsed: Result<&GovData, &InvalidEvent>) -> Result<(), InvalidEvent> {
        let data = parsed.map_err(Clone::clone)?;
        // Refused when appended, not when folded: a log that already holds such a policy
        // folds as it always did.
        if let GovData::Policy(d) = data {
            if d.policy.environments.is_empty() && d.policy.default.is_none() {
                return Err(invalid(
                    "data.policy",
                    "no environments and no default: every release would be rejected (PolicyMissing); \
                     name the environments or give a default (to stop all releases, declare a freeze)",
                ));
            }
        }
        Ok(())
    }

    /// [`EventRules::facts`] of a valid event whose `data` parsed to `data`
    /// ([`GovEvent::parse_data`]): an approval's role is read from it, not from the body again.
    pub fn facts_parsed(&self, event: &ParsedEvent, data: &GovData) -> EventFacts {
        match data {
            GovData::ApprovalGranted(d) => EventFacts { claimed_role: Some(d.role.clone()), attestation_key: None },
            GovData::ApprovalRejected(d) => EventFacts { claimed_role: Some(d.role.clone()), attestation_key: None },
            _ => self.facts(event),
        }
    }
}

impl EventRules for Catalogue {
    fn validate(&self, event: &ParsedEvent) -> Result<(), InvalidEvent> {
        let (_, data) = GovEvent::parse_data(event)?;
        self.validate_parsed(Ok(&data))
    }

    fn facts(&self, event: &ParsedEvent) -> EventFacts {
        // An approval acts in the role its data names (read here, on the caller's thread).
        let claimed_role = match event.header.event_type.as_str() {
            "ApprovalGranted" | "ApprovalRejected" => Some(
                serde_json::from_str::<serde_json::Value>(event.data.get())
                    .ok()
                    .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned))
                    .unwrap_or_default(),
            ),
            _ => None,
        };
        let attestation_key = match event.header.event_type.as_str() {
            "EvidenceAttached" => attestation_key(event),
            _ => None,
        };
        EventFacts { claimed_role, attestation_key }
    }

    fn authorize(
        &self,
        event: &ParsedEvent,
        facts: &EventFacts,
        signer: Signer,
        roles: &[String],
        attestor: Option<&KeyRecord>,
    ) -> Result<(), String> {
        if event.header.event_type == "EvidenceAttached" {
            authorize_attestation(event, attestor)?;
        }
        let holds = |role: &str| roles.iter().any(|r| r == role);
        // The ledger derives the event ids of its decisions and retries from the release and
        // the trigger's seq, which anyone can predict: another key taking one first would make
        // that decision impossible to append (ALREADY_EXISTS, forever).
        let event_id = &event.header.event_id;
        if signer != Signer::Ledger && LEDGER_EVENT_ID_PREFIXES.iter().any(|p| event_id.starts_with(p)) {
            return Err(format!("use event id {event_id:?}: ids starting with decision: or retry: are the ledger's"));
        }
        // Roles are held by registered keys only: the admin and ledger keys act for the
        // system, never as a person approving (separation of duties).
        let required_role = match event.header.event_type.as_str() {
            "ApprovalGranted" | "ApprovalRejected" => Some(facts.claimed_role.clone().unwrap_or_default()),
            "FreezeOverrideGranted" => Some(STUDIO_ADMIN_ROLE.to_owned()),
            _ => None,
        };
        // Policy and freezes are administration (DESIGN §6): the admin key, or a tenant key
        // holding KeyAdmin, like the key registry.
        if matches!(event.header.event_type.as_str(), "PolicyUpdated" | "ChangeFreezeDeclared" | "ChangeFreezeLifted")
            && !(signer == Signer::Admin || (signer == Signer::Agent && holds(ledger::event::KEY_ADMIN_ROLE)))
        {
            return Err(format!(
                "sign {}: policy and freezes are administration (the admin key or the {} role)",
                event.header.event_type,
                ledger::event::KEY_ADMIN_ROLE
            ));
        }
        if let Some(role) = required_role {
            if signer != Signer::Agent || !holds(&role) {
                return Err(format!(
                    "sign {} as {role}: the key does not hold the {role} role",
                    event.header.event_type
                ));
            }
        }
        if let (Some(role), Signer::Agent) = (&event.header.actor.role, signer) {
            if !holds(role) {
                return Err(format!("act in role {role}: the key does not hold it"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parsed(event_type: &str, release: Option<&str>, data: serde_json::Value) -> ParsedEvent {
        let mut body = serde_json::json!({
            "tenant": "t", "stream": "s", "type": event_type, "eventId": "e1",
            "occurredAt": "2025-05-23T09:32:00Z", "actor": {"agentId": "a"}, "data": data,
        });
        if let Some(r) = release {
            body["releaseId"] = r.into();
        }
        ParsedEvent::parse(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

    #[test]
    fn names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("Nope"), None);
    }

    #[test]
    fn good_events_parse() {
        let ok = [
            (
                "ReleaseIntentDeclared",
                serde_json::json!({"environment": "prod", "modules": [{"name": "api", "version": "1.2.0"}]}),
            ),
            (
                "ReleaseIntentDeclared",
                serde_json::json!({"environment": "prod", "modules": [{"name": "api", "version": "1.2.0",
                    "digest": {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}]}),
            ),
            (
                "TestsPassed",
                serde_json::json!({"module": "api", "version": "1.2.0", "suite": "unit", "passed": 3, "failed": 0}),
            ),
            ("CoverageVerified", serde_json::json!({"module": "api", "version": "1.2.0", "percent": 91.5})),
            (
                "SecurityGateStatus",
                serde_json::json!({"module": "api", "version": "1.2.0", "status": "Passed", "cveSeverity": "Low", "imageSigned": true, "sbomPresent": true, "licenseCompliant": true}),
            ),
            ("ApprovalGranted", serde_json::json!({"role": "QA", "method": "CLI"})),
            ("DeploymentFailed", serde_json::json!({"environment": "prod", "reason": "probe"})),
        ];
        for (t, d) in ok {
            GovEvent::parse(&parsed(t, Some("r1"), d)).unwrap_or_else(|e| panic!("{t}: {e}"));
        }
        let policy = serde_json::json!({"policy": {"version": 1, "environments": {}, "default": {}}});
        GovEvent::parse(&parsed("PolicyUpdated", None, policy)).unwrap();
    }

    #[test]
    fn bad_events_name_their_field() {
        let cases = [
            ("Unknown", Some("r1"), serde_json::json!({}), "type"),
            (
                "TestsPassed",
                None,
                serde_json::json!({"module": "a", "version": "1", "suite": "u", "passed": 1, "failed": 0}),
                "releaseId",
            ),
            (
                "TestsPassed",
                Some("r1"),
                serde_json::json!({"module": "a", "version": "1", "suite": "u", "passed": 1, "failed": 2}),
                "data.failed",
            ),
            (
                "TestsPassed",
                Some("r1"),
                serde_json::json!({"module": "a", "version": "1", "suite": "u", "passed": 1, "failed": 0, "typo": 1}),
                "data",
            ),
            (
                "CoverageVerified",
                Some("r1"),
                serde_json::json!({"module": "a", "version": "1", "percent": 101.0}),
                "data.percent",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": []}),
                "data.modules",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "pr od", "modules": [{"name": "a", "version": "1"}]}),
                "data.environment",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1", "digest": {}}]}),
                "data.modules.digest",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1", "digest": {"md5": "d41d8cd98f00b204e9800998ecf8427e"}}]}),
                "data.modules.digest",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1", "digest": {"sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"}}]}),
                "data.modules.digest",
            ),
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1", "digest": {"sha256": "9f86"}}]}),
                "data.modules.digest",
            ),
            ("ApprovalGranted", Some("r1"), serde_json::json!({"role": "qa", "method": "CLI"}), "data.role"),
            ("ApprovalGranted", Some("r1"), serde_json::json!({"role": "QA", "method": "Fax"}), "data"),
            (
                "FreezeOverrideGranted",
                Some("r1"),
                serde_json::json!({"freezeId": "f", "justification": " "}),
                "data.justification",
            ),
            ("PolicyUpdated", None, serde_json::json!({"policy": {"version": 0, "environments": {}}}), "data.policy"),
            ("ReleaseApproved", Some("r1"), serde_json::json!({"status": "Approved"}), "data"),
        ];
        for (t, release, d, field) in cases {
            let err = GovEvent::parse(&parsed(t, release, d)).unwrap_err();
            assert_eq!(err.field, field, "{t}: {err}");
        }
    }

    /// Every free-text field of the catalogue: 4 KiB is accepted, one byte more is refused
    /// naming the field (`notes` has its own, larger bound); names and echoed values are cut.
    #[test]
    fn text_fields_are_bounded_by_the_documented_limit() {
        let fields: [(&str, Option<&str>, serde_json::Value, &str); 12] = [
            (
                "ReleaseIntentDeclared",
                Some("r1"),
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1"}], "triggeredBy": "T"}),
                "data.triggeredBy",
            ),
            ("ReleaseEvaluationRequested", Some("r1"), serde_json::json!({"reason": "T"}), "data.reason"),
            ("PolicyViolationDetected", Some("r1"), serde_json::json!({"rule": "r", "detail": "T"}), "data.detail"),
            (
                "ApprovalGranted",
                Some("r1"),
                serde_json::json!({"role": "QA", "method": "CLI", "comment": "T"}),
                "data.comment",
            ),
            ("ApprovalRejected", Some("r1"), serde_json::json!({"role": "QA", "reason": "T"}), "data.reason"),
            (
                "FreezeOverrideGranted",
                Some("r1"),
                serde_json::json!({"freezeId": "f", "justification": "T"}),
                "data.justification",
            ),
            (
                "ChangeFreezeDeclared",
                None,
                serde_json::json!({"freezeId": "f", "environments": [], "reason": "T", "from": "2025-05-23T00:00:00Z", "to": "2025-05-24T00:00:00Z"}),
                "data.reason",
            ),
            ("ChangeFreezeLifted", None, serde_json::json!({"freezeId": "f", "reason": "T"}), "data.reason"),
            ("EvidenceInvalidated", Some("r1"), serde_json::json!({"seq": 1, "reason": "T"}), "data.reason"),
            ("DeploymentFailed", Some("r1"), serde_json::json!({"environment": "prod", "reason": "T"}), "data.reason"),
            ("AgentKeyRevoked", None, serde_json::json!({"keyId": "00", "reason": "T"}), "data.reason"),
            ("EntryRedacted", None, serde_json::json!({"seq": 1, "reason": "T"}), "data.reason"),
        ];
        for (t, release, data, field) in fields {
            let with = |text: &str| {
                let json = data.to_string().replace("\"T\"", &serde_json::to_string(text).unwrap());
                parsed(t, release, serde_json::from_str(&json).unwrap())
            };
            GovEvent::parse(&with(&"x".repeat(MAX_TEXT_BYTES))).unwrap_or_else(|e| panic!("{t}: {e}"));
            let err = GovEvent::parse(&with(&"x".repeat(MAX_TEXT_BYTES + 1))).unwrap_err();
            assert_eq!(err.field, field, "{t}: {err}");
            assert!(err.reason.contains("longer than 4096 bytes (4097)"), "{t}: {err}");
        }
        let notes = |n: usize| serde_json::json!({"module": "a", "version": "1", "suite": "u", "passed": 1, "failed": 0, "notes": "x".repeat(n)});
        GovEvent::parse(&parsed("TestsPassed", Some("r1"), notes(MAX_NOTES_BYTES))).unwrap();
        let err = GovEvent::parse(&parsed("TestsPassed", Some("r1"), notes(MAX_NOTES_BYTES + 1))).unwrap_err();
        assert_eq!(err.field, "data.notes");
        let long_name =
            serde_json::json!({"environment": "e".repeat(50_000), "modules": [{"name": "a", "version": "1"}]});
        let err = GovEvent::parse(&parsed("ReleaseIntentDeclared", Some("r1"), long_name)).unwrap_err();
        assert_eq!(err.field, "data.environment");
        assert!(err.to_string().len() < 200, "{err}");
        let bad_variant = serde_json::json!({"role": "QA", "method": "M".repeat(50_000)});
        let err = GovEvent::parse(&parsed("ApprovalGranted", Some("r1"), bad_variant)).unwrap_err();
        assert!(err.to_string().len() < 400, "{}", err.to_string().len());
    }

    #[test]
    fn approvals_need_the_role() {
        let approval = parsed("ApprovalGranted", Some("r1"), serde_json::json!({"role": "QA", "method": "CLI"}));
        let roles = vec!["QA".to_owned()];
        assert!(Catalogue.authorize(&approval, &Catalogue.facts(&approval), Signer::Agent, &roles, None).is_ok());
        let err = Catalogue
            .authorize(&approval, &Catalogue.facts(&approval), Signer::Agent, &["Dev".to_owned()], None)
            .unwrap_err();
        assert!(err.contains("does not hold the QA role"), "{err}");
        assert!(Catalogue.authorize(&approval, &Catalogue.facts(&approval), Signer::Admin, &[], None).is_err());
        let override_ = parsed(
            "FreezeOverrideGranted",
            Some("r1"),
            serde_json::json!({"freezeId": "f", "justification": "hotfix"}),
        );
        assert!(Catalogue.authorize(&override_, &Catalogue.facts(&override_), Signer::Agent, &roles, None).is_err());
        assert!(Catalogue
            .authorize(&override_, &Catalogue.facts(&override_), Signer::Agent, &[STUDIO_ADMIN_ROLE.to_owned()], None)
            .is_ok());
    }

    #[test]
    fn policy_and_freezes_are_administration() {
        let policy = parsed("PolicyUpdated", None, serde_json::json!({"policy": {"version": 1}}));
        let lift = parsed("ChangeFreezeLifted", None, serde_json::json!({"freezeId": "f"}));
        for event in [&policy, &lift] {
            assert!(Catalogue.authorize(event, &Catalogue.facts(event), Signer::Admin, &[], None).is_ok());
            assert!(Catalogue
                .authorize(event, &Catalogue.facts(event), Signer::Agent, &["KeyAdmin".to_owned()], None)
                .is_ok());
            let err = Catalogue
                .authorize(event, &Catalogue.facts(event), Signer::Agent, &["ReleaseManager".to_owned()], None)
                .unwrap_err();
            assert!(err.contains("administration"), "{err}");
            assert!(Catalogue.authorize(event, &Catalogue.facts(event), Signer::Ledger, &[], None).is_err());
        }
    }
}
