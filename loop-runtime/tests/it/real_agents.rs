//! The runtime against the shapes real Claude Code and Codex CLIs print (the stubs replay lines
//! from `loop-core/tests/data/agents/real/`): a failed call is paid for, a network error backs
//! off on its own budget, a request served from overage is an answer, an interrupted step goes
//! on with its session, a failed Codex run is no Claude failure, and a prompt whose reference
//! a real CLI would not resolve fails the strict stub.

use std::time::Duration;

use loop_core::event::{AgentDetail, Event, ExitReason, Phase, StepStatus};
use loop_core::{EventRecord, RunId, RunStatus};
use loop_runtime::Runtime;

use crate::support::{Scratch, finish, request, request_without_agent, runtime, scratch};

fn claude(scratch: &Scratch, config: &[(&str, &str)]) -> loop_runtime::RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let mut all = vec![
        ("agent", "claude"),
        ("claude_bin", stub.to_str().expect("utf-8 path")),
        ("reviewer", "false"),
    ];
    all.extend_from_slice(config);
    request_without_agent(scratch, &all)
}

fn stub_plan(scratch: &Scratch, lines: &[&str]) {
    std::fs::write(scratch.repo().join(".stub-plan"), lines.join("\n") + "\n").expect("stub plan");
}

async fn events(runtime: &Runtime, run_id: RunId) -> Vec<EventRecord> {
    runtime.events(run_id).await.expect("events")
}

fn finished_steps(records: &[EventRecord]) -> Vec<&loop_core::event::StepFinished> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(step) if step.phase == Phase::Implementation => Some(step),
            _ => None,
        })
        .collect()
}

fn detail(step: &loop_core::event::StepFinished) -> &AgentDetail {
    step.agent
        .as_deref()
        .expect("the step records what the agent said")
}

