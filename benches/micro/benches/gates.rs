//! What custom gates (issue 22, docs/gates.md) cost one decision, and what compiling them costs
//! an append of `PolicyUpdated`:
//!
//! - `gates/evaluate/n{N}`: `projections::gates::evaluate` (every gate of one decision, built-in
//!   and custom) for a release of 3 modules carrying unit tests, coverage and a scan per module
//!   plus an `slo-report` and a `perf-baseline` per module (6 `EvidenceAttached`) and a `QA`
//!   approval, under a policy whose `prod` names N = 0, 1, 4, 16 custom gates: the SLO and
//!   perf-regression examples of docs/gates alternately, renamed `gates.g1` .. `gates.gN`. The
//!   state is the fold of the real log (the kit's scenario through the catalogue); the compiled
//!   policy is in the cache (warmed before timing): evaluation, not compilation.
//! - `gates/evaluate/examples4`: the four worked examples under their own names, with the
//!   evidence they read (plus an SLSA attestation per module and a DR drill: 10 attached).
//! - `gates/evaluate/n{0,4}_attached{60,600}`: N = 0 and 4 with 10 and 100 rounds of reports
//!   (60 and 600 attached): how a decision's cost grows with the release's evidence.
//! - `gates/evaluate/n4_tenants{8,9,64,65}_in_turn`: N = 4, but 8, 9, 64 or 65 tenants with
//!   policies of their own (the same gates, each with a comment of its own) evaluated in turn: the
//!   compile cache holds the most recently used compiled policies (8 up to cffe26a, 64 since).
//! - `gates/fold/n{0,4}_attached{60,600}`: the fold from seq 0 of such a release's log (N = 0
//!   and 4): each attached piece re-evaluates the release with all the evidence so far.
//! - `gates/fold/unpublished{100,400,3200}`: the fold from seq 0 of 100, 400 or 3,200 releases of the same
//!   modules, none deployed (so no module is ever published): what `firstRelease` costs as the
//!   modules' history grows.
//! - `gates/parts/...`: the pieces of one evaluation's custom-gate work: the input document
//!   (`custom_gates::input`), its conversion to the interpreter's value (`rego::input_value`),
//!   the compile-cache lookup (`rego::compiled`, a hit: hashes the policy's Rego), and one gate
//!   run on the VM (`CompiledGates::evaluate`).
//! - `gates/compile/...`: `rego::compile` of a policy's gates, uncached (N = 1, 4, 16, and the
//!   most copies that fit in `rego::MAX_SOURCE_BYTES`); `validate_examples4`
//!   is `ReleasePolicy::validate` of docs/gates/policy.json's shape with a changed source every
//!   iteration (a cache miss: what the catalogue pays when a new `PolicyUpdated` is appended),
//!   `schema_slo_report` is the compile of one evidence schema.
//!
//! See `BENCHMARKS.md`, "Custom gates (issue 22)".

use std::collections::BTreeSet;

use bench_harness::gates::{policy_doc, release_events, scenario, Evidence, Gates};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use projections::rego::{self, RegoPolicy};
use projections::{custom_gates, gates, DecisionStatus, ReleasePolicy, TenantState, Verdict};

/// One folded release and the point of the log its decision is evaluated at.
struct Fixture {
    state: TenantState,
    trigger: u64,
    at: u64,
}

impl Fixture {
    /// Release `r0` of `evidence` under the policy naming the gates of `set`, appended through the
    /// catalogue and folded from seq 0; evaluated at its last entry (the approval).
    fn new(set: Gates, evidence: Evidence) -> Self {
        let mut s = scenario(set);
        s.run_batched(release_events(0, evidence, false), 256);
        let state = s.fold(None);
        let (trigger, at) = (state.meta.position - 1, state.meta.last_recorded_at);
        Self { state, trigger, at }
    }

    fn release(&self) -> &projections::state::ReleaseState {
        &self.state.releases["r0"]
    }

    fn evaluate(&self) -> projections::DecisionData {
        gates::evaluate(&self.state.meta, self.release(), self.trigger, self.at)
    }

    fn policy(&self) -> &ReleasePolicy {
        &self.state.meta.policy.as_ref().expect("a policy").policy
    }

