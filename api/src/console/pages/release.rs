//! The release page, `GET /t/{tenant}/releases/{release}`, and its decision explanation (`.../explain`).

use axum::extract::{ConnectInfo, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use projections::decision::{DecisionData, Verdict};
use projections::query::ReleaseSummary;
use projections::state::{ApprovalRecord, ReleaseState, TimelineItem};

use super::{blocking, internal, now_ns, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

/// A freeze on the release page: id, reason, the window in force now.
type FreezeLine = (String, String, Option<(i64, i64)>);

/// What the release page shows, read under the worker's lock.
struct ReleaseView {
    summary: ReleaseSummary,
    release: ReleaseState,
    /// Freezes that apply to the release's environment.
    freezes: Vec<FreezeLine>,
    /// Approver roles the policy asks for in the environment (then its high-risk roles).
    roles: Vec<String>,
}

/// `GET /t/{tenant}/releases/{release}`.
pub(in crate::console) async fn release(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path((tenant, release_id)): Path<(String, String)>,
) -> Response {
    let principal = match console.projection_reader(&headers, &peer, &uri.to_string(), "console/release", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let governor = console.0.governor.clone();
    let now = now_ns(&console) as i64;
    let (read_tenant, read_id) = (tenant.clone(), release_id.clone());
    let read = blocking(move || {
        governor
            .with_release(&read_tenant, &read_id, |state, release| {
                let environment = release.environment().unwrap_or_default().to_owned();
                let freezes = state
                    .meta
                    .freezes
                    .values()
                    .filter(|f| f.freeze.applies_to(&environment))
                    .map(|f| (f.freeze.id().to_owned(), f.freeze.data().reason.clone(), f.freeze.window_at(now)))
                    .collect();
                let roles = state
                    .meta
                    .policy
                    .as_ref()
                    .and_then(|p| p.policy.environments.get(&environment).or(p.policy.default.as_ref()))
                    .map(|e| {
                        let mut roles = e.roles.clone();
                        roles.extend(e.high_risk_roles.iter().filter(|r| !e.roles.contains(r)).cloned());
                        roles
                    })
                    .unwrap_or_default();
                ReleaseView {
                    summary: projections::query::summary(state, release),
                    release: release.clone(),
                    freezes,
                    roles,
                }
            })
            .map_err(|e| internal("reading the release", e))
    })
    .await;
    let view = match read {
        Ok(Some(Some(view))) => view,
        Ok(_) => {
            return view::error_page(
                StatusCode::NOT_FOUND,
                "No such release",
                &format!("tenant {tenant} has no release {release_id:?} (yet: the projections may be catching up)"),
            )
        }
        Err(response) => return response,
    };
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    view::respond(
        StatusCode::OK,
        view::page(&format!("Release {release_id}"), &nav, &["approve.js"], release_body(&tenant, &view)),
    )
}

fn release_body(tenant: &str, view: &ReleaseView) -> Markup {
    let summary = &view.summary;
    let release = &view.release;
    let decision = release.decision.as_ref();
    let base = format!("/t/{tenant}/releases/{}", view::query_escape(&release.release_id));
    html! {
        section #overview aria-labelledby="h-overview" {
            h2 #h-overview { "Status" }
            p.status-line {
                span #status class=(format!("badge s-{}", summary.status.to_ascii_lowercase())) { (summary.status) }
                @if let Some(env) = &summary.environment { " to " strong { (env) } }
                @if let Some(by) = &summary.declared_by { " · declared by " (by) }
                " · created " (view::time_text(&summary.created_at)) " · updated " (view::time_text(&summary.updated_at))
            }
            @if !summary.modules.is_empty() {
                p { "Modules: "
                    @for (i, m) in summary.modules.iter().enumerate() {
                        @if i > 0 { ", " }
                        @if let Some(env) = &summary.environment {
                            a href=(format!("/t/{tenant}/modules/{}?environment={}", view::query_escape(&m.name), view::query_escape(env))) { (m.name) }
                        } @else { (m.name) }
                        " " code { (m.version) }
                    }
                }
            }
            @if let Some(retry) = &summary.retry_after {
                p #retry-after { "Re-evaluated by the ledger at " (view::time_text(retry)) ": "
                    span #countdown data-until=(retry) aria-live="off" { "…" } }
            }
            @if !summary.reasons.is_empty() {
                h3 { "Reasons" }
                ul #reasons {
                    @for reason in &summary.reasons {
                        li { code { (reason.code.as_str()) } @if let Some(m) = &reason.module { " (" (m) ")" } ": " (reason.detail) }
                    }
                }
            }
            @if let Some(fix) = &summary.suggested_fix { p #suggested-fix { strong { "Next: " } (fix) } }
            @if !view.freezes.is_empty() {
                h3 { "Freezes for this environment" }
                ul #release-freezes {
                    @for (id, reason, window) in &view.freezes {
                        li data-freeze=(id) {
                            strong { (id) } @if !reason.is_empty() { ": " (reason) }
                            @if let Some((start, end)) = window {
                                " — " strong { "in force now" } ", "
                                (view::time(*start as u64)) " to " (view::time(*end as u64))
                            } @else { " — not in force now" }
                        }
                    }
                }
            }
            p.downloads {
                a href=(format!("{base}/evidence.tar")) download { "Evidence pack (.tar)" }
                @if summary.last_decision.as_ref().is_some_and(|d| d.seq.is_some()) {
                    " · " a href=(format!("{base}/attestation.json")) download { "Attestation of the last decision (DSSE)" }
                }
            }
        }
        section #gates-section aria-labelledby="h-gates" {
            h2 #h-gates { "Gates" }
            @match decision {
                None => p { "Not evaluated yet." },
                Some(decision) => {
                    p { "Evaluated at " (view::time_text(&decision.evaluated_at)) " on entry "
                        a href=(format!("/t/{tenant}/entries/{}", decision.trigger)) { "#" (decision.trigger) }
                        @if let Some(v) = decision.policy_version { " under policy version " (v) } }
                    div.scroll { table #gates {
                        thead { tr { th scope="col" { "Gate" } th scope="col" { "Target" } th scope="col" { "Observed" } th scope="col" { "Verdict" } } }
                        tbody {
                            @for gate in &decision.gates {
                                @let verdict = verdict_name(gate.verdict);
                                tr data-gate=(gate.gate) data-verdict=(verdict) {
                                    th scope="row" { (gate.gate) @if let Some(code) = &gate.code { " " code { (code) } } }
                                    td { (gate.target) }
                                    td { (gate.observed) }
                                    td { span class=(format!("verdict v-{verdict}")) { (verdict) } }
                                }
                            }
                        }
                    } }
                }
            }
        }
        section #approvals-section aria-labelledby="h-approvals" {
            h2 #h-approvals { "Approvals" }
            @if !view.roles.is_empty() { p { "Roles the policy asks for in this environment: " (view.roles.join(", ")) } }
            @if release.approvals.is_empty() { p { "None yet." } } @else {
                div.scroll { table #approvals {
                    thead { tr { th scope="col" { "Entry" } th scope="col" { "Who" } th scope="col" { "Role" } th scope="col" { "When" } th scope="col" { "Counted" } } }
                    tbody {
                        @for approval in &release.approvals {
                            @let (counted, why) = counted(release, decision, approval);
                            tr data-counted=(counted) {
                                td { a href=(format!("/t/{tenant}/entries/{}", approval.seq)) { "#" (approval.seq) } }
                                td { (approval.agent_id) " " code title=(approval.key_id) { (view::short(&approval.key_id)) } }
                                td { (approval.role) @if !approval.granted { " (rejection)" } }
                                td { (view::time(approval.recorded_at)) }
                                td { @if counted { "yes" } @else { "no" } ": " (why) }
                            }
                        }
                    }
                } }
            }
            (approve_form(tenant, &release.release_id, &view.roles))
        }
        section #risk-section aria-labelledby="h-risk" {
            h2 #h-risk { "Risk" }
            @match summary.risk_score {
                None => p #risk { "Not scored yet." },
                Some(score) => div #risk data-points=(score) {
                    p { "Score " strong { (score) } " of 100." }
                    @if !summary.risk_factors.is_empty() {
                        table #risk-factors {
                            thead { tr { th scope="col" { "Factor" } th scope="col" { "Observed" } th scope="col" { "Points" } } }
                            tbody { @for f in &summary.risk_factors { tr data-points=(f.points) { th scope="row" { (f.factor) } td { (f.value) } td { (f.points) } } } }
                        }
                    }
                },
            }
        }
        section #timeline-section aria-labelledby="h-timeline" {
            h2 #h-timeline { "Timeline" }
            ol #timeline { @for item in &release.timeline { (timeline_item(tenant, item)) } }
            @if release.timeline_omitted > 0 { p { (release.timeline_omitted) " later entries are not listed (the projection keeps the first ones)." } }
        }
        section #explain-section aria-labelledby="h-explain" {
            h2 #h-explain { "Decision explanation" }
            div #explain data-reproduced="unknown" {
                p { "Re-derive the last decision from the log by replay and compare it with the one the ledger signed. "
                    "This reads the tenant's log up to the decision, so it runs when you ask (one at a time per server)." }
                button #explain-check type="button" data-load=(format!("{base}/explain")) data-target="explain" { "Check by replay" }
            }
        }
    }
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Pending => "pending",
        Verdict::NotApplicable => "not-applicable",
    }
}

