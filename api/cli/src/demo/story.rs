//! The story itself: agents, policy, freeze, and four releases, each outcome checked.

use super::*;

/// The story's connections and keys.
struct Story<'a> {
    ledger: Client,
    query: QueryClient,
    admin: KeyPair,
    admin_agent: String,
    keys: BTreeMap<&'static str, KeyPair>,
    out: &'a Out,
}

impl std::fmt::Debug for Story<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Story").field("agents", &self.keys.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

/// Plays the whole story against `server`; returns what it established.
pub(super) async fn play(server: &str, admin_key: &Path, keys_dir: &Path, out: &Out) -> anyhow::Result<Report> {
    let channel = client::channel(server).await?;
    let admin = KeyPair::load(admin_key).with_context(|| format!("loading the admin key {}", admin_key.display()))?;
    // Reading the tenant back needs a credential: unless the caller gave one, an operator token
    // from the admin key, for as long as the story takes.
    let mut info_client = client::ledger_client(channel.clone(), DEFAULT_MAX_MESSAGE_BYTES);
    let info = info_client.get_info(pb::GetInfoRequest {}).await.map_err(client::refused)?.into_inner();
    client::sign_in(&info, TENANT, &admin, std::time::Duration::from_secs(3600))?;
    let mut story = Story {
        ledger: client::ledger_client(channel.clone(), DEFAULT_MAX_MESSAGE_BYTES),
        query: client::query_client(channel, DEFAULT_MAX_MESSAGE_BYTES),
        admin,
        admin_agent: String::new(),
        keys: BTreeMap::new(),
        out,
    };
    story.admin_agent = client::agent_id_for(&mut story.ledger, TENANT, &story.admin).await?;
    story.ready().await?;
    let ids = story.release_ids().await?;

    out.say(String::new());
    out.say(format!("== tenant {TENANT}: agents, policy, freeze =="));
    story.register_agents(keys_dir).await?;
    story.set_policy().await?;
    let freeze_id = story.declare_freeze().await?;

    let (frozen_at, published) = story.release_frozen_then_published(&ids.frozen, &freeze_id).await?;
    let rejected = story.release_with_critical_cve(&ids.rejected).await?;
    story.release_that_fails(&ids.failed).await?;
    let approved = story.high_risk_release(&ids.risky, &ids.failed).await?;

    let mut timelines = Vec::new();
    for release in [&ids.frozen, &ids.rejected, &ids.failed, &ids.risky] {
        let items = story
            .query
            .get_release_timeline(pb::GetReleaseTimelineRequest { tenant: TENANT.into(), release_id: release.clone() })
            .await
            .map_err(client::query_error)?
            .into_inner()
            .items;
        timelines.push((release.clone(), items));
    }

    // The auditor's copy of release 3: every entry its decisions depend on (its own, the
    // tenant's policy, keys and freezes, the failure and rollback of the release before it),
    // proven, attested and re-derived (docs/evidence.md).
    let key = ledger::keys::public_key_from_bytes(&info.ledger_public_key)?;
    let evidence_dir = keys_dir.parent().unwrap_or(keys_dir).join("evidence").join(&ids.risky);
    let pack = ledger_client::evidence::evidence_pack(&mut story.ledger, &mut story.query, TENANT, &ids.risky, &key)
        .await
        .with_context(|| format!("the evidence pack of {}", ids.risky))?;
    ledger_tools::evidence::write_dir(&pack.files, &evidence_dir)?;
    out.say(String::new());
    out.say(format!(
        "== evidence pack of {}: {} entries, {} decisions, verified; written to {} ==",
        ids.risky,
        pack.verified.entries.values().sum::<u64>(),
        pack.verified.decisions.len(),
        evidence_dir.display()
    ));
    Ok(Report {
        evidence_dir,
        keys_dir: keys_dir.to_path_buf(),
        admin_key: admin_key.to_path_buf(),
        ids,
        outcomes: vec![published, rejected, approved],
        timelines,
        frozen_at,
    })
}

