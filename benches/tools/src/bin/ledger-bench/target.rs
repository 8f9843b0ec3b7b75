//! The server under test: spawned (the harness's [`SpawnedServer`]), or attached to, and the
//! health check that says it serves.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench_harness::server::{default_server_bin, ServerLog, SpawnedServer};

use crate::args::Args;

/// How long the spawned server may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the server is and what is known about it.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) pid: Option<u32>,
    pub(crate) admin_key: PathBuf,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) spawned: Option<SpawnedServer>,
}

impl Target {
    pub(crate) fn resolve(args: &Args) -> anyhow::Result<Self> {
        if let Some(url) = &args.server {
            let admin_key = match (&args.admin_key, &args.data_dir) {
                (Some(key), _) => key.clone(),
                (None, Some(dir)) => ledger::KeyPaths::new(dir).admin,
                (None, None) => bail!("with --server, give --admin-key or --data-dir (to register the bench's keys)"),
            };
            return Ok(Self {
                url: url.clone(),
                pid: args.server_pid,
                admin_key,
                data_dir: args.data_dir.clone(),
                spawned: None,
            });
        }
        let bin = match &args.server_bin {
            Some(bin) => bin.clone(),
            None => default_server_bin()?,
        };
        let server = SpawnedServer::start(&bin, args.data_dir.as_deref(), ServerLog::File, START_TIMEOUT)?;
        let admin_key = args.admin_key.clone().unwrap_or_else(|| ledger::KeyPaths::new(server.data_dir()).admin);
        Ok(Self {
            url: server.url(),
            pid: Some(server.pid()),
            admin_key,
            data_dir: Some(server.data_dir().to_path_buf()),
            spawned: Some(server),
        })
    }
}

/// Installs an operator token minted with the target's admin key, unless the environment gave a
/// token (the audience is the server's origin prefix, from `GetInfo`).
pub(crate) async fn operator_token(target: &Target) -> anyhow::Result<()> {
    let admin = ledger::KeyPair::load(&target.admin_key)
        .with_context(|| format!("loading the admin key {}", target.admin_key.display()))?;
    let mut client = ledger_client::connect(&target.url, ledger_client::DEFAULT_MAX_MESSAGE_BYTES).await?;
    let info = client.get_info(proto::v1::GetInfoRequest {}).await.map_err(ledger_client::refused)?.into_inner();
    ledger_client::sign_in(&info, "", &admin, Duration::from_secs(3600))?;
    Ok(())
}

/// Waits (up to 10 s) for the standard gRPC health service to report the Ledger as SERVING.
pub(crate) async fn wait_until_serving(url: &str) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let endpoint =
        tonic::transport::Channel::from_shared(url.to_owned()).with_context(|| format!("bad server URL {url:?}"))?;
    let channel = ledger_client::auth::with_tls(endpoint, url)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let mut health = HealthClient::new(channel);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = tonic_health::pb::HealthCheckRequest { service: "release_ledger.v1.Ledger".into() };
        let last = match health.check(request).await {
            Ok(response) if response.get_ref().status == ServingStatus::Serving as i32 => return Ok(()),
            Ok(response) => format!("status {:?}", response.get_ref().status()),
            Err(status) => ledger_client::status_line(&status),
        };
        if Instant::now() > deadline {
            bail!("the server at {url} is not SERVING after 10 s ({last})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
