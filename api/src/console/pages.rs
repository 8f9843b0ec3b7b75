//! The console's HTML pages (docs/console.md lists them and the hooks the tests rely on).
//!
//! One submodule per page (or pair of pages); this module holds what several of them share.

mod board;
mod entry;
mod freezes;
mod history;
mod home;
mod login;
mod operator;
mod release;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::response::Response;

pub(super) use board::board;
pub(super) use entry::entry;
pub(super) use freezes::freezes;
pub(super) use history::module_history;
pub(super) use home::home;
pub(super) use login::{login, login_form, logout};
pub(super) use operator::operator;
pub(super) use release::{explain, release};

use super::view;
use super::{Console, ConsolePeer};

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

fn non_empty(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

pub(super) fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
