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
use loop_core::event::MergeCode;
use tokio_util::sync::CancellationToken;

use crate::git;
use crate::repos::fence::{Fence, FenceError, Update};
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

impl<'m> RunMerge<'m> {
    /// Merges and verifies, then lands: the new commit of the target. (The merge on demand;
    /// the merge on completion records its [`Prepared`] merge before landing it.)
    pub(crate) async fn land(
        &self,
        output: &mut StepOutput,
        cancel: &CancellationToken,
    ) -> Result<String, MergeFailure> {
        let prepared = self.prepare(output, cancel).await?;
        match prepared.land(output, None).await {
            Ok(commit) => Ok(commit),
            Err(LandError::Failed(failure)) => Err(failure),
            Err(LandError::Fenced(_)) => Err(failure(
                MergeCode::TargetMoved,
                "the run's fence on the remote moved: another node holds the run",
            )),
        }
    }

    /// Merges in a temporary worktree of the target and verifies the result there: what would
    /// land, and onto what, with the worktree kept until [`Prepared::land`] or
    /// [`Prepared::discard`].
    pub(crate) async fn prepare(
        &'m self,
        output: &mut StepOutput,
        cancel: &CancellationToken,
    ) -> Result<Prepared<'m>, MergeFailure> {
        let workspace = Path::new(&self.run.created.workspace_root);
        let repo = match git::main_repo(&self.run.workdir).await {
            Ok(repo) => repo,
            Err(_) => git::main_repo(workspace)
                .await
                .unwrap_or_else(|_| workspace.to_owned()),
        };
        let mut plan = MergePlan {
            repo,
            source: self.run_branch.to_owned(),
            merge: self,
            message: self.run.merge_message(),
            env: self.run.env(self.iteration, "merge"),
        };
        let target = if self.run.repo_url.is_some() {
            by_push(&mut plan).await?
        } else {
            local(&plan).await?
        };
        let onto = match &target {
            Target::Local { old, .. } => Some(old.clone()),
            Target::Remote { lease, .. } => lease.clone(),
        };
        let start = match &target {
            Target::Local { old, .. } | Target::Remote { old, .. } => old.clone(),
        };
        let scratch = self.scratch.to_string_lossy().into_owned();
        let _ = git::run(&plan.repo, &["worktree", "remove", "--force", &scratch]).await;
        git::run(
            &plan.repo,
            &["worktree", "add", "--detach", &scratch, &start],
        )
        .await
        .map_err(|e| failure(MergeCode::Git, e))?;
        let prepared = Prepared {
            commit: String::new(),
            onto,
            target,
            plan,
        };
        match merge_in(&prepared.plan, output, cancel).await {
            Ok(commit) => Ok(Prepared { commit, ..prepared }),
            Err(failed) => {
                prepared.discard().await;
                Err(failed)
            }
        }
    }
}

/// Where a prepared merge lands.
#[derive(Debug)]
enum Target {
    /// A branch of this machine's repository, at `old` when the merge was made; checked out
    /// in `checkout` (the person's own checkout, usually), or not.
    Local {
        old: String,
        checked_out: Option<PathBuf>,
    },
    /// A branch of `origin` (a run by URL): made onto `old`; the push's lease is `lease`
    /// (`None`: the remote has no such branch yet).
    Remote {
        branch: String,
        old: String,
        lease: Option<String>,
    },
}

/// A merge made and verified in its temporary worktree, not landed yet.
#[derive(Debug)]
pub(crate) struct Prepared<'a> {
    /// The commit the target moves to (the target's own when it had every change already).
    pub commit: String,
    /// The target's commit it was made onto (`None`: a remote with no such branch yet).
    pub onto: Option<String>,
    target: Target,
    plan: MergePlan<'a>,
}

/// Why a prepared merge did not land.
#[derive(Debug)]
pub(crate) enum LandError {
    Failed(MergeFailure),
    /// The run's fence on the remote is no longer where this node left it (another node moved
    /// it; what it says now is here): the remote refused the push whole.
    Fenced(Option<loop_core::fence::FenceEntry>),
}

