//! The transparency-log standards, checked by an independent implementation: Go's reference
//! `golang.org/x/mod/sumdb/{note,tlog}` (Debian's golang-golang-x-mod-dev, built offline by
//! `testkit::go_tlogcheck`) verifies the server's checkpoints, every inclusion and consistency
//! proof it hands out, and the C2SP tlog-proof files `prove --out` writes; `ledger-audit proof`
//! agrees, and both refuse a tampered proof.

use std::path::Path;
use std::process::{Command, Output};

use crate::{binary, body, cli, json, ok, register, temp_data_dir, tests_passed, wire, Server};
use proto::v1 as pb;

const TENANT: &str = "standards";

/// Runs Go's checker with `stdin`; its output.
fn go(args: &[&str], stdin: &str) -> Output {
    testkit::run_go_tlogcheck(args, stdin)
}

fn b64(bytes: &[u8]) -> String {
    ledger::b64::encode(bytes)
}

fn lines(path: &[Vec<u8>]) -> String {
    path.iter().map(|node| format!("{}\n", b64(node))).collect()
}

fn audit(args: &[&str]) -> Output {
    let audit = Path::new(binary()).with_file_name("ledger-audit");
    assert!(audit.exists(), "{} is missing (cargo build --release --workspace)", audit.display());
    Command::new(audit).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn go_sumdb_verifies_checkpoints_proofs_and_tlog_proof_files() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &["--origin-prefix", "ledger.example.com"]);
    let mut client = server.client().await;
    let key = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    for n in 0..23u64 {
        let event = wire(body(TENANT, "release/r1", "TestsPassed", &format!("tp-{n}"), "qa", tests_passed(n)), &key);
        client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }

    // The checkpoint, as `checkpoint --json` gives it with its vkey: Go's note.Open accepts it.
    let checkpoint = json(&ok(cli(&server, dir.path(), &["checkpoint", "--json", "--tenant", TENANT])));
    let (note, vkey) = (checkpoint["note"].as_str().unwrap(), checkpoint["vkey"].as_str().unwrap());
    assert!(note.starts_with(&format!("ledger.example.com/{TENANT}\n24\n")), "{note}");
    let opened = go(&["note", vkey], note);
    assert!(opened.status.success(), "{}", String::from_utf8_lossy(&opened.stderr));
    assert_eq!(String::from_utf8_lossy(&opened.stdout), note.split("\n\n").next().unwrap().to_owned() + "\n");
    let forged = note.replacen("\n24\n", "\n25\n", 1);
    assert!(!go(&["note", vkey], &forged).status.success(), "Go accepts an altered checkpoint");

    // Every inclusion proof of the 24 entries at several tree sizes, and consistency proofs
    // between them, pass tlog.CheckRecord and tlog.CheckTree.
    let roots = client.clone();
    let root_at = |size: u64| {
        let mut client = roots.clone();
        async move {
            let c = client
                .get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(c.size, size);
            c.root_hash
        }
    };
    for tree_size in [1u64, 2, 7, 16, 17, 24] {
        let root = root_at(tree_size).await;
        for seq in 0..tree_size {
            let proof = client
                .get_inclusion_proof(pb::GetInclusionProofRequest { tenant: TENANT.into(), seq, tree_size })
                .await
                .unwrap()
                .into_inner();
            let args = [seq.to_string(), tree_size.to_string(), b64(&root), b64(&proof.entry_hash)];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let checked = go(&[&["inclusion"], &args[..]].concat(), &lines(&proof.path));
            assert!(checked.status.success(), "seq {seq} in {tree_size}: {}", String::from_utf8_lossy(&checked.stderr));
            if seq == 0 && tree_size > 1 {
                // The same proof for the wrong record fails there too.
                let mut other = args.clone();
                let wrong = b64(&[0u8; 32]);
                other[3] = &wrong;
                assert!(!go(&[&["inclusion"], &other[..]].concat(), &lines(&proof.path)).status.success());
            }
        }
        for old_size in 1..tree_size {
            let proof = client
                .get_consistency_proof(pb::GetConsistencyProofRequest {
                    tenant: TENANT.into(),
                    old_size,
                    new_size: tree_size,
                })
                .await
                .unwrap()
                .into_inner();
            let old_root = root_at(old_size).await;
            let args = [old_size.to_string(), b64(&old_root), tree_size.to_string(), b64(&root)];
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let checked = go(&[&["consistency"], &args[..]].concat(), &lines(&proof.path));
            assert!(
                checked.status.success(),
                "{old_size} -> {tree_size}: {}",
                String::from_utf8_lossy(&checked.stderr)
            );
        }
    }

    // A tlog-proof file, by event id: Go checks it with note.Open + tlog.CheckRecord, and
    // ledger-audit agrees.
    let file = dir.path().join("tp-5.tlog-proof");
    let out = ok(cli(
        &server,
        dir.path(),
        &["prove", "--json", "--tenant", TENANT, "--event-id", "tp-5", "--out", file.to_str().unwrap()],
    ));
    let proved = json(&out);
    assert_eq!(proved["seq"], 6, "tp-5 is seq 6 (after the key registration and tp-0..4)");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 6\n"), "{text}");
    let entry_hash = hex::decode(proved["entryHash"].as_str().unwrap()).unwrap();
    let checked = go(&["proof-file", vkey, &b64(&entry_hash)], &text);
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    assert_eq!(String::from_utf8_lossy(&checked.stdout).trim(), format!("ledger.example.com/{TENANT} 24 6"));

    let key_file = dir.path().join("ledger.pub");
    std::fs::copy(data.join("keys/ledger.pub"), &key_file).unwrap();
    let audited = audit(&["proof", file.to_str().unwrap(), "--ledger-key", key_file.to_str().unwrap(), "--json"]);
    assert_eq!(audited.status.code(), Some(0), "{audited:?}");
    let outcome: serde_json::Value = serde_json::from_slice(&audited.stdout).unwrap();
    assert_eq!(outcome["seq"], 6);
    assert_eq!(outcome["entryHash"], proved["entryHash"]);
    assert_eq!(outcome["treeSize"], 24);

    // A proof line changed: Go and ledger-audit both refuse it (exit 1: a verdict).
    let proof_lines: Vec<&str> = text.split("\n\n").next().unwrap().lines().skip(3).collect();
    let tampered = text.replacen(proof_lines[0], &b64(&[7u8; 32]), 1);
    assert_ne!(tampered, text);
    assert!(!go(&["proof-file", vkey, &b64(&entry_hash)], &tampered).status.success(), "Go accepts a tampered proof");
    let tampered_file = dir.path().join("tampered.tlog-proof");
    std::fs::write(&tampered_file, &tampered).unwrap();
    let audited = audit(&["proof", tampered_file.to_str().unwrap(), "--ledger-key", key_file.to_str().unwrap()]);
    assert_eq!(audited.status.code(), Some(1), "{audited:?}");
    assert!(String::from_utf8_lossy(&audited.stdout).starts_with("NOT VERIFIED"), "{audited:?}");
    // Another ledger's key: not a verdict about this proof (exit 2).
    let other = dir.path().join("other.pub");
    std::fs::write(&other, ledger::KeyPair::from_seed(&[9; 32]).public_key_pem().unwrap()).unwrap();
    let audited = audit(&["proof", file.to_str().unwrap(), "--ledger-key", other.to_str().unwrap()]);
    assert_eq!(audited.status.code(), Some(2), "{audited:?}");
}

