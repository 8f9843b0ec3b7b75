//! The anchor: the log of record of every commit group, and the fsynced high-water mark of
//! every tenant's log, kept beside the store and outside RocksDB (`DIR/anchor`, docs/format.md
//! "The anchor").
//!
//! RocksDB's own files cannot vouch for themselves: a flipped byte in the WAL, a lost WAL
//! file or a damaged MANIFEST can make the store open *shorter* than it was, and the shorter
//! store is self-consistent (its heads, trees and checkpoints all agree). The anchor is the
//! witness that does not live in the same files. Every commit group writes its `WriteBatch`
//! to RocksDB **without** a sync (into the WAL and the page cache: a killed process loses
//! nothing), then appends one record to the anchor — each touched tenant's `(tid, size,
//! chainHead)` **and the group's batch bytes** — and `fdatasync`s it, **before any receipt**.
//! One flush per commit, and at every instant:
//!
//! ```text
//! acknowledged ≤ anchored ≤ durable in RocksDB + the anchor's own group records
//! ```
//!
//! On open, groups that RocksDB lost (an unsynced WAL tail after power loss) are replayed from
//! the anchor ([`AnchorLog::plan`]); then every tenant must hold at least its anchored size, and
//! its entry at `size - 1` must hash to the anchored chain head; otherwise the store refuses to
//! open, naming the tenant and the lost range. A store *ahead* of its anchor by one group is
//! the normal trace of a crash between the write and the anchor's sync (nothing of it was
//! acknowledged).
//!
//! The file holds a fixed capacity ([`CAPACITY`]), written in full when it was made, so each
//! commit *overwrites* allocated bytes and its `fdatasync` flushes data, not the file's size.
//! When a record does not fit, the anchor **rolls**: RocksDB's WAL is synced (every group so
//! far is then durable in RocksDB itself), a snapshot of every tenant's head is written at the
//! start of the spare file `DIR/anchor.spare` (the previous anchor, recycled) under a fresh
//! random nonce, and the spare replaces `DIR/anchor` (hard link of the old one to
//! `anchor.prev`, rename, rename back to `anchor.spare`, directory fsync: `DIR/anchor` is a
//! whole, valid anchor at every instant).
//!
//! Format 2: the header `"RLANCH02" ‖ nonce u64 ‖ BLAKE3(DOMAIN ‖ "header" ‖ nonce)[..8]`,
//! then records at 8-byte aligned offsets:
//!
//! ```text
//! len u32 ‖ tag u32 ‖ body[len] ‖ BLAKE3(DOMAIN ‖ nonce ‖ len ‖ body)[..16] ‖ zero padding to 8
//! body = count u32 ‖ count × (tid u32 ‖ size u64 ‖ chainHead[32]) ‖ the group's WriteBatch
//! ```
//!
//! `tag` is a cheap function of the nonce and `len` that lets a scan skip offsets that cannot
//! start a record; the BLAKE3 check decides. A record of another nonce (a recycled file's stale
//! bytes) or of zeros never checks. The first record that fails its check ends the log; it is
//! a torn write only if **no valid record follows it anywhere in the file** (every 8-byte
//! offset is tried), otherwise the anchor is corrupted and open refuses. Format 1 (fixed
//! 52-byte head records, no batches) is still read, and rewritten as format 2 at open.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::hash::Hash32;

/// The anchor's file name inside the data dir.
pub const ANCHOR_FILE: &str = "anchor";
/// The recycled file the anchor rolls into.
pub const SPARE_FILE: &str = "anchor.spare";
/// A hard link to the anchor during a roll (removed when it completes, or at the next open).
const PREVIOUS_FILE: &str = "anchor.prev";
/// The first bytes of an anchor file (format 2).
pub const MAGIC: &[u8; 8] = b"RLANCH02";
/// The first bytes of a format 1 anchor file (heads only; still read).
pub const MAGIC_V1: &[u8; 8] = b"RLANCH01";
const DOMAIN: &[u8] = b"release-ledger/anchor/v2";
const DOMAIN_V1: &[u8] = b"release-ledger/anchor/v1";
const HEADER_LEN: usize = 24;
const RECORD_HEAD_LEN: usize = 8;
const CHECK_LEN: usize = 16;
const HEAD_LEN: usize = 4 + 8 + 32;
const RECORD_LEN_V1: usize = 4 + 8 + 32 + 8;
/// The size of an anchor file: records fill it, then it rolls. A roll syncs RocksDB's WAL,
/// whose writeback RocksDB starts every MiB (`wal_bytes_per_sync`), so little is left to flush.
pub const CAPACITY: u64 = 8 << 20;

/// What the anchor says was acknowledged for one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchoredHead {
    /// Entries acknowledged (at least).
    pub size: u64,
    /// Entry hash of seq `size - 1`.
    pub chain_head: Hash32,
}

/// The anchor file's heads: the highest anchored head of every tenant id.
pub type AnchoredHeads = BTreeMap<u32, AnchoredHead>;

