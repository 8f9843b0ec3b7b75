//! Interop: an independent Python client (`tests/interop/dsse_client.py`, no Rust involved)
//! signs DSSE envelopes with its own key, appends them, and recomputes every hash, proof and
//! checkpoint signature the server reports from the specs alone. The store it leaves behind
//! must then pass the offline verifier.
//!
//! The Python venv is made by `scripts/setup.sh` (at `$RELEASE_LEDGER_VENV`, by default
//! `/var/tmp/release-ledger-venv`); without it these tests fail, never skip.

// Test code may unwrap (clippy.toml), helpers outside #[test] functions included.

use std::path::Path;
use std::process::{Command, Output};

use crate::{temp_data_dir, verify_offline, Server};

const TENANT: &str = "interop-py";
/// Registration, one single append, one batch of three (dsse_client.py's steps).
const ENTRIES: u64 = 5;

/// Runs `tests/interop/<script>` with the venv's python; panics with its output (and the
/// server's log) unless it exits 0, and returns its JSON summary (the last stdout line).
pub(crate) fn run_script(server: &Server, script: &str, args: &[&str]) -> serde_json::Value {
    run_script_env(server, script, args, &[])
}

/// [`run_script`] with `env` added (TLS settings).
pub(crate) fn run_script_env(server: &Server, script: &str, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let output: Output = Command::new(testkit::interop_python())
        .arg(testkit::interop_dir().join(script))
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1") // no __pycache__ in the work tree
        // Reads need a credential: the harness's operator token (tests/interop/ledger_auth.py).
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log\n{}",
        output.status,
        // Where `Server::start` sends the server's stderr.
        std::fs::read_to_string(server.data_dir.with_extension("server.log")).unwrap_or_default()
    );
    let last = stdout.lines().last().unwrap_or_default();
    let summary: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("{script} printed no JSON summary ({e}):\n{stdout}\n--- stderr\n{stderr}"));
    assert_eq!(summary["ok"], true, "{script}: {summary}");
    summary
}

/// Runs one of the Python clients that sign with the data dir's admin key and compile the
/// .proto themselves (`--server --admin-key --tenant --proto-dir`).
fn run_client(server: &Server, script: &str, tenant: &str) -> serde_json::Value {
    run_client_env(server, script, tenant, &[])
}

/// [`run_client`] with `env` added.
fn run_client_env(server: &Server, script: &str, tenant: &str, env: &[(&str, &str)]) -> serde_json::Value {
    let grpc = server.grpc.to_string();
    let admin_key = server.data_dir.join("keys/admin.pem");
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto/proto");
    let args = ["--server", &grpc, "--admin-key", admin_key.to_str().unwrap(), "--tenant", tenant, "--proto-dir"];
    let mut args = args.to_vec();
    args.push(proto_dir.to_str().unwrap());
    run_script_env(server, script, &args, env)
}

