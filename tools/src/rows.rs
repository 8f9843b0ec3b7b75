//! Rows: log entries and projection state to Arrow record batches, and entry rows back to
//! [`Entry`] values, checking every column that is derived from the signed payload.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, FixedSizeBinaryArray, FixedSizeBinaryBuilder, ListBuilder,
    RecordBatch, StringBuilder, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampNanosecondType, UInt64Type};
use ledger::{Entry, EntryBody, Envelope, Hash32, ParsedEvent, Signature};
use projections::query::summary;
use projections::state::TenantState;

use crate::schema::Table;

/// Rows per record batch (and Flight message): bounds memory whatever the table's size.
pub const BATCH_ROWS: usize = 4096;

/// A row that cannot be written or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{detail}", seq.map(|s| format!("seq {s}: ")).unwrap_or_default())]
pub struct RowError {
    /// The entry, when known.
    pub seq: Option<u64>,
    /// What is wrong.
    pub detail: String,
}

impl RowError {
    fn at(seq: u64, detail: impl Into<String>) -> Self {
        Self { seq: Some(seq), detail: detail.into() }
    }

    fn table(detail: impl Into<String>) -> Self {
        Self { seq: None, detail: detail.into() }
    }
}

fn ns(seq: u64, value: u64) -> Result<i64, RowError> {
    i64::try_from(value).map_err(|_| RowError::at(seq, "recordedAt does not fit a timestamp"))
}

fn arrow_error(e: arrow::error::ArrowError) -> RowError {
    RowError::table(e.to_string())
}

/// Builds one record batch of the entries table.
pub fn entries_batch(schema: &SchemaRef, entries: &[Entry]) -> Result<RecordBatch, RowError> {
    let n = entries.len();
    let mut seq = UInt64Builder::with_capacity(n);
    let mut tenant = StringBuilder::new();
    let mut recorded_at = TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut text: Vec<StringBuilder> = (0..8).map(|_| StringBuilder::new()).collect();
    let mut payload = BinaryBuilder::new();
    let mut signature = FixedSizeBinaryBuilder::with_capacity(n, 64);
    let mut prev_hash = FixedSizeBinaryBuilder::with_capacity(n, 32);
    let mut payload_hash = FixedSizeBinaryBuilder::with_capacity(n, 32);
    let mut entry_hash = FixedSizeBinaryBuilder::with_capacity(n, 32);
    let mut redacted_by = UInt64Builder::with_capacity(n);
    for entry in entries {
        let s = entry.seq;
        seq.append_value(s);
        recorded_at.append_value(ns(s, entry.recorded_at)?);
        match &entry.body {
            EntryBody::Present(envelope) => {
                let parsed = ParsedEvent::parse(&envelope.payload).map_err(|e| RowError::at(s, e.to_string()))?;
                let [sig] = envelope.signatures.as_slice() else {
                    return Err(RowError::at(s, "the envelope does not have exactly one signature"));
                };
                let h = &parsed.header;
                tenant.append_value(&h.tenant);
                let values = [
                    Some(h.event_id.as_str()),
                    Some(h.stream.as_str()),
                    Some(h.event_type.as_str()),
                    h.release_id.as_deref(),
                    h.trace_id.as_deref(),
                    Some(h.actor.agent_id.as_str()),
                    Some(sig.keyid.as_str()),
                    Some(envelope.payload_type.as_str()),
                ];
                for (builder, value) in text.iter_mut().zip(values) {
                    builder.append_option(value);
                }
                payload.append_value(&envelope.payload);
                signature.append_value(&sig.sig).map_err(|_| RowError::at(s, "the signature is not 64 bytes"))?;
                redacted_by.append_null();
            }
            EntryBody::Redacted { by_seq } => {
                // The tenant of a redacted entry is the log's: it is not in any payload any more.
                tenant.append_value(schema.metadata().get(crate::schema::keys::TENANT).map_or("", String::as_str));
                for builder in &mut text {
                    builder.append_null();
                }
                payload.append_null();
                signature.append_null();
                redacted_by.append_value(*by_seq);
            }
        }
        prev_hash.append_value(entry.prev_hash).map_err(arrow_error)?;
        payload_hash.append_value(entry.payload_hash).map_err(arrow_error)?;
        entry_hash.append_value(entry.entry_hash).map_err(arrow_error)?;
    }
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(seq.finish()), Arc::new(tenant.finish()), Arc::new(recorded_at.finish())];
    columns.extend(text.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    columns.extend([
        Arc::new(payload.finish()) as ArrayRef,
        Arc::new(signature.finish()),
        Arc::new(prev_hash.finish()),
        Arc::new(payload_hash.finish()),
        Arc::new(entry_hash.finish()),
        Arc::new(redacted_by.finish()),
    ]);
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_error)
}

