//! The client commands of `release-ledger`: they sign locally and talk gRPC to a server.
//!
//! Nothing the server says is taken on trust where it can be checked: entries read by `tail`
//! are re-hashed and their chain links checked, and `checkpoint` / `prove` verify signatures
//! and proofs against the ledger public key (pinned from a file when one is at hand).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use ledger::merkle::{self, Blake3Hasher, TreeHasher};
use ledger::{Entry, EntryBody, Envelope, ExpectedVersion, KeyPair, ParsedEvent, SignedCheckpoint};
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::convert::{entry_from_pb, envelope_to_pb, expected_version_to_pb};
use crate::propagation::OutgoingContext;

/// A channel whose requests carry the caller's trace context and baggage (the `TRACEPARENT`,
/// `TRACESTATE` and `BAGGAGE` environment variables, see [`OutgoingContext`]): every client
/// made by [`ledger_client`], [`query_client`] and [`crate::flight::flight_client`] uses one.
pub type Transport = InterceptedService<Channel, OutgoingContext>;

/// A connected client.
pub type Client = LedgerClient<Transport>;

/// A connected client of the governance queries (`release_ledger.v1.Query`).
pub type QueryClient = proto::v1::query_client::QueryClient<Transport>;

/// Opens a channel to `server` (for example `http://127.0.0.1:50051`).
pub async fn channel(server: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(server.to_owned())
        .with_context(|| format!("bad server URL {server:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))
}

/// Connects to `server` (for example `http://127.0.0.1:50051`).
pub async fn connect(server: &str, max_message_bytes: usize) -> anyhow::Result<Client> {
    Ok(ledger_client(channel(server).await?, max_message_bytes))
}

/// A ledger client over an open channel.
pub fn ledger_client(channel: Channel, max_message_bytes: usize) -> Client {
    LedgerClient::new(traced(channel))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// A query client over an open channel.
pub fn query_client(channel: Channel, max_message_bytes: usize) -> QueryClient {
    QueryClient::new(traced(channel))
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// `channel` with the environment's trace context on every request.
pub fn traced(channel: Channel) -> Transport {
    InterceptedService::new(channel, OutgoingContext::from_env())
}

/// Connects a query client to `server`.
pub async fn connect_query(server: &str, max_message_bytes: usize) -> anyhow::Result<QueryClient> {
    Ok(query_client(channel(server).await?, max_message_bytes))
}

/// A gRPC error as one line: the code (as tonic spells it, then its canonical gRPC name, the
/// one the README's error table uses) and the server's message.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{:?} ({}): {}", status.code(), canonical_code(status.code()), status.message())
}

/// A failed query as an error; `UNIMPLEMENTED` says the server has no Query service.
pub fn query_error(status: tonic::Status) -> anyhow::Error {
    if status.code() == tonic::Code::Unimplemented {
        anyhow!("{}: the server does not serve the governance Query service", status_line(&status))
    } else {
        anyhow!(status_line(&status))
    }
}

/// The canonical gRPC name of a status code (`PERMISSION_DENIED`).
pub fn canonical_code(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Reads a public key from a file (SPKI PEM, PKCS#8 PEM or base64) or from base64 text.
pub fn read_public_key(file_or_base64: &str) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let path = Path::new(file_or_base64);
    let text = if path.exists() {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        file_or_base64.to_owned()
    };
    ledger::keys::public_key_from_text(&text)
        .with_context(|| format!("{file_or_base64:?} is not an Ed25519 public key"))
}

/// The fields of an event the CLI builds.
#[derive(Debug, Clone, Default)]
pub struct EventSpec {
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Event type.
    pub event_type: String,
    /// `data`, a JSON object.
    pub data: serde_json::Value,
    /// Event id (default: a new UUIDv7).
    pub event_id: Option<String>,
    /// Release id.
    pub release_id: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// Author's agent id.
    pub agent_id: String,
    /// Author's role.
    pub role: Option<String>,
    /// When it happened (default: now).
    pub occurred_at: Option<String>,
}

/// RFC 3339 "now" with nanoseconds, from the ledger's one clock.
pub fn now_rfc3339() -> String {
    use ledger::Clock as _;
    let ns = ledger::SystemClock.now_ns();
    chrono::DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Builds the JSON body of an event.
pub fn event_body(spec: &EventSpec) -> anyhow::Result<Vec<u8>> {
    if !spec.data.is_object() {
        bail!("data must be a JSON object");
    }
    let mut actor = serde_json::json!({ "agentId": spec.agent_id });
    if let Some(role) = &spec.role {
        actor["role"] = role.clone().into();
    }
    let mut body = serde_json::json!({
        "tenant": spec.tenant,
        "stream": spec.stream,
        "type": spec.event_type,
        "eventId": spec.event_id.clone().unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        "occurredAt": spec.occurred_at.clone().unwrap_or_else(now_rfc3339),
        "actor": actor,
        "data": spec.data,
    });
    if let Some(release_id) = &spec.release_id {
        body["releaseId"] = release_id.clone().into();
    }
    if let Some(trace_id) = &spec.trace_id {
        body["traceId"] = trace_id.clone().into();
    }
    Ok(serde_json::to_vec(&body)?)
}

/// A signed wire event.
pub fn signed_event(body: Vec<u8>, key: &KeyPair, expected: ExpectedVersion) -> pb::AppendEvent {
    pb::AppendEvent {
        envelope: Some(envelope_to_pb(&Envelope::sign(body, key))),
        expected_version: Some(expected_version_to_pb(expected)),
    }
}

/// Parses `any`, `no-stream` or a version number.
pub fn parse_expected_version(text: &str) -> anyhow::Result<ExpectedVersion> {
    match text {
        "any" => Ok(ExpectedVersion::Any),
        "no-stream" | "nostream" | "noStream" => Ok(ExpectedVersion::NoStream),
        n => n
            .parse()
            .map(ExpectedVersion::Exact)
            .map_err(|_| anyhow!("expected version must be any, no-stream or a number, not {n:?}")),
    }
}

/// Reads `--data`: inline JSON, or `@FILE`.
pub fn read_data(arg: &str) -> anyhow::Result<serde_json::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_owned(),
    };
    serde_json::from_str(&text).context("data is not valid JSON")
}

/// The agent id a key appends as: the admin key is `admin`, the ledger key `release-ledger`,
/// a tenant key its registered agent id (looked up on the server).
pub async fn agent_id_for(client: &mut Client, tenant: &str, key: &KeyPair) -> anyhow::Result<String> {
    let info = client.get_info(pb::GetInfoRequest {}).await.map_err(|s| anyhow!(status_line(&s)))?.into_inner();
    let key_id = key.key_id().to_hex();
    if key_id == info.admin_key_id {
        return Ok("admin".into());
    }
    if key_id == info.ledger_key_id {
        return Ok("release-ledger".into());
    }
    let keys = client
        .list_keys(pb::ListKeysRequest { tenant: tenant.to_owned() })
        .await
        .map(|r| r.into_inner().keys)
        .unwrap_or_default();
    keys.into_iter().find(|k| k.key_id == key_id).map(|k| k.agent_id).ok_or_else(|| {
        anyhow!("key {key_id} is not registered in tenant {tenant:?}; register it first or pass --agent")
    })
}

/// One line of an `append-batch` JSONL file.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchLine {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Stream.
    pub stream: String,
    /// `data` object.
    #[serde(default = "empty_object")]
    pub data: serde_json::Value,
    /// Event id (default: a new UUIDv7).
    #[serde(default)]
    pub event_id: Option<String>,
    /// Release id.
    #[serde(default)]
    pub release_id: Option<String>,
    /// Trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// Actor role.
    #[serde(default)]
    pub role: Option<String>,
    /// When it happened.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// `any`, `no-stream` or a number.
    #[serde(default)]
    pub expected_version: Option<serde_json::Value>,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Parses an `append-batch` file into event specs with their expected versions.
pub fn read_batch_file(path: &Path) -> anyhow::Result<Vec<(BatchLine, ExpectedVersion)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: BatchLine = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not an event line", path.display(), number + 1))?;
        let expected = match &parsed.expected_version {
            None => ExpectedVersion::Any,
            Some(serde_json::Value::Number(n)) => {
                ExpectedVersion::Exact(n.as_u64().ok_or_else(|| anyhow!("line {}: bad expectedVersion", number + 1))?)
            }
            Some(serde_json::Value::String(s)) => parse_expected_version(s)?,
            Some(other) => bail!("line {}: bad expectedVersion {other}", number + 1),
        };
        out.push((parsed, expected));
    }
    if out.is_empty() {
        bail!("{} has no events", path.display());
    }
    Ok(out)
}

/// The ledger public key to verify with: `--ledger-key FILE`, else the local data dir's
/// `keys/ledger.pub` if present, else the server's own word (flagged as unpinned).
pub async fn ledger_public_key(
    client: &mut Client,
    pinned: Option<&Path>,
    default_file: &Path,
) -> anyhow::Result<(ed25519_dalek::VerifyingKey, String)> {
    let file: Option<PathBuf> =
        pinned.map(Path::to_path_buf).or_else(|| default_file.exists().then(|| default_file.to_path_buf()));
    if let Some(file) = file {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let key = ledger::keys::public_key_from_text(&text)
            .with_context(|| format!("{} is not a public key", file.display()))?;
        return Ok((key, format!("pinned from {}", file.display())));
    }
    let info = client.get_info(pb::GetInfoRequest {}).await.map_err(|s| anyhow!(status_line(&s)))?.into_inner();
    let key = ledger::keys::public_key_from_bytes(&info.ledger_public_key)?;
    Ok((key, "as reported by the server itself (not pinned: pass --ledger-key)".into()))
}

/// Verifies a checkpoint note with the ledger key.
pub fn verify_checkpoint(note: &str, key: &ed25519_dalek::VerifyingKey) -> anyhow::Result<SignedCheckpoint> {
    SignedCheckpoint::parse_and_verify(note, key).map_err(|e| anyhow!("checkpoint does not verify: {e}"))
}

/// Checks an inclusion proof against a verified checkpoint.
pub fn verify_inclusion(proof: &pb::InclusionProof, checkpoint: &SignedCheckpoint) -> anyhow::Result<()> {
    let entry_hash: ledger::Hash32 =
        proof.entry_hash.clone().try_into().map_err(|_| anyhow!("entry hash is not 32 bytes"))?;
    let path = proof
        .path
        .iter()
        .map(|node| node.clone().try_into().map_err(|_| anyhow!("proof node is not 32 bytes")))
        .collect::<anyhow::Result<Vec<ledger::Hash32>>>()?;
    if proof.tree_size != checkpoint.checkpoint.size {
        bail!("proof is for tree size {}, checkpoint for {}", proof.tree_size, checkpoint.checkpoint.size);
    }
    merkle::verify_inclusion::<Blake3Hasher>(
        &Blake3Hasher::hash_leaf(&entry_hash),
        proof.seq,
        proof.tree_size,
        &path,
        &checkpoint.checkpoint.root,
    )
    .map_err(|e| anyhow!("inclusion proof of seq {} does not verify: {e}", proof.seq))
}

/// A streamed entry checked by the client: its hashes recomputed and its link to the previous
/// entry checked.
pub fn checked_entry(previous: Option<&Entry>, wire: pb::Entry) -> anyhow::Result<Entry> {
    let entry = entry_from_pb(wire).map_err(|s| anyhow!(status_line(&s)))?;
    entry.check_hashes().map_err(|e| anyhow!("seq {}: {e}", entry.seq))?;
    if let Some(previous) = previous {
        if entry.seq != previous.seq + 1 || entry.prev_hash != previous.entry_hash {
            bail!("seq {}: does not link to seq {}", entry.seq, previous.seq);
        }
    }
    Ok(entry)
}

/// The `tail --json` record of an entry.
pub fn entry_json(entry: &Entry) -> serde_json::Value {
    let recorded_at = chrono::DateTime::from_timestamp_nanos(i64::try_from(entry.recorded_at).unwrap_or(i64::MAX))
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut out = serde_json::json!({
        "seq": entry.seq,
        "recordedAt": recorded_at,
        "entryHash": hex::encode(entry.entry_hash),
    });
    match &entry.body {
        EntryBody::Present(envelope) => match ParsedEvent::parse(&envelope.payload) {
            Ok(event) => {
                out["eventId"] = event.header.event_id.into();
                out["type"] = event.header.event_type.into();
                out["stream"] = event.header.stream.into();
                out["agentId"] = event.header.actor.agent_id.into();
            }
            Err(e) => out["error"] = e.to_string().into(),
        },
        EntryBody::Redacted { by_seq } => {
            out["redacted"] = true.into();
            out["redactedBy"] = (*by_seq).into();
        }
    }
    out
}

/// Base64 of raw bytes.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// Governance events: built here, checked against the event catalogue before anything is sent
// (the server checks the same catalogue; checking first gives the error without a round trip
// and stores nothing), signed with the caller's key, appended.

/// The stream of `PolicyUpdated` events.
pub const POLICY_STREAM: &str = "policy";
/// The stream of `ChangeFreezeDeclared` / `ChangeFreezeLifted` events.
pub const FREEZES_STREAM: &str = "freezes";

/// An event about `release`: stream `release/<release>`, body `releaseId` = `release`.
pub fn release_event(
    tenant: &str,
    release: &str,
    event_type: &str,
    agent_id: &str,
    data: serde_json::Value,
) -> EventSpec {
    EventSpec {
        tenant: tenant.to_owned(),
        stream: projections::decision::release_stream(release),
        event_type: event_type.to_owned(),
        data,
        release_id: Some(release.to_owned()),
        agent_id: agent_id.to_owned(),
        ..EventSpec::default()
    }
}

/// Parses a `ReleasePolicy` document (the `policy` of `PolicyUpdated`) and checks that it is
/// coherent, exactly as the server will.
pub fn parse_policy(text: &str) -> anyhow::Result<projections::ReleasePolicy> {
    let policy: projections::ReleasePolicy = serde_json::from_str(text).map_err(|e| anyhow!("{e}"))?;
    policy.validate().map_err(|e| anyhow!(e))?;
    Ok(policy)
}

/// Reads and checks a policy file (see [`parse_policy`]).
pub fn read_policy(path: &Path) -> anyhow::Result<projections::ReleasePolicy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading policy file {}", path.display()))?;
    parse_policy(&text).with_context(|| format!("{} is not a valid release policy (nothing was sent)", path.display()))
}

