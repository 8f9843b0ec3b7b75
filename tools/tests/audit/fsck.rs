//! `ledger-audit verify DATA_DIR`: the read-only fsck. A clean store verifies and not a byte of
//! it changes; damage in any column family is named (column family, tenant, seq or key) with
//! exit 1; what cannot be read exits 2; an empty store is never verified.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, DB};
use serde_json::Value;

use super::*;

const CFS: [&str; 8] = ledger::store::COLUMN_FAMILIES;

/// A governed scenario with a redacted entry (whose event id, digest and stream the payload no
/// longer shows), its worker stopped, and a copy of its data dir taken while the ledger was
/// idle (what an operator copies off a server).
fn governed_copy() -> (Scenario, tempfile::TempDir) {
    let mut s = governed();
    let target = s.entries().iter().find(|e| body_of(e).is_some_and(|b| b["type"] == "CoverageVerified")).unwrap().seq;
    s.must(raw("EntryRedacted", None, json!({"seq": target, "reason": "erasure request"})).by(ADMIN));
    s.settle();
    // The erasure flushes every row into SSTs; what is appended after it sits in the WAL, so the
    // copy has rows in both (the WAL damage below needs some).
    assert_eq!(s.ledger.wait_for_erasures(std::time::Duration::from_secs(60)), 0);
    s.run([intent("r-after", "prod", &[("jobs", "3.0.0")])]);
    s.run(evidence("r-after", "jobs", "3.0.0"));
    s.settle();
    s.stop_governor();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(s.ledger.data_dir(), copy.path());
    (s, copy)
}

/// Every file and directory under `dir`: content hash, size, mtime (and for a directory, its
/// names and mtime).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let content = if meta.is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    stack.push(e.path());
                    e.file_name().to_string_lossy().into_owned()
                })
                .collect();
            names.sort();
            format!("dir {names:?}")
        } else {
            hex::encode(ledger::hash::payload_hash(&std::fs::read(&path).unwrap()))
        };
        out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), (content, meta.len(), meta.modified().unwrap()));
    }
    out
}

/// Runs `ledger-audit verify --json DIR`: exit code, JSON (if any), stderr.
fn fsck(dir: &Path) -> (Option<i32>, Value, String) {
    fsck_with(dir, &[])
}

