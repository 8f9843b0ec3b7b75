//! What a CI job does to the CLI: runs a command again after a timeout, starts before the
//! server is up, signs with an encrypted key made by openssl.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{binary, cli, cli_register_agent, json, ok, temp_data_dir, Server};

const TENANT: &str = "ci-retries";
const DATA: &str = r#"{"module":"billing","version":"1.4.0","suite":"unit","passed":10,"failed":0}"#;

fn append_args<'a>(key: &'a str, event_id: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["append", "--tenant", TENANT, "--key", key, "--type", "TestsPassed", "--stream", "release/r1"];
    args.extend(["--release-id", "r1", "--data", DATA, "--event-id", event_id, "--json"]);
    args.extend(extra);
    args
}

fn size(server: &Server, cwd: &Path) -> u64 {
    let checkpoint = json(&ok(cli(server, cwd, &["checkpoint", "--tenant", TENANT, "--json"])));
    checkpoint["size"].as_u64().unwrap()
}

/// What a command said: stderr, then stdout (with `--json` a failure is `{"error": …}` there).
fn said(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout))
}

#[test]
fn the_same_command_run_again_gets_the_original_receipt() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI,QA", "TestsPassed");
    let at = "2026-05-23T09:32:00.123Z";

    let first = json(&ok(cli(&server, cwd, &append_args("ci.pem", "run-42", &["--occurred-at", at]))));
    let before = size(&server, cwd);
    let again = json(&ok(cli(&server, cwd, &append_args("ci.pem", "run-42", &["--occurred-at", at]))));
    assert_eq!(again["seq"], first["seq"]);
    assert_eq!(again["entryHash"], first["entryHash"]);
    assert_eq!((first["duplicate"].as_bool(), again["duplicate"].as_bool()), (Some(false), Some(true)));
    assert_eq!(size(&server, cwd), before, "the repeat appended something");

    // Another time is another payload under the same event id: refused, and said so.
    let other = cli(&server, cwd, &append_args("ci.pem", "run-42", &["--occurred-at", "2026-05-23T09:33:00Z"]));
    assert_eq!(other.status.code(), Some(1));
    assert!(said(&other).contains("ALREADY_EXISTS"), "{}", said(&other));
    // A malformed time is refused before anything is sent.
    let bad = cli(&server, cwd, &append_args("ci.pem", "run-43", &["--occurred-at", "yesterday"]));
    assert_eq!(bad.status.code(), Some(2));
    assert!(said(&bad).contains("RFC 3339"), "{}", said(&bad));
    assert_eq!(size(&server, cwd), before);

    // Reading past the end of the log is refused like any seq beyond it (issue 14, item 6), and
    // reading from the end is an empty, successful read.
    let from = (before + 1).to_string();
    let past = cli(&server, cwd, &["tail", "--tenant", TENANT, "--from", &from]);
    assert_eq!(past.status.code(), Some(1), "{}", said(&past));
    assert!(
        said(&past).contains("OUT_OF_RANGE") && said(&past).contains(&format!("({before} entries")),
        "{}",
        said(&past)
    );
    let at_end = cli(&server, cwd, &["tail", "--tenant", TENANT, "--from", &before.to_string()]);
    assert_eq!(at_end.status.code(), Some(0), "{}", said(&at_end));
    assert!(at_end.stdout.is_empty());
}

