//! Connection handling of both listeners (gRPC and `/metrics`): every accepted connection holds
//! one of a bounded number of permits, must start speaking within the handshake timeout, and is
//! closed after a period with no bytes in either direction; the accept loop backs off instead of
//! spinning when the process is out of file descriptors.
//!
//! Why this is ours and not tonic's or axum's: tonic's accept loop retries a failed `accept`
//! at once, so at the file-descriptor limit (a listen socket with a pending connection stays
//! readable, and every `accept` fails with `EMFILE`) it spins a whole core; hyper has no
//! handshake timeout, so a TCP connection that never sends the HTTP/2 preface is kept forever;
//! and neither bounds the number of connections. [`Acceptor`] is the accept loop and [`Conn`]
//! the IO type that enforces the deadlines; tonic's `serve_with_incoming_shutdown` and
//! `axum::serve` drive them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Default largest number of open gRPC connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time a new connection has to send its first bytes (the HTTP/2 preface).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a connection may stay without a byte in either direction.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default interval of the server's HTTP/2 PINGs (and TCP keepalive probes).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Default time a PING may wait for its acknowledgement before the connection is closed.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Open connections of the metrics listener (a scraper needs one or two).
pub const METRICS_MAX_CONNECTIONS: usize = 64;

/// Bytes a client must send before the handshake deadline stops applying: the length of the
/// HTTP/2 connection preface (`PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`). An HTTP/1 request line with
/// its `Host` header (the metrics listener) is longer.
const PREFACE_BYTES: usize = 24;
/// A failure of `accept` this soon after the previous one belongs to the same episode (logged
/// once), and a success this long after the last failure ends it.
const EPISODE_QUIET: Duration = Duration::from_secs(1);
/// Least time between two warnings that the connection limit was reached.
const LIMIT_WARNING_EVERY: Duration = Duration::from_secs(10);
/// First and longest pause of the accept loop after a failed `accept`.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// Linux `ENFILE` and `EMFILE`: the system's or the process's file table is full.
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
/// Linux `ENOMEM` and `ENOBUFS`: the kernel cannot allocate the socket.
const ENOMEM: i32 = 12;
const ENOBUFS: i32 = 105;

/// How connections are bounded; the `serve` flags of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Largest number of open gRPC connections; one more is accepted and closed at once.
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// Time without a byte read or written after which a connection is closed (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Interval of HTTP/2 PINGs and TCP keepalive probes on a quiet connection (`None`: off).
    pub keepalive_interval: Option<Duration>,
    /// Time an HTTP/2 PING may wait for its acknowledgement.
    pub keepalive_timeout: Duration,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
        }
    }
}

/// The metrics of one listener (see [`crate::metrics::Metrics::connections`]).
#[derive(Debug, Clone)]
pub struct ConnectionMetrics {
    /// Open connections.
    pub open: IntGauge,
    /// Connections accepted and served.
    pub accepted: IntCounter,
    /// Connections accepted and closed at once: the connection limit was reached.
    pub refused_limit: IntCounter,
    /// Connections closed because they sent no preface within the handshake timeout.
    pub handshake_timeouts: IntCounter,
    /// Connections closed after the idle timeout.
    pub idle_timeouts: IntCounter,
    /// Connections whose TLS handshake failed or timed out.
    pub tls_handshake_failures: IntCounter,
    /// Failed `accept` calls because the process or system ran out of file descriptors or
    /// socket memory (the accept loop backs off).
    pub accept_exhausted: IntCounter,
    /// Other failed `accept` calls.
    pub accept_failed: IntCounter,
}

/// The accept loop of one listener: bounded connections, deadlines, back-off on `EMFILE`.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    name: &'static str,
    permits: Arc<Semaphore>,
    max_connections: usize,
    options: ConnectionOptions,
    metrics: ConnectionMetrics,
    /// The current run of failed `accept` calls, if any (see [`EPISODE_QUIET`]).
    failing: Option<Failing>,
    /// When the last warning that the limit was reached was logged.
    limit_warned: Option<Instant>,
}

/// A run of failed `accept` calls: logged when it starts and when it ends, not per call, so a
/// server at its descriptor limit with connections coming and going logs two lines, not two
/// per connection.
#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    last: Instant,
    failures: u64,
}

