//! A request queued for the writer before its signatures are verified, and the verification's
//! answer the writer waits for before anything of it is written.
//!
//! A lone request's signature verification and the writer's work on its group are independent
//! until the group is written, so [`crate::Ledger::submit_async`] queues such a request as
//! soon as its other checks pass and verifies while the writer stages the group and signs its
//! checkpoints (BENCHMARKS.md, "Issue 20, ninth session"). The rules that keep this safe:
//!
//! - **Nothing unverified is written.** The writer takes the [`Verdict`] of a lone request's
//!   group ([`settle`]) and waits for it just before the group's write: a failed one discards
//!   the whole staged group (it holds no other request, so nothing else is lost), and nothing
//!   of it reaches RocksDB, the anchor or any reader.
//! - **Nothing unverified is staged beside others.** A group with more than one request waits
//!   for every verdict before it is staged and drops the requests whose signatures failed, so
//!   no forged request ever decides another's answer (an idempotency key it claimed, a stream
//!   version it used up).
//! - **Nothing is learned before the signature is.** The submitter answers its caller only
//!   after the verification: a bad signature is refused as `BadSignature` whatever the writer
//!   did with the request; what the writer answers (a refusal from staging, a receipt) is read
//!   only after a good one.
//! - **Fail closed.** A submitter dropped before it settles (its task cancelled, a panic)
//!   settles as failed ([`Verifying`]'s `Drop`); the verification runs on the submitter's own
//!   task and waits for nothing the writer holds, so every verdict settles.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

const PENDING: u8 = 0;
const VALID: u8 = 1;
const FAILED: u8 = 2;

struct Shared {
    state: AtomicU8,
    lock: Mutex<()>,
    settled: Condvar,
}

/// The writer's end: whether the request's signatures verified.
pub(crate) struct Verdict(Arc<Shared>);

/// The submitter's end. Dropped without [`Verifying::settle`], it settles as failed.
pub(crate) struct Verifying(Option<Arc<Shared>>);

impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verdict")
    }
}

/// A verdict not yet given.
pub(crate) fn pending() -> (Verifying, Verdict) {
    let shared = Arc::new(Shared { state: AtomicU8::new(PENDING), lock: Mutex::new(()), settled: Condvar::new() });
    (Verifying(Some(shared.clone())), Verdict(shared))
}

impl Verifying {
    /// Gives the verdict: `valid` when every signature of the request verified.
    pub(crate) fn settle(mut self, valid: bool) {
        if let Some(shared) = self.0.take() {
            shared.give(if valid { VALID } else { FAILED });
        }
    }
}

impl Drop for Verifying {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.give(FAILED);
        }
    }
}

impl Shared {
    fn give(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        // Under the lock: a waiter that saw PENDING under it is asleep before this notifies.
        let _guard = self.lock.lock();
        self.settled.notify_all();
    }
}

impl Verdict {
    /// Waits for the verdict: true when every signature verified. It sleeps: spinning up to
    /// 100 µs first changed neither the latency nor the CPU of a lone request measurably
    /// (BENCHMARKS.md, "Issue 20, ninth session"); the verdict is usually given before the
    /// writer asks.
    pub(crate) fn wait(&self) -> bool {
        let shared = &*self.0;
        let mut guard = shared.lock.lock();
        loop {
            match shared.state.load(Ordering::Acquire) {
                PENDING => shared.settled.wait(&mut guard),
                state => return state == VALID,
            }
        }
    }
}

/// What the writer does with a group's verdicts before staging it ([`super::commit`]): a
/// group of one request that has a verdict keeps it unwaited, to be waited for just before
/// the write (returned beside the group); in any other group every verdict is waited for now
/// and the requests whose signatures failed are dropped, unanswered (their submitters answer
/// `BadSignature`, or are gone).
pub(crate) fn settle<J>(mut jobs: Vec<J>, verdict: impl Fn(&mut J) -> Option<Verdict>) -> (Vec<J>, Option<Verdict>) {
    if let [job] = &mut jobs[..] {
        let lone = verdict(job);
        return (jobs, lone);
    }
    jobs.retain_mut(|job| verdict(job).is_none_or(|verdict| verdict.wait()));
    (jobs, None)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_verdict_is_what_was_settled_and_a_dropped_submitter_fails() {
        let (verifying, verdict) = pending();
        verifying.settle(true);
        assert!(verdict.wait());
        let (verifying, verdict) = pending();
        verifying.settle(false);
        assert!(!verdict.wait());
        let (verifying, verdict) = pending();
        drop(verifying);
        assert!(!verdict.wait(), "a submitter gone before it settled must not let its request be written");
    }

    #[test]
    fn the_writer_sleeps_until_a_late_verdict_and_sees_it() {
        for valid in [true, false] {
            let (verifying, verdict) = pending();
            let settler = std::thread::spawn(move || {
                // Long enough for the waiter to be asleep on the condition variable.
                std::thread::sleep(Duration::from_millis(20));
                verifying.settle(valid);
            });
            let started = Instant::now();
            assert_eq!(verdict.wait(), valid);
            assert!(started.elapsed() >= Duration::from_millis(15), "returned before the verdict was given");
            settler.join().unwrap();
        }
    }

    /// A job of the tests: its name and its verdict, if any.
    struct Job(&'static str, Option<Verdict>);

    #[test]
    fn a_lone_request_keeps_its_verdict_for_later_and_a_group_drops_the_failed() {
        let take = |job: &mut Job| job.1.take();

        let (verifying, verdict) = pending();
        let (jobs, lone) = settle(vec![Job("alone", Some(verdict))], take);
        assert_eq!(jobs.len(), 1);
        let lone = lone.expect("a lone request's verdict is kept for the write");
        verifying.settle(false);
        assert!(!lone.wait());

        let (jobs, lone) = settle(vec![Job("checked", None)], take);
        assert_eq!((jobs.len(), lone.is_none()), (1, true));

        let (good, good_verdict) = pending();
        let (bad, bad_verdict) = pending();
        let (gone, gone_verdict) = pending();
        good.settle(true);
        bad.settle(false);
        drop(gone);
        let jobs = vec![
            Job("first", None),
            Job("forged", Some(bad_verdict)),
            Job("verified", Some(good_verdict)),
            Job("cancelled", Some(gone_verdict)),
            Job("last", None),
        ];
        let (jobs, lone) = settle(jobs, take);
        assert!(lone.is_none());
        assert_eq!(jobs.iter().map(|job| job.0).collect::<Vec<_>>(), ["first", "verified", "last"]);
    }
}
