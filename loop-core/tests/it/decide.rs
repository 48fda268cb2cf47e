//! `decide`, command by command: what it emits, and why it refuses, in words naming the state.

use std::collections::BTreeMap;

use loop_core::event::{
    AgentWaiting, CompletionDetected, CompletionRejected, DiffSide, ExitReason, MergeFinished,
    Phase, PostmortemEnd, PostmortemStart, PostmortemStatus, ReviewAction, ReviewComment,
    RunCanceled, RunCompleted, RunCreated, RunFailed, RunPaused, StepFinished, StepStarted,
    StepStatus, VerificationCommand, WatchdogRewrite, WatchdogSignal, WorktreeCreated,
    WorktreeProviderSelected,
};
use loop_core::{Command, DomainError, Event, EventType, RunStatus, StepId, Version, decide};

use crate::generate::{self, Driver, T0};

mod review;

fn created() -> RunCreated {
    RunCreated {
        name: "tidy-parser".into(),
        name_source: Default::default(),
        workspace_root: "/work/demo".into(),
        spec_path: "specs/parser.md".into(),
        plan_path: "IMPLEMENTATION_PLAN.md".into(),
        config: BTreeMap::new(),
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    }
}

fn step(n: u8) -> StepId {
    StepId::from_parts(T0 as u64, [0x33, n, 0, 0, 0, 0, 0, 0, 0, 0])
}

fn start(step_id: StepId, phase: Phase) -> Command {
    Command::StartStep(StepStarted {
        step_id,
        phase,
        iteration: 1,
        attempt: 1,
        prompt_path: None,
        session_id: Default::default(),
        resumed: Default::default(),
        account: None,
    })
}

fn finished(step_id: StepId, phase: Phase, status: StepStatus) -> StepFinished {
    StepFinished {
        exit_code: Some(0),
        duration_ms: 1_000,
        ..generate::finished_payload(step_id, phase, status)
    }
}

fn finish(step_id: StepId, phase: Phase) -> Command {
    Command::FinishStep(finished(step_id, phase, StepStatus::Succeeded))
}

fn complete() -> Command {
    Command::Complete(RunCompleted {
        exit_reason: ExitReason::CompletePlan,
        completed_iteration: 1,
    })
}

fn fail(at_ms: i64) -> Command {
    Command::Fail {
        exit_reason: ExitReason::ClaudeFailed,
        reason: "agent exited 1".into(),
        cause: None,
        at_ms,
    }
}

fn cancel(at_ms: i64) -> Command {
    Command::Cancel {
        reason: Some("asked to".into()),
        at_ms,
    }
}

/// A run driven through `commands`, each one second after the last; every one must succeed.
fn run(commands: impl IntoIterator<Item = Command>) -> Driver {
    let mut driver = Driver::new(generate::run_id());
    for command in commands {
        driver.now += 1_000;
        let name = format!("{command:?}");
        driver
            .submit(command)
            .unwrap_or_else(|error| panic!("setup command {name} refused: {error}"));
    }
    driver
}

fn running() -> Driver {
    run([Command::Create(created()), Command::Start])
}

/// A running run whose implementation step 1 started at `T0 + 3_000`.
fn with_open_step() -> Driver {
    let driver = run([
        Command::Create(created()),
        Command::Start,
        start(step(1), Phase::Implementation),
    ]);
    assert_eq!(
        driver.state.open_step().map(|s| s.started_ms),
        Some(T0 + 3_000)
    );
    driver
}

fn ended_by(ending: &str) -> Driver {
    let last = match ending {
        "complete" => complete(),
        "fail" => fail(T0 + 10_000),
        "cancel" => cancel(T0 + 10_000),
        other => unreachable!("no ending {other}"),
    };
    run([Command::Create(created()), Command::Start, last])
}

fn types(events: &[Event]) -> Vec<EventType> {
    events.iter().map(Event::event_type).collect()
}

#[test]
fn rejects_resume_of_completed_run() {
    let driver = ended_by("complete");
    let error = decide(&driver.state, Command::Resume).unwrap_err();
    assert_eq!(
        error,
        DomainError::IllegalInState {
            action: "resume",
            status: RunStatus::Completed
        }
    );
    assert!(error.to_string().contains("COMPLETED"), "{error}");
    assert_eq!(error.to_string(), "cannot resume a run that is COMPLETED");
}

