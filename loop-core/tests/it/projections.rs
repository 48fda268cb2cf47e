//! Projections of one realistic run, checked against the files in `tests/data/golden/`.
//!
//! The golden files are the expected `loopctl export` output for [`golden_run`]. To regenerate
//! them after a deliberate change, run the tests with `LOOP_BLESS_GOLDEN=1` and read the diff
//! before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use loop_core::event::{
    AgentRetry, CompletionDetected, ExitReason, NameSource, Phase, PostmortemEnd, PostmortemStart,
    PostmortemStatus, RunCompleted, RunCreated, StepFinished, StepStarted, StepStatus, Tokens,
    VerificationCommand, WorktreeCreated, WorktreeProviderSelected,
};
use loop_core::projection::{
    CommandOutcome, CurrentStep, Export, REPORT_HEADER, Report, RunView, StepView, Summary,
};
use loop_core::{Command, EventRecord, RunId, RunStatus, StepId, Version};

use crate::generate::{Driver, T0, finished_payload};

mod golden;

use golden::{created, golden_dir, golden_run, in_run_dir, run_id, step_id};

#[test]
fn golden_run_exports_the_expected_files() {
    let export = Export::of(&golden_run()).expect("the run was created");
    let bless = std::env::var_os("LOOP_BLESS_GOLDEN").is_some();
    for (name, text) in export.files() {
        let path = golden_dir().join(name);
        if bless {
            fs::write(&path, text).expect("writes golden file");
            continue;
        }
        let expected =
            fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert_eq!(
            text, expected,
            "{name} differs from tests/data/golden/{name}"
        );
    }
}

#[test]
fn golden_run_view_has_the_final_figures() {
    let records = golden_run();
    let view = RunView::fold(&records).expect("the run was created");
    assert_eq!(view.id, run_id());
    assert_eq!(view.name, "tidy-parser");
    assert_eq!(view.status, RunStatus::Completed);
    assert_eq!(view.iteration, 2);
    assert_eq!((view.tasks_done, view.tasks_total), (5, 5));
    assert_eq!(view.cost_usd, 0.8125 + 0.6875 + 0.1875);
    assert_eq!(view.current_step, None);
    assert_eq!(view.exit_reason, Some(ExitReason::CompletePlan));
    assert_eq!(view.failure_reason, None);
    assert_eq!(view.postmortem.as_deref(), Some("ok"));
    assert_eq!(view.created_at, "2026-09-21T14:13:20.000Z");
    assert_eq!(view.updated_at, "2026-09-21T14:17:40.000Z");
    assert_eq!(view.version, Version(records.len() as u64));
    assert_eq!(view.last_seq, records.last().unwrap().seq);
    assert_eq!(view.worktree.provider.as_deref(), Some("git"));
    assert_eq!(
        view.worktree.worktree_path.as_deref(),
        Some("/work/demo/.loop/worktrees/tidy-parser")
    );
    assert_eq!(view.worktree.base_branch.as_deref(), Some("main"));
    assert_eq!(
        view.worktree.run_branch.as_deref(),
        Some("loop/tidy-parser")
    );
    assert_eq!(view.worktree.merge_target_branch.as_deref(), Some("main"));
    assert_eq!(view.worktree.merge_strategy, "squash");
    assert!(!view.worktree.removed);
}

#[test]
fn golden_run_view_shows_the_open_step_while_it_runs() {
    let records = golden_run();
    // Up to and including the second implementation STEP_STARTED.
    let view = RunView::fold(&records[..8]).unwrap();
    assert_eq!(view.status, RunStatus::Running);
    assert_eq!(
        view.current_step,
        Some(CurrentStep {
            id: step_id(2, T0 + 95_400),
            phase: Phase::Implementation,
            iteration: 2,
            attempt: 1,
        })
    );
    assert_eq!((view.tasks_done, view.tasks_total), (3, 5));
    assert_eq!(view.cost_usd, 0.8125);
    assert_eq!(view.exit_reason, None);
}

