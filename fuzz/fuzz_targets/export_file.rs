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
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use projections::Catalogue;
use release_ledger_fuzz::third_party;

/// Batches read from one file, at most this many (the input is at most a few kB anyway).
const MAX_BATCHES: usize = 8;

/// Whether every block the Arrow IPC footer lists lies within the file. arrow-ipc 60's
/// `FileReader` allocates (zeroed) each block's declared length before reading it, so a 7 kB
/// file whose footer claims a 2 GB block costs 2 GB and seconds of `memset` (found by this
/// target; `ExportReader`, which reads a file the same way, is exposed to it as well: see
/// docs/reliability.md). Such files are left out here so the target keeps testing the rest.
fn arrow_blocks_within(data: &[u8]) -> bool {
    let Some(tail) = data.len().checked_sub(10) else { return true };
    let footer_len = i32::from_le_bytes([data[tail], data[tail + 1], data[tail + 2], data[tail + 3]]);
    let Some(start) = usize::try_from(footer_len).ok().and_then(|len| tail.checked_sub(len)) else { return true };
    let Ok(footer) = arrow::ipc::root_as_footer(&data[start..tail]) else { return true };
    let blocks = footer.recordBatches().into_iter().flatten().chain(footer.dictionaries().into_iter().flatten());
    let within = |offset: i64, meta: i32, body: i64| -> Option<bool> {
        let end = offset.checked_add(i64::from(meta))?.checked_add(body)?;
        Some(offset >= 0 && meta >= 0 && body >= 0 && end <= i64::try_from(data.len()).ok()?)
    };
    blocks.into_iter().all(|block| within(block.offset(), block.metaDataLength(), block.bodyLength()) == Some(true))
}

/// The schema metadata and the batches of an Arrow IPC or Parquet file, or `None` when the
/// third-party reader refuses (or panics on) the bytes. Batches that fail to decode end it.
fn read(data: &[u8]) -> Option<(HashMap<String, String>, Vec<RecordBatch>)> {
    if data.starts_with(b"ARROW1") {
        if !arrow_blocks_within(data) {
            return None;
        }
        third_party(|| {
            let reader = arrow::ipc::reader::FileReader::try_new(Cursor::new(data.to_vec()), None).ok()?;
            let metadata: HashMap<String, String> = reader.schema().metadata().into();
            let batches = reader.take(MAX_BATCHES).map_while(Result::ok).collect();
            Some((metadata, batches))
        })
        .flatten()
    } else if data.starts_with(b"PAR1") {
        third_party(|| {
            // The check `ExportReader::open` makes before decoding (a page claiming more values
            // than its row group has rows is refused: parquet-rs sizes buffers by the claim).
            ledger_tools::file::check_parquet_pages(bytes::Bytes::copy_from_slice(data)).ok()?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(data)).ok()?;
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
