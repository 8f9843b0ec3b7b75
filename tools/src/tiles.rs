//! A tenant's C2SP `tlog-tiles` written to a directory, from an entries export: what a static
//! host or an object store serves with no ledger behind it (`release-ledger tiles`).
//!
//! `OUT/<tenant>/` gets exactly the URL layout of the server's tiles listener
//! (`api::tiles`): `checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`, so serving
//! `OUT/` at the listener's root gives the same URLs and the same bytes.
//!
//! The export must start at seq 0 (tiles cover the whole tree). Before anything is written,
//! the export's checkpoint must verify with the ledger key (the file's, or a pinned one), and
//! the entries must hash to its root with the store's tree hash
//! ([`ledger::store::tiles::TileHasher`]). Writing is incremental and never rewrites history:
//!
//! - a full tile already in the directory must be byte-for-byte the one these entries make,
//!   and the directory's checkpoint must be signed by the same key for the same origin and
//!   have the root of this export's tree at its size; otherwise the run is refused as a
//!   **fork** and nothing is written (a first pass checks, a second writes);
//! - a directory holding a larger tree than the export is refused (a publication never goes
//!   back);
//! - new tiles are written, each to a temporary file that is synced and renamed into place
//!   (a reader sees a whole tile or none); then the checkpoint the same way, last, so a
//!   reader never sees a checkpoint whose tiles are missing; then the partial tiles that a
//!   full tile now supersedes are deleted (`tlog-tiles`: a log "MAY delete any partial tile
//!   once the corresponding full tile is ... available").

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use ledger::hash::Hash32;
use ledger::ids::TenantId;
use ledger::merkle::{Frontier, TreeHasher as _};
use ledger::store::tiles::{encode_bundle, encode_tile, tiles_of_size, TileBuilder, TileHasher, TileId, TileKind};
use ledger::SignedCheckpoint;

use crate::file::{ExportReader, FileError};
use crate::rows::entries_from_batch;
use crate::schema::Table;

/// Why tiles were not written. Nothing was written for any of these, except [`TilesError::Io`]
/// met while writing (whatever was written by then is whole tiles the tree holds).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TilesError {
    /// A file could not be read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        cause: std::io::Error,
    },
    /// The export cannot be made into tiles (not an entries export from seq 0, malformed).
    #[error("{0}")]
    Export(String),
    /// The export's checkpoint does not verify, or its entries do not hash to its root.
    #[error("{0}")]
    Checkpoint(String),
    /// The directory holds a different history of the log (or a larger tree): refused.
    #[error("{0}")]
    Fork(String),
}

/// What a run wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TilesReport {
    /// The tenant.
    pub tenant: String,
    /// `OUT/<tenant>`.
    pub dir: PathBuf,
    /// The tree size of the checkpoint written.
    pub size: u64,
    /// The tree size the directory held before (0 if none).
    pub previous_size: u64,
    /// Tiles and bundles written (new full ones and the partial ones of this size).
    pub written: u64,
    /// Tiles and bundles already present, identical, left alone.
    pub kept: u64,
    /// Partial tiles deleted because their full tile now exists.
    pub removed_partial: u64,
}

