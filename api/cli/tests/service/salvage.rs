//! `release-ledger salvage`: a data dir that refuses to open is salvaged through the CLI, the
//! loss is printed and recorded, and the server starts on it again.

use crate::{binary, body, register, temp_data_dir, tests_passed, wire, Server};
use proto::v1 as pb;

const TENANT: &str = "salvage";

#[tokio::test(flavor = "multi_thread")]
async fn salvage_through_the_cli_reports_the_loss_and_the_server_starts_again() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let key = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    let event = |n: u64| wire(body(TENANT, "s", "TestsPassed", &format!("e-{n}"), "qa", tests_passed(n)), &key);
    client.append(pb::AppendRequest { event: Some(event(0)) }).await.unwrap();
    assert_eq!(server.terminate().code(), Some(0));
    let old = tempfile::tempdir().unwrap();
    testkit::gov::copy_dir(&data.join("db"), old.path());

    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    for n in 1..3 {
        client.append(pb::AppendRequest { event: Some(event(n)) }).await.unwrap();
    }
    assert_eq!(server.terminate().code(), Some(0));
    // Started once more, so that the anchor holds no group to replay (open syncs RocksDB and
    // rewrites it as a snapshot of heads): the old db/ is then older than anything it can replay.
    assert_eq!(Server::start(&data, &[]).terminate().code(), Some(0));
    std::fs::remove_dir_all(data.join("db")).unwrap();
    testkit::gov::copy_dir(old.path(), &data.join("db"));

    // The server refuses, and says how to recover (exit 2: a data dir that cannot be opened).
    let refused = std::process::Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the store holds 2 entries but 4 were acknowledged"), "{stderr}");
    assert!(stderr.contains("release-ledger salvage --data-dir"), "{stderr}");

    let salvaged =
        std::process::Command::new(binary()).args(["salvage", "--json", "--data-dir"]).arg(&data).output().unwrap();
    assert_eq!(salvaged.status.code(), Some(0), "{salvaged:?}");
    let report: serde_json::Value = serde_json::from_slice(&salvaged.stdout).unwrap();
    assert_eq!(report["tenants"][0]["tenant"], TENANT);
    assert_eq!(report["tenants"][0]["kept"], 2);
    assert_eq!(report["tenants"][0]["acknowledged"], 4);
    assert_eq!(report["tenants"][0]["lost"], "entries 2..4 (2 acknowledged entries)");

    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let receipt =
        client.append(pb::AppendRequest { event: Some(event(9)) }).await.unwrap().into_inner().receipt.unwrap();
    assert_eq!(receipt.seq, 2, "the seq after the salvaged head, handed out again as the record says");
}
