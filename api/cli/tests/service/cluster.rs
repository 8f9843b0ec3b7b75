//! A three-node cluster on loopback, as real processes (docs/replication.md): clients append
//! concurrently and record every receipt while the leader is killed (SIGKILL) at random moments,
//! a follower is killed and restarted, and the leader is paused (SIGSTOP) as a partition would;
//! then every acknowledged event is at its acknowledged seq on every node, the three logs are
//! identical and verify, and no two receipts ever named one seq with different entries.
//!
//! `CLUSTER_CHAOS_ROUNDS` sets the rounds (default 4, the bounded CI run; the measurement is
//! `benches/scripts/cluster-chaos.sh`), `CLUSTER_CHAOS_REPORT` a file the figures are written to.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use tonic::transport::Channel;

use crate::{binary, body, ok, tests_passed, tests_passed_notes, wire, Bearer, Server};

const TENANT: &str = "cluster";

struct Node {
    id: u64,
    data: PathBuf,
    config: PathBuf,
    address: SocketAddr,
    server: Option<Server>,
    /// `--tls-cert` and `--tls-key`, when the nodes speak TLS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Node {
    fn start(&mut self) {
        let mut args = vec!["--cluster".to_owned(), self.config.to_str().unwrap().to_owned()];
        if let Some((cert, key)) = &self.tls {
            args.extend(["--tls-cert".to_owned(), cert.to_str().unwrap().to_owned()]);
            args.extend(["--tls-key".to_owned(), key.to_str().unwrap().to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.server = Some(Server::start_at(&self.data, self.address, &args));
    }

    fn pid(&self) -> String {
        self.server.as_ref().unwrap().child.id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.pid()]).status().unwrap();
        assert!(status.success(), "kill {signal} failed");
    }
}

struct Cluster {
    nodes: Vec<Node>,
    token: String,
    /// The CA the nodes' certificates are verified with, when they speak TLS.
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

impl Cluster {
    fn start(settings: &str) -> Self {
        Self::start_with(settings, None, false)
    }

    /// [`Cluster::start`] with node 3's data dir at `node3` (on a filesystem of the test's),
    /// and with TLS between everyone when `tls` (`https://` addresses, `peer_ca_cert`).
    fn start_with(settings: &str, node3: Option<PathBuf>, tls: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (ca, certificate) = if tls {
            let (ca, cert, key, _, _) = crate::access::certificates(dir.path(), "unused");
            (Some(ca), Some((cert, key)))
        } else {
            (None, None)
        };
        let addresses: Vec<SocketAddr> = (0..3).map(|_| free_address()).collect();
        let mut data: Vec<PathBuf> = (1..=3).map(|n| dir.path().join(format!("node{n}"))).collect();
        if let Some(path) = node3 {
            data[2] = path;
        }
        let mut init = Command::new(binary());
        init.args(["cluster", "init-keys"]);
        for d in &data {
            init.arg("--data-dir").arg(d);
        }
        ok(init.output().unwrap());
        let mut nodes = Vec::new();
        for (i, data) in data.into_iter().enumerate() {
            let id = i as u64 + 1;
            let mut text = format!("node_id = {id}\n{settings}\n");
            if let Some(ca) = &ca {
                text.push_str(&format!("peer_ca_cert = \"{}\"\n", ca.display()));
            }
            let scheme = if tls { "https://" } else { "" };
            for (j, address) in addresses.iter().enumerate() {
                text.push_str(&format!("[[node]]\nid = {}\naddress = \"{scheme}{address}\"\n", j + 1));
            }
            let config = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&config, text).unwrap();
            nodes.push(Node { id, data, config, address: addresses[i], server: None, tls: certificate.clone() });
        }
        for node in &mut nodes {
            node.start();
        }
        let token = nodes[0].server.as_ref().unwrap().token.clone();
        Self { nodes, token, ca, _dir: dir }
    }

    async fn channel(
        &self,
        address: SocketAddr,
    ) -> Option<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        let mut endpoint = Channel::from_shared(format!("{scheme}://{address}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(2));
        if let Some(ca) = &self.ca {
            let ca = tonic::transport::Certificate::from_pem(std::fs::read(ca).unwrap());
            endpoint = endpoint.tls_config(tonic::transport::ClientTlsConfig::new().ca_certificate(ca)).unwrap();
        }
        let channel = endpoint.connect().await.ok()?;
        Some(tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(&self.token)))
    }

