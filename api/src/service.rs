//! The `release_ledger.v1.Ledger` gRPC service over a [`ledger::Ledger`].
//!
//! The ledger is synchronous. An append of a few events is checked on the request's own task
//! and its group commit awaited there ([`ledger::Ledger::submit`]): no thread is handed the
//! request and none is parked while the group commits. Larger appends and every read run on
//! tokio's blocking pool, so long work never stalls the async runtime, and signature checks of
//! concurrent requests run in parallel on those threads.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use ledger::Ledger;
use parking_lot::Mutex;
use proto::v1 as pb;
use proto::v1::ledger_server::Ledger as LedgerRpc;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status};

use crate::convert::{self, checkpoint_to_pb, entry_to_pb, receipt_to_pb};
use crate::metrics::Metrics;
use crate::status::{append_status, check_tenant, in_rpc_span, read_status, result_label};

/// Requests of at most this many events are checked on the runtime's own thread: a single
/// event's checks take tens of microseconds, 64 events' (one batch verification) about a
/// millisecond, which the other runtime threads absorb; larger ones go to the blocking pool.
/// Measured against 8 (BENCHMARKS.md, "Issue 20"): batches of 64 gained 2–36 % with no row
/// worse beyond the run-to-run spread.
const INLINE_EVENTS: usize = 64;
/// Entries read from the store per blocking call when streaming.
const READ_CHUNK: u64 = 256;
/// Entries buffered per stream before the sender waits for the client.
const STREAM_BUFFER: usize = 512;

/// Per-tenant size watches for live tails, fed by the ledger's commit listener.
#[derive(Debug, Default)]
pub struct Tails {
    senders: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl Tails {
    /// Publishes a tenant's new size.
    pub fn notify(&self, tenant: &str, size: u64) {
        if let Some(sender) = self.senders.lock().get(tenant) {
            sender.send_replace(size);
        }
    }

    /// A watch of a tenant's size; `current` is read under the same lock as `notify`, so no
    /// commit is missed between the two.
    fn watch(&self, tenant: &str, current: impl FnOnce() -> u64) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock();
        // Tenant names come from clients (a subscription may wait for a tenant that does not
        // exist yet): drop the watches nobody holds, so the map is bounded by live streams.
        senders.retain(|_, sender| sender.receiver_count() > 0);
        match senders.get(tenant) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = watch::channel(current());
                senders.insert(tenant.to_owned(), sender);
                receiver
            }
        }
    }
}

/// The service.
#[derive(Debug, Clone)]
pub struct LedgerService {
    ledger: Arc<Ledger>,
    metrics: Arc<Metrics>,
    tails: Arc<Tails>,
    shutdown: watch::Receiver<bool>,
    /// The governance state the append guards read (lifting an unknown freeze, reusing a
    /// policy version); none: no guards.
    governance: Option<Arc<projections::Governor>>,
    /// The witnesses' cosignatures of the tenants' checkpoints; none: no witnessing.
    cosignatures: Option<Arc<crate::witnessing::Cosignatures>>,
    /// A cluster node's: appends this follower refuses go to the leader.
    forwarder: Option<crate::cluster::forward::Forwarder>,
}

impl LedgerService {
    /// A service over `ledger`; live streams end when `shutdown` turns true.
    pub fn new(ledger: Arc<Ledger>, metrics: Arc<Metrics>, shutdown: watch::Receiver<bool>) -> Self {
        let tails = Arc::new(Tails::default());
        let listener_tails = tails.clone();
        ledger.add_commit_listener(Box::new(move |tenant, size| listener_tails.notify(tenant, size)));
        Self { ledger, metrics, tails, shutdown, governance: None, cosignatures: None, forwarder: None }
    }

    /// The service with the append guards that need the governance state: see [`guard`].
    pub fn with_governance(mut self, governor: Arc<projections::Governor>) -> Self {
        self.governance = Some(governor);
        self
    }

    /// Forwards the appends this node refuses as a follower to the leader (a cluster node).
    pub fn with_forwarder(mut self, forwarder: crate::cluster::forward::Forwarder) -> Self {
        self.forwarder = Some(forwarder);
        self
    }

    /// The service serving the cosigned checkpoints of `cosignatures` (`Checkpoint.cosigned_note`).
    pub fn with_cosignatures(mut self, cosignatures: Arc<crate::witnessing::Cosignatures>) -> Self {
        self.cosignatures = Some(cosignatures);
        self
    }

