//! The dashboard: a few static pages and assets, compiled into the binary, that watch and steer
//! runs through the API itself (`specs/dashboard.md`). Nothing here reads run state: the pages'
//! scripts call the same routes `loopctl` does, under the same guard.
//!
//! These are the only routes outside the OpenAPI document ([`crate::openapi::Routes`]): they
//! answer HTML, scripts and styles, not the API's JSON (`POST /login` and `/logout` answer 204
//! with a cookie). `loopd/tests/it/openapi.rs` lists them (`DASHBOARD_ROUTES`) and checks that
//! they are served and left out of the document, so that list and [`router`] must agree.

mod assets;

use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::extract::{Body, PathParams};
use crate::server::Peer;
use crate::session::{self, Holder, Sessions};
use crate::state::AppState;

/// The pages a person opens (a link from elsewhere may lead to them).
pub fn is_page(path: &str) -> bool {
    matches!(path, "/" | "/login")
}

/// What anyone may fetch without credentials: the login page and the static assets, which hold
/// no data. Everything a page shows comes from the API, behind the guard.
pub fn is_open(path: &str) -> bool {
    path == "/login" || path.starts_with("/ui/")
}

const INDEX: &str = include_str!("dashboard/index.html");
const LOGIN: &str = include_str!("dashboard/login.html");

/// What the login handler checks against and opens.
#[derive(Clone, Debug)]
struct Login {
    token: Arc<str>,
    sessions: Arc<Sessions>,
}

/// The dashboard's routes, to be merged beside the API's (the guard wraps both): `POST /login`
/// takes `token` and opens one of `sessions`.
pub fn router(token: Arc<str>, sessions: Arc<Sessions>) -> Router<AppState> {
    let login = Login { token, sessions };
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_page).post(log_in))
        .route("/logout", post(log_out))
        .route("/ui/{file}", get(asset))
        .layer(Extension(login))
}

/// Headers every dashboard answer carries: scripts and styles only from this origin (no inline
/// script, so injected markup cannot run), no framing by other pages, no sniffing, no referrer.
fn hardened(kind: &'static str, cache: &'static str) -> [(header::HeaderName, &'static str); 6] {
    [
        (header::CONTENT_TYPE, kind),
        (header::CACHE_CONTROL, cache),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

async fn index() -> Response {
    (hardened("text/html; charset=utf-8", "no-store"), INDEX).into_response()
}

async fn login_page() -> Response {
    (hardened("text/html; charset=utf-8", "no-store"), LOGIN).into_response()
}

async fn asset(PathParams(file): PathParams<String>) -> Result<Response, ApiError> {
    let asset = assets::find(&file)
        .ok_or_else(|| ApiError::not_found(format!("no dashboard asset {file:?}")))?;
    Ok((hardened(asset.kind(), "no-cache"), asset.body).into_response())
}

/// `POST /login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    token: String,
}

/// The token for a session cookie good only for who logged in, on this `Host`
/// ([`crate::session`]).
async fn log_in(
    Extension(login): Extension<Login>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
    Body(body): Body<LoginBody>,
) -> Result<Response, ApiError> {
    let given = body.token.trim();
    if !bool::from(given.as_bytes().ct_eq(login.token.as_bytes())) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong token: give loopd's LOOPD_AUTH_TOKEN, or the token in its data dir's \
             auth-token file",
        ));
    }
    let Some(holder) = Holder::of(peer.as_ref().map(|Extension(peer)| peer)) else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "unknown_peer",
            "cannot tell which user of this machine the connection belongs to, so no session \
             can be bound to it: send the token in Authorization: Bearer instead",
        ));
    };
    let host = host(&headers);
    let value = login.sessions.open(holder, host);
    Ok(with_cookie(session::set_cookie(host, &value)))
}

/// Ends the session and forgets its cookie in this browser.
async fn log_out(Extension(login): Extension<Login>, headers: HeaderMap) -> Response {
    let host = host(&headers);
    if let Some(value) = session::from_cookie(&headers, host) {
        login.sessions.close(value);
    }
    with_cookie(session::clear_cookie(host))
}

fn host(headers: &HeaderMap) -> &str {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn with_cookie(cookie: String) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
