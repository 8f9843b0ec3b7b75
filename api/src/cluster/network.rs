//! Raft messages between nodes: the `release_ledger.v1.Raft` gRPC service (each message one
//! openraft request or result, serialised with postcard), on the node's own gRPC port.
//!
//! A node calls its peers with an operator token it mints with the admin key every node of a
//! cluster shares (the access layer admits only operators to these methods), and with a header
//! naming its ledger key and checkpoint origin prefix: a peer with another ledger key or prefix
//! would sign other checkpoints for the same records, so it is refused before any message is read.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use proto::v1 as pb;
use proto::v1::raft_client::RaftClient;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use super::{Member, NodeId, Raft, TypeConfig};

/// The header naming the caller's ledger identity.
pub const IDENTITY_HEADER: &str = "ledger-cluster-identity";
/// The largest Raft message, either way (records are at most a few MiB; AppendEntries carries
/// a bounded number of them).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 256 << 20;
/// How long an operator token minted for peers lives; a new one is minted at half of it.
const TOKEN_TTL: Duration = Duration::from_secs(15 * 60);

/// What a node presents to its peers.
#[derive(Debug)]
pub struct PeerCredentials {
    admin_key: ledger::KeyPair,
    audience: String,
    /// `<ledger key id>/<origin prefix>`.
    pub identity: String,
    token: Mutex<Option<(String, u64)>>,
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl PeerCredentials {
    /// Credentials from the data dir's admin key, for a ledger with `ledger_key_id` and
    /// `origin_prefix`; `tls`: how `https://` peers are verified.
    pub fn new(
        admin_key: ledger::KeyPair,
        ledger_key_id: &str,
        origin_prefix: &str,
        tls: Option<tonic::transport::ClientTlsConfig>,
    ) -> Self {
        Self {
            admin_key,
            audience: origin_prefix.to_owned(),
            identity: format!("{ledger_key_id}/{origin_prefix}"),
            token: Mutex::new(None),
            tls,
        }
    }

    fn token(&self) -> Result<String, String> {
        let now = ledger_wire::token::unix_now();
        let mut cached = self.token.lock();
        if let Some((token, minted)) = cached.as_ref() {
            if now < minted + TOKEN_TTL.as_secs() / 2 {
                return Ok(token.clone());
            }
        }
        let token = ledger_wire::token::mint(
            &self.admin_key,
            ledger_wire::token::ADMIN_SUBJECT,
            None,
            &self.audience,
            TOKEN_TTL,
            now,
        )
        .map_err(|e| e.to_string())?;
        *cached = Some((token.clone(), now));
        Ok(token)
    }
}

/// Makes a connection per peer.
#[derive(Debug, Clone)]
pub struct Network {
    credentials: Arc<PeerCredentials>,
}

impl Network {
    /// The network of a node presenting `credentials`.
    pub fn new(credentials: Arc<PeerCredentials>) -> Self {
        Self { credentials }
    }
}

/// The URL of a member's address (`host:port` is plaintext `http://`).
pub fn url(address: &str) -> String {
    if address.starts_with("http://") || address.starts_with("https://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        let url = url(&node.address);
        let channel = Endpoint::from_shared(url.clone()).map_err(|e| e.to_string()).and_then(|endpoint| {
            let endpoint = endpoint
                .connect_timeout(Duration::from_secs(1))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(Duration::from_secs(5));
            let endpoint = match (&self.credentials.tls, url.starts_with("https://")) {
                (Some(tls), true) => endpoint.tls_config(tls.clone()).map_err(|e| e.to_string())?,
                (None, true) => endpoint
                    .tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                    .map_err(|e| e.to_string())?,
                (_, false) => endpoint,
            };
            Ok(endpoint.connect_lazy())
        });
        Peer { target, url, channel, credentials: self.credentials.clone() }
    }
}

/// A connection to one peer.
#[derive(Debug)]
pub struct Peer {
    target: NodeId,
    url: String,
    channel: Result<Channel, String>,
    credentials: Arc<PeerCredentials>,
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| format!("encoding a Raft message: {e}"))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("decoding a Raft message: {e}"))
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Failure(String);

