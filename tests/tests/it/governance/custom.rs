//! Gates written as policy code (issue 22, docs/gates.md), through the ledger and the worker:
//! evidence of any kind, attestations verified against an `Attestor` key, Rego gates joining the
//! built-in ones, fail-closed evaluation (errors and runaway gates block, never approve), refusals
//! that store nothing, and replay reproducing every custom-gate decision.

use ledger::ErrorKind;
use projections::{ReasonCode, Verdict};
use serde_json::{json, Value};
use testkit::gov::*;

const R: &str = "r1";
const M: &str = "billing";
const V: &str = "1.4.2";
const BUILD: &str = "build-system";

const PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const BUILDER: &str =
    "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";

/// The baseline prod rules with `gates` and the modules `rego` (name → source).
fn gated(gates: &[&str], modules: &[(&str, &str)], patch: Value) -> Event {
    let mut doc = prod_policy(patch);
    doc["environments"]["prod"]["gates"] = json!(gates);
    let modules: serde_json::Map<String, Value> =
        modules.iter().map(|(name, source)| ((*name).to_owned(), json!(source))).collect();
    doc["rego"] = json!({ "modules": modules });
    policy(doc)
}

fn slo_policy() -> Event {
    gated(&["slo_error_budget"], &[("slo.rego", SLO_GATE)], json!({}))
}

fn slo(budget: f64) -> Event {
    attach(R, M, V, "slo-report", json!({ "objective": 99.9, "errorBudgetRemaining": budget }))
}

/// A release waiting only on its custom gates: evidence, approval, evaluation requested.
fn ready(scenario: &mut Scenario) {
    scenario.run([intent(R, "prod", &[(M, V)])]);
    scenario.run(evidence(R, M, V));
    scenario.run([approve(R, "QA"), evaluate(R)]);
}

fn custom_gate(scenario: &Scenario, name: &str) -> projections::Gate {
    let decision = scenario.release(R).decision.expect("a decision");
    decision.gates.into_iter().find(|g| g.gate == format!("custom:{name}")).expect("the custom gate is in the decision")
}

#[test]
fn a_custom_gate_decides_with_the_built_in_ones_and_replay_reproduces_it() {
    let mut s = Scenario::new();
    s.must(slo_policy());
    ready(&mut s);
    s.settle();
    assert_eq!(s.outcome(R), "Rejected CustomGateFailed retryable risk=10");
    let gate = custom_gate(&s, "slo_error_budget");
    assert_eq!((gate.verdict, gate.code.as_deref()), (Verdict::Fail, Some("SloReportMissing")));
    assert_eq!(gate.observed, "no slo-report for billing");

    // An exhausted budget fails with the policy's own code, a healthy one approves.
    s.must(slo(0.02).label("low"));
    s.settle();
    assert_eq!(s.outcome(R), "Rejected CustomGateFailed retryable risk=10");
    assert_eq!(custom_gate(&s, "slo_error_budget").code.as_deref(), Some("ErrorBudgetExhausted"));
    let decision = s.release(R).decision.unwrap();
    let reason = decision.reasons.iter().find(|r| r.code == ReasonCode::CustomGateFailed).unwrap();
    assert_eq!(reason.detail, "slo_error_budget: ErrorBudgetExhausted: observed billing has 0.02 left, target every module has >= 0.1 of its error budget left");
    assert!(decision.evidence.contains(&s.seq_of("low")), "the attached evidence is in the decision's evidence");

    s.must(slo(0.4));
    s.settle();
    assert_eq!(s.outcome(R), "Approved risk=10");
    let gate = custom_gate(&s, "slo_error_budget");
    assert_eq!((gate.verdict, gate.code, gate.observed.as_str()), (Verdict::Pass, None, "billing: 0.4"));

    // Withdrawing the healthy report brings the exhausted one back.
    let newest = s.release(R).attachments.last().unwrap().seq;
    s.must(invalidate_seq(R, newest));
    s.settle();
    assert_eq!(custom_gate(&s, "slo_error_budget").code.as_deref(), Some("ErrorBudgetExhausted"));

    // The live state is the fold from scratch, and every decision in the log is the bytes its
    // prefix derives (the fold's own check, as the auditor runs it).
    assert_eq!(s.state(), s.fold(None));
    let mut state = projections::TenantState::new(TENANT);
    let mut checked = 0;
    for entry in s.entries() {
        if let Some(check) = state.apply(&entry) {
            assert!(check.matches(), "seq {}: {check}", entry.seq);
            checked += 1;
        }
    }
    assert!(checked >= 4, "{checked} decisions checked");
}

