//! The state the workload tasks share: phases, counters, tenant sizes, errors.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::anyhow;

/// The phases every task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Load, not measured.
    Warmup,
    /// Appenders wait while their events are signed; queries pause.
    Presign,
    /// The measured window.
    Measure,
    /// Appends are over; subscribers catch up.
    Drain,
    /// Everything stops.
    Done,
}

/// Counters and registries the tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Per tenant: one past the highest seq acknowledged so far.
    pub(crate) tenant_sizes: Vec<AtomicU64>,
    /// Per tenant: the first seq of the measured window (u64::MAX until it starts).
    pub(crate) window_from: Vec<AtomicU64>,
    /// Per tenant: one past the last seq of the measured window (u64::MAX until it ends).
    pub(crate) window_to: Vec<AtomicU64>,
    /// Events and requests acknowledged in the current timeline second, and its slowest request.
    pub(crate) tick_events: AtomicU64,
    pub(crate) tick_requests: AtomicU64,
    pub(crate) tick_max_latency_us: AtomicU64,
    pub(crate) errors: Mutex<ErrorLog>,
    pub(crate) request_timeout: Duration,
}

impl Shared {
    pub(crate) fn new(sizes: &[u64], request_timeout: Duration) -> Self {
        let atomics = |value: &dyn Fn(u64) -> u64| sizes.iter().map(|&s| AtomicU64::new(value(s))).collect();
        Self {
            tenant_sizes: atomics(&|s| s),
            window_from: atomics(&|_| u64::MAX),
            window_to: atomics(&|_| u64::MAX),
            tick_events: AtomicU64::new(0),
            tick_requests: AtomicU64::new(0),
            tick_max_latency_us: AtomicU64::new(0),
            errors: Mutex::new(ErrorLog::default()),
            request_timeout,
        }
    }

    pub(crate) fn tenant_size(&self, t: usize) -> u64 {
        self.tenant_sizes[t].load(Ordering::SeqCst)
    }

    pub(crate) fn error(&self, method: &str, code: &str, message: &str) {
        self.errors.lock().unwrap_or_else(PoisonError::into_inner).add(method, code, message);
    }

    pub(crate) fn status(&self, method: &str, status: &tonic::Status) {
        self.error(method, &format!("{:?}", status.code()), status.message());
    }

    /// Runs `call` with the request timeout; a timeout is a `DeadlineExceeded` status.
    pub(crate) async fn timed<T>(
        &self,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> (Duration, Result<T, tonic::Status>) {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.request_timeout, call).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "no answer within {:?} (client-side timeout)",
                self.request_timeout
            ))),
        };
        (started.elapsed(), result)
    }
}

/// Failed requests by method and gRPC code, with the first few messages.
#[derive(Debug, Default, Clone)]
pub(crate) struct ErrorLog {
    pub(crate) counts: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) samples: Vec<String>,
}

impl ErrorLog {
    pub(crate) const SAMPLES: usize = 10;

    pub(crate) fn add(&mut self, method: &str, code: &str, message: &str) {
        *self.counts.entry(method.to_owned()).or_default().entry(code.to_owned()).or_default() += 1;
        let sample = format!("{method} {code}: {message}");
        if self.samples.len() < Self::SAMPLES && !self.samples.contains(&sample) {
            self.samples.push(sample);
        }
    }
}

/// Maps a status to an anyhow error naming the call.
pub(crate) fn status_error(what: &'static str) -> impl Fn(tonic::Status) -> anyhow::Error {
    move |status| anyhow!("{what}: {}", ledger_client::status_line(&status))
}
