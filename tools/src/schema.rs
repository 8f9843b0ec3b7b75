//! The export tables, their Arrow schemas, and the file metadata that makes an export verify
//! on its own. `docs/export.md` is the reference for GRC integrators; this module is the
//! single source of both.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use ed25519_dalek::VerifyingKey;
use ledger::{Hash32, KeyRecord, ResumePoint, TrustRoots};
use serde::{Deserialize, Serialize};

/// Version of the export layout (columns and metadata keys). Readers refuse other versions.
pub const FORMAT_VERSION: &str = "1";

/// Metadata keys (schema-level key/value metadata, also Parquet key/value metadata).
pub mod keys {
    /// [`super::FORMAT_VERSION`].
    pub const FORMAT_VERSION: &str = "release-ledger.format-version";
    /// `entries`, `releases`, `history`, `approvals` or `risk`.
    pub const TABLE: &str = "release-ledger.table";
    /// The tenant.
    pub const TENANT: &str = "release-ledger.tenant";
    /// First seq of the range (entries), or 0 (projections).
    pub const FROM_SEQ: &str = "release-ledger.from-seq";
    /// End of the range, exclusive: the entries covered, or the log prefix a projection was
    /// derived from. The checkpoint covers exactly this many entries.
    pub const TO_SEQ: &str = "release-ledger.to-seq";
    /// The checkpoint origin prefix (`"{prefix}/{tenant}"` is the origin).
    pub const ORIGIN_PREFIX: &str = "release-ledger.origin-prefix";
    /// The ledger's Ed25519 public key, base64 of the raw 32 bytes.
    pub const LEDGER_PUBLIC_KEY: &str = "release-ledger.ledger-public-key";
    /// The admin key, base64 of the raw 32 bytes.
    pub const ADMIN_PUBLIC_KEY: &str = "release-ledger.admin-public-key";
    /// The C2SP signed-note checkpoint covering `0..to-seq`, signed by the ledger key.
    pub const CHECKPOINT: &str = "release-ledger.checkpoint";
    /// For a range starting after 0: JSON [`super::ResumeJson`].
    pub const RESUME: &str = "release-ledger.resume";
}

/// An exportable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    /// The log itself, one row per entry (DESIGN §5).
    Entries,
    /// One row per release: its current summary.
    Releases,
    /// One row per module × environment history item (publications, failures, rollbacks).
    History,
    /// One row per approval or rejection.
    Approvals,
    /// One row per risk factor of each release's last evaluation.
    Risk,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 5] = [Table::Entries, Table::Releases, Table::History, Table::Approvals, Table::Risk];

    /// The name used in tickets, metadata and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Entries => "entries",
            Table::Releases => "releases",
            Table::History => "history",
            Table::Approvals => "approvals",
            Table::Risk => "risk",
        }
    }

    /// The table's columns, without file metadata.
    pub fn schema(self) -> Schema {
        let ts = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
        let tenant = text("tenant", false);
        let release = text("releaseId", false);
        let fields = match self {
            Table::Entries => vec![
                Field::new("seq", DataType::UInt64, false),
                tenant,
                Field::new("recordedAt", ts(), false),
                text("eventId", true),
                text("stream", true),
                text("type", true),
                text("releaseId", true),
                text("traceId", true),
                text("agentId", true),
                text("keyId", true),
                text("payloadType", true),
                Field::new("payload", DataType::Binary, true),
                Field::new("signature", DataType::FixedSizeBinary(64), true),
                Field::new("prevHash", DataType::FixedSizeBinary(32), false),
                Field::new("payloadHash", DataType::FixedSizeBinary(32), false),
                Field::new("entryHash", DataType::FixedSizeBinary(32), false),
                Field::new("redactedBy", DataType::UInt64, true),
            ],
            Table::Releases => vec![
                tenant,
                release,
                text("environment", true),
                Field::new("modules", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
                text("status", false),
                Field::new("reasonCodes", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), false),
                Field::new("riskScore", DataType::UInt32, true),
                Field::new("policyVersion", DataType::UInt64, true),
                text("lastDecision", true),
                Field::new("lastDecisionSeq", DataType::UInt64, true),
                text("retryAfter", true),
                text("traceId", true),
                text("declaredBy", true),
                Field::new("createdAt", ts(), false),
                Field::new("updatedAt", ts(), false),
                text("summary", false),
            ],
            Table::History => vec![
                tenant,
                text("module", false),
                text("environment", false),
                Field::new("seq", DataType::UInt64, false),
                Field::new("recordedAt", ts(), false),
                release,
                text("version", false),
                text("event", false),
            ],
            Table::Approvals => vec![
                tenant,
                release,
                Field::new("seq", DataType::UInt64, false),
                Field::new("recordedAt", ts(), false),
                text("keyId", false),
                text("agentId", false),
                text("role", false),
                Field::new("granted", DataType::Boolean, false),
                text("text", false),
                text("method", true),
            ],
            Table::Risk => vec![
                tenant,
                release,
                Field::new("trigger", DataType::UInt64, false),
                text("evaluatedAt", false),
                Field::new("score", DataType::UInt32, false),
                text("factor", false),
                text("value", false),
                Field::new("points", DataType::UInt32, false),
            ],
        };
        Schema::new(fields)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, String> {
        Table::ALL.into_iter().find(|t| t.as_str() == name).ok_or_else(|| {
            format!("unknown table {:?}: expected entries, releases, history, approvals or risk", ledger::clip(name))
        })
    }
}

