//! Response verification: nothing the server says is taken on trust where it can be checked.
//! Entries are re-hashed and their chain links checked; checkpoints and inclusion proofs are
//! verified against the ledger public key (pinned from a file when one is at hand). A check
//! that fails is a [`VerifyError`].

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ledger::merkle::{self, LogHasher, TreeHasher};
use ledger::{Entry, SignedCheckpoint};
use ledger_wire::convert::entry_from_pb;
use proto::v1 as pb;

use crate::connect::{refused, status_line, Client};

/// Something the server sent does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The checkpoint's signature or text does not verify with the ledger key.
    #[error("checkpoint does not verify: {0}")]
    Checkpoint(String),
    /// A proof's entry hash is not 32 bytes.
    #[error("entry hash is not 32 bytes")]
    EntryHashLength,
    /// A proof node is not 32 bytes.
    #[error("proof node is not 32 bytes")]
    NodeLength,
    /// The proof is for another tree than the checkpoint's.
    #[error("proof is for tree size {proof}, checkpoint for {checkpoint}")]
    TreeSize {
        /// The proof's tree size.
        proof: u64,
        /// The checkpoint's tree size.
        checkpoint: u64,
    },
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error("inclusion proof of seq {seq} does not verify: {reason}")]
    Inclusion {
        /// The seq proven.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// An entry the server sent is malformed (read as the status it would be refused with).
    #[error("{0}")]
    MalformedEntry(String),
    /// An entry's hashes do not match its contents.
    #[error("seq {seq}: {reason}")]
    Hashes {
        /// The entry's seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// An entry does not link to the one before it.
    #[error("seq {seq}: does not link to seq {previous}")]
    Link {
        /// The entry's seq.
        seq: u64,
        /// The previous entry's seq.
        previous: u64,
    },
    /// The entry served is not the entry proven.
    #[error("seq {seq}: the entry served differs from the entry proven")]
    EntryMismatch {
        /// The seq.
        seq: u64,
    },
    /// An export stream is not the export asked for, or is incomplete or malformed.
    #[error("{0}")]
    Export(String),
    /// An entry about a release does not verify as one.
    #[error("seq {seq}: {reason}")]
    Entry {
        /// The seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// An attestation does not check out against the log (docs/attestation.md).
    #[error("the attestation of decision {seq} does not verify: {reason}")]
    Attestation {
        /// The decision's seq.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The verified entries do not make an OSCAL document (docs/oscal.md).
    #[error("the assessment results cannot be built from the verified entries: {0}")]
    Oscal(String),
    /// An entry given as a release decision is not one the ledger signed about that release.
    #[error("seq {seq} is not a decision the ledger signed: {reason}")]
    Decision {
        /// The seq.
        seq: u64,
        /// Why.
        reason: String,
    },
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
    let info = client.get_info(pb::GetInfoRequest {}).await.map_err(refused)?.into_inner();
    let key = ledger::keys::public_key_from_bytes(&info.ledger_public_key)?;
    Ok((key, "as reported by the server itself (not pinned: pass --ledger-key)".into()))
}

/// Verifies a checkpoint note with the ledger key.
pub fn verify_checkpoint(note: &str, key: &ed25519_dalek::VerifyingKey) -> Result<SignedCheckpoint, VerifyError> {
    SignedCheckpoint::parse_and_verify(note, key).map_err(|e| VerifyError::Checkpoint(e.to_string()))
}

/// The tenant's current checkpoint, verified with `key`.
pub async fn current_checkpoint(
    client: &mut Client,
    tenant: &str,
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<SignedCheckpoint> {
    let request = pb::GetCheckpointRequest { tenant: tenant.to_owned(), size: 0 };
    let note = client.get_checkpoint(request).await.map_err(refused)?.into_inner().note;
    Ok(verify_checkpoint(&note, key)?)
}

/// Asks for the inclusion proof of `seq` in the tree of a verified checkpoint and checks it.
pub async fn prove_inclusion(
    client: &mut Client,
    tenant: &str,
    seq: u64,
    checkpoint: &SignedCheckpoint,
) -> anyhow::Result<pb::InclusionProof> {
    let request =
        pb::GetInclusionProofRequest { tenant: tenant.to_owned(), seq, tree_size: checkpoint.checkpoint.size };
    let proof = client.get_inclusion_proof(request).await.map_err(refused)?.into_inner();
    verify_inclusion(&proof, checkpoint)?;
    Ok(proof)
}

/// Checks an inclusion proof against a verified checkpoint.
pub fn verify_inclusion(proof: &pb::InclusionProof, checkpoint: &SignedCheckpoint) -> Result<(), VerifyError> {
    let entry_hash: ledger::Hash32 = proof.entry_hash.clone().try_into().map_err(|_| VerifyError::EntryHashLength)?;
    let path = proof
        .path
        .iter()
        .map(|node| node.clone().try_into().map_err(|_| VerifyError::NodeLength))
        .collect::<Result<Vec<ledger::Hash32>, _>>()?;
    if proof.tree_size != checkpoint.checkpoint.size {
        return Err(VerifyError::TreeSize { proof: proof.tree_size, checkpoint: checkpoint.checkpoint.size });
    }
    merkle::verify_inclusion::<LogHasher>(
        &LogHasher::hash_leaf(&entry_hash),
        proof.seq,
        proof.tree_size,
        &path,
        &checkpoint.checkpoint.root,
    )
    .map_err(|e| VerifyError::Inclusion { seq: proof.seq, reason: e.to_string() })
}

/// Reads entries `0..size` of `tenant` (`size` from a verified checkpoint), each re-hashed
/// and linked to the one before it, handing each to `each` in seq order: a read that skips,
/// repeats, goes past `size` or ends short is an error naming the seq.
pub async fn read_chained(
    client: &mut Client,
    tenant: &str,
    size: u64,
    mut each: impl FnMut(Entry),
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let request = pb::ReadRequest { tenant: tenant.to_owned(), from_seq: 0, to_seq: size };
    let mut stream = client.read(request).await.map_err(refused)?.into_inner();
    let mut previous: Option<(u64, ledger::Hash32)> = None;
    let mut expected = 0u64;
    while let Some(item) = stream.next().await {
        let entry = checked_entry(None, item.map_err(refused)?)?;
        match previous {
            Some((seq, hash)) if entry.seq != seq + 1 || entry.prev_hash != hash => {
                return Err(VerifyError::Link { seq: entry.seq, previous: seq }.into())
            }
            None if entry.seq == 0 && entry.prev_hash != [0; 32] => {
                let reason = "the first entry does not start the chain (its prevHash is not zeros)".to_owned();
                return Err(VerifyError::Entry { seq: entry.seq, reason }.into());
            }
            _ => {}
        }
        if entry.seq != expected || expected >= size {
            let reason = format!("the read of seqs 0 to {size} sent seq {} in place of seq {expected}", entry.seq);
            return Err(VerifyError::Entry { seq: entry.seq, reason }.into());
        }
        previous = Some((entry.seq, entry.entry_hash));
        expected += 1;
        each(entry);
    }
    if expected != size {
        let reason = format!("the read ended before it, at the end of a log of {size} entries");
        return Err(VerifyError::Entry { seq: expected, reason }.into());
    }
    Ok(())
}

/// A streamed entry checked by the client: its hashes recomputed and its link to the previous
/// entry checked.
pub fn checked_entry(previous: Option<&Entry>, wire: pb::Entry) -> Result<Entry, VerifyError> {
    let entry = entry_from_pb(wire).map_err(|s| VerifyError::MalformedEntry(status_line(&s)))?;
    entry.check_hashes().map_err(|e| VerifyError::Hashes { seq: entry.seq, reason: e.to_string() })?;
    if let Some(previous) = previous {
        if entry.seq != previous.seq + 1 || entry.prev_hash != previous.entry_hash {
            return Err(VerifyError::Link { seq: entry.seq, previous: previous.seq });
        }
    }
    Ok(entry)
}
