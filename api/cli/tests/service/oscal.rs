//! `release-ledger oscal` against a real server whose log the demo filled: the tenant's
//! decisions as an OSCAL 1.1.2 assessment-results document, valid against the published
//! schema shipped in docs/schemas, one observation per decision, the same bytes on every run.

use std::path::Path;

use crate::gate::demo_server;
use crate::{cli, json, json_lines, ok, Server};

const TENANT: &str = "vetclinic-001";

/// The published schema (docs/schemas), draft-07, formats checked.
fn validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schemas/oscal_assessment-results_schema.json");
    let schema: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::draft7::options().should_validate_formats(true).build(&schema).unwrap()
}

fn assert_valid(document: &serde_json::Value) {
    let errors: Vec<String> =
        validator().iter_errors(document).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

fn oscal(server: &Server, cwd: &Path, extra: &[&str]) -> std::process::Output {
    cli(server, cwd, &[["oscal", "--tenant", TENANT].as_slice(), extra].concat())
}

fn observations(document: &serde_json::Value) -> Vec<serde_json::Value> {
    let result = &document["assessment-results"]["results"][0];
    result.get("observations").and_then(|o| o.as_array()).cloned().unwrap_or_default()
}

fn prop(item: &serde_json::Value, name: &str) -> String {
    let props = item["props"].as_array().unwrap();
    props.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("no {name}: {item}"))["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn oscal_assessment_results_of_a_real_log_validate_and_hold_one_observation_per_decision() {
    let (dir, data, server, [approved, rejected, _]) = demo_server();
    let cwd = dir.path();
    let ledger_pub = data.join("keys/ledger.pub");
    let pinned = ["--ledger-key", ledger_pub.to_str().unwrap()];

    // Every decision of the log: the summary names them and the checkpoint they were proven in.
    let file = cwd.join("all.oscal.json");
    let summary = json(&ok(oscal(&server, cwd, &[&pinned[..], &["--out", file.to_str().unwrap(), "--json"]].concat())));
    let document: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_valid(&document);
    let size = summary["checkpointSize"].as_u64().unwrap();
    let entries = json_lines(&ok(cli(&server, cwd, &["tail", "--tenant", TENANT, "--json"])));
    let decisions: Vec<u64> = entries
        .iter()
        .filter(|e| e["seq"].as_u64().unwrap() < size)
        .filter(|e| ledger::event::DECISION_TYPES.contains(&e["type"].as_str().unwrap_or_default()))
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(decisions.len() >= 3, "{decisions:?}");
    let observed = observations(&document);
    let seqs: Vec<u64> = observed.iter().map(|o| prop(o, "seq").parse().unwrap()).collect();
    assert_eq!(seqs, decisions, "one observation per decision entry of the log read, in seq order");
    assert_eq!(summary["decisionSeqs"], serde_json::json!(decisions));
    for observation in &observed {
        let seq: u64 = prop(observation, "seq").parse().unwrap();
        let entry = entries.iter().find(|e| e["seq"] == seq).unwrap();
        assert_eq!(prop(observation, "entry-hash"), entry["entryHash"].as_str().unwrap());
        assert_eq!(prop(observation, "decision-type"), entry["type"].as_str().unwrap());
        // The decision entry, then each evidence entry, by seq and entry hash as the log has them.
        let evidence = observation["relevant-evidence"].as_array().unwrap();
        assert!(evidence[0]["href"].as_str().unwrap().ends_with(&format!("/{TENANT}/entries/{seq}")));
        assert!(evidence.len() > 1, "{observation}");
        for item in &evidence[1..] {
            let cited_seq: u64 = prop(item, "seq").parse().unwrap();
            let cited = entries.iter().find(|e| e["seq"] == cited_seq).unwrap();
            assert_eq!(prop(item, "entry-hash"), cited["entryHash"].as_str().unwrap());
        }
    }
    let release_of = |decision: &str| {
        observed
            .iter()
            .filter(|o| prop(o, "decision-type") == decision)
            .map(|o| prop(o, "release-id"))
            .collect::<Vec<_>>()
    };
    assert!(release_of("ReleaseApproved").contains(&approved));
    assert!(release_of("ReleaseRejected").contains(&rejected));

    // A period from the first decision to the last (excluded): the same bytes on every run.
    let times: Vec<&str> = observed.iter().map(|o| o["collected"].as_str().unwrap()).collect();
    let (first, last) = (times[0], *times.last().unwrap());
    let period = ["--since", first, "--until", last];
    let runs: Vec<Vec<u8>> =
        (0..2).map(|_| ok(oscal(&server, cwd, &[&pinned[..], &period[..]].concat())).into_bytes()).collect();
    assert_eq!(runs[0], runs[1], "the same entries give the same bytes");
    let bounded: serde_json::Value = serde_json::from_slice(&runs[0]).unwrap();
    assert_valid(&bounded);
    let result = &bounded["assessment-results"]["results"][0];
    assert_eq!((result["start"].as_str(), result["end"].as_str()), (Some(first), Some(last)));
    let expected = times.iter().filter(|t| **t < last).count();
    assert_eq!(observations(&bounded).len(), expected, "decisions evaluated in [since, until)");
    assert!(expected < observed.len());

    // A period with no decision: an empty result, said on stderr, still a valid document.
    let out = oscal(&server, cwd, &["--since", "2200-01-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no decision"), "{out:?}");
    let empty: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(&empty);
    assert!(observations(&empty).is_empty());
}

#[test]
fn oscal_refuses_bad_periods_unknown_tenants_and_another_ledger_key_precisely() {
    let (dir, _data, server, _) = demo_server();
    let cwd = dir.path();
    let refused = |extra: &[&str], tenant: &str, code: i32, says: &str| {
        let out = cli(&server, cwd, &[["oscal", "--tenant", tenant].as_slice(), extra].concat());
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{extra:?}: nothing written");
    };
    refused(&["--since", "last tuesday"], TENANT, 2, "--since \"last tuesday\"");
    refused(&["--since", "2026-05-23T10:00:00Z", "--until", "2026-05-23T09:00:00Z"], TENANT, 2, "is not after --since");
    refused(&["--until", "1899-01-01T00:00:00Z"], TENANT, 2, "1900");
    refused(&[], "no-such-tenant", 1, "no-such-tenant");
    // Another key than the ledger's: the checkpoint does not verify, nothing is written.
    let other = cwd.join("other.pem");
    ok(cli(&server, cwd, &["keygen", "--out", other.to_str().unwrap()]));
    let out_file = cwd.join("never.json");
    let out = cli(
        &server,
        cwd,
        &["oscal", "--tenant", TENANT, "--ledger-key", other.to_str().unwrap(), "--out", out_file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("checkpoint does not verify"), "{out:?}");
    assert!(!out_file.exists() && !out_file.with_extension("partial").exists());
}