    fn input(&self) -> serde_json::Value {
        custom_gates::input(&self.state.meta, self.release(), self.trigger, self.at).0
    }

    /// Evaluates once (warming the compile cache), prints what the decision says and checks
    /// every custom gate is in it; with `approved`, that the release is approved.
    fn check(&self, name: &str, expect_gates: usize, approved: bool) {
        let decision = self.evaluate();
        let custom: Vec<_> = decision.gates.iter().filter(|g| g.gate.starts_with("custom:")).collect();
        let input = self.input();
        eprintln!(
            "{name}: {:?}, {} gates ({} custom: {}), {} attached, gate input {} bytes, rego {} bytes",
            decision.status,
            decision.gates.len(),
            custom.len(),
            custom.iter().map(|g| format!("{:?}", g.verdict)).collect::<Vec<_>>().join(" "),
            self.release().attachments.len(),
            serde_json::to_string(&input).map_or(0, |s| s.len()),
            self.policy().rego.as_ref().map_or(0, |r| r.modules.values().map(String::len).sum::<usize>()),
        );
        assert_eq!(custom.len(), expect_gates, "{name}: custom gates in the decision");
        if approved {
            assert_eq!(decision.status, DecisionStatus::Approved, "{name}: {:?}", decision.reasons);
            assert!(custom.iter().all(|g| g.verdict == Verdict::Pass), "{name}: {custom:?}");
        }
    }
}

fn rego_of(policy: &ReleasePolicy) -> (&RegoPolicy, BTreeSet<String>) {
    (policy.rego.as_ref().expect("the policy carries rego"), policy.custom_gates())
}

