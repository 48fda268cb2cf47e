//! Merging a finished run's branch into the target.
//!
//! The merge happens in a temporary detached worktree of the target: `merge` (a merge commit)
//! or `squash` (one commit), then the run's `verify_cmds` run there, and only when they pass
//! does the target move: with a compare-and-swap on the ref's old value, or, when the target
//! is checked out in a worktree (the person's own checkout, usually), by a fast-forward there,
//! which updates its files as `git merge` would. A checkout with uncommitted changes is left
//! alone and the merge refused, saying what to do. A conflict or a failing check leaves the
//! target where it was and keeps the run branch.
//!
//! A run by URL (`repo_url`) merges onto the target as `origin` has it, fetched just before,
//! and lands by pushing with that commit as the lease (`--force-with-lease`): the
//! compare-and-swap is the remote's, so a target someone pushed to meanwhile refuses it.

use std::path::{Path, PathBuf};

use loop_core::config::MergeStrategy;
use tokio_util::sync::CancellationToken;

use crate::git;
use crate::run_context::RunContext;
use crate::step_output::StepOutput;
use crate::verify;

/// A run's branch to merge into a target: the merge on completion and the one on demand.
#[derive(Debug)]
pub(crate) struct RunMerge<'a> {
    pub run: &'a RunContext,
    pub run_branch: &'a str,
    pub base_branch: &'a str,
    pub target: &'a str,
    pub strategy: MergeStrategy,
    /// The iteration it follows (`LOOP_ITERATION` of the verification commands).
    pub iteration: u32,
    /// Where the temporary worktree goes (removed afterwards).
    pub scratch: &'a Path,
}

impl RunMerge<'_> {
    /// Merges and verifies; the new commit of the target.
    pub(crate) async fn land(
        &self,
        output: &mut StepOutput,
        cancel: &CancellationToken,
    ) -> Result<String, MergeFailure> {
        let workspace = Path::new(&self.run.created.workspace_root);
        let repo = match git::main_repo(&self.run.workdir).await {
            Ok(repo) => repo,
            Err(_) => git::main_repo(workspace)
                .await
                .unwrap_or_else(|_| workspace.to_owned()),
        };
        let plan = MergePlan {
            repo,
            source: self.run_branch.to_owned(),
            merge: self,
            message: self.run.merge_message(),
            env: self.run.env(self.iteration, "merge"),
        };
        if self.run.repo_url.is_some() {
            return merge_by_push(plan, output, cancel).await;
        }
        merge(&plan, output, cancel).await
    }
}

/// A merge with everything resolved.
struct MergePlan<'a> {
    /// The main repository (not a worktree of it).
    repo: PathBuf,
    /// What is merged: the run branch, or for a run by URL the run branch as `origin` has it.
    source: String,
    merge: &'a RunMerge<'a>,
    message: String,
    env: Vec<(String, String)>,
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

async fn merge(
    plan: &MergePlan<'_>,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> Result<String, MergeFailure> {
    let repo = &plan.repo;
    let RunMerge {
        target,
        base_branch,
        scratch,
        ..
    } = *plan.merge;
    if git::branch_commit(repo, target).await.is_none() {
        git::run(repo, &["branch", target, base_branch])
            .await
            .map_err(|e| failure("git", e))?;
    }
    let checked_out = git::worktrees(repo)
        .await
        .map_err(|e| failure("git", e))?
        .into_iter()
        .find(|w| w.branch.as_deref() == Some(target))
        .map(|w| PathBuf::from(w.path));
    if let Some(checkout) = &checked_out {
        let changes = git::run(checkout, &["status", "--porcelain", "--untracked-files=no"])
            .await
            .map_err(|e| failure("git", e))?;
        if !changes.is_empty() {
            return Err(failure(
                "target_dirty",
                format!(
                    "{target} is checked out in {} with uncommitted changes; commit or stash \
                     them there, then merge again (`loopctl merge <run>`)",
                    checkout.display()
                ),
            ));
        }
    }
    let old = git::branch_commit(repo, target)
        .await
        .ok_or_else(|| failure("git", format!("{target} has no commit")))?;

    let scratch = scratch.to_string_lossy().into_owned();
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    git::run(repo, &["worktree", "add", "--detach", &scratch, &old])
        .await
        .map_err(|e| failure("git", e))?;
    let result = match merge_in(plan, output, cancel).await {
        Ok(new) => match checked_out.as_deref() {
            // Its branch and its files move together, and only forward: if the target moved
            // meanwhile, or a change appeared, the fast-forward refuses and nothing changes.
            Some(checkout) => git::run(checkout, &["merge", "--ff-only", "--quiet", &new])
                .await
                .map(|_| new)
                .map_err(|e| checkout_refused(target, checkout, e)),
            None => git::run(
                repo,
                &["update-ref", &format!("refs/heads/{target}"), &new, &old],
            )
            .await
            .map(|_| new)
            .map_err(|e| failure("target_moved", e)),
        },
        Err(failed) => Err(failed),
    };
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    result
}

