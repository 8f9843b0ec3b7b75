//! W3C trace context and baggage on every outgoing RPC.
//!
//! [`OutgoingContext`] is the clients' interceptor; it sends the `TRACEPARENT`, `TRACESTATE`
//! and `BAGGAGE` environment variables (the convention of otel-cli and CI tools) as
//! `traceparent`, `tracestate` and `baggage` metadata on every RPC. The server side (reading
//! them back) is the `api` crate's `propagation` module.

use std::sync::{Arc, OnceLock};

use ledger_wire::valid_traceparent;
use tonic::metadata::AsciiMetadataValue;

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
        // The process's bearer token (`crate::auth`), unless the caller set one.
        if !request.metadata().contains_key("authorization") {
            if let Some(token) = crate::auth::token() {
                let value = AsciiMetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| tonic::Status::invalid_argument("the bearer token is not visible ASCII"))?;
                request.metadata_mut().insert("authorization", value);
            }
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

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
