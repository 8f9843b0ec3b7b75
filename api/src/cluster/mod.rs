//! A replicated cluster of ledger nodes (docs/replication.md): openraft for elections, terms,
//! log replication and majority commit; the ledger as its state machine.
//!
//! - The leader's appends ([`ledger::Ledger::append_batch`]) are checked, then handed to the
//!   [`ClusterReplicator`], whose proposer gathers the requests waiting into one
//!   [`GroupRecord`] (with the one time it is recorded at) and proposes it.
//! - openraft replicates the record to every node's Raft log ([`log_store`], fsynced) and
//!   commits it once a majority holds it.
//! - Every node applies committed records in log order with [`ledger::Ledger::apply_record`]
//!   ([`state_machine`]): the whole append pipeline, so each node re-verifies everything it
//!   stores, and signs its own (identical) checkpoints. Nothing is signed or acknowledged
//!   before commit, so a deposed leader cannot acknowledge or sign what the new leader's history
//!   lacks.
//! - The leader answers each request with what applying the record answered it.

// openraft's storage and network traits fix their error types (`StorageError`, `RPCError`: a
// few hundred bytes each); the functions here return what the traits return.
#![allow(clippy::result_large_err)]

pub mod config;
pub mod forward;
pub mod log_store;
pub mod network;
pub mod state_machine;

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ledger::{AppendError, GroupRecord, Ledger, Receipt, RecordResults, RecordedEvent, Replicator};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{RaftMetrics, ServerState};
use proto::v1 as pb;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Semaphore};

pub use config::ClusterConfig;

/// A node's id in its cluster.
pub type NodeId = u64;

/// What openraft knows of a member: its gRPC address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `host:port` (plaintext) or an `http(s)://` URL.
    pub address: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.address)
    }
}

/// What applying a record answered, on the node that applied it. Never sent anywhere: only the
/// leader's proposer reads it, on the node that made the record.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    /// Each request's answer.
    #[serde(skip)]
    pub results: Option<RecordResults>,
}

openraft::declare_raft_types!(
    /// The cluster's openraft types.
    pub TypeConfig:
        D = GroupRecord,
        R = Applied,
        Node = Member,
);

/// A Raft log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A node's Raft.
pub type Raft = openraft::Raft<TypeConfig>;

/// The most requests in one record.
const MAX_RECORD_REQUESTS: usize = 512;
/// A record is closed once its requests reach this many payload bytes.
const MAX_RECORD_BYTES: usize = 8 << 20;
/// Records proposed and not yet applied, at most: more requests wait and join the next record.
const RECORDS_IN_FLIGHT: usize = 2;
/// Requests waiting for the proposer, at most (then appends are refused as overloaded).
const PROPOSAL_QUEUE: usize = 4096;

/// One request waiting to be replicated.
struct Proposal {
    events: Vec<RecordedEvent>,
    reply: oneshot::Sender<Result<Vec<Receipt>, AppendError>>,
}

/// The node's handle on its cluster.
#[derive(Clone)]
pub struct Cluster {
    raft: Raft,
    config: Arc<ClusterConfig>,
    identity: String,
    forwarder: forward::Forwarder,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node_id", &self.config.node_id).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Joins `ledger` to the cluster `config` describes: opens the Raft log under
    /// `DATA_DIR/raft`, starts Raft, initialises the membership on the first start of a fresh
    /// cluster (by its lowest node id), and routes the ledger's appends through the cluster.
    ///
    /// Refused: a data dir holding entries appended outside the cluster (a cluster starts from
    /// data dirs that hold nothing but the shared keys), and a ledger that applied Raft entries
    /// beside an empty Raft log (the log was removed or replaced). `max_message_bytes` bounds
    /// the appends it forwards to the leader.
    pub async fn start(ledger: Arc<Ledger>, config: ClusterConfig, max_message_bytes: usize) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let position = state_machine::AppliedPosition::of(&ledger)?;
        if position.is_none() && !ledger.tenants().is_empty() {
            anyhow::bail!(
                "{} holds entries appended outside a cluster ({} tenant(s)): a cluster node starts from a data dir \
                 that holds only the cluster's shared keys (release-ledger cluster init-keys)",
                ledger.data_dir().display(),
                ledger.tenants().len()
            );
        }
        let raft_dir = ledger.data_dir().join(RAFT_DIR);
        let log_store = log_store::LogStore::open(&raft_dir)
            .with_context(|| format!("opening the Raft log at {}", raft_dir.display()))?;
        let fresh = log_store.is_fresh().map_err(|e| anyhow::anyhow!("reading the Raft log: {e}"))?;
        if let (true, Some(position)) = (fresh, &position) {
            anyhow::bail!(
                "{} applied the cluster's Raft log up to index {}, but its Raft log ({}) is empty: it was removed \
                 or replaced. Rebuild this node from an empty data dir holding only the cluster's keys (it catches \
                 up from the others)",
                ledger.data_dir().display(),
                position.log_id.index,
                raft_dir.display()
            );
        }
        let state_machine = state_machine::LedgerStateMachine::new(ledger.clone())?;

