//! Export files as `ledger-audit` receives them (`tools/src/{file,schema,rows}.rs`): arbitrary
//! bytes as an Arrow IPC file or a Parquet file, or (input starting with `{`) the metadata
//! map alone as JSON.
//!
//! Which panics count: arrow's and parquet's readers are third-party and not hardened against
//! malformed input (`ExportReader` catches their panics and reports a malformed file), so only
//! those calls run under `third_party`, which turns their panic into "malformed". Everything
//! after them is ours and must never panic: the metadata (`ExportMeta::from_map`), the column
//! check, rows back to entries (`entries_from_batch`), and the auditor's verifier fed with
//! those entries and the file's checkpoint. This target calls the same functions as
//! `ExportReader::open` rather than `ExportReader` itself, because `ExportReader` catches
//! every panic, ours included.
//!
//! Properties: metadata that parses survives `to_map`/`from_map` unchanged; entries read from
//! rows and written back to rows read back the same.
#![no_main]

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use ledger::Verifier;
use ledger_tools::rows::{check_columns, entries_batch, entries_from_batch};
use ledger_tools::{ExportMeta, Table};
use libfuzzer_sys::fuzz_target;
use projections::Catalogue;
use release_ledger_fuzz::third_party;

/// Batches read from one file, at most this many (the input is at most a few kB anyway).
const MAX_BATCHES: usize = 8;

/// The schema metadata and the batches of an Arrow IPC or Parquet file, or `None` when the
/// third-party reader refuses (or panics on) the bytes. Batches that fail to decode end it.
fn read(data: &[u8]) -> Option<(HashMap<String, String>, Vec<RecordBatch>)> {
    if data.starts_with(b"ARROW1") {
        // The check `ExportReader::open` makes first: arrow-ipc allocates every block's
        // declared length before reading it.
        ledger_tools::file::check_arrow_blocks(&mut Cursor::new(data)).ok()?;
        third_party(|| {
            let reader = arrow::ipc::reader::FileReader::try_new(Cursor::new(data.to_vec()), None).ok()?;
            let metadata: HashMap<String, String> = reader.schema().metadata().into();
            let batches = reader.take(MAX_BATCHES).map_while(Result::ok).collect();
            Some((metadata, batches))
        })
        .flatten()
    } else if data.starts_with(b"PAR1") {
        third_party(|| {
            // Opened as `ExportReader::open` opens it: every page header read by our bounded
            // reader first (parquet-rs 60's is not bounded), then decoded without a page index.
            let builder = ledger_tools::file::parquet_builder(bytes::Bytes::copy_from_slice(data)).ok()?;
            let metadata: HashMap<String, String> = builder.schema().metadata().into();
            let reader = builder.with_batch_size(ledger_tools::rows::BATCH_ROWS).build().ok()?;
            let batches = reader.take(MAX_BATCHES).map_while(Result::ok).collect();
            Some((metadata, batches))
        })
        .flatten()
    } else {
        None
    }
}

fn check_meta(map: &HashMap<String, String>) -> Option<ExportMeta> {
    let meta = ExportMeta::from_map(map).ok()?;
    assert_eq!(ExportMeta::from_map(&meta.to_map()).as_ref(), Ok(&meta), "metadata round trip");
    Some(meta)
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&b'{') {
        if let Ok(map) = serde_json::from_slice::<HashMap<String, String>>(data) {
            check_meta(&map);
        }
        return;
    }
    let Some((metadata, batches)) = read(data) else { return };
    let Some(meta) = check_meta(&metadata) else { return };
    let mut verifier = match &meta.resume {
        None => Verifier::new(&meta.tenant, meta.roots, &meta.origin_prefix),
        Some(point) => match Verifier::resume(&meta.tenant, meta.roots, &meta.origin_prefix, point) {
            Ok(verifier) => verifier,
            Err(_) => return,
        },
    }
    .with_rules(Some(Arc::new(Catalogue)));
    for batch in &batches {
        if check_columns(meta.table, &batch.schema()).is_err() || meta.table != Table::Entries {
            continue;
        }
        let Ok(entries) = entries_from_batch(batch, &meta.tenant) else { continue };
        if let Ok(again) = entries_batch(&meta.schema(), &entries) {
            if let Ok(back) = entries_from_batch(&again, &meta.tenant) {
                assert_eq!(back, entries, "entries -> rows -> entries");
            }
        }
        for entry in entries {
            if verifier.push(entry).is_err() {
                return;
            }
        }
    }
    let _ = verifier.finish(Some(&meta.checkpoint));
});
