//! The live view's lines for what a run does besides its steps, on a pseudo-terminal
//! (`rexpect`), each provoked by the stub agents as a real run would meet it: a watchdog
//! rewrite, a rejected completion (and the end line of a run out of iterations), an agent that
//! exits 1 after its answer, an account hold and a budget stop. Each test waits for its line
//! and fails when it is not printed.

use std::time::Duration;

use rexpect::process::wait::WaitStatus;
use rexpect::session::PtySession;

use crate::daemon::{Project, stub};
use crate::support::text;
use crate::terminal::{claude_project_with, expect, on_terminal};

/// `loopctl run --follow` of the feature spec in the workspace itself, on a terminal.
fn follow(project: &Project) -> PtySession {
    on_terminal(
        project,
        &["run", "specs/feature.md", "--no-worktree", "--follow"],
    )
}

/// The exit status of loopctl once its terminal is closed.
fn exit_status(mut session: PtySession) -> i32 {
    session.exp_eof().expect("loopctl ends");
    match session.process.wait().expect("exit status") {
        WaitStatus::Exited(_, code) => code,
        other => panic!("loopctl ended so: {other:?}"),
    }
}

#[test]
fn a_watchdog_rewrite_shows_on_the_terminal() {
    // idle.sh answers "Nothing to do here." every time: the watchdog's no-progress signal.
    let project = Project::new(&stub("idle.sh"), 2);
    let mut session = follow(&project);
    expect(&mut session, "── implementation · iteration 1 · attempt 1");
    expect(
        &mut session,
        "⚠ watchdog (no_progress): the prompt is rewritten for the next iterations \
         (prompt.rewrite.1.txt)",
    );
    expect(&mut session, "── implementation · iteration 2 · attempt 1");
    // The second iteration's answer also repeats the first's.
    let second = expect(&mut session, "(prompt.rewrite.2.txt)");
    assert!(second.contains("⚠ watchdog ("), "{second:?}");
    let end = expect(&mut session, " after 2 prompt rewrites");
    assert!(end.contains("✗ failed: watchdog: "), "{end:?}");
    assert_eq!(exit_status(session), 1);
}

#[test]
fn a_rejected_completion_an_exit_1_after_the_answer_and_the_end_line_show_on_the_terminal() {
    // Verification never passes: the first call ticks the plan's one task and exits 1 after its
    // answer (as some Claude Code versions do when an MCP server fails at shutdown), the second
    // claims completion with nothing left, and the claim is rejected; then the iterations are
    // spent with every task checked.
    let project = claude_project_with(
        1,
        &["exit1", "task"],
        "verify_cmds=test -f never-there\niterations=2\n",
    );
    let mut session = follow(&project);
    expect(&mut session, "── implementation · iteration 1 · attempt 1");
    expect(&mut session, "✓ implementation succeeded in");
    expect(&mut session, " · the agent exited 1 after its answer");
    expect(&mut session, "✗ `test -f never-there` exit 1 in");
    expect(&mut session, "── implementation · iteration 2 · attempt 1");
    expect(&mut session, "── completion claimed");
    expect(
        &mut session,
        "✗ completion rejected: verification did not pass; the loop goes on",
    );
    // The end says what the log says is missing, not "without completing the plan" beside
    // "1/1 tasks".
    expect(
        &mut session,
        "✗ failed: 2 iterations ran; every task of the plan is checked, but verification did \
         not pass",
    );
    expect(
        &mut session,
        "FAILED: 2 iterations ran; every task of the plan is checked, but verification did not \
         pass; 1/1 tasks, 2 iterations",
    );
    assert_eq!(exit_status(session), 1);
}

#[test]
fn a_budget_stop_shows_on_the_terminal() {
    // Each call of the stub costs $0.60; the cap is $0.50.
    let project = claude_project_with(3, &["task", "task"], "max_cost_usd=0.5\n");
    let mut session = follow(&project);
    expect(&mut session, "✓ implementation succeeded in");
    expect(
        &mut session,
        "✗ budget stop: $0.60 spent, the cap is $0.50: agent cost $0.60 reached max_cost_usd \
         $0.50",
    );
    assert_eq!(exit_status(session), 1);
    let run = project.json(&["inspect", "feature"]);
    assert_eq!(run["run"]["exit_reason"], "budget_exhausted", "{run}");
}

#[test]
fn an_account_hold_shows_on_the_terminal() {
    // Two runs share the account `team` (the stub keeps its calls in one directory, limited
    // for three hours): the first meets the limit, and the account then holds the second
    // before it makes any call.
    let project = claude_project_with(1, &[], "account=team\n");
    let account = tempfile::tempdir().expect("account dir");
    let reset_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
        + 3 * 3600;
    std::fs::write(account.path().join("limited"), reset_s.to_string()).expect("limit");
    std::fs::write(
        project.root().join(".stub-account"),
        account.path().to_string_lossy().as_bytes(),
    )
    .expect("stub account");
    let first = project.create(&["--name", "first"]);
    crate::daemon::until("the first run waits", Duration::from_secs(30), || {
        project.json(&["inspect", &first])["run"]["waiting"]["code"] == "usage_limit"
    });
    let canceled = project.loopctl(&["cancel", &first]);
    assert_eq!(
        canceled.status.code(),
        Some(0),
        "{}",
        text(&canceled.stderr)
    );

    let mut session = on_terminal(
        &project,
        &[
            "run",
            "specs/feature.md",
            "--no-worktree",
            "--name",
            "second",
            "--follow",
        ],
    );
    // The hold is under way when following starts: its line is printed all the same (the
    // status line alone said it before), with the reason.
    let hold = expect(&mut session, "left): ");
    assert!(hold.contains("⏸ account hold until "), "{hold:?}");
    expect(&mut session, "\r\n");
    let calls = std::fs::read_to_string(account.path().join("calls")).unwrap_or_default();
    assert_eq!(
        calls.lines().count(),
        1,
        "only the first run called: {calls}"
    );
    let canceled = project.loopctl(&["cancel", "second"]);
    assert_eq!(
        canceled.status.code(),
        Some(0),
        "{}",
        text(&canceled.stderr)
    );
    expect(&mut session, "✗ canceled");
    assert_eq!(exit_status(session), 1);
}
