//! OIDC ID tokens from external issuers (a CI provider, a company IdP) as reader credentials.
//!
//! Each configured issuer names its `iss`, the audience tokens must carry, where its signing
//! keys are (a JWKS file, or a URL: `https://`, or `http://` on loopback only), which claim
//! names the tenant (optionally mapped through a table of claim values), and the roles its
//! principals get. Keys and JWT checks are the `jsonwebtoken` crate's (`JwkSet`,
//! `DecodingKey::from_jwk`, `Validation` with issuer, audience and expiry); the JWKS is fetched
//! with `ureq` (rustls) on a blocking thread, again when a token names a key id the set does
//! not hold (at most every [`REFETCH_MIN`]), and every [`REFRESH`]. A fetch that fails keeps
//! the keys in hand.
//!
//! From a TOML file (`serve --oidc FILE`):
//!
//! ```toml
//! [[issuer]]
//! issuer = "https://token.actions.githubusercontent.com"
//! audience = "release-ledger"
//! jwks_url = "https://token.actions.githubusercontent.com/.well-known/jwks"
//! tenant_claim = "repository_owner"
//! roles = ["Reader"]
//! [issuer.tenants]            # claim value -> tenant (default: the value itself)
//! "Acme-Corp" = "acme"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
use tonic::Status;

use crate::access::{Principal, Source, READER_ROLES};

/// The JWKS is fetched again this often.
pub const REFRESH: Duration = Duration::from_secs(600);
/// A token naming an unknown key id fetches the JWKS again, at most this often.
pub const REFETCH_MIN: Duration = Duration::from_secs(30);

/// One configured issuer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The `iss` its tokens carry.
    pub issuer: String,
    /// The `aud` its tokens must carry.
    pub audience: String,
    /// A JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`https://`, or `http://` on loopback).
    pub jwks_url: Option<String>,
    /// The claim whose (string) value names the tenant.
    pub tenant_claim: String,
    /// Claim value → tenant; a value missing here is the tenant's name itself, unless
    /// `only_mapped`.
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
    /// Refuse claim values missing from `tenants`.
    #[serde(default)]
    pub only_mapped: bool,
    /// The roles every principal of this issuer holds (a reader role lets it read its tenant).
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The `--oidc` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuers.
    #[serde(default, rename = "issuer")]
    pub issuers: Vec<IssuerConfig>,
}

impl OidcConfig {
    /// Reads and checks the file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading OIDC issuers {}", path.display()))?;
        let config: Self = toml::from_str(&text).with_context(|| format!("OIDC issuers {}", path.display()))?;
        for issuer in &config.issuers {
            let at = format!("OIDC issuers {}, issuer {}", path.display(), issuer.issuer);
            match (&issuer.jwks_file, &issuer.jwks_url) {
                (Some(_), None) => {}
                (None, Some(url)) => check_url(url).with_context(|| at.clone())?,
                _ => anyhow::bail!("{at}: give jwks_file or jwks_url (one of them)"),
            }
            for tenant in issuer.tenants.values() {
                ledger::ids::TenantId::check(tenant).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            }
        }
        Ok(config)
    }
}

/// `https://`, or `http://` to a loopback host (a test issuer, a local sidecar).
fn check_url(url: &str) -> anyhow::Result<()> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else { anyhow::bail!("jwks_url {url:?} is not an https:// URL") };
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        anyhow::bail!("jwks_url {url:?}: plain http only to a loopback host; use https://");
    }
    Ok(())
}

#[derive(Debug)]
struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// One issuer and its keys.
#[derive(Debug)]
struct Issuer {
    config: IssuerConfig,
    keys: RwLock<Keys>,
}

impl Issuer {
    fn fetch(config: &IssuerConfig) -> anyhow::Result<JwkSet> {
        let text = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), _) => {
                std::fs::read_to_string(path).with_context(|| format!("reading JWKS {}", path.display()))?
            }
            (None, Some(url)) => ureq::get(url)
                .config()
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .call()
                .with_context(|| format!("fetching JWKS {url}"))?
                .body_mut()
                .with_config()
                .limit(1 << 20)
                .read_to_string()
                .with_context(|| format!("reading JWKS {url}"))?,
            (None, None) => anyhow::bail!("no JWKS source"),
        };
        serde_json::from_str(&text).context("the JWKS is not a JSON Web Key Set")
    }

    fn refresh(&self) {
        match Self::fetch(&self.config) {
            Ok(set) => *self.keys.write() = Keys { set, fetched: Instant::now() },
            Err(e) => {
                // Keep the keys in hand; try again no sooner than REFETCH_MIN.
                self.keys.write().fetched = Instant::now();
                tracing::warn!(issuer = %self.config.issuer, error = format!("{e:#}"), "JWKS not refreshed");
            }
        }
    }
}

