//! The governance test kit: a ledger that applies the event catalogue, a projection worker
//! ([`Governor`]) on a temporary store, a cast of agent keys, and a builder for every catalogue
//! event, so that a governance test reads as the events it appends and the outcome it expects.
//!
//! Time is the ledger's [`ManualClock`]. An event's `occurredAt` is the clock's reading when it
//! is appended, and [`Event::at`] / [`Event::after`] move the clock first, so the entry's
//! `recordedAt` (the evaluation time of any decision it triggers) is exactly what the test says.
//!
//! Keys are derived from the agent id ([`key_of`]), so key ids, and with them every ordering
//! that depends on them, are the same on every run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledger::{AppendError, AppendEvent, Config, Entry, Envelope, KeyPair, Ledger, ManualClock, Receipt};
use projections::freeze::{format_ns, parse_rfc3339_ns};
use projections::state::{ReleaseState, ReleaseStatus};
use projections::{query, Catalogue, Governor, ReleaseSummary, TenantState};
use serde_json::{json, Value};

/// The tenant every governance test uses.
pub const TENANT: &str = "vetclinic-001";

/// One second, in ns.
pub const SEC: u64 = 1_000_000_000;
/// One minute, in ns.
pub const MINUTE: u64 = 60 * SEC;
/// One hour, in ns.
pub const HOUR: u64 = 60 * MINUTE;
/// One day, in ns.
pub const DAY: u64 = 24 * HOUR;

/// The data dir's admin key: signs policy and freezes in these tests.
pub const ADMIN: &str = "admin";
/// The pipeline: declares releases, publishes evidence, requests evaluations, deploys.
pub const CI: &str = "ci-pipeline";
/// A developer holding `QA`: declares releases too, so it can try to approve its own.
pub const DEV: &str = "dev-lead";
/// The default `QA` approver.
pub const QA_LEAD: &str = "qa-lead";
/// A second `QA` key (a distinct approver).
pub const QA_SECOND: &str = "qa-second";
/// Holds `ReleaseManager`.
pub const RELEASE_MANAGER: &str = "release-manager";
/// Holds `Security`.
pub const SECURITY_OFFICER: &str = "security-officer";
/// Holds both `QA` and `ReleaseManager` (one key, two roles).
pub const QA_MANAGER: &str = "qa-manager";
/// Holds `CTO` (the high-risk approver in these tests).
pub const CTO: &str = "cto";
/// Holds `StudioAdmin` (may override freezes).
pub const STUDIO_ADMIN: &str = "studio-admin";

/// Every agent [`Scenario::new`] registers, with its roles; each may sign any ordinary type.
pub const CAST: &[(&str, &[&str])] = &[
    (CI, &[]),
    (DEV, &["QA"]),
    (QA_LEAD, &["QA"]),
    (QA_SECOND, &["QA"]),
    (RELEASE_MANAGER, &["ReleaseManager"]),
    (QA_MANAGER, &["QA", "ReleaseManager"]),
    (SECURITY_OFFICER, &["Security"]),
    (CTO, &["CTO"]),
    (STUDIO_ADMIN, &["StudioAdmin"]),
];

/// Where the clock stands when a scenario starts: 2025-03-01T00:00:00Z.
pub const START_NS: u64 = 1_740_787_200 * SEC;

/// Nanoseconds since the epoch of an RFC 3339 time (panics on a typo).
pub fn ns(rfc3339: &str) -> u64 {
    let at = parse_rfc3339_ns(rfc3339).unwrap_or_else(|e| panic!("{e}"));
    u64::try_from(at).unwrap_or_else(|_| panic!("{rfc3339} is before 1970"))
}

/// RFC 3339 (UTC) of ns since the epoch.
pub fn rfc3339(at_ns: u64) -> String {
    format_ns(i64::try_from(at_ns).unwrap_or(i64::MAX))
}

/// The key of an agent: derived from its id, so every run uses the same key ids.
pub fn key_of(agent_id: &str) -> KeyPair {
    let digest = blake3::hash(format!("release-ledger/tests/agent/{agent_id}").as_bytes());
    KeyPair::from_seed(digest.as_bytes())
}

/// How an event moves the clock before it is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMove {
    /// Set the clock to this time (ns).
    To(u64),
    /// Advance the clock by this much (ns).
    By(u64),
}

/// An event to append: type, release, `data`, who signs it, and test-side annotations.
#[derive(Debug, Clone)]
pub struct Event {
    /// The catalogue type (or any string, to test refusals).
    pub event_type: String,
    /// The body's `releaseId`.
    pub release: Option<String>,
    /// The body's `data`.
    pub data: Value,
    /// The agent (a [`CAST`] member, one registered with [`Scenario::register`], or [`ADMIN`]).
    pub signer: String,
    /// A fixed event id (default: a fresh one).
    pub event_id: Option<String>,
    /// Remember the appended seq under this name.
    pub label: Option<String>,
    /// Set `data.seq` to the seq remembered under this name (invalidations).
    pub refers_to: Option<String>,
    /// Move the clock first.
    pub clock: Option<ClockMove>,
}

impl Event {
    fn new(event_type: &str, release: Option<&str>, data: Value, signer: &str) -> Self {
        Self {
            event_type: event_type.to_owned(),
            release: release.map(str::to_owned),
            data,
            signer: signer.to_owned(),
            event_id: None,
            label: None,
            refers_to: None,
            clock: None,
        }
    }

    /// Signed by `agent` instead of the default signer.
    pub fn by(mut self, agent: &str) -> Self {
        self.signer = agent.to_owned();
        self
    }