impl Prepared<'_> {
    /// Moves the target to [`Prepared::commit`] if it is still where the merge was made: with a
    /// compare-and-swap of the ref, a fast-forward of its checkout, or (a run by URL) a push
    /// with the old commit as its lease, atomic with the run's `fence` when there is one.
    pub(crate) async fn land(
        self,
        output: &mut StepOutput,
        fence: Option<&mut Fence>,
    ) -> Result<String, LandError> {
        let repo = &self.plan.repo;
        let new = self.commit.clone();
        let target = self.plan.merge.target;
        let result = match &self.target {
            // Its branch and its files move together, and only forward: if the target moved
            // meanwhile, or a change appeared, the fast-forward refuses and nothing changes.
            Target::Local {
                checked_out: Some(checkout),
                ..
            } => git::run(checkout, &["merge", "--ff-only", "--quiet", &new])
                .await
                .map(|_| new)
                .map_err(|e| LandError::Failed(checkout_refused(target, checkout, e))),
            Target::Local { old, .. } => git::run(
                repo,
                &["update-ref", &format!("refs/heads/{target}"), &new, old],
            )
            .await
            .map(|_| new)
            .map_err(|e| LandError::Failed(failure(MergeCode::TargetMoved, e))),
            Target::Remote { branch, lease, .. } => {
                let reference = format!("refs/heads/{branch}");
                let moved = |detail: String| {
                    LandError::Failed(failure(
                        MergeCode::TargetMoved,
                        format!(
                            "{branch} on origin moved while the merge was verified, or the push \
                             was refused ({detail}); merge again (`loopctl merge <run>`)"
                        ),
                    ))
                };
                let pushed = match fence {
                    Some(fence) => {
                        let update = Update {
                            reference: &reference,
                            old: lease.as_deref(),
                            new: &new,
                        };
                        match fence
                            .push(repo, &[update], &format!("merge into {branch}"))
                            .await
                        {
                            Ok(()) => Ok(()),
                            Err(FenceError::Refused(error)) => Err(moved(error.stderr)),
                            Err(FenceError::Git(error)) => Err(moved(error.stderr)),
                            Err(FenceError::Moved(now)) => Err(LandError::Fenced(now)),
                        }
                    }
                    None => {
                        let lease = format!(
                            "--force-with-lease={reference}:{}",
                            lease.as_deref().unwrap_or_default()
                        );
                        let refspec = format!("{new}:{reference}");
                        git::run(repo, &["push", "--quiet", &lease, "origin", &refspec])
                            .await
                            .map(drop)
                            .map_err(|error| moved(error.stderr))
                    }
                };
                pushed.map(|()| {
                    output.line(&format!("pushed {branch} to origin"));
                    new
                })
            }
        };
        self.discard().await;
        result
    }

    /// Removes the temporary worktree; nothing lands.
    pub(crate) async fn discard(self) {
        let scratch = self.plan.merge.scratch.to_string_lossy().into_owned();
        let _ = git::run(
            &self.plan.repo,
            &["worktree", "remove", "--force", &scratch],
        )
        .await;
    }
}

/// A merge with everything resolved.
#[derive(Debug)]
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
    pub code: MergeCode,
    pub detail: String,
}

fn failure(code: MergeCode, detail: impl ToString) -> MergeFailure {
    MergeFailure {
        code,
        detail: detail.to_string(),
    }
}

