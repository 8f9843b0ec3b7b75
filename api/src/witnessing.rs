//! Witnessing: the server submits each tenant's newest checkpoint to the witnesses of its
//! witness policy (C2SP tlog-witness), on an interval, and keeps the cosignatures it gets.
//!
//! **Cadence** (the analysis is in docs/witnessing.md): one round every `interval` (default
//! 10 s), not per commit group. In a round a tenant costs a witness one request only if its
//! newest checkpoint is larger than the one that witness last cosigned: idle tenants cost
//! nothing, and a busy tenant costs at most one request per witness per interval however many
//! commit groups it had. Witnesses are asked concurrently, tenants one after another, so a
//! witness never sees more than one request at a time from this server.
//!
//! **Store**: `<data dir>/cosignatures/<hex SHA-256(tenant)>.json`, one file per tenant,
//! replaced atomically (temporary file, fsync, rename, directory fsync) after each round that
//! changed it. It holds the size each witness last cosigned (the `old` size of the next
//! request; after a restart without it the witness's 409 says it) and the cosigned notes from
//! the newest that meets the quorum on. Losing the file loses no security: the cosignatures are
//! asked for again.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ledger::Ledger;
use parking_lot::RwLock;
use tokio::sync::watch;
use witness::{Policy, SignedNote};
use witness_http::{SubmitError, WitnessClient};

/// Default seconds between witnessing rounds.
pub const DEFAULT_WITNESS_INTERVAL: Duration = Duration::from_secs(10);
/// How long one request to a witness may take.
pub const WITNESS_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The cosignature store, inside the data dir.
pub const COSIGNATURES_DIR: &str = "cosignatures";
/// Cosigned notes kept per tenant (from the newest quorate one on, at most this many).
const MAX_NOTES: usize = 8;

/// The witnessing settings of `serve`.
#[derive(Debug, Clone)]
pub struct WitnessingOptions {
    /// The policy: witnesses (with URLs) and the quorum.
    pub policy: Policy,
    /// Time between rounds.
    pub interval: Duration,
}

/// One tenant's cosignatures, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantCosignatures {
    /// The tenant.
    pub tenant: String,
    /// Policy witness name -> the tree size it last cosigned for this tenant.
    pub witness_sizes: BTreeMap<String, u64>,
    /// Tree size -> the ledger's note at that size with the cosignature lines obtained.
    pub notes: BTreeMap<u64, String>,
}

/// The cosignatures of every tenant, in memory and on disk.
#[derive(Debug)]
pub struct Cosignatures {
    dir: PathBuf,
    policy: Policy,
    tenants: RwLock<HashMap<String, TenantCosignatures>>,
}

impl Cosignatures {
    /// Loads `<data_dir>/cosignatures` (created if missing).
    pub fn open(data_dir: &Path, policy: Policy) -> anyhow::Result<Self> {
        let dir = data_dir.join(COSIGNATURES_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut tenants = HashMap::new();
        for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue; // A leftover temporary file of an interrupted write.
            }
            let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let stored: TenantCosignatures =
                serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
            tenants.insert(stored.tenant.clone(), stored);
        }
        Ok(Self { dir, policy, tenants: RwLock::new(tenants) })
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The note to serve for `tenant`: the newest that meets the quorum, else the newest with
    /// any cosignature; `None` before the first cosignature.
    pub fn cosigned_note(&self, tenant: &str) -> Option<String> {
        let tenants = self.tenants.read();
        let stored = tenants.get(tenant)?;
        let quorate = stored.notes.values().rev().find(|note| self.meets_quorum(note));
        quorate.or_else(|| stored.notes.values().next_back()).cloned()
    }

    /// A copy of a tenant's record.
    pub fn tenant(&self, tenant: &str) -> Option<TenantCosignatures> {
        self.tenants.read().get(tenant).cloned()
    }

