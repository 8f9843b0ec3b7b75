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
//! - [`export`]: metadata and batches of an export, from a [`ledger::Ledger`].
//! - [`audit`]: `verify`, `replay`, `consistency`.
//! - [`inspect`]: the `inspect` command.

pub mod audit;
pub mod export;
pub mod file;
pub mod inspect;
pub mod rows;
pub mod schema;

pub use file::{ExportReader, ExportWriter, FileError, Format};
pub use schema::{ExportMeta, Table};
