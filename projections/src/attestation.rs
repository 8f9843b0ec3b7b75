//! A ledger decision as a standard attestation: an in-toto Statement v1 whose predicate is a
//! SLSA Verification Summary (`https://slsa.dev/verification_summary/v1`), signed as DSSE by
//! the ledger key (docs/attestation.md).
//!
//! The statement is a pure function of log entries: the decision entry and the entries its
//! `evidence` names (which include the trigger, the intent and the `PolicyUpdated` in force).
//! The server signs it; a client that fetched and verified the same entries (hashes,
//! signatures, inclusion) rebuilds it byte for byte and compares, so an attestation never says
//! more than the log it came from. Fields serialise in declaration order and every list is
//! in seq order, so the same entries always give the same bytes (and, Ed25519 being
//! deterministic, the same signature).
//!
//! Mapping (the words → the predicate):
//! - verifier: `https://<origin>` of the tenant's log, with the ledger key id as an extension;
//! - timeVerified: the decision's `evaluatedAt` (its trigger's `recordedAt`);
//! - resourceUri: `https://<origin>/releases/<release>`;
//! - policy: the `PolicyUpdated` entry in force, by URI and entry-hash digest;
//! - inputAttestations: every evidence entry, by URI and entry-hash digest;
//! - verificationResult: `PASSED` for `ReleaseApproved` / `ReleasePublished`, else `FAILED`;
//! - verifiedLevels: `RELEASE_LEDGER_POLICY_PASSED` or `FAILED` (custom levels may not start
//!   with `SLSA_`);
//! - the decision itself (status, gates, reasons, risk) under the extension field
//!   [`DECISION_EXTENSION`] (predicates may carry extension fields named by URIs).
//!
//! Subjects are the intent's modules that carry an artifact digest; a release none of whose
//! modules does is named by its intent entry (or, with no intent, the decision entry), so
//! the statement always has a subject with a digest, as in-toto requires.
//!
//! URIs use `https://` followed by the checkpoint origin (a schema-less URL by C2SP
//! tlog-checkpoint); they name, they do not locate (the default origin is under `.invalid`).

use serde::Serialize;
use std::collections::BTreeMap;

use crate::catalogue::{IntentData, ModuleVersion};
use crate::decision::{DecisionData, DecisionStatus, Gate, Reason, RiskFactor};
use crate::event_type::EventType;

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA Verification Summary predicate, v1.
pub const VSA_PREDICATE_TYPE: &str = "https://slsa.dev/verification_summary/v1";
/// The DSSE `payloadType` of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The extension field of the predicate that carries the decision (docs/attestation.md).
pub const DECISION_EXTENSION: &str = "https://release-ledger.dev/attestation/decision/v1";
/// The extension field of `verifier` that carries the ledger key id (lowercase hex SHA-256 of
/// the raw Ed25519 public key, the DSSE `keyid`).
pub const KEY_ID_EXTENSION: &str = "https://release-ledger.dev/attestation/ledgerKeyId";
/// The digest-set algorithm naming a log entry: lowercase hex of its entry hash
/// (`BLAKE3("release-ledger/entry/v1" || seq || recordedAt || prevHash || payloadHash)`,
/// docs/format.md), the record the log's Merkle tree proves. A custom name, as in-toto allows
/// ("New algorithms MUST document how the value is encoded").
pub const ENTRY_HASH_DIGEST: &str = "releaseLedgerEntryHash";
/// The custom SLSA result of a decision that passed the policy.
pub const PASSED_LEVEL: &str = "RELEASE_LEDGER_POLICY_PASSED";

/// One log entry the statement is built from.
#[derive(Debug, Clone, Copy)]
pub struct AttestedEntry<'a> {
    /// Its seq.
    pub seq: u64,
    /// Its entry hash.
    pub entry_hash: &'a [u8; 32],
    /// Its payload (the event body as signed), `None` when redacted.
    pub payload: Option<&'a [u8]>,
}

impl<'a> From<&'a ledger::Entry> for AttestedEntry<'a> {
    fn from(entry: &'a ledger::Entry) -> Self {
        Self { seq: entry.seq, entry_hash: &entry.entry_hash, payload: entry.envelope().map(|e| e.payload.as_slice()) }
    }
}

