//! What a person does with a finished run, and with the run worktrees left on disk.
//!
//! The diff against the base is a read and records nothing. Comments on its lines are recorded
//! (`REVIEW_COMMENT`) and go back to the agent with a request for changes. Review actions — a merge on demand,
//! scrapping the branch, a pull request — each record `REVIEW_ACTION {action, detail}`. A merge on demand takes the same safe
//! path as the merge on completion ([`crate::merge`]: a temporary worktree of the target, the
//! run's `verify_cmds` there, a compare-and-swap of the target ref), so the person's checkout is
//! never touched. Worktrees of runs can be listed with their size, removed one by one, or
//! collected once their run is over; each removal records `WORKTREE_REMOVED`. Run branches are
//! only ever deleted by a scrap.

mod actions;
mod comments;
mod diff;
mod worktrees;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use loop_core::event::Provider;
use loop_core::projection::RunView;
use loop_core::{DomainError, RunId};

use crate::error::RuntimeError;
use crate::git;
use crate::services::Services;

pub(crate) use actions::{create_pr, merge, scrap};
pub(crate) use comments::{comment, comments};
pub(crate) use diff::{commit_diff, diff};
pub use loop_api::review::{
    DiffCommit, FileDiff, GcFailure, GcReport, MergeOutcome, PullRequest, RunDiff, RunWorktree,
    ScrapOutcome,
};
pub(crate) use worktrees::{gc, remove_worktree, worktrees};

/// The branch a run worked on, as its log records it.
struct RunBranch {
    view: RunView,
    run_branch: String,
    base_branch: String,
}

impl RunBranch {
    fn of(view: RunView) -> Result<RunBranch, RuntimeError> {
        let worktree = &view.worktree;
        match (
            worktree.provider.as_deref(),
            worktree.run_branch.clone(),
            worktree.base_branch.clone(),
        ) {
            (Some(provider), Some(run_branch), Some(base_branch))
                if Provider::parse(provider).has_worktree()
                    && !run_branch.is_empty()
                    && run_branch != base_branch =>
            {
                Ok(RunBranch {
                    view,
                    run_branch,
                    base_branch,
                })
            }
            _ => Err(invalid(
                format!("run {}", view.id),
                "it has no branch of its own (it worked in the workspace itself, or never got \
                 a worktree)",
            )),
        }
    }

    /// The repository on this node: the workspace, or this node's checkout of a run by URL.
    fn workspace(&self, data_dir: &Path) -> PathBuf {
        crate::repos::workspace_dir(data_dir, &self.view.workspace_root)
    }
}

fn invalid(what: impl Into<String>, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidRequest {
        what: what.into(),
        reason: reason.into(),
    }
}

fn require_finished(view: &RunView, action: &'static str) -> Result<(), RuntimeError> {
    if view.status.is_terminal() {
        Ok(())
    } else {
        Err(DomainError::IllegalInState {
            action,
            status: view.status,
        }
        .into())
    }
}

/// The worktree a run still has on disk, by its log: (path, branch).
fn live_worktree(view: &RunView) -> Option<(String, String)> {
    let worktree = &view.worktree;
    if worktree.removed
        || worktree
            .provider
            .as_deref()
            .is_none_or(|p| !Provider::parse(p).has_worktree())
    {
        return None;
    }
    Some((
        worktree.worktree_path.clone()?,
        worktree.run_branch.clone().unwrap_or_default(),
    ))
}

fn detail<const N: usize>(pairs: [(&str, String); N]) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// The run as its stored projection shows it.
async fn view_of(services: &Services, run_id: RunId) -> Result<RunView, RuntimeError> {
    services
        .journal
        .read(move |store| store.run_view(run_id))
        .await?
        .ok_or(RuntimeError::UnknownRun(run_id))
}

/// The main repository of the one `dir` is in (not a worktree of it).
async fn main_repo(dir: &Path) -> Result<PathBuf, RuntimeError> {
    git::main_repo(dir)
        .await
        .map_err(|error| invalid(format!("repository of {}", dir.display()), error.stderr))
}

/// Refuses a branch that records another run as its owner: its name was free again and a
/// later run took it.
async fn check_owner(repo: &Path, branch: &str, run_id: RunId) -> Result<(), RuntimeError> {
    match git::branch_owner(repo, branch).await {
        Some(owner) if owner != run_id.to_string() => Err(invalid(
            format!("branch {branch}"),
            format!("it belongs to run {owner} now, not to run {run_id}; it was left alone"),
        )),
        _ => Ok(()),
    }
}
