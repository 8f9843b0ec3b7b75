//! The gRPC services in process: a real `Ledger`, the real services, a real tonic server on a
//! loopback port and a tonic client, for what the spawned binary cannot set up (queue limits,
//! storage faults) or where timing must be controlled exactly.

#![allow(clippy::unwrap_used)]

mod status_codes;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;

use api::metrics::Metrics;
use api::service::LedgerService;
use ledger::{Config, Ledger};
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use proto::v1::ledger_server::LedgerServer;
use testkit::{temp_ledger_with, Agent, TestLedger};
use tonic::transport::Channel;

const TENANT: &str = "codes";

/// Serves `ledger` over gRPC on a loopback port until the runtime ends; the sender ends live
/// streams (the server's shutdown signal).
async fn serve(ledger: Arc<Ledger>) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The harness's clients read as an operator (the admin key's token), through the real
    // access layer.
    let admin = ledger::KeyPair::load(&ledger.data_dir().join("keys/admin.pem")).unwrap();
    // The server reads the ledger's (manual) clock: mint at its time.
    let now = ledger.config().clock.now_ns() / 1_000_000_000;
    let token = ledger_wire::token::mint(
        &admin,
        "admin",
        None,
        ledger.origin_prefix(),
        std::time::Duration::from_secs(600),
        now,
    )
    .unwrap();
    *TOKEN.lock().unwrap() = Some(token);
    let access = api::access::AccessLayer::new(ledger.clone(), api::access::AccessPolicy::default(), None);
    let service = LedgerService::new(ledger, Metrics::new(), stopped);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(access)
            .add_service(LedgerServer::new(service))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (address, stop)
}

/// The operator token of the server this process serves.
static TOKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

type Authed = tonic::service::interceptor::InterceptedService<
    Channel,
    fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
>;

fn bearer(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    if let Some(token) = TOKEN.lock().unwrap().as_ref() {
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    Ok(request)
}

async fn client(address: SocketAddr) -> LedgerClient<Authed> {
    let channel = Channel::from_shared(format!("http://{address}")).unwrap().connect().await.unwrap();
    LedgerClient::with_interceptor(channel, bearer as fn(_) -> _)
}

/// An append request of a `TestsPassed` event by `agent` with `event_id`.
fn request(agent: &Agent, event_id: &str) -> pb::AppendRequest {
    let event = agent.event_with_id("s", event_id, 16);
    pb::AppendRequest {
        event: Some(pb::AppendEvent {
            envelope: Some(api::convert::envelope_to_pb(&event.envelope)),
            expected_version: None,
        }),
    }
}

/// A ledger with `config`, its agent, and the data dir (kept alive by the returned value).
fn ledger_with(config: Config) -> (Arc<Ledger>, Agent, tempfile::TempDir) {
    let t = temp_ledger_with(config);
    let agent = t.agent(TENANT, "qa", &["QA"], &[]);
    let TestLedger { ledger, dir, .. } = t;
    (Arc::new(ledger), agent, dir)
}
