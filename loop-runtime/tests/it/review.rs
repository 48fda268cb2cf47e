//! Review actions on finished runs (diff, merge on demand, scrap, pull request) and the run
//! worktrees on disk (list, remove, collect), on real repositories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use loop_core::event::{
    DiffSide, Event, MergeCode, Phase, ReviewAction, ReviewComment, ReviewKind,
};
use loop_core::projection::RunView;
use loop_core::{DomainError, EventRecord, RunId, RunStatus};
use loop_runtime::{Runtime, RuntimeError};

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

fn branch_exists(repo: &Path, branch: &str) -> bool {
    !git(repo, &["branch", "--list", branch]).is_empty()
}

/// A finished run of `tasks` tasks on its own branch and worktree, with `config` on top.
async fn finished_run(scratch: &Scratch, runtime: &Runtime, config: &[(&str, &str)]) -> RunView {
    let mut all: Vec<(&str, &str)> = vec![("worktree_provider", "git"), ("reviewer", "false")];
    all.extend_from_slice(config);
    let run = runtime
        .submit(request(scratch, "one_task.sh", &all))
        .await
        .expect("submit");
    let done = finish(runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    done
}

fn reviews(records: &[EventRecord]) -> Vec<&ReviewAction> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::ReviewAction(action) => Some(action),
            _ => None,
        })
        .collect()
}

fn worktree_path(run: &RunView) -> PathBuf {
    PathBuf::from(run.worktree.worktree_path.as_deref().expect("a worktree"))
}

