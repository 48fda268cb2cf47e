//! After a run: its diff, the review actions (merge, scrap, pull request) and the worktrees
//! runs leave on disk.

use std::path::PathBuf;

use loop_core::{RunId, RunStatus};
use serde::{Deserialize, Serialize};

/// A finished run's work against its base branch (`GET /runs/{id}/diff`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffCommit {
    pub hash: String,
    pub author: String,
    /// RFC 3339.
    pub authored_at: String,
    pub subject: String,
}

/// One file changed by a run, with its stats and unified patch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileDiff {
    pub path: String,
    /// The path before a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub binary: bool,
    /// The patch from its `diff --git` line on; `None` when left out for size.
    pub patch: Option<String>,
}

/// A merge on demand that landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequest {
    pub run_id: RunId,
    pub url: String,
    pub branch: String,
    pub base: String,
    pub remote: String,
}

/// A run's worktree on disk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcReport {
    pub dry_run: bool,
    pub removed: Vec<RunWorktree>,
    pub bytes_freed: u64,
    /// Worktrees that could not be removed, and why; the others were removed regardless.
    pub failed: Vec<GcFailure>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcFailure {
    pub run_id: RunId,
    pub path: String,
    pub error: String,
}

/// `{"diff": RunDiff}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DiffEnvelope {
    pub diff: RunDiff,
}

/// `POST /runs/{id}/merge` (may be empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeBody {
    /// `merge` or `squash`: the run's own unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The branch to merge into: the run's merge target unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// `{"merge": MergeOutcome}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeEnvelope {
    pub merge: MergeOutcome,
}

/// `{"scrap": ScrapOutcome}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScrapEnvelope {
    pub scrap: ScrapOutcome,
}

/// `POST /runs/{id}/create-pr` (may be empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `{"pull_request": PullRequest}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PullRequestEnvelope {
    pub pull_request: PullRequest,
}

/// `{"worktrees": [RunWorktree]}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorktreesEnvelope {
    pub worktrees: Vec<RunWorktree>,
}

/// `POST /gc` (may be empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcBody {
    /// Report what would be removed, and remove nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Only worktrees of runs that last changed at least this many days ago.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub older_than_days: Option<f64>,
    /// Only the worktrees of this workspace's runs.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_root: Option<PathBuf>,
}

/// `{"gc": GcReport}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GcEnvelope {
    pub gc: GcReport,
}

/// `POST /worktrees/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemoveWorktreeBody {
    /// The worktree's path, as `GET /worktrees` lists it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub path: PathBuf,
    /// Remove it even while its run is RUNNING or PAUSED.
    #[serde(default)]
    pub force: bool,
}

/// `{"worktree": RunWorktree}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorktreeEnvelope {
    pub worktree: RunWorktree,
}
