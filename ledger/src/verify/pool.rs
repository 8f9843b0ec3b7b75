//! The signature pool: worker threads verifying the Ed25519 signatures of entries in batches
//! while the [`Verifier`](super::Verifier) walks the log in seq order (its serial checks go on
//! meanwhile).

use std::sync::Arc;

use ed25519_dalek::{Signature, VerifyingKey};

use super::SIGNATURE_BATCH;
use crate::signatures::{cores, first_bad_signature_here};

struct PendingSignature {
    seq: u64,
    /// Where its message ends in [`PendingBatch::messages`] (it starts where the previous ends).
    end: usize,
    signature: Signature,
    key: VerifyingKey,
}

/// Signatures waiting to be verified, their messages in one buffer: a batch is two
/// allocations, whichever thread frees it (a worker freeing a message per signature, allocated
/// by the verifier's thread, would contend for the allocator's lock with it).
#[derive(Default)]
pub(super) struct PendingBatch {
    messages: Vec<u8>,
    items: Vec<PendingSignature>,
}

impl PendingBatch {
    #[cfg(test)]
    pub(super) fn push(&mut self, seq: u64, message: &[u8], signature: Signature, key: VerifyingKey) {
        self.push_with(seq, |messages| messages.extend_from_slice(message), signature, key);
    }

    /// [`PendingBatch::push`] of the message `write` appends to the batch's buffer (an
    /// envelope's PAE, written in place rather than built and copied).
    pub(super) fn push_with(
        &mut self,
        seq: u64,
        write: impl FnOnce(&mut Vec<u8>),
        signature: Signature,
        key: VerifyingKey,
    ) {
        if self.items.is_empty() {
            self.items.reserve(SIGNATURE_BATCH);
        }
        write(&mut self.messages);
        self.items.push(PendingSignature { seq, end: self.messages.len(), signature, key });
    }

