//! The gRPC surface end to end: append, batch, read, get, subscribe (catch-up then live,
//! resumable), checkpoints and proofs that verify, health.

use futures::StreamExt as _;
use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::SignedCheckpoint;
use proto::v1 as pb;

use crate::{body, register, temp_data_dir, tests_passed, wire, Server};

const TENANT: &str = "vetclinic-001";

fn hash(bytes: &[u8]) -> ledger::Hash32 {
    bytes.try_into().unwrap()
}

#[tokio::test]
async fn append_read_subscribe_and_prove() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let admin = server.admin();
    let qa = register(&mut client, &admin, TENANT, "qa", &[]).await;

    // Single and atomic batch appends.
    let single = client
        .append(pb::AppendRequest {
            event: Some(wire(body(TENANT, "r1", "TestsPassed", "e-1", "qa", tests_passed(1)), &qa)),
        })
        .await
        .unwrap()
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(single.seq, 1);
    let events = (2..5)
        .map(|i| wire(body(TENANT, "r1", "TestsPassed", &format!("e-{i}"), "qa", tests_passed(i)), &qa))
        .collect();
    let receipts = client.append_batch(pb::AppendBatchRequest { events }).await.unwrap().into_inner().receipts;
    assert_eq!(receipts.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);

    // Read a range; GetEntry by seq and by event id.
    let read: Vec<pb::Entry> = client
        .read(pb::ReadRequest { tenant: TENANT.into(), from_seq: 1, to_seq: 4 })
        .await
        .unwrap()
        .into_inner()
        .map(|e| e.unwrap())
        .collect()
        .await;
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(read[0].entry_hash, single.entry_hash);
    let by_id = client
        .get_entry(pb::GetEntryRequest {
            tenant: TENANT.into(),
            key: Some(pb::get_entry_request::Key::EventId("e-3".into())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_id.seq, 3);
    let entry = ledger_wire::convert::entry_from_pb(by_id).unwrap();
    entry.check_hashes().unwrap();

    // Checkpoint, inclusion and consistency proofs verify with the ledger key from the data dir.
    let ledger_pub = std::fs::read_to_string(data.join("keys/ledger.pub")).unwrap();
    let ledger_key = ledger::keys::public_key_from_text(&ledger_pub).unwrap();
    let note = client
        .get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 })
        .await
        .unwrap()
        .into_inner()
        .note;
    let checkpoint = SignedCheckpoint::parse_and_verify(&note, &ledger_key).unwrap().checkpoint;
    assert_eq!(checkpoint.size, 5);
    for seq in 0..5 {
        let proof = client
            .get_inclusion_proof(pb::GetInclusionProofRequest { tenant: TENANT.into(), seq, tree_size: 0 })
            .await
            .unwrap()
            .into_inner();
        let path: Vec<ledger::Hash32> = proof.path.iter().map(|p| hash(p)).collect();
        let leaf = LogHasher::hash_leaf(&hash(&proof.entry_hash));
        merkle::verify_inclusion::<LogHasher>(&leaf, seq, proof.tree_size, &path, &checkpoint.root).unwrap();
        assert_eq!(proof.checkpoint.unwrap().note, note);
    }
    let old =
        client.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 2 }).await.unwrap().into_inner();
    let old = SignedCheckpoint::parse_and_verify(&old.note, &ledger_key).unwrap().checkpoint;
    let consistency = client
        .get_consistency_proof(pb::GetConsistencyProofRequest { tenant: TENANT.into(), old_size: 2, new_size: 0 })
        .await
        .unwrap()
        .into_inner();
    let path: Vec<ledger::Hash32> = consistency.path.iter().map(|p| hash(p)).collect();
    merkle::verify_consistency::<LogHasher>(2, 5, &old.root, &checkpoint.root, &path).unwrap();

    // Subscribe: catch up from seq 3, then receive live appends, then resume elsewhere.
    let mut live =
        client.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: 3 }).await.unwrap().into_inner();
    assert_eq!(live.next().await.unwrap().unwrap().seq, 3);
    assert_eq!(live.next().await.unwrap().unwrap().seq, 4);
    let mut writer = server.client().await;
    for i in 5..8 {
        let event = wire(body(TENANT, "r2", "TestsPassed", &format!("e-{i}"), "qa", tests_passed(i)), &qa);
        writer.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }
    for expected in 5..8 {
        let entry =
            tokio::time::timeout(std::time::Duration::from_secs(10), live.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(entry.seq, expected);
    }
    let mut resumed =
        client.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: 6 }).await.unwrap().into_inner();
    assert_eq!(resumed.next().await.unwrap().unwrap().seq, 6);

    // A subscription to a tenant that does not exist yet waits for its first entry.
    let mut future_tenant =
        client.subscribe(pb::SubscribeRequest { tenant: "later".into(), from_seq: 0 }).await.unwrap().into_inner();
    register(&mut writer, &admin, "later", "qa", &[]).await;
    let first =
        tokio::time::timeout(std::time::Duration::from_secs(10), future_tenant.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((first.tenant.as_str(), first.seq), ("later", 0));

    let info = client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.ledger_public_key, ledger_key.as_bytes().to_vec());
    let keys = client.list_keys(pb::ListKeysRequest { tenant: TENANT.into() }).await.unwrap().into_inner().keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key_id, qa.key_id().to_hex());
}

#[tokio::test]
async fn health_reports_serving() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let channel = server.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let response = health
        .check(tonic_health::pb::HealthCheckRequest { service: "release_ledger.v1.Ledger".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
}
