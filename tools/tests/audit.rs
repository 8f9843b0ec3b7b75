//! Exports and the offline audit: a governed log exported to Arrow IPC and Parquet verifies on
//! its own; every kind of tampering is detected at the right seq; a decision the policy would
//! not have made is flagged; range exports, redactions, replay, consistency and the CLI's exit
//! codes.

// Test code may unwrap: a panic is a test failure.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use ledger::{Entry, EntryBody, Envelope, Ledger};
use ledger_tools::audit::{self, AsOf, Outcome, VerifyOptions};
use ledger_tools::export::{entry_batches, export_meta, projection_export};
use ledger_tools::rows::entries_batch;
use ledger_tools::{ExportMeta, ExportReader, ExportWriter, Format, Table};
use serde_json::json;
use testkit::gov::*;

#[path = "audit/fsck.rs"]
mod fsck;

const R: &str = "release-001731";
const R2: &str = "release-001732";

/// A governed log: policy, two releases (one approved and published, one rejected for a
/// Critical CVE), so it holds agent events, admin events and ledger decisions.
fn governed() -> Scenario {
    let mut s = Scenario::new();
    s.run([policy(prod_policy(json!({"maxCVESeverity": "High"}))), intent(R, "prod", &[("api", "1.4.0")])]);
    s.run(evidence(R, "api", "1.4.0"));
    s.run([evaluate(R), approve(R, "QA")]);
    s.settle();
    s.run([deploy_started(R, "prod"), deploy_completed(R, "prod")]);
    s.run([intent(R2, "prod", &[("web", "2.0.0")]), security_cve(R2, "web", "2.0.0", "Critical"), evaluate(R2)]);
    s.settle();
    s
}

fn write_entries(ledger: &Ledger, path: &Path, format: Format, from: u64, to: u64) -> ExportMeta {
    let meta = export_meta(ledger, TENANT, Table::Entries, from, to).unwrap();
    let mut writer = ExportWriter::create(path, format, &meta).unwrap();
    for batch in entry_batches(ledger, TENANT, meta.schema(), from, to) {
        writer.write(&batch.unwrap()).unwrap();
    }
    writer.finish().unwrap();
    meta
}

/// Writes `entries` (possibly tampered with) under `meta` (possibly tampered with).
fn write_raw(path: &Path, format: Format, meta: &ExportMeta, entries: &[Entry]) {
    let schema = meta.schema();
    let mut writer = ExportWriter::create(path, format, meta).unwrap();
    for chunk in entries.chunks(7) {
        writer.write(&entries_batch(&schema, chunk).unwrap()).unwrap();
    }
    writer.finish().unwrap();
}

fn verify(path: &Path) -> Outcome {
    audit::verify_path(path, &VerifyOptions::default()).unwrap()
}

fn size(s: &Scenario) -> u64 {
    s.ledger.head(TENANT).unwrap().size
}

fn decision_seqs(s: &Scenario) -> Vec<u64> {
    s.entries()
        .iter()
        .filter(|e| body_of(e).is_some_and(|b| b["eventId"].as_str().unwrap_or("").starts_with("decision:")))
        .map(|e| e.seq)
        .collect()
}

#[test]
fn an_export_in_either_format_verifies_on_its_own_and_re_derives_every_decision() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let decisions = decision_seqs(&s);
    assert!(decisions.len() >= 3, "the fixture must hold ledger decisions: {decisions:?}");
    for format in [Format::Arrow, Format::Parquet] {
        let path = dir.path().join(format!("entries.{format}"));
        write_entries(&s.ledger, &path, format, 0, size(&s));
        let outcome = verify(&path);
        assert_eq!(outcome.failure, None, "{format}: {outcome:#?}");
        let t = &outcome.tenants[0];
        assert_eq!((t.from_seq, t.to_seq, t.entries), (0, size(&s), size(&s)));
        assert_eq!(t.signatures, size(&s));
        assert_eq!(t.decisions_checked, decisions.len() as u64, "{format}");
        assert_eq!(t.checkpoints, vec![size(&s)]);
        assert_eq!(outcome.ledger_key_source, "file");
        assert_eq!(outcome.exit_code(), 0);
        // The file round-trips entry for entry.
        let mut reader = ExportReader::open(&path).unwrap();
        let mut back = Vec::new();
        while let Some(batch) = reader.next_batch() {
            back.extend(ledger_tools::rows::entries_from_batch(&batch.unwrap(), TENANT).unwrap());
        }
        assert_eq!(back, s.entries(), "{format}");
    }
    // Nothing was left behind but the two files.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn projection_tables_export_with_the_checkpoint_they_were_derived_from() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let state = s.state();
    assert_eq!(state.meta.position, size(&s));
    let entries = dir.path().join("entries.parquet");
    write_entries(&s.ledger, &entries, Format::Parquet, 0, size(&s));
    for table in [Table::Releases, Table::History, Table::Approvals, Table::Risk] {
        let (meta, batches) = projection_export(&s.ledger, table, &state).unwrap();
        assert_eq!(meta.to_seq, state.meta.position);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let expected = match table {
            Table::Releases => state.releases.len(),
            Table::History => state.meta.history.values().map(Vec::len).sum(),
            Table::Approvals => state.releases.values().map(|r| r.approvals.len()).sum(),
            _ => state.releases.values().filter_map(|r| r.decision.as_ref()).map(|d| d.risk_factors.len()).sum(),
        };
        assert!(expected > 0, "{table}: the fixture must fill every table");
        assert_eq!(rows, expected, "{table}");
        for format in [Format::Arrow, Format::Parquet] {
            let path = dir.path().join(format!("{table}.{format}"));
            let mut writer = ExportWriter::create(&path, format, &meta).unwrap();
            for batch in &batches {
                writer.write(batch).unwrap();
            }
            writer.finish().unwrap();
            let mut reader = ExportReader::open(&path).unwrap();
            assert_eq!(reader.meta, meta);
            let mut read = 0;
            while let Some(batch) = reader.next_batch() {
                read += batch.unwrap().num_rows();
            }
            assert_eq!(read, expected);
            // A derived table is not verified by itself: the auditor says how to check it…
            let err = audit::verify_path(&path, &VerifyOptions::default()).unwrap_err();
            assert!(err.0.contains("--projection"), "{err}");
            // …against the entries it was derived from, also by a fold that keeps no inactive
            // release in memory (they wait in its temporary file).
            for memory_releases in [None, Some(0)] {
                let options = VerifyOptions { memory_releases, ..VerifyOptions::default() };
                let outcome = audit::verify_projection(&entries, &path, &options).unwrap();
                assert_eq!(outcome.failure, None, "{table} {format} {memory_releases:?}: {outcome:#?}");
                assert_eq!(outcome.projections.len(), 1);
            }
        }
    }
    let (_, batches) = projection_export(&s.ledger, Table::Releases, &state).unwrap();
    let status = batches[0].column_by_name("status").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
    let mut statuses: Vec<_> = status.iter().flatten().collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["Published", "Rejected"]);
    // A release table that says the rejected release was approved is not what the log gives.
    let good = dir.path().join("releases.parquet");
    let forged = dir.path().join("forged-releases.parquet");
    rewrite_column(&good, &forged, "status", |old| {
        old.iter().map(|v| if v == Some("Rejected") { Some("Approved") } else { v }).collect()
    });
    let failure = audit::verify_projection(&entries, &forged, &VerifyOptions::default()).unwrap().failure.unwrap();
    assert_eq!(failure.check, "projection", "{failure}");
    assert!(failure.detail.contains("column status"), "{failure}");
    // Entries of another history cannot vouch for it.
    let other = governed_other_history();
    let foreign = dir.path().join("foreign.parquet");
    write_entries(&other.ledger, &foreign, Format::Parquet, 0, size(&other));
    assert!(audit::verify_projection(&foreign, &good, &VerifyOptions::default()).unwrap().failure.is_some());
}

fn envelope(e: &mut Entry) -> &mut Envelope {
    match &mut e.body {
        EntryBody::Present(env) => env,
        EntryBody::Redacted { .. } => panic!("redacted"),
    }
}

