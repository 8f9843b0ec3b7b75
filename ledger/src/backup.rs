//! Online backups of a data dir, and their restore (docs/backup.md).
//!
//! A backup is a directory that is itself a data dir: `db/` (a RocksDB checkpoint of the
//! log), `anchor`, `keys/`, `projections/` (a checkpoint of the governance worker's store,
//! when the server has one), `cosignatures/` (when witnessing), and [`MANIFEST_FILE`], which
//! lists every other file with its size and BLAKE3 hash. So `ledger-audit verify BACKUP`
//! checks it read-only like any data dir, and `serve --data-dir` of a restored copy serves it.
//!
//! **Consistency.** [`Ledger::backup_into`] copies the anchored heads *before* the RocksDB
//! checkpoint: everything anchored was durable when the heads were copied, so the checkpoint
//! holds at least the anchor it is written with (`anchored ≤ durable` carries over), and a
//! backup that lost an acknowledged entry refuses to open like any store would. The server
//! takes the projection store's checkpoint *before* the log's, so every projection's position
//! is at most its log's size in the backup (the worker refolds the rest after a restore).
//!
//! **What a backup is not.** It holds the private keys (a backup is as secret as the data dir:
//! directories 0700, keys 0600), and it holds what the store held when it was taken, including
//! payloads a later redaction erases from the live store (docs/format.md, "Erasure").

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keys::KeyPaths;
use crate::store::anchor::{self, AnchoredHeads};
use crate::store::Ledger;

/// The manifest's file name inside a backup.
pub const MANIFEST_FILE: &str = "release-ledger-backup.json";
/// The manifest format this code writes and reads.
pub const FORMAT: &str = "release-ledger-backup/1";
/// Where the projection store's checkpoint goes inside a backup (as in a data dir).
pub const PROJECTIONS_DIR: &str = "projections";
/// The record a restore leaves in the data dir it wrote (the server warns about it at start).
pub const RESTORED_FILE: &str = "restored-from-backup.json";
/// The witnesses' cosignatures inside a data dir (copied when present).
const COSIGNATURES_DIR: &str = "cosignatures";

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupFile {
    /// Its path inside the backup, `/`-separated, relative.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// The hex BLAKE3 of its bytes.
    pub blake3: String,
}

/// What a backup holds (the file [`MANIFEST_FILE`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the server took it (RFC 3339, UTC).
    pub created_at: String,
    /// The ledger public key (hex) of the data dir it was taken from.
    pub ledger_key: String,
    /// The checkpoint origin prefix of that data dir.
    pub origin_prefix: String,
    /// Each tenant's size at least (the anchored heads the backup was written with).
    pub tenants: BTreeMap<String, u64>,
    /// Whether it holds the projection store (else a restored server folds it from the log).
    pub projections: bool,
    /// Every file but the manifest, sorted by path.
    pub files: Vec<BackupFile>,
}

