//! The dependency invariants of ARCHITECTURE.md, read from `cargo metadata`'s resolved graph:
//! the offline crates (`ledger`, `projections`, `ledger-tools`) have no gRPC, protobuf or async
//! runtime anywhere in their dependency trees, and the generated proto types reach only the
//! network crates (and the benches, which drive the server as a client does).
//!
//! Checked by breaking it: adding `tokio.workspace = true` to `projections/Cargo.toml` fails
//! `the_offline_crates_have_no_grpc_protobuf_or_runtime_below_them` naming
//! `projections -> tokio`, and `proto.workspace = true` in `tools/Cargo.toml` fails both tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// The resolved graph: each package (by name) with the names of its normal dependencies, and
/// where its manifest is.
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    manifest: BTreeMap<String, String>,
    workspace: BTreeSet<String>,
}

fn graph() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--manifest-path"])
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut name_of = BTreeMap::new();
    let mut manifest = BTreeMap::new();
    for package in metadata["packages"].as_array().unwrap() {
        let name = package["name"].as_str().unwrap().to_owned();
        name_of.insert(package["id"].as_str().unwrap().to_owned(), name.clone());
        manifest.insert(name, package["manifest_path"].as_str().unwrap().to_owned());
    }
    let workspace = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].clone())
        .collect();
    let mut normal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().unwrap() {
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            // Normal dependencies only: `kind` null (build and dev dependencies do not ship).
            .filter(|d| d["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null()))
            .map(|d| name_of[d["pkg"].as_str().unwrap()].clone());
        normal.entry(name_of[node["id"].as_str().unwrap()].clone()).or_default().extend(deps);
    }
    Graph { normal, manifest, workspace }
}

impl Graph {
    /// Every package `root` depends on, directly or not, with a path to each (for the message).
    fn closure(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut stack = vec![vec![root.to_owned()]];
        while let Some(path) = stack.pop() {
            let last = path.last().unwrap();
            for dep in self.normal.get(last).into_iter().flatten() {
                if !seen.contains_key(dep) {
                    let mut next = path.clone();
                    next.push(dep.clone());
                    seen.insert(dep.clone(), next.clone());
                    stack.push(next);
                }
            }
        }
        seen
    }
}

#[test]
fn the_offline_crates_have_no_grpc_protobuf_or_runtime_below_them() {
    let graph = graph();
    for root in ["ledger", "projections", "ledger-tools"] {
        assert!(graph.workspace.contains(root), "no workspace package {root}");
        let below = graph.closure(root);
        assert!(below.contains_key("blake3"), "{root}'s closure misses blake3: the graph was not read");
        for forbidden in ["tonic", "prost", "tokio", "proto", "api", "ledger-wire", "ledger-client", "h2", "hyper"] {
            if let Some(path) = below.get(forbidden) {
                panic!("{root} depends on {forbidden}: {}", path.join(" -> "));
            }
        }
    }
}

#[test]
fn proto_types_reach_only_the_network_crates() {
    let graph = graph();
    let network = ["api", "ledger-wire", "ledger-client", "release-ledger-cli"];
    let mut users = Vec::new();
    for package in &graph.workspace {
        if !graph.normal.get(package).is_some_and(|deps| deps.contains("proto")) {
            continue;
        }
        users.push(package.clone());
        // The benches drive the server over gRPC, as any client does.
        let in_benches = graph.manifest[package].contains("/benches/");
        assert!(
            network.contains(&package.as_str()) || in_benches,
            "{package} depends on proto; ARCHITECTURE.md lets only {network:?} and the benches"
        );
    }
    for package in network {
        assert!(users.iter().any(|u| u == package), "{package} no longer depends on proto: update ARCHITECTURE.md");
    }
}