/// Recomputes every hash from `from` on, as a forger who cannot sign would: the chain then
/// holds, and only the signature (or the checkpoint's root) can tell.
fn rechain(entries: &mut [Entry], from: usize) {
    for i in from..entries.len() {
        if i > 0 {
            entries[i].prev_hash = entries[i - 1].entry_hash;
        }
        let e = &mut entries[i];
        if let EntryBody::Present(env) = &e.body {
            e.payload_hash = ledger::hash::payload_hash(&env.to_bytes());
        }
        e.entry_hash = ledger::hash::entry_hash(e.seq, e.recorded_at, &e.prev_hash, &e.payload_hash);
    }
}

/// One tampering case: what to change, and the seq the failure must name.
struct Case {
    name: &'static str,
    expect_seq: Option<u64>,
    expect_check: &'static str,
    entries: Vec<Entry>,
    meta: ExportMeta,
}

fn flip(bytes: &mut [u8], at: usize) {
    bytes[at] ^= 0x01;
}

#[test]
fn every_kind_of_tampering_is_detected_at_the_right_seq() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let n = size(&s);
    let meta = export_meta(&s.ledger, TENANT, Table::Entries, 0, n).unwrap();
    let good = s.entries();
    // An agent's event in the middle, the CoverageVerified of the evidence (the byte flips below
    // are placed for its body). Found, not hard-coded: where the worker's decisions land among
    // the scenario's appends depends on timing.
    let target = good
        .iter()
        .find(|e| body_of(e).is_some_and(|b| b["type"] == "CoverageVerified"))
        .expect("the evidence's CoverageVerified")
        .seq;
    let t = target as usize;
    let mut cases = Vec::new();
    let mut case = |name, expect_seq, expect_check, change: &dyn Fn(&mut Vec<Entry>, &mut ExportMeta)| {
        let (mut entries, mut m) = (good.clone(), meta.clone());
        change(&mut entries, &mut m);
        cases.push(Case { name, expect_seq, expect_check, entries, meta: m });
    };
    case("payload byte", Some(target), "hash", &|e, _| {
        let p = &mut envelope(&mut e[t]).payload;
        let at = p.len() - 3;
        flip(p, at);
    });
    case("payload re-hashed (entry hash kept)", Some(target), "hash", &|e, _| {
        let env = envelope(&mut e[t]);
        let at = env.payload.len() / 2;
        flip(&mut env.payload, at);
        e[t].payload_hash = ledger::hash::payload_hash(&envelope(&mut e[t]).to_bytes());
    });
    case("signature byte", Some(target), "hash", &|e, _| flip(&mut envelope(&mut e[t]).signatures[0].sig, 5));
    case("signature byte, chain rebuilt", Some(target), "signature", &|e, _| {
        flip(&mut envelope(&mut e[t]).signatures[0].sig, 5);
        rechain(e, t);
    });
    case("payload byte, chain rebuilt", Some(target), "signature", &|e, _| {
        // A change the catalogue accepts (the event id), so only the signature can tell.
        let p = &mut envelope(&mut e[t]).payload;
        let at = p.windows(11).position(|w| w == b"\"eventId\":\"").unwrap() + 11;
        flip(p, at);
        rechain(e, t);
    });
    case("recordedAt of the last entry, chain rebuilt", Some(n - 1), "checkpoint", &|e, _| {
        let last = e.len() - 1;
        e[last].recorded_at += 1;
        rechain(e, last);
    });
    case("prevHash", Some(target), "chain link", &|e, _| flip(&mut e[t].prev_hash, 0));
    case("entryHash", Some(target), "hash", &|e, _| flip(&mut e[t].entry_hash, 31));
    case("payloadHash", Some(target), "hash", &|e, _| flip(&mut e[t].payload_hash, 7));
    case("seq", Some(target), "sequence", &|e, _| e[t].seq += 1);
    case("recordedAt", Some(target), "hash", &|e, _| e[t].recorded_at += 1);
    case("row dropped", Some(target), "sequence", &|e, _| {
        e.remove(t);
    });
    case("rows reordered", Some(target), "sequence", &|e, _| e.swap(t, t + 1));
    case("last row dropped", Some(n - 1), "metadata", &|e, _| {
        e.pop();
    });
    case("keyId swapped for another key's, chain rebuilt", Some(target), "signature", &|e, _| {
        let other = envelope(&mut e[1]).signatures[0].keyid.clone();
        envelope(&mut e[t]).signatures[0].keyid = other;
        rechain(e, t);
    });
    case("metadata: tenant", Some(0), "payload columns", &|_, m| m.tenant = "another-tenant".into());
    case("metadata: range", Some(n), "metadata", &|_, m| m.to_seq = n + 1);
    let ledger_id = s.ledger.ledger_key().key_id().to_hex();
    let first_by_ledger = good.iter().find(|e| e.envelope().is_some_and(|env| env.signatures[0].keyid == ledger_id));
    // The ledger's own first entry is then signed by a key the file does not trust.
    case("metadata: ledger key", Some(first_by_ledger.unwrap().seq), "authorization", &|_, m| {
        m.roots = ledger::TrustRoots::new(*m.roots.admin(), ledger::KeyPair::from_seed(&[9; 32]).verifying_key());
    });
    case("metadata: checkpoint of another size", None, "checkpoint", &|_, m| {
        m.checkpoint = s.ledger.checkpoint_covering(TENANT, n - 1).unwrap().note;
    });
    case("metadata: checkpoint text edited", None, "checkpoint signature", &|_, m| {
        m.checkpoint = m.checkpoint.replacen(&n.to_string(), &(n + 1).to_string(), 1);
    });
    for format in [Format::Arrow, Format::Parquet] {
        for c in &cases {
            let path = dir.path().join(format!("{}.{format}", c.name.replace([' ', ':', '(', ')', '\''], "_")));
            write_raw(&path, format, &c.meta, &c.entries);
            let outcome = verify(&path);
            let failure = outcome.failure.unwrap_or_else(|| panic!("{format} {}: not detected", c.name));
            assert_eq!(failure.seq, c.expect_seq, "{format} {}: {failure}", c.name);
            assert_eq!(failure.check, c.expect_check, "{format} {}: {failure}", c.name);
        }
    }
}

/// Replaces one column of every batch of an export and rewrites it.
fn rewrite_column(from: &Path, to: &Path, column: &str, change: impl Fn(&StringArray) -> StringArray) {
    let mut reader = ExportReader::open(from).unwrap();
    let mut writer = ExportWriter::create(to, reader.format, &reader.meta.clone()).unwrap();
    while let Some(batch) = reader.next_batch() {
        let batch = batch.unwrap();
        let i = batch.schema().index_of(column).unwrap();
        let old = batch.column(i).as_any().downcast_ref::<StringArray>().unwrap();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[i] = Arc::new(change(old));
        writer.write(&RecordBatch::try_new(batch.schema(), columns).unwrap()).unwrap();
    }
    writer.finish().unwrap();
}

/// Replaces the `column` value of the row of `seq` (whichever batch holds it) with `value`.
fn rewrite_cell(from: &Path, to: &Path, column: &str, seq: u64, value: &str) {
    let mut reader = ExportReader::open(from).unwrap();
    let mut writer = ExportWriter::create(to, reader.format, &reader.meta.clone()).unwrap();
    let mut found = false;
    while let Some(batch) = reader.next_batch() {
        let batch = batch.unwrap();
        let seqs = batch.column(0).as_any().downcast_ref::<arrow::array::UInt64Array>().unwrap().clone();
        let i = batch.schema().index_of(column).unwrap();
        let old = batch.column(i).as_any().downcast_ref::<StringArray>().unwrap();
        let new: StringArray =
            old.iter().zip(seqs.values().iter()).map(|(v, &s)| if s == seq { Some(value) } else { v }).collect();
        found |= seqs.values().contains(&seq);
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[i] = Arc::new(new);
        writer.write(&RecordBatch::try_new(batch.schema(), columns).unwrap()).unwrap();
    }
    writer.finish().unwrap();
    assert!(found, "no row of seq {seq}");
}

