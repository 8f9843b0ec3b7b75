//! Integrity below the log: the anchor, strict WAL recovery, corruption as `DATA_LOSS` with
//! its seq, the free-space reserve, and salvage. Faults are made where they happen: bytes of
//! RocksDB's own files on disk, files removed or replaced while the store is closed.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use ledger::store::anchor;
use ledger::{AppendError, Config, ErrorKind, Ledger, ManualClock, OpenError, ReadError, Receipt};
use testkit::gov::copy_dir;
use testkit::{must_append, temp_ledger_with, Agent, TestLedger};

const TENANT: &str = "integrity";

/// A ledger with `count` events of one agent appended one request at a time, closed.
fn filled(count: usize) -> (TestLedger, Agent, Vec<Receipt>) {
    filled_with(count, Config::default())
}

fn filled_with(count: usize, config: Config) -> (TestLedger, Agent, Vec<Receipt>) {
    let t = temp_ledger_with(config);
    let agent = t.agent(TENANT, "ci", &[], &[]);
    let receipts = (0..count).map(|i| must_append(&t.ledger, agent.event("svc", 100 + i))).collect();
    (t, agent, receipts)
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// A closed data dir, the clock its ledger read and its anchor's capacity.
struct Closed {
    dir: tempfile::TempDir,
    clock: Arc<ManualClock>,
    anchor_capacity: u64,
}

fn close(t: TestLedger) -> Closed {
    let anchor_capacity = t.ledger.config().anchor_capacity;
    let TestLedger { ledger, dir, clock, .. } = t;
    drop(ledger);
    Closed { dir, clock, anchor_capacity }
}

impl Closed {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> Config {
        Config { clock: self.clock.clone(), anchor_capacity: self.anchor_capacity, ..Config::default() }
    }

    fn open(&self) -> Result<Ledger, OpenError> {
        Ledger::open(self.path(), self.config())
    }

    /// A copy of its `db/` as it is now.
    fn copy_db(&self) -> tempfile::TempDir {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(&self.path().join("db"), copy.path());
        copy
    }

    /// Puts an older copy of `db/` back (what a disk that lost writes, or a stale restore, holds).
    fn put_back_db(&self, copy: &tempfile::TempDir) {
        std::fs::remove_dir_all(self.path().join("db")).unwrap();
        copy_dir(copy.path(), &self.path().join("db"));
    }

    /// Opens and closes the store once: open makes everything durable in RocksDB and rewrites
    /// the anchor as a snapshot of heads, so the anchor no longer holds any group to replay.
    fn settle(&self) {
        drop(self.open().unwrap());
        assert!(anchor::read_log(self.path()).unwrap().unwrap().groups.is_empty());
    }
}

/// An anchor so small that nearly every group rolls it (syncing RocksDB's WAL): the WAL then
/// holds acknowledged groups that the anchor no longer records.
const TINY_ANCHOR: u64 = 4096;

fn xor_byte(path: &Path, offset: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// One byte flipped at 32 places spread over the WAL's middle half of a closed store (21
/// entries appended one at a time); each trial must refuse to open with `DATA_LOSS` and a
/// recovery hint, or open whole: never shorter. Returns how many trials were refused.
fn flip_wal_bytes(closed: &Closed, receipts: &[Receipt]) -> usize {
    let wals = files_with_suffix(&closed.path().join("db"), ".log");
    let wal = wals.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let pristine = std::fs::read(wal).unwrap();
    assert!(pristine.len() > 4096, "the WAL holds the appends ({} bytes)", pristine.len());
    let mut refused = 0;
    for step in 0..32 {
        let offset = pristine.len() / 4 + step * (pristine.len() / 2) / 32;
        let trial = tempfile::tempdir().unwrap();
        copy_dir(closed.path(), trial.path());
        xor_byte(&trial.path().join("db").join(wal.file_name().unwrap()), offset, 0x20);
        match Ledger::open(trial.path(), closed.config()) {
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::DataLoss, "offset {offset}: {error}");
                assert!(error.to_string().contains("salvage"), "offset {offset}: no recovery hint in {error}");
                refused += 1;
            }
            Ok(reopened) => {
                // Only a flip that changed nothing the log holds may open: every entry is there.
                let head = reopened.head(TENANT).unwrap();
                assert_eq!(head.size, 21, "offset {offset}: the log opened shorter");
                assert_eq!(head.chain_head, receipts.last().unwrap().entry_hash, "offset {offset}");
                reopened.verify_tenant(TENANT).unwrap();
            }
        }
    }
    refused
}

