//! Column families and the byte layout of every key and value (`docs/format.md`).
//!
//! Integers are big-endian everywhere, so RocksDB's byte order is numeric order. Every key
//! starts with the tenant's 4-byte id, so one tenant's data is one contiguous key range.

use super::entry::{Entry, EntryBody};
use crate::envelope::{Envelope, Reader};
use crate::error::DecodeError;
use crate::hash::Hash32;

/// Store format version, recorded in `meta` under [`META_FORMAT`]: 2 is the RFC 6962 SHA-256
/// tree (v1, the BLAKE3 tree, is upgraded by `store::migrate`).
pub(crate) const FORMAT_VERSION: u32 = 2;
/// The format `store::migrate` upgrades from.
pub(crate) const FORMAT_V1: u32 = 1;

pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_ENTRIES: &str = "entries";
pub(crate) const CF_STREAMS: &str = "streams";
pub(crate) const CF_STREAM_HEADS: &str = "stream_heads";
pub(crate) const CF_EVENT_IDS: &str = "event_ids";
pub(crate) const CF_TREE: &str = "tree";
pub(crate) const CF_CHECKPOINTS: &str = "checkpoints";
pub(crate) const CF_KEYS: &str = "keys";

pub(crate) const ALL_CFS: [&str; 8] =
    [CF_META, CF_ENTRIES, CF_STREAMS, CF_STREAM_HEADS, CF_EVENT_IDS, CF_TREE, CF_CHECKPOINTS, CF_KEYS];

pub(crate) const META_FORMAT: &[u8] = b"format";
pub(crate) const META_ADMIN_PUB: &[u8] = b"admin_pub";
pub(crate) const META_LEDGER_PUB: &[u8] = b"ledger_pub";
/// The checkpoint origin prefix, fixed when the store is created (or migrated to v2): a log's
/// origin names it to witnesses and verifiers, so it never changes under a running log.
pub(crate) const META_ORIGIN_PREFIX: &[u8] = b"origin_prefix";
/// JSON record of the v1 → v2 migration (`store::migrate`), kept for auditors.
pub(crate) const META_MIGRATION: &[u8] = b"migration/v2";
/// `"migrating/" || tid`: a tenant whose tree and checkpoints a migration has finished, so a
/// resumed migration skips it. Deleted when the migration completes.
pub(crate) const META_MIGRATING_PREFIX: &[u8] = b"migrating/";
pub(crate) const META_TENANT_PREFIX: &[u8] = b"tenant/";
pub(crate) const META_HEAD_PREFIX: &[u8] = b"head/";
/// Present once the store has an anchor file (`store::anchor`): from then on a missing
/// anchor is an error, not a store that predates anchors.
pub(crate) const META_ANCHORED: &[u8] = b"anchored";
/// The replication position of the last record applied (`Ledger::apply_record`): opaque bytes
/// of the consensus layer, written in the record's own batch.
pub(crate) const META_APPLIED: &[u8] = b"replication/applied";
/// `"salvage/" || seq u64`: the JSON record of each explicit salvage (`store::salvage`).
pub(crate) const META_SALVAGE_PREFIX: &[u8] = b"salvage/";

const ENTRY_FORMAT_V1: u8 = 1;
const FLAG_REDACTED: u8 = 0x01;

/// `meta`: `"tenant/" || name` → tid.
pub(crate) fn tenant_key(name: &str) -> Vec<u8> {
    [META_TENANT_PREFIX, name.as_bytes()].concat()
}

/// `meta`: `"head/" || tid` → [`Head`].
pub(crate) fn head_key(tid: u32) -> Vec<u8> {
    [META_HEAD_PREFIX, &tid.to_be_bytes()].concat()
}

/// `entries`, `checkpoints`: `tid || seq`.
pub(crate) fn seq_key(tid: u32, seq: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&tid.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Decodes the seq of a [`seq_key`].
pub(crate) fn seq_of_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(4..12)?.try_into().ok()?))
}

/// Decodes the tenant id every per-tenant key starts with (a [`seq_key`], a [`tree_key`], ...).
pub(crate) fn tid_of_key(key: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(key.get(..4)?.try_into().ok()?))
}

/// `streams`: `tid || u8 len || stream || version` → seq.
pub(crate) fn stream_key(tid: u32, stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(tid, stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

pub(crate) fn stream_prefix(tid: u32, stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(13 + stream.len());
    key.extend_from_slice(&tid.to_be_bytes());
    key.push(stream.len() as u8); // Streams are at most 200 bytes (event.rs).
    key.extend_from_slice(stream.as_bytes());
    key
}

/// `stream_heads`: `tid || stream` → version.
pub(crate) fn stream_head_key(tid: u32, stream: &str) -> Vec<u8> {
    [&tid.to_be_bytes()[..], stream.as_bytes()].concat()
}

/// `event_ids`: `tid || eventId` → seq || BLAKE3(payload).
pub(crate) fn event_id_key(tid: u32, event_id: &str) -> Vec<u8> {
    [&tid.to_be_bytes()[..], event_id.as_bytes()].concat()
}

/// `tree`: `tid || level || index` → node hash.
pub(crate) fn tree_key(tid: u32, level: u32, index: u64) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[..4].copy_from_slice(&tid.to_be_bytes());
    key[4] = level as u8;
    key[5..].copy_from_slice(&index.to_be_bytes());
    key
}

/// `keys`: `tid || keyid` → JSON [`crate::registry::KeyRecord`].
pub(crate) fn registry_key(tid: u32, key_id: &[u8; 32]) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&tid.to_be_bytes());
    key[4..].copy_from_slice(key_id);
    key
}

