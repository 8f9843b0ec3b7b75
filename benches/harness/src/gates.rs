//! The custom-gate workloads (issue 22, docs/gates.md): policies whose `prod` environment names
//! Rego gates taken from the worked examples in `docs/gates/`, and releases carrying the evidence
//! those gates read, appended through the governance test kit ([`testkit::gov::Scenario`]: the
//! event catalogue checks every append, the clock is the kit's manual one).
//!
//! The micro-bench (`benches/micro/benches/gates.rs`) folds one such release and times
//! `projections::gates::evaluate` on it; `gate-catchup` (bench-tools) folds thousands of them.

use serde_json::{json, Value};
use testkit::gov::{
    approve, artifact_digest, attach, attestation, base_env_policy, deploy_completed, deploy_started, evaluate,
    evidence, intent, policy, statement, Event, Scenario, SEC,
};

/// The SLO error-budget example (reads `slo-report` evidence).
pub const SLO_GATE: &str = include_str!("../../../docs/gates/slo_error_budget.rego");
/// The performance-regression example (reads `perf-baseline` evidence).
pub const PERF_GATE: &str = include_str!("../../../docs/gates/perf_regression.rego");
/// The DR-drill example (reads `dr-drill` evidence and the evaluation time).
pub const DR_GATE: &str = include_str!("../../../docs/gates/dr_drill_recent.rego");
/// The SLSA-provenance example (reads attestations and the intent's module digests).
pub const SLSA_GATE: &str = include_str!("../../../docs/gates/slsa_provenance.rego");
/// The example policy of docs/gates (its `evidenceSchemas` are reused).
pub const EXAMPLE_POLICY: &str = include_str!("../../../docs/gates/policy.json");

/// The agent holding `Attestor`, who signs the releases' SLSA provenance.
pub const BUILD_SYSTEM: &str = "build-system";
/// The builder the SLSA example trusts.
pub const TRUSTED_BUILDER: &str =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";
/// The predicate type of SLSA provenance v1.
pub const PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

/// The modules every release ships.
pub const MODULES: [&str; 3] = ["api", "web", "worker"];

/// The environment the releases go to (the one the policies gate).
pub const ENVIRONMENT: &str = "prod";

/// Which custom gates the `prod` environment names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gates {
    /// None: the policy carries no Rego (nor evidence schemas).
    None,
    /// `gates.g1` .. `gates.gN`: copies of the SLO example (odd i) and of the perf-regression
    /// example (even i), each renamed to its own package.
    Copies(usize),
    /// The four worked examples under their own names, as docs/gates/policy.json declares them
    /// for `prod`.
    Examples,
}

impl Gates {
    /// How many gates the environment names.
    pub fn count(self) -> usize {
        match self {
            Self::None => 0,
            Self::Copies(n) => n,
            Self::Examples => 4,
        }
    }

    /// (gate name, Rego source) of every gate named.
    pub fn modules(self) -> Vec<(String, String)> {
        match self {
            Self::None => Vec::new(),
            Self::Copies(n) => (1..=n)
                .map(|i| {
                    let name = format!("g{i}");
                    let source = renamed(if i % 2 == 1 { SLO_GATE } else { PERF_GATE }, &name);
                    (name, source)
                })
                .collect(),
            Self::Examples => [
                ("slo_error_budget", SLO_GATE),
                ("dr_drill_recent", DR_GATE),
                ("slsa_provenance", SLSA_GATE),
                ("perf_regression", PERF_GATE),
            ]
            .into_iter()
            .map(|(name, source)| (name.to_owned(), source.to_owned()))
            .collect(),
        }
    }
}

/// `source` with its `package gates.<x>` line made `package gates.<name>` (a plain text
/// substitution: the examples name their package once, on a line of its own).
pub fn renamed(source: &str, name: &str) -> String {
    source
        .lines()
        .map(|line| if line.starts_with("package gates.") { format!("package gates.{name}") } else { line.to_owned() })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The policy document: the kit's baseline `prod` rules (one `QA` approval, tests, coverage of
/// at least 80 %, a clean scan with signed images and an SBOM), plus, when `gates` names any,
/// those gates, their Rego modules and docs/gates/policy.json's `evidenceSchemas`.
pub fn policy_doc(gates: Gates) -> Value {
    let mut env = base_env_policy();
    let modules = gates.modules();
    let mut doc = json!({ "version": 1, "environments": {} });
    if !modules.is_empty() {
        env["gates"] = json!(modules.iter().map(|(name, _)| name).collect::<Vec<_>>());
        let sources: serde_json::Map<String, Value> =
            modules.iter().map(|(name, source)| (format!("{name}.rego"), json!(source))).collect();
        doc["rego"] = json!({ "modules": sources });
        let example: Value = serde_json::from_str(EXAMPLE_POLICY).expect("docs/gates/policy.json is JSON");
        doc["evidenceSchemas"] = example["evidenceSchemas"].clone();
    }
    doc["environments"][ENVIRONMENT] = env;
    doc
}

/// What a release carries besides the built-in gates' signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// Nothing attached.
    None,
    /// Per module, `rounds` × (an `slo-report` and a `perf-baseline`).
    SloPerf {
        /// Reports of each kind per module.
        rounds: usize,
    },
    /// What the four examples read: per module an `slo-report`, a `perf-baseline` and an SLSA
    /// provenance attestation signed by [`BUILD_SYSTEM`]; per release one `dr-drill`.
    All,
}