impl Acceptor {
    /// An accept loop over `listener`, named `name` in logs, holding at most `max_connections`
    /// open (the deadlines and keepalive come from `options`).
    pub fn new(
        listener: TcpListener,
        name: &'static str,
        max_connections: usize,
        options: ConnectionOptions,
        metrics: ConnectionMetrics,
    ) -> Self {
        let max_connections = max_connections.clamp(1, Semaphore::MAX_PERMITS);
        let permits = Arc::new(Semaphore::new(max_connections));
        Self { listener, name, permits, max_connections, options, metrics, failing: None, limit_warned: None }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener's metrics.
    pub fn metrics(&self) -> &ConnectionMetrics {
        &self.metrics
    }

    /// The connection options.
    pub fn options(&self) -> &ConnectionOptions {
        &self.options
    }

    /// The next connection to serve. Connections over the limit are closed here; a failed
    /// `accept` is retried after a pause that doubles up to half a second, so a full file table
    /// costs a few syscalls a second instead of a core, and each episode is logged once.
    pub async fn next_connection(&mut self) -> (Conn, SocketAddr) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    backoff = FIRST_BACKOFF;
                    if let Some(failing) = self.failing.filter(|f| f.last.elapsed() >= EPISODE_QUIET) {
                        tracing::info!(
                            listener = self.name,
                            failed_accepts = failing.failures,
                            lasted_ms = u64::try_from((failing.last - failing.since).as_millis()).unwrap_or(u64::MAX),
                            "accepting connections again"
                        );
                        self.failing = None;
                    }
                    let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                        // Closing at once tells the client now, where leaving it in the backlog
                        // would let it wait for its own timeout.
                        self.metrics.refused_limit.inc();
                        if self.limit_warned.is_none_or(|at| at.elapsed() >= LIMIT_WARNING_EVERY) {
                            self.limit_warned = Some(Instant::now());
                            tracing::warn!(
                                listener = self.name,
                                max_connections = self.max_connections,
                                refused_total = self.metrics.refused_limit.get(),
                                "connection limit reached: closing new connections until one closes"
                            );
                        }
                        drop(stream);
                        continue;
                    };
                    self.configure(&stream);
                    self.metrics.accepted.inc();
                    return (Conn::new(stream, permit, &self.options, self.metrics.clone()), peer);
                }
                // The peer gave up between SYN and accept: nothing to wait for.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    let exhausted = matches!(e.raw_os_error(), Some(EMFILE | ENFILE | ENOMEM | ENOBUFS));
                    if exhausted {
                        self.metrics.accept_exhausted.inc();
                    } else {
                        self.metrics.accept_failed.inc();
                    }
                    let now = Instant::now();
                    match &mut self.failing {
                        Some(failing) if now - failing.last < EPISODE_QUIET => {
                            failing.last = now;
                            failing.failures += 1;
                        }
                        _ => {
                            tracing::warn!(
                                listener = self.name,
                                error = %e,
                                out_of_descriptors = exhausted,
                                "cannot accept connections; retrying with back-off until one succeeds"
                            );
                            self.failing = Some(Failing { since: now, last: now, failures: 1 });
                        }
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The accepted connections as the stream tonic serves (it never ends and never fails).
    pub fn into_stream(self) -> impl futures::Stream<Item = io::Result<Conn>> + Send {
        futures::stream::unfold(self, |mut acceptor| async move {
            let (conn, _) = acceptor.next_connection().await;
            Some((Ok(conn), acceptor))
        })
    }

    fn configure(&self, stream: &TcpStream) {
        // TCP_NODELAY: with Nagle's algorithm on, a response's trailers wait for the client's
        // delayed ACK and small requests stall ~40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(listener = self.name, error = %e, "cannot set TCP_NODELAY");
        }
        // TCP keepalive finds peers that vanished without a FIN even where HTTP/2 PINGs are
        // off (the metrics listener speaks HTTP/1).
        if let Some(interval) = self.options.keepalive_interval {
            let keepalive = socket2::TcpKeepalive::new().with_time(interval).with_interval(interval);
            if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(listener = self.name, error = %e, "cannot set TCP keepalive");
            }
        }
    }
}

impl axum::serve::Listener for Acceptor {
    type Io = Conn;
    type Addr = SocketAddr;

    fn accept(&mut self) -> impl Future<Output = (Self::Io, Self::Addr)> + Send {
        self.next_connection()
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Acceptor::local_addr(self)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// An accepted connection: a TCP stream that fails its next read once the handshake or idle
/// deadline passes (hyper then closes it), and gives its permit back when dropped.
#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    metrics: ConnectionMetrics,
    /// Preface bytes still to come, and the deadline for them; `None` once they came.
    handshake: Option<(usize, Pin<Box<Sleep>>)>,
    /// The idle timeout and a timer that fires at `last_activity + timeout` or earlier.
    idle: Option<(Duration, Pin<Box<Sleep>>)>,
    last_activity: Instant,
}

impl Conn {
    fn new(
        stream: TcpStream,
        permit: OwnedSemaphorePermit,
        options: &ConnectionOptions,
        metrics: ConnectionMetrics,
    ) -> Self {
        let now = Instant::now();
        metrics.open.inc();
        Self {
            stream,
            _permit: permit,
            metrics,
            handshake: Some((PREFACE_BYTES, Box::pin(tokio::time::sleep_until(now + options.handshake_timeout)))),
            idle: options.idle_timeout.map(|timeout| (timeout, Box::pin(tokio::time::sleep_until(now + timeout)))),
            last_activity: now,
        }
    }