#[tokio::test]
async fn a_call_that_fails_after_real_work_is_paid_for_and_counted() {
    let scratch = scratch(2);
    stub_plan(&scratch, &["max_turns"]);
    let runtime = runtime(&scratch);
    let run = runtime.submit(claude(&scratch, &[])).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::ClaudeFailed));
    // The real max-turns result said $1.0062815: the run says so too.
    assert!(
        (done.cost_usd - 1.006_281_5).abs() < 1e-9,
        "{}",
        done.cost_usd
    );
    let records = events(&runtime, run.id).await;
    let step = finished_steps(&records)[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert_eq!(step.cost_usd, Some(1.006_281_5));
    let tokens = step.tokens.expect("tokens on a failed step");
    assert_eq!(
        (tokens.input, tokens.cached, tokens.output),
        (35 + 33_598 + 1_218_250, 1_218_250, 7_404)
    );
    assert_eq!(step.exit_code, Some(1));
    let detail = detail(step);
    assert_eq!(detail.num_turns, Some(31));
    assert_eq!(detail.permission_denials, Some(1));
    assert_eq!(detail.duration_api_ms, Some(114_858));
    // The model once, by its name without the context-size suffix; haiku, set up and never
    // called, not at all.
    assert!(
        detail.models.contains(&"claude-opus-4-7".to_owned())
            && !detail
                .models
                .iter()
                .any(|m| m.contains("[1m]") || m.contains("haiku")),
        "{detail:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_retried_call_s_cost_counts_for_the_step_the_run_and_the_budget() {
    let scratch = scratch(3);
    // Fails once at $1.006, then succeeds at $0.6 a call: the budget of $1.5 is spent after
    // the second call, whose step alone cost less than that.
    stub_plan(&scratch, &["max_turns"]);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude(
            &scratch,
            &[
                ("claude_retries", "1"),
                ("claude_retry_backoff_sec", "0"),
                ("max_cost_usd", "1.5"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(
        done.exit_reason,
        Some(ExitReason::BudgetExhausted),
        "{done:?}"
    );
    assert!(
        (done.cost_usd - 1.606_281_5).abs() < 1e-9,
        "{}",
        done.cost_usd
    );
    let records = events(&runtime, run.id).await;
    let retry = records
        .iter()
        .find_map(|r| match &r.event {
            Event::AgentRetry(retry) => Some(retry),
            _ => None,
        })
        .expect("the failed call was retried");
    assert_eq!(retry.paid.cost_usd, Some(1.006_281_5));
    let step = finished_steps(&records)[0];
    assert_eq!(step.cost_usd, Some(0.6));
    assert_eq!(detail(step).calls, Some(2));
    let steps = runtime.steps(run.id).await.expect("steps");
    let view = steps
        .iter()
        .find(|s| s.phase == Phase::Implementation)
        .expect("a step");
    assert!(
        (view.cost_usd.unwrap() - 1.606_281_5).abs() < 1e-9,
        "{view:?}"
    );
    assert_eq!(view.retries, 1);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_network_error_backs_off_on_its_own_budget() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["network", "network", "task"]);
    let runtime = runtime(&scratch);
    // No retries for failures (the default), two for transient trouble.
    let run = runtime
        .submit(claude(
            &scratch,
            &[("transient_retries", "2"), ("transient_backoff_sec", "0")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = events(&runtime, run.id).await;
    let reasons: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::AgentRetry(retry) => Some(retry.reason.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().all(|r| r.contains("ECONNREFUSED")),
        "{reasons:?}"
    );

    // One network error more than the budget fails the run, naming the budget.
    let scratch = Scratch::new(1);
    stub_plan(&scratch, &["network", "network"]);
    let run = runtime
        .submit(claude(
            &scratch,
            &[("transient_retries", "1"), ("transient_backoff_sec", "0")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    let records = events(&runtime, run.id).await;
    let failed = records
        .iter()
        .find_map(|r| match &r.event {
            Event::RunFailed(failed) => Some(failed.reason.clone()),
            _ => None,
        })
        .expect("RUN_FAILED");
    assert!(failed.contains("transient_retries"), "{failed}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_request_served_from_overage_is_an_answer_not_a_wait() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["overage"]);
    let runtime = runtime(&scratch);
    let run = runtime.submit(claude(&scratch, &[])).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = events(&runtime, run.id).await;
    assert!(
        !records
            .iter()
            .any(|r| matches!(r.event, Event::AgentWaiting(_))),
        "no wait for a request that was served"
    );
    let seen = detail(finished_steps(&records)[0])
        .rate_limit
        .clone()
        .expect("the window state is recorded");
    assert_eq!(seen.status, "rejected");
    assert_eq!(seen.overage_in_use, Some(true));
    assert_eq!(seen.window.as_deref(), Some("five_hour"));
    runtime.shutdown().await;
}

#[tokio::test]
async fn tool_calls_and_a_heartbeat_show_in_the_step_log() {
    let scratch = scratch(2);
    stub_plan(&scratch, &["tool", "quiet:3"]);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude(&scratch, &[("agent_heartbeat_sec", "1")]))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let steps = runtime.steps(run.id).await.expect("steps");
    let logs: Vec<String> = steps
        .iter()
        .filter(|s| s.phase == Phase::Implementation)
        .map(|s| std::fs::read_to_string(s.output_path.as_ref().unwrap()).expect("log"))
        .collect();
    assert!(
        logs[0].contains("● Bash(cargo test --quiet)\n"),
        "{}",
        logs[0]
    );
    assert!(logs[1].contains("… still working: "), "{}", logs[1]);
    runtime.shutdown().await;
}

/// The lines of the stub's `claude-args`: one per call, `[--resume ]<session> <phase>`.
fn calls(run_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("claude-args"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn pause_mid_step(runtime: &Runtime, run_id: RunId) -> std::path::PathBuf {
    let run_dir = runtime.run_dir(run_id).await.expect("run dir");
    for _ in 0..400 {
        if calls(&run_dir).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(calls(&run_dir).len(), 1, "the first call started");
    runtime.pause(run_id).await.expect("pause");
    run_dir
}

#[tokio::test]
async fn a_paused_step_goes_on_with_its_session() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["hang", "task"]);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude(&scratch, &[("run_naming_mode", "spec_slug")]))
        .await
        .expect("submit");
    let run_dir = pause_mid_step(&runtime, run.id).await;
    runtime.resume(run.id).await.expect("resume");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);

    let made = calls(&run_dir);
    let first = made[0].split(' ').next().unwrap().to_owned();
    assert_eq!(
        made[1],
        format!("--resume {first} implementation"),
        "{made:?}"
    );
    let records = events(&runtime, run.id).await;
    let started: Vec<(Option<String>, bool)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepStarted(step) if step.phase == Phase::Implementation => {
                Some((step.session_id.clone(), step.resumed))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        started[..2],
        [(Some(first.clone()), false), (Some(first), true)]
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_session_that_cannot_be_resumed_is_started_afresh() {
    let scratch = scratch(1);
    stub_plan(&scratch, &["hang", "task", "task"]);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(claude(&scratch, &[("run_naming_mode", "spec_slug")]))
        .await
        .expect("submit");
    let run_dir = pause_mid_step(&runtime, run.id).await;
    // The CLI forgot the session (another machine, a cleared ~/.claude).
    std::fs::remove_file(run_dir.join("claude-sessions")).expect("forget the sessions");
    runtime.resume(run.id).await.expect("resume");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let made = calls(&run_dir);
    assert!(made[1].starts_with("--resume "), "{made:?}");
    assert!(!made[2].starts_with("--resume "), "{made:?}");
    let records = events(&runtime, run.id).await;
    assert!(
        records.iter().any(|r| matches!(&r.event,
            Event::AgentRetry(retry) if retry.reason.contains("No conversation found"))),
        "the fallback is recorded"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn codex_tokens_are_counted_once_and_a_failed_codex_run_is_no_claude_failure() {
    let stub = loop_testkit::agents::path("codex_stub.sh");
    let codex = |scratch: &Scratch| {
        request_without_agent(
            scratch,
            &[
                ("agent", "codex"),
                ("codex_bin", stub.to_str().expect("utf-8 path")),
                ("reviewer", "false"),
                ("run_naming_mode", "spec_slug"),
            ],
        )
    };
    // One runtime, its log beside a repository of its own, for both runs.
    let home = scratch(1);
    let runtime = runtime(&home);

    let scratch = scratch(1);
    let run = runtime.submit(codex(&scratch)).await.expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let records = events(&runtime, run.id).await;
    let tokens = finished_steps(&records)[0].tokens.expect("tokens");
    // `cached_input_tokens` is part of `input_tokens`, `reasoning` part of `output_tokens`.
    assert_eq!(
        (tokens.input, tokens.cached, tokens.output, tokens.reasoning),
        (24_763, 24_448, 122, 64)
    );
    // Codex reports no cost: it is estimated from the price table, and marked so.
    let step = &finished_steps(&records)[0];
    assert!(step.cost_estimated, "{step:?}");
    let cost = step.cost_usd.expect("an estimated cost");
    assert!(cost > 0.004 && cost < 0.005, "{cost}");

    // The estimate stops a run at max_cost_usd (before, a Codex run never stopped).
    let scratch = Scratch::new(3);
    let mut capped = codex(&scratch);
    capped
        .config
        .insert("max_cost_usd".to_owned(), "0.006".to_owned());
    let run = runtime.submit(capped).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(
        (done.status, done.exit_reason),
        (RunStatus::Failed, Some(ExitReason::BudgetExhausted)),
        "{done:?}"
    );

    let scratch = Scratch::new(1);
    std::fs::write(scratch.repo().join(".stub-codex"), "fail\n").expect("stub mode");
    let run = runtime.submit(codex(&scratch)).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.exit_reason, Some(ExitReason::AgentFailed));
    runtime.shutdown().await;
}

/// A price table over the shipped one (what `loopd --prices` hands the runtime) prices Codex's
/// tokens: the stub's real 0.144 usage (24,763 input of which 24,448 cached, 122 output) at
/// 1000/100/1000/10000 dollars per million on Codex's default model costs 3.9798, estimated.
#[tokio::test]
async fn a_price_table_over_the_shipped_one_prices_codex_s_tokens() {
    use loop_core::prices::PriceTable;
    let stub = loop_testkit::agents::path("codex_stub.sh");
    let home = scratch(1);
    let ours = PriceTable::parse("gpt-5-codex 1000 100 1000 10000\n").expect("reads");
    let store = std::sync::Arc::new(loop_store::SqliteStore::open(home.db()).expect("log"));
    let runtime = Runtime::builder()
        .store(store)
        .data_dir(home.data_dir())
        .prices(PriceTable::shipped().with(ours))
        .build()
        .expect("runtime");
    let scratch = scratch(1);
    let request = request_without_agent(
        &scratch,
        &[
            ("agent", "codex"),
            ("codex_bin", stub.to_str().expect("utf-8 path")),
            ("reviewer", "false"),
        ],
    );
    let run = runtime.submit(request).await.expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let records = events(&runtime, run.id).await;
    let step = &finished_steps(&records)[0];
    assert!(step.cost_estimated, "{step:?}");
    let cost = step.cost_usd.expect("an estimated cost");
    assert!((cost - 3.9798).abs() < 1e-9, "{cost}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_reference_followed_by_punctuation_fails_the_strict_stub() {
    let scratch = scratch(1);
    std::fs::write(
        scratch.repo().join("prompt.txt"),
        "Read the spec @SPEC_PATH. Then do one task of @PLAN_PATH.\n",
    )
    .expect("template");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[("prompt_file", "prompt.txt"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    let records = events(&runtime, run.id).await;
    let reason = records
        .iter()
        .find_map(|r| match &r.event {
            Event::RunFailed(failed) => Some(failed.reason.clone()),
            _ => None,
        })
        .expect("RUN_FAILED");
    assert!(reason.contains("does not resolve"), "{reason}");
    runtime.shutdown().await;
}
