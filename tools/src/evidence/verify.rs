//! `ledger-audit verify-evidence`: a pack checked from its files alone (see the parent module).

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::VerifyingKey;
use ledger::tlog_proof::TlogProof;
use ledger::{Entry, EntryBody, Envelope, SignedCheckpoint};
use projections::attestation::{self, AttestedEntry, Subject};
use projections::evidence::Role;
use serde::Serialize;

use super::{
    attestation_file, entry_file, event_type_of, is_decision, proof_file, Files, Manifest, Pack, PackEntry, CHECKPOINT,
    FORMAT, LEDGER_KEY, MANIFEST,
};

/// The first problem found in a pack: the file it is in (when one) and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PackFailure {
    /// The pack file concerned, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for PackFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

fn fail(file: &str, reason: impl Into<String>) -> PackFailure {
    PackFailure { file: Some(file.to_owned()), reason: reason.into() }
}

/// What a verified pack holds.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// The tenant.
    pub tenant: String,
    /// The release.
    pub release_id: String,
    /// The checkpoint's origin.
    pub origin: String,
    /// The checkpoint's size.
    pub checkpoint_size: u64,
    /// The ledger key's id (hex).
    pub ledger_key_id: String,
    /// `pinned` (the caller's key) or `pack` (the pack's own: proves integrity, not origin).
    pub ledger_key_source: String,
    /// Entries per role.
    pub entries: BTreeMap<String, u64>,
    /// The decisions re-derived, in seq order: (seq, type).
    pub decisions: Vec<(u64, String)>,
    /// The release's status after its last entry.
    pub status: String,
    /// Files checked.
    pub files: usize,
}

