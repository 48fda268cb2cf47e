//! The live view's lines and status line, from events built here.

use loop_core::event::{RetryCount, StepStarted};
use loop_core::{RunId, Seq, StepId, Version};

use super::*;

fn status() -> Status {
    Status {
        name: "swift-owl".to_owned(),
        status: RunStatus::Running,
        created_ms: 0,
        step: None,
        tasks_done: 0,
        tasks_total: 4,
        tokens: Tokens::default(),
        cost_usd: 0.0,
        waiting: None,
        backoff: None,
        pause_requested: false,
        merge_target: Some("main".to_owned()),
    }
}

fn record(ts_ms: i64, event: impl Into<Event>) -> EventRecord {
    EventRecord {
        seq: Seq(1),
        run_id: RunId::from_parts(1, [1; 10]),
        version: Version(2),
        ts_ms,
        schema: 1,
        event: event.into(),
    }
}

fn step() -> StepId {
    StepId::from_parts(1, [2; 10])
}

#[test]
fn a_completion_claim_claims_no_verdict_of_the_verification_after_it() {
    let claim = loop_core::event::CompletionDetected {
        iteration: 5,
        commit: Some("3d0af8766e0000000000000000000000000000ff".to_owned()),
    };
    let line = status().apply(&record(10, claim), 10).expect("a line");
    assert_eq!(line.text, "── completion claimed at 3d0af8766e");
}

#[test]
fn a_retry_says_which_of_how_many_when_and_why() {
    let mut status = status();
    let line = status
        .apply(
            &record(
                10_000,
                AgentRetry {
                    step_id: step(),
                    attempt: 4,
                    delay_ms: 60_000,
                    reason: "overloaded: API Error: Repeated 529 Overloaded errors".to_owned(),
                    count: Some(RetryCount { n: 3, of: 8 }),
                    paid: Default::default(),
                    account: None,
                    limited_until_ms: None,
                    window: None,
                    next_account: None,
                    budget: Some(loop_core::event::RetryBudget::Transient),
                },
            ),
            10_000,
        )
        .expect("a line");
    assert_eq!(
        line.text,
        "↻ retry 3/8 in 1m: overloaded: API Error: Repeated 529 Overloaded errors"
    );
    assert!(
        status
            .line(40_000)
            .starts_with("↻ retry 3/8 in 30.0s · run 40.0s")
    );
}

#[test]
fn a_usage_limit_wait_shows_its_reset_in_the_status_line() {
    let mut status = status();
    let until = 3 * 3_600_000;
    let line = status
        .apply(
            &record(
                1_000,
                AgentWaiting {
                    step_id: Some(step()),
                    until_ms: until,
                    reason: "usage limit: You've hit your session limit · resets 3am (UTC)"
                        .to_owned(),
                    paid: Default::default(),
                    account: None,
                    window: None,
                    pool_wait: None,
                },
            ),
            1_000,
        )
        .expect("a line");
    assert!(
        line.text.starts_with("⏸ usage limit until "),
        "{}",
        line.text
    );
    assert!(
        line.text.contains("left): usage limit: You've hit"),
        "{}",
        line.text
    );
    let bottom = status.line(3_600_000);
    assert!(bottom.starts_with("⏸ usage limit until "), "{bottom}");
    assert!(bottom.contains("(2h left) · run 1h"), "{bottom}");
}

/// Issue 24: the wait read "until 22:01" beside a quoted reset of 22:00:45 (the wait ends a
/// minute after it, at 22:01:45). Every view of a wait shows its end to the second, from one
/// function.
#[test]
fn a_wait_s_end_is_shown_to_the_second_the_same_in_every_view() {
    // 22:00:45 UTC plus the 60 s margin, on 1 Jan 1970; "now" is the same day.
    let end = 22 * 3_600_000 + 45_000 + 60_000;
    let waiting = Waiting::new(WaitCode::UsageLimit, "limit").until(end);
    let now = end - 125_000;
    let shown = until_in(&waiting, now, &jiff::tz::TimeZone::UTC);
    assert_eq!(shown, " until 22:01:45 UTC (2m 5s left)");
    let mut status = status();
    status.waiting = Some(waiting.clone());
    let line = wait_line(&waiting, now).text;
    let bottom = status.line(now);
    let phrase = until(&waiting, now);
    assert!(line.contains(&phrase), "{line} / {phrase}");
    assert!(bottom.contains(&phrase), "{bottom} / {phrase}");
}