#[test]
fn a_gate_that_errors_or_runs_away_blocks_and_never_approves() {
    let spin = "package gates.spin\n\
                result := {\"verdict\": \"pass\", \"observed\": count([1 | some a in input.signals; some b in input.signals; some c in input.signals; some d in input.signals])}\n";
    let broken = "package gates.broken\nresult := {\"verdict\": \"pass\", \"observed\": 1 / count([])}\n";
    let shapeless = "package gates.shapeless\nresult := \"yes\"\n";
    let mut s = Scenario::new();
    let mut doc = gated(
        &["spin", "broken", "shapeless"],
        &[("spin.rego", spin), ("broken.rego", broken), ("shapeless.rego", shapeless)],
        json!({}),
    );
    doc.data["policy"]["rego"]["instructionLimit"] = json!(20_000);
    s.must(doc);
    ready(&mut s);
    // Enough signals that the quadruple loop runs far past 20,000 instructions.
    for i in 0..20 {
        s.must(tests_passed(R, M, V).with("suite", format!("suite-{i}")));
    }
    s.settle();
    assert_eq!(s.outcome(R), "Rejected CustomGateError CustomGateError CustomGateError retryable risk=10");
    let spin = custom_gate(&s, "spin");
    assert_eq!(spin.verdict, Verdict::Fail);
    assert!(spin.observed.contains("stopped after 20000 instructions"), "{}", spin.observed);
    let broken = custom_gate(&s, "broken");
    assert!(broken.observed.contains("undefined") || broken.observed.contains("divide"), "{}", broken.observed);
    assert!(custom_gate(&s, "shapeless").observed.contains("not an object"));
    // The same log re-derives the same stop, on every fold.
    assert_eq!(s.state(), s.fold(None));
    assert_eq!(s.fold(None), s.fold(None));
}

#[test]
fn policies_that_do_not_compile_or_read_the_clock_are_refused_and_nothing_is_stored() {
    let mut s = Scenario::new();
    s.must(slo_policy());
    ready(&mut s);
    s.settle();
    let (size, state) = (s.size(), s.state());
    let cases = [
        (
            "syntax error",
            gated(&["x"], &[("x.rego", "package gates.x\nresult := {\"verdict\": \"pass\" if {\n")], json!({})),
            "x.rego:2:",
        ),
        (
            "missing gate rule",
            gated(&["y"], &[("x.rego", "package gates.x\nresult := 1\n")], json!({})),
            "no rule data.gates.y.result",
        ),
        (
            "the clock",
            gated(
                &["x"],
                &[("x.rego", "package gates.x\nresult := {\"verdict\": \"pass\", \"observed\": time.now_ns()}\n")],
                json!({}),
            ),
            "time.now_ns",
        ),
        (
            "randomness",
            gated(&["x"], &[("x.rego", "package gates.x\nresult := rand.intn(\"seed\", 6)\n")], json!({})),
            "rand.intn",
        ),
        (
            "the local time zone",
            gated(&["x"], &[("x.rego", "package gates.x\nresult := time.clock([0, \"Local\"])\n")], json!({})),
            "time.clock",
        ),
        (
            "the network",
            gated(
                &["x"],
                &[("x.rego", "package gates.x\nresult := http.send({\"method\": \"get\", \"url\": \"http://x\"})\n")],
                json!({}),
            ),
            "http.send",
        ),
        ("gates without rego", policy(prod_policy(json!({"gates": ["x"]}))), "no rego modules"),
        (
            "a bad evidence schema",
            {
                let mut p = slo_policy();
                p.data["policy"]["evidenceSchemas"] = json!({"slo-report": {"type": "no-such-type"}});
                p
            },
            "evidenceSchemas.slo-report",
        ),
    ];
    let mut failures = Vec::new();
    for (name, event, expect) in cases {
        match s.append(event) {
            Ok(receipt) => failures.push(format!("{name}: accepted at seq {}", receipt.seq)),
            Err(e) if e.kind() != ErrorKind::InvalidArgument => failures.push(format!("{name}: {:?}: {e}", e.kind())),
            Err(e) if !e.to_string().contains(expect) => failures.push(format!("{name}: {e} does not name {expect:?}")),
            Err(_) => {}
        }
        assert_eq!(s.size(), size, "{name}: something was stored");
    }
    s.settle();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(s.state(), state, "a refused policy changed the governance state");
}

