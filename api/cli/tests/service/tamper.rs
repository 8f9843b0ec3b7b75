//! The CLI trusts no server: a proxy between it and a real server alters one thing in what it
//! serves — a payload byte, a missing entry, a checkpoint, a proof node, the entry a proof is
//! about — and `tail`, `checkpoint`, `prove`, `oscal` and `evidence` each refuse with exit 1 (verification
//! failed), naming what did not verify. The same commands through an honest proxy succeed, so the proxy
//! itself changes nothing else.
//!
//! Checked by breaking it: with `ledger_client::checked_entry` returning the entry without
//! `check_hashes` the payload case passes through (`tail` exits 0), and without its link check
//! the missing-entry case does.

use std::path::Path;
use std::pin::Pin;

use futures::{Stream, StreamExt as _};
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use proto::v1::ledger_server::{Ledger, LedgerServer};
use proto::v1::query_client::QueryClient;
use proto::v1::query_server::{Query, QueryServer};
use tonic::{Request, Response, Status};

use crate::{binary, body, register, temp_data_dir, tests_passed, wire, Authed, Server};

const TENANT: &str = "tamper";

/// What the proxy alters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    Nothing,
    /// Flips a byte of this seq's payload wherever an entry is served.
    PayloadByte(u64),
    /// Leaves this seq out of streamed reads.
    DropEntry(u64),
    /// Changes the root hash in every checkpoint note.
    CheckpointRoot,
    /// Flips a byte of the first node of every inclusion proof.
    ProofNode,
    /// Serves the next seq's (genuine) entry when asked for this one.
    OtherEntry(u64),
}

struct Proxy {
    upstream: LedgerClient<Authed>,
    tamper: Tamper,
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::Entry, Status>> + Send>>;

impl Proxy {
    fn entry(&self, mut entry: pb::Entry) -> pb::Entry {
        if self.tamper == Tamper::PayloadByte(entry.seq) {
            if let Some(pb::entry::Body::Envelope(envelope)) = &mut entry.body {
                let last = envelope.payload.len() - 2;
                envelope.payload[last] ^= 0x01;
            }
        }
        entry
    }

    fn stream(&self, upstream: tonic::Streaming<pb::Entry>) -> EntryStream {
        let tamper = self.tamper;
        let this = Self { upstream: self.upstream.clone(), tamper };
        Box::pin(upstream.filter_map(move |item| {
            let out = match item {
                Ok(entry) if tamper == Tamper::DropEntry(entry.seq) => None,
                Ok(entry) => Some(Ok(this.entry(entry))),
                Err(status) => Some(Err(status)),
            };
            std::future::ready(out)
        }))
    }
}

#[tonic::async_trait]
impl Ledger for Proxy {
    type ReadStream = EntryStream;
    type SubscribeStream = EntryStream;

    async fn append(&self, r: Request<pb::AppendRequest>) -> Result<Response<pb::AppendResponse>, Status> {
        self.upstream.clone().append(r.into_inner()).await
    }

    async fn append_batch(
        &self,
        r: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        self.upstream.clone().append_batch(r.into_inner()).await
    }

    async fn read(&self, r: Request<pb::ReadRequest>) -> Result<Response<EntryStream>, Status> {
        let upstream = self.upstream.clone().read(r.into_inner()).await?.into_inner();
        Ok(Response::new(self.stream(upstream)))
    }

    async fn subscribe(&self, r: Request<pb::SubscribeRequest>) -> Result<Response<EntryStream>, Status> {
        let upstream = self.upstream.clone().subscribe(r.into_inner()).await?.into_inner();
        Ok(Response::new(self.stream(upstream)))
    }

    async fn get_entry(&self, r: Request<pb::GetEntryRequest>) -> Result<Response<pb::Entry>, Status> {
        let mut request = r.into_inner();
        if let Some(pb::get_entry_request::Key::Seq(seq)) = request.key {
            if self.tamper == Tamper::OtherEntry(seq) {
                request.key = Some(pb::get_entry_request::Key::Seq(seq + 1));
            }
        }
        let entry = self.upstream.clone().get_entry(request).await?.into_inner();
        Ok(Response::new(self.entry(entry)))
    }

    async fn get_checkpoint(&self, r: Request<pb::GetCheckpointRequest>) -> Result<Response<pb::Checkpoint>, Status> {
        let mut checkpoint = self.upstream.clone().get_checkpoint(r.into_inner()).await?.into_inner();
        if self.tamper == Tamper::CheckpointRoot {
            // The note's third line is the root hash in base64: change its first character.
            let mut lines: Vec<String> = checkpoint.note.lines().map(str::to_owned).collect();
            let root = &mut lines[2];
            let first = if root.starts_with('A') { "B" } else { "A" };
            root.replace_range(0..1, first);
            checkpoint.note = lines.join("\n") + "\n";
        }
        Ok(Response::new(checkpoint))
    }