#[tokio::test]
async fn diff_of_a_completed_run_shows_its_commits_and_files_with_stats_and_patches() {
    let scratch = scratch(2);
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;

    let diff = runtime.diff(run.id).await.expect("diff");
    assert_eq!(diff.base_branch, "main");
    assert_eq!(diff.run_branch, "run/feature");
    let subjects: Vec<&str> = diff.commits.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, ["task of iteration 2", "task of iteration 1"]);
    assert!(diff.commits.iter().all(|c| c.hash.len() == 40));

    let work = diff
        .files
        .iter()
        .find(|f| f.path == "work.txt")
        .expect("work.txt changed");
    assert_eq!((work.additions, work.deletions, work.binary), (2, 0, false));
    let patch = work.patch.as_deref().expect("a patch");
    assert!(
        patch.starts_with("diff --git a/work.txt b/work.txt"),
        "{patch}"
    );
    assert!(patch.contains("+work 1\n+work 2\n"), "{patch}");
    let plan = diff
        .files
        .iter()
        .find(|f| f.path == "specs/planning/feature-plan.md")
        .expect("the plan changed");
    assert_eq!((plan.additions, plan.deletions), (2, 2));
    assert!(
        plan.patch
            .as_deref()
            .unwrap_or("")
            .contains("+- [x] task 1"),
        "{plan:?}"
    );
    assert_eq!(diff.files.len(), 2, "{:?}", diff.files);
    assert_eq!((diff.additions, diff.deletions), (4, 2));
    assert!(!diff.truncated);
    let json = serde_json::to_value(&diff).expect("serializes");
    assert_eq!(json["files"].as_array().map(Vec::len), Some(2));

    // Looking is a read: the log and the run's times stay as the run left them.
    let before = runtime.get(run.id).await.expect("the run");
    runtime.diff(run.id).await.expect("diff again");
    let after = runtime.get(run.id).await.expect("the run");
    assert_eq!(after.last_seq, before.last_seq, "nothing appended");
    assert_eq!(after.updated_at, before.updated_at);
    let records = runtime.events(run.id).await.expect("events");
    assert!(reviews(&records).is_empty(), "{:?}", reviews(&records));
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_run_still_working_shows_its_work_so_far_but_cannot_be_merged() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "sleep_once.sh",
            &[("worktree_provider", "git"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    wait_for_worktree(&runtime, run.id).await;
    // A person looks at what the run has done so far; that is not a review of its result.
    let diff = runtime.diff(run.id).await.expect("a diff while it works");
    assert_eq!(diff.run_branch, "run/feature");
    let records = runtime.events(run.id).await.expect("events");
    assert!(reviews(&records).is_empty(), "no review action recorded");
    let error = runtime
        .merge(run.id, None, Some("main"))
        .await
        .expect_err("not finished");
    assert!(
        matches!(error, RuntimeError::Domain(_)) && error.to_string().contains("RUNNING"),
        "{error}"
    );
    runtime.cancel(run.id).await.expect("cancel");
    runtime.shutdown().await;
}

#[tokio::test]
async fn merge_on_demand_lands_on_the_target_and_records_review_action() {
    let scratch = scratch(2);
    let repo = scratch.repo();
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[("verify_cmds", "test -f work.txt")]).await;
    let checkout = (
        git(&repo, &["rev-parse", "HEAD"]),
        git(&repo, &["status", "--porcelain"]),
    );

    let error = runtime
        .merge(run.id, None, None)
        .await
        .expect_err("no target anywhere");
    assert!(error.to_string().contains("merge_target_branch"), "{error}");

    let merged = runtime
        .merge(run.id, Some("squash"), Some("integration"))
        .await
        .expect("merge");
    assert_eq!(git(&repo, &["rev-parse", "integration"]), merged.commit);
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%s", "integration"]),
        format!("loop: feature (run {})", run.id)
    );
    assert_eq!(
        git(&repo, &["show", "integration:work.txt"]),
        "work 1\nwork 2"
    );
    let log = std::fs::read_to_string(&merged.log_path).expect("merge log");
    assert!(log.contains("$ test -f work.txt"), "verified: {log}");
    assert_eq!(
        (
            git(&repo, &["rev-parse", "HEAD"]),
            git(&repo, &["status", "--porcelain"]),
        ),
        checkout,
        "the person's checkout did not move"
    );
    let records = runtime.events(run.id).await.expect("events");
    let merge = reviews(&records)
        .into_iter()
        .find(|a| a.action == ReviewKind::Merge)
        .expect("a merge review action");
    assert_eq!(merge.detail["commit"], merged.commit);
    assert_eq!(merge.detail["target"], "integration");
    assert_eq!(merge.detail["strategy"], "squash");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_conflicting_merge_on_demand_is_an_error_and_leaves_the_target_unchanged() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    git(&repo, &["branch", "integration"]);
    let other = scratch.dir.path().join("integration-wt");
    git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            other.to_str().expect("utf-8"),
            "integration",
        ],
    );
    std::fs::write(other.join("work.txt"), "someone else's work\n").expect("write");
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-qm", "their change"]);
    git(
        &repo,
        &[
            "worktree",
            "remove",
            "--force",
            other.to_str().expect("utf-8"),
        ],
    );
    let target_before = git(&repo, &["rev-parse", "integration"]);
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;

    let error = runtime
        .merge(run.id, Some("merge"), Some("integration"))
        .await
        .expect_err("a conflict");
    assert!(
        matches!(
            &error,
            RuntimeError::MergeFailed { code: MergeCode::Conflict, run_id, .. } if *run_id == run.id
        ),
        "{error:?}"
    );
    assert_eq!(git(&repo, &["rev-parse", "integration"]), target_before);
    assert!(branch_exists(&repo, "run/feature"), "run branch kept");
    let records = runtime.events(run.id).await.expect("events");
    let merge = reviews(&records)
        .into_iter()
        .find(|a| a.action == ReviewKind::Merge)
        .expect("the attempt is recorded");
    assert_eq!(merge.detail["code"], "conflict");
    assert!(merge.detail.contains_key("conflict"));
    assert!(!merge.detail.contains_key("commit"));
    runtime.shutdown().await;
}

#[tokio::test]
async fn scrap_removes_the_worktree_and_the_branch() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;
    let path = worktree_path(&run);
    assert!(path.is_dir());
    let head = git(&repo, &["rev-parse", "run/feature"]);

    let scrapped = runtime.scrap(run.id).await.expect("scrap");
    assert_eq!(
        scrapped.worktree_removed.as_deref(),
        path.to_str(),
        "{scrapped:?}"
    );
    assert_eq!(scrapped.branch_deleted.as_deref(), Some("run/feature"));
    assert_eq!(scrapped.branch_commit.as_deref(), Some(head.as_str()));
    assert!(!path.exists());
    assert!(!branch_exists(&repo, "run/feature"));
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "main");

    let view = runtime.get(run.id).await.expect("get");
    assert!(view.worktree.removed);
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(&records, |e| matches!(e, Event::WorktreeRemoved(_))),
        1
    );
    let scrap = reviews(&records)
        .into_iter()
        .find(|a| a.action == ReviewKind::Scrap)
        .expect("recorded");
    assert_eq!(scrap.detail["branch"], "run/feature");
    assert_eq!(scrap.detail["commit"], head);
    runtime.shutdown().await;
}

