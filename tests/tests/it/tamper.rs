//! Tampering with stored bytes is detected and reported with its seq.

use std::path::Path;

use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::{Check, Config, Ledger};
use testkit::{append_ok, temp_ledger};

const TENANT: &str = "acme";

/// Opens the raw RocksDB under a (closed) data dir.
fn raw_db(data_dir: &Path) -> rocksdb::DB {
    rocksdb::DB::open_cf(&rocksdb::Options::default(), data_dir.join("db"), ledger::store::COLUMN_FAMILIES).unwrap()
}

/// `tid || seq`, the entries key (the first tenant has tid 0).
fn entry_key(seq: u64) -> Vec<u8> {
    [&0u32.to_be_bytes()[..], &seq.to_be_bytes()].concat()
}

/// Applies `edit` to the raw store of a closed data dir.
fn edit_raw(data_dir: &Path, edit: impl FnOnce(&rocksdb::DB)) {
    let db = raw_db(data_dir);
    edit(&db);
    db.flush_cf(db.cf_handle("entries").unwrap()).unwrap();
}

fn build(entries: usize) -> (tempfile::TempDir, Config) {
    let t = temp_ledger();
    let qa = t.agent(TENANT, "qa", &[], &[]);
    for i in 0..entries {
        if i % 7 == 0 {
            let _ = t.ledger.append_batch(vec![qa.event("s", 40), qa.event("s", 40)]).unwrap();
        } else {
            append_ok(&t.ledger, qa.event("s", 40));
        }
    }
    let config = t.ledger.config().clone();
    drop(t.ledger);
    (t.dir, config)
}

#[test]
fn flipping_any_byte_of_any_entry_is_detected_at_that_seq() {
    let (dir, config) = build(30);
    let size = Ledger::open(dir.path(), config.clone()).unwrap().head(TENANT).unwrap().size;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    // Every seq but the last (whose tampering is caught at open, tested below), at a random
    // offset, plus every offset of one entry's fixed-size header.
    let mut cases: Vec<(u64, Option<usize>)> = (0..size - 1).map(|seq| (seq, None)).collect();
    cases.extend((0..106).map(|offset| (5, Some(offset))));
    for (seq, offset) in cases {
        let key = entry_key(seq);
        let mut original = Vec::new();
        let mut flipped_at = 0;
        edit_raw(dir.path(), |db| {
            let cf = db.cf_handle("entries").unwrap();
            original = db.get_cf(cf, &key).unwrap().unwrap();
            flipped_at = offset.unwrap_or_else(|| (next() % original.len() as u64) as usize);
            let mut bytes = original.clone();
            bytes[flipped_at] ^= 1 << (next() % 8);
            db.put_cf(cf, &key, bytes).unwrap();
        });
        let ledger = Ledger::open(dir.path(), config.clone()).unwrap();
        let failure = ledger.verify_tenant(TENANT).unwrap_err();
        assert_eq!(failure.seq, Some(seq), "byte {flipped_at} of seq {seq}: {failure}");
        assert!(matches!(ledger.entry(TENANT, seq), Err(ledger::ReadError::Corrupted { seq: s, .. }) if s == seq));
        drop(ledger);
        edit_raw(dir.path(), |db| db.put_cf(db.cf_handle("entries").unwrap(), &key, &original).unwrap());
    }
    Ledger::open(dir.path(), config).unwrap().verify_tenant(TENANT).unwrap();
}

#[test]
fn a_consistently_rehashed_forgery_fails_its_signature_at_that_seq() {
    let (dir, config) = build(10);
    let ledger = Ledger::open(dir.path(), config.clone()).unwrap();
    let victim = ledger.entry(TENANT, 4).unwrap();
    drop(ledger);
    // Rewrite seq 4's payload and recompute its payload and entry hash, as an attacker with
    // disk access but without the agent's key would.
    let mut envelope = victim.envelope().unwrap().clone();
    let text = String::from_utf8(envelope.payload.clone()).unwrap().replace("\"passed\":120", "\"passed\":999");
    envelope.payload = text.into_bytes();
    let envelope_bytes = envelope.to_bytes();
    let payload_hash = ledger::hash::payload_hash(&envelope_bytes);
    let entry_hash = ledger::hash::entry_hash(4, victim.recorded_at, &victim.prev_hash, &payload_hash);
    let mut value = vec![1u8, 0];
    value.extend_from_slice(&victim.recorded_at.to_be_bytes());
    value.extend_from_slice(&victim.prev_hash);
    value.extend_from_slice(&payload_hash);
    value.extend_from_slice(&entry_hash);
    value.extend_from_slice(&envelope_bytes);
    edit_raw(dir.path(), |db| db.put_cf(db.cf_handle("entries").unwrap(), entry_key(4), value).unwrap());
    let ledger = Ledger::open(dir.path(), config).unwrap();
    let failure = ledger.verify_tenant(TENANT).unwrap_err();
    assert_eq!((failure.seq, failure.check), (Some(4), Check::Signature), "{failure}");
}