#[test]
fn rejects_work_after_each_terminal_event() {
    let work: Vec<(&str, Command)> = vec![
        ("start a step", start(step(9), Phase::Implementation)),
        ("complete", complete()),
        ("start", Command::Start),
        (
            "pause",
            Command::Pause {
                reason: None,
                at_ms: T0 + 20_000,
            },
        ),
        ("resume", Command::Resume),
        ("cancel", cancel(T0 + 20_000)),
        ("fail", fail(T0 + 20_000)),
        (
            "detect completion",
            Command::DetectCompletion(CompletionDetected {
                iteration: 1,
                commit: None,
            }),
        ),
        (
            "reject completion",
            Command::RejectCompletion(CompletionRejected {
                iteration: 1,
                reason: "tasks left".into(),
            }),
        ),
        (
            "record a watchdog signal",
            Command::RecordWatchdogSignal(WatchdogSignal {
                iteration: 1,
                signal: "stalled".into(),
                detail: String::new(),
            }),
        ),
        (
            "rewrite the prompt",
            Command::RewritePrompt(WatchdogRewrite {
                signal: "stalled".into(),
                prompt_before: "prompt.txt".into(),
                prompt_after: "prompt.rewrite.1.txt".into(),
            }),
        ),
        (
            "select a worktree provider",
            Command::SelectWorktreeProvider(WorktreeProviderSelected {
                provider: "git".into(),
            }),
        ),
        (
            "create a worktree",
            Command::CreateWorktree(WorktreeCreated {
                provider: "git".into(),
                path: "/tmp/wt".into(),
                base_branch: "main".into(),
                run_branch: "loop/x".into(),
                reused: false,
            }),
        ),
        (
            "wait on a usage limit",
            Command::RecordWait(AgentWaiting {
                step_id: None,
                until_ms: T0 + 60_000,
                reason: "usage limit".into(),
                paid: Default::default(),
                account: None,
                window: None,
                pool_wait: None,
            }),
        ),
        (
            "merge",
            Command::Merge(MergeFinished {
                strategy: "squash".into(),
                commit: Some("abc123".into()),
                conflict: None,
            }),
        ),
    ];
    for (ending, status) in [
        ("complete", RunStatus::Completed),
        ("fail", RunStatus::Failed),
        ("cancel", RunStatus::Canceled),
    ] {
        let driver = ended_by(ending);
        assert_eq!(driver.state.status(), Some(status));
        for (action, command) in &work {
            let error = decide(&driver.state, command.clone()).unwrap_err();
            assert_eq!(
                error,
                DomainError::IllegalInState { action, status },
                "{action} after {ending}"
            );
            assert_eq!(
                error.to_string(),
                format!("cannot {action} a run that is {status}")
            );
        }
        let retry = decide(&driver.state, Command::Retry);
        if matches!(status, RunStatus::Failed | RunStatus::Canceled) {
            assert_eq!(types(&retry.unwrap()), [EventType::RunRetried]);
        } else {
            assert_eq!(
                retry,
                Err(DomainError::IllegalInState {
                    action: "retry",
                    status
                })
            );
        }
    }
}

#[test]
fn retry_returns_a_failed_run_to_pending() {
    let mut driver = ended_by("fail");
    driver.submit(Command::Retry).unwrap();
    assert_eq!(driver.state.status(), Some(RunStatus::Pending));
    driver.submit(Command::Start).unwrap();
    assert_eq!(driver.state.status(), Some(RunStatus::Running));
}

#[test]
fn rejects_commands_before_the_run_is_created() {
    let driver = Driver::new(generate::run_id());
    let error = decide(&driver.state, Command::Start).unwrap_err();
    assert_eq!(
        error,
        DomainError::NotCreated {
            event: EventType::RunStarted
        }
    );
    assert_eq!(
        error.to_string(),
        "run does not exist yet: RUN_STARTED cannot come before RUN_CREATED"
    );
}