fn evaluations(c: &mut Criterion) {
    eprintln!("load average at start: {}", bench_harness::load_average());
    let mut group = c.benchmark_group("gates");

    let mut fixtures = Vec::new();
    for n in [0, 1, 4, 16] {
        let fixture = Fixture::new(Gates::Copies(n), Evidence::SloPerf { rounds: 1 });
        fixture.check(&format!("n{n}"), n, true);
        fixtures.push((format!("n{n}"), fixture));
    }
    let examples = Fixture::new(Gates::Examples, Evidence::All);
    examples.check("examples4", 4, true);
    fixtures.push(("examples4".to_owned(), examples));
    for (n, rounds) in [(0, 100), (4, 10), (4, 100)] {
        let name = format!("n{n}_attached{}", 6 * rounds);
        let fixture = Fixture::new(Gates::Copies(n), Evidence::SloPerf { rounds });
        fixture.check(&name, n, false);
        fixtures.push((name, fixture));
    }

    for (name, fixture) in &fixtures {
        group.bench_function(format!("evaluate/{name}"), |b| b.iter(|| fixture.evaluate()));
    }

    // Tenants with policies of their own taking turns (n4's state, each policy's first module
    // given a comment of its own): the compile cache holds the policies most recently used (8 up
    // to cffe26a, 64 since 695e51a), so one more tenant than it holds recompiles every time.
    let n4 = &fixtures.iter().find(|(name, _)| name == "n4").expect("the n4 fixture").1;
    let tenants: Vec<Fixture> = (0..65)
        .map(|tenant| {
            let mut state = n4.state.clone();
            if let Some(source) = state
                .meta
                .policy
                .as_mut()
                .and_then(|p| p.policy.rego.as_mut())
                .and_then(|r| r.modules.values_mut().next())
            {
                source.push_str(&format!("# tenant {tenant}\n"));
            }
            Fixture { state, trigger: n4.trigger, at: n4.at }
        })
        .collect();
    for turns in [8, 9, 64, 65] {
        for tenant in &tenants[..turns] {
            assert_eq!(tenant.evaluate().status, DecisionStatus::Approved);
        }
        let mut turn = 0;
        group.bench_function(format!("evaluate/n4_tenants{turns}_in_turn"), |b| {
            b.iter(|| {
                turn = (turn + 1) % turns;
                tenants[turn].evaluate()
            })
        });
    }

    // One release's whole fold from seq 0 (the kit's registrations and the policy, then the
    // release): every attached piece re-evaluates it, each time with all the evidence so far.
    for (n, rounds) in [(0, 10), (4, 10), (0, 100), (4, 100)] {
        let mut s = scenario(Gates::Copies(n));
        s.run_batched(release_events(0, Evidence::SloPerf { rounds }, false), 256);
        eprintln!("fold/n{n}_attached{}: {} entries", 6 * rounds, s.size());
        group.bench_function(format!("fold/n{n}_attached{}", 6 * rounds), |b| b.iter(|| s.fold(None)));
    }

    // Many releases of the same three modules, none deployed, so none published: every
    // evaluation asks whether another release ever published each module (`firstRelease`).
    // Up to the twenty-second session of issue 20 that question scanned the module's whole
    // history (every decision is an item of it), so this fold grew with the square of the log.
    for releases in [100, 400, 3200] {
        let mut s = scenario(Gates::None);
        for index in 0..releases {
            s.run_batched(release_events(index, Evidence::None, false), 256);
        }
        eprintln!("fold/unpublished{releases}: {} entries", s.size());
        group.bench_function(format!("fold/unpublished{releases}"), |b| b.iter(|| s.fold(None)));
    }

    // The pieces of the custom-gate work of one evaluation.
    for (name, fixture) in &fixtures {
        if !matches!(name.as_str(), "n4" | "n16" | "n4_attached600") {
            continue;
        }
        let (rego, names) = rego_of(fixture.policy());
        let input = fixture.input();
        let value = rego::input_value(&input).expect("the input converts");
        let compiled = rego::compiled(rego, &names).expect("the policy compiles");
        group.bench_function(format!("parts/input_doc/{name}"), |b| b.iter(|| fixture.input()));
        group.bench_function(format!("parts/input_value/{name}"), |b| b.iter(|| rego::input_value(black_box(&input))));
        group.bench_function(format!("parts/cache_lookup/{name}"), |b| b.iter(|| rego::compiled(rego, &names)));
        for gate in ["g1", "g2"] {
            let kind = if gate == "g1" { "slo" } else { "perf" };
            group.bench_function(format!("parts/one_gate_{kind}/{name}"), |b| {
                b.iter(|| compiled.evaluate(gate, black_box(&value)))
            });
        }
    }

    // Compiling: what a new policy costs once (its append's validation, a fresh process's fold).
    for (name, fixture) in &fixtures {
        if !matches!(name.as_str(), "n1" | "n4" | "n16" | "examples4") {
            continue;
        }
        let (rego, names) = rego_of(fixture.policy());
        group.bench_function(format!("compile/{name}"), |b| b.iter(|| rego::compile(rego, &names).expect("compiles")));
    }
    // The most gates a policy can hold: at most rego::MAX_GATES_PER_ENVIRONMENT, and as many
    // copies as fit in rego::MAX_SOURCE_BYTES.
    let (most, largest) = (1..=rego::MAX_GATES_PER_ENVIRONMENT)
        .rev()
        .map(|n| {
            let policy: ReleasePolicy =
                serde_json::from_value(policy_doc(Gates::Copies(n))).expect("the policy parses");
            (n, policy)
        })
        .find(|(_, p)| {
            p.rego
                .as_ref()
                .is_some_and(|r| r.modules.values().map(String::len).sum::<usize>() <= rego::MAX_SOURCE_BYTES)
        })
        .expect("one gate fits");
    let (rego, names) = rego_of(&largest);
    group.bench_function(format!("compile/n{most}"), |b| b.iter(|| rego::compile(rego, &names).expect("compiles")));
    let base: ReleasePolicy = serde_json::from_value(policy_doc(Gates::Examples)).expect("the policy parses");
    let mut iteration = 0u64;
    group.bench_function("compile/validate_examples4", |b| {
        b.iter(|| {
            // A changed comment: another cache key, so every iteration compiles.
            iteration += 1;
            let mut policy = base.clone();
            if let Some(source) = policy.rego.as_mut().and_then(|r| r.modules.values_mut().next()) {
                source.push_str(&format!("# {iteration}\n"));
            }
            policy.validate().expect("the policy is valid")
        })
    });
    let schema = base.evidence_schemas["slo-report"].clone();
    group.bench_function("compile/schema_slo_report", |b| {
        b.iter(|| projections::policy::compile_schema("slo-report", black_box(&schema)).expect("compiles"))
    });
    group.finish();
    eprintln!("load average at end: {}", bench_harness::load_average());
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = evaluations
}
criterion_main!(benches);