#[test]
fn an_append_started_while_the_server_is_down_is_retried_until_it_is_back() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    cli_register_agent(&server, cwd, TENANT, "ci", "CI,QA", "TestsPassed");
    let address: SocketAddr = server.grpc;
    assert!(server.terminate().success());

    let started = Instant::now();
    let append = Command::new(binary())
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", format!("http://{address}"))
        .args(append_args("ci.pem", "while-down", &["--retries", "12", "--timeout-seconds", "5"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Long enough for the CLI to fail at least twice, then the server comes back.
    std::thread::sleep(Duration::from_millis(900));
    let server = Server::start_at(&data, address, &[]);
    let output = append.wait_with_output().unwrap();
    let receipt = json(&ok(output.clone()));
    assert_eq!(receipt["seq"], 1, "the append after the registration");
    let notes = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(notes.contains("attempt 1 failed") && notes.contains("retrying in"), "{notes}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(size(&server, cwd), 2);

    // Without retries the same situation fails at once, and says it gave up.
    let address = server.grpc;
    assert!(server.terminate().success());
    let output = Command::new(binary())
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", format!("http://{address}"))
        .args(append_args("ci.pem", "no-retries", &["--retries", "0"]))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(said(&output).contains("gave up after 1 attempts"), "{}", said(&output));
}

#[test]
fn encrypted_openssl_keys_sign_with_a_passphrase_from_the_environment_or_a_file() {
    let (dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let cwd = dir.path();
    let openssl = |args: &[&str]| {
        let output = Command::new("openssl").current_dir(cwd).args(args).output().unwrap();
        assert!(output.status.success(), "openssl {args:?}: {}", said(&output));
    };
    openssl(&["genpkey", "-algorithm", "ed25519", "-aes256", "-pass", "pass:correct horse", "-out", "enc.pem"]);
    openssl(&["pkey", "-in", "enc.pem", "-passin", "pass:correct horse", "-pubout", "-out", "enc.pub"]);
    assert!(std::fs::read_to_string(cwd.join("enc.pem")).unwrap().contains("ENCRYPTED PRIVATE KEY"));
    let admin = data.join("keys/admin.pem");
    ok(cli(
        &server,
        cwd,
        &[
            "keys",
            "register",
            "--tenant",
            TENANT,
            "--create-tenant",
            "--agent",
            "ci",
            "--types",
            "TestsPassed",
            "--public-key",
            "enc.pub",
            "--admin-key",
            admin.to_str().unwrap(),
        ],
    ));
    let with_env = |event_id: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(binary());
        command.current_dir(cwd).env("RELEASE_LEDGER_SERVER", server.url());
        command.env_remove("RELEASE_LEDGER_KEY_PASSPHRASE").env_remove("RELEASE_LEDGER_KEY_PASSPHRASE_FILE");
        command.envs(env.iter().copied()).args(append_args("enc.pem", event_id, &[])).output().unwrap()
    };

    // No passphrase: a whole sentence naming both ways to give one, and nothing stored.
    let before = size(&server, cwd);
    let output = with_env("e-1", &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = said(&output);
    assert!(
        message.contains("encrypted private key")
            && message.contains("RELEASE_LEDGER_KEY_PASSPHRASE")
            && message.contains("RELEASE_LEDGER_KEY_PASSPHRASE_FILE"),
        "{message}"
    );
    // A wrong passphrase says so.
    let output = with_env("e-1", &[("RELEASE_LEDGER_KEY_PASSPHRASE", "wrong")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(said(&output).contains("wrong passphrase"), "{}", said(&output));
    assert_eq!(size(&server, cwd), before);

    // From the environment, and from a file (its trailing newline is not part of it).
    let receipt = json(&ok(with_env("e-1", &[("RELEASE_LEDGER_KEY_PASSPHRASE", "correct horse")])));
    assert_eq!(receipt["seq"], before);
    std::fs::write(cwd.join("passphrase"), "correct horse\n").unwrap();
    let file = cwd.join("passphrase");
    let receipt = json(&ok(with_env("e-2", &[("RELEASE_LEDGER_KEY_PASSPHRASE_FILE", file.to_str().unwrap())])));
    assert_eq!(receipt["seq"], before + 1);
}

/// The subcommands a `--help` page lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn no_command_declares_an_option_twice() {
    // clap's own consistency check of the whole command tree (duplicate flags, conflicting
    // ids, bad defaults) runs in debug builds only; `--help` of every command is the check a
    // user can see: each option is listed once.
    let top = Command::new(binary()).arg("--help").output().unwrap();
    let commands = subcommands(&String::from_utf8_lossy(&top.stdout));
    assert!(commands.len() > 10, "{commands:?}");
    let mut checked = 0;
    for command in &commands {
        let help = Command::new(binary()).args([command, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout).into_owned();
        let mut pages = vec![(command.clone(), text.clone())];
        for sub in subcommands(&text) {
            let help = Command::new(binary()).args([command, &sub, "--help"]).output().unwrap();
            pages.push((format!("{command} {sub}"), String::from_utf8_lossy(&help.stdout).into_owned()));
        }
        for (name, page) in pages {
            // Option lines of clap's long help: "      --name <V>" or "  -h, --help"
            // (descriptions are indented further).
            let mut options: Vec<&str> = page
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("      --")
                        .or_else(|| l.strip_prefix("  -").and_then(|r| r.split_once(", --").map(|(_, long)| long)))
                })
                .filter_map(|l| l.split([' ', '=']).next())
                .collect();
            assert!(options.contains(&"help"), "`{name} --help` has no option lines:\n{page}");
            let all = options.len();
            options.sort_unstable();
            options.dedup();
            assert_eq!(options.len(), all, "`{name} --help` lists an option twice:\n{page}");
            checked += 1;
        }
    }
    assert!(checked > commands.len(), "no subcommand pages were checked");
}
