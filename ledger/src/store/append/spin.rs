//! An answer awaited awake: the task of a single-event append, when nothing else is being
//! appended, checks its answer in a loop for a while ([`crate::Config::answer_spin`]) before
//! it sleeps on it.
//!
//! Such a request waits for its group's staging and flush, a few hundred microseconds, and
//! then for its runtime thread to be woken. On a virtual machine whose idle CPUs halt, that
//! wake-up is an interrupt to a halted virtual CPU: tens of microseconds, a tenth of the whole
//! append (BENCHMARKS.md, "Issue 20, tenth session"). Staying awake costs the core meanwhile,
//! and under load the cores are wanted by other requests, so the wait is only for a request
//! of one event (for 64, whose writer and helper work on both cores, it cost more than it
//! gained), and only when the writer's latest group held at most one request ([`Hints`]). It
//! stops:
//! - when the answer is given (the sender gone: [`super::oneshot::Receiver::is_settled`]);
//! - as soon as any other request is submitted or still awaited; the next [`SKIP_AFTER_WANTED`]
//!   requests then sleep at once, since others are appending;
//! - after the limit.
//!
//! Every [`YIELD_EVERY`] it yields its core, so that a thread woken onto the same virtual CPU
//! (the writer, its helper, the projection worker) runs at once instead of after the
//! scheduler's time slice: without the yield a measured p99 rose to the limit. Never on a
//! single core, where the writer needs the only one. These are hints, as `Inner::preparing` is:
//! the answer is the same whichever way it is awaited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::oneshot::Receiver;

/// How often the waiting thread yields its core.
pub(crate) const YIELD_EVERY: Duration = Duration::from_micros(20);

/// Requests that sleep at once after a wait awake was cut short by another request.
pub(crate) const SKIP_AFTER_WANTED: usize = 256;

/// The store's hints of its load, read and written without locks.
#[derive(Debug, Default)]
pub(crate) struct Hints {
    /// Requests submitted and not yet done with ([`Awaiting`]).
    awaiting: AtomicUsize,
    /// Requests in the writer's latest commit group.
    last_group: AtomicUsize,
    /// Requests still to sleep at once ([`SKIP_AFTER_WANTED`]).
    skip: AtomicUsize,
}

impl Hints {
    /// The writer's note of a group's size, before it stages it.
    pub(crate) fn note_group(&self, requests: usize) {
        self.last_group.store(requests, Ordering::Relaxed);
    }
}

/// A submitted request, counted among those awaited until its [`crate::PendingAppend`] is
/// dropped (or its submission fails).
#[derive(Debug)]
pub(crate) struct Awaiting(Arc<Hints>);

impl Awaiting {
    pub(crate) fn start(hints: &Arc<Hints>) -> Self {
        hints.awaiting.fetch_add(1, Ordering::Relaxed);
        Self(hints.clone())
    }

    /// Whether this is the only request submitted and not yet done with.
    fn alone(&self) -> bool {
        self.0.awaiting.load(Ordering::Relaxed) == 1
    }
}

