//! The `release_ledger.v1.Query` gRPC service: the governance read models of a
//! [`projections::Governor`] (summaries, listings, history, approvals, risk, decision
//! explanations, timelines, replay "as of"), and the conversions from projection types to
//! their wire messages.
//!
//! Every call runs on tokio's blocking pool: reading a tenant's state takes a lock the
//! projection worker holds while it folds and persists a chunk, and explaining or replaying
//! folds a prefix of the log. A state is read under that lock only long enough to copy out what
//! the answer needs.

use std::sync::Arc;
use std::time::Duration;

use ledger::ids::{Environment, ModuleName, ReleaseId};
use ledger::{clip, Ledger, ReadError};
use projections::query::{self as read_model, AsOf, ExplainError, ExplainedDecision, Replay};
use projections::state::{format_recorded_at, ApprovalRecord, HistoryItem, ReleaseState, TimelineItem};
use projections::{DecisionData, Governor, ReleaseFilter, ReleaseStatus, TenantState, Verdict};
use proto::v1 as pb;
use proto::v1::query_server::Query as QueryRpc;
use tonic::{Request, Response, Status};

use crate::status::{check_tenant, in_rpc_span, read_status};

/// Largest `page_size` of `ListReleases`.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Longest a query waits for the projections to load before answering UNAVAILABLE.
const READY_WAIT: Duration = Duration::from_secs(5);

/// The service.
#[derive(Debug, Clone)]
pub struct QueryService {
    ledger: Arc<Ledger>,
    governor: Arc<Governor>,
}

impl QueryService {
    /// A service over the projections `governor` folds from the log `ledger`.
    pub fn new(ledger: Arc<Ledger>, governor: Arc<Governor>) -> Self {
        Self { ledger, governor }
    }

    /// Runs `work` on the blocking pool once the projections are loaded.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Ledger, &Governor) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        projections_loaded(&self.governor).await?;
        let (ledger, governor) = (self.ledger.clone(), self.governor.clone());
        tokio::task::spawn_blocking(move || work(&ledger, &governor))
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))?
    }

    /// Runs `read` on one release of a tenant (NOT_FOUND if either is unknown).
    async fn on_release<T: Send + 'static>(
        &self,
        tenant: String,
        release_id: String,
        read: impl Fn(&TenantState, &ReleaseState) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        check_tenant(&tenant)?;
        validate_release_id(&release_id)?;
        self.blocking(move |ledger, governor| match governor.with_release(&tenant, &release_id, &read) {
            Ok(Some(Some(result))) => result,
            // An unknown release, or a tenant the worker has not reached yet (no releases).
            Ok(Some(None) | None) => {
                with_state(ledger, governor, &tenant, |state| Err(release_not_found(ledger, state, &release_id)))
            }
            Err(e) => Err(governor_status(&e)),
        })
        .await
    }
}

/// Runs `read` on a tenant's state under the worker's read lock. A tenant the log knows but
/// the worker has not reached yet reads as empty; a tenant the log does not know is NOT_FOUND.
fn with_state<T>(
    ledger: &Ledger,
    governor: &Governor,
    tenant: &str,
    read: impl Fn(&TenantState) -> Result<T, Status>,
) -> Result<T, Status> {
    if let Some(result) = governor.with_tenant(tenant, &read) {
        return result;
    }
    ledger.head(tenant).map_err(|e| read_status(&e))?;
    read(&TenantState::new(tenant))
}

/// NOT_FOUND for a release, saying how far the projections are when they lag (a client that
/// has just appended the release's first event may simply be early).
fn release_not_found(ledger: &Ledger, state: &TenantState, release_id: &str) -> Status {
    let tenant = &state.meta.tenant;
    let size = ledger.head(tenant).map(|h| h.size).unwrap_or_default();
    let position = state.meta.position;
    if position < size {
        Status::not_found(format!(
            "no release {:?} in tenant {tenant:?} yet: governance has folded {position} of {size} entries",
            clip(release_id)
        ))
    } else {
        Status::not_found(format!("no release {:?} in tenant {tenant:?}", clip(release_id)))
    }
}