/// Whose decision it is.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The checkpoint origin of the tenant's log.
    pub origin: &'a str,
    /// The ledger key id (hex).
    pub ledger_key_id: &'a str,
    /// The tenant.
    pub tenant: &'a str,
    /// The release.
    pub release: &'a str,
}

/// Why a statement cannot be built from the entries given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestationError {
    /// The decision entry is redacted, unreadable, or not a decision about the release.
    #[error("seq {seq} is not an attestable decision: {reason}")]
    NotADecision {
        /// The entry.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// The evidence entries given are not exactly those the decision names.
    #[error("the evidence entries given ({given:?}) are not those decision {seq} names ({named:?})")]
    Evidence {
        /// The decision.
        seq: u64,
        /// The seqs given.
        given: Vec<u64>,
        /// The seqs the decision names.
        named: Vec<u64>,
    },
}

/// The decision an entry holds, if it is one about `release` of `tenant`.
pub fn decision_of(tenant: &str, release: &str, entry: &AttestedEntry<'_>) -> Result<DecisionData, AttestationError> {
    let bad = |reason: String| AttestationError::NotADecision { seq: entry.seq, reason };
    let payload = entry.payload.ok_or_else(|| bad("it is redacted".into()))?;
    let body: Body = serde_json::from_slice(payload).map_err(|e| bad(format!("its body does not parse: {e}")))?;
    let event_type = EventType::parse(&body.event_type).filter(|t| t.is_decision());
    let Some(event_type) = event_type else {
        return Err(bad(format!("it is a {:?}, not a decision", body.event_type)));
    };
    if body.tenant != tenant || body.release_id.as_deref() != Some(release) {
        return Err(bad(format!("it is not about release {release:?} of tenant {tenant:?}")));
    }
    let data: DecisionData =
        serde_json::from_value(body.data).map_err(|e| bad(format!("its data is not a decision: {e}")))?;
    if data.status.event_type() != event_type {
        return Err(bad(format!("its status {:?} does not match its type {event_type}", data.status)));
    }
    Ok(data)
}

