//! The committed store of each format version opens and verifies forever after.

use std::path::Path;

use ledger::{Config, Ledger};
use testkit::gov::copy_dir;

#[test]
fn format_v1_fixture_opens_and_verifies() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-v1");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("expected.json")).unwrap()).unwrap();
    // Opening writes (WAL recovery, new manifest): work on a copy.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture.join("data"), dir.path());
    let ledger = Ledger::open(dir.path(), Config::default()).unwrap();
    let tenants: Vec<String> = expected.as_object().unwrap().keys().cloned().collect();
    let mut sorted = tenants.clone();
    sorted.sort();
    assert_eq!(ledger.tenants(), sorted);
    for tenant in &tenants {
        let want = &expected[tenant];
        let head = ledger.head(tenant).unwrap();
        assert_eq!(head.size, want["size"].as_u64().unwrap(), "{tenant}");
        assert_eq!(hex::encode(head.chain_head), want["chainHead"].as_str().unwrap(), "{tenant}");
        let checkpoint = ledger.checkpoint(tenant).unwrap();
        assert_eq!(checkpoint.note, want["checkpoint"].as_str().unwrap(), "{tenant}");
        assert_eq!(hex::encode(ledger.root_at(tenant, head.size).unwrap()), want["root"].as_str().unwrap());
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
