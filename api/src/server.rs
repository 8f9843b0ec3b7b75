//! `release-ledger serve`: opens (initialising on first start) the data dir, starts the
//! governance worker, serves gRPC (`Ledger`, `Query`, Arrow Flight exports, health, reflection)
//! and `/metrics`, and
//! shuts down gracefully: in-flight appends finish, live streams end with a resumable
//! `UNAVAILABLE`, the governance worker stops, the writer drains, and nothing acknowledged is
//! lost.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use arrow_flight::flight_service_server::FlightServiceServer;
use ledger::{Config, KeyPaths, Ledger};
use projections::{GovernanceObserver, Governor};
use proto::v1::admin_server::AdminServer;
use proto::v1::ledger_server::LedgerServer;
use proto::v1::query_server::QueryServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::backup::AdminService;
use crate::connections::{Acceptor, ConnectionOptions, METRICS_MAX_CONNECTIONS};
use crate::flight::FlightExportService;
use crate::metrics::Metrics;
use crate::query::QueryService;
use crate::service::LedgerService;
use crate::witnessing::{self, Cosignatures, Submitter, WitnessingOptions};

/// Default data dir.
pub const DEFAULT_DATA_DIR: &str = "./release-ledger-data";
/// Default gRPC address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default metrics address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Default grace period of a shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// The default largest gRPC message, bytes (4 MiB; shared with the clients).
pub use ledger_wire::DEFAULT_MAX_MESSAGE_BYTES;
/// The governance projection store, inside the data dir.
pub const PROJECTIONS_DIR: &str = "projections";
/// The largest HTTP/2 frame the gRPC listener accepts (`SETTINGS_MAX_FRAME_SIZE`, RFC 9113
/// §6.5.2): 64 KiB instead of the protocol's 16 KiB. A client sends a request's bytes in frames
/// of at most this size, so a batch append of 64 events (about 36 KB with 387-byte bodies)
/// arrives in one DATA frame instead of three, each of which the server parses, accounts for
/// in flow control and hands on separately. Measured side by side with the 16 KiB default: 1 ×
/// 64 +2.7 %, 64 × 64 +5.3 %, 16 × 64 +1.1 %, single events level (BENCHMARKS.md, "Issue 20,
/// twenty-seventh session"); 1 MiB frames measured no better. A frame is read whole before it
/// is parsed, so a peer can make the server hold 64 KiB of one frame instead of 16 (64 MiB at
/// the 1,024-connection bound instead of 16); the data of a stream in flight was already
/// bounded by the flow-control windows (1 MiB a stream, hyper's default), not by the frame.
pub const HTTP2_MAX_FRAME_BYTES: u32 = 64 << 10;

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// gRPC listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Metrics listen address (port 0 picks a free port).
    pub metrics_listen: SocketAddr,
    /// Largest gRPC message accepted or sent.
    pub max_message_bytes: usize,
    /// Largest event payload.
    pub max_payload_bytes: usize,
    /// How long a graceful shutdown waits for open connections before closing them.
    pub shutdown_grace: std::time::Duration,
    /// Free-space reserve of the data dir's filesystem (`ledger::Config::min_free_bytes`).
    pub min_free_bytes: u64,
    /// How long a lone single-event append waits awake for its answer
    /// (`ledger::Config::answer_spin`).
    pub answer_spin: std::time::Duration,
    /// Connection limit, handshake and idle timeouts, keepalive.
    pub connections: ConnectionOptions,
    /// Checkpoint origin prefix (`ledger::Config::origin_prefix`): `None` keeps the store's,
    /// or gives a new store one derived from its ledger key.
    pub origin_prefix: Option<String>,
    /// The C2SP tlog-tiles listen address (HTTP, `crate::tiles`); `None` (the default) serves
    /// no tiles.
    pub tiles_listen: Option<SocketAddr>,
    /// The web console's address (HTTP, `crate::console`; TLS with the gRPC port's certificate
    /// when it has one); `None` (the default) serves no console.
    pub console_listen: Option<SocketAddr>,
    /// Witness cosigning of the tenants' checkpoints (docs/witnessing.md); none: off.
    pub witnessing: Option<WitnessingOptions>,
    /// TLS on the gRPC port; `None`: plaintext, which a non-loopback address refuses unless
    /// `insecure_plaintext`.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Serve plaintext on a non-loopback address (logged as a warning).
    pub insecure_plaintext: bool,
    /// Serve `/metrics` over TLS too, with the gRPC port's certificate.
    pub metrics_tls: bool,
    /// Who may call what (docs/access.md).
    pub access: crate::access::AccessPolicy,
    /// Serve as one node of this cluster (docs/replication.md); `None` (the default): a single
    /// node.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// Plaintext gRPC on an address other hosts can reach, without `--insecure-plaintext`.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to serve plaintext gRPC on {address}, which other hosts can reach: give --tls-cert and --tls-key, \
     or listen on loopback, or say --insecure-plaintext"
)]
pub struct PlaintextRefused {
    /// The listen address.
    pub address: SocketAddr,
}