/// A tenant's head, in `meta`: `size || chainHead || lastRecordedAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub(crate) size: u64,
    pub(crate) chain_head: Hash32,
    pub(crate) last_recorded_at: u64,
}

impl Head {
    /// The stored bytes.
    pub fn encode(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..8].copy_from_slice(&self.size.to_be_bytes());
        out[8..40].copy_from_slice(&self.chain_head);
        out[40..].copy_from_slice(&self.last_recorded_at.to_be_bytes());
        out
    }

    /// Decodes [`Head::encode`], strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let head = Self { size: reader.u64()?, chain_head: reader.array()?, last_recorded_at: reader.u64()? };
        reader.finish()?;
        Ok(head)
    }
}

/// The value of an `event_ids` row.
pub fn encode_event_id_value(seq: u64, payload_digest: &Hash32) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&seq.to_be_bytes());
    out[8..].copy_from_slice(payload_digest);
    out
}

/// Decodes [`encode_event_id_value`], strictly: `(seq, payload digest)`.
pub fn decode_event_id_value(bytes: &[u8]) -> Result<(u64, Hash32), DecodeError> {
    let mut reader = Reader::new(bytes);
    let value = (reader.u64()?, reader.array()?);
    reader.finish()?;
    Ok(value)
}

/// `entries` value: `u8 format=1 | u8 flags | u64 recordedAt | prevHash | payloadHash |
/// entryHash | (envelope bytes | u64 redactedBy)`.
pub fn encode_entry_value(
    recorded_at: u64,
    prev_hash: &Hash32,
    payload_hash: &Hash32,
    entry_hash: &Hash32,
    body: EncodedBody<'_>,
) -> Vec<u8> {
    let tail = match body {
        EncodedBody::Envelope(bytes) => bytes.len(),
        EncodedBody::Redacted(_) => 8,
    };
    let mut out = Vec::with_capacity(106 + tail);
    out.push(ENTRY_FORMAT_V1);
    out.push(if matches!(body, EncodedBody::Redacted(_)) { FLAG_REDACTED } else { 0 });
    out.extend_from_slice(&recorded_at.to_be_bytes());
    out.extend_from_slice(prev_hash);
    out.extend_from_slice(payload_hash);
    out.extend_from_slice(entry_hash);
    match body {
        EncodedBody::Envelope(bytes) => out.extend_from_slice(bytes),
        EncodedBody::Redacted(by_seq) => out.extend_from_slice(&by_seq.to_be_bytes()),
    }
    out
}

/// The tail of an entry value.
#[derive(Debug, Clone, Copy)]
pub enum EncodedBody<'a> {
    /// The envelope's storage bytes ([`Envelope::to_bytes`]).
    Envelope(&'a [u8]),
    /// The seq of the `EntryRedacted` event.
    Redacted(u64),
}

/// Decodes an `entries` value stored under `seq`, checking its hashes.
pub fn decode_entry_value(seq: u64, bytes: &[u8]) -> Result<Entry, String> {
    let entry = decode_entry_value_unchecked(seq, bytes)?;
    entry.check_hashes()?;
    Ok(entry)
}

/// [`decode_entry_value`] without the hash check: only for bytes that never left memory (the
/// writer's own rows, handed over in `fresh`).
pub(crate) fn decode_entry_value_unchecked(seq: u64, bytes: &[u8]) -> Result<Entry, String> {
    let decode = |e: DecodeError| e.0;
    let mut reader = Reader::new(bytes);
    let format = reader.u8().map_err(decode)?;
    if format != ENTRY_FORMAT_V1 {
        return Err(format!("unknown entry format {format}"));
    }
    let flags = reader.u8().map_err(decode)?;
    let recorded_at = reader.u64().map_err(decode)?;
    let prev_hash = reader.array().map_err(decode)?;
    let payload_hash = reader.array().map_err(decode)?;
    let entry_hash = reader.array().map_err(decode)?;
    let body = match flags {
        0 => EntryBody::Present(Envelope::from_bytes(reader.rest()).map_err(|e| format!("envelope: {e}"))?),
        FLAG_REDACTED => {
            let by_seq = reader.u64().map_err(decode)?;
            reader.finish().map_err(decode)?;
            EntryBody::Redacted { by_seq }
        }
        other => return Err(format!("unknown entry flags {other:#04x}")),
    };
    Ok(Entry { seq, recorded_at, prev_hash, payload_hash, entry_hash, body })
}