impl Manifest {
    /// Parses a manifest, refusing another format and any file path that could leave the
    /// backup directory.
    pub fn parse(bytes: &[u8]) -> Result<Self, BackupError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| BackupError::Manifest(format!("not a backup manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(BackupError::Manifest(format!(
                "format {:?}; this release reads {FORMAT:?}",
                crate::clip(&manifest.format)
            )));
        }
        let mut previous: Option<&str> = None;
        for file in &manifest.files {
            relative_path(&file.path)?;
            if file.path == MANIFEST_FILE {
                return Err(BackupError::Manifest(format!("the manifest lists itself ({MANIFEST_FILE})")));
            }
            if previous.is_some_and(|p| p >= file.path.as_str()) {
                return Err(BackupError::Manifest(format!(
                    "files are not sorted and unique at {}",
                    crate::clip(&file.path)
                )));
            }
            previous = Some(&file.path);
        }
        Ok(manifest)
    }

    /// The bytes written to [`MANIFEST_FILE`].
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        bytes.push(b'\n');
        bytes
    }

    /// The total size of its files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A backup could not be taken, read or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A file operation failed.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// RocksDB refused the checkpoint.
    #[error("checkpoint of {path}: {cause}")]
    Checkpoint {
        /// The store.
        path: PathBuf,
        /// RocksDB's message.
        cause: String,
    },
    /// The manifest is missing, unreadable or invalid.
    #[error("backup manifest: {0}")]
    Manifest(String),
    /// A file differs from the manifest (missing, extra, another size or hash).
    #[error("backup {dir} is damaged: {problem}")]
    Damaged {
        /// The backup.
        dir: PathBuf,
        /// What differs.
        problem: String,
    },
    /// The destination holds something already.
    #[error("{0} exists and is not empty: a restore or backup never writes over anything")]
    NotEmpty(PathBuf),
    /// The ledger's writer is poisoned: the anchor may name a group RocksDB lacks, which only
    /// the next open replays, so a checkpoint now could hold less than the heads it carries.
    #[error(
        "the ledger's writer is poisoned ({0}): restart the server (its open replays what the failed commit left in \
         the anchor), then back up"
    )]
    Poisoned(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |cause| BackupError::Io { path: path.to_path_buf(), cause }
}

/// Checks a manifest path: relative, `/`-separated normal components only (no `..`, no `.`,
/// no empty component, no backslash), and returns it as a path.
pub fn relative_path(path: &str) -> Result<PathBuf, BackupError> {
    let bad = |why: &str| BackupError::Manifest(format!("file path {:?} {why}", crate::clip(path)));
    if path.is_empty() || path.len() > 4096 {
        return Err(bad("is empty or too long"));
    }
    if path.contains('\\') || path.contains('\0') {
        return Err(bad("contains a backslash or NUL"));
    }
    let parsed = PathBuf::from(path);
    for (i, component) in path.split('/').enumerate() {
        if component.is_empty() || component == "." || component == ".." {
            return Err(bad(&format!("has an empty, `.` or `..` component (the {}th)", i + 1)));
        }
    }
    if !parsed.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(bad("is not relative"));
    }
    Ok(parsed)
}

/// Creates `dir` (mode 0700) and its missing parents; `dir` itself must not exist or be an
/// empty directory.
pub fn create_empty_dir(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        Err(e) => return Err(io(dir)(e)),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

impl Ledger {
    /// Writes a consistent copy of the log into `dir` (which must not exist): the anchored
    /// heads of this moment, then a RocksDB checkpoint of `db/` (hard links where `dir` is on
    /// the same filesystem, so it costs little space until compaction replaces the files),
    /// the keys and the witnesses' cosignatures. Appends go on meanwhile; what they add after
    /// the heads were copied may or may not be in the checkpoint, and the anchor vouches for
    /// the heads only. Returns the anchored size of every tenant.
    pub fn backup_into(&self, dir: &Path) -> Result<BTreeMap<String, u64>, BackupError> {
        if dir.exists() {
            return Err(BackupError::NotEmpty(dir.to_path_buf()));
        }
        if let Some(reason) = self.poisoned() {
            return Err(BackupError::Poisoned(reason));
        }
        // The heads first (below the writer's lock for an instant): everything they name was
        // written to RocksDB before the checkpoint starts, which flushes the memtables first.
        let heads: AnchoredHeads =
            self.inner.anchor.lock().as_ref().map(anchor::Anchor::heads).cloned().unwrap_or_default();
        let sizes = self.tenant_sizes_by_tid(&heads);
        create_empty_dir(dir)?;
        let db_dir = dir.join("db");
        let checkpoint = rocksdb::checkpoint::Checkpoint::new(&self.inner.db)
            .map_err(|e| BackupError::Checkpoint { path: self.data_dir.join("db"), cause: e.to_string() })?;
        checkpoint
            .create_checkpoint(&db_dir)
            .map_err(|e| BackupError::Checkpoint { path: self.data_dir.join("db"), cause: e.to_string() })?;
        // Heads only, in a file just large enough for them: the restored store's first open
        // rewrites it at its full capacity.
        anchor::Anchor::create_with_capacity(dir, heads, 0).map_err(io(&dir.join(anchor::ANCHOR_FILE)))?;
        let from = KeyPaths::new(&self.data_dir);
        let to = KeyPaths::new(dir);
        let keys = dir.join("keys");
        std::fs::create_dir(&keys).map_err(io(&keys))?;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).map_err(io(&keys))?;
        for (source, target, mode) in [
            (&from.ledger, &to.ledger, 0o600),
            (&from.admin, &to.admin, 0o600),
            (&from.ledger_pub, &to.ledger_pub, 0o644),
        ] {
            if source.exists() {
                copy_file(source, target, mode, false)?;
            }
        }
        let cosignatures = self.data_dir.join(COSIGNATURES_DIR);
        if cosignatures.is_dir() {
            copy_tree(&cosignatures, &dir.join(COSIGNATURES_DIR), false)?;
        }
        Ok(sizes)
    }

    /// Tenant names for the anchored heads (tenant ids are internal).
    fn tenant_sizes_by_tid(&self, heads: &AnchoredHeads) -> BTreeMap<String, u64> {
        let committed = self.inner.committed.read();
        committed
            .tenants
            .iter()
            .filter_map(|(name, state)| heads.get(&state.tid).map(|head| (name.clone(), head.size)))
            .collect()
    }
}

