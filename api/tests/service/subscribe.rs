//! `Subscribe` under load: the hand-off from catch-up to live while appends go on, and a
//! client that stops reading.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use ledger::{Config, Ledger};
use proto::v1 as pb;
use testkit::Agent;

use crate::{client, ledger_with, serve, TENANT};

/// Appends `count` events by `agent` on a blocking thread, `batch` to a commit.
fn append_in_background(
    ledger: &std::sync::Arc<Ledger>,
    agent: &Agent,
    count: usize,
    batch: usize,
    padding: usize,
) -> std::thread::JoinHandle<()> {
    let (ledger, agent) = (ledger.clone(), agent.clone());
    std::thread::spawn(move || {
        for chunk in (0..count).collect::<Vec<_>>().chunks(batch) {
            let _ = ledger.append_batch(chunk.iter().map(|_| agent.event("s", padding)).collect()).unwrap();
        }
    })
}

/// Reads `stream` until it has delivered every seq below `until`, asserting each comes once, in
/// order, with the hash the ledger stored.
async fn read_in_order(
    ledger: &Ledger,
    stream: &mut tonic::Streaming<pb::Entry>,
    from: u64,
    until: u64,
    deadline: Instant,
) {
    let mut expected = from;
    while expected < until {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let entry = tokio::time::timeout(remaining, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no seq {expected} before the deadline"))
            .expect("the stream ended early")
            .unwrap();
        assert_eq!(entry.seq, expected, "a gap or a duplicate: expected seq {expected}");
        assert_eq!(entry.entry_hash, ledger.entry(TENANT, expected).unwrap().entry_hash.to_vec(), "seq {expected}");
        expected += 1;
    }
}

/// Subscribers that start while appends go on — from the start, from the middle, and from the
/// head — each get every seq once and in order across the moment their catch-up ends and live
/// delivery begins.
///
/// Checked by breaking it: advancing `next` to the end of the catch-up range after its first
/// chunk (`next = end` instead of `next = chunk_end` in `LedgerService::stream_entries`) skips
/// entries and fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribers_hand_off_from_catch_up_to_live_without_a_gap_or_a_duplicate() {
    let (ledger, agent, _dir) = ledger_with(Config::default());
    for _ in 0..300 {
        let _ = ledger.append(agent.event("s", 256)).unwrap();
    }
    let (address, _stop) = serve(ledger.clone()).await;
    let writer = append_in_background(&ledger, &agent, 600, 1, 256);

    let mut readers = Vec::new();
    for from in [0, 150, ledger.head(TENANT).unwrap().size] {
        let mut c = client(address).await;
        let stream = c.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: from }).await.unwrap();
        readers.push((from, stream.into_inner()));
        // Let the appends move on between subscriptions.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = 1 + 300 + 600;
    let deadline = Instant::now() + Duration::from_secs(30);
    for (from, mut stream) in readers {
        read_in_order(&ledger, &mut stream, from, total, deadline).await;
    }
    writer.join().unwrap();
    assert_eq!(ledger.head(TENANT).unwrap().size, total);
}

/// A subscriber that stops reading holds back only its own stream: appends and another
/// subscriber go on, and when it reads again it gets everything, in order (nothing dropped).
///
/// Checked by breaking it: a server that drops entries for a full stream (`try_send` instead
/// of `send().await` in `LedgerService::stream_entries`) fails here on the slow stream's gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_subscriber_back_pressures_only_its_own_stream() {
    let (ledger, agent, _dir) = ledger_with(Config::default());
    let (address, _stop) = serve(ledger.clone()).await;
    let start = ledger.head(TENANT).unwrap().size;

    let mut slow_client = client(address).await;
    let mut slow =
        slow_client.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: 0 }).await.unwrap().into_inner();
    // It reads the first entry, then nothing for a while.
    assert_eq!(slow.next().await.unwrap().unwrap().seq, 0);

    let mut fast_client = client(address).await;
    let mut fast =
        fast_client.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: 0 }).await.unwrap().into_inner();
    // 1,200 entries of ~16 KiB: more than the server's per-stream buffer (512 entries) and the
    // HTTP/2 windows (a few MiB) hold together, so the slow stream's sender must wait.
    let count = 1200;
    let writer = append_in_background(&ledger, &agent, count, 50, 16 * 1024);
    let total = start + count as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    read_in_order(&ledger, &mut fast, 0, total, deadline).await;
    writer.join().unwrap();
    assert_eq!(ledger.head(TENANT).unwrap().size, total, "every append committed while one subscriber stalled");

    read_in_order(&ledger, &mut slow, 1, total, deadline).await;
}
