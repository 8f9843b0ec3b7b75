//! Release notes from verified entries only: every entry about a release is fetched, re-hashed,
//! its signature checked (the ledger key for decisions, the tenant's registered key of its
//! signer or the admin key otherwise) and its inclusion proven in one checkpoint the ledger key signed; the
//! notes are rendered from those entries' signed payloads, never from the server's read models.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use ledger::{EntryBody, SignedCheckpoint};
use proto::v1 as pb;

use crate::connect::{query_error, refused, Client, QueryClient};
use crate::verify::{checked_entry, current_checkpoint, prove_inclusion, VerifyError};

/// One verified entry about the release.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// Its seq.
    pub seq: u64,
    /// `recordedAt`, RFC 3339.
    pub recorded_at: String,
    /// The event type.
    pub event_type: String,
    /// `actor.agentId`.
    pub agent_id: String,
    /// Who signed it: `ledger key`, or `key <id…> (<agent>)`.
    pub signed_by: String,
    /// Its `data`, as signed.
    pub data: serde_json::Value,
}

/// The verified entries of a release and the checkpoint they are proven in.
#[derive(Debug)]
pub struct VerifiedRelease {
    /// The entries, in log order.
    pub entries: Vec<VerifiedEntry>,
    /// Entries about the release whose payload was redacted (their seqs): not in the notes.
    pub redacted: Vec<u64>,
    /// The checkpoint every entry is included in.
    pub checkpoint: SignedCheckpoint,
}