    /// With `data.<field>` set to `value`.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.data[field] = value.into();
        self
    }

    /// Remembered as `name` (for [`invalidate`]).
    pub fn label(mut self, name: &str) -> Self {
        self.label = Some(name.to_owned());
        self
    }

    /// Appended with the clock set to `at_ns`.
    pub fn at(mut self, at_ns: u64) -> Self {
        self.clock = Some(ClockMove::To(at_ns));
        self
    }

    /// Appended after the clock advanced by `delta_ns`.
    pub fn after(mut self, delta_ns: u64) -> Self {
        self.clock = Some(ClockMove::By(delta_ns));
        self
    }

    /// With a fixed event id.
    pub fn id(mut self, event_id: &str) -> Self {
        self.event_id = Some(event_id.to_owned());
        self
    }
}

/// The agent that signs approvals in `role` unless told otherwise.
fn approver_of(role: &str) -> &'static str {
    CAST.iter().find(|(agent, roles)| *agent != DEV && roles.contains(&role)).map_or(QA_LEAD, |(agent, _)| *agent)
}

/// `PolicyUpdated` with the policy document `doc`, signed by the admin key.
pub fn policy(doc: Value) -> Event {
    Event::new("PolicyUpdated", None, json!({ "policy": doc }), ADMIN)
}

/// The baseline `prod` rules of the gate tests: `QA` must approve (one distinct key), tests,
/// coverage (>= 80 %) and a scan are required, CVEs up to `Medium`, signed images and SBOMs
/// required, approvals last an hour, separation of duties, freeze-sensitive.
pub fn base_env_policy() -> Value {
    json!({
        "requiresApproval": true,
        "roles": ["QA"],
        "minApprovers": 1,
        "requiredSignals": ["TestsPassed", "CoverageVerified", "SecurityGateStatus"],
        "minTestCoverage": 80.0,
        "maxCVESeverity": "Medium",
        "requireSignedImages": true,
        "requireSbom": true,
        "approvalTtlSeconds": 3600,
        "separationOfDuties": true,
        "freezeSensitive": true
    })
}

/// A policy document, version 1, whose only environment is `prod`: [`base_env_policy`] with
/// the fields of `patch` replaced (an explicit `null` is kept: it means "none" in the schema).
pub fn prod_policy(patch: Value) -> Value {
    let mut env = base_env_policy();
    if let Value::Object(fields) = patch {
        for (field, value) in fields {
            env[field.as_str()] = value;
        }
    }
    json!({ "version": 1, "environments": { "prod": env } })
}

/// `ReleaseIntentDeclared` of `modules` (name, version) to `environment`, by the pipeline.
pub fn intent(release: &str, environment: &str, modules: &[(&str, &str)]) -> Event {
    let modules: Vec<Value> = modules.iter().map(|(name, version)| json!({"name": name, "version": version})).collect();
    Event::new(
        "ReleaseIntentDeclared",
        Some(release),
        json!({ "environment": environment, "modules": modules, "projectId": "vetclinic", "triggeredBy": "ci" }),
        CI,
    )
}

/// `ReleaseEvaluationRequested`, by the pipeline.
pub fn evaluate(release: &str) -> Event {
    Event::new("ReleaseEvaluationRequested", Some(release), json!({ "reason": "pipeline finished" }), CI)
}

/// `TestsPassed` of the `unit` suite (120 passed).
pub fn tests_passed(release: &str, module: &str, version: &str) -> Event {
    Event::new(
        "TestsPassed",
        Some(release),
        json!({ "module": module, "version": version, "suite": "unit", "passed": 120, "failed": 0 }),
        CI,
    )
}

/// `TestsFailed` of the `unit` suite (3 failed).
pub fn tests_failed(release: &str, module: &str, version: &str) -> Event {
    Event::new(
        "TestsFailed",
        Some(release),
        json!({ "module": module, "version": version, "suite": "unit", "passed": 117, "failed": 3 }),
        CI,
    )
}

/// `CoverageVerified` at `percent`.
pub fn coverage(release: &str, module: &str, version: &str, percent: f64) -> Event {
    Event::new(
        "CoverageVerified",
        Some(release),
        json!({ "module": module, "version": version, "percent": percent }),
        CI,
    )
}

/// `BDDValidated`.
pub fn bdd(release: &str, module: &str, version: &str) -> Event {
    Event::new("BDDValidated", Some(release), json!({ "module": module, "version": version }), CI)
}

/// A clean `SecurityGateStatus`: passed, no CVE, signed image, SBOM, licences compliant.
/// Patch fields with [`Event::with`] (`status`, `cveSeverity`, `imageSigned`, `sbomPresent`,
/// `licenseCompliant`).
pub fn security(release: &str, module: &str, version: &str) -> Event {
    Event::new(
        "SecurityGateStatus",
        Some(release),
        json!({
            "module": module, "version": version, "status": "Passed", "cveSeverity": "None",
            "imageSigned": true, "sbomPresent": true, "licenseCompliant": true
        }),
        CI,
    )
}

/// A passing `SecurityGateStatus` that found a CVE of `severity`.
pub fn security_cve(release: &str, module: &str, version: &str, severity: &str) -> Event {
    security(release, module, version).with("cveSeverity", severity)
}

/// `PolicyViolationDetected` of `rule`, about `module` if given.
pub fn violation(release: &str, module: Option<&str>, rule: &str) -> Event {
    let mut data = json!({ "rule": rule, "detail": format!("{rule} violated") });
    if let Some(module) = module {
        data["module"] = module.into();
    }
    Event::new("PolicyViolationDetected", Some(release), data, CI)
}

