//! The PostgreSQL server: its settings, CPU, WAL counters, and the chain re-check.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context as _};
use bench_harness::procfs::{clock_ticks_per_second, Stat};
use futures::TryStreamExt as _;
use ledger::hash::{entry_hash, payload_hash, Hash32, GENESIS_PREV_HASH};
use ledger::Envelope;
use serde::Serialize;
use tokio_postgres::Client;

/// The connection string with any `password=...` value blanked, for the report.
pub(crate) fn redact_password(conn: &str) -> String {
    conn.split_whitespace()
        .map(|part| if part.starts_with("password=") { "password=***" } else { part })
        .collect::<Vec<_>>()
        .join(" ")
}

/// User + system CPU seconds of process `pid` ("self" for this one), from `/proc/PID/stat`.
pub(crate) fn process_cpu_seconds(pid: &str) -> Option<f64> {
    proc_stat(pid).map(|stat| stat.cpu_ticks as f64 / clock_ticks_per_second() as f64)
}

/// The difference of two readings, when both were taken.
pub(crate) fn delta(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// `/proc/PID/stat`, if that process exists and is visible.
fn proc_stat(pid: &str) -> Option<Stat> {
    Stat::read(&format!("/proc/{pid}")).ok()
}

/// The server: version, the settings that decide durability and speed, and (when it runs on
/// this machine and `/proc` shows it) its postmaster's pid, for CPU accounting.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServerInfo {
    pub(crate) version: String,
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) postmaster_pid: Option<u32>,
}

/// The settings the report quotes.
pub(crate) const SETTINGS: [&str; 14] = [
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "commit_delay",
    "commit_siblings",
    "wal_buffers",
    "wal_writer_delay",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "data_checksums",
    "wal_level",
    "listen_addresses",
];

impl ServerInfo {
    pub(crate) async fn read(client: &Client) -> anyhow::Result<Self> {
        let version: String = client.query_one("SHOW server_version", &[]).await.context("SHOW server_version")?.get(0);
        let names: Vec<&str> = SETTINGS.to_vec();
        let rows = client
            .query("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name", &[&names])
            .await
            .context("read pg_settings")?;
        let settings: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let setting = |name: &str| settings.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        for required in ["fsync", "synchronous_commit", "full_page_writes"] {
            ensure!(
                setting(required) == Some("on"),
                "the server runs with {required}={}; the baseline needs durable commits (fsync, synchronous_commit \
                 and full_page_writes on): use benches/scripts/postgres.sh",
                setting(required).unwrap_or("?")
            );
        }
        // The postmaster's pid is the first line of DATA/postmaster.pid (readable when local and root or owner).
        let data_dir: Option<String> = match client.query_one("SHOW data_directory", &[]).await {
            Ok(row) => Some(row.get(0)),
            Err(_) => None,
        };
        let postmaster_pid = data_dir
            .and_then(|dir| std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok())
            .and_then(|text| text.lines().next()?.trim().parse().ok())
            .filter(|pid: &u32| proc_stat(&pid.to_string()).is_some());
        Ok(Self { version, settings, postmaster_pid })
    }

    pub(crate) fn settings_line(&self) -> String {
        self.settings.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(" ")
    }

    /// CPU seconds of the postmaster and all its children (backends, WAL writer, checkpointer...).
    pub(crate) fn cpu_seconds(&self) -> Option<f64> {
        let postmaster = self.postmaster_pid?;
        let mut ticks = proc_stat(&postmaster.to_string())?.cpu_ticks;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
                continue;
            };
            if let Some(stat) = proc_stat(pid) {
                if stat.ppid == postmaster {
                    ticks += stat.cpu_ticks;
                }
            }
        }
        Some(ticks as f64 / clock_ticks_per_second() as f64)
    }
}

/// `pg_stat_wal` counters (PostgreSQL 14+); flushed by each backend when it goes idle, so
/// approximate at the edges of a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct WalStats {
    pub(crate) records: i64,
    pub(crate) full_page_images: i64,
    pub(crate) bytes: i64,
    pub(crate) writes: i64,
    pub(crate) syncs: i64,
}

impl WalStats {
    pub(crate) async fn read(client: &Client) -> Option<Self> {
        let _ = client.batch_execute("SELECT pg_stat_force_next_flush()").await;
        let row = client
            .query_one("SELECT wal_records, wal_fpi, wal_bytes::bigint, wal_write, wal_sync FROM pg_stat_wal", &[])
            .await
            .ok()?;
        Some(Self {
            records: row.get(0),
            full_page_images: row.get(1),
            bytes: row.get(2),
            writes: row.get(3),
            syncs: row.get(4),
        })
    }

    pub(crate) fn minus(&self, before: &Self) -> Self {
        Self {
            records: self.records - before.records,
            full_page_images: self.full_page_images - before.full_page_images,
            bytes: self.bytes - before.bytes,
            writes: self.writes - before.writes,
            syncs: self.syncs - before.syncs,
        }
    }
}

/// Re-reads every row of `tenants` in seq order and re-checks the chain against the heads:
/// contiguous seqs, prevHash links, entryHash recomputed from the stored columns (the
/// envelope rebuilt from payload type, payload, key id and signature), recordedAt never
/// decreasing. Returns the number of entries checked.
pub(crate) async fn check_chain(client: &Client, tenants: &[String]) -> anyhow::Result<u64> {
    let mut checked = 0;
    for tenant in tenants {
        let rows = client
            .query_raw(
                "SELECT seq, recorded_at, payload_type, payload, signature, key_id, prev_hash, entry_hash \
                 FROM events WHERE tenant = $1 ORDER BY seq",
                [tenant],
            )
            .await
            .context("read the events back")?;
        futures::pin_mut!(rows);
        let mut expected_seq: i64 = 0;
        let mut prev: Hash32 = GENESIS_PREV_HASH;
        let mut last_recorded = 0u64;
        while let Some(row) = rows.try_next().await.context("read the events back")? {
            let seq: i64 = row.get(0);
            ensure!(seq == expected_seq, "{tenant}: seq {seq} where {expected_seq} was expected");
            let recorded: SystemTime = row.get(1);
            let recorded_ns = recorded
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_micros() as u64 * 1000)
                .context("recorded_at before the epoch")?;
            ensure!(recorded_ns >= last_recorded, "{tenant}: recorded_at decreases at seq {seq}");
            let envelope = Envelope {
                payload_type: row.get(2),
                payload: row.get(3),
                signatures: vec![ledger::Signature { keyid: row.get(5), sig: row.get(4) }],
            };
            let stored_prev: Vec<u8> = row.get(6);
            let stored_hash: Vec<u8> = row.get(7);
            ensure!(stored_prev == prev, "{tenant}: prev_hash of seq {seq} is not the previous entry_hash");
            let hash = entry_hash(seq as u64, recorded_ns, &prev, &payload_hash(&envelope.to_bytes()));
            ensure!(stored_hash == hash, "{tenant}: entry_hash of seq {seq} does not re-hash");
            prev = hash;
            last_recorded = recorded_ns;
            expected_seq += 1;
            checked += 1;
        }
        let head = client
            .query_one("SELECT seq, entry_hash FROM heads WHERE tenant = $1", &[tenant])
            .await
            .context("read the head")?;
        let (head_seq, head_hash): (i64, Vec<u8>) = (head.get(0), head.get(1));
        ensure!(head_seq == expected_seq && head_hash == prev, "{tenant}: the head does not match the last entry");
    }
    Ok(checked)
}
