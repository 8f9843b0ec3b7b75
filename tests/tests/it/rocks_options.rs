//! The RocksDB options of a ledger store, as RocksDB itself records them, and what the level-0
//! compaction trigger of its column families does (`ledger/src/store/rocks.rs`; BENCHMARKS.md,
//! "Issue 20, fifteenth session" and "sixteenth session").

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ledger::store::COLUMN_FAMILIES;
use rocksdb::DB;
use testkit::{append_ok, temp_ledger};

/// The sections of RocksDB's newest OPTIONS file in `db_dir` (`DBOptions`, `CFOptions "tree"`,
/// ...), each as its `name=value` lines.
fn recorded_options(db_dir: &Path) -> HashMap<String, HashMap<String, String>> {
    let newest = std::fs::read_dir(db_dir)
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("OPTIONS-"))
        .max_by_key(|name| name["OPTIONS-".len()..].parse::<u64>().unwrap())
        .expect("RocksDB wrote an OPTIONS file");
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(db_dir.join(newest)).unwrap().lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
        } else if let Some((name, value)) = line.split_once('=') {
            sections.entry(section.clone()).or_default().insert(name.to_owned(), value.to_owned());
        }
    }
    sections
}

/// `Ledger::open` gives RocksDB a 128 MiB WAL bound, and every column family a level-0
/// compaction trigger of 8 files (RocksDB's default is 4).
#[test]
fn a_store_records_its_wal_bound_and_level0_triggers() {
    let t = temp_ledger();
    let agent = t.agent("acme", "ci", &[], &[]);
    append_ok(&t.ledger, agent.event("rel-1", 200));
    let options = recorded_options(&t.dir.path().join("db"));
    assert_eq!(options["DBOptions"]["max_total_wal_size"], (128u64 << 20).to_string());
    for cf in COLUMN_FAMILIES {
        let recorded = &options[&format!("CFOptions \"{cf}\"")]["level0_file_num_compaction_trigger"];
        assert_eq!(recorded, "8", "column family {cf}");
    }
}

/// The number of table files at level 0 of `cf`.
fn level0_files(db: &DB, cf: &str) -> u64 {
    let value = db.property_value_cf(db.cf_handle(cf).unwrap(), "rocksdb.num-files-at-level0").unwrap().unwrap();
    value.parse().unwrap()
}

/// With the options `Ledger::open` uses, seven flushes of the tree and of `entries` leave seven
/// level-0 files each once RocksDB has nothing left to compact; the eighth starts a compaction
/// that leaves fewer.
#[test]
fn level0_compacts_only_from_eight_files() {
    let dir = tempfile::tempdir().unwrap();
    let db =
        DB::open_cf_descriptors(&ledger::store::db_options(), dir.path(), ledger::store::column_families()).unwrap();
    let flush = |i: u64| {
        for cf in ["tree", "entries"] {
            let handle = db.cf_handle(cf).unwrap();
            db.put_cf(handle, i.to_be_bytes(), [7u8; 32]).unwrap();
            db.flush_cf(handle).unwrap();
        }
    };
    // Settled: neither family has a compaction pending, and none runs. `compaction-pending` is
    // a column family's own property (read without a family it is the default family's, which
    // let this test look before `entries`' or the tree's compaction had started: it failed
    // about one run in five on a busy machine); `num-running-compactions` is the whole DB's.
    let settle = |db: &DB| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let busy = |db: &DB| {
            let pending = ["tree", "entries"].iter().any(|cf| {
                let handle = db.cf_handle(cf).unwrap();
                db.property_int_value_cf(handle, "rocksdb.compaction-pending").unwrap().unwrap() > 0
            });
            pending || db.property_int_value("rocksdb.num-running-compactions").unwrap().unwrap() > 0
        };
        while busy(db) {
            assert!(Instant::now() < deadline, "RocksDB still compacting after 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    for i in 0u64..7 {
        flush(i);
    }
    settle(&db);
    for cf in ["tree", "entries"] {
        assert_eq!(level0_files(&db, cf), 7, "{cf} after seven flushes");
    }
    flush(7);
    settle(&db);
    for cf in ["tree", "entries"] {
        assert!(level0_files(&db, cf) < 8, "{cf}: {} files at level 0 after the eighth flush", level0_files(&db, cf));
    }
}
