//! Gates as policy code through the CLI against a real server: `policy set --rego`, `attach`
//! (bodies, and an in-toto attestation signed by an independent implementation,
//! tests/interop/sign_attestation.py), `explain`, `policy input` and `policy test`, with the
//! worked examples of docs/gates/ deciding real releases.

use std::path::{Path, PathBuf};

use crate::{cli, cli_register_agent, json, json_lines, ok, temp_data_dir, Server};

const TENANT: &str = "gates-001";

/// The builder docs/gates/slsa_provenance.rego trusts.
const TRUSTED_BUILDER: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";

/// The four worked examples (docs/gates/), in the order docs/gates/policy.json names them.
const EXAMPLES: [&str; 4] = ["slo_error_budget", "dr_drill_recent", "slsa_provenance", "perf_regression"];

fn gates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gates")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The entries of the tenant's log.
fn log_size(server: &Server, cwd: &Path) -> usize {
    json_lines(&ok(cli(server, cwd, &["tail", "--tenant", TENANT, "--json"]))).len()
}

fn admin_key(server: &Server) -> String {
    server.data_dir.join("keys/admin.pem").to_str().unwrap().to_owned()
}

/// `policy set` of docs/gates/policy.json with its four Rego modules (`--rego`), by the admin.
fn policy_set_args(server: &Server) -> Vec<String> {
    let dir = gates_dir();
    let mut args: Vec<String> = ["policy", "set", "--tenant", TENANT, "--key", &admin_key(server), "--file"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.push(path(&dir.join("policy.json")).to_owned());
    for example in EXAMPLES {
        args.push("--rego".into());
        args.push(path(&dir.join(format!("{example}.rego"))).to_owned());
    }
    args
}

/// The `--rego` arguments of `policy test` for the worked examples.
fn rego_args() -> Vec<String> {
    EXAMPLES
        .iter()
        .flat_map(|e| ["--rego".to_owned(), path(&gates_dir().join(format!("{e}.rego"))).to_owned()])
        .collect()
}

fn run(server: &Server, cwd: &Path, args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(server, cwd, &args)
}

/// A server with docs/gates/policy.json (and its Rego) in force, and the keys, in `cwd`:
/// `ci.pem` (declares, signals, attaches, evaluates), `qa-lead.pem` (holds QA) and
/// `slsa-builder.pem` (holds Attestor: it signs provenance attestations, never events).
fn gated_tenant() -> (tempfile::TempDir, Server) {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    for (agent, roles, types) in [
        ("ci", "CI", "ReleaseIntentDeclared,ReleaseEvaluationRequested,TestsPassed,EvidenceAttached"),
        ("qa-lead", "QA", "ApprovalGranted"),
        ("slsa-builder", "Attestor", "EvidenceAttached"),
    ] {
        cli_register_agent(&server, cwd, TENANT, agent, roles, types);
    }
    let stdout = ok(run(&server, cwd, &policy_set_args(&server)));
    assert!(stdout.contains("policy version 2 is in force"), "{stdout}");
    (dir, server)
}

/// A 64-hex-digit sha256 digest made of `c`.
fn digest(c: char) -> String {
    c.to_string().repeat(64)
}

/// An RFC 3339 time `days` before now (the server's clock is this machine's).
fn days_ago(days: i64) -> String {
    use ledger::Clock as _;
    let now = chrono::DateTime::from_timestamp_nanos(i64::try_from(ledger::SystemClock.now_ns()).unwrap());
    (now - chrono::Duration::days(days)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What a scenario release is given.
#[derive(Clone)]
struct Evidence {
    /// errorBudgetRemaining of the slo-report.
    budget: f64,
    /// Age in days of the passed DR drill.
    drill_age_days: i64,
    /// Current p99 of the perf-baseline (baseline 100); none: no report yet.
    perf_current: Option<f64>,
    /// Attach the python-signed SLSA provenance attestation.
    provenance: bool,
}

const GOOD: Evidence = Evidence { budget: 0.5, drill_age_days: 30, perf_current: Some(105.0), provenance: true };

/// `attach` by ci.pem of a body (written to a file first).
fn attach_body(server: &Server, cwd: &Path, release: &str, kind: &str, subject: &str, body: serde_json::Value) {
    let file = cwd.join(format!("{release}-{kind}.json"));
    std::fs::write(&file, body.to_string()).unwrap();
    ok(attach_file(server, cwd, release, kind, subject, "--body", &file, &[]));
}

/// `attach` of `api@1.0.0` evidence of `kind` from `file` (given with `flag`: `--body` or
/// `--attestation`), with more flags.
#[allow(clippy::too_many_arguments)]
fn attach_file(
    server: &Server,
    cwd: &Path,
    release: &str,
    kind: &str,
    subject: &str,
    flag: &str,
    file: &Path,
    more: &[&str],
) -> std::process::Output {
    let subject = format!("sha256:{subject}");
    let mut args = vec![
        "attach",
        "--tenant",
        TENANT,
        "--release",
        release,
        "--key",
        "ci.pem",
        "--module",
        "api",
        "--version",
        "1.0.0",
        "--kind",
        kind,
        "--subject-digest",
        &subject,
        flag,
        path(file),
    ];
    args.extend_from_slice(more);
    cli(server, cwd, &args)
}

/// The attach arguments of an attestation file.
fn attach_attestation(server: &Server, cwd: &Path, release: &str, subject: &str, file: &Path) -> std::process::Output {
    attach_attestation_with(server, cwd, release, subject, file, &[])
}

/// [`attach_attestation`] with more flags (`--wait`, `--json`).
fn attach_attestation_with(
    server: &Server,
    cwd: &Path,
    release: &str,
    subject: &str,
    file: &Path,
    more: &[&str],
) -> std::process::Output {
    attach_file(server, cwd, release, "slsa-provenance", subject, "--attestation", file, more)
}

/// An in-toto Statement v1 with a SLSA provenance v1 predicate for `api` at `subject`, signed
/// by `key` (a PEM in `cwd`) with securesystemslib (tests/interop/sign_attestation.py).
/// Returns the envelope file and the script's summary (`keyId`: the signing key's ledger key
/// id, `payloadSha256`: the statement's digest).
fn python_attestation(
    server: &Server,
    cwd: &Path,
    key: &str,
    subject: &str,
    name: &str,
) -> (PathBuf, serde_json::Value) {
    let statement = serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "api", "digest": {"sha256": subject}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {"buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                                "externalParameters": {}},
            "runDetails": {"builder": {"id": TRUSTED_BUILDER}},
        },
    });
    let statement_file = cwd.join(format!("{name}.statement.json"));
    std::fs::write(&statement_file, serde_json::to_vec_pretty(&statement).unwrap()).unwrap();
    let out = cwd.join(format!("{name}.intoto.json"));
    let key = cwd.join(key);
    let summary = crate::interop::run_script(
        server,
        "sign_attestation.py",
        &["--key", path(&key), "--statement", path(&statement_file), "--out", path(&out)],
    );
    (out, summary)
}

/// Declares `release` to prod with api@1.0.0 pinned at `subject`, reports its tests, attaches
/// `evidence`, has QA approve and asks for an evaluation; returns the summary once the ledger
/// has decided on that request.
fn scenario(server: &Server, cwd: &Path, release: &str, evidence: &Evidence) -> serde_json::Value {
    let subject = digest('a');
    let module = format!("api@1.0.0=sha256:{subject}");
    let r = ["--tenant", TENANT, "--release", release];
    ok(cli(
        server,
        cwd,
        &[&["intent", "--key", "ci.pem", "--environment", "prod", "--module", &module][..], &r].concat(),
    ));
    let tests = serde_json::json!({"module": "api", "version": "1.0.0", "suite": "unit", "passed": 10, "failed": 0});
    let stream = format!("release/{release}");
    ok(cli(
        server,
        cwd,
        &[
            "append",
            "--tenant",
            TENANT,
            "--key",
            "ci.pem",
            "--type",
            "TestsPassed",
            "--stream",
            &stream,
            "--release-id",
            release,
            "--data",
            &tests.to_string(),
        ],
    ));
    attach_body(
        server,
        cwd,
        release,
        "slo-report",
        &subject,
        serde_json::json!({"objective": 99.9, "errorBudgetRemaining": evidence.budget}),
    );
    attach_body(
        server,
        cwd,
        release,
        "dr-drill",
        &subject,
        serde_json::json!({"performedAt": days_ago(evidence.drill_age_days), "outcome": "passed"}),
    );
    if let Some(current) = evidence.perf_current {
        attach_body(
            server,
            cwd,
            release,
            "perf-baseline",
            &subject,
            serde_json::json!({"metric": "p99LatencyMs", "baseline": 100, "current": current}),
        );
    }
    if evidence.provenance {
        let (envelope, _) = python_attestation(server, cwd, "slsa-builder.pem", &subject, release);
        ok(attach_attestation(server, cwd, release, &subject, &envelope));
    }
    ok(cli(server, cwd, &[&["approve", "--key", "qa-lead.pem", "--role", "QA"][..], &r].concat()));
    let lines =
        json_lines(&ok(cli(server, cwd, &[&["evaluate", "--key", "ci.pem", "--wait", "--json"][..], &r].concat())));
    assert_eq!(lines.len(), 2, "a receipt and the summary: {lines:?}");
    let summary = lines[1].clone();
    assert_eq!(summary["lastDecision"]["trigger"], lines[0]["seq"], "{summary}");
    summary
}

/// `explain --json` of the release's latest decision.
fn explain(server: &Server, cwd: &Path, release: &str) -> serde_json::Value {
    json(&ok(cli(server, cwd, &["explain", "--tenant", TENANT, "--release", release, "--json"])))
}

/// The (verdict, code) of the decision's gate `custom:<name>`.
fn custom_gate(explained: &serde_json::Value, name: &str) -> (String, Option<String>) {
    let gate = explained["gates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == format!("custom:{name}"))
        .unwrap_or_else(|| panic!("no gate custom:{name}: {explained}"));
    (gate["verdict"].as_str().unwrap().to_owned(), gate["code"].as_str().map(str::to_owned))
}

fn reason_codes(summary: &serde_json::Value) -> Vec<&str> {
    summary["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect()
}

fn pass() -> (String, Option<String>) {
    ("Pass".into(), None)
}

fn verdict(v: &str, code: &str) -> (String, Option<String>) {
    (v.into(), Some(code.into()))
}

#[test]
fn the_worked_gate_examples_decide_releases_through_the_cli() {
    let (dir, server) = gated_tenant();
    let cwd = dir.path();

    // Everything the four gates ask for: approved, every custom gate passes.
    let summary = scenario(&server, cwd, "r-pass", &GOOD);
    assert_eq!(summary["status"], "Approved", "{summary}");
    assert_eq!(reason_codes(&summary), Vec::<&str>::new(), "{summary}");
    let explained = explain(&server, cwd, "r-pass");
    for example in EXAMPLES {
        assert_eq!(custom_gate(&explained, example), pass(), "{example}: {explained}");
    }
    assert_eq!(explained["reproduced"], true, "{explained}");
    let dr = explained["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "custom:dr_drill_recent").unwrap();
    assert_eq!(dr["observed"], "last passed drill 30 days ago", "{explained}");
    // Each custom gate's raw result and the input document come with the explanation.
    let custom = &explained["customGates"];
    let names: Vec<&str> = custom["results"].as_array().unwrap().iter().map(|r| r["gate"].as_str().unwrap()).collect();
    assert_eq!(names, EXAMPLES, "{custom}");
    assert!(custom["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"]["verdict"] == "pass" && r["error"].is_null()));
    assert_eq!(custom["input"]["release"]["id"], "r-pass", "{custom}");
    let kinds: Vec<&str> =
        custom["input"]["evidence"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["slo-report", "dr-drill", "perf-baseline", "slsa-provenance"], "{custom}");

    // Each failing the way its example says, with its own code.
    let cases = [
        ("r-slo", Evidence { budget: 0.05, ..GOOD }, "slo_error_budget", "Fail", "ErrorBudgetExhausted"),
        ("r-drill", Evidence { drill_age_days: 120, ..GOOD }, "dr_drill_recent", "Fail", "DrDrillStale"),
        ("r-provenance", Evidence { provenance: false, ..GOOD }, "slsa_provenance", "Fail", "ProvenanceMissing"),
        ("r-perf", Evidence { perf_current: Some(120.0), ..GOOD }, "perf_regression", "Fail", "PerfRegression"),
        // Pending delays rather than rejects.
        ("r-perf-pending", Evidence { perf_current: None, ..GOOD }, "perf_regression", "Pending", "PerfRunPending"),
    ];
    for (release, evidence, gate, gate_verdict, code) in cases {
        let (status, reason) =
            if gate_verdict == "Fail" { ("Rejected", "CustomGateFailed") } else { ("Delayed", "CustomGatePending") };
        let expected = verdict(gate_verdict, code);
        let summary = scenario(&server, cwd, release, &evidence);
        assert_eq!(summary["status"], status, "{release}: {summary}");
        assert_eq!(reason_codes(&summary), [reason], "{release}: {summary}");
        let detail = summary["reasons"][0]["detail"].as_str().unwrap();
        assert!(detail.starts_with(&format!("{gate}: {code}: ")), "{release}: {detail}");
        let explained = explain(&server, cwd, release);
        assert_eq!(custom_gate(&explained, gate), expected, "{release}: {explained}");
        for other in EXAMPLES.iter().filter(|e| **e != gate) {
            assert_eq!(custom_gate(&explained, other), pass(), "{release}: {other}: {explained}");
        }
        assert_eq!(explained["reproduced"], true, "{release}: {explained}");
    }
    let drill = explain(&server, cwd, "r-drill");
    let dr = drill["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "custom:dr_drill_recent").unwrap();
    assert_eq!(dr["observed"], "last passed drill 120 days ago", "{drill}");
}

#[test]
fn a_python_signed_attestation_is_accepted_and_a_forged_or_unauthorised_one_stores_nothing() {
    let (dir, server) = gated_tenant();
    let cwd = dir.path();
    let subject = digest('b');
    let release = "r-attest";
    let module = format!("api@1.0.0=sha256:{subject}");
    let r = ["--tenant", TENANT, "--release", release];
    ok(cli(
        &server,
        cwd,
        &[&["intent", "--key", "ci.pem", "--environment", "prod", "--module", &module][..], &r].concat(),
    ));
    // Evaluation requested: from now on each piece of evidence is evaluated as it comes.
    ok(cli(&server, cwd, &[&["evaluate", "--key", "ci.pem", "--wait"][..], &r].concat()));

    // securesystemslib signs with the Attestor's key; its keyid is the ledger key id `keys
    // list` shows for that agent.
    let (envelope_file, signed) = python_attestation(&server, cwd, "slsa-builder.pem", &subject, "genuine");
    let key_id = signed["keyId"].as_str().unwrap().to_owned();
    let keys = json_lines(&ok(cli(&server, cwd, &["keys", "list", "--tenant", TENANT, "--json"])));
    let builder = keys.iter().find(|k| k["agentId"] == "slsa-builder").unwrap();
    assert_eq!(builder["keyId"], key_id.as_str());

    // One byte of the signature changed: refused at append, nothing stored.
    let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(&envelope_file).unwrap()).unwrap();
    assert_eq!(envelope["signatures"][0]["keyid"], key_id.as_str(), "{envelope}");
    let forged = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut sig = engine.decode(envelope["signatures"][0]["sig"].as_str().unwrap()).unwrap();
        assert_eq!(sig.len(), 64);
        sig[17] ^= 0x01;
        let mut forged = envelope.clone();
        forged["signatures"][0]["sig"] = engine.encode(sig).into();
        forged
    };
    let forged_file = cwd.join("forged.intoto.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let before = log_size(&server, cwd);
    let refused = attach_attestation(&server, cwd, release, &subject, &forged_file);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PERMISSION_DENIED"), "{stderr}");
    assert!(stderr.contains("does not verify"), "{stderr}");
    assert_eq!(log_size(&server, cwd), before, "a forged attestation left something in the log");

    // Signed (by the same independent implementation) with a tenant key that does not hold the
    // Attestor role: refused, nothing stored.
    let (unauthorised, by_ci) = python_attestation(&server, cwd, "ci.pem", &subject, "by-ci");
    let ci_key_id = by_ci["keyId"].as_str().unwrap();
    let refused = attach_attestation(&server, cwd, release, &subject, &unauthorised);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("PERMISSION_DENIED"), "{stderr}");
    assert!(stderr.contains(ci_key_id) && stderr.contains("does not hold the Attestor role"), "{stderr}");
    assert_eq!(log_size(&server, cwd), before, "an unauthorised attestation left something in the log");

    // The genuine envelope, as securesystemslib wrote it: accepted, and the provenance gate
    // passes on it (the ledger read the statement as the evidence's body).
    let attached = json_lines(&ok(attach_attestation_with(
        &server,
        cwd,
        release,
        &subject,
        &envelope_file,
        &["--wait", "--json"],
    )));
    assert_eq!(attached[1]["lastDecision"]["trigger"], attached[0]["seq"], "{attached:?}");
    assert_eq!(log_size(&server, cwd), before + 2, "the attachment and the decision on it");
    let explained = explain(&server, cwd, release);
    assert_eq!(custom_gate(&explained, "slsa_provenance"), pass(), "{explained}");
    let evidence = &explained["customGates"]["input"]["evidence"][0];
    assert_eq!(evidence["attestation"]["signer"]["keyId"], key_id.as_str(), "{evidence}");
    assert_eq!(evidence["attestation"]["signer"]["agentId"], "slsa-builder", "{evidence}");
    assert_eq!(evidence["body"]["predicate"]["runDetails"]["builder"]["id"], TRUSTED_BUILDER, "{evidence}");
    // The content digest is the statement's sha256 (of the bytes the python signer signed).
    assert_eq!(evidence["contentDigest"]["sha256"], signed["payloadSha256"], "{evidence}");
    assert_eq!(evidence["mediaType"], "application/vnd.in-toto+json", "{evidence}");
}

#[test]
fn policy_set_refuses_rego_that_does_not_compile_or_reads_the_clock_and_so_does_the_server() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI", "ReleaseIntentDeclared");
    let admin = admin_key(&server);
    std::fs::write(cwd.join("policy.json"), r#"{"version": 1, "environments": {"prod": {"gates": ["broken"]}}}"#)
        .unwrap();
    let before = log_size(&server, cwd);

    // A syntax error: the compiler's message, with the module's file and line.
    std::fs::write(cwd.join("broken.rego"), "package gates.broken\n\nresult := {\"verdict\": \"pass\" if {\n").unwrap();
    let set = |rego: &str| {
        cli(
            &server,
            cwd,
            &["policy", "set", "--tenant", TENANT, "--key", &admin, "--file", "policy.json", "--rego", rego],
        )
    };
    let refused = set("broken.rego");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("policy.json is not a valid release policy (nothing was sent)"), "{stderr}");
    assert!(stderr.contains("rego.modules.broken.rego does not compile"), "{stderr}");
    assert!(stderr.contains("broken.rego:3:"), "{stderr}");
    assert_eq!(log_size(&server, cwd), before);

    // A gate reading the clock: refused, naming the builtin.
    let clock = "package gates.broken\n\nresult := {\"verdict\": \"pass\", \"observed\": time.now_ns()}\n";
    std::fs::write(cwd.join("clock.rego"), clock).unwrap();
    let refused = set("clock.rego");
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("gate broken calls time.now_ns"), "{stderr}");
    assert_eq!(log_size(&server, cwd), before);

    // The same module twice (a name is a file name): refused before anything is compiled.
    let sub = cwd.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("clock.rego"), clock).unwrap();
    let twice = cli(
        &server,
        cwd,
        &[
            "policy",
            "set",
            "--tenant",
            TENANT,
            "--key",
            &admin,
            "--file",
            "policy.json",
            "--rego",
            "clock.rego",
            "--rego",
            "sub/clock.rego",
        ],
    );
    assert_eq!(twice.status.code(), Some(2), "{twice:?}");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("rego module clock.rego is given twice"), "{twice:?}");

    // Past the CLI's own check (the raw `append`), the server refuses both the same way.
    for (module, says) in [("broken.rego", "does not compile"), ("clock.rego", "time.now_ns")] {
        let source = std::fs::read_to_string(cwd.join(module)).unwrap();
        let policy = serde_json::json!({"policy": {
            "version": 1,
            "environments": {"prod": {"gates": ["broken"]}},
            "rego": {"modules": {module: source}},
        }});
        std::fs::write(cwd.join("raw.json"), policy.to_string()).unwrap();
        let refused = cli(
            &server,
            cwd,
            &[
                "append",
                "--tenant",
                TENANT,
                "--key",
                &admin,
                "--type",
                "PolicyUpdated",
                "--stream",
                "policy",
                "--data",
                "@raw.json",
            ],
        );
        assert_eq!(refused.status.code(), Some(1), "{module}: {refused:?}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("INVALID_ARGUMENT"), "{module}: {stderr}");
        assert!(stderr.contains(says), "{module}: {stderr}");
        assert_eq!(log_size(&server, cwd), before, "{module}: the server stored a policy it cannot run");
    }
}

