//! Event builders: the JSON body of an event, checked against the catalogue where the server
//! will check it, signed with the caller's key.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use ledger::{Envelope, ExpectedVersion, KeyPair, ParsedEvent};
use ledger_wire::convert::{envelope_to_pb, expected_version_to_pb};
use proto::v1 as pb;

use crate::connect::{refused, Client, Refused};

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
    let info = client.get_info(pb::GetInfoRequest {}).await.map_err(refused)?.into_inner();
    let key_id = key.key_id().to_hex();
    if key_id == info.ledger_key_id {
        return Ok("release-ledger".into());
    }
    sign_in(&info, tenant, key, SIGN_IN_TTL)?;
    if key_id == info.admin_key_id {
        return Ok("admin".into());
    }
    let keys = match client.list_keys(pb::ListKeysRequest { tenant: tenant.to_owned() }).await {
        Ok(response) => response.into_inner().keys,
        Err(status) if status.code() == tonic::Code::PermissionDenied => return Err(refused(status)),
        // Not registered in the tenant (the token this key signed is refused), or a tenant
        // with no log yet: said below.
        Err(_) => Vec::new(),
    };
    keys.into_iter().find(|k| k.key_id == key_id).map(|k| k.agent_id).ok_or_else(|| {
        anyhow!(
            "key {key_id} is neither this server's admin key (id {}) nor registered in tenant {tenant:?}: \
             pass the admin key of the server's data dir (--admin-key, or --key for governance commands; \
             default ./release-ledger-data/keys/admin.pem) or a key registered in the tenant, or register \
             this key first with `release-ledger keys register`",
            info.admin_key_id
        )
    })
}

/// How long the token one command signs itself in with lives.
pub const SIGN_IN_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// Unless the process has a token (`--token`, `RELEASE_LEDGER_TOKEN`, ...), signs in with the
/// key this command signs with, for its own reads (a registration's lookup, `--wait`): the
/// admin key's token is an operator's; a tenant key's names `tenant` and, as its subject, its
/// key id. For `ttl` ([`SIGN_IN_TTL`] for one command). Returns whether it did.
pub fn sign_in(info: &pb::LedgerInfo, tenant: &str, key: &KeyPair, ttl: std::time::Duration) -> anyhow::Result<bool> {
    if crate::auth::current().token.is_some() {
        return Ok(false);
    }
    let key_id = key.key_id().to_hex();
    let (subject, tenant) = if key_id == info.admin_key_id {
        (ledger_wire::token::ADMIN_SUBJECT.to_owned(), None)
    } else {
        (key_id, Some(tenant))
    };
    let now = ledger_wire::token::unix_now();
    let token = ledger_wire::token::mint(key, &subject, tenant, &info.origin_prefix, ttl, now)?;
    crate::auth::set_token(Some(crate::auth::TokenSource::Value(token)));
    Ok(true)
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

/// Base64 of raw bytes.
pub use ledger::b64::encode as b64;

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
    read_policy_with_rego(path, &[])
}

/// Reads a policy file, adds each of `rego` (Rego source files) to its `rego.modules` under
/// the file's name, and checks the whole (see [`parse_policy`]: the Rego is compiled, so a
/// module that does not compile fails here with the compiler's message, file:line).
pub fn read_policy_with_rego(path: &Path, rego: &[std::path::PathBuf]) -> anyhow::Result<projections::ReleasePolicy> {
    load_policy(path, rego)
        .with_context(|| format!("{} is not a valid release policy (nothing was sent)", path.display()))
}

/// [`read_policy_with_rego`] without saying that nothing was sent (for checks that send
/// nothing anyway).
pub fn load_policy(path: &Path, rego: &[std::path::PathBuf]) -> anyhow::Result<projections::ReleasePolicy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading policy file {}", path.display()))?;
    if rego.is_empty() {
        return parse_policy(&text);
    }
    let mut document: serde_json::Value = serde_json::from_str(&text).map_err(|e| anyhow!("{e}"))?;
    add_rego_modules(&mut document, rego)?;
    parse_policy(&document.to_string())
}

