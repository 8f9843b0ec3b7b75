//! The client's credentials: a bearer token and the TLS settings of `https://` servers.
//!
//! Set once per process by the CLI from its flags (`--token`, `--token-file`, `--ca-cert`,
//! `--client-cert`, `--client-key`), or by a program with [`set`]; otherwise read from the
//! environment (`RELEASE_LEDGER_TOKEN`, `RELEASE_LEDGER_TOKEN_FILE`, `RELEASE_LEDGER_CA_CERT`,
//! `RELEASE_LEDGER_CLIENT_CERT`, `RELEASE_LEDGER_CLIENT_KEY`), so every client made by this
//! crate (the CLI's, `ledger-bench`'s) carries them. A token file is read again when it is
//! older than [`TOKEN_FILE_REFRESH`], so a long-running client picks up a token renewed by
//! whoever mints it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use parking_lot::RwLock;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How long a token read from a file is used before the file is read again.
pub const TOKEN_FILE_REFRESH: Duration = Duration::from_secs(10);

/// Where the bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// The token itself.
    Value(String),
    /// A file holding it (surrounding whitespace dropped).
    File(PathBuf),
}

/// A process's credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The bearer token, if any.
    pub token: Option<TokenSource>,
    /// CA bundle (PEM) to verify an `https://` server with (default: the system's roots).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS, with `client_key`.
    pub client_cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub client_key: Option<PathBuf>,
}

impl Credentials {
    /// The credentials the environment names.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let token = match (var("RELEASE_LEDGER_TOKEN"), var("RELEASE_LEDGER_TOKEN_FILE")) {
            (Some(token), _) => Some(TokenSource::Value(token)),
            (None, Some(path)) => Some(TokenSource::File(path.into())),
            (None, None) => None,
        };
        Self {
            token,
            ca_cert: var("RELEASE_LEDGER_CA_CERT").map(Into::into),
            client_cert: var("RELEASE_LEDGER_CLIENT_CERT").map(Into::into),
            client_key: var("RELEASE_LEDGER_CLIENT_KEY").map(Into::into),
        }
    }
}

#[derive(Debug)]
struct State {
    credentials: Credentials,
    /// The token last read from a file, and when.
    cached: Option<(Arc<str>, Instant)>,
}

fn state() -> &'static RwLock<State> {
    static STATE: OnceLock<RwLock<State>> = OnceLock::new();
    STATE.get_or_init(|| RwLock::new(State { credentials: Credentials::from_env(), cached: None }))
}

/// Replaces the process's credentials (the CLI, from its flags; the demo, with the token it
/// mints).
pub fn set(credentials: Credentials) {
    let mut state = state().write();
    state.credentials = credentials;
    state.cached = None;
}

/// Sets only the token.
pub fn set_token(token: Option<TokenSource>) {
    let mut state = state().write();
    state.credentials.token = token;
    state.cached = None;
}

/// The process's credentials.
pub fn current() -> Credentials {
    state().read().credentials.clone()
}

/// The bearer token to send now, if any; a token file that cannot be read is reported once per
/// refresh on stderr and no token is sent (the server then says what it needs).
pub fn token() -> Option<Arc<str>> {
    {
        let state = state().read();
        match &state.credentials.token {
            None => return None,
            Some(TokenSource::Value(token)) => return Some(Arc::from(token.as_str())),
            Some(TokenSource::File(_)) => {
                if let Some((token, at)) = &state.cached {
                    if at.elapsed() < TOKEN_FILE_REFRESH {
                        return Some(token.clone());
                    }
                }
            }
        }
    }
    let mut state = state().write();
    let Some(TokenSource::File(path)) = state.credentials.token.clone() else { return None };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token: Arc<str> = Arc::from(text.trim());
            state.cached = Some((token.clone(), Instant::now()));
            Some(token)
        }
        Err(e) => {
            eprintln!("release-ledger: cannot read the token file {}: {e}", path.display());
            state.cached = None;
            None
        }
    }
}

/// `endpoint` with TLS for an `https://` server: the CA bundle (or the system's roots) and the
/// client identity of the process's credentials.
pub fn with_tls(endpoint: Endpoint, server: &str) -> anyhow::Result<Endpoint> {
    let credentials = current();
    if !server.starts_with("https://") {
        if credentials.client_cert.is_some() || credentials.ca_cert.is_some() {
            anyhow::bail!("{server} is not an https:// URL: TLS settings (--ca-cert, --client-cert) need one");
        }
        return Ok(endpoint);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match &credentials.ca_cert {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading CA bundle {}", path.display()))?;
            tls.ca_certificate(Certificate::from_pem(pem))
        }
        None => tls.with_native_roots(),
    };
    match (&credentials.client_cert, &credentials.client_key) {
        (Some(cert), Some(key)) => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("reading client certificate {}", cert.display()))?;
            let key_pem = std::fs::read(key).with_context(|| format!("reading client key {}", key.display()))?;
            tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
        }
        (None, None) => {}
        _ => anyhow::bail!("--client-cert and --client-key go together"),
    }
    endpoint.tls_config(tls).with_context(|| format!("TLS settings for {server}"))
}
