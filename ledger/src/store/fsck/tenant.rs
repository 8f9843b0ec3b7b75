//! One tenant's check: the entries pass, then every other column family against the entries.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::thread::Scope;

use super::visit::{Marks, Visitor};
use super::*;

/// What the entries pass learnt.
pub(super) struct EntriesPass {
    /// Every entry 0..size was read, and verified.
    pub(super) complete: bool,
    /// The last entry matches the head row.
    pub(super) tip_matches: bool,
    pub(super) report: Option<VerifyReport>,
    /// The key registry derived from the entries (when they all verified).
    pub(super) registry: Option<HashMap<KeyId, KeyRecord>>,
}

/// One tenant's check in progress.
pub(super) struct TenantRun<'a> {
    view: &'a StoreView,
    name: String,
    tid: u32,
    size: u64,
    problems: Vec<Problem>,
    listed: HashMap<String, usize>,
    omitted: u64,
    rows: Vec<(&'static str, u64)>,
    checkpoints_checked: u64,
    /// What the entries pass saw of each entry, for the `event_ids` and `streams` passes.
    seen: Option<Seen>,
    /// Entries up to which [`Seen`] is kept ([`FsckOptions::max_fingerprints`]).
    max_fingerprints: u64,
}

/// Reads and decodes entry `seq` (`None` when it is missing or does not decode: the entries
/// pass reports that).
fn lookup_entry(view: &StoreView, tid: u32, seq: u64) -> Option<Entry> {
    let value = view.db.get_pinned_cf(view.cf(CF_ENTRIES), seq_key(tid, seq)).ok()??;
    decode_entry_value(seq, &value).ok()
}

/// A bit per seq of `0..size`.
struct SeqSet {
    bits: Vec<u64>,
    size: u64,
}

impl SeqSet {
    fn new(size: u64) -> Self {
        Self { bits: vec![0; size.div_ceil(64) as usize], size }
    }

    /// Marks `seq`; false if it was already marked.
    fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }

    fn missing(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.size).filter(|seq| self.bits[(seq / 64) as usize] & (1u64 << (seq % 64)) == 0)
    }
}

fn parsed(entry: &Entry) -> Option<ParsedEvent> {
    entry.envelope().and_then(|envelope| ParsedEvent::parse(&envelope.payload).ok())
}

/// The tenant's stored tree nodes, read level by level in index order — the order in which
/// the entries complete them — by one iterator per level, instead of a point lookup per node
/// (a tenth of a data-dir audit's time before). What a lookup would return, for keys asked in
/// increasing index order per level, as the entries pass asks them.
struct TreeCursors<'v> {
    view: &'v StoreView,
    tid: u32,
    levels: Vec<Option<std::iter::Peekable<rocksdb::DBIteratorWithThreadMode<'v, DB>>>>,
}

impl TreeCursors<'_> {
    /// The stored node at (`level`, `index`), if any; indices of one level must come in
    /// increasing order.
    fn node(&mut self, level: u32, index: u64) -> Result<Option<Box<[u8]>>, rocksdb::Error> {
        let want = tree_key(self.tid, level, index);
        let slot = level as usize;
        if self.levels.len() <= slot {
            self.levels.resize_with(slot + 1, || None);
        }
        let view = self.view;
        let cursor = self.levels[slot].get_or_insert_with(|| view.scan(CF_TREE, &want).peekable());
        loop {
            let order = match cursor.peek() {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok((key, _))) => key.as_ref().cmp(&want[..]),
            };
            match order {
                // A row no entry asks for (the pass over extra nodes names it): passed over.
                std::cmp::Ordering::Less => {
                    cursor.next();
                }
                std::cmp::Ordering::Greater => return Ok(None),
                std::cmp::Ordering::Equal => return cursor.next().transpose().map(|row| row.map(|(_, value)| value)),
            }
        }
    }
}

/// Tenants of more entries than this are checked without [`Seen`] (16 bytes per entry: at most
/// 256 MiB), unless [`FsckOptions::max_fingerprints`] says otherwise: every `event_ids` and
/// `streams` row then reads its entry back.
pub(super) const MAX_SEEN: u64 = 1 << 24;

