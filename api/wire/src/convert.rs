//! Conversions between the wire types (`proto`) and the ledger's types. Proto types stop here.

use ledger::{AppendEvent, Entry, EntryBody, Envelope, ExpectedVersion, Receipt, Signature, SignedCheckpoint};
use proto::v1 as pb;
use tonic::Status;

/// A wire envelope as the ledger's.
pub fn envelope_from_pb(envelope: pb::Envelope) -> Envelope {
    Envelope {
        payload_type: envelope.payload_type,
        payload: envelope.payload,
        signatures: envelope.signatures.into_iter().map(|s| Signature { keyid: s.keyid, sig: s.sig }).collect(),
    }
}

/// The ledger's envelope on the wire.
pub fn envelope_to_pb(envelope: &Envelope) -> pb::Envelope {
    pb::Envelope {
        payload_type: envelope.payload_type.clone(),
        payload: envelope.payload.clone(),
        signatures: envelope
            .signatures
            .iter()
            .map(|s| pb::Signature { keyid: s.keyid.clone(), sig: s.sig.clone() })
            .collect(),
    }
}

/// A wire append event; a missing envelope is `INVALID_ARGUMENT`.
pub fn append_event_from_pb(index: usize, event: pb::AppendEvent) -> Result<AppendEvent, Status> {
    let envelope =
        event.envelope.ok_or_else(|| Status::invalid_argument(format!("event {index}: envelope is missing")))?;
    let expected_version = match event.expected_version.and_then(|v| v.version) {
        None | Some(pb::expected_version::Version::Any(_)) => ExpectedVersion::Any,
        Some(pb::expected_version::Version::NoStream(_)) => ExpectedVersion::NoStream,
        Some(pb::expected_version::Version::Exact(v)) => ExpectedVersion::Exact(v),
    };
    Ok(AppendEvent { envelope: envelope_from_pb(envelope), expected_version })
}

/// The wire form of an expected version.
pub fn expected_version_to_pb(expected: ExpectedVersion) -> pb::ExpectedVersion {
    let version = match expected {
        ExpectedVersion::Any => pb::expected_version::Version::Any(true),
        ExpectedVersion::NoStream => pb::expected_version::Version::NoStream(true),
        ExpectedVersion::Exact(v) => pb::expected_version::Version::Exact(v),
    };
    pb::ExpectedVersion { version: Some(version) }
}

/// A receipt on the wire.
pub fn receipt_to_pb(receipt: &Receipt) -> pb::Receipt {
    pb::Receipt {
        tenant: receipt.tenant.clone(),
        seq: receipt.seq,
        entry_hash: receipt.entry_hash.to_vec(),
        recorded_at_unix_nanos: nanos(receipt.recorded_at),
        duplicate: receipt.duplicate,
    }
}

/// An entry on the wire.
pub fn entry_to_pb(tenant: &str, entry: &Entry) -> pb::Entry {
    pb::Entry {
        tenant: tenant.to_owned(),
        seq: entry.seq,
        recorded_at_unix_nanos: nanos(entry.recorded_at),
        prev_hash: entry.prev_hash.to_vec(),
        payload_hash: entry.payload_hash.to_vec(),
        entry_hash: entry.entry_hash.to_vec(),
        body: Some(match &entry.body {
            EntryBody::Present(envelope) => pb::entry::Body::Envelope(envelope_to_pb(envelope)),
            EntryBody::Redacted { by_seq } => pb::entry::Body::Redacted(pb::Redacted { by_seq: *by_seq }),
        }),
    }
}

/// A wire entry as the ledger's, for clients that verify what they read. Malformed hashes are
/// `DATA_LOSS` (the server sent something that is not an entry).
pub fn entry_from_pb(entry: pb::Entry) -> Result<Entry, Status> {
    let hash = |bytes: Vec<u8>, what: &str| -> Result<ledger::Hash32, Status> {
        bytes.try_into().map_err(|_| Status::data_loss(format!("seq {}: {what} is not 32 bytes", entry.seq)))
    };
    let body = match entry.body {
        Some(pb::entry::Body::Envelope(envelope)) => EntryBody::Present(envelope_from_pb(envelope)),
        Some(pb::entry::Body::Redacted(redacted)) => EntryBody::Redacted { by_seq: redacted.by_seq },
        None => return Err(Status::data_loss(format!("seq {}: entry has no body", entry.seq))),
    };
    Ok(Entry {
        seq: entry.seq,
        recorded_at: u64::try_from(entry.recorded_at_unix_nanos).unwrap_or(0),
        prev_hash: hash(entry.prev_hash, "prev hash")?,
        payload_hash: hash(entry.payload_hash, "payload hash")?,
        entry_hash: hash(entry.entry_hash, "entry hash")?,
        body,
    })
}

/// A signed checkpoint on the wire.
pub fn checkpoint_to_pb(signed: &SignedCheckpoint) -> pb::Checkpoint {
    let c = &signed.checkpoint;
    pb::Checkpoint {
        note: signed.note.clone(),
        origin: c.origin.clone(),
        size: c.size,
        root_hash: c.root.to_vec(),
        cosigned_note: String::new(),
    }
}

/// Nanoseconds as the wire's signed 64-bit (saturating; the ledger's clock is far below 2262).
pub fn nanos(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}
