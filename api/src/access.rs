//! Who may call what: the one authorization check in front of every RPC.
//!
//! [`AccessLayer`] sits in front of every service on the gRPC port. For each request it
//! 1. finds the method's [`Rule`] in [`RULES`] (a method missing from the table is refused:
//!    a new RPC cannot be served before someone decides who may call it);
//! 2. authenticates the caller, if the request carries a credential: a bearer token signed by a
//!    registered key (`ledger_wire::token`) or a client certificate mapped to a principal
//!    ([`CertificatePrincipals`]). A credential that is present and does not verify is
//!    refused (`UNAUTHENTICATED`), whatever the method;
//! 3. applies the rule: public methods pass; every other one needs a principal
//!    (`UNAUTHENTICATED` without one), operator methods an operator (`PERMISSION_DENIED`
//!    otherwise);
//! 4. hands the decision ([`Grant`]) to the service in the request's extensions. The
//!    services call [`tenant`] with the tenant a request names, before reading anything: a
//!    reader must belong to that tenant (or be an operator), which is decided on names alone, so
//!    the answer is the same whether the tenant exists or not.
//!
//! Appends are authenticated by their signatures, as before; a transport principal, when there
//! is one, must belong to the tenant each event writes to. Every decision is logged (target
//! `access`, with principal, tenant, method and outcome) and counted
//! (`ledger_access_decisions_total{method,outcome}`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use ledger::Ledger;
use prometheus::IntCounterVec;
use tonic::Status;

use crate::tls::PeerInfo;

/// Roles whose tenant keys may read their tenant (log, keys, projections, exports).
pub const READER_ROLES: &[&str] = &["Reader", "Auditor"];

/// What a method requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Anyone: health, reflection, `GetInfo` (its tenant list only for operators).
    Public,
    /// Checkpoints and proofs: public when [`AccessPolicy::public_transparency`] (the
    /// default), else like [`Rule::TenantRead`].
    Transparency,
    /// A reader of the tenant the request names, or an operator.
    TenantRead,
    /// Any principal of the tenant the request names (a registered key, whatever its roles),
    /// or an operator: the tenant's key registry, which an agent reads to learn its own
    /// registration.
    TenantMember,
    /// Signed appends: anyone whose events verify; a transport principal must belong to the
    /// tenant.
    Append,
    /// Any authenticated principal (methods that read nothing: the unimplemented Flight ones).
    Authenticated,
    /// Operators only: methods that enumerate tenants or copy the whole data dir (backups).
    Operator,
}

/// Every method served on the gRPC port and its rule. The access test walks every method of
/// every service descriptor and fails on one missing here.
pub const RULES: &[(&str, Rule)] = &[
    ("/release_ledger.v1.Ledger/Append", Rule::Append),
    ("/release_ledger.v1.Ledger/AppendBatch", Rule::Append),
    ("/release_ledger.v1.Ledger/Read", Rule::TenantRead),
    ("/release_ledger.v1.Ledger/Subscribe", Rule::TenantRead),
    ("/release_ledger.v1.Ledger/GetEntry", Rule::TenantRead),
    ("/release_ledger.v1.Ledger/GetCheckpoint", Rule::Transparency),
    ("/release_ledger.v1.Ledger/GetInclusionProof", Rule::Transparency),
    ("/release_ledger.v1.Ledger/GetConsistencyProof", Rule::Transparency),
    ("/release_ledger.v1.Ledger/GetInfo", Rule::Public),
    ("/release_ledger.v1.Ledger/ListKeys", Rule::TenantMember),
    ("/release_ledger.v1.Query/GetReleaseSummary", Rule::TenantRead),
    ("/release_ledger.v1.Query/ListReleases", Rule::TenantRead),
    ("/release_ledger.v1.Query/ListReleaseHistory", Rule::TenantRead),
    ("/release_ledger.v1.Query/ListApprovals", Rule::TenantRead),
    ("/release_ledger.v1.Query/GetRiskScore", Rule::TenantRead),
    ("/release_ledger.v1.Query/ExplainDecision", Rule::TenantRead),
    ("/release_ledger.v1.Query/GetReleaseTimeline", Rule::TenantRead),
    ("/release_ledger.v1.Query/ReplayAsOf", Rule::TenantRead),
    ("/release_ledger.v1.Query/GetAttestations", Rule::TenantRead),
    // Every tenant's lag for operators; its own tenant's for anyone else.
    ("/release_ledger.v1.Query/GetGovernanceStatus", Rule::Authenticated),
    ("/arrow.flight.protocol.FlightService/Handshake", Rule::Authenticated),
    // Every tenant's flights (no criteria) only for operators; one tenant's for its readers.
    ("/arrow.flight.protocol.FlightService/ListFlights", Rule::TenantRead),
    ("/arrow.flight.protocol.FlightService/GetFlightInfo", Rule::TenantRead),
    ("/arrow.flight.protocol.FlightService/PollFlightInfo", Rule::Authenticated),
    ("/arrow.flight.protocol.FlightService/GetSchema", Rule::TenantRead),
    ("/arrow.flight.protocol.FlightService/DoGet", Rule::TenantRead),
    ("/arrow.flight.protocol.FlightService/DoPut", Rule::Authenticated),
    ("/arrow.flight.protocol.FlightService/DoExchange", Rule::Authenticated),
    ("/arrow.flight.protocol.FlightService/DoAction", Rule::Authenticated),
    ("/arrow.flight.protocol.FlightService/ListActions", Rule::Authenticated),
    ("/release_ledger.v1.Admin/Backup", Rule::Operator),
    ("/release_ledger.v1.Admin/ClusterStatus", Rule::Operator),
    // Between the nodes of a cluster: each presents an operator token minted with the admin
    // key they share (docs/replication.md).
    ("/release_ledger.v1.Raft/AppendEntries", Rule::Operator),
    ("/release_ledger.v1.Raft/Vote", Rule::Operator),
    ("/release_ledger.v1.Raft/InstallSnapshot", Rule::Operator),
    ("/grpc.health.v1.Health/Check", Rule::Public),
    ("/grpc.health.v1.Health/Watch", Rule::Public),
    ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Rule::Public),
    ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", Rule::Public),
];