    /// Whether the witnesses' cosignatures on `note` (the server's own note: its log
    /// signature is the ledger's, for readers to check) meet the policy's quorum.
    fn meets_quorum(&self, note: &str) -> bool {
        let Ok(parsed) = SignedNote::parse(note) else { return false };
        let cosigned = self
            .policy
            .witnesses
            .iter()
            .enumerate()
            .filter(|(_, w)| {
                parsed.signatures.iter().any(|line| {
                    w.vkey.matches(line) && witness::verify_cosignature(&w.vkey, &parsed.text, line).is_ok()
                })
            })
            .map(|(index, _)| index)
            .collect();
        self.policy.quorum_met(&cosigned)
    }

    /// Stores a tenant's record, file first, then memory.
    fn store(&self, mut record: TenantCosignatures) -> anyhow::Result<()> {
        // Keep the newest quorate note and at most MAX_NOTES - 1 newer ones (the newest).
        let quorate = record.notes.iter().rev().find(|(_, note)| self.meets_quorum(note)).map(|(size, _)| *size);
        if let Some(keep_from) = quorate {
            record.notes.retain(|size, _| *size >= keep_from);
        }
        while record.notes.len() > MAX_NOTES {
            let oldest_newer = record.notes.keys().copied().find(|size| Some(*size) != quorate);
            if let Some(size) = oldest_newer {
                record.notes.remove(&size);
            }
        }
        let name = format!("{}.json", witness::witness::origin_hash(&record.tenant));
        let bytes = serde_json::to_vec_pretty(&record)?;
        witness::witness::write_atomically(&self.dir, &name, &bytes)
            .with_context(|| format!("writing {}", self.dir.join(&name).display()))?;
        self.tenants.write().insert(record.tenant.clone(), record);
        Ok(())
    }
}

/// What one round did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundReport {
    /// Requests that returned a cosignature.
    pub cosigned: usize,
    /// Requests that failed, with why.
    pub failed: Vec<String>,
}

/// The submitter: the witnesses of the policy that have URLs.
#[derive(Debug)]
pub struct Submitter {
    ledger: Arc<Ledger>,
    cosignatures: Arc<Cosignatures>,
    clients: Vec<WitnessClient>,
}