/// Writes the tiles of the entries export `export` under `out/<tenant>/`; `ledger_key` pins
/// the key the checkpoint must verify with (default: the export's own).
pub fn write_tiles(export: &Path, out: &Path, ledger_key: Option<&VerifyingKey>) -> Result<TilesReport, TilesError> {
    let meta = open(export)?.meta;
    if meta.table != Table::Entries {
        return Err(TilesError::Export(format!(
            "{} is a {} export: tiles are made from an entries export",
            export.display(),
            meta.table
        )));
    }
    if meta.from_seq != 0 {
        return Err(TilesError::Export(format!(
            "{} starts at seq {}: tiles cover the whole tree, export the entries from seq 0",
            export.display(),
            meta.from_seq
        )));
    }
    TenantId::check(&meta.tenant).map_err(|e| TilesError::Export(format!("the export's tenant: {e}")))?;
    let key = ledger_key.unwrap_or(meta.roots.ledger());
    let checkpoint = SignedCheckpoint::parse_and_verify(&meta.checkpoint, key)
        .map_err(|e| TilesError::Checkpoint(format!("the export's checkpoint does not verify: {e}")))?;
    let size = checkpoint.checkpoint.size;
    if size != meta.to_seq {
        return Err(TilesError::Checkpoint(format!(
            "the export's checkpoint is of size {size}, its entries end at {}",
            meta.to_seq
        )));
    }
    let dir = out.join(&meta.tenant);
    let checkpoint_path = dir.join("checkpoint");
    let previous = match read_optional(&checkpoint_path)? {
        None => None,
        Some(bytes) => {
            let note = String::from_utf8(bytes)
                .map_err(|_| TilesError::Fork(format!("{} is not UTF-8", checkpoint_path.display())))?;
            let previous = SignedCheckpoint::parse_and_verify(&note, key).map_err(|e| {
                TilesError::Fork(format!(
                    "{} does not verify with this export's ledger key ({e}): the directory holds another log",
                    checkpoint_path.display()
                ))
            })?;
            if previous.checkpoint.origin != checkpoint.checkpoint.origin {
                return Err(TilesError::Fork(format!(
                    "{} is of origin {:?}, the export of {:?}: the directory holds another log",
                    checkpoint_path.display(),
                    previous.checkpoint.origin,
                    checkpoint.checkpoint.origin
                )));
            }
            if previous.checkpoint.size > size {
                return Err(TilesError::Fork(format!(
                    "the directory holds a tree of {} entries, the export {size}: a publication never goes back \
                     (export the whole log)",
                    previous.checkpoint.size
                )));
            }
            Some(previous.checkpoint)
        }
    };

    // Pass 1: check everything, write nothing.
    let mut existing = 0u64;
    let root = build(
        export,
        &meta.tenant,
        size,
        |tile, data| match read_optional(&dir.join(tile.path()))? {
            Some(stored) if stored != data => Err(TilesError::Fork(format!(
                "fork: the directory's {tile} differs from the one these entries make (the directory was written \
                 from another history of {}); nothing was written",
                meta.tenant
            ))),
            Some(_) => {
                existing += 1;
                Ok(())
            }
            None => Ok(()),
        },
        previous.as_ref().map(|p| (p.size, p.root)),
    )?;
    if root != checkpoint.checkpoint.root {
        return Err(TilesError::Checkpoint(format!(
            "the export's entries do not hash to its checkpoint's root (tree hash {}); nothing was written",
            std::any::type_name::<TileHasher>()
        )));
    }

    // Pass 2: write what is not there yet.
    let mut written = 0u64;
    build(
        export,
        &meta.tenant,
        size,
        |tile, data| {
            let path = dir.join(tile.path());
            if read_optional(&path)?.is_none() {
                write_atomically(&path, data)?;
                written += 1;
            }
            Ok(())
        },
        None,
    )?;
    write_atomically(&checkpoint_path, meta.checkpoint.as_bytes())?;

    let mut removed_partial = 0u64;
    for tile in tiles_of_size(size).into_iter().filter(TileId::is_full) {
        let partials = dir.join(format!("{}.p", tile.path()));
        if partials.is_dir() {
            std::fs::remove_dir_all(&partials).map_err(|cause| TilesError::Io { path: partials.clone(), cause })?;
            removed_partial += 1;
        }
    }
    Ok(TilesReport {
        tenant: meta.tenant.clone(),
        dir,
        size,
        previous_size: previous.map_or(0, |p| p.size),
        written,
        kept: existing,
        removed_partial,
    })
}

fn open(export: &Path) -> Result<ExportReader, TilesError> {
    ExportReader::open(export).map_err(|e| match e {
        FileError::Io { path, cause } => TilesError::Io { path, cause },
        FileError::Malformed(detail) => TilesError::Export(format!("{}: {detail}", export.display())),
    })
}

