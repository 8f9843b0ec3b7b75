//! Exporting from a ledger: the metadata of an export (keys, signed checkpoint, resume point)
//! and its record batches, produced one bounded batch at a time. The server's Arrow Flight
//! service and the tests write files with these; `ledger-audit` reads them back.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use ledger::{Ledger, ReadError};
use projections::state::TenantState;

use crate::rows::{entries_batch, projection_batches, RowError, BATCH_ROWS};
use crate::schema::{ExportMeta, Table};

/// An export that cannot be produced.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the log failed (unknown tenant, range beyond the log, corruption).
    #[error(transparent)]
    Read(#[from] ReadError),
    /// A row could not be encoded.
    #[error(transparent)]
    Row(#[from] RowError),
    /// The range is empty or reversed.
    #[error("{0}")]
    Range(String),
}

/// Resolves `from`/`to` (None: 0 / the log's size) against the log and checks the range.
pub fn resolve_range(
    ledger: &Ledger,
    tenant: &str,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<(u64, u64), ExportError> {
    let size = ledger.head(tenant)?.size;
    let (from, to) = (from.unwrap_or(0), to.unwrap_or(size));
    if to > size {
        return Err(ExportError::Range(format!("--to {to} is beyond the log of tenant {tenant} ({size} entries)")));
    }
    if from > to {
        return Err(ExportError::Range(format!("--from {from} is after --to {to}")));
    }
    Ok((from, to))
}

/// The metadata of an export of `table` for `tenant`, covering seqs `from..to` (entries) or
/// derived from `0..to` (projections). The checkpoint covers exactly `to` entries.
pub fn export_meta(ledger: &Ledger, tenant: &str, table: Table, from: u64, to: u64) -> Result<ExportMeta, ExportError> {
    let checkpoint = ledger.checkpoint_covering(tenant, to)?;
    let resume = if table == Table::Entries && from > 0 { Some(ledger.resume_point(tenant, from)?) } else { None };
    Ok(ExportMeta {
        table,
        tenant: tenant.to_owned(),
        from_seq: if table == Table::Entries { from } else { 0 },
        to_seq: to,
        origin_prefix: ledger.origin_prefix().to_owned(),
        roots: ledger.trust_roots(),
        checkpoint: checkpoint.note,
        resume,
    })
}

/// The entries `from..to` as record batches of at most [`BATCH_ROWS`] rows, read lazily.
pub fn entry_batches<'a>(
    ledger: &'a Ledger,
    tenant: &'a str,
    schema: SchemaRef,
    from: u64,
    to: u64,
) -> impl Iterator<Item = Result<RecordBatch, ExportError>> + 'a {
    let mut next = from;
    std::iter::from_fn(move || {
        if next >= to {
            return None;
        }
        let end = (next + BATCH_ROWS as u64).min(to);
        let batch = (|| {
            let entries = ledger.entries(tenant, next, end)?.collect::<Result<Vec<_>, _>>()?;
            Ok(entries_batch(&schema, &entries)?)
        })();
        next = end;
        Some(batch)
    })
}

/// A projection table of `state` (derived from `0..state.meta.position`), with its metadata.
pub fn projection_export(
    ledger: &Ledger,
    table: Table,
    state: &TenantState,
) -> Result<(ExportMeta, Vec<RecordBatch>), ExportError> {
    let meta = export_meta(ledger, &state.meta.tenant, table, 0, state.meta.position)?;
    let batches = projection_batches(table, &meta.schema(), state)?;
    Ok((meta, batches))
}
