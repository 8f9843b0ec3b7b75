//! The schema of each event type's `data` (strict: `deny_unknown_fields`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::policy::Severity;

/// A module and the version a release ships.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModuleVersion {
    /// Module name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Digests of the artifact this version is (an in-toto DigestSet: algorithm → lowercase
    /// hex; see [`DIGEST_ALGORITHMS`]). Optional: intents without one read as they always did;
    /// a release's attestation names the modules that carry one as its subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<BTreeMap<String, String>>,
}

/// The digest algorithms an intent's module may carry, with their hex lengths (in-toto
/// DigestSet names).
pub const DIGEST_ALGORITHMS: &[(&str, usize)] = &[("sha256", 64), ("sha384", 96), ("sha512", 128)];

/// Checks a module's digest set: at least one algorithm, each of [`DIGEST_ALGORITHMS`], each
/// value lowercase hex of its length.
pub fn check_digest(digest: &BTreeMap<String, String>) -> Result<(), String> {
    if digest.is_empty() {
        return Err("an empty digest: give at least one, e.g. {\"sha256\": \"<64 hex digits>\"}".into());
    }
    for (algorithm, value) in digest {
        let Some((_, len)) = DIGEST_ALGORITHMS.iter().find(|(name, _)| name == algorithm) else {
            let known: Vec<&str> = DIGEST_ALGORITHMS.iter().map(|(name, _)| *name).collect();
            return Err(format!("unknown digest algorithm {:?}: one of {known:?}", ledger::clip(algorithm)));
        };
        if value.len() != *len || !value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(format!("a {algorithm} digest is {len} lowercase hex digits, not {:?}", ledger::clip(value)));
        }
    }
    Ok(())
}

/// `ReleaseIntentDeclared.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IntentData {
    /// Target environment.
    pub environment: String,
    /// What ships.
    pub modules: Vec<ModuleVersion>,
    /// Hint: the author wants approval; policy can only make this stricter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_approval: Option<bool>,
    /// Project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// What triggered the release (pipeline, person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
}

/// `ReleaseEvaluationRequested.data`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvaluationRequestedData {
    /// Why (`retryAfter` when the ledger appends it itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `TestsPassed.data` / `TestsFailed.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestsData {
    /// Module tested.
    pub module: String,
    /// Version tested.
    pub version: String,
    /// Test suite (unit, integration, e2e…).
    pub suite: String,
    /// Tests passed.
    pub passed: u64,
    /// Tests failed.
    pub failed: u64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `CoverageVerified.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoverageData {
    /// Module.
    pub module: String,
    /// Version.
    pub version: String,
    /// Line coverage, 0–100.
    pub percent: f64,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `BDDValidated.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BddData {
    /// Module.
    pub module: String,
    /// Version.
    pub version: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Pass / fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GateStatus {
    /// Passed.
    Passed,
    /// Failed.
    Failed,
}

/// `SecurityGateStatus.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityData {
    /// Module.
    pub module: String,
    /// Version.
    pub version: String,
    /// The scanner's verdict.
    pub status: GateStatus,
    /// Highest CVE severity found.
    pub cve_severity: Severity,
    /// The image is signed.
    pub image_signed: bool,
    /// An SBOM is present.
    pub sbom_present: bool,
    /// Licences comply.
    pub license_compliant: bool,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// `PolicyViolationDetected.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ViolationData {
    /// The module, when the violation is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The rule violated.
    pub rule: String,
    /// What was found.
    pub detail: String,
}

/// `PipelineReady.data`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineReadyData {
    /// Module built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// Version built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The pipeline run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_id: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// How an approval was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum ApprovalMethod {
    /// Command line.
    CLI,
    /// A user interface.
    UI,
    /// An API client.
    API,
}

/// `ApprovalGranted.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalGrantedData {
    /// The role approving; the signing key must hold it.
    pub role: String,
    /// Comment.
    #[serde(default)]
    pub comment: String,
    /// How.
    pub method: ApprovalMethod,
}

/// `ApprovalRejected.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalRejectedData {
    /// The role rejecting; the signing key must hold it.
    pub role: String,
    /// Why.
    pub reason: String,
}

/// `FreezeOverrideGranted.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FreezeOverrideData {
    /// The freeze overridden (for the event's release only).
    pub freeze_id: String,
    /// Why.
    pub justification: String,
}