/// What the entries pass saw of each entry, so that the `event_ids` and `streams` passes need
/// not read every entry back (a point lookup, a decode and a JSON parse per row: the largest
/// cost of a data-dir audit before). Per seq, a fingerprint of (eventId, BLAKE3 of the
/// payload) and one of the stream, each the first 8 bytes of a BLAKE3 keyed with a key drawn
/// for this run, so that nobody can make a damaged row's fingerprint match; 0 where the entry
/// gave none (not read, redacted, or its payload does not parse).
///
/// A fingerprint only ever clears a row: a row whose fingerprint matches its entry's is one the
/// lookup would have passed (its eventId bytes and digest, or its stream, are the entry's, but
/// with probability 2^-64). Any other row takes the lookup, so every problem is found, and
/// worded, exactly as before.
struct Seen {
    key: [u8; 32],
    ids: Vec<u64>,
    streams: Vec<u64>,
}

impl Seen {
    /// For a tenant of `size` entries (kept only up to [`FsckOptions::max_fingerprints`]:
    /// [`TenantRun::keeps_fingerprints`]).
    fn new(size: u64) -> Self {
        use rand_core::RngCore as _;
        let mut key = [0u8; 32];
        rand_core::OsRng.fill_bytes(&mut key);
        Self { key, ids: vec![0; size as usize], streams: vec![0; size as usize] }
    }

    fn print(&self, domain: &[u8], parts: &[&[u8]]) -> u64 {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(domain);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let mut first = [0u8; 8];
        first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        // 0 means "no fingerprint".
        u64::from_le_bytes(first).max(1)
    }

    fn id_print(&self, event_id: &[u8], digest: &[u8]) -> u64 {
        self.print(b"event_ids", &[event_id, digest])
    }

    fn stream_print(&self, stream: &[u8]) -> u64 {
        self.print(b"streams", &[stream])
    }

    /// Records entry `seq`, whose payload parsed to `event` and has the BLAKE3 `digest`.
    fn record(&mut self, seq: u64, digest: &[u8; 32], event: &ParsedEvent) {
        let Some(index) = usize::try_from(seq).ok().filter(|&i| i < self.ids.len()) else { return };
        self.ids[index] = self.id_print(event.header.event_id.as_bytes(), digest);
        self.streams[index] = self.stream_print(event.header.stream.as_bytes());
    }

    /// Whether the `event_ids` row (`event_id`, `digest`) for `seq` is cleared by the entry's
    /// fingerprint.
    fn clears_id(&self, seq: u64, event_id: &[u8], digest: &[u8]) -> bool {
        Self::clears(&self.ids, seq, || self.id_print(event_id, digest))
    }

    /// Whether the `streams` row naming `seq` in `stream` is cleared by the entry's fingerprint.
    fn clears_stream(&self, seq: u64, stream: &[u8]) -> bool {
        Self::clears(&self.streams, seq, || self.stream_print(stream))
    }

    /// Whether entry `seq` has a fingerprint in `prints` and the row's (`row`) is it.
    fn clears(prints: &[u64], seq: u64, row: impl FnOnce() -> u64) -> bool {
        let Some(&print) = usize::try_from(seq).ok().and_then(|i| prints.get(i)) else { return false };
        print != 0 && print == row()
    }
}

/// Batches read ahead of the entries pass, at most (each of [`READ_BATCH`] entries).
const READ_AHEAD: usize = 2;
/// Entries per batch the reading thread hands over.
const READ_BATCH: usize = 256;

/// One entry as the reading thread hands it over: decoded and hash-checked
/// ([`decode_entry_value`]), what its payload parsed to (`None`: redacted), and the payload's
/// BLAKE3 digest (for [`Seen`], when kept).
pub(super) struct ReadEntry {
    entry: Entry,
    event: Option<Result<ParsedEvent, InvalidEvent>>,
    digest: Option<[u8; 32]>,
}

/// What the reading thread hands the entries pass, in seq order: a batch of entries, or the
/// end of the reading, at the problem given if any (otherwise at the head's size or the
/// tenant's last row).
pub(super) type Read = Result<Vec<ReadEntry>, Option<Problem>>;

