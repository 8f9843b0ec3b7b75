//! The anchor: the log of record of every commit group, and the fsynced high-water mark of
//! every tenant's log, kept beside the store and outside RocksDB (`DIR/anchor`, docs/format.md
//! "The anchor").
//!
//! RocksDB's own files cannot vouch for themselves: a flipped byte in the WAL, a lost WAL
//! file or a damaged MANIFEST can make the store open *shorter* than it was, and the shorter
//! store is self-consistent (its heads, trees and checkpoints all agree). The anchor is the
//! witness that does not live in the same files. Every commit group writes its `WriteBatch`
//! to RocksDB **without** a sync (into the WAL and the page cache: a killed process loses
//! nothing) and, at the same time, appends one record to the anchor — each touched tenant's
//! `(tid, size, chainHead)` **and the group's batch bytes** — and `fdatasync`s it, **before
//! any receipt** (`writer.rs`).
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
//! the normal trace of a crash before the anchor's record was synced (nothing of it was
//! acknowledged); a store *behind* it by groups the anchor holds, of a crash or power loss
//! before RocksDB's unsynced write reached the disk.
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
use std::fs::File;
use std::io::Read as _;
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

#[cfg(test)]
mod tests;
mod writer;

pub(crate) use writer::Anchor;