/// The file's batches are decoded and their rows checked against the payloads one batch ahead
/// of the checks that need the entries in order (`audit.rs`, `READ_AHEAD`). With damage in
/// two batches, each found by the other stage, the first damage is the verdict either way.
#[test]
fn with_damage_in_two_batches_the_first_is_the_verdict_whichever_stage_finds_each() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let n = size(&s);
    let meta = export_meta(&s.ledger, TENANT, Table::Entries, 0, n).unwrap();
    let good = s.entries();
    let names_release = |e: &&Entry| body_of(e).is_some_and(|b| b.get("releaseId").is_some());
    let early = good.iter().find(names_release).unwrap().seq;
    // write_raw writes batches of 7 rows: `late` is at least two batches after `early`'s.
    let late = good.iter().filter(names_release).find(|e| e.seq / 7 >= early / 7 + 2).expect("a later entry").seq;
    let cases: [(&str, u64, u64, &str); 2] = [
        // (entry hash damaged at, releaseId column damaged at, expected seq, expected check)
        ("entry hash first", early, late, "hash"),
        ("column first", late, early, "payload columns"),
    ];
    for (name, hash_at, column_at, expected_check) in cases {
        let mut entries = good.clone();
        flip(&mut entries[hash_at as usize].entry_hash, 31);
        let hashed = dir.path().join(format!("{name}-hash.arrow"));
        write_raw(&hashed, Format::Arrow, &meta, &entries);
        let bad = dir.path().join(format!("{name}.arrow"));
        rewrite_cell(&hashed, &bad, "releaseId", column_at, "another-release");
        let batches = content(&bad).map(|(_, b)| b.len()).unwrap_or(0);
        assert!(batches > 2, "{name}: {batches} batches, the read-ahead needs several");
        // Each damage alone is found where it is, by its own stage.
        let alone = verify(&hashed).failure.unwrap();
        assert_eq!((alone.seq, alone.check.as_str()), (Some(hash_at), "hash"), "{name}: {alone}");
        let intact = dir.path().join(format!("{name}-intact.arrow"));
        write_raw(&intact, Format::Arrow, &meta, &good);
        let column_only = dir.path().join(format!("{name}-column.arrow"));
        rewrite_cell(&intact, &column_only, "releaseId", column_at, "another-release");
        let alone = verify(&column_only).failure.unwrap();
        assert_eq!((alone.seq, alone.check.as_str()), (Some(column_at), "payload columns"), "{name}: {alone}");
        let failure = verify(&bad).failure.unwrap_or_else(|| panic!("{name}: not detected"));
        assert_eq!((failure.seq, failure.check.as_str()), (Some(early), expected_check), "{name}: {failure}");
    }
}

/// A replay stops reading at its point while the reading thread is a batch ahead: it returns,
/// with the same state as from a file of one batch.
#[test]
fn a_replay_of_a_file_of_many_batches_stops_at_its_point() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let n = size(&s);
    let one = dir.path().join("one.arrow");
    write_entries(&s.ledger, &one, Format::Arrow, 0, n);
    let many = dir.path().join("many.arrow");
    write_raw(&many, Format::Arrow, &export_meta(&s.ledger, TENANT, Table::Entries, 0, n).unwrap(), &s.entries());
    assert_eq!(content(&one).unwrap().1.len(), 1);
    assert!(content(&many).unwrap().1.len() > 2);
    let entries = s.entries();
    let approved = entries.iter().find(|e| body_of(e).is_some_and(|b| b["type"] == "ReleaseApproved")).unwrap().seq;
    for at in [1, approved - 1, approved, n / 2] {
        let from_one = audit::replay(&one, R, AsOf::Seq(at), &VerifyOptions::default()).unwrap();
        let from_many = audit::replay(&many, R, AsOf::Seq(at), &VerifyOptions::default()).unwrap();
        assert_eq!(from_many.size, at + 1, "replay as of seq {at}");
        assert_eq!(
            (&from_many.summary, &from_many.timeline, from_many.size),
            (&from_one.summary, &from_one.timeline, from_one.size),
            "replay as of seq {at}"
        );
        assert!(from_many.verification.failure.is_none(), "{:?}", from_many.verification.failure);
    }
}

#[test]
fn a_column_copied_out_of_the_payload_cannot_say_something_else() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.parquet");
    write_entries(&s.ledger, &good, Format::Parquet, 0, size(&s));
    // The first row that names a release: its releaseId column now names another.
    let first = s.entries().iter().find(|e| body_of(e).is_some_and(|b| b.get("releaseId").is_some())).unwrap().seq;
    for column in ["releaseId", "type", "eventId", "agentId", "stream"] {
        let bad = dir.path().join(format!("{column}.parquet"));
        rewrite_column(&good, &bad, column, |old| {
            old.iter().enumerate().map(|(row, v)| if row as u64 == first { Some("forged") } else { v }).collect()
        });
        let failure = verify(&bad).failure.unwrap_or_else(|| panic!("{column}: not detected"));
        assert_eq!((failure.seq, failure.check.as_str()), (Some(first), "payload columns"), "{column}: {failure}");
    }
}

/// A small deterministic generator (xorshift64*): the mutations are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Everything a reader can get out of a file: its metadata and every row.
fn content(path: &Path) -> Option<(ExportMeta, Vec<RecordBatch>)> {
    let mut reader = ExportReader::open(path).ok()?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch() {
        batches.push(batch.ok()?);
    }
    Some((reader.meta.clone(), batches))
}

#[test]
fn every_single_byte_mutation_that_changes_content_is_detected() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    for (format, seed) in [(Format::Arrow, 0x9E37_79B9_7F4A_7C15u64), (Format::Parquet, 0xD1B5_4A32_D192_ED03)] {
        let good = dir.path().join(format!("good.{format}"));
        write_entries(&s.ledger, &good, format, 0, size(&s));
        let original = std::fs::read(&good).unwrap();
        let expected = content(&good).unwrap();
        let mut rng = Rng(seed);
        let (mut changed, mut unchanged) = (0, 0);
        let bad = dir.path().join(format!("bad.{format}"));
        for _ in 0..400 {
            let mut bytes = original.clone();
            let at = (rng.next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (rng.next() % 8);
            std::fs::write(&bad, &bytes).unwrap();
            let outcome = verify(&bad);
            match content(&bad) {
                Some(found) if found.0 == expected.0 && found.1 == expected.1 => {
                    // The byte carried no content (padding, statistics, an unused flag).
                    unchanged += 1;
                }
                _ => {
                    changed += 1;
                    assert!(outcome.failure.is_some(), "{format}: flipping byte {at} changed the content undetected");
                }
            }
        }
        // Most of the file is content: the test must have exercised detection.
        assert!(changed > 200, "{format}: only {changed} of 400 mutations changed content ({unchanged} did not)");
    }
}

/// In [`governed`], where R2 was rejected for a Critical CVE, the ledger key (through this
/// test-only path, not the worker) signs an approval of R2: the seq of that decision.
fn forge_approval_of_r2(s: &mut Scenario) -> u64 {
    let trigger = s.entries().last().unwrap().seq;
    let body = json!({
        "tenant": TENANT, "stream": format!("release/{R2}"), "type": "ReleaseApproved",
        "eventId": format!("decision:{R2}:{trigger}"), "occurredAt": "2025-03-01T00:00:00Z",
        "releaseId": R2, "traceId": format!("trace-{R2}"), "actor": { "agentId": "release-ledger" },
        "data": {
            "status": "Approved", "policyVersion": 1, "evaluatedAt": "2025-03-01T00:00:00Z", "trigger": trigger,
            "evidence": [], "gates": [], "reasons": [], "retryAfter": null, "retryable": true,
            "suggestedFix": null, "riskScore": 0, "riskFactors": []
        }
    });
    let envelope = Envelope::sign(serde_json::to_vec(&body).unwrap(), s.ledger.ledger_key());
    s.ledger.append(ledger::AppendEvent::new(envelope)).unwrap().seq
}