#[test]
fn golden_steps_have_their_outcomes() {
    let steps = StepView::fold(&golden_run());
    let phases: Vec<(Phase, u32)> = steps.iter().map(|s| (s.phase, s.iteration)).collect();
    assert_eq!(
        phases,
        [
            (Phase::Implementation, 1),
            (Phase::Implementation, 2),
            (Phase::Review, 2),
            (Phase::Verification, 2),
        ]
    );
    assert!(steps.iter().all(|s| s.status == StepStatus::Succeeded));
    assert!(steps.iter().all(|s| s.run_id == run_id()));

    let first = &steps[0];
    assert_eq!(first.id, step_id(1, T0 + 2_300));
    assert_eq!(first.retries, 1);
    assert_eq!(first.started_at, "2026-09-21T14:13:22.300Z");
    assert_eq!(
        first.finished_at.as_deref(),
        Some("2026-09-21T14:14:55.300Z")
    );
    assert_eq!(first.duration_ms, Some(93_000));
    assert_eq!(first.exit_code, Some(0));
    assert_eq!(first.output_lines, 912);
    assert_eq!(
        first.tokens,
        Some(Tokens {
            input: 120_345,
            output: 8_210,
            cached: Default::default(),
            cache_write: Default::default(),
            reasoning: Default::default(),
        })
    );
    assert_eq!(first.cost_usd, Some(0.8125));
    assert_eq!(first.prompt_path, Some(in_run_dir("prompt.txt")));
    assert_eq!(first.output_path, Some(in_run_dir("iter-01-impl.log")));

    assert_eq!(
        steps[2].message.as_deref(),
        Some("approved: no blocking findings")
    );

    let verify = &steps[3];
    assert_eq!(verify.cost_usd, None);
    assert_eq!(verify.retries, 0);
    assert_eq!(
        verify.commands,
        [
            CommandOutcome {
                command: "cargo test".into(),
                exit_code: Some(0),
                duration_ms: 22_400,
            },
            CommandOutcome {
                command: "cargo clippy -- -D warnings".into(),
                exit_code: Some(0),
                duration_ms: 2_430,
            },
        ]
    );
}

#[test]
fn golden_summary_has_the_contract_fields() {
    let records = golden_run();
    let summary = Summary::fold(&records).unwrap();
    let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
    let fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "run_id",
        "start_ms",
        "end_ms",
        "total_duration_ms",
        "iterations_run",
        "completed_iteration",
        "avg_duration_ms",
        "last_exit_code",
        "completion_mode",
        "model",
        "exit_reason",
        "run_log",
        "run_report",
        "prompt_snapshot",
        "last_iteration_tail",
        "last_iteration_log",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "review_iterations",
        "verification_passes",
        "verification_failures",
    ];
    let mut fields_sorted = fields.clone();
    fields_sorted.sort_unstable();
    expected.sort_unstable();
    assert_eq!(fields_sorted, expected);

    assert_eq!(json["exit_reason"], "complete_plan");
    assert_eq!(json["iterations_run"], 2);
    assert_eq!(json["completed_iteration"], 2);
    assert_eq!(json["avg_duration_ms"], (93_000 + 75_000) / 2);
    assert_eq!(json["start_ms"], T0 + 150);
    assert_eq!(json["end_ms"], T0 + 227_000);
    assert_eq!(json["total_duration_ms"], 227_000 - 150);
    assert_eq!(json["input_tokens"], 120_345 + 98_000 + 30_100);
    assert_eq!(json["output_tokens"], 8_210 + 6_500 + 1_200);
    assert_eq!(json["cost_usd"], 1.6875);
    assert_eq!(json["review_iterations"], 1);
    assert_eq!(json["verification_passes"], 1);
    assert_eq!(json["verification_failures"], 0);
    assert_eq!(json["run_log"], in_run_dir("run.log"));
    assert_eq!(json["last_iteration_log"], in_run_dir("iter-02-impl.log"));
    assert_eq!(
        json["last_iteration_tail"],
        in_run_dir("iter-02-impl.tail.txt")
    );
}

