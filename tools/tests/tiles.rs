//! The tile directory writer (`ledger_tools::tiles`): its files are the store's tiles byte for
//! byte, it grows incrementally (new tiles written, superseded partial tiles removed, full tiles
//! never rewritten), and it refuses a directory holding another history of the log — a full
//! tile that differs, or a checkpoint whose tree is not a prefix of the export's — writing
//! nothing.

// Test code may unwrap: a panic is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ledger::store::tiles::{tiles_of_size, TileId};
use ledger::{AppendEvent, Config, Envelope, KeyPair, Ledger, ManualClock};
use ledger_tools::export::{entry_batches, export_meta};
use ledger_tools::tiles::{list_files, write_tiles, TilesError, TilesReport};
use ledger_tools::{ExportWriter, Format, Table};
use testkit::{register_key_body, Agent};

const TENANT: &str = "acme";
const START_NS: u64 = 1_700_000_000_000_000_000;

/// A ledger in `dir` (keys copied from `keys`, if given, so two ledgers share their keys),
/// with the agent `qa` registered by the admin.
fn ledger_in(dir: &Path, keys: Option<&Path>, qa: &KeyPair) -> Ledger {
    if let Some(keys) = keys {
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        for name in ["admin.pem", "ledger.pem"] {
            std::fs::copy(keys.join(name), dir.join("keys").join(name)).unwrap();
        }
    }
    let config = Config { clock: Arc::new(ManualClock::new(START_NS)), ..Config::default() };
    let ledger = Ledger::open(dir, config).unwrap();
    let admin = KeyPair::load(&dir.join("keys/admin.pem")).unwrap();
    let body = register_key_body(TENANT, "qa", qa, &["QAAutomation"], &["TestsPassed"]);
    let _ = ledger.append(AppendEvent::new(Envelope::sign(body, &admin))).unwrap();
    ledger
}

/// Appends `n` events of `agent` (payloads padded with `pad` bytes), in batches of 100.
fn append(ledger: &Ledger, agent: &Agent, n: u64, pad: usize) {
    let mut left = n;
    while left > 0 {
        let batch = left.min(100);
        ledger.append_batch((0..batch).map(|_| agent.event("release/r1", pad)).collect()).unwrap();
        left -= batch;
    }
}

