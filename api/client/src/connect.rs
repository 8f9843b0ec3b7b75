//! The connection: channels, the traced transport, the clients, and how a gRPC status reads.

use anyhow::Context as _;
use proto::v1::ledger_client::LedgerClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::propagation::OutgoingContext;

/// A gRPC status the server answered with: a refusal, a conflict, a missing entry, or (code
/// `UNAVAILABLE` / `DEADLINE_EXCEEDED`) no usable answer at all. It reads as [`status_line`];
/// the CLI's exit code is chosen from [`Refused::code`].
#[derive(Debug, thiserror::Error)]
#[error("{line}")]
pub struct Refused {
    status: tonic::Status,
    line: String,
}

impl Refused {
    /// The status, read as [`status_line`].
    pub fn new(status: tonic::Status) -> Self {
        let line = status_line(&status);
        Self { status, line }
    }

    /// The status, read as [`status_line`] followed by `note`.
    pub fn with_note(status: tonic::Status, note: &str) -> Self {
        let line = format!("{}: {note}", status_line(&status));
        Self { status, line }
    }

    /// The status code.
    pub fn code(&self) -> tonic::Code {
        self.status.code()
    }

    /// The status.
    pub fn status(&self) -> &tonic::Status {
        &self.status
    }
}

/// A failed call as an error (a [`Refused`]).
pub fn refused(status: tonic::Status) -> anyhow::Error {
    anyhow::Error::new(Refused::new(status))
}

/// A channel whose requests carry the caller's trace context and baggage (the `TRACEPARENT`,
/// `TRACESTATE` and `BAGGAGE` environment variables, see [`OutgoingContext`]): every client
/// made by [`ledger_client`], [`query_client`] and [`crate::export::flight_client`] uses one.
pub type Transport = InterceptedService<Channel, OutgoingContext>;

/// A connected client.
pub type Client = LedgerClient<Transport>;

/// A connected client of the governance queries (`release_ledger.v1.Query`).
pub type QueryClient = proto::v1::query_client::QueryClient<Transport>;

/// Opens a channel to `server` (for example `http://127.0.0.1:50051`).
pub async fn channel(server: &str) -> anyhow::Result<Channel> {
    let endpoint = Channel::from_shared(server.to_owned()).with_context(|| format!("bad server URL {server:?}"))?;
    crate::auth::with_tls(endpoint, server)?.connect().await.with_context(|| format!("cannot connect to {server}"))
}

/// Connects to `server` (for example `http://127.0.0.1:50051`).
pub async fn connect(server: &str, max_message_bytes: usize) -> anyhow::Result<Client> {
    Ok(ledger_client(channel(server).await?, max_message_bytes))
}

/// A ledger client over an open channel.
pub fn ledger_client(channel: Channel, max_message_bytes: usize) -> Client {
    LedgerClient::new(traced(channel))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// A query client over an open channel.
pub fn query_client(channel: Channel, max_message_bytes: usize) -> QueryClient {
    QueryClient::new(traced(channel))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// `channel` with the environment's trace context on every request.
pub fn traced(channel: Channel) -> Transport {
    InterceptedService::new(channel, OutgoingContext::from_env())
}

/// Connects a query client to `server`.
pub async fn connect_query(server: &str, max_message_bytes: usize) -> anyhow::Result<QueryClient> {
    Ok(query_client(channel(server).await?, max_message_bytes))
}

/// A gRPC error as one line: the code (as tonic spells it, then its canonical gRPC name, the
/// one the README's error table uses) and the server's message.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{:?} ({}): {}", status.code(), canonical_code(status.code()), status.message())
}

/// A failed query as an error; `UNIMPLEMENTED` says the server has no Query service.
pub fn query_error(status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::Unimplemented {
        anyhow::Error::new(Refused::with_note(status, "the server does not serve the governance Query service"))
    } else {
        refused(status)
    }
}

pub use ledger_wire::canonical_code;
