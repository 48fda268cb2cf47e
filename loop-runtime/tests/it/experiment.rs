//! Experiment mode through the runtime, where the daemon's tests cannot reach cheaply: a run by
//! URL (its discarded candidates' refs pushed to the remote beside its branch), a usage limit
//! met mid-run (on a test clock: the run waits, resumes and decides each iteration once), and
//! the budget spent (COMPLETED with the best as the branch head). The measured program is
//! `loop_testkit::projects::add_loops`'s, changed by `experimenter.sh` (directly, or through
//! the Claude stub in a repository holding `.stub-experiment`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loop_core::config::Layer;
use loop_core::event::{Decision, Event, ExitReason, ExperimentDecided, Reason};
use loop_core::experiment::Experiment;
use loop_core::{EventRecord, RunId, RunStatus};
use loop_runtime::clock::ManualClock;
use loop_runtime::{RunRequest, Runtime};
use loop_store::SqliteStore;
use loop_testkit::repo::git;

use crate::support::{Scratch, agent, count, finish};

const T0: i64 = 1_790_000_000_000;

/// A repository with the spec, no plan, and the measured program; `extra` files committed too.
fn loops_scratch(extra: &[(&str, &str)]) -> Scratch {
    let scratch = Scratch::new(1);
    let repo = scratch.repo();
    git(&repo, &["rm", "-q", loop_testkit::repo::PLAN]);
    for (name, text) in extra {
        std::fs::write(repo.join(name), text).expect("write a file");
    }
    loop_testkit::projects::add_loops(&repo);
    scratch
}

/// The experiment's keys, as `loopd`'s experiment tests set them, then `config` on top.
fn experiment_layer(config: &[(&str, &str)]) -> Layer {
    let mut layer = Layer::new();
    for (key, value) in [
        ("mode", "experiment"),
        ("measure_cmd", "sh bench.sh"),
        ("measure_repeats", "5"),
        ("patience", "0"),
        ("baseline_every", "0"),
        ("verify_cmds", "test -s loops.txt"),
        ("merge_target_branch", "main"),
        ("merge_strategy", "merge"),
        ("worktree_provider", "git"),
        ("postmortem", "false"),
        ("agent_idle_timeout_sec", "0"),
        ("claude_retry_backoff_sec", "0"),
        ("run_naming_mode", "spec_slug"),
        ("reviewer", "false"),
    ] {
        layer.insert(key.to_owned(), value.to_owned());
    }
    for (key, value) in config {
        layer.insert((*key).to_owned(), (*value).to_owned());
    }
    layer
}

/// An experiment on the scratch repository through the Claude stub.
fn claude_experiment(scratch: &Scratch, config: &[(&str, &str)]) -> RunRequest {
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let stub = stub.to_string_lossy().into_owned();
    let mut all = vec![("agent", "claude"), ("claude_bin", stub.as_str())];
    all.extend_from_slice(config);
    RunRequest {
        workspace_root: scratch.repo(),
        spec_path: "specs/feature.md".to_owned(),
        config: experiment_layer(&all),
        ..RunRequest::default()
    }
}

fn runtime_at(scratch: &Scratch, data_dir: &Path, clock: Option<&ManualClock>) -> Runtime {
    let store = Arc::new(SqliteStore::open(scratch.db()).expect("open log"));
    let mut builder = Runtime::builder().store(store).data_dir(data_dir);
    if let Some(clock) = clock {
        builder = builder.clock(Arc::new(clock.clone()));
    }
    builder.build().expect("runtime")
}

fn decisions(records: &[EventRecord]) -> Vec<ExperimentDecided> {
    records
        .iter()
        .filter_map(|record| match &record.event {
            Event::ExperimentDecided(decided) => Some(decided.clone()),
            _ => None,
        })
        .collect()
}

fn outcomes(decided: &[ExperimentDecided]) -> Vec<(u32, Decision, Reason)> {
    decided
        .iter()
        .map(|d| (d.iteration, d.decision, d.reason))
        .collect()
}

/// A run by URL keeps its discarded candidates where its branch is: on the remote, under
/// `refs/loop/experiments/<run>/<iteration>`, beside the run branch at the best and the best
/// merged into the remote's `main`.
#[tokio::test]
async fn an_experiment_by_url_pushes_its_discarded_candidates_refs_and_merges_its_best() {
    let scratch = loops_scratch(&[]);
    let bare = scratch.dir.path().join("remote.git");
    let url = loop_testkit::bare_clone(&scratch.repo(), &bare);
    let runtime = runtime_at(&scratch, &scratch.data_dir(), None);
    let mut config = experiment_layer(&[("iterations", "4")]);
    config.insert("agent".to_owned(), "command".to_owned());
    config.insert("agent_cmd".to_owned(), agent("experimenter.sh"));
    let request = RunRequest {
        repo_url: Some(url.clone()),
        spec_path: "specs/feature.md".to_owned(),
        config,
        ..RunRequest::default()
    };
    let view = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, view.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.exit_reason, Some(ExitReason::IterationsExhausted));

    let records = runtime.events(view.id).await.expect("events");
    let decided = decisions(&records);
    assert_eq!(
        outcomes(&decided)
            .iter()
            .map(|(i, d, _)| (*i, *d))
            .collect::<Vec<_>>(),
        [
            (1, Decision::Kept),
            (2, Decision::Discarded),
            (3, Decision::Discarded),
            (4, Decision::Kept),
        ],
        "better, worse, neutral, better: {decided:?}"
    );
    let best = decided[3].commit.clone().expect("the best commit");
    let branch = done.worktree.run_branch.clone().expect("a run branch");
    assert_eq!(
        git(&bare, &["rev-parse", &branch]),
        best,
        "the remote's run branch ends at the best"
    );
    assert_eq!(git(&bare, &["show", "main:loops.txt"]), "490");
    // The discarded candidates are reachable on the remote, each under its ref.
    let listed = git(
        &bare,
        &["for-each-ref", "--format=%(refname) %(objectname)"],
    );
    for trial in &decided[1..3] {
        let kept_ref = trial.kept_ref.clone().expect("a discard's ref");
        assert_eq!(
            kept_ref,
            format!("refs/loop/experiments/{}/{}", view.id, trial.iteration)
        );
        let commit = trial.commit.clone().expect("a candidate");
        assert!(
            listed.contains(&format!("{kept_ref} {commit}")),
            "the remote lacks {kept_ref} at {commit}:\n{listed}"
        );
    }
    // Kept candidates need no ref: they are on the branch.
    assert!(
        !listed.contains(&format!("refs/loop/experiments/{}/1 ", view.id)),
        "{listed}"
    );
    // The person's own clone was never touched: a run by URL needs none.
    assert_eq!(
        git(&scratch.repo(), &["for-each-ref", "refs/loop/experiments"]),
        ""
    );
    runtime.shutdown().await;
}

