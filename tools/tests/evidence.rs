//! Evidence packs (docs/evidence.md) from a real governed log: the entries a release's
//! decisions depend on are selected, the decisions re-derive from them alone, and the verifier
//! refuses any changed, missing, added or dropped byte, file or entry, naming the file.

// Test code may unwrap: a panic is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use ledger::Entry;
use ledger_tools::evidence::{self, Files, Pack, MANIFEST};
use projections::evidence::Role;
use serde_json::json;
use testkit::gov::*;

const R: &str = "release-2001";
const PUBLISHED: &str = "release-2000";
const FAILED: &str = "release-1999";
const OTHER: &str = "release-3000";

/// A log where `R`'s decisions depend on much more than its own entries: the policy, a freeze
/// declared (R waits) and lifted (R is approved), an earlier release of the same module published (firstRelease) and
/// another one failed in the last 24 h (recentFailures), beside a release of another module
/// that nothing of `R` depends on.
fn governed() -> Scenario {
    let mut s = Scenario::new();
    s.run([policy(prod_policy(json!({"maxCVESeverity": "High"})))]);
    for (release, version) in [(PUBLISHED, "1.3.0"), (FAILED, "1.3.1")] {
        s.run([intent(release, "prod", &[("api", version)])]);
        s.run(evidence(release, "api", version));
        s.run([evaluate(release), approve(release, "QA")]);
        s.settle();
        s.run([deploy_started(release, "prod")]);
        s.run([if release == PUBLISHED {
            deploy_completed(release, "prod")
        } else {
            deploy_failed(release, "prod", "health checks failed")
        }]);
        s.settle();
    }
    s.run([intent(OTHER, "prod", &[("web", "2.0.0")])]);
    s.run(evidence(OTHER, "web", "2.0.0"));
    s.run([freeze_oneoff("audit-week", &["prod"], "2025-03-01T00:00:00Z", "2025-03-08T00:00:00Z")]);
    s.run([intent(R, "prod", &[("api", "1.4.0")])]);
    s.run(evidence(R, "api", "1.4.0"));
    s.run([evaluate(R), approve(R, "QA")]);
    s.settle();
    s.run([lift("audit-week")]);
    s.settle();
    s
}

/// `release`'s pack, built as `release-ledger evidence` builds it, from the ledger directly.
fn pack_of(s: &Scenario, release: &str) -> Pack {
    let pack = Pack::from_ledger(&s.ledger, TENANT, release).unwrap();
    assert_eq!(pack.checkpoint.checkpoint.size, s.entries().len() as u64);
    pack
}

fn roles(pack: &Pack) -> BTreeMap<u64, Role> {
    pack.entries.iter().map(|e| (e.entry.seq, e.role)).collect()
}

fn release_of(entry: &Entry) -> Option<String> {
    body_of(entry).and_then(|b| b["releaseId"].as_str().map(str::to_owned))
}

