//! The governance commands of the CLI against a real server: the demo, `policy set`, `intent`,
//! `evaluate`, `summary`, `explain`, `timeline`, `replay`, `approve`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{binary, cli, cli_register_agent, json, json_lines, ok, temp_data_dir, verify_offline, Server};

const TENANT: &str = "vetclinic-001";

/// The entries of the tenant's log.
fn log_size(server: &Server, cwd: &Path) -> usize {
    json_lines(&ok(cli(server, cwd, &["tail", "--tenant", TENANT, "--json"]))).len()
}

/// Polls `summary --json` until `done` holds and the decision is in the log (the projections
/// fold the log, and the ledger appends its decisions, asynchronously).
fn summary_until(
    server: &Server,
    cwd: &Path,
    release: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = cli(server, cwd, &["summary", "--tenant", TENANT, "--release", release, "--json"]);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            let summary = json(&text);
            if done(&summary) && summary["lastDecision"]["seq"].is_u64() {
                return summary;
            }
            assert!(Instant::now() < deadline, "summary of {release} never got there: {summary}");
        } else {
            assert!(Instant::now() < deadline, "no summary of {release}: {text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reason_codes(summary: &serde_json::Value) -> Vec<&str> {
    summary["reasons"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect()
}

/// A server with a tenant whose keys are `ci.pem` (declares and evaluates), `qa-lead.pem`
/// (holds QA) and `dev.pem` (may sign approvals but holds no approving role), in `cwd`.
fn governed_tenant() -> (tempfile::TempDir, Server) {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    for (agent, roles, types) in [
        ("ci", "CI", "ReleaseIntentDeclared,ReleaseEvaluationRequested"),
        ("qa-lead", "QA", "ApprovalGranted,ApprovalRejected"),
        ("dev", "Dev", "ApprovalGranted"),
    ] {
        cli_register_agent(&server, cwd, TENANT, agent, roles, types);
    }
    (dir, server)
}

fn admin_key(server: &Server) -> String {
    server.data_dir.join("keys/admin.pem").to_str().unwrap().to_owned()
}

#[test]
fn the_demo_plays_its_story_and_names_the_three_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let output =
        Command::new(binary()).current_dir(dir.path()).arg("demo").arg("--data-dir").arg(&data).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));

    // Each step is shown as it happens, and the outcomes are named, one line per release.
    assert!(stdout.contains("-> Delayed: ChangeFreezeActive"), "{stdout}");
    let outcomes = stdout.split("== outcomes ==").nth(1).unwrap_or_else(|| panic!("no outcomes: {stdout}"));
    let line = |release: &str| outcomes.lines().find(|l| l.contains(release)).unwrap_or_else(|| panic!("{outcomes}"));
    assert!(line("release-001731").contains("Published"), "{outcomes}");
    assert!(line("release-001731").contains("ChangeFreezeActive"), "{outcomes}");
    assert!(line("release-001732").contains("Rejected"), "{outcomes}");
    assert!(line("release-001732").contains("SecurityGateFailed"), "{outcomes}");
    assert!(line("release-001734").contains("Approved"), "{outcomes}");
    assert!(line("release-001734").contains("HighRisk"), "{outcomes}");
    assert!(line("release-001734").contains("CTO"), "{outcomes}");
    // What to explore next, against the server the demo ran, with the binary's real path
    // (it is not on PATH), and saying that without --keep the server is gone.
    assert!(stdout.contains(&format!("  rl={}\n", binary())), "{stdout}");
    assert!(stdout.contains("$rl summary --server http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("$rl replay --server"), "{stdout}");
    assert!(
        stdout.contains("== explore (the embedded server stops now: rerun with --keep, e.g. scripts/demo.sh --keep, to try these) =="),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("data dir is kept: {}", data.display())), "{stdout}");
    assert!(data.join("demo-keys/cto.pem").exists());

    // Played again on the same data dir, the story still holds (fresh release ids, the same
    // agents' keys), and --json reports it as one object.
    let again = Command::new(binary()).arg("demo").arg("--data-dir").arg(&data).arg("--json").output().unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "second demo failed: {}\n{stdout}", String::from_utf8_lossy(&again.stderr));
    let report = json(stdout.trim());
    let statuses: Vec<&str> =
        report["releases"].as_array().unwrap().iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["Published", "Rejected", "Approved"]);
    assert!(report["releases"][0]["releaseId"].as_str().unwrap().starts_with("release-001731-run"), "{report}");
    assert!(report["releases"][1]["reasons"].as_array().unwrap().iter().any(|c| c == "SecurityGateFailed"));

    // Everything the demo appended, decisions included, verifies offline.
    let report = verify_offline(&data, TENANT);
    assert!(report.entries > 0);
}