/// The reproduction: 21 events one at a time, a graceful stop, one byte of the WAL
/// flipped. Before the fix the store opened shorter (10 entries) without a word and handed
/// out seq 10 again. Here the groups after the flip are no longer in the anchor (a tiny
/// anchor rolls at nearly every group, syncing the WAL): every flip inside a WAL record that
/// RocksDB alone held is refused.
#[test]
fn a_flipped_wal_byte_refuses_to_open_instead_of_shortening_the_log() {
    let (t, _agent, receipts) = filled_with(20, Config { anchor_capacity: TINY_ANCHOR, ..Config::default() });
    assert_eq!(receipts.last().unwrap().seq, 20);
    let closed = close(t);
    let refused = flip_wal_bytes(&closed, &receipts);
    assert!(refused >= 28, "only {refused} of 32 flips in WAL records were refused");
}

/// The same flips while the anchor still records every group since the store was opened (its
/// default capacity): RocksDB's WAL is then not the log of record, and open recovers it to the
/// last intact record and replays the groups after it from the anchor. Every trial opens whole.
#[test]
fn a_flipped_wal_byte_inside_the_anchors_groups_is_replayed_whole() {
    let (t, _agent, receipts) = filled(20);
    let closed = close(t);
    assert_eq!(anchor::read_log(closed.path()).unwrap().unwrap().groups.len(), 21);
    let refused = flip_wal_bytes(&closed, &receipts);
    assert_eq!(refused, 0, "{refused} of 32 flips were refused although the anchor holds every group");
}

/// Power loss with RocksDB's WAL unsynced, modelled on the files: an older copy of `db/` (what
/// the disk held) beside the anchor that recorded every later group. Open replays the lost
/// groups — including one that created a second tenant — and the store is whole: same heads,
/// same entries, verifying, and its index rows found; a second open has nothing to replay.
#[test]
fn groups_rocksdb_lost_are_replayed_from_the_anchor() {
    let (t, agent, _) = filled(4);
    let closed = close(t);
    let old = closed.copy_db();
    let ledger = closed.open().unwrap();
    let ids: Vec<String> = (0..8).map(|i| format!("replayed-{i}")).collect();
    let mut receipts: Vec<Receipt> =
        ids[..3].iter().map(|id| must_append(&ledger, agent.event_with_id("svc", id, 300))).collect();
    receipts.extend(
        ledger.append_batch(ids[3..].iter().map(|id| agent.event_with_id("batch", id, 400)).collect()).unwrap(),
    );
    let admin = ledger::KeyPair::load(&closed.path().join("keys/admin.pem")).unwrap();
    let other = testkit::register_key_body("second-tenant", "qa", &ledger::KeyPair::generate(), &[], &[]);
    let other = must_append(&ledger, ledger::AppendEvent::new(ledger::Envelope::sign(other, &admin)));
    let head = ledger.head(TENANT).unwrap();
    assert_eq!(head.size, 13);
    drop(ledger);
    assert_eq!(anchor::read_log(closed.path()).unwrap().unwrap().groups.len(), 5);
    closed.put_back_db(&old);

    let reopened = closed.open().unwrap();
    assert_eq!(reopened.head(TENANT).unwrap(), head);
    for (id, receipt) in ids.iter().zip(&receipts) {
        assert_eq!(reopened.entry(TENANT, receipt.seq).unwrap().entry_hash, receipt.entry_hash);
        // The index rows came back with the entries.
        assert_eq!(reopened.entry_by_event_id(TENANT, id).unwrap().unwrap().seq, receipt.seq);
    }
    assert_eq!(reopened.entry("second-tenant", other.seq).unwrap().entry_hash, other.entry_hash);
    assert_eq!(reopened.verify_tenant(TENANT).unwrap().entries, 13);
    reopened.verify_tenant("second-tenant").unwrap();
    drop(reopened);
    assert!(anchor::read_log(closed.path()).unwrap().unwrap().groups.is_empty(), "the new anchor is a snapshot");
    assert_eq!(closed.open().unwrap().head(TENANT).unwrap(), head);
}

