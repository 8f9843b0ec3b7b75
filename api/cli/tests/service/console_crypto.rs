//! The web console's browser crypto (`api/src/console/assets/`: verify.js, approve.js and the
//! vendored BLAKE3) on real inputs: the server appends events with a key `release-ledger keygen`
//! made, redacts one, and serves each entry, its inclusion proofs and the checkpoints they end
//! in; this test assembles them as the console's `proof.json` (docs/console.md) and
//! `tests/interop/console_crypto.py` runs `verifyEntry` on them in Debian's headless Chromium:
//! every real proof verifies, every tampered field fails exactly its step, a redacted entry skips
//! the payload step. The browser also signs an event with the CLI key (`signEnvelope`, the PAE
//! approve.js signs), which Python verifies and this test then appends to the real server.
//!
//! Needs the interop venv (selenium) and chromium + chromium-driver: `scripts/setup.sh
//! --python`. Without them the test fails, never skips.

use std::path::Path;

use ledger::{b64, KeyPair};
use proto::v1 as pb;
use serde_json::{json, Value};

use crate::{cli, cli_register_agent, ok, temp_data_dir, Authed, Server};

const TENANT: &str = "console-crypto";
/// Events appended after the registration, each its own commit group (so its own checkpoint).
const APPENDS: u64 = 8;
/// The entry the test redacts.
const REDACTED: u64 = 3;

/// The pinned-key object of the entry page (`script#ledger-key`).
fn pinned_key(name: &str, public_key: &[u8], key_id: &str) -> Value {
    json!({"keyName": name, "publicKey": b64::encode(public_key), "keyId": key_id})
}

