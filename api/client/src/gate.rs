//! The pipeline gate's checks: a release decision is trusted only once its entry is the
//! ledger key's signature over a decision about that release, included in a checkpoint the
//! ledger key signed.

use ed25519_dalek::VerifyingKey;
use ledger::{EntryBody, SignedCheckpoint};
use proto::v1 as pb;

use crate::connect::{refused, Client};
use crate::verify::{checked_entry, current_checkpoint, prove_inclusion, VerifyError};

/// A decision that verified.
#[derive(Debug, Clone)]
pub struct VerifiedDecision {
    /// Its seq in the tenant's log.
    pub seq: u64,
    /// `ReleaseApproved`, `ReleaseRejected`, ...
    pub decision_type: String,
    /// The `data` of the decision (reasons, gates, retryAfter, ...), as signed.
    pub data: serde_json::Value,
    /// The checkpoint its inclusion was proven against.
    pub checkpoint: SignedCheckpoint,
    /// The entry, re-hashed and proven.
    pub entry: ledger::Entry,
}

/// Reads entry `seq` of `tenant` and checks that it is a decision about `release` signed by
/// `key` (the DSSE signature over the payload, verified here), then proves its inclusion in the
/// tenant's current checkpoint, verified with `key`. Any failure is a [`VerifyError`].
pub async fn verify_decision(
    client: &mut Client,
    tenant: &str,
    release: &str,
    seq: u64,
    key: &VerifyingKey,
) -> anyhow::Result<VerifiedDecision> {
    let decision = |reason: String| VerifyError::Decision { seq, reason };
    let wire = client
        .get_entry(pb::GetEntryRequest { tenant: tenant.to_owned(), key: Some(pb::get_entry_request::Key::Seq(seq)) })
        .await
        .map_err(refused)?
        .into_inner();
    let entry = checked_entry(None, wire)?;
    if entry.seq != seq {
        return Err(decision(format!("the server sent seq {} for seq {seq}", entry.seq)).into());
    }
    let EntryBody::Present(envelope) = &entry.body else {
        return Err(decision("the entry is redacted".into()).into());
    };
    if !signed_by(envelope, key) {
        return Err(decision("it is not signed by the ledger key".into()).into());
    }
    let body: serde_json::Value =
        serde_json::from_slice(&envelope.payload).map_err(|e| decision(format!("its payload is not JSON: {e}")))?;
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let decision_type = field("type");
    if !ledger::event::DECISION_TYPES.contains(&decision_type.as_str()) {
        return Err(decision(format!("it is a {decision_type:?}, not a decision")).into());
    }
    if field("tenant") != tenant || field("releaseId") != release {
        return Err(decision(format!(
            "it is about release {:?} of tenant {:?}, not {release:?} of {tenant:?}",
            field("releaseId"),
            field("tenant")
        ))
        .into());
    }
    let checkpoint = current_checkpoint(client, tenant, key).await?;
    let proof = prove_inclusion(client, tenant, seq, &checkpoint).await?;
    if proof.entry_hash.as_slice() != entry.entry_hash.as_slice() {
        return Err(VerifyError::EntryMismatch { seq }.into());
    }
    let data = body.get("data").cloned().unwrap_or(serde_json::Value::Null);
    Ok(VerifiedDecision { seq, decision_type, data, checkpoint, entry })
}

/// Whether one of `envelope`'s signatures is `key`'s over its DSSE pre-authentication encoding
/// (strict Ed25519 verification).
pub fn signed_by(envelope: &ledger::Envelope, key: &VerifyingKey) -> bool {
    envelope.is_signed_by(key)
}