/// The configured issuers.
#[derive(Debug, Default)]
pub struct Oidc {
    issuers: Vec<Arc<Issuer>>,
}

impl Oidc {
    /// Loads every issuer's keys now: an issuer whose JWKS cannot be had stops the start.
    pub fn new(config: OidcConfig) -> anyhow::Result<Self> {
        let mut issuers = Vec::new();
        for config in config.issuers {
            let set = Issuer::fetch(&config).with_context(|| format!("OIDC issuer {}", config.issuer))?;
            issuers.push(Arc::new(Issuer { config, keys: RwLock::new(Keys { set, fetched: Instant::now() }) }));
        }
        Ok(Self { issuers })
    }

    /// Whether any issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// The principal of an ID token, or why not (`UNAUTHENTICATED`). Blocking (it may fetch
    /// the JWKS): call it off the async runtime's threads.
    pub fn principal(&self, token: &str) -> Result<Principal, Status> {
        let bad = |why: String| Status::unauthenticated(why);
        #[derive(serde::Deserialize)]
        struct Iss {
            iss: Option<String>,
        }
        let unverified =
            jsonwebtoken::dangerous::insecure_decode::<Iss>(token).map_err(|e| bad(format!("malformed token: {e}")))?;
        let iss = unverified.claims.iss.unwrap_or_default();
        let issuer =
            self.issuers.iter().find(|i| i.config.issuer == iss).ok_or_else(|| {
                bad(format!("the token's issuer {:?} is not trusted by this server", ledger::clip(&iss)))
            })?;
        let header = unverified.header;
        if matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Err(bad(format!("algorithm {:?}: OIDC tokens must be signed with a public key", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| bad("the token names no key (kid)".into()))?;
        let find = || issuer.keys.read().set.find(&kid).cloned();
        let jwk = match find() {
            Some(jwk) => jwk,
            None => {
                if issuer.keys.read().fetched.elapsed() >= REFETCH_MIN {
                    issuer.refresh();
                }
                find().ok_or_else(|| bad(format!("issuer {iss} has no key {:?}", ledger::clip(&kid))))?
            }
        };
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| bad(format!("issuer {iss}'s key {kid}: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.config.issuer]);
        validation.set_audience(&[&issuer.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = ledger_wire::token::LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            bad(match e.kind() {
                ErrorKind::ExpiredSignature => "the ID token expired".to_owned(),
                ErrorKind::InvalidAudience => {
                    format!("the ID token's audience is not {:?}", issuer.config.audience)
                }
                ErrorKind::InvalidSignature => format!("the ID token's signature does not verify with key {kid}"),
                _ => format!("the ID token is refused: {e}"),
            })
        })?;
        let claim = &issuer.config.tenant_claim;
        let value = data
            .claims
            .get(claim)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad(format!("the ID token has no string claim {claim:?} to name its tenant")))?;
        let tenant = match issuer.config.tenants.get(value) {
            Some(tenant) => tenant.clone(),
            None if issuer.config.only_mapped => {
                return Err(bad(format!("{claim} {:?} is not mapped to a tenant on this server", ledger::clip(value))))
            }
            None => value.to_owned(),
        };
        ledger::ids::TenantId::check(&tenant)
            .map_err(|e| bad(format!("{claim} {:?} is not a tenant name: {e}", ledger::clip(value))))?;
        let subject = data.claims.get("sub").and_then(serde_json::Value::as_str).unwrap_or("?");
        Ok(Principal {
            name: format!("{iss} subject {}", ledger::clip(subject)),
            reader: issuer.config.roles.iter().any(|r| READER_ROLES.contains(&r.as_str())),
            tenant: Some(tenant),
            operator: false,
            source: Source::Oidc,
        })
    }

    /// Refreshes every URL issuer's keys every [`REFRESH`], until `stop`.
    pub async fn refresh_periodically(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => return,
                () = tokio::time::sleep(REFRESH) => {}
            }
            for issuer in &self.issuers {
                if issuer.config.jwks_url.is_none() {
                    continue;
                }
                let issuer = Arc::clone(issuer);
                let _ = tokio::task::spawn_blocking(move || issuer.refresh()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        assert!(check_url("https://issuer.example/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://issuer.example/jwks").is_err());
        assert!(check_url("ftp://x").is_err());
    }
}
