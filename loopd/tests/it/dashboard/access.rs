//! Who may open the dashboard: the guard's cross-site refusals, the token login and its
//! cookie, the routes and headers, the redirect to the login.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{PATIENCE, create, run, wait_status};
use crate::support::{client, repo, run_body, start_daemon};

/// A page of another site: `/` posts a form to `target` as soon as it loads.
fn hostile_site(target: &str, enctype: &str) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let page = format!(
        "<!doctype html><form id=f method=post action=\"{target}\" enctype=\"{enctype}\">\
         <input name='{{\"strategy\":\"merge\",\"x\":\"' value='\"}}'></form>\
         <script>document.getElementById('f').submit()</script>"
    );
    let server = std::thread::spawn(move || {
        // One page, then it is done.
        if let Ok((mut stream, _)) = listener.accept() {
            let mut request = [0_u8; 4096];
            let _ = stream.read(&mut request);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    // `localhost`, not the daemon's `127.0.0.1`: another site as the browser counts them.
    (format!("http://localhost:{port}/"), server)
}

#[test]
fn a_cross_site_form_post_is_refused() {
    if !needs_browser("a_cross_site_form_post_is_refused") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(&daemon, &run_body(&repo, "sleep_once.sh", json!({})));
    wait_status(&daemon, &id, "RUNNING");

    let browser = Browser::start();
    // The person's own dashboard was open: the browser has been to the daemon before.
    browser.goto(&daemon.url("/"));
    browser.wait_text("#live", "the board live", |t| t == "live");
    for enctype in ["text/plain", "application/x-www-form-urlencoded"] {
        let (site, server) = hostile_site(&daemon.url(&format!("/runs/{id}/pause")), enctype);
        browser.goto(&site);
        let deadline = Instant::now() + PATIENCE;
        while !browser.url().starts_with(&daemon.base) {
            assert!(Instant::now() < deadline, "the form was never sent");
            std::thread::sleep(Duration::from_millis(100));
        }
        let answer = browser.wait_text("body", "the daemon's answer", |t| !t.is_empty());
        let answer: Value = serde_json::from_str(&answer).expect("a JSON refusal");
        assert_eq!(answer["code"], "cross_origin", "{enctype}: {answer}");
        server.join().expect("the site served its page");
    }
    assert_eq!(run(&daemon, &id)["status"], "RUNNING");
}

#[test]
fn with_a_token_the_dashboard_asks_for_it_and_keeps_it_in_an_http_only_cookie() {
    if !needs_browser("with_a_token_the_dashboard_asks_for_it_and_keeps_it_in_an_http_only_cookie")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    let deadline = Instant::now() + PATIENCE;
    while !browser.url().ends_with("/login") {
        assert!(
            Instant::now() < deadline,
            "no login page: {}",
            browser.url()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    browser.type_into("#token", "wrong");
    browser.click("#login button");
    browser.wait_text("#login-error", "a refusal", |t| t.contains("wrong token"));
    browser.type_into("#token", "s3cret");
    browser.click("#login button");
    browser.wait_text("#live", "the board live", |t| t == "live");
    browser.wait_text("#run-count", "the runs", |t| t == "0 of 0 runs");

    let cookies = browser.cookies();
    let port = daemon.base.rsplit(':').next().expect("a port");
    let session = cookies
        .iter()
        .find(|cookie| cookie.name() == format!("__Host-loopd_session_{port}"))
        .unwrap_or_else(|| panic!("a session cookie in {cookies:?}"));
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true), "a __Host- cookie is Secure");
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    assert_ne!(
        session.value(),
        "s3cret",
        "the token is not kept in the browser"
    );
    assert_eq!(
        browser.js("return document.cookie;"),
        json!(""),
        "no script reads it"
    );
    // The cookie stands for the token with the API too, and nothing else does.
    let cookie = format!("{}={}", session.name(), session.value());
    let with_cookie = client()
        .get(daemon.url("/runs"))
        .header("cookie", &cookie)
        .send()
        .expect("send");
    assert_eq!(with_cookie.status(), StatusCode::OK);
    let with_token_as_cookie = client()
        .get(daemon.url("/runs"))
        .header("cookie", format!("{}=s3cret", session.name()))
        .send()
        .expect("send");
    assert_eq!(with_token_as_cookie.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_dashboard_is_served_at_the_root_with_its_guard() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let client = client();
    let page = client.get(daemon.url("/")).send().expect("send");
    assert_eq!(page.status(), StatusCode::OK);
    let header = |response: &reqwest::blocking::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert!(header(&page, "content-type").starts_with("text/html"));
    assert!(header(&page, "content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    let html = page.text().expect("text");
    assert!(
        html.contains("<script type=\"module\" src=\"/ui/app.js\">"),
        "{html}"
    );
    for asset in ["/ui/app.css", "/ui/login.js", "/login"] {
        let answer = client.get(daemon.url(asset)).send().expect("send");
        assert_eq!(answer.status(), StatusCode::OK, "{asset}");
    }
    // The page's modules, as the browser finds them: from the page's links and each module's
    // own imports. Every one is served, as a script.
    let mut pending: Vec<String> = quoted_after(&html, "href=\"/ui/")
        .chain(quoted_after(&html, "src=\"/ui/"))
        .filter(|name| name.ends_with(".js"))
        .collect();
    let mut served = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let answer = client
            .get(daemon.url(&format!("/ui/{name}")))
            .send()
            .expect("send");
        assert_eq!(answer.status(), StatusCode::OK, "/ui/{name}");
        assert_eq!(
            header(&answer, "content-type"),
            "text/javascript; charset=utf-8"
        );
        let text = answer.text().expect("text");
        pending.extend(quoted_after(&text, "from './"));
    }
    assert!(served.len() > 10, "{served:?}");
    let missing = client.get(daemon.url("/ui/nope.js")).send().expect("send");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Another site navigating to the board, into `dest`.
    let from_elsewhere = |dest: &str| {
        client
            .get(daemon.url("/"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "navigate")
            .header("sec-fetch-dest", dest)
            .send()
            .expect("send")
            .status()
    };
    // A page of another site may not frame it...
    assert_eq!(from_elsewhere("iframe"), StatusCode::FORBIDDEN);
    // ...but a link from one opens it.
    assert_eq!(from_elsewhere("document"), StatusCode::OK);
    // A login is JSON like every body, and from this origin only.
    let form = client
        .post(daemon.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=x")
        .send()
        .expect("send");
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let cross = client
        .post(daemon.url("/login"))
        .header("origin", "http://localhost:1")
        .json(&json!({"token": "x"}))
        .send()
        .expect("send");
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
}

#[test]
fn with_a_token_a_page_without_the_cookie_is_sent_to_the_login() {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(
        &dir.path().join("data"),
        &[],
        &[("LOOPD_AUTH_TOKEN", "s3cret")],
    );
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = client.get(daemon.url("/")).send().expect("send");
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");
    // The API itself still answers JSON 401, and the login page and assets are open.
    let api = client.get(daemon.url("/runs")).send().expect("send");
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    for open in ["/login", "/ui/app.js"] {
        let answer = client.get(daemon.url(open)).send().expect("send");
        assert_eq!(answer.status(), StatusCode::OK, "{open}");
    }
    let wrong = client
        .post(daemon.url("/login"))
        .json(&json!({"token": "s3cre"}))
        .send()
        .expect("send");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = client
        .post(daemon.url("/login"))
        .json(&json!({"token": "s3cret"}))
        .send()
        .expect("send");
    assert_eq!(right.status(), StatusCode::NO_CONTENT);
    let cookie = right.headers()["set-cookie"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value");
    let page = client
        .get(daemon.url("/"))
        .header("cookie", pair)
        .send()
        .expect("send");
    assert_eq!(page.status(), StatusCode::OK);
}

/// The names that follow each `prefix` in `text`, up to the next quote.
fn quoted_after<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = String> + 'a {
    text.split(prefix)
        .skip(1)
        .filter_map(|rest| rest.split(['"', '\'']).next().map(str::to_owned))
}
