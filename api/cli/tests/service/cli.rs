//! The CLI against a real server: keys, append, batch, tail, checkpoint, prove, failures.

use std::process::Command;

use crate::{binary, cli, cli_register_agent, json_lines, ok, temp_data_dir, Server};

const TENANT: &str = "vetclinic-001";

/// Catalogue-valid `TestsPassed` data.
const TESTS_PASSED: &str = r#"{"module":"billing","version":"1.4.0","suite":"unit","passed":10,"failed":0}"#;

#[test]
fn a_walkthrough_through_the_cli() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    let admin = data.join("keys/admin.pem");
    let admin = admin.to_str().unwrap();
    let ledger_pub = data.join("keys/ledger.pub");
    let ledger_pub = ledger_pub.to_str().unwrap();

    let keygen = json_lines(&ok(cli(&server, cwd, &["keygen", "--out", "ci.pem", "--json"])));
    let key_id = keygen[0]["keyId"].as_str().unwrap().to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(cwd.join("ci.pem")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // Refuses to overwrite a key.
    assert_eq!(cli(&server, cwd, &["keygen", "--out", "ci.pem"]).status.code(), Some(2));

    ok(cli(
        &server,
        cwd,
        &[
            "keys",
            "register",
            "--tenant",
            TENANT,
            "--create-tenant",
            "--agent",
            "ci",
            "--roles",
            "CI,QA",
            "--types",
            "PipelineReady,TestsPassed",
            "--public-key",
            "ci.pem",
            "--admin-key",
            admin,
        ],
    ));
    let listed = json_lines(&ok(cli(&server, cwd, &["keys", "list", "--tenant", TENANT, "--json"])));
    assert_eq!(listed[0]["keyId"], key_id);
    assert_eq!(listed[0]["agentId"], "ci");

    let receipt = json_lines(&ok(cli(
        &server,
        cwd,
        &[
            "append",
            "--tenant",
            TENANT,
            "--key",
            "ci.pem",
            "--type",
            "PipelineReady",
            "--stream",
            "release/r1",
            "--data",
            r#"{"pipelineId":"main"}"#,
            "--release-id",
            "r1",
            "--trace-id",
            "t-1",
            "--event-id",
            "ci-1",
            "--expected-version",
            "no-stream",
            "--json",
        ],
    )));
    assert_eq!(receipt[0]["seq"], 1);
    // recordedAt stays nanoseconds (scripts parse it); recordedAtRfc3339 is the same instant.
    let nanos = receipt[0]["recordedAt"].as_i64().unwrap();
    let rfc3339 = chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    assert_eq!(receipt[0]["recordedAtRfc3339"], rfc3339);
    // Retrying the same event id with the same payload is not possible from the CLI (occurredAt
    // differs), so the retry shows up as a conflict, clearly.
    let retry = cli(
        &server,
        cwd,
        &[
            "append",
            "--tenant",
            TENANT,
            "--key",
            "ci.pem",
            "--type",
            "PipelineReady",
            "--stream",
            "release/r1",
            "--release-id",
            "r1",
            "--event-id",
            "ci-1",
        ],
    );
    assert_eq!(retry.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&retry.stderr).contains("AlreadyExists"));

    std::fs::write(cwd.join("data.json"), TESTS_PASSED).unwrap();
    ok(cli(
        &server,
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
            "release/r1",
            "--data",
            "@data.json",
            "--release-id",
            "r1",
            "--expected-version",
            "1",
        ],
    ));
    std::fs::write(
        cwd.join("events.jsonl"),
        format!(
            "{{\"type\":\"TestsPassed\",\"stream\":\"release/r2\",\"releaseId\":\"r2\",\"data\":{TESTS_PASSED}}}\n\n\
             {{\"type\":\"TestsPassed\",\"stream\":\"release/r2\",\"releaseId\":\"r2\",\"data\":{TESTS_PASSED},\
             \"eventId\":\"b-2\",\"expectedVersion\":1}}\n"
        ),
    )
    .unwrap();
    let batch = json_lines(&ok(cli(
        &server,
        cwd,
        &["append-batch", "--tenant", TENANT, "--key", "ci.pem", "--file", "events.jsonl", "--json"],
    )));
    assert_eq!(batch.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![3, 4]);

    let tail = json_lines(&ok(cli(&server, cwd, &["tail", "--tenant", TENANT, "--json"])));
    assert_eq!(tail.len(), 5);
    assert_eq!(tail[1]["eventId"], "ci-1");
    assert_eq!(tail[1]["type"], "PipelineReady");
    assert_eq!(tail[1]["stream"], "release/r1");
    assert_eq!(tail[1]["agentId"], "ci");
    for field in ["seq", "recordedAt", "entryHash"] {
        assert!(tail[4].get(field).is_some(), "tail --json lacks {field}");
    }
    let from_three = json_lines(&ok(cli(&server, cwd, &["tail", "--tenant", TENANT, "--from", "3", "--json"])));
    assert_eq!(from_three.len(), 2);

    let checkpoint =
        json_lines(&ok(cli(&server, cwd, &["checkpoint", "--tenant", TENANT, "--ledger-key", ledger_pub, "--json"])));
    assert_eq!(checkpoint[0]["size"], 5);
    assert_eq!(checkpoint[0]["verified"], true);
    // --out saves the verified note byte for byte, for `ledger-audit consistency --old`.
    let saved =
        ok(cli(&server, cwd, &["checkpoint", "--tenant", TENANT, "--ledger-key", ledger_pub, "--out", "c.note"]));
    assert!(saved.ends_with("\nsaved to c.note\n"), "{saved}");
    assert_eq!(std::fs::read_to_string(cwd.join("c.note")).unwrap(), checkpoint[0]["note"].as_str().unwrap());
    let proof = json_lines(&ok(cli(
        &server,
        cwd,
        &["prove", "--tenant", TENANT, "--seq", "2", "--ledger-key", ledger_pub, "--json"],
    )));
    assert_eq!(proof[0]["verified"], true);
    assert_eq!(proof[0]["entryHash"], tail[2]["entryHash"]);
    // With the wrong ledger key, verification fails and says so.
    ok(cli(&server, cwd, &["keygen", "--out", "impostor.pem"]));
    let wrong = cli(&server, cwd, &["checkpoint", "--tenant", TENANT, "--ledger-key", "impostor.pem"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not verify"));
    // A checkpoint that does not verify is not saved.
    let unsaved =
        cli(&server, cwd, &["checkpoint", "--tenant", TENANT, "--ledger-key", "impostor.pem", "--out", "bad.note"]);
    assert_eq!(unsaved.status.code(), Some(1));
    assert!(!cwd.join("bad.note").exists());

    // A disallowed type, and a revoked key: non-zero exit and one line saying why.
    let denied = cli(
        &server,
        cwd,
        &[
            "append",
            "--tenant",
            TENANT,
            "--key",
            "ci.pem",
            "--type",
            "ApprovalGranted",
            "--stream",
            "s",
            "--release-id",
            "r1",
            "--data",
            r#"{"role":"QA","method":"CLI"}"#,
        ],
    );
    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8(denied.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("release-ledger: PermissionDenied"), "{stderr}");
    ok(cli(
        &server,
        cwd,
        &["keys", "revoke", "--tenant", TENANT, "--key-id", &key_id, "--reason", "rotated", "--admin-key", admin],
    ));
    let revoked = cli(
        &server,
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
            "s",
            "--agent",
            "ci",
            "--release-id",
            "r1",
            "--data",
            TESTS_PASSED,
        ],
    );
    assert!(
        String::from_utf8_lossy(&revoked.stderr).contains("revoked"),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let json_error = cli(
        &server,
        cwd,
        &["append", "--tenant", TENANT, "--key", "missing.pem", "--type", "TestsPassed", "--stream", "s", "--json"],
    );
    assert_eq!(json_error.status.code(), Some(2));
    assert!(json_lines(&String::from_utf8(json_error.stdout).unwrap())[0]["error"]
        .as_str()
        .unwrap()
        .contains("missing.pem"));
}

#[test]
fn tail_follow_streams_live_entries() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "a", "", "");
    let mut follower = Command::new(binary())
        .current_dir(cwd)
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .args(["tail", "--tenant", TENANT, "--follow", "--json", "--server", &server.url()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 0..3 {
        ok(cli(
            &server,
            cwd,
            &[
                "append",
                "--tenant",
                TENANT,
                "--key",
                "a.pem",
                "--type",
                "TestsPassed",
                "--stream",
                "s",
                "--release-id",
                "r1",
                "--data",
                TESTS_PASSED,
                "--event-id",
                &format!("live-{i}"),
            ],
        ));
    }
    // Read on a thread so that a follower that stops printing fails the test instead of hanging it.
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let seen: Vec<serde_json::Value> = (0..4)
        .map(|n| {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|e| panic!("line {n} of tail --follow never came: {e}"));
            serde_json::from_str(&line).unwrap()
        })
        .collect();
    assert_eq!(seen[3]["eventId"], "live-2");
    // A graceful server shutdown ends the stream with a clear, resumable error.
    server.terminate();
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "tail --follow outlived the server");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
}

#[test]
fn serve_reads_a_toml_config_and_env() {
    let (dir, data) = temp_data_dir();
    let config = dir.path().join("ledger.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\nmax_payload_bytes = 1024\n",
            data
        ),
    )
    .unwrap();
    let mut child = Command::new(binary())
        .args(["serve", "--json", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(started["server"]["dataDir"], data.to_str().unwrap());
    assert_eq!(started["server"]["initialised"], true);
    assert!(data.join("keys/admin.pem").exists() && data.join("keys/ledger.pub").exists());
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(data.join("keys/admin.pem")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    child.kill().unwrap();
    child.wait().unwrap();
    // A config with an unknown key is refused with a message naming it.
    std::fs::write(&config, "listen_adress = \"127.0.0.1:0\"\n").unwrap();
    let output = Command::new(binary()).args(["serve", "--config", config.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("listen_adress"));
}
