//! The entry page, `GET /t/{tenant}/entries/{seq}`, with its inclusion proof checked in the browser.

use axum::extract::{ConnectInfo, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::{base64_encode, blocking, internal, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

/// `GET /t/{tenant}/entries/{seq}`: the envelope, its signer, the chain link, and the
/// inclusion proof checked in the browser (verify.js) against the signed checkpoint, with the
/// ledger's key pinned in the page.
pub(in crate::console) async fn entry(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path((tenant, seq)): Path<(String, String)>,
) -> Response {
    let principal = match console.reader(&headers, &peer, &uri.to_string(), "console/entry", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return view::error_page(StatusCode::BAD_REQUEST, "Bad entry", &format!("{seq:?} is not a seq"));
    };
    let ledger = console.0.ledger.clone();
    let read_tenant = tenant.clone();
    let read = blocking(move || {
        let entry = ledger.entry(&read_tenant, seq).map_err(|e| match e {
            ledger::ReadError::OutOfRange(_) | ledger::ReadError::UnknownTenant(_) => {
                view::error_page(StatusCode::NOT_FOUND, "No such entry", &e.to_string())
            }
            e => internal("reading the entry", e),
        })?;
        let keys = ledger.key_records(&read_tenant).unwrap_or_default();
        let size = ledger.head(&read_tenant).map(|h| h.size).unwrap_or(0);
        Ok((entry, keys, size))
    })
    .await;
    let (entry, keys, size) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let roots = console.0.ledger.trust_roots();
    let ledger_id = roots.ledger_id().to_hex();
    let admin_id = roots.admin_id().to_hex();
    let pinned = serde_json::json!({
        "keyName": console.0.ledger.origin(&tenant),
        "publicKey": base64_encode(roots.ledger().as_bytes()),
        "keyId": ledger_id,
    });
    let signer = |keyid: &str| -> String {
        if keyid == ledger_id {
            return "the ledger key (its own decisions)".into();
        }
        if keyid == admin_id {
            return "the admin key".into();
        }
        match keys.iter().find(|k| k.key_id == keyid) {
            Some(k) => format!(
                "agent {} (roles {}; registered at seq {}{})",
                k.agent_id,
                if k.roles.is_empty() { "none".to_owned() } else { k.roles.join(", ") },
                k.registered_at,
                k.revoked_at.map(|s| format!(", revoked at seq {s}")).unwrap_or_default()
            ),
            None => "a key not in the tenant's registry".into(),
        }
    };
    let body = html! {
        (view::json_script("ledger-key", &pinned))
        section aria-labelledby="h-entry" {
            h2 #h-entry { "Entry" }
            dl.facts {
                dt { "Seq" } dd { (entry.seq) " of " (size) }
                dt { "Recorded at" } dd { (view::time(entry.recorded_at)) }
                dt { "Entry hash" } dd { code.hash { (hex::encode(entry.entry_hash)) } }
                dt { "Payload hash (BLAKE3 of the envelope)" } dd { code.hash { (hex::encode(entry.payload_hash)) } }
                dt { "Chain link (previous entry hash)" } dd {
                    code.hash { (hex::encode(entry.prev_hash)) }
                    @if seq > 0 { " — " a href=(format!("/t/{tenant}/entries/{}", seq - 1)) { "entry #" (seq - 1) } }
                }
                @if seq + 1 < size { dt { "Next" } dd { a href=(format!("/t/{tenant}/entries/{}", seq + 1)) { "entry #" (seq + 1) } } }
            }
        }
        section aria-labelledby="h-envelope" {
            h2 #h-envelope { "Envelope" }
            @match entry.envelope() {
                None => p #redacted { "Redacted: the payload was erased; only its hash remains, and the chain and the tree still hold it." },
                Some(envelope) => {
                    dl.facts {
                        dt { "Payload type" } dd { code { (envelope.payload_type) } }
                        @for s in &envelope.signatures {
                            dt { "Signed by" } dd { (signer(&s.keyid)) " " code title=(s.keyid) { (view::short(&s.keyid)) } }
                        }
                    }
                    pre #payload { (view::pretty_json(&envelope.payload)) }
                }
            }
        }
        section aria-labelledby="h-verify" {
            h2 #h-verify { "Verified in your browser" }
            p { "This page checks, with your browser's own cryptography, that the entry is in the tenant's log as the ledger signed it. "
                "The ledger key it trusts is pinned in this page: " code.hash { (hex::encode(roots.ledger().as_bytes())) }
                " — compare it with the one you hold (" code { "ledger.pub" } ")." }
            div #verify-result data-outcome="pending" role="status" aria-live="polite" { "Verifying…" }
            ol #verify-steps {}
            p { a href=(format!("/t/{tenant}/entries/{seq}/proof.json")) { "The proof data (JSON)" } }
        }
    };
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    view::respond(StatusCode::OK, view::page(&format!("Entry #{seq} of {tenant}"), &nav, &["verify.js"], body))
}
