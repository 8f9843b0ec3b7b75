//! Test helper for the crash test: appends forever from several threads and writes a line per
//! acknowledged receipt (`seq event_id entry_hash`) to a file, until it is killed.
//!
//! Usage: `crash-appender DATA_DIR AGENT_KEY_PEM RECEIPTS_FILE TENANT RUN_ID`
//!
//! With `CRASH_APPENDER_SYNC_LOG=FILE`, it first writes `O wal_file wal_len` once the ledger is
//! open (open leaves every WAL byte synced; appends then write RocksDB's WAL without a sync),
//! then, after each acknowledged request and under the same lock, `R seq entry_hash` per
//! receipt and `S anchor_len wal_file wal_len`: the anchor's length was durable when the
//! receipt came. The power-loss test cuts the anchor back to such a length, and the WAL to
//! anywhere past its open-time length, to model a machine that lost its page cache.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use ledger::{AppendEvent, Config, Envelope, KeyPair, Ledger};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, data_dir, key_path, receipts_path, tenant, run_id] = args.as_slice() else {
        eprintln!("usage: crash-appender DATA_DIR AGENT_KEY_PEM RECEIPTS_FILE TENANT RUN_ID");
        std::process::exit(2);
    };
    let ledger = Arc::new(Ledger::open(data_dir.as_ref(), Config::default()).expect("open ledger"));
    let key = KeyPair::load(key_path.as_ref()).expect("agent key");
    let receipts = Arc::new(Mutex::new(
        std::fs::OpenOptions::new().create(true).append(true).open(receipts_path).expect("receipts file"),
    ));
    let sync_log = std::env::var_os("CRASH_APPENDER_SYNC_LOG")
        .map(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).expect("sync log"));
    let data_dir = std::path::PathBuf::from(data_dir);
    let sync_log = sync_log.map(|mut log| {
        let (wal, wal_len) = newest_wal(&data_dir.join("db"));
        log.write_all(format!("O {wal} {wal_len}\n").as_bytes()).expect("write sync log");
        log
    });
    let sync_log = Arc::new(Mutex::new(sync_log));
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let (ledger, key, receipts, tenant, run_id) =
                (ledger.clone(), key.clone(), receipts.clone(), tenant.clone(), run_id.clone());
            let (sync_log, data_dir) = (sync_log.clone(), data_dir.clone());
            std::thread::spawn(move || {
                for n in 0u64.. {
                    let batch = if n % 5 == 0 { 3 } else { 1 };
                    let events: Vec<(String, AppendEvent)> = (0..batch)
                        .map(|i| {
                            let event_id = format!("{run_id}-{thread}-{n}-{i}");
                            let body = testkit::body(
                                &tenant,
                                &format!("stream-{thread}"),
                                "TestsPassed",
                                &event_id,
                                "crasher",
                                serde_json::json!({"n": n}),
                            );
                            (event_id, AppendEvent::new(Envelope::sign(body, &key)))
                        })
                        .collect();
                    let ids: Vec<String> = events.iter().map(|(id, _)| id.clone()).collect();
                    let result = ledger.append_batch(events.into_iter().map(|(_, e)| e).collect());
                    let receipts_done = result.expect("append");
                    // One write per line so a kill never leaves half a line.
                    let mut lines = String::new();
                    for (id, receipt) in ids.iter().zip(&receipts_done) {
                        lines.push_str(&format!("{} {id} {}\n", receipt.seq, hex::encode(receipt.entry_hash)));
                    }
                    receipts.lock().expect("lock").write_all(lines.as_bytes()).expect("write receipt");
                    if let Some(log) = sync_log.lock().expect("lock").as_mut() {
                        let mut record = String::new();
                        for receipt in &receipts_done {
                            record.push_str(&format!("R {} {}\n", receipt.seq, hex::encode(receipt.entry_hash)));
                        }
                        // Where its records end (the file itself is preallocated).
                        let anchor_len = ledger::store::anchor::records_end(
                            &std::fs::read(data_dir.join("anchor")).expect("anchor"),
                        );
                        let (wal, wal_len) = newest_wal(&data_dir.join("db"));
                        record.push_str(&format!("S {anchor_len} {wal} {wal_len}\n"));
                        log.write_all(record.as_bytes()).expect("write sync log");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
}

/// The newest WAL file of a RocksDB dir (WAL numbers grow) and its length.
fn newest_wal(db: &std::path::Path) -> (String, u64) {
    let newest = std::fs::read_dir(db)
        .expect("db dir")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".log"))
        .max()
        .expect("a WAL file");
    let len = std::fs::metadata(db.join(&newest)).expect("wal").len();
    (newest, len)
}
