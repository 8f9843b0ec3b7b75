//! A release's decisions as in-toto attestations (docs/attestation.md), trusted only once they
//! check out against the log: the DSSE signature verifies with the ledger key, the decision
//! entry is the ledger key's decision about the release and included in a checkpoint the
//! ledger key signed, every evidence entry it names is re-hashed and included in that same
//! checkpoint, and the statement rebuilt here from those entries is byte for byte the one the
//! server signed.

use ed25519_dalek::VerifyingKey;
use ledger::{Entry, SignedCheckpoint};
use projections::attestation::{self, AttestedEntry};
use proto::v1 as pb;

use crate::connect::{query_error, refused, Client, QueryClient};
use crate::gate::verify_decision;
use crate::verify::{checked_entry, prove_inclusion, VerifyError};

pub use projections::attestation::check_envelope;

/// Which decisions of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The latest.
    Latest,
    /// The decision entry at this seq.
    Seq(u64),
    /// Every one, oldest first.
    All,
}

/// An attestation that verified.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// The decision entry's seq.
    pub seq: u64,
    /// `ReleaseApproved`, `ReleaseRejected`, ...
    pub decision_type: String,
    /// The DSSE envelope, standard JSON form, as the server sent it.
    pub envelope: String,
    /// The statement (the envelope's payload), parsed.
    pub statement: serde_json::Value,
    /// The checkpoint the decision and its evidence are proven in.
    pub checkpoint: SignedCheckpoint,
}

