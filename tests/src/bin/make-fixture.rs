//! Writes the format fixture: a small data dir exercising every kind of entry (two tenants,
//! batches, a revocation, a redaction, a ledger-signed decision) plus `expected.json` with its
//! heads and roots. Run once per store format version and commit the output; the test
//! tests in `tests/tests/it/fixture.rs` open (and, for v1, migrate) it forever after.
//!
//! Usage: `make-fixture OUT_DIR` (OUT_DIR must not exist).

use std::sync::Arc;

use ledger::{AppendEvent, Config, Envelope, KeyPair, Ledger, ManualClock};

fn main() {
    let out = std::env::args().nth(1).expect("usage: make-fixture OUT_DIR");
    let out = std::path::Path::new(&out);
    assert!(!out.exists(), "{} exists", out.display());
    let data = out.join("data");
    let clock = Arc::new(ManualClock::new(1_750_000_000_000_000_000));
    let ledger = Ledger::open(&data, Config { clock: clock.clone(), ..Config::default() }).expect("open");
    let admin = KeyPair::load(&data.join("keys/admin.pem")).expect("admin key");
    let append = |body: Vec<u8>, key: &KeyPair| {
        clock.advance(1_000_000);
        ledger.append(AppendEvent::new(Envelope::sign(body, key))).expect("append")
    };
    let mut expected = serde_json::Map::new();
    for tenant in ["vetclinic-001", "acme"] {
        let ci = KeyPair::from_seed(&[tenant.len() as u8; 32]);
        let qa = KeyPair::from_seed(&[tenant.len() as u8 + 1; 32]);
        let _ = append(testkit::register_key_body(tenant, "ci", &ci, &["CI"], &[]), &admin);
        let _ = append(testkit::register_key_body(tenant, "qa", &qa, &["QA"], &["TestsPassed"]), &admin);
        for i in 0..5 {
            let data = serde_json::json!({"module": "billing", "version": format!("1.{i}.0"), "suite": "unit", "passed": 10 + i, "failed": 0});
            let _ = append(testkit::body(tenant, "release/r1", "TestsPassed", &format!("tp-{i}"), "qa", data), &qa);
        }
        let batch: Vec<AppendEvent> = (0..3)
            .map(|i| {
                let body = testkit::body(
                    tenant,
                    "release/r2",
                    "PipelineReady",
                    &format!("pr-{i}"),
                    "ci",
                    serde_json::json!({"i": i}),
                );
                AppendEvent::new(Envelope::sign(body, &ci))
            })
            .collect();
        clock.advance(1_000_000);
        let _ = ledger.append_batch(batch).expect("batch");
        let revoke = testkit::body(
            tenant,
            "keys",
            "AgentKeyRevoked",
            "revoke-qa",
            "admin",
            serde_json::json!({"keyId": qa.key_id().to_hex(), "reason": "rotated"}),
        );
        let _ = append(revoke, &admin);
        let redact = testkit::body(
            tenant,
            "admin",
            "EntryRedacted",
            "redact-3",
            "admin",
            serde_json::json!({"seq": 3, "reason": "erasure request"}),
        );
        let _ = append(redact, &admin);
        let decision = testkit::body(
            tenant,
            "release/r1",
            "ReleaseApproved",
            "decision-1",
            "release-ledger",
            serde_json::json!({"status": "Approved"}),
        );
        let _ = append(decision, ledger.ledger_key());
        let head = ledger.head(tenant).expect("head");
        let checkpoint = ledger.checkpoint(tenant).expect("checkpoint");
        expected.insert(
            tenant.to_owned(),
            serde_json::json!({
                "size": head.size,
                "chainHead": hex::encode(head.chain_head),
                "root": hex::encode(checkpoint.checkpoint.root),
                "checkpoint": checkpoint.note,
                "redacted": [3],
            }),
        );
    }
    drop(ledger);
    let expected = serde_json::to_string_pretty(&serde_json::Value::Object(expected)).expect("json");
    std::fs::write(out.join("expected.json"), expected + "\n").expect("write expected.json");
    println!("wrote {}", out.display());
}
