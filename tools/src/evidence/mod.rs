//! Evidence packs (docs/evidence.md): one release's decisions with everything an auditor needs
//! to check them offline, as a directory of plain files.
//!
//! ```text
//! manifest.json                what the pack holds: tenant, release, checkpoint, entries and their roles
//! ledger.pub                   the ledger's public key (SPKI PEM)
//! checkpoint.note              the tenant's checkpoint every entry is proven in (C2SP signed note)
//! entries/<seq>.dsse.json      each entry's DSSE envelope as the log holds it (none for a redacted one)
//! proofs/<seq>.tlog-proof      each entry's C2SP tlog-proof against checkpoint.note
//! attestations/<seq>.intoto.json  each decision as a signed in-toto statement (docs/attestation.md)
//! report.md, report.html       the decisions for people: gates, approvals, freezes, risk
//! ```
//!
//! A pack is written by `release-ledger evidence` and checked by `ledger-audit
//! verify-evidence`, both through [`Pack::files`]: the verifier parses every file, checks it
//! ([`verify()`]), rebuilds the pack's files from what it parsed (re-deriving every decision and
//! re-rendering both reports) and requires them equal byte for byte to the files given. So
//! no byte of a pack can change, appear or go missing without the verifier naming the file.

mod report;
mod verify;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePublicKey as _;
use ed25519_dalek::VerifyingKey;
use ledger::tlog_proof::TlogProof;
use ledger::{Entry, EntryBody, Envelope, Hash32, ParsedEvent, SignedCheckpoint};
use projections::evidence::{rederive, EvidenceError, Rederived, Role};
use serde::{Deserialize, Serialize};

pub use verify::{verify, PackFailure, Verified};

/// The manifest's `format`.
pub const FORMAT: &str = "release-ledger/evidence-pack/v1";
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The ledger key's file name.
pub const LEDGER_KEY: &str = "ledger.pub";
/// The checkpoint's file name.
pub const CHECKPOINT: &str = "checkpoint.note";
/// The Markdown report's file name.
pub const REPORT_MD: &str = "report.md";
/// The HTML report's file name.
pub const REPORT_HTML: &str = "report.html";
/// Largest file of a pack the verifier reads (an envelope is at most the ledger's payload
/// limit, 1 MiB by default, in base64; a report of the largest release is well below).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most files a pack may hold.
pub const MAX_FILES: usize = 1 << 20;

/// A pack's files: relative path (`/`-separated) → bytes.
pub type Files = BTreeMap<String, Vec<u8>>;

/// The file of an entry's envelope.
pub fn entry_file(seq: u64) -> String {
    format!("entries/{seq}.dsse.json")
}

/// The file of an entry's inclusion proof.
pub fn proof_file(seq: u64) -> String {
    format!("proofs/{seq}.{}", ledger::tlog_proof::EXTENSION)
}

/// The file of a decision's attestation.
pub fn attestation_file(seq: u64) -> String {
    format!("attestations/{seq}.intoto.json")
}

/// One entry of a pack.
#[derive(Debug, Clone)]
pub struct PackEntry {
    /// Why it is in the pack.
    pub role: Role,
    /// The entry (re-hashed by whoever built the pack).
    pub entry: Entry,
    /// Its RFC 6962 inclusion proof in the pack's checkpoint, leaf's sibling first.
    pub path: Vec<Hash32>,
}

/// A release's evidence pack, in memory.
#[derive(Debug, Clone)]
pub struct Pack {
    /// The tenant.
    pub tenant: String,
    /// The release.
    pub release: String,
    /// The ledger key everything is checked with.
    pub ledger_key: VerifyingKey,
    /// The checkpoint every entry is proven in (verified with `ledger_key`).
    pub checkpoint: SignedCheckpoint,
    /// The entries, in seq order.
    pub entries: Vec<PackEntry>,
    /// Each decision of the release: its seq → its attestation (a DSSE envelope).
    pub attestations: BTreeMap<u64, Envelope>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// The tenant.
    pub tenant: String,
    /// The release.
    pub release_id: String,
    /// The checkpoint's origin (the tenant's log).
    pub origin: String,
    /// The checkpoint's size: every entry is proven in the tree of this many entries.
    pub checkpoint_size: u64,
    /// The ledger key's id (hex).
    pub ledger_key_id: String,
    /// The entries, in seq order.
    pub entries: Vec<ManifestEntry>,
    /// The release's decisions, in seq order (each is also among `entries`).
    pub decisions: Vec<ManifestDecision>,
}

/// An entry of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestEntry {
    /// Its seq.
    pub seq: u64,
    /// `release`, `governance`, `context` or `redacted`.
    pub role: String,
    /// Its event type (`redacted` when its payload is erased).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The seq of the `EntryRedacted` that erased it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted_by: Option<u64>,
}

