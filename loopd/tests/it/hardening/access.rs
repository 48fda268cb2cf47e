//! Who may drive the daemon: a web page in the owner's browser, a page of another origin,
//! another user of the machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{client, repo, run_body, start_daemon};

use super::{host, needs_root, raw, raw_as};

/// The `POST /runs` body a page would send: a command agent that leaves a mark if it runs.
fn pwn_body(repo: &Path, mark: &Path) -> String {
    let mut body = run_body(repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!("touch {}", mark.display()));
    body.to_string()
}

#[test]
fn a_web_page_cannot_start_a_run_or_read_an_answer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mark = dir.path().join("pwned");
    let body = pwn_body(&repo, &mark);
    let address = host(&daemon);
    let post = |headers: &str| {
        raw(
            &daemon,
            &format!(
                "POST /runs HTTP/1.1\r\nHost: {address}\r\n{headers}Content-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    // A form or fetch "simple request": text/plain from another origin, no preflight.
    for (headers, want) in [
        (
            "Content-Type: text/plain\r\nOrigin: https://evil.example\r\n",
            "cross_origin",
        ),
        (
            "Content-Type: application/json\r\nOrigin: http://localhost:3000\r\n",
            "cross_origin",
        ),
        (
            "Content-Type: application/json\r\nSec-Fetch-Site: cross-site\r\n",
            "cross_origin",
        ),
        ("Content-Type: text/plain\r\n", "unsupported_media_type"),
        (
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "unsupported_media_type",
        ),
        ("", "unsupported_media_type"),
    ] {
        let (status, answer) = post(headers);
        let answer: Value = serde_json::from_str(&answer).expect("a JSON refusal");
        assert_eq!(answer["code"], want, "{headers:?}: {status} {answer}");
        assert!(status == 403 || status == 415, "{headers:?}: {status}");
    }
    // A preflight gets no permission: no CORS header, ever.
    let response = client()
        .request(reqwest::Method::OPTIONS, daemon.url("/runs"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .expect("send");
    assert!(
        !response
            .headers()
            .contains_key("access-control-allow-origin"),
        "{:?}",
        response.headers()
    );
    // No run was created (below), so no command can run later: no need to wait and see.
    assert!(!mark.exists(), "a refused request ran its command");
    let runs: Value = client()
        .get(daemon.url("/runs"))
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(runs["runs"], json!([]), "no run was created");
    // The daemon's own page (same origin) and programs (no Origin) still may.
    let own = client()
        .post(daemon.url("/runs"))
        .header("Origin", daemon.base.as_str())
        .header("Sec-Fetch-Site", "same-origin")
        .json(&run_body(&repo, "one_task.sh", json!({})))
        .send()
        .expect("send");
    assert_eq!(own.status(), StatusCode::CREATED);
}

#[test]
fn a_foreign_origin_cannot_read_either() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    // A page elsewhere reading the list of runs (a fetch or an <img> carries its Origin):
    // refused before any handler, and never given a CORS grant.
    for (origin, site) in [
        ("https://evil.example", None),
        ("null", None),
        ("http://localhost:3000", Some("cross-site")),
    ] {
        let mut request = client().get(daemon.url("/runs")).header("Origin", origin);
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        let response = request.send().expect("send");
        let status = response.status();
        let headers = response.headers().clone();
        let answer: Value = response.json().expect("a JSON refusal");
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {answer}");
        assert_eq!(answer["code"], "cross_origin", "{origin}: {answer}");
        assert!(answer.get("runs").is_none(), "{origin}: {answer}");
        for name in [
            "access-control-allow-origin",
            "access-control-allow-credentials",
        ] {
            assert!(!headers.contains_key(name), "{origin}: {headers:?}");
        }
    }
    // The same request with no Origin (a program) or the daemon's own is answered.
    for origin in [None, Some(daemon.base.as_str())] {
        let mut request = client().get(daemon.url("/runs"));
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let response = request.send().expect("send");
        assert_eq!(response.status(), StatusCode::OK, "{origin:?}");
        assert!(
            !response
                .headers()
                .contains_key("access-control-allow-origin"),
            "{origin:?}: {:?}",
            response.headers()
        );
    }
}

#[test]
fn another_local_user_needs_the_token_the_owner_does_not() {
    if !needs_root("another_local_user_needs_the_token_the_owner_does_not") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let daemon = start_daemon(&data, &[], &[]);
    // The token was made on first start, for the owner's eyes only.
    let token_file = data.join("auth-token");
    let mode = std::fs::metadata(&token_file)
        .expect("a token file in the data dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file)
        .expect("token")
        .trim()
        .to_owned();
    // The owner (root here) needs no token.
    assert_eq!(
        client()
            .get(daemon.url("/runs"))
            .send()
            .expect("send")
            .status(),
        StatusCode::OK
    );
    // `nobody`, over the same loopback, is refused without it and let in with it.
    let (address, port) = host(&daemon)
        .rsplit_once(':')
        .map(|(a, p)| (a.to_owned(), p.to_owned()))
        .expect("host:port");
    let as_nobody = |auth: &str| {
        let script = format!(
            "exec 3<>/dev/tcp/{address}/{port}; printf 'GET /runs HTTP/1.1\\r\\nHost: \
             {address}:{port}\\r\\n{auth}Connection: close\\r\\n\\r\\n' >&3; head -c 12 <&3"
        );
        let output = Command::new("bash")
            .args(["-c", &script])
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .output()
            .expect("bash as nobody");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    use std::os::unix::process::CommandExt;
    assert_eq!(as_nobody(""), "HTTP/1.1 401");
    assert_eq!(
        as_nobody(&format!("Authorization: Bearer {token}\\r\\n")),
        "HTTP/1.1 200"
    );
}

/// Issue 23, defect 4: browsers send a host's cookies to every port of it, so a page another
/// user serves on another loopback port received the dashboard's session cookie once the owner
/// followed a link to it; replayed from that user's account, the cookie created a run whose
/// agent ran as the owner. A session now holds only for the user who logged in, on the `Host`
/// they logged in to.
#[test]
fn a_session_cookie_replayed_by_another_local_user_or_for_another_host_is_refused() {
    if !needs_root("a_session_cookie_replayed_by_another_local_user_or_for_another_host_is_refused")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    // A token required of everyone, so that only the cookie lets a request in.
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let login = client()
        .post(daemon.url("/login"))
        .json(&json!({"token": "s3cret"}))
        .send()
        .expect("log in");
    assert_eq!(login.status(), StatusCode::NO_CONTENT);
    let set_cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    // What the page on the other port receives, and replays.
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let address = host(&daemon);
    let get_runs = |host: &str| {
        format!(
            "GET /runs HTTP/1.1\r\nHost: {host}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        )
    };
    // The owner's browser: let in.
    assert_eq!(raw(&daemon, &get_runs(&address)).0, 200, "{set_cookie}");
    // Another user of the machine with the same cookie: refused, and so is the run it sends.
    let (status, body) = raw_as(65534, &daemon, &get_runs(&address));
    assert_eq!(status, 401, "{body}");
    let mark = dir.path().join("pwned");
    let body = pwn_body(&repo, &mark);
    let post = format!(
        "POST /runs HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, answer) = raw_as(65534, &daemon, &post);
    assert_eq!(status, 401, "{answer}");
    // The owner, naming the daemon by another of its names: not the host the session is for.
    let port = address.rsplit_once(':').expect("a port").1;
    assert_eq!(raw(&daemon, &get_runs(&format!("localhost:{port}"))).0, 401);
    let runs: Value = client()
        .get(daemon.url("/runs"))
        .bearer_auth("s3cret")
        .send()
        .expect("runs")
        .json()
        .expect("json");
    assert_eq!(runs["runs"], json!([]), "no run was created");
    assert!(!mark.exists(), "the agent ran");
}
