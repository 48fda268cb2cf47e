//! Runs in worktrees made by Worktrunk, here a stub `wt` (`agents/wt_stub.sh`) copied into each
//! test's temp dir, where it logs its calls and does what `wt` would with plain git.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loop_core::RunStatus;
use loop_core::event::{Event, Provider};

use crate::support::{Scratch, count, finish, request, runtime, scratch};

/// The stub `wt`, ready to run from the scratch dir.
fn stub_wt(scratch: &Scratch) -> PathBuf {
    let from = loop_testkit::agents::path("wt_stub.sh");
    let to = scratch.dir.path().join("wt");
    std::fs::copy(from, &to).expect("copy the stub");
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    to
}

/// The arguments of each `wt` call, in order.
fn wt_calls(scratch: &Scratch) -> Vec<String> {
    std::fs::read_to_string(scratch.dir.path().join("wt.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn with_worktrunk(
    scratch: &Scratch,
    wt: &Path,
    config: &[(&str, &str)],
) -> loop_runtime::RunRequest {
    let wt = wt.to_str().expect("utf-8");
    let mut all: Vec<(&str, &str)> = vec![
        ("worktree_provider", "worktrunk"),
        ("worktrunk_bin", wt),
        ("reviewer", "false"),
    ];
    all.extend_from_slice(config);
    request(scratch, "one_task.sh", &all)
}

/// A run through Worktrunk that fails at its first verification (so its worktree is removed).
fn failing_with_worktrunk(scratch: &Scratch, wt: &Path) -> loop_runtime::RunRequest {
    with_worktrunk(
        scratch,
        wt,
        &[
            ("verify_cmds", "false"),
            ("max_consecutive_verification_failures", "1"),
        ],
    )
}

/// Where the stub puts the worktree of `run/feature`, Worktrunk's default path.
fn feature_worktree(scratch: &Scratch) -> PathBuf {
    std::fs::canonicalize(scratch.dir.path())
        .expect("temp dir")
        .join("repo.run-feature")
}

#[tokio::test]
async fn a_run_works_in_the_worktree_worktrunk_made_for_its_branch() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(with_worktrunk(&scratch, &wt, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.worktree.provider.as_deref(), Some("worktrunk"));
    assert_eq!(done.worktree.run_branch.as_deref(), Some("run/feature"));
    assert_eq!(done.worktree.base_branch.as_deref(), Some("main"));
    let worktree = feature_worktree(&scratch);
    assert_eq!(
        done.worktree.worktree_path.as_deref(),
        Some(worktree.to_str().expect("utf-8"))
    );
    assert!(
        worktree.join("work.txt").is_file(),
        "the agent worked there"
    );
    let calls = wt_calls(&scratch);
    assert!(
        calls.contains(
            &"switch --create run/feature --base main --no-cd --format json -y".to_owned()
        ),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("step copy-ignored")),
        "copy-ignored is off by default: {calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("remove")),
        "a completed run keeps its worktree: {calls:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn copy_ignored_and_the_config_file_are_handed_to_worktrunk_when_set() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    let wt_config = scratch.dir.path().join("wt-config.toml");
    let wt_config = wt_config.to_str().expect("utf-8");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(with_worktrunk(
            &scratch,
            &wt,
            &[
                ("worktrunk_copy_ignored", "true"),
                ("worktrunk_config_path", wt_config),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let calls = wt_calls(&scratch);
    let switch = calls.iter().position(|c| c.starts_with("switch --create"));
    let copy = calls
        .iter()
        .position(|c| c == "step copy-ignored --to run/feature");
    assert!(
        matches!((switch, copy), (Some(s), Some(c)) if s < c),
        "{calls:?}"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.dir.path().join("wt.config-path"))
            .expect("WORKTRUNK_CONFIG_PATH was set")
            .trim(),
        wt_config
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_failed_runs_worktree_is_removed_by_worktrunk_in_the_foreground() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(failing_with_worktrunk(&scratch, &wt))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    assert!(done.worktree.removed, "{done:?}");
    assert!(!feature_worktree(&scratch).exists());
    let calls = wt_calls(&scratch);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("remove run/feature --foreground -y"),
        "{calls:?}"
    );
    runtime.shutdown().await;
}

/// The end is in the log before the worktree is gone and the files are written; the run's
/// directory is not handed out in between, so a client that saw the end finds `summary.json`.
#[tokio::test]
async fn the_run_directory_of_an_ended_run_is_given_once_its_files_are_written() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    std::fs::write(scratch.dir.path().join("slow-remove"), "").expect("slow remove");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(failing_with_worktrunk(&scratch, &wt))
        .await
        .expect("submit");
    let mut events = runtime.subscribe(Some(run.id), loop_core::Seq(0));
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(record) = events.next().await {
            if record.expect("an event").event.is_terminal() {
                return;
            }
        }
        panic!("the stream ended before the run");
    });
    ended.await.expect("the run ends within a minute");
    let dir = runtime.run_dir(run.id).await.expect("run dir");
    let summary = std::fs::read_to_string(dir.join("summary.json")).expect("summary.json");
    assert!(summary.contains("\"exit_reason\""), "{summary}");
    assert!(!feature_worktree(&scratch).exists());
    runtime.shutdown().await;
}

#[tokio::test]
async fn auto_picks_worktrunk_when_it_answers() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(with_worktrunk(
            &scratch,
            &wt,
            &[("worktree_provider", "auto")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::WorktreeProviderSelected(p) if p.provider == Provider::Worktrunk)
        ),
        1
    );
    assert_eq!(
        wt_calls(&scratch).first().map(String::as_str),
        Some("--version")
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn auto_falls_back_to_git_when_wt_does_not_answer_in_time() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    std::fs::write(scratch.dir.path().join("hang"), "").expect("hang");
    let runtime = runtime(&scratch);
    let started = std::time::Instant::now();
    let run = runtime
        .submit(with_worktrunk(
            &scratch,
            &wt,
            &[("worktree_provider", "auto")],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.worktree.provider.as_deref(), Some("git"));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "gave up on wt after its time limit: {:?}",
        started.elapsed()
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn worktrunk_asked_for_but_missing_fails_the_run_saying_so() {
    let scratch = scratch(1);
    let missing = scratch.dir.path().join("no-such-wt");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(with_worktrunk(&scratch, &missing, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let reason = done.failure_reason.as_deref().unwrap_or("");
    assert!(reason.contains("worktree_provider=worktrunk"), "{reason}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_failing_wt_switch_fails_the_run_with_the_command_its_status_and_what_it_said() {
    let scratch = scratch(1);
    let wt = stub_wt(&scratch);
    std::fs::write(scratch.dir.path().join("fail-switch"), "").expect("fail switch");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(with_worktrunk(&scratch, &wt, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed, "{done:?}");
    let reason = done.failure_reason.as_deref().unwrap_or("");
    for part in [
        "switch --create run/feature --base main --no-cd --format json -y",
        "exit status: 3",
        "hook post-create failed for run/feature",
    ] {
        assert!(reason.contains(part), "{part:?} in {reason}");
    }
    assert!(!reason.contains('\n'), "one line: {reason}");
    runtime.shutdown().await;
}