/// Whether the last decision counted an approval, and why or why not, from the decision
/// itself: its reasons name every approval that did not count ("seq N: ...").
fn counted(release: &ReleaseState, decision: Option<&DecisionData>, approval: &ApprovalRecord) -> (bool, String) {
    if let Some(by) = release.invalidated.get(&approval.seq) {
        return (false, format!("withdrawn at seq {by}"));
    }
    let later = release
        .approvals
        .iter()
        .find(|a| a.seq > approval.seq && a.key_id == approval.key_id && a.role == approval.role);
    if let Some(later) = later {
        return (false, format!("superseded by the same key's word at seq {}", later.seq));
    }
    let Some(decision) = decision else { return (false, "not evaluated yet".into()) };
    if approval.seq > decision.trigger {
        return (false, "arrived after the last evaluation".into());
    }
    let prefix = format!("seq {}:", approval.seq);
    if let Some(reason) = decision.reasons.iter().find(|r| r.detail.starts_with(&prefix)) {
        return (false, format!("{} — {}", reason.code.as_str(), reason.detail));
    }
    if !approval.granted {
        return (false, format!("a rejection: {}", approval.text));
    }
    if decision.evidence.contains(&approval.seq) {
        (true, "counted by the last decision".into())
    } else {
        (false, "not among the evidence of the last decision".into())
    }
}