/// Every file under `dir` but the manifest, sorted, with its size and BLAKE3.
pub fn list_files(dir: &Path) -> Result<Vec<BackupFile>, BackupError> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.retain(|f| f.path != MANIFEST_FILE);
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<BackupFile>) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            walk(root, &path, files)?;
        } else if kind.is_file() {
            let relative = path.strip_prefix(root).expect("walked under root");
            let name = relative
                .to_str()
                .ok_or_else(|| BackupError::Manifest(format!("{} is not a UTF-8 path", path.display())))?;
            let (size, hash) = hash_file(&path)?;
            files.push(BackupFile { path: name.to_owned(), size, blake3: hash });
        } else {
            return Err(BackupError::Manifest(format!("{} is neither a file nor a directory", path.display())));
        }
    }
    Ok(())
}

/// The size and hex BLAKE3 of a file.
pub fn hash_file(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().to_hex().to_string()))
}

/// Reads and parses `dir`'s manifest.
pub fn read_manifest(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|cause| match cause.kind() {
        std::io::ErrorKind::NotFound => {
            BackupError::Manifest(format!("{} has no {MANIFEST_FILE}: not a release-ledger backup", dir.display()))
        }
        _ => BackupError::Io { path: path.clone(), cause },
    })?;
    Manifest::parse(&bytes)
}

/// Checks that `dir` holds exactly the manifest's files, each with its size and hash.
pub fn check_files(dir: &Path, manifest: &Manifest) -> Result<(), BackupError> {
    let damaged = |problem: String| BackupError::Damaged { dir: dir.to_path_buf(), problem };
    let found: BTreeMap<String, BackupFile> = list_files(dir)?.into_iter().map(|f| (f.path.clone(), f)).collect();
    for want in &manifest.files {
        match found.get(&want.path) {
            None => return Err(damaged(format!("{} is missing", want.path))),
            Some(have) if have.size != want.size => {
                return Err(damaged(format!("{} is {} bytes, the manifest says {}", want.path, have.size, want.size)))
            }
            Some(have) if have.blake3 != want.blake3 => {
                return Err(damaged(format!(
                    "{} does not hash to what the manifest says (its bytes changed)",
                    want.path
                )))
            }
            Some(_) => {}
        }
    }
    let listed: std::collections::BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = found.keys().find(|path| !listed.contains(path.as_str())) {
        return Err(damaged(format!("{extra} is not in the manifest")));
    }
    Ok(())
}

