//! Where the audit's fold keeps the releases that left memory: an unnamed temporary file of
//! LZ4-compressed MessagePack records, the latest record of each release found through an index
//! in memory.
//!
//! The fold used the projection worker's RocksDB store for this until issue 20's
//! twenty-second session. The audit only ever writes a release when it leaves memory and reads
//! it back when a later entry names it, and it reads every one once at the end for a replay's
//! state: no query, no board, no counts. For that, the store's memtable inserts, flushes and
//! compactions, its board rows and their lookups were about a tenth of `ledger-audit verify`'s
//! CPU time on the benchmark export (BENCHMARKS.md).
//!
//! A record is the release's serde encoding in MessagePack with named fields
//! (`rmp_serde::encode::write_named`), which describes itself as JSON does: fields left out
//! (`skip_serializing_if`), defaults and the `serde_json::Value` of an attachment's body come
//! back as they went in, and the tests check that a release reads back equal to itself and to
//! its JSON round trip. (The projection store has stored its rows in the same encoding since
//! issue 20's twenty-ninth session.) A record was `serde_json` compressed with zstd (level 1) until
//! issue 20's twenty-fourth session: encoding and compressing each
//! release were a seventh of the verifier's thread, which sets the audit's pace, and
//! MessagePack with LZ4 made `verify` 5–9 % faster for a file a third larger (the benchmark
//! export's 19,456 spilled releases: 38 MB against 29 MB, 131 MB of JSON; BENCHMARKS.md).
//! LZ4 decodes with `lz4_flex`'s safe-code decoder: the file is the audit's own, but a record
//! that does not decode is an error, never undefined behaviour.
//!
//! The file is created unlinked (`O_TMPFILE` where the file system has it), so no path exists
//! and nothing is left behind, even if the audit is killed. Superseded records are dead bytes;
//! once they pass both the live bytes and [`SLACK`], the live records are copied to a new file,
//! so the file stays under twice its live bytes plus [`SLACK`]. Memory: the index, one entry
//! (the release id and 16 bytes) per release spilled.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

use projections::state::ReleaseState;

/// Dead bytes the file may hold beyond its live bytes before it is rewritten.
const SLACK: u64 = 64 << 20;

/// Bytes copied at a time when the file is rewritten.
const COPY_CHUNK: usize = 1 << 20;

/// The releases that left memory (see the module's documentation).
pub(super) struct Spill {
    file: File,
    /// Each spilled release's latest record.
    index: HashMap<String, Place>,
    /// Where the next record goes.
    end: u64,
    /// The bytes of the latest records; the rest of `end` is superseded.
    live: u64,
    /// Rewrites so far (for the tests).
    rewrites: u32,
    /// Dead bytes allowed beyond the live ones (`SLACK`; smaller in the tests).
    slack: u64,
    /// Reused for each save's records, and for one record's encoding.
    buf: Vec<u8>,
    encoded: Vec<u8>,
}

/// Where a record is: its offset and length in the file, and its encoding's length.
#[derive(Debug, Clone, Copy)]
struct Place {
    offset: u64,
    len: u32,
    encoded_len: u32,
}

impl std::fmt::Debug for Spill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spill").field("releases", &self.index.len()).field("end", &self.end).finish_non_exhaustive()
    }
}

impl Spill {
    /// A new, empty spill file in the system's temporary directory (`TMPDIR`).
    pub(super) fn new() -> std::io::Result<Self> {
        Self::with_slack(SLACK)
    }

    fn with_slack(slack: u64) -> std::io::Result<Self> {
        Ok(Self {
            file: tempfile::tempfile()?,
            index: HashMap::new(),
            end: 0,
            live: 0,
            rewrites: 0,
            slack,
            buf: Vec::new(),
            encoded: Vec::new(),
        })
    }

