//! What a person sees in a terminal, on a pseudo-terminal (`rexpect`): the status line drawn in
//! place, and a line for a 529 retry and a usage-limit wait, from a stub agent that prints what
//! real Claude Code printed (`claude_stub.sh` modes `overloaded_real` and `limit_real`, verbatim
//! from `loop-core/tests/data/agents/real/claude/`, sources noted there). The same run through
//! pipes gets plain lines and no status line.

use std::time::Duration;

use rexpect::session::{PtySession, spawn_command};

use crate::daemon::{Project, start_daemon};
use crate::support::text;

/// A repository whose agent is the strict Claude Code stub, with retries a second apart.
pub fn claude_project(tasks: usize, plan: &[&str]) -> Project {
    claude_project_with(tasks, plan, "")
}

/// [`claude_project`] with `extra` lines in its `.loop/config`.
pub fn claude_project_with(tasks: usize, plan: &[&str], extra: &str) -> Project {
    let config = format!(
        "agent=claude\nclaude_bin={}\nreviewer=false\npostmortem=never\n\
         run_naming_mode=spec_slug\ntransient_backoff_sec=1\n{extra}",
        loop_testkit::agents::path("claude_stub.sh").display()
    );
    let scratch = loop_testkit::Scratch::with(|repo| repo.tasks(tasks).config(&config));
    std::fs::write(scratch.repo().join(".stub-plan"), plan.join("\n") + "\n").expect("stub plan");
    let daemon = start_daemon(&scratch.data_dir(), "127.0.0.1:0", &[]);
    Project { scratch, daemon }
}

/// `loopctl args…` on a pseudo-terminal of its own, in the project, the clock in UTC.
pub fn on_terminal(project: &Project, args: &[&str]) -> PtySession {
    let mut command = project.command(args);
    command.env("TZ", "UTC").env("TERM", "xterm-256color");
    spawn_command(command, Some(60_000)).expect("loopctl on a pseudo-terminal")
}

/// Waits for `what` on the terminal; the text before it. (rexpect reads the terminal a byte at
/// a time, each byte one `char`: the text is compared, and returned, in that form.)
pub fn expect(session: &mut PtySession, what: &str) -> String {
    let bytes: String = what.bytes().map(char::from).collect();
    let before = session
        .exp_string(&bytes)
        .unwrap_or_else(|error| panic!("waited for {what:?}: {error}"));
    let before: Vec<u8> = before.chars().map(|c| c as u8).collect();
    String::from_utf8_lossy(&before).into_owned()
}

#[test]
fn a_529_retry_and_a_usage_limit_wait_show_on_the_terminal_with_a_live_status_line() {
    let project = claude_project(3, &["overloaded_real", "task", "limit_real"]);
    let mut session = on_terminal(
        &project,
        &["run", "specs/feature.md", "--no-worktree", "--follow"],
    );
    expect(&mut session, "── implementation · iteration 1 · attempt 1");
    // The status line, drawn in place (erase the line, then the status).
    expect(&mut session, "\x1b[2K");
    expect(&mut session, "implementation · iteration 1 · attempt 1 · ");
    expect(
        &mut session,
        "↻ retry 1/8 in 1.0s: overloaded (API Error: 529 Overloaded.",
    );
    expect(&mut session, "✓ implementation succeeded in");
    expect(&mut session, "1/3 tasks");
    // The real CLI's words on a session limit, and when the run goes on, in the person's zone.
    let before = expect(
        &mut session,
        "You've hit your session limit · resets 12:30pm (Asia/Tokyo)",
    );
    assert!(before.contains("⏸ usage limit until "), "{before:?}");
    // The run goes on a minute after the reset (12:30 JST is 03:30 UTC), and the line says both.
    assert!(before.contains(" 03:31:00 UTC ("), "{before:?}");
    assert!(
        before.contains("T03:30:00.000Z, so trying again at ")
            && before.contains("T03:31:00.000Z (60s margin)"),
        "{before:?}"
    );
    // While it waits, the status line says so and counts down.
    expect(&mut session, "\x1b[2K");
    let status = expect(&mut session, "left) · run ");
    assert!(status.contains("⏸ usage limit until "), "{status:?}");
    assert!(status.contains(" 03:31:00 UTC ("), "{status:?}");

    // A pause asked for during a wait takes effect at once: no call is in flight.
    let paused = project.loopctl(&["pause", "feature"]);
    assert_eq!(paused.status.code(), Some(0), "{}", text(&paused.stderr));
    expect(
        &mut session,
        "⏸ paused; `loopctl resume feature` goes on from here",
    );
    let canceled = project.loopctl(&["cancel", "feature"]);
    assert_eq!(
        canceled.status.code(),
        Some(0),
        "{}",
        text(&canceled.stderr)
    );
    expect(&mut session, "✗ canceled");
    expect(&mut session, "next: `loopctl retry feature` runs it again");
    session.exp_eof().expect("loopctl ends");
    match session.process.wait().expect("exit status") {
        rexpect::process::wait::WaitStatus::Exited(_, code) => assert_eq!(code, 1),
        other => panic!("loopctl ended so: {other:?}"),
    }
}

