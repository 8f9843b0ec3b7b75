//! One client: its session (connection, prepared statements) and its loop of checked,
//! hash-chained inserts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, ensure, Context as _};
use bench_harness::latency::new_histogram;
use ed25519_dalek::{Signature, VerifyingKey};
use hdrhistogram::Histogram;
use ledger::hash::{entry_hash, payload_hash, Hash32};
use ledger::{AppendEvent, Clock as _, Envelope, KeyId, ParsedEvent, SystemClock, EVENT_PAYLOAD_TYPE};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use crate::run::connect;
use crate::MAX_ROWS_PER_INSERT;

/// One client's connection and prepared statements.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) tenant: String,
    pub(crate) begin: Statement,
    pub(crate) commit: Statement,
    pub(crate) rollback: Statement,
    pub(crate) lock_head: Statement,
    pub(crate) update_head: Statement,
    pub(crate) inserts: HashMap<usize, Statement>,
}

impl Session {
    pub(crate) async fn open(conn: &str, tenant: String) -> anyhow::Result<Self> {
        let client = connect(conn).await?;
        let begin = client.prepare("BEGIN").await?;
        let commit = client.prepare("COMMIT").await?;
        let rollback = client.prepare("ROLLBACK").await?;
        let lock_head =
            client.prepare("SELECT seq, entry_hash, recorded_at FROM heads WHERE tenant = $1 FOR UPDATE").await?;
        let update_head =
            client.prepare("UPDATE heads SET seq = $2, entry_hash = $3, recorded_at = $4 WHERE tenant = $1").await?;
        Ok(Self { client, tenant, begin, commit, rollback, lock_head, update_head, inserts: HashMap::new() })
    }

    /// The prepared multi-row `INSERT` of `rows` rows ($1 tenant, $2 recorded_at, $3
    /// payload_type shared; then 7 parameters per row).
    pub(crate) async fn insert(&mut self, rows: usize) -> anyhow::Result<Statement> {
        if let Some(statement) = self.inserts.get(&rows) {
            return Ok(statement.clone());
        }
        let mut sql = String::from(
            "INSERT INTO events (tenant, seq, recorded_at, event_id, payload_type, payload, signature, key_id, \
             prev_hash, entry_hash) VALUES ",
        );
        for row in 0..rows {
            let p = 4 + row * 7;
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "($1,${},$2,${},$3,${},${},${},${},${})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6
            ));
        }
        let statement = self.client.prepare(&sql).await.with_context(|| format!("prepare the {rows}-row INSERT"))?;
        self.inserts.insert(rows, statement.clone());
        Ok(statement)
    }
}

/// An event checked and hashed outside the lock.
pub(crate) struct Prepared {
    pub(crate) event_id: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) signature: Vec<u8>,
    pub(crate) key_id: String,
    pub(crate) payload_hash: Hash32,
}

pub(crate) struct ClientWork {
    pub(crate) session: Session,
    pub(crate) pool: Vec<AppendEvent>,
    pub(crate) batch: usize,
    pub(crate) keys: Arc<HashMap<KeyId, VerifyingKey>>,
    pub(crate) verify: bool,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) exhausted: Arc<AtomicBool>,
    pub(crate) stop_when_empty: bool,
}

pub(crate) struct Outcome {
    pub(crate) events: u64,
    pub(crate) transactions: u64,
    pub(crate) latency: Histogram<u64>,
    pub(crate) verify: Duration,
    pub(crate) end: Instant,
    /// Kept open until the run's CPU and WAL figures are read (a closed backend's CPU time
    /// vanishes from /proc).
    pub(crate) session: Option<Session>,
}