#[test]
fn a_decision_the_policy_would_not_have_made_is_flagged_as_unjustified() {
    let mut s = governed();
    let forged = forge_approval_of_r2(&mut s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.arrow");
    write_entries(&s.ledger, &path, Format::Arrow, 0, size(&s));
    let outcome = verify(&path);
    assert_eq!(outcome.exit_code(), 1);
    let failure = outcome.failure.expect("an unjustified decision must fail verification");
    assert_eq!((failure.seq, failure.check.as_str()), (Some(forged), "decisions"), "{failure}");
    assert!(failure.detail.contains("unjustified decision"), "{failure}");

    // The data dir itself: its check folds the payloads it parsed for its verifier, and finds
    // the same decision unjustified.
    s.stop_governor();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(s.ledger.data_dir(), copy.path());
    let outcome = verify(copy.path());
    assert_eq!((outcome.format.as_str(), outcome.exit_code()), ("data-dir", 1), "{outcome:#?}");
    let failure = outcome.failure.expect("an unjustified decision in a data dir must fail verification");
    assert_eq!((failure.seq, failure.check.as_str()), (Some(forged), "entries"), "{failure}");
    assert!(failure.detail.contains("decisions: unjustified decision"), "{failure}");
}

/// `verify` folds without releases' timelines (it shows none), replays and projection checks
/// with them: on the governed log and on one with an unjustified decision, both folds reach the
/// same verdict, and their states are the same but for the timelines, which only the kept fold
/// has. Breaks if skipping the timelines skipped anything else: checked with `updated_at` left
/// unset by the fold without timelines (the states differ). The fold without timelines also
/// folds each decision it owes byte for byte without parsing its `data`
/// (`FoldInput::OwnDecision`), so this compares that path with the parsed one too.
#[test]
fn a_fold_without_timelines_reaches_the_same_verdict_and_state() {
    for forge in [false, true] {
        let mut s = governed();
        let forged = forge.then(|| forge_approval_of_r2(&mut s));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entries.arrow");
        write_entries(&s.ledger, &path, Format::Arrow, 0, size(&s));
        for memory_releases in [None, Some(0)] {
            let options = VerifyOptions { memory_releases, ..VerifyOptions::default() };
            let (kept, kept_fold) = audit::verify_file_as(&path, &options, None, audit::Timelines::Kept).unwrap();
            let (skipped, skipped_fold) =
                audit::verify_file_as(&path, &options, None, audit::Timelines::Skipped).unwrap();
            let plain = audit::verify_path(&path, &options).unwrap();
            let json = |o: &Outcome| serde_json::to_value(o).unwrap();
            assert_eq!(json(&skipped), json(&kept), "{memory_releases:?}");
            assert_eq!(json(&plain), json(&kept), "{memory_releases:?}");
            assert_eq!(kept.failure.as_ref().and_then(|f| f.seq), forged);
            if !forge {
                assert!(kept.tenants.iter().map(|t| t.decisions_checked).sum::<u64>() > 0);
            }
            let mut kept = kept_fold.unwrap().whole_state().unwrap();
            let skipped = skipped_fold.unwrap().whole_state().unwrap();
            assert!(kept.releases.values().all(|r| !r.timeline.is_empty()));
            assert!(skipped.releases.values().all(|r| r.timeline.is_empty() && r.timeline_omitted == 0));
            for release in kept.releases.values_mut() {
                release.timeline.clear();
            }
            assert_eq!(kept, skipped, "{memory_releases:?}");
        }
    }
}

/// A log whose prod policy gates on policy code (the SLO error-budget example of docs/gates):
/// R is rejected by the gate (its budget is exhausted), then approved once a healthy report
/// is attached.
fn custom_gated() -> Scenario {
    let mut s = Scenario::new();
    let mut doc = prod_policy(json!({}));
    doc["environments"]["prod"]["gates"] = json!(["slo_error_budget"]);
    doc["rego"] = json!({ "modules": { "slo_error_budget.rego": SLO_GATE } });
    s.run([policy(doc), intent(R, "prod", &[("api", "1.4.0")])]);
    s.run(evidence(R, "api", "1.4.0"));
    s.run([
        approve(R, "QA"),
        attach(R, "api", "1.4.0", "slo-report", json!({"errorBudgetRemaining": 0.01})),
        evaluate(R),
    ]);
    s.settle();
    assert_eq!(s.outcome(R), "Rejected CustomGateFailed retryable risk=10");
    s
}

#[test]
fn the_auditor_re_derives_custom_gate_decisions_and_flags_one_the_policy_code_would_not_have_made() {
    let mut s = custom_gated();
    s.must(attach(R, "api", "1.4.0", "slo-report", json!({"errorBudgetRemaining": 0.5})));
    s.settle();
    assert_eq!(s.outcome(R), "Approved risk=10");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.parquet");
    write_entries(&s.ledger, &path, Format::Parquet, 0, size(&s));
    let outcome = verify(&path);
    assert_eq!(outcome.failure, None, "{outcome:#?}");
    assert_eq!(outcome.tenants[0].decisions_checked, decision_seqs(&s).len() as u64);

    // Then the newest slo-report says the budget is exhausted (the worker is stopped, so the
    // ledger has not decided yet), and the ledger key, through this test-only path, signs an
    // approval at that trigger. Every built-in gate passes there; only the policy code says no,
    // so the auditor notices only by evaluating it.
    s.stop_governor();
    let low = s.must(attach(R, "api", "1.4.0", "slo-report", json!({"errorBudgetRemaining": 0.02})));
    let body = json!({
        "tenant": TENANT, "stream": format!("release/{R}"), "type": "ReleaseApproved",
        "eventId": format!("decision:{R}:{low}"), "occurredAt": "2025-03-01T00:00:00Z",
        "releaseId": R, "actor": { "agentId": "release-ledger" },
        "data": {
            "status": "Approved", "policyVersion": 1, "evaluatedAt": "2025-03-01T00:00:00Z", "trigger": low,
            "evidence": [low], "gates": [], "reasons": [], "retryAfter": null, "retryable": true,
            "suggestedFix": null, "riskScore": 10, "riskFactors": []
        }
    });
    let envelope = Envelope::sign(serde_json::to_vec(&body).unwrap(), s.ledger.ledger_key());
    let forged = s.ledger.append(ledger::AppendEvent::new(envelope)).unwrap().seq;
    let path = dir.path().join("forged.arrow");
    write_entries(&s.ledger, &path, Format::Arrow, 0, size(&s));
    let outcome = verify(&path);
    assert_eq!(outcome.exit_code(), 1);
    let failure = outcome.failure.expect("a decision the policy code would not have made must fail verification");
    assert_eq!((failure.seq, failure.check.as_str()), (Some(forged), "decisions"), "{failure}");
    assert!(failure.detail.contains("differs"), "{failure}");
    // What the fold owed there is the gate's rejection.
    let owed = s.fold(Some(low + 1));
    let rejected =
        owed.meta.outbox.get(&format!("decision:{R}:{low}")).expect("the fold owes a decision at the trigger");
    assert!(rejected.body().contains("\"ReleaseRejected\"") && rejected.body().contains("ErrorBudgetExhausted"));
}

#[test]
fn a_range_export_verifies_from_its_resume_point_and_says_what_it_cannot_check() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let n = size(&s);
    for (from, to) in [(5, n), (11, 23), (n, n), (0, 1)] {
        let path = dir.path().join(format!("range-{from}-{to}.parquet"));
        let meta = write_entries(&s.ledger, &path, Format::Parquet, from, to);
        assert_eq!(meta.resume.is_some(), from > 0);
        let outcome = verify(&path);
        assert_eq!(outcome.failure, None, "{from}..{to}: {outcome:#?}");
        let t = &outcome.tenants[0];
        assert_eq!((t.from_seq, t.to_seq, t.entries), (from, to, to - from));
        assert_eq!(t.decisions_rederived, from == 0);
        if from > 0 {
            assert!(outcome.notes.iter().any(|n| n.contains("exporter's word")), "{:?}", outcome.notes);
        }
    }
    // A forged frontier cannot reach the checkpoint's root.
    let mut meta = export_meta(&s.ledger, TENANT, Table::Entries, 6, n).unwrap();
    meta.resume.as_mut().unwrap().frontier[0][0] ^= 1;
    let path = dir.path().join("forged-frontier.arrow");
    write_raw(&path, Format::Arrow, &meta, &s.entries()[6..]);
    let failure = verify(&path).failure.unwrap();
    assert_eq!(failure.check, "checkpoint", "{failure}");
    // A key dropped from the registry before the range: its events no longer verify.
    let mut meta = export_meta(&s.ledger, TENANT, Table::Entries, 11, n).unwrap();
    let ci = ledger::KeyId::of(&key_of(CI).verifying_key()).to_hex();
    meta.resume.as_mut().unwrap().keys.retain(|k| k.key_id != ci);
    let path = dir.path().join("no-ci-key.arrow");
    write_raw(&path, Format::Arrow, &meta, &s.entries()[11..]);
    let entries = s.entries();
    let first_ci =
        entries[11..].iter().find(|e| e.envelope().is_some_and(|env| env.signatures[0].keyid == ci)).unwrap();
    let failure = verify(&path).failure.unwrap();
    assert_eq!((failure.seq, failure.check.as_str()), (Some(first_ci.seq), "authorization"), "{failure}");
}