        let admin_key = ledger::KeyPair::load(&ledger::KeyPaths::new(ledger.data_dir()).admin)
            .context("loading the admin key (peers authenticate with it)")?;
        let credentials = Arc::new(network::PeerCredentials::new(
            admin_key,
            &ledger.trust_roots().ledger_id().to_hex(),
            ledger.origin_prefix(),
            config.peer_tls()?,
        ));
        let identity = credentials.identity.clone();
        let raft_config = openraft::Config {
            cluster_name: "release-ledger".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_timeout_ms[0],
            election_timeout_max: config.election_timeout_ms[1],
            // Records are up to a few MiB: a bounded number per AppendEntries.
            max_payload_entries: 16,
            // Every node keeps the whole Raft log (see state_machine).
            snapshot_policy: openraft::SnapshotPolicy::Never,
            ..Default::default()
        }
        .validate()
        .context("the cluster's Raft settings")?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            network::Network::new(credentials),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| anyhow::anyhow!("starting Raft: {e}"))?;

        if fresh && config.node_id == config.initialising_node() {
            let members: BTreeMap<NodeId, Member> = config.members();
            match raft.initialize(members).await {
                Ok(()) => tracing::info!(node_id = config.node_id, "initialised the cluster's membership"),
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => anyhow::bail!("initialising the cluster: {e}"),
            }
        }

        let (sender, receiver) = mpsc::channel(PROPOSAL_QUEUE);
        let runtime = tokio::runtime::Handle::current();
        tokio::spawn(propose(raft.clone(), ledger.clone(), receiver));
        ledger.set_replicator(Arc::new(ClusterReplicator {
            raft: raft.clone(),
            config: config.clone(),
            proposals: sender,
            runtime,
            timeout: Duration::from_millis(config.commit_timeout_ms),
        }));
        tracing::info!(
            node_id = config.node_id,
            members = config.nodes.len(),
            raft_dir = %raft_dir.display(),
            "cluster node started"
        );
        let forwarder = forward::Forwarder::new(config.node_id, config.peer_tls()?, max_message_bytes);
        Ok(Self { raft, config, identity, forwarder })
    }

    /// Forwards appends a follower refuses to the leader.
    pub fn forwarder(&self) -> forward::Forwarder {
        self.forwarder.clone()
    }

    /// The node's Raft.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The `Raft` gRPC service peers call.
    pub fn service(&self) -> network::RaftService {
        network::RaftService::new(self.raft.clone(), self.identity.clone())
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// Where this node stands.
    pub fn status(&self) -> pb::ClusterStatus {
        status(&self.raft.metrics().borrow(), &self.config)
    }

    /// Where this node stands, as the response headers of every gRPC answer (`ledger-node`,
    /// `ledger-role`, `ledger-leader`, `ledger-raft-log`, `ledger-raft-applied`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let mut headers = vec![
            ("ledger-node", self.config.node_id.to_string()),
            ("ledger-role", role(metrics.state).to_owned()),
            ("ledger-raft-log", metrics.last_log_index.map(|i| i.to_string()).unwrap_or_default()),
            ("ledger-raft-applied", metrics.last_applied.map(|l| l.index.to_string()).unwrap_or_default()),
        ];
        if let Some(leader) = metrics.current_leader {
            headers.push(("ledger-leader", leader.to_string()));
        }
        headers
    }

    /// Stops Raft (after the gRPC server stopped, before the ledger closes).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "stopping Raft");
        }
    }
}

/// The Raft log's directory inside the data dir.
pub const RAFT_DIR: &str = "raft";

fn role(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "Leader",
        ServerState::Follower => "Follower",
        ServerState::Candidate => "Candidate",
        ServerState::Learner => "Learner",
        ServerState::Shutdown => "Shutdown",
    }
}

fn status(metrics: &RaftMetrics<NodeId, Member>, config: &ClusterConfig) -> pb::ClusterStatus {
    let matched = metrics.replication.as_ref();
    pb::ClusterStatus {
        clustered: true,
        node_id: config.node_id,
        role: role(metrics.state).to_owned(),
        leader_id: metrics.current_leader,
        leader_address: metrics.current_leader.and_then(|id| config.address(id)).unwrap_or_default(),
        term: metrics.current_term,
        last_log_index: metrics.last_log_index,
        applied_index: metrics.last_applied.map(|l| l.index),
        members: config
            .nodes
            .iter()
            .map(|node| pb::cluster_status::Member {
                id: node.id,
                address: node.address.clone(),
                matched_index: matched.and_then(|m| m.get(&node.id)).and_then(|l| l.map(|l| l.index)),
            })
            .collect(),
        millis_since_quorum_ack: metrics.millis_since_quorum_ack,
    }
}