/// Checks that `batch` has exactly the columns of `table` (names, types, nullability).
pub fn check_columns(table: Table, batch_schema: &arrow::datatypes::Schema) -> Result<(), RowError> {
    let want = table.schema();
    if want.fields().len() != batch_schema.fields().len() {
        return Err(RowError::table(format!(
            "the {table} table has {} columns, expected {}",
            batch_schema.fields().len(),
            want.fields().len()
        )));
    }
    for (want, got) in want.fields().iter().zip(batch_schema.fields()) {
        if want.name() != got.name() || want.data_type() != got.data_type() {
            return Err(RowError::table(format!(
                "column {:?} ({}) is not {:?} ({})",
                got.name(),
                got.data_type(),
                want.name(),
                want.data_type()
            )));
        }
    }
    Ok(())
}

/// Reads the entries of one batch of the entries table back, checking that every column
/// derived from the payload (tenant, eventId, stream, type, releaseId, traceId, agentId) says
/// what the signed payload says, and that a redacted row carries nothing but its hashes.
pub fn entries_from_batch(batch: &RecordBatch, tenant: &str) -> Result<Vec<Entry>, RowError> {
    parsed_entries_from_batch(batch, tenant, |entry, _| entry)
}

/// What [`ParsedEvent::parse`] makes of an entry's payload (`None`: redacted).
pub type ParsedPayload = Option<Result<ParsedEvent, ledger::error::InvalidEvent>>;

