//! `release-ledger export` and the Arrow Flight service against a real server: both file
//! formats, a range, a projection table, failures that leave no file behind, and a stock
//! Flight client listing and describing the exports.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use futures::TryStreamExt as _;
use ledger::KeyPair;
use ledger_tools::{ExportReader, Format, Table};
use proto::v1 as pb;
use tonic::Code;

use crate::{body, cli, cli_register_agent, json, ok, temp_data_dir, tests_passed_notes, wire, Server};

const TENANT: &str = "vetclinic-001";
/// Events with ~59 KiB payloads: together more than a 4 MiB gRPC message in one record
/// batch, so the server has to split the batch across Flight messages.
const BIG_EVENTS: u64 = 80;

/// Runs a command that must fail and returns its stderr.
fn fails(output: Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr).unwrap()
}

/// The number of entries in the tenant's log.
fn log_size(server: &Server, cwd: &Path) -> u64 {
    ok(cli(server, cwd, &["tail", "--tenant", TENANT, "--json"])).lines().count() as u64
}

fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// A server whose tenant holds a key registration, a declared release (and the ledger's
/// `ReleasePlanned`), and [`BIG_EVENTS`] large `TestsPassed` events; returns it once
/// governance has settled, with the log's size.
fn exported_tenant() -> (tempfile::TempDir, Server, u64) {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI", "ReleaseIntentDeclared,TestsPassed");
    ok(cli(
        &server,
        cwd,
        &[
            "intent",
            "--tenant",
            TENANT,
            "--release",
            "release-9",
            "--key",
            "ci.pem",
            "--environment",
            "production",
            "--module",
            "billing@1.4.0",
        ],
    ));
    let key = KeyPair::load(&cwd.join("ci.pem")).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = server.client().await;
        let padding = "x".repeat(59 * 1024);
        for n in 0..BIG_EVENTS {
            let data = tests_passed_notes(&format!("{n} {padding}"));
            let event = wire(body(TENANT, "tests", "TestsPassed", &format!("tests-{n}"), "ci", data), &key);
            client.append(pb::AppendRequest { event: Some(event) }).await.unwrap();
        }
    });

    // Governance appends its decision asynchronously: wait until the release is planned.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let summary = cli(&server, cwd, &["summary", "--tenant", TENANT, "--release", "release-9", "--json"]);
        if summary.status.success() && json(&String::from_utf8_lossy(&summary.stdout))["lastDecision"]["seq"].is_u64() {
            break;
        }
        assert!(Instant::now() < deadline, "release-9 was never planned");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The decision is folded once the projections have folded the whole log: the worker
    // reports its position, and nothing else is owed in this story.
    let size = runtime.block_on(async {
        let mut query = proto::v1::query_client::QueryClient::new(server.channel().await);
        loop {
            let status = query.get_governance_status(pb::GetGovernanceStatusRequest {}).await.unwrap().into_inner();
            if let Some(t) = status.tenants.iter().find(|t| t.tenant == TENANT && t.lag_entries == 0) {
                break t.position;
            }
            assert!(Instant::now() < deadline, "the projections never folded the whole log: {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(log_size(&server, cwd), size, "the log grew after governance settled");
    (dir, server, size)
}

/// Reads an export back: its table, tenant, range and row count, checked against `format`.
fn read_back(path: &Path, format: Format) -> (ledger_tools::ExportMeta, u64) {
    let mut reader = ExportReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(reader.format, format);
    let mut rows = 0;
    while let Some(batch) = reader.next_batch() {
        rows += batch.unwrap().num_rows() as u64;
    }
    (reader.meta, rows)
}

/// Runs the offline auditor's verification on an entries export.
fn verifies(path: &Path) {
    let outcome = ledger_tools::audit::verify_path(path, &Default::default())
        .unwrap_or_else(|e| panic!("{} cannot be verified: {}", path.display(), e.0));
    assert!(outcome.failure.is_none(), "{}: {:?}", path.display(), outcome.failure);
    assert_eq!(outcome.tenants.len(), 1);
}

#[test]
fn exports_in_both_formats_read_back_and_verify() {
    let (dir, server, size) = exported_tenant();
    let cwd = dir.path();
    assert!(size > BIG_EVENTS + 2, "{size}");

    // The whole log as Arrow IPC, the format taken from the extension.
    let arrow = cwd.join("entries.arrow");
    let stdout = ok(cli(&server, cwd, &["export", "--tenant", TENANT, "--table", "entries", "--out", "entries.arrow"]));
    assert!(
        stdout.contains(&format!("wrote {size} rows of entries (tenant {TENANT}, seqs 0 to {})", size - 1)),
        "{stdout}"
    );
    assert!(stdout.contains("ledger-audit verify"), "{stdout}");
    assert!(arrow.exists() && !partial(&arrow).exists());
    let (meta, rows) = read_back(&arrow, Format::Arrow);
    assert_eq!((meta.table, meta.tenant.as_str(), meta.from_seq, meta.to_seq), (Table::Entries, TENANT, 0, size));
    assert_eq!(rows, size);
    verifies(&arrow);

    // The same as Parquet, the format given explicitly, the summary as JSON.
    let parquet = cwd.join("entries.data");
    let summary = json(&ok(cli(
        &server,
        cwd,
        &["export", "--tenant", TENANT, "--table", "entries", "--format", "parquet", "--out", "entries.data", "--json"],
    )));
    assert_eq!(summary["rows"], size);
    assert_eq!(summary["format"], "parquet");
    assert_eq!(summary["table"], "entries");
    assert_eq!(summary["tenant"], TENANT);
    assert_eq!((summary["fromSeq"].as_u64(), summary["toSeq"].as_u64()), (Some(0), Some(size)));
    assert_eq!(summary["bytes"].as_u64(), Some(std::fs::metadata(&parquet).unwrap().len()));
    let (meta, rows) = read_back(&parquet, Format::Parquet);
    assert_eq!((meta.table, meta.from_seq, meta.to_seq, rows), (Table::Entries, 0, size, size));
    verifies(&parquet);

    // A range: seqs 2..5, which verifies on its own from the resume point it carries.
    let range = cwd.join("range.parquet");
    ok(cli(
        &server,
        cwd,
        &["export", "--tenant", TENANT, "--table", "entries", "--out", "range.parquet", "--from", "2", "--to", "5"],
    ));
    let (meta, rows) = read_back(&range, Format::Parquet);
    assert_eq!((meta.from_seq, meta.to_seq, rows), (2, 5, 3));
    assert_eq!(meta.resume.as_ref().map(|r| r.size), Some(2));
    verifies(&range);

    // A projection: the releases as of the position governance has folded (all of the log).
    // One row per release the Query service lists (release-9, declared, and release-1, which
    // the test events name).
    let listed = ok(cli(&server, cwd, &["releases", "--tenant", TENANT, "--all", "--json"])).lines().count() as u64;
    assert!(listed >= 2, "{listed}");
    let releases = cwd.join("releases.parquet");
    let stdout =
        ok(cli(&server, cwd, &["export", "--tenant", TENANT, "--table", "releases", "--out", "releases.parquet"]));
    assert!(
        stdout.contains(&format!("wrote {listed} rows of releases (tenant {TENANT}, as of seq {size})")),
        "{stdout}"
    );
    // A projection is derived, not signed: the auditor verifies the entries it came from.
    assert!(!stdout.contains("ledger-audit"), "{stdout}");
    let (meta, rows) = read_back(&releases, Format::Parquet);
    assert_eq!((meta.table, meta.tenant.as_str(), meta.from_seq, meta.to_seq), (Table::Releases, TENANT, 0, size));
    assert_eq!(rows, listed);
    assert!(!partial(&releases).exists());
}

#[test]
fn failed_exports_leave_no_file() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "", "");
    let out = cwd.join("out.arrow");
    let export = |extra: &[&str]| {
        let args = [["export", "--table", "entries", "--out", "out.arrow"].as_slice(), extra].concat();
        let stderr = fails(cli(&server, cwd, &args));
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!out.exists(), "{extra:?} left {}", out.display());
        assert!(!partial(&out).exists(), "{extra:?} left {}", partial(&out).display());
        stderr
    };

    let stderr = export(&["--tenant", "nobody"]);
    assert!(stderr.contains("NOT_FOUND") && stderr.contains("nobody"), "{stderr}");
    let stderr = export(&["--tenant", "Not A Tenant!"]);
    assert!(stderr.contains("INVALID_ARGUMENT"), "{stderr}");
    let stderr = export(&["--tenant", TENANT, "--to", "100"]);
    assert!(stderr.contains("OUT_OF_RANGE"), "{stderr}");
    assert!(stderr.contains("--to 100 is beyond the log of tenant vetclinic-001 (1 entries)"), "{stderr}");
    let stderr = export(&["--tenant", TENANT, "--from", "1", "--to", "0"]);
    assert!(stderr.contains("INVALID_ARGUMENT") && stderr.contains("--from 1 is after --to 0"), "{stderr}");

    // Refused before anything is asked of the server.
    let stderr = fails(cli(&server, cwd, &["export", "--tenant", TENANT, "--table", "entries", "--out", "out.csv"]));
    assert!(stderr.contains("cannot tell the format of out.csv"), "{stderr}");
    let stderr = fails(cli(
        &server,
        cwd,
        &["export", "--tenant", TENANT, "--table", "releases", "--out", "r.arrow", "--from", "1"],
    ));
    assert!(stderr.contains("--from and --to apply to the entries table only"), "{stderr}");
    assert!(!cwd.join("out.csv").exists() && !cwd.join("r.arrow").exists());

    // A failed export leaves an existing file as it was.
    std::fs::write(&out, "previous export").unwrap();
    let stderr = fails(cli(
        &server,
        cwd,
        &["export", "--tenant", TENANT, "--table", "entries", "--out", "out.arrow", "--to", "9"],
    ));
    assert!(stderr.contains("OUT_OF_RANGE"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous export");
    assert!(!partial(&out).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_client_lists_describes_and_fetches_exports() {
    let (_dir, server, size) = tokio::task::spawn_blocking(exported_tenant).await.unwrap();
    let channel = server.channel().await;
    let mut flight = FlightClient::new(channel);

    // One flight per table of the tenant, each with its schema (metadata and all) and a ticket.
    let infos: Vec<_> = flight.list_flights(Vec::new()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(infos.len(), Table::ALL.len(), "{infos:?}");
    let mut tables = Vec::new();
    for info in &infos {
        let ticket: ledger_wire::FlightTicket =
            serde_json::from_slice(&info.endpoint[0].ticket.as_ref().unwrap().ticket).unwrap();
        assert_eq!(ticket.tenant, TENANT);
        let schema = info.clone().try_decode_schema().unwrap();
        let metadata: std::collections::HashMap<String, String> = schema.metadata().into();
        let meta = ledger_tools::ExportMeta::from_map(&metadata).unwrap();
        assert_eq!((meta.table, meta.to_seq), (ticket.table, size));
        if ticket.table == Table::Entries {
            assert_eq!(info.total_records, size as i64);
            assert_eq!((ticket.from, ticket.to), (Some(0), Some(size)));
        }
        let descriptor: ledger_wire::FlightTicket =
            serde_json::from_slice(&info.flight_descriptor.as_ref().unwrap().cmd).unwrap();
        assert_eq!(descriptor, ticket);
        tables.push(ticket.table);
    }
    assert!(tables.contains(&Table::Entries) && tables.contains(&Table::Releases), "{tables:?}");
    // Criteria name one tenant.
    let infos: Vec<_> = flight.list_flights(TENANT.as_bytes().to_vec()).await.unwrap().try_collect().await.unwrap();
    assert_eq!(infos.len(), Table::ALL.len());
    let error = flight.list_flights(b"nobody".to_vec()).await.err().unwrap();
    assert_eq!(status(error).code(), Code::NotFound);

    // GetFlightInfo resolves the range, GetSchema carries the metadata.
    let command = br#"{"tenant": "vetclinic-001", "table": "entries", "from": 2}"#.to_vec();
    let info = flight.get_flight_info(FlightDescriptor::new_cmd(command.clone())).await.unwrap();
    assert_eq!(info.total_records, size as i64 - 2);
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    let schema = flight.get_schema(FlightDescriptor::new_cmd(command)).await.unwrap();
    assert!(schema.metadata().contains_key("release-ledger.checkpoint"), "{:?}", schema.metadata());
    assert!(schema.metadata().contains_key("release-ledger.resume"), "{:?}", schema.metadata());

    // DoGet: the schema message carries the metadata; every row arrives.
    let mut stream = flight.do_get(ticket).await.unwrap();
    let mut rows = 0;
    while let Some(batch) = stream.try_next().await.unwrap() {
        rows += batch.num_rows() as u64;
    }
    assert_eq!(rows, size - 2);
    let schema = stream.schema().unwrap();
    assert_eq!(schema.metadata().get("release-ledger.from-seq").map(String::as_str), Some("2"));

    // Precise codes for bad requests.
    for (command, code) in [
        (r#"{"tenant": "nobody", "table": "entries"}"#, Code::NotFound),
        (r#"{"tenant": "vetclinic-001", "table": "entries", "to": 100000}"#, Code::OutOfRange),
        (r#"{"tenant": "vetclinic-001", "table": "entries", "from": 3, "to": 2}"#, Code::InvalidArgument),
        (r#"{"tenant": "vetclinic-001", "table": "tables"}"#, Code::InvalidArgument),
        (r#"{"tenant": "vetclinic-001"}"#, Code::InvalidArgument),
        ("not json", Code::InvalidArgument),
    ] {
        let error = flight.get_flight_info(FlightDescriptor::new_cmd(command.as_bytes().to_vec())).await.err();
        assert_eq!(status(error.unwrap()).code(), code, "{command}");
        let error = match flight.do_get(Ticket::new(command.as_bytes().to_vec())).await {
            Ok(stream) => stream.try_collect::<Vec<_>>().await.err().unwrap(),
            Err(error) => error,
        };
        assert_eq!(status(error).code(), code, "{command}");
    }
    let error = flight.get_flight_info(FlightDescriptor::new_path(vec!["entries".into()])).await.err().unwrap();
    assert_eq!(status(error).code(), Code::InvalidArgument);
    let error = flight.do_action(arrow_flight::Action::new("drop", Vec::new())).await.err().unwrap();
    let error = status(error);
    assert_eq!(error.code(), Code::Unimplemented);
    assert!(error.message().contains("DoAction is not supported"), "{}", error.message());
}

/// The gRPC status of a Flight client error.
fn status(error: arrow_flight::error::FlightError) -> tonic::Status {
    match error {
        arrow_flight::error::FlightError::Tonic(status) => *status,
        other => panic!("not a gRPC status: {other}"),
    }
}
