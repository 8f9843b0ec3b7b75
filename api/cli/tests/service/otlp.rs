//! Telemetry of the real binary: RPC spans exported over OTLP/gRPC (to an in-process fake
//! collector) with the attributes the README promises, and `--log-format json` stderr lines.
//!
//! Also: W3C trace context and baggage from callers (gRPC clients, the Flight client, the CLI
//! with `TRACEPARENT`) parent the RPC spans, and the OpenTelemetry environment variables shape
//! the exported resource and switch the export.
//!
//! The shared `Server::start` cannot set environment variables, so these tests spawn the
//! binary themselves, with every inherited `OTEL_*`, `RELEASE_LEDGER_*`, `TRACEPARENT`,
//! `TRACESTATE` and `BAGGAGE` variable removed.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ledger::KeyPair;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use tonic::Code;

use crate::{binary, body, register, temp_data_dir, tests_passed, wire};

/// The variables a test server or CLI must not inherit from the test's environment.
fn inherited_telemetry(name: &str) -> bool {
    name.starts_with("OTEL_")
        || name.starts_with("RELEASE_LEDGER_")
        || ["TRACEPARENT", "TRACESTATE", "BAGGAGE"].contains(&name)
}

/// A `release-ledger serve` process started with a chosen environment.
struct Spawned {
    child: Child,
    grpc: SocketAddr,
    log: PathBuf,
    /// An operator token (the admin key's).
    token: String,
}