/// The rule of a method path, if it is served.
pub fn rule(path: &str) -> Option<Rule> {
    RULES.iter().find(|(p, _)| *p == path).map(|(_, rule)| *rule)
}

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A token signed by a tenant key registered in the log.
    TenantKey,
    /// A token signed by the data dir's admin key.
    AdminKey,
    /// A client certificate.
    Certificate,
    /// An OIDC ID token of a configured issuer.
    Oidc,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who, for logs and messages: `key 3f…(agent qa-bot)`, `admin key …`, `certificate CN=…`.
    pub name: String,
    /// The tenant it belongs to; `None` for operators.
    pub tenant: Option<String>,
    /// Whether it may read its tenant.
    pub reader: bool,
    /// Operators read every tenant and may enumerate them.
    pub operator: bool,
    /// How it was authenticated.
    pub source: Source,
}

impl Principal {
    fn may_read(&self, tenant: &str) -> bool {
        self.operator || (self.reader && self.tenant.as_deref() == Some(tenant))
    }
}

/// The layer's decision, for the services (request extension).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The method's rule.
    pub rule: Rule,
    /// The method path.
    pub method: &'static str,
    /// The caller, if authenticated.
    pub principal: Option<Principal>,
    /// Whether checkpoints and proofs are public.
    pub public_transparency: bool,
    metrics: Option<IntCounterVec>,
}

impl Grant {
    /// Whether the caller is an operator.
    pub fn operator(&self) -> bool {
        self.principal.as_ref().is_some_and(|p| p.operator)
    }
}

/// Client certificates mapped to principals: the first rule whose `subject` (the certificate's
/// common name) or `san` (a DNS name, URI or e-mail address among its subject alternative
/// names) matches names the principal. From a TOML file (`serve --client-principals`):
///
/// ```toml
/// [[principal]]
/// san = "spiffe://ci.example/acme/auditor"
/// tenant = "acme"
/// roles = ["Auditor"]
///
/// [[principal]]
/// subject = "ops-oncall"
/// operator = true
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePrincipals {
    /// The rules, in order.
    #[serde(default, rename = "principal")]
    pub principals: Vec<CertificateRule>,
}

/// One rule of [`CertificatePrincipals`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateRule {
    /// The certificate's subject common name.
    pub subject: Option<String>,
    /// A subject alternative name (DNS, URI or e-mail).
    pub san: Option<String>,
    /// The tenant the principal belongs to (required unless `operator`).
    pub tenant: Option<String>,
    /// Its roles (a reader role lets it read the tenant).
    #[serde(default)]
    pub roles: Vec<String>,
    /// An operator: reads every tenant.
    #[serde(default)]
    pub operator: bool,
}