/// The target in this machine's repository: made from the base when missing; refused when it
/// is checked out with uncommitted changes.
async fn local(plan: &MergePlan<'_>) -> Result<Target, MergeFailure> {
    let repo = &plan.repo;
    let RunMerge {
        target,
        base_branch,
        ..
    } = *plan.merge;
    if git::branch_commit(repo, target).await.is_none() {
        git::run(repo, &["branch", target, base_branch])
            .await
            .map_err(|e| failure(MergeCode::Git, e))?;
    }
    let checked_out = git::worktrees(repo)
        .await
        .map_err(|e| failure(MergeCode::Git, e))?
        .into_iter()
        .find(|w| w.branch.as_deref() == Some(target))
        .map(|w| PathBuf::from(w.path));
    if let Some(checkout) = &checked_out {
        let changes = git::run(checkout, &["status", "--porcelain", "--untracked-files=no"])
            .await
            .map_err(|e| failure(MergeCode::Git, e))?;
        if !changes.is_empty() {
            return Err(failure(
                MergeCode::TargetDirty,
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
        .ok_or_else(|| failure(MergeCode::Git, format!("{target} has no commit")))?;
    Ok(Target::Local { old, checked_out })
}

/// The target for a run by URL: `origin`'s, fetched now, merged from the run branch as pushed.
async fn by_push(plan: &mut MergePlan<'_>) -> Result<Target, MergeFailure> {
    let RunMerge {
        target,
        base_branch,
        run_branch,
        ..
    } = *plan.merge;
    let target = target.strip_prefix("origin/").unwrap_or(target);
    crate::repos::fetch(&plan.repo)
        .await
        .map_err(|e| failure(MergeCode::Git, e))?;
    // The branch as pushed: the driving node pushed it after its last step, and a node that
    // never drove the run has no other.
    let pushed = format!("origin/{run_branch}");
    if git::run(&plan.repo, &["rev-parse", "--verify", "--quiet", &pushed])
        .await
        .is_ok()
    {
        plan.source = pushed;
    }
    let remote = format!("refs/remotes/origin/{target}");
    // A target the remote lacks starts from the run's base; the lease then says "absent".
    match git::run(&plan.repo, &["rev-parse", "--verify", "--quiet", &remote]).await {
        Ok(old) => Ok(Target::Remote {
            branch: target.to_owned(),
            lease: Some(old.clone()),
            old,
        }),
        Err(_) => {
            let base = git::run(&plan.repo, &["rev-parse", "--verify", base_branch])
                .await
                .map_err(|e| failure(MergeCode::Git, e))?;
            Ok(Target::Remote {
                branch: target.to_owned(),
                old: base,
                lease: None,
            })
        }
    }
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
        return Err(failure(MergeCode::Conflict, error.stderr));
    }
    output.line(&format!("merged {run_branch} into {target} ({strategy})"));
    for command in &run.config.verify_cmds {
        let timeout = run.config.verify_timeout;
        let result = verify::run_command(command, dir, &plan.env, timeout, output, cancel)
            .await
            .map_err(|e| failure(MergeCode::Verification, e))?;
        if !result.passed() {
            return Err(failure(
                MergeCode::Verification,
                format!("`{command}` failed on the merged result"),
            ));
        }
    }
    git::head(dir)
        .await
        .ok_or_else(|| failure(MergeCode::Git, "the merged result has no HEAD"))
}

/// Why git would not move a checked-out target forward. Files the person has not added to git
/// (typically the spec and plan they wrote before the run, which the run committed) would be
/// overwritten: git refuses, and so do we, naming them and what to do; they are the person's
/// and may differ from the run's versions. Committing them would not help (both sides would add
/// the file: a conflict), moving them away does.
fn checkout_refused(target: &str, checkout: &Path, error: git::GitError) -> MergeFailure {
    const UNTRACKED: &str = "untracked working tree files would be overwritten by merge:";
    let Some((_, rest)) = error.stderr.split_once(UNTRACKED) else {
        return failure(MergeCode::TargetMoved, error);
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
        MergeCode::TargetUntracked,
        format!(
            "{target} is checked out in {} with files git does not track that the merge would \
             overwrite: {}; move them away (the run's branch has its own versions, which the merge \
             brings), then merge again (`loopctl merge <run>`)",
            checkout.display(),
            files.join(", ")
        ),
    )
}
