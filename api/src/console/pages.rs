//! The console's HTML pages (docs/console.md lists them and the hooks the tests rely on).

use axum::extract::{ConnectInfo, Form, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use projections::board::{BoardQuery, BoardRow};
use projections::decision::{DecisionData, Verdict};
use projections::query::ReleaseSummary;
use projections::state::{ApprovalRecord, HistoryItem, HistoryKind, ReleaseState, ReleaseStatus, TimelineItem};

use super::view::{self, Nav};
use super::{Console, ConsolePeer, TOKEN_COOKIE};

/// Statuses in the order the board shows them.
const STATUSES: &[ReleaseStatus] = &[
    ReleaseStatus::Planned,
    ReleaseStatus::Delayed,
    ReleaseStatus::Approved,
    ReleaseStatus::Rejected,
    ReleaseStatus::Published,
    ReleaseStatus::Failed,
    ReleaseStatus::RolledBack,
];

/// How far ahead the freeze calendar looks.
const CALENDAR_DAYS: i64 = 30;
/// Windows listed per freeze in the calendar, at most.
const CALENDAR_WINDOWS: usize = 200;

type Peer = ConnectInfo<ConsolePeer>;

fn internal(what: &str, error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, what, "console page failed");
    view::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Error", &format!("{what}: {error}"))
}

/// Runs blocking reads off the runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Response> + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(work).await.map_err(|e| internal("the page's task failed", e))?
}

fn now_ns(console: &Console) -> u64 {
    console.0.ledger.config().clock.now_ns()
}

// ---------------------------------------------------------------------------------------------
// Sign-in

#[derive(serde::Deserialize, Default)]
pub(super) struct LoginQuery {
    next: Option<String>,
    problem: Option<String>,
}

/// A `next` that stays on this site: a path, not `//host` — and only visible ASCII, since
/// browsers drop tabs and newlines from a URL (`/\t/host` would become `//host`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    view::respond(
        status,
        view::page(
            "Sign in",
            &Nav::NONE,
            &[],
            html! {
                @if let Some(problem) = problem {
                    p #login-problem role="alert" { (problem) }
                }
                p {
                    "Paste a bearer token: " code { "release-ledger token --key KEY --tenant TENANT --ttl 1h" }
                    " mints one with a registered key (a Reader or Auditor key reads its tenant; the admin key, without "
                    code { "--tenant" } ", an operator). An OIDC ID token of an issuer this server trusts works too. "
                    "With a client certificate this server maps to a principal, you are signed in already."
                }
                form #login method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token" }
                    input #token type="password" name="token" required autocomplete="off" spellcheck="false";
                    button type="submit" { "Sign in" }
                }
            },
        ),
    )
}

/// `GET /login`.
pub(super) async fn login_form(Query(query): Query<LoginQuery>) -> Response {
    login_page(StatusCode::OK, &safe_next(query.next.as_deref()), query.problem.as_deref())
}

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: verifies the token as the gRPC port would and keeps it in an `HttpOnly`,
/// `SameSite=Strict` cookie (`Secure` over TLS). The cookie has no expiry of its own: the
/// token's does, and a page after it sends the person back here.
pub(super) async fn login(State(console): State<Console>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let token = form.token.trim().to_owned();
    let checked = {
        let console = console.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || console.0.access.bearer_principal(&token)).await
    };
    match checked {
        Ok(Ok(principal)) => {
            tracing::info!(target: "access", principal = %principal.name, "console sign-in");
            let secure = if console.0.secure { "; Secure" } else { "" };
            // The cookie expires with the token (verified above, so its claims can be read).
            let max_age = token_expiry(&token)
                .map(|exp| format!("; Max-Age={}", exp.saturating_sub(now_ns(&console) / 1_000_000_000)))
                .unwrap_or_default();
            let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}{max_age}");
            let mut response = Redirect::to(&next).into_response();
            match HeaderValue::from_str(&cookie) {
                Ok(value) => {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                    response
                }
                Err(_) => {
                    login_page(StatusCode::BAD_REQUEST, &next, Some("the token holds characters a cookie cannot"))
                }
            }
        }
        Ok(Err(status)) => login_page(StatusCode::UNAUTHORIZED, &next, Some(status.message())),
        Err(e) => internal("verifying the token", e),
    }
}

