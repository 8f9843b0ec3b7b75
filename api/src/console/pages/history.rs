//! The module history page, `GET /t/{tenant}/modules/{module}`.

use axum::extract::{ConnectInfo, OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use projections::state::{HistoryItem, HistoryKind};

use super::{blocking, non_empty, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

#[derive(serde::Deserialize, Default)]
pub(in crate::console) struct ModuleParams {
    environment: Option<String>,
    /// Only items before this seq (the link to older items).
    before: Option<u64>,
}

/// Items a module history page shows at most (the newest; older ones a link away).
const HISTORY_PAGE: usize = 500;

/// `GET /t/{tenant}/modules/{module}?environment=E`: the module's deployments, failures,
/// rollbacks and decisions in an environment over time, as a chart and a table.
pub(in crate::console) async fn module_history(
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