impl Spawned {
    /// Starts `serve --json` on ephemeral ports; `env` is added to a cleaned environment.
    fn start(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = data_dir.with_extension("server.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let mut command = Command::new(binary());
        command
            .args(["serve", "--json", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--shutdown-grace-seconds", "3"])
            .args(extra);
        for (name, _) in std::env::vars_os() {
            if inherited_telemetry(&name.to_string_lossy()) {
                command.env_remove(&name);
            }
        }
        command.env("RUST_LOG", "info").envs(env.iter().copied());
        let mut child = command.stdout(Stdio::piped()).stderr(stderr).spawn().expect("start server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let started: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("server did not start ({e}): {line:?}; log: {}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        let grpc = started["server"]["grpc"].as_str().unwrap().parse().unwrap();
        let origin = started["server"]["originPrefix"].as_str().unwrap();
        let token = crate::mint(&Self::admin(data_dir), "admin", None, origin);
        Self { child, grpc, log, token }
    }

    async fn client(&self) -> LedgerClient<crate::Authed> {
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", self.grpc)).unwrap().connect().await.unwrap();
        LedgerClient::new(tonic::service::interceptor::InterceptedService::new(
            channel,
            crate::Bearer::new(&self.token),
        ))
    }

    fn admin(data_dir: &Path) -> KeyPair {
        KeyPair::load(&data_dir.join("keys/admin.pem")).unwrap()
    }

    /// The server's stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits (at most 15 s) for the exit; the telemetry guard flushes on the way out.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit after SIGTERM; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake OTLP collector: records every trace export request.
#[derive(Debug, Clone, Default)]
struct Collector {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// An exported span with its resource's attributes.
struct Exported {
    resource: Vec<KeyValue>,
    span: Span,
}

impl Collector {
    /// Serves the collector on an ephemeral loopback port; returns its address.
    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    }

    fn spans(&self) -> Vec<Exported> {
        let requests = self.requests.lock().unwrap();
        let mut spans = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let resource = resource_spans.resource.as_ref().map(|r| r.attributes.clone()).unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push(Exported { resource: resource.clone(), span: span.clone() });
            }
        }
        spans
    }
}

/// The value of the attribute `key`.
fn attr(attributes: &[KeyValue], key: &str) -> Option<Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.clone())
}

/// An expected string attribute value.
fn string(value: &str) -> Option<Value> {
    Some(Value::StringValue(value.to_owned()))
}

/// An expected int attribute value.
fn int(value: i64) -> Option<Value> {
    Some(Value::IntValue(value))
}

/// A span's ids and attributes as `key=value` lines, for failure messages.
fn describe(span: &Span) -> String {
    let attributes: Vec<String> = span.attributes.iter().map(|kv| format!("{}={:?}", kv.key, kv.value)).collect();
    let ids = format!("trace={} parent={:?}", hex::encode(&span.trace_id), hex::encode(&span.parent_span_id));
    format!("{} kind={} {ids} flags={:#x} {}", span.name, span.kind, span.flags, attributes.join(" "))
}

const OTLP_TENANT: &str = "otlp-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_spans_are_exported_over_otlp_with_rpc_and_domain_attributes() {
    let collector = Collector::default();
    let endpoint = format!("http://{}", collector.start().await);
    let (_dir, data) = temp_data_dir();
    let mut server = Spawned::start(&data, &[], &[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let mut client = server.client().await;
    let qa = register(&mut client, &Spawned::admin(&data), OTLP_TENANT, "qa", &["TestsPassed"]).await;

    let accepted = body(OTLP_TENANT, "release/r1", "TestsPassed", "otlp-ok", "qa", tests_passed(1));
    let receipt = client.append(pb::AppendRequest { event: Some(wire(accepted, &qa)) }).await.unwrap();
    let seq = receipt.into_inner().receipt.unwrap().seq;
    // The key may sign TestsPassed only.
    let coverage = serde_json::json!({"module": "billing", "version": "1.4.0", "percent": 91.5});
    let denied = body(OTLP_TENANT, "release/r1", "CoverageVerified", "otlp-denied", "qa", coverage);
    let status = client.append(pb::AppendRequest { event: Some(wire(denied, &qa)) }).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    client.get_checkpoint(pb::GetCheckpointRequest { tenant: OTLP_TENANT.into(), size: 0 }).await.unwrap();

    drop(client);
    let exit = server.terminate();
    let log = server.log();
    assert!(exit.success(), "server exited with {exit}; log:\n{log}");
    assert!(!log.contains("flushing traces failed"), "log:\n{log}");

    let spans = collector.spans();
    let all: Vec<String> = spans.iter().map(|e| describe(&e.span)).collect();
    let appends: Vec<&Exported> = spans.iter().filter(|e| e.span.name == "release_ledger.v1.Ledger/Append").collect();
    // The registration, the accepted append and the rejected one.
    assert_eq!(appends.len(), 3, "exported spans:\n{}\nlog:\n{log}", all.join("\n"));
    for exported in &appends {
        let span = &exported.span;
        assert_eq!(attr(&exported.resource, "service.name"), string("release-ledger"), "{:?}", exported.resource);
        assert_eq!(span.kind, SpanKind::Server as i32, "{}", describe(span));
        assert_eq!(attr(&span.attributes, "rpc.system"), string("grpc"), "{}", describe(span));
        assert_eq!(attr(&span.attributes, "rpc.service"), string("release_ledger.v1.Ledger"), "{}", describe(span));
        assert_eq!(attr(&span.attributes, "rpc.method"), string("Append"), "{}", describe(span));
        assert_eq!(attr(&span.attributes, "tenant"), string(OTLP_TENANT), "{}", describe(span));
        assert_eq!(attr(&span.attributes, "releaseId"), string("release-1"), "{}", describe(span));
        assert_eq!(attr(&span.attributes, "traceId"), string("trace-1"), "{}", describe(span));
        assert!(span.trace_id.len() == 16 && span.span_id.len() == 8, "{}", describe(span));
    }
    let find = |event_type: &str| {
        let found = appends.iter().find(|e| attr(&e.span.attributes, "eventType") == string(event_type));
        &found.unwrap_or_else(|| panic!("no Append span of {event_type}; exported:\n{}", all.join("\n"))).span
    };

    let registration = find("AgentKeyRegistered");
    assert_eq!(attr(&registration.attributes, "agentId"), string("admin"), "{}", describe(registration));
    assert_eq!(attr(&registration.attributes, "rpc.grpc.status_code"), int(0));

    let ok = find("TestsPassed");
    assert_eq!(attr(&ok.attributes, "agentId"), string("qa"), "{}", describe(ok));
    // An i32 field is exported as an OTLP int.
    assert_eq!(attr(&ok.attributes, "rpc.grpc.status_code"), int(0), "{}", describe(ok));
    // Regression: `seq` was recorded as a u64, which tracing-opentelemetry exports as text.
    assert_eq!(attr(&ok.attributes, "seq"), int(seq as i64), "{}", describe(ok));
    assert_ne!(ok.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32), "{}", describe(ok));

    let rejected = find("CoverageVerified");
    assert_eq!(attr(&rejected.attributes, "agentId"), string("qa"), "{}", describe(rejected));
    assert_eq!(
        attr(&rejected.attributes, "rpc.grpc.status_code"),
        int(Code::PermissionDenied as i64),
        "{}",
        describe(rejected)
    );
    assert_eq!(attr(&rejected.attributes, "seq"), None, "{}", describe(rejected));
    // The rejection is logged inside the span, so it is exported as a span event named by its
    // message, with the code and the reason as attributes (regression: a second `message` field
    // used to replace the event's name with the status text).
    let event = rejected.events.iter().find(|e| e.name == "append rejected");
    let event = event.unwrap_or_else(|| panic!("no 'append rejected' span event: {:?}", rejected.events));
    assert_eq!(attr(&event.attributes, "code"), string("PermissionDenied"));
    assert!(attr(&event.attributes, "reason").is_some(), "{:?}", event.attributes);
    // Every RPC gets a span, not only appends (regression).
    let checkpoint = spans.iter().find(|e| e.span.name == "release_ledger.v1.Ledger/GetCheckpoint");
    let checkpoint = checkpoint.unwrap_or_else(|| panic!("no GetCheckpoint span:\n{}", all.join("\n")));
    assert_eq!(attr(&checkpoint.span.attributes, "tenant"), string(OTLP_TENANT));
    assert_eq!(attr(&checkpoint.span.attributes, "rpc.grpc.status_code"), int(0));
}

const JSON_TENANT: &str = "json-logs-1";

// Multi-threaded so the dropped client's connection closes while the test blocks on the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_per_line_with_span_fields() {
    let (_dir, data) = temp_data_dir();
    let mut server = Spawned::start(&data, &["--log-format", "json"], &[]);
    let mut client = server.client().await;
    // One RPC: an append signed by a key nobody registered in the tenant.
    let stranger = KeyPair::generate();
    let event = body(JSON_TENANT, "release/r1", "TestsPassed", "json-1", "stranger", tests_passed(1));
    let status = client.append(pb::AppendRequest { event: Some(wire(event, &stranger)) }).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    drop(client);
    let exit = server.terminate();
    let log = server.log();
    assert!(exit.success(), "server exited with {exit}; log:\n{log}");