    /// The status of every running, unpaused node that answers.
    async fn statuses(&self, skip: Option<u64>) -> Vec<pb::ClusterStatus> {
        let mut statuses = Vec::new();
        for node in self.nodes.iter().filter(|n| n.server.is_some() && Some(n.id) != skip) {
            if let Some(channel) = self.channel(node.address).await {
                if let Ok(status) =
                    pb::admin_client::AdminClient::new(channel).cluster_status(pb::ClusterStatusRequest {}).await
                {
                    statuses.push(status.into_inner());
                }
            }
        }
        statuses
    }

    /// The leader a majority of the nodes that answer agree on (waits up to `within`).
    async fn leader(&self, skip: Option<u64>, within: Duration) -> u64 {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses(skip).await;
            if let Some(leader) = statuses.iter().find(|s| s.role == "Leader") {
                let agree = statuses.iter().filter(|s| s.leader_id == Some(leader.node_id)).count();
                if agree >= 2 {
                    return leader.node_id;
                }
            }
            assert!(Instant::now() < deadline, "no leader within {within:?}: {statuses:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the three nodes answer with the same applied index (`what` names the wait).
    async fn converge(&self, within: Duration, what: &str) {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses(None).await;
            if statuses.len() == 3 && statuses.iter().all(|s| s.applied_index == statuses[0].applied_index) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {statuses:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to every node; each must stop cleanly.
    fn stop_all(&mut self) {
        for node in &mut self.nodes {
            let status = node.server.take().unwrap().terminate();
            assert!(status.success(), "node {} did not stop cleanly: {status:?}", node.id);
        }
    }

    fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).unwrap()
    }
}

/// A new key of agent `qa` (role QA) and its registration in [`TENANT`], signed by `admin`.
fn qa_registration(admin: &ledger::KeyPair) -> (ledger::KeyPair, pb::AppendEvent) {
    let key = ledger::KeyPair::generate();
    let data =
        serde_json::json!({"agentId": "qa", "publicKey": key.public_key_base64(), "roles": ["QA"], "eventTypes": []});
    let registration = wire(body(TENANT, "keys", "AgentKeyRegistered", "reg-qa", "admin", data), admin);
    (key, registration)
}

/// Every receipt: (seq, event id, entry hash).
type Receipts = Arc<Mutex<Vec<(u64, String, Vec<u8>)>>>;

/// Appends `event` until some node acknowledges it (the same signed bytes every time: a retry
/// never appends twice), trying the nodes in turn; records the receipt.
async fn append_until_acknowledged(
    addresses: &[SocketAddr],
    token: &str,
    event: pb::AppendEvent,
    id: &str,
    receipts: &Receipts,
    stop: &AtomicBool,
) -> bool {
    let mut target = 0usize;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let address = addresses[target % addresses.len()];
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_timeout(Duration::from_millis(300))
            .timeout(Duration::from_secs(4))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let mut client =
                LedgerClient::new(tonic::service::interceptor::InterceptedService::new(channel, Bearer::new(token)));
            match client.append(pb::AppendRequest { event: Some(event.clone()) }).await {
                Ok(response) => {
                    let receipt = response.into_inner().receipt.unwrap();
                    receipts.lock().unwrap().push((receipt.seq, id.to_owned(), receipt.entry_hash));
                    return true;
                }
                Err(status) => {
                    // Only "not now" answers are retried; anything else is a bug in the test.
                    assert!(
                        matches!(
                            status.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::DeadlineExceeded
                                | tonic::Code::Cancelled
                                | tonic::Code::Unknown
                        ),
                        "append {id} refused: {status:?}"
                    );
                }
            }
        }
        target += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Entry hashes of the tenant's log in a stopped node's data dir, after checking it as
/// `ledger-audit verify DATA_DIR` does (the read-only fsck, the catalogue's rules) and verifying it.
fn log_of(data: &Path) -> (Vec<Vec<u8>>, ledger::VerifyReport) {
    let store = ledger::StoreView::open(data).unwrap();
    let options =
        ledger::FsckOptions { rules: Some(std::sync::Arc::new(projections::Catalogue)), ..Default::default() };
    let (checks, problems) = store.check(&options);
    assert!(problems.is_empty(), "{}: {problems:?}", data.display());
    for check in &checks {
        assert!(check.problems.is_empty() && check.report.is_some(), "{}: {:?}", data.display(), check.problems);
    }
    drop(store);
    let ledger = ledger::Ledger::open(data, ledger::Config::default()).unwrap();
    let report = ledger.verify_tenant(TENANT).unwrap();
    let hashes = ledger.entries(TENANT, 0, u64::MAX).unwrap().map(|e| e.unwrap().entry_hash.to_vec()).collect();
    (hashes, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_three_node_cluster_loses_nothing_acknowledged_through_kills_and_pauses() {
    let rounds: usize = std::env::var("CLUSTER_CHAOS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(4);
    let mut cluster = Cluster::start("heartbeat_ms = 100\nelection_timeout_ms = [800, 1600]\ncommit_timeout_ms = 3000");
    let addresses: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.address).collect();
    let leader = cluster.leader(None, Duration::from_secs(20)).await;

    // An agent registered through the leader.
    let admin = cluster.nodes[0].server.as_ref().unwrap().admin();
    let (key, registration) = qa_registration(&admin);
    let receipts: Receipts = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    assert!(append_until_acknowledged(&addresses, &cluster.token, registration, "reg-qa", &receipts, &stop).await);

    // An append sent to a follower is forwarded to the leader and acknowledged; it is then on
    // the follower too. An event the log's rules refuse is refused (by the leader: a follower
    // forwards before checking, as its own state may lag behind the leader's) and stored nowhere.
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    let mut client = LedgerClient::new(cluster.channel(follower.address).await.unwrap());
    let event = wire(body(TENANT, "s", "TestsPassed", "via-follower", "qa", tests_passed(0)), &key);
    let receipt = client.append(pb::AppendRequest { event: Some(event) }).await.unwrap().into_inner().receipt.unwrap();
    receipts.lock().unwrap().push((receipt.seq, "via-follower".to_owned(), receipt.entry_hash.clone()));
    let stranger = ledger::KeyPair::generate();
    let forged = wire(body(TENANT, "s", "TestsPassed", "forged", "qa", tests_passed(1)), &stranger);
    let refused = client.append(pb::AppendRequest { event: Some(forged) }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("forwarded"), "{refused:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = client
            .get_entry(pb::GetEntryRequest {
                tenant: TENANT.into(),
                key: Some(pb::get_entry_request::Key::EventId("via-follower".into())),
            })
            .await;
        if let Ok(entry) = found {
            assert_eq!(entry.into_inner().seq, receipt.seq);
            break;
        }
        assert!(Instant::now() < deadline, "the forwarded append never reached the follower");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for node in &cluster.nodes {
        let mut client = LedgerClient::new(cluster.channel(node.address).await.unwrap());
        let found = client
            .get_entry(pb::GetEntryRequest {
                tenant: TENANT.into(),
                key: Some(pb::get_entry_request::Key::EventId("forged".into())),
            })
            .await;
        assert_eq!(found.unwrap_err().code(), tonic::Code::NotFound, "node {} stored a forged event", node.id);
    }

    // Clients appending concurrently, every receipt recorded.
    let mut clients = Vec::new();
    for c in 0..4 {
        let (addresses, token, key, receipts, stop) =
            (addresses.clone(), cluster.token.clone(), key.clone(), receipts.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            for n in 0u64.. {
                let id = format!("c{c}-{n}");
                let event = wire(body(TENANT, &format!("s{c}"), "TestsPassed", &id, "qa", tests_passed(n)), &key);
                if !append_until_acknowledged(&addresses, &token, event, &id, &receipts, &stop).await {
                    return;
                }
            }
        }));
    }

    let mut failovers = Vec::new();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut random = move |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut actions = BTreeMap::<&str, usize>::new();
    for round in 0..rounds {
        // Let appends flow for a random moment first.
        let before = receipts.lock().unwrap().len();
        tokio::time::sleep(Duration::from_millis(200 + random(800))).await;
        let leader = cluster.leader(None, Duration::from_secs(30)).await;
        let action = match round % 3 {
            0 => "kill -9 leader",
            1 => "kill -9 follower",
            _ => "SIGSTOP leader",
        };
        *actions.entry(action).or_default() += 1;
        match action {
            "kill -9 leader" => {
                let killed_at = Instant::now();
                cluster.node(leader).server.take().unwrap().kill9();
                // Failover: until a new leader acknowledges an append.
                let _ = cluster.leader(Some(leader), Duration::from_secs(30)).await;
                let probe = format!("probe-{round}");
                let event = wire(body(TENANT, "probe", "TestsPassed", &probe, "qa", tests_passed(round as u64)), &key);
                assert!(append_until_acknowledged(&addresses, &cluster.token, event, &probe, &receipts, &stop).await);
                failovers.push(killed_at.elapsed().as_secs_f64());
                tokio::time::sleep(Duration::from_millis(random(500))).await;
                cluster.node(leader).start();
            }
            "kill -9 follower" => {
                let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap().id;
                cluster.node(follower).server.take().unwrap().kill9();
                tokio::time::sleep(Duration::from_millis(300 + random(700))).await;
                cluster.node(follower).start();
            }
            _ => {
                cluster.node(leader).signal("-STOP");
                tokio::time::sleep(Duration::from_millis(2500)).await;
                cluster.node(leader).signal("-CONT");
            }
        }
        // Progress after each round: appends go on.
        let deadline = Instant::now() + Duration::from_secs(30);
        while receipts.lock().unwrap().len() < before + 20 {
            assert!(Instant::now() < deadline, "round {round} ({action}): no appends acknowledged");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }

    // Every node catches up: the same applied index everywhere.
    cluster.converge(Duration::from_secs(30), "the nodes did not converge").await;
    cluster.stop_all();

    // No fork: one entry per acknowledged seq.
    let receipts = receipts.lock().unwrap().clone();
    let mut by_seq = BTreeMap::<u64, (&str, &[u8])>::new();
    let mut forks = 0;
    for (seq, id, hash) in &receipts {
        if let Some((other, other_hash)) = by_seq.insert(*seq, (id.as_str(), hash.as_slice())) {
            if other_hash != hash.as_slice() {
                forks += 1;
                eprintln!("fork at seq {seq}: {other} and {id}");
            }
        }
    }
    assert_eq!(forks, 0);
    // Every node: the same log, verified; every acknowledged event at its seq, exactly once.
    let logs: Vec<_> = cluster.nodes.iter().map(|n| log_of(&n.data)).collect();
    for (node, (hashes, report)) in cluster.nodes.iter().zip(&logs) {
        assert_eq!(hashes, &logs[0].0, "node {} holds another log than node 1", node.id);
        assert_eq!(report.entries, hashes.len() as u64);
    }
    let ledger = ledger::Ledger::open(&cluster.nodes[0].data, ledger::Config::default()).unwrap();
    let mut lost = 0;
    for (seq, id, hash) in &receipts {
        match ledger.entry_by_event_id(TENANT, id).unwrap() {
            Some(entry) if entry.seq == *seq && entry.entry_hash.to_vec() == *hash => {}
            other => {
                lost += 1;
                eprintln!("acknowledged {id} at seq {seq}: found {:?}", other.map(|e| e.seq));
            }
        }
    }
    assert_eq!(lost, 0);
    assert_eq!(by_seq.len(), receipts.len(), "two receipts named one seq");

    failovers.sort_by(f64::total_cmp);
    let report = serde_json::json!({
        "rounds": rounds, "actions": actions, "acknowledged": receipts.len(), "lost": lost, "forks": forks,
        "logEntries": logs[0].0.len(), "leaderKills": failovers.len(),
        "failoverSeconds": {"median": percentile(&failovers, 50.0), "p99": percentile(&failovers, 99.0),
                            "max": failovers.last().copied().unwrap_or(f64::NAN)},
    });
    eprintln!("cluster chaos: {report}");
    if let Ok(path) = std::env::var("CLUSTER_CHAOS_REPORT") {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
}

/// One follower's disk fills: the other two go on acknowledging appends; the full node
/// acknowledges nothing it cannot store (its Raft log or its apply fails, and it stops); once
/// space is freed and it restarts, it catches up and holds the same log as the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_on_one_follower_stops_that_node_only() {
    // Three RocksDB stores (ledger, projections, Raft log), each preallocating its WAL.
    let disk = crate::disk::Tmpfs::mount(480);
    let mut cluster = Cluster::start_with(
        "heartbeat_ms = 100\nelection_timeout_ms = [800, 1600]\ncommit_timeout_ms = 3000",
        Some(disk.path().join("node3")),
        false,
    );
    let addresses: Vec<SocketAddr> = cluster.nodes.iter().map(|n| n.address).collect();
    // Node 3 must be a follower: while it leads, restart it (another node then leads).
    while cluster.leader(None, Duration::from_secs(20)).await == 3 {
        cluster.node(3).server.take().unwrap().kill9();
        let _ = cluster.leader(Some(3), Duration::from_secs(20)).await;
        cluster.node(3).start();
    }
    let admin = cluster.nodes[0].server.as_ref().unwrap().admin();
    let (key, registration) = qa_registration(&admin);
    let receipts: Receipts = Arc::new(Mutex::new(Vec::new()));
    let stop = AtomicBool::new(false);
    assert!(append_until_acknowledged(&addresses[..2], &cluster.token, registration, "reg-qa", &receipts, &stop).await);

    let filler = disk.fill(0);
    // Appends through nodes 1 and 2 until node 3 has fallen behind for good, at most 4,000.
    // It cannot write, but the space its stores preallocated (RocksDB's WALs, the ledger's
    // zero-filled anchor) lets it go on for a while: big events reach the end of it sooner.
    let notes = "x".repeat(48 << 10);
    let mut n = 0u64;
    let mut node3_stopped = false;
    while n < 4000 {
        for _ in 0..50 {
            let id = format!("full-{n}");
            let event = wire(body(TENANT, "s", "TestsPassed", &id, "qa", tests_passed_notes(&notes)), &key);
            assert!(append_until_acknowledged(&addresses[..2], &cluster.token, event, &id, &receipts, &stop).await);
            n += 1;
        }
        let node3 = cluster.nodes[2].address;
        let answered = match cluster.channel(node3).await {
            Some(channel) => {
                pb::admin_client::AdminClient::new(channel).cluster_status(pb::ClusterStatusRequest {}).await.ok()
            }
            None => None,
        };
        let alive = cluster.node(3).server.as_mut().unwrap().child.try_wait().unwrap().is_none();
        // Stopped: the process is gone, or its Raft is shut down.
        if !alive || answered.is_some_and(|s| s.into_inner().role == "Shutdown") {
            node3_stopped = true;
            let log = cluster.nodes[2].server.as_ref().unwrap().log();
            let why = log.lines().rev().find(|l| l.contains("ERROR")).unwrap_or("").to_owned();
            eprintln!(
                "node 3 stopped after {n} appends on a full disk (process {}): {why}",
                if alive { "up, Raft shut down" } else { "exited" }
            );
            break;
        }
    }
    assert!(node3_stopped, "node 3 went on through {n} appends with a full disk");
    let acknowledged = receipts.lock().unwrap().len();
    assert_eq!(acknowledged as u64, n + 1, "the two healthy nodes acknowledged every append");

    // Space again; node 3 restarts and catches up.
    std::fs::remove_file(filler).unwrap();
    if let Some(server) = cluster.node(3).server.take() {
        server.kill9();
    }
    cluster.node(3).start();
    let leader = cluster.leader(None, Duration::from_secs(20)).await;
    cluster.converge(Duration::from_secs(60), &format!("node 3 did not catch up (leader {leader})")).await;
    cluster.stop_all();
    let logs: Vec<_> = cluster.nodes.iter().map(|n| log_of(&n.data)).collect();
    for (node, (hashes, _)) in cluster.nodes.iter().zip(&logs) {
        assert_eq!(hashes, &logs[0].0, "node {} holds another log than node 1", node.id);
    }
    let ledger = ledger::Ledger::open(&cluster.nodes[2].data, ledger::Config::default()).unwrap();
    for (seq, id, hash) in receipts.lock().unwrap().iter() {
        let entry = ledger.entry_by_event_id(TENANT, id).unwrap().unwrap_or_else(|| panic!("{id} missing on node 3"));
        assert_eq!((entry.seq, entry.entry_hash.to_vec()), (*seq, hash.clone()));
    }
}

/// A node whose Raft log was removed (or replaced by an empty one) beside a ledger that applied
/// it is refused at start with the reason, and so is a data dir that holds entries appended
/// outside a cluster; neither is changed by the attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_a_raft_log_that_does_not_match_its_ledger() {
    // A cluster of one: it commits alone.
    let address = free_address();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node1");
    ok(Command::new(binary()).args(["cluster", "init-keys", "--data-dir"]).arg(&data).output().unwrap());
    let config = dir.path().join("node1.toml");
    std::fs::write(&config, format!("node_id = 1\n[[node]]\nid = 1\naddress = \"{address}\"\n")).unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let server = Server::start_at(&data, address, &["--cluster", &config_arg]);
    let mut client = server.client().await;
    let admin = server.admin();
    let (_, event) = qa_registration(&admin);
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.append(pb::AppendRequest { event: Some(event.clone()) }).await.is_err() {
        assert!(Instant::now() < deadline, "the one-node cluster never took an append");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The CLI's view of it, and init-keys never replacing a key.
    let status = crate::json(&ok(crate::cli(&server, dir.path(), &["cluster", "status", "--json"])));
    assert_eq!((status["clustered"].as_bool(), status["nodeId"].as_u64()), (Some(true), Some(1)), "{status}");
    assert_eq!(status["role"], "Leader", "{status}");
    assert_eq!(status["leaderAddress"], address.to_string(), "{status}");
    let again = Command::new(binary()).args(["cluster", "init-keys", "--data-dir"]).arg(&data).output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("never replaces a key"), "{again:?}");
    assert!(server.terminate().success());

    std::fs::rename(data.join("raft"), dir.path().join("raft-aside")).unwrap();
    let refused = Command::new(binary())
        .args(["serve", "--listen", &address.to_string(), "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(["--cluster", &config_arg])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("but its Raft log") && stderr.contains("is empty"), "{stderr}");
    // The log is as it was: one entry, verifying.
    let (hashes, _) = log_of(&data);
    assert_eq!(hashes.len(), 1);

    // A single node's data dir cannot become a cluster node.
    let single = dir.path().join("single");
    let server = Server::start(&single, &[]);
    let mut client = server.client().await;
    let (_, event) = qa_registration(&server.admin());
    client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    assert!(server.terminate().success());
    let refused = Command::new(binary())
        .args(["serve", "--listen", &address.to_string(), "--metrics-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&single)
        .args(["--cluster", &config_arg])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("holds entries appended outside a cluster"), "{stderr}");
    assert!(!single.join("raft").exists(), "the refused start left a Raft log behind");
}

/// Nodes that speak TLS to each other and to clients (`https://` addresses, the peers verified
/// with `peer_ca_cert`): they elect a leader, replicate, forward a follower's append to the
/// leader over TLS, and fail over when the leader is killed; a plaintext client is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_speaks_tls_between_its_nodes() {
    let mut cluster = Cluster::start_with(
        "heartbeat_ms = 100\nelection_timeout_ms = [800, 1600]\ncommit_timeout_ms = 3000",
        None,
        true,
    );
    let leader = cluster.leader(None, Duration::from_secs(20)).await;
    let admin = cluster.nodes[0].server.as_ref().unwrap().admin();
    let (key, registration) = qa_registration(&admin);
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap().address;
    let mut client = LedgerClient::new(cluster.channel(follower).await.unwrap());
    client.append(pb::AppendRequest { event: Some(registration) }).await.unwrap();
    let event = wire(body(TENANT, "s", "TestsPassed", "over-tls", "qa", tests_passed(0)), &key);
    let receipt = client.append(pb::AppendRequest { event: Some(event) }).await.unwrap().into_inner().receipt.unwrap();
    assert_eq!(receipt.seq, 1);

    // Plaintext to a TLS port is no answer.
    let plaintext = Channel::from_shared(format!("http://{follower}")).unwrap().connect().await;
    if let Ok(channel) = plaintext {
        let answer = LedgerClient::new(channel).get_info(pb::GetInfoRequest {}).await;
        assert!(answer.is_err(), "a plaintext client was answered by a TLS node");
    }

    // Failover over TLS.
    cluster.node(leader).server.take().unwrap().kill9();
    let new_leader = cluster.leader(Some(leader), Duration::from_secs(30)).await;
    assert_ne!(new_leader, leader);
    let address = cluster.nodes.iter().find(|n| n.id == new_leader).unwrap().address;
    let mut client = LedgerClient::new(cluster.channel(address).await.unwrap());
    let event = wire(body(TENANT, "s", "TestsPassed", "after-failover", "qa", tests_passed(1)), &key);
    let receipt = client.append(pb::AppendRequest { event: Some(event) }).await.unwrap().into_inner().receipt.unwrap();
    assert_eq!(receipt.seq, 2);
    cluster.node(leader).start();
    cluster.converge(Duration::from_secs(30), "the restarted node did not catch up over TLS").await;
    cluster.stop_all();
    let logs: Vec<_> = cluster.nodes.iter().map(|n| log_of(&n.data)).collect();
    assert_eq!(logs[0].0.len(), 3);
    for (hashes, _) in &logs {
        assert_eq!(hashes, &logs[0].0);
    }
}

/// A node of another ledger (the cluster's admin key, a ledger key of its own) in the cluster
/// file is refused, and refuses the others, before any Raft message is read: their tokens name
/// other origins (the default origin prefix derives from the ledger key; with one configured
/// prefix, the identity header check refuses instead). It stores nothing and the other two go
/// on as a majority.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_of_another_ledger_is_refused_by_its_peers() {
    let mut cluster = Cluster::start("heartbeat_ms = 100\nelection_timeout_ms = [800, 1600]\ncommit_timeout_ms = 3000");
    // Node 3 again, from nothing, with keys of its own.
    let node3 = cluster.node(3).server.take().unwrap();
    node3.kill9();
    let data3 = cluster.nodes[2].data.clone();
    std::fs::remove_dir_all(&data3).unwrap();
    ok(Command::new(binary()).args(["cluster", "init-keys", "--data-dir"]).arg(&data3).output().unwrap());
    // The cluster's admin key (so its peers' operator tokens pass the access layer), but a
    // ledger key of its own: it would sign other checkpoints for the same records.
    std::fs::copy(cluster.nodes[0].data.join("keys/admin.pem"), data3.join("keys/admin.pem")).unwrap();
    cluster.node(3).start();
    let leader = cluster.leader(Some(3), Duration::from_secs(20)).await;
    assert_ne!(leader, 3);

    let admin = cluster.nodes[0].server.as_ref().unwrap().admin();
    let (key, registration) = qa_registration(&admin);
    let address = cluster.nodes.iter().find(|n| n.id == leader).unwrap().address;
    let mut client = LedgerClient::new(cluster.channel(address).await.unwrap());
    client.append(pb::AppendRequest { event: Some(registration) }).await.unwrap();
    for n in 0..5 {
        let event = wire(body(TENANT, "s", "TestsPassed", &format!("e{n}"), "qa", tests_passed(n)), &key);
        client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
    }
    // Its log says why; after a few heartbeats it still holds nothing.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = cluster.nodes[2].server.as_ref().unwrap().log();
        let peers = cluster.nodes[0].server.as_ref().unwrap().log() + &cluster.nodes[1].server.as_ref().unwrap().log();
        // Refused by the access layer (the peers' tokens name another ledger's origin, which
        // derives from the ledger key) or, with one --origin-prefix for all, by the identity check.
        let refused = |log: &str| {
            log.contains("a Raft message from a node of another ledger")
                || (log.contains("/release_ledger.v1.Raft/") && log.contains("is not this ledger"))
        };
        if refused(&log) || refused(&peers) {
            break;
        }
        assert!(Instant::now() < deadline, "no node said why node 3 is refused:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.stop_all();
    let stranger = ledger::Ledger::open(&data3, ledger::Config::default()).unwrap();
    assert!(stranger.tenants().is_empty(), "the node of another ledger stored entries");
    drop(stranger);
    let (hashes, _) = log_of(&cluster.nodes[0].data);
    assert_eq!(hashes.len(), 6);
    assert_eq!(log_of(&cluster.nodes[1].data).0, hashes);
}