/// The statement's bytes for `decision`, from the entries its `evidence` names (exactly those,
/// in seq order).
pub fn statement(
    who: &Subject<'_>,
    decision: &AttestedEntry<'_>,
    evidence: &[AttestedEntry<'_>],
) -> Result<Vec<u8>, AttestationError> {
    let data = decision_of(who.tenant, who.release, decision)?;
    let given: Vec<u64> = evidence.iter().map(|e| e.seq).collect();
    if given != data.evidence {
        return Err(AttestationError::Evidence { seq: decision.seq, given, named: data.evidence.clone() });
    }
    let base = format!("https://{}", who.origin);
    let entry_uri = |seq: u64| format!("{base}/entries/{seq}");
    let entry_digest = |hash: &[u8; 32]| BTreeMap::from([(ENTRY_HASH_DIGEST.to_owned(), hex::encode(hash))]);
    let describe = |e: &AttestedEntry<'_>| Resource {
        name: None,
        uri: Some(entry_uri(e.seq)),
        digest: Some(entry_digest(e.entry_hash)),
    };
    let resource_uri = format!("{base}/releases/{}", uri_segment(who.release));

    // The entries the statement reads: the intent (the latest of the release among the
    // evidence) and the policy in force (the PolicyUpdated among the evidence).
    let typed: Vec<(&AttestedEntry<'_>, Option<Body>)> =
        evidence.iter().map(|e| (e, e.payload.and_then(|p| serde_json::from_slice::<Body>(p).ok()))).collect();
    let of_type = |wanted: EventType| {
        typed.iter().rev().find(|(_, body)| body.as_ref().is_some_and(|b| b.event_type == wanted.as_str()))
    };
    // `policy` is `{uri, digest}` only (the VSA v1 protobuf has no other field); its version
    // is in the decision extension.
    let policy = match of_type(EventType::PolicyUpdated) {
        Some((entry, _)) => describe(entry),
        None => Resource { name: None, uri: Some(format!("{base}/policy/none")), digest: None },
    };
    let intent = of_type(EventType::ReleaseIntentDeclared)
        .filter(|(_, body)| body.as_ref().is_some_and(|b| b.release_id.as_deref() == Some(who.release)));
    let modules: Vec<ModuleVersion> = intent
        .and_then(|(_, body)| body.as_ref())
        .and_then(|body| serde_json::from_value::<IntentData>(body.data.clone()).ok())
        .map(|d| d.modules)
        .unwrap_or_default();
    let mut subjects: Vec<Resource> = modules
        .iter()
        .filter_map(|m| {
            let digest = m.digest.as_ref()?;
            Some(Resource { name: Some(format!("{}@{}", m.name, m.version)), uri: None, digest: Some(digest.clone()) })
        })
        .collect();
    if subjects.is_empty() {
        let (named_by, hash) = match intent {
            Some((entry, _)) => ("intent", entry.entry_hash),
            None => ("decision", decision.entry_hash),
        };
        subjects.push(Resource {
            name: Some(format!("release {} ({named_by} entry)", who.release)),
            uri: Some(resource_uri.clone()),
            digest: Some(entry_digest(hash)),
        });
    }
    let passed = matches!(data.status, DecisionStatus::Approved | DecisionStatus::Published);
    let statement = Statement {
        type_: STATEMENT_TYPE,
        subject: subjects,
        predicate_type: VSA_PREDICATE_TYPE,
        predicate: Predicate {
            verifier: Verifier { id: base.clone(), key_id: who.ledger_key_id },
            time_verified: &data.evaluated_at,
            resource_uri,
            policy,
            input_attestations: evidence.iter().map(describe).collect(),
            verification_result: if passed { "PASSED" } else { "FAILED" },
            verified_levels: [if passed { PASSED_LEVEL } else { "FAILED" }],
            slsa_version: "1.0",
            decision: Decision {
                tenant: who.tenant,
                release_id: who.release,
                entry: Resource { name: Some(data.status.event_type().as_str().to_owned()), ..describe(decision) },
                status: data.status,
                policy_version: data.policy_version,
                trigger: data.trigger,
                gates: &data.gates,
                reasons: &data.reasons,
                retry_after: data.retry_after.as_deref(),
                retryable: data.retryable,
                risk_score: data.risk_score,
                risk_factors: &data.risk_factors,
                modules_without_digest: modules
                    .iter()
                    .filter(|m| m.digest.is_none())
                    .map(|m| format!("{}@{}", m.name, m.version))
                    .collect(),
            },
        },
    };
    Ok(serde_json::to_vec(&statement).unwrap_or_default())
}

/// The attestation of a decision: its [`statement`], DSSE-signed by the ledger key `key`.
pub fn signed(
    key: &ledger::KeyPair,
    who: &Subject<'_>,
    decision: &AttestedEntry<'_>,
    evidence: &[AttestedEntry<'_>],
) -> Result<ledger::Envelope, AttestationError> {
    let statement = statement(who, decision, evidence)?;
    let sig = key.sign(&ledger::pae(PAYLOAD_TYPE, &statement)).to_vec();
    Ok(ledger::Envelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: statement,
        signatures: vec![ledger::envelope::Signature { keyid: key.key_id().to_hex(), sig }],
    })
}

/// Checks a served envelope against entries already verified: its payload type, a signature by
/// `key` over it, and its statement equal byte for byte to the one those entries give. Returns
/// the statement, parsed; the error says which check failed.
pub fn check_envelope(
    envelope_json: &str,
    key: &ed25519_dalek::VerifyingKey,
    who: &Subject<'_>,
    decision: &AttestedEntry<'_>,
    evidence: &[AttestedEntry<'_>],
) -> Result<serde_json::Value, String> {
    let envelope = ledger::Envelope::from_json(envelope_json).map_err(|e| format!("its envelope: {e}"))?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(format!("payloadType {:?}, not {:?}", envelope.payload_type, PAYLOAD_TYPE));
    }
    if !envelope.is_signed_by(key) {
        return Err("no signature verifies with the ledger key".into());
    }
    let rebuilt = statement(who, decision, evidence).map_err(|e| e.to_string())?;
    if rebuilt != envelope.payload {
        return Err("the statement differs from the one its entries give (rebuilt here from the verified decision \
                    and evidence)"
            .into());
    }
    serde_json::from_slice(&envelope.payload).map_err(|e| format!("its statement: {e}"))
}

/// A release id as one URI path segment: its charset (`A-Za-z0-9._:/@+-`) is all `pchar`
/// except `/`, which is percent-encoded.
pub fn uri_segment(id: &str) -> String {
    id.replace('/', "%2F")
}

/// The header fields of an event body the statement reads.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    tenant: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    release_id: Option<String>,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    type_: &'static str,
    subject: Vec<Resource>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Predicate<'a>,
}

