//! Runs in their own branches and worktrees, merged without touching the person's checkout.

use std::path::Path;
use std::process::Command;

use loop_core::RunStatus;
use loop_core::event::{Event, ExitReason};

use crate::support::{Scratch, count, finish, request, runtime, scratch};

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What the person sees of their checkout: its branch, HEAD, status and every branch ref
/// but the run's.
fn checkout_state(repo: &Path) -> (String, String, String) {
    (
        git(repo, &["symbolic-ref", "HEAD"]),
        git(repo, &["rev-parse", "HEAD"]),
        git(repo, &["status", "--porcelain"]),
    )
}

fn in_worktrees(scratch: &Scratch, config: &[(&str, &str)]) -> loop_runtime::RunRequest {
    let mut all: Vec<(&str, &str)> = vec![("worktree_provider", "git"), ("reviewer", "false")];
    all.extend_from_slice(config);
    request(scratch, "one_task.sh", &all)
}

#[tokio::test]
async fn two_runs_of_one_spec_get_their_own_branches_and_worktrees_and_leave_the_checkout_alone() {
    let scratch = scratch(1);
    let before = checkout_state(&scratch.repo());
    let runtime = runtime(&scratch);
    let first = runtime
        .submit(in_worktrees(&scratch, &[]))
        .await
        .expect("submit");
    let first = finish(&runtime, first.id).await;
    let second = runtime
        .submit(in_worktrees(&scratch, &[]))
        .await
        .expect("submit");
    let second = finish(&runtime, second.id).await;
    for run in [&first, &second] {
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    }
    assert_eq!(first.worktree.run_branch.as_deref(), Some("run/feature"));
    assert_eq!(second.worktree.run_branch.as_deref(), Some("run/feature-2"));
    let root = scratch.dir.path();
    assert_eq!(
        first.worktree.worktree_path.as_deref(),
        Some(root.join("repo.run-feature").to_str().expect("utf-8"))
    );
    assert_eq!(
        second.worktree.worktree_path.as_deref(),
        Some(root.join("repo.run-feature-2").to_str().expect("utf-8"))
    );
    // Each branch has its run's commit; the person's checkout did not move.
    assert!(
        git(&scratch.repo(), &["log", "--format=%s", "run/feature"])
            .contains("task of iteration 1")
    );
    assert_eq!(checkout_state(&scratch.repo()), before);
    // A completed run keeps its worktree for review.
    assert!(root.join("repo.run-feature").join("work.txt").is_file());
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_stray_directory_at_the_worktree_path_is_refused_and_left_alone() {
    let scratch = scratch(1);
    let stray = scratch.dir.path().join("repo.run-feature");
    std::fs::create_dir_all(&stray).expect("stray dir");
    std::fs::write(stray.join("mine.txt"), "keep me").expect("stray file");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(in_worktrees(&scratch, &[]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(
        done.failure_reason
            .as_deref()
            .unwrap_or("")
            .contains("already exists"),
        "{done:?}"
    );
    assert_eq!(
        std::fs::read_to_string(stray.join("mine.txt")).expect("still there"),
        "keep me"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn squash_and_merge_each_land_one_verified_result_on_the_target() {
    for strategy in ["squash", "merge"] {
        let scratch = scratch(2);
        let before = checkout_state(&scratch.repo());
        let base = git(&scratch.repo(), &["rev-parse", "main"]);
        let runtime = runtime(&scratch);
        let config = [
            ("merge_target_branch", "integration"),
            ("merge_strategy", strategy),
            ("verify_cmds", "test -f work.txt"),
        ];
        let run = runtime
            .submit(in_worktrees(&scratch, &config))
            .await
            .expect("submit");
        let done = finish(&runtime, run.id).await;
        assert_eq!(done.status, RunStatus::Completed, "{strategy}: {done:?}");
        let repo = scratch.repo();
        let subject = git(&repo, &["log", "-1", "--format=%s", "integration"]);
        assert_eq!(
            subject,
            format!("loop: feature (run {})", run.id),
            "{strategy}"
        );
        let parents = git(&repo, &["log", "-1", "--format=%P", "integration"]);
        match strategy {
            "squash" => assert_eq!(parents, base, "one commit on the base"),
            _ => assert_eq!(parents.split(' ').count(), 2, "a merge commit"),
        }
        assert_eq!(
            git(&repo, &["show", "integration:work.txt"])
                .lines()
                .count(),
            2
        );
        assert_eq!(
            checkout_state(&repo),
            before,
            "{strategy}: the checkout did not move"
        );
        let records = runtime.events(run.id).await.expect("events");
        assert_eq!(
            count(
                &records,
                |e| matches!(e, Event::MergeFinished(m) if m.commit.is_some())
            ),
            1
        );
        let merge_log = records
            .iter()
            .find_map(|r| match &r.event {
                Event::StepFinished(s) if s.phase == loop_core::event::Phase::Merge => {
                    s.output_path.clone()
                }
                _ => None,
            })
            .expect("a merge step");
        let merge_log = std::fs::read_to_string(merge_log).expect("merge log");
        assert!(
            merge_log.contains("$ test -f work.txt"),
            "verified on the merged result: {merge_log}"
        );
        runtime.shutdown().await;
    }
}

#[tokio::test]
async fn a_merge_conflict_completes_the_run_unmerged_and_leaves_target_and_checkout_as_they_were() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    // The target already changed the file the run will write.
    git(&repo, &["branch", "integration"]);
    git(
        &repo,
        &["worktree", "add", "-q", "../integration-wt", "integration"],
    );
    let other = scratch.dir.path().join("integration-wt");
    std::fs::write(other.join("work.txt"), "someone else's work\n").expect("write");
    git(&other, &["add", "-A"]);
    git(
        &other,
        &[
            "-c",
            "user.name=x",
            "-c",
            "user.email=x@y",
            "commit",
            "-qm",
            "their change",
        ],
    );
    git(
        &repo,
        &["worktree", "remove", "--force", "../integration-wt"],
    );
    let target_before = git(&repo, &["rev-parse", "integration"]);
    let before = checkout_state(&repo);

    let runtime = runtime(&scratch);
    let config = [
        ("merge_target_branch", "integration"),
        ("merge_strategy", "squash"),
    ];
    let run = runtime
        .submit(in_worktrees(&scratch, &config))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    // The run's work is done and verified: it completes, its merge recorded as not landed.
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.exit_reason, Some(ExitReason::CompletePlan));
    let merge = done.merge.clone().expect("the merge is recorded");
    assert!(!merge.landed, "{merge:?}");
    assert!(
        merge
            .problem
            .as_deref()
            .unwrap_or("")
            .starts_with("conflict"),
        "{merge:?}"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "integration"]),
        target_before,
        "the target did not move"
    );
    assert_eq!(checkout_state(&repo), before);
    assert!(
        git(&repo, &["branch", "--list", "run/feature"]).contains("run/feature"),
        "run branch kept"
    );
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(
            &records,
            |e| matches!(e, Event::MergeFinished(m) if m.conflict.is_some())
        ),
        1
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_failed_runs_worktree_is_removed_and_its_branch_kept() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(in_worktrees(
            &scratch,
            &[
                ("verify_cmds", "false"),
                ("max_consecutive_verification_failures", "1"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Failed);
    assert!(done.worktree.removed, "{done:?}");
    assert!(!scratch.dir.path().join("repo.run-feature").exists());
    assert!(git(&scratch.repo(), &["branch", "--list", "run/feature"]).contains("run/feature"));
    runtime.shutdown().await;
}

#[tokio::test]
async fn auto_falls_back_to_git_without_worktrunk_and_bad_templates_are_refused_at_submit() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(in_worktrees(
            &scratch,
            &[
                ("worktree_provider", "auto"),
                ("worktrunk_bin", "/nonexistent/wt"),
            ],
        ))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    assert_eq!(done.worktree.provider.as_deref(), Some("git"));

    let error = runtime
        .submit(in_worktrees(
            &scratch,
            &[("worktree_path_template", "../{{ branch }}")],
        ))
        .await
        .expect_err("unknown variable");
    assert!(
        error.to_string().contains("unknown variable \"branch\""),
        "{error}"
    );
    runtime.shutdown().await;
}