/// Starts the entries pass's reading on a thread of `scope`: tenant `tid`'s entries `0..size`
/// in order, each decoded, hash-checked and parsed, until the first that is not there or does
/// not decode (the problem the pass then lists, worded as when it read them itself). About a
/// third of the pass's thread, now beside it. `digests`: whether to hash each payload for
/// [`Seen`] (whether this tenant keeps one).
pub(super) fn read_ahead<'scope>(
    scope: &'scope Scope<'scope, '_>,
    view: &'scope StoreView,
    tid: u32,
    size: u64,
    digests: bool,
) -> Receiver<Read> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Read>(READ_AHEAD);
    std::thread::Builder::new()
        .name("ledger-fsck-read".into())
        .spawn_scoped(scope, move || read_entries(view, tid, size, digests, &sender))
        .unwrap_or_else(|e| panic!("cannot start the check's reading thread: {e}"));
    receiver
}

fn read_entries(view: &StoreView, tid: u32, size: u64, digests: bool, sender: &SyncSender<Read>) {
    let prefix = tid.to_be_bytes();
    let mut batch = Vec::with_capacity(READ_BATCH);
    let mut end = None;
    for (next, item) in (0..size).zip(view.scan(CF_ENTRIES, &seq_key(tid, 0))) {
        let (key, value) = match item {
            Ok(row) => row,
            Err(e) => {
                end = Some(Problem::new(CF_ENTRIES, format!("rocksdb: {e}")).seq(next));
                break;
            }
        };
        if !key.starts_with(&prefix) {
            break;
        }
        let seq = match seq_of_key(&key) {
            Some(seq) if key.len() == 12 => seq,
            _ => {
                end = Some(Problem::new(CF_ENTRIES, "malformed entry key").seq(next).key(hex::encode(&key)));
                break;
            }
        };
        if seq != next {
            end = Some(Problem::new(CF_ENTRIES, format!("entry is missing (the next stored is seq {seq})")).seq(next));
            break;
        }
        let entry = match decode_entry_value(seq, &value) {
            Ok(entry) => entry,
            Err(reason) => {
                end = Some(Problem::new(CF_ENTRIES, reason).seq(seq));
                break;
            }
        };
        let event = entry.envelope().map(|envelope| ParsedEvent::parse(&envelope.payload));
        let digest = entry.envelope().filter(|_| digests).map(|envelope| *blake3::hash(&envelope.payload).as_bytes());
        batch.push(ReadEntry { entry, event, digest });
        if batch.len() >= READ_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(READ_BATCH));
            if sender.send(Ok(full)).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() && sender.send(Ok(batch)).is_err() {
        return;
    }
    let _ = sender.send(Err(end));
}

impl<'a> TenantRun<'a> {
    pub(super) fn new(view: &'a StoreView, tenant: &TenantRow, max_fingerprints: u64) -> Self {
        Self {
            view,
            name: tenant.name.clone(),
            tid: tenant.tid,
            size: tenant.head.map_or(0, |h| h.size),
            problems: Vec::new(),
            listed: HashMap::new(),
            omitted: 0,
            rows: Vec::new(),
            checkpoints_checked: 0,
            seen: None,
            max_fingerprints,
        }
    }

    /// Whether the entries pass keeps a fingerprint of each entry ([`Seen`]).
    pub(super) fn keeps_fingerprints(&self) -> bool {
        self.size <= self.max_fingerprints
    }

    pub(super) fn problem(&mut self, problem: Problem) {
        self.problem_at(self.problems.len(), problem);
    }

    /// [`TenantRun::problem`], listed as the `index`th problem (`index` at most their count).
    fn problem_at(&mut self, index: usize, problem: Problem) {
        let listed = self.listed.entry(problem.cf.clone()).or_default();
        if *listed >= LISTED_PER_SOURCE {
            self.omitted += 1;
            return;
        }
        *listed += 1;
        self.problems.insert(index, problem.tenant(&self.name));
    }

    pub(super) fn finish(self, report: Option<VerifyReport>, tip: Option<TenantTip>) -> TenantCheck {
        TenantCheck {
            tenant: self.name,
            tid: self.tid,
            size: self.size,
            report,
            rows: self.rows,
            checkpoints_checked: self.checkpoints_checked,
            tip,
            problems: self.problems,
            omitted: self.omitted,
        }
    }

    fn prefix(&self) -> [u8; 4] {
        self.tid.to_be_bytes()
    }

