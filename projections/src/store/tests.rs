//! Tests of the projection store's rows: states saved and loaded back, failed saves, the
//! release lookups' filters (the board's rows are in `board_tests.rs`).

use super::*;
use crate::state::{HistoryItem, HistoryKind, ReleaseState, TenantState};

#[test]
fn a_replaced_state_loads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut state = TenantState::new("t1");
    state.meta.position = 42;
    // More than 256 items: history row indexes contain zero bytes.
    let items: Vec<HistoryItem> = (0..300)
        .map(|i| HistoryItem {
            seq: i,
            recorded_at: i * 10,
            release_id: format!("r{i}"),
            version: "1.0.0".into(),
            event: HistoryKind::Approved,
        })
        .collect();
    for item in items {
        state.meta.history.push("api|prod".into(), item);
    }
    state.releases.insert("r1".into(), ReleaseState { release_id: "r1".into(), ..ReleaseState::default() });
    let active = ReleaseState { release_id: "r2".into(), evaluation_requested: true, ..ReleaseState::default() };
    assert!(active.is_active());
    state.releases.insert("r2".into(), active.clone());
    let owed = |n: u64| Outgoing::new("r1".into(), format!("{{\"n\":{n}}}"), None, n, n);
    state.meta.outbox.insert("decision:r1:1".into(), owed(1));
    state.meta.outbox.insert("decision:r1:2".into(), owed(2));
    store.replace(&mut state).unwrap();
    // A save writes the outbox's changes only: one folded back, one new.
    state.meta.outbox.remove("decision:r1:1");
    state.meta.outbox.insert("decision:r1:3".into(), owed(3));
    store.save(&mut state).unwrap();
    let mut other = TenantState::new("t2");
    other.meta.position = 7;
    store.replace(&mut other).unwrap();
    drop(store);

    let store = ProjectionStore::open(dir.path()).unwrap();
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded.len(), 2);
    // Only the active release is loaded; the other is read back on demand.
    assert_eq!(loaded["t1"].releases.keys().collect::<Vec<_>>(), ["r2"]);
    assert_eq!(store.release("t1", "r1").unwrap(), state.releases.get("r1").cloned());
    assert_eq!(store.release("t1", "r9").unwrap(), None);
    let mut whole = loaded["t1"].clone();
    whole.releases.insert("r1".into(), store.release("t1", "r1").unwrap().unwrap());
    assert_eq!(whole, state);
    // Listed in id order, after a given id, decoded only when asked.
    let listed: Vec<_> = store.releases_after("t1", None, |id| id == "r1").map(Result::unwrap).collect();
    assert_eq!(listed, [("r1".to_owned(), state.releases.get("r1").cloned()), ("r2".to_owned(), None)]);
    let after: Vec<_> = store.releases_after("t1", Some("r1"), |_| true).map(|r| r.unwrap().0).collect();
    assert_eq!(after, ["r2"]);
    // A release that stops being active loses its marker with the next save.
    state.releases.get_mut("r2").unwrap().status = crate::state::ReleaseStatus::Published;
    state.releases.get_mut("r2").unwrap().deployment_started = Some(9);
    state.mark_dirty("r2");
    store.save(&mut state).unwrap();
    assert!(store.load_all().unwrap()["t1"].releases.is_empty());
    assert_eq!(loaded["t1"].meta.outbox.keys().collect::<Vec<_>>(), ["decision:r1:2", "decision:r1:3"]);
    assert_eq!(loaded["t2"], other);
    store.clear().unwrap();
    assert!(store.load_all().unwrap().is_empty());
}