    /// Writes each of `releases` as its latest record, all of them in one write. If the records
    /// cannot be encoded or written, nothing changes: the index still names the records written
    /// before. If the rewrite that may follow fails, the file stays as it was, these records
    /// included.
    pub(super) fn save<'a>(
        &mut self,
        releases: impl IntoIterator<Item = (&'a String, &'a ReleaseState)>,
    ) -> Result<(), String> {
        self.buf.clear();
        let mut placed = Vec::new();
        for (id, release) in releases {
            self.encoded.clear();
            rmp_serde::encode::write_named(&mut self.encoded, release).map_err(|e| format!("release {id}: {e}"))?;
            let encoded_len =
                u32::try_from(self.encoded.len()).map_err(|_| format!("release {id}: over 4 GiB encoded"))?;
            let start = self.buf.len();
            self.buf.resize(start + lz4_flex::block::get_maximum_output_size(self.encoded.len()), 0);
            let written = lz4_flex::block::compress_into(&self.encoded, &mut self.buf[start..])
                .map_err(|e| format!("release {id}: {e}"))?;
            self.buf.truncate(start + written);
            let len = u32::try_from(self.buf.len() - start).map_err(|_| format!("release {id}: over 4 GiB"))?;
            placed.push((id, Place { offset: start as u64, len, encoded_len }));
        }
        if placed.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buf, self.end).map_err(|e| format!("writing: {e}"))?;
        for (id, mut place) in placed {
            place.offset += self.end;
            let old = self.index.insert(id.clone(), place);
            self.live -= old.map_or(0, |old| u64::from(old.len));
            self.live += u64::from(place.len);
        }
        self.end += self.buf.len() as u64;
        if self.end - self.live > self.live.max(self.slack) {
            self.rewrite()?;
        }
        Ok(())
    }

    /// The latest record of `id`, if it was ever spilled.
    pub(super) fn load(&self, id: &str) -> Result<Option<ReleaseState>, String> {
        let Some(&place) = self.index.get(id) else { return Ok(None) };
        let mut record = vec![0; place.len as usize];
        self.file.read_exact_at(&mut record, place.offset).map_err(|e| format!("reading release {id}: {e}"))?;
        let encoded = lz4_flex::block::decompress(&record, place.encoded_len as usize)
            .map_err(|e| format!("release {id}: {e}"))?;
        if encoded.len() != place.encoded_len as usize {
            return Err(format!("release {id}: {} bytes decoded, {} written", encoded.len(), place.encoded_len));
        }
        rmp_serde::from_slice(&encoded).map(Some).map_err(|e| format!("release {id}: {e}"))
    }

    /// The ids of every release spilled (in no order).
    pub(super) fn ids(&self) -> impl Iterator<Item = &String> {
        self.index.keys()
    }

    /// Copies the live records, in file order, to a new file that replaces this one.
    fn rewrite(&mut self) -> Result<(), String> {
        let new = tempfile::tempfile().map_err(|e| format!("a new file: {e}"))?;
        let mut records: Vec<(&String, &mut Place)> = self.index.iter_mut().collect();
        records.sort_unstable_by_key(|(_, place)| place.offset);
        let (mut chunk, mut written) = (Vec::with_capacity(COPY_CHUNK), 0u64);
        let mut moved = Vec::with_capacity(records.len());
        for (id, place) in &records {
            let start = chunk.len();
            chunk.resize(start + place.len as usize, 0);
            self.file
                .read_exact_at(&mut chunk[start..], place.offset)
                .map_err(|e| format!("reading release {id}: {e}"))?;
            moved.push(written + start as u64);
            if chunk.len() >= COPY_CHUNK {
                new.write_all_at(&chunk, written).map_err(|e| format!("writing: {e}"))?;
                written += chunk.len() as u64;
                chunk.clear();
            }
        }
        new.write_all_at(&chunk, written).map_err(|e| format!("writing: {e}"))?;
        written += chunk.len() as u64;
        // Only now, with every record copied, does the index move to the new file.
        for ((_, place), offset) in records.iter_mut().zip(moved) {
            place.offset = offset;
        }
        debug_assert_eq!(written, self.live);
        self.file = new;
        self.end = written;
        self.rewrites += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(id: &str, updated_at: u64) -> ReleaseState {
        ReleaseState {
            release_id: id.to_owned(),
            notes: vec![format!("a note \"quoted\" and unicode: é {updated_at}")],
            updated_at,
            ..ReleaseState::default()
        }
    }

    #[test]
    fn a_release_comes_back_as_its_latest_record() {
        let mut spill = Spill::new().unwrap();
        assert_eq!(spill.load("r1").unwrap(), None);
        let (r1, r2) = (release("r1", 1), release("r2", 2));
        spill.save([(&"r1".to_owned(), &r1), (&"r2".to_owned(), &r2)]).unwrap();
        assert_eq!(spill.load("r1").unwrap(), Some(r1));
        let newer = release("r2", 3);
        spill.save([(&"r2".to_owned(), &newer)]).unwrap();
        assert_eq!(spill.load("r2").unwrap(), Some(newer));
        let mut ids: Vec<_> = spill.ids().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["r1", "r2"]);
        assert_eq!(spill.load("r3").unwrap(), None);
    }

    /// A release with what MessagePack could get wrong: an attachment's free-form JSON body
    /// (negative, large and fractional numbers, nulls, nesting, escapes), options both set and
    /// left out, a negative timestamp, maps and a decision.
    fn rich_release() -> ReleaseState {
        use projections::state::{AttachmentRecord, OverrideRecord, TimelineItem};
        let body = serde_json::json!({
            "predicateType": "https://slsa.dev/verification_summary/v1",
            "numbers": [0, -1, i64::MIN, u64::MAX, 1.5, -0.25, 1e300, 5e-324],
            "nested": {"null": null, "empty": {}, "list": [[], [true, false]], "text": "tab\t \"quote\" é \u{1F600}"},
        });
        let attachment = |seq: u64, body: Option<serde_json::Value>, uri: Option<String>| AttachmentRecord {
            seq,
            recorded_at: seq * 10,
            key_id: "ab".repeat(16),
            agent_id: "scanner".into(),
            module: "api".into(),
            version: "1.4.0".into(),
            kind: "vsa".into(),
            subject_digest: [("sha256".to_owned(), "00".repeat(32))].into(),
            content_digest: Default::default(),
            media_type: "application/json".into(),
            uri,
            body,
            attestation: Some(("cd".repeat(16), "https://in-toto.io/Statement/v1".into())),
            schema_error: None,
        };
        ReleaseState {
            release_id: "rel-1".into(),
            evaluation_requested: true,
            attachments: vec![attachment(3, Some(body), None), attachment(4, None, Some("https://x/y".into()))],
            overrides: vec![OverrideRecord {
                seq: 5,
                key_id: "ef".repeat(16),
                freeze_id: "f".into(),
                justification: String::new(),
            }],
            invalidated: [(3, 9), (4, u64::MAX)].into(),
            decision: Some(projections::gates::evaluation_error(7, 70)),
            decision_seqs: vec![8],
            decision_entries: [(7, 8)].into(),
            failure: Some("rolled back".into()),
            retry: Some((-5, 7)),
            notes: vec!["a note".into()],
            timeline: vec![TimelineItem {
                seq: 3,
                recorded_at: 30,
                event_type: "EvidenceAttached".into(),
                agent_id: "scanner".into(),
                summary: "vsa of api@1.4.0".into(),
            }],
            timeline_omitted: 2,
            created_at: 30,
            updated_at: u64::MAX,
            ..ReleaseState::default()
        }
    }

    #[test]
    fn a_release_reads_back_as_itself_and_as_its_json_round_trip() {
        let mut spill = Spill::new().unwrap();
        let rich = rich_release();
        spill.save([(&rich.release_id, &rich)]).unwrap();
        let back = spill.load(&rich.release_id).unwrap().unwrap();
        assert_eq!(back, rich);
        // What its JSON round trip gives back (how the API serves it).
        let json: ReleaseState = serde_json::from_slice(&serde_json::to_vec(&rich).unwrap()).unwrap();
        assert_eq!(back, json);
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&rich).unwrap());
    }

    #[test]
    fn superseded_records_are_dropped_once_they_outgrow_the_live_ones() {
        let mut spill = Spill::with_slack(1024).unwrap();
        let id = "busy".to_owned();
        spill.save([(&id, &release("busy", 1000))]).unwrap();
        // Written after the first record of `busy`: it moves when the file is rewritten.
        let keep = release("keep", 7);
        spill.save([(&"keep".to_owned(), &keep)]).unwrap();
        for round in 0..200 {
            spill.save([(&id, &release("busy", round))]).unwrap();
            let dead = spill.end - spill.live;
            assert!(dead <= spill.live.max(1024), "round {round}: {dead} dead bytes, {} live", spill.live);
            assert_eq!(spill.file.metadata().unwrap().len(), spill.end, "round {round}");
            // Both read back whether or not this save rewrote the file.
            assert_eq!(spill.load("keep").unwrap().as_ref(), Some(&keep), "round {round}");
            assert_eq!(spill.load("busy").unwrap(), Some(release("busy", round)), "round {round}");
        }
        assert!(spill.rewrites > 0, "the file was never rewritten");
        assert_eq!(spill.load("keep").unwrap(), Some(keep));
        assert_eq!(spill.load("busy").unwrap(), Some(release("busy", 199)));
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let mut spill = Spill::new().unwrap();
        let first = release("first", 1);
        spill.save([(&"first".to_owned(), &first)]).unwrap();
        let (end, live) = (spill.end, spill.live);
        // A file this handle cannot write: the next save's write fails.
        let path = tempfile::NamedTempFile::new().unwrap();
        let readable = std::mem::replace(&mut spill.file, File::open(path.path()).unwrap());
        let error = spill.save([(&"second".to_owned(), &release("second", 2))]).unwrap_err();
        assert!(error.starts_with("writing: "), "{error}");
        assert_eq!((spill.end, spill.live, spill.index.len()), (end, live, 1));
        assert_eq!(spill.load("second").unwrap(), None);
        spill.file = readable;
        assert_eq!(spill.load("first").unwrap(), Some(first));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_release() {
        let mut spill = Spill::new().unwrap();
        spill.save([(&"r".to_owned(), &release("r", 1))]).unwrap();
        let place = spill.index["r"];
        spill.file.write_all_at(&[0xff; 8], place.offset).unwrap();
        let error = spill.load("r").unwrap_err();
        assert!(error.starts_with("release r: "), "{error}");
    }
}
