//! The home page, `GET /`: an operator's tenants, or a redirect to the principal's board.

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::Peer;
use crate::console::view::{self, Nav};
use crate::console::Console;

/// `GET /`: an operator's tenants, or the principal's own tenant's board.
pub(in crate::console) async fn home(
    State(console): State<Console>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Response {
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