/// `proof.json` for `seq` against the checkpoint at `tree_size`, exactly as docs/console.md shows it.
async fn proof_json(client: &mut pb::ledger_client::LedgerClient<Authed>, seq: u64, tree_size: u64) -> Value {
    let entry = client
        .get_entry(pb::GetEntryRequest { tenant: TENANT.into(), key: Some(pb::get_entry_request::Key::Seq(seq)) })
        .await
        .unwrap()
        .into_inner();
    let envelope = match entry.body {
        Some(pb::entry::Body::Envelope(envelope)) => {
            Value::String(b64::encode(ledger_wire::convert::envelope_from_pb(envelope).to_bytes()))
        }
        Some(pb::entry::Body::Redacted(_)) => Value::Null,
        None => panic!("entry {seq} has no body"),
    };
    let proof = client
        .get_inclusion_proof(pb::GetInclusionProofRequest { tenant: TENANT.into(), seq, tree_size })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((proof.seq, proof.tree_size), (seq, tree_size));
    assert_eq!(proof.entry_hash, entry.entry_hash);
    let checkpoint = client
        .get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: tree_size })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checkpoint.size, tree_size);
    json!({
        "tenant": TENANT,
        "seq": seq,
        "entry": {
            "seq": entry.seq,
            "recordedAt": entry.recorded_at_unix_nanos.to_string(),
            "prevHash": hex::encode(&entry.prev_hash),
            "payloadHash": hex::encode(&entry.payload_hash),
            "entryHash": hex::encode(&entry.entry_hash),
        },
        "envelope": envelope,
        "inclusion": {
            "leafIndex": seq,
            "treeSize": tree_size,
            "hashes": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
        },
        "checkpoint": checkpoint.note,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_crypto_verifies_real_proofs_and_signs_what_the_ledger_accepts_in_chromium() {
    let (dir, data) = temp_data_dir();
    let cwd = dir.path();
    let server = Server::start(&data, &[]);
    let mut client = server.client().await;

    // The signer's key comes from `release-ledger keygen` (qa.pem), registered with the CLI.
    cli_register_agent(&server, cwd, TENANT, "qa", "", "TestsPassed");
    let qa = KeyPair::load(&cwd.join("qa.pem")).unwrap();
    for i in 0..APPENDS {
        let body = crate::body(TENANT, "s", "TestsPassed", &format!("console-{i}"), "qa", crate::tests_passed(i));
        client.append(pb::AppendRequest { event: Some(crate::wire(body, &qa)) }).await.unwrap();
    }
    let redaction = crate::body(
        TENANT,
        "admin",
        "EntryRedacted",
        "redact-console",
        "admin",
        json!({"seq": REDACTED, "reason": "erasure request"}),
    );
    client.append(pb::AppendRequest { event: Some(crate::wire(redaction, &server.admin())) }).await.unwrap();
    let size = 1 + APPENDS + 1;

    let newest =
        client.get_checkpoint(pb::GetCheckpointRequest { tenant: TENANT.into(), size: 0 }).await.unwrap().into_inner();
    assert_eq!(newest.size, size);
    let info = client.get_info(pb::GetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(newest.origin, format!("{}/{TENANT}", info.origin_prefix));

    // Every entry against the newest checkpoint, and against the checkpoint it was the last of.
    let mut proofs = Vec::new();
    for seq in 0..size {
        for tree_size in [size, seq + 1] {
            if tree_size != size || proofs.iter().all(|p: &Value| p["seq"] != seq) {
                proofs.push(proof_json(&mut client, seq, tree_size).await);
            }
        }
    }
    assert!(proofs.iter().any(|p| p["seq"] == REDACTED && p["envelope"].is_null()), "the redaction took");

    // Another key (also keygen's) under the ledger's key name: the wrong pinned key.
    ok(cli(&server, cwd, &["keygen", "--out", "other.pem"]));
    let other = KeyPair::load(&cwd.join("other.pem")).unwrap();
    let payload = crate::body(TENANT, "s", "TestsPassed", "browser-signed", "qa", crate::tests_passed(99));
    let cases = json!({
        "tenant": TENANT,
        "size": size,
        "redactedSeq": REDACTED,
        "pinnedKey": pinned_key(&newest.origin, &info.ledger_public_key, &info.ledger_key_id),
        "otherKey": pinned_key(&newest.origin, other.verifying_key().as_bytes(), &other.key_id().to_hex()),
        "proofs": proofs,
        "signer": {
            "pem": cwd.join("qa.pem"),
            "publicKey": qa.public_key_base64(),
            "keyId": qa.key_id().to_hex(),
        },
        "payloadType": ledger::EVENT_PAYLOAD_TYPE,
        "payload": b64::encode(&payload),
    });
    let cases_file = cwd.join("cases.json");
    std::fs::write(&cases_file, serde_json::to_vec_pretty(&cases).unwrap()).unwrap();

    let proof_count = proofs_len(&cases);
    let (server, summary) = tokio::task::spawn_blocking(move || {
        let summary = crate::interop::run_script(&server, "console_crypto.py", &["--cases", path_str(&cases_file)]);
        (server, summary)
    })
    .await
    .unwrap();

    assert_eq!(summary["proofsVerified"], proof_count, "{summary}");
    assert_eq!(summary["blake3"]["officialVectors"], 17, "{summary}");
    let tampered = summary["tampered"].as_object().unwrap();
    let mut names: Vec<&str> = tampered.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "auditPath",
            "checkpointRoot",
            "entryHash",
            "envelope",
            "otherTenant",
            "prevHash",
            "signature",
            "wrongPinnedKey"
        ],
        "{summary}"
    );
    assert_eq!(summary["approveForm"]["prepareRefused"]["code"], "PERMISSION_DENIED", "{summary}");

    // What the browser signed (approve.js's PAE and WebCrypto Ed25519) is what the ledger accepts.
    let signed = &summary["signedEnvelope"];
    let signature = &signed["signatures"][0];
    let envelope = pb::Envelope {
        payload_type: signed["payloadType"].as_str().unwrap().to_owned(),
        payload: b64::decode(signed["payload"].as_str().unwrap()).unwrap(),
        signatures: vec![pb::Signature {
            keyid: signature["keyid"].as_str().unwrap().to_owned(),
            sig: b64::decode(signature["sig"].as_str().unwrap()).unwrap(),
        }],
    };
    assert_eq!(envelope.payload, payload);
    let receipt = client
        .append(pb::AppendRequest { event: Some(pb::AppendEvent { envelope: Some(envelope), expected_version: None }) })
        .await
        .unwrap_or_else(|status| panic!("the browser-signed event was refused: {status}; log: {}", server.log()))
        .into_inner()
        .receipt
        .unwrap();
    assert_eq!(receipt.seq, size);
}

fn proofs_len(cases: &Value) -> u64 {
    cases["proofs"].as_array().unwrap().len() as u64
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}
