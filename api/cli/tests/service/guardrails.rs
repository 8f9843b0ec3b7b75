//! Issue 23 items 4 and 5: guard rails against typos (each refused with the reason, storing
//! nothing), idempotent re-runs, and start-up and client errors that name the setting to fix.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use crate::{binary, cli, cli_register_agent, json, json_lines, ok, temp_data_dir, Server};

const TENANT: &str = "vetclinic-001";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The entries of `tenant`'s log.
fn log_size(server: &Server, cwd: &Path, tenant: &str) -> usize {
    json_lines(&ok(cli(server, cwd, &["tail", "--tenant", tenant, "--json"]))).len()
}

/// The tenants the server has a log of.
fn tenants(server: &Server) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = server.client().await;
        client.get_info(proto::v1::GetInfoRequest {}).await.unwrap().into_inner().tenants
    })
}

/// Asserts `output` exited with `code` and said `says` in one line on stderr.
fn refused(output: &Output, code: i32, says: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "{err}{}", stdout(output));
    assert!(err.contains(says), "expected {says:?} in: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn keys_register_refuses_an_unknown_tenant_and_re_runs_of_register_and_revoke_are_idempotent() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    let admin = data.join("keys/admin.pem");
    let admin = admin.to_str().unwrap();
    ok(cli(&server, cwd, &["keygen", "--out", "ci.pem"]));
    let register = |tenant: &str, roles: &str, extra: &[&str]| {
        let args = [
            &["keys", "register", "--tenant", tenant, "--agent", "ci", "--roles", roles, "--public-key", "ci.pem"][..],
            &["--admin-key", admin],
            extra,
        ]
        .concat();
        cli(&server, cwd, &args)
    };

    // No tenant yet: the first registration needs --create-tenant.
    refused(
        &register(TENANT, "CI", &[]),
        1,
        "tenant vetclinic-001 does not exist; pass --create-tenant to create it (existing tenants: none)",
    );
    assert!(tenants(&server).is_empty());
    let receipt = json(&ok(register(TENANT, "CI", &["--create-tenant", "--json"])));
    assert_eq!(receipt["seq"], 0, "{receipt}");
    assert_eq!(tenants(&server), [TENANT]);

    // A typo of the tenant is refused, naming the tenants there are, and creates nothing.
    refused(
        &register("vetclinc-002", "CI", &[]),
        1,
        "tenant vetclinc-002 does not exist; pass --create-tenant to create it (existing tenants: vetclinic-001)",
    );
    assert_eq!(tenants(&server), [TENANT]);
    assert_eq!(log_size(&server, cwd, TENANT), 1);

    // The same registration again: an idempotent success that says where it is.
    let again = register(TENANT, "CI", &[]);
    assert!(
        stdout(&again).contains("is already registered at seq 0 in tenant vetclinic-001 (agent ci); nothing appended"),
        "{}{}",
        stdout(&again),
        stderr(&again)
    );
    assert_eq!(again.status.code(), Some(0));
    let again = json(&ok(register(TENANT, "CI", &["--create-tenant", "--json"])));
    assert_eq!((again["alreadyRegistered"].as_bool(), again["seq"].as_u64()), (Some(true), Some(0)), "{again}");
    // The same key with other roles is not the same registration: refused with what is there.
    refused(
        &register(TENANT, "QA", &[]),
        1,
        "is already registered at seq 0 in tenant vetclinic-001 as agent ci with roles [CI]",
    );
    assert_eq!(log_size(&server, cwd, TENANT), 1);

    let key_id = json_lines(&ok(cli(&server, cwd, &["keys", "list", "--tenant", TENANT, "--json"])))[0]["keyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoke =
        || cli(&server, cwd, &["keys", "revoke", "--tenant", TENANT, "--key-id", &key_id, "--admin-key", admin]);
    ok(revoke());
    assert_eq!(log_size(&server, cwd, TENANT), 2);
    let again = revoke();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        stdout(&again)
            .contains(&format!("key {key_id} is already revoked at seq 1 in tenant vetclinic-001; nothing appended")),
        "{}",
        stdout(&again)
    );
    // A revoked key stays revoked: registering it again is refused.
    refused(&register(TENANT, "CI", &[]), 1, "was registered at seq 0 and revoked at seq 1 in tenant vetclinic-001");
    assert_eq!(log_size(&server, cwd, TENANT), 2, "a re-run appended something");
}