/// What the metadata of an export says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportMeta {
    /// The table.
    pub table: Table,
    /// The tenant.
    pub tenant: String,
    /// First seq (entries) or 0.
    pub from_seq: u64,
    /// End, exclusive (see [`keys::TO_SEQ`]).
    pub to_seq: u64,
    /// Checkpoint origin prefix.
    pub origin_prefix: String,
    /// Ledger and admin public keys, as the file states them.
    pub roots: TrustRoots,
    /// The signed checkpoint note covering `0..to_seq`.
    pub checkpoint: String,
    /// Where a range after 0 resumes.
    pub resume: Option<ResumePoint>,
}

/// [`ResumePoint`] as JSON in the metadata (hashes in lowercase hex).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeJson {
    /// Entries before the range.
    pub size: u64,
    /// Entry hash of seq `size - 1`.
    pub prev_hash: String,
    /// `recordedAt` of seq `size - 1`, ns.
    pub last_recorded_at: u64,
    /// Merkle frontier at `size`, largest subtree first.
    pub frontier: Vec<String>,
    /// The key registry before `size`.
    pub keys: Vec<KeyRecord>,
}

fn hash_from_hex(text: &str) -> Result<Hash32, String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).map_err(|_| format!("{:?} is not a 32-byte hex hash", ledger::clip(text)))?;
    Ok(out)
}

fn key_from_b64(what: &str, text: &str) -> Result<VerifyingKey, String> {
    let bytes = ledger::b64::decode(text).map_err(|_| format!("{what} is not base64"))?;
    let raw: [u8; 32] = bytes.try_into().map_err(|_| format!("{what} is not 32 bytes"))?;
    VerifyingKey::from_bytes(&raw).map_err(|_| format!("{what} is not an Ed25519 public key"))
}

impl ExportMeta {
    /// The metadata map written into the schema (and Parquet key/value metadata).
    pub fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (keys::FORMAT_VERSION.to_owned(), FORMAT_VERSION.to_owned()),
            (keys::TABLE.to_owned(), self.table.as_str().to_owned()),
            (keys::TENANT.to_owned(), self.tenant.clone()),
            (keys::FROM_SEQ.to_owned(), self.from_seq.to_string()),
            (keys::TO_SEQ.to_owned(), self.to_seq.to_string()),
            (keys::ORIGIN_PREFIX.to_owned(), self.origin_prefix.clone()),
            (keys::LEDGER_PUBLIC_KEY.to_owned(), ledger::b64::encode(self.roots.ledger().as_bytes())),
            (keys::ADMIN_PUBLIC_KEY.to_owned(), ledger::b64::encode(self.roots.admin().as_bytes())),
            (keys::CHECKPOINT.to_owned(), self.checkpoint.clone()),
        ]);
        if let Some(point) = &self.resume {
            let json = ResumeJson {
                size: point.size,
                prev_hash: hex::encode(point.prev_hash),
                last_recorded_at: point.last_recorded_at,
                frontier: point.frontier.iter().map(hex::encode).collect(),
                keys: point.keys.clone(),
            };
            map.insert(keys::RESUME.to_owned(), serde_json::to_string(&json).unwrap_or_default());
        }
        map
    }

    /// Reads the metadata back, strictly: a missing or malformed key is an error naming it.
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, String> {
        let get = |key: &str| map.get(key).map(String::as_str).ok_or_else(|| format!("metadata {key} is missing"));
        let version = get(keys::FORMAT_VERSION)?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "export format version {:?} is not supported (this tool reads {FORMAT_VERSION})",
                ledger::clip(version)
            ));
        }
        let number = |key: &str| -> Result<u64, String> {
            get(key)?.parse().map_err(|_| format!("metadata {key} is not a number"))
        };
        let table: Table = get(keys::TABLE)?.parse()?;
        let (from_seq, to_seq) = (number(keys::FROM_SEQ)?, number(keys::TO_SEQ)?);
        if from_seq > to_seq {
            return Err(format!("metadata range {from_seq}..{to_seq} is reversed"));
        }
        let roots = TrustRoots::new(
            key_from_b64(keys::ADMIN_PUBLIC_KEY, get(keys::ADMIN_PUBLIC_KEY)?)?,
            key_from_b64(keys::LEDGER_PUBLIC_KEY, get(keys::LEDGER_PUBLIC_KEY)?)?,
        );
        let resume = match map.get(keys::RESUME) {
            None => None,
            Some(text) => {
                let json: ResumeJson =
                    serde_json::from_str(text).map_err(|e| format!("metadata {}: {e}", keys::RESUME))?;
                Some(ResumePoint {
                    size: json.size,
                    prev_hash: hash_from_hex(&json.prev_hash)?,
                    last_recorded_at: json.last_recorded_at,
                    frontier: json.frontier.iter().map(|h| hash_from_hex(h)).collect::<Result<_, _>>()?,
                    keys: json.keys,
                })
            }
        };
        match (&resume, from_seq) {
            (None, 0) => {}
            (Some(point), from) if point.size == from && from > 0 => {}
            (None, from) => {
                return Err(format!("the range starts at seq {from} but metadata {} is missing", keys::RESUME))
            }
            (Some(point), from) => {
                return Err(format!("metadata {} is for seq {}, the range starts at {from}", keys::RESUME, point.size))
            }
        }
        Ok(Self {
            table,
            tenant: get(keys::TENANT)?.to_owned(),
            from_seq,
            to_seq,
            origin_prefix: get(keys::ORIGIN_PREFIX)?.to_owned(),
            roots,
            checkpoint: get(keys::CHECKPOINT)?.to_owned(),
            resume,
        })
    }

    /// The table's schema with this metadata.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.table.schema().with_metadata(self.to_map()))
    }
}