impl Evidence {
    /// `EvidenceAttached` entries per release.
    pub fn attached(self) -> usize {
        match self {
            Self::None => 0,
            Self::SloPerf { rounds } => 2 * rounds * MODULES.len(),
            Self::All => 3 * MODULES.len() + 1,
        }
    }
}

/// The version every module of release `index` ships.
pub fn version_of(index: u64) -> String {
    format!("1.{index}.0")
}

/// The events of release `r<index>`, in the order a pipeline sends them: the intent (modules
/// pinned by digest; the clock moves 1 s first), per module unit tests, 92 % coverage and a
/// clean scan, the evaluation request, then the `evidence` (each piece re-evaluates the release:
/// it is active from the request on), a `QA` approval, and, when `deploy`, the deployment's start
/// and completion (the release is published). Every gate passes once the approval is in.
///
/// Entries that evaluate the release: the intent, the request, every attached piece and the
/// approval, i.e. `3 + evidence.attached()`.
pub fn release_events(index: u64, evidence_kind: Evidence, deploy: bool) -> Vec<Event> {
    let release = format!("r{index}");
    let version = version_of(index);
    let modules: Vec<Value> = MODULES
        .iter()
        .map(|m| json!({ "name": m, "version": version, "digest": { "sha256": artifact_digest(m, &version) } }))
        .collect();
    let pairs: Vec<(&str, &str)> = MODULES.iter().map(|m| (*m, version.as_str())).collect();
    let mut events = vec![intent(&release, ENVIRONMENT, &pairs).with("modules", modules).after(SEC)];
    for m in MODULES {
        events.extend(evidence(&release, m, &version));
    }
    events.push(evaluate(&release));
    let slo = |m: &str, remaining: f64| {
        attach(&release, m, &version, "slo-report", json!({ "objective": 99.9, "errorBudgetRemaining": remaining }))
    };
    let perf = |m: &str, current: f64| {
        attach(
            &release,
            m,
            &version,
            "perf-baseline",
            json!({ "metric": "p99LatencyMs", "baseline": 120, "current": current }),
        )
    };
    match evidence_kind {
        Evidence::None => {}
        Evidence::SloPerf { rounds } => {
            for round in 0..rounds {
                for m in MODULES {
                    events.push(slo(m, 0.42 + round as f64 / 1000.0));
                    events.push(perf(m, 124.0 + (round % 7) as f64));
                }
            }
        }
        Evidence::All => {
            for m in MODULES {
                events.push(slo(m, 0.42));
                events.push(perf(m, 126.0));
                let provenance = json!({ "buildDefinition": { "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1" },
                                         "runDetails": { "builder": { "id": TRUSTED_BUILDER } } });
                let statement = statement(m, &version, PROVENANCE_V1, provenance);
                events.push(attestation(&release, m, &version, "slsa-provenance", &statement, BUILD_SYSTEM));
            }
            // 2025-02-01: within 90 days of every evaluation (the kit's clock starts at 2025-03-01).
            events.push(attach(
                &release,
                MODULES[0],
                &version,
                "dr-drill",
                json!({ "performedAt": "2025-02-01T00:00:00Z", "outcome": "passed" }),
            ));
        }
    }
    events.push(approve(&release, "QA"));
    if deploy {
        events.push(deploy_started(&release, ENVIRONMENT));
        events.push(deploy_completed(&release, ENVIRONMENT));
    }
    events
}

/// A kit scenario (the kit's cast registered, plus [`BUILD_SYSTEM`] holding `Attestor`) whose
/// projection worker is stopped, with the policy of [`policy_doc`]`(gates)` appended. Nothing
/// folds until the caller says so.
pub fn scenario(gates: Gates) -> Scenario {
    let mut scenario = Scenario::new();
    scenario.stop_governor();
    let _ = scenario.register(BUILD_SYSTEM, &["Attestor"]);
    let _ = scenario.must(policy(policy_doc(gates)));
    scenario
}