/// [`entries_from_batch`], also giving each entry's payload as parsed for the column check,
/// so that the stages after it (verifier, fold) need not parse it again: `each` makes the item
/// kept of each entry and its parse, in the same pass (the auditor's reading thread hashes the
/// entry there, rather than moving every entry again in a second pass).
pub fn parsed_entries_from_batch<T>(
    batch: &RecordBatch,
    tenant: &str,
    mut each: impl FnMut(Entry, ParsedPayload) -> T,
) -> Result<Vec<T>, RowError> {
    check_columns(Table::Entries, &batch.schema())?;
    let col = |i: usize| batch.column(i);
    let seq = col(0).as_primitive::<UInt64Type>();
    let tenants = col(1).as_string::<i32>();
    let recorded_at = col(2).as_primitive::<TimestampNanosecondType>();
    let text: Vec<_> = (3..11).map(|i| col(i).as_string::<i32>()).collect();
    let payload = col(11).as_binary::<i32>();
    let signature = col(12).as_fixed_size_binary();
    let hashes = [col(13).as_fixed_size_binary(), col(14).as_fixed_size_binary(), col(15).as_fixed_size_binary()];
    let redacted_by = col(16).as_primitive::<UInt64Type>();
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        if seq.is_null(row) {
            return Err(RowError::table(format!("row {row} of a batch has no seq")));
        }
        let s = seq.value(row);
        let required = |array: &dyn Array, name: &str| {
            if array.is_null(row) {
                Err(RowError::at(s, format!("column {name} is null")))
            } else {
                Ok(())
            }
        };
        required(tenants, "tenant")?;
        if tenants.value(row) != tenant {
            return Err(RowError::at(
                s,
                format!("column tenant says {:?}, the export is of {tenant:?}", tenants.value(row)),
            ));
        }
        required(recorded_at, "recordedAt")?;
        let at = u64::try_from(recorded_at.value(row)).map_err(|_| RowError::at(s, "recordedAt is before 1970"))?;
        let mut hash = [[0u8; 32]; 3];
        for (i, (array, name)) in hashes.iter().zip(["prevHash", "payloadHash", "entryHash"]).enumerate() {
            required(*array, name)?;
            hash[i] = fixed32(array, row).ok_or_else(|| RowError::at(s, format!("column {name} is not 32 bytes")))?;
        }
        let body = if payload.is_null(row) {
            required(redacted_by, "redactedBy (a row without payload must be a redacted entry)")?;
            for (array, name) in text.iter().zip(TEXT_COLUMNS) {
                if !array.is_null(row) {
                    return Err(RowError::at(s, format!("redacted entry has a value in column {name}")));
                }
            }
            if !signature.is_null(row) {
                return Err(RowError::at(s, "redacted entry has a value in column signature"));
            }
            (EntryBody::Redacted { by_seq: redacted_by.value(row) }, None)
        } else {
            if !redacted_by.is_null(row) {
                return Err(RowError::at(s, "entry with a payload has a value in column redactedBy"));
            }
            for (i, name) in [(6, "keyId"), (7, "payloadType")] {
                required(text[i], name)?;
            }
            required(signature, "signature")?;
            let parsed = ParsedEvent::parse(payload.value(row));
            if let Ok(parsed) = &parsed {
                check_derived(s, parsed, &text, row)?;
            }
            let envelope = Envelope {
                payload_type: text[7].value(row).to_owned(),
                payload: payload.value(row).to_vec(),
                signatures: vec![Signature {
                    keyid: text[6].value(row).to_owned(),
                    sig: signature.value(row).to_vec(),
                }],
            };
            (EntryBody::Present(envelope), Some(parsed))
        };
        let (body, parsed) = body;
        out.push(each(
            Entry { seq: s, recorded_at: at, prev_hash: hash[0], payload_hash: hash[1], entry_hash: hash[2], body },
            parsed,
        ));
    }
    Ok(out)
}

/// Names of entries columns 3..11.
const TEXT_COLUMNS: [&str; 8] =
    ["eventId", "stream", "type", "releaseId", "traceId", "agentId", "keyId", "payloadType"];

fn fixed32(array: &FixedSizeBinaryArray, row: usize) -> Option<Hash32> {
    array.value(row).try_into().ok()
}

/// The columns copied out of the payload must equal what it says (`parsed`). A payload that
/// does not parse is left to the verifier (which reports it as an envelope failure at this seq).
fn check_derived(
    seq: u64,
    parsed: &ParsedEvent,
    text: &[&arrow::array::StringArray],
    row: usize,
) -> Result<(), RowError> {
    let h = &parsed.header;
    let expected = [
        Some(h.event_id.as_str()),
        Some(h.stream.as_str()),
        Some(h.event_type.as_str()),
        h.release_id.as_deref(),
        h.trace_id.as_deref(),
        Some(h.actor.agent_id.as_str()),
    ];
    for ((array, name), want) in text.iter().zip(TEXT_COLUMNS).zip(expected) {
        let got = (!array.is_null(row)).then(|| array.value(row));
        if got != want {
            return Err(RowError::at(seq, format!("column {name} is {got:?}, the signed payload says {want:?}")));
        }
    }
    Ok(())
}

