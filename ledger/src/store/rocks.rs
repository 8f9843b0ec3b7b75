//! The RocksDB side of a store: its options (public, so benchmarks of bare RocksDB measure the
//! same configuration) and the WAL sync the anchor relies on before it drops group records.

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use super::layout;

/// Makes everything written to RocksDB so far durable in RocksDB: its WAL buffer flushed and
/// synced (`FlushWAL(true)`), then every WAL file and the directory fsynced here as well, so
/// that nothing depends on which files RocksDB itself would sync. The anchor calls it before
/// it drops group records (a roll, or the rewrite at open).
pub(crate) fn sync_store_wal(db: &DB) -> std::io::Result<()> {
    db.flush_wal(true).map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = db.path();
    for item in std::fs::read_dir(dir)? {
        let item = item?;
        if !item.file_name().to_string_lossy().ends_with(".log") {
            continue;
        }
        match std::fs::File::open(item.path()) {
            Ok(file) => file.sync_data()?,
            // RocksDB deletes a WAL once its memtables are flushed.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Whether RocksDB has computed its CRC32C checksums (WAL records, table blocks) through
/// `rocksdb-crc32c` in this process (the SSE4.2 instruction when the CPU has it), which a binary
/// gets when its build script links it with RocksDB's `crc32c::Extend` wrapped (the server's,
/// the auditor's and the benches' do; ARCHITECTURE.md, "Build"). Meaningful once a store has
/// been written: before that RocksDB has computed none. `false` then means RocksDB's own
/// software CRC32C: slower, with the same results.
pub fn hardware_crc32c() -> bool {
    rocksdb_crc32c::called()
}

/// The RocksDB options of a ledger store (public so benchmarks of bare RocksDB measure the same
/// configuration). Each column family's own options are [`cf_options`].
pub fn db_options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_max_background_jobs(2);
    options.set_bytes_per_sync(1 << 20);
    // Commits write the WAL without a sync (the anchor is the log of record); an anchor roll
    // then syncs it. Starting the WAL's writeback every MiB (`sync_file_range`, no wait) leaves
    // a roll little to flush: p99 at 1 × 64 fell from 7.5–9.3 to 6.1–6.7 ms (BENCHMARKS.md,
    // "Issue 20, seventh session").
    options.set_wal_bytes_per_sync(1 << 20);
    // Restart time after a crash is WAL replay plus a flush of what it replayed. Left alone, the
    // WAL of eight column families grows to gigabytes before RocksDB flushes; bounding it forces
    // the column families holding old WAL to flush, which bounds recovery. Every commit group
    // writes every column family but `keys`, so this bound, not their write buffers, is what
    // flushes the small ones (tree, event ids, streams) and sets how many level-0 files they
    // make; each of those files is then merged with the whole of their level 1 (see
    // `cf_options`). 128 MiB instead of 64 halves those merges; a restart after `kill -9` at 16
    // × 64 took 109–158 ms against 55–105 ms (BENCHMARKS.md, "Issue 20, fifteenth session").
    options.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    // A WAL record that fails its checksum is an error, never the end of the log: the default
    // (point-in-time recovery) silently drops it and every record after it, acknowledged or
    // not. A record cut short at the very end (a write the process never finished) is
    // tolerated; a damaged record is accepted as the end of the log only when the anchor
    // proves nothing acknowledged is at or after it (`Ledger::open`). docs/format.md,
    // "Recovery".
    options.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    options.set_paranoid_checks(true);
    quiet_info_log(&mut options);
    options
}

/// RocksDB's bound on the WAL ([`db_options`]).
pub(crate) const MAX_TOTAL_WAL_BYTES: u64 = 128 << 20;

/// How many level-0 files of a column family start a compaction into level 1 ([`cf_options`];
/// RocksDB's default is 4).
pub(crate) const L0_COMPACTION_TRIGGER: i32 = 8;

/// The block cache shared by the column families of one open store (RocksDB's default is a
/// separate 8 MiB cache per column family). One per open, never per process: a store reopened
/// in the same process must read its files again, or damage made to them meanwhile would be
/// served from the previous open's cached blocks instead of detected.
pub const BLOCK_CACHE_BYTES: usize = 64 << 20;

/// The column families of a ledger store, in the order of `docs/format.md`.
pub const COLUMN_FAMILIES: [&str; 8] = layout::ALL_CFS;

/// Every column family with its [`cf_options`], all sharing one new block cache of
/// [`BLOCK_CACHE_BYTES`]: with [`db_options`], what a ledger store's RocksDB is opened with
/// (public for the same reason). Call it once per open.
pub fn column_families() -> impl Iterator<Item = ColumnFamilyDescriptor> {
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    COLUMN_FAMILIES.into_iter().map(move |name| ColumnFamilyDescriptor::new(name, cf_options(name, &cache)))
}

/// The options of one column family of a ledger store (public for the same reason as
/// [`db_options`]). The two indexes every append looks up — event ids (idempotency) and stream
/// heads (optimistic concurrency) — get a bloom filter in their table files and in their
/// memtable, since nearly every lookup on the append path is a miss (a new event id, often a
/// new stream) that would otherwise search the memtable's skiplist and every level's index.
/// (The key registry is read by prefix scans at open and by `fsck`, never on the append path.)
/// Table options only change how files are read: a store written with other options opens
/// with these, and the other way round.
pub fn cf_options(name: &str, cache: &rocksdb::Cache) -> Options {
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    let mut options = Options::default();
    if matches!(name, layout::CF_EVENT_IDS | layout::CF_STREAM_HEADS) {
        whole_key_filters(&mut options, &mut table);
    }
    options.set_block_based_table_factory(&table);
    // Every flush of the tree, the event ids and the streams spans nearly their whole key range:
    // event ids are random, a stream's rows sit under its name, and a tree key is
    // `tid || level || index`, so one flush holds new nodes of every level, between which lie
    // all the older nodes of the levels above the leaves. Each compaction of level 0 into level
    // 1 therefore rewrites nearly all of level 1, and its cost grows with the log: at 64 × 64
    // it was 1.8 µs of CPU per event over a run of 1M events and 5.1 µs over 4M. Twice as many
    // level-0 files per compaction halve the number of those rewrites (with the WAL bound
    // above, 2.7–2.8 µs per event over 4M: BENCHMARKS.md, "Issue 20, fifteenth session").
    // `entries` is the same once several tenants are busy: its keys grow within each tenant's
    // range, so the files of one busy tenant's log move down without a rewrite, but each flush
    // of sixteen busy tenants spans all their ranges. With sixteen, 8 took 0.7–0.9 µs per event
    // off the compaction thread's 5.0–5.2 ("sixteenth session"). A point lookup may look at up
    // to twice as many level-0 files; the event ids' have bloom filters, and entries read by
    // seq under load answered within the runs' spread either way. The other families (meta,
    // stream heads, checkpoints, keys) flush tens of KiB at most and take the same trigger.
    options.set_level_zero_file_num_compaction_trigger(L0_COMPACTION_TRIGGER);
    options
}

/// Bloom filters over whole keys, for data whose point lookups are mostly misses: in the table
/// files (10 bits a key) and in the memtables (5 % of their size), so a miss rarely searches a
/// skiplist or reads an index block per level. Iterators are unaffected (no prefix extractor).
/// Public for the projection store, whose fold looks up releases it has never seen. The caller
/// installs `table` afterwards (`Options::set_block_based_table_factory`).
pub fn whole_key_filters(options: &mut Options, table: &mut rocksdb::BlockBasedOptions) {
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(true);
    options.set_memtable_whole_key_filtering(true);
    options.set_memtable_prefix_bloom_ratio(0.05);
}

/// Keeps RocksDB's own info `LOG` file to fatal messages. Debian's librocksdb is built with
/// assertions on, and its logger asserts when it writes again after a failed write: on a full
/// disk the first log line that fails (ENOSPC) makes the next one — a flush, a compaction, or
/// the "shutting down" line when the store closes — abort the whole process. Every RocksDB
/// error still reaches our code as a status and is logged through `tracing`.
pub fn quiet_info_log(options: &mut Options) {
    options.set_log_level(rocksdb::LogLevel::Fatal);
    options.set_keep_log_file_num(2);
}
