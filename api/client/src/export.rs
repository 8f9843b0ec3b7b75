//! The Arrow Flight export client: `DoGet` into an Arrow IPC or Parquet file that verifies on
//! its own. The server half is the `api` crate's `flight` module.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use arrow::array::RecordBatch;
use arrow_flight::decode::DecodedPayload;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::FlightClient;
use futures::StreamExt as _;
use ledger_tools::{ExportMeta, ExportWriter, Format, Table};
use ledger_wire::{FlightTicket, DEFAULT_MAX_MESSAGE_BYTES};
use tokio::sync::mpsc;
use tonic::transport::Channel;

use crate::connect::{Refused, Transport};
use crate::verify::VerifyError;

/// Where an export reports how far it got (a progress bar, or nothing).
pub trait ExportProgress: Send + Sync {
    /// The rows the export will have, when known up front.
    fn set_length(&self, rows: u64);
    /// `rows` more rows were written.
    fn inc(&self, rows: u64);
}

/// No progress reporting.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ExportProgress for NoProgress {
    fn set_length(&self, _rows: u64) {}
    fn inc(&self, _rows: u64) {}
}

/// Largest message the export client accepts. The server aims at 2 MiB per message, but it
/// never splits a row, and a server may accept payloads larger than that.
pub const CLIENT_MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// What [`export_to_file`] wrote.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The file's metadata (as the server sent it).
    pub meta: ExportMeta,
    /// The file's format.
    pub format: Format,
    /// The file.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// The file's size.
    pub bytes: u64,
}

/// A Flight client over `channel` with the export's message limits.
pub fn flight_client(channel: Channel) -> FlightClient<Transport> {
    let inner = FlightServiceClient::new(crate::connect::traced(channel))
        .max_decoding_message_size(CLIENT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(DEFAULT_MAX_MESSAGE_BYTES);
    FlightClient::new_from_inner(inner)
}

/// A Flight error as one line; a gRPC status reads as everywhere else in the CLI.
fn flight_error(error: FlightError) -> anyhow::Error {
    match error {
        FlightError::Tonic(status) => anyhow::Error::new(Refused::new(*status)),
        other => VerifyError::Export(format!("the export stream is malformed: {other}")).into(),
    }
}

/// What the file writer thread is told.
enum ToWriter {
    Batch(RecordBatch),
    /// Every batch has arrived: complete the file.
    Finish,
}

/// Fetches the export `ticket` names with `DoGet` and writes it to `path` in `format`.
///
/// The file's metadata is the one the server put on the schema (keys, signed checkpoint,
/// resume point); a stream without it, with other columns, or with another table, tenant or
/// range than asked is refused. The file is written as `path.partial` on a blocking thread,
/// one batch behind the network, and renamed into place only once every row has arrived: on
/// any error nothing is left at `path` or `path.partial`. `progress` gets the row count (its
/// length, when known up front) and each batch's rows.
pub async fn export_to_file(
    client: &mut FlightClient<Transport>,
    ticket: &FlightTicket,
    format: Format,
    path: &Path,
    progress: Arc<dyn ExportProgress>,
) -> anyhow::Result<Exported> {
    let request = ticket.to_ticket().context("encoding the ticket")?;
    let mut stream = client.do_get(request).await.map_err(flight_error)?.into_inner();
    // The schema comes first, with the metadata that makes the file verifiable on its own.
    let schema = loop {
        match stream.next().await {
            None => {
                return Err(VerifyError::Export("the server ended the export without sending its schema".into()).into())
            }
            Some(message) => match message.map_err(flight_error)?.payload {
                DecodedPayload::Schema(schema) => break schema,
                DecodedPayload::None => continue,
                DecodedPayload::RecordBatch(_) => {
                    return Err(VerifyError::Export("the server sent rows before the schema".into()).into())
                }
            },
        }
    };
    let metadata: std::collections::HashMap<String, String> = schema.metadata().into();
    let meta = ExportMeta::from_map(&metadata).map_err(|e| {
        VerifyError::Export(format!(
            "the server sent no usable export metadata ({e}); refusing to write a file that cannot be verified"
        ))
    })?;
    check_meta(&meta, ticket)?;
    ledger_tools::rows::check_columns(meta.table, &schema).map_err(|e| {
        VerifyError::Export(format!("the server's columns are not those of the {} table: {e}", meta.table))
    })?;
    let expected_rows = (meta.table == Table::Entries).then(|| meta.to_seq - meta.from_seq);
    if let Some(rows) = expected_rows {
        progress.set_length(rows);
    }

    let (tx, mut rx) = mpsc::channel::<ToWriter>(1);
    let (writer_path, writer_meta, bar) = (path.to_owned(), meta.clone(), progress);
    let writer = tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, u64)> {
        let mut file = ExportWriter::create(&writer_path, format, &writer_meta)
            .with_context(|| format!("creating {}", writer_path.display()))?;
        loop {
            match rx.blocking_recv() {
                Some(ToWriter::Batch(batch)) => {
                    if let Err(e) = file.write(&batch) {
                        file.abort();
                        return Err(anyhow!(e).context(format!("writing {}", writer_path.display())));
                    }
                    bar.inc(batch.num_rows() as u64);
                }
                Some(ToWriter::Finish) => {
                    let rows = file.rows();
                    return match file.finish() {
                        Ok(bytes) => Ok((rows, bytes)),
                        Err(e) => {
                            // `finish` consumed the writer: remove what it may have left.
                            let _ = std::fs::remove_file(partial_path(&writer_path));
                            Err(anyhow!(e).context(format!("completing {}", writer_path.display())))
                        }
                    };
                }
                // The receiving side failed and said so; it reports why.
                None => {
                    file.abort();
                    bail!("the export was abandoned");
                }
            }
        }
    });

    let received = receive(&mut stream, &tx, expected_rows).await;
    if received.is_ok() {
        // A failed send means the writer has stopped; its own error is the one to report.
        let _ = tx.send(ToWriter::Finish).await;
    }
    drop(tx);
    // Always wait for the writer, so that on every path the partial file is gone on return.
    let written = writer.await;
    received?;
    let (rows, bytes) = match written {
        Ok(result) => result?,
        Err(e) => {
            let _ = std::fs::remove_file(partial_path(path));
            bail!("the file writer failed: {e}");
        }
    };
    Ok(Exported { meta, format, path: path.to_owned(), rows, bytes })
}