/// What a started server tells its operator.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    /// The bound gRPC address.
    pub grpc: SocketAddr,
    /// The bound metrics address.
    pub metrics: SocketAddr,
    /// The bound tlog-tiles address, if tiles are served.
    pub tiles: Option<SocketAddr>,
    /// The bound web console address, if the console is served.
    pub console: Option<SocketAddr>,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Whether this start created the data dir's keys.
    pub initialised: bool,
    /// Key file paths.
    pub admin_key: PathBuf,
    /// The ledger key file.
    pub ledger_key: PathBuf,
    /// The ledger public key file.
    pub ledger_public_key: PathBuf,
    /// Hex key ids.
    pub admin_key_id: String,
    /// The ledger key id.
    pub ledger_key_id: String,
    /// The checkpoint origin prefix: the audience of reader tokens.
    pub origin_prefix: String,
    /// Whether the gRPC port speaks TLS.
    pub tls: bool,
    /// This node's id, when it is a node of a cluster.
    pub cluster_node: Option<u64>,
}

/// A listen address another process holds: the caller names the setting that moves it.
#[derive(Debug, thiserror::Error)]
#[error("{what} address {address} is in use")]
pub struct AddressInUse {
    /// `gRPC`, `metrics` or `tiles`.
    pub what: &'static str,
    /// The address.
    pub address: SocketAddr,
}

/// A data dir another process (a running server) holds the store lock of.
#[derive(Debug, thiserror::Error)]
#[error("the data dir {} is in use by another release-ledger server (pid {pid})", data_dir.display())]
pub struct DataDirInUse {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The process holding its lock.
    pub pid: i32,
}

/// Binds `address`; one in use is an [`AddressInUse`].
async fn bind(address: SocketAddr, what: &'static str) -> anyhow::Result<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Ok(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(AddressInUse { what, address }.into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("binding {what} address {address}"))),
    }
}

