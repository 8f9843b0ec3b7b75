//! The console's data endpoints: the proof an entry page verifies, the two steps of an
//! approval signed in the browser, the board's live updates, and the downloads.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ledger::envelope::{Envelope, Signature};
use proto::v1 as pb;
use proto::v1::ledger_server::Ledger as _;
use serde_json::json;
use tonic::Status;

use super::pages::base64_encode;
use super::{Console, ConsolePeer};
use crate::access::{self, Principal, Rule};

type Peer = ConnectInfo<ConsolePeer>;

/// How often the live-update stream looks at the tenant's log size.
const LIVE_POLL: Duration = Duration::from_secs(1);

/// A JSON error: `{"code", "message"}`, the gRPC code's name and the message verbatim.
fn json_error(http: StatusCode, code: &str, message: &str) -> Response {
    (http, Json(json!({ "code": code, "message": message }))).into_response()
}

fn status_error(status: &Status) -> Response {
    let http = match status.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument | tonic::Code::OutOfRange => StatusCode::BAD_REQUEST,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => StatusCode::CONFLICT,
        tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(http, &format!("{:?}", status.code()), status.message())
}

/// The principal of a data request, allowed `rule` on `tenant` (logged and counted under
/// `method`); JSON errors, never a redirect.
fn principal_for(
    console: &Console,
    headers: &HeaderMap,
    peer: &ConsolePeer,
    method: &'static str,
    rule: Rule,
    tenant: &str,
) -> Result<Principal, Response> {
    let principal = match console.principal(headers, peer) {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            return Err(json_error(
                StatusCode::UNAUTHORIZED,
                "Unauthenticated",
                "sign in first (/login), or send an Authorization: Bearer token",
            ))
        }
        Err(status) => return Err(status_error(&status)),
    };
    let mut extensions = http::Extensions::new();
    extensions.insert(console.0.access.grant(method, rule, Some(principal.clone())));
    access::check(&extensions, tenant).map_err(|status| status_error(&status))?;
    ledger::ids::TenantId::check(tenant)
        .map_err(|e| json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string()))?;
    Ok(principal)
}

/// A POST must say it is JSON: a cross-site form cannot, so the browser refuses to send one
/// without asking this origin first (which it does not allow).
fn require_json(headers: &HeaderMap) -> Result<(), Response> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")));
    if json {
        Ok(())
    } else {
        Err(json_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "InvalidArgument", "send Content-Type: application/json"))
    }
}

fn internal(error: impl std::fmt::Display) -> Response {
    json_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal", &error.to_string())
}

/// `GET /t/{tenant}/entries/{seq}/proof.json` (docs/console.md): the entry, its envelope, its
/// inclusion proof in the newest checkpoint, and that signed checkpoint.
pub(super) async fn proof(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path((tenant, seq)): Path<(String, String)>,
) -> Response {
    if let Err(response) = principal_for(&console, &headers, &peer, "console/proof", Rule::TenantRead, &tenant) {
        return response;
    }
    let Ok(seq) = seq.parse::<u64>() else {
        return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &format!("{seq:?} is not a seq"));
    };
    let ledger = console.0.ledger.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<serde_json::Value, Response> {
        let status = |e: ledger::ReadError| status_error(&crate::status::read_status(&e));
        let entry = ledger.entry(&tenant, seq).map_err(status)?;
        let checkpoint = ledger.checkpoint(&tenant).map_err(status)?;
        let size = checkpoint.checkpoint.size;
        if seq >= size {
            return Err(json_error(
                StatusCode::CONFLICT,
                "FailedPrecondition",
                &format!("entry {seq} is not in a signed checkpoint yet (the newest covers {size} entries): retry"),
            ));
        }
        let proof = ledger.inclusion_proof(&tenant, seq, size).map_err(status)?;
        Ok(json!({
            "tenant": tenant,
            "seq": seq,
            "entry": {
                "seq": entry.seq,
                "recordedAt": entry.recorded_at.to_string(),
                "prevHash": hex::encode(entry.prev_hash),
                "payloadHash": hex::encode(entry.payload_hash),
                "entryHash": hex::encode(entry.entry_hash),
            },
            "envelope": entry.envelope().map(|e| base64_encode(&e.to_bytes())),
            "inclusion": {
                "leafIndex": seq,
                "treeSize": size,
                "hashes": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
            },
            "checkpoint": checkpoint.note,
        }))
    })
    .await;
    match read {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(response)) => response,
        Err(e) => internal(e),
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Prepare {
    release_id: String,
    key_id: String,
    role: String,
    #[serde(default)]
    comment: String,
}