/// A decision of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestDecision {
    /// Its seq.
    pub seq: u64,
    /// `ReleaseApproved`, `ReleaseRejected`, ...
    #[serde(rename = "type")]
    pub event_type: String,
}

/// The event type of an entry (`redacted` when erased, `unreadable` when its body does not
/// parse).
pub fn event_type_of(entry: &Entry) -> String {
    match entry.envelope() {
        None => "redacted".to_owned(),
        Some(envelope) => ParsedEvent::parse(&envelope.payload)
            .map(|p| p.header.event_type)
            .unwrap_or_else(|_| "unreadable".to_owned()),
    }
}

/// Whether an entry is one of the ledger's decisions.
pub fn is_decision(entry: &Entry) -> bool {
    ledger::event::DECISION_TYPES.contains(&event_type_of(entry).as_str())
}

impl Pack {
    /// The release's decisions re-derived from the pack's entries (see
    /// [`projections::evidence::rederive`]).
    pub fn rederive(&self) -> Result<Rederived, EvidenceError> {
        let entries: Vec<(Role, Entry)> = self.entries.iter().map(|e| (e.role, e.entry.clone())).collect();
        rederive(&self.tenant, &self.release, &entries)
    }

    /// The manifest.
    pub fn manifest(&self) -> Manifest {
        let entries = self
            .entries
            .iter()
            .map(|e| ManifestEntry {
                seq: e.entry.seq,
                role: e.role.as_str().to_owned(),
                event_type: event_type_of(&e.entry),
                redacted_by: match e.entry.body {
                    EntryBody::Redacted { by_seq } => Some(by_seq),
                    EntryBody::Present(_) => None,
                },
            })
            .collect();
        let decisions = self
            .entries
            .iter()
            .filter(|e| e.role == Role::Release && is_decision(&e.entry))
            .map(|e| ManifestDecision { seq: e.entry.seq, event_type: event_type_of(&e.entry) })
            .collect();
        Manifest {
            format: FORMAT.to_owned(),
            tenant: self.tenant.clone(),
            release_id: self.release.clone(),
            origin: self.checkpoint.checkpoint.origin.clone(),
            checkpoint_size: self.checkpoint.checkpoint.size,
            ledger_key_id: ledger::KeyId::of(&self.ledger_key).to_hex(),
            entries,
            decisions,
        }
    }

    /// Every file of the pack, the reports rendered from the decisions re-derived from its
    /// entries. Fails when they do not follow from them.
    pub fn files(&self) -> Result<Files, EvidenceError> {
        let rederived = self.rederive()?;
        let manifest = self.manifest();
        let mut files = Files::new();
        let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
        json.push(b'\n');
        files.insert(MANIFEST.to_owned(), json);
        files.insert(LEDGER_KEY.to_owned(), public_key_pem(&self.ledger_key).into_bytes());
        files.insert(CHECKPOINT.to_owned(), self.checkpoint.note.clone().into_bytes());
        for PackEntry { entry, path, .. } in &self.entries {
            if let Some(envelope) = entry.envelope() {
                files.insert(entry_file(entry.seq), format!("{}\n", envelope.to_json()).into_bytes());
            }
            let proof = TlogProof {
                extra: Some(
                    ledger::hash::entry_hash_input(entry.seq, entry.recorded_at, &entry.prev_hash, &entry.payload_hash)
                        .to_vec(),
                ),
                index: entry.seq,
                path: path.clone(),
                note: self.checkpoint.note.clone(),
            };
            files.insert(proof_file(entry.seq), proof.to_text().into_bytes());
        }
        for (seq, envelope) in &self.attestations {
            files.insert(attestation_file(*seq), format!("{}\n", envelope.to_json()).into_bytes());
        }
        let report = report::Report::new(self, &manifest, &rederived);
        files.insert(REPORT_MD.to_owned(), report.markdown().into_bytes());
        files.insert(REPORT_HTML.to_owned(), report.html().into_bytes());
        Ok(files)
    }
}