#[test]
fn a_gate_that_loops_is_stopped_at_its_instruction_limit_and_blocks_the_release() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI", "ReleaseIntentDeclared,ReleaseEvaluationRequested");
    // Nothing else is asked: without the spinning gate the release would be approved.
    std::fs::write(
        cwd.join("policy.json"),
        r#"{"version": 1, "environments": {"prod": {"requiresApproval": false, "requiredSignals": [], "gates": ["spin"]}},
            "rego": {"instructionLimit": 20000}}"#,
    )
    .unwrap();
    // Every character of the input, three times over: billions of iterations.
    std::fs::write(
        cwd.join("spin.rego"),
        "package gates.spin\n\nchars := split(sprintf(\"%v\", [input]), \"\")\n\n\
         result := {\"verdict\": \"pass\", \"observed\": count([1 | some a in chars; some b in chars; some c in chars])}\n",
    )
    .unwrap();
    let admin = admin_key(&server);
    ok(cli(
        &server,
        cwd,
        &["policy", "set", "--tenant", TENANT, "--key", &admin, "--file", "policy.json", "--rego", "spin.rego"],
    ));
    let r = ["--tenant", TENANT, "--release", "r-spin"];
    ok(cli(
        &server,
        cwd,
        &[&["intent", "--key", "ci.pem", "--environment", "prod", "--module", "api@1.0.0"][..], &r].concat(),
    ));
    let started = std::time::Instant::now();
    let lines =
        json_lines(&ok(cli(&server, cwd, &[&["evaluate", "--key", "ci.pem", "--wait", "--json"][..], &r].concat())));
    let summary = &lines[1];
    assert_eq!(summary["status"], "Rejected", "{summary}");
    assert_eq!(reason_codes(summary), ["CustomGateError"], "{summary}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the bound did not bound: {:?}", started.elapsed());
    let explained = explain(&server, cwd, "r-spin");
    let gate = explained["gates"].as_array().unwrap().iter().find(|g| g["gate"] == "custom:spin").unwrap();
    assert_eq!(gate["verdict"], "Fail", "{explained}");
    assert!(gate["observed"].as_str().unwrap().contains("stopped after 20000 instructions"), "{explained}");
    let run = &explained["customGates"]["results"][0];
    assert!(run["result"].is_null() && run["error"].as_str().unwrap().contains("stopped after 20000"), "{run}");
    assert_eq!(explained["reproduced"], true, "{explained}");
    // The release was never approved, by any of its decisions.
    let timeline = json_lines(&ok(cli(&server, cwd, &[&["timeline", "--json"][..], &r].concat())));
    assert!(timeline.iter().all(|i| i["type"] != "ReleaseApproved"), "{timeline:?}");
    assert!(timeline.iter().any(|i| i["type"] == "ReleaseRejected"), "{timeline:?}");
}

