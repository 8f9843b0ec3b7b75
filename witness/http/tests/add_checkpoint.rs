//! The witness over real HTTP on loopback: every status tlog-witness specifies, durable and
//! never-rolled-back state, atomic state files, serialised concurrent requests, and a client
//! quorum over three witnesses with one down.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ledger::merkle::{consistency_path, root_of_leaves, LeafSlice, TreeHasher as _};
use ledger::{KeyPair, SystemClock};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use witness::note::{ED25519_NOTE_TYPE, SIGNATURE_PREFIX};
use witness::witness::{origin_hash, AddCheckpoint};
use witness::{verify_cosigned, Cosigner, Hash32, Policy, SignedNote, Vkey, Witness, WitnessHasher};
use witness_http::{submit, SubmitError, WitnessClient};

const ORIGIN: &str = "example.com/log";

/// A log: a key and a list of SHA-256 leaves; `fork` leaves differ from the main ones.
struct Log {
    key: KeyPair,
    leaves: Vec<Hash32>,
}

impl Log {
    fn new(size: usize, fork: u8) -> Self {
        let leaves = (0..size).map(|i| WitnessHasher::hash_leaf(&[i as u8, fork])).collect();
        Self { key: KeyPair::from_seed(&[1; 32]), leaves }
    }

    fn vkey(&self) -> Vkey {
        Vkey::new(ORIGIN, ED25519_NOTE_TYPE, self.key.verifying_key()).unwrap()
    }

    fn root(&self, size: usize) -> Hash32 {
        root_of_leaves::<WitnessHasher>(&self.leaves[..size])
    }

    fn text(&self, size: usize) -> String {
        format!("{ORIGIN}\n{size}\n{}\n", ledger::b64::encode(self.root(size)))
    }

    fn note(&self, size: usize) -> String {
        let text = self.text(size);
        SignedNote { signatures: vec![witness::cosig::sign_note(ORIGIN, &self.key, &text)], text }.to_note()
    }

    fn proof(&self, old: u64, new: u64) -> Vec<Hash32> {
        consistency_path::<WitnessHasher, _>(&LeafSlice::<WitnessHasher>(&self.leaves), old, new).unwrap()
    }

    fn body(&self, old: usize, size: usize) -> String {
        let proof = if old == 0 { Vec::new() } else { self.proof(old as u64, size as u64) };
        AddCheckpoint::body(old as u64, &proof, &self.note(size))
    }
}

struct Running {
    witness: Arc<Witness>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

fn open(dir: &Path, seed: u8, logs: Vec<Vkey>) -> Arc<Witness> {
    let cosigner = Cosigner::new(&format!("w{seed}.example"), KeyPair::from_seed(&[seed; 32])).unwrap();
    Arc::new(Witness::open(cosigner, logs, dir, Arc::new(SystemClock)).unwrap())
}

async fn start(witness: Arc<Witness>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = witness_http::router(witness.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Running { witness, addr, task }
}

/// A raw HTTP/1.1 exchange: (status, content type, body).
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    read_response(stream).await
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    read_response(stream).await
}

async fn read_response(mut stream: tokio::net::TcpStream) -> (u16, String, String) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn witness_cosigns_extensions_and_refuses_split_views_and_rollbacks() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(20, 0);
    let fork = Log::new(20, 1);
    let running = start(open(dir.path(), 10, vec![log.vkey()])).await;
    let addr = running.addr;

    // First contact: old 0, no proof; the answer is one cosignature line that verifies.
    let (status, _, body) = post(addr, "/add-checkpoint", log.body(0, 10).as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(SIGNATURE_PREFIX) && body.ends_with('\n') && body.lines().count() == 1, "{body}");
    let line = witness::note::parse_signature_line(body.trim_end()).unwrap();
    let vkey = running.witness.cosigner().vkey().clone();
    assert!(witness::verify_cosignature(&vkey, &log.text(10), &line).unwrap() > 1_600_000_000);
    let state_file = running.witness.state_file(ORIGIN);
    let stored = std::fs::read_to_string(&state_file).unwrap();
    assert!(stored.starts_with(&log.text(10)) && stored.ends_with(&body), "{stored}");