#[test]
fn lifting_an_unknown_freeze_and_empty_or_reused_policies_are_refused_with_the_reason() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI", "ReleaseIntentDeclared");
    let admin = data.join("keys/admin.pem");
    let admin = admin.to_str().unwrap();
    let governance = |args: &[&str]| cli(&server, cwd, &[args, &["--tenant", TENANT, "--key", admin]].concat());
    ok(governance(&[
        "freeze",
        "declare",
        "--id",
        "weekend",
        "--from",
        "2030-01-01T00:00:00Z",
        "--to",
        "2030-01-02T00:00:00Z",
    ]));
    let before = log_size(&server, cwd, TENANT);

    // A freeze that is not there: refused, naming the active ones.
    refused(
        &governance(&["freeze", "lift", "--id", "nosuchfreeze"]),
        1,
        "no active freeze \"nosuchfreeze\" in tenant vetclinic-001 (active freezes: weekend); nothing was stored",
    );
    assert_eq!(log_size(&server, cwd, TENANT), before);

    // A policy that covers no environment would reject every release.
    let policy = |document: &str| {
        std::fs::write(cwd.join("policy.json"), document).unwrap();
        governance(&["policy", "set", "--file", "policy.json"])
    };
    refused(&policy(r#"{"version": 1}"#), 1, "no environments and no default: every release would be rejected");
    refused(
        &policy(r#"{"version": 1, "environments": {}}"#),
        1,
        "name the environments or give a default (to stop all releases, declare a freeze)",
    );
    assert_eq!(log_size(&server, cwd, TENANT), before);

    let v1 = r#"{"version": 1, "environments": {"prod": {"minApprovers": 1}}}"#;
    let first = ok(policy(v1));
    assert!(first.contains("policy version 1 is in force"), "{first}");
    assert_eq!(log_size(&server, cwd, TENANT), before + 1);
    // The same policy again: an idempotent success, nothing appended.
    let again = policy(v1);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(stdout(&again).contains(&format!("appended seq {before} to vetclinic-001")), "{}", stdout(&again));
    assert!(stdout(&again).contains("already present: original receipt"), "{}", stdout(&again));
    assert_eq!(log_size(&server, cwd, TENANT), before + 1);
    // Version 1 with other content, or an older version: refused with the version to use.
    refused(
        &policy(r#"{"version": 1, "environments": {"prod": {"minApprovers": 2}}}"#),
        1,
        &format!("policy version 1 is already in force in tenant vetclinic-001 (seq {before}) with other content; publish the change as version 2"),
    );
    ok(policy(r#"{"version": 2, "environments": {"prod": {"minApprovers": 2}}}"#));
    refused(&policy(v1), 1, "policy version 1 is older than version 2 in force");
    assert_eq!(log_size(&server, cwd, TENANT), before + 2);

    // The real freeze still lifts.
    ok(governance(&["freeze", "lift", "--id", "weekend"]));
    assert_eq!(log_size(&server, cwd, TENANT), before + 3);
}

/// `serve` with `args`, on a data dir under `dir`; its output.
fn serve(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary()).current_dir(dir).arg("serve").args(args).output().unwrap()
}

#[test]
fn a_port_in_use_names_the_flag_and_creates_nothing_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();

    let output = serve(dir.path(), &["--listen", &address, "--metrics-listen", "127.0.0.1:0", "--data-dir", data_arg]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "gRPC address {address} is in use (another server?); pass --listen ADDR (or set RELEASE_LEDGER_LISTEN"
        )),
        "{err}"
    );
    assert!(!data.exists(), "a failed start left {} behind", data.display());

    let output = serve(dir.path(), &["--listen", "127.0.0.1:0", "--metrics-listen", &address, "--data-dir", data_arg]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains(&format!("metrics address {address} is in use (another server?); pass --metrics-listen ADDR (or set RELEASE_LEDGER_METRICS_LISTEN")), "{err}");
    assert!(!data.exists(), "a failed start left {} behind", data.display());
}

#[test]
fn a_data_dir_held_by_a_running_server_is_one_line_naming_its_pid() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let output = serve(
        dir.path(),
        &["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    let says = format!(
        "the data dir {} is in use by another release-ledger server (pid {}): stop it, or pass --data-dir",
        data.display(),
        server.child.id()
    );
    assert_eq!(err.matches(&says).count(), 1, "{err}");
    assert!(!err.contains("LOCK"), "RocksDB's lock message: {err}");
}

#[test]
fn client_errors_name_the_setting_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // Nothing listens: the message says to start a server or point --server elsewhere.
    let free = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{free}");
    let output = Command::new(binary())
        .current_dir(cwd)
        .args(["tail", "--tenant", TENANT, "--retries", "0", "--server", &url])
        .output()
        .unwrap();
    refused(&output, 2, &format!("cannot connect to {url}: connection refused"));
    let err = stderr(&output);
    assert!(err.contains("start it with `release-ledger serve` (or scripts/serve.sh)"), "{err}");
    assert!(err.contains("--server (or RELEASE_LEDGER_SERVER)"), "{err}");

    let (_data_parent, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    cli_register_agent(&server, cwd, TENANT, "ci", "CI", "ReleaseIntentDeclared");
    let before = log_size(&server, cwd, TENANT);
    // Another data dir's admin key: names the admin key the server has and the flag.
    ok(cli(&server, cwd, &["keygen", "--out", "stranger.pem"]));
    let admin_id = server.admin().key_id().to_hex();
    let output = cli(&server, cwd, &["freeze", "lift", "--id", "weekend", "--tenant", TENANT, "--key", "stranger.pem"]);
    refused(&output, 2, &format!("is neither this server's admin key (id {admin_id}) nor registered in tenant \"vetclinic-001\": pass the admin key of the server's data dir (--admin-key"));
    assert_eq!(log_size(&server, cwd, TENANT), before);

    // Another ledger's public key: the checkpoint is verified against it, and the message says
    // which key, from which file, and the flag.
    let other = ledger::KeyPair::generate();
    std::fs::write(cwd.join("other-ledger.pub"), other.public_key_pem().unwrap()).unwrap();
    let output = cli(&server, cwd, &["checkpoint", "--tenant", TENANT, "--ledger-key", "other-ledger.pub"]);
    refused(
        &output,
        1,
        &format!(
            "does not verify with the ledger key {} (pinned from other-ledger.pub): either that is not the ledger key of this server's data dir (pass its keys/ledger.pub with --ledger-key) or the checkpoint is forged",
            other.key_id().to_hex()
        ),
    );
}
