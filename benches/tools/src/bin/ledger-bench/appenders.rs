//! The appending clients: warmup (signing inline) and the measured window (pre-signed pools).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_harness::latency::{merge_histogram, micros, new_histogram, record};
use hdrhistogram::Histogram;
use ledger_client::Client;
use proto::v1 as pb;

use crate::events::{EventFactory, Pool};
use crate::shared::Shared;

/// Sends one request: `Append` for a batch size of 1, `AppendBatch` otherwise.
pub(crate) async fn send(
    client: &mut Client,
    shared: &Shared,
    use_batch: bool,
    mut events: Vec<pb::AppendEvent>,
) -> (&'static str, Duration, Result<Vec<pb::Receipt>, tonic::Status>) {
    if use_batch {
        let (elapsed, result) = shared.timed(client.append_batch(pb::AppendBatchRequest { events })).await;
        ("AppendBatch", elapsed, result.map(|r| r.receipts))
    } else {
        let event = events.pop();
        let (elapsed, result) = shared.timed(client.append(pb::AppendRequest { event })).await;
        ("Append", elapsed, result.map(|r| r.receipt.into_iter().collect()))
    }
}

/// Checks the receipts of `count` events of tenant `t` and advances the tenant's size; returns
/// the number of fresh (non-duplicate) events, or a client-side error message.
pub(crate) fn accept_receipts(
    shared: &Shared,
    t: usize,
    count: usize,
    receipts: &[pb::Receipt],
) -> Result<(u64, u64), String> {
    if receipts.len() != count {
        return Err(format!("{} receipt(s) for {count} event(s)", receipts.len()));
    }
    let duplicates = receipts.iter().filter(|r| r.duplicate).count() as u64;
    if let Some(last) = receipts.iter().map(|r| r.seq).max() {
        shared.tenant_sizes[t].fetch_max(last + 1, Ordering::SeqCst);
    }
    Ok((count as u64 - duplicates, duplicates))
}

/// Warmup: appends events signed on the spot until `deadline`; returns the client and the
/// number of events acknowledged.
pub(crate) async fn warmup_client(
    mut client: Client,
    factory: EventFactory,
    batch: usize,
    deadline: Instant,
    shared: Arc<Shared>,
) -> (Client, u64) {
    let t = factory.tenant_index;
    let mut n = 0;
    let mut acknowledged = 0;
    while Instant::now() < deadline {
        let events = factory.events("w", n, batch as u64);
        n += batch as u64;
        let (method, _, result) = send(&mut client, &shared, batch > 1, events).await;
        match result {
            Ok(receipts) => match accept_receipts(&shared, t, batch, &receipts) {
                Ok((fresh, _)) => acknowledged += fresh,
                Err(message) => shared.error(method, "ClientCheck", &message),
            },
            Err(status) => {
                shared.status(method, &status);
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (client, acknowledged)
}

/// What one append client did in the measured window.
#[derive(Debug)]
pub(crate) struct ClientStats {
    pub(crate) latency: Histogram<u64>,
    pub(crate) requests: u64,
    pub(crate) events: u64,
    pub(crate) duplicates: u64,
    pub(crate) signed_inline: u64,
}

impl ClientStats {
    pub(crate) fn new() -> Self {
        Self { latency: new_histogram(), requests: 0, events: 0, duplicates: 0, signed_inline: 0 }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        merge_histogram(&mut self.latency, &other.latency);
        self.requests += other.requests;
        self.events += other.events;
        self.duplicates += other.duplicates;
        self.signed_inline += other.signed_inline;
    }
}

/// The measured phase of one client: sends its pre-signed requests until the pool is empty
/// (`--events`) or the deadline passes (`--duration`; signing inline if the pool runs dry).
pub(crate) async fn measured_client(
    mut client: Client,
    factory: EventFactory,
    mut pool: Pool,
    batch: usize,
    deadline: Option<Instant>,
    shared: Arc<Shared>,
) -> ClientStats {
    let t = factory.tenant_index;
    let mut stats = ClientStats::new();
    let mut next_inline = pool.iter().map(|r| r.len() as u64).sum::<u64>();
    loop {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        let events = match (pool.pop_front(), deadline) {
            (Some(events), _) => events,
            (None, None) => break,
            (None, Some(_)) => {
                let events = factory.events("m", next_inline, batch as u64);
                next_inline += batch as u64;
                stats.signed_inline += batch as u64;
                events
            }
        };
        let count = events.len();
        let (method, elapsed, result) = send(&mut client, &shared, batch > 1, events).await;
        match result {
            Ok(receipts) => match accept_receipts(&shared, t, count, &receipts) {
                Ok((fresh, duplicates)) => {
                    record(&mut stats.latency, elapsed);
                    stats.requests += 1;
                    stats.events += fresh;
                    stats.duplicates += duplicates;
                    shared.tick_events.fetch_add(fresh, Ordering::Relaxed);
                    shared.tick_requests.fetch_add(1, Ordering::Relaxed);
                    shared.tick_max_latency_us.fetch_max(micros(elapsed), Ordering::Relaxed);
                }
                Err(message) => shared.error(method, "ClientCheck", &message),
            },
            Err(status) => {
                shared.status(method, &status);
                // Do not spin on a server that is down or refusing.
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    stats
}

/// Pause of an append client after a failed request.
pub(crate) const ERROR_BACKOFF: Duration = Duration::from_millis(10);