/// Adds the Rego files `rego` to the policy `document`'s `rego.modules` (created if absent),
/// each under its file name; a name given twice, or already in the document, is an error.
pub fn add_rego_modules(document: &mut serde_json::Value, rego: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let Some(object) = document.as_object_mut() else { bail!("a release policy is a JSON object") };
    let section = object.entry("rego").or_insert_with(|| serde_json::json!({}));
    let Some(section) = section.as_object_mut() else { bail!("rego: a JSON object {{\"modules\": {{...}}}}") };
    let modules = section.entry("modules").or_insert_with(|| serde_json::json!({}));
    let Some(modules) = modules.as_object_mut() else { bail!("rego.modules: a JSON object (file name -> source)") };
    let mut given: std::collections::BTreeMap<String, &Path> = std::collections::BTreeMap::new();
    for file in rego {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("--rego {}: no file name", file.display()))?
            .to_owned();
        if let Some(first) = given.get(&name) {
            bail!(
                "rego module {name} is given twice (--rego {} and --rego {}): module names are file names",
                first.display(),
                file.display()
            );
        }
        if modules.contains_key(&name) {
            bail!("rego module {name} is given twice (in the document's rego.modules and --rego {})", file.display());
        }
        let source =
            std::fs::read_to_string(file).with_context(|| format!("reading rego module {}", file.display()))?;
        modules.insert(name.clone(), source.into());
        given.insert(name, file);
    }
    Ok(())
}

/// Parses digests written `ALGORITHM:HEX` (`sha256:9f86…`) into an in-toto DigestSet; `what`
/// names the flag in errors.
pub fn parse_digest_set(texts: &[String], what: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut set = std::collections::BTreeMap::new();
    for text in texts {
        let Some((algorithm, value)) = text.split_once(':') else {
            bail!("{what} {text:?} must be written ALGORITHM:HEX, for example sha256:9f86d0…");
        };
        if set.insert(algorithm.to_owned(), value.to_owned()).is_some() {
            bail!("{what}: {algorithm} is given twice");
        }
    }
    projections::catalogue::check_digest(&set).map_err(|e| anyhow!("{what}: {e}"))?;
    Ok(set)
}

/// What an `EvidenceAttached` carries: a body, or an in-toto attestation.
#[derive(Debug, Clone)]
pub enum EvidenceContent {
    /// A JSON object, as the bytes of its file (the content digest is theirs).
    Body(Vec<u8>),
    /// A DSSE envelope (JSON) of an in-toto Statement, as the bytes of its file (the content
    /// digest is the statement's, the envelope's decoded payload).
    Attestation(Vec<u8>),
}

/// The `data` of an `EvidenceAttached`: `contentDigest` is computed (sha256 of the body's
/// bytes, or of the attestation's payload) unless `content_digest` is given (a body only);
/// the media type defaults to `application/json` for a body and the in-toto type for an
/// attestation.
#[allow(clippy::too_many_arguments)]
pub fn evidence_attached_data(
    module: &str,
    version: &str,
    kind: &str,
    subject_digest: std::collections::BTreeMap<String, String>,
    content: &EvidenceContent,
    content_digest: Option<std::collections::BTreeMap<String, String>>,
    media_type: Option<&str>,
    uri: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    use sha2::Digest as _;
    let sha256 = |bytes: &[u8]| {
        std::collections::BTreeMap::from([("sha256".to_owned(), hex::encode(sha2::Sha256::digest(bytes)))])
    };
    let (field, value, computed, default_media) = match content {
        EvidenceContent::Body(bytes) => {
            let body: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| anyhow!("the body is not JSON: {e}"))?;
            if !body.is_object() {
                bail!("the body must be a JSON object");
            }
            ("body", body, sha256(bytes), "application/json")
        }
        EvidenceContent::Attestation(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| anyhow!("the attestation is not UTF-8 JSON"))?;
            let envelope =
                Envelope::from_json(text).map_err(|e| anyhow!("the attestation is not a DSSE envelope: {e}"))?;
            let value: serde_json::Value = serde_json::from_str(text)?;
            if content_digest.is_some() {
                bail!("an attestation's contentDigest is its statement's sha256, computed here: leave out --content-digest");
            }
            ("attestation", value, sha256(&envelope.payload), projections::catalogue::IN_TOTO_PAYLOAD_TYPE)
        }
    };
    let mut data = serde_json::json!({
        "module": module,
        "version": version,
        "kind": kind,
        "subjectDigest": subject_digest,
        "contentDigest": content_digest.unwrap_or(computed),
        "mediaType": media_type.unwrap_or(default_media),
    });
    data[field] = value;
    if let Some(uri) = uri {
        data["uri"] = uri.into();
    }
    Ok(data)
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

