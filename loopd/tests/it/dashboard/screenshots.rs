//! The screenshots in `docs/screenshots/`, at 1280 and 390 px, and what must hold at both
//! widths (nothing wider than the window, every control reachable with the keyboard).

use std::path::{Path, PathBuf};

use serde_json::json;

use super::board::paced_run;
use super::browser::{Browser, needs_browser};
use super::desk::{numbered, wordfreq};
use super::{create, wait_status};
use crate::experiment::{bench_repo, experiment_body};
use crate::support::{client, get_json, start_daemon, stub, wait_for_end};

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
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    // The wordfreq project (a small Python package, four tasks), done, reviewed and verified,
    // with a person's comment on its diff; and a second copy of it at work, its agent slowed.
    let (_, mut body) = wordfreq(&dir.path().join("a"), json!({}));
    body["name"] = json!("wordfreq-top-words");
    let done = create(&daemon, &body);
    assert_eq!(wait_for_end(&daemon, &done)["status"], "COMPLETED");
    let diff = get_json(&daemon, &format!("/runs/{done}/diff"));
    let patch = diff["diff"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "wordfreq/counter.py")
        .and_then(|f| f["patch"].as_str())
        .expect("counter.py's patch")
        .to_owned();
    let (_, new) = numbered(&patch);
    let line = new
        .iter()
        .find(|(_, text)| text.contains("def top("))
        .map(|(n, _)| *n)
        .expect("def top(");
    client()
        .post(daemon.url(&format!("/runs/{done}/comments")))
        .json(&json!({"path": "wordfreq/counter.py", "line": line,
                      "body": "top() should refuse a negative n."}))
        .send()
        .expect("comment");
    // An experiment (a measured program whose cost is its loop count, four ideas tried), and a
    // run its account's five-hour window holds, for the board's accounts and forecast.
    let mut experiment = experiment_body(
        &bench_repo(&dir.path().join("e")),
        "sh bench.sh",
        json!({"iterations": "4"}),
    );
    experiment["name"] = json!("fewer-loops");
    let experiment = create(&daemon, &experiment);
    let (paced, _) = paced_run(&daemon, &dir.path().join("c"), "paced-by-window");
    assert_eq!(wait_for_end(&daemon, &experiment)["status"], "COMPLETED");
    loop_testkit::until("the window holds the paced run", super::PATIENCE, || {
        get_json(&daemon, "/accounts")["forecasts"]
            .as_array()
            .is_some_and(|all| {
                all.iter().any(|f| {
                    f["run_id"] == json!(paced)
                        && f["binding"]["kind"] == "window"
                        && f["tasks_left"] == 2
                })
            })
    });
    let (_, mut working) = wordfreq(&dir.path().join("b"), json!({}));
    working["config"]["agent_cmd"] = json!(format!("WORDFREQ_PACE=0.4 {}", stub("wordfreq.sh")));
    working["name"] = json!("wordfreq-at-work");
    let busy = create(&daemon, &working);
    wait_status(&daemon, &busy, "RUNNING");

    let out = screenshot_dir(dir.path());
    let browser = Browser::start();
    let pages = [
        ("board", "/".to_owned(), "#run-count"),
        ("board-accounts", "/".to_owned(), "#forecasts"),
        ("run-output", format!("/#/runs/{busy}"), "#output"),
        ("run-steps", format!("/#/runs/{done}"), "#output-note"),
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
        (
            "run-experiment",
            format!("/#/runs/{experiment}/experiment/2"),
            "#experiment-summary",
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
                browser.wait_text("#output .log", "some output", |t| t.contains("● Read("));
            }
            if *name == "run-steps" {
                // The note says "ran no step" until the events arrive: wait for their count.
                browser.wait_text("#output-note", "the steps counted", |t| {
                    t.ends_with(" steps.")
                });
            }
            if *name == "run-timeline" {
                browser.wait_text("#timeline-spans", "the spans", |t| t.contains("review"));
            }
            if *name == "run-review" {
                browser.wait_text("#review .comment-body", "the comment", |t| !t.is_empty());
            }
            if *name == "board-accounts" {
                browser.wait_text("#accounts .win-reset", "a window's reset", |t| {
                    t.starts_with("resets in")
                });
                browser.js(
                    "document.querySelector('#accounts-section').scrollIntoView({block: 'start'}); return null;",
                );
            }
            if *name == "run-experiment" {
                browser.wait_text("#experiment-diff-title", "a candidate's diff", |t| {
                    t.starts_with("Iteration 2")
                });
                browser.js(
                    "document.querySelector('#tab-experiment').scrollIntoView({block: 'start'}); return null;",
                );
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
            if *name == "run-review" {
                // The comment under its line, and the same file side by side.
                browser.js(
                    "document.querySelector('#review .thread').scrollIntoView({block: 'center'}); return null;",
                );
                browser.screenshot(&out.join(format!("run-review-comment-{width}.png")));
                browser.click("#layout-split");
                browser.wait_text("#review .diff.split", "side by side", |t| !t.is_empty());
                browser.js(
                    "document.querySelector('#review .thread').scrollIntoView({block: 'center'}); return null;",
                );
                browser.screenshot(&out.join(format!("run-review-split-{width}.png")));
                browser.click("#layout-unified");
            }
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
    for id in [&busy, &paced] {
        client()
            .post(daemon.url(&format!("/runs/{id}/cancel")))
            .send()
            .expect("cancel");
    }
}