/// The rows of a projection table, as record batches of at most [`BATCH_ROWS`] rows.
pub fn projection_batches(table: Table, schema: &SchemaRef, state: &TenantState) -> Result<Vec<RecordBatch>, RowError> {
    let tenant = state.meta.tenant.as_str();
    let mut batches = Vec::new();
    match table {
        Table::Entries => return Err(RowError::table("the entries table is not a projection")),
        Table::Releases => {
            let releases: Vec<_> = state.releases.values().collect();
            for chunk in releases.chunks(BATCH_ROWS) {
                let mut b = ReleaseColumns::default();
                for release in chunk {
                    b.push(tenant, &summary(state, release), release)?;
                }
                batches.push(b.finish(schema)?);
            }
        }
        Table::History => {
            let rows: Vec<_> = state
                .meta
                .history
                .iter()
                .flat_map(|(key, items)| {
                    let (module, environment) = key.split_once('|').unwrap_or((key.as_str(), ""));
                    items.iter().map(move |item| (module, environment, item))
                })
                .collect();
            for chunk in rows.chunks(BATCH_ROWS) {
                let mut c = Columns::new(schema);
                for (module, environment, item) in chunk {
                    c.text(0, tenant).text(1, module).text(2, environment).u64(3, item.seq);
                    c.ts(4, ns(item.seq, item.recorded_at)?);
                    c.text(5, &item.release_id).text(6, &item.version).text(7, item.event.as_str());
                }
                batches.push(c.finish(schema)?);
            }
        }
        Table::Approvals => {
            let rows: Vec<_> = state
                .releases
                .values()
                .flat_map(|r| r.approvals.iter().map(move |a| (r.release_id.as_str(), a)))
                .collect();
            for chunk in rows.chunks(BATCH_ROWS) {
                let mut c = Columns::new(schema);
                for (release, a) in chunk {
                    c.text(0, tenant).text(1, release).u64(2, a.seq).ts(3, ns(a.seq, a.recorded_at)?);
                    c.text(4, &a.key_id).text(5, &a.agent_id).text(6, &a.role).bool(7, a.granted).text(8, &a.text);
                    let method = a.method.as_ref().map(|m| serde_json::to_value(m).unwrap_or_default());
                    c.opt_text(9, method.as_ref().and_then(|m| m.as_str()));
                }
                batches.push(c.finish(schema)?);
            }
        }
        Table::Risk => {
            let rows: Vec<_> = state
                .releases
                .values()
                .filter_map(|r| r.decision.as_ref().map(|d| (r.release_id.as_str(), d)))
                .flat_map(|(release, d)| d.risk_factors.iter().map(move |f| (release, d, f)))
                .collect();
            for chunk in rows.chunks(BATCH_ROWS) {
                let mut c = Columns::new(schema);
                for (release, d, f) in chunk {
                    c.text(0, tenant).text(1, release).u64(2, d.trigger).text(3, &d.evaluated_at);
                    c.u32(4, d.risk_score).text(5, &f.factor).text(6, &f.value).u32(7, f.points);
                }
                batches.push(c.finish(schema)?);
            }
        }
    }
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(Arc::clone(schema)));
    }
    Ok(batches)
}

/// Column builders for the flat projection tables, typed by the schema.
enum Column {
    Text(StringBuilder),
    U64(UInt64Builder),
    U32(UInt32Builder),
    Bool(BooleanBuilder),
    Ts(TimestampNanosecondBuilder),
}

struct Columns(Vec<Column>);

impl Columns {
    fn new(schema: &SchemaRef) -> Self {
        Self(
            schema
                .fields()
                .iter()
                .map(|f| match f.data_type() {
                    DataType::UInt64 => Column::U64(UInt64Builder::new()),
                    DataType::UInt32 => Column::U32(UInt32Builder::new()),
                    DataType::Boolean => Column::Bool(BooleanBuilder::new()),
                    DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                        Column::Ts(TimestampNanosecondBuilder::new().with_timezone("UTC"))
                    }
                    _ => Column::Text(StringBuilder::new()),
                })
                .collect(),
        )
    }

    fn text(&mut self, i: usize, value: &str) -> &mut Self {
        self.opt_text(i, Some(value))
    }

    fn opt_text(&mut self, i: usize, value: Option<&str>) -> &mut Self {
        if let Column::Text(b) = &mut self.0[i] {
            b.append_option(value);
        }
        self
    }

    fn u64(&mut self, i: usize, value: u64) -> &mut Self {
        if let Column::U64(b) = &mut self.0[i] {
            b.append_value(value);
        }
        self
    }

    fn u32(&mut self, i: usize, value: u32) -> &mut Self {
        if let Column::U32(b) = &mut self.0[i] {
            b.append_value(value);
        }
        self
    }

    fn bool(&mut self, i: usize, value: bool) -> &mut Self {
        if let Column::Bool(b) = &mut self.0[i] {
            b.append_value(value);
        }
        self
    }

    fn ts(&mut self, i: usize, value: i64) -> &mut Self {
        if let Column::Ts(b) = &mut self.0[i] {
            b.append_value(value);
        }
        self
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch, RowError> {
        let columns = self
            .0
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Column::Text(b) => Arc::new(b.finish()),
                    Column::U64(b) => Arc::new(b.finish()),
                    Column::U32(b) => Arc::new(b.finish()),
                    Column::Bool(b) => Arc::new(b.finish()),
                    Column::Ts(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_error)
    }
}