/// Fetches the attestations of `release` and verifies each (see the module doc).
pub async fn verified_attestations(
    client: &mut Client,
    query: &mut QueryClient,
    tenant: &str,
    release: &str,
    which: Which,
    key: &VerifyingKey,
) -> anyhow::Result<Vec<VerifiedAttestation>> {
    let get = |seq: Option<u64>, all: bool| pb::GetAttestationsRequest {
        tenant: tenant.to_owned(),
        release_id: release.to_owned(),
        seq,
        all,
    };
    let served = match which {
        Which::Latest => query.get_attestations(get(None, false)).await.map_err(query_error)?.into_inner().attestations,
        Which::Seq(seq) => {
            let served = query.get_attestations(get(Some(seq), false)).await.map_err(query_error)?.into_inner();
            if served.attestations.len() != 1 || served.attestations[0].seq != seq {
                return Err(VerifyError::Attestation { seq, reason: "the server sent another decision".into() }.into());
            }
            served.attestations
        }
        // One decision per call: every decision of a release at once may not fit in a message.
        Which::All => {
            let request = pb::GetReleaseTimelineRequest { tenant: tenant.to_owned(), release_id: release.to_owned() };
            let timeline = query.get_release_timeline(request).await.map_err(query_error)?.into_inner();
            let decisions = timeline
                .items
                .iter()
                .filter(|item| ledger::event::DECISION_TYPES.contains(&item.r#type.as_str()))
                .map(|item| item.seq);
            let mut served = Vec::new();
            for seq in decisions {
                let mut one = query.get_attestations(get(Some(seq), false)).await.map_err(query_error)?.into_inner();
                match one.attestations.pop() {
                    Some(attestation) if attestation.seq == seq && one.attestations.is_empty() => {
                        served.push(attestation)
                    }
                    _ => {
                        return Err(
                            VerifyError::Attestation { seq, reason: "the server sent another decision".into() }.into()
                        )
                    }
                }
            }
            if served.is_empty() {
                return Err(anyhow::anyhow!("release {release:?} has no decision yet"));
            }
            served
        }
    };
    let mut verified = Vec::with_capacity(served.len());
    for attestation in served {
        verified.push(verify_one(client, tenant, release, attestation, key).await?);
    }
    Ok(verified)
}

async fn verify_one(
    client: &mut Client,
    tenant: &str,
    release: &str,
    served: pb::Attestation,
    key: &VerifyingKey,
) -> anyhow::Result<VerifiedAttestation> {
    let seq = served.seq;
    let bad = |reason: String| VerifyError::Attestation { seq, reason };
    // The decision: the ledger key's, about this release, included in the current checkpoint.
    let decision = verify_decision(client, tenant, release, seq, key).await?;
    let (checkpoint, decision_entry) = (decision.checkpoint, decision.entry);
    let data = attestation::decision_of(tenant, release, &AttestedEntry::from(&decision_entry))
        .map_err(|e| bad(e.to_string()))?;
    let mut evidence = Vec::with_capacity(data.evidence.len());
    for &seq in &data.evidence {
        evidence.push(proven_entry(client, tenant, seq, &checkpoint).await?);
    }
    let evidence: Vec<AttestedEntry<'_>> = evidence.iter().map(AttestedEntry::from).collect();
    let key_id = ledger::KeyId::of(key).to_hex();
    let who = attestation::Subject { origin: &checkpoint.checkpoint.origin, ledger_key_id: &key_id, tenant, release };
    let statement =
        check_envelope(&served.envelope, key, &who, &AttestedEntry::from(&decision_entry), &evidence).map_err(bad)?;
    Ok(VerifiedAttestation {
        seq,
        decision_type: served.decision_type,
        envelope: served.envelope,
        statement,
        checkpoint,
    })
}

/// Entry `seq`, re-hashed, with its inclusion in `checkpoint` proven.
async fn proven_entry(
    client: &mut Client,
    tenant: &str,
    seq: u64,
    checkpoint: &SignedCheckpoint,
) -> anyhow::Result<Entry> {
    let request = pb::GetEntryRequest { tenant: tenant.to_owned(), key: Some(pb::get_entry_request::Key::Seq(seq)) };
    let entry = checked_entry(None, client.get_entry(request).await.map_err(refused)?.into_inner())?;
    if entry.seq != seq {
        return Err(VerifyError::Entry { seq, reason: format!("the server sent seq {}", entry.seq) }.into());
    }
    let proof = prove_inclusion(client, tenant, seq, checkpoint).await?;
    if proof.entry_hash.as_slice() != entry.entry_hash.as_slice() {
        return Err(VerifyError::EntryMismatch { seq }.into());
    }
    Ok(entry)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ledger::{Envelope, KeyPair};
    use projections::{DecisionData, DecisionStatus};

    const TENANT: &str = "acme";
    const RELEASE: &str = "r1";

    fn body(event_type: &str, data: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "tenant": TENANT, "stream": "s", "type": event_type, "eventId": "e", "releaseId": RELEASE,
            "occurredAt": "2026-05-23T09:32:00Z", "actor": {"agentId": "ci"}, "data": data,
        }))
        .unwrap()
    }

    fn entries() -> (Vec<Vec<u8>>, Vec<[u8; 32]>) {
        let decision = DecisionData {
            status: DecisionStatus::Approved,
            policy_version: None,
            evaluated_at: "2026-05-23T09:33:00Z".into(),
            trigger: 0,
            evidence: vec![0],
            gates: vec![],
            reasons: vec![],
            retry_after: None,
            retryable: true,
            suggested_fix: None,
            risk_score: 0,
            risk_factors: vec![],
        };
        let payloads = vec![
            body(
                "ReleaseIntentDeclared",
                serde_json::json!({"environment": "prod", "modules": [{"name": "a", "version": "1"}]}),
            ),
            projections::decision::decision_body(TENANT, RELEASE, None, 0, &decision),
        ];
        let hashes = payloads.iter().map(|p| *blake3::hash(p).as_bytes()).collect();
        (payloads, hashes)
    }

    fn signed(key: &KeyPair, payload: Vec<u8>) -> String {
        let sig = key.sign(&ledger::pae(attestation::PAYLOAD_TYPE, &payload)).to_vec();
        let signatures = vec![ledger::Signature { keyid: key.key_id().to_hex(), sig }];
        Envelope { payload_type: attestation::PAYLOAD_TYPE.into(), payload, signatures }.to_json()
    }

    /// The checks the CLI runs on what the server sent, each broken once: a payload byte, the
    /// signing key, the entries (a validly signed statement of other entries), the payload type.
    #[test]
    fn only_an_envelope_the_ledger_signed_over_the_statement_of_the_verified_entries_passes() {
        let key = KeyPair::generate();
        let (payloads, hashes) = entries();
        let entry = |i: usize| AttestedEntry { seq: i as u64, entry_hash: &hashes[i], payload: Some(&payloads[i]) };
        let key_id = key.key_id().to_hex();
        let who =
            attestation::Subject { origin: "o.example/acme", ledger_key_id: &key_id, tenant: TENANT, release: RELEASE };
        let statement = attestation::statement(&who, &entry(1), &[entry(0)]).unwrap();
        let public = key.verifying_key();

        let good = signed(&key, statement.clone());
        let checked = check_envelope(&good, &public, &who, &entry(1), &[entry(0)]).unwrap();
        assert_eq!(checked["predicate"]["verificationResult"], "PASSED");

        let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
        let mut payload = ledger::b64::decode(json["payload"].as_str().unwrap()).unwrap();
        let at = payload.len() / 2;
        payload[at] ^= 1;
        json["payload"] = ledger::b64::encode(&payload).into();
        let err = check_envelope(&json.to_string(), &public, &who, &entry(1), &[entry(0)]).unwrap_err();
        assert!(err.contains("no signature verifies"), "{err}");

        let other = KeyPair::generate();
        let err =
            check_envelope(&signed(&other, statement.clone()), &public, &who, &entry(1), &[entry(0)]).unwrap_err();
        assert!(err.contains("no signature verifies"), "{err}");

        let mut forged_hash = hashes[0];
        forged_hash[0] ^= 1;
        let forged_entry = AttestedEntry { entry_hash: &forged_hash, ..entry(0) };
        let forged = attestation::statement(&who, &entry(1), &[forged_entry]).unwrap();
        let err = check_envelope(&signed(&key, forged), &public, &who, &entry(1), &[entry(0)]).unwrap_err();
        assert!(err.contains("differs"), "{err}");

        let mut json: serde_json::Value = serde_json::from_str(&good).unwrap();
        json["payloadType"] = ledger::EVENT_PAYLOAD_TYPE.into();
        let err = check_envelope(&json.to_string(), &public, &who, &entry(1), &[entry(0)]).unwrap_err();
        assert!(err.contains("payloadType"), "{err}");
    }
}
