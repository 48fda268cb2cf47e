//! Pause, resume, cancel, retry and recovery while an agent is working.

use std::sync::Arc;
use std::time::Duration;

use loop_core::event::{Event, Phase, StepStatus};
use loop_core::{RunId, RunStatus};
use loop_runtime::{Claim, Runtime, RuntimeError};
use loop_store::{EventStore, SqliteStore};

use crate::support::{agent, count, finish, request, request_without_agent, runtime, scratch};

/// Waits until the run has an implementation step in progress.
async fn wait_for_step(runtime: &Runtime, run_id: RunId) {
    for _ in 0..400 {
        let run = runtime.get(run_id).await.expect("get");
        if run
            .current_step
            .as_ref()
            .is_some_and(|s| s.phase == Phase::Implementation)
        {
            // Give the agent a moment to really be running.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no step started");
}

#[tokio::test]
async fn cancel_mid_step_records_the_step_canceled_and_ends_the_run() {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(&scratch, "sleep_once.sh", &[]))
        .await
        .expect("submit");
    wait_for_step(&runtime, run.id).await;
    let canceled = runtime.cancel(run.id).await.expect("cancel");
    assert_eq!(canceled.status, RunStatus::Canceled);
    let steps = runtime.steps(run.id).await.expect("steps");
    assert_eq!(steps.last().map(|s| s.status), Some(StepStatus::Canceled));
    // Cancel is final.
    let again = runtime
        .resume(run.id)
        .await
        .expect_err("resume after cancel");
    assert!(again.to_string().contains("CANCELED"), "{again}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn pause_stops_the_agent_and_resume_runs_the_same_iteration_again() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(&scratch, "sleep_once.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    wait_for_step(&runtime, run.id).await;
    let paused = runtime.pause(run.id).await.expect("pause");
    assert_eq!(paused.status, RunStatus::Paused);
    assert!(paused.current_step.is_none());
    let illegal = runtime.pause(run.id).await.expect_err("pause twice");
    assert!(matches!(illegal, RuntimeError::Domain(_)), "{illegal}");
    assert!(illegal.to_string().contains("PAUSED"), "{illegal}");

    runtime.resume(run.id).await.expect("resume");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = runtime.events(run.id).await.expect("events");
    let first: Vec<(u32, u32, StepStatus)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(s) if s.phase == Phase::Implementation => Some(s.status),
            _ => None,
        })
        .zip(records.iter().filter_map(|r| match &r.event {
            Event::StepStarted(s) if s.phase == Phase::Implementation => {
                Some((s.iteration, s.attempt))
            }
            _ => None,
        }))
        .map(|(status, (iteration, attempt))| (iteration, attempt, status))
        .collect();
    assert_eq!(first[0], (1, 1, StepStatus::Canceled));
    assert_eq!(first[1], (1, 2, StepStatus::Succeeded));
    // Each attempt keeps its own log: the paused one's output is still there.
    let dir = scratch
        .repo()
        .join("logs/loop")
        .join(format!("run-{}", run.id));
    let paused_log = std::fs::read_to_string(dir.join("iter-01-impl.log")).expect("first attempt");
    assert!(paused_log.contains("thinking"), "{paused_log}");
    let rerun_log =
        std::fs::read_to_string(dir.join("iter-01-impl.attempt-2.log")).expect("second");
    assert!(rerun_log.contains("DONE: task 1"), "{rerun_log}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_new_runtime_on_the_same_log_recovers_and_finishes_the_run() {
    let scratch = scratch(1);
    let first = runtime(&scratch);
    let run = first
        .submit(request(&scratch, "sleep_once.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    wait_for_step(&first, run.id).await;
    first.shutdown().await;
    drop(first);

    let second = runtime(&scratch);
    let done = finish(&second, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = second.events(run.id).await.expect("events");
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::StepFinished(s) if s.status == StepStatus::Interrupted)
        ),
        1
    );
    assert_eq!(
        count(&records, |e| matches!(e, Event::RunStarted(_))),
        1,
        "started once"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn retry_sends_a_failed_run_back_to_work() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "claims_early.sh",
            &[("iterations", "1"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let failed = finish(&runtime, run.id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    let illegal = runtime.retry(run.id).await;
    assert!(illegal.is_ok(), "retry of a FAILED run: {illegal:?}");
    let failed_again = finish(&runtime, run.id).await;
    assert_eq!(failed_again.status, RunStatus::Failed);
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(count(&records, |e| matches!(e, Event::RunRetried(_))), 1);
    // The limit counted afresh: one more iteration ran after the retry.
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::StepFinished(s) if s.phase == Phase::Implementation)
        ),
        2
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_unknown_agent_is_refused_at_submit() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let error = runtime
        .submit(request(&scratch, "one_task.sh", &[("agent", "gpt-9")]))
        .await
        .expect_err("unknown agent");
    assert!(error.to_string().contains("gpt-9"), "{error}");
    let bad = runtime
        .submit(request(&scratch, "one_task.sh", &[("iterations", "many")]))
        .await
        .expect_err("bad value");
    assert!(bad.to_string().contains("iterations"), "{bad}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn runs_of_one_workspace_take_turns_in_submission_order() {
    use loop_runtime::QueuePolicy;
    for policy in [QueuePolicy::Fifo, QueuePolicy::NewestFirst] {
        let scratch = scratch(1);
        let store = Arc::new(SqliteStore::open(scratch.db()).expect("log"));
        let runtime = Runtime::builder()
            .store(store)
            .data_dir(scratch.data_dir())
            .max_concurrency(4)
            .max_runs_per_workspace(1)
            .queue_policy(policy)
            .build()
            .expect("runtime");
        // The first claims the workspace; the next three queue behind it. The agent waits for
        // a go file until all four are submitted: the runs share the plan in place, and a first
        // run done before the last submit would leave nothing for it to do.
        let go = scratch.dir.path().join("go");
        let gated = scratch.dir.path().join("gated.sh");
        std::fs::write(
            &gated,
            format!(
                "while [ ! -f {} ]; do sleep 0.02; done\nexec {}\n",
                go.display(),
                agent("one_task.sh")
            ),
        )
        .expect("write the agent");
        let agent_cmd = format!("sh {}", gated.display());
        let mut ids = Vec::new();
        for _ in 0..4 {
            let run = runtime
                .submit(request_without_agent(
                    &scratch,
                    &[("reviewer", "false"), ("agent_cmd", agent_cmd.as_str())],
                ))
                .await
                .expect("submit");
            ids.push(run.id);
        }
        std::fs::write(&go, "").expect("go");
        for id in &ids {
            finish(&runtime, *id).await;
        }
        let mut spans: Vec<(u64, u64, RunId)> = Vec::new();
        for id in &ids {
            let records = runtime.events(*id).await.expect("events");
            let start = records
                .iter()
                .find(|r| matches!(r.event, Event::RunStarted(_)))
                .expect("started")
                .seq
                .0;
            let end = records
                .iter()
                .find(|r| r.event.is_terminal())
                .expect("ended")
                .seq
                .0;
            spans.push((start, end, *id));
        }
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 < pair[1].0,
                "{policy:?}: runs overlapped: {spans:?}"
            );
        }
        let order: Vec<RunId> = spans.iter().map(|s| s.2).collect();
        // Whichever run the scheduler claimed at the first submit goes first; the queued rest
        // follow the policy.
        let queued: Vec<RunId> = order[1..].to_vec();
        let mut expected: Vec<RunId> = ids.iter().copied().filter(|id| *id != order[0]).collect();
        if policy == QueuePolicy::NewestFirst {
            expected.reverse();
        }
        assert_eq!(queued, expected, "{policy:?}");
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn no_driver_takes_a_run_while_it_is_being_paused() {
    // An agent that ignores SIGTERM: stopping it takes the full grace before SIGKILL, and in
    // that window the run still says RUNNING. Another submission wakes the scheduler then; it
    // must not take the run for a crashed one and start a second driver on it.
    let scratch = scratch(2);
    let stubborn = scratch.dir.path().join("stubborn.sh");
    std::fs::write(
        &stubborn,
        "trap '' TERM\ncat > /dev/null\nwhile :; do sleep 0.1; done\n",
    )
    .expect("stub");
    let runtime = runtime(&scratch);
    let mut first = request(&scratch, "one_task.sh", &[("reviewer", "false")]);
    first.config.insert(
        "agent_cmd".to_owned(),
        format!("exec sh {}", stubborn.display()),
    );
    let run = runtime.submit(first).await.expect("submit");
    wait_for_step(&runtime, run.id).await;

    let other = crate::support::scratch(1);
    let (paused, _) = tokio::join!(runtime.pause(run.id), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        runtime
            .submit(request(&other, "one_task.sh", &[("reviewer", "false")]))
            .await
            .expect("submit another")
    });
    assert_eq!(paused.expect("pause").status, RunStatus::Paused);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let records = runtime.events(run.id).await.expect("events");
    let started = count(&records, |e| matches!(e, Event::StepStarted(_)));
    let interrupted = count(
        &records,
        |e| matches!(e, Event::StepFinished(step) if step.status == StepStatus::Interrupted),
    );
    assert_eq!(
        (started, interrupted),
        (1, 0),
        "a second driver took the run"
    );
    assert_eq!(
        runtime.get(run.id).await.expect("get").status,
        RunStatus::Paused
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_pause_recorded_under_a_working_driver_leaves_the_run_paused_not_failed() {
    // Another node pauses a run this runtime drives: the pause is in the log (its open step
    // closed) while the driver's agent still works. When the agent ends, the driver's append is
    // refused because the run is PAUSED. That refusal must stop the driver, not fail the run:
    // the fault suite's seed 3166045006908105438 ended such a run FAILED ("the runtime failed:
    // cannot start a step a run that is PAUSED").
    let scratch = scratch(2);
    let store: Arc<dyn EventStore> = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    let driving = Runtime::builder()
        .store(Arc::clone(&store))
        .data_dir(scratch.data_dir())
        .build()
        .expect("driving runtime");
    // The other node: the same log, driving nothing.
    let other = Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .claim(Claim::Nothing)
        .build()
        .expect("other runtime");

    let gate = scratch.dir.path().join("gate");
    let gated = scratch.dir.path().join("gated.sh");
    std::fs::write(
        &gated,
        format!(
            "while [ ! -f '{}' ]; do sleep 0.05; done\nexec {}\n",
            gate.display(),
            agent("one_task.sh")
        ),
    )
    .expect("agent");
    let mut request = request(&scratch, "one_task.sh", &[("reviewer", "false")]);
    request
        .config
        .insert("agent_cmd".to_owned(), format!("sh {}", gated.display()));
    let run = driving.submit(request).await.expect("submit");
    wait_for_step(&driving, run.id).await;

    let paused = other
        .pause(run.id)
        .await
        .expect("pause through the other runtime");
    assert_eq!(paused.status, RunStatus::Paused);
    std::fs::write(&gate, "").expect("open the gate");

    // The driver's agent ends, its append is refused; give it time to act on that.
    for _ in 0..200 {
        if driving.running_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = driving.events(run.id).await.expect("events");
    let view = driving.get(run.id).await.expect("get");
    assert_eq!(
        view.status,
        RunStatus::Paused,
        "{:?}",
        crate::support::types(&records)
    );
    assert_eq!(count(&records, |e| matches!(e, Event::RunFailed(_))), 0);
    driving.shutdown().await;
    other.shutdown().await;
}