/// [`merge`] for a run by URL: onto `origin`'s target, landed by a push that names the commit
/// it merged onto as the lease.
async fn merge_by_push(
    mut plan: MergePlan<'_>,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> Result<String, MergeFailure> {
    let RunMerge {
        target,
        base_branch,
        run_branch,
        scratch,
        ..
    } = *plan.merge;
    let target = target.strip_prefix("origin/").unwrap_or(target);
    crate::repos::fetch(&plan.repo)
        .await
        .map_err(|e| failure("git", e))?;
    // The branch as pushed: the driving node pushed it after its last step, and a node that
    // never drove the run has no other.
    let pushed = format!("origin/{run_branch}");
    if git::run(&plan.repo, &["rev-parse", "--verify", "--quiet", &pushed])
        .await
        .is_ok()
    {
        plan.source = pushed;
    }
    let plan = &plan;
    let repo = &plan.repo;
    let remote = format!("refs/remotes/origin/{target}");
    // A target the remote lacks starts from the run's base; the lease then says "absent".
    let (old, lease) = match git::run(repo, &["rev-parse", "--verify", "--quiet", &remote]).await {
        Ok(old) => (old.clone(), old),
        Err(_) => {
            let base = git::run(repo, &["rev-parse", "--verify", base_branch])
                .await
                .map_err(|e| failure("git", e))?;
            (base, String::new())
        }
    };
    let scratch = scratch.to_string_lossy().into_owned();
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    git::run(repo, &["worktree", "add", "--detach", &scratch, &old])
        .await
        .map_err(|e| failure("git", e))?;
    let result = match merge_in(plan, output, cancel).await {
        Ok(new) => {
            let lease = format!("--force-with-lease=refs/heads/{target}:{lease}");
            let refspec = format!("{new}:refs/heads/{target}");
            match git::run(repo, &["push", "--quiet", &lease, "origin", &refspec]).await {
                Ok(_) => {
                    output.line(&format!("pushed {target} to origin"));
                    Ok(new)
                }
                Err(error) => Err(failure(
                    "target_moved",
                    format!(
                        "{target} on origin moved while the merge was verified, or the push \
                         was refused ({}); merge again (`loopctl merge <run>`)",
                        error.stderr
                    ),
                )),
            }
        }
        Err(failed) => Err(failed),
    };
    let _ = git::run(repo, &["worktree", "remove", "--force", &scratch]).await;
    result
}

/// Merges the run branch in the scratch worktree and runs the checks there; the merged
/// commit, for the caller to land.
async fn merge_in(
    plan: &MergePlan<'_>,
    output: &mut StepOutput,
    cancel: &CancellationToken,
) -> Result<String, MergeFailure> {
    let RunMerge {
        run,
        run_branch,
        target,
        strategy,
        scratch: dir,
        ..
    } = *plan.merge;
    let merged = match strategy {
        MergeStrategy::Merge => {
            git::run(
                dir,
                &["merge", "--no-ff", "-m", &plan.message, &plan.source],
            )
            .await
        }
        MergeStrategy::Squash | MergeStrategy::None => {
            match git::run(dir, &["merge", "--squash", &plan.source]).await {
                Ok(_)
                    if git::run(dir, &["diff", "--cached", "--quiet"])
                        .await
                        .is_ok() =>
                {
                    // Nothing to squash: the target already has every change.
                    Ok(String::new())
                }
                Ok(_) => git::run(dir, &["commit", "-m", &plan.message]).await,
                Err(error) => Err(error),
            }
        }
    };
    if let Err(error) = merged {
        output.line(&format!(
            "merge of {run_branch} into {target} failed: {error}"
        ));
        return Err(failure("conflict", error.stderr));
    }
    output.line(&format!("merged {run_branch} into {target} ({strategy})"));
    for command in &run.config.verify_cmds {
        let timeout = run.config.verify_timeout;
        let result = verify::run_command(command, dir, &plan.env, timeout, output, cancel)
            .await
            .map_err(|e| failure("verification", e))?;
        if !result.passed() {
            return Err(failure(
                "verification",
                format!("`{command}` failed on the merged result"),
            ));
        }
    }
    git::head(dir)
        .await
        .ok_or_else(|| failure("git", "the merged result has no HEAD"))
}

/// Why git would not move a checked-out target forward. Files the person has not added to git
/// (typically the spec and plan they wrote before the run, which the run committed) would be
/// overwritten: git refuses, and so do we, naming them and what to do; they are the person's
/// and may differ from the run's versions. Committing them would not help (both sides would add
/// the file: a conflict), moving them away does.
fn checkout_refused(target: &str, checkout: &Path, error: git::GitError) -> MergeFailure {
    const UNTRACKED: &str = "untracked working tree files would be overwritten by merge:";
    let Some((_, rest)) = error.stderr.split_once(UNTRACKED) else {
        return failure("target_moved", error);
    };
    let files: Vec<&str> = rest
        .lines()
        .map(str::trim)
        .skip_while(|line| line.is_empty())
        .take_while(|line| {
            !line.is_empty() && !line.starts_with("Please") && !line.starts_with("Aborting")
        })
        .collect();
    failure(
        "target_untracked",
        format!(
            "{target} is checked out in {} with files git does not track that the merge would \
             overwrite: {}; move them away (the run's branch has its own versions, which the merge \
             brings), then merge again (`loopctl merge <run>`)",
            checkout.display(),
            files.join(", ")
        ),
    )
}
