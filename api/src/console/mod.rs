//! The web console (docs/console.md): server-rendered HTML for release managers, approvers,
//! auditors and operators, on its own HTTP listener of `serve` (`--console-listen`).
//!
//! The console is a thin layer over what the gRPC port serves, with the same principals and
//! the same decisions: every request is authenticated by [`AccessLayer`] (a bearer token from
//! the `Authorization` header or the sign-in cookie, else the TLS client certificate), and a
//! tenant page calls [`access::check`] with a [`Grant`](crate::access::Grant) for the tenant
//! before it reads anything, exactly like a gRPC service. The one write — an approval signed
//! in the browser — goes through [`LedgerService`]'s `Append` in process, so it meets the same
//! signature checks, guards, cluster forwarding and error text as a gRPC client's.
//!
//! Pages read the projection store (the governance worker's state, and its board index) and
//! the ledger's indexed reads (an entry, a proof, a checkpoint): nothing renders by scanning
//! the log. The two things that must fold or read the log — the decision's "reproduced by
//! replay" check and the evidence pack download — are separate requests, started by the
//! reader, and run one at a time per server.
//!
//! Layout: [`pages`] (the HTML pages), [`json`] (proof data, approvals, live updates),
//! [`view`] (layout, formatting, the SVG chart), `assets/` (CSS and scripts, compiled in).

// Handlers short-circuit with the response a failure answers (`Result<T, Response>`): a
// response is large, and it is built once per failed request, so it is not boxed.
#![allow(clippy::result_large_err)]

mod json;
mod pages;
mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ledger::Ledger;
use projections::Governor;
use rustls_pki_types::CertificateDer;
use tonic::Status;

use crate::access::{self, AccessLayer, Principal, Rule};
use crate::cluster::Cluster;
use crate::connections::Acceptor;
use crate::service::LedgerService;
use crate::tls::TlsListener;
use crate::witnessing::Cosignatures;

/// The default console address: loopback only.
pub const DEFAULT_CONSOLE_LISTEN: &str = "127.0.0.1:9465";

/// The sign-in cookie: the bearer token itself, verified on every request.
pub const TOKEN_COOKIE: &str = "rl_token";

/// The console's shared state.
#[derive(Clone)]
pub struct Console(Arc<Inner>);

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console").field("secure", &self.0.secure).finish_non_exhaustive()
    }
}

struct Inner {
    ledger: Arc<Ledger>,
    governor: Arc<Governor>,
    service: LedgerService,
    access: AccessLayer,
    /// Served over TLS: the cookie is `Secure`.
    secure: bool,
    cosignatures: Option<Arc<Cosignatures>>,
    cluster: Option<Cluster>,
    /// One log-reading request (replay check, evidence pack) at a time.
    heavy: tokio::sync::Semaphore,
    /// Set when the server stops: live-update streams end.
    stop: Option<tokio::sync::watch::Receiver<bool>>,
}

impl Console {
    /// The console over a server's parts.
    pub fn new(
        ledger: Arc<Ledger>,
        governor: Arc<Governor>,
        service: LedgerService,
        access: AccessLayer,
        secure: bool,
        cosignatures: Option<Arc<Cosignatures>>,
        cluster: Option<Cluster>,
    ) -> Self {
        Self(Arc::new(Inner {
            ledger,
            governor,
            service,
            access,
            secure,
            cosignatures,
            cluster,
            heavy: tokio::sync::Semaphore::new(1),
            stop: None,
        }))
    }