#[test]
fn a_store_shorter_than_its_anchor_refuses_to_open_and_names_the_lost_range() {
    let (t, agent, _) = filled(4);
    let closed = close(t);
    let old = closed.copy_db();
    let ledger = closed.open().unwrap();
    for i in 0..3 {
        let _ = must_append(&ledger, agent.event("svc", 300 + i));
    }
    assert_eq!(ledger.head(TENANT).unwrap().size, 8);
    drop(ledger);
    closed.settle();
    // An older copy of db/ put back (a restore of a stale backup, a lost WAL): self-consistent,
    // shorter than what was acknowledged, and older than anything the anchor can replay.
    closed.put_back_db(&old);
    match closed.open() {
        Err(OpenError::Lost { tenant, stored, acknowledged, reason }) => {
            assert_eq!((tenant.as_str(), stored, acknowledged), (TENANT, 5, 8));
            assert_eq!(reason, "entries 5..8 are missing");
        }
        other => panic!("expected Lost, got {other:?}"),
    }
}

#[test]
fn a_deleted_wal_is_detected() {
    let (t, _agent, _) = filled(6);
    let closed = close(t);
    let wals = files_with_suffix(&closed.path().join("db"), ".log");
    assert!(!wals.is_empty());
    for wal in wals {
        std::fs::remove_file(wal).unwrap();
    }
    let error = closed.open().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DataLoss, "{error}");
    assert!(matches!(error, OpenError::Lost { .. } | OpenError::Corrupted(_)), "{error:?}");
}

#[test]
fn an_emptied_store_beside_its_anchor_refuses_to_open() {
    let (t, _agent, _) = filled(2);
    let closed = close(t);
    std::fs::remove_dir_all(closed.path().join("db")).unwrap();
    let error = closed.open().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the store is empty, but its anchor records 1 tenant(s) with 3 acknowledged entries"),
        "{error}"
    );
}

#[test]
fn a_missing_anchor_refuses_to_open_once_the_store_was_anchored() {
    let (t, _agent, _) = filled(2);
    let closed = close(t);
    std::fs::remove_file(closed.path().join(anchor::ANCHOR_FILE)).unwrap();
    let error = closed.open().unwrap_err();
    assert!(error.to_string().contains("anchor file") && error.to_string().contains("is missing"), "{error}");
}

#[test]
fn the_anchor_follows_every_acknowledged_commit() {
    let (t, agent, receipts) = filled(3);
    let anchored = anchor::read(t.dir.path()).unwrap().unwrap();
    let head = anchored.values().next().unwrap();
    assert_eq!((head.size, head.chain_head), (4, receipts.last().unwrap().entry_hash));
    let batch: Vec<_> = (0..5).map(|i| agent.event("svc", 50 + i)).collect();
    let last = t.ledger.append_batch(batch).unwrap().pop().unwrap();
    let anchored = anchor::read(t.dir.path()).unwrap().unwrap();
    assert_eq!(anchored.values().next().unwrap().size, last.seq + 1);
    assert_eq!(anchored.values().next().unwrap().chain_head, last.entry_hash);
}

#[test]
fn salvage_keeps_what_verifies_records_the_loss_and_opens_again() {
    let (t, agent, _) = filled(4);
    let closed = close(t);
    let old = closed.copy_db();
    let ledger = closed.open().unwrap();
    for i in 0..2 {
        let _ = must_append(&ledger, agent.event("svc", 400 + i));
    }
    drop(ledger);
    closed.settle();
    closed.put_back_db(&old);
    assert!(matches!(closed.open(), Err(OpenError::Lost { .. })));

    let report = ledger::store::salvage(closed.path(), closed.config()).unwrap();
    assert!(report.lost_anything());
    assert_eq!(report.tenants.len(), 1);
    let tenant = &report.tenants[0];
    assert_eq!((tenant.tenant.as_str(), tenant.kept, tenant.acknowledged), (TENANT, 5, Some(7)));
    assert_eq!(tenant.lost.as_deref(), Some("entries 5..7 (2 acknowledged entries)"));
    assert!(report.backup.join("CURRENT").exists(), "the untouched copy of db/ is kept");

    let reopened = closed.open().unwrap();
    assert_eq!(reopened.head(TENANT).unwrap().size, 5);
    reopened.verify_tenant(TENANT).unwrap();
    // The next append takes seq 5 again: that is what the salvage record is for.
    assert_eq!(must_append(&reopened, agent.event("svc", 500)).seq, 5);
}

