//! Connections are reclaimed: a connection that never speaks is closed at the handshake
//! timeout, connections beyond `--max-connections` are closed at once while the others keep
//! working, and at the file-descriptor limit the accept loop waits instead of spinning a core,
//! then serves again once descriptors are free. The listener's HTTP/2 settings are as stated.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;

use crate::metrics::scrape;
use crate::{body, register, temp_data_dir, tests_passed_notes, wire, Authed, Server};

/// The value of one series (`name{labels}`) in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

/// Reads from a connection the client never writes to until the server closes it; returns how
/// long that took (panics if the server keeps it open past `limit`).
fn wait_for_close(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match stream.read(&mut buf) {
            // End of stream, or a reset: closed by the server.
            Ok(0) => return started.elapsed(),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            // HTTP/2 frames the server sends first (SETTINGS, GOAWAY): keep reading.
            Ok(_) => {}
            Err(e) => panic!("the server kept the connection open for {:?} ({e})", started.elapsed()),
        }
    }
}

/// A connected client that has completed one RPC (so its connection is established and
/// counted by the server).
async fn connected(server: &Server) -> LedgerClient<Authed> {
    let mut client = server.client().await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap();
    client
}

/// Retries a fresh connection and one RPC until it succeeds or `limit` passes.
async fn serves_again(grpc: SocketAddr, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let attempt = async {
            let mut client = LedgerClient::connect(format!("http://{grpc}")).await.ok()?;
            client.get_info(pb::GetInfoRequest {}).await.ok()
        };
        if tokio::time::timeout(Duration::from_secs(2), attempt).await.ok().flatten().is_some() {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "the server did not serve again within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_sends_the_preface_is_closed_at_the_handshake_timeout() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &["--handshake-timeout-seconds", "1"]);
    let mut silent = TcpStream::connect(server.grpc).unwrap();
    // One byte is not a preface either: a slow trickle does not hold the connection.
    let mut trickle = TcpStream::connect(server.grpc).unwrap();
    std::io::Write::write_all(&mut trickle, b"P").unwrap();
    let (silent_after, trickle_after) = tokio::task::spawn_blocking(move || {
        (wait_for_close(&mut silent, Duration::from_secs(10)), wait_for_close(&mut trickle, Duration::from_secs(10)))
    })
    .await
    .unwrap();
    assert!(silent_after >= Duration::from_millis(800), "closed before the timeout: {silent_after:?}");
    assert!(silent_after < Duration::from_secs(4), "closed late: {silent_after:?}");
    assert!(trickle_after < Duration::from_secs(4), "closed late: {trickle_after:?}");
    // A real client, slower than the timeout between calls, is not affected: it sent its preface.
    let mut client = connected(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap();
    let text = scrape(server.metrics);
    assert_eq!(sample(&text, r#"ledger_connections_total{listener="grpc",outcome="handshake_timeout"}"#), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_at_once_and_a_freed_slot_admits_the_next() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &["--max-connections", "3"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connected(&server).await);
    }
    // The fourth is accepted and closed at once: no waiting for a timeout.
    let mut fourth = TcpStream::connect(server.grpc).unwrap();
    let refused_after =
        tokio::task::spawn_blocking(move || wait_for_close(&mut fourth, Duration::from_secs(10))).await.unwrap();
    assert!(refused_after < Duration::from_secs(2), "refused late: {refused_after:?}");
    let attempt = async {
        let mut client = LedgerClient::connect(server.url()).await.ok()?;
        client.get_info(pb::GetInfoRequest {}).await.ok()
    };
    assert!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await.ok().flatten().is_none(),
        "a fourth gRPC client was served over the limit"
    );
    // The three keep working.
    for client in &mut clients {
        client.get_info(pb::GetInfoRequest {}).await.unwrap();
    }
    // One closes: the next client gets its slot.
    drop(clients.pop());
    serves_again(server.grpc, Duration::from_secs(10)).await;
    let text = scrape(server.metrics);
    assert!(sample(&text, r#"ledger_connections_total{listener="grpc",outcome="refused_limit"}"#) >= 2.0, "{text}");
    assert!(sample(&text, r#"ledger_connections_open{listener="grpc"}"#) <= 3.0, "{text}");
}

/// CPU time (user + system) of a process so far, in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime) are 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`; 100 on Linux).
fn ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_server_waits_without_spinning_and_serves_again() {
    let (_dir, data) = temp_data_dir();
    // 128 descriptors: enough for both RocksDB stores and the runtime, not for the clients. The
    // handshake timeout is long so the silent connections stay for the whole measurement.
    let server = Server::start_with_nofile(&data, 128, &["--handshake-timeout-seconds", "120"]);
    let pid = server.child.id();
    let grpc = server.grpc;
    // Every connection the server can accept takes a descriptor; the next ones wait in the
    // listen backlog (the client's connect succeeds there), keeping the listen socket readable,
    // until the backlog is full too and a connect times out.
    // (A connect that times out may only mean the server has not drained the backlog yet: give
    // up after three in a row.)
    let held: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        let (mut held, mut timeouts) = (Vec::new(), 0);
        while held.len() < 600 && timeouts < 3 {
            match TcpStream::connect_timeout(&grpc, Duration::from_millis(500)) {
                Ok(stream) => {
                    held.push(stream);
                    timeouts = 0;
                }
                Err(_) => timeouts += 1,
            }
        }
        held
    })
    .await
    .unwrap();
    assert!(held.len() > 128, "only {} connections: the server's descriptors were not exhausted", held.len());
    // Let the server reach the limit, then measure it idle at the limit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, started) = (cpu_ticks(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used = cpu_ticks(pid) - before;
    let wall = started.elapsed();
    let per_second = ticks_per_second();
    let share = used as f64 / per_second as f64 / wall.as_secs_f64();
    // A spinning accept loop uses a whole core (share ≈ 1); backing off uses almost nothing.
    assert!(share < 0.2, "the server used {used} ticks ({:.0} % of a core) in {wall:?} at the fd limit", share * 100.0);
    assert!(server.log().contains("cannot accept connections"), "no fd exhaustion was logged:\n{}", server.log());

    let held_count = held.len();
    drop(held);
    let took = serves_again(grpc, Duration::from_secs(15)).await;
    let text = scrape(server.metrics);
    assert!(sample(&text, r#"ledger_accept_errors_total{error="exhausted",listener="grpc"}"#) >= 1.0, "{text}");
    // The episode is logged once when it starts, and once it is over (a connection accepted a
    // second after the last failure), not once per failed accept.
    tokio::time::sleep(Duration::from_secs(2)).await;
    connected(&server).await;
    let log = server.log();
    assert_eq!(log.matches("cannot accept connections").count(), 1, "{log}");
    assert_eq!(log.matches("accepting connections again").count(), 1, "{log}");
    eprintln!(
        "fd limit: {} connections; {used} ticks in {wall:?} ({:.1} % of a core); served again after {took:?}",
        held_count,
        share * 100.0
    );
}

/// The SETTINGS frame the gRPC listener sends when a client connects: each `(identifier,
/// value)` pair, read off the socket (RFC 9113 §3.4, §4.1, §6.5).
fn server_settings(grpc: SocketAddr) -> Vec<(u16, u32)> {
    let mut stream = TcpStream::connect(grpc).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The client's connection preface, then its own SETTINGS frame, empty.
    stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").unwrap();
    loop {
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).unwrap();
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let (kind, flags) = (header[3], header[4]);
        let mut payload = vec![0u8; length];
        stream.read_exact(&mut payload).unwrap();
        // SETTINGS (type 4) without the ACK flag: the server's own.
        if kind == 0x4 && flags & 0x1 == 0 {
            return payload
                .chunks_exact(6)
                .map(|e| (u16::from_be_bytes([e[0], e[1]]), u32::from_be_bytes([e[2], e[3], e[4], e[5]])))
                .collect();
        }
    }
}

/// The listener takes HTTP/2 frames of up to 64 KiB (`SETTINGS_MAX_FRAME_SIZE`, identifier 5;
/// without it the protocol's 16 KiB applies), so a 64-event batch append comes in one DATA
/// frame (`api::server::HTTP2_MAX_FRAME_BYTES`; BENCHMARKS.md, "Issue 20, twenty-seventh
/// session"). A batch larger than three 16 KiB frames, sent by tonic's client in the larger
/// frames, is appended whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_listener_takes_64_kib_http2_frames() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let grpc = server.grpc;
    let settings = tokio::task::spawn_blocking(move || server_settings(grpc)).await.unwrap();
    assert!(settings.contains(&(0x5, 64 << 10)), "SETTINGS_MAX_FRAME_SIZE is not 64 KiB: {settings:?}");

    let mut client = server.client().await;
    let qa = register(&mut client, &server.admin(), "acme", "qa", &[]).await;
    let events: Vec<pb::AppendEvent> = (0..64)
        .map(|i| {
            let data = tests_passed_notes(&"x".repeat(400));
            wire(body("acme", "r1", "TestsPassed", &format!("e-{i}"), "qa", data), &qa)
        })
        .collect();
    let request = pb::AppendBatchRequest { events };
    let size = prost::Message::encoded_len(&request);
    assert!(size > 3 * (16 << 10) && size < 64 << 10, "the request is {size} bytes");
    let receipts = client.append_batch(request).await.unwrap().into_inner().receipts;
    assert_eq!(receipts.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..65).collect::<Vec<_>>());
}