impl Pack {
    /// `release`'s pack straight from a store holding the ledger key (the server's data dir,
    /// the tests, the fuzz seeds): what `release-ledger evidence` builds over gRPC, at the
    /// tenant's current checkpoint. Each attestation is signed here with the store's ledger
    /// key, as the server signs it.
    pub fn from_ledger(ledger: &ledger::Ledger, tenant: &str, release: &str) -> Result<Self, String> {
        let checkpoint = ledger.checkpoint(tenant).map_err(|e| e.to_string())?;
        let size = checkpoint.checkpoint.size;
        let read = |from: u64| ledger.entries(tenant, from, size).map_err(|e| e.to_string());
        let is_intent = |e: &Entry| {
            e.envelope().and_then(|envelope| ParsedEvent::parse(&envelope.payload).ok()).is_some_and(|p| {
                p.header.event_type == "ReleaseIntentDeclared" && p.header.release_id.as_deref() == Some(release)
            })
        };
        let mut intent = None;
        for entry in read(0)? {
            let entry = entry.map_err(|e| e.to_string())?;
            if is_intent(&entry) {
                intent = Some(entry);
                break;
            }
        }
        let mut selector = projections::evidence::Selector::new(release, intent.as_ref()).map_err(|e| e.to_string())?;
        for entry in read(0)? {
            selector.offer(entry.map_err(|e| e.to_string())?);
        }
        let mut entries = Vec::new();
        for (role, entry) in selector.finish() {
            let path = ledger.inclusion_proof(tenant, entry.seq, size).map_err(|e| e.to_string())?.path;
            entries.push(PackEntry { role, entry, path });
        }
        let by_seq: BTreeMap<u64, &Entry> = entries.iter().map(|e| (e.entry.seq, &e.entry)).collect();
        let key = ledger.ledger_key();
        let key_id = key.key_id().to_hex();
        let origin = checkpoint.checkpoint.origin.clone();
        let who = projections::attestation::Subject { origin: &origin, ledger_key_id: &key_id, tenant, release };
        let mut attestations = BTreeMap::new();
        for e in entries.iter().filter(|e| e.role == Role::Release && is_decision(&e.entry)) {
            use projections::attestation::{self, AttestedEntry};
            let decision = AttestedEntry::from(&e.entry);
            let data = attestation::decision_of(tenant, release, &decision).map_err(|e| e.to_string())?;
            let mut evidence = Vec::with_capacity(data.evidence.len());
            for seq in &data.evidence {
                let entry = by_seq
                    .get(seq)
                    .ok_or_else(|| format!("decision {}: evidence seq {seq} is not selected", e.entry.seq))?;
                evidence.push(AttestedEntry::from(*entry));
            }
            let envelope = attestation::signed(key, &who, &decision, &evidence).map_err(|e| e.to_string())?;
            attestations.insert(e.entry.seq, envelope);
        }
        Ok(Self {
            tenant: tenant.to_owned(),
            release: release.to_owned(),
            ledger_key: key.verifying_key(),
            checkpoint,
            entries,
            attestations,
        })
    }
}

/// The SPKI PEM of a public key (`openssl pkey -pubin` reads it).
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF).unwrap_or_default()
}

/// Why a pack directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PackIoError {
    /// A file system operation failed.
    #[error("{path}: {cause}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The directory holds what no pack holds.
    #[error("{path}: {reason}")]
    NotAPack {
        /// Where.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackIoError + '_ {
    move |cause| PackIoError::Io { path: path.to_path_buf(), cause }
}

/// Reads every file under `dir` (regular files and directories only: a symbolic link or any
/// other kind of file is refused, as is a file over [`MAX_FILE_BYTES`] or more than
/// [`MAX_FILES`] files).
pub fn read_dir(dir: &Path) -> Result<Files, PackIoError> {
    let mut files = Files::new();
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if !meta.is_dir() {
        return Err(PackIoError::NotAPack { path: dir.into(), reason: "not a directory".into() });
    }
    read_into(dir, "", &mut files)?;
    Ok(files)
}

fn read_into(dir: &Path, prefix: &str, files: &mut Files) -> Result<(), PackIoError> {
    let mut names = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io(dir))? {
        let item = item.map_err(io(dir))?;
        names.push(item.file_name());
    }
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str() else {
            return Err(PackIoError::NotAPack { path, reason: "a file name that is not UTF-8".into() });
        };
        let relative = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            read_into(&path, &format!("{relative}/"), files)?;
        } else if meta.is_file() {
            if meta.len() > MAX_FILE_BYTES {
                let reason = format!("{} bytes, more than any pack file ({MAX_FILE_BYTES})", meta.len());
                return Err(PackIoError::NotAPack { path, reason });
            }
            if files.len() >= MAX_FILES {
                return Err(PackIoError::NotAPack { path, reason: format!("more than {MAX_FILES} files") });
            }
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            files.insert(relative, bytes);
        } else {
            return Err(PackIoError::NotAPack { path, reason: "neither a regular file nor a directory".into() });
        }
    }
    Ok(())
}

