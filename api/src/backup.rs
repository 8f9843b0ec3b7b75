//! The `Admin` service: online backups (docs/backup.md).
//!
//! `Backup` takes a consistent copy of the data dir into `DATA_DIR/backup-staging/<ns>/`
//! (RocksDB checkpoints: hard links, so it costs little space), then streams its files to the
//! caller in 1 MiB chunks and the manifest last, and removes the copy when the stream ends,
//! whether the client took it all or went away. Appends go on throughout. One backup at a
//! time; operators only.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use ledger::backup::{self, Manifest};
use ledger::Ledger;
use projections::{Governor, GovernorError};
use proto::v1 as pb;
use tokio::sync::{mpsc, Semaphore};
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;
use crate::status::in_rpc_span;

/// Where backups are staged inside the data dir (emptied when the server starts).
pub const STAGING_DIR: &str = "backup-staging";
/// The largest file chunk sent.
pub const CHUNK_BYTES: usize = 1 << 20;

/// The `Admin` gRPC service.
#[derive(Debug, Clone)]
pub struct AdminService {
    ledger: Arc<Ledger>,
    governor: Option<Arc<Governor>>,
    one_at_a_time: Arc<Semaphore>,
    metrics: Option<Arc<Metrics>>,
    cluster: Option<crate::cluster::Cluster>,
}

impl AdminService {
    /// The service over a ledger and, when the server runs one, its governance worker (whose
    /// projection store the backups then include).
    pub fn new(ledger: Arc<Ledger>, governor: Option<Arc<Governor>>) -> Self {
        Self { ledger, governor, one_at_a_time: Arc::new(Semaphore::new(1)), metrics: None, cluster: None }
    }

    /// Counts backups in `metrics` (`ledger_backups_total`, the time of the last one streamed).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Answers `ClusterStatus` for this node of `cluster`.
    pub fn with_cluster(mut self, cluster: crate::cluster::Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    fn finished(&self, outcome: &'static str) {
        finished(self.metrics.as_deref(), &self.ledger, outcome);
    }
}

fn finished(metrics: Option<&Metrics>, ledger: &Ledger, outcome: &'static str) {
    if let Some(metrics) = metrics {
        let seconds = i64::try_from(ledger.config().clock.now_ns() / 1_000_000_000).unwrap_or(i64::MAX);
        metrics.backup_finished(outcome, seconds);
    }
}

/// Removes what an interrupted backup left in the staging directory (a crash mid-stream).
pub fn clear_staging(data_dir: &Path) -> std::io::Result<()> {
    let staging = data_dir.join(STAGING_DIR);
    match std::fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Takes a backup into `dir`: the projection store first, then the log (so no projection is
/// ahead of its log), then the manifest. Returns the manifest.
pub fn take(ledger: &Ledger, governor: Option<&Governor>, dir: &Path) -> Result<Manifest, Status> {
    let failed = |what: &str, e: &dyn std::fmt::Display| Status::internal(format!("backup: {what}: {e}"));
    std::fs::create_dir_all(dir.parent().expect("the staging dir has a parent"))
        .map_err(|e| failed("creating the staging directory", &e))?;
    backup::create_empty_dir(dir).map_err(|e| failed("staging directory", &e))?;
    let projections = match governor {
        Some(governor) => match governor.checkpoint_store(&dir.join(backup::PROJECTIONS_DIR)) {
            Ok(()) => true,
            Err(GovernorError::NotLoaded) => {
                return Err(Status::unavailable(
                    "the governance worker has not loaded its store yet: retry in a few seconds",
                ))
            }
            Err(e) => return Err(failed("checkpoint of the projection store", &e)),
        },
        None => false,
    };
    // `backup_into` wants a directory of its own: the log goes in `log/` and is moved up.
    let log = dir.join("log");
    let tenants = ledger.backup_into(&log).map_err(|e| failed("checkpoint of the log", &e))?;
    for entry in std::fs::read_dir(&log).map_err(|e| failed("staging", &e))? {
        let entry = entry.map_err(|e| failed("staging", &e))?;
        std::fs::rename(entry.path(), dir.join(entry.file_name())).map_err(|e| failed("staging", &e))?;
    }
    std::fs::remove_dir(&log).map_err(|e| failed("staging", &e))?;
    let files = backup::list_files(dir).map_err(|e| failed("listing the backup", &e))?;
    let roots = ledger.trust_roots();
    let manifest = Manifest {
        format: backup::FORMAT.into(),
        created_at: ledger::time::format_ns(i64::try_from(ledger.config().clock.now_ns()).unwrap_or(i64::MAX)),
        ledger_key: hex::encode(roots.ledger().as_bytes()),
        origin_prefix: ledger.origin_prefix().to_owned(),
        tenants,
        projections,
        files,
    };
    Ok(manifest)
}

/// Removes the staged copy when the stream is done with it (or dropped half-way).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove a staged backup");
        }
    }
}

