//! The signatures of concurrent single-event requests, verified together.
//!
//! A request of one event verified alone costs one `verify_strict`, the most expensive way to
//! check an Ed25519 signature per signature. When several such requests are in flight at once,
//! their signatures are checked here in one batch: ed25519-dalek's batch equation with the
//! terms of one key summed ([`crate::signatures::each_valid`]), the check a request of several
//! events already gets, and if the batch fails, each signature alone, strictly, so a bad
//! signature fails only its own request.
//!
//! There is no thread of its own and nothing waits when the server is quiet:
//!
//! - A request that finds no verification running leads: it verifies its own signature with
//!   whatever has queued meanwhile, alone and strictly when nothing has, exactly as before.
//!   While requests have lately had company (one of the last [`COMPANY_CREDIT`] verifications
//!   was a batch, or saw requests queue while it ran), the leader first yields once, so that
//!   the requests already decoded on its thread reach the point and queue beside it. Without
//!   company it does not: on the bench machine a leader that always yielded cost a lone request
//!   33–72 µs more request-thread CPU per append (BENCHMARKS.md, "Issue 20, fifth session"), so
//!   a single client pays only three uncontended lock operations.
//! - A request that arrives while one runs queues its signature and awaits its answer; its task
//!   parks, its thread does other work.
//! - Whoever ends a verification hands everything queued (up to [`MAX_BATCH`]) to one of the
//!   queued requests, the *leader*: its task verifies the batch on its own thread, answers the
//!   others, and hands over what queued meanwhile in turn.
//!
//! So one verification runs at a time, batches grow with the load, and a lone request never
//! waits for a batch. A leader's batch of [`MAX_BATCH`] signatures by distinct keys takes about
//! 1.7 ms on one core of the bench machine (`benches/micro`, `signatures`), the longest a
//! runtime thread is held by it.
//!
//! Cancellation: a request whose task is dropped while it waits gives up its place. If it had
//! been made leader, the batch handed to it is dropped with it: every request in that batch,
//! and every one queued, then finds its answer channel closed and verifies its own signature
//! alone, and the next request to come leads afresh.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};
use parking_lot::Mutex;

use super::oneshot;

/// The most signatures one leader verifies in one batch.
pub(crate) const MAX_BATCH: usize = 64;

/// How many lone verifications in a row after the last one with company still begin with a
/// yield.
pub(crate) const COMPANY_CREDIT: u32 = 16;

/// The combining point: one per store.
#[derive(Default)]
pub(crate) struct Combiner(Arc<Shared>);

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Batches of more than one signature verified, and the signatures in them.
    batches: AtomicU64,
    batched: AtomicU64,
}

#[derive(Default)]
struct State {
    /// A verification is running, or a leader has been handed a batch and not ended it.
    busy: bool,
    /// Lone verifications that will still begin with a yield: [`COMPANY_CREDIT`] after one
    /// with company, one fewer after each without.
    company: u32,
    queued: Vec<Queued>,
}

impl State {
    /// Up to `limit` of the signatures queued, oldest first.
    fn take(&mut self, limit: usize) -> Vec<Queued> {
        let take = self.queued.len().min(limit);
        self.queued.drain(..take).collect()
    }
}

/// A signature waiting for a leader.
struct Queued {
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
    answer: oneshot::Sender<Verdict>,
}

enum Verdict {
    Checked(bool),
    /// Verify these with your own, answer them, then hand over.
    Lead(Leadership),
}

/// A batch handed to a leader. Dropped unled (its request's task was cancelled), it frees the
/// combining point and lets everyone waiting verify alone.
struct Leadership {
    shared: Arc<Shared>,
    others: Vec<Queued>,
    led: bool,
}

/// What the combining point has done: `(batches, signatures in them)`, batches of one excluded.
pub(crate) type CombinerStats = (u64, u64);