/// The reset time of the run's first `AGENT_WAITING`.
async fn waiting_until(runtime: &Runtime, run_id: RunId) -> i64 {
    for _ in 0..2400 {
        let records = runtime.events(run_id).await.expect("events");
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

/// The stub's account meets its usage limit on iteration 2's change: the run waits for the
/// reset without deciding anything, then makes that change and decides each iteration once.
#[tokio::test]
async fn an_experiment_that_meets_a_usage_limit_waits_resumes_and_decides_each_iteration_once() {
    let reset_s = T0 / 1000 + 3600;
    let scratch = loops_scratch(&[
        (".stub-experiment", ""),
        // Call 1: iteration 1's change; call 2: the limit; 3 and 4: iterations 2 and 3.
        (
            ".stub-plan",
            &format!("task\nlimit:{reset_s}\ntask\ntask\n"),
        ),
    ]);
    let clock = ManualClock::new(T0);
    let runtime = runtime_at(&scratch, &scratch.data_dir(), Some(&clock));
    let view = runtime
        .submit(claude_experiment(&scratch, &[("iterations", "3")]))
        .await
        .expect("submit");

    let until = waiting_until(&runtime, view.id).await;
    assert_eq!(until, reset_s * 1000 + 60_000, "the reset plus a margin");
    tokio::time::timeout(Duration::from_secs(60), clock.parked_until(until))
        .await
        .expect("the run sleeps on the clock until the reset");
    let waiting = runtime.events(view.id).await.expect("events");
    assert_eq!(
        outcomes(&decisions(&waiting)),
        [(1, Decision::Kept, Reason::Improved)],
        "only iteration 1 is decided while the account waits"
    );

    clock.advance(Duration::from_secs(3700));
    let done = finish(&runtime, view.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = runtime.events(view.id).await.expect("events");
    let decided = decisions(&records);
    let iterations: Vec<u32> = decided.iter().map(|d| d.iteration).collect();
    assert_eq!(iterations, [1, 2, 3], "each iteration decided once");
    assert_eq!(decided[1].reason, Reason::Worse, "{decided:?}");
    assert_eq!(decided[1].idea.as_deref(), Some("run 30% more loops"));
    assert_eq!(count(&records, |e| matches!(e, Event::AgentRetry(_))), 0);
    assert_eq!(count(&records, |e| matches!(e, Event::AgentWaiting(_))), 1);
    let best = Experiment::fold(&records).best.expect("a best").commit;
    assert_eq!(
        Some(best.clone()),
        decided[0].commit,
        "iteration 1 stays the best"
    );
    let branch = done.worktree.run_branch.clone().expect("a run branch");
    assert_eq!(git(&scratch.repo(), &["rev-parse", &branch]), best);
    runtime.shutdown().await;
}

/// The budget runs out with a candidate on the branch that is not the best (iteration 2's
/// change, implemented but not yet reviewed): the candidate is discarded, and the run ends
/// COMPLETED (`budget_exhausted`) with the best as its branch head, merged.
#[tokio::test]
async fn an_experiment_whose_budget_runs_out_ends_completed_at_its_best() {
    let scratch = loops_scratch(&[(".stub-experiment", "")]);
    let runtime = runtime_at(&scratch, &scratch.data_dir(), None);
    // Each call costs 0.6: iteration 1's change and review (1.2), then iteration 2's change
    // (1.8) passes 1.5 before its review.
    let view = runtime
        .submit(claude_experiment(
            &scratch,
            &[
                ("iterations", "10"),
                ("reviewer", "true"),
                ("max_cost_usd", "1.5"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, view.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.exit_reason, Some(ExitReason::BudgetExhausted));
    let records = runtime.events(view.id).await.expect("events");
    let decided = decisions(&records);
    assert_eq!(
        outcomes(&decided),
        [
            (1, Decision::Kept, Reason::Improved),
            (2, Decision::Discarded, Reason::BudgetSpent),
        ]
    );
    let best = decided[0].commit.clone().expect("the best");
    let branch = done.worktree.run_branch.clone().expect("a run branch");
    let repo: PathBuf = scratch.repo();
    assert_eq!(git(&repo, &["rev-parse", &branch]), best, "the branch head");
    assert_eq!(
        git(&repo, &["show", "main:loops.txt"]),
        "700",
        "main has it"
    );
    let candidate = decided[1].commit.clone().expect("the spent candidate");
    assert_eq!(
        git(
            &repo,
            &["rev-parse", &format!("refs/loop/experiments/{}/2", view.id)]
        ),
        candidate
    );
    runtime.shutdown().await;
}