    fn read_bytes(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        // The timer is not reset on every read (that would touch the timer wheel per
        // packet): when it fires, it is moved to the last activity plus the timeout.
        self.last_activity = Instant::now();
        if let Some((left, _)) = &mut self.handshake {
            *left = left.saturating_sub(n);
            if *left == 0 {
                self.handshake = None;
            }
        }
    }

    /// While a read waits: the error that ends the connection once a deadline has passed
    /// (registering the timers' wake-ups otherwise).
    fn poll_deadlines(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if let Some((_, deadline)) = &mut self.handshake {
            if deadline.as_mut().poll(cx).is_ready() {
                self.metrics.handshake_timeouts.inc();
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 connection preface within the handshake timeout",
                ));
            }
        }
        if let Some((timeout, timer)) = &mut self.idle {
            while timer.as_mut().poll(cx).is_ready() {
                let deadline = self.last_activity + *timeout;
                if deadline <= Instant::now() {
                    self.metrics.idle_timeouts.inc();
                    return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
                }
                timer.as_mut().reset(deadline);
            }
        }
        Poll::Pending
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.metrics.open.dec();
    }
}

impl AsyncRead for Conn {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read_bytes(buf.filled().len() - before);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadlines(cx).map(Err),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.last_activity = Instant::now();
            }
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result {
            if n > 0 {
                this.last_activity = Instant::now();
            }
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn metrics() -> ConnectionMetrics {
        crate::metrics::Metrics::new().connections("grpc")
    }

    async fn acceptor(max: usize, options: ConnectionOptions) -> (Acceptor, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (Acceptor::new(listener, "test", max, options, metrics()), addr)
    }

    #[tokio::test]
    async fn a_silent_connection_fails_its_read_at_the_handshake_deadline() {
        let options = ConnectionOptions { handshake_timeout: Duration::from_millis(100), ..Default::default() };
        let (mut acceptor, addr) = acceptor(4, options).await;
        let _client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = acceptor.next_connection().await;
        let started = std::time::Instant::now();
        let error = conn.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(acceptor.metrics.handshake_timeouts.get(), 1);
    }

    #[tokio::test]
    async fn the_preface_lifts_the_handshake_deadline_and_idleness_ends_the_connection() {
        let options = ConnectionOptions {
            handshake_timeout: Duration::from_millis(100),
            idle_timeout: Some(Duration::from_millis(400)),
            ..Default::default()
        };
        let (mut acceptor, addr) = acceptor(4, options).await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut conn, _) = acceptor.next_connection().await;
        client.write_all(&[b'x'; PREFACE_BYTES]).await.unwrap();
        let mut buf = [0; PREFACE_BYTES];
        conn.read_exact(&mut buf).await.unwrap();
        // Past the handshake deadline, activity keeps the connection.
        tokio::time::sleep(Duration::from_millis(250)).await;
        client.write_all(b"y").await.unwrap();
        conn.read_exact(&mut buf[..1]).await.unwrap();
        let quiet = std::time::Instant::now();
        let error = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(quiet.elapsed() >= Duration::from_millis(300), "{:?}", quiet.elapsed());
        assert_eq!(acceptor.metrics.idle_timeouts.get(), 1);
        assert_eq!(acceptor.metrics.handshake_timeouts.get(), 0);
    }

    #[tokio::test]
    async fn connections_over_the_limit_are_closed_and_a_freed_permit_admits_the_next() {
        let (mut acceptor, addr) = acceptor(1, ConnectionOptions::default()).await;
        let _first = TcpStream::connect(addr).await.unwrap();
        let (held, _) = acceptor.next_connection().await;
        assert_eq!(acceptor.metrics.open.get(), 1);
        let mut second = TcpStream::connect(addr).await.unwrap();
        let accept = tokio::spawn(async move {
            let (conn, _) = acceptor.next_connection().await;
            (acceptor, conn)
        });
        // The second is accepted and closed: the client reads end of stream.
        let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut [0; 1])).await.unwrap().unwrap_or(0);
        assert_eq!(n, 0);
        drop(held);
        let _third = TcpStream::connect(addr).await.unwrap();
        let (acceptor, _conn) = tokio::time::timeout(Duration::from_secs(5), accept).await.unwrap().unwrap();
        assert_eq!(acceptor.metrics.refused_limit.get(), 1);
        assert_eq!(acceptor.metrics.accepted.get(), 2);
        assert_eq!(acceptor.metrics.open.get(), 1);
    }
}