/// `release-ledger migrate` on the committed v1 fixture through the CLI: the refused server
/// names it, it migrates, a second run has nothing to do, and the server starts on the result.
#[test]
fn migrate_through_the_cli() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/format-v1/data");
    let (_dir, data) = temp_data_dir();
    testkit::gov::copy_dir(&fixture, &data);
    let refused = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("release-ledger migrate"), "{refused:?}");

    let migrate = |extra: &[&str]| {
        let output =
            Command::new(binary()).args(["migrate", "--json", "--data-dir"]).arg(&data).args(extra).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let report = migrate(&["--origin-prefix", "ledger.example.com"]);
    assert_eq!((report["migrated"].as_bool(), report["to"].as_u64()), (Some(true), Some(2)), "{report}");
    assert_eq!(report["originPrefix"], "ledger.example.com");
    assert_eq!(report["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(migrate(&[])["migrated"], false);

    let server = Server::start(&data, &[]);
    let checkpoint = json(&ok(cli(&server, data.parent().unwrap(), &["checkpoint", "--json", "--tenant", "acme"])));
    assert!(checkpoint["note"].as_str().unwrap().starts_with("ledger.example.com/acme\n13\n"), "{checkpoint}");
    let opened = go(&["note", checkpoint["vkey"].as_str().unwrap()], checkpoint["note"].as_str().unwrap());
    assert!(opened.status.success(), "{}", String::from_utf8_lossy(&opened.stderr));
}