/// The gRPC status of a projection worker failure (reading the projection store).
pub(crate) fn governor_status(error: &projections::GovernorError) -> Status {
    match error {
        projections::GovernorError::NotLoaded => Status::unavailable(error.to_string()),
        projections::GovernorError::UnknownTenant(_) => Status::not_found(error.to_string()),
        _ => Status::internal(error.to_string()),
    }
}

/// Most attestations `GetAttestations` returns at once.
pub const MAX_ATTESTATIONS: usize = 1000;
/// Most bytes of envelopes `GetAttestations` returns at once when asked for several (half the
/// default message limit; one statement of a release at its evidence cap is about 2 MB).
pub const MAX_ATTESTATIONS_BYTES: usize = ledger_wire::DEFAULT_MAX_MESSAGE_BYTES / 2;

/// The attestation of decision `seq` (docs/attestation.md): the statement built from the
/// decision entry and its evidence entries, signed as DSSE by the ledger key.
pub(crate) fn attestation(ledger: &Ledger, tenant: &str, release: &str, seq: u64) -> Result<pb::Attestation, Status> {
    use projections::attestation::{self, AttestedEntry};
    let read = |seq: u64| ledger.entry(tenant, seq).map_err(|e| read_status(&e));
    let decision = read(seq)?;
    let data = attestation::decision_of(tenant, release, &AttestedEntry::from(&decision))
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
    let evidence = data.evidence.iter().map(|&seq| read(seq)).collect::<Result<Vec<_>, _>>()?;
    let evidence: Vec<AttestedEntry<'_>> = evidence.iter().map(AttestedEntry::from).collect();
    let key = ledger.ledger_key();
    let key_id = key.key_id().to_hex();
    let origin = ledger.origin(tenant);
    let who = attestation::Subject { origin: &origin, ledger_key_id: &key_id, tenant, release };
    let envelope = attestation::signed(key, &who, &AttestedEntry::from(&decision), &evidence)
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
    Ok(pb::Attestation {
        seq,
        decision_type: data.status.event_type().as_str().to_owned(),
        envelope: envelope.to_json(),
    })
}

/// A release id in a request: what a body's `releaseId` may be, or no release could match.
fn validate_release_id(release_id: &str) -> Result<(), Status> {
    ReleaseId::check_as("release_id", release_id).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A `page_token` is the last release id of the previous page: anything else is refused
/// rather than read as a position.
fn parse_page_token(token: String) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    ReleaseId::check_as("page_token", &token).map_err(|e| {
        Status::invalid_argument(format!("{e} (pass the next_page_token of the previous page, or nothing)"))
    })?;
    Ok(Some(token))
}

/// An RFC 3339 time as ns since the epoch (times before 1970 clamp to 0: nothing is recorded
/// then).
fn parse_time(field: &str, text: &str) -> Result<u64, Status> {
    let ns =
        projections::freeze::parse_rfc3339_ns(text).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))?;
    Ok(u64::try_from(ns).unwrap_or(0))
}

fn parse_status(text: &str) -> Result<ReleaseStatus, Status> {
    ReleaseStatus::parse(text).ok_or_else(|| {
        Status::invalid_argument(format!(
            "status: {:?} is not a release status; use Planned, Approved, Delayed, Rejected, Published, Failed or \
             RolledBack",
            clip(text)
        ))
    })
}

fn explain_status(error: &ExplainError) -> Status {
    match error {
        ExplainError::NotFound(message) => Status::not_found(message.clone()),
        // A decision seq beyond the log is an unknown decision, not a read past the end.
        ExplainError::Read(ReadError::OutOfRange(message)) => Status::not_found(format!("no such decision: {message}")),
        ExplainError::Read(read) => read_status(read),
    }
}

/// Runs one RPC inside its span (see [`crate::status::rpc_span`]) and records its gRPC status code there.
async fn traced<T>(
    method: &'static str,
    tenant: &str,
    release_id: Option<&str>,
    work: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let span = crate::status::rpc_span("release_ledger.v1.Query", method);
    // Span fields are input too: a long one is recorded clipped, like error messages.
    if !tenant.is_empty() {
        span.record("tenant", tracing::field::display(clip(tenant)));
    }
    if let Some(release_id) = release_id.filter(|r| !r.is_empty()) {
        span.record("releaseId", tracing::field::display(clip(release_id)));
    }
    let result = in_rpc_span(&span, work).await;
    if let Err(status) = &result {
        span.in_scope(|| tracing::debug!(code = ?status.code(), reason = status.message(), "query failed"));
    }
    result
}