/// [`fsck`] with more options.
fn fsck_with(dir: &Path, options: &[&str]) -> (Option<i32>, Value, String) {
    let out = ledger_audit().args(["verify", "--json"]).args(options).arg(dir).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Writes rows with a separate read-write handle on the closed store, as a tamperer would.
fn tamper(dir: &Path, change: impl FnOnce(&DB)) {
    let descriptors = CFS.iter().map(|cf| ColumnFamilyDescriptor::new(*cf, Options::default()));
    let db = DB::open_cf_descriptors(&Options::default(), dir.join("db"), descriptors).unwrap();
    change(&db);
    db.flush_wal(true).unwrap();
}

/// A row: key and value.
type Row = (Box<[u8]>, Box<[u8]>);

fn rows(db: &DB, cf: &str) -> Vec<Row> {
    db.iterator_cf(db.cf_handle(cf).unwrap(), IteratorMode::Start).map(Result::unwrap).collect()
}

fn put(db: &DB, cf: &str, key: &[u8], value: &[u8]) {
    db.put_cf(db.cf_handle(cf).unwrap(), key, value).unwrap();
}

fn seq_key(seq: u64) -> Vec<u8> {
    [&0u32.to_be_bytes()[..], &seq.to_be_bytes()].concat()
}

/// The problems of a `--json` outcome.
fn problems(json: &Value) -> Vec<Value> {
    json["problems"].as_array().cloned().unwrap_or_default()
}

fn has_problem(json: &Value, cf: &str, seq: Option<u64>, key_part: Option<&str>, detail_part: &str) -> bool {
    problems(json).iter().any(|p| {
        p["columnFamily"] == cf
            && p["tenant"] == TENANT
            && seq.is_none_or(|s| p["seq"] == s)
            && key_part.is_none_or(|k| p["key"].as_str().is_some_and(|key| key.contains(k)))
            && p["detail"].as_str().is_some_and(|d| d.contains(detail_part))
    })
}

#[test]
fn a_clean_data_dir_verifies_without_a_byte_written_and_without_private_keys() {
    let (s, copy) = governed_copy();
    let n = size(&s);
    // No private key is needed: the trust roots are the public keys in `meta`.
    std::fs::remove_file(copy.path().join("keys/ledger.pem")).unwrap();
    std::fs::remove_file(copy.path().join("keys/admin.pem")).unwrap();
    let before = snapshot(copy.path());
    let (code, json, stderr) = fsck(copy.path());
    assert_eq!(code, Some(0), "{json:#}{stderr}");
    assert_eq!(json["format"], "data-dir");
    assert!(json["failure"].is_null() && problems(&json).is_empty(), "{json:#}");
    let tenant = &json["tenants"][0];
    assert_eq!(tenant["entries"], n);
    assert_eq!(tenant["redacted"].as_array().unwrap().len(), 1, "{tenant:#}");
    assert_eq!(tenant["signatures"], n - 1, "every signature but the redacted entry's");
    // Decisions made from the redacted evidence can no longer be re-derived: unverifiable, not
    // failures; every other one is re-derived.
    let rederived = tenant["decisionsChecked"].as_u64().unwrap();
    let unverifiable = tenant["decisionsUnverifiable"].as_array().unwrap().len() as u64;
    assert!(rederived >= 1 && rederived + unverifiable == decision_seqs(&s).len() as u64, "{tenant:#}");
    assert!(tenant["storedCheckpointsChecked"].as_u64().unwrap() >= 3, "{tenant:#}");
    let checked: BTreeMap<String, u64> =
        serde_json::from_value::<Vec<(String, u64)>>(tenant["rowsChecked"].clone()).unwrap().into_iter().collect();
    for cf in ["entries", "event_ids", "streams"] {
        assert_eq!(checked[cf], n, "{cf}: {checked:?}");
    }
    assert!(checked["tree"] >= 2 * n - 1 - u64::from(n.count_ones()), "{checked:?}");
    assert_eq!(checked["keys"], s.ledger.key_records(TENANT).unwrap().len() as u64);
    assert!(json["ledgerKeySource"].as_str().unwrap().contains("matches keys/ledger.pub"), "{json:#}");
    assert!(!copy.path().join("keys/ledger.pem").exists(), "no key was created");
    assert_eq!(snapshot(copy.path()), before, "the audit changed the data dir");

    // The same with every directory and file read-only. Tests run as root, which ignores the
    // modes, so the snapshot comparison is what proves nothing was written.
    let paths: Vec<PathBuf> = before.keys().map(|p| copy.path().join(p)).collect();
    for path in &paths {
        let mode = if path.is_dir() { 0o555 } else { 0o444 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let read_only = snapshot(copy.path());
    let out = ledger_audit().arg("verify").arg(copy.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("VERIFIED") && text.contains("event_ids") && text.contains("stream_heads"), "{text}");
    assert_eq!(snapshot(copy.path()), read_only, "the audit changed a read-only data dir");
    for path in &paths {
        let mode = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Checked by breaking it (2026-12-07): the reading thread's last problem (a middle entry that
/// does not decode, or is missing) dropped instead of listed fails the two `entries` cases;
/// `event_ids` rows taken as clear where no fingerprint was kept fails the runs without them.
#[test]
fn a_tampered_row_in_every_column_family_is_named_with_exit_1() {
    let (s, pristine) = governed_copy();
    let n = size(&s);
    // A case: how to damage the store, then what the audit must say.
    type Damage = Box<dyn FnOnce(&DB) -> (&'static str, Option<u64>, Option<String>, &'static str)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "entries: a byte of an entry's payload flipped",
            Box::new(|db| {
                let mut value = db.get_cf(db.cf_handle("entries").unwrap(), seq_key(4)).unwrap().unwrap();
                *value.last_mut().unwrap() ^= 0x20;
                put(db, "entries", &seq_key(4), &value);
                ("entries", Some(4), None, "payload hash does not match the envelope")
            }),
        ),
        (
            "entries: an entry deleted",
            Box::new(|db| {
                db.delete_cf(db.cf_handle("entries").unwrap(), seq_key(6)).unwrap();
                ("entries", Some(6), None, "entry is missing (the next stored is seq 7)")
            }),
        ),
        (
            "event_ids: payload digest",
            Box::new(|db| {
                let (key, mut value) = rows(db, "event_ids").into_iter().nth(3).unwrap();
                value[39] ^= 1;
                put(db, "event_ids", &key, &value);
                let seq = u64::from_be_bytes(value[..8].try_into().unwrap());
                ("event_ids", Some(seq), None, "payload digest differs")
            }),
        ),
        (
            "event_ids: a row moved under another event id",
            Box::new(|db| {
                // Seq and digest are still the entry's: only the event id in the key differs.
                let (key, value) = rows(db, "event_ids").into_iter().nth(5).unwrap();
                let mut moved = key.to_vec();
                *moved.last_mut().unwrap() ^= 1;
                db.delete_cf(db.cf_handle("event_ids").unwrap(), &key).unwrap();
                put(db, "event_ids", &moved, &value);
                let seq = u64::from_be_bytes(value[..8].try_into().unwrap());
                ("event_ids", Some(seq), None, "the entry's eventId is")
            }),
        ),
        (
            "streams: the first versions of two streams swapped",
            Box::new(|db| {
                // Each stream's version 1 names the other stream's entry: versions still count
                // 1, 2, ... but the entries are in the other stream.
                let firsts: Vec<Row> = rows(db, "streams")
                    .into_iter()
                    .filter(|(key, _)| key[key.len() - 8..] == 1u64.to_be_bytes())
                    .take(2)
                    .collect();
                let [(a_key, a_value), (b_key, b_value)] = <[Row; 2]>::try_from(firsts).unwrap();
                put(db, "streams", &a_key, &b_value);
                put(db, "streams", &b_key, &a_value);
                let seq = u64::from_be_bytes(b_value[..].try_into().unwrap());
                ("streams", Some(seq), None, "the entry is in stream")
            }),
        ),
        (
            "streams: a version names another entry",
            Box::new(|db| {
                // The first version of a stream now names an entry another row names: the entry
                // it named is left with no row.
                let (key, value) = rows(db, "streams").into_iter().next().unwrap();
                let old = u64::from_be_bytes(value[..].try_into().unwrap());
                let other: u64 = if old == 0 { 1 } else { 0 };
                put(db, "streams", &key, &other.to_be_bytes());
                ("streams", Some(old), None, "has no stream version row")
            }),
        ),
        (
            "stream_heads: a version past the last",
            Box::new(|db| {
                let (key, value) = rows(db, "stream_heads").into_iter().next().unwrap();
                let version = u64::from_be_bytes(value[..].try_into().unwrap());
                put(db, "stream_heads", &key, &(version + 1).to_be_bytes());
                let stream = String::from_utf8(key[4..].to_vec()).unwrap();
                ("stream_heads", None, Some(format!("{stream:?}")), "has no streams row")
            }),
        ),
        (
            "tree: a node",
            Box::new(|db| {
                let key = [&0u32.to_be_bytes()[..], &[0u8], &3u64.to_be_bytes()].concat();
                put(db, "tree", &key, &[7u8; 32]);
                ("tree", Some(3), Some("level 0 index 3".into()), "differs from the hash recomputed")
            }),
        ),
        (
            "tree: a level's first node missing",
            Box::new(|db| {
                // Level 1, index 0: completed by seq 1, the first node the pass asks of level 1.
                let key = [&0u32.to_be_bytes()[..], &[1u8], &0u64.to_be_bytes()].concat();
                db.delete_cf(db.cf_handle("tree").unwrap(), &key).unwrap();
                ("tree", Some(1), Some("level 1 index 0".into()), "node is missing")
            }),
        ),
        (
            "tree: a node within a level missing",
            Box::new(|db| {
                // Level 0, index 5: the nodes before and after it are read, this one is not.
                let key = [&0u32.to_be_bytes()[..], &[0u8], &5u64.to_be_bytes()].concat();
                db.delete_cf(db.cf_handle("tree").unwrap(), &key).unwrap();
                ("tree", Some(5), Some("level 0 index 5".into()), "node is missing")
            }),
        ),
        (
            "checkpoints: a signed checkpoint of another size",
            Box::new(|db| {
                let all = rows(db, "checkpoints");
                let (key, _) = all[0].clone();
                let (_, other_note) = all[1].clone();
                put(db, "checkpoints", &key, &other_note);
                let size = u64::from_be_bytes(key[4..12].try_into().unwrap());
                ("checkpoints", Some(size - 1), Some(format!("size {size}")), "stored under size")
            }),
        ),
        (
            "keys: a record that gained a role",
            Box::new(|db| {
                let (key, value) = rows(db, "keys").into_iter().next().unwrap();
                let mut record: Value = serde_json::from_slice(&value).unwrap();
                record["roles"].as_array_mut().unwrap().push("ReleaseManager".into());
                put(db, "keys", &key, &serde_json::to_vec(&record).unwrap());
                let seq = record["registeredAt"].as_u64().unwrap();
                ("keys", Some(seq), Some(hex::encode(&key[4..])), "differs from the registry derived from the log")
            }),
        ),
        (
            "entries: a row beyond the head",
            Box::new(move |db| {
                let value = db.get_cf(db.cf_handle("entries").unwrap(), seq_key(n - 1)).unwrap().unwrap();
                put(db, "entries", &seq_key(n), &value);
                ("entries", Some(n), None, "beyond the head")
            }),
        ),
        (
            "tree: a node beyond the head",
            Box::new(move |db| {
                let key = [&0u32.to_be_bytes()[..], &[0u8], &n.to_be_bytes()].concat();
                put(db, "tree", &key, &[1u8; 32]);
                ("tree", None, Some(format!("level 0 index {n}")), "a node beyond")
            }),
        ),
    ];
    for (name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        let mut expected = None;
        tamper(dir.path(), |db| expected = Some(damage(db)));
        let (cf, seq, key, detail) = expected.unwrap();
        let (code, json, stderr) = fsck(dir.path());
        assert_eq!(code, Some(1), "{name}: {json:#}{stderr}");
        assert!(has_problem(&json, cf, seq, key.as_deref(), detail), "{name}: {:#}", json["problems"]);
        assert_eq!(json["failure"]["columnFamily"], problems(&json)[0]["columnFamily"], "{name}");
        // Without fingerprints (what a tenant beyond --max-fingerprints gets), every event_ids
        // and streams row is looked up: the same problems, in the same words and order.
        let (code, looked_up, stderr) = fsck_with(dir.path(), &["--max-fingerprints", "0"]);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert_eq!(looked_up["problems"], json["problems"], "{name}: without fingerprints");
        // The human form names the same row.
        let out = ledger_audit().arg("verify").arg(dir.path()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {text}");
        assert!(text.contains("INCONSISTENT") && text.contains(&format!("{cf}, tenant {TENANT}")), "{name}: {text}");
    }
    // The untouched copy (opened read-write once, so its rows now sit in SST files) verifies,
    // with and without fingerprints, having checked the same rows.
    tamper(pristine.path(), |_| {});
    let (code, json, _) = fsck(pristine.path());
    assert_eq!(code, Some(0), "{json:#}");
    let (code, looked_up, _) = fsck_with(pristine.path(), &["--max-fingerprints", "0"]);
    assert_eq!(code, Some(0), "{looked_up:#}");
    assert_eq!(looked_up["tenants"][0]["rowsChecked"], json["tenants"][0]["rowsChecked"]);
}

#[test]
fn what_is_not_a_whole_store_is_never_verified() {
    let dir = tempfile::tempdir().unwrap();
    // Not a data dir, or no such dir: could not run.
    let (code, _, stderr) = fsck(dir.path());
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not a Release Ledger data dir") && stderr.contains("db/"), "{stderr}");
    let (code, _, stderr) = fsck(&dir.path().join("nothing-here"));
    assert_eq!(code, Some(2), "{stderr}");

    // A store with no tenant (an unused data dir, or one that lost its rows) is a failure.
    let empty = dir.path().join("empty");
    drop(Ledger::open(&empty, ledger::Config::default()).unwrap());
    let before = snapshot(&empty);
    let (code, json, stderr) = fsck(&empty);
    assert_eq!(code, Some(1), "{json:#}{stderr}");
    assert!(json["failure"]["detail"].as_str().unwrap().contains("holds no tenant"), "{json:#}");
    assert_eq!(snapshot(&empty), before);

    // A missing CURRENT: could not run.
    let (_s, copy) = governed_copy();
    let broken = dir.path().join("no-current");
    copy_dir(copy.path(), &broken);
    std::fs::remove_file(broken.join("db/CURRENT")).unwrap();
    let (code, _, stderr) = fsck(&broken);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("CURRENT"), "{stderr}");

    // A damaged MANIFEST (the trial's case): a failure, and the copy is left exactly as it was.
    let damaged = dir.path().join("bad-manifest");
    copy_dir(copy.path(), &damaged);
    let current = std::fs::read_to_string(damaged.join("db/CURRENT")).unwrap();
    let manifest = damaged.join("db").join(current.trim());
    let mut bytes = std::fs::read(&manifest).unwrap();
    for byte in bytes.iter_mut().skip(8).take(64) {
        *byte ^= 0x5a;
    }
    std::fs::write(&manifest, &bytes).unwrap();
    let before = snapshot(&damaged);
    let (code, json, stderr) = fsck(&damaged);
    assert_eq!(code, Some(1), "a damaged MANIFEST is corruption: {json:#}{stderr}");
    assert_eq!(json["failure"]["columnFamily"], "store", "{json:#}");
    assert!(json["failure"]["detail"].as_str().unwrap().contains("MANIFEST"), "{json:#}");
    assert_eq!(snapshot(&damaged), before, "the audit changed the damaged copy");

    // A WAL record whose checksum does not match (the copy's rows are all in the WAL): an error,
    // not a log silently cut short there.
    let bad_wal = dir.path().join("bad-wal");
    copy_dir(copy.path(), &bad_wal);
    let wal = std::fs::read_dir(bad_wal.join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&wal).unwrap();
    assert!(bytes.len() > 4096, "the copy's rows are in its WAL: {} bytes", bytes.len());
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&wal, &bytes).unwrap();
    let before = snapshot(&bad_wal);
    let (code, json, stderr) = fsck(&bad_wal);
    assert_eq!(code, Some(1), "a WAL checksum mismatch is corruption: {json:#}{stderr}");
    assert_eq!(json["failure"]["columnFamily"], "store", "{json:#}");
    assert_eq!(snapshot(&bad_wal), before, "the audit changed the copy with a damaged WAL");

    // A missing SST file: never verified, and named.
    let no_sst = dir.path().join("no-sst");
    copy_dir(copy.path(), &no_sst);
    tamper(&no_sst, |db| {
        for cf in CFS {
            db.flush_cf(db.cf_handle(cf).unwrap()).unwrap();
        }
    });
    let sst = std::fs::read_dir(no_sst.join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .unwrap();
    std::fs::remove_file(&sst).unwrap();
    let (code, json, stderr) = fsck(&no_sst);
    assert_eq!(code, Some(2), "a missing file cannot run: {json:#}{stderr}");
    // RocksDB names the table by its number (it looks for `.sst`, then the old `.ldb`).
    let number = sst.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(stderr.contains(&number) && stderr.contains("No such file"), "the missing file is named: {stderr}");
}

#[test]
fn a_ledger_key_file_of_another_key_fails_and_a_running_server_is_noted() {
    let (_s, copy) = governed_copy();
    let other = tempfile::tempdir().unwrap();
    copy_dir(copy.path(), other.path());
    std::fs::write(
        other.path().join("keys/ledger.pub"),
        ledger::KeyPair::from_seed(&[9; 32]).public_key_pem().unwrap(),
    )
    .unwrap();
    let (code, json, stderr) = fsck(other.path());
    assert_eq!(code, Some(1), "{json:#}{stderr}");
    assert_eq!(json["failure"]["columnFamily"], "keys/ledger.pub", "{json:#}");

    // A server holds db/LOCK (a ledger opened by this process): the audit still runs, read-only,
    // and says what it saw.
    let held = tempfile::tempdir().unwrap();
    copy_dir(copy.path(), held.path());
    let config =
        ledger::Config { rules: Some(Arc::new(projections::catalogue::Catalogue)), ..ledger::Config::default() };
    let server = Ledger::open(held.path(), config).unwrap();
    let (code, json, stderr) = fsck(held.path());
    assert_eq!(code, Some(0), "{json:#}{stderr}");
    let notes = json["notes"].to_string();
    assert!(notes.contains("holds db/LOCK") && notes.contains(&std::process::id().to_string()), "{notes}");
    drop(server);
    let (code, json, _) = fsck(held.path());
    assert_eq!(code, Some(0));
    assert!(!json["notes"].to_string().contains("holds db/LOCK"), "{json:#}");
}

/// The anchor is checked too: a `db/` put back from an older copy (self-consistent, shorter
/// than what was acknowledged) fails naming the lost range, and so does a store that was
/// anchored and has lost its anchor file.
#[test]
fn a_store_shorter_than_its_anchor_or_without_its_anchor_fails() {
    let t = testkit::temp_ledger();
    let agent = t.agent("anchored", "ci", &[], &[]);
    for i in 0..3 {
        let _ = testkit::must_append(&t.ledger, agent.event("svc", 100 + i));
    }
    let testkit::TestLedger { ledger, dir, clock, .. } = t;
    drop(ledger);
    let old = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("db"), old.path());
    let ledger = Ledger::open(dir.path(), ledger::Config { clock, ..ledger::Config::default() }).unwrap();
    for i in 0..2 {
        let _ = testkit::must_append(&ledger, agent.event("svc", 200 + i));
    }
    drop(ledger);

    let (code, json, stderr) = fsck(dir.path());
    assert_eq!(code, Some(0), "{json} {stderr}");

    // A copy of the data dir with the older db/ put back, checked.
    let with_old_db = || {
        let stale = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), stale.path());
        std::fs::remove_dir_all(stale.path().join("db")).unwrap();
        copy_dir(old.path(), &stale.path().join("db"));
        fsck(stale.path())
    };
    let (code, json, stderr) = with_old_db();
    assert_eq!(code, Some(1), "{json} {stderr}");
    // RocksDB alone is short, which the read-only check reports; the anchor still records the
    // two lost groups (the server's next open would replay them), and the report says so.
    let replays = "the anchor records the missing commit groups, which the server's next open replays";
    assert!(
        problems(&json).iter().any(|p| p["columnFamily"] == "anchor"
            && p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("holds 4 entries but 6 were acknowledged") && d.contains(replays))),
        "{json}"
    );
    // Once the server has opened again the anchor holds no groups: the same stale db/ is a loss.
    drop(Ledger::open(dir.path(), ledger::Config::default()).unwrap());
    let (code, json, stderr) = with_old_db();
    assert_eq!(code, Some(1), "{json} {stderr}");
    assert!(
        problems(&json).iter().any(|p| p["columnFamily"] == "anchor"
            && p["detail"]
                .as_str()
                .is_some_and(|d| d.contains("holds 4 entries but 6 were acknowledged") && !d.contains(replays))),
        "{json}"
    );

    std::fs::remove_file(dir.path().join("anchor")).unwrap();
    let (code, json, stderr) = fsck(dir.path());
    assert_eq!(code, Some(1), "{json} {stderr}");
    assert!(
        problems(&json).iter().any(|p| p["columnFamily"] == "anchor"
            && p["detail"].as_str().is_some_and(|d| d.contains("anchor file is missing"))),
        "{json}"
    );
}