    let mut lines = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}\nlog:\n{log}"));
        let object = value.as_object().unwrap_or_else(|| panic!("not a JSON object: {line:?}"));
        // tracing-subscriber's JSON format: timestamp, level, fields (with the message), target.
        let timestamp = object.get("timestamp").and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{line}"));
        chrono::DateTime::parse_from_rfc3339(timestamp).unwrap_or_else(|e| panic!("timestamp {timestamp:?}: {e}"));
        let level = object.get("level").and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{line}"));
        assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level), "{line}");
        assert!(object.get("fields").is_some_and(serde_json::Value::is_object), "{line}");
        assert!(object.get("target").is_some_and(serde_json::Value::is_string), "{line}");
        lines.push(value);
    }
    let message = |v: &serde_json::Value| v["fields"]["message"].as_str().map(str::to_owned);
    assert!(lines.iter().any(|l| message(l).as_deref() == Some("serving")), "log:\n{log}");
    assert!(lines.iter().any(|l| message(l).as_deref() == Some("stopped")), "log:\n{log}");

    // The rejection is logged inside the RPC span: the line carries the span and its fields, its
    // message, and the status as `code` and `reason` (regression: a second `message` key used to
    // overwrite "append rejected").
    let code = format!("{:?}", status.code());
    let rejected = lines
        .iter()
        .find(|l| message(l).as_deref() == Some("append rejected"))
        .unwrap_or_else(|| panic!("no 'append rejected' line; log:\n{log}"));
    assert_eq!(rejected["fields"]["code"], code.as_str(), "{rejected}");
    assert!(rejected["fields"]["reason"].as_str().is_some_and(|r| r.contains("unknown key")), "{rejected}");
    let span = &rejected["span"];
    assert_eq!(span["name"], "rpc", "{rejected}");
    assert_eq!(span["tenant"], JSON_TENANT, "{rejected}");
    assert_eq!(span["eventType"], "TestsPassed", "{rejected}");
    assert_eq!(span["agentId"], "stranger", "{rejected}");
    assert_eq!(span["rpc.method"], "Append", "{rejected}");
    assert_eq!(span["rpc.system"], "grpc", "{rejected}");
    assert_eq!(rejected["spans"].as_array().map(Vec::len), Some(1), "{rejected}");
    assert_eq!(rejected["spans"][0]["tenant"], JSON_TENANT, "{rejected}");
}