    /// Empty, its buffers kept for the next batch.
    fn cleared(mut self) -> Self {
        self.messages.clear();
        self.items.clear();
        self
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    /// Bytes of messages held.
    pub(super) fn message_bytes(&self) -> usize {
        self.messages.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn first_seq(&self) -> u64 {
        self.items.first().map_or(0, |p| p.seq)
    }

    fn messages(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let mut start = 0;
        self.items.iter().map(move |p| {
            let message = &self.messages[start..p.end];
            start = p.end;
            message
        })
    }
}

/// The first seq in `pending` whose signature does not verify, on this thread
/// ([`first_bad_signature_here`]): the pool already verifies a batch per core beside the
/// verifier's thread, and pieces handed to other threads would compete with both.
pub(super) fn verify_batch(pending: &PendingBatch) -> Option<u64> {
    let messages: Vec<&[u8]> = pending.messages().collect();
    let signatures: Vec<Signature> = pending.items.iter().map(|p| p.signature).collect();
    let keys: Vec<VerifyingKey> = pending.items.iter().map(|p| p.key).collect();
    first_bad_signature_here(&messages, &signatures, &keys).map(|i| pending.items[i].seq)
}

/// How many batches may wait for the workers, at least (two a worker on machines with more
/// than four workers); each holds at most
/// [`SIGNATURE_BATCH_BYTES`](super::SIGNATURE_BATCH_BYTES) of messages and one entry's more.
/// Eight rather than two a
/// worker: the verifier's thread, the busier one, then verifies a batch itself only when the
/// workers are really behind, not whenever a run of slower entries fills the queue for a moment
/// (`ledger-audit verify` 3 % faster on two cores; BENCHMARKS.md, issue 20).
const QUEUED_BATCHES: usize = 8;

/// Worker threads (one per core but the verifier's own) verifying batches of
/// [`SIGNATURE_BATCH`] signatures handed to them through a bounded queue
/// ([`QUEUED_BATCHES`]: bounded memory). When the queue is full, the verifier's thread
/// verifies the batch itself instead of waiting: every core is busy, and no more threads run
/// than there are cores (a worker per core beside the verifier's thread, which does the serial
/// checks, would take a third of its core from it).
pub(super) struct SignaturePool {
    queue: Option<std::sync::mpsc::SyncSender<PendingBatch>>,
    /// Each batch's first bad seq and size, and the batch itself back, to be filled again.
    results: std::sync::mpsc::Receiver<(Option<u64>, usize, PendingBatch)>,
    /// Batches verified, emptied, their buffers kept: a batch's megabyte of messages is not
    /// allocated, grown and faulted in afresh each time (the page faults alone were about 2 % of
    /// a `ledger-audit verify` profile). At most as many as were ever in flight at once, so
    /// memory stays bounded.
    spare: Vec<PendingBatch>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Batches submitted and not yet reported.
    outstanding: usize,
    first_bad: Option<u64>,
    count: usize,
    /// First seq submitted since the last wait (where a lost batch fails closed).
    since: Option<u64>,
}

impl SignaturePool {
    pub(super) fn new() -> Self {
        let threads = cores().saturating_sub(1).max(1);
        let (queue, batches) = std::sync::mpsc::sync_channel::<PendingBatch>(QUEUED_BATCHES.max(2 * threads));
        let batches = Arc::new(std::sync::Mutex::new(batches));
        let (report, results) = std::sync::mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let batches = Arc::clone(&batches);
                let report = report.clone();
                std::thread::spawn(move || loop {
                    let next = batches.lock().map(|queue| queue.recv());
                    let Ok(Ok(batch)) = next else { return };
                    let first_seq = batch.first_seq();
                    // A verification that panics proves nothing: it fails closed at the batch's
                    // first seq.
                    let first_bad = std::panic::catch_unwind(|| verify_batch(&batch)).unwrap_or(Some(first_seq));
                    if report.send((first_bad, batch.len(), batch)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Self {
            queue: Some(queue),
            results,
            spare: Vec::new(),
            workers,
            outstanding: 0,
            first_bad: None,
            count: 0,
            since: None,
        }
    }

    /// An empty batch to fill: one verified before, if any came back.
    pub(super) fn empty_batch(&mut self) -> PendingBatch {
        self.spare.pop().unwrap_or_default()
    }

    /// Queues a batch, or verifies it on this thread while the queue is full.
    pub(super) fn submit(&mut self, batch: PendingBatch) {
        use std::sync::mpsc::TrySendError;
        let first_seq = batch.first_seq();
        self.since.get_or_insert(first_seq);
        let sent = match self.queue.as_ref() {
            Some(queue) => queue.try_send(batch),
            None => Err(TrySendError::Disconnected(batch)),
        };
        match sent {
            Ok(()) => self.outstanding += 1,
            Err(TrySendError::Full(batch)) => {
                // The workers are behind: this thread verifies it (as they would, failing
                // closed on a panic) rather than wait.
                let first_bad = std::panic::catch_unwind(|| verify_batch(&batch)).unwrap_or(Some(first_seq));
                self.record((first_bad, batch.len(), batch));
            }
            // No worker left to verify it: fail closed.
            Err(TrySendError::Disconnected(_)) => self.record((Some(first_seq), 0, PendingBatch::default())),
        }
        while let Ok(result) = self.results.try_recv() {
            self.outstanding -= 1;
            self.record(result);
        }
    }

    fn record(&mut self, (first_bad, count, batch): (Option<u64>, usize, PendingBatch)) {
        self.first_bad = self.first_bad.into_iter().chain(first_bad).min();
        self.count += count;
        if batch.messages.capacity() > 0 {
            self.spare.push(batch.cleared());
        }
    }

    /// Whether a batch reported so far failed.
    pub(super) fn failed(&self) -> bool {
        self.first_bad.is_some()
    }

    /// Waits for every batch submitted; returns the first bad seq and the signatures verified
    /// since the last wait.
    pub(super) fn wait(&mut self) -> (Option<u64>, usize) {
        while self.outstanding > 0 {
            match self.results.recv() {
                Ok(result) => {
                    self.outstanding -= 1;
                    self.record(result);
                }
                Err(_) => {
                    // Every worker is gone with batches unreported: fail closed.
                    self.outstanding = 0;
                    let since = self.since.unwrap_or_default();
                    self.record((Some(since), 0, PendingBatch::default()));
                }
            }
        }
        self.since = None;
        (self.first_bad.take(), std::mem::take(&mut self.count))
    }
}

impl Drop for SignaturePool {
    fn drop(&mut self) {
        // Closing the queue stops the workers once the batches they hold are done.
        self.queue = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    fn signed(key: &KeyPair, seqs: std::ops::Range<u64>, bad: &[u64]) -> PendingBatch {
        let mut batch = PendingBatch::default();
        for seq in seqs {
            let message = format!("entry {seq}").into_bytes();
            let mut signature = Signature::from_bytes(&key.sign(&message));
            if bad.contains(&seq) {
                signature = Signature::from_bytes(&key.sign(b"another message"));
            }
            batch.push(seq, &message, signature, key.verifying_key());
        }
        batch
    }

    #[test]
    fn a_batch_finds_its_first_bad_signature_and_keeps_each_message_apart() {
        let key = KeyPair::from_seed(&[4; 32]);
        assert_eq!(verify_batch(&signed(&key, 0..40, &[])), None);
        assert_eq!(verify_batch(&signed(&key, 0..40, &[39, 17])), Some(17));
        assert_eq!(verify_batch(&signed(&key, 5..6, &[5])), Some(5));
        assert_eq!(verify_batch(&PendingBatch::default()), None);
        // A message moved across the boundary with its neighbour verifies neither.
        let mut batch = signed(&key, 0..3, &[]);
        batch.items[0].end -= 1;
        assert_eq!(verify_batch(&batch), Some(0));
    }

    #[test]
    fn the_pool_reports_the_first_bad_seq_of_all_batches_and_counts_every_signature() {
        let key = KeyPair::from_seed(&[3; 32]);
        let mut pool = SignaturePool::new();
        // Batches finish in any order: the later bad seq may be reported first.
        let bad = [3 * SIGNATURE_BATCH as u64 + 7, 9 * SIGNATURE_BATCH as u64 + 1];
        for start in (0..12).map(|b| b * SIGNATURE_BATCH as u64) {
            pool.submit(signed(&key, start..start + SIGNATURE_BATCH as u64, &bad));
        }
        assert_eq!(pool.wait(), (Some(bad[0]), 12 * SIGNATURE_BATCH));
        // A wait resets: the next batches are judged on their own.
        pool.submit(signed(&key, 0..10, &[]));
        assert_eq!(pool.wait(), (None, 10));
        assert_eq!(pool.wait(), (None, 0));
    }

    #[test]
    fn a_verified_batch_comes_back_empty_with_its_buffers_and_is_judged_on_what_it_holds_next() {
        let key = KeyPair::from_seed(&[5; 32]);
        let mut pool = SignaturePool::new();
        assert_eq!(pool.empty_batch().messages.capacity(), 0, "nothing verified yet");
        pool.submit(signed(&key, 0..SIGNATURE_BATCH as u64, &[7]));
        assert_eq!(pool.wait(), (Some(7), SIGNATURE_BATCH));
        let reused = pool.empty_batch();
        assert!(reused.is_empty() && reused.message_bytes() == 0, "it comes back empty");
        assert!(reused.messages.capacity() > 0 && reused.items.capacity() >= SIGNATURE_BATCH, "with its buffers");
        // Filled again, with fewer entries than before: the earlier ones (and their bad one)
        // are gone, and a bad one of its own is found.
        let mut batch = reused;
        for seq in 100..103 {
            let message = format!("entry {seq}").into_bytes();
            let signed_as = if seq == 102 { b"another".to_vec() } else { message.clone() };
            let signature = Signature::from_bytes(&key.sign(&signed_as));
            batch.push_with(seq, |m| m.extend_from_slice(&message), signature, key.verifying_key());
        }
        assert_eq!(batch.len(), 3);
        assert_eq!(verify_batch(&batch), Some(102));
        pool.submit(batch);
        assert_eq!(pool.wait(), (Some(102), 3));
    }
}
