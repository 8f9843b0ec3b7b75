//! The board's rows against what every release says: after a random-ish workload of saves,
//! status changes, evictions, a rebuild and a failed save, every listing (paged, filtered,
//! bounded) equals the releases filtered and sorted, and the counts equal theirs.

use super::*;
use crate::board::{BoardPage, BoardQuery, BoardRow, StatusCounts, STATUSES};
use crate::catalogue::{IntentData, ModuleVersion};
use crate::decision::{DecisionData, DecisionStatus};
use crate::state::{IntentRecord, ReleaseState, ReleaseStatus, TenantState};

const TENANT: &str = "t1";
const ENVIRONMENTS: [&str; 3] = ["prod", "staging", "eu/prod"];
const MODULES: [&str; 4] = ["api", "web", "db", "worker"];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// A tenant's releases changing at random, saved every few steps, the inactive ones leaving
/// memory after each save as the worker's do.
struct Workload {
    rng: Rng,
    state: TenantState,
    ids: Vec<String>,
    clock: u64,
}

impl Workload {
    fn new(seed: u64) -> Self {
        Self { rng: Rng(seed), state: TenantState::new(TENANT), ids: Vec::new(), clock: 1_000 }
    }

    /// A release at a random status, environment, modules and decision, updated at `at`.
    fn randomise(&mut self, release: &mut ReleaseState, at: u64) {
        let rng = &mut self.rng;
        release.status = STATUSES[rng.below(STATUSES.len())];
        if release.intent.is_none() || rng.chance(10) {
            // Some releases never declare an intent (evidence only): no environment, no modules.
            release.intent = (!rng.chance(10)).then(|| {
                let modules = (0..1 + rng.below(3))
                    .map(|_| ModuleVersion {
                        name: MODULES[rng.below(4)].into(),
                        version: "1.0.0".into(),
                        digest: None,
                    })
                    .collect();
                IntentRecord {
                    seq: at,
                    recorded_at: at,
                    key_id: "k".into(),
                    agent_id: "ci".into(),
                    trace_id: None,
                    data: IntentData {
                        environment: ENVIRONMENTS[rng.below(3)].into(),
                        modules,
                        requires_approval: None,
                        project_id: None,
                        triggered_by: None,
                    },
                }
            });
        }
        release.decision = rng.chance(70).then(|| DecisionData {
            status: DecisionStatus::Delayed,
            policy_version: None,
            evaluated_at: String::new(),
            trigger: at,
            evidence: Vec::new(),
            gates: Vec::new(),
            reasons: Vec::new(),
            retry_after: rng.chance(50).then(|| format!("2026-05-23T09:{:02}:00Z", rng.below(60))),
            retryable: true,
            suggested_fix: None,
            risk_score: u32::try_from(rng.below(101)).unwrap(),
            risk_factors: Vec::new(),
        });
        // Active ones stay in memory; the rest may leave it.
        release.evaluation_requested = rng.chance(30);
        if release.created_at == 0 {
            release.created_at = at;
        }
        release.updated_at = at;
    }

    /// One change: a new release, or one changed later or at the same time (a re-evaluation
    /// changes the status, not `updatedAt`). Times repeat, so ties are ordered by id.
    fn step(&mut self, store: &ProjectionStore) {
        if self.rng.chance(50) {
            self.clock += u64::try_from(self.rng.below(3)).unwrap();
        }
        let at = self.clock;
        let mut release = if self.ids.is_empty() || self.rng.chance(35) {
            let id = format!("r{}", self.ids.len());
            self.ids.push(id.clone());
            ReleaseState { release_id: id, ..ReleaseState::default() }
        } else {
            let id = self.ids[self.rng.below(self.ids.len())].clone();
            match self.state.releases.get(&id) {
                Some(release) => release.clone(),
                None => store.release(TENANT, &id).unwrap().unwrap(),
            }
        };
        let at = if release.updated_at != 0 && self.rng.chance(25) { release.updated_at } else { at };
        self.randomise(&mut release, at);
        let id = release.release_id.clone();
        self.state.releases.insert(id.clone(), release);
        self.state.mark_dirty(&id);
    }