/// An entries export of seqs `0..to`.
fn export(ledger: &Ledger, path: &Path, to: u64) {
    let meta = export_meta(ledger, TENANT, Table::Entries, 0, to).unwrap();
    let mut writer = ExportWriter::create(path, Format::Arrow, &meta).unwrap();
    for batch in entry_batches(ledger, TENANT, meta.schema(), 0, to) {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
}

/// Checks the directory against the store: every tile of `size` is there, every tile file is
/// the store's tile at `size`, no partial tile is left beside its full tile, the checkpoint is
/// the one the store covers `size` with.
fn check_dir(ledger: &Ledger, out: &Path, size: u64) -> BTreeMap<String, Vec<u8>> {
    let files = list_files(&out.join(TENANT)).unwrap();
    for tile in tiles_of_size(size) {
        assert!(files.contains_key(&tile.path()), "{tile} missing at size {size}");
    }
    for (path, bytes) in &files {
        if path == "checkpoint" {
            let note = ledger.checkpoint_covering(TENANT, size).unwrap().note;
            assert_eq!(String::from_utf8(bytes.clone()).unwrap(), note);
            continue;
        }
        let tile = TileId::parse(path).unwrap_or_else(|e| panic!("a file that is not a tile: {e}"));
        assert_eq!(*bytes, ledger.tile_data(TENANT, tile, size).unwrap(), "{path} at size {size}");
        if !tile.is_full() {
            let full = TileId { width: 256, ..tile }.path();
            assert!(!files.contains_key(&full), "{path} left beside {full}");
        }
    }
    files
}

#[test]
fn the_directory_is_the_stores_tiles_and_grows_without_rewriting() {
    let temp = tempfile::tempdir().unwrap();
    let qa_key = KeyPair::generate();
    let ledger = ledger_in(&temp.path().join("data"), None, &qa_key);
    let qa = Agent::from_key(TENANT, "qa", qa_key);
    append(&ledger, &qa, 599, 0);
    let out = temp.path().join("out");
    let file = temp.path().join("entries.arrow");
    let mut reports = Vec::new();
    for size in [255, 256, 257, 600, 600] {
        export(&ledger, &file, size);
        let report = write_tiles(&file, &out, None).unwrap();
        check_dir(&ledger, &out, size);
        reports.push(report);
    }
    let summary: Vec<(u64, u64, u64, u64, u64)> =
        reports.iter().map(|r: &TilesReport| (r.previous_size, r.size, r.written, r.kept, r.removed_partial)).collect();
    assert_eq!(
        summary,
        [
            // entries/000.p/255, 0/000.p/255
            (0, 255, 2, 0, 0),
            // entries/000, 0/000, 1/000.p/1; both .p/255 removed
            (255, 256, 3, 0, 2),
            // entries/001.p/1, 0/001.p/1 new; the three of 256 kept
            (256, 257, 2, 3, 0),
            // entries/001, 0/001, entries/002.p/88, 0/002.p/88, 1/000.p/2; 001.p removed
            (257, 600, 5, 2, 2),
            // nothing new
            (600, 600, 0, 7, 0),
        ]
    );
    // The level-1 partial tile of 256 stays: its full tile does not exist yet, and a client
    // holding the checkpoint of 256 may still read it.
    assert!(out.join(TENANT).join("tile/1/000.p/1").is_file());
}

/// Checked by breaking it: with the writer's check of the directory's checkpoint root at its
/// size disabled (`check_prefix` always `Ok`), the fork after seq 255 is written over the
/// directory and this test fails at its first `match`.
#[test]
fn another_history_of_the_log_is_refused_and_nothing_is_written() {
    let temp = tempfile::tempdir().unwrap();
    let qa_key = KeyPair::generate();
    let first = ledger_in(&temp.path().join("first"), None, &qa_key);
    // Same keys, same first 256 entries (Ed25519 signatures and the manual clock are
    // deterministic), then other entries: a fork of the log after seq 255.
    let second = ledger_in(&temp.path().join("second"), Some(&temp.path().join("first/keys")), &qa_key);
    let (qa_first, qa_second) = (Agent::from_key(TENANT, "qa", qa_key.clone()), Agent::from_key(TENANT, "qa", qa_key));
    append(&first, &qa_first, 255, 0);
    append(&second, &qa_second, 255, 0);
    append(&first, &qa_first, 264, 0);
    append(&second, &qa_second, 344, 9);
    let entries = |ledger: &Ledger| testkit::all_entries(ledger, TENANT);
    assert_eq!(entries(&first)[..256], entries(&second)[..256], "the premise: one history up to seq 255");
    assert_ne!(entries(&first)[256], entries(&second)[256]);

    let out = temp.path().join("out");
    let file = temp.path().join("first.arrow");
    export(&first, &file, 257);
    write_tiles(&file, &out, None).unwrap();
    let before = list_files(&out).unwrap();
    let forked = temp.path().join("second.arrow");

    // Every full tile the directory has is the same, but its checkpoint of 257 is not a
    // prefix of the other tree.
    export(&second, &forked, 600);
    match write_tiles(&forked, &out, None) {
        Err(TilesError::Fork(why)) => assert!(why.contains("checkpoint of 257 entries has another root"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(list_files(&out).unwrap(), before, "a refused run writes nothing");

    // A directory at 520 of the first history: the full tile entries/001 differs (met at 512,
    // before the checkpoint's size).
    export(&first, &file, 520);
    write_tiles(&file, &out, None).unwrap();
    let before = list_files(&out).unwrap();
    match write_tiles(&forked, &out, None) {
        Err(TilesError::Fork(why)) => assert!(why.contains("tile/entries/001 differs"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(list_files(&out).unwrap(), before);

    // A full tile changed on disk is refused too, and left as found.
    let tile = out.join(TENANT).join("tile/0/000");
    let mut bytes = std::fs::read(&tile).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&tile, &bytes).unwrap();
    let before = list_files(&out).unwrap();
    match write_tiles(&file, &out, None) {
        Err(TilesError::Fork(why)) => assert!(why.contains("tile/0/000 differs"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(list_files(&out).unwrap(), before);
}

#[test]
fn a_smaller_tree_a_range_export_or_another_key_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let qa_key = KeyPair::generate();
    let ledger = ledger_in(&temp.path().join("data"), None, &qa_key);
    append(&ledger, &Agent::from_key(TENANT, "qa", qa_key), 299, 0);
    let out = temp.path().join("out");
    let file = temp.path().join("entries.arrow");
    export(&ledger, &file, 300);
    write_tiles(&file, &out, None).unwrap();
    let before = list_files(&out).unwrap();

    // A pinned key that is not the ledger's.
    let other = KeyPair::generate().verifying_key();
    match write_tiles(&file, &out, Some(&other)) {
        Err(TilesError::Checkpoint(why)) => assert!(why.contains("does not verify"), "{why}"),
        other => panic!("{other:?}"),
    }
    // An older, smaller tree: a publication never goes back.
    let older = temp.path().join("older.arrow");
    export(&ledger, &older, 200);
    match write_tiles(&older, &out, None) {
        Err(TilesError::Fork(why)) => assert!(why.contains("never goes back"), "{why}"),
        other => panic!("{other:?}"),
    }
    // A range export: tiles cover the whole tree.
    let range = temp.path().join("range.arrow");
    let meta = export_meta(&ledger, TENANT, Table::Entries, 10, 300).unwrap();
    let mut writer = ExportWriter::create(&range, Format::Arrow, &meta).unwrap();
    for batch in entry_batches(&ledger, TENANT, meta.schema(), 10, 300) {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    match write_tiles(&range, &out, None) {
        Err(TilesError::Export(why)) => assert!(why.contains("starts at seq 10"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(list_files(&out).unwrap(), before);
}
