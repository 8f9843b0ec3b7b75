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

#[test]
fn the_projection_worker_is_sched_batch_and_the_append_path_is_not() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let pid = server.child.id();
    assert!(
        eventually(|| threads(pid, "projections") == [(SCHED_BATCH, 0)]),
        "the projection worker (policy, nice): {:?}, expected [({SCHED_BATCH}, 0)]; log: {}",
        threads(pid, "projections"),
        server.log()
    );
    // The verification pool is built at the start, by an ordinary thread, before the worker
    // could make it by checking its own large appends (`ledger::signatures::build_verify_pool`).
    for name in ["ledger-writer", "ledger-store-wr", "tokio-rt-worker", "ledger-verify-0"] {
        let found = threads(pid, name);
        assert!(!found.is_empty(), "no {name} thread");
        assert!(found.iter().all(|&(policy, nice)| (policy, nice) == (SCHED_OTHER, 0)), "{name}: {found:?}");
    }
}

#[test]
fn a_niced_server_s_projection_worker_keeps_the_ordinary_policy_and_its_nice_value() {
    let (_dir, data) = temp_data_dir();
    let mut niced = Command::new("nice");
    niced.args(["-n", "5", binary()]);
    let server = Server::spawn(niced, &data, "127.0.0.1:0", &[]);
    let pid = server.child.id();
    assert!(
        eventually(|| server.log().contains("the projection worker runs niced")),
        "no word of the nice value in the log: {}",
        server.log()
    );
    assert_eq!(threads(pid, "projections"), [(SCHED_OTHER, 5)], "the projection worker (policy, nice)");
    let writer = threads(pid, "ledger-writer");
    assert_eq!(writer, [(SCHED_OTHER, 5)], "the writer (policy, nice)");
}
