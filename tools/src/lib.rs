//! # ledger-tools — exports and the offline auditor
//!
//! Release Ledger's records leave the service as **Arrow IPC** or **Parquet (zstd)** files
//! whose metadata carries everything needed to check them: the ledger and admin public keys,
//! the checkpoint covering the rows (signed by the ledger key) and, for a range that does not
//! start at seq 0, where the range resumes. `ledger-audit` then verifies a file with no server
//! and no trust in whoever handed it over: every signature (batched, on all cores), the key
//! registry in force at each seq, every chain link and entry hash, the Merkle root against the
//! checkpoint, the checkpoint's signature, every column copied out of a signed payload, and
//! that every ledger decision is the one the policy in force would have made from the entries
//! before it (by folding the log with the same pure fold the server runs).
//!
//! This crate never depends on tonic or an async runtime: the server's Arrow Flight service
//! (`api`) and the auditor share its schema and row code, and nothing else.
//!
//! - [`schema`]: tables, columns, metadata keys.
//! - [`rows`]: entries and projection state ↔ record batches.
//! - [`file`]: streaming file writer and reader of both formats.
//! - [`parquet_pages`]: a bounded reading of every Parquet page header before parquet-rs reads it.
//! - [`export`]: metadata and batches of an export, from a [`ledger::Ledger`].
//! - [`audit`]: `verify`, `replay`, `consistency`.
//! - [`evidence`]: a release's evidence pack: its files, `verify-evidence`, the reports.
//! - [`inspect`]: the `inspect` command.
//! - [`tiles`]: a tenant's C2SP tlog-tiles written to a directory from an entries export.

pub mod audit;
pub mod evidence;
pub mod export;
pub mod file;
pub mod inspect;
pub mod parquet_pages;
pub mod rows;
pub mod schema;
pub mod tiles;

pub use file::{ExportReader, ExportWriter, FileError, Format};
pub use schema::{ExportMeta, Table};

/// A range of seqs for people, `from` inclusive and `to` exclusive (a log size): "seqs 0 to 10",
/// "seq 4", or "no seqs" — every output of the CLI and the auditor names ranges this one way.
pub fn seq_range(from: u64, to: u64) -> String {
    match to.checked_sub(1) {
        Some(last) if last > from => format!("seqs {from} to {last}"),
        Some(last) if last == from => format!("seq {from}"),
        _ => "no seqs".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seq_range_reads_as_first_to_last() {
        assert_eq!(super::seq_range(0, 11), "seqs 0 to 10");
        assert_eq!(super::seq_range(4, 5), "seq 4");
        assert_eq!(super::seq_range(3, 3), "no seqs");
        assert_eq!(super::seq_range(0, 0), "no seqs");
    }
}
