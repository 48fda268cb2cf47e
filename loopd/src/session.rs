//! The dashboard's sessions: what a browser holds in place of the token.
//!
//! `POST /login` with the token opens a session: a random value, never the token, bound to who
//! logged in and to the `Host` they used. A browser sends its cookies to every port of a host,
//! so a page that another user of the machine serves on another loopback port receives this
//! daemon's cookie as soon as the owner follows a link to it; what it does with the cookie is
//! replay it, from its own account. The cookie is therefore worth something only from the
//! account that logged in (the kernel's owner of the client's socket, [`crate::peer`]) or, for a
//! remote client (`--allow-remote`), from the address that logged in, and only for the `Host`
//! it was given for. Sessions live in memory: they die with the daemon that opened them.
//!
//! The cookie's name carries the port (two daemons on one host would otherwise log each other
//! out) and, on a loopback host, the `__Host-` prefix: browsers treat `http://localhost` and
//! `http://127.0.0.1` as secure contexts, so they accept a `Secure` cookie there, and the prefix
//! makes them refuse one that names a `Domain` or another `Path` (a cookie planted by another
//! page of the host could not stand in for ours). A remote client over plain HTTP would not
//! keep a `Secure` cookie, so it gets the plain name.

use std::net::IpAddr;
use std::sync::Mutex;

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::host;
use crate::server::Peer;

/// The most sessions kept at once; logging in once more forgets the oldest.
const MAX_SESSIONS: usize = 64;

/// Who opened a session, and so who alone may use it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A loopback client: the user that owns its socket.
    User(u32),
    /// A remote client (`--allow-remote`): its address, for want of a user.
    Remote(IpAddr),
}

impl Holder {
    /// Who `peer` is; `None` for a loopback client whose user the kernel did not tell, to
    /// whom no session can be bound.
    pub fn of(peer: Option<&Peer>) -> Option<Holder> {
        let peer = peer?;
        if peer.addr.ip().is_loopback() || peer.addr.ip().to_canonical().is_loopback() {
            peer.uid.map(Holder::User)
        } else {
            Some(Holder::Remote(peer.addr.ip()))
        }
    }
}

#[derive(Debug)]
struct Session {
    value: String,
    holder: Holder,
    /// The `Host` it was opened for, lowercased.
    host: String,
}

/// The open sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    open: Mutex<Vec<Session>>,
}

impl Sessions {
    /// Opens a session for `holder` on `host`: the cookie's value.
    pub fn open(&self, holder: Holder, host: &str) -> String {
        let value = crate::token::generate();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.remove(0);
        }
        open.push(Session {
            value: value.clone(),
            holder,
            host: host.to_ascii_lowercase(),
        });
        value
    }

    /// Whether `value` is a session `holder` opened for `host`. Every session is compared in
    /// constant time, so the answer's time tells nothing of how close a guess was.
    pub fn admits(&self, value: &str, holder: Option<Holder>, host: &str) -> bool {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for session in open.iter() {
            if bool::from(session.value.as_bytes().ct_eq(value.as_bytes())) {
                found = Some(session);
            }
        }
        found.is_some_and(|session| {
            Some(session.holder) == holder && session.host.eq_ignore_ascii_case(host)
        })
    }

    /// Forgets the session `value`.
    pub fn close(&self, value: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|session| !bool::from(session.value.as_bytes().ct_eq(value.as_bytes())));
    }
}

/// The session a request to `host` names in its session cookie, from any `Cookie` header.
pub fn from_cookie<'a>(headers: &'a HeaderMap, host: &str) -> Option<&'a str> {
    let name = cookie_name(host);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// The name of the session cookie for requests to `host` (see the module's header).
pub fn cookie_name(host: &str) -> String {
    let prefix = if host::is_loopback(host) {
        "__Host-"
    } else {
        ""
    };
    match host::split(host).1 {
        Some(port) => format!("{prefix}loopd_session_{port}"),
        None => format!("{prefix}loopd_session"),
    }
}

