//! TLS on the gRPC port: rustls (ring provider) over our accept loop, certificate and key from
//! PEM files, reloaded on SIGHUP and when either file changes (checked every
//! [`RELOAD_POLL`]); optional client certificates verified against a CA bundle (mTLS).
//!
//! A reload that fails (a half-written file, a key that does not match) keeps the
//! configuration in force and logs why; new connections get the new configuration, open ones
//! keep theirs. The handshake runs in its own task under the connection handshake timeout, so a
//! slow or silent client never holds up the accept loop; a failed handshake is counted
//! (`ledger_connections_total{outcome="tls_handshake_failed"}`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use parking_lot::RwLock;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls;

use crate::connections::{Acceptor, Conn};

/// How often the certificate files are checked for changes.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// The files of the server's TLS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM (leaf first).
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA bundle, PEM, that client certificates are verified against (mTLS); `None`: no client
    /// certificates are asked for.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required (with `client_ca`); otherwise one is optional
    /// and a client without one authenticates with a token, or not at all.
    pub require_client_cert: bool,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&PathBuf> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().collect()
    }

    fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.paths().into_iter().map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok()).collect()
    }

    /// Reads the files into a rustls server configuration offering `alpn`.
    pub fn server_config(&self, alpn: &[&[u8]]) -> anyhow::Result<rustls::ServerConfig> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .with_context(|| format!("reading TLS certificate {}", self.cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("parsing TLS certificate {}", self.cert.display()))?;
        if certs.is_empty() {
            anyhow::bail!("TLS certificate {} holds no certificate", self.cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("reading TLS private key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("reading client CA bundle {}", ca.display()))?
                {
                    let cert = cert.with_context(|| format!("parsing client CA bundle {}", ca.display()))?;
                    roots.add(cert).with_context(|| format!("client CA bundle {}", ca.display()))?;
                }
                if roots.is_empty() {
                    anyhow::bail!("client CA bundle {} holds no certificate", ca.display());
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
                builder.with_client_cert_verifier(verifier.build().context("client certificate verifier")?)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .with_context(|| format!("TLS certificate {} and key {}", self.cert.display(), self.key.display()))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

/// The configuration in force, and the files it came from.
#[derive(Debug)]
pub struct TlsState {
    files: TlsFiles,
    alpn: &'static [&'static [u8]],
    current: RwLock<(Arc<rustls::ServerConfig>, Vec<Option<SystemTime>>)>,
}

/// ALPN of the gRPC port.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN of the metrics listener (Prometheus scrapes over HTTP/1.1).
pub const ALPN_METRICS: &[&[u8]] = &[b"http/1.1"];

impl TlsState {
    /// Loads `files` for the gRPC port; an error names the file at fault.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Self>> {
        Self::load_with_alpn(files, ALPN_GRPC)
    }

    /// Loads `files`, offering `alpn`.
    pub fn load_with_alpn(files: TlsFiles, alpn: &'static [&'static [u8]]) -> anyhow::Result<Arc<Self>> {
        let stamps = files.stamps();
        let config = Arc::new(files.server_config(alpn)?);
        Ok(Arc::new(Self { files, alpn, current: RwLock::new((config, stamps)) }))
    }

    /// Re-reads the files; on error the configuration in force stays (and the files as they
    /// are now are not tried again until they change again, so a broken file is logged once).
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamps = self.files.stamps();
        match self.files.server_config(self.alpn) {
            Ok(config) => {
                *self.current.write() = (Arc::new(config), stamps);
                Ok(())
            }
            Err(e) => {
                self.current.write().1 = stamps;
                Err(e)
            }
        }
    }

    fn changed(&self) -> bool {
        self.files.stamps() != self.current.read().1
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().0.clone())
    }

    /// Reloads on SIGHUP and when a file changes, until `stop`.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hup = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup = std::future::pending::<Option<()>>();
            let why = tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => return,
                _ = hup => "SIGHUP",
                () = tokio::time::sleep(RELOAD_POLL) => {
                    if !self.changed() {
                        continue;
                    }
                    "a certificate file changed"
                }
            };
            let state = self.clone();
            match tokio::task::spawn_blocking(move || state.reload()).await {
                Ok(Ok(())) => {
                    tracing::info!(cause = why, cert = %self.files.cert.display(), "TLS configuration reloaded")
                }
                Ok(Err(e)) => tracing::warn!(
                    cause = why,
                    error = format!("{e:#}"),
                    "TLS configuration not reloaded; the one in force stays"
                ),
                Err(e) => tracing::warn!(error = %e, "TLS reload task failed"),
            }
        }
    }
}