/// One commit group as the anchor recorded it: the heads it left and its `WriteBatch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchoredGroup {
    /// Where its record starts in the file.
    pub offset: u64,
    /// Each touched tenant's head after the group.
    pub heads: Vec<(u32, AnchoredHead)>,
    /// The group's `WriteBatch` (RocksDB's serialised form).
    pub batch: Vec<u8>,
}

/// An anchor file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnchorLog {
    /// The newest anchored head of every tenant.
    pub heads: AnchoredHeads,
    /// The snapshot the file starts with (every tenant's head when it was written).
    pub snapshot: AnchoredHeads,
    /// The groups recorded since, in commit order.
    pub groups: Vec<AnchoredGroup>,
    /// Where the valid records end (past it: torn or unwritten bytes).
    pub end: u64,
}

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

fn header_check(nonce: u64) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    hasher.update(b"header");
    hasher.update(&nonce.to_be_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

fn tag(nonce: u64, len: u32) -> u32 {
    ((nonce as u32) ^ ((nonce >> 32) as u32) ^ len).wrapping_mul(0x9E37_79B1)
}

fn record_check(nonce: u64, body: &[u8]) -> [u8; CHECK_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    hasher.update(&nonce.to_be_bytes());
    hasher.update(&(body.len() as u32).to_be_bytes());
    hasher.update(body);
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_LEN]);
    out
}

fn align8(at: usize) -> usize {
    at.div_ceil(8) * 8
}

/// A fresh nonce whose tag of a zero length is not zero, so zeros never pass the tag.
fn new_nonce() -> u64 {
    use rand_core::RngCore as _;
    loop {
        let nonce = rand_core::OsRng.next_u64();
        if tag(nonce, 0) != 0 {
            return nonce;
        }
    }
}

fn encode_header(out: &mut Vec<u8>, nonce: u64) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(&header_check(nonce));
}

/// Appends one record (heads, then `batch`) to `out`, padded to 8 bytes.
fn encode_record<'a>(
    out: &mut Vec<u8>,
    nonce: u64,
    heads: impl ExactSizeIterator<Item = (u32, &'a AnchoredHead)>,
    batch: &[u8],
) -> std::io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEAD_LEN]);
    out.extend_from_slice(&(heads.len() as u32).to_be_bytes());
    for (tid, head) in heads {
        out.extend_from_slice(&tid.to_be_bytes());
        out.extend_from_slice(&head.size.to_be_bytes());
        out.extend_from_slice(&head.chain_head);
    }
    out.extend_from_slice(batch);
    let len = u32::try_from(out.len() - start - RECORD_HEAD_LEN)
        .map_err(|_| std::io::Error::other("a commit group of more than 4 GiB cannot be anchored"))?;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&tag(nonce, len).to_be_bytes());
    let check = record_check(nonce, &out[start + RECORD_HEAD_LEN..]);
    out.extend_from_slice(&check);
    out.resize(start + align8(out.len() - start), 0);
    Ok(())
}

/// The body of the valid record at `at`, and where the next record starts.
fn record_at(bytes: &[u8], at: usize, nonce: u64) -> Option<(&[u8], usize)> {
    let head = bytes.get(at..at.checked_add(RECORD_HEAD_LEN)?)?;
    let len = u32::from_be_bytes(head[..4].try_into().ok()?);
    if u32::from_be_bytes(head[4..].try_into().ok()?) != tag(nonce, len) {
        return None;
    }
    let body_start = at + RECORD_HEAD_LEN;
    let body_end = body_start.checked_add(len as usize)?;
    let body = bytes.get(body_start..body_end)?;
    let check = bytes.get(body_end..body_end.checked_add(CHECK_LEN)?)?;
    (check == record_check(nonce, body)).then_some((body, align8(body_end + CHECK_LEN)))
}

/// A record's body: the heads it records, and the group's batch bytes after them.
type Body<'a> = (Vec<(u32, AnchoredHead)>, &'a [u8]);

fn decode_body(body: &[u8]) -> Option<Body<'_>> {
    let count = u32::from_be_bytes(body.get(..4)?.try_into().ok()?) as usize;
    let heads_end = count.checked_mul(HEAD_LEN)?.checked_add(4)?;
    let heads = body
        .get(4..heads_end)?
        .chunks_exact(HEAD_LEN)
        .map(|head| {
            let tid = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
            let size = u64::from_be_bytes(head[4..12].try_into().expect("8 bytes"));
            let chain_head: Hash32 = head[12..].try_into().expect("32 bytes");
            (tid, AnchoredHead { size, chain_head })
        })
        .collect();
    Some((heads, &body[heads_end..]))
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

/// What open must do with a store whose tenants hold `stored(tid)` entries (`None`: no such
/// tenant) to reach the anchor: the groups RocksDB lost, to replay in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Index into [`AnchorLog::groups`] of the first group to replay (`groups.len()`: none).
    pub replay_from: usize,
    /// The head each replayed tenant must have before the replay (its entry at `size - 1`
    /// must hash to `chain_head`; absent: the tenant is created by a replayed group).
    pub before: BTreeMap<u32, Option<AnchoredHead>>,
}