    fn save(&mut self, store: &ProjectionStore) {
        store.save(&mut self.state).unwrap();
        self.state.evict(5);
    }

    fn run(&mut self, store: &ProjectionStore, steps: usize) {
        for _ in 0..steps {
            self.step(store);
            if self.rng.chance(15) {
                self.save(store);
            }
        }
        self.save(store);
    }
}

/// The listing a query must give: every release of `whole` that matches, newest first, then
/// by id.
fn expected(whole: &TenantState, query: &BoardQuery) -> Vec<BoardRow> {
    let mut rows: Vec<BoardRow> = whole.releases.values().map(BoardRow::of).filter(|row| query.matches(row)).collect();
    rows.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.release_id.cmp(&b.release_id)));
    rows
}

/// Every page of a listing, concatenated, each page checked against the bounds.
fn listing(query: &BoardQuery, bound: u64, page: impl Fn(&BoardQuery) -> BoardPage) -> Vec<BoardRow> {
    let mut query = query.clone();
    let mut rows = Vec::new();
    for _ in 0..100_000 {
        let got = page(&query);
        assert!(got.rows.len() <= query.page_size(), "{query:?}: a page of {}", got.rows.len());
        assert!(got.scanned <= bound, "{query:?}: scanned {}", got.scanned);
        assert!(got.scanned >= got.rows.len() as u64);
        rows.extend(got.rows);
        match got.next {
            Some(next) => query.after = Some(next),
            None => return rows,
        }
    }
    panic!("{query:?}: the listing does not end");
}

/// The queries every check runs: each filter alone and some together, page sizes of 1 to the
/// default.
fn queries(whole: &TenantState) -> Vec<BoardQuery> {
    let times: Vec<u64> = whole.releases.values().map(|r| r.updated_at).collect();
    let (oldest, newest) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
    let middle = oldest + (newest - oldest) / 2;
    let mut queries = vec![
        BoardQuery::default(),
        BoardQuery { limit: 1, ..BoardQuery::default() },
        BoardQuery { limit: 7, ..BoardQuery::default() },
        BoardQuery { environment: Some("prod".into()), limit: 3, ..BoardQuery::default() },
        BoardQuery { environment: Some("eu/prod".into()), ..BoardQuery::default() },
        BoardQuery { module: Some("db".into()), limit: 4, ..BoardQuery::default() },
        BoardQuery { id_prefix: Some("r1".into()), limit: 5, ..BoardQuery::default() },
        BoardQuery { id_prefix: Some("r".into()), limit: 9, ..BoardQuery::default() },
        BoardQuery { id_prefix: Some("x".into()), ..BoardQuery::default() },
        BoardQuery { updated_from: Some(middle), limit: 6, ..BoardQuery::default() },
        BoardQuery { updated_to: Some(middle), limit: 6, ..BoardQuery::default() },
        BoardQuery { updated_from: Some(middle), updated_to: Some(middle + 1), limit: 2, ..BoardQuery::default() },
        BoardQuery { updated_to: Some(0), ..BoardQuery::default() },
        BoardQuery { updated_from: Some(newest + 1), ..BoardQuery::default() },
        BoardQuery {
            environment: Some("staging".into()),
            module: Some("api".into()),
            updated_from: Some(oldest + 1),
            updated_to: Some(newest),
            limit: 2,
            ..BoardQuery::default()
        },
    ];
    for (n, status) in STATUSES.into_iter().enumerate() {
        queries.push(BoardQuery { status: Some(status), limit: 1 + n * 3, ..BoardQuery::default() });
        queries.push(BoardQuery {
            status: Some(status),
            environment: Some(ENVIRONMENTS[n % 3].into()),
            updated_from: Some(middle),
            limit: 2,
            ..BoardQuery::default()
        });
    }
    queries
}

/// Every query's listing (paged by the store, and again with a small scan bound) equals the
/// one computed from `whole`, with no release twice; the counts equal those of `whole`.
fn check_against(whole: &TenantState, counts: StatusCounts, page: impl Fn(&BoardQuery, u64) -> BoardPage) {
    assert_eq!(counts, StatusCounts::of(whole.releases.values().map(|r| r.status)));
    for query in queries(whole) {
        let want = expected(whole, &query);
        for bound in [board::SCAN_BOUND, 4] {
            let got = listing(&query, bound, |q| page(q, bound));
            let mut ids: Vec<&str> = got.iter().map(|r| r.release_id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), got.len(), "{query:?}: a release listed twice");
            assert_eq!(got, want, "{query:?} (scan bound {bound})");
        }
    }
}