#[test]
fn through_pipes_the_same_run_gets_plain_lines_and_no_status_line() {
    let project = claude_project(2, &["overloaded_real", "task", "task"]);
    let output = project.loopctl(&["run", "specs/feature.md", "--no-worktree", "--follow"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("↻ retry 1/8 in 1.0s: overloaded (API Error: 529 Overloaded."),
        "{stderr}"
    );
    assert!(stderr.contains("✓ implementation succeeded in"), "{stderr}");
    assert!(stderr.contains("✓ completed (complete_plan)"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains("\x1b["),
        "{stderr:?}"
    );
}

#[test]
fn a_paused_run_waits_for_its_step_and_pause_now_stops_it() {
    let project = claude_project(2, &["quiet:6", "quiet:30"]);
    let id = project.create(&[]);
    loop_testkit::until("the first call runs", Duration::from_secs(30), || {
        project
            .scratch
            .repo()
            .join("logs/loop")
            .read_dir()
            .is_ok_and(|mut dirs| {
                dirs.next()
                    .is_some_and(|dir| dir.is_ok_and(|d| d.path().join("claude-args").exists()))
            })
    });
    let asked = project.json(&["pause", &id]);
    assert_eq!(asked["run"]["status"], "RUNNING", "{asked}");
    assert_eq!(asked["run"]["pause_requested"], true, "{asked}");
    loop_testkit::until("the run pauses", Duration::from_secs(30), || {
        project.json(&["inspect", &id])["run"]["status"] == "PAUSED"
    });
    let inspect = project.json(&["inspect", &id]);
    let steps = inspect["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{inspect}");
    assert_eq!(
        steps[0]["status"], "SUCCEEDED",
        "the step in flight finished: {inspect}"
    );
    assert_eq!(inspect["run"]["tasks_done"], 1, "{inspect}");

    // Resumed, the next call runs; `--now` stops it.
    project.json(&["resume", &id]);
    loop_testkit::until("the second call runs", Duration::from_secs(30), || {
        project.json(&["inspect", &id])["steps"]
            .as_array()
            .is_some_and(|steps| steps.len() == 2)
    });
    let now = project.json(&["pause", &id, "--now"]);
    assert_eq!(now["run"]["status"], "PAUSED", "{now}");
    let steps = project.json(&["inspect", &id])["steps"].clone();
    assert_eq!(steps[1]["status"], "CANCELED", "{steps}");
    // A canceled run can be retried.
    project.json(&["cancel", &id]);
    let retried = project.json(&["retry", &id]);
    assert!(
        matches!(
            retried["run"]["status"].as_str(),
            Some("PENDING" | "RUNNING")
        ),
        "{retried}"
    );
    project.json(&["cancel", &id]);
}