/// Copies a checked backup into `data_dir` (which must not exist, or be empty): into a
/// sibling `DATA_DIR.partial`, every file and directory fsynced, the copy checked against the
/// manifest again, then renamed into place and the parent fsynced, so a crash leaves either no
/// data dir or a whole one. The manifest is not copied (the restored directory is a data dir,
/// not a backup); [`RESTORED_FILE`] records the backup it came from.
pub fn restore_files(backup: &Path, manifest: &Manifest, data_dir: &Path) -> Result<(), BackupError> {
    create_empty_dir(data_dir)?;
    let name = data_dir.file_name().ok_or_else(|| BackupError::NotEmpty(data_dir.to_path_buf()))?;
    let partial = data_dir.with_file_name(format!("{}.partial", name.to_string_lossy()));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(&partial))?;
    }
    create_empty_dir(&partial)?;
    for file in &manifest.files {
        let relative = relative_path(&file.path)?;
        let target = partial.join(&relative);
        let mut parent = target.parent().expect("a file has a parent").to_path_buf();
        if !parent.exists() {
            std::fs::create_dir_all(&parent).map_err(io(&parent))?;
            while parent != partial {
                std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o700)).map_err(io(&parent))?;
                parent = parent.parent().expect("under partial").to_path_buf();
            }
        }
        let mode = if file.path == "keys/ledger.pub" { 0o644 } else { 0o600 };
        copy_file(&backup.join(&relative), &target, mode, true)?;
    }
    sync_dirs(&partial)?;
    // What was written is read back: a copy that differs (a failing disk, a full one that
    // truncated a file) is not put in place.
    check_files(&partial, manifest)?;
    // Say where this data dir came from: whatever the old server acknowledged after the backup
    // is not here, and the restored server hands those seqs out again.
    let record = serde_json::json!({
        "backupCreatedAt": manifest.created_at,
        "restoredAt": crate::time::format_ns(
            i64::try_from(crate::clock::Clock::now_ns(&crate::clock::SystemClock)).unwrap_or(i64::MAX)
        ),
        "ledgerKey": manifest.ledger_key,
        "tenants": manifest.tenants,
    });
    let record_path = partial.join(RESTORED_FILE);
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(0o600).open(&record_path).map_err(io(&record_path))?;
    file.write_all(format!("{record:#}\n").as_bytes()).and_then(|()| file.sync_all()).map_err(io(&record_path))?;
    File::open(&partial).and_then(|d| d.sync_all()).map_err(io(&partial))?;
    // The empty target made above is replaced by the whole copy.
    std::fs::remove_dir(data_dir).map_err(io(data_dir))?;
    std::fs::rename(&partial, data_dir).map_err(io(data_dir))?;
    let parent = data_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(parent).and_then(|d| d.sync_all()).map_err(io(parent))?;
    Ok(())
}