/// Rows are MessagePack (format 7): what that encoding could get wrong comes back as it went
/// in. A meta with a policy whose free-form JSON schemas hold negative, large and fractional
/// numbers, nulls, nesting and escapes, a Rego module, a recurring freeze and a one-off one
/// (recompiled when read), keys revoked and not, anomalies; history items, an owed append, the
/// counts and a board row.
#[test]
fn every_kind_of_row_reads_back_as_it_went_in() {
    use crate::freeze::{ChangeFreezeDeclaredData, Freeze, Recurrence};
    use crate::policy::ReleasePolicy;
    use crate::rego::RegoPolicy;
    use crate::state::{Anomaly, FreezeRecord, KeyInfo, PolicyRecord, ReleaseStatus};

    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut state = TenantState::new("t1");
    state.meta.position = 9;
    state.meta.last_recorded_at = u64::MAX;
    let schema = serde_json::json!({
        "type": "object",
        "numbers": [0, -1, i64::MIN, u64::MAX, 1.5, -0.25, 1e300, 5e-324],
        "nested": {"null": null, "empty": {}, "list": [[], [true, false]], "text": "tab\t \"quote\" \u{e9} \u{1F600}"},
    });
    let policy: ReleasePolicy = serde_json::from_value(serde_json::json!({"version": 3, "environments": {}})).unwrap();
    let policy = ReleasePolicy {
        rego: Some(RegoPolicy {
            modules: [("gate.rego".to_owned(), "package gates.x\nverdict := \"pass\"\n".to_owned())].into(),
            instruction_limit: Some(20_000),
        }),
        evidence_schemas: [("slo-report".to_owned(), schema)].into(),
        ..policy
    };
    state.meta.policy = Some(PolicyRecord { seq: 3, policy });
    let one_off = ChangeFreezeDeclaredData {
        freeze_id: "train".into(),
        environments: vec!["prod".into()],
        reason: "release train".into(),
        from: Some("2025-01-02T00:00:00Z".into()),
        to: Some("2025-01-03T00:00:00Z".into()),
        recurrence: None,
    };
    let recurring = ChangeFreezeDeclaredData {
        freeze_id: "weekend".into(),
        environments: Vec::new(),
        reason: String::new(),
        from: None,
        to: None,
        recurrence: Some(Recurrence {
            rrule: Some("FREQ=WEEKLY;BYDAY=SA".into()),
            cron: None,
            duration_seconds: 172_800,
            time_zone: "Europe/Berlin".into(),
            start: None,
        }),
    };
    for (seq, data) in [(4, one_off), (5, recurring)] {
        let id = data.freeze_id.clone();
        let freeze = Freeze::compile(data, "2025-01-01T09:00:00Z").unwrap();
        state.meta.freezes.insert(id, FreezeRecord { seq, freeze });
    }
    state.meta.keys.insert("ab".repeat(16), KeyInfo { agent_id: "ci".into(), roles: vec![], revoked_at: None });
    state.meta.keys.insert(
        "cd".repeat(16),
        KeyInfo { agent_id: "qa".into(), roles: vec!["QA".into(), "KeyAdmin".into()], revoked_at: Some(7) },
    );
    state.meta.anomalies.push(Anomaly { seq: 8, detail: "body does not parse: \"\u{0}\"".into() });
    state.meta.history.push(
        "api|prod".into(),
        HistoryItem {
            seq: 6,
            recorded_at: 60,
            release_id: "r1".into(),
            version: "1.0.0".into(),
            event: HistoryKind::Published,
        },
    );
    state.meta.outbox.insert("decision:r1:6".into(), Outgoing::new("r1".into(), "{\"n\":6}".into(), Some(-5), 6, 60));
    let release = ReleaseState {
        release_id: "r1".into(),
        status: ReleaseStatus::Delayed,
        retry: Some((-5, 6)),
        invalidated: [(3, 9), (4, u64::MAX)].into(),
        updated_at: 60,
        ..ReleaseState::default()
    };
    state.releases.insert("r1".into(), release.clone());
    // Every row written, history and owed appends included.
    store.replace(&mut state).unwrap();
    drop(store);

    let store = ProjectionStore::open(dir.path()).unwrap();
    let loaded = store.load_all().unwrap();
    let whole = store.whole(&loaded["t1"]).unwrap();
    assert_eq!(whole, state);
    assert_eq!(serde_json::to_string(&whole.meta).unwrap(), serde_json::to_string(&state.meta).unwrap());
    assert_eq!(store.owed("t1", "decision:r1:6").unwrap().as_ref(), state.meta.outbox.get("decision:r1:6"));
    assert_eq!(store.status_counts("t1").unwrap(), StatusCounts::of([ReleaseStatus::Delayed]));
    let board = store.board("t1", &BoardQuery::default()).unwrap();
    assert_eq!(board.rows, [BoardRow::of(&release)]);
}