#[tokio::test]
async fn create_pr_without_a_remote_is_a_clear_error() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;
    let error = runtime
        .create_pr(run.id, Some("A title"), None)
        .await
        .expect_err("no remote");
    let text = error.to_string();
    assert!(
        text.contains("no git remote") && text.contains("git remote add"),
        "{text}"
    );
    let records = runtime.events(run.id).await.expect("events");
    assert!(
        reviews(&records).is_empty(),
        "nothing happened, nothing recorded"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn worktrees_lists_a_finished_runs_worktree_with_its_size() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;
    let listed = runtime
        .worktrees(Some(&scratch.repo()))
        .await
        .expect("worktrees");
    assert_eq!(listed.len(), 1, "{listed:?}");
    let worktree = &listed[0];
    assert_eq!(worktree.run_id, run.id);
    assert_eq!(worktree.status, RunStatus::Completed);
    assert_eq!(worktree.branch, "run/feature");
    assert_eq!(Path::new(&worktree.path), worktree_path(&run));
    assert!(worktree.exists);
    assert!(worktree.bytes > 0, "{worktree:?}");
    // Another workspace has none.
    let elsewhere = runtime
        .worktrees(Some(scratch.dir.path()))
        .await
        .expect("worktrees");
    assert!(elsewhere.is_empty());
    runtime.shutdown().await;
}

#[tokio::test]
async fn gc_dry_run_changes_nothing_and_gc_removes_and_reports_the_bytes_freed() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    let runtime = runtime(&scratch);
    let run = finished_run(&scratch, &runtime, &[]).await;
    let path = worktree_path(&run);
    let events_before = runtime.events(run.id).await.expect("events").len();

    let dry = runtime.gc(None, true, None).await.expect("dry run");
    assert!(dry.dry_run);
    assert_eq!(dry.removed.len(), 1, "{dry:?}");
    assert_eq!(dry.removed[0].run_id, run.id);
    assert!(dry.bytes_freed > 0);
    assert!(path.join("work.txt").is_file(), "still there");
    assert_eq!(
        runtime.events(run.id).await.expect("events").len(),
        events_before,
        "nothing appended"
    );

    // The run ended moments ago: not older than a day.
    let young = runtime
        .gc(None, false, Some(Duration::from_secs(86_400)))
        .await
        .expect("gc");
    assert!(young.removed.is_empty(), "{young:?}");
    assert!(path.is_dir());

    let report = runtime.gc(None, false, None).await.expect("gc");
    assert!(!report.dry_run);
    assert_eq!(report.removed.len(), 1);
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.bytes_freed, dry.bytes_freed);
    assert!(!path.exists());
    assert!(branch_exists(&repo, "run/feature"), "gc keeps the branch");
    let records = runtime.events(run.id).await.expect("events");
    assert_eq!(
        count(&records, |e| matches!(e, Event::WorktreeRemoved(_))),
        1
    );
    assert!(
        runtime.worktrees(None).await.expect("worktrees").is_empty(),
        "nothing left to list"
    );
    runtime.shutdown().await;
}

