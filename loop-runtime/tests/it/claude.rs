//! The Claude Code adapter against a stub that speaks its stream-json: backoff, usage-limit
//! waits on a test clock, cost and the budget.

use std::sync::Arc;
use std::time::Duration;

use loop_core::event::{Event, ExitReason, NameSource, Phase};
use loop_core::{RunId, RunStatus};
use loop_runtime::Runtime;
use loop_runtime::clock::{Clock, ManualClock};
use loop_store::SqliteStore;

use crate::support::{Scratch, count, finish, request_without_agent, scratch};

mod accounts;

const T0: i64 = 1_790_000_000_000;

fn claude_request(scratch: &Scratch, config: &[(&str, &str)]) -> loop_runtime::RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let stub = stub.to_string_lossy().into_owned();
    let mut all = vec![
        ("agent", "claude"),
        ("claude_bin", stub.as_str()),
        ("reviewer", "false"),
    ];
    all.extend_from_slice(config);
    let mut request = request_without_agent(scratch, &[]);
    for (key, value) in all {
        request.config.insert(key.to_owned(), value.to_owned());
    }
    request
}

fn stub_plan(scratch: &Scratch, lines: &[String]) {
    std::fs::write(scratch.repo().join(".stub-plan"), lines.join("\n") + "\n").expect("stub plan");
}

/// A runtime on a manual clock, and a task that moves the clock on by `step` every few
/// milliseconds while `moving` says so.
fn runtime_on(scratch: &Scratch, clock: &ManualClock) -> Runtime {
    runtime_running(scratch, clock, 3)
}

/// [`runtime_on`] driving up to `at_once` runs (the default is 3).
fn runtime_running(scratch: &Scratch, clock: &ManualClock, at_once: usize) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    Runtime::builder()
        .store(store)
        .data_dir(scratch.data_dir())
        .clock(Arc::new(clock.clone()))
        .max_concurrency(at_once)
        .build()
        .expect("runtime")
}

/// Makes the runs of these workspaces share the claude stub's account in `dir` (see the stub).
fn share_account(scratches: &[Scratch], dir: &std::path::Path) {
    for scratch in scratches {
        std::fs::write(
            scratch.repo().join(".stub-account"),
            dir.to_string_lossy().as_bytes(),
        )
        .expect("stub account");
    }
}

fn keep_advancing(clock: &ManualClock, step: Duration) -> tokio::task::JoinHandle<()> {
    let clock = clock.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
            clock.advance(step);
        }
    })
}

async fn events_of(runtime: &Runtime, run_id: RunId) -> Vec<loop_core::EventRecord> {
    runtime.events(run_id).await.expect("events")
}

