//! The boundaries between the network crates (ARCHITECTURE.md, Architecture Invariants):
//! the server knows nothing of clap or terminals, the client library does not depend on the
//! server library, and the CLI names no tonic server type.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace package's normal (not dev, not build) dependencies, by package name.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--no-deps", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let normal = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), normal)
        })
        .collect()
}

#[test]
fn the_network_crates_depend_on_each_other_one_way_only() {
    let deps = dependencies();
    let of = |name: &str| deps.get(name).unwrap_or_else(|| panic!("no package {name}"));
    // The server knows nothing of command lines or terminals.
    for forbidden in ["clap", "indicatif", "ledger-client", "release-ledger-cli"] {
        assert!(!of("api").contains(forbidden), "api depends on {forbidden}");
    }
    // The client library does not depend on the server library, nor on the CLI's crates.
    for forbidden in ["api", "clap", "indicatif", "release-ledger-cli"] {
        assert!(!of("ledger-client").contains(forbidden), "ledger-client depends on {forbidden}");
    }
    // What both sides agree on depends on neither.
    for forbidden in ["api", "ledger-client", "release-ledger-cli", "clap", "indicatif"] {
        assert!(!of("ledger-wire").contains(forbidden), "ledger-wire depends on {forbidden}");
    }
    assert!(of("api").contains("ledger-wire") && of("ledger-client").contains("ledger-wire"));
    // The benches reach the server through the client library only.
    for bench in ["bench-harness", "release-ledger-benches", "bench-tools", "pg-baseline"] {
        assert!(!of(bench).contains("api"), "{bench} links the server library");
    }
    // The harness and the criterion micro-benches build no gRPC, exports or PostgreSQL, and only
    // the PostgreSQL baseline links a PostgreSQL client.
    for bench in ["bench-harness", "release-ledger-benches"] {
        for forbidden in ["tonic", "ledger-client", "proto", "ledger-tools", "tokio-postgres", "bench-tools"] {
            assert!(!of(bench).contains(forbidden), "{bench} depends on {forbidden}");
        }
    }
    let postgres: Vec<&String> = deps.iter().filter(|(_, d)| d.contains("tokio-postgres")).map(|(n, _)| n).collect();
    assert_eq!(postgres, ["pg-baseline"], "only pg-baseline depends on tokio-postgres");
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_cli_names_no_tonic_server_type_and_the_server_no_terminal_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cli = Vec::new();
    rust_files(&root.join("src"), &mut cli);
    assert!(!cli.is_empty());
    for file in &cli {
        let text = std::fs::read_to_string(file).unwrap();
        for server_type in ["transport::Server", "_server::", "tonic::server", "tonic_health::server"] {
            assert!(!text.contains(server_type), "{} names {server_type}", file.display());
        }
    }
    let mut server = Vec::new();
    rust_files(&root.join("../src"), &mut server);
    for file in &server {
        let text = std::fs::read_to_string(file).unwrap();
        for terminal in ["clap", "indicatif", "ProgressBar"] {
            assert!(!text.contains(terminal), "{} mentions {terminal}", file.display());
        }
        // It prints nothing on stdout (logs and last-resort notes go to stderr).
        let prints = text.match_indices("println!").any(|(at, _)| at == 0 || text.as_bytes()[at - 1] != b'e');
        assert!(!prints, "{} prints on stdout", file.display());
    }
}