#[test]
fn policy_test_on_the_saved_policy_input_gives_the_servers_verdicts() {
    let (dir, server) = gated_tenant();
    let cwd = dir.path();
    // Mixed verdicts: the SLO budget is spent, the drill is recent, no provenance, no perf run.
    let release = "r-mixed";
    let summary = scenario(
        &server,
        cwd,
        release,
        &Evidence { budget: 0.02, drill_age_days: 10, perf_current: None, provenance: false },
    );
    assert_eq!(summary["status"], "Rejected", "{summary}");
    assert_eq!(reason_codes(&summary), ["CustomGateFailed", "CustomGateFailed", "CustomGatePending"], "{summary}");
    let explained = explain(&server, cwd, release);
    let server_gates: Vec<serde_json::Value> = explained["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["gate"].as_str().unwrap().starts_with("custom:"))
        .map(|g| serde_json::json!([g["gate"], g["verdict"], g["code"], g["target"], g["observed"]]))
        .collect();
    assert_eq!(server_gates.len(), 4, "{explained}");

    // The explanation for people: the code column, the raw results, where the input is.
    let text = ok(cli(&server, cwd, &["explain", "--tenant", TENANT, "--release", release]));
    let header = text.lines().find(|l| l.starts_with("gate ")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(header.split_whitespace().collect::<Vec<_>>(), ["gate", "target", "observed", "verdict", "code"]);
    let line = text.lines().find(|l| l.starts_with("custom:slo_error_budget ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.split_whitespace().rev().take(2).eq(["ErrorBudgetExhausted", "Fail"]), "{line}");
    let line = text.lines().find(|l| l.starts_with("custom:dr_drill_recent ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.split_whitespace().rev().take(2).eq(["-", "Pass"]), "{line}");
    assert!(text.contains("\nslo_error_budget: {\"code\":\"ErrorBudgetExhausted\""), "{text}");
    assert!(text.contains("\ndr_drill_recent: {"), "{text}");
    assert!(
        text.contains(&format!(
            "print it with: release-ledger policy input --tenant {TENANT} --release {release} --seq "
        )),
        "{text}"
    );

    // `policy input`: the document the gates got, saved, then run locally with `policy test`.
    let input = ok(cli(&server, cwd, &["policy", "input", "--tenant", TENANT, "--release", release]));
    let document: serde_json::Value = serde_json::from_str(&input).unwrap();
    assert_eq!(document, explained["customGates"]["input"]);
    assert_eq!(document["release"]["environment"], "prod");
    std::fs::write(cwd.join("input.json"), &input).unwrap();
    let policy = gates_dir().join("policy.json");
    let test_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["policy", "test", "--file", path(&policy), "--input", "input.json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(rego_args());
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let tested = json(&ok(run(&server, cwd, &test_args(&["--json"]))));
    assert_eq!(tested["environment"], "prod", "{tested}");
    let local_gates: Vec<serde_json::Value> = tested["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| serde_json::json!([g["gate"], g["verdict"], g["code"], g["target"], g["observed"]]))
        .collect();
    assert_eq!(local_gates, server_gates, "policy test disagrees with the server");
    let results: Vec<&serde_json::Value> = tested["gates"].as_array().unwrap().iter().map(|g| &g["result"]).collect();
    let server_results: Vec<&serde_json::Value> =
        explained["customGates"]["results"].as_array().unwrap().iter().map(|r| &r["result"]).collect();
    assert_eq!(results, server_results);
    assert_eq!(tested["gates"][0]["reason"]["code"], "CustomGateFailed", "{tested}");
    assert_eq!(tested["gates"][1]["reason"], serde_json::Value::Null, "{tested}");

    // For people: one line per gate.
    let text = ok(run(&server, cwd, &test_args(&[])));
    let line = text.lines().find(|l| l.starts_with("custom:perf_regression ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" Pending  PerfRunPending ") && line.ends_with("no perf-baseline yet for api"), "{line}");

    // Another environment's gates on the same input (staging: perf_regression only).
    let staging = json(&ok(run(&server, cwd, &test_args(&["--json", "--environment", "staging"]))));
    assert_eq!(staging["gates"].as_array().unwrap().len(), 1, "{staging}");

    // Refusals say why, and exit non-zero: an environment without rules, input that is not
    // JSON, a policy that does not compile.
    let failed = |args: Vec<String>, says: &str| {
        let output = run(&server, cwd, &args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    };
    failed(test_args(&["--environment", "dev"]), "the policy has no rules for environment \"dev\"");
    std::fs::write(cwd.join("no-gates.json"), r#"{"version": 1, "environments": {"prod": {}}}"#).unwrap();
    failed(
        ["policy", "test", "--file", "no-gates.json", "--input", "input.json"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        "name no custom gates",
    );
    std::fs::write(cwd.join("input.json"), &input[..input.len() / 2]).unwrap();
    failed(test_args(&[]), "input.json is not a gate input document: not JSON");
    std::fs::write(cwd.join("input.json"), &input).unwrap();
    let mut args = test_args(&[]);
    let at = args.iter().position(|a| a.ends_with("perf_regression.rego")).unwrap();
    std::fs::write(cwd.join("perf_regression.rego"), "package gates.perf_regression\nresult := {\n").unwrap();
    args[at] = "perf_regression.rego".into();
    failed(args, "rego.modules.perf_regression.rego does not compile");

    // A release whose environment has no custom gates has no gate input to print.
    std::fs::write(
        cwd.join("plain.json"),
        r#"{"version": 3, "default": {"requiresApproval": false, "requiredSignals": []}}"#,
    )
    .unwrap();
    ok(cli(&server, cwd, &["policy", "set", "--tenant", TENANT, "--key", &admin_key(&server), "--file", "plain.json"]));
    let r = ["--tenant", TENANT, "--release", "r-plain"];
    ok(cli(
        &server,
        cwd,
        &[&["intent", "--key", "ci.pem", "--environment", "dev", "--module", "api@1.0.0"][..], &r].concat(),
    ));
    ok(cli(&server, cwd, &[&["evaluate", "--key", "ci.pem", "--wait"][..], &r].concat()));
    let none = cli(&server, cwd, &[&["policy", "input"][..], &r].concat());
    assert_eq!(none.status.code(), Some(1), "{none:?}");
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(
        stderr
            .contains("of r-plain has no custom gate input: the policy in force gave its environment no custom gates"),
        "{stderr}"
    );
}
