//! Logs and traces: `tracing` to stderr (human or JSON), OTLP trace export and W3C
//! propagation, configured by the standard OpenTelemetry environment variables ([`OtelEnv`]).

use anyhow::Context as _;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::resource::{Resource, TelemetryResourceDetector};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flushes the OTLP exporter when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("release-ledger: flushing traces failed: {e}");
            }
        }
    }
}

/// Installs the global subscriber and the global propagator. `RUST_LOG` overrides
/// `default_level`. Settings in the OpenTelemetry variables that are not understood are logged
/// as warnings and ignored ([`OtelEnv`]).
pub fn init(format: LogFormat, default_level: &str) -> anyhow::Result<TelemetryGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let fmt = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed(),
    };
    let settings = OtelEnv::from_env();
    opentelemetry::global::set_text_map_propagator(settings.propagator());
    let provider = match &settings.endpoint {
        Some(endpoint) => {
            // The endpoint is passed explicitly: the exporter would take a set but empty
            // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT over OTEL_EXPORTER_OTLP_ENDPOINT.
            // It reads the header, timeout and compression variables itself (compression is not
            // built in: any OTEL_EXPORTER_OTLP_COMPRESSION, even `none`, fails here).
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .context("configuring the OTLP trace export from the OTEL_EXPORTER_OTLP_* variables")?;
            Some(
                opentelemetry_sdk::trace::SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(settings.resource())
                    .build(),
            )
        }
        None => None,
    };
    let otel =
        provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("release-ledger")).boxed());
    tracing_subscriber::registry().with(filter).with(fmt).with(otel).try_init()?;
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    Ok(TelemetryGuard { provider })
}

/// `service.name` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names another.
pub const DEFAULT_SERVICE_NAME: &str = "release-ledger";

/// What the standard OpenTelemetry environment variables ask of the traces (the SDK itself reads
/// the sampler, span limit, batch processor and exporter header and timeout variables):
///
/// - export: to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, over
///   OTLP/gRPC; none when neither is set, when `OTEL_SDK_DISABLED` is `true` or when
///   `OTEL_TRACES_EXPORTER` is `none`;
/// - resource: `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, values percent-decoded; the whole
///   variable is ignored when one entry is malformed), `service.name` from `OTEL_SERVICE_NAME`,
///   else from `OTEL_RESOURCE_ATTRIBUTES`, else [`DEFAULT_SERVICE_NAME`];
/// - propagation: `OTEL_PROPAGATORS` (`tracecontext`, `baggage`, `none`; default both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelEnv {
    /// Where spans are exported; `None`: nowhere.
    pub endpoint: Option<String>,
    /// The resource's `service.name`.
    pub service_name: String,
    /// The resource's other attributes, in order.
    pub attributes: Vec<(String, String)>,
    /// The propagators, in order.
    pub propagators: Vec<Propagator>,
    /// One line per setting that was not understood and is ignored.
    pub warnings: Vec<String>,
}

/// A supported `OTEL_PROPAGATORS` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagator {
    /// W3C `traceparent` and `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
}

impl OtelEnv {
    /// The settings of this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The settings of these variables (`var` looks one up); an empty variable is unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut warnings = Vec::new();

