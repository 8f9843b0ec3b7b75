//! The committed store of each format version opens (v2) or migrates (v1) and verifies forever
//! after.

use std::path::{Path, PathBuf};

use ledger::merkle::{self, Blake3Hasher, Sha256Hasher, TreeHasher};
use ledger::store::{default_origin_prefix, migrate, MigrateOptions, Migration};
use ledger::{Config, Ledger, OpenError, SignedCheckpoint};
use testkit::gov::copy_dir;

fn fixture(version: &str) -> (PathBuf, serde_json::Value) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(version);
    let expected = serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap()).unwrap();
    (fixture, expected)
}

/// A copy of a fixture's data dir (opening writes: WAL recovery, a new manifest).
fn copy_of(fixture: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), dir.path());
    dir
}

/// Everything the fixture's `expected.json` says, checked on an open store; `root` is checked
/// by the caller (it is the v1 BLAKE3 root in the v1 fixture).
fn check_contents(ledger: &Ledger, expected: &serde_json::Value) {
    let mut tenants: Vec<String> = expected.as_object().unwrap().keys().cloned().collect();
    tenants.sort();
    assert_eq!(ledger.tenants(), tenants);
    for tenant in &tenants {
        let want = &expected[tenant];
        let head = ledger.head(tenant).unwrap();
        assert_eq!(head.size, want["size"].as_u64().unwrap(), "{tenant}");
        assert_eq!(hex::encode(head.chain_head), want["chainHead"].as_str().unwrap(), "{tenant}");
        let report = ledger.verify_tenant(tenant).unwrap();
        assert_eq!(report.entries, head.size);
        assert_eq!(report.redacted, vec![3]);
        assert_eq!((report.keys_registered, report.keys_revoked), (2, 1));
        // Seq 3 (tp-1) was redacted; tp-2's payload is still the bytes that were signed.
        let redacted = ledger.entry_by_event_id(tenant, "tp-1").unwrap().unwrap();
        assert_eq!(redacted.seq, 3);
        assert!(redacted.envelope().is_none());
        let entry = ledger.entry_by_event_id(tenant, "tp-2").unwrap().unwrap();
        let payload = String::from_utf8(entry.envelope().unwrap().payload.clone()).unwrap();
        assert!(payload.contains("\"version\":\"1.2.0\""), "{payload}");
    }
}

/// The leaf hashes of a tenant's entries under `H` (leaf input: the entry hash).
fn leaves<H: TreeHasher<Digest = [u8; 32]>>(ledger: &Ledger, tenant: &str) -> Vec<[u8; 32]> {
    testkit::all_entries(ledger, tenant).iter().map(|e| H::hash_leaf(&e.entry_hash)).collect()
}

#[test]
fn format_v2_fixture_opens_and_verifies() {
    let (fixture, expected) = fixture("format-v2");
    let dir = copy_of(&fixture);
    let ledger = Ledger::open(dir.path(), Config::default()).unwrap();
    check_contents(&ledger, &expected);
    for (tenant, want) in expected.as_object().unwrap() {
        let checkpoint = ledger.checkpoint(tenant).unwrap();
        assert_eq!(checkpoint.note, want["checkpoint"].as_str().unwrap(), "{tenant}");
        let root = merkle::root_of_leaves::<Sha256Hasher>(&leaves::<Sha256Hasher>(&ledger, tenant));
        assert_eq!(hex::encode(root), want["root"].as_str().unwrap(), "{tenant}");
        assert_eq!(checkpoint.checkpoint.origin, format!("{}/{tenant}", ledger.origin_prefix()));
    }
}