    async fn get_inclusion_proof(
        &self,
        r: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let mut proof = self.upstream.clone().get_inclusion_proof(r.into_inner()).await?.into_inner();
        if self.tamper == Tamper::ProofNode {
            proof.path[0][0] ^= 0x01;
        }
        Ok(Response::new(proof))
    }

    async fn get_consistency_proof(
        &self,
        r: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        self.upstream.clone().get_consistency_proof(r.into_inner()).await
    }

    async fn get_info(&self, r: Request<pb::GetInfoRequest>) -> Result<Response<pb::LedgerInfo>, Status> {
        self.upstream.clone().get_info(r.into_inner()).await
    }

    async fn list_keys(&self, r: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        self.upstream.clone().list_keys(r.into_inner()).await
    }
}

/// The query service, passed through unchanged: what the CLI takes from it (a timeline's seqs,
/// attestations) it checks against the ledger service's answers, which the proxy alters.
struct QueryProxy {
    upstream: QueryClient<Authed>,
}

macro_rules! pass_through {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl Query for QueryProxy {
            $(async fn $method(&self, r: Request<$request>) -> Result<Response<$response>, Status> {
                self.upstream.clone().$method(r.into_inner()).await
            })*
        }
    };
}

pass_through! {
    get_release_summary(pb::GetReleaseSummaryRequest) -> pb::ReleaseSummary;
    list_releases(pb::ListReleasesRequest) -> pb::ListReleasesResponse;
    list_release_history(pb::ListReleaseHistoryRequest) -> pb::ListReleaseHistoryResponse;
    list_approvals(pb::ListApprovalsRequest) -> pb::ListApprovalsResponse;
    get_risk_score(pb::GetRiskScoreRequest) -> pb::RiskScore;
    explain_decision(pb::ExplainDecisionRequest) -> pb::Decision;
    get_release_timeline(pb::GetReleaseTimelineRequest) -> pb::ReleaseTimeline;
    replay_as_of(pb::ReplayAsOfRequest) -> pb::ReplayAsOfResponse;
    get_attestations(pb::GetAttestationsRequest) -> pb::GetAttestationsResponse;
    get_governance_status(pb::GetGovernanceStatusRequest) -> pb::GovernanceStatus;
}

/// Starts a proxy to `server` that alters what `tamper` says; returns its URL.
async fn proxy(server: &Server, tamper: Tamper) -> String {
    let upstream = server.client().await;
    let query = QueryClient::new(server.channel().await).max_decoding_message_size(usize::MAX);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LedgerServer::new(Proxy { upstream, tamper }))
            .add_service(
                QueryServer::new(QueryProxy { upstream: query })
                    .max_decoding_message_size(usize::MAX)
                    .max_encoding_message_size(usize::MAX),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{address}")
}

