//! Links the criterion benches with RocksDB's CRC32C wrapped by `rocksdb-crc32c` (hardware
//! CRC32C; ARCHITECTURE.md, "Build"), as the server and `ledger-bench` are, so the RocksDB
//! writes they time cost what the shipped binaries pay.

fn main() {
    rocksdb_crc32c::emit_link_args();
}
