//! The console's layout, formatting and assets.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::access::Principal;

/// The assets, compiled in: name → (content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
    ("live.js", "text/javascript; charset=utf-8", include_str!("assets/live.js")),
    ("verify.js", "text/javascript; charset=utf-8", include_str!("assets/verify.js")),
    ("approve.js", "text/javascript; charset=utf-8", include_str!("assets/approve.js")),
    ("blake3.js", "text/javascript; charset=utf-8", include_str!("assets/blake3.js")),
];

/// `GET /assets/{name}`: the same bytes for everyone, cacheable for an hour (the version is not
/// in the name: a new release is picked up within the hour).
pub(super) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "public, max-age=3600")], *body)
                .into_response()
        }
        None => error_page(StatusCode::NOT_FOUND, "Not found", "There is no such asset."),
    }
}

/// Where a page sits, for the navigation bar.
pub(super) struct Nav<'a> {
    pub principal: Option<&'a Principal>,
    pub tenant: Option<&'a str>,
}

impl Nav<'_> {
    pub(super) const NONE: Nav<'static> = Nav { principal: None, tenant: None };
}

/// A whole page.
pub(super) fn page(title: &str, nav: &Nav<'_>, scripts: &[&str], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Release Ledger" }
                link rel="stylesheet" href="/assets/console.css";
                script type="module" src="/assets/live.js" {}
                @for script in scripts {
                    script type="module" src=(format!("/assets/{script}")) {}
                }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/" { "Release Ledger" }
                        @if let Some(tenant) = nav.tenant {
                            a href=(format!("/t/{tenant}")) { "Releases" }
                            a href=(format!("/t/{tenant}/freezes")) { "Freezes" }
                        }
                        @if nav.principal.is_some_and(|p| p.operator) {
                            a href="/operator" { "Operator" }
                        }
                    }
                    @if let Some(principal) = nav.principal {
                        form.who method="post" action="/logout" {
                            span { (principal.name) @if let Some(t) = &principal.tenant { " · " (t) } @if principal.operator { " · operator" } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML answer.
pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// An error page.
pub(super) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    respond(status, page(title, &Nav::NONE, &[], html! { p #error role="alert" { (message) } }))
}

/// The page of a refused request.
pub(super) fn refused_page(status: StatusCode, message: &str) -> Response {
    respond(
        status,
        page(
            "Not allowed",
            &Nav::NONE,
            &[],
            html! {
                p #refused role="alert" { (message) }
                p { a href="/login" { "Sign in as someone else" } }
            },
        ),
    )
}

/// A time (ns since the epoch) as RFC 3339, in a `<time>` element the page script shows in the
/// viewer's time zone as well.
pub(super) fn time(ns: u64) -> Markup {
    let text = ledger::time::format_recorded_at(ns);
    html! { time datetime=(text) { (readable(i64::try_from(ns).unwrap_or(i64::MAX))) } }
}

/// An RFC 3339 text as a `<time>` element (the text itself when it does not parse).
pub(super) fn time_text(text: &str) -> Markup {
    let shown = ledger::time::parse_rfc3339_ns(text).map_or_else(|_| text.to_owned(), readable);
    html! { time datetime=(text) { (shown) } }
}

/// `2026-12-03 17:36:01 UTC`: to the second (the exact instant is the element's `datetime`).
fn readable(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A status badge.
pub(super) fn status_badge(status: &str) -> Markup {
    html! { span class=(format!("badge s-{}", status.to_ascii_lowercase())) { (status) } }
}

/// Percent-encodes `text` for a query string or a path segment.
pub(super) fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A short hex prefix of a hash or key id.
pub(super) fn short(hex: &str) -> String {
    match hex.get(..16) {
        Some(prefix) if hex.len() > 16 => format!("{prefix}…"),
        _ => hex.to_owned(),
    }
}

/// Pretty-printed JSON of a payload, or the bytes' length when they are not JSON.
pub(super) fn pretty_json(bytes: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
        Err(_) => format!("({} bytes, not JSON)", bytes.len()),
    }
}

/// One point of the module history chart.
pub(super) struct ChartPoint<'a> {
    pub at_ns: u64,
    pub kind: &'a str,
    pub label: String,
    pub href: String,
}

/// The module history as an SVG timeline: one lane per kind (deployments, failures,
/// rollbacks, decisions), a mark per event, each a link with a title. Server-rendered, so it
/// needs no script and scales with the viewport.
pub(super) fn history_chart(points: &[ChartPoint<'_>]) -> Markup {
    const LANES: &[(&str, &str)] = &[
        ("deployed", "Deployed"),
        ("published", "Published"),
        ("failed", "Failed"),
        ("rolledback", "Rolled back"),
        ("approved", "Approved"),
        ("rejected", "Rejected"),
        ("delayed", "Delayed"),
    ];
    let (width, lane_height, left) = (800.0_f64, 28.0_f64, 110.0_f64);
    let height = lane_height * LANES.len() as f64 + 30.0;
    let (first, last) = match (points.iter().map(|p| p.at_ns).min(), points.iter().map(|p| p.at_ns).max()) {
        (Some(first), Some(last)) => (first, last.max(first + 1)),
        _ => (0, 1),
    };
    let x = |ns: u64| left + (width - left - 20.0) * ((ns - first) as f64 / (last - first) as f64);
    let lane_of = |kind: &str| LANES.iter().position(|(k, _)| *k == kind);
    html! {
        svg #history-chart viewBox=(format!("0 0 {width} {height}")) role="img"
            aria-labelledby="history-chart-title" preserveAspectRatio="xMinYMin meet" {
            title #history-chart-title { (format!("{} events from {} to {}", points.len(), ledger::time::format_recorded_at(first), ledger::time::format_recorded_at(last))) }
            @for (index, (kind, label)) in LANES.iter().enumerate() {
                @let y = lane_height * index as f64 + lane_height / 2.0 + 4.0;
                text x="4" y=(y + 4.0) class="lane-label" { (label) }
                line x1=(left) x2=(width - 10.0) y1=(y) y2=(y) class="lane" {}
                @for point in points.iter().filter(|p| p.kind == *kind) {
                    a href=(point.href) {
                        circle cx=(format!("{:.1}", x(point.at_ns))) cy=(y) r="6" class=(format!("mark k-{kind}")) {
                            title { (point.label) }
                        }
                    }
                }
            }
            text x=(left) y=(height - 6.0) class="axis" { (ledger::time::format_recorded_at(first)) }
            text x=(width - 10.0) y=(height - 6.0) class="axis" text-anchor="end" { (ledger::time::format_recorded_at(last)) }
        }
        @if points.iter().any(|p| lane_of(p.kind).is_none()) {
            p { "Some events are not charted (shown in the table below)." }
        }
    }
}

/// JSON in a `<script type="application/json">` element: `<` escaped so the text cannot close
/// the element.
pub(super) fn json_script(id: &str, value: &serde_json::Value) -> Markup {
    let text = value.to_string().replace('<', "\\u003c");
    html! { script type="application/json" id=(id) { (PreEscaped(text)) } }
}
