//! The operator view, `GET /operator`.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::{blocking, Peer};
use crate::console::view::{self, Nav};
use crate::console::Console;

/// `GET /operator`: every tenant's log size, projection lag and latest checkpoint with its
/// cosignatures, and this node's place in its cluster.
pub(in crate::console) async fn operator(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
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
