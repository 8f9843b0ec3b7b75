//! HTTP/1.1 to the console: one keep-alive connection, requests in sequence (`ureq`).
//!
//! # What a timed request is
//!
//! The callers ([`crate::measure`], the deep-page walk) time [`Http::get`] from the call to
//! its return: the request written, the status line and headers parsed, and the body read to
//! its last byte (chunked or `Content-Length`), on one kept-alive TCP connection to loopback
//! (`TCP_NODELAY`). It is what the tool measured with its own client before (which wrote the
//! request and read the answer on a `TcpStream` by hand, one `sendto` and the `recvfrom`s of
//! the answer per request), plus one thing `ureq` adds and cannot be told not to: it probes a
//! pooled connection when it hands it out and when it takes it back after the body's last byte
//! (`FIONBIO` on, a one-byte `recvfrom` that must find nothing, `FIONBIO` off), so a connection
//! the server closed is replaced rather than failing the request. Counted with `strace -c` on a
//! 500-release run: the same 1,168 `sendto`s, and 2 `recvfrom`s + 4 `ioctl`s more per request;
//! one probe costs about 0.6 µs on the 2-core bench machine (a C loop on a loopback socket), so
//! about 1.2 µs per timed request, below the table's 0.01 ms resolution. No network round trip.
//!
//! The connection is reused: one agent, at most one idle connection, never dropped for its idle
//! age; a new connection is made only when the server closed the last one (`Connection: close`,
//! or an error). The request carries `Host`, `Authorization: Bearer`, `Accept: text/html` and,
//! for a fragment, `X-Fragment: 1`, the same bytes as before but for the names' case (`ureq`
//! writes them in lower case): no `User-Agent`, no `Accept-Encoding` (bodies arrive uncompressed
//! whatever features `ureq` has elsewhere in the workspace, so the byte counts are the
//! server's). Redirects are not followed (a `303` is an answer the tool checks), other statuses
//! are answers too, not errors, and a body has no size limit (a module's history was 11.8 MiB
//! once).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

/// The console over HTTP.
pub(crate) struct Http {
    agent: ureq::Agent,
    /// `http://ADDR`.
    origin: String,
    authorization: String,
}

/// An answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Http {
    pub(crate) fn new(addr: SocketAddr, token: &str) -> Self {
        let config = ureq::Agent::config_builder()
            // Loopback: never through a proxy the environment names.
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            // "" = no such header.
            .user_agent("")
            .accept_encoding("")
            .no_delay(true)
            // As the hand-written client's socket read timeout (the explain fragment takes
            // tens of seconds on a large tenant).
            .timeout_per_read(Some(Duration::from_secs(600)))
            .max_idle_connections_per_host(1)
            .max_idle_age(Duration::from_secs(365 * 86_400))
            .build();
        Self { agent: config.into(), origin: format!("http://{addr}"), authorization: format!("Bearer {token}") }
    }

    /// `GET path` (`fragment`: with `X-Fragment: 1`).
    pub(crate) fn get(&mut self, path: &str, fragment: bool) -> anyhow::Result<Answer> {
        // A kept-alive connection the server closed meanwhile can fail at once: retry once.
        match self.exchange(path, fragment) {
            Ok(answer) => Ok(answer),
            Err(_) => self.exchange(path, fragment),
        }
    }

    fn exchange(&mut self, path: &str, fragment: bool) -> anyhow::Result<Answer> {
        let mut request = self
            .agent
            .get(format!("{}{path}", self.origin))
            .header("Authorization", &self.authorization)
            .header("Accept", "text/html");
        if fragment {
            request = request.header("X-Fragment", "1");
        }
        let mut response = request.call()?;
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(u64::MAX).read_to_vec()?;
        Ok(Answer { status, body })
    }
}