/// Parses `name@version`, optionally followed by the artifact's digest as
/// `=ALGORITHM:HEX` (`billing@2.4.0=sha256:9f86…`; `=` is in no module or version name).
pub fn parse_module_version(text: &str) -> anyhow::Result<projections::catalogue::ModuleVersion> {
    let (module, digest) = match text.split_once('=') {
        Some((module, digest)) => {
            let Some((algorithm, value)) = digest.split_once(':') else {
                bail!("digest {digest:?} of {module:?} must be written ALGORITHM:HEX, for example sha256:9f86d0…");
            };
            let set = std::collections::BTreeMap::from([(algorithm.to_owned(), value.to_owned())]);
            projections::catalogue::check_digest(&set).map_err(|e| anyhow!("module {module:?}: {e}"))?;
            (module, Some(set))
        }
        None => (text, None),
    };
    match module.split_once('@') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => {
            Ok(projections::catalogue::ModuleVersion { name: name.to_owned(), version: version.to_owned(), digest })
        }
        _ => bail!(
            "module {module:?} must be written name@version, for example billing-service@2.4.0 \
             (or billing-service@2.4.0=sha256:<64 hex digits> with the artifact's digest)"
        ),
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
        .map_err(|s| anyhow::Error::new(Refused::new(s)).context(format!("{} refused", spec.event_type)))?
        .into_inner()
        .receipt
        .ok_or_else(|| anyhow!("server returned no receipt"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rego_files_join_the_policy_under_their_file_names_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("slo.rego");
        std::fs::write(&a, "package gates.slo\nresult := {\"verdict\": \"pass\"}\n").unwrap();
        std::fs::create_dir(dir.path().join("other")).unwrap();
        let again = dir.path().join("other/slo.rego");
        std::fs::write(&again, "package gates.slo\n").unwrap();

        let mut doc = serde_json::json!({"version": 1, "rego": {"instructionLimit": 1000}});
        add_rego_modules(&mut doc, std::slice::from_ref(&a)).unwrap();
        assert_eq!(doc["rego"]["modules"]["slo.rego"], "package gates.slo\nresult := {\"verdict\": \"pass\"}\n");
        assert_eq!(doc["rego"]["instructionLimit"], 1000);
        let err = add_rego_modules(&mut doc, std::slice::from_ref(&again)).unwrap_err().to_string();
        assert!(err.contains("rego module slo.rego is given twice (in the document's rego.modules"), "{err}");
        let mut fresh = serde_json::json!({"version": 1});
        let err = add_rego_modules(&mut fresh, &[a, again]).unwrap_err().to_string();
        assert!(err.contains("rego module slo.rego is given twice (--rego "), "{err}");
    }

    #[test]
    fn evidence_digests_are_computed_from_the_body_file_or_the_statement() {
        use sha2::Digest as _;
        let subject = std::collections::BTreeMap::from([("sha256".to_owned(), "a".repeat(64))]);
        let body = br#"{"errorBudgetRemaining": 0.4}"#.to_vec();
        let data = evidence_attached_data(
            "api",
            "1.0",
            "slo-report",
            subject.clone(),
            &EvidenceContent::Body(body.clone()),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(data["contentDigest"]["sha256"], hex::encode(sha2::Sha256::digest(&body)));
        assert_eq!(
            (data["mediaType"].as_str(), data["body"]["errorBudgetRemaining"].as_f64()),
            (Some("application/json"), Some(0.4))
        );
        assert!(data.get("attestation").is_none());

        let statement = br#"{"_type": "https://in-toto.io/Statement/v1"}"#;
        let envelope = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": ledger::b64::encode(statement),
            "signatures": [{"keyid": "k", "sig": ledger::b64::encode(b"sig")}],
        });
        let content = EvidenceContent::Attestation(envelope.to_string().into_bytes());
        let data = evidence_attached_data("api", "1.0", "slsa-provenance", subject.clone(), &content, None, None, None)
            .unwrap();
        assert_eq!(data["contentDigest"]["sha256"], hex::encode(sha2::Sha256::digest(statement)));
        assert_eq!(data["mediaType"], "application/vnd.in-toto+json");
        assert_eq!(data["attestation"], envelope);
        let err = evidence_attached_data("api", "1.0", "k", subject, &content, Some(Default::default()), None, None)
            .unwrap_err();
        assert!(err.to_string().contains("leave out --content-digest"), "{err}");

        assert!(parse_digest_set(&["sha256:abc".into()], "--subject-digest").is_err());
        let err =
            parse_digest_set(&[format!("sha256:{}", "a".repeat(64)), format!("sha256:{}", "b".repeat(64))], "--x")
                .unwrap_err();
        assert!(err.to_string().contains("--x: sha256 is given twice"), "{err}");
    }
}
