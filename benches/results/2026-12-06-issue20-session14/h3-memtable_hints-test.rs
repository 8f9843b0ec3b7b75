//! The memtable insert hints (`ledger::store::rocks::cf_options`): RocksDB records them for the
//! column families whose keys are appended in order, and they change no stored byte a reader,
//! a proof or a reopen sees — with several tenants' commit groups interleaved in the same
//! memtables, and after a reopen that replays RocksDB's WAL into new memtables (through the same
//! hinted inserts).

use std::collections::BTreeMap;
use std::path::Path;

use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::{Config, Ledger, SignedCheckpoint};
use testkit::{temp_ledger, Agent, TestLedger};

/// `memtable_insert_with_hint_prefix_extractor` of every column family, from the newest OPTIONS
/// file RocksDB wrote in `db_dir` (RocksDB's own record of the options it opened with).
fn hint_extractors(db_dir: &Path) -> BTreeMap<String, String> {
    let newest = std::fs::read_dir(db_dir)
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("OPTIONS-"))
        .max_by_key(|name| name["OPTIONS-".len()..].parse::<u64>().unwrap())
        .expect("RocksDB writes an OPTIONS file at every open");
    let text = std::fs::read_to_string(db_dir.join(newest)).unwrap();
    let mut extractors = BTreeMap::new();
    let mut family = None;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("[CFOptions \"").and_then(|rest| rest.strip_suffix("\"]")) {
            family = Some(name.to_owned());
        } else if line.starts_with('[') {
            family = None;
        } else if let (Some(name), Some(value)) =
            (&family, line.strip_prefix("memtable_insert_with_hint_prefix_extractor="))
        {
            extractors.insert(name.clone(), value.to_owned());
        }
    }
    extractors
}

#[test]
fn rocksdb_keeps_insert_hints_for_the_column_families_appended_in_order() {
    let t = temp_ledger();
    let extractors = hint_extractors(&t.dir.path().join("db"));
    let want: BTreeMap<String, String> = [
        ("default", "nullptr"),
        ("meta", "nullptr"),
        ("entries", "rocksdb.FixedPrefix.4"),
        ("streams", "nullptr"),
        ("stream_heads", "nullptr"),
        ("event_ids", "nullptr"),
        ("tree", "rocksdb.FixedPrefix.5"),
        ("checkpoints", "rocksdb.FixedPrefix.4"),
        ("keys", "nullptr"),
    ]
    .into_iter()
    .map(|(family, extractor)| (family.to_owned(), extractor.to_owned()))
    .collect();
    assert_eq!(extractors, want);
}

/// What a reader sees of one tenant: its head, every entry's hash, and whether every inclusion
/// proof (from the stored tree's nodes) and consistency proof checks against the signed
/// checkpoints.
fn checked_view(ledger: &Ledger, tenant: &str) -> (u64, [u8; 32], Vec<[u8; 32]>) {
    let head = ledger.head(tenant).unwrap();
    let report = ledger.verify_tenant(tenant).unwrap();
    assert_eq!(report.entries, head.size, "{tenant}");
    let hashes: Vec<[u8; 32]> = testkit::all_entries(ledger, tenant).iter().map(|e| e.entry_hash).collect();
    assert_eq!(hashes.len() as u64, head.size, "{tenant}");
    let leaves: Vec<[u8; 32]> = hashes.iter().map(|hash| LogHasher::hash_leaf(hash)).collect();
    let roots = ledger.trust_roots();
    let mut previous: Option<(u64, [u8; 32])> = None;
    for size in 1..=head.size {
        let Some(checkpoint) = ledger.checkpoint_at(tenant, size).unwrap() else { continue };
        let verified = SignedCheckpoint::parse_and_verify(&checkpoint.note, roots.ledger()).unwrap();
        assert_eq!(verified.checkpoint.root, merkle::root_of_leaves::<LogHasher>(&leaves[..size as usize]));
        for seq in 0..size {
            let proof = ledger.inclusion_proof(tenant, seq, size).unwrap();
            merkle::verify_inclusion::<LogHasher>(
                &leaves[seq as usize],
                seq,
                size,
                &proof.path,
                &verified.checkpoint.root,
            )
            .unwrap_or_else(|e| panic!("{tenant}: inclusion of {seq} in {size}: {e}"));
        }
        if let Some((old_size, old_root)) = previous {
            let proof = ledger.consistency_proof(tenant, old_size, size).unwrap();
            merkle::verify_consistency::<LogHasher>(old_size, size, &old_root, &verified.checkpoint.root, &proof.path)
                .unwrap_or_else(|e| panic!("{tenant}: consistency {old_size} -> {size}: {e}"));
        }
        previous = Some((size, verified.checkpoint.root));
    }
    (head.size, head.chain_head, hashes)
}

#[test]
fn interleaved_tenants_read_back_whole_before_and_after_a_reopen_that_replays_the_wal() {
    let t = temp_ledger();
    let tenants = ["hint-a", "hint-b", "hint-c"];
    let agents: Vec<Agent> = tenants.iter().map(|tenant| t.agent(tenant, "ci", &[], &[])).collect();
    // Requests of 1 to 5 events per tenant, submitted together so that tenants share commit
    // groups and each memtable gets their keys interleaved; the sizes vary so that each tenant's
    // tree completes nodes at different levels in different groups.
    for round in 0..30usize {
        let pending: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let events = (0..1 + (round * 3 + i) % 5).map(|_| agent.event("svc", 40)).collect();
                t.ledger.submit(events).unwrap()
            })
            .collect();
        for request in pending {
            let _ = request.wait().unwrap();
        }
    }
    let before: Vec<_> = tenants.iter().map(|tenant| checked_view(&t.ledger, tenant)).collect();
    assert!(before.iter().all(|(size, _, _)| *size > 60), "every tenant grew: {:?}", before.iter().map(|v| v.0));

    // Closed without a flush of the memtables: the reopen replays RocksDB's WAL.
    let TestLedger { ledger, dir, clock, .. } = t;
    let capacity = ledger.config().anchor_capacity;
    drop(ledger);
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("db"))
        .unwrap()
        .map(|item| item.unwrap())
        .filter(|item| item.file_name().to_string_lossy().ends_with(".log"))
        .map(|item| item.metadata().unwrap().len())
        .sum();
    assert!(wal_bytes > 0, "the groups are still in RocksDB's WAL, to be replayed");
    let reopened = Ledger::open(dir.path(), Config { clock, anchor_capacity: capacity, ..Config::default() }).unwrap();
    let after: Vec<_> = tenants.iter().map(|tenant| checked_view(&reopened, tenant)).collect();
    assert_eq!(after, before);
}
