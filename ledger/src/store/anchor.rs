//! The anchor: an fsynced high-water mark of every tenant's log, kept beside the store and
//! outside RocksDB (`DIR/anchor`, docs/format.md "The anchor").
//!
//! RocksDB's own files cannot vouch for themselves: a flipped byte in the WAL, a lost WAL
//! file or a damaged MANIFEST can make the store open *shorter* than it was, and the shorter
//! store is self-consistent (its heads, trees and checkpoints all agree). The anchor is the
//! witness that does not live in the same files. After every group commit's `sync=true`
//! write, and **before any receipt is sent**, the writer appends one record per tenant the
//! group touched — `(tid, size, chainHead)` — and `fdatasync`s it. So at every instant:
//!
//! ```text
//! acknowledged ≤ anchored ≤ durable in RocksDB
//! ```
//!
//! On open, every tenant must hold at least its anchored size, and its entry at
//! `size - 1` must hash to the anchored chain head; otherwise the store refuses to open,
//! naming the tenant and the lost range. A store *ahead* of its anchor by one group is the
//! normal trace of a crash between the two syncs (nothing of it was acknowledged).
//!
//! File layout: the 8-byte magic [`MAGIC`], then fixed 52-byte records
//! `tid u32 ‖ size u64 ‖ chainHead [32] ‖ check [8]`, where `check` is the first 8 bytes of
//! `BLAKE3("release-ledger/anchor/v1" ‖ tid ‖ size ‖ chainHead)`. A record that fails its
//! check is a torn write only if no valid record follows it (the tail of a write that never
//! completed, so never acknowledged); a bad record with valid ones after it is corruption.
//! The file is rewritten whole (temporary file, fsync, rename, directory fsync) at open and
//! whenever its records pass [`COMPACT_AT`] bytes (or twice what a rewrite wrote, with many
//! tenants). A rewrite zero-fills the file up to the next compaction, so each commit
//! *overwrites* bytes already allocated and its `fdatasync` flushes data only, not the file's
//! size (about 40–50 µs less per commit group on this project's benchmark disk, BENCHMARKS.md).
//! All-zero records are unwritten space: like a torn record, valid only after every valid one.
//! The price is the rewrite: 4 MiB written and fsynced on the writer thread (3.9 ms p50, 6.1 ms
//! at worst, on the benchmark disk), once every ~80,000 commit groups of a single tenant.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::hash::Hash32;

/// The anchor's file name inside the data dir.
pub const ANCHOR_FILE: &str = "anchor";
/// The first bytes of an anchor file (format version 1).
pub const MAGIC: &[u8; 8] = b"RLANCH01";
const DOMAIN: &[u8] = b"release-ledger/anchor/v1";
const RECORD_LEN: usize = 4 + 8 + 32 + 8;
/// The file is rewritten with one record per tenant once it grows past this size.
const COMPACT_AT: u64 = 4 << 20;

/// What the anchor says was acknowledged for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchoredHead {
    /// Entries acknowledged (at least).
    pub size: u64,
    /// Entry hash of seq `size - 1`.
    pub chain_head: Hash32,
}

/// The anchor file's content: the highest anchored head of every tenant id.
pub type AnchoredHeads = BTreeMap<u32, AnchoredHead>;

/// The anchor file could not be read or is damaged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnchorError {
    /// Reading it failed.
    #[error("anchor {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// Its bytes are not a valid anchor.
    #[error("anchor {path} is damaged at byte {offset}: {reason}")]
    Corrupted {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
}

fn check(tid: u32, size: u64, chain_head: &Hash32) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    hasher.update(&tid.to_be_bytes());
    hasher.update(&size.to_be_bytes());
    hasher.update(chain_head);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

fn encode_record(out: &mut Vec<u8>, tid: u32, head: &AnchoredHead) {
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&head.size.to_be_bytes());
    out.extend_from_slice(&head.chain_head);
    out.extend_from_slice(&check(tid, head.size, &head.chain_head));
}

fn decode_record(bytes: &[u8]) -> Option<(u32, AnchoredHead)> {
    if bytes.iter().all(|b| *b == 0) {
        // Preallocated, never written (no hash needed to tell).
        return None;
    }
    let tid = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let size = u64::from_be_bytes(bytes.get(4..12)?.try_into().ok()?);
    let chain_head: Hash32 = bytes.get(12..44)?.try_into().ok()?;
    (bytes.get(44..52)? == check(tid, size, &chain_head)).then_some((tid, AnchoredHead { size, chain_head }))
}

