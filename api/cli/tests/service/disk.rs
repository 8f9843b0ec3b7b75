//! A full disk, for real: the server's data dir on a small tmpfs, filled by another file.
//!
//! Mounting a tmpfs needs root (CI runs as root); the test says so when it cannot mount.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use proto::v1 as pb;
use tonic::Code;

use crate::{binary, body, register, tests_passed, tests_passed_notes, wire, Server};

const TENANT: &str = "disk";

/// A tmpfs of `mib` MiB mounted on a fresh temp dir, unmounted on drop.
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub(crate) fn mount(mib: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "mounting a tmpfs failed (this test needs root, as CI has): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Self { dir }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn free(&self) -> u64 {
        let output = Command::new("df").args(["--output=avail", "-B1"]).arg(self.path()).output().unwrap();
        String::from_utf8_lossy(&output.stdout).lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Writes a filler file until the filesystem has at most `leave` bytes free.
    pub(crate) fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join("filler");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        let chunk = vec![0x5au8; 64 << 10];
        while self.free() > leave {
            let want = (self.free() - leave).min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..want.max(1)]).is_err() {
                break;
            }
            file.flush().unwrap();
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

type Client = proto::v1::ledger_client::LedgerClient<crate::Authed>;

async fn append(client: &mut Client, key: &ledger::KeyPair, n: u64) -> Result<pb::Receipt, tonic::Status> {
    append_data(client, key, n, tests_passed(n)).await
}

/// Appends event `disk-{n}`, a `TestsPassed` carrying `data`.
async fn append_data(
    client: &mut Client,
    key: &ledger::KeyPair,
    n: u64,
    data: serde_json::Value,
) -> Result<pb::Receipt, tonic::Status> {
    let event = wire(body(TENANT, "s", "TestsPassed", &format!("disk-{n}"), "qa", data), key);
    client.append(pb::AppendRequest { event: Some(event) }).await.map(|r| r.into_inner().receipt.unwrap())
}

async fn entry_hash(client: &mut Client, seq: u64) -> Vec<u8> {
    let request = pb::GetEntryRequest { tenant: TENANT.into(), key: Some(pb::get_entry_request::Key::Seq(seq)) };
    client.get_entry(request).await.unwrap().into_inner().entry_hash
}

/// Below the reserve, appends are `RESOURCE_EXHAUSTED` with a message that says why, reads go
/// on, nothing is stored; once space is freed appends continue with the next seq.
#[tokio::test(flavor = "multi_thread")]
async fn below_the_reserve_appends_are_refused_and_reads_go_on() {
    // Each RocksDB store preallocates about 70 MiB of WAL: 320 MiB leaves room for both.
    let disk = Tmpfs::mount(320);
    let data = disk.path().join("data");
    let server = Server::start(&data, &["--min-free-bytes", &(64u64 << 20).to_string()]);
    let mut client = server.client().await;
    let key = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(append(&mut client, &key, n).await.unwrap());
    }
    let filler = disk.fill(48 << 20);
    let refused = append(&mut client, &key, 100).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("below the 67108864-byte reserve"), "{}", refused.message());
    assert_eq!(entry_hash(&mut client, acked[4].seq).await, acked[4].entry_hash);
    let checkpoint = client.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await.unwrap();
    assert_eq!(checkpoint.into_inner().size, acked[4].seq + 1, "the refused append stored nothing");

    std::fs::remove_file(filler).unwrap();
    assert_eq!(append(&mut client, &key, 101).await.unwrap().seq, acked[4].seq + 1);
}

/// With no reserve the disk really fills: appends fail with a precise code (never a crash),
/// the server stays up and serves reads while its projection worker backs off, a restart on
/// the still-full disk fails with an error exit (not an abort), and after space is freed a
/// restart recovers with every acknowledged entry.
#[tokio::test(flavor = "multi_thread")]
async fn a_really_full_disk_is_an_error_not_a_crash() {
    let disk = Tmpfs::mount(320);
    let data = disk.path().join("data");
    let server = Server::start(&data, &["--min-free-bytes", "0"]);
    let mut client = server.client().await;
    let key = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(append(&mut client, &key, n).await.unwrap());
    }
    let filler = disk.fill(0);
    // Appends until one fails. The space RocksDB preallocated for its WAL (about 70 MiB) and
    // the anchor's zero-filled file take appends on after the disk is full, and rightly: what
    // they hold is durable. Big events reach the end of that space within a few thousand
    // appends; then RocksDB meets ENOSPC (its WAL, or the flush of its memtable).
    let notes = "x".repeat(48 << 10);
    let mut failure = None;
    for n in 5..4000 {
        match append_data(&mut client, &key, n, tests_passed_notes(&notes)).await {
            Ok(receipt) => acked.push(receipt),
            Err(status) => {
                failure = Some(status);
                break;
            }
        }
    }
    let failure = failure.expect("appends to a full disk kept succeeding");
    assert!(matches!(failure.code(), Code::Unavailable | Code::ResourceExhausted | Code::Internal), "{failure:?}");
    // The server is alive a few seconds later (the projection worker meets ENOSPC too, and
    // backs off), and still serves what was acknowledged.
    let until = Instant::now() + Duration::from_secs(3);
    let mut server = server;
    while Instant::now() < until {
        assert!(server.child.try_wait().unwrap().is_none(), "the server died on a full disk");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let last = acked.last().unwrap();
    assert_eq!(entry_hash(&mut client, last.seq).await, last.entry_hash);
    let status = server.terminate();
    assert!(status.code().is_some(), "stopping on a full disk ended by a signal: {status:?}");

    // Restarting while the disk is still full: either it starts (and is stopped here) or it
    // exits with an error; never an abort.
    let mut restart = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--min-free-bytes", "0"])
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    let exited = loop {
        if let Some(status) = restart.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > until {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    match exited {
        Some(status) => assert!(status.code().is_some(), "restart on a full disk ended by a signal: {status:?}"),
        None => {
            let _ = Command::new("kill").args(["-TERM", &restart.id().to_string()]).status();
            let status = restart.wait().unwrap();
            assert!(status.code().is_some(), "stopping the restarted server ended by a signal: {status:?}");
        }
    }

    std::fs::remove_file(filler).unwrap();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    for receipt in &acked {
        assert_eq!(entry_hash(&mut client, receipt.seq).await, receipt.entry_hash, "seq {}", receipt.seq);
    }
    let next = append(&mut client, &key, 5000).await.unwrap();
    assert!(next.seq > last.seq);
}