        let disabled = match set("OTEL_SDK_DISABLED") {
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if !value.eq_ignore_ascii_case("false") => {
                warnings.push(format!("OTEL_SDK_DISABLED={value:?} is neither true nor false; taken as false"));
                false
            }
            _ => false,
        };
        let mut exporter = true;
        for name in set("OTEL_TRACES_EXPORTER").iter().flat_map(|list| list.split(',')).map(str::trim) {
            match name {
                "otlp" | "" => {}
                "none" => exporter = false,
                other => {
                    warnings.push(format!("OTEL_TRACES_EXPORTER: {other:?} is not supported (otlp, none); ignored"))
                }
            }
        }
        let endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .filter(|_| exporter && !disabled);
        if endpoint.is_some() {
            let protocol = ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]
                .into_iter()
                .find_map(|name| Some((name, set(name)?)));
            if let Some((name, protocol)) = protocol.filter(|(_, p)| p != "grpc") {
                warnings.push(format!("{name}={protocol:?} is not supported: traces are exported over OTLP/gRPC"));
            }
            let sampler = var("OTEL_TRACES_SAMPLER").filter(|s| !s.is_empty());
            match sampler.as_deref() {
                None | Some("always_on" | "always_off" | "parentbased_always_on" | "parentbased_always_off") => {}
                Some(ratio @ ("traceidratio" | "parentbased_traceidratio")) => {
                    let arg = var("OTEL_TRACES_SAMPLER_ARG").and_then(|a| a.parse::<f64>().ok());
                    if !arg.is_some_and(|a| (0.0..=1.0).contains(&a)) {
                        warnings.push(format!(
                            "OTEL_TRACES_SAMPLER={ratio} needs OTEL_TRACES_SAMPLER_ARG, a ratio from 0 to 1"
                        ));
                    }
                }
                Some(other) => warnings.push(format!(
                    "OTEL_TRACES_SAMPLER={other:?} is not supported; sampling with parentbased_always_on"
                )),
            }
        }

        let mut attributes = match set("OTEL_RESOURCE_ATTRIBUTES").map(|text| resource_attributes(&text)) {
            Some(Ok(attributes)) => attributes,
            Some(Err(why)) => {
                warnings.push(format!("OTEL_RESOURCE_ATTRIBUTES ignored: {why}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        let named = attributes.iter().rposition(|(key, _)| key == "service.name").map(|i| attributes[i].1.clone());
        attributes.retain(|(key, _)| key != "service.name");
        let service_name = set("OTEL_SERVICE_NAME")
            .or(named.filter(|name| !name.is_empty()))
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());

        let mut propagators = vec![Propagator::TraceContext, Propagator::Baggage];
        if let Some(list) = set("OTEL_PROPAGATORS") {
            propagators.clear();
            let mut none = false;
            for name in list.split(',').map(str::trim).filter(|name| !name.is_empty()) {
                let propagator = match name {
                    "tracecontext" => Propagator::TraceContext,
                    "baggage" => Propagator::Baggage,
                    "none" => {
                        none = true;
                        continue;
                    }
                    other => {
                        warnings.push(format!(
                            "OTEL_PROPAGATORS: {other:?} is not supported (tracecontext, baggage, none); ignored"
                        ));
                        continue;
                    }
                };
                if !propagators.contains(&propagator) {
                    propagators.push(propagator);
                }
            }
            if none {
                propagators.clear();
            }
        }
        Self { endpoint, service_name, attributes, propagators, warnings }
    }

    /// The resource of the exported spans: the SDK's `telemetry.sdk.*`, the attributes and
    /// `service.name`.
    pub fn resource(&self) -> Resource {
        Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(self.attributes.iter().map(|(key, value)| KeyValue::new(key.clone(), value.clone())))
            .with_service_name(self.service_name.clone())
            .build()
    }

    /// The propagators as one (none: propagates nothing).
    pub fn propagator(&self) -> TextMapCompositePropagator {
        let propagators = self.propagators.iter().map(|propagator| -> Box<dyn TextMapPropagator + Send + Sync> {
            match propagator {
                Propagator::TraceContext => Box::new(TraceContextPropagator::new()),
                Propagator::Baggage => Box::new(BaggagePropagator::new()),
            }
        });
        TextMapCompositePropagator::new(propagators.collect())
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` entries separated by commas, values percent-encoded
/// (W3C baggage form without properties). An error names the first malformed entry.
fn resource_attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut attributes = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let malformed = |why: &str| format!("entry {} {why}", ledger::clip(entry));
        let (key, value) = entry.split_once('=').ok_or_else(|| malformed("is not key=value"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(malformed("has an empty key"));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| malformed("is not percent-encoded UTF-8"))?;
        attributes.push((key.to_owned(), value));
    }
    Ok(attributes)
}

/// `%XX` escapes decoded; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
            decoded.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OtelEnv {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        OtelEnv::from_vars(move |name| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    const ENDPOINT: &str = "http://127.0.0.1:4317";

    #[test]
    fn export_needs_an_endpoint_and_is_switched_off_by_the_sdk_and_exporter_variables() {
        assert_eq!(env(&[]).endpoint, None);
        assert_eq!(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT)]).endpoint.as_deref(), Some(ENDPOINT));
        let traces = "http://traces:4317";
        assert_eq!(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)]).endpoint.as_deref(), Some(traces));
        let both = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", traces)]);
        assert_eq!(both.endpoint.as_deref(), Some(traces));
        // Empty is unset.
        let empty = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")]);
        assert_eq!(empty.endpoint.as_deref(), Some(ENDPOINT));
        assert_eq!(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).endpoint, None);

        for off in [("OTEL_SDK_DISABLED", "true"), ("OTEL_SDK_DISABLED", "TRUE"), ("OTEL_TRACES_EXPORTER", "none")] {
            let settings = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), off]);
            assert_eq!(settings.endpoint, None, "{off:?}");
            assert!(settings.warnings.is_empty(), "{:?}", settings.warnings);
        }
        let on = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), ("OTEL_SDK_DISABLED", "false")]);
        assert_eq!((on.endpoint.as_deref(), on.warnings.len()), (Some(ENDPOINT), 0));
        let odd = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), ("OTEL_SDK_DISABLED", "yes")]);
        assert_eq!(odd.endpoint.as_deref(), Some(ENDPOINT));
        assert!(odd.warnings[0].starts_with("OTEL_SDK_DISABLED=\"yes\""), "{:?}", odd.warnings);
    }

    #[test]
    fn unsupported_protocols_exporters_and_samplers_are_warned_about() {
        let settings = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_EXPORTER", "otlp,zipkin"),
            ("OTEL_TRACES_SAMPLER", "xray"),
        ]);
        assert_eq!(settings.endpoint.as_deref(), Some(ENDPOINT));
        assert_eq!(settings.warnings.len(), 3, "{:?}", settings.warnings);
        assert!(settings.warnings.iter().any(|w| w.contains("zipkin")));
        assert!(settings.warnings.iter().any(|w| w.starts_with("OTEL_EXPORTER_OTLP_PROTOCOL=")));
        assert!(settings.warnings.iter().any(|w| w.starts_with("OTEL_TRACES_SAMPLER=\"xray\"")));
        let grpc = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert!(grpc.warnings.is_empty(), "{:?}", grpc.warnings);
        let ratio = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", ENDPOINT), ("OTEL_TRACES_SAMPLER", "traceidratio")]);
        assert_eq!(ratio.warnings.len(), 1, "{:?}", ratio.warnings);
    }

    #[test]
    fn the_service_name_is_the_default_unless_the_environment_names_one_and_otel_service_name_wins() {
        assert_eq!(env(&[]).service_name, DEFAULT_SERVICE_NAME);
        let attributes = "service.name=from-attributes,deployment.environment.name=prod%20eu, team = ledger";
        let settings = env(&[("OTEL_RESOURCE_ATTRIBUTES", attributes)]);
        assert_eq!(settings.service_name, "from-attributes");
        let expected = [("deployment.environment.name", "prod eu"), ("team", "ledger")];
        let expected: Vec<(String, String)> =
            expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(settings.attributes, expected);
        let both = env(&[("OTEL_RESOURCE_ATTRIBUTES", attributes), ("OTEL_SERVICE_NAME", "from-name")]);
        assert_eq!((both.service_name.as_str(), &both.attributes), ("from-name", &expected));

        let resource = both.resource();
        let get = |key: &str| resource.get(&opentelemetry::Key::from(key.to_owned())).map(|v| v.to_string());
        assert_eq!(get("service.name").as_deref(), Some("from-name"));
        assert_eq!(get("deployment.environment.name").as_deref(), Some("prod eu"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
    }

    #[test]
    fn malformed_resource_attributes_are_ignored_whole_with_a_warning() {
        for bad in ["a=1,b", "a=1,=2", "a=%zz", "a=%c3", "a=%"] {
            let settings = env(&[("OTEL_RESOURCE_ATTRIBUTES", bad), ("OTEL_SERVICE_NAME", "svc")]);
            assert!(settings.attributes.is_empty(), "{bad}: {:?}", settings.attributes);
            assert_eq!(settings.service_name, "svc");
            assert_eq!(settings.warnings.len(), 1, "{bad}: {:?}", settings.warnings);
            assert!(settings.warnings[0].starts_with("OTEL_RESOURCE_ATTRIBUTES ignored"), "{:?}", settings.warnings);
        }
        assert_eq!(percent_decode("a%2Cb%3D%C3%A9").as_deref(), Some("a,b=é"));
    }

    #[test]
    fn propagators_default_to_w3c_and_follow_otel_propagators() {
        use Propagator::{Baggage, TraceContext};
        assert_eq!(env(&[]).propagators, [TraceContext, Baggage]);
        assert_eq!(env(&[("OTEL_PROPAGATORS", "baggage")]).propagators, [Baggage]);
        assert!(env(&[("OTEL_PROPAGATORS", "tracecontext,none")]).propagators.is_empty());
        let b3 = env(&[("OTEL_PROPAGATORS", "b3, tracecontext")]);
        assert_eq!(b3.propagators, [TraceContext]);
        assert_eq!(b3.warnings.len(), 1, "{:?}", b3.warnings);
        let mut fields: Vec<String> = env(&[]).propagator().fields().map(str::to_owned).collect();
        fields.sort();
        assert_eq!(fields, ["baggage", "traceparent", "tracestate"]);
    }
}