/// Writes `files` as the new directory `out`, all or nothing: into a temporary directory
/// beside it, every file and directory fsynced, then renamed to `out` (its parent created if
/// missing). An existing `out` is refused.
pub fn write_dir(files: &Files, out: &Path) -> Result<(), PackIoError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(PackIoError::NotAPack {
            path: out.into(),
            reason: "already exists: choose a new directory".into(),
        });
    }
    let parent = parent_dir(out);
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let temp = tempfile::Builder::new().prefix(".evidence-pack-").tempdir_in(&parent).map_err(io(&parent))?;
    let mut dirs = std::collections::BTreeSet::new();
    for (name, bytes) in files {
        let path = temp.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
            dirs.insert(dir.to_path_buf());
        }
        let mut file = std::fs::File::create(&path).map_err(io(&path))?;
        file.write_all(bytes).map_err(io(&path))?;
        file.sync_all().map_err(io(&path))?;
    }
    for dir in dirs.iter().rev() {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    }
    let temp = temp.keep();
    if let Err(cause) = std::fs::rename(&temp, out) {
        let _ = std::fs::remove_dir_all(&temp);
        return Err(PackIoError::Io { path: out.into(), cause });
    }
    std::fs::File::open(&parent).and_then(|d| d.sync_all()).map_err(io(&parent))?;
    Ok(())
}

/// The directory `out` is written in (`.` for a bare name).
fn parent_dir(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `out` names a pack as one file (an uncompressed ustar archive, `*.tar`) rather than
/// a directory.
pub fn is_archive(out: &Path) -> bool {
    out.extension().is_some_and(|e| e == "tar")
}

/// Writes `files` as the new archive `out` (ustar; entries in name order, mode 0644, owner 0,
/// mtime 0, so the same pack is the same bytes): to `out.partial`, fsynced, renamed. An
/// existing `out` is refused.
pub fn write_archive(files: &Files, out: &Path) -> Result<(), PackIoError> {
    if std::fs::symlink_metadata(out).is_ok() {
        return Err(PackIoError::NotAPack { path: out.into(), reason: "already exists: choose a new file".into() });
    }
    let parent = parent_dir(out);
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let partial = out.with_extension("tar.partial");
    let file = std::fs::File::create(&partial).map_err(io(&partial))?;
    let file = archive_into(files, std::io::BufWriter::new(file))
        .and_then(|w| w.into_inner().map_err(std::io::IntoInnerError::into_error))
        .map_err(io(&partial))?;
    file.sync_all().map_err(io(&partial))?;
    drop(file);
    std::fs::rename(&partial, out).map_err(io(out))?;
    std::fs::File::open(&parent).and_then(|d| d.sync_all()).map_err(io(&parent))?;
    Ok(())
}

/// `files` as an archive in memory, the same bytes [`write_archive`] writes (the web console's
/// download).
pub fn archive(files: &Files) -> std::io::Result<Vec<u8>> {
    archive_into(files, Vec::new())
}

/// Writes `files` to `out` as ustar: entries in name order, mode 0644, owner 0, mtime 0.
fn archive_into<W: std::io::Write>(files: &Files, out: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, bytes.as_slice())?;
    }
    builder.into_inner()
}

/// Reads a pack archive: regular files only (directory entries are skipped; links, devices
/// and the like refused), each name relative with plain components, none twice, within
/// [`MAX_FILE_BYTES`] and [`MAX_FILES`].
pub fn read_archive(path: &Path) -> Result<Files, PackIoError> {
    let not_a_pack = |reason: String| PackIoError::NotAPack { path: path.into(), reason };
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut files = Files::new();
    for entry in archive.entries().map_err(io(path))? {
        let mut entry = entry.map_err(io(path))?;
        let kind = entry.header().entry_type();
        let name = entry.path().map_err(io(path))?.into_owned();
        let shown = name.display().to_string();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(not_a_pack(format!("{shown}: not a regular file ({kind:?})")));
        }
        let plain = name.components().all(|c| matches!(c, std::path::Component::Normal(_)));
        let Some(relative) = name.to_str().filter(|_| plain && !shown.is_empty()) else {
            return Err(not_a_pack(format!("{shown:?}: not a relative path of plain UTF-8 names")));
        };
        let size = entry.header().size().map_err(io(path))?;
        if size > MAX_FILE_BYTES {
            return Err(not_a_pack(format!("{shown}: {size} bytes, more than any pack file ({MAX_FILE_BYTES})")));
        }
        if files.len() >= MAX_FILES {
            return Err(not_a_pack(format!("more than {MAX_FILES} files")));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(io(path))?;
        let relative = relative.trim_start_matches("./").to_owned();
        if files.insert(relative, bytes).is_some() {
            return Err(not_a_pack(format!("{shown} is in the archive twice")));
        }
    }
    Ok(files)
}

/// Reads a pack, a directory or an archive ([`read_dir`], [`read_archive`]).
pub fn read(path: &Path) -> Result<Files, PackIoError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    if meta.is_file() {
        read_archive(path)
    } else {
        read_dir(path)
    }
}

/// Writes a pack where `out` says: an archive for `*.tar`, else a directory.
pub fn write(files: &Files, out: &Path) -> Result<(), PackIoError> {
    if is_archive(out) {
        write_archive(files, out)
    } else {
        write_dir(files, out)
    }
}
