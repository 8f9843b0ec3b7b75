//! Event generation and pre-signing, agent registration, and the run id.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{bail, Context as _};
use bench_harness::bodies::SignalBody;
use ledger::{ExpectedVersion, KeyPair};
use ledger_client::Client;
use proto::v1 as pb;

use crate::args::{Args, Stop};
use crate::drive::ENVELOPE_OVERHEAD_BYTES;
use crate::report::WarmupStats;
use crate::shared::status_error;

/// Builds and signs one client's events ([`SignalBody`]): catalogue-valid `TestsPassed` signals
/// (the server refuses unknown types and bad data), unique event ids `RUN-cCLIENT-PHASE-N`, one
/// stream per client, a release per 16 events of a client (`RUN-cCLIENT-PHASE-N/16`, never
/// declared, so no decisions follow, and each release stays the size of a real one for the
/// projection worker), and `data.notes` padded so the body is about `--payload-bytes` long.
#[derive(Debug, Clone)]
pub(crate) struct EventFactory {
    pub(crate) tenant: String,
    /// Index of the tenant in [`Shared`]'s per-tenant vectors.
    pub(crate) tenant_index: usize,
    pub(crate) agent_id: String,
    pub(crate) stream: String,
    pub(crate) id_prefix: String,
    pub(crate) occurred_at: Arc<str>,
    pub(crate) padding: usize,
    pub(crate) key: Arc<KeyPair>,
}

impl EventFactory {
    #[allow(clippy::too_many_arguments)] // One call site, every argument named there.
    pub(crate) fn new(
        tenant: String,
        tenant_index: usize,
        agent_id: String,
        client: usize,
        id_prefix: String,
        occurred_at: Arc<str>,
        payload_bytes: usize,
        key: Arc<KeyPair>,
    ) -> Self {
        let mut factory = Self {
            tenant,
            tenant_index,
            agent_id,
            stream: format!("bench/client-{client}"),
            id_prefix,
            occurred_at,
            padding: 0,
            key,
        };
        // Size the padding on a typical event id (the counter's digits vary by a few bytes).
        let unpadded = factory.body("m", 100_000).len();
        factory.padding = payload_bytes.saturating_sub(unpadded);
        factory
    }

    /// The body of event `n` of `phase` ("w" = warmup, "m" = measured).
    pub(crate) fn body(&self, phase: &str, n: u64) -> Vec<u8> {
        SignalBody {
            tenant: &self.tenant,
            stream: &self.stream,
            id_prefix: &self.id_prefix,
            phase,
            n,
            occurred_at: &self.occurred_at,
            agent_id: &self.agent_id,
            padding: self.padding,
        }
        .to_vec()
    }

    /// Event `n` of `phase`, signed.
    pub(crate) fn event(&self, phase: &str, n: u64) -> pb::AppendEvent {
        ledger_client::signed_event(self.body(phase, n), &self.key, ExpectedVersion::Any)
    }

    /// Events `from..from + count` of `phase`, signed.
    pub(crate) fn events(&self, phase: &str, from: u64, count: u64) -> Vec<pb::AppendEvent> {
        (from..from + count).map(|n| self.event(phase, n)).collect()
    }
}

/// The catalogue's limit on `data.notes`, which carries the padding.
pub(crate) const MAX_NOTES_BYTES: usize = 60 * 1024;

/// One client's pre-signed requests, in order.
pub(crate) type Pool = VecDeque<Vec<pb::AppendEvent>>;