/// `POST /t/{tenant}/approvals/prepare`: the exact `ApprovalGranted` (method `UI`) the key
/// will sign — after checking that the key is registered in the tenant, not revoked, and holds
/// the role, so the person learns that before signing. The ledger checks it all again at
/// append: this is for the person, not the ledger.
pub(super) async fn prepare_approval(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(response) = require_json(&headers) {
        return response;
    }
    if let Err(response) = principal_for(&console, &headers, &peer, "console/prepare", Rule::TenantRead, &tenant) {
        return response;
    }
    let prepare: Prepare = match serde_json::from_slice(&body) {
        Ok(prepare) => prepare,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &format!("the request: {e}")),
    };
    if let Err(e) = ledger::ids::ReleaseId::check_as("releaseId", &prepare.release_id) {
        return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string());
    }
    let ledger = console.0.ledger.clone();
    let read_tenant = tenant.clone();
    let records = match tokio::task::spawn_blocking(move || ledger.key_records(&read_tenant)).await {
        Ok(Ok(records)) => records,
        Ok(Err(e)) => return status_error(&crate::status::read_status(&e)),
        Err(e) => return internal(e),
    };
    let short = ledger::clip_at(&prepare.key_id, 16).to_string();
    let Some(record) = records.iter().find(|r| r.key_id == prepare.key_id) else {
        return json_error(
            StatusCode::FORBIDDEN,
            "PermissionDenied",
            &format!(
                "key {short} is not registered in tenant {tenant}: register it (release-ledger key register) first"
            ),
        );
    };
    if let Some(seq) = record.revoked_at {
        return json_error(
            StatusCode::FORBIDDEN,
            "PermissionDenied",
            &format!("key {short} of {} was revoked at seq {seq}", record.agent_id),
        );
    }
    if !record.roles.iter().any(|r| r == &prepare.role) {
        return json_error(
            StatusCode::FORBIDDEN,
            "PermissionDenied",
            &format!(
                "key {short} of {} holds the roles [{}], not {}",
                record.agent_id,
                record.roles.join(", "),
                prepare.role
            ),
        );
    }
    let payload = json!({
        "tenant": tenant,
        "stream": projections::decision::release_stream(&prepare.release_id),
        "type": "ApprovalGranted",
        "eventId": uuid::Uuid::now_v7().to_string(),
        "occurredAt": ledger::time::format_ns(console.0.ledger.config().clock.now_ns() as i64),
        "actor": { "agentId": record.agent_id, "role": prepare.role },
        "data": { "role": prepare.role, "comment": prepare.comment, "method": "UI" },
        "releaseId": prepare.release_id,
    });
    let bytes = match serde_json::to_vec(&payload) {
        Ok(bytes) => bytes,
        Err(e) => return internal(e),
    };
    Json(json!({
        "payloadType": ledger::envelope::EVENT_PAYLOAD_TYPE,
        "payload": base64_encode(&bytes),
        "agentId": record.agent_id,
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct JsonEnvelope {
    payload_type: String,
    payload: String,
    signatures: Vec<JsonSignature>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JsonSignature {
    keyid: String,
    sig: String,
}

/// `POST /t/{tenant}/append`: one signed event (a DSSE envelope, JSON with base64 fields),
/// appended through the `Ledger` service's `Append` in process — the same signature checks,
/// guards, cluster forwarding and refusals as a gRPC client gets, answered as
/// `{"seq", "entryHash", "recordedAt"}` or `{"code", "message"}`.
pub(super) async fn append(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    use base64::Engine as _;
    if let Err(response) = require_json(&headers) {
        return response;
    }
    // Reading the page the approval is made on needs a reader; the append itself is
    // authenticated by its signature, as on the gRPC port.
    let principal = match principal_for(&console, &headers, &peer, "console/append", Rule::TenantRead, &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let parsed: JsonEnvelope = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &format!("the envelope: {e}")),
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = match b64.decode(&parsed.payload) {
        Ok(payload) => payload,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &format!("payload: not base64: {e}")),
    };
    let mut signatures = Vec::with_capacity(parsed.signatures.len());
    for (index, s) in parsed.signatures.into_iter().enumerate() {
        match b64.decode(&s.sig) {
            Ok(sig) => signatures.push(Signature { keyid: s.keyid, sig }),
            Err(e) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    &format!("signatures[{index}].sig: not base64: {e}"),
                )
            }
        }
    }
    // The event must be for this page's tenant: the ledger would append it to whichever
    // tenant it names.
    let named = serde_json::from_slice::<serde_json::Value>(&payload)
        .ok()
        .and_then(|v| v.get("tenant").and_then(|t| t.as_str()).map(str::to_owned));
    if named.as_deref() != Some(tenant.as_str()) {
        return json_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            &format!("the event names tenant {:?}, not this page's tenant {tenant:?}", named.unwrap_or_default()),
        );
    }
    let envelope = Envelope { payload_type: parsed.payload_type, payload, signatures };
    let mut request = tonic::Request::new(pb::AppendRequest {
        event: Some(pb::AppendEvent {
            envelope: Some(crate::convert::envelope_to_pb(&envelope)),
            expected_version: Some(crate::convert::expected_version_to_pb(ledger::ExpectedVersion::Any)),
        }),
    });
    request.extensions_mut().insert(console.0.access.grant(
        "/release_ledger.v1.Ledger/Append",
        Rule::Append,
        Some(principal),
    ));
    match console.0.service.append(request).await {
        Ok(response) => match response.into_inner().receipt {
            Some(receipt) => Json(json!({
                "seq": receipt.seq,
                "entryHash": hex::encode(&receipt.entry_hash),
                "recordedAt": receipt.recorded_at_unix_nanos.to_string(),
                "duplicate": receipt.duplicate,
            }))
            .into_response(),
            None => internal("the ledger answered without a receipt"),
        },
        Err(status) => status_error(&status),
    }
}