impl Combiner {
    /// Whether `signature` over `message` verifies under `key`: in a batch with the signatures
    /// queued beside it, or alone and strictly when there are none.
    pub(crate) async fn verify(&self, message: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
        let queued = {
            let mut state = self.0.state.lock();
            if state.busy {
                let (answer, receiver) = oneshot::channel();
                state.queued.push(Queued { message: message.to_vec(), signature: *signature, key: *key, answer });
                Ok(receiver)
            } else {
                state.busy = true;
                Err(state.company > 0)
            }
        };
        let mut receiver = match queued {
            Ok(receiver) => receiver,
            Err(company) => {
                // Held across the yield: if this task is dropped there, the point is freed.
                let mut leadership = Leadership { shared: self.0.clone(), others: Vec::new(), led: false };
                if company {
                    yield_once().await;
                }
                leadership.others = self.0.state.lock().take(MAX_BATCH - 1);
                return leadership.lead(message, signature, key);
            }
        };
        match std::future::poll_fn(|cx| receiver.poll(cx)).await {
            Some(Verdict::Checked(valid)) => valid,
            Some(Verdict::Lead(leadership)) => leadership.lead(message, signature, key),
            // The leader it was handed to was cancelled: alone, strictly.
            None => key.verify_strict(message, signature).is_ok(),
        }
    }

    /// Batches of more than one signature verified so far, and the signatures in them.
    pub(crate) fn stats(&self) -> CombinerStats {
        (self.0.batches.load(Ordering::Relaxed), self.0.batched.load(Ordering::Relaxed))
    }
}

/// Returns `Pending` once, having woken its task: the executor first runs what else is ready on
/// this thread (other requests, which may reach the combining point and queue beside this one).
fn yield_once() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

/// Ends a verification of `verified` signatures: hands what is queued to one of the queued
/// requests, or frees the combining point. The answer is sent outside the lock (a dropped
/// leadership takes it).
fn hand_over(shared: &Arc<Shared>, verified: usize) {
    let (leader, others) = {
        let mut state = shared.state.lock();
        state.company =
            if verified > 1 || !state.queued.is_empty() { COMPANY_CREDIT } else { state.company.saturating_sub(1) };
        let mut batch = state.take(MAX_BATCH);
        let Some(leader) = batch.pop() else {
            state.busy = false;
            return;
        };
        (leader, batch)
    };
    leader.answer.send(Verdict::Lead(Leadership { shared: shared.clone(), others, led: false }));
}

impl Leadership {
    /// Verifies the leader's own signature with the batch handed to it, answers the others,
    /// hands over, and returns the leader's own answer.
    fn lead(mut self, message: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
        let others = std::mem::take(&mut self.others);
        let valid = {
            let mut messages: Vec<&[u8]> = Vec::with_capacity(others.len() + 1);
            let mut signatures = Vec::with_capacity(others.len() + 1);
            let mut keys = Vec::with_capacity(others.len() + 1);
            messages.push(message);
            signatures.push(*signature);
            keys.push(*key);
            for queued in &others {
                messages.push(&queued.message);
                signatures.push(queued.signature);
                keys.push(queued.key);
            }
            crate::signatures::each_valid(&messages, &signatures, &keys)
        };
        if valid.len() > 1 {
            self.shared.batches.fetch_add(1, Ordering::Relaxed);
            self.shared.batched.fetch_add(valid.len() as u64, Ordering::Relaxed);
        }
        for (queued, valid) in others.into_iter().zip(valid.iter().skip(1)) {
            queued.answer.send(Verdict::Checked(*valid));
        }
        self.led = true;
        hand_over(&self.shared, valid.len());
        valid[0]
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if self.led {
            return;
        }
        let queued = {
            let mut state = self.shared.state.lock();
            state.busy = false;
            std::mem::take(&mut state.queued)
        };
        // Outside the lock: each dropped answer wakes a request that then verifies alone, as
        // do those of `self.others` when they drop after this.
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    fn signed(seed: u8, message: &[u8], spoil: bool) -> (Vec<u8>, Signature, VerifyingKey) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let signature = key.sign(message);
        let message = if spoil { [message, b"!"].concat() } else { message.to_vec() };
        (message, signature, key.verifying_key())
    }

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_lone_request_is_answered_at_once_and_leaves_the_point_free() {
        let combiner = Combiner::default();
        for spoil in [false, true, false] {
            let (message, signature, key) = signed(1, b"event", spoil);
            let verdict = poll(pin!(combiner.verify(&message, &signature, &key)));
            assert_eq!(verdict, Poll::Ready(!spoil), "no yield without company");
            let state = combiner.0.state.lock();
            assert!(!state.busy && state.company == 0);
        }
        assert_eq!(combiner.stats(), (0, 0), "nothing was batched");
    }

