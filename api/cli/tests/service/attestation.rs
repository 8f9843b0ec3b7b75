//! `release-ledger attestation` against a real server whose log the demo filled: decisions as
//! in-toto Statements with the SLSA VSA predicate, DSSE-signed by the ledger key, verified by
//! the CLI against the log and by the in-toto project's own Python libraries
//! (tests/interop/check_attestation.py: securesystemslib and in-toto-attestation).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::gate::demo_server;
use crate::interop::run_script;
use crate::{cli, json, ok, Server};

const TENANT: &str = "vetclinic-001";
const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// The statements of a bundle file (one DSSE envelope per line), decoded.
fn statements(bundle: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(bundle).unwrap();
    text.lines()
        .map(|line| {
            let envelope = json(line);
            assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json", "{envelope}");
            let payload = envelope["payload"].as_str().unwrap();
            let bytes = base64::engine::general_purpose::STANDARD.decode(payload).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect()
}

fn attestation(server: &Server, cwd: &Path, release: &str, extra: &[&str]) -> std::process::Output {
    cli(server, cwd, &[["attestation", "--tenant", TENANT, "--release", release].as_slice(), extra].concat())
}

#[test]
fn decisions_are_signed_vsas_that_verify_against_the_log_and_with_in_toto_tooling() {
    let (dir, data, server, [approved, rejected, _]) = demo_server();
    let cwd = dir.path();
    let ledger_pub = data.join("keys/ledger.pub");
    let ledger_pub = ledger_pub.to_str().unwrap();
    let pinned = ["--ledger-key", ledger_pub];

    // The approval: one envelope, a PASSED VSA about the decision the gate trusts.
    let approved_bundle = cwd.join("approved.intoto.jsonl");
    let out = attestation(
        &server,
        cwd,
        &approved,
        &[&pinned[..], &["--out", approved_bundle.to_str().unwrap(), "--json"]].concat(),
    );
    let summary = json(&ok(out));
    assert_eq!(summary["attestations"][0]["verificationResult"], "PASSED", "{summary}");
    let gate = json(&ok(cli(&server, cwd, &["gate", "--tenant", TENANT, "--release", &approved, "--json"])));
    let decision_seq = gate["decisionSeq"].as_u64().unwrap();
    assert_eq!(summary["attestations"][0]["seq"], decision_seq);
    let statement = &statements(&approved_bundle)[0];
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/verification_summary/v1");
    let predicate = &statement["predicate"];
    assert_eq!(predicate["verificationResult"], "PASSED");
    let decision = &predicate["https://release-ledger.dev/attestation/decision/v1"];
    assert_eq!(decision["status"], "Approved");
    assert!(decision["entry"]["uri"].as_str().unwrap().ends_with(&format!("/entries/{decision_seq}")), "{decision}");
    assert!(predicate["verifier"]["id"].as_str().unwrap().ends_with(&format!("/{TENANT}")), "{predicate}");
    assert!(!predicate["inputAttestations"].as_array().unwrap().is_empty());
    assert!(predicate["policy"]["digest"]["releaseLedgerEntryHash"].is_string(), "{predicate}");

    // Every decision of the rejected release, oldest first, the last one FAILED; on stdout.
    let all = ok(attestation(&server, cwd, &rejected, &[&pinned[..], &["--all"]].concat()));
    let rejected_bundle = cwd.join("rejected.intoto.jsonl");
    std::fs::write(&rejected_bundle, &all).unwrap();
    let decisions = statements(&rejected_bundle);
    let seqs: Vec<u64> = decisions
        .iter()
        .map(|s| {
            let uri =
                s["predicate"]["https://release-ledger.dev/attestation/decision/v1"]["entry"]["uri"].as_str().unwrap();
            uri.rsplit('/').next().unwrap().parse().unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let last = decisions.last().unwrap();
    assert_eq!(last["predicate"]["verificationResult"], "FAILED");
    assert_eq!(last["predicate"]["verifiedLevels"], serde_json::json!(["FAILED"]));

    // The in-toto project's libraries agree: signatures, Statement v1, VSA v1.
    for (bundle, count) in [(&approved_bundle, 1), (&rejected_bundle, decisions.len())] {
        let checked = run_script(
            &server,
            "check_attestation.py",
            &["--bundle", bundle.to_str().unwrap(), "--ledger-pub", ledger_pub],
        );
        assert_eq!(checked["checked"], count, "{checked}");
    }
    // ... and refuse the approval once one byte of its statement changes (PASSED -> FAILED).
    let line = std::fs::read_to_string(&approved_bundle).unwrap();
    let mut envelope = json(&line);
    let payload = String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(envelope["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let forged = payload.replacen("\"PASSED\"", "\"FAILED\"", 1);
    assert_ne!(forged, payload);
    envelope["payload"] = base64::engine::general_purpose::STANDARD.encode(forged).into();
    let tampered = cwd.join("tampered.intoto.jsonl");
    std::fs::write(&tampered, format!("{envelope}\n")).unwrap();
    let refused = Command::new(testkit::interop_python())
        .arg(testkit::interop_dir().join("check_attestation.py"))
        .args(["--bundle", tampered.to_str().unwrap(), "--ledger-pub", ledger_pub])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("does not verify"), "{refused:?}");

    // A seq that is not one of the release's decisions: NOT_FOUND, saying so; nothing written.
    let nowhere = cwd.join("none.intoto.jsonl");
    let out = attestation(&server, cwd, &approved, &["--seq", "0", "--out", nowhere.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a decision of release"), "{stderr}");
    assert!(!nowhere.exists() && !nowhere.with_extension("partial").exists());
    // An unknown release: NOT_FOUND.
    let out = attestation(&server, cwd, "release-never", &[]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release"), "{out:?}");
}

#[test]
fn modules_declared_with_a_digest_are_the_subjects_and_a_bad_digest_is_refused_before_sending() {
    let (dir, data, server, _) = demo_server();
    let cwd = dir.path();
    let admin = data.join("keys/admin.pem");
    let admin = admin.to_str().unwrap();
    let intent = |module: &str| {
        cli(
            &server,
            cwd,
            &[
                "intent",
                "--tenant",
                TENANT,
                "--key",
                admin,
                "--agent",
                "release-bot",
                "--release",
                "release-digest",
                "--environment",
                "production",
                "--module",
                module,
                "--module",
                "web@2.0.0",
            ],
        )
    };
    // Upper-case hex, a short digest, an unknown algorithm: refused, nothing sent.
    for bad in [
        format!("api@1.0.0=sha256:{}", SHA.to_uppercase()),
        "api@1.0.0=sha256:9f86".into(),
        format!("api@1.0.0=md5:{}", &SHA[..32]),
    ] {
        let out = intent(&bad);
        assert!(!out.status.success(), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("digest"), "{out:?}");
    }
    // Nothing was stored: the release does not exist.
    let out = cli(&server, cwd, &["summary", "--tenant", TENANT, "--release", "release-digest"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no release"), "{out:?}");

    ok(intent(&format!("api@1.0.0=sha256:{SHA}")));
    // The intent is evaluated asynchronously: wait for its first decision.
    let started = Instant::now();
    let bundle = loop {
        let out = attestation(&server, cwd, "release-digest", &[]);
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no decision: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let path = cwd.join("digest.intoto.jsonl");
    std::fs::write(&path, &bundle).unwrap();
    let statement = &statements(&path)[0];
    assert_eq!(statement["subject"], serde_json::json!([{"name": "api@1.0.0", "digest": {"sha256": SHA}}]));
    let decision = &statement["predicate"]["https://release-ledger.dev/attestation/decision/v1"];
    assert_eq!(decision["modulesWithoutDigest"], serde_json::json!(["web@2.0.0"]));
    run_script(
        &server,
        "check_attestation.py",
        &["--bundle", path.to_str().unwrap(), "--ledger-pub", data.join("keys/ledger.pub").to_str().unwrap()],
    );
}