impl CertificatePrincipals {
    /// Reads and checks a principals file.
    pub fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read client principals {}: {e}", path.display()))?;
        let parsed: Self =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("client principals {}: {e}", path.display()))?;
        for (index, rule) in parsed.principals.iter().enumerate() {
            let at = format!("client principals {}, rule {}", path.display(), index + 1);
            if rule.subject.is_none() && rule.san.is_none() {
                anyhow::bail!("{at}: give subject or san");
            }
            match (&rule.tenant, rule.operator) {
                (None, false) => anyhow::bail!("{at}: give a tenant, or operator = true"),
                (Some(tenant), _) => ledger::ids::TenantId::check(tenant).map_err(|e| anyhow::anyhow!("{at}: {e}"))?,
                (None, true) => {}
            }
        }
        Ok(parsed)
    }

    /// The principal a certificate (DER) maps to.
    fn principal(&self, der: &[u8]) -> Result<Principal, Status> {
        use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| Status::unauthenticated(format!("the client certificate does not parse: {e}")))?;
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(n) | GeneralName::URI(n) | GeneralName::RFC822Name(n) => {
                        sans.push((*n).to_owned())
                    }
                    _ => {}
                }
            }
        }
        let matched = self.principals.iter().find(|rule| {
            rule.subject.as_ref().is_some_and(|s| common_name.as_ref() == Some(s))
                || rule.san.as_ref().is_some_and(|s| sans.contains(s))
        });
        let described = match (&common_name, sans.first()) {
            (Some(cn), _) => format!("certificate CN={cn}"),
            (None, Some(san)) => format!("certificate SAN {san}"),
            (None, None) => "certificate without a name".to_owned(),
        };
        let rule = matched.ok_or_else(|| {
            Status::unauthenticated(format!("the client {described} is not mapped to a principal on this server"))
        })?;
        Ok(Principal {
            name: described,
            tenant: if rule.operator { None } else { rule.tenant.clone() },
            reader: rule.roles.iter().any(|r| READER_ROLES.contains(&r.as_str())),
            operator: rule.operator,
            source: Source::Certificate,
        })
    }
}

/// What the layer needs to know.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    /// Checkpoints and proofs readable without a principal.
    pub public_transparency: bool,
    /// The longest token lifetime accepted.
    pub max_token_lifetime: Duration,
    /// Client certificate principals.
    pub certificates: Arc<CertificatePrincipals>,
    /// OIDC issuers whose ID tokens are accepted.
    pub oidc: Arc<crate::oidc::Oidc>,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self {
            public_transparency: true,
            max_token_lifetime: ledger_wire::token::DEFAULT_MAX_LIFETIME,
            certificates: Arc::default(),
            oidc: Arc::default(),
        }
    }
}

/// Tokens whose signature verified, at most this many (then the cache starts over).
const VERIFIED_CAPACITY: usize = 4096;

/// A token whose signature verified: with which key, and what it claims.
#[derive(Debug, Clone)]
struct Verified {
    key_id: String,
    public: [u8; 32],
    claims: ledger_wire::token::Claims,
}

/// The tower layer (see the module documentation).
#[derive(Debug, Clone)]
pub struct AccessLayer {
    ledger: Arc<Ledger>,
    policy: Arc<AccessPolicy>,
    metrics: Option<IntCounterVec>,
    /// Verified tokens by BLAKE3 of their text.
    verified: Arc<parking_lot::Mutex<std::collections::HashMap<[u8; 32], Verified>>>,
}

impl AccessLayer {
    /// A layer deciding over `ledger`'s key registry with `policy`, counting into `metrics`.
    pub fn new(ledger: Arc<Ledger>, policy: AccessPolicy, metrics: Option<IntCounterVec>) -> Self {
        Self { ledger, policy: Arc::new(policy), metrics, verified: Arc::default() }
    }
}

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService { inner, layer: self.clone() }
    }
}

/// The service [`AccessLayer`] wraps around the gRPC router.
#[derive(Debug, Clone)]
pub struct AccessService<S> {
    inner: S,
    layer: AccessLayer,
}

impl AccessLayer {
    /// Seconds since the epoch, from the ledger's clock.
    fn now(&self) -> u64 {
        self.ledger.config().clock.now_ns() / 1_000_000_000
    }