/// The board as saved, and as [`ProjectionStore::board_of`] merges it with memory, against
/// every release; and no index row beyond one per release in each kind.
fn check(store: &ProjectionStore, state: &TenantState) {
    let whole = store.whole(state).unwrap();
    check_against(&whole, store.status_counts_of(state).unwrap(), |q, bound| {
        store.board_of_within(state, q, bound).unwrap()
    });
    if state.dirty.is_empty() {
        assert_eq!(
            store.board(TENANT, &BoardQuery::default()).unwrap(),
            store.board_of(state, &BoardQuery::default()).unwrap()
        );
        assert_eq!(store.status_counts(TENANT).unwrap(), store.status_counts_of(state).unwrap());
        let stored = whole.releases.len();
        for kind in [b"\0u\0".as_slice(), b"\0s\0", b"\0b\0"] {
            assert_eq!(rows_under(store, &[TENANT.as_bytes(), kind].concat()), stored, "{kind:?}");
        }
    }
}

fn rows_under(store: &ProjectionStore, prefix: &[u8]) -> usize {
    store
        .db
        .iterator(IteratorMode::From(prefix, Direction::Forward))
        .map(Result::unwrap)
        .take_while(|(key, _)| key.starts_with(prefix))
        .count()
}

#[test]
fn the_board_equals_every_release_filtered_and_sorted_after_a_random_workload() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut work = Workload::new(0x5eed);
    for _ in 0..8 {
        work.run(&store, 60);
        check(&store, &work.state);
    }
    assert!(work.ids.len() > 100, "{}", work.ids.len());
    // Reopened and loaded (which skips the board's rows): the same listing from disk.
    drop(store);
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut loaded = store.load_all().unwrap();
    let state = loaded.remove(TENANT).unwrap();
    assert_eq!(store.whole(&state).unwrap(), store.whole(&work.state).unwrap());
    check(&store, &state);
    // Another tenant's rows, before and after this one's in key order, are never listed.
    for tenant in ["t", "t1.x", "t0"] {
        let mut other = TenantState::new(tenant);
        other
            .releases
            .insert("r0".into(), ReleaseState { release_id: "r0".into(), updated_at: 5, ..ReleaseState::default() });
        store.replace(&mut other).unwrap();
        assert_eq!(store.board(tenant, &BoardQuery::default()).unwrap().rows.len(), 1);
    }
    check(&store, &state);
    assert_eq!(store.load_all().unwrap().len(), 4);
}

#[test]
fn a_rebuild_rewrites_the_board_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut work = Workload::new(7);
    work.run(&store, 300);
    // A rebuilt state that differs from the stored one (as after a redaction): releases gone,
    // others at another status and time. Nothing of the old rows may stay.
    let mut rebuilt = store.whole(&work.state).unwrap();
    let ids: Vec<String> = rebuilt.releases.keys().cloned().collect();
    for (n, id) in ids.iter().enumerate() {
        match n % 3 {
            0 => {
                rebuilt.releases.remove(id);
            }
            1 => {
                let release = rebuilt.releases.get_mut(id).unwrap();
                release.status = ReleaseStatus::RolledBack;
                release.updated_at += 1_000;
            }
            _ => {}
        }
    }
    store.replace(&mut rebuilt).unwrap();
    check(&store, &rebuilt);
    // Saves go on from the rebuilt rows.
    work.state = rebuilt;
    work.ids.retain(|id| work.state.releases.contains_key(id));
    work.state.evict(5);
    work.run(&store, 200);
    check(&store, &work.state);
    // An empty rebuild leaves an empty board with zero counts.
    let mut empty = TenantState::new(TENANT);
    store.replace(&mut empty).unwrap();
    check(&store, &empty);
    assert_eq!(store.status_counts(TENANT).unwrap(), StatusCounts::default());
}

