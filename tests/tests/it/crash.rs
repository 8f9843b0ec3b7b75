//! `kill -9` mid-stream: every acknowledged event survives and the log verifies.

use std::collections::HashMap;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ledger::{Config, KeyPair, Ledger};

const TENANT: &str = "crash-test";

/// Receipts the child printed: `seq event_id entry_hash_hex`, complete lines only.
fn read_receipts(path: &std::path::Path) -> Vec<(u64, String, String)> {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        file.read_to_string(&mut text).unwrap();
    }
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let mut parts = line.split(' ');
            let seq = parts.next().unwrap().parse().unwrap();
            (seq, parts.next().unwrap().to_owned(), parts.next().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn acknowledged_appends_survive_sigkill_at_several_points() {
    let dir = tempfile::tempdir().unwrap();
    // Set up: a tenant with one agent whose key the child uses.
    let agent_key = KeyPair::generate();
    let key_path = dir.path().join("agent.pem");
    std::fs::write(&key_path, agent_key.to_pkcs8_pem().unwrap()).unwrap();
    {
        let ledger = Ledger::open(&dir.path().join("data"), Config::default()).unwrap();
        let admin = KeyPair::load(&dir.path().join("data/keys/admin.pem")).unwrap();
        let body = testkit::register_key_body(TENANT, "crasher", &agent_key, &[], &[]);
        let _ = ledger.append(ledger::AppendEvent::new(ledger::Envelope::sign(body, &admin))).unwrap();
    }

    let mut acknowledged: HashMap<u64, (String, String)> = HashMap::new();
    for (round, kill_after) in [40usize, 300, 900, 1].into_iter().enumerate() {
        let receipts_path = dir.path().join(format!("receipts-{round}.txt"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-appender"))
            .args([dir.path().join("data").as_os_str(), key_path.as_os_str(), receipts_path.as_os_str()])
            .arg(TENANT)
            .arg(format!("round{round}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_receipts(&receipts_path).len() < kill_after {
            assert!(Instant::now() < deadline, "child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(2));
        }
        // SIGKILL: no destructor, no flush, no goodbye.
        child.kill().unwrap();
        child.wait().unwrap();

        let ledger = Ledger::open(&dir.path().join("data"), Config::default()).unwrap();
        for (seq, event_id, entry_hash) in read_receipts(&receipts_path) {
            acknowledged.insert(seq, (event_id, entry_hash));
        }
        let size = ledger.head(TENANT).unwrap().size;
        for (seq, (event_id, entry_hash)) in &acknowledged {
            assert!(*seq < size, "round {round}: acknowledged seq {seq} is beyond the log end {size}");
            let entry = ledger.entry(TENANT, *seq).unwrap();
            assert_eq!(hex::encode(entry.entry_hash), *entry_hash, "round {round}: seq {seq} changed");
            let by_id = ledger.entry_by_event_id(TENANT, event_id).unwrap().unwrap();
            assert_eq!(by_id.seq, *seq);
        }
        // Nothing beyond the end, and the whole log verifies against its signed checkpoint.
        assert_eq!(ledger.entries(TENANT, 0, u64::MAX).unwrap().count() as u64, size);
        let report = ledger.verify_tenant(TENANT).unwrap();
        assert_eq!(report.entries, size);
        assert!(size as usize > acknowledged.len(), "round {round}: the log lost entries");
    }
}