/// A `PolicyUpdated` event carrying `policy`.
pub fn policy_updated(tenant: &str, agent_id: &str, policy: &projections::ReleasePolicy) -> anyhow::Result<EventSpec> {
    Ok(EventSpec {
        tenant: tenant.to_owned(),
        stream: POLICY_STREAM.into(),
        event_type: "PolicyUpdated".into(),
        data: serde_json::json!({ "policy": serde_json::to_value(policy)? }),
        agent_id: agent_id.to_owned(),
        ..EventSpec::default()
    })
}

/// A `ChangeFreezeDeclared` event, its windows compiled first (a bad rule, time zone or
/// window fails here, not on the server).
pub fn freeze_declared(
    tenant: &str,
    agent_id: &str,
    data: &projections::freeze::ChangeFreezeDeclaredData,
) -> anyhow::Result<EventSpec> {
    let occurred_at = now_rfc3339();
    projections::freeze::Freeze::compile(data.clone(), &occurred_at)
        .map_err(|e| anyhow!("freeze {:?} is not valid: {e}", data.freeze_id))?;
    Ok(EventSpec {
        tenant: tenant.to_owned(),
        stream: FREEZES_STREAM.into(),
        event_type: "ChangeFreezeDeclared".into(),
        data: serde_json::to_value(data)?,
        agent_id: agent_id.to_owned(),
        occurred_at: Some(occurred_at),
        ..EventSpec::default()
    })
}

