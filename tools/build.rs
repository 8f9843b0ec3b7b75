//! Links this package's binaries and tests with RocksDB's CRC32C wrapped by `rocksdb-crc32c`
//! (hardware CRC32C; ARCHITECTURE.md, "Build").

fn main() {
    rocksdb_crc32c::emit_link_args();
}
