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
        // Besides the key registration and what was acknowledged, the log holds only what was in
        // flight at a kill: at most one batch (up to 3 events) per appender thread (8) per round,
        // each an event the child sent, none stored twice.
        let unacknowledged = size - 1 - acknowledged.len() as u64;
        assert!(
            unacknowledged <= 8 * 3 * (round as u64 + 1),
            "round {round}: {unacknowledged} entries nobody was told about: more than was in flight"
        );
        let mut ids = std::collections::HashSet::new();
        for entry in ledger.entries(TENANT, 1, size).unwrap() {
            let entry = entry.unwrap();
            let id = ledger::ParsedEvent::parse(&entry.envelope().unwrap().payload).unwrap().header.event_id;
            assert!(id.starts_with("round"), "seq {} is {id:?}, which the child never sent", entry.seq);
            assert!(ids.insert(id.clone()), "{id} stored twice");
        }
    }
}

/// A moment of one round's sync log: the receipts acknowledged up to an `S` line, and the
/// durable lengths that line recorded (see `crash-appender`).
struct Synced {
    receipts: Vec<(u64, String)>,
    anchor_len: u64,
    wal: String,
}

/// The WAL file and length synced when the child's ledger opened (its `O` line), and every
/// `S` moment of a sync log, oldest first (complete lines only).
fn read_sync_log(path: &std::path::Path) -> ((String, u64), Vec<Synced>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    let mut opened = (String::new(), 0);
    let mut receipts = Vec::new();
    let mut moments = Vec::new();
    for line in complete.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["O", wal, wal_len] => opened = ((*wal).to_owned(), wal_len.parse().unwrap()),
            ["R", seq, hash] => receipts.push((seq.parse().unwrap(), (*hash).to_owned())),
            ["S", anchor_len, wal, _wal_len] => moments.push(Synced {
                receipts: receipts.clone(),
                anchor_len: anchor_len.parse().unwrap(),
                wal: (*wal).to_owned(),
            }),
            other => panic!("bad sync log line {other:?}"),
        }
    }
    (opened, moments)
}

/// Cuts `path` back to `keep` bytes, dropping the rest (`zero == false`: the size never
/// reached the disk) or zero-filling it (`zero == true`: the size did, the data did not).
fn lose_tail(path: &std::path::Path, keep: u64, zero: bool) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let len = file.metadata().unwrap().len();
    if zero {
        use std::os::unix::fs::FileExt as _;
        file.write_all_at(&vec![0u8; (len - keep) as usize], keep).unwrap();
    } else {
        file.set_len(keep).unwrap();
    }
}

/// Power loss, modelled on the real files: the child appends from 8 threads and logs the WAL
/// length synced at open and, with each receipt, the anchor length that was durable then
/// (RocksDB's WAL is written without a sync: the anchor is the log of record). After SIGKILL
/// the test picks one of those moments as the instant the power went: the anchor is cut at a
/// random point past that moment's length, and every WAL at a random point past its open-time
/// length, truncated or zero-filled (a torn WAL tail, whole groups lost from RocksDB, groups
/// written but never anchored, a torn anchor record); only the receipts sent before that
/// moment must survive. The store must then open (replaying from the anchor what RocksDB
/// lost), hold every acknowledged entry unchanged, and verify. Checked by breaking it: without
/// the replay the first round is refused ("entries 86..210 are missing"); without the
/// anchor-checked fallback (`only_unacknowledged_tail` in `ledger::store`: a damaged WAL record
/// is the log's end only when the anchor holds or replays everything after it), the first
/// zero-filled round is refused ("checksum mismatch"). (RocksDB's `AbsoluteConsistency`
/// recovery, which once failed the first truncated round, now passes: that fallback replays
/// what the strict open refused.)
#[test]
fn power_loss_keeps_a_prefix_holding_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent_key = KeyPair::generate();
    let key_path = dir.path().join("agent.pem");
    std::fs::write(&key_path, agent_key.to_pkcs8_pem().unwrap()).unwrap();
    {
        let ledger = Ledger::open(&data, Config::default()).unwrap();
        let admin = KeyPair::load(&data.join("keys/admin.pem")).unwrap();
        let body = testkit::register_key_body(TENANT, "crasher", &agent_key, &[], &[]);
        let _ = ledger.append(ledger::AppendEvent::new(ledger::Envelope::sign(body, &admin))).unwrap();
    }
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    let mut random = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move |bound: u64| {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        if bound == 0 {
            0
        } else {
            random % bound
        }
    };
    for round in 0..6u64 {
        let sync_log = dir.path().join(format!("sync-{round}.txt"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-appender"))
            .args([data.as_os_str(), key_path.as_os_str(), dir.path().join("receipts.txt").as_os_str()])
            .arg(TENANT)
            .arg(format!("power{round}"))
            .env("CRASH_APPENDER_SYNC_LOG", &sync_log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let want = 20 + next(400) as usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        while read_sync_log(&sync_log).1.last().map_or(0, |s| s.receipts.len()) < want {
            assert!(Instant::now() < deadline, "child made no progress");
            assert!(child.try_wait().unwrap().is_none(), "child exited early");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let ((opened_wal, opened_len), mut moments) = read_sync_log(&sync_log);
        // The power went at a moment in the last third of the round.
        let at = moments.len() - 1 - next(moments.len() as u64 / 3) as usize;
        // The model needs the WAL unsynced since open: no anchor roll (which syncs it) before
        // that moment. A round writes far less than the anchor's capacity.
        for pair in moments[..=at].windows(2) {
            assert!(pair[0].anchor_len <= pair[1].anchor_len, "round {round}: the anchor rolled");
        }
        let synced = moments.swap_remove(at);
        assert!(synced.wal >= opened_wal);
        let zero = round % 2 == 1;
        // The anchor: the synced length, plus at most a torn part of the next record.
        let anchor = data.join("anchor");
        let anchor_now = std::fs::metadata(&anchor).unwrap().len();
        let anchor_keep = (synced.anchor_len + next(4096)).min(anchor_now);
        lose_tail(&anchor, anchor_keep, zero);
        // Every WAL: anything past what open synced.
        let mut cuts = Vec::new();
        for entry in std::fs::read_dir(data.join("db")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".log") || name < opened_wal {
                continue;
            }
            let path = data.join("db").join(&name);
            let now = std::fs::metadata(&path).unwrap().len();
            let floor = if name == opened_wal { opened_len } else { 0 };
            let keep = floor + next(now - floor + 1);
            lose_tail(&path, keep, zero);
            cuts.push(format!("{name}: kept {keep} of {now} (synced {floor})"));
        }
        let what = format!(
            "round {round}, power lost after receipt {} (zero-filled {zero}): anchor kept {anchor_keep} of \
             {anchor_now} (synced {}); {cuts:?}",
            synced.receipts.len(),
            synced.anchor_len
        );
        eprintln!("{what}");

        let ledger = Ledger::open(&data, Config::default()).unwrap_or_else(|e| panic!("{what}: refused to open: {e}"));
        for (seq, hash) in synced.receipts {
            acknowledged.insert(seq, hash);
        }
        let size = ledger.head(TENANT).unwrap().size;
        for (seq, hash) in &acknowledged {
            assert!(*seq < size, "{what}: acknowledged seq {seq} is beyond the log end {size}");
            assert_eq!(hex::encode(ledger.entry(TENANT, *seq).unwrap().entry_hash), *hash, "{what}: seq {seq}");
        }
        assert_eq!(ledger.verify_tenant(TENANT).unwrap().entries, size, "{what}");
    }
}