#[test]
fn evidence_is_checked_against_its_kinds_schema_and_refused_when_malformed() {
    let mut s = Scenario::new();
    let mut p = slo_policy();
    p.data["policy"]["evidenceSchemas"] = json!({
        "slo-report": {"type": "object", "required": ["errorBudgetRemaining"],
                       "properties": {"errorBudgetRemaining": {"type": "number", "maximum": 1}}}
    });
    s.must(p);
    ready(&mut s);
    // A report that does not satisfy the schema reaches the gates as rejected evidence only.
    s.must(attach(R, M, V, "slo-report", json!({"errorBudgetRemaining": "plenty"})));
    s.settle();
    assert_eq!(custom_gate(&s, "slo_error_budget").code.as_deref(), Some("SloReportMissing"));
    let attachment = s.release(R).attachments.last().cloned().unwrap();
    assert!(attachment.schema_error.as_deref().is_some_and(|e| e.contains("errorBudgetRemaining")), "{attachment:?}");
    s.must(slo(0.5));
    s.settle();
    assert_eq!(s.outcome(R), "Approved risk=10");

    // Malformed evidence is refused at the door and nothing is stored.
    let size = s.size();
    let cases = [
        ("bad kind", slo(0.5).with("kind", "SLO Report")),
        ("bad subject digest", slo(0.5).with("subjectDigest", json!({"sha256": "xyz"}))),
        ("no content digest", slo(0.5).with("contentDigest", json!({}))),
        ("bad media type", slo(0.5).with("mediaType", "json")),
        ("body not an object", slo(0.5).with("body", json!([1, 2]))),
        ("body too large", slo(0.5).with("body", json!({"blob": "x".repeat(40 * 1024)}))),
        ("unknown field", slo(0.5).with("bodyy", json!({}))),
    ];
    for (name, event) in cases {
        let error = s.append(event).expect_err(name);
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{name}: {error}");
        assert_eq!(s.size(), size, "{name}: something was stored");
    }
}

