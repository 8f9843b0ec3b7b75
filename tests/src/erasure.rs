//! Byte-level search of a data dir: is an erased string still in any file the ledger keeps?
//!
//! Every file is searched as raw bytes (WAL files, the anchor, keys, RocksDB's own files), and
//! every SST is also decoded with RocksDB's own reader, `sst_dump` (Debian's `rocksdb-tools`,
//! installed by `scripts/setup.sh`), because SST blocks are compressed: a string can be in an
//! SST without its bytes appearing in the file. `sst_dump --command=scan` prints every
//! internal entry of a file, overwritten versions included.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The files under `dir` (recursively) that hold `needle`: its raw bytes anywhere, or, for an
/// SST, in any key or value `sst_dump` decodes. Panics when `sst_dump` cannot run (the tests
/// that use this fail, never skip: run `scripts/setup.sh`).
pub fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let hex_needle = hex::encode_upper(needle);
    let mut found = Vec::new();
    for file in files_under(dir) {
        // A live store deletes files as it flushes and compacts: one gone since the listing
        // holds nothing any more.
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("reading {}: {e}", file.display()),
        };
        let raw = bytes.windows(needle.len()).any(|w| w == needle);
        let decoded = file.extension().is_some_and(|e| e == "sst") && sst_holds(&file, &hex_needle).unwrap_or(false);
        if raw || decoded {
            found.push(file);
        }
    }
    found
}

/// Whether `sst_dump` finds the upper-case hex `hex_needle` in any entry of `sst`; `None` when
/// the file was deleted meanwhile.
fn sst_holds(sst: &Path, hex_needle: &str) -> Option<bool> {
    let output = Command::new("sst_dump")
        .arg(format!("--file={}", sst.display()))
        .args(["--command=scan", "--output_hex"])
        .output()
        .unwrap_or_else(|e| panic!("sst_dump cannot run ({e}): install rocksdb-tools (scripts/setup.sh)"));
    let text = String::from_utf8_lossy(&output.stdout);
    if !sst.exists() {
        return None;
    }
    assert!(
        output.status.success() && text.contains("Process "),
        "sst_dump failed on {}: {}{}",
        sst.display(),
        text,
        String::from_utf8_lossy(&output.stderr)
    );
    Some(text.contains(hex_needle))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}