impl AnchorLog {
    /// Splits the groups into those the store holds and those it lost. The store holds a
    /// group when every tenant it touched holds at least the group's size (a group is one
    /// atomic `WriteBatch`); it lost it when every such tenant holds exactly what the anchor
    /// recorded before the group. Held groups must all come before lost ones (RocksDB recovers
    /// a prefix of its writes). Anything else is a store the anchor cannot explain: the error
    /// names the tenant id and sizes.
    pub fn plan(&self, stored: impl Fn(u32) -> Option<u64>) -> Result<Plan, String> {
        let mut known: BTreeMap<u32, AnchoredHead> = self.snapshot.clone();
        let mut replay_from = None;
        let mut before = BTreeMap::new();
        // The store's sizes as the replay so far leaves them.
        let mut replayed: BTreeMap<u32, u64> = BTreeMap::new();
        let stored = |tid: u32, replayed: &BTreeMap<u32, u64>| replayed.get(&tid).copied().or_else(|| stored(tid));
        for (index, group) in self.groups.iter().enumerate() {
            let held =
                group.heads.iter().all(|(tid, head)| stored(*tid, &replayed).is_some_and(|size| size >= head.size));
            let lost =
                group.heads.iter().all(|(tid, _)| stored(*tid, &replayed) == known.get(tid).map(|head| head.size));
            // A group that changed no size is both held and lost: replaying it (puts of the
            // same rows) is harmless, and needed once a group before it was lost.
            if held && replay_from.is_none() {
                // The store holds it.
            } else if lost {
                replay_from.get_or_insert(index);
                for (tid, head) in &group.heads {
                    before.entry(*tid).or_insert_with(|| known.get(tid).copied());
                    replayed.insert(*tid, head.size);
                }
            } else if held {
                return Err(format!(
                    "the store holds the anchored group at byte {} but not one anchored before it",
                    group.offset
                ));
            } else {
                let (tid, head) = group
                    .heads
                    .iter()
                    .find(|(tid, head)| {
                        let size = stored(*tid, &replayed);
                        size.is_none_or(|size| size < head.size) && size != known.get(tid).map(|h| h.size)
                    })
                    .unwrap_or(&group.heads[0]);
                return Err(format!(
                    "tenant id {tid} holds {} entries, neither the {} the anchored group at byte {} \
                     follows nor the {} it leaves",
                    stored(*tid, &replayed).map_or("no".to_owned(), |size| size.to_string()),
                    known.get(tid).map_or(0, |h| h.size),
                    group.offset,
                    head.size
                ));
            }
            for (tid, head) in &group.heads {
                known.insert(*tid, *head);
            }
        }
        Ok(Plan { replay_from: replay_from.unwrap_or(self.groups.len()), before })
    }
}

/// Parses an anchor file's bytes (see the module docs for the torn-tail rule).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<AnchorLog, AnchorError> {
    let corrupted = |offset: usize, reason: String| AnchorError::Corrupted {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < MAGIC.len() {
        // A crash while the file was first written leaves it short; its creator had not
        // finished, so nothing was anchored (and the store was not initialised either).
        if MAGIC.starts_with(bytes) || MAGIC_V1.starts_with(bytes) {
            return Ok(AnchorLog::default());
        }
        return Err(corrupted(0, "not an anchor file (bad magic)".into()));
    }
    if &bytes[..MAGIC.len()] == MAGIC_V1 {
        return parse_v1(path, bytes);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupted(0, "not an anchor file (bad magic)".into()));
    }
    let nonce = match bytes.get(8..16).zip(bytes.get(16..HEADER_LEN)) {
        Some((nonce, check)) => {
            let nonce = u64::from_be_bytes(nonce.try_into().expect("8 bytes"));
            if check != header_check(nonce) {
                return Err(corrupted(8, "the header fails its check".into()));
            }
            nonce
        }
        None => return Err(corrupted(bytes.len(), "the header is cut short".into())),
    };
    let mut log = AnchorLog::default();
    let mut at = HEADER_LEN;
    let mut first = true;
    while let Some((body, next)) = record_at(bytes, at, nonce) {
        let Some((heads, batch)) = decode_body(body) else {
            return Err(corrupted(at, "a record's body does not decode".into()));
        };
        for (tid, head) in &heads {
            if let Some(previous) = log.heads.get(tid) {
                if previous.size > head.size {
                    return Err(corrupted(
                        at,
                        format!("tenant id {tid} goes back from {} to {} entries", previous.size, head.size),
                    ));
                }
            }
            log.heads.insert(*tid, *head);
        }
        if first {
            if !batch.is_empty() {
                return Err(corrupted(at, "the first record is not a snapshot of heads".into()));
            }
            log.snapshot = log.heads.clone();
            first = false;
        } else if heads.is_empty() || batch.is_empty() {
            return Err(corrupted(at, "a group record without a tenant or without a batch".into()));
        } else {
            log.groups.push(AnchoredGroup { offset: at as u64, heads, batch: batch.to_vec() });
        }
        at = next;
    }
    if first {
        return Err(corrupted(at, "the snapshot record after the header fails its check".into()));
    }
    log.end = at as u64;
    // The first record that fails its check ends the log: torn only if nothing valid follows.
    let mut later = at + 8;
    while later + RECORD_HEAD_LEN <= bytes.len() {
        if record_at(bytes, later, nonce).is_some() {
            return Err(corrupted(at, format!("a damaged record precedes the valid record at byte {later}")));
        }
        later += 8;
    }
    Ok(log)
}