#[test]
fn rejects_a_second_create() {
    let driver = running();
    assert_eq!(
        decide(&driver.state, Command::Create(created())),
        Err(DomainError::AlreadyCreated {
            run_id: generate::run_id()
        })
    );
}

#[test]
fn rejects_finishing_a_step_twice() {
    let mut driver = with_open_step();
    driver
        .submit(finish(step(1), Phase::Implementation))
        .unwrap();
    let error = decide(&driver.state, finish(step(1), Phase::Implementation)).unwrap_err();
    assert_eq!(error, DomainError::StepAlreadyFinished { step_id: step(1) });
    assert_eq!(
        error.to_string(),
        format!("step {} already finished", step(1))
    );
}

#[test]
fn rejects_starting_a_step_while_one_is_open() {
    let driver = with_open_step();
    let error = decide(&driver.state, start(step(2), Phase::Review)).unwrap_err();
    assert_eq!(
        error,
        DomainError::StepOpen {
            action: "start a step",
            open: step(1)
        }
    );
    assert_eq!(
        error.to_string(),
        format!("cannot start a step: step {} is still open", step(1))
    );
}

#[test]
fn rejects_starting_a_finished_step_again() {
    let mut driver = with_open_step();
    driver
        .submit(finish(step(1), Phase::Implementation))
        .unwrap();
    assert_eq!(
        decide(&driver.state, start(step(1), Phase::Implementation)),
        Err(DomainError::StepAlreadyStarted { step_id: step(1) })
    );
}

#[test]
fn rejects_finishing_a_step_that_is_not_open() {
    let driver = with_open_step();
    assert_eq!(
        decide(&driver.state, finish(step(2), Phase::Implementation)),
        Err(DomainError::OtherStepOpen {
            step_id: step(2),
            open: step(1)
        })
    );
    let driver = running();
    assert_eq!(
        decide(&driver.state, finish(step(2), Phase::Implementation)),
        Err(DomainError::NoOpenStep { step_id: step(2) })
    );
}

