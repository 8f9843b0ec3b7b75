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
