//! The gRPC status of each failure the ledger can have, end to end: a real `Ledger` (with the
//! storage seam and queue limits set to make the failure happen), the real `LedgerService`,
//! a real tonic server on a loopback port and a tonic client. The mapping table is unit-tested
//! in `api::status`; these show that the path from the failure to the wire keeps the code.
//!
//! Each was checked by breaking it: mapping `ErrorKind::Unavailable` to `INTERNAL` in
//! `api::status` fails the poisoned-writer and shutdown tests, `ResourceExhausted` to
//! `UNAVAILABLE` fails the queue test, and `DataLoss` to `INTERNAL` the corruption test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::{CommitPoint, Config, Ledger};
use proto::v1 as pb;
use testkit::{temp_ledger_with, TestLedger};
use tonic::Code;

use crate::{client, ledger_with, request, serve, TENANT};

/// With the writer held inside a commit and room for one queued append, the other appends are
/// answered `RESOURCE_EXHAUSTED` with a retry pushback, store nothing, and the held and queued
/// ones commit once the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_append_queue_is_resource_exhausted_with_a_pushback() {
    let hold = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicU64::new(0));
    let fault = {
        let (hold, held) = (hold.clone(), held.clone());
        Arc::new(move |_commit: u64, point: CommitPoint| {
            if point == CommitPoint::Write && hold.load(Ordering::SeqCst) {
                held.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(30);
                while hold.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            false
        })
    };
    let config = Config {
        queue_capacity: 1,
        queue_timeout: Duration::from_millis(100),
        commit_fault: Some(fault),
        ..Config::default()
    };
    let (ledger, agent, _dir) = ledger_with(config);
    let (address, _stop) = serve(ledger.clone()).await;
    let before = ledger.head(TENANT).unwrap().size;

    // The first append holds the writer inside its commit.
    hold.store(true, Ordering::SeqCst);
    let mut first_client = client(address).await;
    let first = tokio::spawn({
        let request = request(&agent, "held");
        async move { first_client.append(request).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the writer never reached the commit");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Four more: one fits the queue, three wait 100 ms for room and are refused.
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut rest = Vec::new();
    for n in 0..4 {
        let mut c = client(address).await;
        let request = request(&agent, &format!("more-{n}"));
        let refused_tx = refused_tx.clone();
        rest.push(tokio::spawn(async move {
            let result = c.append(request).await;
            if let Err(status) = &result {
                refused_tx.send(status.clone()).unwrap();
            }
            result
        }));
    }
    let mut refused = Vec::new();
    while refused.len() < 3 {
        let status = tokio::time::timeout(Duration::from_secs(10), refused_rx.recv())
            .await
            .expect("three appends should have been refused while the queue was full")
            .unwrap();
        refused.push(status);
    }
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("queue"), "{status:?}");
        let pushback = status.metadata().get(ledger_wire::PUSHBACK).expect("a retry pushback");
        assert!(pushback.to_str().unwrap().parse::<u64>().unwrap() > 0, "{pushback:?}");
    }
    assert_eq!(ledger.head(TENANT).unwrap().size, before, "nothing was stored while the writer was held");

    hold.store(false, Ordering::SeqCst);
    let first = first.await.unwrap().unwrap().into_inner().receipt.unwrap();
    let mut stored = vec![first.seq];
    let mut refused_ids = Vec::new();
    for (n, task) in rest.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(response) => stored.push(response.into_inner().receipt.unwrap().seq),
            Err(_) => refused_ids.push(format!("more-{n}")),
        }
    }
    assert_eq!((stored.len(), refused_ids.len()), (2, 3), "one held, one queued, three refused");
    assert_eq!(ledger.head(TENANT).unwrap().size, before + 2);
    for id in refused_ids {
        assert!(ledger.entry_by_event_id(TENANT, &id).unwrap().is_none(), "refused {id} was stored");
    }
}

