//! The readers beside the appenders: live `Subscribe` streams and query clients.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bench_harness::latency::{merge_histogram, new_histogram, record};
use bench_harness::rng::SplitMix64;
use hdrhistogram::Histogram;
use ledger_client::Client;
use proto::v1 as pb;
use tokio::sync::watch;

use crate::events::unix_nanos;
use crate::shared::{Phase, Shared};

/// What a subscriber saw.
#[derive(Debug)]
pub(crate) struct SubscribeStats {
    /// Entries of the measured window delivered.
    pub(crate) delivered: u64,
    /// Entries delivered in all (warmup and window).
    pub(crate) delivered_total: u64,
    /// Lag of the window's entries: arrival here minus the server's `recorded_at`.
    pub(crate) lag: Histogram<u64>,
    /// Entries whose seq was not the one expected next.
    pub(crate) gaps: u64,
    /// Entries whose `prev_hash` is not the previous entry's hash.
    pub(crate) chain_breaks: u64,
    /// Subscribers that received every entry of the window before the drain timeout.
    pub(crate) caught_up: usize,
    pub(crate) drain_seconds: f64,
}

impl SubscribeStats {
    pub(crate) fn new() -> Self {
        Self {
            delivered: 0,
            delivered_total: 0,
            lag: new_histogram(),
            gaps: 0,
            chain_breaks: 0,
            caught_up: 0,
            drain_seconds: 0.0,
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.delivered_total += other.delivered_total;
        merge_histogram(&mut self.lag, &other.lag);
        self.gaps += other.gaps;
        self.chain_breaks += other.chain_breaks;
        self.caught_up += other.caught_up;
    }
}

/// One live Subscribe stream of tenant `t` from `from`: counts the measured window's entries
/// and their lag, checks continuity, and ends once the window's last entry has arrived after
/// the appenders stopped (or at [`Phase::Done`]).
pub(crate) async fn subscriber(
    mut client: Client,
    t: usize,
    tenant: String,
    from: u64,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
) -> SubscribeStats {
    let mut stats = SubscribeStats::new();
    let mut stream = match client.subscribe(pb::SubscribeRequest { tenant, from_seq: from }).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            shared.status("Subscribe", &status);
            return stats;
        }
    };
    let mut next = from;
    let mut previous_hash: Option<Vec<u8>> = None;
    loop {
        let now_phase = *phase.borrow_and_update();
        if now_phase >= Phase::Drain && next >= shared.window_to[t].load(Ordering::SeqCst) {
            stats.caught_up = 1;
            break;
        }
        if now_phase == Phase::Done {
            break;
        }
        tokio::select! {
            message = stream.message() => match message {
                Ok(Some(entry)) => {
                    let arrived = unix_nanos();
                    stats.delivered_total += 1;
                    if entry.seq != next {
                        stats.gaps += 1;
                        shared.error("Subscribe", "ClientCheck", &format!("expected seq {next}, got {}", entry.seq));
                    } else if previous_hash.as_ref().is_some_and(|hash| *hash != entry.prev_hash) {
                        stats.chain_breaks += 1;
                        shared.error("Subscribe", "ClientCheck", &format!("seq {} does not link to its predecessor", entry.seq));
                    }
                    let in_window = entry.seq >= shared.window_from[t].load(Ordering::SeqCst)
                        && entry.seq < shared.window_to[t].load(Ordering::SeqCst);
                    if in_window {
                        stats.delivered += 1;
                        let lag = arrived.saturating_sub(i128::from(entry.recorded_at_unix_nanos)) / 1000;
                        stats.lag.saturating_record(u64::try_from(lag).unwrap_or(0).max(1));
                    }
                    next = entry.seq + 1;
                    previous_hash = Some(entry.entry_hash);
                }
                Ok(None) => {
                    shared.error("Subscribe", "ClientCheck", "the stream ended");
                    break;
                }
                Err(status) => {
                    shared.status("Subscribe", &status);
                    break;
                }
            },
            changed = phase.changed() => if changed.is_err() { break },
        }
    }
    stats
}

/// What the query clients did in the measured window.
#[derive(Debug)]
pub(crate) struct QueryStats {
    pub(crate) proof: Histogram<u64>,
    pub(crate) entry: Histogram<u64>,
}

impl QueryStats {
    pub(crate) fn new() -> Self {
        Self { proof: new_histogram(), entry: new_histogram() }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        merge_histogram(&mut self.proof, &other.proof);
        merge_histogram(&mut self.entry, &other.entry);
    }
}

/// A query client: `GetInclusionProof` (newest checkpoint) then `GetEntry` of a random
/// acknowledged seq of a random tenant, over and over; records only in the measured window.
pub(crate) async fn query_client(
    mut client: Client,
    tenants: Arc<Vec<String>>,
    shared: Arc<Shared>,
    seed: u64,
    mut phase: watch::Receiver<Phase>,
) -> QueryStats {
    let mut stats = QueryStats::new();
    let mut rng = SplitMix64::new(seed);
    loop {
        let now_phase = *phase.borrow_and_update();
        match now_phase {
            Phase::Warmup | Phase::Measure => {}
            Phase::Presign => {
                if phase.changed().await.is_err() {
                    break;
                }
                continue;
            }
            Phase::Drain | Phase::Done => break,
        }
        let measured = now_phase == Phase::Measure;
        let t = rng.below(tenants.len() as u64) as usize;
        let seq = rng.below(shared.tenant_size(t));
        let tenant = tenants[t].clone();

        let request = pb::GetInclusionProofRequest { tenant: tenant.clone(), seq, tree_size: 0 };
        let (elapsed, result) = shared.timed(client.get_inclusion_proof(request)).await;
        match result {
            Ok(proof) if proof.seq == seq && proof.tree_size > seq => {
                if measured {
                    record(&mut stats.proof, elapsed);
                }
            }
            Ok(proof) => shared.error(
                "GetInclusionProof",
                "ClientCheck",
                &format!("asked for seq {seq}, got seq {} in tree size {}", proof.seq, proof.tree_size),
            ),
            Err(status) => shared.status("GetInclusionProof", &status),
        }

        let key = Some(pb::get_entry_request::Key::Seq(seq));
        let (elapsed, result) = shared.timed(client.get_entry(pb::GetEntryRequest { tenant, key })).await;
        match result {
            Ok(entry) if entry.seq == seq => {
                if measured {
                    record(&mut stats.entry, elapsed);
                }
            }
            Ok(entry) => shared.error("GetEntry", "ClientCheck", &format!("asked for seq {seq}, got {}", entry.seq)),
            Err(status) => shared.status("GetEntry", &status),
        }
    }
    stats
}