    #[test]
    fn after_company_a_leader_yields_once_and_verifies_what_queued_meanwhile_with_its_own() {
        let combiner = Combiner::default();
        combiner.0.state.lock().company = 1;
        let requests: Vec<_> = (0..3u8).map(|i| signed(i, format!("y{i}").as_bytes(), i == 1)).collect();
        let mut futures: Vec<_> = requests.iter().map(|(m, s, k)| Box::pin(combiner.verify(m, s, k))).collect();
        for future in &mut futures {
            assert!(poll(future.as_mut()).is_pending());
        }
        assert_eq!(combiner.0.state.lock().queued.len(), 2, "the first leads, the others queue");
        assert_eq!(poll(futures[0].as_mut()), Poll::Ready(true));
        assert_eq!(combiner.stats(), (1, 3), "one batch of the three");
        assert!(!combiner.0.state.lock().busy);
        assert_eq!(poll(futures[1].as_mut()), Poll::Ready(false));
        assert_eq!(poll(futures[2].as_mut()), Poll::Ready(true));
        // The batch was company: the next COMPANY_CREDIT lone requests yield, find nobody and
        // verify alone; the one after them no longer yields.
        let (message, signature, key) = signed(7, b"alone", false);
        for _ in 0..COMPANY_CREDIT {
            let mut next = pin!(combiner.verify(&message, &signature, &key));
            assert!(poll(next.as_mut()).is_pending(), "a yield while company is recent");
            assert_eq!(poll(next.as_mut()), Poll::Ready(true));
        }
        assert_eq!(combiner.0.state.lock().company, 0);
        assert_eq!(poll(pin!(combiner.verify(&message, &signature, &key))), Poll::Ready(true));
        assert_eq!(combiner.stats(), (1, 3));
    }

    #[test]
    fn a_leader_cancelled_during_its_yield_frees_the_point() {
        let combiner = Combiner::default();
        combiner.0.state.lock().company = 1;
        let (a, b) = (signed(1, b"a", false), signed(2, b"b", true));
        let mut leader = Box::pin(combiner.verify(&a.0, &a.1, &a.2));
        assert!(poll(leader.as_mut()).is_pending());
        let mut queued = Box::pin(combiner.verify(&b.0, &b.1, &b.2));
        assert!(poll(queued.as_mut()).is_pending());
        drop(leader);
        assert!(!combiner.0.state.lock().busy, "freed");
        assert_eq!(poll(queued.as_mut()), Poll::Ready(false), "verified alone");
        assert_eq!(combiner.stats(), (0, 0));
    }

    #[test]
    fn requests_queued_behind_a_verification_are_checked_in_one_batch_each_with_its_own_answer() {
        let combiner = Combiner::default();
        // A verification is running (another request's).
        combiner.0.state.lock().busy = true;
        let requests: Vec<_> =
            (0..6u8).map(|i| signed(i % 3, format!("event {i}").as_bytes(), i == 2 || i == 4)).collect();
        let mut futures: Vec<_> = requests.iter().map(|(m, s, k)| Box::pin(combiner.verify(m, s, k))).collect();
        for future in &mut futures {
            assert!(poll(future.as_mut()).is_pending(), "queued behind the running verification");
        }
        assert_eq!(combiner.0.state.lock().queued.len(), 6);
        // The running verification ends: the batch goes to the last queued request.
        hand_over(&combiner.0, 1);
        for future in futures[..5].iter_mut() {
            assert!(poll(future.as_mut()).is_pending(), "answered only by the leader");
        }
        assert_eq!(poll(futures[5].as_mut()), Poll::Ready(true), "the leader's own answer");
        let answers: Vec<_> = futures[..5].iter_mut().map(|f| poll(f.as_mut())).collect();
        assert_eq!(
            answers,
            [Poll::Ready(true), Poll::Ready(true), Poll::Ready(false), Poll::Ready(true), Poll::Ready(false)],
            "a bad signature fails only its own request"
        );
        assert_eq!(combiner.stats(), (1, 6), "one batch of six");
        let state = combiner.0.state.lock();
        assert!(!state.busy && state.queued.is_empty(), "the leader handed over nothing and freed the point");
    }