/// Waits until the run has its worktree and an implementation step in progress.
async fn wait_for_worktree(runtime: &Runtime, run_id: RunId) -> RunView {
    for _ in 0..400 {
        let run = runtime.get(run_id).await.expect("get");
        if run.worktree.worktree_path.is_some()
            && run
                .current_step
                .as_ref()
                .is_some_and(|s| s.phase == Phase::Implementation)
        {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no step started");
}

#[tokio::test]
async fn worktree_rm_takes_only_run_worktrees_and_a_paused_run_only_when_forced() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);

    let error = runtime
        .remove_worktree(&scratch.repo(), true)
        .await
        .expect_err("the person's checkout is no run worktree");
    assert!(
        error.to_string().contains("not the worktree of any run"),
        "{error}"
    );
    assert!(scratch.repo().join("specs/feature.md").is_file());

    let run = runtime
        .submit(request(
            &scratch,
            "sleep_once.sh",
            &[("worktree_provider", "git"), ("reviewer", "false")],
        ))
        .await
        .expect("submit");
    let running = wait_for_worktree(&runtime, run.id).await;
    runtime.pause(run.id).await.expect("pause");
    let path = worktree_path(&running);
    let error = runtime
        .remove_worktree(&path, false)
        .await
        .expect_err("paused");
    assert!(error.to_string().contains("PAUSED"), "{error}");
    assert!(path.is_dir());

    // Named through `..`, as a person might.
    let roundabout = path.join("..").join(path.file_name().expect("a name"));
    let removed = runtime
        .remove_worktree(&roundabout, true)
        .await
        .expect("forced");
    assert_eq!(removed.run_id, run.id);
    assert!(removed.bytes > 0);
    assert!(!path.exists());
    assert!(runtime.get(run.id).await.expect("get").worktree.removed);
    runtime.cancel(run.id).await.expect("cancel");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_request_for_changes_sends_a_finished_run_back_with_the_comments_in_its_prompts() {
    let scratch = scratch(1);
    let repo = loop_testkit::projects::wordfreq(scratch.dir.path().join("wordfreq"));
    let runtime = runtime(&scratch);
    let mut request = request(
        &scratch,
        "wordfreq.sh",
        &[
            ("worktree_provider", "git"),
            ("reviewer", "true"),
            ("verify_cmds", loop_testkit::projects::WORDFREQ_VERIFY),
        ],
    );
    request.workspace_root = repo.clone();
    request.spec_path = loop_testkit::projects::WORDFREQ_SPEC.to_owned();
    let run = runtime.submit(request).await.expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let iterations = done.iteration;

    // A person comments on two lines of the diff and asks for changes.
    let comment = |line: u32, body: &str| ReviewComment {
        path: "wordfreq/counter.py".to_owned(),
        line,
        body: body.to_owned(),
        side: DiffSide::New,
    };
    let first = runtime
        .comment(run.id, comment(27, "top() should refuse a negative n."))
        .await
        .expect("comment");
    assert_eq!((first.line, first.request), (27, None));
    runtime
        .comment(run.id, comment(25, "Say how ties are broken."))
        .await
        .expect("comment");
    let incomplete = runtime.comment(run.id, comment(0, "where?")).await;
    assert!(
        matches!(incomplete, Err(RuntimeError::InvalidRequest { .. })),
        "{incomplete:?}"
    );
    let pending = runtime
        .request_changes(run.id, Some("Otherwise good.".to_owned()))
        .await
        .expect("request changes");
    assert!(
        matches!(pending.status, RunStatus::Pending | RunStatus::Running),
        "{pending:?}"
    );
    let again = finish(&runtime, run.id).await;
    assert_eq!(again.status, RunStatus::Completed, "{again:?}");

    // One more iteration did it: its implementation prompt and its review prompt held the
    // comments, and the code changed as asked.
    let records = runtime.events(run.id).await.expect("events");
    let prompts: Vec<(Phase, u32, String)> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepStarted(step) if step.iteration > iterations => Some((
                step.phase,
                step.iteration,
                step.prompt_path.clone().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    let phases: Vec<Phase> = prompts.iter().map(|p| p.0).collect();
    assert_eq!(
        phases,
        [Phase::Implementation, Phase::Review, Phase::Verification],
        "{prompts:?}"
    );
    assert_eq!(prompts[0].1, iterations + 1);
    let asked = "- wordfreq/counter.py, line 27: top() should refuse a negative n.\n\
                 - wordfreq/counter.py, line 25: Say how ties are broken.\n\
                 - On the whole change: Otherwise good.\n";
    for (phase, _, path) in &prompts[..2] {
        let prompt = std::fs::read_to_string(path).expect("the step's prompt");
        assert!(prompt.contains(asked), "{phase:?} prompt:\n{prompt}");
    }
    let worktree = worktree_path(&again);
    let code = std::fs::read_to_string(worktree.join("wordfreq/counter.py")).expect("the code");
    assert!(code.contains("raise ValueError"), "{code}");
    assert_eq!(
        git(&worktree, &["log", "-1", "--format=%s"]),
        "top: refuse a negative n, as asked in review"
    );
    // The comments say which request took them; the run's state says it is done with them.
    let listed = runtime.comments(run.id).await.expect("comments");
    let requests: Vec<Option<u32>> = listed.iter().map(|c| c.request).collect();
    assert_eq!(requests, [Some(1), Some(1)]);
    assert_eq!(
        count(&records, |e| matches!(e, Event::ChangesRequested(_))),
        1
    );
    // Without a new comment or words there is nothing to ask for.
    let nothing = runtime.request_changes(run.id, None).await;
    assert!(
        matches!(
            nothing,
            Err(RuntimeError::Domain(DomainError::NothingRequested))
        ),
        "{nothing:?}"
    );
    runtime.shutdown().await;
}