impl ClientWork {
    pub(crate) async fn run(mut self) -> anyhow::Result<Outcome> {
        let mut outcome = Outcome {
            events: 0,
            transactions: 0,
            latency: new_histogram(),
            verify: Duration::ZERO,
            end: Instant::now(),
            session: None,
        };
        let tenant: Arc<str> = Arc::from(self.session.tenant.as_str());
        // Prepare the statements the run will use before the clock matters (the last batch of
        // an --events run may be shorter).
        let full = self.batch.min(MAX_ROWS_PER_INSERT);
        let _ = self.session.insert(full).await?;
        let mut pool = std::mem::take(&mut self.pool).into_iter();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let batch: Vec<AppendEvent> = pool.by_ref().take(self.batch).collect();
            if batch.is_empty() {
                if self.stop_when_empty {
                    self.exhausted.store(true, Ordering::Relaxed);
                    self.stop.store(true, Ordering::Relaxed);
                }
                break;
            }
            let started = Instant::now();
            // The checks are CPU work: off the async workers, as the ledger's callers verify on
            // their own threads, so a task holding the head lock is never queued behind them.
            let (keys, tenant, verify) = (self.keys.clone(), tenant.clone(), self.verify);
            let (prepared, verify) = tokio::task::spawn_blocking(move || prepare(batch, &keys, &tenant, verify))
                .await
                .context("signature check task")??;
            outcome.verify += verify;
            self.append(&prepared).await?;
            outcome.latency.saturating_record((started.elapsed().as_micros() as u64).max(1));
            outcome.events += prepared.len() as u64;
            outcome.transactions += 1;
        }
        outcome.end = Instant::now();
        // Best effort: have this backend flush its statistics (pg_stat_wal) when it goes idle.
        let _ = self.session.client.batch_execute("SELECT pg_stat_force_next_flush()").await;
        outcome.session = Some(self.session);
        Ok(outcome)
    }

    /// One transaction: lock the head, chain and insert the events, move the head, commit.
    pub(crate) async fn append(&mut self, events: &[Prepared]) -> anyhow::Result<()> {
        let result = self.transaction(events).await;
        if result.is_err() {
            let _ = self.session.client.execute(&self.session.rollback, &[]).await;
        }
        result
    }

    pub(crate) async fn transaction(&mut self, events: &[Prepared]) -> anyhow::Result<()> {
        // Statements for the chunk sizes this transaction needs (cached after the first use).
        let mut chunks = Vec::new();
        for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
            chunks.push((self.session.insert(chunk.len()).await?, chunk));
        }
        let session = &self.session;
        let client = &session.client;
        let tenant: &str = &session.tenant;
        let lock_params: [&(dyn ToSql + Sync); 1] = [&tenant];
        let (_, head) =
            futures::try_join!(client.execute(&session.begin, &[]), client.query_one(&session.lock_head, &lock_params))
                .context("BEGIN; SELECT ... FOR UPDATE")?;
        let head_seq: i64 = head.get(0);
        let head_hash: Vec<u8> = head.get(1);
        let head_recorded: SystemTime = head.get(2);
        let mut prev: Hash32 = head_hash.as_slice().try_into().context("heads.entry_hash is not 32 bytes")?;

        // recordedAt: the ledger's clock, never decreasing within a tenant, in whole microseconds
        // (what timestamptz keeps).
        let micros = |t: SystemTime| t.duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let recorded_us = (SystemClock.now_ns() / 1000).max(micros(head_recorded));
        let recorded_at = UNIX_EPOCH + Duration::from_micros(recorded_us);
        let recorded_ns = recorded_us * 1000;

        let first = u64::try_from(head_seq).context("negative head seq")?;
        let mut seqs = Vec::with_capacity(events.len());
        let mut prevs = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let seq = first + i as u64;
            let hash = entry_hash(seq, recorded_ns, &prev, &event.payload_hash);
            seqs.push(seq as i64);
            prevs.push(prev);
            hashes.push(hash);
            prev = hash;
        }
        let payload_type = EVENT_PAYLOAD_TYPE;
        let prev_refs: Vec<&[u8]> = prevs.iter().map(|h| &h[..]).collect();
        let hash_refs: Vec<&[u8]> = hashes.iter().map(|h| &h[..]).collect();
        let mut params: Vec<Vec<&(dyn ToSql + Sync)>> = Vec::with_capacity(chunks.len());
        let mut offset = 0;
        for (_, chunk) in &chunks {
            let mut chunk_params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(3 + 7 * chunk.len());
            chunk_params.push(&tenant);
            chunk_params.push(&recorded_at);
            chunk_params.push(&payload_type);
            for (j, event) in chunk.iter().enumerate() {
                let k = offset + j;
                chunk_params.push(&seqs[k]);
                chunk_params.push(&event.event_id);
                chunk_params.push(&event.payload);
                chunk_params.push(&event.signature);
                chunk_params.push(&event.key_id);
                chunk_params.push(&prev_refs[k]);
                chunk_params.push(&hash_refs[k]);
            }
            offset += chunk.len();
            params.push(chunk_params);
        }
        let new_seq = seqs.last().map_or(head_seq, |s| s + 1);
        let new_hash: &[u8] = &prev;
        // The INSERTs, the head UPDATE and the COMMIT are sent back to back (pipelined: one
        // round trip while the head is locked). Should an INSERT or the UPDATE fail, the
        // server turns the COMMIT into a rollback, and the failure is reported below.
        let inserts = futures::future::try_join_all(
            chunks.iter().zip(&params).map(|((statement, _), p)| client.execute(statement, &p[..])),
        );
        let update_params: [&(dyn ToSql + Sync); 4] = [&tenant, &new_seq, &new_hash, &recorded_at];
        let update = client.execute(&session.update_head, &update_params);
        let commit = client.execute(&session.commit, &[]);
        let (inserted, updated, _) =
            futures::try_join!(inserts, update, commit).context("INSERT INTO events; UPDATE heads; COMMIT")?;
        ensure!(inserted.iter().sum::<u64>() == events.len() as u64, "INSERT wrote {inserted:?} rows");
        ensure!(updated == 1, "UPDATE heads touched {updated} rows");
        Ok(())
    }
}

