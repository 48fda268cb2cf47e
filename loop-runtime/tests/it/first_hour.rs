//! What a person's first real run met, each now the way a newcomer expects: a merge into the
//! branch they are on, a prompt they have not committed, logs git never sees, agent calls that
//! never run in their checkout, a retried run that keeps the earlier attempt's logs.

use std::path::Path;

use loop_core::RunStatus;
use loop_core::event::{Event, Phase};

use crate::support::{Scratch, finish, request, request_without_agent, runtime, scratch};

fn git(dir: &Path, args: &[&str]) -> String {
    loop_testkit::git(dir, args)
}

fn in_worktree(scratch: &Scratch, config: &[(&str, &str)]) -> loop_runtime::RunRequest {
    let mut all: Vec<(&str, &str)> = vec![("worktree_provider", "git"), ("reviewer", "false")];
    all.extend_from_slice(config);
    request(scratch, "one_task.sh", &all)
}

/// Runs the plan with a merge into `main` that does not land: the run COMPLETED, and why the
/// merge is pending.
async fn completed_with_merge_pending(
    runtime: &loop_runtime::Runtime,
    scratch: &Scratch,
) -> (loop_core::projection::RunView, String) {
    let run = runtime
        .submit(in_worktree(scratch, &[("merge_target_branch", "main")]))
        .await
        .expect("submit");
    let done = finish(runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let merge = done.merge.clone().expect("the merge is recorded");
    assert!(!merge.landed, "{merge:?}");
    (done, merge.problem.unwrap_or_default())
}

#[tokio::test]
async fn a_merge_into_the_branch_the_person_is_on_updates_their_clean_checkout() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(in_worktree(&scratch, &[("merge_target_branch", "main")]))
        .await
        .expect("submit");
    let done = finish(&runtime, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{done:?}");
    let merge = done.merge.expect("merged on completion");
    assert!(merge.landed, "{merge:?}");
    // The checkout is on main and moved with it, as `git merge` would have: the run's work is
    // in its files, and nothing is left staged or changed.
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "main");
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD"]),
        merge.commit.clone().unwrap()
    );
    assert!(repo.join("work.txt").is_file(), "the run's work is there");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_merge_refused_by_a_dirty_checkout_leaves_the_run_completed_and_can_be_done_later() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    // The person is editing a tracked file on main while the run works.
    std::fs::write(repo.join("specs/feature.md"), "# Feature\n\nediting…\n").expect("edit");
    let runtime = runtime(&scratch);
    let (run, problem) = completed_with_merge_pending(&runtime, &scratch).await;
    assert!(
        problem.contains("uncommitted changes") && problem.contains("loopctl merge"),
        "{problem}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("specs/feature.md")).unwrap(),
        "# Feature\n\nediting…\n",
        "the person's edit is untouched"
    );

    // They commit their edit; the merge goes through on demand, into their checkout.
    git(&repo, &["commit", "-qam", "my edit"]);
    let merged = runtime.merge(run.id, None, None).await.expect("merge");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), merged.commit);
    assert!(repo.join("work.txt").is_file());
    let view = runtime.get(run.id).await.expect("get");
    assert!(view.merge.expect("merge").landed);
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_plan_never_committed_in_the_checkout_is_named_when_it_blocks_the_merge() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    // The person wrote the plan and never committed it: the run takes a copy, and its agent
    // commits the ticked plan on the run's branch.
    git(
        &repo,
        &["rm", "-q", "--cached", "specs/planning/feature-plan.md"],
    );
    git(&repo, &["commit", "-qm", "the plan is not tracked"]);
    let runtime = runtime(&scratch);
    let (run, problem) = completed_with_merge_pending(&runtime, &scratch).await;
    assert!(
        problem.contains("target_untracked")
            && problem.contains("specs/planning/feature-plan.md")
            && problem.contains("move them away"),
        "{problem}"
    );
    assert!(
        std::fs::read_to_string(repo.join("specs/planning/feature-plan.md"))
            .unwrap()
            .contains("- [ ]"),
        "the person's own plan is untouched"
    );

    // Moved away, the merge lands and brings the run's plan.
    std::fs::rename(
        repo.join("specs/planning/feature-plan.md"),
        repo.parent().expect("the scratch dir").join("my-plan.md"),
    )
    .expect("move the plan away");
    let merged = runtime.merge(run.id, None, None).await.expect("merge");
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), merged.commit);
    assert!(
        std::fs::read_to_string(repo.join("specs/planning/feature-plan.md"))
            .unwrap()
            .contains("- [x]")
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_uncommitted_prompt_in_the_checkout_is_the_one_the_run_sends() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    std::fs::create_dir_all(repo.join(".loop")).expect("dir");
    std::fs::write(
        repo.join(".loop/prompt.txt"),
        "House rules first.\nThe spec:\n@SPEC_PATH\nThe plan:\n@PLAN_PATH\n",
    )
    .expect("prompt");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(in_worktree(&scratch, &[]))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let dir = runtime.run_dir(run.id).await.expect("run dir");
    let sent = std::fs::read_to_string(dir.join("prompt.txt")).expect("prompt");
    assert!(sent.starts_with("House rules first."), "{sent}");
    assert!(sent.contains("@specs/planning/feature-plan.md\n"), "{sent}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_missing_prompt_file_is_refused_at_submit() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let error = runtime
        .submit(in_worktree(
            &scratch,
            &[("prompt_file", "prompts/nope.txt")],
        ))
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("prompt_file"), "{error}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_plan_still_holding_the_templates_placeholders_is_refused_at_submit() {
    let scratch = Scratch::with(|repo| {
        repo.plan(
            "# Plan\n\n## Tasks\n\n- [ ] <first task: the smallest piece>\n- [ ] <second task>\n",
        )
    });
    let runtime = runtime(&scratch);
    let error = runtime
        .submit(in_worktree(&scratch, &[]))
        .await
        .expect_err("refused");
    let said = error.to_string();
    assert!(
        said.contains("feature-plan.md:5 is still a placeholder") && said.contains("<first task"),
        "{said}"
    );
    let runs = runtime.list(Default::default()).await.expect("list");
    assert!(runs.is_empty(), "nothing started: {runs:?}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_plan_without_tasks_is_refused_at_submit_not_completed_with_nothing_done() {
    let scratch = Scratch::with(|repo| repo.plan("# Plan\n\nWe will see.\n"));
    let runtime = runtime(&scratch);
    let error = runtime
        .submit(in_worktree(&scratch, &[]))
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("has no tasks"), "{error}");
    let runs = runtime.list(Default::default()).await.expect("list");
    assert!(runs.is_empty(), "nothing started: {runs:?}");
    runtime.shutdown().await;
}

#[tokio::test]
async fn run_logs_are_kept_out_of_the_persons_git() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    // No .gitignore for the logs: the tool ignores its own files.
    std::fs::remove_file(repo.join(".gitignore")).expect("no ignore file");
    git(&repo, &["commit", "-qam", "no ignore file"]);
    let runtime = runtime(&scratch);
    // In the checkout itself, where the agent's `git add -A` would have committed the logs.
    let run = runtime
        .submit(request(&scratch, "one_task.sh", &[("reviewer", "false")]))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let exclude = std::fs::read_to_string(repo.join(".git/info/exclude")).expect("exclude");
    assert!(exclude.lines().any(|l| l == "/logs/loop/"), "{exclude}");
    let tracked = git(&repo, &["ls-files"]);
    assert!(!tracked.contains("logs/"), "{tracked}");
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    runtime.shutdown().await;
}