fn check_v1(tid: u32, size: u64, chain_head: &Hash32) -> [u8; 8] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN_V1);
    hasher.update(&tid.to_be_bytes());
    hasher.update(&size.to_be_bytes());
    hasher.update(chain_head);
    let mut out = [0u8; 8];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    out
}

fn decode_record_v1(bytes: &[u8]) -> Option<(u32, AnchoredHead)> {
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let tid = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?);
    let size = u64::from_be_bytes(bytes.get(4..12)?.try_into().ok()?);
    let chain_head: Hash32 = bytes.get(12..44)?.try_into().ok()?;
    (bytes.get(44..52)? == check_v1(tid, size, &chain_head)).then_some((tid, AnchoredHead { size, chain_head }))
}

/// Format 1: fixed 52-byte records `tid ‖ size ‖ chainHead ‖ check[8]` after the magic.
fn parse_v1(path: &Path, bytes: &[u8]) -> Result<AnchorLog, AnchorError> {
    let corrupted = |offset: usize, reason: String| AnchorError::Corrupted {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut heads = AnchoredHeads::new();
    let mut first_bad: Option<usize> = None;
    let mut end = MAGIC_V1.len();
    for (index, record) in bytes[MAGIC_V1.len()..].chunks(RECORD_LEN_V1).enumerate() {
        let offset = MAGIC_V1.len() + index * RECORD_LEN_V1;
        match (record.len() == RECORD_LEN_V1).then(|| decode_record_v1(record)).flatten() {
            None => {
                first_bad.get_or_insert(offset);
            }
            Some((tid, head)) => {
                if let Some(bad) = first_bad {
                    return Err(corrupted(bad, format!("a damaged record precedes the valid record at byte {offset}")));
                }
                if heads.get(&tid).is_some_and(|previous: &AnchoredHead| previous.size > head.size) {
                    return Err(corrupted(
                        offset,
                        format!("tenant id {tid} goes back from {} to {} entries", heads[&tid].size, head.size),
                    ));
                }
                heads.insert(tid, head);
                end = offset + RECORD_LEN_V1;
            }
        }
    }
    Ok(AnchorLog { snapshot: heads.clone(), heads, groups: Vec::new(), end: end as u64 })
}

/// Where an anchor file's valid records end (0 when it does not parse). Past it are torn or
/// unwritten bytes, or a recycled file's stale ones.
pub fn records_end(bytes: &[u8]) -> u64 {
    parse(Path::new(ANCHOR_FILE), bytes).map_or(0, |log| log.end)
}

/// Reads the anchor of a data dir; `None` when it has none.
pub fn read_log(data_dir: &Path) -> Result<Option<AnchorLog>, AnchorError> {
    let path = data_dir.join(ANCHOR_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(AnchorError::Io { path, cause }),
        Ok(mut file) => file.read_to_end(&mut bytes).map_err(|cause| AnchorError::Io { path: path.clone(), cause })?,
    };
    parse(&path, &bytes).map(Some)
}

/// Reads the anchored heads of a data dir; `None` when it has no anchor.
pub fn read(data_dir: &Path) -> Result<Option<AnchoredHeads>, AnchorError> {
    Ok(read_log(data_dir)?.map(|log| log.heads))
}

/// Writes zeros from `from` up to `to` (written, not a hole or `fallocate`: the commits' writes
/// must find every block allocated and written, or their fdatasync also commits the allocation).
fn zero_fill(file: &mut File, from: u64, to: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; 1 << 16];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The open anchor file the writer appends to.
#[derive(Debug)]
pub(crate) struct Anchor {
    file: File,
    data_dir: PathBuf,
    nonce: u64,
    /// Where the next record goes.
    len: u64,
    /// The file's size: a record that would pass it rolls the anchor first.
    capacity: u64,
    /// The capacity a new file gets (at least).
    min_capacity: u64,
    /// The newest anchored head of every tenant: what a roll's snapshot holds.
    heads: AnchoredHeads,
}

impl Anchor {
    /// The newest anchored head of every tenant.
    pub(crate) fn heads(&self) -> &AnchoredHeads {
        &self.heads
    }

    /// Writes a new anchor holding exactly `heads` (a snapshot, no groups), zero-filled up to
    /// [`CAPACITY`] (temporary file, fsync, rename, directory fsync), and opens it for writing.
    pub(crate) fn create(data_dir: &Path, heads: AnchoredHeads) -> std::io::Result<Self> {
        Self::create_with_capacity(data_dir, heads, CAPACITY)
    }

    pub(crate) fn create_with_capacity(
        data_dir: &Path,
        heads: AnchoredHeads,
        min_capacity: u64,
    ) -> std::io::Result<Self> {
        let path = data_dir.join(ANCHOR_FILE);
        let temporary = data_dir.join(format!("{ANCHOR_FILE}.tmp"));
        let nonce = new_nonce();
        let bytes = Self::snapshot_bytes(nonce, &heads)?;
        let capacity = min_capacity.max(2 * bytes.len() as u64);
        {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temporary)?;
            file.write_all(&bytes)?;
            zero_fill(&mut file, bytes.len() as u64, capacity)?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &path)?;
        // A roll that a crash interrupted may have left its hard link behind; the spare may hold
        // groups a redaction erased before a crash interrupted its scrub. Neither is kept.
        for name in [PREVIOUS_FILE, SPARE_FILE] {
            match std::fs::remove_file(data_dir.join(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        sync_dir(data_dir)?;
        let file = OpenOptions::new().write(true).open(&path)?;
        Ok(Self {
            file,
            data_dir: data_dir.to_path_buf(),
            nonce,
            len: bytes.len() as u64,
            capacity,
            min_capacity,
            heads,
        })
    }

    fn snapshot_bytes(nonce: u64, heads: &AnchoredHeads) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(HEADER_LEN + 32 + heads.len() * HEAD_LEN);
        encode_header(&mut bytes, nonce);
        encode_record(&mut bytes, nonce, heads.iter().map(|(tid, head)| (*tid, head)), &[])?;
        Ok(bytes)
    }

    /// Records a commit group — the new heads and its `WriteBatch` bytes, already written to
    /// RocksDB without a sync — and makes the record durable. Called before any receipt: an
    /// error here must poison the writer, exactly like a failed write. `sync_store` makes
    /// everything written to RocksDB so far durable there; it is called when the anchor rolls.
    /// (The writer calls the two halves, [`Anchor::record`] and [`Anchor::append_record`].)
    #[cfg(test)]
    pub(crate) fn append(
        &mut self,
        updates: &[(u32, AnchoredHead)],
        batch: &[u8],
        sync_store: &dyn Fn() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let record = self.record(updates, batch)?;
        self.append_record(updates, &record, sync_store)
    }

    /// A group's record, encoded for this file: the writer encodes it straight from the
    /// `WriteBatch` before handing the batch to RocksDB, so the batch's bytes are copied once.
    pub(crate) fn record(&self, updates: &[(u32, AnchoredHead)], batch: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(RECORD_HEAD_LEN + 4 + updates.len() * HEAD_LEN + batch.len() + 24);
        encode_record(&mut bytes, self.nonce, updates.iter().map(|(tid, head)| (*tid, head)), batch)?;
        Ok(bytes)
    }

    /// [`Anchor::append`] of a record made by [`Anchor::record`] on this anchor, with no roll
    /// or scrub in between (the writer holds the anchor's lock across both).
    pub(crate) fn append_record(
        &mut self,
        updates: &[(u32, AnchoredHead)],
        record: &[u8],
        sync_store: &dyn Fn() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        for (tid, head) in updates {
            self.heads.insert(*tid, *head);
        }
        if self.len + record.len() as u64 > self.capacity {
            // The group is already in RocksDB: once `sync_store` has made it durable there, the
            // snapshot of the new file (which includes its heads) is all the anchor must hold.
            return self.roll(sync_store, false);
        }
        self.file.write_all_at(record, self.len)?;
        self.file.sync_data()?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Removes every past group's bytes from the anchor's files, for a redaction, whose target
    /// payload may be in them (docs/format.md, "Erasure"): a roll into a zero-filled spare, then
    /// the previous anchor zero-filled too. Called by the writer right after the redaction's
    /// group is anchored; what a crash interrupts, open finishes (it writes a new anchor and
    /// deletes the spare).
    pub(crate) fn scrub(&mut self, sync_store: &dyn Fn() -> std::io::Result<()>) -> std::io::Result<()> {
        self.roll(sync_store, true)
    }

    /// Starts the spare file (the previous anchor, or a new zero-filled one) with a snapshot of
    /// every head under a new nonce and makes it the anchor. `DIR/anchor` names a whole, valid
    /// anchor at every instant: the old one (whose groups are all in RocksDB by now), then the
    /// new one. With `scrub`, both files are zero-filled: no group's bytes remain in either.
    fn roll(&mut self, sync_store: &dyn Fn() -> std::io::Result<()>, scrub: bool) -> std::io::Result<()> {
        sync_store()?;
        let nonce = new_nonce();
        let bytes = Self::snapshot_bytes(nonce, &self.heads)?;
        let capacity = self.min_capacity.max(2 * bytes.len() as u64);
        let spare_path = self.data_dir.join(SPARE_FILE);
        let mut spare = OpenOptions::new().write(true).create(true).truncate(false).open(&spare_path)?;
        let spare_len = spare.metadata()?.len();
        if scrub || spare_len < capacity {
            // The first roll of this data dir (or a bigger snapshot): written once, then
            // recycled. A scrub zero-fills it whole.
            zero_fill(&mut spare, if scrub { 0 } else { spare_len }, capacity.max(spare_len))?;
            spare.sync_all()?;
        }
        // Stale bytes of an older nonce may follow: they never pass this nonce's checks.
        spare.write_all_at(&bytes, 0)?;
        spare.sync_data()?;
        let (anchor_path, previous_path) = (self.data_dir.join(ANCHOR_FILE), self.data_dir.join(PREVIOUS_FILE));
        match std::fs::remove_file(&previous_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::fs::hard_link(&anchor_path, &previous_path)?;
        std::fs::rename(&spare_path, &anchor_path)?;
        std::fs::rename(&previous_path, &spare_path)?;
        sync_dir(&self.data_dir)?;
        let mut previous = std::mem::replace(&mut self.file, spare);
        self.nonce = nonce;
        self.len = bytes.len() as u64;
        self.capacity = capacity.max(spare_len);
        if scrub {
            let previous_len = previous.metadata()?.len();
            zero_fill(&mut previous, 0, previous_len)?;
            previous.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn head(size: u64, byte: u8) -> AnchoredHead {
        AnchoredHead { size, chain_head: [byte; 32] }
    }

    fn no_sync() -> std::io::Result<()> {
        panic!("no roll expected")
    }

    fn bytes_of(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join(ANCHOR_FILE)).unwrap()
    }

    #[test]
    fn groups_and_heads_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::from([(0, head(3, 1))])).unwrap();
        anchor.append(&[(0, head(5, 2)), (1, head(1, 3))], b"batch one", &no_sync).unwrap();
        anchor.append(&[(1, head(4, 4))], b"batch two", &no_sync).unwrap();
        let log = read_log(dir.path()).unwrap().unwrap();
        assert_eq!(log.heads, AnchoredHeads::from([(0, head(5, 2)), (1, head(4, 4))]));
        assert_eq!(log.snapshot, AnchoredHeads::from([(0, head(3, 1))]));
        assert_eq!(log.groups.len(), 2);
        assert_eq!(
            (log.groups[0].heads.clone(), log.groups[0].batch.as_slice()),
            (vec![(0, head(5, 2)), (1, head(1, 3))], &b"batch one"[..])
        );
        assert_eq!(
            (log.groups[1].heads.clone(), log.groups[1].batch.as_slice()),
            (vec![(1, head(4, 4))], &b"batch two"[..])
        );
        assert_eq!(log.end, anchor.len);
        assert_eq!(read(dir.path()).unwrap().unwrap(), log.heads);
        assert!(!dir.path().join("anchor.tmp").exists());
        assert_eq!(bytes_of(dir.path()).len() as u64, CAPACITY, "preallocated: commits overwrite");
    }

    #[test]
    fn a_missing_anchor_is_none_and_a_torn_or_zeroed_last_record_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_log(dir.path()).unwrap().is_none());
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        anchor.append(&[(7, head(2, 9))], &[5u8; 300], &no_sync).unwrap();
        let first_end = anchor.len as usize;
        anchor.append(&[(7, head(3, 8))], &[6u8; 300], &no_sync).unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let file = bytes_of(dir.path());
        let end = records_end(&file) as usize;
        assert_eq!(end as u64, anchor.len);
        // Every cut inside the last record (a write that never completed), dropped or
        // zero-filled, reads as the log before it.
        for cut in first_end..end {
            if file[cut..end].iter().all(|b| *b == 0) {
                // Only the record's zero padding is lost: nothing of it.
                assert_eq!(parse(&path, &file[..cut]).unwrap().groups.len(), 2, "cut at {cut}");
                continue;
            }
            let mut zeroed = file.clone();
            zeroed[cut..end].fill(0);
            let log = parse(&path, &zeroed).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            assert_eq!((log.heads[&7], log.groups.len(), log.end), (head(2, 9), 1, first_end as u64), "cut at {cut}");
            let log = parse(&path, &file[..cut]).unwrap();
            assert_eq!(log.heads[&7], head(2, 9), "cut at {cut}");
        }
        // A file cut inside its magic was never finished: nothing anchored.
        assert!(parse(&path, &file[..3]).unwrap().heads.is_empty());
    }

    #[test]
    fn a_damaged_record_before_a_valid_one_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create(dir.path(), AnchoredHeads::new()).unwrap();
        let start = anchor.len as usize;
        anchor.append(&[(1, head(2, 1))], b"first group", &no_sync).unwrap();
        let second = anchor.len as usize;
        anchor.append(&[(1, head(3, 2))], b"second group", &no_sync).unwrap();
        let path = dir.path().join(ANCHOR_FILE);
        let full = bytes_of(dir.path());
        for offset in start..second {
            let mut bytes = full.clone();
            bytes[offset] ^= 0x40;
            match parse(&path, &bytes) {
                Err(AnchorError::Corrupted { offset: at, reason, .. }) => {
                    assert_eq!(at as usize, start, "flip at {offset}");
                    assert!(reason.contains(&format!("valid record at byte {second}")), "flip at {offset}: {reason}");
                }
                // A flip in the padding after the check changes nothing read.
                Ok(log) => assert!(offset >= second - 7 && log.groups.len() == 2, "flip at {offset} went unnoticed"),
                Err(other) => panic!("flip at {offset}: {other}"),
            }
        }
        let mut bad_magic = full.clone();
        bad_magic[0] ^= 1;
        assert!(matches!(parse(&path, &bad_magic), Err(AnchorError::Corrupted { offset: 0, .. })));
        let mut bad_header = full.clone();
        bad_header[9] ^= 1;
        assert!(matches!(parse(&path, &bad_header), Err(AnchorError::Corrupted { offset: 8, .. })));
    }

    #[test]
    fn a_head_that_goes_back_is_corruption() {
        let nonce = new_nonce();
        let mut bytes = Vec::new();
        encode_header(&mut bytes, nonce);
        encode_record(&mut bytes, nonce, [(4, &head(9, 1))].into_iter(), &[]).unwrap();
        let at = bytes.len();
        encode_record(&mut bytes, nonce, [(4, &head(8, 1))].into_iter(), b"batch").unwrap();
        match parse(Path::new("anchor"), &bytes) {
            Err(AnchorError::Corrupted { offset, reason, .. }) => {
                assert_eq!(offset as usize, at);
                assert!(reason.contains("goes back from 9 to 8"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn format_1_files_are_still_read() {
        let mut bytes = MAGIC_V1.to_vec();
        for (tid, size, byte) in [(2u32, 4u64, 1u8), (2, 6, 2), (5, 1, 3)] {
            bytes.extend_from_slice(&tid.to_be_bytes());
            bytes.extend_from_slice(&size.to_be_bytes());
            bytes.extend_from_slice(&[byte; 32]);
            bytes.extend_from_slice(&check_v1(tid, size, &[byte; 32]));
        }
        bytes.extend_from_slice(&[0u8; 520]);
        let log = parse(Path::new("anchor"), &bytes).unwrap();
        assert_eq!(log.heads, AnchoredHeads::from([(2, head(6, 2)), (5, head(1, 3))]));
        assert!(log.groups.is_empty());
        assert_eq!(log.end as usize, 8 + 3 * RECORD_LEN_V1);
        bytes[8 + 3] ^= 1;
        assert!(matches!(parse(Path::new("anchor"), &bytes), Err(AnchorError::Corrupted { offset: 8, .. })));
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
    fn rolls_sync_the_store_first_and_recycle_the_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let capacity = 4096;
        let mut anchor =
            Anchor::create_with_capacity(dir.path(), AnchoredHeads::from([(1, head(1, 0))]), capacity).unwrap();
        let syncs = Cell::new(0);
        let sync = || {
            syncs.set(syncs.get() + 1);
            Ok(())
        };
        let mut since_roll = 0;
        for size in 2..=40u64 {
            let before = syncs.get();
            anchor.append(&[(1, head(size, size as u8)), (2, head(size * 2, 1))], &[size as u8; 700], &sync).unwrap();
            if syncs.get() > before {
                since_roll = 0;
            } else {
                since_roll += 1;
            }
            let log = read_log(dir.path()).unwrap().unwrap();
            assert_eq!(
                log.heads,
                AnchoredHeads::from([(1, head(size, size as u8)), (2, head(size * 2, 1))]),
                "size {size}"
            );
            // Only the groups since the last roll are records; the roll's snapshot holds the rest.
            assert_eq!(log.groups.len(), since_roll, "size {size}");
            for group in &log.groups {
                assert_eq!(group.batch, vec![group.heads[0].1.size as u8; 700]);
            }
            assert!(!dir.path().join(PREVIOUS_FILE).exists());
        }
        assert!(syncs.get() >= 5, "{} rolls", syncs.get());
        assert_eq!(bytes_of(dir.path()).len() as u64, capacity, "the recycled file never grows");
        // The spare is the previous anchor: whole and valid, with its own nonce.
        let spare = parse(&dir.path().join(SPARE_FILE), &std::fs::read(dir.path().join(SPARE_FILE)).unwrap()).unwrap();
        assert!(spare.heads[&1].size < 40);
    }

    #[test]
    fn a_failed_store_sync_fails_the_roll_and_leaves_the_anchor_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 1024).unwrap();
        anchor.append(&[(1, head(1, 1))], &[1u8; 500], &no_sync).unwrap();
        let before = bytes_of(dir.path());
        let error =
            anchor.append(&[(1, head(2, 2))], &[2u8; 600], &|| Err(std::io::Error::other("disk gone"))).unwrap_err();
        assert_eq!(error.to_string(), "disk gone");
        assert_eq!(bytes_of(dir.path()), before);
        assert_eq!(read(dir.path()).unwrap().unwrap()[&1], head(1, 1));
    }

    #[test]
    fn a_group_too_large_for_the_file_rolls_into_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 1024).unwrap();
        let synced = Cell::new(false);
        anchor
            .append(&[(3, head(9, 9))], &[0u8; 5000], &|| {
                synced.set(true);
                Ok(())
            })
            .unwrap();
        assert!(synced.get());
        let log = read_log(dir.path()).unwrap().unwrap();
        assert_eq!((log.snapshot[&3], log.groups.len()), (head(9, 9), 0));
    }

    #[test]
    fn a_scrub_leaves_no_group_bytes_in_either_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::create_with_capacity(dir.path(), AnchoredHeads::new(), 2048).unwrap();
        let marker = b"Max-Mustermann-erase-me";
        let found = |dir: &Path| {
            [ANCHOR_FILE, SPARE_FILE]
                .iter()
                .filter(|name| {
                    std::fs::read(dir.join(name)).is_ok_and(|b| b.windows(marker.len()).any(|w| w == marker))
                })
                .count()
        };
        // The marker in the spare (rolled out) and in the anchor.
        anchor.append(&[(1, head(1, 1))], marker, &no_sync).unwrap();
        anchor.append(&[(1, head(2, 2))], &[0u8; 1900], &|| Ok(())).unwrap();
        anchor.append(&[(1, head(3, 3))], marker, &no_sync).unwrap();
        assert_eq!(found(dir.path()), 2);
        let synced = Cell::new(false);
        anchor
            .scrub(&|| {
                synced.set(true);
                Ok(())
            })
            .unwrap();
        assert!(synced.get());
        assert_eq!(found(dir.path()), 0);
        let log = read_log(dir.path()).unwrap().unwrap();
        assert_eq!((log.snapshot[&1], log.groups.len()), (head(3, 3), 0));
        anchor.append(&[(1, head(4, 4))], b"after", &no_sync).unwrap();
        assert_eq!(read_log(dir.path()).unwrap().unwrap().heads[&1], head(4, 4));
    }

    fn group(offset: u64, heads: &[(u32, u64)]) -> AnchoredGroup {
        AnchoredGroup {
            offset,
            heads: heads.iter().map(|(tid, size)| (*tid, head(*size, *size as u8))).collect(),
            batch: vec![1],
        }
    }

    #[test]
    fn the_plan_replays_exactly_the_lost_suffix_or_explains_why_not() {
        let log = AnchorLog {
            snapshot: AnchoredHeads::from([(1, head(2, 2))]),
            heads: AnchoredHeads::new(),
            groups: vec![group(100, &[(1, 3)]), group(200, &[(1, 5), (2, 1)]), group(300, &[(2, 2)])],
            end: 400,
        };
        let stored = |sizes: &'static [(u32, u64)]| move |tid| sizes.iter().find(|(t, _)| *t == tid).map(|(_, s)| *s);
        let plan = log.plan(stored(&[(1, 5), (2, 2)])).unwrap();
        assert_eq!((plan.replay_from, plan.before.len()), (3, 0), "nothing lost");
        let plan = log.plan(stored(&[(1, 3)])).unwrap();
        assert_eq!(plan.replay_from, 1);
        assert_eq!(plan.before, BTreeMap::from([(1, Some(head(3, 3))), (2, None)]));
        assert_eq!(log.plan(stored(&[(1, 2)])).unwrap().replay_from, 0);
        assert_eq!(log.plan(stored(&[(1, 5), (2, 1)])).unwrap().replay_from, 2);
        // Shorter than anything the anchor can replay onto, or between two groups' sizes.
        let error = log.plan(stored(&[(1, 1)])).unwrap_err();
        assert!(error.contains("tenant id 1 holds 1 entries, neither the 2") && error.contains("byte 100"), "{error}");
        let error = log.plan(stored(&[(1, 4)])).unwrap_err();
        assert!(error.contains("tenant id 1 holds 4 entries, neither the 3") && error.contains("byte 200"), "{error}");
        // A group held after one lost: not a prefix.
        let split = AnchorLog {
            snapshot: AnchoredHeads::from([(1, head(2, 2)), (2, head(1, 1))]),
            groups: vec![group(100, &[(1, 3)]), group(200, &[(2, 2)])],
            ..AnchorLog::default()
        };
        let error = split.plan(stored(&[(1, 2), (2, 2)])).unwrap_err();
        assert!(error.contains("holds the anchored group at byte 200 but not one anchored before it"), "{error}");
    }
}