/// Records a summary's trace id, status and blocking reasons on the current span.
fn record_summary(summary: &read_model::ReleaseSummary) {
    let span = tracing::Span::current();
    if let Some(trace_id) = &summary.trace_id {
        span.record("traceId", trace_id.as_str());
    }
    span.record("status", summary.status.as_str());
    if !summary.reasons.is_empty() {
        let codes: Vec<&str> = summary.reasons.iter().map(|r| r.code.as_str()).collect();
        span.record("reasons", codes.join(",").as_str());
    }
}

/// Waits (bounded by 5 s) until the worker has loaded the stored projections: before that,
/// every tenant would look empty. It loads them right after the server starts, so only the
/// first requests of a fresh process ever wait; past the bound the answer is a retryable
/// UNAVAILABLE. The Query and Flight services both wait here.
pub(crate) async fn projections_loaded(governor: &Governor) -> Result<(), Status> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    while !governor.ready() {
        if tokio::time::Instant::now() >= deadline {
            return Err(Status::unavailable("the governance projections are still loading; retry shortly"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tonic::async_trait]
impl QueryRpc for QueryService {
    async fn get_release_summary(
        &self,
        request: Request<pb::GetReleaseSummaryRequest>,
    ) -> Result<Response<pb::ReleaseSummary>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::GetReleaseSummaryRequest { tenant, release_id } = request.into_inner();
        traced("GetReleaseSummary", &tenant.clone(), Some(&release_id.clone()), async move {
            let summary =
                self.on_release(tenant, release_id, |state, release| Ok(read_model::summary(state, release))).await?;
            record_summary(&summary);
            Ok(Response::new(summary_to_pb(summary)))
        })
        .await
    }

    async fn list_releases(
        &self,
        request: Request<pb::ListReleasesRequest>,
    ) -> Result<Response<pb::ListReleasesResponse>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let request = request.into_inner();
        traced("ListReleases", &request.tenant.clone(), None, async move {
            let pb::ListReleasesRequest {
                tenant,
                environment,
                status,
                updated_from,
                updated_to,
                page_size,
                page_token,
            } = request;
            check_tenant(&tenant)?;
            if page_size > MAX_PAGE_SIZE {
                return Err(Status::invalid_argument(format!(
                    "page_size: {page_size} is above the maximum of {MAX_PAGE_SIZE}"
                )));
            }
            if let Some(environment) = &environment {
                Environment::check_named("environment", environment).map_err(Status::invalid_argument)?;
            }
            let filter = ReleaseFilter {
                environment,
                status: status.as_deref().map(parse_status).transpose()?,
                updated_from: updated_from.as_deref().map(|t| parse_time("updated_from", t)).transpose()?,
                updated_to: updated_to.as_deref().map(|t| parse_time("updated_to", t)).transpose()?,
                after: parse_page_token(page_token)?,
                limit: page_size as usize,
            };
            if let (Some(from), Some(to)) = (filter.updated_from, filter.updated_to) {
                if from > to {
                    return Err(Status::invalid_argument("updated_from is after updated_to"));
                }
            }
            let (page, next) = self
                .blocking(move |ledger, governor| match governor.list_releases(&tenant, &filter) {
                    Ok(Some(page)) => Ok(page),
                    Ok(None) => {
                        with_state(ledger, governor, &tenant, |state| Ok(read_model::list_releases(state, &filter)))
                    }
                    Err(e) => Err(governor_status(&e)),
                })
                .await?;
            Ok(Response::new(pb::ListReleasesResponse {
                releases: page.into_iter().map(summary_to_pb).collect(),
                next_page_token: next.unwrap_or_default(),
            }))
        })
        .await
    }

    async fn list_release_history(
        &self,
        request: Request<pb::ListReleaseHistoryRequest>,
    ) -> Result<Response<pb::ListReleaseHistoryResponse>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::ListReleaseHistoryRequest { tenant, module, environment } = request.into_inner();
        traced("ListReleaseHistory", &tenant.clone(), None, async move {
            check_tenant(&tenant)?;
            ModuleName::check_named("module", &module).map_err(Status::invalid_argument)?;
            Environment::check_named("environment", &environment).map_err(Status::invalid_argument)?;
            let items = self
                .blocking(move |ledger, governor| {
                    with_state(ledger, governor, &tenant, |state| Ok(read_model::history(state, &module, &environment)))
                })
                .await?;
            Ok(Response::new(pb::ListReleaseHistoryResponse { items: items.iter().map(history_to_pb).collect() }))
        })
        .await
    }

    async fn list_approvals(
        &self,
        request: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::ListApprovalsRequest { tenant, release_id } = request.into_inner();
        traced("ListApprovals", &tenant.clone(), Some(&release_id.clone()), async move {
            let approvals = self
                .on_release(tenant, release_id, |_, release| Ok(release.approvals.iter().map(approval_to_pb).collect()))
                .await?;
            Ok(Response::new(pb::ListApprovalsResponse { approvals }))
        })
        .await
    }

    async fn get_risk_score(
        &self,
        request: Request<pb::GetRiskScoreRequest>,
    ) -> Result<Response<pb::RiskScore>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::GetRiskScoreRequest { tenant, release_id } = request.into_inner();
        traced("GetRiskScore", &tenant.clone(), Some(&release_id.clone()), async move {
            let score = self
                .on_release(tenant, release_id, |_, release| {
                    let decision = release.decision.as_ref().ok_or_else(|| {
                        Status::not_found(format!(
                            "release {:?} has no decision yet, so no risk score",
                            release.release_id
                        ))
                    })?;
                    Ok(pb::RiskScore {
                        score: decision.risk_score,
                        factors: decision.risk_factors.iter().map(risk_factor_to_pb).collect(),
                        evaluated_at: decision.evaluated_at.clone(),
                    })
                })
                .await?;
            Ok(Response::new(score))
        })
        .await
    }

    async fn explain_decision(
        &self,
        request: Request<pb::ExplainDecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::ExplainDecisionRequest { tenant, release_id, seq } = request.into_inner();
        traced("ExplainDecision", &tenant.clone(), Some(&release_id.clone()), async move {
            let id = release_id.clone();
            // Copy the release out and fold the log prefix without the worker's lock: the fold
            // may be long, and the worker must not wait for it. `explain` reads only the
            // release and the tenant's name from the state.
            let release = self.on_release(tenant.clone(), release_id, |_, release| Ok(release.clone())).await?;
            let explained = self
                .blocking(move |ledger, _| {
                    let mut snapshot = TenantState::new(&tenant);
                    snapshot.releases.insert(id.clone(), release);
                    read_model::explain(ledger, &snapshot, &id, seq).map_err(|e| explain_status(&e))
                })
                .await?;
            Ok(Response::new(explained_to_pb(explained)))
        })
        .await
    }

    async fn get_release_timeline(
        &self,
        request: Request<pb::GetReleaseTimelineRequest>,
    ) -> Result<Response<pb::ReleaseTimeline>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::GetReleaseTimelineRequest { tenant, release_id } = request.into_inner();
        traced("GetReleaseTimeline", &tenant.clone(), Some(&release_id.clone()), async move {
            let items = self
                .on_release(tenant, release_id, |_, release| Ok(release.timeline.iter().map(timeline_to_pb).collect()))
                .await?;
            Ok(Response::new(pb::ReleaseTimeline { items }))
        })
        .await
    }

    async fn get_attestations(
        &self,
        request: Request<pb::GetAttestationsRequest>,
    ) -> Result<Response<pb::GetAttestationsResponse>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::GetAttestationsRequest { tenant, release_id, seq, all } = request.into_inner();
        traced("GetAttestations", &tenant.clone(), Some(&release_id.clone()), async move {
            let decisions: Vec<u64> = self
                .on_release(tenant.clone(), release_id.clone(), |_, release| {
                    Ok(release
                        .timeline
                        .iter()
                        .filter(|item| ledger::event::DECISION_TYPES.contains(&item.event_type.as_str()))
                        .map(|item| item.seq)
                        .collect())
                })
                .await?;
            let chosen: Vec<u64> = match (seq, all) {
                (Some(seq), _) if decisions.contains(&seq) => vec![seq],
                (Some(seq), _) => {
                    return Err(Status::not_found(format!(
                        "seq {seq} is not a decision of release {:?} (its decisions: {:?})",
                        clip(&release_id),
                        &decisions[..decisions.len().min(20)]
                    )))
                }
                (None, true) if decisions.len() > MAX_ATTESTATIONS => {
                    return Err(Status::resource_exhausted(format!(
                        "release {:?} has {} decisions, over {MAX_ATTESTATIONS}: ask for them one seq at a time",
                        clip(&release_id),
                        decisions.len()
                    )))
                }
                (None, true) => decisions,
                (None, false) => decisions.last().copied().into_iter().collect(),
            };
            if chosen.is_empty() {
                return Err(Status::not_found(format!("release {:?} has no decision yet", clip(&release_id))));
            }
            let attestations = self
                .blocking(move |ledger, _| {
                    let (mut out, mut bytes) = (Vec::with_capacity(chosen.len()), 0usize);
                    let several = chosen.len() > 1;
                    for seq in chosen {
                        let attestation = attestation(ledger, &tenant, &release_id, seq)?;
                        bytes += attestation.envelope.len();
                        if several && bytes > MAX_ATTESTATIONS_BYTES {
                            return Err(Status::resource_exhausted(format!(
                                "the attestations of release {:?} come to more than {MAX_ATTESTATIONS_BYTES} bytes: \
                                 ask for them one seq at a time (release-ledger attestation --all does)",
                                clip(&release_id)
                            )));
                        }
                        out.push(attestation);
                    }
                    Ok(out)
                })
                .await?;
            Ok(Response::new(pb::GetAttestationsResponse { attestations }))
        })
        .await
    }

    async fn replay_as_of(
        &self,
        request: Request<pb::ReplayAsOfRequest>,
    ) -> Result<Response<pb::ReplayAsOfResponse>, Status> {
        crate::access::tenant(&request, &request.get_ref().tenant)?;

        let pb::ReplayAsOfRequest { tenant, release_id, as_of } = request.into_inner();
        traced("ReplayAsOf", &tenant.clone(), Some(&release_id.clone()), async move {
            check_tenant(&tenant)?;
            validate_release_id(&release_id)?;
            let as_of = match as_of {
                None => return Err(Status::invalid_argument("as_of: give a seq or an RFC 3339 time")),
                Some(pb::replay_as_of_request::AsOf::Seq(seq)) => AsOf::Seq(seq),
                Some(pb::replay_as_of_request::AsOf::Time(time)) => AsOf::Time(parse_time("time", &time)?),
            };
            let replay = self
                .blocking(move |ledger, governor| {
                    let size = ledger.head(&tenant).map_err(|e| read_status(&e))?.size;
                    if let AsOf::Seq(seq) = as_of {
                        if seq >= size {
                            return Err(Status::out_of_range(format!(
                                "seq {seq} is beyond the log end ({size} entries)"
                            )));
                        }
                    }
                    let replay =
                        read_model::replay(ledger, &tenant, &release_id, as_of).map_err(|e| read_status(&e))?;
                    if replay.summary.is_none() {
                        // Not there yet at that point is an answer; never there is not.
                        if !matches!(governor.with_release(&tenant, &release_id, |_, _| ()), Ok(Some(Some(())))) {
                            with_state(ledger, governor, &tenant, |state| {
                                Err::<(), _>(release_not_found(ledger, state, &release_id))
                            })?;
                        }
                    }
                    Ok(replay)
                })
                .await?;
            Ok(Response::new(replay_to_pb(replay)))
        })
        .await
    }

    async fn get_governance_status(
        &self,
        request: Request<pb::GetGovernanceStatusRequest>,
    ) -> Result<Response<pb::GovernanceStatus>, Status> {
        // Operators see every tenant; anyone else only its own (a client waiting for its
        // event to be folded), so no tenant learns of another.
        let own = crate::access::own_tenant(request.extensions());
        traced("GetGovernanceStatus", "", None, async move {
            let tenants = self
                .blocking(move |_, governor| {
                    let tenants = governor
                        .lag()
                        .into_iter()
                        .filter(|(tenant, _)| own.as_ref().is_none_or(|own| own.as_deref() == Some(tenant.as_str())))
                        .map(|(tenant, lag_entries)| {
                            let position = governor.with_tenant(&tenant, |s| s.meta.position).unwrap_or_default();
                            pb::TenantLag { tenant, lag_entries, position }
                        })
                        .collect();
                    Ok(tenants)
                })
                .await?;
            Ok(Response::new(pb::GovernanceStatus { tenants }))
        })
        .await
    }
}

