//! The board: every run live, its filters, and its queue.

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{create, run, wait_status};
use crate::support::{client, repo, run_body, start_daemon};

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
fn needs_you_lists_finished_work_awaiting_merge_and_failures_and_the_phase_column_shows_phases() {
    if !needs_browser(
        "needs_you_lists_finished_work_awaiting_merge_and_failures_and_the_phase_column_shows_phases",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    // A run that completes on a branch of its own (it waits for a merge), one that fails its
    // verification, and one that completes in place (nothing to merge: it needs nobody).
    let mut done = run_body(&repo, "one_task.sh", json!({}));
    done["no_worktree"] = json!(false);
    done["worktree_provider"] = json!("git");
    done["name"] = json!("to-merge");
    let done = create(&daemon, &done);
    let mut failing = run_body(
        &repo,
        "one_task.sh",
        json!({"verify_cmds": "exit 3", "max_consecutive_verification_failures": "1"}),
    );
    failing["name"] = json!("red");
    let failing = create(&daemon, &failing);
    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    let needs = browser.wait_text("#needs", "both runs in Needs you", |t| {
        t.contains("to-merge") && t.contains("red")
    });
    let kinds = browser.js(
        "return [...document.querySelectorAll('#needs li[data-run]')].map((li) => [li.dataset.run, li.dataset.need]);",
    );
    assert_eq!(
        kinds,
        json!([[failing, "failed"], [done, "merge"]]),
        "{needs}"
    );
    assert_eq!(browser.text("#needs-count").as_deref(), Some("2"));
    assert!(needs.contains("awaits review and merge"), "{needs}");
    // An ended run is in no phase: the column says so, never its exit reason.
    for id in [&done, &failing] {
        assert_eq!(
            browser
                .text(&format!("tr[data-run='{id}'] .c-phase"))
                .as_deref(),
            Some("—")
        );
    }
    // Merged (into a branch no checkout holds), it needs nobody.
    loop_testkit::git(&repo, &["branch", "release"]);
    client()
        .post(daemon.url(&format!("/runs/{done}/merge")))
        .json(&json!({"target": "release"}))
        .send()
        .expect("merge");
    browser.wait_text("#needs-count", "one left", |t| t == "1");
    assert!(
        browser
            .text(&format!("#needs li[data-run='{done}']"))
            .is_none()
    );
}
