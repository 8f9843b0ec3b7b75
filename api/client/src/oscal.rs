//! A tenant's release decisions over a period as an OSCAL assessment-results document
//! (docs/oscal.md), built from verified entries only. Nothing the server says is taken on
//! trust: the tenant's checkpoint is verified with the ledger key; its entries are read with
//! `Read` up to that checkpoint's size, each re-hashed and linked to the one before it; every
//! decision of the period is checked to be signed by the ledger key and proven included in
//! that checkpoint. The evidence entries a decision names come before it in the same chain, so
//! the decision's proven entry hash commits to them through the links checked here.

use ed25519_dalek::VerifyingKey;
use ledger::{Entry, SignedCheckpoint};
use projections::attestation::AttestedEntry;
use projections::oscal::{self, Period};

use crate::connect::Client;
use crate::gate::signed_by;
use crate::verify::{current_checkpoint, prove_inclusion, read_chained, VerifyError};

/// An assessment-results document built from verified entries.
#[derive(Debug, Clone)]
pub struct VerifiedResults {
    /// The document's bytes (JSON).
    pub document: Vec<u8>,
    /// The seqs of the decisions it observes, ascending.
    pub decisions: Vec<u64>,
    /// The checkpoint every decision was proven in; the entries read are those it covers.
    pub checkpoint: SignedCheckpoint,
}

/// Reads `tenant`'s log up to its current checkpoint, verifies it (see the module doc) and
/// builds the assessment results of the decisions evaluated in `period`. A period with no
/// decision gives a document with an empty result.
pub async fn verified_assessment_results(
    client: &mut Client,
    tenant: &str,
    period: &Period,
    key: &VerifyingKey,
) -> anyhow::Result<VerifiedResults> {
    let checkpoint = current_checkpoint(client, tenant, key).await?;
    let size = checkpoint.checkpoint.size;
    let entries = read_chain(client, tenant, size).await?;

    let attested: Vec<AttestedEntry<'_>> = entries.iter().map(AttestedEntry::from).collect();
    let mut decisions = Vec::new();
    for (entry, read) in entries.iter().zip(&attested) {
        let seq = entry.seq;
        let bad = |reason: String| VerifyError::Decision { seq, reason };
        let Some(decided) = oscal::decision(tenant, read).map_err(|e| bad(e.to_string()))? else { continue };
        if !period.contains(decided.evaluated_at_ns) {
            continue;
        }
        // `decision` read the payload: the entry is not redacted.
        if !entry.envelope().is_some_and(|envelope| signed_by(envelope, key)) {
            return Err(bad("it is not signed by the ledger key".into()).into());
        }
        let proof = prove_inclusion(client, tenant, seq, &checkpoint).await?;
        if proof.entry_hash.as_slice() != entry.entry_hash.as_slice() {
            return Err(VerifyError::EntryMismatch { seq }.into());
        }
        decisions.push(*read);
    }
    let log_span = match (entries.first(), entries.last()) {
        (Some(first), Some(last)) => (first.recorded_at, last.recorded_at),
        _ => (0, 0),
    };
    let scope = oscal::Scope { origin: &checkpoint.checkpoint.origin, tenant, period, log_span };
    let document =
        oscal::assessment_results(&scope, &decisions, &attested).map_err(|e| VerifyError::Oscal(e.to_string()))?;
    let decisions = decisions.iter().map(|d| d.seq).collect();
    Ok(VerifiedResults { document, decisions, checkpoint })
}

/// Entries `0..size` of `tenant`, each re-hashed and linked to the one before it.
async fn read_chain(client: &mut Client, tenant: &str, size: u64) -> anyhow::Result<Vec<Entry>> {
    // The size is the checkpoint's (verified), but memory is reserved as entries arrive.
    let mut entries: Vec<Entry> = Vec::with_capacity(usize::try_from(size.min(1 << 16)).unwrap_or_default());
    read_chained(client, tenant, size, |entry| entries.push(entry)).await?;
    Ok(entries)
}
