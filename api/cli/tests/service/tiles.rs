//! C2SP tlog-tiles over HTTP (`serve --tiles-listen`) and in a directory (`release-ledger
//! tiles`): statuses and headers, the directory's files equal to what the server serves, off
//! unless asked for, and Go's `sumdb/tlog` tile reader checking both against the checkpoint.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

use ledger::store::tiles::TileId;
use ledger::KeyPair;
use proto::v1 as pb;

use crate::*;

const TENANT: &str = "tiles-1.acme";

/// One HTTP/1.1 response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET path` on a connection of its own (`Connection: close`: the body ends with it).
fn get(address: SocketAddr, path: &str) -> Response {
    let mut stream = TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: tiles.test\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    Response { status, headers, body: raw[end + 4..].to_vec() }
}

/// A server with tiles on, and `size` entries in [`TENANT`].
async fn server_with(dir: &Path, size: u64) -> (Server, SocketAddr) {
    let server = Server::start(dir, &["--tiles-listen", "127.0.0.1:0", "--origin-prefix", "tiles.example.com"]);
    let tiles = server.tiles.expect("the tiles address is reported");
    let mut client = server.client().await;
    let qa = register(&mut client, &server.admin(), TENANT, "qa", &[]).await;
    let mut seq = 1;
    while seq < size {
        let events = (seq..size.min(seq + 500))
            .map(|i| wire(body(TENANT, "r1", "TestsPassed", &format!("e-{i}"), "qa", tests_passed(i)), &qa))
            .collect();
        let receipts = client.append_batch(pb::AppendBatchRequest { events }).await.unwrap().into_inner().receipts;
        seq += receipts.len() as u64;
    }
    (server, tiles)
}

/// The signed-note verifier key of the tenant's checkpoints: `origin+keyhash+base64(0x01 ‖ key)`.
fn vkey(server: &Server, origin: &str) -> String {
    let key = KeyPair::load(&server.data_dir.join("keys/ledger.pem")).unwrap().verifying_key();
    let id = ledger::checkpoint::note_key_id(origin, &key);
    let typed = [&[1u8][..], key.as_bytes()].concat();
    format!("{origin}+{}+{}", hex::encode(id), ledger::b64::encode(typed))
}

#[tokio::test]
async fn tiles_are_served_with_the_spec_headers_and_404_beyond_the_tree() {
    let (_dir, data) = temp_data_dir();
    let (server, tiles) = server_with(&data, 300).await;
    let prefix = format!("/{TENANT}");

    let checkpoint = get(tiles, &format!("{prefix}/checkpoint"));
    assert_eq!(checkpoint.status, 200);
    assert_eq!(checkpoint.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(checkpoint.header("cache-control"), Some("no-cache"));
    let note = String::from_utf8(checkpoint.body).unwrap();
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[..2], [format!("tiles.example.com/{TENANT}").as_str(), "300"], "{note}");
    let stored =
        server.client().await.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await;
    assert_eq!(stored.unwrap().into_inner().note, note, "the checkpoint is the store's newest");

    // Full: immutable for a year. Partial: a minute. Both octet streams of 32-byte hashes, or
    // of 34-byte entries in bundles.
    for (path, bytes, cache) in [
        ("tile/0/000", 256 * 32, "public, max-age=31536000, immutable"),
        ("tile/entries/000", 256 * 34, "public, max-age=31536000, immutable"),
        ("tile/0/001.p/44", 44 * 32, "public, max-age=60"),
        ("tile/0/001.p/3", 3 * 32, "public, max-age=60"),
        ("tile/entries/001.p/44", 44 * 34, "public, max-age=60"),
        ("tile/1/000.p/1", 32, "public, max-age=60"),
        ("tile/0/000.p/255", 255 * 32, "public, max-age=60"),
    ] {
        let response = get(tiles, &format!("{prefix}/{path}"));
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.header("content-type"), Some("application/octet-stream"), "{path}");
        assert_eq!(response.header("cache-control"), Some(cache), "{path}");
        assert_eq!(response.body.len(), bytes, "{path}");
    }
    // A partial tile is the head of its full tile.
    assert_eq!(
        get(tiles, &format!("{prefix}/tile/0/000.p/5")).body,
        get(tiles, &format!("{prefix}/tile/0/000")).body[..160]
    );

    // Beyond the tree, or no such log: 404, never cached.
    for path in [
        format!("{prefix}/tile/0/001"),
        format!("{prefix}/tile/0/001.p/45"),
        format!("{prefix}/tile/entries/002.p/1"),
        format!("{prefix}/tile/1/000"),
        format!("{prefix}/tile/2/000.p/1"),
        "/nobody/checkpoint".to_owned(),
        "/nobody/tile/0/000.p/1".to_owned(),
        "/no%2Fsuch/checkpoint".to_owned(),
        "/".to_owned(),
        format!("{prefix}/tiles"),
    ] {
        let response = get(tiles, &path);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    }
    // Not a tile path at all (leading zeroes, no 3-digit groups, W out of range): 400.
    for path in ["tile/00/000", "tile/0/1", "tile/0/000.p/256", "tile/0/000.p/0", "tile/x/000"] {
        let response = get(tiles, &format!("{prefix}/{path}"));
        assert_eq!(response.status, 400, "{path}");
        assert!(String::from_utf8_lossy(&response.body).contains("bad tile path"), "{path}");
    }
    // A percent-encoded tenant name is the name.
    let encoded = TENANT.replace('.', "%2E");
    assert_eq!(get(tiles, &format!("/{encoded}/checkpoint")).status, 200);
}

#[test]
fn tiles_are_off_unless_asked_for() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    assert_eq!(server.tiles, None);
}

#[tokio::test]
async fn the_written_directory_is_what_the_server_serves() {
    let (dir, data) = temp_data_dir();
    let (server, tiles) = server_with(&data, 600).await;
    let out = dir.path().join("published");
    let report =
        json(&ok(cli(&server, dir.path(), &["tiles", "--json", "--tenant", TENANT, "--out", out.to_str().unwrap()])));
    assert_eq!((report["size"].as_u64(), report["written"].as_u64()), (Some(600), Some(7)), "{report}");
    let files = ledger_tools::tiles::list_files(&out.join(TENANT)).unwrap();
    assert_eq!(files.len(), 8, "{:?}", files.keys().collect::<Vec<_>>());
    for (path, bytes) in &files {
        if path != "checkpoint" {
            TileId::parse(path).unwrap();
        }
        let served = get(tiles, &format!("/{TENANT}/{path}"));
        assert_eq!((served.status, &served.body), (200, bytes), "{path}");
    }
    // Nothing else in OUT: the export (payloads) never went there.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[tokio::test]
async fn go_tlog_reads_the_served_tiles_and_the_written_directory() {
    let (dir, data) = temp_data_dir();
    let (server, tiles) = server_with(&data, 600).await;
    let out = dir.path().join("published");
    ok(cli(&server, dir.path(), &["tiles", "--tenant", TENANT, "--out", out.to_str().unwrap()]));
    let vkey = vkey(&server, &format!("tiles.example.com/{TENANT}"));
    let tlogcheck = testkit::go_tlogcheck();
    for prefix in [format!("http://{tiles}/{TENANT}"), out.join(TENANT).to_str().unwrap().to_owned()] {
        let output = std::process::Command::new(&tlogcheck).args(["tiles", &prefix, &vkey]).output().unwrap();
        assert!(
            output.status.success(),
            "Go's tlog refused the tiles at {prefix}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(said.contains("tree of 600 entries verified") && said.contains("600 records proved"), "{said}");
    }
}