/// The SLO error-budget gate of docs/gates (a worked example of issue 22).
pub const SLO_GATE: &str = include_str!("../../docs/gates/slo_error_budget.rego");

/// The sha256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The artifact digest the kit gives `module@version` (what its evidence names as subject).
pub fn artifact_digest(module: &str, version: &str) -> String {
    sha256_hex(format!("artifact {module}@{version}").as_bytes())
}

/// `EvidenceAttached` of `kind` about `module@version`, with `body` (by the pipeline): the
/// subject is [`artifact_digest`], the content digest that of the body's JSON.
pub fn attach(release: &str, module: &str, version: &str, kind: &str, body: Value) -> Event {
    Event::new(
        "EvidenceAttached",
        Some(release),
        json!({
            "module": module, "version": version, "kind": kind,
            "subjectDigest": { "sha256": artifact_digest(module, version) },
            "contentDigest": { "sha256": sha256_hex(body.to_string().as_bytes()) },
            "mediaType": "application/json",
            "body": body,
        }),
        CI,
    )
}

/// An in-toto Statement v1 about `module@version` ([`artifact_digest`]).
pub fn statement(module: &str, version: &str, predicate_type: &str, predicate: Value) -> Value {
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{ "name": format!("{module}@{version}"), "digest": { "sha256": artifact_digest(module, version) } }],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

/// `EvidenceAttached` carrying `statement` as an in-toto attestation (DSSE) signed by `signer`
/// (the agent's kit key), appended by the pipeline.
pub fn attestation(release: &str, module: &str, version: &str, kind: &str, statement: &Value, signer: &str) -> Event {
    let payload = serde_json::to_vec(statement).unwrap_or_default();
    let key = key_of(signer);
    let sig = key.sign(&ledger::pae("application/vnd.in-toto+json", &payload));
    let b64 = |bytes: &[u8]| ledger::b64::encode(bytes);
    Event::new(
        "EvidenceAttached",
        Some(release),
        json!({
            "module": module, "version": version, "kind": kind,
            "subjectDigest": { "sha256": artifact_digest(module, version) },
            "contentDigest": { "sha256": sha256_hex(&payload) },
            "mediaType": "application/vnd.in-toto+json",
            "attestation": {
                "payloadType": "application/vnd.in-toto+json",
                "payload": b64(&payload),
                "signatures": [{ "keyid": key.key_id().to_hex(), "sig": b64(&sig) }],
            },
        }),
        CI,
    )
}

/// `PipelineReady` for a module version.
pub fn pipeline_ready(release: &str, module: &str, version: &str) -> Event {
    Event::new(
        "PipelineReady",
        Some(release),
        json!({ "module": module, "version": version, "pipelineId": "pipeline-1" }),
        CI,
    )
}

/// `ApprovalGranted` as `role`, by the cast member holding it (see [`CAST`]).
pub fn approve(release: &str, role: &str) -> Event {
    Event::new(
        "ApprovalGranted",
        Some(release),
        json!({ "role": role, "comment": "looks good", "method": "CLI" }),
        approver_of(role),
    )
}

/// `ApprovalRejected` as `role`.
pub fn reject(release: &str, role: &str, reason: &str) -> Event {
    Event::new("ApprovalRejected", Some(release), json!({ "role": role, "reason": reason }), approver_of(role))
}

/// A one-off `ChangeFreezeDeclared` over `environments` (empty = all), `[from, to)`.
pub fn freeze_oneoff(freeze_id: &str, environments: &[&str], from: &str, to: &str) -> Event {
    Event::new(
        "ChangeFreezeDeclared",
        None,
        json!({
            "freezeId": freeze_id, "environments": environments, "reason": "release freeze",
            "from": from, "to": to
        }),
        ADMIN,
    )
}

/// A recurring `ChangeFreezeDeclared` from an RFC 5545 rule, anchored at local midnight of the
/// day it is declared.
pub fn freeze_recurring(
    freeze_id: &str,
    environments: &[&str],
    rrule: &str,
    duration_seconds: u64,
    time_zone: &str,
) -> Event {
    Event::new(
        "ChangeFreezeDeclared",
        None,
        json!({
            "freezeId": freeze_id, "environments": environments, "reason": "recurring freeze",
            "recurrence": { "rrule": rrule, "durationSeconds": duration_seconds, "timeZone": time_zone }
        }),
        ADMIN,
    )
}

/// A recurring `ChangeFreezeDeclared` from a five-field cron pattern.
pub fn freeze_cron(
    freeze_id: &str,
    environments: &[&str],
    cron: &str,
    duration_seconds: u64,
    time_zone: &str,
) -> Event {
    Event::new(
        "ChangeFreezeDeclared",
        None,
        json!({
            "freezeId": freeze_id, "environments": environments, "reason": "cron freeze",
            "recurrence": { "cron": cron, "durationSeconds": duration_seconds, "timeZone": time_zone }
        }),
        ADMIN,
    )
}

/// `ChangeFreezeLifted`.
pub fn lift(freeze_id: &str) -> Event {
    Event::new("ChangeFreezeLifted", None, json!({ "freezeId": freeze_id, "reason": "lifted" }), ADMIN)
}

/// `FreezeOverrideGranted` for one release, by the StudioAdmin.
pub fn override_freeze(release: &str, freeze_id: &str) -> Event {
    Event::new(
        "FreezeOverrideGranted",
        Some(release),
        json!({ "freezeId": freeze_id, "justification": "hotfix for a production incident" }),
        STUDIO_ADMIN,
    )
}

