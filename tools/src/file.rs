//! Export files: Arrow IPC file format or Parquet (zstd), written batch by batch (bounded
//! memory: one record batch, or one Parquet row group, at a time) to `FILE.partial` and renamed
//! into place only when complete, so a failed export leaves nothing behind.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::rows::BATCH_ROWS;
use crate::schema::ExportMeta;

/// Rows per Parquet row group: what a Parquet writer holds in memory before flushing.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// An export file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Arrow IPC file format (`.arrow`, Feather v2), uncompressed.
    Arrow,
    /// Parquet with zstd.
    Parquet,
}

impl Format {
    /// The format a file name asks for (`.parquet` / `.pq`, or `.arrow` / `.feather` / `.ipc`).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()? {
            "parquet" | "pq" => Some(Self::Parquet),
            "arrow" | "feather" | "ipc" => Some(Self::Arrow),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
        })
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "arrow" => Ok(Self::Arrow),
            "parquet" => Ok(Self::Parquet),
            other => Err(format!("unknown format {other:?}: expected arrow or parquet")),
        }
    }
}

/// An error reading or writing an export file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be opened, created or renamed.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file's bytes are not a well-formed export.
    #[error("{0}")]
    Malformed(String),
}

/// Writes one export file.
pub struct ExportWriter {
    inner: Inner,
    partial: PathBuf,
    path: PathBuf,
    rows: u64,
}

enum Inner {
    Arrow(arrow::ipc::writer::FileWriter<BufWriter<File>>),
    Parquet(ArrowWriter<BufWriter<File>>),
}

impl fmt::Debug for ExportWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportWriter").field("path", &self.path).field("rows", &self.rows).finish_non_exhaustive()
    }
}

fn malformed(e: impl fmt::Display) -> FileError {
    FileError::Malformed(e.to_string())
}

impl ExportWriter {
    /// Starts `path` (written as `path.partial` until [`ExportWriter::finish`]).
    pub fn create(path: &Path, format: Format, meta: &ExportMeta) -> Result<Self, FileError> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let io = |cause| FileError::Io { path: partial.clone(), cause };
        let file = BufWriter::with_capacity(1 << 20, File::create(&partial).map_err(io)?);
        let schema: SchemaRef = meta.schema();
        let inner = match format {
            Format::Arrow => Inner::Arrow(arrow::ipc::writer::FileWriter::try_new(file, &schema).map_err(malformed)?),
            Format::Parquet => {
                let kv = meta.to_map().into_iter().map(|(k, v)| KeyValue::new(k, v)).collect();
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).map_err(malformed)?))
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_key_value_metadata(Some(kv))
                    .build();
                Inner::Parquet(ArrowWriter::try_new(file, schema, Some(props)).map_err(malformed)?)
            }
        };
        Ok(Self { inner, partial, path: path.to_owned(), rows: 0 })
    }

    /// Appends a batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), FileError> {
        self.rows += batch.num_rows() as u64;
        match &mut self.inner {
            Inner::Arrow(w) => w.write(batch).map_err(malformed),
            Inner::Parquet(w) => w.write(batch).map_err(malformed),
        }
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Completes the file, fsyncs it and renames it into place. Returns its size in bytes.
    pub fn finish(self) -> Result<u64, FileError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |cause| FileError::Io { path, cause }
        };
        let file = match self.inner {
            Inner::Arrow(mut w) => {
                w.finish().map_err(malformed)?;
                w.into_inner().map_err(malformed)?
            }
            Inner::Parquet(w) => w.into_inner().map_err(malformed)?,
        };
        let file =
            file.into_inner().map_err(|e| FileError::Io { path: self.partial.clone(), cause: e.into_error() })?;
        file.sync_all().map_err(io(&self.partial))?;
        let bytes = file.metadata().map_err(io(&self.partial))?.len();
        std::fs::rename(&self.partial, &self.path).map_err(io(&self.path))?;
        Ok(bytes)
    }

    /// Abandons the file: the partial file is removed.
    pub fn abort(self) {
        drop(self.inner);
        let _ = std::fs::remove_file(&self.partial);
    }
}