/// Runs the CLI against `url` (with the ledger key pinned); returns its exit code and stderr.
async fn run(url: &str, cwd: &Path, ledger_pub: &Path, args: &[&str]) -> (i32, String) {
    let mut command = std::process::Command::new(binary());
    command.current_dir(cwd).env("RELEASE_LEDGER_SERVER", url).args(args);
    if args[0] != "tail" {
        command.arg("--ledger-key").arg(ledger_pub);
    }
    // The proxy runs on this runtime: wait for the CLI on a blocking thread.
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    (output.status.code().unwrap(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_whatever_a_server_alters() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let key = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    for n in 0..6 {
        let event = wire(body(TENANT, "s", "TestsPassed", &format!("t-{n}"), "qa", tests_passed(n)), &key);
        client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }
    let ledger_pub = data.join("keys/ledger.pub");
    let cwd = dir.path();
    let tail = ["tail", "--tenant", TENANT];
    let checkpoint = ["checkpoint", "--tenant", TENANT];
    let prove = ["prove", "--tenant", TENANT, "--seq", "3"];

    // Through an honest proxy every command verifies.
    let honest = proxy(&server, Tamper::Nothing).await;
    for args in [&tail[..], &checkpoint[..], &prove[..]] {
        let (code, stderr) = run(&honest, cwd, &ledger_pub, args).await;
        assert_eq!(code, 0, "{args:?} through an honest proxy: {stderr}");
    }

    let cases: [(Tamper, &[&str], &str); 6] = [
        (Tamper::PayloadByte(4), &tail, "seq 4: "),
        (Tamper::DropEntry(4), &tail, "seq 5: does not link to seq 3"),
        (Tamper::CheckpointRoot, &checkpoint, "checkpoint does not verify"),
        (Tamper::CheckpointRoot, &prove, "checkpoint does not verify"),
        (Tamper::ProofNode, &prove, "inclusion proof of seq 3 does not verify"),
        (Tamper::OtherEntry(3), &prove, "seq 3: the entry served differs from the entry proven"),
    ];
    for (tamper, args, message) in cases {
        let url = proxy(&server, tamper).await;
        let (code, stderr) = run(&url, cwd, &ledger_pub, args).await;
        assert_eq!(code, 1, "{tamper:?} {args:?}: exit {code}: {stderr}");
        assert!(stderr.contains(message), "{tamper:?} {args:?}: expected {message:?} in: {stderr}");
    }
    // The payload case names what failed: the payload's hash.
    let url = proxy(&server, Tamper::PayloadByte(2)).await;
    let (_, stderr) = run(&url, cwd, &ledger_pub, &["prove", "--tenant", TENANT, "--seq", "2"]).await;
    assert!(stderr.contains("seq 2: ") && stderr.contains("payload"), "{stderr}");
}

/// `oscal` reads the whole log and proves every decision: a changed decision payload, an entry
/// left out of the read, a read that stops short, a checkpoint root or a proof node changed by
/// the proxy each stop it with exit 1 and nothing written.
///
/// Checked by breaking it: without `prove_inclusion` of each decision in
/// `ledger_client::oscal`, the proof-node case exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oscal_refuses_whatever_a_server_alters() {
    let (dir, data, server, _) = crate::gate::demo_server();
    let out = dir.path().join("ar.json");
    let args = ["oscal", "--tenant", "vetclinic-001", "--out", out.to_str().unwrap()];
    refuses_whatever_a_server_alters(&dir, &data, &server, &args, &out).await;
}

/// `evidence` reads the whole log, proves every entry of the pack and checks every attestation:
/// the same alterations stop it with exit 1 and no pack written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_refuses_whatever_a_server_alters() {
    let (dir, data, server, [approved, _, _]) = crate::gate::demo_server();
    let out = dir.path().join("pack");
    let args = ["evidence", "--tenant", "vetclinic-001", "--release", &approved, "--out", out.to_str().unwrap()];
    refuses_whatever_a_server_alters(&dir, &data, &server, &args, &out).await;
}

/// Runs `args` (a command writing `out` and printing `decisionSeqs` and `checkpointSize` with
/// `--json`) through an honest proxy, then through proxies that alter a decision's payload,
/// leave an entry out, stop the read short, change the checkpoint's root or a proof node.
async fn refuses_whatever_a_server_alters(
    dir: &tempfile::TempDir,
    data: &Path,
    server: &Server,
    args: &[&str],
    out: &Path,
) {
    let ledger_pub = data.join("keys/ledger.pub");
    let cwd = dir.path();

    let honest = proxy(server, Tamper::Nothing).await;
    let mut command = std::process::Command::new(binary());
    command
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", &honest)
        .args(args)
        .args(["--json", "--ledger-key"])
        .arg(&ledger_pub);
    let output = tokio::task::spawn_blocking(move || command.output().unwrap()).await.unwrap();
    assert!(output.status.success(), "through an honest proxy: {output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let decision = summary["decisionSeqs"][0].as_u64().unwrap();
    let last = summary["checkpointSize"].as_u64().unwrap() - 1;
    if out.is_dir() {
        std::fs::remove_dir_all(out).unwrap()
    } else {
        std::fs::remove_file(out).unwrap()
    }

    let cases = [
        (Tamper::PayloadByte(decision), format!("seq {decision}: ")),
        (Tamper::DropEntry(decision - 1), format!("seq {decision}: does not link to seq {}", decision - 2)),
        (Tamper::DropEntry(last), format!("seq {last}: the read ended before it")),
        (Tamper::CheckpointRoot, "checkpoint does not verify".to_owned()),
        (Tamper::ProofNode, "inclusion proof of seq ".to_owned()),
    ];
    for (tamper, message) in cases {
        let url = proxy(server, tamper).await;
        let (code, stderr) = run(&url, cwd, &ledger_pub, args).await;
        assert_eq!(code, 1, "{tamper:?}: exit {code}: {stderr}");
        assert!(stderr.contains(&message), "{tamper:?}: expected {message:?} in: {stderr}");
        assert!(!out.exists(), "{tamper:?}: nothing written");
    }
}
