//! The C2SP `tlog-tiles` read API over HTTP (`serve --tiles-listen ADDR`; off by default).
//!
//! Each tenant's log is its own tiled log with the URL prefix `/<tenant>/` (tenant names are
//! `[A-Za-z0-9._-]`, starting with a letter or digit, so they need no escaping in a path;
//! a percent-encoded name is decoded first):
//!
//! | path | what | `Cache-Control` |
//! |---|---|---|
//! | `/<tenant>/checkpoint` | the newest signed checkpoint, `text/plain; charset=utf-8` | `no-cache` |
//! | `/<tenant>/tile/<L>/<N>` | a full hash tile, 256 × 32 bytes | `public, max-age=31536000, immutable` |
//! | `/<tenant>/tile/<L>/<N>.p/<W>` | a partial hash tile, W × 32 bytes | `public, max-age=60` |
//! | `/<tenant>/tile/entries/<N>[.p/<W>]` | an entry bundle: `0x0020 ‖ entryHash` per entry | as the tiles |
//!
//! The spec's MUSTs and SHOULDs: the checkpoint "MUST be served ... with `Content-Type:
//! text/plain; charset=utf-8`" and "its headers SHOULD prevent caching beyond a few seconds"
//! (`no-cache`: every use revalidates); tiles are served "with `Content-Type:
//! application/octet-stream`" and "[t]his endpoint is immutable, so its caching headers SHOULD
//! be long-lived" (a full tile: a year, `immutable`). A partial tile's bytes never change
//! either (its width is in its path), but it is transient — superseded by the full tile, and
//! a directory writer deletes it then — so caches keep it a minute. "Empty tiles MUST NOT be
//! served": a tile answers only when every hash (or entry) it holds is inside the tenant's
//! current tree; anything else, an unknown tenant included, is `404` with `Cache-Control:
//! no-store` (a tile missing now exists later: a cached 404 would hide it). A path that is not
//! a tile path is `400`. Entry bundles are not compressed: they hold hashes, which do not
//! compress.
//!
//! **Access.** Tiles are public-read, like checkpoints and proofs: they carry entry hashes and
//! tree hashes only, never payloads. Authentication (issue 17) must put this listener behind
//! the same switch as checkpoints and proofs ("public" by default), and when that switch makes
//! them private, must check a reader of the tenant here too, per request, before any store
//! read — a static copy written by `release-ledger tiles` is then as private as the host
//! serving it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::ids::TenantId;
use ledger::store::tiles::{TileError, TileId};
use ledger::{Ledger, ReadError};

/// `Cache-Control` of a full tile or bundle: immutable, a year.
pub const FULL_TILE_CACHE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of a partial tile or bundle.
pub const PARTIAL_TILE_CACHE: &str = "public, max-age=60";
/// `Cache-Control` of the checkpoint: revalidate every time.
pub const CHECKPOINT_CACHE: &str = "no-cache";
/// `Cache-Control` of a 404.
pub const NOT_FOUND_CACHE: &str = "no-store";

/// The router of the tiles listener.
pub fn router(ledger: Arc<Ledger>) -> axum::Router {
    axum::Router::new()
        .route("/{tenant}/checkpoint", axum::routing::get(checkpoint))
        .route("/{tenant}/tile/{*path}", axum::routing::get(tile))
        .fallback(|| async { not_found("no such resource: the tiles of a tenant are under /<tenant>/") })
        .with_state(ledger)
}

fn text(status: StatusCode, cache: &'static str, body: String) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8")),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    (status, headers, body).into_response()
}

fn not_found(why: &str) -> Response {
    text(StatusCode::NOT_FOUND, NOT_FOUND_CACHE, format!("{why}\n"))
}

fn server_error(error: &dyn std::fmt::Display) -> Response {
    tracing::error!(%error, "tiles: reading the store failed");
    text(StatusCode::INTERNAL_SERVER_ERROR, NOT_FOUND_CACHE, "the store could not be read\n".into())
}

async fn checkpoint(State(ledger): State<Arc<Ledger>>, Path(tenant): Path<String>) -> Response {
    if TenantId::check(&tenant).is_err() {
        return not_found("no such log");
    }
    match tokio::task::spawn_blocking(move || ledger.checkpoint(&tenant)).await {
        Ok(Ok(checkpoint)) => text(StatusCode::OK, CHECKPOINT_CACHE, checkpoint.note),
        Ok(Err(ReadError::UnknownTenant(_))) => not_found("no such log"),
        Ok(Err(error)) => server_error(&error),
        Err(error) => server_error(&error),
    }
}

async fn tile(State(ledger): State<Arc<Ledger>>, Path((tenant, path)): Path<(String, String)>) -> Response {
    if TenantId::check(&tenant).is_err() {
        return not_found("no such log");
    }
    let tile = match TileId::parse(&format!("tile/{path}")) {
        Ok(tile) => tile,
        Err(error) => return text(StatusCode::BAD_REQUEST, NOT_FOUND_CACHE, format!("{error}\n")),
    };
    let read = tokio::task::spawn_blocking(move || {
        let size = ledger.head(&tenant).map_err(|e| match e {
            ReadError::UnknownTenant(name) => TileError::UnknownTenant(name),
            other => TileError::Read(other),
        })?;
        ledger.tile_data(&tenant, tile, size.size)
    })
    .await;
    match read {
        Ok(Ok(bytes)) => {
            let cache = if tile.is_full() { FULL_TILE_CACHE } else { PARTIAL_TILE_CACHE };
            let headers = [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
                (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            ];
            (StatusCode::OK, headers, bytes).into_response()
        }
        Ok(Err(TileError::UnknownTenant(_))) => not_found("no such log"),
        Ok(Err(error @ (TileError::BeyondTree { .. } | TileError::BeyondLog { .. }))) => not_found(&error.to_string()),
        Ok(Err(error)) => server_error(&error),
        Err(error) => server_error(&error),
    }
}