/// A commit that fails poisons the writer: that append is not acknowledged, every later one is
/// `UNAVAILABLE` saying a restart is needed, and reads go on.
#[tokio::test]
async fn a_poisoned_writer_answers_unavailable_and_reads_go_on() {
    let fail = Arc::new(AtomicBool::new(false));
    let fault = {
        let fail = fail.clone();
        Arc::new(move |_commit: u64, point: CommitPoint| point == CommitPoint::Write && fail.load(Ordering::SeqCst))
    };
    let (ledger, agent, _dir) = ledger_with(Config { commit_fault: Some(fault), ..Config::default() });
    let (address, _stop) = serve(ledger.clone()).await;
    let mut client = client(address).await;
    let stored = client.append(request(&agent, "before")).await.unwrap().into_inner().receipt.unwrap();

    fail.store(true, Ordering::SeqCst);
    let failed = client.append(request(&agent, "failing")).await.unwrap_err();
    assert_ne!(failed.code(), Code::Ok);
    fail.store(false, Ordering::SeqCst);
    let after = client.append(request(&agent, "after")).await.unwrap_err();
    assert_eq!(after.code(), Code::Unavailable, "{after:?}");
    assert!(after.message().contains("poisoned") && after.message().contains("restart"), "{after:?}");
    for id in ["failing", "after"] {
        assert!(ledger.entry_by_event_id(TENANT, id).unwrap().is_none(), "{id} was stored");
    }

    let read = client
        .get_entry(pb::GetEntryRequest {
            tenant: TENANT.into(),
            key: Some(pb::get_entry_request::Key::Seq(stored.seq)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.entry_hash, stored.entry_hash);
}

/// Once the ledger is shutting down, appends are `UNAVAILABLE` (retryable elsewhere or later),
/// never an internal error.
#[tokio::test]
async fn appends_during_shutdown_are_unavailable() {
    let (ledger, agent, _dir) = ledger_with(Config::default());
    let (address, _stop) = serve(ledger.clone()).await;
    let mut client = client(address).await;
    client.append(request(&agent, "before")).await.unwrap();
    let size = ledger.head(TENANT).unwrap().size;
    ledger.shutdown();
    let status = client.append(request(&agent, "during")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("shutting down"), "{status:?}");
    assert_eq!(ledger.head(TENANT).unwrap().size, size);
}

/// Damage in an SST's data blocks is `DATA_LOSS` on the wire, naming the seq; no read returns
/// changed content.
#[tokio::test]
async fn a_corrupted_entry_is_data_loss_on_the_wire() {
    let t = temp_ledger_with(Config::default());
    let agent = t.agent(TENANT, "qa", &["QA"], &[]);
    let mut hashes = vec![t.ledger.entry(TENANT, 0).unwrap().entry_hash.to_vec()];
    for _ in 0..40 {
        hashes.push(t.ledger.append(agent.event("s", 64)).unwrap().entry_hash.to_vec());
    }
    // Reopen (the WAL becomes an SST), close, and flip bytes across the SST's data blocks.
    let t = t.reopen();
    let TestLedger { ledger, dir, clock, .. } = t;
    let config = Config { clock, ..ledger.config().clone() };
    drop(ledger);
    let db = dir.path().join("db");
    let sst = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&sst).unwrap();
    let length = bytes.len();
    for step in 0..8 {
        bytes[length / 32 + step * length / 16] ^= 0x01;
    }
    std::fs::write(&sst, bytes).unwrap();

    let ledger = Arc::new(Ledger::open(dir.path(), config).unwrap());
    let (address, _stop) = serve(ledger).await;
    let mut client = client(address).await;
    let mut data_loss = 0;
    for (seq, hash) in hashes.iter().enumerate() {
        let key = Some(pb::get_entry_request::Key::Seq(seq as u64));
        match client.get_entry(pb::GetEntryRequest { tenant: TENANT.into(), key }).await {
            Ok(response) => assert_eq!(&response.into_inner().entry_hash, hash, "seq {seq} changed"),
            Err(status) => {
                assert_eq!(status.code(), Code::DataLoss, "seq {seq}: {status:?}");
                assert!(status.message().contains(&format!("seq {seq}")), "seq {seq}: {status:?}");
                data_loss += 1;
            }
        }
    }
    assert!(data_loss > 0, "eight flipped bytes in the SST went unnoticed");
}
