//! `release-ledger evidence` and `ledger-audit verify-evidence` against a real server whose log
//! the demo filled: a release's pack is written, verifies offline with the pinned key, is
//! refused with any file changed, dropped or added, or with another key pinned, and its
//! attestations verify with the in-toto project's own libraries.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::gate::demo_server;
use crate::interop::run_script;
use crate::{binary, cli, json, ok};

const TENANT: &str = "vetclinic-001";

fn verify_evidence(pack: &Path, key: Option<&Path>) -> Output {
    let mut command = Command::new(Path::new(binary()).with_file_name("ledger-audit"));
    command.args(["verify-evidence", pack.to_str().unwrap(), "--json"]);
    if let Some(key) = key {
        command.args(["--ledger-key", key.to_str().unwrap()]);
    }
    command.output().unwrap()
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for item in std::fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path).into_iter().map(|p| path.strip_prefix(dir).unwrap().join(p)));
        } else {
            found.push(path.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

#[test]
fn a_release_pack_from_a_real_server_verifies_offline_and_refuses_any_change() {
    let (dir, data, server, [approved, rejected, _]) = demo_server();
    let cwd = dir.path();
    let ledger_pub = data.join("keys/ledger.pub");

    // The demo ended by writing one, which verifies.
    let demo: serde_json::Value = json(&std::fs::read_to_string(cwd.join("demo.json")).unwrap());
    let demo_pack = PathBuf::from(demo["evidencePack"].as_str().unwrap());
    let checked = json(&ok(verify_evidence(&demo_pack, Some(&ledger_pub))));
    assert_eq!(checked["verified"], true, "{checked}");
    assert!(
        checked["outcome"]["entries"]["context"].as_u64().unwrap() > 0,
        "the risky release reads others' failures: {checked}"
    );

    for release in [&approved, &rejected] {
        let pack = cwd.join(format!("pack-{release}"));
        let args = ["evidence", "--tenant", TENANT, "--release", release, "--out", pack.to_str().unwrap()];
        let written = json(&ok(cli(
            &server,
            cwd,
            &[&args[..], &["--ledger-key", ledger_pub.to_str().unwrap(), "--json"]].concat(),
        )));
        let checked = json(&ok(verify_evidence(&pack, Some(&ledger_pub))));
        assert_eq!(checked["verified"], true, "{checked}");
        assert_eq!(checked["outcome"]["status"], written["status"]);
        assert_eq!(checked["outcome"]["files"].as_u64().unwrap() as usize, files(&pack).len());
        let expected = if release == &approved { "Approved" } else { "Rejected" };
        assert_eq!(written["status"], expected, "{written}");
        let report = std::fs::read_to_string(pack.join("report.md")).unwrap();
        assert!(report.contains(&format!("Status after the release's last entry: {expected}")), "{report}");

        // The in-toto project's libraries check every attestation of the pack.
        let intoto = run_script(&server, "check_attestation.py", &["--pack", pack.to_str().unwrap()]);
        assert_eq!(intoto["checked"].as_u64().unwrap() as usize, written["decisions"].as_array().unwrap().len());

        // As one file: GNU tar lists the same files, and the archive verifies as the directory.
        let archive = cwd.join(format!("pack-{release}.tar"));
        let args_tar = ["evidence", "--tenant", TENANT, "--release", release, "--out", archive.to_str().unwrap()];
        ok(cli(&server, cwd, &[&args_tar[..], &["--ledger-key", ledger_pub.to_str().unwrap()]].concat()));
        let listed = Command::new("tar").arg("-tf").arg(&archive).output().unwrap();
        let mut names: Vec<PathBuf> = String::from_utf8(listed.stdout).unwrap().lines().map(PathBuf::from).collect();
        names.sort();
        assert_eq!(names, files(&pack));
        assert_eq!(json(&ok(verify_evidence(&archive, Some(&ledger_pub))))["verified"], true);

        // Writing over an existing pack is refused, and leaves it as it was.
        let again = cli(&server, cwd, &args);
        assert_eq!(again.status.code(), Some(2), "could not run: {again:?}");
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"), "{again:?}");
        assert_eq!(json(&ok(verify_evidence(&pack, Some(&ledger_pub))))["verified"], true);
    }

    // Every proof of a pack checks with Go's reference implementation (note.Open with the
    // ledger's vkey, tlog.CheckRecord of the entry hash the proof's extra data hashes to).
    let pack = cwd.join(format!("pack-{approved}"));
    let manifest = json(&std::fs::read_to_string(pack.join("manifest.json")).unwrap());
    let key = ledger::keys::public_key_from_text(&std::fs::read_to_string(&ledger_pub).unwrap()).unwrap();
    let origin = manifest["origin"].as_str().unwrap();
    let vkey = witness::Vkey::new(origin, witness::note::ED25519_NOTE_TYPE, key).unwrap().to_string();
    let proofs = files(&pack.join("proofs"));
    assert_eq!(proofs.len(), manifest["entries"].as_array().unwrap().len());
    for proof in &proofs {
        let text = std::fs::read_to_string(pack.join("proofs").join(proof)).unwrap();
        let parsed = ledger::tlog_proof::TlogProof::parse(&text).unwrap();
        let (seq, recorded_at, prev, payload) =
            ledger::hash::parse_entry_hash_input(parsed.extra.as_deref().unwrap()).unwrap();
        let record = ledger::b64::encode(ledger::hash::entry_hash(seq, recorded_at, &prev, &payload));
        let checked = testkit::run_go_tlogcheck(&["proof-file", &vkey, &record], &text);
        assert!(checked.status.success(), "{}: {}", proof.display(), String::from_utf8_lossy(&checked.stderr));
        let size = manifest["checkpointSize"].as_u64().unwrap();
        assert_eq!(String::from_utf8_lossy(&checked.stdout).trim(), format!("{origin} {size} {seq}"));
    }

    // One flipped byte in any file of a pack, a file dropped, a file added: exit 1, naming it.
    for file in files(&pack) {
        let path = pack.join(&file);
        let original = std::fs::read(&path).unwrap();
        let mut flipped = original.clone();
        let at = flipped.len() / 2;
        flipped[at] ^= 0x20;
        std::fs::write(&path, &flipped).unwrap();
        let refused = verify_evidence(&pack, Some(&ledger_pub));
        assert_eq!(refused.status.code(), Some(1), "{} flipped: {refused:?}", file.display());
        let failure = json(&String::from_utf8_lossy(&refused.stdout));
        assert_eq!(failure["verified"], false);
        if file != Path::new("manifest.json") {
            assert_eq!(failure["failure"]["file"], file.to_str().unwrap(), "{failure}");
        }
        std::fs::remove_file(&path).unwrap();
        let dropped = verify_evidence(&pack, Some(&ledger_pub));
        assert_eq!(dropped.status.code(), Some(1), "{} dropped: {dropped:?}", file.display());
        std::fs::write(&path, &original).unwrap();
    }
    std::fs::write(pack.join("entries/notes.txt"), "added").unwrap();
    let added = verify_evidence(&pack, Some(&ledger_pub));
    assert_eq!(added.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&added.stdout).contains("entries/notes.txt"), "{added:?}");
    std::fs::remove_file(pack.join("entries/notes.txt")).unwrap();
    assert!(verify_evidence(&pack, Some(&ledger_pub)).status.success(), "restored");

    // Another key pinned: refused; no key pinned: verified, saying the key is the pack's own.
    let stranger = cwd.join("stranger.pub");
    std::fs::write(&stranger, ledger::KeyPair::from_seed(&[3; 32]).public_key_pem().unwrap()).unwrap();
    let refused = verify_evidence(&pack, Some(&stranger));
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stdout).contains("is not the pinned key"), "{refused:?}");
    let unpinned = json(&ok(verify_evidence(&pack, None)));
    assert_eq!(unpinned["outcome"]["ledgerKeySource"], "pack");

    // Not a pack at all: exit 2.
    let missing = verify_evidence(&cwd.join("no-such-pack"), None);
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    // An unknown release: refused before anything is written.
    let nowhere = cwd.join("pack-never");
    let out = cli(
        &server,
        cwd,
        &["evidence", "--tenant", TENANT, "--release", "release-never", "--out", nowhere.to_str().unwrap()],
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(!nowhere.exists());
}