impl Submitter {
    /// A submitter for the policy's witnesses that have a URL (the others can only be
    /// verified, not asked).
    pub fn new(ledger: Arc<Ledger>, cosignatures: Arc<Cosignatures>) -> anyhow::Result<Self> {
        let clients = cosignatures
            .policy()
            .witnesses
            .iter()
            .filter_map(|w| {
                w.url.as_ref().map(|url| WitnessClient::new(&w.name, url, w.vkey.clone(), WITNESS_REQUEST_TIMEOUT))
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(anyhow::Error::msg)?;
        Ok(Self { ledger, cosignatures, clients })
    }

    /// One round over every tenant.
    pub async fn round(&self) -> RoundReport {
        let mut report = RoundReport::default();
        let ledger = self.ledger.clone();
        let tenants = match tokio::task::spawn_blocking(move || ledger.tenants()).await {
            Ok(tenants) => tenants,
            Err(e) => {
                report.failed.push(format!("listing tenants: {e}"));
                return report;
            }
        };
        for tenant in tenants {
            if let Err(e) = self.tenant_round(&tenant, &mut report).await {
                report.failed.push(format!("{tenant}: {e:#}"));
            }
        }
        report
    }

    async fn tenant_round(&self, tenant: &str, report: &mut RoundReport) -> anyhow::Result<()> {
        let ledger = self.ledger.clone();
        let owned = tenant.to_owned();
        let signed = tokio::task::spawn_blocking(move || ledger.checkpoint(&owned)).await??;
        let size = signed.checkpoint.size;
        let mut record = self
            .cosignatures
            .tenant(tenant)
            .unwrap_or_else(|| TenantCosignatures { tenant: tenant.to_owned(), ..TenantCosignatures::default() });
        let due: Vec<&WitnessClient> =
            self.clients.iter().filter(|c| record.witness_sizes.get(c.name()).is_none_or(|s| *s < size)).collect();
        if due.is_empty() {
            return Ok(());
        }
        let parsed = SignedNote::parse(&signed.note).map_err(|e| anyhow::anyhow!("the ledger's own note: {e}"))?;
        let proofs = |old: u64, new: u64| -> Result<Vec<witness::Hash32>, String> {
            self.ledger.consistency_proof(tenant, old, new).map(|p| p.path).map_err(|e| e.to_string())
        };
        let requests = due.iter().map(|client| {
            let old = record.witness_sizes.get(client.name()).copied().unwrap_or(0);
            witness_http::submit(client, &signed.note, &parsed.text, size, old, &proofs)
        });
        let results = futures::future::join_all(requests).await;
        let mut note =
            record.notes.get(&size).map_or_else(|| parsed.clone(), |n| SignedNote::parse(n).unwrap_or(parsed.clone()));
        let mut changed = false;
        for (client, result) in due.iter().zip(results) {
            match result {
                Ok(obtained) => {
                    note.signatures
                        .retain(|line| !obtained.lines.iter().any(|l| l.name == line.name && l.key_id == line.key_id));
                    note.signatures.extend(obtained.lines);
                    record.witness_sizes.insert(client.name().to_owned(), size);
                    report.cosigned += 1;
                    changed = true;
                }
                Err(error) => {
                    if let SubmitError::WitnessAhead { .. } = error {
                        tracing::error!(%tenant, %error, "a witness has cosigned a larger tree than the ledger's");
                    } else {
                        tracing::warn!(%tenant, %error, "witness did not cosign; retried next round");
                    }
                    // A 409 told us the witness's size: start from it next time.
                    if let SubmitError::Conflict { size: witness_size, .. } = error {
                        record.witness_sizes.insert(client.name().to_owned(), witness_size);
                        changed = true;
                    }
                    report.failed.push(format!("{tenant}: {error}"));
                }
            }
        }
        if changed {
            record.notes.insert(size, note.to_note());
            self.cosignatures.store(record)?;
        }
        Ok(())
    }
}

/// Runs rounds every `interval` until `stop` turns true.
pub async fn run(submitter: Submitter, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        // A stop cuts a round short: a shutdown must not wait out witness timeouts. A round
        // dropped mid-way loses only requests not yet stored (each tenant's file is replaced
        // whole, never half-written), asked again on the next start.
        let report = tokio::select! {
            report = submitter.round() => report,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        if report.cosigned > 0 || !report.failed.is_empty() {
            tracing::info!(cosigned = report.cosigned, failed = report.failed.len(), "witnessing round");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ledger::KeyPair;
    use witness::cosig::sign_note;
    use witness::Cosigner;

    use super::*;

    const TENANT: &str = "acme";
    const ORIGIN: &str = "release-ledger/acme";

    fn cosigners() -> Vec<Cosigner> {
        (0..3u8).map(|i| Cosigner::new(&format!("w{i}.example"), KeyPair::from_seed(&[10 + i; 32])).unwrap()).collect()
    }

    fn policy(cosigners: &[Cosigner]) -> Policy {
        let mut text = String::new();
        for (i, c) in cosigners.iter().enumerate() {
            text.push_str(&format!("witness W{i} {} http://127.0.0.1:{}\n", c.vkey(), 1 + i));
        }
        text.push_str("group q 2 W0 W1 W2\nquorum q\n");
        Policy::parse(text.as_bytes()).unwrap()
    }

    /// The ledger's note at `size` with the cosignatures of `by`.
    fn note(size: u64, by: &[&Cosigner]) -> String {
        let text = format!("{ORIGIN}\n{size}\n{}\n", ledger::b64::encode([size as u8; 32]));
        let mut note = SignedNote { signatures: vec![sign_note(ORIGIN, &KeyPair::from_seed(&[1; 32]), &text)], text };
        for c in by {
            note.signatures.push(c.cosign(&note.text, 1_800_000_000));
        }
        note.to_note()
    }

    #[test]
    fn witness_store_serves_the_newest_quorate_note_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let c = cosigners();
        let store = Cosignatures::open(dir.path(), policy(&c)).unwrap();
        assert_eq!(store.cosigned_note(TENANT), None);
        let mut record = TenantCosignatures { tenant: TENANT.into(), ..TenantCosignatures::default() };
        record.notes.insert(5, note(5, &[&c[0], &c[1]]));
        record.notes.insert(7, note(7, &[&c[2]]));
        record.witness_sizes.insert("W2".into(), 7);
        store.store(record.clone()).unwrap();
        // Size 7 has one cosignature of the two needed: size 5 is what meets the quorum.
        assert_eq!(store.cosigned_note(TENANT), Some(note(5, &[&c[0], &c[1]])));

        // Once 7 meets the quorum too, 5 is pruned.
        record.notes.insert(7, note(7, &[&c[2], &c[0]]));
        store.store(record).unwrap();
        assert_eq!(store.cosigned_note(TENANT), Some(note(7, &[&c[2], &c[0]])));
        assert_eq!(store.tenant(TENANT).unwrap().notes.keys().copied().collect::<Vec<_>>(), [7]);

        // The file is the record, whole; nothing else is left in the directory.
        let reopened = Cosignatures::open(dir.path(), policy(&c)).unwrap();
        assert_eq!(reopened.tenant(TENANT), store.tenant(TENANT));
        assert_eq!(reopened.cosigned_note(TENANT), Some(note(7, &[&c[2], &c[0]])));
        assert_eq!(std::fs::read_dir(dir.path().join(COSIGNATURES_DIR)).unwrap().count(), 1);
    }

    #[test]
    fn without_any_quorate_note_the_newest_cosigned_one_is_served_and_old_ones_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let c = cosigners();
        let store = Cosignatures::open(dir.path(), policy(&c)).unwrap();
        let mut record = TenantCosignatures { tenant: TENANT.into(), ..TenantCosignatures::default() };
        for size in 1..=20 {
            record.notes.insert(size, note(size, &[&c[1]]));
        }
        store.store(record).unwrap();
        let kept = store.tenant(TENANT).unwrap().notes;
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), (13..=20).collect::<Vec<_>>());
        assert_eq!(store.cosigned_note(TENANT), Some(note(20, &[&c[1]])));

        // A quorate note is kept however many newer ones without the quorum pile up.
        let mut record = store.tenant(TENANT).unwrap();
        record.notes.insert(3, note(3, &[&c[0], &c[2]]));
        store.store(record).unwrap();
        let kept = store.tenant(TENANT).unwrap().notes;
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), [3, 14, 15, 16, 17, 18, 19, 20]);
        assert_eq!(store.cosigned_note(TENANT), Some(note(3, &[&c[0], &c[2]])));
    }

    #[test]
    fn a_corrupt_store_file_stops_the_start_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(COSIGNATURES_DIR)).unwrap();
        std::fs::write(dir.path().join(COSIGNATURES_DIR).join("x.json"), "{\"tenant\": 1}").unwrap();
        let error = format!("{:#}", Cosignatures::open(dir.path(), policy(&cosigners())).unwrap_err());
        assert!(error.contains("x.json"), "{error}");
        // A leftover temporary file of an interrupted write is not read.
        std::fs::remove_file(dir.path().join(COSIGNATURES_DIR).join("x.json")).unwrap();
        std::fs::write(dir.path().join(COSIGNATURES_DIR).join("x.json.tmp"), "partial").unwrap();
        assert!(Cosignatures::open(dir.path(), policy(&cosigners())).is_ok());
    }
}