/// Runs the server until `shutdown` resolves; `on_started` is called once it is listening.
pub async fn serve(
    options: ServeOptions,
    on_started: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Secure by default: plaintext only on loopback unless the operator says otherwise. The TLS
    // files are read before anything binds, so a bad certificate leaves nothing behind.
    if options.tls.is_none() && !options.listen.ip().is_loopback() {
        if !options.insecure_plaintext {
            return Err(PlaintextRefused { address: options.listen }.into());
        }
        tracing::warn!(listen = %options.listen, "serving plaintext gRPC on a non-loopback address (--insecure-plaintext)");
    }
    // The console carries sign-in tokens: the same rule.
    if let Some(console) = options.console_listen.filter(|a| options.tls.is_none() && !a.ip().is_loopback()) {
        if !options.insecure_plaintext {
            return Err(anyhow::anyhow!(
                "refusing to serve the web console in plaintext on {console}, which other hosts can reach: give \
                 --tls-cert and --tls-key, or listen on loopback, or say --insecure-plaintext"
            ));
        }
        tracing::warn!(console = %console, "serving the web console in plaintext on a non-loopback address (--insecure-plaintext)");
    }
    let tls_state = options.tls.clone().map(crate::tls::TlsState::load).transpose()?;
    let console_tls = match (&options.tls, options.console_listen) {
        (Some(files), Some(_)) => Some(crate::tls::TlsState::load_with_alpn(files.clone(), crate::tls::ALPN_METRICS)?),
        _ => None,
    };
    let metrics_tls = match (&options.tls, options.metrics_tls) {
        (Some(files), true) => Some(crate::tls::TlsState::load_with_alpn(files.clone(), crate::tls::ALPN_METRICS)?),
        (None, true) => anyhow::bail!("--metrics-tls needs --tls-cert and --tls-key"),
        (_, false) => None,
    };
    // The ports first: a port in use must leave nothing behind on disk (no data dir, no keys).
    let grpc_listener = bind(options.listen, "gRPC").await?;
    let metrics_listener = bind(options.metrics_listen, "metrics").await?;
    let tiles_listener = match options.tiles_listen {
        Some(address) => Some(bind(address, "tiles").await?),
        None => None,
    };
    let console_listener = match options.console_listen {
        Some(address) => Some(bind(address, "console").await?),
        None => None,
    };
    // A server already running on the data dir: say so, rather than RocksDB's lock error.
    if let Ok(ledger::ServerLock::HeldBy { pid }) = ledger::server_lock(&options.data_dir) {
        return Err(DataDirInUse { data_dir: options.data_dir.clone(), pid }.into());
    }
    let paths = KeyPaths::new(&options.data_dir);
    let initialised = !paths.ledger.exists();
    let metrics = Metrics::new();
    let config = Config {
        max_payload_bytes: options.max_payload_bytes,
        min_free_bytes: options.min_free_bytes,
        answer_spin: options.answer_spin,
        origin_prefix: options.origin_prefix.clone(),
        observer: Some(metrics.clone()),
        // The governance catalogue: unknown types and bad data are refused before storage.
        rules: Some(Arc::new(projections::Catalogue)),
        ..Config::default()
    };
    // The pool that verifies large requests in pieces, made here by an ordinary thread (see
    // `build_verify_pool`); a second server in one process (the tests') shares the first's.
    if !ledger::signatures::build_verify_pool() {
        tracing::debug!("the verification pool was built already");
    }
    let data_dir = options.data_dir.clone();
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(&data_dir, config))
        .await?
        .with_context(|| format!("opening data dir {}", options.data_dir.display()))?;
    let ledger = Arc::new(ledger);
    let roots = ledger.trust_roots();
    // A cluster node routes its appends through Raft before anything can append (the
    // governance worker appends as soon as it starts).
    let cluster = match options.cluster.clone() {
        Some(config) => Some(
            crate::cluster::Cluster::start(ledger.clone(), config, options.max_message_bytes)
                .await
                .with_context(|| format!("joining the cluster with data dir {}", options.data_dir.display()))?,
        ),
        None => None,
    };
    // A restored data dir says so at every start, as a salvaged one does (docs/backup.md).
    if let Ok(record) = std::fs::read_to_string(options.data_dir.join(ledger::backup::RESTORED_FILE)) {
        tracing::warn!(
            restored = %record.split_whitespace().collect::<Vec<_>>().join(" "),
            "this data dir was restored from a backup: what the old server acknowledged after the backup was taken \
             is not in it, and those seqs are handed out again"
        );
    }

    // The governance worker folds every tenant's log into its projections and appends the
    // decisions it owes. It loads its store and catches up on its own thread, so serving the log
    // never waits for it; the Query service answers UNAVAILABLE until it has loaded.
    let projections_dir = options.data_dir.join(PROJECTIONS_DIR);
    let (worker_ledger, observer) = (ledger.clone(), metrics.clone() as Arc<dyn GovernanceObserver>);
    let governor = tokio::task::spawn_blocking(move || {
        Governor::start(worker_ledger, &projections_dir, Some(observer))
            .with_context(|| format!("starting the governance worker over {}", projections_dir.display()))
    })
    .await??;
    let governor = Arc::new(governor);
    // A backup interrupted by a crash left its staged copy behind (hard links, mostly).
    crate::backup::clear_staging(&options.data_dir)
        .with_context(|| format!("removing {}", options.data_dir.join(crate::backup::STAGING_DIR).display()))?;

    let connections = options.connections;
    let grpc_acceptor =
        Acceptor::new(grpc_listener, "grpc", connections.max_connections, connections, metrics.connections("grpc"));
    // The metrics listener gets the same deadlines and a small limit of its own, so a flood of
    // scrapes cannot take descriptors from gRPC clients.
    let metrics_acceptor = Acceptor::new(
        metrics_listener,
        "metrics",
        METRICS_MAX_CONNECTIONS,
        connections,
        metrics.connections("metrics"),
    );
    // The tiles listener (HTTP/1, static resources) gets the gRPC connection limit and
    // deadlines, counted apart.
    let tiles_acceptor = tiles_listener.map(|listener| {
        Acceptor::new(listener, "tiles", connections.max_connections, connections, metrics.connections("tiles"))
    });
    let console_acceptor = console_listener.map(|listener| {
        Acceptor::new(listener, "console", connections.max_connections, connections, metrics.connections("console"))
    });
    let started = Started {
        grpc: grpc_acceptor.local_addr()?,
        metrics: metrics_acceptor.local_addr()?,
        tiles: tiles_acceptor.as_ref().map(Acceptor::local_addr).transpose()?,
        console: console_acceptor.as_ref().map(Acceptor::local_addr).transpose()?,
        data_dir: options.data_dir.clone(),
        initialised,
        admin_key: paths.admin.clone(),
        ledger_key: paths.ledger.clone(),
        ledger_public_key: paths.ledger_pub.clone(),
        admin_key_id: roots.admin_id().to_hex(),
        ledger_key_id: roots.ledger_id().to_hex(),
        origin_prefix: ledger.origin_prefix().to_owned(),
        tls: tls_state.is_some(),
        cluster_node: cluster.as_ref().map(crate::cluster::Cluster::node_id),
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut service =
        LedgerService::new(ledger.clone(), metrics.clone(), stop_rx.clone()).with_governance(governor.clone());
    if let Some(cluster) = &cluster {
        service = service.with_forwarder(cluster.forwarder());
    }
    // Witnessing: a background task submits the tenants' checkpoints on an interval; the
    // service serves the cosigned notes it stores.
    let mut witnessing_task = None;
    let mut console_cosignatures = None;
    if let Some(WitnessingOptions { policy, interval }) = options.witnessing.clone() {
        let cosignatures = Arc::new(Cosignatures::open(&options.data_dir, policy)?);
        let submitter = Submitter::new(ledger.clone(), cosignatures.clone())?;
        console_cosignatures = Some(cosignatures.clone());
        service = service.with_cosignatures(cosignatures);
        witnessing_task = Some(tokio::spawn(witnessing::run(submitter, interval, stop_rx.clone())));
    }
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<LedgerServer<LedgerService>>().await;
    health_reporter.set_serving::<AdminServer<AdminService>>().await;
    // Query and Flight are NOT_SERVING until the worker has loaded the projections (Flight's
    // `entries` table would answer before, but ListFlights and the projection tables would not).
    health_reporter.set_not_serving::<QueryServer<QueryService>>().await;
    health_reporter.set_not_serving::<FlightServiceServer<FlightExportService>>().await;
    tokio::spawn(announce_when_loaded(governor.clone(), health_reporter.clone(), stop_rx.clone()));
    // Reflection in both versions: `v1` (grpc-go, grpcurl 1.9+) and `v1alpha`, which older
    // clients still speak (grpcurl 1.8, grpcio-reflection, Postman), as grpc-go serves both.
    let (reflection_v1, reflection_v1alpha) = reflection()?;
    let console_service = service.clone();
    let ledger_server = LedgerServer::new(service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let query_server = QueryServer::new(QueryService::new(ledger.clone(), governor.clone()))
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let mut admin_service = AdminService::new(ledger.clone(), Some(governor.clone())).with_metrics(metrics.clone());
    if let Some(cluster) = &cluster {
        admin_service = admin_service.with_cluster(cluster.clone());
    }
    let admin_server = AdminServer::new(admin_service)
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
    let raft_server = cluster.as_ref().map(|cluster| {
        proto::v1::raft_server::RaftServer::new(cluster.service())
            .max_decoding_message_size(crate::cluster::network::MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(crate::cluster::network::MAX_RAFT_MESSAGE_BYTES)
    });
    let cluster_headers = cluster.clone();
    // Arrow Flight exports, on the same port. The service splits record batches well within
    // the encoding limit; the limit itself still guards every message.
    let flight_server =
        FlightServiceServer::new(FlightExportService::new(ledger.clone(), governor.clone(), options.max_message_bytes))
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);

    let access_metrics = metrics.access_decisions();
    let scraped = ledger.clone();
    let metrics_router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            metrics.observe_combined(scraped.combined_signatures());
            async move {
                ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
            }
        }),
    );
    let mut metrics_stop = stop_rx.clone();
    let metrics_stopped = async move {
        let _ = metrics_stop.wait_for(|stopping| *stopping).await;
    };
    let metrics_task = match metrics_tls.clone() {
        Some(state) => {
            let listener = crate::tls::TlsListener::new(metrics_acceptor, state)?;
            tokio::spawn(
                async move { axum::serve(listener, metrics_router).with_graceful_shutdown(metrics_stopped).await },
            )
        }
        None => tokio::spawn(async move {
            axum::serve(metrics_acceptor, metrics_router).with_graceful_shutdown(metrics_stopped).await
        }),
    };

    let tiles_task = tiles_acceptor.map(|acceptor| {
        let router = crate::tiles::router(ledger.clone());
        let mut tiles_stop = stop_rx.clone();
        tokio::spawn(async move {
            axum::serve(acceptor, router)
                .with_graceful_shutdown(async move {
                    let _ = tiles_stop.wait_for(|stopping| *stopping).await;
                })
                .await
        })
    });

    on_started(&started);
    tracing::info!(grpc = %started.grpc, metrics = %started.metrics, data_dir = %options.data_dir.display(), "serving");

    for state in [tls_state.clone(), metrics_tls, console_tls.clone()].into_iter().flatten() {
        tokio::spawn(state.watch(stop_rx.clone()));
    }
    if !options.access.oidc.is_empty() {
        tokio::spawn(options.access.oidc.clone().refresh_periodically(stop_rx.clone()));
    }
    let access = crate::access::AccessLayer::new(ledger.clone(), options.access.clone(), Some(access_metrics));
    // The web console: the same access decisions (the layer above), the same TLS.
    let console_task = match console_acceptor {
        Some(acceptor) => {
            let console = crate::console::Console::new(
                ledger.clone(),
                governor.clone(),
                console_service,
                access.clone(),
                console_tls.is_some(),
                console_cosignatures,
                cluster.clone(),
            )
            .with_stop(stop_rx.clone());
            let router = console.router().into_make_service_with_connect_info::<crate::console::ConsolePeer>();
            let mut console_stop = stop_rx.clone();
            let stopped = async move {
                let _ = console_stop.wait_for(|stopping| *stopping).await;
            };
            Some(match console_tls.clone() {
                Some(state) => {
                    let listener = crate::tls::TlsListener::new(acceptor, state)?;
                    tokio::spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stopped).await })
                }
                None => {
                    tokio::spawn(async move { axum::serve(acceptor, router).with_graceful_shutdown(stopped).await })
                }
            })
        }
        None => None,
    };
    let mut grpc_stop = stop_rx.clone();
    let stop_tx = Arc::new(stop_tx);
    let signal_stop = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal_stop.send_replace(true);
    });
    let grpc = tonic::transport::Server::builder()
        // HTTP/2 PINGs on a quiet connection find peers that vanished; a PING unanswered within
        // the timeout closes the connection (the acknowledgements also count as activity for
        // the idle timeout, so a live client holding a quiet Subscribe stays).
        .http2_keepalive_interval(connections.keepalive_interval)
        .http2_keepalive_timeout(Some(connections.keepalive_timeout))
        .max_frame_size(HTTP2_MAX_FRAME_BYTES)
        .layer(tower::util::MapResponseLayer::new(crate::limits::oversize_is_resource_exhausted))
        // A cluster node says, on every answer, where it stands: its role, the leader, and the
        // Raft log it holds and has applied (how far its reads are behind).
        .layer(tower::util::MapResponseLayer::new(move |mut response: http::Response<tonic::body::Body>| {
            if let Some(cluster) = &cluster_headers {
                for (name, value) in cluster.headers() {
                    if let Ok(value) = http::HeaderValue::from_str(&value) {
                        response.headers_mut().insert(name, value);
                    }
                }
            }
            response
        }))
        // The caller's W3C trace context and baggage: the parent of every RPC span.
        .layer(crate::propagation::RemoteContextLayer)
        // Who may call what: every request is decided here first (docs/access.md).
        .layer(access)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ledger_server)
        .add_service(query_server)
        .add_service(flight_server)
        .add_service(admin_server)
        .add_optional_service(raft_server)
        // Our accept loop (`connections`): bounded connections, handshake and idle deadlines,
        // TCP_NODELAY and keepalive on every socket, back-off when out of file descriptors.
        .serve_with_incoming_shutdown(crate::tls::incoming(grpc_acceptor, tls_state), async move {
            let _ = grpc_stop.wait_for(|stopping| *stopping).await;
        });
    // A graceful stop waits for open connections to finish; a client that never closes its
    // connection must not hold the server forever, so the wait is bounded.
    let mut grace_stop = stop_rx.clone();
    let grace = options.shutdown_grace;
    tokio::select! {
        result = grpc => result.context("gRPC server failed")?,
        () = async move {
            let _ = grace_stop.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "grace period over; closing the remaining connections"),
    }
    stop_tx.send_replace(true);
    let _ = metrics_task.await;
    if let Some(task) = tiles_task {
        let _ = task.await;
    }
    // Live-update streams end at the stop; a page still being sent gets the grace period.
    if let Some(task) = console_task {
        if tokio::time::timeout(grace, task).await.is_err() {
            tracing::warn!(?grace, "the console's connections did not close within the grace period");
        }
    }
    if let Some(task) = witnessing_task {
        let _ = task.await;
    }
    // In-flight RPCs are done. Stop the governance worker first (it appends decisions), then
    // Raft (a cluster node), then drain the writer so every queued append commits, and close.
    tokio::task::spawn_blocking(move || governor.shutdown()).await?;
    if let Some(cluster) = &cluster {
        cluster.shutdown().await;
    }
    tokio::task::spawn_blocking(move || ledger.shutdown()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The reflection services, `v1` and `v1alpha`, each describing every service on the port:
/// `Ledger`, `Query`, Arrow Flight, health and reflection itself.
fn reflection() -> anyhow::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
    tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
)> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(proto::FLIGHT_FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().context("building the reflection service (v1)")?;
    let v1alpha = builder().build_v1alpha().context("building the reflection service (v1alpha)")?;
    Ok((v1, v1alpha))
}