#[test]
fn redacted_entries_are_reported_as_redacted_not_as_tampering() {
    let mut s = governed();
    let target = s.entries().iter().find(|e| body_of(e).is_some_and(|b| b["type"] == "TestsPassed")).unwrap().seq;
    let redaction = s.must(raw("EntryRedacted", None, json!({"seq": target, "reason": "erasure request"})).by(ADMIN));
    s.settle();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.parquet");
    write_entries(&s.ledger, &path, Format::Parquet, 0, size(&s));
    let outcome = verify(&path);
    assert_eq!(outcome.failure, None, "{outcome:#?}");
    assert_eq!(outcome.tenants[0].redacted, vec![target]);
    // Decisions made from the erased evidence can no longer be re-derived: reported, not failed.
    let unverifiable = &outcome.tenants[0].decisions_unverifiable;
    assert!(unverifiable.iter().all(|&seq| seq > target), "{unverifiable:?}");
    // A range ending before the redaction cannot confirm it: fail closed, saying how far to go
    // (anyone could erase a payload and name a redaction beyond the file).
    let path = dir.path().join("before.parquet");
    write_entries(&s.ledger, &path, Format::Parquet, 0, redaction);
    let failure = verify(&path).failure.unwrap();
    assert_eq!((failure.seq, failure.check.as_str()), (Some(target), "redaction"), "{failure}");
    assert!(failure.detail.contains(&format!("verify through seq {redaction}")), "{failure}");
    // Erasing a payload without a redaction is tampering.
    let mut entries = s.entries();
    let victim = target + 1;
    entries[victim as usize].body = EntryBody::Redacted { by_seq: redaction };
    let meta = export_meta(&s.ledger, TENANT, Table::Entries, 0, size(&s)).unwrap();
    let path = dir.path().join("erased.arrow");
    write_raw(&path, Format::Arrow, &meta, &entries);
    let failure = verify(&path).failure.unwrap();
    assert_eq!((failure.seq, failure.check.as_str()), (Some(victim), "redaction"), "{failure}");
}

#[test]
fn replay_shows_a_release_as_it_stood_and_consistency_holds_between_exports() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("entries.arrow");
    write_entries(&s.ledger, &path, Format::Arrow, 0, size(&s));
    let entries = s.entries();
    let approved = entries.iter().find(|e| body_of(e).is_some_and(|b| b["type"] == "ReleaseApproved")).unwrap().seq;
    let before = audit::replay(&path, R, AsOf::Seq(approved - 1), &VerifyOptions::default()).unwrap();
    let after = audit::replay(&path, R, AsOf::Seq(approved), &VerifyOptions::default()).unwrap();
    let end = audit::replay(&path, R, AsOf::End, &VerifyOptions::default()).unwrap();
    // The same with every inactive release out of memory between entries.
    let spilled = VerifyOptions { memory_releases: Some(0), ..VerifyOptions::default() };
    let end_spilled = audit::replay(&path, R, AsOf::End, &spilled).unwrap();
    assert_eq!((&end_spilled.summary, &end_spilled.timeline), (&end.summary, &end.timeline));
    let checked = |o: &audit::Outcome| o.tenants.iter().map(|t| t.decisions_checked).sum::<u64>();
    assert!(checked(&end_spilled.verification) > 0);
    assert_eq!(checked(&end_spilled.verification), checked(&end.verification));
    assert_eq!(after.summary.as_ref().unwrap().status, "Approved");
    assert_ne!(before.summary.as_ref().unwrap().last_decision, after.summary.as_ref().unwrap().last_decision);
    assert_eq!(end.summary.as_ref().unwrap().status, "Published");
    assert_eq!(end.summary, Some(s.summary(R)), "offline replay must equal the live projection");
    let time = entries[approved as usize].recorded_at;
    let at_time = audit::replay(&path, R, AsOf::Time(time), &VerifyOptions::default()).unwrap();
    assert!(at_time.size > approved);
    assert!(at_time.verification.failure.is_none());

    // An older checkpoint is extended by the newer export; a checkpoint of another history is not.
    let old = s.ledger.checkpoint_covering(TENANT, 10).unwrap().note;
    let consistent = audit::consistency(&old, &path, None, None).unwrap();
    assert_eq!((consistent.old_size, consistent.failure), (10, None));
    let key = *s.ledger.trust_roots().ledger();
    // A checkpoint of this log (its origin, signed by its key) with another root: tampering.
    let rewritten = ledger::Checkpoint {
        root: [1; 32],
        ..ledger::SignedCheckpoint::parse_and_verify(&old, &key).unwrap().checkpoint
    };
    let outcome = audit::consistency(&rewritten.sign(s.ledger.ledger_key()).note, &path, None, Some(&key)).unwrap();
    assert_eq!(outcome.failure.as_ref().map(|f| f.check.as_str()), Some("checkpoint"), "{outcome:?}");
    // A checkpoint of another ledger is no verdict about this one: the audit cannot run on it.
    let other = governed_other_history();
    let foreign = other.ledger.checkpoint_covering(TENANT, 10).unwrap().note;
    let refused = audit::consistency(&foreign, &path, None, Some(&key)).unwrap_err();
    assert!(refused.0.contains("carries no signature by the ledger key"), "{refused}");
    // Two checkpoints and the proof between them.
    let newer = s.ledger.checkpoint(TENANT).unwrap();
    let proof = s.ledger.consistency_proof(TENANT, 10, newer.checkpoint.size).unwrap();
    let newer_path = dir.path().join("newer.note");
    std::fs::write(&newer_path, &newer.note).unwrap();
    let ok = audit::consistency(&old, &newer_path, Some(&proof.path), Some(&key)).unwrap();
    assert_eq!(ok.failure, None);
    let mut bad_proof = proof.path.clone();
    bad_proof[0][0] ^= 1;
    assert!(audit::consistency(&old, &newer_path, Some(&bad_proof), Some(&key)).unwrap().failure.is_some());
}

fn governed_other_history() -> Scenario {
    let mut s = Scenario::new();
    s.run([policy(prod_policy(json!({}))), intent("other", "prod", &[("x", "1")])]);
    s.run(evidence("other", "x", "1"));
    s.settle();
    s
}

/// The `ledger-audit` binary of this build. `LEDGER_AUDIT_BIN` overrides it where several
/// work trees share one target dir, whose builds each replace `target/release/ledger-audit`.
fn ledger_audit() -> Command {
    match std::env::var_os("LEDGER_AUDIT_BIN") {
        Some(path) => Command::new(path),
        None => Command::new(env!("CARGO_BIN_EXE_ledger-audit")),
    }
}

