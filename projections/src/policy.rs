//! Release policy: a document carried by `PolicyUpdated` events, one `EnvPolicy` per
//! environment plus a default.
//!
//! Every field has a fail-closed default (listed in the README): a policy that says nothing
//! about approvals requires one approver; one that says nothing about security requires a
//! passing scan with no CVE above `Medium`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::rego::{self, RegoPolicy};

/// CVE severity, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// No CVE.
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
            Self::Critical => "Critical",
        }
    }
}

/// The QA signals a policy can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Signal {
    /// `TestsPassed` (every suite reported for the module version passed).
    TestsPassed,
    /// `CoverageVerified`.
    CoverageVerified,
    /// `BDDValidated`.
    BDDValidated,
    /// `SecurityGateStatus`.
    SecurityGateStatus,
}

impl Signal {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TestsPassed => "TestsPassed",
            Self::CoverageVerified => "CoverageVerified",
            Self::BDDValidated => "BDDValidated",
            Self::SecurityGateStatus => "SecurityGateStatus",
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
fn default_signals() -> Vec<Signal> {
    vec![Signal::TestsPassed, Signal::SecurityGateStatus]
}
fn default_max_cve() -> Severity {
    Severity::Medium
}
fn default_ttl() -> Option<u64> {
    Some(7 * 24 * 3600)
}

/// The rules for one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvPolicy {
    /// Whether approval is required (default true; an intent's hint can only add it).
    #[serde(default = "yes")]
    pub requires_approval: bool,
    /// Every listed role must approve (default none: any role counts toward `minApprovers`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Distinct approving keys needed (default 1).
    #[serde(default = "one")]
    pub min_approvers: u32,
    /// QA signals required per module (default `TestsPassed`, `SecurityGateStatus`).
    #[serde(default = "default_signals")]
    pub required_signals: Vec<Signal>,
    /// Minimum coverage percent, if any (requires `CoverageVerified` evidence when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_test_coverage: Option<f64>,
    /// Highest CVE severity allowed (default `Medium`).
    #[serde(rename = "maxCVESeverity", default = "default_max_cve")]
    pub max_cve_severity: Severity,
    /// Images must be signed.
    #[serde(default)]
    pub require_signed_images: bool,
    /// An SBOM must be present.
    #[serde(default)]
    pub require_sbom: bool,
    /// Licences must comply.
    #[serde(default)]
    pub require_license_compliance: bool,
    /// Approvals older than this do not count (default 7 days; `null` = never expire).
    #[serde(default = "default_ttl")]
    pub approval_ttl_seconds: Option<u64>,
    /// The intent's author cannot approve its own release (default true).
    #[serde(default = "yes")]
    pub separation_of_duties: bool,
    /// Change freezes apply to this environment (default true).
    #[serde(default = "yes")]
    pub freeze_sensitive: bool,
    /// Risk score at or above which `highRiskRoles` must also approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_threshold: Option<u32>,
    /// Roles added to the required roles when the risk threshold is reached.
    #[serde(default)]
    pub high_risk_roles: Vec<String>,
    /// Custom gates (docs/gates.md): each names a Rego rule `data.gates.<name>.result` of the
    /// policy's `rego` modules, evaluated after the evidence gates (tests to compliance) and
    /// before freeze, risk and approvals, in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
}

impl Default for EnvPolicy {
    fn default() -> Self {
        serde_json::from_str("{}").unwrap_or_else(|_| unreachable!("every EnvPolicy field has a default"))
    }
}

