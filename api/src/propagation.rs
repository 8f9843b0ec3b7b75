//! W3C trace context and baggage across RPCs.
//!
//! Server side: [`RemoteContextLayer`] extracts the caller's context from every gRPC request's
//! headers with the global propagator ([`crate::telemetry::init`] installs W3C `traceparent` /
//! `tracestate` and `baggage`, or what `OTEL_PROPAGATORS` names) and runs the request inside
//! it; [`adopt_caller_context`], called by every service's span helper, makes that context the
//! parent of the RPC span and records a bounded copy of the baggage on it. A request without a
//! `traceparent`, or with one that is malformed, gets a root span, never an error.
//!
//! The client side (sending the `TRACEPARENT`, `TRACESTATE` and `BAGGAGE` environment
//! variables as metadata) is `ledger_client::propagation::OutgoingContext`.

use std::task::{Context as TaskContext, Poll};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::propagation::Extractor;
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use ledger_wire::valid_traceparent;

/// At most this many baggage entries are recorded on an RPC span (the first by key).
pub const BAGGAGE_MAX_ATTRIBUTES: usize = 8;
/// Baggage keys longer than this (bytes) are not recorded.
pub const BAGGAGE_MAX_KEY_BYTES: usize = 64;
/// Baggage values are recorded clipped to this many bytes (at a character boundary, then `…`).
pub const BAGGAGE_MAX_VALUE_BYTES: usize = 256;

/// The caller's context in a request's headers, read by the global propagator (an empty
/// context when there is none). A `traceparent` that is not [`valid_traceparent`], or that is
/// repeated, is ignored, and with it `tracestate`.
pub fn extract(headers: &http::HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract_with_context(&Context::new(), &HeaderExtractor(headers))
    })
}

/// Reads propagation fields from HTTP headers (gRPC metadata is HTTP/2 headers).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key == "traceparent" || key == "tracestate" {
            let mut parents = self.0.get_all("traceparent").iter();
            let parent = parents.next().and_then(|v| v.to_str().ok())?;
            if parents.next().is_some() || !valid_traceparent(parent.trim()) {
                return None;
            }
        }
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// A tower layer for the gRPC server: every request runs inside the context its headers carry
/// (see [`extract`]), where the services' span helpers find it ([`adopt_caller_context`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteContextLayer;

impl<S> tower::Layer<S> for RemoteContextLayer {
    type Service = RemoteContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RemoteContext { inner }
    }
}

/// The service of [`RemoteContextLayer`].
#[derive(Debug, Clone)]
pub struct RemoteContext<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RemoteContext<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithContext<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let context = extract(request.headers());
        let _attached = context.clone().attach();
        self.inner.call(request).with_context(context)
    }
}

/// Makes the current OpenTelemetry context (the caller's, inside [`RemoteContextLayer`]) the
/// parent of an RPC `span` that has not been entered yet, and records the context's baggage on
/// it (see [`baggage_attributes`]). Without a valid remote span context the span stays a root.
pub(crate) fn adopt_caller_context(span: &tracing::Span) {
    let context = Context::current();
    for (key, value) in baggage_attributes(&context) {
        span.set_attribute(key, value);
    }
    // Fails only when no OpenTelemetry layer is installed (no export) or the span is disabled:
    // then there is nothing to parent.
    let _ = span.set_parent(context);
}

/// The baggage entries recorded on an RPC span, as `baggage.KEY` attributes: baggage is
/// caller-controlled, so at most [`BAGGAGE_MAX_ATTRIBUTES`] entries (the first by key), keys of
/// at most [`BAGGAGE_MAX_KEY_BYTES`] letters, digits and `._-` only (others are skipped), values
/// clipped to [`BAGGAGE_MAX_VALUE_BYTES`]. The prefix keeps them apart from the span's own fields.
pub fn baggage_attributes(context: &Context) -> Vec<(String, String)> {
    let key_ok = |key: &str| {
        !key.is_empty()
            && key.len() <= BAGGAGE_MAX_KEY_BYTES
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let mut entries: Vec<(String, String)> = context
        .baggage()
        .iter()
        .filter(|(key, _)| key_ok(key.as_str()))
        .map(|(key, (value, _))| (format!("baggage.{}", key.as_str()), clip_bytes(value.as_str())))
        .collect();
    entries.sort();
    entries.truncate(BAGGAGE_MAX_ATTRIBUTES);
    entries
}

/// `text` cut to [`BAGGAGE_MAX_VALUE_BYTES`] at a character boundary, with `…` when cut.
fn clip_bytes(text: &str) -> String {
    if text.len() <= BAGGAGE_MAX_VALUE_BYTES {
        return text.to_owned();
    }
    let mut end = BAGGAGE_MAX_VALUE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapCompositePropagator;
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn headers(pairs: &[(&'static str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn w3c() -> TextMapCompositePropagator {
        TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])
    }

    fn extract_w3c(headers: &http::HeaderMap) -> Context {
        use opentelemetry::propagation::TextMapPropagator as _;
        w3c().extract_with_context(&Context::new(), &HeaderExtractor(headers))
    }

    #[test]
    fn the_extractor_passes_a_valid_traceparent_and_hides_a_malformed_or_repeated_one() {
        let context = extract_w3c(&headers(&[("traceparent", PARENT), ("tracestate", "vendor=x")]));
        let span = context.span();
        let parent = span.span_context();
        assert!(parent.is_valid() && parent.is_remote() && parent.is_sampled());
        assert_eq!(parent.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parent.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(parent.trace_state().get("vendor"), Some("x"));

        let short = "00-af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        for bad in [headers(&[("traceparent", short)]), headers(&[("traceparent", PARENT), ("traceparent", PARENT)])] {
            assert!(!extract_w3c(&bad).span().span_context().is_valid(), "{bad:?}");
        }
    }

    #[test]
    fn baggage_is_recorded_bounded_and_prefixed() {
        let mut entries: Vec<String> = (0..20).map(|i| format!("k{i:02}=v{i}")).collect();
        entries.push(format!("a-long={}", "%C3%A9".repeat(200)));
        entries.push(format!("{}=skipped", "x".repeat(BAGGAGE_MAX_KEY_BYTES + 1)));
        entries.push("bad%20key=skipped".to_owned());
        let context = extract_w3c(&headers(&[("baggage", &entries.join(","))]));
        let recorded = baggage_attributes(&context);
        assert_eq!(recorded.len(), BAGGAGE_MAX_ATTRIBUTES, "{recorded:?}");
        let (key, value) = &recorded[0];
        assert_eq!(key, "baggage.a-long");
        assert!(value.ends_with('…') && value.len() <= BAGGAGE_MAX_VALUE_BYTES + '…'.len_utf8(), "{value}");
        assert_eq!(recorded[1], ("baggage.k00".to_owned(), "v0".to_owned()));
        assert_eq!(recorded[7].0, "baggage.k06");
        assert!(recorded.iter().all(|(k, _)| !k.contains("skipped") && !k.contains(' ')));
        assert!(baggage_attributes(&Context::new()).is_empty());
    }
}