/// `EvidenceInvalidated` of the event remembered as `label` (see [`Event::label`]).
pub fn invalidate(release: &str, label: &str) -> Event {
    let mut event = invalidate_seq(release, 0);
    event.refers_to = Some(label.to_owned());
    event
}

/// `EvidenceInvalidated` of the entry at `seq`.
pub fn invalidate_seq(release: &str, seq: u64) -> Event {
    Event::new("EvidenceInvalidated", Some(release), json!({ "seq": seq, "reason": "raised in error" }), CI)
}

/// `AgentKeyRevoked` of the key of `agent`, signed by the admin key.
pub fn revoke_key(agent: &str) -> Event {
    Event::new(
        "AgentKeyRevoked",
        None,
        json!({ "keyId": key_of(agent).key_id().to_hex(), "reason": "left the team" }),
        ADMIN,
    )
}

/// `DeploymentStarted`.
pub fn deploy_started(release: &str, environment: &str) -> Event {
    Event::new("DeploymentStarted", Some(release), json!({ "environment": environment }), CI)
}

/// `DeploymentCompleted`.
pub fn deploy_completed(release: &str, environment: &str) -> Event {
    Event::new("DeploymentCompleted", Some(release), json!({ "environment": environment }), CI)
}

/// `DeploymentFailed`.
pub fn deploy_failed(release: &str, environment: &str, reason: &str) -> Event {
    Event::new("DeploymentFailed", Some(release), json!({ "environment": environment, "reason": reason }), CI)
}

/// `RollbackTriggered`.
pub fn rollback(release: &str, environment: &str, reason: &str) -> Event {
    Event::new("RollbackTriggered", Some(release), json!({ "environment": environment, "reason": reason }), CI)
}

/// A well-formed decision of `status` (`Approved`, `Rejected`…) signed by the pipeline: only
/// the ledger key may sign one.
pub fn forged_decision(release: &str, status: &str) -> Event {
    Event::new(
        &format!("Release{status}"),
        Some(release),
        json!({
            "status": status, "policyVersion": 1, "evaluatedAt": "2025-03-01T00:00:00Z", "trigger": 0,
            "evidence": [], "gates": [], "reasons": [], "retryAfter": null, "retryable": true,
            "suggestedFix": null, "riskScore": 0, "riskFactors": []
        }),
        CI,
    )
}

/// Any type and `data`, for refusals.
pub fn raw(event_type: &str, release: Option<&str>, data: Value) -> Event {
    Event::new(event_type, release, data, CI)
}

/// The standard passing evidence for one module version: unit tests, 92 % coverage, a clean
/// scan.
pub fn evidence(release: &str, module: &str, version: &str) -> Vec<Event> {
    vec![
        tests_passed(release, module, version),
        coverage(release, module, version, 92.0),
        security(release, module, version),
    ]
}

/// One line that says where a release stands, for tests to compare with an expected string:
///
/// `<status>[ <blocking code>(<module>)…][ | <informational codes, sorted>][ retryable|final][ until <retryAfter>] risk=<score>`
///
/// e.g. `Rejected TestsIncomplete(billing) retryable risk=10`,
/// `Delayed ChangeFreezeActive until 2025-03-31T00:00:00Z risk=10`, `Approved | FreezeOverridden risk=25`.
pub fn render(release: &ReleaseState) -> String {
    let mut line = release.status.as_str().to_owned();
    let Some(decision) = &release.decision else { return line };
    for reason in decision.blocking_reasons() {
        line.push(' ');
        line.push_str(reason.code.as_str());
        if let Some(module) = &reason.module {
            line.push_str(&format!("({module})"));
        }
    }
    let mut info: Vec<&str> =
        decision.reasons.iter().filter(|r| !r.code.is_blocking()).map(|r| r.code.as_str()).collect();
    info.sort_unstable();
    info.dedup();
    if !info.is_empty() {
        line.push_str(" | ");
        line.push_str(&info.join(","));
    }
    if release.status == ReleaseStatus::Rejected {
        line.push_str(if decision.retryable { " retryable" } else { " final" });
    }
    if let Some(retry_after) = &decision.retry_after {
        line.push_str(&format!(" until {retry_after}"));
    }
    line.push_str(&format!(" risk={}", decision.risk_score));
    line
}

/// A ledger with the catalogue, a cast of registered keys, and a projection worker.
#[derive(Debug)]
pub struct Scenario {
    /// The ledger (shared with the worker).
    pub ledger: Arc<Ledger>,
    /// The data dir's admin key.
    pub admin: KeyPair,
    /// The clock the ledger reads.
    pub clock: Arc<ManualClock>,
    keys: BTreeMap<String, KeyPair>,
    labels: BTreeMap<String, u64>,
    next_id: u64,
    /// The tenant appends and queries go to ([`TENANT`] unless [`Scenario::use_tenant`]).
    tenant: String,
    /// Tenants whose [`CAST`] is registered.
    tenants: Vec<String>,
    governor: Option<Governor>,
    store: tempfile::TempDir,
    _data: tempfile::TempDir,
}

impl Default for Scenario {
    fn default() -> Self {
        Self::new()
    }
}