#[test]
fn a_step_that_succeeded_with_a_bad_exit_says_so() {
    let mut status = status();
    status.apply(
        &record(
            0,
            StepStarted {
                step_id: step(),
                phase: Phase::Implementation,
                iteration: 1,
                attempt: 1,
                prompt_path: None,
                session_id: None,
                resumed: false,
                account: None,
            },
        ),
        0,
    );
    let finished: StepFinished = serde_json::from_value(serde_json::json!({
        "step_id": step(), "phase": "implementation", "status": "SUCCEEDED",
        "exit_code": 1, "duration_ms": 4000, "tasks_done": 1, "tasks_total": 4,
        "cost_usd": 0.6, "tokens": {"input": 1000, "output": 200},
        "message": "the agent exited with status 1 after its answer; the answer was kept"
    }))
    .expect("a payload");
    let line = status
        .apply(&record(4_000, finished), 4_000)
        .expect("a line");
    assert_eq!(
        line.text,
        "✓ implementation succeeded in 4.0s · 1/4 tasks · $0.60 · the agent exited 1 after \
         its answer (the answer is kept)"
    );
    assert_eq!(
        status.line(5_000),
        "between steps · run 5.0s · 1.2k tokens · $0.60 · 1/4 tasks"
    );
}

#[test]
fn a_merge_that_did_not_land_says_what_to_run() {
    let mut status = status();
    let line = status
        .apply(
            &record(
                0,
                MergeFinished {
                    strategy: "squash".to_owned(),
                    commit: None,
                    conflict: Some("target_dirty: main has changes".to_owned()),
                },
            ),
            0,
        )
        .expect("a line");
    assert_eq!(
        line.text,
        "✗ the merge into main did not land: target_dirty: main has changes; `loopctl merge \
         swift-owl` tries again"
    );
}

#[test]
fn every_wait_the_view_reports_gets_one_line() {
    let mut status = status();
    let mut view_wait = |code, reason: &str| {
        let waiting = Waiting::new(code, reason.to_owned());
        let mut view: RunView = serde_json::from_value(serde_json::json!({
            "id": RunId::from_parts(1, [1; 10]), "name": "swift-owl", "name_source": "haiku",
            "status": "RUNNING", "workspace_root": "/w", "spec_path": "s", "plan_path": "p",
            "created_at": "", "updated_at": "", "created_ms": 0, "updated_ms": 0,
            "worktree": {"base_branch": null, "run_branch": null,
                "merge_target_branch": null, "merge_strategy": "squash",
                "worktree_path": null, "provider": null, "removed": false},
            "iteration": 1, "tasks_done": 0, "tasks_total": 4, "current_step": null,
            "exit_reason": null, "failure_reason": null, "cost_usd": 0.0,
            "postmortem": null, "last_seq": 1, "version": 1
        }))
        .expect("a view");
        view.waiting = Some(waiting);
        status.view(&view, 0)
    };
    let held = view_wait(WaitCode::AccountLimit, "account team is held (usage limit)");
    assert_eq!(
        held.expect("a line").text,
        "⏸ account hold: account team is held (usage limit)"
    );
    assert_eq!(
        view_wait(WaitCode::AccountLimit, "account team is held (usage limit)"),
        None,
        "the same wait is said once"
    );
    assert!(view_wait(WaitCode::AccountTurn, "its turn").is_some());
}