#[test]
fn a_pack_holds_what_the_decisions_depend_on_and_verifies_from_its_files_alone() {
    let s = governed();
    let pack = pack_of(&s, R);
    let files = pack.files().unwrap();
    let key = s.ledger.ledger_key().verifying_key();
    let verified = evidence::verify(&files, Some(&key)).unwrap();
    assert_eq!(verified.status, "Approved");
    assert_eq!(verified.ledger_key_source, "pinned");
    assert!(!verified.decisions.is_empty());
    assert_eq!(evidence::verify(&files, None).unwrap().ledger_key_source, "pack");

    // Every entry naming R, every tenant-wide entry up to R's last, and from other releases
    // only what the risk score reads: the failure, the first publication, their intents.
    let roles = roles(&pack);
    let last = *roles.keys().last().unwrap();
    for entry in s.entries().iter().filter(|e| e.seq <= last) {
        let release = release_of(entry);
        let role = roles.get(&entry.seq).copied();
        match release.as_deref() {
            Some(R) => assert_eq!(role, Some(Role::Release), "seq {}", entry.seq),
            None => assert_eq!(role, Some(Role::Governance), "seq {}", entry.seq),
            Some(OTHER) => assert_eq!(role, None, "seq {}: another module's release", entry.seq),
            Some(_) => {
                let t = body_of(entry).unwrap()["type"].as_str().unwrap().to_owned();
                let wanted = t == "ReleaseIntentDeclared" || t == "DeploymentFailed" || t == "ReleasePublished";
                assert_eq!(role, wanted.then_some(Role::Context), "seq {} ({t})", entry.seq);
            }
        }
    }
    // R waited for the freeze (Delayed), and was approved when it was lifted.
    let types: Vec<String> = verified.decisions.iter().map(|(_, t)| t.clone()).collect();
    assert!(types.iter().any(|t| t == "ReleaseDelayed"), "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("ReleaseApproved"), "{types:?}");
    assert!(pack
        .entries
        .iter()
        .any(|e| e.role == Role::Governance && body_of(&e.entry).unwrap()["type"] == "ChangeFreezeLifted"));

    // The report says what the decisions say, from the context too.
    let report = String::from_utf8(files["report.md"].clone()).unwrap();
    assert!(report.contains("1 failures or rollbacks in 24 h"), "{report}");
    assert!(report.contains("audit\\-week") || report.contains("audit-week"), "{report}");
    let html = String::from_utf8(files["report.html"].clone()).unwrap();
    assert!(html.contains("<table>") && html.contains("Content-Security-Policy"));

    // Written and read back, the directory is the same pack.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pack");
    evidence::write_dir(&files, &out).unwrap();
    assert_eq!(evidence::read_dir(&out).unwrap(), files);
    assert!(evidence::write_dir(&files, &out).is_err(), "an existing directory is refused");

    // As one file: the same files, the same bytes every time, read back as written.
    let (one, two) = (dir.path().join("one.tar"), dir.path().join("two.tar"));
    evidence::write(&files, &one).unwrap();
    evidence::write(&files, &two).unwrap();
    assert_eq!(std::fs::read(&one).unwrap(), std::fs::read(&two).unwrap());
    // The console's download (in memory) is the same bytes.
    assert_eq!(evidence::archive(&files).unwrap(), std::fs::read(&one).unwrap());
    assert_eq!(evidence::read(&one).unwrap(), files);
    assert!(evidence::write(&files, &one).is_err(), "an existing file is refused");
}

#[test]
fn an_archive_with_links_escaping_names_or_duplicates_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let archive = |name: &str, build: &dyn Fn(&mut tar::Builder<std::fs::File>)| {
        let path = dir.path().join(name);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        build(&mut builder);
        builder.finish().unwrap();
        path
    };
    let file = |builder: &mut tar::Builder<std::fs::File>, name: &str| {
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, b"{}".as_slice()).unwrap();
    };
    let link = archive("link.tar", &|b| {
        let mut header = tar::Header::new_gnu();
        header.set_size(0);
        header.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut header, "manifest.json", "/etc/passwd").unwrap();
    });
    let error = evidence::read(&link).unwrap_err().to_string();
    assert!(error.contains("not a regular file"), "{error}");
    let twice = archive("twice.tar", &|b| {
        file(b, "manifest.json");
        file(b, "manifest.json");
    });
    assert!(evidence::read(&twice).unwrap_err().to_string().contains("twice"));
    // A name that climbs out: tar::Builder refuses to write one, so it is written by hand.
    let mut header = tar::Header::new_ustar();
    header.as_ustar_mut().unwrap().name[..16].copy_from_slice(b"../manifest.json");
    header.set_size(2);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    bytes.resize(bytes.len() + 510 + 1024, 0);
    let climbing = dir.path().join("climbing.tar");
    std::fs::write(&climbing, bytes).unwrap();
    let error = evidence::read(&climbing).unwrap_err().to_string();
    assert!(error.contains("not a relative path"), "{error}");
}

#[test]
fn one_changed_byte_in_any_file_is_refused_naming_the_file() {
    let s = governed();
    let key = s.ledger.ledger_key().verifying_key();
    let files = pack_of(&s, R).files().unwrap();
    for (name, bytes) in &files {
        for at in [0, bytes.len() / 2, bytes.len() - 2] {
            let mut tampered = files.clone();
            tampered.get_mut(name).unwrap()[at] ^= 0x01;
            let failure = evidence::verify(&tampered, Some(&key)).expect_err(&format!("{name} byte {at} flipped"));
            // A manifest change can first show as the file it no longer names.
            if name != MANIFEST {
                assert_eq!(failure.file.as_deref(), Some(name.as_str()), "{name} byte {at}: {failure}");
            }
        }
    }
    // A file added, or one taken away.
    let mut added = files.clone();
    added.insert("entries/999.dsse.json".into(), b"{}".to_vec());
    assert_eq!(evidence::verify(&added, Some(&key)).unwrap_err().file.as_deref(), Some("entries/999.dsse.json"));
    for name in files.keys() {
        let mut removed = files.clone();
        removed.remove(name);
        let failure = evidence::verify(&removed, Some(&key)).unwrap_err();
        assert_eq!(failure.file.as_deref(), Some(name.as_str()), "{failure}");
    }
}

