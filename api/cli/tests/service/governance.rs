//! Governance end to end over gRPC: events appended through the `Ledger` service, decisions
//! derived and appended by the server's projection worker, read back through the `Query`
//! service; the catalogue's refusals (nothing stored); the governance metrics.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ledger::KeyPair;
use proto::v1 as pb;
use proto::v1::ledger_client::LedgerClient;
use proto::v1::query_client::QueryClient;
use tonic::Code;

use crate::{temp_data_dir, wire, Authed, Server};

/// How long the asynchronous worker may take to reach a state.
const DEADLINE: Duration = Duration::from_secs(20);

const POLICY: &str =
    r#"{"policy": {"version": 1, "environments": {"prod": {"roles": ["QA", "ReleaseManager"], "minApprovers": 2}}}}"#;

/// The clients and keys of one governed tenant.
struct Gov {
    tenant: &'static str,
    ledger: LedgerClient<Authed>,
    query: QueryClient<Authed>,
    admin: KeyPair,
    next_id: u32,
}

impl Gov {
    async fn new(server: &Server, tenant: &'static str) -> Self {
        let query = QueryClient::new(server.channel().await);
        Self { tenant, ledger: server.client().await, query, admin: server.admin(), next_id: 0 }
    }

    /// An event body; `release` is the body's `releaseId` (tenant-wide events have none).
    fn body(&mut self, release: Option<&str>, event_type: &str, agent: &str, data: serde_json::Value) -> Vec<u8> {
        self.next_id += 1;
        let mut body = serde_json::json!({
            "tenant": self.tenant,
            "stream": release.map_or_else(|| "config".to_owned(), |r| format!("release/{r}")),
            "type": event_type,
            "eventId": format!("{event_type}-{}", self.next_id),
            "occurredAt": "2025-05-23T09:32:00Z",
            "traceId": "trace-gov",
            "actor": {"agentId": agent},
            "data": data,
        });
        if let Some(release) = release {
            body["releaseId"] = release.into();
        }
        serde_json::to_vec(&body).unwrap()
    }

    /// Appends and returns the entry's seq.
    async fn append(
        &mut self,
        release: Option<&str>,
        event_type: &str,
        agent: &str,
        key: &KeyPair,
        data: serde_json::Value,
    ) -> u64 {
        let body = self.body(release, event_type, agent, data);
        let response = self.ledger.append(pb::AppendRequest { event: Some(wire(body, key)) }).await;
        let receipt = response.unwrap_or_else(|e| panic!("{event_type}: {e:?}")).into_inner().receipt.unwrap();
        receipt.seq
    }

    /// Appends and expects a refusal; returns it.
    async fn refused(&mut self, body: Vec<u8>, key: &KeyPair) -> tonic::Status {
        self.ledger.append(pb::AppendRequest { event: Some(wire(body, key)) }).await.unwrap_err()
    }

    /// Registers an agent key holding `roles` (any ordinary event type).
    async fn register(&mut self, agent: &str, roles: &[&str]) -> KeyPair {
        let key = KeyPair::generate();
        let data = serde_json::json!({
            "agentId": agent, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": [],
        });
        let admin = self.admin.clone();
        self.append(None, "AgentKeyRegistered", "admin", &admin, data).await;
        key
    }

    async fn policy(&mut self) -> u64 {
        let admin = self.admin.clone();
        self.append(None, "PolicyUpdated", "admin", &admin, serde_json::from_str(POLICY).unwrap()).await
    }

    async fn size(&mut self) -> u64 {
        let request = pb::GetCheckpointRequest { tenant: self.tenant.into(), size: 0 };
        self.ledger.get_checkpoint(request).await.unwrap().into_inner().size
    }

    async fn summary(&mut self, release: &str) -> Result<pb::ReleaseSummary, tonic::Status> {
        let request = pb::GetReleaseSummaryRequest { tenant: self.tenant.into(), release_id: release.into() };
        self.query.get_release_summary(request).await.map(tonic::Response::into_inner)
    }