    /// The principal of a bearer token.
    fn token_principal(&self, token: &str) -> Result<Principal, Status> {
        use ledger_wire::token::{peek, verify, TokenError, LEEWAY_SECONDS};
        let bad = |e: TokenError| Status::unauthenticated(e.to_string());
        let now = self.now();
        // A client sends the same token with every request: its signature is verified once
        // (`VERIFIED`); the registry is read every time (revocation is immediate).
        let digest = *blake3::hash(token.as_bytes()).as_bytes();
        let cached = self.verified.lock().get(&digest).cloned();
        let (key_id, claimed_tenant) = match &cached {
            Some(hit) => (hit.key_id.clone(), hit.claims.tenant.clone()),
            None => {
                let claimed = peek(token).map_err(bad)?;
                (claimed.key_id, claimed.tenant)
            }
        };
        let roots = self.ledger.trust_roots();
        let short = ledger::clip_at(&key_id, 16).to_string();
        let (public, record, tenant) = if key_id == roots.admin_id().to_hex() {
            (roots.admin().to_bytes(), None, None)
        } else {
            let tenant = claimed_tenant.ok_or_else(|| {
                Status::unauthenticated(format!(
                    "the token names no tenant, and its key {short} is not this ledger's admin key"
                ))
            })?;
            ledger::ids::TenantId::check(&tenant)
                .map_err(|e| Status::unauthenticated(format!("the token's tenant is not a tenant name: {e}")))?;
            // The same answer for a tenant that does not exist as for a key it does not hold.
            let unknown = || Status::unauthenticated(format!("key {short} is not registered in tenant {tenant}"));
            let records = self.ledger.key_records(&tenant).map_err(|_| unknown())?;
            let record = records.into_iter().find(|r| r.key_id == key_id).ok_or_else(unknown)?;
            if let Some(seq) = record.revoked_at {
                return Err(Status::unauthenticated(format!(
                    "key {short} was revoked in tenant {tenant} at seq {seq}"
                )));
            }
            let key = record.verifying_key().ok_or_else(unknown)?;
            (key.to_bytes(), Some(record), Some(tenant))
        };
        let claims = match cached {
            Some(hit) if hit.public == public => {
                if hit.claims.exp.saturating_add(LEEWAY_SECONDS) < now {
                    self.verified.lock().remove(&digest);
                    return Err(bad(TokenError::Expired { exp: hit.claims.exp, now }));
                }
                hit.claims
            }
            _ => {
                let audience = self.ledger.origin_prefix();
                let claims =
                    verify(token, &public, &key_id, audience, self.policy.max_token_lifetime, now).map_err(bad)?;
                let mut verified = self.verified.lock();
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
                verified.insert(digest, Verified { key_id: key_id.clone(), public, claims: claims.clone() });
                claims
            }
        };
        let (Some(record), Some(tenant)) = (record, tenant) else {
            return Ok(Principal {
                name: format!("admin key {short}"),
                tenant: None,
                reader: true,
                operator: true,
                source: Source::AdminKey,
            });
        };
        // The subject is the agent the key is registered to, or the key id itself (what an
        // agent that does not know its registration yet can name).
        if claims.sub != record.agent_id && claims.sub != key_id {
            return Err(Status::unauthenticated(format!(
                "the token's subject {:?} is neither the agent key {short} is registered to nor its key id",
                ledger::clip(&claims.sub)
            )));
        }
        Ok(Principal {
            name: format!("key {short} (agent {})", record.agent_id),
            reader: record.roles.iter().any(|r| READER_ROLES.contains(&r.as_str())),
            tenant: Some(tenant),
            operator: false,
            source: Source::TenantKey,
        })
    }