/// A `ChangeFreezeLifted` event.
pub fn freeze_lifted(tenant: &str, agent_id: &str, freeze_id: &str, reason: Option<&str>) -> EventSpec {
    let mut data = serde_json::json!({ "freezeId": freeze_id });
    if let Some(reason) = reason {
        data["reason"] = reason.into();
    }
    EventSpec {
        tenant: tenant.to_owned(),
        stream: FREEZES_STREAM.into(),
        event_type: "ChangeFreezeLifted".into(),
        data,
        agent_id: agent_id.to_owned(),
        ..EventSpec::default()
    }
}

/// Parses `name@version`.
pub fn parse_module_version(text: &str) -> anyhow::Result<projections::catalogue::ModuleVersion> {
    match text.split_once('@') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => {
            Ok(projections::catalogue::ModuleVersion { name: name.to_owned(), version: version.to_owned() })
        }
        _ => bail!("module {text:?} must be written name@version, for example billing-service@2.4.0"),
    }
}

/// Builds the body of `spec` and checks it against the event catalogue, as the server will.
pub fn checked_body(spec: &EventSpec) -> anyhow::Result<Vec<u8>> {
    let body = event_body(spec)?;
    let parsed = ParsedEvent::parse(&body).map_err(|e| anyhow!("{} event not sent: {e}", spec.event_type))?;
    projections::GovEvent::parse(&parsed).map_err(|e| anyhow!("{} event not sent: {e}", spec.event_type))?;
    Ok(body)
}

