//! Whole runs, from submit to their end.

use loop_core::event::{Event, ExitReason, Phase, StepStatus};
use loop_core::projection::Export;
use loop_core::{RunState, RunStatus};

use crate::support::{count, finish, request, runtime, scratch, types};

#[tokio::test]
async fn completes_a_plan_one_task_per_iteration() {
    let scratch = scratch(3);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[("verify_cmds", "test -f work.txt")],
        ))
        .await
        .expect("submit");
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.name, "feature");

    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.exit_reason, Some(ExitReason::CompletePlan));
    assert_eq!((done.tasks_done, done.tasks_total), (3, 3));
    // Three tasks, three iterations: a finished, verified plan completes the run without an
    // iteration (paid for) that only says so.
    assert_eq!(done.iteration, 3);

    let records = runtime.events(run.id).await.expect("events");
    RunState::fold(&records).expect("the log folds");
    let finished = |phase: Phase| {
        count(
            &records,
            |e| matches!(e, Event::StepFinished(s) if s.phase == phase && s.status == StepStatus::Succeeded),
        )
    };
    assert_eq!(finished(Phase::Implementation), 3);
    assert_eq!(finished(Phase::Review), 3);
    assert_eq!(finished(Phase::Verification), 3);
    assert!(
        types(&records).ends_with(&["COMPLETION_DETECTED", "RUN_COMPLETED"])
            || types(&records).contains(&"RUN_COMPLETED")
    );

    // The run directory holds the step logs and the projections, equal to an export.
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    for name in [
        "prompt.txt",
        "review-prompt.txt",
        "iter-01-impl.log",
        "iter-01-impl.tail.txt",
        "iter-01-review.log",
        "iter-01-verify.log",
    ] {
        assert!(dir.join(name).is_file(), "{name} in {}", dir.display());
    }
    let export = Export::of(&records).expect("export");
    for (name, text) in export.files() {
        let written = std::fs::read_to_string(dir.join(name)).expect(name);
        assert_eq!(written, text, "{name} equals the export");
        let mirrored = scratch
            .data_dir()
            .join("runs")
            .join(format!("run-{}", run.id))
            .join(name);
        assert_eq!(
            std::fs::read_to_string(mirrored).expect(name),
            text,
            "mirrored {name}"
        );
    }
    let artifacts = count(&records, |e| matches!(e, Event::ArtifactWritten(_)));
    assert!(artifacts > 10, "artifacts recorded: {artifacts}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_completion_claim_with_tasks_pending_is_rejected() {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "claims_early.sh",
            &[
                ("iterations", "2"),
                ("reviewer", "false"),
                ("max_watchdog_rewrites", "5"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::IterationsExhausted));
    let records = runtime.events(run.id).await.expect("events");
    let rejected: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::CompletionRejected(e) => Some(e.reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{:?}", types(&records));
    assert!(rejected[0].contains("pending"), "{rejected:?}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_failing_verification_is_fed_back_until_it_passes() {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    // Fails until the agent has committed twice.
    let check = "test $(git rev-list --count HEAD) -ge 3";
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[("verify_cmds", check), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = runtime.events(run.id).await.expect("events");
    let verifications: Vec<StepStatus> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(s) if s.phase == Phase::Verification => Some(s.status),
            _ => None,
        })
        .collect();
    assert_eq!(verifications, [StepStatus::Failed, StepStatus::Succeeded]);
    // The prompt after the failure pointed at the notes; the pass removed them.
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    assert!(!dir.join("runner-notes.txt").exists());
    let commands = count(
        &records,
        |e| matches!(e, Event::VerificationCommand(c) if c.command == check),
    );
    assert_eq!(commands, 2);
    runtime.shutdown().await;
}

#[tokio::test]
async fn consecutive_verification_failures_fail_the_run() {
    let scratch = scratch(5);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[
                ("verify_cmds", "echo broken >&2; false"),
                ("reviewer", "false"),
                ("max_consecutive_verification_failures", "2"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::Failed));
    assert!(
        done.failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("verification failed 2 times"),
        "{done:?}"
    );
    let notes = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id))
        .join("runner-notes.txt");
    let notes = std::fs::read_to_string(notes).expect("runner notes");
    assert!(
        notes.contains("echo broken") && notes.contains("broken"),
        "{notes}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn the_watchdog_rewrites_the_prompt_then_fails_the_run() {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "idle.sh",
            &[("reviewer", "false"), ("max_watchdog_rewrites", "1")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    let reason = done.failure_reason.as_deref().unwrap_or("");
    assert!(
        reason.starts_with("watchdog:") && reason.contains("no_progress"),
        "{done:?}"
    );
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(&records, |e| matches!(e, Event::WatchdogRewrite(_))),
        1
    );
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    let rewritten = std::fs::read_to_string(dir.join("prompt.rewrite.1.txt")).expect("rewrite");
    assert!(rewritten.contains("watchdog"), "{rewritten}");
    // The prompt of the iteration after the rewrite carries the diagnosis.
    let prompt = std::fs::read_to_string(dir.join("prompt.txt")).expect("prompt");
    assert!(prompt.contains("said that nothing was done"), "{prompt}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_hung_agent_is_killed_with_its_grandchild_at_the_timeout() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "hang.sh",
            &[("claude_timeout_sec", "1"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    // A command agent is no Claude Code: it fails as itself.
    assert_eq!(done.exit_reason, Some(ExitReason::AgentFailed));
    assert!(
        done.failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("claude_timeout_sec"),
        "{done:?}"
    );
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    let pid: i32 = std::fs::read_to_string(dir.join("grandchild.pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(!alive(pid), "the grandchild {pid} outlived the step");
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_goes_quiet_is_stopped_after_the_idle_timeout() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "hang.sh",
            &[("agent_idle_timeout_sec", "1"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(
        done.failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("no output for 1 s"),
        "{done:?}"
    );
    runtime.shutdown().await;
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .split_whitespace()
            .nth(2)
            .is_none_or(|state| state != "Z"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn an_agent_printing_megabytes_of_binary_without_newlines_leaves_the_run_healthy() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(&scratch, "flood.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let steps = runtime.steps(run.id).await.expect("steps");
    assert!(steps[0].output_bytes > 8_000_000, "{:?}", steps[0]);
    let tail = std::fs::read_to_string(
        scratch
            .repo()
            .join("logs/loop")
            .join(format!("run-{}", run.id))
            .join("iter-01-impl.tail.txt"),
    )
    .expect("the tail is text");
    assert!(tail.lines().count() <= 200);
    runtime.shutdown().await;
}
