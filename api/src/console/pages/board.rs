//! The releases board, `GET /t/{tenant}`.

use axum::extract::{ConnectInfo, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use projections::board::{BoardQuery, BoardRow};
use projections::state::ReleaseStatus;

use super::{blocking, internal, non_empty, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

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

#[derive(serde::Deserialize, Default)]
pub(in crate::console) struct BoardParams {
    status: Option<String>,
    environment: Option<String>,
    module: Option<String>,
    from: Option<String>,
    to: Option<String>,
    q: Option<String>,
    after: Option<String>,
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
pub(in crate::console) async fn board(
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
