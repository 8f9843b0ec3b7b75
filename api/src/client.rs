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
use tonic::transport::Channel;

use crate::convert::{entry_from_pb, envelope_to_pb, expected_version_to_pb};

/// A connected client.
pub type Client = LedgerClient<Channel>;

/// Connects to `server` (for example `http://127.0.0.1:50051`).
pub async fn connect(server: &str, max_message_bytes: usize) -> anyhow::Result<Client> {
    let channel = Channel::from_shared(server.to_owned())
        .with_context(|| format!("bad server URL {server:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {server}"))?;
    Ok(LedgerClient::new(channel)
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes))
}

/// A gRPC error as one line: the code and the server's message.
pub fn status_line(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
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
