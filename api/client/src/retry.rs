//! The CLI's retries: what is safe to send again, and when.
//!
//! An append is retried with the **same signed bytes**. The ledger answers an `eventId` it
//! already holds with the same payload with the original receipt (`duplicate: true`), so a retry
//! after an answer that was lost (a timeout, a dropped connection, a server restart) never
//! appends twice and never conflicts. Reads are idempotent anyway.
//!
//! Retried, with exponential back-off (200 ms doubling to 5 s, jittered):
//! - no connection yet (the server is starting or restarting);
//! - `UNAVAILABLE` (shutting down, connection lost, writer poisoned until a restart);
//! - `DEADLINE_EXCEEDED`, and no answer within the per-attempt timeout;
//! - any status carrying gRPC's retry pushback, `grpc-retry-pushback-ms` (gRFC A6), after the
//!   delay it asks for: the server sets it when its append queue is full
//!   (the `api` crate's `status::append_status`). A negative or malformed pushback means "do not retry".
//!
//! Every other status is an answer (a refusal, a conflict, a verification failure) and is
//! returned at once. Each retry is announced on stderr, so a CI log shows why a step was slow.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::connect::{status_line, Refused};

pub use ledger_wire::PUSHBACK;
/// The first back-off.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest back-off.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How many times, and how long each attempt may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: try once).
    pub retries: u32,
    /// How long one attempt (a connection, a unary call) may take before it counts as failed.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { retries: 4, timeout: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// Runs `attempt` until it succeeds, fails with an answer, or the retries are spent; `what`
    /// names the call in the stderr notes.
    pub async fn call<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Status>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let timeout = self.timeout;
        let attempt = || {
            let attempt = attempt();
            async move {
                match tokio::time::timeout(timeout, attempt).await {
                    Ok(result) => result,
                    Err(_) => Err(Status::deadline_exceeded(format!("no answer within {} s", timeout.as_secs_f64()))),
                }
            }
        };
        self.retrying(
            what,
            attempt,
            |status: &Status| Some(status),
            |status, tries| {
                Status::new(status.code(), format!("{} (gave up after {tries} attempts)", status.message()))
            },
        )
        .await
    }

    /// [`RetryPolicy::call`] for a call whose attempts run as long as they need (a backup's
    /// stream: no per-attempt timeout) and whose failures are [`anyhow::Error`]s: `attempt` runs
    /// again while it fails with a [`Refused`] status worth retrying ([`retry_delay`]: say, a
    /// server still loading its projection store, which answers a backup `UNAVAILABLE`), as
    /// the retries allow; any other failure is returned at once. Each attempt must start from
    /// nothing (the caller removes what a failed one left).
    pub async fn call_streaming<T, F, Fut>(&self, what: &str, attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        self.retrying(
            what,
            attempt,
            |error: &anyhow::Error| error.downcast_ref::<Refused>().map(Refused::status),
            |error, tries| error.context(format!("gave up after {tries} attempts")),
        )
        .await
    }

    /// The retry loop of [`RetryPolicy::call`] and [`RetryPolicy::call_streaming`]: runs
    /// `attempt` until it succeeds, fails with an error whose status (`status_of`) is not worth
    /// retrying ([`retry_delay`]), or the retries are spent (`give_up` then words the last
    /// error), each retry said on stderr after a back-off that doubles up to [`MAX_BACKOFF`].
    async fn retrying<T, E, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
        status_of: impl for<'e> Fn(&'e E) -> Option<&'e Status>,
        give_up: impl FnOnce(E, u32) -> E,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let retry = status_of(&error).and_then(|status| Some((retry_delay(status, backoff)?, status_line(status))));
            let Some((delay, why)) = retry else { return Err(error) };
            if tries > self.retries {
                return Err(give_up(error, tries));
            }
            announce(what, tries, &why, delay);
            tokio::time::sleep(delay).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A channel to `server`, retrying the connection while nothing answers; a malformed URL
    /// fails at once.
    pub async fn channel(&self, server: &str) -> anyhow::Result<Channel> {
        let endpoint = Endpoint::from_shared(server.to_owned())
            .with_context(|| format!("bad server URL {server:?}"))?
            .connect_timeout(self.timeout);
        let endpoint = crate::auth::with_tls(endpoint, server)?;
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        loop {
            tries += 1;
            match endpoint.connect().await {
                Ok(channel) => return Ok(channel),
                Err(e) if tries > self.retries => {
                    if refused_connection(&e) {
                        // Nobody listens there: the fix is a server, or another address.
                        return Err(anyhow::anyhow!(
                            "cannot connect to {server}: connection refused (gave up after {tries} attempts); \
                             is the server running? start it with `release-ledger serve` (or scripts/serve.sh), \
                             or point --server (or RELEASE_LEDGER_SERVER) at the server's address"
                        ));
                    }
                    return Err(anyhow::Error::new(e)
                        .context(format!("cannot connect to {server} (gave up after {tries} attempts)")));
                }
                Err(e) => {
                    let delay = jittered(backoff);
                    announce(&format!("connecting to {server}"), tries, &format!("{e:#}"), delay);
                    tokio::time::sleep(delay).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Whether a connection failed because nothing listens at the address.
fn refused_connection(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// How long to wait before retrying after `status`, or `None` when it must not be retried.
pub fn retry_delay(status: &Status, backoff: Duration) -> Option<Duration> {
    if let Some(pushback) = status.metadata().get(PUSHBACK) {
        // gRFC A6: a non-negative integer is the delay the server asks for; anything else
        // means the server does not want this call retried.
        let millis = pushback.to_str().ok()?.trim().parse::<u64>().ok()?;
        return Some(Duration::from_millis(millis.min(MAX_BACKOFF.as_millis() as u64)));
    }
    matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded).then(|| jittered(backoff))
}

/// `backoff` minus up to a quarter, so clients that failed together do not retry together.
fn jittered(backoff: Duration) -> Duration {
    use ledger::Clock as _;
    // The clock's low digits are noise enough to spread clients apart.
    let noise = ledger::SystemClock.now_ns() % 1000;
    let quarter = backoff / 4;
    backoff - quarter.mul_f64(noise as f64 / 1000.0)
}

fn announce(what: &str, attempt: u32, why: &str, delay: Duration) {
    eprintln!(
        "release-ledger: {what}: attempt {attempt} failed ({}); retrying in {:.1} s",
        ledger::clip_at(why, 300),
        delay.as_secs_f64()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_pushback(code: Code, value: &str) -> Status {
        let mut status = Status::new(code, "busy");
        status.metadata_mut().insert(PUSHBACK, value.parse().unwrap());
        status
    }

    #[test]
    fn answers_are_not_retried_and_transient_failures_are() {
        let backoff = Duration::from_millis(800);
        for code in [
            Code::InvalidArgument,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::ResourceExhausted,
            Code::DataLoss,
            Code::Internal,
            Code::Unknown,
        ] {
            assert_eq!(retry_delay(&Status::new(code, "x"), backoff), None, "{code:?}");
        }
        for code in [Code::Unavailable, Code::DeadlineExceeded] {
            let delay = retry_delay(&Status::new(code, "x"), backoff).unwrap();
            assert!(delay <= backoff && delay >= backoff * 3 / 4, "{code:?}: {delay:?}");
        }
    }

    #[test]
    fn pushback_sets_the_delay_or_forbids_the_retry() {
        let backoff = Duration::from_secs(1);
        let status = with_pushback(Code::ResourceExhausted, "150");
        assert_eq!(retry_delay(&status, backoff), Some(Duration::from_millis(150)));
        // Capped at the longest back-off.
        let status = with_pushback(Code::ResourceExhausted, "600000");
        assert_eq!(retry_delay(&status, backoff), Some(MAX_BACKOFF));
        // Negative or malformed: do not retry, even a code that would be retried otherwise.
        for value in ["-1", "soon", ""] {
            assert_eq!(retry_delay(&with_pushback(Code::Unavailable, value), backoff), None, "{value:?}");
        }
    }

    // Real time (tokio's paused clock needs its test-util feature, which would make the test
    // build's tokio differ from the binary's): back-offs of 0.2, 0.4 and 0.8 s.
    #[tokio::test]
    async fn calls_retry_until_an_answer_and_give_up_after_the_retries() {
        let policy = RetryPolicy { retries: 3, timeout: Duration::from_millis(300) };
        let mut calls = 0;
        let result = policy
            .call("test", || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Status::unavailable("restarting"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let status = policy
            .call("test", || {
                calls += 1;
                async { Err::<(), _>(Status::unavailable("down")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 4, "one attempt and three retries");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("gave up after 4 attempts"), "{}", status.message());

        // An attempt that never answers times out and is retried; an answer ends it at once.
        let mut calls = 0;
        let status = policy
            .call("test", || {
                calls += 1;
                let n = calls;
                async move {
                    if n == 1 {
                        std::future::pending::<()>().await;
                    }
                    Err::<(), _>(Status::already_exists("taken"))
                }
            })
            .await
            .unwrap_err();
        assert_eq!((calls, status.code()), (2, Code::AlreadyExists));
    }

    /// A streaming call's attempts: retried while they fail with a retryable status (as a
    /// [`Refused`]), returned at once on any other failure, given up after the retries.
    #[tokio::test]
    async fn streaming_calls_retry_refusals_worth_retrying_and_nothing_else() {
        let policy = RetryPolicy { retries: 2, timeout: Duration::from_millis(1) };
        let refused = |status: Status| Err::<u32, _>(crate::refused(status));
        let mut calls = 0;
        let result = policy
            .call_streaming("test", || {
                calls += 1;
                let n = calls;
                async move {
                    // Longer than the per-attempt timeout, which a streaming call does not apply.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if n < 3 {
                        refused(Status::unavailable("the governance worker has not loaded its store yet"))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result.unwrap(), 3);

        let mut calls = 0;
        let error = policy
            .call_streaming("test", || {
                calls += 1;
                async { refused(Status::unavailable("down")) }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 3, "one attempt and two retries");
        assert!(error.to_string().contains("gave up after 3 attempts"), "{error:#}");
        assert_eq!(error.downcast_ref::<Refused>().map(Refused::code), Some(Code::Unavailable), "{error:#}");

        for failure in [crate::refused(Status::permission_denied("not an operator")), anyhow::anyhow!("disk full")] {
            let message = failure.to_string();
            let mut failure = Some(failure);
            let mut calls = 0;
            let error = policy
                .call_streaming("test", || {
                    calls += 1;
                    let failure = failure.take().expect("called once");
                    async move { Err::<(), _>(failure) }
                })
                .await
                .unwrap_err();
            assert_eq!((calls, error.to_string()), (1, message));
        }
    }
}