    /// The caller's principal: `Ok(None)` without a credential, `Err` for one that does not
    /// verify.
    fn authenticate<B>(&self, request: &http::Request<B>) -> Result<Option<Principal>, Status> {
        if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
            return self.authorization_principal(value).map(Some);
        }
        let certs = request.extensions().get::<PeerInfo>().and_then(|peer| peer.certificates.clone());
        match certs.as_deref().and_then(|chain| chain.first()) {
            Some(leaf) => self.certificate_principal(leaf.as_ref()).map(Some),
            None => Ok(None),
        }
    }

    /// The principal of an `Authorization: Bearer <token>` header (the gRPC port's and the web
    /// console's).
    pub fn authorization_principal(&self, value: &http::HeaderValue) -> Result<Principal, Status> {
        let text =
            value.to_str().map_err(|_| Status::unauthenticated("the authorization header is not visible ASCII"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("the authorization header is not `Bearer <token>`"))?;
        self.bearer_principal(token)
    }

    /// The principal of a client certificate (DER), as the gRPC port maps it.
    pub fn certificate_principal(&self, leaf: &[u8]) -> Result<Principal, Status> {
        self.policy.certificates.principal(leaf)
    }

    /// The principal of a bearer token (a ledger token or an OIDC ID token), verified exactly
    /// as for a gRPC request: the web console's sign-in uses this.
    pub fn bearer_principal(&self, token: &str) -> Result<Principal, Status> {
        let token = token.trim();
        // A ledger token names a registered key by its 64-hex-digit id; anything else is
        // an OIDC ID token of a configured issuer. Without issuers, nothing is parsed here
        // (`token_principal` finds a token it verified before without parsing it).
        if self.policy.oidc.is_empty() {
            return self.token_principal(token);
        }
        let ledger_token = ledger_wire::token::peek(token)
            .is_ok_and(|t| t.key_id.len() == 64 && t.key_id.bytes().all(|b| b.is_ascii_hexdigit()));
        if ledger_token {
            return self.token_principal(token);
        }
        // Verifying may fetch the issuer's keys: not on a runtime thread that others wait on.
        let oidc = &self.policy.oidc;
        let multi = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi {
            tokio::task::block_in_place(|| oidc.principal(token))
        } else {
            oidc.principal(token)
        }
    }

    /// The decision for a request that does not come through the gRPC router (the web
    /// console): `method` names it in logs and metrics, `rule` says what it needs. The caller
    /// then calls [`check`] with the tenant, as a gRPC service would.
    pub fn grant(&self, method: &'static str, rule: Rule, principal: Option<Principal>) -> Grant {
        Grant {
            rule,
            method,
            principal,
            public_transparency: self.policy.public_transparency,
            metrics: self.metrics.clone(),
        }
    }

    /// Whether checkpoints and proofs are public (`--private-transparency` not given).
    pub fn public_transparency(&self) -> bool {
        self.policy.public_transparency
    }

    fn decide<B>(&self, request: &http::Request<B>) -> Result<Grant, (Status, &'static str, Option<Principal>)> {
        let path = request.uri().path();
        let Some((method, rule)) = RULES.iter().find(|(p, _)| *p == path).copied() else {
            return Err((Status::unimplemented(format!("no method {path} on this server")), "unknown", None));
        };
        let principal = self.authenticate(request).map_err(|status| (status, method, None))?;
        let needs_principal = match rule {
            Rule::Public | Rule::Append => false,
            Rule::Transparency => !self.policy.public_transparency,
            Rule::TenantRead | Rule::TenantMember | Rule::Authenticated | Rule::Operator => true,
        };
        if needs_principal && principal.is_none() {
            return Err((
                Status::unauthenticated(format!(
                    "{method} needs a credential: a bearer token (release-ledger token) or a client certificate"
                )),
                method,
                None,
            ));
        }
        if rule == Rule::Operator && !principal.as_ref().is_some_and(|p| p.operator) {
            let who = principal.as_ref().map(|p| p.name.clone()).unwrap_or_default();
            return Err((
                Status::permission_denied(format!("{method} is for operators; {who} is not one")),
                method,
                principal,
            ));
        }
        Ok(Grant {
            rule,
            method,
            principal,
            public_transparency: self.policy.public_transparency,
            metrics: self.metrics.clone(),
        })
    }
}

fn record(metrics: Option<&IntCounterVec>, method: &str, outcome: &str) {
    if let Some(metrics) = metrics {
        metrics.with_label_values(&[method, outcome]).inc();
    }
}

fn outcome(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Unauthenticated => "unauthenticated",
        tonic::Code::PermissionDenied => "permission_denied",
        _ => "refused",
    }
}