#[test]
fn a_failed_save_leaves_the_saved_board_and_the_retry_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut work = Workload::new(99);
    work.run(&store, 250);
    let saved = store.whole(&work.state).unwrap();
    let saved_counts = store.status_counts(TENANT).unwrap();
    for _ in 0..40 {
        work.step(&store);
    }
    assert!(!work.state.dirty.is_empty());
    FAIL_ENCODING.set(true);
    let failed = store.save(&mut work.state);
    FAIL_ENCODING.set(false);
    assert!(matches!(failed, Err(StoreError::Encode { .. })), "{failed:?}");
    // The rows on disk are still the last save's ...
    check_against(&saved, saved_counts, |q, bound| {
        store.board_scan(TENANT, q, &BTreeMap::new(), &BTreeSet::new(), bound).unwrap()
    });
    // ... and the board of the state in memory lists the unsaved releases as they are there.
    check(&store, &work.state);
    work.save(&store);
    check(&store, &work.state);
    // The failed save and its retry changed nothing but what the retry stored.
    work.run(&store, 100);
    check(&store, &work.state);
}

#[test]
fn a_malformed_cursor_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut work = Workload::new(3);
    work.run(&store, 40);
    let first = store.board(TENANT, &BoardQuery { limit: 2, ..BoardQuery::default() }).unwrap();
    let next = first.next.unwrap();
    let refused = |status, after: &str| match store
        .board(TENANT, &BoardQuery { status, after: Some(after.into()), ..BoardQuery::default() })
    {
        Err(StoreError::Cursor { reason }) => reason,
        other => panic!("{after:?}: {other:?}"),
    };
    assert_eq!(refused(Some(ReleaseStatus::Failed), &next), "a cursor of the every status listing, not of Failed");
    assert_eq!(refused(None, "r1"), "not a board cursor (hex): Invalid character 'r' at position 0");
    assert_eq!(refused(None, &next[..next.len() - 1]), "not a board cursor (hex): Odd number of digits");
    assert_eq!(refused(None, "75"), "cursor does not hold a board position");
    let error = StoreError::Cursor { reason: refused(None, "") };
    assert_eq!(error.to_string(), "board cursor: empty cursor");
    assert!(!error.is_corruption());
}

#[test]
fn a_selective_filter_stops_at_the_scan_bound_with_a_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = ProjectionStore::open(dir.path()).unwrap();
    let mut state = TenantState::new(TENANT);
    let releases = usize::try_from(board::SCAN_BOUND).unwrap() + 5;
    for n in 0..releases {
        let id = format!("r{n:06}");
        let at = 1_000 + n as u64;
        let release =
            ReleaseState { release_id: id.clone(), created_at: at, updated_at: at, ..ReleaseState::default() };
        state.releases.insert(id, release);
    }
    // The oldest release is the only one with an id starting `r000000`.
    store.replace(&mut state).unwrap();
    let query = BoardQuery { id_prefix: Some("r000000".into()), ..BoardQuery::default() };
    let first = store.board(TENANT, &query).unwrap();
    assert_eq!((first.rows.len(), first.scanned), (0, board::SCAN_BOUND));
    let after = first.next.expect("a cursor to go on from");
    let second = store.board(TENANT, &BoardQuery { after: Some(after), ..query }).unwrap();
    assert_eq!(second.scanned, 5);
    assert_eq!(second.rows.iter().map(|r| r.release_id.as_str()).collect::<Vec<_>>(), ["r000000"]);
    assert_eq!(second.next, None);
    // Unfiltered, a page is its rows and the cursor after the last.
    let page = store.board(TENANT, &BoardQuery { limit: MAX_PAGE, ..BoardQuery::default() }).unwrap();
    assert_eq!((page.rows.len(), page.scanned), (board::MAX_LIMIT, board::MAX_LIMIT as u64));
    assert_eq!(page.rows[0].release_id, format!("r{:06}", releases - 1));
    assert_eq!(store.status_counts(TENANT).unwrap().planned, releases as u64);
}

/// More than the most a page holds.
const MAX_PAGE: usize = board::MAX_LIMIT + 100;
