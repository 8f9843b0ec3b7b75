//! The threads' scheduling policies, read from the kernel (`/proc/PID/task/*/stat`) of the
//! real server: the projection worker is `SCHED_BATCH`, so its wake-ups never preempt the
//! writer before the writer has answered (BENCHMARKS.md, issue 20, eleventh session); the
//! append path's threads, the pool that verifies large requests among them, stay ordinary.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::{binary, temp_data_dir, Server};

/// `SCHED_OTHER` and `SCHED_BATCH`, as `sched(7)` numbers them.
const SCHED_OTHER: u32 = 0;
const SCHED_BATCH: u32 = 3;

/// (policy, nice) of each thread of process `pid` named `name`.
fn threads(pid: u32, name: &str) -> Vec<(u32, i64)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's /proc") {
        let task = task.expect("a task").path();
        // A thread may exit between the listing and the read.
        let (Ok(comm), Ok(stat)) =
            (std::fs::read_to_string(task.join("comm")), std::fs::read_to_string(task.join("stat")))
        else {
            continue;
        };
        if comm.trim_end() != name {
            continue;
        }
        // The fields after "pid (comm) " start at the third, the state: nice is the 19th,
        // policy the 41st (proc(5)).
        let fields: Vec<&str> = stat[stat.rfind(')').expect("stat has a comm") + 2..].split_whitespace().collect();
        found.push((fields[38].parse().expect("policy"), fields[16].parse().expect("nice")));
    }
    found
}

/// Waits up to 10 s for `done`, polling every 20 ms; false if it never held.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// Any number of threads, at least one (in an [`Expected`] row).
const ANY: usize = usize::MAX;

/// A thread name, how many threads carry it with this (policy, nice), the policy, the nice value.
type Row = (String, usize, u32, i64);
/// A [`Row`] as a test expects it (a count of [`ANY`]: at least one).
type Expected<'a> = (&'a str, usize, u32, i64);

/// For each of `names`, its threads grouped by (policy, nice); a name no thread carries reads
/// as one row of count 0.
fn rows(pid: u32, names: &[&str]) -> Vec<Row> {
    let mut rows = Vec::new();
    for name in names {
        let found = threads(pid, name);
        let mut pairs = found.clone();
        pairs.sort_unstable();
        pairs.dedup();
        if pairs.is_empty() {
            rows.push((name.to_string(), 0, u32::MAX, 0));
        }
        for (policy, nice) in pairs {
            let count = found.iter().filter(|&&t| t == (policy, nice)).count();
            rows.push((name.to_string(), count, policy, nice));
        }
    }
    rows
}

fn matches(rows: &[Row], expected: &[Expected<'_>]) -> bool {
    rows.len() == expected.len()
        && rows.iter().zip(expected).all(|(row, want)| {
            row.0 == want.0 && (row.1 == want.1 || (want.1 == ANY && row.1 > 0)) && (row.2, row.3) == (want.2, want.3)
        })
}

/// `expected` as the failure messages show it (a count of [`ANY`] as "1+").
fn shown(expected: &[Expected<'_>]) -> String {
    let rows: Vec<String> = expected
        .iter()
        .map(|(name, count, policy, nice)| {
            let count = if *count == ANY { "1+".to_string() } else { count.to_string() };
            format!("({name:?}, {count}, {policy}, {nice})")
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// The rows of `expected`'s names, read until they match it (up to 10 s). A new thread takes
/// its name only once it runs (it shows its creator's until then), and the worker's short-lived
/// helpers (RocksDB opening its store's files) carry the worker's name: one early reading on a
/// loaded machine may see a thread not yet named, or one `projections` too many.
fn settled(pid: u32, expected: &[Expected<'_>]) -> Vec<Row> {
    let mut names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    names.dedup();
    // The reading that matched (or the last one), not a new one that could catch a newcomer.
    let mut last = Vec::new();
    eventually(|| {
        last = rows(pid, &names);
        matches(&last, expected)
    });
    last
}

/// [`settled`], then the comparison, with every row and the server's log when it fails.
fn assert_settled(server: &Server, expected: &[Expected<'_>]) {
    let found = settled(server.child.id(), expected);
    assert!(
        matches(&found, expected),
        "(name, threads, policy, nice): {found:?}, expected {}; log: {}",
        shown(expected),
        server.log()
    );
}

#[test]
fn the_projection_worker_is_sched_batch_and_the_append_path_is_not() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    // The verification pool is built at the start, by an ordinary thread, before the worker
    // could make it by checking its own large appends (`ledger::signatures::build_verify_pool`).
    let expected = [
        ("projections", 1, SCHED_BATCH, 0),
        ("ledger-writer", 1, SCHED_OTHER, 0),
        ("ledger-store-wr", 1, SCHED_OTHER, 0),
        ("tokio-rt-worker", ANY, SCHED_OTHER, 0),
        ("ledger-verify-0", 1, SCHED_OTHER, 0),
    ];
    assert_settled(&server, &expected);
}

#[test]
fn a_niced_server_s_projection_worker_keeps_the_ordinary_policy_and_its_nice_value() {
    let (_dir, data) = temp_data_dir();
    let mut niced = Command::new("nice");
    niced.args(["-n", "5", binary()]);
    let server = Server::spawn(niced, &data, "127.0.0.1:0", &[]);
    assert!(
        eventually(|| server.log().contains("the projection worker runs niced")),
        "no word of the nice value in the log: {}",
        server.log()
    );
    let expected = [("projections", 1, SCHED_OTHER, 5), ("ledger-writer", 1, SCHED_OTHER, 5)];
    assert_settled(&server, &expected);
}
