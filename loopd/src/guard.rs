//! What every request passes before a handler sees it, in this order, all before the body is
//! read (the threat model is in `specs/daemon.md`):
//!
//! 1. one `Host`, a loopback name unless `--allow-remote` (DNS rebinding) — 400 / 421;
//! 2. not from another site: a foreign `Origin`, or `Sec-Fetch-Site` other than `same-origin` /
//!    `none`, is refused — 403. No CORS header is ever sent, so a page elsewhere cannot read an
//!    answer either;
//! 3. who is asking: the daemon's own user (and root) on loopback pass without a token; anyone
//!    else needs the token (`Authorization: Bearer`, any case of the scheme) or the dashboard's
//!    session cookie, which `POST /login` gives for the token. With `LOOPD_AUTH_TOKEN` set,
//!    everyone needs one of them. `/health` and the dashboard's login page and static assets
//!    (no data in them) are open — 401, or for a dashboard page a redirect to its login;
//! 4. a body only as JSON: a request with a body must say `Content-Type: application/json`, so
//!    no HTML form and no "simple" cross-site request can carry one — 415; a declared body over
//!    the limit is refused before a byte of it is read — 413.
//!
//! One exception to 2: a person following a link from another site to a dashboard page (a
//! top-level `GET` navigation to `/` or `/login`) gets the page; it is static, changes nothing,
//! and cannot be framed. Everything the page then asks for is same-origin.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::dashboard;
use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::host;
use crate::server::Peer;
use crate::session::{self, Holder, Sessions};

#[derive(Clone, Debug)]
pub struct Guard {
    pub allow_remote: bool,
    pub token: Arc<str>,
    /// The token was given (`LOOPD_AUTH_TOKEN`): every request must carry it.
    pub token_always: bool,
    /// The daemon's own user id.
    pub owner: u32,
    /// The dashboard's sessions, which `POST /login` opens for the token: each good only for
    /// who opened it, on the `Host` it was opened for ([`crate::session`]).
    pub sessions: Arc<Sessions>,
}

impl Guard {
    /// Whether `request` may reach a handler; the JSON refusal when it may not.
    pub fn admit(&self, request: &Request) -> Result<(), ApiError> {
        let headers = request.headers();
        let host = single_host(request)?;
        if !self.allow_remote && !host::is_loopback(&host) {
            return Err(ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "host_not_allowed",
                format!(
                    "host {host:?} is not a loopback name; start loopd with --allow-remote to serve it"
                ),
            ));
        }
        let path = request.uri().path();
        if !page_navigation(request) {
            same_origin(headers, &host)?;
        }
        if path != "/health" && !dashboard::is_open(path) {
            self.authenticate(request, &host)?;
        }
        json_body_only(request.method(), headers)
    }

    fn authenticate(&self, request: &Request, host: &str) -> Result<(), ApiError> {
        let given = bearer(request.headers()).unwrap_or("");
        if bool::from(given.as_bytes().ct_eq(self.token.as_bytes())) {
            return Ok(());
        }
        let peer = request.extensions().get::<Peer>();
        if let Some(value) = session::from_cookie(request.headers(), host)
            && self.sessions.admits(value, Holder::of(peer), host)
        {
            return Ok(());
        }
        let own_user = peer
            .and_then(|peer| peer.uid)
            .is_some_and(|uid| uid == self.owner || uid == 0);
        if own_user && !self.token_always {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            if self.token_always {
                "missing or wrong bearer token: pass the daemon's LOOPD_AUTH_TOKEN \
                 (loopctl: --token, LOOPD_AUTH_TOKEN or LOOPD_TOKEN)"
            } else {
                "missing or wrong bearer token: only loopd's own user may call it without one; \
                 the token is in the data dir's auth-token file"
            },
        ))
    }
}

pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.admit(&request) {
        Ok(()) => next.run(request).await,
        // A person opening the dashboard without credentials is shown where to give them.
        Err(refusal)
            if refusal.status == StatusCode::UNAUTHORIZED
                && request.method() == Method::GET
                && dashboard::is_page(request.uri().path()) =>
        {
            (
                StatusCode::SEE_OTHER,
                [
                    (header::LOCATION, "/login"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
            )
                .into_response()
        }
        // Refused before its body was read: hyper reads no more of that body and closes the
        // connection after the answer, which the answer must say, or the client keeps the
        // connection for its next request and finds it closed under it ("connection closed
        // before message completed").
        Err(refusal) => {
            let mut response = refusal.into_response();
            if has_body(request.headers()) {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    }
}

/// Whether a request says it carries a body.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
}

/// A top-level `GET` navigation to a dashboard page, which a link on another site may start.
fn page_navigation(request: &Request) -> bool {
    let headers = request.headers();
    let is = |name: &str, expected: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case(expected))
    };
    matches!(*request.method(), Method::GET | Method::HEAD)
        && dashboard::is_page(request.uri().path())
        && is("sec-fetch-mode", "navigate")
        && is("sec-fetch-dest", "document")
        && !headers.contains_key(header::ORIGIN)
}

