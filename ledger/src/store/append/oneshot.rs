//! The one-shot channel that carries a request's answer from the writer thread to whoever
//! submitted it: a caller blocked on it ([`crate::PendingAppend::wait`]) or a task awaiting it.
//! Written here rather than taken from an async runtime so the ledger depends on none (and a
//! runtime's cooperative budget never makes a blocked caller spin).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

struct State<T> {
    value: Option<T>,
    /// Who to wake when the value arrives or the sender is dropped.
    waker: Option<Waker>,
    /// The sender is gone (sent or dropped).
    closed: bool,
}

/// What both ends share.
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Set, after the state is, when the sender is gone: read without the lock by a receiver
    /// waiting awake ([`Receiver::is_settled`]).
    settled: AtomicBool,
}

/// The writer's end.
pub(crate) struct Sender<T>(Arc<Shared<T>>);

/// The submitter's end.
pub(crate) struct Receiver<T>(Arc<Shared<T>>);

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oneshot::Sender")
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("oneshot::Receiver")
    }
}

/// A new channel.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State { value: None, waker: None, closed: false }),
        settled: AtomicBool::new(false),
    });
    (Sender(shared.clone()), Receiver(shared))
}

impl<T> Sender<T> {
    /// Delivers the value (kept even if the receiver is gone) and wakes the receiver.
    pub(crate) fn send(self, value: T) {
        self.0.state.lock().value = Some(value);
        // Drop closes and wakes.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.state.lock();
            state.closed = true;
            state.waker.take()
        };
        self.0.settled.store(true, Ordering::Release);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Receiver<T> {
    /// The value if it has arrived: `Ready(None)` when the sender was dropped without one.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state.lock();
        if let Some(value) = state.value.take() {
            return Poll::Ready(Some(value));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Whether the sender is gone (the value sent, or the sender dropped without one), read
    /// without taking the lock: for a receiver that checks it in a loop while waiting awake.
    pub(crate) fn is_settled(&self) -> bool {
        self.0.settled.load(Ordering::Acquire)
    }

    /// The value if it has arrived, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        self.0.state.lock().value.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_sent_from_another_thread_wakes_the_receiver_and_a_dropped_sender_ends_it() {
        let (sender, mut receiver) = channel::<u32>();
        let waker = Waker::noop();
        assert!(receiver.poll(&mut Context::from_waker(waker)).is_pending());
        std::thread::spawn(move || sender.send(7)).join().unwrap();
        assert_eq!(receiver.poll(&mut Context::from_waker(waker)), Poll::Ready(Some(7)));
        let (sender, mut receiver) = channel::<u32>();
        drop(sender);
        assert_eq!(receiver.poll(&mut Context::from_waker(waker)), Poll::Ready(None));
        let (sender, mut receiver) = channel::<u32>();
        assert!(!receiver.is_settled());
        sender.send(3);
        assert!(receiver.is_settled());
        assert_eq!(receiver.try_recv(), Some(3));
        let (sender, receiver) = channel::<u32>();
        drop(sender);
        assert!(receiver.is_settled());
    }
}