impl Scenario {
    /// A fresh ledger at [`START_NS`] with every [`CAST`] member registered and a running worker.
    pub fn new() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(START_NS));
        let config = Config { rules: Some(Arc::new(Catalogue)), clock: clock.clone(), ..Config::default() };
        let ledger = Arc::new(Ledger::open(data.path(), config).expect("open ledger"));
        let admin = KeyPair::load(&data.path().join("keys/admin.pem")).expect("admin key");
        let mut scenario = Self {
            ledger,
            admin,
            clock,
            keys: BTreeMap::new(),
            labels: BTreeMap::new(),
            next_id: 0,
            tenant: TENANT.to_owned(),
            tenants: vec![TENANT.to_owned()],
            governor: None,
            store: tempfile::tempdir().expect("temp dir"),
            _data: data,
        };
        for (agent, roles) in CAST {
            scenario.register(agent, roles);
        }
        scenario.start_governor();
        scenario
    }

    /// Sends every later append and query to `tenant`, registering the [`CAST`] there first
    /// (the same keys as in every tenant) if this scenario has not used it yet.
    pub fn use_tenant(&mut self, tenant: &str) {
        self.tenant = tenant.to_owned();
        if !self.tenants.iter().any(|t| t == tenant) {
            self.tenants.push(tenant.to_owned());
            for (agent, roles) in CAST {
                self.register(agent, roles);
            }
        }
    }

    /// The tenant appends and queries go to.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Registers a key for `agent_id` holding `roles` (any ordinary type); returns its seq.
    pub fn register(&mut self, agent_id: &str, roles: &[&str]) -> u64 {
        let key = key_of(agent_id);
        let body = json!({
            "tenant": self.tenant, "stream": "keys", "type": "AgentKeyRegistered",
            "eventId": format!("register-{}", key.key_id()), "occurredAt": rfc3339(self.now()),
            "actor": { "agentId": ADMIN },
            "data": { "agentId": agent_id, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": [] },
        });
        let payload = serde_json::to_vec(&body).expect("serialise body");
        let receipt =
            self.ledger.append(AppendEvent::new(Envelope::sign(payload, &self.admin))).expect("register agent key");
        self.keys.insert(agent_id.to_owned(), key);
        receipt.seq
    }

    /// The clock's reading.
    pub fn now(&self) -> u64 {
        ledger::Clock::now_ns(self.clock.as_ref())
    }

    /// Appends `event` (moving the clock first if it says so).
    pub fn append(&mut self, event: Event) -> Result<Receipt, AppendError> {
        let label = event.label.clone();
        let signed = self.sign(event);
        let receipt = self.ledger.append(signed)?;
        if let Some(label) = label {
            self.labels.insert(label, receipt.seq);
        }
        Ok(receipt)
    }

    /// Appends `events` in atomic batches of `batch` (one commit each: for volume), panicking
    /// on a refusal. Labels are not recorded.
    pub fn run_batched(&mut self, events: Vec<Event>, batch: usize) {
        for chunk in events.chunks(batch) {
            let signed = chunk.iter().map(|event| self.sign(event.clone())).collect();
            let _ = self.ledger.append_batch(signed).unwrap_or_else(|e| panic!("batch refused: {e}"));
        }
    }

    /// The signed form of `event` (moving the clock first if it says so).
    fn sign(&mut self, event: Event) -> AppendEvent {
        match event.clock {
            Some(ClockMove::To(at)) => self.clock.set(at),
            Some(ClockMove::By(delta)) => self.clock.advance(delta),
            None => {}
        }
        let mut data = event.data.clone();
        if let Some(label) = &event.refers_to {
            let seq = *self.labels.get(label).unwrap_or_else(|| panic!("no event labelled {label:?}"));
            data["seq"] = seq.into();
        }
        let event_id = event.event_id.clone().unwrap_or_else(|| {
            self.next_id += 1;
            format!("{}-{}", event.signer, self.next_id)
        });
        let mut body = json!({
            "tenant": self.tenant,
            "stream": event.release.as_deref().map_or_else(|| "config".to_owned(), |r| format!("release/{r}")),
            "type": event.event_type, "eventId": event_id, "occurredAt": rfc3339(self.now()),
            "actor": { "agentId": event.signer }, "data": data,
        });
        if let Some(release) = &event.release {
            body["releaseId"] = release.as_str().into();
            body["traceId"] = format!("trace-{release}").into();
        }
        let key = if event.signer == ADMIN {
            self.admin.clone()
        } else {
            self.keys.get(&event.signer).unwrap_or_else(|| panic!("no key for {:?}", event.signer)).clone()
        };
        let payload = serde_json::to_vec(&body).expect("serialise body");
        AppendEvent::new(Envelope::sign(payload, &key))
    }

    /// Appends `event`, panicking on refusal; returns its seq.
    pub fn must(&mut self, event: Event) -> u64 {
        let what = format!("{} by {}", event.event_type, event.signer);
        self.append(event).unwrap_or_else(|e| panic!("append of {what} refused: {e}")).seq
    }

    /// Appends every event, panicking on the first refusal.
    pub fn run(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            let _ = self.must(event);
        }
    }

    /// The seq remembered as `label`.
    pub fn seq_of(&self, label: &str) -> u64 {
        *self.labels.get(label).unwrap_or_else(|| panic!("no event labelled {label:?}"))
    }

    /// The running worker.
    pub fn governor(&self) -> &Governor {
        self.governor.as_ref().expect("the governor is stopped")
    }

    /// Whether the worker runs.
    pub fn governor_running(&self) -> bool {
        self.governor.is_some()
    }

    /// Starts a worker on the scenario's projection store (a no-op if one runs).
    pub fn start_governor(&mut self) {
        if self.governor.is_none() {
            let governor = Governor::start(self.ledger.clone(), self.store.path(), None).expect("start governor");
            self.governor = Some(governor);
        }
    }

    /// Stops the worker and closes its store.
    pub fn stop_governor(&mut self) {
        if let Some(governor) = self.governor.take() {
            governor.shutdown();
        }
    }

    /// Replaces the projection store with a copy of `dir` (the worker must be stopped).
    pub fn use_store_copy(&mut self, dir: &Path) {
        assert!(self.governor.is_none(), "stop the governor before swapping its store");
        let store = tempfile::tempdir().expect("temp dir");
        copy_dir(dir, store.path());
        self.store = store;
    }

    /// The projection store's directory.
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// A copy of the projection store as it is now (the worker must be stopped).
    pub fn copy_store(&self) -> tempfile::TempDir {
        assert!(self.governor.is_none(), "stop the governor before copying its store");
        let copy = tempfile::tempdir().expect("temp dir");
        copy_dir(self.store.path(), copy.path());
        copy
    }

    /// Lets the worker fold everything and append everything due; panics if it cannot.
    pub fn settle(&self) {
        assert!(self.try_settle(Duration::from_secs(60)), "the governor did not settle: {:?}", self.owed());
    }

    /// Lets the worker fold everything and append everything due; returns whether it did.
    pub fn try_settle(&self, timeout: Duration) -> bool {
        self.governor().settle(timeout)
    }

    /// What the worker owes (outbox ids and their not-before times).
    pub fn owed(&self) -> Vec<(String, Option<i64>)> {
        self.state().meta.outbox.iter().map(|(id, o)| (id.clone(), o.not_before_ns)).collect()
    }

    /// The worker's state of the tenant.
    pub fn state(&self) -> TenantState {
        self.governor().snapshot(&self.tenant).expect("snapshot").unwrap_or_else(|| TenantState::new(&self.tenant))
    }

    /// The tenant folded from seq 0 (optionally only up to, excluding, `until`).
    pub fn fold(&self, until: Option<u64>) -> TenantState {
        projections::fold(&self.ledger, &self.tenant, until).expect("fold")
    }

    /// A release in the worker's state.
    pub fn release(&self, release: &str) -> ReleaseState {
        self.state().releases.get(release).cloned().unwrap_or_else(|| panic!("no release {release:?}"))
    }

    /// The `ReleaseSummary` query.
    pub fn summary(&self, release: &str) -> ReleaseSummary {
        let state = self.state();
        let found = state.releases.get(release).unwrap_or_else(|| panic!("no release {release:?}"));
        query::summary(&state, found)
    }

    /// [`render`] of a release in the worker's state.
    pub fn outcome(&self, release: &str) -> String {
        render(&self.release(release))
    }

    /// The tenant's size.
    pub fn size(&self) -> u64 {
        self.ledger.head(&self.tenant).map(|h| h.size).unwrap_or(0)
    }

    /// Every entry of the tenant.
    pub fn entries(&self) -> Vec<Entry> {
        crate::all_entries(&self.ledger, &self.tenant)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        // The worker holds the ledger; stop it before the data dir goes.
        self.stop_governor();
    }
}

