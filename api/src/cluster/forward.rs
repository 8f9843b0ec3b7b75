//! Appends sent to a follower are forwarded to the leader: the follower refuses them first
//! (`NotLeader`, nothing stored — the same check every append gets), then sends the request, its
//! signed events unchanged, to the leader it knows, with the caller's bearer token, and answers
//! with the leader's answer. A forwarded request is marked so it is forwarded at most once (a
//! leader that lost its leadership meanwhile answers `UNAVAILABLE` and the client retries).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// The header marking a forwarded append.
pub const FORWARDED_HEADER: &str = "ledger-forwarded-by";
/// The status metadata naming the leader on a `NotLeader` refusal.
pub const LEADER_METADATA: &str = "ledger-leader-address";

/// Channels to the leaders met so far, by address.
#[derive(Debug, Clone)]
pub struct Forwarder {
    node_id: u64,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    tls: Option<tonic::transport::ClientTlsConfig>,
    max_message_bytes: usize,
}

impl Forwarder {
    /// A forwarder of node `node_id`; `tls` verifies `https://` leaders.
    pub fn new(node_id: u64, tls: Option<tonic::transport::ClientTlsConfig>, max_message_bytes: usize) -> Self {
        Self { node_id, channels: Arc::default(), tls, max_message_bytes }
    }

    fn client(&self, address: &str) -> Result<LedgerClient<Channel>, Status> {
        let mut channels = self.channels.lock();
        let channel = match channels.get(address) {
            Some(channel) => channel.clone(),
            None => {
                let url = super::network::url(address);
                let endpoint = Endpoint::from_shared(url.clone())
                    .map_err(|e| Status::internal(format!("leader address {address:?}: {e}")))?
                    .connect_timeout(Duration::from_secs(2))
                    .tcp_nodelay(true);
                let endpoint = if url.starts_with("https://") {
                    let tls = self
                        .tls
                        .clone()
                        .unwrap_or_else(|| tonic::transport::ClientTlsConfig::new().with_native_roots());
                    endpoint.tls_config(tls).map_err(|e| Status::internal(format!("TLS to the leader: {e}")))?
                } else {
                    endpoint
                };
                let channel = endpoint.connect_lazy();
                channels.insert(address.to_owned(), channel.clone());
                channel
            }
        };
        Ok(LedgerClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }

    /// Whether `refusal` (this node's answer to an append) should be forwarded, and where to:
    /// a `NotLeader` naming a leader, for a request not forwarded already.
    pub fn leader_of<'a>(&self, refusal: &'a Status, metadata: &tonic::metadata::MetadataMap) -> Option<&'a str> {
        if metadata.contains_key(FORWARDED_HEADER) {
            return None;
        }
        refusal.metadata().get(LEADER_METADATA).and_then(|v| v.to_str().ok())
    }

    fn request<T>(&self, message: T, metadata: &tonic::metadata::MetadataMap) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        if let Some(token) = metadata.get("authorization") {
            request.metadata_mut().insert("authorization", token.clone());
        }
        for name in ["traceparent", "tracestate", "baggage"] {
            if let Some(value) = metadata.get(name) {
                request.metadata_mut().insert(name, value.clone());
            }
        }
        let by = self.node_id.to_string().parse().map_err(|_| Status::internal("node id header"))?;
        request.metadata_mut().insert(FORWARDED_HEADER, by);
        Ok(request)
    }

    /// Sends an `Append` to the leader at `address`.
    pub async fn append(
        &self,
        address: &str,
        message: pb::AppendRequest,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<pb::AppendResponse, Status> {
        let request = self.request(message, metadata)?;
        self.client(address)?.append(request).await.map(tonic::Response::into_inner).map_err(|s| forwarded(s, address))
    }

    /// Sends an `AppendBatch` to the leader at `address`.
    pub async fn append_batch(
        &self,
        address: &str,
        message: pb::AppendBatchRequest,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<pb::AppendBatchResponse, Status> {
        let request = self.request(message, metadata)?;
        self.client(address)?
            .append_batch(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| forwarded(s, address))
    }
}

/// The leader's answer, or the failure to reach it, saying the append was forwarded; a transport
/// failure is `UNAVAILABLE` (retry: the append may or may not have reached the leader).
fn forwarded(status: Status, address: &str) -> Status {
    let code = match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled => tonic::Code::Unavailable,
        code => code,
    };
    Status::new(code, format!("{} (this node forwarded the append to the leader at {address})", status.message()))
}
