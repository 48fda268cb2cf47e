//! The other pages: a postmortem from the run page, the new-run form, insight and gc.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{PATIENCE, create};
use crate::support::{Daemon, client, repo, run_body, start_daemon, stub, wait_for_end};

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
    // The raw files are folded, each read when opened; none makes the page wider than the
    // window.
    let file = "#postmortem details.raw-file[data-name='spec-compliance.prompt.txt']";
    assert_eq!(
        browser.js(&format!("return document.querySelector(\"{file}\").open;")),
        json!(false)
    );
    browser.click("#postmortem-files > summary");
    browser.click(&format!("{file} > summary"));
    browser.wait_text(file, "a file's text", |t| {
        t.contains("Your task: spec compliance")
    });
    browser.js(
        "for (const d of document.querySelectorAll('#postmortem details')) d.open = true; return null;",
    );
    std::thread::sleep(Duration::from_millis(500));
    let overflow = browser
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth;");
    assert!(
        overflow.as_i64().is_some_and(|px| px <= 0),
        "the postmortem is {overflow} px wider than a 1280 px window"
    );
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
