//! Arrow Flight (`arrow.flight.protocol.FlightService`): the export tables of
//! [`ledger_tools`] served on the same gRPC port as `Ledger` and `Query`, so any Flight client
//! (pyarrow, DuckDB, `release-ledger export`) can pull a tenant's log or governance
//! projections as Arrow record batches.
//!
//! - **Ticket**: JSON of a [`FlightTicket`], e.g. `{"tenant":"T","table":"entries","from":0,"to":123}`
//!   (`from`/`to` optional, defaulting to the whole log; projections ignore them and are
//!   exported as of the position the governance worker has folded up to). A descriptor for
//!   `GetFlightInfo` / `GetSchema` is either `FlightDescriptor::new_cmd(<the same JSON>)` or
//!   the PATH `[tenant, table]` (`FlightDescriptor::new_path(vec!["T", "entries"])`: the whole
//!   table as of the request; the `FlightInfo`'s ticket pins the range).
//! - **`ListFlights`**: one `FlightInfo` per tenant × table (criteria: empty for every tenant,
//!   or a tenant id for one), each with its schema, descriptor and a ticket pinned to the
//!   current log size. It describes the projections too, so it waits for them to load.
//! - **`GetFlightInfo`** / **`GetSchema`**: the export's schema, ticket (the range resolved
//!   against the log) and row count (entries; `-1` for projections).
//! - **`DoGet`**: the batches. The first message is the schema **with its metadata** — the
//!   ledger and admin keys, the signed checkpoint covering the rows and, for a range after seq
//!   0, the resume point — so what a client writes out verifies on its own with `ledger-audit`.
//!
//! Entries are read lazily, one batch of [`ledger_tools::rows::BATCH_ROWS`] rows per blocking
//! call, through a channel holding one batch: an export's memory is bounded by a few batches
//! whatever the range, and a slow client back-pressures only its own stream. Batches are
//! split into messages of at most half the server's message limit (and at most the Flight
//! default of 2 MiB), so stock clients with a 4 MiB limit can read them. The service is
//! read-only: `Handshake`, `DoPut`, `DoExchange`, `DoAction`, `ListActions` and
//! `PollFlightInfo` answer `UNIMPLEMENTED`.
//!
//! The client side (`release-ledger export`) is `ledger_client::export::export_to_file`: it
//! fetches a ticket with `DoGet` and writes the stream to an Arrow IPC or Parquet file, taking
//! the file's metadata from the schema the server sent, and leaves no file at all (nor a
//! `.partial` one) when anything fails. The ticket type both sides share is
//! [`FlightTicket`] (from `ledger-wire`).
//!
//! Errors use the same codes as the other services: an invalid ticket is `INVALID_ARGUMENT`,
//! an unknown tenant `NOT_FOUND`, a range beyond the log `OUT_OF_RANGE`, corruption found while
//! reading `DATA_LOSS`, projections that have not loaded yet `UNAVAILABLE`, and a projection
//! store that fails to read `INTERNAL` (the query service's mapping, `query::governor_status`).

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::{FlightDataEncoderBuilder, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES};
use arrow_flight::error::FlightError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, SchemaAsIpc, SchemaResult, Ticket,
};
use futures::{Stream, TryStreamExt as _};
use ledger::Ledger;
use ledger_tools::export::{self, ExportError};
use ledger_tools::rows::BATCH_ROWS;
use ledger_tools::{ExportMeta, Table};
use projections::{Governor, TenantState};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument as _;

pub use ledger_wire::{ticket_from_path, FlightTicket};

use crate::status::{check_tenant, in_rpc_span, read_status};

/// The gRPC service name of Arrow Flight.
pub const SERVICE_NAME: &str = "arrow.flight.protocol.FlightService";
/// Record batches of entries read ahead of the client, besides the one being encoded.
const READ_AHEAD: usize = 1;
/// `FlightInfo`s of `ListFlights` buffered ahead of the client.
const LIST_BUFFER: usize = 16;

/// The Arrow Flight export service (see the module documentation).
#[derive(Debug, Clone)]
pub struct FlightExportService {
    ledger: Arc<Ledger>,
    governor: Arc<Governor>,
    max_flight_data_bytes: usize,
}

/// An export described: its metadata, the ticket that fetches exactly it, and its row count
/// (`-1` when unknown before it is produced).
#[derive(Debug)]
struct Described {
    meta: ExportMeta,
    ticket: FlightTicket,
    total_records: i64,
}

type BoxedStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl FlightExportService {
    /// A service over the log `ledger` and the projections `governor` folds from it;
    /// `max_message_bytes` is the server's largest gRPC message (batches are split to stay well
    /// within it).
    pub fn new(ledger: Arc<Ledger>, governor: Arc<Governor>, max_message_bytes: usize) -> Self {
        // Half the limit: the encoder's split is approximate (buffer sizes, plus one row of
        // overshoot and the IPC framing).
        let max_flight_data_bytes = (max_message_bytes / 2).clamp(1, GRPC_TARGET_MAX_FLIGHT_SIZE_BYTES);
        Self { ledger, governor, max_flight_data_bytes }
    }

    /// Runs `work` on the blocking pool (every ledger and projection read goes there).
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Ledger, &Governor) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let (ledger, governor) = (self.ledger.clone(), self.governor.clone());
        tokio::task::spawn_blocking(move || work(&ledger, &governor))
            .await
            .map_err(|e| Status::internal(format!("export task failed: {e}")))?
    }

    /// Describes the export a ticket asks for (range resolved, metadata signed).
    async fn describe(&self, ticket: FlightTicket) -> Result<Described, Status> {
        check_tenant(&ticket.tenant)?;
        if ticket.table != Table::Entries {
            crate::query::projections_loaded(&self.governor).await?;
        }
        self.blocking(move |ledger, governor| describe(ledger, governor, ticket)).await
    }

    /// The batches of an `entries` export, read one batch per blocking call by a task that
    /// stays at most [`READ_AHEAD`] batches ahead of the encoder; it stops when the client
    /// goes away.
    fn entry_stream(
        &self,
        tenant: String,
        schema: SchemaRef,
        from: u64,
        to: u64,
    ) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let ledger = self.ledger.clone();
        tokio::spawn(
            async move {
                let mut next = from;
                while next < to {
                    let end = next.saturating_add(BATCH_ROWS as u64).min(to);
                    let (reader, t, s) = (ledger.clone(), tenant.clone(), schema.clone());
                    let batch = tokio::task::spawn_blocking(move || {
                        match export::entry_batches(&reader, &t, s, next, end).next() {
                            Some(batch) => batch.map_err(|e| export_status(&e)),
                            None => Err(Status::internal(format!("no batch was read for seqs {next}..{end}"))),
                        }
                    })
                    .await
                    .unwrap_or_else(|e| Err(Status::internal(format!("export read task failed: {e}"))));
                    let batch = batch.map_err(|status| {
                        tracing::warn!(code = ?status.code(), reason = status.message(), seq = next, "export failed");
                        FlightError::Tonic(Box::new(status))
                    });
                    let failed = batch.is_err();
                    if tx.send(batch).await.is_err() {
                        tracing::info!(next, "export cancelled by the client");
                        return;
                    }
                    if failed {
                        return;
                    }
                    next = end;
                }
                tracing::debug!(rows = to - from, "export read");
            }
            .in_current_span(),
        );
        ReceiverStream::new(rx)
    }

    /// `FlightData` of `batches` under `schema` (sent first, metadata and all).
    fn encode(
        &self,
        schema: SchemaRef,
        batches: impl Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
    ) -> BoxedStream<FlightData> {
        let encoder = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .with_max_flight_data_size(self.max_flight_data_bytes)
            .build(batches);
        Box::pin(encoder.map_err(flight_status))
    }
}

/// Describes a ticket's export (blocking: reads the log and the projections).
fn describe(ledger: &Ledger, governor: &Governor, ticket: FlightTicket) -> Result<Described, Status> {
    let tenant = ticket.tenant.clone();
    if ticket.table == Table::Entries {
        let (from, to) = resolve(ledger, &ticket)?;
        let meta = export::export_meta(ledger, &tenant, Table::Entries, from, to).map_err(|e| export_status(&e))?;
        let ticket = FlightTicket { from: Some(from), to: Some(to), ..ticket };
        let total_records = i64::try_from(to - from).unwrap_or(i64::MAX);
        return Ok(Described { meta, ticket, total_records });
    }
    let position = match governor.with_tenant(&tenant, |state| state.meta.position) {
        Some(position) => position,
        None => {
            // The worker has not reached this tenant yet (or it does not exist).
            ledger.head(&tenant).map_err(|e| read_status(&e))?;
            0
        }
    };
    let meta = export::export_meta(ledger, &tenant, ticket.table, 0, position).map_err(|e| export_status(&e))?;
    Ok(Described { meta, ticket: FlightTicket::new(tenant, ticket.table), total_records: -1 })
}