#[test]
fn rejects_finishing_a_step_as_another_phase() {
    let driver = with_open_step();
    let error = decide(&driver.state, finish(step(1), Phase::Review)).unwrap_err();
    assert_eq!(
        error,
        DomainError::PhaseMismatch {
            step_id: step(1),
            open: "implementation",
            given: "review"
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("implementation") && message.contains("review"),
        "{message}"
    );
}

#[test]
fn rejects_finishing_a_step_with_an_open_status() {
    let driver = with_open_step();
    for status in [StepStatus::Queued, StepStatus::InProgress] {
        assert_eq!(
            decide(
                &driver.state,
                Command::FinishStep(finished(step(1), Phase::Implementation, status))
            ),
            Err(DomainError::NotFinal {
                status: status.as_str()
            })
        );
    }
}

#[test]
fn rejects_verification_commands_outside_a_verification_step() {
    let driver = with_open_step();
    let command = Command::RecordVerification(VerificationCommand {
        step_id: step(1),
        command: "cargo test".into(),
        exit_code: Some(0),
        duration_ms: 10,
    });
    assert_eq!(
        decide(&driver.state, command),
        Err(DomainError::PhaseMismatch {
            step_id: step(1),
            open: "implementation",
            given: "verification"
        })
    );
}

#[test]
fn rejects_completing_or_merging_while_a_step_is_open() {
    let driver = with_open_step();
    assert_eq!(
        decide(&driver.state, complete()),
        Err(DomainError::StepOpen {
            action: "complete",
            open: step(1)
        })
    );
    let merge = Command::Merge(MergeFinished {
        strategy: "squash".into(),
        commit: None,
        conflict: None,
    });
    assert_eq!(
        decide(&driver.state, merge),
        Err(DomainError::StepOpen {
            action: "merge",
            open: step(1)
        })
    );
}

#[test]
fn pause_with_an_open_step_cancels_it_first() {
    let driver = with_open_step();
    let at_ms = T0 + 7_500;
    let events = decide(
        &driver.state,
        Command::Pause {
            reason: Some("operator".into()),
            at_ms,
        },
    )
    .unwrap();
    assert_eq!(
        events,
        vec![
            Event::StepFinished(StepFinished {
                duration_ms: 4_500,
                message: Some("step canceled".into()),
                ..generate::finished_payload(step(1), Phase::Implementation, StepStatus::Canceled)
            }),
            Event::RunPaused(RunPaused {
                reason: Some("operator".into())
            }),
        ]
    );
}

#[test]
fn pause_without_an_open_step_only_pauses() {
    let driver = running();
    let events = decide(
        &driver.state,
        Command::Pause {
            reason: None,
            at_ms: T0 + 5_000,
        },
    )
    .unwrap();
    assert_eq!(events, vec![Event::RunPaused(RunPaused { reason: None })]);
}

#[test]
fn pause_stamped_before_the_step_started_records_zero_duration() {
    let driver = with_open_step();
    let events = decide(
        &driver.state,
        Command::Pause {
            reason: None,
            at_ms: T0,
        },
    )
    .unwrap();
    let Event::StepFinished(closed) = &events[0] else {
        panic!("expected the open step to close first: {events:?}");
    };
    assert_eq!(closed.duration_ms, 0);
}

#[test]
fn cancel_and_fail_close_the_open_step_first() {
    for (command, status, last) in [
        (
            cancel(T0 + 9_000),
            StepStatus::Canceled,
            Event::RunCanceled(RunCanceled {
                reason: Some("asked to".into()),
            }),
        ),
        (
            fail(T0 + 9_000),
            StepStatus::Failed,
            Event::RunFailed(RunFailed {
                exit_reason: ExitReason::ClaudeFailed,
                reason: "agent exited 1".into(),
                cause: None,
            }),
        ),
    ] {
        let driver = with_open_step();
        let events = decide(&driver.state, command).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        let Event::StepFinished(closed) = &events[0] else {
            panic!("expected the open step to close first: {events:?}");
        };
        assert_eq!(
            (closed.step_id, closed.status, closed.duration_ms),
            (step(1), status, 6_000)
        );
        assert_eq!(events[1], last);
    }
}

#[test]
fn recover_closes_the_open_step_as_interrupted() {
    let mut driver = with_open_step();
    driver.now = T0 + 60_000;
    let records = driver
        .submit(Command::Recover { at_ms: T0 + 60_000 })
        .unwrap();
    assert_eq!(records.len(), 1);
    let Event::StepFinished(closed) = &records[0].event else {
        panic!("expected STEP_FINISHED: {records:?}");
    };
    assert_eq!(closed.step_id, step(1));
    assert_eq!(closed.status, StepStatus::Interrupted);
    assert_eq!(closed.duration_ms, 57_000);
    assert_eq!(closed.message.as_deref(), Some("step interrupted"));
    assert!(driver.state.open_step().is_none());
    assert_eq!(driver.state.status(), Some(RunStatus::Running));
}

#[test]
fn recover_is_a_no_op_without_an_open_step() {
    for driver in [
        Driver::new(generate::run_id()),
        running(),
        ended_by("complete"),
        ended_by("fail"),
    ] {
        assert_eq!(
            decide(&driver.state, Command::Recover { at_ms: T0 + 60_000 }),
            Ok(vec![])
        );
    }
}

#[test]
fn postmortem_runs_once_at_a_time_and_only_after_the_end() {
    let start_postmortem = || {
        Command::StartPostmortem(PostmortemStart {
            reason: "run completed".into(),
        })
    };
    let end_postmortem = || {
        Command::EndPostmortem(PostmortemEnd {
            status: PostmortemStatus::Ok,
            reason: None,
            paid: Default::default(),
        })
    };
    assert_eq!(
        decide(&running().state, start_postmortem()),
        Err(DomainError::IllegalInState {
            action: "start a postmortem of",
            status: RunStatus::Running
        })
    );
    let mut driver = ended_by("complete");
    assert_eq!(
        decide(&driver.state, end_postmortem()),
        Err(DomainError::NoPostmortem)
    );
    driver.submit(start_postmortem()).unwrap();
    assert_eq!(
        decide(&driver.state, start_postmortem()),
        Err(DomainError::PostmortemRunning)
    );
    driver.submit(end_postmortem()).unwrap();
    assert!(!driver.state.postmortem_running());
    assert_eq!(driver.state.version(), Version(5));
}