#[test]
fn policy_set_refuses_an_invalid_document_and_stores_nothing() {
    let (dir, server) = governed_tenant();
    let cwd = dir.path();
    let admin = admin_key(&server);
    let before = log_size(&server, cwd);
    for (document, says) in [
        (r#"{"version": 1, "default": {"riskThreshold": 50}}"#, "default.riskThreshold needs highRiskRoles"),
        (r#"{"version": 1, "default": {"minApprovals": 2}}"#, "unknown field `minApprovals`"),
        (r#"{"version": 0}"#, "version: must be 1 or more"),
        (r#"{"version": 1, "environments": {"prod": {"roles": ["qa"]}}}"#, "environments.prod: role"),
        ("version: 1", "expected value"),
    ] {
        std::fs::write(cwd.join("policy.json"), document).unwrap();
        let output =
            cli(&server, cwd, &["policy", "set", "--tenant", TENANT, "--key", &admin, "--file", "policy.json"]);
        assert_eq!(output.status.code(), Some(2), "{document} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("policy.json is not a valid release policy (nothing was sent)"), "{stderr}");
        assert!(stderr.contains(says), "{document}: {stderr}");
    }
    assert_eq!(log_size(&server, cwd), before, "a refused policy left something in the log");

    // A valid one goes through and says which version is in force.
    std::fs::write(cwd.join("policy.json"), r#"{"version": 3, "default": {"minApprovers": 1}}"#).unwrap();
    let stdout =
        ok(cli(&server, cwd, &["policy", "set", "--tenant", TENANT, "--key", &admin, "--file", "policy.json"]));
    assert!(stdout.contains("policy version 3 is in force"), "{stdout}");
    assert_eq!(log_size(&server, cwd), before + 1);
}

#[test]
fn intent_evaluate_summary_explain_approve_and_replay() {
    let (dir, server) = governed_tenant();
    let cwd = dir.path();
    let admin = admin_key(&server);
    std::fs::write(
        cwd.join("policy.json"),
        r#"{"version": 1, "environments": {"production": {"roles": ["QA"], "minApprovers": 1, "requiredSignals": []}}}"#,
    )
    .unwrap();
    ok(cli(&server, cwd, &["policy", "set", "--tenant", TENANT, "--key", &admin, "--file", "policy.json"]));
    let release = ["--tenant", TENANT, "--release", "release-001731"];
    let with = |extra: &[&'static str]| -> Vec<&str> { release.iter().chain(extra).copied().collect() };

    ok(cli(
        &server,
        cwd,
        &[
            ["intent", "--key", "ci.pem", "--environment", "production"].as_slice(),
            &with(&["--module", "billing-service@2.4.0", "--trace-id", "trace-1731"]),
        ]
        .concat(),
    ));
    let evaluated =
        json(&ok(cli(&server, cwd, &[["evaluate", "--key", "ci.pem", "--json"].as_slice(), &with(&[])].concat())));
    let evaluation_seq = evaluated["seq"].as_u64().unwrap();

    // summary --json: the whole read model, camelCase, every field present.
    let summary = summary_until(&server, cwd, "release-001731", |s| s["status"] == "Delayed");
    assert_eq!(summary["status"], "Delayed");
    assert_eq!(reason_codes(&summary), ["ApprovalPending"]);
    let reason = &summary["reasons"][0];
    assert_eq!(reason["module"], serde_json::Value::Null);
    assert!(reason["detail"].as_str().unwrap().contains("waiting for approval by QA"), "{summary}");
    assert!(summary.get("retryAfter").is_some_and(serde_json::Value::is_null), "{summary}");
    assert!(summary["riskScore"].is_u64(), "{summary}");
    let factors = summary["riskFactors"].as_array().unwrap();
    assert!(factors.iter().any(|f| f["factor"] == "firstRelease" && f["points"] == 10), "{summary}");
    assert!(factors.iter().all(|f| f["value"].is_string()), "{summary}");
    assert_eq!(summary["approvals"], serde_json::json!([]));
    assert_eq!(summary["policyVersion"], 1);
    assert_eq!(summary["lastDecision"]["type"], "ReleaseDelayed");
    assert_eq!(summary["lastDecision"]["trigger"], evaluation_seq);
    assert_eq!(summary["releaseId"], "release-001731");
    assert_eq!(summary["environment"], "production");
    assert_eq!(summary["modules"], serde_json::json!([{"name": "billing-service", "version": "2.4.0"}]));
    assert_eq!(summary["traceId"], "trace-1731");
    assert_eq!(summary["declaredBy"], "ci");

    // explain: the gate table, the reasons, and the reproduction check.
    let explained = ok(cli(&server, cwd, &[["explain"].as_slice(), &with(&[])].concat()));
    let header = explained.lines().find(|l| l.starts_with("gate ")).unwrap_or_else(|| panic!("{explained}"));
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["gate", "target", "observed", "verdict"], "{explained}");
    let approvals = explained.lines().find(|l| l.starts_with("approvals ")).unwrap_or_else(|| panic!("{explained}"));
    assert!(approvals.contains("approval by QA") && approvals.ends_with("Pending"), "{explained}");
    assert!(explained.lines().any(|l| l.starts_with("ApprovalPending ")), "{explained}");
    assert!(explained.contains("reproduced from the log: yes"), "{explained}");
    assert!(explained.contains("risk score "), "{explained}");
    assert!(explained.contains("evidence seqs: "), "{explained}");

    // A key that may sign approvals but does not hold the role: refused, nothing stored.
    let before = log_size(&server, cwd);
    let denied = cli(&server, cwd, &[["approve", "--key", "dev.pem", "--role", "QA"].as_slice(), &with(&[])].concat());
    assert_eq!(denied.status.code(), Some(1));
    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("PERMISSION_DENIED"), "{stderr}");
    assert!(stderr.contains("does not hold the QA role"), "{stderr}");
    assert_eq!(log_size(&server, cwd), before);

    // The QA lead approves: approved.
    ok(cli(
        &server,
        cwd,
        &[["approve", "--key", "qa-lead.pem", "--role", "QA", "--comment", "reviewed"].as_slice(), &with(&[])].concat(),
    ));
    let summary = summary_until(&server, cwd, "release-001731", |s| s["status"] == "Approved");
    assert_eq!(reason_codes(&summary), Vec::<&str>::new());
    assert_eq!(summary["approvals"][0]["agentId"], "qa-lead");
    assert_eq!(summary["approvals"][0]["role"], "QA");
    assert_eq!(summary["approvals"][0]["method"], "CLI");
    assert_eq!(summary["approvals"][0]["text"], "reviewed");

    // Replay as of the evaluation: still delayed then.
    let as_of = evaluation_seq.to_string();
    let replay =
        json(&ok(cli(&server, cwd, &[["replay", "--json", "--as-of", &as_of].as_slice(), &with(&[])].concat())));
    assert_eq!(replay["summary"]["status"], "Delayed", "{replay}");
    assert_eq!(replay["size"], evaluation_seq + 1);
    assert_eq!(replay["timeline"].as_array().unwrap().last().unwrap()["seq"], evaluation_seq);
    let replay = ok(cli(&server, cwd, &[["replay", "--as-of", &as_of].as_slice(), &with(&[])].concat()));
    assert!(replay.lines().any(|l| l.starts_with("release-001731  Delayed")), "{replay}");
    assert!(replay.contains(&format!("as of seq {evaluation_seq}")), "{replay}");
    let bad = cli(&server, cwd, &[["replay", "--as-of", "yesterday"].as_slice(), &with(&[])].concat());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a seq nor an RFC 3339 time"));

    // The timeline has every entry about the release, decisions included.
    let timeline = json_lines(&ok(cli(&server, cwd, &[["timeline", "--json"].as_slice(), &with(&[])].concat())));
    let types: Vec<&str> = timeline.iter().map(|i| i["type"].as_str().unwrap()).collect();
    for expected in ["ReleaseIntentDeclared", "ReleasePlanned", "ReleaseEvaluationRequested", "ReleaseDelayed"] {
        assert!(types.contains(&expected), "{types:?}");
    }
    assert!(types.contains(&"ApprovalGranted") && types.contains(&"ReleaseApproved"), "{types:?}");
    let releases =
        json_lines(&ok(cli(&server, cwd, &["releases", "--tenant", TENANT, "--status", "Approved", "--json"])));
    assert_eq!(releases.len(), 1);
    assert_eq!(releases[0]["releaseId"], "release-001731");
}