/// The `Set-Cookie` value that gives a browser the session `value` for `host`: no script
/// reads it (`HttpOnly`), no other site's request carries it (`SameSite=Strict`), it lasts
/// until the browser closes.
pub fn set_cookie(host: &str, value: &str) -> String {
    format!("{}={value}; {}", cookie_name(host), attributes(host))
}

/// The `Set-Cookie` value that makes a browser forget its session for `host`.
pub fn clear_cookie(host: &str) -> String {
    format!("{}=; {}; Max-Age=0", cookie_name(host), attributes(host))
}

fn attributes(host: &str) -> &'static str {
    if host::is_loopback(host) {
        "Path=/; Secure; HttpOnly; SameSite=Strict"
    } else {
        "Path=/; HttpOnly; SameSite=Strict"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_only_for_who_opened_it_on_the_host_it_was_given_for() {
        let sessions = Sessions::default();
        let owner = Holder::User(1000);
        let value = sessions.open(owner, "127.0.0.1:7700");
        assert!(sessions.admits(&value, Some(owner), "127.0.0.1:7700"));
        assert!(!sessions.admits(&value, Some(Holder::User(1001)), "127.0.0.1:7700"));
        assert!(!sessions.admits(&value, None, "127.0.0.1:7700"));
        assert!(!sessions.admits(&value, Some(owner), "localhost:7700"));
        assert!(!sessions.admits(&value, Some(owner), "127.0.0.1:7701"));
        assert!(!sessions.admits("", Some(owner), "127.0.0.1:7700"));
        let remote = Holder::Remote("10.0.0.7".parse().unwrap());
        let far = sessions.open(remote, "loop.example:7700");
        assert!(sessions.admits(&far, Some(remote), "LOOP.example:7700"));
        assert!(!sessions.admits(
            &far,
            Some(Holder::Remote("10.0.0.8".parse().unwrap())),
            "loop.example:7700"
        ));
        sessions.close(&value);
        assert!(!sessions.admits(&value, Some(owner), "127.0.0.1:7700"));
        assert!(sessions.admits(&far, Some(remote), "loop.example:7700"));
    }

    #[test]
    fn the_oldest_session_makes_room_for_a_new_one() {
        let sessions = Sessions::default();
        let holder = Holder::User(1);
        let first = sessions.open(holder, "localhost:1");
        for _ in 0..MAX_SESSIONS {
            sessions.open(holder, "localhost:1");
        }
        assert!(!sessions.admits(&first, Some(holder), "localhost:1"));
    }

    #[test]
    fn a_loopback_host_gets_a_host_prefixed_secure_cookie_a_remote_one_a_plain_cookie() {
        assert_eq!(cookie_name("127.0.0.1:7700"), "__Host-loopd_session_7700");
        assert_eq!(cookie_name("[::1]:80"), "__Host-loopd_session_80");
        assert_eq!(cookie_name("localhost"), "__Host-loopd_session");
        assert_eq!(cookie_name("loop.example:7700"), "loopd_session_7700");
        assert_eq!(
            set_cookie("127.0.0.1:7700", "v"),
            "__Host-loopd_session_7700=v; Path=/; Secure; HttpOnly; SameSite=Strict"
        );
        assert_eq!(
            clear_cookie("loop.example:7700"),
            "loopd_session_7700=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
    }

    #[test]
    fn who_a_peer_is() {
        let peer = |addr: &str, uid| Peer {
            addr: addr.parse().unwrap(),
            uid,
        };
        assert_eq!(
            Holder::of(Some(&peer("127.0.0.1:4000", Some(7)))),
            Some(Holder::User(7))
        );
        assert_eq!(Holder::of(Some(&peer("127.0.0.1:4000", None))), None);
        assert_eq!(
            Holder::of(Some(&peer("[::ffff:127.0.0.1]:4000", Some(7)))),
            Some(Holder::User(7))
        );
        assert_eq!(
            Holder::of(Some(&peer("10.1.1.1:4000", None))),
            Some(Holder::Remote("10.1.1.1".parse().unwrap()))
        );
        assert_eq!(Holder::of(None), None);
    }
}