/// The range of an `entries` ticket against the log: `NOT_FOUND` for an unknown tenant,
/// `OUT_OF_RANGE` past the end of the log, `INVALID_ARGUMENT` when reversed.
fn resolve(ledger: &Ledger, ticket: &FlightTicket) -> Result<(u64, u64), Status> {
    let size = ledger.head(&ticket.tenant).map_err(|e| read_status(&e))?.size;
    export::resolve_range(ledger, &ticket.tenant, ticket.from, ticket.to).map_err(|e| match e {
        // The log only grows, so a `to` beyond the size read above is beyond it still.
        ExportError::Range(message) if ticket.to.is_some_and(|to| to > size) => Status::out_of_range(message),
        ExportError::Range(message) => Status::invalid_argument(message),
        other => export_status(&other),
    })
}

/// A projection export of a tenant (blocking), from a snapshot of its state taken under the
/// worker's read lock (releases read back from the projection store included), so the rows
/// and the position they describe are one consistent state.
fn export_projection(
    ledger: &Ledger,
    governor: &Governor,
    tenant: &str,
    table: Table,
) -> Result<(ExportMeta, Vec<RecordBatch>), Status> {
    let snapshot = governor.snapshot(tenant).map_err(|e| crate::query::governor_status(&e))?;
    let exported = match snapshot {
        Some(state) => export::projection_export(ledger, table, &state),
        None => {
            ledger.head(tenant).map_err(|e| read_status(&e))?;
            export::projection_export(ledger, table, &TenantState::new(tenant))
        }
    };
    exported.map_err(|e| export_status(&e))
}

/// The gRPC status of an export failure.
fn export_status(error: &ExportError) -> Status {
    match error {
        ExportError::Read(read) => read_status(read),
        ExportError::Row(row) => Status::internal(format!("encoding the export's rows: {row}")),
        ExportError::Range(message) => Status::invalid_argument(message.clone()),
    }
}

/// A Flight encoding failure as a status (a status passes through unchanged).
fn flight_status(error: FlightError) -> Status {
    match error {
        FlightError::Tonic(status) => *status,
        other => Status::internal(format!("encoding the export: {other}")),
    }
}

fn ticket_from_bytes(bytes: &[u8]) -> Result<FlightTicket, Status> {
    FlightTicket::from_json(bytes).map_err(Status::invalid_argument)
}

/// The ticket a `GetFlightInfo` / `GetSchema` descriptor names: a CMD descriptor holds the
/// ticket JSON; a PATH descriptor is `[tenant, table]` (the whole table, as of the request).
fn ticket_from_descriptor(descriptor: &FlightDescriptor) -> Result<FlightTicket, Status> {
    match DescriptorType::try_from(descriptor.r#type) {
        Ok(DescriptorType::Cmd) => ticket_from_bytes(&descriptor.cmd),
        Ok(DescriptorType::Path) => ticket_from_path(&descriptor.path).map_err(Status::invalid_argument),
        _ => Err(Status::invalid_argument(format!(
            "the descriptor must be a PATH descriptor [tenant, table] or a CMD descriptor holding the ticket JSON, \
             e.g. {{\"tenant\": \"T\", \"table\": \"entries\"}} (type {} is neither)",
            descriptor.r#type
        ))),
    }
}

fn json_status(error: serde_json::Error) -> Status {
    Status::internal(format!("encoding the ticket: {error}"))
}

/// The schema with its metadata, as a `FlightInfo` / `SchemaResult` carries it.
fn flight_info(described: &Described, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    let ticket = described.ticket.to_ticket().map_err(json_status)?;
    let info = FlightInfo::new()
        .try_with_schema(&described.meta.schema())
        .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?
        .with_descriptor(descriptor)
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_total_records(described.total_records)
        .with_total_bytes(-1)
        .with_ordered(true);
    Ok(info)
}

