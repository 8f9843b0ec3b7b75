//! RocksDB's CRC32C in this package's builds: the hardware implementation of `rocksdb-crc32c`,
//! wrapped in at link time by the package's build script (ARCHITECTURE.md, "Build"). The
//! server binary is linked by the same build script as this test binary.

#[test]
fn rocksdb_computes_its_checksums_with_the_hardware_crc32c_in_this_build() {
    let dir = tempfile::tempdir().unwrap();
    // A new store writes its identity through RocksDB's WAL: RocksDB computes a CRC32C.
    let ledger = ledger::Ledger::open(&dir.path().join("data"), ledger::Config::default()).unwrap();
    drop(ledger);
    assert!(
        ledger::store::hardware_crc32c(),
        "RocksDB wrote its WAL without calling the wrapped crc32c::Extend: this build is not linked with \
         `--wrap` (api/cli/build.rs), or the linked RocksDB names the function otherwise"
    );
    // The store written with it opens again and reads back (RocksDB checks each WAL record's and
    // each block's CRC32C as it reads).
    let reopened = ledger::Ledger::open(&dir.path().join("data"), ledger::Config::default()).unwrap();
    drop(reopened);
}