    // An extension with its consistency proof; the same checkpoint again is fine too.
    let (status, _, body) = post(addr, "/add-checkpoint", log.body(10, 15).as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = post(addr, "/add-checkpoint", log.body(15, 15).as_bytes()).await;
    assert_eq!(status, 200, "{body}");

    // Split view: another tree of the same size (422), and from size 0 (409 with our size).
    let (status, _, body) = post(addr, "/add-checkpoint", fork.body(15, 15).as_bytes()).await;
    assert_eq!((status, body.contains("another root")), (422, true), "{body}");
    let (status, content_type, body) = post(addr, "/add-checkpoint", fork.body(0, 15).as_bytes()).await;
    assert_eq!((status, content_type.as_str(), body.as_str()), (409, "text/x.tlog.size", "15\n"));
    // Non-extension: the fork's size 18 with the fork's own (valid for the fork) proof.
    let (status, _, body) = post(addr, "/add-checkpoint", fork.body(15, 18).as_bytes()).await;
    assert_eq!((status, body.contains("does not verify")), (422, true), "{body}");
    // Rollback: size 5 after 15, however asked.
    let (status, _, body) = post(addr, "/add-checkpoint", log.body(5, 5).as_bytes()).await;
    assert_eq!((status, body.as_str()), (409, "15\n"));
    let rollback = AddCheckpoint::body(15, &[], &log.note(5));
    let (status, _, body) = post(addr, "/add-checkpoint", rollback.as_bytes()).await;
    assert_eq!((status, body.contains("old size 15 is above the checkpoint size 5")), (400, true), "{body}");
    // Old size 0 against a witness at 15 is a 409, whatever else the request holds.
    let (status, _, _) = post(addr, "/add-checkpoint", log.body(0, 16).as_bytes()).await;
    assert_eq!(status, 409);

    // None of the refusals touched the state: still size 15, tree `log`, no temporary file.
    let stored = std::fs::read_to_string(&state_file).unwrap();
    assert!(stored.starts_with(&log.text(15)), "{stored}");
    assert_eq!(dir_listing(dir.path()), [origin_hash(ORIGIN)]);

    // The monitoring endpoint serves the cosigned checkpoint.
    let (status, _, note) = get(addr, &format!("/{}/checkpoint", origin_hash(ORIGIN))).await;
    assert_eq!((status, note.as_str()), (200, stored.as_str()));
    let (status, _, _) = get(addr, &format!("/{}/checkpoint", origin_hash("other.example/log"))).await;
    assert_eq!(status, 404);
    running.task.abort();
}

/// Checked by breaking it: without the state file write (memory only), the restarted witness
/// cosigns size 5 after size 10.
#[tokio::test]
async fn witness_state_survives_a_restart_and_is_never_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(20, 0);
    let first = start(open(dir.path(), 10, vec![log.vkey()])).await;
    assert_eq!(post(first.addr, "/add-checkpoint", log.body(0, 10).as_bytes()).await.0, 200);
    first.task.abort();
    drop(first);

    let second = start(open(dir.path(), 10, vec![log.vkey()])).await;
    let (status, _, body) = post(second.addr, "/add-checkpoint", log.body(0, 5).as_bytes()).await;
    assert_eq!((status, body.as_str()), (409, "10\n"), "the restarted witness remembers size 10");
    let (status, _, body) = post(second.addr, "/add-checkpoint", log.body(5, 5).as_bytes()).await;
    assert_eq!((status, body.as_str()), (409, "10\n"));
    assert_eq!(post(second.addr, "/add-checkpoint", log.body(10, 12).as_bytes()).await.0, 200);

    // A state file edited behind the witness's back is refused, not trusted.
    second.task.abort();
    let file = dir.path().join(origin_hash(ORIGIN));
    let tampered = std::fs::read_to_string(&file).unwrap().replacen("\n12\n", "\n2\n", 1);
    std::fs::write(&file, tampered).unwrap();
    let third = start(open(dir.path(), 10, vec![log.vkey()])).await;
    let (status, _, body) = post(third.addr, "/add-checkpoint", log.body(2, 14).as_bytes()).await;
    assert_eq!((status, body.contains("state file")), (500, true), "{body}");
    third.task.abort();
}