type BackupStream = Pin<Box<dyn Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(match &self.cluster {
            Some(cluster) => cluster.status(),
            None => pb::ClusterStatus { clustered: false, ..Default::default() },
        }))
    }

    type BackupStream = BackupStream;

    async fn backup(&self, request: Request<pb::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        let span = crate::status::rpc_span("release_ledger.v1.Admin", "Backup");
        in_rpc_span(&span, async move {
            crate::access::require_operator(request.extensions())?;
            let permit = self
                .one_at_a_time
                .clone()
                .try_acquire_owned()
                .map_err(|_| Status::unavailable("another backup is being taken: retry when it is done"))?;
            let at = self.ledger.config().clock.now_ns();
            let dir = self.ledger.data_dir().join(STAGING_DIR).join(at.to_string());
            let (ledger, governor, staged_dir) = (self.ledger.clone(), self.governor.clone(), dir.clone());
            let started = std::time::Instant::now();
            let taken = tokio::task::spawn_blocking(move || {
                let staged = Staged(staged_dir.clone());
                take(&ledger, governor.as_deref(), &staged_dir).map(|manifest| (manifest, staged))
            })
            .await
            .map_err(|e| Status::internal(format!("backup: {e}")))
            .and_then(|taken| taken);
            let manifest = match taken {
                Ok(taken) => taken,
                Err(status) => {
                    if status.code() != tonic::Code::Unavailable {
                        self.finished("failed");
                    }
                    return Err(status);
                }
            };
            let (manifest, staged) = manifest;
            tracing::info!(
                files = manifest.files.len(),
                bytes = manifest.bytes(),
                tenants = manifest.tenants.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "backup staged; streaming it"
            );
            let (tx, rx) = mpsc::channel(2);
            let (metrics, ledger) = (self.metrics.clone(), self.ledger.clone());
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let _staged = staged;
                let outcome = match send_files(&dir, &manifest, &tx) {
                    Err(status) => {
                        tracing::error!(error = %status.message(), "backup failed while it was streamed");
                        let _ = tx.blocking_send(Err(status));
                        "failed"
                    }
                    Ok(false) => "abandoned",
                    Ok(true) => {
                        let manifest =
                            pb::BackupChunk { item: Some(pb::backup_chunk::Item::Manifest(manifest.to_bytes())) };
                        if tx.blocking_send(Ok(manifest)).is_ok() {
                            "streamed"
                        } else {
                            "abandoned"
                        }
                    }
                };
                tracing::info!(outcome, "backup ended");
                finished(metrics.as_deref(), &ledger, outcome);
            });
            let stream: BackupStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
            Ok(Response::new(stream))
        })
        .await
    }
}

/// Sends every file of the manifest in chunks: `Ok(true)` when all were sent, `Ok(false)` when
/// the client went away first.
fn send_files(
    dir: &Path,
    manifest: &Manifest,
    tx: &mpsc::Sender<Result<pb::BackupChunk, Status>>,
) -> Result<bool, Status> {
    use std::io::Read as _;
    for file in &manifest.files {
        let path = dir.join(&file.path);
        let mut reader =
            std::fs::File::open(&path).map_err(|e| Status::internal(format!("backup: reading {}: {e}", file.path)))?;
        let mut offset = 0u64;
        loop {
            let mut data = vec![0u8; CHUNK_BYTES];
            let mut filled = 0;
            while filled < data.len() {
                let n = reader
                    .read(&mut data[filled..])
                    .map_err(|e| Status::internal(format!("backup: reading {}: {e}", file.path)))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            data.truncate(filled);
            // An empty file is sent as one empty chunk, so the client creates it.
            if filled == 0 && offset > 0 {
                break;
            }
            let chunk = pb::backup_chunk::FileChunk { path: file.path.clone(), offset, data };
            if tx.blocking_send(Ok(pb::BackupChunk { item: Some(pb::backup_chunk::Item::File(chunk)) })).is_err() {
                return Ok(false);
            }
            offset += filled as u64;
            if filled < CHUNK_BYTES {
                break;
            }
        }
        if offset != file.size {
            return Err(Status::internal(format!(
                "backup: {} changed while it was sent ({offset} bytes, listed with {})",
                file.path, file.size
            )));
        }
    }
    Ok(true)
}