/// How a store falls short of one anchored head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shortfall {
    /// The store has no tenant with the anchored id.
    Missing,
    /// It holds fewer entries than were acknowledged.
    Shorter {
        /// Entries it holds.
        stored: u64,
    },
    /// The entry at the anchored size is not the one acknowledged.
    Rewritten {
        /// Its seq.
        seq: u64,
    },
    /// The entry at the anchored size could not be read.
    Unreadable {
        /// Its seq.
        seq: u64,
        /// Why.
        reason: String,
    },
}

/// The one comparison of a store with an anchored head, shared by open, `salvage` and the
/// fsck: `stored` is the tenant's size in the store (`None`: no such tenant) and `hash_at`
/// reads the entry hash at a seq. `None` when the store holds everything acknowledged.
pub fn shortfall(
    want: &AnchoredHead,
    stored: Option<u64>,
    hash_at: impl FnOnce(u64) -> Result<Hash32, String>,
) -> Option<Shortfall> {
    match stored {
        None => return Some(Shortfall::Missing),
        Some(stored) if stored < want.size => return Some(Shortfall::Shorter { stored }),
        Some(_) => {}
    }
    let seq = want.size - 1;
    match hash_at(seq) {
        Ok(hash) if hash == want.chain_head => None,
        Ok(_) => Some(Shortfall::Rewritten { seq }),
        Err(reason) => Some(Shortfall::Unreadable { seq, reason }),
    }
}

/// Parses an anchor file's bytes (see the module docs for the torn-tail rule).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<AnchoredHeads, AnchorError> {
    let corrupted = |offset: usize, reason: String| AnchorError::Corrupted {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < MAGIC.len() {
        // A crash while the file was first written leaves it short; its creator had not
        // finished, so nothing was anchored (and the store was not initialised either).
        if MAGIC.starts_with(bytes) {
            return Ok(AnchoredHeads::new());
        }
        return Err(corrupted(0, "not an anchor file (bad magic)".into()));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupted(0, "not an anchor file (bad magic)".into()));
    }
    let mut heads = AnchoredHeads::new();
    let mut first_bad: Option<usize> = None;
    let records = &bytes[MAGIC.len()..];
    for (index, record) in records.chunks(RECORD_LEN).enumerate() {
        let offset = MAGIC.len() + index * RECORD_LEN;
        match (record.len() == RECORD_LEN).then(|| decode_record(record)).flatten() {
            None => {
                first_bad.get_or_insert(offset);
            }
            Some((tid, head)) => {
                if let Some(bad) = first_bad {
                    return Err(corrupted(bad, format!("a damaged record precedes the valid record at byte {offset}")));
                }
                if let Some(previous) = heads.get(&tid) {
                    if previous.size > head.size {
                        return Err(corrupted(
                            offset,
                            format!("tenant id {tid} goes back from {} to {} entries", previous.size, head.size),
                        ));
                    }
                }
                heads.insert(tid, head);
            }
        }
    }
    Ok(heads)
}

/// Where an anchor file's records end: the offset after its last valid record (the magic's
/// length when it has none). Past it are torn or unwritten bytes.
pub fn records_end(bytes: &[u8]) -> u64 {
    let records = bytes.get(MAGIC.len()..).unwrap_or_default();
    let valid = records.chunks(RECORD_LEN).rposition(|record| decode_record(record).is_some());
    (MAGIC.len() + valid.map_or(0, |index| (index + 1) * RECORD_LEN)) as u64
}

/// Reads the anchor of a data dir; `None` when it has none.
pub fn read(data_dir: &Path) -> Result<Option<AnchoredHeads>, AnchorError> {
    let path = data_dir.join(ANCHOR_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(AnchorError::Io { path, cause }),
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|cause| AnchorError::Io { path: path.clone(), cause })?,
    };
    parse(&path, &bytes).map(Some)
}