/// An export file opened for reading: its metadata, then its batches one at a time.
pub struct ExportReader {
    /// The file's format.
    pub format: Format,
    /// What its metadata says.
    pub meta: ExportMeta,
    /// Rows, when the footer says (Parquet; an Arrow IPC footer does not).
    pub rows: Option<u64>,
    batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow::error::ArrowError>> + Send>,
}

impl fmt::Debug for ExportReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportReader").field("format", &self.format).field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// The metadata map of a schema (readers of both formats expose it there).
fn metadata(schema: &arrow::datatypes::Schema) -> HashMap<String, String> {
    schema.metadata().into()
}

/// Refuses an Arrow IPC file any block of whose footer (record batch or dictionary) does not lie
/// within the file. arrow-ipc 60's `FileReader` allocates a zeroed buffer of a block's declared
/// length before reading it, so a 7 kB file whose footer lists a 2 GB block cost 2 GB and
/// seconds of `memset` (found by the `export_file` fuzz target). A footer that does not parse is
/// left to arrow-ipc, which refuses it. `file` is left at an unspecified position.
pub fn check_arrow_blocks<R: Read + Seek>(file: &mut R) -> Result<(), FileError> {
    let io = |e: std::io::Error| FileError::Malformed(format!("the Arrow IPC footer cannot be read: {e}"));
    let len = file.seek(SeekFrom::End(0)).map_err(io)?;
    // The file ends with the footer's length (4 bytes, little-endian) and "ARROW1".
    let Some(tail) = len.checked_sub(10) else { return Ok(()) };
    file.seek(SeekFrom::Start(tail)).map_err(io)?;
    let mut footer_len = [0u8; 4];
    file.read_exact(&mut footer_len).map_err(io)?;
    let footer_len = i32::from_le_bytes(footer_len);
    let Some(start) = u64::try_from(footer_len).ok().and_then(|n| tail.checked_sub(n)) else {
        return Err(FileError::Malformed(format!(
            "the Arrow IPC footer claims {footer_len} bytes in a {len}-byte file"
        )));
    };
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut footer = vec![0u8; (tail - start) as usize];
    file.read_exact(&mut footer).map_err(io)?;
    let Ok(footer) = arrow::ipc::root_as_footer(&footer) else { return Ok(()) };
    let blocks = footer.recordBatches().into_iter().flatten().chain(footer.dictionaries().into_iter().flatten());
    for block in blocks {
        let (offset, meta, body) = (block.offset(), block.metaDataLength(), block.bodyLength());
        let end = offset.checked_add(i64::from(meta)).and_then(|e| e.checked_add(body));
        let within = offset >= 0
            && meta >= 0
            && body >= 0
            && end.is_some_and(|end| u64::try_from(end).is_ok_and(|end| end <= len));
        if !within {
            return Err(FileError::Malformed(format!(
                "the Arrow IPC footer lists a block of {meta} + {body} bytes at offset {offset}, not within the {len}-byte file"
            )));
        }
    }
    Ok(())
}

/// Opens a Parquet file for decoding: the footer read first by
/// [`crate::parquet_pages::check_footer`] (bounded, as parquet-rs 60's skipping is not), then
/// parsed once, every page header read first by
/// [`crate::parquet_pages::check_pages`] (bounded; parquet-rs 60's own page header reader is
/// not, and sizes dictionaries by the count a header claims), then a record batch reader that
/// walks pages the same way (no page index). The fuzz target `export_file` opens files through
/// this too.
pub fn parquet_builder<R: parquet::file::reader::ChunkReader + 'static>(
    file: R,
) -> Result<ParquetRecordBatchReaderBuilder<R>, FileError> {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    crate::parquet_pages::check_footer(&file).map_err(FileError::Malformed)?;
    let metadata = ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Skip)
        .parse_and_finish(&file)
        .map_err(malformed)?;
    crate::parquet_pages::check_pages(&file, &metadata).map_err(FileError::Malformed)?;
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
    let metadata = ArrowReaderMetadata::try_new(std::sync::Arc::new(metadata), options).map_err(malformed)?;
    Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata))
}

