//! The web console (docs/console.md) end to end, in a real browser: `release-ledger serve`
//! with `--console-listen`, filled by the demo and a few releases of this test's own, then
//! driven by `tests/interop/console_e2e.py` (selenium, headless Debian chromium): the board
//! against `releases`, a release delayed by a freeze in force, the in-browser proof check on
//! real entries and on a tampered proof served by a test double, an approval signed in the
//! browser (and two refusals that append nothing), a reader of another tenant refused, no
//! credential redirected to `/login`, accessibility basics, and screenshots of the main pages.
//!
//! The screenshots are artefacts, not committed: `$RELEASE_LEDGER_ARTIFACTS/console/` when set,
//! else `<cargo target dir>/console-screenshots/`. Chromium, chromedriver and selenium come
//! from `scripts/setup.sh --python`; without them the test fails (never skips) saying so.

// Test code may unwrap (clippy.toml), helpers outside #[test] functions included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ledger::KeyPair;

use crate::interop::run_script;
use crate::{binary, cli, cli_register_agent, json, ok, temp_data_dir, Server};

/// The demo's tenant.
const TENANT: &str = "vetclinic-001";
/// A tenant whose reader must not read [`TENANT`].
const OTHER: &str = "other-clinic";
/// The freeze in force over [`FROZEN_ENVIRONMENT`] (the demo lifts its own).
const FREEZE: &str = "console-freeze";
/// An environment under the demo policy's default rules (freezes apply, one approval needed).
const FROZEN_ENVIRONMENT: &str = "eu-canary";
/// The release the freeze delays.
const DELAYED: &str = "console-frozen-1";
/// The release that waits for one approval only (staging: the default rules, any role).
const TO_APPROVE: &str = "console-approve-1";

/// Where the browser checks write their screenshots (created).
fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("RELEASE_LEDGER_ARTIFACTS") {
        Some(artifacts) => PathBuf::from(artifacts).join("console"),
        // CARGO_TARGET_TMPDIR is <target dir>/tmp.
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("console-screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    // Only this run's screenshots.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "png") {
            std::fs::remove_file(&file).unwrap();
        }
    }
    dir
}

/// The screenshots of the main pages the browser checks must leave.
const SCREENSHOTS: [&str; 6] = ["board", "release-delayed", "entry", "freezes", "module-history", "operator"];

/// Fails with the fix when the browser is missing (the Python side checks again).
fn require_browser() {
    for path in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: run scripts/setup.sh --python (it installs Debian's chromium and chromium-driver)"
        );
    }
}