/// The wire name of a gate verdict.
pub fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "Pass",
        Verdict::Fail => "Fail",
        Verdict::Pending => "Pending",
        Verdict::NotApplicable => "NotApplicable",
    }
}

/// The wire name of an approval method.
pub fn method_name(method: projections::catalogue::ApprovalMethod) -> &'static str {
    use projections::catalogue::ApprovalMethod;
    match method {
        ApprovalMethod::CLI => "CLI",
        ApprovalMethod::UI => "UI",
        ApprovalMethod::API => "API",
    }
}

fn reason_to_pb(reason: &projections::Reason) -> pb::Reason {
    pb::Reason { code: reason.code.as_str().to_owned(), module: reason.module.clone(), detail: reason.detail.clone() }
}

fn risk_factor_to_pb(factor: &projections::RiskFactor) -> pb::RiskFactor {
    pb::RiskFactor { factor: factor.factor.clone(), value: factor.value.clone(), points: factor.points }
}

fn gate_to_pb(gate: &projections::Gate) -> pb::Gate {
    pb::Gate {
        gate: gate.gate.clone(),
        target: gate.target.clone(),
        observed: gate.observed.clone(),
        verdict: verdict_name(gate.verdict).to_owned(),
        code: gate.code.clone(),
    }
}

fn approval_to_pb(approval: &ApprovalRecord) -> pb::Approval {
    pb::Approval {
        seq: approval.seq,
        recorded_at: format_recorded_at(approval.recorded_at),
        key_id: approval.key_id.clone(),
        agent_id: approval.agent_id.clone(),
        role: approval.role.clone(),
        granted: approval.granted,
        text: approval.text.clone(),
        method: approval.method.map(|m| method_name(m).to_owned()),
    }
}