    /// Ends the live-update streams when `stop` turns true (the server's shutdown), so a
    /// browser left open on a board does not hold a graceful stop.
    pub fn with_stop(self, stop: tokio::sync::watch::Receiver<bool>) -> Self {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.stop = Some(stop);
                Self(Arc::new(inner))
            }
            Err(shared) => Self(shared),
        }
    }

    /// The console's routes.
    pub fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/", get(pages::home))
            .route("/login", get(pages::login_form).post(pages::login))
            .route("/logout", post(pages::logout))
            .route("/operator", get(pages::operator))
            .route("/assets/{name}", get(view::asset))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/t/{tenant}", get(pages::board))
            .route("/t/{tenant}/releases/{release}", get(pages::release))
            .route("/t/{tenant}/releases/{release}/explain", get(pages::explain))
            .route("/t/{tenant}/releases/{release}/attestation.json", get(json::attestation))
            .route("/t/{tenant}/releases/{release}/evidence.tar", get(json::evidence_pack))
            .route("/t/{tenant}/entries/{seq}", get(pages::entry))
            .route("/t/{tenant}/entries/{seq}/proof.json", get(json::proof))
            .route("/t/{tenant}/freezes", get(pages::freezes))
            .route("/t/{tenant}/modules/{module}", get(pages::module_history))
            .route("/t/{tenant}/events", get(json::events))
            .route("/t/{tenant}/approvals/prepare", post(json::prepare_approval))
            .route("/t/{tenant}/append", post(json::append))
            .fallback(|| async { view::error_page(StatusCode::NOT_FOUND, "Not found", "There is no such page.") })
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self.clone())
    }

    /// The caller's principal: the `Authorization` header, else the sign-in cookie, else the
    /// client certificate. `Ok(None)`: no credential at all.
    fn principal(&self, headers: &HeaderMap, peer: &ConsolePeer) -> Result<Option<Principal>, Status> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            return self.0.access.authorization_principal(value).map(Some);
        }
        if let Some(token) = cookie(headers, TOKEN_COOKIE) {
            return self.0.access.bearer_principal(&token).map(Some);
        }
        match peer.certificates.as_deref().and_then(|chain| chain.first()) {
            Some(leaf) => self.0.access.certificate_principal(leaf.as_ref()).map(Some),
            None => Ok(None),
        }
    }

    /// The principal of a page that needs one: a redirect to the sign-in page without a
    /// credential (or with one that no longer verifies: it expired, its key was revoked).
    fn signed_in(&self, headers: &HeaderMap, peer: &ConsolePeer, path: &str) -> Result<Principal, Response> {
        match self.principal(headers, peer) {
            Ok(Some(principal)) => Ok(principal),
            Ok(None) => Err(to_login(path, None)),
            Err(status) => Err(to_login(path, Some(status.message()))),
        }
    }

    /// A reader of `tenant` (or an operator), decided exactly as the gRPC services decide it,
    /// logged and counted under `method`; a refusal is the `403` page with the reason.
    fn reader(
        &self,
        headers: &HeaderMap,
        peer: &ConsolePeer,
        path: &str,
        method: &'static str,
        tenant: &str,
    ) -> Result<Principal, Response> {
        let principal = self.signed_in(headers, peer, path)?;
        self.check(method, Rule::TenantRead, &principal, tenant)?;
        Ok(principal)
    }

    /// [`Console::reader`] of a page that reads the projections: `503` until they have loaded.
    fn projection_reader(
        &self,
        headers: &HeaderMap,
        peer: &ConsolePeer,
        path: &str,
        method: &'static str,
        tenant: &str,
    ) -> Result<Principal, Response> {
        let principal = self.reader(headers, peer, path, method, tenant)?;
        self.projections_ready()?;
        Ok(principal)
    }

    fn check(&self, method: &'static str, rule: Rule, principal: &Principal, tenant: &str) -> Result<(), Response> {
        let mut extensions = http::Extensions::new();
        extensions.insert(self.0.access.grant(method, rule, Some(principal.clone())));
        access::check(&extensions, tenant).map_err(|status| refused(&status))?;
        // Names the console does not serve are refused after the access decision, so the answer
        // does not tell a stranger which tenants exist.
        ledger::ids::TenantId::check(tenant)
            .map_err(|e| view::error_page(StatusCode::BAD_REQUEST, "Bad tenant name", &e.to_string()))?;
        Ok(())
    }

    /// An operator, or the `403` page.
    fn operator(&self, headers: &HeaderMap, peer: &ConsolePeer, path: &str) -> Result<Principal, Response> {
        let principal = self.signed_in(headers, peer, path)?;
        if principal.operator {
            return Ok(principal);
        }
        Err(refused(&Status::permission_denied(format!(
            "the operator view is for operators; {} is not one",
            principal.name
        ))))
    }

    /// `503` (with `Retry-After: 1`) until the governance worker has loaded the projections.
    fn projections_ready(&self) -> Result<(), Response> {
        if self.0.governor.ready() {
            return Ok(());
        }
        let mut response = view::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Loading",
            "The governance projections are still loading; this page answers in a moment.",
        );
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Err(response)
    }
}

/// A request's connection: its address and the client certificate chain, if TLS verified one.
#[derive(Debug, Clone)]
pub struct ConsolePeer {
    /// The peer's address.
    pub remote: SocketAddr,
    /// The verified client certificate chain, leaf first.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl Connected<axum::serve::IncomingStream<'_, TlsListener>> for ConsolePeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let certificates = stream
            .io()
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| Arc::new(chain.iter().map(|c| c.clone().into_owned()).collect()));
        Self { remote: *stream.remote_addr(), certificates }
    }
}

impl Connected<axum::serve::IncomingStream<'_, Acceptor>> for ConsolePeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Acceptor>) -> Self {
        Self { remote: *stream.remote_addr(), certificates: None }
    }
}

/// The value of cookie `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A redirect to the sign-in page, coming back to `path` afterwards.
fn to_login(path: &str, problem: Option<&str>) -> Response {
    let mut target = format!("/login?next={}", view::query_escape(path));
    if let Some(problem) = problem {
        target.push_str("&problem=");
        target.push_str(&view::query_escape(problem));
    }
    Redirect::to(&target).into_response()
}

/// The page of a refused request: `403` (or `401`) with the reason, as the gRPC port words it.
fn refused(status: &Status) -> Response {
    let code = match status.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    };
    view::refused_page(code, status.message())
}

/// Headers every answer carries: no framing (clickjacking an approval), no sniffing, a content
/// security policy allowing only the console's own scripts and styles, no referrer leaking
/// release ids, and no caching of pages that hold tenant data.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: header::HeaderName, value: &'static str| {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "no-referrer");
    set(headers, header::CACHE_CONTROL, "no-store");
    response
}