#[test]
fn the_cli_exits_0_verified_1_inconsistent_2_could_not_run() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("entries.parquet");
    let meta = write_entries(&s.ledger, &good, Format::Parquet, 0, size(&s));
    let key_file = dir.path().join("ledger.pub");
    std::fs::write(&key_file, s.ledger.ledger_key().public_key_pem().unwrap()).unwrap();

    let out = ledger_audit().arg("verify").arg(&good).arg("--ledger-key").arg(&key_file).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("VERIFIED") && text.contains("(pinned)") && text.contains("decisions"), "{text}");

    let mut entries = s.entries();
    if let EntryBody::Present(env) = &mut entries[9].body {
        env.signatures[0].sig[0] ^= 1;
    }
    rechain(&mut entries, 9);
    let bad = dir.path().join("bad.arrow");
    write_raw(&bad, Format::Arrow, &meta, &entries);
    let out = ledger_audit().args(["verify", "--json"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["failure"]["seq"], 9);
    assert_eq!(json["failure"]["check"], "signature");

    // Another ledger's key pinned: inconsistent, not verified.
    let other = dir.path().join("other.pub");
    std::fs::write(&other, ledger::KeyPair::from_seed(&[7; 32]).public_key_pem().unwrap()).unwrap();
    let out = ledger_audit().arg("verify").arg(&good).arg("--ledger-key").arg(&other).output().unwrap();
    assert_eq!(out.status.code(), Some(1));

    let missing: PathBuf = dir.path().join("missing.parquet");
    let out = ledger_audit().arg("verify").arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.parquet"));

    let out = ledger_audit().args(["inspect", "--json"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["rows"], size(&s));
    assert_eq!(json["eventTypes"]["ReleaseApproved"], 1);

    let out = ledger_audit().args(["replay", "--release", R, "--json"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["summary"]["status"], "Published");
}

#[test]
fn pyarrow_reads_both_formats_and_checks_every_dsse_signature_from_the_columns() {
    let mut s = governed();
    let target = s.entries().iter().find(|e| body_of(e).is_some_and(|b| b["type"] == "CoverageVerified")).unwrap().seq;
    s.must(raw("EntryRedacted", None, json!({"seq": target, "reason": "erasure request"})).by(ADMIN));
    s.settle();
    let dir = tempfile::tempdir().unwrap();
    let n = size(&s);
    let arrow = dir.path().join("entries.arrow");
    let parquet = dir.path().join("entries.parquet");
    write_entries(&s.ledger, &arrow, Format::Arrow, 0, n);
    write_entries(&s.ledger, &parquet, Format::Parquet, 0, n);
    let output = Command::new(testkit::interop_python())
        .arg(testkit::interop_dir().join("check_export.py"))
        .arg(n.to_string())
        .args([&arrow, &parquet])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for file in summary["files"].as_array().unwrap() {
        assert_eq!(file["rows"], n);
        assert_eq!(file["redacted"], 1);
        assert_eq!(file["verified"], n - 1, "{file}");
        assert!(file["registered"].as_u64().unwrap() >= 5, "{file}");
    }
}

/// The first single-byte change (of the file's last 4 KiB, where the footer and metadata of
/// both formats live) that makes the Arrow or Parquet decoder panic, as the reader reports it.
fn decoder_panic(good: &Path, bad: &Path) -> Option<(usize, String)> {
    let original = std::fs::read(good).unwrap();
    let start = original.len().saturating_sub(4096);
    for at in (start..original.len()).rev() {
        for value in [0xFF, 0x00, 0x7F, 0x80] {
            let mut bytes = original.clone();
            if bytes[at] == value {
                continue;
            }
            bytes[at] = value;
            std::fs::write(bad, &bytes).unwrap();
            let error = match ExportReader::open(bad) {
                Err(e) => Some(e.to_string()),
                Ok(mut reader) => {
                    std::iter::from_fn(|| reader.next_batch()).find_map(Result::err).map(|e| e.to_string())
                }
            };
            if let Some(error) = error.filter(|e| e.contains("the decoder failed")) {
                return Some((at, error));
            }
        }
    }
    None
}

/// Arrow only: since every Parquet page header is read by our bounded reader first
/// (`tools/src/parquet_pages.rs`), no single-byte change of a Parquet export's last 4 KiB makes
/// parquet-rs panic any more (each is refused before decoding), so there is no Parquet panic to
/// test this with. Both formats go through the same `decoding` wrapper.
#[test]
fn a_decoder_panic_on_a_tampered_file_is_a_one_line_failure_without_a_backtrace() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    {
        let format = Format::Arrow;
        let good = dir.path().join(format!("good.{format}"));
        write_entries(&s.ledger, &good, format, 0, size(&s));
        let bad = dir.path().join(format!("bad.{format}"));
        let (at, error) = decoder_panic(&good, &bad)
            .unwrap_or_else(|| panic!("{format}: no single-byte change makes the decoder panic: nothing to test"));
        assert!(!error.contains('\n'), "{format}: {error}");
        eprintln!(
            "{format}: byte {at} of {} makes the decoder panic: {error}",
            std::fs::metadata(&good).unwrap().len()
        );
        // RUST_BACKTRACE asks for backtraces: the auditor must still print none.
        let out = ledger_audit().arg("verify").arg(&bad).env("RUST_BACKTRACE", "1").output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(audit::EXIT_INCONSISTENT), "{format} byte {at}: {stdout}{stderr}");
        for noise in ["panicked at", "stack backtrace", "RUST_BACKTRACE"] {
            assert!(!stderr.contains(noise) && !stdout.contains(noise), "{format} byte {at}: {stdout}{stderr}");
        }
        assert!(stdout.contains("the decoder failed"), "{format} byte {at}: {stdout}");
        let failure_lines = stdout.lines().filter(|l| l.contains("the decoder failed")).count();
        assert_eq!(failure_lines, 1, "{format} byte {at}: {stdout}");
        let out = ledger_audit().args(["verify", "--json"]).arg(&bad).env("RUST_BACKTRACE", "1").output().unwrap();
        assert_eq!(out.status.code(), Some(audit::EXIT_INCONSISTENT));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(["file structure", "metadata"].contains(&json["failure"]["check"].as_str().unwrap()), "{json}");
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Runs `ledger-audit consistency --old OLD --new NEW [--ledger-key KEY]`: exit code, stdout,
/// stderr.
fn consistency_cli(old: &Path, new: &Path, key: Option<&Path>) -> (Option<i32>, String, String) {
    let mut command = ledger_audit();
    command.arg("consistency").arg("--old").arg(old).arg("--new").arg(new);
    if let Some(key) = key {
        command.arg("--ledger-key").arg(key);
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 23 item 3: the old checkpoint is read as the signed note (one trailing newline more or
/// less), `checkpoint --json` output (whole or its .note string) or an older export; anything
/// that is not a checkpoint of the log is "could not run" (exit 2) naming what is wrong, and
/// only two valid checkpoints of one log that disagree are INCONSISTENT (exit 1).
#[test]
fn consistency_reads_every_form_of_the_old_checkpoint_and_refuses_what_is_not_one_of_the_log() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("entries.arrow");
    write_entries(&s.ledger, &new, Format::Arrow, 0, size(&s));
    let key_file = dir.path().join("ledger.pub");
    std::fs::write(&key_file, s.ledger.ledger_key().public_key_pem().unwrap()).unwrap();
    let signed = s.ledger.checkpoint_covering(TENANT, 10).unwrap();
    let note = signed.note.clone();
    assert!(note.ends_with("\n") && !note.ends_with("\n\n"));
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let json = serde_json::json!({ "origin": signed.checkpoint.origin, "size": 10, "note": note, "verified": true });
    let older_export = dir.path().join("older.parquet");
    write_entries(&s.ledger, &older_export, Format::Parquet, 0, 10);
    let accepted = [
        file("exact.note", note.as_bytes()),
        file("jq-r.note", format!("{note}\n").as_bytes()),
        file("no-newline.note", note.trim_end().as_bytes()),
        file("checkpoint.json", json.to_string().as_bytes()),
        file("note.json", serde_json::to_string(&note).unwrap().as_bytes()),
        older_export,
    ];
    for old in &accepted {
        for key in [None, Some(key_file.as_path())] {
            let (code, out, err) = consistency_cli(old, &new, key);
            assert_eq!(code, Some(0), "{}: {out}{err}", old.display());
            assert!(out.starts_with("CONSISTENT:") && out.contains("checkpoint of 10 entries"), "{out}");
        }
    }

    let other_key = ledger::KeyPair::from_seed(&[7; 32]);
    let ledger_key = s.ledger.ledger_key();
    let of_log = |change: &dyn Fn(&mut ledger::Checkpoint), key: &ledger::KeyPair| {
        let mut checkpoint = signed.checkpoint.clone();
        change(&mut checkpoint);
        checkpoint.sign(key).note
    };
    let altered = note.replacen("\n10\n", "\n11\n", 1);
    assert_ne!(altered, note);
    let refused: [(&str, Vec<u8>, &str); 9] = [
        (
            "binary.note",
            vec![0xff, 0xfe, 0x00, 0x01],
            "is neither text (invalid UTF-8 at byte 0) nor an Arrow IPC or Parquet export",
        ),
        ("words.note", b"hello\n".to_vec(), "is not a signed checkpoint note"),
        (
            "status-after.note",
            format!("{}\nsignature verified with the ledger key x\n", note.trim_end()).into_bytes(),
            "holds more than the signed note: line 6 (\"signature verified",
        ),
        (
            "status-before.note",
            format!("checkpoint of {TENANT}\n{note}").into_bytes(),
            "holds more than the signed note: line 1 (\"checkpoint of",
        ),
        ("no-note.json", br#"{"size": 10}"#.to_vec(), "has no \"note\" string"),
        ("other-key.note", of_log(&|_| {}, &other_key).into_bytes(), "carries no signature by the ledger key"),
        (
            "other-tenant.note",
            of_log(&|c| c.origin = "release-ledger/vetclinc-002".into(), ledger_key).into_bytes(),
            "is of log \"release-ledger/vetclinc-002\"",
        ),
        (
            "larger.note",
            of_log(&|c| c.size = size(&s) + 5, ledger_key).into_bytes(),
            &format!("covers {} entries, the export only {}", size(&s) + 5, size(&s)),
        ),
        ("altered.note", altered.into_bytes(), "does not verify: the note was altered after it was signed"),
    ];
    for (name, bytes, expected) in refused {
        let old = file(name, &bytes);
        let (code, out, err) = consistency_cli(&old, &new, Some(&key_file));
        assert_eq!(code, Some(2), "{name}: {out}{err}");
        assert!(err.contains(expected), "{name}: {err}");
        assert!(out.is_empty() && !err.contains("INCONSISTENT"), "{name}: {out}{err}");
        // Every refusal says what to pass instead (a key or tenant mismatch names the fix).
        assert!(
            err.contains("release-ledger checkpoint --out FILE")
                || err.contains("--ledger-key")
                || err.contains("same tenant")
                || err.contains("newer export"),
            "{name}: {err}"
        );
    }
    // Another ledger's key: the message says which key was tried and from where.
    let (_, _, err) = consistency_cli(&dir.path().join("other-key.note"), &new, Some(&key_file));
    assert!(
        err.contains("by the ledger key ") && err.contains("(from --ledger-key), only by release-ledger.invalid/"),
        "{err}"
    );

    // Only a valid checkpoint of this log that disagrees with it is a verdict: INCONSISTENT.
    let forged = file("forged-root.note", of_log(&|c| c.root = [1; 32], ledger_key).as_bytes());
    let (code, out, err) = consistency_cli(&forged, &new, Some(&key_file));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(out.starts_with("INCONSISTENT:"), "{out}");
}

/// A v1 checkpoint note as a format v1 store signed it (`release-ledger/{tenant}` origin,
/// BLAKE3 root, chain-head and timestamp lines) over the first `size` entries of `ledger`:
/// what a log migrated to format v2 has in its auditors' hands (migration keeps the entries,
/// and the fixture test checks that v1 notes are exactly these roots).
fn v1_note(ledger: &Ledger, size: u64, root: Option<[u8; 32]>) -> String {
    use ledger::merkle::{Blake3Hasher, TreeHasher};
    let entries: Vec<Entry> = testkit::all_entries(ledger, TENANT).into_iter().take(size as usize).collect();
    let leaves: Vec<[u8; 32]> = entries.iter().map(|e| Blake3Hasher::hash_leaf(&e.entry_hash)).collect();
    let root = root.unwrap_or_else(|| ledger::merkle::root_of_leaves::<Blake3Hasher>(&leaves));
    let last = entries.last().unwrap();
    let origin = format!("release-ledger/{TENANT}");
    let text = format!(
        "{origin}\n{size}\n{}\nchain-head {}\ntimestamp {}\n",
        ledger::b64::encode(root),
        ledger::b64::encode(last.entry_hash),
        last.recorded_at
    );
    let key = ledger.ledger_key();
    let mut blob = ledger::checkpoint::note_key_id(&origin, &key.verifying_key()).to_vec();
    blob.extend_from_slice(&key.sign(text.as_bytes()));
    format!("{text}\n\u{2014} {origin} {}\n", ledger::b64::encode(blob))
}

/// A checkpoint signed before the store was migrated to format v2 (BLAKE3 tree, chain-head
/// line, the v1 origin prefix) stays an older checkpoint of the same log: `consistency`
/// checks it against the BLAKE3 tree of a v2 export's entries (the leaves are the same entry
/// hashes). A forged v1 root is INCONSISTENT; a v1 checkpoint against a v2 checkpoint (no
/// proof spans the two trees) cannot run.
#[test]
fn a_format_v1_checkpoint_is_checked_against_the_migrated_log() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("entries.arrow");
    write_entries(&s.ledger, &export, Format::Arrow, 0, size(&s));
    let key = dir.path().join("ledger.pub");
    std::fs::write(&key, s.ledger.ledger_key().public_key_pem().unwrap()).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    for old_size in [1, 10, size(&s)] {
        let old = file("v1.note", &v1_note(&s.ledger, old_size, None));
        let (code, stdout, stderr) = consistency_cli(&old, &export, Some(&key));
        assert_eq!(code, Some(0), "{old_size}: {stdout}{stderr}");
        assert!(stdout.starts_with("CONSISTENT:"), "{stdout}");
    }

    // The same size with another root, signed by the same key: a fork, found.
    let forged = file("forged-v1.note", &v1_note(&s.ledger, 10, Some([1; 32])));
    let (code, stdout, stderr) = consistency_cli(&forged, &export, Some(&key));
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("BLAKE3 (format v1) tree root"), "{stdout}");

    // Two checkpoints of different formats: no proof can be checked between them.
    let old = file("v1.note", &v1_note(&s.ledger, 10, None));
    let new = file("v2.note", &s.ledger.checkpoint(TENANT).unwrap().note);
    let proof = file("proof.txt", "");
    let out = ledger_audit()
        .args(["consistency", "--old"])
        .arg(&old)
        .arg("--new")
        .arg(&new)
        .arg("--proof")
        .arg(&proof)
        .arg("--ledger-key")
        .arg(&key)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --new EXPORT"), "{out:?}");
}

/// `ledger-audit witnessed`: a checkpoint cosigned by two of three policy witnesses is
/// WITNESSED (exit 0); with one cosignature it is not (exit 1), a forged one is reported as
/// failed, another log's checkpoint is refused (exit 1), and a policy error cannot run (exit 2).
#[test]
fn witnessed_checks_the_cosignatures_and_the_quorum_of_a_policy() {
    use witness::cosig::sign_note;
    use witness::{Cosigner, SignedNote, Vkey};

    let dir = tempfile::tempdir().unwrap();
    let ledger_key = ledger::KeyPair::from_seed(&[1; 32]);
    let origin = "release-ledger/acme";
    let cosigners: Vec<Cosigner> = (0..3u8)
        .map(|i| Cosigner::new(&format!("w{i}.example"), ledger::KeyPair::from_seed(&[9 + i; 32])).unwrap())
        .collect();
    let mut policy = String::new();
    for (i, c) in cosigners.iter().enumerate() {
        policy.push_str(&format!("witness W{i} {}\n", c.vkey()));
    }
    policy.push_str("group g 2 W0 W1 W2\nquorum g\n");
    let policy_file = dir.path().join("policy.txt");
    std::fs::write(&policy_file, &policy).unwrap();
    let key_file = dir.path().join("ledger.pub");
    std::fs::write(&key_file, ledger_key.public_key_pem().unwrap()).unwrap();

    let text = format!("{origin}\n12\n{}\n", ledger::b64::encode([4u8; 32]));
    let note = |by: &[usize]| {
        let mut note = SignedNote { signatures: vec![sign_note(origin, &ledger_key, &text)], text: text.clone() };
        note.signatures.extend(by.iter().map(|i| cosigners[*i].cosign(&text, 1_800_000_000)));
        note
    };
    let run = |note: &str, extra: &[&str]| {
        let file = dir.path().join("checkpoint.note");
        std::fs::write(&file, note).unwrap();
        let out =
            ledger_audit().arg("witnessed").arg(&file).arg("--policy").arg(&policy_file).args(extra).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    };
    let key = ["--ledger-key", key_file.to_str().unwrap()];

    let (code, out) = run(&note(&[0, 2]).to_note(), &key);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("WITNESSED: release-ledger/acme size 12: quorum group g (2 of 3) met"), "{out}");
    // The same as `release-ledger checkpoint --json` output.
    let as_json = serde_json::json!({ "witnessing": { "cosignedNote": note(&[0, 1]).to_note() } }).to_string();
    assert_eq!(run(&as_json, &key).0, Some(0));

    let (code, out) = run(&note(&[1]).to_note(), &key);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT WITNESSED") && out.contains("missing: W0, W2"), "{out}");
    let mut forged = note(&[0, 1]);
    forged.signatures[2].signature[30] ^= 1;
    let (code, out) = run(&forged.to_note(), &key);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("failed: W1: the signature of w1.example does not verify"), "{out}");
    // Another ledger key: the log signature is refused before any cosignature counts.
    let other = dir.path().join("other.pub");
    std::fs::write(&other, ledger::KeyPair::from_seed(&[2; 32]).public_key_pem().unwrap()).unwrap();
    let (code, out) = run(&note(&[0, 1, 2]).to_note(), &["--ledger-key", other.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REFUSED: the checkpoint carries no signature of the log key"), "{out}");
    // No log key at all: cannot run.
    let (code, out) = run(&note(&[0, 1]).to_note(), &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("pass the ledger key with --ledger-key"), "{out}");
    // A policy with the log line needs no --ledger-key.
    let log_vkey = Vkey::new(origin, witness::note::ED25519_NOTE_TYPE, ledger_key.verifying_key()).unwrap();
    std::fs::write(&policy_file, format!("log {log_vkey}\n{policy}")).unwrap();
    assert_eq!(run(&note(&[0, 1]).to_note(), &[]).0, Some(0));
    std::fs::write(&policy_file, "quorum nobody\n").unwrap();
    let (code, out) = run(&note(&[0, 1]).to_note(), &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("line 1: quorum nobody is not defined"), "{out}");
}

/// Found by the `export_file` fuzz target: a 9 kB Parquet file whose dictionary page claims
/// 939,524,092 values (its column chunk: 3) made parquet-rs allocate gigabytes while decoding
/// it. `ExportReader::open` refuses it from the page headers, before anything decodes it, and
/// `ledger-audit verify` reports the file's structure as failed (exit 1) instead of exhausting
/// memory.
#[test]
fn a_parquet_page_claiming_more_values_than_its_chunk_is_refused_before_decoding() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/parquet-dictionary-claim.parquet");
    let Err(err) = ExportReader::open(&file) else { panic!("the file is refused") };
    assert!(err.to_string().contains("page claims"), "{err}");
    let out = ledger_audit().arg("verify").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("file structure check failed: row group 0"), "{out:?}");
}

/// Found by the `export_file` fuzz target (twice): Parquet files on whose page headers
/// parquet-rs 60's reader spun for 15 s and 19 s under the fuzzer (its Thrift reader takes the
/// end of a column chunk for zero bytes read, and "skips" a long list of an unknown field
/// element by element). Our own bounded reading of every header (`tools/src/parquet_pages.rs`,
/// whose unit tests build each shape byte by byte) refuses both before parquet-rs reads a
/// header, and the auditor says where. The third file's footer holds a container of booleans
/// in an unknown field (the hour of `export_file` fuzzing found it; parquet-rs skips the footer's
/// unknown fields the same way): `check_footer` reads the footer with its schema first.
#[test]
fn parquet_page_headers_parquet_rs_would_spin_on_are_refused_before_it_reads_them() {
    for (name, why) in [
        (
            "parquet-header-skip-past-chunk.parquet",
            "row group 0, column 1: page 1: field 8 of the page header is written as i64",
        ),
        ("parquet-data-page-header-skip.parquet", "row group 0, column"),
        // The footer: found by the hour of `export_file` fuzzing (2026-12-02), 3.3 s in
        // parquet-rs (instrumented; 0.8 s in `ledger-audit verify`) for 8.7 kB.
        ("parquet-footer-bool-skip.parquet", "the footer"),
    ] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
        let Err(err) = ExportReader::open(&file) else { panic!("{name} is refused") };
        let err = err.to_string();
        assert!(err.contains(why), "{name}: {err}");
        let out = ledger_audit().arg("verify").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
    }
}

