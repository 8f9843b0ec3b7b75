//! The freeze calendar, `GET /t/{tenant}/freezes`.

use axum::extract::{ConnectInfo, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::{blocking, now_ns, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

/// How far ahead the freeze calendar looks.
const CALENDAR_DAYS: i64 = 30;
/// Windows listed per freeze in the calendar, at most.
const CALENDAR_WINDOWS: usize = 200;

/// `GET /t/{tenant}/freezes`: the freezes declared and not lifted, whether each is in force now,
/// and its windows in the next 30 days, in the freeze's time zone and the viewer's.
pub(in crate::console) async fn freezes(
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