/// The options string RocksDB recorded for the store's one column family (its newest
/// OPTIONS file).
fn recorded_options(dir: &Path) -> String {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .map(|item| item.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("OPTIONS-"))
        .max_by_key(|name| name["OPTIONS-".len()..].parse::<u64>().unwrap())
        .unwrap();
    std::fs::read_to_string(dir.join(newest)).unwrap()
}

/// Release lookups, most of them misses for a new release, go through whole-key bloom
/// filters in the memtable and the table files: RocksDB records both, and hits and misses
/// answer the same from the memtable, after a reopen, and from table files.
#[test]
fn release_lookups_answer_through_bloom_filters_wherever_the_rows_are() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let options = recorded_options(dir.path());
    for line in ["filter_policy=bloomfilter", "whole_key_filtering=true", "memtable_whole_key_filtering=true"] {
        assert!(options.lines().any(|l| l.trim() == line), "{line} not in the OPTIONS file");
    }
    let mut state = TenantState::new("t1");
    for i in 0..400 {
        let id = format!("rel-{i:04}");
        state.releases.insert(id.clone(), ReleaseState { release_id: id.clone(), ..ReleaseState::default() });
        state.mark_dirty(&id);
    }
    store.save(&mut state).unwrap();
    let check = |store: &ProjectionStore, place: &str| {
        for i in 0..400 {
            let id = format!("rel-{i:04}");
            assert_eq!(store.release("t1", &id).unwrap(), state.releases.get(&id).cloned(), "{place}: {id}");
            assert_eq!(store.release("t1", &format!("new-{i:04}")).unwrap(), None, "{place}");
            assert_eq!(store.release("t2", &id).unwrap(), None, "{place}");
        }
    };
    check(&store, "memtable");
    drop(store);
    let store = ProjectionStore::open(dir.path()).unwrap();
    check(&store, "reopened");
    store.db.flush().unwrap();
    let tables = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "sst"))
        .count();
    assert!(tables > 0, "the flush wrote a table file");
    check(&store, "table files");
}

/// A value whose serialisation fails.
struct Unserialisable;

impl serde::Serialize for Unserialisable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot"))
    }
}

/// Issue 15, item 7: a serialisation failure used to become an empty row (which does not
/// decode at the next load, and a store that does not decode is emptied). Checked by
/// putting `unwrap_or_default()` back in `encode_at`: this test then fails.
#[test]
fn a_value_that_does_not_serialise_is_an_error_not_an_empty_row() {
    let failed = encode_at(b"t1\0m", &Unserialisable);
    assert!(matches!(&failed, Err(StoreError::Encode { key, .. }) if key == "t1/m"), "{failed:?}");
    assert!(!failed.unwrap_err().is_corruption());
}

/// Issue 15, item 7: a save that fails writes nothing and keeps its change set, so the
/// next save stores it (a failed save used to consume the change set: the worker's
/// `drop_owed` ignored that failure and the drop was never stored). Checked by removing
/// the `restore_dirty` call from `save`: the release is then missing after the second save.
#[test]
fn a_failed_save_writes_nothing_and_keeps_its_changes_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut state = TenantState::new("t1");
    state.meta.position = 1;
    store.save(&mut state).unwrap();
    state.meta.position = 2;
    state.releases.insert("r1".into(), ReleaseState { release_id: "r1".into(), ..ReleaseState::default() });
    state.mark_dirty("r1");
    state.meta.outbox.insert("decision:r1:1".into(), Outgoing::new("r1".into(), "{}".into(), None, 1, 1));

    FAIL_ENCODING.set(true);
    let failed = store.save(&mut state);
    FAIL_ENCODING.set(false);
    assert!(matches!(failed, Err(StoreError::Encode { .. })), "{failed:?}");
    // Nothing was written: the store loads as of the last good save.
    let loaded = store.load_all().unwrap();
    assert_eq!(loaded["t1"].meta.position, 1);
    assert_eq!(store.release("t1", "r1").unwrap(), None);
    assert!(store.owed("t1", "decision:r1:1").unwrap().is_none());

    store.save(&mut state).unwrap();
    assert_eq!(store.load_all().unwrap()["t1"].meta.position, 2);
    assert_eq!(store.release("t1", "r1").unwrap(), state.releases.get("r1").cloned());
    assert!(store.owed("t1", "decision:r1:1").unwrap().is_some());
}