/// Verifies a pack's files: the manifest; the ledger key (against `pinned`, when given); the
/// checkpoint's signature; every entry's inclusion proof in that checkpoint, its envelope
/// hashing to the proven payload hash; every decision signed by the ledger key; every
/// attestation's signature and statement, rebuilt from the decision and evidence entries; that
/// the entries are exactly those the release's decisions depend on, and that every decision
/// follows from them; and finally that every file is byte for byte the one rebuilt from all
/// that (reports included). The first problem found is the error.
pub fn verify(files: &Files, pinned: Option<&VerifyingKey>) -> Result<Verified, PackFailure> {
    let text = |name: &str| -> Result<&str, PackFailure> {
        let bytes = files.get(name).ok_or_else(|| fail(name, "missing"))?;
        std::str::from_utf8(bytes).map_err(|_| fail(name, "not UTF-8"))
    };

    let manifest: Manifest =
        serde_json::from_str(text(MANIFEST)?).map_err(|e| fail(MANIFEST, format!("not a pack manifest: {e}")))?;
    if manifest.format != FORMAT {
        return Err(fail(MANIFEST, format!("format {:?}, this auditor reads {FORMAT:?}", manifest.format)));
    }

    // The file set the manifest implies, before anything is parsed.
    let mut expected: BTreeSet<String> = [MANIFEST, LEDGER_KEY, CHECKPOINT, super::REPORT_MD, super::REPORT_HTML]
        .into_iter()
        .map(str::to_owned)
        .collect();
    for item in &manifest.entries {
        if item.redacted_by.is_none() {
            expected.insert(entry_file(item.seq));
        }
        expected.insert(proof_file(item.seq));
    }
    for decision in &manifest.decisions {
        expected.insert(attestation_file(decision.seq));
    }
    if let Some(missing) = expected.iter().find(|name| !files.contains_key(*name)) {
        return Err(fail(missing, "missing (the manifest lists it)"));
    }
    if let Some(extra) = files.keys().find(|name| !expected.contains(*name)) {
        return Err(fail(extra, "not part of the pack (the manifest does not list it)"));
    }

    // The key, pinned or the pack's own.
    let key = ledger::keys::public_key_from_text(text(LEDGER_KEY)?)
        .map_err(|e| fail(LEDGER_KEY, format!("not a public key: {e}")))?;
    let key_id = ledger::KeyId::of(&key).to_hex();
    let source = match pinned {
        Some(pinned) if pinned != &key => {
            return Err(fail(
                LEDGER_KEY,
                format!("the pack's ledger key {key_id} is not the pinned key {}", ledger::KeyId::of(pinned).to_hex()),
            ))
        }
        Some(_) => "pinned",
        None => "pack",
    };
    if manifest.ledger_key_id != key_id {
        return Err(fail(
            MANIFEST,
            format!("ledgerKeyId {}, the key in {LEDGER_KEY} is {key_id}", manifest.ledger_key_id),
        ));
    }

    let note = text(CHECKPOINT)?;
    let checkpoint = SignedCheckpoint::parse_and_verify(note, &key).map_err(|e| fail(CHECKPOINT, e.to_string()))?;
    if checkpoint.checkpoint.origin != manifest.origin || checkpoint.checkpoint.size != manifest.checkpoint_size {
        return Err(fail(
            MANIFEST,
            format!(
                "origin {:?} and size {}, the checkpoint's are {:?} and {}",
                manifest.origin, manifest.checkpoint_size, checkpoint.checkpoint.origin, checkpoint.checkpoint.size
            ),
        ));
    }

    // Every entry: proven in the checkpoint, its envelope the proven payload.
    let mut entries = Vec::with_capacity(manifest.entries.len());
    for item in &manifest.entries {
        let name = proof_file(item.seq);
        let role = Role::parse(&item.role)
            .ok_or_else(|| fail(MANIFEST, format!("seq {}: role {:?} is not a pack role", item.seq, item.role)))?;
        let proof = TlogProof::parse(text(&name)?).map_err(|e| fail(&name, e.to_string()))?;
        if proof.index != item.seq {
            return Err(fail(&name, format!("proves index {}, not seq {}", proof.index, item.seq)));
        }
        if proof.note != note {
            return Err(fail(&name, format!("its checkpoint is not the pack's {CHECKPOINT}")));
        }
        let proven = proof.verify(&key).map_err(|e| fail(&name, e.to_string()))?;
        let body = match item.redacted_by {
            Some(by_seq) => EntryBody::Redacted { by_seq },
            None => {
                let name = entry_file(item.seq);
                let envelope = Envelope::from_json(text(&name)?.trim_end_matches('\n'))
                    .map_err(|e| fail(&name, format!("not a DSSE envelope: {e}")))?;
                if !proven.is_payload(&envelope.to_bytes()) {
                    return Err(fail(
                        &name,
                        "not the payload the log holds at this seq (its hash is not the proven one)",
                    ));
                }
                EntryBody::Present(envelope)
            }
        };
        let entry = Entry {
            seq: proven.seq,
            recorded_at: proven.recorded_at,
            prev_hash: proven.prev_hash,
            payload_hash: proven.payload_hash,
            entry_hash: proven.entry_hash,
            body,
        };
        let event_type = event_type_of(&entry);
        if event_type != item.event_type {
            return Err(fail(
                MANIFEST,
                format!("seq {} has type {:?}, the entry is {event_type}", item.seq, item.event_type),
            ));
        }
        entries.push(PackEntry { role, entry, path: proof.path });
    }
    for pair in entries.windows(2) {
        if pair[1].entry.seq <= pair[0].entry.seq {
            return Err(fail(MANIFEST, format!("the entries are not in seq order at seq {}", pair[1].entry.seq)));
        }
        // Adjacent seqs are linked: the later one names the earlier one's hash.
        if pair[1].entry.seq == pair[0].entry.seq + 1 && pair[1].entry.prev_hash != pair[0].entry.entry_hash {
            return Err(fail(&proof_file(pair[1].entry.seq), "its prevHash is not the entry hash of the seq before"));
        }
    }
    let by_seq: BTreeMap<u64, &Entry> = entries.iter().map(|e| (e.entry.seq, &e.entry)).collect();
    check_redactions(&entries, &by_seq)?;

    // The decisions: the ledger's, each with its attestation.
    let decision_seqs: Vec<u64> =
        entries.iter().filter(|e| e.role == Role::Release && is_decision(&e.entry)).map(|e| e.entry.seq).collect();
    let listed: Vec<u64> = manifest.decisions.iter().map(|d| d.seq).collect();
    if listed != decision_seqs {
        return Err(fail(
            MANIFEST,
            format!("lists decisions {listed:?}, the release's decision entries are {decision_seqs:?}"),
        ));
    }
    let who = Subject {
        origin: &checkpoint.checkpoint.origin,
        ledger_key_id: &key_id,
        tenant: &manifest.tenant,
        release: &manifest.release_id,
    };
    let mut attestations = BTreeMap::new();
    for &seq in &decision_seqs {
        let entry = by_seq[&seq];
        if !entry.envelope().is_some_and(|e| e.is_signed_by(&key)) {
            return Err(fail(&entry_file(seq), "a decision not signed by the ledger key"));
        }
        let name = attestation_file(seq);
        let data = attestation::decision_of(&manifest.tenant, &manifest.release_id, &AttestedEntry::from(entry))
            .map_err(|e| fail(&entry_file(seq), e.to_string()))?;
        let mut evidence = Vec::with_capacity(data.evidence.len());
        for evidence_seq in &data.evidence {
            let entry = by_seq.get(evidence_seq).ok_or_else(|| {
                fail(&entry_file(seq), format!("the decision's evidence seq {evidence_seq} is not in the pack"))
            })?;
            evidence.push(AttestedEntry::from(*entry));
        }
        let json = text(&name)?;
        attestation::check_envelope(json.trim_end_matches('\n'), &key, &who, &AttestedEntry::from(entry), &evidence)
            .map_err(|reason| fail(&name, reason))?;
        let envelope = Envelope::from_json(json.trim_end_matches('\n')).map_err(|e| fail(&name, e.to_string()))?;
        attestations.insert(seq, envelope);
    }

    let pack = Pack {
        tenant: manifest.tenant.clone(),
        release: manifest.release_id.clone(),
        ledger_key: key,
        checkpoint,
        entries,
        attestations,
    };
    let rederived = pack.rederive().map_err(|e| fail(MANIFEST, e.to_string()))?;
    let rebuilt = pack.files().map_err(|e| fail(MANIFEST, e.to_string()))?;
    for (name, bytes) in files {
        if rebuilt.get(name) != Some(bytes) {
            return Err(fail(name, "differs from the file rebuilt from the verified pack (every file has one form)"));
        }
    }

    let mut counts = BTreeMap::new();
    for entry in &pack.entries {
        *counts.entry(entry.role.as_str().to_owned()).or_insert(0u64) += 1;
    }
    Ok(Verified {
        tenant: pack.tenant.clone(),
        release_id: pack.release.clone(),
        origin: pack.checkpoint.checkpoint.origin.clone(),
        checkpoint_size: pack.checkpoint.checkpoint.size,
        ledger_key_id: key_id,
        ledger_key_source: source.to_owned(),
        entries: counts,
        decisions: manifest.decisions.iter().map(|d| (d.seq, d.event_type.clone())).collect(),
        status: rederived.release.status.as_str().to_owned(),
        files: files.len(),
    })
}