/// The header and decision data of an entry's body (None when redacted).
pub fn body_of(entry: &Entry) -> Option<Value> {
    entry.envelope().and_then(|e| serde_json::from_slice(&e.payload).ok())
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for item in std::fs::read_dir(from).expect("read dir") {
        let item = item.expect("dir entry");
        let target = to.join(item.file_name());
        if item.file_type().expect("file type").is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            let _ = std::fs::copy(item.path(), &target).expect("copy file");
        }
    }
}

/// Where two tenant states differ, field by field (empty when equal): a readable failure
/// message for "the rebuild equals the live state".
pub fn diff(left: &TenantState, right: &TenantState) -> Vec<String> {
    let mut out = Vec::new();
    let meta = |s: &TenantState| serde_json::to_value(&s.meta).expect("meta to JSON");
    if let (Value::Object(a), Value::Object(b)) = (meta(left), meta(right)) {
        for (field, value) in &a {
            if b.get(field) != Some(value) {
                out.push(format!("meta.{field}: {value} != {}", b.get(field).unwrap_or(&Value::Null)));
            }
        }
    }
    if left.meta.history != right.meta.history {
        out.push("meta.history differs".into());
    }
    for id in left.releases.keys().chain(right.releases.keys()) {
        let a = left.releases.get(id).map(|r| serde_json::to_value(r).expect("release to JSON"));
        let b = right.releases.get(id).map(|r| serde_json::to_value(r).expect("release to JSON"));
        match (a, b) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                for (field, value) in &a {
                    if b.get(field) != Some(value) {
                        out.push(format!("release {id}.{field}: {value} != {}", b.get(field).unwrap_or(&Value::Null)));
                    }
                }
            }
            (a, b) if a.is_some() != b.is_some() => out.push(format!("release {id} only on one side")),
            _ => {}
        }
    }
    out.dedup();
    if out.is_empty() && left != right {
        out.push("states differ outside their serialised fields".into());
    }
    out
}

/// A small deterministic generator (SplitMix64): the same seed, the same workload.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One item of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

/// A release the workload drives.
#[derive(Debug, Clone)]
struct WorkRelease {
    id: String,
    environment: String,
    modules: Vec<(String, String)>,
    evidence: Vec<u64>,
    deploying: bool,
}

/// A seeded mix of every catalogue event over many releases: policies, one-off and recurring
/// freezes, lifts, overrides, signals (some stray), approvals and rejections by every role,
/// self-approvals, invalidations, violations, evaluation requests and deployments, with the
/// clock moving so that approvals expire, freezes come and go and the ledger's own retries
/// fall due.
#[derive(Debug)]
pub struct Workload {
    rng: Rng,
    releases: Vec<WorkRelease>,
    freezes: Vec<String>,
    policy_version: u64,
    /// A short-lived `QA` key: registered, approves a few releases, revoked.
    contractor: Option<String>,
    contractors: u64,
    /// Events appended by the workload (decisions and retries excluded).
    pub appended: u64,
}