/// Checks, signs and appends `spec` (no stream expectation); returns the receipt.
pub async fn append_spec(client: &mut Client, spec: &EventSpec, key: &KeyPair) -> anyhow::Result<pb::Receipt> {
    let event = signed_event(checked_body(spec)?, key, ExpectedVersion::Any);
    client
        .append(pb::AppendRequest { event: Some(event) })
        .await
        .map_err(|s| anyhow!("{} refused: {}", spec.event_type, status_line(&s)))?
        .into_inner()
        .receipt
        .ok_or_else(|| anyhow!("server returned no receipt"))
}

// Governance read models: JSON (camelCase, every field present, `null` when unset) and text
// for people. Shared by the query commands and the demo.

fn reasons_json(reasons: &[pb::Reason]) -> serde_json::Value {
    reasons.iter().map(|r| serde_json::json!({ "code": r.code, "module": r.module, "detail": r.detail })).collect()
}

fn factors_json(factors: &[pb::RiskFactor]) -> serde_json::Value {
    factors.iter().map(|f| serde_json::json!({ "factor": f.factor, "value": f.value, "points": f.points })).collect()
}

fn approval_json(a: &pb::Approval) -> serde_json::Value {
    serde_json::json!({
        "seq": a.seq, "recordedAt": a.recorded_at, "keyId": a.key_id, "agentId": a.agent_id, "role": a.role,
        "granted": a.granted, "text": a.text, "method": a.method,
    })
}