impl ExportReader {
    /// Opens `path`, recognising the format by its magic bytes. [`FileError::Io`] when the
    /// file cannot be read at all; [`FileError::Malformed`] when its bytes are wrong.
    pub fn open(path: &Path) -> Result<Self, FileError> {
        let io = |cause| FileError::Io { path: path.to_owned(), cause };
        let mut file = File::open(path).map_err(io)?;
        let mut magic = [0u8; 6];
        let read = file.read(&mut magic).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        // Arrow and Parquet readers are not hardened against every malformed input: a panic
        // inside them is a malformed file, not a crash of the auditor.
        let opened = decoding(move || -> Result<Self, FileError> {
            if read >= 6 && &magic == b"ARROW1" {
                check_arrow_blocks(&mut file)?;
                file.seek(SeekFrom::Start(0)).map_err(|cause| FileError::Io { path: path.to_owned(), cause })?;
                let reader = arrow::ipc::reader::FileReader::try_new(BufReader::with_capacity(1 << 20, file), None)
                    .map_err(malformed)?;
                let meta = ExportMeta::from_map(&metadata(&reader.schema())).map_err(FileError::Malformed)?;
                Ok(Self { format: Format::Arrow, meta, rows: None, batches: Box::new(reader) })
            } else if read >= 4 && &magic[..4] == b"PAR1" {
                let builder = parquet_builder(file)?;
                let meta = ExportMeta::from_map(&metadata(builder.schema())).map_err(FileError::Malformed)?;
                let rows = u64::try_from(builder.metadata().file_metadata().num_rows()).ok();
                let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(malformed)?;
                Ok(Self { format: Format::Parquet, meta, rows, batches: Box::new(reader) })
            } else {
                Err(FileError::Malformed("not an Arrow IPC file or a Parquet file (no ARROW1 or PAR1 magic)".into()))
            }
        });
        opened.unwrap_or_else(|why| Err(FileError::Malformed(format!("the file's structure is corrupt ({why})"))))
    }

    /// The next batch; a malformed batch (or a panic of the decoder) is an error.
    pub fn next_batch(&mut self) -> Option<Result<RecordBatch, FileError>> {
        let batches = &mut self.batches;
        match decoding(|| batches.next()) {
            Ok(next) => next.map(|r| r.map_err(malformed)),
            Err(why) => Some(Err(FileError::Malformed(format!("a record batch is corrupt ({why})")))),
        }
    }
}

thread_local! {
    /// Whether a panic on this thread is a decoder's, caught by [`decoding`].
    static DECODING: Cell<bool> = const { Cell::new(false) };
    /// The message of the last such panic.
    static DECODER_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs a call into the Arrow or Parquet decoder; a panic in it becomes `Err` with a one-line
/// reason. The panic hook stays silent for these panics (the default one prints the message
/// and, with `RUST_BACKTRACE`, a backtrace: noise around a verdict that is simply "malformed"),
/// and keeps reporting every other panic as before.
fn decoding<T>(decode: impl FnOnce() -> T) -> Result<T, String> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if DECODING.with(Cell::get) {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|m| (*m).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_owned());
                let message = ledger::clip_at(&message.replace('\n', " "), 160).to_string();
                DECODER_PANIC.with(|last| *last.borrow_mut() = Some(message));
            } else {
                previous(info);
            }
        }));
    });
    let outer = DECODING.with(|d| d.replace(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode));
    DECODING.with(|d| d.set(outer));
    result.map_err(|_| {
        let message = DECODER_PANIC.with(|last| last.borrow_mut().take()).unwrap_or_else(|| "no message".to_owned());
        format!("the decoder failed: {message}")
    })
}
