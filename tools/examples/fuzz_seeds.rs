//! Writes the seed corpora of the fuzz targets (`fuzz/seeds/<target>/`) from real data: a
//! governed log (keys, policy, freezes, evidence, approvals, ledger decisions) built with the
//! test kit, its envelopes, stored entry values, checkpoints, event bodies, small Arrow and
//! Parquet exports, and the projection rows its fold stores. The fuzzers start from these so
//! they spend their time past the first bytes of each format.
//!
//! ```text
//! cargo run --release -p ledger-tools --example fuzz_seeds -- fuzz/seeds
//! ```
//!
//! The seeds are committed (`docs/reliability.md`); run this again when a format changes.

// A generator of test data: a panic is a failed run.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ledger::fuzzing::{encode_entry_value, encode_event_id_value, EncodedBody};
use ledger::{Entry, EntryBody, Ledger};
use ledger_tools::export::{entry_batches, export_meta, projection_export};
use ledger_tools::{ExportWriter, Format, Table};
use projections::outbox::Outgoing;
use serde_json::json;
use testkit::gov::*;

const R: &str = "release-001731";
const R2: &str = "release-001732";

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// The governed log of `tools/tests/audit.rs`, with a recurring freeze and a cron freeze.
fn governed() -> Scenario {
    let mut s = Scenario::new();
    s.run([
        policy(prod_policy(json!({"maxCVESeverity": "High", "riskThreshold": 60, "highRiskRoles": ["CTO"]}))),
        freeze_recurring("weekends", &["prod"], "FREQ=WEEKLY;BYDAY=WE", 86_400, "Europe/Paris"),
        freeze_cron("nights", &["prod"], "0 22 * * *", 3_600, "UTC"),
        intent(R, "prod", &[("api", "1.4.0")]),
    ]);
    s.run(evidence(R, "api", "1.4.0"));
    s.run([evaluate(R), approve(R, "QA")]);
    s.settle();
    s.run([deploy_started(R, "prod"), deploy_completed(R, "prod")]);
    s.run([intent(R2, "prod", &[("web", "2.0.0")]), security_cve(R2, "web", "2.0.0", "Critical"), evaluate(R2)]);
    s.settle();
    s
}

