//! The actions on a finished run's branch: merge it, scrap it, open a pull request for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use loop_core::config::MergeStrategy;
use loop_core::event::{ReviewAction, ReviewKind};
use loop_core::{Command, DomainError, RunId, RunStatus, StepId};

use super::{
    MergeOutcome, PullRequest, RunBranch, ScrapOutcome, check_owner, detail, invalid, main_repo,
    require_finished, view_of,
};
use crate::error::RuntimeError;
use crate::git;
use crate::merge::RunMerge;
use crate::services::Services;
use crate::step_output::StepOutput;

/// How long `git push` and each `gh` call may take before they are stopped.
const PR_TIMEOUT: Duration = Duration::from_secs(120);
/// Merges a COMPLETED run's branch into `target` (default: its `merge_target_branch`) with
/// `strategy` (`merge` or `squash`; default: its `merge_strategy`, `squash` when that is
/// `none`), the way a merge on completion does: in a temporary worktree, verified with the
/// run's `verify_cmds`, the target ref moved only if it has not moved meanwhile.
///
/// Records `REVIEW_ACTION {action: merge, detail {commit, target, strategy}}`; a merge that
/// does not land records `detail {code, conflict, target, strategy}`, leaves the target
/// where it was and is [`RuntimeError::MergeFailed`].
pub(crate) async fn merge(
    services: &Services,
    run_id: RunId,
    strategy: Option<&str>,
    target: Option<&str>,
) -> Result<MergeOutcome, RuntimeError> {
    let view = view_of(services, run_id).await?;
    // Runs of earlier versions failed when their merge on completion did not land; their work
    // was done and verified all the same, so they may be merged too.
    let merge_failed_earlier = view.status == RunStatus::Failed
        && services
            .journal
            .read_run(run_id)
            .await?
            .iter()
            .rev()
            .find_map(|record| match &record.event {
                loop_core::event::Event::RunFailed(failed) => Some(failed.merge_did_not_land()),
                _ => None,
            })
            .unwrap_or(false);
    if view.status != RunStatus::Completed && !merge_failed_earlier {
        return Err(DomainError::IllegalInState {
            action: "merge",
            status: view.status,
        }
        .into());
    }
    let branch = RunBranch::of(view)?;
    let run = services.run_context(run_id).await?;
    let target = match target.filter(|t| !t.is_empty()) {
        Some(target) => target.to_owned(),
        None => run.config.merge_target_branch.clone().ok_or_else(|| {
            invalid(
                format!("merge of run {run_id}"),
                "the run has no merge_target_branch: name the branch to merge into",
            )
        })?,
    };
    crate::repos::check_branch("target", &target).await?;
    if target == branch.run_branch {
        return Err(invalid(
            format!("merge of run {run_id}"),
            format!("{target} is the run's own branch"),
        ));
    }
    let strategy = match strategy {
        None if run.config.merge_strategy == MergeStrategy::Merge => MergeStrategy::Merge,
        None => MergeStrategy::Squash,
        Some(name) => MergeStrategy::parse(name)
            .filter(|strategy| *strategy != MergeStrategy::None)
            .ok_or_else(|| {
                invalid(
                    "merge strategy",
                    format!("{name:?} is not one of merge, squash"),
                )
            })?,
    };
    // A run by URL merges what was pushed (`merge::RunMerge::land`); this node may never have
    // driven it, and then has no branch of its own to check.
    let by_url = crate::repos::url_of(&branch.view.workspace_root);
    if let Some(url) = by_url {
        crate::repos::fetched(&services.data_dir, url)
            .await
            .map_err(|error| invalid(format!("merge of run {run_id}"), error.to_string()))?;
    }
    let repo = main_repo(&branch.workspace(&services.data_dir)).await?;
    if by_url.is_none()
        || git::branch_commit(&repo, &branch.run_branch)
            .await
            .is_some()
    {
        check_owner(&repo, &branch.run_branch, run_id).await?;
    }

    let files = &run.files;
    let io = |what: &str| {
        let what = what.to_owned();
        move |source| RuntimeError::Io { what, source }
    };
    files.create().map_err(io("the run directory"))?;
    let log_name = "review-merge.log";
    let log_path = files.path(log_name);
    // Nobody follows this output live: it is not a step of the run.
    let (live, _) = tokio::sync::broadcast::channel(1);
    let mut output = StepOutput::create(
        run_id,
        StepId::from_uuid(uuid::Uuid::now_v7()),
        &log_path,
        live,
    )
    .map_err(io(log_name))?;
    // A scratch directory of its own, so two merges at once never share one.
    let scratch = services
        .data_dir
        .join("merge")
        .join(format!("{run_id}-review-{}", uuid::Uuid::new_v4().simple()));
    let merge = RunMerge {
        run: &run,
        run_branch: &branch.run_branch,
        base_branch: &branch.base_branch,
        target: &target,
        strategy,
        iteration: branch.view.iteration,
        scratch: &scratch,
    };
    let cancel = services.shutdown.child_token();
    let result = merge.land(&mut output, &cancel).await;
    // The merge happened or not either way: a log that could not be written must not
    // keep it out of the run's record.
    let written = output
        .finish()
        .and_then(|_| files.record("review_merge", log_name))
        .unwrap_or_default();
    let mut commands: Vec<Command> = written.into_iter().map(Command::RecordArtifact).collect();
    let (detail, outcome) = match result {
        Ok(commit) => (
            detail([
                ("commit", commit.clone()),
                ("target", target.clone()),
                ("strategy", strategy.to_string()),
            ]),
            Ok(MergeOutcome {
                run_id,
                commit,
                target,
                strategy: strategy.to_string(),
                log_path: log_path.to_string_lossy().into_owned(),
            }),
        ),
        Err(failure) => (
            detail([
                ("code", failure.code.to_string()),
                ("conflict", failure.detail.clone()),
                ("target", target),
                ("strategy", strategy.to_string()),
            ]),
            Err(RuntimeError::MergeFailed {
                run_id,
                code: failure.code,
                detail: failure.detail,
            }),
        ),
    };
    commands.push(Command::Review(ReviewAction {
        action: ReviewKind::Merge,
        detail,
    }));
    services.journal.execute(run_id, commands).await?;
    outcome
}