/// Events each client pre-signs: `--events` split evenly, or with `--duration` the warmup rate
/// x duration x 2.5 (or `--presign-events`); bounded by `--presign-max-mib`.
pub(crate) fn presign_plan(
    args: &Args,
    stop: Stop,
    warmup: &WarmupStats,
    payload_len: usize,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<u64>> {
    pub(crate) const HEADROOM: f64 = 2.5;
    /// A guess used when there was no warmup to measure a rate.
    pub(crate) const GUESSED_EVENTS_PER_S: f64 = 20_000.0;
    let clients = args.clients as u64;
    let per_event = (payload_len + ENVELOPE_OVERHEAD_BYTES) as u64;
    let budget = args.presign_max_mib * 1024 * 1024 / per_event;
    let split = |total: u64| -> Vec<u64> {
        (0..clients).map(|c| total / clients + u64::from(c < total % clients)).collect::<Vec<_>>()
    };
    let total = match stop {
        Stop::Events(events) => {
            if events > budget {
                bail!(
                    "--events {events} at ~{per_event} bytes each exceeds --presign-max-mib {} (~{budget} events)",
                    args.presign_max_mib
                );
            }
            return Ok(split(events));
        }
        Stop::Duration(duration) => match args.presign_events {
            Some(total) => total,
            None => {
                let rate = if warmup.events > 0 && warmup.seconds > 0.0 {
                    warmup.events_per_s
                } else {
                    notes.push(format!(
                        "no warmup rate to size the pre-signed pool; guessed {GUESSED_EVENTS_PER_S} events/s"
                    ));
                    GUESSED_EVENTS_PER_S
                };
                (rate * duration.as_secs_f64() * HEADROOM).ceil() as u64
            }
        },
    };
    // At least a few requests per client.
    let floor = clients * 4 * args.batch as u64;
    let mut total = total.max(floor);
    if total > budget {
        notes.push(format!(
            "pre-signed pool capped at {budget} events by --presign-max-mib {}; clients sign inline once it runs dry",
            args.presign_max_mib
        ));
        total = budget.max(clients);
    }
    Ok(split(total))
}

/// Signs `per_client[c]` measured events for every client `c`, in requests of `batch`, on all
/// cores. Work is cut into chunks of whole requests so that even one client's events are
/// signed in parallel.
pub(crate) fn presign(factories: &[EventFactory], per_client: &[u64], batch: usize) -> Vec<Pool> {
    let chunk_events = (batch * 2048usize.div_ceil(batch)) as u64;
    let chunks: Vec<(usize, u64, u64)> = per_client
        .iter()
        .enumerate()
        .flat_map(|(c, &count)| {
            (0..count.div_ceil(chunk_events)).map(move |k| {
                let from = k * chunk_events;
                (c, from, chunk_events.min(count - from))
            })
        })
        .collect();
    let results: Vec<Mutex<Vec<Vec<pb::AppendEvent>>>> = chunks.iter().map(|_| Mutex::new(Vec::new())).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map(usize::from).unwrap_or(1).clamp(1, chunks.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(c, from, count)) = chunks.get(i) else { break };
                let events = factories[c].events("m", from, count);
                let mut requests = Vec::with_capacity(events.len().div_ceil(batch));
                let mut events = events.into_iter().peekable();
                while events.peek().is_some() {
                    requests.push(events.by_ref().take(batch).collect());
                }
                *results[i].lock().unwrap_or_else(PoisonError::into_inner) = requests;
            });
        }
    });
    let mut pools: Vec<Pool> = per_client.iter().map(|_| VecDeque::new()).collect();
    for (&(c, _, _), result) in chunks.iter().zip(results) {
        pools[c].extend(result.into_inner().unwrap_or_else(PoisonError::into_inner));
    }
    pools
}

/// Registers a fresh agent key in `tenant` (signed by the admin key); returns it and the
/// tenant's size right after.
pub(crate) async fn register_agent(
    client: &mut Client,
    admin: &KeyPair,
    tenant: &str,
    agent_id: &str,
) -> anyhow::Result<(KeyPair, u64)> {
    let key = KeyPair::generate();
    let body = serde_json::json!({
        "tenant": tenant,
        "stream": "keys",
        "type": "AgentKeyRegistered",
        "eventId": format!("register-{}", key.key_id()),
        "occurredAt": ledger_client::now_rfc3339(),
        "actor": { "agentId": "admin" },
        "data": { "agentId": agent_id, "publicKey": key.public_key_base64(), "roles": [], "eventTypes": [] },
    });
    let body = serde_json::to_vec(&body).context("serialising the registration")?;
    let event = ledger_client::signed_event(body, admin, ExpectedVersion::Any);
    let receipt = client
        .append(pb::AppendRequest { event: Some(event) })
        .await
        .map_err(status_error("registering the bench agent key"))
        .with_context(|| format!("tenant {tenant}"))?
        .into_inner()
        .receipt
        .context("the registration's response has no receipt")?;
    Ok((key, receipt.seq + 1))
}

/// A run id for event ids and the agent id: the start time in base 36 (unique per run).
pub(crate) fn run_id() -> String {
    let mut n = u64::try_from(unix_nanos() / 1_000_000).unwrap_or(u64::MAX);
    let mut digits = Vec::new();
    while n > 0 {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'a' + d - 10 });
        n /= 36;
    }
    digits.reverse();
    String::from_utf8(digits).expect("base-36 digits are ASCII")
}

pub(crate) fn seed_from_time() -> u64 {
    (unix_nanos() as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Nanoseconds since the Unix epoch, from the clock the server stamps `recorded_at` with.
pub(crate) fn unix_nanos() -> i128 {
    use ledger::Clock as _;
    i128::from(ledger::SystemClock.now_ns())
}
