//! `backup` and `restore` (docs/backup.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};
use clap::Args;
use ed25519_dalek::VerifyingKey;
use ledger::backup::{self, Manifest};
use ledger_client::backup::{admin_client, pull};
use ledger_tools::audit::{self, Outcome, VerifyOptions};

use crate::args::ServerArg;
use crate::{print, Refusal};

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    #[command(flatten)]
    pub(crate) server: ServerArg,
    /// The directory to write (must not exist, or be empty): written as DIR.partial, verified
    /// with `ledger-audit verify`'s checks, then renamed into place. It is a data dir (with the
    /// private keys: keep it as secret as the server's).
    #[arg(long)]
    pub(crate) to: PathBuf,
    /// Sign in with the data dir's admin key (an operator token for this command), unless a
    /// token is given (--token, RELEASE_LEDGER_TOKEN).
    #[arg(long)]
    pub(crate) admin_key: Option<PathBuf>,
    /// The ledger public key the backup must verify under (SPKI PEM, as keys/ledger.pub);
    /// default: the key the server reports, which proves the backup whole, not whose it is.
    #[arg(long)]
    pub(crate) ledger_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The backup directory (what `release-ledger backup --to` wrote).
    #[arg(long)]
    pub(crate) from: PathBuf,
    /// The new data dir (must not exist, or be empty): written as DATA_DIR.partial and
    /// renamed into place once whole.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// The ledger public key the backup must verify under; default: the backup's own.
    #[arg(long)]
    pub(crate) ledger_key: Option<PathBuf>,
}

fn partial(dir: &Path) -> anyhow::Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| anyhow!("{} names no directory", dir.display()))?;
    Ok(dir.with_file_name(format!("{}.partial", name.to_string_lossy())))
}

fn refuse_non_empty(dir: &Path) -> anyhow::Result<()> {
    if std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) {
        bail!(Refusal(format!(
            "{} exists and is not empty: a backup or restore never writes over anything",
            dir.display()
        )));
    }
    Ok(())
}

fn pinned_key(path: Option<&Path>) -> anyhow::Result<Option<VerifyingKey>> {
    path.map(|path| {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        ledger::keys::public_key_from_text(&text).with_context(|| format!("reading the ledger key {}", path.display()))
    })
    .transpose()
}

/// `ledger-audit verify DIR` on a backup, under the pinned key or the manifest's.
async fn audit_backup(dir: &Path, manifest: &Manifest, pinned: Option<VerifyingKey>) -> anyhow::Result<Outcome> {
    let key = match pinned {
        Some(key) => {
            if hex::encode(key.as_bytes()) != manifest.ledger_key {
                bail!(Refusal(format!(
                    "the backup was taken from the ledger with key {}, not the pinned key {}",
                    manifest.ledger_key,
                    hex::encode(key.as_bytes())
                )));
            }
            key
        }
        None => {
            let bytes: [u8; 32] = hex::decode(&manifest.ledger_key)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| anyhow!("the backup manifest's ledger key is not 32 bytes of hex"))?;
            ledger::keys::public_key_from_bytes(&bytes)?
        }
    };
    let dir = dir.to_path_buf();
    let outcome = tokio::task::spawn_blocking(move || {
        audit::verify_path(&dir, &VerifyOptions { ledger_key: Some(key), ..VerifyOptions::default() })
    })
    .await?
    .map_err(|e| anyhow!("{}", e.0))?;
    if let Some(failure) = &outcome.failure {
        bail!(Refusal(format!("the backup does not verify: {failure}")));
    }
    Ok(outcome)
}

fn tenants_json(outcome: &Outcome) -> serde_json::Value {
    outcome.tenants.iter().map(|t| serde_json::json!({ "tenant": t.tenant, "entries": t.entries })).collect()
}

fn tenants_text(outcome: &Outcome) -> String {
    outcome.tenants.iter().map(|t| format!("{} ({} entries)", t.tenant, t.entries)).collect::<Vec<_>>().join(", ")
}