#[test]
fn golden_report_has_the_contract_header_and_kinds() {
    let report = Report::fold(&golden_run());
    let tsv = report.to_tsv();
    let header: Vec<&str> = tsv.lines().next().unwrap().split('\t').collect();
    assert_eq!(
        header,
        [
            "timestamp_ms",
            "kind",
            "iteration",
            "duration_ms",
            "exit_code",
            "output_bytes",
            "output_lines",
            "output_path",
            "message",
            "tasks_done",
            "tasks_total"
        ]
    );
    assert_eq!(header.join("\t"), REPORT_HEADER);
    let kinds: Vec<&str> = report.rows.iter().map(|row| row.kind).collect();
    assert_eq!(
        kinds,
        [
            "RUN_START",
            "ITERATION_START",
            "AGENT_RETRY",
            "ITERATION_END",
            "ITERATION_START",
            "ITERATION_END",
            "REVIEW_START",
            "REVIEW_END",
            "VERIFY_START",
            "VERIFY_END",
            "COMPLETE_DETECTED",
            "RUN_END",
            "POSTMORTEM_START",
            "POSTMORTEM_END",
        ]
    );
}

#[test]
fn golden_events_jsonl_decodes_back_to_the_run() {
    let records = golden_run();
    let text = fs::read_to_string(golden_dir().join("events.jsonl")).unwrap();
    let decoded: Vec<EventRecord> = text
        .lines()
        .map(|line| EventRecord::from_json(line).unwrap())
        .collect();
    assert_eq!(decoded, records);
}

/// Each way a run ends, as the API, `summary.json` and `report.tsv` name it.
#[test]
fn exit_reason_is_reported_for_each_ending() {
    let cases: Vec<(Command, RunStatus, &str, &str)> = vec![
        (
            Command::Complete(RunCompleted {
                exit_reason: ExitReason::CompleteReviewer,
                completed_iteration: 1,
            }),
            RunStatus::Completed,
            "complete_reviewer",
            "complete_reviewer",
        ),
        (
            Command::Complete(RunCompleted {
                exit_reason: ExitReason::IterationsExhausted,
                completed_iteration: 10,
            }),
            RunStatus::Completed,
            "iterations_exhausted",
            "iterations_exhausted",
        ),
        (
            Command::Fail {
                exit_reason: ExitReason::BudgetExhausted,
                reason: "spent $20.00".into(),
                cause: None,
                at_ms: T0 + 10_000,
            },
            RunStatus::Failed,
            "budget_exhausted",
            "budget_exhausted: spent $20.00",
        ),
        (
            Command::Fail {
                exit_reason: ExitReason::ClaudeFailed,
                reason: "agent exited 1".into(),
                cause: None,
                at_ms: T0 + 10_000,
            },
            RunStatus::Failed,
            "claude_failed",
            "claude_failed: agent exited 1",
        ),
        (
            Command::Cancel {
                reason: Some("operator".into()),
                at_ms: T0 + 10_000,
            },
            RunStatus::Canceled,
            "canceled",
            "canceled: operator",
        ),
    ];
    for (ending, status, exit_reason, report_message) in cases {
        let mut driver = Driver::new(run_id());
        for command in [Command::Create(created()), Command::Start, ending] {
            driver.now += 1_000;
            driver.submit(command).unwrap();
        }
        let view = RunView::fold(&driver.records).unwrap();
        assert_eq!(view.status, status);
        let summary: serde_json::Value =
            serde_json::from_str(&Summary::fold(&driver.records).unwrap().to_json()).unwrap();
        assert_eq!(summary["exit_reason"], exit_reason);
        assert_eq!(serde_json::to_value(view.exit_reason).unwrap(), exit_reason);
        let report = Report::fold(&driver.records);
        let last = report.rows.last().unwrap();
        assert_eq!(
            (last.kind, last.message.as_str()),
            ("RUN_END", report_message)
        );
    }
}