/// Once the governance worker has loaded its projections: reports `Query` as SERVING and logs
/// how far behind the log the projections are (the worker then catches up on its own).
async fn announce_when_loaded(
    governor: Arc<Governor>,
    health: tonic_health::server::HealthReporter,
    stop: watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    while !governor.ready() {
        if *stop.borrow() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    health.set_serving::<QueryServer<QueryService>>().await;
    health.set_serving::<FlightServiceServer<FlightExportService>>().await;
    let Ok(lag) = tokio::task::spawn_blocking(move || governor.lag()).await else { return };
    tracing::info!(
        lag_entries = lag.values().sum::<u64>(),
        lagging_tenants = lag.values().filter(|l| **l > 0).count(),
        tenants = lag.len(),
        load_ms = started.elapsed().as_millis() as u64,
        "governance projections loaded"
    );
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is **called**, not when
/// the future is first polled: a caller that creates it before announcing that it listens is
/// stopped gracefully by a signal that comes right after the announcement (before, such a
/// SIGTERM killed the process: `crash::sigterm_right_after_listening_is_graceful`).
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        // A signal whose handler cannot be installed never resolves: the other one still stops
        // the server (and with neither, only SIGKILL does).
        async fn received(signal: std::io::Result<tokio::signal::unix::Signal>, name: &str) {
            match signal {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for {name}; it will not stop the server");
                    std::future::pending::<()>().await;
                }
            }
        }
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            tokio::select! {
                _ = received(interrupt, "SIGINT") => {}
                _ = received(terminate, "SIGTERM") => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
