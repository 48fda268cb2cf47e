//! What a person does with a finished run, and with the run worktrees left on disk.
//!
//! Review actions — the diff against the base, a merge on demand, scrapping the branch, a pull
//! request — each record `REVIEW_ACTION {action, detail}`. A merge on demand takes the same safe
//! path as the merge on completion ([`crate::merge`]: a temporary worktree of the target, the
//! run's `verify_cmds` there, a compare-and-swap of the target ref), so the person's checkout is
//! never touched. Worktrees of runs can be listed with their size, removed one by one, or
//! collected once their run is over; each removal records `WORKTREE_REMOVED`. Run branches are
//! only ever deleted by a scrap.

mod actions;
mod diff;
mod worktrees;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loop_core::projection::RunView;
use loop_core::{DomainError, RunId, RunStatus};
use serde::Serialize;

use crate::error::RuntimeError;
use crate::git;
use crate::services::Services;

pub(crate) use actions::{create_pr, merge, scrap};
pub(crate) use diff::diff;
pub(crate) use worktrees::{gc, remove_worktree, worktrees};

/// A finished run's work against its base branch (`GET /runs/{id}/diff`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunDiff {
    pub run_id: RunId,
    pub base_branch: String,
    pub run_branch: String,
    /// Commits on the run branch that the base branch does not have, newest first.
    pub commits: Vec<DiffCommit>,
    /// Files changed since the run branch left the base (`git diff base...run`), renames
    /// detected.
    pub files: Vec<FileDiff>,
    pub additions: u64,
    pub deletions: u64,
    /// Some patches were left out to keep the answer under 8 MiB (their stats are there).
    pub truncated: bool,
}

/// One commit of a run branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffCommit {
    pub hash: String,
    pub author: String,
    /// RFC 3339.
    pub authored_at: String,
    pub subject: String,
}

/// One file changed by a run, with its stats and unified patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDiff {
    pub path: String,
    /// The path before a rename.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub binary: bool,
    /// The patch from its `diff --git` line on; `None` when left out for size.
    pub patch: Option<String>,
}

/// A merge on demand that landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeOutcome {
    pub run_id: RunId,
    /// The target's new commit.
    pub commit: String,
    pub target: String,
    pub strategy: String,
    /// The merge's log in the run directory (the verification output is there).
    pub log_path: String,
}

/// What a scrap removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScrapOutcome {
    pub run_id: RunId,
    /// The worktree removed, when the run still had one.
    pub worktree_removed: Option<String>,
    /// The branch deleted, when it still existed.
    pub branch_deleted: Option<String>,
    /// The commit the branch pointed at: `git branch <branch> <commit>` brings it back.
    pub branch_commit: Option<String>,
}

/// A pull request opened for a run branch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    pub run_id: RunId,
    pub url: String,
    pub branch: String,
    pub base: String,
    pub remote: String,
}

/// A run's worktree on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunWorktree {
    pub run_id: RunId,
    pub name: String,
    pub status: RunStatus,
    pub workspace_root: String,
    pub provider: String,
    pub path: String,
    pub branch: String,
    /// When the run last changed (RFC 3339).
    pub updated_at: String,
    /// Bytes of every file under the worktree, plus git's administrative files for it (its
    /// index, under the repository's `.git/worktrees/`): what removing it frees.
    pub bytes: u64,
    /// Whether the directory is still there (it may have been deleted by hand).
    pub exists: bool,
}

/// What a garbage collection removed, or would remove on a dry run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    pub dry_run: bool,
    pub removed: Vec<RunWorktree>,
    pub bytes_freed: u64,
    /// Worktrees that could not be removed, and why; the others were removed regardless.
    pub failed: Vec<GcFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcFailure {
    pub run_id: RunId,
    pub path: String,
    pub error: String,
}

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
                if provider != "none" && !run_branch.is_empty() && run_branch != base_branch =>
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

    fn workspace(&self) -> PathBuf {
        PathBuf::from(&self.view.workspace_root)
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
    if worktree.removed || worktree.provider.as_deref().is_none_or(|p| p == "none") {
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
    let store = Arc::clone(services.journal.store());
    crate::journal::blocking(move || store.run_view(run_id))
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
    let key = format!("branch.{branch}.loop-run");
    match git::run(repo, &["config", "--get", &key]).await {
        Ok(owner) if !owner.is_empty() && owner != run_id.to_string() => Err(invalid(
            format!("branch {branch}"),
            format!("it belongs to run {owner} now, not to run {run_id}; it was left alone"),
        )),
        _ => Ok(()),
    }
}