impl EnvPolicy {
    fn validate(&self, at: &str) -> Result<(), String> {
        for role in self.roles.iter().chain(&self.high_risk_roles) {
            ledger::ids::RoleName::check(role).map_err(|e| format!("{at}: role {}", e.reason))?;
        }
        if let Some(c) = self.min_test_coverage {
            if !(0.0..=100.0).contains(&c) {
                return Err(format!("{at}.minTestCoverage: {c} is not within 0 to 100"));
            }
        }
        if let Some(t) = self.risk_threshold {
            if t > 100 {
                return Err(format!("{at}.riskThreshold: {t} is above 100"));
            }
            if self.high_risk_roles.is_empty() {
                return Err(format!("{at}.riskThreshold needs highRiskRoles (who approves risky releases)"));
            }
        }
        if self.min_approvers > 100 {
            return Err(format!("{at}.minApprovers: {} is above 100", self.min_approvers));
        }
        if self.approval_ttl_seconds == Some(0) {
            return Err(format!("{at}.approvalTtlSeconds: 0 would expire every approval at once"));
        }
        if self.gates.len() > rego::MAX_GATES_PER_ENVIRONMENT {
            return Err(format!("{at}.gates: {} gates, at most {}", self.gates.len(), rego::MAX_GATES_PER_ENVIRONMENT));
        }
        let mut seen = BTreeSet::new();
        for gate in &self.gates {
            rego::check_gate_name(gate).map_err(|e| format!("{at}.gates: {e}"))?;
            if !seen.insert(gate) {
                return Err(format!("{at}.gates: {gate} is listed twice"));
            }
        }
        Ok(())
    }
}

/// The policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReleasePolicy {
    /// Version, from 1; decisions name it.
    pub version: u64,
    /// Per-environment rules.
    #[serde(default)]
    pub environments: BTreeMap<String, EnvPolicy>,
    /// Rules for environments not listed; without it, releases to unlisted environments are
    /// rejected (`PolicyMissing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<EnvPolicy>,
    /// Rego modules the environments' `gates` name (docs/gates.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rego: Option<RegoPolicy>,
    /// JSON Schemas (draft 2020-12 unless `$schema` says otherwise) the `body` of
    /// `EvidenceAttached` of each kind must satisfy; a kind without one takes any object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence_schemas: BTreeMap<String, serde_json::Value>,
}

/// Checks an evidence kind: lowercase letters, digits, `-` and `.`, starting with a letter, at
/// most 64 bytes (`slsa-provenance`, `sbom`, `slo-report`, `dr-drill`).
pub fn check_evidence_kind(kind: &str) -> Result<(), String> {
    let mut bytes = kind.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if !first_ok
        || kind.len() > 64
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    {
        return Err(format!(
            "evidence kind {:?}: a lowercase letter, then lowercase letters, digits, - or . (at most 64), \
             e.g. slsa-provenance",
            ledger::clip(kind)
        ));
    }
    Ok(())
}

/// Compiles an evidence schema (no remote references are ever fetched).
pub fn compile_schema(kind: &str, schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| format!("evidenceSchemas.{kind} is not a valid JSON Schema: {e}"))
}

impl ReleasePolicy {
    /// Checks the document is coherent.
    pub fn validate(&self) -> Result<(), String> {
        if self.version == 0 {
            return Err("version: must be 1 or more".into());
        }
        for (env, p) in &self.environments {
            ledger::ids::Environment::check_named("environments", env)?;
            p.validate(&format!("environments.{env}"))?;
        }
        if let Some(d) = &self.default {
            d.validate("default")?;
        }
        for (kind, schema) in &self.evidence_schemas {
            check_evidence_kind(kind).map_err(|e| format!("evidenceSchemas: {e}"))?;
            compile_schema(kind, schema)?;
        }
        let gates = self.custom_gates();
        match (&self.rego, gates.is_empty()) {
            (None, false) => {
                let first = gates.iter().next().map(String::as_str).unwrap_or_default();
                return Err(format!("gates: {first} is named but the policy carries no rego modules"));
            }
            (Some(r), _) => {
                rego::compiled(r, &gates)?;
            }
            (None, true) => {}
        }
        Ok(())
    }