fn timeline_item(tenant: &str, item: &TimelineItem) -> Markup {
    html! {
        li {
            a href=(format!("/t/{tenant}/entries/{}", item.seq)) { "#" (item.seq) } " "
            (view::time(item.recorded_at)) " "
            strong { (item.event_type) } " by " (item.agent_id) ": " (item.summary)
        }
    }
}

fn approve_form(tenant: &str, release_id: &str, roles: &[String]) -> Markup {
    let roles: Vec<String> = if roles.is_empty() { vec!["ReleaseManager".into()] } else { roles.to_vec() };
    html! {
        details #approve-details {
            summary { "Approve in the browser" }
            form #approve data-tenant=(tenant) data-release=(release_id) {
                p { "Your key is read and used by this page only: it signs the approval here (WebCrypto) and never leaves the browser. "
                    "Give an unencrypted PKCS#8 PEM Ed25519 key registered in this tenant with the role." }
                div.field {
                    label for="approve-key" { "Key file" }
                    input #approve-key type="file" accept=".pem,.key,application/x-pem-file" required;
                }
                div.field {
                    label for="approve-role" { "Role" }
                    select #approve-role name="role" { @for role in &roles { option value=(role) { (role) } } }
                }
                div.field {
                    label for="approve-comment" { "Comment" }
                    textarea #approve-comment name="comment" rows="2" {}
                }
                button #approve-submit type="submit" { "Sign and approve" }
                pre #approve-payload hidden {}
                div #approve-result role="status" aria-live="polite" {}
            }
        }
    }
}

/// `GET /t/{tenant}/releases/{release}/explain`: the last decision re-derived by replay (a
/// fragment the release page loads, or a page of its own).
pub(in crate::console) async fn explain(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path((tenant, release_id)): Path<(String, String)>,
) -> Response {
    let principal = match console.projection_reader(&headers, &peer, &uri.to_string(), "console/explain", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Ok(_permit) = console.0.heavy.acquire().await else {
        return internal("explain", "the console is shutting down");
    };
    let (ledger, governor) = (console.0.ledger.clone(), console.0.governor.clone());
    let (read_tenant, read_id) = (tenant.clone(), release_id.clone());
    let explained = blocking(move || {
        let release = match governor.with_release(&read_tenant, &read_id, |_, r| r.clone()) {
            Ok(Some(Some(release))) => release,
            Ok(_) => return Ok(None),
            Err(e) => return Err(internal("reading the release", e)),
        };
        let mut snapshot = projections::state::TenantState::new(&read_tenant);
        snapshot.releases.insert(read_id.clone(), release);
        Ok(Some(projections::query::explain(&ledger, &snapshot, &read_id, None).map_err(|e| e.to_string())))
    })
    .await;
    let fragment = match explained {
        Ok(Some(Ok(explained))) => {
            let reproduced = match explained.reproduced {
                Some(true) => "true",
                Some(false) => "false",
                None => "unknown",
            };
            html! {
                div #explain data-reproduced=(reproduced) {
                    p {
                        "Decision " strong { (explained.event_type) }
                        @if let Some(seq) = explained.seq { " at entry " a href=(format!("/t/{tenant}/entries/{seq}")) { "#" (seq) } }
                        ", evaluated at " (view::time_text(&explained.decision.evaluated_at)) ". "
                        @match explained.reproduced {
                            Some(true) => strong.ok { "Reproduced by replay: re-deriving it from the log gives the same bytes." },
                            Some(false) => strong.bad { "NOT reproduced: re-deriving it from the log gives a different decision." },
                            None => "Not checked by replay (the decision is not in the log yet).",
                        }
                    }
                    p { "Evidence used: " @for (i, seq) in explained.decision.evidence.iter().enumerate() {
                        @if i > 0 { ", " } a href=(format!("/t/{tenant}/entries/{seq}")) { "#" (seq) } } }
                }
            }
        }
        Ok(Some(Err(e))) => html! { div #explain data-reproduced="unknown" { p { "Cannot explain: " (e) } } },
        Ok(None) => {
            return view::error_page(StatusCode::NOT_FOUND, "No such release", &format!("no release {release_id:?}"))
        }
        Err(response) => return response,
    };
    // The release page asks for the fragment; a person following the link gets a page.
    if headers.get("x-fragment").is_some() {
        return view::respond(StatusCode::OK, fragment);
    }
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    view::respond(StatusCode::OK, view::page(&format!("Decision of {release_id}"), &nav, &[], fragment))
}
