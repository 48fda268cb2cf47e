//! The board: every run live, its filters, and its queue.

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{PATIENCE, create, run, wait_status};
use crate::support::{Daemon, client, get_json, repo, run_body, start_daemon};

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
            .text(&format!("{account} td:nth-child(7)"))
            .as_deref(),
        Some("ok")
    );
    // A command agent's account is named for its whole command line: the cell shows the
    // script's name, the full name is its title.
    let name = browser.js(&format!(
        "const cell = document.querySelector(\"{account} td.c-account\"); \
         return [cell.textContent, cell.title];"
    ));
    let full = name[1].as_str().expect("a title");
    assert!(
        full.starts_with("command:sh /") && full.ends_with("/testkit/agents/sleepy.sh"),
        "{name}"
    );
    assert_eq!(name[0], "command:sh sleepy.sh", "{name}");

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

/// A run held by its account's window: the claude stub's account (in `root/acct`) reports its
/// five-hour window 20% fuller with every served call, resetting in 50 minutes; the run keeps a
/// 20% reserve, so it does four of its six tasks and waits for the reset, the window binding it.
/// Its id and the window's reset (epoch seconds).
pub fn paced_run(daemon: &Daemon, root: &std::path::Path, name: &str) -> (String, u64) {
    let repo = repo(root, 6);
    let account = root.join("acct");
    std::fs::create_dir_all(&account).expect("account dir");
    let reset_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 50 * 60;
    std::fs::write(account.join("window"), format!("0.2 {reset_s}")).expect("window");
    std::fs::write(repo.join(".stub-account"), account.to_str().expect("utf-8"))
        .expect("account marker");
    let mut body = run_body(
        &repo,
        "one_task.sh",
        json!({"account": "team-claude", "account_reserve_pct": 20}),
    );
    body["config"]["agent"] = json!("claude");
    body["config"]["claude_bin"] = json!(loop_testkit::agents::path("claude_stub.sh"));
    body["name"] = json!(name);
    (create(daemon, &body), reset_s)
}

/// "in 47m 03s" or "47m 03s" as seconds: the page's countdowns read back.
fn seconds_of(text: &str) -> Option<i64> {
    let mut total = 0;
    for part in text.trim_start_matches("in ").split_whitespace() {
        let (n, unit) = part.split_at(part.find(|c: char| !c.is_ascii_digit())?);
        let n: i64 = n.parse().ok()?;
        total += n * match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return None,
        };
    }
    Some(total)
}

#[test]
fn the_board_shows_each_account_window_counting_down_and_when_each_run_should_finish() {
    if !needs_browser(
        "the_board_shows_each_account_window_counting_down_and_when_each_run_should_finish",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let (id, reset_s) = paced_run(&daemon, dir.path(), "paced");

    let browser = Browser::start();
    browser.goto(&daemon.url("/"));
    let mut forecast = Value::Null;
    loop_testkit::until(
        "the run held at its reserve, the window binding it",
        PATIENCE,
        || {
            let answer = get_json(&daemon, "/accounts");
            forecast = answer["forecasts"]
                .as_array()
                .and_then(|all| all.iter().find(|f| f["run_id"] == json!(id)).cloned())
                .unwrap_or(Value::Null);
            forecast["binding"]["kind"] == "window" && forecast["tasks_left"] == 2
        },
    );
    assert_eq!(forecast["binding"]["window"], "five_hour", "{forecast}");
    assert_eq!(
        forecast["binding"]["resets_at_ms"],
        json!(reset_s * 1000),
        "{forecast}"
    );

    // The account's window: its share used and its reset, counting down in the page.
    let win = "#accounts tr[data-account='team-claude'] .win[data-window='five_hour']";
    browser.wait_text(&format!("{win} .label"), "the window's use", |t| t == "80%");
    let reset = |browser: &Browser| {
        let text = browser
            .text(&format!("{win} .win-reset"))
            .unwrap_or_default();
        let left = text
            .strip_prefix("resets in ")
            .and_then(seconds_of)
            .unwrap_or_else(|| panic!("a countdown: {text}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("a clock after 1970")
            .as_secs() as i64;
        (left, reset_s as i64 - now)
    };
    let (first, truth) = reset(&browser);
    assert!(
        (first - truth).abs() <= 2,
        "shown {first} s, {truth} s left"
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (second, truth) = reset(&browser);
    assert!(
        (second - truth).abs() <= 2,
        "shown {second} s, {truth} s left"
    );
    assert!(second < first, "the countdown ticks: {first} then {second}");
    // The state column says what holds the account, not the window twice.
    let state = browser
        .text("#accounts tr[data-account='team-claude'] td:nth-child(7)")
        .unwrap_or_default();
    assert!(!state.contains("five_hour"), "{state}");

    // The forecast: the run by name, its tasks left, when it should finish and what binds it.
    let row = format!("#forecasts tr[data-forecast='{id}']");
    browser.wait_text(&format!("{row} .c-binds"), "what binds first", |t| {
        t.starts_with("five_hour window of team-claude, resets in ")
    });
    assert_eq!(
        browser.text(&format!("{row} .c-name")).as_deref(),
        Some("paced")
    );
    assert_eq!(
        browser.text(&format!("{row} .c-iter")).as_deref(),
        Some("2")
    );
    let finish = browser
        .text(&format!("{row} .c-finish"))
        .unwrap_or_default();
    let finish_ms = forecast["finish_ms"].as_i64().expect("a finish");
    assert!(
        finish_ms >= reset_s as i64 * 1000,
        "after the reset: {forecast}"
    );
    let shown = finish
        .split(" (")
        .next()
        .and_then(seconds_of)
        .unwrap_or_else(|| panic!("a countdown: {finish}"));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64;
    assert!(
        (shown - (finish_ms - now_ms) / 1000).abs() <= 60,
        "{finish} against {forecast}"
    );
    assert_eq!(
        browser.js(&format!(
            "return document.querySelector(\"{row} .c-finish\").title;"
        )),
        forecast["finish"]
    );
    assert_eq!(run(&daemon, &id)["tasks_done"], 4);
    client()
        .post(daemon.url(&format!("/runs/{id}/cancel")))
        .send()
        .expect("cancel");
}
