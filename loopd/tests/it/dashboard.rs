//! The dashboard in a real browser: headless Chromium driven over WebDriver (chromedriver on an
//! ephemeral port) against the real `loopd` with stub agents. Each test says what a person sees
//! and does; the API and git confirm what the page claims.
//!
//! Without Chromium and chromedriver these tests say loudly that they were skipped and why, and
//! fail instead when `LOOP_REQUIRE_SYSTEM_TESTS` is set (as `.ci/run` does). With
//! `LOOPD_SCREENSHOTS=1`, `screenshots_of_every_page_at_both_widths` refreshes the committed
//! pictures in `docs/screenshots/`; otherwise it writes them to a temp dir.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Daemon, client, repo, run_body, start_daemon, stub, wait_for_end};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show what the daemon did (a shared, loaded machine).
const PATIENCE: Duration = Duration::from_secs(45);

/// Whether the browser is here; when not, says so (or fails under LOOP_REQUIRE_SYSTEM_TESTS).
fn needs_browser(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "SKIPPED {test}: no {} (Debian: apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    assert!(
        std::env::var_os("LOOP_REQUIRE_SYSTEM_TESTS").is_none(),
        "{why}, and LOOP_REQUIRE_SYSTEM_TESTS is set"
    );
    eprintln!("{why}");
    false
}

/// A headless Chromium session, its chromedriver stopped when dropped. Every call blocks, so a
/// test reads top to bottom and can call the blocking API client between them.
struct Browser {
    runtime: tokio::runtime::Runtime,
    driver: Option<WebDriver>,
    chromedriver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let mut chromedriver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let mut lines = BufReader::new(chromedriver.stdout.take().expect("stdout")).lines();
        let port = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|line| {
                line.split("started successfully on port ")
                    .nth(1)
                    .map(|rest| rest.trim_end_matches('.').trim().to_owned())
            })
            .expect("chromedriver says its port");
        // Drain the rest so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let profile = tempfile::tempdir().expect("a browser profile dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let driver = runtime
            .block_on(async {
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                    match ClientBuilder::new(connector)
                        .capabilities(capabilities.clone())
                        .connect(&url)
                        .await
                    {
                        Ok(driver) => return Ok(driver),
                        Err(error) if Instant::now() > deadline => return Err(error),
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            })
            .expect("a Chromium session");
        Browser {
            runtime,
            driver: Some(driver),
            chromedriver,
            _profile: profile,
        }
    }

    fn driver(&self) -> &WebDriver {
        self.driver.as_ref().expect("a session")
    }

    fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.driver().goto(url))
            .unwrap_or_else(|error| panic!("open {url}: {error}"));
    }

    fn reload(&self) {
        self.runtime
            .block_on(self.driver().refresh())
            .expect("reload");
    }

    fn url(&self) -> String {
        self.runtime
            .block_on(self.driver().current_url())
            .expect("url")
            .to_string()
    }

    /// Runs `script` in the page; what it returns.
    fn js(&self, script: &str) -> Value {
        self.runtime
            .block_on(self.driver().execute(script, vec![]))
            .unwrap_or_else(|error| panic!("{script}: {error}"))
    }

    /// The text of the first element `css` finds, or `None` when there is none.
    fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const el = document.querySelector({}); return el ? el.textContent : null;",
            json!(css)
        );
        self.js(&script).as_str().map(str::to_owned)
    }

    /// Waits until the text of `css` satisfies `check`; the text.
    fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text(css);
            if let Some(text) = &text
                && check(text)
            {
                return text.clone();
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} in {css}; it shows {text:?} at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for `css` to be there and enabled, and clicks it.
    fn click(&self, css: &str) {
        let script = format!(
            "const el = document.querySelector({}); return !!el && !el.disabled;",
            json!(css)
        );
        let deadline = Instant::now() + PATIENCE;
        while self.js(&script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "{css} never became clickable");
            std::thread::sleep(Duration::from_millis(100));
        }
        self.runtime
            .block_on(async { self.driver().find(Locator::Css(css)).await?.click().await })
            .unwrap_or_else(|error| panic!("click {css}: {error}"));
    }

    /// Chooses the option `value` of the select `css`.
    fn choose(&self, css: &str, value: &str) {
        self.runtime
            .block_on(async {
                let select = self.driver().find(Locator::Css(css)).await?;
                select.select_by_value(value).await
            })
            .unwrap_or_else(|error| panic!("choose {value} in {css}: {error}"));
    }

    fn type_into(&self, css: &str, text: &str) {
        self.runtime
            .block_on(async {
                let field = self.driver().find(Locator::Css(css)).await?;
                field.clear().await?;
                field.send_keys(text).await
            })
            .unwrap_or_else(|error| panic!("type into {css}: {error}"));
    }

    fn resize(&self, width: u32, height: u32) {
        self.runtime
            .block_on(self.driver().set_window_size(width, height))
            .expect("resize");
    }

    fn screenshot(&self, path: &Path) {
        let png = self
            .runtime
            .block_on(self.driver().screenshot())
            .expect("screenshot");
        std::fs::write(path, png).expect("write a screenshot");
    }

    /// The page's cumulative layout shift so far (what moved without the person asking).
    fn layout_shift(&self) -> f64 {
        let script = "return await new Promise((done) => {
            let total = 0;
            new PerformanceObserver((list) => {
                for (const entry of list.getEntries()) if (!entry.hadRecentInput) total += entry.value;
            }).observe({ type: 'layout-shift', buffered: true });
            setTimeout(() => done(total), 50);
        });";
        self.js(script).as_f64().expect("a number")
    }

    fn cookies(&self) -> Vec<fantoccini::cookies::Cookie<'static>> {
        self.runtime
            .block_on(self.driver().get_all_cookies())
            .expect("cookies")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            let _ = self.runtime.block_on(driver.close());
        }
        let _ = self.chromedriver.kill();
        let _ = self.chromedriver.wait();
    }
}