/// The releases table's builders (it has list columns).
#[derive(Default)]
struct ReleaseColumns {
    text: Vec<StringBuilder>,
    modules: ListBuilder<StringBuilder>,
    status: StringBuilder,
    reasons: ListBuilder<StringBuilder>,
    risk: UInt32Builder,
    policy: UInt64Builder,
    decision: StringBuilder,
    decision_seq: UInt64Builder,
    tail: Vec<StringBuilder>,
    created: Vec<i64>,
    updated: Vec<i64>,
    summary: StringBuilder,
}

impl ReleaseColumns {
    fn push(
        &mut self,
        tenant: &str,
        s: &projections::query::ReleaseSummary,
        release: &projections::state::ReleaseState,
    ) -> Result<(), RowError> {
        if self.text.is_empty() {
            self.text = (0..3).map(|_| StringBuilder::new()).collect();
            self.tail = (0..3).map(|_| StringBuilder::new()).collect();
        }
        self.text[0].append_value(tenant);
        self.text[1].append_value(&s.release_id);
        self.text[2].append_option(s.environment.as_deref());
        for m in &s.modules {
            self.modules.values().append_value(format!("{}@{}", m.name, m.version));
        }
        self.modules.append(true);
        self.status.append_value(&s.status);
        for r in &s.reasons {
            self.reasons.values().append_value(r.code.as_str());
        }
        self.reasons.append(true);
        self.risk.append_option(s.risk_score);
        self.policy.append_option(s.policy_version);
        self.decision.append_option(s.last_decision.as_ref().map(|d| d.event_type.as_str()));
        self.decision_seq.append_option(s.last_decision.as_ref().and_then(|d| d.seq));
        self.tail[0].append_option(s.retry_after.as_deref());
        self.tail[1].append_option(s.trace_id.as_deref());
        self.tail[2].append_option(s.declared_by.as_deref());
        self.created.push(ns(0, release.created_at)?);
        self.updated.push(ns(0, release.updated_at)?);
        let json = serde_json::to_string(s).map_err(|e| RowError::table(e.to_string()))?;
        self.summary.append_value(json);
        Ok(())
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch, RowError> {
        if self.text.is_empty() {
            return Ok(RecordBatch::new_empty(Arc::clone(schema)));
        }
        let ts = |values: &[i64]| {
            let mut b = TimestampNanosecondBuilder::with_capacity(values.len()).with_timezone("UTC");
            b.append_slice(values);
            Arc::new(b.finish()) as ArrayRef
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.text[0].finish()),
            Arc::new(self.text[1].finish()),
            Arc::new(self.text[2].finish()),
            Arc::new(self.modules.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.reasons.finish()),
            Arc::new(self.risk.finish()),
            Arc::new(self.policy.finish()),
            Arc::new(self.decision.finish()),
            Arc::new(self.decision_seq.finish()),
            Arc::new(self.tail[0].finish()),
            Arc::new(self.tail[1].finish()),
            Arc::new(self.tail[2].finish()),
            ts(&self.created),
            ts(&self.updated),
            Arc::new(self.summary.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_error)
    }
}