/// Found by the `export_file` fuzz target: an Arrow IPC file whose footer lists a block far
/// beyond its end made arrow-ipc allocate (and zero) the block's declared length before reading
/// it: gigabytes from a few kB. `ExportReader::open` now refuses such a footer first, and
/// `ledger-audit verify` reports the structure as failed (exit 1).
#[test]
fn an_arrow_footer_listing_a_block_beyond_the_file_is_refused_before_anything_is_allocated() {
    let s = governed();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("entries.arrow");
    write_entries(&s.ledger, &good, Format::Arrow, 0, size(&s));
    let mut bytes = std::fs::read(&good).unwrap();
    // The footer sits before its length and "ARROW1"; its record batch blocks are 24-byte
    // structs (offset i64, metadata length i32, padding, body length i64).
    let tail = bytes.len() - 10;
    let footer_len = i32::from_le_bytes(bytes[tail..tail + 4].try_into().unwrap()) as usize;
    let footer_start = tail - footer_len;
    let footer = arrow::ipc::root_as_footer(&bytes[footer_start..tail]).unwrap();
    let block = footer.recordBatches().unwrap().get(0);
    let mut pattern = block.offset().to_le_bytes().to_vec();
    pattern.extend(block.metaDataLength().to_le_bytes());
    let at = bytes[footer_start..tail]
        .windows(pattern.len())
        .position(|w| w == pattern.as_slice())
        .expect("the block is in the footer")
        + footer_start;
    let body = at + 16;
    assert_eq!(i64::from_le_bytes(bytes[body..body + 8].try_into().unwrap()), block.bodyLength());
    bytes[body..body + 8].copy_from_slice(&(1i64 << 31).to_le_bytes());
    let bad = dir.path().join("huge-block.arrow");
    std::fs::write(&bad, &bytes).unwrap();

    let Err(err) = ExportReader::open(&bad) else { panic!("the file is refused") };
    assert!(err.to_string().contains("lists a block of"), "{err}");
    assert!(err.to_string().contains("2147483648 bytes"), "{err}");
    let out = ledger_audit().arg("verify").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // The file it came from still opens.
    assert!(ExportReader::open(&good).is_ok());
}