#[tokio::test]
async fn unknown_logs_bad_signatures_and_malformed_bodies_get_their_status_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(12, 0);
    let running = start(open(dir.path(), 10, vec![log.vkey()])).await;
    let addr = running.addr;

    // Unknown origin: 404.
    let other = log.note(3).replace(ORIGIN, "other.example/log");
    let (status, _, body) = post(addr, "/add-checkpoint", AddCheckpoint::body(0, &[], &other).as_bytes()).await;
    assert_eq!((status, body.contains("unknown log origin other.example/log")), (404, true), "{body}");
    // Known origin, another key's signature only: 403.
    let stranger = KeyPair::from_seed(&[2; 32]);
    let text = log.text(3);
    let signed_by_stranger =
        SignedNote { signatures: vec![witness::cosig::sign_note(ORIGIN, &stranger, &text)], text: text.clone() };
    let (status, _, body) =
        post(addr, "/add-checkpoint", AddCheckpoint::body(0, &[], &signed_by_stranger.to_note()).as_bytes()).await;
    assert_eq!((status, body.contains("no signature of the log key")), (403, true), "{body}");
    // The trusted key's line with a bad signature: 403.
    let mut forged = SignedNote::parse(&log.note(3)).unwrap();
    forged.signatures[0].signature[0] ^= 1;
    let (status, _, body) =
        post(addr, "/add-checkpoint", AddCheckpoint::body(0, &[], &forged.to_note()).as_bytes()).await;
    assert_eq!((status, body.contains("does not verify")), (403, true), "{body}");

    // Malformed: 400, whatever is wrong.
    let good = log.body(0, 3);
    for (body, expected) in [
        ("".to_owned(), "no old size line"),
        (good.replace("old 0\n", "old 00\n"), "leading zeroes"),
        (good.replace("old 0\n", "old -1\n"), "leading zeroes"),
        (good.replace("old 0\n", "new 0\n"), "is not `old <size>`"),
        (good.replace("old 0\n\n", "old 0\nnot-base64!\n\n"), "consistency proof line 1"),
        (good.replace("old 0\n\n", "old 0\nAAAA\n\n"), "not 32 bytes"),
        (format!("old 0\n{}\n", ledger::b64::encode([0u8; 32])), "no empty line"),
        (good.replace("\n3\n", "\nthree\n"), "tree size"),
        (good.trim_end().to_owned(), "does not end in a newline"),
        (AddCheckpoint::body(0, &vec![[0; 32]; 64], &log.note(3)), "more than 63"),
    ] {
        let (status, _, answer) = post(addr, "/add-checkpoint", body.as_bytes()).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert!(answer.contains(expected), "{body:?}: {answer}");
    }
    let (status, _, _) = post(addr, "/add-checkpoint", &[0xff, 0xfe]).await;
    assert_eq!(status, 400);
    // A size-0 checkpoint must have the empty root; an old-size-0 request must have no proof.
    let empty = Log { key: KeyPair::from_seed(&[1; 32]), leaves: Vec::new() };
    assert_eq!(empty.root(0), WitnessHasher::empty_root());
    let wrong_empty =
        SignedNote { text: format!("{ORIGIN}\n0\n{}\n", ledger::b64::encode([1u8; 32])), signatures: Vec::new() };
    let wrong_empty =
        SignedNote { signatures: vec![witness::cosig::sign_note(ORIGIN, &log.key, &wrong_empty.text)], ..wrong_empty };
    let (status, _, body) =
        post(addr, "/add-checkpoint", AddCheckpoint::body(0, &[], &wrong_empty.to_note()).as_bytes()).await;
    assert_eq!((status, body.contains("empty tree")), (422, true), "{body}");
    let (status, _, body) =
        post(addr, "/add-checkpoint", AddCheckpoint::body(0, &log.proof(2, 3), &log.note(3)).as_bytes()).await;
    assert_eq!((status, body.contains("takes no consistency proof")), (422, true), "{body}");
    // Not a POST: 405.
    assert_eq!(get(addr, "/add-checkpoint").await.0, 405);

    // Nothing was stored by any of it.
    assert!(dir_listing(dir.path()).is_empty(), "{:?}", dir_listing(dir.path()));
    assert_eq!(post(addr, "/add-checkpoint", empty.body(0, 0).as_bytes()).await.0, 200);
    assert_eq!(dir_listing(dir.path()), [origin_hash(ORIGIN)]);
    running.task.abort();
}