#[test]
fn a_pack_without_an_entry_the_decisions_depend_on_is_refused() {
    let s = governed();
    let key = s.ledger.ledger_key().verifying_key();
    let full = pack_of(&s, R);
    let files = full.files().unwrap();

    // Each entry left out in turn, the manifest rewritten to match and the other files kept:
    // nothing verifies, whatever was left out. The entries a decision names as evidence and
    // the context cannot be left out even by someone who renders the reports again: the
    // decisions no longer follow. (An entry no decision depends on can: docs/evidence.md.)
    let needed: std::collections::BTreeSet<u64> = full
        .rederive()
        .unwrap()
        .decisions
        .iter()
        .flat_map(|(_, d)| d.evidence.clone())
        .chain(full.entries.iter().filter(|e| e.role == Role::Context).map(|e| e.entry.seq))
        .collect();
    assert!(needed.len() > 5, "{needed:?}");
    for (index, left_out) in full.entries.iter().enumerate() {
        let seq = left_out.entry.seq;
        let mut pack = full.clone();
        pack.entries.remove(index);
        pack.attestations.remove(&seq);
        if needed.contains(&seq) {
            let error = pack.files().expect_err(&format!("seq {seq} ({:?}) left out", left_out.role));
            assert!(!error.to_string().is_empty());
        }
        let mut forged: Files = files.clone();
        forged.insert(MANIFEST.into(), {
            let mut json = serde_json::to_vec_pretty(&pack.manifest()).unwrap();
            json.push(b'\n');
            json
        });
        forged.remove(&evidence::entry_file(seq));
        forged.remove(&evidence::proof_file(seq));
        forged.remove(&evidence::attestation_file(seq));
        let failure = evidence::verify(&forged, Some(&key)).unwrap_err();
        assert!(!failure.reason.is_empty(), "seq {seq} ({:?}): {failure}", left_out.role);
    }

    // The freeze's declaration left out: the decisions made under it no longer follow.
    let declared = full
        .entries
        .iter()
        .position(|e| body_of(&e.entry).is_some_and(|b| b["type"] == "ChangeFreezeDeclared"))
        .unwrap();
    let mut pack = full.clone();
    pack.entries.remove(declared);
    let error = pack.rederive().unwrap_err().to_string();
    assert!(error.contains("does not follow from the pack's entries"), "{error}");

    // Another key pinned: refused at the key, before anything else.
    let stranger = ledger::KeyPair::from_seed(&[9; 32]).verifying_key();
    let failure = evidence::verify(&files, Some(&stranger)).unwrap_err();
    assert_eq!(failure.file.as_deref(), Some("ledger.pub"), "{failure}");
    assert!(failure.reason.contains("is not the pinned key"), "{failure}");
}

#[test]
fn a_release_whose_decision_inputs_were_erased_has_no_pack_that_verifies() {
    let mut s = governed();
    let target = s
        .entries()
        .iter()
        .find(|e| release_of(e).as_deref() == Some(R) && body_of(e).unwrap()["type"] == "TestsPassed")
        .unwrap()
        .seq;
    s.must(raw("EntryRedacted", None, json!({"seq": target, "reason": "erasure request"})).by(ADMIN));
    s.settle();
    let pack = pack_of(&s, R);
    assert_eq!(roles(&pack)[&target], Role::Redacted);
    let error = pack.files().unwrap_err().to_string();
    assert!(error.contains("redacted") && error.contains(&target.to_string()), "{error}");
}

/// A release decided by policy code on an attestation: its pack holds the attestation, the
/// Attestor key's registration and the policy with its Rego, and re-derives the decision from
/// them alone; the report shows the custom gate.
#[test]
fn a_pack_of_a_release_decided_by_policy_code_re_derives_it_from_the_attestation() {
    const BUILD: &str = "build-system";
    let builder =
        "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";
    let mut s = Scenario::new();
    s.register(BUILD, &["Attestor"]);
    let mut doc = prod_policy(json!({"maxCVESeverity": "High"}));
    doc["environments"]["prod"]["gates"] = json!(["slsa_provenance"]);
    doc["rego"] = json!({ "modules": { "slsa.rego": include_str!("../../docs/gates/slsa_provenance.rego") } });
    s.run([policy(doc)]);
    let mut declared = intent(R, "prod", &[("api", "1.4.0")]);
    declared.data["modules"][0]["digest"] = json!({ "sha256": artifact_digest("api", "1.4.0") });
    s.run([declared]);
    s.run(evidence(R, "api", "1.4.0"));
    s.run([evaluate(R), approve(R, "QA")]);
    let provenance = json!({ "runDetails": { "builder": { "id": builder } } });
    let statement = statement("api", "1.4.0", "https://slsa.dev/provenance/v1", provenance);
    s.run([attestation(R, "api", "1.4.0", "slsa-provenance", &statement, BUILD)]);
    s.settle();
    assert_eq!(s.outcome(R), "Approved risk=10");

    let pack = pack_of(&s, R);
    let files = pack.files().unwrap();
    let verified = evidence::verify(&files, Some(&s.ledger.ledger_key().verifying_key())).unwrap();
    assert_eq!(verified.status, "Approved");
    let types: Vec<String> = verified.decisions.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(types.last().map(String::as_str), Some("ReleaseApproved"), "{types:?}");
    let holds = |event_type: &str| pack.entries.iter().any(|e| body_of(&e.entry).unwrap()["type"] == event_type);
    assert!(holds("EvidenceAttached") && holds("AgentKeyRegistered") && holds("PolicyUpdated"));
    let report = String::from_utf8(files["report.md"].clone()).unwrap();
    assert!(report.contains("custom:slsa\\_provenance") || report.contains("custom:slsa_provenance"), "{report}");
}