impl Story<'_> {
    /// Fixed ids on a fresh tenant; suffixed on a tenant that already played the story.
    async fn release_ids(&mut self) -> anyhow::Result<Ids> {
        let base = ["release-001731", "release-001732", "release-001733", "release-001734"];
        // A restarted server folds what its projections have not seen yet; until then a
        // release of an earlier run may not be known.
        self.caught_up().await?;
        let taken = match self
            .query
            .get_release_summary(pb::GetReleaseSummaryRequest { tenant: TENANT.into(), release_id: base[0].into() })
            .await
        {
            Ok(_) => true,
            Err(s) if s.code() == tonic::Code::NotFound => false,
            Err(s) => return Err(client::query_error(s)),
        };
        let suffix =
            if taken { format!("-run{}", ledger::SystemClock.now_ns() / 1_000_000_000) } else { String::new() };
        let [frozen, rejected, failed, risky] = base.map(|id| format!("{id}{suffix}"));
        Ok(Ids { frozen, rejected, failed, risky })
    }

    /// Registers the story's agents (keys saved under `keys_dir`; reused when already there).
    async fn register_agents(&mut self, keys_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
        let registered: Vec<String> = match self.ledger.list_keys(pb::ListKeysRequest { tenant: TENANT.into() }).await {
            Ok(response) => response
                .into_inner()
                .keys
                .into_iter()
                .filter(|k| k.revoked_at_seq.is_none())
                .map(|k| k.key_id)
                .collect(),
            Err(_) => Vec::new(),
        };
        for (agent, roles, types) in AGENTS {
            let path = keys_dir.join(format!("{agent}.pem"));
            let key = if path.exists() {
                KeyPair::load(&path).with_context(|| format!("loading {}", path.display()))?
            } else {
                let key = KeyPair::generate();
                key.save_new(&path).with_context(|| format!("writing {}", path.display()))?;
                key
            };
            let key_id = key.key_id().to_hex();
            if registered.contains(&key_id) {
                self.out.say(format!("  agent {agent:<17} already registered (key {})", &key_id[..12]));
            } else {
                let spec = EventSpec {
                    tenant: TENANT.into(),
                    stream: "keys".into(),
                    event_type: "AgentKeyRegistered".into(),
                    data: serde_json::json!({
                        "agentId": agent, "publicKey": key.public_key_base64(), "roles": roles, "eventTypes": types,
                    }),
                    event_id: Some(format!("key-registered-{key_id}")),
                    agent_id: self.admin_agent.clone(),
                    ..EventSpec::default()
                };
                let receipt = client::append_spec(&mut self.ledger, &spec, &self.admin).await?;
                self.out.say(format!(
                    "  seq {:>3}  agent {agent:<17} registered, roles {}",
                    receipt.seq,
                    if roles.is_empty() { "-".to_owned() } else { roles.join(",") }
                ));
            }
            self.keys.insert(agent, key);
        }
        Ok(())
    }

    async fn set_policy(&mut self) -> anyhow::Result<()> {
        let policy = client::parse_policy(
            &serde_json::json!({
                "version": 1,
                "environments": {
                    PRODUCTION: {
                        "requiresApproval": true,
                        "roles": ["QA", "ReleaseManager"],
                        "minApprovers": 2,
                        "requiredSignals": ["TestsPassed", "CoverageVerified", "SecurityGateStatus"],
                        "minTestCoverage": 80.0,
                        "maxCVESeverity": "Medium",
                        "requireSignedImages": true,
                        "requireSbom": true,
                        "riskThreshold": 50,
                        "highRiskRoles": ["CTO"],
                        "freezeSensitive": true,
                    },
                },
                "default": { "requiresApproval": true, "minApprovers": 1 },
            })
            .to_string(),
        )?;
        let spec = client::policy_updated(TENANT, &self.admin_agent, &policy)?;
        let receipt = client::append_spec(&mut self.ledger, &spec, &self.admin).await?;
        self.out.say(format!(
            "  seq {:>3}  policy v1 by {}: production needs QA + ReleaseManager (2 distinct approvers), tests, \
             coverage >= 80%, a scan with no CVE above Medium, signed image, SBOM; risk >= 50 also needs the CTO; \
             freezes apply",
            receipt.seq, self.admin_agent
        ));
        Ok(())
    }

    /// A one-off freeze over production, from a minute ago to two hours from now.
    async fn declare_freeze(&mut self) -> anyhow::Result<String> {
        let now = i64::try_from(ledger::SystemClock.now_ns()).unwrap_or(i64::MAX);
        let at = |offset_seconds: i64| {
            chrono::DateTime::from_timestamp_nanos(now.saturating_add(offset_seconds.saturating_mul(1_000_000_000)))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let freeze_id = format!("eoq-freeze-{}", now / 1_000_000_000);
        let data = projections::freeze::ChangeFreezeDeclaredData {
            freeze_id: freeze_id.clone(),
            environments: vec![PRODUCTION.into()],
            reason: "end-of-quarter freeze".into(),
            from: Some(at(-60)),
            to: Some(at(2 * 3600)),
            recurrence: None,
        };
        let spec = client::freeze_declared(TENANT, "studio-admin", &data)?;
        let receipt = self.append("studio-admin", spec).await?;
        self.out.say(format!(
            "  seq {:>3}  studio-admin declares freeze {freeze_id} over production, {} to {} (end-of-quarter freeze)",
            receipt.seq,
            data.from.as_deref().unwrap_or_default(),
            data.to.as_deref().unwrap_or_default()
        ));
        Ok(freeze_id)
    }

    /// Release 1: delayed by the freeze, approved once it is lifted, deployed, published.
    async fn release_frozen_then_published(
        &mut self,
        release: &str,
        freeze_id: &str,
    ) -> anyhow::Result<(u64, Outcome)> {
        self.out.say(String::new());
        self.out.say(format!("== release 1: {release}, billing-service 2.4.0 to production during a freeze =="));
        self.declare(release, "billing-service", "2.4.0").await?;
        self.green_signals(release, "billing-service", "2.4.0", 91.4, "None").await?;
        let seq = self.evaluate(release, "pipeline green, ready for production").await?;
        let s = self.wait(release, seq, expect("Delayed", &["ChangeFreezeActive"], &[])).await?;
        self.out.say(format!(
            "           -> Delayed: {}; the ledger itself retries at {}",
            codes(&s).join(", "),
            s.retry_after.as_deref().map_or_else(|| "-".to_owned(), client::short_time)
        ));
        let frozen_at = seq;

        let receipt = self
            .append(
                "studio-admin",
                client::freeze_lifted(TENANT, "studio-admin", freeze_id, Some("quarter closed early")),
            )
            .await?;
        self.out.say(format!("  seq {:>3}  studio-admin lifts the freeze (quarter closed early)", receipt.seq));
        let s =
            self.wait(release, receipt.seq, expect("Delayed", &["ApprovalPending"], &["ChangeFreezeActive"])).await?;
        self.out.say(format!("           -> Delayed: {}", reason_details(&s)));

        self.approve(release, "qa-lead", "QA", "regression suite and release notes reviewed").await?;
        let seq = self.approve(release, "release-manager", "ReleaseManager", "go for production").await?;
        let s = self.wait(release, seq, expect("Approved", &[], &[])).await?;
        self.out.say(format!("           -> Approved (risk {})", risk(&s)));

        self.deployment(release, "DeploymentStarted", None).await?;
        let seq = self.deployment(release, "DeploymentCompleted", None).await?;
        let s = self.wait(release, seq, expect("Published", &[], &[])).await?;
        self.out.say("           -> Published".to_owned());
        Ok((
            frozen_at,
            Outcome {
                release: release.into(),
                status: s.status.clone(),
                codes: codes(&s),
                risk_score: s.risk_score,
                story: "delayed by the end-of-quarter freeze (ChangeFreezeActive), approved by QA and \
                        ReleaseManager once lifted, deployed"
                    .into(),
            },
        ))
    }

    /// Release 2: the scan finds a Critical CVE.
    async fn release_with_critical_cve(&mut self, release: &str) -> anyhow::Result<Outcome> {
        self.out.say(String::new());
        self.out.say(format!("== release 2: {release}, lab-results 3.0.0: the scanner finds a Critical CVE =="));
        self.declare(release, "lab-results", "3.0.0").await?;
        self.tests(release, "lab-results", "3.0.0", 86.0).await?;
        self.scan(release, "lab-results", "3.0.0", "Failed", "Critical", Some("CVE-2025-0917 in libxml2 (CVSS 9.8)"))
            .await?;
        let seq = self.evaluate(release, "nightly release train").await?;
        let s = self.wait(release, seq, expect("Rejected", &["SecurityGateFailed"], &[])).await?;
        if s.retryable != Some(false) {
            bail!(
                "{release}: a SecurityGateFailed rejection should not be retryable, the summary says {:?}",
                s.retryable
            );
        }
        self.out.say(format!("           -> Rejected, not retryable: {}", reason_details(&s)));
        Ok(Outcome {
            release: release.into(),
            status: s.status.clone(),
            codes: codes(&s),
            risk_score: s.risk_score,
            story: "rejected: SecurityGateFailed (Critical CVE), not retryable".into(),
        })
    }

    /// The earlier release of invoice-service: approved, deployed, failed, rolled back.
    async fn release_that_fails(&mut self, release: &str) -> anyhow::Result<()> {
        self.out.say(String::new());
        self.out.say(format!("== release 3: invoice-service; first {release} (2.3.0) goes wrong in production =="));
        self.declare(release, "invoice-service", "2.3.0").await?;
        self.green_signals(release, "invoice-service", "2.3.0", 84.0, "Low").await?;
        self.evaluate(release, "release train 2025-Q2").await?;
        self.approve(release, "qa-lead", "QA", "looks good").await?;
        let seq = self.approve(release, "release-manager", "ReleaseManager", "ship it").await?;
        // On a tenant that already played the story, earlier failures make this one risky too.
        let s = self
            .wait_any(release, seq, &[expect("Approved", &[], &[]), expect("Delayed", &["ApprovalPending"], &[])])
            .await?;
        if s.status == "Delayed" {
            let seq = self.approve(release, "cto", "CTO", "earlier failures reviewed").await?;
            self.wait(release, seq, expect("Approved", &[], &[])).await?;
        }
        self.out.say("           -> Approved".to_owned());
        self.deployment(release, "DeploymentStarted", None).await?;
        self.deployment(release, "DeploymentFailed", Some("health checks failing after rollout: 38% 5xx on /invoices"))
            .await?;
        let seq = self.deployment(release, "RollbackTriggered", Some("automatic rollback to 2.2.7")).await?;
        self.wait(release, seq, expect("RolledBack", &[], &[])).await?;
        self.out.say("           -> RolledBack".to_owned());
        Ok(())
    }

    /// Release 3: the hotfix of the module that just failed is high-risk and needs the CTO.
    async fn high_risk_release(&mut self, release: &str, failed: &str) -> anyhow::Result<Outcome> {
        self.out.say(String::new());
        self.out.say(format!("   then the hotfix {release} (invoice-service 2.3.1), right after {failed} failed"));
        self.declare(release, "invoice-service", "2.3.1").await?;
        self.green_signals(release, "invoice-service", "2.3.1", 88.0, "Low").await?;
        let seq = self.evaluate(release, "hotfix for the failed 2.3.0").await?;
        let s = self.wait(release, seq, expect("Delayed", &["ApprovalPending"], &[])).await?;
        let decision = self.explain_latest(release, &s).await?;
        if !decision.reasons.iter().any(|r| r.code == projections::ReasonCode::HighRisk.as_str()) {
            bail!(
                "{release}: expected a HighRisk reason (risk {}), the decision gives {}",
                risk(&s),
                decision.reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        self.out.say(format!("           -> Delayed: HighRisk, risk {}", risk(&s)));
        self.approve(release, "qa-lead", "QA", "hotfix verified in staging").await?;
        let seq = self.approve(release, "release-manager", "ReleaseManager", "needed before month end").await?;
        let s = self.wait(release, seq, expect("Delayed", &["ApprovalPending"], &[])).await?;
        if !s.reasons.iter().any(|r| r.detail.contains("CTO")) {
            bail!("{release}: expected to wait for the CTO, the summary says {}", reason_details(&s));
        }
        self.out.say(format!("           -> still Delayed: {}", reason_details(&s)));
        let seq = self.approve(release, "cto", "CTO", "risk accepted: rollback plan reviewed").await?;
        let s = self.wait(release, seq, expect("Approved", &[], &[])).await?;
        self.out.say(format!("           -> Approved with the CTO's approval (risk {})", risk(&s)));
        Ok(Outcome {
            release: release.into(),
            status: s.status.clone(),
            codes: codes(&s),
            risk_score: s.risk_score,
            story: format!(
                "HighRisk (risk {} >= 50 after {failed} failed and was rolled back): waited for the CTO, \
                 approved once the CTO approved",
                s.risk_score.unwrap_or_default()
            ),
        })
    }

    // Steps.

    /// Signs `spec` as `agent` and appends it.
    async fn append(&mut self, agent: &str, mut spec: EventSpec) -> anyhow::Result<pb::Receipt> {
        let key = self.keys.get(agent).ok_or_else(|| anyhow!("no key for agent {agent}"))?;
        spec.agent_id = agent.to_owned();
        client::append_spec(&mut self.ledger, &spec, key).await
    }

    async fn release_event(
        &mut self,
        agent: &str,
        release: &str,
        event_type: &str,
        data: serde_json::Value,
    ) -> anyhow::Result<u64> {
        let mut spec = client::release_event(TENANT, release, event_type, agent, data);
        spec.trace_id = Some(format!("trace-{release}"));
        Ok(self.append(agent, spec).await?.seq)
    }

    async fn declare(&mut self, release: &str, module: &str, version: &str) -> anyhow::Result<()> {
        let data = serde_json::json!({
            "environment": PRODUCTION, "modules": [{ "name": module, "version": version }], "requiresApproval": true,
            "projectId": "vetclinic-portal", "triggeredBy": "pipeline main",
        });
        let seq = self.release_event("ci-pipeline", release, "ReleaseIntentDeclared", data).await?;
        self.out.say(format!("  seq {seq:>3}  ci-pipeline declares {module}@{version} to production"));
        let data = serde_json::json!({ "module": module, "version": version, "pipelineId": format!("main-{seq}") });
        let seq = self.release_event("ci-pipeline", release, "PipelineReady", data).await?;
        self.out.say(format!("  seq {seq:>3}  ci-pipeline: build ready"));
        Ok(())
    }

    async fn tests(&mut self, release: &str, module: &str, version: &str, coverage: f64) -> anyhow::Result<()> {
        for (suite, passed) in [("unit", 412), ("integration", 57)] {
            let data = serde_json::json!({
                "module": module, "version": version, "suite": suite, "passed": passed, "failed": 0,
            });
            let seq = self.release_event("qa-runner", release, "TestsPassed", data).await?;
            self.out.say(format!("  seq {seq:>3}  qa-runner: {suite} tests, {passed} passed"));
        }
        let data = serde_json::json!({ "module": module, "version": version, "percent": coverage });
        let seq = self.release_event("qa-runner", release, "CoverageVerified", data).await?;
        self.out.say(format!("  seq {seq:>3}  qa-runner: coverage {coverage}%"));
        Ok(())
    }

    async fn scan(
        &mut self,
        release: &str,
        module: &str,
        version: &str,
        status: &str,
        cve: &str,
        notes: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut data = serde_json::json!({
            "module": module, "version": version, "status": status, "cveSeverity": cve,
            "imageSigned": true, "sbomPresent": true, "licenseCompliant": true,
        });
        if let Some(notes) = notes {
            data["notes"] = notes.into();
        }
        let seq = self.release_event("security-scanner", release, "SecurityGateStatus", data).await?;
        let notes = notes.map(|n| format!(": {n}")).unwrap_or_default();
        self.out.say(format!(
            "  seq {seq:>3}  security-scanner: scan {status}, highest CVE {cve}, image signed, SBOM present{notes}"
        ));
        Ok(())
    }

    async fn green_signals(
        &mut self,
        release: &str,
        module: &str,
        version: &str,
        coverage: f64,
        cve: &str,
    ) -> anyhow::Result<()> {
        self.tests(release, module, version, coverage).await?;
        self.scan(release, module, version, "Passed", cve, None).await
    }

    async fn evaluate(&mut self, release: &str, reason: &str) -> anyhow::Result<u64> {
        let data = serde_json::json!({ "reason": reason });
        let seq = self.release_event("ci-pipeline", release, "ReleaseEvaluationRequested", data).await?;
        self.out.say(format!("  seq {seq:>3}  ci-pipeline requests an evaluation ({reason})"));
        Ok(seq)
    }

    async fn approve(&mut self, release: &str, agent: &str, role: &str, comment: &str) -> anyhow::Result<u64> {
        let data = serde_json::json!({ "role": role, "comment": comment, "method": "CLI" });
        let mut spec = client::release_event(TENANT, release, "ApprovalGranted", agent, data);
        spec.role = Some(role.to_owned());
        spec.trace_id = Some(format!("trace-{release}"));
        let seq = self.append(agent, spec).await?.seq;
        self.out.say(format!("  seq {seq:>3}  {agent} approves as {role}: {comment}"));
        Ok(seq)
    }

    async fn deployment(&mut self, release: &str, event_type: &str, reason: Option<&str>) -> anyhow::Result<u64> {
        let mut data = serde_json::json!({ "environment": PRODUCTION });
        if let Some(reason) = reason {
            data["reason"] = reason.into();
        }
        let seq = self.release_event("deployer", release, event_type, data).await?;
        let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
        self.out.say(format!("  seq {seq:>3}  deployer: {event_type}{reason}"));
        Ok(seq)
    }

    // Waiting for the read models.

    /// Waits until the projections have folded `seq` and the release's summary meets
    /// `expected` with its decision in the log; fails saying what it saw otherwise.
    async fn wait(&mut self, release: &str, seq: u64, expected: Expect<'_>) -> anyhow::Result<pb::ReleaseSummary> {
        self.wait_any(release, seq, &[expected]).await
    }

    /// [`Story::wait`] for any of several outcomes.
    async fn wait_any(
        &mut self,
        release: &str,
        seq: u64,
        expected: &[Expect<'_>],
    ) -> anyhow::Result<pb::ReleaseSummary> {
        let start = tokio::time::Instant::now();
        // Nothing counts before the projections have folded `seq`: until then the summary may
        // still show an earlier state that happens to match. Once folded, the decision is
        // derived, so a mismatch is final; the decision entry itself may take a moment more.
        let mut folded_since: Option<tokio::time::Instant> = None;
        let mut last: Option<pb::ReleaseSummary> = None;
        loop {
            if folded_since.is_none() && self.folded_past(seq).await? {
                folded_since = Some(tokio::time::Instant::now());
            }
            if folded_since.is_some() {
                match self
                    .query
                    .get_release_summary(pb::GetReleaseSummaryRequest {
                        tenant: TENANT.into(),
                        release_id: release.into(),
                    })
                    .await
                {
                    Ok(response) => {
                        let summary = response.into_inner();
                        let in_log = summary.last_decision.as_ref().is_some_and(|d| d.seq.is_some());
                        if in_log && expected.iter().any(|e| e.met_by(&summary)) {
                            return Ok(summary);
                        }
                        last = Some(summary);
                    }
                    Err(s) if matches!(s.code(), tonic::Code::NotFound | tonic::Code::Unavailable) => {}
                    Err(s) => return Err(client::query_error(s)),
                }
            }
            let settled = folded_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
            if settled || start.elapsed() > STEP_TIMEOUT {
                let wanted: Vec<String> = expected.iter().map(ToString::to_string).collect();
                let wanted = wanted.join(" or ");
                let Some(s) = &last else {
                    bail!(
                        "{release}: expected {wanted} after seq {seq}, but the governance projections did not fold \
                         seq {seq} within {} s",
                        STEP_TIMEOUT.as_secs()
                    );
                };
                let decision = s.last_decision.as_ref().map_or_else(
                    || "none".to_owned(),
                    |d| {
                        let at = d.seq.map_or_else(|| "not yet in the log".to_owned(), |s| format!("seq {s}"));
                        format!("{} at trigger seq {}, {at}", d.r#type, d.trigger)
                    },
                );
                let reasons = if s.reasons.is_empty() { String::new() } else { format!(": {}", reason_details(s)) };
                bail!(
                    "{release}: expected {wanted} after seq {seq}, but the release is {}{reasons} (last decision \
                     {decision})",
                    s.status
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until the Query service answers (a server starting up says `UNAVAILABLE` while
    /// it loads its projections); fails at once, and clearly, on a server without it.
    async fn ready(&mut self) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            match self.query.get_governance_status(pb::GetGovernanceStatusRequest {}).await {
                Ok(_) => return Ok(()),
                Err(s) if s.code() == tonic::Code::Unavailable && start.elapsed() < STEP_TIMEOUT => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(s) => {
                    return Err(
                        client::query_error(s).context("the demo reads decisions back through the Query service")
                    )
                }
            }
        }
    }

    /// Waits until the tenant's projections have folded its whole log (a tenant the server
    /// does not know yet has nothing to fold).
    async fn caught_up(&mut self) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            let status = self
                .query
                .get_governance_status(pb::GetGovernanceStatusRequest {})
                .await
                .map_err(client::query_error)?
                .into_inner();
            match status.tenants.iter().find(|t| t.tenant == TENANT) {
                None => return Ok(()),
                Some(t) if t.lag_entries == 0 => return Ok(()),
                Some(t) if start.elapsed() > STEP_TIMEOUT => bail!(
                    "the governance projections of {TENANT} are still {} entries behind after {} s",
                    t.lag_entries,
                    STEP_TIMEOUT.as_secs()
                ),
                Some(_) => tokio::time::sleep(POLL_INTERVAL).await,
            }
        }
    }

    /// Whether the tenant's projections have folded the entry at `seq`.
    async fn folded_past(&mut self, seq: u64) -> anyhow::Result<bool> {
        match self.query.get_governance_status(pb::GetGovernanceStatusRequest {}).await {
            Ok(status) => Ok(status.into_inner().tenants.iter().any(|t| t.tenant == TENANT && t.position > seq)),
            Err(s) if s.code() == tonic::Code::Unavailable => Ok(false),
            Err(s) => Err(client::query_error(s)),
        }
    }

    /// The release's latest decision, as the ledger explains it.
    async fn explain_latest(&mut self, release: &str, summary: &pb::ReleaseSummary) -> anyhow::Result<pb::Decision> {
        let seq = summary.last_decision.as_ref().and_then(|d| d.seq);
        Ok(self
            .query
            .explain_decision(pb::ExplainDecisionRequest { tenant: TENANT.into(), release_id: release.into(), seq })
            .await
            .map_err(client::query_error)?
            .into_inner())
    }
}

/// The release's reason codes, each once.
fn codes(summary: &pb::ReleaseSummary) -> Vec<String> {
    client::distinct_codes(&summary.reasons).into_iter().map(str::to_owned).collect()
}

fn reason_details(summary: &pb::ReleaseSummary) -> String {
    let reasons: Vec<String> = summary.reasons.iter().map(|r| format!("{} ({})", r.code, r.detail)).collect();
    reasons.join("; ")
}

fn risk(summary: &pb::ReleaseSummary) -> String {
    summary.risk_score.map_or_else(|| "-".to_owned(), |score| client::risk_line(score, &summary.risk_factors))
}