/// Hands the stream's batches to the writer; checks that every expected row arrived.
async fn receive(
    stream: &mut arrow_flight::decode::FlightDataDecoder,
    tx: &mpsc::Sender<ToWriter>,
    expected_rows: Option<u64>,
) -> anyhow::Result<()> {
    let mut rows = 0u64;
    while let Some(message) = stream.next().await {
        match message.map_err(flight_error)?.payload {
            DecodedPayload::RecordBatch(batch) => {
                rows += batch.num_rows() as u64;
                if tx.send(ToWriter::Batch(batch)).await.is_err() {
                    return Ok(()); // The writer stopped; it reports why.
                }
            }
            DecodedPayload::Schema(_) => {
                return Err(
                    VerifyError::Export("the server sent a second schema in the middle of the export".into()).into()
                )
            }
            DecodedPayload::None => {}
        }
    }
    match expected_rows {
        Some(expected) if rows != expected => {
            Err(VerifyError::Export(format!("the export ended after {rows} of its {expected} rows")).into())
        }
        _ => Ok(()),
    }
}

/// Where [`ExportWriter`] writes `path` until it is complete.
fn partial_path(path: &Path) -> PathBuf {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    PathBuf::from(partial)
}

/// Refuses a stream that is not the export the ticket asked for.
fn check_meta(meta: &ExportMeta, ticket: &FlightTicket) -> anyhow::Result<()> {
    if meta.table != ticket.table || meta.tenant != ticket.tenant {
        return Err(VerifyError::Export(format!(
            "the server sent the {} table of tenant {:?}, not the {} table of tenant {:?}",
            meta.table, meta.tenant, ticket.table, ticket.tenant
        ))
        .into());
    }
    if ticket.table == Table::Entries {
        let from_differs = meta.from_seq != ticket.from.unwrap_or(0);
        if from_differs || ticket.to.is_some_and(|to| to != meta.to_seq) {
            return Err(VerifyError::Export(format!(
                "the server sent seqs {}..{}, not the range asked for",
                meta.from_seq, meta.to_seq
            ))
            .into());
        }
    }
    Ok(())
}