/// A `ReleaseSummary` as JSON.
pub fn summary_json(s: &pb::ReleaseSummary) -> serde_json::Value {
    serde_json::json!({
        "tenant": s.tenant,
        "releaseId": s.release_id,
        "environment": s.environment,
        "modules": s.modules.iter().map(|m| serde_json::json!({ "name": m.name, "version": m.version })).collect::<Vec<_>>(),
        "status": s.status,
        "reasons": reasons_json(&s.reasons),
        "retryAfter": s.retry_after,
        "retryable": s.retryable,
        "suggestedFix": s.suggested_fix,
        "riskScore": s.risk_score,
        "riskFactors": factors_json(&s.risk_factors),
        "approvals": s.approvals.iter().map(approval_json).collect::<Vec<_>>(),
        "policyVersion": s.policy_version,
        "lastDecision": s.last_decision.as_ref().map(|d| serde_json::json!({
            "type": d.r#type, "trigger": d.trigger, "evaluatedAt": d.evaluated_at, "seq": d.seq,
        })),
        "traceId": s.trace_id,
        "projectId": s.project_id,
        "declaredBy": s.declared_by,
        "createdAt": s.created_at,
        "updatedAt": s.updated_at,
        "notes": s.notes,
    })
}

/// A `Decision` (an explanation) as JSON.
pub fn decision_json(release: &str, d: &pb::Decision) -> serde_json::Value {
    serde_json::json!({
        "releaseId": release,
        "seq": d.seq,
        "type": d.r#type,
        "status": d.status,
        "policyVersion": d.policy_version,
        "evaluatedAt": d.evaluated_at,
        "trigger": d.trigger,
        "evidence": d.evidence,
        "gates": d.gates.iter().map(|g| serde_json::json!({
            "gate": g.gate, "target": g.target, "observed": g.observed, "verdict": g.verdict,
        })).collect::<Vec<_>>(),
        "reasons": reasons_json(&d.reasons),
        "retryAfter": d.retry_after,
        "retryable": d.retryable,
        "suggestedFix": d.suggested_fix,
        "riskScore": d.risk_score,
        "riskFactors": factors_json(&d.risk_factors),
        "reproduced": d.reproduced,
    })
}