/// An in-toto ResourceDescriptor (the fields used here).
#[derive(Serialize)]
struct Resource {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Predicate<'a> {
    verifier: Verifier<'a>,
    time_verified: &'a str,
    resource_uri: String,
    policy: Resource,
    input_attestations: Vec<Resource>,
    verification_result: &'static str,
    verified_levels: [&'static str; 1],
    slsa_version: &'static str,
    #[serde(rename = "https://release-ledger.dev/attestation/decision/v1")]
    decision: Decision<'a>,
}

#[derive(Serialize)]
struct Verifier<'a> {
    id: String,
    #[serde(rename = "https://release-ledger.dev/attestation/ledgerKeyId")]
    key_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Decision<'a> {
    tenant: &'a str,
    release_id: &'a str,
    entry: Resource,
    status: DecisionStatus,
    policy_version: Option<u64>,
    trigger: u64,
    gates: &'a [Gate],
    reasons: &'a [Reason],
    retry_after: Option<&'a str>,
    retryable: bool,
    risk_score: u32,
    risk_factors: &'a [RiskFactor],
    modules_without_digest: Vec<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decision::{decision_body, DecisionData, Verdict};

    const TENANT: &str = "acme";
    const RELEASE: &str = "rel/1";
    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /// An event body of tenant `acme` (the tests' TENANT).
    fn body(event_type: &str, release: Option<&str>, data: serde_json::Value) -> Vec<u8> {
        crate::test_support::body(TENANT, event_type, release, data)
    }

    fn decision(status: DecisionStatus, evidence: Vec<u64>) -> Vec<u8> {
        let data = DecisionData {
            status,
            policy_version: Some(2),
            evaluated_at: "2026-05-23T09:33:00Z".into(),
            trigger: 2,
            evidence,
            gates: vec![Gate {
                gate: "tests:api".into(),
                target: "unit".into(),
                observed: "unit".into(),
                verdict: Verdict::Pass,
                code: None,
            }],
            reasons: vec![],
            retry_after: None,
            retryable: true,
            suggested_fix: None,
            risk_score: 10,
            risk_factors: vec![],
        };
        decision_body(TENANT, RELEASE, None, 1_779_528_780_000_000_000, &data)
    }

    struct Log {
        hashes: Vec<[u8; 32]>,
        payloads: Vec<Vec<u8>>,
    }

    impl Log {
        fn new(payloads: Vec<Vec<u8>>) -> Self {
            let hashes = payloads.iter().map(|p| *blake3::hash(p).as_bytes()).collect();
            Self { hashes, payloads }
        }