/// Fsyncs every directory under `dir`, deepest first, and `dir`.
pub fn sync_dirs(dir: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_type().map_err(io(&entry.path()))?.is_dir() {
            sync_dirs(&entry.path())?;
        }
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn copy_file(from: &Path, to: &Path, mode: u32, sync: bool) -> Result<(), BackupError> {
    let mut source = File::open(from).map_err(io(from))?;
    let mut target = OpenOptions::new().write(true).create_new(true).mode(mode).open(to).map_err(io(to))?;
    std::io::copy(&mut source, &mut target).map_err(io(to))?;
    target.flush().map_err(io(to))?;
    if sync {
        target.sync_all().map_err(io(to))?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, sync: bool) -> Result<(), BackupError> {
    std::fs::create_dir(to).map_err(io(to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let kind = entry.file_type().map_err(io(&entry.path()))?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target, sync)?;
        } else if kind.is_file() {
            copy_file(&entry.path(), &target, 0o600, sync)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_that_could_leave_the_backup_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "db/../../x", "db//x", "./db", "db/.", "a\\b", "db/\0"] {
            assert!(relative_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["db/CURRENT", "keys/ledger.pem", "anchor", "projections/000012.sst"] {
            assert_eq!(relative_path(good).unwrap(), PathBuf::from(good));
        }
    }

    fn manifest(files: Vec<BackupFile>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            created_at: "2026-12-02T00:00:00Z".into(),
            ledger_key: "00".into(),
            origin_prefix: "x".into(),
            tenants: BTreeMap::new(),
            projections: false,
            files,
        }
    }

    #[test]
    fn a_manifest_round_trips_and_refuses_other_formats_unsorted_files_and_itself() {
        let file = |path: &str| BackupFile { path: path.into(), size: 1, blake3: "ab".into() };
        let good = manifest(vec![file("anchor"), file("db/CURRENT")]);
        assert_eq!(Manifest::parse(&good.to_bytes()).unwrap(), good);
        let mut other = good.clone();
        other.format = "release-ledger-backup/9".into();
        assert!(Manifest::parse(&other.to_bytes()).unwrap_err().to_string().contains("format"));
        let unsorted = manifest(vec![file("db/CURRENT"), file("anchor")]);
        assert!(Manifest::parse(&unsorted.to_bytes()).unwrap_err().to_string().contains("sorted"));
        let duplicated = manifest(vec![file("anchor"), file("anchor")]);
        assert!(Manifest::parse(&duplicated.to_bytes()).is_err());
        let itself = manifest(vec![file(MANIFEST_FILE)]);
        assert!(Manifest::parse(&itself.to_bytes()).unwrap_err().to_string().contains("lists itself"));
        let escaping = manifest(vec![file("../keys")]);
        assert!(Manifest::parse(&escaping.to_bytes()).is_err());
        assert!(Manifest::parse(b"{\"format\": 1}").is_err());
    }

    #[test]
    fn check_files_names_a_missing_a_changed_and_an_extra_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/CURRENT"), b"MANIFEST-000001\n").unwrap();
        std::fs::write(dir.path().join("anchor"), b"RLANCH01").unwrap();
        let m = manifest(list_files(dir.path()).unwrap());
        assert_eq!(m.files.len(), 2);
        check_files(dir.path(), &m).unwrap();

        std::fs::write(dir.path().join("db/CURRENT"), b"MANIFEST-000002\n").unwrap();
        let e = check_files(dir.path(), &m).unwrap_err().to_string();
        assert!(e.contains("db/CURRENT does not hash"), "{e}");
        std::fs::write(dir.path().join("db/CURRENT"), b"MANIFEST-000001\n").unwrap();

        std::fs::write(dir.path().join("db/extra"), b"x").unwrap();
        let e = check_files(dir.path(), &m).unwrap_err().to_string();
        assert!(e.contains("db/extra is not in the manifest"), "{e}");
        std::fs::remove_file(dir.path().join("db/extra")).unwrap();

        std::fs::remove_file(dir.path().join("anchor")).unwrap();
        let e = check_files(dir.path(), &m).unwrap_err().to_string();
        assert!(e.contains("anchor is missing"), "{e}");
    }

    #[test]
    fn restore_refuses_a_non_empty_target_and_leaves_it_untouched() {
        let backup = tempfile::tempdir().unwrap();
        std::fs::write(backup.path().join("anchor"), b"RLANCH01").unwrap();
        let m = manifest(list_files(backup.path()).unwrap());
        let target = tempfile::tempdir().unwrap();
        std::fs::write(target.path().join("mine"), b"keep").unwrap();
        let e = restore_files(backup.path(), &m, target.path()).unwrap_err();
        assert!(matches!(e, BackupError::NotEmpty(_)), "{e}");
        assert_eq!(std::fs::read(target.path().join("mine")).unwrap(), b"keep");
        assert!(!target.path().join("anchor").exists());

        let fresh = target.path().join("restored");
        restore_files(backup.path(), &m, &fresh).unwrap();
        assert_eq!(std::fs::read(fresh.join("anchor")).unwrap(), b"RLANCH01");
        assert!(!fresh.join(MANIFEST_FILE).exists());
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