#[test]
fn an_attestation_counts_only_when_an_attestor_key_signed_it() {
    let provenance = |builder: &str| json!({ "buildDefinition": {}, "runDetails": { "builder": { "id": builder } } });
    let mut s = Scenario::new();
    s.register(BUILD, &["Attestor"]);
    let mut p = gated(
        &["slsa_provenance"],
        &[("slsa.rego", include_str!("../../../../docs/gates/slsa_provenance.rego"))],
        json!({}),
    );
    p.data["policy"]["version"] = json!(1);
    s.must(p);
    let digest = artifact_digest(M, V);
    let mut declared = intent(R, "prod", &[(M, V)]);
    declared.data["modules"][0]["digest"] = json!({ "sha256": digest });
    s.must(declared);
    s.run(evidence(R, M, V));
    s.run([approve(R, "QA"), evaluate(R)]);
    s.settle();
    assert_eq!(custom_gate(&s, "slsa_provenance").code.as_deref(), Some("ProvenanceMissing"));

    // Refused, nothing stored: a signer without the Attestor role, an unknown signer, a signature
    // that does not verify, a statement about another artifact, a content digest that is not the
    // statement's.
    let good = statement(M, V, PROVENANCE, provenance(BUILDER));
    let size = s.size();
    let mut tampered = attestation(R, M, V, "slsa-provenance", &good, BUILD);
    let sig = tampered.data["attestation"]["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let mut raw = ledger::b64::decode(&sig).unwrap();
    raw[7] ^= 1;
    tampered.data["attestation"]["signatures"][0]["sig"] = json!(ledger::b64::encode(&raw));
    let mut other_digest = attestation(R, M, V, "slsa-provenance", &good, BUILD);
    other_digest.data["contentDigest"] = json!({ "sha256": sha256_hex(b"something else") });
    let mut other_sha512 = attestation(R, M, V, "slsa-provenance", &good, BUILD);
    other_sha512.data["contentDigest"]["sha512"] = json!("0".repeat(128));
    let cases = [
        (
            "a second content digest naming other bytes",
            other_sha512,
            ErrorKind::InvalidArgument,
            "contentDigest.sha512",
        ),
        (
            "signed by a key without Attestor",
            attestation(R, M, V, "slsa-provenance", &good, QA_LEAD),
            ErrorKind::PermissionDenied,
            "does not hold the Attestor role",
        ),
        (
            "signed by an unknown key",
            attestation(R, M, V, "slsa-provenance", &good, "stranger"),
            ErrorKind::PermissionDenied,
            "no key of this tenant",
        ),
        ("a signature that does not verify", tampered, ErrorKind::PermissionDenied, "does not verify"),
        (
            "about another artifact",
            attestation(R, M, V, "slsa-provenance", &statement(M, "9.9.9", PROVENANCE, provenance(BUILDER)), BUILD),
            ErrorKind::InvalidArgument,
            "subjectDigest",
        ),
        ("another content digest", other_digest, ErrorKind::InvalidArgument, "contentDigest"),
    ];
    for (name, event, kind, expect) in cases {
        let error = s.append(event).expect_err(name);
        assert_eq!(error.kind(), kind, "{name}: {error}");
        assert!(error.to_string().contains(expect), "{name}: {error}");
        assert_eq!(s.size(), size, "{name}: something was stored");
    }

    // An attestation from another builder is accepted (it is verified) but does not pass the
    // gate; the trusted builder's does.
    s.must(attestation(
        R,
        M,
        V,
        "slsa-provenance",
        &statement(M, V, PROVENANCE, provenance("https://ci.example/evil")),
        BUILD,
    ));
    s.settle();
    assert_eq!(custom_gate(&s, "slsa_provenance").code.as_deref(), Some("ProvenanceMissing"));
    s.must(attestation(R, M, V, "slsa-provenance", &good, BUILD));
    s.settle();
    assert_eq!(s.outcome(R), "Approved risk=10");
    let attached = s.release(R).attachments.last().cloned().unwrap();
    let build_key = key_of(BUILD).key_id().to_hex();
    assert_eq!(attached.attestation, Some((build_key, PROVENANCE.to_owned())));
    assert_eq!(attached.body.unwrap()["predicate"]["runDetails"]["builder"]["id"], BUILDER);

    // Revoking the build system's key makes its attestations stop counting (the gate reads
    // `signer.revoked`) from the revocation on.
    s.must(revoke_key(BUILD));
    s.settle();
    assert_eq!(custom_gate(&s, "slsa_provenance").code.as_deref(), Some("ProvenanceMissing"));
    assert_eq!(s.state(), s.fold(None));
}
