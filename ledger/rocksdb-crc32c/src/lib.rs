//! Hardware CRC32C for the RocksDB the ledger links, wrapped in at link time.
//!
//! The ledger links Debian's `librocksdb-dev` 7.8.3 (ARCHITECTURE.md, "Build"). Debian builds it
//! portable, so RocksDB computes every CRC32C — each WAL record, each table block it writes or
//! reads — in software (`crc32c::ExtendImpl<Slow_CRC32>`): 16 % of the on-CPU time of the
//! thread that writes each commit group to RocksDB (BENCHMARKS.md, "Issue 20, thirteenth
//! session"). Building RocksDB ourselves with SSE4.2 would cost the hours of C++ compilation the
//! Debian package saves.
//!
//! RocksDB computes every CRC32C through one function, `rocksdb::crc32c::Extend(uint32_t crc,
//! const char* buf, size_t size)`, defined in its `crc32c.o` and called from eleven other objects
//! of the static library (the WAL's writer and reader, the table format, …). A binary whose
//! build script calls [`emit_link_args`] is linked with `--wrap` on that symbol, so those calls
//! reach [`__wrap__ZN7rocksdb6crc32c6ExtendEjPKcm`] instead: the same function (standard
//! CRC32C, continued from `crc`), computed by the `crc32c` crate with the SSE4.2 instruction when
//! the CPU has it (detected at run time) and in software otherwise. Files are byte for byte
//! what RocksDB's own function writes — the tests compare the two over arbitrary inputs — so a
//! store written by one binary opens in any other.
//!
//! A binary linked without the wrap (or against a RocksDB whose symbol has another name) keeps
//! RocksDB's own function: slower, never wrong. [`called`] tells which one a process uses; the
//! server's tests check it.

use std::sync::atomic::{AtomicBool, Ordering};

/// The mangled name of `rocksdb::crc32c::Extend(unsigned int, char const*, unsigned long)`
/// (Itanium C++ ABI), as RocksDB 7.8.3 defines it.
pub const EXTEND_SYMBOL: &str = "_ZN7rocksdb6crc32c6ExtendEjPKcm";

static CALLED: AtomicBool = AtomicBool::new(false);

/// Prints the build-script instructions that link the package's binaries, tests, benches and
/// examples with RocksDB's `crc32c::Extend` wrapped: call it from a `build.rs`.
///
/// `--undefined` makes the linker take the wrapper from this crate's library whatever the order
/// of the libraries on its command line (the references to it appear only inside RocksDB's).
pub fn emit_link_args() {
    println!("cargo:rustc-link-arg=-Wl,--wrap={EXTEND_SYMBOL}");
    println!("cargo:rustc-link-arg=-Wl,--undefined=__wrap_{EXTEND_SYMBOL}");
}

/// Whether RocksDB has computed a CRC32C through [`extend`] in this process. Any write to its
/// WAL computes one, so after a store is opened and written, `false` means the binary was linked
/// without the wrap and RocksDB uses its own software CRC32C.
pub fn called() -> bool {
    CALLED.load(Ordering::Relaxed)
}

/// The CRC32C (Castagnoli) of `data` continued from `crc`: what RocksDB's `crc32c::Extend`
/// returns (`extend(0, data)` is the checksum of `data`; `extend(extend(0, a), b)` is that of
/// `a` then `b`).
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// RocksDB's `crc32c::Extend`, as the wrapped link calls it: [`extend`] over RocksDB's buffer.
///
/// # Safety
///
/// `buf` must point to `size` readable bytes that stay unchanged for the call (RocksDB's
/// contract for its own function); it may be null when `size` is 0.
#[no_mangle]
#[allow(unsafe_code)]
pub unsafe extern "C" fn __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(crc: u32, buf: *const u8, size: usize) -> u32 {
    if !CALLED.load(Ordering::Relaxed) {
        CALLED.store(true, Ordering::Relaxed);
    }
    if size == 0 {
        return crc;
    }
    // SAFETY: the caller (RocksDB) passes a buffer of `size` readable bytes, unchanged meanwhile.
    let data = unsafe { std::slice::from_raw_parts(buf, size) };
    extend(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[allow(unsafe_code)]
    extern "C" {
        /// RocksDB's own function (this test binary is linked without the wrap).
        #[link_name = "_ZN7rocksdb6crc32c6ExtendEjPKcm"]
        fn rocksdb_extend(crc: u32, buf: *const u8, size: usize) -> u32;
    }

    fn rocksdb(crc: u32, data: &[u8]) -> u32 {
        // Keeps the rocksdb crate (and so librocksdb) linked into this test binary.
        let _ = rocksdb::Options::default();
        // SAFETY: `data` is a live slice of `data.len()` bytes.
        #[allow(unsafe_code)]
        unsafe {
            rocksdb_extend(crc, data.as_ptr(), data.len())
        }
    }

    fn wrapped(crc: u32, data: &[u8]) -> u32 {
        // SAFETY: `data` is a live slice of `data.len()` bytes.
        #[allow(unsafe_code)]
        unsafe {
            __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(crc, data.as_ptr(), data.len())
        }
    }

    #[test]
    fn the_standard_check_value_and_rocksdbs_own() {
        // CRC-32C's check value (the checksum of "123456789"), as every catalogue lists it.
        assert_eq!(extend(0, b"123456789"), 0xE306_9283);
        assert_eq!(rocksdb(0, b"123456789"), 0xE306_9283);
        assert_eq!(wrapped(0, b"123456789"), 0xE306_9283);
        assert_eq!(wrapped(0xE306_9283, b""), 0xE306_9283);
        // SAFETY: a null pointer with a length of 0, as the contract allows.
        #[allow(unsafe_code)]
        let empty = unsafe { __wrap__ZN7rocksdb6crc32c6ExtendEjPKcm(7, std::ptr::null(), 0) };
        assert_eq!(empty, 7);
    }

    #[test]
    fn every_length_to_a_block_at_every_alignment_is_rocksdbs_checksum() {
        // The hardware path takes 8 bytes at a time after an unaligned head and before a short
        // tail: every length up to RocksDB's 4 KiB blocks, from every offset within 8 bytes.
        let bytes: Vec<u8> = (0..4096 + 8).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for offset in 0..8 {
            for len in 0..=4096 {
                let data = &bytes[offset..offset + len];
                assert_eq!(wrapped(0x1234_5678, data), rocksdb(0x1234_5678, data), "offset {offset}, length {len}");
            }
        }
    }

    #[test]
    fn calling_the_wrapper_is_seen() {
        let _ = wrapped(0, b"x");
        assert!(called());
    }

    proptest! {
        /// Over arbitrary inputs, starting values and splits, the wrapper returns exactly what
        /// RocksDB's own function returns, and continuing is the same as checksumming the whole.
        #[test]
        fn the_wrapper_is_rocksdbs_function(
            crc in any::<u32>(),
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            split in any::<prop::sample::Index>(),
        ) {
            prop_assert_eq!(wrapped(crc, &data), rocksdb(crc, &data));
            let at = split.index(data.len() + 1);
            let (a, b) = data.split_at(at);
            prop_assert_eq!(wrapped(wrapped(0, a), b), rocksdb(0, &data));
        }
    }
}