/// The ledger's checks before the lock: payload type, one signature, key id, body, tenant,
/// known key, envelope bytes and hash, then (optionally) the signatures; returns the time
/// spent verifying signatures.
pub(crate) fn prepare(
    batch: Vec<AppendEvent>,
    keys: &HashMap<KeyId, VerifyingKey>,
    tenant: &str,
    verify: bool,
) -> anyhow::Result<(Vec<Prepared>, Duration)> {
    let mut prepared = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    let mut signatures = Vec::with_capacity(batch.len());
    let mut public_keys = Vec::with_capacity(batch.len());
    for (index, event) in batch.into_iter().enumerate() {
        let envelope = event.envelope;
        ensure!(
            envelope.payload_type == EVENT_PAYLOAD_TYPE,
            "event {index}: payloadType must be {EVENT_PAYLOAD_TYPE:?}"
        );
        let [signature] = envelope.signatures.as_slice() else {
            bail!("event {index}: exactly one signature is required");
        };
        let key_id = KeyId::from_hex(&signature.keyid).with_context(|| format!("event {index}: keyid"))?;
        let sig = Signature::from_slice(&signature.sig).with_context(|| format!("event {index}: signature"))?;
        let parsed = ParsedEvent::parse(&envelope.payload).with_context(|| format!("event {index}: body"))?;
        ensure!(
            parsed.header.tenant == tenant,
            "event {index} is for tenant {:?}, the client appends to {:?}",
            parsed.header.tenant,
            tenant
        );
        let public_key = *keys.get(&key_id).with_context(|| format!("event {index}: unknown key {key_id}"))?;
        if verify {
            messages.push(envelope.signed_bytes());
            signatures.push(sig);
            public_keys.push(public_key);
        }
        let envelope_bytes = envelope.to_bytes();
        let Envelope { payload, signatures: mut sigs, .. } = envelope;
        let signature = sigs.pop().expect("exactly one signature, checked above");
        prepared.push(Prepared {
            event_id: parsed.header.event_id,
            payload,
            signature: signature.sig,
            key_id: signature.keyid,
            payload_hash: payload_hash(&envelope_bytes),
        });
    }
    let started = Instant::now();
    if verify {
        if let Some(index) = ledger::signatures::first_bad_signature(&messages, &signatures, &public_keys) {
            bail!("event {index}: bad signature");
        }
    }
    Ok((prepared, started.elapsed()))
}