fn create(daemon: &Daemon, body: &Value) -> String {
    let response = client()
        .post(daemon.url("/runs"))
        .json(body)
        .send()
        .expect("create");
    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().expect("json");
    created["run"]["id"].as_str().expect("id").to_owned()
}

fn run(daemon: &Daemon, id: &str) -> Value {
    let answer: Value = client()
        .get(daemon.url(&format!("/runs/{id}")))
        .send()
        .expect("get")
        .json()
        .expect("json");
    answer["run"].clone()
}

fn wait_status(daemon: &Daemon, id: &str, status: &str) {
    loop_testkit::until(&format!("run {id} {status}"), PATIENCE, || {
        run(daemon, id)["status"] == status
    });
}

/// An agent that prints `line 1` … `line <lines>`, a few a second, then does one task.
fn slow_printer(dir: &Path, lines: u32) -> String {
    let script = dir.join("printer.sh");
    std::fs::write(
        &script,
        format!(
            "cat > /dev/null\nfor i in $(seq 1 {lines}); do echo \"line $i\"; sleep 0.1; done\n\
             echo '● Bash(cargo test)'\nexec {} < /dev/null\n",
            stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    format!("sh {}", script.display())
}

#[test]
fn the_board_shows_a_new_run_and_its_progress_without_a_reload() {
    if !needs_browser("the_board_shows_a_new_run_and_its_progress_without_a_reload") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    browser.wait_text("#live", "the board live", |t| t == "live");
    assert!(browser.text("tr[data-run]").is_none(), "no run yet");
    // Anything the page keeps would be lost by a reload: this mark says there was none.
    browser.js("window.notReloaded = true; return null;");

    let id = create(&daemon, &run_body(&repo, "sleepy.sh", json!({})));
    let row = format!("tr[data-run='{id}']");
    browser.wait_text(&row, "the new run", |t| !t.is_empty());
    let progress = format!("{row} .c-tasks .label");
    browser.wait_text(&progress, "the tasks done", |t| t == "2/2");
    browser.wait_text(&format!("{row} .c-status"), "the end", |t| t == "COMPLETED");
    assert_eq!(
        browser.text(&format!("{row} .c-name")).as_deref(),
        Some("feature")
    );
    assert_eq!(
        browser.js("return window.notReloaded === true;"),
        Value::Bool(true)
    );
    let shift = browser.layout_shift();
    assert!(shift < 0.05, "the board moved while it updated: {shift}");

    // The account the run's calls counted against, under the runs: its run and its calls.
    let account = "#accounts tr[data-account]";
    browser.wait_text(
        &format!("{account} td:nth-child(3)"),
        "the account's calls",
        |t| t.parse::<u32>().is_ok_and(|calls| calls >= 2),
    );
    assert_eq!(
        browser
            .text(&format!("{account} td:nth-child(2)"))
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        browser
            .text(&format!("{account} td:nth-child(6)"))
            .as_deref(),
        Some("ok")
    );

    // The filters: another status hides it, its own shows it.
    browser.choose("#filter-status", "FAILED");
    assert_eq!(
        browser.js(&format!("return document.querySelector(\"{row}\").hidden;")),
        Value::Bool(true)
    );
    browser.choose("#filter-status", "COMPLETED");
    assert_eq!(
        browser.js(&format!("return document.querySelector(\"{row}\").hidden;")),
        Value::Bool(false)
    );
}

#[test]
fn the_board_s_queue_says_why_a_pending_run_waits() {
    if !needs_browser("the_board_s_queue_says_why_a_pending_run_waits") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let first_repo = repo(&dir.path().join("a"), 1);
    let second_repo = repo(&dir.path().join("b"), 1);
    let daemon = start_daemon(&dir.path().join("data"), &["--max-concurrency", "1"], &[]);
    let mut first = run_body(&first_repo, "sleep_once.sh", json!({}));
    first["name"] = json!("first");
    let first = create(&daemon, &first);
    wait_status(&daemon, &first, "RUNNING");
    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    browser.wait_text("#queue", "an empty queue", |t| t == "Queue: empty");
    let mut second = run_body(&second_repo, "one_task.sh", json!({}));
    second["name"] = json!("second");
    let second = create(&daemon, &second);
    let reason = run(&daemon, &second)["waiting"]["reason"]
        .as_str()
        .expect("a pending run says why it waits")
        .to_owned();
    let queue = browser.wait_text("#queue", "the pending run", |t| t.contains("second"));
    assert_eq!(queue, format!("Queue: second — {reason}"));
    browser.wait_text(
        &format!("tr[data-run='{second}'] .c-note"),
        "its reason in its row",
        |t| t == reason,
    );
    for id in [&first, &second] {
        client()
            .post(daemon.url(&format!("/runs/{id}/cancel")))
            .send()
            .expect("cancel");
    }
    browser.wait_text("#queue", "an empty queue again", |t| t == "Queue: empty");
}

#[test]
fn the_run_page_streams_output_and_a_reload_resumes_it_without_gap_or_repeat() {
    if !needs_browser("the_run_page_streams_output_and_a_reload_resumes_it_without_gap_or_repeat") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(slow_printer(dir.path(), 60));
    let id = create(&daemon, &body);

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}")));
    browser.wait_text("#output", "some output", |t| t.contains("line 8\n"));
    let before = browser.text("#output").unwrap_or_default();
    assert!(
        !before.contains("line 60\n"),
        "the reload must come mid-run: {before}"
    );
    browser.reload();
    // What was shown is there again at once, before the stream says more.
    let restored = browser.wait_text("#output", "the output again", |t| t.contains("line 8\n"));
    assert!(
        restored.starts_with(&before[..before.find("line 8\n").expect("line 8")]),
        "{restored}"
    );
    let after = browser.wait_text("#output", "the last line", |t| {
        t.contains("Implemented the next task.")
    });
    let numbered: Vec<u32> = after
        .lines()
        .filter_map(|line| line.strip_prefix("line "))
        .map(|n| n.parse().expect("a number"))
        .collect();
    assert_eq!(
        numbered,
        (1..=60).collect::<Vec<_>>(),
        "every line once, in order: {after}"
    );
    let shift = browser.layout_shift();
    assert!(
        shift < 0.05,
        "the run page moved while output streamed: {shift}"
    );
    // A tool call is shown as one.
    assert_eq!(
        browser.text("#output .tool").as_deref(),
        Some("● Bash(cargo test)\n")
    );
    wait_for_end(&daemon, &id);
    browser.wait_text("#run-status", "the end", |t| t == "COMPLETED");
    // The timeline has the run's events by iteration, each payload a click away.
    browser.click("#tab-timeline");
    browser.wait_text(
        "#timeline section[data-iteration='1'] [data-type='STEP_FINISHED'] summary",
        "the step's end",
        |t| t.contains("SUCCEEDED"),
    );
    let payload = browser
        .text("#timeline [data-type='STEP_FINISHED'] pre")
        .expect("a payload");
    let payload: Value = serde_json::from_str(&payload).expect("the payload is JSON");
    assert_eq!(payload["phase"], "implementation");
}

#[test]
fn pause_and_resume_from_the_run_page_change_the_run() {
    if !needs_browser("pause_and_resume_from_the_run_page_change_the_run") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(&daemon, &run_body(&repo, "sleep_once.sh", json!({})));
    wait_status(&daemon, &id, "RUNNING");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}")));
    browser.wait_text("#run-status", "RUNNING", |t| t == "RUNNING");
    // Only what the state allows is offered.
    let enabled = |action: &str| {
        browser.js(&format!(
            "return !document.querySelector('#control-{action}').disabled;"
        ))
    };
    assert_eq!(enabled("retry"), Value::Bool(false));
    browser.wait_text("#output", "the agent's first words", |t| {
        t.contains("thinking")
    });
    browser.click("#control-pause");
    browser.wait_text("#run-status", "PAUSED", |t| t == "PAUSED");
    assert_eq!(run(&daemon, &id)["status"], "PAUSED");
    assert_eq!(enabled("pause"), Value::Bool(false));
    assert_eq!(enabled("resume"), Value::Bool(true));

    browser.click("#control-resume");
    browser.wait_text("#run-status", "the run going on", |t| {
        t == "RUNNING" || t == "COMPLETED"
    });
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");
    browser.wait_text("#run-status", "COMPLETED", |t| t == "COMPLETED");
}

