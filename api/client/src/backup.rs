//! The client side of `Admin/Backup`: the streamed files written into a directory and
//! checked against the manifest the server sends last (docs/backup.md).

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use futures::StreamExt as _;
use ledger::backup::{self, Manifest};
use proto::v1 as pb;
use tonic::transport::Channel;

use crate::connect::{traced, Transport};

/// An admin client (backups) over an open channel.
pub type AdminClient = pb::admin_client::AdminClient<Transport>;

/// An admin client over `channel`; a chunk is at most 1 MiB, so the default limits hold.
pub fn admin_client(channel: Channel) -> AdminClient {
    pb::admin_client::AdminClient::new(traced(channel))
        .max_decoding_message_size(crate::DEFAULT_MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::DEFAULT_MAX_MESSAGE_BYTES)
}

/// What [`pull`] wrote.
#[derive(Debug)]
pub struct Pulled {
    /// The manifest (also written to the directory).
    pub manifest: Manifest,
    /// Bytes received (files only).
    pub bytes: u64,
}

/// Takes a backup from the server into `dir`, which must not exist or be empty: every file
/// (created 0600, directories 0700, each fsynced), then the manifest, then a check that the
/// directory holds exactly the manifest's files with their sizes and BLAKE3 hashes. A chunk
/// naming a path outside the directory, out of order or after the manifest is refused. On any
/// error the directory is left as it is (the caller removes it). `progress` is called with
/// the bytes received so far.
pub async fn pull(client: &mut AdminClient, dir: &Path, progress: impl Fn(u64)) -> anyhow::Result<Pulled> {
    backup::create_empty_dir(dir)?;
    let mut stream = client.backup(pb::BackupRequest {}).await.map_err(crate::refused)?.into_inner();
    let mut current: Option<(String, File, u64)> = None;
    let mut manifest_bytes = None;
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(crate::refused)?;
        if manifest_bytes.is_some() {
            bail!("the server sent more after the backup's manifest");
        }
        match chunk.item {
            Some(pb::backup_chunk::Item::File(file)) => {
                let same = current.as_ref().is_some_and(|(path, _, _)| *path == file.path);
                if !same {
                    if let Some((path, handle, _)) = current.take() {
                        handle.sync_all().with_context(|| format!("writing {path}"))?;
                    }
                    if file.offset != 0 {
                        bail!("the server started {} at offset {} (not 0)", ledger::clip(&file.path), file.offset);
                    }
                    current = Some((file.path.clone(), create(dir, &file.path)?, 0));
                }
                let (path, handle, written) = current.as_mut().expect("set above");
                if file.offset != *written {
                    bail!("the server sent {path} out of order: offset {} after {written} bytes", file.offset);
                }
                handle.write_all(&file.data).with_context(|| format!("writing {path}"))?;
                *written += file.data.len() as u64;
                bytes += file.data.len() as u64;
                progress(bytes);
            }
            Some(pb::backup_chunk::Item::Manifest(manifest)) => manifest_bytes = Some(manifest),
            None => bail!("the server sent an empty backup chunk"),
        }
    }
    if let Some((path, handle, _)) = current.take() {
        handle.sync_all().with_context(|| format!("writing {path}"))?;
    }
    let manifest_bytes = manifest_bytes
        .ok_or_else(|| anyhow!("the backup stream ended before its manifest: the backup is incomplete"))?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    backup::check_files(dir, &manifest)?;
    let path = dir.join(backup::MANIFEST_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(&manifest_bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    backup::sync_dirs(dir)?;
    Ok(Pulled { manifest, bytes })
}

/// Creates the file a chunk names under `dir` (its directories 0700), refusing a path that
/// could leave `dir` or a file that already exists.
fn create(dir: &Path, path: &str) -> anyhow::Result<File> {
    let relative = backup::relative_path(path)?;
    if path == backup::MANIFEST_FILE {
        bail!("the server sent a file named like the manifest");
    }
    let target = dir.join(&relative);
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut parent = target.parent().map(Path::to_path_buf);
    while let Some(p) = parent.filter(|p| p != dir && !p.exists()) {
        parent = p.parent().map(Path::to_path_buf);
        missing.push(p);
    }
    for p in missing.iter().rev() {
        std::fs::create_dir(p).with_context(|| format!("creating {}", p.display()))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("creating {}", p.display()))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("the server sent {path} twice, or it cannot be created"))
}