    /// Where to forward an append this node refused (`refusal`): the leader a cluster node's
    /// `NotLeader` names, unless the request was forwarded already.
    fn forward_to<'a>(
        &'a self,
        refusal: &'a Status,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Option<(&'a crate::cluster::forward::Forwarder, &'a str)> {
        let forwarder = self.forwarder.as_ref()?;
        Some((forwarder, forwarder.leader_of(refusal, metadata)?))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Ledger) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let ledger = self.ledger.clone();
        tokio::task::spawn_blocking(move || work(&ledger))
            .await
            .map_err(|e| Status::internal(format!("ledger task failed: {e}")))?
    }

    async fn append_events(
        &self,
        method: &'static str,
        events: Vec<pb::AppendEvent>,
    ) -> Result<Vec<pb::Receipt>, Status> {
        let started = Instant::now();
        let result = traced(method, None, async {
            if let Some(first) = events.first().and_then(|e| e.envelope.as_ref()) {
                record_header(&tracing::Span::current(), &first.payload);
            }
            let result = self.append_in_span(events).await;
            if let Err(status) = &result {
                tracing::info!(code = ?status.code(), reason = status.message(), "append rejected");
            }
            result
        })
        .await;
        let code = result.as_ref().map(|_| Code::Ok).unwrap_or_else(Status::code);
        self.metrics.observe_append(method, result_label(code), started.elapsed());
        result
    }

    async fn append_in_span(&self, events: Vec<pb::AppendEvent>) -> Result<Vec<pb::Receipt>, Status> {
        if events.is_empty() {
            return Err(Status::invalid_argument("no event: an append needs at least one"));
        }
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| convert::append_event_from_pb(i, e))
            .collect::<Result<Vec<_>, _>>()?;
        let receipts = if self.ledger.replicated()
            || events.len() > INLINE_EVENTS
            || (self.governance.is_some() && crate::guard::concerns(&events))
            || !self.ledger.queue_has_room()
        {
            self.append_on_blocking_pool(events).await?
        } else {
            // A small request is checked (decoded, signatures verified) right here and its commit
            // awaited on this task: no thread hand-off, and no thread parked while its group
            // commits. A single event's signature is verified together with those of the other
            // single-event requests in flight. The guards only concern event types this
            // request does not name.
            let pending = self.ledger.submit_async(events).await.map_err(|e| append_status(&e))?;
            pending.await.map_err(|e| append_status(&e))?
        };
        if let Some(last) = receipts.last() {
            // As i64: OpenTelemetry has no unsigned integers, and a u64 would be exported as text.
            tracing::Span::current().record("seq", i64::try_from(last.seq).unwrap_or(i64::MAX));
        }
        Ok(receipts.iter().map(receipt_to_pb).collect())
    }

    /// The path of a request that may take long before it is queued — many events to verify, a
    /// guard that may wait for the projections, a full queue, a cluster's replication — whose
    /// checks run on the blocking pool. On a single store only the checks do: the commit is
    /// awaited back on the request's task.
    async fn append_on_blocking_pool(&self, events: Vec<ledger::AppendEvent>) -> Result<Vec<ledger::Receipt>, Status> {
        enum Queued {
            Done(Vec<ledger::Receipt>),
            Pending(ledger::PendingAppend),
        }
        let governance = self.governance.clone();
        let queued = self
            .blocking(move |ledger| {
                if let Some(governor) = &governance {
                    if let Some(receipt) = crate::guard::check(ledger, governor, &events)? {
                        return Ok(Queued::Done(vec![receipt]));
                    }
                }
                if ledger.replicated() {
                    return ledger.append_batch(events).map(Queued::Done).map_err(|e| append_status(&e));
                }
                ledger.submit(events).map(Queued::Pending).map_err(|e| append_status(&e))
            })
            .await?;
        match queued {
            Queued::Done(receipts) => Ok(receipts),
            Queued::Pending(pending) => pending.await.map_err(|e| append_status(&e)),
        }
    }

    /// Streams entries `from..` up to `end(size)` (or live when `follow`), in chunks.
    fn stream_entries(&self, tenant: String, from: u64, to: Option<u64>, follow: bool) -> EntryStream {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let ledger = self.ledger.clone();
        let lookup = ledger.clone();
        let watch_tenant = tenant.clone();
        let mut sizes = self.tails.watch(&tenant, move || lookup.head(&watch_tenant).map(|h| h.size).unwrap_or(0));
        let mut shutdown = self.shutdown.clone();
        let guard = follow.then(|| self.metrics.subscriber());
        tokio::spawn(async move {
            let _guard = guard;
            let mut next = from;
            loop {
                let size = *sizes.borrow_and_update();
                let end = to.map_or(size, |to| to.min(size));
                while next < end {
                    let chunk_end = (next + READ_CHUNK).min(end);
                    let (reader, t) = (ledger.clone(), tenant.clone());
                    let chunk = tokio::task::spawn_blocking(move || {
                        reader
                            .entries(&t, next, chunk_end)
                            .map_err(|e| read_status(&e))?
                            .map(|entry| entry.map(|e| entry_to_pb(&t, &e)).map_err(|e| read_status(&e)))
                            .collect::<Result<Vec<_>, Status>>()
                    })
                    .await
                    .unwrap_or_else(|e| Err(Status::internal(format!("read task failed: {e}"))));
                    match chunk {
                        Ok(entries) => {
                            for entry in entries {
                                if tx.send(Ok(entry)).await.is_err() {
                                    return; // The client went away.
                                }
                            }
                            next = chunk_end;
                        }
                        Err(status) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                }
                if !follow || to.is_some_and(|to| next >= to) {
                    return;
                }
                tokio::select! {
                    changed = sizes.changed() => if changed.is_err() { return },
                    () = stopping(&mut shutdown) => {
                        let message = format!(
                            "server is shutting down; resume from seq {next} (release-ledger tail --from {next}, or from_seq {next} in the Subscribe request)"
                        );
                        let _ = tx.send(Err(Status::unavailable(message))).await;
                        return;
                    }
                    () = tx.closed() => return,
                }
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// The access check of an append: a transport principal of a tenant must belong to the tenant
/// of every event (read from the payload; an event whose payload does not parse is left to the
/// append path, which refuses it precisely). Without one (or for an operator) the signatures
/// decide, and no payload is parsed here.
fn append_access(extensions: &http::Extensions, events: &[pb::AppendEvent]) -> Result<(), Status> {
    let tenant_principal = extensions
        .get::<crate::access::Grant>()
        .and_then(|grant| grant.principal.as_ref())
        .is_some_and(|principal| !principal.operator);
    if !tenant_principal {
        // Records the decision (and fails closed without one).
        return crate::access::check(extensions, "");
    }
    let mut tenants: Vec<String> = events
        .iter()
        .filter_map(|e| e.envelope.as_ref())
        .filter_map(|envelope| ledger::event::ParsedEvent::parse(&envelope.payload).ok())
        .map(|parsed| parsed.header.tenant.as_str().to_owned())
        .collect();
    tenants.sort();
    tenants.dedup();
    tenants.iter().try_for_each(|tenant| crate::access::check(extensions, tenant))
}

/// Resolves once shutdown has begun (or the server is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::Entry, Status>> + Send>>;

/// The end of a `Read`'s range. One rule for every range in the API (Read, GetEntry, the proofs,
/// Flight exports): each seq it names must exist, so a range running past the end of the log is
/// `OUT_OF_RANGE` naming the log's size, never a silently shorter answer; `to_seq` 0 means "to
/// the current end"; a reversed range is `INVALID_ARGUMENT`.
fn read_range(from_seq: u64, to_seq: u64, size: u64) -> Result<u64, Status> {
    if to_seq != 0 && from_seq > to_seq {
        return Err(Status::invalid_argument(format!("the range is reversed: from_seq {from_seq} > to_seq {to_seq}")));
    }
    let to = if to_seq == 0 { size } else { to_seq };
    if to > size {
        return Err(Status::out_of_range(format!(
            "to_seq {to} is beyond the log end ({size} entries; to_seq 0 reads to the current end)"
        )));
    }
    if from_seq > to {
        return Err(Status::out_of_range(format!("from_seq {from_seq} is beyond the log end ({size} entries)")));
    }
    Ok(to)
}

/// Runs one RPC inside its span (see [`crate::status::rpc_span`]) and records its gRPC status code there.
async fn traced<T>(
    method: &'static str,
    tenant: Option<&str>,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let span = crate::status::rpc_span("release_ledger.v1.Ledger", method);
    // Span fields are input too: a long one is recorded clipped, like error messages.
    if let Some(tenant) = tenant {
        span.record("tenant", tracing::field::display(ledger::clip(tenant)));
    }
    let result = in_rpc_span(&span, work).await;
    result
}

/// Records the event header's fields on the span (a borrowed, partial parse; the ledger does
/// the authoritative one).
fn record_header(span: &tracing::Span, payload: &[u8]) {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Actor<'a> {
        #[serde(borrow)]
        agent_id: Option<&'a str>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Header<'a> {
        #[serde(borrow)]
        tenant: Option<&'a str>,
        #[serde(rename = "type", borrow)]
        event_type: Option<&'a str>,
        #[serde(borrow)]
        release_id: Option<&'a str>,
        #[serde(borrow)]
        trace_id: Option<&'a str>,
        #[serde(borrow)]
        actor: Option<Actor<'a>>,
    }
    if let Ok(header) = serde_json::from_slice::<Header<'_>>(payload) {
        let fields = [
            ("tenant", header.tenant),
            ("eventType", header.event_type),
            ("releaseId", header.release_id),
            ("traceId", header.trace_id),
            ("agentId", header.actor.and_then(|a| a.agent_id)),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                span.record(name, tracing::field::display(ledger::clip(value)));
            }
        }
    }
}

#[tonic::async_trait]
impl LedgerRpc for LedgerService {
    async fn append(&self, request: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let events: Vec<_> = request.event.into_iter().collect();
        append_access(&extensions, &events)?;
        // Kept to forward them if this cluster node turns out not to be the leader.
        let kept = self.forwarder.as_ref().map(|_| events.clone());
        match self.append_events("Append", events).await {
            Ok(mut receipts) => Ok(Response::new(pb::AppendResponse { receipt: receipts.pop() })),
            Err(refusal) => match (self.forward_to(&refusal, &metadata), kept) {
                (Some((forwarder, leader)), Some(events)) => {
                    let message = pb::AppendRequest { event: events.into_iter().next() };
                    Ok(Response::new(forwarder.append(leader, message, &metadata).await?))
                }
                _ => Err(refusal),
            },
        }
    }

    async fn append_batch(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        append_access(&extensions, &request.events)?;
        let kept = self.forwarder.as_ref().map(|_| request.events.clone());
        match self.append_events("AppendBatch", request.events).await {
            Ok(receipts) => Ok(Response::new(pb::AppendBatchResponse { receipts })),
            Err(refusal) => match (self.forward_to(&refusal, &metadata), kept) {
                (Some((forwarder, leader)), Some(events)) => {
                    let message = pb::AppendBatchRequest { events };
                    Ok(Response::new(forwarder.append_batch(leader, message, &metadata).await?))
                }
                _ => Err(refusal),
            },
        }
    }

    type ReadStream = EntryStream;

    async fn read(&self, request: Request<pb::ReadRequest>) -> Result<Response<Self::ReadStream>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("Read", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::ReadRequest { tenant, from_seq, to_seq } = request.into_inner();
            check_tenant(&tenant)?;
            let t = tenant.clone();
            let size =
                self.blocking(move |ledger| ledger.head(&t).map(|h| h.size).map_err(|e| read_status(&e))).await?;
            let to = read_range(from_seq, to_seq, size)?;
            Ok(Response::new(self.stream_entries(tenant, from_seq, Some(to), false)))
        })
        .await
    }

    type SubscribeStream = EntryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("Subscribe", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::SubscribeRequest { tenant, from_seq } = request.into_inner();
            check_tenant(&tenant)?;
            Ok(Response::new(self.stream_entries(tenant, from_seq, None, true)))
        })
        .await
    }

    async fn get_entry(&self, request: Request<pb::GetEntryRequest>) -> Result<Response<pb::Entry>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("GetEntry", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::GetEntryRequest { tenant, key } = request.into_inner();
            check_tenant(&tenant)?;
            let key = key.ok_or_else(|| Status::invalid_argument("give a seq or an event_id"))?;
            self.blocking(move |ledger| {
                let entry = match key {
                    pb::get_entry_request::Key::Seq(seq) => ledger.entry(&tenant, seq).map_err(|e| read_status(&e))?,
                    pb::get_entry_request::Key::EventId(id) => {
                        ledger.entry_by_event_id(&tenant, &id).map_err(|e| read_status(&e))?.ok_or_else(|| {
                            Status::not_found(format!("no event {:?} in tenant {tenant:?}", ledger::clip(&id)))
                        })?
                    }
                };
                Ok(Response::new(entry_to_pb(&tenant, &entry)))
            })
            .await
        })
        .await
    }

    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::Checkpoint>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("GetCheckpoint", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::GetCheckpointRequest { tenant, size } = request.into_inner();
            check_tenant(&tenant)?;
            let cosignatures = self.cosignatures.clone();
            self.blocking(move |ledger| {
                let signed = if size == 0 {
                    ledger.checkpoint(&tenant).map_err(|e| read_status(&e))?
                } else {
                    ledger
                        .checkpoint_at(&tenant, size)
                        .map_err(|e| read_status(&e))?
                        .ok_or_else(|| Status::not_found(format!("no checkpoint was signed at size {size}")))?
                };
                let mut checkpoint = checkpoint_to_pb(&signed);
                if let Some(cosignatures) = cosignatures {
                    checkpoint.cosigned_note = cosignatures.cosigned_note(&tenant).unwrap_or_default();
                }
                Ok(Response::new(checkpoint))
            })
            .await
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("GetInclusionProof", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::GetInclusionProofRequest { tenant, seq, tree_size } = request.into_inner();
            check_tenant(&tenant)?;
            self.blocking(move |ledger| {
                let status = |e: ledger::ReadError| read_status(&e);
                let (tree_size, checkpoint) = if tree_size == 0 {
                    let latest = ledger.checkpoint(&tenant).map_err(status)?;
                    (latest.checkpoint.size, Some(latest))
                } else {
                    (tree_size, ledger.checkpoint_at(&tenant, tree_size).map_err(status)?)
                };
                let proof = ledger.inclusion_proof(&tenant, seq, tree_size).map_err(status)?;
                let entry = ledger.entry(&tenant, seq).map_err(status)?;
                Ok(Response::new(pb::InclusionProof {
                    seq,
                    tree_size,
                    path: proof.path.iter().map(|h| h.to_vec()).collect(),
                    entry_hash: entry.entry_hash.to_vec(),
                    checkpoint: checkpoint.as_ref().map(checkpoint_to_pb),
                }))
            })
            .await
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("GetConsistencyProof", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let pb::GetConsistencyProofRequest { tenant, old_size, new_size } = request.into_inner();
            check_tenant(&tenant)?;
            self.blocking(move |ledger| {
                let status = |e: ledger::ReadError| read_status(&e);
                let new_size = if new_size == 0 { ledger.head(&tenant).map_err(status)?.size } else { new_size };
                let proof = ledger.consistency_proof(&tenant, old_size, new_size).map_err(status)?;
                Ok(Response::new(pb::ConsistencyProof {
                    old_size,
                    new_size,
                    path: proof.path.iter().map(|h| h.to_vec()).collect(),
                }))
            })
            .await
        })
        .await
    }

    async fn get_info(&self, request: Request<pb::GetInfoRequest>) -> Result<Response<pb::LedgerInfo>, Status> {
        // The tenant list is for operators: anyone else learns nothing of which tenants exist.
        let operator = crate::access::is_operator(request.extensions());
        traced("GetInfo", None, async move {
            let roots = self.ledger.trust_roots();
            let config = self.ledger.config();
            Ok(Response::new(pb::LedgerInfo {
                ledger_public_key: roots.ledger().as_bytes().to_vec(),
                admin_public_key: roots.admin().as_bytes().to_vec(),
                ledger_key_id: roots.ledger_id().to_hex(),
                admin_key_id: roots.admin_id().to_hex(),
                origin_prefix: self.ledger.origin_prefix().to_owned(),
                server_version: env!("CARGO_PKG_VERSION").to_owned(),
                max_payload_bytes: config.max_payload_bytes as u64,
                max_events_per_append: config.max_events_per_append as u64,
                tenants: if operator { self.ledger.tenants() } else { Vec::new() },
            }))
        })
        .await
    }

    async fn list_keys(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let tenant = request.get_ref().tenant.clone();
        traced("ListKeys", Some(&tenant), async move {
            crate::access::tenant(&request, &request.get_ref().tenant)?;
            let tenant = request.into_inner().tenant;
            check_tenant(&tenant)?;
            let records = self.ledger.key_records(&tenant).map_err(|e| read_status(&e))?;
            let keys = records
                .into_iter()
                .map(|r| pb::KeyRecord {
                    key_id: r.key_id,
                    agent_id: r.agent_id,
                    public_key: r.public_key,
                    roles: r.roles,
                    event_types: r.event_types,
                    registered_at_seq: r.registered_at,
                    revoked_at_seq: r.revoked_at,
                })
                .collect();
            Ok(Response::new(pb::ListKeysResponse { keys }))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_only_watched_tenants() {
        let tails = Tails::default();
        // Subscriptions to many (possibly nonexistent) tenants, all ended.
        for i in 0..100 {
            drop(tails.watch(&format!("tenant-{i}"), || 0));
        }
        let live = tails.watch("live", || 7);
        assert_eq!(*live.borrow(), 7);
        assert_eq!(tails.senders.lock().len(), 1, "ended subscriptions must not accumulate");
        tails.notify("live", 9);
        assert_eq!(*live.borrow(), 9);
        // A second subscriber of the same tenant shares its watch.
        let again = tails.watch("live", || 0);
        assert_eq!(*again.borrow(), 9);
    }
}