/// A timeline item as JSON.
pub fn timeline_item_json(item: &pb::TimelineItem) -> serde_json::Value {
    serde_json::json!({
        "seq": item.seq, "recordedAt": item.recorded_at, "type": item.r#type, "agentId": item.agent_id,
        "summary": item.summary,
    })
}

/// A history item as JSON.
pub fn history_item_json(item: &pb::HistoryItem) -> serde_json::Value {
    serde_json::json!({
        "seq": item.seq, "recordedAt": item.recorded_at, "releaseId": item.release_id, "version": item.version,
        "event": item.event,
    })
}

/// An RFC 3339 time shortened for people (milliseconds, `Z`); anything else as given.
pub fn short_time(text: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// A plain-text table: a header row, a rule, then the rows, columns padded to their widest
/// cell (the last one is not padded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &mut dyn Iterator<Item = String>| {
        let cells: Vec<String> = cells.collect();
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0).saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned()
    };
    let mut lines = vec![line(&mut headers.iter().map(|h| (*h).to_owned()))];
    lines.push(line(&mut widths.iter().map(|w| "-".repeat(*w))));
    for row in rows {
        lines.push(line(&mut row.iter().cloned()));
    }
    lines.join("\n")
}

fn reason_line(r: &pb::Reason) -> String {
    match &r.module {
        Some(module) => format!("{} [{module}]: {}", r.code, r.detail),
        None => format!("{}: {}", r.code, r.detail),
    }
}

/// The risk score with the factors that add points, on one line.
pub fn risk_line(score: u32, factors: &[pb::RiskFactor]) -> String {
    let counted: Vec<String> =
        factors.iter().filter(|f| f.points > 0).map(|f| format!("{} +{} ({})", f.factor, f.points, f.value)).collect();
    if counted.is_empty() {
        format!("{score}")
    } else {
        format!("{score}: {}", counted.join(", "))
    }
}