fn history_to_pb(item: &HistoryItem) -> pb::HistoryItem {
    pb::HistoryItem {
        seq: item.seq,
        recorded_at: format_recorded_at(item.recorded_at),
        release_id: item.release_id.clone(),
        version: item.version.clone(),
        event: item.event.as_str().to_owned(),
    }
}

fn timeline_to_pb(item: &TimelineItem) -> pb::TimelineItem {
    pb::TimelineItem {
        seq: item.seq,
        recorded_at: format_recorded_at(item.recorded_at),
        r#type: item.event_type.clone(),
        agent_id: item.agent_id.clone(),
        summary: item.summary.clone(),
    }
}

/// A release summary on the wire.
pub fn summary_to_pb(summary: read_model::ReleaseSummary) -> pb::ReleaseSummary {
    pb::ReleaseSummary {
        tenant: summary.tenant,
        release_id: summary.release_id,
        environment: summary.environment,
        modules: summary.modules.into_iter().map(|m| pb::ModuleVersion { name: m.name, version: m.version }).collect(),
        status: summary.status,
        reasons: summary.reasons.iter().map(reason_to_pb).collect(),
        retry_after: summary.retry_after,
        retryable: summary.retryable,
        suggested_fix: summary.suggested_fix,
        risk_score: summary.risk_score,
        risk_factors: summary.risk_factors.iter().map(risk_factor_to_pb).collect(),
        approvals: summary.approvals.iter().map(approval_to_pb).collect(),
        policy_version: summary.policy_version,
        last_decision: summary.last_decision.map(|d| pb::DecisionRef {
            r#type: d.event_type,
            trigger: d.trigger,
            evaluated_at: d.evaluated_at,
            seq: d.seq,
        }),
        trace_id: summary.trace_id,
        project_id: summary.project_id,
        declared_by: summary.declared_by,
        created_at: summary.created_at,
        updated_at: summary.updated_at,
        notes: summary.notes,
    }
}