/// Routes a node's appends through the cluster ([`Replicator`]).
pub struct ClusterReplicator {
    raft: Raft,
    config: Arc<ClusterConfig>,
    proposals: mpsc::Sender<Proposal>,
    runtime: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for ClusterReplicator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterReplicator").field("node_id", &self.config.node_id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal").field("events", &self.events.len()).finish_non_exhaustive()
    }
}

impl Replicator for ClusterReplicator {
    fn ready(&self) -> Result<(), AppendError> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        if metrics.state == ServerState::Leader && metrics.current_leader == Some(self.config.node_id) {
            return Ok(());
        }
        Err(AppendError::NotLeader { leader: metrics.current_leader.and_then(|id| self.config.address(id)) })
    }

    fn replicate(&self, events: Vec<RecordedEvent>) -> Result<Vec<Receipt>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.proposals.try_send(Proposal { events, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => AppendError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => AppendError::ShuttingDown,
        })?;
        let timeout = self.timeout;
        // Called on a blocking thread (the gRPC handlers' and the governance worker's), never
        // on the runtime's own threads.
        self.runtime.block_on(async move {
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(_)) => Err(AppendError::Replication("the node stopped before the record was committed".into())),
                Err(_) => Err(AppendError::Replication(format!(
                    "not committed within {} ms (no majority reachable?)",
                    timeout.as_millis()
                ))),
            }
        })
    }
}

/// The proposer: gathers waiting requests into records and proposes them, at most
/// [`RECORDS_IN_FLIGHT`] at a time (requests arriving meanwhile wait and form the next record,
/// as a group commit does).
async fn propose(raft: Raft, ledger: Arc<Ledger>, mut proposals: mpsc::Receiver<Proposal>) {
    let in_flight = Arc::new(Semaphore::new(RECORDS_IN_FLIGHT));
    let mut last_ns = 0u64;
    while let Some(first) = proposals.recv().await {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let mut bytes: usize = first.events.iter().map(|e| e.envelope.len()).sum();
        let mut batch = vec![first];
        while batch.len() < MAX_RECORD_REQUESTS && bytes < MAX_RECORD_BYTES {
            match proposals.try_recv() {
                Ok(next) => {
                    bytes += next.events.iter().map(|e| e.envelope.len()).sum::<usize>();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        // The leader's clock, never behind the last record it made (apply also keeps each
        // tenant's recordedAt from going back, whoever made the record).
        let now_ns = ledger.config().clock.now_ns().max(last_ns);
        last_ns = now_ns;
        let mut replies = Vec::with_capacity(batch.len());
        let mut requests = Vec::with_capacity(batch.len());
        for proposal in batch {
            requests.push(proposal.events);
            replies.push(proposal.reply);
        }
        let record = GroupRecord { now_ns, requests };
        match raft.client_write_ff(record).await {
            Ok(responder) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    let answer = responder.await;
                    answer_all(replies, answer);
                });
            }
            Err(fatal) => {
                drop(permit);
                for reply in replies {
                    let _ = reply.send(Err(AppendError::Replication(format!("this node's Raft stopped: {fatal}"))));
                }
            }
        }
    }
}

type WriteAnswer = Result<
    Result<openraft::raft::ClientWriteResponse<TypeConfig>, ClientWriteError<NodeId, Member>>,
    oneshot::error::RecvError,
>;

fn answer_all(replies: Vec<oneshot::Sender<Result<Vec<Receipt>, AppendError>>>, answer: WriteAnswer) {
    let failure = match answer {
        Ok(Ok(response)) => match response.data.results {
            Some(results) if results.len() == replies.len() => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                return;
            }
            _ => AppendError::Replication("applying the record gave no answer for each request".into()),
        },
        // Proposed, then deposed: the record may still be committed by the new leader (if a
        // majority holds it), so this is not "nothing stored".
        Ok(Err(ClientWriteError::ForwardToLeader(forward))) => AppendError::Replication(format!(
            "leadership moved{} before the record was known committed",
            forward.leader_node.map(|node| format!(" to {}", node.address)).unwrap_or_default()
        )),
        Ok(Err(e)) => AppendError::Replication(e.to_string()),
        Err(_) => AppendError::Replication("the leader lost its leadership before the record was committed".into()),
    };
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}