const MODULES: &[&str] = &["billing", "payments", "auth", "search", "notifications", "reports"];
const ENVIRONMENTS: &[&str] = &["prod", "prod", "staging", "staging", "dev"];
const ROLE_SETS: &[&[&str]] = &[&["QA"], &["QA", "ReleaseManager"], &[]];
const APPROVERS: &[(&str, &str)] = &[
    (QA_LEAD, "QA"),
    (QA_SECOND, "QA"),
    (DEV, "QA"),
    (RELEASE_MANAGER, "ReleaseManager"),
    (SECURITY_OFFICER, "Security"),
    (CTO, "CTO"),
];

impl Workload {
    /// A workload from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            releases: Vec::new(),
            freezes: Vec::new(),
            policy_version: 0,
            contractor: None,
            contractors: 0,
            appended: 0,
        }
    }

    /// Appends `events` workload events to `scenario`, settling the worker (if it runs) every
    /// `settle_every` events so that its decisions interleave with the workload's.
    pub fn run(&mut self, scenario: &mut Scenario, events: u64, settle_every: u64) {
        if self.policy_version == 0 {
            self.policy(scenario);
        }
        let target = self.appended + events;
        while self.appended < target {
            self.step(scenario);
            if scenario.governor_running() && settle_every > 0 && self.appended % settle_every == 0 {
                scenario.settle();
            }
        }
    }

    fn push(&mut self, scenario: &mut Scenario, event: Event) -> u64 {
        self.appended += 1;
        scenario.must(event)
    }

    fn step(&mut self, scenario: &mut Scenario) {
        // Time moves in small steps, sometimes not at all.
        if !self.rng.chance(30) {
            scenario.clock.advance(self.rng.below(15 * MINUTE));
        }
        let roll = self.rng.below(100);
        if roll < 2 {
            self.policy(scenario);
        } else if roll < 4 {
            self.freeze(scenario);
        } else if roll < 5 {
            if !self.freezes.is_empty() {
                let id = self.rng.pick(&self.freezes).clone();
                let _ = self.push(scenario, lift(&id));
            }
        } else if roll < 6 {
            self.contractor(scenario);
        } else if roll < 13 || self.releases.is_empty() {
            self.declare(scenario);
        } else {
            self.release_event(scenario);
        }
    }

    fn policy(&mut self, scenario: &mut Scenario) {
        self.policy_version += 1;
        let rng = &mut self.rng;
        let env = |rng: &mut Rng| {
            let roles = *rng.pick(ROLE_SETS);
            json!({
                "roles": roles,
                "minApprovers": 1 + rng.below(2),
                "requiredSignals": if rng.chance(50) {
                    json!(["TestsPassed", "SecurityGateStatus"])
                } else {
                    json!(["TestsPassed", "CoverageVerified", "SecurityGateStatus", "BDDValidated"])
                },
                "minTestCoverage": 70 + rng.below(20),
                "maxCVESeverity": *rng.pick(&["Low", "Medium", "High"]),
                "requireSignedImages": rng.chance(50),
                "requireSbom": rng.chance(50),
                "approvalTtlSeconds": if rng.chance(20) { Value::Null } else { json!(1800 + rng.below(4) * 1800) },
                "separationOfDuties": rng.chance(80),
                "riskThreshold": 40 + rng.below(30),
                "highRiskRoles": ["CTO"],
            })
        };
        let mut prod = env(rng);
        let staging = env(rng);
        // Half the policies gate prod on policy code too: an SLO error budget over the
        // releases' attached slo-reports (docs/gates).
        let custom = rng.chance(50);
        if custom {
            prod["gates"] = json!(["slo_error_budget"]);
        }
        let mut doc = json!({ "version": self.policy_version, "environments": { "prod": prod, "staging": staging } });
        if custom {
            doc["rego"] = json!({ "modules": { "slo_error_budget.rego": SLO_GATE } });
        }
        if rng.chance(70) {
            doc["default"] = json!({ "requiresApproval": false, "requiredSignals": ["TestsPassed"] });
        }
        let _ = self.push(scenario, policy(doc));
    }

    fn freeze(&mut self, scenario: &mut Scenario) {
        let id = format!("freeze-{}", self.freezes.len() + 1);
        let environments: Vec<&str> = match self.rng.below(3) {
            0 => vec![],
            1 => vec!["prod"],
            _ => vec!["staging", "dev"],
        };
        let now = scenario.now();
        let event = match self.rng.below(6) {
            0 => freeze_recurring(&id, &environments, "FREQ=DAILY;BYHOUR=12", 2 * 3600, "Europe/Berlin"),
            1 => freeze_cron(&id, &environments, "30 9 * * *", 3600, "America/New_York"),
            _ => {
                let from = now.saturating_sub(self.rng.below(HOUR));
                let to = now + 10 * MINUTE + self.rng.below(3 * HOUR);
                freeze_oneoff(&id, &environments, &rfc3339(from), &rfc3339(to))
            }
        };
        self.freezes.push(id);
        let _ = self.push(scenario, event);
    }

    fn contractor(&mut self, scenario: &mut Scenario) {
        match self.contractor.take() {
            Some(agent) => {
                let _ = self.push(scenario, revoke_key(&agent));
            }
            None => {
                self.contractors += 1;
                let agent = format!("contractor-{}", self.contractors);
                self.appended += 1;
                let _ = scenario.register(&agent, &["QA"]);
                self.contractor = Some(agent);
            }
        }
    }

    fn declare(&mut self, scenario: &mut Scenario) {
        let id = format!("release-{:04}", self.releases.len() + 1);
        let environment = (*self.rng.pick(ENVIRONMENTS)).to_owned();
        let count = 1 + self.rng.below(3);
        let mut modules: Vec<(String, String)> = Vec::new();
        while (modules.len() as u64) < count {
            let name = (*self.rng.pick(MODULES)).to_owned();
            if modules.iter().all(|(m, _)| *m != name) {
                modules.push((name, format!("1.{}.{}", self.rng.below(4), self.rng.below(10))));
            }
        }
        let pairs: Vec<(&str, &str)> = modules.iter().map(|(m, v)| (m.as_str(), v.as_str())).collect();
        let author = if self.rng.chance(20) { DEV } else { CI };
        let seq = self.push(scenario, intent(&id, &environment, &pairs).by(author));
        self.releases.push(WorkRelease { id, environment, modules, evidence: vec![seq], deploying: false });
    }

    fn release_event(&mut self, scenario: &mut Scenario) {
        // Mostly the recent releases, so that each gathers enough evidence to be decided.
        let recent = self.releases.len().saturating_sub(12);
        let index = recent + usize::try_from(self.rng.below((self.releases.len() - recent) as u64)).unwrap_or(0);
        let release = self.releases[index].clone();
        let id = release.id.as_str();
        let (module, version) = self.rng.pick(&release.modules).clone();
        // Now and then a signal names a version the release does not ship.
        let version = if self.rng.chance(4) { "9.9.9".to_owned() } else { version };
        let roll = self.rng.below(100);
        let (event, evidence) = if roll < 18 {
            let e = if self.rng.chance(88) {
                tests_passed(id, &module, &version)
            } else {
                tests_failed(id, &module, &version)
            };
            (e, true)
        } else if roll < 28 {
            let percent = (600 + self.rng.below(401)) as f64 / 10.0;
            (coverage(id, &module, &version, percent), true)
        } else if roll < 40 {
            let e = security(id, &module, &version)
                .with("status", if self.rng.chance(94) { "Passed" } else { "Failed" })
                .with("cveSeverity", *self.rng.pick(&["None", "None", "None", "Low", "Medium", "High", "Critical"]))
                .with("imageSigned", self.rng.chance(90))
                .with("sbomPresent", self.rng.chance(90))
                .with("licenseCompliant", self.rng.chance(95));
            (e, true)
        } else if roll < 45 {
            (bdd(id, &module, &version), true)
        } else if roll < 57 {
            (evaluate(id), false)
        } else if roll < 73 {
            let (agent, role) = *self.rng.pick(APPROVERS);
            match &self.contractor {
                Some(contractor) if self.rng.chance(20) => (approve(id, "QA").by(contractor), true),
                _ => (approve(id, role).by(agent), true),
            }
        } else if roll < 75 {
            let (agent, role) = *self.rng.pick(APPROVERS);
            (reject(id, role, "not convinced").by(agent), true)
        } else if roll < 77 {
            let freeze =
                if self.freezes.is_empty() { "freeze-0".to_owned() } else { self.rng.pick(&self.freezes).clone() };
            (override_freeze(id, &freeze), true)
        } else if roll < 79 {
            (violation(id, Some(&module), "license-policy"), true)
        } else if roll < 83 {
            let seq = *self.rng.pick(&release.evidence);
            (invalidate_seq(id, seq), false)
        } else if roll < 95 {
            let Some(event) = self.deployment(scenario, &release) else { return };
            (event, false)
        } else if roll < 97 {
            (pipeline_ready(id, &module, &version), false)
        } else {
            let remaining = f64::from(u8::try_from(self.rng.below(60)).unwrap_or(0)) / 100.0;
            let body = json!({ "objective": 99.9, "errorBudgetRemaining": remaining });
            (attach(id, &module, &version, "slo-report", body), true)
        };
        let seq = self.push(scenario, event);
        if evidence {
            self.releases[index].evidence.push(seq);
        }
    }

    /// Deploys a release the worker (when it runs) sees approved, if there is one; otherwise
    /// now and then starts a deployment without approval, or ends one already started. A
    /// deployment ends in completion, or now and then in failure or rollback.
    fn deployment(&mut self, scenario: &mut Scenario, release: &WorkRelease) -> Option<Event> {
        if scenario.governor_running() {
            scenario.settle();
            let state = scenario.state();
            let approved = self.releases.iter().position(|r| {
                !r.deploying && state.releases.get(&r.id).is_some_and(|s| s.status == ReleaseStatus::Approved)
            });
            if let Some(index) = approved {
                self.releases[index].deploying = true;
                let approved = self.releases[index].clone();
                let _ = self.push(scenario, deploy_started(&approved.id, &approved.environment));
                return Some(self.end_deployment(&approved));
            }
        }
        if release.deploying {
            return Some(self.end_deployment(release));
        }
        let index = self.releases.iter().position(|r| r.id == release.id)?;
        if self.rng.chance(10) {
            self.releases[index].deploying = true;
            return Some(deploy_started(&release.id, &release.environment));
        }
        None
    }

    fn end_deployment(&mut self, release: &WorkRelease) -> Event {
        let (id, env) = (release.id.as_str(), release.environment.as_str());
        match self.rng.below(10) {
            0 => deploy_failed(id, env, "health check failed"),
            1 => rollback(id, env, "error rate"),
            _ => deploy_completed(id, env),
        }
    }
}