        fn entry(&self, seq: u64) -> AttestedEntry<'_> {
            let i = usize::try_from(seq).unwrap();
            AttestedEntry { seq, entry_hash: &self.hashes[i], payload: Some(&self.payloads[i]) }
        }
    }

    fn log(status: DecisionStatus, modules: serde_json::Value) -> Log {
        Log::new(vec![
            body("PolicyUpdated", None, serde_json::json!({"version": 2})),
            body(
                "ReleaseIntentDeclared",
                Some(RELEASE),
                serde_json::json!({"environment": "prod", "modules": modules}),
            ),
            body("TestsPassed", Some(RELEASE), serde_json::json!({})),
            decision(status, vec![0, 1, 2]),
        ])
    }

    const WHO: Subject<'static> =
        Subject { origin: "ledger.example/acme", ledger_key_id: "ab12", tenant: TENANT, release: RELEASE };

    fn build(log: &Log) -> serde_json::Value {
        let evidence: Vec<_> = (0..3).map(|s| log.entry(s)).collect();
        serde_json::from_slice(&statement(&WHO, &log.entry(3), &evidence).unwrap()).unwrap()
    }

    #[test]
    fn an_approval_is_a_passed_vsa_whose_subjects_are_the_modules_with_digests() {
        let modules = serde_json::json!([
            {"name": "api", "version": "1.0", "digest": {"sha256": SHA}},
            {"name": "web", "version": "2.0"},
        ]);
        let log = log(DecisionStatus::Approved, modules);
        let s = build(&log);
        assert_eq!(s["_type"], STATEMENT_TYPE);
        assert_eq!(s["predicateType"], VSA_PREDICATE_TYPE);
        assert_eq!(s["subject"], serde_json::json!([{"name": "api@1.0", "digest": {"sha256": SHA}}]));
        let p = &s["predicate"];
        assert_eq!(p["verifier"]["id"], "https://ledger.example/acme");
        assert_eq!(p["verifier"][KEY_ID_EXTENSION], "ab12");
        assert_eq!(p["timeVerified"], "2026-05-23T09:33:00Z");
        assert_eq!(p["resourceUri"], "https://ledger.example/acme/releases/rel%2F1");
        assert_eq!(p["policy"]["uri"], "https://ledger.example/acme/entries/0");
        assert_eq!(p["policy"]["digest"][ENTRY_HASH_DIGEST], hex::encode(log.hashes[0]));
        assert_eq!(p["policy"].as_object().unwrap().len(), 2, "uri and digest only, as the VSA v1 protobuf has");
        let inputs: Vec<&str> =
            p["inputAttestations"].as_array().unwrap().iter().map(|i| i["uri"].as_str().unwrap()).collect();
        assert_eq!(inputs.len(), 3);
        assert!(inputs[2].ends_with("/entries/2"));
        assert_eq!(
            (p["verificationResult"].as_str(), &p["verifiedLevels"]),
            (Some("PASSED"), &serde_json::json!([PASSED_LEVEL]))
        );
        let d = &p[DECISION_EXTENSION];
        assert_eq!((d["status"].as_str(), d["trigger"].as_u64()), (Some("Approved"), Some(2)));
        assert_eq!(d["entry"]["digest"][ENTRY_HASH_DIGEST], hex::encode(log.hashes[3]));
        assert_eq!(d["gates"][0]["gate"], "tests:api");
        assert_eq!(d["modulesWithoutDigest"], serde_json::json!(["web@2.0"]));
    }

    #[test]
    fn a_rejection_fails_and_a_release_without_digests_is_named_by_its_intent_entry() {
        let log = log(DecisionStatus::Rejected, serde_json::json!([{"name": "api", "version": "1.0"}]));
        let s = build(&log);
        assert_eq!(s["predicate"]["verificationResult"], "FAILED");
        assert_eq!(s["predicate"]["verifiedLevels"], serde_json::json!(["FAILED"]));
        assert_eq!(s["subject"][0]["digest"][ENTRY_HASH_DIGEST], hex::encode(log.hashes[1]));
        assert_eq!(s["subject"][0]["uri"], "https://ledger.example/acme/releases/rel%2F1");
    }

    #[test]
    fn the_same_entries_give_the_same_bytes_and_other_entries_other_bytes() {
        let modules = serde_json::json!([{"name": "api", "version": "1.0", "digest": {"sha256": SHA}}]);
        let a = log(DecisionStatus::Approved, modules.clone());
        let b = log(DecisionStatus::Approved, modules);
        let bytes = |l: &Log| {
            let evidence: Vec<AttestedEntry<'_>> = (0..3).map(|s| l.entry(s)).collect();
            statement(&WHO, &l.entry(3), &evidence).unwrap()
        };
        assert_eq!(bytes(&a), bytes(&b));
        let mut c = log(DecisionStatus::Approved, serde_json::json!([{"name": "api", "version": "1.0"}]));
        c.hashes[2][0] ^= 1;
        assert_ne!(bytes(&a), bytes(&c));
    }

    #[test]
    fn entries_that_are_not_the_decisions_evidence_or_not_a_decision_are_refused() {
        let log = log(DecisionStatus::Approved, serde_json::json!([{"name": "api", "version": "1.0"}]));
        let short: Vec<_> = (0..2).map(|s| log.entry(s)).collect();
        let err = statement(&WHO, &log.entry(3), &short).unwrap_err();
        assert!(matches!(err, AttestationError::Evidence { seq: 3, .. }), "{err}");
        let evidence: Vec<_> = (0..3).map(|s| log.entry(s)).collect();
        let err = statement(&WHO, &log.entry(2), &evidence).unwrap_err();
        assert!(err.to_string().contains("not a decision"), "{err}");
        let other = Subject { release: "rel/2", ..WHO };
        let err = statement(&other, &log.entry(3), &evidence).unwrap_err();
        assert!(err.to_string().contains("not about release"), "{err}");
        let redacted = AttestedEntry { payload: None, ..log.entry(3) };
        assert!(statement(&WHO, &redacted, &evidence).unwrap_err().to_string().contains("redacted"));
    }
}