    #[test]
    fn a_leader_hands_over_what_queued_while_it_verified() {
        let combiner = Combiner::default();
        combiner.0.state.lock().busy = true;
        let first: Vec<_> = (0..3u8).map(|i| signed(i, format!("a{i}").as_bytes(), false)).collect();
        let mut first_futures: Vec<_> = first.iter().map(|(m, s, k)| Box::pin(combiner.verify(m, s, k))).collect();
        for future in &mut first_futures {
            assert!(poll(future.as_mut()).is_pending());
        }
        hand_over(&combiner.0, 1);
        // Two more arrive before the leader runs.
        let second: Vec<_> = (0..2u8).map(|i| signed(i, format!("b{i}").as_bytes(), i == 1)).collect();
        let mut second_futures: Vec<_> = second.iter().map(|(m, s, k)| Box::pin(combiner.verify(m, s, k))).collect();
        for future in &mut second_futures {
            assert!(poll(future.as_mut()).is_pending(), "the point is busy while a batch is handed over");
        }
        assert_eq!(poll(first_futures[2].as_mut()), Poll::Ready(true));
        // The leader of the first batch handed the second to its last request.
        assert!(poll(second_futures[0].as_mut()).is_pending());
        assert_eq!(poll(second_futures[1].as_mut()), Poll::Ready(false));
        assert_eq!(poll(second_futures[0].as_mut()), Poll::Ready(true));
        for future in &mut first_futures[..2] {
            assert_eq!(poll(future.as_mut()), Poll::Ready(true));
        }
        assert_eq!(combiner.stats(), (2, 5));
        assert!(!combiner.0.state.lock().busy);
    }

    #[test]
    fn a_cancelled_leader_frees_the_point_and_everyone_waiting_verifies_alone() {
        let combiner = Combiner::default();
        combiner.0.state.lock().busy = true;
        let requests: Vec<_> = (0..4u8).map(|i| signed(i, format!("c{i}").as_bytes(), i == 0)).collect();
        let mut futures: Vec<_> = requests.iter().map(|(m, s, k)| Box::pin(combiner.verify(m, s, k))).collect();
        for future in &mut futures {
            assert!(poll(future.as_mut()).is_pending());
        }
        hand_over(&combiner.0, 1);
        // One more queues behind the handed-over batch, then the leader's task is dropped.
        let late = signed(9, b"late", false);
        let mut late_future = Box::pin(combiner.verify(&late.0, &late.1, &late.2));
        assert!(poll(late_future.as_mut()).is_pending());
        drop(futures.pop());
        {
            let state = combiner.0.state.lock();
            assert!(!state.busy && state.queued.is_empty(), "the dropped leadership freed the point");
        }
        let answers: Vec<_> = futures.iter_mut().map(|f| poll(f.as_mut())).collect();
        assert_eq!(answers, [Poll::Ready(false), Poll::Ready(true), Poll::Ready(true)]);
        assert_eq!(poll(late_future.as_mut()), Poll::Ready(true));
        assert_eq!(combiner.stats(), (0, 0), "no batch ran");
        // And the next request leads afresh (with a yield: requests queued at the last hand-over).
        let (message, signature, key) = signed(5, b"next", false);
        let mut next = pin!(combiner.verify(&message, &signature, &key));
        assert!(poll(next.as_mut()).is_pending());
        assert_eq!(poll(next.as_mut()), Poll::Ready(true));
        assert!(!combiner.0.state.lock().busy);
    }

    #[test]
    fn concurrent_requests_on_threads_each_get_their_own_answer() {
        let combiner = Arc::new(Combiner::default());
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let combiner = combiner.clone();
                std::thread::spawn(move || {
                    let mut wrong = 0;
                    for i in 0..200u32 {
                        let spoil = (i + u32::from(t)) % 7 == 0;
                        let (message, signature, key) = signed(t, &i.to_be_bytes(), spoil);
                        let valid = block_on(combiner.verify(&message, &signature, &key));
                        wrong += usize::from(valid == spoil);
                    }
                    wrong
                })
            })
            .collect();
        let wrong: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(wrong, 0);
        assert!(!combiner.0.state.lock().busy);
    }

    /// A minimal executor: polls on this thread, parking until woken.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut future = pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
                return output;
            }
            std::thread::park();
        }
    }
}