    /// Polls the summary until `done` holds (the worker is asynchronous).
    async fn wait(
        &mut self,
        release: &str,
        what: &str,
        done: impl Fn(&pb::ReleaseSummary) -> bool,
    ) -> pb::ReleaseSummary {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let summary = self.summary(release).await;
            match &summary {
                Ok(s) if done(s) => return s.clone(),
                _ if Instant::now() > deadline => panic!("{release}: never {what}; last: {summary:#?}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Waits until the release is at `status` by the decision triggered at seq `trigger`, and
    /// that decision is in the log. Each step waits for its decision before the next event, so
    /// decision entries land in trigger order and the summary's decision seq is unambiguous.
    async fn wait_decision(&mut self, release: &str, status: &str, trigger: u64) -> pb::ReleaseSummary {
        self.wait(release, &format!("{status} by seq {trigger}"), |s| {
            s.status == status && s.last_decision.as_ref().is_some_and(|d| d.trigger == trigger && d.seq.is_some())
        })
        .await
    }

    /// Waits until the worker has folded every entry of the tenant.
    async fn settle(&mut self) -> pb::TenantLag {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let status = self.query.get_governance_status(pb::GetGovernanceStatusRequest {}).await.unwrap();
            let lag = status.into_inner().tenants.into_iter().find(|t| t.tenant == self.tenant);
            match lag {
                Some(lag) if lag.lag_entries == 0 => return lag,
                _ if Instant::now() > deadline => panic!("the projections never caught up: {lag:?}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

fn modules(version: &str) -> serde_json::Value {
    serde_json::json!([{"name": "api", "version": version}])
}

fn intent(version: &str) -> serde_json::Value {
    serde_json::json!({"environment": "prod", "modules": modules(version), "projectId": "shop"})
}

fn tests_passed(version: &str) -> serde_json::Value {
    serde_json::json!({"module": "api", "version": version, "suite": "unit", "passed": 12, "failed": 0})
}

fn security(version: &str, cve: &str) -> serde_json::Value {
    serde_json::json!({
        "module": "api", "version": version, "status": "Passed", "cveSeverity": cve,
        "imageSigned": true, "sbomPresent": true, "licenseCompliant": true,
    })
}

fn approval(role: &str) -> serde_json::Value {
    serde_json::json!({"role": role, "comment": format!("{role} signs off"), "method": "CLI"})
}

/// `GET /metrics`; returns the body.
fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_lifecycle_over_grpc() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut gov = Gov::new(&server, "shop").await;
    let policy_seq = gov.policy().await;
    let pipeline = gov.register("pipeline", &[]).await;
    let qa = gov.register("qa-1", &["QA"]).await;
    let manager = gov.register("rm-1", &["ReleaseManager"]).await;

    // r1: intent, passing evidence, evaluation → waiting for the two required roles.
    let intent_seq = gov.append(Some("r1"), "ReleaseIntentDeclared", "pipeline", &pipeline, intent("1.4.0")).await;
    gov.wait_decision("r1", "Planned", intent_seq).await;
    gov.append(Some("r1"), "TestsPassed", "pipeline", &pipeline, tests_passed("1.4.0")).await;
    gov.append(Some("r1"), "SecurityGateStatus", "pipeline", &pipeline, security("1.4.0", "None")).await;
    let request = serde_json::json!({"reason": "pipeline green"});
    let seq = gov.append(Some("r1"), "ReleaseEvaluationRequested", "pipeline", &pipeline, request).await;
    let delayed = gov.wait_decision("r1", "Delayed", seq).await;
    let codes: Vec<&str> = delayed.reasons.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["ApprovalPending"], "{delayed:#?}");
    assert_eq!(delayed.policy_version, Some(1));
    assert_eq!(delayed.retryable, Some(true));
    assert_eq!(delayed.environment.as_deref(), Some("prod"));
    assert_eq!(delayed.modules, [pb::ModuleVersion { name: "api".into(), version: "1.4.0".into() }]);
    assert_eq!(delayed.declared_by.as_deref(), Some("pipeline"));
    assert_eq!(delayed.trace_id.as_deref(), Some("trace-gov"));
    assert_eq!(delayed.project_id.as_deref(), Some("shop"));
    let delayed_seq = delayed.last_decision.as_ref().unwrap().seq.unwrap();

    // One approval per required role, from keys that hold them → approved.
    let seq = gov.append(Some("r1"), "ApprovalGranted", "qa-1", &qa, approval("QA")).await;
    let waiting = gov.wait_decision("r1", "Delayed", seq).await;
    assert!(waiting.reasons[0].detail.contains("ReleaseManager"), "{waiting:#?}");
    let seq = gov.append(Some("r1"), "ApprovalGranted", "rm-1", &manager, approval("ReleaseManager")).await;
    let approved = gov.wait_decision("r1", "Approved", seq).await;
    assert!(approved.reasons.is_empty(), "{approved:#?}");
    let approved_ref = approved.last_decision.clone().unwrap();
    assert_eq!(approved_ref.r#type, "ReleaseApproved");
    let approved_seq = approved_ref.seq.unwrap();
    let roles: Vec<(&str, bool, Option<&str>)> =
        approved.approvals.iter().map(|a| (a.role.as_str(), a.granted, a.method.as_deref())).collect();
    assert_eq!(roles, [("QA", true, Some("CLI")), ("ReleaseManager", true, Some("CLI"))]);

    // Deployed → published.
    let deployed_seq = gov
        .append(Some("r1"), "DeploymentCompleted", "pipeline", &pipeline, serde_json::json!({"environment": "prod"}))
        .await;
    let published = gov.wait_decision("r1", "Published", deployed_seq).await;
    assert!(published.notes.is_empty(), "{published:#?}");

    // The approval, explained: every gate with its verdict, re-derived bit for bit from the log.
    let explain = |seq: Option<u64>| pb::ExplainDecisionRequest { tenant: "shop".into(), release_id: "r1".into(), seq };
    let decision = gov.query.explain_decision(explain(Some(approved_seq))).await.unwrap().into_inner();
    assert_eq!(
        (decision.seq, decision.r#type.as_str(), decision.status.as_str()),
        (Some(approved_seq), "ReleaseApproved", "Approved")
    );
    assert_eq!(decision.reproduced, Some(true), "{decision:#?}");
    assert_eq!(decision.policy_version, Some(1));
    assert!(decision.evidence.contains(&policy_seq) && decision.evidence.contains(&intent_seq), "{decision:#?}");
    let gates: Vec<(&str, &str)> = decision.gates.iter().map(|g| (g.gate.as_str(), g.verdict.as_str())).collect();
    for gate in ["intent", "policy", "trace", "tests:api", "security:api", "compliance", "freeze", "approvals"] {
        assert!(gates.contains(&(gate, "Pass")), "{gate} did not pass: {gates:?}");
    }
    assert!(gates.contains(&("risk", "NotApplicable")), "{gates:?}");
    let decision = gov.query.explain_decision(explain(Some(delayed_seq))).await.unwrap().into_inner();
    assert_eq!(decision.reproduced, Some(true), "{decision:#?}");
    let pending: Vec<&str> =
        decision.gates.iter().filter(|g| g.verdict == "Pending").map(|g| g.gate.as_str()).collect();
    assert_eq!(pending, ["approvals"], "{decision:#?}");
    // Default: the latest decision in the log.
    let latest = gov.query.explain_decision(explain(None)).await.unwrap().into_inner();
    assert_eq!((latest.r#type.as_str(), latest.reproduced), ("ReleasePublished", Some(true)), "{latest:#?}");
    // A seq that is not one of this release's decisions.
    let status = gov.query.explain_decision(explain(Some(intent_seq))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = gov.query.explain_decision(explain(Some(1_000_000))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // The timeline: every entry about r1, in seq order, decisions included.
    let request = pb::GetReleaseTimelineRequest { tenant: "shop".into(), release_id: "r1".into() };
    let timeline = gov.query.get_release_timeline(request).await.unwrap().into_inner().items;
    assert!(timeline.windows(2).all(|w| w[0].seq < w[1].seq), "{timeline:#?}");
    assert_eq!(timeline[0].seq, intent_seq);
    assert_eq!(timeline[0].r#type, "ReleaseIntentDeclared");
    assert_eq!(timeline[0].agent_id, "pipeline");
    let types: Vec<&str> = timeline.iter().map(|t| t.r#type.as_str()).collect();
    for t in
        ["ReleasePlanned", "TestsPassed", "ReleaseDelayed", "ApprovalGranted", "ReleaseApproved", "ReleasePublished"]
    {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    assert!(timeline.iter().any(|t| t.seq == approved_seq && t.agent_id == "release-ledger"), "{timeline:#?}");

    // Replay as of the intent: planned, one timeline item.
    let replay = |as_of| pb::ReplayAsOfRequest { tenant: "shop".into(), release_id: "r1".into(), as_of: Some(as_of) };
    let then =
        gov.query.replay_as_of(replay(pb::replay_as_of_request::AsOf::Seq(intent_seq))).await.unwrap().into_inner();
    assert_eq!(then.size, intent_seq + 1);
    assert_eq!(then.summary.as_ref().unwrap().status, "Planned", "{then:#?}");
    assert_eq!(then.timeline.iter().map(|t| t.seq).collect::<Vec<_>>(), [intent_seq]);
    // Before the release existed: no summary.
    let before =
        gov.query.replay_as_of(replay(pb::replay_as_of_request::AsOf::Seq(policy_seq))).await.unwrap().into_inner();
    assert!(before.summary.is_none() && before.timeline.is_empty(), "{before:#?}");
    // As of a time after everything: today's state.
    let time = pb::replay_as_of_request::AsOf::Time("2200-01-01T00:00:00Z".into());
    let now = gov.query.replay_as_of(replay(time)).await.unwrap().into_inner();
    assert_eq!(now.summary.unwrap().status, "Published");

    // More releases for the listing: r2 and r4 planned, r3 rejected by its security scan.
    for release in ["r2", "r4"] {
        let seq = gov.append(Some(release), "ReleaseIntentDeclared", "pipeline", &pipeline, intent("1.5.0")).await;
        gov.wait_decision(release, "Planned", seq).await;
    }
    let seq = gov.append(Some("r3"), "ReleaseIntentDeclared", "pipeline", &pipeline, intent("1.6.0")).await;
    gov.wait_decision("r3", "Planned", seq).await;
    gov.append(Some("r3"), "TestsPassed", "pipeline", &pipeline, tests_passed("1.6.0")).await;
    gov.append(Some("r3"), "SecurityGateStatus", "pipeline", &pipeline, security("1.6.0", "Critical")).await;
    let seq = gov.append(Some("r3"), "ReleaseEvaluationRequested", "pipeline", &pipeline, serde_json::json!({})).await;
    let rejected = gov.wait_decision("r3", "Rejected", seq).await;
    assert_eq!(rejected.reasons[0].code, "SecurityGateFailed", "{rejected:#?}");
    assert_eq!(rejected.retryable, Some(false));

    let list = |status: Option<&str>, page_size, page_token: &str| pb::ListReleasesRequest {
        tenant: "shop".into(),
        environment: Some("prod".into()),
        status: status.map(str::to_owned),
        updated_from: None,
        updated_to: None,
        page_size,
        page_token: page_token.into(),
    };
    let page = gov.query.list_releases(list(Some("Planned"), 1, "")).await.unwrap().into_inner();
    assert_eq!(page.releases.iter().map(|r| r.release_id.as_str()).collect::<Vec<_>>(), ["r2"]);
    assert_eq!(page.next_page_token, "r2");
    let page = gov.query.list_releases(list(Some("Planned"), 1, &page.next_page_token)).await.unwrap().into_inner();
    assert_eq!(page.releases.iter().map(|r| r.release_id.as_str()).collect::<Vec<_>>(), ["r4"]);
    assert_eq!(page.next_page_token, "", "the last page has no token");
    let all = gov.query.list_releases(list(None, 0, "")).await.unwrap().into_inner();
    let statuses: Vec<(&str, &str)> = all.releases.iter().map(|r| (r.release_id.as_str(), r.status.as_str())).collect();
    assert_eq!(statuses, [("r1", "Published"), ("r2", "Planned"), ("r3", "Rejected"), ("r4", "Planned")]);
    let mut window = list(None, 0, "");
    window.updated_from = Some("2200-01-01T00:00:00Z".into());
    assert!(gov.query.list_releases(window).await.unwrap().into_inner().releases.is_empty());

    // History of api in prod: r1's decisions and deployment, r3's rejection.
    let request =
        pb::ListReleaseHistoryRequest { tenant: "shop".into(), module: "api".into(), environment: "prod".into() };
    let history = gov.query.list_release_history(request).await.unwrap().into_inner().items;
    let events: Vec<(&str, &str, &str)> =
        history.iter().map(|h| (h.release_id.as_str(), h.version.as_str(), h.event.as_str())).collect();
    for item in [
        ("r1", "1.4.0", "Approved"),
        ("r1", "1.4.0", "DeploymentCompleted"),
        ("r1", "1.4.0", "Published"),
        ("r3", "1.6.0", "Rejected"),
    ] {
        assert!(events.contains(&item), "{item:?} missing from {events:?}");
    }
    assert!(history.windows(2).all(|w| w[0].seq <= w[1].seq), "{history:#?}");

    let request = pb::ListApprovalsRequest { tenant: "shop".into(), release_id: "r1".into() };
    let approvals = gov.query.list_approvals(request).await.unwrap().into_inner().approvals;
    let by: Vec<(&str, &str, &str)> =
        approvals.iter().map(|a| (a.agent_id.as_str(), a.role.as_str(), a.key_id.as_str())).collect();
    let (qa_id, rm_id) = (qa.key_id().to_hex(), manager.key_id().to_hex());
    assert_eq!(by, [("qa-1", "QA", qa_id.as_str()), ("rm-1", "ReleaseManager", rm_id.as_str())]);
    assert!(approvals.iter().all(|a| a.granted && a.text.ends_with("signs off") && !a.recorded_at.is_empty()));

    let request = pb::GetRiskScoreRequest { tenant: "shop".into(), release_id: "r1".into() };
    let risk = gov.query.get_risk_score(request).await.unwrap().into_inner();
    assert_eq!(Some(risk.score), published.risk_score);
    assert_eq!(risk.factors.iter().map(|f| f.points).sum::<u32>().min(100), risk.score, "{risk:#?}");
    assert!(risk.evaluated_at.ends_with('Z'), "{risk:#?}");

    let lag = gov.settle().await;
    assert_eq!(lag.position, gov.size().await);

    // Metrics: one approval, one publication, a rejection labelled by its reason.
    let text = scrape(server.metrics);
    assert_eq!(sample(&text, "release_approved_total"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "release_published_total"), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"release_rejected_total{reason="SecurityGateFailed"}"#), Some(1.0), "{text}");
    assert_eq!(sample(&text, r#"release_rejected_total{reason="TestsIncomplete"}"#), Some(0.0), "{text}");
    assert!(sample(&text, "release_delayed_total").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(sample(&text, "approval_duration_seconds_count"), Some(1.0), "{text}");
    assert!(sample(&text, "release_decision_duration_seconds_count").is_some_and(|n| n >= 6.0), "{text}");
    assert!(sample(&text, "projection_lag_entries").is_some(), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_refusals_store_nothing_and_queries_fail_precisely() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    // A tenant with configuration only: the worker owes nothing, so its size is stable.
    let mut gov = Gov::new(&server, "strict").await;
    // Query reports SERVING once the worker has loaded the projections.
    server.wait_for_projections().await;
    gov.policy().await;
    let qa = gov.register("qa-1", &["QA"]).await;
    let admin = gov.admin.clone();
    let before = gov.size().await;

    let unknown = gov.body(Some("r1"), "ReleaseTeleported", "admin", serde_json::json!({}));
    let status = gov.refused(unknown, &admin).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("ReleaseTeleported"), "{status:?}");

    let no_release = gov.body(None, "TestsPassed", "qa-1", tests_passed("1.0.0"));
    let status = gov.refused(no_release, &qa).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("releaseId"), "{status:?}");

    let wrong_role = gov.body(Some("r1"), "ApprovalGranted", "qa-1", approval("ReleaseManager"));
    let status = gov.refused(wrong_role, &qa).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("ReleaseManager"), "{status:?}");

    let decision = serde_json::json!({
        "status": "Approved", "policyVersion": 1, "evaluatedAt": "2025-05-23T09:32:00Z", "trigger": 0,
        "evidence": [0], "gates": [], "reasons": [], "retryAfter": null, "retryable": true,
        "suggestedFix": null, "riskScore": 0, "riskFactors": [],
    });
    let forged = gov.body(Some("r1"), "ReleaseApproved", "qa-1", decision);
    let status = gov.refused(forged.clone(), &qa).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // Not even the admin key signs decisions.
    let status = gov.refused(forged, &admin).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    assert_eq!(gov.size().await, before, "a refused append stored something");
    gov.settle().await;

    // Queries.
    let summary = |tenant: &str, release: &str| pb::GetReleaseSummaryRequest {
        tenant: tenant.into(),
        release_id: release.into(),
    };
    let status = gov.query.get_release_summary(summary("strict", "r404")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("r404"), "{status:?}");
    let status = gov.query.get_release_summary(summary("nobody", "r1")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("nobody"), "{status:?}");
    let status = gov.query.get_release_summary(summary("not a tenant!", "r1")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = gov.query.get_release_summary(summary("strict", "")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let (tenant, release_id) = (String::from("strict"), String::from("r404"));
    let status = gov
        .query
        .list_approvals(pb::ListApprovalsRequest { tenant: tenant.clone(), release_id: release_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = gov
        .query
        .get_risk_score(pb::GetRiskScoreRequest { tenant: tenant.clone(), release_id: release_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = gov
        .query
        .get_release_timeline(pb::GetReleaseTimelineRequest { tenant: tenant.clone(), release_id: release_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let request = pb::ExplainDecisionRequest { tenant: tenant.clone(), release_id: release_id.clone(), seq: None };
    let status = gov.query.explain_decision(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    let replay =
        |release: &str, as_of| pb::ReplayAsOfRequest { tenant: "strict".into(), release_id: release.into(), as_of };
    use pb::replay_as_of_request::AsOf;
    let status = gov.query.replay_as_of(replay("r404", Some(AsOf::Seq(0)))).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = gov.query.replay_as_of(replay("r1", Some(AsOf::Time("last tuesday".into())))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("last tuesday"), "{status:?}");
    let status = gov.query.replay_as_of(replay("r1", None)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let status = gov.query.replay_as_of(replay("r1", Some(AsOf::Seq(before)))).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    let list = |status: Option<&str>, page_size: u32, from: Option<&str>| pb::ListReleasesRequest {
        tenant: "strict".into(),
        environment: None,
        status: status.map(str::to_owned),
        updated_from: from.map(str::to_owned),
        updated_to: None,
        page_size,
        page_token: String::new(),
    };
    for (name, request) in [
        ("bad status", list(Some("Shipped"), 0, None)),
        ("page too large", list(None, 1001, None)),
        ("bad time", list(None, 0, Some("2025-13-01T00:00:00Z"))),
    ] {
        let status = gov.query.list_releases(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
    }
    assert!(gov.query.list_releases(list(None, 1000, None)).await.unwrap().into_inner().releases.is_empty());
    let status = gov
        .query
        .list_release_history(pb::ListReleaseHistoryRequest {
            tenant: "strict".into(),
            module: String::new(),
            environment: "prod".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// Regression: the worker appended the decisions it owed in event-id order
/// (`decision:<release>:<trigger>` compared as text), so when one pass folded triggers 9 and 10
/// of a release, the decision for 10 was appended before the one for 9, and the log's latest
/// decision about the release was a stale one. They are appended in trigger order now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_of_one_pass_are_appended_in_trigger_order() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut gov = Gov::new(&server, "order").await;
    assert_eq!(gov.policy().await, 0);
    let pipeline = gov.register("pipeline", &[]).await;
    let qa = gov.register("qa-1", &["QA"]).await;
    let manager = gov.register("rm-1", &["ReleaseManager"]).await;
    assert_eq!(gov.append(Some("r1"), "ReleaseIntentDeclared", "pipeline", &pipeline, intent("1.0.0")).await, 4);
    gov.wait_decision("r1", "Planned", 4).await;
    gov.append(Some("r1"), "TestsPassed", "pipeline", &pipeline, tests_passed("1.0.0")).await;
    gov.append(Some("r1"), "SecurityGateStatus", "pipeline", &pipeline, security("1.0.0", "None")).await;
    // Not evaluated yet (no evaluation requested): no decision.
    assert_eq!(gov.append(Some("r1"), "ApprovalGranted", "qa-1", &qa, approval("QA")).await, 8);
    // One commit, two triggers the worker folds in one pass: seq 9 (evaluation: still waiting
    // for ReleaseManager → Delayed) and seq 10 (the last approval → Approved).
    let request = gov.body(Some("r1"), "ReleaseEvaluationRequested", "pipeline", serde_json::json!({}));
    let approve = gov.body(Some("r1"), "ApprovalGranted", "rm-1", approval("ReleaseManager"));
    let events = vec![wire(request, &pipeline), wire(approve, &manager)];
    let receipts = gov.ledger.append_batch(pb::AppendBatchRequest { events }).await.unwrap().into_inner().receipts;
    assert_eq!(receipts.iter().map(|r| r.seq).collect::<Vec<_>>(), [9, 10]);
    let deadline = Instant::now() + DEADLINE;
    let decisions = loop {
        gov.settle().await;
        let request = pb::GetReleaseTimelineRequest { tenant: "order".into(), release_id: "r1".into() };
        let timeline = gov.query.get_release_timeline(request).await.unwrap().into_inner().items;
        let decisions: Vec<(u64, String)> =
            timeline.into_iter().filter(|t| t.seq > 10).map(|t| (t.seq, t.r#type)).collect();
        if decisions.len() == 2 || Instant::now() > deadline {
            break decisions;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let summary = gov.summary("r1").await.unwrap();
    let current = summary.last_decision.unwrap();
    assert_eq!(
        (summary.status.as_str(), current.r#type.as_str(), current.trigger),
        ("Approved", "ReleaseApproved", 10)
    );
    let explain = pb::ExplainDecisionRequest { tenant: "order".into(), release_id: "r1".into(), seq: None };
    let latest = gov.query.explain_decision(explain).await.unwrap().into_inner();

    // The log's latest decision is the one in force, and the summary and ExplainDecision name it.
    let expected = [(11, "ReleaseDelayed".to_owned()), (12, "ReleaseApproved".to_owned())];
    assert_eq!(decisions, expected);
    assert_eq!(current.seq, Some(12));
    assert_eq!((latest.seq, latest.r#type.as_str(), latest.trigger), (Some(12), "ReleaseApproved", 10));
}

/// The live fold re-derives every ledger-signed decision and says when one is not what it
/// would have decided. Here a `ReleaseApproved` is forged with the ledger's own key (what a
/// stolen key or a faulty server build could append): `ExplainDecision` answers
/// `reproduced = false` for it while the genuine decision stays `true`, and the forged
/// approval approves nothing — the release is still where the fold's own decisions put it.
///
/// Checked by breaking it: with `projections::query` reporting `reproduced: Some(true)` for a
/// decision its prefix did not owe (`unwrap_or(true)`), this test fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_fold_flags_a_ledger_signed_decision_it_would_not_have_made() {
    let (_dir, data) = temp_data_dir();
    let server = Server::start(&data, &[]);
    let mut gov = Gov::new(&server, "shop").await;
    let policy_seq = gov.policy().await;
    let pipeline = gov.register("pipeline", &[]).await;
    let intent_seq = gov.append(Some("r1"), "ReleaseIntentDeclared", "pipeline", &pipeline, intent("1.4.0")).await;
    let planned = gov.wait_decision("r1", "Planned", intent_seq).await;
    let planned_seq = planned.last_decision.as_ref().unwrap().seq.unwrap();
    gov.settle().await;

    // The genuine decision's body, turned into an approval triggered by the policy entry (no
    // decision about r1 can be owed at a seq before its intent), signed with the ledger key.
    let request =
        pb::GetEntryRequest { tenant: "shop".into(), key: Some(pb::get_entry_request::Key::Seq(planned_seq)) };
    let genuine = gov.ledger.get_entry(request).await.unwrap().into_inner();
    let Some(pb::entry::Body::Envelope(envelope)) = genuine.body else { panic!("seq {planned_seq} is not an event") };
    let mut forged: serde_json::Value = serde_json::from_slice(&envelope.payload).unwrap();
    forged["type"] = "ReleaseApproved".into();
    forged["eventId"] = format!("decision:r1:{policy_seq}").into();
    forged["data"]["status"] = "Approved".into();
    forged["data"]["trigger"] = policy_seq.into();
    forged["data"]["reasons"] = serde_json::json!([]);
    let ledger_key = KeyPair::load(&data.join("keys/ledger.pem")).unwrap();
    let response =
        gov.ledger.append(pb::AppendRequest { event: Some(wire(serde_json::to_vec(&forged).unwrap(), &ledger_key)) });
    let forged_seq = response.await.unwrap().into_inner().receipt.unwrap().seq;
    gov.settle().await;

    let explain = |seq| pb::ExplainDecisionRequest { tenant: "shop".into(), release_id: "r1".into(), seq: Some(seq) };
    let decision = gov.query.explain_decision(explain(forged_seq)).await.unwrap().into_inner();
    assert_eq!((decision.r#type.as_str(), decision.reproduced), ("ReleaseApproved", Some(false)), "{decision:#?}");
    let decision = gov.query.explain_decision(explain(planned_seq)).await.unwrap().into_inner();
    assert_eq!(decision.reproduced, Some(true), "{decision:#?}");
    let summary = gov.summary("r1").await.unwrap();
    assert_eq!(summary.status, "Planned", "a forged approval moved the release: {summary:#?}");
    assert_eq!(summary.last_decision.as_ref().and_then(|d| d.seq), Some(planned_seq), "{summary:#?}");
}

/// `kill -9` of the server while its worker folds and appends decisions, three times over: each
/// time, the projection store on disk is exactly the fold of the log up to the position it
/// stored (ARCHITECTURE.md: a projection's position and its state are one `WriteBatch`), and
/// the restarted worker catches up from it.
///
/// Checked by breaking it: writing the position in its own write ahead of the rows in
/// `ProjectionStore::write_changes` (with a 1 ms pause between them, to widen the window a kill
/// can land in) failed the comparison in two runs out of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_worker_appends_leaves_the_store_equal_to_the_fold_at_its_position() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let (_dir, data) = temp_data_dir();
    let mut pipeline = None;
    let mut positions = Vec::new();
    for round in 0..3u64 {
        let server = Server::start(&data, &[]);
        let mut gov = Gov::new(&server, "shop").await;
        gov.next_id = 1_000_000 * u32::try_from(round).unwrap();
        if pipeline.is_none() {
            gov.policy().await;
            pipeline = Some(gov.register("pipeline", &[]).await);
        }
        let key = pipeline.clone().unwrap();
        // Intents (each owes a ReleasePlanned) and evaluations (each owes a decision), as fast as
        // they are acknowledged, while the worker folds and appends behind them.
        let appended = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn({
            let appended = appended.clone();
            async move {
                for n in 0u64.. {
                    let release = format!("r{round}-{n}");
                    for (event_type, data) in [
                        ("ReleaseIntentDeclared", intent("1.4.0")),
                        ("ReleaseEvaluationRequested", serde_json::json!({"reason": "pipeline green"})),
                    ] {
                        let body = gov.body(Some(&release), event_type, "pipeline", data);
                        let request = pb::AppendRequest { event: Some(wire(body, &key)) };
                        if gov.ledger.append(request).await.is_err() {
                            return; // Killed.
                        }
                        appended.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        while appended.load(Ordering::SeqCst) < 150 {
            assert!(Instant::now() < deadline, "round {round}: no progress");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.kill9();
        task.await.unwrap();

        let ledger = ledger::Ledger::open(&data, ledger::Config::default()).unwrap();
        let store = projections::store::ProjectionStore::open(&data.join("projections")).unwrap();
        let states = store.load_all().unwrap();
        let stored = store.whole(&states["shop"]).unwrap();
        let position = stored.meta.position;
        let fresh = projections::fold(&ledger, "shop", Some(position)).unwrap();
        assert!(
            stored == fresh,
            "round {round}: the stored state differs from the fold up to its position {position}: {:#?}",
            testkit::gov::diff(&stored, &fresh)
        );
        let decisions = fresh.releases.values().filter(|r| r.decision.is_some()).count();
        assert!(decisions > 0, "round {round}: the worker derived no decision before the kill");
        positions.push((position, ledger.head("shop").unwrap().size));
    }
    // The worker went on from its stored position after each restart.
    assert!(positions.windows(2).all(|w| w[1].0 > w[0].0), "{positions:?}");
}
