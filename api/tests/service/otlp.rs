//! Telemetry of the real binary: RPC spans exported over OTLP/gRPC (to an in-process fake
//! collector) with the attributes the README promises, and `--log-format json` stderr lines.
//!
//! The shared `Server::start` cannot set environment variables, so these tests spawn the
//! binary themselves, with every inherited `OTEL_*` and `RELEASE_LEDGER_*` variable removed.

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

/// A `release-ledger serve` process started with a chosen environment.
struct Spawned {
    child: Child,
    grpc: SocketAddr,
    log: PathBuf,
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
            let text = name.to_string_lossy();
            if text.starts_with("OTEL_") || text.starts_with("RELEASE_LEDGER_") {
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
        Self { child, grpc, log }
    }

    async fn client(&self) -> LedgerClient<tonic::transport::Channel> {
        LedgerClient::connect(format!("http://{}", self.grpc)).await.unwrap()
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

/// A span's attributes as `key=value` lines, for failure messages.
fn describe(span: &Span) -> String {
    let attributes: Vec<String> = span.attributes.iter().map(|kv| format!("{}={:?}", kv.key, kv.value)).collect();
    format!("{} kind={} {}", span.name, span.kind, attributes.join(" "))
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