/// The independent Python client over TLS (its CA from `RELEASE_LEDGER_CA_CERT`), reading
/// with the operator token (`RELEASE_LEDGER_TOKEN`): grpcio's TLS against rustls.
#[test]
fn python_dsse_client_connects_with_tls_and_a_token() {
    let (dir, data) = temp_data_dir();
    let (ca, cert, key, ..) = crate::access::certificates(dir.path(), "unused");
    let server = Server::start(&data, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let summary =
        run_client_env(&server, "dsse_client.py", TENANT, &[("RELEASE_LEDGER_CA_CERT", ca.to_str().unwrap())]);
    assert_eq!(summary["entries"], ENTRIES, "{summary}");
    assert_eq!(summary["checkpoint"]["signatureVerified"], true, "{summary}");
}

#[test]
fn python_dsse_client_interoperates_and_the_log_verifies_offline() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let summary = run_client(&server, "dsse_client.py", TENANT);

    assert_eq!(summary["tenant"], TENANT);
    // The data dir's keys load in a standard PKCS#8 reader (regression: they were written in the
    // v2 form, which OpenSSL 3.0 and `cryptography` refuse).
    assert_eq!(summary["adminKeyFormat"], "pkcs8-v1", "{summary}");
    assert_eq!(summary["entries"], ENTRIES, "{summary}");
    assert_eq!(summary["seqs"], serde_json::json!([0, 1, 2, 3, 4]), "{summary}");
    assert_eq!(summary["checkpoint"]["size"], ENTRIES, "{summary}");
    assert_eq!(summary["checkpoint"]["signatureVerified"], true, "{summary}");
    assert_eq!(summary["inclusionProofsVerified"], ENTRIES, "{summary}");
    assert_eq!(
        summary["rejected"],
        serde_json::json!({"corruptedSignature": "UNAUTHENTICATED", "malformedJson": "INVALID_ARGUMENT"}),
        "{summary}"
    );

    let status = server.terminate();
    assert!(status.success(), "server exit after SIGTERM: {status}");

    // The Rust verifier agrees with what the Python client computed.
    let report = verify_offline(&data, TENANT);
    assert_eq!(report.entries, ENTRIES);
    assert_eq!(report.signatures, ENTRIES);
    assert_eq!(report.keys_registered, 1);
    assert_eq!(hex::encode(report.root), summary["checkpoint"]["root"].as_str().unwrap(), "{summary}");
}

/// securesystemslib's DSSE envelopes, with its own keyids (default, empty, upper-case): the
/// ledger finds the signer among the named agent's keys, stores its own key id, and the log
/// still verifies offline; refusals store nothing (tests/interop/sslib_client.py).
#[test]
fn securesystemslib_envelopes_with_foreign_keyids_are_accepted_and_stored_with_the_ledger_key_id() {
    const TENANT: &str = "interop-sslib";
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let summary = run_client(&server, "sslib_client.py", TENANT);
    let accepted = summary["accepted"].as_object().unwrap();
    let mut hints: Vec<&str> = accepted.keys().map(String::as_str).collect();
    hints.sort_unstable();
    assert_eq!(hints, ["empty", "ledger", "securesystemslib-default", "upper-case"], "{summary}");
    assert_eq!(summary["size"], 5, "registration and four appends: {summary}");
    assert!(summary["otherAgent"].as_str().unwrap().contains("someone-else"), "{summary}");

    assert!(server.terminate().success());
    let report = verify_offline(&data, TENANT);
    assert_eq!(report.entries, 5);
    assert_eq!(report.signatures, 5);
}

/// A generic gRPC tool finds everything through reflection v1alpha and health, and calls Arrow
/// Flight with a PATH descriptor, both through reflected types and with pyarrow.flight
/// (tests/interop/check_discovery.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_health_and_flight_path_descriptors_work_for_generic_clients() {
    const TENANT: &str = "discovery";
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;
    let admin = server.admin();
    let qa = crate::register(&mut client, &admin, TENANT, "qa", &["TestsPassed"]).await;
    for i in 0..3 {
        let body = crate::body(TENANT, "s", "TestsPassed", &format!("d-{i}"), "qa", crate::tests_passed(i));
        client.append(proto::v1::AppendRequest { event: Some(crate::wire(body, &qa)) }).await.unwrap();
    }
    let grpc = server.grpc.to_string();
    let server = tokio::task::spawn_blocking(move || {
        let summary =
            run_script(&server, "check_discovery.py", &["--server", &grpc, "--tenant", TENANT, "--entries", "4"]);
        (server, summary)
    });
    let (server, summary) = server.await.unwrap();
    assert_eq!(summary["dynamic"]["totalRecords"], 4, "{summary}");
    assert_eq!(summary["pyarrowFlight"]["rows"], 4, "{summary}");
    assert_eq!(summary["health"]["arrow.flight.protocol.FlightService"], "SERVING", "{summary}");
    assert!(summary["pyarrowFlight"]["badPath"].as_str().unwrap().contains("unknown table"), "{summary}");
    drop(server);
}
