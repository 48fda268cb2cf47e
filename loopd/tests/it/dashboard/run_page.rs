//! A run's page: its output live across a reload, its controls, its plan and verification.

use std::path::Path;

use serde_json::{Value, json};

use super::browser::{Browser, needs_browser};
use super::{create, run, slow_printer, wait_status};
use crate::support::{client, repo, run_body, start_daemon, stub, wait_for_end};

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
    browser.wait_text("#output .log", "some output", |t| t.contains("line 8\n"));
    let before = browser.text("#output .log").unwrap_or_default();
    assert!(
        !before.contains("line 60\n"),
        "the reload must come mid-run: {before}"
    );
    browser.reload();
    // What was shown is there again at once, before the stream says more.
    let restored = browser.wait_text("#output .log", "the output again", |t| {
        t.contains("line 8\n")
    });
    assert!(
        restored.starts_with(&before[..before.find("line 8\n").expect("line 8")]),
        "{restored}"
    );
    let after = browser.wait_text("#output .log", "the last line", |t| {
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
        browser.text("#output .log .tool").as_deref(),
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
fn cancel_on_the_run_page_asks_first_and_keep_it_going_changes_nothing() {
    if !needs_browser("cancel_on_the_run_page_asks_first_and_keep_it_going_changes_nothing") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = repo(dir.path(), 1);
    let daemon = start_daemon(&dir.path().join("data"), &[], &[]);
    let mut body = run_body(&repo, "one_task.sh", json!({}));
    body["config"]["agent_cmd"] = json!(slow_printer(dir.path(), 600));
    let id = create(&daemon, &body);
    wait_status(&daemon, &id, "RUNNING");
    let browser = Browser::start();
    browser.goto(&daemon.url(&format!("/#/runs/{id}")));
    browser.wait_text("#run-status", "RUNNING", |t| t == "RUNNING");
    browser.click("#control-cancel");
    browser.wait_text("#control-note", "the question", |t| {
        t.starts_with("Cancel this run?")
    });
    browser.click("#control-cancel-keep");
    browser.wait_text("#control-note", "no question", str::is_empty);
    assert_eq!(run(&daemon, &id)["status"], "RUNNING");
    browser.click("#control-cancel");
    browser.click("#control-cancel-confirm");
    browser.wait_text("#run-status", "CANCELED", |t| t == "CANCELED");
    assert_eq!(run(&daemon, &id)["status"], "CANCELED");
}