/// `release-ledger backup`.
pub(crate) async fn backup(args: BackupArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    refuse_non_empty(&args.to)?;
    let partial = partial(&args.to)?;
    if partial.exists() {
        bail!(Refusal(format!(
            "{} exists (an interrupted backup?): remove it first; nothing was written",
            partial.display()
        )));
    }
    let pinned = pinned_key(args.ledger_key.as_deref())?;
    let channel = args.server.channel().await?;
    if let Some(path) = &args.admin_key {
        crate::args::sign_in_as_operator(&channel, path).await?;
    }
    let client = admin_client(channel);
    // A server taking another backup, or one that has not loaded its projection store yet (just
    // started), answers UNAVAILABLE: retried as the other commands retry (--retries), each
    // attempt from nothing.
    let attempt = || {
        let (mut client, partial) = (client.clone(), partial.clone());
        async move {
            if partial.exists() {
                std::fs::remove_dir_all(&partial)
                    .with_context(|| format!("removing {} after a failed attempt", partial.display()))?;
            }
            pull(&mut client, &partial, |_| {}).await
        }
    };
    let pulled = match args.server.retry().call_streaming("backup", attempt).await {
        Ok(pulled) => pulled,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e.context("the backup was not written"));
        }
    };
    let outcome = audit_backup(&partial, &pulled.manifest, pinned).await.map_err(|e| {
        e.context(format!("kept in {} for inspection; {} was not written", partial.display(), args.to.display()))
    })?;
    if args.to.exists() {
        std::fs::remove_dir(&args.to).with_context(|| format!("replacing the empty {}", args.to.display()))?;
    }
    std::fs::rename(&partial, &args.to).with_context(|| format!("renaming {} into place", partial.display()))?;
    let parent = args.to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(parent).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", parent.display()))?;
    let manifest = &pulled.manifest;
    let value = serde_json::json!({
        "path": args.to, "createdAt": manifest.created_at, "files": manifest.files.len(), "bytes": pulled.bytes,
        "ledgerKey": manifest.ledger_key, "projections": manifest.projections, "tenants": tenants_json(&outcome),
        "verified": true, "seconds": started.elapsed().as_secs_f64(),
    });
    print(json, value, || {
        format!(
            "backup of {} written to {} ({} files, {} bytes, {:.1} s) and verified: {}\nrestore with: release-ledger \
             restore --from {} --data-dir NEW_DATA_DIR",
            manifest.created_at,
            args.to.display(),
            manifest.files.len(),
            pulled.bytes,
            started.elapsed().as_secs_f64(),
            if outcome.tenants.is_empty() { "no tenants".to_owned() } else { tenants_text(&outcome) },
            args.to.display()
        )
    });
    Ok(())
}

/// `release-ledger restore`.
pub(crate) async fn restore(args: RestoreArgs, json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    refuse_non_empty(&args.data_dir)?;
    let pinned = pinned_key(args.ledger_key.as_deref())?;
    let manifest = backup::read_manifest(&args.from).map_err(|e| anyhow!(Refusal(e.to_string())))?;
    let from = args.from.clone();
    let checked = manifest.clone();
    tokio::task::spawn_blocking(move || backup::check_files(&from, &checked))
        .await?
        .map_err(|e| anyhow!(Refusal(format!("{e}; nothing was restored"))))?;
    let outcome = audit_backup(&args.from, &manifest, pinned).await.map_err(|e| e.context("nothing was restored"))?;
    let (from, to, copied) = (args.from.clone(), args.data_dir.clone(), manifest.clone());
    tokio::task::spawn_blocking(move || backup::restore_files(&from, &copied, &to))
        .await?
        .with_context(|| format!("restoring into {}", args.data_dir.display()))?;
    let value = serde_json::json!({
        "dataDir": args.data_dir, "from": args.from, "createdAt": manifest.created_at,
        "files": manifest.files.len(), "bytes": manifest.bytes(), "tenants": tenants_json(&outcome),
        "seconds": started.elapsed().as_secs_f64(),
    });
    print(json, value, || {
        format!(
            "restored the backup of {} into {} ({} files, {} bytes): {}\nserve it with: release-ledger serve --data-dir {}",
            manifest.created_at,
            args.data_dir.display(),
            manifest.files.len(),
            manifest.bytes(),
            if outcome.tenants.is_empty() { "no tenants".to_owned() } else { tenants_text(&outcome) },
            args.data_dir.display()
        )
    });
    Ok(())
}