/// A decision record on the wire.
pub fn decision_to_pb(
    seq: Option<u64>,
    event_type: String,
    decision: &DecisionData,
    reproduced: Option<bool>,
) -> pb::Decision {
    pb::Decision {
        seq,
        r#type: event_type,
        status: decision.status.as_str().to_owned(),
        policy_version: decision.policy_version,
        evaluated_at: decision.evaluated_at.clone(),
        trigger: decision.trigger,
        evidence: decision.evidence.clone(),
        gates: decision.gates.iter().map(gate_to_pb).collect(),
        reasons: decision.reasons.iter().map(reason_to_pb).collect(),
        retry_after: decision.retry_after.clone(),
        retryable: decision.retryable,
        suggested_fix: decision.suggested_fix.clone(),
        risk_score: decision.risk_score,
        risk_factors: decision.risk_factors.iter().map(risk_factor_to_pb).collect(),
        reproduced,
        custom_gate_input_json: None,
        custom_gates: Vec::new(),
    }
}

/// The largest custom gate input an explanation carries (its JSON text): one release may hold
/// up to 1000 attachments of 32 KiB each, more than an answer may (the message limit, 4 MiB by
/// default). A larger one is left out (the gates' results are still sent).
pub const MAX_EXPLAINED_INPUT_BYTES: usize = 2 * 1024 * 1024;