/// The method of the `Raft` service a message goes to.
#[derive(Debug, Clone, Copy)]
enum Method {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let network = |reason: String| RPCError::Network(NetworkError::new(&Failure(reason)));
        let channel = self.channel.clone().map_err(|e| network(format!("peer {} ({}): {e}", self.target, self.url)))?;
        let payload = encode(request).map_err(network)?;
        let mut grpc = Request::new(pb::RaftMessage { payload });
        grpc.set_timeout(option.hard_ttl());
        let token = self.credentials.token().map_err(network)?;
        let metadata = grpc.metadata_mut();
        metadata.insert(
            "authorization",
            format!("Bearer {token}").parse().map_err(|_| network("the peer token is not ASCII".into()))?,
        );
        metadata.insert(
            IDENTITY_HEADER,
            self.credentials.identity.parse().map_err(|_| network("the ledger identity is not ASCII".into()))?,
        );
        let mut client = RaftClient::new(channel)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        let answer = match method {
            Method::AppendEntries => client.append_entries(grpc).await,
            Method::Vote => client.vote(grpc).await,
            Method::InstallSnapshot => client.install_snapshot(grpc).await,
        };
        let answer = match answer {
            Ok(answer) => answer.into_inner(),
            Err(status) if status.code() == tonic::Code::Unavailable => {
                return Err(RPCError::Unreachable(Unreachable::new(&Failure(format!(
                    "peer {} ({}): {}",
                    self.target,
                    self.url,
                    status.message()
                )))))
            }
            Err(status) => {
                return Err(network(format!(
                    "peer {} ({}) answered {:?}: {}",
                    self.target,
                    self.url,
                    status.code(),
                    status.message()
                )))
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> = decode(&answer.payload).map_err(network)?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(Method::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(Method::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// The `Raft` gRPC service of a node.
#[derive(Clone)]
pub struct RaftService {
    raft: Raft,
    identity: String,
    /// When a refused peer was last logged (seconds since the epoch): at most one line per
    /// [`REFUSAL_LOG_SECONDS`], as a misconfigured peer retries at every heartbeat.
    last_refusal_logged: Arc<std::sync::atomic::AtomicU64>,
}

/// How often a refused peer is logged, at most.
const REFUSAL_LOG_SECONDS: u64 = 10;

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl RaftService {
    /// The service of `raft`, for peers presenting `identity`.
    pub fn new(raft: Raft, identity: String) -> Self {
        Self { raft, identity, last_refusal_logged: Arc::default() }
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let theirs = request.metadata().get(IDENTITY_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
        if theirs != self.identity {
            let reason = format!(
                "a Raft message from a node of another ledger: it presents {theirs:?}, this node is {:?} (ledger key \
                 id/origin prefix); every node of a cluster needs the same keys/ and --origin-prefix",
                self.identity
            );
            let now = ledger_wire::token::unix_now();
            let last = self.last_refusal_logged.load(std::sync::atomic::Ordering::Relaxed);
            if now >= last + REFUSAL_LOG_SECONDS
                && self
                    .last_refusal_logged
                    .compare_exchange(
                        last,
                        now,
                        std::sync::atomic::Ordering::Relaxed,
                        std::sync::atomic::Ordering::Relaxed,
                    )
                    .is_ok()
            {
                tracing::warn!(%reason, "refused a Raft message");
            }
            return Err(Status::failed_precondition(reason));
        }
        Ok(())
    }
}

fn reply<T: Serialize>(value: &T) -> Result<Response<pb::RaftMessage>, Status> {
    Ok(Response::new(pb::RaftMessage { payload: encode(value).map_err(Status::internal)? }))
}

#[tonic::async_trait]
impl pb::raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&request.into_inner().payload).map_err(Status::invalid_argument)?;
        reply(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().payload).map_err(Status::invalid_argument)?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        self.check(&request)?;
        let rpc: InstallSnapshotRequest<TypeConfig> =
            decode(&request.into_inner().payload).map_err(Status::invalid_argument)?;
        reply(&self.raft.install_snapshot(rpc).await)
    }
}