impl<S, B> tower::Service<http::Request<B>> for AccessService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        match self.layer.decide(&request) {
            Ok(grant) => {
                if !matches!(grant.rule, Rule::TenantRead | Rule::TenantMember | Rule::Transparency | Rule::Append) {
                    // Decided here; tenant-scoped methods are decided by `tenant`.
                    let who = grant.principal.as_ref().map_or("anonymous", |p| p.name.as_str());
                    tracing::debug!(target: "access", principal = who, method = grant.method, outcome = "allowed");
                    record(self.layer.metrics.as_ref(), grant.method, "allowed");
                }
                request.extensions_mut().insert(grant);
                // The clone that was ready is the one called (tower's contract).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(request).await })
            }
            Err((status, method, principal)) => {
                let who = principal.as_ref().map_or("anonymous", |p| p.name.as_str());
                tracing::info!(
                    target: "access",
                    principal = who,
                    method,
                    outcome = outcome(status.code()),
                    reason = status.message(),
                    "access refused"
                );
                record(self.layer.metrics.as_ref(), method, outcome(status.code()));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}

/// The check of a tenant-scoped method, before it reads anything: the caller may read (or,
/// for appends, write to) `tenant`. Decided on names alone.
pub fn tenant<T>(request: &tonic::Request<T>, tenant: &str) -> Result<(), Status> {
    check(request.extensions(), tenant)
}

/// [`tenant`] over a request's extensions.
pub fn check(extensions: &http::Extensions, tenant: &str) -> Result<(), Status> {
    // Fail closed: a service reached without the layer's decision serves nothing.
    let grant = extensions
        .get::<Grant>()
        .ok_or_else(|| Status::internal("no access decision for this request (the access layer is missing)"))?;
    let principal = grant.principal.as_ref();
    let who = principal.map_or("anonymous", |p| p.name.as_str());
    let allowed = match grant.rule {
        Rule::Public | Rule::Authenticated => Ok(()),
        Rule::Operator => Ok(()),
        Rule::Transparency if grant.public_transparency => Ok(()),
        Rule::Append => match principal {
            Some(p) if !p.operator && p.tenant.as_deref() != Some(tenant) => Err(Status::permission_denied(format!(
                "{who} belongs to tenant {}; it may not write to tenant {tenant}",
                p.tenant.as_deref().unwrap_or("-")
            ))),
            _ => Ok(()),
        },
        Rule::TenantMember => match principal {
            None => Err(Status::unauthenticated(format!(
                "{} needs a credential: a bearer token (release-ledger token) or a client certificate",
                grant.method
            ))),
            Some(p) if p.operator || p.tenant.as_deref() == Some(tenant) => Ok(()),
            Some(_) => Err(Status::permission_denied(format!("{who} may not read tenant {tenant}"))),
        },
        Rule::Transparency | Rule::TenantRead => match principal {
            None => Err(Status::unauthenticated(format!(
                "{} needs a credential: a bearer token (release-ledger token) or a client certificate",
                grant.method
            ))),
            Some(p) if p.may_read(tenant) => Ok(()),
            Some(p) if p.tenant.as_deref() == Some(tenant) => Err(Status::permission_denied(format!(
                "{who} holds no reader role ({}) in tenant {tenant}",
                READER_ROLES.join(", ")
            ))),
            Some(_) => Err(Status::permission_denied(format!("{who} may not read tenant {tenant}"))),
        },
    };
    let outcome_label = match &allowed {
        Ok(()) => "allowed",
        Err(status) => outcome(status.code()),
    };
    match &allowed {
        Ok(()) => {
            tracing::debug!(target: "access", principal = who, tenant, method = grant.method, outcome = "allowed")
        }
        Err(status) => tracing::info!(
            target: "access",
            principal = who,
            tenant,
            method = grant.method,
            outcome = outcome_label,
            reason = status.message(),
            "access refused"
        ),
    }
    record(grant.metrics.as_ref(), grant.method, outcome_label);
    allowed
}

/// Refuses a caller that is not an operator (`ListFlights` of every tenant).
pub fn require_operator(extensions: &http::Extensions) -> Result<(), Status> {
    let grant = extensions
        .get::<Grant>()
        .ok_or_else(|| Status::internal("no access decision for this request (the access layer is missing)"))?;
    let who = grant.principal.as_ref().map_or("anonymous", |p| p.name.as_str());
    let result = if grant.operator() {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} of every tenant is for operators; {who} is not one (name a tenant)",
            grant.method
        )))
    };
    let label = if result.is_ok() { "allowed" } else { "permission_denied" };
    tracing::debug!(target: "access", principal = who, method = grant.method, outcome = label);
    record(grant.metrics.as_ref(), grant.method, label);
    result
}

/// Which tenants the caller may see listed: `None` for an operator (all), else `Some` of its
/// own tenant (`Some(None)`: none).
pub fn own_tenant(extensions: &http::Extensions) -> Option<Option<String>> {
    match extensions.get::<Grant>().and_then(|grant| grant.principal.clone()) {
        Some(principal) if principal.operator => None,
        Some(principal) => Some(principal.tenant),
        None => Some(None),
    }
}

/// Whether the request's caller is an operator (the layer's decision; `false` without one).
pub fn is_operator(extensions: &http::Extensions) -> bool {
    extensions.get::<Grant>().is_some_and(Grant::operator)
}