/// Checked by breaking it (2026-12-07): the fold's error appended after the entries pass instead
/// of placed after the entry it belongs to fails here.
#[test]
fn an_unjustified_decision_is_listed_in_seq_order_among_the_stores_other_damage() {
    // The check folds the entries on a thread of its own, beside the entries pass: what the fold
    // finds must be listed where a fold in line with the pass put it, after the damage the pass
    // found at earlier seqs and before the damage at later ones, and be the verdict when it
    // comes first.
    let mut s = governed();
    let forged = forge_approval_of_r2(&mut s);
    s.run([intent("r-later", "prod", &[("jobs", "1.0.0")])]);
    s.settle();
    s.stop_governor();
    let later = forged + 1;
    assert!(s.entries().len() as u64 > later, "an entry after the forged decision");
    let copy = tempfile::tempdir().unwrap();
    copy_dir(s.ledger.data_dir(), copy.path());
    let leaf = |seq: u64| [&0u32.to_be_bytes()[..], &[0u8], &seq.to_be_bytes()].concat();

    // Only the decision: it is the verdict.
    let (code, json, stderr) = fsck(copy.path());
    assert_eq!(code, Some(1), "{stderr}");
    let listed: Vec<(Value, Value)> =
        problems(&json).iter().map(|p| (p["columnFamily"].clone(), p["seq"].clone())).collect();
    assert_eq!(listed, [(json!("entries"), json!(forged))], "{json:#}");
    assert!(json["failure"]["detail"].as_str().unwrap().contains("decisions: unjustified decision"), "{json:#}");

    // A tree node of a later entry missing too: listed after the decision, still the verdict.
    tamper(copy.path(), |db| db.delete_cf(db.cf_handle("tree").unwrap(), leaf(later)).unwrap());
    let (_, json, _) = fsck(copy.path());
    let listed: Vec<(Value, Value)> =
        problems(&json).iter().map(|p| (p["columnFamily"].clone(), p["seq"].clone())).collect();
    assert_eq!(listed, [(json!("entries"), json!(forged)), (json!("tree"), json!(later))], "{json:#}");
    assert_eq!(json["failure"]["seq"], forged, "{json:#}");

    // And one of an earlier entry: listed first, and the verdict.
    tamper(copy.path(), |db| db.delete_cf(db.cf_handle("tree").unwrap(), leaf(1)).unwrap());
    let (_, json, _) = fsck(copy.path());
    let listed: Vec<(Value, Value)> =
        problems(&json).iter().map(|p| (p["columnFamily"].clone(), p["seq"].clone())).collect();
    assert_eq!(
        listed,
        [(json!("tree"), json!(1)), (json!("entries"), json!(forged)), (json!("tree"), json!(later))],
        "{json:#}"
    );
    assert_eq!((json["failure"]["columnFamily"].clone(), json["failure"]["seq"].clone()), (json!("tree"), json!(1)));
}
