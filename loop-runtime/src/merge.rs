//! Merging a finished run's branch into the target without touching the person's checkout.
//!
//! The merge happens in a temporary detached worktree of the target: `merge` (a merge commit)
//! or `squash` (one commit), then the run's `verify_cmds` run there, and only when they pass
//! does the target ref move, with a compare-and-swap on its old value. A conflict or a failing
//! check leaves the target where it was and keeps the run branch.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::git;
use crate::step_output::StepOutput;
use crate::verify;

/// What to merge where.
#[derive(Debug)]
pub(crate) struct MergePlan<'a> {
    /// The main repository (not a worktree of it).
    pub repo: &'a Path,
    pub run_branch: &'a str,
    pub base_branch: &'a str,
    pub target: &'a str,
    /// `merge` or `squash`.
    pub strategy: &'a str,
    pub message: &'a str,
    pub verify_cmds: &'a [String],
    pub verify_timeout: Option<Duration>,
    pub env: &'a [(String, String)],
    /// Where the temporary worktree goes (removed afterwards).
    pub scratch: &'a Path,
}

/// Why a merge did not land; `code` is the `merge_failed:<code>` of the run's reason.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MergeFailure {
    pub code: &'static str,
    pub detail: String,
}

fn failure(code: &'static str, detail: impl ToString) -> MergeFailure {
    MergeFailure {
        code,
        detail: detail.to_string(),
    }
}

/// Merges and verifies; the new commit of the target.
pub(crate) async fn merge(
    plan: &MergePlan<'_>,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> Result<String, MergeFailure> {
    let repo = plan.repo;
    if git::branch_commit(repo, plan.target).await.is_none() {
        git::run(repo, &["branch", plan.target, plan.base_branch])
            .await
            .map_err(|e| failure("git", e))?;
    }
    let checked_out = git::worktrees(repo)
        .await
        .map_err(|e| failure("git", e))?
        .into_iter()
        .find(|w| w.branch.as_deref() == Some(plan.target));
    if let Some(worktree) = checked_out {
        return Err(failure(
            "target_checked_out",
            format!(
                "{} is checked out in {}; moving it would change that checkout under its owner",
                plan.target, worktree.path
            ),
        ));
    }
    let old = git::branch_commit(repo, plan.target)
        .await
        .ok_or_else(|| failure("git", format!("{} has no commit", plan.target)))?;

    let scratch = plan.scratch.to_string_lossy().into_owned();
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    git::run(repo, &["worktree", "add", "--detach", &scratch, &old])
        .await
        .map_err(|e| failure("git", e))?;
    let result = merge_in(plan, &old, output, cancel).await;
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    result
}

async fn merge_in(
    plan: &MergePlan<'_>,
    old: &str,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> Result<String, MergeFailure> {
    let dir = plan.scratch;
    let merged = match plan.strategy {
        "merge" => {
            git::run(
                dir,
                &["merge", "--no-ff", "-m", plan.message, plan.run_branch],
            )
            .await
        }
        _ => match git::run(dir, &["merge", "--squash", plan.run_branch]).await {
            Ok(_)
                if git::run(dir, &["diff", "--cached", "--quiet"])
                    .await
                    .is_ok() =>
            {
                // Nothing to squash: the target already has every change.
                Ok(String::new())
            }
            Ok(_) => git::run(dir, &["commit", "-m", plan.message]).await,
            Err(error) => Err(error),
        },
    };
    if let Err(error) = merged {
        output.line(&format!(
            "merge of {} into {} failed: {error}",
            plan.run_branch, plan.target
        ));
        return Err(failure("conflict", error.stderr));
    }
    output.line(&format!(
        "merged {} into {} ({})",
        plan.run_branch, plan.target, plan.strategy
    ));
    for command in plan.verify_cmds {
        let run = verify::run_command(command, dir, plan.env, plan.verify_timeout, output, cancel)
            .await
            .map_err(|e| failure("verification", e))?;
        if !run.passed() {
            return Err(failure(
                "verification",
                format!("`{command}` failed on the merged result"),
            ));
        }
    }
    let new = git::head(dir)
        .await
        .ok_or_else(|| failure("git", "the merged result has no HEAD"))?;
    git::run(
        plan.repo,
        &[
            "update-ref",
            &format!("refs/heads/{}", plan.target),
            &new,
            old,
        ],
    )
    .await
    .map_err(|e| failure("target_moved", e))?;
    Ok(new)
}