/// The caller's trace and span in the trace context tests.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
/// OTLP span flags: whether the span's parent is known to be remote or not, and that it is.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

/// A sampled version-00 `traceparent`.
fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

/// `message` as a request carrying `metadata`.
fn with_metadata<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (name, value) in metadata {
        request.metadata_mut().insert(*name, value.parse().unwrap());
    }
    request
}

/// A collector and a server exporting to it, with `env` added to the server's environment.
async fn exporting(env: &[(&str, &str)]) -> (Collector, Spawned, tempfile::TempDir, PathBuf) {
    let collector = Collector::default();
    let endpoint = format!("http://{}", collector.start().await);
    let (dir, data) = temp_data_dir();
    let mut vars = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())];
    vars.extend_from_slice(env);
    let server = Spawned::start(&data, &[], &vars);
    (collector, server, dir, data)
}

/// Stops the server cleanly (which flushes its spans); what the collector received.
fn stop(mut server: Spawned, collector: &Collector) -> Vec<Exported> {
    let exit = server.terminate();
    let log = server.log();
    assert!(exit.success(), "server exited with {exit}; log:\n{log}");
    assert!(!log.contains("flushing traces failed"), "log:\n{log}");
    collector.spans()
}

/// The one exported span named `name`.
fn the_span<'a>(spans: &'a [Exported], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().map(|e| &e.span).filter(|s| s.name == name).collect();
    let all: Vec<String> = spans.iter().map(|e| describe(&e.span)).collect();
    assert_eq!(found.len(), 1, "{name} spans among:\n{}", all.join("\n"));
    found[0]
}

/// `span` is a child of the remote span `parent` in `trace`.
fn assert_child_of(span: &Span, trace: &str, parent: &str) {
    assert_eq!(hex::encode(&span.trace_id), trace, "{}", describe(span));
    assert_eq!(hex::encode(&span.parent_span_id), parent, "{}", describe(span));
    assert!(span.span_id.len() == 8 && hex::encode(&span.span_id) != parent, "{}", describe(span));
    let remote = FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE;
    assert_eq!(span.flags & remote, remote, "the parent is remote: {}", describe(span));
}

/// `span` starts a trace of its own, other than `not_trace`.
fn assert_root(span: &Span, not_trace: &str) {
    assert!(span.parent_span_id.is_empty(), "{}", describe(span));
    assert_eq!(span.trace_id.len(), 16, "{}", describe(span));
    assert_ne!(hex::encode(&span.trace_id), not_trace, "{}", describe(span));
}

/// An `AgentKeyRegistered` append of a new key for `agent`, signed by the data dir's admin key.
fn registration(data: &Path, tenant: &str, agent: &str) -> pb::AppendRequest {
    let key = KeyPair::generate();
    let registered = serde_json::json!({
        "agentId": agent, "publicKey": key.public_key_base64(), "roles": ["QA"], "eventTypes": ["TestsPassed"],
    });
    let body = body(tenant, "keys", "AgentKeyRegistered", &format!("reg-{agent}"), "admin", registered);
    pb::AppendRequest { event: Some(wire(body, &Spawned::admin(data))) }
}