/// Throws a finished run's work away: removes its worktree (recording `WORKTREE_REMOVED`)
/// and deletes its branch, then records `REVIEW_ACTION {action: scrap, detail {branch,
/// commit, worktree}}`. A branch that another run has taken since is refused.
pub(crate) async fn scrap(
    services: &Services,
    run_id: RunId,
) -> Result<ScrapOutcome, RuntimeError> {
    let view = view_of(services, run_id).await?;
    require_finished(&view, "scrap")?;
    let branch = RunBranch::of(view)?;
    let repo = main_repo(&branch.workspace(&services.data_dir)).await?;
    check_owner(&repo, &branch.run_branch, run_id).await?;
    let worktree_removed = services.remove_worktree_of(run_id).await?;
    // A worktree deleted by hand still holds its branch until git forgets it.
    let _ = git::run(&repo, &["worktree", "prune"]).await;
    let commit = git::branch_commit(&repo, &branch.run_branch).await;
    if commit.is_some() {
        git::run(&repo, &["branch", "-D", &branch.run_branch])
            .await
            .map_err(|error| {
                invalid(
                    format!("scrap of run {run_id}"),
                    format!("cannot delete {}: {}", branch.run_branch, error.stderr),
                )
            })?;
    }
    let mut pairs = BTreeMap::new();
    pairs.insert("branch".to_owned(), branch.run_branch.clone());
    if let Some(commit) = &commit {
        pairs.insert("commit".to_owned(), commit.clone());
    }
    if let Some(path) = &worktree_removed {
        pairs.insert("worktree".to_owned(), path.clone());
    }
    services
        .journal
        .execute(
            run_id,
            vec![Command::Review(ReviewAction {
                action: ReviewKind::Scrap,
                detail: pairs,
            })],
        )
        .await?;
    Ok(ScrapOutcome {
        run_id,
        worktree_removed,
        branch_deleted: commit.is_some().then(|| branch.run_branch.clone()),
        branch_commit: commit,
    })
}