/// A `ReleaseSummary` for people.
pub fn summary_text(s: &pb::ReleaseSummary) -> String {
    let mut lines = vec![format!("{}  {}", s.release_id, s.status)];
    let mut field = |name: &str, value: String| lines.push(format!("  {name:<14}{value}"));
    if let Some(env) = &s.environment {
        field("environment", env.clone());
    }
    let modules: Vec<String> = s.modules.iter().map(|m| format!("{}@{}", m.name, m.version)).collect();
    if !modules.is_empty() {
        field("modules", modules.join(", "));
    }
    if s.reasons.is_empty() {
        field("reasons", "none".into());
    }
    for (i, r) in s.reasons.iter().enumerate() {
        field(if i == 0 { "reasons" } else { "" }, reason_line(r));
    }
    if let Some(t) = &s.retry_after {
        field("retry after", short_time(t));
    }
    if let Some(r) = s.retryable {
        if s.status == "Rejected" {
            field("retryable", if r { "yes".into() } else { "no: a new release is needed".into() });
        }
    }
    if let Some(fix) = &s.suggested_fix {
        field("suggested fix", fix.clone());
    }
    if let Some(score) = s.risk_score {
        field("risk", risk_line(score, &s.risk_factors));
    }
    for (i, a) in s.approvals.iter().enumerate() {
        let verb = if a.granted { "approved" } else { "rejected" };
        let text = if a.text.is_empty() { String::new() } else { format!(": {}", a.text) };
        field(
            if i == 0 { "approvals" } else { "" },
            format!("seq {} {} {verb} as {}{text}", a.seq, a.agent_id, a.role),
        );
    }
    if let Some(v) = s.policy_version {
        field("policy", format!("version {v}"));
    }
    if let Some(d) = &s.last_decision {
        let at = d.seq.map(|seq| format!(", decision seq {seq}")).unwrap_or_else(|| ", being appended".into());
        field(
            "last decision",
            format!("{} (trigger seq {}{at}) at {}", d.r#type, d.trigger, short_time(&d.evaluated_at)),
        );
    }
    if let Some(t) = &s.trace_id {
        field("trace", t.clone());
    }
    if let Some(by) = &s.declared_by {
        field("declared by", by.clone());
    }
    field("updated", short_time(&s.updated_at));
    for (i, note) in s.notes.iter().enumerate() {
        field(if i == 0 { "notes" } else { "" }, note.clone());
    }
    lines.join("\n")
}

/// A decision explained for people: its gates, reasons, retry, fix, risk and evidence, and
/// whether it was reproduced from the log.
pub fn decision_text(release: &str, d: &pb::Decision) -> String {
    let mut out = Vec::new();
    let at = d.seq.map(|s| format!("seq {s}")).unwrap_or_else(|| "not yet in the log".into());
    out.push(format!("{} of {release} ({at}): {}", d.r#type, d.status));
    out.push(format!(
        "evaluated at {} (trigger seq {}), policy version {}",
        short_time(&d.evaluated_at),
        d.trigger,
        d.policy_version.map_or_else(|| "none".to_owned(), |v| v.to_string())
    ));
    out.push(format!(
        "reproduced from the log: {}",
        match d.reproduced {
            Some(true) => "yes, re-deriving it from the log prefix gives the same bytes",
            Some(false) => "NO: re-deriving it from the log gives a different decision",
            None => "not checked (the decision is not in the log yet)",
        }
    ));
    out.push(String::new());
    out.push("gates".into());
    let gates: Vec<Vec<String>> =
        d.gates.iter().map(|g| vec![g.gate.clone(), g.target.clone(), g.observed.clone(), g.verdict.clone()]).collect();
    out.push(table(&["gate", "target", "observed", "verdict"], &gates));
    out.push(String::new());
    out.push("reasons".into());
    if d.reasons.is_empty() {
        out.push("none".into());
    } else {
        let reasons: Vec<Vec<String>> = d
            .reasons
            .iter()
            .map(|r| vec![r.code.clone(), r.module.clone().unwrap_or_else(|| "-".into()), r.detail.clone()])
            .collect();
        out.push(table(&["code", "module", "detail"], &reasons));
    }
    out.push(String::new());
    out.push(format!("retry after:   {}", d.retry_after.as_deref().map_or_else(|| "-".to_owned(), short_time)));
    out.push(format!("retryable:     {}", if d.retryable { "yes" } else { "no" }));
    out.push(format!("suggested fix: {}", d.suggested_fix.as_deref().unwrap_or("-")));
    out.push(String::new());
    out.push(format!("risk score {}", d.risk_score));
    let factors: Vec<Vec<String>> =
        d.risk_factors.iter().map(|f| vec![f.factor.clone(), f.value.clone(), f.points.to_string()]).collect();
    out.push(table(&["factor", "value", "points"], &factors));
    out.push(String::new());
    let evidence: Vec<String> = d.evidence.iter().map(u64::to_string).collect();
    out.push(format!("evidence seqs: {}", evidence.join(", ")));
    out.join("\n")
}

/// A timeline for people.
pub fn timeline_text(items: &[pb::TimelineItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![i.seq.to_string(), short_time(&i.recorded_at), i.r#type.clone(), i.agent_id.clone(), i.summary.clone()]
        })
        .collect();
    table(&["seq", "time", "type", "agent", "summary"], &rows)
}

/// A module × environment history for people.
pub fn history_text(items: &[pb::HistoryItem]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                i.seq.to_string(),
                short_time(&i.recorded_at),
                i.release_id.clone(),
                i.version.clone(),
                i.event.clone(),
            ]
        })
        .collect();
    table(&["seq", "time", "release", "version", "event"], &rows)
}

/// Release summaries as a listing for people.
pub fn releases_text(releases: &[pb::ReleaseSummary]) -> String {
    let rows: Vec<Vec<String>> = releases
        .iter()
        .map(|s| {
            let modules: Vec<String> = s.modules.iter().map(|m| format!("{}@{}", m.name, m.version)).collect();
            let reasons: Vec<&str> = s.reasons.iter().map(|r| r.code.as_str()).collect();
            vec![
                s.release_id.clone(),
                s.status.clone(),
                s.environment.clone().unwrap_or_else(|| "-".into()),
                modules.join(", "),
                if reasons.is_empty() { "-".into() } else { reasons.join(", ") },
                short_time(&s.updated_at),
            ]
        })
        .collect();
    table(&["release", "status", "environment", "modules", "reasons", "updated"], &rows)
}