#[tokio::test]
async fn naming_and_postmortem_calls_never_run_in_the_persons_checkout() {
    let scratch = scratch(1);
    let repo = scratch.repo();
    // A Claude stand-in that records where each call ran.
    let stub = scratch.dir.path().join("where.sh");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$LOOP_PHASE $(pwd -P)\" >> \"$LOOP_RUN_DIR/where\"\nexec {} \"$@\"\n",
            loop_testkit::agents::path("claude_stub.sh").display()
        ),
    )
    .expect("stub");
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("executable");
    let stub = stub.to_string_lossy().into_owned();
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request_without_agent(
            &scratch,
            &[
                ("agent", "claude"),
                ("claude_bin", &stub),
                ("reviewer", "false"),
                ("run_naming_mode", "haiku"),
                ("postmortem", "always"),
                ("worktree_provider", "git"),
            ],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    runtime.wait_postmortem(run.id).await.expect("postmortem");
    let dir = runtime.run_dir(run.id).await.expect("run dir");
    let calls = std::fs::read_to_string(dir.join("where")).expect("calls");
    let checkout = repo.canonicalize().unwrap().to_string_lossy().into_owned();
    let phases: Vec<&str> = calls
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert!(
        phases.contains(&"naming") && phases.contains(&"postmortem"),
        "{calls}"
    );
    for line in calls.lines() {
        let (phase, at) = line.split_once(' ').unwrap();
        assert_ne!(
            at, checkout,
            "the {phase} call ran in the person's checkout"
        );
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn a_retried_run_keeps_the_earlier_attempts_logs() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request(
            &scratch,
            "one_task.sh",
            &[
                ("reviewer", "false"),
                ("verify_cmds", "test -f retried"),
                ("max_consecutive_verification_failures", "1"),
            ],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Failed);
    std::fs::write(scratch.repo().join("retried"), "").expect("fix");
    scratch.fresh_plan(1);
    runtime.retry(run.id).await.expect("retry");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let records = runtime.events(run.id).await.expect("events");
    let logs: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.event {
            Event::StepFinished(s) if s.phase == Phase::Implementation => s.output_path.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(logs.len(), 2, "{logs:?}");
    assert_ne!(logs[0], logs[1], "the retry wrote a log of its own");
    for log in &logs {
        assert!(Path::new(log).is_file(), "{log} is still there");
    }
    runtime.shutdown().await;
}

#[tokio::test]
async fn an_agent_that_exits_badly_after_its_answer_is_recorded_so() {
    let scratch = scratch(1);
    std::fs::write(scratch.repo().join(".stub-plan"), "exit1\n").expect("stub plan");
    let stub = loop_testkit::agents::path("claude_stub.sh");
    let runtime = runtime(&scratch);
    let run = runtime
        .submit(request_without_agent(
            &scratch,
            &[
                ("agent", "claude"),
                ("claude_bin", stub.to_str().expect("utf-8")),
                ("reviewer", "false"),
            ],
        ))
        .await
        .expect("submit");
    assert_eq!(finish(&runtime, run.id).await.status, RunStatus::Completed);
    let steps = runtime.steps(run.id).await.expect("steps");
    let step = &steps[0];
    // The answer was served and stands, but the exit status is not lost.
    assert_eq!(step.exit_code, Some(1), "{step:?}");
    assert!(
        step.message
            .as_deref()
            .unwrap_or("")
            .contains("exited with status 1"),
        "{step:?}"
    );
    runtime.shutdown().await;
}

#[tokio::test]
async fn runs_of_one_spec_get_names_no_other_run_has() {
    let scratch = scratch(1);
    let runtime = runtime(&scratch);
    let mut names = Vec::new();
    for _ in 0..6 {
        let run = runtime
            .submit(request(&scratch, "hang.sh", &[("reviewer", "false")]))
            .await
            .expect("submit");
        names.push(run.name);
    }
    assert_eq!(
        names,
        [
            "feature",
            "feature-2",
            "feature-3",
            "feature-4",
            "feature-5",
            "feature-6"
        ]
    );
    // A name given explicitly is taken as it is.
    let mut named = request(&scratch, "hang.sh", &[("reviewer", "false")]);
    named.name = Some("feature-9".to_owned());
    let run = runtime.submit(named).await.expect("submit");
    assert_eq!(run.name, "feature-9");
    runtime.shutdown().await;
}