fn explained_to_pb(explained: ExplainedDecision) -> pb::Decision {
    let mut decision = decision_to_pb(explained.seq, explained.event_type, &explained.decision, explained.reproduced);
    if let Some(custom) = explained.custom_gates {
        let input = custom.input.to_string();
        decision.custom_gate_input_json = (input.len() <= MAX_EXPLAINED_INPUT_BYTES).then_some(input);
        decision.custom_gates = custom
            .results
            .into_iter()
            .map(|run| pb::CustomGateRun {
                gate: run.gate,
                result_json: run.result.map(|r| r.to_string()),
                error: run.error,
            })
            .collect();
    }
    decision
}

fn replay_to_pb(replay: Replay) -> pb::ReplayAsOfResponse {
    pb::ReplayAsOfResponse {
        size: replay.size,
        summary: replay.summary.map(summary_to_pb),
        timeline: replay.timeline.iter().map(timeline_to_pb).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn governor_errors_map_to_codes() {
        use projections::store::StoreError;
        use projections::GovernorError;
        let code = |e: GovernorError| governor_status(&e).code();
        assert_eq!(code(GovernorError::NotLoaded), Code::Unavailable);
        assert_eq!(code(GovernorError::UnknownTenant("t".into())), Code::NotFound);
        let corrupt = StoreError::Corrupt { key: "t/r/r1".into(), reason: "bad json".into() };
        let status = governor_status(&GovernorError::Store(corrupt));
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("t/r/r1"), "{}", status.message());
    }

    #[test]
    fn wire_names() {
        let names: Vec<&str> = [Verdict::Pass, Verdict::Fail, Verdict::Pending, Verdict::NotApplicable]
            .into_iter()
            .map(verdict_name)
            .collect();
        assert_eq!(names, ["Pass", "Fail", "Pending", "NotApplicable"]);
        use projections::catalogue::ApprovalMethod;
        let methods: Vec<&str> =
            [ApprovalMethod::CLI, ApprovalMethod::UI, ApprovalMethod::API].into_iter().map(method_name).collect();
        assert_eq!(methods, ["CLI", "UI", "API"]);
    }

    #[test]
    fn bad_filters_are_invalid_arguments() {
        assert_eq!(parse_status("Approved").ok(), Some(ReleaseStatus::Approved));
        assert_eq!(parse_status("approved").unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(parse_time("updated_from", "2025-05-23T09:32:00Z").ok(), Some(1_747_992_720_000_000_000));
        let status = parse_time("updated_from", "yesterday").unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("updated_from: "), "{}", status.message());
        assert_eq!(parse_time("t", "1969-12-31T23:59:59Z").ok(), Some(0));
    }

    #[test]
    fn explain_errors_map_to_codes() {
        let corrupted = ExplainError::Read(ReadError::Corrupted { seq: 3, reason: "hash".into() });
        assert_eq!(explain_status(&corrupted).code(), Code::DataLoss);
        assert_eq!(explain_status(&ExplainError::NotFound("no".into())).code(), Code::NotFound);
        assert_eq!(explain_status(&ExplainError::Read(ReadError::OutOfRange("9".into()))).code(), Code::NotFound);
        assert_eq!(explain_status(&ExplainError::Read(ReadError::UnknownTenant("t".into()))).code(), Code::NotFound);
    }
}
