//! Codex output at its limits, against the stub that speaks `codex exec --json`: an answer on
//! one line over a mebibyte, and more output than a call's raw file keeps.

use loop_core::event::{ArtifactWritten, Event, Phase, StepFinished, StepStatus};
use loop_core::{EventRecord, RunStatus};
use loop_runtime::process::RAW_OUTPUT_CAP;

use crate::support::{Scratch, finish, request_without_agent, runtime, scratch};

/// A Codex run of the scratch plan, the stub in `mode` (`.stub-codex`).
fn codex(scratch: &Scratch, mode: &str) -> loop_runtime::RunRequest {
    std::fs::write(scratch.repo().join(".stub-codex"), format!("{mode}\n")).expect("stub mode");
    let stub = loop_testkit::agents::path("codex_stub.sh");
    request_without_agent(
        scratch,
        &[
            ("agent", "codex"),
            ("codex_bin", stub.to_str().expect("utf-8 path")),
            ("reviewer", "false"),
        ],
    )
}

fn implementation_steps(records: &[EventRecord]) -> Vec<&StepFinished> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(step) if step.phase == Phase::Implementation => Some(step),
            _ => None,
        })
        .collect()
}

fn artifacts(records: &[EventRecord]) -> Vec<&ArtifactWritten> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ArtifactWritten(artifact) => Some(artifact),
            _ => None,
        })
        .collect()
}

/// Runs the one-task plan with the Codex stub in `mode`; the run must complete its task with
/// one implementation step that succeeded and whose usage (read after the long output) counts.
async fn one_succeeded_step(mode: &str) -> Finished {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime.submit(codex(&scratch, mode)).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.tasks_done, 1, "{done:?}");
    let records = runtime.events(run.id).await.expect("events");
    let steps = implementation_steps(&records);
    assert_eq!(steps.len(), 1, "{steps:?}");
    let step = steps[0].clone();
    assert_eq!(step.status, StepStatus::Succeeded, "{step:?}");
    let tokens = step.tokens.expect("tokens");
    assert_eq!((tokens.input, tokens.output), (24_763, 122));
    Finished {
        _scratch: scratch,
        runtime,
        step,
        records,
    }
}

/// A run of [`one_succeeded_step`]: its step and events, the runtime to shut down, and the
/// scratch repository that holds the run's files until the test ends.
struct Finished {
    _scratch: Scratch,
    runtime: loop_runtime::Runtime,
    step: StepFinished,
    records: Vec<EventRecord>,
}

#[tokio::test]
async fn a_codex_answer_line_over_a_mebibyte_is_read_whole_and_the_call_succeeds() {
    // The turn.completed after the long line was read too: the helper checks its usage.
    let Finished {
        _scratch,
        runtime,
        step,
        ..
    } = one_succeeded_step("long").await;
    // The answer reached the step's log whole: the 1,100,000-character summary on one line,
    // then the answer's last line. Cut into pieces, no piece would parse and neither would be
    // there.
    let log = std::fs::read_to_string(step.output_path.as_deref().expect("a step log"))
        .expect("the step log");
    let summary = "a".repeat(1_100_000);
    assert!(
        log.lines().any(|line| line == summary),
        "no whole summary line in a log of {} bytes",
        log.len()
    );
    assert!(log.lines().any(|line| line == "DONE: task 1"), "{}", {
        log.lines()
            .filter(|line| line.len() < 200)
            .collect::<Vec<_>>()
            .join("\n")
    });
    runtime.shutdown().await;
}

#[tokio::test]
async fn output_past_the_raw_cap_is_not_kept_and_the_call_still_counts() {
    // The events after the flood were still read: the call succeeded with its task and usage.
    let Finished {
        _scratch,
        runtime,
        step,
        records,
    } = one_succeeded_step("flood").await;
    // The raw stream is recorded (in the workspace's run directory and its copy in the data
    // dir) at exactly the cap: the first 256 MiB, no more.
    let raw: Vec<_> = artifacts(&records)
        .into_iter()
        .filter(|artifact| artifact.path.ends_with(".jsonl"))
        .collect();
    assert!(!raw.is_empty(), "no raw stream recorded");
    let mut kept = Vec::new();
    for artifact in &raw {
        assert_eq!(artifact.bytes, RAW_OUTPUT_CAP, "{artifact:?}");
        let path = std::path::PathBuf::from(&artifact.path);
        let on_disk = std::fs::metadata(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .len();
        assert_eq!(on_disk, RAW_OUTPUT_CAP, "{}", path.display());
        kept.push(path);
    }
    // Nothing else of the run's holds the flood either.
    let run_dir = std::path::Path::new(step.output_path.as_deref().expect("a step log"))
        .parent()
        .expect("the run directory")
        .to_owned();
    for entry in std::fs::read_dir(&run_dir).expect("run dir") {
        let entry = entry.expect("entry");
        let size = entry.metadata().expect("metadata").len();
        if !kept.contains(&entry.path()) {
            assert!(
                size < 1024 * 1024,
                "{} holds {size} bytes",
                entry.path().display()
            );
        }
    }
    runtime.shutdown().await;
}
