//! The writer's side of the anchor: the open file each commit group's record is appended to,
//! its rolls and its scrubs.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::{
    encode_header, encode_record, new_nonce, AnchoredHead, AnchoredHeads, ANCHOR_FILE, CAPACITY, HEADER_LEN, HEAD_LEN,
    PREVIOUS_FILE, RECORD_HEAD_LEN, SPARE_FILE,
};

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
    pub(super) len: u64,
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
    /// (The writer calls the halves: [`Anchor::record`], then [`Anchor::append_fitting`] beside
    /// RocksDB's write, or [`Anchor::append_record`] after it when the record needs a roll.)
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

    /// Appends a record made by [`Anchor::record`] on this anchor (no roll or scrub in between:
    /// the writer holds the anchor's lock across both) and makes it durable. A record that does
    /// not fit rolls the anchor instead, so the group must be written to RocksDB already:
    /// `sync_store` makes it durable there, and the new file's snapshot holds its heads.
    pub(crate) fn append_record(
        &mut self,
        updates: &[(u32, AnchoredHead)],
        record: &[u8],
        sync_store: &dyn Fn() -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        if self.fits(record) {
            return self.append_fitting(updates, record);
        }
        for (tid, head) in updates {
            self.heads.insert(*tid, *head);
        }
        // The group is already in RocksDB: once `sync_store` has made it durable there, the
        // snapshot of the new file (which includes its heads) is all the anchor must hold.
        self.roll(sync_store, false)
    }

    /// Whether `record` fits in the file as it stands: appended by [`Anchor::append_fitting`]
    /// without a roll.
    pub(crate) fn fits(&self, record: &[u8]) -> bool {
        self.len + record.len() as u64 <= self.capacity
    }

    /// Appends a record made by [`Anchor::record`] that [`Anchor::fits`], and makes it durable.
    /// It never rolls (a roll claims every group durable in RocksDB), so the writer may run it
    /// while RocksDB's write of the same group is still under way (`make_durable`).
    pub(crate) fn append_fitting(&mut self, updates: &[(u32, AnchoredHead)], record: &[u8]) -> std::io::Result<()> {
        if !self.fits(record) {
            return Err(std::io::Error::other(format!(
                "a record of {} bytes does not fit at {} of {} (a roll is needed)",
                record.len(),
                self.len,
                self.capacity
            )));
        }
        for (tid, head) in updates {
            self.heads.insert(*tid, *head);
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
