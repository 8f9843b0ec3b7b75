// A probe of RocksDB 7.8.3 (Debian's librocksdb-dev, through rocksdb 0.21), run once as a
// throwaway test file: copied to ledger/tests/scratch_atomic_flush.rs, then
//   cargo test --release -p ledger --test scratch_atomic_flush -- --nocapture
// and removed. Its output on 2026-12-06:
//   before: a Some(1) b Some(1) c Some(1)
//   after flush_cf(a): active entries a Some(0) b Some(1) c Some(1); L0 files a Some("1") b Some("0") c Some("0")
//   after crash: nowal None wal Some([49]) k None
// So with atomic_flush on, a manual flush of one column family flushes that one only; and a
// WAL'd write made after a WAL-less one survives a crash (the DB leaked, never closed) that
// loses the WAL-less one.
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};

#[test]
fn scratch() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_atomic_flush(true);
    let cfs = ["a", "b", "c"].map(|n| ColumnFamilyDescriptor::new(n, Options::default()));
    let db = DB::open_cf_descriptors(&o, dir.path(), cfs).unwrap();
    let mut w = WriteOptions::default();
    w.disable_wal(true);
    let mut batch = WriteBatch::default();
    for n in ["a", "b", "c"] {
        batch.put_cf(db.cf_handle(n).unwrap(), b"k", b"v");
    }
    db.write_opt(batch, &w).unwrap();
    let entries = |n: &str| db.property_int_value_cf(db.cf_handle(n).unwrap(), "rocksdb.num-entries-active-mem-table").unwrap();
    let files = |n: &str| db.property_value_cf(db.cf_handle(n).unwrap(), "rocksdb.num-files-at-level0").unwrap();
    println!("before: a {:?} b {:?} c {:?}", entries("a"), entries("b"), entries("c"));
    db.flush_cf(db.cf_handle("a").unwrap()).unwrap();
    println!("after flush_cf(a): active entries a {:?} b {:?} c {:?}; L0 files a {:?} b {:?} c {:?}", entries("a"), entries("b"), entries("c"), files("a"), files("b"), files("c"));
    // Also: does a WAL'd write after a WAL-less one survive reopen without the WAL-less one?
    let mut batch = WriteBatch::default();
    batch.put_cf(db.cf_handle("b").unwrap(), b"nowal", b"1");
    db.write_opt(batch, &w).unwrap();
    db.put_cf(db.cf_handle("b").unwrap(), b"wal", b"1").unwrap();
    db.flush_wal(true).unwrap();
    // Simulate a crash: leak the DB so nothing is flushed at close.
    std::mem::forget(db);
    let db2 = DB::open_cf_for_read_only(&o, dir.path(), ["a", "b", "c"], false).unwrap();
    let b = db2.cf_handle("b").unwrap();
    println!("after crash: nowal {:?} wal {:?} k {:?}", db2.get_cf(b, b"nowal").unwrap(), db2.get_cf(b, b"wal").unwrap(), db2.get_cf(b, b"k").unwrap());
}
