//! Every bad input of the core, sent over gRPC: its precise status code, and nothing stored.

use futures::StreamExt as _;
use ledger::KeyPair;
use proto::v1 as pb;
use tonic::Code;

use crate::{body, register, temp_data_dir, tests_passed, tests_passed_notes, wire, Server};

const TENANT: &str = "acme";

async fn size(client: &mut proto::v1::ledger_client::LedgerClient<crate::Authed>) -> u64 {
    client.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await.unwrap().into_inner().size
}

/// Catalogue-valid `ReleaseApproved` data: only the ledger key may sign it.
fn decision_data() -> serde_json::Value {
    serde_json::json!({
        "status": "Approved", "evaluatedAt": "2025-05-23T09:32:00Z", "trigger": 1, "evidence": [1],
        "gates": [], "reasons": [], "retryable": false, "riskScore": 0, "riskFactors": [],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_precise_codes_and_store_nothing() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &["--max-message-bytes", "262144"]);
    let mut client = server.client().await;
    let admin = server.admin();
    let qa = register(&mut client, &admin, TENANT, "qa", &["TestsPassed"]).await;
    let revoked = register(&mut client, &admin, TENANT, "old", &[]).await;
    let revoke =
        body(TENANT, "keys", "AgentKeyRevoked", "rv", "admin", serde_json::json!({"keyId": revoked.key_id().to_hex()}));
    client.append(pb::AppendRequest { event: Some(wire(revoke, &admin)) }).await.unwrap();
    let other_tenant = register(&mut client, &admin, "other", "qa", &[]).await;
    let ok = |id: &str| body(TENANT, "s", "TestsPassed", id, "qa", tests_passed(1));
    client.append(pb::AppendRequest { event: Some(wire(ok("taken"), &qa)) }).await.unwrap();

    let mut bad_signature = wire(ok("b1"), &qa);
    bad_signature.envelope.as_mut().unwrap().signatures[0].sig[0] ^= 1;
    let mut malformed = wire(ok("b2"), &qa);
    malformed.envelope =
        Some(ledger_wire::convert::envelope_to_pb(&ledger::Envelope::sign(b"{\"tenant\":".to_vec(), &qa)));
    let mut missing = serde_json::from_slice::<serde_json::Value>(&ok("b3")).unwrap();
    missing.as_object_mut().unwrap().remove("occurredAt");
    let mut conflict = wire(ok("b4"), &qa);
    conflict.expected_version = Some(pb::ExpectedVersion { version: Some(pb::expected_version::Version::Exact(9)) });
    // Valid data over the payload limit: the catalogue caps `notes` at 60 KiB (as text), so the
    // padding is quotes and newlines, whose JSON escapes double them to 80 KiB of payload.
    let big = body(TENANT, "s", "TestsPassed", "b5", "qa", tests_passed_notes(&"\"\n".repeat(20 * 1024)));
    assert!(big.len() > ledger::event::DEFAULT_MAX_PAYLOAD_BYTES, "{} bytes", big.len());

    let cases: Vec<(&str, pb::AppendEvent, Code, &str)> = vec![
        ("bad signature", bad_signature, Code::Unauthenticated, "signature"),
        ("unknown key", wire(ok("b6"), &KeyPair::generate()), Code::Unauthenticated, "unknown key"),
        (
            "revoked key",
            wire(body(TENANT, "s", "TestsPassed", "b7", "old", tests_passed(1)), &revoked),
            Code::PermissionDenied,
            "revoked",
        ),
        ("other tenant's key", wire(ok("b8"), &other_tenant), Code::PermissionDenied, "not registered for tenant"),
        (
            "disallowed type",
            wire(
                body(TENANT, "s", "ApprovalGranted", "b9", "qa", serde_json::json!({"role": "QA", "method": "CLI"})),
                &qa,
            ),
            Code::PermissionDenied,
            "ApprovalGranted: not among its allowed event types",
        ),
        (
            "decision by an agent",
            wire(body(TENANT, "s", "ReleaseApproved", "b10", "qa", decision_data()), &qa),
            Code::PermissionDenied,
            "ledger key",
        ),
        ("oversize payload", wire(big, &qa), Code::ResourceExhausted, "limit"),
        ("malformed JSON", malformed, Code::InvalidArgument, "malformed JSON"),
        ("missing field", wire(serde_json::to_vec(&missing).unwrap(), &qa), Code::InvalidArgument, "occurredAt"),
        (
            "reused event id",
            wire(body(TENANT, "s", "TestsPassed", "taken", "qa", tests_passed(2)), &qa),
            Code::AlreadyExists,
            "taken",
        ),
        ("version conflict", conflict, Code::FailedPrecondition, "expected 9"),
        ("no envelope", pb::AppendEvent { envelope: None, expected_version: None }, Code::InvalidArgument, "envelope"),
    ];
    let before = size(&mut client).await;
    for (name, event, code, needle) in cases {
        let status = client.append(pb::AppendRequest { event: Some(event.clone()) }).await.unwrap_err();
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(status.message().contains(needle), "{name}: {:?} lacks {needle:?}", status.message());
        // The same event inside a batch with a valid one: the whole batch is refused.
        let valid_id: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let batch = vec![wire(ok(&format!("{valid_id}-valid")), &qa), event];
        let status = client.append_batch(pb::AppendBatchRequest { events: batch }).await.unwrap_err();
        assert_eq!(status.code(), code, "{name} in a batch: {status:?}");
        assert_eq!(size(&mut client).await, before, "{name} stored something");
    }
    let status = client.append(pb::AppendRequest { event: None }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // The version conflict names the actual version too.
    let mut conflict = wire(ok("b11"), &qa);
    conflict.expected_version = Some(pb::ExpectedVersion { version: Some(pb::expected_version::Version::Exact(9)) });
    let status = client.append(pb::AppendRequest { event: Some(conflict) }).await.unwrap_err();
    assert!(status.message().contains("at version 1"), "{}", status.message());

    // Reads of things that do not exist.
    let status =
        client.get_checkpoint(pb::GetCheckpointRequest { tenant: "nobody".into(), size: 0 }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client
        .get_entry(pb::GetEntryRequest { tenant: TENANT.into(), key: Some(pb::get_entry_request::Key::Seq(999)) })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    // A Read running past the end is refused like GetEntry, not answered short; a reversed
    // range is malformed; 0 reads to the end, and an empty range at the end is an empty read.
    let read = |from_seq, to_seq| {
        let mut client = client.clone();
        async move {
            match client.read(pb::ReadRequest { tenant: TENANT.into(), from_seq, to_seq }).await {
                Ok(stream) => Ok(stream.into_inner().map(|e| e.unwrap().seq).collect::<Vec<_>>().await),
                Err(status) => Err(status),
            }
        }
    };
    for (from, to, code) in
        [(0, before + 1, Code::OutOfRange), (before + 1, 0, Code::OutOfRange), (2, 1, Code::InvalidArgument)]
    {
        let status = read(from, to).await.unwrap_err();
        assert_eq!(status.code(), code, "Read {from}..{to} of {before}: {status:?}");
    }
    assert!(read(0, before + 1).await.unwrap_err().message().contains(&format!("({before} entries")));
    assert_eq!(read(0, 0).await.unwrap(), (0..before).collect::<Vec<_>>());
    assert_eq!(read(1, before).await.unwrap(), (1..before).collect::<Vec<_>>());
    assert_eq!(read(before, 0).await.unwrap(), Vec::<u64>::new());
    let status = client.get_entry(pb::GetEntryRequest { tenant: "bad tenant!".into(), key: None }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    drop(client);
    let status = tokio::task::spawn_blocking(move || server.terminate()).await.unwrap();
    assert!(status.success());
    assert_eq!(crate::verify_offline(&data, TENANT).entries, before);
}

#[tokio::test]
async fn oversized_and_malformed_messages_are_refused() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &["--max-message-bytes", "65536"]);
    let mut client = server.client().await;
    let admin = server.admin();
    let qa = register(&mut client, &admin, TENANT, "qa", &[]).await;
    let before = size(&mut client).await;

    // A batch over the message limit (each event is small; together they are not).
    let events: Vec<_> = (0..40)
        .map(|i| {
            wire(body(TENANT, "s", "TestsPassed", &format!("o-{i}"), "qa", tests_passed_notes(&"y".repeat(2000))), &qa)
        })
        .collect();
    let status = client.append_batch(pb::AppendBatchRequest { events }).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Bytes that are not a protobuf message at all.
    let channel = server.channel().await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/release_ledger.v1.Ledger/Append");
    let garbage = vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01];
    let status =
        grpc.unary::<Vec<u8>, pb::AppendResponse, _>(tonic::Request::new(garbage), path, RawCodec).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(size(&mut client).await, before);
}

/// Sends raw bytes as the request message.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = pb::AppendResponse;
    type Encoder = RawEncoder;
    type Decoder = <tonic_prost::ProstCodec<(), pb::AppendResponse> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(&mut tonic_prost::ProstCodec::<(), pb::AppendResponse>::default())
    }
}