/// Runs one RPC inside its span and records its gRPC status code there.
async fn traced<T>(
    method: &'static str,
    ticket: Option<&FlightTicket>,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let span = crate::status::rpc_span(SERVICE_NAME, method);
    if let Some(ticket) = ticket {
        span.record("tenant", ticket.tenant.as_str());
        span.record("table", ticket.table.as_str());
    }
    let result = in_rpc_span(&span, work).await;
    if let Err(status) = &result {
        span.in_scope(|| tracing::debug!(code = ?status.code(), reason = status.message(), "flight request failed"));
    }
    result
}

/// A seq as a span field: OpenTelemetry has no unsigned integers (a u64 would be exported as
/// text).
fn otel_int(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn unimplemented(method: &str, why: &str) -> Status {
    Status::unimplemented(format!("{method} is not supported by the Release Ledger export service: {why}"))
}

#[tonic::async_trait]
impl FlightService for FlightExportService {
    type HandshakeStream = BoxedStream<HandshakeResponse>;
    type ListFlightsStream = BoxedStream<FlightInfo>;
    type DoGetStream = BoxedStream<FlightData>;
    type DoPutStream = BoxedStream<PutResult>;
    type DoExchangeStream = BoxedStream<FlightData>;
    type DoActionStream = BoxedStream<arrow_flight::Result>;
    type ListActionsStream = BoxedStream<ActionType>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(unimplemented("Handshake", "no handshake is needed; call DoGet, GetFlightInfo or ListFlights directly"))
    }

    async fn list_flights(&self, request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        traced("ListFlights", None, async move {
            let (_, extensions, criteria) = request.into_parts();
            let expression = criteria.expression;
            let tenants = if expression.is_empty() {
                // Every tenant: enumeration is for operators.
                crate::access::require_operator(&extensions)?;
                self.blocking(|ledger, _| Ok(ledger.tenants())).await?
            } else {
                let tenant = std::str::from_utf8(&expression)
                    .map_err(|_| Status::invalid_argument("criteria: give a tenant id, or nothing for every tenant"))?
                    .to_owned();
                crate::access::check(&extensions, &tenant)?;
                check_tenant(&tenant)?;
                tracing::Span::current().record("tenant", tenant.as_str());
                let t = tenant.clone();
                self.blocking(move |ledger, _| ledger.head(&t).map_err(|e| read_status(&e))).await?;
                vec![tenant]
            };
            // The projection tables are described at the worker's position.
            crate::query::projections_loaded(&self.governor).await?;
            let (tx, rx) = mpsc::channel(LIST_BUFFER);
            let (ledger, governor) = (self.ledger.clone(), self.governor.clone());
            tokio::spawn(
                async move {
                    for tenant in tenants {
                        let (l, g) = (ledger.clone(), governor.clone());
                        let infos = tokio::task::spawn_blocking(move || {
                            Table::ALL
                                .into_iter()
                                .map(|table| {
                                    let described = describe(&l, &g, FlightTicket::new(tenant.clone(), table))?;
                                    let descriptor = described.ticket.to_descriptor().map_err(json_status)?;
                                    flight_info(&described, descriptor)
                                })
                                .collect::<Result<Vec<_>, Status>>()
                        })
                        .await
                        .unwrap_or_else(|e| Err(Status::internal(format!("export task failed: {e}"))));
                        let (infos, failed) = match infos {
                            Ok(infos) => (infos.into_iter().map(Ok).collect(), false),
                            Err(status) => (vec![Err(status)], true),
                        };
                        for info in infos {
                            if tx.send(info).await.is_err() {
                                return; // The client went away.
                            }
                        }
                        if failed {
                            return;
                        }
                    }
                }
                .in_current_span(),
            );
            Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as Self::ListFlightsStream))
        })
        .await
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let (_, extensions, descriptor) = request.into_parts();
        let ticket = ticket_from_descriptor(&descriptor);
        if let Ok(ticket) = &ticket {
            crate::access::check(&extensions, &ticket.tenant)?;
        }
        let fields = ticket.as_ref().ok().cloned();
        traced("GetFlightInfo", fields.as_ref(), async move {
            let described = self.describe(ticket?).await?;
            Ok(Response::new(flight_info(&described, descriptor)?))
        })
        .await
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(unimplemented("PollFlightInfo", "exports are not long-running queries; call GetFlightInfo"))
    }

    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let ticket = ticket_from_descriptor(request.get_ref());
        if let Ok(ticket) = &ticket {
            crate::access::tenant(&request, &ticket.tenant)?;
        }
        let fields = ticket.as_ref().ok().cloned();
        traced("GetSchema", fields.as_ref(), async move {
            let described = self.describe(ticket?).await?;
            let schema = described.meta.schema();
            let result = SchemaResult::try_from(SchemaAsIpc::new(&schema, &IpcWriteOptions::default()))
                .map_err(|e| Status::internal(format!("encoding the schema: {e}")))?;
            Ok(Response::new(result))
        })
        .await
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = ticket_from_bytes(&request.get_ref().ticket);
        if let Ok(ticket) = &ticket {
            crate::access::tenant(&request, &ticket.tenant)?;
        }
        let fields = ticket.as_ref().ok().cloned();
        traced("DoGet", fields.as_ref(), async move {
            let ticket = ticket?;
            check_tenant(&ticket.tenant)?;
            let span = tracing::Span::current();
            if ticket.table == Table::Entries {
                let described = self.describe(ticket).await?;
                let (from, to) = (described.meta.from_seq, described.meta.to_seq);
                span.record("fromSeq", otel_int(from));
                span.record("toSeq", otel_int(to));
                let schema = described.meta.schema();
                let batches = self.entry_stream(described.ticket.tenant, schema.clone(), from, to);
                return Ok(Response::new(self.encode(schema, batches)));
            }
            crate::query::projections_loaded(&self.governor).await?;
            let (tenant, table) = (ticket.tenant, ticket.table);
            let (meta, batches) =
                self.blocking(move |ledger, governor| export_projection(ledger, governor, &tenant, table)).await?;
            span.record("toSeq", otel_int(meta.to_seq));
            let schema = meta.schema();
            Ok(Response::new(self.encode(schema, futures::stream::iter(batches.into_iter().map(Ok)))))
        })
        .await
    }

    async fn do_put(&self, _request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        Err(unimplemented("DoPut", "exports are read-only; append events through release_ledger.v1.Ledger"))
    }

    async fn do_exchange(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(unimplemented("DoExchange", "exports are read-only; fetch them with DoGet"))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(unimplemented("DoAction", "the service has no actions"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Err(unimplemented("ListActions", "the service has no actions"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tickets_are_the_documented_json() {
        let ticket = FlightTicket { tenant: "T".into(), table: Table::Entries, from: Some(0), to: Some(123) };
        assert_eq!(
            String::from_utf8(ticket.to_json().unwrap()).unwrap(),
            r#"{"tenant":"T","table":"entries","from":0,"to":123}"#
        );
        let whole = FlightTicket::new("T", Table::Risk);
        assert_eq!(String::from_utf8(whole.to_json().unwrap()).unwrap(), r#"{"tenant":"T","table":"risk"}"#);
        assert_eq!(FlightTicket::from_json(br#"{"table":"risk","tenant":"T"}"#).unwrap(), whole);
        for bad in [
            &br#"{"tenant":"T"}"#[..],
            br#"{"tenant":"T","table":"logs"}"#,
            br#"{"tenant":"T","table":"risk","as_of":1}"#,
            b"",
        ] {
            let error = FlightTicket::from_json(bad).unwrap_err();
            assert!(error.starts_with("the ticket is not {\"tenant\""), "{error}");
        }
    }

    #[test]
    fn descriptors_are_commands_or_tenant_table_paths() {
        let ticket = FlightTicket::new("T", Table::Entries);
        assert_eq!(ticket_from_descriptor(&ticket.to_descriptor().unwrap()).unwrap(), ticket);
        for table in Table::ALL {
            let path = FlightDescriptor::new_path(vec!["T".into(), table.as_str().into()]);
            assert_eq!(ticket_from_descriptor(&path).unwrap(), FlightTicket::new("T", table));
        }
        let refused = |path: Vec<&str>| {
            let descriptor = FlightDescriptor::new_path(path.into_iter().map(String::from).collect());
            let status = ticket_from_descriptor(&descriptor).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            status.message().to_owned()
        };
        assert!(refused(vec!["T", "nope"]).contains("unknown table \"nope\""));
        assert!(refused(vec!["T"]).contains("has 1 element(s)"));
        assert!(refused(vec!["T", "entries", "0"]).contains("has 3 element(s)"));
        let unknown = FlightDescriptor { r#type: 0, ..FlightDescriptor::new_cmd(ticket.to_json().unwrap()) };
        assert!(ticket_from_descriptor(&unknown).unwrap_err().message().contains("type 0 is neither"));
    }
}