/// The request's one `Host` (HTTP/1.1 requires exactly one; with two, which one decides is
/// anybody's guess, so neither does).
fn single_host(request: &Request) -> Result<String, ApiError> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::bad_request(
            "more than one Host header".to_owned(),
        ));
    }
    match first {
        Some(value) => value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::bad_request("the Host header is not text".to_owned())),
        None => Ok(request.uri().host().unwrap_or("").to_owned()),
    }
}

/// Refuses a request a page of another origin made: its `Origin` is not this daemon's own
/// (`http(s)://<host>`), or the browser says it crossed sites.
fn same_origin(headers: &HeaderMap, host: &str) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("{why}: loopd answers only its own pages and non-browser clients"),
        ))
    };
    for origin in headers.get_all(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let own = ["http://", "https://"].iter().any(|scheme| {
            origin
                .strip_prefix(scheme)
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
        if !own {
            return refuse(format!("a request from origin {origin:?}"));
        }
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !matches!(site, "same-origin" | "none") {
            return refuse(format!("a {site} request"));
        }
    }
    Ok(())
}

/// The credentials of `Authorization: Bearer <token>`; the scheme is case-insensitive.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A body must be JSON, and not over the limit by its own declaration.
fn json_body_only(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {BODY_LIMIT} bytes"),
        ));
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let has_body =
        declared.is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    match headers.get(header::CONTENT_TYPE) {
        Some(kind) => {
            let kind = kind.to_str().unwrap_or("");
            let media = kind.split(';').next().unwrap_or("").trim();
            if media.eq_ignore_ascii_case("application/json") {
                Ok(())
            } else {
                Err(unsupported(&format!("Content-Type {kind:?}")))
            }
        }
        None if has_body => Err(unsupported("a body without a Content-Type")),
        None => Ok(()),
    }
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{what} is refused: send the body as Content-Type: application/json"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn guard(token_always: bool) -> Guard {
        Guard {
            allow_remote: false,
            token: Arc::from("s3cret"),
            token_always,
            owner: 1000,
            sessions: Arc::default(),
        }
    }

    fn request(method: &str, headers: &[(&str, &str)], uid: Option<u32>) -> Request {
        let mut builder = Request::builder().method(method).uri("/runs");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        request.extensions_mut().insert(Peer {
            addr: "127.0.0.1:40000".parse().unwrap(),
            uid,
        });
        request
    }

    fn code(result: Result<(), ApiError>) -> Option<String> {
        result.err().map(|error| error.code.to_owned())
    }

    const HOST: (&str, &str) = ("host", "127.0.0.1:7700");
    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn the_owner_needs_no_token_anyone_else_does() {
        let g = guard(false);
        assert_eq!(code(g.admit(&request("GET", &[HOST], Some(1000)))), None);
        assert_eq!(code(g.admit(&request("GET", &[HOST], Some(0)))), None);
        let stranger = request("GET", &[HOST], Some(1001));
        assert_eq!(code(g.admit(&stranger)).as_deref(), Some("unauthorized"));
        let unknown = request("GET", &[HOST], None);
        assert_eq!(code(g.admit(&unknown)).as_deref(), Some("unauthorized"));
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let auth = format!("{scheme} s3cret");
            let with_token = request("GET", &[HOST, ("authorization", &auth)], Some(1001));
            assert_eq!(code(g.admit(&with_token)), None, "{scheme}");
        }
        // A token given by the person is needed by the owner too.
        let owner = request("GET", &[HOST], Some(1000));
        assert_eq!(
            code(guard(true).admit(&owner)).as_deref(),
            Some("unauthorized")
        );
    }

    #[test]
    fn pages_of_other_sites_are_refused() {
        let g = guard(false);
        for headers in [
            vec![HOST, JSON, ("origin", "https://evil.example")],
            vec![HOST, JSON, ("origin", "null")],
            vec![HOST, JSON, ("origin", "http://localhost:3000")],
            vec![HOST, JSON, ("sec-fetch-site", "cross-site")],
            vec![HOST, JSON, ("sec-fetch-site", "same-site")],
        ] {
            let refused = request("POST", &headers, Some(1000));
            assert_eq!(
                code(g.admit(&refused)).as_deref(),
                Some("cross_origin"),
                "{headers:?}"
            );
        }
        let own = request(
            "POST",
            &[
                HOST,
                JSON,
                ("origin", "http://127.0.0.1:7700"),
                ("sec-fetch-site", "same-origin"),
            ],
            Some(1000),
        );
        assert_eq!(code(g.admit(&own)), None);
    }

    #[test]
    fn a_body_must_be_json_and_within_the_limit() {
        let g = guard(false);
        let form = request(
            "POST",
            &[
                HOST,
                ("content-type", "text/plain"),
                ("content-length", "2"),
            ],
            Some(1000),
        );
        assert_eq!(
            code(g.admit(&form)).as_deref(),
            Some("unsupported_media_type")
        );
        let bare = request("POST", &[HOST, ("content-length", "2")], Some(1000));
        assert_eq!(
            code(g.admit(&bare)).as_deref(),
            Some("unsupported_media_type")
        );
        let empty = request("POST", &[HOST, ("content-length", "0")], Some(1000));
        assert_eq!(code(g.admit(&empty)), None);
        let json = request(
            "POST",
            &[HOST, ("content-type", "application/json; charset=utf-8")],
            Some(1000),
        );
        assert_eq!(code(g.admit(&json)), None);
        let huge = request(
            "POST",
            &[HOST, JSON, ("content-length", "2000000")],
            Some(1000),
        );
        assert_eq!(code(g.admit(&huge)).as_deref(), Some("payload_too_large"));
    }

    #[test]
    fn the_session_cookie_stands_for_the_token_for_who_logged_in_only() {
        let g = guard(true);
        let value = g.sessions.open(Holder::User(1001), "127.0.0.1:7700");
        let with = |cookie: &str, host: &str, uid: u32| {
            let cookies = format!("theme=dark; {cookie}");
            request("GET", &[("host", host), ("cookie", &cookies)], Some(uid))
        };
        let good = format!("__Host-loopd_session_7700={value}");
        assert_eq!(code(g.admit(&with(&good, "127.0.0.1:7700", 1001))), None);
        // Another user of the machine, replaying the cookie a page of theirs received.
        assert_eq!(
            code(g.admit(&with(&good, "127.0.0.1:7700", 1002))).as_deref(),
            Some("unauthorized")
        );
        // The same cookie for another name of the daemon.
        let other_name = format!("__Host-loopd_session_7700={value}");
        assert_eq!(
            code(g.admit(&with(&other_name, "localhost:7700", 1001))).as_deref(),
            Some("unauthorized")
        );
        for wrong in [
            format!("__Host-loopd_session_7700={}", &value[1..]),
            "__Host-loopd_session_7700=".to_owned(),
            format!("__Host-loopd_session_7701={value}"),
            format!("loopd_session_7700={value}"),
            format!("__Host-loopd_session={value}"),
            // The token itself is not a session.
            "__Host-loopd_session_7700=s3cret".to_owned(),
        ] {
            assert_eq!(
                code(g.admit(&with(&wrong, "127.0.0.1:7700", 1001))).as_deref(),
                Some("unauthorized"),
                "{wrong}"
            );
        }
    }

    #[test]
    fn a_link_from_another_site_opens_a_page_and_nothing_else() {
        let g = guard(false);
        let navigate = [
            HOST,
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ];
        let page = |method: &str, uri: &str, headers: &[(&str, &str)]| {
            let mut request = request(method, headers, Some(1000));
            *request.uri_mut() = uri.parse().unwrap();
            request
        };
        assert_eq!(code(g.admit(&page("GET", "/", &navigate))), None);
        assert_eq!(
            code(g.admit(&page("GET", "/runs", &navigate))).as_deref(),
            Some("cross_origin")
        );
        assert_eq!(
            code(g.admit(&page("POST", "/", &navigate))).as_deref(),
            Some("cross_origin")
        );
        let framed = [
            HOST,
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe"),
        ];
        assert_eq!(
            code(g.admit(&page("GET", "/", &framed))).as_deref(),
            Some("cross_origin")
        );
    }

    #[test]
    fn two_host_headers_are_refused() {
        let two = request("GET", &[HOST, ("host", "evil.example")], Some(1000));
        assert_eq!(
            code(guard(false).admit(&two)).as_deref(),
            Some("bad_request")
        );
    }
}