#[tokio::test]
async fn a_failed_state_write_returns_500_cosigns_nothing_and_leaves_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::new(12, 0);
    let running = start(open(dir.path(), 10, vec![log.vkey()])).await;
    assert_eq!(post(running.addr, "/add-checkpoint", log.body(0, 4).as_bytes()).await.0, 200);
    let file = dir.path().join(origin_hash(ORIGIN));
    let before = std::fs::read(&file).unwrap();
    // A directory where the temporary file goes: the write fails before the rename.
    let obstacle = dir.path().join(format!("{}.tmp", origin_hash(ORIGIN)));
    std::fs::create_dir(&obstacle).unwrap();
    let (status, _, body) = post(running.addr, "/add-checkpoint", log.body(4, 9).as_bytes()).await;
    assert_eq!(status, 500, "{body}");
    assert!(!body.contains(SIGNATURE_PREFIX), "no cosignature without durable state: {body}");
    assert_eq!(std::fs::read(&file).unwrap(), before, "the state file is untouched");
    std::fs::remove_dir(&obstacle).unwrap();
    // Memory was not advanced either: the witness is still at 4.
    let (status, _, body) = post(running.addr, "/add-checkpoint", log.body(0, 9).as_bytes()).await;
    assert_eq!((status, body.as_str()), (409, "4\n"));
    assert_eq!(post(running.addr, "/add-checkpoint", log.body(4, 9).as_bytes()).await.0, 200);
    assert_eq!(dir_listing(dir.path()), [origin_hash(ORIGIN)]);
    running.task.abort();
}

