//! `release-ledger backup` and `restore` against a real server: a backup taken while appends
//! go on holds every event acknowledged before it started, verifies with `ledger-audit`, and a
//! restored data dir serves it; what is refused writes nothing.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proto::v1 as pb;

use crate::{body, cli, json, ok, register, temp_data_dir, tests_passed, tests_passed_notes, wire, Server};

const TENANT: &str = "acme";

/// Every acknowledged append: seq → entry hash.
type Receipts = Arc<std::sync::Mutex<BTreeMap<u64, Vec<u8>>>>;

async fn entry_hash(client: &mut pb::ledger_client::LedgerClient<crate::Authed>, seq: u64) -> Option<Vec<u8>> {
    let request = pb::GetEntryRequest { tenant: TENANT.into(), key: Some(pb::get_entry_request::Key::Seq(seq)) };
    client.get_entry(request).await.ok().map(|e| e.into_inner().entry_hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_appends_go_on_verifies_restores_and_serves_every_acknowledged_event() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    // A backup answers UNAVAILABLE until the governance worker has loaded its store.
    server.wait_for_projections().await;
    let mut client = server.client().await;
    let agent = register(&mut client, &server.admin(), TENANT, "qa-bot", &["TestsPassed"]).await;
    let receipts: Receipts = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Two appenders, recording every receipt, until the backup is done.
    let mut appenders = Vec::new();
    for worker in 0..2u64 {
        let (mut client, agent, receipts, stop) =
            (server.client().await, agent.clone(), receipts.clone(), stop.clone());
        appenders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("tp-{worker}-{n}");
                let event = wire(body(TENANT, "ci", "TestsPassed", &id, "qa-bot", tests_passed(n)), &agent);
                let receipt = client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
                let receipt = receipt.into_inner().receipt.unwrap();
                receipts.lock().unwrap().insert(receipt.seq, receipt.entry_hash);
                n += 1;
            }
        }));
    }
    while receipts.lock().unwrap().len() < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before: BTreeMap<u64, Vec<u8>> = receipts.lock().unwrap().clone();
    let backup_dir = dir.path().join("backup");
    let output = {
        let (server_url, token, cwd, to) =
            (server.url(), server.token.clone(), dir.path().to_owned(), backup_dir.clone());
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::binary())
                .current_dir(cwd)
                .env("RELEASE_LEDGER_SERVER", server_url)
                .env("RELEASE_LEDGER_TOKEN", token)
                .args(["backup", "--json", "--to", to.to_str().unwrap()])
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let during = receipts.lock().unwrap().len();
    stop.store(true, Ordering::SeqCst);
    for appender in appenders {
        appender.await.unwrap();
    }
    let report = json(&ok(output));
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["projections"], true, "{report}");
    let backed_up = report["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == TENANT).unwrap()["entries"]
        .as_u64()
        .unwrap();
    // Everything acknowledged before the backup started is in it (the registration is seq 0).
    assert!(backed_up > *before.keys().last().unwrap(), "{backed_up} entries, {} acknowledged before", before.len());
    assert!(during > before.len(), "appends went on during the backup ({during} vs {})", before.len());
    // Counted for alerting: one backup streamed, and when.
    let scraped = crate::metrics::scrape(server.metrics);
    assert!(scraped.contains("ledger_backups_total{outcome=\"streamed\"} 1"), "{scraped}");
    let last: i64 = scraped
        .lines()
        .find_map(|l| l.strip_prefix("ledger_backup_last_streamed_timestamp_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(last > 1_700_000_000, "{last}");
    // The staged copy is gone from the server's data dir.
    let staging = data.join("backup-staging");
    assert!(!staging.exists() || std::fs::read_dir(&staging).unwrap().next().is_none(), "staged copy left behind");
    // Secret at rest: the directory and the private keys are the owner's only.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&backup_dir), 0o700);
    assert_eq!(mode(&backup_dir.join("keys/admin.pem")), 0o600);
    assert_eq!(mode(&backup_dir.join("keys/ledger.pem")), 0o600);
    assert!(!dir.path().join("backup.partial").exists());

    // The independent check: ledger-audit on the backup, read-only.
    let audit = std::process::Command::new(crate::readme::audit_binary())
        .args(["verify", "--json", backup_dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));

    // Restore into a new data dir and serve it.
    let restored = dir.path().join("restored");
    let output = ok(cli(&server, dir.path(), &["restore", "--json", "--from", "backup", "--data-dir", "restored"]));
    assert_eq!(json(&output)["files"], report["files"], "{output}");
    assert!(!restored.join(ledger::backup::MANIFEST_FILE).exists());
    // It says where it came from, and the restored server warns about it.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(restored.join(ledger::backup::RESTORED_FILE)).unwrap()).unwrap();
    assert_eq!(record["backupCreatedAt"], report["createdAt"], "{record}");
    let original = server;
    let copy = Server::start(&restored, &[]);
    assert!(copy.log().contains("this data dir was restored from a backup"), "{}", copy.log());
    let mut restored_client = copy.client().await;
    for (seq, hash) in &before {
        assert_eq!(entry_hash(&mut restored_client, *seq).await.as_ref(), Some(hash), "seq {seq} lost or changed");
    }
    // The restored log is a prefix of the original, entry for entry.
    let mut original_client = original.client().await;
    for seq in 0..backed_up {
        let (a, b) = (entry_hash(&mut original_client, seq).await, entry_hash(&mut restored_client, seq).await);
        assert!(a.is_some() && a == b, "seq {seq} differs between the original and the restored log");
    }
    assert_eq!(entry_hash(&mut restored_client, backed_up).await, None, "the restored log is longer than the backup");
    // It accepts appends at the next seq, and its governance loads (the projections came along).
    let event = wire(body(TENANT, "ci", "TestsPassed", "after-restore", "qa-bot", tests_passed(1)), &agent);
    let receipt = restored_client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    assert_eq!(receipt.into_inner().receipt.unwrap().seq, backed_up);
    let mut query = pb::query_client::QueryClient::new(copy.channel().await);
    let status = query.get_governance_status(pb::GetGovernanceStatusRequest {}).await.unwrap().into_inner();
    assert!(!status.tenants.is_empty(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_and_restores_that_cannot_be_trusted_are_refused_and_write_nothing() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    // The backup that must succeed below answers UNAVAILABLE until the worker has loaded.
    server.wait_for_projections().await;
    let mut client = server.client().await;
    let agent = register(&mut client, &server.admin(), TENANT, "qa-bot", &["TestsPassed"]).await;
    for n in 0..20 {
        let event = wire(body(TENANT, "ci", "TestsPassed", &format!("tp-{n}"), "qa-bot", tests_passed(n)), &agent);
        client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }

    // A tenant's token is not an operator's: refused, nothing written.
    let tenant_token = crate::mint(&agent, "qa-bot", Some(TENANT), &origin(&server).await);
    let output = std::process::Command::new(crate::binary())
        .current_dir(dir.path())
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env("RELEASE_LEDGER_TOKEN", tenant_token)
        .args(["backup", "--to", "by-tenant"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("PERMISSION_DENIED"), "{output:?}");
    assert!(!dir.path().join("by-tenant").exists() && !dir.path().join("by-tenant.partial").exists());

    // Never over anything.
    std::fs::create_dir(dir.path().join("full")).unwrap();
    std::fs::write(dir.path().join("full/mine"), b"keep").unwrap();
    let output = cli(&server, dir.path(), &["backup", "--to", "full"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(std::fs::read_dir(dir.path().join("full")).unwrap().count(), 1);

    // --admin-key signs in as the operator without a token.
    let admin = data.join("keys/admin.pem");
    let output = std::process::Command::new(crate::binary())
        .current_dir(dir.path())
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env_remove("RELEASE_LEDGER_TOKEN")
        .args(["backup", "--json", "--to", "good", "--admin-key", admin.to_str().unwrap()])
        .output()
        .unwrap();
    let report = json(&ok(output));
    assert_eq!(report["tenants"][0]["entries"], 21, "{report}");
    let good = dir.path().join("good");

    // A restore never writes over a data dir.
    let output = cli(&server, dir.path(), &["restore", "--from", "good", "--data-dir", "full"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(std::fs::read_dir(dir.path().join("full")).unwrap().count(), 1);

    // One byte of an SST changed: the manifest's hash catches it; nothing restored.
    let manifest = ledger::backup::read_manifest(&good).unwrap();
    let sst = manifest.files.iter().find(|f| f.path.starts_with("db/") && f.path.ends_with(".sst")).unwrap().clone();
    let tampered = dir.path().join("tampered");
    copy_dir(&good, &tampered);
    let mut bytes = std::fs::read(tampered.join(&sst.path)).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x20;
    std::fs::write(tampered.join(&sst.path), &bytes).unwrap();
    let output = cli(&server, dir.path(), &["restore", "--from", "tampered", "--data-dir", "from-tampered"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&sst.path) && stderr.contains("does not hash"), "{stderr}");
    assert!(!dir.path().join("from-tampered").exists() && !dir.path().join("from-tampered.partial").exists());

    // The same change with the manifest rewritten to match: the audit's checks catch it.
    let mut forged = manifest.clone();
    let (size, hash) = ledger::backup::hash_file(&tampered.join(&sst.path)).unwrap();
    let file = forged.files.iter_mut().find(|f| f.path == sst.path).unwrap();
    (file.size, file.blake3) = (size, hash);
    std::fs::write(tampered.join(ledger::backup::MANIFEST_FILE), forged.to_bytes()).unwrap();
    let output = cli(&server, dir.path(), &["restore", "--from", "tampered", "--data-dir", "from-tampered"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not verify"), "{output:?}");
    assert!(!dir.path().join("from-tampered").exists() && !dir.path().join("from-tampered.partial").exists());

    // A file the manifest does not list (something put into the backup) is refused too.
    std::fs::write(good.join("keys/extra.pem"), b"x").unwrap();
    let output = cli(&server, dir.path(), &["restore", "--from", "good", "--data-dir", "from-extra"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("keys/extra.pem is not in the manifest"), "{output:?}");
    assert!(!dir.path().join("from-extra").exists());
}

async fn origin(server: &Server) -> String {
    let mut client = server.client().await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner().origin_prefix
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A backup the server cannot take yet (another is running; or, just after a start, the
/// governance worker has not loaded its store) answers `UNAVAILABLE`, and `release-ledger backup`
/// retries it like its other commands: with another backup's stream held open, the command is
/// refused, says it retries, and once that stream is dropped it writes and verifies the backup.
///
/// The held stream keeps the server's one backup slot only while the server cannot finish
/// sending it. Its client reads nothing and opens HTTP/2 windows of 64 KiB, so the server's
/// sender stops once those bytes, the chunk in HTTP/2's queue and its own two queued chunks are
/// out (each file is at least one chunk); the store is made larger than all of that by far
/// (about 20 MiB of events), and the test checks that a second backup is refused before the
/// command runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_refused_while_another_runs_is_retried_and_written() {
    use std::io::BufRead as _;

    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    server.wait_for_projections().await;
    let mut client = server.client().await;
    let agent = register(&mut client, &server.admin(), TENANT, "qa-bot", &["TestsPassed"]).await;
    // 320 events of 60 KiB of notes (random hex, which RocksDB's compression barely shrinks).
    let mut rng = testkit::gov::Rng::new(7);
    for n in 0..320u64 {
        let notes: String = (0..60 * 1024 / 16).map(|_| format!("{:016x}", rng.next_u64())).collect();
        let event =
            wire(body(TENANT, "ci", "TestsPassed", &format!("big-{n}"), "qa-bot", tests_passed_notes(&notes)), &agent);
        client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }

    // A client that reads nothing, with the smallest HTTP/2 windows: the server's sender
    // blocks once 64 KiB are on the wire and its queue is full.
    let channel = tonic::transport::Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut holder = pb::admin_client::AdminClient::new(tonic::service::interceptor::InterceptedService::new(
        channel,
        crate::Bearer::new(&server.token),
    ));
    let held = holder.backup(pb::BackupRequest {}).await.unwrap();
    let mut admin = pb::admin_client::AdminClient::new(server.channel().await);
    let refused = admin.backup(pb::BackupRequest {}).await.expect_err("the slot is held");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("another backup is being taken"), "{refused:?}");

    let to = dir.path().join("retried");
    let mut child = std::process::Command::new(crate::binary())
        .current_dir(dir.path())
        .env("RELEASE_LEDGER_SERVER", server.url())
        .env("RELEASE_LEDGER_TOKEN", server.token.clone())
        .env("RELEASE_LEDGER_RETRIES", "10")
        .args(["backup", "--json", "--to", to.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // The command's first line on stderr: its first refusal, as it reports it.
    // (None: the command ended without a word on stderr.)
    let (first, mut lines) = tokio::task::spawn_blocking(move || (lines.next(), lines)).await.unwrap();
    let first = first.map(Result::unwrap).unwrap_or_default();
    drop(held);
    let rest =
        tokio::task::spawn_blocking(move || lines.by_ref().map(Result::unwrap).collect::<Vec<_>>()).await.unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        first.contains("backup: attempt 1 failed") && first.contains("another backup is being taken"),
        "stderr: {first:?}; stdout: {stdout}"
    );
    assert!(output.status.success(), "{first}\n{}", rest.join("\n"));
    let report = json(&stdout);
    assert_eq!(report["verified"], true, "{report}");
    let backed_up = report["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == TENANT).unwrap()["entries"]
        .as_u64()
        .unwrap();
    assert!(backed_up >= 321, "{report}");
    assert!(to.join(ledger::backup::MANIFEST_FILE).exists());
    assert!(!dir.path().join("retried.partial").exists());
}