/// The `exp` claim (seconds since the epoch) of a JWT: a ledger token or an OIDC ID token.
fn token_expiry(token: &str) -> Option<u64> {
    use base64::Engine as _;
    let claims = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims.trim_end_matches('=')).ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("exp")?.as_u64()
}

/// `POST /logout`: forgets the cookie.
pub(super) async fn logout(State(console): State<Console>) -> Response {
    let secure = if console.0.secure { "; Secure" } else { "" };
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) =
        HeaderValue::from_str(&format!("{TOKEN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Home

/// `GET /`: an operator's tenants, or the principal's own tenant's board.
pub(super) async fn home(State(console): State<Console>, ConnectInfo(peer): Peer, headers: HeaderMap) -> Response {
    let principal = match console.signed_in(&headers, &peer, "/") {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    if !principal.operator {
        return match &principal.tenant {
            Some(tenant) => Redirect::to(&format!("/t/{tenant}")).into_response(),
            None => view::refused_page(StatusCode::FORBIDDEN, "this principal reads no tenant"),
        };
    }
    let tenants = console.0.ledger.tenants();
    view::respond(
        StatusCode::OK,
        view::page(
            "Tenants",
            &Nav { principal: Some(&principal), tenant: None },
            &[],
            html! {
                @if tenants.is_empty() { p { "No tenant has written anything yet." } }
                ul #tenants {
                    @for tenant in &tenants { li { a href=(format!("/t/{tenant}")) { (tenant) } } }
                }
            },
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Releases board

#[derive(serde::Deserialize, Default)]
pub(super) struct BoardParams {
    status: Option<String>,
    environment: Option<String>,
    module: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A date (`YYYY-MM-DD`, the date input's value) or an RFC 3339 time, as ns.
fn parse_when(text: &str, end_of_day: bool) -> Result<u64, String> {
    let full = if text.len() == 10 {
        if end_of_day {
            format!("{text}T23:59:59.999999999Z")
        } else {
            format!("{text}T00:00:00Z")
        }
    } else {
        text.to_owned()
    };
    ledger::time::parse_rfc3339_ns(&full)
        .ok()
        .and_then(|ns| u64::try_from(ns).ok())
        .ok_or_else(|| format!("{text:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time"))
}

/// `GET /t/{tenant}`: the tenant's releases, newest first, by status, filtered and paginated,
/// with the count of each status; the page reloads its rows when the log grows.
pub(super) async fn board(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(tenant): Path<String>,
    Query(params): Query<BoardParams>,
) -> Response {
    let principal = match console.projection_reader(&headers, &peer, &uri.to_string(), "console/board", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let status = match non_empty(&params.status) {
        None => None,
        Some(name) => match STATUSES.iter().find(|s| s.as_str() == name) {
            Some(status) => Some(*status),
            None => return view::error_page(StatusCode::BAD_REQUEST, "Bad filter", &format!("no status {name:?}")),
        },
    };
    let from = match non_empty(&params.from).map(|t| parse_when(&t, false)).transpose() {
        Ok(from) => from,
        Err(e) => return view::error_page(StatusCode::BAD_REQUEST, "Bad filter", &format!("from: {e}")),
    };
    let to = match non_empty(&params.to).map(|t| parse_when(&t, true)).transpose() {
        Ok(to) => to.map(|t| t.saturating_add(1)),
        Err(e) => return view::error_page(StatusCode::BAD_REQUEST, "Bad filter", &format!("to: {e}")),
    };
    // A search for an exact release id goes to its page (one read); anything else filters the
    // index by prefix, newest first.
    if let Some(id) = non_empty(&params.q) {
        let governor = console.0.governor.clone();
        let (read_tenant, read_id) = (tenant.clone(), id.clone());
        let exists = blocking(move || {
            Ok(matches!(governor.with_release(&read_tenant, &read_id, |_, _| ()), Ok(Some(Some(())))))
        })
        .await;
        if let Ok(true) = exists {
            return Redirect::to(&format!("/t/{tenant}/releases/{}", view::query_escape(&id))).into_response();
        }
    }
    let query = BoardQuery {
        status,
        environment: non_empty(&params.environment),
        module: non_empty(&params.module),
        updated_from: from,
        updated_to: to,
        id_prefix: non_empty(&params.q),
        after: non_empty(&params.after),
        limit: 50,
    };
    // A release-id prefix alone is answered from the release rows, which are in id order: the
    // ids that start with it are one seek away, however old (the index is newest first).
    let by_id = query.id_prefix.clone().filter(|_| {
        query.status.is_none()
            && query.environment.is_none()
            && query.module.is_none()
            && query.updated_from.is_none()
            && query.updated_to.is_none()
            && query.after.is_none()
    });
    let searching_ids = by_id.is_some();
    let governor = console.0.governor.clone();
    let read_tenant = tenant.clone();
    let read = blocking(move || {
        let page = match by_id {
            Some(prefix) => by_id_prefix(&governor, &read_tenant, &prefix)?,
            None => governor.board(&read_tenant, &query).map_err(|e| board_error(&e))?,
        };
        let counts = governor.status_counts(&read_tenant).map_err(|e| internal("reading the status counts", e))?;
        let size = governor.ledger().head(&read_tenant).map(|h| h.size).unwrap_or(0);
        Ok((page, counts, size))
    })
    .await;
    let (page, counts, size) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let (rows, next, scanned) = match page {
        Some(page) => (page.rows, page.next, page.scanned),
        None => (Vec::new(), None, 0),
    };
    let counts = counts.unwrap_or_default();
    let link = |extra: &[(&str, &str)]| {
        let mut pairs: Vec<(&str, String)> = [
            ("status", non_empty(&params.status)),
            ("environment", non_empty(&params.environment)),
            ("module", non_empty(&params.module)),
            ("from", non_empty(&params.from)),
            ("to", non_empty(&params.to)),
            ("q", non_empty(&params.q)),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| (*k, (*v).to_owned())));
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", view::query_escape(v))).collect();
        format!("/t/{tenant}?{}", query.join("&"))
    };
    let selected = non_empty(&params.status).unwrap_or_default();
    let body = html! {
        div #live data-events=(format!("/t/{tenant}/events")) data-size=(size) aria-live="polite" {}
        nav #counts aria-label="Releases by status" {
            a href=(link(&[("status", "")])) class=(if selected.is_empty() { "count current" } else { "count" }) {
                "All " span data-count="All" { (counts.total) }
            }
            @for status in STATUSES {
                a href=(link(&[("status", status.as_str())]))
                    class=(if selected == status.as_str() { "count current" } else { "count" }) {
                    (view::status_badge(status.as_str())) " "
                    span data-count=(status.as_str()) { (counts.get(*status)) }
                }
            }
        }
        form #filters method="get" action=(format!("/t/{tenant}")) role="search" {
            div.field {
                label for="f-q" { "Release id" }
                input #f-q type="search" name="q" value=(params.q.clone().unwrap_or_default()) placeholder="starts with";
            }
            div.field {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for status in STATUSES {
                        option value=(status.as_str()) selected[selected == status.as_str()] { (status.as_str()) }
                    }
                }
            }
            div.field {
                label for="f-environment" { "Environment" }
                input #f-environment name="environment" value=(params.environment.clone().unwrap_or_default());
            }
            div.field {
                label for="f-module" { "Module" }
                input #f-module name="module" value=(params.module.clone().unwrap_or_default());
            }
            div.field {
                label for="f-from" { "Updated from" }
                input #f-from type="date" name="from" value=(params.from.clone().unwrap_or_default());
            }
            div.field {
                label for="f-to" { "Updated to" }
                input #f-to type="date" name="to" value=(params.to.clone().unwrap_or_default());
            }
            button type="submit" { "Filter" }
            a href=(format!("/t/{tenant}")) { "Clear" }
        }
        @if searching_ids {
            p #search-note { "Release ids starting with " code { (params.q.clone().unwrap_or_default()) } ", in id order." }
        }
        @if rows.is_empty() {
            p #empty { "No release matches." }
        } @else {
            div.scroll {
                table #releases {
                    caption.sr { "Releases, most recently updated first" }
                    thead { tr { th scope="col" { "Release" } th scope="col" { "Status" } th scope="col" { "Environment" } th scope="col" { "Modules" } th scope="col" { "Risk" } th scope="col" { "Updated" } } }
                    tbody {
                        @for row in &rows { (board_row(&tenant, row)) }
                    }
                }
            }
        }
        @match &next {
            Some(next) if next.is_empty() => p #more { "More than " (rows.len()) " release ids start with this: type more of the id." },
            Some(next) => p { a #next-page href=(link(&[("after", next)])) { "Next page" } " (" (scanned) " releases looked at)" },
            None => {},
        }
    };
    view::respond(
        StatusCode::OK,
        view::page(
            &format!("Releases of {tenant}"),
            &Nav { principal: Some(&principal), tenant: Some(&tenant) },
            &[],
            body,
        ),
    )
}

/// The releases whose id starts with `prefix`, in id order, at most a page (`next` is set,
/// without a cursor, when there are more: the person types more of the id).
fn by_id_prefix(
    governor: &projections::Governor,
    tenant: &str,
    prefix: &str,
) -> Result<Option<projections::BoardPage>, Response> {
    let filter = projections::query::ReleaseFilter { after: Some(prefix.to_owned()), limit: 51, ..Default::default() };
    let Some((summaries, _)) = governor.list_releases(tenant, &filter).map_err(|e| board_error(&e))? else {
        return Ok(None);
    };
    let matching: Vec<_> = summaries.into_iter().take_while(|s| s.release_id.starts_with(prefix)).collect();
    let more = matching.len() > 50;
    let rows = matching
        .into_iter()
        .take(50)
        .map(|s| BoardRow {
            status: STATUSES.iter().copied().find(|st| st.as_str() == s.status).unwrap_or_default(),
            environment: s.environment,
            modules: s.modules.into_iter().map(|m| m.name).collect(),
            created_at: ledger::time::parse_rfc3339_ns(&s.created_at).map_or(0, |ns| ns.max(0) as u64),
            updated_at: ledger::time::parse_rfc3339_ns(&s.updated_at).map_or(0, |ns| ns.max(0) as u64),
            retry_after: s.retry_after,
            risk_score: s.risk_score,
            release_id: s.release_id,
        })
        .collect::<Vec<_>>();
    let scanned = rows.len() as u64;
    Ok(Some(projections::BoardPage { rows, next: more.then(String::new), scanned }))
}

fn board_error(error: &projections::GovernorError) -> Response {
    match error {
        projections::GovernorError::Store(projections::store::StoreError::Cursor { .. }) => {
            view::error_page(StatusCode::BAD_REQUEST, "Bad page link", &error.to_string())
        }
        _ => internal("reading the board", error),
    }
}

fn board_row(tenant: &str, row: &BoardRow) -> Markup {
    html! {
        tr data-release=(row.release_id) data-status=(row.status.as_str()) {
            th scope="row" { a href=(format!("/t/{tenant}/releases/{}", view::query_escape(&row.release_id))) { (row.release_id) } }
            td { (view::status_badge(row.status.as_str())) }
            td { (row.environment.as_deref().unwrap_or("—")) }
            td { (row.modules.join(", ")) }
            td { @if let Some(score) = row.risk_score { (score) } @else { "—" } }
            td { (view::time(row.updated_at)) }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Release page

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
pub(super) async fn release(
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
pub(super) async fn explain(
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

// ---------------------------------------------------------------------------------------------
// Entry page

/// `GET /t/{tenant}/entries/{seq}`: the envelope, its signer, the chain link, and the
/// inclusion proof checked in the browser (verify.js) against the signed checkpoint, with the
/// ledger's key pinned in the page.
pub(super) async fn entry(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path((tenant, seq)): Path<(String, String)>,
) -> Response {
    let principal = match console.reader(&headers, &peer, &uri.to_string(), "console/entry", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Ok(seq) = seq.parse::<u64>() else {
        return view::error_page(StatusCode::BAD_REQUEST, "Bad entry", &format!("{seq:?} is not a seq"));
    };
    let ledger = console.0.ledger.clone();
    let read_tenant = tenant.clone();
    let read = blocking(move || {
        let entry = ledger.entry(&read_tenant, seq).map_err(|e| match e {
            ledger::ReadError::OutOfRange(_) | ledger::ReadError::UnknownTenant(_) => {
                view::error_page(StatusCode::NOT_FOUND, "No such entry", &e.to_string())
            }
            e => internal("reading the entry", e),
        })?;
        let keys = ledger.key_records(&read_tenant).unwrap_or_default();
        let size = ledger.head(&read_tenant).map(|h| h.size).unwrap_or(0);
        Ok((entry, keys, size))
    })
    .await;
    let (entry, keys, size) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let roots = console.0.ledger.trust_roots();
    let ledger_id = roots.ledger_id().to_hex();
    let admin_id = roots.admin_id().to_hex();
    let pinned = serde_json::json!({
        "keyName": console.0.ledger.origin(&tenant),
        "publicKey": base64_encode(roots.ledger().as_bytes()),
        "keyId": ledger_id,
    });
    let signer = |keyid: &str| -> String {
        if keyid == ledger_id {
            return "the ledger key (its own decisions)".into();
        }
        if keyid == admin_id {
            return "the admin key".into();
        }
        match keys.iter().find(|k| k.key_id == keyid) {
            Some(k) => format!(
                "agent {} (roles {}; registered at seq {}{})",
                k.agent_id,
                if k.roles.is_empty() { "none".to_owned() } else { k.roles.join(", ") },
                k.registered_at,
                k.revoked_at.map(|s| format!(", revoked at seq {s}")).unwrap_or_default()
            ),
            None => "a key not in the tenant's registry".into(),
        }
    };
    let body = html! {
        (view::json_script("ledger-key", &pinned))
        section aria-labelledby="h-entry" {
            h2 #h-entry { "Entry" }
            dl.facts {
                dt { "Seq" } dd { (entry.seq) " of " (size) }
                dt { "Recorded at" } dd { (view::time(entry.recorded_at)) }
                dt { "Entry hash" } dd { code.hash { (hex::encode(entry.entry_hash)) } }
                dt { "Payload hash (BLAKE3 of the envelope)" } dd { code.hash { (hex::encode(entry.payload_hash)) } }
                dt { "Chain link (previous entry hash)" } dd {
                    code.hash { (hex::encode(entry.prev_hash)) }
                    @if seq > 0 { " — " a href=(format!("/t/{tenant}/entries/{}", seq - 1)) { "entry #" (seq - 1) } }
                }
                @if seq + 1 < size { dt { "Next" } dd { a href=(format!("/t/{tenant}/entries/{}", seq + 1)) { "entry #" (seq + 1) } } }
            }
        }
        section aria-labelledby="h-envelope" {
            h2 #h-envelope { "Envelope" }
            @match entry.envelope() {
                None => p #redacted { "Redacted: the payload was erased; only its hash remains, and the chain and the tree still hold it." },
                Some(envelope) => {
                    dl.facts {
                        dt { "Payload type" } dd { code { (envelope.payload_type) } }
                        @for s in &envelope.signatures {
                            dt { "Signed by" } dd { (signer(&s.keyid)) " " code title=(s.keyid) { (view::short(&s.keyid)) } }
                        }
                    }
                    pre #payload { (view::pretty_json(&envelope.payload)) }
                }
            }
        }
        section aria-labelledby="h-verify" {
            h2 #h-verify { "Verified in your browser" }
            p { "This page checks, with your browser's own cryptography, that the entry is in the tenant's log as the ledger signed it. "
                "The ledger key it trusts is pinned in this page: " code.hash { (hex::encode(roots.ledger().as_bytes())) }
                " — compare it with the one you hold (" code { "ledger.pub" } ")." }
            div #verify-result data-outcome="pending" role="status" aria-live="polite" { "Verifying…" }
            ol #verify-steps {}
            p { a href=(format!("/t/{tenant}/entries/{seq}/proof.json")) { "The proof data (JSON)" } }
        }
    };
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    view::respond(StatusCode::OK, view::page(&format!("Entry #{seq} of {tenant}"), &nav, &["verify.js"], body))
}

pub(super) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Freeze calendar

/// `GET /t/{tenant}/freezes`: the freezes declared and not lifted, whether each is in force now,
/// and its windows in the next 30 days, in the freeze's time zone and the viewer's.
pub(super) async fn freezes(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path(tenant): Path<String>,
) -> Response {
    let principal = match console.projection_reader(&headers, &peer, &uri.to_string(), "console/freezes", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let now = now_ns(&console) as i64;
    let until = now.saturating_add(CALENDAR_DAYS * 86_400 * 1_000_000_000);
    let governor = console.0.governor.clone();
    let read_tenant = tenant.clone();
    let rows = blocking(move || {
        Ok(governor
            .with_tenant(&read_tenant, |state| {
                state
                    .meta
                    .freezes
                    .values()
                    .map(|f| {
                        let data = f.freeze.data().clone();
                        let zone = data.recurrence.as_ref().map_or_else(|| "UTC".to_owned(), |r| r.time_zone.clone());
                        (
                            f.seq,
                            data,
                            zone,
                            f.freeze.window_at(now),
                            f.freeze.windows_between(now, until, CALENDAR_WINDOWS),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default())
    })
    .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let body = html! {
        p { "Windows from now to " (view::time(until as u64)) " (" (CALENDAR_DAYS) " days). Times are shown in UTC, in each freeze's time zone, and in yours." }
        @if rows.is_empty() { p #no-freezes { "No freeze is declared (or every one was lifted)." } }
        div.scroll { table #freezes {
            thead { tr { th scope="col" { "Freeze" } th scope="col" { "Environments" } th scope="col" { "Schedule" } th scope="col" { "Now" } th scope="col" { "Next windows" } } }
            tbody {
                @for (seq, data, zone, current, windows) in &rows {
                    tr data-freeze=(data.freeze_id) data-in-force=(current.is_some()) {
                        th scope="row" { (data.freeze_id) br; a href=(format!("/t/{tenant}/entries/{seq}")) { "declared at #" (seq) }
                            @if !data.reason.is_empty() { br; (data.reason) } }
                        td { @if data.environments.is_empty() { "all" } @else { (data.environments.join(", ")) } }
                        td {
                            @match &data.recurrence {
                                Some(r) => { code { (r.rrule.as_deref().or(r.cron.as_deref()).unwrap_or_default()) } br; (r.duration_seconds) " s each, in " (r.time_zone) },
                                None => { "once, " (data.from.as_deref().unwrap_or_default()) " to " (data.to.as_deref().unwrap_or_default()) },
                            }
                        }
                        td { @match current {
                            Some((start, end)) => { strong { "In force" } br; (window(*start, *end, zone)) },
                            None => "—",
                        } }
                        td { @if windows.is_empty() { "none" } @else {
                            ul.windows { @for (start, end) in windows { li { (window(*start, *end, zone)) } } }
                            @if windows.len() >= CALENDAR_WINDOWS { p { "(the first " (CALENDAR_WINDOWS) ")" } }
                        } }
                    }
                }
            }
        } }
    };
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    view::respond(StatusCode::OK, view::page(&format!("Freezes of {tenant}"), &nav, &[], body))
}

/// A window in UTC (a `<time>` the page script also shows in the viewer's zone) and in `zone`.
fn window(start: i64, end: i64, zone: &str) -> Markup {
    let in_zone = |ns: i64| -> String {
        match zone.parse::<chrono_tz::Tz>() {
            Ok(tz) => chrono::TimeZone::timestamp_nanos(&tz, ns).format("%a %Y-%m-%d %H:%M %Z").to_string(),
            Err(_) => String::new(),
        }
    };
    html! {
        span.window {
            (view::time(start.max(0) as u64)) " → " (view::time(end.max(0) as u64))
            @if zone != "UTC" { " " span.zone { "(" (in_zone(start)) " → " (in_zone(end)) ")" } }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Module history

#[derive(serde::Deserialize, Default)]
pub(super) struct ModuleParams {
    environment: Option<String>,
    /// Only items before this seq (the link to older items).
    before: Option<u64>,
}

/// Items a module history page shows at most (the newest; older ones a link away).
const HISTORY_PAGE: usize = 500;

/// `GET /t/{tenant}/modules/{module}?environment=E`: the module's deployments, failures,
/// rollbacks and decisions in an environment over time, as a chart and a table.
pub(super) async fn module_history(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Path((tenant, module)): Path<(String, String)>,
    Query(params): Query<ModuleParams>,
) -> Response {
    let principal = match console.projection_reader(&headers, &peer, &uri.to_string(), "console/module", &tenant) {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let governor = console.0.governor.clone();
    let (read_tenant, read_module) = (tenant.clone(), module.clone());
    let environment = non_empty(&params.environment);
    let read_environment = environment.clone();
    let before = params.before;
    let read = blocking(move || {
        Ok(governor
            .with_tenant(&read_tenant, |state| {
                let prefix = format!("{read_module}|");
                let environments: Vec<String> =
                    state.meta.history.keys().filter_map(|k| k.strip_prefix(&prefix)).map(str::to_owned).collect();
                // The newest page only, copied under the lock: a busy module has tens of thousands.
                let (items, older) = match read_environment.as_deref() {
                    Some(env) => {
                        let all = state.meta.history_of(&read_module, env);
                        let end = before.map_or(all.len(), |b| all.partition_point(|i| i.seq < b));
                        let start = end.saturating_sub(HISTORY_PAGE);
                        (all[start..end].to_vec(), (start > 0).then(|| all[start].seq))
                    }
                    None => (Vec::new(), None),
                };
                (environments, items, older)
            })
            .unwrap_or_default())
    })
    .await;
    let (environments, items, older): (Vec<String>, Vec<HistoryItem>, Option<u64>) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let points: Vec<view::ChartPoint<'_>> = items
        .iter()
        .map(|item| view::ChartPoint {
            at_ns: item.recorded_at,
            kind: history_lane(item.event),
            label: format!(
                "{:?}: release {} version {} at {}",
                item.event,
                item.release_id,
                item.version,
                ledger::time::format_recorded_at(item.recorded_at)
            ),
            href: format!("/t/{tenant}/entries/{}", item.seq),
        })
        .collect();
    let body = html! {
        form #module-environment method="get" {
            label for="m-env" { "Environment" }
            select #m-env name="environment" {
                @for env in &environments {
                    option value=(env) selected[environment.as_deref() == Some(env.as_str())] { (env) }
                }
            }
            button type="submit" { "Show" }
        }
        @if environments.is_empty() { p { "Module " (module) " has no history in any environment." } }
        @else if environment.is_none() { p { "Pick an environment." } }
        @else {
            @if let Some(older) = older {
                p { "The newest " (items.len()) " events. "
                    a #older href=(format!("/t/{tenant}/modules/{}?environment={}&before={older}", view::query_escape(&module), view::query_escape(environment.as_deref().unwrap_or_default()))) { "Older events" } }
            }
            (view::history_chart(&points))
            div.scroll { table #history {
                thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Release" } th scope="col" { "Version" } th scope="col" { "Entry" } } }
                tbody { @for item in items.iter().rev() {
                    tr data-kind=(history_lane(item.event)) {
                        td { (view::time(item.recorded_at)) }
                        td { (format!("{:?}", item.event)) }
                        td { a href=(format!("/t/{tenant}/releases/{}", view::query_escape(&item.release_id))) { (item.release_id) } }
                        td { code { (item.version) } }
                        td { a href=(format!("/t/{tenant}/entries/{}", item.seq)) { "#" (item.seq) } }
                    }
                } }
            } }
        }
    };
    let nav = Nav { principal: Some(&principal), tenant: Some(&tenant) };
    let title = match &environment {
        Some(env) => format!("{module} in {env}"),
        None => format!("Module {module}"),
    };
    view::respond(StatusCode::OK, view::page(&title, &nav, &[], body))
}

fn history_lane(kind: HistoryKind) -> &'static str {
    match kind {
        HistoryKind::Approved => "approved",
        HistoryKind::Delayed => "delayed",
        HistoryKind::Rejected => "rejected",
        HistoryKind::Published => "published",
        HistoryKind::DeploymentCompleted => "deployed",
        HistoryKind::DeploymentFailed => "failed",
        HistoryKind::RollbackTriggered => "rolledback",
    }
}

// ---------------------------------------------------------------------------------------------
// Operator view

/// `GET /operator`: every tenant's log size, projection lag and latest checkpoint with its
/// cosignatures, and this node's place in its cluster.
pub(super) async fn operator(State(console): State<Console>, ConnectInfo(peer): Peer, headers: HeaderMap) -> Response {
    let principal = match console.operator(&headers, &peer, "/operator") {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let (ledger, governor, cosignatures) =
        (console.0.ledger.clone(), console.0.governor.clone(), console.0.cosignatures.clone());
    let read = blocking(move || {
        let lag = governor.lag();
        let rows: Vec<_> = ledger
            .tenants()
            .into_iter()
            .map(|tenant| {
                let checkpoint = ledger.checkpoint(&tenant).ok();
                let cosigned = cosignatures.as_ref().and_then(|c| c.cosigned_note(&tenant));
                let lag = lag.get(&tenant).copied();
                (tenant, checkpoint, cosigned, lag)
            })
            .collect();
        Ok((rows, governor.ready()))
    })
    .await;
    let (rows, ready) = match read {
        Ok(read) => read,
        Err(response) => return response,
    };
    let cluster = console.0.cluster.as_ref().map(crate::cluster::Cluster::status);
    let body = html! {
        p { "Projections " @if ready { "loaded" } @else { strong { "still loading" } } "." }
        div.scroll { table #tenants {
            thead { tr { th scope="col" { "Tenant" } th scope="col" { "Log size" } th scope="col" { "Projection lag" } th scope="col" { "Checkpoint root" } th scope="col" { "Cosignatures" } } }
            tbody { @for (tenant, checkpoint, cosigned, lag) in &rows {
                tr data-tenant=(tenant) {
                    th scope="row" { a href=(format!("/t/{tenant}")) { (tenant) } }
                    td { @if let Some(c) = checkpoint { (c.checkpoint.size) } @else { "—" } }
                    td data-lag=(lag.map(|l| l.to_string()).unwrap_or_default()) { @match lag { Some(0) => "up to date", Some(l) => { (l) " entries behind" }, None => "not followed yet" } }
                    td { @if let Some(c) = checkpoint { code.hash { (view::short(&hex::encode(c.checkpoint.root))) } } }
                    td { @match cosigned {
                        None => "none",
                        Some(note) => { (note.lines().filter(|l| l.starts_with('\u{2014}')).count().saturating_sub(1)) " witness signatures"
                            details { summary { "note" } pre { (note) } } },
                    } }
                }
            } }
        } }
        h2 { "Cluster" }
        @match &cluster {
            None => p #cluster { "A single node (no cluster configured)." },
            Some(status) => div #cluster {
                p { "This node: " strong { (status.node_id) } ", " (status.role) ", term " (status.term)
                    @if let Some(leader) = status.leader_id { ", leader " (leader) " (" (status.leader_address) ")" }
                    @if let (Some(log), Some(applied)) = (status.last_log_index, status.applied_index) { ", Raft log " (log) ", applied " (applied) " (" (log.saturating_sub(applied)) " behind)" } "." }
                table #nodes {
                    thead { tr { th scope="col" { "Node" } th scope="col" { "Address" } th scope="col" { "Replicated to" } } }
                    tbody { @for m in &status.members { tr { th scope="row" { (m.id) } td { (m.address) } td { @if let Some(i) = m.matched_index { (i) } @else { "—" } } } } }
                }
            },
        }
    };
    let nav = Nav { principal: Some(&principal), tenant: None };
    view::respond(StatusCode::OK, view::page("Operator", &nav, &[], body))
}
