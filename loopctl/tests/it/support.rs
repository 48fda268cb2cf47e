//! A real event log with a realistic run in it, and a way to run the binary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use loop_core::event::{
    CompletionDetected, ExitReason, NameSource, Phase, RunCompleted, RunCreated, StepFinished,
    StepStarted, StepStatus, Tokens, VerificationCommand,
};
use loop_core::{Command, RunId, RunState, StepId, decide};
use loop_store::{EventStore, SqliteStore};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub run_id: RunId,
}

impl Fixture {
    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("loopd.db")
    }
}

fn apply(store: &SqliteStore, state: &mut RunState, run_id: RunId, ts_ms: i64, command: Command) {
    let events = decide(state, command).expect("a legal command");
    for record in store
        .append(run_id, state.version(), ts_ms, events)
        .expect("append")
    {
        state.apply(&record).expect("apply");
    }
}

fn step(n: u8) -> StepId {
    StepId::from_parts(1_790_000_000_000 + u64::from(n), [n; 10])
}

/// A completed run named `tidy-otter` with one implementation, review and verification step.
pub fn completed_run(store: &SqliteStore, seed: u8) -> RunId {
    let run_id = RunId::from_parts(1_790_000_000_000 + u64::from(seed), [seed; 10]);
    let mut state = RunState::new();
    let mut t = 1_790_000_000_000i64 + i64::from(seed) * 100_000;
    let mut at = |step: i64| {
        t += step;
        t
    };
    let config = BTreeMap::from([("model".to_owned(), "opus".to_owned())]);
    let created = RunCreated {
        name: format!("tidy-otter-{seed}"),
        name_source: NameSource::Haiku,
        workspace_root: "/work/repo".to_owned(),
        spec_path: "specs/feature.md".to_owned(),
        plan_path: "specs/planning/feature-plan.md".to_owned(),
        config,
        prompt_template: Default::default(),
        tasks_done: None,
        tasks_total: None,
    };
    apply(store, &mut state, run_id, at(0), Command::Create(created));
    apply(store, &mut state, run_id, at(10), Command::Start);
    for (n, phase) in [Phase::Implementation, Phase::Review, Phase::Verification]
        .into_iter()
        .enumerate()
    {
        let step_id = step(seed.wrapping_mul(8).wrapping_add(n as u8));
        let started = StepStarted {
            step_id,
            phase,
            iteration: 1,
            attempt: 1,
            prompt_path: None,
            resumed: Default::default(),
            session_id: Default::default(),
            account: None,
        };
        apply(
            store,
            &mut state,
            run_id,
            at(5),
            Command::StartStep(started),
        );
        if phase == Phase::Verification {
            let command = VerificationCommand {
                step_id,
                command: "cargo test".to_owned(),
                exit_code: Some(0),
                duration_ms: 900,
            };
            apply(
                store,
                &mut state,
                run_id,
                at(900),
                Command::RecordVerification(command),
            );
        }
        let finished = StepFinished {
            step_id,
            phase,
            status: StepStatus::Succeeded,
            exit_code: Some(0),
            duration_ms: 1500,
            output_path: Some(format!("/work/repo/logs/loop/run-{run_id}/iter-01.log")),
            output_bytes: 2048,
            output_lines: 40,
            tokens: Some(Tokens {
                input: 1000,
                output: 200,
                cached: Default::default(),
                cache_write: Default::default(),
                reasoning: Default::default(),
            }),
            cost_usd: Some(0.25),
            tasks_done: Some(3),
            tasks_total: Some(3),
            message: None,
            head_commit: None,
            plan_sha256: None,
            answer_sha256: None,
            agent: Default::default(),
            account: None,
            cost_estimated: false,
        };
        apply(
            store,
            &mut state,
            run_id,
            at(1500),
            Command::FinishStep(finished),
        );
    }
    let detected = CompletionDetected {
        iteration: 1,
        commit: Some("abc1234".to_owned()),
    };
    apply(
        store,
        &mut state,
        run_id,
        at(3),
        Command::DetectCompletion(detected),
    );
    let completed = RunCompleted {
        exit_reason: ExitReason::CompletePlan,
        completed_iteration: 1,
    };
    apply(
        store,
        &mut state,
        run_id,
        at(3),
        Command::Complete(completed),
    );
    run_id
}

/// A temp dir holding `loopd.db` with `runs` completed runs; the first one's id is returned.
pub fn log_with_runs(runs: u8) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("loopd.db")).expect("open store");
    let run_id = completed_run(&store, 1);
    for seed in 2..=runs {
        completed_run(&store, seed);
    }
    Fixture { dir, run_id }
}

pub fn loopctl(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_loopctl"))
        .args(args)
        .env_remove("LOOPD_ADDR")
        .env_remove("LOOPD_TOKEN")
        .output()
        .expect("run loopctl")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn path_arg(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}