#[test]
fn a_merge_from_the_review_tab_lands() {
    if !needs_browser("a_merge_from_the_review_tab_lands") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    // A target that is not checked out: a merge never moves a branch under a checkout.
    loop_testkit::git(&repo, &["branch", "release"]);
    let before = loop_testkit::git(&repo, &["rev-parse", "release"]);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main: 1 commit")
    });
    let files = browser.text("#review").unwrap_or_default();
    assert!(files.contains("work.txt"), "{files}");
    assert!(files.contains("+work 1"), "the patch: {files}");
    browser.type_into("#merge-target", "release");
    browser.click("#merge-button");
    let outcome = browser.wait_text("#merge-outcome", "the merge's outcome", |t| {
        t.starts_with("Merged") || t.starts_with("Not merged")
    });
    assert!(outcome.starts_with("Merged into release"), "{outcome}");
    let after = loop_testkit::git(&repo, &["rev-parse", "release"]);
    assert_ne!(before, after, "release moved");
    assert!(outcome.contains(&after[..12]), "{outcome} names {after}");
    assert_eq!(
        loop_testkit::git(&repo, &["show", "release:work.txt"]),
        "work 1"
    );
}

#[test]
fn a_postmortem_started_from_the_page_shows_its_files() {
    if !needs_browser("a_postmortem_started_from_the_page_shows_its_files") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(&daemon, &run_body(&repo, "one_task.sh", json!({})));
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/postmortem")));
    browser.wait_text("#postmortem", "no postmortem", |t| {
        t.contains("No postmortem yet.")
    });
    browser.click("#postmortem-start");
    // A command agent answers no analysis prompts: the postmortem is skipped, says why, and
    // leaves the prompts and git snapshots, which the page shows as text.
    let shown = browser.wait_text("#postmortem", "the postmortem's files", |t| {
        t.contains("Postmortem: skipped") && t.contains("git-status.txt")
    });
    assert!(shown.contains("answers no analysis prompts"), "{shown}");
    browser.wait_text("#postmortem .analyses", "a file's text", |t| {
        t.contains("spec-compliance.prompt.txt") && t.contains("Your task: spec compliance")
    });
}

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
fn the_new_run_form_starts_a_run_from_the_workspace_s_specs() {
    if !needs_browser("the_new_run_form_starts_a_run_from_the_workspace_s_specs") {
        return;
    }
    let scratch = loop_testkit::Scratch::with(|repo| {
        repo.tasks(1)
            .command_agent(&stub("one_task.sh"), "run_naming_mode=spec_slug\n")
    });
    let repo = scratch.repo();
    let daemon = start_daemon(&scratch.data_dir(), &[], &[]);
    let browser = Browser::start();
    browser.goto(&daemon.url("/#/new"));
    browser.type_into("#new-workspace", &format!("{}\u{E004}", repo.display()));
    browser.wait_text("#new-spec", "the workspace's specs", |t| {
        t.contains("specs/feature.md — Feature [Draft]")
    });
    let plan = browser.js("return document.querySelector('#new-plan').value;");
    assert_eq!(plan, json!("specs/planning/feature-plan.md"));
    browser.type_into("#new-name", "from-the-form");
    browser.type_into("#new-verify", "test -f work.txt");
    browser.click("#new-submit");
    let deadline = Instant::now() + PATIENCE;
    while !browser.url().contains("#/runs/") {
        assert!(
            Instant::now() < deadline,
            "no run page: {:?}",
            browser.text("#new-note")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = browser.url();
    let id = url.rsplit('/').next().expect("an id").to_owned();
    let ended = wait_for_end(&daemon, &id);
    assert_eq!(ended["status"], "COMPLETED");
    assert_eq!(ended["name"], "from-the-form");
    browser.wait_text("#run-status", "COMPLETED", |t| t == "COMPLETED");
    let events: Value = client()
        .get(daemon.url(&format!("/runs/{id}/events?format=json")))
        .send()
        .expect("events")
        .json()
        .expect("json");
    let created = events["events"][0]["payload"].to_string();
    assert!(created.contains("test -f work.txt"), "{created}");

    // A workspace without specs, or none at all, says so.
    browser.goto(&daemon.url("/#/new"));
    browser.type_into("#new-workspace", "/nowhere/at/all\u{E004}");
    browser.wait_text("#new-note", "a refusal", |t| t.contains("no directory"));
}

#[test]
fn insight_shows_the_figures_and_gc_previews_before_it_removes() {
    if !needs_browser("insight_shows_the_figures_and_gc_previews_before_it_removes") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let id = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url("/#/insight"));
    browser.wait_text("#stats", "the figures", |t| t.contains("Runs by outcome"));
    // Over time: today's column (UTC, as the daemon buckets it) holds the completed run.
    let stats: Value = client()
        .get(daemon.url("/stats"))
        .send()
        .expect("stats")
        .json()
        .expect("json");
    assert!(stats["stats"].get("runs_by_day").is_none(), "{stats}");
    let today = stats["runs_by_day"][0]["day"]
        .as_str()
        .expect("a day")
        .to_owned();
    assert_eq!(stats["runs_by_day"][0]["completed"], 1, "{stats}");
    assert_eq!(
        browser.js(&format!(
            "const bar = document.querySelector(\"#runs-over-time g[data-day='{today}'] \
             rect[data-outcome='completed']\"); return bar && bar.dataset.count;"
        )),
        json!("1")
    );
    assert_eq!(
        browser.js(
            "return [...document.querySelectorAll('#stats svg')].length > 3 \
             && document.querySelector('#stats .figure-value').textContent;"
        ),
        json!("1")
    );
    browser.wait_text("#worktree-table", "the worktree", |t| t.contains("feature"));
    browser.click("#gc-preview");
    browser.wait_text("#gc-note", "the preview", |t| {
        t.starts_with("gc would remove 1 worktree")
    });
    let worktrees = |daemon: &Daemon| -> usize {
        let answer: Value = client()
            .get(daemon.url("/worktrees"))
            .send()
            .expect("worktrees")
            .json()
            .expect("json");
        answer["worktrees"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(worktrees(&daemon), 1, "a preview removes nothing");
    browser.click("#gc-run");
    browser.wait_text("#gc-note", "the removal", |t| {
        t.starts_with("Removed 1 worktree")
    });
    assert_eq!(worktrees(&daemon), 0);
}

/// An agent that behaves like `one_task.sh` but starts iteration N's implementation only once
/// the test has created `go-N` in `dir`, so a page is sure to see each state of the plan
/// however slow the machine is.
fn gated_agent(dir: &Path) -> String {
    let script = dir.join("gated.sh");
    std::fs::write(
        &script,
        format!(
            "if [ \"$LOOP_PHASE\" = implementation ]; then\n\
             while [ ! -e {dir}/go-$LOOP_ITERATION ]; do sleep 0.05; done\n\
             fi\n\
             exec {agent}\n",
            dir = dir.display(),
            agent = stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    format!("sh {}", script.display())
}

/// Lets the gated agent start iteration `n`.
fn open_gate(dir: &Path, n: u32) {
    std::fs::write(dir.join(format!("go-{n}")), "").expect("open the gate");
}

#[test]
fn the_run_page_shows_the_plan_as_it_changes_and_each_verification_command_with_its_output() {
    if !needs_browser(
        "the_run_page_shows_the_plan_as_it_changes_and_each_verification_command_with_its_output",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(
        &repo,
        "one_task.sh",
        json!({"verify_cmds": "echo 'checked <b>it</b>'\ntest -f work.txt && echo work is there"}),
    );
    body["config"]["agent_cmd"] = json!(gated_agent(dir.path()));
    let browser = Browser::start();
    let id = create(&daemon, &body);
    browser.goto(&daemon.url(&format!("/#/runs/{id}/plan")));
    browser.wait_text("#plan-note", "the plan before any task", |t| {
        t.starts_with("0 / 2 tasks done")
    });
    browser.js("window.notReloaded = true; return null;");
    assert_eq!(
        browser.js("return document.querySelectorAll('#plan li[data-state=pending]').length;"),
        json!(2)
    );
    // The agent ticks the boxes; the page follows without a reload.
    open_gate(dir.path(), 1);
    browser.wait_text("#plan-note", "one task done", |t| {
        t.starts_with("1 / 2 tasks done")
    });
    open_gate(dir.path(), 2);
    browser.wait_text("#plan-note", "both tasks done", |t| {
        t.starts_with("2 / 2 tasks done")
    });
    open_gate(dir.path(), 3);
    assert_eq!(
        browser.js("return window.notReloaded === true \
             && document.querySelectorAll('#plan li[data-state=done]').length;"),
        json!(2)
    );
    let text = browser.text("#plan-text").unwrap_or_default();
    assert!(text.contains("- [x]"), "the plan file as text: {text}");
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");
    let plan: Value = client()
        .get(daemon.url(&format!("/runs/{id}/plan")))
        .send()
        .expect("plan")
        .json()
        .expect("json");
    assert_eq!(
        (&plan["plan"]["tasks_done"], &plan["plan"]["tasks_total"]),
        (&json!(2), &json!(2)),
        "{plan}"
    );

    // Verification: both commands of each iteration that verified, with exit codes; a
    // command's output one click away, as text.
    browser.goto(&daemon.url(&format!("/#/runs/{id}/verification")));
    browser.wait_text(
        "#verification section[data-iteration='2']",
        "the second iteration's commands",
        |t| t.contains("work is there") || t.contains("test -f work.txt"),
    );
    let first = "#verification section[data-iteration='1']";
    assert_eq!(
        browser.js(&format!(
            "return [...document.querySelectorAll(\"{first} details.command\")]\
             .map((d) => d.dataset.exit + ' ' + d.querySelector('code').textContent);"
        )),
        json!([
            "0 echo 'checked <b>it</b>'",
            "0 test -f work.txt && echo work is there"
        ])
    );
    browser.click(&format!("{first} details.command summary"));
    let output = browser.wait_text(
        &format!("{first} details.command pre"),
        "the first command's output",
        |t| t.contains("[exit"),
    );
    assert!(
        output.starts_with("$ echo 'checked <b>it</b>'\nchecked <b>it</b>\n"),
        "{output}"
    );
    assert!(
        !output.contains("work is there"),
        "only its own command: {output}"
    );
    assert_eq!(
        browser.js("return document.querySelectorAll('#verification b').length;"),
        json!(0),
        "output is text, never markup"
    );
}

#[test]
fn patches_in_the_review_are_syntax_highlighted_as_text() {
    if !needs_browser("patches_in_the_review_are_syntax_highlighted_as_text") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    // An agent that adds a Rust file (with markup in a comment and a string) to its commit.
    let script = dir.path().join("rusty.sh");
    std::fs::write(
        &script,
        format!(
            "mkdir -p src\ncat > src/lib.rs <<'EOF'\n\
             // A comment <script>alert(1)</script>\n\
             pub fn answer() -> u32 {{\n    let _s = \"a <b>bold</b> string\";\n    42\n}}\n\
             EOF\nexec {}\n",
            stub("one_task.sh")
        ),
    )
    .expect("write the agent");
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(format!("sh {}", script.display()));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let id = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &id)["status"], "COMPLETED");

    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}/review")));
    browser.wait_text("#review .diff-summary", "the diff", |t| {
        t.contains("against main")
    });
    let tokens = |class: &str| {
        browser.js(&format!(
            "return [...document.querySelectorAll(\"#review pre[data-lang='rust'] .{class}\")]\
             .map((el) => el.textContent);"
        ))
    };
    assert_eq!(tokens("tok-k"), json!(["pub", "fn", "let"]));
    assert_eq!(tokens("tok-s"), json!(["\"a <b>bold</b> string\""]));
    assert_eq!(
        tokens("tok-c"),
        json!(["// A comment <script>alert(1)</script>"])
    );
    // `u32` is a name, not a number.
    assert_eq!(tokens("tok-n"), json!(["42"]));
    // Added lines keep their colour under the tokens; markup in the code stays text.
    assert_eq!(
        browser.js(
            "return document.querySelectorAll(\"#review .d-add .tok-k\").length > 0 \
             && document.querySelectorAll('#review script, #review b').length;"
        ),
        json!(0)
    );
    // A file the highlighter does not know is shown as plain lines.
    assert_eq!(
        browser.js(
            "const file = [...document.querySelectorAll('#review .diff-file')]\
             .find((d) => d.querySelector('summary').textContent.startsWith('work.txt'));\
             return [file.querySelector('pre').dataset.lang, file.querySelectorAll('pre span span').length];"
        ),
        json!(["", 0])
    );
}

/// Where the screenshots go: the committed folder when asked to refresh it.
fn screenshot_dir(scratch: &Path) -> PathBuf {
    if std::env::var_os("LOOPD_SCREENSHOTS").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("docs/screenshots");
        dir
    } else {
        let dir = scratch.join("screenshots");
        std::fs::create_dir_all(&dir).expect("a screenshot dir");
        dir
    }
}

#[test]
fn screenshots_of_every_page_at_both_widths() {
    if !needs_browser("screenshots_of_every_page_at_both_widths") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 2);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    // A finished run with a diff to review, and one that stays at work.
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["no_worktree"] = json!(false);
    body["worktree_provider"] = json!("git");
    body["name"] = json!("add-the-feature");
    let done = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &done)["status"], "COMPLETED");
    let mut working = run_body(&repo, "one_task.sh", json!({}));
    working["config"]["agent_cmd"] = json!(slow_printer(dir.path(), 600));
    working["no_worktree"] = json!(false);
    working["worktree_provider"] = json!("git");
    working["name"] = json!("still-at-work");
    let busy = create(&daemon, &working);
    wait_status(&daemon, &busy, "RUNNING");

    let out = screenshot_dir(dir.path());
    let browser = Browser::start();
    let pages = [
        ("board", "/".to_owned(), "#run-count"),
        ("run-output", format!("/#/runs/{busy}"), "#output"),
        (
            "run-timeline",
            format!("/#/runs/{done}/timeline"),
            "#timeline",
        ),
        (
            "run-review",
            format!("/#/runs/{done}/review"),
            "#review .diff-summary",
        ),
        ("new-run", "/#/new".to_owned(), "#new-note"),
        ("insight", "/#/insight".to_owned(), "#worktree-table"),
        ("login", "/login".to_owned(), "#token"),
    ];
    for (width, height) in [(1280, 900), (390, 844)] {
        browser.resize(width, height);
        for (name, path, ready) in &pages {
            browser.goto(&daemon.url(path));
            browser.wait_text(ready, name, |t| {
                *name == "login" || (!t.is_empty() && !t.starts_with("Reading"))
            });
            if *name == "run-output" {
                browser.wait_text("#output", "some output", |t| t.contains("line 5\n"));
            }
            // Usable at this width: nothing sticks out sideways.
            let overflow = browser.js(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            );
            assert!(
                overflow.as_i64().is_some_and(|px| px <= 0),
                "{name} at {width} px is {overflow} px too wide"
            );
            browser.screenshot(&out.join(format!("{name}-{width}.png")));
        }
    }
    // Every control of the board and the run page is reachable with the keyboard.
    browser.resize(1280, 900);
    browser.goto(&daemon.url(&format!("/#/runs/{busy}")));
    browser.wait_text("#run-status", "RUNNING", |t| t == "RUNNING");
    let unreachable = browser.js(
        "return [...document.querySelectorAll('a, button, select, input')]
            .filter(el => el.tabIndex < 0).map(el => el.outerHTML);",
    );
    assert_eq!(unreachable, json!([]));
    client()
        .post(daemon.url(&format!("/runs/{busy}/cancel")))
        .send()
        .expect("cancel");
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
    assert!(page.text().expect("text").contains("/ui/app.js"));
    for asset in ["/ui/app.js", "/ui/app.css", "/ui/login.js", "/login"] {
        let answer = client.get(daemon.url(asset)).send().expect("send");
        assert_eq!(answer.status(), StatusCode::OK, "{asset}");
    }
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