    /// Entries `0..head.size` in order through the verifier, the tree nodes each completes,
    /// and every stored checkpoint as the tree reaches its size.
    pub(super) fn entries_pass(
        &mut self,
        head: Head,
        verifier: Verifier,
        origin_prefix: &str,
        extra_checkpoints: &[&str],
        entries: Receiver<Read>,
        mut visitor: Option<Visitor<'_>>,
    ) -> EntriesPass {
        let view = self.view;
        let prefix = self.prefix();
        let mut verifier = Some(verifier);
        // Entries go to the visitor until the verifier fails or the visitor does.
        let mut visiting = visitor.is_some();
        let mut marks = Marks::new(self.problems.len());
        let mut frontier = Frontier::<LogHasher>::default();
        let mut checkpoints = view.scan(CF_CHECKPOINTS, &prefix).peekable();
        let mut head_note: Option<String> = None;
        let mut tip_matches = false;
        let mut tree_nodes = 0u64;
        let mut next = 0u64;
        let origin = format!("{origin_prefix}/{}", self.name);
        let mut completed: Vec<(u32, u64, Hash32)> = Vec::new();
        let mut seen = self.keeps_fingerprints().then(|| Seen::new(head.size));
        let mut tree = TreeCursors { view, tid: self.tid, levels: Vec::new() };
        // The entries arrive read, decoded and parsed a batch ahead (`read_ahead`), then where
        // and why the reading stopped.
        let mut end = None;
        let read = entries.iter().map_while(|read| read.map_err(|problem| end = problem).ok()).flatten();
        for ReadEntry { entry, event, digest } in read {
            let seq = entry.seq;
            if seq + 1 == head.size {
                tip_matches =
                    digest_eq(&entry.entry_hash, &head.chain_head) && entry.recorded_at == head.last_recorded_at;
                if !tip_matches {
                    self.problem(
                        Problem::new(CF_META, "the head row's chain head or recordedAt is not the last entry's")
                            .seq(seq)
                            .key("head"),
                    );
                }
            }
            // The tree nodes this entry completes, each compared with the stored node.
            completed.clear();
            frontier.push(LogHasher::hash_leaf(&entry.entry_hash), |level, index, hash| {
                completed.push((level, index, *hash));
            });
            for &(level, index, hash) in &completed {
                tree_nodes += 1;
                let node_key = || format!("level {level} index {index}");
                match tree.node(level, index) {
                    Err(e) => self.problem(Problem::new(CF_TREE, format!("rocksdb: {e}")).seq(seq).key(node_key())),
                    Ok(None) => self.problem(Problem::new(CF_TREE, "node is missing").seq(seq).key(node_key())),
                    Ok(Some(stored)) if !digest_eq(&stored, &hash) => self.problem(
                        Problem::new(CF_TREE, "node differs from the hash recomputed from the entries")
                            .seq(seq)
                            .key(node_key()),
                    ),
                    Ok(Some(_)) => {}
                }
            }
            // Every stored checkpoint at this size.
            let size = seq + 1;
            while let Some(item) = checkpoints.next_if(|item| match item {
                Ok((key, _)) => key.starts_with(&prefix) && seq_of_key(key).is_none_or(|s| s <= size),
                Err(_) => true,
            }) {
                let (key, note) = match item {
                    Ok(row) => row,
                    Err(e) => {
                        self.problem(Problem::new(CF_CHECKPOINTS, format!("rocksdb: {e}")).seq(seq));
                        break;
                    }
                };
                let at = seq_of_key(&key).unwrap_or_default();
                if key.len() != 12 || at != size {
                    self.problem(
                        Problem::new(CF_CHECKPOINTS, "a checkpoint row under a malformed key or size 0")
                            .key(hex::encode(&key)),
                    );
                    continue;
                }
                self.checkpoints_checked += 1;
                let note = String::from_utf8(note.to_vec()).ok();
                if let Some(detail) = check_checkpoint(note.as_deref(), &view.roots, &origin, size, &frontier) {
                    self.problem(Problem::new(CF_CHECKPOINTS, detail).seq(seq).key(format!("size {size}")));
                }
                if size == head.size {
                    head_note = note;
                }
            }
            // The entry through the verifier, and then (while all is well) to the visitor.
            // The payload parsed once, for the visitor, the verifier and the fingerprints.
            visiting = visiting && visitor.as_ref().is_some_and(Visitor::wants_more);
            // The verifier keeps the entry until its batch's signatures are checked.
            let for_visitor = visiting.then(|| entry.clone());
            if let (Some(seen), Some(digest), Some(Ok(event))) = (seen.as_mut(), &digest, &event) {
                seen.record(seq, digest, event);
            }
            if let Some(v) = verifier.as_mut() {
                // `decode_entry_value` checked the entry's hashes (`read_entries`).
                let pushed =
                    v.push_decoded(entry, event.as_ref().map(|event| Preparsed { event: event.as_ref(), rules: None }));
                if let Err(failure) = pushed {
                    let failure = verifier.take().map_or(failure.clone(), |v| v.fail(failure));
                    let mut problem = Problem::new(CF_ENTRIES, failure.detail.clone());
                    problem.seq = failure.seq;
                    problem.check = Some(failure.check);
                    self.problem(problem);
                    visiting = false;
                }
            }
            if let (Some(visitor), Some(entry), true) = (visitor.as_mut(), for_visitor, visiting) {
                visitor.push(entry, event);
            }
            marks.finished(seq, self.problems.len());
            next += 1;
        }
        if let Some(problem) = end {
            self.problem(problem);
        }
        // The visitor's first error, where it would have been found in line.
        if let Some((seq, detail)) = visitor.and_then(Visitor::finish) {
            self.problem_at(marks.after(seq), Problem::new(CF_ENTRIES, format!("decisions: {detail}")).seq(seq));
        }
        if next < head.size && !self.problems.iter().any(|p| p.cf == CF_ENTRIES) {
            self.problem(
                Problem::new(CF_ENTRIES, format!("entry is missing: the head records {} entries", head.size)).seq(next),
            );
        }
        self.rows.push((CF_ENTRIES, next));
        self.rows.push((CF_TREE, tree_nodes));
        let complete = next == head.size;
        // Checkpoints left: beyond the head, or beyond where the entries stopped.
        for item in checkpoints {
            let Ok((key, _)) = item else { break };
            if !key.starts_with(&prefix) {
                break;
            }
            if complete || seq_of_key(&key).is_some_and(|s| s > head.size) {
                self.problem(
                    Problem::new(CF_CHECKPOINTS, format!("a checkpoint beyond the head ({} entries)", head.size))
                        .key(seq_of_key(&key).map_or_else(|| hex::encode(&key), |s| format!("size {s}"))),
                );
            }
        }
        self.rows.push((CF_CHECKPOINTS, self.checkpoints_checked));
        if complete && head_note.is_none() {
            self.problem(
                Problem::new(CF_CHECKPOINTS, "no checkpoint at the head's size").key(format!("size {}", head.size)),
            );
        }
        // Every tree node the entries did not complete is a row too many.
        self.extra_tree_nodes(if complete { head.size } else { next });
        self.seen = seen;
        let (report, registry) = match verifier {
            Some(v) if complete => {
                let registry: HashMap<KeyId, KeyRecord> =
                    v.key_records().filter_map(|r| KeyId::from_hex(&r.key_id).ok().map(|id| (id, r.clone()))).collect();
                let notes: Vec<&str> =
                    head_note.as_deref().into_iter().chain(extra_checkpoints.iter().copied()).collect();
                match v.finish_all(&notes) {
                    Ok(report) => (Some(report), Some(registry)),
                    Err(failure) => {
                        let mut problem = Problem::new(CF_ENTRIES, failure.detail.clone());
                        problem.seq = failure.seq;
                        problem.check = Some(failure.check);
                        self.problem(problem);
                        (None, None)
                    }
                }
            }
            _ => (None, None),
        };
        EntriesPass { complete: complete && report.is_some(), tip_matches, report, registry }
    }