/// `release-ledger serve` with the console on an ephemeral loopback port; returns the server
/// (gRPC, operator token, killed on drop) and the console's base URL, from the start line.
fn serve_with_console(data_dir: &Path) -> (Server, String) {
    let server = Server::start(data_dir, &["--console-listen", "127.0.0.1:0"]);
    let console =
        server.console.unwrap_or_else(|| panic!("the start line names no console address; log: {}", server.log()));
    (server, format!("http://{console}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An RFC 3339 time `minutes` from now (the server's clock is this machine's).
fn minutes_from_now(minutes: i64) -> String {
    use ledger::Clock as _;
    let now = chrono::DateTime::from_timestamp_nanos(i64::try_from(ledger::SystemClock.now_ns()).unwrap());
    (now + chrono::Duration::minutes(minutes)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Declares `release` to `environment` (by the demo's CI key) with passing tests and scan,
/// and asks for an evaluation; returns where `evaluate --wait` says it stands.
fn declare_with_signals(
    server: &Server,
    cwd: &Path,
    keys: &Path,
    release: &str,
    environment: &str,
    version: &str,
) -> String {
    let key = |agent: &str| keys.join(format!("{agent}.pem")).to_str().unwrap().to_owned();
    let ci = key("ci-pipeline");
    let module = format!("frontdesk@{version}");
    ok(cli(
        server,
        cwd,
        &[
            "intent",
            "--tenant",
            TENANT,
            "--key",
            &ci,
            "--release",
            release,
            "--environment",
            environment,
            "--module",
            &module,
        ],
    ));
    let stream = format!("release/{release}");
    let signals = [
        (
            "qa-runner",
            "TestsPassed",
            serde_json::json!({"module": "frontdesk", "version": version, "suite": "unit", "passed": 12, "failed": 0}),
        ),
        (
            "security-scanner",
            "SecurityGateStatus",
            serde_json::json!({"module": "frontdesk", "version": version, "status": "Passed", "cveSeverity": "None", "imageSigned": true, "sbomPresent": true, "licenseCompliant": true}),
        ),
    ];
    for (agent, event_type, data) in signals {
        let data = data.to_string();
        let signer = key(agent);
        ok(cli(
            server,
            cwd,
            &[
                "append",
                "--tenant",
                TENANT,
                "--key",
                &signer,
                "--type",
                event_type,
                "--stream",
                &stream,
                "--release-id",
                release,
                "--data",
                &data,
            ],
        ));
    }
    ok(cli(server, cwd, &["evaluate", "--tenant", TENANT, "--key", &ci, "--release", release, "--wait"]))
}

/// A reader token minted by the CLI with a registered key.
fn token(server: &Server, cwd: &Path, key: &str, tenant: &str) -> String {
    ok(cli(server, cwd, &["token", "--key", key, "--tenant", tenant, "--ttl", "1h"])).trim().to_owned()
}

#[test]
fn the_console_shows_the_demo_verifies_proofs_takes_approvals_and_refuses_other_tenants() {
    let begun = Instant::now();
    require_browser();
    let (dir, data) = temp_data_dir();
    let cwd = dir.path();
    let (server, console) = serve_with_console(&data);

    // The demo's story, played against this server; its agents' keys land in demo/demo-keys.
    let admin = data.join("keys/admin.pem");
    let demo_dir = cwd.join("demo");
    let output = Command::new(binary())
        .current_dir(cwd)
        .args(["--json", "demo", "--server", &server.url(), "--admin-key", path(&admin), "--data-dir", path(&demo_dir)])
        .output()
        .unwrap();
    let demo = json(&ok(output));
    assert_eq!(demo["tenant"], TENANT, "{demo}");
    let keys = demo_dir.join("demo-keys");

    // Readers: an Auditor of the demo tenant, a Reader of another tenant; a key nobody knows.
    cli_register_agent(&server, cwd, TENANT, "console-auditor", "Auditor", "");
    cli_register_agent(&server, cwd, OTHER, "outsider", "Reader", "");
    ok(cli(&server, cwd, &["keygen", "--out", "unregistered.pem"]));
    let reader = token(&server, cwd, "console-auditor.pem", TENANT);
    let outsider = token(&server, cwd, "outsider.pem", OTHER);
    cli_register_agent(&server, cwd, TENANT, "console-revocable", "Reader", "");
    let revocable = token(&server, cwd, "console-revocable.pem", TENANT);
    let revocable_key_id = KeyPair::load(&cwd.join("console-revocable.pem")).unwrap().key_id().to_hex();

    // A freeze in force now over FROZEN_ENVIRONMENT delays a release there.
    let (from, to) = (minutes_from_now(-1), minutes_from_now(120));
    ok(cli(
        &server,
        cwd,
        &[
            "freeze",
            "declare",
            "--tenant",
            TENANT,
            "--key",
            path(&admin),
            "--id",
            FREEZE,
            "--environment",
            FROZEN_ENVIRONMENT,
            "--reason",
            "console end-to-end test",
            "--from",
            &from,
            "--to",
            &to,
        ],
    ));
    let delayed = declare_with_signals(&server, cwd, &keys, DELAYED, FROZEN_ENVIRONMENT, "1.0.1");
    assert!(delayed.contains("is Delayed: ChangeFreezeActive"), "{delayed}");
    // A release that waits for one approval, nothing else.
    let waiting = declare_with_signals(&server, cwd, &keys, TO_APPROVE, "staging", "1.0.2");
    assert!(waiting.contains("is Delayed: ApprovalPending"), "{waiting}");

    let size = json(&ok(cli(&server, cwd, &["--json", "checkpoint", "--tenant", TENANT])))["size"].as_u64().unwrap();
    let approver = keys.join("release-manager.pem");
    let approver_key_id = KeyPair::load(&approver).unwrap().key_id().to_hex();
    let screenshots = screenshot_dir();
    let config = serde_json::json!({
        "console": console,
        "grpc": server.url(),
        "binary": binary(),
        "tenant": TENANT,
        "otherTenant": OTHER,
        "tokens": {"operator": server.token, "reader": reader, "outsider": outsider},
        "delayed": DELAYED,
        "freeze": FREEZE,
        // The first entry, and one in the middle of the tree (a long audit path).
        "entries": [0, size / 2],
        "module": ["invoice-service", "production"],
        "approve": {
            "release": TO_APPROVE,
            "key": approver,
            "keyId": approver_key_id,
            "role": "ReleaseManager",
            "comment": "approved in the browser by the console test",
            "refusals": [
                {"why": "an unregistered key", "key": cwd.join("unregistered.pem"), "role": "ReleaseManager",
                 "message": "not registered", "shot": "unregistered"},
                // qa-lead holds QA only.
                {"why": "a key without the role", "key": keys.join("qa-lead.pem"), "role": "ReleaseManager",
                 "message": "ReleaseManager", "shot": "role"},
            ],
        },
        // Declared while the board is open (its live updates).
        "live": {"key": keys.join("ci-pipeline.pem"), "release": "console-live-1", "environment": "staging",
                 "module": "frontdesk@1.0.3"},
        // Signed in, then revoked.
        "revocable": {"token": revocable, "keyId": revocable_key_id, "adminKey": admin},
        "screenshots": screenshots,
    });
    let config_file = cwd.join("console-e2e.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let set_up = begun.elapsed();
    eprintln!("console e2e: screenshots go to {}", screenshots.display());

    let summary = run_script(&server, "console_e2e.py", &["--config", path(&config_file)]);
    println!(
        "console e2e: {:.1} s (set-up {:.1} s, browser {} s), checks {}; screenshots in {}",
        begun.elapsed().as_secs_f64(),
        set_up.as_secs_f64(),
        summary["seconds"],
        summary["passed"],
        screenshots.display()
    );
    for name in SCREENSHOTS {
        let file = screenshots.join(format!("{name}.png"));
        assert!(file.is_file(), "no screenshot {}", file.display());
    }
}