/// The open anchor file the writer appends to.
#[derive(Debug)]
pub(crate) struct Anchor {
    file: File,
    data_dir: PathBuf,
    /// Where the next record goes.
    len: u64,
    /// When the records reach this length the file is rewritten.
    compact_at: u64,
    /// The newest anchored head of every tenant: what a compaction writes.
    heads: AnchoredHeads,
}

impl Anchor {
    /// The newest anchored head of every tenant.
    pub(crate) fn heads(&self) -> &AnchoredHeads {
        &self.heads
    }

    /// Writes a new anchor holding exactly `heads`, zero-filled up to its next compaction
    /// (temporary file, fsync, rename, directory fsync), and opens it for writing.
    pub(crate) fn create(data_dir: &Path, heads: AnchoredHeads) -> std::io::Result<Self> {
        let path = data_dir.join(ANCHOR_FILE);
        let temporary = data_dir.join(format!("{ANCHOR_FILE}.tmp"));
        let mut bytes = Vec::with_capacity(MAGIC.len() + heads.len() * RECORD_LEN);
        bytes.extend_from_slice(MAGIC);
        for (tid, head) in &heads {
            encode_record(&mut bytes, *tid, head);
        }
        let len = bytes.len() as u64;
        let compact_at = COMPACT_AT.max(2 * len);
        {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temporary)?;
            file.write_all(&bytes)?;
            // Written zeros, not a hole or `fallocate`: the commits' writes must find every
            // block allocated and written, or their fdatasync also commits the allocation.
            let zeros = vec![0u8; 1 << 16];
            let mut at = len;
            while at < compact_at {
                let n = (compact_at - at).min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                at += n as u64;
            }
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &path)?;
        File::open(data_dir)?.sync_all()?;
        let file = OpenOptions::new().write(true).open(&path)?;
        Ok(Self { file, data_dir: data_dir.to_path_buf(), len, compact_at, heads })
    }

    /// Records the new heads of a commit group and makes them durable. Called after the
    /// group's `sync=true` write and before any receipt: an error here must poison the
    /// writer, exactly like a failed commit.
    pub(crate) fn append(&mut self, updates: &[(u32, AnchoredHead)]) -> std::io::Result<()> {
        for (tid, head) in updates {
            self.heads.insert(*tid, *head);
        }
        if self.len >= self.compact_at {
            // On failure the writer is poisoned (no further appends), but keep `self` whole.
            *self = Self::create(&self.data_dir, self.heads.clone())?;
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(updates.len() * RECORD_LEN);
        for (tid, head) in updates {
            encode_record(&mut bytes, *tid, head);
        }
        self.file.write_all_at(&bytes, self.len)?;
        self.file.sync_data()?;
        self.len += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(size: u64, byte: u8) -> AnchoredHead {
        AnchoredHead { size, chain_head: [byte; 32] }
    }

    #[test]
    fn appended_records_read_back_as_the_newest_head_per_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::from([(0, head(3, 1))])).unwrap();
        anchor.append(&[(0, head(5, 2)), (1, head(1, 3))]).unwrap();
        anchor.append(&[(1, head(4, 4))]).unwrap();
        let read = read(dir.path()).unwrap().unwrap();
        assert_eq!(read, AnchoredHeads::from([(0, head(5, 2)), (1, head(4, 4))]));
        assert!(!dir.path().join("anchor.tmp").exists());
    }

    #[test]
    fn a_missing_anchor_is_none_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        anchor.append(&[(7, head(2, 9))]).unwrap();
        anchor.append(&[(7, head(3, 8))]).unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let file = std::fs::read(&path).unwrap();
        assert_eq!(file.len() as u64, COMPACT_AT, "preallocated");
        assert_eq!(records_end(&file), (MAGIC.len() + 2 * RECORD_LEN) as u64);
        assert_eq!(parse(&path, &file).unwrap()[&7], head(3, 8), "the zero-filled rest is unwritten space");
        let full = file[..records_end(&file) as usize].to_vec();
        // Every cut inside the last record (a write that never completed) reads as the head
        // before it; a zero-filled tail (a size update without its data) likewise.
        for cut in full.len() - RECORD_LEN + 1..full.len() {
            let heads = parse(&path, &full[..cut]).unwrap();
            assert_eq!(heads[&7], head(2, 9), "cut at {cut}");
        }
        let mut zeroed = full.clone();
        zeroed[full.len() - RECORD_LEN..].fill(0);
        assert_eq!(parse(&path, &zeroed).unwrap()[&7], head(2, 9));
        // A file cut inside its magic was never finished: nothing anchored.
        assert!(parse(&path, &full[..3]).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_record_before_a_valid_one_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        anchor.append(&[(1, head(2, 1))]).unwrap();
        anchor.append(&[(1, head(3, 2))]).unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let full = std::fs::read(&path).unwrap();
        for offset in MAGIC.len()..MAGIC.len() + RECORD_LEN {
            let mut bytes = full.clone();
            bytes[offset] ^= 0x40;
            let error = parse(&path, &bytes).unwrap_err();
            assert!(matches!(&error, AnchorError::Corrupted { offset: 8, .. }), "flip at {offset} gave {error}");
        }
        let mut bad_magic = full.clone();
        bad_magic[0] ^= 1;
        assert!(matches!(parse(&path, &bad_magic), Err(AnchorError::Corrupted { offset: 0, .. })));
    }

    #[test]
    fn a_head_that_goes_back_is_corruption() {
        let path = Path::new("anchor");
        let mut bytes = MAGIC.to_vec();
        encode_record(&mut bytes, 4, &head(9, 1));
        encode_record(&mut bytes, 4, &head(8, 1));
        assert!(matches!(parse(path, &bytes), Err(AnchorError::Corrupted { offset: 60, .. })));
    }

    #[test]
    fn shortfall_names_what_the_store_lacks() {
        let want = head(5, 7);
        let hash = |bytes: [u8; 32]| move |_| Ok::<_, String>(bytes);
        assert_eq!(shortfall(&want, None, hash([7; 32])), Some(Shortfall::Missing));
        assert_eq!(shortfall(&want, Some(4), hash([7; 32])), Some(Shortfall::Shorter { stored: 4 }));
        assert_eq!(shortfall(&want, Some(5), hash([8; 32])), Some(Shortfall::Rewritten { seq: 4 }));
        assert_eq!(
            shortfall(&want, Some(9), |_| Err("gone".to_owned())),
            Some(Shortfall::Unreadable { seq: 4, reason: "gone".into() })
        );
        assert_eq!(shortfall(&want, Some(9), hash([7; 32])), None);
    }

    #[test]
    fn compaction_keeps_every_tenant_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        anchor.len = COMPACT_AT;
        anchor.append(&[(1, head(2, 1)), (2, head(5, 2))]).unwrap();
        let bytes = std::fs::read(dir.path().join(ANCHOR_FILE)).unwrap();
        assert_eq!(records_end(&bytes), (MAGIC.len() + 2 * RECORD_LEN) as u64);
        assert_eq!(anchor.len, records_end(&bytes));
        anchor.append(&[(1, head(3, 3))]).unwrap();
        let heads = read(dir.path()).unwrap().unwrap();
        assert_eq!(heads, AnchoredHeads::from([(1, head(3, 3)), (2, head(5, 2))]));
    }

    #[test]
    fn commits_overwrite_the_preallocated_file_and_many_tenants_compact_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        for size in 1..=100 {
            anchor.append(&[(3, head(size, size as u8))]).unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, COMPACT_AT, "the file does not grow");
        assert_eq!(records_end(&bytes), (MAGIC.len() + 100 * RECORD_LEN) as u64);
        assert_eq!(read(dir.path()).unwrap().unwrap()[&3], head(100, 100));
        // A valid record after unwritten space is corruption, as after a torn one.
        let mut late = bytes.clone();
        let at = MAGIC.len() + 200 * RECORD_LEN;
        let mut record = Vec::new();
        encode_record(&mut record, 3, &head(101, 1));
        late[at..at + RECORD_LEN].copy_from_slice(&record);
        assert!(matches!(parse(&path, &late), Err(AnchorError::Corrupted { .. })));
        // A rewrite holding more than half of COMPACT_AT leaves room for as many again.
        let many: AnchoredHeads = (0..(COMPACT_AT / RECORD_LEN as u64) as u32).map(|tid| (tid, head(1, 1))).collect();
        let anchor = Anchor::create(dir.path(), many).unwrap();
        assert_eq!(anchor.compact_at, 2 * anchor.len);
        assert!(anchor.len < anchor.compact_at);
    }
}
