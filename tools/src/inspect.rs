//! `ledger-audit inspect`: what an export holds (counts, ranges, tenants, event types, keys),
//! without verifying it.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{TimestampNanosecondType, UInt64Type};
use serde::Serialize;

use crate::audit::CannotRun;
use crate::file::{ExportReader, FileError};
use crate::schema::Table;

/// What `inspect` reports.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The file.
    pub file: String,
    /// Its size, bytes.
    pub bytes: u64,
    /// `arrow` or `parquet`.
    pub format: String,
    /// The table.
    pub table: String,
    /// The tenant, as the metadata states it.
    pub tenant: String,
    /// Range the metadata states.
    pub from_seq: u64,
    /// End of that range (exclusive).
    pub to_seq: u64,
    /// Rows read.
    pub rows: u64,
    /// Record batches read.
    pub batches: u64,
    /// Smallest and largest seq column value (entries, history, approvals).
    pub seq_range: Option<(u64, u64)>,
    /// Earliest and latest recordedAt, ns.
    pub recorded_at_range: Option<(i64, i64)>,
    /// Tenants of the rows.
    pub tenants: BTreeMap<String, u64>,
    /// Rows per event type (entries).
    pub event_types: BTreeMap<String, u64>,
    /// Rows per signing key id (entries), with the agent of its rows.
    pub keys: BTreeMap<String, KeyUse>,
    /// Redacted rows (entries).
    pub redacted: u64,
    /// The ledger key id the metadata names.
    pub ledger_key: String,
    /// Size of the checkpoint in the metadata.
    pub checkpoint_size: Option<u64>,
}

/// Rows signed by one key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyUse {
    /// The agent its events name.
    pub agent: String,
    /// Rows.
    pub rows: u64,
}

/// Reads `path` and counts.
pub fn inspect(path: &Path) -> Result<Inspection, CannotRun> {
    let mut reader = ExportReader::open(path).map_err(|e| match e {
        FileError::Io { path, cause } => CannotRun(format!("{}: {cause}", path.display())),
        FileError::Malformed(detail) => CannotRun(format!("{}: {detail}", path.display())),
    })?;
    let meta = reader.meta.clone();
    let mut out = Inspection {
        file: path.display().to_string(),
        bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        format: reader.format.to_string(),
        table: meta.table.to_string(),
        tenant: meta.tenant.clone(),
        from_seq: meta.from_seq,
        to_seq: meta.to_seq,
        ledger_key: meta.roots.ledger_id().to_hex(),
        checkpoint_size: meta.checkpoint.lines().nth(1).and_then(|l| l.parse().ok()),
        ..Inspection::default()
    };
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(|e| CannotRun(format!("{}: {e}", path.display())))?;
        out.batches += 1;
        out.rows += batch.num_rows() as u64;
        if let Some(seq) = batch.column_by_name("seq").and_then(|c| c.as_primitive_opt::<UInt64Type>()) {
            for s in seq.iter().flatten() {
                let (lo, hi) = out.seq_range.unwrap_or((s, s));
                out.seq_range = Some((lo.min(s), hi.max(s)));
            }
        }
        if let Some(at) =
            batch.column_by_name("recordedAt").and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        {
            for t in at.iter().flatten() {
                let (lo, hi) = out.recorded_at_range.unwrap_or((t, t));
                out.recorded_at_range = Some((lo.min(t), hi.max(t)));
            }
        }
        if let Some(tenants) = batch.column_by_name("tenant").and_then(|c| c.as_string_opt::<i32>()) {
            for t in tenants.iter().flatten() {
                *out.tenants.entry(t.to_owned()).or_default() += 1;
            }
        }
        if meta.table != Table::Entries {
            continue;
        }
        let text = |name: &str| batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>().cloned());
        let (Some(types), Some(keys), Some(agents)) = (text("type"), text("keyId"), text("agentId")) else {
            return Err(CannotRun(format!(
                "{}: the entries table lacks its type/keyId/agentId columns",
                path.display()
            )));
        };
        for row in 0..batch.num_rows() {
            if types.is_null(row) {
                out.redacted += 1;
                continue;
            }
            *out.event_types.entry(types.value(row).to_owned()).or_default() += 1;
            if !keys.is_null(row) {
                let use_ = out.keys.entry(keys.value(row).to_owned()).or_default();
                use_.rows += 1;
                if use_.agent.is_empty() && !agents.is_null(row) {
                    use_.agent = agents.value(row).to_owned();
                }
            }
        }
    }
    Ok(out)
}