    /// Every custom gate any environment names.
    pub fn custom_gates(&self) -> BTreeSet<String> {
        self.environments.values().chain(&self.default).flat_map(|p| p.gates.iter().cloned()).collect()
    }

    /// The rules for `environment`, if the policy covers it.
    pub fn for_env(&self, environment: &str) -> Option<&EnvPolicy> {
        self.environments.get(environment).or(self.default.as_ref())
    }
}

/// `PolicyUpdated.data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyUpdatedData {
    /// The new policy, in force from this entry on.
    pub policy: ReleasePolicy,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Found by the `policy_json` fuzz target in CI's 16 seconds: serde_json's default float
    /// parser is not correctly rounded for long literals, so a policy read back from the
    /// projection store (serialised shortest, parsed again) could hold another
    /// `minTestCoverage` than the fold read from the event — a restarted worker and a fresh
    /// fold evaluating one gate against two thresholds. The workspace enables serde_json's
    /// `float_roundtrip` (the fuzz input's 3.3333333333333342e65 came back as
    /// 3.333333333333334e65 without it).
    #[test]
    fn a_policy_survives_its_json_round_trip_bit_for_bit() {
        let document = r#"{"version":11,"environments":{"prod":{"minTestCoverage":333333333333333333333333333333333333333333333333333333333333333380.0}}}"#;
        let policy: ReleasePolicy = serde_json::from_str(document).unwrap();
        let again: ReleasePolicy = serde_json::from_slice(&serde_json::to_vec(&policy).unwrap()).unwrap();
        assert_eq!(again, policy);
        let coverage = |p: &ReleasePolicy| p.environments["prod"].min_test_coverage.unwrap().to_bits();
        assert_eq!(coverage(&again), coverage(&policy));
        for literal in ["80.00000000000000000001", "79.999999999999999999999", "0.1000000000000000055511151231257827"] {
            let parsed: f64 = serde_json::from_str(literal).unwrap();
            assert_eq!(parsed, literal.parse::<f64>().unwrap(), "{literal}: correctly rounded, as Rust's parser");
        }
    }

    #[test]
    fn defaults_fail_closed() {
        let p = EnvPolicy::default();
        assert!(p.requires_approval);
        assert_eq!(p.min_approvers, 1);
        assert_eq!(p.required_signals, vec![Signal::TestsPassed, Signal::SecurityGateStatus]);
        assert_eq!(p.max_cve_severity, Severity::Medium);
        assert!(p.separation_of_duties && p.freeze_sensitive);
    }

    #[test]
    fn env_lookup_falls_back_to_default() {
        let policy: ReleasePolicy = serde_json::from_value(serde_json::json!({
            "version": 2, "environments": {"prod": {"minApprovers": 2}}, "default": {"requiresApproval": false}
        }))
        .unwrap();
        policy.validate().unwrap();
        assert_eq!(policy.for_env("prod").unwrap().min_approvers, 2);
        assert!(!policy.for_env("staging").unwrap().requires_approval);
        let no_default = ReleasePolicy { default: None, ..policy };
        assert!(no_default.for_env("staging").is_none());
    }

    #[test]
    fn incoherent_policies_are_refused() {
        for (doc, expect) in [
            (serde_json::json!({"version": 0}), "version"),
            (serde_json::json!({"version": 1, "default": {"riskThreshold": 50}}), "highRiskRoles"),
            (serde_json::json!({"version": 1, "default": {"minTestCoverage": 120.0}}), "minTestCoverage"),
            (serde_json::json!({"version": 1, "environments": {"prod": {"roles": ["qa"]}}}), "role"),
            (serde_json::json!({"version": 1, "default": {"approvalTtlSeconds": 0}}), "approvalTtlSeconds"),
        ] {
            let policy: ReleasePolicy = serde_json::from_value(doc).unwrap();
            let err = policy.validate().unwrap_err();
            assert!(err.contains(expect), "{err}");
        }
    }
}