#[derive(Debug, Clone, Copy)]
struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        buf.put_slice(&item);
        Ok(())
    }
}

/// The root of the tenant's newest checkpoint: unchanged means nothing was stored.
async fn root(client: &mut proto::v1::ledger_client::LedgerClient<crate::Authed>) -> Vec<u8> {
    client
        .get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 })
        .await
        .unwrap()
        .into_inner()
        .root_hash
}

/// A status message quotes client input only clipped: short, whatever the input's size.
fn assert_short(what: &str, status: &tonic::Status) {
    assert!(
        status.message().len() < 400,
        "{what}: a {}-byte message: {:.200}…",
        status.message().len(),
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_ids_get_their_own_code_with_a_short_message_and_text_bounds_name_the_field() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let mut query = proto::v1::query_client::QueryClient::new(server.channel().await);
    let admin = server.admin();
    // Any ordinary type.
    let agent = register(&mut client, &admin, TENANT, "scanner", &[]).await;
    let huge = "r".repeat(100 * 1024);

    // Before: the 100 KB id was quoted whole into grpc-message, and the client failed on the
    // oversized header with RESOURCE_EXHAUSTED instead of reporting the status.
    let status = client
        .get_entry(pb::GetEntryRequest {
            tenant: TENANT.into(),
            key: Some(pb::get_entry_request::Key::EventId(huge.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{:.300}", status.message());
    assert_short("GetEntry", &status);
    assert!(status.message().contains("(102400 bytes)"), "{}", status.message());
    let status = query
        .get_release_summary(pb::GetReleaseSummaryRequest { tenant: TENANT.into(), release_id: huge.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{:.300}", status.message());
    assert!(status.message().contains("release_id"), "{}", status.message());
    assert_short("GetReleaseSummary", &status);
    let status = query
        .explain_decision(pb::ExplainDecisionRequest {
            tenant: TENANT.into(),
            release_id: huge.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{:.300}", status.message());
    assert_short("ExplainDecision", &status);
    let status = query
        .list_release_history(pb::ListReleaseHistoryRequest {
            tenant: TENANT.into(),
            module: huge.clone(),
            environment: "prod".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{:.300}", status.message());
    assert_short("ListReleaseHistory", &status);
    let status = client.get_checkpoint(pb::GetCheckpointRequest { tenant: huge.clone(), size: 0 }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{:.300}", status.message());
    assert_short("GetCheckpoint", &status);

    // A malformed page token is refused, naming the field; a well-formed one pages.
    let list = |page_token: &str| pb::ListReleasesRequest {
        tenant: TENANT.into(),
        page_size: 10,
        page_token: page_token.into(),
        ..Default::default()
    };
    for token in ["not a token!", "%%%", huge.as_str()] {
        let status = query.list_releases(list(token)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{token:.20}: {:.300}", status.message());
        assert!(status.message().contains("page_token"), "{}", status.message());
        assert_short("ListReleases", &status);
    }
    query.list_releases(list("release-1")).await.unwrap();

    // Text bounds: one byte over 4 KiB, an over-long occurredAt, an over-long event id. Each
    // is INVALID_ARGUMENT naming its field, alone or in a batch, and nothing is stored.
    let violation = |id: &str, detail: usize| {
        body(
            TENANT,
            "s",
            "PolicyViolationDetected",
            id,
            "scanner",
            serde_json::json!({"rule": "r", "detail": "d".repeat(detail)}),
        )
    };
    let mut late = serde_json::from_slice::<serde_json::Value>(&violation("t2", 10)).unwrap();
    late["occurredAt"] = format!("2025-05-23T09:32:00.{}Z", "0".repeat(200)).into();
    let mut long_id = serde_json::from_slice::<serde_json::Value>(&violation("t3", 10)).unwrap();
    long_id["eventId"] = "e".repeat(20_000).into();
    let cases = [
        ("detail of 4 KiB + 1", violation("t1", 4097), "data.detail"),
        ("occurredAt of 221 bytes", serde_json::to_vec(&late).unwrap(), "occurredAt"),
        ("eventId of 20,000 bytes", serde_json::to_vec(&long_id).unwrap(), "eventId"),
    ];
    let (size_before, root_before) = (size(&mut client).await, root(&mut client).await);
    for (name, bad, field) in cases {
        let status = client.append(pb::AppendRequest { event: Some(wire(bad.clone(), &agent)) }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {:.300}", status.message());
        assert!(status.message().contains(&format!("invalid {field}")), "{name}: {}", status.message());
        assert_short(name, &status);
        let batch = vec![wire(violation(&format!("{field}-ok"), 1), &agent), wire(bad, &agent)];
        let status = client.append_batch(pb::AppendBatchRequest { events: batch }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name} in a batch: {:.300}", status.message());
        assert_eq!(size(&mut client).await, size_before, "{name} stored something");
        assert_eq!(root(&mut client).await, root_before, "{name} changed the log");
    }
    // Exactly 4 KiB is within the bound.
    client.append(pb::AppendRequest { event: Some(wire(violation("t4", 4096), &agent)) }).await.unwrap();
}