#[tokio::test]
async fn a_plan_completes_with_cost_and_tokens_from_the_stream() {
    let scratch = scratch(2);
    stub_plan(&scratch, &[]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_on(&scratch, &clock);
    let run = runtime
        .submit(claude_request(&scratch, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    // Two tasks, two calls at $0.6: a finished, verified plan needs no call to say so.
    assert!(
        (done.cost_usd - 1.2).abs() < 1e-9,
        "two calls at $0.6: {}",
        done.cost_usd
    );
    let steps = runtime.steps(run.id).await.expect("steps");
    let tokens = steps[0].tokens.expect("tokens");
    assert_eq!((tokens.input, tokens.output), (1050, 200));
    // The text of the stream, not its JSON, is the step's log; the raw stream is kept beside it.
    let log = std::fs::read_to_string(steps[0].output_path.as_deref().expect("log")).expect("log");
    assert!(
        log.contains("Working.") && !log.contains("\"type\""),
        "{log}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn overloaded_calls_back_off_exponentially_then_succeed() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["overloaded".into(), "overloaded".into()]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_on(&scratch, &clock);
    let ticking = keep_advancing(&clock, Duration::from_millis(250));
    let run = runtime
        .submit(claude_request(&scratch, &[("transient_backoff_sec", "1")]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    ticking.abort();
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = events_of(&runtime, run.id).await;
    let delays: Vec<u64> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::AgentRetry(retry) => Some(retry.delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [1000, 2000]);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_usage_limit_waits_for_its_reset_without_spending_a_retry() {
    let scratch = scratch(1);
    let reset_s = T0 / 1000 + 3600;
    stub_plan(&scratch, &[format!("limit:{reset_s}")]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_on(&scratch, &clock);
    let run = runtime
        .submit(claude_request(&scratch, &[]))
        .await
        .expect("submit");

    // The run waits: nothing more happens while the clock stands still.
    let until = wait_for_waiting(&runtime, run.id).await;
    assert_eq!(
        until,
        reset_s * 1000 + 60_000,
        "the reset time plus a margin"
    );
    // The driver is parked on the clock until then: nothing can happen before it moves.
    tokio::time::timeout(Duration::from_secs(10), clock.parked_until(until))
        .await
        .expect("the run sleeps on the clock until the reset");
    let records = events_of(&runtime, run.id).await;
    assert_eq!(
        records.last().map(|r| r.event.event_type().as_str()),
        Some("AGENT_WAITING")
    );

    clock.advance(Duration::from_secs(3700));
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = events_of(&runtime, run.id).await;
    assert_eq!(count(&records, |e| matches!(e, Event::AgentRetry(_))), 0);
    assert!(clock.now_ms() >= until);
    runtime.shutdown().await;
}

/// The reset time of the run's first `AGENT_WAITING`, within a minute (a loaded machine takes
/// its time to reach the first call).
async fn wait_for_waiting(runtime: &Runtime, run_id: RunId) -> i64 {
    for _ in 0..2400 {
        let records = events_of(runtime, run_id).await;
        if let Some(until) = records.iter().find_map(|r| match &r.event {
            Event::AgentWaiting(wait) => Some(wait.until_ms),
            _ => None,
        }) {
            return until;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the run never waited");
}

#[tokio::test]
async fn the_cost_budget_stops_the_run() {
    let scratch = scratch(5);
    stub_plan(&scratch, &[]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_on(&scratch, &clock);
    let run = runtime
        .submit(claude_request(&scratch, &[("max_cost_usd", "1")]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::BudgetExhausted));
    let records = events_of(&runtime, run.id).await;
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
async fn an_agent_that_lingers_after_its_result_is_stopped_and_its_answer_counts() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["linger".into()]);
    let runtime = crate::support::runtime(&scratch);
    let run = runtime
        .submit(claude_request(&scratch, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let steps = runtime.steps(run.id).await.expect("steps");
    assert_eq!(steps[0].status, loop_core::event::StepStatus::Succeeded);
    assert!(
        steps[0].duration_ms.unwrap_or(0) >= 4_000,
        "stopped after the grace: {:?}",
        steps[0]
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_run_is_named_by_the_agent_and_falls_back_to_the_spec_slug() {
    for (stub_name, expected, source) in [
        (
            "quiet-harbor-lights",
            "quiet-harbor-lights",
            NameSource::Haiku,
        ),
        ("not a name at all", "feature", NameSource::SpecSlug),
        ("fail", "feature", NameSource::SpecSlug),
        ("hang", "feature", NameSource::SpecSlug),
    ] {
        let scratch = scratch(1);
        stub_plan(&scratch, &[]);
        std::fs::write(scratch.repo().join(".stub-name"), stub_name).expect("stub name");
        let runtime = crate::support::runtime(&scratch);
        let config = [("run_naming_mode", "haiku"), ("claude_timeout_sec", "2")];
        let run = runtime
            .submit(claude_request(&scratch, &config))
            .await
            .expect("submit");
        // Creating the run did not wait for a name.
        assert_eq!(run.name, "feature");
        let done = finish(&runtime, run.id).await;
        assert_eq!(done.status, RunStatus::Completed, "{stub_name}: {done:?}");
        assert_eq!(
            (done.name.as_str(), done.name_source),
            (expected, source),
            "{stub_name}"
        );
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn the_name_printed_at_creation_keeps_meaning_the_run_after_the_naming_call() {
    let scratch = scratch(1);
    stub_plan(&scratch, &[]);
    std::fs::write(scratch.repo().join(".stub-name"), "swift-owl").expect("stub name");
    let runtime = crate::support::runtime(&scratch);
    let config = [("run_naming_mode", "haiku"), ("claude_timeout_sec", "2")];
    let first = runtime
        .submit(claude_request(&scratch, &config))
        .await
        .expect("submit");
    assert_eq!(first.name, "feature");
    let done = finish(&runtime, first.id).await;
    assert_eq!(done.name, "swift-owl", "{done:?}");
    // The next run of the spec does not get the name the first one was printed with.
    scratch.fresh_plan(1);
    let second = runtime
        .submit(claude_request(
            &scratch,
            &[("run_naming_mode", "spec_slug")],
        ))
        .await
        .expect("submit");
    assert_eq!(second.name, "feature-2");
    for name in ["feature", "swift-owl"] {
        assert_eq!(runtime.find(name).await.expect(name).id, first.id, "{name}");
    }
    // Nor may a person give it again.
    scratch.fresh_plan(1);
    let mut again = claude_request(&scratch, &[("run_naming_mode", "spec_slug")]);
    again.name = Some("feature".to_owned());
    let refused = runtime
        .submit(again)
        .await
        .expect_err("a name given before");
    assert!(refused.to_string().contains("\"feature\""), "{refused}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_explicit_name_is_never_replaced() {
    let scratch = scratch(1);
    stub_plan(&scratch, &[]);
    let runtime = crate::support::runtime(&scratch);
    let mut request = claude_request(&scratch, &[("run_naming_mode", "haiku")]);
    request.name = Some("my-own-name".to_owned());
    let run = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(
        (done.name.as_str(), done.name_source),
        ("my-own-name", NameSource::Explicit)
    );
    let records = events_of(&runtime, run.id).await;
    assert_eq!(count(&records, |e| matches!(e, Event::RunNamed(_))), 0);
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_answer_line_over_a_mebibyte_is_read_whole_and_the_call_succeeds() {
    let scratch = scratch(1);
    let stub = loop_testkit::agents::path("long_line.sh");
    let mut request = claude_request(&scratch, &[]);
    request
        .config
        .insert("claude_bin".to_owned(), stub.to_string_lossy().into_owned());
    let runtime = crate::support::runtime(&scratch);
    let run = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    // Cut into pieces, the result line would read as a call without a result: a failure.
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.tasks_done, 1, "the one task is done: {done:?}");
    // The cost is on the long line itself: it was read whole.
    assert!((done.cost_usd - 0.25).abs() < 1e-9, "{}", done.cost_usd);
    runtime.shutdown().await;
}