/// Checked by breaking it: releasing the origin's mutex between reading the stored size and
/// persisting (re-locking only to store the new state) lets several of the 31 requests win.
#[tokio::test]
async fn concurrent_requests_from_the_same_old_size_advance_the_witness_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::new(40, 0));
    let running = start(open(dir.path(), 10, vec![log.vkey()])).await;
    assert_eq!(post(running.addr, "/add-checkpoint", log.body(0, 8).as_bytes()).await.0, 200);
    let requests: Vec<_> = (9..40)
        .map(|size| {
            let (log, addr) = (log.clone(), running.addr);
            tokio::spawn(async move { (size, post(addr, "/add-checkpoint", log.body(8, size).as_bytes()).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for request in requests {
        let (size, (status, _, body)) = request.await.unwrap();
        match status {
            200 => winners.push(size),
            409 => assert!(body.trim().parse::<u64>().unwrap() > 8, "{body}"),
            other => panic!("{size}: {other} {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one request advances from 8: {winners:?}");
    let latest = running.witness.latest(ORIGIN).unwrap().unwrap();
    assert_eq!(latest.size, winners[0] as u64);
    running.task.abort();
}

fn policy(log: &Log, witnesses: &[(&Running, u8)], down: Option<(u8, SocketAddr)>) -> Policy {
    let mut text = format!("log {}\n", log.vkey());
    for (running, seed) in witnesses {
        text.push_str(&format!("witness W{seed} {} http://{}\n", running.witness.cosigner().vkey(), running.addr));
    }
    if let Some((seed, addr)) = down {
        let vkey = Cosigner::new(&format!("w{seed}.example"), KeyPair::from_seed(&[seed; 32])).unwrap().vkey().clone();
        text.push_str(&format!("witness W{seed} {vkey} http://{addr}\n"));
    }
    let names: Vec<String> =
        witnesses.iter().map(|(_, s)| format!("W{s}")).chain(down.map(|(s, _)| format!("W{s}"))).collect();
    text.push_str(&format!("group all-witnesses 2 {}\nquorum all-witnesses\n", names.join(" ")));
    Policy::parse(text.as_bytes()).unwrap()
}

fn clients(policy: &Policy) -> Vec<WitnessClient> {
    policy
        .witnesses
        .iter()
        .map(|w| {
            WitnessClient::new(&w.name, w.url.as_deref().unwrap(), w.vkey.clone(), Duration::from_secs(5)).unwrap()
        })
        .collect()
}

/// Submits `size` of `log` to every witness of the policy from `old` sizes; returns the
/// cosigned note and the errors.
async fn cosign(log: &Log, size: usize, clients: &[WitnessClient], old: &[u64]) -> (String, Vec<SubmitError>) {
    let note = log.note(size);
    let mut parsed = SignedNote::parse(&note).unwrap();
    let mut errors = Vec::new();
    let proofs = |old: u64, new: u64| Ok(log.proof(old, new));
    for (client, old) in clients.iter().zip(old) {
        match submit(client, &note, &parsed.text, size as u64, *old, &proofs).await {
            Ok(obtained) => parsed.signatures.extend(obtained.lines),
            Err(error) => errors.push(error),
        }
    }
    (parsed.to_note(), errors)
}

#[tokio::test]
async fn three_witnesses_quorum_two_one_down_and_a_split_view_reported_by_the_verifier() {
    let log = Log::new(30, 0);
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let w1 = start(open(dirs[0].path(), 11, vec![log.vkey()])).await;
    let w2 = start(open(dirs[1].path(), 12, vec![log.vkey()])).await;
    // The third witness is down: a port nobody listens on.
    let down = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let policy = policy(&log, &[(&w1, 11), (&w2, 12)], Some((13, down)));
    let clients = clients(&policy);

    let (note, errors) = cosign(&log, 10, &clients, &[0, 0, 0]).await;
    assert_eq!(errors.len(), 1);
    assert!(matches!(&errors[0], SubmitError::Transport { witness, .. } if witness == "W13"), "{errors:?}");
    let report = verify_cosigned(&note, &policy, None).unwrap();
    assert!(report.quorum_met, "{}", report.summary());
    assert_eq!(report.missing, ["W13"]);

    // The submitter does not know the witnesses' sizes (0): the 409 tells it, it retries with
    // a proof from there.
    let (note, errors) = cosign(&log, 20, &clients, &[0, 0, 0]).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(verify_cosigned(&note, &policy, None).unwrap().quorum_met);

    // A split view: a fork of size 20 (and a non-extension of size 25). The witnesses refuse,
    // and the fork's note gathers no cosignature.
    let fork = Log { key: KeyPair::from_seed(&[1; 32]), leaves: Log::new(30, 1).leaves };
    for size in [20, 25] {
        let (fork_note, errors) = cosign(&fork, size, &clients[..2], &[20, 20]).await;
        assert!(errors.iter().all(|e| matches!(e, SubmitError::Refused { status: 422, .. })), "{size}: {errors:?}");
        let report = verify_cosigned(&fork_note, &policy, None).unwrap();
        assert!(!report.quorum_met && report.cosigned.is_empty(), "{}", report.summary());
    }
    // The log pasting the honest tree's cosignatures under the fork is caught: they fail.
    let honest = SignedNote::parse(&note).unwrap();
    let mut pasted = SignedNote::parse(&fork.note(20)).unwrap();
    pasted.signatures.extend(honest.signatures[1..].iter().cloned());
    let report = verify_cosigned(&pasted.to_note(), &policy, None).unwrap();
    assert!(!report.quorum_met);
    assert_eq!(report.failed.iter().map(|f| f.witness.as_str()).collect::<Vec<_>>(), ["W11", "W12"]);

    // A witness ahead of the log (the log rolled back to 15): refused before any request.
    let (_, errors) = cosign(&log, 15, &clients[..1], &[20]).await;
    assert!(matches!(errors[0], SubmitError::WitnessAhead { witness_size: 20, size: 15, .. }), "{errors:?}");
    // ... and from an unknown size the witness's 409 says 20, which is ahead too.
    let (_, errors) = cosign(&log, 15, &clients[..1], &[0]).await;
    assert!(matches!(errors[0], SubmitError::WitnessAhead { witness_size: 20, .. }), "{errors:?}");
    w1.task.abort();
    w2.task.abort();
}