/// What the services learn of a connection (request extension): the peer's address and, over
/// TLS with a client certificate, its chain.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// The client certificate chain (leaf first), verified against the client CA bundle.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A served connection: plaintext or TLS.
#[derive(Debug)]
pub enum Io {
    /// Plaintext.
    Plain(Conn),
    /// TLS.
    Tls(Box<tokio_rustls::server::TlsStream<Conn>>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(c) => c.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(c) => Pin::new(c).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl tonic::transport::server::Connected for Io {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        match self {
            Io::Plain(c) => PeerInfo { remote: c.connect_info().remote_addr(), certificates: None },
            Io::Tls(s) => {
                let (conn, session) = s.get_ref();
                let certificates = session
                    .peer_certificates()
                    .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect::<Vec<_>>()));
                PeerInfo { remote: conn.connect_info().remote_addr(), certificates }
            }
        }
    }
}

/// The TLS connections of `acceptor`: each handshake in its own task under the handshake
/// timeout, failures counted; ends when the receiver is dropped.
fn handshakes(
    acceptor: Acceptor,
    tls: Arc<TlsState>,
) -> mpsc::Receiver<(tokio_rustls::server::TlsStream<Conn>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut acceptor = acceptor;
        let timeout = acceptor.options().handshake_timeout;
        let failures = acceptor.metrics().tls_handshake_failures.clone();
        loop {
            let (conn, peer) = tokio::select! {
                next = acceptor.next_connection() => next,
                () = tx.closed() => return,
            };
            let (handshake, tx, failures) = (tls.acceptor(), tx.clone(), failures.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(timeout, handshake.accept(conn)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send((stream, peer)).await;
                    }
                    Ok(Err(e)) => {
                        failures.inc();
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    }
                    Err(_) => {
                        failures.inc();
                        tracing::debug!(%peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    rx
}

/// The connections tonic serves: `acceptor`'s, through a TLS handshake when `tls` is set.
pub fn incoming(
    acceptor: Acceptor,
    tls: Option<Arc<TlsState>>,
) -> Pin<Box<dyn futures::Stream<Item = io::Result<Io>> + Send>> {
    use futures::StreamExt as _;
    let Some(tls) = tls else {
        return Box::pin(acceptor.into_stream().map(|conn| conn.map(Io::Plain)));
    };
    let connections = tokio_stream::wrappers::ReceiverStream::new(handshakes(acceptor, tls));
    Box::pin(connections.map(|(stream, _)| Ok(Io::Tls(Box::new(stream)))))
}

/// An axum listener serving TLS over `Acceptor` (the metrics listener with `--metrics-tls`).
#[derive(Debug)]
pub struct TlsListener {
    connections: mpsc::Receiver<(tokio_rustls::server::TlsStream<Conn>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// TLS over `acceptor` with `tls`.
    pub fn new(acceptor: Acceptor, tls: Arc<TlsState>) -> io::Result<Self> {
        let local = acceptor.local_addr()?;
        Ok(Self { connections: handshakes(acceptor, tls), local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.connections.recv().await {
            Some(connection) => connection,
            // The accept loop never ends on its own: wait for the server's shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