const CONTEXT_TENANT: &str = "otlp-context-1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_traceparent_parents_the_rpc_spans_and_its_baggage_is_recorded_under_a_prefix() {
    let (collector, server, _dir, data) = exporting(&[]).await;
    let mut client = server.client().await;
    let parent = traceparent(CALLER_TRACE, CALLER_SPAN);
    // A value that needs percent-decoding, and a key that names a span field of the ledger's own.
    let baggage = "ci.pipeline=build%207,tenant=forged";
    let request =
        with_metadata(registration(&data, CONTEXT_TENANT, "qa"), &[("traceparent", &parent), ("baggage", baggage)]);
    client.append(request).await.unwrap();
    // A streaming RPC, with a trace state.
    let read = pb::ReadRequest { tenant: CONTEXT_TENANT.into(), from_seq: 0, to_seq: 0 };
    let other_span = "b7ad6b7169203331";
    let metadata = [("traceparent", traceparent(CALLER_TRACE, other_span)), ("tracestate", "vendor=x".to_owned())];
    let metadata: Vec<(&'static str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut entries = client.read(with_metadata(read, &metadata)).await.unwrap().into_inner();
    let mut read_entries = 0;
    while entries.message().await.unwrap().is_some() {
        read_entries += 1;
    }
    assert!(read_entries >= 1, "the registration is in the log");
    // Without a traceparent, on the same connection: a root span, as before.
    client.get_checkpoint(pb::GetCheckpointRequest { tenant: CONTEXT_TENANT.into(), size: 0 }).await.unwrap();
    // A trace the caller did not sample (flags 00): served, and its span not exported.
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    client.get_info(with_metadata(pb::GetInfoRequest {}, &[("traceparent", &unsampled)])).await.unwrap();
    drop(client);
    let spans = stop(server, &collector);

    let append = the_span(&spans, "release_ledger.v1.Ledger/Append");
    assert_child_of(append, CALLER_TRACE, CALLER_SPAN);
    assert_eq!(attr(&append.attributes, "baggage.ci.pipeline"), string("build 7"), "{}", describe(append));
    assert_eq!(attr(&append.attributes, "baggage.tenant"), string("forged"), "{}", describe(append));
    // The caller's baggage cannot overwrite the ledger's own fields.
    assert_eq!(attr(&append.attributes, "tenant"), string(CONTEXT_TENANT), "{}", describe(append));
    assert_eq!(attr(&append.attributes, "rpc.grpc.status_code"), int(0), "{}", describe(append));

    let read = the_span(&spans, "release_ledger.v1.Ledger/Read");
    assert_child_of(read, CALLER_TRACE, other_span);
    assert_eq!(read.trace_state, "vendor=x", "{}", describe(read));
    // Baggage is per request: the Read carried none.
    assert!(!read.attributes.iter().any(|kv| kv.key.starts_with("baggage.")), "{}", describe(read));

    let checkpoint = the_span(&spans, "release_ledger.v1.Ledger/GetCheckpoint");
    assert_root(checkpoint, CALLER_TRACE);
    assert_eq!(checkpoint.flags & FLAG_IS_REMOTE, 0, "{}", describe(checkpoint));
    assert!(!checkpoint.attributes.iter().any(|kv| kv.key.starts_with("baggage.")), "{}", describe(checkpoint));
    assert!(
        !spans.iter().any(|e| e.span.name == "release_ledger.v1.Ledger/GetInfo"),
        "the unsampled trace is not exported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_traceparent_is_ignored_and_the_rpc_gets_a_root_span() {
    let (collector, server, _dir, data) = exporting(&[]).await;
    let mut client = server.client().await;
    // The trace id is one digit short. The SDK's own parser would read it as trace
    // 0af7651916cd43dd8448eb211c80319c; the W3C format says it is no traceparent at all.
    let short = "af7651916cd43dd8448eb211c80319c";
    let request = with_metadata(
        registration(&data, CONTEXT_TENANT, "qa"),
        &[("traceparent", &format!("00-{short}-{CALLER_SPAN}-01")), ("tracestate", "vendor=x")],
    );
    client.append(request).await.unwrap();
    let checkpoint = pb::GetCheckpointRequest { tenant: CONTEXT_TENANT.into(), size: 0 };
    let request = with_metadata(checkpoint, &[("traceparent", "not a traceparent")]);
    client.get_checkpoint(request).await.unwrap();
    // All-zero ids are invalid too.
    let zeros = traceparent(&"0".repeat(32), CALLER_SPAN);
    client.get_info(with_metadata(pb::GetInfoRequest {}, &[("traceparent", &zeros)])).await.unwrap();
    drop(client);
    let spans = stop(server, &collector);

    let append = the_span(&spans, "release_ledger.v1.Ledger/Append");
    assert_root(append, &format!("0{short}"));
    assert!(append.trace_state.is_empty(), "{}", describe(append));
    assert_eq!(attr(&append.attributes, "rpc.grpc.status_code"), int(0), "{}", describe(append));
    let checkpoint = the_span(&spans, "release_ledger.v1.Ledger/GetCheckpoint");
    assert_root(checkpoint, CALLER_TRACE);
    let info = the_span(&spans, "release_ledger.v1.Ledger/GetInfo");
    assert_root(info, &"0".repeat(32));
    // Three requests, three traces.
    let traces: std::collections::BTreeSet<&[u8]> =
        [append, checkpoint, info].iter().map(|s| s.trace_id.as_slice()).collect();
    assert_eq!(traces.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_flight_rpcs_are_parented_by_the_callers_traceparent_too() {
    let (collector, server, _dir, _data) = exporting(&[]).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.grpc)).unwrap().connect().await;
    let channel =
        tonic::service::interceptor::InterceptedService::new(channel.unwrap(), crate::Bearer::new(&server.token));
    let query_span = "1111111111111111";
    let flight_span = "2222222222222222";
    let mut query = proto::v1::query_client::QueryClient::new(channel.clone());
    let request =
        with_metadata(pb::GetGovernanceStatusRequest {}, &[("traceparent", &traceparent(CALLER_TRACE, query_span))]);
    // Whether or not the projections have loaded yet (UNAVAILABLE until then), the RPC has a span.
    let _ = query.get_governance_status(request).await;
    // Arrow Flight's own client, with its per-client headers.
    let mut flight = arrow_flight::FlightClient::new(channel);
    flight.add_header("traceparent", &traceparent(CALLER_TRACE, flight_span)).unwrap();
    flight.add_header("baggage", "ci.job=export").unwrap();
    if let Ok(infos) = flight.list_flights(Vec::new()).await {
        let _ = futures::TryStreamExt::try_collect::<Vec<_>>(infos).await;
    }
    drop((query, flight));
    let spans = stop(server, &collector);

    let status = the_span(&spans, "release_ledger.v1.Query/GetGovernanceStatus");
    assert_child_of(status, CALLER_TRACE, query_span);
    let list = the_span(&spans, "arrow.flight.protocol.FlightService/ListFlights");
    assert_child_of(list, CALLER_TRACE, flight_span);
    assert_eq!(attr(&list.attributes, "baggage.ci.job"), string("export"), "{}", describe(list));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_service_name_and_resource_attributes_shape_the_exported_resource() {
    let collector = Collector::default();
    // The signal-specific endpoint variable alone switches the export on.
    let endpoint = format!("http://{}", collector.start().await);
    let (_dir, data) = temp_data_dir();
    let env = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
        ("OTEL_SERVICE_NAME", "ledger-eu"),
        // OTEL_SERVICE_NAME wins over the service.name here; values are percent-decoded.
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=not-this,deployment.environment.name=staging%20eu,service.namespace=ci",
        ),
    ];
    let server = Spawned::start(&data, &[], &env);
    let mut client = server.client().await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap();
    drop(client);
    let spans = stop(server, &collector);

    let all: Vec<String> = spans.iter().map(|e| describe(&e.span)).collect();
    let info = spans.iter().find(|e| e.span.name == "release_ledger.v1.Ledger/GetInfo");
    let info = info.unwrap_or_else(|| panic!("no GetInfo span:\n{}", all.join("\n")));
    let resource = &info.resource;
    assert_eq!(attr(resource, "service.name"), string("ledger-eu"), "{resource:?}");
    assert_eq!(attr(resource, "deployment.environment.name"), string("staging eu"), "{resource:?}");
    assert_eq!(attr(resource, "service.namespace"), string("ci"), "{resource:?}");
    assert_eq!(attr(resource, "telemetry.sdk.language"), string("rust"), "{resource:?}");
    // Every exported span carries the same resource.
    assert!(spans.iter().all(|e| attr(&e.resource, "service.name") == string("ledger-eu")), "{resource:?}");

    // Without OTEL_SERVICE_NAME, the service.name of OTEL_RESOURCE_ATTRIBUTES.
    let collector = Collector::default();
    let endpoint = format!("http://{}", collector.start().await);
    let (_dir, data) = temp_data_dir();
    let env =
        [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_RESOURCE_ATTRIBUTES", "service.name=ledger-us")];
    let server = Spawned::start(&data, &[], &env);
    let mut client = server.client().await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap();
    drop(client);
    let spans = stop(server, &collector);
    assert!(!spans.is_empty());
    assert!(spans.iter().all(|e| attr(&e.resource, "service.name") == string("ledger-us")), "{:?}", spans[0].resource);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_sdk_disabled_and_otel_traces_exporter_none_switch_the_export_off() {
    for off in [("OTEL_SDK_DISABLED", "true"), ("OTEL_TRACES_EXPORTER", "none")] {
        let (collector, server, _dir, _data) = exporting(&[off]).await;
        let mut client = server.client().await;
        client.get_info(pb::GetInfoRequest {}).await.unwrap();
        drop(client);
        let spans = stop(server, &collector);
        assert!(spans.is_empty(), "{off:?}: {} spans exported", spans.len());
        assert!(collector.requests.lock().unwrap().is_empty(), "{off:?}");
    }
    // The control: the same RPC with the export on reaches the collector.
    let (collector, server, _dir, _data) = exporting(&[("OTEL_SDK_DISABLED", "false")]).await;
    let mut client = server.client().await;
    client.get_info(pb::GetInfoRequest {}).await.unwrap();
    drop(client);
    let spans = stop(server, &collector);
    the_span(&spans, "release_ledger.v1.Ledger/GetInfo");
}

/// Runs the CLI against `server` with `env` added to a cleaned environment.
fn cli_with(server: &Spawned, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if inherited_telemetry(&name.to_string_lossy()) {
            command.env_remove(&name);
        }
    }
    command
        .current_dir(cwd)
        .env("RELEASE_LEDGER_SERVER", format!("http://{}", server.grpc))
        .env("RELEASE_LEDGER_TOKEN", &server.token)
        .envs(env.iter().copied());
    command.args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_propagates_traceparent_tracestate_and_baggage_from_its_environment() {
    let (collector, server, dir, data) = exporting(&[]).await;
    let admin = data.join("keys/admin.pem");
    let admin = admin.to_str().unwrap();
    let public_key = KeyPair::generate().public_key_base64();
    let parent = traceparent(CALLER_TRACE, CALLER_SPAN);
    let env = [("TRACEPARENT", parent.as_str()), ("TRACESTATE", "ci=1"), ("BAGGAGE", "ci.job=release%20gate")];
    // `keys register` makes two RPCs: GetInfo (to name the admin key's agent) and the Append.
    let register = [
        "keys",
        "register",
        "--tenant",
        CONTEXT_TENANT,
        "--create-tenant",
        "--agent",
        "ci",
        "--public-key",
        &public_key,
    ];
    let output = cli_with(&server, dir.path(), &env, &[&register[..], &["--admin-key", admin]].concat());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(!stderr.contains("TRACEPARENT"), "{stderr}");

    // An invalid TRACEPARENT: one line on stderr, and the command works, unparented.
    let env = [("TRACEPARENT", "00-abc-def-01"), ("BAGGAGE", "ci.job=lint")];
    let output = cli_with(&server, dir.path(), &env, &["keys", "list", "--tenant", CONTEXT_TENANT, "--json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("TRACEPARENT")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].starts_with("release-ledger: ignoring TRACEPARENT"), "{stderr}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"ci\""), "the registered key is listed");
    let spans = stop(server, &collector);

    for name in ["release_ledger.v1.Ledger/GetInfo", "release_ledger.v1.Ledger/Append"] {
        let span = the_span(&spans, name);
        assert_child_of(span, CALLER_TRACE, CALLER_SPAN);
        assert_eq!(span.trace_state, "ci=1", "{}", describe(span));
        assert_eq!(attr(&span.attributes, "baggage.ci.job"), string("release gate"), "{}", describe(span));
    }
    let list = the_span(&spans, "release_ledger.v1.Ledger/ListKeys");
    assert_root(list, CALLER_TRACE);
    // BAGGAGE is independent of the trace context and still sent.
    assert_eq!(attr(&list.attributes, "baggage.ci.job"), string("lint"), "{}", describe(list));
}