#[test]
fn salvage_of_an_intact_store_loses_nothing() {
    let (t, _agent, _) = filled(3);
    let closed = close(t);
    let report = ledger::store::salvage(closed.path(), closed.config()).unwrap();
    assert!(!report.lost_anything(), "{report:?}");
    assert_eq!(report.tenants[0].kept, 4);
    assert_eq!(closed.open().unwrap().head(TENANT).unwrap().size, 4);
}

/// After a reopen RocksDB has moved the WAL into an SST; damage in that SST's data blocks is
/// reported on read as `DATA_LOSS` naming the seq (before, it was a storage error without a
/// seq: `INTERNAL`), and no read returns changed content.
#[test]
fn sst_corruption_is_data_loss_naming_the_seq() {
    let (t, _agent, receipts) = filled(40);
    let closed = close(t.reopen());
    let ssts = files_with_suffix(&closed.path().join("db"), ".sst");
    let sst = ssts.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap().clone();
    let length = std::fs::metadata(&sst).unwrap().len() as usize;
    // Data blocks come first in an SST; flip bytes across its first half.
    for step in 0..8 {
        xor_byte(&sst, length / 32 + step * length / 16, 0x01);
    }
    // Opening reads only the index and filter blocks at the SST's end, so it succeeds.
    let ledger = closed.open().unwrap();
    let mut corrupted = 0;
    for receipt in std::iter::once(0).chain(receipts.iter().map(|r| r.seq)) {
        match ledger.entry(TENANT, receipt) {
            Ok(entry) => {
                if let Some(original) = receipts.iter().find(|r| r.seq == receipt) {
                    assert_eq!(entry.entry_hash, original.entry_hash, "seq {receipt} served changed");
                }
            }
            Err(ReadError::Corrupted { seq, reason }) => {
                assert_eq!(seq, receipt);
                assert!(!reason.is_empty());
                corrupted += 1;
            }
            Err(other) => panic!("seq {receipt}: expected Corrupted, got {other:?}"),
        }
    }
    let ranged: Vec<_> = ledger.entries(TENANT, 0, u64::MAX).unwrap().collect();
    if let Some(Err(error)) = ranged.last() {
        assert_eq!(error.kind(), ErrorKind::DataLoss, "{error}");
    }
    assert!(corrupted > 0 || ranged.iter().any(Result::is_err), "eight flipped bytes in the SST went unnoticed");
}

#[test]
fn appends_are_refused_below_the_free_space_reserve_and_reads_go_on() {
    let (t, agent, receipts) = filled(2);
    let before = t.ledger.head(TENANT).unwrap();
    let closed = close(t);
    // A reserve larger than any disk here: the filesystem is "full" for the ledger.
    let ledger = Ledger::open(closed.path(), Config { min_free_bytes: u64::MAX, ..closed.config() }).unwrap();
    match ledger.append(agent.event("svc", 10)) {
        Err(error @ AppendError::DiskFull { .. }) => {
            assert_eq!(error.kind(), ErrorKind::ResourceExhausted);
            assert!(error.to_string().contains("below the 18446744073709551615-byte reserve"), "{error}");
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    assert_eq!(ledger.head(TENANT).unwrap(), before, "a refused append stored nothing");
    assert_eq!(ledger.entry(TENANT, receipts[1].seq).unwrap().entry_hash, receipts[1].entry_hash);
    drop(ledger);
    // Space "freed" (the reserve lowered): appends go on with the next seq.
    let ledger = Ledger::open(closed.path(), Config { min_free_bytes: 1, ..closed.config() }).unwrap();
    assert_eq!(must_append(&ledger, agent.event("svc", 11)).seq, before.size);
}
