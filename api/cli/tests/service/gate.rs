//! `release-ledger gate` against a real server whose log the demo filled: exit codes, the wait,
//! and the checks that make a decision trusted (the ledger key's signature over a decision
//! about that release, included in a signed checkpoint).

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{binary, json, ok, Server};

const TENANT: &str = "vetclinic-001";

fn gate(server: &Server, cwd: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(binary())
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .args(["gate", "--tenant", TENANT])
        .args(args)
        .output()
        .unwrap()
}

/// A server whose log the demo filled; the ids of its Approved, Rejected and Published releases.
pub(crate) fn demo_server() -> (tempfile::TempDir, std::path::PathBuf, Server, [String; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);
    let admin = data.join("keys/admin.pem");
    // Its keys and evidence in the test's directory (by default the demo leaves them in
    // TMPDIR for whoever runs it to explore).
    let demo_dir = dir.path().join("demo");
    let demo = Command::new(binary())
        .current_dir(dir.path())
        .args(["demo", "--json", "--server", &server.url(), "--admin-key", admin.to_str().unwrap()])
        .arg("--data-dir")
        .arg(&demo_dir)
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .output()
        .unwrap();
    let report = json(&ok(demo));
    // Kept for the tests that look at more of it (the evidence pack the demo wrote).
    std::fs::write(dir.path().join("demo.json"), report.to_string()).unwrap();
    let release = |status: &str| {
        report["releases"].as_array().unwrap().iter().find(|r| r["status"] == status).unwrap()["releaseId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let releases = [release("Approved"), release("Rejected"), release("Published")];
    (dir, data, server, releases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_answers_approved_rejected_and_undecided_and_trusts_only_decisions_that_verify() {
    let (dir, data, server, [approved, rejected, published]) = demo_server();
    let ledger_pub = data.join("keys/ledger.pub");
    let ledger_pub = ledger_pub.to_str().unwrap();

    // Approved: exit 0, the decision verified.
    let out = gate(&server, dir.path(), &["--release", &approved, "--json", "--ledger-key", ledger_pub]);
    let answer = json(&ok(out));
    assert_eq!(answer["deployable"], true, "{answer}");
    assert_eq!(answer["decisionType"], "ReleaseApproved", "{answer}");
    assert_eq!(answer["verified"], true, "{answer}");
    let approved_seq = answer["decisionSeq"].as_u64().unwrap();
    // Published (approved, then deployed): exit 0 too.
    let answer = json(&ok(gate(&server, dir.path(), &["--release", &published, "--json"])));
    assert_eq!(answer["decisionType"], "ReleasePublished", "{answer}");
    // Rejected: exit 1, its reasons in the answer, the rejection verified as well.
    let out = gate(&server, dir.path(), &["--release", &rejected, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let answer = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        (answer["deployable"].clone(), answer["decisionType"].clone()),
        (false.into(), "ReleaseRejected".into())
    );
    assert!(answer["reasons"].to_string().contains("SecurityGateFailed"), "{answer}");
    let rejected_seq = answer["decisionSeq"].as_u64().unwrap();

    // Not declared (yet): the wait runs out, exit 3, after the wait and not much later.
    let started = Instant::now();
    let out =
        gate(&server, dir.path(), &["--release", "release-never", "--wait", "2", "--poll-seconds", "1", "--json"]);
    let waited = started.elapsed();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(waited >= Duration::from_secs(2) && waited < Duration::from_secs(10), "{waited:?}");
    assert_eq!(json(&String::from_utf8(out.stdout).unwrap())["decided"], false);

    // Under another ledger key nothing verifies: exit 1, never 0.
    let other = dir.path().join("other.pub");
    std::fs::write(&other, ledger::KeyPair::generate().public_key_pem().unwrap()).unwrap();
    let out = gate(&server, dir.path(), &["--release", &approved, "--ledger-key", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed by the ledger key"), "{out:?}");

    // What a lying server could point the gate at is refused: an entry that is no decision,
    // and another release's decision.
    let channel = tonic::transport::Channel::from_shared(server.url()).unwrap().connect().await.unwrap();
    ledger_client::auth::set_token(Some(ledger_client::auth::TokenSource::Value(server.token.clone())));
    let mut client = ledger_client::ledger_client(channel, ledger_client::DEFAULT_MAX_MESSAGE_BYTES);
    let key =
        ledger::keys::public_key_from_text(&std::fs::read_to_string(data.join("keys/ledger.pub")).unwrap()).unwrap();
    let verified = ledger_client::gate::verify_decision(&mut client, TENANT, &approved, approved_seq, &key).await;
    assert_eq!(verified.unwrap().decision_type, "ReleaseApproved");
    let not_a_decision = ledger_client::gate::verify_decision(&mut client, TENANT, &approved, 0, &key).await;
    assert!(not_a_decision.unwrap_err().to_string().contains("not a decision"));
    let other_release = ledger_client::gate::verify_decision(&mut client, TENANT, &approved, rejected_seq, &key).await;
    assert!(other_release.unwrap_err().to_string().contains("about release"));
}

/// The `run:` script of the GitHub composite action (the lines indented under `run: |`).
fn action_script() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ci/github/release-gate/action.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().skip_while(|l| l.trim() != "run: |").skip(1);
    let indent = "        ";
    let mut script = String::new();
    for line in lines.by_ref() {
        if !line.is_empty() && !line.starts_with(indent) {
            break;
        }
        script.push_str(line.strip_prefix(indent).unwrap_or(""));
        script.push('\n');
    }
    assert!(script.contains("gate --json"), "{script}");
    script
}

/// The script line of the GitLab job template.
fn gitlab_script() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ci/gitlab/release-gate.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("- 'set -o pipefail;")).unwrap();
    let quoted = line.trim_start().trim_start_matches("- ");
    quoted.trim_matches('\'').to_owned()
}

#[test]
fn the_github_action_and_the_gitlab_template_pass_an_approved_release_and_fail_a_rejected_one() {
    let (dir, data, server, [approved, rejected, _]) = demo_server();
    let ledger_pub = data.join("keys/ledger.pub");
    let run = |script: &str, release: &str| {
        let output_file = dir.path().join(format!("github-output-{release}"));
        let output = Command::new("bash")
            .args(["-e", "-c", script])
            .current_dir(dir.path())
            .env("RELEASE_LEDGER_SERVER", server.url())
            .env("RELEASE_LEDGER_TOKEN", &server.token)
            .env("RELEASE_LEDGER_CA_CERT", "")
            .env("TENANT", TENANT)
            .env("RELEASE", release)
            .env("LEDGER_KEY", &ledger_pub)
            .env("WAIT", "0")
            .env("GATE_WAIT", "0")
            .env("BIN", binary())
            .env("RELEASE_LEDGER_BIN", binary())
            .env("GITHUB_OUTPUT", &output_file)
            .output()
            .unwrap();
        (output, std::fs::read_to_string(output_file).unwrap_or_default())
    };
    let (out, github_output) = run(&action_script(), &approved);
    assert!(out.status.success(), "{out:?}");
    assert!(
        github_output.starts_with("decision={") && github_output.contains("\"deployable\":true"),
        "{github_output}"
    );
    let (out, github_output) = run(&action_script(), &rejected);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("::error::release"), "{out:?}");
    assert!(github_output.contains("\"deployable\":false"), "{github_output}");
    let (out, _) = run(&action_script(), "release-never");
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    let (out, _) = run(&gitlab_script(), &approved);
    assert!(out.status.success(), "{out:?}");
    let (out, _) = run(&gitlab_script(), &rejected);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let artifact = std::fs::read_to_string(dir.path().join("gate.json")).unwrap();
    assert!(artifact.contains("ReleaseRejected"), "{artifact}");
}

#[test]
fn release_notes_are_rendered_from_verified_entries_and_refused_under_another_key() {
    let (dir, data, server, [_, rejected, published]) = demo_server();
    let notes = |args: &[&str]| {
        Command::new(binary())
            .current_dir(dir.path())
            .env("RELEASE_LEDGER_SERVER", server.url())
            .env("RELEASE_LEDGER_TOKEN", &server.token)
            .args(["notes", "--tenant", TENANT])
            .args(args)
            .output()
            .unwrap()
    };
    // An event about the release signed by the admin key (it may sign any ordinary type).
    let admin = data.join("keys/admin.pem");
    let data_json = r#"{"module":"billing-service","version":"2.4.0","suite":"smoke","passed":3,"failed":0}"#;
    let stream = format!("release/{published}");
    ok(crate::cli(
        &server,
        dir.path(),
        &[
            "append",
            "--tenant",
            TENANT,
            "--key",
            admin.to_str().unwrap(),
            "--type",
            "TestsPassed",
            "--stream",
            &stream,
            "--release-id",
            &published,
            "--data",
            data_json,
            "--wait",
        ],
    ));
    let ledger_pub = data.join("keys/ledger.pub");
    let markdown = ok(notes(&["--release", &published, "--ledger-key", ledger_pub.to_str().unwrap()]));
    assert!(markdown.starts_with(&format!("# Release notes: {published}")), "{markdown}");
    for needle in [
        "## What ships",
        "| billing-service | 2.4.0 |",
        "ReleaseApproved",
        "ReleasePublished",
        "DeploymentCompleted",
        "granted",
    ] {
        assert!(markdown.contains(needle), "{needle} missing:\n{markdown}");
    }
    let verified_line = markdown.lines().find(|l| l.starts_with("- Verified: ")).unwrap();
    assert!(verified_line.contains("signed by the ledger key"), "{verified_line}");
    // The rejected release's notes name the rejection and its reason.
    let out = dir.path().join("rejected.md");
    let answer = json(&ok(notes(&["--release", &rejected, "--out", out.to_str().unwrap(), "--json"])));
    assert!(answer["entries"].as_u64().unwrap() > 3, "{answer}");
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.contains("ReleaseRejected") && written.contains("SecurityGateFailed"), "{written}");
    // Under another ledger key nothing verifies: exit 1 and no notes.
    let other = dir.path().join("other.pub");
    std::fs::write(&other, ledger::KeyPair::generate().public_key_pem().unwrap()).unwrap();
    let out = notes(&["--release", &published, "--ledger-key", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
}
