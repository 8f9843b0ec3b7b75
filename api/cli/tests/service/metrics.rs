//! The Prometheus exposition at `/metrics`: parsed by the reference Python parser
//! (`tests/interop/check_metrics.py`, strict), and its counters checked against the appends
//! this test made, accepted and rejected.

// Test code may unwrap (clippy.toml), helpers outside #[test] functions included.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use futures::StreamExt as _;
use proto::v1 as pb;

use crate::interop::run_script;
use crate::{body, register, temp_data_dir, tests_passed, wire, Server};

const TENANT: &str = "metrics-1";

/// `GET /metrics` over a plain HTTP/1.1 connection; returns the body.
pub(crate) fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    body.to_owned()
}

fn assert_sample(text: &str, series: &str, value: u64) {
    let line = format!("{series} {value}");
    assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
}

#[tokio::test]
async fn metrics_parse_strictly_and_count_appends_by_method_and_result() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let admin = server.admin();
    let qa = register(&mut client, &admin, TENANT, "qa", &["TestsPassed"]).await;
    let event = |id: &str| body(TENANT, "release/r1", "TestsPassed", id, "qa", tests_passed(1));

    // Accepted: two single appends (plus the registration) and one batch of three.
    for id in ["m-1", "m-2"] {
        client.append(pb::AppendRequest { event: Some(wire(event(id), &qa)) }).await.unwrap();
    }
    let batch = ["m-3", "m-4", "m-5"].map(|id| wire(event(id), &qa)).to_vec();
    client.append_batch(pb::AppendBatchRequest { events: batch }).await.unwrap();

    // Rejected: a corrupted signature, malformed JSON, and a batch with a type the key lacks.
    let mut forged = wire(event("m-6"), &qa);
    forged.envelope.as_mut().unwrap().signatures[0].sig[0] ^= 0x01;
    let status = client.append(pb::AppendRequest { event: Some(forged) }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let malformed = wire(b"{\"tenant\": ".to_vec(), &qa);
    let status = client.append(pb::AppendRequest { event: Some(malformed) }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let coverage = serde_json::json!({"module": "billing", "version": "1.4.0", "percent": 91.5});
    let denied = body(TENANT, "release/r1", "CoverageVerified", "m-7", "qa", coverage);
    let status = client.append_batch(pb::AppendBatchRequest { events: vec![wire(denied, &qa)] }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // One open subscription.
    let mut subscription =
        client.subscribe(pb::SubscribeRequest { tenant: TENANT.into(), from_seq: 0 }).await.unwrap().into_inner();
    assert_eq!(subscription.next().await.unwrap().unwrap().seq, 0);

    let url = format!("http://{}/metrics", server.metrics);
    let summary = run_script(
        &server,
        "check_metrics.py",
        &[
            "--url",
            &url,
            "--require-result",
            "Append:ok",
            "--require-result",
            "AppendBatch:ok",
            "--require-result",
            "Append:unauthenticated",
            "--require-result",
            "Append:invalid_argument",
            "--require-result",
            "AppendBatch:permission_denied",
        ],
    );
    assert_eq!(
        summary["appendRequests"],
        serde_json::json!({
            "Append:ok": 3, "AppendBatch:ok": 1, "Append:unauthenticated": 1,
            "Append:invalid_argument": 1, "AppendBatch:permission_denied": 1,
        }),
        "{summary}"
    );
    assert_eq!(summary["entriesAppended"], 6, "{summary}");
    assert_eq!(summary["subscribers"], 1, "{summary}");

    let text = scrape(server.metrics);
    assert_sample(&text, r#"ledger_append_requests_total{method="Append",result="ok"}"#, 3);
    assert_sample(&text, r#"ledger_append_requests_total{method="AppendBatch",result="ok"}"#, 1);
    assert_sample(&text, r#"ledger_append_requests_total{method="Append",result="unauthenticated"}"#, 1);
    assert_sample(&text, r#"ledger_append_requests_total{method="Append",result="invalid_argument"}"#, 1);
    assert_sample(&text, r#"ledger_append_requests_total{method="AppendBatch",result="permission_denied"}"#, 1);
    assert_sample(&text, r#"ledger_append_duration_seconds_count{method="Append"}"#, 5);
    assert_sample(&text, r#"ledger_append_duration_seconds_count{method="AppendBatch"}"#, 2);
    assert_sample(&text, "ledger_entries_appended_total", 6);
    // One request at a time: no single-event signature waited for company.
    assert_sample(&text, "ledger_signature_batches_combined_total", 0);
    assert_sample(&text, "ledger_signatures_combined_total", 0);
    // Registration, two singles and the batch: four group commits (one fsync each).
    assert_sample(&text, "ledger_commit_batch_entries_count", 4);
    assert_sample(&text, "ledger_commit_batch_entries_sum", 6);
    assert_sample(&text, "ledger_fsync_duration_seconds_count", 4);
    assert_sample(&text, "ledger_subscribers", 1);
    drop(subscription);
}

/// Single appends in flight together, over separate connections to a real server: their
/// signatures are verified in shared batches (`ledger_signatures_combined_total` rises), every
/// forged one is refused as `UNAUTHENTICATED` and leaves nothing, and every genuine one is
/// stored.
#[tokio::test]
async fn concurrent_single_appends_share_batch_verifications_and_a_forged_one_fails_alone() {
    const CLIENTS: usize = 12;
    const PER_CLIENT: usize = 4;
    const MAX_ROUNDS: usize = 60;
    let tenant = "metrics-combined";
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut first = server.client().await;
    let qa = std::sync::Arc::new(register(&mut first, &server.admin(), tenant, "qa", &["TestsPassed"]).await);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(server.client().await);
    }
    let (mut stored, mut forged_total) = (0u64, 0usize);
    let combined = |text: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with("ledger_signatures_combined_total ")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    for round in 0..MAX_ROUNDS {
        let tasks: Vec<_> = clients
            .iter()
            .cloned()
            .enumerate()
            .map(|(c, mut client)| {
                let qa = qa.clone();
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for i in 0..PER_CLIENT {
                        let id = format!("c-{round}-{c}-{i}");
                        let mut event =
                            wire(body(tenant, "release/r1", "TestsPassed", &id, "qa", tests_passed(1)), &qa);
                        let forged = (c + i) % 5 == 3;
                        if forged {
                            event.envelope.as_mut().unwrap().signatures[0].sig[5] ^= 0x40;
                        }
                        let result = client.append(pb::AppendRequest { event: Some(event) }).await;
                        outcomes.push((forged, result.map(|_| ()).map_err(|status| status.code())));
                    }
                    outcomes
                })
            })
            .collect();
        for task in tasks {
            for (forged, outcome) in task.await.unwrap() {
                if forged {
                    forged_total += 1;
                    assert_eq!(outcome, Err(tonic::Code::Unauthenticated));
                } else {
                    assert_eq!(outcome, Ok(()));
                    stored += 1;
                }
            }
        }
        if combined(&scrape(server.metrics)) > 0 {
            break;
        }
    }
    let text = scrape(server.metrics);
    assert!(combined(&text) >= 2, "no single-event signatures were batched in {MAX_ROUNDS} rounds:\n{text}");
    assert!(forged_total > 0);
    let head = first.get_checkpoint(pb::GetCheckpointRequest { tenant: tenant.into(), size: 0 }).await.unwrap();
    // The registration, then exactly the genuine appends.
    assert_eq!(head.into_inner().size, 1 + stored);
}
