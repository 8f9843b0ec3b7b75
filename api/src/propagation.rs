//! W3C trace context and baggage across RPCs.
//!
//! Server side: [`RemoteContextLayer`] extracts the caller's context from every gRPC request's
//! headers with the global propagator ([`crate::telemetry::init`] installs W3C `traceparent` /
//! `tracestate` and `baggage`, or what `OTEL_PROPAGATORS` names) and runs the request inside
//! it; [`adopt_caller_context`], called by every service's span helper, makes that context the
//! parent of the RPC span and records a bounded copy of the baggage on it. A request without a
//! `traceparent`, or with one that is malformed, gets a root span, never an error.
//!
//! Client side: [`OutgoingContext`] is the CLI's interceptor; it sends the `TRACEPARENT`,
//! `TRACESTATE` and `BAGGAGE` environment variables (the convention of otel-cli and CI tools)
//! as `traceparent`, `tracestate` and `baggage` metadata on every RPC.

use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::propagation::Extractor;
use opentelemetry::Context;
use tonic::metadata::AsciiMetadataValue;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// At most this many baggage entries are recorded on an RPC span (the first by key).
pub const BAGGAGE_MAX_ATTRIBUTES: usize = 8;
/// Baggage keys longer than this (bytes) are not recorded.
pub const BAGGAGE_MAX_KEY_BYTES: usize = 64;
/// Baggage values are recorded clipped to this many bytes (at a character boundary, then `…`).
pub const BAGGAGE_MAX_VALUE_BYTES: usize = 256;

/// Whether `value` is a W3C `traceparent` this side understands: `VERSION-TRACEID-SPANID-FLAGS`
/// in lower-case hex of 2, 32, 16 and 2 digits, a version other than `ff` (version `00` has
/// exactly those four fields; a later version may append more after a `-`), and trace and span
/// ids that are not all zeros.
///
/// Stricter than the SDK's parser, which accepts ids of any length up to the maximum (so a
/// truncated header would silently name another trace).
pub fn valid_traceparent(value: &str) -> bool {
    fn hex(field: &str, digits: usize) -> bool {
        field.len() == digits && field.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
    let fields: Vec<&str> = value.splitn(5, '-').collect();
    let [version, trace_id, span_id, flags, rest @ ..] = fields.as_slice() else {
        return false;
    };
    hex(version, 2)
        && *version != "ff"
        && (rest.is_empty() || *version != "00")
        && hex(trace_id, 32)
        && hex(span_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && span_id.bytes().any(|b| b != b'0')
}

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

/// The client's interceptor: adds the trace context and baggage from the environment
/// (`TRACEPARENT`, `TRACESTATE`, `BAGGAGE`) to every request as metadata.
#[derive(Debug, Clone, Default)]
pub struct OutgoingContext {
    metadata: Arc<[(&'static str, AsciiMetadataValue)]>,
}

impl OutgoingContext {
    /// The process's outgoing context, read from the environment once; an unusable variable is
    /// reported with one line on stderr, once, and not sent.
    pub fn from_env() -> Self {
        static FROM_ENV: OnceLock<OutgoingContext> = OnceLock::new();
        FROM_ENV
            .get_or_init(|| {
                let (context, warnings) = Self::from_vars(|name| std::env::var(name).ok());
                for warning in warnings {
                    eprintln!("release-ledger: {warning}");
                }
                context
            })
            .clone()
    }

    /// The outgoing context of these variables (`var` looks one up), and a warning for each
    /// variable that is set but not sent: a `TRACEPARENT` that is not [`valid_traceparent`]
    /// (and with it `TRACESTATE`), or a value that is not a valid header value.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut metadata = Vec::new();
        let mut warnings = Vec::new();
        let mut header = |name: &'static str, variable: &str, value: String, warnings: &mut Vec<String>| {
            // Visible ASCII only: what a receiver can read back as text (W3C baggage
            // percent-encodes everything else).
            let visible = value.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
            match AsciiMetadataValue::try_from(value.as_str()) {
                Ok(value) if visible => metadata.push((name, value)),
                _ => warnings.push(format!("ignoring {variable}: not a valid header value (visible ASCII only)")),
            }
        };
        match set("TRACEPARENT") {
            Some(parent) if valid_traceparent(&parent) => {
                header("traceparent", "TRACEPARENT", parent, &mut warnings);
                if let Some(state) = set("TRACESTATE") {
                    header("tracestate", "TRACESTATE", state, &mut warnings);
                }
            }
            Some(parent) => warnings.push(format!(
                "ignoring TRACEPARENT {}: not a W3C traceparent (VERSION-TRACEID-SPANID-FLAGS, lower-case hex)",
                ledger::clip(&parent)
            )),
            None => {}
        }
        if let Some(baggage) = set("BAGGAGE") {
            header("baggage", "BAGGAGE", baggage, &mut warnings);
        }
        (Self { metadata: metadata.into() }, warnings)
    }

    /// The metadata this interceptor adds.
    pub fn metadata(&self) -> impl Iterator<Item = (&'static str, &str)> + '_ {
        self.metadata.iter().filter_map(|(name, value)| Some((*name, value.to_str().ok()?)))
    }
}

impl tonic::service::Interceptor for OutgoingContext {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        for (name, value) in self.metadata.iter() {
            request.metadata_mut().insert(*name, value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapCompositePropagator;
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_validation_follows_the_w3c_format() {
        assert!(valid_traceparent(PARENT));
        assert!(valid_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
        // A later version may carry more fields.
        assert!(valid_traceparent("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"));
        for bad in [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            // Ids one digit short (the SDK's parser accepts these).
            "00-af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-+1",
        ] {
            assert!(!valid_traceparent(bad), "{bad:?}");
        }
    }

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

    #[test]
    fn the_client_sends_valid_variables_and_warns_about_the_rest() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        let (context, warnings) = OutgoingContext::from_vars(vars(&[
            ("TRACEPARENT", PARENT),
            ("TRACESTATE", "vendor=x"),
            ("BAGGAGE", "ci.run=42"),
        ]));
        assert!(warnings.is_empty(), "{warnings:?}");
        let sent: Vec<_> = context.metadata().collect();
        assert_eq!(sent, [("traceparent", PARENT), ("tracestate", "vendor=x"), ("baggage", "ci.run=42")]);

        let (context, warnings) =
            OutgoingContext::from_vars(vars(&[("TRACEPARENT", "00-abc-def-01"), ("TRACESTATE", "vendor=x")]));
        assert_eq!(context.metadata().count(), 0);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("ignoring TRACEPARENT") && !warnings[0].contains('\n'), "{warnings:?}");

        for baggage in [&[("BAGGAGE", "k=v\u{7f}")], &[("BAGGAGE", "k=caf\u{e9}")]] {
            let (context, warnings) = OutgoingContext::from_vars(vars(baggage));
            assert_eq!(context.metadata().count(), 0);
            assert_eq!(warnings, ["ignoring BAGGAGE: not a valid header value (visible ASCII only)"]);
        }

        let (context, warnings) = OutgoingContext::from_vars(vars(&[("TRACEPARENT", "  ")]));
        assert_eq!((context.metadata().count(), warnings.len()), (0, 0));
    }
}