fn export(ledger: &Ledger, dir: &Path, table: Table, from: u64, to: u64, format: Format) -> Vec<u8> {
    let path = dir.join(format!("export-{table}-{from}-{to}.{format}"));
    let meta = export_meta(ledger, TENANT, table, from, to).unwrap();
    let mut writer = ExportWriter::create(&path, format, &meta).unwrap();
    for batch in entry_batches(ledger, TENANT, meta.schema(), from, to) {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    std::fs::read(&path).unwrap()
}

fn entry_value(entry: &Entry) -> Vec<u8> {
    let envelope_bytes;
    let body = match &entry.body {
        EntryBody::Present(envelope) => {
            envelope_bytes = envelope.to_bytes();
            EncodedBody::Envelope(&envelope_bytes)
        }
        EntryBody::Redacted { by_seq } => EncodedBody::Redacted(*by_seq),
    };
    encode_entry_value(entry.recorded_at, &entry.prev_hash, &entry.payload_hash, &entry.entry_hash, body)
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "fuzz/seeds".into()));
    let s = governed();
    let entries = s.entries();
    let scratch = tempfile::tempdir().unwrap();

    // One of each event type the log holds (the first of each), as envelopes, entry values,
    // and bodies.
    let mut seen = std::collections::BTreeSet::new();
    for entry in &entries {
        let Some(envelope) = entry.envelope() else { continue };
        let Some(body) = body_of(entry) else { continue };
        let event_type = body["type"].as_str().unwrap_or("unknown").to_owned();
        if !seen.insert(event_type.clone()) {
            continue;
        }
        let name = format!("{:02}-{event_type}", entry.seq);
        write(&out, "envelope_json", &name, envelope.to_json().as_bytes());
        write(&out, "envelope_bytes", &name, &envelope.to_bytes());
        // Mode 0 of entry_value: a seq, then the stored value.
        write(&out, "entry_value", &name, &[&[0u8][..], &entry.seq.to_be_bytes(), &entry_value(entry)].concat());
        // Mode 0 of event_json's input: an 8-byte delay, then the body.
        write(&out, "event_json", &name, &[&[0u8; 8][..], &envelope.payload].concat());
        if event_type == "PolicyUpdated" {
            write(&out, "policy_json", "policy-updated", body["data"].to_string().as_bytes());
            write(&out, "policy_json", "policy", body["data"]["policy"].to_string().as_bytes());
        }
    }
    let last = entries.last().unwrap();
    // Mode 1: seq, recordedAt, prevHash, not redacted, envelope bytes.
    let envelope = last.envelope().unwrap().to_bytes();
    write(
        &out,
        "entry_value",
        "valid-hashes",
        &[&[1u8][..], &last.seq.to_be_bytes(), &last.recorded_at.to_be_bytes(), &last.prev_hash, &[0], &envelope]
            .concat(),
    );
    // Mode 2: a head (size, chain head, last recordedAt); mode 3: an event-id row.
    let head = [&(last.seq + 1).to_be_bytes()[..], &last.entry_hash, &last.recorded_at.to_be_bytes()].concat();
    write(&out, "entry_value", "head", &[&[2u8][..], &head].concat());
    let event_id_row = encode_event_id_value(last.seq, &last.payload_hash);
    write(&out, "entry_value", "event-id", &[&[3u8][..], &event_id_row].concat());

    // Checkpoints: the whole signed note, and its text alone (what the target signs itself).
    for size in [1, 12, entries.len() as u64] {
        let note = s.ledger.checkpoint_covering(TENANT, size).unwrap().note;
        write(&out, "checkpoint", &format!("note-{size}"), note.as_bytes());
        let text = &note[..note.rfind("\n\n").unwrap() + 1];
        write(&out, "checkpoint", &format!("text-{size}"), text.as_bytes());
    }

    // tlog-proof files of a few entries; the checkpoint is re-signed with the fuzz target's
    // ledger key (`KeyPair::from_seed(&[7; 32])`), so the seeds reach the inclusion check.
    let fuzz_key = ledger::KeyPair::from_seed(&[7; 32]);
    let size = entries.len() as u64;
    let checkpoint = s.ledger.checkpoint_covering(TENANT, size).unwrap().checkpoint.sign(&fuzz_key);
    for entry in [&entries[0], &entries[5], entries.last().unwrap()] {
        let proof = s.ledger.inclusion_proof(TENANT, entry.seq, size).unwrap();
        let file = ledger::tlog_proof::TlogProof {
            extra: Some(
                ledger::hash::entry_hash_input(entry.seq, entry.recorded_at, &entry.prev_hash, &entry.payload_hash)
                    .to_vec(),
            ),
            index: entry.seq,
            path: proof.path,
            note: checkpoint.note.clone(),
        };
        file.verify(&fuzz_key.verifying_key()).unwrap();
        write(&out, "tlog_proof", &format!("seq-{}", entry.seq), file.to_text().as_bytes());
    }

    // Merkle: a handful of structured inputs (leaf count, sizes, path).
    write(&out, "merkle", "small", &[7, 1, 3, 1, 5, 3, 0xff, 2]);
    write(&out, "merkle", "huge", &[33, 2, 1, 2, 3, 16, 0xab, 0xcd]);

    // Exports: a few entries from seq 0, a range that resumes (with decisions), and a
    // projection table; each in both formats, and the metadata alone as JSON.
    let size = entries.len() as u64;
    for format in [Format::Arrow, Format::Parquet] {
        write(
            &out,
            "export_file",
            &format!("entries-0-3.{format}"),
            &export(&s.ledger, scratch.path(), Table::Entries, 0, 3, format),
        );
        let (from, to) = (size - 3, size);
        let bytes = export(&s.ledger, scratch.path(), Table::Entries, from, to, format);
        write(&out, "export_file", &format!("entries-{from}-{to}.{format}"), &bytes);
    }
    let state = s.state();
    let (meta, batches) = projection_export(&s.ledger, Table::Releases, &state).unwrap();
    let path = scratch.path().join("releases.arrow");
    let mut writer = ExportWriter::create(&path, Format::Arrow, &meta).unwrap();
    for batch in &batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    write(&out, "export_file", "releases.arrow", &std::fs::read(&path).unwrap());
    let range = export_meta(&s.ledger, TENANT, Table::Entries, size - 3, size).unwrap();
    write(&out, "export_file", "meta-range.json", serde_json::to_string(&range.to_map()).unwrap().as_bytes());

    // Projection rows, as the store encodes them, each behind the target's mode byte.
    write(&out, "projection_rows", "meta", &[&[0u8][..], &row(&state.meta)].concat());
    for (id, release) in &state.releases {
        write(&out, "projection_rows", &format!("release-{id}"), &[&[1u8][..], &row(release)].concat());
    }
    if let Some(item) = state.meta.history.values().flatten().next() {
        write(&out, "projection_rows", "history", &[&[2u8][..], &row(item)].concat());
    }
    let decision = entries.iter().rev().find_map(|e| body_of(e).filter(|b| b["type"] == "ReleaseRejected")).unwrap();
    let owed =
        Outgoing::new(R2.into(), decision.to_string(), Some(1_740_787_200_000_000_000), 42, 1_740_787_200_000_000_000);
    write(&out, "projection_rows", "outbox", &[&[3u8][..], &row(&owed)].concat());
    let release = state.releases.get(R2).unwrap();
    let meta_row = row(&state.meta);
    let mut evaluate_row = vec![4u8];
    evaluate_row.extend_from_slice(&last.recorded_at.to_be_bytes());
    evaluate_row.extend_from_slice(&last.seq.to_be_bytes());
    evaluate_row.extend_from_slice(&(meta_row.len() as u16).to_be_bytes());
    evaluate_row.extend_from_slice(&meta_row);
    evaluate_row.extend_from_slice(&row(release));
    write(&out, "projection_rows", "evaluate", &evaluate_row);

    // Evidence packs of both releases, as the `evidence_pack` target reads files
    // (`release_ledger_fuzz::pack_files`: a 2-byte length and a name, a 2-byte length and the
    // bytes, for every file).
    for release in [R, R2] {
        let files = ledger_tools::evidence::Pack::from_ledger(&s.ledger, TENANT, release).unwrap().files().unwrap();
        let mut input = Vec::new();
        for (name, bytes) in &files {
            for part in [name.as_bytes(), bytes.as_slice()] {
                let len = u16::try_from(part.len()).expect("a seed file under 64 KiB");
                input.extend_from_slice(&len.to_be_bytes());
                input.extend_from_slice(part);
            }
        }
        write(&out, "evidence_pack", release, &input);
    }
    println!("seeds written under {}", out.display());
}

/// A projection store row, as the store encodes it.
fn row<T: serde::Serialize>(value: &T) -> Vec<u8> {
    projections::store::encode_row(value).unwrap()
}