#[test]
fn a_deleted_entry_is_a_gap_at_its_seq() {
    let (dir, config) = build(8);
    edit_raw(dir.path(), |db| db.delete_cf(db.cf_handle("entries").unwrap(), entry_key(3)).unwrap());
    let ledger = Ledger::open(dir.path(), config).unwrap();
    let failure = ledger.verify_tenant(TENANT).unwrap_err();
    assert_eq!(failure.seq, Some(3), "{failure}");
}

#[test]
fn tampering_with_the_last_entry_or_the_head_is_refused_at_open() {
    let (dir, config) = build(5);
    let size = Ledger::open(dir.path(), config.clone()).unwrap().head(TENANT).unwrap().size;
    let key = entry_key(size - 1);
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("entries").unwrap();
        let mut bytes = db.get_cf(cf, &key).unwrap().unwrap();
        bytes[20] ^= 0x80;
        db.put_cf(cf, &key, bytes).unwrap();
    });
    let error = Ledger::open(dir.path(), config.clone()).unwrap_err().to_string();
    assert!(error.contains(&format!("seq {}", size - 1)), "{error}");
    // An entry beyond the recorded end (a write the head does not cover).
    let (dir, config) = build(5);
    let size = Ledger::open(dir.path(), config.clone()).unwrap().head(TENANT).unwrap().size;
    edit_raw(dir.path(), |db| {
        let cf = db.cf_handle("entries").unwrap();
        let last = db.get_cf(cf, entry_key(size - 1)).unwrap().unwrap();
        db.put_cf(cf, entry_key(size), last).unwrap();
    });
    let error = Ledger::open(dir.path(), config).unwrap_err().to_string();
    assert!(error.contains("beyond the log end"), "{error}");
}

#[test]
fn a_tampered_tree_node_makes_proofs_fail_against_the_signed_checkpoint() {
    let (dir, config) = build(9);
    let ledger = Ledger::open(dir.path(), config.clone()).unwrap();
    let checkpoint = ledger.checkpoint(TENANT).unwrap();
    let size = checkpoint.checkpoint.size;
    let leaf = LogHasher::hash_leaf(&ledger.entry(TENANT, 0).unwrap().entry_hash);
    drop(ledger);
    // Leaf node (level 0, index 1) is the sibling on seq 0's path.
    let tree_key: Vec<u8> = [&0u32.to_be_bytes()[..], &[0u8], &1u64.to_be_bytes()].concat();
    edit_raw(dir.path(), |db| db.put_cf(db.cf_handle("tree").unwrap(), &tree_key, [7u8; 32]).unwrap());
    let ledger = Ledger::open(dir.path(), config).unwrap();
    let proof = ledger.inclusion_proof(TENANT, 0, size).unwrap();
    assert!(merkle::verify_inclusion::<LogHasher>(&leaf, 0, size, &proof.path, &checkpoint.checkpoint.root).is_err());
    // The entries themselves are intact, so a full verification still passes: the tree CF is
    // an index, the entries and checkpoint are the record.
    ledger.verify_tenant(TENANT).unwrap();
}

#[test]
fn a_redaction_marker_without_a_redaction_event_is_tampering() {
    let (dir, config) = build(6);
    let ledger = Ledger::open(dir.path(), config.clone()).unwrap();
    let victim = ledger.entry(TENANT, 2).unwrap();
    drop(ledger);
    let mut value = vec![1u8, 1];
    value.extend_from_slice(&victim.recorded_at.to_be_bytes());
    value.extend_from_slice(&victim.prev_hash);
    value.extend_from_slice(&victim.payload_hash);
    value.extend_from_slice(&victim.entry_hash);
    value.extend_from_slice(&5u64.to_be_bytes());
    edit_raw(dir.path(), |db| db.put_cf(db.cf_handle("entries").unwrap(), entry_key(2), value).unwrap());
    let failure = Ledger::open(dir.path(), config).unwrap().verify_tenant(TENANT).unwrap_err();
    assert_eq!((failure.seq, failure.check), (Some(2), Check::Redaction), "{failure}");
}
