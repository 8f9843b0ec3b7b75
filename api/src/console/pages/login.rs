//! Signing in and out: `GET /login` (the sign-in page), `POST /login` and `POST /logout`.

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::{internal, now_ns};
use crate::console::view::{self, Nav};
use crate::console::{Console, TOKEN_COOKIE};

#[derive(serde::Deserialize, Default)]
pub(in crate::console) struct LoginQuery {
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
pub(in crate::console) async fn login_form(Query(query): Query<LoginQuery>) -> Response {
    login_page(StatusCode::OK, &safe_next(query.next.as_deref()), query.problem.as_deref())
}

#[derive(serde::Deserialize)]
pub(in crate::console) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// `POST /login`: verifies the token as the gRPC port would and keeps it in an `HttpOnly`,
/// `SameSite=Strict` cookie (`Secure` over TLS). The cookie has no expiry of its own: the
/// token's does, and a page after it sends the person back here.
pub(in crate::console) async fn login(State(console): State<Console>, Form(form): Form<LoginForm>) -> Response {
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
pub(in crate::console) async fn logout(State(console): State<Console>) -> Response {
    let secure = if console.0.secure { "; Secure" } else { "" };
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) =
        HeaderValue::from_str(&format!("{TOKEN_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{secure}"))
    {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