    /// Stored tree nodes that no entry below `size` completes.
    fn extra_tree_nodes(&mut self, size: u64) {
        let prefix = self.prefix();
        for item in self.view.scan(CF_TREE, &prefix) {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    self.problem(Problem::new(CF_TREE, format!("rocksdb: {e}")));
                    return;
                }
            };
            if !key.starts_with(&prefix) {
                return;
            }
            let parsed = (key.len() == 13)
                .then(|| (u32::from(key[4]), u64::from_be_bytes(key[5..13].try_into().unwrap_or_default())));
            match parsed {
                None => self.problem(Problem::new(CF_TREE, "malformed node key").key(hex::encode(&key))),
                Some((level, index)) => {
                    let end = index.checked_add(1).and_then(|i| i.checked_mul(1u64.checked_shl(level)?));
                    if level >= 64 || end.is_none_or(|end| end > size) {
                        self.problem(
                            Problem::new(CF_TREE, format!("a node beyond the {size} entries checked"))
                                .key(format!("level {level} index {index}")),
                        );
                    } else if value.len() != 32 {
                        self.problem(
                            Problem::new(CF_TREE, "node is not 32 bytes").key(format!("level {level} index {index}")),
                        );
                    }
                }
            }
        }
    }

    /// Entries stored at or beyond the head.
    pub(super) fn entries_beyond(&mut self, size: u64) {
        let prefix = self.prefix();
        for item in self.view.scan(CF_ENTRIES, &seq_key(self.tid, size)) {
            let Ok((key, _)) = item else { return };
            if !key.starts_with(&prefix) {
                return;
            }
            let problem = Problem::new(CF_ENTRIES, format!("an entry beyond the head ({size} entries)"));
            match seq_of_key(&key) {
                Some(seq) if key.len() == 12 => self.problem(problem.seq(seq)),
                _ => self.problem(problem.key(hex::encode(&key))),
            }
        }
    }

    /// The `keys` rows against the registry derived from the log.
    pub(super) fn keys(&mut self, registry: &HashMap<KeyId, KeyRecord>) {
        let prefix = self.prefix();
        let mut seen = 0usize;
        let mut rows = 0u64;
        for item in self.view.scan(CF_KEYS, &prefix) {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    self.problem(Problem::new(CF_KEYS, format!("rocksdb: {e}")));
                    return;
                }
            };
            if !key.starts_with(&prefix) {
                break;
            }
            rows += 1;
            let Ok(id) = <[u8; 32]>::try_from(&key[4..]).map(KeyId) else {
                self.problem(Problem::new(CF_KEYS, "malformed key id").key(hex::encode(&key)));
                continue;
            };
            let label = format!("key {id}");
            let Some(derived) = registry.get(&id) else {
                self.problem(
                    Problem::new(CF_KEYS, "no AgentKeyRegistered event of the log registers this key").key(label),
                );
                continue;
            };
            seen += 1;
            match serde_json::from_slice::<KeyRecord>(&value) {
                Err(e) => self.problem(Problem::new(CF_KEYS, format!("record does not decode: {e}")).key(label)),
                Ok(stored) if stored != *derived => self.problem(
                    Problem::new(
                        CF_KEYS,
                        format!(
                            "record differs from the registry derived from the log (stored {}, derived {})",
                            serde_json::to_string(&stored).unwrap_or_default(),
                            serde_json::to_string(derived).unwrap_or_default()
                        ),
                    )
                    .seq(derived.registered_at)
                    .key(label),
                ),
                Ok(_) => {}
            }
        }
        self.rows.push((CF_KEYS, rows));
        if seen < registry.len() {
            let mut missing: Vec<&KeyRecord> = registry
                .iter()
                .filter(|(id, _)| {
                    !matches!(
                        self.view.db.get_pinned_cf(self.view.cf(CF_KEYS), registry_key(self.tid, &id.0)),
                        Ok(Some(_))
                    )
                })
                .map(|(_, record)| record)
                .collect();
            missing.sort_by_key(|r| r.registered_at);
            for record in missing {
                self.problem(
                    Problem::new(CF_KEYS, "the key registered by this entry has no row")
                        .seq(record.registered_at)
                        .key(format!("key {}", record.key_id)),
                );
            }
        }
    }

    /// `event_ids`: each row names an entry whose eventId and payload digest it holds; each
    /// entry is named by exactly one row.
    pub(super) fn event_ids(&mut self, size: u64) {
        let prefix = self.prefix();
        let mut named = SeqSet::new(size);
        let mut rows = 0u64;
        for item in self.view.scan(CF_EVENT_IDS, &prefix) {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    self.problem(Problem::new(CF_EVENT_IDS, format!("rocksdb: {e}")));
                    return;
                }
            };
            if !key.starts_with(&prefix) {
                break;
            }
            rows += 1;
            let event_id = String::from_utf8_lossy(&key[4..]).into_owned();
            let label = format!("eventId {event_id:?}");
            let Ok((seq, digest)) = decode_event_id_value(&value) else {
                self.problem(Problem::new(CF_EVENT_IDS, "value is not seq ‖ digest").key(label));
                continue;
            };
            if seq >= size {
                self.problem(
                    Problem::new(CF_EVENT_IDS, format!("names a seq beyond the head ({size} entries)"))
                        .seq(seq)
                        .key(label),
                );
                continue;
            }
            if !named.insert(seq) {
                self.problem(Problem::new(CF_EVENT_IDS, "a second row names this entry").seq(seq).key(label));
                continue;
            }
            if self.seen.as_ref().is_some_and(|seen| seen.clears_id(seq, &key[4..], &digest)) {
                continue;
            }
            let Some(entry) = lookup_entry(self.view, self.tid, seq) else { continue };
            if let EntryBody::Redacted { .. } = entry.body {
                continue; // The payload is gone; its event id and digest cannot be recomputed.
            }
            match parsed(&entry) {
                Some(event) if event.header.event_id != event_id => self.problem(
                    Problem::new(CF_EVENT_IDS, format!("the entry's eventId is {:?}", event.header.event_id))
                        .seq(seq)
                        .key(label),
                ),
                Some(_) => {
                    let payload = entry.envelope().map(|e| e.payload.as_slice()).unwrap_or_default();
                    if !digest_eq(blake3::hash(payload).as_bytes(), &digest) {
                        self.problem(
                            Problem::new(CF_EVENT_IDS, "payload digest differs from the entry's payload")
                                .seq(seq)
                                .key(label),
                        );
                    }
                }
                None => {} // An entry that does not parse is the verifier's finding.
            }
        }
        self.rows.push((CF_EVENT_IDS, rows));
        let missing: Vec<u64> = named.missing().take(LISTED_PER_SOURCE + 1).collect();
        for seq in missing {
            self.problem(Problem::new(CF_EVENT_IDS, "the entry's eventId has no row").seq(seq));
        }
    }

    /// `streams`: per stream, versions 1, 2, … in seq order, each naming an entry of that
    /// stream; each entry named by exactly one row. Returns the number of streams.
    pub(super) fn streams(&mut self, size: u64) -> u64 {
        let prefix = self.prefix();
        let mut named = SeqSet::new(size);
        let (mut rows, mut streams) = (0u64, 0u64);
        // The stream being read: its name, last version and last seq.
        let mut current: Option<(Vec<u8>, u64, u64)> = None;
        for item in self.view.scan(CF_STREAMS, &prefix) {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    self.problem(Problem::new(CF_STREAMS, format!("rocksdb: {e}")));
                    break;
                }
            };
            if !key.starts_with(&prefix) {
                break;
            }
            rows += 1;
            let len = key.get(4).map_or(0, |&l| usize::from(l));
            if key.len() != 4 + 1 + len + 8 {
                self.problem(Problem::new(CF_STREAMS, "malformed key").key(hex::encode(&key)));
                continue;
            }
            let stream = key[5..5 + len].to_vec();
            let version = u64::from_be_bytes(key[5 + len..].try_into().unwrap_or_default());
            let label = format!("stream {:?} version {version}", String::from_utf8_lossy(&stream));
            let Ok(seq) = <[u8; 8]>::try_from(value.as_ref()).map(u64::from_be_bytes) else {
                self.problem(Problem::new(CF_STREAMS, "value is not a seq").key(label));
                continue;
            };
            let (last_version, last_seq) = match &current {
                Some((name, v, s)) if *name == stream => (*v, Some(*s)),
                _ => {
                    streams += 1;
                    (0, None)
                }
            };
            current = Some((stream.clone(), version, seq));
            if version != last_version + 1 {
                self.problem(
                    Problem::new(CF_STREAMS, format!("version {version} follows version {last_version}"))
                        .seq(seq)
                        .key(label),
                );
                continue;
            }
            if last_seq.is_some_and(|last| seq <= last) {
                self.problem(Problem::new(CF_STREAMS, "a later version names an earlier entry").seq(seq).key(label));
                continue;
            }
            if seq >= size {
                self.problem(
                    Problem::new(CF_STREAMS, format!("names a seq beyond the head ({size} entries)"))
                        .seq(seq)
                        .key(label),
                );
                continue;
            }
            if !named.insert(seq) {
                self.problem(Problem::new(CF_STREAMS, "a second row names this entry").seq(seq).key(label));
                continue;
            }
            if self.seen.as_ref().is_some_and(|seen| seen.clears_stream(seq, &stream)) {
                continue;
            }
            let Some(entry) = lookup_entry(self.view, self.tid, seq) else { continue };
            if let Some(event) = parsed(&entry) {
                if event.header.stream.as_bytes() != stream.as_slice() {
                    self.problem(
                        Problem::new(CF_STREAMS, format!("the entry is in stream {:?}", event.header.stream))
                            .seq(seq)
                            .key(label),
                    );
                }
            }
        }
        self.rows.push((CF_STREAMS, rows));
        let missing: Vec<u64> = named.missing().take(LISTED_PER_SOURCE + 1).collect();
        for seq in missing {
            self.problem(Problem::new(CF_STREAMS, "the entry has no stream version row").seq(seq));
        }
        streams
    }

    /// `stream_heads`: one row per stream, holding its last version.
    pub(super) fn stream_heads(&mut self, streams: u64) {
        let prefix = self.prefix();
        let mut rows = 0u64;
        let has_version = |tid: u32, stream: &str, version: u64| {
            matches!(
                self.view.db.get_pinned_cf(self.view.cf(CF_STREAMS), stream_key(tid, stream, version)),
                Ok(Some(_))
            )
        };
        let mut found = Vec::new();
        for item in self.view.scan(CF_STREAM_HEADS, &prefix) {
            let (key, value) = match item {
                Ok(row) => row,
                Err(e) => {
                    found.push(Problem::new(CF_STREAM_HEADS, format!("rocksdb: {e}")));
                    break;
                }
            };
            if !key.starts_with(&prefix) {
                break;
            }
            rows += 1;
            let Ok(stream) = String::from_utf8(key[4..].to_vec()) else {
                found.push(Problem::new(CF_STREAM_HEADS, "stream name is not UTF-8").key(hex::encode(&key)));
                continue;
            };
            let label = format!("stream {stream:?}");
            let Ok(version) = <[u8; 8]>::try_from(value.as_ref()).map(u64::from_be_bytes) else {
                found.push(Problem::new(CF_STREAM_HEADS, "value is not a version").key(label));
                continue;
            };
            if stream.len() > usize::from(u8::MAX) || version == 0 || !has_version(self.tid, &stream, version) {
                found.push(Problem::new(CF_STREAM_HEADS, format!("version {version} has no streams row")).key(label));
            } else if has_version(self.tid, &stream, version + 1) {
                found.push(
                    Problem::new(CF_STREAM_HEADS, format!("version {version} is not the stream's last")).key(label),
                );
            }
        }
        if rows != streams && found.is_empty() {
            found.push(Problem::new(
                CF_STREAM_HEADS,
                format!("{rows} stream heads for {streams} streams: a stream has no head row"),
            ));
        }
        for problem in found {
            self.problem(problem);
        }
        self.rows.push((CF_STREAM_HEADS, rows));
    }
}

/// What is wrong with a stored checkpoint at `size`, given the tree of the first `size` entries.
fn check_checkpoint(
    note: Option<&str>,
    roots: &TrustRoots,
    origin: &str,
    size: u64,
    frontier: &Frontier<LogHasher>,
) -> Option<String> {
    let Some(note) = note else { return Some("not UTF-8".into()) };
    let signed = match SignedCheckpoint::parse_and_verify(note, roots.ledger()) {
        Ok(signed) => signed,
        Err(e) => return Some(format!("does not verify under the ledger key: {e}")),
    };
    let checkpoint = signed.checkpoint;
    if checkpoint.origin != origin {
        return Some(format!("origin {:?} is not {origin:?}", checkpoint.origin));
    }
    if checkpoint.size != size {
        return Some(format!("stored under size {size}, it covers {}", checkpoint.size));
    }
    if !digest_eq(&checkpoint.root, &frontier.root()) {
        return Some("root differs from the tree of the entries".into());
    }
    None
}