/// Streams the export's entries through a [`TileBuilder`], calling `each(tile, bytes)` for
/// every tile of the tree of `size` (full ones as they fill, partial ones at the end). With
/// `prefix = (m, root)`, checks that the tree of the first `m` entries has that root. Returns
/// the root of the whole tree.
fn build(
    export: &Path,
    tenant: &str,
    size: u64,
    mut each: impl FnMut(TileId, &[u8]) -> Result<(), TilesError>,
    prefix: Option<(u64, Hash32)>,
) -> Result<Hash32, TilesError> {
    let mut reader = open(export)?;
    let mut builder = TileBuilder::new();
    let mut frontier = Frontier::<TileHasher>::default();
    let mut failed: Option<TilesError> = None;
    let check_prefix = |frontier: &Frontier<TileHasher>| match prefix {
        Some((m, root)) if frontier.size() == m && frontier.root() != root => Err(TilesError::Fork(format!(
            "fork: the directory's checkpoint of {m} entries has another root than the first {m} entries of the \
             export (another history of {tenant}); nothing was written"
        ))),
        _ => Ok(()),
    };
    check_prefix(&frontier)?;
    while let Some(batch) = reader.next_batch() {
        let batch = batch.map_err(|e| TilesError::Export(format!("{}: {e}", export.display())))?;
        let entries = entries_from_batch(&batch, tenant)
            .map_err(|e| TilesError::Export(format!("{}: {}", export.display(), e.detail)))?;
        for entry in entries {
            if entry.seq != builder.size() {
                return Err(TilesError::Export(format!(
                    "{}: row of seq {} where seq {} belongs",
                    export.display(),
                    entry.seq,
                    builder.size()
                )));
            }
            frontier.push(TileHasher::hash_leaf(&entry.entry_hash), |_, _, _| {});
            builder.push(entry.entry_hash, |tile, hashes| {
                if failed.is_none() {
                    failed = each(tile, &tile_bytes(tile, hashes)).err();
                }
            });
            if let Some(error) = failed.take() {
                return Err(error);
            }
            check_prefix(&frontier)?;
        }
    }
    if builder.size() != size {
        return Err(TilesError::Export(format!(
            "{}: the rows end at seq {}, the metadata says {size}",
            export.display(),
            builder.size()
        )));
    }
    for (tile, hashes) in builder.partial_tiles() {
        each(tile, &tile_bytes(tile, &hashes))?;
    }
    Ok(frontier.root())
}

fn tile_bytes(tile: TileId, hashes: &[Hash32]) -> Vec<u8> {
    match tile.kind {
        TileKind::Hashes(_) => encode_tile(hashes),
        TileKind::Entries => encode_bundle(hashes),
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, TilesError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(cause) => Err(TilesError::Io { path: path.to_owned(), cause }),
    }
}

/// Writes `path` whole or not at all: a temporary file beside it (a dot name no tile path
/// has), synced, then renamed over it.
fn write_atomically(path: &Path, data: &[u8]) -> Result<(), TilesError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |cause| TilesError::Io { path, cause }
    };
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = parent.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
    file.write_all(data).map_err(io(&temp))?;
    file.sync_data().map_err(io(&temp))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io(path))
}

/// Every file under `dir`, by path relative to it (a test and a reviewer's helper: what a
/// static host would serve).
pub fn list_files(dir: &Path) -> Result<BTreeMap<String, Vec<u8>>, TilesError> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for item in std::fs::read_dir(&next).map_err(|cause| TilesError::Io { path: next.clone(), cause })? {
            let path = item.map_err(|cause| TilesError::Io { path: next.clone(), cause })?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).map_err(|cause| TilesError::Io { path: path.clone(), cause })?;
                let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
                files.insert(relative, bytes);
            }
        }
    }
    Ok(files)
}