impl Drop for Awaiting {
    fn drop(&mut self) {
        self.0.awaiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an answer is awaited awake.
#[derive(Debug)]
pub(crate) struct Spin {
    limit: Duration,
}

impl Spin {
    /// A wait awake for a request of `events` events, or `None`: more than one event, a
    /// writer whose latest group held more than one request, a recent wait cut short by
    /// another request, a zero limit, or a single core.
    pub(crate) fn new(events: usize, limit: Duration, hints: &Hints) -> Option<Self> {
        if events != 1 || limit.is_zero() || crate::signatures::cores() < 2 {
            return None;
        }
        if hints.last_group.load(Ordering::Relaxed) > 1 {
            return None;
        }
        // Racy by design: two requests may both take the last skip, or both miss it.
        let skip = hints.skip.load(Ordering::Relaxed);
        if skip > 0 {
            hints.skip.store(skip - 1, Ordering::Relaxed);
            return None;
        }
        Some(Self { limit })
    }

    /// Waits awake until `receipt` is settled, another request is awaited beside `awaiting`,
    /// or the limit; then the caller waits as usual (asleep if the answer is still to come).
    pub(crate) fn wait<T>(self, receipt: &Receiver<T>, awaiting: &Awaiting) -> Outcome {
        let started = Instant::now();
        let mut yielded = started;
        loop {
            if receipt.is_settled() {
                return Outcome::Settled;
            }
            if !awaiting.alone() {
                awaiting.0.skip.store(SKIP_AFTER_WANTED, Ordering::Relaxed);
                return Outcome::Wanted;
            }
            let now = Instant::now();
            if now.duration_since(started) >= self.limit {
                return Outcome::Limit;
            }
            if now.duration_since(yielded) >= YIELD_EVERY {
                std::thread::yield_now();
                yielded = Instant::now();
            } else {
                for _ in 0..32 {
                    std::hint::spin_loop();
                }
            }
        }
    }
}

/// Why a wait awake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The answer was given.
    Settled,
    /// Another request is in flight.
    Wanted,
    /// The limit passed first.
    Limit,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::append::oneshot::channel;

    fn spin(limit: Duration) -> Spin {
        Spin { limit }
    }

    #[test]
    fn a_wait_ends_when_the_answer_is_given_and_not_before() {
        let hints = Arc::new(Hints::default());
        let awaiting = Awaiting::start(&hints);
        let (sender, receiver) = channel::<u32>();
        let given = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let at = Instant::now();
            sender.send(1);
            at
        });
        let outcome = spin(Duration::from_secs(10)).wait(&receiver, &awaiting);
        let ended = Instant::now();
        let sent = given.join().unwrap();
        assert_eq!(outcome, Outcome::Settled);
        assert!(ended >= sent, "the wait ended before the answer was given");
    }

    #[test]
    fn a_wait_ends_at_its_limit_or_when_another_request_is_in_flight_which_skips_the_next() {
        let hints = Arc::new(Hints::default());
        let awaiting = Awaiting::start(&hints);
        let (_sender, receiver) = channel::<u32>();
        let started = Instant::now();
        assert_eq!(spin(Duration::from_millis(5)).wait(&receiver, &awaiting), Outcome::Limit);
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert_eq!(hints.skip.load(Ordering::Relaxed), 0, "a limit is not load");
        let other = Awaiting::start(&hints);
        let started = Instant::now();
        assert_eq!(spin(Duration::from_secs(10)).wait(&receiver, &awaiting), Outcome::Wanted);
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(other);
        assert_eq!(hints.awaiting.load(Ordering::Relaxed), 1);
        if crate::signatures::cores() > 1 {
            for _ in 0..SKIP_AFTER_WANTED {
                assert!(Spin::new(1, Duration::from_millis(1), &hints).is_none());
            }
            assert!(Spin::new(1, Duration::from_millis(1), &hints).is_some());
        }
        let (sender, receiver) = channel::<u32>();
        drop(sender);
        assert_eq!(spin(Duration::from_secs(10)).wait(&receiver, &awaiting), Outcome::Settled);
        drop(awaiting);
        assert_eq!(hints.awaiting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn only_a_single_event_with_a_limit_on_several_cores_and_no_load_is_awaited_awake() {
        let hints = Hints::default();
        assert!(Spin::new(2, Duration::from_millis(1), &hints).is_none());
        assert!(Spin::new(1, Duration::ZERO, &hints).is_none());
        assert_eq!(Spin::new(1, Duration::from_millis(1), &hints).is_some(), crate::signatures::cores() > 1);
        hints.note_group(2);
        assert!(Spin::new(1, Duration::from_millis(1), &hints).is_none());
        hints.note_group(1);
        assert_eq!(Spin::new(1, Duration::from_millis(1), &hints).is_some(), crate::signatures::cores() > 1);
    }
}
