//! A release's evidence pack (docs/evidence.md), built from verified entries only and checked
//! by the offline verifier before it is handed back.
//!
//! The tenant's checkpoint is verified with the ledger key (the newest checkpoint witnesses
//! cosigned, when the server has a witness policy and it covers the release's entries; else the
//! newest); the log is read with `Read` up to
//! its size, every entry re-hashed and linked to the one before it, and the Merkle root of
//! all their entry hashes recomputed and required equal to the checkpoint's; so every entry the
//! pack holds, and every entry it leaves out, is the log's. The entries the release's
//! decisions depend on are selected ([`projections::evidence::Selector`]) as they stream past;
//! each gets its inclusion proof (checked against the checkpoint), each decision its
//! attestation (checked against its entries). The pack's files are then built — which
//! re-derives every decision from the selected entries alone — and verified as
//! `ledger-audit verify-evidence` verifies them.

use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use ledger::merkle::{self, LogHasher, TreeHasher as _};
use ledger::Envelope;
use ledger_tools::evidence::{Files, Pack, PackEntry, Verified};
use projections::evidence::{EvidenceError, Role, Selector};
use proto::v1 as pb;

use crate::attestation::{verified_attestations, Which};
use crate::connect::{query_error, refused, Client, QueryClient};
use crate::verify::{checked_entry, prove_inclusion, read_chained, verify_checkpoint, VerifyError};

/// How long a pack is retried while the ledger has yet to append a decision the release's
/// entries call for (the projection worker appends it right after the entry that triggers
/// it; a pack made in between would lack it, and the build refuses such a pack).
const OWED_DECISION_WAIT: Duration = Duration::from_secs(10);

/// A pack, built and verified.
#[derive(Debug, Clone)]
pub struct BuiltPack {
    /// Its files.
    pub files: Files,
    /// What the verifier found.
    pub verified: Verified,
}

