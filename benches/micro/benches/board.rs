//! What the projection store's board (`projections::board`) costs a web console at 100,000
//! releases of one tenant, stored as the worker stores them (saves of 1,024 changed releases).
//!
//! - `board/page50/every`: the first 50 rows of every release's index, newest first.
//! - `board/page50/status`: the first 50 of one status (a seventh of the releases).
//! - `board/page50/every_deep`: 50 rows from a cursor 50,000 rows in (a seek, not a skip).
//! - `board/scan_bound/rare_environment`: a filter nothing matches, so the call looks at its
//!   whole bound (`SCAN_BOUND`, 20,000 rows) and returns a cursor: the worst single call.
//! - `board/status_counts`: one row, however many releases.
//! - `board/save1024`: a save of 1,024 releases that each change status and time (release row,
//!   board rows, pointer read and rewrite, the old position's rows deleted, the counts).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use projections::board::BoardQuery;
use projections::catalogue::{IntentData, ModuleVersion};
use projections::state::{IntentRecord, ReleaseState, ReleaseStatus};
use projections::store::ProjectionStore;
use projections::TenantState;

const TENANT: &str = "bench";
const RELEASES: usize = 100_000;
const SAVE: usize = 1024;
const STATUSES: [ReleaseStatus; 7] = projections::board::STATUSES;

fn release(n: usize, at: u64) -> ReleaseState {
    let intent = IntentRecord {
        seq: n as u64,
        recorded_at: at,
        key_id: "k".into(),
        agent_id: "ci".into(),
        trace_id: None,
        data: IntentData {
            environment: ["prod", "staging", "dev"][n % 3].into(),
            modules: vec![ModuleVersion { name: format!("module-{}", n % 40), version: "1.0.0".into(), digest: None }],
            requires_approval: None,
            project_id: None,
            triggered_by: None,
        },
    };
    ReleaseState {
        release_id: format!("release-{n:07}"),
        intent: Some(intent),
        status: STATUSES[n % STATUSES.len()],
        created_at: at,
        updated_at: at,
        ..ReleaseState::default()
    }
}

/// A store holding [`RELEASES`] releases, saved [`SAVE`] at a time, none left in memory.
fn stored(dir: &std::path::Path) -> (ProjectionStore, TenantState) {
    let store = ProjectionStore::open(dir).expect("open");
    let mut state = TenantState::new(TENANT);
    for n in 0..RELEASES {
        let release = release(n, 1_000_000 + n as u64);
        state.mark_dirty(&release.release_id);
        state.releases.insert(release.release_id.clone(), release);
        if (n + 1) % SAVE == 0 || n + 1 == RELEASES {
            store.save(&mut state).expect("save");
            state.evict(0);
        }
    }
    (store, state)
}

fn board(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, mut state) = stored(dir.path());
    let mut group = c.benchmark_group("board");
    let first = |query: &BoardQuery| {
        let page = store.board(TENANT, query).expect("board");
        assert!(!page.rows.is_empty() || page.next.is_some());
        page
    };
    group.bench_function("page50/every", |b| b.iter(|| first(black_box(&BoardQuery::default()))));
    let delayed = BoardQuery { status: Some(ReleaseStatus::Delayed), ..BoardQuery::default() };
    group.bench_function("page50/status", |b| b.iter(|| first(black_box(&delayed))));
    // A cursor 50,000 rows in: the 1,000th page of 50.
    let mut deep = BoardQuery { limit: 500, ..BoardQuery::default() };
    for _ in 0..100 {
        deep.after = store.board(TENANT, &deep).expect("board").next;
    }
    deep.limit = 50;
    group.bench_function("page50/every_deep", |b| b.iter(|| first(black_box(&deep))));
    let rare = BoardQuery { environment: Some("nowhere".into()), ..BoardQuery::default() };
    assert_eq!(first(&rare).scanned, projections::board::SCAN_BOUND);
    group.bench_function("scan_bound/rare_environment", |b| b.iter(|| first(black_box(&rare))));
    group.bench_function("status_counts", |b| b.iter(|| store.status_counts(black_box(TENANT)).expect("counts").total));
    assert_eq!(store.status_counts(TENANT).expect("counts").total, RELEASES as u64);
    // Each iteration moves 1,024 releases to the next status, at a later time.
    let mut round = 0u64;
    group.bench_function("save1024", |b| {
        b.iter(|| {
            round += 1;
            for n in 0..SAVE {
                let mut moved = release(n * 97, 2_000_000 + round);
                moved.status = STATUSES[(n * 97 + round as usize) % STATUSES.len()];
                state.mark_dirty(&moved.release_id);
                state.releases.insert(moved.release_id.clone(), moved);
            }
            store.save(&mut state).expect("save");
            state.evict(0);
        })
    });
    group.finish();
    assert_eq!(store.status_counts(TENANT).expect("counts").total, RELEASES as u64);
}

criterion_group! {
    name = benches;
    config = release_ledger_benches::config();
    targets = board
}
criterion_main!(benches);