/// The v1 fixture is refused with the way out, migrated, and then is the same log under the
/// SHA-256 tree: same entries and chain, every checkpoint re-signed, the last v1 checkpoint
/// kept in the report. A second run has nothing to do.
#[test]
fn format_v1_fixture_is_refused_then_migrates() {
    let (fixture, expected) = fixture("format-v1");
    let dir = copy_of(&fixture);
    let err = Ledger::open(dir.path(), Config::default()).unwrap_err();
    assert!(matches!(err, OpenError::UnsupportedFormat { found: 1, supported: 2 }), "{err}");
    assert!(err.to_string().contains("release-ledger migrate"), "{err}");

    let Migration::Migrated { report, resumed } = migrate(dir.path(), &MigrateOptions::default()).unwrap() else {
        panic!("a v1 store must migrate")
    };
    assert_eq!((report.from, report.to, resumed), (1, 2, 0));
    assert_eq!(report.tenants.len(), 2);

    let ledger = Ledger::open(dir.path(), Config::default()).unwrap();
    assert_eq!(ledger.origin_prefix(), default_origin_prefix(&ledger.trust_roots().ledger_id()));
    check_contents(&ledger, &expected);
    for tenant in &report.tenants {
        let want = &expected[&tenant.tenant];
        // The entries are the ones the v1 tree was built over…
        let v1_root = merkle::root_of_leaves::<Blake3Hasher>(&leaves::<Blake3Hasher>(&ledger, &tenant.tenant));
        assert_eq!(hex::encode(v1_root), want["root"].as_str().unwrap());
        assert_eq!(tenant.v1_checkpoint, want["checkpoint"].as_str().unwrap());
        // …and the store's tree and every checkpoint are now SHA-256's.
        let leaves = leaves::<Sha256Hasher>(&ledger, &tenant.tenant);
        let mut stored_checkpoints = 0;
        for size in 0..=leaves.len() as u64 {
            let root = merkle::root_of_leaves::<Sha256Hasher>(&leaves[..size as usize]);
            assert_eq!(ledger.root_at(&tenant.tenant, size).unwrap(), root, "size {size}");
            if let Some(stored) = ledger.checkpoint_at(&tenant.tenant, size).unwrap() {
                assert_eq!(stored.checkpoint.root, root, "checkpoint at {size}");
                assert!(!stored.note.contains("chain-head"), "{}", stored.note);
                stored_checkpoints += 1;
            }
        }
        assert!(stored_checkpoints > 1, "a checkpoint per commit group");
        assert_eq!(tenant.checkpoints, stored_checkpoints);
        let latest = ledger.checkpoint(&tenant.tenant).unwrap();
        assert_eq!(latest.note, tenant.v2_checkpoint);
        SignedCheckpoint::parse_and_verify(&latest.note, ledger.trust_roots().ledger()).unwrap();
    }
    drop(ledger);
    assert_eq!(migrate(dir.path(), &MigrateOptions::default()).unwrap(), Migration::AlreadyCurrent);
}

/// A migration stopped between two tenants leaves a v1 store that does not open, and the next
/// run finishes it to exactly the store an uninterrupted run makes (Ed25519 signatures are
/// deterministic, so the checkpoints are byte for byte the same).
#[test]
fn an_interrupted_migration_resumes_to_the_same_store() {
    let (fixture, _) = fixture("format-v1");
    let whole = copy_of(&fixture);
    let Migration::Migrated { report: want, .. } = migrate(whole.path(), &MigrateOptions::default()).unwrap() else {
        panic!("migrates")
    };

    let dir = copy_of(&fixture);
    let stopped = MigrateOptions { stop_after_tenants: Some(1), ..MigrateOptions::default() };
    let err = migrate(dir.path(), &stopped).unwrap_err();
    assert!(err.to_string().contains("test fault"), "{err}");
    let err = Ledger::open(dir.path(), Config::default()).unwrap_err();
    assert!(matches!(err, OpenError::UnsupportedFormat { found: 1, .. }), "{err}");
    let Migration::Migrated { report, resumed } = migrate(dir.path(), &MigrateOptions::default()).unwrap() else {
        panic!("resumes")
    };
    assert_eq!(resumed, 1);
    assert_eq!(report.tenants, want.tenants);
    let (a, b) =
        (Ledger::open(whole.path(), Config::default()).unwrap(), Ledger::open(dir.path(), Config::default()).unwrap());
    for tenant in a.tenants() {
        let size = a.head(&tenant).unwrap().size;
        for s in 0..=size {
            assert_eq!(a.checkpoint_at(&tenant, s).unwrap(), b.checkpoint_at(&tenant, s).unwrap(), "{tenant} {s}");
        }
    }
}

/// The origin is chosen at migration (or creation) and kept: a different configured prefix is
/// refused by name, and a prefix that is not a schema-less URL is refused before anything is
/// written.
#[test]
fn the_origin_prefix_is_fixed_with_the_store() {
    let (fixture, _) = fixture("format-v1");
    let dir = copy_of(&fixture);
    let bad = MigrateOptions { origin_prefix: Some("https://ledger.example.com".into()), ..MigrateOptions::default() };
    let err = migrate(dir.path(), &bad).unwrap_err();
    assert!(matches!(err, OpenError::BadOriginPrefix(_)), "{err}");
    let err = Ledger::open(dir.path(), Config::default()).unwrap_err();
    assert!(matches!(err, OpenError::UnsupportedFormat { found: 1, .. }), "nothing was migrated: {err}");

    let chosen = MigrateOptions { origin_prefix: Some("ledger.example.com".into()), ..MigrateOptions::default() };
    migrate(dir.path(), &chosen).unwrap();
    let ledger = Ledger::open(dir.path(), Config::default()).unwrap();
    assert_eq!(ledger.checkpoint("acme").unwrap().checkpoint.origin, "ledger.example.com/acme");
    drop(ledger);
    let other = Config { origin_prefix: Some("other.example.com".into()), ..Config::default() };
    let err = Ledger::open(dir.path(), other).unwrap_err();
    assert!(matches!(err, OpenError::OriginMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ledger.example.com"), "{err}");
    let same = Config { origin_prefix: Some("ledger.example.com".into()), ..Config::default() };
    Ledger::open(dir.path(), same).unwrap();
}