/// `ChangeFreezeLifted.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FreezeLiftedData {
    /// The freeze lifted.
    pub freeze_id: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `EvidenceInvalidated.data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvidenceInvalidatedData {
    /// The seq of the withdrawn evidence (of the same release).
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// `DeploymentStarted` / `DeploymentCompleted` / `DeploymentFailed` / `RollbackTriggered` data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentData {
    /// The environment deployed to.
    pub environment: String,
    /// Why (failures and rollbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The payload type of the in-toto attestations `EvidenceAttached` carries.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The in-toto Statement types an attestation may hold.
pub const IN_TOTO_STATEMENT_TYPES: &[&str] = &["https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"];

/// The role a tenant key must hold for the ledger to accept attestations it signed.
pub const ATTESTOR_ROLE: &str = "Attestor";

/// Largest `body` of an `EvidenceAttached` (its JSON, as sent), and largest attestation payload.
pub const MAX_EVIDENCE_BODY_BYTES: usize = 32 * 1024;

/// `EvidenceAttached.data`: evidence of any kind about one module version of the release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EvidenceAttachedData {
    /// The module the evidence vouches for.
    pub module: String,
    /// Its version.
    pub version: String,
    /// What kind of evidence (`slsa-provenance`, `sbom`, `slo-report`, `dr-drill`, ...; see
    /// [`crate::policy::check_evidence_kind`]).
    pub kind: String,
    /// Digests of the artifact the evidence is about (an in-toto DigestSet).
    pub subject_digest: BTreeMap<String, String>,
    /// Digests of the evidence document itself (for an attestation: of its statement bytes,
    /// checked).
    pub content_digest: BTreeMap<String, String>,
    /// The evidence document's media type (`application/spdx+json`, ...).
    pub media_type: String,
    /// Where the document lives (never fetched by the ledger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// What policies read: a JSON object of at most [`MAX_EVIDENCE_BODY_BYTES`], checked
    /// against the policy's schema for the kind when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// An in-toto attestation in a DSSE envelope (JSON form), signed by a tenant key holding
    /// [`ATTESTOR_ROLE`]; its statement is what policies read as the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation: Option<serde_json::Value>,
}

/// An attestation, checked as far as can be without the key registry.
#[derive(Debug, Clone)]
pub struct CheckedAttestation {
    /// The envelope.
    pub envelope: ledger::Envelope,
    /// Its one signer.
    pub key_id: ledger::KeyId,
    /// The in-toto Statement.
    pub statement: serde_json::Value,
}

/// Checks an `EvidenceAttached`'s attestation against its data: a DSSE envelope of an in-toto
/// Statement, one signature, a subject with the evidence's subject digest, and the evidence's
/// content digest (sha256) being that of the statement bytes.
pub fn check_attestation(
    data: &EvidenceAttachedData,
    attestation: &serde_json::Value,
) -> Result<CheckedAttestation, String> {
    let envelope =
        ledger::Envelope::from_json(&attestation.to_string()).map_err(|e| format!("not a DSSE envelope: {e}"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "payloadType {:?}: an attestation is {IN_TOTO_PAYLOAD_TYPE}",
            ledger::clip(&envelope.payload_type)
        ));
    }
    if envelope.payload.len() > MAX_EVIDENCE_BODY_BYTES {
        return Err(format!("the statement is {} bytes, at most {MAX_EVIDENCE_BODY_BYTES}", envelope.payload.len()));
    }
    let [signature] = envelope.signatures.as_slice() else {
        return Err(format!(
            "{} signatures: the ledger accepts attestations with exactly one",
            envelope.signatures.len()
        ));
    };
    let key_id = ledger::KeyId::from_hex(&signature.keyid).map_err(|_| {
        format!("signature keyid {:?} is not a key id of this ledger (64 hex digits)", ledger::clip(&signature.keyid))
    })?;
    let statement: serde_json::Value =
        serde_json::from_slice(&envelope.payload).map_err(|e| format!("the payload is not JSON: {e}"))?;
    let kind = statement.get("_type").and_then(|t| t.as_str()).unwrap_or_default();
    if !IN_TOTO_STATEMENT_TYPES.contains(&kind) {
        return Err(format!("the payload is not an in-toto Statement (_type {:?})", ledger::clip(kind)));
    }
    if !statement.get("predicateType").is_some_and(serde_json::Value::is_string) {
        return Err("the statement has no predicateType".into());
    }
    let subjects = statement.get("subject").and_then(|s| s.as_array()).cloned().unwrap_or_default();
    let names_subject = subjects.iter().any(|s| {
        s.get("digest").and_then(|d| d.as_object()).is_some_and(|digest| {
            data.subject_digest.iter().any(|(alg, value)| digest.get(alg).and_then(|v| v.as_str()) == Some(value))
        })
    });
    if !names_subject {
        return Err("no subject of the statement has the evidence's subjectDigest".into());
    }
    use sha2::Digest as _;
    let payload = &envelope.payload;
    let sha256 = hex::encode(sha2::Sha256::digest(payload));
    if !data.content_digest.contains_key("sha256") {
        return Err(format!("contentDigest needs the statement's sha256 ({sha256})"));
    }
    // Every algorithm given is checked: none may name other bytes than the statement's.
    for (algorithm, given) in &data.content_digest {
        let actual = match algorithm.as_str() {
            "sha256" => sha256.clone(),
            "sha384" => hex::encode(sha2::Sha384::digest(payload)),
            "sha512" => hex::encode(sha2::Sha512::digest(payload)),
            other => return Err(format!("contentDigest.{other}: not an algorithm the ledger checks")),
        };
        if *given != actual {
            return Err(format!("contentDigest.{algorithm} is {given}, the statement's is {actual}"));
        }
    }
    Ok(CheckedAttestation { envelope, key_id, statement })
}