/// Builds `release`'s evidence pack from `tenant`'s log (see the module doc).
pub async fn evidence_pack(
    client: &mut Client,
    query: &mut QueryClient,
    tenant: &str,
    release: &str,
    key: &VerifyingKey,
) -> anyhow::Result<BuiltPack> {
    let deadline = Instant::now() + OWED_DECISION_WAIT;
    loop {
        match build_once(client, query, tenant, release, key).await {
            Err(Build::Owed(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(Build::Owed(trigger)) => {
                anyhow::bail!(
                    "the entries of release {release:?} call for a decision at trigger seq {trigger} that the ledger \
                     has not appended after {}s: is the projection worker stalled? (release-ledger health)",
                    OWED_DECISION_WAIT.as_secs()
                )
            }
            Err(Build::Failed(error)) => return Err(error),
            Ok(pack) => return Ok(pack),
        }
    }
}

enum Build {
    Owed(u64),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Build {
    fn from(error: E) -> Self {
        Self::Failed(error.into())
    }
}

async fn build_once(
    client: &mut Client,
    query: &mut QueryClient,
    tenant: &str,
    release: &str,
    key: &VerifyingKey,
) -> Result<BuiltPack, Build> {
    // The newest checkpoint, and the newest one witnesses cosigned (when the server has a
    // witness policy), both verified with the ledger key.
    let request = pb::GetCheckpointRequest { tenant: tenant.to_owned(), size: 0 };
    let served = client.get_checkpoint(request).await.map_err(refused)?.into_inner();
    let checkpoint = verify_checkpoint(&served.note, key)?;
    let cosigned = match served.cosigned_note.as_str() {
        "" => None,
        note => Some(verify_checkpoint(note, key)?),
    };
    let size = checkpoint.checkpoint.size;

    // The intent first: other releases' intents may come before it. The server names its seq;
    // the entry is checked below to be the release's first intent in the verified log.
    let request = pb::GetReleaseTimelineRequest { tenant: tenant.to_owned(), release_id: release.to_owned() };
    let timeline = query.get_release_timeline(request).await.map_err(query_error)?.into_inner();
    let intent_seq = timeline.items.iter().find(|i| i.r#type == "ReleaseIntentDeclared").map(|i| i.seq);
    let intent = match intent_seq {
        Some(seq) if seq < size => {
            let wire = client
                .get_entry(pb::GetEntryRequest {
                    tenant: tenant.to_owned(),
                    key: Some(pb::get_entry_request::Key::Seq(seq)),
                })
                .await
                .map_err(refused)?
                .into_inner();
            Some(checked_entry(None, wire)?)
        }
        _ => None,
    };
    let mut selector = Selector::new(release, intent.as_ref())?;

    // The whole log up to the checkpoint: chained, and hashing to its root.
    let mut leaves = Vec::with_capacity(usize::try_from(size.min(1 << 20)).unwrap_or_default());
    let mut first_intent = None;
    read_chained(client, tenant, size, |entry| {
        leaves.push(LogHasher::hash_leaf(&entry.entry_hash));
        // (Parsed twice until the intent is found: once here, once by the selector.)
        let is_intent = |e: &ledger::Entry| ledger_tools::evidence::event_type_of(e) == "ReleaseIntentDeclared";
        let copy = (first_intent.is_none() && is_intent(&entry)).then(|| entry.clone());
        if selector.offer(entry) == Some(Role::Release) && copy.is_some() {
            first_intent = copy;
        }
    })
    .await?;
    if merkle::root_of_leaves::<LogHasher>(&leaves) != checkpoint.checkpoint.root {
        return Err(VerifyError::Checkpoint(format!(
            "the entries read do not hash to the root of the checkpoint of size {size}"
        ))
        .into());
    }
    if first_intent != intent {
        return Err(Build::Failed(anyhow::anyhow!(
            "the server named seq {intent_seq:?} as the intent of release {release:?}, the log's first intent of it \
             is at seq {:?}",
            first_intent.map(|e| e.seq)
        )));
    }

    let selected = selector.finish();
    let Some(last) = selected.last().map(|(_, e)| e.seq) else {
        return Err(Build::Failed(anyhow::anyhow!(
            "no entry of tenant {tenant:?} up to seq {size} names release {release:?}"
        )));
    };
    // Proven against the cosigned checkpoint when it covers the pack's entries (its root
    // checked against the same entries), so that the pack carries the witnesses' word too.
    let checkpoint = match cosigned {
        Some(c) if c.checkpoint.size > last && c.checkpoint.size <= size => {
            let prefix = &leaves[..usize::try_from(c.checkpoint.size).unwrap_or(leaves.len())];
            if merkle::root_of_leaves::<LogHasher>(prefix) != c.checkpoint.root {
                return Err(VerifyError::Checkpoint(format!(
                    "the entries read do not hash to the root of the cosigned checkpoint of size {}",
                    c.checkpoint.size
                ))
                .into());
            }
            c
        }
        _ => checkpoint,
    };
    drop(leaves);
    let mut entries = Vec::with_capacity(selected.len());
    for (role, entry) in selected {
        let proof = prove_inclusion(client, tenant, entry.seq, &checkpoint).await?;
        if proof.seq != entry.seq || proof.entry_hash.as_slice() != entry.entry_hash.as_slice() {
            return Err(VerifyError::EntryMismatch { seq: entry.seq }.into());
        }
        let path = proof
            .path
            .iter()
            .map(|node| node.as_slice().try_into().map_err(|_| VerifyError::NodeLength))
            .collect::<Result<Vec<ledger::Hash32>, _>>()?;
        entries.push(PackEntry { role, entry, path });
    }

    let mut attestations = std::collections::BTreeMap::new();
    let decisions: Vec<u64> = entries
        .iter()
        .filter(|e| e.role == Role::Release && ledger_tools::evidence::is_decision(&e.entry))
        .map(|e| e.entry.seq)
        .collect();
    for seq in decisions {
        let verified = verified_attestations(client, query, tenant, release, Which::Seq(seq), key).await?;
        for attestation in verified {
            let envelope = Envelope::from_json(&attestation.envelope)
                .map_err(|e| VerifyError::Attestation { seq, reason: e.to_string() })?;
            attestations.insert(attestation.seq, envelope);
        }
    }

    let pack = Pack {
        tenant: tenant.to_owned(),
        release: release.to_owned(),
        ledger_key: *key,
        checkpoint,
        entries,
        attestations,
    };
    let files = match pack.files() {
        Ok(files) => files,
        Err(EvidenceError::Owed { trigger }) => return Err(Build::Owed(trigger)),
        Err(e) => return Err(Build::Failed(anyhow::anyhow!("release {release:?}: {e}"))),
    };
    let verified = ledger_tools::evidence::verify(&files, Some(key))
        .map_err(|e| anyhow::anyhow!("the pack built does not verify: {e}"))?;
    Ok(BuiltPack { files, verified })
}