/// `GET /t/{tenant}/events`: server-sent events, `event: head` with the tenant's log size each
/// time it changes (checked every second), so the board refreshes itself.
pub(super) async fn events(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    if let Err(response) = principal_for(&console, &headers, &peer, "console/events", Rule::TenantRead, &tenant) {
        return response;
    }
    let ledger = console.0.ledger.clone();
    let stop = console.0.stop.clone();
    let state = (ledger, tenant, None::<u64>, stop);
    let stream = futures::stream::unfold(state, |(ledger, tenant, last, mut stop)| async move {
        loop {
            if stop.as_ref().is_some_and(|s| *s.borrow()) {
                return None;
            }
            let size = ledger.head(&tenant).map(|h| h.size).unwrap_or(0);
            if last != Some(size) {
                let event = Event::default().event("head").data(size.to_string());
                return Some((Ok::<_, Infallible>(event), (ledger, tenant, Some(size), stop)));
            }
            match stop.as_mut() {
                Some(stop) => {
                    tokio::select! {
                        () = tokio::time::sleep(LIVE_POLL) => {}
                        changed = stop.changed() => if changed.is_err() { return None },
                    }
                }
                None => tokio::time::sleep(LIVE_POLL).await,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// `GET /t/{tenant}/releases/{release}/attestation.json`: the signed attestation (DSSE, in-toto
/// SLSA VSA) of the release's last decision, as `GetAttestations` gives it.
pub(super) async fn attestation(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path((tenant, release)): Path<(String, String)>,
) -> Response {
    if let Err(response) = principal_for(&console, &headers, &peer, "console/attestation", Rule::TenantRead, &tenant) {
        return response;
    }
    let (ledger, governor) = (console.0.ledger.clone(), console.0.governor.clone());
    let file = format!("{release}.attestation.json");
    let made = tokio::task::spawn_blocking(move || {
        let last = governor
            .with_release(&tenant, &release, |_, r| r.decision_seqs.last().copied())
            .map_err(|e| Status::internal(e.to_string()))?;
        let Some(Some(Some(seq))) = last else {
            return Err(Status::not_found(format!("release {release:?} has no decision in the log yet")));
        };
        crate::query::attestation(&ledger, &tenant, &release, seq)
    })
    .await;
    match made {
        Ok(Ok(attestation)) => download(attestation.envelope.into_bytes(), "application/json", &file),
        Ok(Err(status)) => status_error(&status),
        Err(e) => internal(e),
    }
}

/// `GET /t/{tenant}/releases/{release}/evidence.tar`: the release's evidence pack
/// (docs/evidence.md), built from the store at the newest checkpoint and checked by the
/// offline verifier before it is sent. It reads the tenant's log, so one is built at a time.
pub(super) async fn evidence_pack(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path((tenant, release)): Path<(String, String)>,
) -> Response {
    if let Err(response) = principal_for(&console, &headers, &peer, "console/evidence", Rule::TenantRead, &tenant) {
        return response;
    }
    if let Err(e) = ledger::ids::ReleaseId::check_as("release", &release) {
        return json_error(StatusCode::BAD_REQUEST, "InvalidArgument", &e.to_string());
    }
    let Ok(_permit) = console.0.heavy.acquire().await else { return internal("the console is shutting down") };
    let ledger = console.0.ledger.clone();
    let file = format!("{release}.evidence.tar");
    let built = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, Response> {
        let pack = ledger_tools::evidence::Pack::from_ledger(&ledger, &tenant, &release)
            .map_err(|e| json_error(StatusCode::NOT_FOUND, "NotFound", &e))?;
        let files = pack.files().map_err(|e| json_error(StatusCode::CONFLICT, "FailedPrecondition", &e.to_string()))?;
        let roots = ledger.trust_roots();
        ledger_tools::evidence::verify(&files, Some(roots.ledger()))
            .map_err(|e| internal(format!("the pack does not verify: {e}")))?;
        ledger_tools::evidence::archive(&files).map_err(internal)
    })
    .await;
    match built {
        Ok(Ok(bytes)) => download(bytes, "application/x-tar", &file),
        Ok(Err(response)) => response,
        Err(e) => internal(e),
    }
}

fn download(bytes: Vec<u8>, content_type: &'static str, file: &str) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", file.replace(['"', '\\', '/'], "_"));
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], bytes).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