/// A redacted entry's `redactedBy` must, when in the pack's span, be an `EntryRedacted` of
/// the pack naming it (a redaction is tenant-wide: the pack holds every one up to its last
/// entry).
fn check_redactions(entries: &[PackEntry], by_seq: &BTreeMap<u64, &Entry>) -> Result<(), PackFailure> {
    let last = entries.last().map_or(0, |e| e.entry.seq);
    for PackEntry { entry, .. } in entries {
        let EntryBody::Redacted { by_seq: by } = entry.body else { continue };
        if by <= entry.seq {
            return Err(fail(MANIFEST, format!("seq {} is redacted by seq {by}, which is not after it", entry.seq)));
        }
        if by > last {
            continue;
        }
        let names_it = by_seq
            .get(&by)
            .and_then(|r| r.envelope())
            .is_some_and(|envelope| ParsedRedaction::of(&envelope.payload).is_some_and(|target| target == entry.seq));
        if !names_it {
            return Err(fail(
                MANIFEST,
                format!("seq {} is redacted by seq {by}, which is not an EntryRedacted of it in the pack", entry.seq),
            ));
        }
    }
    Ok(())
}

/// The seq an `EntryRedacted` payload names.
struct ParsedRedaction;

impl ParsedRedaction {
    fn of(payload: &[u8]) -> Option<u64> {
        let parsed = ledger::ParsedEvent::parse(payload).ok()?;
        match projections::catalogue::GovEvent::parse(&parsed).ok()?.data {
            projections::catalogue::GovData::Redacted(d) => Some(d.seq),
            _ => None,
        }
    }
}