/// Pushes a finished run's branch to the repository's remote (`origin`, else the first
/// one) and opens a pull request with `gh pr create` against its `merge_target_branch`, else
/// its base branch. Records `REVIEW_ACTION {action: create_pr, detail {url, branch, base,
/// remote}}`. Without a remote, or without `gh`, nothing is pushed and the error says what
/// to do.
pub(crate) async fn create_pr(
    services: &Services,
    run_id: RunId,
    title: Option<&str>,
    body: Option<&str>,
) -> Result<PullRequest, RuntimeError> {
    let view = view_of(services, run_id).await?;
    require_finished(&view, "create a pull request for")?;
    let branch = RunBranch::of(view)?;
    let what = || format!("pull request for run {run_id}");
    let repo = main_repo(&branch.workspace(&services.data_dir)).await?;
    if git::branch_commit(&repo, &branch.run_branch)
        .await
        .is_none()
    {
        return Err(invalid(
            what(),
            format!("the branch {} no longer exists", branch.run_branch),
        ));
    }
    let remotes = git::run(&repo, &["remote"])
        .await
        .map_err(|e| invalid(what(), e.to_string()))?;
    let remotes: Vec<&str> = remotes.lines().filter(|r| !r.is_empty()).collect();
    let Some(remote) = remotes
        .iter()
        .find(|r| **r == "origin")
        .or(remotes.first())
        .map(|r| (*r).to_owned())
    else {
        return Err(invalid(
            what(),
            format!(
                "the repository {} has no git remote to push {} to: add one \
                 (`git remote add origin <url>`), or merge it locally instead",
                repo.display(),
                branch.run_branch
            ),
        ));
    };
    let no_gh = |reason: String| {
        invalid(
            what(),
            format!(
                "the GitHub CLI `gh` is needed to open a pull request ({reason}): install \
                 it (https://cli.github.com) and run `gh auth login`"
            ),
        )
    };
    match tool("gh", &["--version"], &repo, PR_TIMEOUT).await {
        Ok(_) => {}
        Err(ToolError::Missing) => return Err(no_gh("it is not on PATH".to_owned())),
        Err(error) => return Err(no_gh(error.to_string())),
    }
    tool(
        "git",
        &["push", "-u", &remote, &branch.run_branch],
        &repo,
        PR_TIMEOUT,
    )
    .await
    .map_err(|error| {
        invalid(
            what(),
            format!("cannot push {} to {remote}: {error}", branch.run_branch),
        )
    })?;
    let base = branch
        .view
        .worktree
        .merge_target_branch
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| branch.base_branch.clone());
    let title = title
        .filter(|t| !t.trim().is_empty())
        .map_or_else(|| format!("loop: {}", branch.view.name), str::to_owned);
    let body = body.map_or_else(
        || {
            format!(
                "Run `{run_id}` of loop on `{}`: {} of {} tasks in {} iterations.",
                branch.view.spec_path,
                branch.view.tasks_done,
                branch.view.tasks_total,
                branch.view.iteration
            )
        },
        str::to_owned,
    );
    let answer = tool(
        "gh",
        &[
            "pr",
            "create",
            "--head",
            &branch.run_branch,
            "--base",
            &base,
            "--title",
            &title,
            "--body",
            &body,
        ],
        &repo,
        PR_TIMEOUT,
    )
    .await
    .map_err(|error| invalid(what(), format!("`gh pr create` failed: {error}")))?;
    let url = answer
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with("http"))
        .unwrap_or(answer.trim())
        .to_owned();
    services
        .journal
        .execute(
            run_id,
            vec![Command::Review(ReviewAction {
                action: ReviewKind::CreatePr,
                detail: detail([
                    ("url", url.clone()),
                    ("branch", branch.run_branch.clone()),
                    ("base", base.clone()),
                    ("remote", remote.clone()),
                ]),
            })],
        )
        .await?;
    Ok(PullRequest {
        run_id,
        url,
        branch: branch.run_branch,
        base,
        remote,
    })
}

/// Why a `git push` or `gh` call failed.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error("not found")]
    Missing,
    #[error("gave no answer within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("{0}")]
    Failed(String),
}

/// Runs a program that may talk to a network: stdin closed, no prompts, stopped (and its
/// process killed) after `timeout`. Its stdout, or what it said when it failed.
async fn tool(
    program: &str,
    args: &[&str],
    dir: &Path,
    timeout: Duration,
) -> Result<String, ToolError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GH_PROMPT_DISABLED", "1")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing,
            _ => ToolError::Failed(error.to_string()),
        })?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| ToolError::TimedOut(timeout))?
        .map_err(|error| ToolError::Failed(error.to_string()))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Err(ToolError::Failed(if stderr.is_empty() {
        format!("{} ({})", stdout, output.status)
    } else {
        stderr
    }))
}
