//! The screenshots in `docs/screenshots/`, at 1280 and 390 px, and what must hold at both
//! widths (nothing wider than the window, every control reachable with the keyboard).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::browser::{Browser, needs_browser};
use super::{create, slow_printer, wait_status};
use crate::support::{client, repo, run_body, start_daemon, wait_for_end};

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