/// Fetches and verifies every entry about `release` (its timeline's seqs).
pub async fn verified_release(
    client: &mut Client,
    query: &mut QueryClient,
    tenant: &str,
    release: &str,
    ledger_key: &VerifyingKey,
) -> anyhow::Result<VerifiedRelease> {
    let request = pb::GetReleaseTimelineRequest { tenant: tenant.to_owned(), release_id: release.to_owned() };
    let timeline = query.get_release_timeline(request).await.map_err(query_error)?.into_inner();
    // After the timeline: every seq it names is inside this checkpoint's tree.
    let checkpoint = current_checkpoint(client, tenant, ledger_key).await?;
    let keys = client.list_keys(pb::ListKeysRequest { tenant: tenant.to_owned() }).await.map_err(refused)?;
    let mut keys: HashMap<String, (Option<VerifyingKey>, String)> = keys
        .into_inner()
        .keys
        .into_iter()
        .map(|k| (k.key_id, (ledger::keys::public_key_from_base64(&k.public_key).ok(), k.agent_id)))
        .collect();
    // The admin key may sign any ordinary event of any tenant (as the server reports it).
    let info = client.get_info(pb::GetInfoRequest {}).await.map_err(refused)?.into_inner();
    let admin = ledger::keys::public_key_from_bytes(&info.admin_public_key).ok();
    keys.insert(info.admin_key_id, (admin, "admin".to_owned()));
    let mut entries = Vec::new();
    let mut redacted = Vec::new();
    for item in timeline.items {
        let seq = item.seq;
        let bad = |reason: String| VerifyError::Entry { seq, reason };
        let request =
            pb::GetEntryRequest { tenant: tenant.to_owned(), key: Some(pb::get_entry_request::Key::Seq(seq)) };
        let entry = checked_entry(None, client.get_entry(request).await.map_err(refused)?.into_inner())?;
        if entry.seq != seq {
            return Err(bad(format!("the server sent seq {}", entry.seq)).into());
        }
        let proof = prove_inclusion(client, tenant, seq, &checkpoint).await?;
        if proof.entry_hash.as_slice() != entry.entry_hash.as_slice() {
            return Err(VerifyError::EntryMismatch { seq }.into());
        }
        let EntryBody::Present(envelope) = &entry.body else {
            redacted.push(seq);
            continue;
        };
        let message = ledger::pae(&envelope.payload_type, &envelope.payload);
        let verifies = |key: &VerifyingKey, sig: &[u8]| {
            ed25519_dalek::Signature::from_slice(sig).is_ok_and(|sig| key.verify_strict(&message, &sig).is_ok())
        };
        let signed_by = envelope.signatures.iter().find_map(|s| {
            if verifies(ledger_key, &s.sig) {
                return Some("ledger key".to_owned());
            }
            match keys.get(&s.keyid) {
                Some((Some(key), agent)) if verifies(key, &s.sig) => {
                    Some(format!("key {}… ({agent})", s.keyid.get(..12).unwrap_or(&s.keyid)))
                }
                _ => None,
            }
        });
        let signed_by =
            signed_by.ok_or_else(|| bad("no signature verifies with the ledger key or a key of the tenant".into()))?;
        let body: serde_json::Value =
            serde_json::from_slice(&envelope.payload).map_err(|e| bad(format!("its payload is not JSON: {e}")))?;
        let text = |field: &serde_json::Value| field.as_str().unwrap_or_default().to_owned();
        if text(&body["tenant"]) != tenant || text(&body["releaseId"]) != release {
            return Err(bad(format!("it is not about release {release:?} of tenant {tenant:?}")).into());
        }
        let event_type = text(&body["type"]);
        if ledger::event::DECISION_TYPES.contains(&event_type.as_str()) && signed_by != "ledger key" {
            return Err(bad(format!("a {event_type} not signed by the ledger key")).into());
        }
        entries.push(VerifiedEntry {
            seq,
            recorded_at: ledger::time::format_recorded_at(entry.recorded_at),
            event_type,
            agent_id: text(&body["actor"]["agentId"]),
            signed_by,
            data: body["data"].clone(),
        });
    }
    Ok(VerifiedRelease { entries, redacted, checkpoint })
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The release notes, in Markdown, from the verified entries.
pub fn render_markdown(tenant: &str, release: &str, verified: &VerifiedRelease, ledger_key_id: &str) -> String {
    let of = |types: &'static [&'static str]| {
        verified.entries.iter().filter(move |e| types.contains(&e.event_type.as_str()))
    };
    let s = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    let mut out = format!("# Release notes: {release}\n\n");
    let intent = of(&["ReleaseIntentDeclared"]).next();
    out.push_str(&format!("- Tenant: `{tenant}`\n"));
    if let Some(intent) = intent {
        out.push_str(&format!(
            "- Environment: `{}`; declared by {} at {} (seq {})\n",
            s(&intent.data["environment"]),
            intent.agent_id,
            intent.recorded_at,
            intent.seq
        ));
    }
    let last = of(&ledger::event::DECISION_TYPES[..]).next_back();
    if let Some(decision) = last {
        out.push_str(&format!(
            "- Outcome: **{}** (seq {}, {})\n",
            decision.event_type, decision.seq, decision.recorded_at
        ));
    }
    out.push_str(&format!(
        "- Verified: {} entries, each re-hashed, its signature checked and its inclusion proven in the checkpoint of \
         size {} signed by the ledger key `{}`\n",
        verified.entries.len(),
        verified.checkpoint.checkpoint.size,
        ledger_key_id
    ));
    if !verified.redacted.is_empty() {
        out.push_str(&format!("- Redacted entries (not shown): {:?}\n", verified.redacted));
    }
    out.push_str("\n## What ships\n\n| module | version |\n|---|---|\n");
    for module in intent.and_then(|i| i.data["modules"].as_array()).into_iter().flatten() {
        out.push_str(&format!("| {} | {} |\n", cell(&s(&module["name"])), cell(&s(&module["version"]))));
    }
    out.push_str("\n## Decisions\n\n| seq | decision | evaluated at | reasons |\n|---|---|---|---|\n");
    for d in of(&ledger::event::DECISION_TYPES[..]) {
        let reasons: Vec<String> = d.data["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| match r["module"].as_str() {
                Some(module) => format!("{} ({module})", s(&r["code"])),
                None => s(&r["code"]),
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            d.seq,
            d.event_type,
            cell(&s(&d.data["evaluatedAt"])),
            cell(&reasons.join(", "))
        ));
    }
    out.push_str("\n## Approvals\n\n| seq | verdict | role | by | when | comment |\n|---|---|---|---|---|---|\n");
    for a in of(&["ApprovalGranted", "ApprovalRejected"]) {
        let (verdict, comment) = if a.event_type == "ApprovalGranted" {
            ("granted", s(&a.data["comment"]))
        } else {
            ("rejected", s(&a.data["reason"]))
        };
        out.push_str(&format!(
            "| {} | {verdict} | {} | {} ({}) | {} | {} |\n",
            a.seq,
            cell(&s(&a.data["role"])),
            cell(&a.agent_id),
            cell(&a.signed_by),
            a.recorded_at,
            cell(&comment)
        ));
    }
    out.push_str("\n## Deployments\n\n| seq | event | environment | by | when | reason |\n|---|---|---|---|---|---|\n");
    for d in of(&["DeploymentStarted", "DeploymentCompleted", "DeploymentFailed", "RollbackTriggered"]) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            d.seq,
            d.event_type,
            cell(&s(&d.data["environment"])),
            cell(&d.agent_id),
            d.recorded_at,
            cell(&s(&d.data["reason"]))
        ));
    }
    out
}
